//! The evaluation with a model (`pg-nlq-bridge eval --with-model`): the whole pipeline per case
//! phrasing, as an MCP `query` call runs it ([`Bridge::query`], the case's database given,
//! `result` mode), against the expected SQL run through the same bridge role and row cap.
//!
//! Per phrasing: whether the result matches (the standard comparison, [`compare::same_result`],
//! and the BIRD set variant, [`compare::same_set`]; a match with any accepted SQL counts), the
//! attempts, the verifier's score, the tokens and their cost. A phrasing whose generated or
//! expected result was cut by the row cap is *uncomparable* (counted apart, neither right nor
//! wrong); one whose expected SQL the bridge role cannot run is *excluded*. Figures per
//! database, level and language: execution accuracy (both variants), mean attempts, how well
//! the verifier's score predicts correctness (accuracy of the answers scored at or above
//! `pipeline.verify_threshold` and of those below), mean tokens and cost. Phrasings run with
//! bounded concurrency (`--jobs`); `model_report.json` is rewritten after each one and a run
//! over the same `--out` skips those it holds; `model_summary.md` is written at the end.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::cases::Case;
use super::compare;
use crate::answer::{QueryRequest, ReturnMode, RunResult};
use crate::bridge::Bridge;
use crate::error::BridgeError;

/// Prices per million tokens, in US dollars (`--price-input`, `--price-output`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Prices {
    /// List prices of gpt-5-mini (USD per million tokens, input and output) when this was
    /// written; check them against the provider's current list.
    pub const GPT_5_MINI: Prices = Prices {
        input_per_million: 0.25,
        output_per_million: 2.0,
    };

    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_million + output as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// One phrasing of one case, through the pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelResult {
    /// `id:language`, the resume key.
    pub key: String,
    pub id: String,
    pub database: String,
    pub level: String,
    pub language: String,
    pub question: String,
    /// The SQL the pipeline answered with (`None`: it failed).
    pub sql: Option<String>,
    /// The pipeline's error code when it failed.
    pub error: Option<String>,
    /// Why the phrasing is not scored (the expected SQL could not be run).
    pub excluded: Option<String>,
    /// Why the results could not be compared (a row cap cut one of them).
    pub uncomparable: Option<String>,
    /// The standard comparison matched an accepted SQL.
    pub correct: bool,
    /// The BIRD set comparison matched an accepted SQL.
    pub correct_set: bool,
    pub attempts: usize,
    /// The verifier's score of the answer (`None`: verification did not run).
    pub score: Option<u8>,
    pub low_confidence: bool,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub ms: f64,
}

impl ModelResult {
    fn scored(&self) -> bool {
        self.excluded.is_none() && self.uncomparable.is_none()
    }
}

/// Figures for one group of results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelGroup {
    pub database: String,
    /// A level, or `all`.
    pub level: String,
    /// `en`, `zh`, or `all`.
    pub language: String,
    pub cases: usize,
    pub excluded: usize,
    pub uncomparable: usize,
    /// Phrasings the pipeline failed on (counted as wrong).
    pub failed: usize,
    pub correct: usize,
    pub correct_set: usize,
    /// `correct / scored` (scored: not excluded, not uncomparable).
    pub accuracy: f64,
    pub accuracy_set: f64,
    pub mean_attempts: f64,
    /// Scored answers with a verifier score at or above the threshold, and how many were right.
    pub above_threshold: usize,
    pub above_correct: usize,
    /// Scored answers below it (including the best attempt returned as low confidence).
    pub below_threshold: usize,
    pub below_correct: usize,
    pub mean_input_tokens: f64,
    pub mean_output_tokens: f64,
    pub mean_cost_usd: f64,
    pub total_cost_usd: f64,
}

/// `model_report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ModelReport {
    pub model: String,
    pub threshold: u8,
    pub prices: Option<Prices>,
    pub results: Vec<ModelResult>,
    pub groups: Vec<ModelGroup>,
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

