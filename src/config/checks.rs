//! Range checks of the listener's limits and the TLS keys of `[http]` and
//! `[mqtt]`: each problem comes back with its key, for `validate()` to name
//! the key and where its value came from.

use super::{Http, Mqtt};
use crate::tls;

/// 1 KiB.
const KIB: u64 = 1024;
/// 1 GiB.
const GIB: u64 = 1024 * 1024 * 1024;

/// (key, lowest, highest, unit) of every bounded number in `[http]`.
const RANGES: [(&str, u64, u64, &str); 10] = [
    ("http.max_body_bytes", KIB, GIB, "bytes"),
    ("http.max_multipart_bytes", KIB, GIB, "bytes"),
    // Never below 64 KiB: OctoEverywhere's relay resends a body that got
    // 431 without any headers (docs/http-api.md).
    ("http.max_header_bytes", 64 * KIB, 1024 * KIB, "bytes"),
    ("http.header_timeout_secs", 1, 3600, "seconds"),
    ("http.body_timeout_secs", 1, 3600, "seconds"),
    ("http.idle_timeout_secs", 1, 86_400, "seconds"),
    ("http.max_connections", 1, 1_000_000, "connections"),
    ("http.max_connections_per_peer", 1, 1_000_000, "connections"),
    (
        "http.max_unauthenticated_bytes",
        1024 * KIB,
        64 * GIB,
        "bytes",
    ),
    // The OctoPrint-Webhooks "get all data" template nests 4 levels deep;
    // serde_json itself stops at 128.
    ("http.max_json_depth", 8, 128, "levels"),
];

impl Http {
    fn value(&self, key: &str) -> u64 {
        match key {
            "http.max_body_bytes" => self.max_body_bytes,
            "http.max_multipart_bytes" => self.max_multipart_bytes,
            "http.max_header_bytes" => self.max_header_bytes,
            "http.header_timeout_secs" => self.header_timeout_secs,
            "http.body_timeout_secs" => self.body_timeout_secs,
            "http.idle_timeout_secs" => self.idle_timeout_secs,
            "http.max_connections" => self.max_connections,
            "http.max_connections_per_peer" => self.max_connections_per_peer,
            "http.max_unauthenticated_bytes" => self.max_unauthenticated_bytes,
            _ => self.max_json_depth,
        }
    }

    /// Every out-of-range limit, and TLS files that are half set or unusable.
    pub(super) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, low, high, unit) in RANGES {
            let v = self.value(key);
            if !(low..=high).contains(&v) {
                out.push((
                    key,
                    format!("{v} is out of range: must be {low} to {high} {unit}"),
                ));
            }
        }
        match (self.tls_cert.is_empty(), self.tls_key.is_empty()) {
            (true, true) => {}
            (false, true) => out.push(("http.tls_key", "must be set when http.tls_cert is".into())),
            (true, false) => out.push(("http.tls_cert", "must be set when http.tls_key is".into())),
            (false, false) => out.extend(pair(
                ("http.tls_cert", &self.tls_cert),
                ("http.tls_key", &self.tls_key),
                |c, k| tls::server_config(c, k).map(drop),
            )),
        }
        out
    }
}

impl Mqtt {
    /// TLS keys set without `mqtts://`, a client certificate without its
    /// key (or the reverse), and files that cannot be used.
    pub(super) fn tls_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let tls = self
            .broker_urls()
            .is_ok_and(|urls| urls.iter().any(|u| u.tls));
        let set = [
            ("mqtt.ca_file", &self.ca_file),
            ("mqtt.client_cert", &self.client_cert),
            ("mqtt.client_key", &self.client_key),
        ];
        for (key, value) in set {
            if !value.is_empty() && !tls {
                out.push((key, "is set, but mqtt.url is not an mqtts:// URL".into()));
            }
        }
        if !tls {
            return out;
        }
        let client = match (self.client_cert.is_empty(), self.client_key.is_empty()) {
            (true, true) => None,
            (false, false) => Some((self.client_cert.as_str(), self.client_key.as_str())),
            (false, true) => {
                out.push((
                    "mqtt.client_key",
                    "must be set when mqtt.client_cert is".into(),
                ));
                return out;
            }
            (true, false) => {
                out.push((
                    "mqtt.client_cert",
                    "must be set when mqtt.client_key is".into(),
                ));
                return out;
            }
        };
        let ca = Some(self.ca_file.as_str()).filter(|c| !c.is_empty());
        if let Some(Err(e)) = ca.map(|path| tls::client_config(Some(path), None)) {
            out.push(("mqtt.ca_file", e.to_string()));
            return out;
        }
        if let Some((cert, key)) = client {
            // Without a CA file the system roots are used; a machine without
            // any is reported when connecting, not as a configuration error.
            out.extend(pair(
                ("mqtt.client_cert", cert),
                ("mqtt.client_key", key),
                |c, k| match tls::client_config(ca, Some((c, k))) {
                    Err(tls::TlsError::NoRoots) => Ok(()),
                    other => other.map(drop),
                },
            ));
        }
        out
    }
}

