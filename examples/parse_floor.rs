//! The parse floor for the flatten benchmark (bench/flatten.sh).
//!
//! Reads a dump with ferry's own chunk reader and, on `--threads` threads, parses every line
//! in one of three ways, reporting wall seconds and MB/s:
//!
//! - `ignored`: serde_json into `IgnoredAny` (syntax only; the absolute floor),
//! - `typed`: serde_json into derived structs of the whole payload (what a plain serde
//!   program would do),
//! - `flatten`: ferry's flattener into Arrow batches, without writing Parquet.
//!
//! Usage: cargo run --release --example parse_floor -- DUMP MODE THREADS

#![allow(dead_code, reason = "the typed structs exist to be deserialised, not read")]

use std::time::Instant;

use ferry::ingest::{Chunk, DumpReader, IngestOptions, ReadAhead, arrow_schemas, flatten_chunk};
use ferry::schema::Schema;
use rayon::prelude::*;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// A decimal given as a string or a JSON number, kept as text.
#[derive(Debug)]
struct Dec(String);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal")
            }
            fn visit_str<E>(self, v: &str) -> Result<Dec, E> {
                Ok(Dec(v.to_owned()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

type S = Option<String>;
type L<T> = Option<Vec<T>>;

#[derive(Deserialize)]
struct Account {
    external_account_number: S,
    import_supplier: S,
    unknown_occupier: Option<bool>,
    customers: L<Customer>,
    billing_address1: S,
    billing_address2: S,
    billing_address3: S,
    billing_address4: S,
    billing_postcode: S,
    sales_channel: S,
    sales_subchannel: S,
    supply_addresses: L<SupplyAddress>,
    transfer_balance: Option<Dec>,
    references: L<KeyValue>,
    statements: L<Statement>,
    ledgers: L<Ledger>,
    payment_instructions: L<PaymentInstruction>,
    payment_schedules: L<PaymentSchedule>,
    account_campaigns: L<Campaign>,
    metadata: L<Metadata>,
    notes: L<Note>,
}

#[derive(Deserialize)]
struct Customer {
    given_name: S,
    family_name: S,
    email: S,
    mobile: S,
    landline: S,
    date_of_birth: S,
    title: S,
    salutation: S,
    customer_preferences: Option<Preferences>,
}

#[derive(Deserialize)]
struct Preferences {
    opted_into_sms: Option<bool>,
    opted_into_recommended: Option<bool>,
    opted_into_updates: Option<bool>,
    opted_into_third_parties: Option<bool>,
    opted_into_offers: Option<bool>,
    is_user_psr_consent_obtained: Option<bool>,
}

#[derive(Deserialize)]
struct SupplyAddress {
    supply_address1: S,
    supply_address2: S,
    supply_address3: S,
    supply_address4: S,
    supply_postcode: S,
    customer_at_supply_address_from_date: S,
    supply_points: L<SupplyPoint>,
}

#[derive(Deserialize)]
struct SupplyPoint {
    identifier: S,
    agreements: L<Agreement>,
    supply_type: S,
    supply_start_date: S,
    supply_end_date: S,
    supply_start_type: S,
    melos: L<Melo>,
    previous_supplier_id: S,
    last_billed_to_date: S,
    balancing_periods: L<BalancingPeriod>,
    transfer_readings: L<TransferReading>,
    meter_operators: L<Role>,
    network_operators: L<Role>,
    transmission_system_operators: L<Role>,
    gas_supply_point_load_profiles: L<GasProfile>,
    electricity_supply_point_load_profiles: L<ElectricityProfile>,
}

#[derive(Deserialize)]
struct GasProfile {
    valid_from: S,
    valid_to: S,
    tum_kundenwert: Option<Dec>,
    jahresmenge_kwh: Option<Dec>,
    marktgebiet: S,
    profilname: S,
    bilanzierungsverfahren: S,
    druckebene: S,
    gas_quality: S,
    prognosegrundlage: S,
    fallgruppenzuordnung: S,
    netznutzungsvertrag_type: S,
    netznutzungszahlung: S,
    netznutzungsabrechnungsvariante: S,
    tagesparameter_type: S,
    tagesparameter_location: S,
    tagesparameter_provider: S,
    bilanzkreis: S,
}

#[derive(Deserialize)]
struct ElectricityProfile {
    valid_from: S,
    valid_to: S,
    bilanzierungsgebiet: S,
    regelzone: S,
    aggregationsverantwortung: S,
    lieferrichtung: S,
    prognosegrundlage_werte_profile: S,
    prognosegrundlage_slp_tlp: S,
    slp_profilname: S,
    slp_bilanzierungsverfahren: S,
    slp_jvp_kwh: Option<Dec>,
    tlp_profilname: S,
    tlp_bilanzierungsverfahren: S,
    tlp_profilschar: S,
    tlp_jvp_spezifische_arbeit_265_kwhk: Option<Dec>,
    tlp_jvp_angepasste_elektrische_arbeit_z08_kwh: Option<Dec>,
    tlp_klima_temperatur_typ: S,
    tlp_klima_temperatur_kennzeichnung: S,
    tlp_klima_temperatur_codeliste: S,
    tlp_klima_temperatur_codepflege: S,
    smgw_wahlrecht: Option<bool>,
    smgw_wahlrecht_grund_ablehnung: S,
    summenzeitreihentyp: S,
    bilanzkreis: S,
    spannungsebene: S,
    umspannung: S,
    abwicklungsmodell: S,
}

#[derive(Deserialize)]
struct Agreement {
    effective_from: S,
    effective_to: S,
    agreed_at: S,
    product_code: S,
    sign_up_reward: Option<Reward>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Reward {
    amount: Option<Dec>,
    scheme_name: S,
}

#[derive(Deserialize)]
struct Params {
    annual_consumption: Option<Dec>,
    annual_nighttime_usage: Option<Dec>,
    unit_rate_per_kwh: Option<Dec>,
    net_unit_rate_per_kwh: Option<Dec>,
    night_unit_rate_per_kwh: Option<Dec>,
    net_night_unit_rate_per_kwh: Option<Dec>,
    monthly_standing_charge: Option<Dec>,
    net_monthly_standing_charge: Option<Dec>,
    total_estimated_annual_bill_in_euros: Option<Dec>,
    network_charges: Option<NetworkCharges>,
}

#[derive(Deserialize)]
struct NetworkCharges {
    total_network_charges_per_year: Option<Dec>,
    eeg_charge_annual: Option<Dec>,
}

#[derive(Deserialize)]
struct Melo {
    melo_number: S,
    meters: L<Meter>,
}

#[derive(Deserialize)]
struct Meter {
    meter_number: S,
    meter_type: S,
    meter_sub_type: S,
    messwerterfassung: S,
    energierichtung: S,
    fernschaltung: S,
    registeranzahl: S,
    active_from: S,
    active_to: S,
    registers: L<Register>,
    conversion_factors: L<ConversionFactor>,
    electricity_meter_gateways: L<Gateway>,
}

#[derive(Deserialize)]
struct Register {
    obis_code: S,
    digits: Option<i64>,
    decimal_places: Option<i64>,
    active_from: S,
    active_to: S,
    readings: L<Reading>,
    smgw_configurations: L<Smgw>,
}

#[derive(Deserialize)]
struct Reading {
    status: S,
    value: Option<Dec>,
    type_of_read: S,
    origin: S,
    qualifier: S,
    read_at: S,
    is_transfer_reading: Option<bool>,
}

#[derive(Deserialize)]
struct Smgw {
    configuration_id: S,
    valid_from: S,
}

#[derive(Deserialize)]
struct ConversionFactor {
    active_from_date: S,
    active_to_date: S,
    calorific_value: Option<Dec>,
    condition_value: Option<Dec>,
}

#[derive(Deserialize)]
struct Gateway {
    number: S,
    communication_method: S,
    valid_from: S,
    valid_to: S,
}

#[derive(Deserialize)]
struct BalancingPeriod {
    valid_from: S,
    valid_to: S,
    balancing_period_time_slices: L<TimeSlice>,
}

#[derive(Deserialize)]
struct TimeSlice {
    valid_from: S,
    valid_to: S,
    balancing_group: S,
}

#[derive(Deserialize)]
struct TransferReading {
    value: Option<Dec>,
    origin: S,
    read_at: S,
    is_estimate: Option<bool>,
    meter_number: S,
    register_type: S,
}

#[derive(Deserialize)]
struct Role {
    code: S,
    valid_from: S,
    valid_to: S,
}

#[derive(Deserialize)]
struct KeyValue {
    namespace: S,
    value: S,
}

#[derive(Deserialize)]
struct Statement {
    bill_period_from_date: S,
    bill_period_to_date: S,
    statement_path: S,
    statement_id: S,
    supply_type: S,
}

#[derive(Deserialize)]
struct Ledger {
    identifiers: L<String>,
    ledger_code: S,
    last_statement_closing_date: S,
    last_statement_balance: Option<Dec>,
    ledger_balance: Option<Dec>,
    current_statement_transactions: L<Transaction>,
}

#[derive(Deserialize)]
struct Transaction {
    transaction_id: S,
    transaction_date: S,
    amount: Option<Dec>,
    #[serde(rename = "type")]
    kind: S,
    reason: S,
    payment_type: S,
}

#[derive(Deserialize)]
struct PaymentInstruction {
    vendor: S,
    reference: S,
    #[serde(rename = "type")]
    kind: S,
    ledger_code: S,
    valid_from: S,
    bank_account: Option<BankAccount>,
}

#[derive(Deserialize)]
struct BankAccount {
    account_holder: S,
    account_number: S,
    iban: S,
}

#[derive(Deserialize)]
struct PaymentSchedule {
    amount: Option<Dec>,
    ledger_code: S,
    day_of_month: Option<i64>,
    frequency: S,
    means: S,
    start_date: S,
}

#[derive(Deserialize)]
struct Campaign {
    slug: S,
    campaign_note: S,
}

#[derive(Deserialize)]
struct Metadata {
    key: S,
    value: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Deserialize)]
struct Note {
    created_at: S,
    body: S,
    is_pinned: Option<bool>,
}

fn lines(chunk: &Chunk) -> impl Iterator<Item = &[u8]> {
    let bytes: &[u8] = match chunk {
        Chunk::Lines { bytes, .. } => bytes,
        Chunk::TooLong { .. } => &[],
    };
    bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dump, mode, threads] = args.as_slice() else {
        eprintln!("usage: parse_floor DUMP ignored|typed|flatten THREADS");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS is a number");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
    let options = IngestOptions::for_threads(threads);
    let schema = Schema::builtin();
    let arrow = arrow_schemas(&schema);
    let size = std::fs::metadata(dump).expect("the dump exists").len();
    let reader = DumpReader::open(std::path::Path::new(dump), options.chunk_size).expect("the dump opens");
    let mut reader = ReadAhead::spawn(reader, options.wave);
    let started = Instant::now();
    let mut units = 0u64;
    pool.install(|| {
        loop {
            let mut wave = Vec::new();
            while wave.len() < options.wave {
                match reader.next_chunk().expect("the dump reads") {
                    Some(c) => wave.push(c),
                    None => break,
                }
            }
            if wave.is_empty() {
                break;
            }
            units += wave
                .par_iter()
                .map(|chunk| match mode.as_str() {
                    "ignored" => {
                        lines(chunk).filter(|l| serde_json::from_slice::<IgnoredAny>(l).is_ok()).count() as u64
                    }
                    "typed" => lines(chunk).filter(|l| serde_json::from_slice::<Account>(l).is_ok()).count() as u64,
                    "flatten" => flatten_chunk(&schema, &arrow, chunk).accounts,
                    other => panic!("unknown mode {other}"),
                })
                .sum::<u64>();
        }
    });
    let secs = started.elapsed().as_secs_f64();
    println!("{mode}\t{threads}\t{secs:.2}\t{:.0}\t{units}", size as f64 / 1e6 / secs);
}
