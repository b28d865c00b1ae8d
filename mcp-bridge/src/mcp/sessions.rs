//! Bounded MCP sessions over HTTP: at most `http.max_sessions` at once, at most
//! `http.max_sessions_per_client` from one client address, each closed after
//! `http.session_idle_secs` without a request. An `initialize` over a cap is refused with HTTP
//! 503 and a JSON-RPC error saying which cap, before any session is created.
//!
//! [`BoundedSessions`] wraps rmcp's [`LocalSessionManager`] (whose sessions keep at most a
//! bounded channel of messages each) and keeps a table of the open sessions and their
//! clients; rmcp closes a session through it when its client deletes it, when it idles out
//! or when its worker ends, so the table never outgrows the caps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::SessionManager;

use crate::settings::HttpSettings;

#[derive(Default)]
struct Table {
    /// Open sessions and the client that opened each (`None` until its `initialize` answer
    /// went out).
    open: HashMap<SessionId, Option<IpAddr>>,
    /// `initialize` requests admitted and not answered yet, per client.
    admitting: HashMap<IpAddr, usize>,
}

/// The session manager of the HTTP transport.
pub struct BoundedSessions {
    inner: LocalSessionManager,
    limits: HttpSettings,
    table: Mutex<Table>,
}

/// A place held for one `initialize` until its answer is out ([`BoundedSessions::admit`]).
pub struct Admission {
    sessions: Arc<BoundedSessions>,
    client: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut table = self.sessions.lock();
        if let Some(n) = table.admitting.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.admitting.remove(&self.client);
            }
        }
    }
}

impl BoundedSessions {
    pub fn new(limits: HttpSettings) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(limits.session_idle);
        BoundedSessions {
            inner,
            limits,
            table: Mutex::new(Table::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.lock().open.len()
    }

    /// Holds a place for a new session from `client`, or says which cap it would exceed.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Admission, String> {
        let mut table = self.lock();
        let admitting: usize = table.admitting.values().sum();
        if table.open.len() + admitting >= self.limits.max_sessions {
            return Err(format!(
                "the bridge already serves {} MCP sessions over HTTP, its limit \
                 (http.max_sessions): close a session (HTTP DELETE) or retry later; idle \
                 sessions close after {:?}",
                self.limits.max_sessions, self.limits.session_idle
            ));
        }
        let mine = table.open.values().filter(|c| **c == Some(client)).count()
            + table.admitting.get(&client).copied().unwrap_or(0);
        if mine >= self.limits.max_sessions_per_client {
            return Err(format!(
                "this client already has {} MCP sessions open, the limit per client \
                 (http.max_sessions_per_client): close one (HTTP DELETE) or reuse it; idle \
                 sessions close after {:?}",
                self.limits.max_sessions_per_client, self.limits.session_idle
            ));
        }
        *table.admitting.entry(client).or_default() += 1;
        Ok(Admission {
            sessions: self.clone(),
            client,
        })
    }

    /// Records which client opened the session `id` (from the `initialize` answer).
    pub fn attach(&self, id: &str, client: IpAddr) {
        let mut table = self.lock();
        if let Some(owner) = table.open.get_mut(id) {
            *owner = Some(client);
        }
    }
}

impl SessionManager for BoundedSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let (id, transport) = self.inner.create_session().await?;
        self.lock().open.insert(id.clone(), None);
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.lock().open.remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_places_and_release_them() {
        let sessions = Arc::new(BoundedSessions::new(HttpSettings {
            max_sessions: 3,
            max_sessions_per_client: 2,
            session_idle: std::time::Duration::from_secs(60),
        }));
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = sessions.admit(a).unwrap();
        let _second = sessions.admit(a).unwrap();
        let err = sessions.admit(a).err().unwrap();
        assert!(err.contains("http.max_sessions_per_client"), "{err}");
        let _third = sessions.admit(b).unwrap();
        let err = sessions.admit(b).err().unwrap();
        assert!(err.contains("http.max_sessions)"), "{err}");
        drop(first);
        assert!(sessions.admit(b).is_ok());
    }
}
