//! The licence state machine: pure, with the clock injected.
//!
//! [`evaluate`] turns a verified licence (or none, or the reason one was refused), the current time, the
//! installation's clock high-water mark and the persisted clock-anomaly timestamp into a
//! [`LicenseState`], the [`EffectiveEntitlements`] and whether the installation is restricted. In order:
//!
//! 1. No licence → `community`. A refused licence → `invalid` (community entitlements).
//! 2. Bound to another installation → `invalid` ("issued for installation X; this is Y").
//! 3. Clock anomaly — `now` is more than [`CLOCK_TOLERANCE`] (1 h) before the high-water mark or before
//!    the licence's `issued_at` → `clock_anomaly`. The first detection time is returned for the caller to
//!    persist. For [`ANOMALY_GRACE`] (72 h) after it the licence works as it did at the best-known time
//!    (the latest of now, high-water mark and `issued_at`); after that, or if the clock moves back again
//!    past the detection time, it is treated as expired past grace (`treated_as_expired`, restricted).
//!    Once the clock is sane again the anomaly clears.
//! 4. Before `starts_at` → `invalid` ("not valid before …", community entitlements).
//! 5. More than [`EXPIRING_WINDOW`] (30 days) before `expires_at` → `valid`; within it → `expiring`;
//!    from `expires_at` for `grace_days` → `grace`; after that → `restricted`. `days_left` is rounded up
//!    (1 second left is 1 day left).
//!
//! In `restricted` the entitlements are still the licence's, but [`Evaluation::restricted`] tells the
//! caller to refuse new users and tenants and writes to licensed features.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::format::LicensePayload;
use super::plan::EffectiveEntitlements;

/// How long before expiry the state becomes `expiring`.
pub const EXPIRING_WINDOW: Duration = Duration::days(30);
/// How far the clock may go back (behind the high-water mark or `issued_at`) without an anomaly.
pub const CLOCK_TOLERANCE: Duration = Duration::hours(1);
/// How long a clock anomaly is tolerated before the licence is treated as expired.
pub const ANOMALY_GRACE: Duration = Duration::hours(72);

/// The licence, as far as the caller knows it.
#[derive(Debug, Clone, Copy)]
pub enum LicenseInput<'a> {
    /// No licence is installed.
    None,
    /// A licence whose signature verified ([`super::parse_and_verify`]).
    Verified(&'a LicensePayload),
    /// A stored licence that no longer verifies or parses, with the reason.
    Rejected(&'a str),
}

/// Everything [`evaluate`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct StateInput<'a> {
    pub license: LicenseInput<'a>,
    /// This installation's id.
    pub installation_id: &'a str,
    /// The current time (injected).
    pub now: OffsetDateTime,
    /// The newest time the installation has seen (persisted by the caller; see [`Evaluation::high_water`]).
    pub high_water: Option<OffsetDateTime>,
    /// When the current clock anomaly was first detected (persisted by the caller; see
    /// [`Evaluation::anomaly_since`]).
    pub anomaly_since: Option<OffsetDateTime>,
}

/// The licence state shown to administrators. Serialises as `{"state": "expiring", "days_left": 12}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LicenseState {
    /// No licence: the free plan.
    Community,
    /// Licensed, more than 30 days before expiry.
    Valid,
    /// Licensed, expiring within 30 days.
    Expiring { days_left: u32 },
    /// Expired, within the grace period.
    Grace { days_left: u32 },
    /// Expired past the grace period.
    Restricted,
    /// The licence does not apply here (refused, other installation, not yet valid).
    Invalid { reason: String },
    /// The clock went back; `treated_as_expired` once that lasted 72 hours.
    ClockAnomaly {
        #[serde(with = "super::rfc3339")]
        since: OffsetDateTime,
        treated_as_expired: bool,
    },
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub state: LicenseState,
    pub entitlements: EffectiveEntitlements,
    /// Refuse new users/tenants and writes to licensed features (`restricted`, or a clock anomaly
    /// treated as expired).
    pub restricted: bool,
    /// The value the caller must persist as the next [`StateInput::anomaly_since`]: set when an anomaly
    /// is first detected, kept while it lasts, `None` once the clock is sane.
    pub anomaly_since: Option<OffsetDateTime>,
    /// The value the caller should persist as the next [`StateInput::high_water`] (the later of the
    /// previous mark and now).
    pub high_water: OffsetDateTime,
}

