//! A hostile model endpoint (issue 10): redirects to another host and to itself, echoes of the
//! API key (plain, JSON-escaped, URL-encoded, at the cut of a long message), a slow drip and
//! huge replies; against both HTTP clients of the bridge, the completion client and
//! `check-config`'s `GET /models`. Every server here is the scripted one on 127.0.0.1.
//! `check-config` needs the test cluster (NLQ_TEST_BRIDGE_DSN); run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
#[path = "support/scripted_openai.rs"]
mod scripted_openai;

use std::time::Duration;

use mcp_bridge::llm::openai::OpenAiModel;
use mcp_bridge::llm::{ChatModel, LlmError, StructuredRequest};
use mcp_bridge::prompts::{self, GenerateInput};
use mcp_bridge::settings::{ModelSettings, StructuredOutput};
use scripted_openai::{Reply, ScriptedOpenAi};
use serde_json::json;

/// The planted key: 36 characters, none of its 8-character pieces occurs by chance.
const KEY: &str = "sk-hostile-Q7w3RrT9yU1iO5pA2sD4fG6h";

fn settings(base_url: String) -> ModelSettings {
    ModelSettings {
        api_key: Some(KEY.into()),
        base_url,
        model: "gpt-5-mini".into(),
        reasoning_effort: None,
        request_timeout: Duration::from_secs(3),
        max_retries: 2,
        structured_output: StructuredOutput::JsonSchema,
    }
}

fn request() -> StructuredRequest {
    prompts::generate_request(&GenerateInput {
        question: "How many books are there?",
        database: "nlq_small",
        description: None,
        server_major: 15,
        schema_context: "public.books (table, ~1200 rows)\n  id integer PK\n  secret_col text",
        row_limit: 100,
        feedback: &[],
    })
}

async fn complete(base_url: String) -> Result<mcp_bridge::llm::ModelReply, LlmError> {
    let model = OpenAiModel::new(&settings(base_url)).expect("a model");
    model.complete(request()).await
}

/// Panics when `text` holds the key or any 8 characters of it in a row, in any encoding the
/// echoes below use.
fn assert_no_key(text: &str, what: &str) {
    let chars: Vec<char> = KEY.chars().collect();
    for piece in chars.windows(8) {
        let piece: String = piece.iter().collect();
        let json_piece: String = piece
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let url_piece: String = piece.bytes().map(|b| format!("%{b:02X}")).collect();
        for form in [&piece, &json_piece, &url_piece] {
            assert!(
                !text.contains(form.as_str()),
                "{what} shows {form:?} of the key:\n{text}"
            );
        }
    }
}

/// The ways an endpoint echoes the key back in an error body.
fn echoes() -> Vec<(&'static str, String)> {
    let json_escaped: String = KEY
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let url_encoded: String = KEY.bytes().map(|b| format!("%{b:02X}")).collect();
    // the key, JSON-escaped, across the 300-character cut of quoted messages
    let long = format!(
        r#"{{"error": {{"message": "{} {json_escaped}"}}}}"#,
        "x".repeat(290)
    );
    vec![
        (
            "plain",
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}).to_string(),
        ),
        (
            "json-escaped",
            format!(r#"{{"error": {{"message": "Incorrect API key provided: {json_escaped}"}}}}"#),
        ),
        (
            "url-encoded",
            json!({"error": {"message": format!("see https://x.invalid/keys?k={url_encoded}")}})
                .to_string(),
        ),
        ("raw body, not JSON", format!("<html>bad key {KEY}</html>")),
        ("at the cut", long),
    ]
}

