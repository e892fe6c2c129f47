//! Text values made safe to publish, whatever a webhook sends: control
//! characters and bidirectional overrides removed (line breaks and tabs
//! become spaces), every value capped at [`MAX_TEXT_CHARS`] characters, an
//! absurd Z height dropped, a URL that is not `http` or `https` (with a
//! host) dropped — Home Assistant fetches the snapshot URL and the page
//! links the Quick View URL. Topic
//! levels never come from these values (they come from `slug`); this keeps
//! plain-text payloads, the event JSON and Home Assistant's names readable.

use tracing::{debug, warn};

use super::IngestError;
use crate::event::Event;

/// The longest text value published (file names, errors, names, URLs).
pub const MAX_TEXT_CHARS: usize = 1024;

/// The largest Z height taken as real, in millimetres (either sign).
const MAX_Z_MM: f64 = 100_000.0;

/// Characters that reorder the text around them (bidi embeddings,
/// overrides, isolates and marks): a file name `\u{202E}gnp.exe` shows as
/// `exe.png`.
const BIDI: [char; 12] = [
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// Cleans every text field of `event` in place; a printer id with nothing
/// printable left is an error.
pub fn event(event: &mut Event) -> Result<(), IngestError> {
    event.printer_id = clean("printer_id", &event.printer_id);
    if event.printer_id.is_empty() {
        return Err(IngestError::BlankPrinter);
    }
    for (name, field) in [
        ("printer_name", &mut event.printer_name),
        ("print_id", &mut event.print_id),
        ("file", &mut event.file),
        ("error", &mut event.error),
        ("platform_error_code", &mut event.platform_error_code),
        ("snapshot_url", &mut event.snapshot_url),
        ("quickview_url", &mut event.quickview_url),
        ("topic", &mut event.topic),
    ] {
        *field = field
            .as_deref()
            .map(|s| clean(name, s))
            .filter(|s| !s.trim().is_empty());
    }
    for (name, field) in [
        ("snapshot_url", &mut event.snapshot_url),
        ("quickview_url", &mut event.quickview_url),
    ] {
        if field.as_deref().is_some_and(|u| !is_web_url(u)) {
            warn!(
                field = name,
                "URL dropped: only http and https URLs are published"
            );
            *field = None;
        }
    }
    if let Some(z) = event.z.filter(|z| z.abs() > MAX_Z_MM) {
        warn!(field = "z", value = z, "Out-of-range value dropped");
        event.z = None;
    }
    Ok(())
}

/// True for an absolute `http` or `https` URL with a host.
pub fn is_web_url(text: &str) -> bool {
    url::Url::parse(text.trim())
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
}

/// `s` without control and bidi characters, at most [`MAX_TEXT_CHARS`]
/// long.
pub fn clean(field: &str, s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_TEXT_CHARS * 4));
    let mut kept = 0usize;
    for c in s.chars() {
        if kept == MAX_TEXT_CHARS {
            debug!(field, limit = MAX_TEXT_CHARS, "Long text value cut");
            break;
        }
        let c = match c {
            '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' => ' ',
            c if c.is_control() || BIDI.contains(&c) => continue,
            c => c,
        };
        out.push(c);
        kept += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Reception, Source};

    #[test]
    fn control_and_bidi_characters_go_and_length_is_capped() {
        assert_eq!(clean("f", "a\u{0}b\u{7}c\u{1b}[31m"), "abc[31m");
        assert_eq!(clean("f", "line1\r\nline2\tx"), "line1  line2 x");
        assert_eq!(clean("f", "\u{202E}gnp.exe"), "gnp.exe");
        assert_eq!(clean("f", "\u{0}\u{202E} \n"), "  ");
        assert_eq!(clean("f", "Drucker Ä/+#"), "Drucker Ä/+#");
        let long = "é".repeat(10_000);
        assert_eq!(clean("f", &long).chars().count(), MAX_TEXT_CHARS);
    }

    #[test]
    fn every_text_field_of_an_event_is_cleaned() {
        let mut e = Event::new(
            EventKind::Error,
            Source::OctoEverywhere,
            "p\u{0}1".into(),
            Reception::now(),
        );
        e.file = Some("x".repeat(5000));
        e.error = Some("\u{1}".into());
        e.printer_name = Some("Ender\u{202D} 3".into());
        e.z = Some(1e30);
        event(&mut e).unwrap();
        assert_eq!(e.z, None);
        assert_eq!(e.printer_id, "p1");
        assert_eq!(e.file.as_ref().map(String::len), Some(MAX_TEXT_CHARS));
        assert_eq!(e.error, None);
        assert_eq!(e.printer_name.as_deref(), Some("Ender 3"));
        e.snapshot_url = Some("file:///etc/passwd".into());
        e.quickview_url = Some("javascript:alert(1)".into());
        event(&mut e).unwrap();
        assert_eq!(
            (e.snapshot_url.as_deref(), e.quickview_url.as_deref()),
            (None, None)
        );
        for ok in [
            "https://octoeverywhere.com/snap?x=1",
            "HTTP://192.168.1.5/s.jpg",
        ] {
            e.snapshot_url = Some(ok.into());
            event(&mut e).unwrap();
            assert_eq!(e.snapshot_url.as_deref(), Some(ok));
        }
        for bad in [
            "ftp://x/y",
            "data:image/jpeg;base64,AAAA",
            "//evil/x",
            "mqtt://h",
            "https://",
        ] {
            assert!(!is_web_url(bad), "{bad}");
        }
        e.printer_id = "\u{0}\u{0}".into();
        assert_eq!(event(&mut e), Err(IngestError::BlankPrinter));
    }
}
