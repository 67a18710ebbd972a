//! `TenantCtx`: the only road from an HTTP handler to a tenant's data.
//!
//! Extracting a [`TenantCtx`] authenticates the caller ([`Caller`]: a session or an API key), parses the
//! `{tenant}` path segment, and finds the caller's role there: a membership, `admin` for system
//! administrators, or for an API key the role of its widest scope — in its own tenant only.
//! A caller who is not a member gets `404 tenant_not_found`, exactly as for a tenant that does not
//! exist, so tenant ids do not leak. Only then is the tenant's database opened. Handlers check what they
//! do against the role with [`TenantCtx::require`]; they never see the registry or a path.
//!
//! On the OpenAI-compatible `/v1` scope there is no `{tenant}` segment: an API key (with the
//! `inference` scope) acts in its own tenant, a signed-in person names one in the `Enclave-Tenant`
//! header. Keys with only `inference` do not reach the tenant REST API, and the others not `/v1`.
//!
//! The resolution runs in the [`resolve_tenant`] middleware of the `/api/v1/tenants/{tenant}` scope,
//! before any other extractor (so a malformed body cannot answer before "no such tenant" does); the
//! handler's `TenantCtx` argument takes the result from the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};

use super::{TenantDb, TenantError, TenantId};
use crate::db::run_blocking;
use crate::db::system::TenantRecord;
use crate::error::{ApiError, Code};
use crate::identity::principal::Caller;
use crate::identity::{Action, IdentityError, Role};
use crate::state::AppState;

/// The header naming the tenant of a `/v1` request made with a browser session (API keys need none:
/// a key belongs to one tenant).
pub const TENANT_HEADER: &str = "enclave-tenant";

/// The tenant a request acts on, with its open database and the caller's role in it. Cheap to clone:
/// the middleware, the usage gate and the handler's extractor share one resolution.
#[derive(Clone)]
pub struct TenantCtx(Arc<ResolvedTenant>);

impl std::ops::Deref for TenantCtx {
    type Target = ResolvedTenant;
    fn deref(&self) -> &ResolvedTenant {
        &self.0
    }
}

/// What a [`TenantCtx`] holds (reached through it).
pub struct ResolvedTenant {
    pub record: TenantRecord,
    pub caller: Caller,
    pub role: Role,
    tenant: Arc<TenantDb>,
    /// Reached through the tenant REST API (`/api/v1/tenants/{tenant}`), not the `/v1` inference API.
    rest_api: bool,
}

impl TenantCtx {
    pub fn id(&self) -> &TenantId {
        self.tenant.id()
    }

    /// The tenant's open database handle, for services that work on it later (the usage meter).
    pub fn handle(&self) -> &Arc<TenantDb> {
        &self.tenant
    }

    /// The schema version of the tenant's database.
    pub fn schema_version(&self) -> u32 {
        self.tenant.schema_version()
    }

    /// The tenant's database. Only this tenant's.
    pub fn db(&self) -> &crate::db::Database {
        self.tenant.db()
    }

    /// Refuses the action unless the caller's role allows it (the matrix is `Role::allows`). A key
    /// with only `datasets:*` scopes reaches nothing but the knowledge-base routes
    /// ([`TenantCtx::require_datasets`]).
    pub fn require(&self, action: Action) -> Result<(), IdentityError> {
        if let Caller::Key(key) = &self.caller {
            if self.rest_api && !key.has_general_scope() {
                return Err(IdentityError::InsufficientScope);
            }
        }
        match (&self.caller, self.role.allows(action)) {
            (_, true) => Ok(()),
            (Caller::Key(_), false) => Err(IdentityError::InsufficientScope),
            (Caller::User(_), false) => Err(IdentityError::RoleTooLow),
        }
    }

    /// Like [`TenantCtx::require`], for knowledge bases: a key's `datasets:read` allows reading them,
    /// `datasets:write` reading and changing them, besides what its general scope allows.
    pub fn require_datasets(&self, action: Action) -> Result<(), IdentityError> {
        if let Caller::Key(key) = &self.caller {
            let by_dataset_scope = match action {
                Action::Read => key.has_scope("datasets:read") || key.has_scope("datasets:write"),
                Action::Write => key.has_scope("datasets:write"),
                Action::Manage | Action::Own => false,
            };
            if by_dataset_scope {
                return Ok(());
            }
        }
        self.require(action)
    }

    /// Refuses changes to a suspended tenant.
    pub fn ensure_writable(&self) -> Result<(), TenantError> {
        if self.record.status == "suspended" {
            return Err(TenantError::Suspended(self.tenant.id().clone()));
        }
        Ok(())
    }

