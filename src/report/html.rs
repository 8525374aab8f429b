//! The report as one self-contained HTML page: inline CSS, charts as inline SVG, no scripts
//! and no external assets, so that it opens from a mail attachment or a file share.

use std::fmt::Write;

use super::md::percent;
use super::{Count, Report, TrendPoint};

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2430;margin:0;background:#f5f6f8}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:14px 0 6px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:16px 20px;margin:0 0 16px}
.meta{color:#5b6576;margin:0 0 16px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef0f3;vertical-align:top;overflow-wrap:anywhere}
.grid>div{min-width:0}th.n,td.n{white-space:nowrap}
th{color:#5b6576;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f1f3f6;padding:1px 4px;border-radius:3px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.clean{background:#dff3e4;color:#1b6b34}.rejected{background:#fdecd2;color:#8a4b00}.crossed{background:#fbdada;color:#9b1c1c}
.error{color:#9b1c1c}.warning{color:#8a4b00}details{margin:4px 0}summary{cursor:pointer}
svg text{font:12px system-ui,sans-serif;fill:#1d2430}.muted{color:#5b6576}
";

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let status_class = match r.status.as_str() {
        "clean" => "clean",
        "threshold crossed" => "crossed",
        _ => "rejected",
    };
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>ferry report {run} ({pipeline})</title>\
         <style>{STYLE}</style></head><body><main>\n\
         <h1>Data quality: pipeline {pipeline}</h1>\n<p class=\"meta\">run <code>{run}</code> · {start} → {end} · \
         <span class=\"badge {status_class}\">{status}</span> exit {exit} · ferry {version} · schema {schema}{dry}</p>\n",
        run = esc(&r.run_id),
        pipeline = esc(&r.pipeline),
        start = esc(&r.started_at),
        end = esc(&r.finished_at),
        status = esc(&r.status),
        exit = r.exit,
        version = esc(&r.ferry_version),
        schema = esc(&r.schema),
        dry = if r.options.dry_run { " · <b>dry run</b>" } else { "" },
    );
    funnel(&mut s, r);
    thresholds(&mut s, r);
    findings(&mut s, r);
    values_and_samples(&mut s, r);
    create(&mut s, r);
    push(&mut s, r);
    trend(&mut s, &r.trend);
    diff(&mut s, r);
    inputs(&mut s, r);
    s.push_str("</main></body></html>\n");
    s
}

fn funnel(s: &mut String, r: &Report) {
    let f = &r.funnel;
    let created = if r.options.dry_run { "would be created" } else { "created" };
    let steps = [
        ("read", f.read, "#5b7bd5"),
        ("valid", f.valid, "#4b9fb5"),
        ("staged", f.staged, "#49a86b"),
        (created, f.created, "#2e7d46"),
    ];
    let _ = write!(s, "<section id=\"funnel\"><h2>Funnel</h2>");
    let width = 640.0;
    let mut svg =
        format!("<svg role=\"img\" aria-label=\"funnel\" width=\"100%\" viewBox=\"0 0 900 {}\">", steps.len() * 34 + 4);
    for (i, (name, n, color)) in steps.iter().enumerate() {
        let w = if f.read == 0 { 0.0 } else { width * *n as f64 / f.read as f64 };
        let y = i * 34 + 2;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\">{name}</text><rect x=\"130\" y=\"{y}\" width=\"{w:.1}\" height=\"26\" rx=\"3\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{n} ({p})</text>",
            ty = y + 18,
            tx = 140.0 + w,
            p = percent(*n, f.read),
        );
    }
    svg.push_str("</svg>");
    s.push_str(&svg);
    let _ = writeln!(
        s,
        "<p class=\"muted\">Rejected {} · already imported {} · create failed {}</p></section>",
        f.rejected, f.already_imported, f.create_failed
    );
}

fn thresholds(s: &mut String, r: &Report) {
    if r.thresholds.is_empty() {
        return;
    }
    s.push_str("<section id=\"thresholds\"><h2>Thresholds</h2><table><tr><th>threshold</th><th class=\"n\">limit</th><th class=\"n\">actual</th><th></th></tr>");
    for t in &r.thresholds {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{:.4}</td><td>{}</td></tr>",
            esc(&t.name),
            t.limit,
            t.actual,
            if t.crossed { "<span class=\"badge crossed\">crossed</span>" } else { "ok" }
        );
    }
    s.push_str("</table></section>\n");
}

