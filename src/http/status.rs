//! The status page: routes for the page, its embedded assets (rust-embed),
//! the login form, the JSON API and `/metrics`, behind the access rule.
//! Every URL the page uses is relative; under Home Assistant ingress the
//! page gets a `<base>` from `X-Ingress-Path`, so it works under any prefix.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use rust_embed::RustEmbed;

use super::access::{self, Access};
use super::reply::{self, Reply};
use super::{Shared, api, sse};

/// The page's files, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Content types by file extension.
const TYPES: [(&str, &str); 5] = [
    ("html", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
];
/// Nothing but this origin: no CDN, no external images, no inline code.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
     connect-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'";
/// The placeholder in the HTML files that becomes the `<base>` element.
const BASE: &str = "<base href=\"./\">";
/// The placeholder in login.html for a failed attempt's message.
const LOGIN_ERROR: &str = "<!--error-->";
/// Largest login form body.
const MAX_LOGIN_BODY: usize = 4096;

/// Handles the status page's paths; hands any other request back.
pub async fn route(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
    path: &str,
) -> Result<Reply, Request<Incoming>> {
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let headers = req.headers();
    match path {
        "/" | "/index.html" => {
            return Ok(if !is_get {
                reply::method_not_allowed("GET")
            } else {
                match access::check_request(&shared.config, peer.ip(), &req) {
                    Access::Allowed => page("index.html", StatusCode::OK, headers, None),
                    denied @ Access::ForeignHost(_) => access::refused(denied),
                    Access::TokenRequired => login_page(StatusCode::UNAUTHORIZED, headers, None),
                    Access::NotLocal => reply::text(
                        StatusCode::FORBIDDEN,
                        "The print2mqtt status page answers only loopback and private-network clients.\nSet http.admin_token to open it to others.\n",
                    ),
                }
            });
        }
        "/login" => {
            return Ok(match method {
                Method::GET | Method::HEAD => login_page(StatusCode::OK, headers, None),
                Method::POST => login(shared, peer, req).await,
                _ => reply::method_not_allowed("GET, POST"),
            });
        }
        "/logout" => {
            return Ok(if method == Method::POST {
                let mut r = see_other();
                set_cookie(
                    &mut r,
                    &access::clear_cookie(&cookie_path(headers), secure(&req)),
                );
                r
            } else {
                reply::method_not_allowed("POST")
            });
        }
        _ => {}
    }
    if path == "/metrics" || path == "/api" || path.starts_with("/api/") {
        let access = access::check_request(&shared.config, peer.ip(), &req);
        if access != Access::Allowed {
            return Ok(access::refused(access));
        }
        let mut r = api_route(shared, req, path, &method).await;
        r.headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        return Ok(r);
    }
    match asset_name(path) {
        Some(name) if is_get => Ok(asset(name)),
        Some(_) => Ok(reply::method_not_allowed("GET")),
        None => Err(req),
    }
}

async fn api_route(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    path: &str,
    method: &Method,
) -> Reply {
    let get = *method == Method::GET || *method == Method::HEAD;
    let json = |v: serde_json::Value| reply::json(StatusCode::OK, &v);
    if let Some(rest) = path.strip_prefix("/api/printers/") {
        let (segment, snapshot) = match rest.strip_suffix("/snapshot") {
            Some(p) => (p, true),
            None => (rest, false),
        };
        let Some(printer) = percent_decode(segment) else {
            return reply::error(StatusCode::BAD_REQUEST, "printer is not valid UTF-8");
        };
        return match (snapshot, method) {
            (true, _) if get => api::snapshot(shared, &printer).await,
            (true, _) => reply::method_not_allowed("GET"),
            (false, &Method::DELETE) => api::remove_printer(shared, &printer).await,
            (false, _) if get => api::printer(shared, &printer),
            (false, _) => reply::method_not_allowed("GET, DELETE"),
        };
    }
    match path {
        "/api/test" if *method == Method::POST => api::test_event(shared, req).await,
        "/api/test" => reply::method_not_allowed("POST"),
        "/api/bridge/parked/retry" if *method == Method::POST => {
            api::retry_parked(shared, req.headers()).await
        }
        "/api/bridge/parked/retry" => reply::method_not_allowed("POST"),
        "/api/bridge/parked" if get => api::parked(shared).await,
        "/api/bridge/parked" => reply::method_not_allowed("GET"),
        "/api/printers" | "/api/events" | "/api/bridge" | "/api/setup" | "/api/stream"
        | "/metrics"
            if !get =>
        {
            reply::method_not_allowed("GET")
        }
        "/api/printers" => json(api::printers(shared)),
        "/api/events" => json(api::events(shared)),
        "/api/bridge" => json(api::bridge(shared)),
        "/api/setup" => json(api::setup_panel(shared, req.headers())),
        "/api/stream" => sse::stream(shared.clone()),
        "/metrics" => api::metrics(shared),
        _ => reply::error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `POST /login` with `token=<http.admin_token>`: sets the session cookie.
async fn login(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> Reply {
    let headers = req.headers().clone();
    let token = &shared.config.http.admin_token;
    if token.is_empty() {
        return see_other();
    }
    if let Err(wait) = shared.guard.login_attempt(peer.ip()) {
        let mut r = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            Some("Too many attempts; wait a minute."),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let https = secure(&req);
    let body = match Limited::new(req.into_body(), MAX_LOGIN_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "login form unreadable or too large",
            );
        }
    };
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let presented = form
        .iter()
        .find(|(k, _)| k == "token")
        .map_or("", |(_, v)| v.as_str());
    if !access::token_matches(token, presented.trim()) {
        return login_page(StatusCode::UNAUTHORIZED, &headers, Some("Wrong token."));
    }
    let mut r = see_other();
    let cookie = access::session_cookie(token, &cookie_path(&headers), https);
    set_cookie(&mut r, &cookie);
    r
}

fn login_page(status: StatusCode, headers: &HeaderMap, error: Option<&str>) -> Reply {
    let message = error.map(|e| format!("<p class=\"login-error\" role=\"alert\">{e}</p>"));
    page("login.html", status, headers, message.as_deref())
}

/// An HTML file with its `<base>` set for the request's ingress prefix.
fn page(name: &str, status: StatusCode, headers: &HeaderMap, error: Option<&str>) -> Reply {
    let Some(file) = Assets::get(name) else {
        return reply::error(StatusCode::NOT_FOUND, "not found");
    };
    let html = String::from_utf8_lossy(&file.data)
        .replacen(BASE, &format!("<base href=\"{}\">", base(headers)), 1)
        .replacen(LOGIN_ERROR, error.unwrap_or(""), 1);
    let mut r = reply::bytes(status, "text/html; charset=utf-8", html);
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn asset(name: &str) -> Reply {
    let Some(file) = Assets::get(name) else {
        return reply::error(StatusCode::NOT_FOUND, "not found");
    };
    let ext = name.rsplit('.').next().unwrap_or("");
    let content_type = TYPES
        .iter()
        .find(|(e, _)| *e == ext)
        .map_or("application/octet-stream", |(_, t)| t);
    let mut r = reply::bytes(StatusCode::OK, content_type, file.data.into_owned());
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The embedded file a path names: `/app.js` -> `app.js`. HTML pages are
/// served only through their routes.
fn asset_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix('/')?;
    let plain = !name.is_empty() && !name.contains('/') && !name.ends_with(".html");
    (plain && Assets::get(name).is_some()).then_some(name)
}

/// The URL prefix the browser sees: Home Assistant ingress sends it as
/// `X-Ingress-Path` (`/api/hassio_ingress/<token>`); anything that is not a
/// plain path is ignored.
pub fn ingress_path(headers: &HeaderMap) -> Option<&str> {
    let p = headers.get("x-ingress-path")?.to_str().ok()?;
    let p = p.trim_end_matches('/');
    let plain = p.starts_with('/')
        && !p.contains("//")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b));
    plain.then_some(p)
}

fn base(headers: &HeaderMap) -> String {
    ingress_path(headers).map_or_else(|| "./".to_owned(), |p| format!("{p}/"))
}

fn cookie_path(headers: &HeaderMap) -> String {
    ingress_path(headers).map_or_else(|| "/".to_owned(), |p| format!("{p}/"))
}

/// True when the browser talks HTTPS: over the HTTPS listener, or behind a
/// proxy that says so.
fn secure<B>(req: &Request<B>) -> bool {
    req.extensions().get::<super::conn::Https>().is_some()
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// 303 to the page, relative so it stays under any prefix.
fn see_other() -> Reply {
    let mut r = reply::bytes(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("./"));
    r
}

fn set_cookie(r: &mut Reply, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
}

/// Decodes `%XX` escapes of one path segment; `None` if the result is not
/// UTF-8. A `%` without two hex digits stays as it is.
fn percent_decode(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::http::test_support::headers;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        headers(&[(name, value)])
    }

    #[test]
    fn ingress_prefix_becomes_the_base() {
        let h = with("x-ingress-path", "/api/hassio_ingress/abc-DEF_1");
        assert_eq!(base(&h), "/api/hassio_ingress/abc-DEF_1/");
        assert_eq!(base(&HeaderMap::new()), "./");
        for hostile in ["\"><script>", "//evil.example/x", "api/x", "/a b"] {
            assert_eq!(base(&with("x-ingress-path", hostile)), "./", "{hostile}");
        }
    }

    #[test]
    fn assets_are_embedded_and_typed() {
        assert_eq!(asset_name("/app.js"), Some("app.js"));
        assert_eq!(
            asset_name("/index.html"),
            None,
            "pages go through their routes"
        );
        assert_eq!(asset_name("/../Cargo.toml"), None);
        assert_eq!(asset_name("/nope.js"), None);
        let r = asset("style.css");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
        let page = page("index.html", StatusCode::OK, &HeaderMap::new(), None);
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'")
        );
    }

    #[test]
    fn printer_segments_are_percent_decoded() {
        assert_eq!(percent_decode("ender_3").as_deref(), Some("ender_3"));
        assert_eq!(percent_decode("Ender%203").as_deref(), Some("Ender 3"));
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b+c"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
