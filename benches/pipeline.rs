//! Per-operation costs of the pure middle of the bridge: parsing each
//! dialect's samples, event → messages (state + render + discovery check),
//! and rendering one printer's Home Assistant discovery configs.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use print2mqtt::config::Config;
use print2mqtt::event::Reception;
use print2mqtt::homeassistant::{self, Context, PrinterView};
use print2mqtt::ingest::{self, Webhook};
use print2mqtt::mqtt::topics::Topics;
use print2mqtt::pipeline::Printers;

const OE_PROGRESS: &[u8] =
    include_bytes!("../tests/fixtures/octoeverywhere/06-print-progress.json");
const OP_JSON: &str = r#"{"deviceIdentifier":"Ender-3","apiSecret":"s","topic":"Print Progress","message":"Your print is 40 % complete","extra":{"name":"benchy.gcode","progress":40},"state":{"text":"Printing"},"job":{"file":{"name":"benchy.gcode"}},"progress":{"completion":40.2,"printTime":1200,"printTimeLeft":1800},"currentZ":2.4}"#;
const OP_FORM: &str = "deviceIdentifier=Ender-3&apiSecret=s&topic=Print+Progress&message=Your+print+is+40+%25+complete&extra=%7B%22name%22%3A%22benchy.gcode%22%2C%22progress%22%3A40%7D&progress=%7B%22completion%22%3A40.2%2C%22printTime%22%3A1200%2C%22printTimeLeft%22%3A1800%7D&currentZ=2.4";

/// The OctoEverywhere progress sample, parsed.
fn sample_event() -> print2mqtt::event::Event {
    let hook = Webhook {
        body: OE_PROGRESS,
        content_type: Some("application/json"),
        query: &[],
        dialect: None,
        limits: ingest::Limits::default(),
    };
    ingest::parse(&hook, Reception::now())
        .expect("sample parses")
        .event
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    let cases: [(&str, &[u8], &str); 3] = [
        ("octoeverywhere_json", OE_PROGRESS, "application/json"),
        ("octoprint_json", OP_JSON.as_bytes(), "application/json"),
        (
            "octoprint_form",
            OP_FORM.as_bytes(),
            "application/x-www-form-urlencoded",
        ),
    ];
    for (name, body, ct) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let hook = Webhook {
                    body: black_box(body),
                    content_type: Some(ct),
                    query: &[],
                    dialect: None,
                    limits: ingest::Limits::default(),
                };
                ingest::parse(&hook, Reception::now()).expect("sample parses")
            })
        });
    }
    g.finish();
}

fn map(c: &mut Criterion) {
    let config = Config::default();
    let topics = Topics::new("print2mqtt");
    let event = sample_event();
    let mut printers = Printers::from_config(&config);
    printers.accept(&topics, &event);
    c.bench_function("event_to_messages", |b| {
        b.iter(|| printers.accept(&topics, black_box(&event)))
    });
}

fn discovery(c: &mut Criterion) {
    let config = Config::default();
    let ctx = Context::from_config(&config);
    let event = sample_event();
    let mut state = print2mqtt::state::PrinterState::default();
    state.apply(&event);
    let view = PrinterView::new("ender3", &state, None);
    c.bench_function("discovery_one_printer", |b| {
        b.iter(|| homeassistant::configs(black_box(&view), &ctx))
    });
}

criterion_group!(benches, parse, map, discovery);
criterion_main!(benches);
