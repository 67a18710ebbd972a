//! The OpenAPI 3 description of the JSON API, generated from the handlers' annotations and served at
//! `/api/openapi.json` (the web UI's API page renders it).

use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::OpenApi;

/// The error body every failing call returns.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// Details of an error; `code` is from the catalogue in docs/errors.md.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "tenant_not_found")]
    pub code: String,
    #[schema(example = "tenant acme does not exist")]
    pub message: String,
    /// OpenAI's error class (`invalid_request_error`, `authentication_error`, ...).
    #[serde(rename = "type")]
    #[schema(example = "not_found_error")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    #[schema(example = "6f1c2a9e0b7d4c3a5e8f1a2b")]
    pub request_id: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Enclave API",
        description = "The JSON API of Enclave. The web UI uses the same API. Errors always have the shape \
            {\"error\": {\"code\", \"message\", \"type\", \"param\", \"request_id\"}} (also OpenAI's); codes are listed in docs/errors.md.",
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::system::info,
        super::system::models,
        super::license::status,
        super::license::show,
        super::license::install,
        super::license::remove,
        super::license::activation_request,
        super::license::usage_report,
        super::api_keys::set_rate_limit,
        super::usage::series,
        super::usage::quotas,
        super::usage::set_quotas,
        super::usage::overview,
        super::usage::set_rate_limit,
        super::usage::set_alert_webhook,
        super::usage::get_prices,
        super::usage::put_prices,
        super::usage::statements,
        super::usage::statement,
        super::tenants::list,
        super::tenants::create,
        super::tenants::show,
        super::tenants::get_settings,
        super::tenants::patch_settings,
        super::admin_tenants::update,
        super::admin_tenants::delete,
        super::admin_tenants::restore,
        super::invitations::create,
        super::invitations::list,
        super::invitations::revoke,
        super::invitations::accept,
        super::tenants::list_members,
        super::tenants::put_member,
        super::tenants::delete_member,
        super::auth::login,
        super::auth::logout,
        super::auth::logout_all,
        super::auth::current_session,
        super::auth::list_sessions,
        super::auth::revoke_session,
        super::auth::change_password,
        super::auth::totp_setup,
        super::auth::totp_enable,
        super::auth::totp_disable,
        super::api_keys::list,
        super::api_keys::create,
        super::api_keys::revoke,
        super::api_keys::rotate,
        super::audit::system_log,
        super::audit::tenant_log,
        super::users::list,
        super::users::create,
        super::users::update,
        super::directories::list,
        super::directories::create,
        super::directories::show,
        super::directories::replace,
        super::directories::remove,
        super::directories::test_connection,
        super::directories::test_login,
        super::directories::sync_now,
        super::directories::sync_history,
        super::openai::models,
        super::openai::chat_completions,
        super::openai::completions,
        super::openai::embeddings,
        super::providers::list,
        super::providers::create,
        super::providers::show,
        super::providers::replace,
        super::providers::remove,
        super::datasets::list,
        super::datasets::create,
        super::datasets::get,
        super::datasets::update,
        super::datasets::delete,
        super::datasets::list_documents,
        super::datasets::upload,
        super::datasets::get_document,
        super::datasets::delete_document,
        super::datasets::list_segments,
        super::datasets::retry,
        super::datasets::cancel,
        super::datasets::preview,
        super::datasets::list_jobs,
        super::datasets::get_job,
        super::datasets::cancel_job,
        super::datasets::search_datasets,
        super::backups::list,
        super::backups::create,
        super::backups::verify,
        super::backups::download,
        super::backups::save_settings,
        super::backups::drill,
        super::apps::list,
        super::apps::create,
        super::apps::get,
        super::apps::update,
        super::apps::delete,
        super::apps::export,
        super::apps::import,
        super::apps::list_versions,
        super::apps::add_version,
        super::apps::prompt_diff,
        super::apps::pin_version,
        super::apps::chat::chat,
        super::apps::conversations::list_conversations,
        super::apps::conversations::list_messages,
        super::apps::conversations::rename_conversation,
        super::apps::conversations::delete_conversation,
        super::apps::conversations::feedback,
        super::apps::logs::logs,
        super::apps::logs::logs_csv,
        super::apps::annotations::list_annotations,
        super::apps::annotations::create_annotation,
        super::apps::annotations::update_annotation,
        super::apps::annotations::delete_annotation,
        super::apps::end_users::list_end_users,
        super::apps::end_users::export_end_user,
        super::apps::end_users::erase_end_user,
    ),
    components(schemas(ErrorResponse, ErrorDetail)),
    tags(
        (name = "probes", description = "Liveness, readiness and metrics for monitoring."),
        (name = "system", description = "The installation as a whole."),
        (name = "usage", description = "Metered usage, monthly quotas and rate limits."),
        (name = "license", description = "The licence: state, limits and usage, offline activation, usage reports."),
        (name = "tenants", description = "Tenants: the unit of isolation, each with its own database."),
        (name = "auth", description = "Sign-in, sessions and passwords. Browser calls that change something send the session's CSRF token in `X-CSRF-Token`."),
        (name = "users", description = "Accounts (system administrators)."),
        (name = "directories", description = "LDAP / Active Directory sign-in: settings, tests, synchronisation (system administrators; licensed feature `ldap`)."),
        (name = "audit", description = "The hash-chained audit log: who did what, from where, with what result. `format=csv` or `jsonl` downloads it."),
        (name = "inference", description = "The OpenAI-compatible API of the local models, under /v1: use an API key with the `inference` scope as the bearer token (OpenAI clients: `base_url=http://host:8080/v1`). A person signed in names the tenant in the `Enclave-Tenant` header."),
        (name = "knowledge", description = "Knowledge bases: datasets of documents, uploads and their ingestion, chunk previews and search (keyword, semantic, hybrid). Keys: `datasets:read` / `datasets:write` (or `read` / `write`). See docs/knowledge.md."),
        (name = "apps", description = "Chat apps: configured, versioned prompts over a model and knowledge bases; chat (blocking or streamed), conversations, feedback, logs, annotations, end users (GDPR). App keys (scope `app:{id}`) reach one app. See docs/apps.md."),
        (name = "backups", description = "Encrypted backups (system administrators): the list, the schedule and the last runs, back up now, verify, download. Restore is a command: `enclave backup restore`. See docs/backup.md."),
        (name = "api-keys", description = "API keys of a tenant, for automation: send `Authorization: Bearer ek_live_…` or `X-API-Key`. A key acts in its own tenant only, with its scopes."),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.info.version = crate::VERSION.to_string();
        doc.to_json().unwrap_or_else(|_| "{}".to_string())
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/api/openapi.json").route(web::get().to(serve)));
}

async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-cache"))
        .body(document())
}
