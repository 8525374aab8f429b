//! One synthetic account of the guide's shape, valid under docs/fields.md by construction.
//!
//! Every identifier carries its right check digit, dates are contiguous and in the past,
//! ledger balances follow from their transactions, and cross references (ledger identifiers,
//! transfer-reading meters, payment-instruction ledgers) name things that exist. The
//! [`Built`] value keeps what error injection needs to know about the account.

use chrono::{Datelike, Days, NaiveDate};
use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value, json};

use crate::identifiers::{bdew_check_digit, eic_check_char, gs1_check_digit, iban_from_bban};

use super::supply::supply_point;

pub(super) const GIVEN: &[&str] = &[
    "Johann", "Anna", "Lukas", "Marie", "Felix", "Sophie", "Jonas", "Emma", "Paul", "Mia", "Leon", "Hannah", "Karl",
    "Greta", "Otto", "Frieda",
];
pub(super) const FAMILY: &[&str] = &[
    "Goethe",
    "Schmidt",
    "Mueller",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Zimmermann",
];
pub(super) const STREETS: &[&str] = &[
    "Fast an der Alster",
    "An der Elbe",
    "Hauptstrasse",
    "Bahnhofstrasse",
    "Lindenweg",
    "Am Markt",
    "Schillerstrasse",
    "Gartenweg",
    "Kirchplatz",
    "Mozartstrasse",
];
pub(super) const CITIES: &[&str] =
    &["Hamburg", "Jork", "Berlin", "Bremen", "Leipzig", "Dresden", "Kiel", "Hannover", "Koeln", "Muenchen"];
pub(super) const SUPPLIERS: &[&str] =
    &["TENTACLE_ENERGY", "TENTACLE_ENERGY", "TENTACLE_ENERGY", "NORDLICHT_STROM", "ALPEN_GAS"];
pub(super) const SALES_CHANNELS: &[&str] = &[
    "DIRECT",
    "PRICE_COMPARISON",
    "TELESALES",
    "EVENTS",
    "FIELD_SALES",
    "AGGREGATOR",
    "PARTNERSHIPS",
    "MOVE_IN",
    "BROKER",
    "ACQUISITION",
];
pub(super) const BALANCING_GROUPS: &[&str] =
    &["11X0-0000-0665-E", "11XRWENET12345-2", "11YN10000762-01E", "21Z000000000163R"];
pub(super) const CONTROL_AREAS: &[&str] =
    &["10YDE-EON------1", "10YDE-RWENET---I", "10YDE-VE-------2", "10YDE-ENBW-----N"];
pub(super) const STATUSES: &[&str] = &["SAVED", "VALIDATED"];
pub(super) const READ_TYPES: &[&str] = &["PERIODIC", "INTERIM", "MOVE_IN", "CHANGE_OF_SUPPLIER", "METER_CHANGE"];
pub(super) const ORIGINS: &[&str] = &["NETWORK_OPERATOR", "METER_OPERATOR", "CUSTOMER", "SUPPLIER", "KRAKEN"];

/// A built account and the facts error injection relies on.
pub struct Built {
    pub account: Value,
    /// Paths of the supply points: (address index, point index, supply type).
    pub points: Vec<(usize, usize, &'static str)>,
    /// (ledger index, transaction count) per ledger.
    pub ledgers: Vec<(usize, usize)>,
    /// Index of a DIRECT_DEBIT payment instruction, if any.
    pub direct_debit: Option<usize>,
}

pub(super) fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("generated dates are real")
}

pub(super) fn day<R: Rng>(rng: &mut R, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0) as u64;
    from + Days::new(rng.random_range(0..=span))
}

pub(super) fn digits<R: Rng>(rng: &mut R, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

pub(super) fn alnum<R: Rng>(rng: &mut R, n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..n).map(|_| char::from(*A.choose(rng).expect("non-empty"))).collect()
}

