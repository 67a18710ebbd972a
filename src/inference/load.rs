//! From files to a loaded model: the import step that makes a model fast and proves it works, and
//! the server's loading of installed models.
//!
//! candle has SIMD kernels for Q4_0, Q8_0 and the k-quants but not for Q4_1, Q5_0 or Q5_1: a GGUF in
//! one of those runs several times slower. `enclave models import` therefore rewrites such weights
//! as Q8_0 (the format that loses least). A model installed without an import (the fetch script's
//! default chat model) is converted once at load into `<data>/cache/models/<name>-<hash>/` and the
//! converted copy is reused afterwards; the installed files are never changed.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;

use super::chat::{requantize, ChatModel};
use super::embedding::EmbeddingModel;
use super::service::Loaded;
use super::InferenceError;
use crate::models::manifest::{Manifest, ModelKind};
use crate::models::store::{Installed, StoreError};

/// GGUF quantisations candle runs without a SIMD kernel.
const SLOW_QUANTIZATIONS: [&str; 3] = ["Q4_1", "Q5_0", "Q5_1"];

pub(crate) fn is_slow(quantization: Option<&str>) -> bool {
    quantization.is_some_and(|q| SLOW_QUANTIZATIONS.contains(&q))
}

/// The chat model's weights file in its directory.
fn gguf_in(dir: &Path, manifest: &Manifest) -> Result<PathBuf, InferenceError> {
    if let Some(weights) = &manifest.weights {
        return Ok(dir.join(weights));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| InferenceError::Load(format!("{}: {e}", dir.display())))?;
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().and_then(|e| e.to_str()) == Some("gguf"))
        .ok_or_else(|| InferenceError::Load(format!("no .gguf file in {}", dir.display())))
}

fn rejected(e: InferenceError) -> StoreError {
    StoreError::Unsupported(format!("the model does not load: {e}"))
}

/// The import step (see [`crate::models::store::import`]): rewrites slow GGUF weights as Q8_0, then
/// loads the staged model once.
pub fn prepare_import(dir: &Path, manifest: &mut Manifest) -> Result<(), StoreError> {
    match manifest.kind {
        ModelKind::Chat => {
            let weights = gguf_in(dir, manifest).map_err(rejected)?;
            if is_slow(manifest.quantization.as_deref()) {
                let stem = weights
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_else(|| manifest.name.clone());
                let stem = SLOW_QUANTIZATIONS.iter().fold(stem, |s, q| {
                    s.trim_end_matches(&format!(".{q}")).to_string()
                });
                let converted_name = format!("{stem}.Q8_0.gguf");
                let converted = dir.join(&converted_name);
                requantize(&weights, &converted, GgmlDType::Q8_0).map_err(rejected)?;
                std::fs::remove_file(&weights)
                    .map_err(|e| StoreError::Io(format!("{}: {e}", weights.display())))?;
                manifest.requantized_from = manifest.quantization.take();
                manifest.quantization = Some("Q8_0".into());
                manifest.weights = Some(converted_name);
            }
            ChatModel::load(&gguf_in(dir, manifest).map_err(rejected)?).map_err(rejected)?;
        }
        ModelKind::Embedding => {
            EmbeddingModel::load(dir).map_err(rejected)?;
        }
    }
    Ok(())
}

/// The weights to load for an installed chat model: its own file, or (for slow quantisations) the
/// converted copy in the cache, made on first use.
fn chat_weights(installed: &Installed, data_dir: &Path) -> Result<PathBuf, InferenceError> {
    let weights = gguf_in(&installed.dir, &installed.manifest)?;
    if !is_slow(installed.manifest.quantization.as_deref()) {
        return Ok(weights);
    }
    let digest = crate::models::sha256_file(&weights)
        .map_err(|e| InferenceError::Load(format!("{}: {e}", weights.display())))?;
    let cache = data_dir.join("cache").join("models").join(format!(
        "{}-{}",
        installed.manifest.name,
        &digest[..16]
    ));
    let file_name = weights
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let converted = cache.join(format!("{file_name}.Q8_0.gguf"));
    if converted.is_file() {
        return Ok(converted);
    }
    std::fs::create_dir_all(&cache)
        .map_err(|e| InferenceError::Load(format!("{}: {e}", cache.display())))?;
    let tokenizer = installed.dir.join("tokenizer.json");
    if tokenizer.is_file() {
        std::fs::copy(&tokenizer, cache.join("tokenizer.json"))
            .map_err(|e| InferenceError::Load(format!("{}: {e}", tokenizer.display())))?;
    }
    tracing::info!(model = %installed.manifest.name, from = ?installed.manifest.quantization, "converting the chat model's weights to Q8_0 once (candle has no fast kernel for its format)");
    requantize(&weights, &converted, GgmlDType::Q8_0)?;
    Ok(converted)
}

/// Loads an installed model.
pub fn load(installed: &Installed, data_dir: &Path) -> Result<Loaded, InferenceError> {
    match installed.manifest.kind {
        ModelKind::Chat => Ok(Loaded::Chat(std::sync::Arc::new(ChatModel::load(
            &chat_weights(installed, data_dir)?,
        )?))),
        ModelKind::Embedding => Ok(Loaded::Embedding(std::sync::Arc::new(
            EmbeddingModel::load(&installed.dir)?,
        ))),
    }
}
