//! Knowledge bases over HTTP: datasets, document uploads (multipart), chunk previews, ingestion jobs
//! and search (docs/knowledge.md). Viewers (keys: `read` or `datasets:read`) read; editors (keys:
//! `write` or `datasets:write`) change.

use std::collections::{HashMap, HashSet};

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::audit::{Actor, Event};
use crate::db::run_blocking;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::ClientInfo;
use crate::identity::Action;
use crate::knowledge::extract::ExtractLimits;
use crate::knowledge::files::Incoming;
use crate::knowledge::ingest::ModelTokens;
use crate::knowledge::search::{self, Hit, Prepared, SearchRequest};
use crate::knowledge::store::{self, NewDataset, NewDocument};
use crate::knowledge::{
    ChunkSettings, Dataset, Document, DocumentStatus, Job, KnowledgeError, Segment,
};
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;
use crate::usage::Metric;

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/datasets")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/datasets/search").route(web::post().to(search_datasets)))
    .service(
        super::resource("/datasets/{dataset}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/datasets/{dataset}/preview").route(web::post().to(preview)))
    .service(
        super::resource("/datasets/{dataset}/documents")
            .route(web::get().to(list_documents))
            .route(web::post().to(upload)),
    )
    .service(
        super::resource("/datasets/{dataset}/documents/{document}")
            .route(web::get().to(get_document))
            .route(web::delete().to(delete_document)),
    )
    .service(
        super::resource("/datasets/{dataset}/documents/{document}/file")
            .route(web::get().to(download)),
    )
    .service(
        super::resource("/datasets/{dataset}/documents/{document}/segments")
            .route(web::get().to(list_segments)),
    )
    .service(
        super::resource("/datasets/{dataset}/documents/{document}/retry")
            .route(web::post().to(retry)),
    )
    .service(
        super::resource("/datasets/{dataset}/documents/{document}/cancel")
            .route(web::post().to(cancel)),
    )
    .service(super::resource("/ingest-jobs").route(web::get().to(list_jobs)))
    .service(super::resource("/ingest-jobs/{job}").route(web::get().to(get_job)))
    .service(super::resource("/ingest-jobs/{job}/cancel").route(web::post().to(cancel_job)));
}

/// The datasets of a tenant.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DatasetList {
    pub datasets: Vec<Dataset>,
}

/// A new dataset.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// An installed embedding model (default: `inference.default_embedding_model`).
    pub embedding_model: Option<String>,
    pub chunking: Option<ChunkSettings>,
}

/// Changes to a dataset.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDataset {
    pub name: Option<String>,
    pub description: Option<String>,
    pub chunking: Option<ChunkSettings>,
}

fn clean_name(name: &str) -> Result<String, KnowledgeError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(KnowledgeError::Invalid(
            "name must be 1 to 100 characters, without control characters".into(),
        ));
    }
    Ok(name.to_string())
}

fn clean_description(text: &str) -> Result<String, KnowledgeError> {
    if text.chars().count() > 2000 {
        return Err(KnowledgeError::Invalid(
            "description must be at most 2000 characters".into(),
        ));
    }
    Ok(text.trim().to_string())
}

/// The embedding model's input limit (tokens, special ones included).
fn model_max_tokens(state: &AppState, name: &str) -> Result<usize, ApiError> {
    let model = state
        .inference
        .embedding_model(Some(name))
        .map_err(ApiError::from)?;
    Ok(model.max_tokens())
}

/// Lists the tenant's knowledge bases.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/datasets", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, body = DatasetList)))]
pub async fn list(tenant: TenantCtx) -> ApiResult<web::Json<DatasetList>> {
    tenant.require_datasets(Action::Read)?;
    let datasets = tenant
        .run(|db| db.read(store::list_datasets).map_err(KnowledgeError::from))
        .await?;
    Ok(web::Json(DatasetList { datasets }))
}

