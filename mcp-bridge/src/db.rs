//! The databases the bridge uses: discovery on each server, one connection pool per database,
//! the cached schema snapshot (reloaded when `nlq_schema_fingerprint()` says it is stale), and
//! the calls to `nlq_validate` and `nlq_run`.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_util::sync::CancellationToken;

use crate::answer::{ErrorCode, RunResult, ToolError, Validation};
use crate::bridge::DatabaseInfo;
use crate::catalog::{self, Snapshot};
use crate::context;
use crate::error::{describe_pg_error, BridgeError};
use crate::settings::{DatabaseSettings, ServerSettings};

/// Most characters of the routing summary of one database.
const ROUTING_SUMMARY_CHARS: usize = 1500;

/// Databases a server offers this role: those it may connect to, not templates.
const DISCOVERY_SQL: &str = "SELECT datname FROM pg_catalog.pg_database \
     WHERE datallowconn AND NOT datistemplate \
       AND has_database_privilege(datname, 'CONNECT') ORDER BY 1";

/// Validation codes of a statement the bridge will not run (the query itself is unsafe).
const UNSAFE_CODES: [&str; 12] = [
    "MULTIPLE_STATEMENTS",
    "NOT_A_QUERY",
    "SELECT_INTO",
    "LOCKING_CLAUSE",
    "DATA_MODIFYING_CTE",
    "FORBIDDEN_FUNCTION",
    "FORBIDDEN_RELATION",
    "FORBIDDEN_COLUMN",
    "PERMISSION_DENIED",
    "COST_LIMIT_EXCEEDED",
    "TOO_COMPLEX",
    "EMPTY",
];

/// A loaded schema and the renderings the pipeline uses.
pub struct Cached {
    pub snapshot: Snapshot,
    /// The schema as the model sees it ([`context::render_schema`]).
    pub context: String,
    /// A short description for choosing among databases.
    pub summary: String,
    pub loaded_at: Instant,
}

enum State {
    Loading,
    Ready(Arc<Cached>),
    Unavailable(String),
    ExtensionMissing(String),
}

/// One database on one server.
pub struct Database {
    /// The name tools take.
    pub name: String,
    pub dbname: String,
    pub server: String,
    pub description: Option<String>,
    pool: Pool,
    /// For cancel requests (a new connection to the server, as libpq's PQcancel).
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    include_stats: bool,
    /// Longest wait for one statement's answer.
    query_timeout: Duration,
    state: RwLock<State>,
    /// [`catalog::EXTENSION_SCHEMA_SQL`]'s answer, once known; forgotten when a call finds
    /// no function.
    extension_schema: Mutex<Option<String>>,
    last_check: Mutex<Instant>,
    /// Serialises loads so concurrent callers wait for one reload instead of starting several.
    loading: tokio::sync::Mutex<()>,
}

fn pool_error(what: &str, err: deadpool_postgres::PoolError) -> ToolError {
    use deadpool_postgres::PoolError;
    let message = match &err {
        PoolError::Backend(e) => describe_pg_error(e),
        PoolError::Timeout(_) => "timed out waiting for a connection".to_string(),
        other => other.to_string(),
    };
    // what the server said (a FATAL that quotes the database's name, say) is its text
    ToolError::new(
        ErrorCode::ConnectionError,
        format!("could not connect to {what}"),
        true,
    )
    .with_detail(message)
}

