//! Which columns of which relations a query really reads.
//!
//! `selectedCols` of a range table entry lists every column its query level names, in any
//! clause; through a view that is every column the view's definition names, whatever the outer
//! query uses (`CREATE VIEW v AS SELECT * FROM t` selects every column of `t`). This walk
//! follows the data instead: at each query level the output columns that are used (every one
//! at the top; for a subquery — a view's body after rewriting — only those its parent
//! references) and everything else at that level (`WHERE`, `JOIN ... ON`, `GROUP BY`,
//! `HAVING`, `ORDER BY`, `DISTINCT`, window clauses, `LIMIT`, set-returning and sort/group
//! target entries, function and `VALUES` range entries, sublinks, `LATERAL` references, join
//! aliases) count as reads, and so do output columns that return sets or call volatile
//! functions (the planner keeps them); an unused output column otherwise does not. A set
//! operation uses every output column of every branch (they decide which rows remain); a CTE
//! is counted whole.
//! Row-level security quals are the DBA's and do not count as the caller's reads of their own
//! table, but what their sublinks read does.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_void;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

/// How a relation is read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RelationRead {
    /// Read with its inheritance children or partitions (not `ONLY`).
    pub inh: bool,
    /// Attribute numbers really read; 0 is a whole-row reference.
    pub attnums: BTreeSet<i16>,
    /// A view seen expanded by the rewriter, whose `attnums` are the columns used of it.
    pub expanded: bool,
}

/// A relation range table entry met on the way, as the executor's permission check will see
/// it: the runtime hook recognises these and applies [`Reads::relations`] to them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub relid: u32,
    pub check_as_user: u32,
    pub selected: Vec<i16>,
}

/// Expression and query nesting followed before the walk gives up (it then reports itself
/// incomplete, and its callers fall back to `selectedCols`, or refuse). It also gives up when
/// the stack nears PostgreSQL's own limit (`stack_is_too_deep`, which does not raise), so the
/// walk never raises for a deep tree.
const MAX_DEPTH: usize = 1000;

/// What a query reads.
#[derive(Debug, Default)]
pub struct Reads {
    /// The walk gave up on a tree nested deeper than [`MAX_DEPTH`]: what it found is a part.
    pub incomplete: bool,
    pub relations: BTreeMap<u32, RelationRead>,
    pub entries: BTreeSet<Entry>,
    /// Addresses of the top-level `Query` trees analysed.
    pub queries: Vec<usize>,
}

impl Reads {
    /// The reads of `query` with output columns `used` (attribute numbers; `None`: all).
    ///
    /// # Safety
    /// `query` must be a valid analysed `Query`.
    pub unsafe fn of(query: *mut pg_sys::Query, used: Option<&BTreeSet<i16>>) -> Reads {
        let mut walk = Walk::default();
        // SAFETY: guaranteed by the caller.
        unsafe { walk.query(query, used.cloned()) };
        walk.reads.queries.push(query as usize);
        walk.reads.incomplete |= walk.truncated;
        walk.reads
    }

    pub fn merge(&mut self, other: Reads) {
        for (relid, read) in other.relations {
            let mine = self.relations.entry(relid).or_default();
            mine.inh |= read.inh;
            mine.expanded |= read.expanded;
            mine.attnums.extend(read.attnums);
        }
        self.incomplete |= other.incomplete;
        self.entries.extend(other.entries);
        self.queries.extend(other.queries);
    }
}

#[derive(Default)]
struct Level {
    /// Columns demanded of each range table entry (1-based varno) of this level.
    demands: BTreeMap<u32, BTreeSet<i16>>,
}

#[derive(Default)]
struct Walk {
    levels: Vec<Level>,
    reads: Reads,
    /// While walking a row-level security qual: its own level and entry, whose columns do not
    /// count.
    ignore: Option<(usize, u32)>,
    depth: usize,
    truncated: bool,
}

impl Walk {
    unsafe fn query(&mut self, query: *mut pg_sys::Query, used: Option<BTreeSet<i16>>) {
        if query.is_null() || !self.enter() {
            return;
        }
        // SAFETY: the walk itself.
        unsafe { self.query_level(query, used) };
        self.depth -= 1;
    }

