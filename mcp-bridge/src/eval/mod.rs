//! The evaluation harness (`pg-nlq-bridge eval`): cases from a file ([`cases`]), the context
//! stage measured without a model ([`offline`]), and the comparison rules of execution
//! accuracy ([`compare`]).
//!
//! The offline run, per case and phrasing: the gold relations are what `nlq_validate` reports
//! for the expected SQL; the context is linked in the case's database under the configured
//! budget; a case is recalled (strict) when every gold relation is in it. Cases whose gold the
//! bridge role cannot see (validation refused, or a gold relation missing from the role's
//! snapshot) are counted apart as `excluded`, not as misses: no context could show them. The
//! routing is asked with no database named, among every configured database (with a model,
//! `--with-model`, also as the pipeline routes: [`offline::Estate::route_with_model`]). The report
//! (`report.json`) is rewritten after each case, and a run over the same `--out` skips the
//! cases it already holds (resumable); `summary.md` is written at the end.

pub mod cases;
pub mod compare;
pub mod model;
pub mod offline;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::BridgeError;
use crate::settings::Settings;

use self::cases::Case;
use self::offline::Estate;

/// One case in one phrasing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseResult {
    /// `id:language`, the resume key.
    pub key: String,
    pub id: String,
    pub database: String,
    pub level: String,
    pub language: String,
    pub question: String,
    /// The relations the expected SQL reads (`nlq_validate`).
    pub gold: Vec<String>,
    /// Why the case is not scored for recall (`None`: scored).
    pub excluded: Option<String>,
    pub recalled: bool,
    pub missing: Vec<String>,
    pub relations: Vec<String>,
    pub whole: bool,
    pub prompt_tokens: usize,
    pub schema_tokens: usize,
    /// The database routing chose outright with no database named (`None`: not confident).
    pub routed: Option<String>,
    /// The best routing candidate.
    pub routed_top: Option<String>,
    /// The database the pipeline would take without asking the model (lead of
    /// [`crate::linking::route::DECIDE_MARGIN`]); `None`: it would ask the model.
    #[serde(default)]
    pub decided: Option<String>,
    /// Every database with its routing score, best first.
    #[serde(default)]
    pub routing: Vec<crate::linking::route::Candidate>,
    /// Milliseconds of linking (context stage) for this question.
    pub link_ms: f64,
    /// Why the lexical evidence was weak (the pipeline would ask the model to choose tables).
    #[serde(default)]
    pub weakness: Option<crate::linking::select::Weakness>,
    /// The best lexical match's strength.
    #[serde(default)]
    pub strength: Option<f64>,
    /// With a model (`eval --with-model`): the relations the model-assisted selection chose
    /// (`None`: no selection call was made for this question).
    #[serde(default)]
    pub selected: Option<Vec<String>>,
    /// With a model: tokens of the selection and routing calls.
    #[serde(default)]
    pub model_tokens: u64,
    /// With a model: the routing as the pipeline routes, no database named (lexical routing
    /// when it decides, else the model, else `AMBIGUOUS_QUERY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_routing: Option<offline::PipelineRouting>,
}

/// Figures for one group of results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub database: String,
    /// A level, or `all`.
    pub level: String,
    pub language: String,
    pub cases: usize,
    /// Cases not scored for recall (gold not visible to the bridge role).
    pub excluded: usize,
    pub recalled: usize,
    /// `recalled / (cases - excluded)`.
    pub recall: f64,
    pub median_prompt_tokens: usize,
    pub mean_prompt_tokens: f64,
    pub p95_prompt_tokens: usize,
    pub median_schema_tokens: usize,
    pub mean_schema_tokens: f64,
    /// Share of the cases routing chose the right database for outright, no database named.
    pub routing_accuracy: f64,
    /// Cases whose lexical evidence was weak: the pipeline would ask the model to choose
    /// tables (one cheap call) before generating.
    #[serde(default)]
    pub weak: usize,
}

