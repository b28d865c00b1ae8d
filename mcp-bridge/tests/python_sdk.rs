//! The built binary driven over stdio by the official Python MCP SDK (`mcp` on PyPI, installed
//! by `make python-mcp` into a virtual environment): `tests/python/mcp_client.py` initializes,
//! lists the tools, calls list_databases, run_sql and query, and prints what it saw as JSON,
//! checked here. A second run has no API key and lets the Python client answer through
//! sampling. The scripted OpenAI-compatible server stands in for the model. Run through
//! `make test-bridge`, which sets NLQ_PYTHON.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::path::PathBuf;
use std::time::Duration;

use common::{config_toml, TempDir, CONFIG_ENV_VARS};
use mcp_bridge::mcp::{UNTRUSTED_CLOSE, UNTRUSTED_OPEN};
use scripted_openai::{generate, verdict, ScriptedOpenAi, Step};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");
const COUNT_SQL: &str = "SELECT count(*) AS customers FROM public.customers";

/// The Python with the MCP SDK: `NLQ_PYTHON`, else the virtual environment `make python-mcp`
/// creates. Missing is a failure, never a skip.
fn python() -> PathBuf {
    let path = match std::env::var("NLQ_PYTHON") {
        Ok(p) if !p.trim().is_empty() => PathBuf::from(p),
        _ => {
            let state = std::env::var("NLQ_STATE")
                .unwrap_or_else(|_| "/var/lib/postgresql/pg_nlq".to_string());
            PathBuf::from(state).join("venv/bin/python")
        }
    };
    if !path.exists() {
        panic!(
            "no Python with the MCP SDK at {}: run `make python-mcp` (it creates the virtual \
             environment and installs the pinned `mcp` package), or set NLQ_PYTHON to a Python \
             that has it. `make test-bridge` does both.",
            path.display()
        );
    }
    path
}

/// Runs the Python client against the binary with `config`; returns its JSON report.
async fn run_client(config: &std::path::Path, extra: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_client.py");
    let mut command = tokio::process::Command::new(python());
    command
        .arg(&script)
        .arg(BIN)
        .arg(config)
        .args(extra)
        .kill_on_drop(true);
    for var in CONFIG_ENV_VARS {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .expect("the Python client finishes within 180 s")
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({:?}).\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the Python client printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

#[tokio::test]
async fn python_sdk_client_uses_every_kind_of_tool() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("sql_answer")
            .containing("How many customers are there?")
            .reply(generate(COUNT_SQL)),
        Step::expect("result_verdict").reply(verdict(9, "counts every customer")),
    ])
    .await;
    let dir = TempDir::new("python");
    let config = dir.write(
        "bridge.toml",
        &config_toml(Some(&model.base_url()), &["nlq_small", "nlq_medium"]),
    );
    let report = run_client(&config, &[]).await;

    assert_eq!(report["server_name"], "pg-nlq-bridge", "{report}");
    assert_eq!(
        report["server_version"],
        env!("CARGO_PKG_VERSION"),
        "{report}"
    );
    assert!(
        report["instructions"]
            .as_str()
            .unwrap_or("")
            .contains("untrusted"),
        "{report}"
    );
    let tools = report["tools"].as_object().expect("tools");
    assert_eq!(tools.len(), 6, "{report}");
    for (name, tool) in tools {
        assert_eq!(tool["read_only"], true, "{name}: {tool}");
        assert_eq!(tool["destructive"], false, "{name}: {tool}");
    }
    assert_eq!(tools["query"]["required"], json!(["question"]));
    for (name, tool) in tools {
        assert_eq!(tool["output_schema_type"], "object", "{name}: {tool}");
    }

    // The SDK validated every successful result against its tool's output schema (it raises
    // otherwise); the errors were validated through its `validate_tool_result`.
    for name in ["validate_sql", "describe_schema", "refresh_schema"] {
        let result = &report[name];
        assert_eq!(result["is_error"], false, "{name}: {result}");
        assert_eq!(result["conforms"], true, "{name}: {result}");
    }
    let errors = report["errors"].as_object().expect("errors");
    assert_eq!(errors.len(), 4, "{report}");
    for (name, result) in errors {
        assert_eq!(result["is_error"], true, "{name}: {result}");
        assert_eq!(result["conforms"], true, "{name}: {result}");
        assert!(result["structured"]["code"].is_string(), "{name}: {result}");
    }
    assert_eq!(errors["run_sql"]["structured"]["database"], "nlq_small");
    assert_eq!(errors["query"]["structured"]["code"], "UNKNOWN_DATABASE");

    let listed = &report["list_databases"];
    assert_eq!(listed["is_error"], false, "{listed}");
    let names: Vec<&str> = listed["structured"]["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"nlq_small") && names.contains(&"nlq_medium"),
        "{listed}"
    );

    let run = &report["run_sql"];
    assert_eq!(run["is_error"], false, "{run}");
    assert_eq!(
        run["structured"]["rows"].as_array().map(Vec::len),
        Some(2),
        "{run}"
    );
    let text = run["text"].as_str().unwrap_or("");
    assert!(
        text.contains(UNTRUSTED_OPEN) && text.contains(UNTRUSTED_CLOSE),
        "{text}"
    );
    assert!(text.contains("The Last Broken City"), "{text}");

    let query = &report["query"];
    assert_eq!(query["is_error"], false, "{query}");
    assert_eq!(query["structured"]["sql"], COUNT_SQL, "{query}");
    assert_eq!(query["structured"]["rows"], json!([[2500]]), "{query}");
    assert!(
        query["text"].as_str().unwrap_or("").contains(COUNT_SQL),
        "{query}"
    );
    model.assert_done();
}

#[tokio::test]
async fn python_sdk_client_answers_through_sampling() {
    let dir = TempDir::new("python-sampling");
    let config = dir.write("bridge.toml", &config_toml(None, &["nlq_small"]));
    let report = run_client(&config, &["--sampling"]).await;

    let query = &report["query"];
    assert_eq!(query["is_error"], false, "{query}");
    assert_eq!(query["structured"]["model"], "client sampling", "{query}");
    assert_eq!(query["structured"]["sql"], COUNT_SQL, "{query}");
    assert_eq!(query["structured"]["rows"], json!([[2500]]), "{query}");
    let sampled = report["sampled"].as_array().expect("sampling requests");
    assert_eq!(sampled.len(), 2, "generate and verify: {report}");
    for request in sampled {
        assert_eq!(request["system_has_schema"], true, "{request}");
        assert_eq!(request["include_context"], "none", "{request}");
    }
}
