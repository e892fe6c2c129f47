//! Connection limits against the real server: a thousand idle connections
//! do not keep a webhook out, a full connection table makes room by closing
//! its longest-idle connection, and idle keep-alive connections are closed.

use crate::common;

use std::time::Duration;

use common::raw;
use common::*;
use print2mqtt::app;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "limits-secret";

fn webhook(printer: &str) -> String {
    format!(r#"{{"PrinterId":"{printer}","SecretKey":"{SECRET}","EventType":6,"Progress":42}}"#)
}

/// Each held connection needs a descriptor on both ends, in this process.
fn raise_open_file_limit() {
    let got = rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    assert!(got >= 2300, "open-file limit {got} is too low for the test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_connections_do_not_keep_a_webhook_out() {
    raise_open_file_limit();
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), SECRET)).await.unwrap();
    let addr = bridge.http_addr();
    let mut all = Subscriber::new(broker.port, "print2mqtt/+/progress").await;

    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(raw::connect(addr).await);
    }
    // Half of them started a request and stalled in the middle of a header.
    for s in idle.iter_mut().step_by(2) {
        s.write_all(b"POST /webhook HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
    }
    let answer = post_json(addr, "/webhook", webhook("busy-farm")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let m = all.until_topic("print2mqtt/busy-farm/progress").await;
    assert_eq!(m.text(), "42");
    drop(idle);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_closes_its_longest_idle_connection() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.max_connections = 20;
    let bridge = app::start(cfg).await.unwrap();
    let addr = bridge.http_addr();

    let mut first = raw::connect(addr).await;
    // Known to the server once it answers on it.
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(raw::read_answer(&mut first).await.unwrap().status, 200);
    let mut rest = Vec::new();
    for _ in 0..40 {
        rest.push(raw::connect(addr).await);
    }
    // The oldest idle connection made room for the newer ones.
    raw::closed_by_server(&mut first).await;
    let answer = post_json(addr, "/webhook", webhook("crowded")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_silent_connections_are_closed() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.idle_timeout_secs = 1;
    cfg.http.header_timeout_secs = 1;
    let bridge = app::start(cfg).await.unwrap();
    let addr = bridge.http_addr();

    // Keep-alive after an answer: closed after the idle timeout.
    let mut kept = raw::connect(addr).await;
    kept.write_all(&raw::post("/webhook", "", webhook("p").as_bytes()))
        .await
        .unwrap();
    let answer = raw::read_answer(&mut kept).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    raw::closed_by_server(&mut kept).await;

    // Connected, never a byte: closed after the header timeout.
    let mut silent = raw::connect(addr).await;
    raw::closed_by_server(&mut silent).await;

    // Headers trickled one line per 300 ms: still closed in time, without
    // an answer.
    let mut slow = raw::connect(addr).await;
    let lines: Vec<&[u8]> = vec![
        b"POST /webhook HTTP/1.1\r\n",
        b"host: x\r\n",
        b"x-a: 1\r\n",
        b"x-b: 2\r\n",
        b"x-c: 3\r\n",
        b"x-d: 4\r\n",
        b"x-e: 5\r\n",
        b"x-f: 6\r\n",
    ];
    raw::trickle(&mut slow, &lines, Duration::from_millis(300)).await;
    assert!(raw::read_answer(&mut slow).await.is_none());

    let answer = post_json(addr, "/webhook", webhook("p")).await;
    assert_eq!(answer.status, 200, "still serving: {}", answer.body);
    bridge.shutdown().await;
}
