//! Routing a question among databases from their snapshots and descriptions.
//!
//! Resource selection by query likelihood: each database is a bag of the weighted terms of its
//! index (names count more than comments, see [`super::index`]) plus its configured
//! description; a database's score is the log-probability of the question's terms under it,
//! Dirichlet-smoothed with all databases together as the background. A term no database knows
//! is ignored; a term every database knows still favours the database where it is a larger
//! share of the whole (a focused database over one where it is incidental). Chinese and other
//! scripts count through the same terms as the index (CJK bigrams).
//!
//! The best database is chosen when its log-likelihood leads the second's by [`MARGIN`] (the
//! offline routing figure of `pg-nlq-bridge eval`); it is *decided* — the pipeline takes it
//! without asking the model — only when it leads by [`DECIDE_MARGIN`]. Otherwise the caller
//! gets the ranked candidates (to ask the model, or to answer `AMBIGUOUS_QUERY`).

use std::collections::HashSet;

use super::tokenize::terms;
use super::Linker;

/// The best log-likelihood must lead the second's by this much (e^0.3: about 1.35 times as
/// likely) to be chosen alone. Tuned on the fixtures' 378 phrasings (`examples/route_variants.rs`):
/// a larger margin turns few wrong choices into undecided ones and loses right ones.
pub const MARGIN: f64 = 0.3;
/// The lead (in log-likelihood) with which the pipeline takes the best database without
/// asking the model. Chosen at [`MARGIN`], lexical routing is wrong on about a quarter of the
/// fixtures' English questions (most could be asked of any of the three: "How many orders were
/// placed in 2024?"); at a lead of 10 it decided 58 of the 378 phrasings, 57 rightly (`make
/// eval`, the routing table's "decided" columns). A silent wrong database costs more than one
/// routing call.
pub const DECIDE_MARGIN: f64 = 10.0;
/// Weight of a description word: ten relation names. The description is the operator's own
/// summary of what a database is for, the most distinctive text routing has.
const DESCRIPTION: f64 = 30.0;
/// Dirichlet smoothing mass: small, so a term's share in a database counts more than the
/// database's size.
const MU: f64 = 50.0;

/// One database to route among.
pub struct Target<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub linker: &'a Linker,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    pub database: String,
    pub score: f64,
}

/// The outcome of routing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Routing {
    /// The database chosen, when one is ahead by [`MARGIN`].
    pub chosen: Option<String>,
    /// The database the pipeline takes without asking the model: ahead by [`DECIDE_MARGIN`]
    /// (or the only one).
    pub decided: Option<String>,
    /// Every database, best first.
    pub candidates: Vec<Candidate>,
}

pub fn route(question: &str, targets: &[Target<'_>]) -> Routing {
    let mut seen = HashSet::new();
    let question_terms: Vec<String> = terms(question)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect();
    let descriptions: Vec<Vec<String>> = targets
        .iter()
        .map(|t| t.description.map(terms).unwrap_or_default())
        .collect();
    let frequency = |i: usize, term: &str| -> f64 {
        let described = descriptions[i].iter().filter(|t| *t == term).count() as f64;
        targets[i].linker.index().frequency(term) + DESCRIPTION * described
    };
    let lengths: Vec<f64> = (0..targets.len())
        .map(|i| targets[i].linker.index().total() + DESCRIPTION * descriptions[i].len() as f64)
        .collect();
    let collection: f64 = lengths.iter().sum::<f64>().max(1.0);
    let mut scores = vec![0.0; targets.len()];
    let mut evidence = false;
    for term in &question_terms {
        let in_each: Vec<f64> = (0..targets.len()).map(|i| frequency(i, term)).collect();
        let background = in_each.iter().sum::<f64>() / collection;
        if background == 0.0 {
            continue;
        }
        evidence = true;
        for (i, score) in scores.iter_mut().enumerate() {
            *score += ((in_each[i] + MU * background) / (lengths[i] + MU)).ln();
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
        [only] => Some(only.database.clone()),
        [first, second, ..] if evidence && first.score - second.score >= MARGIN => {
            Some(first.database.clone())
        }
        _ => None,
    };
    let decided = match candidates.as_slice() {
        [only] => Some(only.database.clone()),
        [first, second, ..] if evidence && first.score - second.score >= DECIDE_MARGIN => {
            Some(first.database.clone())
        }
        _ => None,
    };
    Routing {
        chosen,
        decided,
        candidates,
    }
}
