//! The `pg_nlq.*` settings. Registered in `_PG_init`; the prefix is reserved so a misspelt
//! `pg_nlq.` setting is reported instead of silently ignored.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// Most common values kept per column in the snapshot's statistics.
pub static STATS_COMMON_VALUES: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Longest most-common value kept, in characters; longer values are left out.
pub static STATS_VALUE_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(64);

pub fn init() {
    GucRegistry::define_int_guc(
        c"pg_nlq.stats_common_values",
        c"Most common values per column listed by nlq_schema_snapshot().",
        c"Only short text and enum values are listed, most frequent first. 0 lists none.",
        &STATS_COMMON_VALUES,
        0,
        100,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_nlq.stats_value_length",
        c"Longest most-common value, in characters, listed by nlq_schema_snapshot().",
        c"Longer values are left out of the list rather than cut.",
        &STATS_VALUE_LENGTH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: called once from _PG_init with a static C string.
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"pg_nlq".as_ptr()) };
}
