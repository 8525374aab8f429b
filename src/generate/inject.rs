//! Error injection: mutations of a valid account, each producing exactly one known finding.
//!
//! Every mutation changes one place of the account that no other mutation touches, so the
//! findings of an account are exactly the union of its mutations' findings. Each says which
//! stage reports it: `flatten` (JSON type and presence, decided while parsing) or `rules`
//! (formats, identifiers and cross-field rules).

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use serde_json::{Value, json};

use super::account::{Built, cents};

/// Which stage of ferry reports a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Flatten,
    Rules,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Flatten => "flatten",
            Stage::Rules => "rules",
        }
    }
}

/// A finding an injected error must produce (the line is added by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub attr: String,
    pub code: &'static str,
    pub stage: Stage,
}

/// What injection did to one account.
pub enum Injection {
    /// The account was changed in place.
    Changed(Vec<Injected>),
    /// The line must be written cut short at this fraction of its length.
    Truncate(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    WrongTypeString,
    MissingRequired,
    NullRequired,
    UnknownField,
    NotAList,
    MissingFamilyName,
    WrongTypeBool,
    WrongTypeDatetime,
    MissingObject,
    Postcode,
    Email,
    Phone,
    Iban,
    MarketPartner,
    Eic,
    MaxLength,
    Choice,
    Date,
    Balance,
    DuplicateTransaction,
    NaiveDatetime,
    SupplyPointIdentifier,
    FutureReading,
    Melo,
    OldBirthDate,
    EndBeforeStart,
    EndAtStart,
    OtherSupplyTypeField,
    UnknownLedgerIdentifier,
    MissingLedger,
    MissingBankAccount,
    TransferReadingMeter,
    ReadingTooLong,
    UnknownOccupier,
    AgreementGap,
    OverlappingOperators,
    TransactionInClosedStatement,
    NetAboveGross,
    ObisMedium,
    StatementSupplyType,
}

const KINDS: [Kind; 40] = [
    Kind::WrongTypeString,
    Kind::MissingRequired,
    Kind::NullRequired,
    Kind::UnknownField,
    Kind::NotAList,
    Kind::MissingFamilyName,
    Kind::WrongTypeBool,
    Kind::WrongTypeDatetime,
    Kind::MissingObject,
    Kind::Postcode,
    Kind::Email,
    Kind::Phone,
    Kind::Iban,
    Kind::MarketPartner,
    Kind::Eic,
    Kind::MaxLength,
    Kind::Choice,
    Kind::Date,
    Kind::Balance,
    Kind::DuplicateTransaction,
    Kind::NaiveDatetime,
    Kind::SupplyPointIdentifier,
    Kind::FutureReading,
    Kind::Melo,
    Kind::OldBirthDate,
    Kind::EndBeforeStart,
    Kind::EndAtStart,
    Kind::OtherSupplyTypeField,
    Kind::UnknownLedgerIdentifier,
    Kind::MissingLedger,
    Kind::MissingBankAccount,
    Kind::TransferReadingMeter,
    Kind::ReadingTooLong,
    Kind::UnknownOccupier,
    Kind::AgreementGap,
    Kind::OverlappingOperators,
    Kind::TransactionInClosedStatement,
    Kind::NetAboveGross,
    Kind::ObisMedium,
    Kind::StatementSupplyType,
];

/// Injects one to three errors (or, rarely, makes the line not JSON at all).
pub fn inject<R: Rng>(rng: &mut R, built: &mut Built) -> Injection {
    if rng.random_bool(1.0 / 16.0) {
        return Injection::Truncate(rng.random_range(0.05..0.95));
    }
    let mut kinds = KINDS.to_vec();
    kinds.shuffle(rng);
    let want = rng.random_range(1..=3);
    let mut out = Vec::new();
    let mut applied = 0;
    for kind in kinds {
        if applied == want {
            break;
        }
        if let Some(found) = apply(rng, built, kind) {
            out.extend(found);
            applied += 1;
        }
    }
    Injection::Changed(out)
}

fn attr(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn one(pointer: &str, code: &'static str, stage: Stage) -> Option<Vec<Injected>> {
    Some(vec![Injected { attr: attr(pointer), code, stage }])
}

/// Sets the value at `pointer`; the pointer names a place the builder always fills.
fn set(account: &mut Value, pointer: &str, value: Value) {
    *account.pointer_mut(pointer).expect("the builder fills this place") = value;
}

fn remove(account: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer has a parent");
    account.pointer_mut(parent).and_then(Value::as_object_mut).expect("the builder fills this place").shift_remove(key);
}

fn apply<R: Rng>(rng: &mut R, built: &mut Built, kind: Kind) -> Option<Vec<Injected>> {
    let a = &mut built.account;
    let (ai, pi, ty) = *built.points.choose(rng).expect("an account has supply points");
    let point = format!("/supply_addresses/{ai}/supply_points/{pi}");
    let meter = format!("{point}/melos/0/meters/0");
    match kind {
        Kind::WrongTypeString => {
            let p = "/customers/0/given_name";
            set(a, p, json!(rng.random_range(1..1000)));
            one(p, "invalid_type", Stage::Flatten)
        }
        Kind::MissingRequired => {
            let p = format!("/supply_addresses/{ai}/supply_postcode");
            remove(a, &p);
            one(&p, "required", Stage::Flatten)
        }
        Kind::NullRequired => {
            let p = format!("{point}/supply_start_type");
            set(a, &p, Value::Null);
            one(&p, "null", Stage::Flatten)
        }
        Kind::UnknownField => {
            let obj = a.as_object_mut().expect("an account is an object");
            obj.insert("billing_adress1".into(), json!("Hauptstrasse"));
            one("/billing_adress1", "unknown_field", Stage::Flatten)
        }
        Kind::NotAList => {
            set(a, "/notes", json!("see the legacy system"));
            one("/notes", "not_a_list", Stage::Flatten)
        }
        Kind::MissingFamilyName => {
            let p = "/customers/0/family_name";
            remove(a, p);
            one(p, "customer_family_name_required", Stage::Flatten)
        }
        Kind::WrongTypeBool => {
            let p = "/customers/0/customer_preferences/opted_into_sms";
            set(a, p, json!("yes"));
            one(p, "invalid_type", Stage::Flatten)
        }
        Kind::WrongTypeDatetime => {
            let p = format!("{meter}/active_to");
            set(a, &p, json!(0));
            one(&p, "invalid_type", Stage::Flatten)
        }
        Kind::MissingObject => {
            let p = format!("{point}/agreements/0/params");
            if a.pointer(&format!("{p}/net_unit_rate_per_kwh")).and_then(Value::as_str) == Some("9.9") {
                return None; // NetAboveGross needs these params
            }
            remove(a, &p);
            one(&p, "required", Stage::Flatten)
        }
        Kind::Postcode => {
            set(a, "/billing_postcode", json!("2009"));
            one("/billing_postcode", "invalid_postcode", Stage::Rules)
        }
        Kind::Email => {
            let p = "/customers/0/email";
            set(a, p, json!("kein-at-zeichen.example.de"));
            one(p, "invalid_email", Stage::Rules)
        }
        Kind::Phone => {
            let p = "/customers/0/mobile";
            set(a, p, json!("abcde"));
            one(p, "invalid_phone_number", Stage::Rules)
        }
        Kind::Iban => {
            let i = built.direct_debit?;
            // The bank account may have been removed by MissingBankAccount.
            let p = format!("/payment_instructions/{i}/bank_account/iban");
            let iban = a.pointer(&p)?.as_str()?.to_owned();
            let last = iban.as_bytes()[iban.len() - 1];
            let flipped = if last == b'9' { '0' } else { char::from(last + 1) };
            set(a, &p, json!(format!("{}{flipped}", &iban[..iban.len() - 1])));
            one(&p, "invalid_iban", Stage::Rules)
        }
        Kind::MarketPartner => {
            let p = format!("{point}/previous_supplier_id");
            set(a, &p, json!("1234567890123"));
            one(&p, "invalid_market_partner_id", Stage::Rules)
        }
        Kind::Eic => {
            let p = format!("{point}/balancing_periods/0/balancing_period_time_slices/0/balancing_group");
            set(a, &p, json!("10YDE-TENTACLE-H"));
            one(&p, "invalid_eic", Stage::Rules)
        }
        Kind::MaxLength => {
            let p = "/customers/0/title";
            set(a, p, json!("Sehr geehrter Herr Professor Doktor"));
            one(p, "max_length", Stage::Rules)
        }
        Kind::Choice => {
            set(a, "/sales_channel", json!("DOOR_TO_DOOR"));
            one("/sales_channel", "invalid_choice", Stage::Rules)
        }
        Kind::Date => {
            let p = "/customers/0/date_of_birth";
            if a.pointer(p)?.as_str()? == "1890-05-01" {
                return None;
            }
            set(a, p, json!("1990-02-30"));
            one(p, "invalid_date", Stage::Rules)
        }
        Kind::OldBirthDate => {
            let p = "/customers/0/date_of_birth";
            if a.pointer(p)?.as_str()? == "1990-02-30" {
                return None;
            }
            set(a, p, json!("1890-05-01"));
            one(p, "implausible_date_of_birth", Stage::Rules)
        }
        Kind::Balance => {
            // Keep the transfer balance equal to the ledgers' sum: only the ledger is wrong.
            let shift = |v: &Value, by: i64| -> Value {
                let text = v.as_str().unwrap_or("0.00");
                let (whole, frac) = text.split_once('.').unwrap_or((text, "00"));
                let neg = whole.starts_with('-');
                let c =
                    whole.trim_start_matches('-').parse::<i64>().unwrap_or(0) * 100 + frac.parse::<i64>().unwrap_or(0);
                json!(cents(if neg { -c } else { c } + by))
            };
            let p = "/ledgers/0/ledger_balance";
            let v = shift(a.pointer(p)?, 100);
            set(a, p, v);
            let t = shift(a.pointer("/transfer_balance")?, 100);
            set(a, "/transfer_balance", t);
            one("/ledgers/0", "balance_mismatch_on_ledger_balance", Stage::Rules)
        }
        Kind::DuplicateTransaction => {
            let (li, _) = *built.ledgers.iter().find(|(_, n)| *n >= 2)?;
            let first = a.pointer(&format!("/ledgers/{li}/current_statement_transactions/0/transaction_id"))?.clone();
            let p = format!("/ledgers/{li}/current_statement_transactions/1/transaction_id");
            set(a, &p, first);
            one(&p, "duplicate_transaction_ids", Stage::Rules)
        }
        Kind::NaiveDatetime => {
            let p = format!("{point}/agreements/0/agreed_at");
            let v = a.pointer(&p)?.as_str()?.trim_end_matches('Z').to_owned();
            set(a, &p, json!(v));
            one(&p, "naive_datetime", Stage::Rules)
        }
        Kind::SupplyPointIdentifier => {
            // Change the check digit, and the ledger's copy with it: the ledger still names
            // the supply point, so only the identifier itself is wrong.
            let p = format!("{point}/identifier");
            let old = a.pointer(&p)?.as_str()?.to_owned();
            let last = old.as_bytes()[10] - b'0';
            let new = format!("{}{}", &old[..10], (last + 1) % 10);
            set(a, &p, json!(new));
            for ledger in a.get_mut("ledgers")?.as_array_mut()? {
                for id in ledger.get_mut("identifiers")?.as_array_mut()? {
                    if id.as_str() == Some(old.as_str()) {
                        *id = json!(new);
                    }
                }
            }
            one(&p, "invalid_supply_point_identifier", Stage::Rules)
        }
        Kind::FutureReading => {
            let p = format!("{meter}/registers/0/readings/0/read_at");
            a.pointer(&p)?;
            set(a, &p, json!("2099-01-01T00:00:00Z"));
            one(&p, "date_in_future", Stage::Rules)
        }
        Kind::EndBeforeStart => {
            let p = format!("{meter}/registers/0/active_to");
            set(a, &p, json!("2000-01-01T00:00:00Z"));
            one(&p, "start_date_later_than_end_date", Stage::Rules)
        }
        Kind::EndAtStart => {
            let from = a.pointer(&format!("{point}/balancing_periods/0/valid_from"))?.clone();
            let p = format!("{point}/balancing_periods/0/valid_to");
            set(a, &p, from);
            one(&p, "start_date_same_as_end_date", Stage::Rules)
        }
        Kind::OtherSupplyTypeField => {
            let m = a.pointer_mut(&meter)?.as_object_mut()?;
            let (key, value) = if ty == "GAS" {
                ("energierichtung", json!("ERZ"))
            } else {
                let cf = json!([{ "active_from_date": "2020-01-01", "active_to_date": "2024-01-01", "calorific_value": "11.2", "condition_value": "0.95" }]);
                ("conversion_factors", cf)
            };
            m.insert(key.into(), value);
            one(&format!("{meter}/{key}"), "field_not_allowed_for_supply_type", Stage::Rules)
        }
        Kind::UnknownLedgerIdentifier => {
            let p = "/ledgers/0/identifiers/0";
            a.pointer(p)?;
            set(a, p, json!(super::account::malo(rng)));
            one(p, "unknown_ledger_identifiers", Stage::Rules)
        }
        Kind::MissingLedger => {
            let p = "/payment_schedules/0/ledger_code";
            a.pointer(p)?;
            set(a, p, json!("GENERAL_LEDGER"));
            one(p, "ledger_code_does_not_exist", Stage::Rules)
        }
        Kind::MissingBankAccount => {
            // Only while the IBAN is untouched: an injected invalid IBAN must stay visible.
            let i = built.direct_debit?;
            let iban = a.pointer(&format!("/payment_instructions/{i}/bank_account/iban"))?.as_str()?;
            if crate::identifiers::iban_mod97(iban) != Some(1) {
                return None;
            }
            let p = format!("/payment_instructions/{i}/bank_account");
            remove(a, &p);
            one(&p, "bank_account_required", Stage::Rules)
        }
        Kind::TransferReadingMeter => {
            let p = format!("{point}/transfer_readings/0/meter_number");
            set(a, &p, json!("X9999999"));
            one(&p, "transfer_reading_meter_not_found", Stage::Rules)
        }
        Kind::ReadingTooLong => {
            let digits = a.pointer(&format!("{meter}/registers/0/digits"))?.as_u64()?;
            let p = format!("{meter}/registers/0/readings/0/value");
            a.pointer(&p)?;
            set(a, &p, json!(format!("1{}", "0".repeat(digits as usize))));
            one(&p, "reading_value_exceeds_register_digits", Stage::Rules)
        }
        Kind::UnknownOccupier => {
            set(a, "/unknown_occupier", json!(true));
            one("/customers", "customer_with_unknown_occupier", Stage::Rules)
        }
        Kind::AgreementGap => {
            // Start the second agreement a day late: the pair before it is no longer contiguous.
            let p = format!("{point}/agreements/1/effective_from");
            let from = a.pointer(&p)?.as_str()?;
            let later = chrono::NaiveDate::parse_from_str(from, "%Y-%m-%d").ok()?.succ_opt()?;
            set(a, &p, json!(later.format("%Y-%m-%d").to_string()));
            one(&format!("{point}/agreements"), "gaps_or_overlaps_in_agreement_dates", Stage::Rules)
        }
        Kind::OverlappingOperators => {
            let p = format!("{point}/meter_operators/0/valid_to");
            a.pointer(&format!("{point}/meter_operators/1"))?;
            set(a, &p, Value::Null);
            one(&format!("{point}/meter_operators"), "overlapping_periods", Stage::Rules)
        }
        Kind::TransactionInClosedStatement => {
            let closing = a.pointer("/ledgers/0/last_statement_closing_date")?.clone();
            let p = "/ledgers/0/current_statement_transactions/0/transaction_date";
            a.pointer(p)?;
            set(a, p, closing);
            one(p, "current_statement_transaction_before_last_statement_closing_date", Stage::Rules)
        }
        Kind::NetAboveGross => {
            let p = format!("{point}/agreements/0/params/net_unit_rate_per_kwh");
            a.pointer(&p)?;
            set(a, &p, json!("9.9"));
            one(&p, "net_price_above_gross_price", Stage::Rules)
        }
        Kind::ObisMedium => {
            let p = format!("{meter}/registers/0/obis_code");
            set(a, &p, json!("6-0:1.8.0"));
            one(&p, "obis_medium_mismatch", Stage::Rules)
        }
        Kind::StatementSupplyType => {
            let types: std::collections::BTreeSet<&str> = built.points.iter().map(|(_, _, t)| *t).collect();
            if types.len() != 1 {
                return None;
            }
            let other = if types.contains("GAS") { "ELECTRICITY" } else { "GAS" };
            let p = "/statements/0/supply_type";
            a.pointer(p)?;
            set(a, p, json!(other));
            one(p, "statement_supply_type_not_on_account", Stage::Rules)
        }
        Kind::Melo => {
            let p = format!("{point}/melos/0/melo_number");
            let v = a.pointer(&p)?.as_str()?.replacen("DE", "de", 1);
            set(a, &p, json!(v));
            one(&p, "invalid_melo_id", Stage::Rules)
        }
    }
}
