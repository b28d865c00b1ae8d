//! Stage 3, generate: the model writes the SQL, from the question, the schema context and
//! what went wrong in earlier attempts ([`crate::prompts::generate`]).

use super::Ctx;
use crate::answer::ToolError;
use crate::linking::{LinkedContext, TokenCounter};
use crate::llm::{LlmError, StructuredRequest};
use crate::prompts::{self, Feedback, GenerateInput, Generated};
use crate::registry::{Cached, Database};

pub struct Input<'a> {
    pub question: &'a str,
    pub database: &'a Database,
    pub cached: &'a Cached,
    pub context: &'a LinkedContext,
    /// Rows the runner returns at most.
    pub limit: u32,
    pub feedback: &'a [Feedback],
}

pub enum Outcome {
    Generated(Generated),
    /// The reply could not be read; the model is asked again, told why.
    Malformed(String),
    /// The model could not be asked (endpoint down, refused, cancelled).
    Failed(ToolError),
}

/// The request sent to the model (also what `pg-nlq-bridge context` measures).
pub fn request(input: &Input<'_>) -> StructuredRequest {
    build(
        input.question,
        input.database,
        input.cached,
        &input.context.text,
        input.limit,
        input.feedback,
    )
}

fn build(
    question: &str,
    database: &Database,
    cached: &Cached,
    schema_context: &str,
    limit: u32,
    feedback: &[Feedback],
) -> StructuredRequest {
    prompts::generate_request(&GenerateInput {
        question,
        database: &database.name,
        description: database.description.as_deref(),
        server_major: (cached.snapshot.server_version_num / 10_000).max(0) as u32,
        schema_context,
        row_limit: limit,
        feedback,
    })
}

/// Tokens of a request as the model reads it: each message's content plus OpenAI's 3 tokens
/// of framing per message and 3 for the reply, and the reply's JSON schema.
pub fn prompt_tokens(request: &StructuredRequest, counter: TokenCounter) -> usize {
    let messages: usize = request
        .messages
        .iter()
        .map(|m| 3 + counter.count(&m.content))
        .sum();
    messages + 3 + counter.count(&request.schema.to_string())
}

/// Tokens of the first generation request for `question` besides its schema context
/// (instructions, reply schema, database line, question): what `context.max_tokens`, the
/// budget of the whole prompt, spends before the schema ([`super::context::schema_budget`]).
pub fn overhead(
    question: &str,
    database: &Database,
    cached: &Cached,
    limit: u32,
    counter: TokenCounter,
) -> usize {
    prompt_tokens(&build(question, database, cached, "", limit, &[]), counter)
}

pub async fn generate(ctx: &Ctx<'_>, input: &Input<'_>) -> Outcome {
    let parsed = match ctx.complete(request(input)).await {
        Ok(reply) => prompts::parse_generated(&reply.content),
        Err(e) => Err(e),
    };
    match parsed {
        Ok(generated) => Outcome::Generated(generated),
        Err(LlmError::Malformed(message)) => Outcome::Malformed(message),
        Err(e) => Outcome::Failed(e.into()),
    }
}
