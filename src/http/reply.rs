//! HTTP answers: small JSON bodies, the same shape for every endpoint, and
//! the body type that also carries the status page's event stream.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::json;

/// The body of every answer: a whole buffer, or a stream (Server-Sent Events).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The response type of every handler.
pub type Reply = Response<Body>;

/// An answer with a whole body of `content_type`.
pub fn bytes(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON answer.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Reply {
    bytes(status, "application/json", body.to_string())
}

/// `{"error": "..."}` with `status`.
pub fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &json!({ "error": message }))
}

/// 405 naming the allowed methods.
pub fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed; use {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Reply {
    bytes(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}
