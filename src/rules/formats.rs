//! The identifier and format checks a schema field can name with `check = "..."`.
//!
//! Market identifiers come from [`crate::identifiers`]; IBANs from `iban_validate`, phone
//! numbers from `phonenumber` (libphonenumber's metadata). The rest are small and exact, as
//! spec/fields.md §5 reads them.

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
        Check::Iban => value.parse::<iban::Iban>().is_ok(),
        Check::Phone => value.is_empty() || is_valid_phone(value),
        Check::Email => value.is_empty() || is_valid_email(value),
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
        Check::Iban => format!("{q} is not a valid IBAN"),
        Check::Phone => format!("{q} is not a valid phone number"),
        Check::Email => format!("{q} is not a valid e-mail address"),
        Check::MeterNumber => format!("{q} is not a valid meter serial number (letters, digits and -)"),
        Check::DocumentPath => format!("{q} is not a valid document path (relative, no .., no backslash)"),
        Check::ImportSupplier => {
            format!("{q} is not a valid import supplier code (A-Z, 0-9 and _, starting with a letter)")
        }
    }
}

/// E.164 with at most 15 digits, valid for its country; no trunk zero after +49.
fn is_valid_phone(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else { return false };
    let plain = digits.bytes().all(|b| b.is_ascii_digit());
    if !plain || !(8..=15).contains(&digits.len()) || digits.starts_with('0') || digits.starts_with("490") {
        return false;
    }
    phonenumber::parse(None, value).is_ok_and(|n| phonenumber::is_valid(&n))
}

/// One `@`; a local part of 1–64 characters without spaces; a domain of dot-separated labels
/// of letters, digits and hyphens (not at a label's ends) whose last label has at least two
/// letters.
fn is_valid_email(value: &str) -> bool {
    let mut parts = value.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    let local_ok = (1..=64).contains(&local.chars().count()) && !local.chars().any(char::is_whitespace);
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels.last().is_some_and(|t| t.bytes().filter(u8::is_ascii_alphabetic).count() >= 2);
    local_ok && labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok
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
    fn phone_vectors() {
        for v in ["+491741721223", "+49301234567", "", "+4915112345678"] {
            assert!(passes(Check::Phone, v), "{v} should be valid");
        }
        for v in ["+490301234567", "+4930123456789012", "01741721223", "abcde", "+49 30 1234567"] {
            assert!(!passes(Check::Phone, v), "{v} should be invalid");
        }
    }

    #[test]
    fn iban_vectors() {
        for v in ["GB82WEST12345698765432", "DE89370400440532013000", "DE44500105175407324931"] {
            assert!(passes(Check::Iban, v), "{v} should be valid");
        }
        for v in ["GB82WEST12345698765431", "DE89370400440532013001", "DE00370400440532013000", ""] {
            assert!(!passes(Check::Iban, v), "{v} should be invalid");
        }
    }

    #[test]
    fn email_vectors() {
        for v in ["", "a@b.de", "johann.goethe42@example.de", "x@sub-domain.example.com"] {
            assert!(passes(Check::Email, v), "{v} should be valid");
        }
        for v in ["kein-at-zeichen.example.de", "a@b", "a b@c.de", "a@-b.de", "a@b.d1", "@b.de", "a@@b.de", "a@b..de"] {
            assert!(!passes(Check::Email, v), "{v} should be invalid");
        }
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
