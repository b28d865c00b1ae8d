//! Token counting with the model family's own tokenizer, and the notes appended to a context
//! that does not show everything: what was cut to fit, the values the question names, and the
//! names of the relations left out, so the model can ask for them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use tiktoken_rs::CoreBPE;

/// Counts tokens as the configured model's tokenizer does. The encodings ship inside
/// `tiktoken-rs` (compiled in), so nothing is downloaded.
#[derive(Clone, Copy)]
pub struct TokenCounter {
    bpe: &'static CoreBPE,
    /// `o200k_base` or `cl100k_base`.
    pub encoding: &'static str,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounter")
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl TokenCounter {
    /// The encoding of `model`: `cl100k_base` for gpt-4 (not 4o), gpt-3.5 and the ada/3
    /// embeddings, `o200k_base` for gpt-5, gpt-4o, gpt-4.1, the o-series and any model the
    /// tokenizer table does not know (other vendors' models: a close estimate).
    pub fn for_model(model: &str) -> TokenCounter {
        use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
        match get_tokenizer(model) {
            Some(Tokenizer::Cl100kBase) => TokenCounter {
                bpe: tiktoken_rs::cl100k_base_singleton(),
                encoding: "cl100k_base",
            },
            _ => TokenCounter {
                bpe: tiktoken_rs::o200k_base_singleton(),
                encoding: "o200k_base",
            },
        }
    }

    pub fn count(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }
}

/// `schema.name` strings grouped by schema as `schema: a, b; other: c`.
pub fn grouped(names: &[String]) -> String {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in names {
        let (schema, relation) = name.split_once('.').unwrap_or(("", name.as_str()));
        groups.entry(schema).or_default().push(relation);
    }
    let mut out = String::new();
    for (i, (schema, relations)) in groups.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        let _ = write!(out, "{schema}: {}", relations.join(", "));
    }
    out
}

/// The notes under the rendered relations.
pub struct Notes<'a> {
    /// `(schema.relation.column, value)` pairs the question's words were found in.
    pub values: &'a [(String, String)],
    /// Relations chosen but cut to fit the budget.
    pub cut: &'a [String],
    /// Every other relation, by name.
    pub others: &'a [String],
    /// Whether `others` are listed by name (else only counted).
    pub list_others: bool,
}

impl Notes<'_> {
    pub fn text(&self) -> String {
        let mut out = String::new();
        if !self.values.is_empty() {
            out.push_str("\nvalues the question names: ");
            let shown: Vec<String> = self
                .values
                .iter()
                .map(|(column, value)| format!("{column} = {}", quote(value)))
                .collect();
            out.push_str(&shown.join(", "));
            out.push('\n');
        }
        if !self.cut.is_empty() {
            let _ = writeln!(
                out,
                "\nalso relevant but cut to fit the context budget (name them to get their columns): {}",
                grouped(self.cut)
            );
        }
        if !self.others.is_empty() {
            if self.list_others {
                let _ = writeln!(
                    out,
                    "\nother relations in this database, not shown: {}",
                    grouped(self.others)
                );
            } else {
                let mut schemas: Vec<&str> = self
                    .others
                    .iter()
                    .map(|n| n.split_once('.').map_or("", |(s, _)| s))
                    .collect();
                schemas.dedup();
                schemas.sort_unstable();
                schemas.dedup();
                let _ = writeln!(
                    out,
                    "\n{} other relations in this database are not shown (schemas {})",
                    self.others.len(),
                    schemas.join(", ")
                );
            }
        }
        out
    }
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_model_family_encoding() {
        let counter = TokenCounter::for_model("gpt-5-mini");
        assert_eq!(counter.encoding, "o200k_base");
        assert_eq!(TokenCounter::for_model("gpt-4o").encoding, "o200k_base");
        assert_eq!(TokenCounter::for_model("gpt-4").encoding, "cl100k_base");
        assert_eq!(
            TokenCounter::for_model("some-local-model").encoding,
            "o200k_base"
        );
        // o200k_base: "hello world" is two tokens
        assert_eq!(counter.count("hello world"), 2);
        assert!(counter.count("客户订单的数量") >= 3);
        assert_eq!(counter.count(""), 0);
    }

    #[test]
    fn groups_names_by_schema() {
        let names = vec!["b.x".to_string(), "a.y".to_string(), "a.z".to_string()];
        assert_eq!(grouped(&names), "a: y, z; b: x");
    }
}
