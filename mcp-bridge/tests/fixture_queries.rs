//! The fixture databases (`make fixtures`) against `fixtures/TEST_QUERIES.md` and the
//! schema-shape targets of issue 4.
//!
//! - Every case in the markdown (the only copy of the cases) is parsed strictly: a malformed
//!   entry, a duplicate id or fewer than 15 cases for a level of a database fails the test.
//! - Every expected SQL runs against its database: through `nlq_validate` and `nlq_run(sql, 100)`
//!   when the installed pg_nlq provides them, otherwise in a read-only transaction under a
//!   10 s statement timeout. It must return at least one row with a non-null value.
//! - The size and shape of each database (tables, schemas, views, materialized views, enums,
//!   domains, composite types, indexes, partitioned tables, comments, rows) is asserted from the
//!   catalogs, so the fixtures cannot silently shrink.
//!
//! Run through `make test-bridge` (or with `NLQ_TEST_DSN` set to a libpq connection string
//! without `dbname`) after `make fixtures`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use postgres::{Client, NoTls};
use serde_json::Value;

const DATABASES: [&str; 3] = ["nlq_small", "nlq_medium", "nlq_large"];
const LEVELS: [&str; 4] = ["simple", "medium", "complex", "advanced"];
const MIN_CASES_PER_LEVEL: usize = 15;

/// The cluster to test against; failing, never skipping, when it is not given.
fn test_dsn() -> String {
    match std::env::var("NLQ_TEST_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => panic!(
            "NLQ_TEST_DSN is not set: these tests need the project cluster with pg_nlq and the \
             fixture databases. Run them through `make test-bridge` (after `make fixtures`), \
             which starts the cluster and sets NLQ_TEST_DSN (a libpq connection string without \
             dbname)."
        ),
    }
}

fn connect(db: &str) -> Client {
    let dsn = format!("{} dbname={db}", test_dsn());
    Client::connect(&dsn, NoTls).unwrap_or_else(|e| {
        panic!(
            "cannot connect to fixture database {db} ({e}); load the fixtures with `make fixtures`"
        )
    })
}

// ------------------------------------------------------------------ the markdown

#[derive(Debug, Clone, PartialEq)]
struct Case {
    database: String,
    level: String,
    id: String,
    title: String,
    question_zh: String,
    question_en: String,
    sql: String,
    line: usize,
}

const ZH_PREFIX: &str = "    自然语言：";
const EN_PREFIX: &str = "    Question: ";
const SQL_PREFIX: &str = "    期望 SQL：";

