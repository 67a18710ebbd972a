//! The inference service: which models are installed and loaded, and the dedicated threads that run
//! them. HTTP workers never run a model: they hand a job to a bounded queue and await its events.
//!
//! - Loading: at start every installed model (see [`crate::models::store`]) gets a slot; a background
//!   thread loads them one by one (`loading` → `ready` or `failed` with the reason). The server serves
//!   from the first second; a feature whose model is missing or not loaded yet answers
//!   `model_not_found` / `model_not_ready` saying what to do.
//! - Chat: each chat model has its own queue of `chat_queue` places and its own `chat_concurrency`
//!   worker threads, so a busy model does not hold up another. A full queue refuses at once
//!   (`503 inference_busy` with `Retry-After`). Each job carries a cancel flag
//!   (set when the client goes away: the [`ChatStream`] is dropped) and a deadline
//!   (`request_timeout_secs`, counting the wait); both stop the generation at the next token.
//! - Embeddings: one thread takes whatever requests are waiting (up to [`EMBED_BATCH`] inputs) and runs
//!   them as one batch per model, so concurrent small requests share a forward pass.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::chat::ChatModel;
use super::embedding::{Embedded, EmbeddingModel};
use super::{Generation, InferenceError, SamplingParams};
use crate::config::InferenceConfig;
use crate::models::manifest::ModelKind;
use crate::models::store::{self, Installed};

/// Most inputs the embedding thread puts in one batch.
pub const EMBED_BATCH: usize = 64;

/// A loaded model, as [`super::load`] returns it.
pub enum Loaded {
    Embedding(Arc<EmbeddingModel>),
    Chat(Arc<ChatModel>),
}

/// A chat model with its own queue and worker threads.
#[derive(Clone)]
pub struct ChatHandle {
    pub model: Arc<ChatModel>,
    queue: SyncSender<ChatJob>,
}

impl ChatHandle {
    /// Starts `config.chat_concurrency` worker threads behind a queue of `config.chat_queue` places.
    fn start(name: &str, model: Arc<ChatModel>, config: &InferenceConfig) -> ChatHandle {
        let (queue, jobs) = sync_channel::<ChatJob>(config.chat_queue);
        let jobs = Arc::new(std::sync::Mutex::new(jobs));
        for n in 0..config.chat_concurrency {
            let (jobs, model) = (jobs.clone(), model.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("chat-{name}-{n}"))
                .spawn(move || chat_worker(&model, &jobs));
            if let Err(e) = spawned {
                tracing::error!(model = %name, error = %e, "could not start a chat inference thread");
            }
        }
        ChatHandle { model, queue }
    }
}

#[derive(Clone)]
enum Ready {
    Embedding(Arc<EmbeddingModel>),
    Chat(ChatHandle),
}

#[derive(Clone)]
enum SlotState {
    Loading,
    Ready(Ready),
    Failed(String),
}

struct Slot {
    installed: Installed,
    state: SlotState,
}

/// A model as the API lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub name: String,
    pub kind: ModelKind,
    /// `loading`, `ready` or `failed`; `remote` for a model of an external provider.
    pub state: String,
    /// Why loading failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub format: String,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seq_length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// RFC 3339, when the model was imported (absent for models installed by the fetch script).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_at: Option<String>,
    /// For a model of an external provider (state `remote`): the provider's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// Why the service could not run a request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no model named {0:?} is installed; `enclave models list` shows the installed ones")]
    ModelNotFound(String),
    #[error("{0}")]
    NoDefaultModel(String),
    #[error("the model {name:?} is {state}")]
    ModelNotReady { name: String, state: String },
    #[error("the model {name:?} is a {actual} model; this endpoint needs a {wanted} model")]
    WrongKind {
        name: String,
        actual: &'static str,
        wanted: &'static str,
    },
    #[error("the inference queue is full; retry in a few seconds")]
    Busy,
    #[error("the request took longer than the configured {0} s and was stopped")]
    Timeout(u64),
    #[error("the inference threads have stopped")]
    Stopped,
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

/// What a chat job sends back.
#[derive(Debug)]
pub enum ChatEvent {
    /// A piece of generated text.
    Text(String),
    /// The end: the generation or why it failed.
    Done(Result<Generation, ServiceError>),
}

struct ChatJob {
    prompt: Vec<u32>,
    params: SamplingParams,
    events: tokio::sync::mpsc::UnboundedSender<ChatEvent>,
    cancel: Arc<AtomicBool>,
    deadline: Instant,
    timeout_secs: u64,
}

