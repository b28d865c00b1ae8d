//! The databases the bridge may use: discovery on each configured server, their names, their
//! state ([`Status`]), background retry of what is down, and each one's fingerprint-checked
//! snapshot cache ([`database`]). The pipeline and the tools look databases up here; this
//! module knows nothing of questions or models.

pub mod database;
pub mod names;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};

pub use self::database::{Cached, Database};
pub use self::names::escape_name;
pub use crate::answer::{DatabaseInfo, Status};
use crate::answer::{ErrorCode, ToolError};
use crate::error::BridgeError;
use crate::linking::TokenCounter;
use crate::settings::{DatabaseSettings, ServerSettings, Settings};

/// A server whose databases could not be discovered yet.
struct PendingServer {
    server: ServerSettings,
    reason: String,
}

/// The databases of every configured server.
pub struct Registry {
    servers: Vec<ServerSettings>,
    settings: DatabaseSettings,
    counter: TokenCounter,
    databases: RwLock<Vec<Arc<Database>>>,
    pending: tokio::sync::Mutex<Vec<PendingServer>>,
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
                crate::pgnlq::connect(&server.connection, settings.connect_timeout),
            )
            .await
            .map_err(|_| BridgeError::Connection {
                message: format!(
                    "server {}: no answer within {:?}",
                    server.name, settings.connect_timeout
                ),
                source: None,
            })??;
            tokio::time::timeout(
                settings.query_timeout,
                crate::pgnlq::list_databases(&client),
            )
            .await
            .map_err(|_| BridgeError::Connection {
                message: format!(
                    "server {}: no answer to the list of databases within {:?}",
                    server.name, settings.query_timeout
                ),
                source: None,
            })?
            .map_err(|e| {
                let what = format!("server {}", server.name);
                BridgeError::Tool(crate::pgnlq::classify(&e, &what).error)
            })?
        }
    };
    names.retain(|n| !server.exclude.contains(n));
    Ok(names)
}

impl Registry {
    /// An empty registry for `settings`' servers.
    pub fn new(settings: &Settings) -> Registry {
        Registry {
            servers: settings.servers.clone(),
            settings: settings.database.clone(),
            counter: TokenCounter::for_model(&settings.model.model),
            databases: RwLock::new(Vec::new()),
            pending: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Discovers the databases, loads their snapshots in parallel (waiting at most the
    /// configured start-up time) and starts retrying the ones that are down.
    pub async fn start(settings: &Settings) -> Result<Arc<Registry>, BridgeError> {
        let registry = Arc::new(Registry::new(settings));
        registry.discover_all().await?;
        let loads: Vec<_> = registry
            .all()
            .into_iter()
            .map(|database| {
                tokio::spawn(async move {
                    let _ = database.load().await;
                })
            })
            .collect();
        let timeout = registry.settings.startup_timeout;
        if tokio::time::timeout(timeout, futures::future::join_all(loads))
            .await
            .is_err()
        {
            tracing::warn!(
                "not every schema loaded within {timeout:?}; serving, and loading the rest in the background"
            );
        }
        Self::spawn_retry(Arc::downgrade(&registry), registry.settings.retry_interval);
        Ok(registry)
    }

    /// Asks every server for its databases and registers them; a server that does not answer
    /// is kept as pending.
    pub async fn discover_all(&self) -> Result<(), BridgeError> {
        let discovered =
            futures::future::join_all(self.servers.iter().map(|server| async move {
                (server.clone(), discover(server, &self.settings).await)
            }))
            .await;
        let mut found = Vec::new();
        for (server, result) in discovered {
            match result {
                Ok(names) => found.push((server, names)),
                Err(err) => {
                    tracing::warn!(server = %server.name, "{err}");
                    self.pending.lock().await.push(PendingServer {
                        server,
                        reason: err.to_string(),
                    });
                }
            }
        }
        self.add(found)
    }

    /// Registers discovered databases, naming them `server/database` where two servers have a
    /// database of the same name. A database's own name is escaped first ([`escape_name`]), so
    /// that it never contains the separator: a database literally named `B/shop` on server A
    /// is `B%2Fshop` (or `A/B%2Fshop`), and can never take the name of B's `shop`.
    fn add(&self, found: Vec<(ServerSettings, Vec<String>)>) -> Result<(), BridgeError> {
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
                    &self.settings,
                    self.counter,
                )?));
            }
        }
        Ok(())
    }

    /// Every registered database.
    pub fn all(&self) -> Vec<Arc<Database>> {
        self.databases.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// The databases whose schema is loaded and shows the role something, with it: those a
    /// question can be routed to.
    pub fn ready(&self) -> Vec<(Arc<Database>, Arc<Cached>)> {
        self.all()
            .iter()
            .filter_map(|d| d.ready().map(|c| (d.clone(), c)))
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }

    /// Retries unavailable databases and undiscovered servers until the registry is dropped.
    fn spawn_retry(registry: Weak<Registry>, interval: std::time::Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.retry_pending().await;
                for database in registry.all() {
                    if database.needs_retry() {
                        let _ = database.load().await;
                    }
                }
            }
        });
    }

    /// Tries the undiscovered servers again. They stay listed (as `server_unavailable`) while
    /// they are tried, and leave the list only once their databases are added.
    pub async fn retry_pending(&self) {
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
            match discover(&server, &self.settings).await {
                Ok(names) => found.push((server, names)),
                Err(err) => still.push(PendingServer {
                    server,
                    reason: err.to_string(),
                }),
            }
        }
        let discovered: Vec<String> = found.iter().map(|(s, _)| s.name.clone()).collect();
        if !found.is_empty() {
            if let Err(err) = self.add(found) {
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

    /// The databases and their state, including servers not yet reached.
    pub async fn list(&self) -> Vec<DatabaseInfo> {
        let mut list: Vec<DatabaseInfo> = self.all().iter().map(|d| d.info()).collect();
        for p in self.pending.lock().await.iter() {
            list.push(DatabaseInfo {
                name: format!("{}/*", p.server.name),
                note: None,
                server: p.server.name.clone(),
                description: None,
                status: Status::ServerUnavailable,
                reason: Some(p.reason.clone()),
                relations: None,
                fingerprint: None,
            });
        }
        list
    }

    fn unknown_database(&self, name: &str) -> ToolError {
        let names: Vec<String> = self.all().iter().map(|d| d.name.clone()).collect();
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

    /// The database a caller names, or the only usable one (for the SQL tools: an `empty`
    /// database counts; questions are routed among [`Registry::ready`] instead).
    pub fn lookup(&self, name: Option<&str>) -> Result<Arc<Database>, ToolError> {
        let all = self.all();
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
                    // an `empty` database counts here: SQL that reads no table runs there
                    // (questions are routed by `ready()`, which leaves it out)
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
                        let mut err = ToolError::invalid(format!(
                            "several databases are available; say which one with `database`: {}",
                            many.iter()
                                .map(|d| d.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                        err.candidates = many.iter().map(|d| d.name.clone()).collect();
                        Err(err)
                    }
                }
            }
        }
    }

    /// The schema of `database` to use now (fingerprint-checked, see [`Database::schema`]).
    pub async fn schema_of(&self, database: &Database) -> Result<Arc<Cached>, ToolError> {
        database
            .schema(self.settings.fingerprint_check_interval)
            .await
    }
}
