//! The encrypted archive stream (docs/backup-format.md): a plaintext header, then the content in
//! AES-256-GCM chunks whose nonces count up and mark the last chunk, all authenticated together with
//! a hash of the header.
//!
//! Reordered, dropped, truncated or appended chunks, a changed header and a wrong passphrase are all
//! detected: a chunk opens only at its own position with its own header, the reader insists on a final
//! chunk, and nothing may follow it. Memory use is one chunk, whatever the archive's size.

use std::io::{self, Read, Write};

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::BackupError;

/// The first bytes of every archive.
pub const MAGIC: &[u8; 8] = b"ENCLBAK1";
/// Plaintext bytes per chunk.
pub const CHUNK_BYTES: usize = 1 << 20;
/// PBKDF2-HMAC-SHA256 iterations for the passphrase (OWASP's 2023 recommendation).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// The longest header accepted when reading.
const MAX_HEADER_BYTES: u32 = 64 * 1024;
const KEY_WRAP_AAD: &[u8] = b"enclave-backup-data-key";

/// The key derivation of the passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `pbkdf2-hmac-sha256`.
    pub algorithm: String,
    pub iterations: u32,
    /// Base64.
    pub salt: String,
}

/// The plaintext header: what the archive is, and the data key wrapped by the passphrase's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub created_at: String,
    pub installation_id: String,
    pub app_version: String,
    /// `manual`, `scheduled` or `pre-upgrade`.
    pub kind: String,
    pub kdf: Kdf,
    /// Base64 of the 12-byte nonce and the AES-256-GCM-sealed 32-byte data key.
    pub wrapped_key: String,
    pub chunk_bytes: u32,
}

impl Header {
    /// A header for a new archive; [`EncryptingWriter::new`] fills in the key derivation, the wrapped
    /// key and the chunk size.
    pub fn new(created_at: &str, installation_id: &str, kind: &str) -> Header {
        Header {
            format: 1,
            created_at: created_at.into(),
            installation_id: installation_id.into(),
            app_version: crate::VERSION.to_string(),
            kind: kind.into(),
            kdf: Kdf {
                algorithm: String::new(),
                iterations: 0,
                salt: String::new(),
            },
            wrapped_key: String::new(),
            chunk_bytes: 0,
        }
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn derive_kek(passphrase: &[u8], salt: &[u8], iterations: u32) -> Result<LessSafeKey, BackupError> {
    let mut kek = [0u8; 32];
    let iterations = std::num::NonZeroU32::new(iterations)
        .ok_or_else(|| BackupError::Damaged("the header's iteration count is 0".into()))?;
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        passphrase,
        &mut kek,
    );
    aead_key(&kek)
}

fn aead_key(bytes: &[u8; 32]) -> Result<LessSafeKey, BackupError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| BackupError::Crypto("the AES key could not be made".into()))
}

