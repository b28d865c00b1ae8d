//! The runtime backstop of the function policy: PostgreSQL's `needs_fmgr_hook` / `fmgr_hook`
//! (the hooks sepgsql uses) see every call of a function that is not built in, wherever it is
//! made — by the query, inside another function's body, by a type's input function checking a
//! domain (`'{1}'::d_chk[]` runs the domain's CHECK inside `array_in`, at parse time), by
//! `json_populate_record`, by a constant folded while planning.
//!
//! While an `nlq_validate()` / `nlq_run()` sandbox is active, such a call is refused
//! (`FORBIDDEN_FUNCTION`) unless the function policy allows the function, before it runs. The
//! validator refuses the calls it can see beforehand and reports them; this hook covers the
//! ones no tree shows. Built-in functions are never hooked by PostgreSQL (`fmgr_info` takes a
//! fast path for them), so a built-in called from inside an allowed function is the DBA's
//! choice (design §3.10). The output functions of the result's types, called by pg_nlq's own
//! `DestReceiver`, are exempt ([`exempt`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::catalog;
use crate::codes::{Code, Facts, Restricted};
use crate::error::NlqError;
use crate::policy::{FunctionInfo, FunctionPolicy};

static mut PREVIOUS_NEEDS: pg_sys::needs_fmgr_hook_type = None;
static mut PREVIOUS_HOOK: pg_sys::fmgr_hook_type = None;

thread_local! {
    /// The function policies of the nlq_* calls in progress, innermost last.
    static ACTIVE: RefCell<Vec<Rc<FunctionPolicy>>> = const { RefCell::new(Vec::new()) };
    /// Depth of pg_nlq's own calls that need no check (result output functions).
    static EXEMPT: Cell<u32> = const { Cell::new(0) };
    /// Functions refused by the hook during the current call, schema-qualified.
    static REFUSED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Install the hooks, chaining whatever was installed before. Called once from `_PG_init`.
pub fn init() {
    // SAFETY: _PG_init runs once per backend, before any query can use the hooks.
    unsafe {
        PREVIOUS_NEEDS = pg_sys::needs_fmgr_hook;
        PREVIOUS_HOOK = pg_sys::fmgr_hook;
        pg_sys::needs_fmgr_hook = Some(needs_hook);
        pg_sys::fmgr_hook = Some(call_hook);
    }
}

/// Enforce `policy` on every call until the returned guard is dropped.
pub fn activate(policy: Rc<FunctionPolicy>) -> ActiveGuard {
    ACTIVE.with(|a| a.borrow_mut().push(policy));
    REFUSED.with(|r| r.borrow_mut().clear());
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

/// Run `f` (pg_nlq's own call of a result type's output function) without the check.
pub fn exempt<R>(f: impl FnOnce() -> R) -> R {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            EXEMPT.with(|e| e.set(e.get().saturating_sub(1)));
        }
    }
    EXEMPT.with(|e| e.set(e.get() + 1));
    let _restore = Restore;
    f()
}

/// The functions the hook refused during the current call (for the validator's report).
pub fn refused() -> Vec<String> {
    REFUSED.with(|r| r.borrow().clone())
}

fn active() -> Option<Rc<FunctionPolicy>> {
    ACTIVE.with(|a| a.borrow().last().cloned())
}

fn user_function(oid: pg_sys::Oid) -> bool {
    u32::from(oid) >= pg_sys::FirstNormalObjectId
}

#[pg_guard]
unsafe extern "C-unwind" fn needs_hook(fn_oid: pg_sys::Oid) -> bool {
    // Every user function called while a sandbox is active goes through the hook. FmgrInfos
    // built then are used only inside it; one built outside, with the hook off, is not
    // re-checked (a cache of PostgreSQL's kept across calls), which is why the validator
    // checks what it can see first.
    if user_function(fn_oid) && active().is_some() {
        return true;
    }
    // SAFETY: the previous hook, if any, was installed by another module with this signature.
    unsafe { PREVIOUS_NEEDS.is_some_and(|previous| previous(fn_oid)) }
}

#[pg_guard]
unsafe extern "C-unwind" fn call_hook(
    event: pg_sys::FmgrHookEventType::Type,
    flinfo: *mut pg_sys::FmgrInfo,
    arg: *mut pg_sys::Datum,
) {
    if event == pg_sys::FmgrHookEventType::FHET_START && !flinfo.is_null() {
        // SAFETY: PostgreSQL passes the FmgrInfo of the function being called.
        let oid = unsafe { (*flinfo).fn_oid };
        if user_function(oid) && EXEMPT.with(|e| e.get()) == 0 {
            if let Some(policy) = active() {
                check(&policy, oid);
            }
        }
    }
    // SAFETY: as in needs_hook.
    unsafe {
        if let Some(previous) = PREVIOUS_HOOK {
            previous(event, flinfo, arg);
        }
    }
}

fn check(policy: &FunctionPolicy, oid: pg_sys::Oid) {
    let Some(f) = catalog::function(oid) else {
        return;
    };
    let info = FunctionInfo {
        schema: &f.schema,
        name: &f.name,
        builtin: f.builtin,
        volatility: f.volatility,
    };
    if let Some(reason) = policy.refusal(&info) {
        let name = catalog::qualified(&[&f.schema, &f.name]);
        REFUSED.with(|r| r.borrow_mut().push(name.clone()));
        NlqError::Refused {
            code: Code::ForbiddenFunction,
            message: format!("{reason} (checked when it was called)"),
            sqlstate: PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            detail: Some(Facts::restricted(Restricted::Function(name)).to_json_text()),
            hint: None,
        }
        .raise();
    }
}
