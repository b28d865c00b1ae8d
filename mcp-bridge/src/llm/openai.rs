//! The OpenAI Chat Completions client (works with any OpenAI-compatible endpoint).
//!
//! One request is `POST {base_url}/chat/completions` with the messages and, as
//! `model.structured_output` says, a strict `json_schema` response format (the default), a
//! `json_object` one, or none; the schema is always stated in the instructions too. Whatever
//! the mode, the reply is read tolerantly (the JSON object alone, in a Markdown fence, or in
//! text) and checked against the schema ([`super::schema`]): a reply that does not match is
//! [`LlmError::Malformed`]. Transient failures (429, 5xx, connection errors, timeouts)
//! are retried up to `max_retries` times with a short exponential backoff, honouring
//! `Retry-After` up to [`MAX_RETRY_AFTER`]; other errors are returned at once with the
//! endpoint's own message. The API key is only ever put in the `Authorization` header: it is
//! not logged and is removed from any message an endpoint echoes back.
//!
//! (About 640 lines: the request, the retry loop and the reading of replies and errors are one
//! conversation with one endpoint, and read best together; the tests are in `openai/tests.rs`.)

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ChatModel, LlmError, ModelReply, StructuredRequest, TokenUsage};
use crate::settings::{ModelSettings, StructuredOutput};

/// First backoff between attempts; doubled each time.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
/// Longest backoff chosen by the client.
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// Longest `Retry-After` waited for; a longer one ends the request with
/// [`LlmError::RateLimited`] (carrying the wait) instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);
/// Most characters of an error body quoted in a message.
const MAX_ERROR_CHARS: usize = 300;
/// Largest response body read from the endpoint; a longer one is an error (a completion is a
/// few kilobytes: this only stops a broken or hostile endpoint from exhausting memory).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Longest wait read from a `Retry-After` header (larger values are capped to it).
const MAX_RETRY_AFTER_HEADER: f64 = 86_400.0;

/// A model behind an OpenAI-compatible Chat Completions endpoint.
pub struct OpenAiModel {
    http: reqwest::Client,
    url: String,
    api_key: String,
    model: String,
    reasoning_effort: Option<String>,
    timeout: Duration,
    max_retries: u32,
    structured_output: StructuredOutput,
}

impl std::fmt::Debug for OpenAiModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiModel")
            .field("url", &crate::settings::redact_url_credentials(&self.url))
            .field("model", &self.model)
            .field("reasoning_effort", &self.reasoning_effort)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("structured_output", &self.structured_output)
            .finish_non_exhaustive()
    }
}