fn findings(s: &mut String, r: &Report) {
    let fi = &r.findings;
    let _ = write!(
        s,
        "<section id=\"findings\"><h2>Findings</h2><p>{} findings: <span class=\"error\">{} errors</span>, \
         <span class=\"warning\">{} warnings</span>; {} lines have errors.</p>",
        fi.total, fi.errors, fi.warnings, fi.lines_with_errors
    );
    s.push_str("<h3 id=\"by-code\">By code</h3>");
    let bars: Vec<(String, u64, &str)> = fi
        .by_code
        .iter()
        .take(super::TOP)
        .map(|c| (c.code.clone(), c.count, if c.severity == "error" { "#c0504d" } else { "#d79b3b" }))
        .collect();
    s.push_str(&bar_chart(&bars));
    s.push_str(
        "<table><tr><th>code</th><th>severity</th><th class=\"n\">findings</th><th class=\"n\">accounts</th></tr>",
    );
    for c in &fi.by_code {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"{sev}\">{sev}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&c.code),
            c.count,
            c.lines,
            sev = esc(&c.severity)
        );
    }
    s.push_str("</table><div class=\"grid\"><div><h3 id=\"by-table\">By table</h3>");
    count_table(s, "table", &fi.by_table);
    s.push_str("</div><div><h3 id=\"by-pattern\">By attr pattern</h3>");
    count_table(s, "attr", &fi.by_pattern);
    s.push_str("</div></div></section>\n");
}

fn values_and_samples(s: &mut String, r: &Report) {
    let fi = &r.findings;
    s.push_str("<section id=\"values\"><h2>Most frequent offending values</h2><p class=\"muted\">Names, e-mail addresses, phone numbers, IBANs and dates of birth are masked.</p>");
    s.push_str("<table><tr><th>attr</th><th>code</th><th>value</th><th class=\"n\">count</th></tr>");
    for v in &fi.values {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
            esc(&v.pattern),
            esc(&v.code),
            esc(&v.value),
            v.count
        );
    }
    s.push_str("</table></section>\n<section id=\"samples\"><h2>Sample accounts per code</h2>");
    for (i, sample) in fi.samples.iter().enumerate() {
        let _ = write!(
            s,
            "<details{}><summary><code>{}</code> ({} shown)</summary><ul>",
            if i == 0 { " open" } else { "" },
            esc(&sample.code),
            sample.accounts.len()
        );
        for a in &sample.accounts {
            let _ = write!(
                s,
                "<li>line {} · {} · {} <span class=\"muted\">{}</span><ul>",
                a.line,
                esc(a.import_supplier.as_deref().unwrap_or("-")),
                esc(a.external_account_number.as_deref().unwrap_or("-")),
                esc(&a.input)
            );
            for f in &a.findings {
                let _ = write!(
                    s,
                    "<li><span class=\"{sev}\">{sev}</span> <code>{}</code> at <code>{}</code>: {}</li>",
                    esc(&f.code),
                    esc(&f.attr),
                    esc(&f.detail),
                    sev = esc(&f.severity)
                );
            }
            s.push_str("</ul></li>");
        }
        s.push_str("</ul></details>");
    }
    s.push_str("</section>\n");
}

fn create(s: &mut String, r: &Report) {
    s.push_str("<section id=\"create\"><h2>Create outcomes and timings</h2><div class=\"grid\"><div><table><tr><th class=\"n\">status</th><th>outcome</th><th class=\"n\">accounts</th></tr>");
    for o in &r.create.outcomes {
        let _ = write!(
            s,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
            o.status,
            esc(&o.outcome),
            o.count
        );
    }
    let _ = write!(
        s,
        "</table><p>{:.2} s creating, {:.0} accounts/s.</p></div><div><table><tr><th>stage</th><th>input or supplier</th><th class=\"n\">accounts</th><th class=\"n\">seconds</th></tr>",
        r.create.seconds, r.create.accounts_per_second
    );
    for t in &r.steps {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td></tr>",
            esc(&t.stage),
            esc(&t.what),
            t.accounts,
            t.seconds
        );
    }
    s.push_str("</table></div></div></section>\n");
}

