//! A scripted OpenAI-compatible Chat Completions server for tests: the one stand-in the tests
//! use, for the remote model that cannot be reached from here.
//!
//! Started by the test on `127.0.0.1:0`. Every request is checked (POST
//! `/v1/chat/completions`, a bearer token, a model, a strict `json_schema` response format with
//! a schema — or, for a server started with [`ScriptedOpenAi::start_expecting`], the
//! `json_object` format or none, with the schema stated in the messages — messages) and
//! recorded; then it is answered by the next scripted [`Step`] (which
//! may check more: the schema name, substrings of the messages, a closure) or by a responder
//! closure. A failed check is answered with HTTP 500 and the reason, and is remembered so that
//! [`ScriptedOpenAi::assert_done`] panics with it.
//!
//! Use it from a test file with
//! `#[path = "support/scripted_openai.rs"] mod scripted_openai;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// `response_format.json_schema.name`; without one, the name the messages give the schema
    /// they state ("... JSON schema (named NAME)"); else "".
    pub schema_name: String,
    /// Every message's content, joined with newlines.
    pub messages_text: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The method and path (`GET /v1/models`).
    pub method: String,
    pub path: String,
}

impl Recorded {
    /// The content of the message with this role (the first one).
    pub fn message(&self, role: &str) -> Option<String> {
        self.body["messages"]
            .as_array()?
            .iter()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .map(str::to_string)
    }
}

/// How the server answers.
pub enum Reply {
    /// A completion whose `message.content` is this JSON, as text.
    Json(Value),
    /// A completion whose `message.content` is this text (for malformed output).
    Content(String),
    /// An error status with a JSON body.
    Status(u16, Value),
    /// The reply after a delay.
    Delay(Duration, Box<Reply>),
    /// A reply with an extra response header (e.g. `Retry-After`).
    Header(String, String, Box<Reply>),
    /// A status with a raw (non-JSON) body.
    Raw(u16, String),
    /// A completion whose message is a refusal.
    Refusal(String),
    /// A redirect (301, 302, 303, 307, 308) to this location.
    Redirect(u16, String),
    /// A 200 whose body arrives one `chunk` every `every`, `count` times (a slow drip).
    Drip {
        chunk: String,
        every: Duration,
        count: usize,
    },
    /// A 200 with a body of this many bytes; with `declared`, its `Content-Length` says so,
    /// else it is streamed in chunks of unknown total length.
    Huge { bytes: usize, declared: bool },
}

type Check = Box<dyn Fn(&Recorded) -> Result<(), String> + Send + Sync>;
type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// One scripted exchange: what the request must be, and the reply.
pub struct Step {
    schema_name: String,
    needles: Vec<String>,
    checks: Vec<Check>,
    reply: Option<Reply>,
}

impl Step {
    /// A request for the reply schema of this name (`sql_answer`, `result_verdict`,
    /// `database_choice`).
    pub fn expect(schema_name: &str) -> Step {
        Step {
            schema_name: schema_name.to_string(),
            needles: Vec::new(),
            checks: Vec::new(),
            reply: None,
        }
    }

    /// The messages must contain this text.
    pub fn containing(mut self, needle: &str) -> Step {
        self.needles.push(needle.to_string());
        self
    }

    /// The request must pass this check.
    pub fn check(
        mut self,
        f: impl Fn(&Recorded) -> Result<(), String> + Send + Sync + 'static,
    ) -> Step {
        self.checks.push(Box::new(f));
        self
    }

    /// The reply (without one, the step answers 500 "no reply scripted").
    pub fn reply(mut self, r: Reply) -> Step {
        self.reply = Some(r);
        self
    }

    fn verify(&self, recorded: &Recorded) -> Vec<String> {
        let mut problems = Vec::new();
        if recorded.schema_name != self.schema_name {
            problems.push(format!(
                "expected schema {:?}, got {:?}",
                self.schema_name, recorded.schema_name
            ));
        }
        for needle in &self.needles {
            if !recorded.messages_text.contains(needle.as_str()) {
                problems.push(format!("messages do not contain {needle:?}"));
            }
        }
        for check in &self.checks {
            if let Err(problem) = check(recorded) {
                problems.push(problem);
            }
        }
        problems
    }
}

