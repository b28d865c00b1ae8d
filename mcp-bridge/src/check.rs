//! `pg-nlq-bridge check-config`: the configuration, each server, each database and the model
//! endpoint, each with a line saying what is fine and exactly what is wrong.

use std::time::Duration;

use crate::pgnlq::{PolicyProblem, RoleCheck};
use crate::registry::{self, Database};
use crate::settings::Settings;

/// What `check-config` found.
pub struct Report {
    /// False when something must be fixed before the bridge can answer questions.
    pub ok: bool,
    pub text: String,
}

struct Lines {
    text: String,
    errors: usize,
}

impl Lines {
    // a line names databases, servers and what they said: on one line, tags neutralised and
    // deceptive characters escaped, so no name can forge a line or reorder the report
    fn good(&mut self, line: String) {
        let line = crate::untrusted::one_line(&line);
        self.text.push_str(&format!("  ok    {line}\n"));
    }
    fn warn(&mut self, line: String) {
        let line = crate::untrusted::one_line(&line);
        self.text.push_str(&format!("  warn  {line}\n"));
    }
    fn bad(&mut self, line: String) {
        self.errors += 1;
        let line = crate::untrusted::one_line(&line);
        self.text.push_str(&format!("  ERROR {line}\n"));
    }
}

/// Checks everything `settings` names.
pub async fn check(settings: &Settings) -> Report {
    check_all(settings, &[]).await
}

