//! `nlq_validate(sql)`: is this one read-only query that the policies allow, and what does it
//! touch? Answered on the query PostgreSQL itself would run — parsed, analysed and rewritten as
//! the caller, every object resolved to its OID — never on the text.
//!
//! One piece past 600 lines: the stages share the report, the policies and the sandbox, and are
//! read top to bottom as the order in which a query is checked.
//!
//! The stages, all inside the sandbox ([`crate::sandbox`]):
//! 1. **parse** with `raw_parser`: exactly one statement, a `SelectStmt`, with precise early
//!    refusals for `SELECT INTO`, locking clauses and data-modifying `WITH`
//!    ([`walker::raw_check`]);
//! 2. **analyse and rewrite** that parse tree as the caller (`pg_analyze_and_rewrite_fixedparams`:
//!    views and row-level security expanded); walk every query level ([`walker::Touched`]) and
//!    apply the access and function policies ([`crate::policy`]);
//! 3. **plan** it (`pg_plan_query`, never executed) for the cost policy and the estimates,
//!    then check the caller's privileges on every relation and function as the executor would.
//!
//! The text is parsed once and the tree is never copied: `nlq_run()` ([`crate::run`]) uses
//! [`prepare`] and hands the very plans checked here to the executor, so no plan cache can
//! re-analyse the query between the check and the execution.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::catalog;
use crate::codes::{Code, Facts, Limit, Report, Restricted};
use crate::costs::FixedCosts;
use crate::derived;
use crate::encoding::{self, SqlText};
use crate::error::NlqError;
use crate::gucs;
use crate::jsonb::JsonbDatum;
use crate::policy::{AccessPolicy, FunctionInfo, FunctionPolicy};
use crate::sandbox::{self, Failure, Limits, Work};
use crate::walker::{self, Touched};

/// The policies in force for this call, read from the `pg_nlq.*` settings.
pub struct Policies {
    pub access: Rc<AccessPolicy>,
    pub functions: Rc<FunctionPolicy>,
    pub max_cost: f64,
    pub max_rows_estimate: f64,
}

impl Policies {
    /// The policies, or why they cannot be trusted: a setting that does not parse, or a stored
    /// `pg_nlq.*` entry that is not in force ([`crate::policy_check`]). Either way the caller
    /// fails with POLICY_ERROR: a broken policy never means no policy.
    pub fn current() -> Result<Policies, String> {
        crate::policy_check::ensure_sound()?;
        let access = AccessPolicy::parse(
            &gucs::string_value(&gucs::DENIED_RELATIONS),
            &gucs::string_value(&gucs::ALLOWED_RELATIONS),
            &gucs::string_value(&gucs::DENIED_COLUMNS),
        )?;
        let functions = FunctionPolicy::parse(
            &gucs::string_value(&gucs::ALLOWED_FUNCTIONS),
            &gucs::string_value(&gucs::DENIED_FUNCTIONS),
        )?;
        Ok(Policies {
            access: Rc::new(access),
            functions: Rc::new(functions),
            max_cost: gucs::MAX_COST.get(),
            max_rows_estimate: gucs::MAX_ROWS_ESTIMATE.get(),
        })
    }
}

/// The sandbox limits from the settings.
pub fn limits() -> Limits {
    Limits {
        statement_timeout_ms: gucs::STATEMENT_TIMEOUT.get(),
        lock_timeout_ms: gucs::LOCK_TIMEOUT.get(),
    }
}

/// Where a call is; decides how an ERROR raised there is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Parse,
    Analyse,
    Plan,
    Execute,
}

thread_local! {
    static STAGE: Cell<Stage> = const { Cell::new(Stage::Parse) };
}

pub fn set_stage(stage: Stage) {
    STAGE.with(|s| s.set(stage));
    if stage == Stage::Execute {
        // positions of errors in functions the query calls are not positions in the query
        sandbox::reset_position();
    }
}

pub fn stage() -> Stage {
    STAGE.with(|s| s.get())
}