/// Parses the cases of a TEST_QUERIES.md. Anything before the first `## ` heading is free
/// introduction; after it only database headings (`## nlq_x`), level headings (`### simple`
/// ...), blank lines and four-line case entries are allowed.
fn parse_cases(markdown: &str) -> Result<Vec<Case>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut cases: Vec<Case> = Vec::new();
    let mut ids = HashSet::new();
    let mut database: Option<String> = None;
    let mut level: Option<String> = None;
    let mut seen_levels: HashSet<(String, String)> = HashSet::new();
    let mut in_body = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        if let Some(name) = line.strip_prefix("## ") {
            let name = name.trim();
            if !DATABASES.contains(&name) {
                return Err(format!("line {n}: unknown database heading '## {name}' (expected one of {DATABASES:?})"));
            }
            database = Some(name.to_string());
            level = None;
            in_body = true;
        } else if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim();
            let db = database
                .clone()
                .ok_or_else(|| format!("line {n}: level heading before any database heading"))?;
            if !LEVELS.contains(&name) {
                return Err(format!(
                    "line {n}: unknown level '### {name}' (expected one of {LEVELS:?})"
                ));
            }
            if !seen_levels.insert((db.clone(), name.to_string())) {
                return Err(format!("line {n}: level '{name}' appears twice under {db}"));
            }
            level = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("* ") {
            let (db, lvl) = match (&database, &level) {
                (Some(d), Some(l)) => (d.clone(), l.clone()),
                _ => {
                    return Err(format!(
                        "line {n}: case outside a database and level section"
                    ))
                }
            };
            let (id, title) = rest
                .split_once(": ")
                .ok_or_else(|| format!("line {n}: expected '* ID: title'"))?;
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("line {n}: malformed case id '{id}'"));
            }
            if title.trim().is_empty() {
                return Err(format!("line {n}: case {id} has no title"));
            }
            if !ids.insert(id.to_string()) {
                return Err(format!("line {n}: duplicate case id {id}"));
            }
            let field = |offset: usize, prefix: &str, what: &str| -> Result<String, String> {
                let l = lines.get(i + offset).ok_or_else(|| {
                    format!("line {}: case {id} ends before its {what} line", n + offset)
                })?;
                let value = l
                    .strip_prefix(prefix)
                    .ok_or_else(|| {
                        format!(
                            "line {}: case {id}: expected '{}…' ({what})",
                            n + offset,
                            prefix.trim_start()
                        )
                    })?
                    .trim();
                if value.is_empty() {
                    return Err(format!("line {}: case {id}: empty {what}", n + offset));
                }
                Ok(value.to_string())
            };
            let question_zh = field(1, ZH_PREFIX, "Chinese question")?;
            let question_en = field(2, EN_PREFIX, "English question")?;
            let sql = field(3, SQL_PREFIX, "expected SQL")?;
            let sql = sql
                .strip_suffix(';')
                .ok_or_else(|| {
                    format!(
                        "line {}: case {id}: the expected SQL must end with ';'",
                        n + 3
                    )
                })?
                .trim_end()
                .to_string();
            if sql.contains(';') {
                return Err(format!(
                    "line {}: case {id}: the expected SQL must be a single statement",
                    n + 3
                ));
            }
            cases.push(Case {
                database: db,
                level: lvl,
                id: id.to_string(),
                title: title.trim().to_string(),
                question_zh,
                question_en,
                sql,
                line: n,
            });
            i += 4;
            continue;
        } else if in_body && !line.trim().is_empty() {
            return Err(format!(
                "line {n}: unexpected text in the cases section: '{line}'"
            ));
        }
        i += 1;
    }
    Ok(cases)
}

/// Cases per database and level, failing when one is below the minimum.
fn check_counts(cases: &[Case]) -> Result<BTreeMap<(String, String), usize>, String> {
    let mut counts = BTreeMap::new();
    for c in cases {
        *counts
            .entry((c.database.clone(), c.level.clone()))
            .or_insert(0) += 1;
    }
    let mut short = Vec::new();
    for db in DATABASES {
        for level in LEVELS {
            let n = counts
                .get(&(db.to_string(), level.to_string()))
                .copied()
                .unwrap_or(0);
            if n < MIN_CASES_PER_LEVEL {
                short.push(format!("{db}/{level}: {n}"));
            }
        }
    }
    if short.is_empty() {
        Ok(counts)
    } else {
        Err(format!(
            "fewer than {MIN_CASES_PER_LEVEL} cases for: {}",
            short.join(", ")
        ))
    }
}

fn load_cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/TEST_QUERIES.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let cases = parse_cases(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    check_counts(&cases).unwrap_or_else(|e| panic!("{path}: {e}"));
    cases
}

#[test]
fn test_queries_markdown_is_well_formed() {
    let cases = load_cases();
    assert!(cases.len() >= DATABASES.len() * LEVELS.len() * MIN_CASES_PER_LEVEL);
    for c in &cases {
        assert!(!c.title.is_empty() && !c.question_zh.is_empty() && !c.question_en.is_empty());
        assert!(
            c.sql
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("SELECT")
                || c.sql.trim_start().to_ascii_uppercase().starts_with("WITH"),
            "{} (line {}): the expected SQL should be a query",
            c.id,
            c.line
        );
    }
}

const SAMPLE: &str = "# Title\n\nIntro text.\n\n## nlq_small\n\n### simple\n\n* S-01: count customers\n    自然语言：有多少客户？\n    Question: How many customers are there?\n    期望 SQL：SELECT count(*) FROM customers;\n";

#[test]
fn parser_reads_the_documented_format() {
    let cases = parse_cases(SAMPLE).unwrap();
    assert_eq!(
        cases,
        vec![Case {
            database: "nlq_small".into(),
            level: "simple".into(),
            id: "S-01".into(),
            title: "count customers".into(),
            question_zh: "有多少客户？".into(),
            question_en: "How many customers are there?".into(),
            sql: "SELECT count(*) FROM customers".into(),
            line: 9,
        }]
    );
    assert!(check_counts(&cases)
        .unwrap_err()
        .contains("nlq_small/simple: 1"));
}

