//! When the lexical evidence is too weak to choose tables, and what the model is shown to
//! choose them instead (issue 13 item 2).
//!
//! - [`Linker::weakness`]: the evidence is weak when nothing matched, when the question is
//!   written in another script than the schema's names and comments (a Chinese question over
//!   English names: its words cannot meet them), or when the best match is weak: its BM25F
//!   score, in units of the IDF of a term found in one relation only ([`Linker::strength`]),
//!   below [`WEAK_STRENGTH`]. It is asked only when the whole schema does not fit the budget
//!   (else the whole schema is sent and there is nothing to choose).
//! - [`Linker::catalogue`]: a compact list of the schema for that choice: each schema with its
//!   comment, then its relations as `schema.name` with a one-line comment; a schema whose
//!   lines do not fit is folded into one line of names (the largest schemas first), and names
//!   that do not fit even then are counted, not listed.
//! - [`Linker::link_selected`]: the relations the model chose, merged with the lexical
//!   candidates: the chosen ones first, then the lexical seeds, the join paths between all of
//!   them and what they reference, as [`Linker::link`] does. A chosen name the catalogue does
//!   not hold is ignored (the reply is untrusted).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{tokenize, ContextSettings, LinkedContext, Linker};

/// The strength ([`Linker::strength`]) below which the lexical evidence counts as weak. A
/// question word found in one relation's name only scores about 1.5 (a name weighs 3); a word
/// in one column name about 0.9; below 0.5 only comments, values or words most relations share
/// matched.
pub const WEAK_STRENGTH: f64 = 0.5;
/// A script counts as the schema's when at least this share of the schema's letters are in it.
const SCRIPT_SHARE: f64 = 0.1;
/// Relations taken from the model's choice, at most.
pub const MAX_SELECTED: usize = 8;
/// Characters of a relation's comment shown in the catalogue.
const COMMENT_CHARS: usize = 80;

/// Why the lexical evidence is weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weakness {
    /// No relation matched the question's words.
    NoMatch,
    /// The question is in a script the schema's names and comments are not written in.
    OtherScript,
    /// The best match is weaker than [`WEAK_STRENGTH`].
    LowScore,
}

impl Weakness {
    pub fn describe(self) -> &'static str {
        match self {
            Weakness::NoMatch => "no table matched the question's words",
            Weakness::OtherScript => {
                "the question is written in another script than the schema's names"
            }
            Weakness::LowScore => "the best lexical match is weak",
        }
    }
}

/// A writing system, as far as matching words is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Script {
    /// Latin letters (ASCII and the Latin extensions).
    Latin,
    /// Chinese, Japanese, Korean ([`tokenize::is_cjk`]).
    Cjk,
    /// Any other letters (Cyrillic, Greek, Arabic...).
    Other,
}

fn script_of(c: char) -> Option<Script> {
    if tokenize::is_cjk(c) {
        Some(Script::Cjk)
    } else if !c.is_alphabetic() {
        None
    } else if (c as u32) < 0x250 || (0x1E00..=0x1EFF).contains(&(c as u32)) {
        Some(Script::Latin)
    } else {
        Some(Script::Other)
    }
}

/// Letters of `text` per script; a CJK character counts as three letters (it carries about as
/// much as a short word).
pub fn script_counts(text: &str) -> BTreeMap<Script, usize> {
    let mut counts = BTreeMap::new();
    for c in text.chars() {
        if let Some(s) = script_of(c) {
            *counts.entry(s).or_insert(0) += if s == Script::Cjk { 3 } else { 1 };
        }
    }
    counts
}

/// The script most of `text`'s letters are in.
pub fn dominant_script(text: &str) -> Option<Script> {
    script_counts(text)
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(s, _)| s)
}

/// The compact catalogue shown to the model for choosing tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalogue {
    pub text: String,
    /// Tokens of `text`.
    pub tokens: usize,
    /// Schemas shown folded (names only).
    pub folded: Vec<String>,
    /// Relations the catalogue names, as `schema.name`.
    pub listed: usize,
}

impl Linker {
    /// Why the lexical evidence for `question` is too weak to choose tables by, when the whole
    /// schema does not fit `settings`' budget; `None` when it is strong enough or when the
    /// whole schema is sent anyway.
    pub fn weakness(&self, question: &str, settings: &ContextSettings) -> Option<Weakness> {
        if settings.whole_schema_when_it_fits && self.whole_tokens <= settings.max_tokens {
            return None;
        }
        self.evidence(question)
    }

    /// Why the lexical evidence for `question` is weak, whatever the budget; `None`: strong.
    pub fn evidence(&self, question: &str) -> Option<Weakness> {
        if let Some(script) = dominant_script(question) {
            let total: usize = self.scripts.values().sum();
            let share =
                self.scripts.get(&script).copied().unwrap_or(0) as f64 / total.max(1) as f64;
            if share < SCRIPT_SHARE {
                return Some(Weakness::OtherScript);
            }
        }
        match self.strength(question) {
            None => Some(Weakness::NoMatch),
            Some(s) if s < WEAK_STRENGTH => Some(Weakness::LowScore),
            Some(_) => None,
        }
    }

    /// The best lexical score for `question` in units of the IDF of a term that one relation
    /// alone holds (so that it means the same in a schema of 8 relations and of 1,000);
    /// `None` when nothing matched.
    pub fn strength(&self, question: &str) -> Option<f64> {
        let terms = tokenize::terms(question);
        let top = self.ranked(&terms).first()?.1;
        let n = self.index.len() as f64;
        let unique = (1.0 + (n - 0.5) / 1.5).ln();
        Some(top / unique.max(f64::MIN_POSITIVE))
    }