/// Creates a knowledge base.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id")), request_body = CreateDataset,
    responses((status = 201, body = Dataset),
        (status = 400, body = crate::http::openapi::ErrorResponse),
        (status = 409, description = "the name is taken", body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    body: web::Json<CreateDataset>,
) -> ApiResult<HttpResponse> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let body = body.into_inner();
    let name = clean_name(&body.name)?;
    let description = clean_description(&body.description)?;
    let model = body
        .embedding_model
        .unwrap_or_else(|| state.config.inference.default_embedding_model.clone());
    let chunking = body.chunking.unwrap_or_default();
    chunking.validate(model_max_tokens(&state, &model)?)?;
    let actor = Actor::of(&tenant.caller, &client);
    let created_by = crate::usage::gate::principal(&tenant);
    let tenant_id = tenant.id().to_string();
    let dataset = tenant
        .run(move |db| {
            db.write(|tx| {
                let dataset = store::insert_dataset(
                    tx,
                    &NewDataset {
                        name: &name,
                        description: &description,
                        embedding_model: &model,
                        chunking,
                        created_by: &created_by,
                    },
                )?;
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action: "dataset.create",
                        target: &dataset.id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "name": dataset.name, "embedding_model": dataset.embedding_model }),
                    },
                )?;
                Ok::<_, KnowledgeError>(dataset)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(dataset))
}

/// One knowledge base.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/datasets/{dataset}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id")),
    responses((status = 200, body = Dataset), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn get(
    tenant: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Dataset>> {
    tenant.require_datasets(Action::Read)?;
    let (_, id) = path.into_inner();
    let dataset = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_dataset(&conn, &id)
        })
        .await?;
    Ok(web::Json(dataset))
}

/// Changes a knowledge base's name, description or chunking (for documents added afterwards).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/datasets/{dataset}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id")),
    request_body = UpdateDataset,
    responses((status = 200, body = Dataset), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn update(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateDataset>,
) -> ApiResult<web::Json<Dataset>> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, id) = path.into_inner();
    let body = body.into_inner();
    let name = body.name.as_deref().map(clean_name).transpose()?;
    let description = body
        .description
        .as_deref()
        .map(clean_description)
        .transpose()?;
    let current = {
        let id = id.clone();
        tenant
            .run(move |db| {
                let conn = db.connection()?;
                store::get_dataset(&conn, &id)
            })
            .await?
    };
    if let Some(chunking) = body.chunking {
        chunking.validate(model_max_tokens(&state, &current.embedding_model)?)?;
    }
    let actor = Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
    let dataset = tenant
        .run(move |db| {
            db.write(|tx| {
                let dataset = store::update_dataset(
                    tx,
                    &id,
                    name.as_deref(),
                    description.as_deref(),
                    body.chunking,
                )?;
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action: "dataset.update",
                        target: &id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "name": dataset.name, "chunking": dataset.chunking }),
                    },
                )?;
                Ok::<_, KnowledgeError>(dataset)
            })
        })
        .await?;
    Ok(web::Json(dataset))
}

/// Deletes a knowledge base with its documents, segments, vectors, index entries and files.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/datasets/{dataset}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn delete(
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, id) = path.into_inner();
    let actor = Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
    let knowledge = tenant.handle().knowledge().clone();
    tenant
        .run(move |db| {
            db.write(|tx| {
                let dataset = store::delete_dataset(tx, &id)?;
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action: "dataset.delete",
                        target: &id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "name": dataset.name, "documents": dataset.document_count }),
                    },
                )?;
                Ok::<_, KnowledgeError>(())
            })?;
            // The rows are gone (nothing of it can be found any more); now the derived data.
            knowledge.vectors.forget(&id);
            knowledge.index()?.delete_dataset(&id)?;
            knowledge.files().remove_dataset(&id)?;
            Ok::<_, KnowledgeError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Paging of lists.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A page of documents.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DocumentList {
    pub documents: Vec<Document>,
    pub total: u64,
}

fn page_bounds(page: &Page) -> Result<(u32, u32), KnowledgeError> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(KnowledgeError::Invalid(
            "limit must be between 1 and 500".into(),
        ));
    }
    Ok((limit, page.offset.unwrap_or(0)))
}

/// The documents of a knowledge base, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"), Page),
    responses((status = 200, body = DocumentList), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn list_documents(
    tenant: TenantCtx,
    path: web::Path<(String, String)>,
    query: web::Query<Page>,
) -> ApiResult<web::Json<DocumentList>> {
    tenant.require_datasets(Action::Read)?;
    let (_, dataset_id) = path.into_inner();
    let (limit, offset) = page_bounds(&query)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DocumentStatus::parse(s).ok_or_else(|| {
            KnowledgeError::Invalid(format!(
                "status must be one of queued, parsing, embedding, indexing, ready, failed, cancelled; not {s:?}"
            ))
        })?),
    };
    let (documents, total) = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_dataset(&conn, &dataset_id)?;
            Ok::<_, KnowledgeError>(store::list_documents(
                &conn,
                &dataset_id,
                status,
                limit,
                offset,
            )?)
        })
        .await?;
    Ok(web::Json(DocumentList { documents, total }))
}

