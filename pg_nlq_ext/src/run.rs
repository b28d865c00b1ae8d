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
//! - a DestReceiver that adds each row to the jsonb result as the executor produces it and
//!   stops the executor (returns `false`) at the row cap or the byte cap, so a large result is
//!   never materialised.
//!
//! The result is built directly as a jsonb value tree (`pushJsonbValue`), never as JSON text to
//! be parsed again, in a memory context of the caller that outlives the rolled-back
//! subtransaction; values are written by type: integers and numerics as JSON numbers from
//! their datums, booleans, json and jsonb embedded, everything else as PostgreSQL's text form.
//! The byte cap is measured on the size of the equivalent JSON text.

use std::cell::RefCell;
use std::ffi::{c_int, CStr, CString};
use std::time::Instant;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::encoding::SqlText;
use crate::error::NlqError;
use crate::gucs;
use crate::jsonb::JsonbDatum;
use crate::policy::is_json_number;
use crate::sandbox::{self, Failure};
use crate::validate::{self, Code, Mode, Policies, Report, Stage};

/// How a column's values are written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// smallint, integer, bigint (by value): a JSON number
    Int(u8),
    /// numeric: a JSON number (NaN and infinities as strings)
    Numeric,
    /// real, double precision: a JSON number (NaN and infinities as strings)
    Float,
    Bool,
    Json,
    Jsonb,
    /// everything else: PostgreSQL's text form as a JSON string
    Text,
}

fn kind_of(type_oid: pg_sys::Oid) -> Kind {
    // SAFETY: catalog lookup; a domain is classified by its base type.
    let base = unsafe { pg_sys::getBaseType(type_oid) };
    match base {
        pg_sys::INT2OID => Kind::Int(2),
        pg_sys::INT4OID => Kind::Int(4),
        pg_sys::INT8OID => Kind::Int(8),
        pg_sys::NUMERICOID => Kind::Numeric,
        pg_sys::FLOAT4OID | pg_sys::FLOAT8OID => Kind::Float,
        pg_sys::BOOLOID => Kind::Bool,
        pg_sys::JSONOID => Kind::Json,
        pg_sys::JSONBOID => Kind::Jsonb,
        _ => Kind::Text,
    }
}

/// Why the rows stopped before the end of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncation {
    /// the `row_limit` argument
    RowLimit,
    /// `pg_nlq.max_rows`, lower than `row_limit`
    MaxRows,
    /// `pg_nlq.max_result_bytes`
    MaxResultBytes,
}

impl Truncation {
    pub fn as_str(self) -> &'static str {
        match self {
            Truncation::RowLimit => "row_limit",
            Truncation::MaxRows => "max_rows",
            Truncation::MaxResultBytes => "max_result_bytes",
        }
    }
}

/// Length of `text` written as a JSON string literal.
fn json_string_len(text: &[u8]) -> usize {
    text.iter()
        .map(|&b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
        + 2
}

/// Number of characters of an integer's decimal form.
fn int_len(v: i64) -> usize {
    let mut n = usize::from(v < 0) + 1;
    let mut rest = v.unsigned_abs() / 10;
    while rest > 0 {
        n += 1;
        rest /= 10;
    }
    n
}

fn jsonb_null() -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvNull,
        val: pg_sys::JsonbValue__bindgen_ty_1 { boolean: false },
    }
}

fn jsonb_bool(b: bool) -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvBool,
        val: pg_sys::JsonbValue__bindgen_ty_1 { boolean: b },
    }
}

fn jsonb_numeric(n: pg_sys::Numeric) -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvNumeric,
        val: pg_sys::JsonbValue__bindgen_ty_1 { numeric: n },
    }
}

/// A string value pointing at `len` bytes that must outlive the jsonb's construction.
fn jsonb_string(ptr: *const std::ffi::c_char, len: usize) -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvString,
        val: pg_sys::JsonbValue__bindgen_ty_1 {
            string: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
                len: i32::try_from(len).unwrap_or(i32::MAX),
                val: ptr.cast_mut(),
            },
        },
    }
}

