//! `multipart/form-data` bodies, as the OctoPrint-Webhooks plugin sends them
//! for a template with `@snapshot`: text parts are fields like a form's, the
//! first file part is the snapshot, checked before it is published. A bad
//! image never fails the webhook; a broken body does.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use serde_json::{Map, Value};
use tracing::{debug, warn};

use super::{IngestError, Limits, form};
use crate::slug::slugify;

/// Largest snapshot published; a bigger one is dropped with a warning.
pub const MAX_SNAPSHOT_BYTES: usize = 8 * 1024 * 1024;
/// Every JPEG starts with an SOI marker followed by another marker.
const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// A decoded multipart body.
#[derive(Debug, Default)]
pub struct Multipart {
    /// The text parts, decoded like form fields.
    pub fields: Map<String, Value>,
    /// The first file part, if any (none is common: no webcam configured).
    pub file: Option<Upload>,
}

/// A file part, kept only while it is within [`MAX_SNAPSHOT_BYTES`].
#[derive(Debug)]
pub struct Upload {
    /// The part's name (the key the user gave `@snapshot`).
    pub part: String,
    /// Its size in bytes.
    pub size: usize,
    /// Its content, `None` when it was larger than the limit.
    pub bytes: Option<Bytes>,
}

impl Upload {
    /// The upload as a publishable JPEG, or `None` (with a warning naming the
    /// printer) when it is too large or not a JPEG.
    pub fn into_snapshot(self, printer_id: &str) -> Option<Bytes> {
        let printer = slugify(printer_id);
        let Some(bytes) = self.bytes else {
            warn!(%printer, part = ?self.part, bytes = self.size, limit = MAX_SNAPSHOT_BYTES,
                "Snapshot larger than the limit; dropped, the rest of the webhook is published");
            return None;
        };
        if bytes.is_empty() {
            debug!(%printer, part = ?self.part, "Empty snapshot part ignored");
            None
        } else if !bytes.starts_with(&JPEG_MAGIC) {
            warn!(%printer, part = ?self.part, bytes = self.size,
                "Snapshot is not a JPEG; dropped, the rest of the webhook is published");
            None
        } else {
            Some(bytes)
        }
    }
}

/// Decodes a multipart body whose `Content-Type` is `content_type`; its text
/// parts together may hold at most `limits.max_text_bytes` (the bound of a
/// form body).
pub fn parse(body: &[u8], content_type: &str, limits: Limits) -> Result<Multipart, IngestError> {
    let boundary = multer::parse_boundary(content_type).map_err(|e| {
        IngestError::Multipart(format!(
            "bad Content-Type: {}",
            super::shorten(&e.to_string(), 200)
        ))
    })?;
    // The whole body is in memory, so every future below is ready at once:
    // multer only waits on its input stream, and that stream is one chunk
    // followed by its end. `now_or_never` turns a (never expected) wait into
    // an error instead of blocking a worker thread.
    let chunk = Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(chunk) });
    let mut parts = multer::Multipart::new(stream, boundary);
    read_parts(&mut parts, limits)
        .now_or_never()
        .unwrap_or_else(|| Err(IngestError::Multipart("incomplete body".to_owned())))
}

