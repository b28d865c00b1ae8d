use super::*;
use crate::llm::{Message, Task};

fn settings(key: Option<&str>) -> ModelSettings {
    ModelSettings {
        api_key: key.map(str::to_string),
        base_url: "http://127.0.0.1:9/v1/".into(),
        model: "gpt-5-mini".into(),
        reasoning_effort: Some("low".into()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        structured_output: StructuredOutput::JsonSchema,
    }
}

#[test]
fn needs_a_key() {
    for key in [None, Some(""), Some("   ")] {
        assert!(matches!(
            OpenAiModel::new(&settings(key)),
            Err(LlmError::NotConfigured(_))
        ));
    }
    let model = OpenAiModel::new(&settings(Some("sk-test"))).unwrap();
    assert_eq!(model.url, "http://127.0.0.1:9/v1/chat/completions");
    assert_eq!(model.describe(), "openai gpt-5-mini");
    assert!(!format!("{model:?}").contains("sk-test"));
}

#[test]
fn builds_the_body() {
    let model = OpenAiModel::new(&settings(Some("sk-test"))).unwrap();
    let body = model.body(&StructuredRequest {
        task: Task::Generate,
        messages: vec![Message::system("s"), Message::user("u")],
        schema_name: "sql_answer",
        schema: json!({"type": "object"}),
    });
    assert_eq!(
        body,
        json!({
            "model": "gpt-5-mini",
            "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "sql_answer", "strict": true, "schema": {"type": "object"}}},
            "reasoning_effort": "low"
        })
    );
}

fn request_stating(schema_in_prompt: bool) -> StructuredRequest {
    let schema = json!({"type": "object", "properties": {"sql": {"type": "string"}},
                        "required": ["sql"], "additionalProperties": false});
    let system = if schema_in_prompt {
        format!("Reply with JSON matching {schema}")
    } else {
        "s".to_string()
    };
    StructuredRequest {
        task: Task::Generate,
        messages: vec![Message::system(system), Message::user("u")],
        schema_name: "sql_answer",
        schema,
    }
}

#[test]
fn builds_the_body_in_each_structured_output_mode() {
    let mut s = settings(Some("sk-test"));
    s.reasoning_effort = None;
    s.structured_output = StructuredOutput::JsonObject;
    let body = OpenAiModel::new(&s).unwrap().body(&request_stating(true));
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    s.structured_output = StructuredOutput::None;
    let body = OpenAiModel::new(&s).unwrap().body(&request_stating(true));
    assert!(body.get("response_format").is_none(), "{body}");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    // instructions that do not state the schema get it, in both modes
    for mode in [StructuredOutput::JsonObject, StructuredOutput::None] {
        s.structured_output = mode;
        let request = request_stating(false);
        let body = OpenAiModel::new(&s).unwrap().body(&request);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[2]["role"], "system");
        let text = messages[2]["content"].as_str().unwrap();
        assert!(text.contains(&request.schema.to_string()), "{text}");
        assert!(
            text.contains("JSON object") && text.contains("sql_answer"),
            "{text}"
        );
    }
    // with json_schema the endpoint has the schema: nothing added
    s.structured_output = StructuredOutput::JsonSchema;
    let body = OpenAiModel::new(&s).unwrap().body(&request_stating(false));
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["response_format"]["type"], "json_schema");
}

#[test]
fn replies_are_read_tolerantly_and_checked_against_the_schema() {
    let request = request_stating(true);
    for mode in StructuredOutput::ALL {
        for content in [
            "{\"sql\": \"SELECT 1\"}",
            "```json\n{\"sql\": \"SELECT 1\"}\n```",
            "Sure. {\"sql\": \"SELECT 1\"}",
            "<think>{\"sql\": 1}</think>{\"sql\": \"SELECT 1\"}",
        ] {
            assert_eq!(
                read_reply(content, "sql_answer", &request.schema, mode).ok(),
                Some("{\"sql\":\"SELECT 1\"}".to_string()),
                "{content}"
            );
        }
        for (content, problem) in [
            (
                "SELECT 1",
                "expected a JSON object of the schema sql_answer",
            ),
            ("{\"query\": \"SELECT 1\"}", "the key \"sql\" is missing"),
            ("{\"sql\": \"SELECT 1\", \"x\": 1}", "unexpected key x"),
            (
                "{\"sql\": [\"SELECT 1\"]}",
                "$.sql: expected string, got array",
            ),
        ] {
            match read_reply(content, "sql_answer", &request.schema, mode) {
                Err(LlmError::Malformed(m)) => {
                    assert!(m.contains(problem), "{content}: {m}");
                    assert!(m.contains(mode.as_str()), "{m}");
                }
                other => panic!("{content}: {other:?}"),
            }
        }
    }
}

#[test]
fn backoff_grows_and_is_capped() {
    assert_eq!(backoff(0), Duration::from_millis(250));
    assert_eq!(backoff(1), Duration::from_millis(500));
    assert_eq!(backoff(10), MAX_BACKOFF);
    assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
}

#[test]
fn huge_retry_after_values_are_capped_not_a_panic() {
    for (name, value) in [
        ("retry-after-ms", "1e30"),
        ("retry-after-ms", "18446744073709551615000"),
        ("retry-after", "1e300"),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        assert_eq!(
            retry_after(&headers),
            Some(Duration::from_secs(86_400)),
            "{name}: {value}"
        );
    }
    let mut headers = HeaderMap::new();
    headers.insert("retry-after-ms", "1500".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
}

#[test]
fn reads_error_bodies() {
    let (message, code) = error_message(
        r#"{"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}"#,
    );
    assert_eq!(message, "You exceeded your current quota");
    assert_eq!(code.as_deref(), Some("insufficient_quota"));
    assert_eq!(
        error_message("<html>Bad Gateway</html>").0,
        "<html>Bad Gateway</html>"
    );
}

#[test]
fn parses_completions() {
    let reply = parse_completion(
        r#"{"model": "gpt-5-mini-2025", "choices": [{"message": {"role": "assistant", "content": "{}", "refusal": null}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}"#,
        "gpt-5-mini",
    )
    .unwrap();
    assert_eq!(reply.content, "{}");
    assert_eq!(reply.model, "gpt-5-mini-2025");
    assert_eq!(
        reply.usage,
        TokenUsage {
            input: 10,
            output: 3
        }
    );
    assert!(matches!(
        parse_completion(r#"{"choices": [{"message": {"content": null, "refusal": "no"}}]}"#, "m"),
        Err(LlmError::Refused(r)) if r == "no"
    ));
    assert!(matches!(
        parse_completion(r#"{"choices": []}"#, "m"),
        Err(LlmError::Malformed(_))
    ));
    assert!(matches!(
        parse_completion("<html>", "m"),
        Err(LlmError::Malformed(_))
    ));
}
