//! pg-nlq-bridge: the bridge between MCP clients and PostgreSQL databases with the pg_nlq
//! extension. The binary (`main.rs`) is only the command line; everything it does lives in
//! these modules, where it can be unit-tested. The map (design §1.4):
//!
//! - the journey of a question: [`pipeline`] (one file per stage), its prompts [`prompts`]
//!   (one file per task), [`return_mode`], [`linking`] (schema context and routing);
//! - the databases: [`registry`] (discovery, names, state, snapshot cache) over [`pgnlq`]
//!   (the one client of PostgreSQL and pg_nlq) and [`contract`] (pg_nlq's codes and what
//!   they mean); [`snapshot`] is the schema document's model;
//! - what callers see: [`bridge`] (the operations), [`mcp`] (the MCP server), [`answer`] and
//!   [`error`] (the answer and the one error vocabulary), [`render`] (schema text and summaries),
//!   [`text`], [`untrusted`] (fencing what came from a database or a model), [`redact`];
//! - set-up: [`settings`], [`config`], [`conninfo`], [`tls`], [`check`]; [`llm`] (the model client);
//!   [`eval`] (the evaluation harness).

pub mod answer;
pub mod bridge;
pub mod check;
pub mod code;
pub mod config;
pub mod conninfo;
pub mod contract;
pub mod error;
pub mod eval;
pub mod linking;
pub mod llm;
pub mod mcp;
pub mod pgnlq;
pub mod pipeline;
pub mod prompts;
pub mod redact;
pub mod registry;
pub mod render;
pub mod return_mode;
pub mod settings;
pub mod snapshot;
pub mod text;
pub mod tls;
pub mod untrusted;
