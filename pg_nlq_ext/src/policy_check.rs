//! Fail closed on the DBA's mistakes (design §3.7, DEC-15): a `pg_nlq.*` policy that was stored
//! but is not in force makes every pg_nlq function fail with POLICY_ERROR, and
//! `nlq_policy_check()` lists every stored `pg_nlq.*` entry with its problem.
//!
//! PostgreSQL applies a role's and a database's settings (`pg_db_role_setting`) when a session
//! starts, and only warns about one it cannot apply: a name under `pg_nlq.` that is no setting
//! (stored while pg_nlq was not loaded, so nothing checked it) is removed when the library is
//! loaded; a value out of range is replaced by the default. Either way the session would run
//! with less policy than the DBA wrote. So each call compares what is stored for the session
//! (its role, for the current database, for the role, for the database, for all) with what is
//! in force:
//!
//! - an entry that names no pg_nlq setting, or whose value is not valid for it, is an error;
//! - the entry that should be in force (the most specific valid one, as PostgreSQL picks it)
//!   must hold the value in force, unless a higher-priority source set it since (a client
//!   option or `SET` by a role allowed to: superuser or `GRANT SET ON PARAMETER`). It is not in
//!   force when it was stored after the session started, or when the session acts as another
//!   role than it logged in as (`SET ROLE`, `SET SESSION AUTHORIZATION`): a role's settings
//!   apply at its login only;
//! - a value in force from a stored entry that was removed since is an error too (reconnect);
//! - what a configuration file or the server's command line set under `pg_nlq.` before the
//!   library was loaded, and was dropped or refused when it was loaded, is an error for the rest
//!   of the session ([`note_load`]).
//!
//! The check reads `pg_db_role_setting` once (a heap scan of a catalog of a few rows, no SQL)
//! and the settings table in memory: a few microseconds per call.
//!
//! `nlq_policy_check()` adds warnings that do not stop pg_nlq: a pattern that matches no
//! existing relation, column or function of the current database (it may name an object created
//! later, so it stays in force).

use std::sync::Mutex;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::guc_state::{
    database_name, is_stored_source, parse, role_name, source_name, stored, variables, Stored,
    Value, Var,
};
use crate::gucs::{self, Kind, Target};
use crate::patterns::{self, NamePattern};

/// Something wrong with a `pg_nlq.*` setting: one row of `nlq_policy_check()`.
#[derive(Debug, Clone)]
pub struct Finding {
    pub setting: String,
    pub value: Option<String>,
    /// `pg_settings.source` vocabulary: "database user", "user", "database", "global" for a
    /// stored entry, else where the value in force came from.
    pub source: String,
    pub role: Option<String>,
    pub database: Option<String>,
    pub problems: Vec<String>,
    /// Whether it makes pg_nlq refuse to work (POLICY_ERROR) where it applies; otherwise the
    /// problems are warnings.
    pub error: bool,
    /// How the DBA stored it, for messages.
    origin: String,
    priority: u32,
}

impl Finding {
    /// A finding about the value in force in this session (not a stored entry).
    fn in_force(setting: &str, var: &Var, problems: Vec<String>, error: bool) -> Finding {
        Finding {
            setting: setting.to_string(),
            value: Some(match &var.value {
                Value::Text(s) => s.clone(),
                other => other.show(),
            }),
            source: source_name(var.source).to_string(),
            role: None,
            database: None,
            problems,
            error,
            origin: "in force in this session".to_string(),
            priority: var.source,
        }
    }

    fn add(&mut self, problem: String, error: bool) {
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
        self.error |= error;
    }

    fn describe(&self) -> String {
        format!(
            "{}{} ({}): {}",
            self.setting,
            self.value
                .as_deref()
                .map(|v| format!(" = '{}'", v.replace('\'', "''")))
                .unwrap_or_default(),
            self.origin,
            self.problems.join("; ")
        )
    }
}

/// Problems found when the library was loaded, kept for the session (see [`note_load`]).
static LOAD_PROBLEMS: Mutex<Vec<Finding>> = Mutex::new(Vec::new());

/// What is set under `pg_nlq.` while pg_nlq's settings are not defined yet: (name, value,
/// source) of each placeholder. Called by `_PG_init` before defining them.
pub fn placeholders() -> Vec<(String, String, pg_sys::GucSource::Type)> {
    variables()
        .into_values()
        .filter(|v| v.placeholder)
        .map(|v| {
            let value = match v.value {
                Value::Text(s) => s,
                other => other.show(),
            };
            (v.name, value, v.source)
        })
        .collect()
}

