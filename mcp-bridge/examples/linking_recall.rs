//! Schema-linking figures over `fixtures/TEST_QUERIES.md`, no model needed: per database and
//! language, strict gold-table recall (a case counts only when every relation its expected SQL
//! reads is in the context), median, mean and p95 schema-context tokens, and routing accuracy
//! over the three fixtures with no database named.
//!
//! Gold relations are what `nlq_validate` reports for the expected SQL, as the bridge role sees
//! it. Read-only: it fetches snapshots and validates; it runs nothing.
//!
//! `NLQ_TEST_BRIDGE_DSN="host=... port=... user=nlq_bridge" cargo run -p mcp-bridge --example
//! linking_recall [-- --max-tokens N] [--verbose]`

use std::collections::BTreeMap;
use std::time::Instant;

use mcp_bridge::catalog::Snapshot;
use mcp_bridge::linking::route::{route, Target};
use mcp_bridge::linking::{ContextSettings, Linker, TokenCounter};

const DATABASES: [&str; 3] = ["nlq_small", "nlq_medium", "nlq_large"];
const CASES: &str = include_str!("../../fixtures/TEST_QUERIES.md");
const CONFIG: &str = include_str!("../../fixtures/bridge.toml");

struct Case {
    id: String,
    database: String,
    chinese: String,
    english: String,
    sql: String,
}

fn parse_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut database = String::new();
    for line in CASES.lines() {
        let trimmed = line.trim();
        if let Some(db) = line.strip_prefix("## ") {
            database = db.trim().to_string();
        } else if let Some(rest) = line.strip_prefix("* ") {
            let id = rest.split(':').next().unwrap_or("").to_string();
            cases.push(Case {
                id,
                database: database.clone(),
                chinese: String::new(),
                english: String::new(),
                sql: String::new(),
            });
        } else if let Some(case) = cases.last_mut() {
            if let Some(q) = trimmed.strip_prefix("自然语言：") {
                case.chinese = q.to_string();
            } else if let Some(q) = trimmed.strip_prefix("Question: ") {
                case.english = q.to_string();
            } else if let Some(q) = trimmed.strip_prefix("期望 SQL：") {
                case.sql = q.to_string();
            }
        }
    }
    cases
}

/// The descriptions configured for the fixtures (`[servers.descriptions]`).
fn descriptions() -> BTreeMap<String, String> {
    let value: toml::Value = toml::from_str(CONFIG).unwrap_or(toml::Value::Boolean(false));
    let mut out = BTreeMap::new();
    if let Some(d) = value
        .get("servers")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("descriptions"))
        .and_then(|d| d.as_table())
    {
        for (k, v) in d {
            out.insert(k.clone(), v.as_str().unwrap_or("").to_string());
        }
    }
    out
}

fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Default)]
struct Tally {
    cases: usize,
    recalled: usize,
    tokens: Vec<usize>,
    misses: Vec<String>,
}