/// A jsonb datum's content, spliced in when pushed.
///
/// # Safety
/// `jsonb` must be a detoasted jsonb that outlives the jsonb's construction.
unsafe fn jsonb_binary(jsonb: *mut pg_sys::Jsonb) -> pg_sys::JsonbValue {
    // SAFETY: guaranteed by the caller.
    let len = unsafe { pgrx::varsize_any_exhdr(jsonb.cast()) };
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvBinary,
        val: pg_sys::JsonbValue__bindgen_ty_1 {
            binary: pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_4 {
                len: i32::try_from(len).unwrap_or(i32::MAX),
                // SAFETY: the container follows the varlena header.
                data: unsafe { std::ptr::addr_of_mut!((*jsonb).root) },
            },
        },
    }
}

/// The result document under construction: `{"rows": [...` is open in `state`; the rest is
/// added by `finish`. Everything lives in `context`, a child of the caller's memory context
/// (not of the sandbox), deleted when the collector is dropped.
pub struct Collector {
    max_rows: u64,
    row_reason: Truncation,
    max_bytes: usize,
    /// name and type of each column, in the server encoding
    pub columns: Vec<(Vec<u8>, Vec<u8>)>,
    kinds: Vec<Kind>,
    output: Vec<pg_sys::FmgrInfo>,
    pub row_count: u64,
    pub truncated: Option<Truncation>,
    /// size of the rows written as JSON text, commas included
    pub bytes: usize,
    context: pg_sys::MemoryContext,
    scratch: pg_sys::MemoryContext,
    state: *mut pg_sys::JsonbParseState,
    values: Vec<pg_sys::JsonbValue>,
}

