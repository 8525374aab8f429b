//! Masking personal data in what the report shows: names, addresses and free text, e-mail
//! addresses, phone numbers, IBANs and bank account numbers, dates of birth.
//!
//! A masked value keeps enough of its shape to recognise the mistake (`j***@e***.de`,
//! `+49*******23`, `DE89****************00`) and never the whole value. Values are masked by
//! the field they came from; details and any other text are masked by what their words look
//! like, after the finding's own value is replaced by its masked form.

/// Fields whose values are personal data, by their last attr segment.
const NAME_FIELDS: &[&str] = &[
    "given_name",
    "family_name",
    "account_holder",
    "salutation",
    "billing_address1",
    "billing_address2",
    "billing_address3",
    "billing_address4",
    "supply_address1",
    "supply_address2",
    "supply_address3",
    "supply_address4",
    // Free text, which may say anything about a person.
    "body",
    "campaign_note",
];
const PHONE_FIELDS: &[&str] = &["mobile", "landline", "phone"];
const NUMBER_FIELDS: &[&str] = &["iban", "account_number", "bank_account.iban", "bank_account.account_number"];

/// The masked form of `value`, found at `attr` (`customers.0.email`).
pub fn value(attr: &str, value: &str) -> String {
    let field = attr.rsplit('.').find(|s| !s.chars().all(|c| c.is_ascii_digit())).unwrap_or(attr);
    if value.trim().is_empty() {
        return value.to_owned();
    }
    if NAME_FIELDS.contains(&field) {
        return keep_ends(value, 1, 0);
    }
    if field.contains("email") {
        return email(value);
    }
    if PHONE_FIELDS.contains(&field) {
        return keep_ends(value, 3, 2);
    }
    if NUMBER_FIELDS.contains(&field) {
        return keep_ends(value, 4, 2);
    }
    if field == "date_of_birth" {
        return value.chars().map(|c| if c.is_ascii_digit() { '*' } else { c }).collect();
    }
    text(value)
}

/// `text` (a detail) with the finding's `raw` value replaced by `masked`, then every word that
/// looks like an e-mail address, a phone number or an IBAN masked. Details show values through
/// [`crate::findings::quote`] (escaped, a long value cut to its head), so that form is replaced
/// first, then the value as it is.
pub fn detail(text_: &str, raw: Option<&str>, masked: Option<&str>) -> String {
    let replaced = match (raw, masked) {
        (Some(raw), Some(masked)) if !raw.is_empty() && raw != masked => {
            let quoted = crate::findings::quote(raw);
            text_.replace(&quoted, &crate::findings::quote(masked)).replace(raw, masked)
        }
        _ => text_.to_owned(),
    };
    text(&replaced)
}

/// Masks the words of free text that look like personal data.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    for c in text.chars() {
        if c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',' | ';' | '(' | ')' | '<' | '>' | '[' | ']') {
            out.push_str(&word_mask(&word));
            word.clear();
            out.push(c);
        } else {
            word.push(c);
        }
    }
    out.push_str(&word_mask(&word));
    out
}

fn word_mask(word: &str) -> String {
    let digits = word.chars().filter(char::is_ascii_digit).count();
    if let Some(at) = word.find('@')
        && at > 0
        && at + 1 < word.len()
    {
        return email(word);
    }
    // An IBAN (its check digits hold): other identifiers of that shape (MeLo-IDs) are not
    // personal data and stay readable.
    if word.len() >= 15 && crate::identifiers::is_valid_iban(word) {
        return keep_ends(word, 4, 2);
    }
    let phone_like = (7..=15).contains(&digits)
        && (word.starts_with('+') || word.starts_with('0'))
        && word.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '/' | '.'))
        && !is_date(word);
    if phone_like {
        return keep_ends(word, 3, 2);
    }
    word.to_owned()
}

fn is_date(word: &str) -> bool {
    chrono::NaiveDate::parse_from_str(word.trim_end_matches('.'), "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(word).is_ok()
}

/// `j***@e***.de`: the first letter of the local part and of the domain, and the top-level
/// domain.
fn email(value: &str) -> String {
    let Some((local, domain)) = value.rsplit_once('@') else { return keep_ends(value, 1, 0) };
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    let tld = if tld.is_empty() { String::new() } else { format!(".{tld}") };
    format!("{}***@{}***{tld}", first(local), first(host))
}

/// Keeps `head` characters at the start and `tail` at the end, stars between; a value too
/// short to keep anything is all stars.
fn keep_ends(value: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= head + tail + 1 {
        return "*".repeat(chars.len().max(1));
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_by_their_field() {
        assert_eq!(value("customers.0.email", "johann.goethe@example.de"), "j***@e***.de");
        assert_eq!(value("customers.0.mobile", "+491741721223"), "+49********23");
        assert_eq!(value("customers.1.family_name", "Goethe"), "G*****");
        assert_eq!(
            value("payment_instructions.0.bank_account.iban", "DE89370400440532013000"),
            "DE89****************00"
        );
        assert_eq!(value("customers.0.date_of_birth", "1997-07-26"), "****-**-**");
        assert_eq!(value("billing_postcode", "2009"), "2009", "not personal data");
        assert_eq!(value("supply_addresses.0.supply_address1", "Hauptstr. 1"), "H**********");
        let melo = "DE0001234567890123456789012345678";
        assert_eq!(value("supply_addresses.0.supply_points.0.melos.0.melo_number", melo), melo);
    }

    #[test]
    fn a_detail_never_keeps_the_value_it_quotes() {
        for raw in ["Zacharias\u{7}", "Zach \"the\" Zettel", &"Zacharias".repeat(12)] {
            let masked = value("customers.0.given_name", raw);
            let shown = detail(&format!("{} is wrong", crate::findings::quote(raw)), Some(raw), Some(&masked));
            assert!(!shown.contains("acharias") && !shown.contains("ettel"), "{shown}");
        }
    }

    #[test]
    fn text_masks_what_looks_like_personal_data() {
        let t = text("e-mail 'a.b@c.de' and 01741721223, +491741721223, IBAN GB82WEST12345698765432 on 2021-05-13");
        assert_eq!(
            t,
            "e-mail 'a***@c***.de' and 017******23, +49********23, IBAN GB82****************32 on 2021-05-13"
        );
        assert_eq!(text("ledger_balance 621.75, line 1234567"), "ledger_balance 621.75, line 1234567");
        assert_eq!(detail("mobile +4917 is invalid", Some("+4917"), Some("***")), "mobile *** is invalid");
    }
}
