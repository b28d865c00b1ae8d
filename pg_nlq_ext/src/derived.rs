//! The access policy where data lives in, or comes from, more than one place. Shared by the
//! validator's `describe()`, the runtime hook, the snapshot and `_nlq_column_stats`, so they
//! cannot disagree:
//!
//! - **inheritance and partitions**: a relation denied on an ancestor is denied on every
//!   partition and child; read with its children (not `ONLY`), a relation is refused when any
//!   descendant is denied. Column patterns match by column *name* on the relation, every
//!   ancestor and (when read with its children) every descendant, since attribute numbers differ
//!   between a parent and its children;
//! - **materialized views** (and views inside their definitions) are expanded from their
//!   stored query: what they read with the columns used ([`crate::reads`]) is checked like a
//!   view the rewriter expanded;
//! - **derived columns**: a stored generated column reads the columns its expression names;
//!   `tableoid` of a table partitioned (at any level above it) on a denied column reads that
//!   column;
//! - **catalogs of stored values**: the statistics catalogs and views (`pg_statistic*`,
//!   `pg_stats*`, whose most-common values and histograms are samples of column contents) and
//!   `pg_class.relpartbound` (partition bounds are values of the key) are refused whenever an
//!   access policy is in force.
//!
//! One piece past 600 lines: every rule below is one [`Checker`] method over the same cache of
//! relations, used by all four callers alike.

use std::collections::{BTreeSet, HashMap};

use pgrx::pg_sys;
use pgrx::PgList;

use crate::catalog;
use crate::codes::Restricted;
use crate::patterns::qualified;
use crate::policy::AccessPolicy;
use crate::reads::Reads;

/// Catalogs (in `pg_catalog`) whose rows are samples of other tables' column values.
const VALUE_CATALOGS: [&str; 6] = [
    "pg_statistic",
    "pg_statistic_ext",
    "pg_statistic_ext_data",
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
];

/// Catalog columns (in `pg_catalog`) that hold other tables' column values.
const VALUE_COLUMNS: [(&str, &str); 1] = [("pg_class", "relpartbound")];

/// Built-in functions that print stored values (partition bounds) of any table.
pub const VALUE_FUNCTIONS: [&str; 1] = ["pg_get_partition_constraintdef"];

const INHERITS_RELATION: u32 = 2611;
const INHERITS_RELID_SEQNO_INDEX: u32 = 2680;
const DEPEND_RELATION: u32 = 2608;
const DEPEND_DEPENDER_INDEX: u32 = 2673;
const RELATION_RELATION: u32 = 1259;
const ATTRDEF_RELATION: u32 = 2604;
const ANUM_PARTITIONED_PARTATTRS: i16 = 5;
const ANUM_PARTITIONED_PARTEXPRS: i16 = 8;
const ANUM_REWRITE_EV_ACTION: i16 = 8;
/// Nesting of views and materialized views followed before giving up (and refusing).
const MAX_DEFINITION_DEPTH: usize = 64;

#[repr(C)]
struct FormInherits {
    inhrelid: pg_sys::Oid,
    inhparent: pg_sys::Oid,
    inhseqno: i32,
    inhdetachpending: bool,
}

#[repr(C)]
struct FormDepend {
    classid: pg_sys::Oid,
    objid: pg_sys::Oid,
    objsubid: i32,
    refclassid: pg_sys::Oid,
    refobjid: pg_sys::Oid,
    refobjsubid: i32,
    deptype: std::ffi::c_char,
}

mod ffi {
    use pgrx::pg_sys;

    unsafe extern "C-unwind" {
        pub fn find_all_inheritors(
            parent: pg_sys::Oid,
            lockmode: pg_sys::LOCKMODE,
            numparents: *mut *mut pg_sys::List,
        ) -> *mut pg_sys::List;
        pub fn GetAttrDefaultOid(relid: pg_sys::Oid, attnum: pg_sys::AttrNumber) -> pg_sys::Oid;
    }
}

/// Every relation below `relid` in its inheritance tree (itself excluded). No lock is taken:
/// the planner locks what it will read.
fn descendants(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // SAFETY: called through pgrx's FFI guard, like the bound functions.
    let list = unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            ffi::find_all_inheritors(relid, pg_sys::NoLock as i32, std::ptr::null_mut())
        })
    };
    // SAFETY: a list of OIDs.
    let list = unsafe { PgList::<std::ffi::c_void>::from_pg(list) };
    list.iter_oid().filter(|&o| o != relid).collect()
}

