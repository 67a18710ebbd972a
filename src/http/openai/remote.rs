//! `/v1` requests for a model an external provider serves (see [`crate::inference::providers`]):
//! forwarded with the upstream model name, answered with the local one, under the same
//! authentication, quotas and metering as local models.
//!
//! Metering: the prompt is reserved before forwarding at an estimate (a quarter of its characters,
//! at least one token per message; no local tokenizer knows the remote model), `max_tokens` is capped
//! to what is left of `chat_tokens_out` and sent upstream, and the counts the provider reports in
//! `usage` are committed (the estimate when it reports none). Streams always ask the provider for
//! usage and pass the usage chunk on only when the client asked for it.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Code};
use crate::inference::providers::{ProviderError, Route};
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::usage::gate;
use crate::usage::Metric;

/// A rough token count for text whose tokenizer is not here.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
        Value::Object(map) => map
            .get("text")
            .or_else(|| map.get("content"))
            .map(text_of)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The provider's refusal passed on: what is about the request (400, 404, 413, 422, 429) as it is
/// (OpenAI-shaped); anything else, such as the provider refusing Enclave's key, as
/// `502 provider_unavailable` (the client's own key is fine).
fn upstream_refusal(route: &Route, status: u16, body: Value) -> ApiResult<HttpResponse> {
    if matches!(status, 400 | 404 | 413 | 422 | 429) {
        let code = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        return Ok(HttpResponse::build(code).json(body));
    }
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("no message")
        .to_string();
    Err(ApiError::from(ProviderError::Upstream {
        name: route.provider.name.clone(),
        reason: format!("HTTP {status}: {message}"),
    }))
}

fn usage_counts(value: &Value) -> Option<(u64, u64)> {
    let usage = value.get("usage")?;
    Some((
        usage["prompt_tokens"].as_u64()?,
        usage["completion_tokens"].as_u64().unwrap_or(0),
    ))
}

/// The events of a provider's stream, read by a blocking thread that stops when the receiver is
/// dropped (the client left). The first event decides the status: a refusal before streaming is an
/// error, not a stream.
type Events = tokio::sync::mpsc::UnboundedReceiver<Result<Value, ApiError>>;

async fn open_stream(route: &Route, path: &'static str, body: Value) -> ApiResult<(Value, Events)> {
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Result<Value, ApiError>>();
    let forwarding = route.clone();
    tokio::task::spawn_blocking(move || {
        let sender = events.clone();
        let result =
            forwarding.forward_stream(path, &body, &mut |event| sender.send(Ok(event)).is_ok());
        match result {
            Ok(None) => {}
            Ok(Some((status, answer))) => {
                let message = answer["error"]["message"]
                    .as_str()
                    .unwrap_or("refused")
                    .to_string();
                let _ = events.send(Err(ApiError::new(
                    Code::ProviderUnavailable,
                    format!("the provider answered HTTP {status}: {message}"),
                )));
            }
            Err(e) => {
                let _ = events.send(Err(ApiError::from(e)));
            }
        }
    });
    match received.recv().await {
        Some(Ok(first)) => Ok((first, received)),
        Some(Err(e)) => Err(e),
        None => Err(ApiError::from(ProviderError::Upstream {
            name: route.provider.name.clone(),
            reason: "the stream ended before any event".into(),
        })),
    }
}

/// The token reservations of a streamed provider answer: committed with the counts the provider
/// reports, else with the prompt's estimate and the pieces streamed — also when the client leaves
/// mid-stream (`Drop`).
struct StreamMetering {
    state: web::Data<AppState>,
    ctx: TenantCtx,
    tokens: Option<(
        crate::usage::meter::Reservation,
        crate::usage::meter::Reservation,
    )>,
    estimate: u64,
    streamed: u64,
    usage: Option<(u64, u64)>,
}

impl StreamMetering {
    fn counts(&self) -> (u64, u64) {
        self.usage.unwrap_or((self.estimate, self.streamed))
    }

    /// Notes the counts an event reports, if it reports any.
    fn observe(&mut self, event: &Value) {
        if let Some(counts) = usage_counts(event) {
            self.usage = Some(counts);
        }
    }

