//! Execution accuracy: whether a query's result matches the expected query's.
//!
//! - [`same_result`], the standard comparison: the results are equal as multisets of rows
//!   (duplicates count), column order is ignored (some permutation of the columns makes them
//!   equal) and row order counts only when the expected SQL orders its outermost query
//!   ([`orders_rows`]);
//! - [`same_set`], the BIRD variant: equal as sets of rows (duplicates and row order ignored),
//!   columns in the order given.
//!
//! Cells compare by value: NULL equals NULL (as in the Spider and BIRD evaluators), numbers
//! and numeric strings (`numeric` comes as text) compare as numbers to 7 significant digits,
//! so `0.1 + 0.2` matches `0.3` and `12` matches `12.0`.

use serde_json::Value;

/// Most column permutations tried before giving up (wide results with many equal columns).
const MAX_PERMUTATIONS: usize = 20_000;

/// The comparison key of one cell.
pub fn cell_key(value: &Value) -> String {
    match value {
        Value::Null => "\u{2205}".to_string(),
        Value::Bool(b) => format!("b:{b}"),
        Value::Number(n) => n.as_f64().map_or_else(|| format!("n:{n}"), number_key),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && looks_numeric(s.trim()) => number_key(f),
            _ => format!("s:{s}"),
        },
        other => format!("j:{other}"),
    }
}

/// Digits, sign, point and exponent only (not `inf`, `NaN` or `1_000`).
fn looks_numeric(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        && s.chars().any(|c| c.is_ascii_digit())
}

fn number_key(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return format!("n:{}", f as i64);
    }
    let rounded = format!("{f:.6e}");
    match rounded.parse::<f64>() {
        Ok(g) if g.fract() == 0.0 && g.abs() < 9.0e15 => format!("n:{}", g as i64),
        _ => format!("n:{rounded}"),
    }
}

fn keyed(rows: &[Vec<Value>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(cell_key).collect())
        .collect()
}

/// Whether the outermost query of `sql` has an ORDER BY (one outside every parenthesis,
/// string and quoted name).
pub fn orders_rows(sql: &str) -> bool {
    let mut depth = 0i32;
    let mut top = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                top.push(' ');
            }
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => top.push(c.to_ascii_lowercase()),
            _ => {}
        }
    }
    let words: Vec<&str> = top.split_whitespace().collect();
    words.windows(2).any(|w| w == ["order", "by"])
}

/// The standard comparison (see the module documentation).
pub fn same_result(expected: &[Vec<Value>], got: &[Vec<Value>], ordered: bool) -> bool {
    if expected.len() != got.len() {
        return false;
    }
    let e = keyed(expected);
    let g = keyed(got);
    let width = e.first().map_or(0, Vec::len);
    if e.iter().chain(&g).any(|r| r.len() != width) {
        // ragged or different widths; no rows at all compare equal
        return e.is_empty() && g.is_empty();
    }
    if width == 0 {
        return true;
    }
    // the columns of `got` that could stand for each expected column: same multiset of values
    let column = |rows: &[Vec<String>], j: usize| -> Vec<String> {
        let mut c: Vec<String> = rows.iter().map(|r| r[j].clone()).collect();
        c.sort_unstable();
        c
    };
    let expected_columns: Vec<Vec<String>> = (0..width).map(|j| column(&e, j)).collect();
    let got_columns: Vec<Vec<String>> = (0..width).map(|j| column(&g, j)).collect();
    let candidates: Vec<Vec<usize>> = expected_columns
        .iter()
        .map(|ec| (0..width).filter(|&c| got_columns[c] == *ec).collect())
        .collect();
    if candidates.iter().any(Vec::is_empty) {
        return false;
    }
    let mut sorted_e = e.clone();
    if !ordered {
        sorted_e.sort_unstable();
    }
    let mut tried = 0usize;
    let mut assignment: Vec<usize> = Vec::with_capacity(width);
    let mut used = vec![false; width];
    search(
        &candidates,
        &mut assignment,
        &mut used,
        &mut tried,
        &mut |perm: &[usize]| {
            let mut permuted: Vec<Vec<String>> = g
                .iter()
                .map(|r| perm.iter().map(|&c| r[c].clone()).collect())
                .collect();
            if !ordered {
                permuted.sort_unstable();
            }
            permuted == sorted_e
        },
    )
}

fn search(
    candidates: &[Vec<usize>],
    assignment: &mut Vec<usize>,
    used: &mut [bool],
    tried: &mut usize,
    check: &mut dyn FnMut(&[usize]) -> bool,
) -> bool {
    if assignment.len() == candidates.len() {
        *tried += 1;
        return check(assignment);
    }
    for &c in &candidates[assignment.len()] {
        if used[c] || *tried >= MAX_PERMUTATIONS {
            continue;
        }
        used[c] = true;
        assignment.push(c);
        if search(candidates, assignment, used, tried, check) {
            return true;
        }
        assignment.pop();
        used[c] = false;
    }
    false
}