/// The direct parents of `relid` (pg_inherits, by inhrelid).
fn parents(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    // SAFETY: a catalog index scan; the tuples are read while the scan is open.
    unsafe {
        let rel = pg_sys::table_open(
            INHERITS_RELATION.into(),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut key = pg_sys::ScanKeyData::default();
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(relid),
        );
        let scan = pg_sys::systable_beginscan(
            rel,
            INHERITS_RELID_SEQNO_INDEX.into(),
            true,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let form = &*pg_sys::heap_tuple_get_struct::<FormInherits>(tuple);
            out.push(form.inhparent);
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    out
}

/// The columns of `relid` that column `attnum`'s stored generation expression reads (pg_depend
/// records them from the expression's `pg_attrdef` entry to the columns).
fn generated_from(relid: pg_sys::Oid, attnum: i16) -> Vec<i16> {
    let mut out = Vec::new();
    // SAFETY: a catalog index scan; the tuples are read while the scan is open.
    unsafe {
        if pg_sys::get_attgenerated(relid, attnum) == 0 {
            return out;
        }
        let attrdef = pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::GetAttrDefaultOid(relid, attnum));
        if attrdef == pg_sys::InvalidOid {
            return out;
        }
        let rel = pg_sys::table_open(
            DEPEND_RELATION.into(),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut keys = [pg_sys::ScanKeyData::default(); 3];
        pg_sys::ScanKeyInit(
            &mut keys[0],
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(pg_sys::Oid::from(ATTRDEF_RELATION)),
        );
        pg_sys::ScanKeyInit(
            &mut keys[1],
            2,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::F_OIDEQ.into(),
            pg_sys::Datum::from(attrdef),
        );
        pg_sys::ScanKeyInit(
            &mut keys[2],
            3,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::F_INT4EQ.into(),
            pg_sys::Datum::from(0i32),
        );
        let scan = pg_sys::systable_beginscan(
            rel,
            DEPEND_DEPENDER_INDEX.into(),
            true,
            std::ptr::null_mut(),
            3,
            keys.as_mut_ptr(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let form = &*pg_sys::heap_tuple_get_struct::<FormDepend>(tuple);
            if form.refclassid == pg_sys::Oid::from(RELATION_RELATION)
                && form.refobjid == relid
                && form.refobjsubid > 0
                && form.refobjsubid != i32::from(attnum)
            {
                if let Ok(a) = i16::try_from(form.refobjsubid) {
                    out.push(a);
                }
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    out
}

/// The columns of partitioned table `relid`'s key (plain columns and those its expressions
/// read); empty if it is not partitioned.
pub fn partition_key_columns(relid: pg_sys::Oid) -> Vec<i16> {
    let mut out = Vec::new();
    // SAFETY: the syscache tuple is released before returning; datums are read before that.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::PARTRELID as i32,
            pg_sys::Datum::from(relid),
        );
        if tuple.is_null() {
            return out;
        }
        let mut isnull = false;
        let attrs = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::PARTRELID as i32,
            tuple,
            ANUM_PARTITIONED_PARTATTRS,
            &mut isnull,
        );
        if !isnull {
            let vector = attrs.cast_mut_ptr::<pg_sys::int2vector>();
            let n = usize::try_from((*vector).dim1).unwrap_or(0);
            let values = (*vector).values.as_slice(n);
            out.extend(values.iter().copied().filter(|&a| a != 0));
        }
        let exprs = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::PARTRELID as i32,
            tuple,
            ANUM_PARTITIONED_PARTEXPRS,
            &mut isnull,
        );
        if !isnull {
            let text = pg_sys::text_to_cstring(exprs.cast_mut_ptr());
            let node = pg_sys::stringToNode(text).cast::<pg_sys::Node>();
            let mut bitmap: *mut pg_sys::Bitmapset = std::ptr::null_mut();
            pg_sys::pull_varattnos(node, 1, &mut bitmap);
            out.extend(catalog::attnums(bitmap));
        }
        pg_sys::ReleaseSysCache(tuple);
    }
    out.sort();
    out.dedup();
    out
}

/// The stored query of a view or materialized view (its `_RETURN` rule), read from the
/// catalog without locking the relation.
fn stored_query(relid: pg_sys::Oid) -> Option<*mut pg_sys::Query> {
    // SAFETY: the syscache tuple is released before returning; the query is a fresh copy.
    unsafe {
        let tuple = pg_sys::SearchSysCache2(
            pg_sys::SysCacheIdentifier::RULERELNAME as i32,
            pg_sys::Datum::from(relid),
            pg_sys::Datum::from(c"_RETURN".as_ptr()),
        );
        if tuple.is_null() {
            return None;
        }
        let mut isnull = false;
        let action = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::RULERELNAME as i32,
            tuple,
            ANUM_REWRITE_EV_ACTION,
            &mut isnull,
        );
        let query = if isnull {
            None
        } else {
            let text = pg_sys::text_to_cstring(action.cast_mut_ptr());
            let actions =
                PgList::<pg_sys::Query>::from_pg(pg_sys::stringToNode(text).cast::<pg_sys::List>());
            actions.head()
        };
        pg_sys::ReleaseSysCache(tuple);
        query
    }
}

/// A refusal: the relation or column refused (by name), and why.
pub type Refusal = (Restricted, String);

#[derive(Clone)]
struct Rel {
    schema: String,
    name: String,
    relkind: u8,
}

/// The access policy applied with what the catalog says about each relation, cached for the
/// length of one check.
pub struct Checker<'a> {
    policy: &'a AccessPolicy,
    rels: HashMap<pg_sys::Oid, Option<Rel>>,
    ancestors: HashMap<pg_sys::Oid, Vec<pg_sys::Oid>>,
    descendants: HashMap<pg_sys::Oid, Vec<pg_sys::Oid>>,
    /// Stored queries of views and materialized views, read once (walks only read them).
    queries: HashMap<pg_sys::Oid, Option<usize>>,
    depth: usize,
}

