//! The context stage without a model: the databases of a configuration loaded once, each
//! with its [`Linker`], then for a question the routing, the linked schema context and the
//! size of the generation prompt the pipeline would send (`pg-nlq-bridge context`, and the
//! offline part of `pg-nlq-bridge eval`). With a model (`context --with-model`), the context
//! stage's model-assisted table selection too ([`Estate::context_with_model`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::answer::ErrorCode;
use crate::answer::Validation;
use crate::error::BridgeError;
use crate::linking::route::{route, Candidate, Target};
use crate::linking::{LinkedContext, Reason, TokenCounter};
use crate::llm::{ChatModel, TokenUsage};
use crate::pipeline::context::SelectionReport;
use crate::pipeline::resolve::{route_among, Choice, RoutedBy};
use crate::registry::{Cached, Database, Registry};
use crate::settings::Settings;
use crate::snapshot::Snapshot;

/// One loaded database.
pub struct Loaded {
    pub name: String,
    pub description: Option<String>,
    pub database: Arc<Database>,
    pub cached: Arc<Cached>,
}

/// Discovers and loads the configured databases (all of them, or only `only`) through the
/// bridge's own registry (the same discovery and names), failing on the first one that cannot
/// be loaded.
pub async fn load(settings: &Settings, only: Option<&str>) -> Result<Vec<Loaded>, BridgeError> {
    let registry = Registry::new(settings);
    registry.discover_all().await?;
    let mut out = Vec::new();
    for database in registry.all() {
        if only.is_some_and(|o| o != database.name && o != database.dbname) {
            continue;
        }
        let cached = database
            .load()
            .await
            .map_err(|e| e.with_database(&database.name))?;
        out.push(Loaded {
            name: database.name.clone(),
            description: database.description.clone(),
            database,
            cached,
        });
    }
    if out.is_empty() {
        return Err(BridgeError::Config(match only {
            Some(o) => format!("no configured database is named {o}"),
            None => "the configuration has no database".to_string(),
        }));
    }
    Ok(out)
}

/// A question routed as the pipeline routes it with no database named
/// ([`Estate::route_with_model`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineRouting {
    /// How a database was chosen; `None` when none was.
    pub by: Option<RoutedBy>,
    pub database: Option<String>,
    /// With `AMBIGUOUS_QUERY`: the databases it lists, most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// Any other failure (`CODE: message`), such as the model unreachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Tokens of the routing call (0 when lexical routing decided).
    #[serde(default)]
    pub tokens: u64,
}

/// How the database was chosen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingReport {
    /// `given` (--db), `only` (one database), `lexical` (routing decided: the pipeline takes
    /// it without the model), `best_guess` (ahead, but not by enough to decide: the pipeline
    /// asks the model; the context shown is the best candidate's), or `ambiguous` (no
    /// database ahead: the pipeline asks the model or answers `AMBIGUOUS_QUERY`).
    pub method: &'static str,
    /// Every database, best first, with its routing score (log-likelihood; higher is better).
    pub candidates: Vec<Candidate>,
}

/// What `pg-nlq-bridge context --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ContextReport {
    pub question: String,
    pub database: String,
    pub routing: RoutingReport,
    /// The relations shown, as `schema.name`, in priority order.
    pub relations: Vec<String>,
    /// Why each is there (same order).
    pub reasons: Vec<Reason>,
    /// Relations chosen but cut to fit the budget.
    pub cut: Vec<String>,
    /// The best lexical matches with their scores (BM25F), best first.
    pub matches: Vec<(String, f64)>,
    /// Whether the whole schema was sent.
    pub whole: bool,
    /// Tokens of the whole generation prompt (system and user messages and the reply schema).
    pub prompt_tokens: usize,
    /// Tokens of the schema context.
    pub schema_tokens: usize,
    /// Tokens of the whole schema rendered the same way.
    pub whole_schema_tokens: usize,
    /// The best lexical match's strength ([`crate::linking::Linker::strength`]; `None`:
    /// nothing matched).
    pub strength: Option<f64>,
    /// Why the lexical evidence is weak, when it is and the whole schema does not fit: the
    /// pipeline then asks the model to choose tables (`context.model_selection`).
    pub weakness: Option<crate::linking::select::Weakness>,
    pub budget: usize,
    pub encoding: &'static str,
    /// The schema context itself.
    pub context: String,
    /// What the model-assisted table selection did (`--with-model`, when the lexical
    /// evidence was weak and the whole schema did not fit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionReport>,
    /// Tokens the model calls cost (`--with-model`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_tokens: Option<TokenUsage>,
}

