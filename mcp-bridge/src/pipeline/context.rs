//! Stage 2, context: the part of the database's schema the question needs, rendered under the
//! token budget (`context.max_tokens`) by the schema linker ([`crate::linking`]); the whole
//! schema when it fits.
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

use super::Ctx;
use crate::linking::select::{Weakness, MAX_SELECTED};
use crate::linking::LinkedContext;
use crate::prompts::{self, SelectInput};
use crate::registry::Cached;

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
    cached: &Cached,
    database: &str,
    question: &str,
    retry: Option<(&LinkedContext, &str)>,
) -> LinkedContext {
    let settings = &ctx.settings.context;
    match retry {
        None => first(ctx, cached, database, question).await.0,
        Some((previous, message)) => {
            // the step that gives a budget above the previous one
            let factor = settings.widen_factor.max(1.01);
            let grown = previous.budget as f64 / settings.max_tokens.max(1) as f64;
            let step = grown.log(factor).round().max(0.0) as u32 + 1;
            cached
                .linker
                .widen(question, previous, message, step, settings)
        }
    }
}

/// The first context for `question`: lexical, with the model's selection merged in when the
/// lexical evidence is weak (and `context.model_selection` is on); with what the selection
/// did, when it was asked.
pub async fn first(
    ctx: &Ctx<'_>,
    cached: &Cached,
    database: &str,
    question: &str,
) -> (LinkedContext, Option<SelectionReport>) {
    let settings = &ctx.settings.context;
    let linker = &cached.linker;
    let weakness = match linker.weakness(question, settings) {
        Some(w) if settings.model_selection => w,
        _ => return (linker.link(question, settings), None),
    };
    let catalogue = linker.catalogue(settings.max_tokens);
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