/// One document.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents/{document}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"),
        ("document" = String, Path, description = "document id")),
    responses((status = 200, body = Document), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn get_document(
    tenant: TenantCtx,
    path: web::Path<(String, String, String)>,
) -> ApiResult<web::Json<Document>> {
    tenant.require_datasets(Action::Read)?;
    let (_, dataset_id, id) = path.into_inner();
    let document = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_document(&conn, &dataset_id, &id)
        })
        .await?;
    Ok(web::Json(document))
}

/// The original file of a document.
pub async fn download(
    tenant: TenantCtx,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    tenant.require_datasets(Action::Read)?;
    let (_, dataset_id, id) = path.into_inner();
    let knowledge = tenant.handle().knowledge().clone();
    let (document, bytes) = tenant
        .run(move |db| {
            let conn = db.connection()?;
            let document = store::get_document(&conn, &dataset_id, &id)?;
            let path = knowledge.files().path(&dataset_id, &id)?;
            let bytes = std::fs::read(&path)
                .map_err(|e| KnowledgeError::Io(format!("reading {}: {e}", path.display())))?;
            Ok::<_, KnowledgeError>((document, bytes))
        })
        .await?;
    let disposition = actix_web::http::header::ContentDisposition {
        disposition: actix_web::http::header::DispositionType::Attachment,
        parameters: vec![actix_web::http::header::DispositionParam::FilenameExt(
            actix_web::http::header::ExtendedValue {
                charset: actix_web::http::header::Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: document
                    .filename
                    .rsplit('/')
                    .next()
                    .unwrap_or("document")
                    .as_bytes()
                    .to_vec(),
            },
        )],
    };
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(disposition)
        .body(bytes))
}

/// A page of segments.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentList {
    pub segments: Vec<Segment>,
    pub total: u64,
}

/// The segments of a document, in order.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents/{document}/segments", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"),
        ("document" = String, Path, description = "document id"), Page),
    responses((status = 200, body = SegmentList), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn list_segments(
    tenant: TenantCtx,
    path: web::Path<(String, String, String)>,
    query: web::Query<Page>,
) -> ApiResult<web::Json<SegmentList>> {
    tenant.require_datasets(Action::Read)?;
    let (_, dataset_id, id) = path.into_inner();
    let (limit, offset) = page_bounds(&query)?;
    let (segments, total) = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_document(&conn, &dataset_id, &id)?;
            Ok::<_, KnowledgeError>(store::list_segments(&conn, &id, limit, offset)?)
        })
        .await?;
    Ok(web::Json(SegmentList { segments, total }))
}

/// Changes one document's state (retry, cancel) with its audit entry.
async fn document_action(
    state: &AppState,
    tenant: &TenantCtx,
    client: &ClientInfo,
    path: (String, String, String),
    action: &'static str,
) -> ApiResult<Document> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, dataset_id, id) = path;
    let actor = Actor::of(&tenant.caller, client);
    let tenant_id = tenant.id().to_string();
    let document = tenant
        .run(move |db| {
            db.write(|tx| {
                let document = match action {
                    "document.retry" => store::requeue(tx, &dataset_id, &id)?,
                    _ => store::cancel(tx, &dataset_id, &id)?,
                };
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action,
                        target: &id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "dataset": dataset_id, "filename": document.filename }),
                    },
                )?;
                Ok::<_, KnowledgeError>(document)
            })
        })
        .await?;
    state.ingest.wake(tenant.id());
    Ok(document)
}

/// Queues a failed or cancelled document again.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents/{document}/retry", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"),
        ("document" = String, Path, description = "document id")),
    responses((status = 202, body = Document), (status = 409, body = crate::http::openapi::ErrorResponse)))]
pub async fn retry(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let document = document_action(
        &state,
        &tenant,
        &client,
        path.into_inner(),
        "document.retry",
    )
    .await?;
    Ok(HttpResponse::Accepted().json(document))
}

