//! The join graph of a snapshot: an edge between two relations for each foreign key (either
//! direction) and between a view and each relation its query reads. Shortest paths over it
//! connect the relations a question names.

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
    /// `(schema, name)` to the document of its parent.
    pub fn new(
        snapshot: &Snapshot,
        docs: &[usize],
        folded: &HashMap<(String, String), usize>,
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
        for (doc, &i) in docs.iter().enumerate() {
            let relation = &snapshot.relations[i];
            for fk in &relation.foreign_keys {
                if let Some(target) = find(&fk.references.schema, &fk.references.table) {
                    if target != doc {
                        edges[doc].insert(target);
                        edges[target].insert(doc);
                        if !references[doc].contains(&target) {
                            references[doc].push(target);
                        }
                    }
                }
            }
            if let Some(definition) = &relation.definition {
                for (schema, name) in referenced_names(definition, &relation.schema) {
                    if let Some(target) = find(&schema, &name) {
                        if target != doc {
                            edges[doc].insert(target);
                            edges[target].insert(doc);
                            if !references[doc].contains(&target) {
                                references[doc].push(target);
                            }
                        }
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
