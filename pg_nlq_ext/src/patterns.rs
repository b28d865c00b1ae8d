//! The name patterns of the `pg_nlq.*` relation, column and function settings, as plain
//! Rust: parsing, matching, and quoting names the way messages show them. Nothing here needs a
//! backend.
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
pub fn glob_match(pattern: &str, name: &str) -> bool {
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

/// `a.b.c` with each part quoted where needed.
pub fn qualified(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| quote_ident(p))
        .collect::<Vec<_>>()
        .join(".")
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
    fn quoting_names() {
        assert_eq!(quote_ident("orders"), "orders");
        assert_eq!(quote_ident("Orders"), "\"Orders\"");
        assert_eq!(quote_ident("my table"), "\"my table\"");
        assert_eq!(quote_ident("1x"), "\"1x\"");
        assert_eq!(qualified(&["hr", "a\"b"]), "hr.\"a\"\"b\"");
    }
}
