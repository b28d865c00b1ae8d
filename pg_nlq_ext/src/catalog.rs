//! Names of the objects a query touches, read from the catalog caches by OID. Shared by the
//! validator ([`crate::validate`]) and the runtime hook ([`crate::hooks`]).

use pgrx::pg_sys;

/// A function as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub builtin: bool,
    pub volatility: u8,
}

/// Take a palloc'd C string's content; NULL gives `None`.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
unsafe fn owned(p: *const std::ffi::c_char) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    unsafe { crate::encoding::from_server_cstr(p) }
}

/// `(schema, relation)` of a relation, or `None` if it no longer exists.
pub fn relation_name(relid: pg_sys::Oid) -> Option<(String, String)> {
    // SAFETY: syscache lookups; both return NULL for a missing object.
    unsafe {
        let name = owned(pg_sys::get_rel_name(relid))?;
        let schema = owned(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid)))?;
        Some((schema, name))
    }
}

/// `f` of the `pg_attribute` row of attribute `attnum` of `relid`; `None` if there is none.
fn with_attribute<R>(
    relid: pg_sys::Oid,
    attnum: i16,
    f: impl FnOnce(&pg_sys::FormData_pg_attribute) -> R,
) -> Option<R> {
    // SAFETY: the syscache tuple is released before returning; `f` sees the row only while
    // it is pinned.
    unsafe {
        let tuple = pg_sys::SearchSysCache2(
            pg_sys::SysCacheIdentifier::ATTNUM as i32,
            pg_sys::Datum::from(relid),
            pg_sys::Datum::from(attnum),
        );
        if tuple.is_null() {
            return None;
        }
        let out = f(&*pg_sys::heap_tuple_get_struct::<
            pg_sys::FormData_pg_attribute,
        >(tuple));
        pg_sys::ReleaseSysCache(tuple);
        Some(out)
    }
}

/// Name of a live attribute; `None` for a dropped one.
fn live_name(form: &pg_sys::FormData_pg_attribute) -> Option<String> {
    if form.attisdropped {
        None
    } else {
        // SAFETY: attname is a NUL-terminated name in the server encoding.
        unsafe { crate::encoding::from_server_cstr(form.attname.data.as_ptr()) }
    }
}

/// Name of attribute `attnum` of `relid`, unless it is dropped or missing.
pub fn attribute_name(relid: pg_sys::Oid, attnum: i16) -> Option<String> {
    with_attribute(relid, attnum, live_name).flatten()
}

/// `f` of every user attribute of `relid` in order, up to the last one.
fn each_attribute(relid: pg_sys::Oid, mut f: impl FnMut(&pg_sys::FormData_pg_attribute)) {
    for attnum in 1..=pg_sys::MaxHeapAttributeNumber as i16 {
        if with_attribute(relid, attnum, &mut f).is_none() {
            break;
        }
    }
}

/// The types of every live user column of a relation (a composite type's fields), in order.
pub fn attribute_types(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let mut types = Vec::new();
    each_attribute(relid, |form| {
        if !form.attisdropped {
            types.push(form.atttypid);
        }
    });
    types
}

/// Every live user column of a relation, in order.
pub fn all_columns(relid: pg_sys::Oid) -> Vec<String> {
    let mut columns = Vec::new();
    each_attribute(relid, |form| columns.extend(live_name(form)));
    columns
}

/// Attribute numbers in a `selectedCols`-style bitmap (offset by
/// `FirstLowInvalidHeapAttributeNumber`); 0 is a whole-row reference.
///
/// # Safety
/// `bitmap` must be NULL or a valid `Bitmapset`.
pub unsafe fn attnums(bitmap: *const pg_sys::Bitmapset) -> Vec<i16> {
    let mut out = Vec::new();
    let mut member = -1;
    loop {
        // SAFETY: bms_next_member accepts NULL (an empty set).
        member = unsafe { pg_sys::bms_next_member(bitmap, member) };
        if member < 0 {
            break;
        }
        let attnum = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
        if let Ok(attnum) = i16::try_from(attnum) {
            out.push(attnum);
        }
    }
    out
}

/// What the policy needs to know about a function, or `None` if it no longer exists.
pub fn function(oid: pg_sys::Oid) -> Option<Function> {
    // SAFETY: syscache lookups; NULL or 0 for a missing function.
    unsafe {
        let name = owned(pg_sys::get_func_name(oid))?;
        let schema = owned(pg_sys::get_namespace_name(pg_sys::get_func_namespace(oid)))?;
        let volatility = pg_sys::func_volatile(oid) as u8;
        Some(Function {
            schema,
            name,
            builtin: u32::from(oid) < pg_sys::FirstNormalObjectId,
            volatility,
        })
    }
}

/// A name quoted as SQL needs it (`quote_ident`), keywords included.
pub fn quote(name: &str) -> String {
    let Ok(c) = std::ffi::CString::new(crate::encoding::to_server(name)) else {
        return crate::patterns::quote_ident(name);
    };
    // SAFETY: quote_identifier returns its argument or a palloc'd quoted copy, in the server
    // encoding like its argument.
    unsafe { owned(pg_sys::quote_identifier(c.as_ptr())) }.unwrap_or_default()
}

/// `a.b[.c]`, each part quoted as needed.
pub fn qualified(parts: &[&str]) -> String {
    parts.iter().map(|p| quote(p)).collect::<Vec<_>>().join(".")
}
