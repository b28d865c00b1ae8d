//! What the `query` tool (and `ask`) takes and gives back: the request, the answer with
//! everything that explains it, and errors with a stable code.

use serde::{Deserialize, Serialize};

use crate::llm::TokenUsage;

pub use crate::code::ErrorCode;
pub use crate::error::{Attempt, ToolError};

/// What the caller wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReturnMode {
    /// Only the SQL (still validated, and test-run with a small limit unless opted out).
    Sql,
    /// The rows (the default).
    Result,
    /// The SQL and the rows.
    Both,
}

impl ReturnMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnMode::Sql => "sql",
            ReturnMode::Result => "result",
            ReturnMode::Both => "both",
        }
    }
}

impl std::str::FromStr for ReturnMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sql" => Ok(ReturnMode::Sql),
            "result" | "rows" => Ok(ReturnMode::Result),
            "both" => Ok(ReturnMode::Both),
            other => Err(format!(
                "unknown return mode {other:?}: use sql, result or both"
            )),
        }
    }
}

/// A question for the pipeline.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub question: String,
    /// The database to ask; `None` lets the bridge choose.
    pub database: Option<String>,
    /// `None`: inferred from the question, else `result`.
    pub return_mode: Option<ReturnMode>,
    /// Most rows to return; `None`: the configured default.
    pub row_limit: Option<u32>,
    /// In `sql` mode, whether to test-run the SQL (default true).
    pub test_run: Option<bool>,
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResultColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// What `nlq_run` returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunResult {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub row_count: u64,
    pub truncated: bool,
    /// Which cap cut the rows: `row_limit` (the limit asked for), `max_rows` (the DBA's
    /// `pg_nlq.max_rows`), `max_result_bytes` (the DBA's byte cap).
    #[serde(default)]
    pub truncated_reason: Option<String>,
    /// That cap's value (rows, or bytes for `max_result_bytes`).
    #[serde(default)]
    pub truncated_limit: Option<u64>,
    #[serde(default)]
    pub elapsed_ms: f64,
}

/// What a truncated result says: which cap cut it, its value, that more rows exist, and how
/// to get more where that is possible. `None` when the result is whole.
pub fn truncation_note(
    truncated: bool,
    reason: Option<&str>,
    limit: Option<u64>,
) -> Option<String> {
    if !truncated {
        return None;
    }
    let at = |unit: &str| limit.map(|n| format!(" at {n} {unit}")).unwrap_or_default();
    Some(match reason {
        Some("row_limit") => format!(
            "more rows exist: cut{} by the row limit asked for; ask for more rows (up to the \
             bridge's pipeline.max_row_limit), or for an aggregate",
            at("rows")
        ),
        Some("max_rows") => format!(
            "more rows exist: cut{}, the most the database administrator allows \
             (pg_nlq.max_rows); ask for an aggregate or a narrower question",
            at("rows")
        ),
        Some("max_result_bytes") => format!(
            "more rows exist: cut{}, the administrator's cap on a result's size \
             (pg_nlq.max_result_bytes); select fewer or narrower columns",
            at("bytes of rows")
        ),
        Some(other) => format!("more rows exist: cut by {}", crate::text::collapse(other)),
        None => "more rows exist".to_string(),
    })
}

/// What `nlq_validate` returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Validation {
    pub ok: bool,
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub relations: Vec<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub functions: Vec<String>,
    #[serde(default)]
    pub estimated_cost: Option<f64>,
    #[serde(default)]
    pub estimated_rows: Option<f64>,
    /// For `COST_LIMIT_EXCEEDED`: the administrator's limit on the cost (`pg_nlq.max_cost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// For `COST_LIMIT_EXCEEDED`: the limit on the row estimate (`pg_nlq.max_rows_estimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows_estimate: Option<f64>,
    /// What is restricted (`FORBIDDEN_*`, `PERMISSION_DENIED`), schema-qualified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The SQLSTATE of the error PostgreSQL raised, when the refusal came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
}

impl Validation {
    /// What a refusal concerns, in the bridge's words: the restricted object, or the estimate
    /// against the limit. Empty when the report names nothing.
    pub fn facts(&self) -> String {
        let mut facts = Vec::new();
        for (what, name) in [
            ("relation", &self.relation),
            ("column", &self.column),
            ("function", &self.function),
        ] {
            if let Some(name) = name {
                facts.push(format!("{what} {}", crate::untrusted::shown_name(name)));
            }
        }
        if let (Some(estimate), Some(limit)) = (self.estimated_cost, self.max_cost) {
            facts.push(format!(
                "estimated cost {estimate:.0}, over the limit of {limit:.0} (pg_nlq.max_cost)"
            ));
        }
        if let (Some(estimate), Some(limit)) = (self.estimated_rows, self.max_rows_estimate) {
            facts.push(format!(
                "estimated {estimate:.0} rows, over the limit of {limit:.0} \
                 (pg_nlq.max_rows_estimate)"
            ));
        }
        facts.join("; ")
    }
}

