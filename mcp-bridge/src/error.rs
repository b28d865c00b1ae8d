//! The bridge's errors. There is one vocabulary of codes users see ([`ErrorCode`], listed in
//! the README): a tool's [`ToolError`] carries one, and [`BridgeError`] — what start-up,
//! configuration and the command line fail with — maps to the same codes
//! ([`BridgeError::code`]). Messages say what went wrong and what to do about it; they never
//! carry a password (every message passes [`crate::redact`]).

use std::error::Error as _;

use serde::Serialize;

pub use crate::code::ErrorCode;

/// A source error kept with its variant (for logs and `std::error::Error::source`).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong outside a tool call.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Missing or malformed configuration (no database given, unparseable connection string).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, refused the session, or went away.
    #[error("{message}")]
    Connection {
        message: String,
        #[source]
        source: Option<Source>,
    },
    /// A failure that is the bridge's own fault or an incompatibility (for example a snapshot
    /// document of an unexpected shape).
    #[error("{0}")]
    Internal(String),
    /// A failure with its code already decided (a pg_nlq call, the pipeline).
    #[error("{}", .0.full_message())]
    Tool(ToolError),
}

impl BridgeError {
    /// A connection failure and its cause.
    pub fn connection(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> BridgeError {
        BridgeError::Connection {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The code users see.
    pub fn code(&self) -> ErrorCode {
        match self {
            BridgeError::Config(_) => ErrorCode::ConfigError,
            BridgeError::Connection { .. } => ErrorCode::ConnectionError,
            BridgeError::Internal(_) => ErrorCode::InternalError,
            BridgeError::Tool(err) => err.code,
        }
    }

    /// Whether trying again later may help.
    pub fn retryable(&self) -> bool {
        match self {
            BridgeError::Connection { .. } => true,
            BridgeError::Tool(err) => err.retryable,
            BridgeError::Config(_) | BridgeError::Internal(_) => false,
        }
    }

    /// `error[CODE]: message` on a single line, as the CLI prints it.
    pub fn one_line(&self) -> String {
        crate::text::error_line(self.code(), &self.to_string())
    }
}

impl From<ToolError> for BridgeError {
    fn from(err: ToolError) -> Self {
        BridgeError::Tool(err)
    }
}

impl From<BridgeError> for ToolError {
    fn from(err: BridgeError) -> Self {
        match err {
            BridgeError::Tool(tool) => tool,
            other => ToolError::new(other.code(), other.to_string(), other.retryable()),
        }
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Attempt {
    pub number: u32,
    /// The SQL the model wrote, if it wrote any.
    pub sql: Option<String>,
    /// `ACCEPTED`, a validation code (`NOT_A_QUERY`...), `EXECUTION_ERROR`, `LOW_SCORE`,
    /// `UNVERIFIED`, `MALFORMED_OUTPUT`, `LLM_ERROR`, or the code of the error that ended the
    /// question (`CONNECTION_ERROR`...).
    pub outcome: String,
    pub message: String,
    /// The verifier's score, when it ran.
    pub score: Option<u8>,
}

/// An error a tool returns: a stable code, a message a person can act on, whether retrying
/// may help, and (for `query`) every attempt that was made.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ToolError {
    pub code: ErrorCode,
    /// The bridge's own words.
    pub message: String,
    /// What the database server or the model endpoint said (an error message and its hint, a
    /// routing reason...): not the bridge's text, it may quote data, so it is untrusted and
    /// shown only inside the fence ([`crate::untrusted`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// Databases the question could be about (`AMBIGUOUS_QUERY`) or that exist
    /// (`UNKNOWN_DATABASE`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// The database the error concerns, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// pg_nlq's code, when the error is one pg_nlq reported or raised (the contract,
    /// [`crate::contract`]); `code` is what it means for users.
    #[serde(skip)]
    #[schemars(skip)]
    pub pg_nlq_code: Option<crate::contract::ExtCode>,
}

impl ToolError {
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        ToolError {
            code,
            // Every error message passes the one redaction path before anyone sees it.
            message: crate::redact::redact(&message.into()),
            detail: None,
            retryable,
            attempts: Vec::new(),
            candidates: Vec::new(),
            database: None,
            pg_nlq_code: None,
        }
    }

    /// The error, naming the database it concerns (unless it names one already).
    pub fn with_database(mut self, name: impl Into<String>) -> Self {
        if self.database.is_none() {
            self.database = Some(name.into());
        }
        self
    }

    /// The error with `detail`: what the server or the model said (redacted).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        let detail = crate::redact::redact(&detail.into());
        self.detail = (!detail.trim().is_empty()).then_some(detail);
        self
    }

    /// The message followed by the detail: what the model is told about a failed attempt
    /// (inside the prompt's own fence) and what an attempt records.
    pub fn full_message(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{}: {detail}", self.message),
            None => self.message.clone(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message, false)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message, false)
    }

    /// `error[CODE]: message` on one line.
    pub fn one_line(&self) -> String {
        crate::text::error_line(self.code, &self.message)
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ToolError {}

/// A readable description of a PostgreSQL client error: the server's severity, message and hint
/// for an error the server sent, otherwise the client's message followed by its causes (such as
/// the operating system's "Connection refused"). The server's DETAIL is left out: it can quote
/// data.
pub fn describe_pg_error(err: &tokio_postgres::Error) -> String {
    if let Some(db) = err.as_db_error() {
        let mut text = format!("{}: {}", db.severity(), db.message());
        if let Some(hint) = db.hint() {
            text.push_str(" (hint: ");
            text.push_str(hint);
            text.push(')');
        }
        return text;
    }
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_ones_users_see() {
        let cases = [
            (BridgeError::Config(String::new()), ErrorCode::ConfigError),
            (
                BridgeError::Connection {
                    message: String::new(),
                    source: None,
                },
                ErrorCode::ConnectionError,
            ),
            (
                BridgeError::Internal(String::new()),
                ErrorCode::InternalError,
            ),
            (
                BridgeError::Tool(ToolError::new(ErrorCode::ExtensionMissing, "x", false)),
                ErrorCode::ExtensionMissing,
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(ToolError::from(err).code, code);
        }
    }

    #[test]
    fn one_line_flattens_multi_line_messages() {
        let err = BridgeError::Internal("ERROR: boom\nDETAIL:  more\n".into());
        assert_eq!(
            err.one_line(),
            "error[INTERNAL_ERROR]: ERROR: boom DETAIL: more"
        );
    }

    #[test]
    fn client_errors_include_their_causes() {
        let err = match "host=/tmp port=notaport".parse::<tokio_postgres::Config>() {
            Ok(_) => panic!("a non-numeric port must not parse"),
            Err(err) => err,
        };
        assert_eq!(
            describe_pg_error(&err),
            "invalid connection string: invalid value for option `port`"
        );
    }
}
