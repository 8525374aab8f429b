//! Every rule code, table-driven: an edit of the corrected example that fires it at its attr,
//! and a near-miss edit that does not fire anything.

use std::sync::OnceLock;

use ferry::findings::Finding;
use ferry::ingest::{Chunk, arrow_schemas, flatten_chunk};
use ferry::rules::RuleContext;
use ferry::schema::Schema;
use ferry::validation::check_chunk;
use serde_json::{Value, json};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::builtin)
}

fn example() -> Value {
    let text = std::fs::read_to_string(crate::harness::repo("data/examples/account.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An edit: set the value at a JSON pointer, or remove the key (`None`).
type Edit = (&'static str, Option<Value>);

fn apply(edits: &[Edit]) -> Value {
    let mut account = example();
    for (pointer, value) in edits {
        match value {
            Some(v) => match account.pointer_mut(pointer) {
                Some(slot) => *slot = v.clone(),
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    account
                        .pointer_mut(parent)
                        .and_then(Value::as_object_mut)
                        .unwrap_or_else(|| panic!("{pointer}"))
                        .insert(key.into(), v.clone());
                }
            },
            None => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                account
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .unwrap_or_else(|| panic!("{pointer}"))
                    .shift_remove(key);
            }
        }
    }
    account
}

fn validate(account: &Value) -> Vec<Finding> {
    let line = serde_json::to_vec(account).unwrap();
    let mut out = flatten_chunk(schema(), &arrow_schemas(schema()), &Chunk::Lines { first_line: 1, bytes: line });
    let ctx = RuleContext::new(Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()), chrono_tz::Europe::Berlin);
    check_chunk(schema(), &ctx, &mut out);
    out.findings
}

struct Case {
    code: &'static str,
    attr: &'static str,
    edits: Vec<Edit>,
    near_miss: Vec<Edit>,
    /// Whether the finding must be the only one (false where the edit has unavoidable
    /// consequences elsewhere, e.g. an empty list of supply points).
    only: bool,
}

const P0: &str = "/supply_addresses/0/supply_points/0";
const P1: &str = "/supply_addresses/0/supply_points/1";

fn s(v: &str) -> Option<Value> {
    Some(json!(v))
}

fn p(prefix: &str, rest: &str) -> &'static str {
    Box::leak(format!("{prefix}{rest}").into_boxed_str())
}

