//! pg-nlq-bridge: the bridge between MCP clients and PostgreSQL databases with the pg_nlq
//! extension. The binary (`main.rs`) is only the command line; everything it does lives in
//! these modules, where it can be unit-tested.

pub mod answer;
pub mod bridge;
pub mod catalog;
pub mod check;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod eval;
pub mod linking;
pub mod llm;
pub mod mcp;
pub mod prompts;
pub mod redact;
pub mod settings;
pub mod tls;
pub mod untrusted;
