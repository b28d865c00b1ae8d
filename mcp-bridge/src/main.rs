//! `pg-nlq-bridge`: the command line. Parses arguments, sets up logging to stderr, runs the
//! command and reports failure as one `error[CODE]: message` line and a non-zero exit code.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::EnvFilter;

use mcp_bridge::catalog::{self, Snapshot};
use mcp_bridge::config::DatabaseConfig;
use mcp_bridge::error::BridgeError;

/// Natural-language questions over PostgreSQL, through the pg_nlq extension.
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
    /// Fetch the database's schema snapshot (nlq_schema_snapshot()) and print a summary.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, Args)]
struct SnapshotArgs {
    /// libpq connection string ("host=... dbname=...") or postgres:// URL [default: the value
    /// of NLQ_DATABASE_URL]
    #[arg(long, value_name = "DSN")]
    database: Option<String>,
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
        Command::Snapshot(args) => snapshot(args).await,
    };
    match result.and_then(|text| print(&text)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", err.one_line());
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (stdout is for results), filtered by RUST_LOG, warnings and errors by default.
fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn snapshot(args: SnapshotArgs) -> Result<String, BridgeError> {
    let config = DatabaseConfig::from_flag_or_env(args.database)?;
    let client = catalog::connect(&config).await?;
    let schemas = (!args.schemas.is_empty()).then_some(args.schemas.as_slice());
    let include_stats = !args.no_stats;
    if args.json {
        let mut document = catalog::fetch_snapshot_json(&client, schemas, include_stats).await?;
        document.push('\n');
        Ok(document)
    } else {
        Ok(Snapshot::load(&client, schemas, include_stats)
            .await?
            .summary())
    }
}

/// Writes the result to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> Result<(), BridgeError> {
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
