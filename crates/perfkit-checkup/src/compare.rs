//! Two checkups compared (before and after a tuning change, a deploy):
//! which findings appeared, went away or changed severity, and the key
//! metrics before and after; as text, and as an HTML page with a
//! differential flame graph of the on-CPU stacks.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write as _,
    io,
};

use perfkit_model::printable;
use serde::Serialize;

use crate::{
    document::CheckupDocument,
    observe::{Interval, Observations},
    report::{ReportError, escape, inline_svg, page_start},
    rules::{Kind, Resource, Severity},
};

/// Why two checkups cannot be compared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// A document observed nothing.
    #[error("{which} observed no interval: nothing to compare")]
    Empty {
        /// `BEFORE` or `AFTER`.
        which: &'static str,
    },
    /// One is about some processes (`-p`), the other about the whole host.
    #[error(
        "BEFORE is about {before}, AFTER about {after}: findings under -p are judged for those processes only, \
         compare two checkups of the same scope"
    )]
    Scope {
        /// BEFORE's scope.
        before: String,
        /// AFTER's scope.
        after: String,
    },
}

/// How a finding changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum Change {
    Appeared,
    Worse,
    Better,
    Gone,
    Same,
}

impl Change {
    /// The word used in text.
    pub fn name(self) -> &'static str {
        match self {
            Change::Appeared => "appeared",
            Change::Worse => "worse",
            Change::Better => "better",
            Change::Gone => "gone",
            Change::Same => "same",
        }
    }
}

/// A finding (resource, kind, object) in either checkup.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FindingChange {
    /// How it changed.
    pub change: Change,
    /// The resource.
    pub resource: Resource,
    /// The kind.
    pub kind: Kind,
    /// The device or interface.
    pub object: Option<String>,
    /// Its severity before (`None`: not found).
    pub before: Option<Severity>,
    /// Its severity after.
    pub after: Option<Severity>,
    /// Its title (AFTER's when found in both).
    pub title: String,
}

/// A key metric: its window average in each checkup.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MetricChange {
    /// The metric (the names of docs/JSON.md where there is one).
    pub metric: &'static str,
    /// Before (`None`: not observed).
    pub before: Option<f64>,
    /// After.
    pub after: Option<f64>,
}

impl MetricChange {
    /// After minus before, when both were observed.
    pub fn delta(&self) -> Option<f64> {
        Some(round2(self.after? - self.before?))
    }
}

/// What changed from BEFORE to AFTER.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Comparison {
    /// Findings, those that appeared or got worse first, then the ones
    /// that got better or went away, then the unchanged.
    pub findings: Vec<FindingChange>,
    /// Key metrics, averaged over each window.
    pub metrics: Vec<MetricChange>,
    /// What to bear in mind (different CPU counts, stacks missing).
    pub notes: Vec<String>,
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn scope(obs: &Observations) -> String {
    if obs.scope_pids.is_empty() {
        "the whole host".to_owned()
    } else {
        let pids: Vec<String> = obs.scope_pids.iter().map(u32::to_string).collect();
        format!("processes {}", pids.join(","))
    }
}

/// The average of `f` over the intervals, weighted by their length.
fn avg(iv: &[Interval], f: impl Fn(&Interval) -> Option<f64>) -> Option<f64> {
    let (mut sum, mut secs) = (0.0, 0.0);
    for i in iv {
        if let Some(v) = f(i) {
            sum += v * i.seconds;
            secs += i.seconds;
        }
    }
    (secs > 0.0).then(|| round2(sum / secs))
}

/// The largest per-object average (the busiest disk, the worst interface).
fn max_of<'a>(iv: &'a [Interval], objects: impl Fn(&'a Interval) -> Vec<(&'a str, f64)>) -> Option<f64> {
    let mut sums: std::collections::HashMap<&str, (f64, f64)> = std::collections::HashMap::new();
    for i in iv {
        for (name, v) in objects(i) {
            let e = sums.entry(name).or_default();
            e.0 += v * i.seconds;
            e.1 += i.seconds;
        }
    }
    sums.values().filter(|(_, s)| *s > 0.0).map(|(v, s)| round2(v / s)).reduce(f64::max)
}

