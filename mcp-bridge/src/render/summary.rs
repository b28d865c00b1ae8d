//! The short summary of a snapshot the command line prints (`pg-nlq-bridge snapshot`): the
//! database, then per schema each relation with its kind and row estimate and its columns
//! (`name type`, with `PK` and `FK -> target` markers), and the number of user-defined types
//! of each kind. Meant to be skimmed by a person, unlike [`super::schema`], which is written
//! for the model.

use std::fmt;

use crate::snapshot::{Relation, RelationKind, Snapshot};
use crate::text::counted;

/// The summary of `snapshot`.
pub fn summary(snapshot: &Snapshot) -> String {
    Summary(snapshot).to_string()
}

/// [`summary`] as a `Display`.
pub struct Summary<'a>(pub &'a Snapshot);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.0;
        let types = &snapshot.types;
        writeln!(
            f,
            "database {} as {}, PostgreSQL {}, snapshot format {}",
            snapshot.database,
            snapshot.role,
            server_version(snapshot.server_version_num),
            snapshot.format_version
        )?;
        writeln!(f, "fingerprint {}", snapshot.fingerprint)?;
        writeln!(
            f,
            "{}, {}; types: {}, {}, {}, {}",
            counted(snapshot.schemas.len(), "schema", "schemas"),
            counted(snapshot.relations.len(), "relation", "relations"),
            counted(types.enums.len(), "enum", "enums"),
            counted(types.domains.len(), "domain", "domains"),
            counted(types.composites.len(), "composite", "composites"),
            counted(types.ranges.len(), "range", "ranges"),
        )?;
        for (schema, comment, relations) in snapshot.relations_by_schema() {
            writeln!(f)?;
            write!(f, "schema {schema}")?;
            write_comment(f, comment)?;
            writeln!(f)?;
            if relations.is_empty() {
                writeln!(f, "  (no relations)")?;
            }
            for relation in relations {
                write_relation(f, relation)?;
            }
        }
        Ok(())
    }
}

fn write_relation(f: &mut fmt::Formatter<'_>, relation: &Relation) -> fmt::Result {
    write!(
        f,
        "  {} {}.{}",
        relation.kind, relation.schema, relation.name
    )?;
    match relation.row_estimate {
        Some(rows) => write!(f, ", ~{}", counted(rows, "row", "rows"))?,
        None if relation.kind == RelationKind::View => {}
        None => write!(f, ", rows unknown")?,
    }
    if let Some(partitions) = &relation.partitions {
        write!(
            f,
            ", {}",
            counted(partitions.len(), "partition", "partitions")
        )?;
    }
    if let Some(server) = &relation.foreign_server {
        write!(f, ", server {server}")?;
    }
    write_comment(f, relation.comment.as_deref())?;
    writeln!(f)?;
    for column in &relation.columns {
        write!(f, "    {} {}", column.name, column.data_type)?;
        if relation
            .primary_key
            .as_ref()
            .is_some_and(|pk| pk.columns.contains(&column.name))
        {
            write!(f, " PK")?;
        }
        for fk in &relation.foreign_keys {
            for (i, _) in fk
                .columns
                .iter()
                .enumerate()
                .filter(|(_, name)| **name == column.name)
            {
                let target = &fk.references;
                write!(f, " FK -> {}.{}", target.schema, target.table)?;
                if let Some(target_column) = target.columns.get(i) {
                    write!(f, ".{target_column}")?;
                }
            }
        }
        writeln!(f)?;
    }
    Ok(())
}

/// Longest comment shown, in characters; the summary is meant to be skimmed.
const COMMENT_WIDTH: usize = 80;

/// ` -- comment` on one line, shortened to [`COMMENT_WIDTH`].
fn write_comment(f: &mut fmt::Formatter<'_>, comment: Option<&str>) -> fmt::Result {
    let Some(comment) = comment else {
        return Ok(());
    };
    let words = crate::text::one_line(comment, COMMENT_WIDTH);
    if words.is_empty() {
        return Ok(());
    }
    write!(f, " -- {words}")
}

/// `150020` as `15.20`, `90624` as `9.6.24`.
pub fn server_version(num: i32) -> String {
    if num >= 100_000 {
        format!("{}.{}", num / 10_000, num % 10_000)
    } else {
        format!("{}.{}.{}", num / 10_000, num / 100 % 100, num % 100)
    }
}
