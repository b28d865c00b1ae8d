//! Bounded recursion for the walks pg_nlq drives through PostgreSQL's C tree walkers
//! (`raw_expression_tree_walker`, `query_tree_walker`, `expression_tree_walker`).
//!
//! A walker callback recurses through C: callback → C walker → callback → … one pair of frames
//! per level of the tree. Left to PostgreSQL, a deep tree ends in its own `check_stack_depth()`
//! ERROR deep inside that recursion; with a `#[pg_guard]` on every callback each level would turn
//! the ERROR into a Rust panic and back into an ERROR again (capturing a backtrace each time),
//! which is how a 200 KB query once kept a backend busy for 18 minutes, deaf to cancel requests.
//!
//! So the callbacks carry no guard frame. Each level calls [`step`], which, before going deeper:
//! - services interrupts (a cancel, a terminate, pg_nlq's own statement timeout) the way
//!   `CHECK_FOR_INTERRUPTS()` does;
//! - measures the stack used since the walk began and stops the walk, as
//!   [`Abort::TooDeep`], well before PostgreSQL's own limit (`max_stack_depth`) is reached;
//! - runs the level's work under `catch_unwind`: an ERROR raised by a PostgreSQL function it
//!   calls arrives as a Rust panic (pgrx's FFI guard), is kept, and stops the walk.
//!
//! A stopped walk unwinds by plain returns (`true` means "stop" to every C walker), so nothing
//! ever unwinds through C frames. The walk's owner then calls [`Bound::finish`], which re-raises
//! a kept panic once, at the top, or reports the depth refusal.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use pgrx::pg_sys;

use crate::codes::Code;

/// Why a walk stopped early.
pub enum Abort {
    /// The tree is nested more deeply than the stack budget allows.
    TooDeep,
    /// A level raised (an ERROR from PostgreSQL, a cancel, a Rust panic): re-raised at the top.
    Raised(Box<dyn Any + Send>),
}

/// The recursion budget of one walk.
pub struct Bound {
    /// Address of a local of the frame that began the walk.
    start: usize,
    /// Bytes of stack the walk may use below `start`.
    budget: usize,
    /// Deepest nesting level reached.
    pub max_depth: u32,
    depth: u32,
    abort: Option<Abort>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("budget", &self.budget)
            .field("depth", &self.depth)
            .field("max_depth", &self.max_depth)
            .field("aborted", &self.abort.is_some())
            .finish()
    }
}

/// An address on the current stack frame.
#[inline(always)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Stack kept free below the walk for what a level calls (catalog lookups, the C walkers'
/// own frames), so PostgreSQL's `check_stack_depth()` never fires inside a walk.
const MARGIN: usize = 256 * 1024;

/// The address PostgreSQL measures stack depth from (`stack_base_ptr`, static in postgres.c):
/// `set_stack_base()` returns the old base while moving it here, and `restore_stack_base()`
/// puts it back at once.
fn stack_base() -> Option<usize> {
    // SAFETY: the pair leaves stack_base_ptr as it was; nothing runs in between.
    let base = unsafe {
        let old = pg_sys::set_stack_base();
        pg_sys::restore_stack_base(old);
        old
    };
    (!base.is_null()).then_some(base as usize)
}

impl Bound {
    /// A budget for a walk: the stack left between here and `max_stack_depth` (as PostgreSQL
    /// measures it, from its stack base), less a margin, so the walk stops before PostgreSQL's
    /// own check would raise.
    #[inline(always)]
    pub fn new() -> Bound {
        // SAFETY: the GUC variable behind max_stack_depth, in kB.
        let limit = usize::try_from(unsafe { pg_sys::max_stack_depth })
            .unwrap_or(100)
            .saturating_mul(1024);
        let start = stack_address();
        let used = stack_base().map_or(0, |base| base.saturating_sub(start));
        Bound {
            start,
            budget: limit.saturating_sub(used).saturating_sub(MARGIN),
            max_depth: 0,
            depth: 0,
            abort: None,
        }
    }

    /// Whether another level may be entered; records why not.
    fn enter(&mut self) -> bool {
        if self.abort.is_some() {
            return false;
        }
        // CHECK_FOR_INTERRUPTS(): a pending cancel or terminate is acted on here.
        // SAFETY: reading the flag the signal handlers set.
        if unsafe { pg_sys::InterruptPending } != 0 {
            // SAFETY: ProcessInterrupts raises (as a Rust panic, through pgrx's FFI guard) or
            // returns.
            if let Err(raised) = catch_unwind(|| unsafe { pg_sys::ProcessInterrupts() }) {
                self.abort = Some(Abort::Raised(raised));
                return false;
            }
        }
        let used = self.start.saturating_sub(stack_address());
        // SAFETY: stack_is_too_deep() only compares addresses.
        if used > self.budget || unsafe { pg_sys::stack_is_too_deep() } {
            self.abort = Some(Abort::TooDeep);
            return false;
        }
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        true
    }

    /// End of the walk: re-raise what a level raised, or say the tree was too deep.
    pub fn finish(&mut self) -> Result<(), (Code, String)> {
        match self.abort.take() {
            None => Ok(()),
            Some(Abort::Raised(raised)) => resume_unwind(raised),
            Some(Abort::TooDeep) => Err((
                Code::TooComplex,
                format!(
                    "the query is nested too deeply to check (more than {} levels of \
                     expressions); simplify it, e.g. fewer chained operators or nested calls",
                    self.max_depth
                ),
            )),
        }
    }
}

/// One level of a walk: `work` is the level's own work, which may recurse (through a C walker)
/// into further `step`s with the same `bound`. Returns `true` (stop the walk) when `work` does,
/// when the budget is spent, or when `work` raised.
///
/// # Safety
/// `bound` must point to the walk's live [`Bound`]; no reference to it may be held across the
/// call (nested levels use the same pointer).
#[inline(always)]
pub unsafe fn step(bound: *mut Bound, work: impl FnOnce() -> bool) -> bool {
    // SAFETY: guaranteed by the caller; each borrow ends before `work` runs.
    unsafe {
        if !(*bound).enter() {
            return true;
        }
        let outcome = catch_unwind(AssertUnwindSafe(work));
        (*bound).depth -= 1;
        match outcome {
            Ok(stop) => stop,
            Err(raised) => {
                if (*bound).abort.is_none() {
                    (*bound).abort = Some(Abort::Raised(raised));
                }
                true
            }
        }
    }
}
