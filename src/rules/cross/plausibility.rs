//! Plausibility warnings that compare fields: prices, OBIS media, statement supply types.
//!
//! - `net_price_above_gross_price`: in an agreement's params, a net price above its gross
//!   price (unit rate, night unit rate, monthly standing charge), at the net field.
//! - `obis_medium_mismatch`: an OBIS code's medium (its first group) must be 1 on an
//!   ELECTRICITY supply point and 1 or 7 on a GAS one, at the register's `obis_code`.
//! - `statement_supply_type_not_on_account`: a statement's `supply_type` should be the type of
//!   a supply point of the account, at its `supply_type`.
//!
//! Why: each is almost always a column swapped or copied from the wrong tariff, meter or
//! bill; none is certainly wrong, so all are warnings by default. Example: a gas register with
//! `"obis_code": "1-0:1.8.0"` is fine (gas meters may count in kWh), `"6-0:1.8.0"` is not.

use rust_decimal::Decimal;

use super::{By, Emitter, key, sets_by, strings, supply_point_rows, table, text};
use crate::findings::{Finding, quote};
use crate::identifiers::is_valid_obis;

const PRICES: [(&str, &str); 3] = [
    ("params.unit_rate_per_kwh", "params.net_unit_rate_per_kwh"),
    ("params.night_unit_rate_per_kwh", "params.net_night_unit_rate_per_kwh"),
    ("params.monthly_standing_charge", "params.net_monthly_standing_charge"),
];

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    prices(e, &mut out);
    obis(e, &mut out);
    statements(e, &mut out);
    out
}

fn prices(e: &Emitter<'_>, out: &mut Vec<Finding>) {
    let Some((id, agrs)) = table(e, "agreements") else { return };
    for (gross, net) in PRICES {
        let (Some(g), Some(n)) = (strings(agrs, gross), strings(agrs, net)) else { continue };
        for row in 0..agrs.num_rows() {
            let (Some(gv), Some(nv)) = (text(g, row), text(n, row)) else { continue };
            let (Ok(gd), Ok(nd)) = (Decimal::from_str_exact(gv), Decimal::from_str_exact(nv)) else { continue };
            if nd > gd {
                let detail = format!("the net price {} is above the gross price {}", quote(nv), quote(gv));
                out.extend(e.finding(id, row, net, "net_price_above_gross_price", detail, Some(nv)));
            }
        }
    }
}

fn obis(e: &Emitter<'_>, out: &mut Vec<Finding>) {
    let (Some((points_id, points)), Some((reg_id, regs))) = (table(e, "supply_points"), table(e, "registers")) else {
        return;
    };
    let (Some(codes), Some(types)) = (strings(regs, "obis_code"), strings(points, "supply_type")) else { return };
    let Some(point_rows) = supply_point_rows(e, reg_id, points_id) else { return };
    for (row, point) in point_rows.into_iter().enumerate() {
        let (Some(code), Some(ty)) = (text(codes, row), text(types, point)) else { continue };
        if !is_valid_obis(code) {
            continue;
        }
        let medium = code.split('-').next().unwrap_or_default();
        let fits = match ty {
            "ELECTRICITY" => medium == "1",
            "GAS" => medium == "1" || medium == "7",
            _ => true,
        };
        if !fits {
            let detail = format!("{} has medium {medium}, which does not measure {ty}", quote(code));
            out.extend(e.finding(reg_id, row, "obis_code", "obis_medium_mismatch", detail, Some(code)));
        }
    }
}

fn statements(e: &Emitter<'_>, out: &mut Vec<Finding>) {
    let (Some((_, points)), Some((st_id, sts))) = (table(e, "supply_points"), table(e, "statements")) else { return };
    let types = sets_by(points, "supply_type", By::Account, e.tables[0].num_rows());
    let Some(kinds) = strings(sts, "supply_type") else { return };
    let owners = key(sts, By::Account);
    for row in 0..sts.num_rows() {
        let Some(kind) = text(kinds, row) else { continue };
        if !types[owners.value(row) as usize].contains(kind) {
            let detail = format!("the account has no {kind} supply point");
            out.extend(e.finding(
                st_id,
                row,
                "supply_type",
                "statement_supply_type_not_on_account",
                detail,
                Some(kind),
            ));
        }
    }
}
