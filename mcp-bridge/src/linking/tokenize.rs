//! Terms for lexical matching, from identifiers, comments, values and questions alike.
//!
//! - Identifiers are split at `_`, digits and camelCase humps (`orderDate`, `HTTPStatus`),
//!   quoted names at their spaces; everything is lower-cased.
//! - English words lose plural and simple verb endings (`categories` → `category`,
//!   `shipped` → `ship`), so a question and a name meet on one stem.
//! - Common abbreviations in names also stand for their long form (`qty` → `quantity`,
//!   `cust` → `customer`), on both sides, so either spelling finds the other.
//! - Chinese, Japanese and Korean text, which has no spaces, is indexed by character bigrams
//!   (a run of one character by itself); other scripts by their words.
//! - Function words (`the`, `how`, `many`) are dropped from questions and documents.

/// The terms of `text`, in order, with repetitions.
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk: Vec<char> = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            cjk.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk, &mut out);
            word.push(c);
        } else {
            flush_word(&mut word, &mut out);
            flush_cjk(&mut cjk, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_cjk(&mut cjk, &mut out);
    out
}

/// Han, kana and Hangul: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B and later
}

fn flush_cjk(run: &mut Vec<char>, out: &mut Vec<String>) {
    match run.len() {
        0 => {}
        1 => out.push(run[0].to_string()),
        _ => {
            for pair in run.windows(2) {
                out.push(pair.iter().collect());
            }
        }
    }
    run.clear();
}

/// Splits one alphanumeric run at camelCase humps and digit boundaries, then normalises each
/// part.
fn flush_word(word: &mut String, out: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    let chars: Vec<char> = word.chars().collect();
    let mut start = 0;
    for i in 1..chars.len() {
        let (prev, cur) = (chars[i - 1], chars[i]);
        let next_lower = chars.get(i + 1).is_some_and(|c| c.is_lowercase());
        let hump = (prev.is_lowercase() && cur.is_uppercase())
            || (prev.is_uppercase() && cur.is_uppercase() && next_lower)
            || (prev.is_ascii_digit() != cur.is_ascii_digit());
        if hump {
            push_part(&chars[start..i], out);
            start = i;
        }
    }
    push_part(&chars[start..], out);
    word.clear();
}

fn push_part(part: &[char], out: &mut Vec<String>) {
    let lower: String = part.iter().flat_map(|c| c.to_lowercase()).collect();
    if lower.is_empty() || STOPWORDS.contains(&lower.as_str()) {
        return;
    }
    // Numbers are kept (years, codes) but not stemmed or expanded.
    if lower.chars().all(|c| c.is_ascii_digit()) {
        out.push(lower);
        return;
    }
    let stemmed = stem(&lower);
    if let Some(long) = expansion(&stemmed) {
        out.push(stemmed);
        for w in long.split(' ') {
            out.push(stem(w));
        }
    } else {
        out.push(stemmed);
    }
}

/// A light English stemmer: plural and `-ed`/`-ing` endings, the doubled consonant they leave
/// (`shipped` → `ship`). Words that are not plain ASCII letters are returned as they are.
pub fn stem(word: &str) -> String {
    if !word.bytes().all(|b| b.is_ascii_lowercase()) || word.len() <= 3 {
        return word.to_string();
    }
    // irregular forms of the verbs of trade
    match word {
        "sold" | "sells" | "selling" => return "sell".to_string(),
        "bought" | "buys" | "buying" => return "buy".to_string(),
        "spent" | "spends" | "spending" => return "spend".to_string(),
        _ => {}
    }
    let base = strip_ending(word);
    // a final silent `e` goes, so `invoice` and `invoicing`, `price` and `priced` meet;
    // kept on short stems (`sale`, `rate`, `date`) and after another e (`employee`)
    match base.strip_suffix('e') {
        Some(b) if b.len() >= 4 && !b.ends_with('e') => b.to_string(),
        _ => base,
    }
}

fn strip_ending(word: &str) -> String {
    let w = word;
    let (base, stripped) = if let Some(b) = w.strip_suffix("ies").filter(|b| b.len() >= 2) {
        (format!("{b}y"), false)
    } else if let Some(b) = w
        .strip_suffix("es")
        .filter(|b| b.ends_with("ss") || b.ends_with('x') || b.ends_with("ch") || b.ends_with("sh"))
    {
        (b.to_string(), false)
    } else if w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") {
        (w.to_string(), false)
    } else if let Some(b) = w.strip_suffix('s') {
        (b.to_string(), false)
    } else if let Some(b) = w.strip_suffix("ing").filter(|b| b.len() >= 3) {
        (b.to_string(), true)
    } else if let Some(b) = w.strip_suffix("ed").filter(|b| b.len() >= 3) {
        (b.to_string(), true)
    } else {
        (w.to_string(), false)
    };
    if stripped {
        let bytes = base.as_bytes();
        let n = bytes.len();
        if n >= 3 && bytes[n - 1] == bytes[n - 2] && !b"aeiousz".contains(&bytes[n - 1]) {
            return base[..n - 1].to_string();
        }
    }
    base
}

