//! The forward pass of a BERT-family encoder on the CPU, for sentence embeddings.
//!
//! The weights are plain row-major `f32` buffers (loaded from safetensors through candle), the dense
//! layers run on `gemm` (the matrix-product engine candle itself uses) and everything between them
//! is fused row kernels on one rayon thread pool:
//!
//! - **No padding.** The tokens of every input of a batch are stacked into one `[tokens, hidden]`
//!   matrix; only attention needs to know where an input starts and ends, and it attends within each
//!   input. Dense layers never compute a padded row.
//! - **Biases and residuals fused into the products.** The output is prefilled with `bias` (or
//!   `residual + bias`) and the product is accumulated onto it, so no separate pass adds them.
//! - **One pool.** candle's elementwise tensor ops run on a second, spinning thread pool of their own;
//!   next to gemm's rayon threads on a 2-core machine the two pools fought over the cores. Here gemm,
//!   the row kernels and attention all run on rayon.
//!
//! The products go through [`super::matmul`], gemm behind bounds-checked views.
//!
//! Query weights are pre-scaled by `1/sqrt(head size)` and query, key and value are one product.

use rayon::prelude::*;

use super::matmul::{matmul, Matrix};
use super::InferenceError;

/// The activation of the intermediate (feed-forward) layer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Activation {
    /// The exact GELU (with erf), BERT's `gelu`.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Activation {
    pub(super) fn parse(name: &str) -> Result<Activation, InferenceError> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(InferenceError::Load(format!(
                "config.json: hidden_act {other:?} is not supported"
            ))),
        }
    }

    fn apply(self, xs: &mut [f32]) {
        match self {
            Activation::Gelu => xs.iter_mut().for_each(|x| *x = gelu_erf(*x)),
            Activation::GeluTanh => xs.iter_mut().for_each(|x| {
                let inner = 0.797_884_6 * (*x + 0.044_715 * *x * *x * *x);
                *x = 0.5 * *x * (1.0 + inner.tanh());
            }),
            Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
        }
    }
}

/// `x * Φ(x) = x/2 * (1 + erf(x/√2))`, with erf from Abramowitz and Stegun 7.1.28 (absolute error
/// below 3e-7, under f32's resolution of the result): `1 - (1 + a1 t + ... + a6 t^6)^-16`.
/// Branch-free, so the compiler vectorises it (libm's scalar `erff` per element is several times
/// slower).
#[inline(always)]
pub(super) fn gelu_erf(x: f32) -> f32 {
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

/// `x · W + b`, with `W` stored `[in, out]` row-major.
pub(super) struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    /// From a PyTorch `[out, in]` weight and an `[out]` bias, both row-major.
    pub(super) fn from_torch(
        weight: &[f32],
        bias: Vec<f32>,
        inputs: usize,
        outputs: usize,
    ) -> Result<Dense, InferenceError> {
        if weight.len() != inputs * outputs || bias.len() != outputs {
            return Err(InferenceError::Load(format!(
                "a dense layer of {inputs} -> {outputs} got {} weights and {} biases",
                weight.len(),
                bias.len()
            )));
        }
        let mut transposed = vec![0f32; weight.len()];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            for (i, w) in row.iter().enumerate() {
                transposed[i * outputs + o] = *w;
            }
        }
        Ok(Dense {
            weight: transposed,
            bias,
            inputs,
            outputs,
        })
    }

    /// `out = residual + xs · W + b` (or without the residual), for `rows` rows.
    fn forward_into(&self, xs: &[f32], residual: Option<&[f32]>, out: &mut [f32], rows: usize) {
        let (n, bias) = (self.outputs, &self.bias);
        match residual {
            Some(residual) => for_rows(out, n, |first, chunk| {
                let residual = &residual[first * n..][..chunk.len()];
                for (row, res) in chunk.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
                    for ((o, r), b) in row.iter_mut().zip(res).zip(bias) {
                        *o = r + b;
                    }
                }
            }),
            None => for_rows(out, n, |_, chunk| {
                for row in chunk.chunks_exact_mut(n) {
                    row.copy_from_slice(bias);
                }
            }),
        }
        matmul_accumulate(out, xs, &self.weight, rows, self.inputs, n);
    }
}

/// Layer normalisation with a learned scale and shift.
pub(super) struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    pub(super) fn new(weight: Vec<f32>, bias: Vec<f32>, eps: f64) -> Norm {
        Norm {
            weight,
            bias,
            eps: eps as f32,
        }
    }

    fn apply_rows(&self, xs: &mut [f32]) {
        let width = self.weight.len();
        for_rows(xs, width, |_, chunk| {
            for row in chunk.chunks_exact_mut(width) {
                let n = width as f32;
                let mean = sum(row) / n;
                let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
                let scale = 1.0 / (variance + self.eps).sqrt();
                for ((x, w), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                    *x = (*x - mean) * scale * w + b;
                }
            }
        });
    }
}