/// Whether the validator's checks apply. `Unchecked` exists only in test builds: it skips every
/// check of this module so tests can prove the runtime layers hold on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Checked,
    #[cfg(any(test, feature = "pg_test"))]
    Unchecked,
}

impl Mode {
    fn checked(self) -> bool {
        matches!(self, Mode::Checked)
    }
}

/// Parse, analyse, check and plan `sql` into `report`. Must run inside the sandbox. When the
/// query may be executed, returns its planned statements (exactly what was checked: the
/// executor runs these, nothing is parsed or planned again); otherwise `None`, with the
/// refusal in `report`.
///
/// # Safety
/// Must be called inside [`sandbox::run`], which cleans up everything on error; the plans live
/// in the sandbox's memory context.
pub unsafe fn prepare(
    sql: &CStr,
    policies: &Policies,
    mode: Mode,
    report: &RefCell<Report>,
) -> Option<Vec<*mut pg_sys::PlannedStmt>> {
    set_stage(Stage::Parse);
    // SAFETY: sql is a valid C string; the parse tree lives in the current memory context.
    let statements = unsafe {
        PgList::<pg_sys::RawStmt>::from_pg(pg_sys::raw_parser(
            sql.as_ptr(),
            pg_sys::RawParseMode::RAW_PARSE_DEFAULT,
        ))
    };
    if statements.is_empty() {
        report
            .borrow_mut()
            .refuse(Code::Empty, "the query is empty");
        return None;
    }
    if !mode.checked() {
        // test builds only: every statement, analysed and planned, checked by nothing here
        set_stage(Stage::Analyse);
        let mut planned = Vec::new();
        for raw in statements.iter_ptr() {
            // SAFETY: a RawStmt from raw_parser; the plans are valid nodes.
            unsafe {
                let queries = analyse(raw, sql);
                let stmts = pg_sys::pg_plan_queries(
                    queries,
                    sql.as_ptr(),
                    pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
                    std::ptr::null_mut(),
                );
                planned.extend(PgList::<pg_sys::PlannedStmt>::from_pg(stmts).iter_ptr());
            }
        }
        return Some(planned);
    }
    if statements.len() > 1 {
        report.borrow_mut().refuse(
            Code::MultipleStatements,
            format!(
                "the text holds {} statements; send exactly one query",
                statements.len()
            ),
        );
        return None;
    }
    let raw = statements.head()?;
    // SAFETY: one RawStmt from raw_parser.
    if let Some((code, message)) = unsafe { walker::raw_check((*raw).stmt) } {
        report.borrow_mut().refuse(code, message);
        return None;
    }

    set_stage(Stage::Analyse);
    // SAFETY: as above; analysis and rewrite run as the caller.
    let queries = unsafe { PgList::<pg_sys::Query>::from_pg(analyse(raw, sql)) };
    let mut touched = Touched::default();
    for query in queries.iter_ptr() {
        // SAFETY: analysed, rewritten queries.
        unsafe { touched.walk_query(query) };
    }
    describe(&touched, policies, &mut report.borrow_mut());
    if !report.borrow().ok() {
        return None;
    }

    // The caller's privileges, as the executor will check them, before anything is planned:
    // the planner reads statistics and live index bounds of what it plans, so a query on
    // what the caller may not read must be refused before it gets estimates (an oracle
    // otherwise). Relations and columns at every query level (an ERROR naming the object,
    // reported as PERMISSION_DENIED), then functions.
    // SAFETY: the range table entries collected from the analysed queries.
    unsafe { check_relation_privileges(&touched, report) };
    // SAFETY: reads the current user.
    let user = unsafe { pg_sys::GetUserId() };
    for &oid in &touched.functions {
        // SAFETY: catalog lookup.
        let acl = unsafe { pg_sys::pg_proc_aclcheck(oid.into(), user, pg_sys::ACL_EXECUTE) };
        if acl != pg_sys::AclResult::ACLCHECK_OK {
            let name = catalog::function(oid.into())
                .map(|f| catalog::qualified(&[&f.schema, &f.name]))
                .unwrap_or_else(|| oid.to_string());
            report.borrow_mut().refuse_with(
                Code::PermissionDenied,
                format!("permission denied for function {name}"),
                Facts::restricted(Restricted::Function(name)),
            );
            return None;
        }
    }

    set_stage(Stage::Plan);
    let mut planned = Vec::new();
    let (mut cost, mut rows) = (0.0, 0.0);
    {
        // the cost policy is measured on fixed cost constants, not the caller's session's
        let _fixed = FixedCosts::set();
        for query in queries.iter_ptr() {
            // SAFETY: a checked query (so not a utility statement); the planner may scribble
            // on it, which no longer matters.
            unsafe {
                let stmt = pg_sys::pg_plan_query(
                    query,
                    sql.as_ptr(),
                    pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
                    std::ptr::null_mut(),
                );
                if stmt.is_null() || (*stmt).planTree.is_null() {
                    internal("pg_plan_query");
                }
                cost += plan_cost(stmt);
                rows += (*(*stmt).planTree).plan_rows;
                planned.push(stmt);
            }
        }
    }
    let mut r = report.borrow_mut();
    // Under row-level security the estimates count rows the caller cannot see: withheld.
    let disclose = !touched.row_security;
    if disclose {
        r.estimated_cost = Some(cost);
        r.estimated_rows = Some(rows);
    }
    // Under row-level security the limits are not applied at all: their verdict would be an
    // oracle on the hidden rows (scale a query until it crosses the limit); pg_nlq's
    // statement timeout still bounds such a query.
    if disclose && policies.max_cost > 0.0 && cost > policies.max_cost {
        r.refuse_with(
            Code::CostLimitExceeded,
            format!(
                "the planner estimates a cost of {cost:.0}, above pg_nlq.max_cost ({:.0})",
                policies.max_cost
            ),
            Facts {
                restricted: None,
                limit: Some(Limit::Cost {
                    estimated: cost,
                    max: policies.max_cost,
                }),
            },
        );
    } else if disclose && policies.max_rows_estimate > 0.0 && rows > policies.max_rows_estimate {
        r.refuse_with(
            Code::CostLimitExceeded,
            format!(
                "the planner estimates {rows:.0} rows, above pg_nlq.max_rows_estimate ({:.0})",
                policies.max_rows_estimate
            ),
            Facts {
                restricted: None,
                limit: Some(Limit::Rows {
                    estimated: rows,
                    max: policies.max_rows_estimate,
                }),
            },
        );
    }
    r.ok().then_some(planned)
}

