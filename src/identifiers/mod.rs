//! Identifier checks of the German energy market, of payments and of contact details
//! (docs/identifiers.md).
//!
//! Pure functions, each tested on the spec's vectors and, in `corpus`, on the differential
//! corpora of tests/corpus/ (verdicts of the reference implementations). The check-digit
//! computations are public too, because the generator builds valid identifiers with them.

#[cfg(test)]
mod corpus;
mod email;
mod iban;
mod iban_registry;
mod phone;

pub use email::is_valid_email;
pub use iban::{REGISTRY_RELEASE as IBAN_REGISTRY_RELEASE, iban_from_bban, iban_mod97, iban_problem, is_valid_iban};
pub use phone::{PHONE_METADATA_VERSION, is_valid_phone};

/// The BDEW check digit (§8.1) over `digits`: odd positions ×1, even positions ×2, no digit
/// sum, check = (10 − s mod 10) mod 10. Not Luhn.
pub fn bdew_check_digit(digits: &[u8]) -> u8 {
    let s: u32 = digits.iter().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 2 }).sum();
    ((10 - s % 10) % 10) as u8
}

/// The GS1 mod-10 check digit over `digits`: weights 1, 3, 1, 3, … from the left.
pub fn gs1_check_digit(digits: &[u8]) -> u8 {
    let s: u32 = digits.iter().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
    ((10 - s % 10) % 10) as u8
}

/// What the identifier checks agree with, for `ferry --version` and the field reference.
pub static REFERENCES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "phone numbers by libphonenumber metadata {PHONE_METADATA_VERSION}, IBANs by the SWIFT IBAN registry release \
         {IBAN_REGISTRY_RELEASE}, e-mail addresses as Django's EmailValidator"
    )
});

/// A control character (U+0000–U+001F, U+007F–U+009F) or a bidirectional control (U+200E,
/// U+200F, U+202A–U+202E, U+2066–U+2069): no identifier may hold one (docs/identifiers.md).
pub fn is_forbidden_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn all_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// MaLo-ID: 11 digits, the first 1–9, the last the BDEW check digit of the first ten.
pub fn is_valid_malo(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11 && all_digits(s) && b[0] != b'0' && bdew_check_digit(&b[..10]) == b[10] - b'0'
}