/// Each push step: outcomes by operation and code, attempts by class, latency, and the window
/// of requests in flight over time.
fn push(s: &mut String, r: &Report) {
    if r.push.is_empty() {
        return;
    }
    s.push_str("<section id=\"push\"><h2>Push to the target API</h2>");
    for p in &r.push {
        let _ = write!(
            s,
            "<h3>{} → <code>{}</code></h3><p>{}</p><div class=\"grid\"><div><table><tr>\
             <th>operation</th><th class=\"n\">status</th><th>outcome</th><th class=\"n\">accounts</th></tr>",
            esc(&p.supplier),
            esc(&p.target),
            esc(&p.sentence()),
        );
        for (operation, status, outcome, n) in &p.outcomes {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"n\">{status}</td><td>{}</td><td class=\"n\">{n}</td></tr>",
                esc(operation),
                esc(outcome)
            );
        }
        s.push_str("</table></div><div><table><tr><th>attempts by class</th><th class=\"n\">requests</th></tr>");
        for (class, n) in &p.classes {
            let _ = write!(s, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(class));
        }
        let [p50, p90, p95, p99, max] = p.latency_ms;
        let _ = write!(
            s,
            "</table><table><tr><th>latency</th><th class=\"n\">ms</th></tr><tr><td>p50</td><td class=\"n\">{p50}</td></tr>\
             <tr><td>p90</td><td class=\"n\">{p90}</td></tr><tr><td>p95</td><td class=\"n\">{p95}</td></tr>\
             <tr><td>p99</td><td class=\"n\">{p99}</td></tr><tr><td>max</td><td class=\"n\">{max}</td></tr></table></div></div>"
        );
        window_chart(s, &p.window, p.seconds);
    }
    s.push_str("</section>\n");
}

/// The window of requests in flight over a push, as a step line.
fn window_chart(s: &mut String, window: &[(f64, usize)], seconds: f64) {
    let (w, h, left, bottom) = (860.0, 160.0, 60.0, 24.0);
    let most = window.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1) as f64;
    let end = seconds.max(window.last().map_or(0.0, |(t, _)| *t)).max(1e-3);
    let x = |t: f64| left + (w - left - 10.0) * t / end;
    let y = |n: usize| 8.0 + (h - bottom - 8.0) * (1.0 - n as f64 / most);
    let mut points = Vec::new();
    for (i, (t, n)) in window.iter().enumerate() {
        if i > 0 {
            points.push(format!("{:.1},{:.1}", x(*t), y(window[i - 1].1)));
        }
        points.push(format!("{:.1},{:.1}", x(*t), y(*n)));
    }
    let _ = write!(
        s,
        "<svg role=\"img\" aria-label=\"window over time\" width=\"100%\" viewBox=\"0 0 {w} {h}\">\
         <line x1=\"{left}\" y1=\"{b}\" x2=\"{w}\" y2=\"{b}\" stroke=\"#c5cad3\"/><text x=\"0\" y=\"16\">{most}</text>\
         <text x=\"0\" y=\"{b}\">0</text><text x=\"{left}\" y=\"{h}\">0 s</text><text x=\"{r}\" y=\"{h}\">{end:.1} s</text>\
         <polyline fill=\"none\" stroke=\"#5b7bd5\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{mid}\" y=\"{h}\">requests in flight allowed (window) over time</text></svg>",
        points.join(" "),
        b = h - bottom,
        r = w - 50.0,
        mid = left + 200.0,
    );
}

/// A line of the trend chart: its name, colour and value.
type Series = (&'static str, &'static str, fn(&TrendPoint) -> u64);