/// The cost the cost policy measures: the highest total cost of any node of the plan, its
/// subplans and init plans included, not only the top node's. A `LIMIT` over a node that must
/// read its whole input first (a sort, a window, an aggregate) makes the planner charge only a
/// fraction of the top node (`SELECT count(*) OVER () FROM a, b, c LIMIT 1` costs 0.025 at the
/// top over a billion-row cross join); the node below it carries the whole. A `LIMIT` over a scan
/// that does stop early is then counted at the full scan: the cautious side.
///
/// # Safety
/// `stmt` must be a valid planned statement.
unsafe fn plan_cost(stmt: *mut pg_sys::PlannedStmt) -> f64 {
    // SAFETY: guaranteed by the caller; every child pointer of a plan is a plan or NULL.
    unsafe {
        let mut highest = 0.0_f64;
        let mut pending: Vec<*mut pg_sys::Plan> = vec![(*stmt).planTree];
        let subplans = PgList::<pg_sys::Plan>::from_pg((*stmt).subplans);
        pending.extend(subplans.iter_ptr());
        let mut seen = 0usize;
        while let Some(plan) = pending.pop() {
            if plan.is_null() {
                continue;
            }
            seen += 1;
            if seen > 1_000_000 {
                break;
            }
            highest = highest.max((*plan).total_cost);
            pending.push((*plan).lefttree);
            pending.push((*plan).righttree);
            let lists: &[*mut pg_sys::List] = match (*plan).type_ {
                pg_sys::NodeTag::T_Append => &[(*plan.cast::<pg_sys::Append>()).appendplans],
                pg_sys::NodeTag::T_MergeAppend => {
                    &[(*plan.cast::<pg_sys::MergeAppend>()).mergeplans]
                }
                pg_sys::NodeTag::T_BitmapAnd => &[(*plan.cast::<pg_sys::BitmapAnd>()).bitmapplans],
                pg_sys::NodeTag::T_BitmapOr => &[(*plan.cast::<pg_sys::BitmapOr>()).bitmapplans],
                pg_sys::NodeTag::T_CustomScan => {
                    &[(*plan.cast::<pg_sys::CustomScan>()).custom_plans]
                }
                pg_sys::NodeTag::T_SubqueryScan => {
                    pending.push((*plan.cast::<pg_sys::SubqueryScan>()).subplan);
                    &[]
                }
                _ => &[],
            };
            for &list in lists {
                pending.extend(PgList::<pg_sys::Plan>::from_pg(list).iter_ptr());
            }
        }
        highest
    }
}