fn cases() -> Vec<Case> {
    let m0 = p(P0, "/melos/0/meters/0");
    let m1 = p(P1, "/melos/0/meters/0");
    let c = |code, attr, edits, near_miss| Case { code, attr, edits, near_miss, only: true };
    let some = |code, attr, edits| Case { code, attr, edits, near_miss: vec![], only: false };
    let reference = json!({ "namespace": "n", "value": "1" });
    let operator = |from: &str, to: Value| json!({ "code": "9910902000001", "valid_from": from, "valid_to": to });
    let agreement = example()["supply_addresses"][0]["supply_points"][0]["agreements"][0].clone();
    let mut late = agreement.clone();
    late["effective_from"] = json!("2023-01-02");
    late["effective_to"] = Value::Null;
    let mut next = late.clone();
    next["effective_from"] = json!("2023-01-01");
    let lp = example()["supply_addresses"][0]["supply_points"][1]["electricity_supply_point_load_profiles"].clone();
    let register =
        example()["supply_addresses"][0]["supply_points"][0]["melos"][0]["meters"][0]["registers"][0].clone();
    let metadata = json!({ "key": "k", "value": 1 });
    vec![
        c(
            "invalid_characters",
            "external_account_number",
            vec![("/external_account_number", s("A-1\u{1b}[2J"))],
            vec![("/notes/0/body", s("first line\r\nsecond\tline")), ("/account_campaigns/0/campaign_note", s("a\nb"))],
        ),
        c(
            "invalid_characters",
            "notes.0.body",
            vec![("/notes/0/body", s("left\u{202e}right"))],
            vec![("/customers/0/given_name", s("Zoë\u{200b}"))],
        ),
        c(
            "invalid_type",
            "customers.0.given_name",
            vec![("/customers/0/given_name", Some(json!(5)))],
            vec![("/customers/0/given_name", s("5"))],
        ),
        c(
            "required",
            "supply_addresses.0.supply_postcode",
            vec![("/supply_addresses/0/supply_postcode", None)],
            vec![("/supply_addresses/0/supply_address4", None)],
        ),
        c(
            "null",
            p(&P0[1..].replace('/', "."), ".supply_start_type"),
            vec![(p(P0, "/supply_start_type"), Some(Value::Null))],
            vec![(p(P0, "/supply_end_date"), Some(Value::Null))],
        ),
        c("unknown_field", "billing_adress1", vec![("/billing_adress1", s("x"))], vec![("/billing_address4", s("x"))]),
        c("not_a_list", "notes", vec![("/notes", s("x"))], vec![("/notes", Some(json!([])))]),
        c(
            "customer_family_name_required",
            "customers.0.family_name",
            vec![("/customers/0/family_name", s("  "))],
            vec![("/customers/0/family_name", s(" G"))],
        ),
        c(
            "billing_address_not_provided",
            "billing_address1",
            vec![("/billing_address1", None)],
            vec![("/billing_address1", s("a"))],
        ),
        c(
            "blank",
            "supply_addresses.0.supply_address1",
            vec![("/supply_addresses/0/supply_address1", s(" "))],
            vec![("/supply_addresses/0/supply_address1", s("x"))],
        ),
        c(
            "max_length",
            "customers.0.title",
            vec![("/customers/0/title", s(&"x".repeat(21)))],
            vec![("/customers/0/title", s(&"ä".repeat(20)))],
        ),
        c("invalid_choice", "sales_channel", vec![("/sales_channel", s("DOOR"))], vec![("/sales_channel", s(""))]),
        c(
            "unknown_code",
            p(&m0[1..].replace('/', "."), ".meter_type"),
            vec![(p(m0, "/meter_type"), s("XYZ"))],
            vec![(p(m0, "/meter_type"), s("AHZ"))],
        ),
        c(
            "invalid_date",
            "customers.0.date_of_birth",
            vec![("/customers/0/date_of_birth", s("1997-02-29"))],
            vec![("/customers/0/date_of_birth", s("1996-02-29"))],
        ),
        c(
            "invalid_datetime",
            "notes.0.created_at",
            vec![("/notes/0/created_at", s("2018-10-10 10:20"))],
            vec![("/notes/0/created_at", s("2018-10-10T10:20:00+02:00"))],
        ),
        c(
            "naive_datetime",
            "notes.0.created_at",
            vec![("/notes/0/created_at", s("2018-10-10T10:20:00"))],
            vec![("/notes/0/created_at", s("2018-10-10T10:20:00.5Z"))],
        ),
        c(
            "invalid_decimal",
            "transfer_balance",
            vec![("/transfer_balance", s("65,00"))],
            vec![("/transfer_balance", s("65.0"))],
        ),
        c(
            "max_whole_digits",
            p(&P0[1..].replace('/', "."), ".agreements.0.sign_up_reward.amount"),
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("123456789.00"))],
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("012345678.00"))],
        ),
        c(
            "max_decimal_places",
            p(&P0[1..].replace('/', "."), ".agreements.0.sign_up_reward.amount"),
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("100.001"))],
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("100.1"))],
        ),
        c(
            "min_value",
            p(&P0[1..].replace('/', "."), ".agreements.0.sign_up_reward.amount"),
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("-0.00"))],
            vec![(p(P0, "/agreements/0/sign_up_reward/amount"), s("0.00"))],
        ),
        c(
            "min_value",
            "payment_schedules.1.amount",
            vec![("/payment_schedules/1/amount", Some(json!(0)))],
            vec![("/payment_schedules/1/amount", Some(json!(0.01)))],
        ),
        c(
            "max_value",
            p(&m0[1..].replace('/', "."), ".registers.0.digits"),
            vec![(p(m0, "/registers/0/digits"), Some(json!(16)))],
            vec![(p(m0, "/registers/0/digits"), Some(json!(15)))],
        ),
        c(
            "invalid_payment_day_for_payment_schedule",
            "payment_schedules.0.day_of_month",
            vec![("/payment_schedules/0/day_of_month", Some(json!(29)))],
            vec![("/payment_schedules/0/day_of_month", Some(json!(28)))],
        ),
        c("empty", "ledgers.0.identifiers", vec![("/ledgers/0/identifiers", Some(json!([])))], vec![]),
        some(
            "no_supply_point_on_supply",
            "supply_addresses.0.supply_points",
            vec![("/supply_addresses/0/supply_points", Some(json!([])))],
        ),
        some(
            "meter_point_with_no_agreement",
            p(&P0[1..].replace('/', "."), ".agreements"),
            vec![(p(P0, "/agreements"), Some(json!([])))],
        ),
        some(
            "meter_point_with_no_meters",
            p(&P0[1..].replace('/', "."), ".melos.0.meters"),
            vec![(p(P0, "/melos/0/meters"), Some(json!([])))],
        ),
        c(
            "registers_missing_for_meter",
            p(&m0[1..].replace('/', "."), ".registers"),
            vec![(p(m0, "/registers"), Some(json!([])))],
            vec![],
        ),
        c(
            "invalid_import_supplier",
            "import_supplier",
            vec![("/import_supplier", s("tentacle"))],
            vec![("/import_supplier", s("TENTACLE2"))],
        ),
        c(
            "invalid_postcode",
            "billing_postcode",
            vec![("/billing_postcode", s("00999"))],
            vec![("/billing_postcode", s("01067"))],
        ),
        c(
            "invalid_email",
            "customers.0.email",
            vec![("/customers/0/email", s("a@b"))],
            vec![("/customers/0/email", s("a@b.de"))],
        ),
        c(
            "invalid_phone_number",
            "customers.0.mobile",
            vec![("/customers/0/mobile", s("+490301234567"))],
            vec![("/customers/0/mobile", s("+49301234567"))],
        ),
        c(
            "invalid_supply_point_identifier",
            p(&P1[1..].replace('/', "."), ".identifier"),
            vec![(p(P1, "/identifier"), s("60203829716")), ("/ledgers/1/identifiers/0", s("60203829716"))],
            vec![(p(P1, "/identifier"), s("41373559241")), ("/ledgers/1/identifiers/0", s("41373559241"))],
        ),
        c(
            "invalid_melo_id",
            p(&P0[1..].replace('/', "."), ".melos.0.melo_number"),
            vec![(p(P0, "/melos/0/melo_number"), s("de700146823190123456789ABCDEFGHIJ"))],
            vec![(p(P0, "/melos/0/melo_number"), s("DE00056266802AO6G56M11SN51G21M24S"))],
        ),
        c(
            "invalid_market_partner_id",
            p(&P0[1..].replace('/', "."), ".previous_supplier_id"),
            vec![(p(P0, "/previous_supplier_id"), s("9870075000019"))],
            vec![(p(P0, "/previous_supplier_id"), s("9870075000009"))],
        ),
        c(
            "invalid_eic",
            p(&P1[1..].replace('/', "."), ".electricity_supply_point_load_profiles.0.bilanzierungsgebiet"),
            vec![(p(P1, "/electricity_supply_point_load_profiles/0/bilanzierungsgebiet"), s("10YDE-TENTACLE-H"))],
            vec![(p(P1, "/electricity_supply_point_load_profiles/0/bilanzierungsgebiet"), s("10Y1001A1001A82H"))],
        ),
        c(
            "invalid_obis_code",
            p(&m1[1..].replace('/', "."), ".registers.0.obis_code"),
            vec![(p(m1, "/registers/0/obis_code"), s("1-256:1.8.0"))],
            vec![(p(m1, "/registers/0/obis_code"), s("1-255:1.8.0*255"))],
        ),
        c(
            "invalid_iban",
            "payment_instructions.0.bank_account.iban",
            vec![("/payment_instructions/0/bank_account/iban", s("DE89370400440532013001"))],
            vec![("/payment_instructions/0/bank_account/iban", s("DE89370400440532013000"))],
        ),
        c(
            "invalid_meter_serial_number",
            p(&m0[1..].replace('/', "."), ".meter_number"),
            vec![(p(m0, "/meter_number"), s("-G1")), (p(P0, "/transfer_readings/0/meter_number"), s("-G1"))],
            vec![(p(m0, "/meter_number"), s("G-1")), (p(P0, "/transfer_readings/0/meter_number"), s("G-1"))],
        ),
        c(
            "invalid_document_path",
            "statements.0.statement_path",
            vec![("/statements/0/statement_path", s("../x.pdf"))],
            vec![("/statements/0/statement_path", s("a/..x.pdf"))],
        ),
        c(
            "date_in_future",
            "customers.0.date_of_birth",
            vec![("/customers/0/date_of_birth", s("2026-11-28"))],
            vec![("/customers/0/date_of_birth", s("2026-11-27"))],
        ),
        c(
            "date_in_future",
            p(&m0[1..].replace('/', "."), ".registers.0.readings.0.read_at"),
            vec![(p(m0, "/registers/0/readings/0/read_at"), s("2026-11-28T00:00:00+01:00"))],
            vec![(p(m0, "/registers/0/readings/0/read_at"), s("2026-11-27T23:59:59+01:00"))],
        ),
        c(
            "transaction_in_future",
            "ledgers.0.current_statement_transactions.0.transaction_date",
            vec![("/ledgers/0/current_statement_transactions/0/transaction_date", s("2026-11-28"))],
            vec![("/ledgers/0/current_statement_transactions/0/transaction_date", s("2026-11-27"))],
        ),
        c(
            "implausible_date_of_birth",
            "customers.0.date_of_birth",
            vec![("/customers/0/date_of_birth", s("1899-12-31"))],
            vec![("/customers/0/date_of_birth", s("1900-01-01"))],
        ),
        c(
            "implausible_calorific_value",
            p(&m0[1..].replace('/', "."), ".conversion_factors.0.calorific_value"),
            vec![(p(m0, "/conversion_factors/0/calorific_value"), s("13.6"))],
            vec![(p(m0, "/conversion_factors/0/calorific_value"), s("13.5"))],
        ),
        c(
            "implausible_condition_value",
            p(&m0[1..].replace('/', "."), ".conversion_factors.0.condition_value"),
            vec![(p(m0, "/conversion_factors/0/condition_value"), s("0.79"))],
            vec![(p(m0, "/conversion_factors/0/condition_value"), s("0.80"))],
        ),
        c(
            "unknown_control_area",
            p(&P1[1..].replace('/', "."), ".electricity_supply_point_load_profiles.0.regelzone"),
            vec![(p(P1, "/electricity_supply_point_load_profiles/0/regelzone"), s("10YAT-APG------L"))],
            vec![(p(P1, "/electricity_supply_point_load_profiles/0/regelzone"), s("10YDE-VE-------2"))],
        ),
        c(
            "obis_medium_mismatch",
            p(&m1[1..].replace('/', "."), ".registers.0.obis_code"),
            vec![(p(m1, "/registers/0/obis_code"), s("7-0:3.0.0"))],
            vec![(p(m0, "/registers/0/obis_code"), s("7-0:3.0.0"))],
        ),
        c(
            "net_price_above_gross_price",
            p(&P0[1..].replace('/', "."), ".agreements.0.params.net_unit_rate_per_kwh"),
            vec![(p(P0, "/agreements/0/params/net_unit_rate_per_kwh"), s("0.1026"))],
            vec![(p(P0, "/agreements/0/params/net_unit_rate_per_kwh"), s("0.1025"))],
        ),
        c(
            "duplicate_reference",
            "references.1.value",
            vec![("/references", Some(json!([reference, reference])))],
            vec![("/references", Some(json!([reference, { "namespace": "m", "value": "1" }])))],
        ),
        c(
            "duplicate_statement_id",
            "statements.1.statement_id",
            vec![("/statements/1/statement_id", s("1"))],
            vec![("/statements/1/statement_id", s("3"))],
        ),
        some(
            "duplicate_ledger_entries_found",
            "ledgers.1.ledger_code",
            vec![("/ledgers/1/ledger_code", s("GAS_LEDGER"))],
        ),
        c(
            "duplicate_transaction_ids",
            "ledgers.1.current_statement_transactions.0.transaction_id",
            vec![("/ledgers/1/current_statement_transactions/0/transaction_id", s("1"))],
            vec![("/ledgers/1/current_statement_transactions/0/transaction_id", s("5"))],
        ),
        c(
            "metadata_has_duplicate_keys",
            "metadata.1.key",
            vec![("/metadata", Some(json!([metadata, metadata])))],
            vec![("/metadata", Some(json!([metadata, { "key": "K", "value": 1 }])))],
        ),
        c(
            "duplicate_meter_points_provided",
            p(&P1[1..].replace('/', "."), ".identifier"),
            vec![(p(P1, "/identifier"), s("50203829715")), ("/ledgers/1/identifiers/0", s("50203829715"))],
            vec![],
        ),
        c(
            "duplicate_meter_number",
            p(&m1[1..].replace('/', "."), ".meter_number"),
            vec![(p(m1, "/meter_number"), s("G123456")), (p(P1, "/transfer_readings/0/meter_number"), s("G123456"))],
            vec![],
        ),
        c(
            "meter_with_duplicate_register_ids",
            p(&m0[1..].replace('/', "."), ".registers.1.obis_code"),
            vec![(p(m0, "/registers"), Some(json!([register, register])))],
            vec![],
        ),
        c(
            "customer_with_unknown_occupier",
            "customers",
            vec![("/unknown_occupier", Some(json!(true)))],
            vec![("/unknown_occupier", Some(json!(true))), ("/customers", Some(json!([])))],
        ),
        c("empty", "customers", vec![("/customers", Some(json!([])))], vec![]),
        c(
            "ledger_balances_not_equal_to_transfer_balance",
            "transfer_balance",
            vec![("/transfer_balance", s("64.99"))],
            vec![("/transfer_balance", s("65"))],
        ),
        c(
            "start_date_later_than_end_date",
            p(&P0[1..].replace('/', "."), ".supply_end_date"),
            vec![(p(P0, "/supply_end_date"), s("2020-12-31"))],
            vec![(p(P0, "/supply_end_date"), s("2021-01-02"))],
        ),
        c(
            "start_date_same_as_end_date",
            p(&P0[1..].replace('/', "."), ".supply_end_date"),
            vec![(p(P0, "/supply_end_date"), s("2021-01-01"))],
            vec![("/statements/0/bill_period_to_date", s("2021-01-01"))],
        ),
        c(
            "gaps_or_overlaps_in_agreement_dates",
            p(&P0[1..].replace('/', "."), ".agreements"),
            vec![(p(P0, "/agreements"), Some(json!([agreement, late])))],
            vec![(p(P0, "/agreements"), Some(json!([agreement, next])))],
        ),
        c(
            "agreement_start_date_before_supply_start_date",
            p(&P0[1..].replace('/', "."), ".agreements.0.effective_from"),
            vec![(p(P0, "/agreements/0/effective_from"), s("2020-12-31"))],
            vec![(p(P0, "/agreements/0/effective_from"), s("2021-01-01"))],
        ),
        c(
            "overlapping_periods",
            p(&P0[1..].replace('/', "."), ".meter_operators"),
            vec![(
                p(P0, "/meter_operators"),
                Some(json!([
                    operator("2021-01-01T00:00:00Z", json!("2022-01-01T00:00:00Z")),
                    operator("2021-06-01T00:00:00Z", Value::Null)
                ])),
            )],
            vec![(
                p(P0, "/meter_operators"),
                Some(json!([
                    operator("2021-01-01T00:00:00Z", json!("2022-01-01T00:00:00Z")),
                    operator("2022-01-01T01:00:00+01:00", Value::Null)
                ])),
            )],
        ),
        c(
            "gaps_in_periods",
            p(&P0[1..].replace('/', "."), ".meter_operators"),
            vec![(
                p(P0, "/meter_operators"),
                Some(json!([
                    operator("2021-01-01T00:00:00Z", json!("2022-01-01T00:00:00Z")),
                    operator("2022-02-01T00:00:00Z", Value::Null)
                ])),
            )],
            vec![],
        ),
        c(
            "load_profile_supply_type_mismatch",
            p(&P0[1..].replace('/', "."), ".electricity_supply_point_load_profiles"),
            vec![(p(P0, "/electricity_supply_point_load_profiles"), Some(lp))],
            vec![(p(P0, "/electricity_supply_point_load_profiles"), Some(json!([])))],
        ),
        c(
            "field_not_allowed_for_supply_type",
            p(&m0[1..].replace('/', "."), ".energierichtung"),
            vec![(p(m0, "/energierichtung"), s("ERZ"))],
            vec![(p(m0, "/meter_sub_type"), s("ERZ"))],
        ),
        c(
            "field_not_allowed_for_transaction_type",
            "ledgers.0.current_statement_transactions.2.payment_type",
            vec![("/ledgers/0/current_statement_transactions/2/payment_type", s("DIRECT_CREDIT"))],
            vec![("/ledgers/0/current_statement_transactions/0/payment_type", s("BANK_TRANSFER"))],
        ),
        c(
            "reading_value_exceeds_register_digits",
            p(&m0[1..].replace('/', "."), ".registers.0.readings.0.value"),
            vec![(p(m0, "/registers/0/readings/0/value"), s("12345.02"))],
            vec![(p(m0, "/registers/0/readings/0/value"), s("0009999.99"))],
        ),
        c(
            "transfer_reading_meter_not_found",
            p(&P0[1..].replace('/', "."), ".transfer_readings.0.meter_number"),
            vec![(p(P0, "/transfer_readings/0/meter_number"), s("E123456"))],
            vec![],
        ),
        c(
            "unknown_ledger_identifiers",
            "ledgers.0.identifiers.0",
            vec![("/ledgers/0/identifiers/0", s("41373559241"))],
            vec![("/ledgers/0/identifiers", Some(json!(["50203829715", "60203829714"])))],
        ),
        c(
            "balance_mismatch_on_ledger_balance",
            "ledgers.0",
            vec![("/ledgers/0/ledger_balance", s("20.01")), ("/transfer_balance", s("65.01"))],
            vec![("/ledgers/0/ledger_balance", s("20.0")), ("/transfer_balance", s("65.0"))],
        ),
        c(
            "current_statement_transaction_before_last_statement_closing_date",
            "ledgers.0.current_statement_transactions.0.transaction_date",
            vec![("/ledgers/0/current_statement_transactions/0/transaction_date", s("2022-01-01"))],
            vec![("/ledgers/0/current_statement_transactions/0/transaction_date", s("2022-01-02"))],
        ),
        some(
            "ledger_code_does_not_exist",
            "payment_instructions.0.ledger_code",
            vec![("/payment_instructions/0/ledger_code", s("GENERAL_LEDGER"))],
        ),
        c(
            "dd_schedule_without_payment_instruction",
            "payment_schedules.0",
            vec![("/payment_instructions/0/type", s("BANK_TRANSFER"))],
            vec![("/payment_schedules/0/means", s("MANUAL")), ("/payment_instructions/0/type", s("BANK_TRANSFER"))],
        ),
        c(
            "bank_account_required",
            "payment_instructions.0.bank_account",
            vec![("/payment_instructions/0/bank_account", None)],
            vec![],
        ),
        some(
            "statement_supply_type_not_on_account",
            "statements.0.supply_type",
            vec![(p(P1, "/supply_type"), s("GAS"))],
        ),
        // A list chosen by a sibling: required when the sibling's value has one, and nothing
        // more when the sibling itself is wrong.
        c(
            "required",
            "ledgers.0.current_statement_transactions.1.payment_type",
            vec![("/ledgers/0/current_statement_transactions/1/payment_type", None)],
            vec![("/ledgers/0/current_statement_transactions/1/payment_type", s("CASH"))],
        ),
        c(
            "null",
            "ledgers.0.current_statement_transactions.1.payment_type",
            vec![("/ledgers/0/current_statement_transactions/1/payment_type", Some(Value::Null))],
            vec![],
        ),
        c(
            "required",
            "ledgers.0.current_statement_transactions.2.reason",
            vec![("/ledgers/0/current_statement_transactions/2/reason", None)],
            vec![("/ledgers/0/current_statement_transactions/2/reason", s("GOODWILL_PAYMENT"))],
        ),
        c(
            "invalid_choice",
            "ledgers.0.current_statement_transactions.2.type",
            vec![
                ("/ledgers/0/current_statement_transactions/2/type", s("REFUND")),
                ("/ledgers/0/current_statement_transactions/2/reason", None),
            ],
            vec![],
        ),
    ]
}