/// Cancels a document still being ingested.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents/{document}/cancel", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"),
        ("document" = String, Path, description = "document id")),
    responses((status = 200, body = Document), (status = 409, body = crate::http::openapi::ErrorResponse)))]
pub async fn cancel(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<web::Json<Document>> {
    let document = document_action(
        &state,
        &tenant,
        &client,
        path.into_inner(),
        "document.cancel",
    )
    .await?;
    Ok(web::Json(document))
}

/// Deletes a document: its segments, vectors, index entries and file.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents/{document}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id"),
        ("document" = String, Path, description = "document id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn delete_document(
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, dataset_id, id) = path.into_inner();
    let actor = Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
    let knowledge = tenant.handle().knowledge().clone();
    tenant
        .run(move |db| {
            let document = db.write(|tx| {
                let document = store::delete_document(tx, &dataset_id, &id)?;
                if let Some(job) = &document.job_id {
                    store::finish_job_if_done(tx, job)?;
                }
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action: "document.delete",
                        target: &id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "dataset": dataset_id, "filename": document.filename, "size_bytes": document.size_bytes }),
                    },
                )?;
                Ok::<_, KnowledgeError>(document)
            })?;
            knowledge.index()?.delete_document(&document.id)?;
            knowledge.files().remove(&dataset_id, &document.id)?;
            Ok::<_, KnowledgeError>(())
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What happened to one uploaded file.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UploadResult {
    pub filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Document>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::knowledge::DocumentError>,
}

/// The answer to an upload.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UploadResponse {
    /// The ingestion job of the accepted files (none when every file was refused).
    pub job: Option<Job>,
    pub results: Vec<UploadResult>,
}

fn refused(filename: &str, code: &str, message: String) -> UploadResult {
    UploadResult {
        filename: filename.to_string(),
        document: None,
        error: Some(crate::knowledge::DocumentError {
            code: code.into(),
            message,
        }),
    }
}

/// A file name as shown (folder uploads keep their relative path), without control characters.
fn clean_filename(raw: Option<&str>) -> String {
    let name: String = raw
        .unwrap_or("")
        .replace('\\', "/")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let name = name.trim().trim_start_matches('/').to_string();
    let name: String = name.chars().take(255).collect();
    if name.is_empty() {
        "upload".into()
    } else {
        name
    }
}

fn title_from_filename(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ => base.to_string(),
    }
}

fn multipart_error(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::new(
        Code::InvalidRequest,
        format!("the upload is not valid multipart/form-data: {e}"),
    )
}

/// Bytes buffered in memory before a write to the upload's file.
const WRITE_BUFFER: usize = 1024 * 1024;
/// The largest non-file part (the chunking settings).
const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Receives one file part into `incoming`; `Ok(false)` when it exceeded `max_bytes` (the rest of the
/// part is read and thrown away).
async fn receive_file(
    field: &mut actix_multipart::Field,
    mut incoming: Incoming,
    max_bytes: u64,
) -> ApiResult<(Option<Incoming>, u64)> {
    let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut received: u64 = 0;
    let mut too_large = false;
    while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
        received += chunk.len() as u64;
        if too_large {
            continue;
        }
        if received > max_bytes {
            too_large = true;
            buffer.clear();
            continue;
        }
        buffer.extend_from_slice(&chunk);
        if buffer.len() >= WRITE_BUFFER {
            let data = std::mem::take(&mut buffer);
            incoming = run_blocking(move || {
                incoming.write(&data)?;
                Ok::<_, KnowledgeError>(incoming)
            })
            .await?;
        }
    }
    if too_large {
        return Ok((None, received));
    }
    let incoming = run_blocking(move || {
        incoming.write(&buffer)?;
        Ok::<_, KnowledgeError>(incoming)
    })
    .await?;
    Ok((Some(incoming), received))
}

async fn read_small_field(field: &mut actix_multipart::Field) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::new(
                Code::PayloadTooLarge,
                format!("a form field is larger than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn parse_chunking(bytes: &[u8]) -> ApiResult<ChunkSettings> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidRequest,
            format!("the chunking part must be JSON like {{\"max_tokens\": 200, \"overlap_tokens\": 32}}: {e}"),
        )
    })
}

/// How much more a tenant may store: the tenant's own `storage_bytes` quota and the licence's
/// `storage_gb` for the whole installation. `None`: no limit.
struct StorageBudget {
    tenant_left: Option<u64>,
    instance_left: Option<u64>,
}

