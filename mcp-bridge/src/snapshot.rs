//! A database's schema as the pg_nlq extension describes it: the snapshot document returned by
//! `nlq_schema_snapshot()` ([`crate::pgnlq`] fetches it), its Rust model, and the short
//! summary the command line prints.
//!
//! The model follows format version 1 of the document. Fields it does not know are ignored and
//! relation kinds it does not know are kept as text, so a newer extension that adds to the
//! document does not break the bridge.

use std::collections::HashMap;
use std::fmt;

use crate::error::BridgeError;
use serde::Deserialize;

/// The newest snapshot format this model was written for.
pub const FORMAT_VERSION: u32 = 1;

/// The whole snapshot document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Snapshot {
    pub format_version: u32,
    /// Hash of the schema state this snapshot describes (`nlq_schema_fingerprint()`).
    pub fingerprint: String,
    pub database: String,
    pub role: String,
    pub server_version_num: i32,
    pub options: SnapshotOptions,
    pub schemas: Vec<Schema>,
    pub relations: Vec<Relation>,
    pub types: Types,
}

/// The arguments the snapshot was taken with.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SnapshotOptions {
    pub schemas: Option<Vec<String>>,
    pub statistics: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Schema {
    pub name: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    pub comment: Option<String>,
    /// The planner's estimate; `None` for views and relations never analysed.
    pub row_estimate: Option<i64>,
    pub size_bytes: Option<i64>,
    pub columns: Vec<Column>,
    pub primary_key: Option<KeyConstraint>,
    pub unique_constraints: Vec<KeyConstraint>,
    pub foreign_keys: Vec<ForeignKey>,
    pub check_constraints: Vec<CheckConstraint>,
    pub indexes: Vec<Index>,
    /// The query of a view or materialized view.
    pub definition: Option<String>,
    pub partition_key: Option<String>,
    /// The partitions of a partitioned table, at every level.
    pub partitions: Option<Vec<Partition>>,
    pub foreign_server: Option<String>,
}

/// What a relation is; a kind this model does not know is kept as its text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
    Other(String),
}

impl From<String> for RelationKind {
    fn from(kind: String) -> Self {
        match kind.as_str() {
            "table" => RelationKind::Table,
            "partitioned table" => RelationKind::PartitionedTable,
            "view" => RelationKind::View,
            "materialized view" => RelationKind::MaterializedView,
            "foreign table" => RelationKind::ForeignTable,
            _ => RelationKind::Other(kind),
        }
    }
}

impl RelationKind {
    pub fn as_str(&self) -> &str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::ForeignTable => "foreign table",
            RelationKind::Other(kind) => kind,
        }
    }
}

impl fmt::Display for RelationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Column {
    pub name: String,
    pub position: i32,
    /// The type as `format_type()` spells it, e.g. `numeric(12,2)` or `shop.order_status`.
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    /// `always` or `by default` for an identity column.
    pub identity: Option<String>,
    pub generated: Option<Generated>,
    pub comment: Option<String>,
    pub stats: Option<ColumnStats>,
}

/// A generated column's kind (`stored`) and expression.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Generated {
    pub kind: String,
    pub expression: String,
}

