//! Enclave's own llama forward pass for GGUF models whose matrices are all Q8_0 (what the model store
//! requantises slow formats to, so the default model always takes this path).
//!
//! candle's `quantized_llama` runs every step as a chain of tensor operations: each one allocates,
//! the KV cache is concatenated anew for every token, and the matrix products hand work to a
//! spinning thread pool that waits through all the small operations in between. Decoding a 135M
//! model is a stream of small matrix-vector products, so that overhead was a quarter of the time.
//! Here a [`Session`] owns a preallocated KV cache and scratch buffers; the small operations (RMS
//! norm, rotary embedding, attention, SiLU) are plain loops, and each matrix-vector product is split
//! by rows on rayon. The dot products themselves are candle's Q8_0 kernels (`BlockQ8_0::vec_dot`,
//! AVX2 when the CPU has it), so decoding computes what candle computes; prompts of 24 tokens or more
//! run on gemm over weights dequantised a block at a time (2.5× faster than 8-bit dot products).
//! `super::tests` checks the logits against `quantized_llama`.
//!
//! [`Q8Llama::load`] answers `Ok(None)` for what it does not cover (another weight format, mixture
//! of experts, a partial rotary dimension); [`super::ChatModel`] then uses candle's implementation.

use std::io::{Read, Seek};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::k_quants::{self, BlockQ8_0, GgmlType, QK8_0};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use rayon::prelude::*;

use crate::inference::matmul::{matmul, Matrix};
use crate::inference::InferenceError;

/// Bytes of one Q8_0 block in a GGUF file: an f16 scale and 32 signed bytes.
const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// A weight matrix of `rows` × `cols` in Q8_0 blocks, row-major (`cols / 32` blocks a row).
struct Q8Matrix {
    rows: usize,
    cols: usize,
    blocks: Vec<BlockQ8_0>,
}

impl Q8Matrix {
    /// The rows of several GGUF tensors of the same width, stacked in order (q, k and v become one
    /// matrix, so one pass over the input serves the three). `None` when a tensor is not a Q8_0
    /// matrix of that width, or its blocks do not survive being rebuilt exactly.
    fn stacked(parts: &[QTensor]) -> Result<Option<Q8Matrix>, InferenceError> {
        let Some(first) = parts.first() else {
            return Ok(None);
        };
        let Ok((_, cols)) = first.shape().dims2() else {
            return Ok(None);
        };
        if cols == 0 || cols % QK8_0 != 0 {
            return Ok(None);
        }
        let per_row = cols / QK8_0;
        let mut rows = 0;
        for part in parts {
            match part.shape().dims2() {
                Ok((r, c)) if c == cols && part.dtype() == GgmlDType::Q8_0 => rows += r,
                _ => return Ok(None),
            }
        }
        let mut blocks = vec![BlockQ8_0::zeros(); rows * per_row];
        let mut row_values = vec![0f32; cols];
        let mut check = vec![0f32; cols];
        let mut row = 0;
        for part in parts {
            let data = part.data()?;
            for raw in data.chunks_exact(per_row * Q8_0_BLOCK_BYTES) {
                decode_q8_0_row(raw, &mut row_values);
                let dst = &mut blocks[row * per_row..(row + 1) * per_row];
                // candle's block fields are private: the row is rebuilt through its quantiser and
                // kept only if it gives back exactly the file's values.
                BlockQ8_0::from_float(&row_values, dst);
                BlockQ8_0::to_float(dst, &mut check);
                if check != row_values {
                    return Ok(None);
                }
                row += 1;
            }
        }
        if row != rows {
            return Err(InferenceError::Load(format!(
                "a Q8_0 tensor holds {row} rows where its shape says {rows}"
            )));
        }
        Ok(Some(Q8Matrix { rows, cols, blocks }))
    }

    fn blocks_per_row(&self) -> usize {
        self.cols / QK8_0
    }

    fn row(&self, r: usize) -> &[BlockQ8_0] {
        let n = self.blocks_per_row();
        &self.blocks[r * n..(r + 1) * n]
    }

