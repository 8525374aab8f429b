//! Validation of a whole dump: the rules per chunk, uniqueness across the dump, and the tally
//! behind `ferry validate`'s summary and exit code.
//!
//! Per chunk (in parallel), [`check_chunk`] adds the rule findings to the flattener's, ordered
//! by line. Then, in input order, [`InputScope`] checks what needs the whole dump (an
//! external account number seen on an earlier line) and [`Tally`] counts accounts, rejected
//! accounts, findings per code and per attr pattern.

use std::collections::{BTreeMap, HashSet};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;

use crate::findings::{Finding, quote};
use crate::ingest::{ChunkOutput, LINE};
use crate::rules::{RuleContext, validate_tables};
use crate::schema::{Schema, Severity, UniqueScope};

/// Adds the rule findings of one chunk to its flattener findings, ordered by line.
///
/// `invalid_characters` takes precedence: a value that has it gets no other finding (a cross
/// rule that compared it with another value, say), so that one bad value is one finding.
pub fn check_chunk(schema: &Schema, ctx: &RuleContext, out: &mut ChunkOutput) {
    let mut rules = validate_tables(schema, ctx, &out.tables, &out.findings);
    if rules.is_empty() {
        return;
    }
    let refused: HashSet<(u64, String)> = rules
        .iter()
        .filter(|f| f.code == crate::findings::codes::INVALID_CHARACTERS)
        .map(|f| (f.line, f.attr.clone()))
        .collect();
    if !refused.is_empty() {
        rules.retain(|f| {
            f.code == crate::findings::codes::INVALID_CHARACTERS || !refused.contains(&(f.line, f.attr.clone()))
        });
    }
    out.findings.extend(rules);
    out.findings.sort_by_key(|f| f.line);
}

/// The values seen so far in a run, each kept as a 128-bit fingerprint: 16 bytes a value,
/// whatever its length, where a `String` each took about 80 bytes with the set's own share.
/// The sets of a run grow with the dump (every external account number is in them), so at
/// 5.8 million accounts this is the difference between about 130 MB and about 480 MB.
///
/// A fingerprint is two SipHash-1-3 digests of the value under independent random keys. Two
/// different values share one with probability 2^-128 per pair: about 10^-25 for a run of ten
/// million values, far below the chance of the hardware flipping the answer.
#[derive(Debug)]
pub struct SeenSet {
    keys: (std::hash::RandomState, std::hash::RandomState),
    seen: HashSet<u128, std::hash::BuildHasherDefault<Prehashed>>,
}

impl Default for SeenSet {
    fn default() -> Self {
        Self { keys: (std::hash::RandomState::new(), std::hash::RandomState::new()), seen: HashSet::default() }
    }
}

impl SeenSet {
    /// Adds `value`; false when it was seen before.
    pub fn insert(&mut self, value: &str) -> bool {
        use std::hash::BuildHasher;
        let fingerprint = (u128::from(self.keys.0.hash_one(value)) << 64) | u128::from(self.keys.1.hash_one(value));
        self.seen.insert(fingerprint)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The hasher of a set of fingerprints, which are uniformly random already: their low 64
/// bits are the hash.
#[derive(Debug, Default)]
pub struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
}

/// Uniqueness across the whole input (`unique = "input"` on root fields), checked in order.
pub struct InputScope {
    fields: Vec<(String, String)>,
    seen: Vec<SeenSet>,
}

impl InputScope {
    pub fn new(schema: &Schema) -> Self {
        let root = schema.object(match schema.root().body {
            crate::schema::TableBody::Record(o) => o,
            crate::schema::TableBody::Scalar(_) => return Self { fields: Vec::new(), seen: Vec::new() },
        });
        let fields: Vec<(String, String)> = root
            .fields
            .iter()
            .filter(|f| f.unique.as_ref().is_some_and(|u| u.scope == UniqueScope::Input))
            .map(|f| (f.name.clone(), f.codes.unique.clone().unwrap_or_else(|| "duplicate".to_owned())))
            .collect();
        let seen = fields.iter().map(|_| SeenSet::default()).collect();
        Self { fields, seen }
    }

