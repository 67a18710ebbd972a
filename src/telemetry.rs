//! Logging and the per-request middleware: request ids, one log line per request, metrics.
//!
//! Logs go to stderr, pretty for a terminal or JSON (`--log-format json`). Each request gets an id:
//! the caller's `X-Request-Id` when it is a sane token, otherwise a new random one. The id is echoed in
//! the `X-Request-Id` response header, put in error bodies, and logged with the request. Health and
//! metrics probes log at DEBUG so they do not drown the log. Log fields never include bodies, headers
//! or query strings, which may carry secrets.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::REQUEST_ID;

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Installs the global logger. `level` is a level or an `EnvFilter` directive.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder
            .compact()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
    // A second init (tests) keeps the first logger; nothing else can fail here.
    drop(result);
}

fn valid_incoming_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| text.to_string())
}

fn new_request_id() -> String {
    hex::encode(crate::tenancy::random_bytes::<12>())
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

thread_local! {
    /// Route pattern of recently seen paths, per worker thread (see [`route_pattern`]).
    static ROUTE_OF_PATH: std::cell::RefCell<std::collections::HashMap<String, String>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// How many paths each worker remembers the route of before it starts over.
const ROUTE_CACHE_PATHS: usize = 4096;

/// The route pattern a request matched (`/api/v1/tenants/{tenant}/...`), the metrics label.
/// actix finds it by matching the path against the route table again, a regex per route with a
/// parameter; API clients call the same paths over and over, so the answer is remembered per path.
fn route_pattern(req: &actix_web::HttpRequest) -> String {
    let path = req.path();
    if let Some(route) = ROUTE_OF_PATH.with(|cache| cache.borrow().get(path).cloned()) {
        return route;
    }
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    ROUTE_OF_PATH.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= ROUTE_CACHE_PATHS {
            cache.clear();
        }
        cache.insert(path.to_string(), route.clone());
    });
    route
}

/// The request middleware: assigns the id, serves the request inside its scope, then logs and counts it.
pub async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(valid_incoming_id)
        .unwrap_or_else(new_request_id);
    let method = req.method().to_string();
    let probe = is_probe(req.path());
    let outcome = REQUEST_ID.scope(request_id.clone(), next.call(req)).await;
    let elapsed = started.elapsed();
    match outcome {
        Ok(mut response) => {
            let route = route_pattern(response.request());
            let status = response.status().as_u16();
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            crate::metrics::global().observe_request(&method, &route, status, elapsed);
            let ms = elapsed.as_secs_f64() * 1000.0;
            if probe {
                tracing::debug!(%request_id, %method, %route, status, ms, "request");
            } else if status >= 500 {
                tracing::warn!(%request_id, %method, %route, status, ms, "request");
            } else {
                tracing::info!(%request_id, %method, %route, status, ms, "request");
            }
            Ok(response)
        }
        Err(error) => {
            tracing::warn!(%request_id, %method, error = %error, "request failed before a response");
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_ids_are_accepted_only_when_sane() {
        let ok = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(valid_incoming_id(&ok).as_deref(), Some("abc-123_x.y"));
        for bad in ["", "has space", "quote\"", &"x".repeat(65)] {
            let v = HeaderValue::from_str(bad).expect("header");
            assert!(valid_incoming_id(&v).is_none(), "{bad:?}");
        }
        assert_eq!(new_request_id().len(), 24);
    }
}