/// The receiving end of a chat job. Dropping it cancels the generation.
pub struct ChatStream {
    events: tokio::sync::mpsc::UnboundedReceiver<ChatEvent>,
    cancel: Arc<AtomicBool>,
}

impl ChatStream {
    /// The next event; `None` once the job is over.
    pub async fn next(&mut self) -> Option<ChatEvent> {
        self.events.recv().await
    }

    /// Waits for the whole generation.
    pub async fn collect(mut self) -> Result<Generation, ServiceError> {
        while let Some(event) = self.next().await {
            if let ChatEvent::Done(result) = event {
                return result;
            }
        }
        Err(ServiceError::Stopped)
    }
}

impl Drop for ChatStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

type EmbedReply = tokio::sync::oneshot::Sender<Result<Vec<Embedded>, ServiceError>>;

struct EmbedJob {
    model: Arc<EmbeddingModel>,
    texts: Vec<String>,
    reply: EmbedReply,
    deadline: Instant,
    timeout_secs: u64,
}

/// The service (shared by every request through `AppState`).
pub struct Inference {
    config: InferenceConfig,
    slots: RwLock<BTreeMap<String, Slot>>,
    /// External providers, read from the system database at start and after every change.
    providers: RwLock<Vec<super::providers::Provider>>,
    embed: SyncSender<EmbedJob>,
}

