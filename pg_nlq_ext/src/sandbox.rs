//! The sandbox every `nlq_validate()` / `nlq_run()` call works in:
//!
//! - an internal subtransaction, **always rolled back**, so nothing the query did survives it;
//! - inside it `transaction_read_only = on` (undone by the rollback, so the caller's
//!   transaction is read-write again afterwards if it was) and pg_nlq's `lock_timeout` (put
//!   back afterwards);
//! - a statement timeout armed by pg_nlq itself (`pg_nlq.statement_timeout`), the caller's own
//!   timer restored afterwards;
//! - the runtime access-policy hook ([`crate::hooks`]) and function-policy hook
//!   ([`crate::call_hook`]) active;
//! - any ERROR raised inside caught and returned as data, with the error position where the
//!   parser or analyser gave one; memory context and resource owner restored as they were, and
//!   everything the call allocated freed with its own memory context.
//!
//! Errors that are not about the query (out of memory, the caller's cancel request, internal
//! errors, a Rust panic) are re-raised after the cleanup instead of being returned.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::panic::AssertUnwindSafe;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;

use std::rc::Rc;

use crate::call_hook;
use crate::codes::{Code, Facts};
use crate::hooks;
use crate::policy::{AccessPolicy, FunctionPolicy};
use crate::validate::Policies;

/// `STATEMENT_TIMEOUT` in `utils/timeout.h` (enum TimeoutId); not bound by pgrx.
const STATEMENT_TIMEOUT: u32 = 3;

mod timeout {
    use std::ffi::c_int;

    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn enable_timeout_after(id: u32, delay_ms: c_int);
        pub fn enable_timeout_at(id: u32, fin_time: pg_sys::TimestampTz);
        pub fn disable_timeout(id: u32, keep_indicator: bool);
        pub fn get_timeout_active(id: u32) -> bool;
        pub fn get_timeout_finish_time(id: u32) -> pg_sys::TimestampTz;
    }
}

// The timeout functions are called through pgrx's FFI guard, as bound functions are, so an
// ERROR they raise becomes a Rust panic instead of a longjmp over Rust frames.
unsafe fn enable_timeout_after(id: u32, delay_ms: c_int) {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| timeout::enable_timeout_after(id, delay_ms)) }
}
unsafe fn enable_timeout_at(id: u32, fin_time: pg_sys::TimestampTz) {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| timeout::enable_timeout_at(id, fin_time)) }
}
unsafe fn disable_timeout(id: u32, keep_indicator: bool) {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| timeout::disable_timeout(id, keep_indicator)) }
}
unsafe fn get_timeout_active(id: u32) -> bool {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| timeout::get_timeout_active(id)) }
}
unsafe fn get_timeout_finish_time(id: u32) -> pg_sys::TimestampTz {
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| timeout::get_timeout_finish_time(id)) }
}

/// An ERROR raised inside the sandbox.
#[derive(Debug, Clone)]
pub struct Failure {
    pub sqlstate: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the query text, where PostgreSQL gave one.
    pub position: Option<i32>,
    /// The error was pg_nlq's own statement timeout.
    pub our_timeout: bool,
}

/// What the sandboxed work was doing when an ERROR was raised: decides what PostgreSQL's own
/// errors stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// parsing the query text
    Parse,
    /// analysing, checking and planning it
    Check,
    /// executing it
    Execute,
    /// pg_nlq's own catalog queries (the snapshot, the fingerprint)
    Catalog,
}

impl Failure {
    /// The code of pg_nlq's own refusal (the runtime hooks'), carried at the head of the detail.
    pub fn own_code(&self) -> Option<Code> {
        self.detail.as_deref().and_then(Code::from_detail)
    }

    /// What pg_nlq's own refusal says after its code in the detail, if anything.
    pub fn own_detail(&self) -> Option<String> {
        self.own_code()?;
        let (_, rest) = self.detail.as_deref()?.split_once(':')?;
        Some(rest.trim().to_string()).filter(|r| !r.is_empty())
    }

    /// What pg_nlq's own refusal names in keys of its own.
    pub fn facts(&self) -> Facts {
        match (self.own_code(), self.detail.as_deref()) {
            (Some(_), Some(detail)) => Facts::from_detail(detail),
            _ => Facts::default(),
        }
    }

