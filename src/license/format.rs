//! The signed licence file: its armour, its payload ([`LicensePayload`]), signing ([`sign`]) and
//! verification ([`parse_and_verify`]).
//!
//! ```text
//! -----BEGIN ENCLAVE LICENSE-----
//! Key-Id: enclave-prod-2026
//! <standard base64 of the payload JSON bytes, wrapped at 64 columns>
//! =
//! <standard base64 of the 64-byte Ed25519 signature, wrapped at 64 columns>
//! -----END ENCLAVE LICENSE-----
//! ```
//!
//! The signature is Ed25519 over `b"enclave-license-v1/" ++ payload bytes`. The payload bytes are
//! signed and stored as they are; they are never re-serialised, so the vendor's exact JSON is what is
//! verified. CRLF line endings, whitespace around lines, blank lines, text around the armour and a
//! different wrapping of the base64 are tolerated (none of them changes the signed bytes); anything that
//! changes the decoded bytes fails with [`LicenseError::BadSignature`].

use std::collections::BTreeSet;

use ring::signature::Ed25519KeyPair;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::armor;
use super::keys::TrustedKeys;
use super::plan::Limits;

/// The largest licence file accepted, in bytes (64 KiB). Larger input is refused before parsing.
pub const MAX_LICENSE_BYTES: usize = 64 * 1024;
/// The armour label: `-----BEGIN ENCLAVE LICENSE-----`.
pub const LICENSE_LABEL: &str = "ENCLAVE LICENSE";
/// The domain prefix of the signed message.
pub const LICENSE_DOMAIN: &[u8] = b"enclave-license-v1/";
/// The payload format this version reads and writes.
pub const LICENSE_FORMAT: u32 = 1;
/// The header naming the signing key.
const KEY_ID_HEADER: &str = "Key-Id";

/// Why a licence (or activation request, or usage report) was refused. One variant per failure; the
/// messages are meant for the administrator who installs the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    #[error("the file is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "not an Enclave file of the expected kind: there is no `-----BEGIN {label}-----` line"
    )]
    NotArmoured { label: &'static str },
    #[error("the file is truncated: {0}")]
    Truncated(&'static str),
    #[error("the file does not say which key signed it (no Key-Id line)")]
    MissingKeyId,
    #[error("the {0} is not valid base64")]
    BadEncoding(&'static str),
    #[error("the signature is {len} bytes long; an Ed25519 signature is 64 bytes")]
    BadSignatureLength { len: usize },
    #[error("the file was signed with the key {key_id:?}, which this build does not trust")]
    UnknownKey { key_id: String },
    #[error("the signature does not match: the file was modified or not issued by the vendor")]
    BadSignature,
    #[error("the signed content is not valid: {0}")]
    BadPayload(String),
    #[error(
        "format {0} is not supported by this version of Enclave, which reads format 1; upgrade Enclave"
    )]
    UnsupportedFormat(u32),
    #[error("the dates are not valid: {0}")]
    InvalidDates(String),
    #[error("the key is not valid: {0}")]
    BadKey(String),
    #[error("the system random number generator failed")]
    Random,
}

/// The licensed edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    Pro,
    Business,
    Enterprise,
}

impl Edition {
    /// The name used in payloads and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Pro => "pro",
            Edition::Business => "business",
            Edition::Enterprise => "enterprise",
        }
    }
}

/// The signed content of a licence. Unknown fields are ignored (forward compatible within format 1);
/// a change that older versions must not ignore needs a new `format`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicensePayload {
    /// Always 1.
    pub format: u32,
    /// The vendor's id of this licence (random hex).
    pub license_id: String,
    pub edition: Edition,
    pub trial: bool,
    /// The licensee, as shown in the UI.
    pub customer: String,
    #[serde(with = "super::rfc3339")]
    pub issued_at: OffsetDateTime,
    #[serde(with = "super::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "super::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Days after `expires_at` during which the licence still works (with a banner).
    pub grace_days: u32,
    /// The installation the licence is bound to; `None` is a site licence (any installation).
    #[serde(default)]
    pub installation_id: Option<String>,
    /// Absent or `null` limits are unlimited.
    pub limits: Limits,
    /// Feature names; unknown names are kept but have no effect (see [`super::Feature`]).
    #[serde(default)]
    pub features: BTreeSet<String>,
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

