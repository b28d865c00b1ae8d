//! Walks over parse trees for the validator.
//!
//! One piece past 600 lines: the walks share one visitor state ([`Touched`]) and one recursion
//! budget, and split apart they would pass both around.
//!
//! - [`raw_check`]: the raw statement, before analysis, for precise early refusals: not a
//!   query, `SELECT INTO`, `FOR UPDATE`/`FOR SHARE`, a data-modifying `WITH` at any depth.
//! - [`Touched::walk_query`]: the analysed and rewritten query — views expanded, row-level
//!   security quals attached — at every level (subqueries, CTEs, sublinks, view bodies, RLS
//!   quals), checking each level is a plain read and collecting what it touches: relations (and
//!   whether read with the caller's own privileges), columns (`selectedCols`; a whole-row
//!   reference means every column), functions (everything `check_functions_in_node` sees, plus
//!   what it does not: domain CHECK constraints, `GREATEST`/`LEAST` comparison functions,
//!   subscripting handlers, `ORDER BY`/`GROUP BY`/`DISTINCT`/window sort and equality operators,
//!   `RANGE` offset functions, `TABLESAMPLE` methods, `nextval` of identity columns, XML
//!   expressions and SQL value functions).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{c_void, CStr};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{is_a, PgList};

use crate::bound::{self, Bound};
use crate::codes::{Code, Facts, Restricted};

/// A refusal found while walking: its code and message.
pub type Violation = (Code, String);

/// The first reason a raw statement is not a plain read, if any.
///
/// # Safety
/// `stmt` must be the `stmt` of a `RawStmt` returned by `raw_parser`.
pub unsafe fn raw_check(stmt: *mut pg_sys::Node) -> Option<Violation> {
    // SAFETY: guaranteed by the caller; the walkers only read the tree.
    unsafe {
        if !is_a(stmt, pg_sys::NodeTag::T_SelectStmt) {
            let command = CStr::from_ptr(pg_sys::CreateCommandName(stmt)).to_string_lossy();
            return Some((
                Code::NotAQuery,
                format!(
                    "{command} is not a query; \
                     only SELECT, VALUES, TABLE and WITH ... SELECT may be run"
                ),
            ));
        }
        let mut walk = RawWalk {
            found: None,
            bound: Bound::new(),
            queries: 0,
            nodes: 0,
        };
        let ctx = (&mut walk as *mut RawWalk).cast::<c_void>();
        raw_walker(stmt, ctx);
        if let Err(refusal) = walk.bound.finish() {
            return Some(refusal);
        }
        walk.found
    }
}

/// The state of a walk over a raw parse tree.
struct RawWalk {
    found: Option<Violation>,
    bound: Bound,
    /// SELECTs seen so far (subqueries, set operation arms, WITH queries).
    queries: u32,
    /// Nodes seen so far.
    nodes: u32,
}

/// Most nodes of the raw parse tree one statement may have. PostgreSQL's analysis and planning
/// of flat lists grow faster than linearly (100,000 `AND`ed comparisons take its planner some
/// 4 s), so a statement far larger than any question needs is refused before it is analysed.
pub const MAX_NODES: u32 = 50_000;

/// Most SELECTs and WITH queries one statement may hold, before and after view expansion.
/// PostgreSQL's planner does work that grows faster than linearly with them (a chain of 400
/// CTEs takes it over a second, 3,000 some ten minutes) in loops that never service a cancel
/// request, so a statement over the limit is refused before it is analysed or planned.
pub const MAX_QUERIES: u32 = 200;

fn too_many_queries() -> Violation {
    (
        Code::TooComplex,
        format!(
            "the query holds more than {MAX_QUERIES} SELECTs and WITH queries (subqueries, \
             UNION arms, CTEs, views); simplify it"
        ),
    )
}

/// The walker callback over raw parse trees: one bounded level ([`bound::step`]), no guard
/// frame of its own.
unsafe extern "C-unwind" fn raw_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    // SAFETY: ctx is the RawWalk of raw_check; no reference to it outlives a statement.
    unsafe {
        let bound = std::ptr::addr_of_mut!((*ctx.cast::<RawWalk>()).bound);
        bound::step(bound, || raw_node(node, ctx))
    }
}

