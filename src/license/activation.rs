//! Air-gapped activation: the instance key, activation requests (armoured, and a single line for a QR
//! code) and signed usage reports.
//!
//! An installation holds an Ed25519 [`InstanceKey`] (PKCS#8, stored by the caller). An
//! [`ActivationRequest`] carries the installation id, host name, version, current counts and the
//! instance public key, signed by that key over `b"enclave-activation-request-v1/" ++ payload`. It is
//! self-signed: verification proves the request is intact and that its sender holds the instance key,
//! not who the sender is. The vendor tool binds the licence it issues to the request's installation id.
//!
//! Forms of a request:
//!
//! ```text
//! -----BEGIN ENCLAVE ACTIVATION REQUEST-----
//! <base64 payload JSON, 64 columns>
//! =
//! <base64 signature>
//! -----END ENCLAVE ACTIVATION REQUEST-----
//!
//! ENCLAVE-AR1:<base64url payload, no padding>.<base64url signature, no padding>   (one line, QR code)
//! ```
//!
//! A usage report is any JSON the caller produces, armoured as `ENCLAVE USAGE REPORT` with an
//! `Instance-Key: <base64 public key>` header and signed over `b"enclave-usage-report-v1/" ++ json`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::armor;
use super::format::LicenseError;

/// The armour label of activation requests.
pub const ACTIVATION_LABEL: &str = "ENCLAVE ACTIVATION REQUEST";
/// The domain prefix signed in activation requests.
pub const ACTIVATION_DOMAIN: &[u8] = b"enclave-activation-request-v1/";
/// The prefix of the single-line form.
pub const COMPACT_PREFIX: &str = "ENCLAVE-AR1:";
/// The longest single-line request produced or accepted (fits a QR code comfortably).
pub const MAX_COMPACT_BYTES: usize = 1500;
/// The largest armoured activation request accepted.
pub const MAX_ACTIVATION_BYTES: usize = 64 * 1024;
/// The armour label of usage reports.
pub const USAGE_REPORT_LABEL: &str = "ENCLAVE USAGE REPORT";
/// The domain prefix signed in usage reports.
pub const USAGE_REPORT_DOMAIN: &[u8] = b"enclave-usage-report-v1/";
/// The largest usage report accepted (1 MiB).
pub const MAX_USAGE_REPORT_BYTES: usize = 1024 * 1024;
/// The header carrying the instance public key in usage reports.
const INSTANCE_KEY_HEADER: &str = "Instance-Key";
/// The activation request format this version writes and reads.
const ACTIVATION_FORMAT: u32 = 1;
/// Longest `hostname` or `version` accepted in a request (keeps the single-line form small).
const MAX_FIELD_LEN: usize = 253;

/// The installation's own signing key (Ed25519).
#[derive(Debug)]
pub struct InstanceKey {
    pair: Ed25519KeyPair,
}

impl InstanceKey {
    /// Generates a new key and returns its PKCS#8 document, for the caller to store (secretly).
    pub fn generate() -> Result<Vec<u8>, LicenseError> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| LicenseError::Random)
    }

    /// Loads a key stored as PKCS#8 (as returned by [`InstanceKey::generate`]).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, LicenseError> {
        Ed25519KeyPair::from_pkcs8(pkcs8)
            .map(|pair| InstanceKey { pair })
            .map_err(|e| LicenseError::BadKey(format!("not an Ed25519 PKCS#8 v2 key ({e})")))
    }

    /// The public key, standard base64.
    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// Signs `domain ++ bytes`; returns the 64-byte signature.
    pub fn sign(&self, domain: &[u8], bytes: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&armor::signed_message(domain, bytes))
            .as_ref()
            .to_vec()
    }
}

/// What the installation has at the time of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationCounts {
    pub tenants: u64,
    pub users: u64,
    pub storage_bytes: u64,
}

/// The payload of an activation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRequest {
    /// Always 1.
    pub format: u32,
    pub installation_id: String,
    pub hostname: String,
    /// The Enclave version.
    pub version: String,
    pub counts: ActivationCounts,
    #[serde(with = "super::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The instance public key, standard base64 (32 bytes).
    pub instance_public_key: String,
}

impl ActivationRequest {
    /// A request from this installation, carrying `key`'s public key.
    pub fn new(
        installation_id: &str,
        hostname: &str,
        version: &str,
        counts: ActivationCounts,
        created_at: OffsetDateTime,
        key: &InstanceKey,
    ) -> Self {
        ActivationRequest {
            format: ACTIVATION_FORMAT,
            installation_id: installation_id.to_string(),
            hostname: hostname.to_string(),
            version: version.to_string(),
            counts,
            created_at,
            instance_public_key: key.public_key_b64(),
        }
    }