    /// One level deeper, unless that is too deep.
    fn enter(&mut self) -> bool {
        // SAFETY: reads the stack pointer against max_stack_depth; never raises.
        if self.depth >= MAX_DEPTH || unsafe { pg_sys::stack_is_too_deep() } {
            self.truncated = true;
            return false;
        }
        self.depth += 1;
        check_for_interrupts!();
        true
    }

    unsafe fn query_level(&mut self, query: *mut pg_sys::Query, used: Option<BTreeSet<i16>>) {
        // SAFETY: the caller passes a valid Query; every cast follows a node tag or list type.
        unsafe {
            let q = &*query;
            let set_operation = !q.setOperations.is_null();
            let used = if set_operation { None } else { used };
            self.levels.push(Level::default());
            let level = self.levels.len() - 1;
            let targets = PgList::<pg_sys::TargetEntry>::from_pg(q.targetList);
            for tle in targets.iter_ptr() {
                let t = &*tle;
                let counts = match &used {
                    None => true,
                    Some(used) => {
                        t.resjunk
                            || t.ressortgroupref != 0
                            || used.contains(&t.resno)
                            || pg_sys::expression_returns_set(t.expr.cast())
                            // the planner keeps (and runs) unused volatile outputs: an error
                            // they raise would tell what they read
                            || pg_sys::contain_volatile_functions(t.expr.cast())
                    }
                };
                if counts {
                    self.expr(t.expr.cast());
                }
            }
            self.expr(q.jointree.cast());
            self.expr(q.havingQual);
            self.expr(q.limitOffset);
            self.expr(q.limitCount);
            let windows = PgList::<pg_sys::WindowClause>::from_pg(q.windowClause);
            for w in windows.iter_ptr() {
                self.expr((*w).startOffset);
                self.expr((*w).endOffset);
            }
            let ctes = PgList::<pg_sys::CommonTableExpr>::from_pg(q.cteList);
            for cte in ctes.iter_ptr() {
                self.query((*cte).ctequery.cast(), None);
            }
            let rtes = PgList::<pg_sys::RangeTblEntry>::from_pg(q.rtable);
            for (i, rte) in rtes.iter_ptr().enumerate() {
                let r = &*rte;
                let varno = u32::try_from(i + 1).unwrap_or(u32::MAX);
                match r.rtekind {
                    pg_sys::RTEKind::RTE_RELATION => {
                        let entry = self.reads.relations.entry(r.relid.to_u32()).or_default();
                        entry.inh |= r.inh;
                        self.reads.entries.insert(Entry {
                            relid: r.relid.to_u32(),
                            check_as_user: r.checkAsUser.to_u32(),
                            selected: crate::catalog::attnums(r.selectedCols),
                        });
                        self.expr(r.tablesample.cast());
                        let outer = self.ignore.replace((level, varno));
                        self.expr(r.securityQuals.cast());
                        self.ignore = outer;
                    }
                    pg_sys::RTEKind::RTE_FUNCTION => self.expr(r.functions.cast()),
                    pg_sys::RTEKind::RTE_TABLEFUNC => self.expr(r.tablefunc.cast()),
                    pg_sys::RTEKind::RTE_VALUES => self.expr(r.values_lists.cast()),
                    pg_sys::RTEKind::RTE_SUBQUERY => {
                        // quals of a subquery under security barrier views land here too
                        let outer = self.ignore.replace((level, varno));
                        self.expr(r.securityQuals.cast());
                        self.ignore = outer;
                    }
                    _ => {}
                }
            }
            // Resolve what was demanded of joins and subqueries; both can demand more of this
            // level (join aliases, LATERAL references), so repeat until nothing changes.
            let mut expanded: BTreeSet<(u32, i16)> = BTreeSet::new();
            let mut visited: BTreeMap<u32, Option<BTreeSet<i16>>> = BTreeMap::new();
            loop {
                let mut changed = false;
                let demands = self.levels[level].demands.clone();
                for (i, rte) in rtes.iter_ptr().enumerate() {
                    let r = &*rte;
                    let varno = u32::try_from(i + 1).unwrap_or(u32::MAX);
                    let wanted = demands.get(&varno).cloned().unwrap_or_default();
                    match r.rtekind {
                        pg_sys::RTEKind::RTE_JOIN => {
                            let aliases = PgList::<pg_sys::Node>::from_pg(r.joinaliasvars);
                            for &attnum in &wanted {
                                if !expanded.insert((varno, attnum)) {
                                    continue;
                                }
                                changed = true;
                                if attnum == 0 {
                                    for a in aliases.iter_ptr() {
                                        self.expr(a);
                                    }
                                } else if let Some(a) = usize::try_from(attnum - 1)
                                    .ok()
                                    .and_then(|k| aliases.get_ptr(k))
                                {
                                    self.expr(a);
                                }
                            }
                        }
                        pg_sys::RTEKind::RTE_SUBQUERY => {
                            // every branch of a set operation decides which rows remain
                            let used = if wanted.contains(&0) || set_operation {
                                None
                            } else {
                                Some(wanted)
                            };
                            if let Some(view) = view_of(r.subquery) {
                                // a view the rewriter expanded: its columns used are these
                                let cols = match &used {
                                    None => BTreeSet::from([0]),
                                    Some(u) => u.clone(),
                                };
                                let read = self.reads.relations.entry(view).or_default();
                                read.expanded = true;
                                read.attnums.extend(cols);
                            }
                            if visited.get(&varno) != Some(&used) {
                                visited.insert(varno, used.clone());
                                changed = true;
                                self.query(r.subquery, used);
                            }
                        }
                        _ => {}
                    }
                }
                if !changed {
                    break;
                }
            }
            let demands = std::mem::take(&mut self.levels[level].demands);
            for (i, rte) in rtes.iter_ptr().enumerate() {
                let r = &*rte;
                if r.rtekind != pg_sys::RTEKind::RTE_RELATION {
                    continue;
                }
                let varno = u32::try_from(i + 1).unwrap_or(u32::MAX);
                if let Some(wanted) = demands.get(&varno) {
                    self.reads
                        .relations
                        .entry(r.relid.to_u32())
                        .or_default()
                        .attnums
                        .extend(wanted.iter().copied());
                }
            }
            self.levels.pop();
        }
    }

