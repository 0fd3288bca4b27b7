//! The tools' output in bcc's layouts, into any [`Write`], and their JSON
//! documents as types (serialize them with any serde format): the shared
//! pieces are here (log2 histograms as bcc's `print_log2_hist`, time
//! columns, the histogram report); each tool's own rows are beside it.
//!
//! Nothing here knows a terminal: the caller chooses where it goes, and
//! escapes names it did not get from the kernel itself if it prints them
//! to a terminal. Clock times are given by the caller (as text), so that
//! one clock (and time zone) serves the whole program.

use std::io::{self, Write};

use serde::Serialize;

use super::Histogram;

/// The version of the JSON documents' schema (docs/JSON.md). Version 2:
/// `time` became RFC 3339, and histograms are in microseconds whatever the
/// text unit.
pub const SCHEMA_VERSION: u32 = 2;

/// `v` rounded to three decimals (microseconds from nanoseconds).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// `v` rounded to six decimals (seconds to the microsecond).
pub fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The heading line of a log2 histogram, and what follows it when it is
/// empty.
fn heading(out: &mut dyn Write, unit: &str) -> io::Result<()> {
    writeln!(out, "     {unit:<19} : count     distribution")
}

/// Writes an empty histogram: the heading and `(no events)`.
pub fn write_no_events(out: &mut dyn Write, unit: &str) -> io::Result<()> {
    heading(out, unit)?;
    writeln!(out, "     (no events)")
}

/// Writes a log2 histogram in bcc's layout (`print_log2_hist`): a heading
/// naming `unit`, then one row per bucket up to the last used, with its
/// bounds, count and a bar of up to 40 stars. `scale` divides the values
/// first (1000: microseconds to milliseconds).
pub fn write_log2_hist(out: &mut dyn Write, unit: &str, h: &Histogram, scale: u64) -> io::Result<()> {
    let counts = h.rescaled(scale).counts;
    let Some(last) = counts.iter().rposition(|&c| c > 0) else {
        return write_no_events(out, unit);
    };
    let max = counts.iter().copied().max().unwrap_or(1).max(1);
    heading(out, unit)?;
    for (i, &c) in counts.iter().enumerate().take(last + 1) {
        let (low, high) = Histogram::bounds_us(i);
        let stars = ((c as u128 * 40) / max as u128) as usize;
        writeln!(out, "{low:>10} -> {high:<10} : {c:<8} |{:<40}|", "*".repeat(stars))?;
    }
    Ok(())
}

/// Writes labelled histograms, as runqlat and biolatency print an
/// interval: each label (if not empty) on a line of its own after a blank
/// one, then its histogram; `(no events)` when there is none.
pub fn write_histograms<'a>(
    out: &mut dyn Write,
    unit: &str,
    scale: u64,
    hists: impl IntoIterator<Item = (String, &'a Histogram)>,
) -> io::Result<()> {
    let mut any = false;
    for (label, h) in hists {
        any = true;
        if !label.is_empty() {
            writeln!(out, "\n{label}")?;
        }
        write_log2_hist(out, unit, h, scale)?;
    }
    if !any {
        write_no_events(out, unit)?;
    }
    Ok(())
}

/// One bucket of a [`HistogramJson`], in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BucketJson {
    /// Values in the bucket.
    pub count: u64,
    /// Its upper bound, included.
    pub high_usecs: u64,
    /// Its lower bound.
    pub low_usecs: u64,
}

/// A histogram in the JSON documents: always in microseconds (a text unit
/// never changes key names), with what it is per (`P`: `{"pid": 1,
/// "comm": "sh"}`, `{}`...).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramJson<P> {
    /// Buckets from the first up to the last used.
    pub buckets: Vec<BucketJson>,
    /// Values counted.
    pub count: u64,
    /// What the histogram is per.
    pub per: P,
    /// The sum of the values, in microseconds (to the nanosecond).
    pub sum_usecs: f64,
}

impl<P> HistogramJson<P> {
    /// `h` as JSON, per `per`.
    pub fn new(h: &Histogram, per: P) -> Self {
        let last = h.used().map_or(0, |(_, l)| l + 1);
        let buckets = h
            .counts
            .iter()
            .enumerate()
            .take(last)
            .map(|(i, &count)| {
                let (low_usecs, high_usecs) = Histogram::bounds_us(i);
                BucketJson { count, high_usecs, low_usecs }
            })
            .collect();
        Self { buckets, count: h.count(), per, sum_usecs: round3(h.sum_ns as f64 / 1000.0) }
    }
}

