//! Which broker the next connection goes to: after every failed attempt or
//! dropped connection the next of `mqtt.url`, round robin, and the
//! [`Backoff`] delay once per full rotation (the other brokers are tried at
//! once). With one broker that is a backoff step per attempt, as before.

use std::time::Duration;

use super::{Broker, Brokers};
use crate::mqtt::backoff::Backoff;

/// The brokers, the one in use and the backoff across them.
#[derive(Debug)]
pub(super) struct Rotation {
    brokers: Brokers,
    current: usize,
    /// Failures since the last connection or the last backoff step.
    failures: usize,
    backoff: Backoff,
}

impl Rotation {
    pub(super) fn new(brokers: Brokers) -> Rotation {
        Rotation {
            brokers,
            current: 0,
            failures: 0,
            backoff: Backoff::default(),
        }
    }

    /// The broker the next (or current) connection uses.
    pub(super) fn current(&self) -> &Broker {
        self.brokers.get(self.current)
    }

    /// A connection came up.
    pub(super) fn connected(&mut self) {
        self.failures = 0;
        self.backoff.connected();
    }

    /// The connection delivered a record.
    pub(super) fn progressed(&mut self) {
        self.backoff.progressed();
    }

    /// The attempt failed or the connection dropped: moves on to the next
    /// broker; the delay before trying it.
    pub(super) fn failed(&mut self) -> Duration {
        self.current = (self.current + 1) % self.brokers.len();
        self.failures += 1;
        if self.failures >= self.brokers.len() {
            self.failures = 0;
            self.backoff.failed()
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::MqttOptions;

    fn brokers(n: u16) -> Brokers {
        let broker = |port: u16| Broker {
            shown: format!("mqtt://h:{port}"),
            options: MqttOptions::new("id", "h", port),
        };
        Brokers::new(broker(1), (2..=n).map(broker).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn one_broker_backs_off_on_every_failure() {
        let mut r = Rotation::new(brokers(1));
        let delays: Vec<u64> = (0..3).map(|_| r.failed().as_millis() as u64).collect();
        assert_eq!(delays, [250, 500, 1000]);
        assert_eq!(r.current().shown, "mqtt://h:1");
    }

    #[tokio::test(start_paused = true)]
    async fn several_brokers_are_tried_at_once_and_backed_off_per_rotation() {
        let mut r = Rotation::new(brokers(3));
        let mut seen = Vec::new();
        for _ in 0..6 {
            let delay = r.failed().as_millis() as u64;
            seen.push((r.current().shown.clone(), delay));
        }
        let want = [
            ("mqtt://h:2", 0),
            ("mqtt://h:3", 0),
            ("mqtt://h:1", 250),
            ("mqtt://h:2", 0),
            ("mqtt://h:3", 0),
            ("mqtt://h:1", 500),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(s, d)| (s.to_string(), *d)).collect();
        assert_eq!(seen, want);
        // A connection resets the count: the next drop moves on at once.
        r.connected();
        assert_eq!(r.failed(), Duration::ZERO);
        assert_eq!(r.current().shown, "mqtt://h:2");
    }
}
