//! Delivery bookkeeping for the publisher: which outbox message is on which
//! MQTT packet id, which records the broker has fully acknowledged, and what
//! to send again after a reconnect. Pure: no I/O, driven by the publisher.
//!
//! Records complete strictly in order, so a resend after the broker lost the
//! session starts at the oldest incomplete record and replays everything
//! after it too: a printer's retained state never goes backwards.

use std::collections::{HashMap, VecDeque};

use super::messages::Message;
use crate::outbox::Record;

/// What a publish request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Message `idx` of the record with sequence number `seq`.
    Msg { seq: u64, idx: usize },
    /// A bridge message outside the outbox (`online`, `offline`).
    Control,
}

#[derive(Debug)]
struct Tracked {
    record: Record,
    acked: Vec<bool>,
    unacked: usize,
}

impl Tracked {
    fn new(record: Record) -> Tracked {
        let n = record.messages.len();
        Tracked {
            record,
            acked: vec![false; n],
            unacked: n,
        }
    }

    fn reset(&mut self) {
        self.acked.fill(false);
        self.unacked = self.acked.len();
    }
}

/// The publisher's view of every record not yet completed.
#[derive(Debug, Default)]
pub struct Delivery {
    records: VecDeque<Tracked>,
    /// Next message to hand to the client: (index into `records`, message).
    cursor: (usize, usize),
    /// Requests handed to the client that have no packet id yet, in order.
    fifo: VecDeque<Tag>,
    /// Packet id → what it carries, until acknowledged.
    inflight: HashMap<u16, Tag>,
    /// Messages in `records`.
    messages: usize,
}

impl Delivery {
    /// Adds records to send, after those already known.
    pub fn push(&mut self, record: Record) {
        self.messages += record.messages.len();
        self.records.push_back(Tracked::new(record));
    }

    /// The next message to publish, if any; records it as requested.
    pub fn next_message(&mut self) -> Option<Message> {
        loop {
            let (r, m) = self.cursor;
            let tracked = self.records.get(r)?;
            if m >= tracked.record.messages.len() {
                self.cursor = (r + 1, 0);
                continue;
            }
            self.cursor.1 += 1;
            if tracked.acked[m] {
                continue;
            }
            self.fifo.push_back(Tag::Msg {
                seq: tracked.record.seq,
                idx: m,
            });
            return Some(tracked.record.messages[m].clone());
        }
    }

    /// Records that a bridge control message was requested.
    pub fn control(&mut self) {
        self.fifo.push_back(Tag::Control);
    }

    /// The client reported sending packet `pkid`. A packet id already in
    /// flight is a retransmission of a resumed session and changes nothing.
    pub fn sent(&mut self, pkid: u16) {
        if self.inflight.contains_key(&pkid) {
            return;
        }
        if let Some(tag) = self.fifo.pop_front() {
            self.inflight.insert(pkid, tag);
        }
    }

    /// The broker acknowledged `pkid`; returns the records now complete,
    /// oldest first.
    pub fn acked(&mut self, pkid: u16) -> Vec<Record> {
        if let Some(Tag::Msg { seq, idx }) = self.inflight.remove(&pkid)
            && let Ok(pos) = self.records.binary_search_by_key(&seq, |t| t.record.seq)
        {
            let t = &mut self.records[pos];
            if !t.acked[idx] {
                t.acked[idx] = true;
                t.unacked -= 1;
            }
        }
        // Every message acknowledged implies every message was requested.
        let mut done = Vec::new();
        while self.records.front().is_some_and(|t| t.unacked == 0) {
            if let Some(t) = self.records.pop_front() {
                self.messages -= t.record.messages.len();
                done.push(t.record);
            }
            self.cursor = match self.cursor {
                (0, _) => (0, 0),
                (r, m) => (r - 1, m),
            };
        }
        done
    }

    /// The broker lost the session (or it was never there): nothing in
    /// flight will be acknowledged, so everything incomplete is sent again,
    /// from the oldest record on.
    pub fn reset(&mut self) {
        self.fifo.clear();
        self.inflight.clear();
        self.cursor = (0, 0);
        self.records.iter_mut().for_each(Tracked::reset);
    }

    /// Requests not yet acknowledged (the publishing window in use).
    pub fn outstanding(&self) -> usize {
        self.fifo.len() + self.inflight.len()
    }

    /// How many messages of incomplete records are held.
    pub fn held(&self) -> usize {
        self.messages
    }

    /// True when every record is complete.
    pub fn is_idle(&self) -> bool {
        self.records.is_empty()
    }

