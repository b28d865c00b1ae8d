//! Access and function policy as plain Rust: the `pg_nlq.*` pattern lists, the built-in function
//! lists, and the decisions taken on names. Nothing here needs a backend; the backend code in
//! [`crate::validate`] and [`crate::hooks`] resolves objects to names and asks this module.
//!
//! # Pattern syntax (all `pg_nlq.*_relations`, `*_columns`, `*_functions` settings)
//!
//! A comma-separated list of dotted names, spelt as in SQL: unquoted parts are folded to lower
//! case, double-quoted parts are taken literally (`"Sales"."Q1"`). An unquoted `*` inside a part
//! matches any run of characters (`hr.*`, `pg_stat_*`, `*.ssn`). A pattern with fewer parts
//! than the full name matches its trailing parts: `salaries` matches a relation of that name in
//! any schema, `employees.ssn` a column of any table `employees`.
//!
//! - relations: `[schema.]relation`
//! - columns: `[[schema.]table.]column` — at least `table.column`
//! - functions: `[schema.]function` (every overload)
//!
//! Names are truncated as PostgreSQL truncates identifiers: to `NAMEDATALEN - 1` = 63 bytes,
//! on a character boundary, quoted or not (a relation created as a 70-character name is stored
//! under its first 63 bytes, and so is the pattern that names it). A `*` part is a pattern,
//! not an identifier, and is not truncated.
//!
//! A quoted part containing a dot is refused when the pattern could have spelt that dot as a
//! separator (fewer parts than the fullest form: `"public.salaries"` is almost certainly meant
//! as `public.salaries`, and as one name it would match nothing). Fully qualified
//! (`public."odd.name"`), a name with a dot in it is accepted as written.

use std::fmt;

/// Longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// `name` cut to [`MAX_IDENTIFIER_BYTES`] on a character boundary, as `truncate_identifier`
/// does (the pattern lists are UTF-8 here; see [`crate::gucs::string_value`]).
pub fn truncate_identifier(name: &str) -> &str {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let mut end = MAX_IDENTIFIER_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// One part of a dotted pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A quoted part, or an unquoted one without `*`: compared exactly.
    Exact(String),
    /// An unquoted part containing `*`.
    Glob(String),
}

impl Part {
    fn matches(&self, name: &str) -> bool {
        match self {
            Part::Exact(s) => s == name,
            Part::Glob(g) => glob_match(g, name),
        }
    }
}

/// `*` matches any run of characters (possibly empty); everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or("");
    let Some(mut remaining) = name.strip_prefix(first) else {
        return false;
    };
    let mut last: Option<&str> = None;
    for piece in pieces {
        if let Some(middle) = last {
            match remaining.find(middle) {
                Some(at) => remaining = &remaining[at + middle.len()..],
                None => return false,
            }
        }
        last = Some(piece);
    }
    match last {
        // no star: the whole name must have been the prefix
        None => remaining.is_empty(),
        Some(last) => remaining.ends_with(last),
    }
}

/// A dotted name pattern; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    parts: Vec<Part>,
    text: String,
}

