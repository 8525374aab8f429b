//! Differential tests: ferry's identifier checks against the verdicts of the reference
//! implementations, on the corpora of tests/corpus/ (made by scripts/identifier_corpus.py, which
//! says how to regenerate them). Each row holds the reference's verdict and ferry's; they differ
//! only where the spec deliberately does, and then the row says which rule of the spec.

use serde::Deserialize;

use crate::rules::formats;
use crate::schema::Check;

#[derive(Deserialize)]
struct Row {
    value: String,
    reference: bool,
    ferry: bool,
    why: String,
    source: String,
}

#[derive(Deserialize)]
struct Header {
    identifier: String,
    reference: String,
}

/// The spec rules a row may name where ferry differs from the reference, per identifier.
fn allowed_exceptions(identifier: &str) -> &'static [&'static str] {
    match identifier {
        "phone" => &[
            "spec: an empty phone number means none",
            "spec: checked as given, E.164 without spaces or punctuation",
            "spec: E.164 allows at most 15 digits",
            "spec: no trunk zero after +49",
        ],
        "iban" => &[
            "spec: checked as given, no spaces and upper case only",
            "spec: check digits 02-98 (MOD 97-10 never produces 00, 01 or 99)",
        ],
        "email" => &[
            "spec: an empty e-mail means none",
            "spec §1: control characters are refused (invalid_characters)",
            "spec: an IP-literal domain is invalid_email",
            "spec: a one-label domain is invalid_email",
            "spec: the local part is ASCII (Django's IGNORECASE also lets İ ı ſ K match [A-Z])",
            "spec: the length is max_length (over 254), the check judges the grammar",
        ],
        _ => &[],
    }
}

/// Runs `check` over one corpus; returns (rows, spec exceptions) after asserting zero
/// disagreements.
fn run(text: &str, check: Check) -> (usize, usize) {
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("a header line")).expect("header JSON");
    let header: Header = serde_json::from_value(header["header"].clone()).expect("header fields");
    let allowed = allowed_exceptions(&header.identifier);
    let (mut rows, mut exceptions) = (0, 0);
    let mut wrong = Vec::new();
    for line in lines {
        let row: Row = serde_json::from_str(line).expect("a corpus row");
        rows += 1;
        assert_eq!(
            row.why.is_empty(),
            row.reference == row.ferry,
            "{}: `why` must be set exactly on exceptions",
            row.value
        );
        if !row.why.is_empty() {
            exceptions += 1;
            assert!(allowed.contains(&row.why.as_str()), "{:?}: not a spec exception: {}", row.value, row.why);
        }
        if formats::passes(check, &row.value) != row.ferry {
            wrong.push(format!("{:?} (reference {}, want {}; {})", row.value, row.reference, row.ferry, row.source));
        }
    }
    assert!(rows >= 1000, "{}: only {rows} values", header.identifier);
    assert!(
        wrong.is_empty(),
        "{}: {} of {rows} values disagree with {}:\n{}",
        header.identifier,
        wrong.len(),
        header.reference,
        wrong.join("\n")
    );
    (rows, exceptions)
}

macro_rules! corpus {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/", $name, ".jsonl"))
    };
}

#[test]
fn phone_agrees_with_libphonenumber() {
    let (_, exceptions) = run(corpus!("phone"), Check::Phone);
    assert!(exceptions > 0, "the spec's phone exceptions are in the corpus");
}

#[test]
fn iban_agrees_with_the_registry() {
    run(corpus!("iban"), Check::Iban);
}

#[test]
fn email_agrees_with_django() {
    run(corpus!("email"), Check::Email);
}

#[test]
fn malo_agrees_with_bdew() {
    assert_eq!(run(corpus!("malo"), Check::Malo).1, 0);
}

#[test]
fn melo_agrees() {
    assert_eq!(run(corpus!("melo"), Check::Melo).1, 0);
}

#[test]
fn market_partner_agrees_with_bdew_and_gs1() {
    assert_eq!(run(corpus!("market_partner"), Check::MarketPartner).1, 0);
}

#[test]
fn eic_agrees_with_stdnum() {
    assert_eq!(run(corpus!("eic"), Check::Eic).1, 0);
}
