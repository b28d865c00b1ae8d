//! The built binary serving streamable HTTP (`pg-nlq-bridge serve --http 127.0.0.1:0`): the
//! rmcp streamable HTTP client lists databases and asks a question (the scripted
//! OpenAI-compatible server standing in for the model); requests naming a foreign Host or
//! Origin are refused (DNS rebinding); SIGTERM stops it with a session still open; a
//! non-loopback address is refused. Run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    bridge, call, config_toml, fenced, ok_structured, text_of, SamplingClient, TempDir,
    CONFIG_ENV_VARS, SAMPLED_SQL,
};
use rmcp::model::ClientConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use scripted_openai::{generate, verdict, ScriptedOpenAi, Step};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");

/// The binary serving HTTP, its URL, and what it wrote to stderr so far.
struct HttpBridge {
    child: tokio::process::Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl HttpBridge {
    /// Starts `serve --http <addr> --config <config>` and waits for its `listening on` line.
    async fn start(config: &std::path::Path, addr: &str) -> HttpBridge {
        let mut command = tokio::process::Command::new(BIN);
        command
            .args(["serve", "--http", addr, "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for var in CONFIG_ENV_VARS {
            command.env_remove(var);
        }
        let mut child = command.spawn().expect("spawn the binary");
        let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let url = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                stderr.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(url) = line.strip_prefix("listening on ") {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .expect("the server says where it listens within 120 s");
        let Some(url) = url else {
            panic!(
                "the server exited without listening; stderr:\n{}",
                stderr.lock().unwrap()
            )
        };
        // Keep draining stderr so that the child never blocks on a full pipe.
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        HttpBridge { child, url, stderr }
    }

    /// Sends SIGTERM and waits for a successful exit.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("the server is running");
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not stop within 20 s of SIGTERM; stderr:\n{}",
                    self.stderr.lock().unwrap()
                )
            })
            .expect("wait for the server");
        assert!(
            exit.success(),
            "exit status {exit:?} after SIGTERM; stderr:\n{}",
            self.stderr.lock().unwrap()
        );
    }
}

const COUNT_ORDERS: &str = "SELECT count(*) AS orders FROM public.orders";

#[tokio::test]
async fn http_session_lists_databases_and_answers() {
    let model = ScriptedOpenAi::start(vec![
        Step::expect("sql_answer")
            .containing("How many orders")
            .reply(generate(COUNT_ORDERS)),
        Step::expect("result_verdict").reply(verdict(10, "counts the orders")),
    ])
    .await;
    let dir = TempDir::new("http");
    let config = dir.write(
        "bridge.toml",
        &config_toml(Some(&model.base_url()), &["nlq_small", "nlq_medium"]),
    );
    let server = HttpBridge::start(&config, "127.0.0.1:0").await;
    assert!(
        server.url.starts_with("http://127.0.0.1:") && server.url.ends_with("/mcp"),
        "{}",
        server.url
    );
    assert!(
        !server.url.ends_with(":0/mcp"),
        "the real port is printed: {}",
        server.url
    );

    let transport = StreamableHttpClientTransport::from_uri(server.url.clone());
    let client = ClientConfig::default()
        .serve(transport)
        .await
        .expect("initialize over streamable HTTP");

    let listed = ok_structured(&call(&client, "list_databases", json!({})).await);
    let names: Vec<&str> = listed["databases"]
        .as_array()
        .expect("databases")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        names.contains(&"nlq_small") && names.contains(&"nlq_medium"),
        "{listed}"
    );

    let result = call(
        &client,
        "query",
        json!({"question": "How many orders are there?", "database": "nlq_small"}),
    )
    .await;
    let answer = ok_structured(&result);
    assert_eq!(answer["sql"], COUNT_ORDERS, "{answer}");
    assert_eq!(answer["rows"].as_array().map(Vec::len), Some(1), "{answer}");
    let count = answer["rows"][0][0].as_i64().expect("a count");
    assert!(count > 0, "{answer}");
    assert!(fenced(&text_of(&result)).contains(&count.to_string()));
    model.assert_done();

    // SIGTERM with the session still open: the server ends the session and exits.
    server.terminate().await;
    drop(client);
}

#[tokio::test]
async fn foreign_host_and_origin_are_refused() {
    let dir = TempDir::new("http-rebind");
    let config = dir.write("bridge.toml", &config_toml(None, &["nlq_small"]));
    let server = HttpBridge::start(&config, "127.0.0.1:0").await;
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "probe", "version": "0"}}
    });
    let http = reqwest::Client::new();
    let post = |headers: &[(&str, &str)]| {
        let mut request = http
            .post(&server.url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(initialize.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };

    let ok = post(&[]).await.expect("POST initialize");
    assert!(
        ok.status().is_success(),
        "plain initialize: {}",
        ok.status()
    );
    let local_origin = post(&[("origin", "http://localhost:3000")]).await.unwrap();
    assert!(
        local_origin.status().is_success(),
        "{}",
        local_origin.status()
    );

    let rebound = post(&[("host", "evil.example:80")]).await.unwrap();
    assert!(
        rebound.status().is_client_error(),
        "a foreign Host is refused, got {}",
        rebound.status()
    );
    let cross_site = post(&[("origin", "https://evil.example")]).await.unwrap();
    assert!(
        cross_site.status().is_client_error(),
        "a foreign Origin is refused, got {}",
        cross_site.status()
    );
    server.terminate().await;
}

#[tokio::test]
async fn non_loopback_address_is_refused() {
    let dir = TempDir::new("http-remote");
    let config = dir.write("bridge.toml", &config_toml(None, &["nlq_small"]));
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(["serve", "--http", "0.0.0.0:0", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in CONFIG_ENV_VARS {
        command.env_remove(var);
    }
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        command
            .spawn()
            .expect("spawn the binary")
            .wait_with_output(),
    )
    .await
    .expect("the binary exits")
    .expect("wait for the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "0.0.0.0 must be refused; stderr:\n{stderr}"
    );
    assert!(stderr.contains("error[CONFIG_ERROR]"), "{stderr}");
    assert!(stderr.contains("no authentication"), "{stderr}");
    assert!(stderr.contains("--allow-remote"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

/// In process through [`mcp_bridge::mcp::bind_http`] (port 0, the real port learnt from the
/// bound server): with no API key, `query` is answered by the client's model through sampling
/// over streamable HTTP (a server-to-client request inside the tool call's event stream).
#[tokio::test]
async fn sampling_over_streamable_http() {
    let server = mcp_bridge::mcp::bind_http(
        bridge(None, &["nlq_small"]).await,
        "127.0.0.1:0".parse().unwrap(),
        false,
    )
    .await
    .expect("bind 127.0.0.1:0");
    assert_ne!(server.local_addr().port(), 0);
    let url = server.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));

    let sampler = SamplingClient::default();
    let client = sampler
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(url))
        .await
        .expect("initialize over streamable HTTP");
    let result = call(
        &client,
        "query",
        json!({"question": "How many customers are there?", "database": "nlq_small"}),
    )
    .await;
    let answer = ok_structured(&result);
    assert_eq!(answer["model"], "client sampling", "{answer}");
    assert_eq!(answer["sql"], SAMPLED_SQL, "{answer}");
    assert_eq!(answer["rows"], json!([[2500]]), "{answer}");
    assert_eq!(sampler.requests.lock().unwrap().len(), 2);

    // Stopping with the session open: the sessions are cancelled and the server returns.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), serving)
        .await
        .expect("the server stops within 20 s")
        .expect("join the server task")
        .expect("the server stops cleanly");
    drop(client);
}