/// One node of a raw parse tree; true stops the walk.
///
/// # Safety
/// `node` must be NULL or a raw parse node; `ctx` the RawWalk of the walk.
unsafe fn raw_node(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: guaranteed by the caller.
    unsafe {
        let walk = &mut *ctx.cast::<RawWalk>();
        walk.nodes += 1;
        if walk.nodes > MAX_NODES {
            walk.found = Some((
                Code::TooComplex,
                format!(
                    "the query has more than {MAX_NODES} syntax elements (terms, literals, \
                     operators); PostgreSQL's planner would take too long over it: simplify it, \
                     e.g. a join with a table instead of a huge IN list or OR chain"
                ),
            ));
            return true;
        }
        // every subquery, set operation arm and WITH query is a SelectStmt (a set operation
        // itself is one more, over its arms, and is not counted)
        if is_a(node, pg_sys::NodeTag::T_SelectStmt)
            && (*node.cast::<pg_sys::SelectStmt>()).op == pg_sys::SetOperation::SETOP_NONE
        {
            walk.queries += 1;
            if walk.queries > MAX_QUERIES {
                walk.found = Some(too_many_queries());
                return true;
            }
        }
        let found = &mut walk.found;
        if is_a(node, pg_sys::NodeTag::T_SelectStmt) {
            let select = &*node.cast::<pg_sys::SelectStmt>();
            if !select.intoClause.is_null() {
                *found = Some((
                    Code::SelectInto,
                    "SELECT INTO creates a table; write a plain SELECT".into(),
                ));
                return true;
            }
            if !select.lockingClause.is_null() {
                *found = Some((
                    Code::LockingClause,
                    "FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE lock rows; a read-only query may not"
                        .into(),
                ));
                return true;
            }
        } else if is_a(node, pg_sys::NodeTag::T_CommonTableExpr) {
            let cte = &*node.cast::<pg_sys::CommonTableExpr>();
            if !cte.ctequery.is_null() && !is_a(cte.ctequery, pg_sys::NodeTag::T_SelectStmt) {
                let name = crate::encoding::from_server_cstr(cte.ctename).unwrap_or_default();
                let command =
                    CStr::from_ptr(pg_sys::CreateCommandName(cte.ctequery)).to_string_lossy();
                *found = Some((
                    Code::DataModifyingCte,
                    format!("WITH query \"{name}\" is {command}, which modifies data"),
                ));
                return true;
            }
        }
        pg_sys::raw_expression_tree_walker(node, Some(raw_walker), ctx)
    }
}

/// How a relation is used by the query.
#[derive(Debug, Default, Clone)]
pub struct RelationUse {
    /// Read with the caller's own privileges somewhere (not only behind a view).
    pub direct: bool,
    /// Attribute numbers named (`selectedCols`); 0 is a whole-row reference.
    pub attnums: BTreeSet<i16>,
    /// Read with its inheritance children or partitions somewhere (not `ONLY`).
    pub inh: bool,
}

/// Built-in type input and receive functions that take the type to make as an argument.
const TYPE_IO_FUNCTIONS: &[&str] = &[
    "array_in",
    "array_recv",
    "record_in",
    "record_recv",
    "domain_in",
    "domain_recv",
    "range_in",
    "range_recv",
    "multirange_in",
    "multirange_recv",
];

