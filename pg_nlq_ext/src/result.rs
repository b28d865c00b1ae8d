//! The result document of `nlq_run()`, built as the executor produces rows.
//!
//! [`Collector`] builds the document directly as a jsonb value tree (`pushJsonbValue`), never
//! as JSON text to be parsed again, in a memory context of the caller that outlives the
//! rolled-back subtransaction; values are written by type: integers and numerics as JSON
//! numbers from their datums, booleans, json and jsonb embedded, everything else as
//! PostgreSQL's text form. [`JsonDest`] is the DestReceiver handed to the executor: it adds
//! each row to the collector and stops the executor (returns `false`) at the row cap or the
//! byte cap, so a large result is never materialised. The byte cap is measured on the size of
//! the equivalent JSON text.

use std::ffi::{c_int, CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

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

    /// The value of the cap that cut the rows: rows for `row_limit` and `max_rows`, bytes for
    /// `max_result_bytes`; `None` when nothing was cut.
    pub fn truncated_limit(&self) -> Option<u64> {
        match self.truncated? {
            Truncation::RowLimit | Truncation::MaxRows => Some(self.max_rows),
            Truncation::MaxResultBytes => u64::try_from(self.max_bytes).ok(),
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
            self.key(b"truncated_limit");
            let mut v = match self.truncated_limit() {
                Some(limit) => jsonb_numeric(pg_sys::int64_to_numeric(
                    i64::try_from(limit).unwrap_or(i64::MAX),
                )),
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
pub struct JsonDest<'a> {
    base: pg_sys::DestReceiver,
    collector: *mut Collector,
    _collector: std::marker::PhantomData<&'a mut Collector>,
}

impl<'a> JsonDest<'a> {
    /// A receiver that adds every row the executor sends to `collector`.
    pub fn new(collector: &'a mut Collector) -> JsonDest<'a> {
        JsonDest {
            base: pg_sys::DestReceiver {
                receiveSlot: Some(dest_receive),
                rStartup: Some(dest_startup),
                rShutdown: Some(dest_nothing),
                rDestroy: Some(dest_nothing),
                mydest: pg_sys::CommandDest::DestTuplestore,
            },
            collector,
            _collector: std::marker::PhantomData,
        }
    }

    /// The receiver to hand to the executor; valid while `self` is.
    pub fn receiver(&mut self) -> *mut pg_sys::DestReceiver {
        &mut self.base
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_startup(
    dest: *mut pg_sys::DestReceiver,
    _operation: c_int,
    desc: pg_sys::TupleDesc,
) {
    // SAFETY: dest is our JsonDest, alive for the whole execution.
    unsafe { (*(*dest.cast::<JsonDest<'_>>()).collector).startup(desc) }
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_receive(
    slot: *mut pg_sys::TupleTableSlot,
    dest: *mut pg_sys::DestReceiver,
) -> bool {
    // SAFETY: as in dest_startup.
    unsafe { (*(*dest.cast::<JsonDest<'_>>()).collector).receive(slot) }
}

#[pg_guard]
unsafe extern "C-unwind" fn dest_nothing(_dest: *mut pg_sys::DestReceiver) {}

/// Whether PostgreSQL's text form of a numeric value is also a valid JSON number (it is not for
/// `NaN`, `Infinity` and `-Infinity`, which are then written as strings).
pub fn is_json_number(text: &[u8]) -> bool {
    let t = text.strip_prefix(b"-").unwrap_or(text);
    let (mantissa, exponent) = match t.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&t[..at], Some(&t[at + 1..])),
        None => (t, None),
    };
    let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], Some(&mantissa[at + 1..])),
        None => (mantissa, None),
    };
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && (int == b"0" || !int.starts_with(b"0"));
    let frac_ok = frac.is_none_or(digits);
    let exp_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"+")
            .or_else(|| e.strip_prefix(b"-"))
            .unwrap_or(e);
        digits(e)
    });
    int_ok && frac_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::{int_len, is_json_number, json_string_len};

    #[test]
    fn json_text_sizes() {
        for v in [0_i64, 7, -7, 10, 99, -100, 123_456, i64::MAX, i64::MIN] {
            assert_eq!(int_len(v), v.to_string().len(), "{v}");
        }
        for s in ["", "abc", "a\"b", "tab\there", "\u{1}", "é", "a\\b\r\n"] {
            let text = serde_json::Value::from(s).to_string();
            assert_eq!(json_string_len(s.as_bytes()), text.len(), "{s:?}");
        }
    }

    #[test]
    fn json_numbers() {
        for ok in ["0", "-1", "12.50", "1e+30", "-1.5E-7", "3.0"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "NaN",
            "Infinity",
            "-Infinity",
            "",
            "01",
            ".5",
            "1.",
            "1e",
            "+1",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }
}
