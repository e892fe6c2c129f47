//! The `event` platform: one event entity per printer that fires on every
//! message of the non-retained event stream.

use serde::Serialize;

use super::device::{Base, Look, Owner};
use super::{Discovered, Feed};
use crate::event::EventKind;

/// An MQTT event config.
#[derive(Debug, Serialize)]
struct Event<'a> {
    #[serde(flatten)]
    base: Base<'a>,
    state_topic: String,
    event_types: Vec<&'static str>,
    value_template: &'static str,
}

const LOOK: Look = Look {
    icon: Some("mdi:bell-ring-outline"),
    ..Look::new("notification", "Notification")
};

/// Home Assistant wants a JSON object with `event_type`; the rest of the
/// object becomes the event's attributes. Ours names the event `event`.
const TO_EVENT_TYPE: &str = "{{ dict(value_json, event_type=value_json.event) | to_json }}";

/// A printer's event entity.
pub(super) fn printer(owner: &Owner<'_>) -> Vec<Discovered> {
    let event = Event {
        base: owner.base(&LOOK),
        state_topic: owner.topic(Feed::Event),
        event_types: EventKind::ALL.iter().map(|k| k.name()).collect(),
        value_template: TO_EVENT_TYPE,
    };
    vec![Discovered::new(LOOK.object, &event)]
}