    /// The catalogue of the relations linked over, within `budget` tokens where it can be.
    /// It depends only on the snapshot and the budget, so the last one built is kept (a
    /// thousand-table catalogue costs milliseconds to build and count).
    pub fn catalogue(&self, budget: usize) -> Catalogue {
        let mut kept = self
            .catalogue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((b, catalogue)) = kept.as_ref() {
            if *b == budget {
                return catalogue.clone();
            }
        }
        let catalogue = self.build_catalogue(budget);
        *kept = Some((budget, catalogue.clone()));
        catalogue
    }

    fn build_catalogue(&self, budget: usize) -> Catalogue {
        // schema → its documents, in name order (the documents are sorted by schema, name)
        let mut by_schema: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (doc, &i) in self.index.relations.iter().enumerate() {
            by_schema
                .entry(self.snapshot.relations[i].schema.as_str())
                .or_default()
                .push(doc);
        }
        let schema_line = |schema: &str, n: usize| -> String {
            let comment = self
                .snapshot
                .schemas
                .iter()
                .find(|s| s.name == schema)
                .and_then(|s| s.comment.as_deref())
                .filter(|c| !c.trim().is_empty())
                .map(|c| format!(" — {}", crate::text::one_line(c, COMMENT_CHARS)))
                .unwrap_or_default();
            format!(
                "schema {schema}{comment} ({})\n",
                crate::text::counted(n, "relation", "relations")
            )
        };
        let full = |docs: &[usize]| -> String {
            let mut s = String::new();
            for &doc in docs {
                let r = &self.snapshot.relations[self.index.relations[doc]];
                s.push_str("  ");
                s.push_str(&self.names[doc]);
                if let Some(c) = r.comment.as_deref().filter(|c| !c.trim().is_empty()) {
                    s.push_str(" — ");
                    s.push_str(&crate::text::one_line(c, COMMENT_CHARS));
                }
                s.push('\n');
            }
            s
        };
        let folded_lines = |docs: &[usize]| -> String {
            let names: Vec<&str> = docs.iter().map(|&d| self.names[d].as_str()).collect();
            format!("  {}\n", names.join(", "))
        };
        let mut bodies: Vec<(&str, Vec<usize>, String, bool)> = by_schema
            .iter()
            .map(|(schema, docs)| (*schema, docs.clone(), full(docs), false))
            .collect();
        let compose = |bodies: &[(&str, Vec<usize>, String, bool)]| -> String {
            let mut text = String::new();
            for (schema, docs, body, _) in bodies {
                text.push_str(&schema_line(schema, docs.len()));
                text.push_str(body);
            }
            text
        };
        let mut text = compose(&bodies);
        let mut tokens = self.counter.count(&text);
        // fold the largest schemas first until it fits
        let mut order: Vec<usize> = (0..bodies.len()).collect();
        order.sort_by(|&a, &b| bodies[b].1.len().cmp(&bodies[a].1.len()).then(a.cmp(&b)));
        for &i in &order {
            if tokens <= budget {
                break;
            }
            bodies[i].2 = folded_lines(&bodies[i].1);
            bodies[i].3 = true;
            text = compose(&bodies);
            tokens = self.counter.count(&text);
        }
        // still over: list fewer names of the largest schemas, and count the rest
        let mut listed = self.names.len();
        for &i in &order {
            if tokens <= budget {
                break;
            }
            let docs = bodies[i].1.clone();
            let mut keep = docs.len();
            while tokens > budget && keep > 0 {
                keep /= 2;
                let shown = &docs[..keep];
                let mut body = if shown.is_empty() {
                    String::new()
                } else {
                    folded_lines(shown)
                };
                body.push_str(&format!(
                    "  … and {} not listed\n",
                    crate::text::counted(docs.len() - keep, "more relation", "more relations")
                ));
                bodies[i].2 = body;
                text = compose(&bodies);
                tokens = self.counter.count(&text);
            }
            listed -= docs.len() - keep;
        }
        let folded = bodies
            .iter()
            .filter(|b| b.3)
            .map(|b| b.0.to_string())
            .collect();
        Catalogue {
            text,
            tokens,
            folded,
            listed,
        }
    }

    /// The names of `chosen` that are relations linked over (`schema.name`, any case; a bare
    /// name when only one schema has it), at most [`MAX_SELECTED`], and those ignored.
    pub fn known_names(&self, chosen: &[String]) -> (Vec<String>, Vec<String>) {
        let mut known: Vec<String> = Vec::new();
        let mut ignored: Vec<String> = Vec::new();
        for name in chosen {
            let wanted = name.trim().trim_matches('"').to_lowercase();
            let exact = self.names.iter().find(|n| n.to_lowercase() == wanted);
            let found = exact.or_else(|| {
                let bare: Vec<&String> = self
                    .names
                    .iter()
                    .filter(|n| {
                        n.split_once('.')
                            .is_some_and(|(_, b)| b.to_lowercase() == wanted)
                    })
                    .collect();
                match bare.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                }
            });
            match found {
                Some(n) if known.len() < MAX_SELECTED => {
                    if !known.contains(n) {
                        known.push(n.clone());
                    }
                }
                Some(_) => {}
                None => ignored.push(name.clone()),
            }
        }
        (known, ignored)
    }

    /// The context for `question` with the relations the model chose (`schema.name`, already
    /// checked with [`Linker::known_names`]) merged in before the lexical candidates.
    pub fn link_selected(
        &self,
        question: &str,
        settings: &ContextSettings,
        selected: &[String],
    ) -> LinkedContext {
        let mut docs: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for name in selected {
            if let Some(doc) = self.names.iter().position(|n| n == name) {
                if seen.insert(doc) {
                    docs.push(doc);
                }
            }
        }
        self.link_inner(question, settings.max_tokens, settings, &[], &docs)
    }
}