impl Collector {
    pub fn new(max_rows: u64, row_reason: Truncation, max_bytes: usize) -> Collector {
        // SAFETY: a new context under the caller's; the document is opened in it.
        unsafe {
            let context = pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"pg_nlq result".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            let scratch = pg_sys::AllocSetContextCreateInternal(
                context,
                c"pg_nlq row output".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            let mut c = Collector {
                max_rows,
                row_reason,
                max_bytes,
                columns: Vec::new(),
                kinds: Vec::new(),
                output: Vec::new(),
                row_count: 0,
                truncated: None,
                bytes: 0,
                context,
                scratch,
                state: std::ptr::null_mut(),
                values: Vec::new(),
            };
            let previous = pg_sys::MemoryContextSwitchTo(context);
            c.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, None);
            c.key(b"rows");
            c.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY, None);
            pg_sys::MemoryContextSwitchTo(previous);
            c
        }
    }

    /// # Safety
    /// Must run in `self.context`.
    unsafe fn push(
        &mut self,
        token: pg_sys::JsonbIteratorToken::Type,
        value: Option<&mut pg_sys::JsonbValue>,
    ) -> *mut pg_sys::JsonbValue {
        let value = value.map_or(std::ptr::null_mut(), |v| v as *mut pg_sys::JsonbValue);
        // SAFETY: a valid parse state (or NULL at the start) and value.
        unsafe { pg_sys::pushJsonbValue(&mut self.state, token, value) }
    }

    /// # Safety
    /// Must run in `self.context`; `name` must outlive the document's construction.
    unsafe fn key(&mut self, name: &[u8]) {
        let mut k = jsonb_string(name.as_ptr().cast(), name.len());
        // SAFETY: guaranteed by the caller.
        unsafe { self.push(pg_sys::JsonbIteratorToken::WJB_KEY, Some(&mut k)) };
    }

    /// # Safety
    /// `desc` must be a valid tuple descriptor.
    unsafe fn startup(&mut self, desc: pg_sys::TupleDesc) {
        // SAFETY: guaranteed by the caller; FmgrInfo memory goes in our context.
        unsafe {
            let natts = usize::try_from((*desc).natts).unwrap_or(0);
            let attrs = (*desc).attrs.as_slice(natts);
            self.columns.clear();
            self.kinds.clear();
            self.output.clear();
            for attr in attrs {
                let name = crate::encoding::valid_utf8_in_sql_ascii(
                    CStr::from_ptr(attr.attname.data.as_ptr()).to_bytes(),
                )
                .to_vec();
                let type_name = CStr::from_ptr(pg_sys::format_type_be(attr.atttypid))
                    .to_bytes()
                    .to_vec();
                self.columns.push((name, type_name));
                self.kinds.push(kind_of(attr.atttypid));
                let (mut func, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeOutputInfo(attr.atttypid, &mut func, &mut varlena);
                let mut info = pg_sys::FmgrInfo::default();
                pg_sys::fmgr_info_cxt(func, &mut info, self.context);
                self.output.push(info);
            }
        }
    }

    /// The text form of column `i`'s value, allocated in the current memory context.
    ///
    /// # Safety
    /// `value` must be a non-null datum of column `i`'s type.
    unsafe fn text(&mut self, i: usize, value: pg_sys::Datum) -> &'static [u8] {
        // SAFETY: guaranteed by the caller; the text lives until its context is reset.
        let info = &mut self.output[i];
        let text = crate::call_hook::exempt(|| unsafe {
            CStr::from_ptr(pg_sys::OutputFunctionCall(info, value)).to_bytes()
        });
        // SAFETY: the copy is palloc'd in the current context, like the text it replaces.
        unsafe { crate::encoding::valid_utf8_in_sql_ascii(text) }
    }

    /// Whether the executor should send another row.
    ///
    /// # Safety
    /// `slot` must be a valid slot of the descriptor passed to `startup`.
    unsafe fn receive(&mut self, slot: *mut pg_sys::TupleTableSlot) -> bool {
        if self.truncated.is_some() {
            return false;
        }
        if self.row_count >= self.max_rows {
            self.truncated = Some(self.row_reason);
            return false;
        }
        // SAFETY: guaranteed by the caller. Values that end up in the document are allocated
        // in our context; what only measures or converts, in the scratch context, reset
        // after each row.
        unsafe {
            pg_sys::slot_getallattrs(slot);
            let natts = usize::try_from((*slot).tts_nvalid)
                .unwrap_or(0)
                .min(self.kinds.len());
            let values = std::slice::from_raw_parts((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
            let previous = pg_sys::MemoryContextSwitchTo(self.context);
            let mut size = 2 + natts.saturating_sub(1);
            let mut row = std::mem::take(&mut self.values);
            row.clear();
            for i in 0..natts {
                let datum = values[i];
                let value = if nulls[i] {
                    size += 4;
                    jsonb_null()
                } else {
                    match self.kinds[i] {
                        Kind::Bool => {
                            let b = datum.value() != 0;
                            size += if b { 4 } else { 5 };
                            jsonb_bool(b)
                        }
                        Kind::Int(width) => {
                            let v = match width {
                                2 => i64::from(datum.value() as i16),
                                4 => i64::from(datum.value() as i32),
                                _ => datum.value() as i64,
                            };
                            size += int_len(v);
                            jsonb_numeric(pg_sys::int64_to_numeric(v))
                        }
                        Kind::Numeric | Kind::Float => {
                            pg_sys::MemoryContextSwitchTo(self.scratch);
                            let text = self.text(i, datum);
                            pg_sys::MemoryContextSwitchTo(self.context);
                            if !is_json_number(text) {
                                size += json_string_len(text);
                                let copy = pg_sys::pnstrdup(text.as_ptr().cast(), text.len());
                                jsonb_string(copy, text.len())
                            } else {
                                size += text.len();
                                let n = if self.kinds[i] == Kind::Numeric {
                                    pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr())
                                        .cast::<pg_sys::NumericData>()
                                } else {
                                    numeric_from_text(text.as_ptr().cast())
                                };
                                jsonb_numeric(n)
                            }
                        }
                        Kind::Jsonb => {
                            let copy = pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr())
                                .cast::<pg_sys::Jsonb>();
                            size += pgrx::varsize_any_exhdr(copy.cast());
                            jsonb_binary(copy)
                        }
                        Kind::Json => {
                            let text = self.text(i, datum);
                            size += text.len();
                            // jsonb cannot hold \u0000, which json text may
                            if contains(text, b"\\u0000") {
                                jsonb_string(text.as_ptr().cast(), text.len())
                            } else {
                                let jsonb = pgrx::direct_function_call_as_datum(
                                    pg_sys::jsonb_in,
                                    &[Some(pg_sys::Datum::from(text.as_ptr()))],
                                )
                                .unwrap_or(pg_sys::Datum::null());
                                jsonb_binary(jsonb.cast_mut_ptr())
                            }
                        }
                        Kind::Text => {
                            let text = self.text(i, datum);
                            size += json_string_len(text);
                            jsonb_string(text.as_ptr().cast(), text.len())
                        }
                    }
                };
                row.push(value);
            }
            let separator = usize::from(self.row_count > 0);
            let fits = self.bytes + separator + size <= self.max_bytes;
            if fits {
                self.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY, None);
                for value in row.iter_mut() {
                    self.push(pg_sys::JsonbIteratorToken::WJB_ELEM, Some(value));
                }
                self.push(pg_sys::JsonbIteratorToken::WJB_END_ARRAY, None);
                self.bytes += separator + size;
                self.row_count += 1;
            } else {
                self.truncated = Some(Truncation::MaxResultBytes);
            }
            self.values = row;
            pg_sys::MemoryContextSwitchTo(previous);
            pg_sys::MemoryContextReset(self.scratch);
            fits
        }
    }

    /// Close the document and return it as a jsonb datum in the current memory context.
    pub fn finish(&mut self, elapsed_ms: f64) -> pg_sys::Datum {
        // SAFETY: the parse state was opened in `new` and is closed here, in our context; the
        // keys and names are Rust memory alive until JsonbValueToJsonb has copied them.
        unsafe {
            let caller = pg_sys::MemoryContextSwitchTo(self.context);
            self.push(pg_sys::JsonbIteratorToken::WJB_END_ARRAY, None);
            self.key(b"columns");
            self.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY, None);
            let columns = std::mem::take(&mut self.columns);
            for (name, type_name) in &columns {
                self.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, None);
                self.key(b"name");
                let mut v = jsonb_string(name.as_ptr().cast(), name.len());
                self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
                self.key(b"type");
                let mut v = jsonb_string(type_name.as_ptr().cast(), type_name.len());
                self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
                self.push(pg_sys::JsonbIteratorToken::WJB_END_OBJECT, None);
            }
            self.push(pg_sys::JsonbIteratorToken::WJB_END_ARRAY, None);
            self.key(b"row_count");
            let mut v = jsonb_numeric(pg_sys::int64_to_numeric(
                i64::try_from(self.row_count).unwrap_or(i64::MAX),
            ));
            self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
            self.key(b"truncated");
            let mut v = jsonb_bool(self.truncated.is_some());
            self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
            self.key(b"truncated_reason");
            let reason = self.truncated.map(Truncation::as_str);
            let mut v = match reason {
                Some(r) => jsonb_string(r.as_ptr().cast(), r.len()),
                None => jsonb_null(),
            };
            self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
            self.key(b"elapsed_ms");
            let ms = CString::new(format!("{elapsed_ms:.3}")).unwrap_or_default();
            let mut v = jsonb_numeric(numeric_from_text(ms.as_ptr()));
            self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(&mut v));
            let doc = self.push(pg_sys::JsonbIteratorToken::WJB_END_OBJECT, None);
            pg_sys::MemoryContextSwitchTo(caller);
            let jsonb = pg_sys::JsonbValueToJsonb(doc);
            self.columns = columns;
            pg_sys::Datum::from(jsonb)
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // SAFETY: our own context; nothing points into it once the document is finished.
        unsafe { pg_sys::MemoryContextDelete(self.context) };
    }
}

