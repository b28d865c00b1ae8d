//! What the bridge's integration tests share: the test cluster's DSNs (failing, never skipping,
//! without them), a configuration (as TOML, for the binary, and as `Settings`, in process),
//! scratch databases, temporary directories, and helpers to call MCP tools and read their
//! results.

#![allow(dead_code, deprecated, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mcp_bridge::bridge::Bridge;
use mcp_bridge::settings::Settings;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, Implementation, JsonObject, SamplingMessage,
};
use rmcp::service::{RequestContext, RunningService, Service};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{json, Value};

/// The cluster to test against; failing, never skipping, when it is not given.
pub fn test_dsn() -> String {
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

/// The least-privilege role the bridge connects as (`make bridge-role`), as a libpq
/// connection string without dbname; failing, never skipping, when it is not given.
pub fn bridge_dsn() -> String {
    match std::env::var("NLQ_TEST_BRIDGE_DSN") {
        Ok(dsn) if !dsn.trim().is_empty() => dsn,
        _ => panic!(
            "NLQ_TEST_BRIDGE_DSN is not set: the bridge under test connects as the \
             least-privilege role nlq_bridge. Run the tests through `make test-bridge`, which \
             creates the role (make bridge-role) and sets it."
        ),
    }
}

/// The API key the tests configure (the scripted server checks a bearer token is sent).
pub const TEST_API_KEY: &str = "sk-test-mcp";

/// A configuration for the test cluster's `databases`, with the scripted model at `base_url`
/// (and an API key) or with no model at all.
pub fn config_toml(base_url: Option<&str>, databases: &[&str]) -> String {
    config_toml_with(base_url, databases, "")
}

/// [`config_toml`] with `extra` after the `[database]` settings: more of them, or more
/// sections and servers.
pub fn config_toml_with(base_url: Option<&str>, databases: &[&str], extra: &str) -> String {
    let model = match base_url {
        Some(url) => format!(
            "[model]\napi_key = \"{TEST_API_KEY}\"\nbase_url = \"{url}\"\nmodel = \"gpt-5-mini\"\n\
             max_retries = 0\n"
        ),
        None => String::new(),
    };
    let list = databases
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{model}[pipeline]\nmax_attempts = 3\nverify_threshold = 7\n\
         [database]\nstartup_timeout_secs = 60\npool_size = 2\n{extra}\n\
         [[servers]]\nname = \"local\"\nurl = \"{} dbname=postgres\"\ndatabases = [{list}]\n\
         [servers.descriptions]\nnlq_small = \"bookshop: books, authors, customers, orders\"\n",
        bridge_dsn()
    )
}

/// `text` as `Settings`, with no environment overrides.
pub fn settings_from(text: &str) -> Settings {
    Settings::from_toml(
        text,
        "test configuration",
        &BTreeMap::<String, String>::new(),
    )
    .unwrap_or_else(|e| panic!("test settings: {e}"))
}

/// [`config_toml`] as `Settings`.
pub fn settings(base_url: Option<&str>, databases: &[&str]) -> Settings {
    settings_from(&config_toml(base_url, databases))
}

/// A bridge started with `settings`.
pub async fn start(settings: Settings) -> Arc<Bridge> {
    Bridge::start(settings)
        .await
        .unwrap_or_else(|e| panic!("the bridge did not start: {e}"))
}

/// A started bridge over the test cluster.
pub async fn bridge(base_url: Option<&str>, databases: &[&str]) -> Arc<Bridge> {
    start(settings(base_url, databases)).await
}

/// A direct connection, as the superuser, to a database of the test cluster, for set-up and
/// cross-checks.
pub async fn pg(db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!("{} dbname={db}", test_dsn()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("cannot connect to {db}: {e}"));
    tokio::spawn(connection);
    client
}

/// A fresh scratch database `db` with pg_nlq, whose tables in `public` the bridge role may
/// read, after running `setup` in it; drop it with [`drop_db`].
pub async fn scratch_db(db: &str, setup: &str) -> tokio_postgres::Client {
    empty_db(db).await;
    let client = pg(db).await;
    client
        .batch_execute(&format!(
            "CREATE EXTENSION pg_nlq; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO nlq_bridge; {setup}"
        ))
        .await
        .unwrap();
    client
}