/// The key metrics of one checkup, in a fixed order.
pub fn key_metrics(obs: &Observations) -> Vec<(&'static str, Option<f64>)> {
    let iv = &obs.intervals;
    let cpus = f64::from(obs.cpus.max(1));
    let total = obs.memory_total_kib as f64;
    let rq = obs.run_queue_latency.as_ref().filter(|h| h.count > 0);
    vec![
        ("cpu_busy_percent", avg(iv, |i| Some(i.cpu.busy_percent()))),
        ("runnable_per_cpu", avg(iv, |i| Some(f64::from(i.runnable) / cpus))),
        ("psi_cpu_some_percent", avg(iv, |i| i.pressure.map(|p| p.cpu_some_percent))),
        ("run_queue_latency_mean_usecs", rq.map(|h| h.mean_usecs)),
        ("run_queue_latency_p99_usecs", rq.map(|h| h.p99_usecs as f64)),
        ("context_switches_per_s", avg(iv, |i| Some(i.context_switches_per_s))),
        (
            "memory_available_percent",
            (total > 0.0).then(|| avg(iv, |i| Some(100.0 * i.memory.available_kib as f64 / total))).flatten(),
        ),
        ("major_faults_per_s", avg(iv, |i| Some(i.memory.major_faults_per_s))),
        ("swap_kib_per_s", avg(iv, |i| Some(i.memory.swap_in_kib_per_s + i.memory.swap_out_kib_per_s))),
        ("psi_memory_some_percent", avg(iv, |i| i.pressure.map(|p| p.memory_some_percent))),
        (
            "disk_util_percent_max",
            max_of(iv, |i| i.disks.iter().map(|d| (d.device.as_str(), d.util_percent)).collect()),
        ),
        ("disk_queue_size_max", max_of(iv, |i| i.disks.iter().map(|d| (d.device.as_str(), d.queue_size)).collect())),
        (
            "disk_latency_p99_usecs_max",
            obs.block_io_latency.as_ref().and_then(|d| d.iter().map(|d| d.histogram.p99_usecs as f64).reduce(f64::max)),
        ),
        ("psi_io_some_percent", avg(iv, |i| i.pressure.map(|p| p.io_some_percent))),
        ("network_errors_per_s", avg(iv, |i| Some(i.interfaces.iter().map(|n| n.errors_per_s).sum()))),
        ("network_drops_per_s", avg(iv, |i| Some(i.interfaces.iter().map(|n| n.drops_per_s).sum()))),
        ("tcp_retransmits_per_s", avg(iv, |i| i.tcp.map(|t| t.retransmits_per_s))),
    ]
}

