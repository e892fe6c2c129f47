//! Shared pre-authentication bounds of the listener: the byte budget that
//! request bodies not yet authenticated draw from
//! (`http.max_unauthenticated_bytes`), and the per-peer rate limit of
//! `POST /login`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config;

/// Bytes every unauthenticated body may read before it draws on the budget:
/// every real webhook without a snapshot fits.
pub const FREE_BYTES: usize = 64 * 1024;
/// Login attempts a peer may make per [`LOGIN_WINDOW`].
pub const LOGIN_ATTEMPTS: u32 = 5;
/// The window of [`LOGIN_ATTEMPTS`].
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Peers remembered by the login limit; the oldest is forgotten beyond it.
const LOGIN_PEERS: usize = 4096;

/// The listener's shared guards.
#[derive(Debug)]
pub struct Guard {
    budget: Arc<Semaphore>,
    logins: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Budget held by one body while it is read and parsed; returned on drop.
#[derive(Debug, Default)]
pub struct Held(Option<OwnedSemaphorePermit>);

impl Guard {
    /// Guards for the limits of `[http]`. The budget is never below
    /// `max_multipart_bytes`, so that the largest allowed body fits.
    pub fn new(http: &config::Http) -> Guard {
        let wanted = http.max_unauthenticated_bytes.max(http.max_multipart_bytes);
        let bytes = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Guard {
            budget: Arc::new(Semaphore::new(bytes)),
            logins: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` more bytes of the budget for `held`; false when the budget
    /// is spent (the request is then answered 503, never made to wait).
    pub fn take(&self, held: &mut Held, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.budget.clone().try_acquire_many_owned(n) {
            Ok(p) => {
                match &mut held.0 {
                    Some(h) => h.merge(p),
                    None => held.0 = Some(p),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes of the budget not in use.
    pub fn budget_left(&self) -> usize {
        self.budget.available_permits()
    }

    /// Counts a login attempt of `peer`; `Err` holds the seconds until it
    /// may try again.
    pub fn login_attempt(&self, peer: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.logins.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (since, _)| now.duration_since(*since) < LOGIN_WINDOW);
        if map.len() >= LOGIN_PEERS && !map.contains_key(&peer) {
            let oldest = map.iter().min_by_key(|(_, (t, _))| *t).map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                map.remove(&ip);
            }
        }
        let (since, count) = map.entry(peer).or_insert((now, 0));
        if *count >= LOGIN_ATTEMPTS {
            let wait = LOGIN_WINDOW.saturating_sub(now.duration_since(*since));
            return Err(wait.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_shared_and_returned() {
        let http = config::Http {
            max_unauthenticated_bytes: 100,
            max_multipart_bytes: 10,
            ..config::Http::default()
        };
        let g = Guard::new(&http);
        let (mut a, mut b) = (Held::default(), Held::default());
        assert!(g.take(&mut a, 60));
        assert!(g.take(&mut a, 0));
        assert!(!g.take(&mut b, 41), "60 + 41 > 100");
        assert!(g.take(&mut b, 40));
        assert_eq!(g.budget_left(), 0);
        drop(a);
        assert_eq!(g.budget_left(), 60);
        let small = config::Http {
            max_unauthenticated_bytes: 100,
            max_multipart_bytes: 1000,
            ..config::Http::default()
        };
        assert_eq!(
            Guard::new(&small).budget_left(),
            1000,
            "the largest body fits"
        );
    }

    #[test]
    fn logins_are_limited_per_peer() {
        let g = Guard::new(&config::Http::default());
        let (one, two) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for _ in 0..LOGIN_ATTEMPTS {
            assert_eq!(g.login_attempt(one), Ok(()));
        }
        let wait = g.login_attempt(one).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert_eq!(g.login_attempt(two), Ok(()), "other peers are not affected");
    }
}