/// A `sql_answer` reply.
pub fn generate(sql: &str) -> Reply {
    Reply::Json(json!({"sql": sql, "explanation": "scripted explanation", "assumptions": []}))
}

/// A `result_verdict` reply; below 7 the critique repeats the reasons.
pub fn verdict(score: u8, reasons: &str) -> Reply {
    let critique = if score < 7 { reasons } else { "" };
    Reply::Json(json!({"score": score, "reasons": reasons, "critique": critique}))
}

/// A `database_choice` reply.
pub fn route(db: Option<&str>, candidates: &[&str]) -> Reply {
    Reply::Json(json!({"database": db, "candidates": candidates, "reason": "scripted reason"}))
}

/// An OpenAI-style error body.
pub fn error_body(message: &str, code: &str) -> Value {
    json!({"error": {"message": message, "type": code, "param": null, "code": code}})
}

/// HTTP 429 with `Retry-After: secs`.
pub fn rate_limited(retry_after_secs: u64) -> Reply {
    Reply::Header(
        "retry-after".into(),
        retry_after_secs.to_string(),
        Box::new(Reply::Status(
            429,
            error_body("Rate limit reached for requests", "rate_limit_exceeded"),
        )),
    )
}

#[derive(Default)]
struct Inner {
    steps: VecDeque<Step>,
    responder: Option<Responder>,
    recorded: Vec<Recorded>,
    problems: Vec<String>,
    /// Steps taken from the script so far.
    consumed: usize,
    /// A hostile endpoint: any request (any method and path) goes to the responder unchecked.
    hostile: bool,
    /// The `model.structured_output` requests must use: "json_schema" (also when empty),
    /// "json_object" or "none".
    format: String,
}

/// The running server; stopped when dropped.
pub struct ScriptedOpenAi {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedOpenAi {
    /// A server that answers with `steps`, in order.
    pub async fn start(steps: Vec<Step>) -> ScriptedOpenAi {
        let inner = Inner {
            steps: steps.into(),
            ..Inner::default()
        };
        Self::serve(inner).await
    }

    /// A server that answers with `steps`, in order, and expects requests made with
    /// `model.structured_output = format` ("json_schema", "json_object", "none").
    pub async fn start_expecting(format: &str, steps: Vec<Step>) -> ScriptedOpenAi {
        let inner = Inner {
            steps: steps.into(),
            format: format.to_string(),
            ..Inner::default()
        };
        Self::serve(inner).await
    }

    /// A server that answers every request with `f` (benchmarks, concurrency).
    pub async fn with_responder(
        f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> ScriptedOpenAi {
        let inner = Inner {
            responder: Some(Arc::new(f)),
            ..Inner::default()
        };
        Self::serve(inner).await
    }

    /// A hostile endpoint: every request, whatever its method and path, is recorded and
    /// answered by `f`, without the checks of a well-behaved client.
    pub async fn hostile(f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> ScriptedOpenAi {
        let inner = Inner {
            responder: Some(Arc::new(f)),
            hostile: true,
            ..Inner::default()
        };
        Self::serve(inner).await
    }

    /// `http://127.0.0.1:PORT`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    async fn serve(inner: Inner) -> ScriptedOpenAi {
        let inner = Arc::new(Mutex::new(inner));
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("scripted OpenAI server: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("scripted OpenAI server: no local address: {e}"),
        };
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("scripted OpenAI server stopped: {e}");
            }
        });
        ScriptedOpenAi { addr, inner, task }
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.inner).recorded.clone()
    }

    /// Steps not yet consumed.
    pub fn remaining_steps(&self) -> usize {
        lock(&self.inner).steps.len()
    }

    /// Problems found so far (failed checks, unexpected requests).
    pub fn problems(&self) -> Vec<String> {
        lock(&self.inner).problems.clone()
    }

    /// Panics listing the problems: unconsumed steps, failed checks, unexpected requests.
    pub fn assert_done(&self) {
        let inner = lock(&self.inner);
        let mut problems = inner.problems.clone();
        for (i, step) in inner.steps.iter().enumerate() {
            problems.push(format!(
                "step {} ({}) was never requested",
                inner.consumed + i + 1,
                step.schema_name
            ));
        }
        if !problems.is_empty() {
            panic!(
                "scripted OpenAI server: {} problem(s) after {} request(s):\n  {}",
                problems.len(),
                inner.recorded.len(),
                problems.join("\n  ")
            );
        }
    }
}

