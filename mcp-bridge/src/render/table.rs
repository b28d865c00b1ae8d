//! Result rows as an aligned table in the style of psql, and the one-cell text of a value:
//! on one line, escaped, cut, with any closing fence tag neutralised (the rows are data from
//! the database; [`super::render`] puts the table inside the fence).

use std::fmt::Write as _;

use serde_json::Value;
use unicode_width::UnicodeWidthStr;

use crate::answer::ResultColumn;
use crate::untrusted::neutralise as neutralise_fence;

/// Widest a cell is shown, in characters; longer values end with `…`.
const MAX_CELL_CHARS: usize = 60;
/// Most rows shown in the text; the structured content always has them all.
const MAX_TEXT_ROWS: usize = 500;

/// An aligned table in the style of psql: a header, a rule, one line per row; numeric columns
/// right-aligned, NULL shown as `NULL`, long values cut.
pub fn table(columns: &[ResultColumn], rows: &[Vec<Value>]) -> String {
    if columns.is_empty() {
        return "(no columns)\n".to_string();
    }
    let shown = rows.len().min(MAX_TEXT_ROWS);
    let header: Vec<String> = columns.iter().map(|c| cell_text(&c.name)).collect();
    let cells: Vec<Vec<String>> = rows[..shown]
        .iter()
        .map(|row| {
            (0..columns.len())
                .map(|i| row.get(i).map_or_else(String::new, value_text))
                .collect()
        })
        .collect();
    let numeric: Vec<bool> = (0..columns.len())
        .map(|i| {
            rows[..shown]
                .iter()
                .any(|r| matches!(r.get(i), Some(Value::Number(_))))
                && rows[..shown]
                    .iter()
                    .all(|r| matches!(r.get(i), Some(Value::Number(_) | Value::Null) | None))
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].width())
                .chain(std::iter::once(header[i].width()))
                .max()
                .unwrap_or(0)
        })
        .collect();

    let mut out = String::new();
    push_line(&mut out, &header, &widths, &vec![false; columns.len()]);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
    out.push_str(&rule.join("+"));
    out.push('\n');
    for row in &cells {
        push_line(&mut out, row, &widths, &numeric);
    }
    if rows.is_empty() {
        out.push_str("(no rows)\n");
    } else if shown < rows.len() {
        let _ = writeln!(
            out,
            "... {} more rows not shown here (all rows are in the structured content)",
            rows.len() - shown
        );
    }
    out
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize], right: &[bool]) {
    let mut parts = Vec::with_capacity(cells.len());
    for ((cell, width), right) in cells.iter().zip(widths).zip(right) {
        let pad = width.saturating_sub(cell.width());
        if *right {
            parts.push(format!(" {}{cell} ", " ".repeat(pad)));
        } else {
            parts.push(format!(" {cell}{} ", " ".repeat(pad)));
        }
    }
    out.push_str(parts.join("|").trim_end());
    out.push('\n');
}

/// One value as a cell.
fn value_text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(s) => cell_text(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => cell_text(&other.to_string()),
    }
}

/// A value on one line (control characters escaped), cut to [`MAX_CELL_CHARS`], with any
/// closing fence tag neutralised.
pub(super) fn cell_text(raw: &str) -> String {
    let mut flat = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '\n' => flat.push_str("\\n"),
            '\r' => flat.push_str("\\r"),
            '\t' => flat.push_str("\\t"),
            c if c.is_control() || crate::untrusted::is_deceptive(c) => {
                let _ = write!(flat, "\\u{{{:x}}}", c as u32);
            }
            c => flat.push(c),
        }
    }
    neutralise_fence(&crate::text::clip(&flat, MAX_CELL_CHARS - 1))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// Columns from `(name, type)` pairs.
    pub(in crate::render) fn columns(names: &[(&str, &str)]) -> Vec<ResultColumn> {
        names
            .iter()
            .map(|(n, t)| ResultColumn {
                name: n.to_string(),
                type_name: t.to_string(),
            })
            .collect()
    }

    #[test]
    fn table_is_aligned_and_numbers_right_aligned() {
        let text = table(
            &columns(&[("name", "text"), ("total", "bigint")]),
            &[
                vec![json!("Alice"), json!(12)],
                vec![json!("Bo"), json!(1234)],
                vec![Value::Null, Value::Null],
            ],
        );
        assert_eq!(
            text,
            " name  | total\n-------+-------\n Alice |    12\n Bo    |  1234\n NULL  |  NULL\n"
        );
    }

    #[test]
    fn long_and_multi_line_cells_are_flattened_and_cut() {
        let long = "x".repeat(200);
        let text = table(
            &columns(&[("v", "text")]),
            &[vec![json!(format!("a\nb{long}"))]],
        );
        let line = text.lines().nth(2).unwrap();
        assert!(line.starts_with(" a\\nb"), "{line}");
        assert!(line.ends_with('…'), "{line}");
        assert_eq!(line.trim().chars().count(), MAX_CELL_CHARS);
    }
}
