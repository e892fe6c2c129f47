//! Delivery bookkeeping for the publisher: which outbox message rides on
//! which MQTT packet id, which records the broker has fully acknowledged,
//! which messages the broker will not take, and what to send again after a
//! connection is lost. Pure: no I/O, driven by the publisher.
//!
//! Right by construction rather than by guessing:
//! - The publisher uses a fresh rumqttc client for every connection, so no
//!   publish of an earlier connection is ever replayed under an old packet
//!   id. Within one connection rumqttc hands out packet ids in request order,
//!   so the n-th `Outgoing::Publish` is the n-th request.
//! - Anything that breaks that rule (a publish nobody requested, a packet id
//!   reused while still unacknowledged, an acknowledgement of an unknown id)
//!   is an [`Anomaly`]: the publisher drops the connection and everything
//!   incomplete is sent again. Nothing is ever credited on a guess.
//! - When a connection is lost, every message of every incomplete record is
//!   sent again from the oldest on, even the ones acknowledged before: a
//!   printer's retained state never goes backwards. Records complete strictly
//!   in order.
//! - A message larger than the broker takes, or one the broker keeps
//!   dropping the connection over when sent alone, is set aside ("parked"):
//!   its record completes without it and the publisher keeps the message on
//!   disk for a retry on request. It never blocks the records behind it.

use std::collections::{HashMap, VecDeque};

use super::messages::Message;
use crate::outbox::Record;

/// Times a message may be the only one outstanding when a connection dies
/// before it is set aside as one the broker refuses.
pub const STRIKES: u8 = 3;

/// What a publish request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    /// Message `idx` of the record with sequence number `seq`.
    Msg { seq: u64, idx: usize },
    /// A bridge message outside the outbox (`online`, `offline`).
    Control,
}

/// The client reported something the bookkeeping cannot map with
/// certainty; the connection must be dropped and its requests sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Anomaly {
    #[error("publish {0} that no request explains")]
    UnexpectedPublish(u16),
    #[error("packet id {0} reused while still unacknowledged")]
    PacketIdInUse(u16),
    #[error("acknowledgement of unknown packet id {0}")]
    UnknownAck(u16),
}

/// Why a message was set aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkReason {
    /// Its packet is larger than `mqtt.max_packet_bytes`.
    TooLarge,
    /// The broker dropped the connection every time it was sent alone.
    Refused,
}

impl ParkReason {
    /// A short name, for logs and the API.
    pub fn name(self) -> &'static str {
        match self {
            ParkReason::TooLarge => "too_large",
            ParkReason::Refused => "refused_by_broker",
        }
    }
}

/// A record the broker now holds entirely, but for the messages set aside.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub record: Record,
    /// Index into `record.messages` and why, for each message set aside.
    pub parked: Vec<(usize, ParkReason)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pending,
    Acked,
    Parked(ParkReason),
}

#[derive(Debug)]
struct Tracked {
    record: Record,
    fate: Vec<Fate>,
    /// Messages neither acknowledged nor parked.
    open: usize,
}

impl Tracked {
    fn new(record: Record) -> Tracked {
        let n = record.messages.len();
        Tracked {
            record,
            fate: vec![Fate::Pending; n],
            open: n,
        }
    }

    fn settle(&mut self, idx: usize, fate: Fate) {
        if self.fate.get(idx) == Some(&Fate::Pending) {
            self.fate[idx] = fate;
            self.open -= 1;
        }
    }

    /// Everything acknowledged goes out again; parked stays parked.
    fn reopen(&mut self) {
        for f in &mut self.fate {
            if *f == Fate::Acked {
                *f = Fate::Pending;
                self.open += 1;
            }
        }
    }
}