/// The figures of `results` (already the group's).
pub fn model_group(
    database: &str,
    level: &str,
    language: &str,
    threshold: u8,
    results: &[&ModelResult],
) -> ModelGroup {
    let scored: Vec<&&ModelResult> = results.iter().filter(|r| r.scored()).collect();
    let correct = scored.iter().filter(|r| r.correct).count();
    let correct_set = scored.iter().filter(|r| r.correct_set).count();
    let above: Vec<&&&ModelResult> = scored
        .iter()
        .filter(|r| r.score.is_some_and(|s| s >= threshold))
        .collect();
    let below: Vec<&&&ModelResult> = scored
        .iter()
        .filter(|r| r.score.is_some_and(|s| s < threshold))
        .collect();
    let n = results.len().max(1) as f64;
    let total_cost: f64 = results.iter().map(|r| r.cost_usd).sum();
    ModelGroup {
        database: database.to_string(),
        level: level.to_string(),
        language: language.to_string(),
        cases: results.len(),
        excluded: results.iter().filter(|r| r.excluded.is_some()).count(),
        uncomparable: results
            .iter()
            .filter(|r| r.excluded.is_none() && r.uncomparable.is_some())
            .count(),
        failed: scored.iter().filter(|r| r.error.is_some()).count(),
        correct,
        correct_set,
        accuracy: ratio(correct, scored.len()),
        accuracy_set: ratio(correct_set, scored.len()),
        mean_attempts: results.iter().map(|r| r.attempts as f64).sum::<f64>() / n,
        above_threshold: above.len(),
        above_correct: above.iter().filter(|r| r.correct).count(),
        below_threshold: below.len(),
        below_correct: below.iter().filter(|r| r.correct).count(),
        mean_input_tokens: results.iter().map(|r| r.input_tokens as f64).sum::<f64>() / n,
        mean_output_tokens: results.iter().map(|r| r.output_tokens as f64).sum::<f64>() / n,
        mean_cost_usd: total_cost / n,
        total_cost_usd: total_cost,
    }
}

impl ModelReport {
    /// Recomputes the groups from the results: per database × level × language, per database
    /// and language over all levels, and everything together.
    pub fn summarise(&mut self) {
        let mut keys: BTreeMap<(String, String, String), Vec<&ModelResult>> = BTreeMap::new();
        for r in &self.results {
            for (database, level, language) in [
                (r.database.as_str(), r.level.as_str(), r.language.as_str()),
                (r.database.as_str(), "all", r.language.as_str()),
                ("all", "all", r.language.as_str()),
                ("all", "all", "all"),
            ] {
                keys.entry((database.into(), level.into(), language.into()))
                    .or_default()
                    .push(r);
            }
        }
        self.groups = keys
            .iter()
            .map(|((d, l, g), rs)| model_group(d, l, g, self.threshold, rs))
            .collect();
    }

    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Evaluation with a model ({})\n\n{} phrasings through the whole pipeline. Execution \
             accuracy: the standard comparison (multisets of rows, column order ignored, row \
             order when the expected SQL orders) and the BIRD set variant; a match with any \
             accepted SQL counts. Uncomparable: a row cap cut a result. Calibration: accuracy of \
             the answers the verifier scored at or above the threshold ({}) and below it.{}\n",
            self.model,
            self.results.len(),
            self.threshold,
            match self.prices {
                Some(p) => format!(
                    " Cost at {} USD per million input tokens and {} per million output tokens.",
                    p.input_per_million, p.output_per_million
                ),
                None => String::new(),
            }
        );
        let _ = writeln!(
            s,
            "| database | level | lang | cases | excl. | uncomp. | failed | accuracy | set accuracy | mean attempts | ≥ threshold right | < threshold right | mean tokens in/out | mean cost | total cost |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for g in &self.groups {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.2} | {}/{} | {}/{} | {:.0}/{:.0} | ${:.5} | ${:.4} |",
                g.database,
                g.level,
                g.language,
                g.cases,
                g.excluded,
                g.uncomparable,
                g.failed,
                g.accuracy,
                g.accuracy_set,
                g.mean_attempts,
                g.above_correct,
                g.above_threshold,
                g.below_correct,
                g.below_threshold,
                g.mean_input_tokens,
                g.mean_output_tokens,
                g.mean_cost_usd,
                g.total_cost_usd
            );
        }
        let wrong: Vec<&ModelResult> = self
            .results
            .iter()
            .filter(|r| r.scored() && !r.correct)
            .collect();
        if !wrong.is_empty() {
            let _ = writeln!(s, "\n## Wrong\n");
            for r in wrong {
                let _ = writeln!(
                    s,
                    "- {} ({}): {}",
                    r.id,
                    r.language,
                    r.error
                        .clone()
                        .or_else(|| r.sql.clone())
                        .unwrap_or_default()
                );
            }
        }
        s
    }
}

