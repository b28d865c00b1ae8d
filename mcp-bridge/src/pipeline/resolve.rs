//! Stage 1, resolve: which database the question is for — the one given, else the only one
//! ready, else the one the question names, else the one lexical routing has decided on
//! ([`crate::linking::route`]: the question's words scored against each database's snapshot
//! and description, Chinese and other scripts included; decided when the best leads by
//! [`crate::linking::route::DECIDE_MARGIN`]), else the model's choice among the
//! ready ones, shown best-ranked first ([`crate::prompts::route`]), else `AMBIGUOUS_QUERY`
//! with the candidates — and its current schema (the cached snapshot, checked against the
//! database's fingerprint when the check is due).

use std::sync::Arc;

use super::Ctx;
use crate::answer::{ErrorCode, ToolError};
use crate::linking::route::{route, Target};
use crate::prompts::{self, DatabaseChoice};
use crate::registry::{Cached, Database, Registry};

/// The database a question is for, and its schema now.
pub struct Resolved {
    pub database: Arc<Database>,
    pub cached: Arc<Cached>,
}

/// ASCII words of `text`, lower-cased (letters, digits and `_`; everything else, CJK text
/// included, separates them), for spotting a database named in a question.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub async fn resolve(
    ctx: &Ctx<'_>,
    registry: &Registry,
    question: &str,
    given: Option<&str>,
) -> Result<Resolved, ToolError> {
    let database = choose(ctx, registry, question, given).await?;
    let cached = registry
        .schema_of(&database)
        .await
        .map_err(|e| e.with_database(&database.name))?;
    if cached.is_empty() {
        return Err(ToolError::new(
            ErrorCode::DatabaseUnavailable,
            format!("{}: {}", database.what(), Cached::empty_reason()),
            false,
        )
        .with_database(&database.name));
    }
    Ok(Resolved { database, cached })
}

async fn choose(
    ctx: &Ctx<'_>,
    registry: &Registry,
    question: &str,
    given: Option<&str>,
) -> Result<Arc<Database>, ToolError> {
    if given.map(str::trim).is_some_and(|g| !g.is_empty()) {
        return registry.lookup(given);
    }
    let ready = registry.ready();
    match ready.len() {
        0 => return registry.lookup(None),
        1 => return Ok(ready[0].0.clone()),
        _ => {}
    }
    let question_words = words(question);
    let named: Vec<_> = ready
        .iter()
        .filter(|(d, _)| question_words.contains(&d.dbname.to_lowercase()))
        .collect();
    if let [(d, _)] = named.as_slice() {
        return Ok(d.clone());
    }
    let choices: Vec<Choice<'_>> = ready
        .iter()
        .map(|(d, c)| Choice {
            name: &d.name,
            description: d.description.as_deref(),
            cached: c,
        })
        .collect();
    let routed = route_among(ctx, question, &choices).await?;
    Ok(ready[routed.index].0.clone())
}

/// A database to route among: its name, description and schema.
pub struct Choice<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub cached: &'a Cached,
}

/// How [`route_among`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoutedBy {
    /// Lexical routing decided (a lead of `route::DECIDE_MARGIN`).
    Lexical,
    /// The model chose.
    Model,
}

/// The database [`route_among`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Its position among the choices.
    pub index: usize,
    pub database: String,
    pub by: RoutedBy,
}

/// Routes a question among several databases as the pipeline does: the one lexical routing
/// has decided on, else the model's choice among them shown best-ranked first, else
/// `AMBIGUOUS_QUERY` with the model's candidates (or the ranked ones) and the scores in its
/// detail. `pg-nlq-bridge eval --with-model` measures routing through this same function.
pub async fn route_among(
    ctx: &Ctx<'_>,
    question: &str,
    choices: &[Choice<'_>],
) -> Result<Routed, ToolError> {
    // lexical routing: taken when one database leads by far (`route::DECIDE_MARGIN`)
    let targets: Vec<Target<'_>> = choices
        .iter()
        .map(|c| Target {
            name: c.name,
            description: c.description,
            linker: &c.cached.linker,
        })
        .collect();
    let routing = route(question, &targets);
    let position = |name: &str| choices.iter().position(|c| c.name == name);
    if let Some(chosen) = &routing.decided {
        if let Some(index) = position(chosen) {
            tracing::debug!(database = %chosen, candidates = ?routing.candidates, "routed lexically");
            return Ok(Routed {
                index,
                database: chosen.clone(),
                by: RoutedBy::Lexical,
            });
        }
    }
    // else the model, shown the databases best-ranked first
    let ranked: Vec<&Choice<'_>> = routing
        .candidates
        .iter()
        .filter_map(|c| choices.iter().find(|d| d.name == c.database))
        .collect();
    let shown: Vec<DatabaseChoice<'_>> = ranked
        .iter()
        .map(|c| DatabaseChoice {
            name: c.name,
            description: c.description,
            summary: &c.cached.summary,
        })
        .collect();
    let reply = ctx
        .complete(prompts::route_request(question, &shown))
        .await?;
    let route = prompts::parse_route(&reply.content)?;
    let names: Vec<String> = ranked.iter().map(|c| c.name.to_string()).collect();
    if let Some(choice) = &route.database {
        if let Some(index) = position(choice) {
            return Ok(Routed {
                index,
                database: choice.clone(),
                by: RoutedBy::Model,
            });
        }
    }
    let mut candidates: Vec<String> = route
        .candidates
        .iter()
        .filter(|c| names.contains(c))
        .cloned()
        .collect();
    if candidates.is_empty() {
        candidates = names;
    }
    // The names are the bridge's (escaped, see `names`); the reason is the model's text.
    let mut err = ToolError::new(
        ErrorCode::AmbiguousQuery,
        format!(
            "the question could be about several databases ({}); ask again with `database` set \
             to one of them",
            candidates.join(", "),
        ),
        false,
    );
    let scores = routing
        .candidates
        .iter()
        .map(|c| format!("{} {:.3}", c.database, c.score))
        .collect::<Vec<_>>()
        .join(", ");
    let mut detail = format!(
        "lexical routing did not decide: the best database must lead by {} (scores: {scores})",
        crate::linking::route::DECIDE_MARGIN
    );
    if !route.reason.trim().is_empty() {
        detail.push_str(&format!("; the model's reason: {}", route.reason));
    }
    err = err.with_detail(detail);
    err.candidates = candidates;
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_on_punctuation() {
        assert_eq!(
            words("Top customers in nlq_small?"),
            vec!["top", "customers", "in", "nlq_small"]
        );
        assert_eq!(words("nlq_small里的客户"), vec!["nlq_small"]);
    }
}
