//! `pg-nlq-bridge context` and `pg-nlq-bridge eval` against the fixture databases as the bridge
//! role (read-only). Run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use common::{config_toml, TempDir, CONFIG_ENV_VARS};

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");

fn bridge(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in CONFIG_ENV_VARS {
        cmd.env_remove(var);
    }
    cmd.output().expect("run pg-nlq-bridge")
}

#[test]
fn context_prints_the_routing_the_relations_and_the_prompt_size() {
    let dir = TempDir::new("context");
    let config = dir.write(
        "bridge.toml",
        &config_toml(None, &["nlq_small", "nlq_medium", "nlq_large"]),
    );
    let config = config.to_str().unwrap();
    let question = "Which warehouses hold stock of each product?";
    let out = bridge(&[
        "context",
        "--config",
        config,
        "--db",
        "nlq_large",
        "--json",
        question,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["database"], "nlq_large");
    assert_eq!(v["routing"]["method"], "given");
    let relations: Vec<&str> = v["relations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(relations.contains(&"inventory.warehouses"), "{relations:?}");
    assert!(relations.iter().all(|r| r.contains('.')));
    let (prompt, schema, whole) = (
        v["prompt_tokens"].as_u64().unwrap(),
        v["schema_tokens"].as_u64().unwrap(),
        v["whole_schema_tokens"].as_u64().unwrap(),
    );
    // the prompt holds the schema context and more; the context is a part of the schema
    assert!(prompt > schema + 200, "{prompt} {schema}");
    assert!(schema <= 4000 && schema < whole, "{schema} {whole}");

    // no database named: routed among the three, candidates ranked with scores
    let out = bridge(&[
        "context",
        "--config",
        config,
        "--json",
        "How many books has each author written?",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["database"], "nlq_small", "{v}");
    assert_eq!(v["routing"]["method"], "lexical");
    let candidates = v["routing"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 3);
    assert!(candidates[0]["score"].as_f64() >= candidates[1]["score"].as_f64());

    // the text form is the context itself; --explain says how it was chosen first
    let out = bridge(&["context", "--config", config, "--db", "nlq_small", question]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("schema public"), "{text}");
    let out = bridge(&["context", "--config", config, "--explain", question]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("database: "), "{text}");
    assert!(text.contains("tokens (o200k_base)"), "{text}");

    // --with-model without a model is refused, not ignored, and says what to set
    let out = bridge(&["context", "--config", config, "--with-model", question]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--with-model needs a model"), "{stderr}");
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
}

#[test]
fn eval_reports_recall_tokens_and_routing_and_resumes() {
    let dir = TempDir::new("eval");
    let config = dir.write(
        "bridge.toml",
        &config_toml(None, &["nlq_small", "nlq_medium", "nlq_large"]),
    );
    let cases = dir.write(
        "cases.jsonl",
        concat!(
            r#"{"id": "a", "level": "simple", "database": "nlq_small", "question": "How many books has each author written?", "sql": "SELECT a.id, count(*) FROM public.authors a JOIN public.book_authors ba ON ba.author_id = a.id GROUP BY a.id"}"#,
            "\n",
            r#"{"id": "b", "database": "nlq_large", "question": "每位员工的薪水是多少？", "sql": "SELECT count(*) FROM hr.salaries"}"#,
            "\n"
        ),
    );
    let out_dir = dir.path().join("out");
    let args = [
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = bridge(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let a = &results[0];
    assert_eq!(a["key"], "a:en");
    assert_eq!(
        a["gold"],
        serde_json::json!(["public.authors", "public.book_authors"])
    );
    assert_eq!(a["recalled"], true);
    assert_eq!(a["routed"], "nlq_small");
    // a relation the bridge role may not read: counted apart, not as a miss
    let b = &results[1];
    assert_eq!(b["language"], "zh");
    assert!(
        b["excluded"].as_str().unwrap().contains("hr.salaries"),
        "{b}"
    );
    assert_eq!(b["recalled"], false);
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("| nlq_small | simple | en | 1 | 0 | 1.000 |"),
        "{summary}"
    );
    assert!(summary.contains("Excluded from recall"), "{summary}");

    // resumable: a second run over the same directory adds nothing and keeps the results
    let out = bridge(&args);
    assert!(out.status.success());
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(again["results"], report["results"]);
}
