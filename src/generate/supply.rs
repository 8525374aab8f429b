//! The supply side of a synthetic account: supply points with their agreements, operators,
//! load profiles, MeLos, meters, registers and readings, valid by construction.

use chrono::{Days, Months, NaiveDate};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::account::*;

pub(super) fn supply_point<R: Rng>(
    rng: &mut R,
    id: &str,
    ty: &'static str,
    index: u64,
    meter_counter: &mut u32,
) -> Value {
    let gas = ty == "GAS";
    let start = day(rng, date(2016, 1, 1), date(2021, 12, 31));
    let mut p = Map::new();
    p.insert("identifier".into(), json!(id));
    // Contiguous agreements from the supply start; the last may be open.
    let n_agreements = rng.random_range(1..=3);
    let mut agreements = Vec::new();
    let mut from = start;
    let mut last_to = None;
    for k in 0..n_agreements {
        let to = from.checked_add_months(Months::new(12)).expect("dates stay in range");
        let open = k + 1 == n_agreements && rng.random_bool(0.5);
        agreements.push(agreement(rng, from, if open { None } else { Some(to) }, gas));
        last_to = if open { None } else { Some(to) };
        from = to;
    }
    p.insert("agreements".into(), Value::Array(agreements));
    p.insert("supply_type".into(), json!(ty));
    p.insert("supply_start_date".into(), json!(ymd(start)));
    p.insert("supply_end_date".into(), last_to.map(|d| json!(ymd(d))).unwrap_or(Value::Null));
    p.insert(
        "supply_start_type".into(),
        json!(pick(rng, &["MOVE_IN", "CHANGE_OF_SUPPLIER", "NEW_CONNECTION", "DEFAULT_SUPPLY"])),
    );
    let meters: Vec<Value> = (0..rng.random_range(1..=2))
        .map(|_| {
            *meter_counter += 1;
            let number = format!("{}{index:07}-{}", if gas { "G" } else { "E" }, meter_counter);
            meter(rng, &number, start, gas)
        })
        .collect();
    let first_meter = meters[0]["meter_number"].clone();
    p.insert(
        "melos".into(),
        json!([{ "melo_number": format!("DE{}{}", digits(rng, 11), alnum(rng, 20)), "meters": meters }]),
    );
    p.insert("previous_supplier_id".into(), json!(market_partner(rng)));
    p.insert("last_billed_to_date".into(), json!(ymd(day(rng, date(2022, 1, 1), date(2024, 12, 31)))));
    let offset = format!("{}T00:00:00+01:00", ymd(start));
    p.insert(
        "balancing_periods".into(),
        json!([{
            "valid_from": offset,
            "valid_to": null,
            "balancing_period_time_slices": [{ "valid_from": ymd(start), "valid_to": null, "balancing_group": pick(rng, BALANCING_GROUPS) }],
        }]),
    );
    p.insert(
        "transfer_readings".into(),
        json!([{
            "value": fixed(rng.random_range(0..9_999_999), 2),
            "origin": pick(rng, ORIGINS),
            "read_at": format!("{}T02:00:00+02:00", ymd(day(rng, start, date(2024, 12, 31)))),
            "is_estimate": rng.random_bool(0.3),
            "meter_number": first_meter,
            "register_type": null,
        }]),
    );
    // One or two contiguous operator periods.
    let split = day(rng, start + Days::new(30), date(2024, 6, 30));
    let ts = |d: NaiveDate| timestamp(d, 0);
    let operators = |rng: &mut R| {
        if rng.random_bool(0.5) {
            json!([{ "code": market_partner(rng), "valid_from": ts(start), "valid_to": null }])
        } else {
            json!([
                { "code": market_partner(rng), "valid_from": ts(start), "valid_to": ts(split) },
                { "code": market_partner(rng), "valid_from": ts(split), "valid_to": null },
            ])
        }
    };
    p.insert("meter_operators".into(), operators(rng));
    p.insert("network_operators".into(), operators(rng));
    if !gas && rng.random_bool(0.5) {
        p.insert("transmission_system_operators".into(), operators(rng));
    }
    let profile_from = format!("{}T00:00:00+01:00", ymd(start));
    if gas {
        p.insert(
            "gas_supply_point_load_profiles".into(),
            json!([{
                "valid_from": profile_from, "valid_to": null,
                "tum_kundenwert": fixed(rng.random_range(10_000..900_000), 4),
                "jahresmenge_kwh": rng.random_range(2000..40000).to_string(),
                "marktgebiet": "293", "profilname": pick(rng, &["R14", "H0", "D13"]),
                "bilanzierungsverfahren": pick(rng, &["E01", "E02"]), "druckebene": "Y01",
                "gas_quality": pick(rng, &["Y04", "Y05"]), "prognosegrundlage": "ZC0",
                "fallgruppenzuordnung": "GABi-RLMmT", "netznutzungsvertrag_type": "Z08",
                "netznutzungszahlung": "Z10", "netznutzungsabrechnungsvariante": "Z15",
                "tagesparameter_type": "Z99", "tagesparameter_location": digits(rng, 6),
                "tagesparameter_provider": "ZT3", "bilanzkreis": eic(rng),
            }]),
        );
    } else {
        p.insert(
            "electricity_supply_point_load_profiles".into(),
            json!([{
                "valid_from": profile_from, "valid_to": null,
                "bilanzierungsgebiet": eic(rng), "regelzone": pick(rng, CONTROL_AREAS),
                "aggregationsverantwortung": "ZA8", "lieferrichtung": "Z07",
                "prognosegrundlage_werte_profile": "ZA6", "prognosegrundlage_slp_tlp": "E14",
                "slp_profilname": "H0", "slp_bilanzierungsverfahren": "Z10",
                "slp_jvp_kwh": rng.random_range(500..9000).to_string(),
                "tlp_profilname": "S12", "tlp_bilanzierungsverfahren": "E01", "tlp_profilschar": "SP1",
                "tlp_jvp_spezifische_arbeit_265_kwhk": "0.42", "tlp_jvp_angepasste_elektrische_arbeit_z08_kwh": "1.2",
                "tlp_klima_temperatur_typ": "Z99", "tlp_klima_temperatur_kennzeichnung": "NL MKW1",
                "tlp_klima_temperatur_codeliste": "ZT1", "tlp_klima_temperatur_codepflege": "293",
                "smgw_wahlrecht": false, "smgw_wahlrecht_grund_ablehnung": "",
                "summenzeitreihentyp": "SLS_TLS", "bilanzkreis": pick(rng, BALANCING_GROUPS),
                "spannungsebene": "E06", "umspannung": "E07", "abwicklungsmodell": "ZE9",
            }]),
        );
    }
    Value::Object(p)
}

