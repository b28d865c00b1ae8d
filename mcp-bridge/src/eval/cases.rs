//! Evaluation cases: `fixtures/TEST_QUERIES.md`'s format (the one parser of it; the fixture test
//! uses it too) or JSON lines (`question`, `database`, `sql`, optional `evidence`, `id`,
//! `level`), so BIRD or Spider cases can be brought as they are.

use std::collections::HashSet;

use crate::linking::tokenize::is_cjk;

/// One case: a question (in one or both phrasings) over one database and the SQL that answers
/// it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Case {
    pub database: String,
    pub level: String,
    pub id: String,
    pub title: String,
    /// The Chinese phrasing (empty when the case has none).
    pub question_zh: String,
    /// The English phrasing (empty when the case has none).
    pub question_en: String,
    pub sql: String,
    /// Other SQL accepted as a right answer (`可接受 SQL：` lines), for questions with more
    /// than one reasonable reading.
    pub alternatives: Vec<String>,
    /// External knowledge given with the question (BIRD's `evidence`).
    pub evidence: Option<String>,
    /// Line of the case in its file (1-based).
    pub line: usize,
}

impl Case {
    /// The expected SQL and then every accepted alternative.
    pub fn all_sql(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.sql.as_str()).chain(self.alternatives.iter().map(String::as_str))
    }

    /// The phrasings present, as (`"en"` or `"zh"`, question).
    pub fn phrasings(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if !self.question_en.is_empty() {
            out.push(("en", self.question_en.as_str()));
        }
        if !self.question_zh.is_empty() {
            out.push(("zh", self.question_zh.as_str()));
        }
        out
    }
}

const ZH_PREFIX: &str = "    自然语言：";
const EN_PREFIX: &str = "    Question: ";
const SQL_PREFIX: &str = "    期望 SQL：";
const ALT_PREFIX: &str = "    可接受 SQL：";

/// Reads a cases file: JSON lines when its first non-blank character is `{`, else the markdown
/// format.
pub fn parse_cases_file(text: &str) -> Result<Vec<Case>, String> {
    if text.trim_start().starts_with('{') {
        parse_json_lines(text)
    } else {
        parse_markdown(text)
    }
}

/// One statement on one line ending with ';', returned without it.
fn one_statement(value: &str, id: &str, n: usize) -> Result<String, String> {
    let sql = value
        .trim()
        .strip_suffix(';')
        .ok_or_else(|| format!("line {n}: case {id}: the SQL must end with ';'"))?
        .trim_end()
        .to_string();
    if sql.is_empty() {
        return Err(format!("line {n}: case {id}: empty SQL"));
    }
    if sql.contains(';') {
        return Err(format!(
            "line {n}: case {id}: the SQL must be a single statement"
        ));
    }
    Ok(sql)
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '/')
}

/// Parses the cases of a TEST_QUERIES.md. Anything before the first `## ` heading is free
/// introduction; after it only database headings (`## nlq_x`), level headings (`### simple`
/// ...), blank lines and case entries are allowed: four lines (`* ID: title`, `自然语言：`,
/// `Question: `, `期望 SQL：`), then any number of `可接受 SQL：` lines (alternative accepted
/// SQL). Ids are unique; a level appears once per database.
pub fn parse_markdown(markdown: &str) -> Result<Vec<Case>, String> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut cases: Vec<Case> = Vec::new();
    let mut ids = HashSet::new();
    let mut database: Option<String> = None;
    let mut level: Option<String> = None;
    let mut seen_levels: HashSet<(String, String)> = HashSet::new();
    let mut in_body = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        if let Some(name) = line.strip_prefix("## ") {
            let name = name.trim();
            if !is_name(name) {
                return Err(format!("line {n}: malformed database heading '## {name}'"));
            }
            database = Some(name.to_string());
            level = None;
            in_body = true;
        } else if let Some(name) = line.strip_prefix("### ") {
            let name = name.trim();
            let db = database
                .clone()
                .ok_or_else(|| format!("line {n}: level heading before any database heading"))?;
            if !is_name(name) {
                return Err(format!("line {n}: malformed level heading '### {name}'"));
            }
            if !seen_levels.insert((db.clone(), name.to_string())) {
                return Err(format!("line {n}: level '{name}' appears twice under {db}"));
            }
            level = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("* ") {
            let (db, lvl) = match (&database, &level) {
                (Some(d), Some(l)) => (d.clone(), l.clone()),
                _ => {
                    return Err(format!(
                        "line {n}: case outside a database and level section"
                    ))
                }
            };
            let (id, title) = rest
                .split_once(": ")
                .ok_or_else(|| format!("line {n}: expected '* ID: title'"))?;
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(format!("line {n}: malformed case id '{id}'"));
            }
            if title.trim().is_empty() {
                return Err(format!("line {n}: case {id} has no title"));
            }
            if !ids.insert(id.to_string()) {
                return Err(format!("line {n}: duplicate case id {id}"));
            }
            let field = |offset: usize, prefix: &str, what: &str| -> Result<String, String> {
                let l = lines.get(i + offset).ok_or_else(|| {
                    format!("line {}: case {id} ends before its {what} line", n + offset)
                })?;
                let value = l
                    .strip_prefix(prefix)
                    .ok_or_else(|| {
                        format!(
                            "line {}: case {id}: expected '{}…' ({what})",
                            n + offset,
                            prefix.trim_start()
                        )
                    })?
                    .trim();
                if value.is_empty() {
                    return Err(format!("line {}: case {id}: empty {what}", n + offset));
                }
                Ok(value.to_string())
            };
            let question_zh = field(1, ZH_PREFIX, "Chinese question")?;
            let question_en = field(2, EN_PREFIX, "English question")?;
            let sql = one_statement(&field(3, SQL_PREFIX, "expected SQL")?, id, n + 3)?;
            let mut alternatives = Vec::new();
            let mut next = i + 4;
            while let Some(alt) = lines.get(next).and_then(|l| l.strip_prefix(ALT_PREFIX)) {
                let alt = one_statement(alt, id, next + 1)?;
                if alt == sql || alternatives.contains(&alt) {
                    return Err(format!(
                        "line {}: case {id}: alternative SQL repeats another SQL of the case",
                        next + 1
                    ));
                }
                alternatives.push(alt);
                next += 1;
            }
            cases.push(Case {
                database: db,
                level: lvl,
                id: id.to_string(),
                title: title.trim().to_string(),
                question_zh,
                question_en,
                sql,
                alternatives,
                evidence: None,
                line: n,
            });
            i = next;
            continue;
        } else if in_body && !line.trim().is_empty() {
            return Err(format!(
                "line {n}: unexpected text in the cases section: '{line}'"
            ));
        }
        i += 1;
    }
    Ok(cases)
}

