//! The `pg_nlq.*` settings. Registered in `_PG_init`; the prefix is reserved so a misspelt
//! `pg_nlq.` setting is refused when typed in a session where pg_nlq is loaded. A misspelt or
//! invalid setting that arrives another way (stored by `ALTER ROLE/DATABASE ... SET` in a
//! session where pg_nlq was not loaded, or from a configuration file) is only warned about by
//! PostgreSQL and dropped; [`crate::policy_check`] then makes every pg_nlq function fail with
//! POLICY_ERROR until it is fixed.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::{pg_guard, pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};

use crate::patterns;

/// Most common values kept per column in the snapshot's statistics.
pub static STATS_COMMON_VALUES: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Longest most-common value kept, in characters; longer values are left out.
pub static STATS_VALUE_LENGTH: GucSetting<i32> = GucSetting::<i32>::new(64);

// Policy and limits of nlq_validate() / nlq_run(). All SUSET: a DBA sets them in
// postgresql.conf or with ALTER ROLE / ALTER DATABASE ... SET; the role they restrict cannot
// change them in its own session.

/// Relations no query may read, even through a view (patterns, see `policy`).
pub static DENIED_RELATIONS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// When set, the only relations a query may read with the caller's own privileges.
pub static ALLOWED_RELATIONS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
/// Columns no query may read, in any clause, even through a view or a whole-row reference.
pub static DENIED_COLUMNS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// User and extension functions (and volatile built-ins) a query may call.
pub static ALLOWED_FUNCTIONS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
/// Functions refused in addition to the built-in deny list.
pub static DENIED_FUNCTIONS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
/// Highest planner total cost accepted; 0 = no limit.
pub static MAX_COST: GucSetting<f64> = GucSetting::<f64>::new(0.0);
/// Highest planner row estimate accepted; 0 = no limit.
pub static MAX_ROWS_ESTIMATE: GucSetting<f64> = GucSetting::<f64>::new(0.0);
/// Time limit of one nlq_validate() / nlq_run() call, in milliseconds; 0 = none of its own.
pub static STATEMENT_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Longest wait for a lock inside nlq_run(), in milliseconds; 0 = the caller's lock_timeout.
pub static LOCK_TIMEOUT: GucSetting<i32> = GucSetting::<i32>::new(1_000);
/// Most rows nlq_run() returns, whatever row_limit asks for.
pub static MAX_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);
/// Most bytes of row data nlq_run() returns (JSON text of the rows).
pub static MAX_RESULT_BYTES: GucSetting<i32> = GucSetting::<i32>::new(10 * 1024 * 1024);

/// What a `pg_nlq.*` setting holds: enough to check a stored value without applying it
/// (see [`crate::policy_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pattern list of `min..=max` dotted parts naming objects of `target`.
    Patterns {
        min: usize,
        max: usize,
        target: Target,
    },
    /// An integer, with its unit flags (`GUC_UNIT_*`).
    Int {
        flags: i32,
    },
    Real,
}

/// What a pattern list names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Relations,
    Columns,
    Functions,
}

/// One `pg_nlq.*` setting.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub kind: Kind,
}

const RELATIONS: Kind = Kind::Patterns {
    min: 1,
    max: 2,
    target: Target::Relations,
};
const FUNCTIONS: Kind = Kind::Patterns {
    min: 1,
    max: 2,
    target: Target::Functions,
};
const PLAIN_INT: Kind = Kind::Int { flags: 0 };
const MS: Kind = Kind::Int {
    flags: pg_sys::GUC_UNIT_MS as i32,
};

/// Every setting `init` defines.
pub static SETTINGS: &[Setting] = &[
    Setting {
        name: "pg_nlq.denied_relations",
        kind: RELATIONS,
    },
    Setting {
        name: "pg_nlq.allowed_relations",
        kind: RELATIONS,
    },
    Setting {
        name: "pg_nlq.denied_columns",
        kind: Kind::Patterns {
            min: 2,
            max: 3,
            target: Target::Columns,
        },
    },
    Setting {
        name: "pg_nlq.allowed_functions",
        kind: FUNCTIONS,
    },
    Setting {
        name: "pg_nlq.denied_functions",
        kind: FUNCTIONS,
    },
    Setting {
        name: "pg_nlq.max_cost",
        kind: Kind::Real,
    },
    Setting {
        name: "pg_nlq.max_rows_estimate",
        kind: Kind::Real,
    },
    Setting {
        name: "pg_nlq.statement_timeout",
        kind: MS,
    },
    Setting {
        name: "pg_nlq.lock_timeout",
        kind: MS,
    },
    Setting {
        name: "pg_nlq.max_rows",
        kind: PLAIN_INT,
    },
    Setting {
        name: "pg_nlq.max_result_bytes",
        kind: Kind::Int {
            flags: pg_sys::GUC_UNIT_BYTE as i32,
        },
    },
    Setting {
        name: "pg_nlq.stats_common_values",
        kind: PLAIN_INT,
    },
    Setting {
        name: "pg_nlq.stats_value_length",
        kind: PLAIN_INT,
    },
];

/// The setting called `name` (compared as PostgreSQL compares setting names: ASCII case
/// ignored).
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// The current value of a string setting ("" when unset).
pub fn string_value(setting: &GucSetting<Option<CString>>) -> String {
    setting
        .get()
        .map(|v| crate::encoding::from_server(v.to_bytes()))
        .unwrap_or_default()
}