/// `numeric_in` of a C string, in the current memory context.
///
/// # Safety
/// `text` must be a valid C string holding a number.
unsafe fn numeric_from_text(text: *const std::ffi::c_char) -> pg_sys::Numeric {
    // SAFETY: guaranteed by the caller; numeric_in raises an ERROR on bad input.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[
                Some(pg_sys::Datum::from(text)),
                Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                Some(pg_sys::Datum::from(-1_i32)),
            ],
        )
        .unwrap_or(pg_sys::Datum::null())
        .cast_mut_ptr()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The DestReceiver handed to the executor: PostgreSQL's struct first, then our state.
#[repr(C)]
struct JsonDest {
    base: pg_sys::DestReceiver,
    collector: *mut Collector,
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_startup(
    dest: *mut pg_sys::DestReceiver,
    _operation: c_int,
    desc: pg_sys::TupleDesc,
) {
    // SAFETY: dest is our JsonDest, alive for the whole execution.
    unsafe { (*(*dest.cast::<JsonDest>()).collector).startup(desc) }
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_receive(
    slot: *mut pg_sys::TupleTableSlot,
    dest: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: as in dest_startup.
    unsafe { (*(*dest.cast::<JsonDest>()).collector).receive(slot) }
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_nothing(_dest: *mut pg_sys::DestReceiver) {}

/// Execute the checked plans into `collector`, read-only.
///
/// # Safety
/// `plans` must come from [`validate::prepare`] for `sql`, inside the same sandbox.
unsafe fn execute(sql: &CStr, plans: &[*mut pg_sys::PlannedStmt], collector: &mut Collector) {
    let mut dest = JsonDest {
        base: pg_sys::DestReceiver {
            receiveSlot: Some(dest_receive),
            rStartup: Some(dest_startup),
            rShutdown: Some(dest_nothing),
            rDestroy: Some(dest_nothing),
            mydest: pg_sys::CommandDest::DestTuplestore,
        },
        collector,
    };
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
                &mut dest.base,
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

/// A successful run: the result document, as a jsonb datum in the caller's memory context.
pub struct Output {
    pub datum: pg_sys::Datum,
    pub row_count: u64,
    pub truncated: Option<Truncation>,
}

/// Validate (unless `mode` says otherwise) and run `sql`, returning at most `row_limit` rows
/// (bounded by `pg_nlq.max_rows`). A refusal or failure is an [`NlqError::Refused`].
pub fn run(sql: &SqlText, row_limit: i32, mode: Mode) -> Result<Output, NlqError> {
    let started = Instant::now();
    if row_limit < 0 {
        return Err(NlqError::InvalidArgument(format!(
            "row_limit must not be negative (got {row_limit})"
        )));
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
        Ok(()) => {
            let mut collector = collector.into_inner();
            let datum = collector.finish(started.elapsed().as_secs_f64() * 1000.0);
            Ok(Output {
                datum,
                row_count: collector.row_count,
                truncated: collector.truncated,
            })
        }
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

fn refusal(report: Report) -> NlqError {
    let mut detail = report.detail;
    if let Some(p) = report.position {
        detail = Some(match detail {
            Some(d) => format!("at character {p}: {d}"),
            None => format!("at character {p}"),
        });
    }
    NlqError::Refused {
        code: report.code,
        message: report.message,
        sqlstate: report.code.sqlstate(report.sqlstate),
        detail,
        hint: report.hint,
    }
}

fn execution_error(failure: Failure) -> NlqError {
    // pg_nlq's own refusals from the runtime hook keep their code
    let own = failure.detail.as_deref().and_then(Code::from_detail);
    if let Some(code) = own {
        return NlqError::Refused {
            code,
            message: failure.message,
            sqlstate: failure.sqlstate,
            detail: None,
            hint: failure.hint,
        };
    }
    if failure.our_timeout {
        return NlqError::Refused {
            code: Code::StatementTimeout,
            message: format!(
                "the query ran longer than pg_nlq.statement_timeout ({} ms) and was cancelled",
                gucs::STATEMENT_TIMEOUT.get()
            ),
            sqlstate: failure.sqlstate,
            detail: None,
            hint: None,
        };
    }
    let code = match failure.sqlstate {
        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE => Code::LockTimeout,
        PgSqlErrorCode::ERRCODE_STATEMENT_TOO_COMPLEX => Code::TooComplex,
        _ => Code::ExecutionError,
    };
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
/// "row_count", "truncated", "truncated_reason", "elapsed_ms"}`; values are JSON numbers,
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
            Ok(output) => JsonbDatum(output.datum),
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
        Ok(output) => JsonbDatum(output.datum),
        Err(e) => e.raise(),
    }
}

#[cfg(test)]
mod unit {
    use super::{int_len, json_string_len};

    #[test]
    fn json_text_sizes() {
        for v in [0_i64, 7, -7, 10, 99, -100, 123_456, i64::MAX, i64::MIN] {
            assert_eq!(int_len(v), v.to_string().len(), "{v}");
        }
        for s in ["", "abc", "a\"b", "tab\there", "\u{1}", "é"] {
            let mut text = String::new();
            crate::policy::push_json_string(&mut text, s);
            assert_eq!(json_string_len(s.as_bytes()), text.len(), "{s:?}");
        }
    }
}