#[test]
fn parser_rejects_malformed_entries() {
    let bad = [
        // duplicate id
        format!("{SAMPLE}{}", &SAMPLE[SAMPLE.find("* S-01").unwrap()..]),
        // missing English question
        SAMPLE.replace("    Question: How many customers are there?\n", ""),
        // wrong SQL label
        SAMPLE.replace("期望 SQL：", "SQL："),
        // no trailing semicolon
        SAMPLE.replace("FROM customers;", "FROM customers"),
        // two statements
        SAMPLE.replace("FROM customers;", "FROM customers; DROP TABLE customers;"),
        // unknown level
        SAMPLE.replace("### simple", "### easy"),
        // unknown database
        SAMPLE.replace("## nlq_small", "## nlq_tiny"),
        // case before any level
        SAMPLE.replace("### simple\n", ""),
        // stray text between cases
        format!("{SAMPLE}some note\n"),
        // empty question
        SAMPLE.replace("有多少客户？", ""),
    ];
    for (k, text) in bad.iter().enumerate() {
        assert!(
            parse_cases(text).is_err(),
            "malformed sample {k} was accepted:\n{text}"
        );
    }
}

// ------------------------------------------------------------------ running the cases

/// True when pg_nlq in this database provides nlq_validate and nlq_run.
fn has_nlq_functions(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT count(DISTINCT p.proname) = 2 FROM pg_proc p
             JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
             JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'pg_nlq'
             WHERE p.proname IN ('nlq_validate', 'nlq_run')",
            &[],
        )
        .unwrap()
        .get(0)
}

fn any_non_null(rows: &[Value]) -> bool {
    rows.iter().any(|row| match row {
        Value::Array(values) => values.iter().any(|v| !v.is_null()),
        Value::Object(map) => map.values().any(|v| !v.is_null()),
        other => !other.is_null(),
    })
}

