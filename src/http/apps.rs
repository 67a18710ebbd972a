//! Chat apps over HTTP (docs/apps.md): apps and their prompt versions, export and import,
//! conversations, feedback, the admins' logs, annotations and end users. Answering (`/chat` and the
//! OpenAI-compatible route) is in [`chat`].
//!
//! Who may do what: viewers (keys: `read`) use published apps; an app key (scope `app:{id}`) only its
//! app; editors (keys: `write`) build apps and annotations; admins read everyone's logs and manage end
//! users (GDPR export and erasure).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::apps::store::{self, LogFilter, NewAnnotation, NewApp};
use crate::apps::{
    self, diff, Annotation, App, AppConfig, AppError, Conversation, EndUser, LogEntry, Message,
    Prompt, PromptVersion,
};
use crate::audit::{Actor, Event};
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::{Caller, ClientInfo};
use crate::identity::Action;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

pub mod chat;

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/apps")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/apps/import").route(web::post().to(import)))
    .service(super::resource("/apps/logs").route(web::get().to(logs)))
    .service(super::resource("/apps/logs.csv").route(web::get().to(logs_csv)))
    .service(
        super::resource("/apps/{app}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/apps/{app}/export").route(web::get().to(export)))
    .service(
        super::resource("/apps/{app}/prompt/versions")
            .route(web::get().to(list_versions))
            .route(web::post().to(add_version)),
    )
    .service(super::resource("/apps/{app}/prompt/diff").route(web::get().to(prompt_diff)))
    .service(super::resource("/apps/{app}/prompt/pin").route(web::post().to(pin_version)))
    .service(super::resource("/apps/{app}/chat").route(web::post().to(chat::chat)))
    .service(super::resource("/apps/{app}/conversations").route(web::get().to(list_conversations)))
    .service(
        super::resource("/apps/{app}/conversations/{conversation}")
            .route(web::patch().to(rename_conversation))
            .route(web::delete().to(delete_conversation)),
    )
    .service(
        super::resource("/apps/{app}/conversations/{conversation}/messages")
            .route(web::get().to(list_messages)),
    )
    .service(
        super::resource("/apps/{app}/messages/{message}/feedback").route(web::post().to(feedback)),
    )
    .service(
        super::resource("/apps/{app}/annotations")
            .route(web::get().to(list_annotations))
            .route(web::post().to(create_annotation)),
    )
    .service(
        super::resource("/apps/{app}/annotations/{annotation}")
            .route(web::patch().to(update_annotation))
            .route(web::delete().to(delete_annotation)),
    )
    .service(super::resource("/apps/{app}/end-users").route(web::get().to(list_end_users)))
    .service(
        super::resource("/apps/{app}/end-users/{user}").route(web::delete().to(erase_end_user)),
    )
    .service(
        super::resource("/apps/{app}/end-users/{user}/export")
            .route(web::get().to(export_end_user)),
    );
}

// ---------------------------------------------------------------------------------------------
// Access

/// How the caller reaches an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// May change it and use it unpublished (editors, `write` keys).
    Edit,
    /// May use it when it is published (viewers, `read` keys, the app's own key).
    Use,
}

/// Whether the caller holds an app key for `app_id`.
pub fn has_app_key(ctx: &TenantCtx, app_id: &str) -> bool {
    matches!(&ctx.caller, Caller::Key(key) if key.has_scope(&format!("app:{app_id}")))
}

/// How the caller may reach `app_id`, or why not.
pub fn reach(ctx: &TenantCtx, app_id: &str) -> ApiResult<Reach> {
    if has_app_key(ctx, app_id) {
        return Ok(Reach::Use);
    }
    ctx.require(Action::Read)?;
    Ok(if ctx.require(Action::Write).is_ok() {
        Reach::Edit
    } else {
        Reach::Use
    })
}

/// The app, if the caller may see it: users of an unpublished app get `app_not_found`.
pub async fn visible_app(ctx: &TenantCtx, app_id: &str) -> ApiResult<(App, Reach)> {
    let reach = reach(ctx, app_id)?;
    let id = app_id.to_string();
    let app = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::get_app(&conn, &id)
        })
        .await?;
    if reach == Reach::Use && !app.published {
        return Err(AppError::NotFound(app.id).into());
    }
    Ok((app, reach))
}

/// The end user a request acts for: a signed-in person is always themselves; an API key passes the
/// id of its own user, or is the end user itself.
pub fn end_user(ctx: &TenantCtx, given: Option<&str>) -> ApiResult<String> {
    match &ctx.caller {
        Caller::User(current) => Ok(format!("user:{}", current.user().username)),
        Caller::Key(key) => match given {
            Some(id) => Ok(apps::clean_end_user(id)?),
            None => Ok(format!("key:{}", key.id)),
        },
    }
}

fn require_edit(ctx: &TenantCtx) -> ApiResult<()> {
    ctx.require(Action::Write)?;
    ctx.ensure_writable()?;
    Ok(())
}

