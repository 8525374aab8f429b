//! Characters that must not reach a record or a terminal as they are (`../shared/spec/fields.md`
//! §1): control characters (U+0000–U+001F, U+007F–U+009F) and bidirectional controls (U+200E,
//! U+200F, U+202A–U+202E, U+2066–U+2069).
//!
//! The `invalid_characters` rule uses [`first_forbidden`]; everything ferry prints for a
//! terminal from data (lists, status, summaries, paths) goes through [`escape`], so that an
//! account number cannot forge a row with a newline, move the cursor with ESC, or reverse a line.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether two strings are equal, compared inline a word at a time: as `a == b`, without a
/// call to `memcmp` for what are nearly always short keys and codes (the key lookups of the
/// flattener and the list checks of the rules, millions a dump; issue 15).
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last word, overlapping the one before when `n` is not a multiple of 8.
    word(a, n - 8) == word(b, n - 8)
}

/// True for a control or bidirectional control character.
pub fn is_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first forbidden character of `v` with its position in characters (from 1), leaving out
/// line feed, carriage return and tab when `multiline`. A byte scan settles the common case:
/// every forbidden character starts with a byte below 0x20, 0x7F, 0xC2 or 0xE2.
pub fn first_forbidden(v: &str, multiline: bool) -> Option<(usize, char)> {
    if !may_be_forbidden(v.as_bytes()) {
        return None;
    }
    v.chars()
        .enumerate()
        .find(|(_, c)| is_forbidden(*c) && !(multiline && matches!(c, '\n' | '\r' | '\t')))
        .map(|(i, c)| (i + 1, c))
}

/// False when no forbidden character can be in `bytes` (UTF-8 text, or many texts one after
/// another): none has a byte that starts one, below 0x20, 0x7F, 0xC2 or 0xE2.
pub fn may_be_forbidden(bytes: &[u8]) -> bool {
    // A fold without an early exit, so that the compiler checks many bytes at once: nearly
    // every text has none of them.
    bytes.iter().fold(false, |any, &b| any | (b < 0x20) | (b == 0x7F) | (b == 0xC2) | (b == 0xE2))
}

/// The name of a forbidden character, as a finding's detail says it: `U+001B (ESC)`.
pub fn describe(c: char) -> String {
    let name = match c {
        '\0' => "NUL",
        '\t' => "tab",
        '\n' => "line feed",
        '\r' => "carriage return",
        '\u{1B}' => "ESC",
        '\u{7F}' => "DEL",
        '\u{200E}' => "left-to-right mark",
        '\u{200F}' => "right-to-left mark",
        '\u{202A}'..='\u{202E}' => "bidirectional embedding or override",
        '\u{2066}'..='\u{2069}' => "bidirectional isolate",
        _ => "control character",
    };
    format!("U+{:04X} ({name})", c as u32)
}

/// `v` with every forbidden character written as `\n`, `\r`, `\t` or `\u{…}`; unchanged (and
/// not copied) when it has none.
pub fn escape(v: &str) -> Cow<'_, str> {
    if first_forbidden(v, false).is_none() {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_forbidden(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_is_string_equality() {
        let words = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefgi",
            "abcdefghi",
            "abcdefghij",
            "bbcdefghij",
            "external_account_number",
            "external_account_numbes",
            "xternal_account_number",
            "ü",
            "u",
        ];
        for a in words {
            for b in words {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
            }
        }
        for n in 0..40 {
            let a = "k".repeat(n);
            for i in 0..n {
                let mut b = a.clone().into_bytes();
                b[i] = b'j';
                assert!(!same(&a, std::str::from_utf8(&b).unwrap()), "{n} {i}");
            }
            assert!(same(&a, &a.clone()));
        }
    }

    #[test]
    fn the_spec_ranges_and_nothing_else() {
        for c in [
            '\0', '\u{1F}', '\u{7F}', '\u{85}', '\u{9F}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}',
            '\u{2069}',
        ] {
            assert!(is_forbidden(c), "{c:?}");
            assert_eq!(first_forbidden(&format!("ab{c}"), false), Some((3, c)));
        }
        for c in [
            ' ', '~', '\u{A0}', 'ä', 'ß', '\u{200B}', '\u{200D}', '\u{2029}', '\u{202F}', '\u{2065}', '\u{206A}', '€',
            '😀',
        ] {
            assert!(!is_forbidden(c), "{c:?}");
            assert_eq!(first_forbidden(&format!("ab{c}"), false), None, "{c:?}");
        }
        assert_eq!(first_forbidden("line\nbreak\ttab\r", true), None);
        assert_eq!(first_forbidden("line\nbreak\u{1B}", true), Some((11, '\u{1B}')));
        assert_eq!(first_forbidden("line\nbreak", false), Some((5, '\n')));
    }

    #[test]
    fn escaping_keeps_one_line_and_leaves_clean_text_alone() {
        assert!(matches!(escape("ACME-42 Müller"), Cow::Borrowed(_)));
        assert_eq!(escape("A\nB\u{1B}[31m\u{202E}C\0"), "A\\nB\\u{1b}[31m\\u{202e}C\\u{0}");
        assert_eq!(describe('\u{1B}'), "U+001B (ESC)");
        assert_eq!(describe('\u{202E}'), "U+202E (bidirectional embedding or override)");
    }
}
