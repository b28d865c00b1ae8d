//! Stage 2, context: the part of the database's schema the question needs, rendered under the
//! token budget (`context.max_tokens`) by the schema linker ([`crate::linking`]); the whole
//! schema when it fits. On a retry after the model used a relation or column it was not
//! shown (`UNDEFINED_OBJECT`), the context widens: a larger budget, what was cut first, and
//! what the error names.

use super::Ctx;
use crate::linking::LinkedContext;
use crate::registry::Cached;

/// The context for the first attempt, or (`retry`: the previous context and the message of
/// an `UNDEFINED_OBJECT` refusal) a wider one.
pub fn context(
    ctx: &Ctx<'_>,
    cached: &Cached,
    question: &str,
    retry: Option<(&LinkedContext, &str)>,
) -> LinkedContext {
    let settings = &ctx.settings.context;
    match retry {
        None => cached.linker.link(question, settings),
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
