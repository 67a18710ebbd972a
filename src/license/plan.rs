//! The plan catalogue and the entitlements in force.
//!
//! The catalogue (the only place these numbers live; `docs/license.md` repeats it). `—` is unlimited.
//! The metered limits (API requests, tokens, messages, workflow runs) are per calendar month; the
//! others are ceilings on what exists at once.
//!
//! | limit / feature     | community  | pro (vendor-tool default) | business      | enterprise |
//! |---------------------|-----------:|--------------------------:|--------------:|-----------:|
//! | `tenants`           | 1          | 5                         | 25            | —          |
//! | `users`             | 5          | 25                        | 250           | —          |
//! | `users_per_tenant`  | 5          | —                         | —             | —          |
//! | `storage_gb`        | 1          | 50                        | 500           | —          |
//! | `api_requests`      | 1,000      | 100,000                   | 1,000,000     | —          |
//! | `chat_tokens`       | 100,000    | 10,000,000                | 100,000,000   | —          |
//! | `embedding_tokens`  | 1,000,000  | 50,000,000                | 500,000,000   | —          |
//! | `messages`          | 500        | 50,000                    | 500,000       | —          |
//! | `workflow_runs`     | 100        | 10,000                    | 100,000       | —          |
//! | features            | none       | `multi_tenant`, `audit_export`, `scheduled_backups` | pro's + `ldap`, `sso` | all |
//!
//! Community is what an installation without a (valid) licence gets. The pro, business and enterprise columns are
//! the defaults the vendor tool writes into a licence; once issued, the licence's own limits and
//! features are what count.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::format::{Edition, LicensePayload};
use super::state::LicenseState;

/// Resource limits. `None` (JSON `null` or absent) is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub tenants: Option<u64>,
    pub users: Option<u64>,
    pub users_per_tenant: Option<u64>,
    pub storage_gb: Option<u64>,
    /// Per calendar month.
    pub api_requests: Option<u64>,
    /// Per calendar month.
    pub chat_tokens: Option<u64>,
    /// Per calendar month.
    pub embedding_tokens: Option<u64>,
    /// Per calendar month.
    pub messages: Option<u64>,
    /// Per calendar month.
    pub workflow_runs: Option<u64>,
}

impl Limits {
    /// No limit at all.
    pub const UNLIMITED: Limits = Limits {
        tenants: None,
        users: None,
        users_per_tenant: None,
        storage_gb: None,
        api_requests: None,
        chat_tokens: None,
        embedding_tokens: None,
        messages: None,
        workflow_runs: None,
    };
}

/// A feature a licence can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    Ldap,
    MultiTenant,
    AuditExport,
    ScheduledBackups,
    Branding,
    Sso,
}

impl Feature {
    /// Every feature this version knows.
    pub const ALL: &'static [Feature] = &[
        Feature::Ldap,
        Feature::MultiTenant,
        Feature::AuditExport,
        Feature::ScheduledBackups,
        Feature::Branding,
        Feature::Sso,
    ];

    /// The name used in licence payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Ldap => "ldap",
            Feature::MultiTenant => "multi_tenant",
            Feature::AuditExport => "audit_export",
            Feature::ScheduledBackups => "scheduled_backups",
            Feature::Branding => "branding",
            Feature::Sso => "sso",
        }
    }

    /// The feature with this name, if this version knows it.
    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.iter().copied().find(|f| f.as_str() == name)
    }
}

/// A plan, for display and defaults: the free plan or a licensed edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Community,
    Pro,
    Business,
    Enterprise,
}

const COMMUNITY_LIMITS: Limits = Limits {
    tenants: Some(1),
    users: Some(5),
    users_per_tenant: Some(5),
    storage_gb: Some(1),
    api_requests: Some(1_000),
    chat_tokens: Some(100_000),
    embedding_tokens: Some(1_000_000),
    messages: Some(500),
    workflow_runs: Some(100),
};

const PRO_LIMITS: Limits = Limits {
    tenants: Some(5),
    users: Some(25),
    users_per_tenant: None,
    storage_gb: Some(50),
    api_requests: Some(100_000),
    chat_tokens: Some(10_000_000),
    embedding_tokens: Some(50_000_000),
    messages: Some(50_000),
    workflow_runs: Some(10_000),
};

const BUSINESS_LIMITS: Limits = Limits {
    tenants: Some(25),
    users: Some(250),
    users_per_tenant: None,
    storage_gb: Some(500),
    api_requests: Some(1_000_000),
    chat_tokens: Some(100_000_000),
    embedding_tokens: Some(500_000_000),
    messages: Some(500_000),
    workflow_runs: Some(100_000),
};

const BUSINESS_FEATURES: &[Feature] = &[
    Feature::Ldap,
    Feature::MultiTenant,
    Feature::AuditExport,
    Feature::ScheduledBackups,
    Feature::Sso,
];

const PRO_FEATURES: &[Feature] = &[
    Feature::MultiTenant,
    Feature::AuditExport,
    Feature::ScheduledBackups,
];

