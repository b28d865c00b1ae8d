//! The bridge: the databases it may use, their cached schemas, the model, and the operations
//! the MCP tools and the command line expose. [`Bridge::query`] is the question pipeline; each
//! stage is named ([`Stage`]) and timed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use serde::Serialize;

use crate::answer::{
    Answer, Attempt, ErrorCode, QueryRequest, ReturnMode, RunResult, Stage, StageTiming, ToolError,
    Validation,
};
use crate::db::{self, Cached, Database};
use crate::error::BridgeError;
use crate::llm::openai::OpenAiModel;
use crate::llm::{ChatModel, LlmError, ModelReply, StructuredRequest, TokenUsage};
use crate::prompts::{self, DatabaseChoice, Feedback, GenerateInput, Generated, VerifyInput};
use crate::settings::{ServerSettings, Settings};
use tokio_util::sync::CancellationToken;

/// Longest text of one cell shown to the verifier.
const VERIFY_CELL_CHARS: usize = 200;

/// A database as `list_databases` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseInfo {
    /// The name tools take (the database name; `server/database` when two servers have one of
    /// the same name).
    pub name: String,
    /// Why the name is not the database's own name (escaped, or qualified by its server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub server: String,
    pub description: Option<String>,
    /// `ready`, `loading`, `unavailable` (retried in the background), `extension_missing`, or
    /// `server_unavailable` (the server could not be asked which databases it has; retried).
    pub status: String,
    /// Why it is not ready.
    pub reason: Option<String>,
    pub relations: Option<usize>,
    pub fingerprint: Option<String>,
}

/// A server whose databases could not be discovered yet.
struct PendingServer {
    server: ServerSettings,
    reason: String,
}

