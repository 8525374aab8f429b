//! IBAN (ISO 13616) as the SWIFT IBAN registry defines it, checked as given (docs/identifiers.md).
//!
//! In order: the electronic shape (`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`: no spaces, no lower
//! case, because the platform receives exactly the string in the dump); a registry country; the
//! country's BBAN format position by position (its fixed length, digits where the format says
//! `n`, letters where it says `a`); check digits 02–98 (MOD 97-10 never produces 00, 01 or 99);
//! and mod 97 = 1. No national check digits. The country table is generated from the registry
//! by `scripts/iban_registry.py` (release in [`REGISTRY_RELEASE`]).

use super::iban_registry::COUNTRIES;
pub use super::iban_registry::RELEASE as REGISTRY_RELEASE;

/// Why a value is not a valid IBAN, or `None` when it is one.
pub fn iban_problem(value: &str) -> Option<String> {
    let b = value.as_bytes();
    if value.contains(' ') {
        return Some("is in paper format: remove the spaces (the platform receives the value as given)".into());
    }
    if b.iter().any(u8::is_ascii_lowercase) {
        return Some("has lower-case letters: IBANs are upper case".into());
    }
    let shape = b.len() >= 15
        && b.len() <= 34
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..4].iter().all(u8::is_ascii_digit)
        && b[4..].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shape {
        return Some("is not an IBAN: two letters, two check digits and 11 to 30 letters or digits".into());
    }
    let country = &value[..2];
    let Ok(at) = COUNTRIES.binary_search_by_key(&country, |(code, ..)| code) else {
        return Some(format!("has country code {country}, which is not in the SWIFT IBAN registry"));
    };
    let (_, name, format, positions) = COUNTRIES[at];
    let bban = &b[4..];
    if bban.len() != positions.len() {
        return Some(format!("has {} characters; IBANs of {name} have {}", b.len(), positions.len() + 4));
    }
    for (i, (c, class)) in bban.iter().zip(positions.bytes()).enumerate() {
        let fits = match class {
            b'n' => c.is_ascii_digit(),
            b'a' => c.is_ascii_uppercase(),
            _ => true,
        };
        if !fits {
            let want = if class == b'n' { "a digit" } else { "a letter" };
            return Some(format!(
                "has {:?} at position {}, where {name}'s format {format} has {want}",
                *c as char,
                i + 5
            ));
        }
    }
    let check = &value[2..4];
    if matches!(check, "00" | "01" | "99") {
        return Some(format!("has check digits {check}, which MOD 97-10 never produces"));
    }
    if iban_mod97(value) != Some(1) {
        return Some("has check digits that do not match (mod 97 is not 1)".into());
    }
    None
}

/// Whether `value` is a valid IBAN, as given.
pub fn is_valid_iban(value: &str) -> bool {
    iban_problem(value).is_none()
}

/// The ISO 13616 remainder of an IBAN (1 for a valid one): mod 97 of the digits after moving
/// the first four characters to the end and replacing letters with 10–35.
pub fn iban_mod97(iban: &str) -> Option<u32> {
    let b = iban.as_bytes();
    if b.len() < 5 {
        return None;
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    Some(rem)
}

/// An IBAN for `country` and `bban` with the right check digits.
pub fn iban_from_bban(country: &str, bban: &str) -> String {
    let rem = iban_mod97(&format!("{country}00{bban}")).expect("country and bban are alphanumeric");
    format!("{country}{:02}{bban}", 98 - rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        for v in [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "DE44500105175407324931",
            "PK36SCBL0000001123456702",
            "HN88CABF00000000000250005469",
        ] {
            assert_eq!(iban_problem(v), None, "{v} should be valid");
        }
        for (v, why) in [
            ("GB82WEST12345698765431", "do not match"),
            ("DE89370400440532013001", "do not match"),
            ("DE00370400440532013000", "check digits 00"),
            ("DE99370400440000000024", "check digits 99"),
            ("DE26471Y05039448169583", "'Y' at position 8, where Germany's format 8!n10!n has a digit"),
            ("DE89 3704 0044 0532 0130 00", "remove the spaces"),
            ("GB82west12345698765432", "lower-case"),
            ("US12345678901234567", "not in the SWIFT IBAN registry"),
            ("DE8937040044053201300", "IBANs of Germany have 22"),
            ("", "is not an IBAN"),
        ] {
            let problem = iban_problem(v).unwrap_or_else(|| panic!("{v} should be invalid"));
            assert!(problem.contains(why), "{v}: {problem}");
        }
        assert_eq!(iban_from_bban("DE", "370400440532013000"), "DE89370400440532013000");
    }

    #[test]
    fn registry_table_is_sorted_and_well_formed() {
        assert!(COUNTRIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(COUNTRIES.len(), 89, "registry release {REGISTRY_RELEASE} has 89 countries");
        for (code, _, _, positions) in COUNTRIES {
            assert!((11..=30).contains(&positions.len()), "{code}");
            assert!(positions.bytes().all(|c| matches!(c, b'n' | b'a' | b'c')), "{code}");
        }
    }
}
