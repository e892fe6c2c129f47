//! Home Assistant MQTT discovery (docs/home-assistant.md): a pure function from a
//! printer's identity to its retained config messages, one file per platform,
//! typed serde payloads sharing a flattened base.
//!
//! The platform table below is the entity table: a new platform is a new file
//! and one row. The same entities go out either as one device-based config
//! per device (`homeassistant.discovery_mode = "device"`, the default) or as
//! one config per entity (`"component"`); [`migration`] moves a device from
//! one shape to the other without losing its entities.

mod binary_sensor;
mod device;
mod device_trigger;
mod event;
mod image;
pub mod migration;
mod sensor;

use bytes::Bytes;

use crate::config::{self, DiscoveryMode};
use crate::event::Source;
use crate::mqtt::messages::Message;
use crate::mqtt::topics::{APP_CONNECTION, Discovery, EVENT, LAST_EVENT, Topics};
use crate::state::{Field, PrinterState};

/// Everything a config depends on besides the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `homeassistant.discovery`: when false no config is published.
    pub enabled: bool,
    /// `homeassistant.discovery_mode`: one config per device or per entity.
    pub mode: DiscoveryMode,
    /// The bridge's own topics, which the entities read.
    pub topics: Topics,
    /// Where the configs go.
    pub discovery: Discovery,
    /// The bridge version named in every origin block.
    pub version: String,
}

impl Context {
    /// The context for `config`, with this build's version.
    pub fn from_config(config: &config::Config) -> Context {
        Context::new(
            &config.homeassistant,
            crate::mqtt::topics_of(config),
            env!("CARGO_PKG_VERSION"),
        )
    }

    /// A context with an explicit version (golden tests pin one).
    pub fn new(ha: &config::HomeAssistant, topics: Topics, version: &str) -> Context {
        Context {
            enabled: ha.discovery,
            mode: ha.discovery_mode,
            discovery: Discovery::new(&ha.discovery_prefix, topics.base()),
            topics,
            version: version.to_owned(),
        }
    }
}

/// What a printer's configs are made of. Two equal views give equal configs,
/// so comparing views tells whether configs must be published again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrinterView {
    /// The printer's topic level; its node id is `print2mqtt_<slug>`.
    pub slug: String,
    /// Device name: the configured name, else the webhook's, else the id.
    pub name: String,
    /// The dialect it last sent, named as manufacturer and model.
    pub source: Option<Source>,
    /// The QuickView URL when it is a valid http(s) URL.
    pub configuration_url: Option<String>,
    /// The printer has an `app_token`: it gets the "App Connection" entity.
    pub app_connection: bool,
    /// It holds a snapshot URL: it gets the URL image entity.
    pub snapshot_url: bool,
    /// It sends snapshot JPEGs: it gets the JPEG image entity.
    pub snapshot_jpeg: bool,
}

impl PrinterView {
    /// A 64-bit digest of the view: what the table keeps of each printer's
    /// published view (a whole view per printer is a few hundred bytes,
    /// 10,000 printers' several MB). Deterministic within a process; two
    /// different views share a digest with odds of about 1 in 2^64 (never
    /// zero, so an optional digest takes no more room than a digest).
    pub fn digest(&self) -> std::num::NonZeroU64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        self.hash(&mut h);
        std::num::NonZeroU64::new(h.finish()).unwrap_or(std::num::NonZeroU64::MIN)
    }

    /// The view of a printer's state; `configured_name` (from
    /// `printers.<id>.name`) wins over the name the webhook sent.
    pub fn new(slug: &str, state: &PrinterState, configured_name: Option<&str>) -> PrinterView {
        let name = configured_name
            .filter(|n| !n.trim().is_empty())
            .or(state.name().filter(|n| !n.trim().is_empty()))
            .unwrap_or(if state.printer_id().is_empty() {
                slug
            } else {
                state.printer_id()
            });
        PrinterView {
            slug: slug.to_owned(),
            name: name.to_owned(),
            source: state.source,
            configuration_url: device::configuration_url(state.quickview_url()),
            app_connection: false,
            // While it holds a URL: one about to expire is cleared, and the
            // entity goes with it until the next URL.
            snapshot_url: state.latest.text(Field::SnapshotUrl).is_some(),
            snapshot_jpeg: state.latest.snapshot,
        }
    }
}

