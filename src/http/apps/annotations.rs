//! Annotations: corrected answers an editor writes (often from a logged message); questions whose
//! embedding is close enough to an annotated one get its answer directly (`chat`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{audit_event, chat, require_edit};
use crate::apps::store::{self, NewAnnotation};
use crate::apps::{self, Annotation, AppError};
use crate::audit::Actor;
use crate::error::{ApiError, ApiResult, Code};
use crate::identity::principal::ClientInfo;
use crate::identity::Action;
use crate::state::AppState;
use crate::tenancy::extract::TenantCtx;

#[derive(Serialize, utoipa::ToSchema)]
pub struct AnnotationList {
    pub annotations: Vec<Annotation>,
}

pub(super) fn clean_annotation(question: &str, answer: &str) -> ApiResult<(String, String)> {
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