    /// Commits the counts (once) and returns them.
    async fn settle(&mut self) -> Result<(u64, u64), ApiError> {
        let counts = self.counts();
        if let Some((tokens_in, tokens_out)) = self.tokens.take() {
            tokens_in.commit(counts.0).await?;
            tokens_out.commit(counts.1).await?;
            gate::after_commit(&self.state, &self.ctx, Metric::ChatTokensIn).await;
            gate::after_commit(&self.state, &self.ctx, Metric::ChatTokensOut).await;
        }
        Ok(counts)
    }
}

impl Drop for StreamMetering {
    fn drop(&mut self) {
        // The client left mid-stream: count what was streamed.
        if let Some((tokens_in, tokens_out)) = self.tokens.take() {
            let (prompt, completion) = self.counts();
            actix_web::rt::spawn(async move {
                let _ = tokens_in.commit(prompt).await;
                let _ = tokens_out.commit(completion).await;
            });
        }
    }
}

/// A chat or text completion by a provider (the caller was admitted by the `/v1` handler).
pub async fn complete(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    route: Route,
    path: &'static str,
    mut body: Value,
) -> ApiResult<HttpResponse> {
    let prompt_text = if path == "/chat/completions" {
        text_of(&body["messages"])
    } else {
        text_of(&body["prompt"])
    };
    let estimate = estimate_tokens(&prompt_text);
    let limit = u64::try_from(state.inference.config().max_tokens_limit).unwrap_or(u64::MAX);
    let asked = body["max_completion_tokens"]
        .as_u64()
        .or_else(|| body["max_tokens"].as_u64())
        .unwrap_or(if path == "/completions" { 16 } else { limit });
    if asked == 0 || asked > limit {
        return Err(super::invalid(
            "max_tokens",
            format!("max_tokens must be from 1 to {limit} (inference.max_tokens_limit)"),
        ));
    }
    let tokens_in = gate::reserve(&state, &ctx, Metric::ChatTokensIn, estimate).await?;
    let tokens_out = gate::reserve_up_to(&state, &ctx, Metric::ChatTokensOut, asked).await?;
    let max_out = tokens_out.quantity();
    if let Some(map) = body.as_object_mut() {
        map.remove("max_completion_tokens");
        map.insert("max_tokens".into(), json!(max_out));
    }
    let stream = body["stream"].as_bool().unwrap_or(false);
    if !stream {
        let forwarding = route.clone();
        let (status, answer) =
            crate::db::run_blocking(move || forwarding.forward(path, &body)).await?;
        if status != 200 {
            return upstream_refusal(&route, status, answer);
        }
        let (prompt, completion) = usage_counts(&answer).unwrap_or((estimate, 0));
        tokens_in.commit(prompt).await?;
        tokens_out.commit(completion).await?;
        gate::after_commit(&state, &ctx, Metric::ChatTokensIn).await;
        gate::after_commit(&state, &ctx, Metric::ChatTokensOut).await;
        return Ok(HttpResponse::Ok().json(answer));
    }

    // Streamed: a blocking reader forwards the provider's events through a channel.
    let client_wants_usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    body["stream_options"] = json!({"include_usage": true});
    let (first, received) = open_stream(&route, path, body).await?;
    struct Relay {
        pending: Option<Value>,
        received: Events,
        metering: StreamMetering,
        client_wants_usage: bool,
        done: bool,
    }
    impl Relay {
        async fn next(&mut self) -> Option<web::Bytes> {
            loop {
                if self.done {
                    return None;
                }
                let event = match self.pending.take() {
                    Some(event) => Some(Ok(event)),
                    None => self.received.recv().await,
                };
                match event {
                    Some(Ok(event)) => {
                        let usage_only = event["choices"].as_array().is_some_and(Vec::is_empty);
                        self.metering.observe(&event);
                        if usage_only && !self.client_wants_usage {
                            continue;
                        }
                        self.metering.streamed += 1;
                        return Some(super::sse(&event));
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(super::sse(&super::error_event(&e)));
                    }
                    None => {
                        self.done = true;
                        return Some(match self.metering.settle().await {
                            Ok(_) => web::Bytes::from_static(b"data: [DONE]\n\n"),
                            Err(e) => super::sse(&super::error_event(&e)),
                        });
                    }
                }
            }
        }
    }
    let relay = Relay {
        pending: Some(first),
        received,
        metering: StreamMetering {
            state,
            ctx,
            tokens: Some((tokens_in, tokens_out)),
            estimate,
            streamed: 0,
            usage: None,
        },
        client_wants_usage,
        done: false,
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        relay
            .next()
            .await
            .map(|bytes| (Ok::<_, actix_web::Error>(bytes), relay))
    });
    Ok(super::event_stream_response(body))
}

