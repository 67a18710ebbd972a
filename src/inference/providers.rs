//! External inference providers: OpenAI-compatible endpoints (vLLM, Ollama, another Enclave, …) that
//! serve some model names when one CPU box is not enough. A system administrator registers the base
//! URL, an API key (sealed with the instance key, never shown again) and the models it serves, each
//! under a local name and its upstream name. `/v1` requests for those names are forwarded there with
//! the same authentication, quotas and metering as local models (usage as the upstream reports it).
//!
//! The forwarding client follows no redirects and has a per-provider timeout. Provider URLs are set by
//! system administrators only, so internal addresses are allowed (that is where such servers live).

use std::io::BufRead;

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use crate::db::system::SystemDb;
use crate::models::manifest::ModelKind;

/// What can go wrong with a provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Invalid(String),
    #[error("no provider with id {0}")]
    NotFound(String),
    #[error("the provider's API key cannot be read: {0}")]
    Secret(String),
    /// The upstream could not be reached or answered garbage.
    #[error("the provider {name} did not answer usably: {reason}")]
    Upstream { name: String, reason: String },
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
}

impl crate::error::ErrorCode for ProviderError {
    fn code(&self) -> crate::error::Code {
        use crate::error::Code;
        match self {
            ProviderError::Invalid(_) => Code::InvalidRequest,
            ProviderError::NotFound(_) => Code::ProviderNotFound,
            ProviderError::Secret(_) | ProviderError::Upstream { .. } => Code::ProviderUnavailable,
            ProviderError::Db(_) | ProviderError::Database(_) => Code::DatabaseUnavailable,
        }
    }

    fn public_message(&self) -> String {
        match self {
            ProviderError::Db(_) | ProviderError::Database(_) => {
                "the database is busy; retry shortly".into()
            }
            other => other.to_string(),
        }
    }
}

/// A model a provider serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemoteModel {
    /// The name clients use here.
    pub name: String,
    /// The name the provider knows it by.
    pub upstream: String,
    pub kind: ModelKind,
}

/// A registered provider (without its key).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Provider {
    pub id: String,
    pub name: String,
    /// The OpenAI-compatible base, e.g. `http://gpu-box:8000/v1`.
    pub base_url: String,
    pub api_key_set: bool,
    pub models: Vec<RemoteModel>,
    pub timeout_secs: u64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    api_key_sealed: Option<String>,
}

/// What an administrator sends.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ProviderInput {
    pub name: String,
    pub base_url: String,
    /// Omitted on a change keeps the stored key; `""` removes it.
    pub api_key: Option<String>,
    pub models: Vec<RemoteModel>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    120
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Provider> {
    let models: String = r.get("models")?;
    let sealed: Option<String> = r.get("api_key_sealed")?;
    Ok(Provider {
        id: r.get("id")?,
        name: r.get("name")?,
        base_url: r.get("base_url")?,
        api_key_set: sealed.is_some(),
        models: serde_json::from_str(&models).unwrap_or_default(),
        timeout_secs: r.get::<_, i64>("timeout_secs")?.try_into().unwrap_or(120),
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        api_key_sealed: sealed,
    })
}

const COLUMNS: &str =
    "id, name, base_url, api_key_sealed, models, timeout_secs, created_at, updated_at";

/// Every provider, by name.
pub fn list(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<Provider>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM inference_providers ORDER BY name"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

fn get(conn: &rusqlite::Connection, id: &str) -> Result<Provider, ProviderError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM inference_providers WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()?
    .ok_or_else(|| ProviderError::NotFound(id.to_string()))
}

/// Reads one provider (blocking).
pub fn find(system: &SystemDb, id: &str) -> Result<Provider, ProviderError> {
    system.db.read(|c| Ok(get(c, id)))?
}

fn validate(input: &ProviderInput, local_models: &[String]) -> Result<(), ProviderError> {
    let invalid = |m: String| Err(ProviderError::Invalid(m));
    let name = input.name.trim();
    if name.is_empty() || name.len() > 100 {
        return invalid("name: 1 to 100 characters".into());
    }
    let url = input.base_url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('@') {
        return invalid(format!(
            "base_url: an http(s) URL without credentials, e.g. http://gpu-box:8000/v1 (got {url:?})"
        ));
    }
    if input.models.is_empty() {
        return invalid("models: name at least one model the provider serves".into());
    }
    let mut seen = std::collections::HashSet::new();
    for m in &input.models {
        crate::models::store::check_name(&m.name)
            .map_err(|e| ProviderError::Invalid(format!("models: {e}")))?;
        if m.upstream.trim().is_empty() || m.upstream.len() > 200 {
            return invalid(format!("models: {}: the upstream name is empty", m.name));
        }
        if !seen.insert(m.name.clone()) {
            return invalid(format!("models: {} is listed twice", m.name));
        }
        if local_models.contains(&m.name) {
            return invalid(format!(
                "models: {} is the name of an installed local model",
                m.name
            ));
        }
    }
    if !(1..=3600).contains(&input.timeout_secs) {
        return invalid("timeout_secs: 1 to 3600".into());
    }
    Ok(())
}

