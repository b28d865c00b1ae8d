//! The contract with pg_nlq's clients: every code pg_nlq reports (`nlq_validate()`'s `code`
//! field, and the word that opens the DETAIL of every ERROR `nlq_run()` and the other functions
//! raise), the [`Facts`] a refusal names in keys of its own, and [`Report`], what
//! `nlq_validate()` answers. The bridge parses the same words and keys; a new code is one
//! variant here, its SQLSTATE, and the bridge's mapping.

use pgrx::PgSqlErrorCode;
use serde_json::{json, Map, Value};

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

/// The object a refusal is about, schema-qualified: what the DBA's policy or the caller's
/// privileges restrict (FORBIDDEN_RELATION, FORBIDDEN_COLUMN, FORBIDDEN_FUNCTION,
/// PERMISSION_DENIED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restricted {
    Relation(String),
    Column(String),
    Function(String),
}

impl Restricted {
    const KEYS: [&'static str; 3] = ["relation", "column", "function"];

    fn key(&self) -> &'static str {
        match self {
            Restricted::Relation(_) => "relation",
            Restricted::Column(_) => "column",
            Restricted::Function(_) => "function",
        }
    }

    fn name(&self) -> &str {
        match self {
            Restricted::Relation(n) | Restricted::Column(n) | Restricted::Function(n) => n,
        }
    }
}

/// The planner's estimate that went over a DBA's limit (COST_LIMIT_EXCEEDED).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// `estimated_cost` over `max_cost` (`pg_nlq.max_cost`)
    Cost { estimated: f64, max: f64 },
    /// `estimated_rows` over `max_rows_estimate` (`pg_nlq.max_rows_estimate`)
    Rows { estimated: f64, max: f64 },
}

impl Limit {
    fn keys(self) -> [(&'static str, f64); 2] {
        match self {
            Limit::Cost { estimated, max } => [("estimated_cost", estimated), ("max_cost", max)],
            Limit::Rows { estimated, max } => {
                [("estimated_rows", estimated), ("max_rows_estimate", max)]
            }
        }
    }
}

/// What a refusal names in keys of its own besides its message: in `nlq_validate()`'s report,
/// and as a JSON object after the code in the DETAIL of the error `nlq_run()` raises
/// (`FORBIDDEN_RELATION: {"relation":"hr.salaries"}`), so a client never parses a message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub restricted: Option<Restricted>,
    pub limit: Option<Limit>,
}

impl Facts {
    pub fn restricted(restricted: Restricted) -> Facts {
        Facts {
            restricted: Some(restricted),
            limit: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.restricted.is_none() && self.limit.is_none()
    }

    /// Add the keys to a JSON object.
    pub fn insert_into(&self, map: &mut Map<String, Value>) {
        if let Some(r) = &self.restricted {
            map.insert(r.key().into(), r.name().into());
        }
        if let Some(limit) = self.limit {
            for (key, value) in limit.keys() {
                map.insert(key.into(), json!(value));
            }
        }
    }

    /// The keys as a JSON object's text, for a DETAIL.
    pub fn to_json_text(&self) -> String {
        let mut map = Map::new();
        self.insert_into(&mut map);
        Value::Object(map).to_string()
    }

    /// The facts written after the code at the head of a DETAIL (`CODE: {...}`), if any.
    pub fn from_detail(detail: &str) -> Facts {
        let rest = detail.split_once(':').map_or("", |(_, rest)| rest.trim());
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(rest) else {
            return Facts::default();
        };
        let text = |key: &str| map.get(key).and_then(Value::as_str).map(str::to_string);
        let number = |key: &str| map.get(key).and_then(Value::as_f64);
        let restricted = Restricted::KEYS
            .iter()
            .find_map(|&key| Some((key, text(key)?)))
            .map(|(key, name)| match key {
                "relation" => Restricted::Relation(name),
                "column" => Restricted::Column(name),
                _ => Restricted::Function(name),
            });
        let limit = match (number("max_cost"), number("max_rows_estimate")) {
            (Some(max), _) => {
                number("estimated_cost").map(|estimated| Limit::Cost { estimated, max })
            }
            (None, Some(max)) => {
                number("estimated_rows").map(|estimated| Limit::Rows { estimated, max })
            }
            (None, None) => None,
        };
        Facts { restricted, limit }
    }
}

/// What `nlq_validate()` reports, and what a refusal of `nlq_run()` is made from.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub code: Code,
    pub message: String,
    pub position: Option<i32>,
    pub relations: Vec<String>,
    pub columns: Vec<String>,
    pub functions: Vec<String>,
    pub estimated_cost: Option<f64>,
    pub estimated_rows: Option<f64>,
    /// What the refusal names in keys of its own.
    pub facts: Facts,
    /// For a refusal that came from an error PostgreSQL raised: its SQLSTATE, detail, hint.
    pub sqlstate: Option<PgSqlErrorCode>,
    /// Fill `relations`, `columns` and `functions` (nlq_validate() does; nlq_run() needs the
    /// names only where a policy looks at them).
    pub want_lists: bool,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// Record the first refusal; later ones are not reported.
    pub fn refuse(&mut self, code: Code, message: impl Into<String>) {
        self.refuse_with(code, message, Facts::default());
    }