impl NamePattern {
    /// Whether the pattern matches the fully qualified name `full` (e.g. `[schema, table]`).
    pub fn matches(&self, full: &[&str]) -> bool {
        if self.parts.len() > full.len() {
            return false;
        }
        let tail = &full[full.len() - self.parts.len()..];
        self.parts.iter().zip(tail).all(|(p, n)| p.matches(n))
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parse a setting's value into patterns of `min..=max` parts each.
pub fn parse_patterns(value: &str, min: usize, max: usize) -> Result<Vec<NamePattern>, String> {
    let mut patterns = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        // one pattern: parts separated by dots, up to a comma or the end
        let mut parts = Vec::new();
        let mut text = String::new();
        // the first quoted part containing a dot, if any
        let mut dotted: Option<String> = None;
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let part = match chars.peek() {
                None | Some(',') => {
                    if parts.is_empty() {
                        break;
                    }
                    return Err(format!("\"{text}\" ends with a dot"));
                }
                Some('"') => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            None => return Err(format!("unterminated quoted name in \"{value}\"")),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                s.push('"');
                            }
                            Some('"') => break,
                            Some(c) => s.push(c),
                        }
                    }
                    if s.is_empty() {
                        return Err("a quoted name must not be empty".into());
                    }
                    if s.contains('.') {
                        dotted.get_or_insert_with(|| s.clone());
                    }
                    let s = truncate_identifier(&s).to_string();
                    text.push_str(&quote_ident(&s));
                    Part::Exact(s)
                }
                Some(_) => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == '.' || c == ',' || c == '"' || c.is_whitespace() {
                            break;
                        }
                        s.push(c.to_ascii_lowercase());
                        chars.next();
                    }
                    if s.is_empty() {
                        return Err(format!("empty name part in \"{value}\""));
                    }
                    if s.contains('*') {
                        text.push_str(&s);
                        Part::Glob(s)
                    } else {
                        let s = truncate_identifier(&s).to_string();
                        text.push_str(&s);
                        Part::Exact(s)
                    }
                }
            };
            parts.push(part);
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            match chars.peek() {
                Some('.') => {
                    chars.next();
                    text.push('.');
                }
                None | Some(',') => break,
                Some(c) => return Err(format!("unexpected \"{c}\" after \"{text}\"")),
            }
        }
        if !parts.is_empty() {
            if parts.len() < min || parts.len() > max {
                return Err(if min == max {
                    format!("\"{text}\" must have {min} dotted parts")
                } else {
                    format!("\"{text}\" must have {min} to {max} dotted parts")
                });
            }
            if let Some(name) = dotted.filter(|_| parts.len() < max) {
                let split = name
                    .split('.')
                    .map(quote_ident)
                    .collect::<Vec<_>>()
                    .join(".");
                return Err(format!(
                    "{} is one quoted name containing a dot: write {split} for dotted parts, \
                     or qualify it fully to mean a name that contains a dot",
                    quote_ident(&name)
                ));
            }
            patterns.push(NamePattern { parts, text });
        }
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected \"{c}\"")),
        }
    }
    Ok(patterns)
}