/// MeLo-ID: `DE`, 11 digits, 20 characters of `A-Z0-9`. No check digit.
pub fn is_valid_melo(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 33
        && b.starts_with(b"DE")
        && b[2..13].iter().all(u8::is_ascii_digit)
        && b[13..].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// Market-partner ID: 13 digits, valid under the BDEW or the GS1 check.
pub fn is_valid_market_partner(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 13 || !all_digits(s) {
        return false;
    }
    let check = b[12] - b'0';
    bdew_check_digit(&b[..12]) == check || gs1_check_digit(&b[..12]) == check
}

const EIC_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-";

fn eic_value(c: u8) -> Option<u32> {
    EIC_ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// The EIC check character over the first 15 characters, or `None` if one is outside the
/// alphabet.
pub fn eic_check_char(first15: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in first15.iter().enumerate() {
        sum += eic_value(*c)? * (16 - i as u32);
    }
    let check = 36 - ((sum + 36) % 37);
    Some(EIC_ALPHABET[check as usize])
}

/// EIC: 16 characters of `0-9A-Z-`, the last the check character (never `-`).
pub fn is_valid_eic(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16 && b[15] != b'-' && eic_value(b[15]).is_some() && eic_check_char(&b[..15]) == Some(b[15])
}

/// OBIS: `A-B:C.D.E` with optional `*F`, each group a number 0–255 of 1–3 digits.
pub fn is_valid_obis(s: &str) -> bool {
    let (main, f) = match s.split_once('*') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let group = |g: &str| !g.is_empty() && g.len() <= 3 && all_digits(g) && g.parse::<u16>().is_ok_and(|v| v <= 255);
    let Some((a, rest)) = main.split_once('-') else { return false };
    let Some((b, cde)) = rest.split_once(':') else { return false };
    let parts: Vec<&str> = cde.split('.').collect();
    group(a) && group(b) && parts.len() == 3 && parts.iter().all(|p| group(p)) && f.is_none_or(group)
}

/// German postcode: five digits, not starting with `00`.
pub fn is_valid_postcode(s: &str) -> bool {
    s.len() == 5 && all_digits(s) && !s.starts_with("00")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malo_vectors() {
        for v in [
            "41373559241",
            "51238696781",
            "12345678913",
            "56789012345",
            "52935155442",
            "10024073272",
            "74018657187",
            "50203829715",
        ] {
            assert!(is_valid_malo(v), "{v} should be valid");
        }
        for v in [
            "41373559240",
            "41373559242",
            "12345678918",
            "51238696780",
            "01373559241",
            "512386967890",
            "4137X559241",
            "60203829716",
        ] {
            assert!(!is_valid_malo(v), "{v} should be invalid");
        }
        assert!(is_valid_malo("60203829714"), "the guide's identifier with its right check digit");
    }

    #[test]
    fn melo_vectors() {
        assert!(is_valid_melo("DE00056266802AO6G56M11SN51G21M24S"));
        assert!(is_valid_melo("DE700146823190123456789ABCDEFGHIJ"));
        assert!(!is_valid_melo("DE00056266802AO6G56M11SN51G21M24"));
        assert!(!is_valid_melo("de00056266802AO6G56M11SN51G21M24S"));
        assert!(!is_valid_melo("DE00056266802AO6G56M11SN51G21M2-S"));
    }

    #[test]
    fn market_partner_vectors() {
        for v in [
            "9910902000001",
            "9900269000000",
            "9900635000006",
            "9903756000004",
            "9900259000002",
            "9800505300009",
            "1900100300012",
            "9870075000009",
            "4033872000058",
            "4006381333931",
            "0454567890121",
        ] {
            assert!(is_valid_market_partner(v), "{v} should be valid");
        }
        for v in ["9870075000019", "9970075000019", "9970075000009", "9970075000029", "1234567890123", "9900123456789"]
        {
            assert!(!is_valid_market_partner(v), "{v} should be invalid");
        }
    }

    #[test]
    fn eic_vectors() {
        for v in [
            "11X0-0000-0665-E",
            "10YAT-APG------L",
            "10YDE-EON------1",
            "10YDE-RWENET---I",
            "10YDE-VE-------2",
            "10YDE-ENBW-----N",
            "10Y1001A1001A82H",
            "21Z000000000163R",
            "22XWATTPLUS----G",
            "11XRWENET12345-2",
            "10X1001A1001A361",
            "11YN10000762-01E",
        ] {
            assert!(is_valid_eic(v), "{v} should be valid");
        }
        for v in [
            "10YDE-TENTACLE-H",
            "22XWATTPLUS----X",
            "23X--130302DLGW-",
            "10YDE-EON------2",
            "11XRWENET12345-3",
            "10X1001A1001A360",
        ] {
            assert!(!is_valid_eic(v), "{v} should be invalid");
        }
        assert_eq!(eic_check_char(b"10YDE-TENTACLE-"), Some(b'M'));
    }

    #[test]
    fn obis_vectors() {
        for v in ["1-0:1.8.0", "1-1:1.8.1", "1-1:1.29.0", "7-20:99.33.17", "1-0:1.8.0*255"] {
            assert!(is_valid_obis(v), "{v} should be valid");
        }
        for v in ["1.8.0", "1-1:1.8", "1-256:1.8.0", "1-0:1,8,0", "1-0:1.8.0*", "1-0:1.8.0*256"] {
            assert!(!is_valid_obis(v), "{v} should be invalid");
        }
    }

    #[test]
    fn postcode_vectors() {
        for v in ["20099", "01067", "99998"] {
            assert!(is_valid_postcode(v));
        }
        for v in ["00999", "2009", "20099 "] {
            assert!(!is_valid_postcode(v));
        }
    }
}
