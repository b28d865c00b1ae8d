//! `pg-nlq-bridge`: the command line. Parses arguments, sets up logging to stderr, runs the
//! command and reports failure as one `error[CODE]: message` line and a non-zero exit code.

mod cli;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

use std::path::PathBuf;
use std::sync::Arc;

use mcp_bridge::answer::{QueryRequest, ReturnMode};
use mcp_bridge::bridge::Bridge;
use mcp_bridge::config::DatabaseConfig;
use mcp_bridge::error::BridgeError;
use mcp_bridge::registry::Registry;
use mcp_bridge::settings::{Env, ProcessEnv, Settings};
use mcp_bridge::snapshot::Snapshot;

/// Natural-language questions over PostgreSQL, through the pg_nlq extension.
///
/// Every command takes --config (the configuration file) and --db (which database).
/// Without a configuration file the environment alone configures the bridge: NLQ_DATABASE_URL
/// names a server (a libpq string or postgres:// URL); the bridge connects to the database it
/// names to list the databases this role may connect to, and --db picks one of them.
/// `snapshot --dsn` reads one database's connection string instead.
///
/// Logs go to stderr; set RUST_LOG (for example RUST_LOG=debug) to see more of them.
#[derive(Debug, Parser)]
#[command(name = "pg-nlq-bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve MCP: over stdio (the default, for Claude Desktop / Claude Code), or over streamable
    /// HTTP with --http.
    Serve(ServeArgs),
    /// Ask a question from the command line: the same pipeline as the MCP `query` tool.
    Ask(AskArgs),
    /// Run one read-only SQL query through nlq_run (validated, capped, timed out) and print it.
    Run(RunArgs),
    /// Check the configuration, the servers, the databases and the model endpoint, and say
    /// exactly what is wrong.
    CheckConfig(CheckArgs),
    /// Fetch a database's schema snapshot (nlq_schema_snapshot()) and print a summary: the
    /// database --db names in the configuration, or the one --dsn connects to.
    Snapshot(SnapshotArgs),
    /// Show the schema context a question would get (routing, chosen relations, token counts),
    /// without asking the model.
    Context(ContextArgs),
    /// Evaluate the context stage over cases (TEST_QUERIES.md format or JSON lines): strict
    /// gold-table recall, prompt tokens and routing accuracy; no model needed.
    Eval(EvalArgs),
}

#[derive(Debug, Args)]
struct ContextArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The question
    question: String,
    /// The database [default: the only one, or routed from the question]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Print one JSON object (database, routing, relations, prompt_tokens, schema_tokens...)
    #[arg(long)]
    json: bool,
    /// Before the context text, say which database was chosen and why, which relations were
    /// chosen and the token counts against the whole schema's
    #[arg(long, conflicts_with = "json")]
    explain: bool,
    /// Let the configured model choose the tables when the lexical evidence is weak (one
    /// cheap call, as the pipeline makes); needs a model (OPENAI_API_KEY)
    #[arg(long)]
    with_model: bool,
}

