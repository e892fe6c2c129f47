//! How outbox records and parked messages are laid out on disk (postcard),
//! written from borrowed parts and read back owned.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{Parked, Record};
use crate::mqtt::messages::Message;

#[derive(Deserialize)]
struct StoredRecord {
    webhook: bool,
    accepted_at_ms: u64,
    messages: Vec<StoredMessage>,
}

#[derive(Deserialize)]
struct StoredMessage {
    topic: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    retain: bool,
}

impl From<StoredMessage> for Message {
    fn from(m: StoredMessage) -> Message {
        Message {
            topic: m.topic,
            payload: Bytes::from(m.payload),
            retain: m.retain,
        }
    }
}

/// The same layout, written from borrowed parts: no copy of any topic or
/// payload on the way to disk.
#[derive(Serialize)]
struct StoredRecordRef<'a> {
    webhook: bool,
    accepted_at_ms: u64,
    messages: Vec<StoredMessageRef<'a>>,
}

#[derive(Serialize)]
struct StoredMessageRef<'a> {
    topic: &'a str,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    retain: bool,
}

impl<'a> From<&'a Message> for StoredMessageRef<'a> {
    fn from(m: &'a Message) -> StoredMessageRef<'a> {
        StoredMessageRef {
            topic: &m.topic,
            payload: &m.payload,
            retain: m.retain,
        }
    }
}

#[derive(Serialize)]
struct StoredParkedRef<'a> {
    seq: u64,
    accepted_at_ms: u64,
    parked_at_ms: u64,
    reason: &'a str,
    message: StoredMessageRef<'a>,
}

#[derive(Deserialize)]
struct StoredParked {
    seq: u64,
    accepted_at_ms: u64,
    parked_at_ms: u64,
    reason: String,
    message: StoredMessage,
}

pub fn encode(r: &Record) -> Vec<u8> {
    let stored = StoredRecordRef {
        webhook: r.webhook,
        accepted_at_ms: r.accepted_at_ms,
        messages: r.messages.iter().map(StoredMessageRef::from).collect(),
    };
    // Serializing strings, byte vectors and integers into a Vec cannot fail.
    postcard::to_allocvec(&stored).unwrap_or_default()
}

pub fn decode(seq: u64, bytes: &[u8]) -> Option<Record> {
    let stored: StoredRecord = postcard::from_bytes(bytes).ok()?;
    Some(Record {
        seq,
        webhook: stored.webhook,
        accepted_at_ms: stored.accepted_at_ms,
        messages: stored.messages.into_iter().map(Message::from).collect(),
    })
}

pub fn encode_parked(p: &Parked) -> Vec<u8> {
    let stored = StoredParkedRef {
        seq: p.seq,
        accepted_at_ms: p.accepted_at_ms,
        parked_at_ms: p.parked_at_ms,
        reason: &p.reason,
        message: StoredMessageRef::from(&p.message),
    };
    // As above: cannot fail.
    postcard::to_allocvec(&stored).unwrap_or_default()
}

pub fn decode_parked(bytes: &[u8]) -> Option<Parked> {
    let s: StoredParked = postcard::from_bytes(bytes).ok()?;
    Some(Parked {
        seq: s.seq,
        accepted_at_ms: s.accepted_at_ms,
        parked_at_ms: s.parked_at_ms,
        reason: s.reason,
        message: s.message.into(),
    })
}