    /// The code this ERROR is reported with; the one classifier of errors raised in the
    /// sandbox. pg_nlq's own refusals keep their code; pg_nlq's statement timeout and a lock
    /// wait over the lock timeout are reported as such wherever they happen; the rest by what
    /// the work was.
    pub fn code(&self, work: Work) -> Code {
        use PgSqlErrorCode::*;
        if let Some(code) = self.own_code() {
            return code;
        }
        if self.our_timeout {
            return Code::StatementTimeout;
        }
        match (work, self.sqlstate) {
            (Work::Parse, _) => Code::SyntaxError,
            (_, ERRCODE_LOCK_NOT_AVAILABLE) => Code::LockTimeout,
            (Work::Catalog, _) => Code::InternalError,
            // stack depth limit exceeded, in PostgreSQL's own recursion
            (_, ERRCODE_STATEMENT_TOO_COMPLEX) => Code::TooComplex,
            (Work::Execute, _) => Code::ExecutionError,
            (Work::Check, ERRCODE_SYNTAX_ERROR) => Code::SyntaxError,
            (
                Work::Check,
                ERRCODE_UNDEFINED_TABLE
                | ERRCODE_UNDEFINED_COLUMN
                | ERRCODE_UNDEFINED_FUNCTION
                | ERRCODE_UNDEFINED_OBJECT
                | ERRCODE_INVALID_SCHEMA_NAME
                | ERRCODE_UNDEFINED_PARAMETER
                | ERRCODE_INVALID_CATALOG_NAME,
            ) => Code::UndefinedObject,
            (Work::Check, ERRCODE_INSUFFICIENT_PRIVILEGE) => Code::PermissionDenied,
            (Work::Check, _) => Code::InvalidQuery,
        }
    }
}

/// Limits of one sandboxed call.
pub struct Limits {
    pub statement_timeout_ms: i32,
    pub lock_timeout_ms: i32,
}

thread_local! {
    /// Position reported by the last ERROR (or message) raised while a sandbox is active.
    static POSITION: Cell<i32> = const { Cell::new(0) };
}

/// Forget any error position recorded so far (call before a stage whose positions count).
pub fn reset_position() {
    POSITION.with(|p| p.set(0));
}

#[pg_guard]
unsafe extern "C-unwind" fn record_position(_arg: *mut c_void) {
    // SAFETY: called by errfinish() while the error data is set up, as these functions need.
    let position = unsafe {
        let cursor = pg_sys::geterrposition();
        if cursor > 0 {
            cursor
        } else {
            // SPI (a function the query calls) may turn a position into an "internal" one
            pg_sys::getinternalerrposition()
        }
    };
    POSITION.with(|p| p.set(position));
}

/// Run `f` in the sandbox. `Ok` if it returned, `Err` if it raised an ERROR about the query.
pub fn run<R>(policies: &Policies, limits: &Limits, f: impl FnOnce() -> R) -> Result<R, Failure> {
    run_with(
        policies.access.clone(),
        Some(policies.functions.clone()),
        limits,
        f,
    )
}

