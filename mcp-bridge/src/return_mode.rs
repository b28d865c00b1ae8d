//! The return mode a question asks for by its wording ("just the SQL", "只要SQL", "show the
//! query and the result"), when the caller did not say.

use crate::answer::ReturnMode;

/// English phrases asking for the SQL only (matched on word boundaries, lower case).
const SQL_ONLY_EN: &[&str] = &[
    "just give me the sql",
    "just give me the query",
    "just the sql",
    "just the query",
    "just show me the sql",
    "just show the sql",
    "just write the sql",
    "just sql",
    "only the sql",
    "only the query",
    "only sql",
    "sql only",
    "sql query only",
    "query only",
    "only give me the sql",
    "only show me the sql",
    "only show the sql",
    "only want the sql",
    "only need the sql",
    "only return the sql",
    "return the sql only",
    "don't run it",
    "dont run it",
    "do not run it",
    "don't execute it",
    "do not execute it",
    "don't run the query",
    "do not run the query",
    "don't execute the query",
    "do not execute the query",
    "without running it",
    "without running the query",
    "without executing it",
    "without executing the query",
    "no need to run it",
    "no need to execute it",
];

/// English phrases asking for the SQL and the rows.
const BOTH_EN: &[&str] = &[
    "sql and the results",
    "sql and the result",
    "sql and results",
    "sql and the rows",
    "sql and rows",
    "sql and the data",
    "sql and the output",
    "query and the results",
    "query and the result",
    "query and results",
    "query and the rows",
    "query and rows",
    "results and the sql",
    "results and the query",
    "result and the sql",
    "rows and the sql",
    "rows and the query",
    "both the sql",
    "both the query",
    "sql as well as",
    "sql along with",
    "also show the sql",
    "also show me the sql",
    "also show the query",
    "also give me the sql",
    "and show me the sql",
    "and show the sql",
    "and show me the query",
    "and show the query",
    "show me the sql too",
    "including the sql",
    "with the sql used",
];

/// Chinese phrases asking for the SQL only (matched without spaces, lower case).
const SQL_ONLY_ZH: &[&str] = &[
    "只要sql",
    "只给我sql",
    "只给sql",
    "只需要sql",
    "只需sql",
    "只要语句",
    "只要查询语句",
    "只给我查询语句",
    "只写sql",
    "只生成sql",
    "只输出sql",
    "只返回sql",
    "仅sql",
    "仅需sql",
    "仅返回sql",
    "sql就行",
    "sql就好",
    "sql即可",
    "不要执行",
    "不用执行",
    "无需执行",
    "不需要执行",
    "别执行",
    "不要运行",
    "不用运行",
    "无需运行",
    "不需要运行",
];

/// Chinese phrases asking for the SQL and the rows.
const BOTH_ZH: &[&str] = &[
    "sql和结果",
    "sql和查询结果",
    "sql以及结果",
    "sql以及查询结果",
    "sql与结果",
    "sql及结果",
    "sql和数据",
    "语句和结果",
    "结果和sql",
    "结果以及sql",
    "结果与sql",
    "同时给出sql",
    "同时给我sql",
    "同时显示sql",
    "并给出sql",
    "并显示sql",
    "并附上sql",
    "附上sql",
    "顺便给出sql",
    "也给出sql",
    "也要sql",
    "连同sql",
];