impl OpenAiModel {
    /// A client for the configured endpoint; [`LlmError::NotConfigured`] without an API key.
    pub fn new(settings: &ModelSettings) -> Result<Self, LlmError> {
        let api_key = settings
            .api_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                LlmError::NotConfigured(
                    "no OpenAI API key is configured: set OPENAI_API_KEY (or [model] api_key)"
                        .into(),
                )
            })?
            .to_string();
        let base = settings.base_url.trim().trim_end_matches('/');
        if base.is_empty() {
            return Err(LlmError::NotConfigured(
                "the model base_url is empty".into(),
            ));
        }
        let url = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/chat/completions")
        };
        let timeout = if settings.request_timeout.is_zero() {
            Duration::from_secs(60)
        } else {
            settings.request_timeout
        };
        crate::redact::register(&api_key);
        let http = reqwest::Client::builder()
            // A redirect would carry the key (and the prompt) to wherever it points: never
            // followed; a 3xx is an error naming where it pointed.
            .redirect(reqwest::redirect::Policy::none())
            // the key goes to base_url's origin only: never through an HTTP(S)_PROXY
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("pg-nlq-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                LlmError::NotConfigured(format!("could not create the HTTP client: {e}"))
            })?;
        Ok(OpenAiModel {
            http,
            url,
            api_key,
            model: settings.model.clone(),
            reasoning_effort: settings
                .reasoning_effort
                .as_deref()
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            timeout,
            max_retries: settings.max_retries,
            structured_output: settings.structured_output,
        })
    }

    /// The request body.
    fn body(&self, request: &StructuredRequest) -> Value {
        let mut messages: Vec<Value> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        // Without a json_schema response format the instructions are all the model has: they
        // must state the schema (the bridge's prompts do; a request that does not gets it).
        let schema_text = request.schema.to_string();
        if self.structured_output != StructuredOutput::JsonSchema
            && !request
                .messages
                .iter()
                .any(|m| m.content.contains(&schema_text))
        {
            messages.push(json!({"role": "system", "content": schema_instruction(request)}));
        }
        let mut body = json!({
            "model": self.model,
            "messages": messages,
        });
        let format = match self.structured_output {
            StructuredOutput::JsonSchema => Some(json!({
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "strict": true,
                    "schema": request.schema,
                }
            })),
            StructuredOutput::JsonObject => Some(json!({"type": "json_object"})),
            StructuredOutput::None => None,
        };
        if let Some(map) = body.as_object_mut() {
            if let Some(format) = format {
                map.insert("response_format".into(), format);
            }
            if let Some(effort) = &self.reasoning_effort {
                map.insert("reasoning_effort".into(), json!(effort));
            }
        }
        body
    }

    /// The request, then its reply read as the JSON object the schema describes.
    async fn send_checked(&self, request: StructuredRequest) -> Result<ModelReply, LlmError> {
        let name = request.schema_name;
        let schema = request.schema.clone();
        let mut reply = self.send(request).await?;
        reply.content = read_reply(&reply.content, name, &schema, self.structured_output)
            .map_err(|e| self.redact_error(e))?;
        Ok(reply)
    }

    /// Sends the request, retrying transient failures.
    async fn send(&self, request: StructuredRequest) -> Result<ModelReply, LlmError> {
        let body = self.body(&request);
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            let result = self.send_once(&body).await;
            let error = match result {
                Ok(reply) => {
                    tracing::debug!(
                        task = ?request.task,
                        model = %reply.model,
                        attempt = attempt + 1,
                        input_tokens = reply.usage.input,
                        output_tokens = reply.usage.output,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "model replied"
                    );
                    return Ok(reply);
                }
                Err(failure) => failure,
            };
            let wait = match &error.error {
                _ if attempt >= self.max_retries => None,
                LlmError::RateLimited {
                    retry_after: Some(after),
                    ..
                } if *after > MAX_RETRY_AFTER => None,
                LlmError::RateLimited {
                    retry_after: Some(after),
                    ..
                } => Some(*after),
                LlmError::RateLimited { .. } | LlmError::Timeout(_) => Some(backoff(attempt)),
                LlmError::Transport {
                    retryable: true, ..
                } => Some(backoff(attempt)),
                _ => None,
            };
            let Some(wait) = wait.filter(|_| error.retry) else {
                tracing::debug!(
                    task = ?request.task,
                    attempt = attempt + 1,
                    error = %error.error,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "model request failed"
                );
                return Err(error.error);
            };
            tracing::debug!(
                task = ?request.task,
                attempt = attempt + 1,
                error = %error.error,
                wait_ms = wait.as_millis() as u64,
                "model request failed; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange.
    async fn send_once(&self, body: &Value) -> Result<ModelReply, Failure> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(Failure::final_(LlmError::Transport {
                message: redirect_message(status, response.url(), response.headers()),
                retryable: false,
            }));
        }
        let retry_after = retry_after(response.headers());
        let text = self.read_body(response).await?;
        // An endpoint may echo the key back (in an error, or anywhere): never pass it on.
        let text = self.redact(&text);
        if !status.is_success() {
            return Err(self.status_error(status, retry_after, &text));
        }
        // the content is decoded from JSON: redacted again, decoded
        parse_completion(&text, &self.model)
            .map(|mut reply| {
                reply.content = self.redact(&reply.content);
                reply
            })
            .map_err(|e| Failure::final_(self.redact_error(e)))
    }

    /// The response body as text, at most [`MAX_BODY_BYTES`] of it.
    async fn read_body(&self, mut response: reqwest::Response) -> Result<String, Failure> {
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(body_too_large());
        }
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.request_error(&e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(body_too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// A failure before or while reading the response.
    fn request_error(&self, err: &reqwest::Error) -> Failure {
        if err.is_timeout() {
            return Failure::retry(LlmError::Timeout(self.timeout));
        }
        let what = if err.is_connect() {
            "could not connect to the model endpoint"
        } else {
            "the request to the model endpoint failed"
        };
        // reqwest's message names the URL, never the headers
        let detail = self.redact(&error_chain(err));
        Failure::retry(LlmError::Transport {
            message: format!("{what}: {detail}"),
            retryable: true,
        })
    }

    /// An error status.
    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Failure {
        // redacted whole, after decoding, and only then cut
        let (message, code) = error_message(body);
        let message = shorten(&self.redact(&message));
        let code_ = status.as_u16();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                let quota = code.as_deref() == Some("insufficient_quota");
                let error = LlmError::RateLimited {
                    message: if message.is_empty() {
                        "HTTP 429".into()
                    } else {
                        message
                    },
                    retry_after,
                };
                // an exhausted quota does not come back by waiting a few seconds
                if quota {
                    Failure::final_(error)
                } else {
                    Failure::retry(error)
                }
            }
            StatusCode::REQUEST_TIMEOUT => Failure::retry(LlmError::Timeout(self.timeout)),
            s if s.is_server_error() => Failure::retry(LlmError::Transport {
                message: format!(
                    "the model endpoint failed (HTTP {code_}): {}",
                    or_status(&message, status)
                ),
                retryable: true,
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Failure::final_(LlmError::Transport {
                    message: format!(
                        "the model endpoint refused the credentials (HTTP {code_}): {}",
                        or_status(&message, status)
                    ),
                    retryable: false,
                })
            }
            _ => Failure::final_(LlmError::Transport {
                message: format!(
                    "the model endpoint rejected the request (HTTP {code_}): {}",
                    or_status(&message, status)
                ),
                retryable: false,
            }),
        }
    }

    /// A reply's error, its quoted text redacted.
    fn redact_error(&self, err: LlmError) -> LlmError {
        match err {
            LlmError::Malformed(m) => LlmError::Malformed(self.redact(&m)),
            LlmError::Refused(m) => LlmError::Refused(shorten(&self.redact(&m))),
            other => other,
        }
    }

    /// The text with the API key (in any encoding) and URL passwords replaced: the bridge's
    /// one redaction path, [`crate::redact`], with this client's key registered.
    fn redact(&self, text: &str) -> String {
        crate::redact::register(&self.api_key);
        crate::redact::redact(text)
    }
}