fn audit_event<'a>(
    action: &'a str,
    target: &'a str,
    tenant: &'a str,
    detail: serde_json::Value,
) -> Event<'a> {
    Event {
        action,
        target,
        tenant_id: tenant,
        success: true,
        detail,
    }
}

/// Checks a configuration against this installation: values, knowledge bases of this tenant, the model.
async fn check_config(state: &AppState, ctx: &TenantCtx, config: &AppConfig) -> ApiResult<()> {
    config.validate(state.inference.config().max_tokens_limit)?;
    if let Some(model) = config.model.as_deref() {
        let local_chat = state
            .inference
            .models()
            .iter()
            .any(|m| m.name == model && m.kind == crate::models::manifest::ModelKind::Chat);
        let remote = state
            .inference
            .route(Some(model), &state.config.storage.data_dir)
            .is_some();
        if !remote && !local_chat {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("model {model:?} is neither an installed chat model nor one of a configured provider (GET /v1/models lists them); leave it null for the default"),
            )
            .with_param("config.model"));
        }
    }
    let ids = config.dataset_ids.clone();
    ctx.run(move |db| {
        let conn = db.connection()?;
        for id in &ids {
            crate::knowledge::store::get_dataset(&conn, id)
                .map_err(|_| AppError::DatasetNotFound(id.clone()))?;
        }
        Ok::<_, AppError>(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Apps

#[derive(Serialize, utoipa::ToSchema)]
pub struct AppList {
    pub apps: Vec<App>,
}

/// The tenant's apps (viewers and app keys: the published ones they may use).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, body = AppList)))]
pub async fn list(ctx: TenantCtx) -> ApiResult<web::Json<AppList>> {
    let app_keys: Option<Vec<String>> = match &ctx.caller {
        Caller::Key(key) if !key.has_general_scope() => Some(
            key.scopes
                .iter()
                .filter_map(|s| s.strip_prefix("app:").map(str::to_string))
                .collect(),
        ),
        _ => None,
    };
    if app_keys.is_none() {
        ctx.require(Action::Read)?;
    }
    let editor = app_keys.is_none() && ctx.require(Action::Write).is_ok();
    let mut apps = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::list_apps(&conn, !editor)
        })
        .await?;
    if let Some(keys) = app_keys {
        apps.retain(|a| keys.contains(&a.id));
    }
    Ok(web::Json(AppList { apps }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub config: Option<AppConfig>,
    #[serde(default)]
    pub prompt: Option<Prompt>,
}

/// Creates an app (unpublished) with its first prompt version.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id")), request_body = CreateApp,
    responses((status = 201, body = App), (status = 400, body = crate::http::openapi::ErrorResponse),
        (status = 409, body = crate::http::openapi::ErrorResponse)))]
pub async fn create(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    client: ClientInfo,
    body: web::Json<CreateApp>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let body = body.into_inner();
    let name = apps::clean_name(&body.name)?;
    let description = apps::clean_description(&body.description)?;
    let config = body.config.unwrap_or_default();
    let prompt = body.prompt.unwrap_or_default();
    check_config(&state, &ctx, &config).await?;
    prompt.validate(&config.input_names())?;
    let actor = Actor::of(&ctx.caller, &client);
    let created_by = crate::usage::gate::principal(&ctx);
    let tenant_id = ctx.id().to_string();
    let app = ctx
        .run(move |db| {
            db.write(|tx| {
                let id = apps::new_id();
                let app = store::insert_app(
                    tx,
                    &NewApp {
                        id: &id,
                        name: &name,
                        description: &description,
                        config: &config,
                        prompt: &prompt,
                        note: "created",
                        created_by: &created_by,
                    },
                )?;
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.create",
                        &app.id,
                        &tenant_id,
                        serde_json::json!({ "name": app.name }),
                    ),
                )?;
                Ok::<_, AppError>(app)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(app))
}

/// One app (viewers and app keys: only when published).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = App), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn get(ctx: TenantCtx, path: web::Path<(String, String)>) -> ApiResult<web::Json<App>> {
    let (_, id) = path.into_inner();
    let (app, _) = visible_app(&ctx, &id).await?;
    Ok(web::Json(app))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the whole configuration.
    pub config: Option<AppConfig>,
    pub published: Option<bool>,
}

/// Changes an app's name, description, configuration or published state.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    request_body = UpdateApp,
    responses((status = 200, body = App), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn update(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateApp>,
) -> ApiResult<web::Json<App>> {
    require_edit(&ctx)?;
    let (_, id) = path.into_inner();
    let body = body.into_inner();
    let name = body.name.as_deref().map(apps::clean_name).transpose()?;
    let description = body
        .description
        .as_deref()
        .map(apps::clean_description)
        .transpose()?;
    if let Some(config) = &body.config {
        check_config(&state, &ctx, config).await?;
    }
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    let app = ctx
        .run(move |db| {
            db.write(|tx| {
                let old = store::get_app(tx, &id)?;
                let config = body.config.unwrap_or_else(|| old.config.clone());
                // New input variables must still cover what the pinned prompt uses.
                old.prompt.validate(&config.input_names())?;
                let app = store::update_app(
                    tx,
                    &id,
                    name.as_deref().unwrap_or(&old.name),
                    description.as_deref().unwrap_or(&old.description),
                    &config,
                    body.published.unwrap_or(old.published),
                )?;
                let action = match (old.published, app.published) {
                    (false, true) => "app.publish",
                    (true, false) => "app.unpublish",
                    _ => "app.update",
                };
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        action,
                        &app.id,
                        &tenant_id,
                        serde_json::json!({ "name": app.name }),
                    ),
                )?;
                Ok::<_, AppError>(app)
            })
        })
        .await?;
    Ok(web::Json(app))
}

