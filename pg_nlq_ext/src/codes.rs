//! Every code pg_nlq reports: `nlq_validate()`'s `code` field, and the word that opens the
//! DETAIL of every ERROR `nlq_run()` (and the other functions) raise. The bridge parses the same
//! words; a new code is one variant here, its SQLSTATE, and the bridge's mapping.

use pgrx::PgSqlErrorCode;

/// The outcome of a call, as reported in `code` / at the head of an error's DETAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Code {
    #[default]
    Ok,
    Empty,
    SyntaxError,
    MultipleStatements,
    NotAQuery,
    SelectInto,
    LockingClause,
    DataModifyingCte,
    ForbiddenFunction,
    ForbiddenRelation,
    ForbiddenColumn,
    UndefinedObject,
    PermissionDenied,
    CostLimitExceeded,
    /// Nested too deeply (or too large) to check within pg_nlq's bounds.
    TooComplex,
    /// Any other error PostgreSQL raised while analysing or planning (a type mismatch, an
    /// ambiguous column, division by zero in a constant, an internal error a function raised
    /// on the query's arguments...), with its own message.
    InvalidQuery,
    /// Parsing, planning or running took longer than `pg_nlq.statement_timeout`.
    StatementTimeout,
    /// A lock could not be had within `pg_nlq.lock_timeout`.
    LockTimeout,
    /// The query failed while it ran (nlq_run only).
    ExecutionError,
    /// A `pg_nlq.*` policy setting could not be read or did not take effect.
    PolicyError,
    /// A wrong argument to a pg_nlq function (not the query itself).
    InvalidArgument,
    /// pg_nlq itself failed; the server log has the detail.
    InternalError,
}

impl Code {
    pub const ALL: [Code; 22] = [
        Code::Ok,
        Code::Empty,
        Code::SyntaxError,
        Code::MultipleStatements,
        Code::NotAQuery,
        Code::SelectInto,
        Code::LockingClause,
        Code::DataModifyingCte,
        Code::ForbiddenFunction,
        Code::ForbiddenRelation,
        Code::ForbiddenColumn,
        Code::UndefinedObject,
        Code::PermissionDenied,
        Code::CostLimitExceeded,
        Code::TooComplex,
        Code::InvalidQuery,
        Code::StatementTimeout,
        Code::LockTimeout,
        Code::ExecutionError,
        Code::PolicyError,
        Code::InvalidArgument,
        Code::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Empty => "EMPTY",
            Code::SyntaxError => "SYNTAX_ERROR",
            Code::MultipleStatements => "MULTIPLE_STATEMENTS",
            Code::NotAQuery => "NOT_A_QUERY",
            Code::SelectInto => "SELECT_INTO",
            Code::LockingClause => "LOCKING_CLAUSE",
            Code::DataModifyingCte => "DATA_MODIFYING_CTE",
            Code::ForbiddenFunction => "FORBIDDEN_FUNCTION",
            Code::ForbiddenRelation => "FORBIDDEN_RELATION",
            Code::ForbiddenColumn => "FORBIDDEN_COLUMN",
            Code::UndefinedObject => "UNDEFINED_OBJECT",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::CostLimitExceeded => "COST_LIMIT_EXCEEDED",
            Code::TooComplex => "TOO_COMPLEX",
            Code::InvalidQuery => "INVALID_QUERY",
            Code::StatementTimeout => "STATEMENT_TIMEOUT",
            Code::LockTimeout => "LOCK_TIMEOUT",
            Code::ExecutionError => "EXECUTION_ERROR",
            Code::PolicyError => "POLICY_ERROR",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::InternalError => "INTERNAL_ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code at the head of an error's DETAIL (`CODE` or `CODE: more`), if any.
    pub fn from_detail(detail: &str) -> Option<Code> {
        let head = detail.split(':').next().unwrap_or(detail);
        Code::parse(head.trim())
    }

    /// The SQLSTATE raised for a refusal with this code; `original` is PostgreSQL's own where
    /// the refusal came from an error it raised.
    pub fn sqlstate(self, original: Option<PgSqlErrorCode>) -> PgSqlErrorCode {
        use PgSqlErrorCode::*;
        match self {
            Code::Ok => ERRCODE_SUCCESSFUL_COMPLETION,
            Code::Empty | Code::SyntaxError | Code::MultipleStatements => ERRCODE_SYNTAX_ERROR,
            Code::NotAQuery | Code::SelectInto | Code::LockingClause | Code::DataModifyingCte => {
                ERRCODE_READ_ONLY_SQL_TRANSACTION
            }
            Code::ForbiddenFunction
            | Code::ForbiddenRelation
            | Code::ForbiddenColumn
            | Code::PermissionDenied => ERRCODE_INSUFFICIENT_PRIVILEGE,
            Code::UndefinedObject => original.unwrap_or(ERRCODE_UNDEFINED_OBJECT),
            Code::InvalidQuery | Code::ExecutionError => {
                match original {
                    // an internal error a function raised on the query's own arguments is
                    // reported, not passed on as pg_nlq's internal failure
                    Some(ERRCODE_INTERNAL_ERROR) | None => {
                        ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION
                    }
                    Some(state) => state,
                }
            }
            Code::CostLimitExceeded => ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            Code::TooComplex => ERRCODE_STATEMENT_TOO_COMPLEX,
            Code::StatementTimeout => ERRCODE_QUERY_CANCELED,
            Code::LockTimeout => ERRCODE_LOCK_NOT_AVAILABLE,
            Code::PolicyError | Code::InvalidArgument => ERRCODE_INVALID_PARAMETER_VALUE,
            Code::InternalError => ERRCODE_INTERNAL_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert_eq!(
                Code::from_detail(&format!("{}: more", code.as_str())),
                Some(code)
            );
        }
        assert_eq!(Code::parse("NOPE"), None);
        assert_eq!(Code::from_detail("at character 3"), None);
    }

    #[test]
    fn internal_errors_of_functions_are_not_reported_as_internal() {
        assert_ne!(
            Code::InvalidQuery.sqlstate(Some(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR)),
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR
        );
        assert_eq!(
            Code::ExecutionError.sqlstate(Some(PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO)),
            PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO
        );
    }
}