/// How one phrasing is run: the bridge, the row cap and the prices.
pub struct Runner<'a> {
    pub bridge: &'a Bridge,
    pub row_limit: u32,
    pub prices: Prices,
}

fn cut(result: &RunResult) -> Option<String> {
    result.truncated.then(|| {
        crate::answer::truncation_note(
            true,
            result.truncated_reason.as_deref(),
            result.truncated_limit,
        )
        .unwrap_or_else(|| "the result was truncated".to_string())
    })
}

impl Runner<'_> {
    /// Runs `question` of `case` through the pipeline and compares it with the case's SQL.
    pub async fn one(&self, case: &Case, language: &str, question: &str) -> ModelResult {
        let started = Instant::now();
        let mut result = ModelResult {
            key: format!("{}:{language}", case.id),
            id: case.id.clone(),
            database: case.database.clone(),
            level: case.level.clone(),
            language: language.to_string(),
            question: question.to_string(),
            sql: None,
            error: None,
            excluded: None,
            uncomparable: None,
            correct: false,
            correct_set: false,
            attempts: 0,
            score: None,
            low_confidence: false,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            ms: 0.0,
        };
        let mut expected: Vec<(String, RunResult)> = Vec::new();
        for sql in case.all_sql() {
            match self
                .bridge
                .run_sql(Some(&case.database), sql, Some(self.row_limit))
                .await
            {
                Ok(r) => expected.push((sql.to_string(), r)),
                Err(e) => {
                    result.excluded = Some(format!(
                        "the expected SQL cannot be run by the bridge role ({}: {})",
                        e.code.as_str(),
                        crate::text::one_line(&e.message, 200)
                    ));
                    return result;
                }
            }
        }
        let answer = self
            .bridge
            .query(
                QueryRequest {
                    question: question.to_string(),
                    database: Some(case.database.clone()),
                    return_mode: Some(ReturnMode::Result),
                    row_limit: Some(self.row_limit),
                    test_run: None,
                },
                None,
            )
            .await;
        result.ms = started.elapsed().as_secs_f64() * 1000.0;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                result.error = Some(e.code.as_str().to_string());
                result.attempts = e.attempts.len();
                result.sql = e.attempts.iter().rev().find_map(|a| a.sql.clone());
                return result;
            }
        };
        result.sql = Some(answer.sql.clone());
        result.attempts = answer.attempts.len();
        result.score = answer.confidence;
        result.low_confidence = answer.low_confidence;
        result.input_tokens = answer.tokens.input;
        result.output_tokens = answer.tokens.output;
        result.cost_usd = self.prices.cost(answer.tokens.input, answer.tokens.output);
        if answer.truncated {
            result.uncomparable = Some(format!(
                "the answer was cut at {} rows",
                answer.truncated_limit.unwrap_or(0)
            ));
            return result;
        }
        if let Some(note) = expected.iter().find_map(|(_, r)| cut(r)) {
            result.uncomparable = Some(format!("the expected result was cut: {note}"));
            return result;
        }
        let got = answer.rows.unwrap_or_default();
        result.correct = expected
            .iter()
            .any(|(sql, r)| compare::same_result(&r.rows, &got, compare::orders_rows(sql)));
        result.correct_set = expected
            .iter()
            .any(|(_, r)| compare::same_set(&r.rows, &got));
        result
    }
}

