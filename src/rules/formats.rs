//! The identifier and format checks a schema field can name with `check = "..."`.
//!
//! Identifiers, IBANs, phone numbers and e-mail addresses come from [`crate::identifiers`],
//! where each agrees with its reference implementation (tests/corpus/). The rest are small and
//! exact (docs/identifiers.md).

use crate::identifiers;
use crate::schema::Check;

/// Whether `value` passes `check`. Empty e-mails and phone numbers are allowed (`""` means
/// none); every other check treats `""` as a bad value.
pub fn passes(check: Check, value: &str) -> bool {
    match check {
        Check::Malo => identifiers::is_valid_malo(value),
        Check::Melo => identifiers::is_valid_melo(value),
        Check::MarketPartner => identifiers::is_valid_market_partner(value),
        Check::Eic => identifiers::is_valid_eic(value),
        Check::Obis => identifiers::is_valid_obis(value),
        Check::Postcode => identifiers::is_valid_postcode(value),
        Check::Iban => identifiers::is_valid_iban(value),
        Check::Phone => value.is_empty() || identifiers::is_valid_phone(value),
        Check::Email => value.is_empty() || identifiers::is_valid_email(value),
        Check::MeterNumber => is_valid_meter_number(value),
        Check::DocumentPath => is_valid_document_path(value),
        Check::ImportSupplier => is_valid_import_supplier(value),
    }
}

/// The sentence of a failed check, quoting the value.
pub fn detail(check: Check, value: &str) -> String {
    let q = crate::findings::quote(value);
    match check {
        Check::Malo => {
            format!("{q} is not a valid supply point identifier (MaLo-ID: 11 digits with the BDEW check digit)")
        }
        Check::Melo => format!("{q} is not a valid MeLo-ID (DE, 11 digits, 20 characters A-Z or 0-9)"),
        Check::MarketPartner => {
            format!("{q} is not a valid market partner ID (13 digits with a BDEW or GS1 check digit)")
        }
        Check::Eic => format!("{q} is not a valid EIC (16 characters with a valid check character)"),
        Check::Obis => format!("{q} is not a valid OBIS code (A-B:C.D.E, each 0-255)"),
        Check::Postcode => format!("{q} is not a valid German postcode"),
        Check::Iban => match identifiers::iban_problem(value) {
            Some(problem) => format!("{q} is not a valid IBAN: it {problem}"),
            None => format!("{q} is not a valid IBAN"),
        },
        Check::Phone => format!("{q} is not a valid phone number"),
        Check::Email => format!("{q} is not a valid e-mail address"),
        Check::MeterNumber => format!("{q} is not a valid meter serial number (letters, digits and -)"),
        Check::DocumentPath => format!("{q} is not a valid document path (relative, no .., no backslash)"),
        Check::ImportSupplier => {
            format!("{q} is not a valid import supplier code (A-Z, 0-9 and _, starting with a letter)")
        }
    }
}

/// `^[A-Za-z0-9][A-Za-z0-9-]*$`.
fn is_valid_meter_number(value: &str) -> bool {
    let mut bytes = value.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric()) && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Relative, no `..` segment, no leading `/`, no backslash, not empty.
fn is_valid_document_path(value: &str) -> bool {
    !value.is_empty() && !value.starts_with('/') && !value.contains('\\') && value.split('/').all(|seg| seg != "..")
}

/// `^[A-Z][A-Z0-9_]*$`.
fn is_valid_import_supplier(value: &str) -> bool {
    let mut bytes = value.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase())
        && bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_none_only_for_phone_and_email() {
        assert!(passes(Check::Phone, "") && passes(Check::Email, ""));
        assert!(!passes(Check::Iban, "") && !passes(Check::Malo, ""));
    }

    #[test]
    fn small_format_vectors() {
        assert!(passes(Check::MeterNumber, "G123456") && passes(Check::MeterNumber, "E0000001-2"));
        assert!(
            !passes(Check::MeterNumber, "-G1") && !passes(Check::MeterNumber, "G 1") && !passes(Check::MeterNumber, "")
        );
        assert!(passes(Check::DocumentPath, "EXTERNAL-1234/2021-01-01-to-2022-01-01-gas.pdf"));
        for v in ["/etc/passwd", "a/../b", "a\\b", ""] {
            assert!(!passes(Check::DocumentPath, v), "{v} should be invalid");
        }
        assert!(passes(Check::ImportSupplier, "TENTACLE_ENERGY"));
        for v in ["tentacle", "1ABC", "A-B", ""] {
            assert!(!passes(Check::ImportSupplier, v), "{v} should be invalid");
        }
    }
}