/// Deletes an app with its conversations, messages, annotations and end users.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{app}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn delete(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let (_, id) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    ctx.run(move |db| {
        db.write(|tx| {
            let app = store::delete_app(tx, &id)?;
            crate::audit::append(
                tx,
                &actor,
                &audit_event(
                    "app.delete",
                    &app.id,
                    &tenant_id,
                    serde_json::json!({ "name": app.name }),
                ),
            )?;
            Ok::<_, AppError>(())
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------
// Export and import

/// The file an app is exported to and imported from.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppExport {
    /// Always `enclave-app`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    pub app: ExportedApp,
    #[serde(default)]
    pub datasets: Vec<ExportedDataset>,
    #[serde(default)]
    pub annotations: Vec<ExportedAnnotation>,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedApp {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub config: AppConfig,
    pub prompt: Prompt,
}

#[derive(Serialize, Deserialize, Clone, utoipa::ToSchema)]
pub struct ExportedDataset {
    pub id: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportedAnnotation {
    pub question: String,
    pub answer: String,
}

/// The most annotations an import brings along.
const MAX_IMPORTED_ANNOTATIONS: usize = 1000;

/// The app as a JSON file: settings, pinned prompt, its knowledge bases by id and name, annotations.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/export", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = AppExport)))]
pub async fn export(ctx: TenantCtx, path: web::Path<(String, String)>) -> ApiResult<HttpResponse> {
    ctx.require(Action::Write)?;
    let (_, id) = path.into_inner();
    let file = ctx
        .run(move |db| {
            let conn = db.connection()?;
            let app = store::get_app(&conn, &id)?;
            let mut datasets = Vec::new();
            for dataset_id in &app.config.dataset_ids {
                if let Ok(d) = crate::knowledge::store::get_dataset(&conn, dataset_id) {
                    datasets.push(ExportedDataset {
                        id: d.id,
                        name: d.name,
                    });
                }
            }
            let annotations = store::list_annotations(&conn, &id)?
                .into_iter()
                .map(|a| ExportedAnnotation {
                    question: a.question,
                    answer: a.answer,
                })
                .collect();
            Ok::<_, AppError>(AppExport {
                format: "enclave-app".into(),
                version: 1,
                app: ExportedApp {
                    name: app.name,
                    description: app.description,
                    config: app.config,
                    prompt: app.prompt,
                },
                datasets,
                annotations,
            })
        })
        .await?;
    let slug: String = file
        .app
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}.enclave-app.json\"",
                slug.trim_matches('-')
            ),
        ))
        .json(file))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    pub app: App,
    /// Knowledge bases of the file not found here (by id or name): left out of the app.
    pub unlinked_datasets: Vec<ExportedDataset>,
}

