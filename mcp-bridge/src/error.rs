//! The bridge's errors. There is one vocabulary of codes users see ([`ErrorCode`], listed in
//! the README): a tool's [`ToolError`] carries one, and [`BridgeError`] — what start-up,
//! configuration and the command line fail with — maps to the same codes
//! ([`BridgeError::code`]). Messages say what went wrong and what to do about it; they never
//! carry a password (every message passes [`crate::redact`]).

use std::error::Error as _;

use crate::answer::{ErrorCode, ToolError};

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
