//! The context stage at 1,000 tables: what linking a question costs on the generated estate of
//! `bench/gen_schema.sql` (database `nlq_bench`, built by `bench/snapshot.sh`), against the
//! same questions on the fixture database `nlq_small` (a dozen tables) measured in the same
//! run. Per question: `Linker::link` (ranking, join paths, rendering under the budget, token
//! counts), the weak-evidence check with the model-selection catalogue, and routing among both
//! databases. `Linker::new` (once per snapshot) is timed apart. Target (issue 13): the context
//! stage adds no more than a few milliseconds per question at 1,000 tables.
//!
//! `cargo run --release -p mcp-bridge --example context_bench` with NLQ_PGSOCK and NLQ_PGPORT
//! set (as `make bench` does); `BENCH_ROUNDS=N` sets the rounds over the questions.

use std::sync::Arc;
use std::time::Instant;

use mcp_bridge::eval::offline::{load, Estate, Loaded};
use mcp_bridge::linking::Linker;
use mcp_bridge::settings::{ContextSettings, ProcessEnv, Settings};

/// Questions of every kind the linker meets: names that match, values from the statistics, a
/// question matching nothing, a Chinese one, a long one.
const QUESTIONS: [&str; 8] = [
    "What is the total amount per city in t512?",
    "How many rows of t17 are active, by label?",
    "Which codes were created in Berlin last month?",
    "Sum of qty for Paris and Madrid in t900 joined to t899",
    "How are you today?",
    "每个城市的金额合计是多少？",
    "For each business code, show the number of active records, the average amount and the \
     latest creation time, for the cities Rome and Berlin only, ordered by the average amount \
     descending, and compare that with the previous table in the chain",
    "Which notes mention a parent?",
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

struct Figures {
    median: f64,
    p95: f64,
    max: f64,
}

fn figures(mut ms: Vec<f64>) -> Figures {
    ms.sort_by(|a, b| a.total_cmp(b));
    Figures {
        median: percentile(&ms, 50.0),
        p95: percentile(&ms, 95.0),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1000.0)
}

/// Per-question milliseconds of link, weakness + catalogue, and route, over `rounds` rounds.
fn measure(
    loaded: &Loaded,
    estate: &Estate<'_>,
    settings: &ContextSettings,
    rounds: usize,
) -> (Figures, Figures, Figures, usize) {
    let linker = &loaded.cached.linker;
    let (mut link, mut weak, mut routing) = (Vec::new(), Vec::new(), Vec::new());
    let mut relations = 0;
    for _ in 0..rounds {
        for q in QUESTIONS {
            let (context, ms) = time(|| linker.link(q, settings));
            relations = relations.max(context.relations.len());
            link.push(ms);
            let (_, ms) = time(|| {
                let w = linker.weakness(q, settings);
                w.map(|_| linker.catalogue(settings.max_tokens).tokens)
            });
            weak.push(ms);
            let (_, ms) = time(|| estate.route(q));
            routing.push(ms);
        }
    }
    (figures(link), figures(weak), figures(routing), relations)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let config = std::env::temp_dir().join(format!("context_bench_{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[[servers]]\nname = \"bench\"\n\
         url = \"host=${NLQ_PGSOCK} port=${NLQ_PGPORT} user=postgres dbname=postgres\"\n\
         databases = [\"nlq_bench\", \"nlq_small\"]\n",
    )?;
    let settings = Settings::load(Some(&config), &ProcessEnv);
    let _ = std::fs::remove_file(&config);
    let settings = settings?;
    let all = load(&settings, None).await?;
    let find = |name: &str| {
        all.iter()
            .find(|l| l.name == name)
            .ok_or_else(|| format!("database {name} is not loaded (run bench/snapshot.sh)"))
    };
    let (bench, small) = (find("nlq_bench")?, find("nlq_small")?);
    let estate = Estate::new(&all, &settings);
    let counter = estate.counter;
    let build = |l: &Loaded| {
        let snapshot = Arc::clone(&l.cached.snapshot);
        time(|| Linker::new(snapshot, counter)).1
    };
    let (new_bench, new_small) = (build(bench), build(small));

    println!(
        "context stage, {} questions x {rounds} rounds (release build; the baseline is the same \
         questions on nlq_small, linked without the whole-schema shortcut, same run)",
        QUESTIONS.len()
    );
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>10}",
        "", "median ms", "p95 ms", "max ms", "vs base"
    );
    let (bl, bw, br, bench_relations) = measure(bench, &estate, &settings.context, rounds);
    let linked_always = ContextSettings {
        whole_schema_when_it_fits: false,
        ..settings.context.clone()
    };
    let (sl, sw, sr, _) = measure(small, &estate, &linked_always, rounds);
    for (what, b, s) in [
        ("link", &bl, &sl),
        ("weakness + catalogue", &bw, &sw),
        ("route (2 databases)", &br, &sr),
    ] {
        println!(
            "{:<36} {:>10.3} {:>10.3} {:>10.3} {:>9.1}x",
            format!("{what}, 1,000 tables"),
            b.median,
            b.p95,
            b.max,
            b.median / s.median.max(1e-6)
        );
        println!(
            "{:<36} {:>10.3} {:>10.3} {:>10.3}",
            format!("{what}, nlq_small"),
            s.median,
            s.p95,
            s.max
        );
    }
    let per_question = bl.median + bw.median + br.median;
    println!(
        "Linker::new once per snapshot: {new_bench:.1} ms at 1,000 tables ({} relations), \
         {new_small:.1} ms on nlq_small",
        bench.cached.snapshot.relations.len()
    );
    println!(
        "per question at 1,000 tables (median link + weakness/catalogue + route): \
         {per_question:.3} ms; target: a few milliseconds (issue 13) — {}; at most {} \
         relations in one context",
        if per_question <= 5.0 {
            "met"
        } else {
            "not met"
        },
        bench_relations
    );
    Ok(())
}
