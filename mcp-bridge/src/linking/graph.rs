//! The join graph of a snapshot: an edge between two relations for each foreign key (either
//! direction), between a view and each relation its query reads, and — where a table has no
//! foreign key on a column — between it and the one table whose single-column primary key has
//! that column's name and type ([`inferred_parents`]: `journal_id` in a partitioned line table
//! without foreign keys, to `journals.journal_id`). Shortest paths over it connect the
//! relations a question names.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::snapshot::Snapshot;

use super::tokenize::is_cjk;

/// Adjacency over documents (positions in the linker's relation list).
#[derive(Debug, Default)]
pub struct Graph {
    edges: Vec<Vec<usize>>,
    /// The relations each document references through its foreign keys (its parents).
    references: Vec<Vec<usize>>,
}

impl Graph {
    /// `docs` are indices into `snapshot.relations`; `folded` maps a partition's
    /// `(schema, name)` to the document of its parent; `inferred` is [`inferred_keys`] of
    /// `docs`.
    pub fn new(
        snapshot: &Snapshot,
        docs: &[usize],
        folded: &HashMap<(String, String), usize>,
        inferred: &[Vec<(usize, usize)>],
    ) -> Graph {
        let by_name: HashMap<(&str, &str), usize> = docs
            .iter()
            .enumerate()
            .map(|(doc, &i)| {
                let r = &snapshot.relations[i];
                ((r.schema.as_str(), r.name.as_str()), doc)
            })
            .collect();
        let find = |schema: &str, name: &str| -> Option<usize> {
            by_name
                .get(&(schema, name))
                .copied()
                .or_else(|| folded.get(&(schema.to_string(), name.to_string())).copied())
        };
        let mut edges: Vec<HashSet<usize>> = vec![HashSet::new(); docs.len()];
        let mut references: Vec<Vec<usize>> = vec![Vec::new(); docs.len()];
        // an edge both ways, and `target` among what `doc` references
        let mut connect = |doc: usize, target: usize| {
            if target != doc {
                edges[doc].insert(target);
                edges[target].insert(doc);
                if !references[doc].contains(&target) {
                    references[doc].push(target);
                }
            }
        };
        for (doc, &i) in docs.iter().enumerate() {
            let relation = &snapshot.relations[i];
            for fk in &relation.foreign_keys {
                if let Some(target) = find(&fk.references.schema, &fk.references.table) {
                    connect(doc, target);
                }
            }
            for &(_, target) in &inferred[doc] {
                connect(doc, target);
            }
            if let Some(definition) = &relation.definition {
                for (schema, name) in referenced_names(definition, &relation.schema) {
                    if let Some(target) = find(&schema, &name) {
                        connect(doc, target);
                    }
                }
            }
        }
        let edges = edges
            .into_iter()
            .map(|set| {
                let mut v: Vec<usize> = set.into_iter().collect();
                v.sort_unstable();
                v
            })
            .collect();
        Graph { edges, references }
    }

