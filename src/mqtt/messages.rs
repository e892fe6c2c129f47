//! Event and state changes in, MQTT messages out: a pure function, so the
//! same webhook gives the same packets on every bridge instance.

use bytes::Bytes;

use super::topics::{EVENT, LAST_EVENT, Topics};
use crate::event::Event;
use crate::state::Change;

/// One MQTT message to publish at QoS 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

impl Message {
    /// A retained message.
    pub fn retained(topic: String, payload: impl Into<Bytes>) -> Message {
        Message {
            topic,
            payload: payload.into(),
            retain: true,
        }
    }
}

/// The messages of one accepted webhook: every changed retained value, then
/// the retained `last_event`, then the non-retained `event`.
pub fn render(topics: &Topics, slug: &str, changes: &[Change], event: &Event) -> Vec<Message> {
    let json = Bytes::from(event.to_json());
    let mut out: Vec<Message> = changes
        .iter()
        .map(|c| Message::retained(topics.field(slug, c.field), c.payload.clone()))
        .collect();
    out.push(Message::retained(
        topics.printer(slug, LAST_EVENT),
        json.clone(),
    ));
    out.push(Message {
        topic: topics.printer(slug, EVENT),
        payload: json,
        retain: false,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Reception, Source};
    use crate::state::PrinterState;

    #[test]
    fn last_event_is_retained_and_the_stream_is_not() {
        let mut e = Event::new(
            EventKind::Paused,
            Source::OctoEverywhere,
            "P".into(),
            Reception::now(),
        );
        e.progress = Some(38);
        let changes = PrinterState::default().apply(&e);
        let msgs = render(&Topics::new("print2mqtt"), "p", &changes, &e);
        let summary: Vec<(&str, bool)> =
            msgs.iter().map(|m| (m.topic.as_str(), m.retain)).collect();
        assert_eq!(
            summary,
            vec![
                ("print2mqtt/p/state", true),
                ("print2mqtt/p/progress", true),
                ("print2mqtt/p/last_event", true),
                ("print2mqtt/p/event", false),
            ]
        );
        assert_eq!(msgs[2].payload, msgs[3].payload);
    }
}
