//! Connection strings as text: one tokenizer of libpq's `key = value` form ([`pairs`]), URL
//! percent-decoding, and the TLS options tokio-postgres does not read itself (`sslmode`'s
//! libpq values, `sslrootcert`: [`extract_options`]). The redaction of connection strings ([`crate::redact`]) and the
//! reading of the TLS options tokio-postgres does not know ([`crate::tls`]) both read a
//! string through these, so they can never disagree on where a value starts and ends.

use std::fmt;
use std::path::PathBuf;

use tokio_postgres::config::SslMode;

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

/// The `sslmode` of a connection string, as libpq defines it (`allow` is taken as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate (also `allow`).
    Prefer,
    /// TLS or no connection; the certificate is not checked (encryption only).
    Require,
    /// TLS, and the server's certificate must be signed by a trusted CA.
    VerifyCa,
    /// As [`TlsMode::VerifyCa`], and the certificate must name the host connected to.
    VerifyFull,
}

impl TlsMode {
    /// The mode named by an `sslmode` value, `None` for an unknown value.
    pub fn from_sslmode(value: &str) -> Option<TlsMode> {
        match value {
            "disable" => Some(TlsMode::Disable),
            // libpq tries without TLS first; tokio-postgres can only try with TLS first.
            "allow" | "prefer" => Some(TlsMode::Prefer),
            "require" => Some(TlsMode::Require),
            "verify-ca" => Some(TlsMode::VerifyCa),
            "verify-full" => Some(TlsMode::VerifyFull),
            _ => None,
        }
    }

    /// The `sslmode` value of this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate is checked against trusted CAs.
    pub fn verifies_certificate(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }

    /// What tokio-postgres is told: whether to ask for TLS and whether it is required.
    pub fn pg_ssl_mode(self) -> SslMode {
        match self {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }

    /// The mode of a connection string's `sslmode` and `sslrootcert` values (`None` when the key
    /// is absent), with libpq's rules: no `sslmode` means `prefer`, or `verify-full` with
    /// `sslrootcert=system`, which refuses any other mode; `require` with an `sslrootcert` file
    /// means `verify-ca`. Returns the mode and the CA file (`None`: the system's roots).
    pub fn resolve(
        sslmode: Option<&str>,
        sslrootcert: Option<&str>,
    ) -> Result<(TlsMode, Option<PathBuf>), String> {
        let system = sslrootcert == Some("system");
        let root_cert = sslrootcert
            .filter(|path| !path.is_empty() && !system)
            .map(PathBuf::from);
        let mode = match sslmode {
            None if system => TlsMode::VerifyFull,
            None => TlsMode::Prefer,
            Some(value) => TlsMode::from_sslmode(value).ok_or_else(|| {
                format!(
                    "invalid sslmode \"{value}\": use disable, allow, prefer, require, \
                     verify-ca or verify-full"
                )
            })?,
        };
        if system && mode != TlsMode::VerifyFull {
            return Err(format!(
                "sslmode={} may not be used with sslrootcert=system: use sslmode=verify-full",
                sslmode.unwrap_or(mode.as_str())
            ));
        }
        let mode = match (mode, &root_cert) {
            (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
            (mode, _) => mode,
        };
        Ok((mode, root_cert))
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection string with the TLS keys tokio-postgres does not understand taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The connection string without `sslmode` and `sslrootcert`; the input unchanged when it
    /// has neither, or is too malformed to take apart (tokio-postgres then reports why).
    pub rest: String,
    /// The last `sslmode` value, unquoted or percent-decoded.
    pub sslmode: Option<String>,
    /// The last `sslrootcert` value, unquoted or percent-decoded.
    pub sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a libpq key/value connection string or a
/// `postgres://` URL (query parameters). A repeated key keeps its last value, as in libpq.
pub fn extract_options(dsn: &str) -> TlsOptions {
    let unchanged = || TlsOptions {
        rest: dsn.to_string(),
        sslmode: None,
        sslrootcert: None,
    };
    let trimmed = dsn.trim_start();
    let found = match ["postgresql://", "postgres://"]
        .iter()
        .find(|scheme| trimmed.starts_with(*scheme))
    {
        Some(_) => extract_from_url(trimmed),
        None => extract_from_conninfo(dsn),
    };
    found.unwrap_or_else(unchanged)
}

/// `key = value ...` ([`crate::conninfo::pairs`]): `None` when it is not well-formed
/// (tokio-postgres then says why) or names neither option.
fn extract_from_conninfo(dsn: &str) -> Option<TlsOptions> {
    use crate::conninfo::Token;
    let mut options = TlsOptions {
        rest: String::with_capacity(dsn.len()),
        sslmode: None,
        sslrootcert: None,
    };
    let mut copied_to = 0;
    for token in crate::conninfo::pairs(dsn) {
        let Token::Pair(pair) = token else {
            return None;
        };
        if pair.raw.is_empty() {
            return None;
        }
        match pair.key {
            "sslmode" => options.sslmode = Some(pair.value),
            "sslrootcert" => options.sslrootcert = Some(pair.value),
            _ => continue,
        }
        options.rest.push_str(&dsn[copied_to..pair.start]);
        options.rest.push(' ');
        copied_to = pair.end;
    }
    if copied_to == 0 {
        return None;
    }
    options.rest.push_str(&dsn[copied_to..]);
    Some(options)
}

/// `scheme://[userinfo@]hosts[/dbname][?key=value&...]`: the query starts at the first `?`
/// after the last `@` (a password may hold `?`); keys and values are percent-encoded.
fn extract_from_url(url: &str) -> Option<TlsOptions> {
    let authority_start = url.rfind('@').map_or(0, |at| at + 1);
    let query_start = authority_start + url[authority_start..].find('?')?;
    let (base, query) = (&url[..query_start], &url[query_start + 1..]);
    let mut options = TlsOptions {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for param in query.split('&') {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match crate::conninfo::percent_decode(key)?.as_str() {
            "sslmode" => options.sslmode = Some(crate::conninfo::percent_decode(value)?),
            "sslrootcert" => options.sslrootcert = Some(crate::conninfo::percent_decode(value)?),
            _ => kept.push(param),
        }
    }
    if options.sslmode.is_none() && options.sslrootcert.is_none() {
        return None;
    }
    options.rest.push_str(base);
    if !kept.is_empty() {
        options.rest.push('?');
        options.rest.push_str(&kept.join("&"));
    }
    Some(options)
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
