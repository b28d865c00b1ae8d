//! `nlq_schema_snapshot()`: everything the caller may query, as one jsonb document, and
//! `nlq_schema_fingerprint()`: a cheap hash telling whether a cached snapshot is stale.
//!
//! Both are single set-based catalog queries (`snapshot.sql`, `fingerprint.sql`) run through
//! SPI as the caller, so the caller's privileges decide what appears, and the DBA's access
//! policy hides what `nlq_run()` would refuse ([`Hidden`]). Neither writes, so both are
//! `STABLE` and safe on a hot standby (no transaction id is ever assigned).

use std::collections::HashSet;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::error::NlqError;
use crate::gucs;
use crate::jsonb::JsonbDatum;
use crate::policy::AccessPolicy;
use crate::validate::{Code, Policies};

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
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, @extschema@)]
fn nlq_schema_snapshot(
    schemas: default!(Option<Vec<Option<String>>>, "NULL"),
    include_stats: default!(Option<bool>, true),
) -> JsonbDatum {
    let Some(include_stats) = include_stats else {
        NlqError::NullArgument("include_stats").raise()
    };
    let schemas = schemas.map(|list| {
        list.into_iter()
            .map(|name| {
                name.unwrap_or_else(|| NlqError::NullArgument("an element of schemas").raise())
            })
            .collect::<Vec<String>>()
    });
    let max_values = gucs::STATS_COMMON_VALUES.get();
    let max_len = gucs::STATS_VALUE_LENGTH.get();
    let policy = access_policy();

    Spi::connect(|client| {
        if let Some(names) = &schemas {
            check_schemas_exist(client, names);
        }
        let fingerprint = fingerprint(client);
        let hidden = Hidden::by(client, &policy);
        let snapshot = client
            .select(
                SNAPSHOT_SQL,
                Some(1),
                &[
                    schemas.into(),
                    include_stats.into(),
                    max_values.into(),
                    max_len.into(),
                    fingerprint.into(),
                    FORMAT_VERSION.into(),
                    hidden.relations.into(),
                    hidden.column_relids.into(),
                    hidden.column_attnums.into(),
                ],
            )
            .and_then(|table| table.first().get_one::<JsonbDatum>());
        match snapshot {
            Ok(Some(doc)) => doc,
            Ok(None) => internal_error("the snapshot query returned no row"),
            Err(e) => internal_error(&e.to_string()),
        }
    })
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
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, @extschema@)]
fn nlq_schema_fingerprint() -> String {
    Spi::connect(fingerprint)
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
fn access_policy() -> AccessPolicy {
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
/// read directly, the views that would read a denied relation or column, and denied columns.
#[derive(Default)]
struct Hidden {
    relations: Vec<pg_sys::Oid>,
    column_relids: Vec<pg_sys::Oid>,
    column_attnums: Vec<i16>,
}

const POLICY_RELATIONS_SQL: &str = "\
    SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'v' \
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

const POLICY_COLUMNS_SQL: &str = "\
    SELECT a.attrelid, a.attnum, n.nspname::text, c.relname::text, a.attname::text \
    FROM pg_catalog.pg_attribute a \
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
      AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'";

/// What each view's rewrite rule reads: (view, relation, column or 0 for the whole relation).
const VIEW_READS_SQL: &str = "\
    SELECT DISTINCT r.ev_class, d.refobjid, d.refobjsubid::int2 \
    FROM pg_catalog.pg_rewrite r \
    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v' \
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass \
     AND d.objid = r.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
     AND d.refobjid <> r.ev_class";

impl Hidden {
    fn by(client: &SpiClient<'_>, policy: &AccessPolicy) -> Hidden {
        if policy.is_empty() {
            return Hidden::default();
        }
        // `denied` is what no query may read at all, even through a view; `hidden` adds what
        // allowed_relations leaves out, which a view owned by someone else may still read.
        let mut denied: HashSet<pg_sys::Oid> = HashSet::new();
        let mut hidden: HashSet<pg_sys::Oid> = HashSet::new();
        if policy.has_relation_rules() {
            for row in client
                .select(POLICY_RELATIONS_SQL, None, &[])
                .unwrap_or_else(spi_failed)
            {
                let oid = column::<pg_sys::Oid>(&row, 1);
                let schema = column::<String>(&row, 2).unwrap_or_default();
                let name = column::<String>(&row, 3).unwrap_or_default();
                let Some(oid) = oid else { continue };
                if policy.relation_refusal(&schema, &name, false).is_some() {
                    denied.insert(oid);
                }
                if policy.relation_refusal(&schema, &name, true).is_some() {
                    hidden.insert(oid);
                }
            }
        }
        let mut columns: HashSet<(pg_sys::Oid, i16)> = HashSet::new();
        if policy.has_column_rules() {
            for row in client
                .select(POLICY_COLUMNS_SQL, None, &[])
                .unwrap_or_else(spi_failed)
            {
                let relid = column::<pg_sys::Oid>(&row, 1);
                let attnum = column::<i16>(&row, 2);
                let schema = column::<String>(&row, 3).unwrap_or_default();
                let table = column::<String>(&row, 4).unwrap_or_default();
                let attname = column::<String>(&row, 5).unwrap_or_default();
                if let (Some(relid), Some(attnum)) = (relid, attnum) {
                    if policy.column_refusal(&schema, &table, &attname).is_some() {
                        columns.insert((relid, attnum));
                    }
                }
            }
        }
        // a view that reads a denied relation or column is refused as a whole (nlq_validate
        // expands it), and so is a view over such a view: propagate to a fixed point
        let mut reads = Vec::new();
        for row in client
            .select(VIEW_READS_SQL, None, &[])
            .unwrap_or_else(spi_failed)
        {
            let view = column::<pg_sys::Oid>(&row, 1);
            let rel = column::<pg_sys::Oid>(&row, 2);
            let attnum = column::<i16>(&row, 3).unwrap_or(0);
            if let (Some(view), Some(rel)) = (view, rel) {
                reads.push((view, rel, attnum));
            }
        }
        loop {
            let before = denied.len();
            for &(view, rel, attnum) in &reads {
                if denied.contains(&rel) || (attnum > 0 && columns.contains(&(rel, attnum))) {
                    denied.insert(view);
                }
            }
            if denied.len() == before {
                break;
            }
        }
        hidden.extend(denied);
        let (column_relids, column_attnums) = columns.into_iter().unzip();
        Hidden {
            relations: hidden.into_iter().collect(),
            column_relids,
            column_attnums,
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