#[test]
fn every_code_fires_at_its_attr_and_near_misses_do_not() {
    let base = validate(&example());
    assert!(base.is_empty(), "the corrected example is clean: {base:?}");
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeSet::new();
    for case in cases() {
        codes.insert(case.code);
        let found = validate(&apply(&case.edits));
        let hit = found.iter().any(|f| f.code == case.code && f.attr == case.attr);
        if !hit || (case.only && found.len() != 1) {
            let got: Vec<_> = found.iter().map(|f| format!("{} {}", f.code, f.attr)).collect();
            failures.push(format!("{} at {}: got {got:?}", case.code, case.attr));
        }
        if !case.near_miss.is_empty() {
            let near = validate(&apply(&case.near_miss));
            if !near.is_empty() {
                let got: Vec<_> = near.iter().map(|f| format!("{} {} {:?}", f.code, f.attr, f.value)).collect();
                failures.push(format!("near miss of {} fired: {got:?}", case.code));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every rule code of the schema has a case, except those that need more than one line.
    let untested: Vec<&String> = schema()
        .rules
        .keys()
        .filter(|c| !codes.contains(c.as_str()))
        .filter(|c| !["invalid_json", "line_too_long", "duplicate_external_account_number"].contains(&c.as_str()))
        .collect();
    assert!(untested.is_empty(), "codes without a case: {untested:?}");
}

/// Every text value of the example, with a control character added, gets `invalid_characters`
/// at its attr and nothing else: no `max_length`, format, list, uniqueness or cross-rule finding
/// besides. (A value elsewhere that referred to it, a ledger code say, may now refer to nothing.)
#[test]
fn a_control_character_is_the_only_finding_of_its_value() {
    fn leaves(v: &Value, pointer: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((pointer, s.clone())),
            Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| leaves(x, format!("{pointer}/{i}"), out)),
            Value::Object(map) => map.iter().for_each(|(k, x)| leaves(x, format!("{pointer}/{k}"), out)),
            _ => {}
        }
    }
    let mut strings = Vec::new();
    leaves(&example(), String::new(), &mut strings);
    let strings: Vec<_> = strings.into_iter().filter(|(p, _)| !p.starts_with("/metadata/")).collect();
    assert!(strings.len() > 100, "{}", strings.len());
    let mut failures = Vec::new();
    for (pointer, value) in &strings {
        for bad in ["\u{1b}", "\n", "\u{0}", "\u{85}", "\u{2066}"] {
            let pointer: &'static str = Box::leak(pointer.clone().into_boxed_str());
            let multiline = pointer.ends_with("/body") || pointer.ends_with("/campaign_note");
            let found = validate(&apply(&[(pointer, Some(json!(format!("{value}{bad}"))))]));
            let attr = pointer[1..].replace('/', ".");
            let want_clean = multiline && bad == "\n";
            let refused = format!("{value}{bad}");
            let ok = if want_clean {
                found.is_empty()
            } else {
                let here: Vec<_> = found.iter().filter(|f| f.attr == attr).collect();
                here.len() == 1
                    && here[0].code == "invalid_characters"
                    && found.iter().filter(|f| f.value.as_deref() == Some(refused.as_str())).count() == 1
            };
            if !ok {
                let got: Vec<_> = found.iter().map(|f| format!("{} {}: {}", f.code, f.attr, f.detail)).collect();
                failures.push(format!("{bad:?} at {attr}: got {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Two equal values with a control character are not also a repeat: each gets its
/// `invalid_characters` and nothing else, from the rules alone too (create re-validates staged
/// rows with them, without the chunk's precedence of `invalid_characters`). The same values
/// without one are a repeat.
#[test]
fn repeated_values_with_a_control_character_get_only_invalid_characters() {
    let ids = ["/statements/0/statement_id", "/statements/1/statement_id"];
    let sorted = |found: Vec<Finding>| {
        let mut codes: Vec<String> = found.iter().map(|f| format!("{} {}", f.code, f.attr)).collect();
        codes.sort();
        codes
    };
    let account = |value: &str| apply(&[(ids[0], Some(json!(value))), (ids[1], Some(json!(value)))]);
    let rules_alone = |value: &str| {
        let line = serde_json::to_vec(&account(value)).unwrap();
        let out = flatten_chunk(schema(), &arrow_schemas(schema()), &Chunk::Lines { first_line: 1, bytes: line });
        let ctx =
            RuleContext::new(Some(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap()), chrono_tz::Europe::Berlin);
        sorted(ferry::rules::validate_tables(schema(), &ctx, &out.tables, &out.findings))
    };
    let refused = ["invalid_characters statements.0.statement_id", "invalid_characters statements.1.statement_id"];
    assert_eq!(sorted(validate(&account("1\u{1b}"))), refused);
    assert_eq!(rules_alone("1\u{1b}"), refused);
    let repeat = ["duplicate_statement_id statements.1.statement_id"];
    assert_eq!(sorted(validate(&account("1"))), repeat);
    assert_eq!(rules_alone("1"), repeat);
}

/// A value at a JSON pointer, and the code and a piece of its detail it must get (or nothing).
type Expectation = (&'static str, &'static str, Option<(&'static str, &'static str)>);

/// The values of issue 18 through the rules, at their attrs: each gets exactly its code (with the
/// detail docs/identifiers.md promises) or no finding at all.
#[test]
fn identifiers_answer_as_their_reference_implementations() {
    const IBAN: &str = "/payment_instructions/0/bank_account/iban";
    let cases: &[Expectation] = &[
        (IBAN, "DE89 3704 0044 0532 0130 00", Some(("invalid_iban", "remove the spaces"))),
        (IBAN, "GB82west12345698765432", Some(("invalid_iban", "lower-case"))),
        (IBAN, "DE99370400440000000024", Some(("invalid_iban", "check digits 99"))),
        (IBAN, "DE26471Y05039448169583", Some(("invalid_iban", "8!n10!n"))),
        (IBAN, "PK36SCBL0000001123456702", None),
        (IBAN, "HN88CABF00000000000250005469", None),
        ("/customers/0/mobile", "+4913768485528", Some(("invalid_phone_number", "not a valid phone number"))),
        ("/customers/0/mobile", "+4913864487", Some(("invalid_phone_number", "not a valid phone number"))),
        ("/customers/0/mobile", "+49185819185833", Some(("invalid_phone_number", "not a valid phone number"))),
        ("/customers/0/landline", "+494949318695", Some(("invalid_phone_number", "not a valid phone number"))),
        ("/customers/0/mobile", "+491741721223", None),
        ("/customers/0/email", "käthe.krüger@icloud.com", Some(("invalid_email", "not a valid e-mail"))),
        ("/customers/0/email", ".braun2000@kabelmail.de", Some(("invalid_email", "not a valid e-mail"))),
        ("/customers/0/email", "<script>@example.de", Some(("invalid_email", "not a valid e-mail"))),
        ("/customers/0/email", "koe\"ster84@example.de", Some(("invalid_email", "not a valid e-mail"))),
        ("/customers/0/email", "guenther.bauer@öko-strom.de", None),
        ("/customers/0/email", "info@müller.de", None),
    ];
    let mut failures = Vec::new();
    for (pointer, value, want) in cases {
        let found = validate(&apply(&[(pointer, s(value))]));
        let attr = pointer[1..].replace('/', ".");
        let ok = match want {
            None => found.is_empty(),
            Some((code, detail)) => {
                found.len() == 1 && found[0].code == *code && found[0].attr == attr && found[0].detail.contains(detail)
            }
        };
        if !ok {
            let got: Vec<_> = found.iter().map(|f| format!("{} {}: {}", f.code, f.attr, f.detail)).collect();
            failures.push(format!("{value:?} at {attr}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