/// After pg_nlq's settings are defined: which of the `before` placeholders from a configuration
/// file or the server's command line PostgreSQL dropped (not a pg_nlq setting) or could not
/// apply (invalid value), each with a WARNING only; remembered for the rest of the session (with
/// `shared_preload_libraries`, this runs in the postmaster and every backend inherits it).
/// Entries of `pg_db_role_setting` are checked against the catalog on every call instead.
pub fn note_load(before: Vec<(String, String, pg_sys::GucSource::Type)>) {
    let vars = variables();
    let mut found = Vec::new();
    for (name, value, source) in before {
        // only the DBA's own sources: pg_db_role_setting is checked against the catalog on
        // every call, and a client option or SET refused at load time (an unprivileged role
        // trying to lift a SUSET setting) is the policy holding, not failing
        if !matches!(
            source,
            pg_sys::GucSource::PGC_S_FILE | pg_sys::GucSource::PGC_S_ARGV
        ) {
            continue;
        }
        let problem = match gucs::setting(&name) {
            None => Some(
                "no such pg_nlq setting (PostgreSQL removed it when pg_nlq was loaded)".to_string(),
            ),
            Some(setting) => {
                let var = vars.get(setting.name);
                match parse(setting, var, &value) {
                    Err(e) => Some(format!("{e}; PostgreSQL kept the default")),
                    Ok(v) if var.is_some_and(|var| var.value != v) => Some(format!(
                        "not in force: {} is",
                        var.map(|var| var.value.show()).unwrap_or_default()
                    )),
                    Ok(_) => None,
                }
            }
        };
        if let Some(problem) = problem {
            found.push(Finding {
                setting: name,
                value: Some(value),
                source: source_name(source).to_string(),
                role: None,
                database: None,
                problems: vec![format!(
                    "{problem}; fix it, then reconnect (restart the server if pg_nlq is in \
                     shared_preload_libraries)"
                )],
                error: true,
                origin: format!("from the {} when pg_nlq was loaded", source_name(source)),
                priority: 0,
            });
        }
    }
    if let Ok(mut problems) = LOAD_PROBLEMS.lock() {
        *problems = found;
    }
}

/// Catalog names the patterns are matched against (nlq_policy_check() only).
struct Catalog {
    /// Roles that cannot log in (`NOLOGIN`), by OID.
    nologin: Vec<u32>,
    relations: Vec<Vec<String>>,
    columns: Vec<Vec<String>>,
    functions: Vec<Vec<String>>,
}

const CATALOG_NOLOGIN: &str =
    "SELECT r.oid::pg_catalog.text FROM pg_catalog.pg_roles r WHERE NOT r.rolcanlogin";
const CATALOG_RELATIONS: &str = "\
    SELECT n.nspname::text, c.relname::text \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')";
const CATALOG_COLUMNS: &str = "\
    SELECT n.nspname::text, c.relname::text, a.attname::text \
    FROM pg_catalog.pg_attribute a \
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped";
const CATALOG_FUNCTIONS: &str = "\
    SELECT DISTINCT n.nspname::text, p.proname::text \
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace";

impl Catalog {
    fn read(client: &SpiClient<'_>) -> Catalog {
        let rows = |sql: &str, width: usize| -> Vec<Vec<String>> {
            let table = client.select(sql, None, &[]).unwrap_or_else(|e| {
                crate::error::NlqError::Internal {
                    context: "nlq_policy_check",
                    detail: e.to_string(),
                }
                .raise()
            });
            table
                .map(|row| {
                    (1..=width)
                        .map(|i| crate::encoding::text_column(&row, i).unwrap_or_default())
                        .collect()
                })
                .collect()
        };
        Catalog {
            nologin: rows(CATALOG_NOLOGIN, 1)
                .iter()
                .filter_map(|r| r.first().and_then(|oid| oid.parse().ok()))
                .collect(),
            relations: rows(CATALOG_RELATIONS, 2),
            columns: rows(CATALOG_COLUMNS, 3),
            functions: rows(CATALOG_FUNCTIONS, 2),
        }
    }

