//! The bridge's configuration: a TOML file (path from `--config` or `NLQ_CONFIG`) plus
//! environment overrides, with `${VAR}` expansion in string values. Secrets (the API key,
//! passwords in server URLs) are never logged or shown: see [`Settings::describe`].
//!
//! Here the settings and their checks; reading the file (raw sections, unknown keys, `${VAR}`)
//! is [`file`]'s. (About 660 lines: `Settings::from_raw` turns every section into its settings
//! with each check and default, and is read best as one piece.)

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

/// Default `context.max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 4000;

/// How the context is chosen (the `[context]` settings).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSettings {
    /// Budget of the whole first generation prompt, in tokens of the model's tokenizer: the
    /// schema context gets what the rest of the prompt leaves
    /// (`crate::pipeline::context::schema_budget`).
    pub max_tokens: usize,
    /// Send the whole schema when it fits the budget.
    pub whole_schema_when_it_fits: bool,
    /// Budget multiplier of each `crate::linking::Linker::widen` step.
    pub widen_factor: f64,
    /// Ask the model to choose tables when the lexical evidence is weak
    /// (`crate::linking::select`, `crate::pipeline::context`).
    pub model_selection: bool,
}

impl Default for ContextSettings {
    fn default() -> Self {
        ContextSettings {
            max_tokens: DEFAULT_MAX_TOKENS,
            whole_schema_when_it_fits: true,
            widen_factor: 2.0,
            model_selection: true,
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
    pub context: ContextSettings,
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

mod file;
#[cfg(test)]
mod tests;

use self::file::*;

/// Reasoning efforts OpenAI's reasoning models accept.
const REASONING_EFFORTS: [&str; 5] = ["none", "minimal", "low", "medium", "high"];

/// What reading a configuration found: the settings, with the default wherever a value was
/// wrong, and every problem (`check-config` shows them all in one run).
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub problems: Vec<String>,
}

impl Loaded {
    /// The settings when nothing is wrong; else one error saying every problem.
    pub fn into_result(self) -> Result<Settings, BridgeError> {
        match self.problems.as_slice() {
            [] => Ok(self.settings),
            [one] => Err(config_error(one.clone())),
            many => Err(config_error(format!(
                "{} problems in the configuration: {} (pg-nlq-bridge check-config lists them)",
                many.len(),
                many.iter()
                    .enumerate()
                    .map(|(i, p)| format!("({}) {p}", i + 1))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }
}

impl Settings {
    /// Loads the configuration: the file at `path` (or at `$NLQ_CONFIG`; no file at all is
    /// fine when the environment names a server), then the environment overrides:
    /// `OPENAI_API_KEY` (when the file sets no key), `OPENAI_BASE_URL`, `NLQ_MODEL`,
    /// `NLQ_REASONING_EFFORT`, `NLQ_STRUCTURED_OUTPUT`, and `NLQ_DATABASE_URL` (one more
    /// server, whose databases are discovered).
    pub fn load(path: Option<&std::path::Path>, env: &dyn Env) -> Result<Settings, BridgeError> {
        Self::load_all(path, env)?.into_result()
    }

    /// [`Self::load`], keeping every problem: an error only when the file cannot be read or
    /// is not TOML.
    pub fn load_all(path: Option<&std::path::Path>, env: &dyn Env) -> Result<Loaded, BridgeError> {
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
        Self::from_toml_all(text.as_deref().unwrap_or(""), &origin, env)
    }

    /// [`Self::load`] from the file's text; `origin` names it in messages.
    pub fn from_toml(text: &str, origin: &str, env: &dyn Env) -> Result<Settings, BridgeError> {
        Self::from_toml_all(text, origin, env)?.into_result()
    }

    /// [`Self::load_all`] from the file's text.
    pub fn from_toml_all(text: &str, origin: &str, env: &dyn Env) -> Result<Loaded, BridgeError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            config_error(format!("{origin} is not valid TOML: {}", e.message()))
        })?;
        let mut expansion = Expansion::default();
        expand_table(&mut table, env, "", &mut expansion);
        let mut problems = expansion.problems;
        unknown_keys(&mut table, origin, &mut problems);
        let (servers, server_entries) =
            servers(&mut table, origin, &expansion.left_out, &mut problems);
        let raw = RawConfig {
            model: section(&mut table, "model", origin, &mut problems),
            pipeline: section(&mut table, "pipeline", origin, &mut problems),
            database: section(&mut table, "database", origin, &mut problems),
            context: section(&mut table, "context", origin, &mut problems),
            http: section(&mut table, "http", origin, &mut problems),
            servers,
            server_entries,
        };
        let settings = Self::from_raw(raw, origin, env, &mut problems);
        Ok(Loaded { settings, problems })
    }

    fn from_raw(
        raw: RawConfig,
        origin: &str,
        env: &dyn Env,
        problems: &mut Vec<String>,
    ) -> Settings {
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
        let mut base_url = base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            problems.push(format!(
                "model.base_url {:?} must be an http:// or https:// URL (such as {DEFAULT_BASE_URL})",
                redact_url_credentials(&base_url)
            ));
            base_url = DEFAULT_BASE_URL.into();
        }
        let mut model = env
            .var("NLQ_MODEL")
            .or(m.model)
            .unwrap_or_else(|| DEFAULT_MODEL.into());
        if model.trim().is_empty() {
            problems.push("model.model is empty: name the model, such as gpt-5-mini".into());
            model = DEFAULT_MODEL.into();
        }
        let mut reasoning_effort = env.var("NLQ_REASONING_EFFORT").or(m.reasoning_effort);
        if let Some(effort) = &reasoning_effort {
            if !REASONING_EFFORTS.contains(&effort.as_str()) {
                problems.push(format!(
                    "model.reasoning_effort {effort:?} is not one of {}",
                    REASONING_EFFORTS.join(", ")
                ));
                reasoning_effort = None;
            }
        }
        let structured_output = match env
            .var("NLQ_STRUCTURED_OUTPUT")
            .map(|v| (v, "NLQ_STRUCTURED_OUTPUT"))
            .or(m.structured_output.map(|v| (v, "model.structured_output")))
        {
            None => StructuredOutput::default(),
            Some((text, name)) => StructuredOutput::parse(&text).unwrap_or_else(|| {
                problems.push(format!(
                    "{name} {text:?} is not one of {}: json_schema for endpoints with strict \
                     JSON schema outputs (OpenAI), json_object or none for the others",
                    StructuredOutput::ALL
                        .map(StructuredOutput::as_str)
                        .join(", ")
                ));
                StructuredOutput::default()
            }),
        };
        let model = ModelSettings {
            api_key,
            base_url,
            model,
            reasoning_effort,
            request_timeout: seconds(
                problems,
                m.request_timeout_secs,
                120.0,
                "model.request_timeout_secs",
                1.0,
                3600.0,
            ),
            max_retries: in_range(problems, m.max_retries, 2, "model.max_retries", 0, 10),
            structured_output,
        };

        let p = raw.pipeline;
        let default_row_limit = in_range(
            problems,
            p.default_row_limit,
            100,
            "pipeline.default_row_limit",
            1,
            1_000_000,
        );
        let max_row_limit = in_range(
            problems,
            p.max_row_limit,
            10_000,
            "pipeline.max_row_limit",
            1,
            1_000_000,
        );
        let default_row_limit = if default_row_limit > max_row_limit {
            problems.push(format!(
                "pipeline.default_row_limit ({default_row_limit}) is above pipeline.max_row_limit ({max_row_limit})"
            ));
            max_row_limit
        } else {
            default_row_limit
        };
        let pipeline = PipelineSettings {
            max_attempts: in_range(problems, p.max_attempts, 3, "pipeline.max_attempts", 1, 10),
            verify_threshold: in_range(
                problems,
                p.verify_threshold,
                7,
                "pipeline.verify_threshold",
                0,
                10,
            ),
            verify: p.verify.unwrap_or(true),
            default_row_limit,
            max_row_limit,
            sql_mode_test_limit: in_range(
                problems,
                p.sql_mode_test_limit,
                5,
                "pipeline.sql_mode_test_limit",
                1,
                1000,
            ),
            verify_sample_rows: in_range(
                problems,
                p.verify_sample_rows,
                20,
                "pipeline.verify_sample_rows",
                0,
                200,
            ),
            max_question_chars: in_range(
                problems,
                p.max_question_chars,
                4000,
                "pipeline.max_question_chars",
                10,
                100_000,
            ),
        };

        let d = raw.database;
        let database = DatabaseSettings {
            pool_size: in_range(problems, d.pool_size, 8, "database.pool_size", 1, 256),
            connect_timeout: seconds(
                problems,
                d.connect_timeout_secs,
                10.0,
                "database.connect_timeout_secs",
                0.1,
                600.0,
            ),
            query_timeout: seconds(
                problems,
                d.query_timeout_secs,
                120.0,
                "database.query_timeout_secs",
                1.0,
                86_400.0,
            ),
            startup_timeout: seconds(
                problems,
                d.startup_timeout_secs,
                30.0,
                "database.startup_timeout_secs",
                0.0,
                3600.0,
            ),
            fingerprint_check_interval: seconds(
                problems,
                d.fingerprint_check_interval_secs,
                10.0,
                "database.fingerprint_check_interval_secs",
                0.0,
                86_400.0,
            ),
            retry_interval: seconds(
                problems,
                d.retry_interval_secs,
                15.0,
                "database.retry_interval_secs",
                0.1,
                86_400.0,
            ),
            include_stats: d.include_stats.unwrap_or(true),
        };

        let c = raw.context;
        let context = ContextSettings {
            max_tokens: in_range(
                problems,
                c.max_tokens,
                DEFAULT_MAX_TOKENS,
                "context.max_tokens",
                200,
                1_000_000,
            ),
            whole_schema_when_it_fits: c.whole_schema_when_it_fits.unwrap_or(true),
            widen_factor: in_range(
                problems,
                c.widen_factor,
                2.0,
                "context.widen_factor",
                1.0,
                10.0,
            ),
            model_selection: c.model_selection.unwrap_or(true),
        };
        let h = raw.http;
        let defaults = HttpSettings::default();
        let max_sessions = in_range(
            problems,
            h.max_sessions,
            defaults.max_sessions,
            "http.max_sessions",
            1,
            100_000,
        );
        let http = HttpSettings {
            max_sessions,
            max_sessions_per_client: in_range(
                problems,
                h.max_sessions_per_client,
                defaults.max_sessions_per_client.min(max_sessions),
                "http.max_sessions_per_client",
                1,
                max_sessions,
            ),
            session_idle: seconds(
                problems,
                h.session_idle_secs,
                defaults.session_idle.as_secs_f64(),
                "http.session_idle_secs",
                1.0,
                86_400.0,
            ),
        };

        let mut servers = Vec::new();
        // entries that did not parse count too: their problem is said, "no server" would not be
        let given = raw.servers.len().max(raw.server_entries);
        for (i, s) in raw.servers.into_iter().enumerate() {
            let what = format!("servers[{i}].url");
            let connection = match DatabaseConfig::parse(&s.url, &what) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(e.to_string());
                    continue;
                }
            };
            let name = s
                .name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| default_server_name(&connection));
            if let Some(list) = &s.databases {
                if list.is_empty() {
                    problems.push(format!(
                        "servers[{i}].databases is empty: list databases, or leave it out to discover them"
                    ));
                    continue;
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
            match DatabaseConfig::parse(&url, crate::config::DATABASE_ENV) {
                Ok(connection) => servers.push(ServerSettings {
                    name: default_server_name(&connection),
                    connection,
                    databases: None,
                    exclude: Vec::new(),
                    descriptions: BTreeMap::new(),
                }),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if servers.is_empty() && given == 0 && env.var(crate::config::DATABASE_ENV).is_none() {
            problems.push(format!(
                "no PostgreSQL server configured in {origin}: add a [[servers]] section with url = \"postgres://user@host/postgres\" \
                 to the configuration file (--config or {CONFIG_ENV}), or set {}",
                crate::config::DATABASE_ENV
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &servers {
            if !seen.insert(s.name.clone()) {
                problems.push(format!(
                    "two servers are named {:?}: give each [[servers]] entry its own name",
                    s.name
                ));
            }
        }
        Settings {
            servers,
            model,
            pipeline,
            database,
            context,
            http,
        }
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