/// `ExecCheckRTPerms` on the relation entries of every level of the analysed queries (view
/// bodies included, with the view owner's `checkAsUser`), as the executor would on the plan.
/// The first entry refused is named in `report` before PostgreSQL raises its own error on it.
///
/// # Safety
/// The entries must be those of the analysed queries, still alive.
unsafe fn check_relation_privileges(touched: &Touched, report: &RefCell<Report>) {
    // the access policy was applied to this tree by describe(); the executor hook applies it
    // again to the plans, where it knows which entries the validator vetted
    let mut all = PgList::<pg_sys::RangeTblEntry>::new();
    for &rte in &touched.relation_entries {
        all.push(rte);
    }
    crate::hooks::privileges_only(|| {
        // SAFETY: a list of valid range table entries.
        if unsafe { pg_sys::ExecCheckRTPerms(all.as_ptr(), false) } {
            return;
        }
        for &rte in &touched.relation_entries {
            let mut one = PgList::<pg_sys::RangeTblEntry>::new();
            one.push(rte);
            // SAFETY: a list of one valid range table entry.
            if unsafe { pg_sys::ExecCheckRTPerms(one.as_ptr(), false) } {
                continue;
            }
            // SAFETY: a valid range table entry.
            let relid = unsafe { (*rte).relid };
            let name = catalog::relation_name(relid)
                .map(|(schema, name)| catalog::qualified(&[&schema, &name]))
                .unwrap_or_else(|| relid.to_u32().to_string());
            report.borrow_mut().facts = Facts::restricted(Restricted::Relation(name));
            // PostgreSQL's own error, with its message
            // SAFETY: as above.
            unsafe { pg_sys::ExecCheckRTPerms(one.as_ptr(), true) };
        }
        // refused as a whole only (a previous hook's verdict)
        // SAFETY: as above.
        unsafe { pg_sys::ExecCheckRTPerms(all.as_ptr(), true) };
    });
}

/// Analysis and rewrite of one raw statement, as the caller: views expanded, row-level
/// security applied.
///
/// # Safety
/// `raw` must be a RawStmt parsed from `sql`.
unsafe fn analyse(raw: *mut pg_sys::RawStmt, sql: &CStr) -> *mut pg_sys::List {
    // SAFETY: guaranteed by the caller.
    unsafe {
        pg_sys::pg_analyze_and_rewrite_fixedparams(
            raw,
            sql.as_ptr(),
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
        )
    }
}

fn internal(context: &'static str) -> ! {
    NlqError::Internal {
        context,
        detail: "returned no plan".into(),
    }
    .raise()
}