/// One transformer layer.
pub(super) struct Layer {
    /// Query (pre-scaled by 1/sqrt(head size)), key and value in one product: `[hidden, 3 hidden]`.
    pub(super) qkv: Dense,
    pub(super) attention_out: Dense,
    pub(super) attention_norm: Norm,
    pub(super) intermediate: Dense,
    pub(super) output: Dense,
    pub(super) output_norm: Norm,
}

/// The encoder: embeddings, layers and the activation they share.
pub(super) struct Encoder {
    /// `[vocab, hidden]`.
    pub(super) word: Vec<f32>,
    /// `[max positions, hidden]`.
    pub(super) position: Vec<f32>,
    /// `[token types, hidden]`.
    pub(super) token_type: Vec<f32>,
    pub(super) embedding_norm: Norm,
    pub(super) layers: Vec<Layer>,
    pub(super) hidden: usize,
    pub(super) heads: usize,
    pub(super) intermediate: usize,
    pub(super) activation: Activation,
}

/// One input of a batch: its token ids and token type ids.
pub(super) struct Sequence<'a> {
    pub(super) ids: &'a [u32],
    pub(super) types: &'a [u32],
}

/// Reusable buffers of one forward pass.
struct Buffers {
    /// The hidden states, `[tokens, hidden]`.
    states: Vec<f32>,
    /// The next hidden states.
    next: Vec<f32>,
    /// Query, key and value, `[tokens, 3 hidden]`.
    qkv: Vec<f32>,
    /// Attention output, `[tokens, hidden]`.
    context: Vec<f32>,
    /// `[tokens, intermediate]`.
    inner: Vec<f32>,
}

