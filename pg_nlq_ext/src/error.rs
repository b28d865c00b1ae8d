//! Errors the extension raises, each with its own SQLSTATE. Messages name the problem and what
//! to do about it; they never carry data or secrets.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::codes::Code;

#[derive(Debug, thiserror::Error)]
pub enum NlqError {
    #[error("{0} must not be NULL")]
    NullArgument(&'static str),
    #[error("schema does not exist: {0}")]
    UnknownSchema(String),
    #[error("{0} must have the same length")]
    ArrayLengthMismatch(&'static str),
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
    #[error("{0}")]
    InvalidArgument(String),
}

impl NlqError {
    fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            NlqError::NullArgument(_) => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            // 3F000, the code PostgreSQL itself uses for an unknown schema
            NlqError::UnknownSchema(_) => PgSqlErrorCode::ERRCODE_INVALID_SCHEMA_NAME,
            NlqError::ArrayLengthMismatch(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            NlqError::Internal { .. } => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            NlqError::Refused { sqlstate, .. } => *sqlstate,
            NlqError::InvalidArgument(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        }
    }

    /// The code that opens the DETAIL of every error pg_nlq raises.
    pub fn code(&self) -> Code {
        match self {
            NlqError::NullArgument(_)
            | NlqError::UnknownSchema(_)
            | NlqError::ArrayLengthMismatch(_)
            | NlqError::InvalidArgument(_) => Code::InvalidArgument,
            NlqError::Internal { .. } => Code::InternalError,
            NlqError::Refused { code, .. } => *code,
        }
    }

    fn detail(&self) -> String {
        let code = self.code().as_str();
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
