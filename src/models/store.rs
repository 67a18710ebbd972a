//! The model store: `<data>/models/<name>/`, one directory per model with its manifest
//! (`model.toml`), `SHA256SUMS` and files. `enclave models list|import|verify|remove` and the server
//! read it through here.
//!
//! Import is all or nothing: the files are checked (a GGUF's header, metadata and tensor extents; a
//! safetensors header and data length; the config and tokenizer of an embedding model), copied into a
//! hidden staging directory (`models/.import-…`), hashed, described by a manifest, and only then renamed
//! into place. A refused import leaves nothing behind. Removal renames the directory away first, so a
//! model is either there whole or not at all.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{Manifest, ModelFile, ModelKind};

/// What can go wrong in the model store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} is not a valid model name (letters, digits, '.', '_', '-'; at most 100; not starting with '.')")]
    InvalidName(String),
    #[error("no model named {0:?} is installed")]
    NotFound(String),
    #[error("a model named {0:?} is already installed (remove it first, or import under another --name)")]
    AlreadyExists(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{path}: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("{0}")]
    Io(String),
}

fn io(context: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", context.display()))
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The models directory of a data directory.
pub fn models_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}

/// Checks a model name.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// An installed model as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Installed {
    pub manifest: Manifest,
    /// Sum of the files' sizes.
    pub bytes: u64,
    #[serde(skip)]
    pub dir: PathBuf,
}

/// Every installed model (directories with a readable `model.toml`), by name. Staging and removal
/// directories (names starting with '.') are skipped.
pub fn list(data_dir: &Path) -> Vec<Installed> {
    let Ok(entries) = std::fs::read_dir(models_dir(data_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<Installed> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let dir = e.path();
            let manifest = Manifest::read(&dir).ok()?;
            let bytes = dir_size(&dir);
            Some(Installed {
                manifest,
                bytes,
                dir,
            })
        })
        .collect();
    out.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    out
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// One installed model by name.
pub fn find(data_dir: &Path, name: &str) -> Result<Installed, StoreError> {
    check_name(name)?;
    list(data_dir)
        .into_iter()
        .find(|m| m.manifest.name == name)
        .ok_or_else(|| StoreError::NotFound(name.to_string()))
}

/// What an import was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The installed name (default: derived from the file or directory name).
    pub name: Option<String>,
    pub license: Option<String>,
    pub source: Option<String>,
}

/// Facts read from a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFacts {
    pub architecture: String,
    pub context_length: Option<u64>,
    /// The quantisation most of the weights use.
    pub quantization: String,
    pub has_chat_template: bool,
}

/// Reads and checks a GGUF file: header, metadata, and that every tensor's data lies inside the file
/// (a truncated download is refused here, not when the model is first used).
pub fn inspect_gguf(path: &Path) -> Result<GgufFacts, StoreError> {
    use candle_core::quantized::gguf_file;
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let file_len = file.metadata().map_err(|e| io(path, e))?.len();
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| corrupt(path, format!("not a readable GGUF file: {e}")))?;
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| corrupt(path, "the GGUF metadata has no general.architecture"))?;
    if content.tensor_infos.is_empty() {
        return Err(corrupt(path, "the GGUF file holds no tensors"));
    }
    let mut by_dtype: HashMap<String, u64> = HashMap::new();
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if block == 0 || elems % block != 0 {
            return Err(corrupt(
                path,
                format!("tensor {name}: {elems} elements do not fill whole blocks"),
            ));
        }
        let bytes = (elems / block * info.ggml_dtype.type_size()) as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(bytes);
        if end > file_len {
            return Err(corrupt(
                path,
                format!(
                    "truncated: tensor {name} ends at byte {end} but the file has {file_len} bytes"
                ),
            ));
        }
        *by_dtype
            .entry(format!("{:?}", info.ggml_dtype))
            .or_insert(0) += bytes;
    }
    let quantization = by_dtype
        .into_iter()
        .max_by_key(|(_, bytes)| *bytes)
        .map(|(dtype, _)| dtype)
        .unwrap_or_default();
    let context_length = content
        .metadata
        .get(&format!("{architecture}.context_length"))
        .and_then(|v| v.to_u32().ok().map(u64::from).or_else(|| v.to_u64().ok()));
    Ok(GgufFacts {
        has_chat_template: content.metadata.contains_key("tokenizer.chat_template"),
        architecture,
        context_length,
        quantization,
    })
}

