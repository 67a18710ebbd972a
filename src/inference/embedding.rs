//! Sentence embeddings with a BERT-family encoder (all-MiniLM-L6-v2 by default), computed the way
//! sentence-transformers computes them: the model's tokenizer, truncation at the model's
//! `max_seq_length`, the encoder, mean pooling over the attention mask and L2 normalisation.
//!
//! The encoder is written here on candle tensors rather than taken from candle-transformers so the
//! CPU path can be tuned: query, key and value are one matmul (the query pre-scaled by 1/sqrt(d)),
//! the attention runs on contiguous tensors with the fused last-dimension softmax and no mask when a
//! batch has no padding, and a batch is split into sub-batches of similar length so little time is
//! spent on padding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::InferenceError;

/// At most this many inputs run through the encoder together.
const MAX_BATCH: usize = 32;

/// A sub-batch stops growing when padding would add more than this fraction of its real tokens.
const MAX_PADDING: f64 = 0.25;

/// The embedding of one input.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// L2-normalised, `dimensions()` long.
    pub vector: Vec<f32>,
    /// Tokens the model saw, special tokens included (at most `max_tokens()`).
    pub tokens: usize,
    /// The input had more tokens than `max_tokens()` and only its beginning was embedded.
    pub truncated: bool,
}

/// A sentence-embedding model loaded in memory. Cheap to share between threads (`Arc`); `embed` may
/// be called concurrently.
pub struct EmbeddingModel {
    name: String,
    /// Neither truncates nor pads: counts tokens and encodes inputs that fit.
    tokenizer: Tokenizer,
    /// Truncates at `max_tokens`, for inputs that do not fit.
    truncating: Tokenizer,
    encoder: Encoder,
    max_tokens: usize,
}

const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<EmbeddingModel>();
};

/// The fields of a BERT `config.json` the encoder needs.
#[derive(Debug, Deserialize)]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    type_vocab_size: usize,
    layer_norm_eps: f64,
    #[serde(default)]
    model_type: Option<String>,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default = "yes")]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

fn yes() -> bool {
    true
}

fn load_err(msg: impl Into<String>) -> InferenceError {
    InferenceError::Load(msg.into())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, InferenceError> {
    let text = std::fs::read(path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&text)
        .map_err(|e| load_err(format!("{} is not a valid config: {e}", path.display())))
}

fn required(dir: &Path, file: &str) -> Result<PathBuf, InferenceError> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(load_err(format!(
            "{} is missing from the model directory {}",
            file,
            dir.display()
        )))
    }
}