/// Checks a certificate file, its key file, then `build` with both; the
/// problem is filed under the key of the file at fault.
fn pair(
    (cert_key, cert): (&'static str, &str),
    (key_key, key): (&'static str, &str),
    build: impl FnOnce(&str, &str) -> Result<(), tls::TlsError>,
) -> Option<(&'static str, String)> {
    if let Err(e) = tls::certificates(cert) {
        return Some((cert_key, e.to_string()));
    }
    if let Err(e) = tls::private_key(key) {
        return Some((key_key, e.to_string()));
    }
    build(cert, key).err().map(|e| (key_key, e.to_string()))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use crate::config::{Config, Sources};

    fn load_err() -> String {
        Config::load(&Sources {
            file: None,
            addon_options: Some("none.json".into()),
        })
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn limits_out_of_range_name_key_and_source() {
        figment::Jail::expect_with(|jail| {
            assert_eq!(load_err(), "", "the defaults are valid");
            jail.set_env("PRINT2MQTT_HTTP__MAX_JSON_DEPTH", "0");
            jail.set_env("PRINT2MQTT_HTTP__MAX_HEADER_BYTES", "1024");
            let err = load_err();
            assert!(
                err.contains(
                    "`http.max_json_depth` (from environment variable \
                     PRINT2MQTT_HTTP__MAX_JSON_DEPTH): 0 is out of range: must be 8 to 128 levels"
                ),
                "{err}"
            );
            assert!(
                err.contains("`http.max_header_bytes`") && err.contains("65536"),
                "{err}"
            );
            jail.set_env("PRINT2MQTT_HTTP__MAX_JSON_DEPTH", "-3");
            assert!(load_err().contains("`http.max_json_depth`"));
            Ok(())
        });
    }

    #[test]
    fn tls_keys_come_in_pairs_and_files_must_be_usable() {
        figment::Jail::expect_with(|jail| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            jail.create_file("cert.pem", &cert.pem())?;
            jail.create_file("key.pem", &key.serialize_pem())?;
            let other = rcgen::KeyPair::generate().unwrap();
            jail.create_file("other.pem", &other.serialize_pem())?;

            jail.set_env("PRINT2MQTT_HTTP__TLS_CERT", "cert.pem");
            let err = load_err();
            assert!(
                err.contains("`http.tls_key`") && err.contains("must be set when http.tls_cert is"),
                "{err}"
            );
            jail.set_env("PRINT2MQTT_HTTP__TLS_KEY", "key.pem");
            assert_eq!(load_err(), "");
            jail.set_env("PRINT2MQTT_HTTP__TLS_KEY", "other.pem");
            let err = load_err();
            assert!(
                err.contains("`http.tls_key`") && err.contains("do not fit"),
                "{err}"
            );
            jail.set_env("PRINT2MQTT_HTTP__TLS_KEY", "key.pem");
            jail.set_env("PRINT2MQTT_HTTP__TLS_CERT", "missing.pem");
            let err = load_err();
            assert!(
                err.contains("`http.tls_cert`") && err.contains("cannot read missing.pem"),
                "{err}"
            );
            jail.set_env("PRINT2MQTT_HTTP__TLS_CERT", "cert.pem");

            jail.set_env("PRINT2MQTT_MQTT__CA_FILE", "cert.pem");
            jail.set_env("PRINT2MQTT_MQTT__URL", "mqtt://localhost");
            let err = load_err();
            assert!(
                err.contains("`mqtt.ca_file`") && err.contains("not an mqtts:// URL"),
                "{err}"
            );
            jail.set_env("PRINT2MQTT_MQTT__URL", "mqtts://localhost");
            assert_eq!(load_err(), "");
            jail.set_env("PRINT2MQTT_MQTT__CA_FILE", "key.pem");
            assert!(load_err().contains("`mqtt.ca_file`"));
            jail.set_env("PRINT2MQTT_MQTT__CA_FILE", "cert.pem");
            jail.set_env("PRINT2MQTT_MQTT__CLIENT_CERT", "cert.pem");
            let err = load_err();
            assert!(err.contains("`mqtt.client_key`"), "{err}");
            jail.set_env("PRINT2MQTT_MQTT__CLIENT_KEY", "key.pem");
            assert_eq!(load_err(), "");
            Ok(())
        });
    }
}
