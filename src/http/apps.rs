//! Chat apps over HTTP (docs/apps.md): apps and their prompt versions, export and import, and the
//! access rules every app route shares ([`reach`], [`visible_app`], [`end_user`]). Answering (`/chat`
//! and the OpenAI-compatible route) is in [`chat`]; [`conversations`] (with feedback), [`logs`],
//! [`annotations`] and [`end_users`] hold the rest.
//!
//! Who may do what: viewers (keys: `read`) use published apps; an app key (scope `app:{id}`) only its
//! app; editors (keys: `write`) build apps and annotations; admins read everyone's logs and manage end
//! users (GDPR export and erasure).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::apps::store::{self, NewAnnotation, NewApp};
use crate::apps::{self, diff, App, AppConfig, AppError, Prompt, PromptVersion};
use crate::audit::{Actor, Event};
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::{Caller, ClientInfo};
use crate::identity::Action;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

pub mod annotations;
pub mod chat;
pub mod conversations;
pub mod end_users;
pub mod logs;

/// Routes inside `/api/v1/tenants/{tenant}`.
pub fn configure_tenant_scope(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/apps")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(super::resource("/apps/import").route(web::post().to(import)))
    .service(super::resource("/apps/logs").route(web::get().to(logs::logs)))
    .service(super::resource("/apps/logs.csv").route(web::get().to(logs::logs_csv)))
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
    .service(
        super::resource("/apps/{app}/conversations")
            .route(web::get().to(conversations::list_conversations)),
    )
    .service(
        super::resource("/apps/{app}/conversations/{conversation}")
            .route(web::patch().to(conversations::rename_conversation))
            .route(web::delete().to(conversations::delete_conversation)),
    )
    .service(
        super::resource("/apps/{app}/conversations/{conversation}/messages")
            .route(web::get().to(conversations::list_messages)),
    )
    .service(
        super::resource("/apps/{app}/messages/{message}/feedback")
            .route(web::post().to(conversations::feedback)),
    )
    .service(
        super::resource("/apps/{app}/annotations")
            .route(web::get().to(annotations::list_annotations))
            .route(web::post().to(annotations::create_annotation)),
    )
    .service(
        super::resource("/apps/{app}/annotations/{annotation}")
            .route(web::patch().to(annotations::update_annotation))
            .route(web::delete().to(annotations::delete_annotation)),
    )
    .service(
        super::resource("/apps/{app}/end-users").route(web::get().to(end_users::list_end_users)),
    )
    .service(
        super::resource("/apps/{app}/end-users/{user}")
            .route(web::delete().to(end_users::erase_end_user)),
    )
    .service(
        super::resource("/apps/{app}/end-users/{user}/export")
            .route(web::get().to(end_users::export_end_user)),
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
                let app = store::insert_app(
                    tx,
                    &NewApp {
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
        let (question, answer) = annotations::clean_annotation(&a.question, &a.answer)?;
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
                let app = store::insert_app(
                    tx,
                    &NewApp {
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
