//! pg_nlq: the in-database half of natural-language querying.
//!
//! The extension uses PostgreSQL's own catalog, parser and executor; it never touches the
//! network. One module per concern, each private to the crate (the SQL functions are
//! registered by pgrx wherever they are declared):
//! - [`snapshot`]: `nlq_schema_snapshot()` and `nlq_schema_fingerprint()`;
//! - [`stats`]: per-column statistics read from `pg_statistic` under the caller's privileges;
//! - [`validate`] (with [`walker`] and [`catalog`]): `nlq_validate()`, the checks on the
//!   parsed, analysed and planned query;
//! - [`run`]: `nlq_run()`, executing the checked plan in the [`sandbox`] (always rolled back,
//!   read-only, timed out) under the executor permission [`hooks`], its rows encoded by
//!   [`result`];
//! - [`policy`] (with [`patterns`]): the DBA's access, function and cost policy, plain Rust;
//! - [`policy_check`] (with [`guc_state`]): fail closed when the stored policy is not the one
//!   in force, and `nlq_policy_check()`;
//! - [`gucs`]: the `pg_nlq.*` settings; [`error`]: errors and their SQLSTATEs; [`codes`]: the
//!   codes, the facts and the report clients read;
//! - [`jsonb`]: jsonb values passed to and from PostgreSQL without a detour through text.

use pgrx::prelude::*;

mod bound;
mod call_hook;
mod catalog;
mod codes;
mod costs;
mod derived;
mod encoding;
mod error;
mod guc_state;
mod gucs;
mod hooks;
mod jsonb;
mod patterns;
mod policy;
mod policy_check;
mod reads;
mod result;
mod run;
mod sandbox;
mod snapshot;
mod stats;
mod tests;
mod validate;
mod walker;

::pgrx::pg_module_magic!();

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    hooks::init();
    call_hook::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
