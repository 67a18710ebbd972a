//! Login throttling: failed sign-ins are counted per account and per source address in a sliding
//! window; past the limit, sign-in answers `429` with `Retry-After` until the oldest failure ages out.
//!
//! The per-account limit (10 failures per 15 minutes, at most 40 an hour) stays below ASVS's 100 per
//! hour while keeping malicious lock-out short; the per-address limit (30 per 15 minutes) slows one
//! machine guessing many accounts. A success clears the account's failures. State is in memory (a
//! restart forgets it) and bounded: at most 100,000 keys, old entries pruned.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account within the window.
pub const PER_ACCOUNT: usize = 10;
/// Failures allowed per source address within the window.
pub const PER_ADDRESS: usize = 30;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_KEYS: usize = 100_000;

/// Counts failures; see the module doc.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginThrottle {
    fn keys(account: &str, address: &str) -> [(String, usize); 2] {
        [
            (format!("u:{}", account.trim().to_lowercase()), PER_ACCOUNT),
            (format!("a:{address}"), PER_ADDRESS),
        ]
    }

    /// `Err(seconds)` when either limit is reached: how long until another attempt is allowed.
    pub fn check(&self, account: &str, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = 0u64;
        for (key, limit) in Self::keys(account, address) {
            if let Some(times) = failures.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let oldest = times[times.len() - limit];
                    let left = WINDOW.saturating_sub(now.duration_since(oldest));
                    wait = wait.max(left.as_secs().max(1));
                }
            }
        }
        if wait > 0 {
            Err(wait)
        } else {
            Ok(())
        }
    }

    /// Records a failed sign-in.
    pub fn failure(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        for (key, limit) in Self::keys(account, address) {
            let times = failures.entry(key).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    /// Records a successful sign-in: the account's failures are forgotten.
    pub fn success(&self, account: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.remove(&format!("u:{}", account.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_limit_then_success_clears() {
        let t = LoginThrottle::default();
        for _ in 0..PER_ACCOUNT {
            assert!(t.check("Alice", "10.0.0.1").is_ok());
            t.failure("alice", "10.0.0.1");
        }
        let wait = t
            .check("ALICE", "10.0.0.9")
            .expect_err("throttled by account");
        assert!(wait > 800 && wait <= 900, "{wait}");
        assert!(
            t.check("bob", "10.0.0.9").is_ok(),
            "other accounts unaffected"
        );
        t.success("alice");
        assert!(t.check("alice", "10.0.0.9").is_ok());
    }

    #[test]
    fn address_limit_across_accounts() {
        let t = LoginThrottle::default();
        for i in 0..PER_ADDRESS {
            t.failure(&format!("user{i}"), "192.0.2.7");
        }
        assert!(t.check("someone-new", "192.0.2.7").is_err());
        assert!(t.check("someone-new", "192.0.2.8").is_ok());
    }
}
