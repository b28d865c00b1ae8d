//! Text between PostgreSQL's server encoding and Rust's UTF-8.
//!
//! pg_nlq works in any database encoding (UTF8, LATIN1, EUC_JP, SQL_ASCII...):
//! - the query text is taken as the bytes the server holds ([`SqlText`]) and parsed as such —
//!   never required to be UTF-8;
//! - names read from the catalogs and settings are converted to UTF-8 ([`from_server`]) before
//!   any policy decision, so a name is compared as the characters it is;
//! - JSON pg_nlq writes is turned into jsonb from text converted back to the server encoding
//!   ([`jsonb`]), so `é` stays `é` in a LATIN1 database.
//!
//! SQL_ASCII declares no encoding: its bytes are taken as UTF-8 where they form UTF-8 and
//! replaced by U+FFFD where they do not, so what pg_nlq answers is always valid UTF-8.

use std::ffi::{c_char, c_int, CStr, CString};

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::prelude::*;

use crate::jsonb::JsonbDatum;

/// A `text` argument as the bytes the server holds, in the database encoding.
pub struct SqlText(pub Vec<u8>);

impl FromDatum for SqlText {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a non-null text datum is a varlena, detoasted (possibly a copy) here.
        unsafe {
            let text = pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
            let len = pgrx::varsize_any_exhdr(text);
            let data = pgrx::vardata_any(text).cast::<u8>();
            Some(SqlText(std::slice::from_raw_parts(data, len).to_vec()))
        }
    }
}

// SAFETY: unboxed through FromDatum, like pgrx's own text types.
unsafe impl<'fcx> ArgAbi<'fcx> for SqlText {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the argument is a text datum.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: the argument is a text datum.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the SQL type is text, read as its bytes.
unsafe impl SqlTranslatable for SqlText {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(SqlText);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("text"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = Err(ReturnsError::Datum);
}

impl IntoDatum for SqlText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let len = c_int::try_from(self.0.len()).ok()?;
        // SAFETY: a new text varlena in the current memory context holding the bytes.
        let text = unsafe { pg_sys::cstring_to_text_with_len(self.0.as_ptr().cast(), len) };
        Some(pg_sys::Datum::from(text))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::TEXTOID
    }
}

/// Column `n` of a row pgrx's SPI returned, a `text` in the server encoding, as UTF-8.
pub fn text_column(row: &pgrx::spi::SpiHeapTupleData<'_>, n: usize) -> Option<String> {
    row.get::<SqlText>(n)
        .ok()
        .flatten()
        .map(|t| from_server(&t.0))
}

/// Bytes that are the same text in the server encoding and in UTF-8 (ASCII; any valid UTF-8
/// in a UTF8 database, where the two are one), as a string; `None` otherwise.
pub fn portable(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    (bytes.is_ascii() || database_encoding() == pg_sys::pg_enc::PG_UTF8 as c_int)
        .then(|| text.to_string())
}

/// In a SQL_ASCII database, a jsonb document whose text is not valid UTF-8 (names or values
/// holding other bytes) made valid, each bad sequence replaced by U+FFFD; elsewhere, and when
/// already valid, the datum itself.
pub fn valid_jsonb_in_sql_ascii(datum: pg_sys::Datum) -> pg_sys::Datum {
    if database_encoding() != pg_sys::pg_enc::PG_SQL_ASCII as c_int {
        return datum;
    }
    // SAFETY: jsonb_out of a valid jsonb datum is a palloc'd C string.
    let text = unsafe {
        pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(datum)]).map(|d| {
            CStr::from_ptr(d.cast_mut_ptr::<c_char>())
                .to_bytes()
                .to_vec()
        })
    };
    let Some(text) = text else { return datum };
    if std::str::from_utf8(&text).is_ok() {
        return datum;
    }
    let fixed = CString::new(String::from_utf8_lossy(&text).into_owned()).unwrap_or_default();
    // SAFETY: the (valid) JSON text jsonb_out wrote, made valid UTF-8.
    unsafe { jsonb_in(&fixed) }.unwrap_or(datum)
}

/// `jsonb_in` of JSON text in the server encoding, in the current memory context.
///
/// # Safety
/// `text` must be valid JSON (jsonb_in raises otherwise).
pub unsafe fn jsonb_in(text: &CStr) -> Option<pg_sys::Datum> {
    // SAFETY: guaranteed by the caller.
    unsafe {
        pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
    }
}

impl SqlText {
    /// The text as a C string for the parser; `None` if it holds a NUL byte.
    pub fn to_cstring(&self) -> Option<CString> {
        CString::new(self.0.clone()).ok()
    }
}

