//! Reading a webhook body within its limits: the size limit of the
//! encoding the body turns out to be (a body labelled multipart that starts
//! like JSON gets the JSON limit as soon as its first bytes show it), the
//! body deadline, the shared budget of unauthenticated bytes, and the
//! connection's progress for the connection table (a stalled body can be
//! closed to make room).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::guard::{FREE_BYTES, Guard, Held};
use super::limits::{Activity, Limits};

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("body not received in time")]
    Timeout,
    #[error("could not read the body")]
    Unreadable,
    #[error(
        "too many unauthenticated bodies are being read (http.max_unauthenticated_bytes); \
         try again shortly, or send the secret in the URL or a header"
    )]
    Busy,
}

/// How one body is to be read.
#[derive(Debug)]
pub struct Reading<'a> {
    pub limits: &'a Limits,
    /// Labelled `multipart/*`: the multipart limit, while the body looks it.
    pub multipart: bool,
    /// `None` once the request is authenticated: no budget needed.
    pub budget: Option<&'a Guard>,
    /// The connection's activity, told about progress.
    pub activity: Option<&'a Arc<Activity>>,
}

/// Reads the whole body; the held budget goes back when the returned
/// [`Held`] is dropped (after parsing).
pub async fn read(body: Incoming, r: Reading<'_>) -> Result<(Bytes, Held), BodyError> {
    let _reading = r.activity.map(|a| a.reading_body());
    let deadline = tokio::time::Instant::now() + r.limits.body_timeout;
    let mut limit = if r.multipart {
        r.limits.max_multipart
    } else {
        r.limits.max_body
    };
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut held = Held::default();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Unreadable),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let total = buf.len() + data.len();
        if r.multipart && limit > r.limits.max_body && starts_like_json(&buf, &data) {
            limit = r.limits.max_body;
        }
        if total > limit {
            return Err(BodyError::TooLarge(limit));
        }
        if let Some(guard) = r.budget {
            let charged = total.saturating_sub(FREE_BYTES) - buf.len().saturating_sub(FREE_BYTES);
            if !guard.take(&mut held, charged) {
                return Err(BodyError::Busy);
            }
        }
        buf.extend_from_slice(&data);
    }
    Ok((buf.freeze(), held))
}

/// True when the body read so far plus `next` starts with `{` or `[` after
/// whitespace and a byte-order mark.
fn starts_like_json(read: &[u8], next: &[u8]) -> bool {
    let head: Vec<u8> = read.iter().chain(next).copied().take(64).collect();
    let head = head.trim_ascii_start();
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    matches!(head.trim_ascii_start().first(), Some(b'{' | b'['))
}

#[cfg(test)]
mod tests {
    use super::starts_like_json;

    #[test]
    fn json_is_seen_from_its_first_bytes() {
        assert!(starts_like_json(b"", b"  {\"a\""));
        assert!(starts_like_json(b" ", b"["));
        assert!(starts_like_json(b"\xEF\xBB\xBF{", b""));
        assert!(!starts_like_json(b"", b"--boundary\r\n"));
        assert!(!starts_like_json(b"", b""));
    }
}