impl StorageBudget {
    fn take(&mut self, bytes: u64) -> Result<(), String> {
        for (left, what) in [
            (&mut self.tenant_left, "the tenant's storage quota"),
            (&mut self.instance_left, "the licence's storage_gb"),
        ] {
            if let Some(left) = left {
                if bytes > *left {
                    return Err(format!(
                        "storing {bytes} more bytes would pass {what} ({} bytes left)",
                        *left
                    ));
                }
            }
        }
        for left in [&mut self.tenant_left, &mut self.instance_left]
            .into_iter()
            .flatten()
        {
            *left -= bytes;
        }
        Ok(())
    }
}

async fn storage_budget(state: &AppState, tenant: &TenantCtx) -> ApiResult<StorageBudget> {
    // The tenant's own storage_bytes quota (the licence has no monthly storage limit: its
    // storage_gb is checked below, for the whole installation).
    let own = crate::usage::gate::quota_of(state, tenant, Metric::StorageBytes).await?;
    let licence_gb = state
        .license
        .current()
        .evaluation
        .entitlements
        .limits
        .storage_gb;
    let tenants_dir = state
        .config
        .storage
        .data_dir
        .join(crate::tenancy::TENANTS_DIR);
    let (stored, instance_bytes) = tenant
        .run(move |db| {
            let stored = db.read(store::stored_bytes)?;
            let instance = match licence_gb {
                Some(_) => crate::license::manager::dir_size(&tenants_dir),
                None => 0,
            };
            Ok::<_, KnowledgeError>((stored, instance))
        })
        .await?;
    Ok(StorageBudget {
        tenant_left: own.map(|q| q.saturating_sub(stored)),
        instance_left: licence_gb.map(|gb| (gb << 30).saturating_sub(instance_bytes)),
    })
}

