//! The HTML report of a checkup: one self-contained file (no network at
//! view time, no `http(s)://` anywhere in it) that reads on a laptop
//! screen and in print.
//!
//! It holds the ranked findings (evidence with thresholds, culprits with
//! shares, next commands), a chart per resource over time (utilization and
//! saturation, SVG drawn by `plotters`), the run-queue latency histogram,
//! the on-CPU flame graph of the window (inferno's SVG inline, its search
//! and zoom working), the off-CPU stacks of the culprits, and the kernel
//! messages section. [`render_html`] writes it; [`inline_svg`] makes an
//! inferno flame graph fit for inlining in any HTML page.

use std::{fmt::Write as _, io};

use plotters::prelude::*;

use crate::{
    document::CheckupDocument,
    observe::{Interval, LatencyHistogram, Observations},
    rules::{Finding, Severity},
    stacks::FoldedStack,
};

/// Why the report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Writing failed.
    #[error("writing the report failed")]
    Io(#[from] io::Error),
    /// A chart could not be drawn.
    #[error("drawing the chart {chart:?} failed: {message}")]
    Chart {
        /// The chart's title.
        chart: String,
        /// plotters' error.
        message: String,
    },
    /// The flame graph could not be drawn.
    #[error(transparent)]
    Flamegraph(#[from] perfkit_flamegraph::FlamegraphError),
}

/// `s` escaped for HTML text and attribute values. `/` is escaped too, so
/// that no name a target chose (a comm, a function) can spell a URL in the
/// file.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '/' => out.push_str("&#47;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The page's style: readable on a laptop, and in print (no dark
/// backgrounds, sections not split across pages, charts fitting the page).
const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.2em; color: #1a1a1a; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.meta { color: #555; } .verdict { font-size: 1.2em; font-weight: 600; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.finding { border-left: 6px solid #999; padding: 0.3em 0.9em; margin: 0.9em 0; background: #fafafa; break-inside: avoid; }
.finding.critical { border-color: #c62828; } .finding.warning { border-color: #ef8f00; } .finding.info { border-color: #1e88e5; }
.sev { font-weight: 700; text-transform: uppercase; }
.critical .sev { color: #c62828; } .warning .sev { color: #b36b00; } .info .sev { color: #1565c0; }
.past { color: #c62828; font-weight: 600; }
code { background: #f0f0f0; padding: 0.05em 0.3em; border-radius: 3px; }
.charts { display: flex; flex-wrap: wrap; gap: 0.6em; }
svg.chart { max-width: 100%; height: auto; border: 1px solid #eee; break-inside: avoid; }
.flamegraph { width: 100%; overflow-x: auto; }
.flamegraph > svg { width: 100%; }
.stack { font-family: ui-monospace, monospace; font-size: 0.85em; word-break: break-all; }
@media print {
  body { max-width: none; font-size: 10pt; }
  h2 { break-after: avoid; } section { break-inside: auto; }
  .finding, svg.chart, table { break-inside: avoid; }
}
";

const COLORS: [RGBColor; 8] = [
    RGBColor(198, 40, 40),
    RGBColor(30, 136, 229),
    RGBColor(67, 160, 71),
    RGBColor(239, 143, 0),
    RGBColor(142, 36, 170),
    RGBColor(0, 137, 123),
    RGBColor(109, 76, 65),
    RGBColor(84, 110, 122),
];

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend.
    pub name: String,
    /// (seconds, value) points.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    fn of(name: impl Into<String>, intervals: &[Interval], f: impl Fn(&Interval) -> f64) -> Self {
        Self { name: name.into(), points: intervals.iter().map(|i| (i.end_seconds, f(i))).collect() }
    }
}

/// A line chart as an SVG element (`class="chart"`), drawn by plotters.
/// `y_max`: the top of the axis (100 for percentages), or `None` to fit
/// the data.
pub fn line_chart(title: &str, y_desc: &str, y_max: Option<f64>, series: &[Series]) -> Result<String, ReportError> {
    let failed = |e: &dyn std::fmt::Display| ReportError::Chart { chart: title.to_owned(), message: e.to_string() };
    let x_max = series.iter().flat_map(|s| &s.points).map(|p| p.0).fold(0.0_f64, f64::max).max(1.0);
    let data_max = series.iter().flat_map(|s| &s.points).map(|p| p.1).fold(0.0_f64, f64::max);
    let y_top = y_max.unwrap_or(if data_max > 0.0 { data_max * 1.15 } else { 1.0 });
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 250)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..x_max, 0.0..y_top)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| failed(&e))?;
        for (n, s) in series.iter().enumerate() {
            let color = COLORS[n % COLORS.len()];
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(|e| failed(&e))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| failed(&e))?;
        }
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(chart_element(&svg, title))
}

