//! A directory's settings: what an administrator configures, with defaults for OpenLDAP and Active
//! Directory, and the checks that refuse a setting that cannot work.

use serde::{Deserialize, Serialize};

use super::DirectoryError;
use crate::identity::Role;

/// Which kind of server: decides the default attributes, how nested groups are found and whether
/// `userAccountControl` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// OpenLDAP and other RFC 4519 directories (groupOfNames `member`, nested groups expanded by the client).
    Openldap,
    /// Active Directory (nested groups with LDAP_MATCHING_RULE_IN_CHAIN, disabled accounts refused).
    ActiveDirectory,
}

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// `ldaps://` URLs (TLS from the first byte).
    Ldaps,
    /// `ldap://` URLs upgraded with StartTLS before anything is sent.
    Starttls,
    /// Plain LDAP: passwords cross the network in clear. Only for a lab.
    None,
}

/// The attributes read from a user entry. An empty name means the default of the directory's kind
/// (see [`Attributes::for_kind`] and [`Settings::attributes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Attributes {
    /// The stable id of an entry (`entryUUID`, `objectGUID`): accounts are keyed by it.
    pub id: String,
    pub username: String,
    pub email: String,
    pub display_name: String,
}

impl Attributes {
    pub fn for_kind(kind: Kind) -> Attributes {
        match kind {
            Kind::Openldap => Attributes {
                id: "entryUUID".into(),
                username: "uid".into(),
                email: "mail".into(),
                display_name: "displayName".into(),
            },
            Kind::ActiveDirectory => Attributes {
                id: "objectGUID".into(),
                username: "sAMAccountName".into(),
                email: "mail".into(),
                display_name: "displayName".into(),
            },
        }
    }
}

impl Attributes {
    /// These names, with every empty one replaced by the kind's default.
    fn or_defaults_of(&self, kind: Kind) -> Attributes {
        let defaults = Attributes::for_kind(kind);
        let pick = |set: &str, default: String| {
            if set.trim().is_empty() {
                default
            } else {
                set.trim().to_string()
            }
        };
        Attributes {
            id: pick(&self.id, defaults.id),
            username: pick(&self.username, defaults.username),
            email: pick(&self.email, defaults.email),
            display_name: pick(&self.display_name, defaults.display_name),
        }
    }
}

/// The sign-in filter used when none is set: OpenLDAP matches `uid`; Active Directory accepts the
/// pre-Windows 2000 name (`sAMAccountName`) or the user principal name (`alice@corp.example`).
pub fn default_user_filter(kind: Kind) -> &'static str {
    match kind {
        Kind::Openldap => "(uid={login})",
        Kind::ActiveDirectory => {
            "(&(objectClass=user)(|(sAMAccountName={login})(userPrincipalName={login})))"
        }
    }
}

/// A directory group (by DN, or `*` for every directory user) that gives a role in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mapping {
    pub group: String,
    pub tenant: String,
    /// `viewer`, `editor`, `admin` or `owner`.
    pub role: String,
}

