//! Passwords: argon2id hashing with OWASP parameters, verification, and the password policy.
//!
//! - Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`), OWASP's minimum for argon2id.
//! - Verification of an unknown user still runs one argon2 verification against a fixed dummy hash, so
//!   response time does not reveal whether an account exists.
//! - Policy: 12 to 128 characters, checked exactly as typed (no trimming, no truncation), not one of the
//!   10,000 most common passwords nor a longer common one (case-insensitive), not the username.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;
/// Longest password accepted (ASVS asks that at least 64 be allowed).
pub const MAX_LENGTH: usize = 128;

const COMMON: &str = include_str!("common-passwords.txt");

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Why a new password is refused. The messages are shown to the person choosing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the password must have at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password must have at most {MAX_LENGTH} characters")]
    TooLong,
    #[error("this password is one of the most commonly used passwords; choose another")]
    Common,
    #[error("the password must not be the username")]
    SameAsUsername,
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str, username: &str) -> Result<(), PolicyError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PolicyError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PolicyError::TooLong);
    }
    let lower = password.to_lowercase();
    if common().contains(lower.as_str()) {
        return Err(PolicyError::Common);
    }
    if lower == username.to_lowercase() {
        return Err(PolicyError::SameAsUsername);
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    // argon2's defaults are argon2id, m=19456 KiB, t=2, p=1: OWASP's recommended minimum.
    Argon2::default()
}

/// Hashes a password into a PHC string.
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&crate::tenancy::random_bytes::<16>())
        .unwrap_or_else(|_| SaltString::from_b64("c2FsdHNhbHRzYWx0c2FsdA").expect("static salt"));
    match hasher().hash_password(password.as_bytes(), &salt) {
        Ok(h) => h.to_string(),
        // Only an absurd parameter set fails; the defaults never do. Fail closed with an unusable hash.
        Err(_) => "!".to_string(),
    }
}

/// Verifies a password against a stored PHC string. A malformed hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Burns the same time as a real verification, for logins of unknown users.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("dummy password for timing equalisation"));
    let _ = verify(password, dummy);
}

/// A random password for the bootstrap administrator: 24 characters from an unambiguous alphabet
/// (about 124 bits).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    crate::tenancy::random_bytes::<24>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = hash("correct horse battery staple");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", &h));
        assert!(!verify("correct horse battery stapl", &h));
        assert!(!verify("anything", "not a hash"));
        assert_ne!(hash("same"), hash("same"), "salted");
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("short", "u"), Err(PolicyError::TooShort));
        assert_eq!(
            check_policy(&"x".repeat(129), "u"),
            Err(PolicyError::TooLong)
        );
        assert!(
            check_policy(&"é".repeat(64), "u").is_ok(),
            "64+ characters allowed, counted as characters"
        );
        assert_eq!(check_policy("123qweasdzxc", "u"), Err(PolicyError::Common));
        assert_eq!(check_policy("QAZWSXEDCRFV", "u"), Err(PolicyError::Common));
        assert_eq!(
            check_policy("alice-in-wonderland", "Alice-In-Wonderland"),
            Err(PolicyError::SameAsUsername)
        );
        assert!(check_policy("  spaces kept as typed  ", "u").is_ok());
        assert!(common().len() >= 9_000);
    }

    #[test]
    fn generated_passwords_pass_the_policy() {
        let p = generate();
        assert_eq!(p.len(), 24);
        check_policy(&p, "admin").expect("policy");
    }
}
