//! What the command line adds to the shared texts: its parser's checks (the row limit), the
//! names of its flags where the shared messages name MCP fields, and a syntax error's position
//! shown with a caret under the SQL.

use mcp_bridge::answer::ToolError;
use mcp_bridge::error::BridgeError;

/// The rule for a row limit, as every surface states it.
pub const LIMIT_RULE: &str =
    "a row limit is at least 1 and at most pipeline.max_row_limit (10000 unless configured)";

/// `--limit N`: a whole number of at least 1 (the upper bound, `pipeline.max_row_limit`, is
/// the configuration's and checked once it is read, by the pipeline).
pub fn parse_limit(text: &str) -> Result<u32, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if n >= 1 => {
            u32::try_from(n).map_err(|_| format!("{n} is too many rows: {LIMIT_RULE}"))
        }
        Ok(n) => Err(format!("{n} is too few rows: {LIMIT_RULE}")),
        Err(_) => Err(format!("{text:?} is not a whole number: {LIMIT_RULE}")),
    }
}

/// The MCP fields the shared messages name (always in backquotes), and the flag or command
/// the command line has for each.
const FLAGS: [(&str, &str); 5] = [
    ("`database`", "`--db`"),
    ("`row_limit`", "`--limit`"),
    ("`return_mode`", "`--return`"),
    ("`test_run`", "`--no-test-run`"),
    ("list_databases", "`pg-nlq-bridge check-config`"),
];

/// A message of the bridge's own, with the MCP fields it names replaced by the command line's
/// flags.
pub fn with_flags(message: &str) -> String {
    FLAGS
        .iter()
        .fold(message.to_string(), |text, (field, flag)| {
            text.replace(field, flag)
        })
}

/// The error as the command line says it: the bridge's own message and the attempts' with the
/// command line's flag names (what the server or the model said, the detail, is left as it is).
pub fn cli_error(mut err: ToolError) -> ToolError {
    err.message = with_flags(&err.message);
    for attempt in &mut err.attempts {
        attempt.message = with_flags(&attempt.message);
    }
    err
}

/// [`cli_error`] for the errors of set-up and of the commands that are not tools.
pub fn cli_bridge_error(err: BridgeError) -> BridgeError {
    match err {
        BridgeError::Tool(tool) => BridgeError::Tool(cli_error(tool)),
        BridgeError::Config(message) => BridgeError::Config(with_flags(&message)),
        other => other,
    }
}

/// The line of `sql` holding the 1-based character `position`, and a caret under that
/// character (tabs kept in the caret's indent, so that it lines up): `None` when the position
/// is outside the SQL.
pub fn caret(sql: &str, position: i64) -> Option<String> {
    let target = usize::try_from(position).ok()?.checked_sub(1)?;
    let mut line_start = 0usize; // in characters
    let mut line = String::new();
    let mut found = None;
    for (i, c) in sql.chars().enumerate() {
        if c == '\n' {
            if found.is_some() {
                break;
            }
            line.clear();
            line_start = i + 1;
            continue;
        }
        if i == target {
            found = Some(i - line_start);
        }
        line.push(c);
    }
    let column = found?;
    let line = line.trim_end_matches('\r');
    let indent: String = line
        .chars()
        .take(column)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    Some(format!("  {line}\n  {indent}^\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_follow_one_rule() {
        assert_eq!(parse_limit("5"), Ok(5));
        assert_eq!(parse_limit("1"), Ok(1));
        for bad in ["0", "-1", "x", "1.5", "99999999999"] {
            let e = parse_limit(bad).unwrap_err();
            assert!(e.contains("at least 1"), "{bad}: {e}");
            assert!(e.contains("pipeline.max_row_limit"), "{bad}: {e}");
        }
    }

    #[test]
    fn messages_name_flags_not_fields() {
        let e = with_flags("several databases are available; say which one with `database`: a, b");
        assert_eq!(
            e,
            "several databases are available; say which one with `--db`: a, b"
        );
        assert_eq!(
            with_flags("no database is available: see list_databases for each one's state"),
            "no database is available: see `pg-nlq-bridge check-config` for each one's state"
        );
        // a word that is not a quoted field stays
        assert_eq!(with_flags("the database shop"), "the database shop");
    }

    /// The shared texts the command line rewrites still name the fields as [`FLAGS`] has them.
    #[tokio::test]
    async fn the_shared_lookup_messages_are_rewritten() {
        use mcp_bridge::registry::Registry;
        use mcp_bridge::settings::Settings;
        let env = std::collections::BTreeMap::new();
        let settings = Settings::from_toml(
            "[[servers]]\nurl = \"host=127.0.0.1 port=1 user=u dbname=postgres\"\n\
             databases = [\"a\", \"b\"]\n",
            "t",
            &env,
        )
        .unwrap();
        let registry = Registry::new(&settings);
        registry.discover_all().await.unwrap();
        let err = cli_error(registry.lookup(None).err().unwrap());
        assert!(err.message.contains("with `--db`: a, b"), "{}", err.message);
        assert!(!err.message.contains("`database`"), "{}", err.message);
        // over MCP the field keeps its name
        let mcp = registry.lookup(None).err().unwrap();
        assert!(mcp.message.contains("`database`"), "{}", mcp.message);

        let empty = Settings::from_toml(
            "[[servers]]\nurl = \"host=127.0.0.1 port=1 user=u dbname=postgres\"\n\
             databases = [\"a\"]\nexclude = [\"a\"]\n",
            "t",
            &env,
        )
        .unwrap();
        let registry = Registry::new(&empty);
        registry.discover_all().await.unwrap();
        let err = cli_error(registry.lookup(None).err().unwrap());
        assert!(
            err.message.contains("pg-nlq-bridge check-config"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_caret_points_at_the_character() {
        assert_eq!(caret("SELEC 1", 1).unwrap(), "  SELEC 1\n  ^\n");
        assert_eq!(
            caret("SELECT 1 FROM", 14),
            None,
            "past the end there is nothing to point at"
        );
        assert_eq!(
            caret("SELECT *\nFROM t\nWHER x", 17).unwrap(),
            "  WHER x\n  ^\n"
        );
        assert_eq!(
            caret("SELECT *\nFROM t\nWHER x", 22).unwrap(),
            "  WHER x\n       ^\n"
        );
        // characters, not bytes; tabs kept so the caret lines up
        assert_eq!(
            caret("SELECT 'é', \tx y", 16).unwrap(),
            "  SELECT 'é', \tx y\n              \t  ^\n"
        );
        assert_eq!(caret("x", 0), None);
        assert_eq!(caret("x", -3), None);
    }
}
