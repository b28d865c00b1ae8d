//! Serving MCP: over stdin/stdout, and over streamable HTTP at [`HTTP_PATH`] behind a guard
//! that checks `Host` and `Origin` ([`super::origin`]) and caps the sessions
//! ([`super::sessions`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::service::ServerInitializeError;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::ServiceExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;
use crate::error::BridgeError;

use super::{origin, sessions, NlqServer, HTTP_PATH};

/// Serves MCP over stdin/stdout until the client closes stdin (also before initializing, which
/// is not an error: the client went away).
pub async fn serve_stdio(bridge: Arc<Bridge>) -> Result<(), BridgeError> {
    let service = match NlqServer::new(bridge).serve(rmcp::transport::stdio()).await {
        Ok(service) => service,
        Err(ServerInitializeError::ConnectionClosed(_)) => {
            tracing::info!("stdin closed before the client initialized");
            return Ok(());
        }
        Err(e) => {
            return Err(BridgeError::Internal(format!(
                "the MCP session over stdio failed to start: {e}"
            )))
        }
    };
    let reason = service
        .waiting()
        .await
        .map_err(|e| BridgeError::Internal(format!("the MCP session over stdio failed: {e}")))?;
    tracing::info!(?reason, "MCP session over stdio ended");
    Ok(())
}

/// A bound streamable HTTP server, not yet serving.
pub struct HttpServer {
    listener: tokio::net::TcpListener,
    router: axum::Router,
    local_addr: SocketAddr,
    cancel: CancellationToken,
}

impl HttpServer {
    /// The address it is bound to (with the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://<addr>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}{HTTP_PATH}", self.local_addr)
    }

    /// Serves until `shutdown` completes, then closes the MCP sessions and stops.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), BridgeError> {
        let cancel = self.cancel.clone();
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Ends the sessions' event streams, which graceful shutdown would wait for.
                cancel.cancel();
            })
            .await
            .map_err(|e| BridgeError::Internal(format!("the HTTP server failed: {e}")))
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run(self) -> Result<(), BridgeError> {
        self.run_until(shutdown_signal()).await
    }
}

/// Binds the streamable HTTP endpoint (`/mcp`) on `addr`. A non-loopback address is refused
/// unless `allow_remote`: the endpoint has no authentication. On loopback, requests must name a
/// loopback `Host`, and a browser `Origin` must be a loopback one (DNS-rebinding protection).
pub async fn bind_http(
    bridge: Arc<Bridge>,
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<HttpServer, BridgeError> {
    check_bind_address(addr, allow_remote)?;
    let cancel = CancellationToken::new();
    // Host and Origin are checked by `guard` with the bridge's own parser (`origin`), not by
    // rmcp's lists.
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel.child_token())
        .disable_allowed_hosts()
        .disable_allowed_origins();
    let loopback_only = addr.ip().is_loopback();
    if !loopback_only {
        // The operator chose to expose the endpoint: clients name this host however they
        // reach it, which cannot be known here.
        tracing::warn!(
            "serving MCP over HTTP on {addr} without authentication: anyone who can reach it \
             can query the configured databases"
        );
    }
    let sessions = Arc::new(sessions::BoundedSessions::new(
        bridge.settings().http.clone(),
    ));
    let service: StreamableHttpService<NlqServer, sessions::BoundedSessions> =
        StreamableHttpService::new(
            move || Ok(NlqServer::new(bridge.clone())),
            sessions.clone(),
            config,
        );
    let state = GuardState {
        sessions,
        loopback_only,
    };
    let router = axum::Router::new()
        .nest_service(HTTP_PATH, service)
        .layer(axum::middleware::from_fn_with_state(state, guard));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| BridgeError::Config(format!("cannot listen on {addr}: {e}")))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| BridgeError::Internal(format!("bound address unknown: {e}")))?;
    Ok(HttpServer {
        listener,
        router,
        local_addr,
        cancel,
    })
}

#[derive(Clone)]
struct GuardState {
    sessions: Arc<sessions::BoundedSessions>,
    loopback_only: bool,
}

/// In front of the MCP endpoint: refuses a foreign `Host` or `Origin` (403), and an
/// `initialize` (a POST without `Mcp-Session-Id`) over the session caps (503), before rmcp
/// sees the request; records which client opened each session.
async fn guard(
    axum::extract::State(state): axum::extract::State<GuardState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let headers = request.headers();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string())
    };
    // one Host, one Origin, and a request target that names no other authority (RFC 9112
    // §3.2: several Host headers are an error; an absolute-form target names the host too)
    let duplicated = [header::HOST, header::ORIGIN]
        .into_iter()
        .find(|h| headers.get_all(h).iter().count() > 1);
    if let Some(name) = duplicated {
        tracing::warn!("refused an HTTP request with several {name} headers");
        return (
            StatusCode::BAD_REQUEST,
            format!("Bad Request: several {name} headers\n"),
        )
            .into_response();
    }
    let target = request.uri().authority().map(|a| a.to_string());
    let host = text(header::HOST).or_else(|| target.clone());
    if let (Some(target), Some(host)) = (&target, &host) {
        if !target.eq_ignore_ascii_case(host) {
            tracing::warn!("refused an HTTP request whose target names another host than Host");
            return (
                StatusCode::BAD_REQUEST,
                "Bad Request: the request target names another host than the Host header\n",
            )
                .into_response();
        }
    }
    if let Some(why) = origin::refusal(
        host.as_deref(),
        text(header::ORIGIN).as_deref(),
        state.loopback_only,
    ) {
        tracing::warn!(
            "refused an HTTP request: {why} (possible DNS rebinding or cross-origin attack)"
        );
        return (StatusCode::FORBIDDEN, format!("Forbidden: {why}\n")).into_response();
    }
    let opens_session =
        request.method() == axum::http::Method::POST && !headers.contains_key("mcp-session-id");
    if !opens_session {
        return next.run(request).await;
    }
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let admission = match state.sessions.admit(client) {
        Ok(a) => a,
        Err(why) => {
            tracing::warn!(%client, "refused a new MCP session: {why}");
            let body = json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": -32000, "message": why},
            });
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                axum::Json(body),
            )
                .into_response();
        }
    };
    let response = next.run(request).await;
    if let Some(id) = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        state.sessions.attach(id, client);
    }
    drop(admission);
    response
}

/// Binds, prints `listening on http://ADDR/mcp` to stderr, and serves until Ctrl-C or SIGTERM.
pub async fn serve_http(
    bridge: Arc<Bridge>,
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<(), BridgeError> {
    let server = bind_http(bridge, addr, allow_remote).await?;
    eprintln!("listening on {}", server.url());
    server.run().await
}

/// Refuses a non-loopback address unless the operator allowed it.
pub fn check_bind_address(addr: SocketAddr, allow_remote: bool) -> Result<(), BridgeError> {
    if addr.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    Err(BridgeError::Config(format!(
        "refusing to serve MCP over HTTP on {addr}: the endpoint has no authentication, so \
         anyone who can reach that address could query your databases. Listen on a loopback \
         address (127.0.0.1 or [::1]) and reach it through an SSH tunnel or an authenticating \
         reverse proxy, or pass --allow-remote to accept the risk"
    )))
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_addresses_need_consent() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let loopback6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_bind_address(loopback, false).is_ok());
        assert!(check_bind_address(loopback6, false).is_ok());
        let err = check_bind_address(any, false).unwrap_err();
        assert_eq!(err.code(), crate::answer::ErrorCode::ConfigError);
        assert!(err.to_string().contains("no authentication"), "{err}");
        assert!(check_bind_address(any, true).is_ok());
    }
}
