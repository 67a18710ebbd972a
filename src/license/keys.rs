//! The vendor's licence-signing public keys that this build trusts, compiled into the binary.
//!
//! [`TrustedKeys::builtin`] is the only set the server may use: the production keys listed in
//! [`PRODUCTION_KEYS`] (files in `packaging/license-keys/`), plus the test key
//! `tests/fixtures/license/test-key.pub` only in builds with the cargo feature `test-license-key`.
//! There is deliberately no flag, environment variable or configuration that adds a key at run time.
//!
//! A public key file is one line (blank lines and `#` comments are ignored):
//!
//! ```text
//! enclave-license-key v1 <key-id> <standard base64 of the 32-byte Ed25519 public key>
//! ```
//!
//! Rotation: generate a key with a new id, add its `.pub` file and a line to [`PRODUCTION_KEYS`], and
//! sign new licences with it; old keys stay listed so the licences they signed keep verifying.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};

use super::armor;
use super::format::LicenseError;

/// The first word and version of a public key file.
const FILE_TAG: &str = "enclave-license-key";
const FILE_VERSION: &str = "v1";

/// The production public keys: `(file name, contents)`. Add a line here to trust a new key.
pub const PRODUCTION_KEYS: &[(&str, &str)] = &[(
    "enclave-prod-2026.pub",
    include_str!("../../packaging/license-keys/enclave-prod-2026.pub"),
)];

/// The test key, trusted only in builds with the `test-license-key` feature.
#[cfg(feature = "test-license-key")]
const TEST_KEY: (&str, &str) = (
    "test-key.pub",
    include_str!("../../tests/fixtures/license/test-key.pub"),
);

/// A public key with its id, as read from a `.pub` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyFile {
    pub key_id: String,
    pub public_key: [u8; 32],
}

/// Whether `id` is a valid key id: 1–64 characters of `[a-z0-9-]`, starting with a letter or digit.
/// (Key ids become file names in the vendor tool.)
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

impl PublicKeyFile {
    /// Parses the one-line public key file format.
    pub fn parse(text: &str) -> Result<Self, LicenseError> {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = lines
            .next()
            .ok_or_else(|| LicenseError::BadKey("the public key file is empty".into()))?;
        if lines.next().is_some() {
            return Err(LicenseError::BadKey(
                "the public key file has more than one key line".into(),
            ));
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [tag, version, key_id, b64] = words.as_slice() else {
            return Err(LicenseError::BadKey(format!(
                "expected `{FILE_TAG} {FILE_VERSION} <key-id> <base64 key>`"
            )));
        };
        if *tag != FILE_TAG || *version != FILE_VERSION {
            return Err(LicenseError::BadKey(format!(
                "expected a line starting `{FILE_TAG} {FILE_VERSION}`"
            )));
        }
        if !valid_key_id(key_id) {
            return Err(LicenseError::BadKey(format!(
                "{key_id:?} is not a valid key id ([a-z0-9-], at most 64)"
            )));
        }
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| LicenseError::BadEncoding("public key"))?;
        let public_key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            LicenseError::BadKey(format!(
                "the public key is {} bytes; an Ed25519 public key is 32",
                bytes.len()
            ))
        })?;
        Ok(PublicKeyFile {
            key_id: key_id.to_string(),
            public_key,
        })
    }

    /// The file's text (one line, newline-terminated).
    pub fn to_text(&self) -> String {
        format!(
            "{FILE_TAG} {FILE_VERSION} {} {}\n",
            self.key_id,
            STANDARD.encode(self.public_key)
        )
    }
}

/// Generates a new Ed25519 signing key: returns its PKCS#8 (v2) document and its public key file.
pub fn generate_signing_key(key_id: &str) -> Result<(Vec<u8>, PublicKeyFile), LicenseError> {
    if !valid_key_id(key_id) {
        return Err(LicenseError::BadKey(format!(
            "{key_id:?} is not a valid key id ([a-z0-9-], at most 64)"
        )));
    }
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| LicenseError::Random)?;
    let pair = load_signing_key(pkcs8.as_ref())?;
    let public = public_key_file(key_id, &pair)?;
    Ok((pkcs8.as_ref().to_vec(), public))
}

/// Loads a PKCS#8 Ed25519 key (as written by [`generate_signing_key`]).
pub fn load_signing_key(pkcs8: &[u8]) -> Result<Ed25519KeyPair, LicenseError> {
    Ed25519KeyPair::from_pkcs8(pkcs8)
        .map_err(|e| LicenseError::BadKey(format!("not an Ed25519 PKCS#8 v2 key ({e})")))
}

/// The public key file of a key pair.
pub fn public_key_file(key_id: &str, pair: &Ed25519KeyPair) -> Result<PublicKeyFile, LicenseError> {
    let public_key: [u8; 32] = pair
        .public_key()
        .as_ref()
        .try_into()
        .map_err(|_| LicenseError::BadKey("unexpected public key length".into()))?;
    Ok(PublicKeyFile {
        key_id: key_id.to_string(),
        public_key,
    })
}