    /// Warnings for the patterns of `value` that match nothing in this database.
    fn unmatched(&self, kind: Kind, value: &str) -> Vec<String> {
        let Kind::Patterns { min, max, target } = kind else {
            return Vec::new();
        };
        let Ok(patterns) = patterns::parse_patterns(value, min, max) else {
            return Vec::new();
        };
        let (names, what) = match target {
            Target::Relations => (&self.relations, "relation"),
            Target::Columns => (&self.columns, "column"),
            Target::Functions => (&self.functions, "function"),
        };
        patterns
            .iter()
            .filter(|p: &&NamePattern| {
                !names.iter().any(|n| {
                    let parts: Vec<&str> = n.iter().map(String::as_str).collect();
                    p.matches(&parts)
                })
            })
            .map(|p| {
                format!(
                    "pattern {p} matches no {what} of database {} (it stays in force, for \
                     one created later)",
                    patterns::quote_ident(&database_name(current_database()))
                )
            })
            .collect()
    }
}

fn current_database() -> pg_sys::Oid {
    // SAFETY: set for the whole life of a backend connected to a database.
    unsafe { pg_sys::MyDatabaseId }
}

/// The findings: every stored entry if `all`, else only those that apply to this session;
/// with `catalog`, pattern warnings too.
fn findings(all: bool, catalog: Option<&Catalog>) -> Vec<Finding> {
    let vars = variables();
    let database = current_database();
    // SAFETY: the session's and the current user ids, always valid in a backend.
    let (session_user, current_user) = unsafe { (pg_sys::GetSessionUserId(), pg_sys::GetUserId()) };
    let mut roles = vec![session_user];
    if current_user != session_user {
        roles.push(current_user);
    }
    let entries = stored((!all).then_some((database, roles.as_slice())));
    let applies = |e: &Stored| roles.iter().any(|&r| e.applies(database, r));

    let mut out: Vec<Finding> = Vec::new();
    let mut entry_finding: Vec<Option<usize>> = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if !all && !applies(e) {
            continue;
        }
        let mut f = Finding {
            setting: e.name.clone(),
            value: Some(e.value.clone()),
            source: source_name(e.source()).to_string(),
            role: e.role_name(),
            database: e.database_name(),
            problems: Vec::new(),
            error: false,
            origin: e.command(),
            priority: e.source(),
        };
        if let Some(catalog) = catalog {
            if catalog.nologin.contains(&e.role.to_u32()) {
                f.add(
                    "its role cannot log in, and PostgreSQL applies a role's settings only at \
                     that role's own login, never to its members (under SET ROLE to it, pg_nlq \
                     refuses to work): store it for the role that logs in"
                        .to_string(),
                    false,
                );
            }
        }
        match gucs::setting(&e.name) {
            None => f.add("no such pg_nlq setting".to_string(), true),
            Some(setting) => match parse(setting, vars.get(setting.name), &e.value) {
                Err(reason) => f.add(reason, true),
                Ok(_) => {
                    if let Some(catalog) = catalog
                        .filter(|_| e.database == pg_sys::InvalidOid || e.database == database)
                    {
                        for w in catalog.unmatched(setting.kind, &e.value) {
                            f.add(w, false);
                        }
                    }
                }
            },
        }
        entry_finding[i] = Some(out.len());
        out.push(f);
    }

    // the entry that should be in force for each role, against the value in force
    for &role in &roles {
        for setting in gucs::SETTINGS {
            let Some(var) = vars.get(setting.name) else {
                continue;
            };
            if var.source > pg_sys::GucSource::PGC_S_DATABASE_USER {
                // set since by a client option or SET, which only a role allowed to may do
                continue;
            }
            let best = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.applies(database, role)
                        && gucs::setting(&e.name).is_some_and(|s| s.name == setting.name)
                })
                .max_by_key(|(_, e)| e.source())
                .map(|(i, e)| (i, parse(setting, Some(var), &e.value)));
            match best {
                // an invalid entry is reported as such above
                Some((_, Err(_))) => {}
                Some((i, Ok(value))) if value != var.value => {
                    let why = if role != session_user {
                        format!(
                            "a role's settings apply when it logs in, and this session logged \
                             in as {}",
                            patterns::quote_ident(&role_name(session_user))
                        )
                    } else {
                        "stored after this session started: settings apply at login, reconnect"
                            .to_string()
                    };
                    let problem = format!(
                        "not in force in this session, which has {} ({}): {why}",
                        var.value.show(),
                        source_name(var.source)
                    );
                    if let Some(k) = entry_finding[i] {
                        out[k].add(problem, true);
                    }
                }
                None if role == session_user && is_stored_source(var.source) => {
                    out.push(Finding::in_force(
                        setting.name,
                        var,
                        vec![
                            "in force from a role or database setting that is no longer \
                             stored: settings apply at login, reconnect"
                                .to_string(),
                        ],
                        true,
                    ));
                }
                _ => {}
            }
        }
    }

    for var in vars.values().filter(|v| v.placeholder) {
        out.push(Finding::in_force(
            &var.name,
            var,
            vec!["no such pg_nlq setting (left over as a placeholder)".to_string()],
            true,
        ));
    }
    if let Ok(problems) = LOAD_PROBLEMS.lock() {
        out.extend(problems.iter().cloned());
    }

    // pattern lists in force from elsewhere (configuration file, SET) that match nothing
    if let Some(catalog) = catalog {
        for setting in gucs::SETTINGS {
            let Some(var) = vars.get(setting.name) else {
                continue;
            };
            let Value::Text(value) = &var.value else {
                continue;
            };
            if is_stored_source(var.source) || value.trim().is_empty() {
                continue;
            }
            let warnings = catalog.unmatched(setting.kind, value);
            if !warnings.is_empty() {
                out.push(Finding::in_force(setting.name, var, warnings, false));
            }
        }
    }
    out
}

