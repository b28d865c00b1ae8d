//! What is stored and what is in force for the `pg_nlq.*` settings, read without SQL: the
//! entries of `pg_db_role_setting` (one heap scan) and the variables of this backend's settings
//! table, with each stored value parsed as PostgreSQL would parse it. [`crate::policy_check`]
//! compares the two.

use std::collections::HashMap;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::gucs::{Kind, Setting};
use crate::patterns;

/// `DbRoleSettingRelationId` and the column number of `setconfig` (catalog/pg_db_role_setting.h).
const DB_ROLE_SETTING_RELATION: u32 = 2964;
const ANUM_SETCONFIG: i32 = 3;
const ANUM_SETDATABASE: i32 = 1;
const ANUM_SETROLE: i32 = 2;

/// A value of a setting, compared as PostgreSQL stores it (units applied).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i32),
    Real(f64),
}

impl Value {
    pub fn show(&self) -> String {
        match self {
            Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Value::Int(i) => i.to_string(),
            Value::Real(f) => f.to_string(),
        }
    }
}

/// A `pg_nlq.*` variable in the settings table of this backend.
#[derive(Debug, Clone)]
pub struct Var {
    pub source: pg_sys::GucSource::Type,
    pub value: Value,
    /// (min, max) of a numeric setting.
    pub range: Option<(f64, f64)>,
    pub placeholder: bool,
    pub name: String,
}

/// Every variable named `pg_nlq.*` in the settings table, by lower-case name.
pub fn variables() -> HashMap<String, Var> {
    let mut out = HashMap::new();
    // SAFETY: the settings table is an array of GetNumConfigOptions() valid pointers; each
    // record is the struct its vartype says.
    unsafe {
        let vars = pg_sys::get_guc_variables();
        let n = usize::try_from(pg_sys::GetNumConfigOptions()).unwrap_or(0);
        for i in 0..n {
            let record = *vars.add(i);
            if record.is_null() || (*record).name.is_null() {
                continue;
            }
            let name = CStr::from_ptr((*record).name).to_string_lossy();
            if !has_prefix(&name) {
                continue;
            }
            let (value, range) = match (*record).vartype {
                pg_sys::config_type::PGC_INT => {
                    let conf = record.cast::<pg_sys::config_int>();
                    (
                        Value::Int(*(*conf).variable),
                        Some((f64::from((*conf).min), f64::from((*conf).max))),
                    )
                }
                pg_sys::config_type::PGC_REAL => {
                    let conf = record.cast::<pg_sys::config_real>();
                    (
                        Value::Real(*(*conf).variable),
                        Some(((*conf).min, (*conf).max)),
                    )
                }
                pg_sys::config_type::PGC_STRING => {
                    let conf = record.cast::<pg_sys::config_string>();
                    let text = (*conf).variable;
                    let text = if text.is_null() || (*text).is_null() {
                        String::new()
                    } else {
                        CStr::from_ptr(*text).to_string_lossy().into_owned()
                    };
                    (Value::Text(text), None)
                }
                _ => continue,
            };
            out.insert(
                name.to_ascii_lowercase(),
                Var {
                    source: (*record).source,
                    value,
                    range,
                    placeholder: (*record).flags & pg_sys::GUC_CUSTOM_PLACEHOLDER as i32 != 0,
                    name: name.into_owned(),
                },
            );
        }
    }
    out
}

pub fn has_prefix(name: &str) -> bool {
    name.len() > 7 && name.is_char_boundary(7) && name[..7].eq_ignore_ascii_case("pg_nlq.")
}

