//! pg-nlq-bridge: the bridge between MCP clients and PostgreSQL databases with the pg_nlq
//! extension. The binary (`main.rs`) is only the command line; everything it does lives in
//! these modules, where it can be unit-tested.

pub mod catalog;
pub mod config;
pub mod error;