/// Quote a name the way `quote_ident` does for the names this module prints: lower-case
/// letters, digits and underscores (not leading with a digit) stay bare.
pub fn quote_ident(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

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

    /// Whether any relation rule is set (otherwise relation names need not be looked up).
    pub fn has_relation_rules(&self) -> bool {
        !self.denied_relations.is_empty() || self.allowed_relations.is_some()
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

/// `a.b.c` with each part quoted where needed.
pub fn qualified(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Vec<_>>()
        .join(".")
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

/// Append `s` to `out` as a JSON string literal.
pub fn push_json_string(out: &mut String, s: &str) {
    let mut bytes = Vec::with_capacity(s.len() + 2);
    push_json_bytes(&mut bytes, s.as_bytes());
    // only ASCII escapes were added to valid UTF-8
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// Append text `s` (in any ASCII-compatible encoding, as every server encoding is) to `out` as
/// a JSON string literal: quote, backslash and control characters escaped, other bytes as they
/// are.
pub fn push_json_bytes(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
    out.push(b'"');
}

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
    use super::*;

    fn pats(s: &str, min: usize, max: usize) -> Vec<NamePattern> {
        parse_patterns(s, min, max).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_lists_with_case_folding_quotes_and_spaces() {
        let p = pats(" HR.* , \"Sales\".\"Q1 2024\",x.\"a\"\"b\" ", 1, 2);
        assert_eq!(p.len(), 3);
        assert!(p[0].matches(&["hr", "employees"]));
        assert!(!p[0].matches(&["HR", "employees"]));
        assert!(p[1].matches(&["Sales", "Q1 2024"]));
        assert!(!p[1].matches(&["sales", "q1 2024"]));
        assert!(p[2].matches(&["x", "a\"b"]));
        assert_eq!(p[1].to_string(), "\"Sales\".\"Q1 2024\"");
        assert!(pats("", 1, 2).is_empty());
        assert!(pats(" , ,", 1, 2).is_empty());
    }

    #[test]
    fn rejects_malformed_patterns() {
        for bad in [
            "a.",
            "a..b",
            "\"unterminated",
            "a.b.c",
            "\"\"",
            "a b",
            "a.\"b\"c",
        ] {
            assert!(parse_patterns(bad, 1, 2).is_err(), "{bad} must not parse");
        }
        assert!(
            parse_patterns("ssn", 2, 3).is_err(),
            "a column needs its table"
        );
    }

    #[test]
    fn names_are_truncated_like_identifiers() {
        let long = "a".repeat(70);
        let p = pats(&format!("public.{long}"), 1, 2);
        assert!(p[0].matches(&["public", &"a".repeat(63)]));
        // quoted and upper case: folded (unquoted) and truncated alike
        let q = pats(&format!("\"{}\"", "B".repeat(64)), 1, 2);
        assert!(q[0].matches(&["s", &"B".repeat(63)]));
        let u = pats(&"C".repeat(64), 1, 2);
        assert!(u[0].matches(&["s", &"c".repeat(63)]));
        // on a character boundary: 62 ASCII bytes then a 2-byte character stops at 62
        let name = format!("{}é", "x".repeat(62));
        assert_eq!(truncate_identifier(&name), "x".repeat(62));
        assert_eq!(truncate_identifier("short"), "short");
        let e = format!("{}ééé", "x".repeat(60));
        assert_eq!(truncate_identifier(&e), format!("{}é", "x".repeat(60)));
        // columns too, in every part
        let c = pats(&format!("{long}.{long}.{long}"), 2, 3);
        let t = "a".repeat(63);
        assert!(c[0].matches(&[&t, &t, &t]));
        // a glob is a pattern, not an identifier
        let g = pats(&format!("{long}*"), 1, 2);
        assert!(!g[0].matches(&["s", &t]));
    }

    #[test]
    fn a_quoted_dot_that_looks_like_a_separator_is_refused() {
        let err = parse_patterns("\"public.salaries\"", 1, 2).unwrap_err();
        assert!(err.contains("write public.salaries"), "{err}");
        assert!(parse_patterns("x, \"hr.emp\".ssn", 2, 3).is_err());
        assert!(parse_patterns("\"a.b\"", 1, 2).is_err());
        // fully qualified, a name with a dot is taken as written
        let p = pats("public.\"odd.name\"", 1, 2);
        assert!(p[0].matches(&["public", "odd.name"]));
        let c = pats("s.\"t.x\".c", 2, 3);
        assert!(c[0].matches(&["s", "t.x", "c"]));
    }

    #[test]
    fn unqualified_patterns_match_any_schema() {
        let p = pats("salaries", 1, 2);
        assert!(p[0].matches(&["hr", "salaries"]));
        assert!(p[0].matches(&["public", "salaries"]));
        assert!(!p[0].matches(&["hr", "salaries_2024"]));
    }

    #[test]
    fn globs_match_within_a_part_only() {
        assert!(glob_match("pg_stat_*", "pg_stat_reset"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("pg_sleep*", "xpg_sleep"));
        assert!(glob_match("*_to_xml", "query_to_xml"));
        assert!(!glob_match("*_to_xml", "query_to_xml2"));
        let p = pats("hr.*", 1, 2);
        assert!(!p[0].matches(&["hr2", "x"]));
        // a quoted star is a literal star
        let q = pats("\"*\"", 1, 2);
        assert!(q[0].matches(&["s", "*"]));
        assert!(!q[0].matches(&["s", "x"]));
    }

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

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}é€");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é€\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(v, serde_json::Value::from("a\"b\\c\nd\u{1}é€"));
        // bytes that are not UTF-8 (a LATIN1 database) pass through untouched
        let mut b = Vec::new();
        push_json_bytes(&mut b, b"caf\xe9\x01");
        assert_eq!(b, b"\"caf\xe9\\u0001\"");
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

    #[test]
    fn quoting_names() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("my table"), "\"my table\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(qualified(&["hr", "a\"b"]), "hr.\"a\"\"b\"");
    }
}
