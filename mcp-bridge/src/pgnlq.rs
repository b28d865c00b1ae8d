//! The one client of PostgreSQL and of pg_nlq's SQL functions, used by the command line and
//! the server alike: connect, find the schema the extension is installed in, fetch the
//! snapshot and the fingerprint, validate, run, read the policy check, list a server's
//! databases — and the one classifier of PostgreSQL errors ([`classify`]).
//!
//! It knows SQL and the wire, nothing of pools, caches or the model: [`crate::registry`]
//! wraps these calls with its pool, its timeout and cancellation.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::answer::{ErrorCode, RunResult, ToolError, Validation};
use crate::config::DatabaseConfig;
use crate::contract::ExtCode;
use crate::error::{describe_pg_error, BridgeError};

/// The schema pg_nlq is installed in, quoted as an identifier. The bridge calls the extension's
/// functions qualified with it, so that a function of the same name in a schema that comes
/// earlier on the role's `search_path` (`"$user"`, `public`) cannot stand in for them and run
/// other SQL as the bridge's role.
const EXTENSION_SCHEMA_SQL: &str = "SELECT pg_catalog.quote_ident(n.nspname) \
     FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
     WHERE e.extname = 'pg_nlq'";

/// Databases a server offers this role: those it may connect to, not templates.
const DISCOVERY_SQL: &str = "SELECT datname FROM pg_catalog.pg_database \
     WHERE datallowconn AND NOT datistemplate \
       AND has_database_privilege(datname, 'CONNECT') ORDER BY 1";

/// Why the extension's functions cannot be called, and what to do (the one text of it).
const DIAGNOSE_SQL: &str = "SELECT pg_catalog.current_database()::text, e.extversion, \
     n.nspname::text FROM (VALUES (1)) AS one (x) \
     LEFT JOIN pg_catalog.pg_extension e ON e.extname = 'pg_nlq' \
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace";

const ROLE_SQL: &str = "SELECT current_user::text, r.rolsuper OR r.rolbypassrls, \
     (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_nlq') \
     FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// Opens a connection to the database, with TLS as its `sslmode` says (see [`crate::tls`]),
/// waiting at most `timeout` unless the connection string sets its own `connect_timeout`; the
/// connection is driven by a background task.
pub async fn connect(config: &DatabaseConfig, timeout: Duration) -> Result<Client, BridgeError> {
    tracing::debug!(
        database = config.redacted(),
        sslmode = %config.tls_mode(),
        "connecting"
    );
    let tls = crate::tls::connector(config)?;
    let (client, connection) = config
        .pg_config_with_timeout(timeout)
        .connect(tls)
        .await
        .map_err(|e| {
            BridgeError::connection(
                format!(
                    "could not connect to {}: {}",
                    config.redacted(),
                    crate::tls::describe_connect_error(config, &e)
                ),
                e,
            )
        })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %describe_pg_error(&e), "database connection failed");
        }
    });
    Ok(client)
}

/// One call of a pg_nlq function that returns one text value.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    /// `nlq_schema_snapshot(schemas, include_stats)`.
    Snapshot {
        schemas: Option<&'a [String]>,
        include_stats: bool,
    },
    /// `nlq_schema_fingerprint()`.
    Fingerprint,
    /// `nlq_validate(sql)`.
    Validate(&'a str),
    /// `nlq_run(sql, row_limit)`.
    Run(&'a str, i32),
}

impl Call<'_> {
    /// The function's name, as messages name it.
    pub fn function(&self) -> &'static str {
        match self {
            Call::Snapshot { .. } => "nlq_schema_snapshot()",
            Call::Fingerprint => "nlq_schema_fingerprint()",
            Call::Validate(_) => "nlq_validate()",
            Call::Run(..) => "nlq_run()",
        }
    }

    /// The statement, qualified by the extension's schema (from [`extension_schema`]).
    pub fn statement(&self, schema: &str) -> String {
        let call = match self {
            Call::Snapshot { .. } => "nlq_schema_snapshot($1::text[], $2::boolean)::text",
            Call::Fingerprint => "nlq_schema_fingerprint()",
            Call::Validate(_) => "nlq_validate($1::text)::text",
            Call::Run(..) => "nlq_run($1::text, $2::integer)::text",
        };
        format!("SELECT {schema}.{call}")
    }

    /// Its parameters, in the order of [`Self::statement`].
    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            Call::Snapshot {
                schemas,
                include_stats,
            } => vec![schemas, include_stats],
            Call::Fingerprint => vec![],
            Call::Validate(sql) => vec![sql],
            Call::Run(sql, limit) => vec![sql, limit],
        }
    }

    /// Sends the call on `client` and returns its text.
    pub async fn send(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<String, tokio_postgres::Error> {
        let row = client
            .query_one(&self.statement(schema), &self.params())
            .await?;
        row.try_get(0)
    }
}