/// One interval's report of a histogram tool (runqlat, biolatency,
/// funclatency...) as a JSON document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramReport<P> {
    /// The histograms, one per key.
    pub histograms: Vec<HistogramJson<P>>,
    /// The interval, if reports come at intervals.
    pub interval_seconds: Option<f64>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When the report was made (RFC 3339).
    pub time: String,
    /// The tool's name.
    pub tool: &'static str,
}

impl<P> HistogramReport<P> {
    /// The report of `tool` at `time` (RFC 3339).
    pub fn new(
        tool: &'static str,
        time: String,
        interval: Option<std::time::Duration>,
        histograms: Vec<HistogramJson<P>>,
    ) -> Self {
        Self {
            histograms,
            interval_seconds: interval.map(|d| d.as_secs_f64()),
            schema_version: SCHEMA_VERSION,
            time,
            tool,
        }
    }
}

/// The time columns of an event line, as bcc's snooping tools print them:
/// the clock time (`-T`, `HH:MM:SS`) and seconds since the start (`-t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeColumns {
    /// The clock time, 8 characters wide.
    pub clock: bool,
    /// Seconds since the start, to the millisecond.
    pub seconds: bool,
}

impl TimeColumns {
    /// The headings of the columns shown (each followed by a space).
    pub fn heading(&self) -> String {
        let mut h = String::new();
        if self.clock {
            h.push_str(&format!("{:<8} ", "TIME"));
        }
        if self.seconds {
            h.push_str(&format!("{:<9} ", "TIME(s)"));
        }
        h
    }

    /// The columns shown, `t` seconds after the start; `clock` gives the
    /// clock time's text (asked for only if it is shown).
    pub fn columns(&self, t: f64, clock: impl FnOnce() -> String) -> String {
        let mut c = String::new();
        if self.clock {
            c.push_str(&format!("{:<8} ", clock()));
        }
        if self.seconds {
            c.push_str(&format!("{t:<9.3} "));
        }
        c
    }
}

/// An event of a snooping tool as a JSON line: the event's own fields,
/// then the [`SCHEMA_VERSION`] and the time since the start (`time_s`, to
/// the microsecond).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventJson<E> {
    /// The event.
    #[serde(flatten)]
    pub event: E,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Seconds since the tool started.
    pub time_s: f64,
}

impl<E> EventJson<E> {
    /// `event`, `t` seconds after the start.
    pub fn new(event: E, t: f64) -> Self {
        Self { event, schema_version: SCHEMA_VERSION, time_s: round6(t) }
    }
}

/// What a histogram of runqlat or biolatency is per: its label in text
/// (`pid = 7 sh`, `disk = sda, flags = Write`) and its `per` object in
/// JSON (`{"comm": "sh", "pid": 7}`, `{}` for the whole machine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum HistogramPer {
    /// One process.
    Process {
        /// Its name.
        comm: String,
        /// The process.
        pid: u64,
    },
    /// One thread.
    Thread {
        /// Its name.
        comm: String,
        /// The thread.
        tid: u64,
    },
    /// One PID namespace.
    PidNamespace {
        /// The namespace's inode number.
        pidns: u64,
    },
    /// One cgroup v2 group.
    Cgroup {
        /// Its path under the cgroup v2 mount.
        cgroup: String,
        /// Its id (the directory's inode number).
        cgroup_id: u64,
    },
    /// A disk and operation (biolatency `-D`, `-F`), either or both.
    Block {
        /// The disk's `major:minor`.
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<String>,
        /// The disk's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        disk: Option<String>,
        /// The operation (`Read`, `Write`, `Sync-Write`...).
        #[serde(skip_serializing_if = "Option::is_none")]
        flags: Option<String>,
    },
    /// Everything: one histogram.
    All {},
}

impl HistogramPer {
    /// The label printed above the histogram (empty for [`Self::All`]).
    pub fn label(&self) -> String {
        match self {
            Self::Process { comm, pid } => format!("pid = {pid} {comm}"),
            Self::Thread { comm, tid } => format!("tid = {tid} {comm}"),
            Self::PidNamespace { pidns } => format!("pidns = {pidns}"),
            Self::Cgroup { cgroup, .. } => format!("cgroup = {cgroup}"),
            Self::Block { disk, flags, .. } => {
                let disk = disk.as_ref().map(|d| format!("disk = {d}"));
                let flags = flags.as_ref().map(|f| format!("flags = {f}"));
                disk.into_iter().chain(flags).collect::<Vec<_>>().join(", ")
            }
            Self::All {} => String::new(),
        }
    }
}

