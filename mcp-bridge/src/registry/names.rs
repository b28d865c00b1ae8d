//! The names tools take for databases: a database's own name, escaped so that it never holds
//! the `/` of `server/database` names nor anything that hides what must be typed.

/// Characters that look like the separator `/` of `server/database` names.
const SLASH_LOOKALIKES: [char; 8] = [
    '\u{2044}', '\u{2215}', '\u{2571}', '\u{29F8}', '\u{FF0F}', '\u{1735}', '\u{2CDC}', '\u{3033}',
];

/// A database's own name as a part of the names tools take: `%` and `/` (the separator),
/// white space, control and invisible or reordering characters, and look-alikes of `/`
/// percent-encoded (UTF-8 bytes), so that the escaped name never contains the separator, two
/// different names never escape to the same text, and what is shown is what must be typed.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let escape = matches!(c, '%' | '/' | '\\')
            || c.is_whitespace()
            || c.is_control()
            || crate::untrusted::is_deceptive(c)
            || SLASH_LOOKALIKES.contains(&c);
        if escape {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_database_names_are_escaped_and_distinct() {
        assert_eq!(escape_name("shop"), "shop");
        assert_eq!(escape_name("客户"), "客户");
        assert_eq!(escape_name("O'Brien \"x\""), "O'Brien%20\"x\"");
        assert_eq!(escape_name("B/rtb_main"), "B%2Frtb_main");
        assert_eq!(escape_name("B\u{2215}rtb_main"), "B%E2%88%95rtb_main");
        assert_eq!(escape_name("B%2Frtb_main"), "B%252Frtb_main");
        assert_eq!(escape_name("a\u{202E}b"), "a%E2%80%AEb");
        let long = "x/".repeat(31) + "y";
        assert!(!escape_name(&long).contains('/'));
        // injective on the names that differ only in what is escaped
        let names = ["B/x", "B%2Fx", "B\u{2215}x", "B\u{FF0F}x", "B x", "B\tx"];
        let escaped: std::collections::BTreeSet<String> =
            names.iter().map(|n| escape_name(n)).collect();
        assert_eq!(escaped.len(), names.len(), "{escaped:?}");
    }
}
