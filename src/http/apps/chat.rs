//! Answering a question with a chat app: `POST …/apps/{app}/chat` (blocking or streamed as
//! server-sent events) and `POST /v1/chat/completions` with `model: "app:{id}"` (OpenAI's shape).
//!
//! The order (docs/apps.md, "How an answer is made"): access and input checks → one `messages` event
//! reserved against the quota → an annotated answer if the question is close enough to one → retrieval
//! from the app's knowledge bases → prompt (templates rendered once; text from questions, inputs,
//! documents and history cannot forge control tokens) with as much history as fits → generation through
//! the OpenAI module's `start_generation` (token quotas, context checks, bounded queue) → the exchange
//! stored with its citations. A client that leaves mid-stream cancels the generation; what was generated
//! until then is stored (`status: stopped`) and billed.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{end_user, has_app_key, reach, Reach};
use crate::apps::history::{self, Turn};
use crate::apps::store::{self, NewMessage};
use crate::apps::{self, template, AnnotationRef, App, AppError, Citation, MessageUsage, Source};
use crate::error::{ApiError, ApiResult, Code};
use crate::http::openai::remote::{RemoteChat, RemoteStep};
use crate::http::openai::{self, Sampling, Started, Stop};
use crate::identity::principal::Caller;
use crate::identity::Action;
use crate::inference::service::ChatEvent;
use crate::inference::ChatMessage;
use crate::knowledge::search::SearchRequest;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::usage::gate;
use crate::usage::meter::Reservation;
use crate::usage::Metric;

/// How many earlier turns are read before the token budget picks from them.
const HISTORY_TURNS_READ: usize = 50;

/// A question to an app, as `POST …/apps/{app}/chat` takes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    pub query: String,
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Values of the app's input variables.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The end user (API keys; ignored for people signed in).
    #[serde(default)]
    pub user: Option<String>,
    /// `blocking` (default) or `streaming`.
    #[serde(default)]
    pub response_mode: Option<String>,
    /// Editors: answer with an unpublished app and return the rendered prompt.
    #[serde(default)]
    pub debug: bool,
}

/// What the answering needs to know.
struct Ask {
    app_id: String,
    query: String,
    conversation_id: Option<String>,
    inputs: serde_json::Map<String, serde_json::Value>,
    end_user: String,
    source: Source,
    /// Earlier turns given by the caller (the OpenAI route) instead of a stored conversation.
    history: Option<Vec<Turn>>,
    debug: bool,
}

/// The facts an answer opens with.
pub(crate) struct Head {
    pub conversation_id: String,
    pub message_id: String,
    pub citations: Vec<Citation>,
    pub annotation: Option<AnnotationRef>,
    /// The rendered prompt (debug only).
    pub prompt: Option<String>,
    pub model: String,
}

/// What an answer sends, in order: `Start`, `Text`…, then `End` or `Error`.
pub(crate) enum Event {
    Start,
    Text(String),
    End {
        finish_reason: &'static str,
        usage: MessageUsage,
    },
    Error(ApiError),
}

/// Stores the exchange exactly once: when the answer ends, or — if the client leaves first — from
/// `Drop`, with what was generated until then.
struct Record {
    ctx: TenantCtx,
    state: web::Data<AppState>,
    message_id: String,
    conversation_id: String,
    app_id: String,
    end_user: String,
    query: String,
    inputs: serde_json::Value,
    model: String,
    prompt_version: i64,
    citations: Vec<Citation>,
    annotation_id: Option<String>,
    answer: String,
    usage: MessageUsage,
    started: Instant,
    messages: Option<Reservation>,
}

impl Record {
    /// Writes the message and commits its `messages` event.
    async fn save(&mut self, status: &'static str, error: Option<String>) -> ApiResult<()> {
        let Some(reservation) = self.messages.take() else {
            return Ok(());
        };
        let job = self.job(status, error);
        job.run(&self.ctx).await?;
        reservation.commit(1).await?;
        gate::after_commit(&self.state, &self.ctx, Metric::Messages).await;
        Ok(())
    }