impl Plan {
    /// The machine name (`community`, `pro`, `business`, `enterprise`).
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Community => "community",
            Plan::Pro => "pro",
            Plan::Business => "business",
            Plan::Enterprise => "enterprise",
        }
    }

    /// The name shown to people.
    pub fn display_name(self) -> &'static str {
        match self {
            Plan::Community => "Community",
            Plan::Pro => "Pro",
            Plan::Business => "Business",
            Plan::Enterprise => "Enterprise",
        }
    }

    /// The catalogue limits of the plan (see the module table).
    pub fn default_limits(self) -> Limits {
        match self {
            Plan::Community => COMMUNITY_LIMITS,
            Plan::Pro => PRO_LIMITS,
            Plan::Business => BUSINESS_LIMITS,
            Plan::Enterprise => Limits::UNLIMITED,
        }
    }

    /// The catalogue features of the plan.
    pub fn default_features(self) -> &'static [Feature] {
        match self {
            Plan::Community => &[],
            Plan::Pro => PRO_FEATURES,
            Plan::Business => BUSINESS_FEATURES,
            Plan::Enterprise => Feature::ALL,
        }
    }
}

impl From<Edition> for Plan {
    fn from(edition: Edition) -> Self {
        match edition {
            Edition::Pro => Plan::Pro,
            Edition::Business => Plan::Business,
            Edition::Enterprise => Plan::Enterprise,
        }
    }
}

/// What the installation may use right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveEntitlements {
    pub plan: Plan,
    /// For display: `Community`, `Pro`, `Pro (trial)`, `Enterprise`, ...
    pub edition_label: String,
    pub trial: bool,
    pub limits: Limits,
    /// The known features in force (unknown names in a licence are ignored here).
    pub features: BTreeSet<String>,
}

impl EffectiveEntitlements {
    /// The free plan: no licence, or a licence that is not valid here.
    pub fn community() -> Self {
        EffectiveEntitlements {
            plan: Plan::Community,
            edition_label: Plan::Community.display_name().to_string(),
            trial: false,
            limits: COMMUNITY_LIMITS,
            features: BTreeSet::new(),
        }
    }

    /// The entitlements a verified licence grants: its limits and its known features.
    pub fn of_license(license: &LicensePayload) -> Self {
        let plan = Plan::from(license.edition);
        let edition_label = if license.trial {
            format!("{} (trial)", plan.display_name())
        } else {
            plan.display_name().to_string()
        };
        EffectiveEntitlements {
            plan,
            edition_label,
            trial: license.trial,
            limits: license.limits,
            features: license
                .features
                .iter()
                .filter(|name| Feature::parse(name).is_some())
                .cloned()
                .collect(),
        }
    }

    /// The entitlements for a licence in a given state: community when there is no licence or it is
    /// invalid here, the licence's otherwise (also when restricted: the `restricted` flag of the
    /// evaluation, not the limits, says what is refused).
    pub fn from_state(license: Option<&LicensePayload>, state: &LicenseState) -> Self {
        match (license, state) {
            (None, _) | (_, LicenseState::Community) | (_, LicenseState::Invalid { .. }) => {
                Self::community()
            }
            (Some(license), _) => Self::of_license(license),
        }
    }

    /// Whether a feature is in force.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(feature.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::format::tests::PAYLOAD;

    #[test]
    fn catalogue_numbers() {
        let c = Plan::Community.default_limits();
        assert_eq!(
            (c.tenants, c.users, c.users_per_tenant, c.storage_gb),
            (Some(1), Some(5), Some(5), Some(1))
        );
        assert_eq!(c.api_requests, Some(1_000));
        assert_eq!(c.chat_tokens, Some(100_000));
        assert_eq!(c.embedding_tokens, Some(1_000_000));
        assert_eq!((c.messages, c.workflow_runs), (Some(500), Some(100)));
        let p = Plan::Pro.default_limits();
        assert_eq!(
            (p.users, p.tenants, p.storage_gb),
            (Some(25), Some(5), Some(50))
        );
        assert_eq!(p.api_requests, Some(100_000));
        assert_eq!(p.chat_tokens, Some(10_000_000));
        assert_eq!(p.embedding_tokens, Some(50_000_000));
        assert_eq!((p.messages, p.workflow_runs), (Some(50_000), Some(10_000)));
        assert_eq!(Plan::Enterprise.default_limits(), Limits::UNLIMITED);
        assert_eq!(Plan::Enterprise.default_features(), Feature::ALL);
        assert!(Plan::Community.default_features().is_empty());
        assert_eq!(
            Plan::Pro.default_features(),
            &[
                Feature::MultiTenant,
                Feature::AuditExport,
                Feature::ScheduledBackups
            ]
        );
    }

    #[test]
    fn feature_names_round_trip() {
        for f in Feature::ALL {
            assert_eq!(Feature::parse(f.as_str()), Some(*f));
        }
        assert_eq!(Feature::parse("hologram"), None);
    }

    #[test]
    fn entitlements_follow_the_licence_and_state() {
        let mut license = LicensePayload::from_json(PAYLOAD.as_bytes()).expect("valid");
        let ents = EffectiveEntitlements::of_license(&license);
        assert_eq!(ents.plan, Plan::Pro);
        assert_eq!(ents.edition_label, "Pro");
        assert_eq!(ents.limits.users, Some(25));
        assert!(ents.has(Feature::AuditExport));
        assert!(!ents.has(Feature::Sso));
        assert!(
            !ents.features.contains("hologram"),
            "unknown features are ignored"
        );
        license.trial = true;
        assert_eq!(
            EffectiveEntitlements::of_license(&license).edition_label,
            "Pro (trial)"
        );

        let community = EffectiveEntitlements::community();
        assert_eq!(
            EffectiveEntitlements::from_state(None, &LicenseState::Community),
            community
        );
        assert_eq!(
            EffectiveEntitlements::from_state(
                Some(&license),
                &LicenseState::Invalid { reason: "x".into() }
            ),
            community
        );
        assert_eq!(
            EffectiveEntitlements::from_state(Some(&license), &LicenseState::Restricted).limits,
            license.limits
        );
    }
}
