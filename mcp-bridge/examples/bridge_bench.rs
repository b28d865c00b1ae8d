//! Bridge overhead per question: the whole `query` pipeline against the fixture database
//! nlq_small, with a scripted model that answers instantly, at 1 and more concurrent clients;
//! median and p99 per stage. The baseline, measured in the same run on the same queries, is the
//! floor any bridge pays: `nlq_validate` then `nlq_run` over a plain connection, without the
//! model round trips, the pipeline or the pool.
//!
//! `cargo run --release -p mcp-bridge --example bridge_bench` with NLQ_TEST_DSN set (as
//! `make bench` does); `BENCH_QUESTIONS=N` sets the questions per client count.

#[path = "../tests/support/scripted_openai.rs"]
mod scripted_openai;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use mcp_bridge::answer::{QueryRequest, Stage};
use mcp_bridge::bridge::Bridge;
use mcp_bridge::settings::Settings;
use scripted_openai::{generate, verdict, Reply, ScriptedOpenAi};

/// Questions and the SQL the scripted model answers them with: small, typical result sets.
const CASES: [(&str, &str); 5] = [
    (
        "How many orders are there?",
        "SELECT count(*) AS orders FROM public.orders",
    ),
    (
        "Which ten cities have the most customers?",
        "SELECT city, count(*) AS customers FROM public.customers WHERE city IS NOT NULL \
         GROUP BY city ORDER BY 2 DESC, 1 LIMIT 10",
    ),
    (
        "What are the five best rated books?",
        "SELECT b.title, avg(r.rating) AS rating FROM public.books b \
         JOIN public.reviews r ON r.book_id = b.id GROUP BY b.id, b.title \
         ORDER BY 2 DESC, 1 LIMIT 5",
    ),
    (
        "Orders per status",
        "SELECT status, count(*) FROM public.orders GROUP BY 1 ORDER BY 1",
    ),
    (
        "The 20 most recent orders",
        "SELECT id, customer_id, ordered_at FROM public.orders ORDER BY ordered_at DESC LIMIT 20",
    ),
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

struct Sample {
    total: f64,
    stages: BTreeMap<&'static str, f64>,
}

/// The figures of design §8 (issue 5, before the restructure of issue 11): clients, bridge
/// median ms, baseline median ms. Printed beside this run's: the ratio to the baseline of the
/// same run is what compares across machines and loads.
const DESIGN: [(usize, f64, f64); 6] = [
    (1, 1.91, 0.91),
    (2, 2.95, 1.01),
    (4, 4.53, 1.91),
    (8, 7.98, 4.79),
    (16, 17.0, 4.96),
    (32, 34.4, 4.97),
];

async fn run_bridge(bridge: &Arc<Bridge>, clients: usize, per_client: usize) -> (Vec<Sample>, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let bridge = bridge.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let (question, _) = CASES[(c + i) % CASES.len()];
                    let t = Instant::now();
                    let answer = bridge
                        .query(
                            QueryRequest {
                                question: question.into(),
                                database: Some("nlq_small".into()),
                                ..QueryRequest::default()
                            },
                            None,
                        )
                        .await;
                    let total = t.elapsed().as_secs_f64() * 1000.0;
                    match answer {
                        Ok(a) => {
                            let stages =
                                a.timings.iter().map(|t| (t.stage.as_str(), t.ms)).collect();
                            samples.push(Sample { total, stages });
                        }
                        Err(e) => panic!("bench question failed: {e}"),
                    }
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.extend(s),
            Err(e) => panic!("bench client failed: {e}"),
        }
    }
    (all, started.elapsed().as_secs_f64())
}