fn main() {
    let dsn = std::env::var("NLQ_TEST_BRIDGE_DSN").unwrap_or_else(|_| {
        panic!("set NLQ_TEST_BRIDGE_DSN (a libpq connection string without dbname)")
    });
    let args: Vec<String> = std::env::args().collect();
    let verbose = args.iter().any(|a| a == "--verbose");
    let mut settings = ContextSettings::default();
    if let Some(i) = args.iter().position(|a| a == "--max-tokens") {
        settings.max_tokens = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("--max-tokens needs a number"));
    }
    let counter = TokenCounter::for_model("gpt-5-mini");
    let cases = parse_cases();

    let mut snapshots: BTreeMap<&str, Snapshot> = BTreeMap::new();
    let mut gold: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for db in DATABASES {
        let mut client = postgres::Client::connect(&format!("{dsn} dbname={db}"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {db}: {e}"));
        let schema: String = client
            .query_one(mcp_bridge::catalog::EXTENSION_SCHEMA_SQL, &[])
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("pg_nlq schema in {db}: {e}"));
        let text: String = client
            .query_one(
                &format!("SELECT {schema}.nlq_schema_snapshot(NULL::text[], true)::text"),
                &[],
            )
            .and_then(|r| r.try_get(0))
            .unwrap_or_else(|e| panic!("snapshot of {db}: {e}"));
        let snapshot = Snapshot::from_json(&text).unwrap_or_else(|e| panic!("{e}"));
        for case in cases.iter().filter(|c| c.database == db) {
            let report: String = client
                .query_one(
                    &format!("SELECT {schema}.nlq_validate($1)::text"),
                    &[&case.sql],
                )
                .and_then(|r| r.try_get(0))
                .unwrap_or_else(|e| panic!("validate {}: {e}", case.id));
            let report: serde_json::Value =
                serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}"));
            let relations = report["relations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            gold.insert(case.id.clone(), relations);
        }
        snapshots.insert(db, snapshot);
    }

    let started = Instant::now();
    let linkers: BTreeMap<&str, Linker<'_>> = snapshots
        .iter()
        .map(|(db, s)| (*db, Linker::new(s, counter)))
        .collect();
    let build = started.elapsed();
    let descriptions = descriptions();
    let targets: Vec<Target<'_, '_>> = linkers
        .iter()
        .map(|(db, linker)| Target {
            name: db,
            description: descriptions.get(*db).map(String::as_str),
            linker,
        })
        .collect();

    println!(
        "schema-linking recall over fixtures/TEST_QUERIES.md ({} cases), budget {} tokens ({}), linkers built in {:.1} ms",
        cases.len(),
        settings.max_tokens,
        counter.encoding,
        build.as_secs_f64() * 1000.0
    );
    for (db, linker) in &linkers {
        println!(
            "  {db}: whole schema {} tokens",
            linker.whole_schema_tokens()
        );
    }
    let mut tallies: BTreeMap<(String, &str), Tally> = BTreeMap::new();
    let mut routing: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new(); // cases, top-1 right, chosen, chosen right
    let mut link_time = std::time::Duration::ZERO;
    let mut links = 0u32;
    for case in &cases {
        let linker = &linkers[case.database.as_str()];
        let gold = &gold[&case.id];
        for (language, question) in [("en", &case.english), ("zh", &case.chinese)] {
            let t = Instant::now();
            let context = linker.link(question, &settings);
            link_time += t.elapsed();
            links += 1;
            let tally = tallies
                .entry((case.database.clone(), language))
                .or_default();
            tally.cases += 1;
            tally.tokens.push(context.tokens);
            let missing: Vec<&String> = gold
                .iter()
                .filter(|g| !context.relations.contains(g))
                .collect();
            if missing.is_empty() {
                tally.recalled += 1;
            } else {
                tally.misses.push(format!("{} misses {missing:?}", case.id));
                if verbose && language == "en" {
                    println!(
                        "    {} {:?}: missing {missing:?}; shown {:?}; cut {:?}",
                        case.id, question, context.relations, context.cut
                    );
                }
            }
            let r = route(question, &targets);
            let entry = routing.entry(language).or_default();
            entry.0 += 1;
            if r.candidates.first().map(|c| c.database.as_str()) == Some(case.database.as_str()) {
                entry.1 += 1;
            }
            if let Some(chosen) = &r.chosen {
                entry.2 += 1;
                if *chosen == case.database {
                    entry.3 += 1;
                }
            }
            if verbose && r.chosen.as_deref() != Some(case.database.as_str()) {
                println!(
                    "    route {} ({language}) {:?}: chose {:?} over {:?}",
                    case.id, question, r.chosen, r.candidates
                );
            }
        }
    }
    println!("\ndatabase     lang  cases  strict recall  median tokens  mean tokens  p95 tokens");
    for ((db, language), tally) in &mut tallies {
        tally.tokens.sort_unstable();
        let mean = tally.tokens.iter().sum::<usize>() as f64 / tally.tokens.len().max(1) as f64;
        println!(
            "{db:<12} {language:<5} {:>5}  {:>13.3}  {:>13}  {:>11.0}  {:>10}",
            tally.cases,
            tally.recalled as f64 / tally.cases.max(1) as f64,
            percentile(&tally.tokens, 0.5),
            mean,
            percentile(&tally.tokens, 0.95),
        );
    }
    println!("\nrouting, no database named (three fixtures):");
    for (language, (n, top1, chosen, right)) in &routing {
        println!(
            "  {language}: top-1 accuracy {:.3} ({top1}/{n}); chosen outright {chosen}/{n}, of which right {right}; accuracy counting an ambiguous answer as wrong {:.3}",
            *top1 as f64 / *n as f64,
            *right as f64 / *n as f64
        );
    }
    println!(
        "\nlinking time: {:.3} ms per question (mean of {links})",
        link_time.as_secs_f64() * 1000.0 / f64::from(links.max(1))
    );
    if verbose {
        for ((db, language), tally) in &tallies {
            for miss in &tally.misses {
                println!("  miss {db} {language}: {miss}");
            }
        }
    }
}
