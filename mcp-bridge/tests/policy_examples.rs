//! `sql/policy_examples.sql`, run with psql in a scratch database: without an example named it
//! changes nothing; with one it applies that example and nothing else; it never stores a
//! setting for a whole database (every role), and refuses an `allowed_relations` pattern that
//! matches nothing.
//!
//! Needs the project cluster (`NLQ_TEST_DSN`, a superuser's libpq connection string without
//! dbname) and psql (`NLQ_PSQL`, else `psql` on the PATH), as `make test-bridge` sets them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use postgres::{Client, NoTls};

const DB: &str = "nlq_policy_examples";
const ROLE: &str = "nlq_policy_examples_role";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("sql/policy_examples.sql")
}

fn test_dsn() -> String {
    match std::env::var("NLQ_TEST_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => panic!(
            "NLQ_TEST_DSN is not set: this test runs sql/policy_examples.sql in a scratch \
             database of the project cluster. Run it through `make test-bridge`, which sets \
             NLQ_TEST_DSN (a superuser's libpq connection string without dbname) and NLQ_PSQL."
        ),
    }
}

fn connect(db: &str) -> Client {
    Client::connect(&format!("{} dbname={db}", test_dsn()), NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {db}: {e}"))
}

/// Every stored setting of the cluster: (role, database, name=value), "" for "all".
fn stored(client: &mut Client) -> BTreeSet<(String, String, String)> {
    client
        .query(
            "SELECT coalesce(r.rolname, ''), coalesce(d.datname, ''), s \
             FROM pg_db_role_setting x \
             LEFT JOIN pg_roles r ON r.oid = x.setrole \
             LEFT JOIN pg_database d ON d.oid = x.setdatabase, \
             unnest(x.setconfig) s",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// psql on the script in the scratch database, with these `-v` variables.
fn run(vars: &[(&str, &str)]) -> Run {
    let psql = std::env::var("NLQ_PSQL").unwrap_or_else(|_| "psql".to_string());
    let mut command = Command::new(&psql);
    command
        .arg("-X")
        .arg("-q")
        .arg(format!("{} dbname={DB}", test_dsn()))
        .arg("-v")
        .arg(format!("role={ROLE}"));
    for (name, value) in vars {
        command.arg("-v").arg(format!("{name}={value}"));
    }
    let out = command
        .arg("-f")
        .arg(script())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {psql} (set NLQ_PSQL to psql's path): {e}"));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The example names the script declares (`\set examples '...'`).
fn example_names(text: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.starts_with("\\set examples '"))
        .expect("policy_examples.sql declares its examples with \\set examples '...'");
    line.trim_start_matches("\\set examples '")
        .trim_end_matches('\'')
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_script_never_stores_a_setting_for_every_role() {
    let text = std::fs::read_to_string(script()).unwrap();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("--").next().unwrap_or("").to_ascii_uppercase();
        assert!(
            !code.contains("ALTER DATABASE") && !code.contains("ROLE ALL"),
            "sql/policy_examples.sql line {}: a setting for every role: {line}",
            i + 1
        );
        if code.contains("ALTER ROLE") {
            assert!(
                code.contains("IN DATABASE"),
                "sql/policy_examples.sql line {}: a setting for the role in every database: \
                 {line}",
                i + 1
            );
        }
    }
    let names = example_names(&text);
    assert_eq!(names.len(), 11, "{names:?}");
    // each ALTER ROLE sits inside the \if of its own example, and sets that example's setting
    let mut stack: Vec<Option<String>> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if let Some(cond) = line.strip_prefix("\\if ") {
            stack.push(cond.trim().strip_prefix(":ex_").map(str::to_string));
        } else if line.starts_with("\\endif") {
            stack.pop();
        }
        if line.starts_with("ALTER ROLE") {
            let name = stack.iter().rev().find_map(Clone::clone);
            let name = name.unwrap_or_else(|| panic!("not inside an example's \\if: {line}"));
            assert!(names.contains(&name), "{name} is not a declared example");
            assert!(
                line.contains(&format!("SET pg_nlq.{name} =")),
                "the example {name} sets another setting: {line}"
            );
        }
    }
    assert!(stack.is_empty(), "unbalanced \\if / \\endif");
}

#[test]
fn applies_nothing_unless_an_example_is_named_and_then_only_that_one() {
    let text = std::fs::read_to_string(script()).unwrap();
    let names = example_names(&text);
    let mut admin = connect("postgres");
    // one statement a call: DROP/CREATE DATABASE cannot run in a multi-statement batch
    for sql in [
        format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"),
        format!("CREATE DATABASE {DB} TEMPLATE template0"),
        format!("DROP ROLE IF EXISTS {ROLE}"),
        format!("CREATE ROLE {ROLE} LOGIN"),
    ] {
        admin.batch_execute(&sql).unwrap();
    }
    let mut scratch = connect(DB);
    scratch.batch_execute("CREATE EXTENSION pg_nlq").unwrap();
    let before = stored(&mut admin);

    // the dry run: every example shown, nothing kept
    let dry = run(&[]);
    assert!(dry.ok, "the dry run failed: {}", dry.stderr);
    for name in &names {
        assert!(
            dry.stdout.contains(&format!("pg_nlq.{name}=")),
            "the dry run does not show {name}:\n{}",
            dry.stdout
        );
    }
    assert!(dry.stdout.contains("nothing was kept"), "{}", dry.stdout);
    assert_eq!(stored(&mut admin), before, "the dry run kept something");

    // refused: the old all-at-once switch, an unknown name
    for vars in [vec![("apply", "1")], vec![("example", "deny_relations")]] {
        let refused = run(&vars);
        assert!(!refused.ok, "{vars:?} was not refused: {}", refused.stdout);
        assert!(
            refused.stderr.contains("-v example=NAME") || refused.stderr.contains("choose one of"),
            "{vars:?}: {}",
            refused.stderr
        );
        assert_eq!(stored(&mut admin), before, "{vars:?} kept something");
    }

    // allowed_relations whose pattern matches nothing here: refused, nothing kept
    let refused = run(&[("example", "allowed_relations")]);
    assert!(!refused.ok, "reporting.* matching nothing was applied");
    assert!(
        refused.stderr.contains("is not applied") && refused.stderr.contains("matches no relation"),
        "{}",
        refused.stderr
    );
    assert_eq!(stored(&mut admin), before);
    scratch
        .batch_execute("CREATE SCHEMA reporting; CREATE VIEW reporting.daily AS SELECT 1 AS n")
        .unwrap();

    for name in &names {
        let applied = run(&[("example", name)]);
        assert!(applied.ok, "example {name} failed: {}", applied.stderr);
        let after = stored(&mut admin);
        let removed: Vec<_> = before.difference(&after).collect();
        let added: Vec<_> = after.difference(&before).collect();
        assert!(removed.is_empty(), "example {name} removed {removed:?}");
        assert_eq!(added.len(), 1, "example {name} added {added:?}");
        let (role, db, setting) = added[0];
        assert_eq!((role.as_str(), db.as_str()), (ROLE, DB), "example {name}");
        assert!(
            setting.starts_with(&format!("pg_nlq.{name}=")),
            "example {name} stored {setting}"
        );
        admin
            .batch_execute(&format!("ALTER ROLE {ROLE} IN DATABASE {DB} RESET ALL"))
            .unwrap();
    }

    // a pattern of the caller's choosing, matching a relation of the database
    let chosen = run(&[
        ("example", "allowed_relations"),
        ("allowed", "reporting.daily"),
    ]);
    assert!(chosen.ok, "{}", chosen.stderr);
    assert!(stored(&mut admin).contains(&(
        ROLE.to_string(),
        DB.to_string(),
        "pg_nlq.allowed_relations=reporting.daily".to_string()
    )));

    drop(scratch);
    admin
        .batch_execute(&format!("DROP DATABASE {DB} WITH (FORCE)"))
        .unwrap();
    admin.batch_execute(&format!("DROP ROLE {ROLE}")).unwrap();
    assert_eq!(stored(&mut admin), before);
}
