//! The language model the pipeline talks to, behind one small trait so that the same pipeline
//! runs against OpenAI (or any OpenAI-compatible endpoint, [`openai`]) and against the MCP
//! client's own model through sampling (`crate::mcp::sampling`).
//!
//! Every request asks for a JSON document of a given JSON schema (structured output, in the
//! `model.structured_output` mode for the OpenAI client; [`schema`] checks replies against it);
//! the prompts and the parsing of replies live in [`crate::prompts`].

pub mod openai;
pub mod reply;
pub mod schema;

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// What a request is for; shown in logs and used to pick per-task settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Choose the database a question is about.
    Route,
    /// Choose the tables a question needs (when the lexical evidence is weak).
    Select,
    /// Write the SQL.
    Generate,
    /// Judge whether a result answers the question.
    Verify,
}

/// A request for one structured reply.
#[derive(Debug, Clone)]
pub struct StructuredRequest {
    pub task: Task,
    pub messages: Vec<Message>,
    /// Name of the reply's schema (`[a-zA-Z0-9_-]`, as OpenAI requires).
    pub schema_name: &'static str,
    /// JSON schema of the reply, strict-mode compatible: every object lists all its properties
    /// as required and sets `additionalProperties: false`.
    pub schema: serde_json::Value,
}

/// Tokens a reply cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TokenUsage {
    pub input: u64,
    pub output: u64,
}

impl TokenUsage {
    pub fn add(&mut self, other: TokenUsage) {
        self.input += other.input;
        self.output += other.output;
    }
    pub fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// A model's reply: the JSON text it produced (not yet parsed) and what it cost.
#[derive(Debug, Clone)]
pub struct ModelReply {
    pub content: String,
    pub usage: TokenUsage,
    /// The model that answered, as the endpoint names it.
    pub model: String,
}

/// Why a model request failed. Messages never contain the API key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// No model is configured (no API key and no client that supports sampling).
    #[error("{0}")]
    NotConfigured(String),
    /// The endpoint said too many requests (HTTP 429) or quota exhausted.
    #[error("the model endpoint is rate limiting requests: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// No reply within the configured time.
    #[error("the model did not answer within {0:?}")]
    Timeout(Duration),
    /// The endpoint answered with an error status or could not be reached.
    #[error("{message}")]
    Transport { message: String, retryable: bool },
    /// The reply is not the JSON document that was asked for.
    #[error("the model's reply is malformed: {0}")]
    Malformed(String),
    /// The model refused to answer.
    #[error("the model refused: {0}")]
    Refused(String),
    /// The caller cancelled the question: the request was not sent, or was abandoned.
    #[error("the question was cancelled by the client")]
    Cancelled,
}

impl LlmError {
    /// Whether sending the same request again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::NotConfigured(_) | LlmError::Cancelled => false,
            LlmError::RateLimited { .. } | LlmError::Timeout(_) => true,
            LlmError::Transport { retryable, .. } => *retryable,
            LlmError::Malformed(_) | LlmError::Refused(_) => true,
        }
    }
}

/// A language model that answers structured requests.
pub trait ChatModel: Send + Sync {
    /// A short description for logs and answers ("openai gpt-5-mini", "client sampling").
    fn describe(&self) -> String;
    /// Sends one request and returns the reply's text.
    fn complete(&self, request: StructuredRequest) -> BoxFuture<'_, Result<ModelReply, LlmError>>;
}

impl From<LlmError> for crate::error::ToolError {
    fn from(err: LlmError) -> Self {
        let (code, message) = match &err {
            // the bridge's own words
            LlmError::NotConfigured(m) => (crate::code::ErrorCode::NoModel, m.clone()),
            LlmError::Timeout(_) => (crate::code::ErrorCode::LlmError, err.to_string()),
            LlmError::Cancelled => (crate::code::ErrorCode::Cancelled, err.to_string()),
            // what the endpoint (or the model) said comes in the detail
            LlmError::RateLimited { .. } => (
                crate::code::ErrorCode::RateLimited,
                "the model endpoint is rate limiting requests".to_string(),
            ),
            LlmError::Transport { .. } => (
                crate::code::ErrorCode::LlmError,
                "the model endpoint failed".to_string(),
            ),
            LlmError::Malformed(_) => (
                crate::code::ErrorCode::LlmError,
                "the model's reply is malformed".to_string(),
            ),
            LlmError::Refused(_) => (
                crate::code::ErrorCode::LlmError,
                "the model refused".to_string(),
            ),
        };
        let tool = crate::error::ToolError::new(code, message, err.retryable());
        match &err {
            LlmError::NotConfigured(_) | LlmError::Timeout(_) | LlmError::Cancelled => tool,
            _ => tool.with_detail(err.to_string()),
        }
    }
}
