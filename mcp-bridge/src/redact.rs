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
//!   URL-encoded (`%73k-...`), in any mix, in any letter case, base64-encoded, and every piece of
//!   eight characters or more of a secret of twelve or more (an endpoint that echoes
//!   `sk-abc...1234` or a prefix of the key gives away no eight characters of it);
//! - user information before an `@` with no scheme at all (`postgres:/user:pw@host`,
//!   `user:pw@host`), and `pass`, `passwd`, `pwd` or a quoted `'password'` given with `=` or `:`.

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
    let mut forms = vec![chars.clone()];
    for encoded in [
        base64(secret.as_bytes(), false),
        base64(secret.as_bytes(), true),
    ] {
        forms.push(encoded.trim_end_matches('=').chars().collect());
    }
    if chars.len() >= FRAGMENT_FROM {
        for window in chars.windows(FRAGMENT) {
            forms.push(window.to_vec());
        }
    }
    if let Ok(mut secrets) = SECRETS.write() {
        for form in forms {
            if !secrets.contains(&form) {
                secrets.push(form);
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Secrets at least this long are also removed piece by piece, [`FRAGMENT`] characters at a
/// time.
const FRAGMENT_FROM: usize = 12;
const FRAGMENT: usize = 8;

/// Standard (or URL-safe) base64 with padding.
fn base64(bytes: &[u8], url_safe: bool) -> String {
    let alphabet: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `text` with every secret removed (see the module's documentation).
pub fn redact(text: &str) -> String {
    let text = redact_registered(text);
    let text = redact_url_userinfo(&text);
    let text = redact_bare_userinfo(&text);
    redact_password_words(&text)
}

/// `user:password@` in a token with no `://` (a mistyped `postgres:/user:pw@host`, a bare
/// `user:pw@host`): what is between the token's last `:` before its first `@` and that `@`
/// becomes `***`.
fn redact_bare_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' {
            // the token around the @
            let start = text[..i]
                .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | '<' | '`'))
                .map_or(0, |p| p + 1)
                .max(last);
            if let Some(colon) = text[start..i].rfind(':') {
                let from = start + colon + 1;
                let secret = &text[from..i];
                // short or all-digit runs are times and ports (`12:30@home`), not passwords
                let password_like = secret.chars().count() >= MIN_SECRET_CHARS
                    && !secret.chars().all(|c| c.is_ascii_digit());
                if password_like && secret != REDACTED && !secret.starts_with("//") {
                    out.push_str(&text[last..from]);
                    out.push_str(REDACTED);
                    last = i;
                }
            }
        }
        i += 1;
    }
    out.push_str(&text[last..]);
    out
}

/// [`redact`] of a connection string (a libpq key/value string or a URL of any scheme), for
/// showing which one is meant: passwords become `***`, and malformed text after the last
/// recognised `key=value` of a key/value string is not echoed.
pub fn redact_dsn(dsn: &str) -> String {
    if dsn.contains("://") {
        return redact(&redact_url_query(dsn));
    }
    redact(&redact_conninfo(dsn))
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
        if plain == want || (plain.is_ascii() && plain.eq_ignore_ascii_case(&want)) {
            pos += plain.len_utf8();
            continue;
        }
        match decode_at(text, pos) {
            Some((c, len)) if c == want || (c.is_ascii() && c.eq_ignore_ascii_case(&want)) => {
                pos += len
            }
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
            Some((key, _))
                if crate::conninfo::percent_decode(key).as_deref() == Some("password") =>
            {
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
    let mut text = text.to_string();
    for key in ["password", "passwd", "pass", "pwd"] {
        text = redact_key_values(&text, key);
    }
    text
}

/// The values of `key = value` / `key: value` (the key optionally quoted) with the value
/// replaced.
fn redact_key_values(text: &str, key: &str) -> String {
    let key_len = key.len();
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(key) {
        let start = search + found;
        let bytes = text.as_bytes();
        // a whole word: not the end of a longer one (`pass` inside `bypass`, `password`)
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let mut i = start + key_len;
        let after_ok = i >= bytes.len() || !bytes[i].is_ascii_alphanumeric();
        if !before_ok || !after_ok {
            search = start + key_len;
            continue;
        }
        if i < bytes.len() && matches!(bytes[i], b'\'' | b'"') {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if i >= bytes.len() || !matches!(bytes[i], b'=' | b':') {
            search = start + key_len;
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        if text[i..].starts_with(REDACTED) {
            search = i + REDACTED.len();
            continue;
        }
        let value_len = crate::conninfo::value_len(&text[i..]).unwrap_or(text.len() - i);
        let value_len = text[i..i + value_len]
            .find(['&', '#'])
            .filter(|_| !text[i..].starts_with('\''))
            .unwrap_or(value_len);
        out.push_str(&text[last..i]);
        out.push_str(REDACTED);
        last = i + value_len;
        search = last.max(start + key_len);
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

/// `key = value ...` with every `password` value replaced by `***`; malformed text after the
/// last pair is not echoed ([`crate::conninfo::pairs`]).
fn redact_conninfo(dsn: &str) -> String {
    use crate::conninfo::Token;
    let mut out: Vec<String> = Vec::new();
    for token in crate::conninfo::pairs(dsn) {
        match token {
            Token::Pair(p) if p.key == "password" => out.push(format!("{}={REDACTED}", p.key)),
            Token::Pair(p) => out.push(format!("{}={}", p.key, p.raw)),
            Token::NotAPair { word } => out.push(format!("{word} ...")),
            Token::Unterminated { key } => out.push(format!("{key}=...")),
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_case_and_base64_of_a_key_are_removed() {
        let key = "sk-frag-PLANTED-0123456789abcdef";
        register(key);
        for shown in [
            "prefix=sk-frag-PLANTED-0123456",
            "suffix=...0123456789abcdef",
            "SK-FRAG-PLANTED-0123456789ABCDEF",
            "b64=c2stZnJhZy1QTEFOVEVELTAxMjM0NTY3ODlhYmNkZWY=",
        ] {
            let out = redact(shown);
            for window in key.as_bytes().windows(8) {
                let w = std::str::from_utf8(window).unwrap().to_ascii_lowercase();
                assert!(!out.to_ascii_lowercase().contains(&w), "{shown} -> {out}");
            }
            assert!(
                !out.contains("c2stZnJhZy1QTEFOVEVELTAxMjM0NTY3ODlhYmNkZWY"),
                "{out}"
            );
        }
    }

    #[test]
    fn mistyped_connection_strings_keep_their_password() {
        for dsn in [
            "postgres:/nlq_bridge:PwMistype9@127.0.0.1:54315/postgres",
            "postgres:nlq_bridge:PwMistype9@127.0.0.1/postgres",
            "postgres//nlq_bridge:PwMistype9@127.0.0.1/postgres",
            "nlq_bridge:PwMistype9@127.0.0.1:54315/postgres",
            "host=127.0.0.1 password:PwMistype9",
            "host=127.0.0.1 pass=PwMistype9",
            "host=127.0.0.1 passwd=PwMistype9 port=1",
            "host=127.0.0.1 'password'=PwMistype9",
            "postgres://h/db?passwd=PwMistype9",
        ] {
            let out = redact(dsn);
            assert!(!out.contains("PwMistype9"), "{dsn} -> {out}");
        }
        // words that merely contain a key are left alone, and so are times before an @
        assert_eq!(redact("bypass=1 compass: north"), "bypass=1 compass: north");
        assert_eq!(redact("meet 12:30@home"), "meet 12:30@home");
    }

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