    /// `out[r] = row r · x` for a quantised input vector, the rows split across the rayon pool.
    fn matvec(&self, x: &[BlockQ8_0], out: &mut [f32]) {
        let chunk = rows_per_task(self.rows);
        out[..self.rows]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, out)| {
                let first = c * chunk;
                for (i, y) in out.iter_mut().enumerate() {
                    *y = BlockQ8_0::vec_dot(self.cols, self.row(first + i), x);
                }
            });
    }

    /// `out[t][r] = row r · xs[t]` for `m` input rows (f32, `m × cols`, row-major like `out`).
    ///
    /// From [`DENSE_FROM_ROWS`] rows on (prompts), the weights are dequantised to f32, up to
    /// [`DENSE_BLOCK_VALUES`] at a time into `buffers`, and multiplied by gemm: each converted value
    /// then serves every input row, 2.5× faster than the 8-bit dot products for a 214-token prompt. Fewer rows go through candle's tiled Q8_0 product (it
    /// quantises the input itself, like [`Self::matvec`]).
    fn matmul(
        &self,
        xs: &[f32],
        m: usize,
        out: &mut [f32],
        buffers: &mut DenseBuffers,
    ) -> Result<(), InferenceError> {
        let (k, n) = (self.cols, self.rows);
        let xs = &xs[..m * k];
        let out = &mut out[..m * n];
        if m < DENSE_FROM_ROWS {
            k_quants::matmul((m, k, n), xs, &self.blocks, out)?;
            return Ok(());
        }
        let per_row = self.blocks_per_row();
        let block_rows = (DENSE_BLOCK_VALUES / k).clamp(1, n);
        let x = Matrix::contiguous(xs, m, k);
        for first in (0..n).step_by(block_rows) {
            let rows = block_rows.min(n - first);
            let weights = &mut buffers.weights;
            weights.resize(rows * k, 0.0);
            weights
                .par_chunks_mut(k)
                .zip(self.blocks[first * per_row..(first + rows) * per_row].par_chunks(per_row))
                .for_each(|(row, blocks)| BlockQ8_0::to_float(blocks, row));
            // The block's rows, read as the columns of a k × rows matrix.
            let w = Matrix::strided(weights, 0, k, rows, 1, k);
            if rows == n {
                matmul(out, &x, &w, false, true);
            } else {
                let part = &mut buffers.part;
                part.resize(m * rows, 0.0);
                matmul(part, &x, &w, false, true);
                for (out, part) in out.chunks_exact_mut(n).zip(part.chunks_exact(rows)) {
                    out[first..first + rows].copy_from_slice(part);
                }
            }
        }
        Ok(())
    }
}

/// Input rows from which [`Q8Matrix::matmul`] dequantises and uses gemm (measured crossover: about
/// 25 tokens).
const DENSE_FROM_ROWS: usize = 24;

/// Weights dequantised at a time by [`Q8Matrix::matmul`]: 2M values (8 MB), every matrix of
/// SmolLM2-135M in one piece; larger models go by blocks of rows.
const DENSE_BLOCK_VALUES: usize = 2 << 20;

/// The f32 buffers of [`Q8Matrix::matmul`], kept by a session between calls.
#[derive(Default)]
struct DenseBuffers {
    weights: Vec<f32>,
    part: Vec<f32>,
}

/// Rows per rayon task: a few tasks per thread so an uneven split still balances.
fn rows_per_task(rows: usize) -> usize {
    let tasks = rayon::current_num_threads().max(1) * 4;
    rows.div_ceil(tasks).max(16)
}

/// The values of one row of GGUF Q8_0 blocks (`raw` is a whole number of blocks).
fn decode_q8_0_row(raw: &[u8], out: &mut [f32]) {
    for (block, out) in raw
        .chunks_exact(Q8_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK8_0))
    {
        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (y, &q) in out.iter_mut().zip(&block[2..]) {
            *y = f32::from(q as i8) * scale;
        }
    }
}

