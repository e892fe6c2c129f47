//! The OctoPrint-Webhooks dialect (docs/senders.md). The body is whatever data
//! template the user typed into the plugin, so every field is optional and a
//! field of the wrong type is dropped, never a 400. `topic` decides the
//! event; the state flags, which lag it, are never read.

use std::borrow::Cow;

use serde_json::{Map, Value};
use tracing::debug;

use super::fields::{self, Fields};
use super::{IngestError, Parsed};
use crate::event::{Event, EventKind, Reception, Source};

/// The plugin's topics. A cancel is "Print Failed" with `extra.reason`
/// `cancelled`; the test webhooks reuse these topics and are told apart by
/// their `extra` (see [`is_test`]).
const TOPICS: [(&str, EventKind); 9] = [
    ("Print Started", EventKind::Started),
    ("Print Done", EventKind::Complete),
    ("Print Failed", EventKind::Failed),
    ("Print Paused", EventKind::Paused),
    ("Print Resumed", EventKind::Resumed),
    ("User Action Needed", EventKind::UserInteraction),
    ("Error", EventKind::Error),
    ("Print Progress", EventKind::Progress),
    ("Custom Event", EventKind::Custom),
];

type Object<'a> = Option<Cow<'a, Map<String, Value>>>;

/// True when the object looks like an OctoPrint-Webhooks body.
pub fn recognises(map: &Map<String, Value>) -> bool {
    map.contains_key("topic") || map.contains_key("deviceIdentifier")
}

/// Maps one body to an event. `printer` is the `?printer=` query value,
/// which stands in for a missing `deviceIdentifier`.
pub fn parse(
    map: &Map<String, Value>,
    printer: Option<&str>,
    rx: Reception,
) -> Result<Parsed, IngestError> {
    let top = Some(map);
    let device = text(top, "deviceIdentifier");
    let printer_id = device
        .clone()
        .or_else(|| printer.map(str::to_owned))
        .ok_or(IngestError::NoPrinter)?;
    let topic = text(top, "topic");
    let message = text(top, "message");
    let extra = object(map.get("extra"));
    let extra = extra.as_deref();
    let job = object(map.get("job"));
    let job_file = object(job.as_deref().and_then(|j| j.get("file")));
    let progress = object(map.get("progress"));
    let progress = progress.as_deref();
    let kind = kind_for(topic.as_deref(), map.get("extra"), extra);

    let mut event = Event::new(kind, Source::OctoPrint, printer_id, rx);
    // Milestones can repeat or arrive late (docs/mqtt-topics.md#rules).
    event.progress_monotonic = true;
    event.printer_name = device;
    event.topic = match kind {
        EventKind::Custom => message.clone().or(topic),
        EventKind::Unknown => topic,
        _ => None,
    };
    // Dot notation lets a template carry single values at the top
    // (`"fileName": "@job.file.name"`, `"progress": "@progress.completion"`).
    event.file = text(job_file.as_deref(), "name")
        .or_else(|| text(extra, "name"))
        .or_else(|| text(extra, "path").and_then(|p| basename(&p)))
        .or_else(|| text(top, "fileName"));
    let scalar_progress = map.get("progress").filter(|v| !v.is_object());
    event.progress = percent(progress, "completion")
        .or_else(|| scalar_progress.and_then(|_| percent(top, "progress")))
        .or_else(|| percent(extra, "progress"))
        .or_else(|| milestone(kind, message.as_deref()))
        .or((kind == EventKind::Started).then_some(0));
    event.set_time_remaining(count(progress, "printTimeLeft"));
    event.print_duration = count(progress, "printTime")
        .or_else(|| count(extra, "time"))
        .or((kind == EventKind::Started).then_some(0));
    let position = object(extra.and_then(|e| e.get("position")));
    event.z = number(top, "currentZ").or_else(|| number(position.as_deref(), "z"));
    event.error = text(extra, "error");
    Ok(Parsed {
        event,
        secret: text(top, "apiSecret"),
    })
}

/// The event for a topic. Tests come first: they reuse the real topics.
fn kind_for(
    topic: Option<&str>,
    raw_extra: Option<&Value>,
    extra: Option<&Map<String, Value>>,
) -> EventKind {
    if is_test(raw_extra, extra) {
        return EventKind::Test;
    }
    let kind = topic.map_or(EventKind::Unknown, |t| {
        let t = t.trim();
        TOPICS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(t))
            .map_or(EventKind::Unknown, |(_, k)| *k)
    });
    let cancelled =
        text(extra, "reason").is_some_and(|r| r.to_ascii_lowercase().contains("cancel"));
    if kind == EventKind::Failed && cancelled {
        EventKind::Cancelled
    } else {
        kind
    }
}

/// The "Send Test Webhook" button sends a fixed sample `extra` carrying
/// `"popup": true` (and `"hook_index"`). A GET flattens `extra` to its keys,
/// so there the key list gives it away.
fn is_test(raw_extra: Option<&Value>, extra: Option<&Map<String, Value>>) -> bool {
    let popup = extra.and_then(|e| e.get("popup")).is_some_and(|v| match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.trim(), "true" | "True" | "1"),
        Value::Number(n) => n.as_f64() == Some(1.0),
        _ => false,
    });
    let key_list = match raw_extra {
        Some(Value::Array(keys)) => keys.iter().any(|k| k == "popup"),
        Some(Value::String(s)) => s == "popup",
        _ => false,
    };
    popup || key_list
}

/// The milestone of a "Print Progress" webhook of the default template,
/// which carries it only in its message ("Your print is 30 % complete.").
fn milestone(kind: EventKind, message: Option<&str>) -> Option<u8> {
    if kind != EventKind::Progress {
        return None;
    }
    percent_in(message?).map(|n| fields::percent("message", n))
}

/// The first number directly followed by `%` (spaces allowed) in `text`.
fn percent_in(text: &str) -> Option<f64> {
    text.match_indices('%').find_map(|(i, _)| {
        let before = text[..i].trim_end();
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
            .last()
            .map(|(i, _)| i)?;
        before[start..]
            .parse::<f64>()
            .ok()
            .filter(|n| (0.0..=100.0).contains(n))
    })
}

/// A nested object: a JSON object, or a string holding one (a template that
/// double-encodes); anything else is absent.
fn object(v: Option<&Value>) -> Object<'_> {
    match v? {
        Value::Object(m) => Some(Cow::Borrowed(m)),
        Value::String(s) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Some(Cow::Owned(m)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn basename(path: &str) -> Option<String> {
    let name = path.rsplit('/').next().unwrap_or(path).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Drops a value of the wrong type instead of failing the webhook.
fn lenient<T>(key: &str, read: Result<Option<T>, IngestError>) -> Option<T> {
    read.unwrap_or_else(|e| {
        debug!(field = key, error = %e, "Field of an unexpected type ignored");
        None
    })
}

fn text(map: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    lenient(key, Fields::new(map?).text(key))
}

fn number(map: Option<&Map<String, Value>>, key: &str) -> Option<f64> {
    lenient(key, Fields::new(map?).number(key))
}

fn count(map: Option<&Map<String, Value>>, key: &str) -> Option<u64> {
    lenient(key, Fields::new(map?).count(key))
}

fn percent(map: Option<&Map<String, Value>>, key: &str) -> Option<u8> {
    lenient(key, Fields::new(map?).percent(key))
}

#[cfg(test)]
mod tests;