/// [`check`], first listing `problems`, what reading the configuration found
/// ([`crate::settings::Loaded`]): every one is an error, and everything else is still checked
/// (with the default where a value was wrong).
pub async fn check_all(settings: &Settings, problems: &[String]) -> Report {
    let mut out = Lines {
        text: format!("configuration\n{}", indent(&settings.describe())),
        errors: 0,
    };
    for problem in problems {
        out.bad(problem.clone());
    }
    let mut usable = 0usize;
    let mut warned_roles = std::collections::BTreeSet::new();
    // escaped name → the servers that have it, to say which names get qualified
    let mut servers_of: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut policy_seen = std::collections::BTreeSet::new();
    for server in &settings.servers {
        out.text.push_str(&format!("server {}\n", server.name));
        let names = match registry::discover(server, &settings.database).await {
            Ok(names) => names,
            Err(err) => {
                out.bad(err.to_string());
                continue;
            }
        };
        if server.databases.is_none() {
            out.good(format!(
                "reachable; {} database{} this role may connect to",
                names.len(),
                if names.len() == 1 { "" } else { "s" }
            ));
        }
        for name in names {
            let escaped = registry::escape_name(&name);
            servers_of
                .entry(escaped.clone())
                .or_default()
                .push(server.name.clone());
            if escaped != name {
                out.warn(format!(
                    "database {name:?} holds the separator '/', white space, or look-alike or \
                     invisible characters: the bridge names it {escaped}"
                ));
            }
            let database = match Database::new(
                name.clone(),
                &name,
                server,
                &settings.database,
                crate::linking::TokenCounter::for_model(&settings.model.model),
            ) {
                Ok(d) => d,
                Err(err) => {
                    out.bad(format!("{name}: {err}"));
                    continue;
                }
            };
            match database.role_check().await {
                Err(err) => {
                    out.bad(format!("{name}: {}", err.message));
                    continue;
                }
                Ok(RoleCheck {
                    extension_version: None,
                    ..
                }) => {
                    out.warn(format!(
                        "{name}: pg_nlq is not installed; skipped (CREATE EXTENSION pg_nlq to use it)"
                    ));
                    continue;
                }
                Ok(RoleCheck {
                    role,
                    privileged,
                    extension_version: Some(version),
                }) => {
                    if privileged && warned_roles.insert((server.name.clone(), role.clone())) {
                        out.warn(format!(
                            "role {role} is a superuser or bypasses row-level security; use a \
                             least-privilege role (sql/bridge_role.sql)"
                        ));
                    }
                    report_policy(&database, &name, &role, &mut policy_seen, &mut out).await;
                    match database.load().await {
                        Ok(cached) if cached.snapshot.relations.is_empty() => {
                            out.warn(format!(
                                "{name}: the role {role} sees no relations: grant it something \
                                 or exclude the database (servers.exclude)"
                            ));
                        }
                        Ok(cached) => {
                            usable += 1;
                            out.good(format!(
                                "{name}: pg_nlq {version}, role {role}, {} relations, whole schema {} tokens",
                                cached.snapshot.relations.len(),
                                cached.linker.whole_schema_tokens()
                            ));
                        }
                        Err(err) => out.bad(format!("{name}: {}", err.message)),
                    }
                }
            }
        }
    }
    let shared: Vec<_> = servers_of.iter().filter(|(_, s)| s.len() > 1).collect();
    if !shared.is_empty() {
        out.text.push_str("names\n");
    }
    for (name, servers) in shared {
        out.warn(format!(
            "database {name} is on servers {}: tools name them {}",
            servers.join(", "),
            servers
                .iter()
                .map(|s| format!("{s}/{name}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if usable == 0 && out.errors == 0 {
        out.bad("no usable database: the bridge has nothing to answer from".into());
    } else if usable == 0 {
        // a consequence of the errors above, not one more problem to fix
        out.warn("no usable database until the errors above are fixed".into());
    }
    out.text.push_str("model\n");
    check_model(settings, &mut out).await;
    Report {
        ok: out.errors == 0,
        // what the servers and the endpoint said may quote a secret: the one redaction path
        text: crate::redact::redact(&format!(
            "{}{}\n",
            out.text,
            if out.errors == 0 {
                "check-config: everything needed works".to_string()
            } else {
                format!("check-config: {} problem(s) to fix", out.errors)
            }
        )),
    }
}

/// The problems `nlq_policy_check()` lists in database `name`: an error where it stops pg_nlq
/// for the bridge's role here, else a warning. `pg_db_role_setting` is shared by the whole
/// server, so an entry for every database is shown once per server (`seen`), and one stored
/// for another database is left to that database's own check.
async fn report_policy(
    database: &Database,
    name: &str,
    role: &str,
    seen: &mut std::collections::BTreeSet<PolicyProblem>,
    out: &mut Lines,
) {
    let problems = match database.policy_problems().await {
        Ok(p) => p,
        Err(err) => {
            out.warn(format!(
                "{name}: the stored pg_nlq settings could not be checked: {}",
                err.message
            ));
            return;
        }
    };
    for p in problems {
        if p.database.as_deref().is_some_and(|d| d != name) || !seen.insert(p.clone()) {
            continue;
        }
        let line = format!("{name}: {}", describe_policy_problem(&p));
        if p.error && p.role.as_deref().is_none_or(|r| r == role) {
            out.bad(line);
        } else {
            out.warn(line);
        }
    }
}

/// `pg_nlq.x = 'v' (ALTER ROLE r SET): problem`, naming the command that stored it.
fn describe_policy_problem(p: &PolicyProblem) -> String {
    let stored = match (p.source.as_str(), &p.role, &p.database) {
        ("database user", Some(r), Some(d)) => format!("ALTER ROLE {r} IN DATABASE {d} SET"),
        ("user", Some(r), _) => format!("ALTER ROLE {r} SET"),
        ("database", _, Some(d)) => format!("ALTER DATABASE {d} SET"),
        ("global", _, _) => "ALTER ROLE ALL SET".to_string(),
        (source, _, _) => format!("from {source}"),
    };
    format!(
        "{}{} ({stored}): {}",
        p.setting,
        p.value
            .as_deref()
            .map(|v| format!(" = '{}'", v.replace('\'', "''")))
            .unwrap_or_default(),
        p.problem
    )
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Asks the endpoint for its model list (costs no tokens) to check the address and the key.
async fn check_model(settings: &Settings, out: &mut Lines) {
    let m = &settings.model;
    let Some(key) = &m.api_key else {
        out.warn(
            "no API key (OPENAI_API_KEY or model.api_key): the query tool works only through MCP \
             clients that support sampling; the other tools work"
                .into(),
        );
        return;
    };
    crate::redact::register(key);
    let client = match reqwest::Client::builder()
        // never carry the key to where a redirect points (see `llm::openai`)
        .redirect(reqwest::redirect::Policy::none())
        // the key goes to base_url's origin only: never through an HTTP(S)_PROXY
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            out.bad(format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    let url = format!("{}/models", m.base_url);
    // What is shown of the address: without a password in it.
    let base_url = crate::settings::redact_url_credentials(&m.base_url);
    match client.get(&url).bearer_auth(key).send().await {
        Err(e) => out.bad(format!(
            "{} is not reachable: {}",
            base_url,
            crate::redact::redact(&e.to_string())
        )),
        Ok(resp) if resp.status().is_redirection() => out.bad(
            crate::llm::openai::redirect_message(resp.status(), resp.url(), resp.headers()),
        ),
        Ok(resp) => {
            let status = resp.status();
            let body = bounded_json(resp).await;
            let message = body
                .pointer("/error/message")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            if status.as_u16() == 401 || status.as_u16() == 403 {
                out.bad(format!(
                    "the endpoint refused the API key (HTTP {status}){}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    }
                ));
            } else if status.is_success() {
                let listed = body.get("data").and_then(|d| d.as_array()).map(|d| {
                    d.iter()
                        .any(|x| x.get("id").and_then(|i| i.as_str()) == Some(m.model.as_str()))
                });
                match listed {
                    Some(true) | None => out.good(format!("{base_url} answers; model {}", m.model)),
                    Some(false) => out.warn(format!(
                        "{} answers, but does not list the model {:?}: check model.model",
                        base_url, m.model
                    )),
                }
            } else {
                out.warn(format!(
                    "{} answered HTTP {status} to GET /models (some OpenAI-compatible servers do \
                     not offer it); the key could not be checked",
                    base_url
                ));
            }
        }
    }
}

/// The reply's body as JSON (`Null` when it is not), reading at most 1 MiB: a hostile or broken
/// endpoint cannot make check-config read without end.
async fn bounded_json(mut resp: reqwest::Response) -> serde_json::Value {
    const MAX: usize = 1024 * 1024;
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if body.len() + chunk.len() > MAX {
            return serde_json::Value::Null;
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(source: &str, role: Option<&str>, database: Option<&str>) -> PolicyProblem {
        PolicyProblem {
            setting: "pg_nlq.deny_relations".into(),
            value: Some("sales.*".into()),
            source: source.into(),
            role: role.map(str::to_string),
            database: database.map(str::to_string),
            error: true,
            problem: "no such pg_nlq setting".into(),
        }
    }

    #[test]
    fn policy_problems_name_the_command_that_stored_them() {
        assert_eq!(
            describe_policy_problem(&problem("user", Some("r"), None)),
            "pg_nlq.deny_relations = 'sales.*' (ALTER ROLE r SET): no such pg_nlq setting"
        );
        assert_eq!(
            describe_policy_problem(&problem("database user", Some("r"), Some("d"))),
            "pg_nlq.deny_relations = 'sales.*' (ALTER ROLE r IN DATABASE d SET): no such pg_nlq \
             setting"
        );
        assert_eq!(
            describe_policy_problem(&problem("database", None, Some("d"))),
            "pg_nlq.deny_relations = 'sales.*' (ALTER DATABASE d SET): no such pg_nlq setting"
        );
        assert_eq!(
            describe_policy_problem(&problem("global", None, None)),
            "pg_nlq.deny_relations = 'sales.*' (ALTER ROLE ALL SET): no such pg_nlq setting"
        );
        let mut file = problem("configuration file", None, None);
        file.value = Some("it's".into());
        assert_eq!(
            describe_policy_problem(&file),
            "pg_nlq.deny_relations = 'it''s' (from configuration file): no such pg_nlq setting"
        );
    }
}
