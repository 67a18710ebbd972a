//! Chat apps (docs/apps.md): an app is a configured, versioned prompt over a model and the tenant's
//! knowledge bases, which employees chat with in the browser and other systems call through its API.
//!
//! This module holds the domain: the types and their validation, `template` (prompt variables,
//! single-pass rendering), `store` (the SQL in the tenant database), `history` (which earlier turns fit
//! the context window) and `diff` (line diffs between prompt versions). Answering a question — retrieval,
//! quotas, generation, streaming — is in `http::apps::chat`, next to the OpenAI-compatible API it shares
//! its generation code with.

use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::error::{Code, ErrorCode};
use crate::knowledge::search::SearchMode;

pub mod diff;
pub mod history;
pub mod store;
pub mod template;

/// The longest app name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// The longest prompt template, in characters.
pub const MAX_TEMPLATE_CHARS: usize = 20_000;
/// The longest question, in characters.
pub const MAX_QUERY_CHARS: usize = 8000;
/// The longest end-user id, in characters.
pub const MAX_END_USER_CHARS: usize = 128;
/// The longest annotation question or answer, in characters.
pub const MAX_ANNOTATION_CHARS: usize = 8000;
/// The longest conversation name, in characters.
pub const MAX_CONVERSATION_NAME_CHARS: usize = 100;
/// The longest feedback comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// The default system prompt of a new app.
pub const DEFAULT_SYSTEM_TEMPLATE: &str = "You are a helpful assistant for the people of this company. Answer the question using only the numbered passages of the context. Cite the passages you use by their number, like [1]. If the passages do not contain the answer, say that you do not know.";
/// The default user turn of a new app: the retrieved passages, then the question.
pub const DEFAULT_USER_TEMPLATE: &str = "Context:\n{{context}}\n\nQuestion: {{question}}";

/// How an app searches its knowledge bases.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSettings {
    #[serde(default)]
    pub mode: SearchMode,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    #[serde(default)]
    pub score_threshold: Option<f32>,
}

fn default_top_k() -> usize {
    4
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        RetrievalSettings {
            mode: SearchMode::Hybrid,
            top_k: default_top_k(),
            score_threshold: None,
        }
    }
}

/// A value the caller fills in besides the question (`{{name}}` in the templates).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputVariable {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "default_input_max")]
    pub max_length: usize,
}

fn default_input_max() -> usize {
    200
}

/// An app's settings (stored as JSON; `PATCH` replaces them whole).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// `null`: the default local chat model.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u64,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default)]
    pub dataset_ids: Vec<String>,
    #[serde(default)]
    pub retrieval: RetrievalSettings,
    #[serde(default)]
    pub opening_statement: String,
    #[serde(default)]
    pub suggested_questions: Vec<String>,
    #[serde(default)]
    pub inputs: Vec<InputVariable>,
    /// Tokens of earlier turns kept in the prompt (older turns are dropped).
    #[serde(default = "default_history_tokens")]
    pub history_tokens: usize,
    /// Questions at least this similar to an annotated one get its answer.
    #[serde(default = "default_annotation_threshold")]
    pub annotation_threshold: f32,
}

fn default_temperature() -> f64 {
    0.3
}
fn default_max_tokens() -> u64 {
    256
}
fn default_history_tokens() -> usize {
    1024
}
fn default_annotation_threshold() -> f32 {
    0.9
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            model: None,
            temperature: default_temperature(),
            max_tokens: default_max_tokens(),
            stop: Vec::new(),
            dataset_ids: Vec::new(),
            retrieval: RetrievalSettings::default(),
            opening_statement: String::new(),
            suggested_questions: Vec::new(),
            inputs: Vec::new(),
            history_tokens: default_history_tokens(),
            annotation_threshold: default_annotation_threshold(),
        }
    }
}

fn invalid(param: &str, message: impl Into<String>) -> AppError {
    AppError::Invalid {
        param: param.to_string(),
        message: message.into(),
    }
}