    fn job(&self, status: &'static str, error: Option<String>) -> SaveJob {
        SaveJob {
            id: self.message_id.clone(),
            conversation_id: self.conversation_id.clone(),
            app_id: self.app_id.clone(),
            end_user: self.end_user.clone(),
            query: self.query.clone(),
            answer: self.answer.clone(),
            inputs: self.inputs.clone(),
            status,
            error,
            model: self.model.clone(),
            prompt_version: self.prompt_version,
            usage: self.usage,
            latency_ms: self.started.elapsed().as_millis() as u64,
            annotation_id: self.annotation_id.clone(),
            citations: self.citations.clone(),
        }
    }
}

/// A message to write (owned, so it can outlive the request).
struct SaveJob {
    id: String,
    conversation_id: String,
    app_id: String,
    end_user: String,
    query: String,
    answer: String,
    inputs: serde_json::Value,
    status: &'static str,
    error: Option<String>,
    model: String,
    prompt_version: i64,
    usage: MessageUsage,
    latency_ms: u64,
    annotation_id: Option<String>,
    citations: Vec<Citation>,
}

impl SaveJob {
    async fn run(self, ctx: &TenantCtx) -> ApiResult<()> {
        ctx.run(move |db| {
            db.write(|tx| {
                store::insert_message(
                    tx,
                    &NewMessage {
                        id: &self.id,
                        conversation_id: &self.conversation_id,
                        app_id: &self.app_id,
                        end_user: &self.end_user,
                        query: &self.query,
                        answer: &self.answer,
                        inputs: &self.inputs,
                        status: self.status,
                        error: self.error.as_deref(),
                        model: &self.model,
                        prompt_version: self.prompt_version,
                        usage: self.usage,
                        latency_ms: self.latency_ms,
                        annotation_id: self.annotation_id.as_deref(),
                        citations: &self.citations,
                    },
                )
            })
        })
        .await
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let Some(reservation) = self.messages.take() else {
            return;
        };
        // The client left before the end: keep what it was given.
        let job = self.job("stopped", None);
        let ctx = self.ctx.clone();
        actix_web::rt::spawn(async move {
            match job.run(&ctx).await {
                Ok(()) => {
                    let _ = reservation.commit(1).await;
                }
                Err(e) => tracing::warn!(error = %e.message, "could not store a stopped answer"),
            }
        });
    }
}

/// What generates an answer: a local model, or an external provider.
enum Producer {
    Local(Started),
    Remote(RemoteChat),
}

/// One step of a producer.
enum Step {
    Text(String),
    Finished {
        text: String,
        usage: MessageUsage,
        finish_reason: &'static str,
    },
    Failed(ApiError),
}

impl Producer {
    /// The prompt's tokens (a provider's: the estimate until it reports them).
    fn prompt_tokens(&self) -> u64 {
        match self {
            Producer::Local(started) => started.metering.prompt_tokens,
            Producer::Remote(chat) => chat.prompt_estimate(),
        }
    }

    /// The next piece, or the end with the token counts committed to the meter.
    async fn step(&mut self) -> Step {
        match self {
            Producer::Local(started) => match started.stream.next().await {
                Some(ChatEvent::Text(text)) => {
                    started.metering.streamed += 1;
                    Step::Text(text)
                }
                Some(ChatEvent::Done(Ok(generation))) => {
                    let completion = generation.completion_tokens as u64;
                    if let Err(e) = started.metering.commit(completion).await {
                        return Step::Failed(e);
                    }
                    Step::Finished {
                        text: generation.text,
                        usage: MessageUsage {
                            prompt_tokens: generation.prompt_tokens as u64,
                            completion_tokens: completion,
                        },
                        finish_reason: openai::finish_reason(generation.finish_reason),
                    }
                }
                Some(ChatEvent::Done(Err(e))) => match started.metering.settle_failed().await {
                    Ok(()) => Step::Failed(ApiError::from(e)),
                    Err(settling) => Step::Failed(settling),
                },
                None => Step::Failed(ApiError::internal("the generation ended without a result")),
            },
            Producer::Remote(chat) => match chat.next().await {
                Some(RemoteStep::Text(text)) => Step::Text(text),
                Some(RemoteStep::Done(Ok(done))) => Step::Finished {
                    text: done.text,
                    usage: MessageUsage {
                        prompt_tokens: done.prompt_tokens,
                        completion_tokens: done.completion_tokens,
                    },
                    finish_reason: done.finish_reason,
                },
                Some(RemoteStep::Done(Err(e))) => Step::Failed(e),
                None => Step::Failed(ApiError::internal(
                    "the provider's answer ended without a result",
                )),
            },
        }
    }
}

