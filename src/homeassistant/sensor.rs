//! The `sensor` platform: every printer value, the App Connection state of
//! printers with an `app_token`, and the bridge's counters.

use serde::Serialize;

use super::device::{Base, Look, Owner};
use super::{Discovered, Feed};
use crate::event::Status;
use crate::mqtt::topics::{BRIDGE_LAST_WEBHOOK, BRIDGE_VERSION, BRIDGE_WEBHOOKS};
use crate::octoeverywhere::app_state::AppState;
use crate::state::Field;

/// An MQTT sensor config.
#[derive(Debug, Serialize)]
struct Sensor<'a> {
    #[serde(flatten)]
    base: Base<'a>,
    state_topic: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_template: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_of_measurement: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suggested_display_precision: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    options: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_attributes_topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_attributes_template: Option<&'static str>,
}

/// One row of the sensor table.
struct Row {
    look: Look,
    feed: Feed,
    value_template: Option<&'static str>,
    device_class: Option<&'static str>,
    unit: Option<&'static str>,
    state_class: Option<&'static str>,
    /// Decimals Home Assistant shows.
    precision: Option<u8>,
    /// The options of a `device_class: enum` sensor.
    options: Options,
    /// Attributes from this topic's JSON.
    attributes: Option<Feed>,
}

const fn row(object: &'static str, name: &'static str, feed: Feed) -> Row {
    Row {
        look: Look::new(object, name),
        feed,
        value_template: None,
        device_class: None,
        unit: None,
        state_class: None,
        precision: None,
        options: Options::None,
        attributes: None,
    }
}

const fn icon(mut r: Row, icon: &'static str) -> Row {
    r.look.icon = Some(icon);
    r
}

const fn diagnostic(mut r: Row) -> Row {
    r.look.diagnostic = true;
    r
}

const fn measured(mut r: Row, device_class: Option<&'static str>, unit: &'static str) -> Row {
    r.device_class = device_class;
    r.unit = Some(unit);
    r
}

/// `state_class: measurement`: Home Assistant keeps statistics and draws
/// graphs.
const fn measurement(mut r: Row) -> Row {
    r.state_class = Some("measurement");
    r
}

const fn precision(mut r: Row, decimals: u8) -> Row {
    r.precision = Some(decimals);
    r
}

const fn timestamp(mut r: Row) -> Row {
    r.device_class = Some("timestamp");
    r
}

const fn template(mut r: Row, template: &'static str) -> Row {
    r.value_template = Some(template);
    r
}

/// Home Assistant refuses states over 255 characters (with a log warning):
/// free text is cut there.
const CUT_TO_255: &str = "{{ value[:255] }}";
/// An empty payload (`eta` when no print is under way, any topic while a
/// printer is removed) is unknown: not an invalid timestamp or enum option.
const EMPTY_IS_UNKNOWN: &str = "{{ value if value else 'None' }}";
/// The event name from the event JSON; unknown for an empty payload.
const EVENT_NAME: &str = "{{ value_json.event if value_json is defined else 'None' }}";
/// When the event arrived, from the event JSON.
const RECEIVED_AT: &str = "{{ value_json.received_at if value_json is defined else 'None' }}";
/// When the print started: the time of its `started` event; else the value
/// already shown; else (Home Assistant started mid-print) the event's time
/// less the print duration it reports.
const START_TIME: &str = "{% set e = value_json if value_json is defined else {} %}\
{% if e.event == 'started' %}{{ e.received_at }}\
{% elif this.state not in ['unknown', 'unavailable', None] %}{{ this.state }}\
{% elif e.print_duration is defined and e.received_at is defined %}\
{{ (as_datetime(e.received_at) - timedelta(seconds=e.print_duration | int(0))).isoformat() }}\
{% else %}None{% endif %}";
/// The event JSON as attributes; no attributes for an empty payload.
const JSON_OR_NOTHING: &str = "{{ value if value else '{}' }}";