    /// [`Report::refuse`] with the facts the refusal names.
    pub fn refuse_with(&mut self, code: Code, message: impl Into<String>, facts: Facts) {
        if self.ok() {
            self.code = code;
            self.message = message.into();
            self.facts = facts;
        }
    }

    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "ok": self.ok(),
            "code": self.code.as_str(),
            "message": if self.ok() { "the query may be run" } else { self.message.as_str() },
            "relations": self.relations,
            "columns": self.columns,
            "functions": self.functions,
            "estimated_cost": self.estimated_cost,
            "estimated_rows": self.estimated_rows,
        });
        if let Value::Object(map) = &mut doc {
            self.facts.insert_into(map);
            if let Some(p) = self.position {
                map.insert("position".into(), p.into());
            }
            if let Some(s) = self.sqlstate {
                map.insert("sqlstate".into(), crate::sandbox::sqlstate_text(s).into());
            }
            if let Some(d) = &self.detail {
                map.insert("detail".into(), d.clone().into());
            }
            if let Some(h) = &self.hint {
                map.insert("hint".into(), h.clone().into());
            }
        }
        doc
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
    fn facts_round_trip_through_a_detail() {
        let cases = [
            Facts::restricted(Restricted::Relation("hr.salaries".into())),
            Facts::restricted(Restricted::Column("hr.employees.ssn".into())),
            Facts::restricted(Restricted::Function("pg_catalog.pg_sleep".into())),
            Facts {
                restricted: None,
                limit: Some(Limit::Cost {
                    estimated: 12345.6,
                    max: 1000.0,
                }),
            },
            Facts {
                restricted: None,
                limit: Some(Limit::Rows {
                    estimated: 5e6,
                    max: 1000.0,
                }),
            },
        ];
        for facts in cases {
            let detail = format!("FORBIDDEN_RELATION: {}", facts.to_json_text());
            assert_eq!(Code::from_detail(&detail), Some(Code::ForbiddenRelation));
            assert_eq!(Facts::from_detail(&detail), facts, "{detail}");
        }
        assert!(Facts::from_detail("LOCK_TIMEOUT: another session holds a lock").is_empty());
        assert!(Facts::from_detail("FORBIDDEN_FUNCTION").is_empty());
    }

    #[test]
    fn figures_are_json_numbers() {
        let mut report = Report {
            estimated_cost: Some(12345.6),
            ..Report::default()
        };
        report.refuse_with(
            Code::CostLimitExceeded,
            "too expensive",
            Facts {
                restricted: None,
                limit: Some(Limit::Cost {
                    estimated: 12345.6,
                    max: 1000.0,
                }),
            },
        );
        let doc = report.to_json();
        assert_eq!(doc["estimated_cost"], json!(12345.6));
        assert_eq!(doc["max_cost"], json!(1000.0));
        assert!(doc["max_cost"].is_number());
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
