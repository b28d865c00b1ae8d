//! The OpenAI client against the scripted OpenAI-compatible server: what it sends, what it
//! reads back, and how it handles rate limits, server errors, bad credentials, timeouts,
//! refusals and malformed replies.

#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::time::Duration;

use mcp_bridge::llm::openai::OpenAiModel;
use mcp_bridge::llm::{ChatModel, LlmError, StructuredRequest};
use mcp_bridge::prompts::{self, GenerateInput, GENERATE_SCHEMA_NAME, VERIFY_SCHEMA_NAME};
use mcp_bridge::settings::{ModelSettings, StructuredOutput};
use scripted_openai::{error_body, generate, rate_limited, verdict, Reply, ScriptedOpenAi, Step};
use serde_json::json;

const KEY: &str = "sk-test-9f8e7d6c5b4a";

fn settings(base_url: String) -> ModelSettings {
    ModelSettings {
        api_key: Some(KEY.into()),
        base_url,
        model: "gpt-5-mini".into(),
        reasoning_effort: None,
        request_timeout: Duration::from_secs(10),
        max_retries: 2,
        structured_output: StructuredOutput::JsonSchema,
    }
}

fn model(settings: &ModelSettings) -> OpenAiModel {
    match OpenAiModel::new(settings) {
        Ok(model) => model,
        Err(err) => panic!("{err}"),
    }
}

fn generate_request(question: &str) -> StructuredRequest {
    prompts::generate_request(&GenerateInput {
        question,
        database: "nlq_small",
        description: None,
        server_major: 15,
        schema_context: "public.books (table, ~1200 rows)\n  id integer PK\n  title text NOT NULL",
        row_limit: 100,
        feedback: &[],
    })
}

async fn complete(
    model: &OpenAiModel,
    request: StructuredRequest,
) -> Result<mcp_bridge::llm::ModelReply, LlmError> {
    model.complete(request).await
}

#[tokio::test]
async fn sends_a_structured_request_and_reads_the_reply() {
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME)
        .containing("How many books are there?")
        .check(|r| {
            let expected = format!("Bearer {KEY}");
            if r.authorization.as_deref() != Some(expected.as_str()) {
                return Err(format!("authorization {:?}", r.authorization));
            }
            if r.body["model"] != "gpt-5-mini" {
                return Err(format!("model {}", r.body["model"]));
            }
            if r.body["reasoning_effort"] != "low" {
                return Err(format!("reasoning_effort {}", r.body["reasoning_effort"]));
            }
            let format = &r.body["response_format"]["json_schema"];
            if format["schema"]["required"] != json!(["sql", "explanation", "assumptions"]) {
                return Err(format!("schema {}", format["schema"]));
            }
            let roles: Vec<&str> = r.body["messages"]
                .as_array()
                .map(|m| m.iter().filter_map(|m| m["role"].as_str()).collect())
                .unwrap_or_default();
            if roles != ["system", "user"] {
                return Err(format!("roles {roles:?}"));
            }
            Ok(())
        })
        .reply(generate("SELECT count(*) FROM public.books"))])
    .await;
    let mut settings = settings(format!("{}/", server.base_url()));
    settings.reasoning_effort = Some("low".into());
    let model = model(&settings);
    assert_eq!(model.describe(), "openai gpt-5-mini");

    let reply = complete(&model, generate_request("How many books are there?")).await;
    let reply = match reply {
        Ok(reply) => reply,
        Err(err) => panic!("{err}"),
    };
    server.assert_done();
    assert_eq!(reply.model, "gpt-5-mini");
    assert!(reply.usage.input > 100, "{:?}", reply.usage);
    assert!(reply.usage.output > 0, "{:?}", reply.usage);
    let generated = prompts::parse_generated(&reply.content);
    assert_eq!(
        generated.ok().map(|g| g.sql),
        Some("SELECT count(*) FROM public.books".into())
    );

    // usage and model are read from the reply, not made up
    let recorded = server.requests();
    let expected_input = recorded[0].messages_text.chars().count() as u64 / 4 + 1;
    assert_eq!(reply.usage.input, expected_input);
}