impl Drop for ScriptedOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The default checks every request must pass.
fn default_checks(method: &Method, uri: &Uri, recorded: &Recorded, format: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if method != Method::POST {
        problems.push(format!("method {method}, expected POST"));
    }
    if uri.path() != "/v1/chat/completions" {
        problems.push(format!(
            "path {}, expected /v1/chat/completions",
            uri.path()
        ));
    }
    match recorded.authorization.as_deref() {
        Some(auth)
            if auth
                .strip_prefix("Bearer ")
                .is_some_and(|t| !t.trim().is_empty()) => {}
        Some(_) => problems.push("Authorization is not `Bearer <token>`".into()),
        None => problems.push("no Authorization header".into()),
    }
    let body = &recorded.body;
    if !body.is_object() {
        problems.push("the body is not a JSON object".into());
        return problems;
    }
    if body["model"].as_str().is_none_or(str::is_empty) {
        problems.push("no model".into());
    }
    let response_format = &body["response_format"];
    match format {
        "json_object" | "none" => {
            let expected = (format == "json_object").then(|| json!({"type": "json_object"}));
            if body.get("response_format") != expected.as_ref() {
                problems.push(format!(
                    "response_format is {response_format}, expected {expected:?} for {format}"
                ));
            }
            if recorded.schema_name.is_empty() {
                problems.push(format!(
                    "with {format}, the messages do not state the reply's JSON schema"
                ));
            }
        }
        _ => {
            if response_format["type"] != "json_schema" {
                problems.push(format!(
                    "response_format.type is {}, expected \"json_schema\"",
                    response_format["type"]
                ));
            }
            let schema = &response_format["json_schema"];
            if schema["strict"] != true {
                problems.push("response_format.json_schema.strict is not true".into());
            }
            if !schema["schema"].is_object() {
                problems.push("response_format.json_schema.schema is not an object".into());
            }
            if schema["name"].as_str().is_none_or(str::is_empty) {
                problems.push("response_format.json_schema.name is missing".into());
            }
        }
    }
    match body["messages"].as_array() {
        Some(messages) if !messages.is_empty() => {
            for (i, m) in messages.iter().enumerate() {
                if !m["role"].is_string() || !m["content"].is_string() {
                    problems.push(format!("message {i} lacks a role or a text content"));
                }
            }
        }
        _ => problems.push("messages are missing or empty".into()),
    }
    problems
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let messages_text = body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let stated_name = messages_text
        .split_once("JSON schema (named ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(name, _)| name.to_string());
    let recorded = Recorded {
        schema_name: body["response_format"]["json_schema"]["name"]
            .as_str()
            .map(str::to_string)
            .or(stated_name)
            .unwrap_or_default(),
        messages_text,
        authorization: headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        method: method.to_string(),
        path: uri.path().to_string(),
        body,
    };
    let model = recorded.body["model"]
        .as_str()
        .unwrap_or("scripted-model")
        .to_string();
    let prompt_tokens = recorded.messages_text.chars().count() as u64 / 4 + 1;

    let reply = {
        let mut guard = lock(&inner);
        guard.recorded.push(recorded.clone());
        let number = guard.recorded.len();
        let problems = if guard.hostile {
            Vec::new()
        } else {
            default_checks(&method, &uri, &recorded, &guard.format)
        };
        if !problems.is_empty() {
            let reason = format!("request {number}: {}", problems.join("; "));
            guard.problems.push(reason.clone());
            return fail(reason);
        }
        if let Some(responder) = guard.responder.clone() {
            drop(guard);
            responder(&recorded)
        } else {
            let Some(step) = guard.steps.pop_front() else {
                let reason = format!(
                    "request {number} ({}) is unexpected: the script has no step left",
                    recorded.schema_name
                );
                guard.problems.push(reason.clone());
                return fail(reason);
            };
            guard.consumed += 1;
            let problems = step.verify(&recorded);
            if !problems.is_empty() {
                let reason = format!(
                    "request {number} ({}) does not match its step: {}",
                    recorded.schema_name,
                    problems.join("; ")
                );
                guard.problems.push(reason.clone());
                return fail(reason);
            }
            match step.reply {
                Some(reply) => reply,
                None => {
                    let reason = format!("request {number}: the step has no reply scripted");
                    guard.problems.push(reason.clone());
                    return fail(reason);
                }
            }
        }
    };
    render(reply, &model, prompt_tokens).await
}

fn fail(reason: String) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"error": {"message": reason, "type": "scripted_check_failed"}})),
    )
        .into_response()
}

