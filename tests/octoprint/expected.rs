//! What each recorded OctoPrint-Webhooks request must change on the broker,
//! written out by hand from the recordings (not derived from the bridge):
//! `(seq, event, retained values the request sets)`. A value not listed
//! keeps what the broker retained before. `<eta>` is received_at plus
//! time_remaining of that request; an empty value clears the retained topic;
//! `<jpeg>` is the JPEG part of that request's body.

/// One recorded request and its effect.
pub type Step = (u64, &'static str, &'static [(&'static str, &'static str)]);

pub const ETA: &str = "<eta>";
pub const JPEG: &str = "<jpeg>";
/// The deviceIdentifier of every recording.
pub const DEVICE: &str = "Drucker Ä/Ender-3 \"#1\" 🖨";
/// The apiSecret of every recording.
pub const API_SECRET: &str = "s3cr3t-Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9Zq9-äß€";
/// The slug of DEVICE.
pub const SLUG: &str = "drucker___ender-3___1___";
/// The slug of `Drucker Ä/Ender-3 "`, the `?printer=` of simple-json (the
/// user's `#` in the plugin's URL setting started a fragment).
pub const SIMPLE_SLUG: &str = "drucker___ender-3__";
const ERROR: &str =
    "Thermal Runaway, system stopped! Heater_ID: bed - Printer halted. kill() called!";

macro_rules! f {
    () => {
        "Bench Würfel ä (slow).gcode"
    };
}

