//! The web UI: files under `assets/`, embedded in the binary at build time and served with ETags.
//!
//! - `/assets/<path>` serves `assets/<path>`; `index.html` is served for `/` and for every client route
//!   (any GET/HEAD path outside `/api`, `/assets` and the probes whose last segment has no dot), so deep
//!   links work with History API routing.
//! - Every file carries a strong ETag (its SHA-256) and `Cache-Control: no-cache`: browsers revalidate
//!   and get `304 Not Modified` until an upgrade changes the file.
//! - Anything else that matches no route gets the JSON `route_not_found` error.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::error::{ApiError, Code};

#[derive(RustEmbed)]
#[folder = "assets/"]
#[exclude = "*.sh"]
#[exclude = "*.md"]
#[exclude = "*SHA256SUMS"]
struct Assets;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource("/assets/{path:.*}").route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(asset),
        ),
    );
}

async fn asset(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = path.into_inner();
    if path == "index.html" {
        return Ok(serve_file(&req, "index.html").unwrap_or_else(|| not_found(&req)));
    }
    serve_file(&req, &path).ok_or_else(|| not_found_error(&req))
}

fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = match mime.essence_str() {
        "application/javascript" => "text/javascript",
        other => other,
    };
    if essence.starts_with("text/") || essence == "application/json" || essence == "image/svg+xml" {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_string()
    }
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn serve_file(req: &HttpRequest, path: &str) -> Option<HttpResponse> {
    let file = Assets::get(path)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let cache = HeaderValue::from_static("no-cache");
    if etag_matches(req, &etag) {
        return Some(
            HttpResponse::NotModified()
                .insert_header((header::ETAG, etag))
                .insert_header((header::CACHE_CONTROL, cache))
                .finish(),
        );
    }
    Some(
        HttpResponse::Ok()
            .content_type(content_type(path))
            .insert_header((header::ETAG, etag))
            .insert_header((header::CACHE_CONTROL, cache))
            .body(file.data.into_owned()),
    )
}

fn not_found_error(req: &HttpRequest) -> ApiError {
    ApiError::new(
        Code::RouteNotFound,
        format!("no file or route matches {}", req.path()),
    )
}

fn not_found(req: &HttpRequest) -> HttpResponse {
    actix_web::ResponseError::error_response(&not_found_error(req))
}

fn is_client_route(path: &str) -> bool {
    let reserved = ["/api", "/assets", "/healthz", "/readyz", "/metrics"];
    let under_reserved = reserved
        .iter()
        .any(|r| path == *r || path.starts_with(&format!("{r}/")));
    let last = path.rsplit('/').next().unwrap_or("");
    !under_reserved && !last.contains('.')
}

/// The default service: the SPA shell for client routes, JSON 404 for everything else.
pub async fn fallback(req: HttpRequest) -> HttpResponse {
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    if readable && is_client_route(req.path()) {
        if let Some(page) = serve_file(&req, "index.html") {
            return page;
        }
    }
    if req.path().starts_with("/api/") || req.path() == "/api" {
        return actix_web::ResponseError::error_response(&crate::http::route_not_found(&req));
    }
    not_found(&req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_routes_exclude_api_assets_probes_and_files() {
        for yes in [
            "/",
            "/tenants",
            "/api-docs",
            "/tenants/acme/settings",
            "/login",
        ] {
            assert!(is_client_route(yes), "{yes}");
        }
        for no in [
            "/api",
            "/api/v1/x",
            "/assets/app.js",
            "/healthz",
            "/favicon.ico",
            "/x/y.png",
        ] {
            assert!(!is_client_route(no), "{no}");
        }
    }

    #[test]
    fn the_shell_is_embedded() {
        assert!(
            Assets::get("index.html").is_some(),
            "assets/index.html must exist"
        );
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
    }
}