/// A latency histogram as bars, one per log2 bucket, each labelled by
/// its upper bound.
pub fn histogram_chart(title: &str, h: &LatencyHistogram) -> Result<String, ReportError> {
    let failed = |e: &dyn std::fmt::Display| ReportError::Chart { chart: title.to_owned(), message: e.to_string() };
    let n = h.buckets.len().max(1);
    let top = h.buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64 * 1.1;
    // Each bar is labelled by its bucket's upper bound.
    let labels: Vec<String> = h.buckets.iter().map(|b| format!("≤{}", short_usecs(b.high_usecs))).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 280)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..n as f64, 0.0..top)
            .map_err(|e| failed(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor()).abs() < 1e-9 { String::new() } else { labels.get(i).cloned().unwrap_or_default() }
            })
            .x_desc("latency (log2 buckets, upper bounds)")
            .y_desc("count")
            .draw()
            .map_err(|e| failed(&e))?;
        chart
            .draw_series(h.buckets.iter().enumerate().map(|(i, b)| {
                Rectangle::new([(i as f64 + 0.1, 0.0), (i as f64 + 0.9, b.count as f64)], COLORS[1].filled())
            }))
            .map_err(|e| failed(&e))?;
        // Bucket labels centred under each bar.
        chart
            .draw_series(labels.iter().enumerate().map(|(i, l)| {
                Text::new(
                    l.clone(),
                    (i as f64 + 0.5, 0.0),
                    ("sans-serif", 10).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    )),
                )
            }))
            .map_err(|e| failed(&e))?;
        root.present().map_err(|e| failed(&e))?;
    }
    Ok(chart_element(&svg, title))
}

/// Microseconds in few characters: `511us`, `16ms`, `2.1s`.
fn short_usecs(us: u64) -> String {
    match us {
        0..1000 => format!("{us}us"),
        1000..1_000_000 => format!("{:.0}ms", us as f64 / 1000.0),
        _ => format!("{:.1}s", us as f64 / 1e6),
    }
}

/// plotters' document made an inline element: no namespace URL (HTML
/// gives inline `<svg>` its namespace), a class and an accessible name.
fn chart_element(svg: &str, title: &str) -> String {
    // Series names are disks' and interfaces' (no `/` in either), but
    // no name may spell a URL in the file.
    let svg = strip_namespaces(svg).replace("://", ":&#47;/");
    svg.replacen("<svg ", &format!("<svg class=\"chart\" role=\"img\" aria-label=\"{}\" ", escape(title)), 1)
}

/// The root element's `xmlns` attributes removed (they hold URLs, and an
/// HTML parser gives inline SVG its namespace itself).
fn strip_namespaces(svg: &str) -> String {
    let Some(start) = svg.find("<svg") else { return svg.to_owned() };
    let end = svg[start..].find('>').map_or(svg.len(), |e| start + e);
    let mut tag = svg[start..end].to_owned();
    while let Some(at) = tag.find(" xmlns") {
        let Some(q1) = tag[at..].find('"').map(|q| at + q) else { break };
        let Some(q2) = tag[q1 + 1..].find('"').map(|q| q1 + 1 + q) else { break };
        tag.replace_range(at..=q2, "");
    }
    format!("{}{}{}", &svg[..start], tag, &svg[end..])
}

/// An inferno flame graph made fit to inline in an HTML page under the id
/// `id`: the XML declaration, doctype, comments and namespace URLs are
/// dropped; its script finds its own `<svg>` by `id` (inferno's takes the
/// page's first `<svg>`, a chart's in a report) and its `text` style is
/// scoped to it; no `scheme://` is left in it (in the script, `/\/`: the
/// same string to JavaScript).
pub fn inline_svg(svg: &str, id: &str) -> String {
    let body = svg.find("<svg").map_or(svg, |at| &svg[at..]);
    let mut out = strip_namespaces(body).replacen("<svg ", &format!("<svg id=\"{}\" ", escape(id)), 1);
    // Comments (inferno's credits hold URLs), before the script.
    let script_at = out.find("<script").unwrap_or(out.len());
    let mut head = out[..script_at].to_owned();
    while let Some(a) = head.find("<!--") {
        let Some(b) = head[a..].find("-->").map(|b| a + b + 3) else { break };
        head.replace_range(a..b, "");
    }
    out = head + &out[script_at..];
    out = out.replacen(
        "document.getElementsByTagName(\"svg\")[0]",
        &format!("document.getElementById(\"{}\")", escape(id)),
        1,
    );
    out = out.replacen("\ntext {", &format!("\n#{} text {{", escape(id)), 1);
    // URLs: in the script (comments, an assertion's message) `:/\/` is
    // the same string; elsewhere an entity.
    let (script_start, script_end) = match (out.find("<script"), out.find("</script>")) {
        (Some(a), Some(b)) if a < b => (a, b),
        _ => (out.len(), out.len()),
    };
    let head = out[..script_start].replace("://", ":&#47;/");
    let script = out[script_start..script_end].replace("://", ":/\\/");
    let tail = out[script_end..].replace("://", ":&#47;/");
    format!("{head}{script}{tail}")
}

