//! The one error model of the HTTP API.
//!
//! Every error a client can see has a stable [`Code`] from the catalogue below (documented in
//! `docs/errors.md`, which a test keeps in step). Domain errors (`DbError`, `TenantError`, ...) implement
//! [`ErrorCode`] to choose their code; [`ApiError`] is the only type that becomes an HTTP response, and
//! its `ResponseError` impl is the only place a status code is chosen for an error. Bodies always read
//! `{"error": {"code": "...", "message": "...", "request_id": "..."}}`.
//!
//! What the client sees and what is logged are separate: [`ApiError::internal`] carries a cause that goes
//! to the log with the request id, while the client gets a safe message.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being served, set by the request middleware for the whole handler.
    pub static REQUEST_ID: String;
}

/// The request id of the current request, if called while serving one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($status:ident, $name:literal) ),+ $(,)?) => {
        /// The catalogue of error codes. Names are stable: clients match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )+
        }

        impl Code {
            /// Every code, in catalogue order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The snake_case name clients see in `error.code`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)+ }
            }

            /// The HTTP status that goes with the code.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)+ }
            }
        }
    };
}

error_codes! {
    /// The request is well-formed but a value in it is not acceptable.
    InvalidRequest = (BAD_REQUEST, "invalid_request"),
    /// The body is not valid JSON or does not match the expected shape.
    MalformedJson = (BAD_REQUEST, "malformed_json"),
    /// The body is not JSON (`Content-Type` must be `application/json`).
    UnsupportedMediaType = (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    /// The body is larger than the configured limit.
    PayloadTooLarge = (PAYLOAD_TOO_LARGE, "payload_too_large"),
    /// A query string or path parameter could not be parsed.
    InvalidParameter = (BAD_REQUEST, "invalid_parameter"),
    /// No route matches the path.
    RouteNotFound = (NOT_FOUND, "route_not_found"),
    /// The route exists but not with this method.
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "method_not_allowed"),
    /// The caller is signed in but its role does not allow this.
    Forbidden = (FORBIDDEN, "forbidden"),
    /// Wrong username or password (the message never says which).
    InvalidCredentials = (UNAUTHORIZED, "invalid_credentials"),
    /// No valid session or API key came with the request.
    Unauthenticated = (UNAUTHORIZED, "unauthenticated"),
    /// The session ended (idle or absolute timeout); sign in again.
    SessionExpired = (UNAUTHORIZED, "session_expired"),
    /// The account must choose a new password before doing anything else.
    PasswordChangeRequired = (FORBIDDEN, "password_change_required"),
    /// A cookie-authenticated change came without the session's CSRF token.
    CsrfFailed = (FORBIDDEN, "csrf_failed"),
    /// Too many attempts; retry after `Retry-After` seconds.
    TooManyRequests = (TOO_MANY_REQUESTS, "too_many_requests"),
    /// The signed-in user has no session with this id.
    SessionNotFound = (NOT_FOUND, "session_not_found"),
    /// The new password does not meet the password policy.
    WeakPassword = (BAD_REQUEST, "weak_password"),
    /// An account with this username exists.
    UserExists = (CONFLICT, "user_exists"),
    /// No account has this username.
    UserNotFound = (NOT_FOUND, "user_not_found"),
    /// The API key presented is unknown or malformed.
    InvalidApiKey = (UNAUTHORIZED, "invalid_api_key"),
    /// The API key presented has expired (or its rotation overlap ended).
    ApiKeyExpired = (UNAUTHORIZED, "api_key_expired"),
    /// The API key presented has been revoked.
    ApiKeyRevoked = (UNAUTHORIZED, "api_key_revoked"),
    /// The API key's scopes do not allow this.
    InsufficientScope = (FORBIDDEN, "insufficient_scope"),
    /// No API key with this id in this tenant.
    ApiKeyNotFound = (NOT_FOUND, "api_key_not_found"),
    /// The password was right; the account also needs its second factor (`totp_code`).
    TotpRequired = (UNAUTHORIZED, "totp_required"),
    /// The TOTP or recovery code is wrong, expired or already used.
    InvalidTotp = (UNAUTHORIZED, "invalid_totp"),
    /// The invitation link is unknown, already used or revoked.
    InvitationInvalid = (NOT_FOUND, "invitation_invalid"),
    /// The invitation has expired.
    InvitationExpired = (GONE, "invitation_expired"),
    /// The invitation names another account.
    InvitationNotForYou = (FORBIDDEN, "invitation_not_for_you"),
    /// No tenant has this id.
    TenantNotFound = (NOT_FOUND, "tenant_not_found"),
    /// A tenant with this id already exists.
    TenantExists = (CONFLICT, "tenant_exists"),
    /// The tenant id is not a valid slug.
    InvalidTenantId = (BAD_REQUEST, "invalid_tenant_id"),
    /// The tenant is suspended: it can be read but not changed.
    TenantSuspended = (CONFLICT, "tenant_suspended"),
    /// Too many tenant databases are in use at this instant; retry shortly.
    TenantPoolsExhausted = (SERVICE_UNAVAILABLE, "tenant_pools_exhausted"),
    /// The licence's limit is reached (`details`: limit, current, allowed); existing data is unaffected.
    PlanLimitReached = (FORBIDDEN, "plan_limit_reached"),
    /// The feature is not included in the installation's licence (`details.feature`).
    FeatureNotLicensed = (FORBIDDEN, "feature_not_licensed"),
    /// The licence expired past its grace period: nothing new can be added; reading, export and backup work.
    LicenseRestricted = (FORBIDDEN, "license_restricted"),
    /// The uploaded licence was refused (bad signature, other installation, expired, ...); the previous one stays.
    LicenseInvalid = (BAD_REQUEST, "license_invalid"),
    /// Too many requests a minute for this API key or tenant; see `Retry-After` and `RateLimit-*`.
    RateLimited = (TOO_MANY_REQUESTS, "rate_limited"),
    /// The tenant's monthly quota of a metric is used up (`details`: metric, limit, used); `Retry-After`
    /// says when the month resets.
    QuotaExceeded = (TOO_MANY_REQUESTS, "quota_exceeded"),
    /// No directory (LDAP / Active Directory) server answered, or its service account could not bind.
    DirectoryUnavailable = (SERVICE_UNAVAILABLE, "directory_unavailable"),
    /// The directory account may not use Enclave (not in the required group, disabled, suspended here).
    DirectoryAccessDenied = (FORBIDDEN, "directory_access_denied"),
    /// No directory with this id.
    DirectoryNotFound = (NOT_FOUND, "directory_not_found"),
    /// A synchronisation of this directory is already running.
    DirectorySyncRunning = (CONFLICT, "directory_sync_running"),
    /// No model of that name is installed (`enclave models list` shows them).
    ModelNotFound = (NOT_FOUND, "model_not_found"),
    /// The model is installed but still loading, or it failed to load (the message says which).
    ModelNotReady = (SERVICE_UNAVAILABLE, "model_not_ready"),
    /// Every inference slot and queue place is taken; `Retry-After` says when to retry.
    InferenceBusy = (SERVICE_UNAVAILABLE, "inference_busy"),
    /// The prompt (with the tokens asked for the answer) does not fit the model's context window.
    ContextLengthExceeded = (BAD_REQUEST, "context_length_exceeded"),
    /// The request ran longer than `inference.request_timeout_secs` and was stopped.
    InferenceTimeout = (GATEWAY_TIMEOUT, "inference_timeout"),
    /// The model failed while computing (details in the server log).
    InferenceFailed = (INTERNAL_SERVER_ERROR, "inference_failed"),
    /// No external inference provider with this id.
    ProviderNotFound = (NOT_FOUND, "provider_not_found"),
    /// The external inference provider a model is routed to did not answer usably.
    ProviderUnavailable = (BAD_GATEWAY, "provider_unavailable"),
    /// No knowledge base (dataset) with this id in this tenant.
    DatasetNotFound = (NOT_FOUND, "dataset_not_found"),
    /// A knowledge base with this name already exists in this tenant.
    DatasetExists = (CONFLICT, "dataset_exists"),
    /// No document with this id in this knowledge base.
    DocumentNotFound = (NOT_FOUND, "document_not_found"),
    /// No ingestion job with this id in this tenant.
    IngestJobNotFound = (NOT_FOUND, "ingest_job_not_found"),
    /// The document is not in a state that allows this (retry a ready document, cancel a finished one).
    DocumentStateConflict = (CONFLICT, "document_state_conflict"),
    /// The document cannot be read (`details.document_error`: empty_document, corrupt_document, ...).
    DocumentUnreadable = (UNPROCESSABLE_ENTITY, "document_unreadable"),
    /// No chat app with this id in this tenant (or not one the caller may use).
    AppNotFound = (NOT_FOUND, "app_not_found"),
    /// A chat app with this name already exists in this tenant.
    AppExists = (CONFLICT, "app_exists"),
    /// The chat app is not published: only editors can use it (in debug mode).
    AppNotPublished = (FORBIDDEN, "app_not_published"),
    /// A prompt template uses a variable the app does not define.
    InvalidTemplate = (BAD_REQUEST, "invalid_template"),
    /// No conversation with this id for this app and end user.
    ConversationNotFound = (NOT_FOUND, "conversation_not_found"),
    /// No message with this id in this app.
    MessageNotFound = (NOT_FOUND, "message_not_found"),
    /// No annotation with this id in this app.
    AnnotationNotFound = (NOT_FOUND, "annotation_not_found"),
    /// No end user with this id has used this app.
    EndUserNotFound = (NOT_FOUND, "end_user_not_found"),
    /// No prompt version with this number for this app.
    PromptVersionNotFound = (NOT_FOUND, "prompt_version_not_found"),
    /// No finished backup with this file name in the backup directory.
    BackupNotFound = (NOT_FOUND, "backup_not_found"),
    /// Another backup or restore is running.
    BackupBusy = (CONFLICT, "backup_busy"),
    /// The backup cannot be used: damaged, incomplete, not a backup, newer than this binary, or the passphrase does not open it.
    BackupInvalid = (UNPROCESSABLE_ENTITY, "backup_invalid"),
    /// The server is starting or shutting down.
    NotReady = (SERVICE_UNAVAILABLE, "not_ready"),
    /// The database is busy or unavailable; retry shortly.
    DatabaseUnavailable = (SERVICE_UNAVAILABLE, "database_unavailable"),
    /// The disk is full; writes fail until space is freed.
    StorageFull = (INSUFFICIENT_STORAGE, "storage_full"),
    /// This feature is not available in this version.
    NotImplemented = (NOT_IMPLEMENTED, "not_implemented"),
    /// An unexpected failure; the request id finds the cause in the server log.
    Internal = (INTERNAL_SERVER_ERROR, "internal"),
}