/// The running bridge.
pub struct Bridge {
    settings: Settings,
    databases: RwLock<Vec<Arc<Database>>>,
    pending: tokio::sync::Mutex<Vec<PendingServer>>,
    model: Option<Arc<dyn ChatModel>>,
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

/// A query that ran (or, in `sql` mode without a test run, was only validated).
struct Candidate {
    generated: Generated,
    run: Option<RunResult>,
    score: Option<u8>,
    reasons: Option<String>,
}

impl Bridge {
    /// Discovers the databases, loads their snapshots in parallel (waiting at most the
    /// configured start-up time) and starts retrying the ones that are down.
    pub async fn start(settings: Settings) -> Result<Arc<Bridge>, BridgeError> {
        let model: Option<Arc<dyn ChatModel>> = match settings.model.api_key {
            Some(_) => Some(Arc::new(
                OpenAiModel::new(&settings.model)
                    .map_err(|e| BridgeError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let bridge = Arc::new(Bridge {
            settings,
            databases: RwLock::new(Vec::new()),
            pending: tokio::sync::Mutex::new(Vec::new()),
            model,
        });
        let servers = bridge.settings.servers.clone();
        let discovered = futures::future::join_all(servers.into_iter().map(|server| async {
            let result = db::discover(&server, &bridge.settings.database).await;
            (server, result)
        }))
        .await;
        let mut found = Vec::new();
        for (server, result) in discovered {
            match result {
                Ok(names) => found.push((server, names)),
                Err(err) => {
                    tracing::warn!(server = %server.name, "{err}");
                    bridge.pending.lock().await.push(PendingServer {
                        server,
                        reason: err.to_string(),
                    });
                }
            }
        }
        bridge.add_databases(found)?;
        let loads: Vec<_> = bridge
            .all_databases()
            .into_iter()
            .map(|database| {
                tokio::spawn(async move {
                    let _ = database.load().await;
                })
            })
            .collect();
        let timeout = bridge.settings.database.startup_timeout;
        if tokio::time::timeout(timeout, futures::future::join_all(loads))
            .await
            .is_err()
        {
            tracing::warn!(
                "not every schema loaded within {timeout:?}; serving, and loading the rest in the background"
            );
        }
        Self::spawn_retry(
            Arc::downgrade(&bridge),
            bridge.settings.database.retry_interval,
        );
        Ok(bridge)
    }

    /// Registers discovered databases, naming them `server/database` where two servers have a
    /// database of the same name. A database's own name is escaped first ([`escape_name`]), so
    /// that it never contains the separator: a database literally named `B/shop` on server A
    /// is `B%2Fshop` (or `A/B%2Fshop`), and can never take the name of B's `shop`.
    fn add_databases(&self, found: Vec<(ServerSettings, Vec<String>)>) -> Result<(), BridgeError> {
        let mut guard = self
            .databases
            .write()
            .map_err(|_| BridgeError::Internal("database list poisoned".into()))?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        for d in guard.iter() {
            *counts.entry(escape_name(&d.dbname)).or_default() += 1;
        }
        for (_, names) in &found {
            for n in names {
                *counts.entry(escape_name(n)).or_default() += 1;
            }
        }
        for (server, names) in found {
            for dbname in names {
                if guard
                    .iter()
                    .any(|d| d.dbname == dbname && d.server == server.name)
                {
                    continue;
                }
                let escaped = escape_name(&dbname);
                let name = if counts.get(&escaped).copied().unwrap_or(0) > 1 {
                    format!("{}/{escaped}", server.name)
                } else {
                    escaped.clone()
                };
                if escaped != dbname {
                    tracing::warn!(
                        server = %server.name,
                        "database {:?} has a name with the separator '/', white space, or \
                         look-alike or invisible characters: it is named {name}",
                        dbname
                    );
                }
                guard.push(Arc::new(Database::new(
                    name,
                    &dbname,
                    &server,
                    &self.settings.database,
                )?));
            }
        }
        Ok(())
    }

    fn all_databases(&self) -> Vec<Arc<Database>> {
        self.databases.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Retries unavailable databases and undiscovered servers until the bridge is dropped.
    fn spawn_retry(bridge: Weak<Bridge>, interval: std::time::Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(bridge) = bridge.upgrade() else {
                    return;
                };
                bridge.retry_pending().await;
                for database in bridge.all_databases() {
                    if database.needs_retry() {
                        let _ = database.load().await;
                    }
                }
            }
        });
    }

    /// Tries the undiscovered servers again. They stay listed (as `server_unavailable`) while
    /// they are tried, and leave the list only once their databases are added.
    async fn retry_pending(&self) {
        let servers: Vec<ServerSettings> = self
            .pending
            .lock()
            .await
            .iter()
            .map(|p| p.server.clone())
            .collect();
        let mut found = Vec::new();
        let mut still: Vec<PendingServer> = Vec::new();
        for server in servers {
            match db::discover(&server, &self.settings.database).await {
                Ok(names) => found.push((server, names)),
                Err(err) => still.push(PendingServer {
                    server,
                    reason: err.to_string(),
                }),
            }
        }
        let discovered: Vec<String> = found.iter().map(|(s, _)| s.name.clone()).collect();
        if !found.is_empty() {
            if let Err(err) = self.add_databases(found) {
                tracing::warn!("{err}");
            }
        }
        let mut pending = self.pending.lock().await;
        pending.retain(|p| !discovered.contains(&p.server.name));
        for p in pending.iter_mut() {
            if let Some(now) = still.iter().find(|s| s.server.name == p.server.name) {
                p.reason = now.reason.clone();
            }
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether a model is configured (an API key); without one, `query` needs `model`.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The databases and their state, including servers not yet reached.
    pub async fn list_databases(&self) -> Vec<DatabaseInfo> {
        let mut list: Vec<DatabaseInfo> = self.all_databases().iter().map(|d| d.info()).collect();
        for p in self.pending.lock().await.iter() {
            list.push(DatabaseInfo {
                name: format!("{}/*", p.server.name),
                note: None,
                server: p.server.name.clone(),
                description: None,
                status: "server_unavailable".into(),
                reason: Some(p.reason.clone()),
                relations: None,
                fingerprint: None,
            });
        }
        list
    }

    fn unknown_database(&self, name: &str) -> ToolError {
        let names: Vec<String> = self
            .all_databases()
            .iter()
            .map(|d| d.name.clone())
            .collect();
        let mut err = ToolError::new(
            ErrorCode::UnknownDatabase,
            format!(
                "there is no database {name:?}; the bridge knows: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ),
            false,
        );
        err.candidates = names;
        err
    }

    /// The database a tool names, or the only usable one.
    fn database(&self, name: Option<&str>) -> Result<Arc<Database>, ToolError> {
        let all = self.all_databases();
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => {
                if let Some(d) = all.iter().find(|d| d.name == name) {
                    return Ok(d.clone());
                }
                // A database's own name works too when only one has it, unless it needed
                // escaping: the qualified name `B/shop` must never reach a database on another
                // server literally named `B/shop`.
                let by_dbname: Vec<_> = all
                    .iter()
                    .filter(|d| d.dbname == name && escape_name(&d.dbname) == d.dbname)
                    .collect();
                match by_dbname.as_slice() {
                    [one] => Ok((*one).clone()),
                    _ => Err(self.unknown_database(name)),
                }
            }
            None => {
                let usable: Vec<_> = all
                    .iter()
                    .filter(|d| d.ready().is_some() || d.needs_retry())
                    .collect();
                match usable.as_slice() {
                    [one] => Ok((*one).clone()),
                    [] => Err(ToolError::new(
                        ErrorCode::DatabaseUnavailable,
                        "no database is available: see list_databases for each one's state",
                        true,
                    )),
                    many => {
                        let mut err =
                            ToolError::invalid(format!(
                            "several databases are available; say which one with `database`: {}",
                            many.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                        ));
                        err.candidates = many.iter().map(|d| d.name.clone()).collect();
                        Err(err)
                    }
                }
            }
        }
    }

    async fn schema_of(&self, database: &Database) -> Result<Arc<Cached>, ToolError> {
        database
            .schema(self.settings.database.fingerprint_check_interval)
            .await
    }

    /// Compact schema text; `filter` keeps relations whose name, columns or comments contain it
    /// (case-insensitive).
    pub async fn describe_schema(
        &self,
        database: Option<&str>,
        filter: Option<&str>,
    ) -> Result<String, ToolError> {
        let database = self.database(database)?;
        let cached = self.schema_of(&database).await?;
        Ok(crate::context::describe(
            &cached.snapshot,
            filter.map(str::trim).filter(|f| !f.is_empty()),
        ))
    }

    fn check_sql(sql: &str) -> Result<(), ToolError> {
        if sql.trim().is_empty() {
            return Err(ToolError::invalid(
                "`sql` is empty: give one SELECT statement",
            ));
        }
        if sql.len() > 1_000_000 {
            return Err(ToolError::invalid("`sql` is longer than 1,000,000 bytes"));
        }
        if sql.contains('\0') {
            return Err(ToolError::invalid("`sql` contains a NUL character"));
        }
        Ok(())
    }

    pub async fn validate_sql(
        &self,
        database: Option<&str>,
        sql: &str,
    ) -> Result<Validation, ToolError> {
        Self::check_sql(sql)?;
        self.database(database)?.validate(sql).await
    }

    fn row_limit(&self, requested: Option<u32>) -> Result<u32, ToolError> {
        let p = &self.settings.pipeline;
        match requested {
            None => Ok(p.default_row_limit),
            Some(0) => Err(ToolError::invalid("`row_limit` must be at least 1")),
            Some(n) if n > p.max_row_limit => Err(ToolError::new(
                ErrorCode::ResultTooLarge,
                format!(
                    "`row_limit` {n} is above the bridge's limit of {} rows: ask for fewer rows, \
                     or for an aggregate",
                    p.max_row_limit
                ),
                false,
            )),
            Some(n) => Ok(n),
        }
    }

    pub async fn run_sql(
        &self,
        database: Option<&str>,
        sql: &str,
        row_limit: Option<u32>,
    ) -> Result<RunResult, ToolError> {
        self.run_sql_cancellable(database, sql, row_limit, &CancellationToken::new())
            .await
    }

    /// [`Self::run_sql`] until `cancel` is cancelled; the statement is then cancelled in the
    /// server too (an MCP client's `notifications/cancelled`).
    pub async fn run_sql_cancellable(
        &self,
        database: Option<&str>,
        sql: &str,
        row_limit: Option<u32>,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ToolError> {
        Self::check_sql(sql)?;
        let limit = self.row_limit(row_limit)?;
        self.database(database)?
            .run_cancellable(sql, limit, cancel)
            .await
    }

    /// Reloads the snapshot of one database, or of all when `None`.
    pub async fn refresh_schema(
        &self,
        database: Option<&str>,
    ) -> Result<Vec<DatabaseInfo>, ToolError> {
        match database.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => {
                let database = self.database(Some(name))?;
                database.load().await?;
                Ok(vec![database.info()])
            }
            None => {
                self.retry_pending().await;
                let all = self.all_databases();
                futures::future::join_all(all.iter().map(|d| d.load())).await;
                Ok(self.list_databases().await)
            }
        }
    }

    /// The question pipeline. `model` is used when no model is configured (MCP sampling).
    pub async fn query(
        &self,
        request: QueryRequest,
        model: Option<Arc<dyn ChatModel>>,
    ) -> Result<Answer, ToolError> {
        self.query_cancellable(request, model, CancellationToken::new())
            .await
    }

    /// [`Self::query`], stopped as soon as `cancel` is cancelled (the MCP client sent
    /// `notifications/cancelled`): no model request is sent after it, a model request under
    /// way is abandoned, and a statement running in PostgreSQL is cancelled there.
    pub async fn query_cancellable(
        &self,
        request: QueryRequest,
        model: Option<Arc<dyn ChatModel>>,
        cancel: CancellationToken,
    ) -> Result<Answer, ToolError> {
        let started = Instant::now();
        let question = request.question.trim().to_string();
        if question.is_empty() {
            return Err(ToolError::invalid(
                "`question` is empty: ask something about the data",
            ));
        }
        let max_chars = self.settings.pipeline.max_question_chars;
        if question.chars().count() > max_chars {
            return Err(ToolError::invalid(format!(
                "the question is longer than {max_chars} characters"
            )));
        }
        let model = match self.model.clone().or(model) {
            Some(m) => m,
            None => {
                return Err(ToolError::new(
                    ErrorCode::NoModel,
                    "no language model is configured: set OPENAI_API_KEY (or model.api_key in \
                     the configuration file; model.base_url for any OpenAI-compatible endpoint), \
                     or use an MCP client that supports sampling. list_databases, \
                     describe_schema, validate_sql and run_sql work without a model.",
                    false,
                ))
            }
        };
        let mode = request
            .return_mode
            .or_else(|| prompts::infer_return_mode(&question))
            .unwrap_or(ReturnMode::Result);
        let row_limit = self.row_limit(request.row_limit)?;
        let mut run = Run {
            bridge: self,
            model: model.as_ref(),
            cancel,
            timings: Timings::default(),
            tokens: TokenUsage::default(),
            attempts: Vec::new(),
        };

        // 1. resolve
        let t = Instant::now();
        let database = run.resolve(&question, request.database.as_deref()).await;
        run.timings.add(Stage::Resolve, t);
        let database = database?;

        // 2. context
        let t = Instant::now();
        let cached = self.schema_of(&database).await;
        run.timings.add(Stage::Context, t);
        let cached = cached?;

        let test_run = mode != ReturnMode::Sql || request.test_run.unwrap_or(true);
        let limit = if mode == ReturnMode::Sql {
            self.settings.pipeline.sql_mode_test_limit.min(row_limit)
        } else {
            row_limit
        };
        let outcome = run
            .attempts_loop(&question, &database, &cached, limit, test_run)
            .await;
        let t = Instant::now();
        let (candidate, low_confidence) = match outcome {
            Ok(found) => found,
            Err(mut err) => {
                err.attempts = std::mem::take(&mut run.attempts);
                tracing::info!(
                    database = %database.name,
                    code = err.code.as_str(),
                    attempts = err.attempts.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "query failed"
                );
                return Err(err);
            }
        };
        // 7. answer
        let (columns, rows, row_count, truncated, truncated_reason) = match candidate.run {
            Some(r) => {
                let rows = (mode != ReturnMode::Sql).then_some(r.rows);
                (
                    Some(r.columns),
                    rows,
                    Some(r.row_count),
                    r.truncated,
                    r.truncated_reason,
                )
            }
            None => (None, None, None, false, None),
        };
        run.timings.add(Stage::Answer, t);
        let answer = Answer {
            database: database.name.clone(),
            question,
            return_mode: mode,
            sql: candidate.generated.sql,
            explanation: candidate.generated.explanation,
            assumptions: candidate.generated.assumptions,
            columns,
            rows,
            row_count,
            truncated,
            truncated_reason,
            confidence: candidate.score,
            low_confidence,
            verifier_reasons: candidate.reasons,
            attempts: run.attempts,
            tokens: run.tokens,
            timings: run.timings.list(),
            total_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0,
            model: model.describe(),
        };
        tracing::info!(
            database = %answer.database,
            attempts = answer.attempts.len(),
            confidence = ?answer.confidence,
            ms = answer.total_ms,
            "query answered"
        );
        Ok(answer)
    }
}

/// One question's pass through the pipeline.
struct Run<'a> {
    bridge: &'a Bridge,
    model: &'a dyn ChatModel,
    cancel: CancellationToken,
    timings: Timings,
    tokens: TokenUsage,
    attempts: Vec<Attempt>,
}

/// ASCII words of `text`, lower-cased (letters, digits and `_`; everything else, CJK text
/// included, separates them), for spotting a database named in a question.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl Run<'_> {
    /// One model request, never sent once the question is cancelled, and abandoned when it is
    /// cancelled meanwhile.
    async fn complete(&self, request: StructuredRequest) -> Result<ModelReply, LlmError> {
        if self.cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(LlmError::Cancelled),
            reply = self.model.complete(request) => reply,
        }
    }

    fn record(
        &mut self,
        sql: Option<&str>,
        outcome: &str,
        message: impl Into<String>,
        score: Option<u8>,
    ) {
        let number = self.attempts.len() as u32 + 1;
        self.attempts.push(Attempt {
            number,
            sql: sql.map(str::to_string),
            outcome: outcome.to_string(),
            message: crate::redact::redact(&message.into()),
            score,
        });
    }

    /// Stage 1: the database given, or the only one, or the one the question names, or the
    /// model's choice among the ready ones.
    async fn resolve(
        &mut self,
        question: &str,
        given: Option<&str>,
    ) -> Result<Arc<Database>, ToolError> {
        if given.map(str::trim).is_some_and(|g| !g.is_empty()) {
            return self.bridge.database(given);
        }
        let all = self.bridge.all_databases();
        let ready: Vec<(Arc<Database>, Arc<Cached>)> = all
            .iter()
            .filter_map(|d| d.ready().map(|c| (d.clone(), c)))
            .collect();
        match ready.len() {
            0 => return self.bridge.database(None),
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
        let choices: Vec<DatabaseChoice<'_>> = ready
            .iter()
            .map(|(d, c)| DatabaseChoice {
                name: &d.name,
                description: d.description.as_deref(),
                summary: &c.summary,
            })
            .collect();
        let reply = self
            .complete(prompts::route_request(question, &choices))
            .await?;
        self.tokens.add(reply.usage);
        let route = prompts::parse_route(&reply.content)?;
        let names: Vec<String> = ready.iter().map(|(d, _)| d.name.clone()).collect();
        if let Some(choice) = &route.database {
            if let Some((d, _)) = ready.iter().find(|(d, _)| &d.name == choice) {
                return Ok(d.clone());
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
                "the question could be about several databases ({}); ask again with `database` \
                 set to one of them",
                candidates.join(", "),
            ),
            false,
        );
        if !route.reason.trim().is_empty() {
            err = err.with_detail(format!("the model's reason: {}", route.reason));
        }
        err.candidates = candidates;
        Err(err)
    }

    /// Stages 3–6, repeated with feedback until a result passes or the attempts run out.
    /// Returns the accepted candidate, or the best one flagged low-confidence.
    async fn attempts_loop(
        &mut self,
        question: &str,
        database: &Database,
        cached: &Cached,
        limit: u32,
        test_run: bool,
    ) -> Result<(Candidate, bool), ToolError> {
        let p = &self.bridge.settings.pipeline;
        let mut feedback: Vec<Feedback> = Vec::new();
        let mut best: Option<Candidate> = None;
        let mut last_error: Option<ToolError> = None;
        for _ in 0..p.max_attempts {
            // 3. generate
            let t = Instant::now();
            let reply = self
                .complete(prompts::generate_request(&GenerateInput {
                    question,
                    database: &database.name,
                    description: database.description.as_deref(),
                    schema_context: &cached.context,
                    row_limit: limit,
                    feedback: &feedback,
                }))
                .await;
            self.timings.add(Stage::Generate, t);
            let generated = match reply {
                Ok(reply) => {
                    self.tokens.add(reply.usage);
                    prompts::parse_generated(&reply.content)
                }
                Err(e) => Err(e),
            };
            let generated = match generated {
                Ok(g) => g,
                Err(LlmError::Malformed(message)) => {
                    self.record(None, "MALFORMED_OUTPUT", &message, None);
                    last_error = Some(ToolError::new(
                        ErrorCode::LlmError,
                        format!("the model's answers were malformed: {message}"),
                        true,
                    ));
                    feedback.push(Feedback::Malformed { message });
                    continue;
                }
                Err(e) => {
                    self.record(None, "LLM_ERROR", e.to_string(), None);
                    return Err(e.into());
                }
            };
            let sql = generated.sql.clone();

            // 4. validate
            let t = Instant::now();
            let validation = database.validate_cancellable(&sql, &self.cancel).await;
            self.timings.add(Stage::Validate, t);
            let validation = match validation {
                Ok(v) => v,
                Err(e) => {
                    self.record(Some(&sql), e.code.as_str(), e.full_message(), None);
                    return Err(e);
                }
            };
            if !validation.ok {
                self.record(Some(&sql), &validation.code, &validation.message, None);
                if validation.code == "POLICY_ERROR" {
                    return Err(ToolError::new(
                        ErrorCode::ConfigError,
                        "the database's pg_nlq policy settings are invalid (a DBA must fix them)",
                        false,
                    )
                    .with_detail(validation.message));
                }
                let code = match validation.code.as_str() {
                    "SYNTAX_ERROR" => ErrorCode::SyntaxError,
                    "STATEMENT_TIMEOUT" => ErrorCode::ExecutionTimeout,
                    "UNDEFINED_OBJECT" | "INVALID_QUERY" => ErrorCode::ExecutionError,
                    _ => ErrorCode::UnsafeSql,
                };
                // A timeout may pass when the server is less busy, as in `Database::run`.
                let retryable = code == ErrorCode::ExecutionTimeout;
                last_error = Some(
                    ToolError::new(
                        code,
                        format!(
                            "the model's query was refused by nlq_validate ({})",
                            crate::untrusted::one_line(&validation.code)
                        ),
                        retryable,
                    )
                    .with_detail(validation.message.clone()),
                );
                feedback.push(Feedback::Rejected {
                    sql,
                    code: validation.code,
                    message: validation.message,
                });
                continue;
            }

            // 5. run
            if !test_run {
                self.record(
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
            let result = database.run_cancellable(&sql, limit, &self.cancel).await;
            self.timings.add(Stage::Run, t);
            let result = match result {
                Ok(r) => r,
                Err(e)
                    if e.code == ErrorCode::ConnectionError
                        || e.code == ErrorCode::ConfigError
                        || e.code == ErrorCode::Cancelled =>
                {
                    self.record(Some(&sql), e.code.as_str(), e.full_message(), None);
                    return Err(e);
                }
                Err(e) => {
                    self.record(Some(&sql), "EXECUTION_ERROR", e.full_message(), None);
                    feedback.push(Feedback::ExecutionFailed {
                        sql,
                        message: e.full_message(),
                    });
                    last_error = Some(e);
                    continue;
                }
            };

            // 6. verify
            if !p.verify {
                self.record(Some(&sql), "ACCEPTED", "verification is turned off", None);
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
            let verdict = self.verify(question, &generated, &result).await;
            self.timings.add(Stage::Verify, t);
            let verdict = match verdict {
                Ok(v) => v,
                Err(LlmError::Malformed(message)) => {
                    // The query ran and passed every check; only the judgement is missing.
                    self.record(
                        Some(&sql),
                        "UNVERIFIED",
                        format!("the verifier's answers were malformed: {message}"),
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
                Err(e) => {
                    self.record(Some(&sql), "LLM_ERROR", e.to_string(), None);
                    return Err(e.into());
                }
            };
            if verdict.score >= p.verify_threshold {
                self.record(
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
            self.record(
                Some(&sql),
                "LOW_SCORE",
                format!("{} {}", verdict.reasons, verdict.critique)
                    .trim()
                    .to_string(),
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
            let better = best
                .as_ref()
                .is_none_or(|b| b.score.unwrap_or(0) < verdict.score);
            if better {
                best = Some(Candidate {
                    generated,
                    run: Some(result),
                    score: Some(verdict.score),
                    reasons: Some(verdict.reasons),
                });
            }
        }
        if let Some(best) = best {
            return Ok((best, true));
        }
        let n = self.attempts.len();
        let mut err = last_error.unwrap_or_else(|| {
            ToolError::new(ErrorCode::AttemptsExhausted, "no attempt was made", false)
        });
        err.message = format!(
            "no query answered the question in {n} attempt{}; the last one failed: {}",
            if n == 1 { "" } else { "s" },
            err.message
        );
        Err(err)
    }

    async fn verify(
        &mut self,
        question: &str,
        generated: &Generated,
        result: &RunResult,
    ) -> Result<prompts::Verdict, LlmError> {
        let sample: Vec<Vec<serde_json::Value>> = result
            .rows
            .iter()
            .take(self.bridge.settings.pipeline.verify_sample_rows)
            .map(|row| row.iter().map(clip_value).collect())
            .collect();
        let request = prompts::verify_request(&VerifyInput {
            question,
            sql: &generated.sql,
            explanation: &generated.explanation,
            columns: &result.columns,
            row_count: result.row_count,
            truncated: result.truncated,
            sample_rows: &sample,
        });
        let mut last = None;
        // A malformed verdict is asked for once more before giving up on verification.
        for _ in 0..2 {
            match self.complete(request.clone()).await {
                Ok(reply) => {
                    self.tokens.add(reply.usage);
                    match prompts::parse_verdict(&reply.content) {
                        Ok(v) => return Ok(v),
                        Err(e) => last = Some(e),
                    }
                }
                // the OpenAI client checks the reply against the schema itself
                Err(e @ LlmError::Malformed(_)) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| LlmError::Malformed("no verdict".into())))
    }
}

/// Characters that look like the separator `/` of `server/database` names.
const SLASH_LOOKALIKES: [char; 8] = [
    '\u{2044}', '\u{2215}', '\u{2571}', '\u{29F8}', '\u{FF0F}', '\u{1735}', '\u{2CDC}', '\u{3033}',
];

/// A database's own name as a part of the names tools take: `%` and `/` (the separator),
/// white space, control and invisible or reordering characters, and look-alikes of `/`
/// percent-encoded (UTF-8 bytes), so that the escaped name never contains the separator, two
/// different names never escape to the same text, and what is shown is what must be typed.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let escape = matches!(c, '%' | '/' | '\\')
            || c.is_whitespace()
            || c.is_control()
            || crate::untrusted::is_deceptive(c)
            || SLASH_LOOKALIKES.contains(&c);
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A cell shortened for the verifier's prompt.
fn clip_value(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) if s.chars().count() > VERIFY_CELL_CHARS => {
            let cut: String = s.chars().take(VERIFY_CELL_CHARS).collect();
            serde_json::Value::String(format!("{cut}…"))
        }
        other => {
            let text = other.to_string();
            if text.len() > VERIFY_CELL_CHARS * 4 {
                serde_json::Value::String(format!(
                    "{}…",
                    text.chars().take(VERIFY_CELL_CHARS).collect::<String>()
                ))
            } else {
                other.clone()
            }
        }
    }
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

    #[test]
    fn hostile_database_names_are_escaped_and_distinct() {
        assert_eq!(escape_name("shop"), "shop");
        assert_eq!(escape_name("客户"), "客户");
        assert_eq!(escape_name("O'Brien \"x\""), "O'Brien%20\"x\"");
        assert_eq!(escape_name("B/rtb_main"), "B%2Frtb_main");
        assert_eq!(escape_name("B\u{2215}rtb_main"), "B%E2%88%95rtb_main");
        assert_eq!(escape_name("B%2Frtb_main"), "B%252Frtb_main");
        assert_eq!(escape_name("a\u{202E}b"), "a%E2%80%AEb");
        let long = "x/".repeat(31) + "y";
        assert!(!escape_name(&long).contains('/'));
        // injective on the names that differ only in what is escaped
        let names = ["B/x", "B%2Fx", "B\u{2215}x", "B\u{FF0F}x", "B x", "B\tx"];
        let escaped: std::collections::BTreeSet<String> =
            names.iter().map(|n| escape_name(n)).collect();
        assert_eq!(escaped.len(), names.len(), "{escaped:?}");
    }

    #[test]
    fn long_cells_are_clipped() {
        let long = serde_json::Value::String("x".repeat(500));
        match clip_value(&long) {
            serde_json::Value::String(s) => assert_eq!(s.chars().count(), VERIFY_CELL_CHARS + 1),
            other => panic!("{other}"),
        }
        assert_eq!(clip_value(&serde_json::json!(5)), serde_json::json!(5));
    }
}
