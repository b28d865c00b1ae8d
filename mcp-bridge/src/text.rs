//! The small text helpers every part of the bridge uses: white space collapsed, text clipped
//! to a length, counted nouns, the one-line error form. What is shown to people and models
//! goes through these, so that "one line" and "clipped" mean the same everywhere. (Fencing
//! untrusted text is [`crate::untrusted`]'s.)

use crate::code::ErrorCode;

/// White space (line breaks included) collapsed to single spaces, trimmed.
pub fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut after `max_chars` characters, with "…" when cut (trailing white space before
/// the cut removed).
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_string(),
    }
}

/// [`collapse`]d, then [`clip`]ped.
pub fn one_line(text: &str, max_chars: usize) -> String {
    clip(&collapse(text), max_chars)
}

/// `1 row`, `2 rows`.
pub fn counted(n: impl std::fmt::Display, one: &str, many: &str) -> String {
    let n = n.to_string();
    let noun = if n == "1" { one } else { many };
    format!("{n} {noun}")
}

/// `error[CODE]: message` on one line, redacted: how the command line prints an error.
pub fn error_line(code: ErrorCode, message: &str) -> String {
    format!(
        "error[{}]: {}",
        code.as_str(),
        collapse(&crate::redact::redact(message))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_characters_and_marks_the_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("客户名称", 2), "客户…");
        assert_eq!(clip("ab  cd", 3), "ab…");
        assert_eq!(one_line("a\n  b\tc", 10), "a b c");
    }

    #[test]
    fn counted_nouns() {
        assert_eq!(counted(1, "row", "rows"), "1 row");
        assert_eq!(counted(0, "row", "rows"), "0 rows");
        assert_eq!(counted(2, "row", "rows"), "2 rows");
    }

    #[test]
    fn error_lines_are_one_line() {
        assert_eq!(
            error_line(ErrorCode::SyntaxError, "a\nb"),
            "error[SYNTAX_ERROR]: a b"
        );
    }
}