impl<'a> Checker<'a> {
    pub fn new(policy: &'a AccessPolicy) -> Self {
        Checker {
            policy,
            rels: HashMap::new(),
            ancestors: HashMap::new(),
            descendants: HashMap::new(),
            queries: HashMap::new(),
            depth: 0,
        }
    }

    fn rel(&mut self, relid: pg_sys::Oid) -> Option<Rel> {
        self.rels
            .entry(relid)
            .or_insert_with(|| {
                let (schema, name) = catalog::relation_name(relid)?;
                // SAFETY: syscache lookup; 0 for a missing relation.
                let relkind = unsafe { pg_sys::get_rel_relkind(relid) } as u8;
                Some(Rel {
                    schema,
                    name,
                    relkind,
                })
            })
            .clone()
    }

    /// Every ancestor of `relid`, nearest first (multiple inheritance included).
    pub fn ancestors(&mut self, relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
        if let Some(a) = self.ancestors.get(&relid) {
            return a.clone();
        }
        let mut out: Vec<pg_sys::Oid> = Vec::new();
        let mut queue = parents(relid);
        while let Some(p) = queue.first().copied() {
            queue.remove(0);
            if p == relid || out.contains(&p) {
                continue;
            }
            out.push(p);
            queue.extend(parents(p));
        }
        self.ancestors.insert(relid, out.clone());
        out
    }

    fn descendants(&mut self, relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
        self.descendants
            .entry(relid)
            .or_insert_with(|| descendants(relid))
            .clone()
    }

    /// The relations whose rules apply to reading `relid`: itself, its ancestors and, when it
    /// is read with its children, its descendants.
    fn lineage(&mut self, relid: pg_sys::Oid, inh: bool) -> Vec<pg_sys::Oid> {
        let mut all = vec![relid];
        all.extend(self.ancestors(relid));
        if inh {
            all.extend(self.descendants(relid));
        }
        all
    }