/// The on-CPU flame graph of folded stacks, ready to inline under `id`.
pub fn flamegraph_element(stacks: &[FoldedStack], title: &str, id: &str) -> Result<String, ReportError> {
    // Control characters escaped: a newline in a frame starts no stack.
    let lines: Vec<String> =
        stacks.iter().map(|s| format!("{} {}", perfkit_model::printable(&s.stack), s.count)).collect();
    let mut svg = Vec::new();
    perfkit_flamegraph::render_folded(
        lines.iter().map(String::as_str),
        &perfkit_flamegraph::SvgOptions::new(title),
        &mut svg,
    )?;
    Ok(inline_svg(&String::from_utf8_lossy(&svg), id))
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

fn limit(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), num)
}

fn finding_html(s: &mut String, n: usize, f: &Finding) {
    let sev = f.severity.name();
    let object = f.object.as_deref().map(|o| format!(" {}", escape(o))).unwrap_or_default();
    let _ = write!(
        s,
        "<article class=\"finding {sev}\"><h3>{n}. <span class=\"sev\">{sev}</span> {} {}{object}: {}</h3>",
        f.resource.name(),
        f.kind.name(),
        escape(&f.title)
    );
    s.push_str(
        "<table><tr><th>evidence</th><th class=\"num\">value</th><th class=\"num\">warning</th>\
         <th class=\"num\">critical</th></tr>",
    );
    for e in &f.evidence {
        let past = e.level().is_some();
        let dir = if e.warning.is_some() && e.lower_is_worse { " (at or below)" } else { "" };
        let _ = write!(
            s,
            "<tr><td>{}{dir}</td><td class=\"num{}\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&e.metric),
            if past { " past" } else { "" },
            num(e.value),
            limit(e.warning),
            limit(e.critical)
        );
    }
    s.push_str("</table>");
    if !f.culprits.is_empty() {
        s.push_str(
            "<table class=\"culprits\"><tr><th>culprit</th><th class=\"num\">pid</th><th class=\"num\">share %</th>\
             <th class=\"num\">cpu %</th><th class=\"num\">wait %</th><th class=\"num\">I/O KiB/s</th>\
             <th class=\"num\">major faults/s</th></tr>",
        );
        for c in &f.culprits {
            let _ = write!(
                s,
                "<tr><td class=\"comm\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
                 <td class=\"num\">{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td>\
                 <td class=\"num\">{:.1}</td></tr>",
                escape(&c.comm),
                c.pid,
                c.share_percent,
                c.cpu_percent,
                c.wait_percent.map_or_else(|| "-".to_owned(), |w| format!("{w:.1}")),
                c.io_kib_per_s,
                c.major_faults_per_s
            );
        }
        s.push_str("</table>");
    }
    if let Some(note) = &f.note {
        let _ = write!(s, "<p>note: {}</p>", escape(note));
    }
    if !f.next.is_empty() {
        let cmds: Vec<String> = f.next.iter().map(|c| format!("<code>{}</code>", escape(c))).collect();
        let _ = write!(s, "<p>next: {}</p>", cmds.join(" &nbsp; "));
    }
    s.push_str("</article>\n");
}

/// The busiest few objects (disks, interfaces) by a measure summed over the
/// window, at most `n`, in name order.
fn busiest<'a>(names: impl Iterator<Item = (&'a str, f64)>, n: usize) -> Vec<String> {
    let mut totals: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    for (name, v) in names {
        *totals.entry(name).or_default() += v;
    }
    let mut v: Vec<(&str, f64)> = totals.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let mut names: Vec<String> = v.into_iter().take(n).map(|(s, _)| s.to_owned()).collect();
    names.sort();
    names
}

