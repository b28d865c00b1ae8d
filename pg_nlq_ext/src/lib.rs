//! pg_nlq: the in-database half of natural-language querying.
//!
//! The extension uses PostgreSQL's own catalog, parser and executor; it never touches the
//! network. One module per concern:
//! - [`snapshot`]: `nlq_schema_snapshot()` and `nlq_schema_fingerprint()`;
//! - [`stats`]: per-column statistics read from `pg_statistic` under the caller's privileges;
//! - [`validate`] (with [`walker`] and [`catalog`]): `nlq_validate()`, the checks on the
//!   parsed, analysed and planned query;
//! - [`run`]: `nlq_run()`, executing the checked plan in the [`sandbox`] (always rolled back,
//!   read-only, timed out) under the executor permission [`hooks`];
//! - [`policy`]: the DBA's access, function and cost policy, plain Rust;
//! - [`policy_check`]: fail closed when the stored policy is not the one in force, and
//!   `nlq_policy_check()`;
//! - [`gucs`]: the `pg_nlq.*` settings; [`error`]: errors and their SQLSTATEs;
//! - [`jsonb`]: jsonb values passed to and from PostgreSQL without a detour through text.

use pgrx::prelude::*;

mod bound;
mod call_hook;
pub mod catalog;
mod codes;
mod costs;
pub mod derived;
mod encoding;
pub mod error;
pub mod gucs;
pub mod hooks;
pub mod jsonb;
pub mod policy;
mod policy_check;
pub mod reads;
pub mod run;
pub mod sandbox;
pub mod snapshot;
pub mod stats;
mod tests;
pub mod validate;
pub mod walker;

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
