//! Reading the configuration file: the raw TOML sections as written (unknown keys found,
//! with a suggestion), `${VAR}` expansion, ranges and durations. [`super::Settings`] turns
//! them into the settings the bridge uses.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Env;
use crate::error::BridgeError;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) model: RawModel,
    #[serde(default)]
    pub(super) pipeline: RawPipeline,
    #[serde(default)]
    pub(super) database: RawDatabase,
    #[serde(default)]
    pub(super) context: RawContext,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) servers: Vec<RawServer>,
    /// How many `[[servers]]` entries the file has, those that did not parse included.
    #[serde(skip)]
    pub(super) server_entries: usize,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) max_sessions: Option<usize>,
    pub(super) max_sessions_per_client: Option<usize>,
    pub(super) session_idle_secs: Option<f64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) api_key: Option<String>,
    pub(super) base_url: Option<String>,
    pub(super) model: Option<String>,
    pub(super) reasoning_effort: Option<String>,
    pub(super) request_timeout_secs: Option<f64>,
    pub(super) max_retries: Option<u32>,
    pub(super) structured_output: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    pub(super) max_attempts: Option<u32>,
    pub(super) verify_threshold: Option<u8>,
    pub(super) verify: Option<bool>,
    pub(super) default_row_limit: Option<u32>,
    pub(super) max_row_limit: Option<u32>,
    pub(super) sql_mode_test_limit: Option<u32>,
    pub(super) verify_sample_rows: Option<usize>,
    pub(super) max_question_chars: Option<usize>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    pub(super) pool_size: Option<usize>,
    pub(super) connect_timeout_secs: Option<f64>,
    pub(super) query_timeout_secs: Option<f64>,
    pub(super) startup_timeout_secs: Option<f64>,
    pub(super) fingerprint_check_interval_secs: Option<f64>,
    pub(super) retry_interval_secs: Option<f64>,
    pub(super) include_stats: Option<bool>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContext {
    pub(super) max_tokens: Option<usize>,
    pub(super) whole_schema_when_it_fits: Option<bool>,
    pub(super) widen_factor: Option<f64>,
    pub(super) model_selection: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) name: Option<String>,
    pub(super) url: String,
    pub(super) databases: Option<Vec<String>>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default)]
    pub(super) descriptions: BTreeMap<String, String>,
}

pub(super) fn config_error(message: impl Into<String>) -> BridgeError {
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

/// What expanding `${VAR}` found: the problems, and the paths (`servers[0].url`) of the
/// strings left out because of them, so that what follows from leaving them out ("missing
/// field `url`") is not reported again.
#[derive(Debug, Default)]
pub(super) struct Expansion {
    pub problems: Vec<String>,
    pub left_out: std::collections::HashSet<String>,
}

/// Expands `${VAR}` in every string under `value`; a string that cannot be expanded is
/// recorded and left out (removed from its table or array), never used as written.
pub(super) fn expand_value(
    value: &mut toml::Value,
    env: &dyn Env,
    path: &str,
    found: &mut Expansion,
) {
    match value {
        toml::Value::Array(items) => {
            let mut i = 0usize;
            items.retain_mut(|item| {
                let kept = expand_item(item, env, &format!("{path}[{i}]"), found);
                i += 1;
                kept
            });
        }
        toml::Value::Table(table) => expand_table(table, env, path, found),
        _ => {}
    }
}

/// [`expand_value`] of one table's values.
pub(super) fn expand_table(
    table: &mut toml::Table,
    env: &dyn Env,
    path: &str,
    found: &mut Expansion,
) {
    table.retain(|key, item| {
        let sub = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        expand_item(item, env, &sub, found)
    });
}

/// Whether `item` stays: false for a string whose expansion failed.
pub(super) fn expand_item(
    item: &mut toml::Value,
    env: &dyn Env,
    path: &str,
    found: &mut Expansion,
) -> bool {
    match item {
        toml::Value::String(s) => match expand_vars(s, env, path) {
            Ok(expanded) => {
                *s = expanded;
                true
            }
            Err(e) => {
                found.problems.push(e.to_string());
                found.left_out.insert(path.to_string());
                false
            }
        },
        other => {
            expand_value(other, env, path, found);
            true
        }
    }
}

/// A number of seconds from `min` to `max`; out of range, the problem is recorded and the
/// default used (so that one run reports every problem).
pub(super) fn seconds(
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
pub(super) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
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
pub(super) fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
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
pub(super) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
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
pub(super) fn drop_unknown(
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
pub(super) fn unknown_keys(table: &mut toml::Table, origin: &str, problems: &mut Vec<String>) {
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
pub(super) fn section<T: serde::de::DeserializeOwned + Default>(
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

/// The `[[servers]]` entries that parse, and how many entries the file has; each malformed
/// one recorded, except a field missing only because its `${VAR}` could not be expanded
/// (`left_out`: that problem is recorded already).
pub(super) fn servers(
    table: &mut toml::Table,
    origin: &str,
    left_out: &std::collections::HashSet<String>,
    problems: &mut Vec<String>,
) -> (Vec<RawServer>, usize) {
    let items = match table.remove("servers") {
        None => return (Vec::new(), 0),
        Some(toml::Value::Array(items)) => items,
        Some(_) => {
            problems.push(format!(
                "{origin}: servers must be [[servers]] sections (an array of tables)"
            ));
            return (Vec::new(), 1);
        }
    };
    let entries = items.len();
    let parsed = items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            item.try_into()
                .map_err(|e: toml::de::Error| {
                    let message = e.message().trim().to_string();
                    let consequence = message
                        .strip_prefix("missing field `")
                        .and_then(|rest| rest.strip_suffix('`'))
                        .is_some_and(|field| left_out.contains(&format!("servers[{i}].{field}")));
                    if !consequence {
                        problems.push(format!("{origin}: servers[{i}]: {message}"));
                    }
                })
                .ok()
        })
        .collect();
    (parsed, entries)
}