impl ContextReport {
    /// A few lines on how the context was chosen (`context --explain`, `make demo`).
    pub fn explanation(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let scores = self
            .routing
            .candidates
            .iter()
            .map(|c| format!("{} {:.3}", c.database, c.score))
            .collect::<Vec<_>>()
            .join(", ");
        let why = match self.routing.method {
            "given" => "named with --db".to_string(),
            "only" => "the only database configured".to_string(),
            "lexical" => format!(
                "its schema and description match the question's words best (scores: {scores}; \
                 decided without the model when the best leads by {})",
                crate::linking::route::DECIDE_MARGIN
            ),
            "best_guess" => format!(
                "best guess: it leads (scores: {scores}) but by less than {}, so the pipeline \
                 would ask the model to choose",
                crate::linking::route::DECIDE_MARGIN
            ),
            _ => format!(
                "best guess only: no database leads clearly (scores: {scores}); the pipeline \
                 would ask the model to choose, or answer AMBIGUOUS_QUERY"
            ),
        };
        let _ = writeln!(s, "database: {} ({why})", self.database);
        if let Some(sel) = &self.selection {
            let chose = match (&sel.error, sel.chosen.is_empty()) {
                (Some(e), _) => format!("the call failed ({e}); the context stayed lexical"),
                (None, true) => "it chose no table of the catalogue".to_string(),
                (None, false) => format!("it chose {}", sel.chosen.join(", ")),
            };
            let ignored = if sel.ignored.is_empty() {
                String::new()
            } else {
                format!(
                    "; ignored (not in the catalogue): {}",
                    sel.ignored.join(", ")
                )
            };
            let _ = writeln!(
                s,
                "model selection: {}, so the model was shown a catalogue of {} tokens; {chose}{ignored}",
                sel.weakness.describe(),
                sel.catalogue_tokens
            );
        }
        if self.whole {
            let _ = writeln!(
                s,
                "relations: the whole schema fits the budget ({} of {} tokens): all {} relations",
                self.schema_tokens,
                self.budget,
                self.relations.len()
            );
        } else {
            let _ = writeln!(
                s,
                "relations ({}): {}",
                self.relations.len(),
                self.relations.join(", ")
            );
            if !self.cut.is_empty() {
                let _ = writeln!(s, "cut to fit the budget: {}", self.cut.join(", "));
            }
        }
        let share = if self.whole_schema_tokens == 0 {
            100.0
        } else {
            100.0 * self.schema_tokens as f64 / self.whole_schema_tokens as f64
        };
        let _ = writeln!(
            s,
            "tokens ({}): schema context {} of the whole schema's {} ({share:.0}%), budget {}; \
             whole generation prompt {}",
            self.encoding,
            self.schema_tokens,
            self.whole_schema_tokens,
            self.budget,
            self.prompt_tokens
        );
        s.push_str("---- schema context ----\n");
        s
    }
}

/// The loaded databases with their linkers, ready for many questions.
pub struct Estate<'a> {
    pub loaded: &'a [Loaded],
    pub counter: TokenCounter,
}