impl LicensePayload {
    /// Parses and validates payload JSON: `format` must be 1, `expires_at` after `starts_at`, and the
    /// ids non-empty.
    pub fn from_json(bytes: &[u8]) -> Result<Self, LicenseError> {
        let format: FormatOnly =
            serde_json::from_slice(bytes).map_err(|e| LicenseError::BadPayload(e.to_string()))?;
        if format.format != LICENSE_FORMAT {
            return Err(LicenseError::UnsupportedFormat(format.format));
        }
        let payload: LicensePayload =
            serde_json::from_slice(bytes).map_err(|e| LicenseError::BadPayload(e.to_string()))?;
        payload.validate()?;
        Ok(payload)
    }

    /// The checks [`LicensePayload::from_json`] makes after parsing.
    pub fn validate(&self) -> Result<(), LicenseError> {
        if self.format != LICENSE_FORMAT {
            return Err(LicenseError::UnsupportedFormat(self.format));
        }
        if self.expires_at <= self.starts_at {
            return Err(LicenseError::InvalidDates(format!(
                "expires_at ({}) is not after starts_at ({})",
                crate::time_util::format_rfc3339(self.expires_at),
                crate::time_util::format_rfc3339(self.starts_at)
            )));
        }
        if self.license_id.trim().is_empty() {
            return Err(LicenseError::BadPayload("license_id is empty".into()));
        }
        if self.customer.trim().is_empty() {
            return Err(LicenseError::BadPayload("customer is empty".into()));
        }
        if self
            .installation_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(LicenseError::BadPayload(
                "installation_id is empty (omit it for a site licence)".into(),
            ));
        }
        Ok(())
    }
}

/// A licence whose signature verified against a trusted key and whose payload is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLicense {
    pub payload: LicensePayload,
    /// The id of the key that signed it.
    pub key_id: String,
    /// The armour exactly as given (BEGIN line to END line), to be stored verbatim.
    pub armored: String,
}

/// Signs `payload_bytes` (the exact bytes, not re-serialised) and returns the armoured licence.
pub fn sign(payload_bytes: &[u8], key_id: &str, keypair: &Ed25519KeyPair) -> String {
    let signature = keypair.sign(&armor::signed_message(LICENSE_DOMAIN, payload_bytes));
    armor::encode(
        LICENSE_LABEL,
        &[(KEY_ID_HEADER, key_id)],
        payload_bytes,
        signature.as_ref(),
    )
}

/// Parses an armoured licence, verifies its signature against `keys`, then parses and validates the
/// payload. The payload is only parsed once the signature has verified.
pub fn parse_and_verify(text: &[u8], keys: &TrustedKeys) -> Result<VerifiedLicense, LicenseError> {
    let armored = armor::decode(text, LICENSE_LABEL, MAX_LICENSE_BYTES)?;
    let key_id = armored
        .header(KEY_ID_HEADER)
        .ok_or(LicenseError::MissingKeyId)?
        .to_string();
    keys.verify(
        &key_id,
        LICENSE_DOMAIN,
        &armored.payload,
        &armored.signature,
    )?;
    let payload = LicensePayload::from_json(&armored.payload)?;
    Ok(VerifiedLicense {
        payload,
        key_id,
        armored: armored.text,
    })
}

/// What [`inspect`] found in a licence file, without requiring the signing key to be trusted.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub key_id: String,
    /// The signed payload bytes, as they are.
    pub payload_bytes: Vec<u8>,
    /// Whether the signature verifies against the keys given to [`inspect`].
    pub signature: Result<(), LicenseError>,
    /// The payload, if it parses and is valid.
    pub payload: Result<LicensePayload, LicenseError>,
}