    /// Why reading relation `relid` is refused, columns aside.
    pub fn relation_refusal(
        &mut self,
        relid: pg_sys::Oid,
        direct: bool,
        inh: bool,
    ) -> Option<String> {
        if self.policy.is_empty() {
            return None;
        }
        let me = self.rel(relid)?;
        if me.schema == "pg_catalog" && VALUE_CATALOGS.contains(&me.name.as_str()) {
            return Some(format!(
                "relation {} holds samples of stored column values; it may not be read while \
                 a pg_nlq access policy is in force",
                qualified(&[&me.schema, &me.name])
            ));
        }
        if let Some(reason) = self.policy.relation_refusal(&me.schema, &me.name, direct) {
            return Some(reason);
        }
        let ancestors = self.ancestors(relid);
        for a in ancestors {
            let Some(r) = self.rel(a) else { continue };
            if let Some(reason) = self.policy.relation_refusal(&r.schema, &r.name, false) {
                return Some(format!(
                    "{} is a partition or child of {}: {reason}",
                    qualified(&[&me.schema, &me.name]),
                    qualified(&[&r.schema, &r.name])
                ));
            }
        }
        if inh {
            for d in self.descendants(relid) {
                let Some(r) = self.rel(d) else { continue };
                if let Some(reason) = self.policy.relation_refusal(&r.schema, &r.name, false) {
                    return Some(format!(
                        "reading {} reads its partition or child {} (write ONLY to leave \
                         children out): {reason}",
                        qualified(&[&me.schema, &me.name]),
                        qualified(&[&r.schema, &r.name])
                    ));
                }
            }
        }
        None
    }