/// An answer under way.
pub(crate) struct Answering {
    pub head: Head,
    generation: Option<Producer>,
    /// An annotated answer, sent as one piece.
    canned: Option<String>,
    record: Record,
    opened: bool,
    done: bool,
}

impl Answering {
    /// The next event; `None` after the last.
    pub(crate) async fn next(&mut self) -> Option<Event> {
        if !self.opened {
            self.opened = true;
            return Some(Event::Start);
        }
        if self.done {
            return None;
        }
        if let Some(text) = self.canned.take() {
            self.record.answer.clone_from(&text);
            return Some(Event::Text(text));
        }
        let Some(producer) = self.generation.as_mut() else {
            self.done = true;
            return Some(match self.record.save("complete", None).await {
                Ok(()) => Event::End {
                    finish_reason: "stop",
                    usage: self.record.usage,
                },
                Err(e) => Event::Error(e),
            });
        };
        match producer.step().await {
            Step::Text(text) => {
                self.record.usage.completion_tokens += 1;
                self.record.answer.push_str(&text);
                Some(Event::Text(text))
            }
            Step::Finished {
                text,
                usage,
                finish_reason,
            } => {
                self.done = true;
                self.record.answer = text.trim().to_string();
                self.record.usage = usage;
                Some(match self.record.save("complete", None).await {
                    Ok(()) => Event::End {
                        finish_reason,
                        usage,
                    },
                    Err(e) => Event::Error(e),
                })
            }
            Step::Failed(error) => {
                self.done = true;
                let _ = self
                    .record
                    .save("failed", Some(error.message.clone()))
                    .await;
                Some(Event::Error(error))
            }
        }
    }

    /// Runs the answer to its end (blocking mode).
    async fn collect(mut self) -> ApiResult<(Head, String, &'static str, MessageUsage)> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            match event {
                Event::Start => {}
                Event::Text(piece) => text.push_str(&piece),
                Event::End {
                    finish_reason,
                    usage,
                } => {
                    let answer = self.record.answer.clone();
                    let head = std::mem::replace(
                        &mut self.head,
                        Head {
                            conversation_id: String::new(),
                            message_id: String::new(),
                            citations: Vec::new(),
                            annotation: None,
                            prompt: None,
                            model: String::new(),
                        },
                    );
                    return Ok((head, answer, finish_reason, usage));
                }
                Event::Error(e) => return Err(e),
            }
        }
        Err(ApiError::internal(format!(
            "the answer ended early after {} characters",
            text.len()
        )))
    }
}

/// Checks the input variables against the app's definitions and returns the values to substitute.
fn input_values(
    app: &App,
    given: &serde_json::Map<String, serde_json::Value>,
) -> ApiResult<Vec<(String, String)>> {
    let defined = &app.config.inputs;
    if let Some(unknown) = given
        .keys()
        .find(|k| !defined.iter().any(|d| &d.name == *k))
    {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("this app has no input variable {unknown:?}"),
        )
        .with_param(&format!("inputs.{unknown}")));
    }
    let mut values = Vec::new();
    for input in defined {
        let param = format!("inputs.{}", input.name);
        let value = match given.get(&input.name) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.trim().to_string(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::Bool(b)) => b.to_string(),
            Some(_) => {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!("input {:?} must be text", input.name),
                )
                .with_param(&param))
            }
        };
        if input.required && value.is_empty() {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("input {:?} ({}) is required", input.name, input.label),
            )
            .with_param(&param));
        }
        if value.chars().count() > input.max_length {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!(
                    "input {:?} must be at most {} characters",
                    input.name, input.max_length
                ),
            )
            .with_param(&param));
        }
        values.push((input.name.clone(), value));
    }
    Ok(values)
}

