//! Connection strings as text: one tokenizer of libpq's `key = value` form ([`pairs`]), and
//! URL percent-decoding. The redaction of connection strings ([`crate::redact`]) and the
//! reading of the TLS options tokio-postgres does not know ([`crate::tls`]) both read a
//! string through these, so they can never disagree on where a value starts and ends.

/// One `key = value` of a libpq connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<'a> {
    pub key: &'a str,
    /// Byte offset of the key.
    pub start: usize,
    /// The value as written (quotes and escapes included).
    pub raw: &'a str,
    /// Byte offset just past the value.
    pub end: usize,
    /// The value with quotes removed and escapes resolved.
    pub value: String,
    /// Whether it was single-quoted.
    pub quoted: bool,
}

/// What the tokenizer found at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'a> {
    Pair(Pair<'a>),
    /// Not `key = value` (a word without `=`): nothing after it is read.
    NotAPair {
        word: &'a str,
    },
    /// A quoted value without its closing quote: nothing after it is read.
    Unterminated {
        key: &'a str,
    },
}

/// The tokens of `dsn` in order, with libpq's (and tokio-postgres's) rules: white space
/// around `=` is allowed, a value is single-quoted or runs to the next white space, and a
/// backslash escapes the next character. Stops after the first token that is not a pair.
pub fn pairs(dsn: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut at = 0;
    loop {
        let rest = &dsn[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.is_empty() {
            return tokens;
        }
        let key_len = trimmed
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(trimmed.len());
        let key = &trimmed[..key_len];
        let after_key = &trimmed[key_len..];
        let Some(after_eq) = after_key.trim_start().strip_prefix('=') else {
            tokens.push(Token::NotAPair { word: key });
            return tokens;
        };
        let value_text = after_eq.trim_start();
        let value_at = dsn.len() - value_text.len();
        let Some((len, value)) = value_of(value_text) else {
            tokens.push(Token::Unterminated { key });
            return tokens;
        };
        tokens.push(Token::Pair(Pair {
            key,
            start: at,
            raw: &value_text[..len],
            end: value_at + len,
            value,
            quoted: value_text.starts_with('\''),
        }));
        at = value_at + len;
    }
}

/// The value at the start of `text`: its length in bytes and its unquoted text, or `None`
/// for an unterminated quote.
fn value_of(text: &str) -> Option<(usize, String)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    if text.starts_with('\'') {
        chars.next();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next()?.1),
                '\'' => return Some((i + 1, value)),
                c => value.push(c),
            }
        }
        None
    } else {
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c if c.is_whitespace() => return Some((i, value)),
                c => value.push(c),
            }
        }
        Some((text.len(), value))
    }
}

/// Length in bytes of the value at the start of `text`, or `None` for an unterminated quote.
pub fn value_len(text: &str) -> Option<usize> {
    value_of(text).map(|(len, _)| len)
}

/// `%XX` escapes decoded (`+` stays `+`, as in tokio-postgres); `None` if the result is not
/// UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair<'a>(token: &'a Token<'a>) -> &'a Pair<'a> {
        match token {
            Token::Pair(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pairs_follow_libpqs_quoting() {
        let tokens = pairs("host = /tmp  x=1");
        assert_eq!(tokens.len(), 2, "{tokens:?}");
        assert_eq!(pair(&tokens[0]).key, "host");
        assert_eq!(pair(&tokens[0]).value, "/tmp");
        assert!(!pair(&tokens[0]).quoted);
        let tokens = pairs("password='a\\'b c' sslmode=require x=a\\ b");
        assert_eq!(pair(&tokens[0]).value, "a'b c");
        assert_eq!(pair(&tokens[1]).value, "require");
        assert_eq!(pair(&tokens[2]).value, "a b");
        let p = pair(&tokens[1]);
        assert_eq!(
            &"password='a\\'b c' sslmode=require x=a\\ b"[p.start..p.end],
            "sslmode=require"
        );
    }

    #[test]
    fn malformed_text_stops_the_reading() {
        assert_eq!(
            pairs("host=h oops password=x").last(),
            Some(&Token::NotAPair { word: "oops" })
        );
        assert_eq!(
            pairs("host=h password='x").last(),
            Some(&Token::Unterminated { key: "password" })
        );
        assert!(pairs("   ").is_empty());
        assert_eq!(pair(&pairs("a=")[0]).value, "");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b+c"));
        assert_eq!(percent_decode("%zz").as_deref(), Some("%zz"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
