//! Model-assisted table selection in the context stage (issue 13 item 2) end to end, against
//! the fixture cluster with the scripted OpenAI-compatible server standing in for the model:
//! a question whose lexical evidence is weak (here Chinese over `nlq_large`'s English names,
//! whose whole schema does not fit the 4,000-token budget) gets one `table_selection` call
//! showing a catalogue; the names it returns that the catalogue holds reach the generation
//! prompt's schema context, the others are ignored; its tokens count and its time is the
//! context stage's. A strong English question makes no such call; a failed call leaves the
//! context lexical; `context.model_selection = false` turns it off. Run through
//! `make test-bridge` (NLQ_TEST_DSN, NLQ_TEST_BRIDGE_DSN).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use common::{config_toml_with, settings_from, start};
use mcp_bridge::answer::{QueryRequest, Stage};
use scripted_openai::{generate, verdict, Recorded, Reply, ScriptedOpenAi, Step};
use serde_json::json;

const HEADCOUNT_ZH: &str = "各部门现在各有多少人？";
const HEADCOUNT_EN: &str = "What is the current headcount of each department?";
const HEADCOUNT_SQL: &str = "SELECT d.name, count(*) AS headcount FROM hr.employees e \
                             JOIN hr.departments d ON d.dept_id = e.dept_id \
                             WHERE e.termination_date IS NULL GROUP BY d.name \
                             ORDER BY headcount DESC, d.name";

fn ask_large(question: &str) -> QueryRequest {
    QueryRequest {
        question: question.into(),
        database: Some("nlq_large".into()),
        ..QueryRequest::default()
    }
}

/// A bridge over nlq_large with the scripted model; `extra` settings after `[database]`'s.
async fn large_bridge(
    model: &ScriptedOpenAi,
    extra: &str,
) -> std::sync::Arc<mcp_bridge::bridge::Bridge> {
    start(settings_from(&config_toml_with(
        Some(&model.base_url()),
        &["nlq_large"],
        extra,
    )))
    .await
}

/// The schema context block of a generation request.
fn schema_context(r: &Recorded) -> String {
    let text = &r.messages_text;
    let start = text.find("<schema_context>").unwrap_or(0);
    let end = text.find("</schema_context>").unwrap_or(text.len());
    text[start..end].to_string()
}

/// The scripted server's token count of a request (`prompt_tokens`).
fn prompt_tokens(r: &Recorded) -> u64 {
    r.messages_text.chars().count() as u64 / 4 + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_question_gets_the_tables_the_model_chooses() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("table_selection")
            .containing(HEADCOUNT_ZH)
            .containing("<schema_catalogue>")
            .containing("schema hr")
            .containing("hr.departments")
            .check(|r| {
                // the catalogue is what the bridge role may see: no denied relation
                if r.messages_text.contains("hr.salaries") {
                    return Err("the catalogue names hr.salaries".into());
                }
                Ok(())
            })
            .reply(Reply::Json(json!({
                "tables": ["hr.departments", "HR.Employees", "hr.no_such_table",
                           "pg_catalog.pg_authid"],
                "reason": "headcount per department"
            }))),
        Step::expect("sql_answer")
            .containing(HEADCOUNT_ZH)
            .check(|r| {
                let context = schema_context(r);
                for wanted in ["hr.departments", "hr.employees"] {
                    if !context.contains(wanted) {
                        return Err(format!("{wanted} not in the schema context"));
                    }
                }
                for unwanted in ["no_such_table", "pg_authid"] {
                    if context.contains(unwanted) {
                        return Err(format!("{unwanted} reached the schema context"));
                    }
                }
                Ok(())
            })
            .reply(generate(HEADCOUNT_SQL)),
        Step::expect("result_verdict").reply(verdict(9, "headcount per department")),
    ])
    .await;
    let bridge = large_bridge(&model, "").await;
    let answer = bridge
        .query(ask_large(HEADCOUNT_ZH), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    model.assert_done();
    assert_eq!(answer.sql, HEADCOUNT_SQL);
    assert_eq!(answer.confidence, Some(9));
    // the selection call's tokens count with the others'
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    let input: u64 = requests.iter().map(prompt_tokens).sum();
    assert_eq!(answer.tokens.input, input, "{:?}", answer.tokens);
    // and its time is the context stage's: one context run, before generation
    let context = answer
        .timings
        .iter()
        .find(|t| t.stage == Stage::Context)
        .expect("context timed");
    assert_eq!(context.runs, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strong_lexical_evidence_needs_no_selection_call() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("sql_answer")
            .containing(HEADCOUNT_EN)
            .check(|r| {
                let context = schema_context(r);
                if context.contains("hr.departments") && context.contains("hr.employees") {
                    Ok(())
                } else {
                    Err("hr.departments or hr.employees missing from the context".into())
                }
            })
            .reply(generate(HEADCOUNT_SQL)),
        Step::expect("result_verdict").reply(verdict(9, "ok")),
    ])
    .await;
    let bridge = large_bridge(&model, "").await;
    let answer = bridge
        .query(ask_large(HEADCOUNT_EN), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    model.assert_done();
    assert_eq!(answer.sql, HEADCOUNT_SQL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_selection_leaves_the_context_lexical() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("table_selection").reply(Reply::Status(
            500,
            scripted_openai::error_body("the server is on fire", "server_error"),
        )),
        Step::expect("sql_answer")
            .containing(HEADCOUNT_ZH)
            .containing("<schema_context>")
            .reply(generate(HEADCOUNT_SQL)),
        Step::expect("result_verdict").reply(verdict(8, "ok")),
    ])
    .await;
    let bridge = large_bridge(&model, "").await;
    let answer = bridge
        .query(ask_large(HEADCOUNT_ZH), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    model.assert_done();
    assert_eq!(answer.sql, HEADCOUNT_SQL);
    assert_eq!(answer.attempts.len(), 1, "{:?}", answer.attempts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_selection_can_be_turned_off() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("sql_answer").reply(generate(HEADCOUNT_SQL)),
        Step::expect("result_verdict").reply(verdict(9, "ok")),
    ])
    .await;
    let bridge = large_bridge(&model, "[context]\nmodel_selection = false\n").await;
    bridge
        .query(ask_large(HEADCOUNT_ZH), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    model.assert_done();
}

