//! The built `pg-nlq-bridge` binary against a real PostgreSQL cluster with pg_nlq installed.
//!
//! Run through `make test-bridge`: it starts the project cluster and sets `NLQ_TEST_DSN` to a
//! libpq connection string without `dbname`. Each test works in a scratch database of its own,
//! dropped again when the test ends, also when it fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::{Command, Output};

use postgres::config::Host;
use postgres::NoTls;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");

/// The cluster to test against; failing, never skipping, when it is not given.
fn test_dsn() -> String {
    match std::env::var("NLQ_TEST_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => panic!(
            "NLQ_TEST_DSN is not set: these tests need a PostgreSQL cluster with pg_nlq \
             installed. Run them through `make test-bridge`, which starts the project cluster \
             and sets NLQ_TEST_DSN (a libpq connection string without dbname)."
        ),
    }
}

/// A database created for one test and dropped when this guard goes out of scope.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    /// Creates `nlq_bridge_test_<pid>_<label>` from `template0` (so nothing is installed in
    /// it), optionally with pg_nlq, and runs `setup` in it.
    fn create(label: &str, with_extension: bool, setup: &str) -> ScratchDb {
        let name = format!("nlq_bridge_test_{}_{label}", std::process::id());
        let mut admin = admin_client();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a leftover scratch database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .expect("create the scratch database");
        let db = ScratchDb { name };
        let mut client = postgres::Client::connect(&db.dsn(), NoTls).expect("connect to it");
        if with_extension {
            client
                .batch_execute("SET client_min_messages = warning; CREATE EXTENSION pg_nlq")
                .expect("CREATE EXTENSION pg_nlq");
        }
        client.batch_execute(setup).expect("set up the schema");
        db
    }

    fn dsn(&self) -> String {
        format!("{} dbname={}", test_dsn(), self.name)
    }

    fn query_one_text(&self, sql: &str) -> String {
        let mut client = postgres::Client::connect(&self.dsn(), NoTls).expect("connect");
        client.query_one(sql, &[]).expect(sql).get(0)
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let dropped = postgres::Client::connect(&format!("{} dbname=postgres", test_dsn()), NoTls)
            .and_then(|mut admin| {
                admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
            });
        if let Err(e) = dropped {
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }
}

fn admin_client() -> postgres::Client {
    postgres::Client::connect(&format!("{} dbname=postgres", test_dsn()), NoTls)
        .expect("connect to the test cluster (NLQ_TEST_DSN) as an administrator")
}

/// Runs the binary with a clean environment for its settings.
fn bridge(args: &[&str], database_env: Option<&str>) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("NLQ_DATABASE_URL")
        .env_remove("NLQ_CONFIG")
        .env_remove("RUST_LOG");
    if let Some(dsn) = database_env {
        command.env("NLQ_DATABASE_URL", dsn);
    }
    command.output().expect("run pg-nlq-bridge")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn assert_success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "pg-nlq-bridge failed ({}):\n{}",
        output.status,
        stderr(output)
    );
    stdout(output)
}

/// Asserts a failure with exit code 1, nothing on stdout and `error[CODE]: ...` as the last
/// line of stderr; returns that line.
fn assert_failure(output: &Output, code: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    assert_eq!(stdout(output), "");
    let stderr = stderr(output);
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with(&format!("error[{code}]: ")),
        "expected error[{code}], stderr:\n{stderr}"
    );
    last
}

const SHOP: &str = "
    CREATE SCHEMA shop;
    COMMENT ON SCHEMA shop IS 'Test shop';
    CREATE TYPE shop.order_status AS ENUM ('new', 'paid');
    CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL);
    COMMENT ON TABLE shop.customers IS 'People who buy';
    CREATE TABLE shop.orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer_id bigint NOT NULL REFERENCES shop.customers (id),
        status shop.order_status NOT NULL DEFAULT 'new'
    );
    INSERT INTO shop.customers VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger');
    INSERT INTO shop.orders (customer_id, status) VALUES (1, 'paid'), (1, 'new'), (3, 'paid');
    ANALYZE;
";