/// The charts of each resource over the window: (resource, charts).
pub fn resource_charts(obs: &Observations) -> Result<Vec<(&'static str, Vec<String>)>, ReportError> {
    let iv = &obs.intervals;
    let cpus = f64::from(obs.cpus.max(1));
    let mut out = Vec::new();
    let mut cpu = vec![line_chart(
        "cpu utilization",
        "% of all CPUs",
        Some(100.0),
        &[
            Series::of("busy", iv, |i| i.cpu.busy_percent()),
            Series::of("usr", iv, |i| i.cpu.usr_percent + i.cpu.nice_percent),
            Series::of("sys", iv, |i| i.cpu.sys_percent + i.cpu.irq_percent + i.cpu.soft_percent),
            Series::of("iowait", iv, |i| i.cpu.iowait_percent),
            Series::of("busiest CPU", iv, |i| i.per_cpu.iter().map(|c| c.busy_percent).fold(0.0, f64::max)),
        ],
    )?];
    cpu.push(line_chart(
        "cpu saturation",
        "tasks per CPU",
        None,
        &[
            Series::of("runnable per CPU", iv, |i| f64::from(i.runnable) / cpus),
            Series::of("load (1 min) per CPU", iv, |i| i.load_1m / cpus),
        ],
    )?);
    if iv.iter().any(|i| i.pressure.is_some()) {
        cpu.push(line_chart(
            "pressure (PSI some)",
            "% of time stalled",
            Some(100.0),
            &[
                Series::of("cpu", iv, |i| i.pressure.map_or(0.0, |p| p.cpu_some_percent)),
                Series::of("memory", iv, |i| i.pressure.map_or(0.0, |p| p.memory_some_percent)),
                Series::of("io", iv, |i| i.pressure.map_or(0.0, |p| p.io_some_percent)),
            ],
        )?);
    }
    out.push(("cpu", cpu));
    let total = obs.memory_total_kib.max(1) as f64;
    out.push((
        "memory",
        vec![
            line_chart(
                "memory utilization",
                "% of memory",
                Some(100.0),
                &[
                    Series::of("used (not available)", iv, |i| 100.0 - 100.0 * i.memory.available_kib as f64 / total),
                    Series::of("page cache", iv, |i| 100.0 * i.memory.cache_kib as f64 / total),
                    Series::of("swap used", iv, |i| 100.0 * i.memory.swap_used_kib as f64 / total),
                ],
            )?,
            line_chart(
                "memory saturation",
                "per second",
                None,
                &[
                    Series::of("major faults/s", iv, |i| i.memory.major_faults_per_s),
                    Series::of("swap in+out KiB/s", iv, |i| i.memory.swap_in_kib_per_s + i.memory.swap_out_kib_per_s),
                ],
            )?,
        ],
    ));
    let disks =
        busiest(iv.iter().flat_map(|i| i.disks.iter().map(|d| (d.device.as_str(), d.util_percent + d.iops))), 4);
    let disk_series = |f: fn(&crate::observe::DiskInterval) -> f64| -> Vec<Series> {
        disks
            .iter()
            .map(|name| Series::of(name.clone(), iv, |i| i.disks.iter().find(|d| &d.device == name).map_or(0.0, f)))
            .collect()
    };
    out.push((
        "disk",
        vec![
            line_chart("disk utilization", "% busy (iostat %util)", Some(100.0), &disk_series(|d| d.util_percent))?,
            line_chart("disk saturation", "queue size (aqu-sz)", None, &disk_series(|d| d.queue_size))?,
        ],
    ));
    let ifaces = busiest(
        iv.iter().flat_map(|i| i.interfaces.iter().map(|n| (n.iface.as_str(), n.rx_kib_per_s + n.tx_kib_per_s))),
        4,
    );
    let net: Vec<Series> = ifaces
        .iter()
        .map(|name| {
            Series::of(name.clone(), iv, |i| {
                i.interfaces.iter().find(|n| &n.iface == name).map_or(0.0, |n| n.rx_kib_per_s + n.tx_kib_per_s)
            })
        })
        .collect();
    out.push((
        "network",
        vec![
            line_chart("network utilization", "KiB/s (rx + tx)", None, &net)?,
            line_chart(
                "network errors and saturation",
                "per second",
                None,
                &[
                    Series::of("interface errors/s", iv, |i| i.interfaces.iter().map(|n| n.errors_per_s).sum()),
                    Series::of("interface drops/s", iv, |i| i.interfaces.iter().map(|n| n.drops_per_s).sum()),
                    Series::of("TCP retransmits/s", iv, |i| i.tcp.map_or(0.0, |t| t.retransmits_per_s)),
                    Series::of("TCP listen overflows/s", iv, |i| i.tcp.map_or(0.0, |t| t.listen_overflows_per_s)),
                ],
            )?,
        ],
    ));
    Ok(out)
}

