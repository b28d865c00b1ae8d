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

/// A server URL whose variable is not set is one problem, said once: not also "missing field
/// `url`" for the entry it was left out of, nor "no PostgreSQL server configured" for a file
/// that has one. A field that is really missing is still said.
#[test]
fn an_unset_variable_in_a_server_url_is_one_problem() {
    let text = "[[servers]]\nname = \"a\"\nurl = \"${NLQ_UNSET}\"\ndatabases = [\"x\"]\n";
    let loaded = Settings::from_toml_all(text, "t", &env(&[])).unwrap();
    assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
    assert!(
        loaded.problems[0].contains("servers[0].url uses ${NLQ_UNSET}"),
        "{:?}",
        loaded.problems
    );
    assert!(loaded.settings.servers.is_empty());

    // the second entry has no url at all: that is its own problem
    let text = format!("{text}[[servers]]\nname = \"b\"\ndatabases = [\"y\"]\n");
    let loaded = Settings::from_toml_all(&text, "t", &env(&[])).unwrap();
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    assert!(
        loaded.problems[1].contains("servers[1]: missing field `url`"),
        "{:?}",
        loaded.problems
    );
    // and a file without servers still says how to add one
    let loaded = Settings::from_toml_all("[model]\nmodel = \"m\"\n", "t", &env(&[])).unwrap();
    assert!(
        loaded
            .problems
            .iter()
            .any(|p| p.contains("no PostgreSQL server configured")),
        "{:?}",
        loaded.problems
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
        include_str!("../../bridge.example.toml"),
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
        include_str!("../../../fixtures/bridge.toml"),
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