/// Creates a new, unpublished app from an exported file.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/import", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id")), request_body = AppExport,
    responses((status = 201, body = ImportResult), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn import(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    client: ClientInfo,
    body: web::Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let file: AppExport = serde_json::from_value(body.into_inner()).map_err(|e| {
        ApiError::new(
            Code::InvalidRequest,
            format!("this is not an exported app: {e}"),
        )
    })?;
    if file.format != "enclave-app" || file.version != 1 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "this is not an exported app (format enclave-app, version 1)",
        ));
    }
    if file.annotations.len() > MAX_IMPORTED_ANNOTATIONS {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("an import brings at most {MAX_IMPORTED_ANNOTATIONS} annotations"),
        ));
    }
    let base_name = apps::clean_name(&file.app.name)?;
    let description = apps::clean_description(&file.app.description)?;
    // Link knowledge bases by id, else by name; list the others.
    let wanted: Vec<ExportedDataset> = file
        .app
        .config
        .dataset_ids
        .iter()
        .map(|id| {
            file.datasets
                .iter()
                .find(|d| &d.id == id)
                .cloned()
                .unwrap_or(ExportedDataset {
                    id: id.clone(),
                    name: String::new(),
                })
        })
        .collect();
    let (linked, unlinked, name) = {
        let base_name = base_name.clone();
        ctx.run(move |db| {
            let conn = db.connection()?;
            let here = crate::knowledge::store::list_datasets(&conn)?;
            let mut linked = Vec::new();
            let mut unlinked = Vec::new();
            for d in wanted {
                match here.iter().find(|h| h.id == d.id).or_else(|| {
                    here.iter()
                        .find(|h| !d.name.is_empty() && h.name.eq_ignore_ascii_case(&d.name))
                }) {
                    Some(h) => linked.push(h.id.clone()),
                    None => unlinked.push(d),
                }
            }
            let mut name = base_name.clone();
            let mut n = 2;
            while store::name_taken(&conn, &name)? {
                name = format!("{base_name} ({n})");
                n += 1;
            }
            Ok::<_, AppError>((linked, unlinked, name))
        })
        .await?
    };
    let mut config = file.app.config;
    config.dataset_ids = linked;
    check_config(&state, &ctx, &config).await?;
    let prompt = file.app.prompt;
    prompt.validate(&config.input_names())?;
    let mut annotations = Vec::with_capacity(file.annotations.len());
    for a in &file.annotations {
        let (question, answer) = clean_annotation(&a.question, &a.answer)?;
        let (vector, model) = chat::embed_for_annotations(&state, &ctx, &question).await?;
        annotations.push((question, answer, vector, model));
    }
    let actor = Actor::of(&ctx.caller, &client);
    let created_by = crate::usage::gate::principal(&ctx);
    let tenant_id = ctx.id().to_string();
    let unlinked_for_audit = unlinked.len();
    let app = ctx
        .run(move |db| {
            db.write(|tx| {
                let id = apps::new_id();
                let app = store::insert_app(
                    tx,
                    &NewApp {
                        id: &id,
                        name: &name,
                        description: &description,
                        config: &config,
                        prompt: &prompt,
                        note: "imported",
                        created_by: &created_by,
                    },
                )?;
                for (question, answer, vector, model) in &annotations {
                    store::insert_annotation(
                        tx,
                        &app.id,
                        &NewAnnotation {
                            question,
                            answer,
                            vector,
                            embedding_model: model,
                            message_id: None,
                            created_by: &created_by,
                        },
                    )?;
                }
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.import",
                        &app.id,
                        &tenant_id,
                        serde_json::json!({ "name": app.name, "annotations": annotations.len(), "unlinked_datasets": unlinked_for_audit }),
                    ),
                )?;
                Ok::<_, AppError>(app)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(ImportResult {
        app,
        unlinked_datasets: unlinked,
    }))
}

// ---------------------------------------------------------------------------------------------
// Prompt versions

#[derive(Serialize, utoipa::ToSchema)]
pub struct VersionList {
    pub versions: Vec<PromptVersion>,
}

