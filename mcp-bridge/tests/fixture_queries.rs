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

use std::collections::BTreeMap;
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

// The one parser of the format lives in the library (`pg-nlq-bridge eval` reads it too); the
// fixture set adds its own databases and levels.
use mcp_bridge::eval::cases::{parse_markdown, Case};

fn parse_cases(markdown: &str) -> Result<Vec<Case>, String> {
    let cases = parse_markdown(markdown)?;
    for c in &cases {
        if !DATABASES.contains(&c.database.as_str()) {
            return Err(format!(
                "line {}: unknown database '{}' (expected one of {DATABASES:?})",
                c.line, c.database
            ));
        }
        if !LEVELS.contains(&c.level.as_str()) {
            return Err(format!(
                "line {}: unknown level '{}' (expected one of {LEVELS:?})",
                c.line, c.level
            ));
        }
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
        for sql in c.all_sql() {
            let upper = sql.trim_start().to_ascii_uppercase();
            assert!(
                upper.starts_with("SELECT") || upper.starts_with("WITH"),
                "{} (line {}): every SQL of a case should be a query: {sql}",
                c.id,
                c.line
            );
        }
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
            alternatives: vec![],
            evidence: None,
            line: 9,
        }]
    );
    // Alternative accepted SQL lines follow the expected SQL, any number of them.
    let with_alts = format!(
        "{SAMPLE}    可接受 SQL：SELECT count(id) FROM customers;\n    可接受 SQL：SELECT count(DISTINCT id) FROM customers;\n\n### medium\n"
    );
    let cases = parse_cases(&with_alts).unwrap();
    assert_eq!(
        cases[0].alternatives,
        vec![
            "SELECT count(id) FROM customers".to_string(),
            "SELECT count(DISTINCT id) FROM customers".to_string()
        ]
    );
    assert_eq!(cases[0].all_sql().count(), 3);
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
        // alternative without its semicolon
        format!("{SAMPLE}    可接受 SQL：SELECT count(id) FROM customers\n"),
        // alternative with two statements
        format!("{SAMPLE}    可接受 SQL：SELECT 1; SELECT 2;\n"),
        // alternative identical to the expected SQL
        format!("{SAMPLE}    可接受 SQL：SELECT count(*) FROM customers;\n"),
        // alternative separated from its case
        format!("{SAMPLE}\n    可接受 SQL：SELECT count(id) FROM customers;\n"),
        // empty alternative
        format!("{SAMPLE}    可接受 SQL：;\n"),
    ];
    for (k, text) in bad.iter().enumerate() {
        assert!(
            parse_cases(text).is_err(),
            "malformed sample {k} was accepted:\n{text}"
        );
    }
}

// ------------------------------------------------------------------ the written conventions

/// The conventions of `fixtures/README.md` ("Conventions of the gold set") that can be checked
/// from the text of a case. Each rule is applied to the expected SQL; alternatives record other
/// readings of the question and only have to pass the rules that are not about readings (dates,
/// limits, the sales status list).
struct Convention {
    database: &'static str,
    /// Tables whose rows are orders or order lines: reading one requires a status predicate.
    order_tables: &'static [&'static str],
    /// The one status list that excludes non-sales, as `status NOT IN (...)` must spell it.
    not_sales: &'static str,
    /// A table with soft-deleted rows and the column that marks them.
    soft_delete: Option<(&'static str, &'static str)>,
}

const CONVENTIONS: [Convention; 3] = [
    Convention {
        database: "nlq_small",
        order_tables: &["orders", "order_items"],
        not_sales: "('cancelled', 'refunded')",
        soft_delete: None,
    },
    Convention {
        database: "nlq_medium",
        order_tables: &["shop.orders", "shop.order_lines"],
        not_sales: "('cart', 'cancelled')",
        soft_delete: Some(("crm.customers", "is_deleted")),
    },
    Convention {
        database: "nlq_large",
        order_tables: &["sales.sales_orders", "sales.so_lines"],
        not_sales: "('cancelled', 'draft')",
        soft_delete: None,
    },
];

/// Cases that read orders for an attribute of another fact (the currency of a refund, the
/// order of a payment) and rightly take every status, with the reason.
const ALL_STATUSES: [(&str, &str); 2] = [
    (
        "MM-10",
        "counts payments: a successful payment on a later cancelled order was still made",
    ),
    (
        "MM-14",
        "counts refunds: cancelled orders are refunded too, and the order only gives the currency",
    ),
];