async fn run_baseline(dsn: &str, clients: usize, per_client: usize) -> (Vec<f64>, f64) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let dsn = dsn.to_string();
            tokio::spawn(async move {
                let (client, conn) =
                    match tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await {
                        Ok(x) => x,
                        Err(e) => panic!("baseline connect: {e}"),
                    };
                tokio::spawn(conn);
                let mut samples = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let (_, sql) = CASES[(c + i) % CASES.len()];
                    let t = Instant::now();
                    let v = client
                        .query_one("SELECT nlq_validate($1)::text", &[&sql])
                        .await;
                    let r = client
                        .query_one("SELECT nlq_run($1, 100)::text", &[&sql])
                        .await;
                    if let Err(e) = v.and(r) {
                        panic!("baseline query failed: {e}");
                    }
                    samples.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(s) => all.extend(s),
            Err(e) => panic!("baseline client failed: {e}"),
        }
    }
    (all, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let dsn = match std::env::var("NLQ_TEST_DSN") {
        Ok(d) if !d.trim().is_empty() => d,
        _ => panic!(
            "set NLQ_TEST_DSN (a libpq connection string without dbname), as `make bench` does"
        ),
    };
    let per_count: usize = std::env::var("BENCH_QUESTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320);
    let pool_size = 8;
    let model = ScriptedOpenAi::with_responder(|req| {
        if req.schema_name == "result_verdict" {
            return verdict(9, "answers the question");
        }
        for (question, sql) in CASES {
            if req.messages_text.contains(question) {
                return generate(sql);
            }
        }
        Reply::Status(
            400,
            serde_json::json!({"error": {"message": "unknown question"}}),
        )
    })
    .await;
    let config = format!(
        "[model]\napi_key = \"sk-bench\"\nbase_url = \"{}\"\n[database]\npool_size = {pool_size}\n\
         [[servers]]\nurl = \"{dsn} dbname=postgres\"\ndatabases = [\"nlq_small\"]\n",
        model.base_url()
    );
    let settings = match Settings::from_toml(&config, "bench", &BTreeMap::<String, String>::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let bridge = match Bridge::start(settings).await {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let db_dsn = format!("{dsn} dbname=nlq_small");
    // Warm-up: connections, plans, caches.
    run_bridge(&bridge, pool_size, 10).await;
    run_baseline(&db_dsn, 1, 20).await;

    println!("bridge overhead per question (scripted model answering instantly), nlq_small, pool size {pool_size}");
    println!("{per_count} questions per client count; baseline = nlq_validate + nlq_run on one plain connection per client\n");
    println!(
        "{:>7} | {:>9} {:>9} | {:>9} {:>9} | {:>6} | {:>9} {:>9} | {:>10} {:>12}",
        "clients",
        "median ms",
        "p99 ms",
        "base med",
        "base p99",
        "ratio",
        "q/s",
        "base q/s",
        "design med",
        "design ratio"
    );
    let mut stage_report = Vec::new();
    for clients in [1usize, 2, 4, 8, 16, 32] {
        let per_client = (per_count / clients).max(1);
        let (samples, secs) = run_bridge(&bridge, clients, per_client).await;
        let (base, base_secs) = run_baseline(
            &db_dsn,
            clients.min(pool_size),
            (per_count / clients.min(pool_size)).max(1),
        )
        .await;
        let totals = sorted(samples.iter().map(|s| s.total).collect());
        let base_sorted = sorted(base.clone());
        let med = percentile(&totals, 50.0);
        let base_med = percentile(&base_sorted, 50.0);
        let (design_med, design_base) = DESIGN
            .iter()
            .find(|(c, _, _)| *c == clients)
            .map(|(_, m, b)| (*m, *b))
            .unwrap_or((f64::NAN, f64::NAN));
        println!(
            "{:>7} | {:>9.3} {:>9.3} | {:>9.3} {:>9.3} | {:>6.2} | {:>9.0} {:>9.0} | {:>10.2} {:>12.2}",
            clients,
            med,
            percentile(&totals, 99.0),
            base_med,
            percentile(&base_sorted, 99.0),
            med / base_med,
            samples.len() as f64 / secs,
            base.len() as f64 / base_secs,
            design_med,
            design_med / design_base,
        );
        if clients == 1 || clients == 32 {
            stage_report.push((clients, samples));
        }
    }
    for (clients, samples) in stage_report {
        println!("\nper stage at {clients} client(s): median / p99 ms");
        for stage in Stage::ALL {
            let v = sorted(
                samples
                    .iter()
                    .filter_map(|s| s.stages.get(stage.as_str()).copied())
                    .collect(),
            );
            if !v.is_empty() {
                println!(
                    "  {:<9} {:>8.3} / {:>8.3}",
                    stage.as_str(),
                    percentile(&v, 50.0),
                    percentile(&v, 99.0)
                );
            }
        }
    }
    let requests = model.requests().len();
    println!("\nscripted model requests: {requests}");
}