    /// The signed payload bytes and signature; `key` must be the request's instance key.
    fn signed(&self, key: &InstanceKey) -> Result<(Vec<u8>, Vec<u8>), LicenseError> {
        self.validate()?;
        if self.instance_public_key != key.public_key_b64() {
            return Err(LicenseError::BadKey(
                "the request names another instance key than the one signing it".into(),
            ));
        }
        let payload =
            serde_json::to_vec(self).map_err(|e| LicenseError::BadPayload(e.to_string()))?;
        let signature = key.sign(ACTIVATION_DOMAIN, &payload);
        Ok((payload, signature))
    }

    /// The armoured request, signed by `key`.
    pub fn to_armored(&self, key: &InstanceKey) -> Result<String, LicenseError> {
        let (payload, signature) = self.signed(key)?;
        Ok(armor::encode(ACTIVATION_LABEL, &[], &payload, &signature))
    }

    /// The single-line request for a QR code, signed by `key`; at most [`MAX_COMPACT_BYTES`].
    pub fn to_compact(&self, key: &InstanceKey) -> Result<String, LicenseError> {
        let (payload, signature) = self.signed(key)?;
        let line = format!(
            "{COMPACT_PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&signature)
        );
        if line.len() > MAX_COMPACT_BYTES {
            return Err(LicenseError::TooLarge {
                size: line.len(),
                limit: MAX_COMPACT_BYTES,
            });
        }
        Ok(line)
    }

    fn validate(&self) -> Result<(), LicenseError> {
        if self.format != ACTIVATION_FORMAT {
            return Err(LicenseError::UnsupportedFormat(self.format));
        }
        if self.installation_id.trim().is_empty() {
            return Err(LicenseError::BadPayload("installation_id is empty".into()));
        }
        if self.hostname.len() > MAX_FIELD_LEN || self.version.len() > MAX_FIELD_LEN {
            return Err(LicenseError::BadPayload(format!(
                "hostname and version are at most {MAX_FIELD_LEN} bytes"
            )));
        }
        Ok(())
    }
}

/// Parses the payload, checks its format and verifies its self-signature.
fn verify_request(payload: &[u8], signature: &[u8]) -> Result<ActivationRequest, LicenseError> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: u32,
    }
    let format: FormatOnly =
        serde_json::from_slice(payload).map_err(|e| LicenseError::BadPayload(e.to_string()))?;
    if format.format != ACTIVATION_FORMAT {
        return Err(LicenseError::UnsupportedFormat(format.format));
    }
    let request: ActivationRequest =
        serde_json::from_slice(payload).map_err(|e| LicenseError::BadPayload(e.to_string()))?;
    let public_key = STANDARD
        .decode(&request.instance_public_key)
        .map_err(|_| LicenseError::BadEncoding("instance public key"))?;
    if public_key.len() != 32 {
        return Err(LicenseError::BadKey(format!(
            "the instance public key is {} bytes; an Ed25519 public key is 32",
            public_key.len()
        )));
    }
    armor::verify(&public_key, ACTIVATION_DOMAIN, payload, signature)?;
    request.validate()?;
    Ok(request)
}

/// Parses and verifies an activation request, armoured or in the single-line form (detected by its
/// `ENCLAVE-AR1:` prefix after surrounding whitespace).
pub fn parse_activation_request(text: &[u8]) -> Result<ActivationRequest, LicenseError> {
    if text.len() > MAX_ACTIVATION_BYTES {
        return Err(LicenseError::TooLarge {
            size: text.len(),
            limit: MAX_ACTIVATION_BYTES,
        });
    }
    if text.trim_ascii().starts_with(COMPACT_PREFIX.as_bytes()) {
        return parse_activation_request_compact(text);
    }
    let armored = armor::decode(text, ACTIVATION_LABEL, MAX_ACTIVATION_BYTES)?;
    verify_request(&armored.payload, &armored.signature)
}

