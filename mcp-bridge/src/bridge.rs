//! The bridge as its callers see it: the operations the MCP tools and the command line expose,
//! over the [`Registry`] of databases and the model. Answering a question is
//! [`crate::pipeline`]'s; everything else here is a short path to one pg_nlq call.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::answer::{Answer, ErrorCode, QueryRequest, RunResult, ToolError, Validation};
use crate::error::BridgeError;
use crate::llm::openai::OpenAiModel;
use crate::llm::ChatModel;
use crate::registry::{DatabaseInfo, Registry};
use crate::settings::Settings;

/// Longest `sql` a tool takes.
const MAX_SQL_BYTES: usize = 1_000_000;

/// The running bridge.
pub struct Bridge {
    settings: Settings,
    registry: Arc<Registry>,
    model: Option<Arc<dyn ChatModel>>,
}

impl Bridge {
    /// Discovers the databases, loads their snapshots (see [`Registry::start`]) and sets up
    /// the model when an API key is configured.
    pub async fn start(settings: Settings) -> Result<Arc<Bridge>, BridgeError> {
        let model: Option<Arc<dyn ChatModel>> = match settings.model.api_key {
            Some(_) => Some(Arc::new(
                OpenAiModel::new(&settings.model)
                    .map_err(|e| BridgeError::Config(e.to_string()))?,
            )),
            None => None,
        };
        let registry = Registry::start(&settings).await?;
        Ok(Arc::new(Bridge {
            settings,
            registry,
            model,
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether a model is configured (an API key); without one, `query` needs `model`.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The databases and their state, including servers not yet reached.
    pub async fn list_databases(&self) -> Vec<DatabaseInfo> {
        self.registry.list().await
    }

    /// Compact schema text; `filter` keeps relations whose name, columns or comments contain it
    /// (case-insensitive).
    pub async fn describe_schema(
        &self,
        database: Option<&str>,
        filter: Option<&str>,
    ) -> Result<String, ToolError> {
        let database = self.registry.lookup(database)?;
        let cached = self
            .registry
            .schema_of(&database)
            .await
            .map_err(|e| e.with_database(&database.name))?;
        Ok(crate::render::schema::describe(
            &cached.snapshot,
            filter.map(str::trim).filter(|f| !f.is_empty()),
        ))
    }

    fn check_sql(sql: &str) -> Result<(), ToolError> {
        if sql.trim().is_empty() {
            return Err(ToolError::invalid(
                "the SQL is empty: give one SELECT statement",
            ));
        }
        if sql.len() > MAX_SQL_BYTES {
            return Err(ToolError::invalid("the SQL is longer than 1,000,000 bytes"));
        }
        if sql.contains('\0') {
            return Err(ToolError::invalid("the SQL contains a NUL character"));
        }
        Ok(())
    }

    pub async fn validate_sql(
        &self,
        database: Option<&str>,
        sql: &str,
    ) -> Result<Validation, ToolError> {
        Self::check_sql(sql)?;
        let database = self.registry.lookup(database)?;
        database
            .validate(sql, &CancellationToken::new())
            .await
            .map_err(|e| e.with_database(&database.name))
    }

    pub async fn run_sql(
        &self,
        database: Option<&str>,
        sql: &str,
        row_limit: Option<u32>,
    ) -> Result<RunResult, ToolError> {
        self.run_sql_cancellable(database, sql, row_limit, &CancellationToken::new())
            .await
    }

    /// [`Self::run_sql`] until `cancel` is cancelled; the statement is then cancelled in the
    /// server too (an MCP client's `notifications/cancelled`).
    pub async fn run_sql_cancellable(
        &self,
        database: Option<&str>,
        sql: &str,
        row_limit: Option<u32>,
        cancel: &CancellationToken,
    ) -> Result<RunResult, ToolError> {
        Self::check_sql(sql)?;
        let limit = crate::pipeline::row_limit(&self.settings, row_limit)?;
        let database = self.registry.lookup(database)?;
        database
            .run(sql, limit, cancel)
            .await
            .map_err(|e| e.with_database(&database.name))
    }

    /// Reloads the snapshot of one database, or of all when `None`.
    pub async fn refresh_schema(
        &self,
        database: Option<&str>,
    ) -> Result<Vec<DatabaseInfo>, ToolError> {
        match database.map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => {
                let database = self.registry.lookup(Some(name))?;
                database
                    .load()
                    .await
                    .map_err(|e| e.with_database(&database.name))?;
                Ok(vec![database.info()])
            }
            None => {
                self.registry.retry_pending().await;
                let all = self.registry.all();
                futures::future::join_all(all.iter().map(|d| d.load())).await;
                Ok(self.registry.list().await)
            }
        }
    }

    /// The question pipeline. `model` is used when no model is configured (MCP sampling).
    pub async fn query(
        &self,
        request: QueryRequest,
        model: Option<Arc<dyn ChatModel>>,
    ) -> Result<Answer, ToolError> {
        self.query_cancellable(request, model, CancellationToken::new())
            .await
    }

    /// [`Self::query`], stopped as soon as `cancel` is cancelled (see [`crate::pipeline::ask`]).
    pub async fn query_cancellable(
        &self,
        request: QueryRequest,
        model: Option<Arc<dyn ChatModel>>,
        cancel: CancellationToken,
    ) -> Result<Answer, ToolError> {
        crate::pipeline::checked_question(&self.settings, &request.question)?;
        let Some(model) = self.model.clone().or(model) else {
            return Err(ToolError::new(
                ErrorCode::NoModel,
                "no language model is configured: set OPENAI_API_KEY (or model.api_key in the \
                 configuration file; model.base_url for any OpenAI-compatible endpoint), or use \
                 an MCP client that supports sampling. list_databases, describe_schema, \
                 validate_sql and run_sql work without a model.",
                false,
            ));
        };
        crate::pipeline::ask(
            &self.registry,
            &self.settings,
            model.as_ref(),
            request,
            &cancel,
        )
        .await
    }
}
