//! The runtime backstop of the access policy: an `ExecutorCheckPerms_hook` (the hook pgaudit
//! uses) that sees the range table of every plan the executor starts — the query's own, and
//! those of every SQL or PL function it calls — and refuses a relation or column the policy
//! denies. It acts only while `nlq_validate()` / `nlq_run()` is inside its sandbox (see
//! [`crate::sandbox`]); otherwise it just chains to the previous hook.
//!
//! Every relation entry is checked, the inheritance children and partitions the planner adds
//! (entries without permission bits) included, with [`crate::derived::Checker`]: the rules of
//! their ancestors apply to them by column name. An entry's columns are its `selectedCols`,
//! which through a view name every column the view's definition names; for the entries of the
//! query the validator checked, it tells the hook which columns each really reads
//! ([`vet`]), matched on relation, `checkAsUser` and the exact `selectedCols` — only in the
//! range tables of the plans made from the very `Query` trees it checked, which a
//! `planner_hook` recognises by address. Every other plan (the bodies of functions the query
//! calls, SQL run at plan time) stays on `selectedCols`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::catalog;
use crate::codes::{Code, Facts, Restricted};
use crate::derived::Checker;
use crate::error::NlqError;
use crate::policy::AccessPolicy;
use crate::reads::Entry;

/// Range table entries the validator checked, with the columns each really reads.
type Vetted = Vec<(Entry, BTreeSet<i16>)>;

struct Frame {
    policy: Rc<AccessPolicy>,
    vetted: Vetted,
    /// Addresses of the `Query` trees the validator checked, and of their plans' range tables.
    queries: Vec<usize>,
    range_tables: Vec<usize>,
}

static mut PREVIOUS_HOOK: pg_sys::ExecutorCheckPerms_hook_type = None;
static mut PREVIOUS_PLANNER: pg_sys::planner_hook_type = None;