/// simple-json.jsonl: the default template; milestones only in the message.
#[rustfmt::skip]
pub const SIMPLE: &[Step] = &[
    (1, "test", &[]),
    (2, "test", &[]),
    (3, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (4, "progress", &[("state", "printing"), ("progress", "10")]),
    (5, "progress", &[("state", "printing"), ("progress", "20")]),
    (6, "progress", &[("state", "printing"), ("progress", "30")]),
    (7, "paused", &[("state", "paused"), ("progress", "36"), ("file", f!()), ("z", "0.4")]),
    (8, "progress", &[("state", "printing"), ("progress", "40")]),
    (9, "progress", &[("state", "printing"), ("progress", "50")]),
    (10, "progress", &[("state", "printing"), ("progress", "60")]),
    (11, "progress", &[("state", "printing"), ("progress", "70")]),
    (12, "progress", &[("state", "printing"), ("progress", "80")]),
    (13, "progress", &[("state", "printing"), ("progress", "90")]),
    (14, "complete", &[("state", "complete"), ("progress", "100"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "26"), ("file", f!())]),
    (15, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (16, "progress", &[("state", "printing"), ("progress", "10")]),
    (17, "progress", &[("state", "printing"), ("progress", "20")]),
    (18, "cancelled", &[("state", "cancelled"), ("progress", "25"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "7"), ("file", f!())]),
    (19, "user_interaction", &[("state", "needs_attention")]),
];

/// json-fulldata.jsonl: "get all data" without @snapshot, as JSON.
#[rustfmt::skip]
pub const JSON_FULL: &[Step] = &[
    (1, "test", &[]), (2, "test", &[]), (3, "test", &[]), (4, "test", &[]),
    (5, "test", &[]), (6, "test", &[]), (7, "test", &[]),
    (8, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (9, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "47"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2")]),
    (10, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "44"), ("eta", ETA), ("print_duration", "6"), ("file", f!()), ("z", "0.2")]),
    (11, "progress", &[("state", "printing"), ("progress", "30"), ("time_remaining", "41"), ("eta", ETA), ("print_duration", "8"), ("file", f!()), ("z", "0.4")]),
    (12, "paused", &[("state", "paused"), ("progress", "35"), ("time_remaining", "18"), ("eta", ETA), ("print_duration", "9"), ("file", f!()), ("z", "0.4")]),
    (13, "custom", &[("progress", "35"), ("time_remaining", "18"), ("eta", ETA), ("print_duration", "9"), ("file", f!()), ("z", "0.4")]),
    (14, "progress", &[("state", "printing"), ("progress", "40"), ("time_remaining", "16"), ("eta", ETA), ("print_duration", "11"), ("file", f!()), ("z", "0.6")]),
    (15, "progress", &[("state", "printing"), ("progress", "50"), ("time_remaining", "13"), ("eta", ETA), ("print_duration", "13"), ("file", f!()), ("z", "0.6")]),
    (16, "progress", &[("state", "printing"), ("progress", "60"), ("time_remaining", "10"), ("eta", ETA), ("print_duration", "16"), ("file", f!()), ("z", "0.8")]),
    (17, "progress", &[("state", "printing"), ("progress", "70"), ("time_remaining", "7"), ("eta", ETA), ("print_duration", "18"), ("file", f!()), ("z", "0.8")]),
    (18, "progress", &[("state", "printing"), ("progress", "80"), ("time_remaining", "5"), ("eta", ETA), ("print_duration", "21"), ("file", f!()), ("z", "1")]),
    (19, "progress", &[("state", "printing"), ("progress", "90"), ("time_remaining", "2"), ("eta", ETA), ("print_duration", "23"), ("file", f!()), ("z", "1")]),
    (20, "complete", &[("state", "complete"), ("progress", "100"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "26"), ("file", f!()), ("z", "1.2")]),
    (21, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (22, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "23"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2")]),
    (23, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "20"), ("eta", ETA), ("print_duration", "5"), ("file", f!()), ("z", "0.2")]),
    (24, "custom", &[("progress", "25"), ("print_duration", "7"), ("file", f!())]),
    (25, "cancelled", &[("state", "cancelled"), ("progress", "25"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "7"), ("file", f!())]),
    (26, "user_interaction", &[("state", "needs_attention"), ("file", f!())]),
    (27, "error", &[("state", "error"), ("problem", "ON"), ("time_remaining", "0"), ("eta", ""), ("file", f!()), ("error", ERROR)]),
];

/// form-fulldata.jsonl: the same template form-encoded.
#[rustfmt::skip]
pub const FORM_FULL: &[Step] = &[
    (1, "test", &[]), (2, "test", &[]), (3, "test", &[]), (4, "test", &[]),
    (5, "test", &[]), (6, "test", &[]), (7, "test", &[]),
    (8, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (9, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "23"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2")]),
    (10, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "20"), ("eta", ETA), ("print_duration", "6"), ("file", f!()), ("z", "0.2")]),
    (11, "progress", &[("state", "printing"), ("progress", "30"), ("time_remaining", "17"), ("eta", ETA), ("print_duration", "8"), ("file", f!()), ("z", "0.4")]),
    (12, "paused", &[("state", "paused"), ("progress", "35"), ("time_remaining", "16"), ("eta", ETA), ("print_duration", "9"), ("file", f!()), ("z", "0.4")]),
    (13, "custom", &[("progress", "35"), ("time_remaining", "16"), ("eta", ETA), ("print_duration", "9"), ("file", f!()), ("z", "0.4")]),
    (14, "progress", &[("state", "printing"), ("progress", "40"), ("time_remaining", "14"), ("eta", ETA), ("print_duration", "11"), ("file", f!()), ("z", "0.6")]),
    (15, "progress", &[("state", "printing"), ("progress", "50"), ("time_remaining", "12"), ("eta", ETA), ("print_duration", "13"), ("file", f!()), ("z", "0.6")]),
    (16, "progress", &[("state", "printing"), ("progress", "60"), ("time_remaining", "9"), ("eta", ETA), ("print_duration", "16"), ("file", f!()), ("z", "0.8")]),
    (17, "progress", &[("state", "printing"), ("progress", "70"), ("time_remaining", "7"), ("eta", ETA), ("print_duration", "18"), ("file", f!()), ("z", "0.8")]),
    (18, "progress", &[("state", "printing"), ("progress", "80"), ("time_remaining", "5"), ("eta", ETA), ("print_duration", "21"), ("file", f!()), ("z", "1")]),
    (19, "progress", &[("state", "printing"), ("progress", "90"), ("time_remaining", "2"), ("eta", ETA), ("print_duration", "23"), ("file", f!()), ("z", "1")]),
    (20, "complete", &[("state", "complete"), ("progress", "100"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "26"), ("file", f!()), ("z", "1.2")]),
    (21, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!())]),
    (22, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "23"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2")]),
    (23, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "20"), ("eta", ETA), ("print_duration", "5"), ("file", f!()), ("z", "0.2")]),
    (24, "custom", &[("progress", "25"), ("print_duration", "7"), ("file", f!())]),
    (25, "cancelled", &[("state", "cancelled"), ("progress", "25"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "7"), ("file", f!())]),
    (26, "user_interaction", &[("state", "needs_attention"), ("file", f!())]),
    (27, "error", &[("state", "error"), ("problem", "ON"), ("time_remaining", "0"), ("eta", ""), ("file", f!()), ("error", ERROR)]),
];