fn agreement<R: Rng>(rng: &mut R, from: NaiveDate, to: Option<NaiveDate>, gas: bool) -> Value {
    let gross = rng.random_range(900..4500u64); // units of 0.0001 €/kWh
    let standing = rng.random_range(500..2000u64); // cents
    let mut params = Map::new();
    params.insert("annual_consumption".into(), json!(rng.random_range(800..30000).to_string()));
    if !gas {
        params.insert("annual_nighttime_usage".into(), json!(rng.random_range(100..2000).to_string()));
    }
    params.insert("unit_rate_per_kwh".into(), json!(fixed(gross, 4)));
    params.insert("net_unit_rate_per_kwh".into(), json!(fixed(gross * 100 / 119, 4)));
    if !gas {
        let night = gross * 3 / 4;
        params.insert("night_unit_rate_per_kwh".into(), json!(fixed(night, 4)));
        params.insert("net_night_unit_rate_per_kwh".into(), json!(fixed(night * 100 / 119, 4)));
    }
    params.insert("monthly_standing_charge".into(), json!(fixed(standing, 2)));
    params.insert("net_monthly_standing_charge".into(), json!(fixed(standing * 100 / 119, 2)));
    params.insert("total_estimated_annual_bill_in_euros".into(), json!(fixed(rng.random_range(30_000..400_000), 2)));
    let charges = if rng.random_bool(0.5) {
        json!({})
    } else {
        json!({ "total_network_charges_per_year": fixed(rng.random_range(10_000..50_000), 2), "eeg_charge_annual": fixed(rng.random_range(0..30_000), 2) })
    };
    params.insert("network_charges".into(), charges);
    let mut a = Map::new();
    a.insert("effective_from".into(), json!(ymd(from)));
    a.insert("effective_to".into(), to.map(|d| json!(ymd(d))).unwrap_or(Value::Null));
    a.insert("agreed_at".into(), json!(timestamp(from - Days::new(rng.random_range(1..60)), 10)));
    a.insert("product_code".into(), json!(if gas { "GAS_PRODUCT" } else { "ELECTRICITY_PRODUCT" }));
    if rng.random_bool(0.4) {
        a.insert("sign_up_reward".into(), json!({ "amount": "100.00", "scheme_name": "SAMPLE100" }));
    }
    a.insert("params".into(), Value::Object(params));
    Value::Object(a)
}