/// Page head and style.
pub(crate) fn page_start(s: &mut String, title: &str) {
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(title)
    );
}

/// Renders the report of a checkup as one HTML page into `out`.
pub fn render_html(doc: &CheckupDocument, mut out: impl io::Write) -> Result<(), ReportError> {
    let obs = &doc.observations;
    let mut s = String::with_capacity(256 << 10);
    page_start(&mut s, "perfkit checkup");
    let _ = write!(
        s,
        "<header><h1>perfkit checkup</h1><p class=\"meta\">{:.1} s observed on {} CPUs, {:.1} GiB of memory",
        obs.duration_seconds,
        obs.cpus,
        obs.memory_total_kib as f64 / 1048576.0
    );
    if !obs.scope_pids.is_empty() {
        let pids: Vec<String> = obs.scope_pids.iter().map(u32::to_string).collect();
        let _ = write!(s, "; processes {}", pids.join(", "));
    }
    if doc.interrupted {
        s.push_str(" (stopped early)");
    }
    s.push_str("</p>");
    let worst = doc.findings.iter().map(|f| f.severity).max();
    let verdict = match worst {
        None | Some(Severity::Info) => "no bottleneck found".to_owned(),
        Some(w) => format!(
            "{} finding(s) above info, the worst {}",
            doc.findings.iter().filter(|f| f.severity > Severity::Info).count(),
            w.name()
        ),
    };
    let _ = writeln!(s, "<p class=\"verdict\">{verdict}</p></header>");

    s.push_str("<section id=\"findings\"><h2>Findings, worst first</h2>\n");
    if doc.findings.is_empty() {
        s.push_str("<p>No finding.</p>");
    }
    for (n, f) in doc.findings.iter().enumerate() {
        finding_html(&mut s, n + 1, f);
    }
    if !doc.summary.is_empty() {
        s.push_str("<table><tr><th>resource</th><th>over the window</th></tr>");
        for l in &doc.summary {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", l.resource.name(), escape(&l.line));
        }
        s.push_str("</table>");
    }
    s.push_str("</section>\n");

    s.push_str("<section id=\"charts\"><h2>Resources over time</h2>\n");
    if obs.intervals.is_empty() {
        s.push_str("<p>No interval was observed.</p>");
    } else {
        for (resource, charts) in resource_charts(obs)? {
            let _ = write!(s, "<h3>{resource}</h3><div class=\"charts\">");
            for c in charts {
                s.push_str(&c);
            }
            s.push_str("</div>\n");
        }
    }
    s.push_str("</section>\n");

    s.push_str("<section id=\"latency\"><h2>Latency histograms</h2>\n");
    match &obs.run_queue_latency {
        Some(h) if h.count > 0 => {
            let _ = write!(
                s,
                "<p>Run-queue latency (eBPF runqlat): {} waits, mean {:.1} µs, p50 ≤ {} µs, p99 ≤ {} µs.</p>",
                h.count, h.mean_usecs, h.p50_usecs, h.p99_usecs
            );
            s.push_str(&histogram_chart("run-queue latency", h)?);
        }
        Some(_) => s.push_str("<p>Run-queue latency: no wait was counted.</p>"),
        None => s.push_str("<p>Run-queue latency was not traced (see the notes).</p>"),
    }
    match &obs.block_io_latency {
        Some(disks) if disks.is_empty() => s.push_str("<p>Block I/O latency: no disk I/O completed.</p>"),
        Some(disks) => {
            for d in disks {
                let h = &d.histogram;
                let _ = write!(
                    s,
                    "<p>Block I/O latency of {} (eBPF biolatency, issue to completion): {} I/Os, mean {:.1} µs, \
                     p50 ≤ {} µs, p99 ≤ {} µs.</p>",
                    escape(&d.device),
                    h.count,
                    h.mean_usecs,
                    h.p50_usecs,
                    h.p99_usecs
                );
                s.push_str(&histogram_chart(&format!("block I/O latency: {}", d.device), h)?);
            }
        }
        None => s.push_str("<p>Block I/O latency was not traced (see the notes).</p>"),
    }
    s.push_str("</section>\n");

    s.push_str("<section id=\"on-cpu\"><h2>On-CPU flame graph</h2>\n");
    match &obs.on_cpu {
        Some(p) if !p.stacks.is_empty() => {
            let _ = write!(
                s,
                "<p>{} samples at {} Hz per CPU over the window. Click a frame to zoom, \
                 Search (top right) to highlight a function.</p>",
                p.samples, p.frequency_hz
            );
            if !p.top_functions.is_empty() {
                s.push_str("<table><tr><th>function (self time)</th><th class=\"num\">samples</th><th class=\"num\">%</th></tr>");
                for f in &p.top_functions {
                    let _ = write!(
                        s,
                        "<tr><td class=\"stack\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.1}</td></tr>",
                        escape(&f.name),
                        f.samples,
                        f.percent
                    );
                }
                s.push_str("</table>");
            }
            let title = format!("on-CPU, {:.0} s of the host", obs.duration_seconds);
            let _ = write!(
                s,
                "<div class=\"flamegraph\">{}</div>",
                flamegraph_element(&p.stacks, &title, "flamegraph-on-cpu")?
            );
        }
        Some(_) => s.push_str("<p>The on-CPU profile has no samples.</p>"),
        None => s.push_str("<p>No on-CPU profile was taken (see the notes).</p>"),
    }
    s.push_str("</section>\n");

    off_cpu_html(&mut s, doc);
    activity_html(&mut s, doc);
    kernel_messages_html(&mut s, doc);

    if !obs.notes.is_empty() {
        s.push_str("<section id=\"notes\"><h2>Notes</h2><ul>");
        for n in &obs.notes {
            let _ = write!(s, "<li>{}</li>", escape(n));
        }
        s.push_str("</ul></section>\n");
    }
    s.push_str(
        "<footer><p class=\"meta\">perfkit checkup; thresholds and their sources: docs&#47;CHECKUP.md</p></footer>\n",
    );
    s.push_str("</body></html>\n");
    out.write_all(s.as_bytes())?;
    Ok(())
}