/// The passages as `{{context}}` shows them: numbered, with their document and headings.
fn context_text(citations: &[Citation]) -> String {
    if citations.is_empty() {
        return "(no passages were found for this question)".into();
    }
    citations
        .iter()
        .map(|c| {
            let mut title = c.document_title.clone();
            for heading in &c.heading_path {
                title.push_str(" › ");
                title.push_str(heading);
            }
            format!("[{}] {}\n{}", c.n, title, c.text.trim())
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Embeds a text with the default embedding model for annotations (metered as `embedding_tokens`).
pub(crate) async fn embed_for_annotations(
    state: &AppState,
    ctx: &TenantCtx,
    text: &str,
) -> ApiResult<(Vec<f32>, String)> {
    let name = state.inference.config().default_embedding_model.clone();
    let model = state
        .inference
        .embedding_model(Some(&name))
        .map_err(ApiError::from)?;
    let counting = (model.clone(), text.to_string());
    let expected = crate::db::run_blocking(move || {
        let (model, text) = counting;
        model
            .count_tokens(&text)
            .map(|n| n.min(model.max_tokens()) as u64)
    })
    .await?;
    let reservation = gate::reserve(state, ctx, Metric::EmbeddingTokens, expected).await?;
    let embedded = state
        .inference
        .embed(model, vec![text.to_string()])
        .await
        .map_err(ApiError::from)?;
    let first = embedded
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("the text was not embedded"))?;
    reservation.commit(first.tokens as u64).await?;
    gate::after_commit(state, ctx, Metric::EmbeddingTokens).await;
    Ok((first.vector, name))
}

/// Everything before the first token: checks, quota, annotation or retrieval, prompt, generation.
async fn begin(state: web::Data<AppState>, ctx: TenantCtx, ask: Ask) -> ApiResult<Answering> {
    let started_at = Instant::now();
    let reach = reach(&ctx, &ask.app_id)?;
    if ask.debug && reach != Reach::Edit {
        return Err(ApiError::new(
            Code::Forbidden,
            "debug answers are for editors of the app",
        ));
    }
    ctx.ensure_writable()?;
    let query = ask.query.trim().to_string();
    if query.is_empty() || query.chars().count() > apps::MAX_QUERY_CHARS {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("query must be 1 to {} characters", apps::MAX_QUERY_CHARS),
        )
        .with_param("query"));
    }
    // The app, the conversation (this app's and this end user's only) and its history.
    let (app, conversation, stored_history) = {
        let (app_id, conversation_id, user) = (
            ask.app_id.clone(),
            ask.conversation_id.clone(),
            ask.end_user.clone(),
        );
        ctx.run(move |db| {
            let conn = db.connection()?;
            let app = store::get_app(&conn, &app_id)?;
            let (conversation, history) = match conversation_id {
                Some(id) => {
                    let conversation = store::get_conversation(&conn, &app_id, &id, &user)?;
                    let history = store::history(&conn, &id, HISTORY_TURNS_READ)?;
                    (Some(conversation), history)
                }
                None => (None, Vec::new()),
            };
            Ok::<_, AppError>((app, conversation, history))
        })
        .await?
    };
    let may_try_unpublished = ask.debug && reach == Reach::Edit;
    if !app.published && !may_try_unpublished {
        return Err(if reach == Reach::Edit {
            AppError::NotPublished(app.id.clone()).into()
        } else {
            AppError::NotFound(app.id.clone()).into()
        });
    }
    let inputs = input_values(&app, &ask.inputs)?;
    let history = ask.history.unwrap_or(stored_history);

    // One message, reserved before any work.
    let messages = gate::reserve(&state, &ctx, Metric::Messages, 1).await?;

    // An annotated answer, when the question is close enough to an annotated one.
    let annotation = {
        let app_id = app.id.clone();
        let count = ctx
            .run(move |db| {
                let conn = db.connection()?;
                store::annotation_count(&conn, &app_id)
            })
            .await?;
        if count > 0 {
            let (vector, model) = embed_for_annotations(&state, &ctx, &query).await?;
            let (app_id, threshold) = (app.id.clone(), app.config.annotation_threshold);
            ctx.run(move |db| {
                let conn = db.connection()?;
                store::best_annotation(&conn, &app_id, &model, &vector, threshold)
            })
            .await?
        } else {
            None
        }
    };

    let model_name = app
        .config
        .model
        .clone()
        .unwrap_or_else(|| state.inference.config().default_chat_model.clone());
    let message_id = apps::new_id();
    let inputs_json = serde_json::Value::Object(
        inputs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
    );

    let (generation, canned, citations, annotation_ref, prompt_slot) = match annotation {
        Some((annotation, _score)) => (
            None,
            Some(annotation.answer.clone()),
            Vec::new(),
            Some(AnnotationRef {
                id: annotation.id,
                question: annotation.question,
            }),
            None,
        ),
        None => {
            let citations = retrieve(&state, &ctx, &app, &query).await?;
            let (generation, slot) = generate(
                &state, &ctx, &app, &query, &inputs, &citations, history, ask.debug,
            )
            .await?;
            (Some(generation), None, citations, None, Some(slot))
        }
    };

    // A new conversation is stored before the answer opens, so that a follow-up sent right after a
    // stop finds it (the stopped answer itself is stored when the server notices the client left).
    // Conversations without messages are not listed.
    let conversation_id = match conversation {
        Some(c) => c.id,
        None => {
            let (app_id, user, source) = (app.id.clone(), ask.end_user.clone(), ask.source);
            let name: String = query.chars().take(60).collect();
            ctx.run(move |db| {
                db.write(|tx| store::create_conversation(tx, &app_id, &user, source, &name))
            })
            .await?
            .id
        }
    };
    let prompt_tokens = generation.as_ref().map_or(0, Producer::prompt_tokens);
    let prompt = prompt_slot.and_then(|slot| {
        slot.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    });
    let record = Record {
        ctx: ctx.clone(),
        state: state.clone(),
        message_id: message_id.clone(),
        conversation_id: conversation_id.clone(),
        app_id: app.id.clone(),
        end_user: ask.end_user,
        query,
        inputs: inputs_json,
        model: if canned.is_some() {
            "annotation".into()
        } else {
            model_name.clone()
        },
        prompt_version: app.prompt_version,
        citations: citations.clone(),
        annotation_id: annotation_ref.as_ref().map(|a| a.id.clone()),
        answer: String::new(),
        usage: MessageUsage {
            prompt_tokens,
            completion_tokens: 0,
        },
        started: started_at,
        messages: Some(messages),
    };
    Ok(Answering {
        head: Head {
            conversation_id,
            message_id,
            citations,
            annotation: annotation_ref,
            prompt: if ask.debug { prompt } else { None },
            model: model_name,
        },
        generation,
        canned,
        record,
        opened: false,
        done: false,
    })
}