    unsafe fn expr(&mut self, node: *mut pg_sys::Node) {
        if node.is_null() {
            return;
        }
        let ctx = (self as *mut Walk).cast::<c_void>();
        // SAFETY: node is a valid expression tree.
        unsafe { read_walker(node, ctx) };
    }

    fn var(&mut self, var: &pg_sys::Var) {
        let Ok(up) = usize::try_from(var.varlevelsup) else {
            return;
        };
        let Some(level) = self.levels.len().checked_sub(1 + up) else {
            return;
        };
        if self.ignore == Some((level, var.varno as u32)) {
            return;
        }
        self.levels[level]
            .demands
            .entry(var.varno as u32)
            .or_default()
            .insert(var.varattno);
    }
}

/// The view a subquery is the expansion of: the rewriter leaves the view's rule placeholders
/// (OLD and NEW, both the view) first in its range table.
///
/// # Safety
/// `subquery` must be NULL or a valid Query.
unsafe fn view_of(subquery: *mut pg_sys::Query) -> Option<u32> {
    if subquery.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let rtes = unsafe { PgList::<pg_sys::RangeTblEntry>::from_pg((*subquery).rtable) };
    // SAFETY: elements of a range table.
    let (old, new) = unsafe { (&*rtes.get_ptr(0)?, &*rtes.get_ptr(1)?) };
    let placeholder = |r: &pg_sys::RangeTblEntry| {
        r.rtekind == pg_sys::RTEKind::RTE_RELATION && r.relkind == pg_sys::RELKIND_VIEW as i8
    };
    (placeholder(old) && placeholder(new) && old.relid == new.relid).then(|| old.relid.to_u32())
}

#[pg_guard]
unsafe extern "C-unwind" fn read_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: ctx is the Walk of Reads::of; node is a valid analysed-tree node.
    unsafe {
        let walk = &mut *ctx.cast::<Walk>();
        if is_a(node, pg_sys::NodeTag::T_Var) {
            walk.var(&*node.cast::<pg_sys::Var>());
            return false;
        }
        if is_a(node, pg_sys::NodeTag::T_Query) {
            walk.query(node.cast(), None);
            return false;
        }
        if !walk.enter() {
            return false;
        }
        let stop = pg_sys::expression_tree_walker(node, Some(read_walker), ctx);
        walk.depth -= 1;
        stop
    }
}
