//! The bridge's configuration: a TOML file (path from `--config` or `NLQ_CONFIG`) plus
//! environment overrides, with `${VAR}` expansion in string values. Secrets (the API key,
//! passwords in server URLs) are never logged or shown: see [`Settings::describe`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::DatabaseConfig;
use crate::error::BridgeError;

/// Default model.
pub const DEFAULT_MODEL: &str = "gpt-5-mini";
/// Default OpenAI-compatible endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// One PostgreSQL server the bridge may use.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Short name for messages ("local", or host:port when not given).
    pub name: String,
    /// Connection string; its dbname is where discovery connects (default `postgres`).
    pub connection: DatabaseConfig,
    /// `None`: discover; `Some`: exactly these databases.
    pub databases: Option<Vec<String>>,
    /// Databases never used, even when discovered.
    pub exclude: Vec<String>,
    /// Per-database descriptions, shown to the model when routing and in `list_databases`.
    pub descriptions: BTreeMap<String, String>,
}

/// How a model request asks for its JSON reply (`model.structured_output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StructuredOutput {
    /// `response_format: {type: "json_schema", json_schema: {strict: true, ...}}`: the endpoint
    /// holds the reply to the schema (OpenAI, recent Azure OpenAI, vLLM's guided decoding).
    #[default]
    JsonSchema,
    /// `response_format: {type: "json_object"}`: any JSON object; the schema is stated in the
    /// instructions (endpoints without JSON schema support).
    JsonObject,
    /// No `response_format`: the schema is stated in the instructions only.
    None,
}

impl StructuredOutput {
    pub const ALL: [StructuredOutput; 3] = [
        StructuredOutput::JsonSchema,
        StructuredOutput::JsonObject,
        StructuredOutput::None,
    ];

    /// The configuration's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StructuredOutput::JsonSchema => "json_schema",
            StructuredOutput::JsonObject => "json_object",
            StructuredOutput::None => "none",
        }
    }

    /// The mode spelt `text`, if any.
    pub fn parse(text: &str) -> Option<StructuredOutput> {
        Self::ALL.into_iter().find(|m| m.as_str() == text.trim())
    }
}

/// The language model.
#[derive(Clone)]
pub struct ModelSettings {
    pub api_key: Option<String>,
    pub base_url: String,
    pub model: String,
    /// `minimal`, `low`, `medium`, `high`; `None`: the endpoint's default.
    pub reasoning_effort: Option<String>,
    pub request_timeout: Duration,
    /// Retries of one request on a transient failure (429, 5xx, timeout).
    pub max_retries: u32,
    /// How requests ask for the JSON reply.
    pub structured_output: StructuredOutput,
}

impl std::fmt::Debug for ModelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSettings")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("reasoning_effort", &self.reasoning_effort)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("structured_output", &self.structured_output)
            .finish()
    }
}

/// How the pipeline behaves.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Generate → validate → run → verify rounds before giving up.
    pub max_attempts: u32,
    /// Lowest verifier score (0–10) accepted.
    pub verify_threshold: u8,
    /// Whether to verify results with the model at all.
    pub verify: bool,
    /// Rows returned when the caller does not say.
    pub default_row_limit: u32,
    /// Most rows a caller may ask for.
    pub max_row_limit: u32,
    /// Rows of the test run in `sql` mode.
    pub sql_mode_test_limit: u32,
    /// Rows shown to the verifier.
    pub verify_sample_rows: usize,
    /// Longest question accepted, in characters.
    pub max_question_chars: usize,
}

/// Connections and the schema cache.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Connections per database.
    pub pool_size: usize,
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one statement the bridge sends (snapshot, fingerprint,
    /// `nlq_validate`, `nlq_run`, discovery): the server's own `pg_nlq.statement_timeout`
    /// normally ends a query first; this bound is for a server or network that stops answering.
    pub query_timeout: Duration,
    /// How long start-up waits for snapshots before serving (down databases are retried in
    /// the background).
    pub startup_timeout: Duration,
    /// A cached snapshot is checked against `nlq_schema_fingerprint()` at most this often.
    pub fingerprint_check_interval: Duration,
    /// How often an unavailable database is retried.
    pub retry_interval: Duration,
    /// Whether snapshots include column statistics (common values).
    pub include_stats: bool,
}

