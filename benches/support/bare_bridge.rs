//! The bare program the load bench compares print2mqtt with: hyper takes a
//! webhook, rumqttc queues four QoS 1 publishes (state, progress, the
//! retained last event, the event) and the answer is 200 — no outbox, no
//! state, no discovery. What a webhook costs at the least.
//!
//! `bare_bridge <http port> <mqtt port>`; built by `cargo build --release
//! --example bare_bridge` and started by `benches/load.rs`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rumqttc::{AsyncClient, MqttOptions, QoS};

async fn webhook(client: AsyncClient, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = |status| {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = status;
        r
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST);
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return answer(StatusCode::BAD_REQUEST);
    };
    let printer = json["PrinterId"].as_str().unwrap_or("unknown").to_owned();
    let state = json["EventType"].to_string();
    let progress = json["Progress"].to_string();
    let base = format!("bare/{printer}");
    let publishes = [
        (format!("{base}/state"), Bytes::from(state), true),
        (format!("{base}/progress"), Bytes::from(progress), true),
        (format!("{base}/last_event"), body.clone(), true),
        (format!("{base}/event"), body, false),
    ];
    for (topic, payload, retain) in publishes {
        if client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .is_err()
        {
            return answer(StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    answer(StatusCode::OK)
}

#[tokio::main]
async fn main() {
    let args: Vec<u16> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("bare_bridge <http port> <mqtt port>"))
        .collect();
    let (http, mqtt) = (args[0], args[1]);
    let mut options = MqttOptions::new(format!("bare-{http}"), "127.0.0.1", mqtt);
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", http))
        .await
        .expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let client = client.clone();
                async move { Ok::<_, Infallible>(webhook(client, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
