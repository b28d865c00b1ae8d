//! Schema linking: which part of a database's schema a question needs, rendered under a token
//! budget, and which database a question is about. Backend-free: it works on the
//! [`Snapshot`] the bridge already holds, and makes no model call.
//!
//! - [`tokenize`]: identifier-aware terms (snake_case and camelCase split, stems,
//!   abbreviations, CJK bigrams);
//! - [`index`]: BM25F over each relation's names, comments, enum labels and common values;
//! - [`graph`]: the join graph (foreign keys, views to what they read) and shortest paths;
//! - [`render`]: token counting and the notes on what was left out;
//! - [`route`]: scoring databases for a question.
//!
//! [`Linker::link`] ranks the relations, keeps the best lexical matches as seeds, adds the
//! relations on the shortest join paths between them and the relations they reference, then
//! renders them (with [`crate::render::schema`]'s format) in that order of priority until the budget
//! is spent. When the whole schema fits the budget, it is sent whole. What was cut is named in
//! the text; [`Linker::widen`] is the retry with a larger budget after `UNDEFINED_OBJECT`.
//!
//! (About 690 lines: the [`Linker`] — ranking, seeds, join paths, the fact prior and rendering
//! under the budget — is one algorithm whose steps share its state; its parts that stand alone
//! are the submodules.)

pub mod graph;
pub mod index;
pub mod render;
pub mod route;
pub mod select;
pub mod tokenize;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::render::schema::{self as context, InferredKeys, TypeIndex};
use crate::snapshot::{Relation, Snapshot};

use self::graph::Graph;
use self::index::Index;
pub use self::render::TokenCounter;
use self::select::Script;

pub use crate::settings::DEFAULT_MAX_TOKENS;
/// Seeds are the relations scoring at least this share of the best score …
const SEED_RATIO: f64 = 0.3;
/// … at most this many.
const MAX_SEEDS: usize = 8;
/// Seeds scoring at least this share of the best score (and the model's choices) are strong:
/// the relations they reference follow them at once.
const STRONG_RATIO: f64 = 0.6;
/// Further lexical matches considered after the seeds and their join paths: at least this
/// share of the best score …
const EXTRA_RATIO: f64 = 0.12;
/// … at most this many.
const MAX_EXTRA: usize = 8;
/// Longest join path (edges) added between two seeds.
const MAX_PATH_HOPS: usize = 3;
/// Relations added as seeds because they hold a value the question names, at most.
const MAX_VALUE_SEEDS: usize = 4;
/// Value hints shown at most.
const MAX_VALUE_HINTS: usize = 12;
/// Question words (stems) that ask for a measure over transactions: "top customers", "best-selling
/// items", "revenue", "who spent the most", "customers who ordered", "return rate". Such a
/// question needs the fact table the measure is taken from even when it names only a dimension.
const MEASURE_WORDS: &[&str] = &[
    "top",
    "most",
    "least",
    "best",
    "worst",
    "highest",
    "lowest",
    "biggest",
    "largest",
    "total",
    "revenue",
    "sale",
    "sell",
    "spend",
    "buy",
    "order",
    "rate",
    "share",
    "ratio",
    "percentage",
    "turnover",
    "volume",
];
/// The terms of the transaction tables measures come from (orders and sales, and their lines).
const FACT_TERMS: &[&str] = &["order", "sale"];
/// Fact tables added for a measure question, at most.
const MAX_FACT_SEEDS: usize = 2;
/// Words of trade: with them, the sales and order facts count wherever they are in the graph.
const TRADE_WORDS: &[&str] = &["revenue", "sale", "sell", "spend", "buy", "order"];
/// Without them, a fact table counts only this close (join edges) to a seed.
const FACT_HOPS: usize = 2;

pub use crate::settings::ContextSettings;

/// Why a relation is in the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The whole schema fits.
    Whole,
    /// Named by the question (lexical match).
    Matched,
    /// On a join path between matched relations.
    JoinPath,
    /// Referenced by a matched relation (foreign key, or read by a matched view).
    Referenced,
    /// A weaker lexical match.
    Related,
    /// Asked for by a retry ([`Linker::widen`]).
    Asked,
    /// Chosen by the model from the catalogue ([`Linker::link_selected`]).
    Selected,
    /// No lexical evidence: the best-connected relations.
    Central,
}