#[derive(Debug, Args)]
struct EvalArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Cases: TEST_QUERIES.md's format, or JSON lines (question, database, sql, optional
    /// evidence, id, level)
    #[arg(long, value_name = "FILE", default_value = "fixtures/TEST_QUERIES.md")]
    cases: PathBuf,
    /// Only the cases of this database (routing still ranks every configured database)
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Directory for report.json and summary.md; a run over the same directory resumes
    #[arg(long, value_name = "DIR", default_value = "target/eval")]
    out: PathBuf,
    /// Run the context stage with the configured model's table selection (where the lexical
    /// evidence is weak), so recall is the pipeline's with the model, and route every phrasing
    /// as the pipeline does with no database named (the model asked where lexical routing does
    /// not decide); needs OPENAI_API_KEY
    #[arg(long)]
    with_model: bool,
    /// Also run every phrasing through the whole pipeline with the model and score it by
    /// execution accuracy against the expected SQL (model_report.json, model_summary.md);
    /// implies --with-model
    #[arg(long)]
    pipeline: bool,
    /// Phrasings through the pipeline at once (--pipeline)
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Row cap of the generated and the expected queries (--pipeline); a result it cuts is
    /// counted as uncomparable
    #[arg(long, value_name = "ROWS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    eval_rows: u32,
    /// USD per million input tokens (--pipeline) [default: gpt-5-mini's list price, 0.25]
    #[arg(long, value_name = "USD")]
    price_input: Option<f64>,
    /// USD per million output tokens (--pipeline) [default: gpt-5-mini's list price, 2.00]
    #[arg(long, value_name = "USD")]
    price_output: Option<f64>,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Configuration file (TOML) [default: the value of NLQ_CONFIG; without one, the
    /// environment alone: NLQ_DATABASE_URL (a server whose databases are discovered),
    /// OPENAI_API_KEY...]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Check only this database (and its server) [default: every configured one]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Serve only this database [default: every configured one]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Serve streamable HTTP on this address (such as 127.0.0.1:8765) instead of stdio; the
    /// endpoint is http://ADDR/mcp
    #[arg(long, value_name = "ADDR")]
    http: Option<std::net::SocketAddr>,
    /// Allow --http on a non-loopback address (the endpoint has no authentication)
    #[arg(long, requires = "http")]
    allow_remote: bool,
}

#[derive(Debug, Args)]
struct AskArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The question, in plain language (English or Chinese)
    question: String,
    /// The database to ask [default: the only one, or chosen from the question]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// What to return: sql, result or both [default: inferred from the question, else result]
    #[arg(long = "return", value_name = "MODE")]
    return_mode: Option<ReturnMode>,
    /// Most rows to return: at least 1, at most pipeline.max_row_limit [default:
    /// pipeline.default_row_limit]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = cli::parse_limit)]
    limit: Option<u32>,
    /// In sql mode, do not test-run the query
    #[arg(long)]
    no_test_run: bool,
    /// Print the answer as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// One read-only SQL query
    sql: String,
    /// The database [default: the only one]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Most rows to return: at least 1, at most pipeline.max_row_limit [default:
    /// pipeline.default_row_limit]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = cli::parse_limit)]
    limit: Option<u32>,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct SnapshotArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The database [default: the only one]
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// One database's connection string ("host=... dbname=..." or a postgres:// URL), instead
    /// of the configuration: the database it names is the one read
    #[arg(long, value_name = "DSN", alias = "database", conflicts_with_all = ["config", "db"])]
    dsn: Option<String>,
    /// Only this schema; repeat for several [default: every schema you may use]
    #[arg(long = "schema", value_name = "NAME")]
    schemas: Vec<String>,
    /// Leave per-column statistics out of the snapshot
    #[arg(long)]
    no_stats: bool,
    /// Print the snapshot document as JSON instead of the summary
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await.map(|()| String::new()),
        Command::Ask(args) => return ask(args).await,
        Command::Run(args) => return run(args).await,
        Command::CheckConfig(args) => return check_config(args).await,
        Command::Snapshot(args) => snapshot(args).await,
        Command::Context(args) => context(args).await,
        Command::Eval(args) => eval(args).await,
    };
    match result.and_then(|text| print(&text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", cli::cli_bridge_error(err).one_line());
            ExitCode::FAILURE
        }
    }
}

fn load_settings(args: &ConfigArgs) -> Result<Settings, BridgeError> {
    Settings::load(args.config.as_deref(), &ProcessEnv)
}

async fn start(args: &ConfigArgs) -> Result<Arc<Bridge>, BridgeError> {
    Bridge::start(load_settings(args)?).await
}

/// The settings narrowed to the one database `--db` names (its server, that database only),
/// found by the names the tools take; unchanged without `--db`.
async fn only_database(settings: Settings, db: Option<&str>) -> Result<Settings, BridgeError> {
    let Some(name) = db else {
        return Ok(settings);
    };
    let registry = Registry::new(&settings);
    registry.discover_all().await?;
    let database = lookup(&registry, Some(name)).await?;
    let mut settings = settings;
    settings.servers.retain(|s| s.name == database.server);
    for server in &mut settings.servers {
        server.databases = Some(vec![database.dbname.clone()]);
        server.exclude.clear();
    }
    Ok(settings)
}

