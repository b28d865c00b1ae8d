use super::*;
use crate::snapshot::{KeyConstraint, Partition, Schema};

use crate::snapshot::tests::sample;

#[test]
fn renders_the_sample() {
    let expected = "\
schema shop -- The web shop
types:
  composite shop.address (street text, city text, postcode character varying(10)) -- Postal address
  domain shop.email: text CHECK (VALUE ~ '^[^@]+@[^@]+$'::text)
  domain shop.positive_money: numeric(12,2) NOT NULL CHECK (VALUE >= 0::numeric)
  range shop.price_band of numeric

ops.archived_orders (foreign table)
  id bigint
  total numeric
ops.audit_log (table, ~0 rows)
  id integer PK
  msg text
shop.city_counts (materialized view, ~0 rows)
  city text
  n bigint
shop.customers (table, ~200 rows) -- People who bought something
  id bigint PK
  email shop.email NOT NULL
  name text NOT NULL
  city text -- City of residence; values: Berlin, Madrid, Paris
  home shop.address
  created_at timestamp with time zone NOT NULL
  UNIQUE (email)
";
    let text = render_schema(&sample());
    assert!(text.starts_with(expected), "{text}");
    for line in [
        "\nshop.orders (partitioned table, ~1000 rows, 4 partitions)\n",
        "\n  status shop.order_status NOT NULL -- values: pending, paid, shipped, cancelled\n",
        "\n  customer_id bigint NOT NULL -> shop.customers(id)\n",
        "\n  total numeric(12,2) GENERATED AS ((qty)::numeric * unit_price)\n",
        "\n  PK (id, ordered_at)\n",
        "\nshop.paid_orders (view) -- Orders that were paid\n",
        "\n  FK (order_id, ordered_at) -> shop.orders(id, ordered_at)\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // compact: no index DDL, no view definitions, no partitions as relations
    assert!(!text.contains("CREATE"), "{text}");
    assert!(!text.contains("SELECT"), "{text}");
    assert!(!text.contains("orders_2025"), "{text}");
    assert_eq!(render_schema(&sample()), text, "deterministic");
}

#[test]
fn order_does_not_depend_on_the_document() {
    let mut shuffled = sample();
    shuffled.relations.reverse();
    shuffled.schemas.reverse();
    assert_eq!(render_schema(&shuffled), render_schema(&sample()));
    assert_eq!(
        routing_summary(&shuffled, 500),
        routing_summary(&sample(), 500)
    );
}

#[test]
fn partitions_listed_as_relations_are_collapsed() {
    let mut snapshot = sample();
    let mut child = snapshot.relations[1].clone();
    child.schema = "shop".into();
    child.name = "orders_2024".into();
    snapshot.relations.push(child);
    let orders = snapshot.relations.iter().position(|r| r.name == "orders");
    let partitions = orders.and_then(|i| snapshot.relations[i].partitions.clone());
    assert!(partitions
        .iter()
        .flatten()
        .any(|p: &Partition| p.name == "orders_2024"));
    assert!(!render_schema(&snapshot).contains("orders_2024"));
}

#[test]
fn describe_filters_by_name_column_and_comment() {
    let snapshot = sample();
    let all = describe(&snapshot, None);
    assert!(all.starts_with("database nlqdev: 8 relations\n\n"), "{all}");
    assert!(all.ends_with(&render_schema(&snapshot)));

    let by_name = describe(&snapshot, Some("ORDERS"));
    assert!(
        by_name.starts_with("database nlqdev: 3 of 8 relations match \"ORDERS\"\n"),
        "{by_name}"
    );
    for relation in ["ops.archived_orders", "shop.orders", "shop.paid_orders"] {
        assert!(
            by_name.contains(&format!("\n{relation} (")),
            "{relation} in {by_name}"
        );
    }
    assert!(!by_name.contains("shop.customers ("));

    let by_column = describe(&snapshot, Some("sku"));
    assert!(by_column.contains("2 of 8 relations"), "{by_column}");
    let by_comment = describe(&snapshot, Some("residence"));
    assert!(
        by_comment.contains("1 of 8 relations") && by_comment.contains("shop.customers ("),
        "{by_comment}"
    );
    // only the types the shown relations use
    assert!(
        by_comment.contains("domain shop.email") && !by_comment.contains("price_band"),
        "{by_comment}"
    );

    let none = describe(&snapshot, Some("nothing like this"));
    assert_eq!(
        none,
        "database nlqdev: 0 of 8 relations match \"nothing like this\"\n"
    );
    assert_eq!(describe(&snapshot, Some("  ")), all);
}

#[test]
fn routing_summary_lists_schemas_then_relations() {
    let snapshot = sample();
    let summary = routing_summary(&snapshot, 10_000);
    assert_eq!(
        summary,
        "schema ops\n\
         schema shop -- The web shop\n\
         ops.archived_orders\n\
         ops.audit_log\n\
         shop.city_counts (view)\n\
         shop.customers -- People who bought something\n\
         shop.order_lines\n\
         shop.orders\n\
         shop.paid_orders (view) -- Orders that were paid\n\
         shop.products"
    );
}

#[test]
fn routing_summary_is_cut_at_max_chars() {
    let snapshot = sample();
    for max in [0, 10, 40, 60, 100, 150] {
        let summary = routing_summary(&snapshot, max);
        assert!(summary.chars().count() <= max.max(15), "{max}: {summary}");
        assert!(summary.contains("… and "), "{max}: {summary}");
    }
    let cut = routing_summary(&snapshot, 60);
    assert_eq!(cut, "schema ops\nschema shop -- The web shop\n… and 8 more");
}

#[test]
fn long_comments_and_values_are_shortened() {
    let mut snapshot = sample();
    snapshot.schemas.push(Schema {
        name: "empty".into(),
        comment: Some("never shown".into()),
    });
    let customers = snapshot
        .relations
        .iter_mut()
        .find(|r| r.name == "customers");
    let Some(customers) = customers else {
        panic!("no customers")
    };
    customers.comment = Some(format!("line one\nline two {}", "x".repeat(500)));
    let text = render_schema(&snapshot);
    let header = text.lines().find(|l| l.starts_with("shop.customers ("));
    let header = header.unwrap_or_default();
    assert!(
        header.ends_with('…') && header.chars().count() < 260,
        "{header}"
    );
    assert!(header.contains("line one line two"));
    assert!(!text.contains("never shown"));
    assert_eq!(show_value("a, b"), "'a, b'");
    assert_eq!(show_value("it's"), "it's");
    assert_eq!(show_value(""), "''");
}

#[test]
fn bare_enum_names_match_their_columns() {
    let mut snapshot = sample();
    snapshot.types.enums[0].schema = "public".into();
    let orders = snapshot.relations.iter_mut().find(|r| r.name == "orders");
    let Some(orders) = orders else {
        panic!("no orders")
    };
    orders.columns[2].data_type = "order_status[]".into();
    let text = render_schema(&snapshot);
    assert!(
        text.contains("  status order_status[] NOT NULL -- values: pending, paid"),
        "{text}"
    );
}

#[test]
fn comments_that_repeat_the_line_are_dropped() {
    assert!(says_nothing("City", "city", None));
    assert!(says_nothing("Line no", "line_no", None));
    assert!(says_nothing(
        "References sales.customers",
        "customer_id",
        Some("sales.customers")
    ));
    assert!(!says_nothing(
        "References sales.customers",
        "customer_id",
        None
    ));
    assert!(!says_nothing("Line number", "line_no", None));
    assert!(says_nothing(
        "Item (inventory.items)",
        "item_id",
        Some("inventory.items")
    ));
    assert!(says_nothing(
        "Employee (hr.employees)",
        "emp_id",
        Some("hr.employees")
    ));
    assert!(!says_nothing(
        "Approving manager (hr.employees)",
        "approver_id",
        Some("hr.employees")
    ));
    assert!(!says_nothing(
        "Item (inventory.items)",
        "item_id",
        Some("inventory.lots")
    ));
    assert!(!says_nothing(
        "Sales order (sales.sales_orders)",
        "so_id",
        None
    ));
}

/// A table with a `journal_id` primary key, and tables that carry the key without a foreign
/// key: the schema text shows the join on the column, said to come from the name; a column of
/// another type, a bare `id`, a key two tables share and a declared foreign key get no such
/// arrow.
#[test]
fn keys_inferred_by_name_are_shown_on_their_column() {
    let mut snapshot = sample();
    let template = snapshot
        .relations
        .iter()
        .find(|r| r.name == "audit_log")
        .cloned()
        .expect("sample has ops.audit_log");
    let column = |name: &str, data_type: &str| Column {
        name: name.into(),
        data_type: data_type.into(),
        nullable: false,
        ..template.columns[0].clone()
    };
    let table = |name: &str, columns: Vec<Column>, pk: Option<&str>| Relation {
        schema: "ledger".into(),
        name: name.into(),
        columns,
        primary_key: pk.map(|c| KeyConstraint {
            name: format!("{name}_pkey"),
            columns: vec![c.into()],
            comment: None,
        }),
        foreign_keys: Vec::new(),
        ..template.clone()
    };
    snapshot.relations.push(table(
        "journals",
        vec![column("journal_id", "bigint"), column("posted_on", "date")],
        Some("journal_id"),
    ));
    snapshot.relations.push(table(
        "journal_lines",
        vec![
            column("line_id", "bigint"),
            column("journal_id", "bigint"),
            column("amount", "numeric"),
        ],
        Some("line_id"),
    ));
    snapshot.relations.push(table(
        "journal_notes",
        vec![column("id", "bigint"), column("journal_id", "text")],
        Some("id"),
    ));
    let text = render_schema(&snapshot);
    assert!(
        text.contains("\n  journal_id bigint NOT NULL -> ledger.journals(journal_id) (by name)\n"),
        "{text}"
    );
    // another type is no key; the owner's own key is not a reference to itself
    let notes = text
        .split("ledger.journal_notes")
        .nth(1)
        .and_then(|rest| rest.split("\nledger.").next())
        .unwrap_or_default();
    assert!(notes.contains("\n  journal_id text NOT NULL"), "{text}");
    assert!(!notes.contains("->"), "{text}");
    assert!(text.contains("\n  journal_id bigint PK\n"), "{text}");
    assert_eq!(text.matches("(by name)").count(), 1, "{text}");
    // a declared foreign key is shown as such, never as inferred
    assert!(
        text.contains("\n  customer_id bigint NOT NULL -> shop.customers(id)\n"),
        "{text}"
    );

    // a second table keyed by `journal_id`: the name no longer says which one the lines join
    snapshot.relations.push(table(
        "journal_archive",
        vec![column("journal_id", "bigint")],
        Some("journal_id"),
    ));
    let text = render_schema(&snapshot);
    assert!(
        text.contains("\n  line_id bigint PK\n  journal_id bigint NOT NULL\n"),
        "{text}"
    );
    // and a table's own key is never a reference to the other one
    assert_eq!(
        text.matches("\n  journal_id bigint PK\n").count(),
        2,
        "{text}"
    );
}
