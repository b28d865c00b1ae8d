//! Stage 6, verify: the model judges whether the result answers the question (a score from 0
//! to 10 against `pipeline.verify_threshold`, reasons and a critique), from the SQL, its
//! columns, the row count and the first rows ([`crate::prompts::verify`]).

use super::Ctx;
use crate::answer::{RunResult, ToolError};
use crate::llm::LlmError;
use crate::prompts::{self, Generated, Verdict, VerifyInput};

/// Longest text of one cell shown to the verifier.
const VERIFY_CELL_CHARS: usize = 200;

pub enum Outcome {
    Judged(Verdict),
    /// The verdict could not be read, twice: the result stands, unverified.
    Unverified(String),
    /// The model could not be asked.
    Failed(ToolError),
}

pub async fn verify(
    ctx: &Ctx<'_>,
    question: &str,
    generated: &Generated,
    result: &RunResult,
) -> Outcome {
    let p = &ctx.settings.pipeline;
    let sample: Vec<Vec<serde_json::Value>> = result
        .rows
        .iter()
        .take(p.verify_sample_rows)
        .map(|row| row.iter().map(clip_value).collect())
        .collect();
    let request = prompts::verify_request(&VerifyInput {
        question,
        sql: &generated.sql,
        explanation: &generated.explanation,
        columns: &result.columns,
        row_count: result.row_count,
        truncated: result.truncated,
        sample_rows: &sample,
        threshold: p.verify_threshold,
    });
    let mut last = String::from("no verdict");
    // A malformed verdict is asked for once more before giving up on verification.
    for _ in 0..2 {
        match ctx.complete(request.clone()).await {
            Ok(reply) => match prompts::parse_verdict(&reply.content) {
                Ok(v) => return Outcome::Judged(v),
                Err(LlmError::Malformed(m)) => last = m,
                Err(e) => return Outcome::Failed(e.into()),
            },
            // the OpenAI client checks the reply against the schema itself
            Err(LlmError::Malformed(m)) => last = m,
            Err(e) => return Outcome::Failed(e.into()),
        }
    }
    Outcome::Unverified(last)
}

/// A cell shortened for the verifier's prompt.
fn clip_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => {
            serde_json::Value::String(crate::text::clip(s, VERIFY_CELL_CHARS))
        }
        other => {
            let text = other.to_string();
            if text.len() > VERIFY_CELL_CHARS * 4 {
                serde_json::Value::String(crate::text::clip(&text, VERIFY_CELL_CHARS))
            } else {
                other.clone()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_clipped() {
        let long = serde_json::Value::String("x".repeat(500));
        match clip_value(&long) {
            serde_json::Value::String(s) => assert_eq!(s.chars().count(), VERIFY_CELL_CHARS + 1),
            other => panic!("{other}"),
        }
        assert_eq!(clip_value(&serde_json::json!(5)), serde_json::json!(5));
    }
}