/// Parses and verifies the single-line form `ENCLAVE-AR1:<payload>.<signature>`.
pub fn parse_activation_request_compact(text: &[u8]) -> Result<ActivationRequest, LicenseError> {
    let line = text.trim_ascii();
    if line.len() > MAX_COMPACT_BYTES {
        return Err(LicenseError::TooLarge {
            size: line.len(),
            limit: MAX_COMPACT_BYTES,
        });
    }
    let rest = line
        .strip_prefix(COMPACT_PREFIX.as_bytes())
        .ok_or(LicenseError::NotArmoured {
            label: ACTIVATION_LABEL,
        })?;
    let dot = rest
        .iter()
        .position(|&b| b == b'.')
        .ok_or(LicenseError::Truncated("the signature is missing"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(&rest[..dot])
        .map_err(|_| LicenseError::BadEncoding("payload"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(&rest[dot + 1..])
        .map_err(|_| LicenseError::BadEncoding("signature"))?;
    if signature.is_empty() {
        return Err(LicenseError::Truncated("the signature is missing"));
    }
    if signature.len() != armor::SIGNATURE_LEN {
        return Err(LicenseError::BadSignatureLength {
            len: signature.len(),
        });
    }
    verify_request(&payload, &signature)
}

/// Signs a usage report (the caller's JSON bytes, signed as they are) with the instance key.
pub fn sign_usage_report(json_bytes: &[u8], key: &InstanceKey) -> String {
    let signature = key.sign(USAGE_REPORT_DOMAIN, json_bytes);
    armor::encode(
        USAGE_REPORT_LABEL,
        &[(INSTANCE_KEY_HEADER, &key.public_key_b64())],
        json_bytes,
        &signature,
    )
}

/// A usage report whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUsageReport {
    /// The report's JSON bytes, exactly as signed.
    pub json: Vec<u8>,
    /// The instance public key that signed it (standard base64).
    pub instance_public_key: String,
}

/// Verifies a usage report. With `expected_instance_key` (from the installation's activation request)
/// the report must be signed by that key ([`LicenseError::UnknownKey`] otherwise); without it, only
/// integrity under the key named in the report is checked.
pub fn verify_usage_report(
    text: &[u8],
    expected_instance_key: Option<&str>,
) -> Result<VerifiedUsageReport, LicenseError> {
    let armored = armor::decode(text, USAGE_REPORT_LABEL, MAX_USAGE_REPORT_BYTES)?;
    let key_b64 = armored
        .header(INSTANCE_KEY_HEADER)
        .ok_or(LicenseError::MissingKeyId)?
        .to_string();
    if expected_instance_key.is_some_and(|expected| expected.trim() != key_b64) {
        return Err(LicenseError::UnknownKey { key_id: key_b64 });
    }
    let public_key = STANDARD
        .decode(&key_b64)
        .map_err(|_| LicenseError::BadEncoding("instance public key"))?;
    armor::verify(
        &public_key,
        USAGE_REPORT_DOMAIN,
        &armored.payload,
        &armored.signature,
    )?;
    Ok(VerifiedUsageReport {
        json: armored.payload,
        instance_public_key: key_b64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::format::tests::{mutate, XorShift};
    use time::macros::datetime;

    fn key() -> InstanceKey {
        InstanceKey::from_pkcs8(&InstanceKey::generate().expect("generates")).expect("loads")
    }

    fn request(key: &InstanceKey) -> ActivationRequest {
        ActivationRequest::new(
            "0f3c2a9e-6b1d-4c55-9a7e-2b8d1e4f6a01",
            "enclave-01.corp.example.com",
            "0.1.0",
            ActivationCounts {
                tenants: 3,
                users: 42,
                storage_bytes: 12_345_678_901,
            },
            datetime!(2026-06-01 12:00 UTC),
            key,
        )
    }

    #[test]
    fn armoured_request_round_trips() {
        let key = key();
        let req = request(&key);
        let text = req.to_armored(&key).expect("signs");
        assert!(text.starts_with("-----BEGIN ENCLAVE ACTIVATION REQUEST-----\n"));
        assert_eq!(
            parse_activation_request(text.as_bytes()).expect("verifies"),
            req
        );
        let crlf = format!("\r\n{}\r\n", text.replace('\n', "\r\n"));
        assert_eq!(
            parse_activation_request(crlf.as_bytes()).expect("verifies"),
            req
        );
    }

    #[test]
    fn compact_request_round_trips_and_is_small() {
        let key = key();
        let req = request(&key);
        let line = req.to_compact(&key).expect("signs");
        assert!(line.starts_with("ENCLAVE-AR1:"));
        assert!(!line.contains(['\n', '+', '/', '=']));
        assert!(line.len() < 1000, "{} bytes", line.len());
        assert_eq!(
            parse_activation_request_compact(line.as_bytes()).expect("ok"),
            req
        );
        assert_eq!(
            parse_activation_request(format!("  {line}\r\n").as_bytes()).expect("ok"),
            req
        );
        // The longest allowed host name and version still fit.
        let mut long = req.clone();
        long.hostname = "h".repeat(253);
        long.version = "v".repeat(253);
        let line = long.to_compact(&key).expect("fits");
        assert!(line.len() <= MAX_COMPACT_BYTES);
    }

    #[test]
    fn tampered_or_foreign_requests_are_refused() {
        let key = key();
        let other = self::key();
        let req = request(&key);
        // Signed by another key than the one it names.
        assert!(matches!(
            req.to_armored(&other),
            Err(LicenseError::BadKey(_))
        ));
        // Claiming another key: the self-signature fails.
        let mut forged = req.clone();
        forged.instance_public_key = other.public_key_b64();
        let payload = serde_json::to_vec(&forged).expect("json");
        let sig = key.sign(ACTIVATION_DOMAIN, &payload);
        let text = armor::encode(ACTIVATION_LABEL, &[], &payload, &sig);
        assert_eq!(
            parse_activation_request(text.as_bytes()),
            Err(LicenseError::BadSignature)
        );
        // Edited installation id in the compact form.
        let line = req.to_compact(&key).expect("signs");
        let (head, sig) = line.split_once('.').expect("dot");
        let payload = URL_SAFE_NO_PAD
            .decode(head.trim_start_matches(COMPACT_PREFIX))
            .expect("b64");
        let edited = String::from_utf8(payload)
            .expect("utf8")
            .replace("0f3c2a9e", "0f3c2a9f");
        let edited = format!("{COMPACT_PREFIX}{}.{sig}", URL_SAFE_NO_PAD.encode(edited));
        assert_eq!(
            parse_activation_request(edited.as_bytes()),
            Err(LicenseError::BadSignature)
        );
        // Domain separation: a licence-domain signature over the same bytes does not verify.
        let payload = serde_json::to_vec(&req).expect("json");
        let sig = key.sign(crate::license::format::LICENSE_DOMAIN, &payload);
        let text = armor::encode(ACTIVATION_LABEL, &[], &payload, &sig);
        assert_eq!(
            parse_activation_request(text.as_bytes()),
            Err(LicenseError::BadSignature)
        );
        assert!(matches!(
            parse_activation_request(b"ENCLAVE-AR1:abc"),
            Err(LicenseError::Truncated(_))
        ));
        assert!(matches!(
            parse_activation_request(b"hello"),
            Err(LicenseError::NotArmoured { .. })
        ));
        let format2 = serde_json::to_vec(&ActivationRequest {
            format: 2,
            ..req.clone()
        })
        .expect("json");
        let sig = key.sign(ACTIVATION_DOMAIN, &format2);
        let text = armor::encode(ACTIVATION_LABEL, &[], &format2, &sig);
        assert_eq!(
            parse_activation_request(text.as_bytes()),
            Err(LicenseError::UnsupportedFormat(2))
        );
    }

    #[test]
    fn usage_reports_are_signed_and_verified() {
        let key = key();
        let json = br#"{"month":"2026-05","api_requests":1234}"#;
        let text = sign_usage_report(json, &key);
        assert!(text.starts_with("-----BEGIN ENCLAVE USAGE REPORT-----\nInstance-Key: "));
        let verified = verify_usage_report(text.as_bytes(), None).expect("verifies");
        assert_eq!(verified.json, json);
        assert_eq!(verified.instance_public_key, key.public_key_b64());
        verify_usage_report(text.as_bytes(), Some(&key.public_key_b64())).expect("expected key");
        assert!(matches!(
            verify_usage_report(text.as_bytes(), Some(&self::key().public_key_b64())),
            Err(LicenseError::UnknownKey { .. })
        ));
        let edited = sign_usage_report(br#"{"month":"2026-05","api_requests":1}"#, &key);
        let sep = edited.find("\n=\n").expect("sep");
        let orig_sep = text.find("\n=\n").expect("sep");
        let spliced = format!("{}{}", &edited[..sep], &text[orig_sep..]);
        assert_eq!(
            verify_usage_report(spliced.as_bytes(), None),
            Err(LicenseError::BadSignature)
        );
        let no_header = text.replacen(&format!("Instance-Key: {}\n", key.public_key_b64()), "", 1);
        assert_eq!(
            verify_usage_report(no_header.as_bytes(), None),
            Err(LicenseError::MissingKeyId)
        );
    }

    #[test]
    fn instance_keys_load_and_reject_garbage() {
        let pkcs8 = InstanceKey::generate().expect("generates");
        let a = InstanceKey::from_pkcs8(&pkcs8).expect("loads");
        let b = InstanceKey::from_pkcs8(&pkcs8).expect("loads");
        assert_eq!(a.public_key_b64(), b.public_key_b64());
        assert_eq!(a.sign(b"d/", b"x").len(), 64);
        assert!(matches!(
            InstanceKey::from_pkcs8(b"garbage"),
            Err(LicenseError::BadKey(_))
        ));
    }

    #[test]
    fn never_panics_on_mangled_requests_or_reports() {
        let key = key();
        let req = request(&key);
        let armored = req.to_armored(&key).expect("signs");
        let compact = req.to_compact(&key).expect("signs");
        let report = sign_usage_report(b"{}", &key);
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..1000 {
            let _ = parse_activation_request(&mutate(&mut rng, armored.as_bytes()));
            let _ = parse_activation_request(&mutate(&mut rng, compact.as_bytes()));
            let _ = verify_usage_report(&mutate(&mut rng, report.as_bytes()), None);
        }
    }
}