/// Checks a safetensors file: the header is JSON, and every tensor's data lies inside the file.
pub fn inspect_safetensors(path: &Path) -> Result<usize, StoreError> {
    let mut file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let file_len = file.metadata().map_err(|e| io(path, e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| corrupt(path, "shorter than a safetensors header"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 * 1024 * 1024 || 8 + header_len > file_len {
        return Err(corrupt(
            path,
            format!("header length {header_len} does not fit the file ({file_len} bytes)"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| corrupt(path, format!("header: {e}")))?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| corrupt(path, format!("header is not JSON: {e}")))?;
    let data_len = file_len - 8 - header_len;
    let mut tensors = 0;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let end = info["data_offsets"][1]
            .as_u64()
            .ok_or_else(|| corrupt(path, format!("tensor {name} has no data_offsets")))?;
        if end > data_len {
            return Err(corrupt(
                path,
                format!("truncated: tensor {name} ends at byte {end} of the data but the file holds {data_len}"),
            ));
        }
        tensors += 1;
    }
    if tensors == 0 {
        return Err(corrupt(path, "the file holds no tensors"));
    }
    Ok(tensors)
}

/// Facts read from an embedding model's directory (sentence-transformers layout).
fn inspect_embedding_dir(dir: &Path) -> Result<(u64, u64), StoreError> {
    let read_json = |name: &str| -> Result<serde_json::Value, StoreError> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| corrupt(&path, format!("not JSON: {e}")))
    };
    let config = read_json("config.json")?;
    let dimensions = config["hidden_size"].as_u64().ok_or_else(|| {
        corrupt(
            &dir.join("config.json"),
            "no hidden_size (not a BERT-family model?)",
        )
    })?;
    let positions = config["max_position_embeddings"].as_u64().unwrap_or(512);
    let max_seq_length = read_json("sentence_bert_config.json")
        .ok()
        .and_then(|c| c["max_seq_length"].as_u64())
        .unwrap_or(positions)
        .min(positions);
    read_json("tokenizer.json")?;
    inspect_safetensors(&dir.join("model.safetensors"))?;
    Ok((dimensions, max_seq_length))
}

/// The staging directory, removed on drop unless it was committed.
struct Staging {
    dir: PathBuf,
    committed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        // The source's own bookkeeping is rewritten for the installed copy.
        if name == "SHA256SUMS" || name == "model.toml" {
            continue;
        }
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}

/// Every regular file under `dir`, relative, sorted.
fn files_under(dir: &Path, prefix: &Path, out: &mut Vec<PathBuf>) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let rel = prefix.join(entry.file_name());
        if entry.path().is_dir() {
            files_under(&entry.path(), &rel, out)?;
        } else {
            out.push(rel);
        }
    }
    out.sort();
    Ok(())
}

/// Hashes every file of a staged model into the manifest and writes `model.toml` and `SHA256SUMS`.
fn seal(dir: &Path, manifest: &mut Manifest) -> Result<(), StoreError> {
    let mut files = Vec::new();
    files_under(dir, Path::new(""), &mut files)?;
    manifest.files.clear();
    let mut sums = String::new();
    for rel in files {
        let path = dir.join(&rel);
        let sha256 = super::sha256_file(&path).map_err(|e| io(&path, e))?;
        let bytes = std::fs::metadata(&path).map_err(|e| io(&path, e))?.len();
        let rel = rel.to_string_lossy().to_string();
        sums.push_str(&format!("{sha256}  {rel}\n"));
        manifest.files.push(ModelFile {
            path: rel,
            bytes,
            sha256,
        });
    }
    let toml = manifest.to_toml().map_err(StoreError::Io)?;
    for (name, text) in [("SHA256SUMS", sums), ("model.toml", toml)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}

/// Imports a model: a `.gguf` file (chat; a `tokenizer.json` beside it is taken along) or a
/// sentence-transformers directory with `config.json`, `model.safetensors` and `tokenizer.json`
/// (embedding). `prepare` runs on the staged copy before it is sealed and installed: it may rewrite
/// the weights (requantisation) and must load the model to prove it works; an error refuses the import.
pub fn import(
    data_dir: &Path,
    source: &Path,
    options: &ImportOptions,
    prepare: &dyn Fn(&Path, &mut Manifest) -> Result<(), StoreError>,
) -> Result<Manifest, StoreError> {
    let meta = std::fs::metadata(source).map_err(|e| io(source, e))?;
    let default_name = source
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = options.name.clone().unwrap_or(default_name);
    check_name(&name)?;
    let models = models_dir(data_dir);
    std::fs::create_dir_all(&models).map_err(|e| io(&models, e))?;
    let target = models.join(&name);
    if target.exists() {
        return Err(StoreError::AlreadyExists(name));
    }
    let staging = Staging {
        dir: models.join(format!(
            ".import-{name}-{}",
            hex::encode(crate::tenancy::random_bytes::<4>())
        )),
        committed: false,
    };
    std::fs::create_dir_all(&staging.dir).map_err(|e| io(&staging.dir, e))?;

    let mut manifest = if meta.is_file() {
        if source.extension().and_then(|e| e.to_str()) != Some("gguf") {
            return Err(StoreError::Unsupported(format!(
                "{}: a chat model is imported from a .gguf file; an embedding model from a directory with config.json, model.safetensors and tokenizer.json",
                source.display()
            )));
        }
        let facts = inspect_gguf(source)?;
        if facts.architecture != "llama" {
            return Err(StoreError::Unsupported(format!(
                "{}: architecture {:?}: only llama-family GGUF models are supported",
                source.display(),
                facts.architecture
            )));
        }
        let file_name = source
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| format!("{name}.gguf"));
        let dst = staging.dir.join(&file_name);
        std::fs::copy(source, &dst).map_err(|e| io(source, e))?;
        if let Some(tokenizer) = source.parent().map(|p| p.join("tokenizer.json")) {
            if tokenizer.is_file() {
                std::fs::copy(&tokenizer, staging.dir.join("tokenizer.json"))
                    .map_err(|e| io(&tokenizer, e))?;
            }
        }
        Manifest {
            name: name.clone(),
            kind: ModelKind::Chat,
            format: "gguf".into(),
            source: options.source.clone(),
            license: options.license.clone(),
            context_length: facts.context_length,
            dimensions: None,
            max_seq_length: None,
            quantization: Some(facts.quantization),
            requantized_from: None,
            weights: Some(file_name),
            imported_at: Some(crate::time_util::now_rfc3339()),
            files: Vec::new(),
        }
    } else {
        let (dimensions, max_seq_length) = inspect_embedding_dir(source)?;
        copy_tree(source, &staging.dir)?;
        Manifest {
            name: name.clone(),
            kind: ModelKind::Embedding,
            format: "safetensors".into(),
            source: options.source.clone(),
            license: options.license.clone(),
            context_length: None,
            dimensions: Some(dimensions),
            max_seq_length: Some(max_seq_length),
            quantization: None,
            requantized_from: None,
            weights: Some("model.safetensors".into()),
            imported_at: Some(crate::time_util::now_rfc3339()),
            files: Vec::new(),
        }
    };
    prepare(&staging.dir, &mut manifest)?;
    seal(&staging.dir, &mut manifest)?;
    let mut staging = staging;
    std::fs::rename(&staging.dir, &target).map_err(|e| io(&target, e))?;
    staging.committed = true;
    Ok(manifest)
}