/// Off-CPU stacks of the findings' culprits: for each, its stacks with the
/// most time blocked.
/// Run-queue lengths per CPU, execs by program and TCP opens by port
/// (eBPF, root).
fn activity_html(s: &mut String, doc: &CheckupDocument) {
    s.push_str("<section id=\"activity\"><h2>Run queues, execs and connections</h2>\n");
    let Some(a) = &doc.observations.activity else {
        s.push_str("<p>Not traced (it needs root and eBPF; see the notes).</p></section>\n");
        return;
    };
    let counts = |s: &mut String, title: &str, what: &str, v: &[crate::activity::Count]| {
        let _ = write!(s, "<h3>{}</h3>", escape(title));
        if v.is_empty() {
            s.push_str("<p>None.</p>");
            return;
        }
        let _ = write!(s, "<table><tr><th>{}</th><th class=\"num\">count</th></tr>", escape(what));
        for c in v {
            let _ = write!(s, "<tr><td class=\"comm\">{}</td><td class=\"num\">{}</td></tr>", escape(&c.name), c.count);
        }
        s.push_str("</table>");
    };
    if let Some(q) = &a.run_queue_length {
        s.push_str(
            "<h3>Run-queue length (99 Hz per CPU)</h3><table><tr><th>CPU</th><th class=\"num\">samples</th>\
             <th class=\"num\">tasks waiting, mean</th><th class=\"num\">samples with a task waiting %</th></tr>",
        );
        for c in q {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.1}</td></tr>",
                c.cpu, c.samples, c.mean_waiting, c.occupancy_percent
            );
        }
        s.push_str("</table>");
    }
    if let Some(e) = &a.execs {
        let title = format!("Execs: {} ({}/s), {} failed, {} lost", e.execs, e.per_second, e.failed, e.lost);
        counts(s, &title, "program", &e.top);
    }
    if let Some(t) = &a.tcp_opens {
        counts(s, "TCP connects by remote port", "port", &t.connects);
        counts(s, "TCP accepts by local port", "port", &t.accepts);
    }
    s.push_str("</section>\n");
}