/// `stored`, read as PostgreSQL would read it for `setting`: an error says why it is refused.
pub fn parse(setting: &Setting, var: Option<&Var>, stored: &str) -> Result<Value, String> {
    let range = var.and_then(|v| v.range);
    let out_of_range = |shown: String| {
        range.map(|(min, max)| format!("{shown} is outside the valid range {min} .. {max}"))
    };
    match setting.kind {
        Kind::Patterns { min, max, .. } => {
            patterns::parse_patterns(stored, min, max).map(|_| Value::Text(stored.to_string()))
        }
        Kind::Int { flags } => {
            let text = CString::new(stored).map_err(|_| "contains a NUL byte".to_string())?;
            let (mut value, mut hint) = (0, std::ptr::null());
            // SAFETY: a valid C string; parse_int only reads it and sets the outputs.
            let ok = unsafe { pg_sys::parse_int(text.as_ptr(), &mut value, flags, &mut hint) };
            if !ok {
                return Err(format!(
                    "'{stored}' is not a valid integer{}",
                    hint_text(hint)
                ));
            }
            if let Some((min, max)) = range {
                if f64::from(value) < min || f64::from(value) > max {
                    return Err(out_of_range(value.to_string()).unwrap_or_default());
                }
            }
            Ok(Value::Int(value))
        }
        Kind::Real => {
            let text = CString::new(stored).map_err(|_| "contains a NUL byte".to_string())?;
            let (mut value, mut hint) = (0.0, std::ptr::null());
            // SAFETY: as above.
            let ok = unsafe { pg_sys::parse_real(text.as_ptr(), &mut value, 0, &mut hint) };
            if !ok {
                return Err(format!(
                    "'{stored}' is not a valid number{}",
                    hint_text(hint)
                ));
            }
            if let Some((min, max)) = range {
                if value < min || value > max || value.is_nan() {
                    return Err(out_of_range(stored.to_string()).unwrap_or_default());
                }
            }
            Ok(Value::Real(value))
        }
    }
}

pub fn hint_text(hint: *const std::ffi::c_char) -> String {
    if hint.is_null() {
        String::new()
    } else {
        // SAFETY: parse_int/parse_real set it to a static message.
        let h = unsafe { CStr::from_ptr(hint) }.to_string_lossy();
        format!(" ({h})")
    }
}

/// The name PostgreSQL's `pg_settings.source` gives a source.
pub fn source_name(source: pg_sys::GucSource::Type) -> &'static str {
    use pg_sys::GucSource::*;
    match source {
        PGC_S_DEFAULT => "default",
        PGC_S_DYNAMIC_DEFAULT => "default",
        PGC_S_ENV_VAR => "environment variable",
        PGC_S_FILE => "configuration file",
        PGC_S_ARGV => "command line",
        PGC_S_GLOBAL => "global",
        PGC_S_DATABASE => "database",
        PGC_S_USER => "user",
        PGC_S_DATABASE_USER => "database user",
        PGC_S_CLIENT => "client",
        PGC_S_OVERRIDE => "override",
        PGC_S_INTERACTIVE => "interactive",
        PGC_S_TEST => "test",
        PGC_S_SESSION => "session",
        _ => "unknown",
    }
}

/// Whether `source` is one of the levels of `pg_db_role_setting`.
pub fn is_stored_source(source: pg_sys::GucSource::Type) -> bool {
    (pg_sys::GucSource::PGC_S_GLOBAL..=pg_sys::GucSource::PGC_S_DATABASE_USER).contains(&source)
}

/// One `pg_nlq.*` entry of `pg_db_role_setting`.
#[derive(Debug, Clone)]
pub struct Stored {
    pub database: pg_sys::Oid,
    pub role: pg_sys::Oid,
    pub name: String,
    pub value: String,
}

impl Stored {
    /// The source PostgreSQL applies it with (its priority).
    pub fn source(&self) -> pg_sys::GucSource::Type {
        use pg_sys::GucSource::*;
        match (
            self.database != pg_sys::InvalidOid,
            self.role != pg_sys::InvalidOid,
        ) {
            (true, true) => PGC_S_DATABASE_USER,
            (false, true) => PGC_S_USER,
            (true, false) => PGC_S_DATABASE,
            (false, false) => PGC_S_GLOBAL,
        }
    }