/// Runs `pg-nlq-bridge eval` with `extra` arguments (it must succeed) and reads its
/// `report.json`.
fn eval_report(
    config: &std::path::Path,
    cases: &std::path::Path,
    out_dir: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pg-nlq-bridge"));
    cmd.args(["eval", "--config", config.to_str().unwrap()])
        .args(["--cases", cases.to_str().unwrap()])
        .args(["--out", out_dir.to_str().unwrap()])
        .args(extra);
    for var in common::CONFIG_ENV_VARS {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run pg-nlq-bridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap()
}

/// The text of a request's `<tag>` block.
fn block_of(text: &str, tag: &str) -> String {
    let open = format!("<{tag}>\n");
    let close = format!("\n</{tag}>");
    let start = text.find(&open).map_or(0, |i| i + open.len());
    let end = text[start..].find(&close).map_or(text.len(), |i| start + i);
    text[start..end].to_string()
}

/// `eval --with-model` over the fixtures' `nlq_large` cases with an oracle for a model: the
/// scripted server answers each `table_selection` request with the relations of the catalogue
/// that the case's expected SQL names (found by the question in the request). It measures what
/// the context stage does with a right selection — merging, join paths, the budget — not a
/// model's judgement; the figures are printed (`--nocapture`) for the design document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_with_the_selection_step_recalls_chinese_questions() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases_path = root.join("fixtures/TEST_QUERIES.md");
    let cases =
        mcp_bridge::eval::cases::parse_cases_file(&std::fs::read_to_string(&cases_path).unwrap())
            .unwrap();
    let gold_sql: std::collections::HashMap<String, String> = cases
        .iter()
        .filter(|c| c.database == "nlq_large")
        .flat_map(|c| {
            c.phrasings()
                .into_iter()
                .map(|(_, q)| (q.to_string(), c.sql.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let model = ScriptedOpenAi::with_responder(move |r| {
        if r.schema_name != "table_selection" {
            return Reply::Status(500, json!({"error": {"message": "only table_selection"}}));
        }
        let question = block_of(&r.messages_text, "question");
        let catalogue = block_of(&r.messages_text, "schema_catalogue");
        let Some(sql) = gold_sql.get(&question) else {
            return Reply::Json(json!({"tables": [], "reason": "unknown question"}));
        };
        // the catalogue's relations that the expected SQL names
        let listed: Vec<&str> = catalogue
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| w.contains('.'))
            .collect();
        let words: std::collections::HashSet<String> = sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .map(str::to_lowercase)
            .collect();
        let tables: Vec<&str> = listed
            .into_iter()
            .filter(|t| words.contains(&t.to_lowercase()))
            .collect();
        Reply::Json(json!({"tables": tables, "reason": "the tables of the expected query"}))
    })
    .await;
    let dir = common::TempDir::new("eval-model");
    let config = dir.write(
        "bridge.toml",
        &config_toml_with(Some(&model.base_url()), &["nlq_large"], ""),
    );
    let out_dir = dir.path().join("out");
    let run = |with_model: bool| {
        let mut args = vec!["--db", "nlq_large"];
        if with_model {
            args.push("--with-model");
        }
        eval_report(&config, &cases_path, &out_dir, &args)
    };
    let recall = |report: &serde_json::Value, language: &str| -> f64 {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["level"] == "all" && g["language"] == language)
            .and_then(|g| g["recall"].as_f64())
            .unwrap()
    };
    let lexical = tokio::task::block_in_place(|| run(false));
    let selected = tokio::task::block_in_place(|| run(true));
    assert_eq!(
        selected["with_model"], true,
        "not resumed from the lexical run"
    );
    let median = |report: &serde_json::Value, language: &str| -> u64 {
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["level"] == "all" && g["language"] == language)
            .and_then(|g| g["median_prompt_tokens"].as_u64())
            .unwrap()
    };
    eprintln!(
        "nlq_large median prompt tokens: zh {} lexical, {} with the selection",
        median(&lexical, "zh"),
        median(&selected, "zh")
    );
    let (zh_before, zh_after) = (recall(&lexical, "zh"), recall(&selected, "zh"));
    let (en_before, en_after) = (recall(&lexical, "en"), recall(&selected, "en"));
    let calls = selected["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["selected"].is_null())
        .count();
    eprintln!(
        "nlq_large strict recall: zh {zh_before:.3} lexical, {zh_after:.3} with the oracle \
         selection; en {en_before:.3} lexical, {en_after:.3} with it; {calls} selection calls"
    );
    assert!(zh_after > zh_before + 0.5, "{zh_before} -> {zh_after}");
    assert!(en_after >= en_before, "{en_before} -> {en_after}");
    // every Chinese question made the call (another script than the names)
    assert!(calls >= 63, "{calls}");
}

/// `pg-nlq-bridge context --with-model` makes the pipeline's selection call and shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_with_model_shows_the_selection() {
    let model = ScriptedOpenAi::start(vec![Step::expect("table_selection")
        .containing(HEADCOUNT_ZH)
        .reply(Reply::Json(json!({
            "tables": ["hr.departments", "hr.employees", "hr.made_up"],
            "reason": "headcount"
        })))])
    .await;
    let dir = common::TempDir::new("context-model");
    let config = dir.write(
        "bridge.toml",
        &config_toml_with(Some(&model.base_url()), &["nlq_large"], ""),
    );
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pg-nlq-bridge"));
        cmd.args([
            "context",
            "--config",
            config.to_str().unwrap(),
            "--with-model",
        ])
        .args(extra)
        .arg(HEADCOUNT_ZH);
        for var in common::CONFIG_ENV_VARS {
            cmd.env_remove(var);
        }
        cmd.output().expect("run pg-nlq-bridge")
    };
    let out = tokio::task::block_in_place(|| run(&["--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    model.assert_done();
    assert_eq!(v["weakness"], "other_script", "{v}");
    assert_eq!(
        v["selection"]["chosen"],
        json!(["hr.departments", "hr.employees"])
    );
    assert_eq!(v["selection"]["ignored"], json!(["hr.made_up"]));
    assert_eq!(v["relations"][0], "hr.departments");
    assert_eq!(v["reasons"][0], "selected");
    assert!(v["model_tokens"]["input"].as_u64().unwrap() > 0, "{v}");
}

/// `eval --with-model` routes every phrasing as the pipeline does with no database named, and
/// counts each outcome apart: lexical routing deciding (no call), the model's right and wrong
/// choices, `AMBIGUOUS_QUERY` listing the right database or not, and a failed call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_with_model_routes_as_the_pipeline_does() {
    // (question, database, sql, what the model answers to the routing request)
    let cases: &[(&str, &str, &str, Option<serde_json::Value>)] = &[
        (
            "How many urgent support tickets are still open?",
            "nlq_medium",
            "SELECT count(*) FROM crm.support_tickets",
            None, // lexical routing decides: no call
        ),
        (
            "How many work orders are in progress right now?",
            "nlq_large",
            "SELECT count(*) FROM mfg.work_orders",
            Some(json!({"database": "nlq_large", "candidates": ["nlq_large"],
                        "reason": "manufacturing"})),
        ),
        (
            "Which warehouses do we have and in which city is each?",
            "nlq_large",
            "SELECT count(*) FROM inventory.warehouses",
            Some(
                json!({"database": "nlq_medium", "candidates": ["nlq_medium"],
                        "reason": "logistics"}),
            ),
        ),
        (
            "How many customers are there?",
            "nlq_small",
            "SELECT count(*) FROM customers",
            Some(json!({"database": null,
                        "candidates": ["nlq_medium", "nlq_small", "nlq_large"],
                        "reason": "every database has customers"})),
        ),
        (
            "How many customers didn't give us a phone number?",
            "nlq_small",
            "SELECT count(*) FROM customers WHERE phone IS NULL",
            Some(
                json!({"database": null, "candidates": ["nlq_medium", "nlq_nowhere"],
                        "reason": "retail"}),
            ),
        ),
        (
            "How many orders were placed in 2024?",
            "nlq_small",
            "SELECT count(*) FROM orders",
            None, // the call fails (below)
        ),
    ];
    let answers: std::collections::HashMap<String, Option<serde_json::Value>> = cases
        .iter()
        .map(|(q, _, _, a)| (q.to_string(), a.clone()))
        .collect();
    let model = ScriptedOpenAi::with_responder(move |r| {
        let question = block_of(&r.messages_text, "question");
        match r.schema_name.as_str() {
            "table_selection" => Reply::Json(json!({"tables": [], "reason": "none"})),
            "database_choice" => match answers.get(&question) {
                Some(Some(answer)) => Reply::Json(answer.clone()),
                Some(None) if question.starts_with("How many orders") => Reply::Status(
                    401,
                    scripted_openai::error_body("bad key", "invalid_api_key"),
                ),
                _ => Reply::Status(
                    500,
                    json!({"error": {"message": format!("no routing call expected: {question}")}}),
                ),
            },
            other => Reply::Status(500, json!({"error": {"message": format!("{other}?")}})),
        }
    })
    .await;
    let dir = common::TempDir::new("eval-routing");
    let config = dir.write(
        "bridge.toml",
        &config_toml_with(
            Some(&model.base_url()),
            &["nlq_small", "nlq_medium", "nlq_large"],
            "",
        ),
    );
    let lines: String = cases
        .iter()
        .enumerate()
        .map(|(i, (q, db, sql, _))| {
            json!({"id": format!("R{i}"), "question": q, "database": db, "sql": sql}).to_string()
                + "\n"
        })
        .collect();
    let cases_path = dir.write("cases.jsonl", &lines);
    let out_dir = dir.path().join("out");
    let report = tokio::task::block_in_place(|| {
        eval_report(&config, &cases_path, &out_dir, &["--with-model"])
    });
    let routing = |id: &str| -> serde_json::Value {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["pipeline_routing"].clone())
            .unwrap_or_else(|| panic!("no result for {id}"))
    };
    assert_eq!(routing("R0")["by"], "lexical", "{}", routing("R0"));
    assert_eq!(routing("R0")["database"], "nlq_medium");
    assert_eq!(routing("R0")["tokens"], 0);
    assert_eq!(routing("R1")["by"], "model", "{}", routing("R1"));
    assert_eq!(routing("R1")["database"], "nlq_large");
    assert!(routing("R1")["tokens"].as_u64().unwrap() > 0);
    assert_eq!(routing("R2")["database"], "nlq_medium");
    assert!(routing("R3")["database"].is_null());
    // the model's candidates, in its order, as the AMBIGUOUS_QUERY error lists them
    assert_eq!(
        routing("R3")["candidates"],
        json!(["nlq_medium", "nlq_small", "nlq_large"])
    );
    // a name that is no database is not listed
    assert_eq!(routing("R4")["candidates"], json!(["nlq_medium"]));
    let failure = routing("R5")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(failure.starts_with("LLM_ERROR: "), "{failure}");
    let figures = &report["pipeline_routing"][0];
    assert_eq!(figures["language"], "en");
    assert_eq!(figures["cases"], 6);
    assert_eq!(figures["right"], 2, "{figures}");
    assert_eq!(figures["right_lexical"], 1, "{figures}");
    assert_eq!(figures["wrong"], 1, "{figures}");
    assert_eq!(figures["ambiguous_listing_right"], 1, "{figures}");
    assert_eq!(figures["ambiguous_without_right"], 1, "{figures}");
    assert_eq!(figures["failed"], 1, "{figures}");
    let summary = std::fs::read_to_string(out_dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("## Routing as the pipeline routes, with the model"),
        "{summary}"
    );
    assert!(
        summary.contains("| en | 6 | 2 | 1 | 1 | 1 | 1 | 1 | 0.333 |"),
        "{summary}"
    );
    assert!(
        summary.contains("with the model), no database named, en phrasings: accuracy 0.333"),
        "{summary}"
    );
}