/// The schema context for one question.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkedContext {
    /// The text for the prompt's schema block.
    pub text: String,
    /// The relations shown, as `schema.name`, in priority order.
    pub relations: Vec<String>,
    /// Why each shown relation is there (same order as `relations`).
    pub reasons: Vec<Reason>,
    /// Relations chosen but cut to fit the budget.
    pub cut: Vec<String>,
    /// Lexical scores of the best matches, best first.
    pub matches: Vec<(String, f64)>,
    /// Tokens of `text`.
    pub tokens: usize,
    /// Tokens of the whole schema rendered the same way.
    pub whole_schema_tokens: usize,
    /// Whether the whole schema was sent.
    pub whole: bool,
    /// The budget it was rendered under.
    pub budget: usize,
    /// The tokenizer encoding counted with.
    pub encoding: &'static str,
}

/// A snapshot prepared for linking: build once per snapshot (fingerprint), link many
/// questions.
pub struct Linker {
    snapshot: Arc<Snapshot>,
    index: Index,
    graph: Graph,
    counter: TokenCounter,
    /// Tokens of each relation rendered alone (an upper bound of what it adds).
    cost: Vec<usize>,
    whole_text: String,
    whole_tokens: usize,
    /// `schema.name` of each document.
    names: Vec<String>,
    /// The transaction tables, most likely first ([`Linker::fact_tables`]).
    facts: Vec<usize>,
    /// Letters of the names and comments per script ([`select::script_counts`]).
    scripts: BTreeMap<Script, usize>,
    /// The last model-selection catalogue built, with its budget ([`Linker::catalogue`]).
    catalogue: std::sync::Mutex<Option<(usize, select::Catalogue)>>,
    /// The keys no foreign key declares, shown on their columns.
    keys: InferredKeys,
}

