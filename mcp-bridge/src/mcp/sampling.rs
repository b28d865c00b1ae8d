//! The MCP client's own model, through sampling (`sampling/createMessage`): used for `query`
//! when no API key is configured and the client declared the sampling capability.
//!
//! Sampling is a server-to-client request inside a tool call, which MCP allows up to protocol
//! `2025-11-25` (sessions with an `initialize` handshake). From `2026-07-28` on such requests
//! are forbidden (the SDK refuses to send them), so [`sampling_available`] says no for those
//! clients and `query` answers `NO_MODEL`.

// Sampling is deprecated by SEP-2577 in the SDK, but it is what clients of the protocol
// versions with a handshake offer, and the only way to use the client's model.
#![allow(deprecated)]

use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::model::{
    ClientCapabilities, ContextInclusion, CreateMessageRequestParams, ProtocolVersion,
    SamplingMessage,
};
use rmcp::service::ServiceError;
use rmcp::{Peer, RoleServer};

use crate::llm::{ChatModel, LlmError, ModelReply, Role, StructuredRequest, TokenUsage};

/// Most tokens asked of the client's model per request.
const MAX_TOKENS: u32 = 4000;
/// How long one sampling request may take (the client may ask its user to approve it).
const SAMPLING_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether a client can be asked for completions: it declared the sampling capability and the
/// request's protocol version still allows server-to-client requests.
pub fn sampling_available(
    protocol: Option<&ProtocolVersion>,
    capabilities: Option<&ClientCapabilities>,
) -> bool {
    let protocol_allows = protocol.is_none_or(|v| v.has_initialize());
    protocol_allows && capabilities.is_some_and(|c| c.sampling.is_some())
}

/// A [`ChatModel`] that asks the connected MCP client.
pub struct SamplingModel {
    peer: Peer<RoleServer>,
}

impl SamplingModel {
    pub fn new(peer: Peer<RoleServer>) -> Self {
        SamplingModel { peer }
    }
}

/// The request as sampling parameters: system messages joined into the system prompt, the
/// others as user and assistant text messages, no context from other servers, the task and
/// schema name in the metadata.
pub fn sampling_params(request: &StructuredRequest) -> CreateMessageRequestParams {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for message in &request.messages {
        match message.role {
            Role::System => system.push(message.content.as_str()),
            Role::User => messages.push(SamplingMessage::user_text(message.content.clone())),
            Role::Assistant => {
                messages.push(SamplingMessage::assistant_text(message.content.clone()))
            }
        }
    }
    let mut params = CreateMessageRequestParams::new(messages, MAX_TOKENS)
        .with_include_context(ContextInclusion::None)
        .with_metadata(serde_json::json!({
            "task": request.task,
            "schema": request.schema_name,
        }));
    if !system.is_empty() {
        params = params.with_system_prompt(system.join("\n\n"));
    }
    params
}

impl ChatModel for SamplingModel {
    fn describe(&self) -> String {
        "client sampling".to_string()
    }

    fn complete(&self, request: StructuredRequest) -> BoxFuture<'_, Result<ModelReply, LlmError>> {
        Box::pin(async move {
            let params = sampling_params(&request);
            let result = tokio::time::timeout(SAMPLING_TIMEOUT, self.peer.create_message(params))
                .await
                .map_err(|_| LlmError::Timeout(SAMPLING_TIMEOUT))?
                .map_err(sampling_error)?;
            let text: Vec<&str> = result
                .message
                .content
                .iter()
                .filter_map(|block| block.as_text())
                .map(|t| t.text.as_str())
                .collect();
            if text.is_empty() {
                return Err(LlmError::Malformed(
                    "the client's sampling reply has no text content".to_string(),
                ));
            }
            Ok(ModelReply {
                content: text.concat(),
                usage: TokenUsage::default(),
                model: result.model,
            })
        })
    }
}

fn sampling_error(err: ServiceError) -> LlmError {
    match err {
        ServiceError::McpError(data) => LlmError::Transport {
            message: format!(
                "the MCP client refused the sampling request: {}",
                data.message
            ),
            retryable: false,
        },
        ServiceError::Timeout { timeout } => LlmError::Timeout(timeout),
        ServiceError::TransportClosed => LlmError::Transport {
            message: "the MCP client went away during a sampling request".to_string(),
            retryable: false,
        },
        other => LlmError::Transport {
            message: format!("sampling request to the MCP client failed: {other}"),
            retryable: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Message, Task};
    use rmcp::model::{Role as McpRole, SamplingCapability};

    #[test]
    fn system_messages_become_the_system_prompt() {
        let request = StructuredRequest {
            task: Task::Generate,
            messages: vec![
                Message::system("rules"),
                Message::user("question"),
                Message::assistant("previous"),
                Message::user("fix it"),
            ],
            schema_name: "sql_answer",
            schema: serde_json::json!({}),
        };
        let params = sampling_params(&request);
        assert_eq!(params.system_prompt.as_deref(), Some("rules"));
        let roles: Vec<McpRole> = params.messages.iter().map(|m| m.role.clone()).collect();
        assert_eq!(roles, [McpRole::User, McpRole::Assistant, McpRole::User]);
        assert_eq!(params.max_tokens, MAX_TOKENS);
        assert_eq!(params.include_context, Some(ContextInclusion::None));
        assert!(params.temperature.is_none());
        assert_eq!(
            params.metadata,
            Some(serde_json::json!({"task": "generate", "schema": "sql_answer"}))
        );
    }

    #[test]
    fn sampling_needs_the_capability_and_a_protocol_with_handshake() {
        let mut with = ClientCapabilities::default();
        with.sampling = Some(SamplingCapability::default());
        let without = ClientCapabilities::default();
        let legacy = ProtocolVersion::V_2025_06_18;
        let modern = ProtocolVersion::V_2026_07_28;
        assert!(sampling_available(Some(&legacy), Some(&with)));
        assert!(!sampling_available(Some(&legacy), Some(&without)));
        assert!(!sampling_available(Some(&modern), Some(&with)));
        assert!(!sampling_available(Some(&legacy), None));
    }
}