#[test]
fn summary_of_a_database() {
    let db = ScratchDb::create("summary", true, SHOP);
    let summary = assert_success(&bridge(&["snapshot", "--dsn", &db.dsn()], None));

    let mut lines = summary.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("database {} as ", db.name)),
        "{summary}"
    );
    let fingerprint = db.query_one_text("SELECT nlq_schema_fingerprint()");
    assert_eq!(
        lines.next(),
        Some(format!("fingerprint {fingerprint}").as_str())
    );
    assert_eq!(
        lines.next(),
        Some("2 schemas, 2 relations; types: 1 enum, 0 domains, 0 composites, 0 ranges")
    );
    let shop = &summary[summary.find("\nschema shop").expect("a shop section") + 1..];
    assert_eq!(
        shop,
        "\
schema shop -- Test shop
  table shop.customers, ~3 rows -- People who buy
    id bigint PK
    name text
  table shop.orders, ~3 rows
    id bigint PK
    customer_id bigint FK -> shop.customers.id
    status shop.order_status
"
    );
}

#[test]
fn json_document_and_options() {
    let db = ScratchDb::create("json", true, SHOP);

    // the server from the environment this time, and the database by name
    let output = bridge(&["snapshot", "--json", "--db", &db.name], Some(&db.dsn()));
    let document: Value = serde_json::from_str(&assert_success(&output)).expect("valid JSON");
    assert_eq!(document["format_version"], 1);
    assert_eq!(document["database"], db.name.as_str());
    assert_eq!(
        document["options"],
        json!({"schemas": null, "statistics": true})
    );
    let names: Vec<&str> = document["relations"]
        .as_array()
        .expect("relations")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["customers", "orders"]);
    let customers = &document["relations"][0];
    assert_eq!(customers["comment"], "People who buy");
    assert_eq!(customers["primary_key"]["columns"], json!(["id"]));
    assert!(customers["columns"][1]["stats"].is_object(), "{customers}");
    assert_eq!(
        document["relations"][1]["foreign_keys"][0]["references"],
        json!({"schema": "shop", "table": "customers", "columns": ["id"]})
    );
    assert_eq!(
        document["types"]["enums"][0]["labels"],
        json!(["new", "paid"])
    );

    let output = bridge(
        &[
            "snapshot",
            "--dsn",
            &db.dsn(),
            "--schema",
            "shop",
            "--no-stats",
            "--json",
        ],
        None,
    );
    let document: Value = serde_json::from_str(&assert_success(&output)).expect("valid JSON");
    assert_eq!(
        document["options"],
        json!({"schemas": ["shop"], "statistics": false})
    );
    assert_eq!(
        document["schemas"],
        json!([{"name": "shop", "comment": "Test shop"}])
    );
    let stats: Vec<&Value> = document["relations"]
        .as_array()
        .expect("relations")
        .iter()
        .flat_map(|r| r["columns"].as_array().expect("columns"))
        .map(|c| &c["stats"])
        .collect();
    assert_eq!(stats.len(), 5);
    assert!(stats.iter().all(|s| s.is_null()), "{stats:?}");
}

#[test]
fn an_unknown_schema_is_an_invalid_argument() {
    let db = ScratchDb::create("unknown_schema", true, SHOP);
    let output = bridge(
        &["snapshot", "--dsn", &db.dsn(), "--schema", "nosuch"],
        None,
    );
    let line = assert_failure(&output, "INVALID_ARGUMENT");
    assert!(line.contains("schema does not exist: nosuch"), "{line}");
    // the code is said once
    assert_eq!(line.matches("INVALID_ARGUMENT").count(), 1, "{line}");
}

#[test]
fn database_without_the_extension() {
    let db = ScratchDb::create("no_extension", false, "CREATE TABLE t (id int)");
    let output = bridge(&["snapshot", "--dsn", &db.dsn()], None);
    let line = assert_failure(&output, "EXTENSION_MISSING");
    assert_eq!(
        line,
        format!(
            "error[EXTENSION_MISSING]: the pg_nlq extension is not installed in database \"{}\": \
             run `CREATE EXTENSION pg_nlq` in that database",
            db.name
        )
    );
}

#[test]
fn unreachable_server_without_leaking_the_password() {
    // the test cluster's host and user, a port nothing listens on, and a password
    let config: postgres::Config = test_dsn().parse().expect("NLQ_TEST_DSN parses");
    let host = match config
        .get_hosts()
        .first()
        .expect("NLQ_TEST_DSN names a host")
    {
        Host::Tcp(name) => name.clone(),
        Host::Unix(path) => path.display().to_string(),
    };
    let mut dsn = format!("host={} port=1", quote(&host));
    if let Some(user) = config.get_user() {
        dsn.push_str(&format!(" user={}", quote(user)));
    }
    dsn.push_str(" password=hunter2-must-not-leak dbname=postgres");

    let output = bridge(&["snapshot", "--dsn", &dsn], None);
    let line = assert_failure(&output, "CONNECTION_ERROR");
    assert!(line.contains("could not connect to host="), "{line}");
    assert!(line.contains("port=1 "), "{line}");
    assert!(line.contains("password=***"), "{line}");
    assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
}