impl ChatModel for OpenAiModel {
    fn describe(&self) -> String {
        format!("openai {}", self.model)
    }

    fn complete(&self, request: StructuredRequest) -> BoxFuture<'_, Result<ModelReply, LlmError>> {
        Box::pin(self.send_checked(request))
    }
}

/// What the model is told when the request carries no JSON schema response format and its
/// messages do not state the schema.
fn schema_instruction(request: &StructuredRequest) -> String {
    format!(
        "Reply with only a JSON object, with no Markdown fence and no text before or after it. \
         It must match this JSON schema (named {}):\n{}",
        request.schema_name, request.schema
    )
}

/// The reply's JSON object, checked against `schema`, as compact JSON text: the object alone,
/// in a Markdown fence or in text (the first one that matches), whatever `mode` asked for.
pub fn read_reply(
    content: &str,
    name: &str,
    schema: &Value,
    mode: StructuredOutput,
) -> Result<String, LlmError> {
    let matches = |v: &Value| super::schema::check(v, schema).is_ok();
    let Some(object) = super::reply::find_object(content, &matches) else {
        return Err(LlmError::Malformed(format!(
            "expected a JSON object of the schema {name} (model.structured_output = {}), got {:?}",
            mode.as_str(),
            shorten(&content.chars().take(120).collect::<String>())
        )));
    };
    super::schema::check(&object, schema).map_err(|problem| {
        LlmError::Malformed(format!(
            "the JSON object does not match the schema {name} (model.structured_output = {}): \
             {problem}",
            mode.as_str()
        ))
    })?;
    Ok(object.to_string())
}