/// A set of trusted licence-signing public keys.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<PublicKeyFile>,
}

impl TrustedKeys {
    /// The keys compiled into this build: the production keys, plus the test key in builds with the
    /// `test-license-key` feature. A key file that does not parse is left out (a unit test checks that
    /// all of them parse).
    pub fn builtin() -> Self {
        let files = PRODUCTION_KEYS.iter();
        #[cfg(feature = "test-license-key")]
        let files = files.chain(std::iter::once(&TEST_KEY));
        TrustedKeys {
            keys: files
                .filter_map(|(_, text)| PublicKeyFile::parse(text).ok())
                .collect(),
        }
    }

    /// Exactly one key, given explicitly. For the vendor tool's `verify --public-key` only; the server
    /// must use [`TrustedKeys::builtin`].
    pub fn explicit(key: PublicKeyFile) -> Self {
        TrustedKeys { keys: vec![key] }
    }

    /// Any list of keys, for unit tests.
    #[cfg(test)]
    pub(crate) fn from_list(keys: Vec<PublicKeyFile>) -> Self {
        TrustedKeys { keys }
    }

    /// The public key with this id, if trusted.
    pub fn get(&self, key_id: &str) -> Option<&[u8; 32]> {
        self.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .map(|k| &k.public_key)
    }

    /// The ids of the trusted keys.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.key_id.as_str())
    }

    /// Verifies a signature over `domain ++ payload` by the key `key_id`.
    pub(crate) fn verify(
        &self,
        key_id: &str,
        domain: &[u8],
        payload: &[u8],
        signature: &[u8],
    ) -> Result<(), LicenseError> {
        let key = self.get(key_id).ok_or_else(|| LicenseError::UnknownKey {
            key_id: key_id.to_string(),
        })?;
        armor::verify(key, domain, payload, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_production_key_file_parses_and_matches_its_file_name() {
        assert!(!PRODUCTION_KEYS.is_empty());
        for (name, text) in PRODUCTION_KEYS {
            let key = PublicKeyFile::parse(text).expect("production key parses");
            assert_eq!(format!("{}.pub", key.key_id), *name);
            assert!(key.key_id.starts_with("enclave-prod-"), "{}", key.key_id);
        }
        assert_eq!(
            TrustedKeys::builtin().keys.len(),
            PRODUCTION_KEYS.len() + usize::from(cfg!(feature = "test-license-key"))
        );
    }

    #[test]
    fn the_committed_test_key_pair_matches_its_public_file() {
        let pair = load_signing_key(include_bytes!("../../tests/fixtures/license/test-key.pk8"))
            .expect("test key parses");
        let public =
            PublicKeyFile::parse(include_str!("../../tests/fixtures/license/test-key.pub"))
                .expect("test public key parses");
        assert_eq!(public.key_id, "enclave-test-1");
        assert_eq!(
            public_key_file("enclave-test-1", &pair).expect("public"),
            public
        );
    }

    #[cfg(feature = "test-license-key")]
    #[test]
    fn with_the_feature_the_test_key_is_trusted() {
        let keys = TrustedKeys::builtin();
        assert!(keys.get("enclave-test-1").is_some());
        assert!(keys.get("enclave-prod-2026").is_some());
    }

    #[cfg(not(feature = "test-license-key"))]
    #[test]
    fn without_the_feature_only_production_keys_are_trusted() {
        let keys = TrustedKeys::builtin();
        assert!(keys.get("enclave-test-1").is_none());
        assert!(keys.key_ids().count() > 0);
        assert!(keys.key_ids().all(|id| id.starts_with("enclave-prod-")));
    }

    #[test]
    fn public_key_file_round_trips_and_rejects_bad_files() {
        let (pkcs8, public) = generate_signing_key("k-1").expect("generates");
        let pair = load_signing_key(&pkcs8).expect("loads");
        assert_eq!(public_key_file("k-1", &pair).expect("public"), public);
        let text = public.to_text();
        assert!(text.starts_with("enclave-license-key v1 k-1 "));
        assert_eq!(
            PublicKeyFile::parse(&format!("# comment\n\n{text}\n")).expect("parses"),
            public
        );
        for bad in [
            "",
            "enclave-license-key v1 k-1",
            "enclave-license-key v2 k-1 AAAA",
            "other-key v1 k-1 AAAA",
            "enclave-license-key v1 K_1 AAAA",
            "enclave-license-key v1 k-1 AAAA",
            "enclave-license-key v1 k-1 !!!!",
        ] {
            assert!(PublicKeyFile::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PublicKeyFile::parse(&format!("{text}{text}")).is_err());
        assert!(generate_signing_key("../etc").is_err());
        assert!(load_signing_key(b"not a key").is_err());
    }

    #[test]
    fn key_ids_are_restricted() {
        for good in ["enclave-prod-2026", "a", "k1"] {
            assert!(valid_key_id(good), "{good}");
        }
        for bad in ["", "-x", "A", "a/b", "a b", "a.b", &"x".repeat(65)] {
            assert!(!valid_key_id(bad), "{bad}");
        }
    }
}