fn off_cpu_html(s: &mut String, doc: &CheckupDocument) {
    const SHOWN: usize = 10;
    s.push_str("<section id=\"off-cpu\"><h2>Off-CPU stacks of the culprits</h2>\n");
    let mut culprits: Vec<(u32, &str)> = Vec::new();
    for c in doc.findings.iter().flat_map(|f| &f.culprits) {
        if !culprits.iter().any(|(p, _)| *p == c.pid) {
            culprits.push((c.pid, &c.comm));
        }
    }
    match &doc.observations.off_cpu {
        None => s.push_str("<p>Off-CPU stacks were not taken (see the notes).</p>"),
        Some(_) if culprits.is_empty() => s.push_str("<p>No finding names a culprit.</p>"),
        Some(off) => {
            let _ = write!(
                s,
                "<p>Time each culprit's threads spent blocked or waiting for a CPU, in blocks of at least {} µs, \
                 by stack (most time first; the innermost frames last).</p>",
                off.min_block_usecs
            );
            for (pid, comm) in culprits {
                let Some(p) = off.processes.iter().find(|p| p.pid == pid) else {
                    let _ = write!(s, "<h3>{} ({pid})</h3><p>No off-CPU time recorded.</p>", escape(comm));
                    continue;
                };
                let _ = write!(
                    s,
                    "<h3>{} ({pid}): {:.1} ms off CPU</h3><table><tr><th class=\"num\">ms</th><th class=\"num\">%</th><th>stack</th></tr>",
                    escape(&p.comm),
                    p.total_usecs as f64 / 1000.0
                );
                for st in p.stacks.iter().take(SHOWN) {
                    let frames: Vec<&str> = st.stack.split(';').collect();
                    let shown = if frames.len() > 8 {
                        format!("… ;{}", frames[frames.len() - 8..].join(";"))
                    } else {
                        st.stack.clone()
                    };
                    let _ = write!(
                        s,
                        "<tr><td class=\"num\">{:.1}</td><td class=\"num\">{:.1}</td><td class=\"stack\" title=\"{}\">{}</td></tr>",
                        st.count as f64 / 1000.0,
                        100.0 * st.count as f64 / p.total_usecs.max(1) as f64,
                        escape(&st.stack),
                        escape(&shown).replace(';', ";<wbr>")
                    );
                }
                s.push_str("</table>");
            }
        }
    }
    s.push_str("</section>\n");
}