#[tokio::test]
async fn reasoning_effort_is_left_out_when_not_set() {
    let server = ScriptedOpenAi::start(vec![Step::expect(VERIFY_SCHEMA_NAME)
        .check(|r| match r.body.get("reasoning_effort") {
            None => Ok(()),
            Some(v) => Err(format!("reasoning_effort sent: {v}")),
        })
        .reply(verdict(9, "fine"))])
    .await;
    let model = model(&settings(server.base_url()));
    let request = prompts::verify_request(&prompts::VerifyInput {
        question: "q",
        sql: "SELECT 1",
        explanation: "",
        columns: &[],
        row_count: 1,
        truncated: false,
        sample_rows: &[],
        threshold: 7,
    });
    let reply = complete(&model, request).await;
    server.assert_done();
    let verdict = reply
        .map_err(|e| e.to_string())
        .and_then(|r| prompts::parse_verdict(&r.content).map_err(|e| e.to_string()));
    assert_eq!(verdict.map(|v| v.score), Ok(9));
}

#[tokio::test]
async fn rate_limits_are_retried_after_retry_after() {
    let server = ScriptedOpenAi::start(vec![
        Step::expect(GENERATE_SCHEMA_NAME).reply(rate_limited(1)),
        Step::expect(GENERATE_SCHEMA_NAME).reply(generate("SELECT 1")),
    ])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(reply.is_ok(), "{reply:?}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_long_retry_after_is_returned_not_waited_for() {
    let server = ScriptedOpenAi::start(vec![
        Step::expect(GENERATE_SCHEMA_NAME).reply(rate_limited(120))
    ])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    match reply {
        Err(LlmError::RateLimited {
            message,
            retry_after,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(120)));
            assert!(message.contains("Rate limit reached"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_exhausted_quota_is_not_retried() {
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME).reply(
        Reply::Status(
            429,
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
            ),
        ),
    )])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::RateLimited { message, .. }) if message.contains("quota")),
        "{reply:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = ScriptedOpenAi::start(vec![
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Status(
            500,
            error_body("The server had an error", "server_error"),
        )),
        Step::expect(GENERATE_SCHEMA_NAME)
            .reply(Reply::Raw(502, "<html>Bad Gateway</html>".into())),
        Step::expect(GENERATE_SCHEMA_NAME).reply(generate("SELECT 1")),
    ])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn server_errors_end_after_max_retries() {
    let failing = || {
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Status(
            503,
            error_body("Service unavailable", "server_error"),
        ))
    };
    let server = ScriptedOpenAi::start(vec![failing(), failing()]).await;
    let mut settings = settings(server.base_url());
    settings.max_retries = 1;
    let model = model(&settings);
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    match reply {
        Err(
            err @ LlmError::Transport {
                retryable: true, ..
            },
        ) => {
            assert!(err.to_string().contains("HTTP 503"), "{err}");
            assert!(err.to_string().contains("Service unavailable"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn bad_credentials_are_not_retried_and_the_key_is_not_shown() {
    let message = format!("Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com.");
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME)
        .reply(Reply::Status(401, error_body(&message, "invalid_api_key")))])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    match reply {
        Err(
            err @ LlmError::Transport {
                retryable: false, ..
            },
        ) => {
            let text = err.to_string();
            assert!(text.contains("HTTP 401"), "{text}");
            assert!(text.contains("Incorrect API key provided"), "{text}");
            assert!(!text.contains(KEY), "{text}");
            assert!(!format!("{err:?}").contains(KEY));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_key_at_the_cut_of_a_long_error_is_not_partly_shown() {
    // The key straddles the point where the quoted message is shortened.
    let message = format!("{} {KEY} is not valid", "x".repeat(290));
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME)
        .reply(Reply::Status(401, error_body(&message, "invalid_api_key")))])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    let text = match reply {
        Err(err) => err.to_string(),
        Ok(reply) => panic!("{reply:?}"),
    };
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains(&KEY[..8]), "{text}");
}

#[tokio::test]
async fn an_oversized_reply_is_refused_not_read_into_memory() {
    let huge = "x".repeat(mcp_bridge::llm::openai::MAX_BODY_BYTES + 1);
    let server = ScriptedOpenAi::start(vec![
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Raw(200, huge))
    ])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::Transport { retryable: false, message }) if message.contains("larger than")),
        "{reply:?}"
    );
}