/// A libpq conninfo value in single quotes.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[test]
fn no_database_is_a_config_error() {
    let output = bridge(&["snapshot"], None);
    let line = assert_failure(&output, "CONFIG_ERROR");
    assert_eq!(
        line,
        "error[CONFIG_ERROR]: no database given: pass --dsn <conninfo-or-URL>, or --config \
         <PATH> (or set NLQ_CONFIG or NLQ_DATABASE_URL) and --db <NAME>"
    );
}

/// NLQ_DATABASE_URL means a server for `snapshot` as for every command: its databases are
/// discovered, `--db` picks one, and without `--db` the message names the flag.
#[test]
fn the_environment_names_a_server() {
    let db = ScratchDb::create("env_server", true, SHOP);
    let output = bridge(&["snapshot"], Some(&db.dsn()));
    let line = assert_failure(&output, "INVALID_ARGUMENT");
    assert!(line.contains("say which one with `--db`"), "{line}");
    assert!(line.contains(&db.name), "{line}");
    assert!(!line.contains("`database`"), "{line}");

    let summary = assert_success(&bridge(&["snapshot", "--db", &db.name], Some(&db.dsn())));
    assert!(
        summary.starts_with(&format!("database {} as ", db.name)),
        "{summary}"
    );

    let output = bridge(&["snapshot", "--db", "nlq_no_such_db"], Some(&db.dsn()));
    let line = assert_failure(&output, "UNKNOWN_DATABASE");
    assert!(line.contains("nlq_no_such_db"), "{line}");
}

/// `--config` and `--db` as every other command takes them; `--dsn` is the alternative.
#[test]
fn a_configuration_and_a_database_name() {
    let db = ScratchDb::create("config", true, SHOP);
    let dir = std::env::temp_dir().join(format!("nlq-snapshot-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.toml");
    let url = format!("{} dbname=postgres", test_dsn());
    std::fs::write(
        &path,
        format!(
            "[[servers]]\nname = \"t\"\nurl = {url:?}\ndatabases = [{:?}]\n",
            db.name
        ),
    )
    .unwrap();
    let config = path.to_str().unwrap();
    // the only database of the configuration, with or without --db
    for args in [
        vec!["snapshot", "--config", config, "--json"],
        vec!["snapshot", "--config", config, "--db", &db.name, "--json"],
    ] {
        let document: Value =
            serde_json::from_str(&assert_success(&bridge(&args, None))).expect("valid JSON");
        assert_eq!(document["database"], db.name.as_str(), "{args:?}");
    }
    // --dsn is one database without a configuration: not both
    let dsn = db.dsn();
    let output = bridge(&["snapshot", "--config", config, "--dsn", &dsn], None);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("--dsn"), "{}", stderr(&output));
    // the old spelling still reads one database
    let output = bridge(&["snapshot", "--database", &dsn, "--json"], None);
    let document: Value = serde_json::from_str(&assert_success(&output)).expect("valid JSON");
    assert_eq!(document["database"], db.name.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help() {
    let top = assert_success(&bridge(&["--help"], None));
    assert!(top.contains("Usage: pg-nlq-bridge <COMMAND>"), "{top}");
    assert!(top.contains("snapshot"), "{top}");
    let snapshot = assert_success(&bridge(&["snapshot", "--help"], None));
    for option in [
        "--dsn <DSN>",
        "--config <PATH>",
        "--db <NAME>",
        "--schema <NAME>",
        "--no-stats",
        "--json",
    ] {
        assert!(snapshot.contains(option), "{option} in:\n{snapshot}");
    }
}

#[test]
fn a_look_alike_function_earlier_on_the_search_path_is_not_called() {
    // The superuser's "$user" schema comes before public on the default search_path.
    let db = ScratchDb::create(
        "shadow",
        true,
        "CREATE SCHEMA postgres; \
         CREATE FUNCTION postgres.nlq_schema_snapshot(text[], boolean) RETURNS jsonb \
         LANGUAGE sql AS $$ SELECT '{\"shadowed\": true}'::jsonb $$",
    );
    let output = bridge(&["snapshot", "--json", "--dsn", &db.dsn()], None);
    let document: Value = serde_json::from_str(&assert_success(&output)).expect("valid JSON");
    assert_eq!(document["format_version"], 1, "{document}");
    assert!(document.get("shadowed").is_none(), "{document}");
}
