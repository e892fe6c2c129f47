//! Home Assistant MQTT discovery (docs/home-assistant.md): a pure function from a
//! printer's identity to its retained config messages, one file per platform,
//! typed serde payloads sharing a flattened base.
//!
//! The platform table below is the entity table: a new platform is a new file
//! and one row.

mod binary_sensor;
mod device;
mod device_trigger;
mod event;
mod image;
mod sensor;

use crate::config;
use crate::event::Source;
use crate::mqtt::messages::Message;
use crate::mqtt::topics::{self, APP_CONNECTION, Discovery, EVENT, LAST_EVENT, Topics};
use crate::state::{Field, PrinterState};

/// Everything a config depends on besides the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `homeassistant.discovery`: when false no config is published.
    pub enabled: bool,
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
            Topics::new(&config.mqtt.base_topic),
            env!("CARGO_PKG_VERSION"),
        )
    }

    /// A context with an explicit version (golden tests pin one).
    pub fn new(ha: &config::HomeAssistant, topics: Topics, version: &str) -> Context {
        Context {
            enabled: ha.discovery,
            topics,
            discovery: Discovery::new(&ha.discovery_prefix),
            version: version.to_owned(),
        }
    }
}

/// What a printer's configs are made of. Two equal views give equal configs,
/// so comparing views tells whether configs must be published again.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl PrinterView {
    /// The view of a printer's state; `configured_name` (from
    /// `printers.<id>.name`) wins over the name the webhook sent.
    pub fn new(slug: &str, state: &PrinterState, configured_name: Option<&str>) -> PrinterView {
        let name = configured_name
            .filter(|n| !n.trim().is_empty())
            .or(state.name.as_deref().filter(|n| !n.trim().is_empty()))
            .unwrap_or(if state.printer_id.is_empty() {
                slug
            } else {
                &state.printer_id
            });
        PrinterView {
            slug: slug.to_owned(),
            name: name.to_owned(),
            source: state.source,
            configuration_url: device::configuration_url(state.quickview_url.as_deref()),
            app_connection: false,
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

/// One config before it gets its topic: the object id and the JSON.
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
        component: "device_automation",
        printer: device_trigger::printer,
        bridge: nothing,
    },
];

fn messages(owner: &device::Owner<'_>, platform: &Platform, bridge: bool) -> Vec<Message> {
    let configs = if bridge {
        (platform.bridge)(owner)
    } else {
        (platform.printer)(owner)
    };
    configs
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

/// Every retained config of one printer, in table order.
pub fn configs(printer: &PrinterView, ctx: &Context) -> Vec<Message> {
    let owner = device::Owner::printer(printer, ctx);
    PLATFORMS
        .iter()
        .flat_map(|p| messages(&owner, p, false))
        .collect()
}

/// Every retained config of the bridge device.
pub fn bridge_configs(ctx: &Context) -> Vec<Message> {
    let owner = device::Owner::bridge(ctx);
    PLATFORMS
        .iter()
        .flat_map(|p| messages(&owner, p, true))
        .collect()
}

/// The configs of one platform: the printer's, then the bridge's (golden
/// files hold one platform each).
pub fn platform_configs(platform: &Platform, printer: &PrinterView, ctx: &Context) -> Vec<Message> {
    let mut out = messages(&device::Owner::printer(printer, ctx), platform, false);
    out.extend(messages(&device::Owner::bridge(ctx), platform, true));
    out
}

/// Every config topic a printer with this slug can have (the App
/// Connection entity's included), to clear on removal.
pub fn config_topics(slug: &str, ctx: &Context) -> Vec<String> {
    let view = PrinterView {
        slug: slug.to_owned(),
        name: slug.to_owned(),
        source: None,
        configuration_url: None,
        app_connection: true,
    };
    configs(&view, ctx).into_iter().map(|m| m.topic).collect()
}

/// The filter matching every config of a printer (or, with
/// [`topics::BRIDGE_NODE`], of the bridge).
pub fn node_filter(ctx: &Context, slug: Option<&str>) -> String {
    let node = slug.map_or_else(|| topics::BRIDGE_NODE.to_owned(), Discovery::node);
    ctx.discovery.node_configs(&node)
}

#[cfg(test)]
mod tests;
