//! Stage 2, context: the part of the database's schema the question needs, rendered by the
//! schema linker ([`crate::linking`]) so that the whole first generation prompt fits the token
//! budget (`context.max_tokens`): the schema context gets what the rest of the prompt
//! (instructions, reply schema, database line, question) leaves ([`schema_budget`]). The whole
//! schema is sent when it fits that.
//!
//! When the whole schema does not fit and the lexical evidence is weak (nothing matched, the
//! question is in another script than the schema's names, or the best match is weak:
//! [`crate::linking::Linker::weakness`]), and `context.model_selection` is on, one cheap model
//! call ([`crate::prompts::select`]) shows the model a compact catalogue of the schema and asks
//! for the relevant tables; the names it returns that the catalogue holds are merged before the
//! lexical candidates (then the join paths, as always). Its time is the context stage's, its
//! tokens count with the question's. When that call fails the context stays lexical: the
//! question still goes on.
//!
//! On a retry after the model used a relation or column it was not shown (`UNDEFINED_OBJECT`),
//! the context widens: a larger budget, what was shown and cut first, and what the error names
//! (no new selection call).

use serde::Serialize;

use super::{generate, Ctx};
use crate::linking::select::{Weakness, MAX_SELECTED};
use crate::linking::LinkedContext;
use crate::prompts::{self, SelectInput};
use crate::registry::{Cached, Database};
use crate::settings::ContextSettings;

/// Least share of `context.max_tokens` left to the schema context, however long the rest of
/// the prompt is (a question near `pipeline.max_question_chars`, a long description).
const MIN_SCHEMA_SHARE: f64 = 0.25;

/// The settings the linker works under for one question: `context.max_tokens` is the budget of
/// the whole first generation prompt, so the schema context's budget is what `overhead` (the
/// prompt's other tokens, [`generate::overhead`]) leaves of it — at least
/// [`MIN_SCHEMA_SHARE`] of it.
pub fn schema_budget(settings: &ContextSettings, overhead: usize) -> ContextSettings {
    let floor = (settings.max_tokens as f64 * MIN_SCHEMA_SHARE) as usize;
    ContextSettings {
        max_tokens: settings.max_tokens.saturating_sub(overhead).max(floor),
        ..settings.clone()
    }
}

/// What the context is built for: the question in its database, and the runner's row cap
/// (which the prompt states).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub database: &'a Database,
    pub cached: &'a Cached,
    pub question: &'a str,
    pub limit: u32,
}

impl Target<'_> {
    /// [`schema_budget`] for this question.
    pub fn settings(&self, settings: &ContextSettings) -> ContextSettings {
        let overhead = generate::overhead(
            self.question,
            self.database,
            self.cached,
            self.limit,
            self.cached.linker.counter(),
        );
        schema_budget(settings, overhead)
    }
}

/// What the model-assisted selection did for one question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionReport {
    /// Why the lexical evidence was weak.
    pub weakness: Weakness,
    /// The relations the model chose that the catalogue holds (`schema.name`).
    pub chosen: Vec<String>,
    /// The names it returned that the catalogue does not hold (ignored).
    pub ignored: Vec<String>,
    /// The model's reason.
    pub reason: String,
    /// Tokens of the catalogue shown.
    pub catalogue_tokens: usize,
    /// Schemas shown as names only.
    pub folded: Vec<String>,
    /// Why the selection failed (the context stayed lexical).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The context for the first attempt, or (`retry`: the previous context and the message of
/// an `UNDEFINED_OBJECT` refusal) a wider one.
pub async fn context(
    ctx: &Ctx<'_>,
    target: Target<'_>,
    retry: Option<(&LinkedContext, &str)>,
) -> LinkedContext {
    match retry {
        None => first(ctx, target).await.0,
        Some((previous, message)) => {
            let settings = target.settings(&ctx.settings.context);
            // the step that gives a budget above the previous one
            let factor = settings.widen_factor.max(1.01);
            let grown = previous.budget as f64 / settings.max_tokens.max(1) as f64;
            let step = grown.log(factor).round().max(0.0) as u32 + 1;
            target
                .cached
                .linker
                .widen(target.question, previous, message, step, &settings)
        }
    }
}

/// The first context for `question`: lexical, with the model's selection merged in when the
/// lexical evidence is weak (and `context.model_selection` is on); with what the selection
/// did, when it was asked.
pub async fn first(ctx: &Ctx<'_>, target: Target<'_>) -> (LinkedContext, Option<SelectionReport>) {
    let settings = &target.settings(&ctx.settings.context);
    let (linker, question) = (&target.cached.linker, target.question);
    let database = target.database.name.as_str();
    let weakness = match linker.weakness(question, settings) {
        Some(w) if settings.model_selection => w,
        _ => return (linker.link(question, settings), None),
    };
    // the selection call is a prompt of its own, with the whole budget for its catalogue
    let catalogue = linker.catalogue(ctx.settings.context.max_tokens);
    let request = prompts::select_request(&SelectInput {
        question,
        database,
        catalogue: &catalogue.text,
        max_tables: MAX_SELECTED,
    });
    let mut report = SelectionReport {
        weakness,
        chosen: Vec::new(),
        ignored: Vec::new(),
        reason: String::new(),
        catalogue_tokens: catalogue.tokens,
        folded: catalogue.folded,
        error: None,
    };
    let selection = match ctx.complete(request).await {
        Ok(reply) => prompts::parse_selection(&reply.content),
        Err(e) => Err(e),
    };
    match selection {
        Ok(selection) => {
            let (known, ignored) = linker.known_names(&selection.tables);
            report.chosen = known;
            report.ignored = ignored;
            report.reason = selection.reason;
        }
        Err(e) => {
            let message = crate::redact::redact(&e.to_string());
            tracing::warn!(
                database,
                error = %message,
                "table selection by the model failed; the context stays lexical"
            );
            report.error = Some(message);
        }
    }
    if !report.ignored.is_empty() {
        tracing::info!(
            database,
            ignored = ?report.ignored,
            "the model chose names that are not in the catalogue; ignored"
        );
    }
    let linked = if report.chosen.is_empty() {
        linker.link(question, settings)
    } else {
        linker.link_selected(question, settings, &report.chosen)
    };
    (linked, Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_gets_what_the_prompt_leaves() {
        let settings = ContextSettings::default();
        assert_eq!(schema_budget(&settings, 800).max_tokens, 3200);
        assert_eq!(schema_budget(&settings, 0).max_tokens, 4000);
        // a prompt longer than the budget still leaves a quarter to the schema
        assert_eq!(schema_budget(&settings, 3900).max_tokens, 1000);
        assert_eq!(schema_budget(&settings, 9000).max_tokens, 1000);
        let other = schema_budget(&settings, 800);
        assert_eq!(other.widen_factor, settings.widen_factor);
        assert_eq!(other.model_selection, settings.model_selection);
    }
}