/// Runs every phrasing of `cases` (those of `only` when given) through the pipeline, `jobs` at
/// a time, and writes `out/model_report.json` and `out/model_summary.md`.
pub async fn run_model(
    cases: &[Case],
    runner: &Runner<'_>,
    only: Option<&str>,
    out: &Path,
    jobs: usize,
) -> Result<ModelReport, BridgeError> {
    std::fs::create_dir_all(out)
        .map_err(|e| BridgeError::Internal(format!("cannot create {}: {e}", out.display())))?;
    let path = out.join("model_report.json");
    let settings = runner.bridge.settings();
    let mut report = super::read_report::<ModelReport>(&path)
        .filter(|r| r.model == settings.model.model)
        .unwrap_or_default();
    report.model = settings.model.model.clone();
    report.threshold = settings.pipeline.verify_threshold;
    report.prices = Some(runner.prices);
    let done: HashSet<String> = report.results.iter().map(|r| r.key.clone()).collect();
    let todo = super::phrasings_to_do(cases, only, &done);
    let bar = Arc::new(super::progress_bar(todo.len(), "eval (model)"));
    let mut stream = futures::stream::iter(todo)
        .map(|(case, language, question)| {
            let bar = Arc::clone(&bar);
            async move {
                let r = runner.one(case, language, question).await;
                bar.set_message(format!("{} {language}", case.id));
                r
            }
        })
        .buffer_unordered(jobs.max(1));
    while let Some(result) = stream.next().await {
        report.results.push(result);
        report.summarise();
        super::write_report(&path, &report)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    report
        .results
        .sort_by(|a, b| (&a.database, &a.id, &a.language).cmp(&(&b.database, &b.id, &b.language)));
    report.summarise();
    super::write_report(&path, &report)?;
    super::write_atomically(&out.join("model_summary.md"), &report.markdown())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, correct: bool, score: Option<u8>) -> ModelResult {
        ModelResult {
            key: format!("{id}:en"),
            id: id.into(),
            database: "db".into(),
            level: "simple".into(),
            language: "en".into(),
            question: "q".into(),
            sql: Some("SELECT 1".into()),
            error: None,
            excluded: None,
            uncomparable: None,
            correct,
            correct_set: correct,
            attempts: 1,
            score,
            low_confidence: false,
            input_tokens: 1000,
            output_tokens: 100,
            cost_usd: Prices::GPT_5_MINI.cost(1000, 100),
            ms: 1.0,
        }
    }

    #[test]
    fn figures_count_calibration_and_leave_out_what_cannot_be_compared() {
        let mut cut = result("c", true, Some(9));
        cut.uncomparable = Some("cut".into());
        let mut excluded = result("e", false, None);
        excluded.excluded = Some("denied".into());
        let mut set_only = result("s", false, Some(8));
        set_only.correct_set = true;
        let mut failed = result("f", false, None);
        failed.error = Some("LLM_ERROR".into());
        failed.attempts = 3;
        let all = [
            result("a", true, Some(9)),
            result("b", false, Some(3)),
            result("d", true, Some(4)),
            set_only,
            cut,
            excluded,
            failed,
        ];
        let refs: Vec<&ModelResult> = all.iter().collect();
        let g = model_group("db", "all", "en", 7, &refs);
        assert_eq!(
            (g.cases, g.excluded, g.uncomparable, g.failed),
            (7, 1, 1, 1)
        );
        // scored: a, b, d, s, f
        assert_eq!((g.correct, g.correct_set), (2, 3));
        assert!((g.accuracy - 0.4).abs() < 1e-9);
        assert!((g.accuracy_set - 0.6).abs() < 1e-9);
        assert_eq!((g.above_correct, g.above_threshold), (1, 2)); // a right, s wrong
        assert_eq!((g.below_correct, g.below_threshold), (1, 2)); // d right, b wrong
        assert!((g.mean_attempts - 9.0 / 7.0).abs() < 1e-9);
        // 1000 in at 0.25/M + 100 out at 2/M = 0.00045 per phrasing
        assert!((g.total_cost_usd - 7.0 * 0.00045).abs() < 1e-12);
    }

    #[test]
    fn prices_are_per_million_tokens() {
        let p = Prices {
            input_per_million: 1.0,
            output_per_million: 10.0,
        };
        assert!((p.cost(2_000_000, 100_000) - 3.0).abs() < 1e-12);
    }
}
