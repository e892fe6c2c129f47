//! The `device_automation` platform: one device trigger per event name, so
//! "complete", "failure_warning", "filament_change" … appear in the
//! automation editor's trigger list of the printer's device.
//!
//! Triggers are not entities: no `name`, `unique_id` or availability.

use serde::Serialize;

use super::device::{Device, Origin, Owner};
use super::{Discovered, Feed};
use crate::event::EventKind;

/// An MQTT device trigger config.
#[derive(Debug, Serialize)]
struct Trigger<'a> {
    automation_type: &'static str,
    topic: String,
    /// The same for every trigger of the bridge; the subtype tells them
    /// apart (the editor shows `"<subtype>" <type>`).
    #[serde(rename = "type")]
    kind: &'static str,
    subtype: &'static str,
    /// Matched against the event name the template extracts.
    payload: &'static str,
    value_template: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a Device>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin<'a>>,
}

/// A printer's device triggers, one per event name.
pub(super) fn printer(owner: &Owner<'_>) -> Vec<Discovered> {
    let topic = owner.topic(Feed::Event);
    EventKind::ALL
        .iter()
        .map(|kind| {
            let trigger = Trigger {
                automation_type: "trigger",
                topic: topic.clone(),
                kind: "notification",
                subtype: kind.name(),
                payload: kind.name(),
                value_template: "{{ value_json.event }}",
                device: owner.per_entity().then_some(&owner.device),
                origin: owner.per_entity().then(|| owner.origin()),
            };
            Discovered::new(kind.name(), &trigger)
        })
        .collect()
}
