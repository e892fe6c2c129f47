//! The URLs a configuration names, parsed and checked once: the broker's
//! `mqtt.url` (and how to print it without its password), and the URLs the
//! bridge sends secrets to or through (`octoeverywhere.public_url`,
//! `api_url`). Imports nothing of the bridge.

use std::net::IpAddr;

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerUrl {
    /// Parses `mqtt://[user[:pass]@]host[:port]` or `mqtts://…`; an empty
    /// string means "use the embedded broker" and gives `None`.
    pub fn parse(url: &str) -> Result<Option<BrokerUrl>, String> {
        if url.trim().is_empty() {
            return Ok(None);
        }
        let shown = redact_url(url);
        let u = url::Url::parse(url).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
        let tls = match u.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => {
                return Err(format!(
                    "unsupported scheme `{other}`: use mqtt://host:1883 or mqtts://host:8883"
                ));
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{shown}` names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(Some(BrokerUrl {
            tls,
            host,
            port: u.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username: Some(u.username()).filter(|s| !s.is_empty()).map(decode),
            password: u.password().map(decode),
        }))
    }
}

impl BrokerUrl {
    /// `mqtt://host:port` (or `mqtts://`), without credentials: how logs,
    /// /readyz and /api/bridge name the broker.
    pub fn shown(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// `url` fit to print: everything between the user name's `:` and the
/// last `@` of the text replaced by `<redacted>` — read as text, not as a
/// URL, so a password that breaks the URL (or holds an `@`) is hidden too.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url[start..].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:<redacted>{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// Checks a URL the bridge sends secrets to or through (`public_url`,
/// `api_url`): `https://`, or `http://` for a loopback host only (tests, a
/// proxy on the same machine); a host; no query or fragment.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(String::from(
                "must start with https:// (http:// only for a loopback host)",
            ));
        }
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(BrokerUrl::parse("").unwrap(), None);
        let u = BrokerUrl::parse("mqtt://127.0.0.1:18830").unwrap().unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (false, "127.0.0.1", 18830)
        );
        let u = BrokerUrl::parse("mqtts://user:p%40ss@broker.lan")
            .unwrap()
            .unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        assert_eq!(u.username.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        let u = BrokerUrl::parse("mqtt://[::1]").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1883));
        assert_eq!(u.shown(), "mqtt://[::1]:1883");
        let u = BrokerUrl::parse("mqtts://u:pw@b.lan").unwrap().unwrap();
        assert_eq!(u.shown(), "mqtts://b.lan:8883");
        assert!(BrokerUrl::parse("http://x").unwrap_err().contains("scheme"));
        assert!(BrokerUrl::parse("localhost:1883").is_err());
        assert!(BrokerUrl::parse("not a url").is_err());
        for (bad, shown) in [
            (
                "mqtt://user:pa ss@broker:99999",
                "mqtt://user:<redacted>@broker:99999",
            ),
            (
                "mqtt://user:p@ss/w@broker:99999",
                "mqtt://user:<redacted>@broker:99999",
            ),
            ("mqtt://user:secret@:1883", "mqtt://user:<redacted>@:1883"),
        ] {
            let err = BrokerUrl::parse(bad).map_or_else(|e| e, |_| shown.to_owned());
            assert!(
                !err.contains("pa ss") && !err.contains("p@ss") && !err.contains("secret"),
                "{err}"
            );
            assert!(err.contains(shown), "{err}");
            assert_eq!(redact_url(bad), shown);
        }
        assert_eq!(
            redact_url("mqtts://u:p%40ss@broker.lan"),
            "mqtts://u:<redacted>@broker.lan"
        );
        assert_eq!(redact_url("mqtt://u@broker"), "mqtt://u@broker");
    }
}
