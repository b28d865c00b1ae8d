//! One database on one server: its connection pool, its state ([`Status`]), and its cached
//! schema — the snapshot with what is built from it once (the linker, the routing summary),
//! reloaded when `nlq_schema_fingerprint()` says it is stale. Every call of a pg_nlq function
//! goes through [`Database::call`]: a pooled connection, the extension's schema, the query
//! timeout, cancellation, and [`pgnlq::classify`] for failures.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_util::sync::CancellationToken;

use super::{DatabaseInfo, Status};
use crate::answer::{ErrorCode, RunResult, ToolError, Validation};
use crate::error::{describe_pg_error, BridgeError};
use crate::linking::{Linker, TokenCounter};
use crate::pgnlq::{self, Call, PolicyProblem, RoleCheck};
use crate::settings::{DatabaseSettings, ServerSettings};
use crate::snapshot::Snapshot;

/// Most characters of the routing summary of one database.
const ROUTING_SUMMARY_CHARS: usize = 1500;

/// A loaded schema and what the pipeline builds from it once per snapshot.
pub struct Cached {
    pub snapshot: Arc<Snapshot>,
    /// The snapshot prepared for schema linking ([`crate::linking`]).
    pub linker: Linker,
    /// A short description for choosing among databases.
    pub summary: String,
    pub loaded_at: Instant,
}

impl Cached {
    /// Whether the role sees no relation in the database.
    pub fn is_empty(&self) -> bool {
        self.snapshot.relations.is_empty()
    }

    /// Why a database with nothing visible cannot answer questions.
    pub fn empty_reason() -> &'static str {
        "the role sees no relation in it: grant it SELECT on what it may read, or exclude the \
         database"
    }

    /// Builds what is derived from a snapshot.
    pub fn new(snapshot: Snapshot, counter: TokenCounter) -> Cached {
        let snapshot = Arc::new(snapshot);
        Cached {
            linker: Linker::new(snapshot.clone(), counter),
            summary: crate::render::schema::routing_summary(&snapshot, ROUTING_SUMMARY_CHARS),
            snapshot,
            loaded_at: Instant::now(),
        }
    }
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
    counter: TokenCounter,
    state: RwLock<State>,
    /// The quoted schema of pg_nlq's functions, once known; forgotten when a call finds no
    /// function there.
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

fn cancelled() -> ToolError {
    ToolError::new(
        ErrorCode::Cancelled,
        "the question was cancelled by the client",
        false,
    )
}

/// The connection settings of `dbname` on `server`: the server's, with
/// `database.connect_timeout_secs` unless the connection string sets its own.
fn connection_config(
    server: &ServerSettings,
    dbname: &str,
    settings: &DatabaseSettings,
) -> tokio_postgres::Config {
    let mut pg = server
        .connection
        .pg_config_with_timeout(settings.connect_timeout);
    pg.dbname(dbname);
    pg
}