/// A function-like construct that has no `pg_proc` entry of its own: name and volatility.
pub type Pseudo = (&'static str, u8);

/// Everything a query touches, and the structural violations met on the way.
#[derive(Debug, Default)]
pub struct Touched {
    /// Each with what it names ([`Facts`]), where it names something.
    pub violations: Vec<(Code, String, Facts)>,
    pub relations: BTreeMap<u32, RelationUse>,
    pub functions: BTreeSet<u32>,
    pub pseudo_functions: BTreeSet<Pseudo>,
    domains: BTreeSet<u32>,
    /// The recursion budget of the walk in progress.
    bound: Option<Bound>,
    /// Every relation entry of every query level, for the privilege check before planning.
    pub relation_entries: Vec<*mut pg_sys::RangeTblEntry>,
    /// Row-level security applies somewhere in the query.
    pub row_security: bool,
    /// Query levels seen (see [`MAX_QUERIES`]).
    queries: u32,
    /// The columns really read, level by level ([`crate::reads`]).
    pub reads: crate::reads::Reads,
}

impl Touched {
    /// Walk an analysed and rewritten query.
    ///
    /// # Safety
    /// `query` must be a valid `Query` node.
    pub unsafe fn walk_query(&mut self, query: *mut pg_sys::Query) {
        self.bound = Some(Bound::new());
        let ctx = (self as *mut Touched).cast::<c_void>();
        // SAFETY: guaranteed by the caller.
        unsafe { query_walker(query.cast(), ctx) };
        if let Some(Err((code, message))) = self.bound.take().map(|mut b| b.finish()) {
            self.violation(code, &message);
        }
        // SAFETY: as above.
        let reads = unsafe { crate::reads::Reads::of(query, None) };
        self.reads.merge(reads);
    }

    fn violation(&mut self, code: Code, message: &str) {
        self.violation_naming(code, message, Facts::default());
    }

    fn violation_naming(&mut self, code: Code, message: &str, facts: Facts) {
        if !self.violations.iter().any(|(c, _, _)| *c == code) {
            self.violations.push((code, message.to_string(), facts));
        }
    }

    fn operator(&mut self, opno: pg_sys::Oid) {
        if opno != pg_sys::InvalidOid {
            // SAFETY: catalog lookup; InvalidOid for a missing operator.
            let func = unsafe { pg_sys::get_opcode(opno) };
            self.function(func);
        }
    }

    fn function(&mut self, func: pg_sys::Oid) {
        if func != pg_sys::InvalidOid {
            self.functions.insert(func.to_u32());
        }
    }

    /// The sort and equality operators of a list of `SortGroupClause`.
    unsafe fn sort_group_clauses(&mut self, list: *mut pg_sys::List) {
        // SAFETY: the caller passes a list of SortGroupClause (or NIL).
        let clauses = unsafe { PgList::<pg_sys::SortGroupClause>::from_pg(list) };
        for clause in clauses.iter_ptr() {
            // SAFETY: element of the list.
            let clause = unsafe { &*clause };
            self.operator(clause.eqop);
            self.operator(clause.sortop);
        }
    }

    /// Checks and collections at one query level, before its contents are walked.
    unsafe fn query_level(&mut self, q: &pg_sys::Query) {
        if q.commandType != pg_sys::CmdType::CMD_SELECT || !q.utilityStmt.is_null() {
            // SAFETY: a utility statement is a valid node.
            let select_into = q.commandType == pg_sys::CmdType::CMD_UTILITY
                && unsafe { is_a(q.utilityStmt, pg_sys::NodeTag::T_CreateTableAsStmt) };
            if select_into {
                self.violation(
                    Code::SelectInto,
                    "SELECT INTO creates a table; write a plain SELECT",
                );
            } else if q.commandType == pg_sys::CmdType::CMD_UTILITY {
                self.violation(Code::NotAQuery, "the statement is not a query");
            } else {
                self.violation(
                    Code::DataModifyingCte,
                    "a WITH query or rule inserts, updates or deletes",
                );
            }
        }
        if q.hasModifyingCTE {
            self.violation(
                Code::DataModifyingCte,
                "a WITH query inserts, updates or deletes",
            );
        }
        if q.hasRowSecurity {
            self.row_security = true;
        }
        if !q.rowMarks.is_null() || q.hasForUpdate {
            self.violation(
                Code::LockingClause,
                "FOR UPDATE/SHARE (in the query or a view it reads) locks rows; \
                 a read-only query may not",
            );
        }
        // SAFETY: these lists hold SortGroupClause / WindowClause nodes.
        unsafe {
            self.sort_group_clauses(q.sortClause);
            self.sort_group_clauses(q.groupClause);
            self.sort_group_clauses(q.distinctClause);
            let windows = PgList::<pg_sys::WindowClause>::from_pg(q.windowClause);
            for w in windows.iter_ptr() {
                let w = &*w;
                self.sort_group_clauses(w.partitionClause);
                self.sort_group_clauses(w.orderClause);
                self.function(w.startInRangeFunc);
                self.function(w.endInRangeFunc);
            }
        }
    }

    /// A range table entry, before its contents are walked.
    fn range_table_entry(&mut self, rte: &pg_sys::RangeTblEntry) {
        if rte.rtekind != pg_sys::RTEKind::RTE_RELATION {
            return;
        }
        let entry = self.relations.entry(rte.relid.to_u32()).or_default();
        // Read with the caller's own privileges: permission bits to check, as the current
        // user. Tables inside a view owned by someone else carry the owner in checkAsUser.
        if rte.requiredPerms != 0 && rte.checkAsUser == pg_sys::InvalidOid {
            entry.direct = true;
        }
        entry.inh |= rte.inh;
        // SAFETY: selectedCols of a valid range table entry.
        entry
            .attnums
            .extend(unsafe { crate::catalog::attnums(rte.selectedCols) });
    }

    /// Nodes whose function calls `check_functions_in_node` does not report.
    unsafe fn special_node(&mut self, node: *mut pg_sys::Node) {
        use pg_sys::NodeTag::*;
        // SAFETY: each cast follows the node's tag.
        unsafe {
            if is_a(node, T_XmlExpr) {
                let x = &*node.cast::<pg_sys::XmlExpr>();
                let name = match x.op {
                    pg_sys::XmlExprOp::IS_XMLCONCAT => "xmlconcat",
                    pg_sys::XmlExprOp::IS_XMLELEMENT => "xmlelement",
                    pg_sys::XmlExprOp::IS_XMLFOREST => "xmlforest",
                    pg_sys::XmlExprOp::IS_XMLPARSE => "xmlparse",
                    pg_sys::XmlExprOp::IS_XMLPI => "xmlpi",
                    pg_sys::XmlExprOp::IS_XMLROOT => "xmlroot",
                    pg_sys::XmlExprOp::IS_XMLSERIALIZE => "xmlserialize",
                    _ => "xml_is_document",
                };
                self.pseudo_functions.insert((name, b'i'));
            } else if is_a(node, T_SQLValueFunction) {
                use pg_sys::SQLValueFunctionOp::*;
                let f = &*node.cast::<pg_sys::SQLValueFunction>();
                let name = match f.op {
                    SVFOP_CURRENT_DATE => "current_date",
                    SVFOP_CURRENT_TIME | SVFOP_CURRENT_TIME_N => "current_time",
                    SVFOP_CURRENT_TIMESTAMP | SVFOP_CURRENT_TIMESTAMP_N => "current_timestamp",
                    SVFOP_LOCALTIME | SVFOP_LOCALTIME_N => "localtime",
                    SVFOP_LOCALTIMESTAMP | SVFOP_LOCALTIMESTAMP_N => "localtimestamp",
                    SVFOP_CURRENT_ROLE => "current_role",
                    SVFOP_CURRENT_USER => "current_user",
                    SVFOP_USER => "user",
                    SVFOP_SESSION_USER => "session_user",
                    SVFOP_CURRENT_CATALOG => "current_catalog",
                    _ => "current_schema",
                };
                self.pseudo_functions.insert((name, b's'));
            } else if is_a(node, T_NextValueExpr) {
                self.pseudo_functions.insert(("nextval", b'v'));
            } else if is_a(node, T_CoerceToDomain) {
                let d = &*node.cast::<pg_sys::CoerceToDomain>();
                self.domain(d.resulttype);
            } else if is_a(node, T_Const) {
                // a literal was turned into this value by its type's input function, which
                // checks every domain inside it (an array, composite or range of one)
                self.input_type((*node.cast::<pg_sys::Const>()).consttype);
            } else if is_a(node, T_CoerceViaIO) {
                // text to a type through its input function, at run time
                self.input_type((*node.cast::<pg_sys::CoerceViaIO>()).resulttype);
            } else if is_a(node, T_FuncExpr) {
                // json_populate_record(NULL::comp, ...) and the like build their result
                // through input functions
                let f = &*node.cast::<pg_sys::FuncExpr>();
                self.input_type(f.funcresulttype);
                self.type_io_call(f);
            } else if is_a(node, T_ArrayCoerceExpr) {
                self.input_type((*node.cast::<pg_sys::ArrayCoerceExpr>()).resulttype);
            } else if is_a(node, T_MinMaxExpr) {
                let m = &*node.cast::<pg_sys::MinMaxExpr>();
                let cache =
                    pg_sys::lookup_type_cache(m.minmaxtype, pg_sys::TYPECACHE_CMP_PROC as i32);
                if !cache.is_null() {
                    self.function((*cache).cmp_proc);
                }
            } else if is_a(node, T_SubscriptingRef) {
                let s = &*node.cast::<pg_sys::SubscriptingRef>();
                let handler = pg_sys::get_typsubscript(s.refcontainertype, std::ptr::null_mut());
                self.function(handler);
            } else if is_a(node, T_SortGroupClause) {
                let c = &*node.cast::<pg_sys::SortGroupClause>();
                self.operator(c.eqop);
                self.operator(c.sortop);
            } else if is_a(node, T_SetOperationStmt) {
                let s = &*node.cast::<pg_sys::SetOperationStmt>();
                self.sort_group_clauses(s.groupClauses);
            } else if is_a(node, T_TableSampleClause) {
                let t = &*node.cast::<pg_sys::TableSampleClause>();
                self.function(t.tsmhandler);
            } else if is_a(node, T_RowCompareExpr) {
                let r = &*node.cast::<pg_sys::RowCompareExpr>();
                let opnos = PgList::<c_void>::from_pg(r.opnos);
                for opno in opnos.iter_oid() {
                    self.operator(opno);
                }
            }
        }
    }

    /// A direct call of a type input or receive function that takes the type as an argument
    /// (`array_in('{1}', 'd'::regtype, -1)`): the domains of that type count as checked; a type
    /// that is not a constant cannot be known beforehand, and is refused.
    unsafe fn type_io_call(&mut self, f: &pg_sys::FuncExpr) {
        if u32::from(f.funcid) >= pg_sys::FirstNormalObjectId {
            return;
        }
        // SAFETY: syscache lookup; NULL for a missing function.
        let name = unsafe { crate::encoding::from_server_cstr(pg_sys::get_func_name(f.funcid)) };
        let Some(name) = name else { return };
        if !TYPE_IO_FUNCTIONS.contains(&name.as_str()) {
            return;
        }
        // SAFETY: the arguments of a FuncExpr are expression nodes.
        let args = unsafe { PgList::<pg_sys::Node>::from_pg(f.args) };
        let typid = args.get_ptr(1).and_then(|arg| {
            // SAFETY: a node of the argument list; a Const's value is its datum.
            unsafe {
                let mut arg = arg;
                // 'd'::regtype passed as oid is relabelled
                while is_a(arg, pg_sys::NodeTag::T_RelabelType) {
                    arg = (*arg.cast::<pg_sys::RelabelType>()).arg.cast();
                }
                if !is_a(arg, pg_sys::NodeTag::T_Const) {
                    return None;
                }
                let c = &*arg.cast::<pg_sys::Const>();
                (!c.constisnull).then(|| pg_sys::Oid::from(c.constvalue.value() as u32))
            }
        });
        match typid {
            Some(typid) => self.input_type(typid),
            None => self.violation_naming(
                Code::ForbiddenFunction,
                &format!(
                    "pg_catalog.{name} is called with a type that is not a constant, so the \
                     checks it would run cannot be known before it runs"
                ),
                Facts::restricted(Restricted::Function(format!("pg_catalog.{name}"))),
            ),
        }
    }

    /// The column types of a function in `FROM` with a column definition list
    /// (`jsonb_to_record(...) AS x(a d_chk)`), whose values are made by input functions.
    fn function_rte(&mut self, rte: &pg_sys::RangeTblEntry) {
        if rte.rtekind == pg_sys::RTEKind::RTE_TABLEFUNC && !rte.tablefunc.is_null() {
            // XMLTABLE is the only table function of PostgreSQL 15
            self.pseudo_functions.insert(("xmltable", b'i'));
            // XMLTABLE(... COLUMNS a d PATH ...): each column made by its type's input function
            // SAFETY: a table function RTE's TableFunc, its column types an OID list.
            let types = unsafe { PgList::<c_void>::from_pg((*rte.tablefunc).coltypes) };
            for typid in types.iter_oid() {
                self.input_type(typid);
            }
            return;
        }
        if rte.rtekind != pg_sys::RTEKind::RTE_FUNCTION {
            return;
        }
        // SAFETY: the functions of a function RTE are RangeTblFunction nodes, their column
        // types an OID list.
        unsafe {
            let functions = PgList::<pg_sys::RangeTblFunction>::from_pg(rte.functions);
            for f in functions.iter_ptr() {
                let types = PgList::<c_void>::from_pg((*f).funccoltypes);
                for typid in types.iter_oid() {
                    self.input_type(typid);
                }
            }
        }
    }

    /// Every domain a value of type `typid` holds (the type itself, array elements, composite
    /// fields, range subtypes, recursively): each is checked when the value is made by the
    /// type's input function, so each domain's CHECK functions count as called.
    fn input_type(&mut self, typid: pg_sys::Oid) {
        let mut pending = vec![typid];
        let mut seen = BTreeSet::new();
        while let Some(t) = pending.pop() {
            if t == pg_sys::InvalidOid || !seen.insert(t.to_u32()) || seen.len() > 10_000 {
                continue;
            }
            // SAFETY: catalog lookups by OID; each returns InvalidOid / 0 when not applicable.
            unsafe {
                match pg_sys::get_typtype(t) as u8 {
                    b'd' => {
                        self.domain(t);
                        pending.push(pg_sys::getBaseType(t));
                    }
                    b'c' => {
                        let relid = pg_sys::get_typ_typrelid(t);
                        if relid != pg_sys::InvalidOid {
                            pending.extend(crate::catalog::attribute_types(relid));
                        }
                    }
                    b'r' => pending.push(pg_sys::get_range_subtype(t)),
                    b'm' => pending.push(pg_sys::get_multirange_range(t)),
                    _ => pending.push(pg_sys::get_element_type(t)),
                }
            }
        }
    }

    /// A domain's CHECK constraints (its base domains' included) may call any function: walk
    /// their expressions like the query's own.
    unsafe fn domain(&mut self, typid: pg_sys::Oid) {
        if !self.domains.insert(typid.to_u32()) {
            return;
        }
        // SAFETY: the DomainConstraintRef is palloc'd in the context it registers its release
        // callback with, as typcache requires; the expressions are only read.
        unsafe {
            let context = pg_sys::CurrentMemoryContext;
            let dref = pg_sys::palloc0(std::mem::size_of::<pg_sys::DomainConstraintRef>())
                .cast::<pg_sys::DomainConstraintRef>();
            pg_sys::InitDomainConstraintRef(typid, dref, context, false);
            let constraints = PgList::<pg_sys::DomainConstraintState>::from_pg((*dref).constraints);
            let ctx = (self as *mut Touched).cast::<c_void>();
            for c in constraints.iter_ptr() {
                let check = (*c).check_expr;
                if !check.is_null() {
                    query_walker(check.cast(), ctx);
                }
            }
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn record_function(func: pg_sys::Oid, ctx: *mut c_void) -> bool {
    // SAFETY: ctx is the Touched of the walk.
    let touched = unsafe { &mut *ctx.cast::<Touched>() };
    touched.function(func);
    false
}

/// The walker callback over analysed trees: one bounded level ([`bound::step`]), no guard
/// frame of its own.
unsafe extern "C-unwind" fn query_walker(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    // SAFETY: ctx is the Touched of the walk, whose bound is set while it walks; no reference
    // to it outlives a statement.
    unsafe {
        let Some(bound) = (*ctx.cast::<Touched>()).bound.as_mut() else {
            return true;
        };
        let bound: *mut Bound = bound;
        bound::step(bound, || query_node(node, ctx))
    }
}

/// One node of an analysed tree; true stops the walk.
///
/// # Safety
/// `node` must be NULL or a valid analysed-tree node; `ctx` the Touched of the walk.
unsafe fn query_node(node: *mut pg_sys::Node, ctx: *mut c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: guaranteed by the caller; each borrow of the Touched ends before the C walker
    // recurses into query_walker.
    unsafe {
        if is_a(node, pg_sys::NodeTag::T_Query) {
            let query = node.cast::<pg_sys::Query>();
            let touched = &mut *ctx.cast::<Touched>();
            touched.queries += 1;
            if touched.queries > MAX_QUERIES {
                let (code, message) = too_many_queries();
                touched.violation(code, &message);
                return true;
            }
            touched.query_level(&*query);
            return pg_sys::query_tree_walker(
                query,
                Some(query_walker),
                ctx,
                pg_sys::QTW_EXAMINE_RTES_BEFORE as i32,
            );
        }
        if is_a(node, pg_sys::NodeTag::T_RangeTblEntry) {
            let entry = node.cast::<pg_sys::RangeTblEntry>();
            let rte = &*entry;
            if rte.rtekind == pg_sys::RTEKind::RTE_RELATION {
                (*ctx.cast::<Touched>()).relation_entries.push(entry);
            }
            (*ctx.cast::<Touched>()).function_rte(rte);
            (*ctx.cast::<Touched>()).range_table_entry(rte);
            return false;
        }
        pg_sys::check_functions_in_node(node, Some(record_function), ctx);
        (*ctx.cast::<Touched>()).special_node(node);
        pg_sys::expression_tree_walker(node, Some(query_walker), ctx)
    }
}