impl Inference {
    /// Starts the embedding thread and lists the installed models (not loaded yet: see
    /// [`Inference::load_all`], which starts each chat model's threads).
    pub fn start(config: &InferenceConfig, data_dir: &Path) -> Arc<Inference> {
        let (embed, embed_jobs) = sync_channel::<EmbedJob>(config.embedding_queue);
        if let Err(e) = std::thread::Builder::new()
            .name("embeddings".into())
            .spawn(move || embed_worker(&embed_jobs))
        {
            tracing::error!(error = %e, "could not start the embedding inference thread");
        }
        let slots = store::list(data_dir)
            .into_iter()
            .map(|installed| {
                (
                    installed.manifest.name.clone(),
                    Slot {
                        installed,
                        state: SlotState::Loading,
                    },
                )
            })
            .collect();
        Arc::new(Inference {
            config: config.clone(),
            slots: RwLock::new(slots),
            providers: RwLock::new(Vec::new()),
            embed,
        })
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        self.slots
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads every listed model, one after the other (blocking: run it on its own thread).
    pub fn load_all(&self, data_dir: &Path) {
        let names: Vec<String> = self.slots().keys().cloned().collect();
        for name in names {
            let Some(installed) = self.slots().get(&name).map(|s| s.installed.clone()) else {
                continue;
            };
            let started = Instant::now();
            let state = match super::load(&installed, data_dir) {
                Ok(loaded) => {
                    tracing::info!(model = %name, kind = installed.manifest.kind.as_str(), secs = started.elapsed().as_secs_f32(), "model loaded");
                    SlotState::Ready(match loaded {
                        Loaded::Embedding(model) => Ready::Embedding(model),
                        Loaded::Chat(model) => {
                            Ready::Chat(ChatHandle::start(&name, model, &self.config))
                        }
                    })
                }
                Err(e) => {
                    tracing::error!(model = %name, error = %e, "model failed to load");
                    SlotState::Failed(e.to_string())
                }
            };
            if let Some(slot) = self
                .slots
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_mut(&name)
            {
                slot.state = state;
            }
        }
    }

    /// Replaces the cached provider list (at start and after every change).
    pub fn set_providers(&self, providers: Vec<super::providers::Provider>) {
        *self
            .providers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = providers;
    }

    /// The provider route for a model name, if an external provider serves it.
    pub fn route(
        &self,
        model: Option<&str>,
        data_dir: &Path,
    ) -> Option<Result<super::providers::Route, super::providers::ProviderError>> {
        let model = model?.trim();
        self.providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find_map(|p| p.route(model, data_dir))
    }

    /// The names of the installed local models.
    pub fn local_names(&self) -> Vec<String> {
        self.slots().keys().cloned().collect()
    }

    /// Every installed model with its state, then the models of external providers.
    pub fn models(&self) -> Vec<ModelInfo> {
        let remote: Vec<ModelInfo> = self
            .providers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .flat_map(|p| {
                p.models.iter().map(|m| ModelInfo {
                    name: m.name.clone(),
                    kind: m.kind,
                    state: "remote".into(),
                    error: None,
                    format: "remote".into(),
                    bytes: 0,
                    quantization: None,
                    context_length: None,
                    dimensions: None,
                    max_seq_length: None,
                    license: None,
                    imported_at: None,
                    provider: Some(p.name.clone()),
                })
            })
            .collect();
        let mut local: Vec<ModelInfo> = self
            .slots()
            .values()
            .map(|slot| {
                let m = &slot.installed.manifest;
                let (state, error) = match &slot.state {
                    SlotState::Loading => ("loading", None),
                    SlotState::Ready(_) => ("ready", None),
                    SlotState::Failed(e) => ("failed", Some(e.clone())),
                };
                // What actually runs: the context the implementation supports, and the format a
                // slow quantisation was converted to at load.
                let (context_length, quantization) = match &slot.state {
                    SlotState::Ready(Ready::Chat(handle)) => (
                        u64::try_from(handle.model.context_length()).ok(),
                        match m.quantization.as_deref() {
                            q @ Some(from) if super::load::is_slow(q) => {
                                Some(format!("Q8_0 (converted from {from} at load)"))
                            }
                            other => other.map(str::to_string),
                        },
                    ),
                    _ => (m.context_length, m.quantization.clone()),
                };
                ModelInfo {
                    name: m.name.clone(),
                    kind: m.kind,
                    state: state.into(),
                    error,
                    format: m.format.clone(),
                    bytes: slot.installed.bytes,
                    quantization,
                    context_length,
                    dimensions: m.dimensions,
                    max_seq_length: m.max_seq_length,
                    license: m.license.clone(),
                    imported_at: m.imported_at.clone(),
                    provider: None,
                }
            })
            .collect();
        local.extend(remote);
        local
    }

    /// The loaded model named `name` (or the configured default of `kind`).
    fn resolve(&self, name: Option<&str>, kind: ModelKind) -> Result<Ready, ServiceError> {
        let default = match kind {
            ModelKind::Chat => &self.config.default_chat_model,
            ModelKind::Embedding => &self.config.default_embedding_model,
        };
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let slots = self.slots();
        let slot = match name {
            Some(name) => slots
                .get(name)
                .ok_or_else(|| ServiceError::ModelNotFound(name.to_string()))?,
            None => slots.get(default.as_str()).ok_or_else(|| {
                ServiceError::NoDefaultModel(format!(
                    "no {} model is installed (the default is {default:?}): run scripts/fetch-models.sh or `enclave models import PATH`, then restart",
                    kind.as_str()
                ))
            })?,
        };
        let model_name = slot.installed.manifest.name.clone();
        if slot.installed.manifest.kind != kind {
            return Err(ServiceError::WrongKind {
                name: model_name,
                actual: slot.installed.manifest.kind.as_str(),
                wanted: kind.as_str(),
            });
        }
        match &slot.state {
            SlotState::Ready(loaded) => Ok(loaded.clone()),
            SlotState::Loading => Err(ServiceError::ModelNotReady {
                name: model_name,
                state: "still loading; retry in a few seconds".into(),
            }),
            SlotState::Failed(e) => Err(ServiceError::ModelNotReady {
                name: model_name,
                state: format!(
                    "not usable: it failed to load ({e}); `enclave models verify` checks its files"
                ),
            }),
        }
    }

    /// The chat model to use, with its queue.
    pub fn chat_model(&self, name: Option<&str>) -> Result<ChatHandle, ServiceError> {
        match self.resolve(name, ModelKind::Chat)? {
            Ready::Chat(handle) => Ok(handle),
            Ready::Embedding(_) => Err(ServiceError::Stopped),
        }
    }

    /// The embedding model to use.
    pub fn embedding_model(&self, name: Option<&str>) -> Result<Arc<EmbeddingModel>, ServiceError> {
        match self.resolve(name, ModelKind::Embedding)? {
            Ready::Embedding(model) => Ok(model),
            Ready::Chat(_) => Err(ServiceError::Stopped),
        }
    }

    pub fn config(&self) -> &InferenceConfig {
        &self.config
    }

    /// Queues a generation on the model's own queue; its text arrives through the returned stream.
    pub fn generate(
        &self,
        handle: &ChatHandle,
        prompt: Vec<u32>,
        params: SamplingParams,
    ) -> Result<ChatStream, ServiceError> {
        let (events, receiver) = tokio::sync::mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let job = ChatJob {
            prompt,
            params,
            events,
            cancel: cancel.clone(),
            deadline: Instant::now() + Duration::from_secs(self.config.request_timeout_secs),
            timeout_secs: self.config.request_timeout_secs,
        };
        match handle.queue.try_send(job) {
            Ok(()) => Ok(ChatStream {
                events: receiver,
                cancel,
            }),
            Err(TrySendError::Full(_)) => Err(ServiceError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(ServiceError::Stopped),
        }
    }

    /// Embeds `texts` (batched with other waiting requests).
    pub async fn embed(
        &self,
        model: Arc<EmbeddingModel>,
        texts: Vec<String>,
    ) -> Result<Vec<Embedded>, ServiceError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = EmbedJob {
            model,
            texts,
            reply,
            deadline: Instant::now() + Duration::from_secs(self.config.request_timeout_secs),
            timeout_secs: self.config.request_timeout_secs,
        };
        match self.embed.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ServiceError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ServiceError::Stopped),
        }
        answer.await.unwrap_or(Err(ServiceError::Stopped))
    }
}

