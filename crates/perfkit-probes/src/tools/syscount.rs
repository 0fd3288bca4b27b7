//! syscount's reports: an interval's calls per syscall (or per process)
//! from [`Syscount::counts`](super::Syscount::counts) readings, the top
//! rows, bcc's table and the JSON document.

use std::{
    collections::HashMap,
    io::{self, Write},
};

use serde::Serialize;

use super::{
    SyscallCount,
    text::{SCHEMA_VERSION, round3},
};

/// One row of a syscount report: the calls of one syscall (or of one
/// process, per process) in an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscountRow {
    /// The syscall number, or per process the process ID.
    pub key: u32,
    /// Calls.
    pub count: u64,
    /// Failed calls.
    pub errors: u64,
    /// Time in the calls, in nanoseconds (with latency).
    pub total_ns: u64,
}

/// Turns readings since the start into intervals' rows.
#[derive(Clone, Debug, Default)]
pub struct SyscountIntervals {
    per_process: bool,
    previous: HashMap<(u32, u32), SyscallCount>,
}

impl SyscountIntervals {
    /// Rows per syscall, or per process (as the tool was configured).
    pub fn new(per_process: bool) -> Self {
        Self { per_process, previous: HashMap::new() }
    }

    /// The rows of the interval since the previous reading (since the
    /// start at the first), rows without calls left out; by count (by
    /// time with `by_time`), the largest first, at most `top`.
    pub fn next(&mut self, counts: Vec<SyscallCount>, by_time: bool, top: usize) -> Vec<SyscountRow> {
        let mut rows: HashMap<u32, SyscountRow> = HashMap::new();
        for c in &counts {
            let p = self.previous.get(&(c.pid, c.nr));
            let since = |now: u64, then: Option<u64>| now - then.unwrap_or(0).min(now);
            let key = if self.per_process { c.pid } else { c.nr };
            let r = rows.entry(key).or_insert(SyscountRow { key, ..SyscountRow::default() });
            r.count += since(c.count, p.map(|p| p.count));
            r.errors += since(c.errors, p.map(|p| p.errors));
            r.total_ns += since(c.total_ns, p.map(|p| p.total_ns));
        }
        self.previous = counts.into_iter().map(|c| ((c.pid, c.nr), c)).collect();
        let mut rows: Vec<SyscountRow> = rows.into_values().filter(|r| r.count > 0).collect();
        rows.sort_by(|a, b| {
            if by_time { b.total_ns.cmp(&a.total_ns) } else { b.count.cmp(&a.count) }.then(a.key.cmp(&b.key))
        });
        rows.truncate(top);
        rows
    }
}

/// Writes rows in bcc's syscount table: `SYSCALL COUNT` (per process `PID
/// COMM COUNT`), with a `TIME (unit)` column when `latency` gives the unit
/// and its divisor of nanoseconds (`("us", 1e3)`). `name` names a row's
/// key: the syscall, or the process (as it should be printed).
pub fn write_syscount_table(
    out: &mut dyn Write,
    rows: &[SyscountRow],
    per_process: bool,
    latency: Option<(&str, f64)>,
    name: impl Fn(u32) -> String,
) -> io::Result<()> {
    let first = if per_process { format!("{:<6} {:<15}", "PID", "COMM") } else { format!("{:<22}", "SYSCALL") };
    match latency {
        Some((unit, _)) => writeln!(out, "{first} {:>10} {:>16}", "COUNT", format!("TIME ({unit})"))?,
        None => writeln!(out, "{first} {:>10}", "COUNT")?,
    }
    for r in rows {
        let label =
            if per_process { format!("{:<6} {:<15}", r.key, name(r.key)) } else { format!("{:<22}", name(r.key)) };
        match latency {
            Some((_, div)) => writeln!(out, "{label} {:>10} {:>16.3}", r.count, r.total_ns as f64 / div)?,
            None => writeln!(out, "{label} {:>10}", r.count)?,
        }
    }
    Ok(())
}