/// `Err` with a message naming the first problem when the policy stored for this session is not
/// the one in force. Called at the start of every pg_nlq function.
pub fn ensure_sound() -> Result<(), String> {
    let errors: Vec<Finding> = findings(false, None)
        .into_iter()
        .filter(|f| f.error)
        .collect();
    let Some(first) = errors.first() else {
        return Ok(());
    };
    let more = match errors.len() {
        1 => String::new(),
        2 => ", and 1 more problem".to_string(),
        n => format!(", and {} more problems", n - 1),
    };
    Err(format!(
        "{}; pg_nlq refuses to work while the policy stored for this session is not in \
         force{more} (SELECT * FROM nlq_policy_check() lists them)",
        first.describe()
    ))
}

/// Every `pg_nlq.*` setting stored in `pg_db_role_setting` (every role and database), and any
/// other `pg_nlq.*` setting of this session with a problem, one row each.
///
/// - `source`: `database user`, `user`, `database` or `global` for a stored entry (`ALTER ROLE
///   r IN DATABASE d SET`, `ALTER ROLE r SET`, `ALTER DATABASE d SET`, `ALTER ROLE ALL SET`),
///   else where the value in force came from (`configuration file`, `session`, ...);
/// - `role`, `database`: whom it is stored for (NULL: all);
/// - `severity`: `error` (pg_nlq refuses to work, with POLICY_ERROR, in the sessions it
///   applies to), `warning` (in force, probably a mistake: a pattern that matches nothing in
///   the current database), or NULL;
/// - `problem`: what is wrong, NULL if nothing.
///
/// ```sql
/// SELECT * FROM nlq_policy_check() WHERE problem IS NOT NULL;
/// ```
#[pg_extern(stable, parallel_restricted)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the row type must be spelt out for the SQL generator
fn nlq_policy_check() -> TableIterator<
    'static,
    (
        name!(setting, String),
        name!(value, Option<String>),
        name!(source, String),
        name!(role, Option<String>),
        name!(database, Option<String>),
        name!(severity, Option<String>),
        name!(problem, Option<String>),
    ),
> {
    crate::error::entry(move || {
        let catalog = Spi::connect(Catalog::read);
        let mut rows = findings(true, Some(&catalog));
        rows.sort_by(|a, b| {
            (
                a.setting.to_ascii_lowercase(),
                std::cmp::Reverse(a.priority),
                &a.role,
                &a.database,
            )
                .cmp(&(
                    b.setting.to_ascii_lowercase(),
                    std::cmp::Reverse(b.priority),
                    &b.role,
                    &b.database,
                ))
        });
        TableIterator::new(rows.into_iter().map(|f| {
            let severity = if f.error {
                Some("error".to_string())
            } else if f.problems.is_empty() {
                None
            } else {
                Some("warning".to_string())
            };
            let problem = (!f.problems.is_empty()).then(|| f.problems.join("; "));
            (
                f.setting, f.value, f.source, f.role, f.database, severity, problem,
            )
        }))
    })
}
