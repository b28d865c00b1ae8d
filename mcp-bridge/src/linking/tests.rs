//! Unit tests of the linker on the sample snapshot (testdata/) and on built-up snapshots.

use super::*;

use crate::snapshot::tests::sample;

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
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    let context = linker.link("how many customers", &ContextSettings::default());
    assert!(context.whole);
    assert_eq!(
        context.text,
        crate::render::schema::render_schema(&snapshot)
    );
    assert_eq!(context.tokens, linker.whole_schema_tokens());
    // partitions are not relations of their own
    assert!(!context.relations.iter().any(|r| r.contains("orders_20")));
}

#[test]
fn value_names_the_column_that_holds_it() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
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

#[test]
fn widen_adds_the_relation_the_error_names_and_grows_the_budget() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    let settings = ContextSettings {
        max_tokens: 200,
        ..ContextSettings::default()
    };
    let first = linker.link("orders shipped to Berlin", &settings);
    assert!(
        !first.relations.contains(&"shop.products".to_string()),
        "{first:#?}"
    );
    let wider = linker.widen(
        "orders shipped to Berlin",
        &first,
        "relation \"shop.products\" does not exist",
        1,
        &settings,
    );
    assert_eq!(wider.budget, 400);
    assert_eq!(
        wider.relations.first().map(String::as_str),
        Some("shop.products")
    );
    assert_eq!(wider.reasons.first(), Some(&Reason::Asked));
    assert!(
        wider.tokens <= 400 && wider.tokens > first.tokens,
        "{wider:#?}"
    );
}

#[test]
fn cut_relations_are_named_in_the_text() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    let settings = ContextSettings {
        max_tokens: 200,
        ..ContextSettings::default()
    };
    let context = linker.link("orders shipped to Berlin", &settings);
    assert!(!context.cut.is_empty(), "{context:#?}");
    assert!(
        context.text.contains("cut to fit the context budget"),
        "{}",
        context.text
    );
    for name in &context.cut {
        let bare = name.split_once('.').map_or(name.as_str(), |(_, n)| n);
        assert!(
            context.text.contains(bare),
            "{name} not named: {}",
            context.text
        );
    }
    assert!(context.tokens <= 200);
}

#[test]
fn routing_picks_the_database_that_knows_the_words() {
    let shop = sample();
    let mut empty = sample();
    empty.database = "hr".into();
    empty.relations.retain(|r| r.schema == "ops");
    let shop_linker = Linker::new(std::sync::Arc::new(shop.clone()), counter());
    let hr_linker = Linker::new(std::sync::Arc::new(empty.clone()), counter());
    let targets = [
        route::Target {
            name: "shop",
            description: Some("web shop"),
            linker: &shop_linker,
        },
        route::Target {
            name: "hr",
            description: Some("人事 employees and audit log"),
            linker: &hr_linker,
        },
    ];
    let r = route::route("customers in Berlin and their orders", &targets);
    assert_eq!(r.chosen.as_deref(), Some("shop"), "{r:?}");
    let r = route::route("人事", &targets);
    assert_eq!(r.chosen.as_deref(), Some("hr"), "{r:?}");
    // no word any database knows: no choice, every candidate listed
    let r = route::route("zzz qqq", &targets);
    assert_eq!(r.chosen, None);
    assert_eq!(r.candidates.len(), 2);
}

#[test]
fn a_measure_question_brings_the_fact_table() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    // "top customers" names only the dimension; the measure is taken over orders
    let context = linker.link("who are the top customers", &tight());
    assert!(!context.whole);
    let at = context.relations.iter().position(|r| r == "shop.orders");
    assert!(at.is_some(), "{context:#?}");
    assert!(context.relations.contains(&"shop.customers".to_string()));
    // not for a question that asks for no measure
    let context = linker.link("the customers' e-mail addresses", &tight());
    assert!(
        !context.relations.iter().take(2).any(|r| r == "shop.orders"),
        "{context:#?}"
    );
}

