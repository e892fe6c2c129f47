//! What the status page and `/metrics` watch, in one place the HTTP
//! handlers share: the recent-webhooks log, the metric counters, the start
//! time, and the signal that ends the page's live streams at shutdown.

use std::time::Instant;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::webhook_log::{Outcome, WebhookLog};

/// The bridge's own observations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The last webhooks, accepted or not.
    pub log: WebhookLog,
    /// The counters behind `/metrics`.
    pub metrics: Metrics,
    started: Instant,
    started_at: OffsetDateTime,
    closing: CancellationToken,
}

impl Monitor {
    /// A monitor whose live streams end when `closing` is cancelled.
    pub fn new(closing: CancellationToken) -> Monitor {
        Monitor {
            log: WebhookLog::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            started_at: OffsetDateTime::now_utc(),
            closing,
        }
    }

    /// Records one answered webhook: the log line and the counters.
    pub fn webhook(&self, outcome: &Outcome<'_>) {
        let dialect = outcome.dialect.unwrap_or("unknown");
        self.metrics.webhook(dialect, outcome.status);
        if let (200, false, Some(kind)) = (outcome.status, outcome.filtered, outcome.event) {
            self.metrics.event(kind);
        }
        self.log.push(outcome);
    }

    /// Seconds since the bridge started.
    pub fn uptime_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// When the bridge started.
    pub fn started_at(&self) -> OffsetDateTime {
        self.started_at
    }

    /// Cancelled when the bridge shuts down.
    pub fn closing(&self) -> &CancellationToken {
        &self.closing
    }
}
