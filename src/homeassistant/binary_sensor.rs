//! The `binary_sensor` platform: printing and problem per printer, and the
//! bridge's connection state.

use serde::Serialize;

use super::device::{Base, Look, Owner};
use super::{Discovered, Feed};
use crate::mqtt::topics::BRIDGE_STATE;
use crate::state::Field;

/// An MQTT binary sensor config.
#[derive(Debug, Serialize)]
struct BinarySensor<'a> {
    #[serde(flatten)]
    base: Base<'a>,
    state_topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_template: Option<&'static str>,
    payload_on: &'static str,
    payload_off: &'static str,
    device_class: &'static str,
}

/// One row of the binary sensor table.
struct Row {
    look: Look,
    feed: Feed,
    value_template: Option<&'static str>,
    payload_on: &'static str,
    payload_off: &'static str,
    device_class: &'static str,
}

const PRINTER: [Row; 2] = [
    Row {
        look: Look::new("printing", "Printing"),
        feed: Feed::Field(Field::State),
        value_template: Some("{{ 'ON' if value == 'printing' else 'OFF' }}"),
        payload_on: "ON",
        payload_off: "OFF",
        device_class: "running",
    },
    Row {
        look: Look::new("problem", "Problem"),
        feed: Feed::Field(Field::Problem),
        value_template: None,
        payload_on: "ON",
        payload_off: "OFF",
        device_class: "problem",
    },
];

/// The bridge's connection state reads the last-will topic itself, so it
/// has no availability: it shows `offline` rather than unavailable.
const BRIDGE: [Row; 1] = [Row {
    look: Look {
        object: "connection",
        name: "Connection state",
        icon: None,
        diagnostic: true,
        available_with_bridge: false,
    },
    feed: Feed::Bridge(BRIDGE_STATE),
    value_template: None,
    payload_on: "online",
    payload_off: "offline",
    device_class: "connectivity",
}];

fn configs(owner: &Owner<'_>, rows: &[Row]) -> Vec<Discovered> {
    rows.iter()
        .map(|r| {
            let sensor = BinarySensor {
                base: owner.base(&r.look),
                state_topic: owner.topic(r.feed),
                value_template: r.value_template,
                payload_on: r.payload_on,
                payload_off: r.payload_off,
                device_class: r.device_class,
            };
            Discovered::new(r.look.object, &sensor)
        })
        .collect()
}

/// A printer's binary sensors.
pub(super) fn printer(owner: &Owner<'_>) -> Vec<Discovered> {
    configs(owner, &PRINTER)
}

/// The bridge's binary sensors.
pub(super) fn bridge(owner: &Owner<'_>) -> Vec<Discovered> {
    configs(owner, &BRIDGE)
}
