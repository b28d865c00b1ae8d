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

/// Expands `${VAR}` in every string under `value`; a string that cannot be expanded is
/// recorded and left out (removed from its table or array), never used as written.
fn expand_value(value: &mut toml::Value, env: &dyn Env, path: &str, problems: &mut Vec<String>) {
    match value {
        toml::Value::Array(items) => {
            let mut i = 0usize;
            items.retain_mut(|item| {
                let kept = expand_item(item, env, &format!("{path}[{i}]"), problems);
                i += 1;
                kept
            });
        }
        toml::Value::Table(table) => expand_table(table, env, path, problems),
        _ => {}
    }
}

/// [`expand_value`] of one table's values.
fn expand_table(table: &mut toml::Table, env: &dyn Env, path: &str, problems: &mut Vec<String>) {
    table.retain(|key, item| {
        let sub = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        expand_item(item, env, &sub, problems)
    });
}

/// Whether `item` stays: false for a string whose expansion failed.
fn expand_item(
    item: &mut toml::Value,
    env: &dyn Env,
    path: &str,
    problems: &mut Vec<String>,
) -> bool {
    match item {
        toml::Value::String(s) => match expand_vars(s, env, path) {
            Ok(expanded) => {
                *s = expanded;
                true
            }
            Err(e) => {
                problems.push(e.to_string());
                false
            }
        },
        other => {
            expand_value(other, env, path, problems);
            true
        }
    }
}

/// A number of seconds from `min` to `max`; out of range, the problem is recorded and the
/// default used (so that one run reports every problem).
fn seconds(
    problems: &mut Vec<String>,
    value: Option<f64>,
    default: f64,
    name: &str,
    min: f64,
    max: f64,
) -> Duration {
    let v = value.unwrap_or(default);
    if !v.is_finite() || v < min || v > max {
        problems.push(format!(
            "{name} = {v} is out of range: give a number of seconds from {min} to {max}"
        ));
        return Duration::from_secs_f64(default);
    }
    Duration::from_secs_f64(v)
}

/// A value from `min` to `max`; out of range, the problem is recorded and the default used.
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    problems: &mut Vec<String>,
    value: Option<T>,
    default: T,
    name: &str,
    min: T,
    max: T,
) -> T {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        problems.push(format!(
            "{name} = {v} is out of range: give a value from {min} to {max}"
        ));
        return default;
    }
    v
}

/// The field names a `#[derive(Deserialize)]` struct takes, read from its `Deserialize` impl
/// (so the list of keys the configuration accepts is the structs', never a copy).
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// The known word nearest to `word` (at most two edits away), for "did you mean".
fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut diagonal = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let above = row[j + 1];
                row[j + 1] = (above + 1)
                    .min(row[j] + 1)
                    .min(diagonal + usize::from(ca != *cb));
                diagonal = above;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// Removes the keys no setting has from `table` (`path` names it: `pipeline`, `servers[0]`),
/// recording each one.
fn drop_unknown(
    table: &mut toml::Table,
    path: &str,
    known: &[&str],
    origin: &str,
    problems: &mut Vec<String>,
) {
    let unknown: Vec<String> = table
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        let (name, takes) = if path.is_empty() {
            (key.clone(), "the sections are".to_string())
        } else {
            (format!("{path}.{key}"), format!("[{path}] takes"))
        };
        let hint = closest(&key, known)
            .map(|k| format!("did you mean {k}? "))
            .unwrap_or_default();
        problems.push(format!(
            "{origin}: unknown key {name}: {hint}{takes} {}",
            known.join(", ")
        ));
    }
}

/// Every key of the file that no setting has, each recorded and removed.
fn unknown_keys(table: &mut toml::Table, origin: &str, problems: &mut Vec<String>) {
    drop_unknown(table, "", fields_of::<RawConfig>(), origin, problems);
    let sections: [(&str, &[&str]); 5] = [
        ("model", fields_of::<RawModel>()),
        ("pipeline", fields_of::<RawPipeline>()),
        ("database", fields_of::<RawDatabase>()),
        ("context", fields_of::<RawContext>()),
        ("http", fields_of::<RawHttp>()),
    ];
    for (name, known) in sections {
        if let Some(toml::Value::Table(t)) = table.get_mut(name) {
            drop_unknown(t, name, known, origin, problems);
        }
    }
    if let Some(toml::Value::Array(servers)) = table.get_mut("servers") {
        for (i, server) in servers.iter_mut().enumerate() {
            if let toml::Value::Table(t) = server {
                drop_unknown(
                    t,
                    &format!("servers[{i}]"),
                    fields_of::<RawServer>(),
                    origin,
                    problems,
                );
            }
        }
    }
}

