//! The built binary (`pg-nlq-bridge serve --config FILE`) over stdio, driven by the rmcp client
//! through `TokioChildProcess`, against the real test cluster, with the scripted
//! OpenAI-compatible server standing in for the model. Run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::process::Stdio;
use std::time::Duration;

use common::{call, config_toml, fenced, ok_structured, text_of, TempDir, CONFIG_ENV_VARS};
use mcp_bridge::mcp::UNTRUSTED_NOTICE;
use rmcp::model::ClientConfig;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use scripted_openai::{generate, route, verdict, ScriptedOpenAi, Step};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");

const TOP_BOOKS: &str =
    "SELECT title, list_price FROM public.books ORDER BY list_price DESC, id LIMIT 3";

/// `pg-nlq-bridge serve --config <config>` with no configuration from the environment.
fn serve_command(config: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command.arg("serve").arg("--config").arg(config);
    for var in CONFIG_ENV_VARS {
        command.env_remove(var);
    }
    command
}

#[tokio::test]
async fn stdio_session_routes_and_answers_in_both_mode() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("database_choice")
            .containing("nlq_small")
            .containing("nlq_medium")
            .reply(route(Some("nlq_small"), &["nlq_small"])),
        Step::expect("sql_answer")
            .containing("three most expensive books")
            .reply(generate(TOP_BOOKS)),
        Step::expect("result_verdict").reply(verdict(9, "the three most expensive books")),
    ])
    .await;
    let dir = TempDir::new("stdio");
    let config = dir.write(
        "bridge.toml",
        &config_toml(Some(&model.base_url()), &["nlq_small", "nlq_medium"]),
    );

    let transport = TokioChildProcess::new(serve_command(&config)).expect("spawn the binary");
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize over stdio");

    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("pg-nlq-bridge")
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    assert_eq!(tools.len(), 6, "{tools:?}");
    assert!(tools.iter().any(|t| t.name == "query"));

    let result = call(
        &client,
        "query",
        json!({"question": "What are the three most expensive books?", "return_mode": "both"}),
    )
    .await;
    let answer = ok_structured(&result);
    assert_eq!(answer["database"], "nlq_small", "{answer}");
    assert_eq!(answer["return_mode"], "both", "{answer}");
    assert_eq!(answer["sql"], TOP_BOOKS, "{answer}");
    let rows = answer["rows"].as_array().expect("rows in both mode");
    assert_eq!(rows.len(), 3, "{answer}");
    assert_eq!(answer["confidence"], 9, "{answer}");

    let text = text_of(&result);
    assert!(text.contains(TOP_BOOKS), "the text shows the SQL:\n{text}");
    let table = fenced(&text);
    assert!(table.contains(UNTRUSTED_NOTICE), "{text}");
    let first_title = rows[0][0].as_str().expect("a title");
    assert!(table.contains(first_title), "{text}");
    model.assert_done();

    client.cancel().await.expect("close the session");
}

#[tokio::test]
async fn stdio_server_exits_cleanly_when_stdin_closes() {
    let dir = TempDir::new("stdio-eof");
    let config = dir.write("bridge.toml", &config_toml(None, &["nlq_small"]));
    let mut command = serve_command(&config);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("spawn the binary");
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the server exits when stdin closes")
        .expect("wait for the binary");
    assert!(
        output.status.success(),
        "exit status {:?}, stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