    /// Names of the columns of `relid` that reading `attnums` reads: a whole-row reference is
    /// every column, a generated column adds the columns it is computed from.
    fn column_names(&mut self, relid: pg_sys::Oid, attnums: &BTreeSet<i16>) -> Vec<String> {
        let mut all: BTreeSet<i16> = BTreeSet::new();
        for &a in attnums {
            all.insert(a);
            if a > 0 {
                all.extend(generated_from(relid, a));
            }
        }
        let mut names = Vec::new();
        for a in all {
            if a == 0 {
                names.extend(catalog::all_columns(relid));
            } else if let Some(name) = catalog::attribute_name(relid, a) {
                names.push(name);
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// Why reading column `column` of `relid` (with its children when `inh`) is refused.
    fn column_name_refusal(
        &mut self,
        relid: pg_sys::Oid,
        inh: bool,
        column: &str,
    ) -> Option<String> {
        let me = self.rel(relid)?;
        for r in self.lineage(relid, inh) {
            let Some(rel) = self.rel(r) else { continue };
            if let Some(reason) = self.policy.column_refusal(&rel.schema, &rel.name, column) {
                if r == relid {
                    return Some(reason);
                }
                return Some(format!(
                    "{} is the same column as {}: {reason}",
                    qualified(&[&me.schema, &me.name, column]),
                    qualified(&[&rel.schema, &rel.name, column])
                ));
            }
        }
        if me.schema == "pg_catalog"
            && VALUE_COLUMNS
                .iter()
                .any(|&(t, c)| t == me.name && c == column)
        {
            return Some(format!(
                "column {} holds stored values of other tables; it may not be read while a \
                 pg_nlq access policy is in force",
                qualified(&[&me.schema, &me.name, column])
            ));
        }
        None
    }

    /// Why `tableoid` of `relid` is refused: it tells which partition a row is in, so it reads
    /// the key of every partitioned table above (or at) `relid` and, read with its children,
    /// below it.
    fn tableoid_refusal(&mut self, relid: pg_sys::Oid, inh: bool) -> Option<String> {
        let me = self.rel(relid)?;
        let tables = self.lineage(relid, inh);
        for t in tables {
            for attnum in partition_key_columns(t) {
                let Some(column) = catalog::attribute_name(t, attnum) else {
                    continue;
                };
                if let Some(reason) = self.column_name_refusal(t, true, &column) {
                    return Some(format!(
                        "tableoid of {} tells the partition key {column}: {reason}",
                        qualified(&[&me.schema, &me.name])
                    ));
                }
            }
        }
        None
    }

    /// Why reading the partition key of partitioned table `relid` (its definition, its
    /// partitions' bounds) is refused.
    pub fn partition_key_refusal(&mut self, relid: pg_sys::Oid) -> Option<String> {
        if !self.policy.has_column_rules() {
            return None;
        }
        for attnum in partition_key_columns(relid) {
            let Some(column) = catalog::attribute_name(relid, attnum) else {
                continue;
            };
            if let Some(reason) = self.column_name_refusal(relid, true, &column) {
                return Some(reason);
            }
        }
        None
    }

    /// Why reading columns `attnums` of `relid` is refused, the relation's own refusal first.
    /// `direct`: read with the caller's own privileges; `inh`: with its children.
    pub fn refusal(
        &mut self,
        relid: pg_sys::Oid,
        direct: bool,
        inh: bool,
        attnums: &BTreeSet<i16>,
    ) -> Option<Refusal> {
        if self.policy.is_empty() {
            return None;
        }
        if let Some(reason) = self.relation_refusal(relid, direct, inh) {
            let name = match self.rel(relid) {
                Some(me) => qualified(&[&me.schema, &me.name]),
                None => relid.to_u32().to_string(),
            };
            return Some((Restricted::Relation(name), reason));
        }
        let me = self.rel(relid)?;
        if me.relkind == b'm' {
            if let Some(r) = self.definition_refusal(relid, attnums) {
                return Some(r);
            }
        }
        if self.policy.has_column_rules() || me.schema == "pg_catalog" {
            for column in self.column_names(relid, attnums) {
                let reason = if column == "tableoid" {
                    self.tableoid_refusal(relid, inh)
                } else {
                    self.column_name_refusal(relid, inh, &column)
                };
                if let Some(reason) = reason {
                    let name = qualified(&[&me.schema, &me.name, &column]);
                    return Some((Restricted::Column(name), reason));
                }
            }
        }
        None
    }

    /// Why reading columns `attnums` of view or materialized view `relid` is refused because
    /// of what its stored query reads with them (views and materialized views inside it
    /// followed the same way).
    pub fn definition_refusal(
        &mut self,
        relid: pg_sys::Oid,
        attnums: &BTreeSet<i16>,
    ) -> Option<Refusal> {
        let me = self.rel(relid)?;
        if self.depth >= MAX_DEFINITION_DEPTH {
            return Some((
                Restricted::Relation(qualified(&[&me.schema, &me.name])),
                format!(
                    "views and materialized views nest deeper than {MAX_DEFINITION_DEPTH} \
                     levels under {}",
                    qualified(&[&me.schema, &me.name])
                ),
            ));
        }
        let query = self
            .queries
            .entry(relid)
            .or_insert_with(|| stored_query(relid).map(|q| q as usize))
            .map(|q| q as *mut pg_sys::Query)?;
        let used = if attnums.contains(&0) {
            None
        } else {
            Some(attnums)
        };
        // SAFETY: a Query read from the catalog.
        let reads = unsafe { Reads::of(query, used) };
        if reads.incomplete {
            return Some((
                Restricted::Relation(qualified(&[&me.schema, &me.name])),
                format!(
                    "the definition of {} is nested too deeply to tell what it reads",
                    qualified(&[&me.schema, &me.name])
                ),
            ));
        }
        self.depth += 1;
        let mut found = None;
        for (&rel, read) in &reads.relations {
            let rel: pg_sys::Oid = rel.into();
            if rel == relid {
                continue; // the rule's OLD/NEW placeholders
            }
            let kind = self.rel(rel).map(|r| r.relkind).unwrap_or(0);
            found = self.refusal(rel, false, read.inh, &read.attnums);
            if found.is_none() && kind == b'v' {
                found = self.definition_refusal(rel, &read.attnums);
            }
            if let Some((k, reason)) = found.take() {
                found = Some((
                    k,
                    format!(
                        "{} reads what the policy denies: {reason}",
                        qualified(&[&me.schema, &me.name])
                    ),
                ));
                break;
            }
        }
        self.depth -= 1;
        found
    }

    /// Whether a built-in function that prints stored values is refused.
    pub fn function_refusal(&self, schema: &str, name: &str) -> Option<String> {
        if self.policy.is_empty() || schema != "pg_catalog" || !VALUE_FUNCTIONS.contains(&name) {
            return None;
        }
        Some(format!(
            "function {} prints stored values of other tables; it may not be called while a \
             pg_nlq access policy is in force",
            qualified(&[schema, name])
        ))
    }
}