/// Whether `name` is a usable variable name: `[a-z][a-z0-9_]{0,31}`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 32
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

impl AppConfig {
    /// Checks the values (not whether the knowledge bases and the model exist: the caller does).
    pub fn validate(&self, max_tokens_limit: usize) -> Result<(), AppError> {
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            return Err(invalid(
                "config.temperature",
                "temperature must be from 0 to 2",
            ));
        }
        let limit = max_tokens_limit as u64;
        if self.max_tokens == 0 || self.max_tokens > limit {
            return Err(invalid(
                "config.max_tokens",
                format!("max_tokens must be from 1 to {limit} (inference.max_tokens_limit)"),
            ));
        }
        if self.stop.len() > 4 || self.stop.iter().any(|s| s.is_empty() || s.len() > 64) {
            return Err(invalid(
                "config.stop",
                "stop takes at most 4 non-empty strings of up to 64 bytes",
            ));
        }
        if self.dataset_ids.len() > 10 {
            return Err(invalid(
                "config.dataset_ids",
                "an app can search at most 10 knowledge bases",
            ));
        }
        if !(1..=20).contains(&self.retrieval.top_k) {
            return Err(invalid(
                "config.retrieval.top_k",
                "top_k must be from 1 to 20",
            ));
        }
        if self
            .retrieval
            .score_threshold
            .is_some_and(|t| !t.is_finite())
        {
            return Err(invalid(
                "config.retrieval.score_threshold",
                "score_threshold must be a number",
            ));
        }
        if self.opening_statement.chars().count() > 2000 {
            return Err(invalid(
                "config.opening_statement",
                "the opening statement must be at most 2000 characters",
            ));
        }
        if self.suggested_questions.len() > 10
            || self
                .suggested_questions
                .iter()
                .any(|q| q.trim().is_empty() || q.chars().count() > 300)
        {
            return Err(invalid(
                "config.suggested_questions",
                "at most 10 suggested questions of 1 to 300 characters",
            ));
        }
        if self.inputs.len() > 20 {
            return Err(invalid(
                "config.inputs",
                "an app takes at most 20 input variables",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            let param = format!("config.inputs[{i}].name");
            if !is_variable_name(&input.name) {
                return Err(invalid(
                    &param,
                    format!(
                        "input variable {:?}: names are a lowercase letter, then up to 31 lowercase letters, digits or _",
                        input.name
                    ),
                ));
            }
            if template::BUILT_IN.contains(&input.name.as_str()) {
                return Err(invalid(
                    &param,
                    format!("{:?} is built in; choose another name", input.name),
                ));
            }
            if !seen.insert(input.name.as_str()) {
                return Err(invalid(
                    &param,
                    format!("{:?} is defined twice", input.name),
                ));
            }
            if input.label.chars().count() > 100 || !(1..=4000).contains(&input.max_length) {
                return Err(invalid(
                    &format!("config.inputs[{i}]"),
                    "labels are at most 100 characters and max_length is from 1 to 4000",
                ));
            }
        }
        if self.history_tokens > 8192 {
            return Err(invalid(
                "config.history_tokens",
                "history_tokens must be from 0 to 8192",
            ));
        }
        if !self.annotation_threshold.is_finite()
            || !(0.5..=1.0).contains(&self.annotation_threshold)
        {
            return Err(invalid(
                "config.annotation_threshold",
                "annotation_threshold must be from 0.5 to 1",
            ));
        }
        Ok(())
    }

    /// The input variable names (for template checks).
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }
}

/// The templates of one prompt version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prompt {
    pub system: String,
    pub user: String,
}

impl Default for Prompt {
    fn default() -> Self {
        Prompt {
            system: DEFAULT_SYSTEM_TEMPLATE.into(),
            user: DEFAULT_USER_TEMPLATE.into(),
        }
    }
}

