//! Talking to a directory server with ldap3: connections (failover over the configured URLs, TLS with
//! the system roots plus the configured CA, timeouts on everything), the sign-in sequence and group
//! resolution. Every step is written to a [`Trace`] so "test login" can show exactly what was sent
//! (filters and DNs; never a password).

use std::sync::Arc;
use std::time::Duration;

use ldap3::{
    dn_escape, ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry,
    SearchOptions,
};
use serde::Serialize;

use super::settings::{Kind, Security, Settings};
use super::DirectoryError;

/// The AD matching rule that follows group nesting on the server (LDAP_MATCHING_RULE_IN_CHAIN).
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// AD `userAccountControl` bit of a disabled account.
const ACCOUNTDISABLE: u64 = 0x2;

/// What happened, step by step, for the admin's "test" buttons.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct Trace {
    pub steps: Vec<String>,
}

impl Trace {
    pub fn step(&mut self, text: impl Into<String>) {
        self.steps.push(text.into());
    }
}

/// A user found and authenticated in the directory.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectoryUser {
    pub dn: String,
    pub external_id: String,
    pub username: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    /// DNs of every group the user is in, nested membership included.
    pub groups: Vec<String>,
}

/// Parses PEM CA certificates.
pub fn parse_ca_pem(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, DirectoryError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            DirectoryError::InvalidSettings(format!("ca_pem: not PEM certificates: {e}"))
        })?;
    if certs.is_empty() {
        return Err(DirectoryError::InvalidSettings(
            "ca_pem: no CERTIFICATE block found".into(),
        ));
    }
    Ok(certs)
}

fn tls_config(settings: &Settings) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(pem) = &settings.ca_pem {
        for cert in parse_ca_pem(pem)? {
            roots.add(cert).map_err(|e| {
                DirectoryError::InvalidSettings(format!("ca_pem: certificate not usable: {e}"))
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Unavailable(format!("TLS set-up: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn describe(e: &ldap3::LdapError) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!("TLS: the server's certificate is not trusted (check ca_pem): {text}")
    } else if text.contains("NotValidForName") {
        format!("TLS: the certificate does not name this host: {text}")
    } else {
        text
    }
}

/// An open, not yet bound connection to one of the directory's servers.
pub struct Connection {
    pub ldap: Ldap,
    pub url: String,
    timeout: Duration,
}

/// Connects to the first server that answers (in the configured order), within the timeouts.
pub async fn connect(settings: &Settings, trace: &mut Trace) -> Result<Connection, DirectoryError> {
    let timeout = Duration::from_secs(settings.operation_timeout_secs);
    let connect_timeout = Duration::from_secs(settings.connect_timeout_secs);
    let tls = match settings.security {
        Security::None => None,
        _ => Some(tls_config(settings)?),
    };
    let mut failures = Vec::new();
    for url in &settings.urls {
        let mut conn_settings = LdapConnSettings::new()
            .set_conn_timeout(connect_timeout)
            .set_starttls(settings.security == Security::Starttls)
            .set_no_tls_verify(settings.skip_tls_verify);
        if let Some(tls) = &tls {
            conn_settings = conn_settings.set_config(tls.clone());
        }
        // The whole set-up (TCP, TLS handshake or StartTLS) is bounded, not only the TCP connect.
        let attempt = tokio::time::timeout(
            connect_timeout + timeout,
            LdapConnAsync::with_settings(conn_settings, url),
        )
        .await;
        match attempt {
            Ok(Ok((conn, ldap))) => {
                ldap3::drive!(conn);
                trace.step(format!("connected to {url} ({:?})", settings.security));
                return Ok(Connection {
                    ldap,
                    url: url.clone(),
                    timeout,
                });
            }
            Ok(Err(e)) => {
                let why = describe(&e);
                trace.step(format!("{url}: {why}"));
                failures.push(format!("{url}: {why}"));
            }
            Err(_) => {
                trace.step(format!(
                    "{url}: no answer within {} s",
                    (connect_timeout + timeout).as_secs()
                ));
                failures.push(format!("{url}: timed out"));
            }
        }
    }
    Err(DirectoryError::Unavailable(failures.join("; ")))
}

impl Connection {
    /// Simple bind; `Ok(false)` when the server says the credentials are wrong.
    pub async fn bind(&mut self, dn: &str, password: &str) -> Result<bool, DirectoryError> {
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("{}: bind: {}", self.url, describe(&e)))
            })?;
        match result.rc {
            0 => Ok(true),
            // invalidCredentials, inappropriateAuthentication, unwillingToPerform (e.g. a disabled account)
            49 | 48 | 53 => Ok(false),
            rc => Err(DirectoryError::Unavailable(format!(
                "{}: bind refused with result code {rc}: {}",
                self.url, result.text
            ))),
        }
    }

    /// A subtree search with a size limit, returning entries (referrals are skipped, not followed).
    pub async fn search(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let options = SearchOptions::new()
            .sizelimit(size_limit)
            .timelimit(i32::try_from(self.timeout.as_secs()).unwrap_or(i32::MAX));
        let result = self
            .ldap
            .with_search_options(options)
            .with_timeout(self.timeout)
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("{}: search: {}", self.url, describe(&e)))
            })?;
        let ldap3::SearchResult(entries, outcome) = result;
        // sizeLimitExceeded (4) still returns the entries found: the caller counts them.
        if outcome.rc != 0 && outcome.rc != 4 {
            return Err(DirectoryError::Unavailable(format!(
                "{}: search under {base} failed with result code {}: {}",
                self.url, outcome.rc, outcome.text
            )));
        }
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref())
            .map(SearchEntry::construct)
            .collect())
    }

    /// A paged search of everything under `base` matching `filter` (for synchronisation).
    pub async fn search_all(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: u32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(i32::try_from(page_size).unwrap_or(500))),
        ];
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("{}: search: {}", self.url, describe(&e)))
            })?;
        let mut out = Vec::new();
        while let Some(entry) = stream.next().await.map_err(|e| {
            DirectoryError::Unavailable(format!("{}: search: {}", self.url, describe(&e)))
        })? {
            out.push(SearchEntry::construct(entry));
        }
        let outcome = stream.finish().await;
        if outcome.rc != 0 {
            return Err(DirectoryError::Unavailable(format!(
                "{}: search under {base} failed with result code {}: {}",
                self.url, outcome.rc, outcome.text
            )));
        }
        Ok(out)
    }

    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Connects and binds as the service account (or stays anonymous when no bind DN is set).