/// The schema pg_nlq is installed in (quoted), or the error that says why it cannot be used.
pub async fn extension_schema(client: &Client, what: &str) -> Result<String, ToolError> {
    let row = client
        .query_opt(EXTENSION_SCHEMA_SQL, &[])
        .await
        .map_err(|e| classify(&e, what).error)?;
    match row {
        Some(row) => row.try_get(0).map_err(|e| classify(&e, what).error),
        None => Err(extension_missing(client, what).await),
    }
}

/// The one text of a database without pg_nlq; `place` is "database \"shop\"" or the like.
fn not_installed(place: &str) -> String {
    format!(
        "the pg_nlq extension is not installed in {place}: run `CREATE EXTENSION pg_nlq` in that \
         database"
    )
}

/// The error for a database where pg_nlq's functions cannot be called: not installed, or
/// installed but without the function the bridge needs.
pub async fn extension_missing(client: &Client, what: &str) -> ToolError {
    let diagnosis = client.query_one(DIAGNOSE_SQL, &[]).await.and_then(|row| {
        Ok((
            row.try_get::<_, String>(0)?,
            row.try_get::<_, Option<String>>(1)?,
            row.try_get::<_, Option<String>>(2)?,
        ))
    });
    let message = match diagnosis {
        Ok((database, None, _)) => not_installed(&format!("database \"{database}\"")),
        Ok((database, Some(version), schema)) => format!(
            "pg_nlq {version} is installed in database \"{database}\" (schema \"{}\") but its \
             functions cannot be called: update the extension with `ALTER EXTENSION pg_nlq \
             UPDATE`",
            schema.as_deref().unwrap_or("?")
        ),
        Err(e) => {
            tracing::debug!(error = %describe_pg_error(&e), "could not inspect pg_extension");
            not_installed(what)
        }
    };
    ToolError::new(ErrorCode::ExtensionMissing, message, false)
}

/// The snapshot document exactly as the extension returns it (compact JSON text), from a
/// connection of its own (the command line's `snapshot`).
pub async fn snapshot(
    client: &Client,
    what: &str,
    schemas: Option<&[String]>,
    include_stats: bool,
) -> Result<String, ToolError> {
    let schema = extension_schema(client, what).await?;
    let call = Call::Snapshot {
        schemas,
        include_stats,
    };
    match call.send(client, &schema).await {
        Ok(document) => Ok(document),
        Err(e) => {
            let classified = classify(&e, what);
            if classified.extension_gone {
                return Err(extension_missing(client, what).await);
            }
            Err(classified.error)
        }
    }
}

/// The databases a server offers this role.
pub async fn list_databases(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client.query(DISCOVERY_SQL, &[]).await?;
    rows.iter().map(|r| r.try_get::<_, String>(0)).collect()
}

/// One row of `nlq_policy_check()` with a problem.
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

/// The rows of `nlq_policy_check()` that have a problem: stored `pg_nlq.*` settings that are
/// not in force (pg_nlq then refuses to work) and patterns that match nothing.
pub async fn policy_problems(
    client: &Client,
    schema: &str,
) -> Result<Vec<PolicyProblem>, tokio_postgres::Error> {
    let statement = format!(
        "SELECT setting, value, source, role, database, severity = 'error', problem \
         FROM {schema}.nlq_policy_check() WHERE problem IS NOT NULL"
    );
    let rows = client.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(PolicyProblem {
                setting: row.try_get(0)?,
                value: row.try_get(1)?,
                source: row.try_get(2)?,
                role: row.try_get(3)?,
                database: row.try_get(4)?,
                error: row.try_get(5)?,
                problem: row.try_get(6)?,
            })
        })
        .collect()
}

/// The session's role, whether it is a superuser (or may bypass row-level security), and the
/// installed pg_nlq version (`None` when missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCheck {
    pub role: String,
    pub privileged: bool,
    pub extension_version: Option<String>,
}