/// Implemented by every domain error so that it can become an [`ApiError`].
pub trait ErrorCode: std::fmt::Display {
    /// The catalogue code for this error.
    fn code(&self) -> Code;
    /// The message the client may see. Defaults to the error's `Display`; internal errors override this
    /// so that paths, SQL and other details stay in the log.
    fn public_message(&self) -> String {
        self.to_string()
    }
    /// Seconds for `Retry-After`, for errors that say when to come back.
    fn retry_after(&self) -> Option<u64> {
        None
    }
    /// Machine-readable facts about the error (`error.details`), e.g. which limit was reached.
    fn details(&self) -> Option<serde_json::Value> {
        None
    }
    /// The request field at fault (`error.param`), when there is one.
    fn param(&self) -> Option<String> {
        None
    }
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// The cause, for the log only.
    pub internal: Option<String>,
    /// Seconds to put in `Retry-After`, for 429/503.
    pub retry_after: Option<u64>,
    /// Extra machine-readable facts, sent as `error.details`.
    pub details: Option<serde_json::Value>,
    /// The request field at fault (`error.param`); boxed to keep the error small.
    pub param: Option<Box<str>>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            internal: None,
            retry_after: None,
            details: None,
            param: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_param(mut self, param: &str) -> Self {
        self.param = Some(param.into());
        self
    }

