//! Reading a model's reply: the JSON object in it, however the model wrapped it (alone, in a
//! Markdown fence, amid prose, after a reasoning model's `<think>` block), for the client
//! ([`super::openai`], which checks it against the request's schema) and the parsers of the
//! prompts ([`crate::prompts`]).

#[cfg(test)]
use serde_json::json;
use serde_json::Value;

use super::LlmError;

/// The JSON object in a reply, deserialized into `T`: the whole text, or the first object of
/// that shape found in it (in a Markdown fence, after a sentence, after a reasoning model's
/// `<think>` block).
pub fn parse_object<T: serde::de::DeserializeOwned>(
    content: &str,
    shape: &str,
) -> Result<T, LlmError> {
    let fits = |v: &Value| serde_json::from_value::<T>(v.clone()).is_ok();
    let Some(object) = find_object(content, &fits) else {
        return Err(LlmError::Malformed(format!(
            "expected a JSON object {shape}, got {:?}",
            crate::text::clip(content.trim(), 120)
        )));
    };
    serde_json::from_value(object).map_err(|e| {
        LlmError::Malformed(format!("the JSON object is not of the shape {shape}: {e}"))
    })
}

/// Most `{` positions of a reply tried as the start of an object (a hostile reply of braces
/// costs no more than this many parses).
const MAX_OBJECT_STARTS: usize = 64;

/// The JSON object of `content` that `fits`: the whole text when it is one; else, looking
/// first at what follows a reasoning model's `</think>`, the first object that fits in a
/// ```` ```json ```` (or bare ```` ``` ````) fence, then anywhere in the text; else the first
/// object found at all, fitting or not, so that the caller can say what is wrong with it.
pub fn find_object(content: &str, fits: &dyn Fn(&Value) -> bool) -> Option<Value> {
    let trimmed = content.trim();
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(trimmed) {
        return Some(value);
    }
    let answer = match trimmed.rfind("</think>") {
        Some(end) => &trimmed[end + "</think>".len()..],
        None => trimmed,
    };
    let mut first: Option<Value> = None;
    let mut texts: Vec<&str> = Vec::new();
    // fenced blocks: ```json\n...\n``` (the language tag is optional)
    let mut rest = answer;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        let body = &after[body_start..];
        let Some(close) = body.find("```") else { break };
        texts.push(&body[..close]);
        rest = &body[close + 3..];
    }
    texts.push(answer);
    if answer.len() != trimmed.len() {
        texts.push(trimmed);
    }
    for text in texts {
        for (i, _) in text.match_indices('{').take(MAX_OBJECT_STARTS) {
            let mut values = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
            if let Some(Ok(value @ Value::Object(_))) = values.next() {
                if fits(&value) {
                    return Some(value);
                }
                first.get_or_insert(value);
            }
        }
    }
    first
}

#[cfg(test)]
mod object_tests {
    use super::*;

    fn any(_: &Value) -> bool {
        true
    }

    fn has_sql(v: &Value) -> bool {
        v.get("sql").is_some_and(Value::is_string)
    }

    #[test]
    fn finds_the_object_in_prose_and_fences() {
        for content in [
            r#"{"sql": "SELECT 1"}"#,
            "```json\n{\"sql\": \"SELECT 1\"}\n```",
            "```\n{\"sql\": \"SELECT 1\"}\n```\nThat is all.",
            "Here you are: {\"sql\": \"SELECT 1\"} -- enjoy {:}",
            "<think>maybe {\"sql\": \"SELECT 0\"}?</think>\n{\"sql\": \"SELECT 1\"}",
            // an object of another shape first, in the prose or in an earlier fence
            "The schema was {\"type\": \"object\"}; the answer: {\"sql\": \"SELECT 1\"}",
            "```json\n{\"note\": 1}\n```\n```json\n{\"sql\": \"SELECT 1\"}\n```",
        ] {
            assert_eq!(
                find_object(content, &has_sql),
                Some(json!({"sql": "SELECT 1"})),
                "{content}"
            );
        }
    }

    #[test]
    fn falls_back_to_the_first_object_or_nothing() {
        assert_eq!(
            find_object("first {\"a\": 1} then {\"b\": 2}", &has_sql),
            Some(json!({"a": 1}))
        );
        // only inside the reasoning: still found
        assert_eq!(
            find_object("<think>{\"sql\": \"SELECT 2\"}</think> no answer", &has_sql),
            Some(json!({"sql": "SELECT 2"}))
        );
        for content in ["", "SELECT 1", "[1, 2]", "{not json}", "```json\n[]\n```"] {
            assert_eq!(find_object(content, &any), None, "{content}");
        }
        // a reply of braces costs a bounded number of parses
        let braces = "{".repeat(100_000);
        assert_eq!(find_object(&braces, &any), None);
    }

    #[test]
    fn parse_object_takes_the_first_object_of_its_shape() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Sql {
            sql: String,
        }
        assert_eq!(
            parse_object::<Sql>("{\"x\": 1} and {\"sql\": \"SELECT 1\"}", "{sql}").ok(),
            Some(Sql {
                sql: "SELECT 1".into()
            })
        );
        match parse_object::<Sql>("{\"x\": 1}", "{sql}") {
            Err(LlmError::Malformed(m)) => assert!(m.contains("not of the shape {sql}"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