impl Prompt {
    /// Refuses templates that are too long, use unknown variables, or never ask the question.
    pub fn validate(&self, inputs: &[&str]) -> Result<(), AppError> {
        for (part, text) in [("system", &self.system), ("user", &self.user)] {
            if text.chars().count() > MAX_TEMPLATE_CHARS {
                return Err(invalid(
                    &format!("prompt.{part}"),
                    format!("the {part} template must be at most {MAX_TEMPLATE_CHARS} characters"),
                ));
            }
            template::check(text, inputs).map_err(|name| AppError::UnknownVariable {
                part,
                name,
                known: template::known(inputs),
            })?;
        }
        if !template::variables(&self.user)
            .iter()
            .chain(template::variables(&self.system).iter())
            .any(|v| v == "question")
        {
            return Err(invalid(
                "prompt.user",
                "the templates must use {{question}} somewhere (usually in the user template)",
            ));
        }
        Ok(())
    }
}

/// An app as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct App {
    pub id: String,
    pub name: String,
    pub description: String,
    pub published: bool,
    pub prompt_version: i64,
    pub prompt: Prompt,
    pub config: AppConfig,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A stored prompt version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PromptVersion {
    pub version: i64,
    pub system: String,
    pub user: String,
    pub note: String,
    pub created_by: String,
    pub created_at: String,
    pub pinned: bool,
}

/// A passage an answer was given, numbered as the prompt numbered it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    pub n: u32,
    pub segment_id: i64,
    pub dataset_id: String,
    pub document_id: String,
    pub document_title: String,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    pub text: String,
    pub score: f32,
}

/// The annotation an answer came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AnnotationRef {
    pub id: String,
    pub question: String,
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct MessageUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A question and its answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub query: String,
    pub answer: String,
    #[schema(value_type = Object)]
    pub inputs: serde_json::Value,
    /// `complete`, `stopped` (the client left) or `failed`.
    pub status: String,
    pub error: Option<String>,
    pub citations: Vec<Citation>,
    pub annotation: Option<AnnotationRef>,
    /// `like`, `dislike` or `null`.
    pub rating: Option<String>,
    pub comment: Option<String>,
    pub usage: MessageUsage,
    pub model: String,
    pub prompt_version: i64,
    pub latency_ms: u64,
    pub created_at: String,
}

/// A message in the admins' logs: with its app and end user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    #[serde(flatten)]
    pub message: Message,
    pub app_id: String,
    pub app_name: String,
    pub end_user: String,
    pub source: String,
}

/// A conversation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub id: String,
    pub app_id: String,
    pub end_user: String,
    /// `web`, `api`, `debug` or `openai`.
    pub source: String,
    pub name: String,
    pub message_count: u64,
    pub created_at: String,
    pub updated_at: String,
}

/// A corrected answer, given directly to similar questions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Annotation {
    pub id: String,
    pub app_id: String,
    pub question: String,
    pub answer: String,
    pub message_id: Option<String>,
    pub hit_count: u64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// Someone who used an app.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndUser {
    pub id: String,
    pub first_seen: String,
    pub last_seen: String,
    pub message_count: u64,
    pub conversation_count: u64,
}

/// Where a conversation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Web,
    Api,
    Debug,
    OpenAi,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Web => "web",
            Source::Api => "api",
            Source::Debug => "debug",
            Source::OpenAi => "openai",
        }
    }
}

/// A new random id (hex).
pub fn new_id() -> String {
    crate::knowledge::new_id()
}

