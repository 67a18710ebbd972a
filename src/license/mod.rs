//! Offline licensing: signed licence files, the trusted vendor keys, the plan catalogue, the licence
//! state machine, and air-gapped activation requests and usage reports.
//!
//! Everything here is pure and self-contained: no database, no HTTP, no configuration. The caller
//! (the server) stores the licence text, the installation's clock high-water mark and the clock-anomaly
//! timestamp, and enforces what [`Evaluation`] says. `docs/license.md` describes the formats and rules.
//!
//! - [`format`](mod@format): the armoured licence file, [`LicensePayload`], [`sign`] and [`parse_and_verify`].
//! - [`keys`]: [`TrustedKeys`], the Ed25519 public keys compiled into the binary (no runtime way to add one).
//! - [`plan`]: the plan catalogue ([`Plan`], [`Limits`], [`Feature`]) and [`EffectiveEntitlements`].
//! - [`state`]: [`evaluate`], the licence state machine with an injected clock.
//! - [`activation`]: [`InstanceKey`], [`ActivationRequest`] (armoured and single-line QR form) and signed
//!   usage reports.

pub mod activation;
mod armor;
pub mod enforce;
pub mod format;
pub mod keys;
pub mod manager;
pub mod plan;
pub mod qr;
pub mod state;

pub use activation::{
    parse_activation_request, sign_usage_report, verify_usage_report, ActivationCounts,
    ActivationRequest, InstanceKey, VerifiedUsageReport,
};
pub use format::{
    inspect, parse_and_verify, sign, Edition, Inspection, LicenseError, LicensePayload,
    VerifiedLicense, MAX_LICENSE_BYTES,
};
pub use keys::{PublicKeyFile, TrustedKeys};
pub use plan::{EffectiveEntitlements, Feature, Limits, Plan};
pub use state::{evaluate, Evaluation, LicenseInput, LicenseState, StateInput};

/// Serde helpers for RFC 3339 timestamps (`2026-11-22T14:00:00Z`) in the signed payloads.
pub(crate) mod rfc3339 {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t.format(&Rfc3339).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| D::Error::custom(format!("{text:?} is not an RFC 3339 timestamp ({e})")))
    }
}