impl EmbeddingModel {
    /// Loads the model in `dir`: `config.json`, `model.safetensors` and `tokenizer.json`, plus
    /// `sentence_bert_config.json` (`max_seq_length`) and `1_Pooling/config.json` when present.
    pub fn load(dir: &Path) -> Result<EmbeddingModel, InferenceError> {
        if !dir.is_dir() {
            return Err(load_err(format!(
                "the model directory {} does not exist",
                dir.display()
            )));
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let config: BertConfig = read_json(&required(dir, "config.json")?)?;
        config.check()?;

        let sbert = dir.join("sentence_bert_config.json");
        let max_seq_length = if sbert.is_file() {
            read_json::<SentenceBertConfig>(&sbert)?.max_seq_length
        } else {
            None
        };
        let max_tokens = max_seq_length
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        if max_tokens < 2 {
            return Err(load_err(format!(
                "max_seq_length {max_tokens} leaves no room for text"
            )));
        }
        let pooling = dir.join("1_Pooling").join("config.json");
        if pooling.is_file() {
            let p: PoolingConfig = read_json(&pooling)?;
            if !p.pooling_mode_mean_tokens
                || p.pooling_mode_cls_token
                || p.pooling_mode_max_tokens
                || p.pooling_mode_mean_sqrt_len_tokens
            {
                return Err(load_err(
                    "1_Pooling/config.json asks for a pooling other than mean pooling, which is the only one supported",
                ));
            }
        }

        let tokenizer_path = required(dir, "tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| load_err(format!("{}: {e}", tokenizer_path.display())))?;
        // tokenizer.json files often carry a fixed padding and a truncation shorter than the model's
        // limit (128 for MiniLM): both are replaced, as sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| load_err(format!("tokenizer: {e}")))?;
        let mut truncating = tokenizer.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| load_err(format!("tokenizer: {e}")))?;

        let weights = Weights::load(&required(dir, "model.safetensors")?)?;
        let encoder = Encoder::load(&weights, &config)?;
        Ok(EmbeddingModel {
            name,
            tokenizer,
            truncating,
            encoder,
            max_tokens,
        })
    }

    /// The length of the vectors.
    pub fn dimensions(&self) -> usize {
        self.encoder.hidden
    }

    /// The most tokens (special tokens included) of an input that are embedded; the rest is cut off.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The model's name: its directory's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of tokens of `text`, special tokens included, before any truncation.
    pub fn count_tokens(&self, text: &str) -> Result<usize, InferenceError> {
        Ok(self.encode(&self.tokenizer, text)?.0.len())
    }

    fn encode(
        &self,
        tokenizer: &Tokenizer,
        text: &str,
    ) -> Result<(Vec<u32>, Vec<u32>), InferenceError> {
        let enc = tokenizer
            .encode_fast(text, true)
            .map_err(|e| InferenceError::Runtime(format!("tokenizer: {e}")))?;
        Ok((enc.get_ids().to_vec(), enc.get_type_ids().to_vec()))
    }

    /// Embeds every text, in order. Inputs longer than `max_tokens()` are truncated (and said so).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedded>, InferenceError> {
        let mut inputs = Vec::with_capacity(texts.len());
        for text in texts {
            let (mut ids, mut types) = self.encode(&self.tokenizer, text)?;
            let truncated = ids.len() > self.max_tokens;
            if truncated {
                (ids, types) = self.encode(&self.truncating, text)?;
            }
            inputs.push(Input {
                ids,
                types,
                truncated,
            });
        }

        // Shortest first; consecutive inputs of similar length run together.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].ids.len());
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            let mut real = inputs[order[start]].ids.len();
            while end < order.len() && end - start < MAX_BATCH {
                let len = inputs[order[end]].ids.len();
                let padded = len * (end - start + 1);
                if padded as f64 > (real + len) as f64 * (1.0 + MAX_PADDING) {
                    break;
                }
                real += len;
                end += 1;
            }
            let batch: Vec<&Input> = order[start..end].iter().map(|&i| &inputs[i]).collect();
            let pooled = self.encoder.embed(&batch)?;
            for (&i, v) in order[start..end].iter().zip(pooled) {
                vectors[i] = Some(v);
            }
            start = end;
        }
        inputs
            .into_iter()
            .zip(vectors)
            .map(|(input, vector)| {
                Ok(Embedded {
                    vector: vector.ok_or_else(|| {
                        InferenceError::Runtime("an input was not embedded".into())
                    })?,
                    tokens: input.ids.len(),
                    truncated: input.truncated,
                })
            })
            .collect()
    }
}

/// One tokenized input.
struct Input {
    ids: Vec<u32>,
    types: Vec<u32>,
    truncated: bool,
}

