//! Secrets never printed (issue 10): a password and an API key are planted in the
//! configuration, every failure these tests provoke is provoked through the built binary at
//! RUST_LOG=trace (a hostile endpoint echoing the key plain, JSON-escaped and URL-encoded, a
//! redirect, database errors, mistyped URL schemes, unparseable configurations, a dead
//! server, an MCP session over stdio), and stdout, stderr (logs included) and the MCP results
//! are searched for the password, the key and every 8 characters of either, in each encoding.
//! Run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bridge_dsn, call, text_of, TempDir, CONFIG_ENV_VARS};
use rmcp::model::ClientConfig;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use scripted_openai::{Reply, ScriptedOpenAi};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");
const PASSWORD: &str = "pw-planted-Zq8Xv2Lm5Nc";
const KEY: &str = "sk-planted-Hj4Kl7Mn0Pq3Rs6Tu9Vw";

fn encodings(secret: &str) -> Vec<String> {
    let chars: Vec<char> = secret.chars().collect();
    let mut forms = Vec::new();
    for piece in chars.windows(8) {
        let piece: String = piece.iter().collect();
        forms.push(
            piece
                .chars()
                .map(|c| format!("\\u{:04x}", c as u32))
                .collect(),
        );
        forms.push(piece.bytes().map(|b| format!("%{b:02X}")).collect());
        forms.push(piece);
    }
    forms
}

/// Everything the runs printed, with what produced it.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: &str, text: impl Into<String>) {
        self.0.push((what.to_string(), text.into()));
    }

    fn assert_clean(&self) {
        let forms: Vec<String> = encodings(PASSWORD)
            .into_iter()
            .chain(encodings(KEY))
            .collect();
        let mut leaks = Vec::new();
        for (what, text) in &self.0 {
            for form in &forms {
                if text.contains(form.as_str()) {
                    leaks.push(format!("{what}: {form:?} in\n{text}"));
                    break;
                }
            }
        }
        assert!(leaks.is_empty(), "secrets printed:\n{}", leaks.join("\n\n"));
    }
}