fn chat_worker(model: &ChatModel, jobs: &std::sync::Mutex<Receiver<ChatJob>>) {
    loop {
        let job = {
            let jobs = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        run_chat_job(model, job);
    }
}

fn run_chat_job(model: &ChatModel, job: ChatJob) {
    let ChatJob {
        prompt,
        params,
        events,
        cancel,
        deadline,
        timeout_secs,
    } = job;
    if cancel.load(Ordering::SeqCst) {
        return; // the client left while the job waited
    }
    if Instant::now() >= deadline {
        let _ = events.send(ChatEvent::Done(Err(ServiceError::Timeout(timeout_secs))));
        return;
    }
    let mut timed_out = false;
    let mut on_text = |text: &str| {
        if cancel.load(Ordering::SeqCst) {
            return ControlFlow::Break(());
        }
        if Instant::now() >= deadline {
            timed_out = true;
            return ControlFlow::Break(());
        }
        match events.send(ChatEvent::Text(text.to_string())) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    };
    let result = model.generate(&prompt, &params, &mut on_text);
    let result = match result {
        Ok(_) if timed_out => Err(ServiceError::Timeout(timeout_secs)),
        Ok(generation) => Ok(generation),
        Err(e) => Err(ServiceError::Inference(e)),
    };
    let _ = events.send(ChatEvent::Done(result));
}

fn embed_worker(jobs: &Receiver<EmbedJob>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut inputs = batch[0].texts.len();
        while inputs < EMBED_BATCH {
            match jobs.try_recv() {
                Ok(job) => {
                    inputs += job.texts.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let (expired, batch): (Vec<EmbedJob>, Vec<EmbedJob>) =
            batch.into_iter().partition(|job| now >= job.deadline);
        for job in expired {
            let _ = job.reply.send(Err(ServiceError::Timeout(job.timeout_secs)));
        }
        // One forward pass per model over every waiting input.
        let mut remaining = batch;
        while let Some(head) = remaining.first() {
            let model = head.model.clone();
            let (same, rest): (Vec<EmbedJob>, Vec<EmbedJob>) = remaining
                .into_iter()
                .partition(|job| Arc::ptr_eq(&job.model, &model));
            remaining = rest;
            let texts: Vec<&str> = same
                .iter()
                .flat_map(|job| job.texts.iter().map(String::as_str))
                .collect();
            match model.embed(&texts) {
                Ok(mut vectors) => {
                    for job in same {
                        let rest = vectors.split_off(job.texts.len().min(vectors.len()));
                        let mine = std::mem::replace(&mut vectors, rest);
                        let _ = job.reply.send(Ok(mine));
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    for job in same {
                        let _ =
                            job.reply
                                .send(Err(ServiceError::Inference(InferenceError::Runtime(
                                    message.clone(),
                                ))));
                    }
                }
            }
        }
    }
}

impl crate::error::ErrorCode for ServiceError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            ServiceError::ModelNotFound(_) | ServiceError::NoDefaultModel(_) => Code::ModelNotFound,
            ServiceError::WrongKind { .. } => Code::InvalidRequest,
            ServiceError::ModelNotReady { .. } => Code::ModelNotReady,
            ServiceError::Busy => Code::InferenceBusy,
            ServiceError::Timeout(_) => Code::InferenceTimeout,
            ServiceError::Stopped => Code::NotReady,
            ServiceError::Inference(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            ServiceError::Inference(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ServiceError::Busy => Some(2),
            ServiceError::ModelNotReady { .. } => Some(5),
            _ => None,
        }
    }
}
