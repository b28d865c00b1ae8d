//! The README is tested: what it shows must be what the software does.
//!
//! - **SQL examples.** Every ```` ```sql ```` block of the README starts with
//!   `-- database: NAME` (a fixture database) and is run there, statement by statement, in one
//!   transaction that is rolled back (so a block may set things up). What a statement is shown
//!   to return is checked:
//!   - a comment after the `;` on the statement's own line is its single value
//!     (`SELECT nlq_validate('...')->>'code';   -- NOT_A_QUERY`);
//!   - `-- {...}` lines right after the statement are its JSON result: the same keys exactly,
//!     the same values, except that an array ending in `"..."` shows only its first elements
//!     and the planner's estimates and timings (`estimated_cost`, `estimated_rows`,
//!     `elapsed_ms`) need only be numbers;
//!   - `-- ERROR:  message` (and `-- DETAIL:  ...`) lines: the statement fails with exactly
//!     that message (and detail);
//!   - `-- ` lines that form a psql table (a header, a `---+---` rule, rows): the same columns
//!     and rows.
//!
//!   A query shown without a result must still return at least one row.
//! - **Codes.** The README's tables of codes (`### Codes`) list exactly the codes the
//!   software can emit: the extension's `Code` (read from `pg_nlq_ext/src/codes.rs`, which the
//!   bridge cannot link), the bridge's `ErrorCode::ALL` (`mcp-bridge/src/code.rs`), to which
//!   `BridgeError::code()` maps.
//! - **MCP client snippets** set every environment variable the README's example
//!   configuration needs.
//!
//! The SQL test needs the fixtures (`make fixtures`) and `NLQ_TEST_DSN` (a libpq connection
//! string of a superuser without dbname), as `make test-bridge` sets it; the others read files.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use postgres::{Client, NoTls, SimpleQueryMessage};
use serde_json::Value;

const FIXTURE_DATABASES: [&str; 3] = ["nlq_small", "nlq_medium", "nlq_large"];
/// Keys whose values are the planner's estimates or timings: shown as examples only.
const VARYING_KEYS: [&str; 3] = ["estimated_cost", "estimated_rows", "elapsed_ms"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn readme() -> String {
    read("README.md")
}

// ------------------------------------------------------------------ fenced blocks

/// A fenced block: its language, the line of its first line of content, its lines.
#[derive(Debug)]
struct Fence {
    lang: String,
    line: usize,
    lines: Vec<String>,
}

fn fences(markdown: &str) -> Vec<Fence> {
    let mut out = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.take() {
            None => {
                if let Some(lang) = trimmed.strip_prefix("```") {
                    open = Some(Fence {
                        lang: lang.trim().to_string(),
                        line: i + 2,
                        lines: Vec::new(),
                    });
                }
            }
            Some(mut fence) => {
                if trimmed.starts_with("```") {
                    out.push(fence);
                } else {
                    fence.lines.push(line.to_string());
                    open = Some(fence);
                }
            }
        }
    }
    assert!(open.is_none(), "README.md: a fenced block is not closed");
    out
}

// ------------------------------------------------------------------ SQL examples