/// Decodes a licence for display: fails only if the armour itself is broken; the signature check
/// against `keys` and the payload validation are reported, not enforced.
pub fn inspect(text: &[u8], keys: &TrustedKeys) -> Result<Inspection, LicenseError> {
    let armored = armor::decode(text, LICENSE_LABEL, MAX_LICENSE_BYTES)?;
    let key_id = armored
        .header(KEY_ID_HEADER)
        .ok_or(LicenseError::MissingKeyId)?
        .to_string();
    let signature = keys.verify(
        &key_id,
        LICENSE_DOMAIN,
        &armored.payload,
        &armored.signature,
    );
    let payload = LicensePayload::from_json(&armored.payload);
    Ok(Inspection {
        key_id,
        payload_bytes: armored.payload,
        signature,
        payload,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::license::keys::{PublicKeyFile, TrustedKeys};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use ring::signature::KeyPair as _;

    /// The committed test key (trusted only with the `test-license-key` feature; here it is passed
    /// explicitly).
    pub(crate) fn test_keypair() -> Ed25519KeyPair {
        Ed25519KeyPair::from_pkcs8(include_bytes!("../../tests/fixtures/license/test-key.pk8"))
            .expect("test key parses")
    }

    pub(crate) const TEST_KEY_ID: &str = "enclave-test-1";

    pub(crate) fn test_keys() -> TrustedKeys {
        let pair = test_keypair();
        let mut public_key = [0u8; 32];
        public_key.copy_from_slice(pair.public_key().as_ref());
        TrustedKeys::from_list(vec![PublicKeyFile {
            key_id: TEST_KEY_ID.into(),
            public_key,
        }])
    }

    pub(crate) const PAYLOAD: &str = r#"{"format":1,"license_id":"0123456789abcdef","edition":"pro","trial":false,"customer":"ACME Corp","issued_at":"2026-01-01T00:00:00Z","starts_at":"2026-01-01T00:00:00Z","expires_at":"2027-01-01T00:00:00Z","grace_days":14,"installation_id":null,"limits":{"tenants":5,"users":25,"storage_gb":50},"features":["audit_export","multi_tenant","hologram"]}"#;

    fn signed(payload: &str) -> String {
        sign(payload.as_bytes(), TEST_KEY_ID, &test_keypair())
    }

    #[test]
    fn sign_then_verify_round_trips_the_exact_bytes() {
        let text = signed(PAYLOAD);
        let verified = parse_and_verify(text.as_bytes(), &test_keys()).expect("verifies");
        assert_eq!(verified.key_id, TEST_KEY_ID);
        assert_eq!(verified.armored, text.trim_end());
        let p = verified.payload;
        assert_eq!(p.edition, Edition::Pro);
        assert_eq!(p.customer, "ACME Corp");
        assert_eq!(p.limits.users, Some(25));
        assert_eq!(p.limits.api_requests, None, "absent limit is unlimited");
        assert!(p.features.contains("hologram"), "unknown features are kept");
        assert_eq!(p.installation_id, None);
        // The stored armour verifies again.
        parse_and_verify(verified.armored.as_bytes(), &test_keys()).expect("verifies again");
    }

    #[test]
    fn crlf_and_blank_lines_around_the_armour_still_verify() {
        let text = signed(PAYLOAD);
        let mail = format!("\r\n\r\n{}   \r\n\r\n\r\n", text.replace('\n', "  \r\n"));
        parse_and_verify(mail.as_bytes(), &test_keys()).expect("verifies");
    }

    /// Replaces the payload base64 in an armoured licence by the base64 of `bytes` (signature kept).
    fn with_payload_bytes(text: &str, bytes: &[u8]) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let sep = lines.iter().position(|l| *l == "=").expect("separator");
        let mut out = vec![lines[0].to_string(), lines[1].to_string()];
        out.push(STANDARD.encode(bytes));
        out.extend(lines[sep..].iter().map(|l| l.to_string()));
        out.join("\n")
    }

    fn flip_signature_bit(text: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let sep = lines.iter().position(|l| *l == "=").expect("separator");
        let sig_b64: String = lines[sep + 1..lines.len() - 1].concat();
        let mut sig = STANDARD.decode(sig_b64).expect("sig");
        sig[10] ^= 0x01;
        let mut out: Vec<String> = lines[..=sep].iter().map(|l| l.to_string()).collect();
        out.push(STANDARD.encode(sig));
        out.push(lines[lines.len() - 1].to_string());
        out.join("\n")
    }

    fn rewrap(text: &str, width: usize) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let sep = lines.iter().position(|l| *l == "=").expect("separator");
        let body: String = lines[2..sep].concat();
        let mut out = vec![lines[0].to_string(), lines[1].to_string()];
        out.extend(
            body.as_bytes()
                .chunks(width)
                .map(|c| String::from_utf8_lossy(c).into_owned()),
        );
        out.extend(lines[sep..].iter().map(|l| l.to_string()));
        out.join("\n")
    }

    #[test]
    fn bad_inputs_fail_with_their_precise_error() {
        let good = signed(PAYLOAD);
        let keys = test_keys();
        let reencoded = {
            let value: serde_json::Value = serde_json::from_str(PAYLOAD).expect("json");
            let pretty = serde_json::to_vec_pretty(&value).expect("pretty");
            assert_ne!(pretty, PAYLOAD.as_bytes());
            with_payload_bytes(&good, &pretty)
        };
        let customer_edited = with_payload_bytes(&good, PAYLOAD.replace("ACME", "ACMF").as_bytes());
        let space_inside_base64 = {
            let mut lines: Vec<String> = good.lines().map(str::to_string).collect();
            lines[3].insert(10, ' ');
            lines[3].insert_str(20, "\t ");
            lines.join("\n")
        };
        let unknown_key = good.replace("Key-Id: enclave-test-1", "Key-Id: enclave-prod-1999");
        let no_key_id = good.replace("Key-Id: enclave-test-1\n", "");
        let oversized = format!("{}{}", " ".repeat(MAX_LICENSE_BYTES), good);
        let non_json = signed("this is not json");
        let format_2 = signed(&PAYLOAD.replace(r#""format":1"#, r#""format":2"#));
        let dates = signed(&PAYLOAD.replace("2027-01-01", "2025-01-01"));
        let bad_date = signed(&PAYLOAD.replace("2027-01-01T00:00:00Z", "next year"));
        let no_separator = good.replace("\n=\n", "\n");
        let bad_base64 = good.replacen(
            "Key-Id: enclave-test-1\n",
            "Key-Id: enclave-test-1\n!!!!",
            1,
        );
        let short_signature = {
            let lines: Vec<&str> = good.lines().collect();
            let sep = lines.iter().position(|l| *l == "=").expect("separator");
            let mut out: Vec<String> = lines[..=sep].iter().map(|l| l.to_string()).collect();
            out.push(STANDARD.encode([1u8; 32]));
            out.push(lines[lines.len() - 1].to_string());
            out.join("\n")
        };
        let activation_label = good.replace("ENCLAVE LICENSE", "ENCLAVE ACTIVATION REQUEST");

        type Case = (&'static str, Vec<u8>, fn(&LicenseError) -> bool);
        let cases: Vec<Case> = vec![
            ("empty input", vec![], |e| {
                matches!(e, LicenseError::NotArmoured { .. })
            }),
            (
                "garbage bytes",
                vec![0xff, 0x00, 0x13, 0x37, b'\n', 0xc3],
                |e| matches!(e, LicenseError::NotArmoured { .. }),
            ),
            (
                "another kind of armour",
                activation_label.into_bytes(),
                |e| matches!(e, LicenseError::NotArmoured { .. }),
            ),
            (
                "cut in half",
                good.as_bytes()[..good.len() / 2].to_vec(),
                |e| matches!(e, LicenseError::Truncated(_)),
            ),
            ("no separator", no_separator.into_bytes(), |e| {
                matches!(e, LicenseError::Truncated(_))
            }),
            ("re-encoded payload", reencoded.into_bytes(), |e| {
                *e == LicenseError::BadSignature
            }),
            ("customer edited", customer_edited.into_bytes(), |e| {
                *e == LicenseError::BadSignature
            }),
            (
                "signature bit flipped",
                flip_signature_bit(&good).into_bytes(),
                |e| *e == LicenseError::BadSignature,
            ),
            ("short signature", short_signature.into_bytes(), |e| {
                *e == LicenseError::BadSignatureLength { len: 32 }
            }),
            ("invalid base64", bad_base64.into_bytes(), |e| {
                *e == LicenseError::BadEncoding("payload")
            }),
            ("unknown key id", unknown_key.into_bytes(), |e| {
                *e == LicenseError::UnknownKey {
                    key_id: "enclave-prod-1999".into(),
                }
            }),
            ("no key id", no_key_id.into_bytes(), |e| {
                *e == LicenseError::MissingKeyId
            }),
            ("oversized", oversized.into_bytes(), |e| {
                matches!(
                    e,
                    LicenseError::TooLarge {
                        limit: MAX_LICENSE_BYTES,
                        ..
                    }
                )
            }),
            ("signed non-JSON payload", non_json.into_bytes(), |e| {
                matches!(e, LicenseError::BadPayload(_))
            }),
            ("format 2", format_2.into_bytes(), |e| {
                *e == LicenseError::UnsupportedFormat(2)
            }),
            ("expires before starts", dates.into_bytes(), |e| {
                matches!(e, LicenseError::InvalidDates(_))
            }),
            (
                "unparseable date",
                bad_date.into_bytes(),
                |e| matches!(e, LicenseError::BadPayload(m) if m.contains("RFC 3339")),
            ),
        ];
        for (name, input, expected) in cases {
            let err = parse_and_verify(&input, &keys).expect_err(name);
            assert!(expected(&err), "{name}: unexpected error {err:?}");
            assert!(!err.to_string().is_empty());
        }

        // Documented decision: whitespace inside the base64 and a different wrapping are not part of
        // the signed bytes, so they still verify.
        parse_and_verify(space_inside_base64.as_bytes(), &keys).expect("spaces inside base64");
        parse_and_verify(rewrap(&good, 76).as_bytes(), &keys).expect("rewrapped at 76");
        parse_and_verify(rewrap(&good, 13).as_bytes(), &keys).expect("rewrapped at 13");
    }

    #[test]
    fn error_messages_are_precise() {
        assert_eq!(
            LicenseError::BadSignature.to_string(),
            "the signature does not match: the file was modified or not issued by the vendor"
        );
        assert_eq!(
            LicenseError::TooLarge {
                size: 70000,
                limit: MAX_LICENSE_BYTES
            }
            .to_string(),
            "the file is 70000 bytes, more than the limit of 65536 bytes"
        );
    }

    #[test]
    fn inspect_reports_without_trusting_the_key() {
        let good = signed(PAYLOAD);
        let inspection =
            inspect(good.as_bytes(), &TrustedKeys::from_list(vec![])).expect("decodes");
        assert_eq!(inspection.key_id, TEST_KEY_ID);
        assert_eq!(inspection.payload_bytes, PAYLOAD.as_bytes());
        assert_eq!(
            inspection.signature,
            Err(LicenseError::UnknownKey {
                key_id: TEST_KEY_ID.into()
            })
        );
        assert!(inspection.payload.is_ok());
        let trusted = inspect(good.as_bytes(), &test_keys()).expect("decodes");
        assert_eq!(trusted.signature, Ok(()));
    }

    #[test]
    fn payload_validation() {
        let site = LicensePayload::from_json(PAYLOAD.as_bytes()).expect("valid");
        assert_eq!(site.grace_days, 14);
        let bound = PAYLOAD.replace(r#""installation_id":null"#, r#""installation_id":"inst-1""#);
        assert_eq!(
            LicensePayload::from_json(bound.as_bytes())
                .expect("valid")
                .installation_id
                .as_deref(),
            Some("inst-1")
        );
        let empty_install = PAYLOAD.replace(r#""installation_id":null"#, r#""installation_id":"""#);
        assert!(matches!(
            LicensePayload::from_json(empty_install.as_bytes()),
            Err(LicenseError::BadPayload(_))
        ));
        let same_dates = PAYLOAD.replace("2027-01-01", "2026-01-01");
        assert!(matches!(
            LicensePayload::from_json(same_dates.as_bytes()),
            Err(LicenseError::InvalidDates(_))
        ));
        let unknown_edition = PAYLOAD.replace(r#""pro""#, r#""ultra""#);
        assert!(matches!(
            LicensePayload::from_json(unknown_edition.as_bytes()),
            Err(LicenseError::BadPayload(_))
        ));
        let extra_field = PAYLOAD.replace(r#""format":1,"#, r#""format":1,"future":{"x":1},"#);
        assert!(LicensePayload::from_json(extra_field.as_bytes()).is_ok());
        assert!(matches!(
            LicensePayload::from_json(b"{}"),
            Err(LicenseError::BadPayload(_))
        ));
    }

    /// A small deterministic generator, so the garbage test needs no extra crate.
    pub(crate) struct XorShift(pub u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Random mutations of a valid file: byte flips, deletions, insertions, truncations.
    pub(crate) fn mutate(rng: &mut XorShift, good: &[u8]) -> Vec<u8> {
        let mut bytes = good.to_vec();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes.remove(i);
                }
                2 => {
                    let i = rng.below(bytes.len() + 1);
                    let b = b"=\r\n :-A/+\xff"[rng.below(10)];
                    bytes.insert(i, b);
                }
                3 => bytes.truncate(rng.below(bytes.len() + 1)),
                _ => {
                    let len = rng.below(200);
                    bytes = (0..len).map(|_| rng.next() as u8).collect();
                }
            }
        }
        bytes
    }

    #[test]
    fn never_panics_on_garbage_or_mangled_input() {
        let good = signed(PAYLOAD);
        let keys = test_keys();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut verified_unchanged = 0;
        for _ in 0..3000 {
            let input = mutate(&mut rng, good.as_bytes());
            let _ = inspect(&input, &keys);
            if let Ok(v) = parse_and_verify(&input, &keys) {
                // Only whitespace-level changes can still verify, and then the payload is unchanged.
                assert_eq!(
                    v.payload,
                    LicensePayload::from_json(PAYLOAD.as_bytes()).expect("ok")
                );
                verified_unchanged += 1;
            }
        }
        assert!(verified_unchanged < 3000);
    }
}
