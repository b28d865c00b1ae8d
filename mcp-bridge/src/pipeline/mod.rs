//! The journey of a question (design §2), one file per stage:
//!
//! | stage | file | does |
//! |---|---|---|
//! | 1 | [`resolve`] | which database, and its current schema (fingerprint-checked) |
//! | 2 | [`context`] | the part of the schema the question needs, under the token budget |
//! | 3 | [`generate`] | the model writes the SQL |
//! | 4 | [`validate`] | `nlq_validate` checks it |
//! | 5 | [`run`] | `nlq_run` runs it, read-only and capped |
//! | 6 | [`verify`] | the model judges whether the result answers the question |
//! | 7 | [`answer`] | the answer: SQL, rows or both, with everything that explains it |
//!
//! [`ask`] drives them: stages 2–6 repeat with feedback until a result passes or the attempts
//! run out; this loop owns the attempts, the feedback, the best attempt so far and the
//! timings. A stage's timer measures that stage's work. A stage returns a typed outcome; what
//! to do next is decided here.

pub mod answer;
pub mod context;
pub mod generate;
pub mod resolve;
pub mod run;
pub mod validate;
pub mod verify;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::answer::{
    Answer, Attempt, ErrorCode, QueryRequest, ReturnMode, RunResult, Stage, StageTiming, ToolError,
};
use crate::linking::LinkedContext;
use crate::llm::{ChatModel, LlmError, ModelReply, StructuredRequest, TokenUsage};
use crate::prompts::{Feedback, Generated};
use crate::registry::Registry;
use crate::settings::Settings;

/// What every stage may use: the settings, the model, the question's cancellation, and the
/// tokens spent.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    model: &'a dyn ChatModel,
    cancel: &'a CancellationToken,
    tokens: Mutex<TokenUsage>,
}

impl<'a> Ctx<'a> {
    /// The context of one question (or of one offline command, `context --with-model`).
    pub fn new(
        settings: &'a Settings,
        model: &'a dyn ChatModel,
        cancel: &'a CancellationToken,
    ) -> Ctx<'a> {
        Ctx {
            settings,
            model,
            cancel,
            tokens: Mutex::new(TokenUsage::default()),
        }
    }

    /// One model request, never sent once the question is cancelled, and abandoned when it is
    /// cancelled meanwhile. Its tokens are counted.
    pub async fn complete(&self, request: StructuredRequest) -> Result<ModelReply, LlmError> {
        if self.cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let reply = tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(LlmError::Cancelled),
            reply = self.model.complete(request) => reply,
        };
        if let Ok(reply) = &reply {
            if let Ok(mut tokens) = self.tokens.lock() {
                tokens.add(reply.usage);
            }
        }
        reply
    }

    pub fn cancel(&self) -> &CancellationToken {
        self.cancel
    }

    /// The tokens spent so far.
    pub fn tokens(&self) -> TokenUsage {
        self.tokens.lock().map(|t| *t).unwrap_or_default()
    }
}

/// Accumulated time per stage.
#[derive(Default)]
struct Timings {
    by_stage: HashMap<Stage, (f64, u32)>,
}

impl Timings {
    fn add(&mut self, stage: Stage, started: Instant) {
        let entry = self.by_stage.entry(stage).or_insert((0.0, 0));
        entry.0 += started.elapsed().as_secs_f64() * 1000.0;
        entry.1 += 1;
    }

    fn list(&self) -> Vec<StageTiming> {
        Stage::ALL
            .iter()
            .filter_map(|s| {
                self.by_stage.get(s).map(|(ms, runs)| StageTiming {
                    stage: *s,
                    ms: (*ms * 1000.0).round() / 1000.0,
                    runs: *runs,
                })
            })
            .collect()
    }
}

/// A query that was accepted by the checks (and ran, unless `test_run` is off).
pub struct Candidate {
    pub generated: Generated,
    pub run: Option<RunResult>,
    pub score: Option<u8>,
    pub reasons: Option<String>,
}

