//! `field_not_allowed_for_supply_type` and `load_profile_supply_type_mismatch`: fields that
//! belong to one supply type only.
//!
//! What: every schema field with `only_on = "ELECTRICITY"` or `"GAS"` (night rates, the
//! electricity meter's energierichtung / fernschaltung / registeranzahl, gateways, SMGW
//! configurations, conversion factors, the two kinds of load profile) may appear only under a
//! supply point of that type. Why: the platform would attach gas conversion factors to an
//! electricity meter, or a night tariff to gas, without complaint. Example: `conversion_factors`
//! on a meter of an ELECTRICITY supply point is reported at `…meters.0.conversion_factors`.
//! An empty list or a null on the wrong type is no finding, and a supply point whose
//! `supply_type` is missing or invalid is not judged.

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt32Type;

use super::{Emitter, strings, supply_point_rows, table};
use crate::findings::Finding;
use crate::ingest::KEY_COLUMNS;
use crate::schema::{ColumnKind, Field, FieldType, Object, TableBody};

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let Some((points_id, points)) = table(e, "supply_points") else { return Vec::new() };
    let Some(types) = strings(points, "supply_type") else { return Vec::new() };
    let mut out = Vec::new();
    for t in &e.schema.tables {
        let TableBody::Record(object) = &t.body else { continue };
        let mut fields = Vec::new();
        collect(e, e.schema.object(*object), &mut fields);
        if fields.is_empty() {
            continue;
        }
        let Some(point_rows) = supply_point_rows(e, t.id, points_id) else { continue };
        let batch = &e.tables[t.id.0];
        for field in fields {
            let only = field.only_on.expect("collected for only_on");
            let column = batch.column(KEY_COLUMNS + field.column);
            let name = &t.columns[field.column].name;
            for (row, point) in point_rows.iter().enumerate() {
                let present = column.is_valid(row)
                    && match t.columns[field.column].kind {
                        ColumnKind::ListLen => column.as_primitive::<UInt32Type>().value(row) > 0,
                        ColumnKind::Present => column.as_boolean().value(row),
                        _ => true,
                    };
                if !present || !types.is_valid(*point) {
                    continue;
                }
                let actual = types.value(*point);
                if (actual == "ELECTRICITY" || actual == "GAS") && actual != only.as_str() {
                    let code = field.codes.only_on.as_deref().unwrap_or("field_not_allowed_for_supply_type");
                    let detail =
                        format!("{name:?} is only allowed on {} supply points; this one is {actual}", only.as_str());
                    out.extend(e.finding(t.id, row, name, code, detail, None));
                }
            }
        }
    }
    out
}

fn collect<'s>(e: &Emitter<'s>, object: &'s Object, out: &mut Vec<&'s Field>) {
    for field in &object.fields {
        if field.only_on.is_some() {
            out.push(field);
        }
        if let FieldType::Object(nested) = field.ty {
            collect(e, e.schema.object(nested), out);
        }
    }
}