    /// The relations `doc` references (foreign keys, or what a view reads).
    pub fn references(&self, doc: usize) -> &[usize] {
        self.references.get(doc).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn neighbours(&self, doc: usize) -> &[usize] {
        self.edges.get(doc).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A shortest path (inner nodes only) from any node of `from` to `to`, of at most
    /// `max_hops` edges; `None` when there is none.
    pub fn path_from_set(
        &self,
        from: &HashSet<usize>,
        to: usize,
        max_hops: usize,
    ) -> Option<Vec<usize>> {
        if from.contains(&to) {
            return Some(Vec::new());
        }
        let mut previous: HashMap<usize, usize> = HashMap::new();
        let mut depth: HashMap<usize, usize> = HashMap::new();
        let mut queue: VecDeque<usize> = VecDeque::new();
        let mut starts: Vec<usize> = from.iter().copied().collect();
        starts.sort_unstable();
        for s in starts {
            depth.insert(s, 0);
            queue.push_back(s);
        }
        while let Some(node) = queue.pop_front() {
            let d = depth.get(&node).copied().unwrap_or(0);
            if d >= max_hops {
                continue;
            }
            for &next in self.neighbours(node) {
                if depth.contains_key(&next) {
                    continue;
                }
                depth.insert(next, d + 1);
                previous.insert(next, node);
                if next == to {
                    let mut inner = Vec::new();
                    let mut at = node;
                    while !from.contains(&at) {
                        inner.push(at);
                        at = match previous.get(&at) {
                            Some(&p) => p,
                            None => break,
                        };
                    }
                    inner.reverse();
                    return Some(inner);
                }
                queue.push_back(next);
            }
        }
        None
    }
}

/// Single-column primary keys by column name: `name → [(doc, type)]`.
type Keyed<'a> = HashMap<&'a str, Vec<(usize, &'a str)>>;

fn primary_key_names<'a>(snapshot: &'a Snapshot, docs: &[usize]) -> Keyed<'a> {
    let mut keyed: Keyed<'a> = HashMap::new();
    for (doc, &i) in docs.iter().enumerate() {
        let r = &snapshot.relations[i];
        let Some([column]) = r.primary_key.as_ref().map(|k| k.columns.as_slice()) else {
            continue;
        };
        if let Some(c) = r.columns.iter().find(|c| &c.name == column) {
            keyed
                .entry(c.name.as_str())
                .or_default()
                .push((doc, c.data_type.as_str()));
        }
    }
    keyed
}

/// Whether a column's name is specific enough to stand for a key of another table: a
/// `…_id`, `…_no`, `…_code` or `…_key` name (not a bare `id`, `code`, `no`).
fn key_like(name: &str) -> bool {
    let lower = name.to_lowercase();
    ["_id", "_no", "_code", "_key", "_nr", "_num"]
        .iter()
        .any(|suffix| lower.len() > suffix.len() && lower.ends_with(suffix))
}

/// Words a table's name may add to its key's: `po_hdr` is the table of `po_id`.
const TABLE_WORDS: &[&str] = &["hdr", "header", "master", "main", "base", "list", "table"];

/// Whether a key-like column's name, without its suffix, names the table: every word of the
/// table's name (but [`TABLE_WORDS`]) is a word of the column's (abbreviations expanded):
/// `journal_id` and `journals`, `emp_id` and `employees`, `po_id` and `po_hdr` — but not
/// `so_id` and `sales_orders_archive` (an archive reusing the order's key is not its parent).
fn names_the_table(column: &str, table: &str) -> bool {
    let Some((prefix, _)) = column.rsplit_once('_') else {
        return false;
    };
    let said = super::tokenize::terms(prefix);
    let named: Vec<String> = super::tokenize::terms(table)
        .into_iter()
        .filter(|t| !TABLE_WORDS.contains(&t.as_str()))
        .collect();
    !named.is_empty() && named.iter().all(|t| said.contains(t))
}

/// Per document (position in `docs`, indices into `snapshot.relations`), its inferred keys:
/// `(column index, target document)`, see [`inferred_parents`]. The graph joins along them;
/// the schema text shows them on their column.
pub fn inferred_keys(snapshot: &Snapshot, docs: &[usize]) -> Vec<Vec<(usize, usize)>> {
    let keyed = primary_key_names(snapshot, docs);
    (0..docs.len())
        .map(|doc| inferred_parents(snapshot, docs, &keyed, doc))
        .collect()
}

/// The tables `doc` joins to by name although no foreign key says so: for each of its columns
/// that no foreign key of its covers and that is not its own single-column primary key, with
/// a key-like name ([`key_like`]), the one *other*
/// table whose single-column primary key has that name and the same type, and whose name the
/// column's names ([`names_the_table`]); none when several tables have such a key (the name is
/// then no evidence). As `(column index, target document)`.
fn inferred_parents(
    snapshot: &Snapshot,
    docs: &[usize],
    keyed: &Keyed<'_>,
    doc: usize,
) -> Vec<(usize, usize)> {
    let relation = &snapshot.relations[docs[doc]];
    let covered: HashSet<&str> = relation
        .foreign_keys
        .iter()
        .flat_map(|fk| fk.columns.iter().map(String::as_str))
        .collect();
    // a table's own key is what others reference, not a reference: `customer_sites.site_id`
    // keys the customer's site, whatever `ref.sites` calls its key
    let own_key: Option<&str> = match relation.primary_key.as_ref().map(|k| k.columns.as_slice()) {
        Some([column]) => Some(column.as_str()),
        _ => None,
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (position, column) in relation.columns.iter().enumerate() {
        if covered.contains(column.name.as_str())
            || own_key == Some(column.name.as_str())
            || !key_like(&column.name)
        {
            continue;
        }
        let Some(owners) = keyed.get(column.name.as_str()) else {
            continue;
        };
        let others: Vec<(usize, &str)> =
            owners.iter().copied().filter(|(d, _)| *d != doc).collect();
        if let [(target, data_type)] = others.as_slice() {
            if *data_type == column.data_type
                && names_the_table(&column.name, &snapshot.relations[docs[*target]].name)
            {
                out.push((position, *target));
            }
        }
    }
    out
}

/// The `(schema, name)` pairs a view's query may read: every `a.b` identifier pair, and every
/// bare identifier taken in the view's own schema and in `public` (the caller keeps those
/// that name a relation). Quoted identifiers keep their case.
pub fn referenced_names(definition: &str, own_schema: &str) -> Vec<(String, String)> {
    let mut idents: Vec<(String, usize, usize)> = Vec::new(); // (name, start, end)
    let chars: Vec<char> = definition.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // skip string literals
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let start = i;
            let mut name = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    break;
                }
                name.push(chars[i]);
                i += 1;
            }
            i += 1;
            idents.push((name, start, i));
        } else if c.is_alphabetic() || c == '_' || is_cjk(c) {
            let start = i;
            let mut name = String::new();
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                name.extend(chars[i].to_lowercase());
                i += 1;
            }
            idents.push((name, start, i));
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (k, (name, _, end)) in idents.iter().enumerate() {
        if let Some((next, start, _)) = idents.get(k + 1) {
            if *start == end + 1 && chars.get(*end) == Some(&'.') {
                out.push((name.clone(), next.clone()));
            }
        }
        out.push((own_schema.to_string(), name.clone()));
        if own_schema != "public" {
            out.push(("public".to_string(), name.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_table() {
        assert!(names_the_table("journal_id", "journals"));
        assert!(names_the_table("emp_id", "employees"));
        assert!(names_the_table("po_id", "po_hdr"));
        assert!(!names_the_table("so_id", "sales_orders_archive"));
        assert!(!names_the_table("journal_id", "journal_archive"));
        assert!(!names_the_table("id", "journals"));
    }

    #[test]
    fn names_a_view_reads() {
        let names = referenced_names(
            "SELECT o.id FROM shop.orders o JOIN \"Odd Name\" x ON x.id = o.id WHERE o.s = 'a.b'",
            "shop",
        );
        assert!(names.contains(&("shop".into(), "orders".into())));
        assert!(names.contains(&("shop".into(), "Odd Name".into())));
        assert!(!names.contains(&("a".into(), "b".into())));
    }
}