/// The app's prompt versions, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/prompt/versions", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = VersionList)))]
pub async fn list_versions(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<VersionList>> {
    ctx.require(Action::Write)?;
    let (_, id) = path.into_inner();
    let versions = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::list_versions(&conn, &id)
        })
        .await?;
    Ok(web::Json(VersionList { versions }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    pub system: String,
    pub user: String,
    #[serde(default)]
    pub note: String,
}

/// Saves the prompt as a new version and pins it (`invalid_template` for an unknown variable).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/{app}/prompt/versions", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    request_body = NewVersion,
    responses((status = 201, body = PromptVersion), (status = 200, description = "the same text as the pinned version: nothing new", body = PromptVersion),
        (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn add_version(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<NewVersion>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let (_, id) = path.into_inner();
    let body = body.into_inner();
    if body.note.chars().count() > 200 {
        return Err(ApiError::new(
            Code::InvalidRequest,
            "the note must be at most 200 characters",
        )
        .with_param("note"));
    }
    let prompt = Prompt {
        system: body.system,
        user: body.user,
    };
    let actor = Actor::of(&ctx.caller, &client);
    let created_by = crate::usage::gate::principal(&ctx);
    let tenant_id = ctx.id().to_string();
    let (version, created) = ctx
        .run(move |db| {
            db.write(|tx| {
                let app = store::get_app(tx, &id)?;
                prompt.validate(&app.config.input_names())?;
                let (version, created) =
                    store::add_version(tx, &id, &prompt, body.note.trim(), &created_by)?;
                if created {
                    crate::audit::append(
                        tx,
                        &actor,
                        &audit_event(
                            "app.prompt_version",
                            &id,
                            &tenant_id,
                            serde_json::json!({ "version": version.version }),
                        ),
                    )?;
                }
                Ok::<_, AppError>((version, created))
            })
        })
        .await?;
    Ok(if created {
        HttpResponse::Created().json(version)
    } else {
        HttpResponse::Ok().json(version)
    })
}

#[derive(Deserialize)]
pub struct DiffQuery {
    pub from: i64,
    pub to: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PromptDiff {
    pub from: i64,
    pub to: i64,
    pub lines: Vec<diff::DiffLine>,
}

/// The line diff between two prompt versions (system template, then user template).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/prompt/diff", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("from" = i64, Query, description = "older version"), ("to" = i64, Query, description = "newer version")),
    responses((status = 200, body = PromptDiff), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn prompt_diff(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
    query: web::Query<DiffQuery>,
) -> ApiResult<web::Json<PromptDiff>> {
    ctx.require(Action::Write)?;
    let (_, id) = path.into_inner();
    let DiffQuery { from, to } = query.into_inner();
    let (a, b) = ctx
        .run(move |db| {
            let conn = db.connection()?;
            Ok::<_, AppError>((
                store::get_version(&conn, &id, from)?,
                store::get_version(&conn, &id, to)?,
            ))
        })
        .await?;
    let mut lines = diff::lines("system", &a.system, &b.system);
    lines.extend(diff::lines("user", &a.user, &b.user));
    Ok(web::Json(PromptDiff { from, to, lines }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinVersion {
    pub version: i64,
}

/// Makes the app answer with an earlier (or later) version: the rollback.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/{app}/prompt/pin", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    request_body = PinVersion,
    responses((status = 200, body = App), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn pin_version(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<PinVersion>,
) -> ApiResult<web::Json<App>> {
    require_edit(&ctx)?;
    let (_, id) = path.into_inner();
    let version = body.version;
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    let app = ctx
        .run(move |db| {
            db.write(|tx| {
                let app = store::get_app(tx, &id)?;
                let chosen = store::get_version(tx, &id, version)?;
                // The input variables may have changed since that version was written.
                Prompt {
                    system: chosen.system,
                    user: chosen.user,
                }
                .validate(&app.config.input_names())?;
                let app = store::pin_version(tx, &id, version)?;
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.prompt_pin",
                        &id,
                        &tenant_id,
                        serde_json::json!({ "version": version }),
                    ),
                )?;
                Ok::<_, AppError>(app)
            })
        })
        .await?;
    Ok(web::Json(app))
}

// ---------------------------------------------------------------------------------------------
// Conversations and feedback

#[derive(Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
}

/// The caller's conversations with an app (an API key names its end user with `?user=`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/conversations", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("user" = Option<String>, Query, description = "end user (API keys)")),
    responses((status = 200, body = ConversationList)))]
pub async fn list_conversations(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
    query: web::Query<UserQuery>,
) -> ApiResult<web::Json<ConversationList>> {
    let (_, app_id) = path.into_inner();
    visible_app(&ctx, &app_id).await?;
    let user = end_user(&ctx, query.user.as_deref())?;
    let conversations = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::list_conversations(&conn, &app_id, &user)
        })
        .await?;
    Ok(web::Json(ConversationList { conversations }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageList {
    pub messages: Vec<Message>,
}

/// The messages of one of the caller's conversations, oldest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/conversations/{conversation}/messages", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("conversation" = String, Path, description = "conversation id"), ("user" = Option<String>, Query, description = "end user (API keys)")),
    responses((status = 200, body = MessageList), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn list_messages(
    ctx: TenantCtx,
    path: web::Path<(String, String, String)>,
    query: web::Query<UserQuery>,
) -> ApiResult<web::Json<MessageList>> {
    let (_, app_id, conversation) = path.into_inner();
    visible_app(&ctx, &app_id).await?;
    let user = end_user(&ctx, query.user.as_deref())?;
    let messages = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::get_conversation(&conn, &app_id, &conversation, &user)?;
            store::list_messages(&conn, &conversation)
        })
        .await?;
    Ok(web::Json(MessageList { messages }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameConversation {
    pub name: String,
    #[serde(default)]
    pub user: Option<String>,
}

/// Renames one of the caller's conversations.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/apps/{app}/conversations/{conversation}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("conversation" = String, Path, description = "conversation id")),
    request_body = RenameConversation,
    responses((status = 200, body = Conversation), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn rename_conversation(
    ctx: TenantCtx,
    path: web::Path<(String, String, String)>,
    body: web::Json<RenameConversation>,
) -> ApiResult<web::Json<Conversation>> {
    let (_, app_id, id) = path.into_inner();
    visible_app(&ctx, &app_id).await?;
    ctx.ensure_writable()?;
    let body = body.into_inner();
    let user = end_user(&ctx, body.user.as_deref())?;
    let name = body.name.trim().to_string();
    if name.is_empty()
        || name.chars().count() > apps::MAX_CONVERSATION_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!(
                "name must be 1 to {} characters",
                apps::MAX_CONVERSATION_NAME_CHARS
            ),
        )
        .with_param("name"));
    }
    let conversation = ctx
        .run(move |db| db.write(|tx| store::rename_conversation(tx, &app_id, &id, &user, &name)))
        .await?;
    Ok(web::Json(conversation))
}

/// Deletes one of the caller's conversations with its messages.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{app}/conversations/{conversation}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("conversation" = String, Path, description = "conversation id"), ("user" = Option<String>, Query, description = "end user (API keys)")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn delete_conversation(
    ctx: TenantCtx,
    path: web::Path<(String, String, String)>,
    query: web::Query<UserQuery>,
) -> ApiResult<HttpResponse> {
    let (_, app_id, id) = path.into_inner();
    visible_app(&ctx, &app_id).await?;
    ctx.ensure_writable()?;
    let user = end_user(&ctx, query.user.as_deref())?;
    ctx.run(move |db| db.write(|tx| store::delete_conversation(tx, &app_id, &id, &user)))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// `like`, `dislike`, or `null` to take the rating back.
    pub rating: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// Likes or dislikes an answer, with an optional comment.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/{app}/messages/{message}/feedback", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("message" = String, Path, description = "message id")),
    request_body = Feedback,
    responses((status = 200, body = Message), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn feedback(
    ctx: TenantCtx,
    path: web::Path<(String, String, String)>,
    body: web::Json<Feedback>,
) -> ApiResult<web::Json<Message>> {
    let (_, app_id, id) = path.into_inner();
    let (_, reach) = visible_app(&ctx, &app_id).await?;
    ctx.ensure_writable()?;
    let body = body.into_inner();
    let rating = match body.rating.as_deref() {
        None => None,
        Some(r @ ("like" | "dislike")) => Some(r.to_string()),
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!("rating {other:?}: use like, dislike or null"),
            )
            .with_param("rating"))
        }
    };
    let comment = body
        .comment
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > apps::MAX_COMMENT_CHARS)
    {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!(
                "the comment must be at most {} characters",
                apps::MAX_COMMENT_CHARS
            ),
        )
        .with_param("comment"));
    }
    let user = end_user(&ctx, body.user.as_deref())?;
    // Editors giving feedback in the debug preview rate their own messages like anyone else.
    let _ = reach;
    let message = ctx
        .run(move |db| {
            db.write(|tx| {
                store::set_feedback(
                    tx,
                    &app_id,
                    &id,
                    Some(&user),
                    rating.as_deref(),
                    comment.as_deref(),
                )
            })
        })
        .await?;
    Ok(web::Json(message))
}