/// Compares two checkups.
pub fn compare(before: &CheckupDocument, after: &CheckupDocument) -> Result<Comparison, CompareError> {
    let (b, a) = (&before.observations, &after.observations);
    if b.intervals.is_empty() {
        return Err(CompareError::Empty { which: "BEFORE" });
    }
    if a.intervals.is_empty() {
        return Err(CompareError::Empty { which: "AFTER" });
    }
    if b.scope_pids.is_empty() != a.scope_pids.is_empty() {
        return Err(CompareError::Scope { before: scope(b), after: scope(a) });
    }
    let mut cmp = Comparison::default();
    if b.cpus != a.cpus {
        cmp.notes.push(format!("BEFORE ran on {} CPUs, AFTER on {}", b.cpus, a.cpus));
    }
    // Findings are matched by key through maps: documents may come from
    // anyone, and a pairwise match is quadratic in their findings.
    fn key(f: &crate::rules::Finding) -> (Resource, Kind, Option<&str>) {
        (f.resource, f.kind, f.object.as_deref())
    }
    let mut by_key = HashMap::with_capacity(before.findings.len());
    for o in &before.findings {
        // The first of equal keys, as a search in ranked order finds.
        by_key.entry(key(o)).or_insert(o);
    }
    let after_keys: HashSet<_> = after.findings.iter().map(key).collect();
    for f in &after.findings {
        let old = by_key.get(&key(f)).copied();
        let change = match old.map(|o| o.severity) {
            None => Change::Appeared,
            Some(s) if s < f.severity => Change::Worse,
            Some(s) if s > f.severity => Change::Better,
            Some(_) => Change::Same,
        };
        cmp.findings.push(FindingChange {
            change,
            resource: f.resource,
            kind: f.kind,
            object: f.object.clone(),
            before: old.map(|o| o.severity),
            after: Some(f.severity),
            title: f.title.clone(),
        });
    }
    for o in before.findings.iter().filter(|o| !after_keys.contains(&key(o))) {
        cmp.findings.push(FindingChange {
            change: Change::Gone,
            resource: o.resource,
            kind: o.kind,
            object: o.object.clone(),
            before: Some(o.severity),
            after: None,
            title: o.title.clone(),
        });
    }
    // Stable: within a change, the ranking of the documents.
    cmp.findings.sort_by_key(|f| f.change);
    cmp.metrics = key_metrics(b)
        .into_iter()
        .zip(key_metrics(a))
        .map(|((metric, before), (_, after))| MetricChange { metric, before, after })
        .collect();
    if b.on_cpu.as_ref().is_none_or(|p| p.stacks.is_empty()) {
        cmp.notes.push("BEFORE has no on-CPU stacks: every frame of AFTER is new".to_owned());
    }
    if a.on_cpu.as_ref().is_none_or(|p| p.stacks.is_empty()) {
        cmp.notes.push("AFTER has no on-CPU stacks: no differential flame graph".to_owned());
    }
    Ok(cmp)
}

fn sev(s: Option<Severity>) -> &'static str {
    s.map_or("-", Severity::name)
}

fn value(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

impl Comparison {
    /// The terminal table: findings, then metrics.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if self.findings.is_empty() {
            s.push_str("findings: none in either checkup\n");
        } else {
            s.push_str("findings:\n");
            let _ = writeln!(s, "  {:<9} {:<9} {:<9} {:<30} title", "change", "before", "after", "finding");
            for f in &self.findings {
                let what = format!(
                    "{} {}{}",
                    f.resource.name(),
                    f.kind.name(),
                    f.object.as_deref().map(|o| format!(" {}", printable(o))).unwrap_or_default()
                );
                let _ = writeln!(
                    s,
                    "  {:<9} {:<9} {:<9} {:<30} {}",
                    f.change.name(),
                    sev(f.before),
                    sev(f.after),
                    what,
                    printable(&f.title)
                );
            }
        }
        s.push_str("\nkey metrics (window averages):\n");
        let _ = writeln!(s, "  {:<30} {:>12} {:>12} {:>12}", "metric", "before", "after", "delta");
        for m in &self.metrics {
            let delta = m.delta().map_or_else(|| "-".to_owned(), |d| format!("{d:+.2}"));
            let _ = writeln!(s, "  {:<30} {:>12} {:>12} {:>12}", m.metric, value(m.before), value(m.after), delta);
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {}", printable(n));
        }
        s
    }
}

fn folded_text(obs: &Observations) -> String {
    let mut s = String::new();
    for st in obs.on_cpu.iter().flat_map(|p| &p.stacks) {
        // A frame from a document anyone wrote may hold a newline: escaped,
        // it cannot start a stack (and a count) of its own.
        let _ = writeln!(s, "{} {}", printable(&st.stack), st.count);
    }
    s
}

