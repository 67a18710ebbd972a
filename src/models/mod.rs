//! The default models in the data directory: where they are and whether they are intact.
//!
//! `scripts/fetch-models.sh` installs each model under `<data>/models/<name>/` with a `SHA256SUMS` file;
//! `enclave models import` installs others (see [`store`]); each has a manifest ([`manifest`]).
//! [`quick_status`] checks presence and sizes (cheap, for the overview page); [`verify`] hashes every
//! file (for `enclave doctor`).

pub mod manifest;
pub mod store;

use std::path::{Path, PathBuf};

use ring::digest;
use serde::Serialize;

/// The models Enclave uses by default, with their kind.
pub const DEFAULT_MODELS: &[(&str, &str)] = &[
    ("all-MiniLM-L6-v2", "embedding"),
    ("SmolLM2-135M-Instruct", "chat"),
];

/// The state of one model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    #[schema(example = "all-MiniLM-L6-v2")]
    pub name: String,
    /// `embedding` or `chat`.
    pub kind: String,
    /// `ok`, `missing` or `corrupt`.
    pub status: String,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Directory of a model in a data directory.
pub fn model_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("models").join(name)
}

/// Reads `SHA256SUMS`: `(hex digest, relative path)` pairs.
fn read_sums(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let text = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .map_err(|_| "SHA256SUMS missing: run scripts/fetch-models.sh".to_string())?;
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, file) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("malformed SHA256SUMS line {line:?}"))?;
        let file = file.trim().trim_start_matches('*');
        if file.contains("..") || file.starts_with('/') {
            return Err(format!("SHA256SUMS names a path outside the model: {file}"));
        }
        entries.push((sum.to_ascii_lowercase(), dir.join(file)));
    }
    if entries.is_empty() {
        return Err("SHA256SUMS lists no files".into());
    }
    Ok(entries)
}

fn status(name: &str, kind: &str, result: Result<(), (String, String)>) -> ModelStatus {
    let (status, detail) = match result {
        Ok(()) => ("ok".to_string(), None),
        Err((s, d)) => (s, Some(d)),
    };
    ModelStatus {
        name: name.to_string(),
        kind: kind.to_string(),
        status,
        detail,
    }
}

pub(crate) fn check(data_dir: &Path, name: &str, hash: bool) -> Result<(), (String, String)> {
    let dir = model_dir(data_dir, name);
    if !dir.is_dir() {
        return Err((
            "missing".into(),
            format!("{} not found: run scripts/fetch-models.sh", dir.display()),
        ));
    }
    let sums = read_sums(&dir).map_err(|d| ("missing".to_string(), d))?;
    for (expected, file) in sums {
        if !file.is_file() {
            return Err(("missing".into(), format!("{} is missing", file.display())));
        }
        if hash {
            let actual = sha256_file(&file)
                .map_err(|e| ("corrupt".to_string(), format!("{}: {e}", file.display())))?;
            if actual != expected {
                return Err((
                    "corrupt".into(),
                    format!("{}: SHA-256 {actual}, expected {expected}", file.display()),
                ));
            }
        }
    }
    Ok(())
}

/// The default models, then every other installed model, with their kinds.
fn known_models(data_dir: &Path) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = DEFAULT_MODELS
        .iter()
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    for installed in store::list(data_dir) {
        if !all.iter().any(|(name, _)| *name == installed.manifest.name) {
            all.push((
                installed.manifest.name.clone(),
                installed.manifest.kind.as_str().to_string(),
            ));
        }
    }
    all
}

/// Presence check of the default and the installed models (no hashing).
pub fn quick_status(data_dir: &Path) -> Vec<ModelStatus> {
    known_models(data_dir)
        .iter()
        .map(|(name, kind)| status(name, kind, check(data_dir, name, false)))
        .collect()
}

/// Full check of the default and the installed models, hashing every file.
pub fn verify(data_dir: &Path) -> Vec<ModelStatus> {
    known_models(data_dir)
        .iter()
        .map(|(name, kind)| status(name, kind, check(data_dir, name, true)))
        .collect()
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex::encode(ctx.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ok_and_corrupt_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(quick_status(dir.path())
            .iter()
            .all(|m| m.status == "missing"));
        let m = model_dir(dir.path(), "all-MiniLM-L6-v2");
        std::fs::create_dir_all(&m).expect("mkdir");
        std::fs::write(m.join("w.bin"), b"weights").expect("write");
        let sum = sha256_file(&m.join("w.bin")).expect("hash");
        std::fs::write(m.join("SHA256SUMS"), format!("{sum}  w.bin\n")).expect("sums");
        assert_eq!(verify(dir.path())[0].status, "ok");
        std::fs::write(m.join("w.bin"), b"tampered").expect("tamper");
        assert_eq!(
            quick_status(dir.path())[0].status,
            "ok",
            "quick check does not hash"
        );
        assert_eq!(verify(dir.path())[0].status, "corrupt");
    }
}
