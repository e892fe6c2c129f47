//! `[storage]` and `[broker]`: where the outbox lives and how big it may
//! grow, and the embedded broker's address.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[storage]`: where the durable outbox lives.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub data_dir: PathBuf,
    /// Undelivered webhooks the outbox holds at most.
    pub max_events: u64,
    /// Topic and payload bytes of undelivered webhooks the outbox holds at most.
    pub max_bytes: u64,
    /// Distinct printers; a webhook for a new one beyond it is refused.
    pub max_printers: u64,
    /// `redb` (the local outbox) or `jetstream` (`[nats]`, several bridges).
    pub backend: super::cluster::Backend,
}

impl Storage {
    /// The outbox's bounds.
    pub fn limits(&self) -> crate::outbox::Limits {
        crate::outbox::Limits {
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
    }
}

/// `[broker]`: the embedded broker, used only while `mqtt.url` is empty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Broker {
    pub listen: SocketAddr,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./data"),
            max_events: 100_000,
            max_bytes: 512 << 20,
            max_printers: 1000,
            backend: super::cluster::Backend::Redb,
        }
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
        }
    }
}
