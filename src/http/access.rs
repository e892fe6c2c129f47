//! Who may see the status page, the API and `/metrics`: with
//! `http.admin_token` empty, loopback and private-network clients only
//! (proxies' forwarded-for addresses included) that name the bridge by a
//! local name, an IP address or a configured name (a DNS-rebinding page
//! names its own domain); with it set, everyone who
//! presents it — as a Bearer header, or as the session cookie the login
//! form sets. The cookie holds an expiry and an HMAC of it keyed by the
//! token, never the token; changing the token ends every session.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::reply::{self, Reply};
use super::{origin, webhook};
use crate::auth;
use crate::config::{Config, Secret};

/// Marks a request that came through the Home Assistant ingress listener:
/// the Supervisor's proxy chose its `Host`, not a browser.
#[derive(Debug, Clone, Copy)]
pub struct Ingress;

/// The session cookie's name.
pub const COOKIE: &str = "print2mqtt_session";
/// How long a login lasts.
const SESSION_SECS: u64 = 30 * 24 * 3600;

/// The access rule's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// A token is configured and the request did not present it.
    TokenRequired,
    /// No token is configured and the client is not on the local network.
    NotLocal,
    /// No token is configured and the request names the bridge by a name
    /// that is not its own (DNS rebinding); the reason says which.
    ForeignHost(String),
}

/// Applies the rule to one request, `Host` included.
pub fn check_request<B>(config: &Config, peer: IpAddr, req: &http::Request<B>) -> Access {
    let http = &config.http;
    let access = check(&http.admin_token, peer, req.headers());
    if access != Access::Allowed
        || !http.admin_token.is_empty()
        || req.extensions().get::<Ingress>().is_some()
    {
        return access;
    }
    let public = url::Url::parse(&config.octoeverywhere.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned));
    let allowed: Vec<String> = http.allowed_hosts.iter().cloned().chain(public).collect();
    match origin::foreign_host(req.headers(), &allowed) {
        Some(why) => Access::ForeignHost(why),
        None => Access::Allowed,
    }
}

/// Applies the rule to one request.
pub fn check(token: &Secret, peer: IpAddr, headers: &HeaderMap) -> Access {
    if token.is_empty() {
        let senders = webhook::senders(peer, headers);
        return if senders.iter().all(|ip| auth::is_local(*ip)) {
            Access::Allowed
        } else {
            Access::NotLocal
        };
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    if let Some(b) = bearer
        && auth::check(token, &[b], &[]).is_ok()
    {
        return Access::Allowed;
    }
    if cookie(headers, COOKIE).is_some_and(|c| session_valid(token, c, now_secs())) {
        return Access::Allowed;
    }
    Access::TokenRequired
}

/// The JSON answer for a refused API request.
pub fn refused(access: Access) -> Reply {
    match access {
        Access::ForeignHost(why) => reply::error(StatusCode::MISDIRECTED_REQUEST, &why),
        Access::NotLocal => reply::error(
            StatusCode::FORBIDDEN,
            "only loopback and private-network clients may use this; set http.admin_token to allow others",
        ),
        _ => {
            let mut r = reply::error(
                StatusCode::UNAUTHORIZED,
                "admin token required: send Authorization: Bearer <http.admin_token>, or log in on the status page",
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"print2mqtt\""),
            );
            r
        }
    }
}

/// True if `presented` is the admin token (constant time).
pub fn token_matches(token: &Secret, presented: &str) -> bool {
    !token.is_empty() && !presented.is_empty() && auth::check(token, &[presented], &[]).is_ok()
}

/// A `Set-Cookie` value starting a session, scoped to `path`.
pub fn session_cookie(token: &Secret, path: &str, secure: bool) -> String {
    let expires = now_secs() + SESSION_SECS;
    let value = format!("{expires}.{}", mac(token, expires));
    cookie_header(&value, path, secure, SESSION_SECS)
}

/// A `Set-Cookie` value ending the session.
pub fn clear_cookie(path: &str, secure: bool) -> String {
    cookie_header("", path, secure, 0)
}

fn cookie_header(value: &str, path: &str, secure: bool, max_age: u64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

fn session_valid(token: &Secret, value: &str, now: u64) -> bool {
    let Some((expires, presented)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    expires > now && bool::from(mac(token, expires).as_bytes().ct_eq(presented.as_bytes()))
}

fn mac(token: &Secret, expires: u64) -> String {
    // HMAC takes keys of any length.
    let mut m = Hmac::<Sha256>::new_from_slice(token.expose().as_bytes())
        .expect("HMAC accepts any key length");
    m.update(format!("print2mqtt session {expires}").as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_support::headers;

    #[test]
    fn without_a_token_only_local_clients() {
        let none = Secret::default();
        let local = IpAddr::from([127, 0, 0, 1]);
        let lan = IpAddr::from([172, 30, 32, 2]);
        assert_eq!(check(&none, local, &HeaderMap::new()), Access::Allowed);
        assert_eq!(check(&none, lan, &HeaderMap::new()), Access::Allowed);
        let public = IpAddr::from([203, 0, 113, 1]);
        assert_eq!(check(&none, public, &HeaderMap::new()), Access::NotLocal);
        let forwarded = headers(&[("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(check(&none, local, &forwarded), Access::NotLocal);
    }

    #[test]
    fn with_a_token_bearer_or_session_from_anywhere() {
        let token = Secret::new("adm");
        let public = IpAddr::from([203, 0, 113, 1]);
        let local = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(
            check(&token, local, &HeaderMap::new()),
            Access::TokenRequired
        );
        let bearer = headers(&[("authorization", "Bearer adm")]);
        assert_eq!(check(&token, public, &bearer), Access::Allowed);
        let wrong = headers(&[("authorization", "Bearer adm2")]);
        assert_eq!(check(&token, public, &wrong), Access::TokenRequired);

        let set = session_cookie(&token, "/", false);
        assert!(!set.contains("adm;") && !set.contains("=adm"), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        let value = set.split(';').next().unwrap().to_owned();
        let with = headers(&[("cookie", &format!("theme=dark; {value}"))]);
        assert_eq!(check(&token, public, &with), Access::Allowed);
        let other = Secret::new("changed");
        assert_eq!(check(&other, public, &with), Access::TokenRequired);
        let forged = headers(&[("cookie", "print2mqtt_session=99999999999.00")]);
        assert_eq!(check(&token, public, &forged), Access::TokenRequired);
    }

    #[test]
    fn sessions_expire() {
        let token = Secret::new("adm");
        let value = format!("100.{}", mac(&token, 100));
        assert!(session_valid(&token, &value, 99));
        assert!(!session_valid(&token, &value, 100));
    }
}
