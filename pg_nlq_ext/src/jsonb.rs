//! [`JsonbDatum`]: jsonb values that never pass through Rust's JSON types.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable,
};
use pgrx::prelude::*;

/// A jsonb datum handed to and from PostgreSQL as it is. pgrx's `JsonB` goes through
/// serde_json: reading one prints the jsonb and parses the text, returning one prints the
/// value and parses it back into jsonb; for a document of megabytes that is most of the work.
/// Reading one (from SPI) copies the varlena once into the current memory context; returning
/// one hands the datum over untouched.
pub struct JsonbDatum(pub pg_sys::Datum);

impl FromDatum for JsonbDatum {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null || datum.is_null() {
            return None;
        }
        // SAFETY: a non-null jsonb datum points at a valid varlena; the copy (detoasted) is made
        // in the current memory context, which pgrx's SPI switches to the caller's.
        let copy = unsafe { pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr()) };
        Some(JsonbDatum(pg_sys::Datum::from(copy)))
    }
}

impl IntoDatum for JsonbDatum {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: the datum is a valid jsonb varlena allocated in the function's memory context.
unsafe impl BoxRet for JsonbDatum {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        // SAFETY: see above; the value is never NULL.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

// SAFETY: the datum is always a jsonb varlena.
unsafe impl SqlTranslatable for JsonbDatum {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(JsonbDatum);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("jsonb"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("jsonb")));
}
