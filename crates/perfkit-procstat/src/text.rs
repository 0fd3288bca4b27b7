//! The sysstat-style reports as text: the tables of mpstat -P ALL,
//! pidstat -u -r -d -w, vmstat and free, iostat -xz, sar -n DEV and PSI,
//! column for column, or their JSON lines ([`crate::json`]).
//!
//! ```
//! use perfkit_procstat::{Sample, text::{Reporter, View}};
//! let mut sample = Sample::default();
//! sample.unix_ms = 1_700_000_000_000;
//! let mut out = Vec::new();
//! Reporter::new(View::Net, false).write_interval(&mut out, None, &sample)?;
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.lines().nth(1).unwrap().ends_with("IFACE rxpck/s txpck/s rxkB/s txkB/s rxcmp/s txcmp/s rxmcst/s %ifutil"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Write};

use jiff::{Timestamp, tz::TimeZone};

use crate::{Sample, json, model};

/// The time column of the summary after the last interval.
const AVERAGE: &str = "Average:";

/// A sysstat-style view of two samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum View {
    /// Per-CPU utilisation, like `mpstat -P ALL`.
    #[default]
    Cpu,
    /// Per-process CPU, memory, I/O and context switches, like `pidstat -u -r -d -w`.
    Proc,
    /// Memory, swap, run queue and system activity, like `vmstat` and `free`.
    Mem,
    /// Block device I/O, like `iostat -xz`.
    Disk,
    /// Network interfaces, like `sar -n DEV`.
    Net,
    /// Pressure stall information (/proc/pressure).
    Psi,
}

/// The local clock time `HH:MM:SS` (`TZ`, `/etc/localtime`) of a Unix
/// time in milliseconds, the time column of the text reports
/// (`??:??:??` past the range of times jiff represents).
pub fn clock_time(unix_ms: u64) -> String {
    match i64::try_from(unix_ms).ok().and_then(|ms| Timestamp::from_millisecond(ms).ok()) {
        Some(t) => t.to_zoned_datetime(TimeZone::system()).strftime("%H:%M:%S").to_string(),
        None => "??:??:??".to_owned(),
    }
}

/// Writes the reports of one view, as text tables or JSON lines.
///
/// The text has sysstat's layout: a blank line, then the header and the
/// rows, each behind the time column (the local clock time of the sample
/// that ends the interval, or `Average:`). Names from processes and
/// devices are made printable (see [`perfkit_model::printable`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Reporter {
    /// The view written.
    pub view: View,
    /// JSON lines ([`json::document`]) instead of text tables.
    pub json: bool,
    /// In the proc view, only these processes (listed even when idle);
    /// empty: every process active in the interval.
    pub pids: Vec<u32>,
    /// In the disk view, also devices that did no I/O (iostat without `-z`).
    pub all_disks: bool,
    /// In the mem view, the header only every this many reports (vmstat's
    /// 20 on a terminal); `None`: before every report.
    pub header_every: Option<usize>,
    printed: usize,
}

impl Reporter {
    /// Text reports of `view` (JSON lines with `json`), every process,
    /// active devices only, a header before every report.
    pub fn new(view: View, json: bool) -> Self {
        Self { view, json, pids: Vec::new(), all_disks: false, header_every: None, printed: 0 }
    }

    /// Writes the report of the interval `prev` → `cur` (since boot
    /// without `prev`), labelled with `cur`'s local clock time.
    pub fn write_interval(&mut self, out: &mut impl Write, prev: Option<&Sample>, cur: &Sample) -> io::Result<()> {
        self.write(out, prev, cur, &clock_time(cur.unix_ms))
    }

    /// Writes the average over `first` → `last`, as sysstat does after
    /// the last interval (`Average:`; `"average": true` in JSON).
    pub fn write_average(&mut self, out: &mut impl Write, first: &Sample, last: &Sample) -> io::Result<()> {
        self.write(out, Some(first), last, AVERAGE)
    }

