//! Schema text built from a [`Snapshot`]: the schema context of the generation prompt
//! ([`render_schema`]), the `describe_schema` tool's text ([`describe`]) and the short summary
//! the model chooses a database from ([`routing_summary`]).
//!
//! The format is one header line per relation and one line per column:
//!
//! ```text
//! shop.customers (table, ~200 rows) -- People who bought something
//!   id bigint PK
//!   city text -- City of residence; values: Berlin, Madrid, Paris
//!   UNIQUE (email)
//! shop.orders (partitioned table, ~1000 rows, 4 partitions)
//!   customer_id bigint NOT NULL -> shop.customers(id)
//!   status shop.order_status NOT NULL -- values: pending, paid, shipped, cancelled
//! ```
//!
//! preceded by the schemas' comments and the domains and composite types the columns use.
//! Values are enum labels, or the most common values of low-cardinality columns when the
//! snapshot has statistics. Index DDL and view definitions are left out to keep it compact;
//! partitions are only counted on their parent. Relations are sorted by schema and name, so
//! the same snapshot always gives the same text.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use crate::snapshot::{Column, Relation, RelationKind, Snapshot};
use crate::text::{counted, one_line};

/// Longest relation comment shown, in characters.
const RELATION_COMMENT_CHARS: usize = 200;
/// Longest column comment shown, in characters.
const COLUMN_COMMENT_CHARS: usize = 120;
/// Longest single value shown, in characters.
const VALUE_CHARS: usize = 40;
/// Most enum labels shown for one column.
const MAX_LABELS: usize = 24;
/// Most common values shown for one column.
const MAX_COMMON_VALUES: usize = 8;
/// Common values are shown only for columns with at most this many distinct values.
const MAX_DISTINCT_FOR_VALUES: f64 = 30.0;
/// Longest comment in the routing summary, in characters.
const ROUTING_COMMENT_CHARS: usize = 80;

/// The schema context for the generation prompt: every relation of the snapshot.
pub fn render_schema(snapshot: &Snapshot) -> String {
    let relations = visible_relations(snapshot);
    render(snapshot, &relations)
}

/// The `describe_schema` text: a line saying how many relations are shown, then the same
/// format as [`render_schema`]. `filter` (case-insensitive substring) keeps the relations whose
/// `schema.name`, comment, or a column's name or comment contains it.
pub fn describe(snapshot: &Snapshot, filter: Option<&str>) -> String {
    let relations = visible_relations(snapshot);
    let total = relations.len();
    let filter = filter.map(str::trim).filter(|f| !f.is_empty());
    let mut out = String::new();
    let shown = match filter {
        None => {
            let _ = writeln!(
                out,
                "database {}: {}",
                snapshot.database,
                counted(total, "relation", "relations")
            );
            relations
        }
        Some(filter) => {
            let needle = filter.to_lowercase();
            let matched: Vec<&Relation> = relations
                .into_iter()
                .filter(|r| matches_filter(r, &needle))
                .collect();
            let _ = writeln!(
                out,
                "database {}: {} of {} {} match {filter:?}",
                snapshot.database,
                matched.len(),
                total,
                if total == 1 { "relation" } else { "relations" },
            );
            matched
        }
    };
    if !shown.is_empty() {
        out.push('\n');
        out.push_str(&render(snapshot, &shown));
    }
    out
}

