//! A server or network that stops answering does not hang the bridge: every statement it sends
//! is bounded by `database.query_timeout_secs`. The test cluster is reached through a TCP proxy
//! that the test "partitions" (it stops forwarding, connections stay open) once the schema is
//! loaded. Run through `make test-bridge`, which sets NLQ_TEST_BRIDGE_DSN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{bridge_dsn, settings_from, start};
use mcp_bridge::answer::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `key=value` of a simple libpq connection string.
fn dsn_value(dsn: &str, key: &str) -> Option<String> {
    dsn.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

/// Copies `from` to `to` until `frozen`; then reads and drops what arrives.
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy on 127.0.0.1 to the cluster's Unix-domain socket; returns its port.
async fn proxy(socket: String, frozen: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(unix) = tokio::net::UnixStream::connect(&socket).await else {
                continue;
            };
            let (tr, tw) = tcp.into_split();
            let (ur, uw) = unix.into_split();
            tokio::spawn(pump(tr, uw, frozen.clone()));
            tokio::spawn(pump(ur, tw, frozen.clone()));
        }
    });
    port
}

#[tokio::test]
async fn a_server_that_stops_answering_is_a_connection_error_not_a_hang() {
    let dsn = bridge_dsn();
    let host = dsn_value(&dsn, "host").expect("the test DSN names the socket directory");
    let port = dsn_value(&dsn, "port").unwrap_or_else(|| "5432".into());
    let user = dsn_value(&dsn, "user").unwrap_or_else(|| "nlq_bridge".into());
    let frozen = Arc::new(AtomicBool::new(false));
    let proxy_port = proxy(format!("{host}/.s.PGSQL.{port}"), frozen.clone()).await;

    let text = format!(
        "[database]\nquery_timeout_secs = 2\nconnect_timeout_secs = 2\n\
         fingerprint_check_interval_secs = 3600\nstartup_timeout_secs = 60\npool_size = 2\n\
         [[servers]]\nname = \"proxied\"\n\
         url = \"host=127.0.0.1 port={proxy_port} user={user} sslmode=disable dbname=postgres\"\n\
         databases = [\"nlq_small\"]\n"
    );
    let bridge = start(settings_from(&text)).await;
    let ready = bridge.list_databases().await;
    assert_eq!(ready[0].status.as_str(), "ready", "{ready:?}");
    // Before the partition the path works.
    let ok = bridge.validate_sql(Some("nlq_small"), "SELECT 1").await;
    assert!(ok.is_ok(), "{ok:?}");

    frozen.store(true, Ordering::SeqCst);
    // A bound on the test itself, far above the bridge's own: a hang fails instead of blocking.
    let limit = Duration::from_secs(60);
    let validated = tokio::time::timeout(limit, bridge.validate_sql(Some("nlq_small"), "SELECT 1"))
        .await
        .expect("validate_sql hung on a partitioned server");
    let err = validated.expect_err("no answer cannot be a validation");
    assert_eq!(err.code, ErrorCode::ConnectionError, "{err:?}");
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("no answer"), "{}", err.message);

    let ran = tokio::time::timeout(limit, bridge.run_sql(Some("nlq_small"), "SELECT 1", None))
        .await
        .expect("run_sql hung on a partitioned server");
    let err = ran.expect_err("no answer cannot be a result");
    assert!(matches!(err.code, ErrorCode::ConnectionError), "{err:?}");

    let refreshed = tokio::time::timeout(limit, bridge.refresh_schema(Some("nlq_small")))
        .await
        .expect("refresh_schema hung on a partitioned server");
    assert!(refreshed.is_err(), "{refreshed:?}");
}

#[tokio::test]
async fn a_server_being_retried_stays_listed() {
    // A server that accepts connections and never answers: each discovery takes the whole
    // connect timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let text = format!(
        "[database]\nconnect_timeout_secs = 0.5\nretry_interval_secs = 0.1\n\
         startup_timeout_secs = 5\n\
         [[servers]]\nname = \"silent\"\n\
         url = \"host=127.0.0.1 port={port} user=nobody sslmode=disable dbname=postgres\"\n"
    );
    let bridge = start(settings_from(&text)).await;
    // The background retry runs every 0.1 s and takes 0.5 s: look while it runs.
    for _ in 0..30 {
        let listed = bridge.list_databases().await;
        assert!(
            listed
                .iter()
                .any(|d| d.server == "silent" && d.status.as_str() == "server_unavailable"),
            "{listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