/// What a writer of text output wrote, as a string (for the tools' tests).
#[cfg(test)]
pub(crate) fn written(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::written as text;

    #[test]
    fn histograms_print_in_bccs_layout() {
        let mut h = Histogram::new(0, 0);
        h.counts[1] = 2;
        h.counts[3] = 8;
        let text = text(|o| write_log2_hist(o, "usecs", &h, 1));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "     usecs               : count     distribution");
        assert_eq!(lines[1], "         0 -> 1          : 0        |                                        |");
        assert_eq!(lines[2], "         2 -> 3          : 2        |**********                              |");
        assert_eq!(lines[4], "         8 -> 15         : 8        |****************************************|");
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn milliseconds_rescale_and_empty_histograms_say_so() {
        let mut h = Histogram::new(0, 0);
        h.counts[13] = 4; // 8192..16383 us: 8..15 ms
        let text = text(|o| write_log2_hist(o, "msecs", &h, 1000));
        assert_eq!(
            text.lines().last(),
            Some("         8 -> 15         : 4        |****************************************|")
        );
        let empty = text_of_histograms(&[]);
        assert_eq!(empty, "     usecs               : count     distribution\n     (no events)\n");
    }

    fn text_of_histograms(hists: &[(String, Histogram)]) -> String {
        text(|o| write_histograms(o, "usecs", 1, hists.iter().map(|(l, h)| (l.clone(), h))))
    }

    #[test]
    fn labelled_histograms_follow_a_blank_line() {
        let mut h = Histogram::new(7, 0);
        h.counts[0] = 1;
        let text = text_of_histograms(&[("pid = 7 sh".to_owned(), h)]);
        assert!(text.starts_with("\npid = 7 sh\n     usecs "), "{text}");
    }

    #[test]
    fn json_histograms_keep_microseconds() {
        let mut h = Histogram::new(0, 0);
        h.counts[13] = 5;
        h.sum_ns = 50_000_000;
        #[derive(Serialize)]
        struct Per {
            pid: u32,
        }
        let j = HistogramJson::new(&h, Per { pid: 1 });
        assert_eq!(j.count, 5);
        assert_eq!(j.sum_usecs, 50_000.0);
        assert_eq!(j.buckets.len(), 14);
        assert_eq!(j.buckets[13], BucketJson { count: 5, high_usecs: 16383, low_usecs: 8192 });
        assert_eq!(HistogramJson::new(&Histogram::new(0, 0), ()).buckets, []);
    }

    #[test]
    fn time_columns_as_bcc() {
        let both = TimeColumns { clock: true, seconds: true };
        assert_eq!(both.heading(), "TIME     TIME(s)   ");
        assert_eq!(both.columns(1.23456, || "12:00:01".to_owned()), "12:00:01 1.235     ");
        let none = TimeColumns::default();
        assert_eq!(none.columns(1.0, || unreachable!("the clock is not shown")), "");
        assert_eq!(round6(1.23456789), 1.234568);
    }
    #[test]
    fn histograms_are_labelled_as_bcc_and_keyed_as_before() {
        let json = |p: &HistogramPer| serde_json::to_string(p).unwrap();
        let p = HistogramPer::Process { comm: "sh".into(), pid: 7 };
        assert_eq!((p.label(), json(&p)), ("pid = 7 sh".to_owned(), r#"{"comm":"sh","pid":7}"#.to_owned()));
        let c = HistogramPer::Cgroup { cgroup: "/a".into(), cgroup_id: 9 };
        assert_eq!((c.label(), json(&c)), ("cgroup = /a".to_owned(), r#"{"cgroup":"/a","cgroup_id":9}"#.to_owned()));
        let b =
            HistogramPer::Block { device: Some("8:0".into()), disk: Some("sda".into()), flags: Some("Write".into()) };
        assert_eq!(b.label(), "disk = sda, flags = Write");
        assert_eq!(json(&b), r#"{"device":"8:0","disk":"sda","flags":"Write"}"#);
        let f = HistogramPer::Block { device: None, disk: None, flags: Some("Read".into()) };
        assert_eq!((f.label(), json(&f)), ("flags = Read".to_owned(), r#"{"flags":"Read"}"#.to_owned()));
        assert_eq!((HistogramPer::All {}.label(), json(&HistogramPer::All {})), (String::new(), "{}".to_owned()));
    }
}