// ---------------------------------------------------------------------------------------------
// Logs

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub rating: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<i64>,
}

fn is_day(text: &str) -> bool {
    time::Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .is_ok()
}

impl LogQuery {
    fn filter(self, default_limit: usize) -> ApiResult<LogFilter> {
        if let Some(r) = self.rating.as_deref() {
            if !matches!(r, "like" | "dislike" | "none") {
                return Err(
                    ApiError::new(Code::InvalidRequest, "rating is like, dislike or none")
                        .with_param("rating"),
                );
            }
        }
        for (param, day) in [("from", &self.from), ("to", &self.to)] {
            if day.as_deref().is_some_and(|d| !is_day(d)) {
                return Err(ApiError::new(
                    Code::InvalidRequest,
                    format!("{param} is a day: YYYY-MM-DD"),
                )
                .with_param(param));
            }
        }
        Ok(LogFilter {
            app_id: self.app_id.filter(|a| !a.is_empty()),
            rating: self.rating,
            from: self.from,
            to: self.to,
            end_user: self.user.filter(|u| !u.is_empty()),
            limit: self.limit.unwrap_or(default_limit),
            before: self.before,
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogPage {
    pub messages: Vec<LogEntry>,
    /// Pass as `before` for the next (older) page; `null` at the end.
    pub next_before: Option<i64>,
}

/// Everyone's messages with every app, newest first, filtered (admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/logs", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"),
        ("app_id" = Option<String>, Query, description = "one app"), ("rating" = Option<String>, Query, description = "like, dislike or none"),
        ("from" = Option<String>, Query, description = "first day (UTC)"), ("to" = Option<String>, Query, description = "last day (UTC)"),
        ("user" = Option<String>, Query, description = "end user"), ("limit" = Option<usize>, Query, description = "page size (≤ 500)"),
        ("before" = Option<i64>, Query, description = "cursor from next_before")),
    responses((status = 200, body = LogPage)))]
pub async fn logs(ctx: TenantCtx, query: web::Query<LogQuery>) -> ApiResult<web::Json<LogPage>> {
    ctx.require(Action::Manage)?;
    let filter = query.into_inner().filter(50)?;
    let (messages, next_before) = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::logs(&conn, &filter)
        })
        .await?;
    Ok(web::Json(LogPage {
        messages,
        next_before,
    }))
}

/// The same messages as CSV (up to 10,000 per file; page with `before`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/logs.csv", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id")),
    responses((status = 200, content_type = "text/csv", description = "one row per message")))]