/// [`run`] with the access policy the executor hook applies, and the function policy the call
/// hook applies (`None`: no call is checked — for pg_nlq's own catalog queries, which call its
/// own helper functions).
pub fn run_with<R>(
    access: Rc<AccessPolicy>,
    functions: Option<Rc<FunctionPolicy>>,
    limits: &Limits,
    f: impl FnOnce() -> R,
) -> Result<R, Failure> {
    reset_position();
    let timer = Timer::arm(limits.statement_timeout_ms);
    let lock_timeout = LockTimeout::arm(limits.lock_timeout_ms);
    let _active = hooks::activate(access);
    let _calls = functions.map(call_hook::activate);
    // SAFETY: the subtransaction is begun and always ended here, with the memory context and
    // resource owner restored, as PL/pgSQL does for an exception block.
    let (outcome, rethrow) = unsafe {
        let caller_context = pg_sys::CurrentMemoryContext;
        let caller_owner = pg_sys::CurrentResourceOwner;
        let caller_error_context = pg_sys::error_context_stack;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        // everything the call allocates (parse trees, plans, executor state) goes in one
        // context, deleted at the end whatever happened
        let work = pg_sys::AllocSetContextCreateInternal(
            caller_context,
            c"pg_nlq sandbox".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        pg_sys::MemoryContextSwitchTo(work);

        let mut callback = pg_sys::ErrorContextCallback {
            previous: caller_error_context,
            callback: Some(record_position),
            arg: std::ptr::null_mut(),
        };
        pg_sys::error_context_stack = &mut callback;

        let result = PgTryBuilder::new(AssertUnwindSafe(|| {
            restrict();
            Ok(f())
        }))
        .catch_others(|e| Err(Box::new(e)))
        .execute();

        pg_sys::error_context_stack = caller_error_context;
        pg_sys::MemoryContextSwitchTo(work);
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(caller_context);
        pg_sys::CurrentResourceOwner = caller_owner;
        pg_sys::MemoryContextDelete(work);

        match result {
            Ok(value) => (Some(Ok(value)), None),
            Err(caught) => classify(*caught, timer.armed),
        }
    };
    timer.restore();
    lock_timeout.restore();
    if let Some(caught) = rethrow {
        crate::error::reraise(caught);
    }
    match outcome {
        Some(outcome) => outcome,
        None => unreachable!("an error is either returned or re-raised"),
    }
}

type Classified<R> = (Option<Result<R, Failure>>, Option<CaughtError>);

fn classify<R>(caught: CaughtError, our_timer: bool) -> Classified<R> {
    let report = match &caught {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { .. } => return (None, Some(caught)),
    };
    let sqlstate = report.sql_error_code();
    let code = sqlstate as isize as i32;
    let class = unsqlstate_class(code);
    let our_timeout = our_timer
        && sqlstate == PgSqlErrorCode::ERRCODE_QUERY_CANCELED
        && report.message().contains("statement timeout");
    // Not about the query: resources, system errors, operator intervention (a cancel that is
    // not our own timeout), serialization failures and deadlocks. Internal errors (class XX)
    // are about the query: everything PostgreSQL runs inside the sandbox is the query's parse,
    // analysis, planning and execution, and a built-in function given arguments it does not
    // expect (`acldefault('x', 0)`) reports them with elog(ERROR). pg_nlq's own failures are
    // Rust panics, re-raised.
    let foreign = matches!(class.as_str(), "53" | "58" | "40") || (class == "57" && !our_timeout);
    if foreign {
        return (None, Some(caught));
    }
    let position = POSITION.with(|p| p.get());
    let failure = Failure {
        sqlstate,
        message: report.message().to_string(),
        detail: report.detail().map(str::to_string),
        hint: report.hint().map(str::to_string),
        position: (position > 0).then_some(position),
        our_timeout,
    };
    (Some(Err(failure)), None)
}

/// The two-character class of a packed SQLSTATE (MAKE_SQLSTATE packs 6 bits per character).
fn unsqlstate_class(code: i32) -> String {
    let c1 = (code & 0x3f) as u8 + b'0';
    let c2 = ((code >> 6) & 0x3f) as u8 + b'0';
    String::from_utf8_lossy(&[c1, c2]).into_owned()
}

/// The five-character SQLSTATE of a packed code.
pub fn sqlstate_text(sqlstate: PgSqlErrorCode) -> String {
    let code = sqlstate as isize as i32;
    let chars: Vec<u8> = (0..5)
        .map(|i| ((code >> (6 * i)) & 0x3f) as u8 + b'0')
        .collect();
    String::from_utf8_lossy(&chars).into_owned()
}

/// Read-only for the rest of the subtransaction: `transaction_read_only` is the variable
/// `XactReadOnly`, which the subtransaction's rollback restores to the caller's value.
fn restrict() {
    // SAFETY: switching to read-only is always allowed; never switched back here.
    unsafe { pg_sys::XactReadOnly = true };
}

/// pg_nlq's lock timeout, where it is shorter than the caller's; put back by `restore`.
struct LockTimeout {
    caller: c_int,
}

impl LockTimeout {
    fn arm(ours: i32) -> LockTimeout {
        // SAFETY: the variable behind the lock_timeout setting, read when a lock wait starts.
        unsafe {
            let caller = pg_sys::LockTimeout;
            if ours > 0 && (caller == 0 || ours < caller) {
                pg_sys::LockTimeout = ours;
            }
            LockTimeout { caller }
        }
    }

    fn restore(self) {
        // SAFETY: as in arm().
        unsafe { pg_sys::LockTimeout = self.caller };
    }
}

/// pg_nlq's statement timeout, and how to put the caller's back.
struct Timer {
    armed: bool,
    caller_finish: Option<pg_sys::TimestampTz>,
}

impl Timer {
    fn arm(timeout_ms: i32) -> Timer {
        // SAFETY: the timeout module is initialised in every backend.
        unsafe {
            let caller_finish = get_timeout_active(STATEMENT_TIMEOUT)
                .then(|| get_timeout_finish_time(STATEMENT_TIMEOUT));
            if timeout_ms <= 0 {
                return Timer {
                    armed: false,
                    caller_finish,
                };
            }
            let ours = pg_sys::GetCurrentTimestamp() + i64::from(timeout_ms) * 1000;
            let armed = caller_finish.is_none_or(|theirs| ours < theirs);
            if armed {
                enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
            }
            Timer {
                armed,
                caller_finish,
            }
        }
    }

    fn restore(self) {
        if !self.armed {
            return;
        }
        // SAFETY: as in arm().
        unsafe {
            match self.caller_finish {
                Some(finish) => enable_timeout_at(STATEMENT_TIMEOUT, finish),
                None => disable_timeout(STATEMENT_TIMEOUT, false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes() {
        assert_eq!(sqlstate_text(PgSqlErrorCode::ERRCODE_SYNTAX_ERROR), "42601");
        assert_eq!(
            unsqlstate_class(PgSqlErrorCode::ERRCODE_QUERY_CANCELED as isize as i32),
            "57"
        );
        assert_eq!(
            sqlstate_text(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR),
            "XX000"
        );
    }
}