/// A pipeline stage, as named in timings and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Resolve,
    Context,
    Generate,
    Validate,
    Run,
    Verify,
    Answer,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Resolve,
        Stage::Context,
        Stage::Generate,
        Stage::Validate,
        Stage::Run,
        Stage::Verify,
        Stage::Answer,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Context => "context",
            Stage::Generate => "generate",
            Stage::Validate => "validate",
            Stage::Run => "run",
            Stage::Verify => "verify",
            Stage::Answer => "answer",
        }
    }
}

/// Time spent in one stage over the whole request (summed over attempts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StageTiming {
    pub stage: Stage,
    pub ms: f64,
    /// How many times the stage ran.
    pub runs: u32,
}

/// The answer to a question.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Answer {
    pub database: String,
    pub question: String,
    pub return_mode: ReturnMode,
    pub sql: String,
    pub explanation: String,
    pub assumptions: Vec<String>,
    /// Present in `result` and `both` mode, and in `sql` mode after a test run.
    pub columns: Option<Vec<ResultColumn>>,
    /// Present in `result` and `both` mode.
    pub rows: Option<Vec<Vec<serde_json::Value>>>,
    /// Rows returned (not the total: when `truncated`, more exist).
    pub row_count: Option<u64>,
    pub truncated: bool,
    /// Which cap cut the rows (see [`RunResult::truncated_reason`]) and its value.
    pub truncated_reason: Option<String>,
    pub truncated_limit: Option<u64>,
    /// The verifier's score (0–10); `None` when verification did not run.
    pub confidence: Option<u8>,
    /// True when the attempts ran out and this is the best one, below the threshold.
    pub low_confidence: bool,
    pub verifier_reasons: Option<String>,
    pub attempts: Vec<Attempt>,
    pub tokens: TokenUsage,
    pub timings: Vec<StageTiming>,
    pub total_ms: f64,
    /// What answered: "openai gpt-5-mini", "client sampling".
    pub model: String,
}

/// A database's state, as `list_databases` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its schema is loaded; questions can be asked.
    Ready,
    /// Its schema is loaded, but the role sees no relation in it: kept out of routing.
    Empty,
    /// Its schema is being loaded.
    Loading,
    /// It could not be reached or its schema could not be loaded; retried in the background.
    Unavailable,
    /// It does not have pg_nlq.
    ExtensionMissing,
    /// The server could not be asked which databases it has; retried in the background.
    ServerUnavailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Empty => "empty",
            Status::Loading => "loading",
            Status::Unavailable => "unavailable",
            Status::ExtensionMissing => "extension_missing",
            Status::ServerUnavailable => "server_unavailable",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database as `list_databases` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatabaseInfo {
    /// The name tools take (the database name; `server/database` when two servers have one of
    /// the same name).
    pub name: String,
    /// Why the name is not the database's own name (escaped, or qualified by its server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub server: String,
    pub description: Option<String>,
    pub status: Status,
    /// Why it is not ready.
    pub reason: Option<String>,
    pub relations: Option<usize>,
    pub fingerprint: Option<String>,
}

#[cfg(test)]
mod truncation_and_facts {
    use super::*;

    #[test]
    fn truncation_says_which_cap_its_value_and_what_to_do() {
        assert_eq!(truncation_note(false, Some("max_rows"), Some(50)), None);
        let note = truncation_note(true, Some("max_rows"), Some(50)).unwrap_or_default();
        assert!(note.contains("more rows exist"), "{note}");
        assert!(note.contains("at 50 rows"), "{note}");
        assert!(note.contains("pg_nlq.max_rows"), "{note}");
        let note = truncation_note(true, Some("row_limit"), Some(5)).unwrap_or_default();
        assert!(note.contains("row limit asked for"), "{note}");
        let note = truncation_note(true, Some("max_result_bytes"), Some(1024)).unwrap_or_default();
        assert!(note.contains("1024 bytes"), "{note}");
        assert!(note.contains("fewer or narrower columns"), "{note}");
    }

    #[test]
    fn refusals_name_what_and_the_figures() {
        let report: Validation = serde_json::from_str(
            r#"{"ok": false, "code": "COST_LIMIT_EXCEEDED", "message": "too costly",
                "estimated_cost": 12345.6, "max_cost": 1000}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.facts(),
            "estimated cost 12346, over the limit of 1000 (pg_nlq.max_cost)"
        );
        let report: Validation = serde_json::from_str(
            r#"{"ok": false, "code": "FORBIDDEN_RELATION", "message": "denied",
                "relation": "hr.salaries"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(report.facts(), "relation hr.salaries");
    }
}
