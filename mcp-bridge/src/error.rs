//! Errors of the bridge, each with a stable code that callers (the CLI's `error[CODE]` line,
//! later MCP tool results) can match on. Messages say what went wrong and what to do about it;
//! they never carry a password: a connection string is only ever shown through
//! [`crate::config::redact_dsn`].

use std::error::Error as _;

/// Everything that can go wrong in the bridge.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Missing or malformed configuration (no database given, unparseable connection string).
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, refused the session, or went away.
    #[error("{0}")]
    Connection(String),
    /// The database does not offer `nlq_schema_snapshot()`.
    #[error("{0}")]
    ExtensionMissing(String),
    /// The server rejected a request the bridge made (for example an unknown schema name).
    #[error("{0}")]
    Database(String),
    /// A failure that is the bridge's own fault or an incompatibility (for example a snapshot
    /// document of an unexpected shape).
    #[error("{0}")]
    Internal(String),
}

impl BridgeError {
    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            BridgeError::Config(_) => "CONFIG_ERROR",
            BridgeError::Connection(_) => "CONNECTION_ERROR",
            BridgeError::ExtensionMissing(_) => "EXTENSION_MISSING",
            BridgeError::Database(_) => "DATABASE_ERROR",
            BridgeError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    /// `error[CODE]: message` on a single line, as the CLI prints it.
    pub fn one_line(&self) -> String {
        let message = crate::redact::redact(&self.to_string());
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        format!("error[{}]: {message}", self.code())
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
    fn codes_are_stable() {
        let cases = [
            (BridgeError::Config(String::new()), "CONFIG_ERROR"),
            (BridgeError::Connection(String::new()), "CONNECTION_ERROR"),
            (
                BridgeError::ExtensionMissing(String::new()),
                "EXTENSION_MISSING",
            ),
            (BridgeError::Database(String::new()), "DATABASE_ERROR"),
            (BridgeError::Internal(String::new()), "INTERNAL_ERROR"),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn one_line_flattens_multi_line_messages() {
        let err = BridgeError::Database("ERROR: boom\nDETAIL:  more\n".into());
        assert_eq!(
            err.one_line(),
            "error[DATABASE_ERROR]: ERROR: boom DETAIL: more"
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
