//! `nlq_schema_snapshot()`: everything the caller may query, as one jsonb document, and
//! `nlq_schema_fingerprint()`: a cheap hash telling whether a cached snapshot is stale.
//!
//! Both are single set-based catalog queries (`snapshot.sql`, `fingerprint.sql`) run through
//! SPI as the caller, so the caller's privileges decide what appears, and the DBA's access
//! policy hides what `nlq_run()` would refuse ([`Hidden`]). Neither writes, so both are
//! `STABLE` and safe on a hot standby (no transaction id is ever assigned).
//!
//! Both pin `search_path = pg_catalog, pg_temp` and call pg_nlq's own helper by its schema:
//! no operator, function or relation another role created (in `public`, or in pg_nlq's own
//! schema) can stand in for a built-in one. Both run in pg_nlq's sandbox ([`bounded`]): they
//! fail with POLICY_ERROR when the stored policy is not in force, wait for a lock no longer
//! than `pg_nlq.lock_timeout`, run no longer than `pg_nlq.statement_timeout`, and hold no lock
//! past their own end. They are `PARALLEL UNSAFE` because the sandbox is a subtransaction.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::codes::Code;
use crate::derived;
use crate::error::NlqError;
use crate::gucs;
use crate::jsonb::JsonbDatum;
use crate::policy::AccessPolicy;
use crate::sandbox::{self, Work};
use crate::validate::Policies;

/// Version of the snapshot document's shape. Part of the fingerprint, so a client's cache is
/// invalidated when an upgrade of pg_nlq changes the shape.
pub const FORMAT_VERSION: i32 = 1;

const SNAPSHOT_SQL: &str = include_str!("snapshot.sql");
const FINGERPRINT_SQL: &str = include_str!("fingerprint.sql");

/// The caller's view of the database schema as jsonb: schemas, relations (tables, partitioned
/// tables with their partitions folded in, views, materialized views, foreign tables) with
/// columns, keys, constraints and indexes, user-defined types, comments, row estimates, sizes
/// and per-column statistics, plus the `fingerprint` of the schema state it describes.
///
/// `schemas` restricts the document to those schemas (an unknown name is an error);
/// `include_stats => false` leaves statistics out.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn nlq_schema_snapshot(
    schemas: default!(Option<Vec<Option<String>>>, "NULL"),
    include_stats: default!(Option<bool>, true),
) -> JsonbDatum {
    crate::error::entry(move || {
        let Some(include_stats) = include_stats else {
            NlqError::NullArgument("include_stats").raise()
        };
        let schemas = schemas.map(|list| {
            list.into_iter()
                .map(|name| name.unwrap_or_else(|| NlqError::NullElement("schemas").raise()))
                .collect::<Vec<String>>()
        });
        let max_values = gucs::STATS_COMMON_VALUES.get();
        let max_len = gucs::STATS_VALUE_LENGTH.get();
        let policy = access_policy();
        // SAFETY: the memory context of this call, which outlives the sandbox's.
        let caller_context = unsafe { pg_sys::CurrentMemoryContext };

        bounded("nlq_schema_snapshot", || {
            Spi::connect(|client| {
                if let Some(names) = &schemas {
                    check_schemas_exist(client, names);
                }
                let fingerprint = fingerprint(client);
                let hidden = Hidden::by(client, &policy);
                let sql = SNAPSHOT_SQL.replace("@extschema@", &extension_schema(client));
                let snapshot = client
                    .select(
                        &sql,
                        Some(1),
                        &[
                            schemas.clone().into(),
                            include_stats.into(),
                            max_values.into(),
                            max_len.into(),
                            fingerprint.into(),
                            FORMAT_VERSION.into(),
                            hidden.relations.into(),
                            hidden.column_relids.into(),
                            hidden.column_attnums.into(),
                            hidden.partitions.into(),
                            hidden.partition_keys.into(),
                        ],
                    )
                    .and_then(|table| table.first().get_one::<JsonbDatum>());
                match snapshot {
                    // the sandbox's memory goes with it: the document is copied out first
                    // SAFETY: a valid jsonb varlena, copied into a context that outlives this one.
                    Ok(Some(doc)) => unsafe {
                        let doc = crate::encoding::valid_jsonb_in_sql_ascii(doc.0);
                        let previous = pg_sys::MemoryContextSwitchTo(caller_context);
                        let copy = pg_sys::pg_detoast_datum_copy(doc.cast_mut_ptr());
                        pg_sys::MemoryContextSwitchTo(previous);
                        JsonbDatum(pg_sys::Datum::from(copy))
                    },
                    Ok(None) => internal_error("the snapshot query returned no row"),
                    Err(e) => internal_error(&e.to_string()),
                }
            })
        })
    })
}

