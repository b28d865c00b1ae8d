//! Checks a model's reply against the JSON schema the request asked for, whatever the endpoint
//! did with the schema (`model.structured_output`): with `json_schema` a strict endpoint has
//! already held the reply to it, with `json_object` or `none` nothing has.
//!
//! The schemas are the bridge's own (`crate::prompts`), in the subset OpenAI's strict mode
//! accepts; this checks that subset: `type` (one or a list, `integer` being a number without a
//! fraction), `enum`, `properties`, `required`, `additionalProperties: false` and `items`.
//! Other keywords (`description`) say nothing about validity here.

use serde_json::Value;

/// Deepest nesting of the schema followed (the bridge's are three levels deep).
const MAX_DEPTH: usize = 32;

/// `Ok` when `value` matches `schema`, else the first mismatch, with where it is
/// (`$.assumptions[1]: expected string, got number`).
pub fn check(value: &Value, schema: &Value) -> Result<(), String> {
    check_at(value, schema, "$", 0)
}

fn check_at(value: &Value, schema: &Value, path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("{path}: nested too deeply"));
    }
    let Some(schema) = schema.as_object() else {
        // `true` or an empty schema: anything
        return Ok(());
    };
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|t| is_type(value, t)) {
            return Err(format!(
                "{path}: expected {}, got {}",
                names.join(" or "),
                type_name(value)
            ));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            return Err(format!(
                "{path}: {} is not one of {}",
                shorten(&value.to_string()),
                shorten(&Value::Array(allowed.clone()).to_string())
            ));
        }
    }
    if let Value::Object(map) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    return Err(format!("{path}: the key {name:?} is missing"));
                }
            }
        }
        for (key, item) in map {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check_at(item, sub, &format!("{path}.{key}"), depth + 1)?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unexpected key {}", shorten(key)));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check_at(item, sub, &format!("{path}[{i}]"), depth + 1)?;
        }
    }
    Ok(())
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64()
                || value.is_u64()
                || value
                    .as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        // a type this checker does not know: not held against the reply
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "database": {"type": ["string", "null"], "enum": ["a", "b", null]},
                "candidates": {"type": "array", "items": {"type": "string"}},
                "score": {"type": "integer"}
            },
            "required": ["database", "candidates", "score"],
            "additionalProperties": false
        })
    }

    #[test]
    fn accepts_what_matches() {
        for value in [
            json!({"database": "a", "candidates": [], "score": 3}),
            json!({"database": null, "candidates": ["a", "b"], "score": 8.0}),
        ] {
            assert_eq!(check(&value, &schema()), Ok(()), "{value}");
        }
    }

    #[test]
    fn says_where_it_does_not_match() {
        for (value, problem) in [
            (json!([1]), "$: expected object, got array"),
            (
                json!({"database": "a", "candidates": []}),
                "$: the key \"score\" is missing",
            ),
            (
                json!({"database": "c", "candidates": [], "score": 1}),
                "$.database: \"c\" is not one of [\"a\",\"b\",null]",
            ),
            (
                json!({"database": "a", "candidates": ["x", 2], "score": 1}),
                "$.candidates[1]: expected string, got number",
            ),
            (
                json!({"database": "a", "candidates": [], "score": 1.5}),
                "$.score: expected integer, got number",
            ),
            (
                json!({"database": "a", "candidates": [], "score": "9"}),
                "$.score: expected integer, got string",
            ),
            (
                json!({"database": "a", "candidates": [], "score": 1, "sql": "x"}),
                "$: unexpected key sql",
            ),
        ] {
            assert_eq!(
                check(&value, &schema()),
                Err(problem.to_string()),
                "{value}"
            );
        }
    }
}