/// Routing over all cases of a language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoutingFigures {
    pub language: String,
    pub cases: usize,
    /// Chosen outright and right.
    pub right: usize,
    /// Chosen outright and wrong.
    pub wrong: usize,
    /// Not confident (the pipeline would ask the model).
    pub undecided: usize,
    /// The best candidate was right (chosen or not).
    pub top1_right: usize,
    pub accuracy: f64,
    /// Decided without the model (the pipeline asks the model for the others).
    #[serde(default)]
    pub decided: usize,
    /// Of those, right.
    #[serde(default)]
    pub decided_right: usize,
}

/// Routing as the pipeline routes, with the model (`eval --with-model`), over all cases of a
/// language.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineRoutingFigures {
    pub language: String,
    pub cases: usize,
    /// The right database chosen.
    pub right: usize,
    /// Of those, by lexical routing (no model call).
    pub right_lexical: usize,
    /// Chosen, and wrong.
    pub wrong: usize,
    /// `AMBIGUOUS_QUERY` listing the right database among its candidates.
    pub ambiguous_listing_right: usize,
    /// `AMBIGUOUS_QUERY` without it.
    pub ambiguous_without_right: usize,
    /// Another failure (the model unreachable, a malformed reply).
    pub failed: usize,
    /// `right / cases`.
    pub accuracy: f64,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Report {
    pub budget: usize,
    pub encoding: String,
    pub databases: Vec<String>,
    pub results: Vec<CaseResult>,
    pub groups: Vec<Group>,
    pub routing: Vec<RoutingFigures>,
    /// With a model: routing as the pipeline routes ([`CaseResult::pipeline_routing`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline_routing: Vec<PipelineRoutingFigures>,
    pub mean_link_ms: f64,
    /// Whether the context stage's model-assisted table selection ran (`eval --with-model`);
    /// a report of the other kind is not resumed.
    #[serde(default)]
    pub with_model: bool,
}

fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn group(database: &str, level: &str, language: &str, results: &[&CaseResult]) -> Group {
    let mut tokens: Vec<usize> = results.iter().map(|r| r.prompt_tokens).collect();
    tokens.sort_unstable();
    let n = results.len().max(1) as f64;
    let excluded = results.iter().filter(|r| r.excluded.is_some()).count();
    let recalled = results
        .iter()
        .filter(|r| r.excluded.is_none() && r.recalled)
        .count();
    let scored = results.len() - excluded;
    Group {
        database: database.to_string(),
        level: level.to_string(),
        language: language.to_string(),
        cases: results.len(),
        excluded,
        recalled,
        recall: if scored == 0 {
            0.0
        } else {
            recalled as f64 / scored as f64
        },
        median_prompt_tokens: percentile(&tokens, 0.5),
        mean_prompt_tokens: tokens.iter().sum::<usize>() as f64 / n,
        p95_prompt_tokens: percentile(&tokens, 0.95),
        median_schema_tokens: {
            let mut t: Vec<usize> = results.iter().map(|r| r.schema_tokens).collect();
            t.sort_unstable();
            percentile(&t, 0.5)
        },
        mean_schema_tokens: results.iter().map(|r| r.schema_tokens).sum::<usize>() as f64 / n,
        routing_accuracy: results
            .iter()
            .filter(|r| r.routed.as_deref() == Some(r.database.as_str()))
            .count() as f64
            / n,
        weak: results.iter().filter(|r| r.weakness.is_some()).count(),
    }
}

fn pipeline_routing_figures(
    language: &str,
    routed: &[(&CaseResult, &offline::PipelineRouting)],
) -> PipelineRoutingFigures {
    let count = |f: &dyn Fn(&CaseResult, &offline::PipelineRouting) -> bool| {
        routed.iter().filter(|(r, p)| f(r, p)).count()
    };
    let right = count(&|r, p| p.database.as_deref() == Some(r.database.as_str()));
    PipelineRoutingFigures {
        language: language.to_string(),
        cases: routed.len(),
        right,
        right_lexical: count(&|r, p| {
            p.database.as_deref() == Some(r.database.as_str())
                && p.by == Some(crate::pipeline::resolve::RoutedBy::Lexical)
        }),
        wrong: count(&|r, p| p.database.as_ref().is_some_and(|d| *d != r.database)),
        ambiguous_listing_right: count(&|r, p| {
            p.database.is_none() && p.error.is_none() && p.candidates.contains(&r.database)
        }),
        ambiguous_without_right: count(&|r, p| {
            p.database.is_none() && p.error.is_none() && !p.candidates.contains(&r.database)
        }),
        failed: count(&|_, p| p.error.is_some()),
        accuracy: right as f64 / routed.len().max(1) as f64,
    }
}

