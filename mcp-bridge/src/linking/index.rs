//! A BM25F index over a snapshot's relations: one document per relation (partitions fold into
//! their parent), its fields weighted by how much they say about the relation.
//!
//! | field | weight |
//! | --- | --- |
//! | relation name | 3.0 |
//! | schema name, relation comment, column names | 1.0 |
//! | column comments, enum labels, common values | 0.6 |
//!
//! Common values and enum labels are also kept per column, so a question word that names a
//! stored value ("Berlin") can be shown with the column that holds it.

use std::collections::{HashMap, HashSet};

use crate::snapshot::{Relation, Snapshot};

use super::tokenize::terms;

const NAME: f64 = 3.0;
const PLAIN: f64 = 1.0;
const DETAIL: f64 = 0.6;
/// BM25 saturation.
const K1: f64 = 1.2;
/// BM25 length normalisation; low, since a wide table is not less about its name.
const B: f64 = 0.4;

/// A stored value (common value or enum label) a term was found in.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueHit {
    /// Position of the relation in [`Index::relations`].
    pub doc: usize,
    pub column: String,
    pub value: String,
}

/// The index; `relations` are the indices (into `snapshot.relations`) of its documents.
#[derive(Debug)]
pub struct Index {
    pub relations: Vec<usize>,
    /// term → (document, weighted term frequency)
    postings: HashMap<String, Vec<(usize, f64)>>,
    lengths: Vec<f64>,
    average_length: f64,
    /// term → values holding it
    values: HashMap<String, Vec<ValueHit>>,
    /// term → the highest field weight it has anywhere
    strength: HashMap<String, f64>,
    /// Terms of schema, relation and column names.
    identifiers: HashSet<String>,
    /// term → weighted frequency over the whole database (for routing)
    frequency: HashMap<String, f64>,
    /// Sum of the weighted frequencies.
    total: f64,
}

impl Index {
    /// Indexes `relations` (indices into `snapshot.relations`). `labels` gives the enum labels
    /// of a column's type.
    pub fn new<'a>(
        snapshot: &'a Snapshot,
        relations: &[usize],
        labels: &dyn Fn(&str) -> Option<&'a [String]>,
    ) -> Index {
        let mut postings: HashMap<String, Vec<(usize, f64)>> = HashMap::new();
        let mut values: HashMap<String, Vec<ValueHit>> = HashMap::new();
        let mut strength: HashMap<String, f64> = HashMap::new();
        let mut lengths = Vec::with_capacity(relations.len());
        let mut identifiers: HashSet<String> = HashSet::new();
        let mut frequency: HashMap<String, f64> = HashMap::new();
        for (doc, &i) in relations.iter().enumerate() {
            let relation = &snapshot.relations[i];
            let mut tf: HashMap<String, f64> = HashMap::new();
            let mut length = 0.0;
            let mut add = |text: &str, weight: f64, tf: &mut HashMap<String, f64>| {
                for term in terms(text) {
                    *tf.entry(term.clone()).or_default() += weight;
                    let s = strength.entry(term).or_default();
                    *s = s.max(weight);
                    length += weight;
                }
            };
            identifiers.extend(terms(&relation.name));
            identifiers.extend(terms(&relation.schema));
            add(&relation.name, NAME, &mut tf);
            add(&relation.schema, PLAIN, &mut tf);
            if let Some(comment) = &relation.comment {
                add(comment, PLAIN, &mut tf);
            }
            for column in &relation.columns {
                identifiers.extend(terms(&column.name));
                add(&column.name, PLAIN, &mut tf);
                if let Some(comment) = &column.comment {
                    add(comment, DETAIL, &mut tf);
                }
                for value in column_values(relation, column, labels) {
                    add(value, DETAIL, &mut tf);
                    for term in terms(value) {
                        let hits = values.entry(term).or_default();
                        if hits.len() < 32
                            && !hits.iter().any(|h| {
                                h.doc == doc && h.column == column.name && h.value == value
                            })
                        {
                            hits.push(ValueHit {
                                doc,
                                column: column.name.clone(),
                                value: value.to_string(),
                            });
                        }
                    }
                }
            }
            for (term, weight) in tf {
                *frequency.entry(term.clone()).or_default() += weight;
                postings.entry(term).or_default().push((doc, weight));
            }
            lengths.push(length);
        }
        let average_length = if lengths.is_empty() {
            1.0
        } else {
            (lengths.iter().sum::<f64>() / lengths.len() as f64).max(1.0)
        };
        let total = frequency.values().sum();
        Index {
            identifiers,
            frequency,
            total,
            relations: relations.to_vec(),
            postings,
            lengths,
            average_length,
            values,
            strength,
        }
    }

    /// BM25F score of each document for the question's terms (0 where nothing matched).
    pub fn scores(&self, question_terms: &[String]) -> Vec<f64> {
        let n = self.relations.len() as f64;
        let mut scores = vec![0.0; self.relations.len()];
        let mut seen = std::collections::HashSet::new();
        for term in question_terms {
            if !seen.insert(term) {
                continue;
            }
            let Some(list) = self.postings.get(term) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let norm = 1.0 - B + B * self.lengths[doc] / self.average_length;
                scores[doc] += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
            }
        }
        scores
    }

    /// The stored values that hold one of the terms.
    pub fn value_hits(&self, question_terms: &[String]) -> Vec<&ValueHit> {
        let mut out: Vec<&ValueHit> = Vec::new();
        for term in question_terms {
            for hit in self.values.get(term).into_iter().flatten() {
                if !out.contains(&hit) {
                    out.push(hit);
                }
            }
        }
        out
    }

    /// Whether a term is part of some schema, relation or column name.
    pub fn is_identifier(&self, term: &str) -> bool {
        self.identifiers.contains(term)
    }

    /// Weighted frequency of a term over the whole database.
    pub fn frequency(&self, term: &str) -> f64 {
        self.frequency.get(term).copied().unwrap_or(0.0)
    }

    /// Sum of all weighted frequencies.
    pub fn total(&self) -> f64 {
        self.total
    }

    /// How strongly this database knows a term: the highest field weight it appears with,
    /// 0 when it does not.
    pub fn strength(&self, term: &str) -> f64 {
        self.strength.get(term).copied().unwrap_or(0.0)
    }

    /// Every term with its strength ([`Index::strength`]).
    pub fn strengths(&self) -> impl Iterator<Item = (&str, f64)> {
        self.strength.iter().map(|(t, &s)| (t.as_str(), s))
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.relations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
    }
}

/// The enum labels of a column's type, else its common values.
fn column_values<'a>(
    _relation: &'a Relation,
    column: &'a crate::snapshot::Column,
    labels: &dyn Fn(&str) -> Option<&'a [String]>,
) -> Vec<&'a str> {
    if let Some(labels) = labels(&column.data_type) {
        return labels.iter().map(String::as_str).collect();
    }
    column
        .stats
        .as_ref()
        .and_then(|s| s.common_values.as_deref())
        .map(|values| values.iter().take(16).map(|v| v.value.as_str()).collect())
        .unwrap_or_default()
}