impl Database {
    pub fn new(
        name: String,
        dbname: &str,
        server: &ServerSettings,
        settings: &DatabaseSettings,
        counter: TokenCounter,
    ) -> Result<Database, BridgeError> {
        let pg = connection_config(server, dbname, settings);
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
            counter,
            state: RwLock::new(State::Loading),
            extension_schema: Mutex::new(None),
            last_check: Mutex::new(Instant::now()),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// "database shop on local", as messages name it.
    pub fn what(&self) -> String {
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
        let what = self.what();
        let looked_up =
            tokio::time::timeout(self.query_timeout, pgnlq::extension_schema(&client, &what)).await;
        let schema = match looked_up {
            Ok(schema) => schema?,
            Err(_) => return Err(self.timed_out(client, "the pg_nlq schema lookup")),
        };
        if let Ok(mut known) = self.extension_schema.lock() {
            *known = Some(schema.clone());
        }
        Ok((client, schema))
    }

    /// The error of a statement that got no answer in time; the connection is discarded (its
    /// state is unknown: the server or the network stopped answering).
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

    /// A failed statement as the user sees it; the extension's schema is forgotten when the
    /// call found no function there.
    fn failed(&self, err: &tokio_postgres::Error) -> ToolError {
        let classified = pgnlq::classify(err, &self.what());
        if classified.forget_schema {
            if let Ok(mut known) = self.extension_schema.lock() {
                *known = None;
            }
        }
        classified.error
    }

    /// One call of a pg_nlq function, bounded by the query timeout, until `cancel` is
    /// cancelled: then the statement is cancelled in the server (a cancel request, as
    /// `pg_cancel_backend` does), its connection is discarded, and the error is `CANCELLED`.
    pub async fn call(
        &self,
        call: Call<'_>,
        cancel: &CancellationToken,
    ) -> Result<String, ToolError> {
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let (client, schema) = self.client_and_schema().await?;
        let cancel_token = client.cancel_token();
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            answer = tokio::time::timeout(self.query_timeout, call.send(&client, &schema)) => Some(answer),
        };
        match outcome {
            None => {
                if let Err(e) = cancel_token.cancel_query(self.tls.clone()).await {
                    tracing::warn!(database = %self.name, "could not cancel the statement: {e}");
                }
                drop(deadpool_postgres::Object::take(client));
                tracing::info!(database = %self.name, "statement cancelled by the client");
                Err(cancelled())
            }
            Some(Err(_)) => Err(self.timed_out(client, call.function())),
            Some(Ok(answer)) => answer.map_err(|e| self.failed(&e)),
        }
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
                    schema_tokens = cached.linker.whole_schema_tokens(),
                    ms = started.elapsed().as_millis() as u64,
                    "schema loaded"
                );
                self.set_state(State::Ready(cached.clone()));
            }
            Err(err) if err.code == ErrorCode::ExtensionMissing => {
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
        let call = Call::Snapshot {
            schemas: None,
            include_stats: self.include_stats,
        };
        let document = self.call(call, &CancellationToken::new()).await?;
        let snapshot = Snapshot::from_json(&document).map_err(ToolError::from)?;
        Ok(Arc::new(Cached::new(snapshot, self.counter)))
    }

    /// The schema to use now: the cached one, checked against the database's fingerprint when
    /// the last check is older than `check_interval` (and reloaded when stale); loaded first if
    /// it never was.
    pub async fn schema(&self, check_interval: Duration) -> Result<Arc<Cached>, ToolError> {
        let Some(cached) = self.ready() else {
            // Without pg_nlq a database is not retried in the background (a server's
            // discovered databases may never have it), but a question asks again once the last
            // look is `check_interval` old: a DBA who ran `CREATE EXTENSION pg_nlq` after the
            // error need not restart the bridge.
            let missing = match self.state.read().as_deref() {
                Ok(State::ExtensionMissing(reason)) => Some(reason.clone()),
                _ => None,
            };
            if let Some(reason) = missing {
                // the first caller to find the look due claims it (one look per interval,
                // however many ask)
                let claimed = match self.last_check.lock() {
                    Ok(mut last) if last.elapsed() >= check_interval => {
                        *last = Instant::now();
                        true
                    }
                    Ok(_) => false,
                    Err(_) => true,
                };
                if !claimed {
                    // a look in flight decides: wait for it, and take what it found
                    drop(self.loading.lock().await);
                    return match self.ready() {
                        Some(cached) => Ok(cached),
                        None => Err(ToolError::new(ErrorCode::ExtensionMissing, reason, false)),
                    };
                }
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
        match self
            .call(Call::Fingerprint, &CancellationToken::new())
            .await
        {
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

    /// `nlq_validate(sql)` until `cancel` is cancelled.
    pub async fn validate(
        &self,
        sql: &str,
        cancel: &CancellationToken,
    ) -> Result<Validation, ToolError> {
        let text = self.call(Call::Validate(sql), cancel).await?;
        pgnlq::parse_validation(&text)
    }

    /// `nlq_run(sql, row_limit)` until `cancel` is cancelled (the statement is then cancelled
    /// in the server).
    pub async fn run(
        &self,
        sql: &str,
        row_limit: u32,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ToolError> {
        let limit = i32::try_from(row_limit).unwrap_or(i32::MAX);
        let text = self.call(Call::Run(sql, limit), cancel).await?;
        pgnlq::parse_run(&text)
    }

    /// The rows of `nlq_policy_check()` that have a problem.
    pub async fn policy_problems(&self) -> Result<Vec<PolicyProblem>, ToolError> {
        let (client, schema) = self.client_and_schema().await?;
        let answer =
            tokio::time::timeout(self.query_timeout, pgnlq::policy_problems(&client, &schema))
                .await;
        match answer {
            Ok(answer) => answer.map_err(|e| self.failed(&e)),
            Err(_) => Err(self.timed_out(client, "nlq_policy_check()")),
        }
    }

    /// The session's role and the installed pg_nlq version: what `check-config` reports.
    pub async fn role_check(&self) -> Result<RoleCheck, ToolError> {
        let client = self.client().await?;
        let answer = tokio::time::timeout(self.query_timeout, pgnlq::role_check(&client)).await;
        match answer {
            Ok(answer) => answer.map_err(|e| self.failed(&e)),
            Err(_) => Err(self.timed_out(client, "the role check")),
        }
    }

    /// How `list_databases` shows it.
    pub fn info(&self) -> DatabaseInfo {
        let (status, reason, cached) = match self.state.read().as_deref() {
            Ok(State::Ready(c)) if c.is_empty() => (
                Status::Empty,
                Some(Cached::empty_reason().to_string()),
                Some(c.clone()),
            ),
            Ok(State::Ready(c)) => (Status::Ready, None, Some(c.clone())),
            Ok(State::Loading) => (Status::Loading, None, None),
            Ok(State::Unavailable(r)) => (Status::Unavailable, Some(r.clone()), None),
            Ok(State::ExtensionMissing(r)) => (Status::ExtensionMissing, Some(r.clone()), None),
            Err(_) => (
                Status::Unavailable,
                Some("internal state poisoned".into()),
                None,
            ),
        };
        let escaped = super::names::escape_name(&self.dbname);
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
            status,
            reason,
            relations: cached.as_ref().map(|c| c.snapshot.relations.len()),
            fingerprint: cached.map(|c| c.snapshot.fingerprint.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;

    fn server(dsn: &str) -> ServerSettings {
        ServerSettings {
            name: "local".into(),
            connection: DatabaseConfig::resolve(Some(dsn.into()), None).expect("parses"),
            databases: None,
            exclude: Vec::new(),
            descriptions: Default::default(),
        }
    }

    #[test]
    fn the_configured_connect_timeout_reaches_libpq() {
        let second = Duration::from_secs(1);
        let settings = DatabaseSettings {
            pool_size: 1,
            connect_timeout: Duration::from_secs(3),
            query_timeout: second,
            startup_timeout: second,
            fingerprint_check_interval: second,
            retry_interval: second,
            include_stats: false,
        };
        let pg = connection_config(&server("host=/tmp user=u"), "shop", &settings);
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(pg.get_dbname(), Some("shop"));
        // the connection string's own wins
        let pg = connection_config(
            &server("host=/tmp user=u connect_timeout=7"),
            "shop",
            &settings,
        );
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(7)));
    }
}