/// Names of what was touched, and the policy decisions on them.
///
/// Columns are those the query really reads ([`crate::reads`]): through a view, only the view
/// columns the query uses and what the view's other clauses read. A view's own columns are its
/// `selectedCols` (the rewriter moves the outer query's use of the view there). The relation
/// and column rules are applied with [`derived::Checker`]: ancestors and children,
/// materialized views' definitions, generated columns, partition keys, statistics catalogs.
/// The runtime hook is told which columns each range table entry really reads
/// ([`crate::hooks::vet`]), so it agrees with this verdict on the query's own plan.
fn describe(touched: &Touched, policies: &Policies, report: &mut Report) {
    for (code, message, facts) in &touched.violations {
        report.refuse_with(*code, message.clone(), facts.clone());
    }
    let lists = report.want_lists;
    let access = !policies.access.is_empty();
    let (mut relations, mut columns, mut functions) = (Vec::new(), Vec::new(), Vec::new());
    let mut relation_refusal = None;
    let mut column_refusal = None;
    let mut function_refusal = None;
    let mut checker = derived::Checker::new(&policies.access);
    let mut precise: BTreeMap<u32, BTreeSet<i16>> = BTreeMap::new();
    for (&relid, usage) in &touched.relations {
        if !lists && !access {
            break;
        }
        let Some((schema, name)) = catalog::relation_name(relid.into()) else {
            continue;
        };
        // SAFETY: syscache lookup.
        let relkind = unsafe { pg_sys::get_rel_relkind(relid.into()) } as u8;
        let read = touched.reads.relations.get(&relid);
        // a walk that gave up on a too deep tree falls back to every column named
        let read = read.filter(|_| !touched.reads.incomplete);
        let attnums = match read {
            // a view: the columns used of its expansion (selectedCols of its entry name every
            // column another view's definition names)
            Some(read) if relkind != b'v' || read.expanded => read.attnums.clone(),
            _ => usage.attnums.clone(),
        };
        let inh = usage.inh || read.is_some_and(|r| r.inh);
        if lists {
            relations.push(catalog::qualified(&[&schema, &name]));
            let mut names = Vec::new();
            for &attnum in &attnums {
                if attnum == 0 {
                    names.extend(catalog::all_columns(relid.into()));
                } else if let Some(column) = catalog::attribute_name(relid.into(), attnum) {
                    names.push(column);
                }
            }
            for column in names {
                columns.push(catalog::qualified(&[&schema, &name, &column]));
            }
        }
        if access {
            match checker.refusal(relid.into(), usage.direct, inh, &attnums) {
                Some((r @ Restricted::Column(_), m)) if column_refusal.is_none() => {
                    column_refusal = Some((r, m))
                }
                Some((r, m))
                    if !matches!(r, Restricted::Column(_)) && relation_refusal.is_none() =>
                {
                    relation_refusal = Some((r, m))
                }
                _ => {}
            }
        }
        precise.insert(relid, attnums);
    }
    if access && policies.access.has_column_rules() && !touched.reads.incomplete {
        let entries = touched
            .reads
            .entries
            .iter()
            .filter_map(|e| {
                let attnums = precise.get(&e.relid)?;
                Some((e.clone(), attnums.clone()))
            })
            .collect();
        crate::hooks::vet(entries, &touched.reads.queries);
    }
    let mut seen = Vec::new();
    for &oid in &touched.functions {
        if let Some(f) = catalog::function(oid.into()) {
            seen.push(f);
        }
    }
    for &(name, volatility) in &touched.pseudo_functions {
        seen.push(catalog::Function {
            schema: "pg_catalog".into(),
            name: name.into(),
            builtin: true,
            volatility,
        });
    }
    seen.sort();
    seen.dedup();
    for f in &seen {
        if lists {
            functions.push(catalog::qualified(&[&f.schema, &f.name]));
        }
        if function_refusal.is_none() {
            function_refusal = checker
                .function_refusal(&f.schema, &f.name)
                .or_else(|| {
                    policies.functions.refusal(&FunctionInfo {
                        schema: &f.schema,
                        name: &f.name,
                        builtin: f.builtin,
                        volatility: f.volatility,
                    })
                })
                .map(|m| {
                    let name = catalog::qualified(&[&f.schema, &f.name]);
                    (Restricted::Function(name), m)
                });
        }
    }
    relations.sort();
    relations.dedup();
    columns.sort();
    columns.dedup();
    functions.sort();
    functions.dedup();
    report.relations = relations;
    report.columns = columns;
    report.functions = functions;
    let refusals = [
        (Code::ForbiddenRelation, relation_refusal),
        (Code::ForbiddenColumn, column_refusal),
        (Code::ForbiddenFunction, function_refusal),
    ];
    for (code, refusal) in refusals {
        if let Some((restricted, message)) = refusal {
            report.refuse_with(code, message, Facts::restricted(restricted));
        }
    }
}