pub(super) fn pick<R: Rng>(rng: &mut R, items: &[&'static str]) -> &'static str {
    items.choose(rng).expect("non-empty list")
}

/// Cents as a decimal string with two places: 1234 → "12.34", -5 → "-0.05".
pub fn cents(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", v.abs() / 100, v.abs() % 100)
}

/// A decimal with `places` fraction digits from an integer of units of 10^-places.
pub(super) fn fixed(v: u64, places: u32) -> String {
    if places == 0 {
        return v.to_string();
    }
    let p = 10u64.pow(places);
    format!("{}.{:0width$}", v / p, v % p, width = places as usize)
}

pub fn malo<R: Rng>(rng: &mut R) -> String {
    let mut s = format!("{}{}", rng.random_range(1..10u8), digits(rng, 9));
    s.push(char::from(b'0' + bdew_check_digit(s.as_bytes())));
    s
}

pub(super) fn market_partner<R: Rng>(rng: &mut R) -> String {
    if rng.random_bool(0.5) {
        let mut s = format!("99{}", digits(rng, 10));
        s.push(char::from(b'0' + bdew_check_digit(s.as_bytes())));
        s
    } else {
        let mut s = format!("40{}", digits(rng, 10));
        s.push(char::from(b'0' + gs1_check_digit(s.as_bytes())));
        s
    }
}

pub(super) fn eic<R: Rng>(rng: &mut R) -> String {
    loop {
        let head = format!("11X{}", alnum(rng, 12));
        if let Some(c) = eic_check_char(head.as_bytes()).filter(|c| *c != b'-') {
            return format!("{head}{}", char::from(c));
        }
    }
}

pub(super) fn postcode<R: Rng>(rng: &mut R) -> String {
    format!("{}{}", rng.random_range(1..10u8), digits(rng, 4))
}

pub(super) fn timestamp(d: NaiveDate, hour: u32) -> String {
    format!("{}T{hour:02}:00:00Z", ymd(d))
}

/// `YYYY-MM-DD`, written directly (chrono's strftime parses its pattern on every call).
pub(super) fn ymd(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// Builds account number `index` of a dump.
pub fn build<R: Rng>(rng: &mut R, index: u64) -> Built {
    let number = format!("EXT-{index:08}");
    let mut a = Map::new();
    a.insert("external_account_number".into(), json!(number));
    a.insert("import_supplier".into(), json!(pick(rng, SUPPLIERS)));
    a.insert("unknown_occupier".into(), json!(false));
    let customers: Vec<Value> = (0..rng.random_range(1..=3)).map(|i| customer(rng, index, i)).collect();
    a.insert("customers".into(), Value::Array(customers));
    a.insert("billing_address1".into(), json!(pick(rng, STREETS)));
    a.insert("billing_address2".into(), json!(rng.random_range(1..200).to_string()));
    a.insert("billing_address3".into(), json!(if rng.random_bool(0.2) { "a" } else { "" }));
    a.insert("billing_address4".into(), json!(pick(rng, CITIES)));
    a.insert("billing_postcode".into(), json!(postcode(rng)));
    a.insert("sales_channel".into(), json!(pick(rng, SALES_CHANNELS)));
    a.insert("sales_subchannel".into(), json!(pick(rng, &["Website", "App", "Partner", ""])));

    let mut points = Vec::new();
    let mut identifiers: Vec<(String, &'static str)> = Vec::new();
    let mut meter_counter = 0u32;
    let addresses: Vec<Value> = (0..rng.random_range(1..=2))
        .map(|ai| {
            let sps: Vec<Value> = (0..rng.random_range(1..=2))
                .map(|pi| {
                    let ty = if rng.random_bool(0.5) { "ELECTRICITY" } else { "GAS" };
                    let id = loop {
                        let id = malo(rng);
                        if !identifiers.iter().any(|(x, _)| *x == id) {
                            break id;
                        }
                    };
                    identifiers.push((id.clone(), ty));
                    points.push((ai, pi, ty));
                    supply_point(rng, &id, ty, index, &mut meter_counter)
                })
                .collect();
            json!({
                "supply_address1": pick(rng, STREETS),
                "supply_address2": rng.random_range(1..200).to_string(),
                "supply_address3": "",
                "supply_address4": pick(rng, CITIES),
                "supply_postcode": postcode(rng),
                "customer_at_supply_address_from_date": ymd(day(rng, date(2015, 1, 1), date(2020, 12, 31))),
                "supply_points": sps,
            })
        })
        .collect();
    a.insert("supply_addresses".into(), Value::Array(addresses));

    // Ledgers: one per supply type present, over that type's supply points.
    let mut ledgers = Vec::new();
    let mut ledger_meta = Vec::new();
    let mut ledger_codes = Vec::new();
    let mut transfer_balance = 0i64;
    let mut tx_id = 0u32;
    for ty in ["GAS", "ELECTRICITY"] {
        let ids: Vec<&String> = identifiers.iter().filter(|(_, t)| *t == ty).map(|(id, _)| id).collect();
        if ids.is_empty() {
            continue;
        }
        let code = if ty == "GAS" { "GAS_LEDGER" } else { "ELECTRICITY_LEDGER" };
        let (ledger, balance, n) = ledger(rng, ids, code, &mut tx_id);
        transfer_balance += balance;
        ledger_meta.push((ledgers.len(), n));
        ledger_codes.push(code);
        ledgers.push(ledger);
    }
    a.insert("transfer_balance".into(), json!(cents(transfer_balance)));
    a.insert(
        "references".into(),
        json!([{ "namespace": "tentacle-energy.client-reference-number", "value": digits(rng, 10) }]),
    );
    let types: Vec<&str> = identifiers.iter().map(|(_, t)| *t).collect();
    let statements: Vec<Value> = (0..rng.random_range(0..=3))
        .map(|i| {
            let from = date(2019 + i, 1, 1);
            let ty = *types.choose(rng).expect("an account has supply points");
            json!({
                "bill_period_from_date": ymd(from),
                "bill_period_to_date": ymd(date(2019 + i, 12, 31)),
                "statement_path": format!("{number}/{}-{}.pdf", ymd(from), ty.to_lowercase()),
                "statement_id": (i + 1).to_string(),
                "supply_type": ty,
            })
        })
        .collect();
    a.insert("statements".into(), Value::Array(statements));
    a.insert("ledgers".into(), Value::Array(ledgers));

    let mut instructions = Vec::new();
    let mut direct_debit = None;
    let dd_ledger = *ledger_codes.choose(rng).expect("at least one ledger");
    if rng.random_bool(0.7) {
        direct_debit = Some(0);
        let bban = format!("{}{}", digits(rng, 8), digits(rng, 10));
        instructions.push(json!({
            "vendor": "GOCARDLESS",
            "reference": format!("MD{}", alnum(rng, 13)),
            "type": "DIRECT_DEBIT",
            "ledger_code": dd_ledger,
            "valid_from": ymd(day(rng, date(2020, 1, 1), date(2023, 12, 31))),
            "bank_account": {
                "account_holder": format!("{} {}", pick(rng, GIVEN), pick(rng, FAMILY)),
                "account_number": digits(rng, 10),
                "iban": iban_from_bban("DE", &bban),
            },
        }));
    } else if rng.random_bool(0.5) {
        instructions.push(json!({
            "vendor": "BANK",
            "reference": format!("BT{}", alnum(rng, 10)),
            "type": "BANK_TRANSFER",
            "ledger_code": dd_ledger,
            "valid_from": ymd(day(rng, date(2020, 1, 1), date(2023, 12, 31))),
        }));
    }
    a.insert("payment_instructions".into(), Value::Array(instructions));
    let scheduled: Vec<&str> = ledger_codes.iter().copied().filter(|_| rng.random_bool(0.6)).collect();
    let schedules: Vec<Value> = scheduled
        .into_iter()
        .map(|code| {
            let means = if direct_debit.is_some() && code == dd_ledger { "DD" } else { pick(rng, &["MANUAL", "CARD"]) };
            let amount = rng.random_range(10..200u32);
            // The guide shows amounts as JSON numbers; strings are accepted too.
            let amount = if rng.random_bool(0.5) { json!(f64::from(amount)) } else { json!(format!("{amount}.00")) };
            json!({
                "amount": amount,
                "ledger_code": code,
                "day_of_month": rng.random_range(1..=28),
                "frequency": pick(rng, &["MONTHLY", "QUARTERLY"]),
                "means": means,
                "start_date": ymd(day(rng, date(2020, 1, 1), date(2024, 12, 31))),
            })
        })
        .collect();
    a.insert("payment_schedules".into(), Value::Array(schedules));
    if rng.random_bool(0.3) {
        a.insert("account_campaigns".into(), json!([{ "slug": "super_account", "campaign_note": "Campaign note" }]));
    }
    let metadata: Vec<Value> = (0..rng.random_range(0..=2))
        .map(|i| json!({ "key": format!("legacy_key_{i}"), "value": { "source": "legacy", "rank": i, "tags": ["a", "b"] } }))
        .collect();
    a.insert("metadata".into(), Value::Array(metadata));
    let notes: Vec<Value> = (0..rng.random_range(0..=2))
        .map(|_| {
            json!({
                "created_at": timestamp(day(rng, date(2018, 1, 1), date(2024, 12, 31)), rng.random_range(0..24)),
                "body": pick(rng, &["Customer prefers e-mail.", "Called about a meter reading.", "Moved in with a new contract.", "Prefers German (\"Deutsch\")."]),
                "is_pinned": rng.random_bool(0.3),
            })
        })
        .collect();
    a.insert("notes".into(), Value::Array(notes));
    Built { account: Value::Object(a), points, ledgers: ledger_meta, direct_debit }
}

pub(super) fn customer<R: Rng>(rng: &mut R, index: u64, i: usize) -> Value {
    let given = pick(rng, GIVEN);
    let family = pick(rng, FAMILY);
    let email = if rng.random_bool(0.8) {
        format!("{}.{}{index}{i}@example.de", given.to_lowercase(), family.to_lowercase())
    } else {
        String::new()
    };
    let landline = if rng.random_bool(0.4) { format!("+4930{}", digits(rng, 8)) } else { String::new() };
    json!({
        "given_name": given,
        "family_name": family,
        "email": email,
        "mobile": format!("+49151{}", digits(rng, 8)),
        "landline": landline,
        "date_of_birth": ymd(day(rng, date(1940, 1, 1), date(2004, 12, 31))),
        "title": pick(rng, &["Herr", "Frau", "Dr.", ""]),
        "salutation": pick(rng, &["Hallo", "Sehr geehrte Damen und Herren", "Moin"]),
        "customer_preferences": {
            "opted_into_sms": rng.random_bool(0.5),
            "opted_into_recommended": rng.random_bool(0.5),
            "opted_into_updates": rng.random_bool(0.5),
            "opted_into_third_parties": rng.random_bool(0.5),
            "opted_into_offers": rng.random_bool(0.5),
            "is_user_psr_consent_obtained": rng.random_bool(0.5),
        },
    })
}

/// A ledger whose balance follows from its transactions; returns it, its balance in cents
/// and its number of transactions.
pub(super) fn ledger<R: Rng>(rng: &mut R, ids: Vec<&String>, code: &str, tx_id: &mut u32) -> (Value, i64, usize) {
    let closing = day(rng, date(2022, 1, 1), date(2024, 6, 30));
    let last_balance = rng.random_range(-20_000..20_000i64);
    let mut balance = last_balance;
    let n = rng.random_range(0..=40usize);
    let txs: Vec<Value> = (0..n)
        .map(|_| {
            *tx_id += 1;
            let amount = rng.random_range(1..50_000i64);
            let (ty, reason, payment_type) = match rng.random_range(0..5) {
                0 => (
                    "CHARGE",
                    pick(rng, &["IMPORTED_CHARGE", "BALANCE_TRANSFER", "LATE_PAYMENT_FEE", "DUNNING_FEE"]),
                    None,
                ),
                1 => (
                    "CREDIT",
                    pick(
                        rng,
                        &["IMPORTED_CREDIT", "BALANCE_ADJUSTMENT", "CUSTOMER_SERVICE_GESTURE", "GOODWILL_PAYMENT"],
                    ),
                    None,
                ),
                2 => (
                    "PAYMENT",
                    pick(rng, &["ACCOUNT_CHARGE_PAYMENT", "REGULAR_SCHEDULE"]),
                    Some(pick(rng, &["DD_FIRST_COLLECTION", "DD_REGULAR_COLLECTION", "BANK_TRANSFER"])),
                ),
                3 => (
                    "REPAYMENT",
                    pick(rng, &["PARTIAL_CREDIT_REFUND", "FULL_PREPAYMENT_REFUND"]),
                    Some(pick(rng, &["DIRECT_CREDIT", "BANK_TRANSFER"])),
                ),
                _ => ("SUPPLY_CHARGE", "IMPORTED_SUPPLY_CHARGE", None),
            };
            balance += if matches!(ty, "PAYMENT" | "CREDIT") { amount } else { -amount };
            let mut t = Map::new();
            t.insert("transaction_id".into(), json!(tx_id.to_string()));
            t.insert("transaction_date".into(), json!(ymd(day(rng, closing + Days::new(1), date(2025, 6, 30)))));
            t.insert("amount".into(), json!(cents(amount)));
            t.insert("type".into(), json!(ty));
            t.insert("reason".into(), json!(reason));
            if let Some(pt) = payment_type {
                t.insert("payment_type".into(), json!(pt));
            }
            Value::Object(t)
        })
        .collect();
    let ledger = json!({
        "identifiers": ids,
        "ledger_code": code,
        "last_statement_closing_date": ymd(closing),
        "last_statement_balance": cents(last_balance),
        "ledger_balance": cents(balance),
        "current_statement_transactions": txs,
    });
    (ledger, balance, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text() {
        assert_eq!(cents(1234), "12.34");
        assert_eq!(cents(-5), "-0.05");
        assert_eq!(fixed(5, 3), "0.005");
        assert_eq!(fixed(12, 0), "12");
    }
}
