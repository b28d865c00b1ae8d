//! The contract with the extension: the codes pg_nlq reports (`nlq_validate`'s `code`) and
//! raises (the word at the head of an error's DETAIL), parsed into one enum, and the one
//! mapping of each to what the bridge does with it — the error code users see, whether
//! retrying the same call may help, whether the model is asked for another query, and what
//! the model is told.
//!
//! The list mirrors `pg_nlq_ext/src/codes.rs` (a test reads that file and checks both agree).
//! A code this bridge does not know (a newer extension) has one defined meaning: the query is
//! not used, the error is `EXECUTION_ERROR` (not retryable), the code is shown as the extension
//! sent it, and the model is asked for another query.

use crate::code::ErrorCode;

/// A code of pg_nlq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtCode {
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
    TooComplex,
    InvalidQuery,
    StatementTimeout,
    LockTimeout,
    ExecutionError,
    PolicyError,
    InvalidArgument,
    InternalError,
    /// A code this bridge does not know, as sent.
    Unknown(String),
}

/// The known codes and their words (declarative: one line per code).
const WORDS: [(ExtCode, &str); 22] = [
    (ExtCode::Ok, "OK"),
    (ExtCode::Empty, "EMPTY"),
    (ExtCode::SyntaxError, "SYNTAX_ERROR"),
    (ExtCode::MultipleStatements, "MULTIPLE_STATEMENTS"),
    (ExtCode::NotAQuery, "NOT_A_QUERY"),
    (ExtCode::SelectInto, "SELECT_INTO"),
    (ExtCode::LockingClause, "LOCKING_CLAUSE"),
    (ExtCode::DataModifyingCte, "DATA_MODIFYING_CTE"),
    (ExtCode::ForbiddenFunction, "FORBIDDEN_FUNCTION"),
    (ExtCode::ForbiddenRelation, "FORBIDDEN_RELATION"),
    (ExtCode::ForbiddenColumn, "FORBIDDEN_COLUMN"),
    (ExtCode::UndefinedObject, "UNDEFINED_OBJECT"),
    (ExtCode::PermissionDenied, "PERMISSION_DENIED"),
    (ExtCode::CostLimitExceeded, "COST_LIMIT_EXCEEDED"),
    (ExtCode::TooComplex, "TOO_COMPLEX"),
    (ExtCode::InvalidQuery, "INVALID_QUERY"),
    (ExtCode::StatementTimeout, "STATEMENT_TIMEOUT"),
    (ExtCode::LockTimeout, "LOCK_TIMEOUT"),
    (ExtCode::ExecutionError, "EXECUTION_ERROR"),
    (ExtCode::PolicyError, "POLICY_ERROR"),
    (ExtCode::InvalidArgument, "INVALID_ARGUMENT"),
    (ExtCode::InternalError, "INTERNAL_ERROR"),
];

/// What the bridge does with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meaning {
    /// The error users see.
    pub error: ErrorCode,
    /// Whether the same call may succeed later (a timeout, when the server is less busy).
    pub retryable: bool,
    /// Whether the pipeline asks the model for another query (with [`Meaning::advice`]).
    pub regenerate: bool,
    /// What the model (and the user) is told to do about it.
    pub advice: &'static str,
}

