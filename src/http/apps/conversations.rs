//! An end user's conversations with an app (list, messages, rename, delete) and their feedback on
//! answers. People see their own; an API key names its end user (`user`).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{end_user, visible_app};
use crate::apps::{self, store, Conversation, Message};
use crate::error::{ApiError, ApiResult, Code};
use crate::tenancy::extract::TenantCtx;

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
            store::list_conversations(&conn, &app_id, &user, false)
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
    visible_app(&ctx, &app_id).await?;
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