/// Which topic an entity reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// A retained per-printer value.
    Field(Field),
    /// The retained normalized event JSON.
    LastEvent,
    /// The non-retained event stream.
    Event,
    /// A retained `<base>/bridge/<leaf>` value.
    Bridge(&'static str),
    /// The retained App Connection registration state.
    AppConnection,
}

impl Feed {
    fn topic(self, topics: &Topics, slug: &str) -> String {
        match self {
            Feed::Field(field) => topics.field(slug, field),
            Feed::LastEvent => topics.printer(slug, LAST_EVENT),
            Feed::Event => topics.printer(slug, EVENT),
            Feed::Bridge(leaf) => topics.bridge(leaf),
            Feed::AppConnection => topics.printer(slug, APP_CONNECTION),
        }
    }
}

/// One entity's config before it gets its topic: the object id and the
/// JSON, without `device` and `origin` in device mode.
#[derive(Debug, Clone, PartialEq)]
struct Discovered {
    object: &'static str,
    json: String,
}

impl Discovered {
    fn new(object: &'static str, payload: &impl serde::Serialize) -> Discovered {
        Discovered {
            object,
            // Plain strings, lists and maps with string keys: cannot fail.
            json: serde_json::to_string(payload).unwrap_or_default(),
        }
    }
}