/// What a statement is shown to return.
#[derive(Debug, Clone, PartialEq)]
enum Shown {
    /// Nothing: it must succeed (and a query must return a row).
    Nothing,
    /// The single value, in text form.
    Value(String),
    Json(Value),
    Error {
        message: String,
        detail: Option<String>,
    },
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

#[derive(Debug)]
struct Statement {
    line: usize,
    sql: String,
    shown: Shown,
}

#[derive(Debug)]
struct SqlExample {
    line: usize,
    database: String,
    statements: Vec<Statement>,
}

/// Where a `--` comment starts outside string literals and quoted identifiers.
fn comment_start(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'-' && bytes.get(i + 1) == Some(&b'-') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The text of a comment line (`-- text` → `text`), `None` for other lines.
fn comment_text(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("--")?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn is_rule(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && line.contains('-') && line.chars().all(|c| c == '-' || c == '+')
}

fn table_cells(line: &str) -> Vec<String> {
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// What the comment lines after a statement show, or `None` when they are prose.
fn parse_shown(lines: &[&str], at: usize) -> Result<Option<Shown>, String> {
    let Some(first) = lines.first() else {
        return Ok(None);
    };
    if first.trim_start().starts_with('{') {
        let text = lines.join("\n");
        return serde_json::from_str(&text)
            .map(|v| Some(Shown::Json(v)))
            .map_err(|e| format!("README.md line {at}: the result shown is not JSON ({e})"));
    }
    if let Some(message) = first.strip_prefix("ERROR:") {
        let mut detail = None;
        for line in &lines[1..] {
            if let Some(d) = line.strip_prefix("DETAIL:") {
                detail = Some(d.trim().to_string());
            }
        }
        return Ok(Some(Shown::Error {
            message: message.trim().to_string(),
            detail,
        }));
    }
    if lines.len() >= 2 && is_rule(lines[1]) {
        // rows: the lines with as many cells as the header, up to a `(N rows)` footer or prose
        let columns = table_cells(lines[0]);
        let rows = lines[2..]
            .iter()
            .map(|l| table_cells(l))
            .take_while(|cells| cells.len() == columns.len() && columns.len() > 1)
            .collect();
        return Ok(Some(Shown::Table { columns, rows }));
    }
    Ok(None)
}

/// The README's SQL examples, or what is wrong with their marking.
fn sql_examples(markdown: &str) -> Result<Vec<SqlExample>, String> {
    let mut out = Vec::new();
    for fence in fences(markdown).into_iter().filter(|f| f.lang == "sql") {
        let database = fence
            .lines
            .first()
            .and_then(|l| comment_text(l))
            .and_then(|t| t.strip_prefix("database:"))
            .map(|d| d.trim().to_string())
            .ok_or_else(|| {
                format!(
                    "README.md line {}: a ```sql block must start with `-- database: NAME` (one \
                     of {FIXTURE_DATABASES:?}), the fixture database it runs in",
                    fence.line
                )
            })?;
        if !FIXTURE_DATABASES.contains(&database.as_str()) {
            return Err(format!(
                "README.md line {}: unknown database {database:?} (one of {FIXTURE_DATABASES:?})",
                fence.line
            ));
        }
        let mut statements: Vec<Statement> = Vec::new();
        let mut buffer: Vec<String> = Vec::new();
        let mut buffer_line = 0;
        // comment lines right after the last statement, not yet read as its result
        let mut after: Vec<&str> = Vec::new();
        let mut after_line = 0;
        let finish = |statements: &mut Vec<Statement>,
                      after: &mut Vec<&str>,
                      at: usize|
         -> Result<(), String> {
            if let (Some(last), false) = (statements.last_mut(), after.is_empty()) {
                if let Some(shown) = parse_shown(after, at)? {
                    if last.shown != Shown::Nothing {
                        return Err(format!(
                            "README.md line {at}: a statement shows two results"
                        ));
                    }
                    last.shown = shown;
                }
            }
            after.clear();
            Ok(())
        };
        for (i, line) in fence.lines.iter().enumerate().skip(1) {
            let at = fence.line + i;
            if line.trim().is_empty() {
                finish(&mut statements, &mut after, after_line)?;
                continue;
            }
            if buffer.is_empty() {
                if let Some(text) = comment_text(line) {
                    if after.is_empty() {
                        after_line = at;
                    }
                    after.push(text);
                    continue;
                }
                finish(&mut statements, &mut after, after_line)?;
                buffer_line = at;
            }
            let (code, comment) = match comment_start(line) {
                Some(c) => (&line[..c], Some(line[c + 2..].trim())),
                None => (line.as_str(), None),
            };
            buffer.push(line.clone());
            if code.trim_end().ends_with(';') {
                let shown = match comment {
                    Some(c) if !c.is_empty() => Shown::Value(c.to_string()),
                    _ => Shown::Nothing,
                };
                statements.push(Statement {
                    line: buffer_line,
                    sql: buffer.join("\n"),
                    shown,
                });
                buffer.clear();
            }
        }
        finish(&mut statements, &mut after, after_line)?;
        if !buffer.is_empty() {
            return Err(format!(
                "README.md line {buffer_line}: a statement does not end with `;`"
            ));
        }
        if statements.is_empty() {
            return Err(format!("README.md line {}: no statement", fence.line));
        }
        out.push(SqlExample {
            line: fence.line,
            database,
            statements,
        });
    }
    Ok(out)
}

/// Whether `actual` is what `shown` shows; the reason when it is not.
fn compare(shown: &Value, actual: &Value, path: &str) -> Result<(), String> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match (shown, actual) {
        (Value::Object(s), Value::Object(a)) => {
            let sk: BTreeSet<&String> = s.keys().collect();
            let ak: BTreeSet<&String> = a.keys().collect();
            if sk != ak {
                return Err(format!("{path}: keys shown {sk:?}, keys returned {ak:?}"));
            }
            for (k, v) in s {
                compare(v, &a[k], &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(s), Value::Array(a)) => {
            let (prefix, open) = match s.last() {
                Some(Value::String(last)) if last == "..." => (&s[..s.len() - 1], true),
                _ => (&s[..], false),
            };
            if a.len() < prefix.len() || (!open && a.len() != prefix.len()) {
                return Err(format!(
                    "{path}: {} elements shown{}, {} returned: {actual}",
                    prefix.len(),
                    if open { " and more" } else { "" },
                    a.len()
                ));
            }
            for (i, (s, a)) in prefix.iter().zip(a).enumerate() {
                compare(s, a, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(_), Value::Number(_)) if VARYING_KEYS.contains(&key) => Ok(()),
        _ if shown == actual => Ok(()),
        _ => Err(format!("{path}: shown {shown}, returned {actual}")),
    }
}

fn test_dsn() -> String {
    match std::env::var("NLQ_TEST_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => panic!(
            "NLQ_TEST_DSN is not set: this test runs the README's SQL against the fixture \
             databases. Run it through `make test-bridge` (after `make fixtures`), which sets \
             NLQ_TEST_DSN (a libpq connection string of a superuser without dbname)."
        ),
    }
}

fn connect(db: &str) -> Client {
    Client::connect(&format!("{} dbname={db}", test_dsn()), NoTls).unwrap_or_else(|e| {
        panic!("cannot connect to fixture database {db} ({e}); load them with `make fixtures`")
    })
}

/// Columns and rows (NULL as the empty string, as psql shows it).
fn rows_of(messages: &[SimpleQueryMessage]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(desc) => {
                columns = desc.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("").to_string())
                        .collect(),
                );
            }
            _ => {}
        }
    }
    (columns, rows)
}

fn is_query(sql: &str) -> bool {
    let code: String = sql
        .lines()
        .filter(|l| comment_text(l).is_none())
        .collect::<Vec<_>>()
        .join(" ");
    let first = code
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    ["SELECT", "WITH", "TABLE", "VALUES"].contains(&first.as_str())
}

/// Runs one statement and checks what the README shows; the failure, if any.
fn check_statement(client: &mut Client, st: &Statement) -> Result<(), String> {
    client
        .batch_execute("SAVEPOINT readme_example")
        .map_err(|e| e.to_string())?;
    let outcome = client.simple_query(&st.sql);
    let checked = match (&st.shown, outcome) {
        (Shown::Error { message, detail }, Err(err)) => {
            let db = err
                .as_db_error()
                .ok_or_else(|| format!("not a server error: {err}"))?;
            if db.message() != message {
                Err(format!(
                    "ERROR shown {message:?}, raised {:?}",
                    db.message()
                ))
            } else if detail.is_some() && db.detail() != detail.as_deref() {
                Err(format!("DETAIL shown {detail:?}, raised {:?}", db.detail()))
            } else {
                Ok(())
            }
        }
        (Shown::Error { message, .. }, Ok(_)) => {
            Err(format!("shown to fail with {message:?}, but it succeeded"))
        }
        (_, Err(err)) => Err(format!(
            "failed: {}",
            err.as_db_error()
                .map(|d| format!(
                    "{} (SQLSTATE {}; DETAIL {:?})",
                    d.message(),
                    d.code().code(),
                    d.detail()
                ))
                .unwrap_or_else(|| err.to_string())
        )),
        (shown, Ok(messages)) => {
            let (columns, rows) = rows_of(&messages);
            let single = || -> Result<&str, String> {
                match rows.as_slice() {
                    [row] if row.len() == 1 => Ok(row[0].as_str()),
                    _ => Err(format!(
                        "one value shown, {} rows of {} columns returned",
                        rows.len(),
                        columns.len()
                    )),
                }
            };
            match shown {
                Shown::Nothing if is_query(&st.sql) && rows.is_empty() => {
                    Err("returned no row".to_string())
                }
                Shown::Nothing => Ok(()),
                Shown::Value(v) => single().and_then(|got| {
                    if got.trim() == v {
                        Ok(())
                    } else {
                        Err(format!("shown {v:?}, returned {got:?}"))
                    }
                }),
                Shown::Json(v) => single().and_then(|got| {
                    let actual: Value = serde_json::from_str(got)
                        .map_err(|e| format!("returned no JSON ({e}): {got}"))?;
                    compare(v, &actual, "result").map_err(|e| format!("{e}\nreturned: {got}"))
                }),
                Shown::Table {
                    columns: want_columns,
                    rows: want_rows,
                } => {
                    let got_rows: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| r.iter().map(|c| c.trim().to_string()).collect())
                        .collect();
                    if &columns != want_columns {
                        Err(format!(
                            "columns shown {want_columns:?}, returned {columns:?}"
                        ))
                    } else if &got_rows != want_rows {
                        Err(format!("rows shown {want_rows:?}, returned {got_rows:?}"))
                    } else {
                        Ok(())
                    }
                }
                Shown::Error { .. } => unreachable!("handled above"),
            }
        }
    };
    // what a statement did stays for the next ones of its block, unless it failed
    let end = match &st.shown {
        Shown::Error { .. } => {
            "ROLLBACK TO SAVEPOINT readme_example; RELEASE SAVEPOINT readme_example"
        }
        _ if checked.is_err() => {
            "ROLLBACK TO SAVEPOINT readme_example; RELEASE SAVEPOINT readme_example"
        }
        _ => "RELEASE SAVEPOINT readme_example",
    };
    client.batch_execute(end).map_err(|e| e.to_string())?;
    checked
}

#[test]
fn every_sql_block_is_marked_with_its_database() {
    let examples = sql_examples(&readme()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        examples.len() >= 5,
        "only {} SQL examples found in README.md",
        examples.len()
    );
    // the results shown are read: the parser must see them
    let shown = examples
        .iter()
        .flat_map(|e| &e.statements)
        .filter(|s| s.shown != Shown::Nothing)
        .count();
    assert!(shown >= 5, "only {shown} results shown in README.md's SQL");
}

#[test]
fn the_example_parser_reads_every_form_of_result() {
    let markdown = "```sql\n-- database: nlq_small\n-- prose about the first query\n\
        SELECT 1;   -- 1\nSELECT '{\"a\": 1}'::jsonb;\n-- {\"a\": 1}\n\n\
        SELECT 1/0;\n-- ERROR:  division by zero\n\
        SELECT 1 AS a, 2 AS b;\n--  a | b\n-- ---+---\n--  1 | 2\n\
        -- prose, separated by nothing but still not a result\n\
        SELECT 'x -- y';\n```\n";
    let examples = sql_examples(markdown).unwrap();
    let shown: Vec<&Shown> = examples[0].statements.iter().map(|s| &s.shown).collect();
    assert_eq!(
        shown,
        vec![
            &Shown::Value("1".into()),
            &Shown::Json(serde_json::json!({"a": 1})),
            &Shown::Error {
                message: "division by zero".into(),
                detail: None
            },
            &Shown::Table {
                columns: vec!["a".into(), "b".into()],
                rows: vec![vec!["1".into(), "2".into()]]
            },
            &Shown::Nothing,
        ]
    );
    assert!(sql_examples("```sql\nSELECT 1;\n```\n").is_err());
    assert!(sql_examples("```sql\n-- database: shop\nSELECT 1;\n```\n").is_err());
    assert!(sql_examples("```sql\n-- database: nlq_small\nSELECT 1\n```\n").is_err());
}

#[test]
fn shown_json_is_compared_by_keys_and_values() {
    let shown = serde_json::json!({"code": "OK", "list": ["a", "..."], "estimated_cost": 1.5});
    let same = serde_json::json!({"code": "OK", "list": ["a", "b"], "estimated_cost": 9.0});
    assert!(compare(&shown, &same, "r").is_ok());
    for wrong in [
        serde_json::json!({"code": "OK", "list": ["a"], "estimated_cost": 9.0, "extra": 1}),
        serde_json::json!({"code": "NO", "list": ["a"], "estimated_cost": 9.0}),
        serde_json::json!({"code": "OK", "list": ["b"], "estimated_cost": 9.0}),
        serde_json::json!({"code": "OK", "list": [], "estimated_cost": 9.0}),
        serde_json::json!({"code": "OK", "list": ["a"], "estimated_cost": null}),
    ] {
        assert!(compare(&shown, &wrong, "r").is_err(), "{wrong}");
    }
    let closed = serde_json::json!({"rows": [[1], [2]]});
    assert!(compare(&closed, &serde_json::json!({"rows": [[1], [2], [3]]}), "r").is_err());
}

#[test]
fn every_sql_example_runs_against_the_fixtures_as_shown() {
    let examples = sql_examples(&readme()).unwrap_or_else(|e| panic!("{e}"));
    let mut failures = Vec::new();
    for example in &examples {
        let mut client = connect(&example.database);
        client.batch_execute("BEGIN").unwrap();
        for st in &example.statements {
            if let Err(e) = check_statement(&mut client, st) {
                failures.push(format!(
                    "README.md line {} (database {}):\n{}\n=> {e}",
                    st.line, example.database, st.sql
                ));
            }
        }
        client.batch_execute("ROLLBACK").unwrap();
        assert!(example.line > 0);
    }
    assert!(
        failures.is_empty(),
        "{} README SQL example(s) do not do what the README shows:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ------------------------------------------------------------------ codes

/// The strings of the `{prefix}Variant... => "CODE"` match arms of a source file.
fn arm_strings(source: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let Some(at) = line.find(prefix) else {
            continue;
        };
        let Some(arrow) = line[at..].find("=> \"") else {
            continue;
        };
        let code: String = line[at + arrow + 4..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        if !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            out.insert(code);
        }
    }
    out
}

/// The codes in the first column of the tables under `heading` (up to the next heading of
/// the same or a higher level).
fn listed_codes(markdown: &str, heading: &str) -> BTreeSet<String> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut inside = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.starts_with('#') {
            let this = line.chars().take_while(|c| *c == '#').count();
            if line.trim() == heading {
                inside = true;
                continue;
            }
            if inside && this <= level {
                break;
            }
        }
        if !inside {
            continue;
        }
        if let Some(cell) = line.strip_prefix("| `") {
            let code: String = cell.chars().take_while(|c| *c != '`').collect();
            if code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                out.insert(code);
            }
        }
    }
    assert!(
        !out.is_empty(),
        "README.md has no code table under {heading:?}"
    );
    out
}