/// One section of the file (its default when absent or malformed: the problem is recorded).
fn section<T: serde::de::DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    origin: &str,
    problems: &mut Vec<String>,
) -> T {
    match table.remove(name) {
        None => T::default(),
        Some(value) => value.try_into().unwrap_or_else(|e: toml::de::Error| {
            problems.push(format!("{origin}: [{name}]: {}", e.message().trim()));
            T::default()
        }),
    }
}

/// The `[[servers]]` entries that parse; each malformed one recorded.
fn servers(table: &mut toml::Table, origin: &str, problems: &mut Vec<String>) -> Vec<RawServer> {
    let items = match table.remove("servers") {
        None => return Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(format!(
                "{origin}: servers must be [[servers]] sections (an array of tables)"
            ));
            return Vec::new();
        }
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            item.try_into()
                .map_err(|e: toml::de::Error| {
                    problems.push(format!("{origin}: servers[{i}]: {}", e.message().trim()));
                })
                .ok()
        })
        .collect()
}

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
        let mut problems = Vec::new();
        expand_table(&mut table, env, "", &mut problems);
        unknown_keys(&mut table, origin, &mut problems);
        let raw = RawConfig {
            model: section(&mut table, "model", origin, &mut problems),
            pipeline: section(&mut table, "pipeline", origin, &mut problems),
            database: section(&mut table, "database", origin, &mut problems),
            context: section(&mut table, "context", origin, &mut problems),
            http: section(&mut table, "http", origin, &mut problems),
            servers: servers(&mut table, origin, &mut problems),
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
        let context = crate::linking::ContextSettings {
            max_tokens: in_range(
                problems,
                c.max_tokens,
                crate::linking::DEFAULT_MAX_TOKENS,
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
        let given = raw.servers.len();
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
        // the value that could not be expanded is not used as written
        let loaded = Settings::from_toml_all(text, "t", &env(&[("H", "/run")])).unwrap();
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(loaded.settings.model.api_key.is_none());
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
    fn every_problem_is_reported_in_one_run() {
        let text = format!(
            "[modle]\nx = 1\n[pipeline]\nmax_attempt = 2\nverify_threshold = 11\n\
             [database]\npool_size = 0\n[model]\nbase_url = \"ftp://x\"\n{MINIMAL}\
             urll = \"x\"\n[[servers]]\nurl = \"host=/tmp port=x\"\n"
        );
        let loaded = Settings::from_toml_all(&text, "f.toml", &env(&[])).unwrap();
        let all = loaded.problems.join("\n");
        for needle in [
            "f.toml: unknown key modle: did you mean model? the sections are model, pipeline",
            "f.toml: unknown key pipeline.max_attempt: did you mean max_attempts? [pipeline] takes",
            "f.toml: unknown key servers[0].urll: did you mean url? [servers[0]] takes name, url",
            "pipeline.verify_threshold = 11 is out of range",
            "database.pool_size = 0 is out of range",
            "model.base_url \"ftp://x\"",
            "servers[1].url is not a valid connection string",
        ] {
            assert!(all.contains(needle), "{needle:?} in:\n{all}");
        }
        assert_eq!(loaded.problems.len(), 7, "{all}");
        // what could be read is kept, the defaults stand for what could not
        assert_eq!(loaded.settings.servers.len(), 1);
        assert_eq!(loaded.settings.pipeline.verify_threshold, 7);
        assert_eq!(loaded.settings.database.pool_size, 8);
        // one error saying each problem, for the commands that need working settings
        let e = err(Settings::from_toml(&text, "f.toml", &env(&[])));
        assert!(
            e.starts_with("7 problems in the configuration: (1) "),
            "{e}"
        );
        assert!(e.contains("(7) "), "{e}");
        // a wrongly typed value is reported with its section, the others still read
        let loaded = Settings::from_toml_all(
            &format!("[pipeline]\nmax_attempts = \"two\"\n[model]\nmodel = \"m\"\n{MINIMAL}"),
            "f.toml",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(
            loaded.problems[0].starts_with("f.toml: [pipeline]: "),
            "{:?}",
            loaded.problems
        );
        assert_eq!(loaded.settings.model.model, "m");
    }

    #[test]
    fn the_known_keys_are_the_structs_fields() {
        assert!(fields_of::<RawConfig>().contains(&"servers"));
        assert!(fields_of::<RawPipeline>().contains(&"max_question_chars"));
        assert!(fields_of::<RawServer>().contains(&"descriptions"));
        assert_eq!(fields_of::<RawHttp>().len(), 3);
        // descriptions are a free map: their keys are database names, not settings
        let s = Settings::from_toml(
            &format!("{MINIMAL}[servers.descriptions]\nanything = \"x\"\n"),
            "t",
            &env(&[]),
        )
        .unwrap();
        assert_eq!(s.servers[0].descriptions.len(), 1);
        assert_eq!(closest("pipline", &["pipeline", "model"]), Some("pipeline"));
        assert_eq!(closest("zzz", &["pipeline", "model"]), None);
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
