//! Errors the extension raises, each with its own SQLSTATE. Messages name the problem and what
//! to do about it; they never carry data or secrets.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

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
        code: &'static str,
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

    fn detail(&self) -> Option<String> {
        match self {
            NlqError::Internal { detail, .. } => Some(detail.clone()),
            NlqError::Refused { code, detail, .. } => Some(match detail {
                Some(detail) => format!("{code}: {detail}"),
                None => (*code).to_string(),
            }),
            _ => None,
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
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "pg_nlq");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("an ERROR report does not return")
    }
}