const PRINTER: [Row; 13] = [
    {
        let mut r = icon(
            template(
                row("state", "State", Feed::Field(Field::State)),
                EMPTY_IS_UNKNOWN,
            ),
            "mdi:printer-3d",
        );
        r.device_class = Some("enum");
        r.options = Options::PrinterStates;
        r
    },
    {
        let r = measured(
            row("progress", "Progress", Feed::Field(Field::Progress)),
            None,
            "%",
        );
        icon(precision(measurement(r), 0), "mdi:progress-clock")
    },
    measured(
        row(
            "time_remaining",
            "Time remaining",
            Feed::Field(Field::TimeRemaining),
        ),
        Some("duration"),
        "s",
    ),
    {
        let mut r = template(row("eta", "ETA", Feed::Field(Field::Eta)), EMPTY_IS_UNKNOWN);
        r.device_class = Some("timestamp");
        r
    },
    measured(
        row(
            "print_duration",
            "Print duration",
            Feed::Field(Field::PrintDuration),
        ),
        Some("duration"),
        "s",
    ),
    icon(
        template(row("file", "File", Feed::Field(Field::File)), CUT_TO_255),
        "mdi:file-outline",
    ),
    precision(
        measured(
            row("z", "Z height", Feed::Field(Field::Z)),
            Some("distance"),
            "mm",
        ),
        2,
    ),
    measurement(icon(
        row("layer", "Layer", Feed::Field(Field::Layer)),
        "mdi:layers-outline",
    )),
    measurement(icon(
        row(
            "total_layers",
            "Total layers",
            Feed::Field(Field::TotalLayers),
        ),
        "mdi:layers-triple-outline",
    )),
    timestamp(icon(
        template(row("start_time", "Start time", Feed::LastEvent), START_TIME),
        "mdi:clock-start",
    )),
    diagnostic(icon(
        template(row("error", "Error", Feed::Field(Field::Error)), CUT_TO_255),
        "mdi:alert-circle-outline",
    )),
    {
        let mut r = template(row("last_event", "Last event", Feed::LastEvent), EVENT_NAME);
        r.attributes = Some(Feed::LastEvent);
        diagnostic(icon(r, "mdi:bell-outline"))
    },
    diagnostic(timestamp(template(
        row("last_update", "Last update", Feed::LastEvent),
        RECEIVED_AT,
    ))),
];

/// Only for printers with an `app_token`.
const APP_CONNECTION: Row = {
    let mut r = template(
        row("app_connection", "App Connection", Feed::AppConnection),
        EMPTY_IS_UNKNOWN,
    );
    r.device_class = Some("enum");
    r.options = Options::AppStates;
    diagnostic(icon(r, "mdi:link-variant"))
};

/// Which states an enum sensor declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Options {
    None,
    PrinterStates,
    AppStates,
}

impl Options {
    fn list(self) -> Option<Vec<&'static str>> {
        match self {
            Options::None => None,
            Options::PrinterStates => Some(Status::ALL.iter().map(|s| s.name()).collect()),
            Options::AppStates => Some(AppState::ALL.iter().map(|s| s.name()).collect()),
        }
    }
}

const BRIDGE: [Row; 3] = [
    {
        let mut r = row(
            "webhooks_received",
            "Webhooks received",
            Feed::Bridge(BRIDGE_WEBHOOKS),
        );
        r.state_class = Some("total_increasing");
        diagnostic(icon(r, "mdi:webhook"))
    },
    {
        let mut r = row(
            "last_webhook",
            "Last webhook",
            Feed::Bridge(BRIDGE_LAST_WEBHOOK),
        );
        r.device_class = Some("timestamp");
        diagnostic(r)
    },
    diagnostic(icon(
        row("version", "Version", Feed::Bridge(BRIDGE_VERSION)),
        "mdi:tag-outline",
    )),
];

fn configs<'r>(owner: &Owner<'_>, rows: impl IntoIterator<Item = &'r Row>) -> Vec<Discovered> {
    rows.into_iter()
        .map(|r| {
            let sensor = Sensor {
                base: owner.base(&r.look),
                state_topic: owner.topic(r.feed),
                value_template: r.value_template,
                device_class: r.device_class,
                unit_of_measurement: r.unit,
                state_class: r.state_class,
                suggested_display_precision: r.precision,
                options: r.options.list(),
                json_attributes_topic: r.attributes.map(|f| owner.topic(f)),
                json_attributes_template: r.attributes.map(|_| JSON_OR_NOTHING),
            };
            Discovered::new(r.look.object, &sensor)
        })
        .collect()
}

/// A printer's sensors.
pub(super) fn printer(owner: &Owner<'_>) -> Vec<Discovered> {
    let app_connection = owner.app_connection.then_some(&APP_CONNECTION);
    configs(owner, PRINTER.iter().chain(app_connection))
}

/// The bridge's sensors.
pub(super) fn bridge(owner: &Owner<'_>) -> Vec<Discovered> {
    configs(owner, &BRIDGE)
}
