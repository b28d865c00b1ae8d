//! Per-column statistics for the snapshot, read from `pg_statistic` through the syscache.
//!
//! The `pg_stats` view computes `has_column_privilege` for every statistics row in the database
//! before any join, which costs seconds on an estate of a thousand tables. This function looks
//! up exactly the columns asked for and applies the same rules as `pg_stats` itself: the caller
//! must be able to SELECT the column (table-level SELECT covers all columns), and a table whose
//! row-level security is active for the caller shows no statistics at all. On top of that it
//! applies the caller's pg_nlq access policy ([`crate::derived::Checker`]): nothing for a
//! denied relation or column (a denied partition or child, a column denied on an ancestor or,
//! for a parent's inherited statistics, on a child, a generated column computed from a denied
//! one), so calling it directly shows no more than the snapshot does.

use std::collections::{BTreeSet, HashMap};
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::derived::Checker;
use crate::error::NlqError;

type StatsRow = (
    pg_sys::Oid,
    i16,
    f32,
    f32,
    Option<Vec<String>>,
    Option<Vec<f32>>,
);

/// Internal helper of `nlq_schema_snapshot()`: statistics of the given columns (parallel
/// arrays), skipping those the caller may not read. `with_values[i]` asks for the most common
/// values of column `i`, at most `max_values` of them, leaving out values longer than `max_len`
/// characters.
#[pg_extern(stable, strict, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // the row type must be spelt out for the SQL generator
fn _nlq_column_stats(
    relids: Vec<pg_sys::Oid>,
    attnums: Vec<i16>,
    inherited: Vec<bool>,
    with_values: Vec<bool>,
    max_values: i32,
    max_len: i32,
) -> TableIterator<
    'static,
    (
        name!(relid, pg_sys::Oid),
        name!(attnum, i16),
        name!(null_frac, f32),
        name!(n_distinct, f32),
        name!(common_values, Option<Vec<String>>),
        name!(common_freqs, Option<Vec<f32>>),
    ),
> {
    crate::error::entry(move || {
        if let Err(message) = crate::policy_check::ensure_sound() {
            NlqError::Refused {
                code: crate::codes::Code::PolicyError,
                message,
                sqlstate: crate::codes::Code::PolicyError.sqlstate(None),
                detail: None,
                hint: None,
            }
            .raise();
        }
        let n = relids.len();
        if attnums.len() != n || inherited.len() != n || with_values.len() != n {
            NlqError::ArrayLengthMismatch(&["relids", "attnums", "inherited", "with_values"])
                .raise();
        }
        let max_values = usize::try_from(max_values).unwrap_or(0);
        let max_len = usize::try_from(max_len).unwrap_or(0);
        // SAFETY: reads the current user id, always valid in a backend.
        let user = unsafe { pg_sys::GetUserId() };
        let mut access: HashMap<pg_sys::Oid, Access> = HashMap::new();
        let policy = crate::snapshot::access_policy();
        let mut checker = Checker::new(&policy);
        let mut rows = Vec::new();
        for i in 0..n {
            let (relid, attnum) = (relids[i], attnums[i]);
            let table = *access
                .entry(relid)
                .or_insert_with(|| table_access(relid, user));
            let readable = match table {
                Access::All => true,
                Access::None => false,
                Access::SomeColumns => column_readable(relid, attnum, user),
            };
            let readable = readable
                && checker
                    .refusal(relid, false, inherited[i], &BTreeSet::from([attnum]))
                    .is_none();
            if readable {
                if let Some(row) = column_stats(
                    relid,
                    attnum,
                    inherited[i],
                    with_values[i],
                    max_values,
                    max_len,
                ) {
                    rows.push(row);
                }
            }
        }
        TableIterator::new(rows)
    })
}

#[derive(Clone, Copy)]
enum Access {
    All,
    SomeColumns,
    None,
}

fn table_access(relid: pg_sys::Oid, user: pg_sys::Oid) -> Access {
    let mut missing = false;
    // SAFETY: plain catalog lookups; a dropped relation is reported through `missing`.
    unsafe {
        let rls = pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true);
        if rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
            return Access::None;
        }
        let acl = pg_sys::pg_class_aclcheck_ext(relid, user, pg_sys::ACL_SELECT, &mut missing);
        if missing {
            Access::None
        } else if acl == pg_sys::AclResult::ACLCHECK_OK {
            Access::All
        } else {
            Access::SomeColumns
        }
    }
}

fn column_readable(relid: pg_sys::Oid, attnum: i16, user: pg_sys::Oid) -> bool {
    let mut missing = false;
    // SAFETY: plain catalog lookup; a dropped column is reported through `missing`.
    let acl = unsafe {
        pg_sys::pg_attribute_aclcheck_ext(relid, attnum, user, pg_sys::ACL_SELECT, &mut missing)
    };
    !missing && acl == pg_sys::AclResult::ACLCHECK_OK
}

fn column_stats(
    relid: pg_sys::Oid,
    attnum: i16,
    inherited: bool,
    with_values: bool,
    max_values: usize,
    max_len: usize,
) -> Option<StatsRow> {
    // SAFETY: the syscache tuple is released before returning; the stats slot is freed after
    // its values are copied into Rust strings.
    unsafe {
        let tuple = pg_sys::SearchSysCache3(
            pg_sys::SysCacheIdentifier::STATRELATTINH as i32,
            pg_sys::Datum::from(relid),
            pg_sys::Datum::from(attnum),
            pg_sys::Datum::from(inherited),
        );
        if tuple.is_null() {
            return None;
        }
        let form = &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_statistic>(tuple);
        let (null_frac, n_distinct) = (form.stanullfrac, form.stadistinct);
        let (mut values, mut freqs) = (None, None);
        if with_values && max_values > 0 {
            let mut slot = pg_sys::AttStatsSlot::default();
            let found = pg_sys::get_attstatsslot(
                &mut slot,
                tuple,
                pg_sys::STATISTIC_KIND_MCV as i32,
                pg_sys::InvalidOid,
                (pg_sys::ATTSTATSSLOT_VALUES | pg_sys::ATTSTATSSLOT_NUMBERS) as i32,
            );
            if found {
                let (mut out_fn, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(slot.valuetype, &mut out_fn, &mut varlena);
                let count = usize::try_from(slot.nvalues).unwrap_or(0);
                let nnumbers = usize::try_from(slot.nnumbers).unwrap_or(0);
                let (mut vs, mut fs) = (Vec::new(), Vec::new());
                for k in 0..count {
                    if vs.len() >= max_values {
                        break;
                    }
                    let text = pg_sys::OidOutputFunctionCall(out_fn, *slot.values.add(k));
                    // returned as text built from these bytes: only values that read the same
                    // in the server encoding and in UTF-8 are listed
                    let Some(text) = crate::encoding::portable(CStr::from_ptr(text).to_bytes())
                    else {
                        continue;
                    };
                    if text.chars().count() <= max_len {
                        vs.push(text);
                        fs.push(if k < nnumbers {
                            *slot.numbers.add(k)
                        } else {
                            f32::NAN
                        });
                    }
                }
                pg_sys::free_attstatsslot(&mut slot);
                values = Some(vs);
                freqs = Some(fs);
            } else {
                values = Some(Vec::new());
                freqs = Some(Vec::new());
            }
        }
        pg_sys::ReleaseSysCache(tuple);
        Some((relid, attnum, null_frac, n_distinct, values, freqs))
    }
}