/// Trims a name and checks it.
pub fn clean_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(invalid(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
    Ok(name.to_string())
}

/// Checks a description.
pub fn clean_description(text: &str) -> Result<String, AppError> {
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(text.trim().to_string())
}

/// Checks an end-user id given by a caller: 1–128 characters, no control characters.
pub fn clean_end_user(id: &str) -> Result<String, AppError> {
    let id = id.trim();
    if id.is_empty() || id.chars().count() > MAX_END_USER_CHARS || id.chars().any(char::is_control)
    {
        return Err(invalid(
            "user",
            format!(
                "user must be 1 to {MAX_END_USER_CHARS} characters, without control characters"
            ),
        ));
    }
    Ok(id.to_string())
}

/// What can go wrong with apps.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Invalid { param: String, message: String },
    #[error("the {part} template uses {{{{{name}}}}}, which this app does not define; known variables: {known}")]
    UnknownVariable {
        part: &'static str,
        name: String,
        known: String,
    },
    #[error("no app with id {0:?} in this tenant")]
    NotFound(String),
    #[error("an app named {0:?} already exists in this tenant")]
    Exists(String),
    #[error("the app {0:?} is not published; editors can try it in debug mode")]
    NotPublished(String),
    #[error("no conversation with id {0:?} in this app for this user")]
    ConversationNotFound(String),
    #[error("no message with id {0:?} in this app")]
    MessageNotFound(String),
    #[error("no annotation with id {0:?} in this app")]
    AnnotationNotFound(String),
    #[error("no end user {0:?} has used this app")]
    EndUserNotFound(String),
    #[error("this app has no prompt version {0}")]
    VersionNotFound(i64),
    #[error("no knowledge base with id {0:?} in this tenant")]
    DatasetNotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        AppError::Db(DbError::Sqlite(e))
    }
}

impl ErrorCode for AppError {
    fn code(&self) -> Code {
        match self {
            AppError::Invalid { .. } => Code::InvalidRequest,
            AppError::UnknownVariable { .. } => Code::InvalidTemplate,
            AppError::NotFound(_) => Code::AppNotFound,
            AppError::Exists(_) => Code::AppExists,
            AppError::NotPublished(_) => Code::AppNotPublished,
            AppError::ConversationNotFound(_) => Code::ConversationNotFound,
            AppError::MessageNotFound(_) => Code::MessageNotFound,
            AppError::AnnotationNotFound(_) => Code::AnnotationNotFound,
            AppError::EndUserNotFound(_) => Code::EndUserNotFound,
            AppError::VersionNotFound(_) => Code::PromptVersionNotFound,
            AppError::DatasetNotFound(_) => Code::DatasetNotFound,
            AppError::Db(e) => e.code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            AppError::Db(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            AppError::Invalid { param, .. } => Some(param.clone()),
            AppError::UnknownVariable { part, .. } => Some(format!("prompt.{part}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_and_prompt_are_valid() {
        let config = AppConfig::default();
        config.validate(2048).expect("default config");
        Prompt::default()
            .validate(&config.input_names())
            .expect("default prompt");
    }

    #[test]
    fn config_values_are_checked() {
        let mut c = AppConfig {
            temperature: 3.0,
            ..AppConfig::default()
        };
        assert!(c.validate(2048).is_err());
        c.temperature = 0.0;
        c.max_tokens = 4096;
        assert!(c.validate(2048).is_err());
        c.max_tokens = 64;
        c.inputs = vec![InputVariable {
            name: "question".into(),
            label: String::new(),
            required: false,
            max_length: 10,
        }];
        assert!(c.validate(2048).is_err(), "a built-in name as an input");
        c.inputs[0].name = "Dept".into();
        assert!(c.validate(2048).is_err(), "uppercase");
        c.inputs[0].name = "dept".into();
        c.validate(2048).expect("valid");
    }

    #[test]
    fn templates_with_unknown_variables_or_no_question_are_refused() {
        let p = Prompt {
            system: "Hi {{department}}".into(),
            user: "{{question}}".into(),
        };
        let err = p.validate(&[]).expect_err("unknown variable");
        assert!(matches!(err, AppError::UnknownVariable { ref name, .. } if name == "department"));
        p.validate(&["department"]).expect("defined");
        let no_question = Prompt {
            system: "x".into(),
            user: "{{context}}".into(),
        };
        assert!(no_question.validate(&[]).is_err());
    }
}