fn same_sets(listed: &BTreeSet<String>, emitted: &BTreeSet<String>, what: &str) {
    let missing: Vec<&String> = emitted.difference(listed).collect();
    let extra: Vec<&String> = listed.difference(emitted).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: codes the software emits but the README does not list: {missing:?}; codes the \
         README lists but nothing emits: {extra:?}"
    );
}

#[test]
fn the_readme_lists_every_code_of_the_extension() {
    let emitted = arm_strings(&read("pg_nlq_ext/src/codes.rs"), "Code::");
    assert!(emitted.contains("OK") && emitted.contains("POLICY_ERROR"));
    same_sets(
        &listed_codes(&readme(), "### Codes of pg_nlq"),
        &emitted,
        "pg_nlq's codes (pg_nlq_ext/src/codes.rs)",
    );
}

#[test]
fn the_readme_lists_every_code_of_the_bridge() {
    let all: BTreeSet<String> = mcp_bridge::answer::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    // ErrorCode::ALL holds every code ErrorCode::as_str can give
    same_sets(
        &all,
        &arm_strings(&read("mcp-bridge/src/code.rs"), "ErrorCode::"),
        "ErrorCode::ALL against ErrorCode::as_str (mcp-bridge/src/code.rs)",
    );
    // BridgeError::code() maps to ErrorCode (mcp-bridge/src/error.rs): no code of its own
    let bridge_error = read("mcp-bridge/src/error.rs");
    assert!(
        arm_strings(&bridge_error, "BridgeError::").is_empty(),
        "BridgeError::code must give ErrorCodes, not words of its own"
    );
    let emitted = all;
    same_sets(
        &listed_codes(&readme(), "### Codes of the bridge"),
        &emitted,
        "the bridge's codes (ErrorCode::ALL, BridgeError::code)",
    );
}

