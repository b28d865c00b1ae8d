//! Access and function policy as plain Rust: the built-in function lists and the decisions
//! taken on names, with the patterns of the `pg_nlq.*` settings ([`crate::patterns`]). Nothing
//! here needs a backend; the backend code in [`crate::validate`] and [`crate::hooks`] resolves
//! objects to names and asks this module.

use crate::patterns::{glob_match, parse_patterns, qualified, NamePattern};

/// Which setting a relation or column pattern list comes from; part of every refusal message.
pub const DENIED_RELATIONS: &str = "pg_nlq.denied_relations";
pub const ALLOWED_RELATIONS: &str = "pg_nlq.allowed_relations";
pub const DENIED_COLUMNS: &str = "pg_nlq.denied_columns";
pub const ALLOWED_FUNCTIONS: &str = "pg_nlq.allowed_functions";
pub const DENIED_FUNCTIONS: &str = "pg_nlq.denied_functions";

/// The access policy: which relations and columns may be read.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    denied_relations: Vec<NamePattern>,
    /// `None`: not set, every relation not denied is allowed.
    allowed_relations: Option<Vec<NamePattern>>,
    denied_columns: Vec<NamePattern>,
}

impl AccessPolicy {
    /// Build from the settings' values; an unparsable value is an error naming the setting.
    pub fn parse(denied: &str, allowed: &str, columns: &str) -> Result<Self, String> {
        let denied_relations =
            parse_patterns(denied, 1, 2).map_err(|e| format!("{DENIED_RELATIONS}: {e}"))?;
        let allowed_list =
            parse_patterns(allowed, 1, 2).map_err(|e| format!("{ALLOWED_RELATIONS}: {e}"))?;
        let denied_columns =
            parse_patterns(columns, 2, 3).map_err(|e| format!("{DENIED_COLUMNS}: {e}"))?;
        Ok(AccessPolicy {
            denied_relations,
            allowed_relations: if allowed.trim().is_empty() {
                None
            } else {
                Some(allowed_list)
            },
            denied_columns,
        })
    }

    /// Whether the policy restricts anything at all (the runtime hook skips its work if not).
    pub fn is_empty(&self) -> bool {
        self.denied_relations.is_empty()
            && self.allowed_relations.is_none()
            && self.denied_columns.is_empty()
    }

    /// Whether any column rule is set (otherwise column names need not be looked up).
    pub fn has_column_rules(&self) -> bool {
        !self.denied_columns.is_empty()
    }

    /// Why reading relation `schema.name` is refused, if it is.
    ///
    /// `direct` tells whether the relation is read with the caller's own privileges (named by
    /// the query, or under a `security_invoker` view) rather than through a view owned by
    /// someone else. `denied_relations` applies to every relation touched, so a view over a
    /// denied table is refused; `allowed_relations` only to relations read directly, so a DBA
    /// can allow a reporting view without allowing the tables behind it.
    pub fn relation_refusal(&self, schema: &str, name: &str, direct: bool) -> Option<String> {
        let full = [schema, name];
        if let Some(p) = self.denied_relations.iter().find(|p| p.matches(&full)) {
            return Some(format!(
                "relation {} is denied by {DENIED_RELATIONS} ({p})",
                qualified(&full)
            ));
        }
        if direct {
            if let Some(allowed) = &self.allowed_relations {
                if !allowed.iter().any(|p| p.matches(&full)) {
                    return Some(format!(
                        "relation {} is not in {ALLOWED_RELATIONS}",
                        qualified(&full)
                    ));
                }
            }
        }
        None
    }

    /// Why reading column `schema.table.column` is refused, if it is.
    pub fn column_refusal(&self, schema: &str, table: &str, column: &str) -> Option<String> {
        let full = [schema, table, column];
        self.denied_columns
            .iter()
            .find(|p| p.matches(&full))
            .map(|p| {
                format!(
                    "column {} is denied by {DENIED_COLUMNS} ({p})",
                    qualified(&full)
                )
            })
    }
}

