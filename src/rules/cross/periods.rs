//! `overlapping_periods` (error) and `gaps_in_periods` (warning): market-role periods.
//!
//! What: a supply point's meter operators, network operators and transmission system
//! operators, each list sorted by `valid_from`, may not overlap (the next starts before the
//! previous ends, or the previous never ends) and should not leave a gap (the next starts
//! after the previous ends). One finding per pair, at the list (`…supply_points.M.meter_operators`).
//! Why: two operators at once means two parties bill the same meter; a gap means none does.
//! Example: 2021-01-01..2022-01-01 then 2021-06-01..null overlap; 2021-01-01..2022-01-01 then
//! 2022-02-01..null leave January uncovered. `valid_to` is exclusive; datetimes compare as
//! instants, naive ones in the pipeline's timezone (Europe/Berlin by default).

use super::{Emitter, children_by_parent, strings, table, text};
use crate::findings::Finding;
use crate::rules::field::instant;

const LISTS: [&str; 3] = ["meter_operators", "network_operators", "transmission_system_operators"];

pub(super) fn check(e: &Emitter<'_>) -> Vec<Finding> {
    let Some((points_id, points)) = table(e, "supply_points") else { return Vec::new() };
    let tz = e.tz;
    let mut out = Vec::new();
    for list in LISTS {
        let Some((_, roles)) = table(e, list) else { continue };
        let (Some(from), Some(to)) = (strings(roles, "valid_from"), strings(roles, "valid_to")) else { continue };
        for (point, rows) in children_by_parent(roles, points.num_rows()).into_iter().enumerate() {
            let dated: Option<Vec<_>> = rows
                .iter()
                .map(|&r| {
                    let f = instant(text(from, r)?, tz)?;
                    let t = match text(to, r) {
                        Some(v) => Some(instant(v, tz)?),
                        None => None,
                    };
                    Some((r, f, t))
                })
                .collect();
            let Some(mut dated) = dated else { continue };
            dated.sort_by_key(|(r, f, _)| (*f, *r));
            for pair in dated.windows(2) {
                let ((_, pf, pt), (_, nf, _)) = (pair[0], pair[1]);
                let (code, what) = match pt {
                    None => ("overlapping_periods", "never ends, but another starts"),
                    Some(t) if t > nf => ("overlapping_periods", "ends after the next one starts"),
                    Some(t) if t < nf => ("gaps_in_periods", "ends before the next one starts"),
                    Some(_) => continue,
                };
                let detail =
                    format!("the period from {} {what} ({})", pf.format("%Y-%m-%d %H:%M"), nf.format("%Y-%m-%d %H:%M"));
                out.extend(e.finding(points_id, point, list, code, detail, None));
            }
        }
    }
    out
}