/// The streamable HTTP transport's limits (`serve --http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Most MCP sessions open at once; one more `initialize` is refused (HTTP 503).
    pub max_sessions: usize,
    /// Most sessions open at once from one client address.
    pub max_sessions_per_client: usize,
    /// A session with no request for this long is closed.
    pub session_idle: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_sessions: 64,
            max_sessions_per_client: 32,
            session_idle: Duration::from_secs(300),
        }
    }
}

/// Everything the bridge needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub servers: Vec<ServerSettings>,
    pub model: ModelSettings,
    pub pipeline: PipelineSettings,
    pub database: DatabaseSettings,
    /// The schema context: its token budget and how it is chosen ([`crate::linking`]).
    pub context: crate::linking::ContextSettings,
    pub http: HttpSettings,
}

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "NLQ_CONFIG";

/// Where a setting's value may come from besides the file: the process environment, or a map
/// in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment (unset, empty and non-UTF-8 count as absent).
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    model: RawModel,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    context: RawContext,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    servers: Vec<RawServer>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    max_sessions: Option<usize>,
    max_sessions_per_client: Option<usize>,
    session_idle_secs: Option<f64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    api_key: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
    reasoning_effort: Option<String>,
    request_timeout_secs: Option<f64>,
    max_retries: Option<u32>,
    structured_output: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    max_attempts: Option<u32>,
    verify_threshold: Option<u8>,
    verify: Option<bool>,
    default_row_limit: Option<u32>,
    max_row_limit: Option<u32>,
    sql_mode_test_limit: Option<u32>,
    verify_sample_rows: Option<usize>,
    max_question_chars: Option<usize>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    pool_size: Option<usize>,
    connect_timeout_secs: Option<f64>,
    query_timeout_secs: Option<f64>,
    startup_timeout_secs: Option<f64>,
    fingerprint_check_interval_secs: Option<f64>,
    retry_interval_secs: Option<f64>,
    include_stats: Option<bool>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContext {
    max_tokens: Option<usize>,
    whole_schema_when_it_fits: Option<bool>,
    widen_factor: Option<f64>,
    model_selection: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Option<String>,
    url: String,
    databases: Option<Vec<String>>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    descriptions: BTreeMap<String, String>,
}

fn config_error(message: impl Into<String>) -> BridgeError {
    BridgeError::Config(message.into())
}