async fn read_parts(
    parts: &mut multer::Multipart<'_>,
    limits: Limits,
) -> Result<Multipart, IngestError> {
    let mut out = Multipart::default();
    let mut texts = Vec::new();
    let mut text_bytes = 0usize;
    let mut index = 0usize;
    // Each field is dropped at the end of its turn: multer hands out the
    // next one only then.
    while let Some(mut field) = parts.next_field().await.map_err(|e| broken(e, index))? {
        index += 1;
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field.file_name().is_some()
            || field.content_type().is_some_and(|m| m.type_() != "text");
        if is_file {
            let mut buf = BytesMut::new();
            let mut size = 0usize;
            while let Some(chunk) = field.chunk().await.map_err(|e| broken(e, index))? {
                size = size.saturating_add(chunk.len());
                if size <= MAX_SNAPSHOT_BYTES {
                    buf.extend_from_slice(&chunk);
                }
            }
            if out.file.is_some() {
                debug!(part = ?name, "Second file part ignored");
            } else {
                out.file = Some(Upload {
                    part: name,
                    size,
                    bytes: (size <= MAX_SNAPSHOT_BYTES).then(|| buf.freeze()),
                });
            }
        } else {
            let bytes = field.bytes().await.map_err(|e| broken(e, index))?;
            text_bytes = text_bytes.saturating_add(bytes.len());
            if text_bytes > limits.max_text_bytes {
                return Err(IngestError::TooLarge(format!(
                    "multipart text parts larger than {} bytes",
                    limits.max_text_bytes
                )));
            }
            if !name.is_empty() {
                texts.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out.fields = form::to_object(texts, limits.max_json_depth)?;
    Ok(out)
}

/// A multer error as a 400 that says what probably went wrong: before the
/// first part, the boundary was not found at all.
fn broken(e: multer::Error, parts_read: usize) -> IngestError {
    let hint = if parts_read == 0 {
        "no part starts with the boundary named in the Content-Type \
         (wrong boundary, or a truncated body)"
    } else {
        "the body is truncated or malformed"
    };
    // multer names the part, and a part's name is the sender's to choose.
    let e = super::shorten(&e.to_string(), 200);
    IngestError::Multipart(format!("{e}: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, file, data) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            match file {
                Some(f) => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00rest\xFF\xD9";

    #[test]
    fn text_parts_are_fields_and_the_file_is_the_snapshot() {
        let b = body(&[
            ("topic", None, b"Print Started"),
            ("progress", None, br#"{"completion": 0.0}"#),
            ("currentZ", None, b"0.2"),
            ("snapshot", Some("snapshot.jpg"), JPEG),
        ]);
        let m = parse(&b, CT, Limits::default()).unwrap();
        assert_eq!(
            Value::Object(m.fields),
            json!({"topic": "Print Started", "progress": {"completion": 0.0}, "currentZ": "0.2"})
        );
        let file = m.file.unwrap();
        assert_eq!((file.part.as_str(), file.size), ("snapshot", JPEG.len()));
        assert_eq!(file.into_snapshot("p").as_deref(), Some(JPEG));
    }

    #[test]
    fn no_file_part_is_fine() {
        let m = parse(
            &body(&[("topic", None, b"Print Done")]),
            CT,
            Limits::default(),
        )
        .unwrap();
        assert!(m.file.is_none());
        assert_eq!(m.fields["topic"], "Print Done");
    }

    #[test]
    fn bad_images_are_dropped_not_fatal() {
        let png = body(&[("snapshot", Some("snapshot.jpg"), b"\x89PNG\r\n\x1a\n")]);
        let file = parse(&png, CT, Limits::default()).unwrap().file.unwrap();
        assert_eq!(file.into_snapshot("p"), None);

        let mut big = JPEG.to_vec();
        big.resize(MAX_SNAPSHOT_BYTES + 1, 0);
        let file = parse(
            &body(&[("snap", Some("s.jpg"), &big)]),
            CT,
            Limits::default(),
        )
        .unwrap()
        .file
        .unwrap();
        assert_eq!(
            (file.size, file.bytes.is_none()),
            (MAX_SNAPSHOT_BYTES + 1, true)
        );
        assert_eq!(file.into_snapshot("p"), None);

        let mut exact = JPEG.to_vec();
        exact.resize(MAX_SNAPSHOT_BYTES, 0);
        let file = parse(
            &body(&[("snap", Some("s.jpg"), &exact)]),
            CT,
            Limits::default(),
        )
        .unwrap()
        .file
        .unwrap();
        assert_eq!(
            file.into_snapshot("p").map(|b| b.len()),
            Some(MAX_SNAPSHOT_BYTES)
        );
    }

    #[test]
    fn truncated_bodies_and_wrong_boundaries_are_errors() {
        let b = body(&[
            ("topic", None, b"Print Done"),
            ("snapshot", Some("s.jpg"), JPEG),
        ]);
        for cut in [b.len() - 9, b.len() / 2, 10] {
            let err = parse(&b[..cut], CT, Limits::default()).unwrap_err();
            assert!(
                matches!(err, IngestError::Multipart(_)),
                "cut at {cut}: {err:?}"
            );
        }
        let err = parse(&b, "multipart/form-data; boundary=other", Limits::default()).unwrap_err();
        assert!(
            err.to_string().contains("no part starts with the boundary"),
            "{err}"
        );
        let err = parse(&b, "multipart/form-data", Limits::default()).unwrap_err();
        assert!(err.to_string().contains("bad Content-Type"), "{err}");
    }

    #[test]
    fn text_parts_are_bounded() {
        let long = vec![b'a'; Limits::default().max_text_bytes + 1];
        let err = parse(&body(&[("meta", None, &long)]), CT, Limits::default()).unwrap_err();
        assert!(matches!(err, IngestError::TooLarge(_)), "{err:?}");
    }

    #[test]
    fn errors_quote_part_names_briefly() {
        let name = "n".repeat(100_000);
        let b = body(&[(name.as_str(), None, b"x")]);
        let err = parse(&b[..b.len() - 20], CT, Limits::default()).unwrap_err();
        assert!(
            err.to_string().len() < 600,
            "{} bytes",
            err.to_string().len()
        );
    }

    #[test]
    fn broken_json_in_a_part_names_the_field() {
        let err = parse(
            &body(&[("job", None, br#"{"file":"#)]),
            CT,
            Limits::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("field `job` is not valid JSON"),
            "{err}"
        );
    }
}