/// Built-in functions refused whatever their volatility, matched by name in any schema (so
/// `dblink_exec` is refused wherever the extension was installed, even if a DBA allowed its
/// schema). Each entry is a glob on the function's name.
pub const BUILTIN_DENIED: &[&str] = &[
    // sleeping and locks that outlive the query
    "pg_sleep*",
    "pg_advisory_*",
    "pg_try_advisory_*",
    // settings and session state
    "set_config",
    "setseed",
    // sequences
    "nextval",
    "setval",
    "currval",
    "lastval",
    // other backends, the server, replication and WAL
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_reload_conf",
    "pg_rotate_logfile*",
    "pg_log_backend_memory_contexts",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_*",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_wal_replay_*",
    "pg_create_*_replication_slot",
    "pg_copy_*_replication_slot",
    "pg_drop_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_*",
    "pg_logical_*",
    "pg_export_snapshot",
    "pg_import_system_collations",
    "pg_nextoid",
    "pg_stop_making_pinned_objects",
    "binary_upgrade_*",
    "pg_extension_config_dump",
    // files and directories on the server
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_current_logfile",
    "pg_file_*",
    // large objects
    "lo_*",
    "loread",
    "lowrite",
    "be_lo_*",
    // other connections
    "dblink*",
    // notifications and logical messages
    "pg_notify",
    "pg_logical_emit_message",
    // transaction ids (assigning one is a write)
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    // functions that run SQL text the validator never sees
    "query_to_xml*",
    "cursor_to_xml*",
    "table_to_xml*",
    "schema_to_xml*",
    "database_to_xml*",
    "ts_stat",
    // statistics resets
    "pg_stat_reset*",
    "pg_stat_statements_reset",
];

/// Volatile built-ins that are harmless: they read a clock, a random source or a size, or are
/// a built-in `TABLESAMPLE` method.
pub const HARMLESS_VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_table_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_tablespace_size",
    "pg_partition_tree",
    "pg_partition_ancestors",
    "pg_is_in_recovery",
    // the built-in TABLESAMPLE methods (their handler functions are marked volatile)
    "bernoulli",
    "system",
];

/// What the validator knows about a function it found in a query.
#[derive(Debug, Clone)]
pub struct FunctionInfo<'a> {
    pub schema: &'a str,
    pub name: &'a str,
    /// Shipped with PostgreSQL (OID below `FirstNormalObjectId`).
    pub builtin: bool,
    /// `pg_proc.provolatile`: `i`, `s` or `v`.
    pub volatility: u8,
}

/// The function policy: built-in lists plus `pg_nlq.allowed_functions` and
/// `pg_nlq.denied_functions`.
#[derive(Debug, Clone, Default)]
pub struct FunctionPolicy {
    allowed: Vec<NamePattern>,
    denied: Vec<NamePattern>,
}

impl FunctionPolicy {
    pub fn parse(allowed: &str, denied: &str) -> Result<Self, String> {
        Ok(FunctionPolicy {
            allowed: parse_patterns(allowed, 1, 2)
                .map_err(|e| format!("{ALLOWED_FUNCTIONS}: {e}"))?,
            denied: parse_patterns(denied, 1, 2).map_err(|e| format!("{DENIED_FUNCTIONS}: {e}"))?,
        })
    }

    /// Why calling the function is refused, if it is. Precedence: the built-in deny list, then
    /// `denied_functions`, then `allowed_functions`, then the defaults (built-in and not
    /// volatile, or one of the harmless volatile built-ins).
    pub fn refusal(&self, f: &FunctionInfo<'_>) -> Option<String> {
        let full = [f.schema, f.name];
        let shown = qualified(&full);
        if BUILTIN_DENIED.iter().any(|g| glob_match(g, f.name)) {
            return Some(format!("function {shown} is never allowed"));
        }
        if let Some(p) = self.denied.iter().find(|p| p.matches(&full)) {
            return Some(format!(
                "function {shown} is denied by {DENIED_FUNCTIONS} ({p})"
            ));
        }
        if self.allowed.iter().any(|p| p.matches(&full)) {
            return None;
        }
        if !f.builtin {
            return Some(format!(
                "function {shown} is not built in; a DBA may allow it with {ALLOWED_FUNCTIONS}"
            ));
        }
        if f.volatility == b'v' && !HARMLESS_VOLATILE.contains(&f.name) {
            return Some(format!(
                "function {shown} is volatile; a DBA may allow it with {ALLOWED_FUNCTIONS}"
            ));
        }
        if UNINTERRUPTIBLE.contains(&f.name) {
            return Some(format!(
                "function {shown} runs in libxml2, which neither a timeout nor a cancel request \
                 can stop; a DBA may allow it with {ALLOWED_FUNCTIONS}"
            ));
        }
        None
    }
}

/// Built-ins refused unless a DBA allows them: they spend unbounded time in a library that
/// never checks for interrupts (libxml2's XPath engine is cubic in the document on nested
/// predicates), so `pg_nlq.statement_timeout`, cancel and terminate cannot stop them. `xmltable`
/// is the `XMLTABLE` construct.
pub const UNINTERRUPTIBLE: &[&str] = &["xpath", "xpath_exists", "xmlexists", "xmltable"];

#[cfg(test)]
mod uninterruptible_tests {
    use super::*;

