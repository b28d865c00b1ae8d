//! Verification: does the result answer the question (a score from 0 to 10 and a critique).

use serde::Deserialize;
use serde_json::{json, Value};

use super::{block, parse_object, reply_rule, DATA_RULE};
use crate::answer::ResultColumn;
use crate::llm::{LlmError, Message, StructuredRequest, Task};

pub const VERIFY_SCHEMA_NAME: &str = "result_verdict";

/// What the verifier judges.
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    pub question: &'a str,
    pub sql: &'a str,
    pub explanation: &'a str,
    pub columns: &'a [ResultColumn],
    /// Rows the query returned (before any cut by the caller).
    pub row_count: u64,
    /// Whether the runner stopped at its row limit.
    pub truncated: bool,
    /// The first rows, as many as the caller chose to show.
    pub sample_rows: &'a [Vec<Value>],
    /// The lowest score accepted (`pipeline.verify_threshold`).
    pub threshold: u8,
}

/// The verifier's judgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0–10; 10: fully answers the question.
    pub score: u8,
    pub reasons: String,
    /// What to change in the query; empty when nothing.
    pub critique: String,
}

pub(crate) fn verify_schema(threshold: u8) -> Value {
    let accept = format!(
        "0 to 10: 10 fully answers the question, {threshold} to 9 answers it with minor \
         issues, below {threshold} wrong, incomplete or answers another question."
    );
    json!({
        "type": "object",
        "properties": {
            "score": {
                "type": "integer",
                "description": accept
            },
            "reasons": {
                "type": "string",
                "description": "One to three sentences justifying the score."
            },
            "critique": {
                "type": "string",
                "description": "What to change in the query to answer the question; empty when \
                                nothing."
            }
        },
        "required": ["score", "reasons", "critique"],
        "additionalProperties": false
    })
}

/// Asks whether a result answers the question.
pub fn verify_request(input: &VerifyInput<'_>) -> StructuredRequest {
    let schema = verify_schema(input.threshold);
    let system = format!(
        "You review the answer to a question about a PostgreSQL database: the SQL that was \
         run, its result columns, the number of rows and the first rows. Judge whether the \
         result answers the question as asked.\n\
         Check: the right tables and joins; filters match the question (time ranges, statuses, \
         values); aggregation at the level asked for (per customer, per month...); ordering and \
         number of rows for top-N questions; the columns the question needs are present; no \
         duplicated rows caused by joins. An empty result is acceptable only when the question \
         can plausibly have no answer. A truncated result is normal: the runner caps the rows.\n\
         Score rubric: 10 = fully and correctly answers the question; {threshold}-9 = answers \
         it with minor issues (naming, extra columns, rounding); lower = partly answers it, is \
         probably wrong, or answers another question. Any score below {threshold} means the \
         query must be changed: then \"critique\" says precisely what to change (which table, \
         filter, join or grouping). Questions may be in any language; write \"reasons\" and \
         \"critique\" in English.\n\n\
         {DATA_RULE}\n\n{}",
        reply_rule(VERIFY_SCHEMA_NAME, &schema),
        threshold = input.threshold,
    );

    let columns = input
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                crate::text::collapse(&c.name),
                crate::text::collapse(&c.type_name)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut rows = String::new();
    for row in input.sample_rows {
        rows.push_str(&Value::Array(row.clone()).to_string());
        rows.push('\n');
    }
    let shown = input.sample_rows.len();
    let user = format!(
        "{}\n\n{}\n\n{}\n\nresult columns (name type):\n{}\nrow count: {}{}\nfirst {shown} rows \
         (JSON arrays, in column order):\n{}\n\nHow well does this result answer the question?",
        block("question", input.question),
        block("sql", input.sql.trim()),
        block("explanation", input.explanation.trim()),
        // Column names come from the query (aliases the model wrote) and the database.
        block("columns", &columns),
        input.row_count,
        if input.truncated {
            " (truncated: the query has more rows than were fetched)"
        } else {
            ""
        },
        block("rows", rows.trim_end()),
    );

    StructuredRequest {
        task: Task::Verify,
        messages: vec![Message::system(system), Message::user(user)],
        schema_name: VERIFY_SCHEMA_NAME,
        schema,
    }
}

#[derive(Deserialize)]
struct VerdictReply {
    score: Value,
    #[serde(default)]
    reasons: String,
    #[serde(default)]
    critique: String,
}

/// Reads the reply to [`verify_request`]. The score must be an integer from 0 to 10 (`8.0` is
/// accepted).
pub fn parse_verdict(content: &str) -> Result<Verdict, LlmError> {
    let reply: VerdictReply = parse_object(content, "{score, reasons, critique}")?;
    let score = match &reply.score {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        }),
        _ => None,
    };
    let score = match score {
        Some(s) if s <= 10 => s as u8,
        _ => {
            return Err(LlmError::Malformed(format!(
                "the reply's \"score\" must be an integer from 0 to 10, not {}",
                crate::text::clip(&reply.score.to_string(), 40)
            )))
        }
    };
    Ok(Verdict {
        score,
        reasons: reply.reasons.trim().to_string(),
        critique: reply.critique.trim().to_string(),
    })
}