impl Report {
    /// Recomputes the groups and routing figures from the results.
    pub fn summarise(&mut self) {
        let mut keys: BTreeMap<(String, String, String), Vec<&CaseResult>> = BTreeMap::new();
        for r in &self.results {
            for level in [r.level.as_str(), "all"] {
                keys.entry((r.database.clone(), level.to_string(), r.language.clone()))
                    .or_default()
                    .push(r);
            }
        }
        self.groups = keys
            .iter()
            .map(|((d, l, g), rs)| group(d, l, g, rs))
            .collect();
        let mut by_language: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
        for r in &self.results {
            by_language.entry(r.language.as_str()).or_default().push(r);
        }
        // with one database (`--db`) there is nothing to route among: no routing figures
        let routed = self.databases.len() > 1;
        self.routing = by_language
            .iter()
            .filter(|_| routed)
            .map(|(language, rs)| {
                let right = rs
                    .iter()
                    .filter(|r| r.routed.as_deref() == Some(r.database.as_str()))
                    .count();
                let undecided = rs.iter().filter(|r| r.routed.is_none()).count();
                RoutingFigures {
                    language: language.to_string(),
                    cases: rs.len(),
                    right,
                    wrong: rs.len() - right - undecided,
                    undecided,
                    top1_right: rs
                        .iter()
                        .filter(|r| r.routed_top.as_deref() == Some(r.database.as_str()))
                        .count(),
                    accuracy: right as f64 / rs.len().max(1) as f64,
                    decided: rs.iter().filter(|r| r.decided.is_some()).count(),
                    decided_right: rs
                        .iter()
                        .filter(|r| r.decided.as_deref() == Some(r.database.as_str()))
                        .count(),
                }
            })
            .collect();
        self.pipeline_routing = by_language
            .iter()
            .filter(|_| routed)
            .filter_map(|(language, rs)| {
                let routed: Vec<(&CaseResult, &offline::PipelineRouting)> = rs
                    .iter()
                    .filter_map(|r| r.pipeline_routing.as_ref().map(|p| (*r, p)))
                    .collect();
                (!routed.is_empty()).then(|| pipeline_routing_figures(language, &routed))
            })
            .collect();
        self.mean_link_ms =
            self.results.iter().map(|r| r.link_ms).sum::<f64>() / self.results.len().max(1) as f64;
    }

