//! Routing: which database a question is about, asked of the model when the bridge cannot tell.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{block, parse_object, reply_rule, DATA_RULE};
use crate::llm::{LlmError, Message, StructuredRequest, Task};

pub const ROUTE_SCHEMA_NAME: &str = "database_choice";

/// A database the question may be about, as shown to the model.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseChoice<'a> {
    pub name: &'a str,
    /// The description from the configuration.
    pub description: Option<&'a str>,
    /// [`crate::render::schema::routing_summary`] of its snapshot.
    pub summary: &'a str,
}

/// The model's choice of database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// `None`: the question is ambiguous or no database fits.
    pub database: Option<String>,
    /// The databases the question could plausibly be about.
    pub candidates: Vec<String>,
    pub reason: String,
}

fn route_schema(databases: &[DatabaseChoice<'_>]) -> Value {
    let mut names: Vec<Value> = databases.iter().map(|d| json!(d.name)).collect();
    names.push(Value::Null);
    json!({
        "type": "object",
        "properties": {
            "database": {
                "type": ["string", "null"],
                "enum": names,
                "description": "The one database that can answer the question, or null when \
                                several could or none can."
            },
            "candidates": {
                "type": "array",
                "items": { "type": "string" },
                "description": "Every database that could plausibly answer the question, most \
                                likely first; empty when none can."
            },
            "reason": {
                "type": "string",
                "description": "One sentence: why this database, or why none or several."
            }
        },
        "required": ["database", "candidates", "reason"],
        "additionalProperties": false
    })
}

/// Asks which database a question is about.
pub fn route_request(question: &str, databases: &[DatabaseChoice<'_>]) -> StructuredRequest {
    let schema = route_schema(databases);
    let system = format!(
        "You choose which PostgreSQL database can answer a question. Each database is listed \
         with its name, its description and a summary of its schemas and tables.\n\
         Choose a database only when its tables clearly hold the data the question asks about. \
         When several databases could answer it equally well, or none can, set \"database\" to \
         null and list the plausible ones in \"candidates\". Questions may be in any language \
         (often English or Chinese); judge by meaning.\n\n\
         {DATA_RULE}\n\n{}",
        reply_rule(ROUTE_SCHEMA_NAME, &schema)
    );
    let mut listing = String::new();
    for database in databases {
        listing.push_str(&format!("database: {}\n", database.name));
        if let Some(description) = database.description.filter(|d| !d.trim().is_empty()) {
            listing.push_str(&format!(
                "description: {}\n",
                crate::text::collapse(description)
            ));
        }
        listing.push_str(database.summary.trim_end());
        listing.push_str("\n\n");
    }
    let user = format!(
        "{}\n\n{}\n\nWhich database answers this question?",
        block("databases", listing.trim_end()),
        block("question", question)
    );
    StructuredRequest {
        task: Task::Route,
        messages: vec![Message::system(system), Message::user(user)],
        schema_name: ROUTE_SCHEMA_NAME,
        schema,
    }
}

#[derive(Deserialize)]
struct RouteReply {
    database: Option<String>,
    #[serde(default)]
    candidates: Vec<String>,
    #[serde(default)]
    reason: String,
}

/// Reads the reply to [`route_request`]. An empty or `"null"` database is `None`.
pub fn parse_route(content: &str) -> Result<Route, LlmError> {
    let reply: RouteReply = parse_object(content, "{database, candidates, reason}")?;
    let database = reply
        .database
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty() && !d.eq_ignore_ascii_case("null"));
    let mut candidates: Vec<String> = Vec::new();
    for candidate in reply.candidates {
        let candidate = candidate.trim().to_string();
        if !candidate.is_empty() && !candidates.contains(&candidate) {
            candidates.push(candidate);
        }
    }
    Ok(Route {
        database,
        candidates,
        reason: reply.reason.trim().to_string(),
    })
}
