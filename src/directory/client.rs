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

/// Attribute names as ldap3 takes them.
fn names<S: AsRef<str>>(attrs: &[S]) -> Vec<&str> {
    attrs.iter().map(AsRef::as_ref).collect()
}

/// What a directory said to a simple bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    Accepted,
    /// Wrong password, or an account that may not sign in; `reason` is for administrators only (the
    /// person signing in sees "wrong username or password", which reveals nothing about the account).
    Refused {
        reason: String,
    },
}

/// Why a bind was refused, in words: Active Directory puts a sub-code (`data 52e`, `data 533`, …) in
/// the diagnostic message of an invalidCredentials answer.
fn refusal_reason(diagnostic: &str) -> String {
    let code = diagnostic
        .split(", data ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let words = match code.as_str() {
        "525" => "no such user",
        "52e" => "wrong password",
        "530" => "not permitted to sign in at this time",
        "531" => "not permitted to sign in from this workstation",
        "532" => "password expired",
        "533" => "account disabled",
        "701" => "account expired",
        "773" => "the user must reset their password",
        "775" => "account locked out",
        _ if diagnostic.trim().is_empty() => return "wrong password".into(),
        _ => return format!("refused: {}", diagnostic.trim()),
    };
    format!("{words} (AD data {code})")
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
    /// Simple bind. `Ok(Bind::Refused)` when the server says the credentials (or the account) do not
    /// allow it; an error only when the server could not be asked.
    pub async fn bind(&mut self, dn: &str, password: &str) -> Result<Bind, DirectoryError> {
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .simple_bind(dn, password)
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("{}: bind: {}", self.url, describe(&e)))
            })?;
        match result.rc {
            0 => Ok(Bind::Accepted),
            // invalidCredentials, inappropriateAuthentication, unwillingToPerform (e.g. a disabled account)
            49 | 48 | 53 => Ok(Bind::Refused {
                reason: refusal_reason(&result.text),
            }),
            rc => Err(DirectoryError::Unavailable(format!(
                "{}: bind refused with result code {rc}{}: {}",
                self.url,
                if rc == 8 {
                    " (strongerAuthRequired: the server accepts passwords only over TLS; use ldaps or starttls)"
                } else {
                    ""
                },
                result.text
            ))),
        }
    }

    /// A subtree search with a size limit, returning entries (referrals are skipped, not followed).
    pub async fn search<S: AsRef<str>>(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[S],
        size_limit: i32,
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let options = SearchOptions::new()
            .sizelimit(size_limit)
            .timelimit(i32::try_from(self.timeout.as_secs()).unwrap_or(i32::MAX));
        let result = self
            .ldap
            .with_search_options(options)
            .with_timeout(self.timeout)
            .search(base, Scope::Subtree, filter, names(attrs))
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
    pub async fn search_all<S: AsRef<str>>(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[S],
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
            .streaming_search_with(adapters, base, Scope::Subtree, filter, names(attrs))
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
        if let Bind::Refused { reason } = conn.bind(&settings.bind_dn, service_password).await? {
            trace.step(format!(
                "service bind as {} refused: {reason}",
                settings.bind_dn
            ));
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
    settings
        .user_filter_template()
        .replace("{login}", &ldap_escape(login))
}

fn first(entry: &SearchEntry, attr: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
        .filter(|v| !v.is_empty())
}

/// The raw bytes of an attribute's first value, wherever ldap3 put it: values that happen to be valid
/// UTF-8 land in `attrs`, the others in `bin_attrs`.
fn first_bytes(entry: &SearchEntry, attr: &str) -> Option<Vec<u8>> {
    let named = |k: &String| k.eq_ignore_ascii_case(attr);
    entry
        .bin_attrs
        .iter()
        .find(|(k, _)| named(k))
        .and_then(|(_, v)| v.first().cloned())
        .or_else(|| {
            entry
                .attrs
                .iter()
                .find(|(k, _)| named(k))
                .and_then(|(_, v)| v.first())
                .map(|v| v.as_bytes().to_vec())
        })
        .filter(|v| !v.is_empty())
}

/// The stable id of an entry. AD's `objectGUID` is 16 bytes, shown the way AD tools show it
/// (`{b5aac92f-ca8f-40a7-…}` without braces: the first three fields little-endian); any other binary
/// id as hex; a text id (`entryUUID`) as it is.
fn stable_id(entry: &SearchEntry, attr: &str) -> Option<String> {
    if attr.eq_ignore_ascii_case("objectGUID") {
        return first_bytes(entry, attr).map(|raw| match <[u8; 16]>::try_from(raw.as_slice()) {
            Ok(guid) => format_guid(&guid),
            Err(_) => hex::encode(raw),
        });
    }
    first(entry, attr).or_else(|| first_bytes(entry, attr).map(hex::encode))
}

/// Formats a Windows GUID from its 16-byte wire form (Data1, Data2, Data3 little-endian; Data4 as is).
fn format_guid(b: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        hex::encode(&b[10..])
    )
}

/// The attributes asked for on user entries.
pub fn user_attributes(settings: &Settings) -> Vec<String> {
    let a = settings.attributes();
    let mut attrs = vec![a.id, a.username, a.email, a.display_name];
    if settings.kind == Kind::ActiveDirectory {
        attrs.push("userAccountControl".into());
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
    let names = settings.attributes();
    let external_id = stable_id(entry, &names.id).ok_or_else(|| {
        DirectoryError::Unavailable(format!(
            "the entry {} has no {} (the stable id attribute)",
            entry.dn, names.id
        ))
    })?;
    let username = first(entry, &names.username).ok_or_else(|| {
        DirectoryError::Unavailable(format!(
            "the entry {} has no {} (the username attribute)",
            entry.dn, names.username
        ))
    })?;
    Ok(DirectoryUser {
        dn: entry.dn.clone(),
        external_id,
        username,
        email: first(entry, &names.email),
        display_name: first(entry, &names.display_name),
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
    // The user's own bind on a fresh connection: the service connection keeps its identity. It comes
    // before anything is said about the account, so a wrong password learns nothing (not even that
    // the account is disabled).
    let mut own = connect(settings, trace).await?;
    let bound = own.bind(&entry.dn, password).await;
    own.close().await;
    if let Bind::Refused { reason } = bound? {
        trace.step(format!("bind as {} refused: {reason}", entry.dn));
        service.close().await;
        return Err(DirectoryError::InvalidCredentials);
    }
    let mut user = match read_user(settings, &entry) {
        Ok(user) => user,
        Err(e) => {
            trace.step(format!("{e}"));
            service.close().await;
            return Err(e);
        }
    };
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
    fn ad_bind_refusals_are_explained_to_administrators() {
        let ad = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 533, v1db1";
        assert_eq!(refusal_reason(ad), "account disabled (AD data 533)");
        assert_eq!(
            refusal_reason(&ad.replace("533", "52e")),
            "wrong password (AD data 52e)"
        );
        assert_eq!(refusal_reason(""), "wrong password");
        assert_eq!(
            refusal_reason("Invalid credentials"),
            "refused: Invalid credentials"
        );
    }

    #[test]
    fn object_guids_read_as_ad_tools_show_them() {
        // erin's objectGUID as a Samba AD DC sent it, and as `samba-tool user show` prints it.
        let wire = hex::decode("2fc9aab58fcaa740a6d479a6133775cb").expect("hex");
        let entry = SearchEntry {
            dn: "CN=erin,CN=Users,DC=enclave,DC=test".into(),
            attrs: Default::default(),
            bin_attrs: [("objectGUID".to_string(), vec![wire])].into(),
        };
        assert_eq!(
            stable_id(&entry, "objectGUID").as_deref(),
            Some("b5aac92f-ca8f-40a7-a6d4-79a6133775cb")
        );
        // A GUID whose bytes happen to be valid UTF-8 arrives in `attrs`: the same formatting applies.
        let ascii = SearchEntry {
            dn: "CN=x".into(),
            attrs: [(
                "objectGUID".to_string(),
                vec!["ABCDEFGHIJKLMNOP".to_string()],
            )]
            .into(),
            bin_attrs: Default::default(),
        };
        assert_eq!(
            stable_id(&ascii, "objectguid").as_deref(),
            Some("44434241-4645-4847-494a-4b4c4d4e4f50")
        );
    }

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
