//! Phone numbers (`mobile`, `landline`): E.164 as given, valid by Google's libphonenumber.
//!
//! The spec's own rules come first: `^\+[1-9][0-9]{7,14}$` (at most 15 digits; libphonenumber
//! accepts some 16-digit numbers and parses spaces and punctuation away, the platform receives
//! the string as given) and no trunk zero after +49 (`+490…`, which libphonenumber strips).
//! Then libphonenumber's `is_valid_number` decides, through `rlibphonenumber`, a port that
//! agrees with the reference on every number of tests/corpus/phone.jsonl (the `phonenumber`
//! crate did not: it accepted +49 137/138 and 18x numbers of the wrong length, among others).

/// The libphonenumber metadata release the phone check uses: the one `rlibphonenumber` (pinned
/// in Cargo.toml) ships. tests/corpus/phone.jsonl was generated at the same release.
pub const PHONE_METADATA_VERSION: &str = "9.0.42";

/// E.164 with at most 15 digits, no trunk zero after +49, valid for its country.
pub fn is_valid_phone(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else { return false };
    let plain = digits.bytes().all(|b| b.is_ascii_digit());
    if !plain || !(8..=15).contains(&digits.len()) || digits.starts_with('0') || digits.starts_with("490") {
        return false;
    }
    match german(digits) {
        Some(number) => number.is_valid(),
        None => parsed_is_valid(value),
    }
}

/// libphonenumber's own answer: `parse(value, None)`, then `is_valid_number`.
fn parsed_is_valid(value: &str) -> bool {
    value.parse::<rlibphonenumber::PhoneNumber>().is_ok_and(|n| n.is_valid())
}

/// The number libphonenumber's parser makes of `+{digits}` when they are 49 and a German
/// national number without a trunk zero: nearly every number of a German supplier's dump.
/// Building it directly costs a quarter of parsing it (the parser runs a dozen regular
/// expressions that a plain `+` and digits cannot need; issue 15).
///
/// Why it is the parser's number: digits after a `+` give the calling code as the shortest
/// prefix that is one (4 is none, 49 is Germany's, and calling codes are prefix-free). The rest
/// is the national number. Germany's national prefix for parsing is its trunk zero, which the
/// caller has refused, so nothing is stripped. A national number that does not start with 0
/// has no leading zeros to record. `phone_parsing_can_be_skipped_for_german_numbers` checks the
/// two against each other on every shape a dump holds and on random German numbers of each
/// length.
fn german(digits: &str) -> Option<rlibphonenumber::PhoneNumber> {
    let national = digits.strip_prefix("49").filter(|n| !n.starts_with('0'))?;
    Some(rlibphonenumber::PhoneNumber {
        country_code: 49,
        national_number: national.parse().ok()?,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        for v in ["+491741721223", "+49301234567", "+4915112345678"] {
            assert!(is_valid_phone(v), "{v} should be valid");
        }
        for v in [
            "+490301234567",
            "+4930123456789012",
            "01741721223",
            "abcde",
            "+49 30 1234567",
            "+4913768485528",
            "+4913864487",
            "+49185819185833",
            "+494949318695",
            "",
        ] {
            assert!(!is_valid_phone(v), "{v} should be invalid");
        }
    }

    #[test]
    fn phone_parsing_can_be_skipped_for_german_numbers() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
        let mut digits = |n: usize| -> String { (0..n).map(|_| char::from(b'0' + rng.random_range(0..10))).collect() };
        let mut numbers: Vec<String> = Vec::new();
        // The shapes `ferry generate` writes, then every length after each leading digit and
        // each first two digits (the national number's length decides much of its validity).
        for _ in 0..2_000 {
            numbers.push(format!("+49151{}", digits(8)));
            numbers.push(format!("+4930{}", digits(8)));
        }
        for first in 1..=99 {
            for len in 6..=13 {
                for _ in 0..12 {
                    let lead = if first < 10 { first.to_string() } else { format!("{first:02}") };
                    if !lead.starts_with('0') && lead.len() <= len {
                        numbers.push(format!("+49{lead}{}", digits(len - lead.len())));
                    }
                }
            }
        }
        let (mut valid, mut checked) = (0, 0);
        for v in &numbers {
            let digits = &v[1..];
            let direct = german(digits).expect("a German number without a trunk zero");
            let reference = parsed_is_valid(v);
            assert_eq!(direct.is_valid(), reference, "{v}");
            assert_eq!(v.parse::<rlibphonenumber::PhoneNumber>().ok(), Some(direct), "{v}");
            valid += usize::from(reference);
            checked += 1;
        }
        assert!(valid > 1_000 && checked - valid > 1_000, "{valid} valid of {checked}");
        assert!(german("4901234567").is_none() && german("4412345678").is_none());
    }
}
