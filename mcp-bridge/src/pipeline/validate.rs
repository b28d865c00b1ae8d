//! Stage 4, validate: `nlq_validate` checks the SQL inside PostgreSQL (one read-only query,
//! what it reads allowed, its cost within the limit). A refusal is read through the contract
//! with the extension ([`crate::contract`]): what users are told, and whether the model is
//! asked for another query and what it is told.

use super::Ctx;
use crate::answer::{ToolError, Validation};
use crate::contract::{ExtCode, Meaning};
use crate::prompts::Feedback;
use crate::registry::Database;

/// `nlq_validate` refused the SQL.
pub struct Refusal {
    pub code: ExtCode,
    pub meaning: Meaning,
    pub report: Validation,
    /// The error users get if no later attempt succeeds.
    pub error: ToolError,
}

pub enum Outcome {
    Accepted,
    Refused(Box<Refusal>),
    /// `nlq_validate` could not be asked (connection, cancellation).
    Failed(ToolError),
}

impl Refusal {
    fn new(report: Validation) -> Refusal {
        let code = ExtCode::parse(&report.code);
        let meaning = code.meaning();
        let facts = report.facts();
        let mut error = ToolError::new(
            meaning.error,
            format!(
                "the model's query was refused by nlq_validate ({}{}): {}",
                crate::untrusted::one_line(code.as_str()),
                if facts.is_empty() {
                    String::new()
                } else {
                    format!(": {facts}")
                },
                meaning.advice
            ),
            meaning.retryable,
        )
        .with_detail(report.message.clone());
        error.pg_nlq_code = Some(code.clone());
        Refusal {
            code,
            meaning,
            report,
            error,
        }
    }

    /// What the model is told about it.
    pub fn feedback(&self, sql: String) -> Feedback {
        Feedback::Rejected {
            sql,
            code: self.code.as_str().to_string(),
            message: match self.report.facts() {
                facts if facts.is_empty() => self.report.message.clone(),
                facts => format!("{} ({facts})", self.report.message),
            },
            advice: self.meaning.advice.to_string(),
        }
    }

    /// Whether the model used something it was not shown: the next context is wider.
    pub fn widens_context(&self) -> bool {
        self.code == ExtCode::UndefinedObject
    }
}

pub async fn validate(ctx: &Ctx<'_>, database: &Database, sql: &str) -> Outcome {
    match database.validate(sql, ctx.cancel()).await {
        Ok(report) if report.ok => Outcome::Accepted,
        Ok(report) => Outcome::Refused(Box::new(Refusal::new(report))),
        Err(err) => Outcome::Failed(err),
    }
}