/// Run `f` (the snapshot's or the fingerprint's catalog queries) in pg_nlq's sandbox: an
/// internal subtransaction rolled back at the end, so the locks the catalog functions take
/// (`pg_get_expr` and `pg_get_viewdef` lock the relations they deparse, in PostgreSQL 15) are
/// released when the call returns instead of at the end of the caller's transaction; and
/// bounded by `pg_nlq.lock_timeout` and `pg_nlq.statement_timeout`, whose expiry is reported
/// with its code (`LOCK_TIMEOUT`, `STATEMENT_TIMEOUT`) at the head of DETAIL. No access policy
/// is enforced by the executor hook here: these queries read the catalogs, and apply the
/// policy themselves.
fn bounded<R>(function: &'static str, f: impl FnOnce() -> R) -> R {
    let limits = crate::validate::limits();
    let failure = match sandbox::run_with(Rc::new(AccessPolicy::default()), None, &limits, f) {
        Ok(value) => return value,
        Err(failure) => failure,
    };
    // pg_nlq's own refusals (POLICY_ERROR, INVALID_ARGUMENT) keep their code; anything else
    // PostgreSQL raised while reading the catalogs is pg_nlq's failure to answer
    let code = failure.code(Work::Catalog);
    let (message, detail, hint) = match code {
        Code::StatementTimeout => (
            format!(
                "{function}() took longer than pg_nlq.statement_timeout ({} ms)",
                limits.statement_timeout_ms
            ),
            None,
            None,
        ),
        Code::LockTimeout => (
            format!(
                "{function}() waited longer than {} for a lock on a relation it describes",
                if limits.lock_timeout_ms > 0 {
                    format!("pg_nlq.lock_timeout ({} ms)", limits.lock_timeout_ms)
                } else {
                    "lock_timeout".to_string()
                }
            ),
            Some(
                "another session holds a conflicting lock (ACCESS EXCLUSIVE: DDL, VACUUM \
                 FULL, an explicit LOCK TABLE)"
                    .into(),
            ),
            Some("Try again when it has committed.".into()),
        ),
        _ if failure.own_code().is_some() => {
            let detail = failure.own_detail();
            (failure.message, detail, failure.hint)
        }
        _ => (failure.message, failure.detail, failure.hint),
    };
    let sqlstate = match code {
        Code::StatementTimeout => PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
        Code::LockTimeout => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
        _ => failure.sqlstate,
    };
    NlqError::Refused {
        code,
        message,
        sqlstate,
        detail,
        hint,
    }
    .raise()
}

/// pg_nlq's schema, quoted: the snapshot calls its own helper by this qualified name, so no
/// function of the same name elsewhere (or an overload in that schema) is ever called instead.
fn extension_schema(client: &SpiClient<'_>) -> String {
    let schema = client
        .select(
            "SELECT pg_catalog.quote_ident(n.nspname::text) \
             FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace \
             WHERE e.extname OPERATOR(pg_catalog.=) 'pg_nlq'::pg_catalog.name",
            Some(1),
            &[],
        )
        .and_then(|table| table.first().get_one::<String>());
    match schema {
        Ok(Some(schema)) => schema,
        Ok(None) => internal_error("pg_nlq is not installed in this database"),
        Err(e) => internal_error(&e.to_string()),
    }
}