pub async fn service_connection(
    settings: &Settings,
    service_password: &str,
    trace: &mut Trace,
) -> Result<Connection, DirectoryError> {
    let mut conn = connect(settings, trace).await?;
    if !settings.bind_dn.trim().is_empty() {
        if !conn.bind(&settings.bind_dn, service_password).await? {
            trace.step(format!("service bind as {} refused", settings.bind_dn));
            return Err(DirectoryError::ServiceBindFailed(settings.bind_dn.clone()));
        }
        trace.step(format!("service bind as {}", settings.bind_dn));
    } else {
        trace.step("no service account: searching anonymously");
    }
    Ok(conn)
}

/// The user filter for a login name, escaped per RFC 4515.
pub fn user_filter(settings: &Settings, login: &str) -> String {
    settings.user_filter.replace("{login}", &ldap_escape(login))
}

fn first(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
        .filter(|v| !v.is_empty())
}

/// The stable id of an entry: a text attribute (entryUUID) or a binary one (objectGUID), as hex.
fn stable_id(entry: &SearchEntry, attr: &str) -> Option<String> {
    first(entry, attr).or_else(|| {
        entry
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(attr))
            .and_then(|(_, v)| v.first())
            .map(hex::encode)
    })
}

/// The attributes asked for on user entries.
pub fn user_attributes(settings: &Settings) -> Vec<&str> {
    let a = &settings.attributes;
    let mut attrs = vec![
        a.id.as_str(),
        a.username.as_str(),
        a.email.as_str(),
        a.display_name.as_str(),
    ];
    if settings.kind == Kind::ActiveDirectory {
        attrs.push("userAccountControl");
    }
    attrs
}

/// Reads a user entry; refuses an AD account whose `userAccountControl` says it is disabled.
pub fn read_user(
    settings: &Settings,
    entry: &SearchEntry,
) -> Result<DirectoryUser, DirectoryError> {
    if settings.kind == Kind::ActiveDirectory {
        let control = first(entry, "userAccountControl")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if control & ACCOUNTDISABLE != 0 {
            return Err(DirectoryError::Denied(
                "this directory account is disabled".into(),
            ));
        }
    }
    let external_id = stable_id(entry, &settings.attributes.id).ok_or_else(|| {
        DirectoryError::Unavailable(format!(
            "the entry {} has no {} (the stable id attribute)",
            entry.dn, settings.attributes.id
        ))
    })?;
    let username = first(entry, &settings.attributes.username).ok_or_else(|| {
        DirectoryError::Unavailable(format!(
            "the entry {} has no {} (the username attribute)",
            entry.dn, settings.attributes.username
        ))
    })?;
    Ok(DirectoryUser {
        dn: entry.dn.clone(),
        external_id,
        username,
        email: first(entry, &settings.attributes.email),
        display_name: first(entry, &settings.attributes.display_name),
        groups: Vec::new(),
    })
}