/// A check hook refusing a pattern list that does not parse, with the reason as DETAIL, when
/// someone is typing it (`SET`, or the check `ALTER ROLE/DATABASE ... SET` makes). A bad value
/// that arrives from a configuration file or a stored role or database setting is let through
/// instead: refusing it would silently fall back to the empty default, i.e. no restriction.
/// Kept, it makes every nlq_validate()/nlq_run() call fail with POLICY_ERROR until fixed.
unsafe fn check_patterns(
    newval: *mut *mut c_char,
    source: pg_sys::GucSource::Type,
    min: usize,
    max: usize,
) -> bool {
    let interactive = matches!(
        source,
        pg_sys::GucSource::PGC_S_SESSION
            | pg_sys::GucSource::PGC_S_TEST
            | pg_sys::GucSource::PGC_S_CLIENT
            | pg_sys::GucSource::PGC_S_INTERACTIVE
    );
    if !interactive {
        return true;
    }
    // SAFETY: PostgreSQL passes a valid pointer to the candidate value (possibly NULL).
    let value = unsafe {
        if newval.is_null() || (*newval).is_null() {
            return true;
        }
        CStr::from_ptr(*newval).to_string_lossy().into_owned()
    };
    match patterns::parse_patterns(&value, min, max) {
        Ok(_) => true,
        Err(reason) => {
            let reason = CString::new(reason.replace('%', "%%")).unwrap_or_default();
            // SAFETY: GUC_check_errdetail_string takes a palloc'd string, as GUC_check_errdetail
            // does.
            unsafe { pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(reason.as_ptr()) };
            false
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_relation_patterns(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    unsafe { check_patterns(newval, source, 1, 2) }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_column_patterns(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    unsafe { check_patterns(newval, source, 2, 3) }
}

type StringCheck = unsafe extern "C-unwind" fn(
    *mut *mut c_char,
    *mut *mut c_void,
    pg_sys::GucSource::Type,
) -> bool;

fn define_pattern_list(
    name: &'static CStr,
    short: &'static CStr,
    long: &'static CStr,
    setting: &'static GucSetting<Option<CString>>,
    check: StringCheck,
) {
    // SAFETY: the check hook is #[pg_guard]ed and only parses the candidate value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            name,
            short,
            long,
            setting,
            GucContext::Suset,
            GucFlags::default(),
            Some(check),
            None,
            None,
        )
    };
}

fn define_policy_gucs() {
    define_pattern_list(
        c"pg_nlq.denied_relations",
        c"Relations nlq_validate() and nlq_run() refuse to read, even through a view.",
        c"Comma-separated [schema.]relation patterns; * matches any characters (hr.*).",
        &DENIED_RELATIONS,
        check_relation_patterns,
    );
    define_pattern_list(
        c"pg_nlq.allowed_relations",
        c"When set, the only relations nlq_validate() and nlq_run() let a query read.",
        c"Comma-separated [schema.]relation patterns. Applies to relations read with the \
          caller's own privileges; tables behind an allowed view owned by another role are \
          the view's business. Empty: every relation not denied.",
        &ALLOWED_RELATIONS,
        check_relation_patterns,
    );
    define_pattern_list(
        c"pg_nlq.denied_columns",
        c"Columns nlq_validate() and nlq_run() refuse to read, in any clause.",
        c"Comma-separated [schema.]table.column patterns (*.ssn). A whole-row reference or * \
          over such a column is refused too.",
        &DENIED_COLUMNS,
        check_column_patterns,
    );
    define_pattern_list(
        c"pg_nlq.allowed_functions",
        c"User, extension and volatile built-in functions a query may call.",
        c"Comma-separated [schema.]function patterns, every overload. The built-in deny list \
          and pg_nlq.denied_functions still apply.",
        &ALLOWED_FUNCTIONS,
        check_relation_patterns,
    );
    define_pattern_list(
        c"pg_nlq.denied_functions",
        c"Functions refused in addition to pg_nlq's built-in deny list.",
        c"Comma-separated [schema.]function patterns, every overload.",
        &DENIED_FUNCTIONS,
        check_relation_patterns,
    );
    GucRegistry::define_float_guc(
        c"pg_nlq.max_cost",
        c"Highest planner total cost a query may have; 0 means no limit.",
        c"Checked by nlq_validate() and nlq_run() on the plan, without executing it.",
        &MAX_COST,
        0.0,
        f64::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"pg_nlq.max_rows_estimate",
        c"Highest planner row estimate a query may have; 0 means no limit.",
        c"Checked by nlq_validate() and nlq_run() on the plan, without executing it.",
        &MAX_ROWS_ESTIMATE,
        0.0,
        f64::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_nlq.statement_timeout",
        c"Time limit of one nlq_validate() or nlq_run() call; 0 means none of its own.",
        c"Armed by pg_nlq itself around parsing, planning and execution; the caller's \
          statement_timeout still applies when it ends sooner.",
        &STATEMENT_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_nlq.lock_timeout",
        c"Longest wait for a lock inside nlq_validate() or nlq_run(); 0 keeps the caller's.",
        c"",
        &LOCK_TIMEOUT,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"pg_nlq.max_rows",
        c"Most rows nlq_run() returns, whatever row_limit asks for.",
        c"The executor stops at the limit; the result says it was truncated.",
        &MAX_ROWS,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"pg_nlq.max_result_bytes",
        c"Most bytes of row data nlq_run() returns.",
        c"Measured on the JSON text of the rows; the executor stops at the limit and the \
          result says it was truncated.",
        &MAX_RESULT_BYTES,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_BYTE,
    );
}

pub fn init() {
    // what was set under pg_nlq.* before the library was loaded, to tell afterwards what
    // PostgreSQL dropped or refused (with a mere WARNING) when the real settings were defined
    let before = crate::policy_check::placeholders();
    define_policy_gucs();
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
    crate::policy_check::note_load(before);
}