/// The kernel log: the messages of the window (errors in red), then the
/// errors before it, each with its time since boot, level, class and the
/// task it names.
fn kernel_messages_html(s: &mut String, doc: &CheckupDocument) {
    const LEVELS: [&str; 8] = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];
    s.push_str("<section id=\"kernel-messages\"><h2>Kernel messages</h2>\n");
    let Some(log) = &doc.observations.kernel else {
        s.push_str("<p>The kernel log was not read (it needs root, or CAP_SYSLOG; see the notes).</p></section>\n");
        return;
    };
    let table = |s: &mut String, messages: &[crate::kmsg::KernelMessage]| {
        s.push_str(
            "<table><tr><th class=\"num\">seconds</th><th>level</th><th>class</th><th>task</th><th>message</th></tr>",
        );
        for m in messages {
            let task = match (&m.comm, m.pid) {
                (Some(c), Some(p)) => format!("{} ({p})", escape(c)),
                (None, Some(p)) => p.to_string(),
                _ => String::new(),
            };
            let _ = write!(
                s,
                "<tr{}><td class=\"num\">{:.3}</td><td>{}</td><td>{}</td><td>{task}</td><td class=\"stack\">{}</td></tr>",
                if m.level <= 3 { " class=\"past\"" } else { "" },
                m.seconds,
                LEVELS.get(m.level as usize).copied().unwrap_or("?"),
                m.class.map_or("", |c| c.name()),
                escape(&m.text)
            );
        }
        s.push_str("</table>");
    };
    let _ = write!(
        s,
        "<h3>During the window (from {:.1} s after boot): {} messages</h3>",
        log.window_start_seconds,
        log.during.len()
    );
    if log.during.is_empty() {
        s.push_str("<p>None.</p>");
    } else {
        table(s, &log.during);
    }
    let _ = write!(s, "<h3>Errors before the window: {} shown</h3>", log.before_errors.len());
    if log.before_errors.is_empty() {
        s.push_str("<p>None.</p>");
    } else {
        table(s, &log.before_errors);
    }
    if log.lost > 0 || log.dropped > 0 {
        let _ = write!(
            s,
            "<p>{} messages were overwritten in the kernel's ring before they were read, and {} left out past the \
             counts kept.</p>",
            log.lost, log.dropped
        );
    }
    s.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{CpuModes, Interval, LatencyBucket, OnCpuProfile};

    #[test]
    fn escape_leaves_no_markup_and_no_url() {
        let e = escape("<script>\"x\" & 'y' http://evil/");
        assert!(!e.contains('<') && !e.contains('"') && !e.contains("://"), "{e}");
    }

    #[test]
    fn charts_are_plotters_svg_without_urls() {
        let iv: Vec<Interval> = (1..=5)
            .map(|t| Interval {
                end_seconds: t as f64,
                seconds: 1.0,
                cpu: CpuModes { usr_percent: 90.0, idle_percent: 10.0, ..Default::default() },
                runnable: 4,
                ..Default::default()
            })
            .collect();
        let obs = Observations { cpus: 2, memory_total_kib: 1 << 20, intervals: iv, ..Default::default() };
        let charts = resource_charts(&obs).unwrap();
        let names: Vec<&str> = charts.iter().map(|c| c.0).collect();
        assert_eq!(names, ["cpu", "memory", "disk", "network"]);
        let cpu = &charts[0].1[0];
        assert!(cpu.starts_with("<svg class=\"chart\""), "{}", &cpu[..80]);
        assert!(cpu.contains("cpu utilization") && cpu.contains("<polyline"), "a line of points");
        for (_, cs) in &charts {
            for c in cs {
                assert!(!c.contains("://"), "no URL: {}", &c[..200]);
            }
        }
    }

    #[test]
    fn histogram_has_a_bar_per_bucket() {
        let h = LatencyHistogram {
            count: 7,
            buckets: vec![
                LatencyBucket { low_usecs: 0, high_usecs: 1, count: 1 },
                LatencyBucket { low_usecs: 2, high_usecs: 3, count: 4 },
                LatencyBucket { low_usecs: 4, high_usecs: 7, count: 2 },
            ],
            ..Default::default()
        };
        let svg = histogram_chart("runq", &h).unwrap();
        // The background, then one filled rectangle per bucket.
        assert!(svg.matches("<rect").count() >= 4, "{svg}");
        assert!(svg.contains("≤3us") && svg.contains("≤7us"), "{svg}");
    }

    #[test]
    fn inlined_flamegraph_finds_itself_and_holds_no_url() {
        let stacks = vec![
            FoldedStack { stack: "app;main;hot".into(), count: 9 },
            FoldedStack { stack: "app;main;http://x".into(), count: 1 },
        ];
        let svg = flamegraph_element(&stacks, "t", "fg1").unwrap();
        assert!(svg.starts_with("<svg id=\"fg1\""), "{}", &svg[..100]);
        assert!(svg.contains("document.getElementById(\"fg1\")"), "the script finds its own svg");
        assert!(!svg.contains("getElementsByTagName(\"svg\")"));
        assert!(svg.contains("#fg1 text {"), "style scoped");
        assert!(!svg.contains("://") && !svg.contains("<?xml") && !svg.contains("<!DOCTYPE"));
        assert!(svg.contains("onload=\"init(evt)\"") && svg.contains("id=\"frames\""));
        assert!(svg.contains(">hot<") || svg.contains("hot ("), "frames drawn");
    }

    #[test]
    fn report_holds_every_section() {
        let iv: Vec<Interval> =
            (1..=3).map(|t| Interval { end_seconds: t as f64, seconds: 1.0, ..Default::default() }).collect();
        let obs = Observations {
            cpus: 2,
            intervals: iv,
            on_cpu: Some(OnCpuProfile {
                frequency_hz: 19,
                samples: 10,
                stacks: vec![FoldedStack { stack: "burner;main".into(), count: 10 }],
                ..Default::default()
            }),
            block_io_latency: Some(vec![crate::latency::DiskLatency {
                device: "loop0".into(),
                histogram: LatencyHistogram {
                    count: 3,
                    buckets: vec![LatencyBucket { low_usecs: 64, high_usecs: 127, count: 3 }],
                    ..Default::default()
                },
            }]),
            kernel: Some(crate::observe::KernelLog {
                during: vec![
                    crate::kmsg::parse_record(b"3,7,5000000,-;Out of memory: Killed process 4242 (dd) <x>").unwrap().1,
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let doc = CheckupDocument::new(obs, crate::analyze(&Default::default(), &Default::default()), false);
        let mut out = Vec::new();
        render_html(&doc, &mut out).unwrap();
        let html = String::from_utf8(out).unwrap();
        for id in ["findings", "charts", "latency", "on-cpu", "off-cpu", "activity", "kernel-messages"] {
            assert!(html.contains(&format!("<section id=\"{id}\"")), "{id}");
        }
        assert!(html.contains("id=\"flamegraph-on-cpu\""));
        assert!(html.contains("Killed process 4242 (dd) &lt;x&gt;"), "the kernel's message, escaped");
        assert!(html.contains("<tr class=\"past\"><td class=\"num\">5.000</td><td>err</td>"), "an error row");
        assert!(
            html.contains("aria-label=\"block I&#47;O latency: loop0\"") && html.contains("≤127us"),
            "a disk's bars"
        );
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
