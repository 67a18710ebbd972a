//! Text generation with a quantized llama-family GGUF model.
//!
//! [`ChatModel::load`] needs the GGUF file alone: weights, tokenizer (`tokenizer` module), chat
//! template (`template`) and context length all come from it (a `tokenizer.json` beside the file is
//! used instead of the GGUF vocabulary when present). Two forward passes: `llama`, Enclave's own,
//! for models whose matrices are all Q8_0 (what the model store requantises slow formats to), and
//! candle's `quantized_llama` for every other llama-family file. One loaded model is shared by many
//! threads; every [`ChatModel::generate`] call has its own KV cache over the shared weights.
//! Sampling is in `sampling`, streaming and stop sequences in `stream`, requantisation of slow
//! formats at import in `quantize`.
//!
//! Context window: both passes precompute rotary positions for
//! [`quantized_llama::MAX_SEQ_LEN`] (4096) positions, so the usable context is
//! `min(llama.context_length, 4096)`; [`ChatModel::context_length`] reports that clamped value.

mod llama;
mod quantize;
mod sampling;
mod stream;
mod template;
mod tokenizer;

use std::fs::File;
use std::io::BufReader;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::{self, ModelWeights};

pub use quantize::{is_slow_format, requantize, RequantizeReport};

use super::{FinishReason, Generation, InferenceError, SamplingParams};
use crate::inference::ChatMessage;
use sampling::Sampler;
use stream::{Pushed, TextStream};
use template::ChatTemplate;
use tokenizer::ChatTokenizer;

/// The prompt goes through the model in chunks of this many tokens: one pass for short prompts,
/// bounded attention buffers (heads × chunk × context floats) for long ones.
const PROMPT_CHUNK: usize = 512;

/// A loaded chat model. `Send + Sync`: share it through an `Arc` between inference threads; several
/// generations may run at once.
pub struct ChatModel {
    name: String,
    engine: Engine,
    tokenizer: ChatTokenizer,
    template: ChatTemplate,
    context_length: usize,
    trained_context_length: usize,
}

/// The forward pass a model runs on.
enum Engine {
    /// Enclave's own, for all-Q8_0 models (`llama`).
    Q8(llama::Q8Llama),
    /// candle's `quantized_llama` for the others. A generation clones it: the clone shares the
    /// quantized weights (reference-counted tensors) and holds its own KV cache.
    Candle(ModelWeights),
}

/// The per-generation state of an [`Engine`].
enum Run<'m> {
    Q8(llama::Session<'m>),
    Candle(ModelWeights),
}

