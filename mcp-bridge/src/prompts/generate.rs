//! Generation: the SQL that answers a question, from the schema context and the feedback of
//! earlier attempts.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{block, parse_object, reply_rule, DATA_RULE};
use crate::llm::{LlmError, Message, StructuredRequest, Task};

pub const GENERATE_SCHEMA_NAME: &str = "sql_answer";

/// Why an earlier attempt was not accepted; shown to the model so that it corrects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// `nlq_validate` refused the SQL.
    Rejected {
        sql: String,
        code: String,
        message: String,
        /// What to do about it ([`crate::contract::Meaning::advice`]).
        advice: String,
    },
    /// The SQL failed when run.
    ExecutionFailed {
        sql: String,
        message: String,
        advice: String,
    },
    /// The verifier judged that the result does not answer the question.
    LowScore {
        sql: String,
        score: u8,
        critique: String,
    },
    /// The reply could not be read.
    Malformed { message: String },
}

/// What the SQL is written from.
#[derive(Debug, Clone, Copy)]
pub struct GenerateInput<'a> {
    pub question: &'a str,
    pub database: &'a str,
    pub description: Option<&'a str>,
    /// The server's major version (from the snapshot), for the dialect.
    pub server_major: u32,
    /// [`crate::render::schema::render_schema`] of the database (or a part of it).
    pub schema_context: &'a str,
    /// Rows the runner returns at most.
    pub row_limit: u32,
    /// Earlier attempts at this question, oldest first.
    pub feedback: &'a [Feedback],
}

/// The SQL the model wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub sql: String,
    pub explanation: String,
    pub assumptions: Vec<String>,
}

fn generate_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "sql": {
                "type": "string",
                "description": "Exactly one read-only PostgreSQL query (SELECT or WITH ... \
                                SELECT), without a trailing semicolon."
            },
            "explanation": {
                "type": "string",
                "description": "One or two sentences, in the language of the question, on \
                                what the query returns."
            },
            "assumptions": {
                "type": "array",
                "items": { "type": "string" },
                "description": "How ambiguous parts of the question were interpreted; empty \
                                when there were none."
            }
        },
        "required": ["sql", "explanation", "assumptions"],
        "additionalProperties": false
    })
}

/// Asks for the SQL that answers a question.
pub fn generate_request(input: &GenerateInput<'_>) -> StructuredRequest {
    let schema = generate_schema();
    let system = format!(
        "You are an expert PostgreSQL analyst. You translate a question about one database \
         into one SQL query that answers it.\n\
         Rules:\n\
         1. PostgreSQL {major} dialect. Write exactly one read-only query: a SELECT, optionally \
         starting with WITH. No INSERT, UPDATE, DELETE, MERGE, DDL, COPY, transaction or \
         session commands, no data-modifying CTEs, no second statement, no trailing semicolon.\n\
         2. Use only the relations and columns listed in <schema_context>; never invent names. \
         Qualify every table and view with its schema (schema.table). Double-quote identifiers \
         that need it.\n\
         3. The runner returns at most {limit} rows, so a LIMIT is not needed to cap the output. \
         Add LIMIT only when the question asks for a number of rows (\"top 5\", \"前10名\"), and \
         then always with an ORDER BY that defines the ranking. Order the rows whenever the \
         question implies an order (top, most, latest, ranking, per month).\n\
         4. Filter on values as they are stored: use the enum labels and common values shown in \
         the schema context (they may be in another language than the question; e.g. a \
         Chinese question may need English values and the other way round). When the exact \
         spelling is uncertain, compare case-insensitively (ILIKE).\n\
         5. Give computed columns short readable aliases; round averages and ratios sensibly; \
         use NULLIF to avoid division by zero.\n\
         6. Questions may be in English, Chinese or another language: answer the meaning. Write \
         \"explanation\" and \"assumptions\" in the language of the question.\n\
         7. When the question is ambiguous, choose the most reasonable reading and state it in \
         \"assumptions\" (e.g. which date column defines \"this year\", whether cancelled orders \
         count).\n\n\
         {DATA_RULE}\n\n{}",
        reply_rule(GENERATE_SCHEMA_NAME, &schema),
        limit = input.row_limit,
        major = input.server_major,
    );

    // The name comes from the server (discovery): data, like the description.
    let mut database = crate::text::collapse(input.database);
    if let Some(description) = input.description.filter(|d| !d.trim().is_empty()) {
        database.push_str(&format!(" ({})", crate::text::collapse(description)));
    }
    let mut user = block("database", &database);
    user.push_str("\n\n");
    user.push_str(&block("schema_context", input.schema_context.trim_end()));
    user.push_str("\n\n");
    user.push_str(&block("question", input.question));
    if !input.feedback.is_empty() {
        user.push_str(
            "\n\nEarlier attempts at this question failed. Read why, do not repeat the same \
             mistake, and write a corrected query.",
        );
        for (i, feedback) in input.feedback.iter().enumerate() {
            user.push_str("\n\n");
            user.push_str(&block(
                "attempt",
                &format!("attempt {}\n{}", i + 1, describe_feedback(feedback)),
            ));
        }
        user.push_str("\n\nWrite a corrected query that answers the question.");
    } else {
        user.push_str("\n\nWrite the query that answers the question.");
    }

    StructuredRequest {
        task: Task::Generate,
        messages: vec![Message::system(system), Message::user(user)],
        schema_name: GENERATE_SCHEMA_NAME,
        schema,
    }
}

fn describe_feedback(feedback: &Feedback) -> String {
    match feedback {
        Feedback::Rejected {
            sql,
            code,
            message,
            advice,
        } => format!(
            "sql:\n{}\nproblem: the validator rejected it ({code}): {}\nwhat to do: {}",
            sql.trim(),
            message.trim(),
            advice.trim()
        ),
        Feedback::ExecutionFailed {
            sql,
            message,
            advice,
        } => format!(
            "sql:\n{}\nproblem: PostgreSQL reported an error when running it: {}\nwhat to do: {}",
            sql.trim(),
            message.trim(),
            advice.trim()
        ),
        Feedback::LowScore {
            sql,
            score,
            critique,
        } => format!(
            "sql:\n{}\nproblem: it ran, but a reviewer judged that the result does not fully \
             answer the question (score {score}/10): {}",
            sql.trim(),
            critique.trim()
        ),
        Feedback::Malformed { message } => format!(
            "problem: the reply was not the JSON object asked for: {}",
            message.trim()
        ),
    }
}

#[derive(Deserialize)]
struct GeneratedReply {
    sql: String,
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    assumptions: Vec<String>,
}

/// Reads the reply to [`generate_request`]: trims the SQL (and a trailing semicolon).
pub fn parse_generated(content: &str) -> Result<Generated, LlmError> {
    let reply: GeneratedReply = parse_object(content, "{sql, explanation, assumptions}")?;
    let mut sql = reply.sql.trim();
    while let Some(rest) = sql.strip_suffix(';') {
        sql = rest.trim_end();
    }
    if sql.is_empty() {
        return Err(LlmError::Malformed("the reply's \"sql\" is empty".into()));
    }
    Ok(Generated {
        sql: sql.to_string(),
        explanation: reply.explanation.trim().to_string(),
        assumptions: reply
            .assumptions
            .into_iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
    })
}