    /// Replays recorded `samples`: the report of each interval between two
    /// samples, then (with more than one interval) the average over them
    /// all. Fewer than two samples write nothing.
    pub fn write_replay(&mut self, out: &mut impl Write, samples: &[Sample]) -> io::Result<()> {
        for pair in samples.windows(2) {
            self.write_interval(out, Some(&pair[0]), &pair[1])?;
        }
        if let [first, _, _, ..] = samples {
            self.write_average(out, first, &samples[samples.len() - 1])?;
        }
        Ok(())
    }

    fn write(&mut self, out: &mut impl Write, prev: Option<&Sample>, cur: &Sample, label: &str) -> io::Result<()> {
        let secs = model::elapsed(prev, cur);
        if self.json {
            let (key, data) = match self.view {
                View::Cpu => ("cpus", json::cpu(&model::cpu(prev, cur))),
                View::Proc => ("processes", json::processes(&self.proc_rows(prev, cur))),
                View::Mem => ("memory", json::memory(model::mem(prev, cur).as_ref())),
                View::Disk => ("disks", json::disks(&model::disk(prev, cur, !self.all_disks))),
                View::Net => ("interfaces", json::interfaces(&model::net(prev, cur))),
                View::Psi => ("pressure", json::pressure(&model::psi(prev, cur))),
            };
            let obj = json::document(cur.unix_ms, secs, label == AVERAGE, key, data);
            writeln!(out, "{obj}")?;
            return Ok(());
        }
        let table = self.table(prev, cur);
        let show_header = self.view != View::Mem || self.header_every.is_none_or(|n| self.printed.is_multiple_of(n));
        writeln!(out)?;
        if show_header || label == AVERAGE {
            writeln!(out, "{label:<10} {}", table.header)?;
        }
        for row in &table.rows {
            writeln!(out, "{label:<10} {row}")?;
        }
        self.printed += 1;
        out.flush()?;
        Ok(())
    }

    fn proc_rows(&self, prev: Option<&Sample>, cur: &Sample) -> Vec<model::ProcRow> {
        model::processes(prev, cur)
            .into_iter()
            .filter(|r| if self.pids.is_empty() { r.active() } else { self.pids.contains(&r.pid) })
            .collect()
    }