/// Runs one case; Ok(row count) or a description of what went wrong.
fn run_case(client: &mut Client, with_nlq: bool, case: &Case) -> Result<usize, String> {
    let rows: Vec<Value> = if with_nlq {
        let verdict: String = client
            .query_one("SELECT nlq_validate($1)::text", &[&case.sql])
            .map_err(|e| format!("nlq_validate raised: {e}"))?
            .get(0);
        let verdict: Value = serde_json::from_str(&verdict)
            .map_err(|e| format!("nlq_validate returned bad JSON: {e}"))?;
        if verdict.get("ok") != Some(&Value::Bool(true)) {
            return Err(format!("nlq_validate rejected it: {verdict}"));
        }
        let result: String = client
            .query_one("SELECT nlq_run($1, 100)::text", &[&case.sql])
            .map_err(|e| format!("nlq_run failed: {e}"))?
            .get(0);
        let result: Value =
            serde_json::from_str(&result).map_err(|e| format!("nlq_run returned bad JSON: {e}"))?;
        match result.get("rows") {
            Some(Value::Array(rows)) => rows.clone(),
            _ => return Err(format!("nlq_run result has no rows array: {result}")),
        }
    } else {
        let mut tx = client.transaction().map_err(|e| e.to_string())?;
        tx.batch_execute("SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = '10s'")
            .map_err(|e| e.to_string())?;
        let sql = format!("SELECT to_jsonb(q)::text FROM ({}) q LIMIT 100", case.sql);
        let result = tx
            .query(sql.as_str(), &[])
            .map_err(|e| format!("query failed: {e}"))?;
        let rows = result
            .iter()
            .map(|r| serde_json::from_str::<Value>(r.get::<_, &str>(0)).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        tx.rollback().map_err(|e| e.to_string())?;
        rows
    };
    if rows.is_empty() {
        return Err("no rows".into());
    }
    if !any_non_null(&rows) {
        return Err(format!("all {} rows are entirely null", rows.len()));
    }
    Ok(rows.len())
}

fn run_database_cases(db: &str, allow_nlq: bool) {
    let cases: Vec<Case> = load_cases()
        .into_iter()
        .filter(|c| c.database == db)
        .collect();
    let mut client = connect(db);
    let with_nlq = allow_nlq && has_nlq_functions(&mut client);
    let mut failures = String::new();
    for case in &cases {
        if let Err(why) = run_case(&mut client, with_nlq, case) {
            let _ = writeln!(
                failures,
                "  {} [{}] (TEST_QUERIES.md line {}): {}\n    {}",
                case.id, case.level, case.line, why, case.sql
            );
        }
    }
    let mode = if with_nlq {
        "nlq_validate + nlq_run"
    } else {
        "a read-only transaction"
    };
    assert!(
        failures.is_empty(),
        "{db}: cases failed via {mode}:\n{failures}"
    );
    eprintln!("{db}: {} cases passed via {mode}", cases.len());
}

#[test]
fn nlq_small_cases_return_rows() {
    run_database_cases("nlq_small", true);
}

/// The plain read-only path too (the only one until pg_nlq provides nlq_run), on the small
/// database where it is cheap.
#[test]
fn nlq_small_cases_return_rows_in_a_read_only_transaction() {
    run_database_cases("nlq_small", false);
}

#[test]
fn nlq_medium_cases_return_rows() {
    run_database_cases("nlq_medium", true);
}

#[test]
fn nlq_large_cases_return_rows() {
    run_database_cases("nlq_large", true);
}

// ------------------------------------------------------------------ schema shape

/// Catalog counts over the user schemas of a database (objects belonging to an extension and
/// the system schemas excluded).
const SHAPE_SQL: &str = r#"
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg_temp%'
    AND nspname NOT LIKE 'pg_toast_temp%'
),
ext AS (SELECT objid FROM pg_depend WHERE deptype = 'e'),
rel AS (
  SELECT c.* FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  WHERE c.oid NOT IN (SELECT objid FROM ext)
),
tables AS (SELECT * FROM rel WHERE relkind IN ('r', 'p') AND NOT relispartition),
typ AS (
  SELECT t.* FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.oid NOT IN (SELECT objid FROM ext)
),
cols AS (
  SELECT a.attrelid, a.attnum FROM pg_attribute a JOIN tables t ON t.oid = a.attrelid
  WHERE a.attnum > 0 AND NOT a.attisdropped
),
idx AS (
  SELECT i.* FROM pg_index i JOIN rel t ON t.oid = i.indrelid WHERE NOT t.relispartition
)
SELECT json_build_object(
  'tables', (SELECT count(*) FROM tables),
  'schemas', (SELECT count(DISTINCT relnamespace) FROM tables),
  'views', (SELECT count(*) FROM rel WHERE relkind = 'v'),
  'matviews', (SELECT count(*) FROM rel WHERE relkind = 'm'),
  'partitioned_tables', (SELECT count(*) FROM tables WHERE relkind = 'p'),
  'enums', (SELECT count(*) FROM typ WHERE typtype = 'e'),
  'domains', (SELECT count(*) FROM typ WHERE typtype = 'd'),
  'domains_with_checks', (SELECT count(DISTINCT contypid) FROM pg_constraint WHERE contype = 'c' AND contypid IN (SELECT oid FROM typ WHERE typtype = 'd')),
  'composite_types', (SELECT count(*) FROM typ t WHERE typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')),
  'indexes', (SELECT count(*) FROM idx),
  'partial_indexes', (SELECT count(*) FROM idx WHERE indpred IS NOT NULL),
  'expression_indexes', (SELECT count(*) FROM idx WHERE indexprs IS NOT NULL),
  'gin_indexes', (SELECT count(*) FROM idx i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'gin'),
  'tables_commented', (SELECT count(*) FROM tables WHERE obj_description(oid, 'pg_class') IS NOT NULL),
  'columns', (SELECT count(*) FROM cols),
  'columns_commented', (SELECT count(*) FROM cols WHERE col_description(attrelid, attnum) IS NOT NULL),
  'estimated_rows', (SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM rel WHERE relkind = 'r'),
  'analyzed_tables', (SELECT count(DISTINCT (schemaname, tablename)) FROM pg_stats WHERE schemaname IN (SELECT nspname FROM ns))
)::text
"#;

fn shape(client: &mut Client) -> BTreeMap<String, i64> {
    let text: String = client.query_one(SHAPE_SQL, &[]).unwrap().get(0);
    let v: Value = serde_json::from_str(&text).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect()
}

/// Exact row count of every ordinary table (partitions included, their parents not).
fn exact_rows(client: &mut Client) -> i64 {
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
               AND c.oid NOT IN (SELECT objid FROM pg_depend WHERE deptype = 'e')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sql = tables
        .iter()
        .map(|t| format!("(SELECT count(*) FROM {t})"))
        .collect::<Vec<_>>()
        .join(" + ");
    client
        .query_one(&format!("SELECT ({sql})::bigint"), &[])
        .unwrap()
        .get(0)
}

fn assert_at_least(db: &str, shape: &BTreeMap<String, i64>, targets: &[(&str, i64)]) {
    let mut short = Vec::new();
    for (key, min) in targets {
        let got = shape.get(*key).copied().unwrap_or(0);
        if got < *min {
            short.push(format!("{key}: {got} < {min}"));
        }
    }
    assert!(
        short.is_empty(),
        "{db} is below its schema-shape targets: {}\n(full shape: {shape:?})",
        short.join(", ")
    );
}

fn has_extension(client: &mut Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_nlq')",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn nlq_small_has_its_shape() {
    let mut c = connect("nlq_small");
    assert!(
        has_extension(&mut c),
        "pg_nlq is not installed in nlq_small"
    );
    let mut s = shape(&mut c);
    s.insert("rows".into(), exact_rows(&mut c));
    assert_at_least(
        "nlq_small",
        &s,
        &[
            ("tables", 8),
            ("views", 2),
            ("enums", 2),
            ("indexes", 10),
            ("rows", 5_000),
            ("analyzed_tables", 8),
        ],
    );
}

#[test]
fn nlq_medium_has_its_shape() {
    let mut c = connect("nlq_medium");
    assert!(
        has_extension(&mut c),
        "pg_nlq is not installed in nlq_medium"
    );
    let mut s = shape(&mut c);
    s.insert("rows".into(), exact_rows(&mut c));
    assert_at_least(
        "nlq_medium",
        &s,
        &[
            ("tables", 30),
            ("schemas", 2),
            ("views", 2),
            ("matviews", 1),
            ("enums", 2),
            ("domains_with_checks", 1),
            ("composite_types", 1),
            ("partial_indexes", 1),
            ("expression_indexes", 1),
            ("gin_indexes", 1),
            ("rows", 500_000),
            ("analyzed_tables", 30),
        ],
    );
    // "Comments on most tables and columns."
    assert!(
        s["tables_commented"] * 2 > s["tables"],
        "nlq_medium: most tables should have a comment: {s:?}"
    );
    assert!(
        s["columns_commented"] * 2 > s["columns"],
        "nlq_medium: most columns should have a comment: {s:?}"
    );
}

#[test]
fn nlq_large_has_its_shape() {
    let mut c = connect("nlq_large");
    assert!(
        has_extension(&mut c),
        "pg_nlq is not installed in nlq_large"
    );
    let s = shape(&mut c);
    // Rows from the statistics (ANALYZE ran at load time); an exact count would take too long.
    assert_at_least(
        "nlq_large",
        &s,
        &[
            ("tables", 150),
            ("schemas", 5),
            ("partitioned_tables", 3),
            ("views", 20),
            ("matviews", 3),
            ("enums", 10),
            ("domains", 1),
            ("composite_types", 1),
            ("indexes", 300),
            ("estimated_rows", 5_000_000),
            ("analyzed_tables", 150),
        ],
    );
    // Real estates: most tables documented, some not.
    assert!(
        s["tables_commented"] * 2 > s["tables"],
        "nlq_large: most tables should have a comment: {s:?}"
    );
    assert!(
        s["tables_commented"] < s["tables"],
        "nlq_large: some tables should have no comment: {s:?}"
    );
    // Objects a DBA would protect, for the access-policy demonstrations.
    let protected: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.columns
             WHERE (table_schema, table_name, column_name) IN
                   (('hr', 'salaries', 'annual_salary'), ('hr', 'emp_pii', 'national_id'), ('hr', 'emp_pii', 'birth_date'),
                    ('hr', 'emp_pii', 'bank_iban'), ('audit', 'app_users', 'password_hash'))",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        protected, 5,
        "nlq_large: the protected salary and personal-data columns are missing"
    );
}
