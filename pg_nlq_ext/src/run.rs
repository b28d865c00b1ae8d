//! `nlq_run(sql, row_limit)`: validate, then execute the very plan that was checked, with every
//! layer of defence at once:
//!
//! - the sandbox ([`crate::sandbox`]): an internal subtransaction that is always rolled back,
//!   `transaction_read_only` inside it, pg_nlq's statement and lock timeouts, the runtime
//!   access-policy hook ([`crate::hooks`]) on every plan the executor starts;
//! - the executor runs the very plans the validator checked ([`validate::prepare`]): nothing is
//!   parsed, analysed or planned again, so no plan cache can re-analyse the text in between;
//! - the check SPI's read-only mode makes (`CommandIsReadOnly` on each planned statement,
//!   refusing anything but a plain SELECT without row locks or data-modifying CTEs), made here
//!   on the plans themselves, with the caller's snapshot as SPI's read-only mode uses it (pgrx's
//!   `Spi` wrappers would pass `read_only = false` once the transaction has an XID);
//! - the caller's own privileges (no `SECURITY DEFINER` anywhere in pg_nlq);
//! - a DestReceiver ([`crate::result`]) that adds each row to the jsonb result as the executor
//!   produces it and stops the executor at the row cap or the byte cap, so a large result is
//!   never materialised.

use std::cell::RefCell;
use std::ffi::CStr;
use std::time::Instant;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::codes::{Code, Report};
use crate::encoding::SqlText;
use crate::error::NlqError;
use crate::gucs;
use crate::jsonb::JsonbDatum;
use crate::result::{Collector, JsonDest, Truncation};
use crate::sandbox::{self, Failure, Work};
use crate::validate::{self, Mode, Policies, Stage};