/// Uploads documents (multipart parts named `files`) into a knowledge base and queues them.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/documents", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id")),
    request_body(content_type = "multipart/form-data", description = "parts `files` (one per file) and optionally `chunking` (JSON)"),
    responses((status = 202, body = UploadResponse), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn upload(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    mut payload: Multipart,
) -> ApiResult<HttpResponse> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, dataset_id) = path.into_inner();
    let dataset = {
        let id = dataset_id.clone();
        tenant
            .run(move |db| {
                let conn = db.connection()?;
                store::get_dataset(&conn, &id)
            })
            .await?
    };
    let limits = state.config.knowledge.clone();
    let mut budget = storage_budget(&state, &tenant).await?;
    let created_by = crate::usage::gate::principal(&tenant);
    let actor = Actor::of(&tenant.caller, &client);
    let mut chunking = dataset.chunking;
    let mut job_id: Option<String> = None;
    let mut results = Vec::new();
    let mut files_seen = 0usize;
    while let Some(mut field) = payload.try_next().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "chunking" => {
                let bytes = read_small_field(&mut field).await?;
                let wanted = parse_chunking(&bytes)?;
                wanted.validate(model_max_tokens(&state, &dataset.embedding_model)?)?;
                chunking = wanted;
            }
            "files" | "file" => {
                let filename =
                    clean_filename(field.content_disposition().and_then(|cd| cd.get_filename()));
                files_seen += 1;
                if files_seen > limits.max_files_per_upload {
                    while field.try_next().await.map_err(multipart_error)?.is_some() {}
                    results.push(refused(
                        &filename,
                        "too_many_files",
                        format!(
                            "one upload takes at most {} files (knowledge.max_files_per_upload)",
                            limits.max_files_per_upload
                        ),
                    ));
                    continue;
                }
                let incoming = run_blocking({
                    let files = tenant.handle().knowledge().files();
                    move || files.incoming()
                })
                .await?;
                let (incoming, received) =
                    receive_file(&mut field, incoming, limits.max_file_bytes).await?;
                let Some(mut incoming) = incoming else {
                    results.push(refused(
                        &filename,
                        "file_too_large",
                        format!(
                            "the file is {received} bytes; the limit is {} bytes (knowledge.max_file_bytes)",
                            limits.max_file_bytes
                        ),
                    ));
                    continue;
                };
                if let Err(message) = budget.take(received) {
                    results.push(refused(&filename, "quota_exceeded", message));
                    continue;
                }
                let checksum = {
                    let (done, checksum) = run_blocking(move || {
                        let checksum = incoming.finish()?;
                        Ok::<_, KnowledgeError>((incoming, checksum))
                    })
                    .await?;
                    incoming = done;
                    checksum
                };
                let tenant_id = tenant.id().to_string();
                let dataset_id2 = dataset_id.clone();
                let created_by2 = created_by.clone();
                let actor2 = actor.clone();
                let filename2 = filename.clone();
                let files2 = tenant.handle().knowledge().files();
                let existing_job = job_id.clone();
                let outcome = tenant
                    .run(move |db| {
                        db.write(|tx| {
                            if let Some(existing) =
                                store::find_by_checksum(tx, &dataset_id2, &checksum)?
                            {
                                return Ok::<_, KnowledgeError>(Err(existing));
                            }
                            let job = match existing_job {
                                Some(job) => job,
                                None => store::insert_job(tx, &dataset_id2, &created_by2)?,
                            };
                            let id = crate::knowledge::new_id();
                            let document = store::insert_document(
                                tx,
                                &NewDocument {
                                    id: &id,
                                    dataset_id: &dataset_id2,
                                    job_id: &job,
                                    title: &title_from_filename(&filename2),
                                    filename: &filename2,
                                    mime_type: "application/octet-stream",
                                    size_bytes: received,
                                    checksum: &checksum,
                                    chunking,
                                    created_by: &created_by2,
                                },
                            )?;
                            crate::audit::append(
                                tx,
                                &actor2,
                                &Event {
                                    action: "document.upload",
                                    target: &id,
                                    tenant_id: &tenant_id,
                                    success: true,
                                    detail: serde_json::json!({ "dataset": dataset_id2, "filename": filename2, "size_bytes": received, "sha256": checksum }),
                                },
                            )?;
                            // Last: the file moves into place only if everything above worked; a
                            // failed commit after this leaves an orphan file, never a document
                            // without its file.
                            files2.install(&mut incoming, &dataset_id2, &id)?;
                            Ok(Ok((job, document)))
                        })
                    })
                    .await?;
                match outcome {
                    Ok((job, document)) => {
                        job_id = Some(job);
                        results.push(UploadResult {
                            filename,
                            document: Some(document),
                            error: None,
                        });
                    }
                    Err(existing) => {
                        budget.tenant_left = budget.tenant_left.map(|l| l + received);
                        budget.instance_left = budget.instance_left.map(|l| l + received);
                        results.push(refused(
                            &filename,
                            "duplicate_document",
                            format!(
                                "the same file is already in this knowledge base as {:?} (document {})",
                                existing.filename, existing.id
                            ),
                        ));
                    }
                }
            }
            other => {
                let other = other.to_string();
                while field.try_next().await.map_err(multipart_error)?.is_some() {}
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!(
                        "unexpected form part {other:?}: send the files as parts named \"files\""
                    ),
                ));
            }
        }
    }
    if files_seen == 0 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "no file in the upload: send multipart/form-data with one part named \"files\" per file",
        ));
    }
    let job = match job_id {
        Some(id) => {
            state.ingest.wake(tenant.id());
            Some(
                tenant
                    .run(move |db| {
                        let conn = db.connection()?;
                        store::get_job(&conn, &id)
                    })
                    .await?,
            )
        }
        None => None,
    };
    Ok(HttpResponse::Accepted().json(UploadResponse { job, results }))
}

/// One segment of a preview.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewSegment {
    pub position: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub token_count: usize,
    pub page: Option<u32>,
}

/// The segments a file would make.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub title: Option<String>,
    pub mime_type: String,
    pub size_bytes: u64,
    pub segments: Vec<PreviewSegment>,
    pub total_tokens: usize,
}

/// Shows the segments a file would be cut into, without storing anything.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets/{dataset}/preview", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = String, Path, description = "dataset id")),
    request_body(content_type = "multipart/form-data", description = "part `file`, optionally `chunking` (JSON)"),
    responses((status = 200, body = Preview), (status = 422, body = crate::http::openapi::ErrorResponse)))]
