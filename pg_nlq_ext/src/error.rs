//! Errors the extension raises, each with its own SQLSTATE. Messages name the problem and what
//! to do about it; they never carry data or secrets.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::codes::Code;

#[derive(Debug, thiserror::Error)]
pub enum NlqError {
    #[error("{0} must not be NULL")]
    NullArgument(&'static str),
    #[error("an element of {0} must not be NULL")]
    NullElement(&'static str),
    #[error("schema does not exist: {0}")]
    UnknownSchema(String),
    /// Arrays passed together whose lengths differ; the first argument names them.
    #[error("{} must have the same length", and_list(.0))]
    ArrayLengthMismatch(&'static [&'static str]),
    #[error("{context} failed")]
    Internal {
        context: &'static str,
        detail: String,
    },
    /// nlq_run() refused or could not run a query. `code` is the validation code (or
    /// STATEMENT_TIMEOUT, LOCK_TIMEOUT, EXECUTION_ERROR) and opens the DETAIL, so a client can
    /// tell the cases apart whatever the SQLSTATE.
    #[error("{message}")]
    Refused {
        code: Code,
        message: String,
        sqlstate: PgSqlErrorCode,
        detail: Option<String>,
        hint: Option<String>,
    },
    /// Another wrong value of argument `argument`.
    #[error("{message}")]
    InvalidArgument {
        argument: &'static str,
        message: String,
    },
}

/// `a, b and c`.
fn and_list(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    }
}

impl NlqError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            NlqError::NullArgument(_) | NlqError::NullElement(_) => {
                PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED
            }
            // 3F000, the code PostgreSQL itself uses for an unknown schema
            NlqError::UnknownSchema(_) => PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            NlqError::ArrayLengthMismatch(_) | NlqError::InvalidArgument { .. } => {
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
            }
            NlqError::Internal { .. } => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            NlqError::Refused { sqlstate, .. } => *sqlstate,
        }
    }

    /// The argument an argument error is about.
    fn argument(&self) -> Option<&'static str> {
        match self {
            NlqError::NullArgument(name) | NlqError::NullElement(name) => Some(name),
            NlqError::UnknownSchema(_) => Some("schemas"),
            NlqError::ArrayLengthMismatch(names) => names.first().copied(),
            NlqError::InvalidArgument { argument, .. } => Some(argument),
            NlqError::Internal { .. } | NlqError::Refused { .. } => None,
        }
    }

    /// The code that opens the DETAIL of every error pg_nlq raises.
    pub fn code(&self) -> Code {
        match self {
            NlqError::Internal { .. } => Code::InternalError,
            NlqError::Refused { code, .. } => *code,
            _ => Code::InvalidArgument,
        }
    }

    /// `CODE`, then what the error names: for an argument error the argument, as
    /// `INVALID_ARGUMENT: {"argument": "row_limit"}`; for a refusal its own detail.
    fn detail(&self) -> String {
        let code = self.code().as_str();
        if let Some(argument) = self.argument() {
            return format!("{code}: {}", serde_json::json!({ "argument": argument }));
        }
        match self {
            // what failed inside pg_nlq is for the server log, not the client
            NlqError::Internal { .. } => format!("{code}: see the server log"),
            NlqError::Refused {
                detail: Some(detail),
                ..
            } => format!("{code}: {detail}"),
            _ => code.to_string(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            NlqError::UnknownSchema(_) => {
                Some("nlq_schema_snapshot(schemas => ...) takes names of existing schemas.".into())
            }
            NlqError::Refused { hint, .. } => hint.clone(),
            _ => None,
        }
    }

    /// Raise this error as a PostgreSQL ERROR; does not return.
    pub fn raise(self) -> ! {
        if let NlqError::Internal { context, detail } = &self {
            pgrx::log!("pg_nlq: {context} failed: {detail}");
        }
        let mut report =
            ErrorReport::new(self.sqlstate(), self.to_string(), "pg_nlq").set_detail(self.detail());
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}

/// Raise an error caught from PostgreSQL or from pg_nlq's own code again, as a fresh ERROR
/// with its SQLSTATE, message, detail and hint and nothing else: no Rust backtrace reaches the
/// client (pgrx would add the one it captured to the DETAIL). A Rust panic is pg_nlq's own
/// failure: its message and backtrace go to the server log, the client gets INTERNAL_ERROR.
pub fn reraise(caught: CaughtError) -> ! {
    match caught {
        CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
            let mut fresh = ErrorReport::new(
                report.sql_error_code(),
                report.message().to_string(),
                "pg_nlq",
            );
            if let Some(detail) = report.detail() {
                fresh = fresh.set_detail(detail.to_string());
            }
            if let Some(hint) = report.hint() {
                fresh = fresh.set_hint(hint.to_string());
            }
            fresh.report(PgLogLevel::ERROR);
            unreachable!("an ERROR report does not return")
        }
        CaughtError::RustPanic { ereport, .. } => NlqError::Internal {
            context: "pg_nlq",
            detail: match ereport.detail_with_backtrace() {
                Some(trace) => format!("{}: {trace}", ereport.message()),
                None => ereport.message().to_string(),
            },
        }
        .raise(),
    }
}

/// Run the body of a SQL-callable function: any error escaping it is raised again through
/// [`reraise`], so what reaches the client never carries a backtrace.
pub fn entry<R>(body: impl FnOnce() -> R) -> R {
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(body))
        .catch_others(|caught| reraise(caught))
        .execute()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_prose() {
        let e = NlqError::ArrayLengthMismatch(&["relids", "attnums", "inherited", "with_values"]);
        assert_eq!(
            e.to_string(),
            "relids, attnums, inherited and with_values must have the same length"
        );
    }

    #[test]
    fn argument_errors_name_their_argument_after_the_code() {
        let errors = [
            (NlqError::NullArgument("sql"), "sql"),
            (NlqError::NullElement("schemas"), "schemas"),
            (NlqError::UnknownSchema("nope".into()), "schemas"),
            (
                NlqError::ArrayLengthMismatch(&["relids", "attnums"]),
                "relids",
            ),
            (
                NlqError::InvalidArgument {
                    argument: "row_limit",
                    message: "row_limit must be at least 1 (got 0)".into(),
                },
                "row_limit",
            ),
        ];
        for (error, argument) in errors {
            let detail = error.detail();
            assert_eq!(
                Code::from_detail(&detail),
                Some(Code::InvalidArgument),
                "{detail}"
            );
            assert_eq!(error.code(), Code::InvalidArgument);
            assert_eq!(
                detail,
                format!("INVALID_ARGUMENT: {{\"argument\":\"{argument}\"}}")
            );
        }
    }
}