pub async fn role_check(client: &Client) -> Result<RoleCheck, tokio_postgres::Error> {
    let row = client.query_one(ROLE_SQL, &[]).await?;
    Ok(RoleCheck {
        role: row.try_get(0)?,
        privileged: row.try_get(1)?,
        extension_version: row.try_get(2)?,
    })
}

/// The JSON document a pg_nlq function returned.
pub fn parse_document<T: serde::de::DeserializeOwned>(
    function: &str,
    text: &str,
) -> Result<T, ToolError> {
    serde_json::from_str(text).map_err(|e| {
        ToolError::internal(format!("{function} returned an unexpected document: {e}"))
    })
}

/// `nlq_validate`'s report.
pub fn parse_validation(text: &str) -> Result<Validation, ToolError> {
    parse_document("nlq_validate", text)
}

/// `nlq_run`'s result.
pub fn parse_run(text: &str) -> Result<RunResult, ToolError> {
    parse_document("nlq_run", text)
}

/// A PostgreSQL error as the bridge reports it.
#[derive(Debug)]
pub struct Classified {
    pub error: ToolError,
    /// pg_nlq's code at the head of the DETAIL, if any.
    pub code: Option<ExtCode>,
    /// The bridge's own call found no pg_nlq function named where it looked: the extension
    /// was dropped (or is too old).
    pub extension_gone: bool,
    /// The function or its schema was not found: the extension may have moved; look its
    /// schema up again before the next call.
    pub forget_schema: bool,
}

/// The one classifier of PostgreSQL errors: connection failures, pg_nlq's refusals and
/// failures (by the code at the head of the DETAIL, [`crate::contract`]), and everything else
/// by SQLSTATE. `what` names the database in the message ("database shop on local").
pub fn classify(err: &tokio_postgres::Error, what: &str) -> Classified {
    let Some(db) = err.as_db_error() else {
        return Classified {
            error: ToolError::new(
                ErrorCode::ConnectionError,
                format!("{what}: the connection failed"),
                true,
            )
            .with_detail(describe_pg_error(err)),
            code: None,
            extension_gone: false,
            forget_schema: false,
        };
    };
    let code = db.detail().and_then(ExtCode::from_detail);
    let state = db.code();
    // What the server said is its text and quotes data (`invalid input syntax for type integer:
    // "<a value>"`): it goes in the error's untrusted detail.
    let message = describe_pg_error(err);
    // The bridge's own call of a missing function (no pg_nlq code in the DETAIL); a query that
    // calls an unknown function named nlq_... is refused with UNDEFINED_OBJECT instead.
    let forget_schema = code.is_none()
        && (state == &SqlState::UNDEFINED_FUNCTION || state == &SqlState::INVALID_SCHEMA_NAME);
    let extension_gone =
        code.is_none() && state == &SqlState::UNDEFINED_FUNCTION && message.contains("nlq_");
    let (error_code, retryable) = if extension_gone {
        (ErrorCode::ExtensionMissing, false)
    } else if let Some(code) = &code {
        let meaning = code.meaning();
        (meaning.error, meaning.retryable)
    } else if state == &SqlState::QUERY_CANCELED || state == &SqlState::LOCK_NOT_AVAILABLE {
        (ErrorCode::ExecutionTimeout, true)
    } else if state == &SqlState::SYNTAX_ERROR {
        (ErrorCode::SyntaxError, false)
    } else if state.code().starts_with("08")
        || state.code().starts_with("57P")
        || state == &SqlState::TOO_MANY_CONNECTIONS
    {
        // connection exceptions, the server shutting down or ending the session
        (ErrorCode::ConnectionError, true)
    } else {
        (ErrorCode::ExecutionError, false)
    };
    let headline = if extension_gone {
        not_installed(what)
    } else {
        // pg_nlq's code is named when it says more than the code users see (once, not twice)
        let named = code
            .as_ref()
            .filter(|c| c.as_str() != error_code.as_str())
            .map(|c| format!(", {}", c.as_str()))
            .unwrap_or_default();
        format!(
            "{what}: the server refused the statement (SQLSTATE {}{named})",
            state.code()
        )
    };
    let mut error = ToolError::new(error_code, headline, retryable);
    error.pg_nlq_code = code.clone();
    if !extension_gone {
        error = error.with_detail(message);
    }
    Classified {
        error,
        code,
        extension_gone,
        forget_schema,
    }
}
