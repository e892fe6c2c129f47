//! TLS on both sides, with certificates made in the test: the bridge
//! publishes to Mosquitto over `mqtts://` trusting `mqtt.ca_file` (with and
//! without a client certificate), and its listener answers over HTTPS.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::pki::Pki;
use common::*;
use http_body_util::{BodyExt, Full};
use print2mqtt::app;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

const SECRET: &str = "tls-test-secret";

fn webhook(printer: &str) -> String {
    format!(r#"{{"PrinterId":"{printer}","SecretKey":"{SECRET}","EventType":1}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_publishes_over_mqtts_with_a_ca_file() {
    let pki = Pki::new();
    let (tls_port, mutual_port) = (free_port(), free_port());
    let listener = |port: u16, extra: &str| {
        format!(
            "listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n{extra}\n",
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        )
    };
    let broker = Mosquitto::start_with(&format!(
        "{}{}",
        listener(tls_port, ""),
        listener(mutual_port, "require_certificate true")
    ));
    // The test's subscriber uses the broker's plain listener.
    let mut all = Subscriber::new(broker.port, "print2mqtt/+/state").await;

    let mut cfg = config(&format!("mqtts://127.0.0.1:{tls_port}"), SECRET);
    cfg.mqtt.ca_file = Pki::path(&pki.ca);
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let answer = post_json(bridge.http_addr(), "/webhook", webhook("ca-only")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let m = all.until_topic("print2mqtt/ca-only/state").await;
    assert_eq!(m.text(), "printing");
    bridge.shutdown().await;

    let mut cfg = config(&format!("mqtts://127.0.0.1:{mutual_port}"), SECRET);
    cfg.mqtt.ca_file = Pki::path(&pki.ca);
    cfg.mqtt.client_cert = Pki::path(&pki.client_cert);
    cfg.mqtt.client_key = Pki::path(&pki.client_key);
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let answer = post_json(bridge.http_addr(), "/webhook", webhook("client-cert")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let m = all.until_topic("print2mqtt/client-cert/state").await;
    assert_eq!(m.text(), "printing");
    bridge.shutdown().await;
}

/// One HTTPS request trusting `ca_pem`; returns status and body.
async fn https(addr: SocketAddr, ca_pem: &str, method: &str, path: &str, body: &str) -> Answer {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap();
    roots.add(ca).unwrap();
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let res = tokio::time::timeout(TIMEOUT, send.send_request(req))
        .await
        .expect("HTTPS answer in time")
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_https_with_tls_cert_and_key() {
    let pki = Pki::new();
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.tls_cert = Pki::path(&pki.server_cert);
    cfg.http.tls_key = Pki::path(&pki.server_key);
    let bridge = app::start(cfg).await.unwrap();
    let mut all = Subscriber::new(broker.port, "print2mqtt/+/state").await;
    let addr = bridge.http_addr();

    let health = https(addr, &pki.ca_pem, "GET", "/healthz", "").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let answer = https(addr, &pki.ca_pem, "POST", "/webhook", &webhook("secure")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["printer"], "secure");
    assert_eq!(
        all.until_topic("print2mqtt/secure/state").await.text(),
        "printing"
    );
    let wrong = https(
        addr,
        &pki.ca_pem,
        "POST",
        "/webhook",
        &webhook("x").replace(SECRET, "no"),
    )
    .await;
    assert_eq!(wrong.status, 401);

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, plain.read_to_end(&mut buf))
        .await
        .expect("the connection is closed");
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "{buf:?}");
    bridge.shutdown().await;
}