/// What the model chooses a database from: the schemas with their comments, then
/// `schema.table -- comment` per relation, cut to about `max_chars` characters with
/// "… and N more".
pub fn routing_summary(snapshot: &Snapshot, max_chars: usize) -> String {
    let relations = visible_relations(snapshot);
    let used: BTreeSet<&str> = relations.iter().map(|r| r.schema.as_str()).collect();
    let comments: HashMap<&str, Option<&str>> = snapshot
        .schemas
        .iter()
        .map(|s| (s.name.as_str(), s.comment.as_deref()))
        .collect();

    let mut lines: Vec<String> = Vec::new();
    for schema in &used {
        let mut line = format!("schema {schema}");
        push_comment(
            &mut line,
            comments.get(schema).copied().flatten(),
            ROUTING_COMMENT_CHARS,
        );
        lines.push(line);
    }
    for relation in &relations {
        let mut line = format!("{}.{}", relation.schema, relation.name);
        if is_view(&relation.kind) {
            line.push_str(" (view)");
        }
        push_comment(
            &mut line,
            relation.comment.as_deref(),
            ROUTING_COMMENT_CHARS,
        );
        lines.push(line);
    }

    let mut out = String::new();
    let mut used_chars = 0;
    for (i, line) in lines.iter().enumerate() {
        let cost = line.chars().count() + 1;
        let left = lines.len() - i;
        // leave room for the "… and N more" line unless this is the last line
        let reserve = if left > 1 {
            format!("… and {} more", left - 1).chars().count() + 1
        } else {
            0
        };
        if used_chars + cost + reserve > max_chars {
            let more = format!("… and {left} more");
            out.push_str(&more);
            return out;
        }
        out.push_str(line);
        out.push('\n');
        used_chars += cost;
    }
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// The relations to show, sorted by schema and name, without partitions (their parent stands
/// for them).
fn visible_relations(snapshot: &Snapshot) -> Vec<&Relation> {
    let partitions: HashSet<(&str, &str)> = snapshot
        .relations
        .iter()
        .flat_map(|r| r.partitions.iter().flatten())
        .map(|p| (p.schema.as_str(), p.name.as_str()))
        .collect();
    let mut relations: Vec<&Relation> = snapshot
        .relations
        .iter()
        .filter(|r| !partitions.contains(&(r.schema.as_str(), r.name.as_str())))
        .collect();
    relations.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    relations
}

fn matches_filter(relation: &Relation, needle: &str) -> bool {
    let contains = |text: &str| text.to_lowercase().contains(needle);
    contains(&format!("{}.{}", relation.schema, relation.name))
        || relation.comment.as_deref().is_some_and(contains)
        || relation
            .columns
            .iter()
            .any(|c| contains(&c.name) || c.comment.as_deref().is_some_and(contains))
}

/// User-defined types looked up by the names a column's type may carry.
pub(crate) struct TypeIndex<'a> {
    enums: HashMap<String, &'a [String]>,
    /// Qualified name to its one-line definition (domains and composites).
    definitions: HashMap<String, (String, String)>,
}

impl<'a> TypeIndex<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot) -> Self {
        let mut enums = HashMap::new();
        let mut definitions = HashMap::new();
        let types = &snapshot.types;
        for e in &types.enums {
            for name in type_names(&e.schema, &e.name) {
                enums.insert(name, e.labels.as_slice());
            }
        }
        for d in &types.domains {
            let qualified = format!("{}.{}", d.schema, d.name);
            let mut text = format!("domain {qualified}: {}", d.base_type);
            if !d.nullable {
                text.push_str(" NOT NULL");
            }
            for c in &d.constraints {
                let _ = write!(text, " {}", c.definition);
            }
            push_comment(&mut text, d.comment.as_deref(), COLUMN_COMMENT_CHARS);
            for name in type_names(&d.schema, &d.name) {
                definitions.insert(name, (qualified.clone(), text.clone()));
            }
        }
        for c in &types.composites {
            let qualified = format!("{}.{}", c.schema, c.name);
            let fields = c
                .fields
                .iter()
                .map(|f| format!("{} {}", f.name, f.data_type))
                .collect::<Vec<_>>()
                .join(", ");
            let mut text = format!("composite {qualified} ({fields})");
            push_comment(&mut text, c.comment.as_deref(), COLUMN_COMMENT_CHARS);
            for name in type_names(&c.schema, &c.name) {
                definitions.insert(name, (qualified.clone(), text.clone()));
            }
        }
        for r in &types.ranges {
            let qualified = format!("{}.{}", r.schema, r.name);
            let mut text = format!("range {qualified} of {}", r.subtype);
            push_comment(&mut text, r.comment.as_deref(), COLUMN_COMMENT_CHARS);
            for name in type_names(&r.schema, &r.name) {
                definitions.insert(name, (qualified.clone(), text.clone()));
            }
        }
        TypeIndex { enums, definitions }
    }

    pub(crate) fn enum_labels(&self, data_type: &str) -> Option<&'a [String]> {
        self.enums.get(element_type(data_type)).copied()
    }

    fn definition(&self, data_type: &str) -> Option<&(String, String)> {
        self.definitions.get(element_type(data_type))
    }
}

