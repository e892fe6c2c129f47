//! Where a request says it comes from, and whether a browser made it for
//! another site: `Sec-Fetch-Site`, `Origin` and `Referer` against the
//! bridge's own `Host` (webhooks refuse cross-site requests), the `Host`
//! names the status page answers to without an admin token (DNS
//! rebinding), and the `Forwarded` header (RFC 7239) read like
//! `X-Forwarded-For`.

use std::net::IpAddr;

use http::{HeaderMap, header};

/// Why a request is taken as a browser's request for another site, if it
/// is. Real senders (OctoEverywhere, python-requests, curl) send none of
/// these headers; browsers send `Origin` with every POST, `Referer` unless
/// the page suppresses it, `Sec-Fetch-Site` to HTTPS and loopback, and an
/// `Accept` that starts with an image or HTML type when they load an image
/// or a page (an `<img>`, a link, a GET form), whatever the referrer policy.
pub fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = text(headers, "sec-fetch-site") {
        let site = site.trim().to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Some(format!(
                "cross-site browser request refused (Sec-Fetch-Site: {})",
                short(&site)
            ));
        }
    }
    let host = text(headers, header::HOST.as_str()).map(|h| h.trim().to_ascii_lowercase());
    for name in [header::ORIGIN, header::REFERER] {
        let Some(value) = text(headers, name.as_str()) else {
            continue;
        };
        if !same_host(&value, host.as_deref()) {
            return Some(format!(
                "cross-site browser request refused ({}: {})",
                name.as_str(),
                short(value.trim())
            ));
        }
    }
    let accept = text(headers, header::ACCEPT.as_str()).unwrap_or_default();
    let first = accept
        .split([',', ';'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if first.starts_with("image/") || first == "text/html" {
        return Some(format!(
            "cross-site browser request refused (Accept: {}: an image or page load)",
            short(&first)
        ));
    }
    None
}

/// True when `url`'s `host[:port]` is `host` (the request's `Host`).
/// `Origin: null` and anything that is not a URL are foreign.
fn same_host(url: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let Ok(u) = url::Url::parse(url.trim()) else {
        return false;
    };
    let Some(name) = u.host_str() else {
        return false;
    };
    let authority = match u.port() {
        Some(p) => format!("{name}:{p}"),
        None => name.to_owned(),
    };
    // The default port may or may not be spelled in `Host`.
    let default = u.port_or_known_default().map(|p| format!("{name}:{p}"));
    authority == host || default.as_deref() == Some(host)
}

/// Why a `Host` is not one the status page answers to without an admin
/// token: local names (`localhost`, one-label names, `.local`, `.lan`,
/// `.home.arpa`, `.internal`), IP literals and `allowed` names pass; any
/// other name may be an attacker's domain rebound to this address. A
/// request without `Host` (HTTP/1.0 tools) is not a browser's.
pub fn foreign_host(headers: &HeaderMap, allowed: &[String]) -> Option<String> {
    let host = text(headers, header::HOST.as_str())?;
    let name = hostname(host.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let name = name.as_str();
    let ip = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name)
        .parse::<IpAddr>()
        .is_ok();
    let local = !name.contains('.')
        || [".localhost", ".local", ".lan", ".home.arpa", ".internal"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
    let configured = allowed
        .iter()
        .any(|a| a.trim().trim_end_matches('.').eq_ignore_ascii_case(name));
    (!(ip || local || configured) || name.is_empty()).then(|| {
        format!(
            "Host `{}` is not a name of this bridge: open it by IP address or a local name, \
             add the name to http.allowed_hosts, or set http.admin_token",
            short(name)
        )
    })
}

/// The host without its port (`[::1]:8123` -> `[::1]`).
fn hostname(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons; only `name:port` is cut.
        Some((h, _)) if !h.contains(':') => h,
        _ => host,
    }
}

/// The `for=` addresses of every `Forwarded` header, in order; an entry
/// that is not an address (`unknown`, `_hidden`, garbage) is `None`.
pub fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let text = String::from_utf8_lossy(value.as_bytes());
        for element in text.split(',') {
            for pair in element.split(';') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                if key.trim().eq_ignore_ascii_case("for") {
                    out.push(node_address(value.trim().trim_matches('"')));
                }
            }
        }
    }
    out
}

/// `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.parse()
        .ok()
        .or_else(|| node.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// What a sender sent, cut to a length fit for an answer.
fn short(s: &str) -> String {
    crate::ingest::shorten(s, 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_support::headers;

    #[test]
    fn browsers_on_other_sites_are_recognised() {
        let host = ("host", "192.168.1.5:8080");
        for refused in [
            vec![host, ("sec-fetch-site", "cross-site")],
            vec![host, ("sec-fetch-site", "same-site")],
            vec![host, ("origin", "https://evil.example")],
            vec![host, ("origin", "null")],
            vec![host, ("origin", "http://192.168.1.5:8081")],
            vec![host, ("referer", "http://evil.example/page.html")],
            vec![host, ("accept", "image/avif,image/webp,image/*,*/*;q=0.8")],
            vec![host, ("accept", "text/html,application/xhtml+xml;q=0.9")],
            vec![("origin", "http://192.168.1.5:8080")],
        ] {
            let why = cross_site(&headers(&refused));
            assert!(
                why.as_deref().is_some_and(|w| w.starts_with("cross-site")),
                "{refused:?}"
            );
        }
        for allowed in [
            vec![host],
            vec![host, ("sec-fetch-site", "same-origin")],
            vec![host, ("sec-fetch-site", "none")],
            vec![host, ("origin", "http://192.168.1.5:8080")],
            vec![("host", "bridge.lan"), ("origin", "http://bridge.lan")],
            vec![("host", "bridge.lan:80"), ("origin", "http://bridge.lan")],
            vec![host, ("referer", "http://192.168.1.5:8080/")],
            vec![host, ("accept", "*/*")],
            vec![host, ("accept", "application/json, text/plain, */*")],
            vec![],
        ] {
            assert_eq!(cross_site(&headers(&allowed)), None, "{allowed:?}");
        }
    }

    #[test]
    fn only_local_names_ip_literals_and_configured_names() {
        let allowed = vec!["prints.example.org".to_owned()];
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.168.1.5",
            "homeassistant:8080",
            "printers.local",
            "bridge.lan:8080",
            "a.home.arpa",
            "Prints.Example.org.",
        ] {
            assert_eq!(
                foreign_host(&headers(&[("host", ok)]), &allowed),
                None,
                "{ok}"
            );
        }
        assert_eq!(foreign_host(&HeaderMap::new(), &allowed), None);
        for bad in [
            "rebind.evil.example",
            "rebind.evil.example:8080",
            "localhost.evil.example",
            "",
        ] {
            assert!(
                foreign_host(&headers(&[("host", bad)]), &allowed).is_some(),
                "{bad}"
            );
        }
    }

    #[test]
    fn forwarded_for_entries() {
        let h = headers(&[
            (
                "forwarded",
                "for=203.0.113.7;proto=https, For=\"[2001:db8::1]:4711\"",
            ),
            ("forwarded", "for=unknown;by=10.0.0.1, for=10.1.2.3:80"),
        ]);
        assert_eq!(
            forwarded_for(&h),
            vec![
                Some("203.0.113.7".parse().unwrap()),
                Some("2001:db8::1".parse().unwrap()),
                None,
                Some("10.1.2.3".parse().unwrap()),
            ]
        );
    }
}