/// The database `name` names, or the only one; the error names the command line's flags and
/// says why a server could not be asked.
async fn lookup(
    registry: &Registry,
    name: Option<&str>,
) -> Result<Arc<mcp_bridge::registry::Database>, BridgeError> {
    match registry.lookup(name) {
        Ok(database) => Ok(database),
        Err(err) => {
            // why a server is missing is what it (or the network) said: the detail
            let unreachable: Vec<String> = registry
                .list()
                .await
                .into_iter()
                .filter(|i| i.status == mcp_bridge::registry::Status::ServerUnavailable)
                .map(|i| {
                    format!(
                        "server {} could not be asked for its databases: {}",
                        i.server,
                        i.reason.unwrap_or_default()
                    )
                })
                .collect();
            let err = if unreachable.is_empty() {
                err
            } else {
                let before = err.detail.clone().map(|d| d + "; ").unwrap_or_default();
                let detail = before + &unreachable.join("; ");
                err.with_detail(detail)
            };
            Err(BridgeError::Tool(err))
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), BridgeError> {
    let settings = only_database(load_settings(&args.config)?, args.db.as_deref()).await?;
    let bridge = Bridge::start(settings).await?;
    match args.http {
        Some(addr) => mcp_bridge::mcp::serve_http(bridge, addr, args.allow_remote).await,
        None => mcp_bridge::mcp::serve_stdio(bridge).await,
    }
}

/// Prints a tool's result, or its error and what was tried, with the exit code.
fn finish<T>(
    result: Result<T, mcp_bridge::answer::ToolError>,
    json: bool,
    text: impl Fn(&T) -> String,
) -> ExitCode
where
    T: serde::Serialize,
{
    match result {
        Ok(value) => {
            let out = if json {
                match serde_json::to_string_pretty(&value) {
                    Ok(s) => s + "\n",
                    Err(e) => {
                        eprintln!("error[INTERNAL_ERROR]: cannot encode the result: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                text(&value)
            };
            match print(&mcp_bridge::redact::redact(&out)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("{}", cli::cli_bridge_error(err).one_line());
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            // the command line's words: its flags where the message names MCP fields
            let err = cli::cli_error(err);
            if json {
                if let Ok(s) = serde_json::to_string_pretty(&err) {
                    let _ = print(&mcp_bridge::redact::redact(&(s + "\n")));
                }
            }
            // the one rendering of errors, the MCP text block's (the code and message, the
            // database, then the detail and the attempts fenced), naming the CLI's flags
            eprintln!(
                "{}",
                mcp_bridge::redact::redact(&mcp_bridge::mcp::error_text(&err))
            );
            ExitCode::FAILURE
        }
    }
}

async fn ask(args: AskArgs) -> ExitCode {
    let bridge = match start(&args.config).await {
        Ok(b) => b,
        Err(err) => {
            eprintln!("{}", cli::cli_bridge_error(err).one_line());
            return ExitCode::FAILURE;
        }
    };
    let request = QueryRequest {
        question: args.question,
        database: args.db,
        return_mode: args.return_mode,
        row_limit: args.limit,
        test_run: args.no_test_run.then_some(false),
    };
    let result = bridge.query(request, None).await;
    finish(result, args.json, mcp_bridge::mcp::answer_text)
}

async fn run(args: RunArgs) -> ExitCode {
    let bridge = match start(&args.config).await {
        Ok(b) => b,
        Err(err) => {
            eprintln!("{}", cli::cli_bridge_error(err).one_line());
            return ExitCode::FAILURE;
        }
    };
    let result = bridge
        .run_sql(args.db.as_deref(), &args.sql, args.limit)
        .await;
    let caret = match &result {
        // where the syntax error is: nlq_validate's position (a 1-based character offset)
        Err(err) if err.code == mcp_bridge::answer::ErrorCode::SyntaxError && !args.json => {
            match bridge.validate_sql(args.db.as_deref(), &args.sql).await {
                Ok(v) => v.position.and_then(|p| {
                    cli::caret(&args.sql, p).map(|c| format!("at character {p}:\n{c}"))
                }),
                Err(_) => None,
            }
        }
        _ => None,
    };
    let code = finish(result, args.json, mcp_bridge::mcp::run_text);
    if let Some(caret) = caret {
        eprint!("{}", mcp_bridge::redact::redact(&caret));
    }
    code
}

async fn check_config(args: CheckArgs) -> ExitCode {
    // every problem of the file at once; only a file that cannot be read or parsed stops here
    let loaded = match Settings::load_all(args.config.config.as_deref(), &ProcessEnv) {
        Ok(l) => l,
        Err(err) => {
            eprintln!("{}", cli::cli_bridge_error(err).one_line());
            return ExitCode::FAILURE;
        }
    };
    let settings = match only_database(loaded.settings, args.db.as_deref()).await {
        Ok(s) => s,
        Err(err) => {
            eprintln!("{}", cli::cli_bridge_error(err).one_line());
            return ExitCode::FAILURE;
        }
    };
    let report = mcp_bridge::check::check_all(&settings, &loaded.problems).await;
    let _ = print(&report.text);
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Logs to stderr (stdout is for results), filtered by RUST_LOG, warnings and errors by default.
fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        // every log line passes the one redaction path (crate::redact)
        .with_writer(mcp_bridge::redact::RedactingStderrMaker)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn snapshot(args: SnapshotArgs) -> Result<String, BridgeError> {
    let schemas = (!args.schemas.is_empty()).then_some(args.schemas.as_slice());
    let mut document = match args.dsn {
        // one database, no configuration
        Some(dsn) => {
            let config = DatabaseConfig::parse(&dsn, "--dsn")?;
            let client =
                mcp_bridge::pgnlq::connect(&config, mcp_bridge::config::DEFAULT_CONNECT_TIMEOUT)
                    .await?;
            let what = format!("database {}", config.redacted());
            mcp_bridge::pgnlq::snapshot(&client, &what, schemas, !args.no_stats).await?
        }
        // the database --db names in the configuration (or the environment), or the only one
        None => {
            let configured = args.config.config.is_some()
                || ProcessEnv.var(mcp_bridge::settings::CONFIG_ENV).is_some()
                || ProcessEnv.var(mcp_bridge::config::DATABASE_ENV).is_some();
            if !configured {
                return Err(BridgeError::Config(format!(
                    "no database given: pass --dsn <conninfo-or-URL>, or --config <PATH> (or \
                     set {} or {}) and --db <NAME>",
                    mcp_bridge::settings::CONFIG_ENV,
                    mcp_bridge::config::DATABASE_ENV
                )));
            }
            let settings = load_settings(&args.config)?;
            let registry = Registry::new(&settings);
            registry.discover_all().await?;
            let database = lookup(&registry, args.db.as_deref()).await?;
            let call = mcp_bridge::pgnlq::Call::Snapshot {
                schemas,
                include_stats: !args.no_stats,
            };
            database
                .call(call, &tokio_util::sync::CancellationToken::new())
                .await
                .map_err(|e| e.with_database(&database.name))?
        }
    };
    if args.json {
        document.push('\n');
        Ok(document)
    } else {
        Ok(mcp_bridge::render::summary::summary(&Snapshot::from_json(
            &document,
        )?))
    }
}

async fn context(args: ContextArgs) -> Result<String, BridgeError> {
    let settings = load_settings(&args.config)?;
    let model = with_model(args.with_model, &settings, "context --with-model")?;
    let loaded = mcp_bridge::eval::offline::load(&settings, None).await?;
    let estate = mcp_bridge::eval::offline::Estate::new(&loaded, &settings);
    let report = match &model {
        Some(model) => {
            estate
                .context_with_model(&args.question, args.db.as_deref(), &settings, model)
                .await?
        }
        None => estate.context(&args.question, args.db.as_deref(), &settings)?,
    };
    if args.json {
        serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| BridgeError::Internal(format!("cannot encode the context: {e}")))
    } else {
        let mut text = if args.explain {
            report.explanation()
        } else {
            String::new()
        };
        text.push_str(&report.context);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

async fn eval(args: EvalArgs) -> Result<String, BridgeError> {
    let text = std::fs::read_to_string(&args.cases)
        .map_err(|e| BridgeError::Config(format!("cannot read {}: {e}", args.cases.display())))?;
    let cases = mcp_bridge::eval::cases::parse_cases_file(&text)
        .map_err(|e| BridgeError::Config(format!("{}: {e}", args.cases.display())))?;
    let settings = load_settings(&args.config)?;
    let command = if args.pipeline {
        "eval --pipeline"
    } else {
        "eval --with-model"
    };
    let model = with_model(args.with_model || args.pipeline, &settings, command)?;
    // the pipeline run's flags are checked before any work
    let prices = if args.pipeline {
        let defaults = mcp_bridge::eval::model::Prices::GPT_5_MINI;
        if args.eval_rows > settings.pipeline.max_row_limit {
            return Err(BridgeError::Config(format!(
                "--eval-rows {} is above pipeline.max_row_limit ({}): lower it, or raise the \
                 setting",
                args.eval_rows, settings.pipeline.max_row_limit
            )));
        }
        Some(mcp_bridge::eval::model::Prices {
            input_per_million: price(
                args.price_input,
                defaults.input_per_million,
                "--price-input",
            )?,
            output_per_million: price(
                args.price_output,
                defaults.output_per_million,
                "--price-output",
            )?,
        })
    } else {
        None
    };
    let loaded = mcp_bridge::eval::offline::load(&settings, None).await?;
    let estate = mcp_bridge::eval::offline::Estate::new(&loaded, &settings);
    let report = mcp_bridge::eval::run_context(
        &cases,
        &estate,
        &settings,
        args.db.as_deref(),
        &args.out,
        model.as_ref().map(|m| m as &dyn mcp_bridge::llm::ChatModel),
    )
    .await?;
    let mut text = format!(
        "{}\nwritten: {} and {}\n",
        report.markdown(),
        args.out.join("report.json").display(),
        args.out.join("summary.md").display()
    );
    if let Some(prices) = prices {
        let bridge = mcp_bridge::bridge::Bridge::start(settings.clone()).await?;
        let runner = mcp_bridge::eval::model::Runner {
            bridge: &bridge,
            row_limit: args.eval_rows,
            prices,
        };
        let report = mcp_bridge::eval::model::run_model(
            &cases,
            &runner,
            args.db.as_deref(),
            &args.out,
            args.jobs as usize,
        )
        .await?;
        text.push_str(&format!(
            "\n{}\nwritten: {} and {}\n",
            report.markdown(),
            args.out.join("model_report.json").display(),
            args.out.join("model_summary.md").display()
        ));
    }
    Ok(text)
}

/// A price per million tokens: given (finite, not negative) or the default.
fn price(given: Option<f64>, default: f64, flag: &str) -> Result<f64, BridgeError> {
    match given {
        None => Ok(default),
        Some(p) if p.is_finite() && p >= 0.0 => Ok(p),
        Some(p) => Err(BridgeError::Config(format!(
            "{flag} must be a price in USD per million tokens, 0 or more (got {p})"
        ))),
    }
}

/// The configured model for `COMMAND` (`context --with-model`, `eval --pipeline`...), or why
/// there is none.
fn with_model(
    wanted: bool,
    settings: &Settings,
    command: &str,
) -> Result<Option<mcp_bridge::llm::openai::OpenAiModel>, BridgeError> {
    if !wanted {
        return Ok(None);
    }
    if settings.model.api_key.is_none() {
        return Err(BridgeError::Config(format!(
            "{command} needs a model: set OPENAI_API_KEY (or model.api_key in the \
             configuration file; model.base_url for any OpenAI-compatible endpoint), or run \
             without it for the offline figures"
        )));
    }
    mcp_bridge::llm::openai::OpenAiModel::new(&settings.model)
        .map(Some)
        .map_err(|e| BridgeError::Config(e.to_string()))
}

/// Writes the result to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> Result<(), BridgeError> {
    // everything the command line prints passes the one redaction path
    let text = mcp_bridge::redact::redact(text);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(BridgeError::Internal(format!(
            "could not write to stdout: {e}"
        ))),
    }
}