impl Linker {
    pub fn new(snapshot: Arc<Snapshot>, counter: TokenCounter) -> Linker {
        let snap: &Snapshot = &snapshot;
        // Partitions are shown as their parent, so they are not documents of their own.
        let mut parent_of: HashMap<(String, String), (String, String)> = HashMap::new();
        for r in &snap.relations {
            for p in r.partitions.iter().flatten() {
                parent_of.insert(
                    (p.schema.clone(), p.name.clone()),
                    (r.schema.clone(), r.name.clone()),
                );
            }
        }
        let mut docs: Vec<usize> = (0..snap.relations.len())
            .filter(|&i| {
                let r = &snap.relations[i];
                !parent_of.contains_key(&(r.schema.clone(), r.name.clone()))
            })
            .collect();
        docs.sort_by(|&a, &b| {
            let (ra, rb) = (&snap.relations[a], &snap.relations[b]);
            (&ra.schema, &ra.name).cmp(&(&rb.schema, &rb.name))
        });
        let doc_of: HashMap<(String, String), usize> = docs
            .iter()
            .enumerate()
            .map(|(doc, &i)| {
                let r = &snap.relations[i];
                ((r.schema.clone(), r.name.clone()), doc)
            })
            .collect();
        let folded: HashMap<(String, String), usize> = parent_of
            .iter()
            .filter_map(|(part, parent)| doc_of.get(parent).map(|&d| (part.clone(), d)))
            .collect();

        let types = TypeIndex::new(snap);
        let labels = |t: &str| types.enum_labels(t);
        let index = Index::new(snap, &docs, &labels);
        let inferred = graph::inferred_keys(snap, &docs);
        let graph = Graph::new(snap, &docs, &folded, &inferred);
        let keys = InferredKeys::from_inferred(snap, &docs, &inferred);
        let cost = docs
            .iter()
            .map(|&i| counter.count(&context::render(snap, &[&snap.relations[i]], &keys)))
            .collect();
        let all: Vec<&Relation> = docs.iter().map(|&i| &snap.relations[i]).collect();
        let whole_text = context::render(snap, &all, &keys);
        let whole_tokens = counter.count(&whole_text);
        let names = docs
            .iter()
            .map(|&i| {
                let r = &snap.relations[i];
                format!("{}.{}", r.schema, r.name)
            })
            .collect();
        let facts = Self::fact_tables(snap, &index);
        let mut scripts: BTreeMap<Script, usize> = BTreeMap::new();
        let mut count = |text: &str| {
            for (script, n) in select::script_counts(text) {
                *scripts.entry(script).or_insert(0) += n;
            }
        };
        for &i in &docs {
            let r = &snap.relations[i];
            count(&r.schema);
            count(&r.name);
            count(r.comment.as_deref().unwrap_or(""));
            for c in &r.columns {
                count(&c.name);
                count(c.comment.as_deref().unwrap_or(""));
            }
        }
        Linker {
            facts,
            scripts,
            catalogue: std::sync::Mutex::new(None),
            keys,
            snapshot,
            index,
            graph,
            counter,
            cost,
            whole_text,
            whole_tokens,
            names,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn counter(&self) -> TokenCounter {
        self.counter
    }

    /// Whether `name` (`schema.name`) is one of the relations linked over.
    pub fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// Tokens of the whole schema.
    pub fn whole_schema_tokens(&self) -> usize {
        self.whole_tokens
    }

    /// The relations (`schema.name`) ranked by lexical score for `question`, best first, with
    /// their scores; only those that matched at all.
    pub fn rank(&self, question: &str) -> Vec<(String, f64)> {
        let terms = tokenize::terms(question);
        self.ranked(&terms)
            .into_iter()
            .map(|(doc, score)| (self.names[doc].clone(), score))
            .collect()
    }

    fn ranked(&self, terms: &[String]) -> Vec<(usize, f64)> {
        let scores = self.index.scores(terms);
        let mut ranked: Vec<(usize, f64)> = scores
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked
    }

    /// The schema context for `question` under `settings.max_tokens`.
    pub fn link(&self, question: &str, settings: &ContextSettings) -> LinkedContext {
        self.link_inner(question, settings.max_tokens, settings, &[], &[])
    }

    /// The context for a retry after the model used a relation or column that was not shown
    /// (`UNDEFINED_OBJECT`): the budget grows by `settings.widen_factor` per `step` (1 for
    /// the first retry), the relations `previous` had to cut come first, and any relation whose
    /// name appears in `error_message` (or that holds a column of that name) is added.
    pub fn widen(
        &self,
        question: &str,
        previous: &LinkedContext,
        error_message: &str,
        step: u32,
        settings: &ContextSettings,
    ) -> LinkedContext {
        let factor = settings.widen_factor.max(1.0).powi(step.max(1) as i32);
        let budget = (settings.max_tokens as f64 * factor) as usize;
        let mut asked: Vec<usize> = Vec::new();
        let words: HashSet<String> = identifiers(error_message);
        for (doc, name) in self.names.iter().enumerate() {
            let bare = name.split_once('.').map_or(name.as_str(), |(_, n)| n);
            if words.contains(&name.to_lowercase()) || words.contains(&bare.to_lowercase()) {
                asked.push(doc);
            }
        }
        if asked.is_empty() {
            // a column name: every relation that has it
            for (doc, &i) in self.index.relations.iter().enumerate() {
                let r = &self.snapshot.relations[i];
                if r.columns
                    .iter()
                    .any(|c| words.contains(&c.name.to_lowercase()))
                {
                    asked.push(doc);
                }
            }
        }
        for name in previous.relations.iter().chain(&previous.cut) {
            if let Some(doc) = self.names.iter().position(|n| n == name) {
                if !asked.contains(&doc) {
                    asked.push(doc);
                }
            }
        }
        self.link_inner(question, budget, settings, &asked, &[])
    }

    /// The context under `budget`: `asked` first, then `selected` (the model's choice), then
    /// the lexical candidates.
    fn link_inner(
        &self,
        question: &str,
        budget: usize,
        settings: &ContextSettings,
        asked: &[usize],
        selected: &[usize],
    ) -> LinkedContext {
        let terms = tokenize::terms(question);
        let ranked = self.ranked(&terms);
        let matches: Vec<(String, f64)> = ranked
            .iter()
            .take(MAX_SEEDS * 2)
            .map(|&(doc, s)| (self.names[doc].clone(), s))
            .collect();

        if settings.whole_schema_when_it_fits && self.whole_tokens <= budget {
            return LinkedContext {
                text: self.whole_text.clone(),
                relations: self.names.clone(),
                reasons: vec![Reason::Whole; self.names.len()],
                cut: Vec::new(),
                matches,
                tokens: self.whole_tokens,
                whole_schema_tokens: self.whole_tokens,
                whole: true,
                budget,
                encoding: self.counter.encoding,
            };
        }

        let priority = self.priority(&terms, &ranked, asked, selected);
        self.render_within(&terms, &priority, budget, matches)
    }

    /// The candidate relations in order of priority, each with why it is there.
    fn priority(
        &self,
        terms: &[String],
        ranked: &[(usize, f64)],
        asked: &[usize],
        selected: &[usize],
    ) -> Vec<(usize, Reason)> {
        let mut out: Vec<(usize, Reason)> = Vec::new();
        let mut taken: HashSet<usize> = HashSet::new();
        let mut push = |doc: usize, reason: Reason, out: &mut Vec<(usize, Reason)>| {
            if taken.insert(doc) {
                out.push((doc, reason));
            }
        };
        for &doc in asked {
            push(doc, Reason::Asked, &mut out);
        }
        let top = ranked.first().map_or(0.0, |r| r.1);
        let mut seeds: Vec<usize> = ranked
            .iter()
            .filter(|r| r.1 >= top * SEED_RATIO)
            .take(MAX_SEEDS)
            .map(|r| r.0)
            .collect();
        // A question word that is a stored value ("Berlin") is strong evidence for the
        // relation holding it, however low its score: those come right after the best match.
        let mut position = seeds.len().min(1);
        // Only words that name no schema, relation or column: "Berlin", not "items" (which a
        // log table may hold as a value); and no number: "2024" is a date or an amount far more
        // often than a label ("Spring 2024" in a campaign's name).
        let value_terms: Vec<String> = terms
            .iter()
            .filter(|t| !self.index.is_identifier(t))
            .filter(|t| !t.chars().all(|c| c.is_ascii_digit()))
            .cloned()
            .collect();
        // The whole value must be in the question: "sharing" in `data_sharing` is not
        // "share" of a quota.
        for hit in self
            .index
            .value_hits(&value_terms)
            .into_iter()
            .filter(|hit| {
                tokenize::terms(&hit.value)
                    .iter()
                    .all(|t| terms.contains(t))
            })
            .take(MAX_VALUE_SEEDS)
        {
            match seeds.iter().position(|&d| d == hit.doc) {
                Some(i) if i < position => continue,
                Some(i) => {
                    seeds.remove(i);
                }
                None => {}
            }
            seeds.insert(position, hit.doc);
            position += 1;
        }
        // A measure question: the largest transaction tables (name or comment about orders or
        // sales, a measure column), right after the best match.
        if terms.iter().any(|t| MEASURE_WORDS.contains(&t.as_str())) {
            // Words of trade ("revenue", "sold", "ordered") ask for the sales facts wherever
            // they are; a bare measure ("the most late receipts") only for facts near a seed.
            let trade = terms.iter().any(|t| TRADE_WORDS.contains(&t.as_str()));
            let near: HashSet<usize> = seeds.iter().copied().collect();
            let facts: Vec<usize> = self
                .facts
                .iter()
                .copied()
                .filter(|&f| {
                    trade
                        || near.contains(&f)
                        || self.graph.path_from_set(&near, f, FACT_HOPS).is_some()
                })
                .take(MAX_FACT_SEEDS)
                .collect();
            for doc in facts {
                match seeds.iter().position(|&d| d == doc) {
                    Some(i) if i < position => continue,
                    Some(i) => {
                        seeds.remove(i);
                    }
                    None => {}
                }
                seeds.insert(position.min(seeds.len()), doc);
                position += 1;
            }
        }
        let lexical = seeds.len();
        // the model's choice comes before the lexical seeds
        if !selected.is_empty() {
            let mut merged: Vec<usize> = selected.to_vec();
            merged.extend(seeds.iter().filter(|d| !selected.contains(d)));
            seeds = merged;
        }
        let reason = |doc: usize| {
            if selected.contains(&doc) {
                Reason::Selected
            } else {
                Reason::Matched
            }
        };
        // A strong seed's references (the parents its foreign keys name: the header of a line
        // table, the employee behind a sales rep) come right after it, before weaker seeds:
        // a question about lines almost always needs their header.
        let score: HashMap<usize, f64> = ranked.iter().copied().collect();
        let strong = |doc: usize| {
            selected.contains(&doc) || score.get(&doc).is_some_and(|&s| s >= top * STRONG_RATIO)
        };
        // seeds, each followed by the join path that connects it to the ones before
        let mut tree: HashSet<usize> = HashSet::new();
        for &seed in &seeds {
            let path = if tree.is_empty() {
                None
            } else {
                self.graph.path_from_set(&tree, seed, MAX_PATH_HOPS)
            };
            push(seed, reason(seed), &mut out);
            for doc in path.into_iter().flatten() {
                tree.insert(doc);
                push(doc, Reason::JoinPath, &mut out);
            }
            tree.insert(seed);
            if strong(seed) {
                for &parent in self.graph.references(seed) {
                    push(parent, Reason::Referenced, &mut out);
                }
            }
        }
        for &seed in &seeds {
            for &parent in self.graph.references(seed) {
                push(parent, Reason::Referenced, &mut out);
            }
        }
        for &(doc, _) in ranked
            .iter()
            .filter(|r| r.1 >= top * EXTRA_RATIO)
            .skip(lexical)
            .take(MAX_EXTRA)
        {
            push(doc, Reason::Related, &mut out);
        }
        if seeds.is_empty() {
            // Nothing matched (e.g. a question in another language than the names): the
            // best-connected relations, the hubs most questions go through.
            let mut hubs: Vec<usize> = (0..self.names.len()).collect();
            hubs.sort_by(|&a, &b| {
                self.graph
                    .neighbours(b)
                    .len()
                    .cmp(&self.graph.neighbours(a).len())
                    .then(a.cmp(&b))
            });
            for doc in hubs {
                push(doc, Reason::Central, &mut out);
            }
        }
        out
    }

    /// The transaction tables, most likely first: tables with a measure column (an amount, a
    /// quantity, a price, a total, or any numeric column) whose name or comment is about orders
    /// or sales, ranked by that lexical score times the log of their row estimate.
    fn fact_tables(snapshot: &Snapshot, index: &Index) -> Vec<usize> {
        let fact_terms: Vec<String> = FACT_TERMS.iter().map(|t| t.to_string()).collect();
        let scores = index.scores(&fact_terms);
        let mut facts: Vec<(usize, f64)> = scores
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > 0.0)
            .filter_map(|(doc, &s)| {
                let r = &snapshot.relations[index.relations[doc]];
                let table = matches!(
                    r.kind,
                    crate::snapshot::RelationKind::Table
                        | crate::snapshot::RelationKind::PartitionedTable
                );
                let named = tokenize::terms(&r.name)
                    .iter()
                    .chain(
                        r.comment
                            .as_deref()
                            .map(tokenize::terms)
                            .unwrap_or_default()
                            .iter(),
                    )
                    .any(|t| fact_terms.contains(t));
                let measure = r.columns.iter().any(|c| {
                    let t = c.data_type.to_lowercase();
                    let n = c.name.to_lowercase();
                    t.starts_with("numeric")
                        || t.starts_with("money")
                        || t.starts_with("double")
                        || t == "real"
                        || ["amount", "qty", "quantity", "price", "total", "value"]
                            .iter()
                            .any(|m| n.contains(m))
                });
                let rows = r.row_estimate.unwrap_or(0).max(0) as f64;
                (table && named && measure).then(|| (doc, s * (2.0 + rows).ln()))
            })
            .collect();
        facts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        facts.into_iter().map(|f| f.0).collect()
    }

    /// Renders the candidates in priority order while they fit `budget`, with the notes.
    fn render_within(
        &self,
        terms: &[String],
        priority: &[(usize, Reason)],
        budget: usize,
        matches: Vec<(String, f64)>,
    ) -> LinkedContext {
        // Room for the notes (a few tokens per relation named); an exact count follows.
        let mut chosen: Vec<(usize, Reason)> = Vec::new();
        let mut cut: Vec<usize> = Vec::new();
        let mut used = 0usize;
        let reserve = self.notes_reserve(priority.len());
        for &(doc, reason) in priority {
            let cost = self.cost[doc];
            if used + cost + reserve <= budget {
                used += cost;
                chosen.push((doc, reason));
            } else if reason != Reason::Central {
                cut.push(doc);
            }
        }
        loop {
            let context = self.compose(terms, &chosen, &cut, budget, matches.clone());
            if context.tokens <= budget || chosen.is_empty() {
                return context;
            }
            // over: drop the last chosen relation and try again
            if let Some((doc, reason)) = chosen.pop() {
                if reason != Reason::Central {
                    cut.insert(0, doc);
                }
            }
        }
    }

    fn notes_reserve(&self, candidates: usize) -> usize {
        40 + 3 * candidates.min(64)
    }

    fn compose(
        &self,
        terms: &[String],
        chosen: &[(usize, Reason)],
        cut: &[usize],
        budget: usize,
        matches: Vec<(String, f64)>,
    ) -> LinkedContext {
        let mut shown: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        shown.sort_unstable();
        let relations: Vec<&Relation> = shown
            .iter()
            .map(|&doc| &self.snapshot.relations[self.index.relations[doc]])
            .collect();
        let mut text = context::render(&self.snapshot, &relations, &self.keys);

        let shown_set: HashSet<usize> = shown.iter().copied().collect();
        let values: Vec<(String, String)> = self
            .index
            .value_hits(terms)
            .into_iter()
            .filter(|h| shown_set.contains(&h.doc))
            .take(MAX_VALUE_HINTS)
            .map(|h| {
                (
                    format!("{}.{}", self.names[h.doc], h.column),
                    h.value.clone(),
                )
            })
            .collect();
        let cut_names: Vec<String> = cut.iter().map(|&d| self.names[d].clone()).collect();
        let cut_set: HashSet<usize> = cut.iter().copied().collect();
        let others: Vec<String> = (0..self.names.len())
            .filter(|d| !shown_set.contains(d) && !cut_set.contains(d))
            .map(|d| self.names[d].clone())
            .collect();
        let base = self.counter.count(&text);
        let listed = render::Notes {
            values: &values,
            cut: &cut_names,
            others: &others,
            list_others: true,
        }
        .text();
        let notes = if base + self.counter.count(&listed) <= budget {
            listed
        } else {
            render::Notes {
                values: &values,
                cut: &cut_names,
                others: &others,
                list_others: false,
            }
            .text()
        };
        text.push_str(&notes);
        let tokens = self.counter.count(&text);
        LinkedContext {
            text,
            relations: chosen.iter().map(|c| self.names[c.0].clone()).collect(),
            reasons: chosen.iter().map(|c| c.1).collect(),
            cut: cut_names,
            matches,
            tokens,
            whole_schema_tokens: self.whole_tokens,
            whole: false,
            budget,
            encoding: self.counter.encoding,
        }
    }
}

/// Lower-cased identifiers (and `a.b` pairs) in an error message.
fn identifiers(message: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for raw in message.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')) {
        let word = raw.trim_matches('.').to_lowercase();
        if word.is_empty() {
            continue;
        }
        for part in word.split('.') {
            out.insert(part.to_string());
        }
        out.insert(word);
    }
    out
}

#[cfg(test)]
mod tests;