/// Per-column statistics from `pg_stats`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ColumnStats {
    pub null_frac: f64,
    /// As in `pg_stats`: negative means a fraction of the row count.
    pub n_distinct: f64,
    /// `n_distinct` as a number of values, where the row count is known.
    pub distinct_estimate: Option<f64>,
    pub common_values: Option<Vec<CommonValue>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CommonValue {
    pub value: String,
    pub frequency: f64,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct KeyConstraint {
    pub name: String,
    pub columns: Vec<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references: ForeignKeyTarget,
    pub on_update: String,
    pub on_delete: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ForeignKeyTarget {
    pub schema: String,
    pub table: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CheckConstraint {
    pub name: String,
    pub definition: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Index {
    pub name: String,
    pub method: String,
    pub unique: bool,
    pub primary: bool,
    /// Key columns or expressions.
    pub columns: Vec<String>,
    pub include: Vec<String>,
    pub predicate: Option<String>,
    pub definition: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Partition {
    pub schema: String,
    pub name: String,
    /// The partition it belongs to when it is not directly under the partitioned table.
    pub parent: Option<String>,
    pub bound: String,
    pub row_estimate: Option<i64>,
}

/// User-defined types.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Types {
    pub enums: Vec<EnumType>,
    pub domains: Vec<DomainType>,
    pub composites: Vec<CompositeType>,
    pub ranges: Vec<RangeType>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EnumType {
    pub schema: String,
    pub name: String,
    pub labels: Vec<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainType {
    pub schema: String,
    pub name: String,
    pub base_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub constraints: Vec<DomainConstraint>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DomainConstraint {
    pub name: String,
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompositeType {
    pub schema: String,
    pub name: String,
    pub fields: Vec<CompositeField>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CompositeField {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RangeType {
    pub schema: String,
    pub name: String,
    pub subtype: String,
    pub comment: Option<String>,
}

impl Snapshot {
    /// Parses a snapshot document.
    pub fn from_json(document: &str) -> Result<Snapshot, BridgeError> {
        let snapshot: Snapshot = serde_json::from_str(document).map_err(|e| {
            BridgeError::Internal(format!(
                "the schema snapshot does not have the expected shape \
                 (this bridge reads format version {FORMAT_VERSION}): {e}"
            ))
        })?;
        if snapshot.format_version > FORMAT_VERSION {
            tracing::warn!(
                format_version = snapshot.format_version,
                supported = FORMAT_VERSION,
                "the schema snapshot is newer than this bridge; what it does not know is ignored"
            );
        }
        Ok(snapshot)
    }

    /// The relations grouped by schema: the schemas in document order (each listed schema, even
    /// an empty one), then any schema that only a relation names.
    pub(crate) fn relations_by_schema(&self) -> Vec<(&str, Option<&str>, Vec<&Relation>)> {
        let mut groups: Vec<(&str, Option<&str>, Vec<&Relation>)> = self
            .schemas
            .iter()
            .map(|s| (s.name.as_str(), s.comment.as_deref(), Vec::new()))
            .collect();
        let mut index: HashMap<&str, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, group)| (group.0, i))
            .collect();
        for relation in &self.relations {
            let i = *index.entry(relation.schema.as_str()).or_insert_with(|| {
                groups.push((relation.schema.as_str(), None, Vec::new()));
                groups.len() - 1
            });
            groups[i].2.push(relation);
        }
        groups
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A real document: `nlq_schema_snapshot()` of pg_nlq 0.1.0 on a development database
    /// with every relation kind, partitions two levels deep, a generated column, identity
    /// columns, statistics with common values and every kind of user-defined type.
    const SAMPLE: &str = include_str!("../testdata/snapshot_v1.json");

    pub(crate) fn sample() -> Snapshot {
        match Snapshot::from_json(SAMPLE) {
            Ok(snapshot) => snapshot,
            Err(err) => panic!("{err}"),
        }
    }

    fn relation<'a>(snapshot: &'a Snapshot, name: &str) -> &'a Relation {
        match snapshot.relations.iter().find(|r| r.name == name) {
            Some(relation) => relation,
            None => panic!("no relation {name}"),
        }
    }

    #[test]
    fn parses_every_relation_kind() {
        let snapshot = sample();
        assert_eq!(snapshot.format_version, 1);
        assert_eq!(snapshot.database, "nlqdev");
        assert_eq!(snapshot.server_version_num, 150020);
        assert_eq!(
            snapshot.options,
            SnapshotOptions {
                schemas: None,
                statistics: true
            }
        );
        let kinds: Vec<(&str, &RelationKind)> = snapshot
            .relations
            .iter()
            .map(|r| (r.name.as_str(), &r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("archived_orders", &RelationKind::ForeignTable),
                ("audit_log", &RelationKind::Table),
                ("city_counts", &RelationKind::MaterializedView),
                ("customers", &RelationKind::Table),
                ("order_lines", &RelationKind::Table),
                ("orders", &RelationKind::PartitionedTable),
                ("paid_orders", &RelationKind::View),
                ("products", &RelationKind::Table),
            ]
        );
    }

    #[test]
    fn parses_relation_details() {
        let snapshot = sample();

        let orders = relation(&snapshot, "orders");
        assert_eq!(orders.partition_key.as_deref(), Some("RANGE (ordered_at)"));
        let partitions = orders.partitions.as_deref().unwrap_or_default();
        assert_eq!(partitions.len(), 4);
        assert_eq!(partitions[2].parent.as_deref(), Some("orders_2025"));
        assert_eq!(partitions[3].bound, "DEFAULT");
        let total = &orders.columns[6];
        assert_eq!(total.data_type, "numeric(12,2)");
        assert_eq!(
            total.generated,
            Some(Generated {
                kind: "stored".into(),
                expression: "((qty)::numeric * unit_price)".into()
            })
        );
        assert_eq!(orders.columns[0].identity.as_deref(), Some("by default"));
        let fk = &orders.foreign_keys[0];
        assert_eq!(fk.on_delete, "cascade");
        assert_eq!(fk.references.table, "customers");
        assert_eq!(fk.comment.as_deref(), Some("Every order has a buyer"));

        let customers = relation(&snapshot, "customers");
        let city = &customers.columns[3];
        let stats = city.stats.as_ref();
        assert_eq!(stats.map(|s| s.null_frac), Some(0.2));
        let common = stats.and_then(|s| s.common_values.as_deref());
        assert_eq!(
            common.and_then(|values| values.first()),
            Some(&CommonValue {
                value: "Berlin".into(),
                frequency: 0.4
            })
        );
        let partial = &customers.indexes[0];
        assert_eq!(partial.include, ["name"]);
        assert_eq!(partial.predicate.as_deref(), Some("city IS NOT NULL"));

        let view = relation(&snapshot, "paid_orders");
        assert!(view
            .definition
            .as_deref()
            .is_some_and(|d| d.contains("FROM shop.orders")));
        assert_eq!(view.row_estimate, None);
        let foreign = relation(&snapshot, "archived_orders");
        assert_eq!(foreign.foreign_server.as_deref(), Some("archive"));
        let products = relation(&snapshot, "products");
        assert_eq!(products.check_constraints[0].name, "title_not_blank");

        let types = &snapshot.types;
        assert_eq!(
            types.enums[0].labels,
            ["pending", "paid", "shipped", "cancelled"]
        );
        assert_eq!(types.domains[1].default.as_deref(), Some("0"));
        assert_eq!(
            types.composites[0].fields[2].data_type,
            "character varying(10)"
        );
        assert_eq!(types.ranges[0].subtype, "numeric");
    }

    #[test]
    fn tolerates_what_a_newer_extension_adds() {
        let mut document: serde_json::Value = match serde_json::from_str(SAMPLE) {
            Ok(value) => value,
            Err(err) => panic!("{err}"),
        };
        document["format_version"] = 2.into();
        document["new_top_level"] = serde_json::json!({"anything": [1, 2]});
        document["types"]["new_type_kind"] = serde_json::json!([]);
        document["relations"][1]["new_relation_field"] = true.into();
        document["relations"][1]["columns"][0]["collation"] = "C".into();
        document["relations"][1]["kind"] = "property graph".into();
        let snapshot = match Snapshot::from_json(&document.to_string()) {
            Ok(snapshot) => snapshot,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(snapshot.format_version, 2);
        assert_eq!(
            snapshot.relations[1].kind,
            RelationKind::Other("property graph".into())
        );
        assert!(crate::render::summary::summary(&snapshot)
            .contains("\n  property graph ops.audit_log, ~0 rows\n"));
    }

    #[test]
    fn rejects_a_document_of_another_shape() {
        let err = match Snapshot::from_json(r#"{"format_version": 1}"#) {
            Ok(_) => panic!("a document without relations must not parse"),
            Err(err) => err,
        };
        assert_eq!(err.code(), crate::answer::ErrorCode::InternalError);
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn summary_of_the_sample() {
        let expected = "\
database nlqdev as postgres, PostgreSQL 15.20, snapshot format 1
fingerprint 4e8ee7ef12cc2b3b5d1c4c1cca8ac7a28c3bd5b1b5d0ec1e0fa2c4aee9b1a6d5
3 schemas, 8 relations; types: 1 enum, 2 domains, 1 composite, 1 range

schema ops
  foreign table ops.archived_orders, rows unknown, server archive
    id bigint
    total numeric
  table ops.audit_log, ~0 rows
    id integer PK
    msg text

schema public -- standard public schema
  (no relations)

schema shop -- The web shop
  materialized view shop.city_counts, ~0 rows
    city text
    n bigint
  table shop.customers, ~200 rows -- People who bought something
    id bigint PK
    email shop.email
    name text
    city text
    home shop.address
    created_at timestamp with time zone
  table shop.order_lines, ~0 rows
    order_id bigint PK FK -> shop.orders.id
    ordered_at date FK -> shop.orders.ordered_at
    line integer PK
    sku text FK -> shop.products.sku
    note text
  partitioned table shop.orders, ~1000 rows, 4 partitions
    id bigint PK
    customer_id bigint FK -> shop.customers.id
    status shop.order_status
    ordered_at date PK
    qty integer
    unit_price numeric(10,2)
    total numeric(12,2)
  view shop.paid_orders -- Orders that were paid
    id bigint
    customer_id bigint
    total numeric(12,2)
  table shop.products, ~2 rows
    sku text PK
    title text
    price shop.positive_money
    band shop.price_band
    tags text[]
";
        let mut snapshot = sample();
        snapshot.fingerprint =
            "4e8ee7ef12cc2b3b5d1c4c1cca8ac7a28c3bd5b1b5d0ec1e0fa2c4aee9b1a6d5".into();
        assert_eq!(crate::render::summary::summary(&snapshot), expected);
    }

    #[test]
    fn summary_of_an_empty_database() {
        let snapshot = Snapshot {
            format_version: 1,
            fingerprint: "ab".into(),
            database: "empty".into(),
            role: "alice".into(),
            server_version_num: 90624,
            options: SnapshotOptions {
                schemas: Some(vec!["public".into()]),
                statistics: false,
            },
            schemas: vec![],
            relations: vec![],
            types: Types {
                enums: vec![],
                domains: vec![],
                composites: vec![],
                ranges: vec![],
            },
        };
        assert_eq!(
            crate::render::summary::summary(&snapshot),
            "database empty as alice, PostgreSQL 9.6.24, snapshot format 1\n\
             fingerprint ab\n\
             0 schemas, 0 relations; types: 0 enums, 0 domains, 0 composites, 0 ranges\n"
        );
    }

    #[test]
    fn relations_of_an_unlisted_schema_are_still_shown() {
        let mut snapshot = sample();
        snapshot.schemas.retain(|s| s.name != "ops");
        let summary = crate::render::summary::summary(&snapshot);
        let shop = summary.find("\nschema shop");
        let ops = summary.find("\nschema ops\n  foreign table ops.archived_orders");
        assert!(shop.is_some() && ops.is_some() && shop < ops, "{summary}");
    }

    #[test]
    fn long_and_multi_line_comments_are_shortened() {
        let mut snapshot = sample();
        snapshot.schemas[0].comment = Some(format!("first line\n  second {}", "é".repeat(100)));
        let summary = crate::render::summary::summary(&snapshot);
        let line = summary.lines().find(|l| l.starts_with("schema ops"));
        let expected = format!("schema ops -- first line second {}…", "é".repeat(62));
        assert_eq!(line, Some(expected.as_str()));
    }

    #[test]
    fn server_versions() {
        assert_eq!(crate::render::summary::server_version(150020), "15.20");
        assert_eq!(crate::render::summary::server_version(170000), "17.0");
        assert_eq!(crate::render::summary::server_version(90624), "9.6.24");
    }
}
