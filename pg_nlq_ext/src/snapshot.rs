//! `nlq_schema_snapshot()`: everything the caller may query, as one jsonb document, and
//! `nlq_schema_fingerprint()`: a cheap hash telling whether a cached snapshot is stale.
//!
//! Both are single set-based catalog queries (`snapshot.sql`, `fingerprint.sql`) run through
//! SPI as the caller, so the caller's privileges decide what appears. Neither writes, so both
//! are `STABLE` and safe on a hot standby (no transaction id is ever assigned).

use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::JsonB;

use crate::error::NlqError;
use crate::gucs;

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
) -> JsonB {
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

    Spi::connect(|client| {
        if let Some(names) = &schemas {
            check_schemas_exist(client, names);
        }
        let fingerprint = fingerprint(client);
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
                ],
            )
            .and_then(|table| table.first().get_one::<JsonB>());
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
/// in the same state. Reads only catalog row versions, not their content: a few milliseconds
/// even for thousands of tables.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, @extschema@)]
fn nlq_schema_fingerprint() -> String {
    Spi::connect(|client| fingerprint(client))
}

fn fingerprint(client: &SpiClient<'_>) -> String {
    let version = format!("pg_nlq-snapshot-v{FORMAT_VERSION}");
    match client
        .select(FINGERPRINT_SQL, Some(1), &[version.into()])
        .and_then(|table| table.first().get_one::<String>())
    {
        Ok(Some(hash)) => hash,
        Ok(None) => internal_error("the fingerprint query returned no row"),
        Err(e) => internal_error(&e.to_string()),
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

fn internal_error(detail: &str) -> ! {
    NlqError::Internal {
        context: "nlq_schema_snapshot",
        detail: detail.to_string(),
    }
    .raise()
}
