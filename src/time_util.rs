//! Timestamps: every time Enclave stores or returns is UTC, formatted as RFC 3339 with second precision.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The current UTC time, truncated to whole seconds.
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Formats a time as RFC 3339 (`2026-11-22T14:00:00Z`).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The current UTC time as RFC 3339 text, the form stored in the databases.
pub fn now_rfc3339() -> String {
    format_rfc3339(now_utc())
}

/// Parses an RFC 3339 timestamp as stored by [`now_rfc3339`].
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}
