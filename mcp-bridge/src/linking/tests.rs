//! Unit tests of the linker on the sample snapshot (testdata/) and on built-up snapshots.

use super::*;
use crate::catalog::Snapshot;

const SAMPLE: &str = include_str!("../../testdata/snapshot_v1.json");

fn sample() -> Snapshot {
    match Snapshot::from_json(SAMPLE) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn counter() -> TokenCounter {
    TokenCounter::for_model("gpt-5-mini")
}

/// A budget too small for the whole sample, so linking must choose.
fn tight() -> ContextSettings {
    ContextSettings {
        max_tokens: 300,
        ..ContextSettings::default()
    }
}

#[test]
fn whole_schema_when_it_fits() {
    let snapshot = sample();
    let linker = Linker::new(&snapshot, counter());
    let context = linker.link("how many customers", &ContextSettings::default());
    assert!(context.whole);
    assert_eq!(context.text, crate::context::render_schema(&snapshot));
    assert_eq!(context.tokens, linker.whole_schema_tokens());
    // partitions are not relations of their own
    assert!(!context.relations.iter().any(|r| r.contains("orders_20")));
}

#[test]
fn value_names_the_column_that_holds_it() {
    let snapshot = sample();
    let linker = Linker::new(&snapshot, counter());
    let context = linker.link("orders shipped to Berlin", &tight());
    assert!(!context.whole, "{}", context.text);
    assert!(
        context.relations.contains(&"shop.customers".to_string()),
        "{context:#?}"
    );
    assert!(
        context.relations.contains(&"shop.orders".to_string()),
        "{context:#?}"
    );
    assert!(
        context.text.contains("shop.customers.city = 'Berlin'"),
        "{}",
        context.text
    );
    assert!(context.tokens <= 300, "{}", context.tokens);
}
