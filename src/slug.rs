//! Printer slugs: the one topic level a printer gets (docs/mqtt-topics.md#printer-slugs), and
//! [`fold`], the one rule by which two printer ids are the same printer. No
//! webhook content can produce `/`, `+`, `#` or NUL here, and two printer ids
//! that differ after folding never share a slug.

use std::collections::{HashMap, HashSet};

use icu_casemap::CaseMapper;
use icu_normalizer::ComposingNormalizer;
use icu_properties::CodePointSetData;
use icu_properties::props::DefaultIgnorableCodePoint;
use sha2::{Digest, Sha256};

/// The longest slug.
pub const MAX_LEN: usize = 64;

/// Slugs no printer may have, because the bridge's own topics use them.
pub const RESERVED: [&str; 1] = ["bridge"];

/// The key two printer ids are compared by, everywhere (configured
/// printers and their secrets, aliases, slugs, API lookups): Unicode
/// `NFKC_Casefold` — compatibility-normalized, case-folded, default-ignorable
/// characters (zero-width spaces, joiners, soft hyphens) removed. So
/// `Drucker Ä`, `drucker ä`, `DRUCKER A\u{308}` and `ｄｒｕｃｋｅｒ ä` are one
/// printer, and none of them can pass for another one's secret.
pub fn fold(id: &str) -> String {
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>();
    let nfkc = ComposingNormalizer::new_nfkc();
    let visible: String = nfkc
        .normalize(id)
        .chars()
        .filter(|c| !ignorable.contains(*c))
        .collect();
    let folded = CaseMapper::new().fold_string(&visible).into_owned();
    nfkc.normalize(&folded).into_owned()
}

/// True when two printer ids name the same printer ([`fold`]).
pub fn same_printer(a: &str, b: &str) -> bool {
    a == b || fold(a) == fold(b)
}

/// Folds `id` ([`fold`]) and replaces every character outside `[a-z0-9_-]`
/// by `_`, keeping at most [`MAX_LEN`] characters.
pub fn slugify(id: &str) -> String {
    let folded = fold(id);
    // Nothing but ignorable characters: slugged as they are (to `_`).
    let source = if folded.is_empty() { id } else { &folded };
    source
        .chars()
        .take(MAX_LEN)
        .map(|c| match c {
            c @ ('a'..='z' | '0'..='9' | '_' | '-') => c,
            _ => '_',
        })
        .collect()
}

/// True when `s` is a valid slug (used to check configured aliases).
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
}