    /// Adds a finding for every repeat, in this chunk, of a value seen on an earlier line;
    /// true when it added any.
    pub fn check(&mut self, schema: &Schema, out: &mut ChunkOutput) -> bool {
        let root = &out.tables[0];
        let lines = root.column_by_name(LINE).expect("key column").as_primitive::<UInt64Type>();
        let supplier = root.column_by_name("import_supplier").map(|c| c.as_string::<i32>());
        let mut added = false;
        for ((name, code), seen) in self.fields.iter().zip(&mut self.seen) {
            let Some(values) = root.column_by_name(name).map(|c| c.as_string::<i32>()) else { continue };
            let severity = schema.severity(code);
            // A value with control characters has its `invalid_characters` finding and no other.
            let refused = schema.severity(crate::findings::codes::INVALID_CHARACTERS) != Severity::Off;
            for row in (0..values.len()).filter(|r| values.is_valid(*r)) {
                let v = values.value(row);
                if refused && crate::text::first_forbidden(v, false).is_some() {
                    continue;
                }
                if seen.insert(v) || severity == Severity::Off {
                    continue;
                }
                out.findings.push(Finding {
                    line: lines.value(row),
                    import_supplier: supplier.filter(|s| s.is_valid(row)).map(|s| s.value(row).to_owned()),
                    external_account_number: Some(v.to_owned()).filter(|_| name == "external_account_number"),
                    attr: name.clone(),
                    code: code.clone(),
                    severity,
                    detail: format!("{} appears on an earlier line of the input", quote(v)),
                    value: Some(v.to_owned()),
                });
                added = true;
            }
        }
        if added {
            out.findings.sort_by_key(|f| f.line);
        }
        added
    }
}

/// Counts for the summary and the exit code.
#[derive(Debug, Default)]
pub struct Tally {
    pub lines: u64,
    /// Empty or white-space lines, skipped.
    pub blank: u64,
    pub accounts: u64,
    /// Lines with at least one error (accounts and lines that are not accounts).
    pub rejected_lines: u64,
    pub errors: u64,
    pub warnings: u64,
    pub by_code: BTreeMap<String, (u64, Severity)>,
    pub by_pattern: BTreeMap<String, u64>,
}

impl Tally {
    pub fn add(&mut self, out: &ChunkOutput) {
        self.lines += out.lines;
        self.blank += out.blank;
        self.accounts += out.accounts;
        let mut last_rejected = None;
        for f in &out.findings {
            match f.severity {
                Severity::Error => {
                    self.errors += 1;
                    if last_rejected != Some(f.line) {
                        self.rejected_lines += 1;
                        last_rejected = Some(f.line);
                    }
                }
                Severity::Warning => self.warnings += 1,
                Severity::Off => {}
            }
            self.by_code.entry(f.code.clone()).or_insert((0, f.severity)).0 += 1;
            *self.by_pattern.entry(fold_indices(&f.attr)).or_default() += 1;
        }
    }

    /// Lines that became accounts and have no error.
    pub fn accepted(&self) -> u64 {
        self.lines.saturating_sub(self.rejected_lines)
    }

    /// The summary for stderr: totals, then the most frequent codes and attr patterns.
    pub fn render(&self, top: usize) -> String {
        let mut out = format!(
            "{} lines, {} accounts: {} accepted, {} rejected; {} errors, {} warnings\n",
            self.lines,
            self.accounts,
            self.accepted(),
            self.rejected_lines,
            self.errors,
            self.warnings
        );
        if self.blank > 0 {
            out.push_str(&format!("{} blank lines skipped (empty or only white space: no outcome)\n", self.blank));
        }
        let mut codes: Vec<_> = self.by_code.iter().collect();
        codes.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        if !codes.is_empty() {
            out.push_str("top codes:\n");
            for (code, (n, severity)) in codes.into_iter().take(top) {
                out.push_str(&format!("  {code:<50} {n:>9}  {}\n", severity.as_str()));
            }
        }
        let mut patterns: Vec<_> = self.by_pattern.iter().collect();
        patterns.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        if !patterns.is_empty() {
            out.push_str("top attrs:\n");
            for (pattern, n) in patterns.into_iter().take(top) {
                // An unknown field's attr is a key from the data.
                out.push_str(&format!("  {:<70} {n:>9}\n", crate::text::escape(pattern)));
            }
        }
        out
    }
}

/// `customers.0.landline` → `customers.*.landline`.
pub fn fold_indices(attr: &str) -> String {
    attr.split('.')
        .map(|seg| if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) { "*" } else { seg })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seen_set_knows_repeats_and_only_repeats() {
        let mut seen = SeenSet::default();
        assert!(seen.is_empty());
        assert!(seen.insert("EXTERNAL-1"));
        assert!(!seen.insert("EXTERNAL-1"));
        assert!(seen.insert("external-1"), "case matters");
        assert!(seen.insert(""));
        assert!(!seen.insert(""));
        // Many near values (one character apart, prefixes of each other): no false repeat.
        let mut values: Vec<String> = (0..200_000).map(|i| format!("A-{i:08}")).collect();
        values.extend((1..1000).map(|n| "x".repeat(n)));
        for v in &values {
            assert!(seen.insert(v), "{v} is new");
        }
        assert_eq!(seen.len(), values.len() + 3);
        assert!(values.iter().all(|v| !seen.insert(v)), "every value again is a repeat");
    }

    #[test]
    fn indices_fold() {
        assert_eq!(
            fold_indices("supply_addresses.0.supply_points.12.identifier"),
            "supply_addresses.*.supply_points.*.identifier"
        );
        assert_eq!(fold_indices("non_field_errors"), "non_field_errors");
    }
}