/// Searches the app's knowledge bases (those still there) for the question.
async fn retrieve(
    state: &AppState,
    ctx: &TenantCtx,
    app: &App,
    query: &str,
) -> ApiResult<Vec<Citation>> {
    if app.config.dataset_ids.is_empty() {
        return Ok(Vec::new());
    }
    let wanted = app.config.dataset_ids.clone();
    // Knowledge bases deleted since the app was saved are skipped.
    let dataset_ids: Vec<String> = ctx
        .run(move |db| {
            let conn = db.connection()?;
            crate::knowledge::store::existing_dataset_ids(&conn, &wanted).map_err(AppError::from)
        })
        .await?;
    if dataset_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The question may be longer than a search takes; its beginning is what retrieval needs.
    let mut search_query: String = query.to_string();
    if search_query.len() > crate::knowledge::search::MAX_QUERY_BYTES {
        let mut end = crate::knowledge::search::MAX_QUERY_BYTES;
        while !search_query.is_char_boundary(end) {
            end -= 1;
        }
        search_query.truncate(end);
    }
    let hits = crate::http::datasets::retrieve(
        state,
        ctx,
        SearchRequest {
            query: search_query,
            dataset_ids,
            mode: app.config.retrieval.mode,
            top_k: app.config.retrieval.top_k,
            score_threshold: app.config.retrieval.score_threshold,
            document_ids: None,
            weights: None,
            fusion: Default::default(),
        },
    )
    .await?;
    Ok(hits
        .into_iter()
        .enumerate()
        .map(|(i, hit)| Citation {
            n: i as u32 + 1,
            segment_id: hit.segment_id,
            dataset_id: hit.dataset_id,
            document_id: hit.document_id,
            document_title: hit.document_title,
            heading_path: hit.heading_path,
            page: hit.page,
            text: hit.text,
            score: hit.score,
        })
        .collect())
}