/// A chunk's nonce: its 64-bit position, and a last byte of 1 on the final chunk.
fn chunk_nonce(counter: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// Writes an archive: `new` writes the header, `write` takes the content, `finish` seals the last chunk.
pub struct EncryptingWriter<W: Write> {
    inner: W,
    key: LessSafeKey,
    aad: [u8; 32],
    buf: Vec<u8>,
    counter: u64,
}

impl<W: Write> EncryptingWriter<W> {
    /// Makes a random data key, wraps it with a key derived from `passphrase`, writes the header.
    pub fn new(
        mut inner: W,
        passphrase: &[u8],
        mut header: Header,
        iterations: u32,
    ) -> Result<(Self, Header), BackupError> {
        let rng = SystemRandom::new();
        let mut salt = [0u8; 16];
        let mut data_key = [0u8; 32];
        let mut wrap_nonce = [0u8; 12];
        for buf in [&mut salt[..], &mut data_key[..], &mut wrap_nonce[..]] {
            rng.fill(buf)
                .map_err(|_| BackupError::Crypto("no randomness".into()))?;
        }
        let kek = derive_kek(passphrase, &salt, iterations)?;
        let mut wrapped = data_key.to_vec();
        kek.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(wrap_nonce),
            Aad::from(KEY_WRAP_AAD),
            &mut wrapped,
        )
        .map_err(|_| BackupError::Crypto("the data key could not be wrapped".into()))?;
        let mut sealed = wrap_nonce.to_vec();
        sealed.extend_from_slice(&wrapped);
        header.kdf = Kdf {
            algorithm: "pbkdf2-hmac-sha256".into(),
            iterations,
            salt: b64().encode(salt),
        };
        header.wrapped_key = b64().encode(&sealed);
        header.chunk_bytes = CHUNK_BYTES as u32;
        let json = serde_json::to_vec(&header).map_err(|e| BackupError::Io(e.to_string()))?;
        inner.write_all(MAGIC)?;
        inner.write_all(&(json.len() as u32).to_be_bytes())?;
        inner.write_all(&json)?;
        let aad = header_digest(&json);
        Ok((
            EncryptingWriter {
                inner,
                key: aead_key(&data_key)?,
                aad,
                buf: Vec::with_capacity(CHUNK_BYTES + 16),
                counter: 0,
            },
            header,
        ))
    }

    fn seal(&mut self, len: usize, last: bool) -> io::Result<()> {
        let mut chunk: Vec<u8> = self.buf.drain(..len).collect();
        self.key
            .seal_in_place_append_tag(
                chunk_nonce(self.counter, last),
                Aad::from(&self.aad[..]),
                &mut chunk,
            )
            .map_err(|_| io::Error::other("a chunk could not be sealed"))?;
        self.inner.write_all(&(chunk.len() as u32).to_be_bytes())?;
        self.inner.write_all(&chunk)?;
        self.counter += 1;
        Ok(())
    }

    /// Seals what is left as the final chunk (possibly empty) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let len = self.buf.len();
        self.seal(len, true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        // A full chunk is sealed only once more follows: the last one must carry the final flag.
        while self.buf.len() > CHUNK_BYTES {
            self.seal(CHUNK_BYTES, false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn header_digest(json: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, json);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Reads the header of an archive (no passphrase needed).
pub fn read_header(reader: &mut impl Read) -> Result<(Header, [u8; 32]), BackupError> {
    let mut magic = [0u8; 8];
    read_exact(reader, &mut magic, "the header")?;
    if &magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let mut len = [0u8; 4];
    read_exact(reader, &mut len, "the header")?;
    let len = u32::from_be_bytes(len);
    if len == 0 || len > MAX_HEADER_BYTES {
        return Err(BackupError::Damaged(format!(
            "the header claims {len} bytes"
        )));
    }
    let mut json = vec![0u8; len as usize];
    read_exact(reader, &mut json, "the header")?;
    let header: Header = serde_json::from_slice(&json)
        .map_err(|e| BackupError::Damaged(format!("the header is not readable: {e}")))?;
    if header.format != 1 {
        return Err(BackupError::Damaged(format!(
            "archive format {} is not known to this version (it reads format 1)",
            header.format
        )));
    }
    Ok((header, header_digest(&json)))
}

fn read_exact(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), BackupError> {
    reader.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            BackupError::Truncated(format!("the file ends inside {what}"))
        } else {
            BackupError::Io(e.to_string())
        }
    })
}

/// Reads an archive's content: opens the data key with the passphrase, then each chunk in order.
pub struct DecryptingReader<R: Read> {
    inner: R,
    key: LessSafeKey,
    aad: [u8; 32],
    chunk: Vec<u8>,
    pos: usize,
    counter: u64,
    finished: bool,
    /// Why reading stopped, when it failed (the `io::Error` only says that it did).
    pub failure: Option<BackupError>,
}

impl<R: Read> DecryptingReader<R> {
    /// Reads the header and unwraps the data key; `WrongPassphrase` when it does not open.
    pub fn open(mut inner: R, passphrase: &[u8]) -> Result<(Self, Header), BackupError> {
        let (header, aad) = read_header(&mut inner)?;
        if header.kdf.algorithm != "pbkdf2-hmac-sha256" {
            return Err(BackupError::Damaged(format!(
                "key derivation {:?} is not known",
                header.kdf.algorithm
            )));
        }
        let salt = b64()
            .decode(&header.kdf.salt)
            .map_err(|_| BackupError::Damaged("the salt is not base64".into()))?;
        let sealed = b64()
            .decode(&header.wrapped_key)
            .map_err(|_| BackupError::Damaged("the wrapped key is not base64".into()))?;
        if sealed.len() != 12 + 32 + 16 || header.chunk_bytes as usize != CHUNK_BYTES {
            return Err(BackupError::Damaged(
                "the header's key or chunk size is wrong".into(),
            ));
        }
        let kek = derive_kek(passphrase, &salt, header.kdf.iterations)?;
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sealed[..12]);
        let mut wrapped = sealed[12..].to_vec();
        let data_key = kek
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(KEY_WRAP_AAD),
                &mut wrapped,
            )
            .map_err(|_| BackupError::WrongPassphrase)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(data_key);
        Ok((
            DecryptingReader {
                inner,
                key: aead_key(&key)?,
                aad,
                chunk: Vec::new(),
                pos: 0,
                counter: 0,
                finished: false,
                failure: None,
            },
            header,
        ))
    }

    fn fail(&mut self, e: BackupError) -> io::Error {
        let error = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        self.failure = Some(e);
        error
    }

    /// Reads and opens the next chunk into `self.chunk`.
    fn next_chunk(&mut self) -> Result<(), BackupError> {
        let mut len = [0u8; 4];
        match self.inner.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(BackupError::Truncated(format!(
                    "the file ends after chunk {} without its final chunk",
                    self.counter
                )))
            }
            Err(e) => return Err(BackupError::Io(e.to_string())),
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(16..=CHUNK_BYTES + 16).contains(&len) {
            return Err(BackupError::Damaged(format!(
                "chunk {} claims {len} bytes",
                self.counter
            )));
        }
        let mut sealed = vec![0u8; len];
        read_exact(&mut self.inner, &mut sealed, "a chunk")?;
        // Not final is the usual case; the final chunk opens only with its flag set.
        for last in [false, true] {
            let mut attempt = sealed.clone();
            if let Ok(plain) = self.key.open_in_place(
                chunk_nonce(self.counter, last),
                Aad::from(&self.aad[..]),
                &mut attempt,
            ) {
                let plain_len = plain.len();
                attempt.truncate(plain_len);
                self.chunk = attempt;
                self.pos = 0;
                self.counter += 1;
                if last {
                    self.finished = true;
                    let mut extra = [0u8; 1];
                    if self.inner.read(&mut extra)? != 0 {
                        return Err(BackupError::Damaged(
                            "bytes follow the final chunk (the file was appended to)".into(),
                        ));
                    }
                }
                return Ok(());
            }
        }
        Err(BackupError::Damaged(format!(
            "chunk {} does not authenticate (changed, moved or from another archive)",
            self.counter
        )))
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failure {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
        }
        while self.pos == self.chunk.len() {
            if self.finished {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                return Err(self.fail(e));
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header::new("2026-11-25T00:00:00Z", "inst", "manual")
    }

    fn seal(content: &[u8]) -> Vec<u8> {
        let (mut w, _) =
            EncryptingWriter::new(Vec::new(), b"pass phrase", header(), 1000).expect("writer");
        w.write_all(content).expect("write");
        w.finish().expect("finish")
    }

    fn open(archive: &[u8], pass: &[u8]) -> Result<Vec<u8>, BackupError> {
        let (mut r, _) = DecryptingReader::open(archive, pass)?;
        let mut out = Vec::new();
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(r.failure.take().unwrap_or(BackupError::Io(e.to_string()))),
        }
    }

    #[test]
    fn round_trips_across_chunks_and_detects_every_tampering() {
        let content: Vec<u8> = (0..(CHUNK_BYTES * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        let archive = seal(&content);
        assert_eq!(open(&archive, b"pass phrase").expect("open"), content);
        assert!(matches!(
            open(&archive, b"wrong"),
            Err(BackupError::WrongPassphrase)
        ));
        // A flipped byte in the last chunk, in the header, truncation, an appended byte.
        let mut flipped = archive.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 1;
        assert!(matches!(
            open(&flipped, b"pass phrase"),
            Err(BackupError::Damaged(_))
        ));
        let mut header_changed = archive.clone();
        header_changed[30] ^= 1;
        assert!(open(&header_changed, b"pass phrase").is_err());
        let truncated = &archive[..archive.len() - 10];
        assert!(open(truncated, b"pass phrase").is_err());
        // Dropping the final chunk entirely: the rest authenticates but the end is missing.
        let first_two = {
            let (_, _) = read_header(&mut &archive[..]).expect("header");
            let header_len = 12
                + u32::from_be_bytes([archive[8], archive[9], archive[10], archive[11]]) as usize;
            let chunk = 4 + CHUNK_BYTES + 16;
            archive[..header_len + 2 * chunk].to_vec()
        };
        assert!(matches!(
            open(&first_two, b"pass phrase"),
            Err(BackupError::Truncated(_))
        ));
        let mut appended = archive.clone();
        appended.push(0);
        assert!(matches!(
            open(&appended, b"pass phrase"),
            Err(BackupError::Damaged(_))
        ));
        assert!(matches!(
            open(b"not a backup at all", b"x"),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn an_empty_content_still_has_a_final_chunk() {
        let archive = seal(b"");
        assert_eq!(
            open(&archive, b"pass phrase").expect("open"),
            Vec::<u8>::new()
        );
    }
}
