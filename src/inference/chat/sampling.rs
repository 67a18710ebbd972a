//! Choosing the next token from the logits: repetition penalty over the recent tokens, then greedy
//! (temperature 0) or temperature → top-k → softmax → top-p → a draw from a seeded generator, so the
//! same seed, prompt and parameters always give the same tokens.

use crate::inference::{InferenceError, SamplingParams};

/// A small deterministic generator (SplitMix64): no dependency, identical output on every platform.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The sampling state of one generation.
pub(crate) struct Sampler {
    rng: SplitMix64,
    temperature: f64,
    top_p: Option<f64>,
    top_k: Option<usize>,
    repetition_penalty: f32,
    repeat_last_n: usize,
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    /// Checks the parameters (a NaN or negative temperature, a top_p outside (0, 1], a
    /// non-positive penalty are invalid requests). `top_k` = 0 means no top-k.
    pub(crate) fn new(params: &SamplingParams) -> Result<Self, InferenceError> {
        let bad = |m: &str| Err(InferenceError::InvalidRequest(m.to_string()));
        if !params.temperature.is_finite() || params.temperature < 0.0 {
            return bad("temperature must be a number >= 0");
        }
        if let Some(p) = params.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return bad("top_p must be in (0, 1]");
            }
        }
        if !params.repetition_penalty.is_finite() || params.repetition_penalty <= 0.0 {
            return bad("repetition_penalty must be > 0");
        }
        Ok(Sampler {
            rng: SplitMix64(params.seed),
            temperature: params.temperature,
            top_p: params.top_p.filter(|&p| p < 1.0),
            top_k: params.top_k.filter(|&k| k > 0),
            repetition_penalty: params.repetition_penalty,
            repeat_last_n: params.repeat_last_n,
            candidates: Vec::new(),
        })
    }

    /// The next token given the logits and all tokens so far (prompt and generated).
    pub(crate) fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        self.penalise(logits, history);
        if self.temperature <= 0.0 || self.top_k == Some(1) {
            return argmax(logits);
        }
        let inv_t = (1.0 / self.temperature) as f32;
        let cands = &mut self.candidates;
        cands.clear();
        cands.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(i, &l)| (i as u32, l * inv_t)),
        );
        if cands.is_empty() {
            return argmax(logits);
        }
        let desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        if let Some(k) = self.top_k {
            if k < cands.len() {
                cands.select_nth_unstable_by(k - 1, desc);
                cands.truncate(k);
            }
        }
        // Softmax (unnormalised: weights relative to the largest).
        let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0f64;
        for c in cands.iter_mut() {
            c.1 = (c.1 - max).exp();
            total += f64::from(c.1);
        }
        if let Some(top_p) = self.top_p {
            // Sort only as many of the most likely tokens as needed to reach top_p of the mass.
            let target = top_p * total;
            let mut n = 64.min(cands.len());
            loop {
                if n < cands.len() {
                    cands.select_nth_unstable_by(n - 1, desc);
                }
                cands[..n].sort_unstable_by(desc);
                let mut acc = 0f64;
                let mut keep = None;
                for (i, c) in cands[..n].iter().enumerate() {
                    acc += f64::from(c.1);
                    if acc >= target {
                        keep = Some((i + 1, acc));
                        break;
                    }
                }
                match keep {
                    Some((k, mass)) => {
                        cands.truncate(k);
                        total = mass;
                        break;
                    }
                    None if n == cands.len() => break,
                    None => n = (n * 4).min(cands.len()),
                }
            }
        }
        let mut r = self.rng.next_f64() * total;
        for c in cands.iter() {
            r -= f64::from(c.1);
            if r < 0.0 {
                return c.0;
            }
        }
        cands.last().map(|c| c.0).unwrap_or_else(|| argmax(logits))
    }

    /// llama.cpp's penalty: a positive logit is divided by the penalty, a negative one multiplied,
    /// once per distinct token among the last `repeat_last_n`.
    fn penalise(&self, logits: &mut [f32], history: &[u32]) {
        if self.repetition_penalty == 1.0 || self.repeat_last_n == 0 {
            return;
        }
        let start = history.len().saturating_sub(self.repeat_last_n);
        let mut seen: Vec<u32> = history[start..].to_vec();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if *l >= 0.0 {
                    *l / self.repetition_penalty
                } else {
                    *l * self.repetition_penalty
                };
            }
        }
    }
}

/// Index of the largest logit (the first one on ties).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > best_v {
            best = i;
            best_v = l;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f64, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p: None,
            top_k: None,
            repetition_penalty: 1.0,
            repeat_last_n: 0,
            seed,
            max_tokens: 1,
            stop: Vec::new(),
        }
    }

    #[test]
    fn greedy_top_k_top_p_and_penalty() {
        let logits = [0.0f32, 3.0, 1.0, 2.9];
        let mut s = Sampler::new(&params(0.0, 1)).expect("valid");
        assert_eq!(s.sample(&mut logits.clone(), &[]), 1);
        // The penalty on token 1 (3.0 / 1.5 = 2.0) makes token 3 the greedy choice.
        let mut p = params(0.0, 1);
        p.repetition_penalty = 1.5;
        p.repeat_last_n = 8;
        let mut s = Sampler::new(&p).expect("valid");
        assert_eq!(s.sample(&mut logits.clone(), &[1, 1]), 3);
        // top_k = 2: only tokens 1 and 3 are ever drawn.
        let mut p = params(1.0, 7);
        p.top_k = Some(2);
        let mut s = Sampler::new(&p).expect("valid");
        for _ in 0..200 {
            let t = s.sample(&mut logits.clone(), &[]);
            assert!(t == 1 || t == 3, "{t}");
        }
        // A tiny top_p keeps only the most likely token.
        let mut p = params(1.0, 7);
        p.top_p = Some(0.01);
        let mut s = Sampler::new(&p).expect("valid");
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), 1);
        }
    }

    #[test]
    fn same_seed_same_draws_and_bad_parameters() {
        let logits: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 10.0).collect();
        let draw = |seed| {
            let mut s = Sampler::new(&params(1.0, seed)).expect("valid");
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        assert!(Sampler::new(&params(-1.0, 1)).is_err());
        assert!(Sampler::new(&params(f64::NAN, 1)).is_err());
        let mut p = params(1.0, 1);
        p.top_p = Some(0.0);
        assert!(Sampler::new(&p).is_err());
    }
}