impl BertConfig {
    fn check(&self) -> Result<(), InferenceError> {
        if let Some(kind) = &self.model_type {
            if kind != "bert" {
                return Err(load_err(format!(
                    "config.json: model_type {kind:?} is not supported (only \"bert\")"
                )));
            }
        }
        if let Some(kind) = &self.position_embedding_type {
            if kind != "absolute" {
                return Err(load_err(format!(
                    "config.json: position_embedding_type {kind:?} is not supported (only \"absolute\")"
                )));
            }
        }
        if self.num_attention_heads == 0
            || self.hidden_size == 0
            || self.hidden_size % self.num_attention_heads != 0
        {
            return Err(load_err(format!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Activation::parse(&self.hidden_act)?;
        Ok(())
    }
}

/// The tensors of a safetensors file, checked against the file's size before they are parsed.
struct Weights {
    tensors: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Weights {
    fn load(path: &Path) -> Result<Weights, InferenceError> {
        let bytes =
            std::fs::read(path).map_err(|e| load_err(format!("{}: {e}", path.display())))?;
        check_safetensors_size(&bytes)
            .map_err(|why| load_err(format!("{} {why}", path.display())))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            load_err(format!(
                "{} is not a valid safetensors file: {e}",
                path.display()
            ))
        })?;
        // Checkpoints saved from BertForMaskedLM and friends put the encoder under `bert.`.
        let prefix = if !tensors.contains_key("embeddings.word_embeddings.weight")
            && tensors.contains_key("bert.embeddings.word_embeddings.weight")
        {
            "bert."
        } else {
            ""
        };
        Ok(Weights { tensors, prefix })
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, InferenceError> {
        let tensor = self
            .tensors
            .get(&format!("{}{name}", self.prefix))
            .ok_or_else(|| load_err(format!("model.safetensors has no tensor {name}")))?;
        if tensor.dims() != shape {
            return Err(load_err(format!(
                "model.safetensors: {name} has shape {:?} where config.json implies {shape:?}",
                tensor.dims()
            )));
        }
        Ok(tensor.to_dtype(DType::F32)?)
    }
}

/// Refuses a safetensors file whose header is unreadable or which is shorter than its header says
/// (an interrupted copy), with the reason.
fn check_safetensors_size(bytes: &[u8]) -> Result<(), String> {
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!(
                "is truncated: {} bytes, too short for a header",
                bytes.len()
            )
        })?;
    let header_len = u64::from_le_bytes(len_bytes);
    let header_end = 8u64.saturating_add(header_len);
    if header_end > bytes.len() as u64 {
        return Err(format!(
            "is truncated or corrupt: {} bytes, but its header alone claims {header_end}",
            bytes.len()
        ));
    }
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..header_end as usize])
            .map_err(|e| format!("has a corrupt header: {e}"))?;
    let data_end = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let expected = header_end.saturating_add(data_end);
    if (bytes.len() as u64) < expected {
        return Err(format!(
            "is truncated: {} bytes where its header describes {expected}",
            bytes.len()
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    /// The exact GELU (with erf), BERT's `gelu`.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Result<Activation, InferenceError> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(load_err(format!(
                "config.json: hidden_act {other:?} is not supported"
            ))),
        }
    }

    /// `act(xs + bias)`, in one pass over the data for the exact GELU.
    fn apply_with_bias(self, xs: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Gelu => xs.apply_op2_no_bwd(bias, &BiasGelu),
            Activation::GeluTanh => xs.broadcast_add(bias)?.gelu(),
            Activation::Relu => xs.broadcast_add(bias)?.relu(),
        }
    }
}

/// `gelu(x + bias)` over the rows of a contiguous f32 matrix, with the exact (erf) GELU that BERT
/// uses. candle's own `gelu_erf` calls libm's scalar `erff` per element; this one is branch-free so
/// the compiler vectorises it.
struct BiasGelu;

impl candle_core::CustomOp2 for BiasGelu {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage;
        let (CpuStorage::F32(xs), CpuStorage::F32(bias)) = (s1, s2) else {
            candle_core::bail!("bias-gelu: f32 only")
        };
        let (Some((x0, x1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("bias-gelu: contiguous tensors only")
        };
        let (xs, bias) = (&xs[x0..x1], &bias[b0..b1]);
        if bias.is_empty() || xs.len() % bias.len() != 0 {
            candle_core::bail!(
                "bias-gelu: a bias of {} for {} values",
                bias.len(),
                xs.len()
            )
        }
        let mut out = vec![0f32; xs.len()];
        for (o, x) in out
            .chunks_exact_mut(bias.len())
            .zip(xs.chunks_exact(bias.len()))
        {
            for ((o, x), b) in o.iter_mut().zip(x).zip(bias) {
                *o = gelu_erf(x + b);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// `x * Φ(x) = x/2 * (1 + erf(x/√2))`, with erf from Abramowitz and Stegun 7.1.28 (absolute error
/// below 3e-7, under f32's resolution of the result): `1 - (1 + a1 t + ... + a6 t^6)^-16`.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    const A: [f32; 6] = [
        0.070_523_08,
        0.042_282_01,
        0.009_270_527,
        0.000_152_014_3,
        0.000_276_567_2,
        0.000_043_063_8,
    ];
    let t = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let p = 1.0 + t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * (A[4] + t * A[5])))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let erf = (1.0 - 1.0 / (p8 * p8)).copysign(x);
    0.5 * x * (1.0 + erf)
}

/// `x · W + b` with `W` stored transposed (`[in, out]`, contiguous).
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn load(w: &Weights, name: &str, inp: usize, out: usize) -> Result<Dense, InferenceError> {
        let weight = w.get(&format!("{name}.weight"), &[out, inp])?;
        let bias = w.get(&format!("{name}.bias"), &[out])?;
        Dense::new(&weight, bias)
    }

