//! The evaluation with a model (`eval --with-model`, issue 13 item 6) end to end: cases over
//! the fixture database nlq_small through the whole pipeline, the scripted OpenAI-compatible
//! server standing in for the model (its answers chosen per question: right SQL, right SQL
//! with its columns in another order, SQL right only as a set, wrong SQL the verifier scores
//! low), the expected SQL run through the same bridge role. Checks execution accuracy in both
//! variants, attempts, the verifier's calibration, tokens and cost, what is excluded or
//! uncomparable, and that a second run over the same directory resumes without a model call.
//! Run through `make test-bridge` (NLQ_TEST_DSN, NLQ_TEST_BRIDGE_DSN).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use common::{config_toml, settings_from, start, TempDir};
use mcp_bridge::eval::cases::parse_cases_file;
use mcp_bridge::eval::model::{run_model, ModelResult, Prices, Runner};
use scripted_openai::{generate, verdict, Recorded, Reply, ScriptedOpenAi};

const CASES: &str = r#"{"id": "E1", "level": "simple", "database": "nlq_small", "question": "How many customers are there?", "sql": "SELECT count(*) FROM customers"}
{"id": "E2", "level": "simple", "database": "nlq_small", "question": "Which are the 3 cheapest books (lower id first on equal price)?", "sql": "SELECT id, title FROM books ORDER BY list_price, id LIMIT 3"}
{"id": "E3", "level": "medium", "database": "nlq_small", "question": "How many customers per country, most first?", "sql": "SELECT country, count(*) FROM customers GROUP BY country ORDER BY 2 DESC, 1"}
{"id": "E4", "level": "medium", "database": "nlq_small", "question": "How many orders were cancelled?", "sql": "SELECT count(*) FROM orders WHERE status = 'cancelled'"}
{"id": "E5", "level": "simple", "database": "nlq_small", "question": "有多少本书？", "sql": "SELECT count(*) FROM books"}
{"id": "E6", "level": "simple", "database": "nlq_small", "question": "How many widgets are there?", "sql": "SELECT count(*) FROM no_such_table"}
{"id": "E7", "level": "simple", "database": "nlq_small", "question": "List every book id.", "sql": "SELECT id FROM books ORDER BY id"}
"#;

/// The SQL the scripted model writes for each question, and the score its verifier gives.
fn script(question: &str) -> (&'static str, u8) {
    match question {
        "How many customers are there?" => {
            ("SELECT count(*) AS customers FROM public.customers", 9)
        }
        // the right rows, columns in another order
        q if q.starts_with("Which are the 3 cheapest") => (
            "SELECT title, id FROM public.books ORDER BY list_price, id LIMIT 3",
            8,
        ),
        // the right rows in the wrong order: right as a set only; the verifier is fooled
        q if q.starts_with("How many customers per country") => (
            "SELECT country, count(*) AS n FROM public.customers GROUP BY country ORDER BY 1",
            8,
        ),
        // wrong (no status filter), and the verifier says so every time
        "How many orders were cancelled?" => ("SELECT count(*) FROM public.orders", 3),
        "有多少本书？" => ("SELECT count(*) FROM public.books", 9),
        "List every book id." => ("SELECT id FROM public.books ORDER BY id", 9),
        _ => ("SELECT 1", 0),
    }
}

/// The question block of a request.
fn question_of(r: &Recorded) -> String {
    let text = &r.messages_text;
    let start = text
        .find("<question>\n")
        .map_or(0, |i| i + "<question>\n".len());
    let end = text[start..]
        .find("\n</question>")
        .map_or(text.len(), |i| start + i);
    text[start..end].to_string()
}

fn responder(r: &Recorded) -> Reply {
    let (sql, score) = script(&question_of(r));
    match r.schema_name.as_str() {
        "sql_answer" => generate(sql),
        "result_verdict" => verdict(score, "scripted verdict"),
        other => Reply::Status(
            500,
            serde_json::json!({"error": {"message": format!("unexpected {other}")}}),
        ),
    }
}