/// The return mode a question asks for in words ("just give me the SQL", "只要SQL" → `Sql`;
/// "the SQL and the results", "SQL和结果" → `Both`); `None` when it does not say.
pub fn infer_return_mode(question: &str) -> Option<ReturnMode> {
    let lower = question.to_lowercase().replace(['’', '‘'], "'");
    // "SQL Server", "SQL 语句" are not requests for SQL.
    let english = lower
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("sql server", "sqlserver");
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.replace("sqlserver", "");

    let english_has = |phrases: &[&str], and_follows: bool| {
        phrases
            .iter()
            .any(|p| contains_phrase(&english, p, and_follows))
    };
    // "不要执行的任务" (the tasks not to run) describes data, not the request.
    let chinese_has = |phrases: &[&str]| {
        phrases.iter().any(|p| {
            compact
                .match_indices(p)
                .any(|(i, m)| !compact[i + m.len()..].starts_with('的'))
        })
    };
    if english_has(SQL_ONLY_EN, false) || chinese_has(SQL_ONLY_ZH) {
        Some(ReturnMode::Sql)
    } else if english_has(BOTH_EN, true) || chinese_has(BOTH_ZH) {
        Some(ReturnMode::Both)
    } else {
        None
    }
}

/// Words that may follow a request phrase ("just the SQL for ...", "SQL only please"); any
/// other word makes it part of a description ("only the query builder product").
const FOLLOWERS: &[&str] = &[
    "please",
    "pls",
    "for",
    "to",
    "that",
    "which",
    "thanks",
    "thank",
    "without",
    "of",
    "not",
    "here",
    "statement",
    "statements",
    "text",
    "itself",
    "i",
    "is",
    "so",
    "then",
    "you",
    "we",
    "no",
    "used",
    "needed",
    "this",
    "now",
];

/// Whether `phrase` occurs in `text` as a request: starting a word, and followed by the end,
/// punctuation or one of [`FOLLOWERS`] (or "and" when `and_follows`: "both the SQL and ...").
fn contains_phrase(text: &str, phrase: &str, and_follows: bool) -> bool {
    text.match_indices(phrase).any(|(i, m)| {
        if text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric())
        {
            return false;
        }
        let rest = &text[i + m.len()..];
        match rest.chars().next() {
            None => true,
            Some(c) if c.is_alphanumeric() => false,
            Some(' ') => {
                let next: String = rest[1..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '\'')
                    .collect();
                next.is_empty()
                    || FOLLOWERS.contains(&next.as_str())
                    || (and_follows && next == "and")
            }
            Some(_) => true,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_sql_only() {
        for question in [
            "Just give me the SQL for the top 5 customers",
            "top customers by revenue, SQL only",
            "Top customers by revenue (sql only please)",
            "I want only the query, not the data: orders per month",
            "Write the query but don't run it: books per author",
            "Books per author. Do NOT execute the query.",
            "books per author — just the SQL, thanks",
            "只要SQL：每个国家有多少作者",
            "每个国家有多少作者？只给我SQL",
            "每个国家有多少作者，不要执行",
            "只要 sql 语句，统计每月订单数",
            "每月订单数，sql就行",
        ] {
            assert_eq!(
                infer_return_mode(question),
                Some(ReturnMode::Sql),
                "{question}"
            );
        }
    }

    #[test]
    fn infers_both() {
        for question in [
            "Show me the SQL and the results for revenue per month",
            "show the query and the rows: top 10 books",
            "top 10 books, and show me the SQL",
            "Give me both the SQL and the numbers for orders per status",
            "每个国家有多少作者？给我SQL和结果",
            "统计每月订单数，同时给出SQL",
            "列出前十本书，附上 SQL",
        ] {
            assert_eq!(
                infer_return_mode(question),
                Some(ReturnMode::Both),
                "{question}"
            );
        }
    }

    #[test]
    fn ordinary_questions_say_nothing_about_the_mode() {
        for question in [
            "Which SQL Server licences expire this year?",
            "How many SQL Server instances are only the query engine?",
            "which customers bought only the query builder product?",
            "List the queries only users with admin rights ran",
            "How many jobs don't run on Sundays?",
            "What is the most common SQL dialect in the survey results?",
            "Show the top 5 customers by revenue",
            "哪些 SQL Server 许可证今年到期？",
            "列出状态为不要执行的任务",
            "每个国家有多少作者？",
            "sqlite和结果表有什么关系",
            "",
        ] {
            assert_eq!(infer_return_mode(question), None, "{question}");
        }
    }
}