fn completion(model: &str, prompt_tokens: u64, message: Value) -> Response {
    let completion_tokens = message["content"]
        .as_str()
        .map_or(1, |c| c.chars().count() as u64 / 4 + 1);
    axum::Json(json!({
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
    .into_response()
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn render(
    reply: Reply,
    model: &str,
    prompt_tokens: u64,
) -> futures::future::BoxFuture<'_, Response> {
    Box::pin(async move {
        match reply {
            Reply::Json(value) => completion(
                model,
                prompt_tokens,
                json!({"role": "assistant", "content": value.to_string(), "refusal": null}),
            ),
            Reply::Content(text) => completion(
                model,
                prompt_tokens,
                json!({"role": "assistant", "content": text, "refusal": null}),
            ),
            Reply::Refusal(text) => completion(
                model,
                prompt_tokens,
                json!({"role": "assistant", "content": null, "refusal": text}),
            ),
            Reply::Status(code, body) => (status(code), axum::Json(body)).into_response(),
            Reply::Raw(code, body) => (status(code), body).into_response(),
            Reply::Delay(delay, inner) => {
                tokio::time::sleep(delay).await;
                render(*inner, model, prompt_tokens).await
            }
            Reply::Redirect(code, location) => {
                let mut response = (status(code), "moved").into_response();
                if let Ok(value) = HeaderValue::try_from(location) {
                    response
                        .headers_mut()
                        .insert(axum::http::header::LOCATION, value);
                }
                response
            }
            Reply::Drip {
                chunk,
                every,
                count,
            } => {
                let stream = futures::stream::unfold(0usize, move |i| {
                    let chunk = chunk.clone();
                    async move {
                        if i >= count {
                            return None;
                        }
                        tokio::time::sleep(every).await;
                        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), i + 1))
                    }
                });
                Response::new(axum::body::Body::from_stream(stream))
            }
            Reply::Huge { bytes, declared } => {
                if declared {
                    let mut response = Response::new(axum::body::Body::from(vec![b'x'; bytes]));
                    if let Ok(value) = HeaderValue::try_from(bytes.to_string()) {
                        response
                            .headers_mut()
                            .insert(axum::http::header::CONTENT_LENGTH, value);
                    }
                    response
                } else {
                    const CHUNK: usize = 64 * 1024;
                    let stream = futures::stream::unfold(0usize, move |sent| async move {
                        if sent >= bytes {
                            return None;
                        }
                        let n = CHUNK.min(bytes - sent);
                        Some((
                            Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; n])),
                            sent + n,
                        ))
                    });
                    Response::new(axum::body::Body::from_stream(stream))
                }
            }
            Reply::Header(name, value, inner) => {
                let mut response = render(*inner, model, prompt_tokens).await;
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    response.headers_mut().insert(name, value);
                }
                response
            }
        }
    })
}