fn by_id<'a>(results: &'a [ModelResult], id: &str) -> &'a ModelResult {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no result for {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_is_scored_by_execution_accuracy_and_resumes() {
    let model = ScriptedOpenAi::with_responder(responder).await;
    let bridge = start(settings_from(&config_toml(
        Some(&model.base_url()),
        &["nlq_small"],
    )))
    .await;
    let cases = parse_cases_file(CASES).unwrap();
    let prices = Prices {
        input_per_million: 1.0,
        output_per_million: 10.0,
    };
    let runner = Runner {
        bridge: &bridge,
        row_limit: 50,
        prices,
    };
    let out = TempDir::new("eval_model");
    let report = run_model(&cases, &runner, None, out.path(), 3)
        .await
        .unwrap();
    assert!(model.problems().is_empty(), "{:?}", model.problems());
    let r = &report.results;
    assert_eq!(r.len(), 7);

    let e1 = by_id(r, "E1");
    assert!(e1.correct && e1.correct_set, "{e1:?}");
    assert_eq!((e1.attempts, e1.score), (1, Some(9)));
    assert!(e1.input_tokens > 0 && e1.output_tokens > 0);
    let cost = prices.cost(e1.input_tokens, e1.output_tokens);
    assert!((e1.cost_usd - cost).abs() < 1e-12 && e1.cost_usd > 0.0);

    let e2 = by_id(r, "E2");
    assert!(e2.correct, "column order is ignored: {e2:?}");
    // BIRD's set comparison takes the columns as given
    assert!(!e2.correct_set, "{e2:?}");

    let e3 = by_id(r, "E3");
    assert!(
        !e3.correct && e3.correct_set,
        "ordered rows in another order: {e3:?}"
    );

    let e4 = by_id(r, "E4");
    assert!(!e4.correct && !e4.correct_set, "{e4:?}");
    assert_eq!(e4.attempts, 3, "the low score made it regenerate: {e4:?}");
    assert!(e4.low_confidence && e4.score == Some(3));

    let e5 = by_id(r, "E5");
    assert_eq!(e5.language, "zh");
    assert!(e5.correct);

    let e6 = by_id(r, "E6");
    assert!(e6.excluded.is_some() && e6.sql.is_none(), "{e6:?}");
    assert_eq!(e6.attempts, 0, "no model call for an excluded case");

    let e7 = by_id(r, "E7");
    assert!(e7.uncomparable.is_some() && !e7.correct, "{e7:?}");

    let all = report
        .groups
        .iter()
        .find(|g| g.database == "all" && g.language == "all")
        .unwrap();
    // scored: E1–E5
    assert_eq!((all.cases, all.excluded, all.uncomparable), (7, 1, 1));
    // standard: E1, E2, E5; set: E1, E3, E5
    assert_eq!((all.correct, all.correct_set), (3, 3));
    assert!((all.accuracy - 0.6).abs() < 1e-9);
    assert!((all.accuracy_set - 0.6).abs() < 1e-9);
    // at or above 7: E1, E2, E3, E5 (E3 wrong); below: E4 (wrong)
    assert_eq!((all.above_correct, all.above_threshold), (3, 4));
    assert_eq!((all.below_correct, all.below_threshold), (0, 1));
    let total: f64 = r.iter().map(|x| x.cost_usd).sum();
    assert!((all.total_cost_usd - total).abs() < 1e-12);
    let summary = std::fs::read_to_string(out.path().join("model_summary.md")).unwrap();
    assert!(
        summary.contains("| all | all | all | 7 | 1 | 1 |"),
        "{summary}"
    );

    // a second run over the same directory asks the model nothing
    let asked = model.requests().len();
    let again = run_model(&cases, &runner, None, out.path(), 3)
        .await
        .unwrap();
    assert_eq!(model.requests().len(), asked);
    assert_eq!(again.results, report.results);
}

/// `eval --pipeline` without a model is refused and says what to set; its flags are checked.
#[test]
fn the_pipeline_run_needs_a_model_and_sane_flags() {
    let dir = TempDir::new("eval_model_cli");
    let config = dir.write("bridge.toml", &config_toml(None, &["nlq_small"]));
    let cases = dir.write("cases.jsonl", CASES);
    let run = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pg-nlq-bridge"));
        cmd.args(["eval", "--config", config.to_str().unwrap()])
            .args(["--cases", cases.to_str().unwrap()])
            .args(["--out", dir.path().join("out").to_str().unwrap()])
            .args(extra);
        for var in common::CONFIG_ENV_VARS {
            cmd.env_remove(var);
        }
        let out = cmd.output().expect("run pg-nlq-bridge");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, stderr) = run(&["--pipeline"]);
    assert!(
        !ok && stderr.contains("eval --pipeline needs a model"),
        "{stderr}"
    );
    assert!(stderr.contains("OPENAI_API_KEY"), "{stderr}");
    let (ok, stderr) = run(&["--pipeline", "--jobs", "0"]);
    assert!(!ok && stderr.contains("--jobs"), "{stderr}");

    // with a model configured (never reached: the flags are refused before any work)
    std::fs::write(
        &config,
        config_toml(Some("http://127.0.0.1:9/v1"), &["nlq_small"]),
    )
    .unwrap();
    let (ok, stderr) = run(&["--pipeline", "--price-input=-1"]);
    assert!(
        !ok && stderr.contains("--price-input must be a price"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--pipeline", "--price-output", "NaN"]);
    assert!(
        !ok && stderr.contains("--price-output must be a price"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--pipeline", "--eval-rows", "2000000"]);
    assert!(!ok && stderr.contains("pipeline.max_row_limit"), "{stderr}");
    assert!(!dir.path().join("out").join("report.json").exists());
}
