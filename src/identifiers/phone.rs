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
    value.parse::<rlibphonenumber::PhoneNumber>().is_ok_and(|n| n.is_valid())
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
}