/// Rounds a positive duration up to whole days.
fn days_rounded_up(d: Duration) -> u32 {
    let whole = d.whole_days();
    let days = if d > Duration::days(whole) {
        whole.saturating_add(1)
    } else {
        whole
    };
    u32::try_from(days.max(0)).unwrap_or(u32::MAX)
}

/// The date-driven state of a licence at `at`: invalid (not yet), valid, expiring, grace or restricted.
fn dated_state(license: &LicensePayload, at: OffsetDateTime) -> LicenseState {
    if at < license.starts_at {
        return LicenseState::Invalid {
            reason: format!(
                "the licence is not valid before {}",
                crate::time_util::format_rfc3339(license.starts_at)
            ),
        };
    }
    let remaining = license.expires_at - at;
    if remaining > EXPIRING_WINDOW {
        return LicenseState::Valid;
    }
    if remaining > Duration::ZERO {
        return LicenseState::Expiring {
            days_left: days_rounded_up(remaining),
        };
    }
    let overdue = -remaining;
    let grace = Duration::days(i64::from(license.grace_days));
    if overdue < grace {
        LicenseState::Grace {
            days_left: days_rounded_up(grace - overdue),
        }
    } else {
        LicenseState::Restricted
    }
}

/// Evaluates the licence state. Pure: the same input always gives the same result.
pub fn evaluate(input: &StateInput<'_>) -> Evaluation {
    let now = input.now;
    let high_water = input.high_water.map_or(now, |hw| hw.max(now));
    let plain = |state: LicenseState, license: Option<&LicensePayload>| Evaluation {
        entitlements: EffectiveEntitlements::from_state(license, &state),
        restricted: state == LicenseState::Restricted,
        state,
        anomaly_since: None,
        high_water,
    };
    let license = match input.license {
        LicenseInput::None => return plain(LicenseState::Community, None),
        LicenseInput::Rejected(reason) => {
            return plain(
                LicenseState::Invalid {
                    reason: reason.to_string(),
                },
                None,
            )
        }
        LicenseInput::Verified(license) => license,
    };
    if let Some(bound) = license.installation_id.as_deref() {
        if bound != input.installation_id {
            return plain(
                LicenseState::Invalid {
                    reason: format!(
                        "the licence was issued for installation {bound}; this is installation {}",
                        input.installation_id
                    ),
                },
                None,
            );
        }
    }

    let behind_high_water = input
        .high_water
        .is_some_and(|hw| hw - now > CLOCK_TOLERANCE);
    let behind_issue = license.issued_at - now > CLOCK_TOLERANCE;
    if behind_high_water || behind_issue {
        let since = input.anomaly_since.unwrap_or(now);
        let moved_back_again = since - now > CLOCK_TOLERANCE;
        let treated_as_expired = moved_back_again || now - since >= ANOMALY_GRACE;
        let best_known = high_water.max(license.issued_at);
        let dated = dated_state(license, best_known);
        let restricted = treated_as_expired || dated == LicenseState::Restricted;
        return Evaluation {
            entitlements: EffectiveEntitlements::from_state(Some(license), &dated),
            restricted,
            state: LicenseState::ClockAnomaly {
                since,
                treated_as_expired,
            },
            anomaly_since: Some(since),
            high_water,
        };
    }

    plain(dated_state(license, now), Some(license))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::format::tests::PAYLOAD;
    use crate::license::plan::Plan;
    use time::macros::datetime;

    const INSTALL: &str = "inst-1";

    fn license() -> LicensePayload {
        // issued and starts 2026-01-01, expires 2027-01-01, 14 grace days, site licence.
        LicensePayload::from_json(PAYLOAD.as_bytes()).expect("valid")
    }

    fn expires() -> OffsetDateTime {
        datetime!(2027-01-01 00:00 UTC)
    }

    fn eval_at(license: &LicensePayload, now: OffsetDateTime) -> Evaluation {
        evaluate(&StateInput {
            license: LicenseInput::Verified(license),
            installation_id: INSTALL,
            now,
            high_water: None,
            anomaly_since: None,
        })
    }

    fn eval_clock(
        license: &LicensePayload,
        now: OffsetDateTime,
        high_water: Option<OffsetDateTime>,
        anomaly_since: Option<OffsetDateTime>,
    ) -> Evaluation {
        evaluate(&StateInput {
            license: LicenseInput::Verified(license),
            installation_id: INSTALL,
            now,
            high_water,
            anomaly_since,
        })
    }

    #[test]
    fn no_licence_is_community() {
        let e = evaluate(&StateInput {
            license: LicenseInput::None,
            installation_id: INSTALL,
            now: datetime!(2026-06-01 00:00 UTC),
            high_water: Some(datetime!(2026-07-01 00:00 UTC)),
            anomaly_since: Some(datetime!(2026-06-01 00:00 UTC)),
        });
        assert_eq!(e.state, LicenseState::Community);
        assert_eq!(e.entitlements, EffectiveEntitlements::community());
        assert!(!e.restricted);
        assert_eq!(e.anomaly_since, None);
        assert_eq!(e.high_water, datetime!(2026-07-01 00:00 UTC));
    }

    #[test]
    fn refused_licence_is_invalid_with_community_entitlements() {
        let e = evaluate(&StateInput {
            license: LicenseInput::Rejected("the signature does not match"),
            installation_id: INSTALL,
            now: datetime!(2026-06-01 00:00 UTC),
            high_water: None,
            anomaly_since: None,
        });
        assert_eq!(
            e.state,
            LicenseState::Invalid {
                reason: "the signature does not match".into()
            }
        );
        assert_eq!(e.entitlements.plan, Plan::Community);
        assert!(!e.restricted);
    }

    #[test]
    fn installation_binding() {
        let mut l = license();
        let now = datetime!(2026-06-01 00:00 UTC);
        assert_eq!(eval_at(&l, now).state, LicenseState::Valid, "site licence");
        l.installation_id = Some(INSTALL.into());
        assert_eq!(eval_at(&l, now).state, LicenseState::Valid, "bound here");
        l.installation_id = Some("inst-other".into());
        let e = eval_at(&l, now);
        assert_eq!(
            e.state,
            LicenseState::Invalid {
                reason: "the licence was issued for installation inst-other; this is installation inst-1"
                    .into()
            }
        );
        assert_eq!(e.entitlements, EffectiveEntitlements::community());
        // The binding is checked before the clock.
        let e = eval_clock(&l, now, Some(datetime!(2026-09-01 00:00 UTC)), None);
        assert!(matches!(e.state, LicenseState::Invalid { .. }));
        assert_eq!(e.anomaly_since, None);
    }

    #[test]
    fn not_yet_valid_is_invalid_until_starts_at() {
        let mut l = license();
        l.starts_at = datetime!(2026-03-01 00:00 UTC);
        let e = eval_at(&l, datetime!(2026-02-28 23:59:59 UTC));
        assert_eq!(
            e.state,
            LicenseState::Invalid {
                reason: "the licence is not valid before 2026-03-01T00:00:00Z".into()
            }
        );
        assert_eq!(e.entitlements.plan, Plan::Community);
        assert_eq!(
            eval_at(&l, datetime!(2026-03-01 00:00 UTC)).state,
            LicenseState::Valid
        );
    }

    #[test]
    fn valid_then_expiring_at_thirty_days() {
        let l = license();
        let e = eval_at(&l, expires() - Duration::days(30) - Duration::seconds(1));
        assert_eq!(e.state, LicenseState::Valid);
        assert_eq!(e.entitlements.plan, Plan::Pro);
        assert!(!e.restricted);
        assert_eq!(
            eval_at(&l, expires() - Duration::days(30)).state,
            LicenseState::Expiring { days_left: 30 }
        );
        assert_eq!(
            eval_at(&l, expires() - Duration::days(29) - Duration::hours(1)).state,
            LicenseState::Expiring { days_left: 30 }
        );
        let e = eval_at(&l, expires() - Duration::seconds(1));
        assert_eq!(e.state, LicenseState::Expiring { days_left: 1 });
        assert!(!e.restricted);
    }

    #[test]
    fn grace_from_expiry_then_restricted() {
        let l = license();
        let e = eval_at(&l, expires());
        assert_eq!(e.state, LicenseState::Grace { days_left: 14 });
        assert!(!e.restricted);
        assert_eq!(e.entitlements.plan, Plan::Pro);
        assert_eq!(
            eval_at(&l, expires() + Duration::days(14) - Duration::seconds(1)).state,
            LicenseState::Grace { days_left: 1 }
        );
        let e = eval_at(&l, expires() + Duration::days(14));
        assert_eq!(e.state, LicenseState::Restricted);
        assert!(e.restricted);
        assert_eq!(
            e.entitlements.limits, l.limits,
            "restricted keeps the licence's limits"
        );
        assert_eq!(
            eval_at(&l, expires() + Duration::days(400)).state,
            LicenseState::Restricted
        );
    }

    #[test]
    fn no_grace_days_means_restricted_at_expiry() {
        let mut l = license();
        l.grace_days = 0;
        assert_eq!(eval_at(&l, expires()).state, LicenseState::Restricted);
    }

    #[test]
    fn clock_going_back_within_an_hour_is_fine() {
        let l = license();
        let hw = datetime!(2026-06-01 12:00 UTC);
        for back in [Duration::minutes(59), Duration::minutes(60)] {
            let e = eval_clock(&l, hw - back, Some(hw), None);
            assert_eq!(e.state, LicenseState::Valid, "{back}");
            assert_eq!(e.anomaly_since, None);
            assert_eq!(e.high_water, hw, "the high-water mark does not go back");
        }
        let e = eval_clock(&l, hw + Duration::hours(1), Some(hw), None);
        assert_eq!(e.high_water, hw + Duration::hours(1), "it moves forward");
    }

    #[test]
    fn clock_going_back_more_than_an_hour_is_an_anomaly() {
        let l = license();
        let hw = datetime!(2026-06-01 12:00 UTC);
        let now = hw - Duration::minutes(61);
        let e = eval_clock(&l, now, Some(hw), None);
        assert_eq!(
            e.state,
            LicenseState::ClockAnomaly {
                since: now,
                treated_as_expired: false
            }
        );
        assert_eq!(
            e.anomaly_since,
            Some(now),
            "first detection is returned to persist"
        );
        assert!(!e.restricted);
        assert_eq!(
            e.entitlements.plan,
            Plan::Pro,
            "entitlements stay as they were"
        );
        assert_eq!(e.high_water, hw);
    }

    #[test]
    fn clock_before_issued_at_is_an_anomaly() {
        let l = license(); // issued 2026-01-01
        let e = eval_clock(&l, datetime!(2025-12-31 22:59 UTC), None, None);
        assert!(matches!(
            e.state,
            LicenseState::ClockAnomaly {
                treated_as_expired: false,
                ..
            }
        ));
        assert_eq!(e.entitlements.plan, Plan::Pro);
        let e = eval_clock(&l, datetime!(2025-12-31 23:01 UTC), None, None);
        assert!(
            matches!(e.state, LicenseState::Invalid { .. }),
            "within the tolerance it is just not valid yet: {:?}",
            e.state
        );
    }

    #[test]
    fn anomaly_is_tolerated_for_72_hours() {
        let l = license();
        let hw = datetime!(2026-06-01 12:00 UTC);
        let since = hw - Duration::days(10);
        let e = eval_clock(&l, since + Duration::hours(71), Some(hw), Some(since));
        assert_eq!(
            e.state,
            LicenseState::ClockAnomaly {
                since,
                treated_as_expired: false
            }
        );
        assert!(!e.restricted);
        assert_eq!(e.anomaly_since, Some(since), "kept while it lasts");

        let e = eval_clock(&l, since + Duration::hours(73), Some(hw), Some(since));
        assert_eq!(
            e.state,
            LicenseState::ClockAnomaly {
                since,
                treated_as_expired: true
            }
        );
        assert!(e.restricted);
        assert_eq!(e.entitlements.limits, l.limits);
        let e = eval_clock(&l, since + Duration::hours(72), Some(hw), Some(since));
        assert!(e.restricted, "exactly 72 hours is past the tolerance");
    }

    #[test]
    fn moving_the_clock_back_again_during_an_anomaly_counts_as_expired() {
        let l = license();
        let hw = datetime!(2026-06-01 12:00 UTC);
        let since = hw - Duration::days(10);
        let e = eval_clock(&l, since - Duration::hours(2), Some(hw), Some(since));
        assert_eq!(
            e.state,
            LicenseState::ClockAnomaly {
                since,
                treated_as_expired: true
            }
        );
        assert!(e.restricted);
    }

    #[test]
    fn anomaly_clears_when_the_clock_returns() {
        let l = license();
        let hw = datetime!(2026-06-01 12:00 UTC);
        let since = hw - Duration::days(10);
        let e = eval_clock(&l, hw - Duration::minutes(30), Some(hw), Some(since));
        assert_eq!(e.state, LicenseState::Valid);
        assert_eq!(e.anomaly_since, None);
        assert!(!e.restricted);
    }

    #[test]
    fn anomaly_uses_the_best_known_time_for_expiry() {
        let l = license();
        // The installation has seen a time past expiry + grace; setting the clock back does not help.
        let hw = expires() + Duration::days(20);
        let e = eval_clock(&l, datetime!(2026-06-01 00:00 UTC), Some(hw), None);
        assert!(matches!(
            e.state,
            LicenseState::ClockAnomaly {
                treated_as_expired: false,
                ..
            }
        ));
        assert!(e.restricted);
        // In grace at the high-water mark: not restricted during the 72 hours.
        let hw = expires() + Duration::days(2);
        let e = eval_clock(&l, datetime!(2026-06-01 00:00 UTC), Some(hw), None);
        assert!(!e.restricted);
        assert_eq!(e.entitlements.plan, Plan::Pro);
    }

    #[test]
    fn states_serialise_with_a_snake_case_tag() {
        let cases = [
            (LicenseState::Community, r#"{"state":"community"}"#),
            (LicenseState::Valid, r#"{"state":"valid"}"#),
            (
                LicenseState::Expiring { days_left: 3 },
                r#"{"state":"expiring","days_left":3}"#,
            ),
            (
                LicenseState::Grace { days_left: 9 },
                r#"{"state":"grace","days_left":9}"#,
            ),
            (LicenseState::Restricted, r#"{"state":"restricted"}"#),
            (
                LicenseState::Invalid { reason: "r".into() },
                r#"{"state":"invalid","reason":"r"}"#,
            ),
            (
                LicenseState::ClockAnomaly {
                    since: datetime!(2026-06-01 12:00 UTC),
                    treated_as_expired: false,
                },
                r#"{"state":"clock_anomaly","since":"2026-06-01T12:00:00Z","treated_as_expired":false}"#,
            ),
        ];
        for (state, json) in cases {
            assert_eq!(serde_json::to_string(&state).expect("serialises"), json);
            let back: LicenseState = serde_json::from_str(json).expect("deserialises");
            assert_eq!(back, state);
        }
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let mut l = license();
        l.grace_days = u32::MAX;
        let extremes = [
            datetime!(0000-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59 UTC),
            datetime!(2026-06-01 00:00 UTC),
        ];
        for now in extremes {
            for hw in extremes {
                for since in extremes {
                    let _ = eval_clock(&l, now, Some(hw), Some(since));
                }
            }
        }
        l.expires_at = datetime!(9999-12-31 23:59:59 UTC);
        let _ = eval_at(&l, datetime!(0000-01-01 00:00 UTC));
    }
}