    /// The markdown summary.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Evaluation, {}\n\nBudget {} schema tokens ({}); {} results; \
             linking {:.3} ms per question on average. Recall is strict: a case counts only when \
             every relation its expected SQL reads (as `nlq_validate` reports) is in the context; \
             cases whose gold the bridge role cannot see are excluded from it and counted apart. \
             \"Weak evidence\" counts the questions whose lexical evidence is weak while the whole \
             schema does not fit: the pipeline asks the model to choose their tables (recall here \
             is without that step).\n",
            if self.with_model {
                "context stage with the model's table selection"
            } else {
                "offline part (no model)"
            },
            self.budget,
            self.encoding,
            self.results.len(),
            self.mean_link_ms
        );
        let _ = writeln!(
            s,
            "| database | level | lang | cases | excluded | strict recall | median schema | median prompt | mean prompt | p95 prompt | routing | weak evidence |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {:.0} | {} | {:.3} | {} |",
                g.database,
                g.level,
                g.language,
                g.cases,
                g.excluded,
                g.recall,
                g.median_schema_tokens,
                g.median_prompt_tokens,
                g.mean_prompt_tokens,
                g.p95_prompt_tokens,
                g.routing_accuracy,
                g.weak
            );
        }
        if self.routing.is_empty() {
            let _ = writeln!(
                s,
                "\n## Routing, no database named\n\nOne database evaluated: no routing measured."
            );
        } else {
            let _ = writeln!(
                s,
                "\n## Routing, no database named\n\nRight, wrong and undecided at the lexical \
                 margin ({}); \"decided\" are the questions the pipeline routes without asking \
                 the model (a lead of {}), the others go to the model.\n\n| lang | cases | right \
                 | wrong | undecided | top-1 right | accuracy | decided | decided right |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|",
                crate::linking::route::MARGIN,
                crate::linking::route::DECIDE_MARGIN
            );
            for r in &self.routing {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {:.3} | {} | {} |",
                    r.language,
                    r.cases,
                    r.right,
                    r.wrong,
                    r.undecided,
                    r.top1_right,
                    r.accuracy,
                    r.decided,
                    r.decided_right
                );
            }
        }
        if !self.pipeline_routing.is_empty() {
            let _ = writeln!(
                s,
                "\n## Routing as the pipeline routes, with the model\n\nNo database named: lexical \
                 routing when it decides (a lead of {}), else the model's choice, else \
                 `AMBIGUOUS_QUERY` with its candidates.\n\n| lang | cases | right | of which lexical | \
                 wrong | ambiguous, right one listed | ambiguous, not listed | failed | accuracy |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|",
                crate::linking::route::DECIDE_MARGIN
            );
            for r in &self.pipeline_routing {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {:.3} |",
                    r.language,
                    r.cases,
                    r.right,
                    r.right_lexical,
                    r.wrong,
                    r.ambiguous_listing_right,
                    r.ambiguous_without_right,
                    r.failed,
                    r.accuracy
                );
            }
        }
        s.push_str(&self.targets());
        let excluded: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| r.excluded.is_some())
            .collect();
        if !excluded.is_empty() {
            let _ = writeln!(s, "\n## Excluded from recall\n");
            for r in excluded {
                let _ = writeln!(
                    s,
                    "- {} ({}): {}",
                    r.id,
                    r.language,
                    r.excluded.as_deref().unwrap_or("")
                );
            }
        }
        let misses: Vec<&CaseResult> = self
            .results
            .iter()
            .filter(|r| r.excluded.is_none() && !r.recalled)
            .collect();
        if !misses.is_empty() {
            let _ = writeln!(s, "\n## Recall misses\n");
            for r in misses {
                let _ = writeln!(
                    s,
                    "- {} ({}): missing {}",
                    r.id,
                    r.language,
                    r.missing.join(", ")
                );
            }
        }
        s
    }
}

impl Report {
    /// The targets of issue 13 that these results measure, each with its figure and whether
    /// it is met: `nlq_large` English strict recall ≥ 0.97 with a median prompt ≤ 4,000
    /// tokens, and routing accuracy ≥ 0.95 with no database named, per language.
    pub fn targets(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("\n## Targets (issue 13)\n\n");
        let met = |ok: bool| if ok { "met" } else { "not met" };
        if let Some(g) = self
            .groups
            .iter()
            .find(|g| g.database == "nlq_large" && g.level == "all" && g.language == "en")
        {
            let _ = writeln!(
                s,
                "- nlq_large, English: strict recall {:.3} (target ≥ 0.97: {}); median prompt \
                 {} tokens (target ≤ 4000: {})",
                g.recall,
                met(g.recall >= 0.97),
                g.median_prompt_tokens,
                met(g.median_prompt_tokens <= 4000)
            );
        }
        for r in &self.routing {
            let _ = writeln!(
                s,
                "- routing, no database named, {} phrasings: accuracy {:.3} ({}/{}; target ≥ \
                 0.95: {})",
                r.language,
                r.accuracy,
                r.right,
                r.cases,
                met(r.accuracy >= 0.95)
            );
        }
        for r in &self.pipeline_routing {
            let _ = writeln!(
                s,
                "- routing as the pipeline routes (with the model), no database named, {} \
                 phrasings: accuracy {:.3} ({}/{}; target ≥ 0.95: {}); {} more answered \
                 AMBIGUOUS_QUERY listing the right database",
                r.language,
                r.accuracy,
                r.right,
                r.cases,
                met(r.accuracy >= 0.95),
                r.ambiguous_listing_right
            );
        }
        s
    }
}

