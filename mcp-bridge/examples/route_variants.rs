//! Routing variants compared on fixtures/TEST_QUERIES.md (development aid, read-only).
//! `NLQ_PGSOCK=... NLQ_PGPORT=... cargo run -p mcp-bridge --example route_variants`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use std::collections::{HashMap, HashSet};

use mcp_bridge::eval::cases::parse_markdown;
use mcp_bridge::eval::offline::{load, Estate};
use mcp_bridge::linking::tokenize::terms;
use mcp_bridge::settings::{ProcessEnv, Settings};

#[tokio::main]
async fn main() {
    let settings = Settings::load(
        Some(std::path::Path::new("fixtures/bridge.toml")),
        &ProcessEnv,
    )
    .unwrap();
    let loaded = load(&settings, None).await.unwrap();
    let estate = Estate::new(&loaded, &settings);
    let cases =
        parse_markdown(&std::fs::read_to_string("fixtures/TEST_QUERIES.md").unwrap()).unwrap();
    let n = loaded.len();
    let desc: Vec<HashSet<String>> = loaded
        .iter()
        .map(|l| {
            l.description
                .as_deref()
                .map(terms)
                .unwrap_or_default()
                .into_iter()
                .collect()
        })
        .collect();
    let strength_total: Vec<f64> = estate
        .loaded
        .iter()
        .map(|l| &l.cached.linker)
        .map(|l| l.index().strengths().map(|(_, s)| s).sum())
        .collect();
    let vocab: Vec<f64> = estate
        .loaded
        .iter()
        .map(|l| &l.cached.linker)
        .map(|l| l.index().strengths().count() as f64)
        .collect();
    println!(
        "strength totals {strength_total:?} vocab {vocab:?} totals {:?}",
        estate
            .loaded
            .iter()
            .map(|l| &l.cached.linker)
            .map(|l| l.index().total())
            .collect::<Vec<_>>()
    );
    type F<'a> = dyn Fn(&[String]) -> Vec<f64> + 'a;
    let ql = |mu: f64, dw: f64, binary: bool| -> Box<F<'_>> {
        let estate = &estate;
        let desc = &desc;
        let strength_total = &strength_total;
        Box::new(move |qt: &[String]| {
            let f = |i: usize, t: &str| {
                let d = if desc[i].contains(t) { dw } else { 0.0 };
                (if binary {
                    estate.loaded[i].cached.linker.index().strength(t)
                } else {
                    estate.loaded[i].cached.linker.index().frequency(t)
                }) + d
            };
            let len: Vec<f64> = (0..n)
                .map(|i| {
                    (if binary {
                        strength_total[i]
                    } else {
                        estate.loaded[i].cached.linker.index().total()
                    }) + dw * desc[i].len() as f64
                })
                .collect();
            let coll: f64 = len.iter().sum();
            let mut sc = vec![0.0; n];
            for t in qt {
                let e: Vec<f64> = (0..n).map(|i| f(i, t)).collect();
                let bg = e.iter().sum::<f64>() / coll;
                if bg == 0.0 {
                    continue;
                }
                for i in 0..n {
                    sc[i] += ((e[i] + mu * bg) / (len[i] + mu)).ln();
                }
            }
            sc
        })
    };
    let idf = |dw: f64, k: f64| -> Box<F<'_>> {
        let estate = &estate;
        let desc = &desc;
        Box::new(move |qt: &[String]| {
            let mut sc = vec![0.0; n];
            for t in qt {
                let e: Vec<f64> = (0..n)
                    .map(|i| {
                        estate.loaded[i].cached.linker.index().strength(t)
                            + if desc[i].contains(t) { dw } else { 0.0 }
                    })
                    .collect();
                let df = e.iter().filter(|&&s| s > 0.0).count() as f64;
                if df == 0.0 {
                    continue;
                }
                let w = (1.0 + (n as f64 - df + 0.5) / (df + 0.5)).ln();
                for i in 0..n {
                    sc[i] += w * e[i] * (k + 1.0) / (e[i] + k);
                }
            }
            sc
        })
    };
    let mut variants: Vec<(String, Box<F<'_>>)> = Vec::new();
    for mu in [50.0, 200.0, 1000.0, 5000.0] {
        for dw in [3.0, 10.0, 30.0] {
            variants.push((format!("ql mu={mu} dw={dw}"), ql(mu, dw, false)));
            variants.push((format!("qlbin mu={mu} dw={dw}"), ql(mu, dw, true)));
        }
    }
    for dw in [0.0, 3.0, 10.0] {
        variants.push((format!("idf dw={dw}"), idf(dw, 1.2)));
    }
    let names: Vec<&str> = loaded.iter().map(|l| l.name.as_str()).collect();
    let mut qs: Vec<(&str, Vec<String>, usize)> = Vec::new();
    for c in &cases {
        let gi = names.iter().position(|x| *x == c.database).unwrap();
        for (lang, q) in c.phrasings() {
            let mut seen = HashSet::new();
            qs.push((
                lang,
                terms(q)
                    .into_iter()
                    .filter(|t| seen.insert(t.clone()))
                    .collect(),
                gi,
            ));
        }
    }
    for (name, f) in &variants {
        let mut res: HashMap<&str, (usize, usize, Vec<(f64, bool)>)> = HashMap::new();
        for (lang, qt, gi) in &qs {
            let sc = f(qt);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| sc[b].total_cmp(&sc[a]));
            let e = res.entry(lang).or_default();
            e.0 += 1;
            if order[0] == *gi {
                e.1 += 1;
            }
            e.2.push((sc[order[0]] - sc[order[1]], order[0] == *gi));
        }
        let mut line = format!("{name:28}");
        for lang in ["en", "zh"] {
            let e = &res[lang];
            let best = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
                .iter()
                .map(|&m| {
                    (
                        m,
                        e.2.iter().filter(|(g, ok)| *g >= m && *ok).count(),
                        e.2.iter().filter(|(g, ok)| *g >= m && !*ok).count(),
                    )
                })
                .map(|(m, r, w)| format!("m{m}:{r}/{w}"))
                .collect::<Vec<_>>()
                .join(" ");
            line.push_str(&format!(" | {lang} top1 {}/{} {best}", e.1, e.0));
        }
        println!("{line}");
    }
}
