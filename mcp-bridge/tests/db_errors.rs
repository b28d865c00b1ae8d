//! How failures of the caller's SQL are reported, against the real cluster. Run through
//! `make test-bridge`, which sets NLQ_TEST_BRIDGE_DSN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bridge_dsn, drop_db, scratch_db, settings_from, start};
use mcp_bridge::answer::ErrorCode;

#[tokio::test]
async fn an_unknown_function_named_nlq_is_the_query_s_fault_not_a_missing_extension() {
    let text = format!(
        "[database]\nstartup_timeout_secs = 60\npool_size = 2\n[[servers]]\nname = \"test\"\n\
         url = \"{} dbname=postgres\"\ndatabases = [\"nlq_small\"]\n",
        bridge_dsn()
    );
    let bridge = start(settings_from(&text)).await;
    let err = bridge
        .run_sql(Some("nlq_small"), "SELECT nlq_no_such_function()", None)
        .await
        .expect_err("an unknown function cannot run");
    assert_eq!(err.code, ErrorCode::ExecutionError, "{err:?}");
    assert!(!err.full_message().contains("not installed"), "{err:?}");
    // the server's words are the error's (untrusted) detail
    assert!(
        err.detail
            .as_deref()
            .is_some_and(|d| d.contains("nlq_no_such_function")),
        "{err:?}"
    );
    // The database is still usable.
    let ok = bridge.run_sql(Some("nlq_small"), "SELECT 1", None).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_earlier_on_the_search_path_do_not_stand_in_for_pg_nlq() {
    let db = "nlq_bridge_shadow";
    // "$user" comes before public on the default search_path: a schema named after the
    // bridge's role holding functions of pg_nlq's names would be found first.
    let client = scratch_db(
        db,
        "CREATE SCHEMA nlq_bridge; GRANT USAGE ON SCHEMA nlq_bridge TO nlq_bridge; \
             CREATE FUNCTION nlq_bridge.nlq_validate(text) RETURNS jsonb LANGUAGE sql AS \
               $$ SELECT '{\"ok\": true, \"code\": \"OK\", \"message\": \"shadow\"}'::jsonb $$; \
             CREATE FUNCTION nlq_bridge.nlq_run(text, integer) RETURNS jsonb LANGUAGE sql AS \
               $$ SELECT '{\"columns\": [{\"name\": \"shadow\", \"type\": \"text\"}], \
                 \"rows\": [[\"shadow\"]], \"row_count\": 1, \"truncated\": false}'::jsonb $$; \
             CREATE FUNCTION nlq_bridge.nlq_schema_fingerprint() RETURNS text LANGUAGE sql AS \
               $$ SELECT 'shadow' $$",
    )
    .await;
    let text = format!(
        "[database]\nfingerprint_check_interval_secs = 0\n[[servers]]\nurl = \"{} dbname=postgres\"\ndatabases = [\"{db}\"]\n",
        bridge_dsn()
    );
    let bridge = start(settings_from(&text)).await;
    let validation = bridge.validate_sql(Some(db), "DELETE FROM x").await;
    let ran = bridge.run_sql(Some(db), "SELECT 42 AS answer", None).await;
    let schema = bridge.describe_schema(Some(db), None).await;
    drop(bridge);
    drop(client);
    drop_db(db).await;

    let validation = validation.unwrap();
    assert!(!validation.ok, "{validation:?}");
    assert_ne!(validation.message, "shadow");
    let ran = ran.unwrap();
    assert_eq!(ran.columns[0].name, "answer", "{ran:?}");
    assert!(schema.is_ok(), "{schema:?}");
}