/// The long form of an abbreviation common in column and table names (already stemmed).
fn expansion(term: &str) -> Option<&'static str> {
    Some(match term {
        "qty" => "quantity",
        "amt" => "amount",
        "num" | "nbr" | "no" => "number",
        "cust" => "customer",
        "dept" => "department",
        "emp" => "employee",
        "inv" => "invoice",
        "po" => "purchase order",
        "so" => "sales order",
        "acct" => "account",
        "addr" => "address",
        "desc" => "description",
        "dt" => "date",
        "ts" => "timestamp",
        "mgr" => "manager",
        "prod" => "product",
        "cat" => "category",
        "org" => "organization",
        "txn" | "tx" => "transaction",
        "pct" => "percent",
        "avg" => "average",
        "bal" => "balance",
        "ccy" | "curr" => "currency",
        "fx" => "exchange rate",
        "wh" | "whse" => "warehouse",
        "loc" => "location",
        "sal" => "salary",
        "yr" => "year",
        "qtr" => "quarter",
        "cnt" => "count",
        "tot" => "total",
        "ord" => "order",
        "ln" => "line",
        "jrnl" => "journal",
        "gl" => "general ledger",
        "ap" => "payable",
        "ar" => "receivable",
        "opp" => "opportunity",
        "stmt" => "statement",
        "mfg" => "manufacturing",
        "hr" => "human resource",
        "ref" => "reference",
        "msg" => "message",
        "uom" => "unit measure",
        "mv" => "materialized view",
        // selling is sales
        "sell" => "sale",
        _ => return None,
    })
}

/// Words that say nothing about which table is meant.
const STOPWORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "been", "by", "can", "did",
    "do", "does", "each", "for", "from", "get", "give", "had", "has", "have", "how", "i", "in",
    "into", "is", "it", "its", "list", "many", "me", "much", "of", "on", "or", "our", "over",
    "per", "please", "show", "than", "that", "the", "their", "them", "there", "these", "they",
    "this", "those", "to", "us", "was", "we", "were", "what", "when", "where", "which", "who",
    "whose", "why", "with", "would", "you", "your", "s", "t",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_split_into_stems() {
        assert_eq!(terms("order_lines"), ["order", "line"]);
        assert_eq!(terms("orderDate"), ["order", "date"]);
        assert_eq!(terms("HTTPStatus"), ["http", "status"]);
        assert_eq!(terms("\"Unit Price\""), ["unit", "pric"]);
        assert_eq!(terms("fy2024q1"), ["fy", "2024", "q", "1"]);
        assert_eq!(terms("categories"), ["category"]);
        assert_eq!(terms("Orders shipped"), ["order", "ship"]);
        assert_eq!(terms("shipping boxes"), ["ship", "box"]);
        assert_eq!(terms("cancelled canceled"), ["cancel", "cancel"]);
        assert_eq!(terms("status address"), ["status", "address"]);
    }

    #[test]
    fn abbreviations_stand_for_their_long_form() {
        assert_eq!(terms("order_qty"), ["order", "qty", "quantity"]);
        assert_eq!(terms("cust_id"), ["cust", "customer", "id"]);
        assert_eq!(terms("po_lines"), ["po", "purchas", "order", "line"]);
        assert_eq!(terms("emp"), ["emp", "employee"]);
    }

    #[test]
    fn word_forms_meet_on_one_stem() {
        // a final silent e goes on long stems, not on short ones
        assert_eq!(terms("invoice invoicing invoiced"), ["invoic"; 3]);
        assert_eq!(terms("price priced pricing"), ["pric"; 3]);
        assert_eq!(
            terms("sale sales rate date"),
            ["sale", "sale", "rate", "date"]
        );
        // the verbs of trade, irregular forms included; selling is sales
        assert_eq!(terms("best-selling"), ["best", "sell", "sale"]);
        assert_eq!(terms("sold"), ["sell", "sale"]);
        assert_eq!(terms("bought spent"), ["buy", "spend"]);
    }

    #[test]
    fn function_words_are_dropped() {
        assert_eq!(terms("How many of the orders are there?"), ["order"]);
    }

    #[test]
    fn cjk_text_becomes_bigrams() {
        assert_eq!(terms("客户订单"), ["客户", "户订", "订单"]);
        assert_eq!(terms("书"), ["书"]);
        assert_eq!(terms("中国的city"), ["中国", "国的", "city"]);
        // other scripts are words
        assert_eq!(terms("Straße München"), ["straße", "münchen"]);
    }
}