/// The attempts made so far.
#[derive(Default)]
struct Attempts {
    list: Vec<Attempt>,
}

impl Attempts {
    fn record(&mut self, sql: Option<&str>, outcome: &str, message: &str, score: Option<u8>) {
        let number = self.list.len() as u32 + 1;
        self.list.push(Attempt {
            number,
            sql: sql.map(str::to_string),
            outcome: outcome.to_string(),
            message: crate::redact::redact(message),
            score,
        });
    }
}

/// The most rows a caller may ask for, by the one rule: at least 1, at most
/// `pipeline.max_row_limit`; `None` is `pipeline.default_row_limit`.
pub fn row_limit(settings: &Settings, requested: Option<u32>) -> Result<u32, ToolError> {
    let p = &settings.pipeline;
    match requested {
        None => Ok(p.default_row_limit),
        Some(0) => Err(ToolError::invalid("the row limit must be at least 1")),
        Some(n) if n > p.max_row_limit => Err(ToolError::new(
            ErrorCode::ResultTooLarge,
            format!(
                "the row limit {n} is above the bridge's limit of {} rows \
                 (pipeline.max_row_limit): ask for fewer rows, or for an aggregate",
                p.max_row_limit
            ),
            false,
        )),
        Some(n) => Ok(n),
    }
}

/// The question, trimmed, or why it cannot be asked.
pub fn checked_question(settings: &Settings, question: &str) -> Result<String, ToolError> {
    let question = question.trim();
    if question.is_empty() {
        return Err(ToolError::invalid(
            "the question is empty: ask something about the data",
        ));
    }
    let max = settings.pipeline.max_question_chars;
    let length = question.chars().count();
    if length > max {
        return Err(ToolError::invalid(format!(
            "the question is {length} characters long, more than the {max} allowed \
             (pipeline.max_question_chars): shorten it"
        )));
    }
    Ok(question.to_string())
}

/// Answers one question: the pipeline from the question to the answer, stopped as soon as
/// `cancel` is cancelled (no model request is sent after it, a model request under way is
/// abandoned, and a statement running in PostgreSQL is cancelled there).
pub async fn ask(
    registry: &Registry,
    settings: &Settings,
    model: &dyn ChatModel,
    request: QueryRequest,
    cancel: &CancellationToken,
) -> Result<Answer, ToolError> {
    let started = Instant::now();
    let question = checked_question(settings, &request.question)?;
    let mode = request
        .return_mode
        .or_else(|| crate::return_mode::infer_return_mode(&question))
        .unwrap_or(ReturnMode::Result);
    let row_limit = row_limit(settings, request.row_limit)?;
    let ctx = Ctx::new(settings, model, cancel);
    let mut timings = Timings::default();
    let mut attempts = Attempts::default();

    // 1. resolve
    let t = Instant::now();
    let resolved = resolve::resolve(&ctx, registry, &question, request.database.as_deref()).await;
    timings.add(Stage::Resolve, t);
    let resolved = resolved?;
    let database_name = resolved.database.name.clone();

    let test_run = mode != ReturnMode::Sql || request.test_run.unwrap_or(true);
    let limit = if mode == ReturnMode::Sql {
        settings.pipeline.sql_mode_test_limit.min(row_limit)
    } else {
        row_limit
    };
    let plan = Plan {
        question: &question,
        resolved: &resolved,
        limit,
        test_run,
    };
    let outcome = attempt_loop(&ctx, &plan, &mut timings, &mut attempts).await;
    let (candidate, low_confidence) = match outcome {
        Ok(found) => found,
        Err(err) => {
            let mut err = err.with_database(&database_name);
            err.attempts = attempts.list;
            tracing::info!(
                database = %database_name,
                code = err.code.as_str(),
                attempts = err.attempts.len(),
                ms = started.elapsed().as_millis() as u64,
                "query failed"
            );
            return Err(err);
        }
    };

    // 7. answer
    let t = Instant::now();
    let built = answer::Built {
        database: database_name,
        question,
        mode,
        candidate,
        low_confidence,
        attempts: attempts.list,
        tokens: ctx.tokens(),
        model: model.describe(),
    };
    let mut answer = answer::answer(built);
    timings.add(Stage::Answer, t);
    answer.timings = timings.list();
    answer.total_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
    tracing::info!(
        database = %answer.database,
        attempts = answer.attempts.len(),
        confidence = ?answer.confidence,
        ms = answer.total_ms,
        "query answered"
    );
    Ok(answer)
}

