//! Quota alert webhooks: when a tenant's usage first reaches 80 % or 100 % of a quota, a JSON POST to the
//! URL its admins set (optional).
//!
//! SSRF guard: the URL must be `http` or `https` with a host; right before sending, the host is resolved
//! and the request is refused if any address is loopback, link-local (including the cloud metadata
//! address 169.254.169.254), unspecified, multicast or broadcast — unless the administrator allowed
//! private targets (`usage.webhook_allow_private`). Addresses in private ranges (10/8, 172.16/12,
//! 192.168/16, fc00::/7) are allowed: internal alerting systems live there. Redirects are not followed,
//! a 5-second timeout applies, and a failure is logged, never retried in a loop. The URL is never logged
//! with its query string (it may carry a token).

use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;

/// The tenant settings key holding the webhook URL.
pub const WEBHOOK_SETTING: &str = "alert_webhook_url";

/// Why a webhook URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the webhook URL must start with http:// or https:// and name a host (at most 2,048 characters)")]
    BadUrl,
    #[error("the webhook host {host} resolves to {addr}, a loopback, link-local or otherwise internal-only address; refused (see usage.webhook_allow_private)")]
    ForbiddenAddress { host: String, addr: IpAddr },
    #[error("the webhook host {0} cannot be resolved")]
    Unresolvable(String),
}

impl crate::error::ErrorCode for WebhookError {
    fn code(&self) -> crate::error::Code {
        crate::error::Code::InvalidRequest
    }
}

/// The host and port of an http(s) URL, or an error.
pub fn parse_target(url: &str) -> Result<(String, u16), WebhookError> {
    if url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err(WebhookError::BadUrl);
    }
    let (scheme, rest) = url.split_once("://").ok_or(WebhookError::BadUrl)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(WebhookError::BadUrl),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(WebhookError::BadUrl);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(WebhookError::BadUrl)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| WebhookError::BadUrl)?,
            None if after.is_empty() => default_port,
            None => return Err(WebhookError::BadUrl),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| WebhookError::BadUrl)?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(WebhookError::BadUrl);
    }
    Ok((host, port))
}

/// Whether an address may only be reached from the machine itself or its link.
pub fn is_internal_only(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (first & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| is_internal_only(IpAddr::V4(v4)))
        }
    }
}

/// Checks a URL against the guard, resolving its host now.
pub fn check(url: &str, allow_private: bool) -> Result<(), WebhookError> {
    let (host, port) = parse_target(url)?;
    if allow_private {
        return Ok(());
    }
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|_| WebhookError::Unresolvable(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(WebhookError::Unresolvable(host));
    }
    if let Some(bad) = addrs.iter().find(|a| is_internal_only(a.ip())) {
        return Err(WebhookError::ForbiddenAddress {
            host,
            addr: bad.ip(),
        });
    }
    Ok(())
}

/// The URL without query string or fragment, for logs.
fn loggable(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}

/// Sends an alert in the background (a thread per alert: alerts are rare). `what` names it in logs
/// (`quota alert`, `backup alert`).
pub fn send(what: &'static str, url: String, allow_private: bool, payload: serde_json::Value) {
    let spawned = std::thread::Builder::new()
        .name("alert-webhook".into())
        .spawn(move || {
            if let Err(e) = check(&url, allow_private) {
                tracing::warn!(url = loggable(&url), error = %e, "{what} webhook refused");
                return;
            }
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(5)))
                .max_redirects(0)
                .http_status_as_error(false)
                .build()
                .into();
            match agent.post(&url).send_json(&payload) {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(url = loggable(&url), "{what} webhook delivered")
                }
                Ok(r) => tracing::warn!(
                    url = loggable(&url),
                    status = r.status().as_u16(),
                    "{what} webhook answered with an error"
                ),
                Err(e) => {
                    tracing::warn!(url = loggable(&url), error = %e, "{what} webhook failed")
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the webhook thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_strictly() {
        assert_eq!(
            parse_target("https://alerts.example.com/hook?t=1"),
            Ok(("alerts.example.com".into(), 443))
        );
        assert_eq!(
            parse_target("http://10.0.0.5:8080/x"),
            Ok(("10.0.0.5".into(), 8080))
        );
        assert_eq!(parse_target("http://[::1]:9/"), Ok(("::1".into(), 9)));
        for bad in [
            "ftp://x/",
            "http://",
            "https://user:pw@host/",
            "http://host:notaport/",
            "javascript:alert(1)",
            "http://a b/",
        ] {
            assert_eq!(parse_target(bad), Err(WebhookError::BadUrl), "{bad}");
        }
    }

    #[test]
    fn loopback_link_local_and_metadata_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(
                    check(url, false),
                    Err(WebhookError::ForbiddenAddress { .. })
                ),
                "{url}"
            );
            assert_eq!(check(url, true), Ok(()), "allowed explicitly: {url}");
        }
        assert_eq!(
            check("http://10.1.2.3/", false),
            Ok(()),
            "private ranges are fine"
        );
    }
}