/// The names `format_type()` may give a type: qualified, and bare when its schema is on the
/// search path (`public.book_format` appears as `book_format`).
fn type_names(schema: &str, name: &str) -> [String; 2] {
    [format!("{schema}.{name}"), name.to_string()]
}

/// `shop.order_status[]` → `shop.order_status`.
fn element_type(data_type: &str) -> &str {
    let mut t = data_type.trim();
    while let Some(rest) = t.strip_suffix("[]") {
        t = rest;
    }
    t
}

/// The rendering of `relations` (already sorted) with the schema comments and the types they
/// use.
pub(crate) fn render(snapshot: &Snapshot, relations: &[&Relation]) -> String {
    let types = TypeIndex::new(snapshot);
    let mut out = String::new();

    let used_schemas: BTreeSet<&str> = relations.iter().map(|r| r.schema.as_str()).collect();
    let mut schema_lines: Vec<String> = snapshot
        .schemas
        .iter()
        .filter(|s| used_schemas.contains(s.name.as_str()))
        .filter_map(|s| {
            let comment = one_line(s.comment.as_deref()?, RELATION_COMMENT_CHARS);
            (!comment.is_empty()).then(|| format!("schema {} -- {comment}", s.name))
        })
        .collect();
    schema_lines.sort();
    for line in &schema_lines {
        out.push_str(line);
        out.push('\n');
    }

    // Domains, composites and ranges the columns use, once each, sorted by name.
    let mut used_types: BTreeMap<&str, &str> = BTreeMap::new();
    for relation in relations {
        for column in &relation.columns {
            if let Some((qualified, text)) = types.definition(&column.data_type) {
                used_types.insert(qualified, text);
            }
        }
    }
    if !used_types.is_empty() {
        out.push_str("types:\n");
        for text in used_types.values() {
            let _ = writeln!(out, "  {text}");
        }
    }
    if !schema_lines.is_empty() || !used_types.is_empty() {
        out.push('\n');
    }

    for relation in relations {
        render_relation(&mut out, relation, &types);
    }
    out
}

fn render_relation(out: &mut String, relation: &Relation, types: &TypeIndex<'_>) {
    let mut header = format!("{}.{} ({}", relation.schema, relation.name, relation.kind);
    if let Some(rows) = relation.row_estimate.filter(|r| *r >= 0) {
        let _ = write!(header, ", ~{}", counted(rows, "row", "rows"));
    }
    if let Some(partitions) = relation.partitions.as_ref().filter(|p| !p.is_empty()) {
        let _ = write!(
            header,
            ", {}",
            counted(partitions.len(), "partition", "partitions")
        );
    }
    header.push(')');
    push_comment(
        &mut header,
        relation.comment.as_deref(),
        RELATION_COMMENT_CHARS,
    );
    out.push_str(&header);
    out.push('\n');

    let pk: &[String] = relation
        .primary_key
        .as_ref()
        .map(|k| k.columns.as_slice())
        .unwrap_or(&[]);
    // single-column foreign keys are shown on their column, the others on their own line
    let mut inline_fk: HashMap<&str, String> = HashMap::new();
    let mut fk_lines: Vec<String> = Vec::new();
    for fk in &relation.foreign_keys {
        let target = format!(
            "{}.{}({})",
            fk.references.schema,
            fk.references.table,
            fk.references.columns.join(", ")
        );
        if let [column] = fk.columns.as_slice() {
            inline_fk.entry(column.as_str()).or_insert(target);
        } else {
            fk_lines.push(format!("FK ({}) -> {target}", fk.columns.join(", ")));
        }
    }

    for column in &relation.columns {
        let mut line = format!("  {} {}", column.name, column.data_type);
        let single_pk = pk.len() == 1 && pk[0] == column.name;
        if single_pk {
            line.push_str(" PK");
        } else if !column.nullable && !pk.contains(&column.name) {
            line.push_str(" NOT NULL");
        }
        if let Some(generated) = &column.generated {
            let _ = write!(
                line,
                " GENERATED AS {}",
                one_line(&generated.expression, COLUMN_COMMENT_CHARS)
            );
        }
        if let Some(target) = inline_fk.get(column.name.as_str()) {
            let _ = write!(line, " -> {target}");
        }
        let comment = column
            .comment
            .as_deref()
            .map(|c| one_line(c, COLUMN_COMMENT_CHARS))
            .filter(|c| !c.is_empty());
        let values = column_values(column, types);
        match (comment, values) {
            (Some(comment), Some(values)) => {
                let _ = write!(line, " -- {comment}; values: {values}");
            }
            (Some(comment), None) => {
                let _ = write!(line, " -- {comment}");
            }
            (None, Some(values)) => {
                let _ = write!(line, " -- values: {values}");
            }
            (None, None) => {}
        }
        out.push_str(&line);
        out.push('\n');
    }

    if pk.len() > 1 {
        let _ = writeln!(out, "  PK ({})", pk.join(", "));
    }
    for unique in &relation.unique_constraints {
        let _ = writeln!(out, "  UNIQUE ({})", unique.columns.join(", "));
    }
    for line in fk_lines {
        let _ = writeln!(out, "  {line}");
    }
}