/// multipart-fulldata-snapshot.jsonl: "get all data" with @snapshot.
#[rustfmt::skip]
pub const MULTIPART: &[Step] = &[
    (2, "test", &[]),
    (4, "test", &[]),
    (6, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("print_duration", "0"), ("file", f!()), ("snapshot", JPEG)]),
    (8, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "23"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2"), ("snapshot", JPEG)]),
    (10, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "20"), ("eta", ETA), ("print_duration", "6"), ("file", f!()), ("z", "0.2"), ("snapshot", JPEG)]),
    (12, "progress", &[("state", "printing"), ("progress", "30"), ("time_remaining", "17"), ("eta", ETA), ("print_duration", "8"), ("file", f!()), ("z", "0.4"), ("snapshot", JPEG)]),
    (14, "paused", &[("state", "paused"), ("progress", "35"), ("time_remaining", "15"), ("eta", ETA), ("print_duration", "10"), ("file", f!()), ("z", "0.4"), ("snapshot", JPEG)]),
    (16, "progress", &[("state", "printing"), ("progress", "40"), ("time_remaining", "14"), ("eta", ETA), ("print_duration", "11"), ("file", f!()), ("z", "0.6"), ("snapshot", JPEG)]),
    (18, "progress", &[("state", "printing"), ("progress", "50"), ("time_remaining", "11"), ("eta", ETA), ("print_duration", "14"), ("file", f!()), ("z", "0.6"), ("snapshot", JPEG)]),
    (20, "progress", &[("state", "printing"), ("progress", "60"), ("time_remaining", "9"), ("eta", ETA), ("print_duration", "16"), ("file", f!()), ("z", "0.8"), ("snapshot", JPEG)]),
    (22, "progress", &[("state", "printing"), ("progress", "70"), ("time_remaining", "8"), ("eta", ETA), ("print_duration", "19"), ("file", f!()), ("z", "0.8"), ("snapshot", JPEG)]),
    (24, "progress", &[("state", "printing"), ("progress", "80"), ("time_remaining", "5"), ("eta", ETA), ("print_duration", "22"), ("file", f!()), ("z", "1"), ("snapshot", JPEG)]),
    (26, "progress", &[("state", "printing"), ("progress", "90"), ("time_remaining", "2"), ("eta", ETA), ("print_duration", "24"), ("file", f!()), ("z", "1"), ("snapshot", JPEG)]),
    (28, "complete", &[("state", "complete"), ("progress", "100"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "27"), ("file", f!()), ("z", "1.2"), ("snapshot", JPEG)]),
    (30, "started", &[("state", "printing"), ("problem", "OFF"), ("progress", "0"), ("time_remaining", "26"), ("eta", ETA), ("print_duration", "0"), ("file", f!()), ("snapshot", JPEG)]),
    (32, "progress", &[("state", "printing"), ("progress", "10"), ("time_remaining", "24"), ("eta", ETA), ("print_duration", "2"), ("file", f!()), ("z", "0.2"), ("snapshot", JPEG)]),
    (34, "progress", &[("state", "printing"), ("progress", "20"), ("time_remaining", "20"), ("eta", ETA), ("print_duration", "6"), ("file", f!()), ("z", "0.2"), ("snapshot", JPEG)]),
    (36, "cancelled", &[("state", "cancelled"), ("progress", "25"), ("time_remaining", "0"), ("eta", ""), ("print_duration", "7"), ("file", f!()), ("snapshot", JPEG)]),
    (38, "user_interaction", &[("state", "needs_attention"), ("file", f!()), ("snapshot", JPEG)]),
];