    /// Runs blocking work against this tenant's database off the async workers.
    pub async fn run<T, E>(
        &self,
        work: impl FnOnce(&crate::db::Database) -> Result<T, E> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let tenant = self.tenant.clone();
        run_blocking(move || work(tenant.db())).await
    }
}

impl FromRequest for TenantCtx {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<TenantCtx>()
                .cloned()
                .ok_or_else(|| ApiError::internal("TenantCtx used outside the tenant scope")),
        )
    }
}

/// Middleware of the tenant scope: resolves the [`TenantCtx`] or answers the error (401, 404, ...).
pub async fn resolve_tenant(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<actix_web::body::BoxBody>>, actix_web::Error> {
    let (http, payload) = req.into_parts();
    match TenantCtx::resolve(&http).await {
        Ok(ctx) => {
            let state = http.app_data::<web::Data<AppState>>().cloned();
            let admission = match &state {
                Some(state) => match crate::usage::gate::admit(state, &ctx).await {
                    Ok(admission) => admission,
                    Err(refusal) => {
                        return Ok(ServiceResponse::new(http, refusal).map_into_right_body());
                    }
                },
                None => None,
            };
            http.extensions_mut().insert(ctx.clone());
            let req = ServiceRequest::from_parts(http, payload);
            let response = next.call(req).await?;
            match (admission, state) {
                (Some(admission), Some(state)) => {
                    let (http, response) = response.into_parts();
                    let response = response.map_into_boxed_body();
                    let settled =
                        crate::usage::gate::settle(&state, &ctx, admission, response).await;
                    Ok(ServiceResponse::new(http, settled).map_into_right_body())
                }
                _ => Ok(response.map_into_boxed_body().map_into_left_body()),
            }
        }
        Err(e) => {
            let response = actix_web::ResponseError::error_response(&e);
            Ok(ServiceResponse::new(http, response).map_into_right_body())
        }
    }
}

impl TenantCtx {
    fn resolve(req: &HttpRequest) -> Pin<Box<dyn Future<Output = Result<TenantCtx, ApiError>>>> {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let in_path = req.match_info().get("tenant").map(str::to_string);
        let in_header = req
            .headers()
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let caller = Caller::from_request(req, &mut actix_web::dev::Payload::None);
        Box::pin(async move {
            let caller = caller.await?;
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            // The tenant REST API names the tenant in its path; the `/v1` API takes it from the key
            // (or, for a person signed in, from the Enclave-Tenant header).
            let raw = match (&in_path, &caller) {
                (Some(raw), Caller::Key(key)) => {
                    if !key.can_use_tenant_api() {
                        return Err(IdentityError::InferenceOnlyKey.into());
                    }
                    raw.clone()
                }
                (Some(raw), Caller::User(_)) => raw.clone(),
                (None, Caller::Key(key)) => {
                    // App keys reach `/v1` for their app only (checked by the handler).
                    if !key.can_infer() && !key.has_app_scope() {
                        return Err(IdentityError::NoInferenceScope.into());
                    }
                    key.tenant_id.clone()
                }
                (None, Caller::User(_)) => in_header.ok_or_else(|| {
                    ApiError::new(
                        Code::InvalidRequest,
                        format!("say which tenant this is for with the {TENANT_HEADER} header (a tenant id you are a member of)"),
                    )
                })?,
            };
            let id = TenantId::parse(&raw)?;
            let role = match &caller {
                Caller::Key(key) => (key.tenant_id == id.as_str()).then(|| key.role()),
                Caller::User(current) => {
                    let user = current.user().clone();
                    let system = state.system.clone();
                    let lookup_id = id.clone();
                    run_blocking(move || {
                        if user.is_system_admin {
                            return Ok::<_, TenantError>(Some(Role::Admin));
                        }
                        Ok(system
                            .db
                            .read(|c| crate::identity::role_in(c, &user.id, lookup_id.as_str()))?)
                    })
                    .await?
                }
            }
            .ok_or_else(|| TenantError::NotFound(id.clone()))?;
            let registry = state.tenants.clone();
            let (record, tenant) = match registry.get_recent(&id) {
                Some(found) => found,
                None => run_blocking(move || registry.get(&id)).await?,
            };
            Ok(TenantCtx(Arc::new(ResolvedTenant {
                record,
                caller,
                role,
                tenant,
                rest_api: in_path.is_some(),
            })))
        })
    }
}
