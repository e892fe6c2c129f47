//! The embedded MQTT broker (rumqttd), started while `mqtt.url` is empty so
//! the bridge runs on a machine with nothing else installed.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use tracing::{error, info};

use super::MAX_PACKET;

/// Starts the broker on `listen` in its own threads and returns once it
/// accepts connections.
pub fn start(listen: SocketAddr) -> anyhow::Result<()> {
    // rumqttd binds inside its own thread and only logs a failure there:
    // check the address first so a taken port is a clear start-up error.
    match TcpListener::bind(listen) {
        Ok(probe) => drop(probe),
        Err(e) if e.kind() == ErrorKind::AddrInUse => anyhow::bail!(
            "embedded broker cannot listen on {listen} (broker.listen): {e}. Another MQTT \
             broker probably has the port (installing Debian's mosquitto package starts one): \
             use it with PRINT2MQTT_MQTT__URL=mqtt://{}, stop it \
             (sudo systemctl disable --now mosquitto), or move the embedded broker with \
             PRINT2MQTT_BROKER__LISTEN=127.0.0.1:<another port>",
            connect_addr(listen)
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!("embedded broker cannot listen on {listen} (broker.listen)")
            });
        }
    }
    let server = ServerSettings {
        name: "print2mqtt-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PACKET,
            max_inflight_count: 5_000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 5_000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            if let Err(e) = Broker::new(config).start() {
                error!(error = %e, "Embedded MQTT broker stopped");
            }
        })
        .context("cannot start the embedded broker thread")?;
    let target = connect_addr(listen);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("embedded broker did not start listening on {listen}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    info!(%listen, "Embedded MQTT broker started (set mqtt.url to use your own)");
    Ok(())
}

/// The address a local client uses to reach a listener on `listen`.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let mut addr = listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A taken port (Debian's mosquitto service on 1883, say) is an error
    /// that names the ways out.
    #[test]
    fn a_taken_port_names_the_fix() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = start(addr).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "embedded broker cannot listen on {addr} (broker.listen)"
            )),
            "{e}"
        );
        for fix in [
            format!("PRINT2MQTT_MQTT__URL=mqtt://{addr}"),
            "systemctl disable --now mosquitto".into(),
            "PRINT2MQTT_BROKER__LISTEN=".into(),
        ] {
            assert!(e.contains(&fix), "{fix} not in: {e}");
        }
    }
}