    pub fn applies(&self, database: pg_sys::Oid, role: pg_sys::Oid) -> bool {
        (self.database == pg_sys::InvalidOid || self.database == database)
            && (self.role == pg_sys::InvalidOid || self.role == role)
    }

    pub fn role_name(&self) -> Option<String> {
        (self.role != pg_sys::InvalidOid).then(|| role_name(self.role))
    }

    pub fn database_name(&self) -> Option<String> {
        (self.database != pg_sys::InvalidOid).then(|| database_name(self.database))
    }

    /// The command that stored it, as a DBA would type it.
    pub fn command(&self) -> String {
        let role = self.role_name().map(|r| patterns::quote_ident(&r));
        let db = self.database_name().map(|d| patterns::quote_ident(&d));
        match (role, db) {
            (Some(r), Some(d)) => format!("ALTER ROLE {r} IN DATABASE {d} SET"),
            (Some(r), None) => format!("ALTER ROLE {r} SET"),
            (None, Some(d)) => format!("ALTER DATABASE {d} SET"),
            (None, None) => "ALTER ROLE ALL SET".to_string(),
        }
    }
}

pub fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: catalog lookup; NULL for a role that does not exist.
    unsafe {
        let name = pg_sys::GetUserNameFromId(oid, true);
        if name.is_null() {
            format!("role {}", oid.to_u32())
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

pub fn database_name(oid: pg_sys::Oid) -> String {
    // SAFETY: catalog lookup; NULL for a database that does not exist.
    unsafe {
        let name = pg_sys::get_database_name(oid);
        if name.is_null() {
            format!("database {}", oid.to_u32())
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// The `pg_nlq.*` entries of `pg_db_role_setting`, in catalog order: every one, or with
/// `only = Some((database, roles))` those that apply to that database and one of those roles.
/// One heap scan of the catalog, under the catalog snapshot; the settings of other rows are
/// not even decoded.
pub fn stored(only: Option<(pg_sys::Oid, &[pg_sys::Oid])>) -> Vec<Stored> {
    let mut out = Vec::new();
    // SAFETY: a catalog scan as postinit.c's ApplySetting does, closed before returning; the
    // text[] is deconstructed into palloc'd copies read at once.
    unsafe {
        let rel = pg_sys::table_open(
            pg_sys::Oid::from(DB_ROLE_SETTING_RELATION),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let desc = (*rel).rd_att;
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::InvalidOid,
            false,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let mut null = false;
            let oid = |attnum| {
                let mut null = false;
                let d = pg_sys::heap_getattr(tuple, attnum, desc, &mut null);
                pg_sys::Oid::from(d.value() as u32)
            };
            let (database, role) = (oid(ANUM_SETDATABASE), oid(ANUM_SETROLE));
            if let Some((db, roles)) = only {
                let entry = Stored {
                    database,
                    role,
                    name: String::new(),
                    value: String::new(),
                };
                if !roles.iter().any(|&r| entry.applies(db, r)) {
                    continue;
                }
            }
            let config = pg_sys::heap_getattr(tuple, ANUM_SETCONFIG, desc, &mut null);
            if null {
                continue;
            }
            let array = pg_sys::pg_detoast_datum(config.cast_mut_ptr()).cast::<pg_sys::ArrayType>();
            let (mut elems, mut nulls, mut n) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
            pg_sys::deconstruct_array(
                array,
                pg_sys::TEXTOID,
                -1,
                false,
                pg_sys::TYPALIGN_INT as std::ffi::c_char,
                &mut elems,
                &mut nulls,
                &mut n,
            );
            for k in 0..usize::try_from(n).unwrap_or(0) {
                if *nulls.add(k) {
                    continue;
                }
                let text = pg_sys::text_to_cstring((*elems.add(k)).cast_mut_ptr());
                let item = CStr::from_ptr(text).to_string_lossy().into_owned();
                let (name, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
                if has_prefix(name) {
                    out.push(Stored {
                        database,
                        role,
                        name: name.to_string(),
                        value: value.to_string(),
                    });
                }
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    out
}