async fn run(args: &[&str], config: Option<&std::path::Path>, seen: &mut Seen, what: &str) {
    let mut command = tokio::process::Command::new(BIN);
    command.args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    for var in CONFIG_ENV_VARS {
        command.env_remove(var);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no end within 120 s"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.trim().is_empty(), "{what}: nothing on stderr");
    seen.add(
        &format!("{what} (stdout)"),
        String::from_utf8_lossy(&out.stdout),
    );
    seen.add(&format!("{what} (stderr)"), stderr);
}

/// An endpoint that echoes the key in every way it can, one way per request.
async fn echoing_endpoint() -> ScriptedOpenAi {
    let count = Arc::new(AtomicUsize::new(0));
    ScriptedOpenAi::hostile(move |r| {
        let json_escaped: String = KEY
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let url_encoded: String = KEY.bytes().map(|b| format!("%{b:02X}")).collect();
        let n = count.fetch_add(1, Ordering::SeqCst);
        if r.path.ends_with("/models") {
            return Reply::Raw(
                401,
                format!(r#"{{"error": {{"message": "Incorrect API key {json_escaped}"}}}}"#),
            );
        }
        match n % 5 {
            0 => Reply::Raw(
                500,
                json!({"error": {"message": format!("upstream said key={url_encoded}")}})
                    .to_string(),
            ),
            1 => Reply::Raw(
                401,
                format!(
                    r#"{{"error": {{"message": "{} {json_escaped}"}}}}"#,
                    "x".repeat(290)
                ),
            ),
            2 => Reply::Content(format!("not json, but the key {KEY}")),
            3 => Reply::Redirect(307, format!("http://127.0.0.1:9/?k={KEY}")),
            _ => Reply::Raw(400, format!("<html>{KEY} {PASSWORD}</html>")),
        }
    })
    .await
}

fn config(base_url: &str, server_url: &str) -> String {
    format!(
        "[model]\napi_key = \"{KEY}\"\nbase_url = \"{base_url}\"\nmax_retries = 1\n\
         request_timeout_secs = 5\n\
         [pipeline]\nmax_attempts = 2\n\
         [database]\nstartup_timeout_secs = 30\nconnect_timeout_secs = 2\n\
         [[servers]]\nname = \"local\"\nurl = \"{server_url}\"\ndatabases = [\"nlq_small\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_output_channel_shows_a_planted_password_or_key() {
    let endpoint = echoing_endpoint().await;
    let dir = TempDir::new("secrets");
    let mut seen = Seen::default();
    let good = dir.write(
        "good.toml",
        &config(
            &endpoint.base_url(),
            &format!("{} dbname=postgres password={PASSWORD}", bridge_dsn()),
        ),
    );

    run(&["check-config"], Some(&good), &mut seen, "check-config").await;
    for round in 0..3 {
        run(
            &["ask", "how many customers are there?", "--db", "nlq_small"],
            Some(&good),
            &mut seen,
            &format!("ask {round}"),
        )
        .await;
    }
    run(
        &["ask", "how many customers?", "--db", "nlq_small", "--json"],
        Some(&good),
        &mut seen,
        "ask --json",
    )
    .await;
    for sql in [
        "SELECT 'pw-planted-Zq8Xv2Lm5Nc'::int",
        "SELECT 1/0",
        "DROP TABLE customers",
        "SELECT * FROM no_such_table",
    ] {
        run(
            &["run", sql, "--db", "nlq_small"],
            Some(&good),
            &mut seen,
            sql,
        )
        .await;
    }

    // URLs the bridge cannot use, password included
    for (i, url) in [
        format!("postgress://nlq_bridge:{PASSWORD}@127.0.0.1:1/postgres"),
        format!("POSTGRES://nlq_bridge:{PASSWORD}@127.0.0.1:1/postgres"),
        format!("jdbc:postgresql://nlq_bridge:{PASSWORD}@127.0.0.1:1/postgres"),
        format!("postgresql+psycopg://nlq_bridge:{PASSWORD}@127.0.0.1:1/postgres"),
        format!("postgres://nlq_bridge:{PASSWORD}@127.0.0.1:1/postgres"),
        format!("host=127.0.0.1 port=1 password={PASSWORD} connect_timeout=1"),
        format!("host=127.0.0.1 port=nope password='{PASSWORD}'"),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.write(&format!("url{i}.toml"), &config(&endpoint.base_url(), url));
        run(
            &["serve"],
            Some(&path),
            &mut seen,
            &format!("serve with {i}"),
        )
        .await;
        run(
            &["check-config"],
            Some(&path),
            &mut seen,
            &format!("check-config with {i}"),
        )
        .await;
        run(
            &["snapshot", "--database", url],
            None,
            &mut seen,
            &format!("snapshot with {i}"),
        )
        .await;
    }
    // a configuration that is not TOML, on the line of the password
    let broken = dir.write(
        "broken.toml",
        &format!("[[servers]]\nurl = \"postgres://u:{PASSWORD}@h/db\" oops\n"),
    );
    run(&["check-config"], Some(&broken), &mut seen, "broken TOML").await;
    let unknown = dir.write(
        "unknown.toml",
        &format!("[model]\napi_key = \"{KEY}\"\napi_kee = \"{KEY}\"\n"),
    );
    run(&["check-config"], Some(&unknown), &mut seen, "unknown key").await;

    // an MCP session over stdio: the results, and the server's stderr
    let log = dir.path().join("stdio.log");
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("serve")
        .arg("--config")
        .arg(&good)
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).unwrap());
    for var in CONFIG_ENV_VARS {
        command.env_remove(var);
    }
    let transport = TokioChildProcess::new(command).expect("spawn the binary");
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize over stdio");
    for (tool, args) in [
        (
            "query",
            json!({"question": "how many customers?", "database": "nlq_small"}),
        ),
        ("query", json!({"question": "how many books?"})),
        (
            "run_sql",
            json!({"sql": "SELECT 'pw-planted-Zq8Xv2Lm5Nc'::int"}),
        ),
        (
            "validate_sql",
            json!({"sql": "SELECT * FROM \"pw-planted-Zq8Xv2Lm5Nc\""}),
        ),
        ("list_databases", json!({})),
        ("describe_schema", json!({"database": "nope"})),
    ] {
        let result = call(&client, tool, args).await;
        seen.add(&format!("MCP {tool} (text)"), text_of(&result));
        seen.add(
            &format!("MCP {tool} (structured)"),
            serde_json::to_string(&result.structured_content).unwrap(),
        );
    }
    client.cancel().await.ok();
    seen.add("MCP server stderr", std::fs::read_to_string(&log).unwrap());

    assert!(endpoint.requests().len() >= 5, "the endpoint was asked");
    assert!(
        seen.0.iter().any(|(_, text)| text.contains("TRACE")),
        "no run logged at trace level"
    );
    seen.assert_clean();
}