#[tokio::test]
async fn an_absurd_retry_after_ms_is_not_a_panic() {
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME).reply(
        Reply::Header(
            "retry-after-ms".into(),
            "1e30".into(),
            Box::new(Reply::Status(
                429,
                error_body("Rate limit reached for requests", "rate_limit_exceeded"),
            )),
        ),
    )])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(
            &reply,
            Err(LlmError::RateLimited {
                retry_after: Some(_),
                ..
            })
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME).reply(
        Reply::Status(
            400,
            error_body(
                "Invalid schema for response_format 'sql_answer'",
                "invalid_request_error",
            ),
        ),
    )])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::Transport { retryable: false, message }) if message.contains("Invalid schema")),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out() {
    let slow = || {
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Delay(
            Duration::from_secs(5),
            Box::new(generate("SELECT 1")),
        ))
    };
    let server = ScriptedOpenAi::start(vec![slow(), slow()]).await;
    let mut settings = settings(server.base_url());
    settings.request_timeout = Duration::from_millis(200);
    settings.max_retries = 1;
    let model = model(&settings);
    let reply = complete(&model, generate_request("q")).await;
    assert!(
        matches!(reply, Err(LlmError::Timeout(t)) if t == Duration::from_millis(200)),
        "{reply:?}"
    );
    // the timeout was retried once
    assert_eq!(server.requests().len(), 2);
    server.assert_done();
}

#[tokio::test]
async fn a_refusal_is_reported() {
    let server =
        ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME)
            .reply(Reply::Refusal("I can't help with that.".into()))])
        .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::Refused(r)) if r == "I can't help with that."),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed() {
    let server = ScriptedOpenAi::start(vec![Step::expect(GENERATE_SCHEMA_NAME)
        .reply(Reply::Raw(200, "<html>captive portal</html>".into()))])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::Malformed(m)) if m.contains("not a chat completion")),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_reply_that_is_not_the_object_asked_for_is_malformed() {
    let server = ScriptedOpenAi::start(vec![
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Content("SELECT 1 -- not JSON".into())),
        Step::expect(GENERATE_SCHEMA_NAME).reply(Reply::Json(json!({"sql": "SELECT 1"}))),
    ])
    .await;
    let model = model(&settings(server.base_url()));
    let reply = complete(&model, generate_request("q")).await;
    assert!(
        matches!(&reply, Err(LlmError::Malformed(m))
            if m.contains("expected a JSON object of the schema sql_answer")
                && m.contains("SELECT 1 -- not JSON")),
        "{reply:?}"
    );
    // an object without the keys the schema requires
    let reply = complete(&model, generate_request("q")).await;
    server.assert_done();
    assert!(
        matches!(&reply, Err(LlmError::Malformed(m))
            if m.contains("does not match the schema sql_answer")
                && m.contains("\"explanation\" is missing")),
        "{reply:?}"
    );
}

/// The request in each `model.structured_output` mode, and the reply read the same way.
#[tokio::test]
async fn each_structured_output_mode_sends_its_format_and_reads_replies_tolerantly() {
    let answer = json!({"sql": "SELECT 1", "explanation": "one", "assumptions": []});
    let replies = [
        Reply::Json(answer.clone()),
        Reply::Content(format!("```json\n{answer}\n```")),
        Reply::Content(format!("Here is the query:\n{answer}\nAnything else?")),
        Reply::Content(format!("<think>first {{\"sql\": 1}}</think>\n{answer}")),
    ];
    for mode in StructuredOutput::ALL {
        let steps = replies
            .iter()
            .map(|reply| {
                let reply = match reply {
                    Reply::Json(v) => Reply::Json(v.clone()),
                    Reply::Content(c) => Reply::Content(c.clone()),
                    _ => unreachable!(),
                };
                Step::expect(GENERATE_SCHEMA_NAME)
                    .check(move |r| {
                        let format = r.body.get("response_format");
                        let ok = match mode {
                            StructuredOutput::JsonSchema => {
                                format.and_then(|f| f.get("type")) == Some(&json!("json_schema"))
                            }
                            StructuredOutput::JsonObject => {
                                format == Some(&json!({"type": "json_object"}))
                            }
                            StructuredOutput::None => format.is_none(),
                        };
                        if !ok {
                            return Err(format!("{}: response_format {format:?}", mode.as_str()));
                        }
                        // the schema is in the instructions whatever the mode
                        let system = r.message("system").unwrap_or_default();
                        if !system
                            .contains("\"required\":[\"sql\",\"explanation\",\"assumptions\"]")
                        {
                            return Err(format!("{}: no schema in {system}", mode.as_str()));
                        }
                        Ok(())
                    })
                    .reply(reply)
            })
            .collect();
        let server = ScriptedOpenAi::start_expecting(mode.as_str(), steps).await;
        let mut settings = settings(server.base_url());
        settings.structured_output = mode;
        let model = model(&settings);
        for _ in &replies {
            let reply = complete(&model, generate_request("q")).await;
            let content = match reply {
                Ok(reply) => reply.content,
                Err(err) => panic!("{}: {err}", mode.as_str()),
            };
            let generated = prompts::parse_generated(&content)
                .unwrap_or_else(|e| panic!("{}: {e}: {content}", mode.as_str()));
            assert_eq!(generated.sql, "SELECT 1", "{}", mode.as_str());
        }
        server.assert_done();
    }
}