#[test]
fn weak_evidence_is_no_match_another_script_or_a_low_score() {
    use select::Weakness;
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    // the whole sample fits the default budget: nothing to choose, never weak
    assert_eq!(
        linker.weakness("每个客户的订单", &ContextSettings::default()),
        None
    );
    let tight = tight();
    assert_eq!(
        linker.weakness("每个客户的订单", &tight),
        Some(Weakness::OtherScript)
    );
    assert_eq!(
        linker.weakness("zzz qqq xyzzy", &tight),
        Some(Weakness::NoMatch)
    );
    // a relation named by the question: strong
    assert_eq!(linker.weakness("orders per customer", &tight), None);
    // only a word most relations share matched
    let weak = linker.strength("the id").unwrap_or(0.0);
    assert!(weak > 0.0 && weak < select::WEAK_STRENGTH, "{weak}");
    assert_eq!(linker.weakness("the id", &tight), Some(Weakness::LowScore));
    // a word one relation's name alone holds is strong
    assert!(linker.strength("msg").unwrap_or(0.0) > 1.0);
    // a schema whose comments are in Chinese: a Chinese question can meet them
    let mut zh = sample();
    for r in &mut zh.relations {
        r.comment = Some(format!("{}的数据表，记录客户、订单和商品的信息", r.name));
    }
    let zh_linker = Linker::new(std::sync::Arc::new(zh), counter());
    assert_ne!(
        zh_linker.evidence("每个客户的订单"),
        Some(Weakness::OtherScript)
    );
}

#[test]
fn the_catalogue_lists_schemas_and_tables_and_folds_to_fit() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    let full = linker.catalogue(10_000);
    assert!(full.folded.is_empty(), "{full:?}");
    assert!(
        full.text
            .contains("schema shop — The web shop (6 relations)\n"),
        "{}",
        full.text
    );
    assert!(
        full.text
            .contains("  shop.customers — People who bought something\n"),
        "{}",
        full.text
    );
    // partitions are not listed
    assert!(!full.text.contains("orders_20"), "{}", full.text);
    assert_eq!(full.listed, linker.names.len());
    assert_eq!(full.tokens, linker.counter.count(&full.text));
    // a smaller budget folds the largest schema into one line of names first
    let folded = linker.catalogue(full.tokens - 5);
    assert_eq!(folded.folded, vec!["shop"], "{}", folded.text);
    assert!(
        folded.text.contains("  shop.city_counts, shop.customers, "),
        "{}",
        folded.text
    );
    assert!(
        !folded.text.contains("People who bought"),
        "{}",
        folded.text
    );
    assert!(folded
        .text
        .contains("schema ops (2 relations)\n  ops.archived_orders\n"));
    // far too small: names are counted, not listed
    let tiny = linker.catalogue(20);
    assert!(tiny.listed < linker.names.len(), "{}", tiny.text);
    assert!(tiny.text.contains("not listed"), "{}", tiny.text);
}

#[test]
fn the_models_choice_is_checked_and_merged_first() {
    let snapshot = sample();
    let linker = Linker::new(std::sync::Arc::new(snapshot.clone()), counter());
    let (known, ignored) = linker.known_names(&[
        "SHOP.Products".to_string(),
        "order_lines".to_string(),
        "shop.nope".to_string(),
        "pg_catalog.pg_authid".to_string(),
        "shop.products".to_string(),
    ]);
    assert_eq!(known, vec!["shop.products", "shop.order_lines"]);
    assert_eq!(ignored, vec!["shop.nope", "pg_catalog.pg_authid"]);
    let settings = ContextSettings {
        max_tokens: 400,
        ..ContextSettings::default()
    };
    let lexical = linker.link("每个客户的订单", &settings);
    assert!(
        lexical.reasons.iter().all(|r| *r == Reason::Central),
        "{lexical:#?}"
    );
    let context = linker.link_selected("每个客户的订单", &settings, &known);
    assert_eq!(
        &context.relations[..2],
        &["shop.products".to_string(), "shop.order_lines".to_string()],
        "{context:#?}"
    );
    assert_eq!(&context.reasons[..2], &[Reason::Selected, Reason::Selected]);
    assert!(context.text.contains("shop.products"), "{}", context.text);
    assert!(context.tokens <= 400, "{}", context.tokens);
    // no Central filler once the model chose
    assert!(!context.reasons.contains(&Reason::Central), "{context:#?}");
}