/// A vector of f32 values read from a GGUF tensor of any format (the norms are F32).
fn vector(t: &QTensor, len: usize) -> Result<Option<Vec<f32>>, InferenceError> {
    let v: Vec<f32> = t.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    Ok((v.len() == len).then_some(v))
}

struct Layer {
    attention_norm: Vec<f32>,
    /// q, k and v stacked: `heads × head_dim + 2 × kv_heads × head_dim` rows.
    qkv: Q8Matrix,
    attention_output: Q8Matrix,
    ffn_norm: Vec<f32>,
    /// gate and up stacked: `2 × ffn` rows.
    gate_up: Q8Matrix,
    down: Q8Matrix,
}

/// The shape of the network, from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Shape {
    embedding: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    ffn: usize,
    vocab: usize,
    rms_eps: f32,
}

impl Shape {
    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

/// A llama-family model on Q8_0 weights. Shared by all generations (`Send + Sync`); each one runs in
/// its own [`Session`].
pub(crate) struct Q8Llama {
    shape: Shape,
    token_embeddings: Q8Matrix,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    /// `None`: the output projection is the token embedding matrix (tied weights).
    output: Option<Q8Matrix>,
    /// cos and sin of every position's rotation angles, `positions × head_dim / 2` each.
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
    positions: usize,
}

impl Q8Llama {
    /// Reads the model when this implementation covers it: every matrix Q8_0, no experts, the rotary
    /// embedding over whole heads. `positions` bounds the context (the rotation tables' length).
    pub(crate) fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        positions: usize,
    ) -> Result<Option<Q8Llama>, InferenceError> {
        let md = |key: &str| content.metadata.get(key);
        let md_usize = |key: &str| {
            md(key)
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| InferenceError::Load(format!("the GGUF metadata has no {key}")))
        };
        if md("llama.expert_count")
            .and_then(|v| v.to_u32().ok())
            .is_some_and(|n| n > 1)
        {
            return Ok(None);
        }
        let embedding = md_usize("llama.embedding_length")?;
        let heads = md_usize("llama.attention.head_count")?;
        let kv_heads = md_usize("llama.attention.head_count_kv")?;
        let blocks = md_usize("llama.block_count")?;
        let ffn = md_usize("llama.feed_forward_length")?;
        let rope_dim = md_usize("llama.rope.dimension_count")?;
        let rms_eps = md("llama.attention.layer_norm_rms_epsilon")
            .and_then(|v| v.to_f32().ok())
            .ok_or_else(|| {
                InferenceError::Load(
                    "the GGUF metadata has no llama.attention.layer_norm_rms_epsilon".into(),
                )
            })?;
        let freq_base = md("llama.rope.freq_base")
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(10_000.0);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || embedding % heads != 0 {
            return Ok(None);
        }
        let head_dim = embedding / heads;
        if rope_dim != head_dim || head_dim % 2 != 0 {
            return Ok(None);
        }
        // Only tensors stored as Q8_0 (matrices) or F32 (norms) are read by this path; decide
        // before reading anything.
        let supported = content.tensor_infos.iter().all(|(name, info)| {
            info.ggml_dtype == GgmlDType::Q8_0
                || (info.ggml_dtype == GgmlDType::F32 && name.ends_with("norm.weight"))
                || !name.ends_with(".weight")
        });
        if !supported {
            return Ok(None);
        }