/// The BIRD variant: equal as sets of rows, columns in the order given.
pub fn same_set(expected: &[Vec<Value>], got: &[Vec<Value>]) -> bool {
    let set = |rows: &[Vec<Value>]| -> std::collections::BTreeSet<Vec<String>> {
        keyed(rows).into_iter().collect()
    };
    set(expected) == set(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Vec<Value>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_array().unwrap().clone())
            .collect()
    }

    #[test]
    fn column_order_is_ignored_row_order_only_when_ordered() {
        let e = rows(json!([["a", 1], ["b", 2]]));
        let swapped_columns = rows(json!([[1, "a"], [2, "b"]]));
        let swapped_rows = rows(json!([["b", 2], ["a", 1]]));
        assert!(same_result(&e, &swapped_columns, false));
        assert!(same_result(&e, &swapped_columns, true));
        assert!(same_result(&e, &swapped_rows, false));
        assert!(!same_result(&e, &swapped_rows, true));
        // a permutation of the columns must hold for every row at once
        let mixed = rows(json!([["a", 2], ["b", 1]]));
        assert!(!same_result(&e, &mixed, false));
        // BIRD: set of rows in the given column order
        assert!(same_set(&e, &swapped_rows));
        assert!(!same_set(&e, &swapped_columns));
    }

    #[test]
    fn duplicates_count_except_in_the_set_variant() {
        let e = rows(json!([["a"], ["a"], ["b"]]));
        let once = rows(json!([["a"], ["b"]]));
        let other = rows(json!([["a"], ["b"], ["b"]]));
        assert!(!same_result(&e, &once, false));
        assert!(!same_result(&e, &other, false));
        assert!(same_set(&e, &once));
        assert!(same_set(&e, &other));
    }

    #[test]
    fn nulls_and_floats() {
        let e = rows(json!([[null, 0.3], ["x", 12]]));
        assert!(same_result(
            &e,
            &rows(json!([[null, 0.30000000000000004], ["x", 12.0]])),
            false
        ));
        // numeric comes as text
        assert!(same_result(
            &e,
            &rows(json!([[null, "0.3"], ["x", "12"]])),
            false
        ));
        // NULL is not the empty string, nor zero
        assert!(!same_result(
            &e,
            &rows(json!([["", 0.3], ["x", 12]])),
            false
        ));
        assert!(!same_result(
            &rows(json!([[null]])),
            &rows(json!([[0]])),
            false
        ));
        // a different value beyond rounding noise
        assert!(!same_result(
            &e,
            &rows(json!([[null, 0.31], ["x", 12]])),
            false
        ));
        // a text that only looks like a number stays text
        assert_ne!(cell_key(&json!("NaN")), cell_key(&json!("nan")));
    }

    #[test]
    fn ties_and_limits() {
        // two customers tied at 10: either order is right when the query orders by the amount
        // only, but the comparison cannot know the sort keys, so an ordered expected result
        // needs the same order; an unordered one does not
        let e = rows(json!([["ann", 10], ["bob", 10], ["cy", 5]]));
        let tie_swapped = rows(json!([["bob", 10], ["ann", 10], ["cy", 5]]));
        assert!(same_result(&e, &tie_swapped, false));
        assert!(!same_result(&e, &tie_swapped, true));
        // LIMIT 1 through a tie picks another row: not the same answer
        assert!(!same_result(
            &rows(json!([["ann", 10]])),
            &rows(json!([["bob", 10]])),
            false
        ));
        // different row counts or widths
        assert!(!same_result(&e, &e[..2], false));
        assert!(!same_result(
            &e,
            &rows(json!([["ann"], ["bob"], ["cy"]])),
            false
        ));
        assert!(same_result(&[], &[], true));
    }

    #[test]
    fn equal_columns_need_the_right_permutation() {
        // both columns hold the same multiset; only one pairing matches row by row
        let e = rows(json!([[1, 2], [2, 1], [3, 3]]));
        let g = rows(json!([[2, 1], [1, 2], [3, 3]]));
        assert!(same_result(&e, &g, false));
        let g2 = rows(json!([[1, 1], [2, 2], [3, 3]]));
        assert!(!same_result(&e, &g2, false));
    }

    #[test]
    fn outermost_order_by() {
        assert!(orders_rows("SELECT a FROM t ORDER BY a"));
        assert!(orders_rows(
            "WITH x AS (SELECT 1) SELECT * FROM x order\n by 1 LIMIT 5"
        ));
        assert!(!orders_rows("SELECT * FROM (SELECT a FROM t ORDER BY a) s"));
        assert!(!orders_rows("SELECT 'order by' FROM t"));
        assert!(!orders_rows(
            "SELECT a, row_number() OVER (ORDER BY a) FROM t"
        ));
    }
}