    fn table(&self, prev: Option<&Sample>, cur: &Sample) -> Table {
        let f2 = |v: f64| format!("{v:.2}");
        match self.view {
            View::Cpu => Table::new(
                &["CPU", "%usr", "%nice", "%sys", "%iowait", "%irq", "%soft", "%steal", "%guest", "%gnice", "%idle"],
                model::cpu(prev, cur)
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.cpu,
                            f2(r.usr),
                            f2(r.nice),
                            f2(r.sys),
                            f2(r.iowait),
                            f2(r.irq),
                            f2(r.soft),
                            f2(r.steal),
                            f2(r.guest),
                            f2(r.gnice),
                            f2(r.idle),
                        ]
                    })
                    .collect(),
            ),
            View::Proc => {
                let threads = cur.processes.iter().any(|p| p.tid.is_some());
                let mut cols = vec!["UID", "PID"];
                if threads {
                    cols.push("TID");
                }
                cols.extend([
                    "%usr",
                    "%system",
                    "%guest",
                    "%wait",
                    "%CPU",
                    "CPU",
                    "minflt/s",
                    "majflt/s",
                    "VSZ",
                    "RSS",
                    "%MEM",
                    "kB_rd/s",
                    "kB_wr/s",
                    "kB_ccwr/s",
                    "iodelay",
                    "cswch/s",
                    "nvcswch/s",
                    "Command",
                ]);
                let io = |v: Option<f64>| v.map_or_else(|| "-1.00".to_owned(), f2);
                let rows = self
                    .proc_rows(prev, cur)
                    .into_iter()
                    .map(|r| {
                        let mut row = vec![r.uid.to_string(), r.pid.to_string()];
                        if threads {
                            row.push(r.tid.map_or_else(|| "-".to_owned(), |t| t.to_string()));
                        }
                        row.extend([
                            f2(r.usr),
                            f2(r.system),
                            f2(r.guest),
                            r.wait.map_or_else(|| "-".to_owned(), f2),
                            f2(r.cpu_pct),
                            r.cpu.to_string(),
                            f2(r.minflt_s),
                            f2(r.majflt_s),
                            r.vsz_kib.to_string(),
                            r.rss_kib.to_string(),
                            f2(r.mem_pct),
                            io(r.kb_rd_s),
                            io(r.kb_wr_s),
                            io(r.kb_ccwr_s),
                            r.iodelay.to_string(),
                            f2(r.cswch_s),
                            f2(r.nvcswch_s),
                            r.command,
                        ]);
                        row
                    })
                    .collect();
                Table::new(&cols, rows)
            }
            View::Mem => {
                let cols = [
                    "r", "b", "swpd", "free", "buff", "cache", "si", "so", "bi", "bo", "in", "cs", "us", "sy", "id",
                    "wa", "st", "total", "used", "avail",
                ];
                let rows = model::mem(prev, cur)
                    .map(|m| {
                        let f0 = |v: f64| format!("{v:.0}");
                        vec![vec![
                            m.r.to_string(),
                            m.b.to_string(),
                            m.swpd_kib.to_string(),
                            m.free_kib.to_string(),
                            m.buff_kib.to_string(),
                            m.cache_kib.to_string(),
                            f0(m.si),
                            f0(m.so),
                            f0(m.bi),
                            f0(m.bo),
                            f0(m.interrupts),
                            f0(m.cs),
                            f0(m.us),
                            f0(m.sy),
                            f0(m.id),
                            f0(m.wa),
                            f0(m.st),
                            m.total_kib.to_string(),
                            m.used_kib.to_string(),
                            m.available_kib.to_string(),
                        ]]
                    })
                    .unwrap_or_default();
                Table::new(&cols, rows)
            }
            View::Disk => Table::new(
                &[
                    "Device", "r/s", "rkB/s", "rrqm/s", "%rrqm", "r_await", "rareq-sz", "w/s", "wkB/s", "wrqm/s",
                    "%wrqm", "w_await", "wareq-sz", "aqu-sz", "%util",
                ],
                model::disk(prev, cur, !self.all_disks)
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.device,
                            f2(r.r_s),
                            f2(r.rkb_s),
                            f2(r.rrqm_s),
                            f2(r.rrqm_pct),
                            f2(r.r_await),
                            f2(r.rareq_sz),
                            f2(r.w_s),
                            f2(r.wkb_s),
                            f2(r.wrqm_s),
                            f2(r.wrqm_pct),
                            f2(r.w_await),
                            f2(r.wareq_sz),
                            f2(r.aqu_sz),
                            f2(r.util),
                        ]
                    })
                    .collect(),
            ),
            View::Net => Table::new(
                &["IFACE", "rxpck/s", "txpck/s", "rxkB/s", "txkB/s", "rxcmp/s", "txcmp/s", "rxmcst/s", "%ifutil"],
                model::net(prev, cur)
                    .into_iter()
                    .map(|r| {
                        vec![
                            r.iface,
                            f2(r.rxpck_s),
                            f2(r.txpck_s),
                            f2(r.rxkb_s),
                            f2(r.txkb_s),
                            f2(r.rxcmp_s),
                            f2(r.txcmp_s),
                            f2(r.rxmcst_s),
                            f2(r.ifutil),
                        ]
                    })
                    .collect(),
            ),
            View::Psi => {
                let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), f2);
                Table::new(
                    &["resource", "some10", "some60", "some300", "some%", "full10", "full60", "full300", "full%"],
                    model::psi(prev, cur)
                        .into_iter()
                        .map(|r| {
                            vec![
                                r.resource.to_owned(),
                                f2(r.some_avg10),
                                f2(r.some_avg60),
                                f2(r.some_avg300),
                                f2(r.some_pct),
                                opt(r.full_avg10),
                                opt(r.full_avg60),
                                opt(r.full_avg300),
                                opt(r.full_pct),
                            ]
                        })
                        .collect(),
                )
            }
        }
    }
}

