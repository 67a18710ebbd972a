//! Timestamps: every time Enclave stores or returns is UTC, formatted as RFC 3339 with second precision.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The current UTC time, truncated to whole seconds.
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// The clock for dates that matter to the business: licence states and usage days and months. It is
/// the system clock, shifted by `ENCLAVE_TEST_CLOCK_OFFSET_SECS` in builds with the `test-license-key`
/// feature so integration tests can reach expiry or a month's end. Release builds cannot have that
/// feature, so they always use the system clock.
pub fn business_now() -> OffsetDateTime {
    let now = now_utc();
    #[cfg(feature = "test-license-key")]
    {
        // Read once: the offset is fixed for the life of the process (tests restart the server).
        static OFFSET: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
        let offset = OFFSET.get_or_init(|| {
            std::env::var(TEST_CLOCK_OFFSET_ENV)
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
        });
        if let Some(offset) = offset {
            return now + time::Duration::seconds(*offset);
        }
    }
    now
}

/// The test-only clock shift (see [`business_now`]).
pub const TEST_CLOCK_OFFSET_ENV: &str = "ENCLAVE_TEST_CLOCK_OFFSET_SECS";

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