impl<'a> Estate<'a> {
    pub fn new(loaded: &'a [Loaded], settings: &Settings) -> Estate<'a> {
        let counter = TokenCounter::for_model(&settings.model.model);
        Estate { loaded, counter }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.loaded
            .iter()
            .position(|l| l.name == name)
            .or_else(|| self.loaded.iter().position(|l| l.database.dbname == name))
    }

    pub fn snapshot(&self, name: &str) -> Option<&Snapshot> {
        self.position(name)
            .map(|i| &*self.loaded[i].cached.snapshot)
    }

    /// Routes a question among all the databases (no database named).
    pub fn route(&self, question: &str) -> crate::linking::route::Routing {
        let targets: Vec<Target<'_>> = self
            .loaded
            .iter()
            .map(|l| Target {
                name: &l.name,
                description: l.description.as_deref(),
                linker: &l.cached.linker,
            })
            .collect();
        route(question, &targets)
    }

    /// The routing, context and prompt size for `question`, in `database` when given.
    pub fn context(
        &self,
        question: &str,
        database: Option<&str>,
        settings: &Settings,
    ) -> Result<ContextReport, BridgeError> {
        let (index, routing) = self.pick(question, database)?;
        let target = self.target(question, index, settings);
        let budget = target.settings(&settings.context);
        let linked = target.cached.linker.link(question, &budget);
        Ok(self.report(question, index, routing, linked, settings, &budget))
    }

    /// [`Estate::context`] with the context stage's model-assisted table selection
    /// ([`crate::pipeline::context::first`]) through `model`.
    pub async fn context_with_model(
        &self,
        question: &str,
        database: Option<&str>,
        settings: &Settings,
        model: &dyn ChatModel,
    ) -> Result<ContextReport, BridgeError> {
        let (index, routing) = self.pick(question, database)?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let ctx = crate::pipeline::Ctx::new(settings, model, &cancel);
        let target = self.target(question, index, settings);
        let (linked, selection) = crate::pipeline::context::first(&ctx, target).await;
        let budget = target.settings(&settings.context);
        let mut report = self.report(question, index, routing, linked, settings, &budget);
        report.selection = selection;
        report.model_tokens = Some(ctx.tokens());
        Ok(report)
    }

    /// Routes `question`, no database named, as the pipeline does ([`route_among`]: lexical
    /// routing when it decides, else the model, else `AMBIGUOUS_QUERY`), through `model`.
    pub async fn route_with_model(
        &self,
        question: &str,
        settings: &Settings,
        model: &dyn ChatModel,
    ) -> PipelineRouting {
        let cancel = tokio_util::sync::CancellationToken::new();
        let ctx = crate::pipeline::Ctx::new(settings, model, &cancel);
        let choices: Vec<Choice<'_>> = self
            .loaded
            .iter()
            .map(|l| Choice {
                name: &l.name,
                description: l.description.as_deref(),
                cached: &l.cached,
            })
            .collect();
        let mut routing = match route_among(&ctx, question, &choices).await {
            Ok(routed) => PipelineRouting {
                by: Some(routed.by),
                database: Some(routed.database),
                ..PipelineRouting::default()
            },
            Err(e) if e.code == ErrorCode::AmbiguousQuery => PipelineRouting {
                candidates: e.candidates,
                ..PipelineRouting::default()
            },
            Err(e) => PipelineRouting {
                error: Some(format!("{}: {}", e.code.as_str(), e.message)),
                ..PipelineRouting::default()
            },
        };
        routing.tokens = ctx.tokens().total();
        routing
    }

    /// What the pipeline's context stage builds for `question` in the `index`th database, at
    /// the default row cap.
    fn target<'s>(
        &'s self,
        question: &'s str,
        index: usize,
        settings: &Settings,
    ) -> crate::pipeline::context::Target<'s> {
        let loaded = &self.loaded[index];
        crate::pipeline::context::Target {
            database: &loaded.database,
            cached: &loaded.cached,
            question,
            limit: settings.pipeline.default_row_limit,
        }
    }

    /// The database for `question`: `database`, else routed.
    fn pick(
        &self,
        question: &str,
        database: Option<&str>,
    ) -> Result<(usize, RoutingReport), BridgeError> {
        Ok(match database {
            Some(name) => {
                let i = self.position(name).ok_or_else(|| {
                    BridgeError::Config(format!("no loaded database is named {name}"))
                })?;
                (
                    i,
                    RoutingReport {
                        method: "given",
                        candidates: Vec::new(),
                    },
                )
            }
            None => {
                let routed = self.route(question);
                let method = if self.loaded.len() == 1 {
                    "only"
                } else if routed.decided.is_some() {
                    "lexical"
                } else if routed.chosen.is_some() {
                    "best_guess"
                } else {
                    "ambiguous"
                };
                let best = routed
                    .chosen
                    .clone()
                    .or_else(|| routed.candidates.first().map(|c| c.database.clone()))
                    .unwrap_or_default();
                let i = self.position(&best).unwrap_or(0);
                (
                    i,
                    RoutingReport {
                        method,
                        candidates: routed.candidates,
                    },
                )
            }
        })
    }

    fn report(
        &self,
        question: &str,
        index: usize,
        routing: RoutingReport,
        linked: LinkedContext,
        settings: &Settings,
        // the settings the context was linked under (`pipeline::context::schema_budget`)
        budget: &crate::settings::ContextSettings,
    ) -> ContextReport {
        let loaded = &self.loaded[index];
        let prompt_tokens = self.prompt_tokens(question, loaded, &linked, settings);
        let linker = &loaded.cached.linker;
        ContextReport {
            strength: linker
                .strength(question)
                .map(|s| (s * 1000.0).round() / 1000.0),
            weakness: linker.weakness(question, budget),
            question: question.to_string(),
            database: loaded.name.clone(),
            routing,
            relations: linked.relations,
            reasons: linked.reasons,
            cut: linked.cut,
            matches: linked
                .matches
                .iter()
                .map(|(name, score)| (name.clone(), (score * 1000.0).round() / 1000.0))
                .collect(),
            whole: linked.whole,
            prompt_tokens,
            schema_tokens: linked.tokens,
            whole_schema_tokens: linked.whole_schema_tokens,
            budget: linked.budget,
            encoding: linked.encoding,
            context: linked.text,
            selection: None,
            model_tokens: None,
        }
    }

    /// Tokens of the generation request the pipeline builds ([`crate::pipeline::generate::request`])
    /// for this context ([`crate::pipeline::generate::prompt_tokens`]).
    pub fn prompt_tokens(
        &self,
        question: &str,
        loaded: &Loaded,
        linked: &LinkedContext,
        settings: &Settings,
    ) -> usize {
        let request = crate::pipeline::generate::request(&crate::pipeline::generate::Input {
            question,
            database: &loaded.database,
            cached: &loaded.cached,
            context: linked,
            limit: settings.pipeline.default_row_limit,
            feedback: &[],
        });
        crate::pipeline::generate::prompt_tokens(&request, self.counter)
    }
}

/// The relations the expected SQL reads, as `nlq_validate` reports them.
pub async fn gold_relations(database: &Database, sql: &str) -> Result<Validation, String> {
    database
        .validate(sql, &tokio_util::sync::CancellationToken::new())
        .await
        .map_err(|e| e.message)
}