/// True when `sql` reads `table` (after FROM or JOIN, as a whole name).
fn reads_table(sql: &str, table: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["from ", "join "].iter().any(|kw| {
        let needle = format!("{kw}{table}");
        lower.match_indices(&needle).any(|(at, _)| {
            let before_ok = at == 0 || !lower.as_bytes()[at - 1].is_ascii_alphanumeric();
            let after = lower.as_bytes().get(at + needle.len()).copied();
            before_ok
                && !matches!(after, Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        })
    })
}

fn has_status_predicate(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "status not in (",
        "status in (",
        "status = '",
        "status <> '",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// The number a word or numeral stands for, for the words questions use.
fn number_words() -> Vec<(&'static str, u64)> {
    vec![
        ("zero", 0),
        ("one", 1),
        ("two", 2),
        ("three", 3),
        ("four", 4),
        ("five", 5),
        ("six", 6),
        ("seven", 7),
        ("eight", 8),
        ("nine", 9),
        ("ten", 10),
        ("twelve", 12),
        ("twenty", 20),
        ("fifty", 50),
        ("hundred", 100),
        ("thousand", 1000),
        // Months, as dates are written in English ("30 June 2025" for "2025年6月30日").
        ("january", 1),
        ("february", 2),
        ("march", 3),
        ("april", 4),
        ("may", 5),
        ("june", 6),
        ("july", 7),
        ("august", 8),
        ("september", 9),
        ("october", 10),
        ("november", 11),
        ("december", 12),
    ]
}

fn chinese_numerals() -> Vec<(&'static str, u64)> {
    vec![
        ("二十", 20),
        ("一百", 100),
        ("一千", 1000),
        ("千", 1000),
        ("十二", 12),
        ("十一", 11),
        ("十", 10),
        ("零", 0),
        ("一", 1),
        ("两", 2),
        ("二", 2),
        ("三", 3),
        ("四", 4),
        ("五", 5),
        ("六", 6),
        ("七", 7),
        ("八", 8),
        ("九", 9),
    ]
}

fn digit_numbers(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_digit() {
            cur.push(ch);
        } else if !cur.is_empty() {
            if let Ok(n) = cur.parse() {
                out.push(n);
            }
            cur.clear();
        }
    }
    out
}

/// True when the question states the number `n`, in digits or in words.
fn question_states(question: &str, n: u64, chinese: bool) -> bool {
    if digit_numbers(question).contains(&n) {
        return true;
    }
    if chinese {
        chinese_numerals()
            .iter()
            .any(|(w, v)| *v == n && question.contains(w))
    } else {
        let lower = question.to_ascii_lowercase();
        let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        number_words()
            .iter()
            .any(|(w, v)| *v == n && words.contains(w))
    }
}

/// Every `LIMIT n` of a query.
fn limits(sql: &str) -> Vec<u64> {
    let upper = sql.to_ascii_uppercase();
    upper
        .match_indices("LIMIT ")
        .filter_map(|(at, _)| {
            digit_numbers(&upper[at + 6..])
                .first()
                .copied()
                .filter(|_| upper[at + 6..].starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect()
}

/// What a case does against the written conventions; empty when it keeps them.
fn convention_violations(case: &Case) -> Vec<String> {
    let mut out = Vec::new();
    let Some(conv) = CONVENTIONS.iter().find(|c| c.database == case.database) else {
        return vec![format!("no conventions for database {}", case.database)];
    };
    // The reading rules: the expected SQL only.
    let reads_orders = conv.order_tables.iter().any(|t| reads_table(&case.sql, t));
    let exempt = ALL_STATUSES.iter().any(|(id, _)| *id == case.id);
    if reads_orders && !exempt && !has_status_predicate(&case.sql) {
        out.push(format!(
            "reads {} without a status predicate (sales are status NOT IN {})",
            conv.order_tables.join(" / "),
            conv.not_sales
        ));
    }
    if let Some((table, column)) = conv.soft_delete {
        if reads_table(&case.sql, table) && !case.sql.contains(column) {
            out.push(format!(
                "reads {table} without excluding soft-deleted rows ({column})"
            ));
        }
    }
    // One spelling of "not a sale" per database.
    let lower = case.sql.to_ascii_lowercase();
    for (at, _) in lower.match_indices("status not in (") {
        let list = &case.sql[at + "status not in ".len()..];
        let list = &list[..list.find(')').map_or(list.len(), |e| e + 1)];
        // Lists of other status columns (tickets, cases, purchase orders) share no value
        // with the sales list's or name none of it.
        let about_sales = conv
            .not_sales
            .trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .any(|v| list.contains(v));
        if about_sales && list != conv.not_sales {
            out.push(format!(
                "status NOT IN {list}; this database's non-sales are {}",
                conv.not_sales
            ));
        }
    }
    if conv.database == "nlq_medium" && lower.contains("status <> 'cart'") {
        out.push(format!(
            "status <> 'cart' keeps cancelled orders; sales are status NOT IN {}",
            conv.not_sales
        ));
    }
    // Both phrasings ask the same thing: every number one states, the other states too (in
    // digits, words or numerals; months count as numbers).
    for n in digit_numbers(&case.question_zh) {
        if !question_states(&case.question_en, n, false) {
            out.push(format!(
                "the Chinese question states {n}, the English one does not"
            ));
        }
    }
    let en_lower = case.question_en.to_ascii_lowercase();
    let en_words: Vec<&str> = en_lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    // Number words too, but not "one" (a pronoun as often as a number) nor the months.
    let worded = number_words()
        .into_iter()
        .take_while(|(w, _)| *w != "january")
        .filter(|(w, _)| *w != "one" && en_words.contains(w))
        .map(|(_, v)| v);
    for n in digit_numbers(&case.question_en).into_iter().chain(worded) {
        if !question_states(&case.question_zh, n, true) {
            out.push(format!(
                "the English question states {n}, the Chinese one does not"
            ));
        }
    }
    // The rules for every SQL of the case.
    for (k, sql) in case.all_sql().enumerate() {
        let which = if k == 0 {
            "expected SQL".to_string()
        } else {
            format!("alternative {k}")
        };
        // The data ends on 2025-06-30: that day is inside "up to now", never an end bound.
        if sql.contains("< '2025-06-30'") || sql.contains("timestamptz '2025-06-30'") {
            out.push(format!(
                "{which}: uses 2025-06-30 as an exclusive end; the last day of data is \
                 included (end bound '2025-07-01')"
            ));
        }
        // A LIMIT is part of the answer only when both phrasings ask for that many.
        for n in limits(sql) {
            if !question_states(&case.question_en, n, false)
                || !question_states(&case.question_zh, n, true)
            {
                out.push(format!(
                    "{which}: LIMIT {n} but the questions do not both ask for {n}"
                ));
            }
        }
    }
    out
}

#[test]
fn convention_checks_catch_hand_made_violations() {
    let case = |db: &str, zh: &str, en: &str, sql: &str| Case {
        database: db.into(),
        level: "simple".into(),
        id: "X-01".into(),
        title: "t".into(),
        question_zh: zh.into(),
        question_en: en.into(),
        sql: sql.into(),
        alternatives: vec![],
        evidence: None,
        line: 1,
    };
    let good = [
        case("nlq_medium", "2024年有多少订单？", "How many orders in 2024?",
             "SELECT count(*) FROM shop.orders WHERE status NOT IN ('cart', 'cancelled') AND placed_at >= '2024-01-01'"),
        case("nlq_medium", "销量前十的商品？", "The ten best-selling products?",
             "SELECT product_id FROM shop.order_lines l JOIN shop.orders o ON o.order_id = l.order_id WHERE o.status NOT IN ('cart', 'cancelled') GROUP BY 1 ORDER BY sum(quantity) DESC, 1 LIMIT 10"),
        case("nlq_medium", "有多少客户？", "How many customers?",
             "SELECT count(*) FROM crm.customers WHERE NOT is_deleted"),
        case("nlq_medium", "有多少客户？", "How many customers?", "SELECT count(*) FROM crm.active_customers"),
        case("nlq_small", "有多少订单？", "How many orders?",
             "SELECT count(*) FROM orders WHERE status NOT IN ('cancelled', 'refunded')"),
        case("nlq_small", "订单明细表有多少行？", "How many rows?", "SELECT count(*) FROM order_itemsx"),
    ];
    for c in &good {
        assert_eq!(convention_violations(c), Vec::<String>::new(), "{}", c.sql);
    }
    let bad = [
        // orders without a status filter
        case("nlq_medium", "有多少订单？", "How many orders?", "SELECT count(*) FROM shop.orders"),
        // lines without a status filter
        case("nlq_large", "卖了多少？", "Units sold?", "SELECT sum(quantity) FROM sales.so_lines"),
        // another spelling of non-sales
        case("nlq_medium", "有多少订单？", "How many orders?", "SELECT count(*) FROM shop.orders WHERE status NOT IN ('cart')"),
        case("nlq_medium", "有多少订单？", "How many orders?", "SELECT count(*) FROM shop.orders WHERE status <> 'cart'"),
        case("nlq_small", "有多少订单？", "How many orders?", "SELECT count(*) FROM orders o WHERE o.status NOT IN ('cancelled')"),
        // soft-deleted customers counted
        case("nlq_medium", "有多少客户？", "How many customers?", "SELECT count(*) FROM crm.customers"),
        // the last day of data cut off
        case("nlq_small", "6月的订单？", "Orders in June?",
             "SELECT count(*) FROM orders WHERE status NOT IN ('cancelled', 'refunded') AND ordered_at < '2025-06-30'"),
        // a number in one phrasing only
        case("nlq_medium", "每月每千单对应多少工单？", "Tickets per thousand orders, month by month in 2024?",
             "SELECT count(*) FROM crm.support_tickets WHERE opened_at >= '2024-01-01'"),
        case("nlq_small", "哪些老客户超过一年没下单？", "Which customers with at least three orders have not ordered for a year?",
             "SELECT count(*) FROM customers"),
        // an unrequested LIMIT, and one asked only in English
        case("nlq_small", "最贵的书？", "The most expensive books?", "SELECT title FROM books ORDER BY list_price DESC LIMIT 10"),
        case("nlq_small", "最贵的书？", "The ten most expensive books?", "SELECT title FROM books ORDER BY list_price DESC LIMIT 10"),
    ];
    for c in &bad {
        assert!(
            !convention_violations(c).is_empty(),
            "not caught: {}",
            c.sql
        );
    }
    // Alternatives: the reading rules do not apply to them, the others do.
    let mut c = good[0].clone();
    c.alternatives =
        vec!["SELECT count(*) FROM shop.orders WHERE placed_at >= '2024-01-01'".into()];
    assert!(convention_violations(&c).is_empty());
    c.alternatives = vec!["SELECT count(*) FROM shop.orders WHERE status <> 'cart'".into()];
    assert!(convention_violations(&c).is_empty());
    c.alternatives =
        vec!["SELECT count(*) FROM shop.orders WHERE placed_at < '2025-06-30' LIMIT 5".into()];
    assert_eq!(convention_violations(&c).len(), 2);
    // A case on the exemption list may read orders of every status.
    let mut c = bad[0].clone();
    c.id = "MM-14".into();
    assert!(convention_violations(&c).is_empty());
}

#[test]
fn every_case_keeps_the_written_conventions() {
    let mut report = String::new();
    for case in load_cases() {
        for v in convention_violations(&case) {
            let _ = writeln!(
                report,
                "  {} (TEST_QUERIES.md line {}): {v}",
                case.id, case.line
            );
        }
    }
    assert!(
        report.is_empty(),
        "cases against the conventions of fixtures/README.md:\n{report}"
    );
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
fn run_sql(client: &mut Client, with_nlq: bool, sql: &str) -> Result<usize, String> {
    let rows: Vec<Value> = if with_nlq {
        let verdict: String = client
            .query_one("SELECT nlq_validate($1)::text", &[&sql])
            .map_err(|e| format!("nlq_validate raised: {e}"))?
            .get(0);
        let verdict: Value = serde_json::from_str(&verdict)
            .map_err(|e| format!("nlq_validate returned bad JSON: {e}"))?;
        if verdict.get("ok") != Some(&Value::Bool(true)) {
            return Err(format!("nlq_validate rejected it: {verdict}"));
        }
        let result: String = client
            .query_one("SELECT nlq_run($1, 100)::text", &[&sql])
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
        let sql = format!("SELECT to_jsonb(q)::text FROM ({sql}) q LIMIT 100");
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
    let mut checked = 0;
    for case in &cases {
        for (k, sql) in case.all_sql().enumerate() {
            checked += 1;
            if let Err(why) = run_sql(&mut client, with_nlq, sql) {
                let which = if k == 0 {
                    "expected SQL".to_string()
                } else {
                    format!("alternative {k}")
                };
                let _ = writeln!(
                    failures,
                    "  {} [{}] {which} (TEST_QUERIES.md line {}): {}\n    {}",
                    case.id, case.level, case.line, why, sql
                );
            }
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
    eprintln!(
        "{db}: {} cases ({checked} queries with the alternatives) passed via {mode}",
        cases.len()
    );
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