// Literals in the document (partition bounds, defaults, view and check definitions) are printed
// the same way whatever the caller's DateStyle/IntervalStyle: ISO, as a model expects them.
extension_sql!(
    r#"ALTER FUNCTION nlq_schema_snapshot(text[], bool)
         SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres';"#,
    name = "snapshot_output_style",
    requires = [nlq_schema_snapshot],
);

/// The fingerprint of the caller's schema state; equal to the `fingerprint` of a snapshot taken
/// in the same state. Reads only catalog row versions, not their content: some 25 ms for a
/// thousand tables, a small fraction of the snapshot.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn nlq_schema_fingerprint() -> String {
    crate::error::entry(move || {
        // a broken policy is an error here too: the fingerprint of a policy not in force would
        // validate a snapshot cached under it
        let _ = access_policy();
        bounded("nlq_schema_fingerprint", || Spi::connect(fingerprint))
    })
}

fn fingerprint(client: &SpiClient<'_>) -> String {
    let version = format!("pg_nlq-snapshot-v{FORMAT_VERSION}");
    // the access policy decides what the snapshot shows, so it is part of the state
    let policy = [
        &gucs::DENIED_RELATIONS,
        &gucs::ALLOWED_RELATIONS,
        &gucs::DENIED_COLUMNS,
    ]
    .map(gucs::string_value)
    .join("\n");
    match client
        .select(FINGERPRINT_SQL, Some(1), &[version.into(), policy.into()])
        .and_then(|table| table.first().get_one::<String>())
    {
        Ok(Some(hash)) => hash,
        Ok(None) => internal_error("the fingerprint query returned no row"),
        Err(e) => internal_error(&e.to_string()),
    }
}

/// The DBA's access policy, as nlq_validate() and nlq_run() apply it. A setting that does not
/// parse is an error here too (POLICY_ERROR): a broken policy never means "show everything".
pub(crate) fn access_policy() -> AccessPolicy {
    match Policies::current() {
        Ok(policies) => (*policies.access).clone(),
        Err(message) => NlqError::Refused {
            code: Code::PolicyError,
            message,
            sqlstate: Code::PolicyError.sqlstate(None),
            detail: None,
            hint: None,
        }
        .raise(),
    }
}

/// What the access policy hides from the snapshot: the relations nlq_run() would refuse to
/// read directly, denied partitions and children (and those of a denied parent), views and
/// materialized views that would read a denied relation or column whatever columns are used
/// of them, denied columns (a view's column when reading it would read a denied one, a
/// generated column computed from one, a column denied on an ancestor or a child), and the
/// partition keys (with the bounds of the partitions below them) that use a denied column.
/// Every decision is [`derived::Checker`]'s, the validator's and the runtime hook's own.
#[derive(Default)]
struct Hidden {
    relations: Vec<pg_sys::Oid>,
    column_relids: Vec<pg_sys::Oid>,
    column_attnums: Vec<i16>,
    partitions: Vec<pg_sys::Oid>,
    partition_keys: Vec<pg_sys::Oid>,
}

const POLICY_RELATIONS_SQL: &str = "\
    SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

/// Columns of every relation listed (partitions are folded under their root, their columns
/// never shown).
const POLICY_COLUMNS_SQL: &str = "\
    SELECT a.attrelid, a.attnum \
    FROM pg_catalog.pg_attribute a \
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
      AND NOT c.relispartition \
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

