//! Requantisation at import: candle has SIMD dot products for Q4_0, Q8_0 and the K-quants but not for
//! Q4_1, Q5_0, Q5_1 or Q8_1, so a file in one of those runs several times slower than llama.cpp. This
//! rewrites such a GGUF with those weights dequantised and quantised again to a fast format (Q8_0),
//! keeping the metadata and every other tensor byte for byte.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::inference::InferenceError;

/// What [`requantize`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequantizeReport {
    /// Tensors in the file.
    pub tensors: usize,
    /// Tensors converted to the target format.
    pub requantized: usize,
    /// Tensors in a slow format left as they were (their rows are not a multiple of the target's
    /// block size).
    pub left_slow: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Quantisation formats candle's CPU backend has no SIMD kernel for.
pub fn is_slow_format(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1
    )
}

/// llama.cpp's `general.file_type` for a file mostly in `dtype`, when there is one.
fn file_type(dtype: GgmlDType) -> Option<u32> {
    Some(match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q6K => 18,
        _ => return None,
    })
}

/// Writes `dst`: `src` with every weight in a slow format (see [`is_slow_format`]) requantised to
/// `target`. Other tensors (F32 norms, Q8_0 embeddings…) are copied unchanged, as is the metadata
/// (except `general.file_type`, updated when a tensor changed, and `general.alignment`, which becomes
/// the writer's 32). The file is written beside `dst` under a temporary name and renamed into place.
/// All tensors are held in memory while writing (fine for the small default models).
pub fn requantize(
    src: &Path,
    dst: &Path,
    target: GgmlDType,
) -> Result<RequantizeReport, InferenceError> {
    if is_slow_format(target) {
        return Err(InferenceError::InvalidRequest(format!(
            "{target:?} is itself a slow format: requantise to Q8_0"
        )));
    }
    let load = |what: String| InferenceError::Load(format!("{}: {what}", src.display()));
    let file = File::open(src).map_err(|e| load(e.to_string()))?;
    let bytes_before = file.metadata().map_err(|e| load(e.to_string()))?.len();
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| load(format!("not a valid GGUF file: {e}")))?;

    // Tensors in file order.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos.get(*n).map(|i| i.offset));
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let (mut requantized, mut left_slow) = (0, 0);
    for name in names {
        let qt = content
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(|e| load(format!("tensor {name}: {e}")))?;
        let row = qt.shape().dims().last().copied().unwrap_or(0);
        let qt = if !is_slow_format(qt.dtype()) {
            qt
        } else if qt.rank() < 2 || row % target.block_size() != 0 {
            left_slow += 1;
            qt
        } else {
            let f = qt.dequantize(&Device::Cpu)?;
            requantized += 1;
            QTensor::quantize(&f, target)?
        };
        tensors.push((name.clone(), qt));
    }

    let mut metadata: Vec<(&str, Value)> = content
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != "general.alignment")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    metadata.sort_by(|a, b| a.0.cmp(b.0));
    if requantized > 0 {
        if let Some(ft) = file_type(target) {
            for (k, v) in metadata.iter_mut() {
                if *k == "general.file_type" {
                    *v = Value::U32(ft);
                }
            }
        }
    }

    let tmp = temp_path(dst);
    let written = (|| -> Result<u64, InferenceError> {
        let io = |e: std::io::Error| {
            InferenceError::Runtime(format!("cannot write {}: {e}", tmp.display()))
        };
        let file = File::create(&tmp).map_err(io)?;
        let mut w = BufWriter::new(file);
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        gguf_file::write(&mut w, &md, &ts)?;
        w.flush().map_err(io)?;
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        file.metadata().map(|m| m.len()).map_err(io)
    })();
    let bytes_after = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, dst).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        InferenceError::Runtime(format!("cannot rename into {}: {e}", dst.display()))
    })?;
    Ok(RequantizeReport {
        tensors: tensors.len(),
        requantized,
        left_slow,
        bytes_before,
        bytes_after,
    })
}

/// `dst` with a hidden, process-unique temporary name in the same directory.
fn temp_path(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model.gguf".into());
    dst.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}