/// Replaces `${NAME}` (and `${NAME:-default}`) with the variable's value; `$$` is a literal `$`.
/// A variable that is not set and has no default is an error naming it (never its value).
pub fn expand_vars(text: &str, env: &dyn Env, what: &str) -> Result<String, BridgeError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| config_error(format!("{what}: `${{` without a closing `}}`")))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(config_error(format!(
                    "{what}: `${{{name}}}` is not a valid environment variable name"
                )));
            }
            match (env.var(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(config_error(format!(
                        "{what} uses ${{{name}}}, but {name} is not set (set it, or write \
                         ${{{name}:-default}})"
                    )))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn expand_value(value: &mut toml::Value, env: &dyn Env, path: &str) -> Result<(), BridgeError> {
    match value {
        toml::Value::String(s) => *s = expand_vars(s, env, path)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, env, &format!("{path}[{i}]"))?;
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_value(item, env, &sub)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn seconds(
    value: Option<f64>,
    default: f64,
    name: &str,
    min: f64,
    max: f64,
) -> Result<Duration, BridgeError> {
    let v = value.unwrap_or(default);
    if !v.is_finite() || v < min || v > max {
        return Err(config_error(format!(
            "{name} = {v} is out of range: give a number of seconds from {min} to {max}"
        )));
    }
    Ok(Duration::from_secs_f64(v))
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    value: Option<T>,
    default: T,
    name: &str,
    min: T,
    max: T,
) -> Result<T, BridgeError> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(config_error(format!(
            "{name} = {v} is out of range: give a value from {min} to {max}"
        )));
    }
    Ok(v)
}

/// Reasoning efforts OpenAI's reasoning models accept.
const REASONING_EFFORTS: [&str; 5] = ["none", "minimal", "low", "medium", "high"];

impl Settings {
    /// Loads the configuration: the file at `path` (or at `$NLQ_CONFIG`; no file at all is
    /// fine when the environment names a database), then the environment overrides:
    /// `OPENAI_API_KEY` (when the file sets no key), `OPENAI_BASE_URL`, `NLQ_MODEL`,
    /// `NLQ_REASONING_EFFORT`, `NLQ_STRUCTURED_OUTPUT`, and `NLQ_DATABASE_URL` (one more
    /// server).
    pub fn load(path: Option<&std::path::Path>, env: &dyn Env) -> Result<Settings, BridgeError> {
        let path = match path {
            Some(p) => Some(p.to_path_buf()),
            None => env.var(CONFIG_ENV).map(std::path::PathBuf::from),
        };
        let text = match &path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
                config_error(format!(
                    "cannot read the configuration file {}: {e}",
                    p.display()
                ))
            })?),
            None => None,
        };
        let origin = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the environment".into());
        Self::from_toml(text.as_deref().unwrap_or(""), &origin, env)
    }

    /// [`Self::load`] from the file's text; `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &str, env: &dyn Env) -> Result<Settings, BridgeError> {
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| config_error(format!("{origin} is not valid TOML: {}", e.message())))?;
        expand_value(&mut value, env, "")?;
        let raw: RawConfig = value
            .try_into()
            .map_err(|e: toml::de::Error| config_error(format!("{origin}: {}", e.message())))?;
        Self::from_raw(raw, origin, env)
    }

    fn from_raw(raw: RawConfig, origin: &str, env: &dyn Env) -> Result<Settings, BridgeError> {
        let m = raw.model;
        let api_key = m
            .api_key
            .filter(|k| !k.trim().is_empty())
            .or_else(|| env.var("OPENAI_API_KEY"))
            .map(|k| k.trim().to_string());
        if let Some(key) = &api_key {
            crate::redact::register(key);
        }
        let base_url = env
            .var("OPENAI_BASE_URL")
            .or(m.base_url)
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(config_error(format!(
                "model.base_url {:?} must be an http:// or https:// URL (such as {DEFAULT_BASE_URL})",
                redact_url_credentials(&base_url)
            )));
        }
        let model = env
            .var("NLQ_MODEL")
            .or(m.model)
            .unwrap_or_else(|| DEFAULT_MODEL.into());
        if model.trim().is_empty() {
            return Err(config_error("model.model is empty"));
        }
        let reasoning_effort = env.var("NLQ_REASONING_EFFORT").or(m.reasoning_effort);
        if let Some(effort) = &reasoning_effort {
            if !REASONING_EFFORTS.contains(&effort.as_str()) {
                return Err(config_error(format!(
                    "model.reasoning_effort {effort:?} is not one of {}",
                    REASONING_EFFORTS.join(", ")
                )));
            }
        }
        let structured_output = match env
            .var("NLQ_STRUCTURED_OUTPUT")
            .map(|v| (v, "NLQ_STRUCTURED_OUTPUT"))
            .or(m.structured_output.map(|v| (v, "model.structured_output")))
        {
            None => StructuredOutput::default(),
            Some((text, name)) => StructuredOutput::parse(&text).ok_or_else(|| {
                config_error(format!(
                    "{name} {text:?} is not one of {}: json_schema for endpoints with strict \
                     JSON schema outputs (OpenAI), json_object or none for the others",
                    StructuredOutput::ALL
                        .map(StructuredOutput::as_str)
                        .join(", ")
                ))
            })?,
        };
        let model = ModelSettings {
            api_key,
            base_url,
            model,
            reasoning_effort,
            request_timeout: seconds(
                m.request_timeout_secs,
                120.0,
                "model.request_timeout_secs",
                1.0,
                3600.0,
            )?,
            max_retries: in_range(m.max_retries, 2, "model.max_retries", 0, 10)?,
            structured_output,
        };

        let p = raw.pipeline;
        let default_row_limit = in_range(
            p.default_row_limit,
            100,
            "pipeline.default_row_limit",
            1,
            1_000_000,
        )?;
        let max_row_limit = in_range(
            p.max_row_limit,
            10_000,
            "pipeline.max_row_limit",
            1,
            1_000_000,
        )?;
        if default_row_limit > max_row_limit {
            return Err(config_error(format!(
                "pipeline.default_row_limit ({default_row_limit}) is above pipeline.max_row_limit ({max_row_limit})"
            )));
        }
        let pipeline = PipelineSettings {
            max_attempts: in_range(p.max_attempts, 3, "pipeline.max_attempts", 1, 10)?,
            verify_threshold: in_range(p.verify_threshold, 7, "pipeline.verify_threshold", 0, 10)?,
            verify: p.verify.unwrap_or(true),
            default_row_limit,
            max_row_limit,
            sql_mode_test_limit: in_range(
                p.sql_mode_test_limit,
                5,
                "pipeline.sql_mode_test_limit",
                1,
                1000,
            )?,
            verify_sample_rows: in_range(
                p.verify_sample_rows,
                20,
                "pipeline.verify_sample_rows",
                0,
                200,
            )?,
            max_question_chars: in_range(
                p.max_question_chars,
                4000,
                "pipeline.max_question_chars",
                10,
                100_000,
            )?,
        };

        let d = raw.database;
        let database = DatabaseSettings {
            pool_size: in_range(d.pool_size, 8, "database.pool_size", 1, 256)?,
            connect_timeout: seconds(
                d.connect_timeout_secs,
                10.0,
                "database.connect_timeout_secs",
                0.1,
                600.0,
            )?,
            query_timeout: seconds(
                d.query_timeout_secs,
                120.0,
                "database.query_timeout_secs",
                1.0,
                86_400.0,
            )?,
            startup_timeout: seconds(
                d.startup_timeout_secs,
                30.0,
                "database.startup_timeout_secs",
                0.0,
                3600.0,
            )?,
            fingerprint_check_interval: seconds(
                d.fingerprint_check_interval_secs,
                10.0,
                "database.fingerprint_check_interval_secs",
                0.0,
                86_400.0,
            )?,
            retry_interval: seconds(
                d.retry_interval_secs,
                15.0,
                "database.retry_interval_secs",
                0.1,
                86_400.0,
            )?,
            include_stats: d.include_stats.unwrap_or(true),
        };

        let c = raw.context;
        let context = crate::linking::ContextSettings {
            max_tokens: in_range(
                c.max_tokens,
                crate::linking::DEFAULT_MAX_TOKENS,
                "context.max_tokens",
                200,
                1_000_000,
            )?,
            whole_schema_when_it_fits: c.whole_schema_when_it_fits.unwrap_or(true),
            widen_factor: in_range(c.widen_factor, 2.0, "context.widen_factor", 1.0, 10.0)?,
            model_selection: c.model_selection.unwrap_or(true),
        };
        let h = raw.http;
        let defaults = HttpSettings::default();
        let max_sessions = in_range(
            h.max_sessions,
            defaults.max_sessions,
            "http.max_sessions",
            1,
            100_000,
        )?;
        let http = HttpSettings {
            max_sessions,
            max_sessions_per_client: in_range(
                h.max_sessions_per_client,
                defaults.max_sessions_per_client.min(max_sessions),
                "http.max_sessions_per_client",
                1,
                max_sessions,
            )?,
            session_idle: seconds(
                h.session_idle_secs,
                defaults.session_idle.as_secs_f64(),
                "http.session_idle_secs",
                1.0,
                86_400.0,
            )?,
        };

        let mut servers = Vec::new();
        for (i, s) in raw.servers.into_iter().enumerate() {
            let what = format!("servers[{i}].url");
            let connection = DatabaseConfig::parse(&s.url, &what)?;
            let name = s
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| default_server_name(&connection));
            if let Some(list) = &s.databases {
                if list.is_empty() {
                    return Err(config_error(format!(
                        "servers[{i}].databases is empty: list databases, or leave it out to discover them"
                    )));
                }
            }
            servers.push(ServerSettings {
                name,
                connection,
                databases: s.databases,
                exclude: s.exclude,
                descriptions: s.descriptions,
            });
        }
        if let Some(url) = env.var(crate::config::DATABASE_ENV) {
            let connection = DatabaseConfig::parse(&url, crate::config::DATABASE_ENV)?;
            let name = default_server_name(&connection);
            servers.push(ServerSettings {
                name,
                connection,
                databases: None,
                exclude: Vec::new(),
                descriptions: BTreeMap::new(),
            });
        }
        if servers.is_empty() {
            return Err(config_error(format!(
                "no PostgreSQL server configured in {origin}: add a [[servers]] section with url = \"postgres://user@host/postgres\" \
                 to the configuration file (--config or {CONFIG_ENV}), or set {}",
                crate::config::DATABASE_ENV
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &servers {
            if !seen.insert(s.name.clone()) {
                return Err(config_error(format!(
                    "two servers are named {:?}: give each [[servers]] entry its own name",
                    s.name
                )));
            }
        }
        Ok(Settings {
            servers,
            model,
            pipeline,
            database,
            context,
            http,
        })
    }

    /// The settings as text, secrets redacted: what `check-config` prints.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let m = &self.model;
        out.push_str(&format!(
            "model: {} at {} (API key: {}; reasoning effort: {}; structured output: {}; timeout {:?}; {} retries)\n",
            m.model,
            redact_url_credentials(&m.base_url),
            if m.api_key.is_some() {
                "set"
            } else {
                "not set"
            },
            m.reasoning_effort.as_deref().unwrap_or("endpoint default"),
            m.structured_output.as_str(),
            m.request_timeout,
            m.max_retries
        ));
        let p = &self.pipeline;
        out.push_str(&format!(
            "pipeline: {} attempts, verification {} (threshold {}), rows {} by default, {} at most\n",
            p.max_attempts,
            if p.verify { "on" } else { "off" },
            p.verify_threshold,
            p.default_row_limit,
            p.max_row_limit
        ));
        for s in &self.servers {
            out.push_str(&format!(
                "server {}: {} — databases: {}\n",
                s.name,
                s.connection.redacted(),
                match &s.databases {
                    Some(list) => list.join(", "),
                    None => "discovered".into(),
                }
            ));
        }
        out
    }
}

/// A URL with the password of its user information (`https://user:secret@host/...`) replaced
/// by `***`, for messages and `check-config`.
pub fn redact_url_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let user = rest[..at].split(':').next().unwrap_or("");
    format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
}