        let mut tensor = |name: &str| {
            content
                .tensor(reader, name, &Device::Cpu)
                .map_err(|e| InferenceError::Load(format!("tensor {name}: {e}")))
        };
        let Some(token_embeddings) = Q8Matrix::stacked(&[tensor("token_embd.weight")?])? else {
            return Ok(None);
        };
        if token_embeddings.cols != embedding {
            return Ok(None);
        }
        let vocab = token_embeddings.rows;
        let Some(output_norm) = vector(&tensor("output_norm.weight")?, embedding)? else {
            return Ok(None);
        };
        let output = if content.tensor_infos.contains_key("output.weight") {
            match Q8Matrix::stacked(&[tensor("output.weight")?])? {
                Some(m) if m.rows == vocab && m.cols == embedding => Some(m),
                _ => return Ok(None),
            }
        } else {
            None
        };
        let shape = Shape {
            embedding,
            heads,
            kv_heads,
            head_dim,
            ffn,
            vocab,
            rms_eps,
        };
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let p = format!("blk.{i}");
            let qkv = Q8Matrix::stacked(&[
                tensor(&format!("{p}.attn_q.weight"))?,
                tensor(&format!("{p}.attn_k.weight"))?,
                tensor(&format!("{p}.attn_v.weight"))?,
            ])?;
            let attention_output =
                Q8Matrix::stacked(&[tensor(&format!("{p}.attn_output.weight"))?])?;
            let gate_up = Q8Matrix::stacked(&[
                tensor(&format!("{p}.ffn_gate.weight"))?,
                tensor(&format!("{p}.ffn_up.weight"))?,
            ])?;
            let down = Q8Matrix::stacked(&[tensor(&format!("{p}.ffn_down.weight"))?])?;
            let attention_norm = vector(&tensor(&format!("{p}.attn_norm.weight"))?, embedding)?;
            let ffn_norm = vector(&tensor(&format!("{p}.ffn_norm.weight"))?, embedding)?;
            let (
                Some(qkv),
                Some(attention_output),
                Some(gate_up),
                Some(down),
                Some(attention_norm),
                Some(ffn_norm),
            ) = (
                qkv,
                attention_output,
                gate_up,
                down,
                attention_norm,
                ffn_norm,
            )
            else {
                return Ok(None);
            };
            let shapes_fit = qkv.rows == shape.q_width() + 2 * shape.kv_width()
                && qkv.cols == embedding
                && attention_output.rows == embedding
                && attention_output.cols == shape.q_width()
                && gate_up.rows == 2 * ffn
                && gate_up.cols == embedding
                && down.rows == embedding
                && down.cols == ffn;
            if !shapes_fit {
                return Ok(None);
            }
            layers.push(Layer {
                attention_norm,
                qkv,
                attention_output,
                ffn_norm,
                gate_up,
                down,
            });
        }

        // The angles as candle's `quantized_llama` computes them (f32 throughout), so both
        // implementations rotate identically.
        let half_dim = head_dim / 2;
        let theta: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| 1f32 / freq_base.powf(i as f32 / head_dim as f32))
            .collect();
        let mut rope_cos = Vec::with_capacity(positions * half_dim);
        let mut rope_sin = Vec::with_capacity(positions * half_dim);
        for pos in 0..positions {
            for &t in &theta {
                let angle = pos as f32 * t;
                rope_cos.push(angle.cos());
                rope_sin.push(angle.sin());
            }
        }
        Ok(Some(Q8Llama {
            shape,
            token_embeddings,
            layers,
            output_norm,
            output,
            rope_cos,
            rope_sin,
            positions,
        }))
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.shape.vocab
    }

    /// A generation's state for up to `positions` tokens (prompt and answer), clamped to the
    /// model's rotation tables. The KV cache is allocated here, once.
    pub(crate) fn session(&self, positions: usize) -> Session<'_> {
        let positions = positions.min(self.positions).max(1);
        let kv = positions * self.shape.kv_width();
        Session {
            model: self,
            keys: (0..self.layers.len()).map(|_| vec![0f32; kv]).collect(),
            values: (0..self.layers.len()).map(|_| vec![0f32; kv]).collect(),
            len: 0,
            capacity: positions,
            scratch: Scratch::default(),
        }
    }
}

/// Buffers of one forward pass, grown to the largest number of tokens seen and reused.
#[derive(Default)]
struct Scratch {
    tokens: usize,
    hidden: Vec<f32>,
    normed: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    projected: Vec<f32>,
    gate_up: Vec<f32>,
    ffn: Vec<f32>,
    quantized: Vec<BlockQ8_0>,
    dense: DenseBuffers,
}