/// Everything about one directory except its service password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Settings {
    pub kind: Kind,
    /// Tried in order: the next one when a server does not answer.
    pub urls: Vec<String>,
    pub security: Security,
    /// PEM CA certificates trusted in addition to the system's.
    pub ca_pem: Option<String>,
    /// Accept any certificate. Shown as a warning everywhere: it lets anyone on the path read passwords.
    pub skip_tls_verify: bool,
    pub connect_timeout_secs: u64,
    pub operation_timeout_secs: u64,
    /// The service account that searches for users (empty: anonymous search).
    pub bind_dn: String,
    /// A file holding the service password, instead of storing it (sealed) in the database.
    pub bind_password_file: Option<String>,
    pub user_base: String,
    /// LDAP filter with a `{login}` placeholder, replaced by the escaped login name; empty: the
    /// kind's default ([`default_user_filter`]).
    pub user_filter: String,
    pub attributes: Attributes,
    /// Where groups are searched (default: the user base).
    pub group_base: Option<String>,
    /// How deep nested groups are followed (OpenLDAP; AD resolves nesting on the server).
    pub nested_group_depth: u8,
    /// Entries per page when synchronising.
    pub page_size: u32,
    /// Referrals are not followed (the only supported value is `false`).
    pub follow_referrals: bool,
    /// Only members of this group (DN, nested membership counts) may sign in.
    pub required_group: Option<String>,
    pub mappings: Vec<Mapping>,
    /// Cron expression (sec min hour day month weekday) of the synchronisation; empty disables it.
    pub sync_schedule: String,
    /// A run that would deactivate more than this share of the directory's accounts stops instead.
    pub sync_max_deactivate_percent: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kind: Kind::Openldap,
            urls: Vec::new(),
            security: Security::Starttls,
            ca_pem: None,
            skip_tls_verify: false,
            connect_timeout_secs: 5,
            operation_timeout_secs: 10,
            bind_dn: String::new(),
            bind_password_file: None,
            user_base: String::new(),
            user_filter: String::new(),
            attributes: Attributes::default(),
            group_base: None,
            nested_group_depth: 5,
            page_size: 500,
            follow_referrals: false,
            required_group: None,
            mappings: Vec::new(),
            sync_schedule: "0 0 * * * *".into(),
            sync_max_deactivate_percent: 20,
        }
    }
}

fn invalid(message: impl Into<String>) -> DirectoryError {
    DirectoryError::InvalidSettings(message.into())
}

impl Settings {
    /// Refuses settings that cannot work, with a message naming the field.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        if self.urls.is_empty() {
            return Err(invalid("urls: give at least one server URL"));
        }
        for url in &self.urls {
            let scheme_ok = match self.security {
                Security::Ldaps => url.starts_with("ldaps://"),
                Security::Starttls | Security::None => url.starts_with("ldap://"),
            };
            if !scheme_ok {
                return Err(invalid(format!(
                    "urls: {url} does not fit security {:?} (ldaps uses ldaps://, starttls and none use ldap://)",
                    self.security
                )));
            }
        }
        if !(1..=120).contains(&self.connect_timeout_secs)
            || !(1..=600).contains(&self.operation_timeout_secs)
        {
            return Err(invalid(
                "timeouts: connect_timeout_secs must be 1..=120 and operation_timeout_secs 1..=600",
            ));
        }
        if self.user_base.trim().is_empty() {
            return Err(invalid("user_base: the DN under which users are searched"));
        }
        let filter = self.user_filter_template();
        if !filter.contains("{login}") || !filter.starts_with('(') || !filter.ends_with(')') {
            return Err(invalid(
                "user_filter: an LDAP filter in parentheses with a {login} placeholder, e.g. (uid={login})",
            ));
        }
        if self.follow_referrals {
            return Err(invalid(
                "follow_referrals: referrals are not followed by Enclave",
            ));
        }
        if self.nested_group_depth > 20 || !(1..=5000).contains(&self.page_size) {
            return Err(invalid(
                "nested_group_depth is at most 20; page_size 1..=5000",
            ));
        }
        if self.sync_max_deactivate_percent > 100 {
            return Err(invalid(
                "sync_max_deactivate_percent is a percentage (0..=100)",
            ));
        }
        if let Some(pem) = &self.ca_pem {
            super::client::parse_ca_pem(pem)?;
        }
        if !self.sync_schedule.trim().is_empty() {
            super::sync::parse_schedule(&self.sync_schedule)?;
        }
        for m in &self.mappings {
            if m.group.trim().is_empty() {
                return Err(invalid("mappings: group is a DN or *"));
            }
            crate::tenancy::TenantId::parse(&m.tenant)
                .map_err(|_| invalid(format!("mappings: {:?} is not a tenant id", m.tenant)))?;
            if Role::parse(&m.role).is_none() {
                return Err(invalid(format!(
                    "mappings: role {:?} is not viewer, editor, admin or owner",
                    m.role
                )));
            }
        }
        Ok(())
    }

    /// The sign-in filter with its `{login}` placeholder (the kind's default when none is set).
    pub fn user_filter_template(&self) -> &str {
        let set = self.user_filter.trim();
        if set.is_empty() {
            default_user_filter(self.kind)
        } else {
            set
        }
    }

    /// The attribute names to read, the kind's defaults filling those not set.
    pub fn attributes(&self) -> Attributes {
        self.attributes.or_defaults_of(self.kind)
    }

    /// The required group, when one is set.
    pub fn required_group(&self) -> Option<&str> {
        self.required_group
            .as_deref()
            .filter(|g| !g.trim().is_empty())
    }

    /// Whether a user with these groups may sign in (member of the required group, if any).
    pub fn admits(&self, groups: &[String]) -> bool {
        self.required_group().is_none_or(|required| {
            let wanted = normalize_dn(required);
            groups.iter().any(|g| normalize_dn(g) == wanted)
        })
    }

    pub fn group_base(&self) -> &str {
        self.group_base
            .as_deref()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or(&self.user_base)
    }
}

