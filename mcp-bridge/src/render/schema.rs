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
//!   store_id integer -> shop.stores(store_id) (by name)
//!   status shop.order_status NOT NULL -- values: pending, paid, shipped, cancelled
//! ```
//!
//! preceded by the schemas' comments and the domains and composite types the columns use.
//! `(by name)` marks a key no foreign key declares ([`InferredKeys`]).
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
    render(snapshot, &relations, &InferredKeys::of_visible(snapshot))
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
        out.push_str(&render(
            snapshot,
            &shown,
            &InferredKeys::of_visible(snapshot),
        ));
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
    visible_indices(snapshot)
        .into_iter()
        .map(|i| &snapshot.relations[i])
        .collect()
}

/// [`visible_relations`] as indices into `snapshot.relations`.
fn visible_indices(snapshot: &Snapshot) -> Vec<usize> {
    let partitions: HashSet<(&str, &str)> = snapshot
        .relations
        .iter()
        .flat_map(|r| r.partitions.iter().flatten())
        .map(|p| (p.schema.as_str(), p.name.as_str()))
        .collect();
    let mut relations: Vec<usize> = (0..snapshot.relations.len())
        .filter(|&i| {
            let r = &snapshot.relations[i];
            !partitions.contains(&(r.schema.as_str(), r.name.as_str()))
        })
        .collect();
    relations.sort_by(|&a, &b| {
        let (a, b) = (&snapshot.relations[a], &snapshot.relations[b]);
        (&a.schema, &a.name).cmp(&(&b.schema, &b.name))
    });
    relations
}

/// The keys the schema text shows although no foreign key declares them
/// ([`crate::linking::graph::inferred_keys`]): `(schema, table)` → column → the
/// `schema.table` and the `schema.table(column)` it joins.
#[derive(Debug, Default)]
pub(crate) struct InferredKeys(HashMap<(String, String), HashMap<String, (String, String)>>);

impl InferredKeys {
    /// The inferred keys among `docs` (indices into `snapshot.relations`, partitions left out).
    pub(crate) fn of(snapshot: &Snapshot, docs: &[usize]) -> InferredKeys {
        let inferred = crate::linking::graph::inferred_keys(snapshot, docs);
        InferredKeys::from_inferred(snapshot, docs, &inferred)
    }

    /// From [`crate::linking::graph::inferred_keys`]' result for `docs`.
    pub(crate) fn from_inferred(
        snapshot: &Snapshot,
        docs: &[usize],
        inferred: &[Vec<(usize, usize)>],
    ) -> InferredKeys {
        let mut keys: HashMap<(String, String), HashMap<String, (String, String)>> = HashMap::new();
        for (doc, inferred) in inferred.iter().enumerate() {
            let relation = &snapshot.relations[docs[doc]];
            for &(column, target) in inferred {
                let column = &relation.columns[column].name;
                let target = &snapshot.relations[docs[target]];
                keys.entry((relation.schema.clone(), relation.name.clone()))
                    .or_default()
                    .insert(
                        column.clone(),
                        (
                            format!("{}.{}", target.schema, target.name),
                            format!("{}.{}({column})", target.schema, target.name),
                        ),
                    );
            }
        }
        InferredKeys(keys)
    }

    fn of_visible(snapshot: &Snapshot) -> InferredKeys {
        InferredKeys::of(snapshot, &visible_indices(snapshot))
    }

    /// Per column of `relation`, the `(schema.table, schema.table(column))` it joins by name.
    fn of_relation(&self, relation: &Relation) -> Option<&HashMap<String, (String, String)>> {
        self.0
            .get(&(relation.schema.clone(), relation.name.clone()))
    }
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
pub(crate) fn render(snapshot: &Snapshot, relations: &[&Relation], keys: &InferredKeys) -> String {
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
        render_relation(&mut out, relation, &types, keys);
    }
    out
}

fn render_relation(
    out: &mut String,
    relation: &Relation,
    types: &TypeIndex<'_>,
    keys: &InferredKeys,
) {
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
    // column → (`schema.table`, `schema.table(columns)`)
    let mut inline_fk: HashMap<&str, (String, String)> = HashMap::new();
    let mut fk_lines: Vec<String> = Vec::new();
    for fk in &relation.foreign_keys {
        let table = format!("{}.{}", fk.references.schema, fk.references.table);
        let target = format!("{table}({})", fk.references.columns.join(", "));
        if let [column] = fk.columns.as_slice() {
            inline_fk.entry(column.as_str()).or_insert((table, target));
        } else {
            fk_lines.push(format!("FK ({}) -> {target}", fk.columns.join(", ")));
        }
    }

    let inferred_here = keys.of_relation(relation);
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
        let fk = inline_fk.get(column.name.as_str());
        let inferred = inferred_here
            .and_then(|columns| columns.get(&column.name))
            .map(|(table, target)| (table.as_str(), target.as_str()));
        if let Some((_, target)) = fk {
            let _ = write!(line, " -> {target}");
        } else if let Some((_, target)) = inferred {
            // no foreign key says so: the model must know it is the name that says it
            let _ = write!(line, " -> {target} (by name)");
        }
        let comment = column
            .comment
            .as_deref()
            .filter(|c| {
                let table = fk
                    .map(|(table, _)| table.as_str())
                    .or(inferred.map(|k| k.0));
                !says_nothing(c, &column.name, table)
            })
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

/// Whether a column's comment only repeats what its line already shows: its own name in words
/// (`city` -- "City", `line_no` -- "Line no") or the table its foreign key references
/// ("References sales.customers"). Such comments cost tokens on every table and tell the
/// model nothing.
fn says_nothing(comment: &str, column: &str, fk_table: Option<&str>) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let said = words(comment);
    if said.is_empty() || said == words(column) {
        return true;
    }
    // "References sales.customers", "Item (inventory.items)", "Employee (hr.employees)": the
    // table the arrow shows, after words of the column's or the table's own name
    fk_table.is_some_and(|table| {
        let target = words(table);
        let Some(before) = said
            .len()
            .checked_sub(target.len())
            .filter(|&n| said[n..] == target[..])
            .map(|n| &said[..n])
        else {
            return false;
        };
        let mut known = words(column);
        known.push("references".to_string());
        for word in &target {
            known.push(word.clone());
            if let Some(singular) = word.strip_suffix('s') {
                known.push(singular.to_string());
            }
        }
        before.iter().all(|w| known.contains(w))
    })
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
mod tests;
