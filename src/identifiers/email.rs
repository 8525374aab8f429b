//! E-mail addresses as Django's `EmailValidator` reads them (the check behind the platform's DRF
//! `EmailField`), on the value as given, with the spec's exceptions (docs/identifiers.md).
//!
//! Django splits at the last `@`. The local part is a dot-atom (atoms of ASCII letters, digits and
//! ``!#$%&'*+/=?^_`{|}~-``, dots only between atoms) or a quoted string. The domain is labels of
//! 1–63 characters of letters, digits, hyphens and anything from U+00A1 to U+FFFF ("letters of any
//! script", Django's own range), none starting or ending with a hyphen; the last label is 2–63
//! characters without digits, or `xn--` and 1–59 letters or digits (punycode).
//!
//! The exceptions: an IP-literal domain (`[192.0.2.1]`) and a one-label domain (Django's
//! `localhost` allowlist) are invalid; over 254 characters is the field's `max_length`, a rule of
//! its own (Django refuses over 320 whatever the grammar); control and bidirectional characters are
//! refused here too (§1). One quirk of Django is not followed: Python's case-insensitive `[A-Z]`
//! also matches İ, ı, ſ and K (Kelvin) in the local part, which the spec keeps ASCII.

/// Whether `value` is an address the platform accepts (`""` is handled by the caller).
pub fn is_valid_email(value: &str) -> bool {
    if value.chars().any(super::is_forbidden_char) {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else { return false };
    (is_dot_atom(local) || is_quoted_string(local)) && is_domain(domain)
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_dot_atom(local: &str) -> bool {
    local.split('.').all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

/// `"…"` holding ASCII 1–127 except tab, line feed, carriage return, space, `"` and `\`, or a
/// backslash followed by ASCII 1–127 except line feed and carriage return.
fn is_quoted_string(local: &str) -> bool {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else { return false };
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        let ok = match b {
            b'\\' => bytes.next().is_some_and(|e| matches!(e, 1..=9 | 11 | 12 | 14..=127)),
            1..=8 | 11 | 12 | 14..=31 | b'!' | b'#'..=b'[' | b']'..=127 => true,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Django's `[a-z\u00a1-\uffff0-9-]`, case-insensitive.
fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || ('\u{a1}'..='\u{ffff}').contains(&c)
}

fn is_label(label: &str) -> bool {
    let n = label.chars().count();
    (1..=63).contains(&n) && label.chars().all(is_label_char) && !label.starts_with('-') && !label.ends_with('-')
}

fn is_top_label(label: &str) -> bool {
    let n = label.chars().count();
    let letters = (2..=63).contains(&n)
        && label.chars().all(|c| is_label_char(c) && !c.is_ascii_digit())
        && !label.starts_with('-')
        && !label.ends_with('-');
    let punycode = label.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
        && (1..=59).contains(&label[4..].chars().count())
        && label[4..].chars().all(|c| c.is_ascii_alphanumeric() || PYTHON_CASEFOLD_LETTERS.contains(&c));
    letters || punycode
}

/// Letters that Python's case-insensitive `[a-z]` matches besides the ASCII ones. They matter
/// only in a punycode top label; elsewhere in a domain they are in U+00A1–U+FFFF anyway.
const PYTHON_CASEFOLD_LETTERS: [char; 4] = ['\u{130}', '\u{131}', '\u{17f}', '\u{212a}'];

fn is_domain(domain: &str) -> bool {
    let Some((rest, top)) = domain.rsplit_once('.') else { return false };
    rest.split('.').all(is_label) && is_top_label(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_vectors() {
        for v in [
            "a@b.de",
            "johann.goethe42@example.de",
            "x@sub-domain.example.com",
            "guenther.bauer@öko-strom.de",
            "info@müller.de",
            "\"test@test\"@example.com",
            "x@example.xn--p1ai",
            "example@valid-----hyphens.com",
        ] {
            assert!(is_valid_email(v), "{v} should be valid");
        }
        for v in [
            "käthe.krüger@icloud.com",
            ".braun2000@kabelmail.de",
            "<script>@example.de",
            "koe\"ster84@example.de",
            "kein-at-zeichen.example.de",
            "a@b",
            "a b@c.de",
            "a@-b.de",
            "a@b.d1",
            "@b.de",
            "a@@b.de",
            "a@b..de",
            "email@[127.0.0.1]",
            "email@localhost",
            "trailingdot@shouldfail.com.",
            "a@b.com\n",
            "a\u{200e}@example.de",
            "aıb@example.de",
        ] {
            assert!(!is_valid_email(v), "{v:?} should be invalid");
        }
    }
}
