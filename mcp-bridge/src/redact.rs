//! The one redaction path of the bridge: every error message, every line the command line
//! prints and every log line goes through [`redact`] before anyone sees it, and before it is
//! cut to any length (a cut key is still most of a key).
//!
//! Three kinds of secret are removed:
//! - the password of a URL's user information, for any scheme (`postgres://`, a mistyped
//!   `postgress://`, `jdbc:postgresql://`, `https://`...) and a URL's `password=` parameter;
//! - the `password` of a libpq key/value connection string;
//! - every secret the bridge was configured with ([`register`]: the API key, the servers'
//!   passwords), found however it is written: plain, JSON-escaped (`\u0073k-...`, `\/`) or
//!   URL-encoded (`%73k-...`), in any mix.

use std::sync::RwLock;

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Secrets shorter than this are not searched for (too many false matches, and not a secret
/// worth the name).
const MIN_SECRET_CHARS: usize = 4;

/// The configured secrets, longest first (so that a secret containing another is removed
/// whole).
static SECRETS: RwLock<Vec<Vec<char>>> = RwLock::new(Vec::new());

/// Adds a configured secret (an API key, a password) to those [`redact`] removes.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let chars: Vec<char> = secret.chars().collect();
    if let Ok(mut secrets) = SECRETS.write() {
        if !secrets.contains(&chars) {
            secrets.push(chars);
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// `text` with every secret removed (see the module's documentation).
pub fn redact(text: &str) -> String {
    let text = redact_registered(text);
    let text = redact_url_userinfo(&text);
    redact_password_words(&text)
}

/// [`redact`] of a connection string (a libpq key/value string or a URL of any scheme), for
/// showing which one is meant: passwords become `***`, and malformed text after the last
/// recognised `key=value` of a key/value string is not echoed.
pub fn redact_dsn(dsn: &str) -> String {
    if dsn.contains("://") {
        return redact(&redact_url_query(dsn));
    }
    redact(&crate::config::redact_conninfo(dsn))
}

/// [`redact`] of every string in a JSON document (keys included): a tool's structured result.
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            let shown = redact(s);
            if shown != *s {
                *s = shown;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                redact_json(&mut v);
                map.insert(redact(&key), v);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------------ configured secrets

/// One character of `text` at byte `at`, decoded from a JSON (`\uXXXX`, `\/`, `\\`...) or URL
/// (`%XX`) escape if it is one, with the byte length it took.
fn decode_at(text: &str, at: usize) -> Option<(char, usize)> {
    let rest = &text[at..];
    let bytes = rest.as_bytes();
    match bytes.first()? {
        // an escaped escape (`\\u0073`, JSON inside JSON)
        b'\\'
            if bytes.len() >= 7 && bytes[1] == b'\\' && (bytes[2] == b'u' || bytes[2] == b'U') =>
        {
            let code = u32::from_str_radix(rest.get(3..7)?, 16).ok()?;
            Some((char::from_u32(code)?, 7))
        }
        b'\\' if bytes.len() >= 6 && (bytes[1] == b'u' || bytes[1] == b'U') => {
            let code = u32::from_str_radix(rest.get(2..6)?, 16).ok()?;
            Some((char::from_u32(code)?, 6))
        }
        b'\\' if bytes.len() >= 2 => match bytes[1] {
            b'/' => Some(('/', 2)),
            b'\\' => Some(('\\', 2)),
            b'"' => Some(('"', 2)),
            _ => None,
        },
        b'%' if bytes.len() >= 3 => {
            let byte = u8::from_str_radix(rest.get(1..3)?, 16).ok()?;
            byte.is_ascii().then_some((byte as char, 3))
        }
        _ => None,
    }
}

/// The byte length of `secret` written at `at` in `text`, each character plain or escaped.
fn match_at(text: &str, at: usize, secret: &[char]) -> Option<usize> {
    let mut pos = at;
    for &want in secret {
        let rest = text.get(pos..)?;
        let plain = rest.chars().next()?;
        if plain == want {
            pos += plain.len_utf8();
            continue;
        }
        match decode_at(text, pos) {
            Some((c, len)) if c == want => pos += len,
            _ => {
                // `+` is a space in a URL-encoded form
                if want == ' ' && plain == '+' {
                    pos += 1;
                    continue;
                }
                return None;
            }
        }
    }
    Some(pos - at)
}

fn redact_registered(text: &str) -> String {
    let Ok(secrets) = SECRETS.read() else {
        return text.to_string();
    };
    if secrets.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        for secret in secrets.iter() {
            if let Some(len) = match_at(text, i, secret) {
                out.push_str(REDACTED);
                i += len;
                continue 'outer;
            }
        }
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

// ------------------------------------------------------------------ URLs and conninfo

/// Every `scheme://user:password@` with the password replaced: the scheme is any run of
/// letters, digits, `+`, `-`, `.` (and `:` for `jdbc:postgresql`) before `://`; a password may
/// hold unescaped `@`, `/` or `?`, so everything up to the last `@` before the next white
/// space or quote is taken as user information (that may hide more than the password, never
/// less).
fn redact_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let (before, after) = rest.split_at(found + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(after.len());
        let token = &after[..end];
        match token.rfind('@') {
            Some(at) => {
                let userinfo = &token[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A URL's `password=` query parameter (its key percent-decoded, as libpq does) as `***`.
fn redact_url_query(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if crate::tls::percent_decode(key).as_deref() == Some("password") => {
                format!("password={REDACTED}")
            }
            _ => param.to_string(),
        })
        .collect();
    format!("{head}?{}", params.join("&"))
}

/// `password=value` / `password = 'quoted value'` (a connection string inside a message, or a
/// URL parameter) as `password=***`.
fn redact_password_words(text: &str) -> String {
    const KEY: &str = "password";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(KEY) {
        let start = search + found;
        let mut i = start + KEY.len();
        let bytes = text.as_bytes();
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            search = start + KEY.len();
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let value_len = crate::config::conninfo_value_len(&text[i..]).unwrap_or(text.len() - i);
        // a URL parameter ends at `&` or `#`
        let value_len = text[i..i + value_len]
            .find(['&', '#'])
            .filter(|_| !text[i..].starts_with('\''))
            .unwrap_or(value_len);
        out.push_str(&text[last..i]);
        out.push_str(REDACTED);
        last = i + value_len;
        search = last.max(start + KEY.len());
    }
    out.push_str(&text[last..]);
    out
}

// ------------------------------------------------------------------ log lines

/// A writer for the log subscriber that redacts each line before it reaches stderr.
pub struct RedactingStderr;

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderrMaker {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

/// Makes [`RedactingStderr`] writers (`tracing_subscriber::fmt().with_writer(...)`).
pub struct RedactingStderrMaker;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_scheme_lose_their_password() {
        for (url, expected) in [
            ("postgres://u:s3cret@db/x", "postgres://u:***@db/x"),
            ("postgress://u:s3cret@db/x", "postgress://u:***@db/x"),
            ("POSTGRES://u:s3cret@db/x", "POSTGRES://u:***@db/x"),
            (
                "jdbc:postgresql://u:s3cret@db/x",
                "jdbc:postgresql://u:***@db/x",
            ),
            (
                "postgresql+psycopg://u:s3cret@db/x",
                "postgresql+psycopg://u:***@db/x",
            ),
            ("https://u:s3:c@r/et@proxy/v1", "https://u:***@proxy/v1"),
            ("https://proxy/v1?x=a", "https://proxy/v1?x=a"),
            (
                "error: \"postgress://u:s3cret@db/x\" is bad",
                "error: \"postgress://u:***@db/x\" is bad",
            ),
        ] {
            assert_eq!(redact(url), expected, "{url}");
            assert_eq!(redact_dsn(url), expected, "{url}");
        }
        assert_eq!(
            redact_dsn("postgres://db/x?sslmode=require&password=s3cret"),
            "postgres://db/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact_dsn("postgres://db/x?pass%77ord=s3cret"),
            "postgres://db/x?password=***"
        );
    }

    #[test]
    fn conninfo_passwords_are_removed_inside_messages() {
        assert_eq!(
            redact("bad: host=db password=s3cret dbname=x"),
            "bad: host=db password=*** dbname=x"
        );
        assert_eq!(
            redact("host=db password = 'a b\\' c' dbname=x"),
            "host=db password = *** dbname=x"
        );
        assert_eq!(redact("the password is wrong"), "the password is wrong");
    }

    #[test]
    fn registered_secrets_are_found_in_every_encoding() {
        let key = "sk-redact-test-0123456789abcdef";
        register(key);
        register("ab"); // too short to be searched for
        let json_escaped: String = key
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect();
        let url_encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
        let mixed = "sk-\\u0072edact%2Dtest-0123456789abcdef".to_string();
        let double: String = key
            .chars()
            .map(|c| format!("\\\\u{:04x}", c as u32))
            .collect();
        for text in [
            format!("key {key} echoed"),
            format!("key {json_escaped} echoed"),
            format!("key {url_encoded} echoed"),
            format!("key {mixed} echoed"),
            format!("key {double} echoed"),
        ] {
            let shown = redact(&text);
            assert_eq!(shown, "key *** echoed", "{text}");
        }
        assert_eq!(redact("ab cd"), "ab cd");
    }

    #[test]
    fn log_lines_are_redacted_too() {
        register("sk-log-line-secret-value");
        let mut w = RedactingStderr;
        use std::io::Write;
        // only the behaviour of `redact` is observable here; the writer calls it
        assert!(w.write(b"x").is_ok());
        assert_eq!(redact("token sk-log-line-secret-value"), "token ***");
    }
}