fn database_encoding() -> c_int {
    // SAFETY: reads the database encoding, set for the whole session.
    unsafe { pg_sys::GetDatabaseEncoding() }
}

/// Whether text needs no conversion between the server encoding and UTF-8: the database is
/// UTF8, or SQL_ASCII (which declares no encoding; its bytes are taken as UTF-8 where they are).
fn no_conversion() -> bool {
    let encoding = database_encoding();
    encoding == pg_sys::pg_enc::PG_UTF8 as c_int
        || encoding == pg_sys::pg_enc::PG_SQL_ASCII as c_int
}

/// `bytes` converted from the server encoding to UTF-8 (`to_utf8`) or back, by PostgreSQL's
/// own conversion functions; `None` when they raise (a character without an equivalent).
fn convert(bytes: &[u8], to_utf8: bool) -> Option<Vec<u8>> {
    let len = c_int::try_from(bytes.len()).ok()?;
    // SAFETY: both functions read len bytes and return them or a palloc'd converted,
    // NUL-terminated copy.
    pgrx::PgTryBuilder::new(|| unsafe {
        let (text, utf8) = (
            bytes.as_ptr().cast::<c_char>(),
            pg_sys::pg_enc::PG_UTF8 as c_int,
        );
        let out = if to_utf8 {
            pg_sys::pg_server_to_any(text, len, utf8)
        } else {
            pg_sys::pg_any_to_server(text, len, utf8)
        };
        Some(if out.cast::<u8>().cast_const() == bytes.as_ptr() {
            bytes.to_vec()
        } else {
            CStr::from_ptr(out).to_bytes().to_vec()
        })
    })
    .catch_others(|_| None)
    .execute()
}

/// Bytes in the server encoding, as a UTF-8 string.
pub fn from_server(bytes: &[u8]) -> String {
    if no_conversion() || bytes.is_ascii() {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    // text stored in the database is valid in its encoding
    match convert(bytes, true) {
        Some(utf8) => String::from_utf8_lossy(&utf8).into_owned(),
        None => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A C string in the server encoding, as a UTF-8 string.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
pub unsafe fn from_server_cstr(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    Some(from_server(unsafe { CStr::from_ptr(p) }.to_bytes()))
}

/// UTF-8 text in the server encoding; a character the server encoding cannot represent
/// becomes `?` (only text pg_nlq wrote itself can hold one: names and values came from the
/// database).
pub fn to_server(text: &str) -> Vec<u8> {
    if text.is_ascii() || no_conversion() {
        return text.as_bytes().to_vec();
    }
    convert(text.as_bytes(), false).unwrap_or_else(|| {
        let mut out = Vec::with_capacity(text.len());
        let mut buf = [0u8; 4];
        for c in text.chars() {
            match convert(c.encode_utf8(&mut buf).as_bytes(), false) {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => out.push(b'?'),
            }
        }
        out
    })
}

/// In a SQL_ASCII database, `bytes` with any sequence that is not UTF-8 replaced by U+FFFD (a
/// palloc'd copy in the current memory context); elsewhere, and when already valid, `bytes`.
/// Other server encodings are converted to the client's by PostgreSQL itself.
///
/// # Safety
/// `bytes` must live as long as the current memory context (the copy does).
pub unsafe fn valid_utf8_in_sql_ascii(bytes: &'static [u8]) -> &'static [u8] {
    if database_encoding() != pg_sys::pg_enc::PG_SQL_ASCII as c_int
        || std::str::from_utf8(bytes).is_ok()
    {
        return bytes;
    }
    let fixed = String::from_utf8_lossy(bytes);
    // SAFETY: pnstrdup copies the bytes into the current memory context.
    unsafe {
        let copy = pg_sys::pnstrdup(fixed.as_ptr().cast::<c_char>(), fixed.len());
        std::slice::from_raw_parts(copy.cast::<u8>(), fixed.len())
    }
}

/// A JSON document as a jsonb datum, its text converted to the server encoding first.
pub fn jsonb(value: &serde_json::Value) -> JsonbDatum {
    let text = to_server(&value.to_string());
    let text = CString::new(text).unwrap_or_default();
    // SAFETY: JSON written by serde_json is valid JSON, now in the server encoding.
    match unsafe { jsonb_in(&text) } {
        Some(datum) => JsonbDatum(datum),
        None => crate::error::NlqError::Internal {
            context: "jsonb_in",
            detail: "returned NULL".into(),
        }
        .raise(),
    }
}
