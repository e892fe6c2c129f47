//! What the clustered mode keeps in NATS, as bytes: an accepted webhook on
//! the stream (its event and snapshot), the partition of a printer, and a
//! printer's shared state in the key-value bucket. Pure functions.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Stand-in for a snapshot JPEG in the shared state: the state needs to
/// know that there is one, never its bytes (those are on the broker).
const SNAPSHOT_MARK: &[u8] = b"jpeg";

/// One accepted webhook on the stream.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The event as its `last_event` JSON.
    event: String,
    /// The snapshot JPEG, if the webhook carried one.
    #[serde(with = "serde_bytes")]
    snapshot: Option<Vec<u8>>,
    /// What the parser knew and the JSON does not carry: the sender's
    /// progress never goes backwards ([`Event::progress_monotonic`]).
    progress_monotonic: bool,
}

/// The stream message of an accepted event.
pub fn encode_event(event: &Event) -> Bytes {
    let envelope = Envelope {
        event: event.to_json(),
        snapshot: event.snapshot.as_ref().map(|b| b.to_vec()),
        progress_monotonic: event.progress_monotonic,
    };
    // Strings and byte strings always encode.
    Bytes::from(postcard::to_allocvec(&envelope).unwrap_or_default())
}

/// The event back from a stream message; `Err` for a message this version
/// cannot read.
pub fn decode_event(bytes: &[u8]) -> Result<Event, String> {
    let envelope: Envelope = postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut event: Event = serde_json::from_str(&envelope.event).map_err(|e| e.to_string())?;
    event.snapshot = envelope.snapshot.map(Bytes::from);
    event.progress_monotonic = envelope.progress_monotonic;
    Ok(event)
}

/// The partition of a printer: FNV-1a of its folded id, so every bridge
/// (and every version) puts a printer in the same one.
pub fn partition(printer_id: &str, partitions: u64) -> u64 {
    let folded = crate::slug::fold(printer_id);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in folded.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % partitions.max(1)
}

/// A printer's state shared by the bridges: the retained values a single
/// bridge would hold for it, and the stream sequence of the last event
/// applied to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    pub last_seq: u64,
    /// (topic, payload) of each retained value, snapshot JPEGs as a mark.
    pub retained: Vec<(String, Vec<u8>)>,
}

impl Shared {
    pub fn decode(bytes: &[u8]) -> Result<Shared, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }

    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).unwrap_or_default())
    }

    /// Takes in retained messages published for this printer (later ones
    /// win; an empty payload clears the value).
    pub fn merge<'a>(&mut self, values: impl IntoIterator<Item = (&'a str, &'a [u8], bool)>) {
        for (topic, payload, snapshot) in values {
            self.retained.retain(|(t, _)| t != topic);
            if payload.is_empty() {
                continue;
            }
            let payload = if snapshot { SNAPSHOT_MARK } else { payload };
            self.retained.push((topic.to_owned(), payload.to_vec()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Reception, Source};

    #[test]
    fn an_event_comes_back_as_it_went() {
        let rx = Reception::now();
        let mut e = Event::new(EventKind::Progress, Source::OctoPrint, "Ender 3".into(), rx);
        e.set_time_remaining(Some(605));
        e.z = Some(0.3);
        e.progress = Some(42);
        e.error = Some("a \"quoted\"\nline".into());
        e.snapshot = Some(Bytes::from_static(b"\xff\xd8\xff"));
        assert_eq!(decode_event(&encode_event(&e)).unwrap(), e);
        e.progress_monotonic = true;
        let back = decode_event(&encode_event(&e)).unwrap();
        assert!(
            back.progress_monotonic,
            "not in the JSON, still on the stream"
        );
        assert_eq!(back, e);
        assert!(decode_event(b"\x01").is_err());
    }

    #[test]
    fn partitions_are_stable_and_ignore_case() {
        assert_eq!(partition("Ender-3", 16), partition("ender-3", 16));
        assert_eq!(partition("x", 1), 0);
        let spread: std::collections::HashSet<u64> =
            (0..64).map(|i| partition(&format!("p{i}"), 16)).collect();
        assert!(spread.len() > 8, "{spread:?}");
    }

    #[test]
    fn later_values_win_and_empty_clears() {
        let mut s = Shared::default();
        s.merge([("a", &b"1"[..], false), ("b", &b"\xff\xd8"[..], true)]);
        s.merge([("a", &b"2"[..], false), ("b", &b""[..], true)]);
        assert_eq!(s.retained, [("a".to_owned(), b"2".to_vec())]);
        assert_eq!(Shared::decode(&s.encode()).unwrap(), s);
    }
}