/// A failed exchange and whether it is worth another try.
struct Failure {
    error: LlmError,
    retry: bool,
}

impl Failure {
    fn retry(error: LlmError) -> Self {
        Failure { error, retry: true }
    }
    fn final_(error: LlmError) -> Self {
        Failure {
            error,
            retry: false,
        }
    }
}

/// The error for a redirect: where it pointed (scheme, host and port only: the rest may carry
/// anything), and that it was not followed.
pub fn redirect_message(status: StatusCode, from: &reqwest::Url, headers: &HeaderMap) -> String {
    let target = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| from.join(location).ok());
    let target = match target {
        Some(url) => format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or("?"),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => "an unreadable location".to_string(),
    };
    format!(
        "the model endpoint answered HTTP {} redirecting to {target}; redirects are not \
         followed (the API key is sent only to model.base_url): set model.base_url to the \
         endpoint's final address",
        status.as_u16()
    )
}

fn body_too_large() -> Failure {
    Failure::final_(LlmError::Transport {
        message: format!(
            "the model endpoint's reply is larger than {} MiB: check model.base_url",
            MAX_BODY_BYTES / (1024 * 1024)
        ),
        retryable: false,
    })
}

/// 250 ms, 500 ms, 1 s... capped at [`MAX_BACKOFF`].
fn backoff(attempt: u32) -> Duration {
    BASE_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(MAX_BACKOFF)
}

/// `Retry-After` in seconds (OpenAI also sends `retry-after-ms`); an HTTP date is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    // `Duration::from_secs_f64` panics on overflow: every value is capped first.
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(
                (ms / 1000.0).min(MAX_RETRY_AFTER_HEADER),
            ));
        }
    }
    let secs = header(RETRY_AFTER.as_str()).and_then(|v| v.parse::<f64>().ok())?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_HEADER)))
}

/// `error.message` and `error.code` of an OpenAI error body, else the start of the body.
fn error_message(body: &str) -> (String, Option<String>) {
    if let Ok(value) = serde_json::from_str::<Value>(body) {
        let error = &value["error"];
        let message = error["message"]
            .as_str()
            .or_else(|| error.as_str())
            .or_else(|| value["message"].as_str());
        if let Some(message) = message {
            let code = error["code"].as_str().or_else(|| error["type"].as_str());
            return (message.to_string(), code.map(str::to_string));
        }
    }
    (body.to_string(), None)
}

fn or_status(message: &str, status: StatusCode) -> String {
    if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        message.to_string()
    }
}

fn shorten(text: &str) -> String {
    crate::text::one_line(text, MAX_ERROR_CHARS)
}

/// An error with its sources ("error sending request: connection refused").
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// Reads a successful Chat Completions body.
fn parse_completion(text: &str, requested_model: &str) -> Result<ModelReply, LlmError> {
    let completion: Completion = serde_json::from_str(text).map_err(|e| {
        LlmError::Malformed(format!(
            "the endpoint's reply is not a chat completion ({e}): {:?}",
            shorten(&text.chars().take(120).collect::<String>())
        ))
    })?;
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::Malformed("the endpoint's reply has no choices".into()))?;
    let message = choice
        .message
        .ok_or_else(|| LlmError::Malformed("the endpoint's reply has no message".into()))?;
    if let Some(refusal) = message.refusal.filter(|r| !r.trim().is_empty()) {
        // cut by the caller, after redaction
        return Err(LlmError::Refused(refusal));
    }
    let content = message
        .content
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| {
            LlmError::Malformed(match choice.finish_reason.as_deref() {
                Some("length") => {
                    "the reply was cut off at the token limit before any content".into()
                }
                Some(reason) => format!("the reply has no content (finish reason {reason})"),
                None => "the reply has no content".into(),
            })
        })?;
    if choice.finish_reason.as_deref() == Some("length") {
        tracing::debug!("the model's reply was cut off at the token limit");
    }
    let usage = completion
        .usage
        .map(|u| TokenUsage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
        })
        .unwrap_or_default();
    Ok(ModelReply {
        content,
        usage,
        model: completion
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| requested_model.to_string()),
    })
}

#[cfg(test)]
mod tests;
