//! Routing a question among databases from their snapshots and descriptions.
//!
//! Each question term counts for a database by how strongly that database knows it (the
//! highest field weight it appears with: a relation name counts more than a column comment;
//! a word of the configured description counts as a name) times how rare the term is among
//! the databases (a word every database knows decides nothing). Chinese and other scripts
//! count through the same terms as the index (CJK bigrams).
//!
//! The best database is chosen when it leads the second by [`MARGIN`]; otherwise the caller
//! gets the ranked candidates (to ask the model, or to answer `AMBIGUOUS_QUERY`).

use std::collections::HashSet;

use super::tokenize::terms;
use super::Linker;

/// The best score must be at least this multiple of the second's to be chosen alone.
pub const MARGIN: f64 = 1.25;
/// Weight of a description word.
const DESCRIPTION: f64 = 3.0;

/// One database to route among.
pub struct Target<'a, 'b> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub linker: &'a Linker<'b>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub database: String,
    pub score: f64,
}

/// The outcome of routing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Routing {
    /// The database chosen, when one is clearly ahead.
    pub chosen: Option<String>,
    /// Every database, best first.
    pub candidates: Vec<Candidate>,
}

pub fn route(question: &str, targets: &[Target<'_, '_>]) -> Routing {
    let question_terms: Vec<String> = {
        let mut seen = HashSet::new();
        terms(question)
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect()
    };
    let descriptions: Vec<HashSet<String>> = targets
        .iter()
        .map(|t| {
            t.description
                .map(|d| terms(d).into_iter().collect())
                .unwrap_or_default()
        })
        .collect();
    let strength = |i: usize, term: &str| -> f64 {
        let s = targets[i].linker.index().strength(term);
        if descriptions[i].contains(term) {
            s.max(DESCRIPTION)
        } else {
            s
        }
    };
    let n = targets.len() as f64;
    let mut scores = vec![0.0; targets.len()];
    for term in &question_terms {
        let df = (0..targets.len())
            .filter(|&i| strength(i, term) > 0.0)
            .count() as f64;
        if df == 0.0 {
            continue;
        }
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        for (i, score) in scores.iter_mut().enumerate() {
            *score += idf * strength(i, term);
        }
    }
    let mut candidates: Vec<Candidate> = targets
        .iter()
        .zip(&scores)
        .map(|(t, &score)| Candidate {
            database: t.name.to_string(),
            score: (score * 1000.0).round() / 1000.0,
        })
        .collect();
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.database.cmp(&b.database))
    });
    let chosen = match candidates.as_slice() {
        [only] if only.score > 0.0 => Some(only.database.clone()),
        [first, second, ..] if first.score > 0.0 && first.score >= second.score * MARGIN => {
            Some(first.database.clone())
        }
        _ => None,
    };
    Routing { chosen, candidates }
}