/// Renders the prompt (with the history that fits) and queues the generation.
#[allow(clippy::too_many_arguments)]
async fn generate(
    state: &web::Data<AppState>,
    ctx: &TenantCtx,
    app: &App,
    query: &str,
    inputs: &[(String, String)],
    citations: &[Citation],
    history: Vec<Turn>,
    debug: bool,
) -> ApiResult<(Producer, Arc<Mutex<Option<String>>>)> {
    let safe = openai::neutralize_special_tokens;
    let question = safe(query);
    let context = safe(&context_text(citations));
    let inputs: Vec<(String, String)> = inputs.iter().map(|(k, v)| (k.clone(), safe(v))).collect();
    let mut values = std::collections::HashMap::new();
    values.insert("question", question.as_str());
    values.insert("context", context.as_str());
    for (name, value) in &inputs {
        values.insert(name.as_str(), value.as_str());
    }
    let system = template::render(&app.prompt.system, &values);
    let user = template::render(&app.prompt.user, &values);
    let history: Vec<Turn> = history
        .into_iter()
        .map(|t| Turn {
            query: safe(&t.query),
            answer: safe(&t.answer),
        })
        .collect();
    let max_tokens = app.config.max_tokens as usize;
    let history_tokens = app.config.history_tokens;
    let slot = Arc::new(Mutex::new(None));
    let keep = debug.then(|| slot.clone());
    if let Some(route) = app.config.model.as_deref().and_then(|m| {
        state
            .inference
            .route(Some(m), &state.config.storage.data_dir)
    }) {
        // An external provider: no local tokenizer knows its model, so history is measured with the
        // same estimate its metering uses (a token per four characters).
        let route = route.map_err(ApiError::from)?;
        let turns = history::fit(&history, history_tokens, |t| t.chars().count().div_ceil(4));
        let messages = chat_messages(system, turns, user);
        if let Some(keep) = keep {
            let shown: Vec<String> = messages
                .iter()
                .map(|m| format!("[{}]\n{}", m.role, m.content))
                .collect();
            *keep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shown.join("\n\n"));
        }
        let chat = openai::remote::start_chat(
            state.clone(),
            ctx.clone(),
            route,
            &messages,
            app.config.temperature,
            app.config.max_tokens,
            &app.config.stop,
        )
        .await?;
        return Ok((Producer::Remote(chat), slot));
    }
    let build = move |model: &crate::inference::chat::ChatModel| {
        let count = |text: &str| model.encode(text).map(|ids| ids.len());
        let fixed = count(&system)? + count(&user)? + 2 * history::TURN_OVERHEAD_TOKENS;
        let room = model.context_length().saturating_sub(fixed + max_tokens);
        let turns = history::fit(&history, history_tokens.min(room), |t| {
            count(t).unwrap_or(usize::MAX / 4)
        });
        let text = model.render(&chat_messages(system, turns, user))?;
        if let Some(keep) = keep {
            *keep
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text.clone());
        }
        Ok(text)
    };
    let sampling = Sampling {
        temperature: Some(app.config.temperature),
        max_tokens: Some(app.config.max_tokens),
        stop: (!app.config.stop.is_empty()).then(|| Stop::Many(app.config.stop.clone())),
        ..Sampling::default()
    };
    let started = openai::start_generation(
        state.clone(),
        ctx.clone(),
        app.config.model.clone(),
        build,
        &sampling,
        Some(app.config.max_tokens),
    )
    .await?;
    Ok((Producer::Local(started), slot))
}