/// Embeddings by a provider (the caller was admitted by the `/v1` handler).
pub async fn embed(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    route: Route,
    body: Value,
) -> ApiResult<HttpResponse> {
    let estimate = estimate_tokens(&text_of(&body["input"]));
    let reservation = gate::reserve(&state, &ctx, Metric::EmbeddingTokens, estimate).await?;
    let forwarding = route.clone();
    let (status, answer) =
        crate::db::run_blocking(move || forwarding.forward("/embeddings", &body)).await?;
    if status != 200 {
        return upstream_refusal(&route, status, answer);
    }
    let used = answer["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap_or(estimate);
    reservation.commit(used).await?;
    gate::after_commit(&state, &ctx, Metric::EmbeddingTokens).await;
    Ok(HttpResponse::Ok().json(answer))
}

/// How a provider's answer to a chat app ends.
pub(crate) struct RemoteDone {
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub finish_reason: &'static str,
}

/// What a provider's streamed answer gives, piece by piece.
pub(crate) enum RemoteStep {
    Text(String),
    Done(Result<RemoteDone, ApiError>),
}

/// A chat app's answer generated by a provider: always streamed from it, metered as [`complete`]
/// meters (the estimate reserved, the provider's counts committed; what was streamed when the client
/// leaves). Dropping it stops reading the provider's stream.
pub(crate) struct RemoteChat {
    pending: Option<Value>,
    received: Events,
    metering: StreamMetering,
    text: String,
    finish_reason: &'static str,
}

/// Sends a chat app's messages to the provider of `route` and opens its stream.
pub(crate) async fn start_chat(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    route: Route,
    messages: &[crate::inference::ChatMessage],
    temperature: f64,
    max_tokens: u64,
    stop: &[String],
) -> ApiResult<RemoteChat> {
    let estimate = messages
        .iter()
        .map(|m| estimate_tokens(&m.content))
        .sum::<u64>();
    let tokens_in = gate::reserve(&state, &ctx, Metric::ChatTokensIn, estimate).await?;
    let tokens_out = gate::reserve_up_to(&state, &ctx, Metric::ChatTokensOut, max_tokens).await?;
    let mut body = json!({
        "model": route.model.name,
        "messages": messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect::<Vec<_>>(),
        "temperature": temperature,
        "max_tokens": tokens_out.quantity(),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !stop.is_empty() {
        body["stop"] = json!(stop);
    }
    let (first, received) = open_stream(&route, "/chat/completions", body).await?;
    Ok(RemoteChat {
        pending: Some(first),
        received,
        metering: StreamMetering {
            state,
            ctx,
            tokens: Some((tokens_in, tokens_out)),
            estimate,
            streamed: 0,
            usage: None,
        },
        text: String::new(),
        finish_reason: "stop",
    })
}

impl RemoteChat {
    /// The prompt's estimated tokens (what is reserved until the provider reports its count).
    pub(crate) fn prompt_estimate(&self) -> u64 {
        self.metering.estimate
    }

    /// The next piece of the answer, or how it ended.
    pub(crate) async fn next(&mut self) -> Option<RemoteStep> {
        loop {
            self.metering.tokens.as_ref()?;
            let event = match self.pending.take() {
                Some(event) => Some(Ok(event)),
                None => self.received.recv().await,
            };
            match event {
                Some(Ok(event)) => {
                    self.metering.observe(&event);
                    let choice = &event["choices"][0];
                    if choice["finish_reason"].as_str() == Some("length") {
                        self.finish_reason = "length";
                    }
                    match choice["delta"]["content"].as_str() {
                        Some(text) if !text.is_empty() => {
                            self.metering.streamed += 1;
                            self.text.push_str(text);
                            return Some(RemoteStep::Text(text.to_string()));
                        }
                        _ => continue,
                    }
                }
                Some(Err(e)) => {
                    let _ = self.metering.settle().await;
                    return Some(RemoteStep::Done(Err(e)));
                }
                None => {
                    return Some(RemoteStep::Done(self.metering.settle().await.map(
                        |(prompt_tokens, completion_tokens)| RemoteDone {
                            text: std::mem::take(&mut self.text),
                            prompt_tokens,
                            completion_tokens,
                            finish_reason: self.finish_reason,
                        },
                    )));
                }
            }
        }
    }
}