impl Scratch {
    fn fit(&mut self, s: &Shape, tokens: usize) {
        if self.tokens >= tokens {
            return;
        }
        let n = tokens;
        self.tokens = n;
        self.hidden = vec![0.0; n * s.embedding];
        self.normed = vec![0.0; n * s.embedding];
        self.qkv = vec![0.0; n * (s.q_width() + 2 * s.kv_width())];
        self.context = vec![0.0; n * s.q_width()];
        self.projected = vec![0.0; n * s.embedding];
        self.gate_up = vec![0.0; n * 2 * s.ffn];
        self.ffn = vec![0.0; n * s.ffn];
        self.quantized = vec![BlockQ8_0::zeros(); s.embedding.max(s.ffn) / QK8_0];
    }
}

/// One generation: the KV cache (every layer's keys and values of the tokens seen so far) and the
/// scratch buffers.
pub(crate) struct Session<'m> {
    model: &'m Q8Llama,
    /// Per layer, `capacity × kv_heads × head_dim`: position-major, heads side by side.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
    scratch: Scratch,
}

impl Session<'_> {
    /// Runs `tokens` after those already seen and writes the logits of the last one into `logits`.
    pub(crate) fn forward(
        &mut self,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        let m = tokens.len();
        let model = self.model;
        let s = model.shape;
        if m == 0 {
            return Err(InferenceError::InvalidRequest("no tokens to run".into()));
        }
        if self.len + m > self.capacity {
            return Err(InferenceError::Runtime(format!(
                "the session has room for {} more positions, not {}",
                self.capacity - self.len,
                m
            )));
        }
        if let Some(bad) = tokens.iter().find(|&&t| t as usize >= s.vocab) {
            return Err(InferenceError::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary ({} tokens)",
                s.vocab
            )));
        }
        let start = self.len;
        let d = s.embedding;
        self.scratch.fit(&s, m);
        let b = &mut self.scratch;
        for (&t, row) in tokens.iter().zip(b.hidden.chunks_exact_mut(d)) {
            BlockQ8_0::to_float(model.token_embeddings.row(t as usize), row);
        }

        let qkv_width = s.q_width() + 2 * s.kv_width();
        for (layer, (keys, values)) in model
            .layers
            .iter()
            .zip(self.keys.iter_mut().zip(self.values.iter_mut()))
        {
            // Attention.
            rms_norm(
                &b.hidden[..m * d],
                &layer.attention_norm,
                s.rms_eps,
                &mut b.normed,
            );
            project(
                &layer.qkv,
                &b.normed,
                m,
                &mut b.quantized,
                &mut b.dense,
                &mut b.qkv,
            )?;
            for (t, qkv) in b.qkv[..m * qkv_width]
                .chunks_exact_mut(qkv_width)
                .enumerate()
            {
                let pos = start + t;
                let (q, kv) = qkv.split_at_mut(s.q_width());
                let (k, v) = kv.split_at_mut(s.kv_width());
                model.rotate(q, pos);
                model.rotate(k, pos);
                let at = pos * s.kv_width();
                keys[at..at + s.kv_width()].copy_from_slice(k);
                values[at..at + s.kv_width()].copy_from_slice(v);
            }
            attention(
                &s,
                &b.qkv[..m * qkv_width],
                keys,
                values,
                start,
                m,
                &mut b.context,
            );
            project(
                &layer.attention_output,
                &b.context,
                m,
                &mut b.quantized,
                &mut b.dense,
                &mut b.projected,
            )?;
            add_into(&mut b.hidden[..m * d], &b.projected[..m * d]);

            // Feed-forward.
            rms_norm(
                &b.hidden[..m * d],
                &layer.ffn_norm,
                s.rms_eps,
                &mut b.normed,
            );
            project(
                &layer.gate_up,
                &b.normed,
                m,
                &mut b.quantized,
                &mut b.dense,
                &mut b.gate_up,
            )?;
            for (gate_up, out) in b.gate_up[..m * 2 * s.ffn]
                .chunks_exact(2 * s.ffn)
                .zip(b.ffn.chunks_exact_mut(s.ffn))
            {
                let (gate, up) = gate_up.split_at(s.ffn);
                for ((y, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                    *y = g / (1.0 + (-g).exp()) * u;
                }
            }
            project(
                &layer.down,
                &b.ffn,
                m,
                &mut b.quantized,
                &mut b.dense,
                &mut b.projected,
            )?;
            add_into(&mut b.hidden[..m * d], &b.projected[..m * d]);
        }
        self.len += m;

        // Only the last token's logits are needed.
        let last = &b.hidden[(m - 1) * d..m * d];
        rms_norm(last, &model.output_norm, s.rms_eps, &mut b.normed);
        let output = model.output.as_ref().unwrap_or(&model.token_embeddings);
        logits.resize(s.vocab, 0.0);
        project(
            output,
            &b.normed[..d],
            1,
            &mut b.quantized,
            &mut b.dense,
            logits,
        )
    }
}