impl Encoder {
    /// Mean-pooled, L2-normalised vectors of the sequences, in order.
    pub(super) fn embed(&self, batch: &[Sequence<'_>]) -> Result<Vec<Vec<f32>>, InferenceError> {
        let h = self.hidden;
        let mut spans = Vec::with_capacity(batch.len());
        let mut tokens = 0;
        for seq in batch {
            spans.push((tokens, seq.ids.len()));
            tokens += seq.ids.len();
        }
        if tokens == 0 {
            return Ok(vec![vec![0.0; h]; batch.len()]);
        }
        let mut buffers = Buffers {
            states: self.embeddings(batch, tokens)?,
            next: vec![0f32; tokens * h],
            qkv: vec![0f32; tokens * 3 * h],
            context: vec![0f32; tokens * h],
            inner: vec![0f32; tokens * self.intermediate],
        };
        for layer in &self.layers {
            self.layer(layer, &mut buffers, &spans, tokens);
        }
        let states = &buffers.states;
        Ok(spans
            .iter()
            .map(|&(start, n)| {
                let mut v = vec![0f32; h];
                for row in states[start * h..(start + n) * h].chunks_exact(h) {
                    v.iter_mut().zip(row).for_each(|(acc, x)| *acc += x);
                }
                let n = n.max(1) as f32;
                v.iter_mut().for_each(|x| *x /= n);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect())
    }

    /// Word + position + token type embeddings, normalised: `[tokens, hidden]`.
    fn embeddings(
        &self,
        batch: &[Sequence<'_>],
        tokens: usize,
    ) -> Result<Vec<f32>, InferenceError> {
        let h = self.hidden;
        let vocab = self.word.len() / h;
        let types = self.token_type.len() / h;
        let positions = self.position.len() / h;
        let mut states = Vec::with_capacity(tokens * h);
        for seq in batch {
            if seq.ids.len() > positions {
                return Err(InferenceError::Runtime(format!(
                    "an input of {} tokens is longer than the model's {positions} positions",
                    seq.ids.len()
                )));
            }
            for (t, (&id, &kind)) in seq.ids.iter().zip(seq.types).enumerate() {
                let (id, kind) = (id as usize, kind as usize);
                if id >= vocab || kind >= types {
                    return Err(InferenceError::Runtime(format!(
                        "token id {id} (type {kind}) is outside the model's vocabulary"
                    )));
                }
                let word = &self.word[id * h..][..h];
                let kind = &self.token_type[kind * h..][..h];
                let position = &self.position[t * h..][..h];
                states.extend(
                    word.iter()
                        .zip(kind)
                        .zip(position)
                        .map(|((w, k), p)| w + k + p),
                );
            }
        }
        if states.len() != tokens * h {
            return Err(InferenceError::Runtime(
                "token ids and token type ids differ in length".into(),
            ));
        }
        self.embedding_norm.apply_rows(&mut states);
        Ok(states)
    }

    fn layer(&self, l: &Layer, b: &mut Buffers, spans: &[(usize, usize)], tokens: usize) {
        l.qkv.forward_into(&b.states, None, &mut b.qkv, tokens);
        self.attention(&b.qkv, &mut b.context, spans);
        l.attention_out
            .forward_into(&b.context, Some(&b.states), &mut b.next, tokens);
        l.attention_norm.apply_rows(&mut b.next);
        std::mem::swap(&mut b.states, &mut b.next);

        l.intermediate
            .forward_into(&b.states, None, &mut b.inner, tokens);
        let activation = self.activation;
        for_rows(&mut b.inner, self.intermediate, |_, chunk| {
            activation.apply(chunk)
        });
        l.output
            .forward_into(&b.inner, Some(&b.states), &mut b.next, tokens);
        l.output_norm.apply_rows(&mut b.next);
        std::mem::swap(&mut b.states, &mut b.next);
    }

    /// Scaled dot-product attention of every head, within each input (`spans`: first row, length).
    /// Each (input, head) is two small products on gemm, read in place from the `qkv` rows through
    /// strides: `scores = Q · Kᵀ`, softmax by row, `out = scores · V`.
    fn attention(&self, qkv: &[f32], context: &mut [f32], spans: &[(usize, usize)]) {
        let h = self.hidden;
        let d = h / self.heads;
        let width = 3 * h;
        let jobs: Vec<(usize, usize)> = spans
            .iter()
            .enumerate()
            .filter(|(_, &(_, n))| n > 0)
            .flat_map(|(s, _)| (0..self.heads).map(move |head| (s, head)))
            .collect();
        let outputs: Vec<Vec<f32>> = jobs
            .par_iter()
            .map(|&(s, head)| {
                let (start, n) = spans[s];
                let part = |which: usize| start * width + which * h + head * d;
                let queries = Matrix::strided(qkv, part(0), n, d, width, 1);
                let keys_t = Matrix::strided(qkv, part(1), d, n, 1, width);
                let values = Matrix::strided(qkv, part(2), n, d, width, 1);
                let mut scores = vec![0f32; n * n];
                matmul(&mut scores, &queries, &keys_t, false, false);
                for row in scores.chunks_exact_mut(n) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut total = 0.0;
                    for x in row.iter_mut() {
                        *x = (*x - max).exp();
                        total += *x;
                    }
                    let inv = 1.0 / total;
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                let mut out = vec![0f32; n * d];
                matmul(
                    &mut out,
                    &Matrix::strided(&scores, 0, n, n, n, 1),
                    &values,
                    false,
                    false,
                );
                out
            })
            .collect();
        for (&(s, head), out) in jobs.iter().zip(outputs) {
            let start = spans[s].0;
            for (i, o) in out.chunks_exact(d).enumerate() {
                context[(start + i) * h + head * d..][..d].copy_from_slice(o);
            }
        }
    }
}

/// Rows handed to one rayon task at least (fewer tasks than this would cost more to schedule).
const MIN_ROWS_PER_TASK: usize = 16;

/// Runs `work(first row, rows)` over chunks of whole rows of `buf`, in parallel.
fn for_rows(buf: &mut [f32], width: usize, work: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = buf.len() / width.max(1);
    let per_task = rows
        .div_ceil(rayon::current_num_threads() * 4)
        .max(MIN_ROWS_PER_TASK);
    buf.par_chunks_mut(per_task * width.max(1))
        .enumerate()
        .for_each(|(i, chunk)| work(i * per_task, chunk));
}

fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        lanes.iter_mut().zip(c).for_each(|(l, x)| *l += x);
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `dst[m×n] += a[m×k] · b[k×n]`, all row-major and contiguous, on the rayon pool.
fn matmul_accumulate(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    matmul(
        dst,
        &Matrix::contiguous(a, m, k),
        &Matrix::contiguous(b, k, n),
        true,
        true,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_accumulates_onto_what_is_there() {
        // [2x3] · [3x2] onto a prefilled [2x2].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        let mut dst = [1.0, 1.0, 1.0, 1.0];
        matmul_accumulate(&mut dst, &a, &b, 2, 3, 2);
        assert_eq!(dst, [59.0, 65.0, 140.0, 155.0]);
    }

    #[test]
    fn dense_transposes_the_torch_layout_and_adds_bias_and_residual() {
        // PyTorch [out=2, in=3].
        let dense = Dense::from_torch(&[1.0, 0.0, 2.0, 0.0, 1.0, 0.0], vec![0.5, -0.5], 3, 2)
            .expect("dense");
        let xs = [1.0, 2.0, 3.0];
        let mut out = [0.0; 2];
        dense.forward_into(&xs, Some(&[10.0, 20.0]), &mut out, 1);
        assert_eq!(out, [10.0 + 7.0 + 0.5, 20.0 + 2.0 - 0.5]);
        dense.forward_into(&xs, None, &mut out, 1);
        assert_eq!(out, [7.5, 1.5]);
        assert!(Dense::from_torch(&[1.0; 5], vec![0.0; 2], 3, 2).is_err());
    }

    #[test]
    fn layer_norm_centres_and_scales_each_row() {
        let norm = Norm::new(vec![1.0; 4], vec![0.0; 4], 1e-12);
        let mut rows = [1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0];
        norm.apply_rows(&mut rows);
        let first = &rows[..4];
        assert!(sum(first).abs() < 1e-5);
        let var = first.iter().map(|x| x * x).sum::<f32>() / 4.0;
        assert!((var - 1.0).abs() < 1e-4, "{var}");
        assert_eq!(&rows[4..], &[0.0; 4]);
    }

    #[test]
    fn sum_handles_lengths_that_are_not_multiples_of_eight() {
        let a: Vec<f32> = (1..=13).map(|x| x as f32).collect();
        assert_eq!(sum(&a), 91.0);
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
}
