//! The command line, through the built binary: `check-config` for each class of mistake,
//! `ask` with a scripted model, `run`, and secrets kept out of every output and log.
//! Run through `make test-bridge` (NLQ_TEST_DSN, NLQ_TEST_BRIDGE_DSN).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::path::PathBuf;
use std::process::Output;

use common::{bridge_dsn, drop_db, pg, TempDir, CONFIG_ENV_VARS};
use scripted_openai::{generate, verdict, ScriptedOpenAi, Step};

const BIN: &str = env!("CARGO_BIN_EXE_pg-nlq-bridge");
const SECRET: &str = "sk-cli-very-secret-key";

/// A configuration file in a fresh temporary directory, removed on drop.
struct Config {
    _dir: TempDir,
    path: PathBuf,
}

impl Config {
    fn new(tag: &str, text: &str) -> Config {
        let dir = TempDir::new(&format!("cli-{tag}"));
        let path = dir.write("bridge.toml", text);
        Config { _dir: dir, path }
    }
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
}

async fn bridge(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args).env("RUST_LOG", "debug").kill_on_drop(true);
    for var in CONFIG_ENV_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output())
        .await
        .expect("the bridge did not finish within 120 s")
        .unwrap();
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn server(databases: &str) -> String {
    format!(
        "[[servers]]\nname = \"local\"\nurl = \"{} dbname=postgres\"\n{databases}\n",
        bridge_dsn()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_says_what_is_wrong() {
    // Bad TOML.
    let c = Config::new("badtoml", "[[servers]\nurl = 1");
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("error[CONFIG_ERROR]") && err.contains("not valid TOML"),
        "{err}"
    );

    // Unknown key.
    let c = Config::new(
        "unknown",
        &format!("[modle]\nmodel = \"x\"\n{}", server("")),
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    // one of the problems of the report, the servers still checked
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains("bridge.toml: unknown key modle: did you mean model?"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    "), "{stdout}");

    // Missing file.
    let out = bridge(
        &["check-config", "--config", "/nonexistent/bridge.toml"],
        &[],
    )
    .await;
    let (_, err) = text(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot read the configuration file /nonexistent/bridge.toml"),
        "{err}"
    );

    // Unreachable server, and a database without pg_nlq, and no model key.
    drop_db("nlq_cli_noext").await;
    pg("postgres")
        .await
        .batch_execute("CREATE DATABASE nlq_cli_noext")
        .await
        .unwrap();
    let c = Config::new(
        "mixed",
        &format!(
            "[database]\nconnect_timeout_secs = 2\n{}[[servers]]\nname = \"gone\"\nurl = \"host=127.0.0.1 port=1 user=x dbname=postgres\"\n",
            server("databases = [\"nlq_small\", \"nlq_cli_noext\"]")
        ),
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (stdout, _) = text(&out);
    drop_db("nlq_cli_noext").await;
    assert!(
        !out.status.success(),
        "an unreachable server is an error: {stdout}"
    );
    assert!(stdout.contains("ok    nlq_small: pg_nlq"), "{stdout}");
    assert!(
        stdout.contains("nlq_cli_noext: pg_nlq is not installed"),
        "a database without the extension is reported with the reason: {stdout}"
    );
    assert!(
        stdout.contains("ERROR server gone") || stdout.contains("server gone"),
        "{stdout}"
    );
    assert!(stdout.contains("Connection refused"), "{stdout}");
    assert!(stdout.contains("no API key"), "{stdout}");
    assert!(stdout.contains("1 problem(s) to fix"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_checks_the_model_key_and_never_shows_it() {
    let model = ScriptedOpenAi::start(vec![]).await;
    // A key given through ${VAR}: used, never shown or logged.
    let c = Config::new(
        "key",
        &format!(
            "[model]\napi_key = \"${{MY_NLQ_KEY}}\"\nbase_url = \"{}\"\n{}",
            model.base_url(),
            server("databases = [\"nlq_small\"]")
        ),
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[("MY_NLQ_KEY", SECRET)],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("API key: set"), "{stdout}");
    // The scripted server has no /models: reported, not fatal.
    assert!(stdout.contains("GET /models"), "{stdout}");
    assert!(out.status.success(), "{stdout}");

    // The variable unset: a configuration error naming it.
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (stdout, _) = text(&out);
    assert!(!out.status.success());
    assert!(
        stdout.contains("ERROR model.api_key uses ${MY_NLQ_KEY}, but MY_NLQ_KEY is not set"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_prints_a_readable_answer() {
    let sql = "SELECT p.name, count(*) AS books FROM public.publishers p JOIN public.books b ON b.publisher_id = p.id GROUP BY p.name ORDER BY 2 DESC, 1";
    let model = ScriptedOpenAi::start(vec![
        Step::expect("sql_answer")
            .containing("How many books per publisher?")
            .containing("public.publishers")
            .check(|r| {
                if r.authorization.as_deref() == Some(&format!("Bearer {SECRET}")) {
                    Ok(())
                } else {
                    Err(format!("wrong authorization {:?}", r.authorization))
                }
            })
            .reply(generate(sql)),
        Step::expect("result_verdict").reply(verdict(9, "books counted per publisher")),
        Step::expect("sql_answer").reply(generate("DELETE FROM public.books")),
        Step::expect("sql_answer").reply(generate("DELETE FROM public.books")),
    ])
    .await;
    let c = Config::new(
        "ask",
        &format!(
            "[model]\nbase_url = \"{}\"\n[pipeline]\nmax_attempts = 2\n{}",
            model.base_url(),
            server("databases = [\"nlq_small\"]")
        ),
    );
    let path = c.path();
    let cfg = path.to_str().unwrap();
    let out = bridge(
        &[
            "ask",
            "--config",
            cfg,
            "--return",
            "both",
            "--limit",
            "3",
            "How many books per publisher?",
        ],
        &[("OPENAI_API_KEY", SECRET)],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(sql), "{stdout}");
    assert!(stdout.contains("books"), "{stdout}");
    assert!(
        stdout.contains("9/10") || stdout.contains("confidence"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "the key leaked"
    );

    // Exhausted attempts: a non-zero exit with every attempt listed.
    let out = bridge(
        &[
            "ask",
            "--config",
            cfg,
            "--db",
            "nlq_small",
            "delete the books",
        ],
        &[("OPENAI_API_KEY", SECRET)],
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("error[UNSAFE_SQL]"), "{stderr}");
    assert!(
        stderr.contains("attempt 1: NOT_A_QUERY") && stderr.contains("attempt 2: NOT_A_QUERY"),
        "{stderr}"
    );
    model.assert_done();

    // JSON output of `run`.
    let out = bridge(
        &[
            "run",
            "--config",
            cfg,
            "--json",
            "SELECT count(*) AS n FROM public.books",
        ],
        &[],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["columns"][0]["name"], "n");
    assert_eq!(v["row_count"], 1);
}

/// A server nothing listens on, with its databases listed (no discovery): for what the command
/// line says before any database answers.
const NOWHERE: &str =
    "[database]\nconnect_timeout_secs = 1\nstartup_timeout_secs = 1\n[[servers]]\nname = \"nowhere\"\nurl = \"host=127.0.0.1 port=1 user=x dbname=postgres\"\ndatabases = [\"a\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_follow_one_rule_at_the_parser() {
    let c = Config::new("limits", NOWHERE);
    let path = c.path();
    let cfg = path.to_str().unwrap();
    for (command, rest) in [("run", "SELECT 1"), ("ask", "how many books?")] {
        for bad in ["0", "-1"] {
            let out = bridge(&[command, "--config", cfg, "--limit", bad, rest], &[]).await;
            let (stdout, stderr) = text(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{command} --limit {bad}: {stderr}"
            );
            assert!(stdout.is_empty(), "{stdout}");
            assert!(
                stderr.contains("--limit")
                    && stderr.contains("at least 1")
                    && stderr.contains("pipeline.max_row_limit"),
                "{command} --limit {bad}: {stderr}"
            );
            // not clap's advice to write `-- -1`, which would make it the question
            assert!(!stderr.contains("-- -1"), "{stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_question_names_the_setting_and_its_length() {
    let c = Config::new(
        "long",
        &format!("[pipeline]\nmax_question_chars = 10\n{NOWHERE}"),
    );
    let out = bridge(
        &[
            "ask",
            "--config",
            c.path().to_str().unwrap(),
            "how many books are there?",
        ],
        &[("OPENAI_API_KEY", SECRET)],
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("error[INVALID_ARGUMENT]"), "{stderr}");
    assert!(
        stderr.contains("pipeline.max_question_chars") && stderr.contains("25 characters"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_reports_every_problem_in_one_run() {
    let c = Config::new(
        "every",
        &format!(
            "[modle]\nmodel = \"x\"\n[pipeline]\nmax_attempt = 2\nverify_threshold = 11\n\
             [http]\nmax_sessions = 0\n{}",
            server("databases = [\"nlq_small\"]\nurl_typo = 1")
        ),
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    for needle in [
        "ERROR",
        "unknown key modle",
        "did you mean model?",
        "unknown key pipeline.max_attempt: did you mean max_attempts?",
        "unknown key servers[0].url_typo",
        "pipeline.verify_threshold = 11 is out of range",
        "http.max_sessions = 0 is out of range",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} in:\n{stdout}\n{stderr}"
        );
    }
    // and the servers and databases are still checked
    assert!(stdout.contains("ok    nlq_small: pg_nlq"), "{stdout}");
    assert!(stdout.contains("5 problem(s) to fix"), "{stdout}");

    // other commands refuse such a file, saying every problem too
    let out = bridge(
        &["run", "--config", c.path().to_str().unwrap(), "SELECT 1"],
        &[],
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("5 problems in the configuration")
            && stderr.contains("modle")
            && stderr.contains("url_typo"),
        "{stderr}"
    );
}

/// A server URL naming an unset variable is one problem, said once, with the fix: not also a
/// missing `url`, a missing `[[servers]]` section and "no usable database" (a new DBA read
/// four problems into one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_variable_in_the_server_url_is_one_problem() {
    let c = Config::new(
        "unset",
        "[[servers]]\nname = \"local\"\nurl = \"${NLQ_TEST_UNSET_URL}\"\ndatabases = [\"nlq_small\"]\n",
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "ERROR servers[0].url uses ${NLQ_TEST_UNSET_URL}, but NLQ_TEST_UNSET_URL is not set"
        ),
        "{stdout}"
    );
    for noise in [
        "missing field",
        "no PostgreSQL server configured",
        "ERROR no usable",
    ] {
        assert!(!stdout.contains(noise), "{noise:?} in\n{stdout}\n{stderr}");
    }
    assert!(
        stdout.contains("warn  no usable database until the errors above are fixed"),
        "{stdout}"
    );
    assert!(stdout.contains("1 problem(s) to fix"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_warns_of_a_database_the_role_sees_nothing_in() {
    drop_db("nlq_cli_empty").await;
    pg("postgres")
        .await
        .batch_execute("CREATE DATABASE nlq_cli_empty")
        .await
        .unwrap();
    pg("nlq_cli_empty")
        .await
        .batch_execute(
            "SET client_min_messages = warning; CREATE EXTENSION pg_nlq; \
             CREATE TABLE hidden (id int)",
        )
        .await
        .unwrap();
    let c = Config::new(
        "empty",
        &server("databases = [\"nlq_small\", \"nlq_cli_empty\"]"),
    );
    let out = bridge(
        &["check-config", "--config", c.path().to_str().unwrap()],
        &[],
    )
    .await;
    let (stdout, _) = text(&out);
    // --db checks that database only
    let only = bridge(
        &[
            "check-config",
            "--config",
            c.path().to_str().unwrap(),
            "--db",
            "nlq_cli_empty",
        ],
        &[],
    )
    .await;
    let (only_stdout, only_stderr) = text(&only);
    drop_db("nlq_cli_empty").await;
    assert!(
        stdout.contains("warn  nlq_cli_empty: the role nlq_bridge sees no relations: grant it"),
        "{stdout}"
    );
    assert!(!stdout.contains("ok    nlq_cli_empty"), "{stdout}");
    assert!(stdout.contains("ok    nlq_small: pg_nlq"), "{stdout}");
    assert!(out.status.success(), "{stdout}");
    assert!(
        !only_stdout.contains("nlq_small"),
        "{only_stdout}\n{only_stderr}"
    );
    assert!(
        only_stdout.contains("no usable database"),
        "a database with nothing visible is not usable: {only_stdout}"
    );
    assert!(!only.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_points_at_a_syntax_error_and_names_the_cli_flags() {
    let c = Config::new("caret", &server("databases = [\"nlq_small\"]"));
    let path = c.path();
    let cfg = path.to_str().unwrap();
    let sql = "SELECT title,\nFROM public.books";
    let out = bridge(&["run", "--config", cfg, sql], &[]).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("error[SYNTAX_ERROR]"), "{stderr}");
    assert_eq!(
        stderr.matches("SYNTAX_ERROR").count(),
        1,
        "the code is said once: {stderr}"
    );
    assert!(
        stderr.contains("at character 15:\n  FROM public.books\n  ^\n"),
        "{stderr}"
    );

    // several databases and no --db: the message names the flag, not the MCP field
    let c = Config::new("two", &server("databases = [\"nlq_small\", \"nlq_large\"]"));
    let out = bridge(
        &["run", "--config", c.path().to_str().unwrap(), "SELECT 1"],
        &[],
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("say which one with `--db`"), "{stderr}");
    assert!(!stderr.contains("`database`"), "{stderr}");
    // in --json too: the error object is the MCP one, its message the command line's
    let out = bridge(
        &[
            "run",
            "--config",
            c.path().to_str().unwrap(),
            "--json",
            "SELECT 1",
        ],
        &[],
    )
    .await;
    let (stdout, _) = text(&out);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["code"], "INVALID_ARGUMENT", "{v}");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("`--db`"), "{message}");
    assert_eq!(
        v["candidates"],
        serde_json::json!(["nlq_small", "nlq_large"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_takes_config_and_db() {
    let c = Config::new("grammar", NOWHERE);
    let path = c.path();
    let cfg = path.to_str().unwrap();
    // --db narrows serve and check-config to one database of the configuration: one it does
    // not have is refused before anything is served, naming the ones it has
    for command in [vec!["serve"], vec!["check-config"], vec!["snapshot"]] {
        let mut args = command.clone();
        args.extend(["--config", cfg, "--db", "nosuch"]);
        let out = bridge(&args, &[]).await;
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains(
                "error[UNKNOWN_DATABASE]: there is no database \"nosuch\"; the bridge knows: a"
            ),
            "{args:?}: {stderr}"
        );
    }
    for command in [
        "serve",
        "ask",
        "run",
        "check-config",
        "snapshot",
        "context",
        "eval",
    ] {
        let out = bridge(&[command, "--help"], &[]).await;
        let (help, _) = text(&out);
        assert!(
            help.contains("--config <PATH>") && help.contains("--db <NAME>"),
            "{command}: {help}"
        );
    }
    // the one meaning of NLQ_DATABASE_URL, in --help
    let out = bridge(&["--help"], &[]).await;
    let (help, _) = text(&out);
    assert!(help.contains("NLQ_DATABASE_URL names a server"), "{help}");
}