pub async fn preview(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    path: web::Path<(String, String)>,
    mut payload: Multipart,
) -> ApiResult<web::Json<Preview>> {
    tenant.require_datasets(Action::Read)?;
    let (_, dataset_id) = path.into_inner();
    let dataset = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_dataset(&conn, &dataset_id)
        })
        .await?;
    let max_bytes = state.config.knowledge.max_file_bytes;
    let mut chunking = dataset.chunking;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(mut field) = payload.try_next().await.map_err(multipart_error)? {
        match field.name().unwrap_or("") {
            "chunking" => chunking = parse_chunking(&read_small_field(&mut field).await?)?,
            "file" | "files" if file.is_none() => {
                let filename =
                    clean_filename(field.content_disposition().and_then(|cd| cd.get_filename()));
                let mut bytes = Vec::new();
                while let Some(chunk) = field.try_next().await.map_err(multipart_error)? {
                    if (bytes.len() + chunk.len()) as u64 > max_bytes {
                        return Err(ApiError::new(
                            Code::PayloadTooLarge,
                            format!("the file is larger than {max_bytes} bytes (knowledge.max_file_bytes)"),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((filename, bytes));
            }
            _ => while field.try_next().await.map_err(multipart_error)?.is_some() {},
        }
    }
    let Some((filename, bytes)) = file else {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "no file: send multipart/form-data with a part named \"file\"",
        ));
    };
    let model = state
        .inference
        .embedding_model(Some(&dataset.embedding_model))
        .map_err(ApiError::from)?;
    chunking.validate(model.max_tokens())?;
    let limits = ExtractLimits {
        max_unpacked_bytes: state.config.knowledge.max_unpacked_bytes,
        ..ExtractLimits::default()
    };
    let preview = run_blocking(move || {
        let size_bytes = bytes.len() as u64;
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::knowledge::extract::extract(&bytes, &filename, &limits)
        }));
        let extracted = match parsed {
            Ok(Ok(extracted)) => extracted,
            Ok(Err(e)) => {
                return Err(KnowledgeError::Unreadable {
                    code: e.code(),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(KnowledgeError::Unreadable {
                    code: "corrupt_document",
                    message: "the file could not be read: it looks damaged".into(),
                })
            }
        };
        let chunks =
            crate::knowledge::chunk::chunk(&extracted.blocks, &chunking, &ModelTokens(&model));
        let total_tokens = chunks.iter().map(|c| c.token_count).sum();
        Ok(Preview {
            title: extracted.title,
            mime_type: extracted.format.mime().to_string(),
            size_bytes,
            segments: chunks
                .into_iter()
                .map(|c| PreviewSegment {
                    position: c.position,
                    text: c.text,
                    heading_path: c.heading_path,
                    token_count: c.token_count,
                    page: c.page,
                })
                .collect(),
            total_tokens,
        })
    })
    .await?;
    Ok(web::Json(preview))
}

/// Ingestion jobs.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    pub dataset: Option<String>,
}

/// The newest ingestion jobs (at most 50), optionally of one knowledge base.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/ingest-jobs", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("dataset" = Option<String>, Query, description = "only this dataset's jobs")),
    responses((status = 200, body = JobList)))]
pub async fn list_jobs(
    tenant: TenantCtx,
    query: web::Query<JobFilter>,
) -> ApiResult<web::Json<JobList>> {
    tenant.require_datasets(Action::Read)?;
    let dataset = query.into_inner().dataset;
    let jobs = tenant
        .run(move |db| {
            db.read(|c| store::list_jobs(c, dataset.as_deref()))
                .map_err(KnowledgeError::from)
        })
        .await?;
    Ok(web::Json(JobList { jobs }))
}

/// One ingestion job with its progress.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/ingest-jobs/{job}", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("job" = String, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn get_job(
    tenant: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Job>> {
    tenant.require_datasets(Action::Read)?;
    let (_, id) = path.into_inner();
    let job = tenant
        .run(move |db| {
            let conn = db.connection()?;
            store::get_job(&conn, &id)
        })
        .await?;
    Ok(web::Json(job))
}

