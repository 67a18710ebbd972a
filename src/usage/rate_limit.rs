//! Per-minute rate limits, in memory: GCRA (the generic cell rate algorithm, a token bucket kept as one
//! timestamp per bucket).
//!
//! A limit of `n` per minute lets a client send `n` requests at once and then one every `60/n` seconds.
//! A request is checked against several buckets at once (its API key and its tenant) and is admitted
//! only if every bucket admits it; then all of them are charged, otherwise none is. The answer carries
//! what the `RateLimit-*` headers say: the limit, what is left and the seconds until the bucket is full
//! again, of the tightest bucket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
/// Buckets idle for this long are forgotten (they are full again anyway).
const FORGET_AFTER: Duration = Duration::from_secs(120);

/// The outcome of a check, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests per minute of the tightest bucket.
    pub limit: u32,
    /// Requests that could be sent right now after this one.
    pub remaining: u32,
    /// Seconds until the tightest bucket is full again.
    pub reset_secs: u64,
    /// When refused: seconds until one request would be admitted.
    pub retry_after_secs: u64,
}

/// Rate-limit buckets: the "theoretical arrival time" of each, with the limit it was computed for
/// (when an administrator changes a limit, the requests already counted are rescaled to the new one).
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (Instant, u32)>>,
}

fn ceil_secs(d: Duration) -> u64 {
    let whole = d.as_secs();
    if d.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

impl RateLimiter {
    /// Checks one request against `buckets` (name, requests per minute; 0 means unlimited) at `now`.
    pub fn check(&self, buckets: &[(&str, u32)], now: Instant) -> Decision {
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 10_000 {
            map.retain(|_, (tat, _)| *tat + FORGET_AFTER > now);
        }
        let mut tightest: Option<Decision> = None;
        let mut updates = Vec::with_capacity(buckets.len());
        let mut refused: Option<Decision> = None;
        for &(name, limit) in buckets {
            if limit == 0 {
                continue;
            }
            let interval = WINDOW / limit;
            let tat = match map.get(name).copied().filter(|(t, _)| *t > now) {
                None => now,
                Some((tat, old)) if old == limit => tat,
                // The same number of requests, counted against the new limit.
                Some((tat, old)) => now + (tat - now).mul_f64(f64::from(old) / f64::from(limit)),
            };
            let new_tat = tat + interval;
            let ahead = new_tat - now;
            if ahead > WINDOW {
                // Over the limit: one request is admitted again when `ahead` falls to the window.
                let decision = Decision {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset_secs: ceil_secs(tat - now),
                    retry_after_secs: ceil_secs(ahead - WINDOW).max(1),
                };
                if refused.is_none_or(|r| decision.retry_after_secs > r.retry_after_secs) {
                    refused = Some(decision);
                }
                continue;
            }
            let remaining = ((WINDOW - ahead).as_nanos() / interval.as_nanos()) as u32;
            let decision = Decision {
                allowed: true,
                limit,
                remaining,
                reset_secs: ceil_secs(ahead),
                retry_after_secs: 0,
            };
            if tightest.is_none_or(|t| decision.remaining < t.remaining) {
                tightest = Some(decision);
            }
            updates.push((name.to_string(), (new_tat, limit)));
        }
        if let Some(refused) = refused {
            return refused;
        }
        for (name, tat) in updates {
            map.insert(name, tat);
        }
        tightest.unwrap_or(Decision {
            allowed: true,
            limit: 0,
            remaining: 0,
            reset_secs: 0,
            retry_after_secs: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_minute_of_burst_then_one_per_interval() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for i in 0..10 {
            let d = limiter.check(&[("key", 10)], start);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.limit, 10);
            assert_eq!(d.remaining, 9 - i);
        }
        // Exactly at the limit: the eleventh is refused, with the wait until one slot is back (6 s).
        let d = limiter.check(&[("key", 10)], start);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after_secs, 6);
        assert_eq!(d.reset_secs, 60);
        // Six seconds later one more is admitted, and only one.
        let later = start + Duration::from_secs(6);
        assert!(limiter.check(&[("key", 10)], later).allowed);
        assert!(!limiter.check(&[("key", 10)], later).allowed);
    }

    #[test]
    fn every_bucket_must_admit_and_a_refusal_charges_none() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..2 {
            assert!(limiter.check(&[("tenant", 2), ("key-a", 100)], now).allowed);
        }
        let d = limiter.check(&[("tenant", 2), ("key-b", 100)], now);
        assert!(!d.allowed);
        assert_eq!(d.limit, 2, "the refusing bucket is reported");
        // key-b was not charged by the refused request.
        let d = limiter.check(&[("key-b", 100)], now);
        assert_eq!(d.remaining, 99);
    }

    #[test]
    fn raising_a_limit_rescales_what_was_used() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..10 {
            assert!(limiter.check(&[("key", 10)], now).allowed);
        }
        assert!(!limiter.check(&[("key", 10)], now).allowed);
        // Ten requests are a sixth of a 60-a-minute budget.
        let d = limiter.check(&[("key", 60)], now);
        assert!(d.allowed);
        assert_eq!(d.remaining, 49);
    }

    #[test]
    fn unlimited_buckets_are_skipped() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(limiter.check(&[("tenant", 0)], now).allowed);
        }
    }
}
