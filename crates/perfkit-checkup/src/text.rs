//! The terminal summary of a checkup, as `perfkit checkup` prints it.

use std::fmt::Write as _;

use crate::{Findings, Observations, Severity};

fn limit(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v}"))
}

/// The eBPF activity of the window, a line each: run-queue lengths per
/// CPU, execs by program, TCP opens by port.
fn activity_lines(s: &mut String, a: &crate::activity::Activity) {
    let counts = |v: &[crate::activity::Count]| {
        v.iter().map(|c| format!("{} {}", perfkit_model::printable(&c.name), c.count)).collect::<Vec<_>>().join(", ")
    };
    if let Some(q) = a.run_queue_length.as_ref().filter(|q| !q.is_empty()) {
        let per: Vec<String> = q
            .iter()
            .map(|c| format!("cpu{} {:.2} waiting ({:.0}% of samples)", c.cpu, c.mean_waiting, c.occupancy_percent))
            .collect();
        let _ = writeln!(s, "  {:<8} {}", "runqlen", per.join(", "));
    }
    if let Some(e) = &a.execs {
        let _ = write!(s, "  {:<8} {} execs ({}/s), {} failed", "execs", e.execs, e.per_second, e.failed);
        if !e.top.is_empty() {
            let _ = write!(s, ": {}", counts(&e.top));
        }
        s.push('\n');
    }
    if let Some(t) = a.tcp_opens.as_ref().filter(|t| !t.connects.is_empty() || !t.accepts.is_empty()) {
        let _ = writeln!(
            s,
            "  {:<8} connects by remote port: {}; accepts by local port: {}",
            "tcp",
            if t.connects.is_empty() { "none".to_owned() } else { counts(&t.connects) },
            if t.accepts.is_empty() { "none".to_owned() } else { counts(&t.accepts) }
        );
    }
}

/// The terminal summary of a checkup: the window, findings worst first
/// (each with its evidence and thresholds, culprits, cgroups and next
/// steps), a line per resource, the eBPF activity, the kernel's messages
/// of the window and the observer's notes. `interrupted`: the window was
/// cut short. No control character of a name (a cgroup's path, a
/// process's) reaches the text: they are escaped as `\xNN`.
pub fn summary(obs: &Observations, findings: &Findings, interrupted: bool) -> String {
    let mut s = String::new();
    let _ = write!(s, "checkup: {:.1} s on {} CPUs", obs.duration_seconds, obs.cpus);
    if !obs.scope_pids.is_empty() {
        let pids: Vec<String> = obs.scope_pids.iter().map(u32::to_string).collect();
        let _ = write!(s, ", processes {}", pids.join(","));
    }
    if interrupted {
        s.push_str(" (stopped early)");
    }
    s.push('\n');
    if findings.worst().is_none_or(|w| w == Severity::Info) {
        s.push_str("\nno bottleneck found\n");
    }
    if !findings.findings.is_empty() {
        s.push_str("\nfindings, worst first:\n");
    }
    for (n, f) in findings.findings.iter().enumerate() {
        let object = f.object.as_deref().map(|o| format!(" {o}")).unwrap_or_default();
        let _ = writeln!(
            s,
            "{:>3}. {:<8} {} {}{}: {}",
            n + 1,
            f.severity.name().to_uppercase(),
            f.resource.name(),
            f.kind.name(),
            object,
            f.title
        );
        for e in &f.evidence {
            let judged = if e.warning.is_some() {
                format!(
                    " ({} warning {}, critical {})",
                    if e.lower_is_worse { "at or below:" } else { "at or above:" },
                    limit(e.warning),
                    limit(e.critical)
                )
            } else {
                String::new()
            };
            let _ = writeln!(s, "       {} {}{}", e.metric, e.value, judged);
        }
        if !f.culprits.is_empty() {
            let list: Vec<String> = f
                .culprits
                .iter()
                .map(|c| {
                    let wait = c.wait_percent.map(|w| format!(", waited {w:.1}%")).unwrap_or_default();
                    format!("{} ({}) {:.1}% [cpu {:.1}%{wait}]", c.comm, c.pid, c.share_percent, c.cpu_percent)
                })
                .collect();
            let _ = writeln!(s, "       culprits: {}", list.join(", "));
        }
        if !f.cgroups.is_empty() {
            let list: Vec<String> = f.cgroups.iter().map(|g| format!("{} {:.1}%", g.path, g.share_percent)).collect();
            let _ = writeln!(s, "       cgroups: {}", list.join(", "));
        }
        if let Some(note) = &f.note {
            let _ = writeln!(s, "       note: {note}");
        }
        let _ = writeln!(s, "       next: {}", f.next.join("; "));
    }
    if !findings.summary.is_empty() {
        s.push_str("\nresources:\n");
    }
    for line in &findings.summary {
        let _ = writeln!(s, "  {:<8} {}", line.resource.name(), line.line);
    }
    if let Some(a) = &obs.activity {
        activity_lines(&mut s, a);
    }
    if let Some(k) = obs.kernel.as_ref().filter(|k| !k.during.is_empty()) {
        s.push_str("\nkernel messages during the window:\n");
        let skip = k.during.len().saturating_sub(10);
        for m in &k.during[skip..] {
            let _ = writeln!(s, "  [{:>12.6}] {}", m.seconds, m.text.escape_debug());
        }
    }
    for note in &obs.notes {
        let _ = writeln!(s, "note: {note}");
    }
    // Cgroup paths (a delegated user names them) and whatever else a
    // finding quotes: no control character reaches the terminal.
    s.lines().map(|l| format!("{}\n", perfkit_model::printable(l))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crafted_cgroup_name_reaches_the_terminal_escaped() {
        // A delegated user names a cgroup with terminal escapes (the
        // kernel refuses only '/' and newlines); it is the finding's
        // object, title, cgroup and next step.
        let evil = "/user.slice/x\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}1m";
        let finding: crate::Finding = serde_json::from_value(serde_json::json!({
            "resource": "memory", "kind": "saturation", "severity": "critical", "object": evil,
            "title": format!("memory stalls in cgroup {evil}"), "evidence": [],
            "culprits": [], "cgroups": [{"path": evil, "version": "v2", "share_percent": 100.0, "pids": [1]}],
            "next": [format!("raise the memory limit of cgroup {evil}")], "note": evil,
        }))
        .unwrap();
        let mut findings = Findings::default();
        findings.findings.push(finding);
        let text = summary(&Observations::default(), &findings, false);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
        assert_eq!(text.matches("x\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b1m").count(), 5, "{text}");
    }

    #[test]
    fn a_quiet_report_says_so() {
        let text = summary(&Observations::default(), &Findings::default(), true);
        assert!(text.contains("no bottleneck found"), "{text}");
        assert!(text.contains("stopped early"), "{text}");
    }
}