impl Hidden {
    fn by(client: &SpiClient<'_>, policy: &AccessPolicy) -> Hidden {
        if policy.is_empty() {
            return Hidden::default();
        }
        let mut checker = derived::Checker::new(policy);
        // `denied` is what no query may read at all, even through a view; `hidden` adds what
        // allowed_relations leaves out, which a view owned by someone else may still read.
        let mut denied: HashSet<pg_sys::Oid> = HashSet::new();
        let mut hidden: HashSet<pg_sys::Oid> = HashSet::new();
        let mut keys = Vec::new();
        let mut kinds: HashMap<pg_sys::Oid, String> = HashMap::new();
        for row in client
            .select(POLICY_RELATIONS_SQL, None, &[])
            .unwrap_or_else(spi_failed)
        {
            let Some(oid) = column::<pg_sys::Oid>(&row, 1) else {
                continue;
            };
            let schema = crate::encoding::text_column(&row, 2).unwrap_or_default();
            let name = crate::encoding::text_column(&row, 3).unwrap_or_default();
            let kind = crate::encoding::text_column(&row, 4).unwrap_or_default();
            let nothing = BTreeSet::new();
            let refused = match kind.as_str() {
                "v" => {
                    checker.refusal(oid, false, false, &nothing).is_some()
                        || checker.definition_refusal(oid, &nothing).is_some()
                }
                _ => checker.refusal(oid, false, false, &nothing).is_some(),
            };
            if refused {
                denied.insert(oid);
            }
            if policy.relation_refusal(&schema, &name, true).is_some() {
                hidden.insert(oid);
            }
            if kind == "p" && checker.partition_key_refusal(oid).is_some() {
                keys.push(oid);
            }
            kinds.insert(oid, kind);
        }
        let mut columns: Vec<(pg_sys::Oid, i16)> = Vec::new();
        if policy.has_column_rules() {
            // views whose every column may be read need no column-by-column look
            let mut whole: HashMap<pg_sys::Oid, bool> = HashMap::new();
            for row in client
                .select(POLICY_COLUMNS_SQL, None, &[])
                .unwrap_or_else(spi_failed)
            {
                let (Some(relid), Some(attnum)) =
                    (column::<pg_sys::Oid>(&row, 1), column::<i16>(&row, 2))
                else {
                    continue;
                };
                if denied.contains(&relid) {
                    continue;
                }
                let kind = kinds.get(&relid).map(String::as_str).unwrap_or("");
                let view = kind == "v" || kind == "m";
                let one = BTreeSet::from([attnum]);
                let refused = if view {
                    let all_fine = *whole.entry(relid).or_insert_with(|| {
                        let all = BTreeSet::from([0]);
                        checker.refusal(relid, false, false, &all).is_none()
                            && (kind != "v" || checker.definition_refusal(relid, &all).is_none())
                    });
                    !all_fine
                        && (checker.refusal(relid, false, false, &one).is_some()
                            || (kind == "v" && checker.definition_refusal(relid, &one).is_some()))
                } else {
                    checker.refusal(relid, false, true, &one).is_some()
                };
                if refused {
                    columns.push((relid, attnum));
                }
            }
        }
        let partitions = denied.iter().copied().collect();
        hidden.extend(denied);
        let (column_relids, column_attnums) = columns.into_iter().unzip();
        Hidden {
            relations: hidden.into_iter().collect(),
            column_relids,
            column_attnums,
            partitions,
            partition_keys: keys,
        }
    }
}

/// A misspelt schema name is an error, not an empty snapshot.
fn check_schemas_exist(client: &SpiClient<'_>, names: &[String]) {
    let missing = client
        .select(
            "SELECT string_agg(quote_ident(s), ', ' ORDER BY s) FROM unnest($1::text[]) s \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = s)",
            Some(1),
            &[names.to_vec().into()],
        )
        .and_then(|table| table.first().get_one::<String>());
    match missing {
        Ok(None) => {}
        Ok(Some(list)) => NlqError::UnknownSchema(list).raise(),
        Err(e) => internal_error(&e.to_string()),
    }
}

fn spi_failed<T>(e: pgrx::spi::SpiError) -> T {
    internal_error(&e.to_string())
}

/// Column `n` of an SPI result row.
fn column<T: FromDatum + IntoDatum>(row: &pgrx::spi::SpiHeapTupleData<'_>, n: usize) -> Option<T> {
    row.get::<T>(n).unwrap_or_else(spi_failed)
}