/// Cancels the unfinished documents of a job.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/ingest-jobs/{job}/cancel", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id"), ("job" = String, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn cancel_job(
    tenant: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<Job>> {
    tenant.require_datasets(Action::Write)?;
    tenant.ensure_writable()?;
    let (_, id) = path.into_inner();
    let actor = Actor::of(&tenant.caller, &client);
    let tenant_id = tenant.id().to_string();
    let job = tenant
        .run(move |db| {
            db.write(|tx| {
                let job = store::cancel_job(tx, &id)?;
                crate::audit::append(
                    tx,
                    &actor,
                    &Event {
                        action: "ingest_job.cancel",
                        target: &id,
                        tenant_id: &tenant_id,
                        success: true,
                        detail: serde_json::json!({ "dataset": job.dataset_id, "documents_cancelled": job.documents_cancelled }),
                    },
                )?;
                Ok::<_, KnowledgeError>(job)
            })
        })
        .await?;
    Ok(web::Json(job))
}

/// Search results.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub mode: search::SearchMode,
    pub took_ms: u64,
    pub hits: Vec<Hit>,
}

/// Searches one or several knowledge bases by keywords, meaning, or both.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/datasets/search", tag = "knowledge",
    params(("tenant" = String, Path, description = "tenant id")), request_body = SearchRequest,
    responses((status = 200, body = SearchResponse),
        (status = 400, body = crate::http::openapi::ErrorResponse),
        (status = 404, description = "a dataset does not exist", body = crate::http::openapi::ErrorResponse)))]
pub async fn search_datasets(
    state: web::Data<AppState>,
    tenant: TenantCtx,
    body: web::Json<SearchRequest>,
) -> ApiResult<web::Json<SearchResponse>> {
    tenant.require_datasets(Action::Read)?;
    let started = std::time::Instant::now();
    let request = body.into_inner();
    let mode = request.mode;
    let hits = retrieve(&state, &tenant, request).await?;
    Ok(web::Json(SearchResponse {
        mode,
        took_ms: started.elapsed().as_millis() as u64,
        hits,
    }))
}

/// Runs a search of the tenant's knowledge bases (the search API and chat apps): validates it, embeds
/// the query with each dataset's model while the keyword list is collected, and fuses the lists.
pub async fn retrieve(
    state: &AppState,
    tenant: &TenantCtx,
    request: SearchRequest,
) -> ApiResult<Vec<Hit>> {
    request.validate()?;
    let mut request = request;
    let mut seen = HashSet::new();
    request.dataset_ids.retain(|d| seen.insert(d.clone()));

    // Which embedding model each dataset uses (and that they exist).
    let models: HashMap<String, String> = {
        let ids = request.dataset_ids.clone();
        tenant
            .run(move |db| {
                let conn = db.connection()?;
                let mut out = HashMap::new();
                for id in ids {
                    let model = store::embedding_model_of(&conn, &id)?;
                    out.insert(id, model);
                }
                Ok::<_, KnowledgeError>(out)
            })
            .await?
    };
    // The keyword list does not need the query's embedding: it runs on the blocking pool meanwhile.
    let knowledge = tenant.handle().knowledge().clone();
    let terms = crate::knowledge::index::query_terms(&request.query);
    let keyword = {
        let knowledge = knowledge.clone();
        let request = request.clone();
        let terms = terms.clone();
        run_blocking(move || search::keyword_candidates(&knowledge, &request, &terms))
    };
    let embedding = async {
        let mut query_vectors = HashMap::new();
        if !request.mode.uses_vectors() {
            return Ok::<_, ApiError>(query_vectors);
        }
        let mut by_model: HashMap<&str, Vec<&str>> = HashMap::new();
        for (dataset, model) in &models {
            by_model.entry(model).or_default().push(dataset);
        }
        for (model_name, datasets) in by_model {
            let model = state
                .inference
                .embedding_model(Some(model_name))
                .map_err(ApiError::from)?;
            let embedded = state
                .inference
                .embed(model, vec![request.query.clone()])
                .await
                .map_err(ApiError::from)?;
            let vector = embedded
                .into_iter()
                .next()
                .map(|e| e.vector)
                .ok_or_else(|| ApiError::internal("the query was not embedded"))?;
            for dataset in datasets {
                query_vectors.insert(dataset.to_string(), vector.clone());
            }
        }
        Ok(query_vectors)
    };
    let (keyword, query_vectors) = futures_util::future::join(keyword, embedding).await;
    let (keyword, query_vectors) = (keyword?, query_vectors?);
    tenant
        .run(move |db| {
            let conn = db.connection()?;
            let prepared = Prepared {
                terms,
                request: &request,
                query_vectors,
            };
            search::run(&conn, &knowledge, &prepared, keyword)
        })
        .await
}
