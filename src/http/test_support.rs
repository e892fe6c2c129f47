//! Helpers the http module's unit tests share.

use http::HeaderMap;

/// A header map from `(name, value)` pairs, in order (repeats append).
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        // Test values are written to be valid header values.
        h.append(*k, v.parse().unwrap());
    }
    h
}