/// A new database `db` (dropped first if it exists), without pg_nlq.
pub async fn empty_db(db: &str) {
    drop_db(db).await;
    pg("postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
}

/// Drops the database `db` if it exists, closing its sessions.
pub async fn drop_db(db: &str) {
    pg("postgres")
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}

/// A directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pg-nlq-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Variables that would change the binary's configuration behind the test's back.
pub const CONFIG_ENV_VARS: [&str; 6] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "NLQ_MODEL",
    "NLQ_REASONING_EFFORT",
    "NLQ_DATABASE_URL",
    "NLQ_CONFIG",
];

/// A JSON object as tool arguments.
pub fn args(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        other => panic!("tool arguments must be an object, not {other}"),
    }
}

/// Calls a tool; a protocol error fails the test.
pub async fn call<S: Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    name: &'static str,
    arguments: Value,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed at the protocol level: {e}"))
}

/// The text blocks of a result, joined.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text())
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The structured content of a successful result; panics with the text otherwise.
pub fn ok_structured(result: &CallToolResult) -> Value {
    assert_ne!(
        result.is_error,
        Some(true),
        "expected success, got an error: {}",
        text_of(result)
    );
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content in: {}", text_of(result)))
}

/// The structured `ToolError` of a failed result; panics otherwise.
pub fn err_structured(result: &CallToolResult) -> Value {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected an error, got: {}",
        text_of(result)
    );
    result
        .structured_content
        .clone()
        .unwrap_or_else(|| panic!("no structured content in: {}", text_of(result)))
}

/// Every part of a text between untrusted-data fence lines, joined; panics when there is none.
pub fn fenced(text: &str) -> String {
    // every fenced block, in order (an answer fences the model's SQL, then the rows)
    let mut blocks = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(mcp_bridge::mcp::UNTRUSTED_OPEN) {
        let close = rest[open..]
            .find(mcp_bridge::mcp::UNTRUSTED_CLOSE)
            .map(|c| open + c)
            .unwrap_or_else(|| panic!("a fence that never closes in:\n{text}"));
        blocks.push_str(&rest[open..close]);
        rest = &rest[close + mcp_bridge::mcp::UNTRUSTED_CLOSE.len()..];
    }
    assert!(!blocks.is_empty(), "no <untrusted-data> fence in:\n{text}");
    blocks
}

/// The SQL [`SamplingClient`]'s "model" writes (the fixture nlq_small has 2500 customers).
pub const SAMPLED_SQL: &str = "SELECT count(*) AS customers FROM public.customers";

/// A client whose "model" answers the bridge's sampling requests with canned JSON, chosen by
/// the reply schema the system prompt names, and records what it was asked.
#[derive(Clone, Default)]
pub struct SamplingClient {
    pub requests: Arc<Mutex<Vec<CreateMessageRequestParams>>>,
}

impl ClientHandler for SamplingClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_sampling().build(),
            Implementation::new("nlq-sampling-test", "0.0.0"),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.requests.lock().unwrap().push(params.clone());
        let system = params.system_prompt.clone().unwrap_or_default();
        let reply = if system.contains("sql_answer") {
            json!({"sql": SAMPLED_SQL, "explanation": "Counts the customers.", "assumptions": []})
        } else if system.contains("result_verdict") {
            json!({"score": 9, "reasons": "Counts every customer.", "critique": ""})
        } else {
            return Err(ErrorData::invalid_request(
                "unexpected sampling request",
                None,
            ));
        };
        // Wrapped in a Markdown fence, as chat models often do.
        Ok(CreateMessageResult::new(
            SamplingMessage::assistant_text(format!("```json\n{reply}\n```")),
            "client-test-model".to_string(),
        )
        .with_stop_reason(CreateMessageResult::STOP_REASON_END_TURN))
    }
}