#[test]
fn code_tables_are_read_from_the_first_column_only() {
    let md = "# A\n### Codes of x\n| code | meaning |\n|---|---|\n| `ONE` | is `NOT_A_CODE` |\n\
              | `TWO` | b |\n### Other\n| `THREE` | c |\n";
    assert_eq!(
        listed_codes(md, "### Codes of x"),
        ["ONE", "TWO"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        arm_strings(
            "X::A => \"A_B\",\n X::C => \"lower\",\n Y::D => \"D\",\n X::E(_) => \"E\",",
            "X::"
        ),
        ["A_B", "E"].iter().map(|s| s.to_string()).collect()
    );
}

// ------------------------------------------------------------------ MCP client snippets

/// `${VAR}`s of `text` without a default (`${VAR:-default}` needs nothing).
fn required_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for piece in text.split("${").skip(1) {
        let Some(end) = piece.find('}') else { continue };
        let inner = &piece[..end];
        if !inner.contains(":-") {
            out.insert(inner.to_string());
        }
    }
    out
}

#[test]
fn mcp_client_snippets_set_every_variable_the_example_configuration_needs() {
    let blocks = fences(&readme());
    let configs: Vec<String> = blocks
        .iter()
        .filter(|f| f.lang == "toml")
        .map(|f| f.lines.join("\n"))
        .collect();
    assert!(!configs.is_empty(), "README.md shows no configuration");
    let mut needed = BTreeSet::new();
    for config in &configs {
        let live: String = config
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        needed.extend(required_vars(&live));
        let value: toml::Value = toml::from_str(config).expect("the README's TOML parses");
        if value.get("model").and_then(|m| m.get("api_key")).is_none() {
            needed.insert("OPENAI_API_KEY".to_string());
        }
    }
    assert!(needed.contains("NLQ_BRIDGE_PASSWORD"), "{needed:?}");
    let snippets: Vec<Value> = blocks
        .iter()
        .filter(|f| f.lang == "json")
        .map(|f| serde_json::from_str(&f.lines.join("\n")).expect("the README's JSON parses"))
        .filter(|v: &Value| v.get("mcpServers").is_some())
        .collect();
    assert!(
        !snippets.is_empty(),
        "README.md shows no MCP client snippet"
    );
    for snippet in &snippets {
        let servers = snippet["mcpServers"]
            .as_object()
            .expect("mcpServers is an object");
        for (name, server) in servers {
            let env: BTreeSet<String> = server["env"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let missing: Vec<&String> = needed.difference(&env).collect();
            assert!(
                missing.is_empty(),
                "the MCP client snippet {name:?} does not set {missing:?}, which the README's \
                 example configuration needs"
            );
        }
    }
}

#[test]
fn required_variables_leave_out_defaults() {
    assert_eq!(
        required_vars("a ${X} b ${Y:-y} $$ ${Z}"),
        ["X", "Z"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
}

#[test]
fn unix_socket_urls_shown_connect_through_a_socket() {
    let urls: Vec<String> = fences(&readme())
        .iter()
        .flat_map(|f| f.lines.clone())
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("url = \"")?;
            Some(rest.trim_end_matches('"').to_string())
        })
        .filter(|u| u.contains("/var/run/postgresql"))
        .collect();
    assert!(
        urls.len() >= 2,
        "README.md shows no Unix-socket server URL in both forms: {urls:?}"
    );
    for url in urls {
        let config = mcp_bridge::config::DatabaseConfig::parse(&url, "the README's URL")
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let pg = config.pg_config();
        assert!(
            pg.get_hosts()
                .iter()
                .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_))),
            "{url}: {:?}",
            pg.get_hosts()
        );
        assert_eq!(pg.get_dbname(), Some("postgres"), "{url}");
        assert_eq!(pg.get_user(), Some("nlq_bridge"), "{url}");
    }
}