    /// From a `[out, in]` weight as stored by PyTorch.
    fn new(weight: &Tensor, bias: Tensor) -> Result<Dense, InferenceError> {
        Ok(Dense {
            weight: weight.t()?.contiguous()?,
            bias,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        xs.matmul(&self.weight)?.broadcast_add(&self.bias)
    }
}

struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl Norm {
    fn load(w: &Weights, name: &str, size: usize, eps: f64) -> Result<Norm, InferenceError> {
        Ok(Norm {
            weight: w.get(&format!("{name}.weight"), &[size])?,
            bias: w.get(&format!("{name}.bias"), &[size])?,
            eps: eps as f32,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
    }
}

struct Layer {
    /// Query (pre-scaled by 1/sqrt(head size)), key and value in one matrix.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

struct Encoder {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    activation: Activation,
}

impl Encoder {
    fn load(w: &Weights, c: &BertConfig) -> Result<Encoder, InferenceError> {
        let h = c.hidden_size;
        let eps = c.layer_norm_eps;
        let heads = c.num_attention_heads;
        let scale = 1.0 / ((h / heads) as f64).sqrt();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let a = format!("{p}.attention.self");
            let q_w = (w.get(&format!("{a}.query.weight"), &[h, h])? * scale)?;
            let q_b = (w.get(&format!("{a}.query.bias"), &[h])? * scale)?;
            let k_w = w.get(&format!("{a}.key.weight"), &[h, h])?;
            let k_b = w.get(&format!("{a}.key.bias"), &[h])?;
            let v_w = w.get(&format!("{a}.value.weight"), &[h, h])?;
            let v_b = w.get(&format!("{a}.value.bias"), &[h])?;
            let qkv = Dense::new(
                &Tensor::cat(&[q_w, k_w, v_w], 0)?,
                Tensor::cat(&[q_b, k_b, v_b], 0)?,
            )?;
            layers.push(Layer {
                qkv,
                attention_out: Dense::load(w, &format!("{p}.attention.output.dense"), h, h)?,
                attention_norm: Norm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: Dense::load(
                    w,
                    &format!("{p}.intermediate.dense"),
                    h,
                    c.intermediate_size,
                )?,
                output: Dense::load(w, &format!("{p}.output.dense"), c.intermediate_size, h)?,
                output_norm: Norm::load(w, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Encoder {
            word: w.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[c.max_position_embeddings, h],
            )?,
            token_type: w.get(
                "embeddings.token_type_embeddings.weight",
                &[c.type_vocab_size, h],
            )?,
            embedding_norm: Norm::load(w, "embeddings.LayerNorm", h, eps)?,
            layers,
            hidden: h,
            heads,
            activation: Activation::parse(&c.hidden_act)?,
        })
    }

    /// Mean-pooled, L2-normalised vectors of a batch of inputs (similar lengths, padded to the
    /// longest).
    fn embed(&self, batch: &[&Input]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let b = batch.len();
        let len = batch.iter().map(|i| i.ids.len()).max().unwrap_or(0);
        if b == 0 || len == 0 {
            return Ok(vec![vec![0.0; self.hidden]; b]);
        }
        let mut ids = vec![0u32; b * len];
        let mut types = vec![0u32; b * len];
        let mut mask = vec![0f32; b * len];
        for (row, input) in batch.iter().enumerate() {
            let at = row * len;
            ids[at..at + input.ids.len()].copy_from_slice(&input.ids);
            types[at..at + input.types.len()].copy_from_slice(&input.types);
            for m in &mut mask[at + input.ids.len()..at + len] {
                *m = f32::MIN;
            }
        }
        let padded = batch.iter().any(|i| i.ids.len() < len);
        let mask = if padded {
            Some(Tensor::from_vec(mask, (b, 1, 1, len), &Device::Cpu)?)
        } else {
            None
        };
        let out = self.forward(&ids, &types, b, len, mask.as_ref())?;
        let hidden = out.flatten_all()?.to_vec1::<f32>()?;

        // Mean pooling over the real tokens, then L2 normalisation.
        let h = self.hidden;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(row, input)| {
                let n = input.ids.len();
                let mut v = vec![0f32; h];
                for t in 0..n {
                    let at = (row * len + t) * h;
                    for (acc, x) in v.iter_mut().zip(&hidden[at..at + h]) {
                        *acc += x;
                    }
                }
                let n = n.max(1) as f32;
                v.iter_mut().for_each(|x| *x /= n);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }

    /// The last hidden states, `[b * len, hidden]`.
    fn forward(
        &self,
        ids: &[u32],
        types: &[u32],
        b: usize,
        len: usize,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self.hidden;
        let dev = &Device::Cpu;
        let ids = Tensor::from_slice(ids, b * len, dev)?;
        let types = Tensor::from_slice(types, b * len, dev)?;
        let xs = (self.word.index_select(&ids, 0)? + self.token_type.index_select(&types, 0)?)?;
        let xs = xs
            .reshape((b, len, h))?
            .broadcast_add(&self.position.narrow(0, 0, len)?)?
            .reshape((b * len, h))?;
        let mut xs = self.embedding_norm.forward(&xs)?;
        for layer in &self.layers {
            xs = self.layer(layer, &xs, b, len, mask)?;
        }
        Ok(xs)
    }

    fn layer(
        &self,
        l: &Layer,
        xs: &Tensor,
        b: usize,
        len: usize,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let h = self.hidden;
        let heads = self.heads;
        let d = h / heads;
        // [b*len, 3h] -> [3, b, heads, len, d], one copy.
        let qkv = l
            .qkv
            .forward(xs)?
            .reshape((b, len, 3, heads, d))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let q = qkv.get(0)?;
        let k = qkv.get(1)?;
        let v = qkv.get(2)?;
        let scores = q.matmul(&k.t()?)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * len, h))?;
        let attended = l
            .attention_norm
            .forward(&(l.attention_out.forward(&context)? + xs)?)?;
        let inner = self.activation.apply_with_bias(
            &attended.matmul(&l.intermediate.weight)?,
            &l.intermediate.bias,
        )?;
        l.output_norm
            .forward(&(l.output.forward(&inner)? + &attended)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path) {
        std::fs::write(
            dir.join("config.json"),
            r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 8, "hidden_act": "gelu", "max_position_embeddings": 16,
                "type_vocab_size": 2, "layer_norm_eps": 1e-12, "model_type": "bert"}"#,
        )
        .expect("write config");
    }

    fn load_error(dir: &Path) -> String {
        match EmbeddingModel::load(dir) {
            Err(InferenceError::Load(why)) => why,
            Err(other) => panic!("not a load error: {other}"),
            Ok(_) => panic!("loaded"),
        }
    }

    #[test]
    fn missing_directory_and_files_are_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(load_error(&tmp.path().join("nope")).contains("does not exist"));
        assert!(load_error(tmp.path()).contains("config.json is missing"));
        std::fs::write(tmp.path().join("config.json"), "{").expect("write");
        assert!(load_error(tmp.path()).contains("config.json is not a valid config"));
        write_config(tmp.path());
        assert!(load_error(tmp.path()).contains("tokenizer.json is missing"));
    }

    #[test]
    fn unsupported_configs_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 8, "hidden_act": "swish", "max_position_embeddings": 16,
                "type_vocab_size": 2, "layer_norm_eps": 1e-12}"#,
        )
        .expect("write");
        assert!(load_error(tmp.path()).contains("hidden_act \"swish\""));
    }

    #[test]
    fn fast_gelu_matches_the_exact_one() {
        let mut worst = 0f32;
        for i in -2000..=2000 {
            let x = i as f32 / 200.0;
            let exact =
                (candle_core::cpu::erf::erf_f64(x as f64 / 2f64.sqrt()) + 1.0) * 0.5 * x as f64;
            worst = worst.max((gelu_erf(x) as f64 - exact).abs() as f32);
        }
        assert!(worst < 5e-6, "{worst}");
        assert_eq!(gelu_erf(f32::MAX).to_bits(), f32::MAX.to_bits());
        assert_eq!(gelu_erf(-1e30), 0.0);
    }

    #[test]
    fn truncated_safetensors_are_refused_with_the_reason() {
        let header = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header);
        file.extend_from_slice(&[0u8; 16]);
        assert_eq!(check_safetensors_size(&file), Ok(()));
        let why = check_safetensors_size(&file[..file.len() - 3]).expect_err("truncated");
        assert!(why.contains("is truncated"), "{why}");
        assert!(check_safetensors_size(&file[..20])
            .expect_err("header cut")
            .contains("truncated or corrupt"));
        assert!(check_safetensors_size(&file[..5])
            .expect_err("tiny")
            .contains("too short"));
        let mut bad = file.clone();
        bad[9] = b'!';
        assert!(check_safetensors_size(&bad)
            .expect_err("garbled")
            .contains("corrupt header"));
    }
}
