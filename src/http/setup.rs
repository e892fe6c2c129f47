//! The status page's setup panel: the webhook URLs to paste into
//! OctoEverywhere and the OctoPrint-Webhooks plugin, built from how the
//! browser reached the bridge (or `octoeverywhere.public_url`), the
//! plugin's data template, and how the secret travels — never the secret.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::config::Config;

/// The plugin's "get all data" template (docs/senders.md#setting-up-the-plugin).
pub const OCTOPRINT_TEMPLATE: &str = r#"{
  "deviceIdentifier": "@deviceIdentifier",
  "apiSecret": "@apiSecret",
  "topic": "@topic",
  "message": "@message",
  "extra": "@extra",
  "state": "@state",
  "job": "@job",
  "progress": "@progress",
  "currentZ": "@currentZ",
  "offsets": "@offsets",
  "meta": "@meta",
  "currentTime": "@currentTime",
  "snapshot": "@snapshot"
}"#;

/// The setup panel's content for a request with these headers.
pub fn setup(config: &Config, headers: &HeaderMap) -> Value {
    let local = request_base(config, headers);
    let public = config
        .octoeverywhere
        .public_url
        .trim()
        .trim_end_matches('/');
    let oe_base = if public.is_empty() {
        local.clone()
    } else {
        public.to_owned()
    };
    let secret = !config.auth.secret.is_empty();
    let per_printer = config.printers.values().any(|p| !p.secret.is_empty());
    let oe_secret = if secret {
        "Enter the bridge's secret (auth.secret) in the webhook's Secret Key field; it arrives in the body as SecretKey."
    } else {
        "No secret is set: the bridge accepts webhooks only from loopback and private-network senders. OctoEverywhere's cloud delivers from the internet, so set auth.secret and enter it in the webhook's Secret Key field."
    };
    let op_secret = if secret {
        "Enter the bridge's secret (auth.secret) in the plugin's API Secret field; the template sends it as apiSecret. An X-Print2mqtt-Secret header or ?token= in the URL work too."
    } else {
        "No secret is set: leave the plugin's API Secret empty. Webhooks are accepted from loopback and private-network senders only, which covers OctoPrint on your LAN."
    };
    json!({
        "secret_configured": secret,
        "per_printer_secrets": per_printer,
        "octoeverywhere": {
            "url": format!("{oe_base}/webhook/octoeverywhere"),
            "secret": oe_secret,
        },
        "octoprint": {
            "url": format!("{local}/webhook/octoprint"),
            "method": "POST",
            "content_type": "JSON",
            "template": OCTOPRINT_TEMPLATE,
            "secret": op_secret,
        },
    })
}

/// `scheme://host[:port]` as the browser reached the bridge. Under Home
/// Assistant ingress (`X-Ingress-Path`) the browser talks to Home
/// Assistant, so senders need the bridge's own port on that host instead.
fn request_base(config: &Config, headers: &HeaderMap) -> String {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let port = config.http.listen.port();
    let host = first("x-forwarded-host")
        .or_else(|| first("host"))
        .filter(|h| valid_host(h));
    let Some(host) = host else {
        return format!("http://<bridge-address>:{port}");
    };
    if headers.contains_key("x-ingress-path") {
        return format!("http://{}:{port}", hostname(host));
    }
    let scheme = match first("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

/// A host header value that can go into a URL as it is.
fn valid_host(h: &str) -> bool {
    h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

/// The host without its port (`[::1]:8123` -> `[::1]`).
fn hostname(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(config: &Config, pairs: &[(&'static str, &str)]) -> (String, String) {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        let s = setup(config, &h);
        (
            s["octoeverywhere"]["url"].as_str().unwrap().to_owned(),
            s["octoprint"]["url"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn urls_follow_the_request() {
        let mut c = Config::default();
        assert_eq!(
            urls(&c, &[("host", "192.168.1.5:8080")]).1,
            "http://192.168.1.5:8080/webhook/octoprint"
        );
        let proxied = [
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "prints.example.org"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(
            urls(&c, &proxied).0,
            "https://prints.example.org/webhook/octoeverywhere"
        );
        let ingress = [
            ("host", "local-print2mqtt:8080"),
            ("x-forwarded-host", "homeassistant.local:8123"),
            ("x-ingress-path", "/api/hassio_ingress/abc"),
        ];
        assert_eq!(
            urls(&c, &ingress).1,
            "http://homeassistant.local:8080/webhook/octoprint"
        );
        assert_eq!(
            urls(&c, &[("host", "evil\"><script>")]).1,
            "http://<bridge-address>:8080/webhook/octoprint"
        );
        c.octoeverywhere.public_url = "https://prints.example.org/".into();
        assert_eq!(
            urls(&c, &[("host", "10.0.0.2:8080")]),
            (
                "https://prints.example.org/webhook/octoeverywhere".into(),
                "http://10.0.0.2:8080/webhook/octoprint".into()
            )
        );
    }

    #[test]
    fn never_shows_the_secret() {
        let mut c = Config::default();
        c.auth.secret = crate::config::Secret::new("hunter2-secret");
        let s = setup(&c, &HeaderMap::new()).to_string();
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("\"secret_configured\":true"));
    }
}