/// Creates (`id` None) or replaces a provider; audited.
pub fn save(
    system: &SystemDb,
    data_dir: &std::path::Path,
    id: Option<&str>,
    input: &ProviderInput,
    local_models: &[String],
    actor: &crate::audit::Actor,
) -> Result<Provider, ProviderError> {
    validate(input, local_models)?;
    let sealed = crate::secrets::seal_change(data_dir, input.api_key.as_deref())
        .map_err(|e| ProviderError::Secret(e.to_string()))?;
    let models =
        serde_json::to_string(&input.models).map_err(|e| ProviderError::Invalid(e.to_string()))?;
    let now = crate::time_util::now_rfc3339();
    let id = id.map_or_else(
        || hex::encode(crate::tenancy::random_bytes::<8>()),
        str::to_string,
    );
    let name = input.name.trim().to_string();
    let base_url = input.base_url.trim().trim_end_matches('/').to_string();
    system.db.write(|tx| {
        let existing = tx
            .query_row(
                "SELECT api_key_sealed FROM inference_providers WHERE id = ?1",
                [&id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?;
        let clash: Option<String> = tx
            .query_row(
                "SELECT id FROM inference_providers WHERE name = ?1 AND id <> ?2",
                rusqlite::params![name, id],
                |r| r.get(0),
            )
            .optional()?;
        if clash.is_some() {
            return Err(ProviderError::Invalid(format!(
                "name: a provider named {name:?} exists"
            )));
        }
        let key = match (&sealed, existing) {
            (Some(new), _) => new.clone(),
            (None, Some(old)) => old,
            (None, None) => None,
        };
        tx.execute(
            "INSERT INTO inference_providers (id, name, base_url, api_key_sealed, models, timeout_secs, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (id) DO UPDATE SET name = ?2, base_url = ?3, api_key_sealed = ?4, models = ?5,
               timeout_secs = ?6, updated_at = ?7",
            rusqlite::params![id, name, base_url, key, models, i64::try_from(input.timeout_secs).unwrap_or(120), now],
        )?;
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: "provider.save",
                target: &name,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({"id": id, "base_url": base_url, "models": input.models}),
            },
        )?;
        get(tx, &id)
    })
}

/// Removes a provider; audited.
pub fn delete(
    system: &SystemDb,
    id: &str,
    actor: &crate::audit::Actor,
) -> Result<(), ProviderError> {
    system.db.write(|tx| {
        let provider = get(tx, id)?;
        tx.execute("DELETE FROM inference_providers WHERE id = ?1", [id])?;
        crate::audit::append(
            tx,
            actor,
            &crate::audit::Event {
                action: "provider.delete",
                target: &provider.name,
                tenant_id: "",
                success: true,
                detail: serde_json::json!({"id": id}),
            },
        )?;
        Ok(())
    })
}

/// A route to a provider for one model name.
#[derive(Debug, Clone)]
pub struct Route {
    pub provider: Provider,
    pub model: RemoteModel,
    api_key: Option<String>,
}

impl Provider {
    /// The route for `model`, with the key unsealed, if this provider serves it.
    pub fn route(
        &self,
        model: &str,
        data_dir: &std::path::Path,
    ) -> Option<Result<Route, ProviderError>> {
        let remote = self.models.iter().find(|m| m.name == model)?.clone();
        let api_key = match &self.api_key_sealed {
            None => Ok(None),
            Some(sealed) => crate::secrets::open_sealed(data_dir, sealed)
                .map(Some)
                .map_err(|e| ProviderError::Secret(e.to_string())),
        };
        Some(api_key.map(|api_key| Route {
            provider: self.clone(),
            model: remote,
            api_key,
        }))
    }
}

impl Route {
    fn upstream_error(&self, reason: impl Into<String>) -> ProviderError {
        ProviderError::Upstream {
            name: self.provider.name.clone(),
            reason: reason.into(),
        }
    }

    fn request(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ureq::http::Response<ureq::Body>, ProviderError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(std::time::Duration::from_secs(
                self.provider.timeout_secs,
            )))
            .build()
            .into();
        let mut body = body.clone();
        body["model"] = serde_json::Value::String(self.model.upstream.clone());
        let mut request = agent
            .post(&format!("{}{path}", self.provider.base_url))
            .header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", &format!("Bearer {key}"));
        }
        request
            .send(body.to_string())
            .map_err(|e| self.upstream_error(e.to_string()))
    }

    /// Forwards a request and returns the upstream's status and JSON answer (blocking).
    pub fn forward(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), ProviderError> {
        let mut response = self.request(path, body)?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.upstream_error(e.to_string()))?;
        let mut value: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            self.upstream_error(format!("HTTP {status} with a body that is not JSON"))
        })?;
        if value.get("model").is_some() {
            value["model"] = serde_json::Value::String(self.model.name.clone());
        }
        Ok((status, value))
    }

    /// Forwards a streamed request: each `data:` payload of the upstream's event stream goes to
    /// `on_event` (the model name rewritten) until `[DONE]`; `on_event` returning false stops reading
    /// (the client left). Returns the upstream status when it refused before streaming, with its body.
    pub fn forward_stream(
        &self,
        path: &str,
        body: &serde_json::Value,
        on_event: &mut dyn FnMut(serde_json::Value) -> bool,
    ) -> Result<Option<(u16, serde_json::Value)>, ProviderError> {
        let response = self.request(path, body)?;
        let status = response.status().as_u16();
        if status != 200 {
            let text = response
                .into_body()
                .with_config()
                .limit(1024 * 1024)
                .read_to_string()
                .unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or_else(|_| {
                serde_json::json!({"error": {"message": format!("the provider answered HTTP {status}")}})
            });
            return Ok(Some((status, value)));
        }
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| self.upstream_error(e.to_string()))?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                return Ok(None);
            }
            let mut event: serde_json::Value = serde_json::from_str(data)
                .map_err(|_| self.upstream_error("an event that is not JSON"))?;
            if event.get("model").is_some() {
                event["model"] = serde_json::Value::String(self.model.name.clone());
            }
            if !on_event(event) {
                return Ok(None);
            }
        }
        Ok(None)
    }
}