impl Database {
    pub fn new(
        name: String,
        dbname: &str,
        server: &ServerSettings,
        settings: &DatabaseSettings,
    ) -> Result<Database, BridgeError> {
        let mut pg = server.connection.pg_config().clone();
        pg.dbname(dbname);
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(settings.connect_timeout);
        }
        let tls = crate::tls::connector(&server.connection)?;
        let manager = Manager::from_config(
            pg,
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.connect_timeout + Duration::from_secs(20)))
            .create_timeout(Some(settings.connect_timeout))
            .build()
            .map_err(|e| BridgeError::Internal(format!("cannot build a connection pool: {e}")))?;
        Ok(Database {
            name,
            dbname: dbname.to_string(),
            server: server.name.clone(),
            description: server.descriptions.get(dbname).cloned(),
            pool,
            tls,
            include_stats: settings.include_stats,
            query_timeout: settings.query_timeout,
            state: RwLock::new(State::Loading),
            extension_schema: Mutex::new(None),
            last_check: Mutex::new(Instant::now()),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    fn what(&self) -> String {
        format!(
            "database {} on {}",
            crate::untrusted::shown_name(&self.dbname),
            crate::untrusted::shown_name(&self.server)
        )
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, ToolError> {
        self.pool
            .get()
            .await
            .map_err(|e| pool_error(&self.what(), e))
    }

    /// A connection and the quoted schema of pg_nlq's functions (looked up on first use).
    async fn client_and_schema(&self) -> Result<(deadpool_postgres::Object, String), ToolError> {
        let client = self.client().await?;
        let known = self.extension_schema.lock().ok().and_then(|s| s.clone());
        if let Some(schema) = known {
            return Ok((client, schema));
        }
        let row = tokio::time::timeout(
            self.query_timeout,
            client.query_opt(catalog::EXTENSION_SCHEMA_SQL, &[]),
        )
        .await;
        let row = match row {
            Ok(row) => row.map_err(|e| self.db_error(&e))?,
            Err(_) => return Err(self.timed_out(client, "the pg_nlq schema lookup")),
        };
        let Some(row) = row else {
            return Err(ToolError::new(
                ErrorCode::DatabaseUnavailable,
                format!(
                    "{}: the pg_nlq extension is not installed (CREATE EXTENSION pg_nlq)",
                    self.what()
                ),
                false,
            ));
        };
        let schema: String = row.try_get(0).map_err(|e| self.db_error(&e))?;
        if let Ok(mut known) = self.extension_schema.lock() {
            *known = Some(schema.clone());
        }
        Ok((client, schema))
    }

    /// The answer of one statement bounded by [`Self::query_timeout`] (`result` of
    /// `tokio::time::timeout`). On a timeout the connection is taken out of the pool (its
    /// state is unknown: the server or the network stopped answering) and the error says so.
    fn bounded<T>(
        &self,
        client: deadpool_postgres::Object,
        result: Result<T, tokio::time::error::Elapsed>,
        what: &str,
    ) -> Result<T, ToolError> {
        result.map_err(|_| self.timed_out(client, what))
    }

    /// The error of a statement that got no answer in time; the connection is discarded.
    fn timed_out(&self, client: deadpool_postgres::Object, what: &str) -> ToolError {
        drop(deadpool_postgres::Object::take(client));
        ToolError::new(
            ErrorCode::ConnectionError,
            format!(
                "{}: no answer to {what} within {:?} (database.query_timeout_secs); the server \
                 or the network may be down",
                self.what(),
                self.query_timeout
            ),
            true,
        )
    }

    fn set_state(&self, state: State) {
        if let Ok(mut guard) = self.state.write() {
            *guard = state;
        }
    }

    /// The cached schema, if loaded.
    pub fn ready(&self) -> Option<Arc<Cached>> {
        match &*self.state.read().ok()? {
            State::Ready(cached) => Some(cached.clone()),
            _ => None,
        }
    }

    /// Whether a later retry may make the database usable (it is not missing the extension).
    pub fn needs_retry(&self) -> bool {
        matches!(
            self.state.read().as_deref(),
            Ok(State::Unavailable(_)) | Ok(State::Loading)
        )
    }

    /// Loads (or reloads) the snapshot. Callers that arrive while a load runs wait for it and
    /// use its result.
    pub async fn load(&self) -> Result<Arc<Cached>, ToolError> {
        let started = Instant::now();
        let before = self.ready().map(|c| c.loaded_at);
        let _guard = self.loading.lock().await;
        if let Some(cached) = self.ready() {
            if Some(cached.loaded_at) != before {
                return Ok(cached); // someone else reloaded while we waited
            }
        }
        let result = self.fetch().await;
        match &result {
            Ok(cached) => {
                tracing::info!(
                    database = %self.name,
                    relations = cached.snapshot.relations.len(),
                    context_chars = cached.context.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "schema loaded"
                );
                self.set_state(State::Ready(cached.clone()));
            }
            Err(err) if err.code == ErrorCode::DatabaseUnavailable => {
                tracing::warn!(database = %self.name, "{}", err.message);
                self.set_state(State::ExtensionMissing(err.message.clone()));
            }
            Err(err) => {
                tracing::warn!(database = %self.name, "{}", err.message);
                // A database that was ready stays ready on its old snapshot.
                if self.ready().is_none() {
                    self.set_state(State::Unavailable(err.full_message()));
                }
            }
        }
        if let Ok(mut last) = self.last_check.lock() {
            *last = Instant::now();
        }
        result
    }

    async fn fetch(&self) -> Result<Arc<Cached>, ToolError> {
        let (client, schema) = self.client_and_schema().await?;
        let include_stats = self.include_stats;
        let document = tokio::time::timeout(
            self.query_timeout,
            catalog::fetch_snapshot_json_from(&client, &schema, None, include_stats),
        )
        .await;
        let document = self
            .bounded(client, document, "nlq_schema_snapshot()")?
            .map_err(|e| match e {
                BridgeError::ExtensionMissing(m) => ToolError::new(
                    ErrorCode::DatabaseUnavailable,
                    format!("{}: {m}", self.what()),
                    false,
                ),
                other => {
                    let mut err = ToolError::from(other);
                    err.message = format!("{}: {}", self.what(), err.message);
                    err
                }
            })?;
        let snapshot = Snapshot::from_json(&document).map_err(ToolError::from)?;
        let context = context::render_schema(&snapshot);
        let summary = context::routing_summary(&snapshot, ROUTING_SUMMARY_CHARS);
        Ok(Arc::new(Cached {
            snapshot,
            context,
            summary,
            loaded_at: Instant::now(),
        }))
    }

    /// The schema to use now: the cached one, checked against the database's fingerprint when
    /// the last check is older than `check_interval` (and reloaded when stale); loaded first if
    /// it never was.
    pub async fn schema(&self, check_interval: Duration) -> Result<Arc<Cached>, ToolError> {
        let Some(cached) = self.ready() else {
            if let Ok(State::ExtensionMissing(reason)) = self.state.read().as_deref() {
                return Err(ToolError::new(
                    ErrorCode::DatabaseUnavailable,
                    reason.clone(),
                    false,
                ));
            }
            return self.load().await.map_err(|mut e| {
                if e.code == ErrorCode::ConnectionError {
                    e.code = ErrorCode::DatabaseUnavailable;
                    e.message = format!(
                        "{} (the bridge keeps retrying in the background)",
                        e.message
                    );
                    e.retryable = true;
                }
                e
            });
        };
        let due = match self.last_check.lock() {
            Ok(last) => last.elapsed() >= check_interval,
            Err(_) => true,
        };
        if !due {
            return Ok(cached);
        }
        if let Ok(mut last) = self.last_check.lock() {
            *last = Instant::now();
        }
        match self.fingerprint().await {
            Ok(current) if current == cached.snapshot.fingerprint => Ok(cached),
            Ok(_) => {
                tracing::info!(database = %self.name, "schema changed; reloading the snapshot");
                self.load().await
            }
            Err(err) => {
                tracing::warn!(database = %self.name, "fingerprint check failed: {}", err.message);
                Err(err)
            }
        }
    }

    /// `SELECT <pg_nlq's schema>.<call>` for one of the extension's functions that returns a
    /// single text value (`call` is e.g. `nlq_run($1::text, $2::integer)::text`), bounded by the
    /// query timeout, its failure classified by [`Self::db_error`].
    async fn call_extension(
        &self,
        call: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<String, ToolError> {
        self.call_extension_cancellable(call, params, &CancellationToken::new())
            .await
    }

    /// [`Self::call_extension`], until `cancel` is cancelled: then the statement is cancelled
    /// in the server (a cancel request, as `pg_cancel_backend` does), its connection is
    /// discarded, and the error is `CANCELLED`.
    async fn call_extension_cancellable(
        &self,
        call: &str,
        params: &[&(dyn ToSql + Sync)],
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let (client, schema) = self.client_and_schema().await?;
        let statement = format!("SELECT {schema}.{call}");
        let cancel_token = client.cancel_token();
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            row = tokio::time::timeout(self.query_timeout, client.query_one(&statement, params)) => Some(row),
        };
        let Some(row) = outcome else {
            if let Err(e) = cancel_token.cancel_query(self.tls.clone()).await {
                tracing::warn!(database = %self.name, "could not cancel the statement: {e}");
            }
            drop(deadpool_postgres::Object::take(client));
            tracing::info!(database = %self.name, "statement cancelled by the client");
            return Err(cancelled());
        };
        let function = call.split('(').next().unwrap_or(call);
        let row = self
            .bounded(client, row, &format!("{function}()"))?
            .map_err(|e| self.db_error(&e))?;
        row.try_get(0).map_err(|e| self.db_error(&e))
    }

    async fn fingerprint(&self) -> Result<String, ToolError> {
        self.call_extension("nlq_schema_fingerprint()", &[]).await
    }

    /// `nlq_validate(sql)`.
    pub async fn validate(&self, sql: &str) -> Result<Validation, ToolError> {
        self.validate_cancellable(sql, &CancellationToken::new())
            .await
    }

    /// [`Self::validate`] until `cancel` is cancelled.
    pub async fn validate_cancellable(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<Validation, ToolError> {
        let text = self
            .call_extension_cancellable("nlq_validate($1::text)::text", &[&sql], cancel)
            .await?;
        parse_document("nlq_validate", &text)
    }

    /// `nlq_run(sql, row_limit)`; a refusal or failure is classified by its SQLSTATE and the
    /// validation code at the head of its DETAIL.
    pub async fn run(&self, sql: &str, row_limit: u32) -> Result<RunResult, ToolError> {
        self.run_cancellable(sql, row_limit, &CancellationToken::new())
            .await
    }

    /// [`Self::run`] until `cancel` is cancelled (the statement is then cancelled in the
    /// server).
    pub async fn run_cancellable(
        &self,
        sql: &str,
        row_limit: u32,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ToolError> {
        let limit = i32::try_from(row_limit).unwrap_or(i32::MAX);
        let text = self
            .call_extension_cancellable(
                "nlq_run($1::text, $2::integer)::text",
                &[&sql, &limit],
                cancel,
            )
            .await?;
        parse_document("nlq_run", &text)
    }

    fn db_error(&self, err: &tokio_postgres::Error) -> ToolError {
        let Some(db) = err.as_db_error() else {
            return ToolError::new(
                ErrorCode::ConnectionError,
                format!("{}: the connection failed", self.what()),
                true,
            )
            .with_detail(describe_pg_error(err));
        };
        // What the server said is its text, and quotes data (`invalid input syntax for type
        // integer: "<a value>"`): it goes in the error's untrusted detail.
        let detail_code = db
            .detail()
            .and_then(|d| d.split_whitespace().next())
            .map(|c| c.trim_end_matches([':', ',', '.']))
            // pg_nlq's codes; any other DETAIL is the server's (or a function's) text
            .filter(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
            .unwrap_or("");
        let message = describe_pg_error(err);
        // The bridge's own call of a missing function (no validation code in the DETAIL); a
        // query that calls an unknown function named nlq_... is refused with UNDEFINED_OBJECT.
        if (db.code() == &SqlState::UNDEFINED_FUNCTION
            || db.code() == &SqlState::INVALID_SCHEMA_NAME)
            && detail_code.is_empty()
        {
            // Moved or dropped since the schema was looked up: look it up again next time.
            if let Ok(mut known) = self.extension_schema.lock() {
                *known = None;
            }
        }
        if db.code() == &SqlState::UNDEFINED_FUNCTION
            && detail_code.is_empty()
            && message.contains("nlq_")
        {
            return ToolError::new(
                ErrorCode::DatabaseUnavailable,
                format!(
                    "{}: the pg_nlq extension is not installed (CREATE EXTENSION pg_nlq)",
                    self.what()
                ),
                false,
            );
        }
        let (code, retryable) = if db.code() == &SqlState::QUERY_CANCELED
            || detail_code == "STATEMENT_TIMEOUT"
            || db.code() == &SqlState::LOCK_NOT_AVAILABLE
        {
            (ErrorCode::ExecutionTimeout, true)
        } else if UNSAFE_CODES.contains(&detail_code) {
            (ErrorCode::UnsafeSql, false)
        } else if detail_code == "POLICY_ERROR" {
            (ErrorCode::ConfigError, false)
        } else if detail_code == "SYNTAX_ERROR" || db.code() == &SqlState::SYNTAX_ERROR {
            (ErrorCode::SyntaxError, false)
        } else if db.code() == &SqlState::ADMIN_SHUTDOWN
            || db.code() == &SqlState::CANNOT_CONNECT_NOW
            || db.code() == &SqlState::TOO_MANY_CONNECTIONS
        {
            (ErrorCode::ConnectionError, true)
        } else {
            (ErrorCode::ExecutionError, false)
        };
        let said = if detail_code.is_empty() || message.contains(detail_code) {
            message
        } else {
            format!("{message} [{detail_code}]")
        };
        ToolError::new(
            code,
            format!(
                "{}: the server refused the statement (SQLSTATE {}{})",
                self.what(),
                db.code().code(),
                if detail_code.is_empty() {
                    String::new()
                } else {
                    format!(", {detail_code}")
                }
            ),
            retryable,
        )
        .with_detail(said)
    }

    /// The rows of `nlq_policy_check()` that have a problem: stored `pg_nlq.*` settings that
    /// are not in force (pg_nlq then refuses to work) and patterns that match nothing.
    pub async fn policy_problems(&self) -> Result<Vec<PolicyProblem>, ToolError> {
        let (client, schema) = self.client_and_schema().await?;
        let statement = format!(
            "SELECT setting, value, source, role, database, severity = 'error', problem \
             FROM {schema}.nlq_policy_check() WHERE problem IS NOT NULL"
        );
        let rows = tokio::time::timeout(self.query_timeout, client.query(&statement, &[])).await;
        let rows = self
            .bounded(client, rows, "nlq_policy_check()")?
            .map_err(|e| self.db_error(&e))?;
        rows.iter()
            .map(|row| {
                Ok(PolicyProblem {
                    setting: row.try_get(0).map_err(|e| self.db_error(&e))?,
                    value: row.try_get(1).map_err(|e| self.db_error(&e))?,
                    source: row.try_get(2).map_err(|e| self.db_error(&e))?,
                    role: row.try_get(3).map_err(|e| self.db_error(&e))?,
                    database: row.try_get(4).map_err(|e| self.db_error(&e))?,
                    error: row.try_get(5).map_err(|e| self.db_error(&e))?,
                    problem: row.try_get(6).map_err(|e| self.db_error(&e))?,
                })
            })
            .collect()
    }

    /// The session's role, whether it is a superuser (or may bypass row-level security), and
    /// the installed pg_nlq version (`None` when missing): what `check-config` reports.
    pub async fn role_check(&self) -> Result<(String, bool, Option<String>), ToolError> {
        let client = self.client().await?;
        let row = tokio::time::timeout(self.query_timeout, client.query_one(
                    "SELECT current_user::text, r.rolsuper OR r.rolbypassrls, \
                            (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_nlq') \
                       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
                    &[],
                )).await;
        let row = self
            .bounded(client, row, "the role check")?
            .map_err(|e| self.db_error(&e))?;
        Ok((
            row.try_get(0).map_err(|e| self.db_error(&e))?,
            row.try_get(1).map_err(|e| self.db_error(&e))?,
            row.try_get(2).map_err(|e| self.db_error(&e))?,
        ))
    }

    /// How `list_databases` shows it.
    pub fn info(&self) -> DatabaseInfo {
        let (status, reason, cached) = match self.state.read().as_deref() {
            Ok(State::Ready(c)) => ("ready", None, Some(c.clone())),
            Ok(State::Loading) => ("loading", None, None),
            Ok(State::Unavailable(r)) => ("unavailable", Some(r.clone()), None),
            Ok(State::ExtensionMissing(r)) => ("extension_missing", Some(r.clone()), None),
            Err(_) => ("unavailable", Some("internal state poisoned".into()), None),
        };
        let escaped = crate::bridge::escape_name(&self.dbname);
        let note = if escaped != self.dbname {
            Some(format!(
                "its own name {:?} holds the separator '/', white space, or look-alike or \
                 invisible characters: escaped as {escaped}",
                self.dbname
            ))
        } else if self.name != escaped {
            Some(format!(
                "another server has a database of the same name: qualified as {}",
                self.name
            ))
        } else {
            None
        };
        DatabaseInfo {
            name: self.name.clone(),
            note,
            server: self.server.clone(),
            description: self.description.clone(),
            status: status.into(),
            reason,
            relations: cached.as_ref().map(|c| c.snapshot.relations.len()),
            fingerprint: cached.map(|c| c.snapshot.fingerprint.clone()),
        }
    }
}

fn cancelled() -> ToolError {
    ToolError::new(
        ErrorCode::Cancelled,
        "the question was cancelled by the client",
        false,
    )
}

/// The JSON document a pg_nlq function returned.
fn parse_document<T: serde::de::DeserializeOwned>(
    function: &str,
    text: &str,
) -> Result<T, ToolError> {
    serde_json::from_str(text).map_err(|e| {
        ToolError::internal(format!("{function} returned an unexpected document: {e}"))
    })
}

/// One row of `nlq_policy_check()` with a problem (see [`Database::policy_problems`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyProblem {
    pub setting: String,
    pub value: Option<String>,
    /// `database user`, `user`, `database`, `global` (stored), else where it is in force from.
    pub source: String,
    /// Whom it is stored for; `None`: every role (or not stored).
    pub role: Option<String>,
    /// `None`: every database (or not stored).
    pub database: Option<String>,
    /// pg_nlq refuses to work (POLICY_ERROR) where it applies; else a warning.
    pub error: bool,
    pub problem: String,
}

/// The databases `server` offers (discovery), or its explicit list, minus its exclusions.
pub async fn discover(
    server: &ServerSettings,
    settings: &DatabaseSettings,
) -> Result<Vec<String>, BridgeError> {
    let mut names = match &server.databases {
        Some(list) => list.clone(),
        None => {
            let client = tokio::time::timeout(
                settings.connect_timeout,
                catalog::connect(&server.connection),
            )
            .await
            .map_err(|_| {
                BridgeError::Connection(format!(
                    "server {}: no answer within {:?}",
                    server.name, settings.connect_timeout
                ))
            })??;
            let rows =
                tokio::time::timeout(settings.query_timeout, client.query(DISCOVERY_SQL, &[]))
                    .await
                    .map_err(|_| {
                        BridgeError::Connection(format!(
                            "server {}: no answer to the list of databases within {:?}",
                            server.name, settings.query_timeout
                        ))
                    })?
                    .map_err(|e| {
                        BridgeError::Database(format!(
                            "server {}: listing databases failed: {}",
                            server.name,
                            describe_pg_error(&e)
                        ))
                    })?;
            rows.iter()
                .filter_map(|r| r.try_get::<_, String>(0).ok())
                .collect()
        }
    };
    names.retain(|n| !server.exclude.contains(n));
    Ok(names)
}