pub async fn logs_csv(ctx: TenantCtx, query: web::Query<LogQuery>) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    let mut filter = query.into_inner().filter(10_000)?;
    filter.limit = filter.limit.min(10_000);
    let body = ctx
        .run(move |db| {
            let conn = db.connection()?;
            let mut out = Vec::new();
            let mut before = filter.before;
            let mut left = filter.limit;
            let mut writer = csv::Writer::from_writer(&mut out);
            let header = [
                "created_at",
                "app",
                "end_user",
                "source",
                "conversation_id",
                "message_id",
                "query",
                "answer",
                "status",
                "rating",
                "comment",
                "prompt_tokens",
                "completion_tokens",
                "annotation_id",
                "citations",
            ];
            writer.write_record(header).map_err(ApiError::internal)?;
            loop {
                let page = LogFilter {
                    limit: left.min(500),
                    before,
                    ..filter.clone()
                };
                let (entries, next) = store::logs(&conn, &page)?;
                for e in &entries {
                    let citations = e
                        .message
                        .citations
                        .iter()
                        .map(|c| format!("[{}] {}", c.n, c.document_title))
                        .collect::<Vec<_>>()
                        .join("; ");
                    writer
                        .write_record([
                            e.message.created_at.as_str(),
                            &e.app_name,
                            &csv_safe(&e.end_user),
                            &e.source,
                            &e.message.conversation_id,
                            &e.message.id,
                            &csv_safe(&e.message.query),
                            &csv_safe(&e.message.answer),
                            &e.message.status,
                            e.message.rating.as_deref().unwrap_or(""),
                            &csv_safe(e.message.comment.as_deref().unwrap_or("")),
                            &e.message.usage.prompt_tokens.to_string(),
                            &e.message.usage.completion_tokens.to_string(),
                            e.message.annotation.as_ref().map_or("", |a| a.id.as_str()),
                            &csv_safe(&citations),
                        ])
                        .map_err(ApiError::internal)?;
                }
                left = left.saturating_sub(entries.len());
                match next {
                    Some(next) if left > 0 => before = Some(next),
                    _ => break,
                }
            }
            writer.flush().map_err(ApiError::internal)?;
            drop(writer);
            Ok::<_, ApiError>(out)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"app-logs.csv\"",
        ))
        .body(body))
}

/// Keeps a spreadsheet from reading a cell as a formula (CSV injection).
fn csv_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// Annotations

#[derive(Serialize, utoipa::ToSchema)]
pub struct AnnotationList {
    pub annotations: Vec<Annotation>,
}

fn clean_annotation(question: &str, answer: &str) -> ApiResult<(String, String)> {
    let (question, answer) = (question.trim(), answer.trim());
    for (param, text) in [("question", question), ("answer", answer)] {
        if text.is_empty() || text.chars().count() > apps::MAX_ANNOTATION_CHARS {
            return Err(ApiError::new(
                Code::InvalidRequest,
                format!(
                    "{param} must be 1 to {} characters",
                    apps::MAX_ANNOTATION_CHARS
                ),
            )
            .with_param(param));
        }
    }
    Ok((question.to_string(), answer.to_string()))
}

