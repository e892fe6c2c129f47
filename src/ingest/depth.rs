//! JSON nesting depth and size, measured before parsing: one pass over the
//! bytes counting `{` and `[` outside strings, so a deeply nested body is
//! refused by `http.max_json_depth` with a clear message (serde_json's own
//! recursion limit, 128, stays the backstop), and counting values, so a body
//! of a million tiny array elements never becomes a million 32-byte values.

/// Most values (keys included) one JSON text may hold: the OctoPrint-Webhooks
/// "get all data" template has about 100, an OctoEverywhere body about 20;
/// 20,000 leaves room for 5,000 unknown properties (ignored, never an error).
pub const MAX_VALUES: usize = 20_000;

/// The bytes of `json` outside strings, string quotes left out: the only
/// ones that open, close or separate values.
fn structure(json: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut in_string = false;
    let mut escaped = false;
    json.iter().copied().filter(move |&b| {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            return false;
        }
        if b == b'"' {
            in_string = true;
            return false;
        }
        true
    })
}

/// An upper bound of the number of values (object keys included) in `json`:
/// one per `,`, `:`, `{` and `[` outside strings, plus one. Stops counting
/// past `max`.
pub fn values(json: &[u8], max: usize) -> usize {
    let mut count = 1usize;
    for b in structure(json) {
        if matches!(b, b',' | b':' | b'{' | b'[') {
            count += 1;
            if count > max {
                return count;
            }
        }
    }
    count
}

/// True when `json` opens more than `max` nested objects or arrays. Invalid
/// JSON is measured the same way; the parser reports what else is wrong.
pub fn exceeds(json: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    for b in structure(json) {
        match b {
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{exceeds, values};

    #[test]
    fn counts_values_outside_strings() {
        assert_eq!(values(b"1", 10), 1);
        assert_eq!(values(b"[1,1,1]", 10), 4);
        assert_eq!(values(br#"{"a":1,"b":[2]}"#, 10), 6);
        assert_eq!(values(br#"{"a":"x,y:z[{"}"#, 10), 3);
        assert_eq!(
            values("[1,".repeat(1000).as_bytes(), 10),
            11,
            "stops past max"
        );
    }

    #[test]
    fn counts_nesting_outside_strings() {
        assert!(!exceeds(br#"{"a":1}"#, 1));
        assert!(exceeds(br#"{"a":{"b":1}}"#, 1));
        assert!(!exceeds(br#"{"a":{"b":1},"c":[1,[2]]}"#, 3));
        assert!(exceeds(br#"{"a":{"b":1},"c":[1,[2]]}"#, 2));
        assert!(
            !exceeds(br#"{"a":"[[[[{{{{\"[[[["}"#, 1),
            "brackets in strings and escaped quotes do not count"
        );
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(exceeds(deep.as_bytes(), 64));
        assert!(!exceeds(deep.as_bytes(), 65));
        assert!(exceeds("[".repeat(100_000).as_bytes(), 64), "unclosed");
    }
}