#[tokio::test]
async fn a_redirect_to_another_host_is_an_error_and_the_key_stays_home() {
    let other = ScriptedOpenAi::hostile(|_| Reply::Json(json!({"sql": "SELECT 1"}))).await;
    for code in [301u16, 302, 303, 307, 308] {
        let target = format!("http://localhost:{}/v1/chat/completions", other.port());
        let first = ScriptedOpenAi::hostile(move |_| Reply::Redirect(code, target.clone())).await;
        let err = complete(first.base_url()).await.expect_err("a redirect");
        let text = err.to_string();
        assert!(
            matches!(
                err,
                LlmError::Transport {
                    retryable: false,
                    ..
                }
            ),
            "{code}: {err:?}"
        );
        assert!(
            text.contains(&format!("redirecting to http://localhost:{}", other.port()))
                && text.contains("not followed"),
            "{code}: {text}"
        );
        assert_eq!(first.requests().len(), 1, "{code}: one request, no retry");
    }
    assert!(
        other.requests().is_empty(),
        "the other host received {:?}",
        other
            .requests()
            .iter()
            .map(|r| r.authorization.clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_redirect_loop_sends_the_key_once() {
    let me = ScriptedOpenAi::hostile(|r| Reply::Redirect(307, format!("{}?again", r.path))).await;
    let err = complete(me.base_url()).await.expect_err("a redirect");
    assert!(err.to_string().contains("not followed"), "{err}");
    assert_eq!(me.requests().len(), 1);
}

#[tokio::test]
async fn the_key_echoed_in_any_encoding_is_redacted() {
    for (how, body) in echoes() {
        for status in [401u16, 400, 500, 429] {
            let body = body.clone();
            let server = ScriptedOpenAi::hostile(move |_| {
                Reply::Header(
                    "retry-after".into(),
                    "0".into(),
                    Box::new(Reply::Raw(status, body.clone())),
                )
            })
            .await;
            let err = complete(server.base_url()).await.expect_err("an error");
            assert_no_key(&err.to_string(), &format!("{how} echo, HTTP {status}"));
            assert_no_key(&format!("{err:?}"), &format!("{how} echo, HTTP {status}"));
            let tool = mcp_bridge::answer::ToolError::from(err);
            assert_no_key(
                &serde_json::to_string(&tool).unwrap(),
                &format!("{how} echo, HTTP {status}, as a tool error"),
            );
        }
        // an echo in a successful reply's content is the model's text: still redacted
        let content = body.clone();
        let server =
            ScriptedOpenAi::hostile(move |_| Reply::Content(format!("not json {content}"))).await;
        match complete(server.base_url()).await {
            Ok(reply) => assert_no_key(&reply.content, &format!("{how} echo in content")),
            Err(err) => assert_no_key(&err.to_string(), &format!("{how} echo in content")),
        }
    }
}

#[tokio::test]
async fn a_slow_drip_ends_at_the_request_timeout() {
    let server = ScriptedOpenAi::hostile(|_| Reply::Drip {
        chunk: "{".into(),
        every: Duration::from_millis(200),
        count: 600,
    })
    .await;
    let mut s = settings(server.base_url());
    s.max_retries = 0;
    let model = OpenAiModel::new(&s).unwrap();
    let err = model.complete(request()).await.expect_err("a timeout");
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
}

#[tokio::test]
async fn huge_replies_are_refused_without_reading_them_whole() {
    for declared in [true, false] {
        let server = ScriptedOpenAi::hostile(move |_| Reply::Huge {
            bytes: 9 * 1024 * 1024,
            declared,
        })
        .await;
        let err = complete(server.base_url()).await.expect_err("too large");
        assert!(
            err.to_string().contains("larger than 8 MiB"),
            "declared {declared}: {err}"
        );
        assert_eq!(server.requests().len(), 1, "not retried");
    }
}

/// `check-config`'s model section against an endpoint answering `reply` to `GET /models`.
async fn check_config_against(reply: impl Fn() -> Reply + Send + Sync + 'static) -> String {
    let server = ScriptedOpenAi::hostile(move |_| reply()).await;
    let mut settings = common::settings(Some(&server.base_url()), &["nlq_small"]);
    settings.model.api_key = Some(KEY.into());
    let report = mcp_bridge::check::check(&settings).await;
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/models");
    report.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_follows_no_redirect_and_shows_no_key() {
    let other = ScriptedOpenAi::hostile(|_| Reply::Json(json!({"data": []}))).await;
    let target = format!("http://127.0.0.1:{}/v1/models", other.port());
    let text = check_config_against(move || Reply::Redirect(307, target.clone())).await;
    assert!(
        text.contains(&format!("redirecting to http://127.0.0.1:{}", other.port())),
        "{text}"
    );
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        other.requests().is_empty(),
        "the key went to the other host"
    );

    for (how, body) in echoes() {
        let text = check_config_against(move || Reply::Raw(401, body.clone())).await;
        assert!(text.contains("refused the API key"), "{how}: {text}");
        assert_no_key(&text, &format!("check-config, {how} echo"));
    }

    let text = check_config_against(|| Reply::Huge {
        bytes: 9 * 1024 * 1024,
        declared: false,
    })
    .await;
    assert!(text.contains("model"), "{text}");
}