    /// When the oldest incomplete record was accepted (ms since the epoch).
    pub fn oldest_accepted_ms(&self) -> Option<u64> {
        self.records.front().map(|t| t.record.accepted_at_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, n: usize) -> Record {
        Record {
            seq,
            webhook: true,
            accepted_at_ms: seq,
            messages: (0..n)
                .map(|i| Message::retained(format!("p/{seq}/{i}"), "x"))
                .collect(),
        }
    }

    /// Sends everything with consecutive packet ids; returns the ids used.
    fn send_all(d: &mut Delivery, first_pkid: u16) -> Vec<u16> {
        let mut ids = Vec::new();
        let mut pkid = first_pkid;
        while d.next_message().is_some() {
            d.sent(pkid);
            ids.push(pkid);
            pkid += 1;
        }
        ids
    }

    #[test]
    fn held_counts_the_messages_of_incomplete_records() {
        let mut d = Delivery::default();
        d.push(record(1, 3));
        d.push(record(2, 2));
        assert_eq!(d.held(), 5);
        let ids = send_all(&mut d, 1);
        for pkid in &ids[..3] {
            d.acked(*pkid);
        }
        assert_eq!(d.held(), 2, "record 1 complete and dropped");
        d.acked(ids[3]);
        d.acked(ids[4]);
        assert_eq!(d.held(), 0);
        assert!(d.is_idle());
    }

    #[test]
    fn a_record_completes_when_every_message_is_acked() {
        let mut d = Delivery::default();
        d.push(record(1, 2));
        d.push(record(2, 1));
        let ids = send_all(&mut d, 1);
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(d.acked(1).is_empty());
        assert_eq!(
            d.acked(2).iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(
            d.acked(3).iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(d.is_idle());
        assert_eq!(d.outstanding(), 0);
    }

    #[test]
    fn the_last_message_acked_completes_its_record_at_once() {
        let mut d = Delivery::default();
        d.push(record(1, 1));
        assert!(d.next_message().is_some());
        d.sent(1);
        assert_eq!(d.acked(1).len(), 1);
        d.push(record(2, 1));
        assert_eq!(d.next_message().map(|m| m.topic).as_deref(), Some("p/2/0"));
    }

    #[test]
    fn records_complete_in_order_even_when_acked_out_of_order() {
        let mut d = Delivery::default();
        d.push(record(1, 1));
        d.push(record(2, 1));
        send_all(&mut d, 10);
        assert!(d.acked(11).is_empty(), "record 2 waits for record 1");
        let done: Vec<u64> = d.acked(10).iter().map(|r| r.seq).collect();
        assert_eq!(done, vec![1, 2]);
    }

    #[test]
    fn control_messages_take_packet_ids_but_complete_nothing() {
        let mut d = Delivery::default();
        d.control();
        d.sent(1);
        d.push(record(1, 1));
        send_all(&mut d, 2);
        assert!(d.acked(1).is_empty());
        assert_eq!(d.acked(2).len(), 1);
    }

    #[test]
    fn retransmissions_of_a_resumed_session_keep_the_mapping() {
        let mut d = Delivery::default();
        d.push(record(1, 2));
        send_all(&mut d, 5);
        // Reconnected with the session: the client resends 5 and 6 as is.
        d.sent(5);
        d.sent(6);
        assert!(d.acked(5).is_empty());
        assert_eq!(d.acked(6).len(), 1);
    }

    #[test]
    fn a_lost_session_resends_everything_incomplete_from_the_oldest() {
        let mut d = Delivery::default();
        d.push(record(1, 2));
        d.push(record(2, 1));
        send_all(&mut d, 1);
        assert!(d.acked(3).is_empty(), "record 2 acked, record 1 not yet");
        d.reset();
        // Everything of both records goes out again, in order.
        let mut resent = Vec::new();
        while let Some(m) = d.next_message() {
            resent.push(m.topic);
        }
        assert_eq!(resent, vec!["p/1/0", "p/1/1", "p/2/0"]);
        // Acks of the resends complete record 1 (after two) and record 2.
        let completed: Vec<usize> = [7u16, 8, 9]
            .into_iter()
            .map(|pkid| {
                d.sent(pkid);
                d.acked(pkid).len()
            })
            .collect();
        assert_eq!(completed, vec![0, 1, 1]);
        assert!(d.is_idle());
    }

    #[test]
    fn stale_acks_after_a_reset_are_ignored() {
        let mut d = Delivery::default();
        d.push(record(1, 1));
        send_all(&mut d, 1);
        d.reset();
        assert!(d.acked(1).is_empty(), "the old packet id means nothing now");
        assert!(!d.is_idle());
        assert_eq!(d.oldest_accepted_ms(), Some(1));
    }
}