impl From<Stage> for Work {
    fn from(stage: Stage) -> Work {
        match stage {
            Stage::Parse => Work::Parse,
            Stage::Analyse | Stage::Plan => Work::Check,
            Stage::Execute => Work::Execute,
        }
    }
}

/// Record an ERROR raised before execution as the refusal it stands for.
pub fn absorb_failure(failure: Failure, stage: Stage, report: &mut Report) {
    let code = failure.code(stage.into());
    let own = failure.own_code().is_some();
    let facts = if own {
        failure.facts()
    } else if code == Code::PermissionDenied {
        // the relation check_relation_privileges() named before PostgreSQL refused it
        std::mem::take(&mut report.facts)
    } else {
        Facts::default()
    };
    let message = if code == Code::StatementTimeout {
        format!(
            "the query took longer than pg_nlq.statement_timeout ({} ms) to {}",
            gucs::STATEMENT_TIMEOUT.get(),
            if stage == Stage::Execute {
                "run"
            } else {
                "analyse and plan"
            }
        )
    } else {
        failure.message
    };
    report.code = Code::Ok;
    report.refuse_with(code, message, facts);
    if stage <= Stage::Analyse {
        report.position = failure.position;
    }
    if !own {
        report.sqlstate = Some(failure.sqlstate);
        report.detail = failure.detail;
        report.hint = failure.hint;
    }
}

/// Validate `sql` (in the server encoding) completely: the whole of `nlq_validate()`.
pub fn validate(sql: &SqlText) -> Report {
    let policies = match Policies::current() {
        Ok(p) => p,
        Err(e) => {
            let mut report = Report::default();
            report.refuse(Code::PolicyError, e);
            return report;
        }
    };
    let Some(sql) = sql.to_cstring() else {
        let mut report = Report::default();
        report.refuse(Code::SyntaxError, "the query contains a NUL character");
        return report;
    };
    let report = RefCell::new(Report {
        want_lists: true,
        ..Report::default()
    });
    let outcome = sandbox::run(&policies, &limits(), || {
        // SAFETY: inside the sandbox.
        unsafe { prepare(&sql, &policies, Mode::Checked, &report) };
    });
    let mut report = report.into_inner();
    if let Err(failure) = outcome {
        absorb_failure(failure, stage(), &mut report);
    }
    // functions the call hook refused before the walk could see them (a domain's CHECK run
    // by an input function while the query was analysed)
    for name in crate::call_hook::refused() {
        if !report.functions.contains(&name) {
            report.functions.push(name);
        }
    }
    report.functions.sort();
    report
}

/// Check that `sql` is exactly one read-only query that the `pg_nlq.*` policies allow, without
/// running it. Never raises for a bad query: the verdict is data. Returns
/// `{"ok", "code", "message", "position"?, "relations", "columns", "functions",
/// "estimated_cost", "estimated_rows"}` where the lists name, schema-qualified, what the query
/// really reads after view expansion, and the estimates are the planner's.
///
/// ```sql
/// SELECT nlq_validate('SELECT count(*) FROM orders WHERE placed_at > now() - interval ''7d''');
/// ```
#[pg_extern(stable, parallel_unsafe)]
fn nlq_validate(sql: Option<SqlText>) -> JsonbDatum {
    crate::error::entry(|| {
        let report = match sql {
            Some(sql) => validate(&sql),
            None => {
                let mut report = Report::default();
                report.refuse(Code::Empty, "the query is NULL");
                report
            }
        };
        encoding::jsonb(&report.to_json())
    })
}
