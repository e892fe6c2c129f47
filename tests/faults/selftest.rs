//! The suite's own tools, checked without a bridge: the proxy's faults land
//! at the armed byte, and the checker flags what it must.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::common::Msg;
use super::common::checker::{self, Seen, Sent};
use super::common::proxy::{Armed, Direction, Fault, Proxy};
use super::common::webhooks::{Answer, Generator, Snap};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// An upstream that reads one connection to its end; returns each read's
/// bytes with the time it arrived.
async fn sink() -> (u16, Sink) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut reads = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            reads.push((Instant::now(), n));
        }
        reads
    });
    (port, task)
}

type Sink = tokio::task::JoinHandle<Vec<(Instant, usize)>>;

/// A client connected through a proxy armed with `armed`, to a [`sink`].
async fn through(armed: Armed) -> (Proxy, TcpStream, Sink) {
    let (port, sink) = sink().await;
    let proxy = Proxy::start(port).await;
    proxy.arm(armed);
    let client = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    (proxy, client, sink)
}

/// What the sink read, once its connection ended.
async fn reads(sink: Sink) -> Vec<(Instant, usize)> {
    tokio::time::timeout(super::common::TIMEOUT, sink)
        .await
        .expect("the upstream connection ends in time")
        .unwrap()
}

#[tokio::test]
async fn a_cut_forwards_exactly_the_armed_bytes() {
    let (_proxy, mut client, sink) = through(Armed {
        fault: Fault::Cut,
        direction: Direction::ToBroker,
        after_bytes: 1000,
    })
    .await;
    let _ = client.write_all(&[7u8; 4000]).await;
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(super::common::TIMEOUT, client.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the client sees its connection end");
    let got: usize = reads(sink).await.iter().map(|(_, n)| n).sum();
    assert_eq!(got, 1000);
}

#[tokio::test]
async fn a_reset_is_an_rst() {
    let (_proxy, mut client, sink) = through(Armed {
        fault: Fault::Reset,
        direction: Direction::ToBroker,
        after_bytes: 10,
    })
    .await;
    client.write_all(&[1u8; 20]).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(super::common::TIMEOUT, client.read(&mut buf))
        .await
        .expect("the connection ends in time");
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    let got: usize = reads(sink).await.iter().map(|(_, n)| n).sum();
    assert_eq!(got, 10);
}

#[tokio::test]
async fn a_stall_holds_the_rest_of_the_chunk() {
    let (_proxy, mut client, sink) = through(Armed {
        fault: Fault::Stall { ms: 300 },
        direction: Direction::ToBroker,
        after_bytes: 10,
    })
    .await;
    client.write_all(&[1u8; 20]).await.unwrap();
    client.shutdown().await.unwrap();
    let reads = reads(sink).await;
    let sizes: Vec<usize> = reads.iter().map(|(_, n)| *n).collect();
    assert_eq!(sizes, [10, 10]);
    assert!(reads[1].0 - reads[0].0 >= Duration::from_millis(300));
}

fn event(printer: &str, marker: u64) -> Msg {
    Msg {
        topic: format!("print2mqtt/{printer}/event"),
        payload: Bytes::from(format!(r#"{{"print_duration":{marker}}}"#)),
        retain: false,
    }
}

#[test]
fn the_checker_flags_loss_disorder_and_refused_publishes() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut hooks = Generator::new(1, 0);
    let answers = [
        Answer::Accepted,
        Answer::Accepted,
        Answer::Status(503, "full".into()),
        Answer::Accepted,
    ];
    let sent: Vec<Sent> = answers
        .into_iter()
        .map(|answer| Sent {
            hook: hooks.next(&mut rng, "fault-oe-0", Snap::None),
            answer,
            during_kill: false,
            disk_full: true,
        })
        .collect();
    // 2 and 1 swapped, 2 again (a QoS 1 resend: fine), 3 refused yet
    // published, 4 missing.
    let msgs: Vec<Msg> = [2, 1, 2, 3].map(|m| event("fault-oe-0", m)).into();
    let seen = Seen::from(&msgs);
    assert_eq!(seen.duplicates(), 1);
    assert!(!checker::all_delivered(&sent, &seen));
    assert_eq!(
        checker::check_stream(&sent, &seen),
        [
            "1 of 3 accepted webhooks never delivered: webhook 4 (fault-oe-0)",
            "fault-oe-0: events out of acceptance order: 1 after 2",
            "webhook 3 (fault-oe-0) published though answered 503 (full)",
        ]
    );
    assert_eq!(checker::check_answers(&sent), Vec::<String>::new());
}