/// Aligned columns: text columns left-aligned, numbers right-aligned.
#[derive(Debug)]
struct Table {
    header: String,
    rows: Vec<String>,
}

impl Table {
    fn new(cols: &[&str], rows: Vec<Vec<String>>) -> Self {
        // Names come from processes and devices: nothing they contain may
        // drive the terminal.
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(|c| perfkit_model::printable(&c).into_owned()).collect())
            .collect();
        let mut widths: Vec<usize> = cols.iter().map(|c| c.len()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let left = |i: usize| matches!(cols[i], "Device" | "IFACE" | "resource" | "Command");
        let fmt = |cells: &[String]| -> String {
            let mut line = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i > 0 {
                    line.push(' ');
                }
                let last = i + 1 == cells.len();
                if left(i) && !last {
                    line.push_str(&format!("{cell:<w$}", w = widths[i]));
                } else if left(i) {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:>w$}", w = widths[i]));
                }
            }
            line
        };
        let header = fmt(&cols.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        Self { header, rows: rows.iter().map(|r| fmt(r)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_names_cannot_drive_the_terminal() {
        let t = Table::new(
            &["PID", "%CPU", "Command"],
            vec![
                vec!["1".into(), "100.00".into(), "init".into()],
                vec!["31337".into(), "0.50".into(), "evil\u{1b}[2J".into()],
            ],
        );
        assert_eq!(t.header, "  PID   %CPU Command");
        assert_eq!(t.rows, ["    1 100.00 init", "31337   0.50 evil\\x1b[2J"]);
        let t = Table::new(&["IFACE", "rxpck/s"], vec![vec!["lo".into(), "1.00".into()]]);
        assert_eq!(t.header, "IFACE rxpck/s");
        assert_eq!(t.rows, ["lo       1.00"], "a left column that is not the last is padded");
    }

    #[test]
    fn the_mem_header_repeats_as_vmstat_does() {
        let mut r = Reporter::new(View::Mem, false);
        r.header_every = Some(2);
        let s = Sample::default();
        let mut out = Vec::new();
        for _ in 0..3 {
            r.write_interval(&mut out, Some(&s), &s).unwrap();
        }
        r.write_average(&mut out, &s, &s).unwrap();
        let text = String::from_utf8(out).unwrap();
        let headers: Vec<&str> = text.lines().filter(|l| l.contains(" swpd ")).collect();
        assert_eq!(headers.len(), 3, "reports 1 and 3, and the average:\n{text}");
        assert!(headers[2].starts_with("Average:   "), "{text}");
    }

    #[test]
    fn a_replay_reports_each_interval_then_the_average() {
        let at = |unix_ms, uptime| Sample { unix_ms, uptime, ..Sample::default() };
        let replay = |samples: &[Sample]| {
            let mut out = Vec::new();
            Reporter::new(View::Mem, true).write_replay(&mut out, samples).unwrap();
            String::from_utf8(out).unwrap()
        };
        let three = [at(1_000, 1.0), at(2_000, 2.0), at(3_000, 3.0)];
        let text = replay(&three);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "two intervals and the average:\n{text}");
        assert!(lines[2].contains("\"average\":true") && !lines[1].contains("\"average\":true"), "{text}");
        assert_eq!(replay(&three[..2]).lines().count(), 1, "one interval, no average");
        assert!(replay(&three[..1]).is_empty());
        assert!(replay(&[]).is_empty());
    }

    #[test]
    fn clock_times_follow_the_local_zone() {
        let s = clock_time(1_700_000_000_123);
        assert_eq!((s.len(), &s[2..3], &s[5..6]), (8, ":", ":"), "{s}");
        assert_eq!(clock_time(u64::MAX), "??:??:??");
    }
}