/// Every group `dn` is in, nested membership included: AD answers in one query with the in-chain
/// rule; elsewhere groups naming the user (or a group found so far) as `member`/`uniqueMember` are
/// followed up to `nested_group_depth` levels.
pub async fn groups_of(
    conn: &mut Connection,
    settings: &Settings,
    dn: &str,
    trace: &mut Trace,
) -> Result<Vec<String>, DirectoryError> {
    let base = settings.group_base().to_string();
    if settings.kind == Kind::ActiveDirectory {
        let filter = format!("(member:{IN_CHAIN}:={})", ldap_escape(dn));
        trace.step(format!("groups: search {base} for {filter}"));
        let found = conn.search(&base, &filter, &["1.1"], 0).await?;
        return Ok(found.into_iter().map(|e| e.dn).collect());
    }
    let mut all: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut frontier = vec![dn.to_string()];
    for level in 0..=settings.nested_group_depth {
        if frontier.is_empty() {
            break;
        }
        let clauses: String = frontier
            .iter()
            .map(|m| {
                let m = ldap_escape(m.as_str()).into_owned();
                format!("(member={m})(uniqueMember={m})")
            })
            .collect();
        let filter = format!("(|{clauses})");
        trace.step(format!(
            "groups (level {level}): search {base} for {filter}"
        ));
        let found = conn.search(&base, &filter, &["1.1"], 0).await?;
        frontier = Vec::new();
        for entry in found {
            if seen.insert(super::settings::normalize_dn(&entry.dn)) {
                frontier.push(entry.dn.clone());
                all.push(entry.dn);
            }
        }
    }
    Ok(all)
}

/// The sign-in sequence (see the module doc of [`super`]): returns the authenticated user with groups.
pub async fn authenticate(
    settings: &Settings,
    service_password: &str,
    login: &str,
    password: &str,
    trace: &mut Trace,
) -> Result<DirectoryUser, DirectoryError> {
    // RFC 4513 §5.1.2: a simple bind with an empty password is an "unauthenticated bind" that many
    // servers accept. Refuse before any traffic.
    if password.trim().is_empty() || login.trim().is_empty() {
        trace.step("empty login or password: refused before contacting the directory");
        return Err(DirectoryError::InvalidCredentials);
    }
    if login.contains('\0') || login.len() > 256 {
        trace.step("login with a NUL byte or longer than 256 bytes: refused");
        return Err(DirectoryError::InvalidCredentials);
    }
    let mut service = service_connection(settings, service_password, trace).await?;
    let filter = user_filter(settings, login.trim());
    trace.step(format!(
        "user search: base {} filter {filter} (size limit 2)",
        settings.user_base
    ));
    let entries = service
        .search(&settings.user_base, &filter, &user_attributes(settings), 2)
        .await?;
    let entry = match entries.len() {
        1 => entries.into_iter().next(),
        0 => None,
        _ => {
            trace.step("more than one entry matched: refused (the filter must find exactly one)");
            service.close().await;
            return Err(DirectoryError::Ambiguous);
        }
    };
    let Some(entry) = entry else {
        trace.step("no entry matched");
        service.close().await;
        return Err(DirectoryError::InvalidCredentials);
    };
    trace.step(format!("found {}", entry.dn));
    let mut user = match read_user(settings, &entry) {
        Ok(user) => user,
        Err(e) => {
            service.close().await;
            return Err(e);
        }
    };
    // The user's own bind on a fresh connection: the service connection keeps its identity.
    let mut own = connect(settings, trace).await?;
    let bound = own.bind(&entry.dn, password).await;
    own.close().await;
    if !bound? {
        trace.step(format!("bind as {} refused: wrong password", entry.dn));
        service.close().await;
        return Err(DirectoryError::InvalidCredentials);
    }
    trace.step(format!("bind as {} succeeded", entry.dn));
    let groups = groups_of(&mut service, settings, &entry.dn, trace).await;
    service.close().await;
    user.groups = groups?;
    trace.step(format!(
        "groups: {}",
        if user.groups.is_empty() {
            "none".to_string()
        } else {
            user.groups.join("; ")
        }
    ));
    if !settings.admits(&user.groups) {
        let required = settings.required_group().unwrap_or_default();
        trace.step(format!("not a member of the required group {required}"));
        return Err(DirectoryError::Denied(format!(
            "your directory account is not in the group allowed to use Enclave ({required}); ask your administrator for access"
        )));
    }
    Ok(user)
}

/// Escapes a value for use inside a DN (RFC 4514), for administrators composing DNs.
pub fn escape_dn_value(value: &str) -> String {
    dn_escape(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_escaped_in_filters() {
        let settings = Settings {
            user_filter: "(&(objectClass=person)(uid={login}))".into(),
            ..Settings::default()
        };
        assert_eq!(
            user_filter(&settings, "admin)(uid=*"),
            "(&(objectClass=person)(uid=admin\\29\\28uid=\\2a))"
        );
        assert_eq!(
            user_filter(&settings, "*"),
            "(&(objectClass=person)(uid=\\2a))"
        );
        assert_eq!(
            user_filter(&settings, "a\\b"),
            "(&(objectClass=person)(uid=a\\5cb))"
        );
        assert_eq!(escape_dn_value("a,b+c"), "a\\2cb\\2bc");
    }
}