thread_local! {
    /// The policies of the nlq_* calls in progress, innermost last.
    static ACTIVE: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The validator's own privilege check on the analysed query is running: the access policy
    /// was applied to that tree already, precisely, so the hook only chains.
    static PRIVILEGES_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` (the validator's `ExecCheckRTPerms` on the analysed, not yet planned, query) with
/// the hook passing the access policy over: privileges only, previous hooks still called.
pub fn privileges_only<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            PRIVILEGES_ONLY.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PRIVILEGES_ONLY.with(|p| p.replace(true)));
    f()
}

/// Install the hook, chaining whatever was installed before. Called once from `_PG_init`.
pub fn init() {
    // SAFETY: _PG_init runs once per backend, before any query can use the hook.
    unsafe {
        PREVIOUS_HOOK = pg_sys::ExecutorCheckPerms_hook;
        pg_sys::ExecutorCheckPerms_hook = Some(check_perms);
        PREVIOUS_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(plan);
    }
}

/// Enforce `policy` on every plan the executor starts until the returned guard is dropped.
pub fn activate(policy: Rc<AccessPolicy>) -> ActiveGuard {
    ACTIVE.with(|a| {
        a.borrow_mut().push(Frame {
            policy,
            vetted: Vec::new(),
            queries: Vec::new(),
            range_tables: Vec::new(),
        })
    });
    ActiveGuard(())
}

/// Tell the innermost call's hook which columns the validator found each entry of the query
/// really reads, for the plans made from `queries` (the addresses of the checked trees).
pub fn vet(entries: Vetted, queries: &[usize]) {
    ACTIVE.with(|a| {
        if let Some(frame) = a.borrow_mut().last_mut() {
            frame.vetted.extend(entries);
            frame.queries.extend_from_slice(queries);
        }
    });
}

mod planner {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        /// Called unguarded on purpose, see [`super::plan`].
        pub fn standard_planner(
            parse: *mut pg_sys::Query,
            query_string: *const std::ffi::c_char,
            cursor_options: std::ffi::c_int,
            bound_params: pg_sys::ParamListInfo,
        ) -> *mut pg_sys::PlannedStmt;
    }
}

/// The planner, chained: remembers the range table of a plan made from a checked query.
///
/// Not a `#[pg_guard]` function, and the planner is called unguarded: an ERROR raised while
/// planning (a constant folded to a division by zero) must reach the caller's handler as the
/// ERROR it is, not come back as a Rust panic. Nothing here needs dropping while the planner
/// runs, and nothing after it can panic.
unsafe extern "C-unwind" fn plan(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: the previous hook, if any, has this signature; so has standard_planner.
    let planned = unsafe {
        match PREVIOUS_PLANNER {
            Some(previous) => previous(parse, query_string, cursor_options, bound_params),
            None => planner::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    };
    if !planned.is_null() {
        let _ = ACTIVE.try_with(|a| {
            if let Ok(mut frames) = a.try_borrow_mut() {
                if let Some(frame) = frames.last_mut() {
                    if frame.queries.contains(&(parse as usize)) {
                        // SAFETY: a plan just made.
                        frame
                            .range_tables
                            .push(unsafe { (*planned).rtable } as usize);
                    }
                }
            }
        });
    }
    planned
}

pub struct ActiveGuard(());

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

/// The innermost call's policy, and what the validator vetted if `range_table` belongs to a
/// plan of the query it checked.
fn current(range_table: *mut pg_sys::List) -> Option<(Rc<AccessPolicy>, Vetted)> {
    ACTIVE.with(|a| {
        a.borrow().last().map(|f| {
            let own = f.range_tables.contains(&(range_table as usize));
            (
                f.policy.clone(),
                if own { f.vetted.clone() } else { Vec::new() },
            )
        })
    })
}

#[pg_guard]
unsafe extern "C-unwind" fn check_perms(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    let mut ok = true;
    let policy = if PRIVILEGES_ONLY.with(|p| p.get()) {
        None
    } else {
        current(range_table)
    };
    if let Some((policy, vetted)) = policy.filter(|(p, _)| !p.is_empty()) {
        // SAFETY: the executor passes a valid range table.
        if let Some((restricted, reason)) = unsafe { refusal(&policy, &vetted, range_table) } {
            if ereport {
                let code = match restricted {
                    Restricted::Column(_) => Code::ForbiddenColumn,
                    _ => Code::ForbiddenRelation,
                };
                NlqError::Refused {
                    code,
                    message: format!("{reason} (checked when the executor opened it)"),
                    sqlstate: PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    detail: Some(Facts::restricted(restricted).to_json_text()),
                    hint: None,
                }
                .raise();
            }
            ok = false;
        }
    }
    // SAFETY: the previous hook, if any, was installed by another module with this signature.
    unsafe {
        if ok {
            if let Some(previous) = PREVIOUS_HOOK {
                ok = previous(range_table, ereport);
            }
        }
    }
    ok
}

/// The first relation or column of `range_table` the policy refuses, and why.
///
/// # Safety
/// `range_table` must be a valid list of `RangeTblEntry`.
unsafe fn refusal(
    policy: &AccessPolicy,
    vetted: &Vetted,
    range_table: *mut pg_sys::List,
) -> Option<(Restricted, String)> {
    // SAFETY: guaranteed by the caller.
    let rtes = unsafe { PgList::<pg_sys::RangeTblEntry>::from_pg(range_table) };
    let mut checker = Checker::new(policy);
    for rte in rtes.iter_ptr() {
        // SAFETY: every element of a range table is a RangeTblEntry.
        let rte = unsafe { &*rte };
        if rte.rtekind != pg_sys::RTEKind::RTE_RELATION {
            continue;
        }
        // Entries without permission bits are the children the planner added for an
        // inheritance parent (or a view's NEW placeholder): never read directly.
        let child = rte.requiredPerms == 0;
        let direct = !child && rte.checkAsUser == pg_sys::InvalidOid;
        // SAFETY: selectedCols of a valid range table entry.
        let selected = unsafe { catalog::attnums(rte.selectedCols) };
        let columns = really_read(&mut checker, vetted, rte, child, &selected)
            .unwrap_or_else(|| selected.iter().copied().collect());
        // children are entries of their own here, so each is checked as read alone
        if let Some((restricted, reason)) = checker.refusal(rte.relid, direct, false, &columns) {
            return Some((restricted, reason));
        }
    }
    None
}

/// The columns the validator found `rte` really reads, if it checked it: the entry itself, or
/// for a child the planner added, its ancestor's entry (columns mapped by name).
fn really_read(
    checker: &mut Checker<'_>,
    vetted: &Vetted,
    rte: &pg_sys::RangeTblEntry,
    child: bool,
    selected: &[i16],
) -> Option<BTreeSet<i16>> {
    let user = rte.checkAsUser.to_u32();
    if !child {
        return vetted
            .iter()
            .find(|(e, _)| {
                e.relid == rte.relid.to_u32() && e.check_as_user == user && e.selected == selected
            })
            .map(|(_, read)| read.clone());
    }
    let ancestors = checker.ancestors(rte.relid);
    let names = |relid: pg_sys::Oid, attnums: &[i16]| -> BTreeSet<String> {
        let set: BTreeSet<i16> = attnums.iter().copied().collect();
        let mut out = BTreeSet::new();
        for a in set {
            if a == 0 {
                out.extend(catalog::all_columns(relid));
            } else if let Some(n) = catalog::attribute_name(relid, a) {
                out.insert(n);
            }
        }
        out
    };
    let mine = names(rte.relid, selected);
    for (entry, read) in vetted {
        let parent: pg_sys::Oid = entry.relid.into();
        if entry.check_as_user != user || !ancestors.contains(&parent) {
            continue;
        }
        if !mine.is_subset(&names(parent, &entry.selected)) {
            continue;
        }
        let wanted = names(parent, &read.iter().copied().collect::<Vec<_>>());
        let mut out = BTreeSet::new();
        for &a in selected {
            if a < 0 && read.contains(&a) {
                out.insert(a);
            } else if a > 0 {
                if let Some(n) = catalog::attribute_name(rte.relid, a) {
                    if wanted.contains(&n) {
                        out.insert(a);
                    }
                }
            }
        }
        return Some(out);
    }
    None
}