fn meter<R: Rng>(rng: &mut R, number: &str, start: NaiveDate, gas: bool) -> Value {
    let mut m = Map::new();
    m.insert("meter_number".into(), json!(number));
    m.insert("meter_type".into(), json!(pick(rng, &["EHZ", "AHZ", "BGZ", "IMS"])));
    if gas {
        m.insert("meter_sub_type".into(), json!(pick(rng, &["G4", "G6", "G100"])));
    }
    m.insert("messwerterfassung".into(), json!(pick(rng, &["AMR", "MMR"])));
    if !gas {
        m.insert("energierichtung".into(), json!("ERZ"));
        m.insert("fernschaltung".into(), json!(pick(rng, &["Z06", "Z07"])));
        m.insert("registeranzahl".into(), json!(pick(rng, &["ETZ", "ZTZ"])));
    }
    m.insert("active_from".into(), json!(timestamp(start, 0)));
    m.insert("active_to".into(), Value::Null);
    let obis: &[&str] = if gas { &["7-20:3.0.0", "7-0:3.1.0"] } else { &["1-1:1.8.1", "1-1:1.8.2"] };
    let registers: Vec<Value> =
        obis[..rng.random_range(1..=2)].iter().map(|code| register(rng, code, start, gas)).collect();
    m.insert("registers".into(), Value::Array(registers));
    if gas {
        m.insert(
            "conversion_factors".into(),
            json!([{
                "active_from_date": ymd(start),
                "active_to_date": ymd(start.checked_add_months(Months::new(48)).expect("in range")),
                "calorific_value": fixed(rng.random_range(95_000..120_000), 4),
                "condition_value": fixed(rng.random_range(9000..9900), 4),
            }]),
        );
    } else if rng.random_bool(0.3) {
        m.insert(
            "electricity_meter_gateways".into(),
            json!([{ "number": digits(rng, 6), "communication_method": pick(rng, &["LTE", "PLC", "FIBER"]), "valid_from": timestamp(start, 0), "valid_to": null }]),
        );
    }
    Value::Object(m)
}

fn register<R: Rng>(rng: &mut R, obis: &str, start: NaiveDate, gas: bool) -> Value {
    let digits_n: u32 = rng.random_range(5..=8);
    let places: u32 = rng.random_range(0..=3);
    let readings: Vec<Value> = (0..rng.random_range(0..=4))
        .map(|_| {
            let max = 10u64.pow(digits_n + places);
            json!({
                "status": pick(rng, STATUSES),
                "value": fixed(rng.random_range(0..max), places),
                "type_of_read": pick(rng, READ_TYPES),
                "origin": pick(rng, ORIGINS),
                "qualifier": pick(rng, &["READ", "ESTIMATED"]),
                "read_at": format!("{}T02:00:00+02:00", ymd(day(rng, start, date(2025, 6, 30)))),
                "is_transfer_reading": false,
            })
        })
        .collect();
    let mut r = Map::new();
    r.insert("obis_code".into(), json!(obis));
    r.insert("digits".into(), json!(digits_n));
    r.insert("decimal_places".into(), json!(places));
    r.insert("active_from".into(), json!(timestamp(start, 0)));
    r.insert("active_to".into(), Value::Null);
    r.insert("readings".into(), Value::Array(readings));
    if !gas && rng.random_bool(0.3) {
        r.insert(
            "smgw_configurations".into(),
            json!([{ "configuration_id": digits(rng, 6), "valid_from": timestamp(start, 0) }]),
        );
    }
    Value::Object(r)
}
