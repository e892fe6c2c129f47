//! `N` short byte strings kept back to back in one allocation: a farm of
//! 10,000 printers holds a few of these per printer, and separately
//! allocated strings each cost several times the few bytes they carry.
//! Together they hold at most [`MAX_BYTES`] (a webhook's texts are capped
//! far below it: `ingest::sanitize::MAX_TEXT_CHARS`).

/// The most bytes all `N` strings hold together.
pub const MAX_BYTES: usize = u16::MAX as usize;

/// `N` byte strings, each empty until set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed<const N: usize> {
    /// Every string, in index order.
    bytes: Box<[u8]>,
    /// Where each string ends in `bytes` (it starts where the previous one
    /// ends).
    ends: [u16; N],
}

impl<const N: usize> Default for Packed<N> {
    fn default() -> Self {
        Packed {
            bytes: Box::default(),
            ends: [0; N],
        }
    }
}

impl<const N: usize> Packed<N> {
    /// String `i` (empty when never set, or `i` is out of range).
    pub fn get(&self, i: usize) -> &[u8] {
        self.span(i)
            .and_then(|(start, end)| self.bytes.get(start..end))
            .unwrap_or_default()
    }

    /// String `i` as text; `None` when empty or not UTF-8.
    pub fn text(&self, i: usize) -> Option<&str> {
        std::str::from_utf8(self.get(i))
            .ok()
            .filter(|s| !s.is_empty())
    }

    /// Replaces string `i` (no-op when `i` is out of range). A string that
    /// would take the total past [`MAX_BYTES`] is stored empty instead.
    pub fn set(&mut self, i: usize, value: &[u8]) {
        let Some((start, end)) = self.span(i) else {
            return;
        };
        let rest = self.bytes.len() - (end - start);
        let value = if value.len() > MAX_BYTES - rest {
            &[][..]
        } else {
            value
        };
        if value.len() == end - start {
            // Same length (a progress step's numbers, an ETA): in place.
            self.bytes[start..end].copy_from_slice(value);
            return;
        }
        let mut bytes = Vec::with_capacity(rest + value.len());
        bytes.extend_from_slice(&self.bytes[..start]);
        bytes.extend_from_slice(value);
        bytes.extend_from_slice(&self.bytes[end..]);
        let grown = value.len() as i64 - (end - start) as i64;
        for e in &mut self.ends[i..] {
            // Cannot wrap: the total was checked against MAX_BYTES above.
            *e = (i64::from(*e) + grown) as u16;
        }
        self.bytes = bytes.into_boxed_slice();
    }

    /// Sets string `i` to `value`, or empty for `None`.
    pub fn set_text(&mut self, i: usize, value: Option<&str>) {
        self.set(i, value.unwrap_or_default().as_bytes());
    }

    fn span(&self, i: usize) -> Option<(usize, usize)> {
        let end = *self.ends.get(i)? as usize;
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        Some((start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_empty_and_ignored() {
        let mut p = Packed::<2>::default();
        p.set(5, b"x");
        assert_eq!(p.get(5), b"");
        p.set(1, b"b");
        p.set(0, b"aa");
        assert_eq!((p.get(0), p.get(1)), (&b"aa"[..], &b"b"[..]));
        assert_eq!(p.text(1), Some("b"));
        p.set_text(0, None);
        assert_eq!(p.text(0), None);
        assert_eq!(p.get(1), b"b");
    }

    #[test]
    fn past_the_limit_a_string_is_stored_empty() {
        let mut p = Packed::<2>::default();
        p.set(0, &vec![b'a'; MAX_BYTES - 1]);
        p.set(1, b"bc");
        assert_eq!(p.get(1), b"", "one byte too many");
        p.set(1, b"b");
        assert_eq!(p.get(1), b"b", "exactly the limit");
        assert_eq!(p.get(0).len(), MAX_BYTES - 1);
    }

    proptest::proptest! {
        /// The packed strings read back as separate ones would.
        #[test]
        fn packed_strings_match_separate_ones(
            ops in proptest::collection::vec((0..5usize, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)), 0..60)
        ) {
            let mut packed = Packed::<5>::default();
            let mut model: Vec<Vec<u8>> = vec![Vec::new(); 5];
            for (i, value) in ops {
                packed.set(i, &value);
                model[i] = value;
                for (j, want) in model.iter().enumerate() {
                    proptest::prop_assert_eq!(packed.get(j), want.as_slice());
                }
            }
        }
    }
}
