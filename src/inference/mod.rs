//! Local inference on the CPU with candle: the types every model kind shares.
//!
//! - `embedding`: sentence embeddings with a BERT-family model (all-MiniLM-L6-v2 by default): mean
//!   pooling, L2 normalisation, truncation at the model's limit reported per input.
//! - `chat`: text generation with a quantized llama-family GGUF model (SmolLM2-135M-Instruct by
//!   default): tokenizer from the GGUF metadata, the GGUF's chat template, sampling, stop sequences,
//!   token-by-token output.
//!
//! - `service`: the loaded models and the dedicated threads and bounded queues that run them.
//! - `load`: import-time conversion of slow GGUF formats to Q8_0, and loading installed models.
//!
//! Models are loaded from files in the data directory; nothing is fetched at run time. The model
//! calls are synchronous and CPU-bound: only the service's threads run them, never the HTTP workers.

use serde::{Deserialize, Serialize};

pub mod chat;
pub mod embedding;
mod encoder;
mod load;
mod matmul;
pub mod providers;
pub mod service;

pub use load::{load, prepare_import};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    /// The model's files are missing, unreadable, corrupt, truncated or of an unsupported kind.
    #[error("cannot load the model: {0}")]
    Load(String),
    /// The prompt does not fit the model's context window.
    #[error("the prompt has {tokens} tokens but the model's context window is {limit} tokens (including the {reserved} tokens asked for the answer)")]
    ContextLengthExceeded {
        tokens: usize,
        limit: usize,
        reserved: usize,
    },
    /// The request cannot be run as given (an unknown role, an empty input, a parameter out of range).
    #[error("{0}")]
    InvalidRequest(String),
    /// The computation itself failed.
    #[error("inference failed: {0}")]
    Runtime(String),
}

impl From<candle_core::Error> for InferenceError {
    fn from(e: candle_core::Error) -> Self {
        InferenceError::Runtime(e.to_string())
    }
}

/// One message of a conversation, as OpenAI's chat API sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (always the most likely token).
    pub temperature: f64,
    /// Nucleus sampling: the smallest set of tokens whose probabilities add up to `top_p`.
    pub top_p: Option<f64>,
    /// Only the `top_k` most likely tokens.
    pub top_k: Option<usize>,
    /// Penalty (> 1 discourages) on tokens among the last `repeat_last_n` generated or prompted.
    pub repetition_penalty: f32,
    pub repeat_last_n: usize,
    /// The same seed, prompt and parameters give the same output.
    pub seed: u64,
    /// At most this many tokens are generated.
    pub max_tokens: usize,
    /// Generation stops before any of these strings; they are not part of the output.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 0.7,
            top_p: Some(0.95),
            top_k: None,
            repetition_penalty: 1.1,
            repeat_last_n: 64,
            seed: 299_792_458,
            max_tokens: 256,
            stop: Vec::new(),
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model's end-of-turn token, or a stop sequence.
    Stop,
    /// `max_tokens` (or the context window) was reached.
    Length,
    /// The caller asked to stop (a disconnected client, a timeout).
    Cancelled,
}

/// The outcome of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated text (without a stop sequence).
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
    /// Where the time went.
    pub timings: GenerationTimings,
}

/// How long the two phases of a generation took (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerationTimings {
    /// Processing the prompt, up to the logits of the first generated token.
    pub prompt: std::time::Duration,
    /// Generating the answer: sampling every token and running the model on all but the last.
    pub generation: std::time::Duration,
}

impl crate::error::ErrorCode for InferenceError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            InferenceError::Load(_) => Code::ModelNotReady,
            InferenceError::ContextLengthExceeded { .. } => Code::ContextLengthExceeded,
            InferenceError::InvalidRequest(_) => Code::InvalidRequest,
            InferenceError::Runtime(_) => Code::InferenceFailed,
        }
    }

    fn public_message(&self) -> String {
        match self {
            InferenceError::Runtime(_) => {
                "the model failed while computing; the request id finds the details in the server log"
                    .into()
            }
            other => other.to_string(),
        }
    }
}