/// The app's annotations, most recently changed first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/annotations", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = AnnotationList)))]
pub async fn list_annotations(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<AnnotationList>> {
    ctx.require(Action::Write)?;
    let (_, app_id) = path.into_inner();
    let annotations = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::get_app(&conn, &app_id)?;
            store::list_annotations(&conn, &app_id)
        })
        .await?;
    Ok(web::Json(AnnotationList { annotations }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAnnotationBody {
    pub question: String,
    pub answer: String,
    /// The message this corrects, if any.
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Adds a corrected answer; similar questions get it directly.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/apps/{app}/annotations", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    request_body = NewAnnotationBody,
    responses((status = 201, body = Annotation), (status = 400, body = crate::http::openapi::ErrorResponse)))]
pub async fn create_annotation(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String)>,
    body: web::Json<NewAnnotationBody>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let (_, app_id) = path.into_inner();
    let body = body.into_inner();
    let (question, answer) = clean_annotation(&body.question, &body.answer)?;
    {
        let app_id = app_id.clone();
        ctx.run(move |db| {
            let conn = db.connection()?;
            store::get_app(&conn, &app_id)
        })
        .await?;
    }
    let (vector, model) = chat::embed_for_annotations(&state, &ctx, &question).await?;
    let actor = Actor::of(&ctx.caller, &client);
    let created_by = crate::usage::gate::principal(&ctx);
    let tenant_id = ctx.id().to_string();
    let annotation = ctx
        .run(move |db| {
            db.write(|tx| {
                let annotation = store::insert_annotation(
                    tx,
                    &app_id,
                    &NewAnnotation {
                        question: &question,
                        answer: &answer,
                        vector: &vector,
                        embedding_model: &model,
                        message_id: body.message_id.as_deref(),
                        created_by: &created_by,
                    },
                )?;
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.annotation_create",
                        &annotation.id,
                        &tenant_id,
                        serde_json::json!({ "app": app_id }),
                    ),
                )?;
                Ok::<_, AppError>(annotation)
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(annotation))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAnnotationBody {
    pub question: Option<String>,
    pub answer: Option<String>,
}

/// Changes an annotation's question or answer.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/apps/{app}/annotations/{annotation}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("annotation" = String, Path, description = "annotation id")),
    request_body = UpdateAnnotationBody,
    responses((status = 200, body = Annotation), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn update_annotation(
    state: web::Data<AppState>,
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
    body: web::Json<UpdateAnnotationBody>,
) -> ApiResult<web::Json<Annotation>> {
    require_edit(&ctx)?;
    let (_, app_id, id) = path.into_inner();
    let body = body.into_inner();
    let old = {
        let (app_id, id) = (app_id.clone(), id.clone());
        ctx.run(move |db| {
            let conn = db.connection()?;
            store::get_annotation(&conn, &app_id, &id)
        })
        .await?
    };
    let (question, answer) = clean_annotation(
        body.question.as_deref().unwrap_or(&old.question),
        body.answer.as_deref().unwrap_or(&old.answer),
    )?;
    let embedding = if question != old.question {
        Some(chat::embed_for_annotations(&state, &ctx, &question).await?)
    } else {
        None
    };
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    let annotation = ctx
        .run(move |db| {
            db.write(|tx| {
                let annotation = store::update_annotation(
                    tx,
                    &app_id,
                    &id,
                    &question,
                    &answer,
                    embedding.as_ref().map(|(v, m)| (v.as_slice(), m.as_str())),
                )?;
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.annotation_update",
                        &id,
                        &tenant_id,
                        serde_json::json!({ "app": app_id }),
                    ),
                )?;
                Ok::<_, AppError>(annotation)
            })
        })
        .await?;
    Ok(web::Json(annotation))
}

/// Deletes an annotation.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{app}/annotations/{annotation}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("annotation" = String, Path, description = "annotation id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn delete_annotation(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    require_edit(&ctx)?;
    let (_, app_id, id) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    ctx.run(move |db| {
        db.write(|tx| {
            store::delete_annotation(tx, &app_id, &id)?;
            crate::audit::append(
                tx,
                &actor,
                &audit_event(
                    "app.annotation_delete",
                    &id,
                    &tenant_id,
                    serde_json::json!({ "app": app_id }),
                ),
            )?;
            Ok::<_, AppError>(())
        })
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---------------------------------------------------------------------------------------------
// End users

#[derive(Serialize, utoipa::ToSchema)]
pub struct EndUserList {
    pub end_users: Vec<EndUser>,
}

/// The people and systems that used an app (admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id")),
    responses((status = 200, body = EndUserList)))]
pub async fn list_end_users(
    ctx: TenantCtx,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<EndUserList>> {
    ctx.require(Action::Manage)?;
    let (_, app_id) = path.into_inner();
    let end_users = ctx
        .run(move |db| {
            let conn = db.connection()?;
            store::get_app(&conn, &app_id)?;
            store::list_end_users(&conn, &app_id)
        })
        .await?;
    Ok(web::Json(EndUserList { end_users }))
}

/// Everything stored of one end user (GDPR access), as a JSON file.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users/{user}/export", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("user" = String, Path, description = "end user id")),
    responses((status = 200, description = "the end user's conversations, messages and citations"),
        (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn export_end_user(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    let (_, app_id, user) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    let body = ctx
        .run(move |db| {
            let data = {
                let conn = db.connection()?;
                store::export_end_user(&conn, &app_id, &user)?
            };
            db.write(|tx| {
                crate::audit::append(
                    tx,
                    &actor,
                    &audit_event(
                        "app.end_user_export",
                        &app_id,
                        &tenant_id,
                        serde_json::json!({ "end_user_sha256": end_user_hash(&user) }),
                    ),
                )
                .map_err(AppError::from)
            })?;
            Ok::<_, AppError>(data)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"end-user-export.json\"",
        ))
        .json(body))
}

/// The hash the audit log records instead of an end-user id (the log outlives an erasure).
fn end_user_hash(id: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()))
}

/// Erases one end user of an app (GDPR): their conversations, messages, citations and feedback.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/apps/{app}/end-users/{user}", tag = "apps",
    params(("tenant" = String, Path, description = "tenant id"), ("app" = String, Path, description = "app id"),
        ("user" = String, Path, description = "end user id")),
    responses((status = 204), (status = 404, body = crate::http::openapi::ErrorResponse)))]
pub async fn erase_end_user(
    ctx: TenantCtx,
    client: ClientInfo,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    ctx.require(Action::Manage)?;
    ctx.ensure_writable()?;
    let (_, app_id, user) = path.into_inner();
    let actor = Actor::of(&ctx.caller, &client);
    let tenant_id = ctx.id().to_string();
    ctx.run(move |db| {
        db.write(|tx| {
            let erased = store::erase_end_user(tx, &app_id, &user)?;
            crate::audit::append(
                tx,
                &actor,
                &audit_event(
                    "app.end_user_erase",
                    &app_id,
                    &tenant_id,
                    serde_json::json!({ "end_user_sha256": end_user_hash(&user), "conversations": erased.conversations, "messages": erased.messages }),
                ),
            )?;
            Ok::<_, AppError>(())
        })?;
        // Deleted rows were overwritten in the database pages (secure_delete); the checkpoint moves
        // them out of the write-ahead log too.
        db.checkpoint()?;
        Ok::<_, AppError>(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
