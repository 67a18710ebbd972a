//! TOTP second factor (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) with one-time recovery codes.
//!
//! - Setup offers a random 160-bit secret (as base32 and an `otpauth://` URI for authenticator apps);
//!   it becomes active only after the person proves it with a code. Enabling returns ten recovery codes,
//!   shown once and stored as SHA-256 hashes.
//! - A code is accepted for the current step and one step either side (clock drift), and never twice:
//!   the last step used is remembered.
//! - Secrets are stored in the system database as hex; encryption at rest with an instance key comes
//!   with the directory-login work, which introduces that key.

use ring::{digest, hmac};
use rusqlite::{Connection, OptionalExtension};

use super::IdentityError;

const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Recovery codes issued when TOTP is enabled.
pub const RECOVERY_CODES: usize = 10;

/// The TOTP code for a secret at a step (RFC 6238 / RFC 4226 dynamic truncation).
pub fn code_at_step(secret: &[u8], step: i64) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &(step as u64).to_be_bytes());
    let bytes = tag.as_ref();
    let offset = (bytes[bytes.len() - 1] & 0x0f) as usize;
    let value = u32::from_be_bytes([
        bytes[offset] & 0x7f,
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ]);
    value % 10u32.pow(DIGITS)
}

/// The step a Unix time falls in.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECS)
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Finds the step a code matches within ±1 step of `now`, if any.
fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code: u32 = code
        .trim()
        .parse()
        .ok()
        .filter(|_| code.trim().len() == DIGITS as usize)?;
    let current = step_of(now);
    (current - 1..=current + 1).find(|&s| code_at_step(secret, s) == code)
}

fn hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    hex::encode(digest::digest(&digest::SHA256, normalised.as_bytes()))
}

/// Whether the account has TOTP enabled.
pub fn enabled(conn: &Connection, user_id: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT totp_secret IS NOT NULL FROM users WHERE id = ?1",
        [user_id],
        |r| r.get(0),
    )
    .optional()
    .map(|v| v.unwrap_or(false))
}

/// Starts setup: stores a new pending secret; returns it as base32 and as an `otpauth://` URI.
pub fn begin_setup(
    conn: &Connection,
    user_id: &str,
    username: &str,
) -> Result<(String, String), IdentityError> {
    if enabled(conn, user_id)? {
        return Err(IdentityError::TotpAlreadyEnabled);
    }
    let secret = crate::tenancy::random_bytes::<20>();
    conn.execute(
        "UPDATE users SET totp_pending = ?1 WHERE id = ?2",
        rusqlite::params![hex::encode(secret), user_id],
    )?;
    let b32 = base32(&secret);
    let uri = format!("otpauth://totp/Enclave:{username}?secret={b32}&issuer=Enclave&algorithm=SHA1&digits=6&period=30");
    Ok((b32, uri))
}

/// Confirms setup with a code from the app; enables TOTP and returns fresh recovery codes (shown once).
pub fn confirm_setup(
    conn: &Connection,
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<Vec<String>, IdentityError> {
    let pending: Option<String> = conn
        .query_row(
            "SELECT totp_pending FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let secret = pending
        .and_then(|h| hex::decode(h).ok())
        .ok_or(IdentityError::TotpNotStarted)?;
    let step = matching_step(&secret, code, now).ok_or(IdentityError::InvalidTotp)?;
    conn.execute(
        "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?1 WHERE id = ?2",
        rusqlite::params![step, user_id],
    )?;
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let raw = hex::encode(crate::tenancy::random_bytes::<5>());
        let code = format!("{}-{}", &raw[..5], &raw[5..]);
        conn.execute(
            "INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)",
            rusqlite::params![user_id, hash(&code)],
        )?;
        codes.push(code);
    }
    Ok(codes)
}

/// Checks a second factor at sign-in: a current TOTP code (never reused) or an unused recovery code.
pub fn check(conn: &Connection, user_id: &str, code: &str, now: i64) -> Result<(), IdentityError> {
    let row: Option<(Option<String>, Option<i64>)> = conn
        .query_row(
            "SELECT totp_secret, totp_last_step FROM users WHERE id = ?1",
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((Some(secret_hex), last_step)) = row else {
        return Ok(());
    };
    let secret = hex::decode(secret_hex).map_err(|_| IdentityError::InvalidTotp)?;
    if let Some(step) = matching_step(&secret, code, now) {
        if last_step.is_some_and(|last| step <= last) {
            return Err(IdentityError::InvalidTotp);
        }
        conn.execute(
            "UPDATE users SET totp_last_step = ?1 WHERE id = ?2",
            rusqlite::params![step, user_id],
        )?;
        return Ok(());
    }
    let used = conn.execute(
        "UPDATE recovery_codes SET used_at = ?1 WHERE user_id = ?2 AND code_hash = ?3 AND used_at IS NULL",
        rusqlite::params![now, user_id, hash(code)],
    )?;
    if used == 1 {
        Ok(())
    } else {
        Err(IdentityError::InvalidTotp)
    }
}

/// Turns TOTP off and deletes the recovery codes.
pub fn disable(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?1",
        [user_id],
    )?;
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user_id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1 seed, truncated to 6 digits.
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at_step(secret, step_of(time)), code, "t={time}");
        }
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }

    #[test]
    fn drift_window_and_format() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let prev = format!("{:06}", code_at_step(secret, step_of(now) - 1));
        let far = format!("{:06}", code_at_step(secret, step_of(now) - 3));
        assert!(matching_step(secret, &prev, now).is_some());
        assert!(matching_step(secret, &far, now).is_none());
        assert!(matching_step(secret, "12345", now).is_none());
    }
}
