//! Stage 5, run: `nlq_run` runs the checked SQL read-only, capped in rows, bytes and time. A
//! failure the model can correct (an error in the query, a timeout, a refusal) is fed back;
//! one it cannot (the connection, the policy, a cancellation) ends the question.

use super::Ctx;
use crate::answer::{RunResult, ToolError};
use crate::registry::Database;

pub enum Outcome {
    Ran(RunResult),
    Failed {
        error: ToolError,
        /// Whether the model is asked for another query.
        regenerate: bool,
    },
}

pub async fn run(ctx: &Ctx<'_>, database: &Database, sql: &str, limit: u32) -> Outcome {
    match database.run(sql, limit, ctx.cancel()).await {
        Ok(result) => Outcome::Ran(result),
        Err(error) => {
            // pg_nlq's code decides (the contract); a failure without one is the bridge's or
            // the connection's, which another query cannot fix.
            let regenerate = error
                .pg_nlq_code
                .as_ref()
                .is_some_and(|c| c.meaning().regenerate);
            Outcome::Failed { error, regenerate }
        }
    }
}

/// What the model is told to do about a failed run.
pub fn advice(error: &ToolError) -> &'static str {
    error
        .pg_nlq_code
        .as_ref()
        .map(|c| c.meaning().advice)
        .unwrap_or("correct the query so that PostgreSQL runs it")
}