/// One platform: its component and the configs it gives printers and the
/// bridge.
pub struct Platform {
    /// The component level of the topic, e.g. `sensor`.
    pub component: &'static str,
    printer: fn(&device::Owner<'_>) -> Vec<Discovered>,
    bridge: fn(&device::Owner<'_>) -> Vec<Discovered>,
}

fn nothing(_: &device::Owner<'_>) -> Vec<Discovered> {
    Vec::new()
}

/// The component of device triggers: in a device config their keys get
/// [`TRIGGER_KEY`] in front, since event names (`progress`, `error`) are
/// also sensor objects and `cmps` keys must differ.
const TRIGGERS: &str = "device_automation";
const TRIGGER_KEY: &str = "trigger_";

/// The entity table, in publishing order.
pub const PLATFORMS: [Platform; 5] = [
    Platform {
        component: "sensor",
        printer: sensor::printer,
        bridge: sensor::bridge,
    },
    Platform {
        component: "binary_sensor",
        printer: binary_sensor::printer,
        bridge: binary_sensor::bridge,
    },
    Platform {
        component: "image",
        printer: image::printer,
        bridge: nothing,
    },
    Platform {
        component: "event",
        printer: event::printer,
        bridge: nothing,
    },
    Platform {
        component: TRIGGERS,
        printer: device_trigger::printer,
        bridge: nothing,
    },
];

fn discovered(owner: &device::Owner<'_>, platform: &Platform) -> Vec<Discovered> {
    if owner.is_bridge() {
        (platform.bridge)(owner)
    } else {
        (platform.printer)(owner)
    }
}

/// One config per entity, under its own topic.
fn component_messages(owner: &device::Owner<'_>, platform: &Platform) -> Vec<Message> {
    discovered(owner, platform)
        .into_iter()
        .map(|d| {
            let topic = owner
                .ctx
                .discovery
                .config(platform.component, &owner.node, d.object);
            Message::retained(topic, d.json)
        })
        .collect()
}

/// The key of an entity in a device config's `cmps`: its object id, so the
/// entity keeps Home Assistant's discovery id when it migrates.
fn cmps_key(component: &str, object: &str) -> String {
    if component == TRIGGERS {
        format!("{TRIGGER_KEY}{object}")
    } else {
        object.to_owned()
    }
}

/// The one device-based config: `device`, `origin`, then every entity
/// under `cmps` with its `platform`.
fn device_message(owner: &device::Owner<'_>) -> Message {
    let mut json = String::with_capacity(16 * 1024);
    json.push_str("{\"device\":");
    // Plain strings: cannot fail.
    json.push_str(&serde_json::to_string(&owner.device).unwrap_or_default());
    json.push_str(",\"origin\":");
    json.push_str(&serde_json::to_string(&owner.origin()).unwrap_or_default());
    json.push_str(",\"cmps\":{");
    let mut first = true;
    for platform in &PLATFORMS {
        for d in discovered(owner, platform) {
            if !first {
                json.push(',');
            }
            first = false;
            json.push_str(
                &serde_json::Value::from(cmps_key(platform.component, d.object)).to_string(),
            );
            json.push_str(":{\"platform\":\"");
            json.push_str(platform.component);
            json.push_str("\",");
            // Every entity config is a non-empty JSON object: `{"name":…}`.
            json.push_str(d.json.get(1..).unwrap_or("}"));
        }
    }
    json.push_str("}}");
    let topic = owner.ctx.discovery.device_config(&owner.node);
    Message::retained(topic, json)
}

fn messages(owner: &device::Owner<'_>) -> Vec<Message> {
    match owner.ctx.mode {
        DiscoveryMode::Device => vec![device_message(owner)],
        DiscoveryMode::Component => PLATFORMS
            .iter()
            .flat_map(|p| component_messages(owner, p))
            .collect(),
    }
}

/// Every retained config of one printer: one device config, or one per
/// entity in table order.
pub fn configs(printer: &PrinterView, ctx: &Context) -> Vec<Message> {
    messages(&device::Owner::printer(printer, ctx))
}

/// Every retained config of the bridge device.
pub fn bridge_configs(ctx: &Context) -> Vec<Message> {
    messages(&device::Owner::bridge(ctx))
}

/// The per-entity configs of one platform: the printer's, then the
/// bridge's (golden files hold one platform each).
pub fn platform_configs(platform: &Platform, printer: &PrinterView, ctx: &Context) -> Vec<Message> {
    let mut out = component_messages(&device::Owner::printer(printer, ctx), platform);
    out.extend(component_messages(&device::Owner::bridge(ctx), platform));
    out
}

/// The Home Assistant discovery ids `(component, object)` a device's
/// configs hold: the same in both modes but for device triggers.
fn discovery_ids(owner: &device::Owner<'_>) -> Vec<(&'static str, String)> {
    PLATFORMS
        .iter()
        .flat_map(|p| {
            discovered(owner, p).into_iter().map(|d| {
                let object = match owner.ctx.mode {
                    DiscoveryMode::Device => cmps_key(p.component, d.object),
                    DiscoveryMode::Component => d.object.to_owned(),
                };
                (p.component, object)
            })
        })
        .collect()
}

/// A view that has every entity a printer with this slug can have.
fn widest(slug: &str) -> PrinterView {
    PrinterView {
        slug: slug.to_owned(),
        name: slug.to_owned(),
        source: None,
        configuration_url: None,
        app_connection: true,
        snapshot_url: true,
        snapshot_jpeg: true,
    }
}

/// Every config topic a printer with this slug can have, in both modes (a
/// device published before the mode changed goes too), to clear on removal.
pub fn config_topics(slug: &str, ctx: &Context) -> Vec<String> {
    let view = widest(slug);
    let mut out = Vec::new();
    for mode in [DiscoveryMode::Device, DiscoveryMode::Component] {
        let ctx = Context {
            mode,
            ..ctx.clone()
        };
        out.extend(configs(&view, &ctx).into_iter().map(|m| m.topic));
    }
    out
}

/// The filters matching every config of a printer (or, with `None`, of the
/// bridge) in either mode.
pub fn node_filters(ctx: &Context, slug: Option<&str>) -> [String; 2] {
    let node = slug.map_or_else(|| ctx.discovery.bridge_node(), |s| ctx.discovery.node(s));
    [
        ctx.discovery.device_config(&node),
        ctx.discovery.node_configs(&node),
    ]
}

/// An empty retained message: clears a config.
fn empty(topic: String) -> Message {
    Message::retained(topic, Bytes::new())
}

#[cfg(test)]
mod tests;
