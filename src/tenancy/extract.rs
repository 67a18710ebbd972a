//! `TenantCtx`: the only road from an HTTP handler to a tenant's data.
//!
//! A handler that takes a [`TenantCtx`] receives the open database of exactly one tenant, the one the
//! request is entitled to. Today that is the `{tenant}` segment of the path, and the admin API that
//! carries it answers loopback callers only ([`crate::http::guard::LocalAdmin`]); with accounts, this
//! extractor is where membership and role are checked. Handlers never see the registry or a path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{web, FromRequest, HttpRequest};

use super::{TenantDb, TenantError, TenantId};
use crate::db::run_blocking;
use crate::db::system::TenantRecord;
use crate::error::{ApiError, Code};
use crate::state::AppState;

/// The tenant a request acts on, with its open database.
pub struct TenantCtx {
    pub record: TenantRecord,
    tenant: Arc<TenantDb>,
}

impl TenantCtx {
    pub fn id(&self) -> &TenantId {
        self.tenant.id()
    }

    /// The tenant's database. Only this tenant's.
    pub fn db(&self) -> &crate::db::Database {
        self.tenant.db()
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
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let raw = req.match_info().get("tenant").map(str::to_string);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let raw = raw.ok_or_else(|| {
                ApiError::new(Code::RouteNotFound, "this route does not name a tenant")
            })?;
            let id = TenantId::parse(&raw)?;
            let registry = state.tenants.clone();
            let (record, tenant) = run_blocking(move || registry.get(&id)).await?;
            Ok(TenantCtx { record, tenant })
        })
    }
}
