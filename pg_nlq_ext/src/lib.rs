//! pg_nlq: the in-database half of natural-language querying.
//!
//! The extension uses PostgreSQL's own catalog, parser and executor; it never touches the
//! network. One module per concern:
//! - [`snapshot`]: `nlq_schema_snapshot()` and `nlq_schema_fingerprint()`;
//! - [`stats`]: per-column statistics read from `pg_statistic` under the caller's privileges;
//! - [`gucs`]: the `pg_nlq.*` settings.

use pgrx::prelude::*;

pub mod error;
pub mod gucs;
pub mod snapshot;
pub mod stats;

::pgrx::pg_module_magic!();

#[allow(non_snake_case)]
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
}

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
