//! The runtime backstop of the access policy: an `ExecutorCheckPerms_hook` (the hook pgaudit
//! uses) that sees the range table of every plan the executor starts — the query's own, and
//! those of every SQL or PL function it calls — and refuses a relation or column the policy
//! denies. It acts only while `nlq_validate()` / `nlq_run()` is inside its sandbox (see
//! [`crate::sandbox`]); otherwise it just chains to the previous hook.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::catalog;
use crate::codes::Code;
use crate::error::NlqError;
use crate::policy::AccessPolicy;

static mut PREVIOUS_HOOK: pg_sys::ExecutorCheckPerms_hook_type = None;

thread_local! {
    /// The policies of the nlq_* calls in progress, innermost last.
    static ACTIVE: RefCell<Vec<Rc<AccessPolicy>>> = const { RefCell::new(Vec::new()) };
}

/// Install the hook, chaining whatever was installed before. Called once from `_PG_init`.
pub fn init() {
    // SAFETY: _PG_init runs once per backend, before any query can use the hook.
    unsafe {
        PREVIOUS_HOOK = pg_sys::ExecutorCheckPerms_hook;
        pg_sys::ExecutorCheckPerms_hook = Some(check_perms);
    }
}

/// Enforce `policy` on every plan the executor starts until the returned guard is dropped.
pub fn activate(policy: Rc<AccessPolicy>) -> ActiveGuard {
    ACTIVE.with(|a| a.borrow_mut().push(policy));
    ActiveGuard(())
}

pub struct ActiveGuard(());

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }
}

fn current() -> Option<Rc<AccessPolicy>> {
    ACTIVE.with(|a| a.borrow().last().cloned())
}

#[pg_guard]
unsafe extern "C-unwind" fn check_perms(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    let mut ok = true;
    if let Some(policy) = current().filter(|p| !p.is_empty()) {
        // SAFETY: the executor passes a valid range table.
        if let Some(reason) = unsafe { refusal(&policy, range_table) } {
            if ereport {
                NlqError::Refused {
                    code: reason.0,
                    message: format!("{} (checked when the executor opened it)", reason.1),
                    sqlstate: PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    detail: None,
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

/// The first relation or column of `range_table` the policy refuses, with the code to report.
///
/// # Safety
/// `range_table` must be a valid list of `RangeTblEntry`.
unsafe fn refusal(policy: &AccessPolicy, range_table: *mut pg_sys::List) -> Option<(Code, String)> {
    // SAFETY: guaranteed by the caller.
    let rtes = unsafe { PgList::<pg_sys::RangeTblEntry>::from_pg(range_table) };
    for rte in rtes.iter_ptr() {
        // SAFETY: every element of a range table is a RangeTblEntry.
        let rte = unsafe { &*rte };
        // Entries without permission bits are inheritance children and the like, checked
        // through their parent.
        if rte.rtekind != pg_sys::RTEKind::RTE_RELATION || rte.requiredPerms == 0 {
            continue;
        }
        let direct = rte.checkAsUser == pg_sys::InvalidOid;
        let Some((schema, name)) = catalog::relation_name(rte.relid) else {
            continue;
        };
        if let Some(reason) = policy.relation_refusal(&schema, &name, direct) {
            return Some((Code::ForbiddenRelation, reason));
        }
        // SAFETY: selectedCols of a valid range table entry.
        for column in unsafe { catalog::selected_columns(rte.relid, rte.selectedCols) } {
            if let Some(reason) = policy.column_refusal(&schema, &name, &column) {
                return Some((Code::ForbiddenColumn, reason));
            }
        }
    }
    None
}
