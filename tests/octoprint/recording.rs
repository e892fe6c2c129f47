//! The recorded OctoPrint-Webhooks requests (tests/fixtures/octoprint-webhooks,
//! one JSON object per line) and the bits of their bodies tests need, read
//! without the bridge's own parsers.
#![allow(dead_code)]

use base64::Engine;

use super::common::fixture;

/// One recorded request.
pub struct Recorded {
    pub seq: u64,
    pub method: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").expect("recorded Content-Type")
    }

    /// Where the JPEG of a multipart body lies, found by its boundary.
    pub fn jpeg_range(&self) -> std::ops::Range<usize> {
        let boundary = self.content_type().split("boundary=").nth(1).unwrap();
        let head = b"filename=\"snapshot.jpg\"";
        let at = find(&self.body, head).expect("a snapshot.jpg part") + head.len();
        let start = at + find(&self.body[at..], b"\r\n\r\n").unwrap() + 4;
        let end = find(&self.body, format!("\r\n--{boundary}--").as_bytes()).unwrap();
        start..end
    }

    /// The JPEG of a multipart body.
    pub fn jpeg(&self) -> Vec<u8> {
        let jpeg = self.body[self.jpeg_range()].to_vec();
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "seq {}", self.seq);
        jpeg
    }

    /// The multipart body with `file` in place of its JPEG.
    pub fn with_file(&self, file: &[u8]) -> Vec<u8> {
        let range = self.jpeg_range();
        [&self.body[..range.start], file, &self.body[range.end..]].concat()
    }

    /// The apiSecret this body carries, read without the bridge's parsers.
    pub fn api_secret(&self) -> String {
        let ct = self.content_type();
        if ct.starts_with("application/json") {
            let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
            v["apiSecret"].as_str().unwrap().to_owned()
        } else if ct.starts_with("application/x-www-form-urlencoded") {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&self.body).unwrap();
            pairs.into_iter().find(|(k, _)| k == "apiSecret").unwrap().1
        } else {
            let head = b"name=\"apiSecret\"\r\n\r\n";
            let start = find(&self.body, head).unwrap() + head.len();
            let len = find(&self.body[start..], b"\r\n").unwrap();
            String::from_utf8(self.body[start..start + len].to_vec()).unwrap()
        }
    }
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every request of a recording, in order.
pub fn recording(name: &str) -> Vec<Recorded> {
    let text = String::from_utf8(fixture(&format!("octoprint-webhooks/{name}"))).unwrap();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let body = base64::engine::general_purpose::STANDARD
                .decode(v["body_b64"].as_str().unwrap())
                .unwrap();
            assert_eq!(body.len() as u64, v["body_len"].as_u64().unwrap());
            Recorded {
                seq: v["seq"].as_u64().unwrap(),
                method: v["method"].as_str().unwrap().to_owned(),
                query: v["query"].as_str().unwrap_or_default().to_owned(),
                headers: v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        let s = |i: usize| h[i].as_str().unwrap().to_owned();
                        (s(0), s(1))
                    })
                    .collect(),
                body,
            }
        })
        .collect()
}
