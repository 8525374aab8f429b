//! The report as Markdown: the same numbers as the HTML and JSON, for a chat or a ticket.
//!
//! Everything that comes from the data (values, details, attrs with unknown keys, suppliers,
//! account numbers, inputs) is shown only inside code spans (`code`, `cell`), so that no
//! markup, link or HTML in a dump is ever rendered by whoever opens the report.

use std::fmt::Write;

use super::{Count, Report};

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let f = &r.funnel;
    let _ = writeln!(s, "# Data-quality report: pipeline {}, run {}\n", r.pipeline, r.run_id);
    let _ = writeln!(
        s,
        "Status **{}** (exit {}), {} to {}, ferry {}, schema {}.\n",
        r.status, r.exit, r.started_at, r.finished_at, r.ferry_version, r.schema
    );
    let _ = writeln!(s, "## Funnel\n\n| step | accounts | of read |\n|---|---:|---:|");
    let created = if r.options.dry_run { "would be created (dry run)" } else { "created" };
    for (name, n) in [("read", f.read), ("valid", f.valid), ("staged", f.staged), (created, f.created)] {
        let _ = writeln!(s, "| {name} | {n} | {} |", percent(n, f.read));
    }
    let _ = writeln!(
        s,
        "\nRejected {}, already imported {}, create failed {}.\n",
        f.rejected, f.already_imported, f.create_failed
    );
    if !r.thresholds.is_empty() {
        let _ = writeln!(s, "## Thresholds\n\n| threshold | limit | actual | |\n|---|---:|---:|---|");
        for t in &r.thresholds {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.name,
                t.limit,
                t.actual,
                if t.crossed { "**crossed**" } else { "ok" }
            );
        }
        s.push('\n');
    }
    let fi = &r.findings;
    let _ = writeln!(
        s,
        "## Findings\n\n{} findings ({} errors, {} warnings); {} lines have errors.\n",
        fi.total, fi.errors, fi.warnings, fi.lines_with_errors
    );
    let _ = writeln!(s, "### By code\n\n| code | severity | findings | accounts |\n|---|---|---:|---:|");
    for c in &fi.by_code {
        let _ = writeln!(s, "| `{}` | {} | {} | {} |", c.code, c.severity, c.count, c.lines);
    }
    counts(&mut s, "### By table", "table", &fi.by_table);
    counts(&mut s, "### By attr pattern", "attr", &fi.by_pattern);
    let _ = writeln!(
        s,
        "\n### Most frequent values (personal data masked)\n\n| attr | code | value | count |\n|---|---|---|---:|"
    );
    for v in &fi.values {
        let _ = writeln!(s, "| {} | `{}` | {} | {} |", cell(&v.pattern), v.code, cell(&v.value), v.count);
    }
    let _ = writeln!(s, "\n### Sample accounts\n");
    for sample in &fi.samples {
        let _ = writeln!(s, "- `{}`", sample.code);
        for a in &sample.accounts {
            let _ = writeln!(
                s,
                "  - line {} {} {}",
                a.line,
                code(a.import_supplier.as_deref().unwrap_or("-")),
                code(a.external_account_number.as_deref().unwrap_or("-"))
            );
            for f in &a.findings {
                let _ = writeln!(s, "    - {} `{}` at {}: {}", f.severity, f.code, code(&f.attr), code(&f.detail));
            }
        }
    }
    let _ = writeln!(s, "\n## Create\n\n| status | outcome | accounts |\n|---:|---|---:|");
    for o in &r.create.outcomes {
        let _ = writeln!(s, "| {} | {} | {} |", o.status, o.outcome, o.count);
    }
    let _ = writeln!(s, "\n{:.2} s creating, {:.0} accounts/s.\n", r.create.seconds, r.create.accounts_per_second);
    for p in &r.push {
        let _ = writeln!(
            s,
            "## Push: {} to `{}`\n\n{} The window went {}.\n\n| operation | status | outcome | accounts |\n|---|---:|---|---:|",
            p.supplier,
            p.target,
            p.sentence(),
            window_steps(&p.window),
        );
        for (operation, status, outcome, n) in &p.outcomes {
            let _ = writeln!(s, "| {operation} | {status} | {outcome} | {n} |");
        }
        let _ = writeln!(s, "\n| attempts by class | requests |\n|---|---:|");
        for (class, n) in &p.classes {
            let _ = writeln!(s, "| {class} | {n} |");
        }
        let [p50, p90, p95, p99, max] = p.latency_ms;
        let _ = writeln!(s, "\nLatency: p50 {p50} ms, p90 {p90} ms, p95 {p95} ms, p99 {p99} ms, max {max} ms.\n");
    }
    let _ =
        writeln!(s, "## Timings\n\n| stage | input or supplier | run | accounts | seconds |\n|---|---|---|---:|---:|");
    for t in &r.steps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} |",
            t.stage,
            cell(&t.what),
            t.run_id.as_deref().unwrap_or("-"),
            t.accounts,
            t.seconds
        );
    }
    let _ = writeln!(
        s,
        "\n## Trend\n\n| run | read | valid | staged | created | rejected |\n|---|---:|---:|---:|---:|---:|"
    );
    for p in &r.trend {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.1} % |",
            p.run_id,
            p.read,
            p.valid,
            p.staged,
            p.created,
            p.rejected_share * 100.0
        );
    }
    match &r.diff {
        None => {
            let _ = writeln!(s, "\n## Since the previous run\n\nThis is the pipeline's first run.");
        }
        Some(d) => {
            let _ = writeln!(
                s,
                "\n## Since the previous run ({})\n\n{} new findings, {} fixed.",
                d.previous_run, d.new_total, d.fixed_total
            );
            counts(&mut s, "### New", "code", &d.new);
            counts(&mut s, "### Fixed", "code", &d.fixed);
        }
    }
    s
}

fn counts(s: &mut String, title: &str, what: &str, rows: &[Count]) {
    let _ = writeln!(s, "\n{title}\n\n| {what} | findings |\n|---|---:|");
    for c in rows {
        let _ = writeln!(s, "| {} | {} |", cell(&c.key), c.count);
    }
}

/// `text` as an inline code span: control characters escaped, and a fence of more backticks
/// than the longest run inside it, so that nothing in it ends the span early.
pub(super) fn code(text: &str) -> String {
    let text = crate::text::escape(text);
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') { " " } else { "" };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A code span for a table cell: a `|` would end the cell even inside the span.
fn cell(text: &str) -> String {
    code(text).replace('|', "\\|")
}

pub(super) fn percent(n: u64, of: u64) -> String {
    if of == 0 { "-".to_owned() } else { format!("{:.1} %", n as f64 * 100.0 / of as f64) }
}

/// The window's changes over a push, the first dozen in words.
fn window_steps(window: &[(f64, usize)]) -> String {
    let mut steps: Vec<String> = window.iter().take(12).map(|(t, n)| format!("{n} at {t:.1} s")).collect();
    if window.len() > 12 {
        steps.push(format!("and {} more changes", window.len() - 12));
    }
    steps.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stays_inside_its_code_span() {
        assert_eq!(code("ACME"), "`ACME`");
        assert_eq!(code("<img src=x onerror=alert(1)>"), "`<img src=x onerror=alert(1)>`");
        assert_eq!(code("a `b` c"), "``a `b` c``");
        assert_eq!(code("`x``"), "``` `x`` ```");
        assert_eq!(code("one\ntwo"), "`one\\ntwo`");
        assert_eq!(cell("a|b"), "`a\\|b`");
    }
}