/// Normalises a DN for comparison: lower case, no spaces around separators.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.split('=').map(str::trim).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

/// The roles a user with these groups gets: per tenant, the highest role of every matching mapping
/// (a `*` mapping matches every directory user).
pub fn roles_for(mappings: &[Mapping], groups: &[String]) -> Vec<(String, Role)> {
    let groups: std::collections::HashSet<String> =
        groups.iter().map(|g| normalize_dn(g)).collect();
    let mut best: std::collections::BTreeMap<String, Role> = std::collections::BTreeMap::new();
    for m in mappings {
        let matches = m.group.trim() == "*" || groups.contains(&normalize_dn(&m.group));
        let Some(role) = Role::parse(&m.role) else {
            continue;
        };
        if matches {
            let entry = best.entry(m.tenant.clone()).or_insert(role);
            if role > *entry {
                *entry = role;
            }
        }
    }
    best.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(group: &str, tenant: &str, role: &str) -> Mapping {
        Mapping {
            group: group.into(),
            tenant: tenant.into(),
            role: role.into(),
        }
    }

    #[test]
    fn the_highest_role_wins_and_star_matches_everyone() {
        let mappings = [
            mapping("cn=Engineers,ou=groups,dc=x", "eng", "editor"),
            mapping("cn=leads, ou=groups, dc=x", "eng", "admin"),
            mapping("*", "everyone", "viewer"),
            mapping("cn=sales,ou=groups,dc=x", "sales", "viewer"),
        ];
        let roles = roles_for(
            &mappings,
            &[
                "CN=engineers,OU=groups,DC=x".into(),
                "cn=leads,ou=groups,dc=x".into(),
            ],
        );
        assert_eq!(
            roles,
            vec![
                ("eng".into(), Role::Admin),
                ("everyone".into(), Role::Viewer)
            ]
        );
        assert_eq!(
            roles_for(&mappings, &[]),
            vec![("everyone".into(), Role::Viewer)]
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        let mut s = Settings {
            urls: vec!["ldap://127.0.0.1:389".into()],
            user_base: "ou=people,dc=x".into(),
            ..Settings::default()
        };
        assert!(s.validate().is_ok());
        s.user_filter = "(uid=alice)".into();
        assert!(s.validate().is_err());
        s.user_filter = "(uid={login})".into();
        s.security = Security::Ldaps;
        assert!(s.validate().is_err(), "ldap:// with ldaps");
    }

    #[test]
    fn unset_filter_and_attributes_take_the_kinds_defaults() {
        let mut s = Settings {
            kind: Kind::ActiveDirectory,
            ..Settings::default()
        };
        assert!(s.user_filter_template().contains("sAMAccountName={login}"));
        assert!(s
            .user_filter_template()
            .contains("userPrincipalName={login}"));
        assert_eq!(s.attributes().id, "objectGUID");
        s.attributes.email = "userPrincipalName".into();
        assert_eq!(s.attributes().email, "userPrincipalName");
        assert_eq!(s.attributes().username, "sAMAccountName");
        s.kind = Kind::Openldap;
        assert_eq!(s.user_filter_template(), "(uid={login})");
        assert_eq!(s.attributes().id, "entryUUID");
    }
}