/// The bytes of a QoS 1 PUBLISH packet carrying `m` (MQTT 3.1.1).
pub fn packet_size(m: &Message) -> usize {
    let remaining = 2 + m.topic.len() + 2 + m.payload.len();
    let length_bytes = match remaining {
        0..128 => 1,
        128..16_384 => 2,
        16_384..2_097_152 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// The publisher's view of every record not yet completed.
#[derive(Debug)]
pub struct Delivery {
    records: VecDeque<Tracked>,
    /// Next message to hand to the client: (index into `records`, message).
    cursor: (usize, usize),
    /// Requests handed to this connection's client that have no packet id
    /// yet, in request order.
    fifo: VecDeque<Tag>,
    /// Packet id → what it carries, until acknowledged.
    inflight: HashMap<u16, Tag>,
    /// Messages and payload bytes in `records`.
    messages: usize,
    bytes: usize,
    /// The largest packet the broker takes.
    max_packet: usize,
    /// After a lost connection, messages up to this one (the last that was
    /// outstanding) go one at a time, so the one a broker refuses can be
    /// told from the rest.
    careful_until: Option<(u64, usize)>,
    /// Connections lost while a message was the only one outstanding.
    strikes: HashMap<(u64, usize), u8>,
}

impl Delivery {
    /// Bookkeeping for a broker that takes packets up to `max_packet` bytes.
    pub fn new(max_packet: usize) -> Delivery {
        Delivery {
            records: VecDeque::new(),
            cursor: (0, 0),
            fifo: VecDeque::new(),
            inflight: HashMap::new(),
            messages: 0,
            bytes: 0,
            max_packet,
            careful_until: None,
            strikes: HashMap::new(),
        }
    }

    /// Adds a record to send, after those already known.
    pub fn push(&mut self, record: Record) {
        self.messages += record.messages.len();
        self.bytes += record.bytes();
        self.records.push_back(Tracked::new(record));
    }

    /// The next message to publish, if any; records it as requested.
    /// Messages too large for the broker are parked on the way.
    pub fn next_message(&mut self) -> Option<Message> {
        loop {
            let (r, m) = self.cursor;
            let tracked = self.records.get_mut(r)?;
            if m >= tracked.record.messages.len() {
                self.cursor = (r + 1, 0);
                continue;
            }
            self.cursor.1 += 1;
            if tracked.fate[m] != Fate::Pending {
                continue;
            }
            let message = &tracked.record.messages[m];
            if packet_size(message) > self.max_packet {
                tracked.settle(m, Fate::Parked(ParkReason::TooLarge));
                continue;
            }
            let at = (tracked.record.seq, m);
            if self.careful_until.is_some_and(|until| at > until) {
                self.careful_until = None;
            }
            self.fifo.push_back(Tag::Msg {
                seq: at.0,
                idx: at.1,
            });
            return Some(message.clone());
        }
    }

    /// Records that a bridge control message was requested.
    pub fn control(&mut self) {
        self.fifo.push_back(Tag::Control);
    }

    /// The client sent the oldest request not yet sent as packet `pkid`.
    pub fn sent(&mut self, pkid: u16) -> Result<(), Anomaly> {
        if self.inflight.contains_key(&pkid) {
            return Err(Anomaly::PacketIdInUse(pkid));
        }
        let tag = self
            .fifo
            .pop_front()
            .ok_or(Anomaly::UnexpectedPublish(pkid))?;
        self.inflight.insert(pkid, tag);
        Ok(())
    }

    /// The broker acknowledged `pkid`; returns the records now complete,
    /// oldest first.
    pub fn acked(&mut self, pkid: u16) -> Result<Vec<Done>, Anomaly> {
        let tag = self
            .inflight
            .remove(&pkid)
            .ok_or(Anomaly::UnknownAck(pkid))?;
        if let Tag::Msg { seq, idx } = tag {
            self.strikes.remove(&(seq, idx));
            if let Some(t) = self.find(seq) {
                t.settle(idx, Fate::Acked);
            }
        }
        Ok(self.take_complete())
    }

    /// The connection is gone, and with it every packet id: everything
    /// incomplete goes out again from the oldest record on. A message that
    /// was the only one outstanding gets a strike; at [`STRIKES`] it is
    /// parked. Returns the records that completed because of that.
    pub fn connection_lost(&mut self) -> Vec<Done> {
        let suspect = {
            let mut alone = self.outstanding_messages();
            match (alone.next(), alone.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        };
        let last_out = self.outstanding_messages().max();
        self.careful_until = self.careful_until.max(last_out);
        self.fifo.clear();
        self.inflight.clear();
        self.cursor = (0, 0);
        self.records.iter_mut().for_each(Tracked::reopen);
        if let Some((seq, idx)) = suspect {
            let strikes = self.strikes.entry((seq, idx)).or_default();
            *strikes += 1;
            if *strikes >= STRIKES {
                self.strikes.remove(&(seq, idx));
                if let Some(t) = self.find(seq) {
                    t.settle(idx, Fate::Parked(ParkReason::Refused));
                }
            }
        }
        self.take_complete()
    }

    /// How many more requests the client may take now: one at a time
    /// while being careful after a lost connection, else up to `window`.
    pub fn room(&self, window: usize) -> usize {
        let limit = if self.careful_until.is_some() {
            1
        } else {
            window
        };
        limit.saturating_sub(self.fifo.len() + self.inflight.len())
    }

    /// Requests not yet acknowledged (the publishing window in use).
    pub fn outstanding(&self) -> usize {
        self.fifo.len() + self.inflight.len()
    }

    /// The outbox messages requested and not yet acknowledged, as (record,
    /// index).
    fn outstanding_messages(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        self.fifo
            .iter()
            .chain(self.inflight.values())
            .filter_map(|t| match t {
                Tag::Msg { seq, idx } => Some((*seq, *idx)),
                Tag::Control => None,
            })
    }

    /// How many messages of incomplete records are held.
    pub fn held(&self) -> usize {
        self.messages
    }

    /// How many topic and payload bytes of incomplete records are held.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// True when every record is complete.
    pub fn is_idle(&self) -> bool {
        self.records.is_empty()
    }

    /// When the oldest incomplete record was accepted (ms since the epoch).
    pub fn oldest_accepted_ms(&self) -> Option<u64> {
        self.records.front().map(|t| t.record.accepted_at_ms)
    }

    fn find(&mut self, seq: u64) -> Option<&mut Tracked> {
        let pos = self
            .records
            .binary_search_by_key(&seq, |t| t.record.seq)
            .ok()?;
        self.records.get_mut(pos)
    }

    /// Pops the complete records at the front, oldest first (a record whose
    /// every message was parked on the way completes without an ack).
    pub fn take_complete(&mut self) -> Vec<Done> {
        let mut done = Vec::new();
        while self.records.front().is_some_and(|t| t.open == 0) {
            let Some(t) = self.records.pop_front() else {
                break;
            };
            self.messages -= t.record.messages.len();
            self.bytes -= t.record.bytes();
            self.cursor = match self.cursor {
                (0, _) => (0, 0),
                (r, m) => (r - 1, m),
            };
            let parked = t
                .fate
                .iter()
                .enumerate()
                .filter_map(|(i, f)| match f {
                    Fate::Parked(why) => Some((i, *why)),
                    _ => None,
                })
                .collect();
            done.push(Done {
                record: t.record,
                parked,
            });
        }
        done
    }
}

#[cfg(test)]
mod tests;