    /// An unexpected failure: the client sees a generic message, the log gets `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            code: Code::Internal,
            message:
                "an internal error occurred; the request id finds the details in the server log"
                    .into(),
            internal: Some(cause.to_string()),
            retry_after: None,
            details: None,
            param: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl<E: ErrorCode> From<E> for ApiError {
    fn from(e: E) -> Self {
        let code = e.code();
        let mut api = ApiError::new(code, e.public_message());
        if code == Code::Internal || code.status().is_server_error() {
            api.internal = Some(e.to_string());
        }
        api.details = e.details();
        if let Some(param) = e.param() {
            api = api.with_param(&param);
        }
        api.retry_after = e
            .retry_after()
            .or_else(|| (code.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
        api
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    /// OpenAI's error class, so OpenAI clients (which read `type`) understand every error.
    #[serde(rename = "type")]
    kind: &'static str,
    /// OpenAI's `param`: the request field at fault, when one is.
    param: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = current_request_id();
        if let Some(cause) = &self.internal {
            tracing::error!(
                code = self.code.name(),
                request_id = request_id.as_deref().unwrap_or("-"),
                cause = %cause,
                "request failed"
            );
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        response.json(ErrorBody {
            error: ErrorDetail {
                code: self.code.name(),
                message: &self.message,
                kind: openai_type(self.code),
                param: self.param.as_deref(),
                request_id,
                details: self.details.as_ref(),
            },
        })
    }
}

/// The OpenAI error `type` for a code (what OpenAI's clients switch on).
fn openai_type(code: Code) -> &'static str {
    match code {
        Code::QuotaExceeded => "insufficient_quota",
        Code::RateLimited => "rate_limit_error",
        _ => match code.status().as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        },
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_documented_in_docs_errors_md() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md"))
            .expect("docs/errors.md exists");
        for code in Code::ALL {
            let row = format!("| `{}` | {} |", code.name(), code.status().as_u16());
            assert!(
                docs.contains(&row),
                "docs/errors.md lacks the row starting {row:?}"
            );
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let name = code.name();
            assert!(seen.insert(name), "duplicate {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
