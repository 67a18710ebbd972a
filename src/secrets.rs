//! Secrets at rest: values the server must read back (a directory's service password, an inference
//! provider's API key) are sealed with a
//! key derived from the instance key (`<data>/instance-key.pk8`, mode 0600) by HKDF-SHA256, using
//! AES-256-GCM with a random nonce. A sealed value is `v1:` + hex(nonce ‖ ciphertext ‖ tag); a database
//! copied without the data directory's key file cannot be opened.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the instance key cannot be read: {0}")]
    Key(String),
    #[error(
        "a stored secret cannot be opened (it was sealed by another installation or is damaged)"
    )]
    Damaged,
}

/// How a change request treats a stored secret (a password or key field of a settings form): omitted
/// keeps the stored one (`None`), `""` removes it (`Some(None)`), anything else replaces it, sealed
/// (`Some(Some(sealed))`).
pub fn seal_change(
    data_dir: &Path,
    input: Option<&str>,
) -> Result<Option<Option<String>>, SecretError> {
    Ok(match input {
        None => None,
        Some("") => Some(None),
        Some(plain) => Some(Some(SecretBox::for_data_dir(data_dir)?.seal(plain))),
    })
}

/// Opens a secret sealed by [`seal_change`] (or [`SecretBox::seal`]) in this installation.
pub fn open_sealed(data_dir: &Path, sealed: &str) -> Result<String, SecretError> {
    SecretBox::for_data_dir(data_dir)?.open(sealed)
}

/// Seals and opens secrets of this installation.
pub struct SecretBox {
    key: LessSafeKey,
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl SecretBox {
    /// The box of the installation whose data directory is `data_dir` (creates the instance key on
    /// first use).
    pub fn for_data_dir(data_dir: &Path) -> Result<SecretBox, SecretError> {
        crate::license::manager::load_or_create_instance_key(data_dir)
            .map_err(|e| SecretError::Key(e.to_string()))?;
        let path = data_dir.join(crate::license::manager::INSTANCE_KEY_FILE);
        let ikm = std::fs::read(&path)
            .map_err(|e| SecretError::Key(format!("{}: {e}", path.display())))?;
        Ok(SecretBox::from_key_material(&ikm))
    }

    fn from_key_material(ikm: &[u8]) -> SecretBox {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"enclave secrets at rest").extract(ikm);
        let mut bytes = [0u8; 32];
        // The output length is the fixed 32 bytes HKDF-SHA256 can always produce.
        if let Ok(okm) = prk.expand(&[b"v1"], KeyLen) {
            let _ = okm.fill(&mut bytes);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid for AES-256-GCM"));
        SecretBox {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Seals `plain`.
    pub fn seal(&self, plain: &str) -> String {
        let nonce_bytes = crate::tenancy::random_bytes::<NONCE_LEN>();
        let mut data = plain.as_bytes().to_vec();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::empty(),
            &mut data,
        );
        if sealed.is_err() {
            unreachable!("AES-GCM sealing of an in-memory buffer cannot fail");
        }
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        format!("v1:{}", hex::encode(out))
    }

    /// Opens a value made by [`SecretBox::seal`].
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let bytes = sealed
            .strip_prefix("v1:")
            .and_then(|h| hex::decode(h).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(SecretError::Damaged)?;
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::Damaged)?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| SecretError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretError::Damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let a = SecretBox::from_key_material(b"instance a");
        let b = SecretBox::from_key_material(b"instance b");
        let sealed = a.seal("s3cret pass");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(a.open(&sealed).expect("opens"), "s3cret pass");
        assert!(b.open(&sealed).is_err());
        assert_ne!(a.seal("x"), a.seal("x"), "a fresh nonce each time");
        let mut damaged = sealed.clone();
        let last = if damaged.ends_with('0') { '1' } else { '0' };
        damaged.pop();
        damaged.push(last);
        assert!(a.open(&damaged).is_err(), "a changed byte is detected");
    }
}