    #[test]
    fn xpath_is_refused_unless_allowed() {
        let f = FunctionInfo {
            schema: "pg_catalog",
            name: "xpath",
            builtin: true,
            volatility: b'i',
        };
        let policy = FunctionPolicy::parse("", "").unwrap();
        assert!(policy.refusal(&f).unwrap().contains("libxml2"));
        let policy = FunctionPolicy::parse("pg_catalog.xpath", "").unwrap();
        assert_eq!(policy.refusal(&f), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_policy_denies_and_allows() {
        let p = AccessPolicy::parse("hr.*, public.secrets", "", "").unwrap_or_default();
        assert!(p.relation_refusal("hr", "employees", true).is_some());
        assert!(p.relation_refusal("hr", "employees", false).is_some());
        assert!(p.relation_refusal("public", "secrets", false).is_some());
        assert!(p.relation_refusal("public", "orders", true).is_none());

        let a = AccessPolicy::parse("", "reporting.*", "").unwrap_or_default();
        assert!(a.relation_refusal("reporting", "sales", true).is_none());
        assert!(a.relation_refusal("public", "orders", true).is_some());
        // a table behind an allowed view, read with the view owner's rights
        assert!(a.relation_refusal("public", "orders", false).is_none());
        // an empty allowed list (only spaces) means "not set"
        assert!(AccessPolicy::parse("", "  ", "")
            .unwrap_or_default()
            .is_empty());
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = AccessPolicy::parse("public.secrets", "public.*", "").unwrap_or_default();
        assert!(p.relation_refusal("public", "secrets", true).is_some());
        assert!(p.relation_refusal("public", "orders", true).is_none());
    }

    #[test]
    fn column_policy_matches_two_and_three_parts() {
        let p = AccessPolicy::parse("", "", "hr.employees.salary, *.ssn").unwrap_or_default();
        assert!(p.column_refusal("hr", "employees", "salary").is_some());
        assert!(p.column_refusal("public", "employees", "salary").is_none());
        assert!(p.column_refusal("public", "customers", "ssn").is_some());
        assert!(p.column_refusal("public", "customers", "name").is_none());
        let msg = p
            .column_refusal("hr", "employees", "salary")
            .unwrap_or_default();
        assert!(msg.contains("hr.employees.salary"), "{msg}");
    }

    fn f<'a>(schema: &'a str, name: &'a str, builtin: bool, v: u8) -> FunctionInfo<'a> {
        FunctionInfo {
            schema,
            name,
            builtin,
            volatility: v,
        }
    }

    #[test]
    fn function_defaults() {
        let p = FunctionPolicy::default();
        assert!(p.refusal(&f("pg_catalog", "lower", true, b'i')).is_none());
        assert!(p.refusal(&f("pg_catalog", "now", true, b's')).is_none());
        assert!(p.refusal(&f("pg_catalog", "random", true, b'v')).is_none());
        assert!(p
            .refusal(&f("pg_catalog", "pg_stat_clear_snapshot", true, b'v'))
            .is_some());
        assert!(p.refusal(&f("public", "my_fn", false, b'i')).is_some());
        // deny list regardless of volatility
        for name in [
            "pg_sleep",
            "pg_sleep_for",
            "pg_advisory_lock",
            "pg_try_advisory_xact_lock_shared",
            "set_config",
            "nextval",
            "pg_terminate_backend",
            "pg_reload_conf",
            "pg_read_file",
            "pg_ls_dir",
            "lo_export",
            "loread",
            "pg_notify",
            "pg_logical_emit_message",
            "txid_current",
            "pg_current_xact_id",
            "query_to_xml",
            "table_to_xml_and_xmlschema",
            "database_to_xml",
            "ts_stat",
            "pg_stat_reset_shared",
        ] {
            let msg = p.refusal(&f("pg_catalog", name, true, b's'));
            assert!(
                msg.as_deref().is_some_and(|m| m.contains("never allowed")),
                "{name}"
            );
        }
        // dblink wherever it is installed, even when its schema is allowed
        let allowing = FunctionPolicy::parse("public.*", "").unwrap_or_default();
        assert!(allowing
            .refusal(&f("public", "dblink_exec", false, b'v'))
            .is_some());
        assert!(allowing
            .refusal(&f("public", "my_fn", false, b'v'))
            .is_none());
    }

    #[test]
    fn function_settings_extend_the_lists() {
        let p = FunctionPolicy::parse("util.slugify", "pg_catalog.md5, *.sha*").unwrap_or_default();
        assert!(p.refusal(&f("util", "slugify", false, b'v')).is_none());
        assert!(p.refusal(&f("public", "slugify", false, b'v')).is_some());
        assert!(p.refusal(&f("pg_catalog", "md5", true, b'i')).is_some());
        assert!(p.refusal(&f("pg_catalog", "sha256", true, b'i')).is_some());
        assert!(p.refusal(&f("pg_catalog", "upper", true, b'i')).is_none());
        // denied wins over allowed
        let both = FunctionPolicy::parse("util.*", "util.drop_all").unwrap_or_default();
        assert!(both.refusal(&f("util", "drop_all", false, b'v')).is_some());
    }
}