/// A row in syscount's JSON document: `syscall` and `nr`, or per process
/// `pid` and `comm`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyscountRowJson {
    /// The process's name (per process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// Calls.
    pub count: u64,
    /// Failed calls.
    pub errors: u64,
    /// The syscall number (per syscall).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nr: Option<u32>,
    /// The process ID (per process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The syscall's name (per syscall).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall: Option<String>,
    /// Time in the calls, in microseconds (with latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_usecs: Option<f64>,
}

/// One interval's syscount report as a JSON document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyscountReport {
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// `syscall` or `process`.
    pub per: &'static str,
    /// The rows, as [`SyscountIntervals::next`] chose them.
    pub rows: Vec<SyscountRowJson>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the report was made (RFC 3339).
    pub time: String,
    /// `syscount`.
    pub tool: &'static str,
}

impl SyscountReport {
    /// The report of `rows` at `time` (RFC 3339); `name` names a key (the
    /// syscall, or the process); `latency`: the rows' time is shown.
    pub fn new(
        time: String,
        interval: Option<std::time::Duration>,
        rows: &[SyscountRow],
        per_process: bool,
        latency: bool,
        name: impl Fn(u32) -> String,
    ) -> Self {
        let rows = rows
            .iter()
            .map(|r| SyscountRowJson {
                comm: per_process.then(|| name(r.key)),
                count: r.count,
                errors: r.errors,
                nr: (!per_process).then_some(r.key),
                pid: per_process.then_some(r.key),
                syscall: (!per_process).then(|| name(r.key)),
                time_usecs: latency.then(|| round3(r.total_ns as f64 / 1e3)),
            })
            .collect();
        Self {
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            per: if per_process { "process" } else { "syscall" },
            rows,
            schema_version: SCHEMA_VERSION,
            time,
            tool: "syscount",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(pid: u32, nr: u32, count: u64, errors: u64, total_ns: u64) -> SyscallCount {
        SyscallCount { pid, nr, count, errors, total_ns }
    }

    #[test]
    fn intervals_are_differences_summed_by_key_and_topped() {
        let mut per_syscall = SyscountIntervals::new(false);
        let first =
            per_syscall.next(vec![count(1, 0, 5, 1, 500), count(2, 0, 3, 0, 300), count(1, 1, 9, 0, 90)], false, 10);
        assert_eq!(first[0], SyscountRow { key: 1, count: 9, errors: 0, total_ns: 90 });
        assert_eq!(first[1], SyscountRow { key: 0, count: 8, errors: 1, total_ns: 800 });
        // Only what came since: syscall 1 had no new calls and is left out.
        let second =
            per_syscall.next(vec![count(1, 0, 7, 1, 900), count(2, 0, 3, 0, 300), count(1, 1, 9, 0, 90)], true, 10);
        assert_eq!(second, [SyscountRow { key: 0, count: 2, errors: 0, total_ns: 400 }]);
        let mut per_process = SyscountIntervals::new(true);
        let by_time =
            per_process.next(vec![count(1, 0, 5, 0, 10), count(2, 0, 1, 0, 99), count(1, 1, 5, 0, 10)], true, 1);
        assert_eq!(by_time, [SyscountRow { key: 2, count: 1, errors: 0, total_ns: 99 }]);
    }

    #[test]
    fn tables_in_bccs_layout() {
        let rows = [SyscountRow { key: 0, count: 12, errors: 0, total_ns: 1_234_567 }];
        let mut out = Vec::new();
        write_syscount_table(&mut out, &rows, false, Some(("us", 1e3)), |_| "read".to_owned()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "SYSCALL                     COUNT        TIME (us)\nread                           12         1234.567\n"
        );
        let r = SyscountReport::new("t".to_owned(), None, &rows, true, false, |_| "sh".to_owned());
        assert_eq!(r.rows[0].pid, Some(0));
        assert_eq!(r.rows[0].comm.as_deref(), Some("sh"));
        assert_eq!(r.rows[0].syscall, None);
        assert_eq!(r.rows[0].time_usecs, None);
        assert_eq!(r.per, "process");
    }
}