/// The conversation the model reads: the system prompt, the earlier turns that fit, the question.
fn chat_messages(system: String, turns: Vec<Turn>, user: String) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(turns.len() * 2 + 2);
    if !system.trim().is_empty() {
        messages.push(ChatMessage {
            role: "system".into(),
            content: system,
        });
    }
    for turn in turns {
        messages.push(ChatMessage {
            role: "user".into(),
            content: turn.query,
        });
        messages.push(ChatMessage {
            role: "assistant".into(),
            content: turn.answer,
        });
    }
    messages.push(ChatMessage {
        role: "user".into(),
        content: user,
    });
    messages
}

// ---------------------------------------------------------------------------------------------
// The app's own API

/// Answers a question with the app (docs/apps.md): `response_mode: blocking` (JSON) or `streaming`
/// (server-sent events: `message_start`, `message`…, `message_end`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/{app}/chat", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    request_body = ChatBody,
    responses((status = 200, description = "the answer (JSON, or text/event-stream when streaming)"),
        (status = 400, body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "no such app or conversation", body = crate::http::openapi::ErrorResponse),
        (status = 429, description = "quota or rate limit", body = crate::http::openapi::ErrorResponse)))]
pub async fn chat(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
    body: web::Json<ChatBody>,
) -> ApiResult<HttpResponse> {
    let (_, app_id) = path.into_inner();
    let body = body.into_inner();
    let streaming = match body.response_mode.as_deref() {
        None | Some("blocking") => false,
        Some("streaming") => true,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("response_mode {other:?}: use blocking or streaming"),
            )
            .with_param("response_mode"))
        }
    };
    let source = match (&ctx.caller, body.debug) {
        (_, true) => Source::Debug,
        (Caller::Key(_), false) => Source::Api,
        (Caller::User(_), false) => Source::Web,
    };
    let ask = Ask {
        end_user: end_user(&ctx, body.user.as_deref())?,
        app_id,
        query: body.query,
        conversation_id: body.conversation_id,
        inputs: body.inputs,
        source,
        history: None,
        debug: body.debug,
    };
    let answering = begin(state, ctx, ask).await?;
    if !streaming {
        let (head, answer, finish_reason, usage) = answering.collect().await?;
        return Ok(HttpResponse::Ok().json(json!({
            "conversation_id": head.conversation_id,
            "message_id": head.message_id,
            "answer": answer,
            "citations": head.citations,
            "annotation": head.annotation,
            "finish_reason": finish_reason,
            "usage": usage,
            "model": head.model,
            "prompt": head.prompt,
        })));
    }
    let body = futures_util::stream::unfold(answering, |mut a| async move {
        let event = a.next().await?;
        let value = match event {
            Event::Start => json!({
                "event": "message_start",
                "conversation_id": a.head.conversation_id,
                "message_id": a.head.message_id,
                "citations": a.head.citations,
                "annotation": a.head.annotation,
                "model": a.head.model,
                "prompt": a.head.prompt,
            }),
            Event::Text(text) => json!({"event": "message", "answer": text}),
            Event::End {
                finish_reason,
                usage,
            } => json!({"event": "message_end", "finish_reason": finish_reason, "usage": usage}),
            Event::Error(e) => {
                json!({"event": "error", "code": e.code.name(), "message": e.message})
            }
        };
        Some((Ok::<_, actix_web::Error>(openai::sse(&value)), a))
    });
    Ok(openai::event_stream_response(body))
}

// ---------------------------------------------------------------------------------------------
// The OpenAI-compatible route