impl Q8Llama {
    /// Rotates each head of `x` (heads × head_dim) by the angles of `pos`, pairs (2i, 2i + 1) as in
    /// GGUF llama weights.
    fn rotate(&self, x: &mut [f32], pos: usize) {
        let half_dim = self.shape.head_dim / 2;
        let cos = &self.rope_cos[pos * half_dim..(pos + 1) * half_dim];
        let sin = &self.rope_sin[pos * half_dim..(pos + 1) * half_dim];
        for head in x.chunks_exact_mut(self.shape.head_dim) {
            for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * c - b * s;
                pair[1] = a * s + b * c;
            }
        }
    }
}

/// `out = matrix · x` for `m` input rows: one vector through the rayon matrix-vector product
/// (quantised once into `quantized`), several through [`Q8Matrix::matmul`].
fn project(
    matrix: &Q8Matrix,
    x: &[f32],
    m: usize,
    quantized: &mut [BlockQ8_0],
    dense: &mut DenseBuffers,
    out: &mut [f32],
) -> Result<(), InferenceError> {
    if m == 1 {
        let q = &mut quantized[..matrix.blocks_per_row()];
        BlockQ8_0::from_float(&x[..matrix.cols], q);
        matrix.matvec(q, out);
        Ok(())
    } else {
        matrix.matmul(x, m, out, dense)
    }
}

/// RMS norm of each row of `x` (rows of `weight.len()`), scaled by `weight`, into `out`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    for (row, out) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let rms = (row.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
        for ((y, &v), &w) in out.iter_mut().zip(row).zip(weight) {
            *y = v / rms * w;
        }
    }
}

/// `a · b` over eight running sums, a shape the compiler turns into vector instructions (one sum
/// would have to be added in order).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn add_into(acc: &mut [f32], x: &[f32]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += v;
    }
}