/// The comparison as an HTML page: the tables, and the differential flame
/// graph of the on-CPU stacks (sized by AFTER, red where AFTER spent a
/// larger share, blue a smaller; BEFORE scaled to AFTER's total), inline
/// and interactive.
pub fn render_html(
    cmp: &Comparison,
    before: &CheckupDocument,
    after: &CheckupDocument,
    mut out: impl io::Write,
) -> Result<(), ReportError> {
    let mut s = String::with_capacity(128 << 10);
    page_start(&mut s, "perfkit checkup --compare");
    let _ = writeln!(
        s,
        "<header><h1>perfkit checkup: what changed</h1><p class=\"meta\">BEFORE: {:.1} s on {} CPUs; \
         AFTER: {:.1} s on {} CPUs</p></header>",
        before.observations.duration_seconds,
        before.observations.cpus,
        after.observations.duration_seconds,
        after.observations.cpus
    );
    s.push_str("<section id=\"findings\"><h2>Findings</h2>");
    if cmp.findings.is_empty() {
        s.push_str("<p>No finding in either checkup.</p>");
    } else {
        s.push_str("<table><tr><th>change</th><th>before</th><th>after</th><th>finding</th><th>title</th></tr>");
        for f in &cmp.findings {
            let _ = write!(
                s,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} {}{}</td><td>{}</td></tr>",
                f.change.name(),
                f.change.name(),
                sev(f.before),
                sev(f.after),
                f.resource.name(),
                f.kind.name(),
                f.object.as_deref().map(|o| format!(" {}", escape(o))).unwrap_or_default(),
                escape(&f.title)
            );
        }
        s.push_str("</table>");
    }
    s.push_str(
        "</section>\n<section id=\"metrics\"><h2>Key metrics</h2><table><tr><th>metric</th>\
                <th class=\"num\">before</th><th class=\"num\">after</th><th class=\"num\">delta</th></tr>",
    );
    for m in &cmp.metrics {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            m.metric,
            value(m.before),
            value(m.after),
            m.delta().map_or_else(|| "-".to_owned(), |d| format!("{d:+.2}"))
        );
    }
    s.push_str("</table></section>\n<section id=\"diff\"><h2>Differential on-CPU flame graph</h2>");
    let (b, a) = (folded_text(&before.observations), folded_text(&after.observations));
    if a.is_empty() {
        s.push_str("<p>AFTER has no on-CPU stacks: nothing to draw.</p>");
    } else {
        let mut diff = perfkit_flamegraph::DiffOptions::default();
        // Shares, not counts: windows of different lengths compare. With
        // no BEFORE stacks (a quiet scope), every frame is new.
        diff.normalize = !b.is_empty();
        let mut svg = Vec::new();
        perfkit_flamegraph::render_diff(
            &b,
            &a,
            &perfkit_flamegraph::SvgOptions::new("on-CPU, AFTER against BEFORE"),
            &diff,
            &mut svg,
        )?;
        s.push_str(
            "<p>Frames are sized by AFTER's samples; red: a larger share of the samples than in BEFORE, \
             blue: a smaller one (BEFORE scaled to AFTER's total).</p>",
        );
        let _ = write!(
            s,
            "<div class=\"flamegraph\">{}</div>",
            inline_svg(&String::from_utf8_lossy(&svg), "flamegraph-diff")
        );
    }
    s.push_str("</section>\n");
    if !cmp.notes.is_empty() {
        s.push_str("<section id=\"notes\"><h2>Notes</h2><ul>");
        for n in &cmp.notes {
            let _ = write!(s, "<li>{}</li>", escape(n));
        }
        s.push_str("</ul></section>\n");
    }
    s.push_str("</body></html>\n");
    out.write_all(s.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        observe::{CpuModes, OnCpuProfile},
        rules::{Thresholds, analyze},
        stacks::FoldedStack,
    };

    fn doc(busy: f64, runnable: u32, stacks: &[(&str, u64)]) -> CheckupDocument {
        let intervals = (1..=5)
            .map(|t| Interval {
                end_seconds: t as f64,
                seconds: 1.0,
                cpu: CpuModes { usr_percent: busy, idle_percent: 100.0 - busy, ..Default::default() },
                runnable,
                ..Default::default()
            })
            .collect();
        let obs = Observations {
            cpus: 2,
            memory_total_kib: 1 << 20,
            intervals,
            on_cpu: Some(OnCpuProfile {
                stacks: stacks.iter().map(|(s, c)| FoldedStack { stack: (*s).into(), count: *c }).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let findings = analyze(&obs, &Thresholds::default());
        CheckupDocument::new(obs, findings, false)
    }

    #[test]
    fn a_new_saturation_appears_and_metrics_move() {
        let quiet = doc(5.0, 1, &[("idle;main;poll", 10)]);
        let busy = doc(100.0, 5, &[("burner;main;spin", 90), ("idle;main;poll", 10)]);
        let cmp = compare(&quiet, &busy).unwrap();
        let first = &cmp.findings[0];
        assert_eq!((first.change, first.resource, first.kind), (Change::Appeared, Resource::Cpu, Kind::Saturation));
        assert_eq!(first.before, None);
        let busy_m = cmp.metrics.iter().find(|m| m.metric == "cpu_busy_percent").unwrap();
        assert_eq!((busy_m.before, busy_m.after, busy_m.delta()), (Some(5.0), Some(100.0), Some(95.0)));
        let text = cmp.to_text();
        assert!(text.contains("appeared") && text.contains("cpu saturation"), "{text}");
        // And back: the finding is gone.
        let back = compare(&busy, &quiet).unwrap();
        assert!(back.findings.iter().any(|f| f.change == Change::Gone && f.resource == Resource::Cpu));
        let mut html = Vec::new();
        render_html(&cmp, &quiet, &busy, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("id=\"flamegraph-diff\"") && html.contains("spin"), "the hot function drawn");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let a = doc(5.0, 1, &[]);
        let mut scoped = a.clone();
        scoped.observations.scope_pids = vec![42];
        let e = compare(&a, &scoped).unwrap_err().to_string();
        assert!(e.contains("the whole host") && e.contains("processes 42"), "{e}");
        let mut empty = a.clone();
        empty.observations.intervals.clear();
        assert!(compare(&empty, &a).unwrap_err().to_string().contains("BEFORE observed no interval"));
        let cmp = compare(&a, &a).unwrap();
        assert!(cmp.notes.iter().any(|n| n.contains("AFTER has no on-CPU stacks")));
        // A quiet BEFORE without stacks: AFTER's frames are all new, drawn.
        let busy = doc(100.0, 5, &[("burner;main", 50)]);
        let mut html = Vec::new();
        render_html(&compare(&a, &busy).unwrap(), &a, &busy, &mut html).unwrap();
        assert!(String::from_utf8(html).unwrap().contains("<title>main ("));
    }

    #[test]
    fn hostile_names_reach_the_terminal_escaped() {
        // A document from anyone: a finding's object and title carry
        // terminal escapes (set the title, clear the screen, a C1 CSI).
        let mut hostile = doc(100.0, 5, &[]);
        let f = &mut hostile.findings[0];
        f.object = Some("sda\u{1b}]0;pwned\u{7}".into());
        f.title = "busy\u{1b}[2J\u{9b}31m\nfake: line".into();
        let quiet = doc(5.0, 1, &[]);
        for cmp in [compare(&quiet, &hostile).unwrap(), compare(&hostile, &quiet).unwrap()] {
            let text = cmp.to_text();
            assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
            assert!(text.contains("sda\\x1b]0;pwned\\x07") && text.contains("\\x1b[2J\\xc2\\x9b31m\\nfake"), "{text}");
        }
    }

    #[test]
    fn many_findings_compare_in_linear_time() {
        // A document from anyone may list tens of thousands of findings
        // (a few megabytes): matching them pairwise would take minutes.
        let mut before = doc(100.0, 5, &[]);
        let template = before.findings[0].clone();
        let many = |tag: &str| -> Vec<crate::rules::Finding> {
            (0..40_000)
                .map(|i| {
                    let mut f = template.clone();
                    f.object = Some(format!("{tag}{i}"));
                    f
                })
                .collect()
        };
        before.findings = many("disk");
        let mut after = before.clone();
        after.findings = many("disk");
        after.findings.truncate(20_000);
        after.findings.extend(many("new"));
        let start = std::time::Instant::now();
        let cmp = compare(&before, &after).unwrap();
        let took = start.elapsed();
        let count = |c: Change| cmp.findings.iter().filter(|f| f.change == c).count();
        assert_eq!((count(Change::Same), count(Change::Appeared), count(Change::Gone)), (20_000, 40_000, 20_000));
        assert!(took < std::time::Duration::from_secs(5), "compare took {took:?}");
    }

    #[test]
    fn decoding_a_document_is_charged_before_it_is_built() {
        // 300 KB of empty strings decode to some 7 MB: refused under a
        // 4 MiB budget before anything is built; a real document fits.
        let real = doc(100.0, 5, &[("a;b", 1)]);
        let mut v = serde_json::to_value(&real).unwrap();
        v["findings"][0]["next"] = serde_json::Value::Array(vec![serde_json::Value::from(""); 100_000]);
        let bomb = serde_json::to_vec(&v).unwrap();
        let budget = perfkit_safeio::Budget::new(4 << 20);
        let e = CheckupDocument::from_json_charged(&bomb, &budget, "BEFORE").unwrap_err();
        assert!(matches!(e, crate::document::DocumentError::Budget(_)), "{e}");
        assert!(e.to_string().contains("BEFORE"), "{e}");
        assert_eq!(budget.used(), 0, "nothing kept of a refused document");
        let json = serde_json::to_vec(&real).unwrap();
        let back = CheckupDocument::from_json_charged(&json, &budget, "AFTER").unwrap();
        assert_eq!(back.observations.intervals.len(), 5);
        assert_eq!(budget.used(), json.len() as u64 * crate::document::DECODED_BYTES_PER_BYTE);
    }

    #[test]
    fn hostile_names_stay_text_in_the_page() {
        // Frames, objects and titles from a document anyone wrote: markup,
        // a script end, URLs in every spelling, CSS, a newline that would
        // start a line of its own in the folded text.
        let evil = "</script><script>fetch('http://evil.example/x')</script><img src=//evil.example/y>\
                    <style>@import url(https://evil.example/z)</style><!--";
        let stacks = [(format!("app;{evil};leaf"), 50), ("app;x 999999999\nother;y".to_owned(), 5)];
        let stacks: Vec<(&str, u64)> = stacks.iter().map(|(s, c)| (s.as_str(), *c)).collect();
        let before = doc(5.0, 1, &stacks);
        let mut after = doc(100.0, 5, &stacks);
        after.findings[0].object = Some(evil.to_owned());
        after.findings[0].title = evil.to_owned();
        let cmp = compare(&before, &after).unwrap();
        let mut html = Vec::new();
        render_html(&cmp, &before, &after, &mut html).unwrap();
        let html = String::from_utf8(html).unwrap();
        // (A `//host/path` left as text in the flame graph is inert.)
        assert!(!html.contains("://"), "no URL left");
        assert!(!html.contains("<img") && !html.contains("<style>@import") && !html.contains("<!--"), "no markup");
        assert_eq!(html.matches("<script").count(), 1, "only the flame graph's script");
        assert_eq!(html.matches("</script>").count(), 1);
        // 50 + 5 samples: a newline in a frame starts no stack of its own.
        assert!(html.contains("<title>all (55 samples"), "a forged stack drawn");
    }

    #[test]
    fn documents_round_trip_and_bad_ones_are_named() {
        let d = doc(100.0, 5, &[("a;b", 1)]);
        let json = serde_json::to_vec(&d).unwrap();
        let back = CheckupDocument::from_json(&json).unwrap();
        // (The ranking score is not serialized: compare what is.)
        assert!(!d.findings.is_empty());
        assert_eq!(serde_json::to_value(&back.findings).unwrap(), serde_json::to_value(&d.findings).unwrap());
        assert_eq!(back.observations.on_cpu.unwrap().stacks, d.observations.on_cpu.unwrap().stacks);
        let e = CheckupDocument::from_json(b"{\"schema_version\": 9}").unwrap_err().to_string();
        assert!(e.contains("schema_version 9"), "{e}");
        let e = CheckupDocument::from_json(b"[1,2").unwrap_err().to_string();
        assert!(e.contains("not a perfkit checkup JSON document"), "{e}");
        let e = CheckupDocument::from_json(b"{\"schema_version\": 1, \"findings\": 3}").unwrap_err().to_string();
        assert!(e.contains("not a perfkit checkup JSON document"), "{e}");
    }
}