/// `POST /v1/chat/completions` with `model: "app:{id}"`: the last user message is the question, the
/// earlier user/assistant messages its history (the caller's system messages are ignored: the app's
/// prompt rules), `user` the end user. Each call is stored as a conversation of `source: openai`.
pub(crate) async fn openai_chat(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    app_id: &str,
    messages: Vec<ChatMessage>,
    user: Option<String>,
    stream: bool,
    include_usage: bool,
) -> ApiResult<HttpResponse> {
    if !has_app_key(&ctx, app_id) {
        ctx.require(Action::Read)?;
    }
    let Some(last) = messages.last().filter(|m| m.role == "user") else {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "the last message must be the user's question",
        )
        .with_param("messages"));
    };
    let query = last.content.clone();
    let mut history = Vec::new();
    let mut pending: Option<String> = None;
    for m in &messages[..messages.len() - 1] {
        match m.role.as_str() {
            "user" => pending = Some(m.content.clone()),
            "assistant" => {
                if let Some(q) = pending.take() {
                    history.push(Turn {
                        query: q,
                        answer: m.content.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    let end_user = match (&ctx.caller, user) {
        (Caller::Key(_), Some(given)) => apps::clean_end_user(&given)?,
        _ => end_user(&ctx, None)?,
    };
    let ask = Ask {
        app_id: app_id.to_string(),
        query,
        conversation_id: None,
        inputs: serde_json::Map::new(),
        end_user,
        source: Source::OpenAi,
        history: Some(history),
        debug: false,
    };
    let model = format!("app:{app_id}");
    let answering = begin(state, ctx, ask).await?;
    let id = openai::completion_id("chatcmpl");
    let created = openai::unix_now();
    if !stream {
        let (head, answer, finish_reason, usage) = answering.collect().await?;
        return Ok(HttpResponse::Ok().json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "logprobs": null, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.prompt_tokens + usage.completion_tokens},
            "citations": head.citations,
            "annotation": head.annotation,
            "conversation_id": head.conversation_id,
            "message_id": head.message_id,
        })));
    }
    let chunk = move |delta: serde_json::Value, reason: Option<&str>| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": reason}]})
    };
    let body = futures_util::stream::unfold(
        (answering, chunk, false),
        move |(mut a, chunk, finished)| async move {
            if finished {
                return None;
            }
            let event = a.next().await?;
            let (bytes, finished) = match event {
                Event::Start => {
                    let mut first = chunk(json!({"role": "assistant", "content": ""}), None);
                    first["citations"] = json!(a.head.citations);
                    first["annotation"] = json!(a.head.annotation);
                    first["conversation_id"] = json!(a.head.conversation_id);
                    first["message_id"] = json!(a.head.message_id);
                    (openai::sse(&first), false)
                }
                Event::Text(text) => (openai::sse(&chunk(json!({"content": text}), None)), false),
                Event::End {
                    finish_reason,
                    usage,
                } => {
                    let mut out = Vec::new();
                    out.extend_from_slice(&openai::sse(&chunk(json!({}), Some(finish_reason))));
                    if include_usage {
                        let mut last = chunk(json!({}), None);
                        last["choices"] = json!([]);
                        last["usage"] = json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                            "total_tokens": usage.prompt_tokens + usage.completion_tokens});
                        out.extend_from_slice(&openai::sse(&last));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    (web::Bytes::from(out), true)
                }
                Event::Error(e) => (openai::sse(&openai::error_event(&e)), true),
            };
            Some((Ok::<_, actix_web::Error>(bytes), (a, chunk, finished)))
        },
    );
    Ok(openai::event_stream_response(body))
}

/// The apps an OpenAI client may call as models (published ones; an app key: its own).
pub(crate) async fn callable_apps(ctx: &TenantCtx) -> ApiResult<Vec<App>> {
    let app_keys: Option<Vec<String>> = match &ctx.caller {
        Caller::Key(key) if !key.can_infer() => Some(
            key.scopes
                .iter()
                .filter_map(|s| s.strip_prefix("app:").map(str::to_string))
                .collect(),
        ),
        _ => None,
    };
    let mut apps = ctx
        .run(|db| {
            let conn = db.connection()?;
            store::list_apps(&conn, true)
        })
        .await?;
    if let Some(keys) = app_keys {
        apps.retain(|a| keys.contains(&a.id));
    }
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_numbers_passages_with_their_headings() {
        let c = Citation {
            n: 2,
            segment_id: 1,
            dataset_id: "d".into(),
            document_id: "x".into(),
            document_title: "Handbook".into(),
            heading_path: vec!["Leave".into(), "Annual".into()],
            page: None,
            text: " 25 days. ".into(),
            score: 0.5,
        };
        assert_eq!(
            context_text(&[c]),
            "[2] Handbook › Leave › Annual\n25 days."
        );
        assert!(context_text(&[]).contains("no passages"));
    }
}