/// `host:port` of the first host, or the socket directory.
fn default_server_name(connection: &DatabaseConfig) -> String {
    let pg = connection.pg_config();
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(r: Result<Settings, BridgeError>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    const MINIMAL: &str =
        "[[servers]]\nurl = \"host=/tmp port=5432 user=u password=hunter2 dbname=postgres\"\n";

    #[test]
    fn defaults() {
        let s = Settings::from_toml(MINIMAL, "t", &env(&[])).unwrap();
        assert_eq!(s.model.model, DEFAULT_MODEL);
        assert_eq!(s.model.base_url, DEFAULT_BASE_URL);
        assert!(s.model.api_key.is_none());
        assert_eq!(s.pipeline.max_attempts, 3);
        assert_eq!(s.pipeline.verify_threshold, 7);
        assert_eq!(s.servers.len(), 1);
        assert_eq!(s.servers[0].name, "/tmp:5432");
        assert!(s.servers[0].databases.is_none());
    }

    #[test]
    fn variables_are_expanded() {
        let text = "[model]\napi_key = \"${MY_KEY}\"\nmodel = \"${M:-gpt-x}\"\n[[servers]]\nurl = \"host=${H} dbname=postgres\"\nname = \"cost $$5\"\n";
        let s = Settings::from_toml(text, "t", &env(&[("MY_KEY", "sk-1"), ("H", "/run")])).unwrap();
        assert_eq!(s.model.api_key.as_deref(), Some("sk-1"));
        assert_eq!(s.model.model, "gpt-x");
        assert_eq!(s.servers[0].name, "cost $5");
        let e = err(Settings::from_toml(text, "t", &env(&[("H", "/run")])));
        assert!(
            e.contains("${MY_KEY}") && e.contains("model.api_key"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides() {
        let s = Settings::from_toml(
            MINIMAL,
            "t",
            &env(&[
                ("OPENAI_API_KEY", "sk-env"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
                ("NLQ_MODEL", "gpt-5"),
                ("NLQ_DATABASE_URL", "postgres://a@db.example:5433/postgres"),
            ]),
        )
        .unwrap();
        assert_eq!(s.model.api_key.as_deref(), Some("sk-env"));
        assert_eq!(s.model.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.model.model, "gpt-5");
        assert_eq!(s.servers.len(), 2);
        assert_eq!(s.servers[1].name, "db.example:5433");
        // The key in the file wins over the environment.
        let text = format!("[model]\napi_key = \"sk-file\"\n{MINIMAL}");
        let s = Settings::from_toml(&text, "t", &env(&[("OPENAI_API_KEY", "sk-env")])).unwrap();
        assert_eq!(s.model.api_key.as_deref(), Some("sk-file"));
    }

    #[test]
    fn http_limits_are_read_and_checked() {
        let s = Settings::from_toml(MINIMAL, "t", &env(&[])).unwrap();
        assert_eq!(s.http, HttpSettings::default());
        let s = Settings::from_toml(
            &format!(
                "[http]\nmax_sessions = 10\nmax_sessions_per_client = 3\nsession_idle_secs = 30\n{MINIMAL}"
            ),
            "t",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(
            s.http,
            HttpSettings {
                max_sessions: 10,
                max_sessions_per_client: 3,
                session_idle: Duration::from_secs(30),
            }
        );
        // the per-client default never exceeds the total
        let s = Settings::from_toml(
            &format!("[http]\nmax_sessions = 5\n{MINIMAL}"),
            "t",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(s.http.max_sessions_per_client, 5);
        for (bad, needle) in [
            ("max_sessions = 0", "http.max_sessions = 0 is out of range"),
            (
                "max_sessions = 4\nmax_sessions_per_client = 5",
                "http.max_sessions_per_client = 5 is out of range",
            ),
            ("session_idle_secs = 0", "http.session_idle_secs"),
            ("max_session = 3", "max_session"),
        ] {
            let e = err(Settings::from_toml(
                &format!("[http]\n{bad}\n{MINIMAL}"),
                "t",
                &env(&[]),
            ));
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn mistyped_url_schemes_do_not_show_the_password() {
        for url in [
            "postgress://u:hunter2x@h/db",
            "POSTGRES://u:hunter2x@h/db",
            "jdbc:postgresql://u:hunter2x@h/db",
            "postgresql+psycopg://u:hunter2x@h/db",
        ] {
            let e = err(Settings::from_toml(
                &format!("[[servers]]\nurl = \"{url}\"\n"),
                "f",
                &env(&[]),
            ));
            assert!(!e.contains("hunter2x"), "{url}: {e}");
            assert!(e.contains("u:***@h/db"), "{url}: {e}");
        }
    }

    #[test]
    fn mistakes_are_reported() {
        let e = err(Settings::from_toml("", "f.toml", &env(&[])));
        assert!(
            e.contains("no PostgreSQL server configured in f.toml"),
            "{e}"
        );
        let e = err(Settings::from_toml(
            &format!("[pipline]\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(e.contains("pipline"), "{e}");
        let e = err(Settings::from_toml(
            &format!("[pipeline]\nverify_threshold = 11\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(e.contains("verify_threshold = 11 is out of range"), "{e}");
        let e = err(Settings::from_toml(
            &format!("[context]\nmax_tokens = 10\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(e.contains("context.max_tokens = 10 is out of range"), "{e}");
        let e = err(Settings::from_toml(
            &format!("[model]\nreasoning_effort = \"max\"\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(e.contains("reasoning_effort"), "{e}");
        let e = err(Settings::from_toml(
            &format!("[model]\nbase_url = \"ftp://x\"\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(e.contains("http://"), "{e}");
        let e = err(Settings::from_toml(
            "[[servers]]\nurl = \"host=/tmp port=x password=hunter2\"\n",
            "f",
            &env(&[]),
        ));
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(Settings::from_toml(
            "[[servers]]\nurl = \"host=/tmp\"\ndatabases = []\n",
            "f",
            &env(&[]),
        ));
        assert!(e.contains("databases is empty"), "{e}");
        let e = err(Settings::from_toml("x = [", "f", &env(&[])));
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn shipped_configurations_parse() {
        let s = Settings::from_toml(
            include_str!("../bridge.example.toml"),
            "bridge.example.toml",
            &env(&[("NLQ_BRIDGE_PASSWORD", "pw")]),
        )
        .unwrap();
        assert_eq!(s.servers[0].exclude, vec!["postgres"]);
        assert_eq!(s.database.pool_size, 8);
        assert_eq!(s.context.max_tokens, 4000);
        assert!(s.context.whole_schema_when_it_fits);
        assert_eq!(s.context.widen_factor, 2.0);
        assert!(s.context.model_selection);
        // the example documents the defaults
        assert_eq!(s.http, HttpSettings::default());
        let s = Settings::from_toml(
            include_str!("../../fixtures/bridge.toml"),
            "fixtures/bridge.toml",
            &env(&[("NLQ_PGSOCK", "/run/x"), ("NLQ_PGPORT", "5")]),
        )
        .unwrap();
        assert_eq!(s.servers[0].databases.as_ref().map(Vec::len), Some(3));
        assert_eq!(s.model.reasoning_effort.as_deref(), Some("low"));
    }

    #[test]
    fn structured_output_mode() {
        let s = Settings::from_toml(MINIMAL, "t", &env(&[])).unwrap();
        assert_eq!(s.model.structured_output, StructuredOutput::JsonSchema);
        assert!(
            s.describe().contains("structured output: json_schema"),
            "{}",
            s.describe()
        );
        for mode in StructuredOutput::ALL {
            let text = format!(
                "[model]\nstructured_output = \"{}\"\n{MINIMAL}",
                mode.as_str()
            );
            let s = Settings::from_toml(&text, "t", &env(&[])).unwrap();
            assert_eq!(s.model.structured_output, mode);
            assert!(s
                .describe()
                .contains(&format!("structured output: {}", mode.as_str())));
        }
        // the environment wins over the file, as for the other model settings
        let text = format!("[model]\nstructured_output = \"none\"\n{MINIMAL}");
        let s = Settings::from_toml(
            &text,
            "t",
            &env(&[("NLQ_STRUCTURED_OUTPUT", "json_object")]),
        )
        .unwrap();
        assert_eq!(s.model.structured_output, StructuredOutput::JsonObject);
        let e = err(Settings::from_toml(
            &format!("[model]\nstructured_output = \"json\"\n{MINIMAL}"),
            "f",
            &env(&[]),
        ));
        assert!(
            e.contains("model.structured_output \"json\"")
                && e.contains("json_schema, json_object, none"),
            "{e}"
        );
        let e = err(Settings::from_toml(
            MINIMAL,
            "f",
            &env(&[("NLQ_STRUCTURED_OUTPUT", "strict")]),
        ));
        assert!(e.contains("NLQ_STRUCTURED_OUTPUT \"strict\""), "{e}");
    }

    #[test]
    fn base_url_credentials_are_not_shown() {
        assert_eq!(
            redact_url_credentials("https://u:s3cret@proxy.example/v1"),
            "https://u:***@proxy.example/v1"
        );
        assert_eq!(
            redact_url_credentials("https://proxy.example/v1?x=a@b"),
            "https://proxy.example/v1?x=a@b"
        );
        assert_eq!(
            redact_url_credentials("http://127.0.0.1:9/v1"),
            "http://127.0.0.1:9/v1"
        );
        let text = format!("[model]\nbase_url = \"https://u:s3cret@proxy.example/v1\"\n{MINIMAL}");
        let s = Settings::from_toml(&text, "t", &env(&[])).unwrap();
        assert!(!s.describe().contains("s3cret"), "{}", s.describe());
    }

    #[test]
    fn secrets_are_not_shown() {
        let text = format!("[model]\napi_key = \"sk-secret\"\n{MINIMAL}");
        let s = Settings::from_toml(&text, "t", &env(&[])).unwrap();
        let shown = format!("{}{:?}", s.describe(), s);
        assert!(!shown.contains("sk-secret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("API key: set"), "{shown}");
    }
}
