//! The JSON API: one module per resource, mounted here in one route table.
//!
//! Extractor failures (bad JSON, oversized bodies, bad path or query parameters) are turned into the
//! house error shape by the handlers registered in [`extractor_configs`]; unknown `/api` routes and wrong
//! methods answer JSON too. Handlers stay thin: they extract, call the domain, and serialise.

pub mod admin_tenants;
pub mod api_keys;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod datasets;
pub mod directories;
pub mod health;
pub mod invitations;
pub mod license;
pub mod openai;
pub mod openapi;
pub mod providers;
pub mod system;
pub mod tenants;
pub mod usage;
pub mod users;

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::{web, HttpRequest};

use crate::error::{ApiError, Code};

/// Mounts every route of the API and the probes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Everything of one tenant: the caller and its role there are resolved before any other extractor
    // (a body that fails to parse must not answer before "no such tenant" does). Mounted first: it is
    // where API traffic goes, and actix tries routes in order (each route with a `{param}` is a regex
    // match). No other route starts with `/api/v1/tenants/`.
    cfg.service(
        web::scope("/api/v1/tenants/{tenant}")
            .wrap(actix_web::middleware::from_fn(
                crate::tenancy::extract::resolve_tenant,
            ))
            .configure(tenants::configure_tenant_scope)
            .configure(api_keys::configure_tenant_scope)
            .configure(audit::configure_tenant_scope)
            .configure(invitations::configure_tenant_scope)
            .configure(usage::configure_tenant_scope)
            .configure(datasets::configure_tenant_scope)
            .configure(apps::configure_tenant_scope)
            .default_service(web::to(|req: HttpRequest| async move {
                Err::<actix_web::HttpResponse, _>(route_not_found(&req))
            })),
    );
    // The OpenAI-compatible API: the same tenant middleware, with the tenant taken from the API key
    // (or the Enclave-Tenant header of a signed-in person).
    cfg.service(
        web::scope("/v1")
            .wrap(actix_web::middleware::from_fn(
                crate::tenancy::extract::resolve_tenant,
            ))
            .configure(openai::configure_scope)
            .default_service(web::to(|req: HttpRequest| async move {
                Err::<actix_web::HttpResponse, _>(route_not_found(&req))
            })),
    );
    health::configure(cfg);
    openapi::configure(cfg);
    system::configure(cfg);
    tenants::configure(cfg);
    auth::configure(cfg);
    users::configure(cfg);
    invitations::configure(cfg);
    admin_tenants::configure(cfg);
    audit::configure(cfg);
    license::configure(cfg);
    usage::configure(cfg);
    directories::configure(cfg);
    providers::configure(cfg);
    backups::configure(cfg);
}

/// A resource whose unsupported methods answer `405` in the house error shape.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::new(
        Code::MethodNotAllowed,
        format!("{} is not supported on {}", req.method(), req.path()),
    ))
}

/// The answer for a path under `/api` that matches no route.
pub fn route_not_found(req: &HttpRequest) -> ApiError {
    ApiError::new(
        Code::RouteNotFound,
        format!("no route matches {} {}", req.method(), req.path()),
    )
}

fn payload_error(e: &PayloadError, limit: usize) -> ApiError {
    match e {
        PayloadError::Overflow => too_large(limit),
        other => ApiError::new(
            Code::InvalidRequest,
            format!("the request body could not be read: {other}"),
        ),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// JSON, path and query extractor settings with error handlers that answer in the house shape.
pub fn extractor_configs(
    max_body_bytes: usize,
) -> (
    web::JsonConfig,
    web::PayloadConfig,
    web::PathConfig,
    web::QueryConfig,
) {
    let json = web::JsonConfig::default()
        .limit(max_body_bytes)
        .error_handler(move |e, _req| {
            let api = match &e {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => too_large(max_body_bytes),
                JsonPayloadError::ContentType => ApiError::new(
                    Code::UnsupportedMediaType,
                    "the request body must be JSON with Content-Type: application/json",
                ),
                JsonPayloadError::Deserialize(inner) => ApiError::new(
                    Code::MalformedJson,
                    format!("the JSON body is invalid: {inner}"),
                ),
                JsonPayloadError::Payload(inner) => payload_error(inner, max_body_bytes),
                other => ApiError::new(
                    Code::MalformedJson,
                    format!("the JSON body is invalid: {other}"),
                ),
            };
            api.into()
        });
    let payload = web::PayloadConfig::new(max_body_bytes);
    let path = web::PathConfig::default().error_handler(|e: PathError, _req| {
        ApiError::new(
            Code::InvalidParameter,
            format!("invalid path parameter: {e}"),
        )
        .into()
    });
    let query = web::QueryConfig::default().error_handler(|e: QueryPayloadError, _req| {
        ApiError::new(Code::InvalidParameter, format!("invalid query string: {e}")).into()
    });
    (json, payload, path, query)
}