/// The values a column holds: its enum's labels, or its most common values when it has few
/// distinct ones; `None` when there is nothing useful to show.
fn column_values(column: &Column, types: &TypeIndex<'_>) -> Option<String> {
    if let Some(labels) = types.enum_labels(&column.data_type) {
        if labels.is_empty() {
            return None;
        }
        let shown: Vec<String> = labels
            .iter()
            .take(MAX_LABELS)
            .map(|l| show_value(l))
            .collect();
        let mut text = shown.join(", ");
        if labels.len() > MAX_LABELS {
            let _ = write!(text, ", … ({} labels)", labels.len());
        }
        return Some(text);
    }
    if !shows_common_values(&column.data_type) {
        return None;
    }
    let stats = column.stats.as_ref()?;
    let common = stats.common_values.as_deref().filter(|v| !v.is_empty())?;
    let distinct = stats
        .distinct_estimate
        .or((stats.n_distinct > 0.0).then_some(stats.n_distinct))?;
    if distinct > MAX_DISTINCT_FOR_VALUES {
        return None;
    }
    let shown: Vec<String> = common
        .iter()
        .take(MAX_COMMON_VALUES)
        .map(|v| show_value(&v.value))
        .collect();
    let mut text = shown.join(", ");
    if (distinct.round() as usize) > shown.len() {
        text.push_str(", …");
    }
    Some(text)
}

/// Whether common values say something useful about a column of this type: text and codes
/// yes; numbers, times, booleans, identifiers and documents no.
fn shows_common_values(data_type: &str) -> bool {
    const SKIPPED: &[&str] = &[
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "real",
        "double precision",
        "money",
        "boolean",
        "date",
        "time",
        "timestamp",
        "interval",
        "uuid",
        "json",
        "jsonb",
        "bytea",
        "oid",
        "inet",
        "cidr",
        "tsvector",
        "point",
    ];
    let t = data_type.trim();
    !t.ends_with("[]") && !SKIPPED.iter().any(|s| t.starts_with(s))
}

/// A value as shown after `values:`: quoted (SQL style) only when it would be ambiguous
/// unquoted (empty, commas, surrounding spaces).
fn show_value(value: &str) -> String {
    let short = one_line(value, VALUE_CHARS);
    if value.is_empty() || value.contains(',') || value.trim() != value || value.contains('\n') {
        format!("'{}'", short.replace('\'', "''"))
    } else {
        short
    }
}

fn is_view(kind: &RelationKind) -> bool {
    matches!(kind, RelationKind::View | RelationKind::MaterializedView)
}

/// Appends ` -- comment` (one line, shortened) when there is a comment.
fn push_comment(line: &mut String, comment: Option<&str>, max_chars: usize) {
    if let Some(comment) = comment {
        let comment = one_line(comment, max_chars);
        if !comment.is_empty() {
            let _ = write!(line, " -- {comment}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Partition, Schema};

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
}