#[derive(serde::Deserialize)]
struct JsonCase {
    question: String,
    database: String,
    sql: String,
    #[serde(default)]
    evidence: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    level: Option<String>,
}

/// Parses JSON lines, one case per non-blank line. A question with Chinese, Japanese or Korean
/// characters counts as the `zh` phrasing, any other as `en`. Without an `id`, the case is named
/// by its line (`L12`); without a `level`, it is `unknown`.
pub fn parse_json_lines(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let c: JsonCase =
            serde_json::from_str(line).map_err(|e| format!("line {n}: not a case: {e}"))?;
        let id = match c.id {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(x)) => x.to_string(),
            Some(other) => {
                return Err(format!(
                    "line {n}: id must be a string or a number, not {other}"
                ))
            }
            None => format!("L{n}"),
        };
        if !ids.insert(id.clone()) {
            return Err(format!("line {n}: duplicate case id {id}"));
        }
        let sql = c.sql.trim().trim_end_matches(';').trim_end().to_string();
        if c.question.trim().is_empty() || sql.is_empty() || c.database.trim().is_empty() {
            return Err(format!(
                "line {n}: case {id}: question, database and sql must not be empty"
            ));
        }
        let question = c.question.trim().to_string();
        let chinese = question.chars().any(is_cjk);
        cases.push(Case {
            database: c.database.trim().to_string(),
            level: c.level.unwrap_or_else(|| "unknown".to_string()),
            title: String::new(),
            question_zh: if chinese {
                question.clone()
            } else {
                String::new()
            },
            question_en: if chinese { String::new() } else { question },
            id,
            sql,
            alternatives: Vec::new(),
            evidence: c.evidence.filter(|e| !e.trim().is_empty()),
            line: n,
        });
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# T\n\n## db1\n\n### simple\n\n* A-01: count\n    自然语言：有多少客户？\n    Question: How many customers?\n    期望 SQL：SELECT count(*) FROM c;\n    可接受 SQL：SELECT count(id) FROM c;\n";

    #[test]
    fn markdown_and_json_lines() {
        let md = parse_cases_file(SAMPLE).unwrap();
        assert_eq!(md.len(), 1);
        assert_eq!(
            md[0].alternatives,
            vec!["SELECT count(id) FROM c".to_string()]
        );
        assert_eq!(md[0].phrasings().len(), 2);
        let jl = parse_cases_file(
            "{\"question\":\"How many?\",\"database\":\"db1\",\"sql\":\"SELECT 1;\",\"id\":7}\n\n{\"question\":\"多少？\",\"database\":\"db1\",\"sql\":\"SELECT 2\",\"evidence\":\"x\",\"level\":\"hard\"}\n",
        )
        .unwrap();
        assert_eq!(jl.len(), 2);
        assert_eq!((jl[0].id.as_str(), jl[0].sql.as_str()), ("7", "SELECT 1"));
        assert_eq!(jl[0].phrasings(), vec![("en", "How many?")]);
        assert_eq!(jl[1].phrasings(), vec![("zh", "多少？")]);
        assert_eq!((jl[1].id.as_str(), jl[1].level.as_str()), ("L3", "hard"));
        assert_eq!(jl[1].evidence.as_deref(), Some("x"));
        assert!(parse_json_lines("{\"question\":\"q\"}").is_err());
        assert!(parse_json_lines(
            "{\"question\":\"q\",\"database\":\"d\",\"sql\":\"s\",\"id\":\"a\"}\n{\"question\":\"q\",\"database\":\"d\",\"sql\":\"s\",\"id\":\"a\"}"
        )
        .is_err());
    }
}