/// Execute the checked plans into `collector`, read-only.
///
/// # Safety
/// `plans` must come from [`validate::prepare`] for `sql`, inside the same sandbox.
unsafe fn execute(sql: &CStr, plans: &[*mut pg_sys::PlannedStmt], collector: &mut Collector) {
    let mut dest = JsonDest::new(collector);
    for &stmt in plans {
        // SAFETY: guaranteed by the caller; `dest` outlives the execution; snapshots and the
        // query descriptor are released here, or by the sandbox's rollback on error.
        unsafe {
            // what SPI's read-only mode checks: a plain SELECT, no row locks, no writable CTE
            if !pg_sys::CommandIsReadOnly(stmt) {
                let tag = CStr::from_ptr(pg_sys::GetCommandTagName(pg_sys::CreateCommandTag(
                    stmt.cast(),
                )))
                .to_string_lossy()
                .into_owned();
                NlqError::Refused {
                    code: Code::NotAQuery,
                    message: format!(
                        "{tag} is not allowed: nlq_run executes read-only queries only"
                    ),
                    sqlstate: PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
                    detail: None,
                    hint: None,
                }
                .raise();
            }
            // the caller's snapshot, seeing what its transaction did so far
            if pg_sys::ActiveSnapshotSet() {
                pg_sys::PushCopiedSnapshot(pg_sys::GetActiveSnapshot());
            } else {
                pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
            }
            pg_sys::UpdateActiveSnapshotCommandId();
            let query = pg_sys::CreateQueryDesc(
                stmt,
                sql.as_ptr(),
                pg_sys::GetActiveSnapshot(),
                std::ptr::null_mut(),
                dest.receiver(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            );
            pg_sys::ExecutorStart(query, 0);
            pg_sys::ExecutorRun(query, pg_sys::ScanDirection::ForwardScanDirection, 0, true);
            pg_sys::ExecutorFinish(query);
            pg_sys::ExecutorEnd(query);
            pg_sys::FreeQueryDesc(query);
            pg_sys::PopActiveSnapshot();
        }
    }
}

/// Validate (unless `mode` says otherwise) and run `sql`, returning at most `row_limit` rows
/// (bounded by `pg_nlq.max_rows`), as a jsonb datum in the caller's memory context. A refusal
/// or failure is an [`NlqError::Refused`]; a `row_limit` below 1 is INVALID_ARGUMENT.
pub fn run(sql: &SqlText, row_limit: i32, mode: Mode) -> Result<pg_sys::Datum, NlqError> {
    let started = Instant::now();
    if row_limit < 1 {
        return Err(NlqError::InvalidArgument {
            argument: "row_limit",
            message: format!("row_limit must be at least 1 (got {row_limit})"),
        });
    }
    let policies = Policies::current().map_err(|e| refused(Code::PolicyError, e, None))?;
    let Some(sql) = sql.to_cstring() else {
        return Err(refused(
            Code::SyntaxError,
            "the query contains a NUL character".into(),
            None,
        ));
    };
    let max_rows = gucs::MAX_ROWS.get().max(0);
    let (max_rows, row_reason) = if row_limit <= max_rows {
        (row_limit, Truncation::RowLimit)
    } else {
        (max_rows, Truncation::MaxRows)
    };
    let max_bytes = usize::try_from(gucs::MAX_RESULT_BYTES.get()).unwrap_or(0);
    let report = RefCell::new(Report::default());
    let collector = RefCell::new(Collector::new(
        u64::try_from(max_rows).unwrap_or(0),
        row_reason,
        max_bytes,
    ));
    let outcome = sandbox::run(&policies, &validate::limits(), || {
        // SAFETY: inside the sandbox, with the plans prepare made there.
        unsafe {
            if let Some(plans) = validate::prepare(&sql, &policies, mode, &report) {
                validate::set_stage(Stage::Execute);
                execute(&sql, &plans, &mut collector.borrow_mut());
            }
        }
    });
    let mut report = report.into_inner();
    match outcome {
        Err(failure) if validate::stage() == Stage::Execute => Err(execution_error(failure)),
        Err(failure) => {
            validate::absorb_failure(failure, validate::stage(), &mut report);
            Err(refusal(report))
        }
        Ok(()) if !report.ok() => Err(refusal(report)),
        Ok(()) => Ok(collector
            .into_inner()
            .finish(started.elapsed().as_secs_f64() * 1000.0)),
    }
}

fn refused(code: Code, message: String, detail: Option<String>) -> NlqError {
    NlqError::Refused {
        code,
        message,
        sqlstate: code.sqlstate(None),
        detail,
        hint: None,
    }
}

/// The ERROR for a refusal: its code and, after it in the DETAIL, where it is (`at character
/// N`) and PostgreSQL's own detail; or, for a refusal that names an object or a limit, a JSON
/// object with the keys nlq_validate() reports for it (`position` and `detail` included).
fn refusal(report: Report) -> NlqError {
    let detail = if report.facts.is_empty() {
        match (report.position, report.detail) {
            (Some(p), Some(d)) => Some(format!("at character {p}: {d}")),
            (Some(p), None) => Some(format!("at character {p}")),
            (None, detail) => detail,
        }
    } else {
        let mut map = serde_json::Map::new();
        report.facts.insert_into(&mut map);
        if let Some(p) = report.position {
            map.insert("position".into(), p.into());
        }
        if let Some(d) = report.detail {
            map.insert("detail".into(), d.into());
        }
        Some(serde_json::Value::Object(map).to_string())
    };
    NlqError::Refused {
        code: report.code,
        message: report.message,
        sqlstate: report.code.sqlstate(report.sqlstate),
        detail,
        hint: report.hint,
    }
}

fn execution_error(failure: Failure) -> NlqError {
    let code = failure.code(Work::Execute);
    if failure.own_code().is_some() {
        // pg_nlq's own refusals from the runtime hooks keep their code and what they name
        let detail = failure.own_detail();
        return NlqError::Refused {
            code,
            message: failure.message,
            sqlstate: failure.sqlstate,
            detail,
            hint: failure.hint,
        };
    }
    if code == Code::StatementTimeout {
        return NlqError::Refused {
            code,
            message: format!(
                "the query ran longer than pg_nlq.statement_timeout ({} ms) and was cancelled",
                gucs::STATEMENT_TIMEOUT.get()
            ),
            sqlstate: failure.sqlstate,
            detail: None,
            hint: None,
        };
    }
    NlqError::Refused {
        code,
        message: failure.message,
        sqlstate: code.sqlstate(Some(failure.sqlstate)),
        detail: failure.detail,
        hint: failure.hint,
    }
}

/// Run one read-only query and return its rows as jsonb, after validating it exactly as
/// `nlq_validate()` does. Returns `{"columns": [{"name", "type"}], "rows": [[...]],
/// "row_count", "truncated", "truncated_reason", "truncated_limit", "elapsed_ms"}`; values are JSON numbers,
/// booleans, embedded json/jsonb, or PostgreSQL's text form. At most `row_limit` rows
/// (bounded by `pg_nlq.max_rows`) and `pg_nlq.max_result_bytes` bytes of rows are returned.
/// A refused or failing query raises an ERROR whose DETAIL starts with the code
/// (`FORBIDDEN_FUNCTION`, `STATEMENT_TIMEOUT`, `EXECUTION_ERROR`...). Whatever happens, the
/// caller's transaction is left as it was.
///
/// ```sql
/// SELECT nlq_run('SELECT status, count(*) FROM orders GROUP BY status', 50);
/// ```
#[pg_extern(volatile, parallel_unsafe)]
fn nlq_run(sql: Option<SqlText>, row_limit: default!(Option<i32>, 100)) -> JsonbDatum {
    crate::error::entry(|| {
        let Some(sql) = sql else {
            NlqError::NullArgument("sql").raise()
        };
        let Some(row_limit) = row_limit else {
            NlqError::NullArgument("row_limit").raise()
        };
        match run(&sql, row_limit, Mode::Checked) {
            Ok(datum) => JsonbDatum(datum),
            Err(e) => e.raise(),
        }
    })
}

/// Test builds only: `nlq_run` with the validator switched off, to prove that the runtime
/// layers (read-only subtransaction, the read-only plan check, timeouts, caps, the policy
/// hook) hold on their own.
#[cfg(any(test, feature = "pg_test"))]
#[pg_extern(volatile, parallel_unsafe)]
fn _nlq_run_unchecked(sql: &str, row_limit: default!(i32, 100)) -> JsonbDatum {
    match run(
        &SqlText(sql.as_bytes().to_vec()),
        row_limit,
        Mode::Unchecked,
    ) {
        Ok(datum) => JsonbDatum(datum),
        Err(e) => e.raise(),
    }
}