fn trend(s: &mut String, points: &[TrendPoint]) {
    s.push_str("<section id=\"trend\"><h2>Trend over the pipeline's runs</h2>");
    let (w, h, left, bottom) = (860.0, 220.0, 60.0, 30.0);
    let max = points.iter().map(|p| p.read).max().unwrap_or(0).max(1) as f64;
    let x = |i: usize| {
        left + if points.len() < 2 {
            (w - left) / 2.0
        } else {
            i as f64 * (w - left - 20.0) / (points.len() - 1) as f64
        }
    };
    let y = |v: u64| 10.0 + (h - bottom - 10.0) * (1.0 - v as f64 / max);
    let mut svg = format!("<svg role=\"img\" aria-label=\"trend\" width=\"100%\" viewBox=\"0 0 {w} {h}\">");
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{b}\" x2=\"{w}\" y2=\"{b}\" stroke=\"#c5cad3\"/><text x=\"0\" y=\"16\">{max}</text><text x=\"0\" y=\"{b}\">0</text>",
        b = h - bottom
    );
    let series: [Series; 4] = [
        ("read", "#5b7bd5", |p| p.read),
        ("valid", "#4b9fb5", |p| p.valid),
        ("staged", "#49a86b", |p| p.staged),
        ("created", "#2e7d46", |p| p.created),
    ];
    for (k, (name, color, get)) in series.iter().enumerate() {
        let pts: Vec<String> =
            points.iter().enumerate().map(|(i, p)| format!("{:.1},{:.1}", x(i), y(get(p)))).collect();
        let _ =
            write!(svg, "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>", pts.join(" "));
        for (i, p) in points.iter().enumerate() {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"><title>{name} {}</title></circle>",
                x(i),
                y(get(p)),
                get(p)
            );
        }
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{name}</text>",
            left + 10.0 + k as f64 * 90.0,
            h - 12.0,
            left + 24.0 + k as f64 * 90.0,
            h - 3.0
        );
    }
    svg.push_str("</svg>");
    s.push_str(&svg);
    s.push_str("<table><tr><th>run</th><th class=\"n\">read</th><th class=\"n\">valid</th><th class=\"n\">staged</th><th class=\"n\">created</th><th class=\"n\">rejected</th></tr>");
    for p in points {
        let _ = write!(
            s,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1} %</td></tr>",
            esc(&p.run_id),
            p.read,
            p.valid,
            p.staged,
            p.created,
            p.rejected_share * 100.0
        );
    }
    s.push_str("</table></section>\n");
}

fn diff(s: &mut String, r: &Report) {
    s.push_str("<section id=\"diff\"><h2>Since the previous run</h2>");
    match &r.diff {
        None => s.push_str("<p>This is the pipeline's first run: nothing to compare with yet.</p>"),
        Some(d) => {
            let _ = write!(
                s,
                "<p>Compared with run <code>{}</code>: <b>{}</b> new findings, <b>{}</b> fixed.</p><div class=\"grid\"><div><h3>New</h3>",
                esc(&d.previous_run),
                d.new_total,
                d.fixed_total
            );
            count_table(s, "code", &d.new);
            s.push_str("</div><div><h3>Fixed</h3>");
            count_table(s, "code", &d.fixed);
            s.push_str("</div></div>");
        }
    }
    s.push_str("</section>\n");
}

fn inputs(s: &mut String, r: &Report) {
    s.push_str(
        "<section id=\"inputs\"><h2>Inputs</h2><table><tr><th>file</th><th class=\"n\">bytes</th><th>sha256</th></tr>",
    );
    for i in &r.inputs {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td><code>{}</code></td></tr>",
            esc(&i.path),
            i.size,
            esc(&i.sha256)
        );
    }
    s.push_str("</table></section>\n");
}

fn count_table(s: &mut String, what: &str, rows: &[Count]) {
    let _ = write!(s, "<table><tr><th>{what}</th><th class=\"n\">findings</th></tr>");
    for c in rows {
        let _ = write!(s, "<tr><td><code>{}</code></td><td class=\"n\">{}</td></tr>", esc(&c.key), c.count);
    }
    s.push_str("</table>");
}

/// Horizontal bars, one per (label, count, colour).
fn bar_chart(bars: &[(String, u64, &str)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg role=\"img\" aria-label=\"findings by code\" width=\"100%\" viewBox=\"0 0 900 {}\">",
        bars.len() * 22 + 4
    );
    for (i, (label, n, color)) in bars.iter().enumerate() {
        let y = i * 22 + 2;
        let w = 520.0 * *n as f64 / max;
        let short = if label.chars().count() > 38 {
            format!("{}…", label.chars().take(37).collect::<String>())
        } else {
            label.clone()
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\"><title>{}</title>{}</text><rect x=\"300\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" rx=\"2\" fill=\"{color}\"/><text x=\"{tx:.1}\" y=\"{ty}\">{n}</text>",
            esc(label),
            esc(&short),
            ty = y + 13,
            tx = 306.0 + w
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Text for HTML: `&`, `<`, `>`, quotes escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