/// `slugify(id)` shortened to make room for `_` and `hex_len` hex digits of
/// the id's SHA-256: stable across restarts and across bridge instances.
fn with_hash(id: &str, hex_len: usize) -> String {
    let digest = Sha256::digest(fold(id).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut base = slugify(id);
    base.truncate(MAX_LEN - 1 - hex_len);
    format!("{base}_{}", &hex[..hex_len])
}

/// The id ↔ slug table of every printer seen, aliases included.
#[derive(Debug, Default, Clone)]
pub struct Slugs {
    /// Configured aliases, keyed by folded printer id.
    aliases: HashMap<String, String>,
    /// Assigned slugs, keyed by folded printer id; `None`: the slug is
    /// the folded id itself, as for most ids (with 10,000 printers, not
    /// keeping a second copy of each, nor a `taken` entry, saves a megabyte).
    by_id: HashMap<Box<str>, Option<Box<str>>>,
    /// Every taken slug that is not its printer's folded id: reserved
    /// slugs, aliases, and slugs that differ from the id.
    taken: HashSet<Box<str>>,
}

impl Slugs {
    /// A table with the configured aliases (printer id → alias) reserved.
    pub fn new<'a>(aliases: impl IntoIterator<Item = (&'a str, &'a str)>) -> Slugs {
        let mut slugs = Slugs::default();
        slugs.taken.extend(RESERVED.iter().map(|s| Box::from(*s)));
        for (id, alias) in aliases {
            slugs.aliases.insert(fold(id), alias.to_owned());
            slugs.taken.insert(alias.into());
        }
        slugs
    }

    /// The slug of `id`, assigning one the first time the id is seen.
    pub fn resolve(&mut self, id: &str) -> String {
        let key = fold(id);
        if let Some(slug) = self.get_folded(&key) {
            return slug.to_owned();
        }
        let slug = match self.aliases.get(&key) {
            Some(alias) => alias.clone(),
            None => self.free_slug(id),
        };
        self.assign(key, &slug);
        slug
    }

    /// Records a mapping read back from the broker, unless the slug is taken.
    pub fn restore(&mut self, slug: &str, id: &str) {
        let key = fold(id);
        if self.by_id.contains_key(key.as_str()) || !is_valid(slug) {
            return;
        }
        let alias = self.aliases.get(&key);
        if alias.is_some_and(|a| a != slug) || (alias.is_none() && self.is_taken(slug)) {
            return;
        }
        self.assign(key, slug);
    }

    /// The slug already assigned to `id`, if any.
    pub fn get(&self, id: &str) -> Option<&str> {
        self.get_folded(&fold(id))
    }

    fn get_folded(&self, key: &str) -> Option<&str> {
        let (key, slug) = self.by_id.get_key_value(key)?;
        Some(slug.as_deref().unwrap_or(key))
    }

    fn assign(&mut self, key: String, slug: &str) {
        if key == slug {
            self.by_id.insert(key.into(), None);
        } else {
            self.by_id.insert(key.into(), Some(slug.into()));
            self.taken.insert(slug.into());
        }
    }

    fn is_taken(&self, slug: &str) -> bool {
        self.taken.contains(slug) || matches!(self.by_id.get(slug), Some(None))
    }

    fn free_slug(&self, id: &str) -> String {
        let plain = slugify(id);
        if !self.is_taken(&plain) {
            return plain;
        }
        (6..=MAX_LEN / 2)
            .step_by(2)
            .map(|n| with_hash(id, n))
            .find(|s| !self.is_taken(s))
            // 32 hex digits of SHA-256 colliding is not a real case.
            .unwrap_or_else(|| with_hash(id, MAX_LEN / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_keeps_topic_levels_safe() {
        assert_eq!(slugify("Ender3"), "ender3");
        assert_eq!(slugify("a/b+c#d\0e f"), "a_b_c_d_e_f");
        assert_eq!(slugify("Prusa MK4 ünïcödé"), "prusa_mk4__n_c_d_");
        assert_eq!(slugify(&"x".repeat(10_000)).len(), MAX_LEN);
        for s in [
            slugify("+"),
            slugify("#"),
            slugify("/"),
            slugify("\u{202e}"),
        ] {
            assert!(is_valid(&s), "{s:?}");
        }
    }

    #[test]
    fn one_folding_rule_for_printer_ids() {
        for same in [
            "drucker ä",
            "DRUCKER Ä",
            "Drucker A\u{308}",
            "ｄｒｕｃｋｅｒ ä",
            "dru\u{200b}cker ä",
            "dru\u{ad}cker Ä",
        ] {
            assert_eq!(fold(same), "drucker ä", "{same:?}");
            assert!(same_printer("Drucker Ä", same), "{same:?}");
        }
        assert_eq!(fold("Straße"), fold("STRASSE"));
        assert_eq!(fold("\u{212a}elvin"), "kelvin", "Kelvin sign");
        assert!(!same_printer("drucker a", "drucker ä"));
        assert_eq!(slugify("ｅｎｄｅｒ３"), "ender3");

        let mut s = Slugs::new([("Drucker Ä", "drucker")]);
        assert_eq!(s.resolve("drucker ä"), "drucker", "alias by the same rule");
        assert_eq!(s.resolve("Ender3"), "ender3");
        assert_eq!(s.resolve("ENDER3"), "ender3", "one printer, one slug");
        assert_eq!(s.get("ender3"), Some("ender3"));
    }

    #[test]
    fn colliding_ids_stay_apart_and_stable() {
        let mut a = Slugs::new([]);
        assert_eq!(a.resolve("Ender 3"), "ender_3");
        let second = a.resolve("ender/3");
        assert_ne!(second, "ender_3");
        assert!(
            second.starts_with("ender_3_") && is_valid(&second),
            "{second}"
        );
        assert_eq!(a.resolve("ender/3"), second, "same id, same slug");
        assert_eq!(a.resolve("Ender 3"), "ender_3");

        let mut b = Slugs::new([]);
        b.resolve("Ender 3");
        assert_eq!(b.resolve("ender/3"), second, "another instance agrees");
        // A slug that is its own printer's id is taken as well.
        let mut c = Slugs::new([]);
        assert_eq!(c.resolve("ENDER_3"), "ender_3");
        assert_ne!(c.resolve("Ender 3"), "ender_3");
        c.restore("ender_3", "Ender 3");
        assert_eq!(c.get("ender_3"), Some("ender_3"));
        assert_ne!(c.get("Ender 3"), Some("ender_3"));
    }

    #[test]
    fn long_ids_collide_on_the_cut_and_get_a_hash() {
        let mut s = Slugs::new([]);
        let a = format!("{}A", "x".repeat(64));
        let b = format!("{}B", "x".repeat(64));
        let (sa, sb) = (s.resolve(&a), s.resolve(&b));
        assert_ne!(sa, sb);
        assert!(sa.len() <= MAX_LEN && sb.len() <= MAX_LEN);
    }

    #[test]
    fn aliases_and_reserved_slugs() {
        let mut s = Slugs::new([("OE-ID-1", "ender3")]);
        assert_eq!(
            s.resolve("oe-id-1"),
            "ender3",
            "printer keys match case-insensitively"
        );
        assert_ne!(
            s.resolve("Ender3"),
            "ender3",
            "an alias is never given away"
        );
        let bridge = s.resolve("bridge");
        assert_ne!(bridge, "bridge", "the bridge's own topic level is reserved");
        assert!(bridge.starts_with("bridge_"));
    }

    #[test]
    fn restore_keeps_earlier_assignments() {
        let mut s = Slugs::new([]);
        s.restore("ender_3_abcdef", "ender/3");
        s.restore("ender_3", "Ender 3");
        assert_eq!(s.resolve("ender/3"), "ender_3_abcdef");
        assert_eq!(s.resolve("Ender 3"), "ender_3");
        s.restore("ender_3", "someone else");
        assert_ne!(s.resolve("someone else"), "ender_3");
        s.restore("bad/slug", "x");
        assert_eq!(s.get("x"), None);
    }
}