/// Removes an installed model: renamed away first (so it disappears at once and whole), then deleted.
pub fn remove(data_dir: &Path, name: &str) -> Result<Manifest, StoreError> {
    let installed = find(data_dir, name)?;
    let trash = models_dir(data_dir).join(format!(
        ".removing-{name}-{}",
        hex::encode(crate::tenancy::random_bytes::<4>())
    ));
    std::fs::rename(&installed.dir, &trash).map_err(|e| io(&installed.dir, e))?;
    std::fs::remove_dir_all(&trash).map_err(|e| io(&trash, e))?;
    Ok(installed.manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_prepare(_: &Path, _: &mut Manifest) -> Result<(), StoreError> {
        Ok(())
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("SmolLM2-135M-Instruct.Q8_0").is_ok());
        for bad in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_truncated_or_foreign_file_is_refused_and_leaves_nothing_behind() {
        let data = tempfile::tempdir().expect("tempdir");
        let src = tempfile::tempdir().expect("tempdir");
        let fake = src.path().join("fake.gguf");
        std::fs::write(&fake, b"GGUF but not really").expect("write");
        let err = import(data.path(), &fake, &ImportOptions::default(), &no_prepare)
            .expect_err("refused");
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        let txt = src.path().join("notes.txt");
        std::fs::write(&txt, b"hello").expect("write");
        let err =
            import(data.path(), &txt, &ImportOptions::default(), &no_prepare).expect_err("refused");
        assert!(matches!(err, StoreError::Unsupported(_)), "{err}");
        // A safetensors file cut short.
        let emb = src.path().join("emb");
        std::fs::create_dir_all(&emb).expect("mkdir");
        std::fs::write(emb.join("config.json"), r#"{"hidden_size": 4}"#).expect("write");
        std::fs::write(emb.join("tokenizer.json"), "{}").expect("write");
        let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 8]); // 8 of the 16 data bytes
        std::fs::write(emb.join("model.safetensors"), &bytes).expect("write");
        let err =
            import(data.path(), &emb, &ImportOptions::default(), &no_prepare).expect_err("refused");
        assert!(err.to_string().contains("truncated"), "{err}");
        // The same file complete imports.
        bytes.extend_from_slice(&[0u8; 8]);
        std::fs::write(emb.join("model.safetensors"), &bytes).expect("write");
        let m =
            import(data.path(), &emb, &ImportOptions::default(), &no_prepare).expect("imported");
        assert_eq!((m.kind, m.dimensions), (ModelKind::Embedding, Some(4)));
        assert_eq!(m.files.len(), 3);
        // Nothing but the installed model is left in the store.
        let left: Vec<String> = std::fs::read_dir(models_dir(data.path()))
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(left, vec!["emb".to_string()]);
        assert!(matches!(
            import(data.path(), &emb, &ImportOptions::default(), &no_prepare),
            Err(StoreError::AlreadyExists(_))
        ));
        assert_eq!(list(data.path()).len(), 1);
        remove(data.path(), "emb").expect("removed");
        assert!(list(data.path()).is_empty());
        assert!(matches!(
            remove(data.path(), "emb"),
            Err(StoreError::NotFound(_))
        ));
    }
}