fn internal_error(detail: &str) -> ! {
    NlqError::Internal {
        context: "nlq_schema_snapshot",
        detail: detail.to_string(),
    }
    .raise()
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::Value;

    fn snapshot_of(schema: &str) -> Value {
        let doc = Spi::get_one_with_args::<JsonB>(
            "SELECT nlq_schema_snapshot(ARRAY[$1])",
            &[schema.into()],
        )
        .unwrap()
        .unwrap();
        doc.0
    }

    fn relation<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["relations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("relation {name} missing from {doc}"))
    }

    #[pg_test]
    fn snapshot_describes_a_table_created_in_the_same_transaction() {
        Spi::run(
            "CREATE SCHEMA t1;
             CREATE TABLE t1.items (id int PRIMARY KEY, label text NOT NULL DEFAULT 'x');
             COMMENT ON COLUMN t1.items.label IS 'shown to people'",
        )
        .unwrap();
        let doc = snapshot_of("t1");
        assert_eq!(doc["format_version"], 1);
        assert_eq!(doc["schemas"][0]["name"], "t1");
        let items = relation(&doc, "items");
        assert_eq!(items["kind"], "table");
        assert_eq!(items["primary_key"]["columns"], serde_json::json!(["id"]));
        let label = &items["columns"][1];
        assert_eq!(label["name"], "label");
        assert_eq!(label["nullable"], false);
        assert_eq!(label["default"], "'x'::text");
        assert_eq!(label["comment"], "shown to people");
    }

    #[pg_test]
    fn snapshot_never_assigns_a_transaction_id() {
        // A hot standby cannot assign one, so the snapshot must not need one. Ask through a
        // read-only select: pgrx's Spi::get_one would assign one itself.
        let seen = Spi::connect(|client| {
            client
                .select(
                    "SELECT nlq_schema_snapshot() IS NOT NULL, \
                            pg_current_xact_id_if_assigned() IS NULL",
                    None,
                    &[],
                )
                .unwrap()
                .first()
                .get_two::<bool, bool>()
                .unwrap()
        });
        assert_eq!(seen, (Some(true), Some(true)));
    }

    #[pg_test]
    fn fingerprint_sees_a_new_table_inside_the_transaction() {
        let before = Spi::get_one::<String>("SELECT nlq_schema_fingerprint()").unwrap();
        Spi::run("CREATE TABLE fp_new (id int)").unwrap();
        let after = Spi::get_one::<String>("SELECT nlq_schema_fingerprint()").unwrap();
        assert_ne!(before, after);
        let again = Spi::get_one::<String>("SELECT nlq_schema_fingerprint()").unwrap();
        assert_eq!(after, again);
        assert_eq!(after.as_deref().map(str::len), Some(64));
    }

    #[pg_test]
    fn column_privileges_decide_what_a_role_sees() {
        Spi::run(
            "CREATE ROLE nlq_pgtest_reader;
             CREATE SCHEMA t2;
             CREATE TABLE t2.people (id int PRIMARY KEY, name text, salary numeric);
             CREATE INDEX people_salary ON t2.people (salary);
             CREATE TABLE t2.hidden (id int);
             GRANT USAGE ON SCHEMA t2 TO nlq_pgtest_reader;
             GRANT SELECT (id, name) ON t2.people TO nlq_pgtest_reader;
             SET LOCAL ROLE nlq_pgtest_reader",
        )
        .unwrap();
        let doc = snapshot_of("t2");
        Spi::run("RESET ROLE").unwrap();
        let relations = doc["relations"].as_array().unwrap();
        assert_eq!(relations.len(), 1, "only people is visible: {doc}");
        let people = &relations[0];
        let names: Vec<&str> = people["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["id", "name"]);
        let indexes: Vec<&str> = people["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(indexes, ["people_pkey"]);
        assert_eq!(doc["role"], "nlq_pgtest_reader");
    }

    #[pg_test(error = "include_stats must not be NULL")]
    fn null_include_stats_is_an_error() {
        Spi::run("SELECT nlq_schema_snapshot(NULL, NULL)").unwrap();
    }

    #[pg_test(error = "schema does not exist: \"No Such\"")]
    fn unknown_schema_is_an_error_naming_it() {
        Spi::run("SELECT nlq_schema_snapshot(ARRAY['No Such'])").unwrap();
    }
}