/// Reads a report to resume from; none (or an unreadable one) starts afresh.
pub fn read_report<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_atomically(path: &Path, text: &str) -> Result<(), BridgeError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| BridgeError::Internal(format!("cannot write {}: {e}", path.display())))
}

fn write_report<T: Serialize>(path: &Path, report: &T) -> Result<(), BridgeError> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| BridgeError::Internal(format!("cannot encode the report: {e}")))?;
    write_atomically(path, &(text + "\n"))
}

/// The phrasings of `cases` (those of `only` when given) whose key (`id:language`) is not
/// `done`, as (case, language, question).
fn phrasings_to_do<'c>(
    cases: &'c [Case],
    only: Option<&str>,
    done: &HashSet<String>,
) -> Vec<(&'c Case, &'static str, &'c str)> {
    cases
        .iter()
        .filter(|c| only.is_none_or(|o| c.database == o))
        .flat_map(|c| c.phrasings().into_iter().map(move |(l, q)| (c, l, q)))
        .filter(|(c, l, _)| !done.contains(&format!("{}:{l}", c.id)))
        .collect()
}

/// The progress bar of a run over `len` phrasings.
fn progress_bar(len: usize, label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {label} {{bar:40}} {{pos}}/{{len}} {{msg}} [{{elapsed_precise}}, eta {{eta}}]"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Runs the offline part over `cases` (those of `only` when given) and writes
/// `out/report.json` and `out/summary.md`. Returns the report.
pub async fn run_offline(
    cases: &[Case],
    estate: &Estate<'_>,
    settings: &Settings,
    only: Option<&str>,
    out: &Path,
) -> Result<Report, BridgeError> {
    run_context(cases, estate, settings, only, out, None).await
}

/// [`run_offline`], with the context stage's model-assisted table selection through `model`
/// when given (recall is then that of the context the pipeline would build with the model).
pub async fn run_context(
    cases: &[Case],
    estate: &Estate<'_>,
    settings: &Settings,
    only: Option<&str>,
    out: &Path,
    model: Option<&dyn crate::llm::ChatModel>,
) -> Result<Report, BridgeError> {
    std::fs::create_dir_all(out)
        .map_err(|e| BridgeError::Internal(format!("cannot create {}: {e}", out.display())))?;
    let report_path = out.join("report.json");
    let mut report = read_report::<Report>(&report_path)
        .filter(|r| r.with_model == model.is_some())
        .unwrap_or_default();
    report.with_model = model.is_some();
    report.budget = settings.context.max_tokens;
    report.encoding = estate.counter.encoding.to_string();
    report.databases = estate.loaded.iter().map(|l| l.name.clone()).collect();
    let done: HashSet<String> = report.results.iter().map(|r| r.key.clone()).collect();

    let todo = phrasings_to_do(cases, only, &done);
    let bar = progress_bar(todo.len(), "eval");
    let mut gold_cache: BTreeMap<String, Result<Vec<String>, String>> = BTreeMap::new();
    for (case, language, question) in todo {
        bar.set_message(format!("{} {language}", case.id));
        let Some(index) = estate.loaded.iter().position(|l| l.name == case.database) else {
            bar.inc(1);
            bar.println(format!(
                "case {}: database {} is not configured; skipped",
                case.id, case.database
            ));
            continue;
        };
        let loaded = &estate.loaded[index];
        let gold = match gold_cache.get(&case.id) {
            Some(g) => g.clone(),
            None => {
                let g = match offline::gold_relations(&loaded.database, &case.sql).await {
                    Ok(v) if v.ok => Ok(v.relations),
                    Ok(v) => Err(format!(
                        "the bridge role cannot validate the expected SQL ({}: {})",
                        v.code,
                        v.message.split_whitespace().collect::<Vec<_>>().join(" ")
                    )),
                    Err(e) => Err(format!("validation failed: {e}")),
                };
                gold_cache.insert(case.id.clone(), g.clone());
                g
            }
        };
        let started = Instant::now();
        let context = match model {
            Some(model) => {
                estate
                    .context_with_model(question, Some(&case.database), settings, model)
                    .await?
            }
            None => estate.context(question, Some(&case.database), settings)?,
        };
        let link_ms = started.elapsed().as_secs_f64() * 1000.0;
        let routing = estate.route(question);
        let pipeline_routing = match model {
            Some(model) => Some(estate.route_with_model(question, settings, model).await),
            None => None,
        };
        let (gold, excluded) = match gold {
            Ok(g) => {
                let unseen: Vec<&String> = g
                    .iter()
                    .filter(|r| !estate.loaded[index].cached.linker.knows(r))
                    .collect();
                let excluded = (!unseen.is_empty()).then(|| {
                    format!(
                        "gold relations not in the bridge role's snapshot: {}",
                        unseen
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                (g, excluded)
            }
            Err(reason) => (Vec::new(), Some(reason)),
        };
        let missing: Vec<String> = gold
            .iter()
            .filter(|g| !context.relations.contains(g))
            .cloned()
            .collect();
        report.results.push(CaseResult {
            key: format!("{}:{language}", case.id),
            id: case.id.clone(),
            database: case.database.clone(),
            level: case.level.clone(),
            language: language.to_string(),
            question: question.to_string(),
            recalled: excluded.is_none() && missing.is_empty(),
            gold,
            excluded,
            missing,
            relations: context.relations,
            whole: context.whole,
            prompt_tokens: context.prompt_tokens,
            schema_tokens: context.schema_tokens,
            routed: routing.chosen,
            decided: routing.decided,
            routed_top: routing.candidates.first().map(|c| c.database.clone()),
            routing: routing.candidates,
            link_ms,
            weakness: context.weakness,
            strength: context.strength,
            selected: context.selection.as_ref().map(|s| s.chosen.clone()),
            model_tokens: context.model_tokens.map_or(0, |t| t.total())
                + pipeline_routing.as_ref().map_or(0, |p| p.tokens),
            pipeline_routing,
        });
        write_report(&report_path, &report)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.summarise();
    write_report(&report_path, &report)?;
    write_atomically(&out.join("summary.md"), &report.markdown())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(database: &str, routed: Option<&str>) -> CaseResult {
        CaseResult {
            key: format!("X-{database}:en"),
            id: format!("X-{database}"),
            database: database.into(),
            level: "simple".into(),
            language: "en".into(),
            question: "q".into(),
            gold: vec![],
            excluded: None,
            recalled: true,
            missing: vec![],
            relations: vec![],
            whole: true,
            prompt_tokens: 10,
            schema_tokens: 5,
            routed: routed.map(str::to_string),
            routed_top: routed.map(str::to_string),
            decided: None,
            routing: vec![],
            link_ms: 0.0,
            weakness: None,
            strength: None,
            selected: None,
            model_tokens: 0,
            pipeline_routing: None,
        }
    }

    /// With one database evaluated (`--db`) every question is "routed" to it: that is no
    /// routing figure, and no target can be met by it.
    #[test]
    fn one_database_gives_no_routing_figures() {
        let mut report = Report {
            databases: vec!["a".into()],
            results: vec![result("a", Some("a"))],
            ..Report::default()
        };
        report.summarise();
        assert!(report.routing.is_empty());
        let text = report.markdown();
        assert!(
            text.contains("One database evaluated: no routing measured."),
            "{text}"
        );
        assert!(!text.contains("routing, no database named"), "{text}");

        report.databases.push("b".into());
        report.results.push(result("b", Some("a")));
        report.summarise();
        assert_eq!(report.routing.len(), 1);
        assert_eq!((report.routing[0].right, report.routing[0].wrong), (1, 1));
        assert!(report.markdown().contains("accuracy 0.500 (1/2"));
    }
}
