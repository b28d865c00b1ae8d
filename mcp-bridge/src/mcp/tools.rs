//! The tools: their arguments (the input schemas), their output schemas, and the handlers
//! that call the bridge and turn what it returns into a result ([`super::results`]) with its
//! text ([`super::render`]).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::Deserialize;

use crate::answer::{Answer, QueryRequest, ReturnMode, RunResult, ToolError, Validation};

use super::results::{
    failure, output_schema, success, DatabaseList, SchemaDescription, ANSWER_UNTRUSTED,
    DATABASES_UNTRUSTED, RUN_UNTRUSTED, SCHEMA_UNTRUSTED, VALIDATION_UNTRUSTED,
};
use super::NlqServer;
use crate::render::answer::{
    self as render, answer_text, databases_text, run_text, validation_text,
};

/// Arguments of `query`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QueryArgs {
    /// The question, in natural language (any language).
    pub question: String,
    /// The database to ask, as list_databases names it; omit to let the bridge choose.
    #[serde(default)]
    pub database: Option<String>,
    /// What to return: "sql" (only the query, test-run on a few rows), "result" (the rows; the
    /// default) or "both".
    #[serde(default)]
    pub return_mode: Option<ReturnMode>,
    /// Most rows to return, at least 1; above the bridge's limit (pipeline.max_row_limit) the
    /// call fails with RESULT_TOO_LARGE. Omit for the configured default.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub row_limit: Option<u32>,
    /// In "sql" mode, whether to test-run the query on a few rows (default true).
    #[serde(default)]
    pub test_run: Option<bool>,
}

/// Arguments of `describe_schema`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DescribeArgs {
    /// The database; may be omitted when there is only one.
    #[serde(default)]
    pub database: Option<String>,
    /// Keep only relations whose schema-qualified name, comment, or a column's name or comment
    /// contains this text (case-insensitive).
    #[serde(default)]
    pub filter: Option<String>,
}

/// Arguments of `validate_sql`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ValidateArgs {
    /// One SQL statement to check (parsed, analysed and planned, never run).
    pub sql: String,
    /// The database; may be omitted when there is only one.
    #[serde(default)]
    pub database: Option<String>,
}

/// Arguments of `run_sql`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunArgs {
    /// One read-only query (SELECT or WITH ... SELECT); anything else is refused.
    pub sql: String,
    /// The database; may be omitted when there is only one.
    #[serde(default)]
    pub database: Option<String>,
    /// Most rows to return, at least 1; above the bridge's limit (pipeline.max_row_limit) the
    /// call fails with RESULT_TOO_LARGE. Omit for the configured default.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub row_limit: Option<u32>,
}

/// Arguments of `refresh_schema`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RefreshArgs {
    /// The database to reload; omit to reload all.
    #[serde(default)]
    pub database: Option<String>,
}

#[tool_router(vis = "pub(super)")]
impl NlqServer {
    /// Answer a natural-language question over a database: chooses the database (unless given),
    /// writes the SQL, validates it, runs it read-only and checks that the result answers the
    /// question. Returns the SQL, the rows (untrusted data), a confidence score and the attempts.
    #[tool(
        output_schema = output_schema::<Answer>(),
        annotations(
            title = "Ask a question",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn query(
        &self,
        Parameters(args): Parameters<QueryArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let model = self.sampling_model(&context);
        let asked = args.database.clone();
        let request = QueryRequest {
            question: args.question,
            database: args.database,
            return_mode: args.return_mode,
            row_limit: args.row_limit,
            test_run: args.test_run,
        };
        // `notifications/cancelled` for this request cancels `context.ct`
        match self
            .bridge
            .query_cancellable(request, model, context.ct.clone())
            .await
        {
            Ok(answer) => success(&answer, answer_text(&answer), &ANSWER_UNTRUSTED),
            Err(err) => failure(&concerning(err, asked)),
        }
    }

    /// List the databases the bridge can use, with their status (ready, loading, unavailable,
    /// extension_missing), description and size.
    #[tool(
        output_schema = output_schema::<DatabaseList>(),
        annotations(
            title = "List databases",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_databases(&self) -> CallToolResult {
        let databases = self.bridge.list_databases().await;
        let text = databases_text(&databases);
        success(&DatabaseList { databases }, text, &DATABASES_UNTRUSTED)
    }

    /// Describe a database's schema: schemas, tables, views and their columns with types, keys
    /// and comments, compactly. Comments and names are data from the database.
    #[tool(
        output_schema = output_schema::<SchemaDescription>(),
        annotations(
            title = "Describe schema",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn describe_schema(&self, Parameters(args): Parameters<DescribeArgs>) -> CallToolResult {
        let result = self
            .bridge
            .describe_schema(args.database.as_deref(), args.filter.as_deref())
            .await;
        match result {
            Ok(schema) => {
                let text = render::fence(&schema, render::SCHEMA_NOTICE);
                let description = SchemaDescription {
                    database: args.database,
                    filter: args.filter,
                    schema,
                };
                success(&description, text, &SCHEMA_UNTRUSTED)
            }
            Err(err) => failure(&concerning(err, args.database)),
        }
    }

    /// Check one SQL statement without running it: it must be a single read-only query that
    /// the policy allows. Returns ok, a code (OK, NOT_A_QUERY, SYNTAX_ERROR...), a message
    /// and what the query uses.
    #[tool(
        output_schema = output_schema::<Validation>(),
        annotations(
            title = "Validate SQL",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn validate_sql(&self, Parameters(args): Parameters<ValidateArgs>) -> CallToolResult {
        match self
            .bridge
            .validate_sql(args.database.as_deref(), &args.sql)
            .await
        {
            Ok(validation) => success(
                &validation,
                validation_text(&validation),
                &VALIDATION_UNTRUSTED,
            ),
            Err(err) => failure(&concerning(err, args.database)),
        }
    }

    /// Run one read-only query you wrote (SELECT or WITH ... SELECT) and return its rows
    /// (untrusted data). It runs in a read-only transaction with a time limit; anything else
    /// is refused.
    #[tool(
        output_schema = output_schema::<RunResult>(),
        annotations(
            title = "Run SQL",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn run_sql(
        &self,
        Parameters(args): Parameters<RunArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        // `notifications/cancelled` for this request cancels `context.ct`, and with it the
        // statement in PostgreSQL
        match self
            .bridge
            .run_sql_cancellable(
                args.database.as_deref(),
                &args.sql,
                args.row_limit,
                &context.ct,
            )
            .await
        {
            Ok(result) => {
                let mut text = String::from("SQL:\n");
                text.push_str(&render::sql_block(&args.sql));
                text.push('\n');
                text.push_str(&run_text(&result));
                success(&result, text, &RUN_UNTRUSTED)
            }
            Err(err) => failure(&concerning(err, args.database)),
        }
    }

    /// Reload the cached schema of a database (or of all) after its structure changed.
    #[tool(
        output_schema = output_schema::<DatabaseList>(),
        annotations(
            title = "Refresh schema",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn refresh_schema(&self, Parameters(args): Parameters<RefreshArgs>) -> CallToolResult {
        match self.bridge.refresh_schema(args.database.as_deref()).await {
            Ok(databases) => {
                let text = databases_text(&databases);
                success(&DatabaseList { databases }, text, &DATABASES_UNTRUSTED)
            }
            Err(err) => failure(&concerning(err, args.database)),
        }
    }
}

/// The error, naming the database the caller asked for unless the bridge already named one.
fn concerning(err: ToolError, asked: Option<String>) -> ToolError {
    match (&err.database, asked) {
        (None, Some(name)) => err.with_database(name),
        _ => err,
    }
}