impl ExtCode {
    /// `nlq_validate`'s `code`, or the word of a DETAIL.
    pub fn parse(word: &str) -> ExtCode {
        let word = word.trim();
        WORDS
            .iter()
            .find(|(_, w)| *w == word)
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| ExtCode::Unknown(word.to_string()))
    }

    /// The code at the head of an error's DETAIL (`CODE` or `CODE: more`), if it looks like
    /// one of pg_nlq's (upper-case letters and `_`); any other DETAIL is the server's text.
    pub fn from_detail(detail: &str) -> Option<ExtCode> {
        let head = detail.split_whitespace().next()?;
        let head = head.trim_end_matches([':', ',', '.']);
        let looks_like_code = !head.is_empty()
            && head.contains('_')
            && head.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        let known = WORDS.iter().any(|(_, w)| *w == head);
        (known || looks_like_code).then(|| ExtCode::parse(head))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ExtCode::Unknown(word) => word,
            known => WORDS
                .iter()
                .find(|(c, _)| c == known)
                .map(|(_, w)| *w)
                .unwrap_or("UNKNOWN"),
        }
    }

    /// The one mapping from pg_nlq's codes to the bridge's behaviour.
    pub fn meaning(&self) -> Meaning {
        use ErrorCode as E;
        let (error, retryable, regenerate, advice) = match self {
            ExtCode::Ok => (E::InternalError, false, false, "pg_nlq reported success"),
            ExtCode::Empty | ExtCode::SyntaxError => (
                E::SyntaxError,
                false,
                true,
                "fix the syntax: write one PostgreSQL SELECT statement",
            ),
            ExtCode::MultipleStatements
            | ExtCode::NotAQuery
            | ExtCode::SelectInto
            | ExtCode::LockingClause
            | ExtCode::DataModifyingCte
            | ExtCode::ForbiddenFunction => (
                E::UnsafeSql,
                false,
                true,
                "only one read-only SELECT is allowed: no writes, no locking clauses, no \
                 functions that change anything",
            ),
            ExtCode::TooComplex => (
                E::UnsafeSql,
                false,
                true,
                "the query is nested too deeply or too large to be checked: write a simpler one",
            ),
            ExtCode::ForbiddenRelation | ExtCode::ForbiddenColumn | ExtCode::PermissionDenied => (
                E::Restricted,
                false,
                true,
                "the database administrator restricts this data: answer without it, or say that \
                 the question cannot be answered with the data this role may read",
            ),
            ExtCode::CostLimitExceeded => (
                E::TooExpensive,
                false,
                true,
                "the query is estimated to cost more than the administrator allows: filter \
                 earlier, aggregate, or use a narrower time range",
            ),
            ExtCode::UndefinedObject => (
                E::ExecutionError,
                false,
                true,
                "use only the relations and columns the schema context shows",
            ),
            ExtCode::InvalidQuery | ExtCode::ExecutionError => (
                E::ExecutionError,
                false,
                true,
                "correct the query so that PostgreSQL accepts and runs it",
            ),
            ExtCode::StatementTimeout | ExtCode::LockTimeout => (
                E::ExecutionTimeout,
                true,
                true,
                "the query took too long: filter earlier, aggregate, or use a narrower time range",
            ),
            ExtCode::PolicyError => (
                E::ConfigError,
                false,
                false,
                "the database's pg_nlq policy settings are invalid: a DBA must fix them",
            ),
            ExtCode::InvalidArgument => (
                E::InvalidArgument,
                false,
                false,
                "an argument of the pg_nlq function is wrong",
            ),
            ExtCode::InternalError => (
                E::InternalError,
                false,
                false,
                "pg_nlq failed; the server log has the detail",
            ),
            ExtCode::Unknown(_) => (
                E::ExecutionError,
                false,
                true,
                "pg_nlq refused the query with a code this bridge does not know: write another \
                 query",
            ),
        };
        Meaning {
            error,
            retryable,
            regenerate,
            advice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_code() {
        for (code, word) in &WORDS {
            assert_eq!(&ExtCode::parse(word), code);
            assert_eq!(code.as_str(), *word);
        }
    }

    /// The bridge knows exactly the codes the extension declares (pg_nlq_ext/src/codes.rs).
    #[test]
    fn the_list_agrees_with_the_extension() {
        let source = include_str!("../../pg_nlq_ext/src/codes.rs");
        let theirs: std::collections::BTreeSet<&str> = source
            .lines()
            .filter_map(|l| l.split("=> \"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .filter(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect();
        let ours: std::collections::BTreeSet<&str> = WORDS.iter().map(|(_, w)| *w).collect();
        assert!(!theirs.is_empty());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn an_unknown_code_has_one_meaning() {
        let code = ExtCode::parse("NEWER_REFUSAL");
        assert_eq!(code, ExtCode::Unknown("NEWER_REFUSAL".into()));
        assert_eq!(code.as_str(), "NEWER_REFUSAL");
        let m = code.meaning();
        assert_eq!(m.error, ErrorCode::ExecutionError);
        assert!(!m.retryable);
        assert!(m.regenerate);
        // from a DETAIL too
        assert_eq!(
            ExtCode::from_detail("NEWER_REFUSAL: something"),
            Some(ExtCode::Unknown("NEWER_REFUSAL".into()))
        );
    }

    #[test]
    fn details_that_are_not_codes_are_the_servers_text() {
        assert_eq!(ExtCode::from_detail("Key (id)=(1) already exists."), None);
        assert_eq!(ExtCode::from_detail("Failing row contains (A_B)."), None);
        assert_eq!(ExtCode::from_detail("NULL"), None);
        assert_eq!(ExtCode::from_detail(""), None);
        assert_eq!(
            ExtCode::from_detail("STATEMENT_TIMEOUT: over 5000 ms"),
            Some(ExtCode::StatementTimeout)
        );
        assert_eq!(ExtCode::from_detail("EMPTY"), Some(ExtCode::Empty));
    }

    #[test]
    fn refusals_mean_what_happened() {
        assert_eq!(
            ExtCode::ForbiddenRelation.meaning().error,
            ErrorCode::Restricted
        );
        assert_eq!(
            ExtCode::PermissionDenied.meaning().error,
            ErrorCode::Restricted
        );
        assert_eq!(
            ExtCode::CostLimitExceeded.meaning().error,
            ErrorCode::TooExpensive
        );
        assert_eq!(ExtCode::NotAQuery.meaning().error, ErrorCode::UnsafeSql);
        assert!(ExtCode::StatementTimeout.meaning().retryable);
        assert!(ExtCode::LockTimeout.meaning().retryable);
        assert!(!ExtCode::PolicyError.meaning().regenerate);
    }
}
