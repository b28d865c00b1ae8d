//! The streamable HTTP transport under attack (issue 10): 20,000 `initialize` calls leave the
//! memory flat (sessions are capped, per client too, and a freed place is reusable), and
//! `Origin` / `Host` values of hostile forms are refused. The server runs in process on
//! 127.0.0.1:0; requests are raw HTTP. Run through `make test-bridge`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config_toml_with, settings_from, start};
use futures::StreamExt;
use serde_json::json;

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Server {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn serve(http: &str) -> Server {
    let settings = settings_from(&config_toml_with(None, &["nlq_small"], http));
    let bridge = start(settings).await;
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = mcp_bridge::mcp::bind_http(bridge, addr, false)
        .await
        .unwrap();
    let url = server.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Server {
        url,
        stop: Some(stop),
    }
}

/// One `initialize`: the status, the session id, the body.
async fn initialize(http: &reqwest::Client, url: &str) -> (u16, Option<String>, String) {
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "flood", "version": "0"}}
    });
    let response = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // the answer to initialize is one event; do not wait on a stream left open
    let text = tokio::time::timeout(Duration::from_secs(2), response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    (status, session, text)
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_initialize_calls_leave_memory_flat() {
    const CAP: usize = 40;
    const CALLS: usize = 20_000;
    const WARM_UP: usize = 1_000;
    let server = serve(&format!(
        "[http]\nmax_sessions = {CAP}\nmax_sessions_per_client = {CAP}\nsession_idle_secs = 300\n"
    ))
    .await;
    let http = client_from("127.0.0.1");
    let started = std::time::Instant::now();
    let mut opened = Vec::new();
    let mut refused = 0usize;
    let mut refusal = String::new();
    let mut rss_after_warm_up = 0;
    let rss_before = rss_kib();
    let mut results = futures::stream::iter(0..CALLS)
        .map(|_| initialize(&http, &server.url))
        .buffered(16)
        .enumerate();
    let all = tokio::time::timeout(Duration::from_secs(600), async {
        while let Some((i, (status, session, body))) = results.next().await {
            match status {
                200 => opened.push(session.expect("a session id")),
                503 => {
                    refused += 1;
                    if refusal.is_empty() {
                        refusal = body;
                    }
                }
                other => panic!("initialize {i}: HTTP {other}: {body}"),
            }
            if i + 1 == WARM_UP {
                rss_after_warm_up = rss_kib();
            }
        }
    })
    .await;
    assert!(all.is_ok(), "20,000 initialize calls within 600 s");
    let rss_after = rss_kib();
    eprintln!(
        "{CALLS} initialize calls in {:.1} s: {} sessions opened, {refused} refused; RSS \
         {rss_before} KiB before, {rss_after_warm_up} KiB after {WARM_UP}, {rss_after} KiB \
         after {CALLS} (+{} KiB over the last {})",
        started.elapsed().as_secs_f64(),
        opened.len(),
        rss_after.saturating_sub(rss_after_warm_up),
        CALLS - WARM_UP
    );
    assert_eq!(opened.len(), CAP);
    assert_eq!(refused, CALLS - CAP);
    assert!(refusal.contains("http.max_sessions"), "{refusal}");
    // Flat: 19,000 more calls add less than 32 MiB (allocator noise; unbounded sessions grew
    // by about 1 GiB over 20,000).
    assert!(
        rss_after.saturating_sub(rss_after_warm_up) < 32 * 1024,
        "RSS grew from {rss_after_warm_up} KiB to {rss_after} KiB"
    );

    // a session closed by its client frees its place
    let closed = http
        .delete(&server.url)
        .header("mcp-session-id", &opened[0])
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "DELETE: {}", closed.status());
    let (status, _, body) = initialize(&http, &server.url).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_session() {
    let server = serve("[http]\nmax_sessions = 10\nmax_sessions_per_client = 3\n").await;
    let greedy = client_from("127.0.0.1");
    for _ in 0..3 {
        let (status, session, body) = initialize(&greedy, &server.url).await;
        assert_eq!(status, 200, "{body}");
        assert!(session.is_some());
    }
    let (status, _, body) = initialize(&greedy, &server.url).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("http.max_sessions_per_client"), "{body}");
    // another client still gets in
    let other = client_from("127.0.0.2");
    let (status, _, body) = initialize(&other, &server.url).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_origins_and_hosts_are_refused() {
    let server = serve("").await;
    let http = client_from("127.0.0.1");
    let port = server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let post = |origin: Option<String>, host: Option<String>| {
        let mut request = http
            .post(&server.url)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "origin", "version": "0"}}
            }));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for origin in [
        "http://127.0.0.1:80.evil.com",
        "http://127.0.0.1.evil.com",
        "http://localhost.evil.com",
        "http://localhost@evil.com",
        "http://evil.com#@localhost",
        "http://localhost:99999",
        "http://[::1]evil.com",
        "http://127.1",
        "null",
        "file://localhost",
        "http://evil.com",
    ] {
        assert_eq!(
            post(Some(origin.into()), None).await,
            403,
            "Origin {origin}"
        );
    }
    for host in [
        format!("127.0.0.1:{port}.evil.com"),
        format!("127.0.0.1.evil.com:{port}"),
        "evil.com".to_string(),
        format!("user@localhost:{port}"),
        "localhost:abc".to_string(),
    ] {
        assert_eq!(post(None, Some(host.clone())).await, 403, "Host {host}");
    }
    for origin in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        "http://[::1]:1234".to_string(),
    ] {
        assert_eq!(
            post(Some(origin.clone()), None).await,
            200,
            "Origin {origin}"
        );
    }
    assert_eq!(post(None, Some(format!("localhost:{port}"))).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_and_free_their_place() {
    let server = serve("[http]\nmax_sessions = 2\nsession_idle_secs = 1\n").await;
    let http = client_from("127.0.0.1");
    for _ in 0..2 {
        let (status, _, body) = initialize(&http, &server.url).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _, body) = initialize(&http, &server.url).await;
    assert_eq!(status, 503, "{body}");
    // both sessions idle out after 1 s; bounded wait for their places
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        status = initialize(&http, &server.url).await.0;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "an idle session's place was never freed");
}
