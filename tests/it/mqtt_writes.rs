//! The MQTT client writes publishes queued behind one another together
//! (the rumqttc patch in vendor/rumqttc/PATCHED.md): a burst costs a few
//! write syscalls, not one per publish.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::common::Mosquitto;

/// Write syscalls the calling thread has made (`/proc/thread-self/io`).
fn writes_of_this_thread() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("task I/O accounting");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscw in /proc/thread-self/io")
}

#[test]
fn a_burst_of_publishes_goes_out_in_one_write() {
    const BURST: usize = 50;
    let broker = Mosquitto::start();
    let port = broker.port;
    // The event loop runs alone on this thread, so every write the thread
    // makes is the client's.
    let writes = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut options = MqttOptions::new("burst", "127.0.0.1", port);
            options.set_inflight(100);
            let (client, mut eventloop) = AsyncClient::new(options, 2 * BURST);
            let run = async {
                while !matches!(
                    eventloop.poll().await.unwrap(),
                    Event::Incoming(Packet::ConnAck(_))
                ) {}
                for k in 0..BURST {
                    client
                        .try_publish(
                            format!("burst/{k}"),
                            QoS::AtLeastOnce,
                            false,
                            vec![b'x'; 20],
                        )
                        .unwrap();
                }
                let before = writes_of_this_thread();
                let mut acked = 0;
                while acked < BURST {
                    if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                        acked += 1;
                    }
                }
                writes_of_this_thread() - before
            };
            tokio::time::timeout(Duration::from_secs(20), run)
                .await
                .expect("every publish acknowledged within 20 s")
        })
    })
    .join()
    .unwrap();
    drop(broker);
    // Upstream rumqttc 0.25.1 writes each publish on its own: 50 writes.
    assert!(writes <= 2, "{BURST} queued publishes took {writes} writes");
}
