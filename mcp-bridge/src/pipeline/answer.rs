//! Stage 7, answer: the accepted (or best) attempt as the caller asked for it — the SQL, the
//! rows, or both — with its explanation, assumptions, confidence, the attempts and the tokens.

use super::Candidate;
use crate::answer::{Answer, Attempt, ReturnMode};
use crate::llm::TokenUsage;

/// What the answer is built from.
pub struct Built {
    pub database: String,
    pub question: String,
    pub mode: ReturnMode,
    pub candidate: Candidate,
    pub low_confidence: bool,
    pub attempts: Vec<Attempt>,
    pub tokens: TokenUsage,
    pub model: String,
}

/// The answer; the caller adds the timings.
pub fn answer(built: Built) -> Answer {
    let Built {
        database,
        question,
        mode,
        candidate,
        low_confidence,
        attempts,
        tokens,
        model,
    } = built;
    let (columns, rows, row_count, truncated, truncated_reason, truncated_limit) =
        match candidate.run {
            Some(r) => (
                Some(r.columns),
                // in `sql` mode the rows of the test run are not returned
                (mode != ReturnMode::Sql).then_some(r.rows),
                Some(r.row_count),
                r.truncated,
                r.truncated_reason,
                r.truncated_limit,
            ),
            None => (None, None, None, false, None, None),
        };
    Answer {
        database,
        question,
        return_mode: mode,
        sql: candidate.generated.sql,
        explanation: candidate.generated.explanation,
        assumptions: candidate.generated.assumptions,
        columns,
        rows,
        row_count,
        truncated,
        truncated_reason,
        truncated_limit,
        confidence: candidate.score,
        low_confidence,
        verifier_reasons: candidate.reasons,
        attempts,
        tokens,
        timings: Vec::new(),
        total_ms: 0.0,
        model,
    }
}
