//! The codes users see: one vocabulary for the MCP tools' errors, the command line's
//! `error[CODE]` lines and the README's list (a leaf module: it depends on nothing).

use serde::Serialize;

/// Stable error codes of the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidArgument,
    UnknownDatabase,
    DatabaseUnavailable,
    AmbiguousQuery,
    /// The database administrator restricts what the query reads (policy or privileges).
    Restricted,
    /// The query's estimated cost is over the administrator's limit.
    TooExpensive,
    /// Writes, locking, forbidden functions, several statements: never run.
    UnsafeSql,
    SyntaxError,
    ExecutionError,
    ExecutionTimeout,
    ConnectionError,
    /// The database does not have pg_nlq (or not a version this bridge can call).
    ExtensionMissing,
    NoModel,
    LlmError,
    AttemptsExhausted,
    ResultTooLarge,
    RateLimited,
    ConfigError,
    InternalError,
    Cancelled,
}

impl ErrorCode {
    /// Every code, in the order the README lists them (`mcp-bridge/tests/readme.rs` checks the
    /// README's list against this one, and this one against `as_str`).
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidArgument,
        ErrorCode::UnknownDatabase,
        ErrorCode::DatabaseUnavailable,
        ErrorCode::AmbiguousQuery,
        ErrorCode::Restricted,
        ErrorCode::TooExpensive,
        ErrorCode::UnsafeSql,
        ErrorCode::SyntaxError,
        ErrorCode::ExecutionError,
        ErrorCode::ExecutionTimeout,
        ErrorCode::ConnectionError,
        ErrorCode::ExtensionMissing,
        ErrorCode::NoModel,
        ErrorCode::LlmError,
        ErrorCode::AttemptsExhausted,
        ErrorCode::ResultTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::ConfigError,
        ErrorCode::InternalError,
        ErrorCode::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::UnknownDatabase => "UNKNOWN_DATABASE",
            ErrorCode::DatabaseUnavailable => "DATABASE_UNAVAILABLE",
            ErrorCode::AmbiguousQuery => "AMBIGUOUS_QUERY",
            ErrorCode::Restricted => "RESTRICTED",
            ErrorCode::TooExpensive => "TOO_EXPENSIVE",
            ErrorCode::UnsafeSql => "UNSAFE_SQL",
            ErrorCode::SyntaxError => "SYNTAX_ERROR",
            ErrorCode::ExecutionError => "EXECUTION_ERROR",
            ErrorCode::ExecutionTimeout => "EXECUTION_TIMEOUT",
            ErrorCode::ConnectionError => "CONNECTION_ERROR",
            ErrorCode::ExtensionMissing => "EXTENSION_MISSING",
            ErrorCode::NoModel => "NO_MODEL",
            ErrorCode::LlmError => "LLM_ERROR",
            ErrorCode::AttemptsExhausted => "ATTEMPTS_EXHAUSTED",
            ErrorCode::ResultTooLarge => "RESULT_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::ConfigError => "CONFIG_ERROR",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::Cancelled => "CANCELLED",
        }
    }
}