#[tokio::test]
async fn without_json_schema_a_reply_off_the_schema_is_still_malformed() {
    for mode in [StructuredOutput::JsonObject, StructuredOutput::None] {
        let server = ScriptedOpenAi::start_expecting(
            mode.as_str(),
            vec![
                // extra key, wrong type: what strict outputs would have prevented
                Step::expect(VERIFY_SCHEMA_NAME).reply(Reply::Json(
                    json!({"score": 9, "reasons": "ok", "critique": "", "confidence": "high"}),
                )),
                Step::expect(VERIFY_SCHEMA_NAME).reply(Reply::Content(
                    "```json\n{\"score\": \"nine\", \"reasons\": \"ok\", \"critique\": \"\"}\n```"
                        .into(),
                )),
            ],
        )
        .await;
        let mut settings = settings(server.base_url());
        settings.structured_output = mode;
        let model = model(&settings);
        let request = prompts::verify_request(&prompts::VerifyInput {
            question: "q",
            sql: "SELECT 1",
            explanation: "",
            columns: &[],
            row_count: 0,
            truncated: false,
            sample_rows: &[],
            threshold: 7,
        });
        for problem in [
            "unexpected key confidence",
            "$.score: expected integer, got string",
        ] {
            let reply = complete(&model, request.clone()).await;
            assert!(
                matches!(&reply, Err(LlmError::Malformed(m))
                    if m.contains(problem) && m.contains(mode.as_str())),
                "{}: {reply:?}",
                mode.as_str()
            );
        }
        server.assert_done();
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_retryable_transport_error() {
    let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(e) => panic!("{e}"),
    };
    let mut settings = settings(format!("http://127.0.0.1:{port}/v1"));
    settings.max_retries = 0;
    let model = model(&settings);
    let reply = complete(&model, generate_request("q")).await;
    match reply {
        Err(
            err @ LlmError::Transport {
                retryable: true, ..
            },
        ) => {
            assert!(err.to_string().contains("could not connect"), "{err}");
            assert!(!err.to_string().contains(KEY));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_key_is_not_configured() {
    for key in [None, Some(String::new())] {
        let mut settings = settings("http://127.0.0.1:9/v1".into());
        settings.api_key = key;
        assert!(matches!(
            OpenAiModel::new(&settings),
            Err(LlmError::NotConfigured(_))
        ));
    }
}

#[tokio::test]
async fn the_scripted_server_reports_what_did_not_match() {
    let server = ScriptedOpenAi::start(vec![
        Step::expect(VERIFY_SCHEMA_NAME).reply(verdict(9, "fine")),
        Step::expect(GENERATE_SCHEMA_NAME).reply(generate("SELECT 1")),
    ])
    .await;
    let mut settings = settings(server.base_url());
    settings.max_retries = 0;
    let model = model(&settings);
    // a generate request where a verify request was scripted: HTTP 500 with the reason
    let reply = complete(&model, generate_request("q")).await;
    assert!(
        matches!(&reply, Err(LlmError::Transport { message, .. }) if message.contains("expected schema \"result_verdict\"")),
        "{reply:?}"
    );
    // a request without a bearer token fails the default checks
    let raw = reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await;
    assert_eq!(raw.map(|r| r.status().as_u16()).ok(), Some(500));

    let problems = server.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[1].contains("no Authorization header"),
        "{problems:?}"
    );
    assert!(problems[1].contains("response_format.type"), "{problems:?}");
    assert!(
        problems[1].contains("messages are missing or empty"),
        "{problems:?}"
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.assert_done()));
    let message = match panic {
        Ok(()) => panic!("assert_done must panic"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default(),
    };
    assert!(
        message.contains("step 2 (sql_answer) was never requested"),
        "{message}"
    );
    assert!(
        message.contains("3 problem(s) after 2 request(s)"),
        "{message}"
    );
}