impl Run<'_> {
    /// Runs `tokens` (at positions `index_pos..`) and leaves the last one's logits in `logits`.
    fn forward(
        &mut self,
        tokens: &[u32],
        index_pos: usize,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        match self {
            // On a rayon worker, so the pass's parallel loops start from inside the pool: one hand-off
            // per call instead of one per matrix product from a thread outside it.
            Run::Q8(session) => rayon::scope(|_| session.forward(tokens, logits)),
            Run::Candle(weights) => {
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                *logits = weights
                    .forward(&input, index_pos)?
                    .squeeze(0)?
                    .to_dtype(DType::F32)?
                    .to_vec1()?;
                Ok(())
            }
        }
    }
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<ChatModel>();
};

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("name", &self.name)
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl ChatModel {
    /// Loads a llama-family GGUF file. A missing, corrupt or truncated file, another architecture or
    /// an unsupported tokenizer is an [`InferenceError::Load`] naming the problem.
    ///
    /// The model's name is its directory's name when a `model.toml` manifest sits beside the file
    /// (the model store's layout), the file name without `.gguf` otherwise.
    pub fn load(path: &Path) -> Result<ChatModel, InferenceError> {
        let load = |what: String| InferenceError::Load(format!("{}: {what}", path.display()));
        let file = File::open(path).map_err(|e| load(e.to_string()))?;
        let file_len = file.metadata().map_err(|e| load(e.to_string()))?.len();
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| load(format!("not a valid GGUF file: {e}")))?;
        check_tensor_data(&content, file_len).map_err(load)?;

        let md = &content.metadata;
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if arch != "llama" {
            return Err(load(format!(
                "architecture {arch:?} is not supported (only llama-family models, general.architecture = \"llama\")"
            )));
        }
        let trained_context_length = md
            .get("llama.context_length")
            .and_then(|v| v.to_u32().ok())
            .ok_or_else(|| load("the GGUF metadata has no llama.context_length".into()))?
            as usize;
        let context_length = trained_context_length.min(quantized_llama::MAX_SEQ_LEN);

        let tokenizer = ChatTokenizer::load(path, &content).map_err(|e| match e {
            InferenceError::Load(m) => load(m),
            other => other,
        })?;
        let token_text = |id: Option<u32>| {
            id.and_then(|i| tokenizer.token_text(i))
                .unwrap_or_default()
                .to_string()
        };
        let template_source = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .cloned();
        let template = ChatTemplate::new(
            template_source.as_deref(),
            &token_text(tokenizer.bos_token()),
            &token_text(tokenizer.eos_token()),
        )
        .map_err(|e| match e {
            InferenceError::Load(m) => load(m),
            other => other,
        })?;

        // candle reports malformed weights as errors; the unwind guards are a last line of defence
        // so a file candle did not expect cannot take the process down.
        let q8 = without_panics(|| llama::Q8Llama::load(&content, &mut reader, context_length))
            .map_err(load)?
            .map_err(|e| match e {
                InferenceError::Load(m) => load(m),
                other => load(format!("cannot read the weights: {other}")),
            })?;
        let engine = match q8 {
            Some(model) => {
                if model.vocab_size() < tokenizer.vocab_size() {
                    return Err(load(format!(
                        "the embedding matrix has {} rows but the vocabulary {} tokens",
                        model.vocab_size(),
                        tokenizer.vocab_size()
                    )));
                }
                Engine::Q8(model)
            }
            None => Engine::Candle(
                without_panics(|| ModelWeights::from_gguf(content, &mut reader, &Device::Cpu))
                    .map_err(load)?
                    .map_err(|e| load(format!("cannot read the weights: {e}")))?,
            ),
        };

        let name = model_name(path);
        tracing::debug!(
            model = %name,
            forward_pass = match engine {
                Engine::Q8(_) => "enclave-q8_0",
                Engine::Candle(_) => "candle-quantized-llama",
            },
            context_length,
            trained_context_length,
            vocab = tokenizer.vocab_size(),
            "chat model loaded"
        );
        Ok(ChatModel {
            name,
            engine,
            tokenizer,
            template,
            context_length,
            trained_context_length,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The usable context window in tokens (prompt and answer): the model's trained
    /// `llama.context_length`, clamped to the 4096 positions candle's implementation supports.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Lowers the context window to `tokens` (a memory or latency budget); it is never raised above
    /// what the model and candle support.
    pub fn with_context_limit(mut self, tokens: usize) -> Self {
        self.context_length = self.context_length.min(tokens.max(1));
        self
    }

    /// `llama.context_length` as the file states it (may exceed [`Self::context_length`]).
    pub fn trained_context_length(&self) -> usize {
        self.trained_context_length
    }

    /// The prompt text for a conversation, by the model's chat template, ending with the header of
    /// the assistant's turn. Roles must be `system`, `user` or `assistant`, and there must be at
    /// least one message ([`InferenceError::InvalidRequest`] otherwise, as when the template itself
    /// refuses the conversation).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        self.template.render(messages)
    }

    /// Token ids of a prompt. Special tokens written as text (`<|im_start|>` in a rendered template)
    /// become their special ids; BOS is added in front when the model asks for it
    /// (`tokenizer.ggml.add_bos_token`) and the text does not begin with it. Like llama.cpp, special
    /// tokens typed inside message contents are matched as well.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        self.tokenizer.encode(text)
    }

    /// The text of token ids, control tokens (`<|im_end|>`) left out, invalid UTF-8 replaced.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids)
    }

    /// The tokens that end an answer: EOS and the chat format's end-of-turn token(s).
    pub fn end_of_turn_tokens(&self) -> &[u32] {
        self.tokenizer.end_of_turn_tokens()
    }

    /// Generates an answer to `prompt` (token ids, usually `encode(render(messages))`).
    ///
    /// - Context window: an [`InferenceError::ContextLengthExceeded`] (with `reserved` = 1) only when
    ///   the prompt leaves no room for a single token. Otherwise `max_tokens` is clamped to the room
    ///   left, and reaching that limit ends with [`FinishReason::Length`], like `max_tokens` itself.
    /// - Ends with [`FinishReason::Stop`] at an end-of-turn token or a stop sequence; neither is
    ///   part of the text.
    /// - `on_text` receives the text as it is generated, in pieces that are valid UTF-8 (bytes of
    ///   a character split across tokens are buffered) and never contain a stop sequence (text that
    ///   may begin one is held back until it is known not to). Returning `Break` stops the
    ///   generation: [`FinishReason::Cancelled`], the text so far.
    /// - `completion_tokens` counts every token sampled, the final end-of-turn token included.
    pub fn generate(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation, InferenceError> {
        if prompt.is_empty() {
            return Err(InferenceError::InvalidRequest("the prompt is empty".into()));
        }
        if params.max_tokens == 0 {
            return Err(InferenceError::InvalidRequest(
                "max_tokens must be at least 1".into(),
            ));
        }
        let vocab = self.tokenizer.vocab_size();
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(InferenceError::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary ({vocab} tokens)"
            )));
        }
        let limit = self.context_length;
        if prompt.len() >= limit {
            return Err(InferenceError::ContextLengthExceeded {
                tokens: prompt.len(),
                limit,
                reserved: 1,
            });
        }
        let budget = params.max_tokens.min(limit - prompt.len());
        let mut sampler = Sampler::new(params)?;
        let mut stream = TextStream::new(&params.stop);
        // Its own KV cache over the shared weights.
        let mut model = match &self.engine {
            Engine::Q8(q8) => Run::Q8(q8.session(prompt.len() + budget)),
            Engine::Candle(weights) => Run::Candle(weights.clone()),
        };

        let started = Instant::now();
        let mut logits = Vec::new();
        for (i, chunk) in prompt.chunks(PROMPT_CHUNK).enumerate() {
            model.forward(chunk, i * PROMPT_CHUNK, &mut logits)?;
        }
        let prompt_time = started.elapsed();

        let generation_started = Instant::now();
        let mut history = prompt.to_vec();
        let mut completion_tokens = 0;
        let finish_reason = loop {
            let next = sampler.sample(&mut logits, &history);
            completion_tokens += 1;
            history.push(next);
            if self.tokenizer.is_end_of_turn(next) {
                break FinishReason::Stop;
            }
            match stream.push(self.tokenizer.token_bytes(next)) {
                Pushed::Stop(text) => {
                    if !text.is_empty() {
                        let _ = on_text(&text);
                    }
                    break FinishReason::Stop;
                }
                Pushed::Text(text) => {
                    if !text.is_empty() && on_text(&text).is_break() {
                        break FinishReason::Cancelled;
                    }
                }
            }
            if completion_tokens >= budget {
                break FinishReason::Length;
            }
            model.forward(&[next], history.len() - 1, &mut logits)?;
        };
        if finish_reason != FinishReason::Cancelled {
            // Text held back as a possible stop sequence that never completed.
            let rest = stream.finish();
            if !rest.is_empty() {
                let _ = on_text(&rest);
            }
        }
        let generation_time = generation_started.elapsed();
        Ok(Generation {
            text: stream.emitted().to_string(),
            prompt_tokens: prompt.len(),
            completion_tokens,
            finish_reason,
            timings: super::GenerationTimings {
                prompt: prompt_time,
                generation: generation_time,
            },
        })
    }
}

/// Runs a weight reader; a panic inside candle becomes an error message instead of taking the
/// process down.
fn without_panics<T>(read: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .map_err(|_| "the weights could not be read (candle panicked)".to_string())
}

/// Checks that every tensor's data lies inside the file (a truncated download is reported as such
/// before any weight is read).
fn check_tensor_data(content: &gguf_file::Content, file_len: u64) -> Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if block == 0 || elems % block != 0 {
            return Err(format!(
                "tensor {name} has {elems} elements, not a multiple of its block size {block}"
            ));
        }
        let size = (elems / block) as u64 * info.ggml_dtype.type_size() as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(size);
        if end > file_len {
            return Err(format!(
                "the file is truncated: tensor {name} ends at byte {end} but the file has {file_len} bytes"
            ));
        }
    }
    Ok(())
}

fn model_name(path: &Path) -> String {
    let dir_name = path
        .parent()
        .filter(|d| d.join("model.toml").is_file())
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    dir_name.unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy())
            .map(|n| n.strip_suffix(".gguf").unwrap_or(&n).to_string())
            .unwrap_or_else(|| "model".into())
    })
}

#[cfg(test)]
mod tests;