/// What the attempts work on.
struct Plan<'a> {
    question: &'a str,
    resolved: &'a resolve::Resolved,
    limit: u32,
    test_run: bool,
}

/// Stages 2–6, repeated with feedback until a result passes or the attempts run out. Returns
/// the accepted candidate, or the best one flagged low-confidence — also when a later attempt
/// fails outright (design DEC-22), unless the question was cancelled.
async fn attempt_loop(
    ctx: &Ctx<'_>,
    plan: &Plan<'_>,
    timings: &mut Timings,
    attempts: &mut Attempts,
) -> Result<(Candidate, bool), ToolError> {
    let p = &ctx.settings.pipeline;
    let database = &plan.resolved.database;
    let cached = &plan.resolved.cached;
    let mut feedback: Vec<Feedback> = Vec::new();
    let mut best: Option<Candidate> = None;
    let mut last_error: Option<ToolError> = None;
    let mut linked: Option<LinkedContext> = None;
    let mut widen: Option<String> = None;
    let mut fatal: Option<ToolError> = None;

    for _ in 0..p.max_attempts {
        // 2. context (again only to widen it)
        let context = match (linked.take(), widen.take()) {
            (Some(previous), None) => linked.insert(previous),
            (previous, message) => {
                let t = Instant::now();
                let retry = previous.as_ref().zip(message.as_deref());
                let target = context::Target {
                    database,
                    cached,
                    question: plan.question,
                    limit: plan.limit,
                };
                let built = context::context(ctx, target, retry).await;
                timings.add(Stage::Context, t);
                linked.insert(built)
            }
        };

        // 3. generate
        let t = Instant::now();
        let generated = generate::generate(
            ctx,
            &generate::Input {
                question: plan.question,
                database,
                cached,
                context,
                limit: plan.limit,
                feedback: &feedback,
            },
        )
        .await;
        timings.add(Stage::Generate, t);
        let generated = match generated {
            generate::Outcome::Generated(g) => g,
            generate::Outcome::Malformed(message) => {
                attempts.record(None, "MALFORMED_OUTPUT", &message, None);
                last_error = Some(ToolError::new(
                    ErrorCode::LlmError,
                    format!("the model's answers were malformed: {message}"),
                    true,
                ));
                feedback.push(Feedback::Malformed { message });
                continue;
            }
            generate::Outcome::Failed(err) => {
                attempts.record(None, err.code.as_str(), &err.full_message(), None);
                fatal = Some(err);
                break;
            }
        };
        let sql = generated.sql.clone();

        // 4. validate
        let t = Instant::now();
        let checked = validate::validate(ctx, database, &sql).await;
        timings.add(Stage::Validate, t);
        match checked {
            validate::Outcome::Accepted => {}
            validate::Outcome::Refused(refusal) => {
                attempts.record(
                    Some(&sql),
                    refusal.code.as_str(),
                    &refusal.report.message,
                    None,
                );
                if !refusal.meaning.regenerate {
                    fatal = Some(refusal.error);
                    break;
                }
                if refusal.widens_context() {
                    widen = Some(refusal.report.message.clone());
                }
                feedback.push(refusal.feedback(sql));
                last_error = Some(refusal.error);
                continue;
            }
            validate::Outcome::Failed(err) => {
                attempts.record(Some(&sql), err.code.as_str(), &err.full_message(), None);
                fatal = Some(err);
                break;
            }
        }

        // 5. run
        if !plan.test_run {
            attempts.record(
                Some(&sql),
                "ACCEPTED",
                "validated; not run (test_run = false)",
                None,
            );
            return Ok((
                Candidate {
                    generated,
                    run: None,
                    score: None,
                    reasons: None,
                },
                false,
            ));
        }
        let t = Instant::now();
        let ran = run::run(ctx, database, &sql, plan.limit).await;
        timings.add(Stage::Run, t);
        let result = match ran {
            run::Outcome::Ran(result) => result,
            run::Outcome::Failed { error, regenerate } => {
                attempts.record(Some(&sql), error.code.as_str(), &error.full_message(), None);
                if !regenerate {
                    fatal = Some(error);
                    break;
                }
                feedback.push(Feedback::ExecutionFailed {
                    sql,
                    message: error.full_message(),
                    advice: run::advice(&error).to_string(),
                });
                last_error = Some(error);
                continue;
            }
        };

        // 6. verify
        if !p.verify {
            attempts.record(Some(&sql), "ACCEPTED", "verification is turned off", None);
            return Ok((
                Candidate {
                    generated,
                    run: Some(result),
                    score: None,
                    reasons: None,
                },
                false,
            ));
        }
        let t = Instant::now();
        let judged = verify::verify(ctx, plan.question, &generated, &result).await;
        timings.add(Stage::Verify, t);
        let verdict = match judged {
            verify::Outcome::Judged(v) => v,
            verify::Outcome::Unverified(message) => {
                // The query ran and passed every check; only the judgement is missing.
                attempts.record(
                    Some(&sql),
                    "UNVERIFIED",
                    &format!("the verifier's answers were malformed: {message}"),
                    None,
                );
                return Ok((
                    Candidate {
                        generated,
                        run: Some(result),
                        score: None,
                        reasons: Some(format!("not verified: {message}")),
                    },
                    true,
                ));
            }
            verify::Outcome::Failed(err) => {
                attempts.record(Some(&sql), err.code.as_str(), &err.full_message(), None);
                fatal = Some(err);
                break;
            }
        };
        if verdict.score >= p.verify_threshold {
            attempts.record(
                Some(&sql),
                "ACCEPTED",
                &verdict.reasons,
                Some(verdict.score),
            );
            return Ok((
                Candidate {
                    generated,
                    run: Some(result),
                    score: Some(verdict.score),
                    reasons: Some(verdict.reasons),
                },
                false,
            ));
        }
        attempts.record(
            Some(&sql),
            "LOW_SCORE",
            format!("{} {}", verdict.reasons, verdict.critique).trim(),
            Some(verdict.score),
        );
        feedback.push(Feedback::LowScore {
            sql,
            score: verdict.score,
            critique: if verdict.critique.is_empty() {
                verdict.reasons.clone()
            } else {
                verdict.critique.clone()
            },
        });
        if best
            .as_ref()
            .is_none_or(|b| b.score.unwrap_or(0) < verdict.score)
        {
            best = Some(Candidate {
                generated,
                run: Some(result),
                score: Some(verdict.score),
                reasons: Some(verdict.reasons),
            });
        }
    }

    let cancelled = fatal
        .as_ref()
        .is_some_and(|e| e.code == ErrorCode::Cancelled);
    if let (Some(best), false) = (best, cancelled) {
        return Ok((best, true));
    }
    if let Some(err) = fatal {
        return Err(err);
    }
    let n = attempts.list.len();
    let mut err = last_error.unwrap_or_else(|| {
        ToolError::new(ErrorCode::AttemptsExhausted, "no attempt was made", false)
    });
    err.message = format!(
        "no query answered the question in {}; the last one failed: {}",
        crate::text::counted(n, "attempt", "attempts"),
        err.message
    );
    Err(err)
}