/// Causal attention of `m` new tokens (their rotated queries in `qkv`, rows of q | k | v) over the
/// cache's first `start + m` positions, into `context` (`m × heads × head_dim`). Heads of a token
/// share a key/value head in groups (grouped-query attention). The (token, head) pairs are spread
/// over the rayon pool.
fn attention(
    s: &Shape,
    qkv: &[f32],
    keys: &[f32],
    values: &[f32],
    start: usize,
    m: usize,
    context: &mut [f32],
) {
    let hd = s.head_dim;
    let qkv_width = s.q_width() + 2 * s.kv_width();
    let group = s.heads / s.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    context[..m * s.q_width()]
        .par_chunks_mut(hd)
        .enumerate()
        .for_each(|(i, out)| {
            let (t, head) = (i / s.heads, i % s.heads);
            let seen = start + t + 1;
            let q = &qkv[t * qkv_width + head * hd..t * qkv_width + (head + 1) * hd];
            let kv_offset = (head / group) * hd;
            let mut scores = vec![0f32; seen];
            let mut max = f32::NEG_INFINITY;
            for (p, score) in scores.iter_mut().enumerate() {
                let at = p * s.kv_width() + kv_offset;
                let k = &keys[at..at + hd];
                *score = dot(q, k) * scale;
                max = max.max(*score);
            }
            let mut sum = 0.0;
            for score in scores.iter_mut() {
                *score = (*score - max).exp();
                sum += *score;
            }
            out.fill(0.0);
            for (p, &w) in scores.iter().enumerate() {
                let at = p * s.kv_width() + kv_offset;
                let weight = w / sum;
                for (o, &v) in out.iter_mut().zip(&values[at..at + hd]) {
                    *o += weight * v;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Q8Matrix {
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0)
            .collect();
        let mut blocks = vec![BlockQ8_0::zeros(); rows * cols / QK8_0];
        BlockQ8_0::from_float(&values, &mut blocks);
        Q8Matrix { rows, cols, blocks }
    }

    /// The three products agree: one vector (8-bit), a few rows (candle's 8-bit tiles) and many rows
    /// (gemm on dequantised weights, here in several blocks of rows).
    #[test]
    fn matrix_products_agree_across_kernels_and_blocks() {
        let (rows, cols) = (DENSE_BLOCK_VALUES / 64 + 100, 64);
        let w = matrix(rows, cols);
        let inputs: Vec<f32> = (0..DENSE_FROM_ROWS * cols)
            .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.4)
            .collect();
        let mut dense_out = vec![0f32; DENSE_FROM_ROWS * rows];
        let mut buffers = DenseBuffers::default();
        w.matmul(&inputs, DENSE_FROM_ROWS, &mut dense_out, &mut buffers)
            .expect("dense");
        assert!(
            buffers.weights.len() < rows * cols,
            "went by blocks of rows"
        );
        let mut few_out = vec![0f32; 2 * rows];
        w.matmul(&inputs[..2 * cols], 2, &mut few_out, &mut buffers)
            .expect("few rows");
        let mut one = vec![0f32; rows];
        let mut q = vec![BlockQ8_0::zeros(); cols / QK8_0];
        for t in 0..2 {
            BlockQ8_0::from_float(&inputs[t * cols..(t + 1) * cols], &mut q);
            w.matvec(&q, &mut one);
            assert_eq!(one, few_out[t * rows..(t + 1) * rows], "input {t}");
            for (r, (&a, &b)) in one.iter().zip(&dense_out[t * rows..]).enumerate() {
                assert!((a - b).abs() < 0.05, "input {t} row {r}: {a} vs {b}");
            }
        }
        // The last row of the last block, for every input row.
        let mut last = vec![0f32; rows];
        for t in 0..DENSE_FROM_ROWS {
            BlockQ8_0::from_float(&inputs[t * cols..(t + 1) * cols], &mut q);
            w.matvec(&q, &mut last);
            let (a, b) = (last[rows - 1], dense_out[t * rows + rows - 1]);
            assert!((a - b).abs() < 0.05, "input {t}: {a} vs {b}");
        }
    }

    #[test]
    fn rotation_keeps_lengths_and_position_zero_is_identity() {
        let llama = Q8Llama {
            shape: Shape {
                embedding: 8,
                heads: 2,
                kv_heads: 1,
                head_dim: 4,
                ffn: 32,
                vocab: 1,
                rms_eps: 1e-5,
            },
            token_embeddings: matrix(1, 32),
            layers: Vec::new(),
            output_norm: vec![1.0; 8],
            output: None,
            rope_cos: vec![1.0, 1.0, 0.0, 1.0],
            rope_sin: vec![0.0, 0.0, 1.0, 0.0],
            positions: 2,
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut at0 = x;
        llama.rotate(&mut at0, 0);
        assert_eq!(at0, x);
        // Position 1 turns the first pair of each head by 90° and leaves the second.
        let mut at1 = x;
        llama.rotate(&mut at1, 1);
        assert_eq!(at1, [-2.0, 1.0, 3.0, 4.0, -6.0, 5.0, 7.0, 8.0]);
    }
}
