//! The outbox against real files: order across reopening, bounds, parked
//! messages, damaged files and compaction.

use bytes::Bytes;

use super::*;

const LIMITS: Limits = Limits {
    max_events: 10,
    max_bytes: 1 << 20,
};

fn record(seq: u64, topic: &str) -> Record {
    Record {
        seq,
        webhook: true,
        accepted_at_ms: 1_700_000_000_000 + seq,
        messages: vec![
            Message::retained(format!("{topic}/state"), "printing"),
            Message {
                topic: format!("{topic}/event"),
                payload: Bytes::from_static(b"\x00\xff binary"),
                retain: false,
            },
        ],
    }
}

fn parked(seq: u64, topic: &str) -> Parked {
    Parked {
        seq,
        accepted_at_ms: 1,
        parked_at_ms: 2,
        reason: "too_large".into(),
        message: Message::retained(topic.into(), vec![7u8; 3]),
    }
}

#[test]
fn records_survive_reopening_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (outbox, pending) = Outbox::open(dir.path(), LIMITS).unwrap();
        assert_eq!(pending, Pending::default());
        outbox.append(&[record(1, "a"), record(2, "b")]).unwrap();
        let mut bridge_own = record(9, "homeassistant");
        bridge_own.webhook = false;
        outbox.append(&[bridge_own]).unwrap();
        assert_eq!(outbox.depth(), 2, "only webhooks count against the bound");
        outbox.remove(&[9], &[]).unwrap();
        outbox.append(&[record(3, "c")]).unwrap();
        assert_eq!(outbox.depth(), 3);
        outbox.remove(&[2], &[]).unwrap();
    }
    let (outbox, pending) = Outbox::open(dir.path(), LIMITS).unwrap();
    let want = Pending {
        records: 2,
        first: Some(1),
        last: Some(3),
    };
    assert_eq!(pending, want);
    let mut held = Vec::new();
    outbox.for_each_pending(|r| held.push(r.clone())).unwrap();
    assert_eq!(held, vec![record(1, "a"), record(3, "c")]);
    assert_eq!(
        outbox.read_from(2, 1, usize::MAX).unwrap(),
        vec![record(3, "c")]
    );
    assert_eq!(outbox.depth(), 2);
}

#[test]
fn bytes_are_counted_and_bound_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_events: 100,
        max_bytes: 100,
    };
    let (outbox, _) = Outbox::open(dir.path(), limits).unwrap();
    let one = record(1, "a").bytes() as u64;
    assert_eq!(one, 7 + 8 + 7 + 9);
    outbox.append(&[record(1, "a"), record(2, "a")]).unwrap();
    assert_eq!(outbox.depth_bytes(), 2 * one);
    assert!(outbox.room_for(1, one));
    assert!(!outbox.room_for(1, 100 - 2 * one + 1));
    outbox.delivered([&record(1, "a")]);
    assert_eq!((outbox.depth(), outbox.depth_bytes()), (1, one));
    drop(outbox);
    let (outbox, _) = Outbox::open(dir.path(), limits).unwrap();
    assert_eq!(outbox.depth_bytes(), 2 * one, "recounted from the store");
    // Slices stop at the byte bound too.
    assert_eq!(outbox.read_from(0, usize::MAX, 1).unwrap().len(), 1);
}

#[test]
fn a_second_instance_cannot_open_the_same_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Outbox::open(dir.path(), LIMITS).unwrap();
    let err = Outbox::open(dir.path(), LIMITS).unwrap_err().to_string();
    assert!(err.contains("another print2mqtt"), "{err}");
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 1, "a store in use is never moved aside");
}

#[test]
fn a_damaged_store_is_moved_aside_and_a_fresh_one_started() {
    for damage in ["garbage", "truncated"] {
        let dir = tempfile::tempdir().unwrap();
        {
            let (outbox, _) = Outbox::open(dir.path(), LIMITS).unwrap();
            outbox.append(&[record(1, "a")]).unwrap();
        }
        let path = dir.path().join(FILE);
        let bytes = std::fs::read(&path).unwrap();
        match damage {
            "garbage" => std::fs::write(&path, vec![0x5a; bytes.len()]).unwrap(),
            _ => std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap(),
        }
        let (outbox, pending) = Outbox::open(dir.path(), LIMITS).unwrap();
        assert_eq!(pending, Pending::default(), "{damage}");
        outbox.append(&[record(2, "b")]).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 2, "{damage}: {names:?}");
        assert_eq!(names[0], FILE);
        assert!(names[1].starts_with("outbox.redb.damaged-"), "{names:?}");
    }
}

#[test]
fn parked_messages_are_kept_with_the_delete_and_retried_as_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (outbox, _) = Outbox::open(dir.path(), LIMITS).unwrap();
    outbox.append(&[record(1, "a"), record(2, "b")]).unwrap();
    outbox
        .remove(&[1, 2], &[parked(1, "a/snapshot"), parked(2, "b/snapshot")])
        .unwrap();
    assert_eq!(outbox.parked_count(), 2);
    let kept = outbox.parked(10).unwrap();
    assert_eq!(kept, vec![parked(1, "a/snapshot"), parked(2, "b/snapshot")]);
    drop(outbox);

    let (outbox, pending) = Outbox::open(dir.path(), LIMITS).unwrap();
    assert_eq!((pending.records, outbox.parked_count()), (0, 2));
    let retried = outbox.retry_parked(7).unwrap().unwrap();
    assert_eq!(retried.seq, 7);
    assert!(!retried.webhook);
    let topics: Vec<&str> = retried.messages.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(topics, vec!["a/snapshot", "b/snapshot"]);
    assert_eq!(outbox.parked_count(), 0);
    assert!(outbox.parked(10).unwrap().is_empty());
    assert_eq!(outbox.read_from(0, 10, usize::MAX).unwrap(), vec![retried]);
    assert_eq!(outbox.retry_parked(8).unwrap(), None, "nothing left");
}

#[test]
fn an_emptied_store_gives_its_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_events: 1000,
        max_bytes: u64::MAX,
    };
    let (outbox, _) = Outbox::open(dir.path(), limits).unwrap();
    let big = |seq| Record {
        seq,
        webhook: true,
        accepted_at_ms: 0,
        messages: vec![Message::retained("p/snapshot".into(), vec![1u8; 256 << 10])],
    };
    let records: Vec<Record> = (0..64).map(big).collect();
    for chunk in records.chunks(8) {
        outbox.append(chunk).unwrap();
    }
    let size = || std::fs::metadata(dir.path().join(FILE)).unwrap().len();
    let full = size();
    assert!(full > 16 << 20, "{full}");
    assert!(
        !outbox.compact_if_empty().unwrap(),
        "not while records wait"
    );
    let seqs: Vec<u64> = (0..64).collect();
    outbox.delivered(&records);
    outbox.remove(&seqs, &[]).unwrap();
    assert_eq!(size(), full, "redb keeps its high-water size");
    outbox.maintain();
    assert!(size() < full / 4, "{} of {full}", size());
    outbox.append(&[record(100, "a")]).unwrap();
    assert_eq!(outbox.read_from(0, 10, usize::MAX).unwrap().len(), 1);
}
