//! trace's and argdist's output: a [`TraceMessage`] as bcc's trace line or
//! as its JSON object, and an interval of argdist's [`Aggregate`]s as
//! bcc's tables or as one JSON document (docs/JSON.md).
//!
//! Text escapes what it prints ([`printable`]); JSON keeps it as is. The
//! clock time is given by the caller.

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use perfkit_model::printable;
use serde::{Serialize, Serializer};

use super::{
    Aggregate, ArgdistSpec, Histogram, TraceMessage, Value,
    snoop::Stamp,
    text::{SCHEMA_VERSION, round6, write_log2_hist},
};

/// A [`Value`] in JSON: a number while it fits 64 bits (signed or not),
/// else its digits as a string; a string as itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueJson<'a>(pub &'a Value);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Int(i) => {
                if let Ok(n) = i64::try_from(*i) {
                    s.serialize_i64(n)
                } else if let Ok(n) = u64::try_from(*i) {
                    s.serialize_u64(n)
                } else {
                    s.serialize_str(&i.to_string())
                }
            }
            Value::Str(v) => s.serialize_str(v),
        }
    }
}

fn values_json(values: &[Value]) -> Vec<ValueJson<'_>> {
    values.iter().map(ValueJson).collect()
}

/// trace's layout: a clock time column (`-T`) or seconds since the start
/// (`-t`), under one TIME heading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceLayout {
    /// The clock time (wins over `timestamp`).
    pub clock: bool,
    /// Seconds since the start.
    pub timestamp: bool,
}

impl TraceLayout {
    /// The layout with these time columns.
    pub fn new(clock: bool, timestamp: bool) -> Self {
        Self { clock, timestamp }
    }

    /// Writes the heading line.
    pub fn write_heading(&self, out: &mut dyn Write) -> io::Result<()> {
        let head = if self.clock || self.timestamp { "TIME     " } else { "" };
        writeln!(out, "{head}{:<7} {:<7} {:<15} {:<16} -", "PID", "TID", "COMM", "FUNC")
    }

    /// Writes `m`: the function's last part (`malloc`, not
    /// `/lib/libc.so.6:malloc`) and the formatted message.
    pub fn write(&self, out: &mut dyn Write, m: &TraceMessage, at: Stamp) -> io::Result<()> {
        let time = if self.clock {
            format!("{:<8} ", (at.clock)())
        } else if self.timestamp {
            format!("{:<8.3} ", at.t)
        } else {
            String::new()
        };
        let func = m.func.rsplit(':').next().unwrap_or(&m.func);
        writeln!(
            out,
            "{time}{:<7} {:<7} {:<15} {:<16} {}",
            m.pid,
            m.tid,
            printable(&m.comm),
            printable(func),
            printable(&m.message)
        )
    }
}

/// A trace message as trace's JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceMessageJson<'a> {
    /// The process's name.
    pub comm: &'a str,
    /// The function, USDT probe or tracepoint.
    pub func: &'a str,
    /// The formatted message.
    pub message: &'a str,
    /// Process.
    pub pid: u32,
    /// The probe as given on the command line.
    pub probe: Option<&'a str>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Thread.
    pub tid: u32,
    /// Seconds since the start.
    pub time_s: f64,
    /// A string was cut.
    pub truncated: bool,
    /// The format's arguments.
    pub values: Vec<ValueJson<'a>>,
}

impl<'a> TraceMessageJson<'a> {
    /// `m`, `t` seconds after the start, of `probe` (its text).
    pub fn new(m: &'a TraceMessage, probe: Option<&'a str>, t: f64) -> Self {
        Self {
            comm: &m.comm,
            func: &m.func,
            message: &m.message,
            pid: m.pid,
            probe,
            schema_version: SCHEMA_VERSION,
            tid: m.tid,
            time_s: round6(t),
            truncated: m.truncated,
            values: values_json(&m.values),
        }
    }
}

/// A `-C` specifier's rows, most counted first, the `top` kept.
fn top_counts(counts: &BTreeMap<Vec<Value>, u64>, top: Option<usize>) -> Vec<(&Vec<Value>, &u64)> {
    let mut rows: Vec<_> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    if let Some(t) = top {
        rows.truncate(t);
    }
    rows
}

/// Writes an interval of argdist as bcc prints it: per specifier its
/// label, then its counts (largest last; `top` keeps the largest) or its
/// log2 histogram.
pub fn write_argdist(
    out: &mut dyn Write,
    specs: &[ArgdistSpec],
    aggregates: &[Aggregate],
    top: Option<usize>,
) -> io::Result<()> {
    let value_text = |v: &Value| match v {
        Value::Str(s) => printable(s).into_owned(),
        v => v.to_string(),
    };
    for (s, a) in specs.iter().zip(aggregates) {
        writeln!(out, "{}", printable(&s.label))?;
        match a {
            Aggregate::Counts(m) => {
                let mut rows = top_counts(m, top);
                rows.reverse();
                writeln!(out, "\t{:<10} EVENT", "COUNT")?;
                for (values, count) in rows {
                    let event = if values.is_empty() {
                        "calls".to_owned()
                    } else {
                        s.expr_texts
                            .iter()
                            .zip(values)
                            .map(|(e, v)| format!("{} = {}", printable(e), value_text(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    writeln!(out, "\t{count:<10} {event}")?;
                }
            }
            Aggregate::Histogram { hist, negative } => {
                let unit = s.expr_texts.first().map_or("value", String::as_str);
                write_log2_hist(out, &printable(unit), hist, 1)?;
                if *negative > 0 {
                    writeln!(out, "     {negative} values below zero")?;
                }
            }
        }
    }
    Ok(())
}

/// A row of a `-C` specifier in [`ArgdistReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CountJson<'a> {
    /// Hits.
    pub count: u64,
    /// Their values, one per expression.
    pub values: Vec<ValueJson<'a>>,
}

/// A bucket of a `-H` specifier in [`ArgdistReport`], in the value's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ValueBucketJson {
    /// Values in it.
    pub count: u64,
    /// Its upper bound, included.
    pub high: u64,
    /// Its lower bound.
    pub low: u64,
}

/// A specifier's aggregate in [`ArgdistReport`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SpecifierJson<'a> {
    /// `-C`: counts, most counted first.
    Counts {
        /// The rows.
        counts: Vec<CountJson<'a>>,
        /// The expressions as written.
        exprs: &'a [String],
        /// The label.
        label: &'a str,
        /// `count`.
        mode: &'static str,
    },
    /// `-H`: a log2 histogram.
    Histogram {
        /// Buckets up to the last used.
        buckets: Vec<ValueBucketJson>,
        /// The expressions as written.
        exprs: &'a [String],
        /// The label.
        label: &'a str,
        /// `histogram`.
        mode: &'static str,
        /// Values below zero.
        negative: u64,
    },
}

/// One interval of argdist as a JSON document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArgdistReport<'a> {
    /// Counts kept from interval to interval (`-c`).
    pub cumulative: bool,
    /// The interval.
    pub interval_seconds: f64,
    /// One per specifier.
    pub probes: Vec<SpecifierJson<'a>>,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// When (RFC 3339).
    pub time: String,
    /// `argdist`.
    pub tool: &'static str,
}

impl<'a> ArgdistReport<'a> {
    /// The report of `aggregates` at `time`; `top` keeps the most counted
    /// rows of each `-C`.
    pub fn new(
        time: String,
        interval: std::time::Duration,
        cumulative: bool,
        specs: &'a [ArgdistSpec],
        aggregates: &'a [Aggregate],
        top: Option<usize>,
    ) -> Self {
        let probes = specs
            .iter()
            .zip(aggregates)
            .map(|(s, a)| match a {
                Aggregate::Counts(m) => SpecifierJson::Counts {
                    counts: top_counts(m, top)
                        .into_iter()
                        .map(|(v, &count)| CountJson { count, values: values_json(v) })
                        .collect(),
                    exprs: &s.expr_texts,
                    label: &s.label,
                    mode: "count",
                },
                Aggregate::Histogram { hist, negative } => {
                    let last = hist.used().map_or(0, |(_, l)| l + 1);
                    SpecifierJson::Histogram {
                        buckets: hist
                            .counts
                            .iter()
                            .enumerate()
                            .take(last)
                            .map(|(i, &count)| {
                                let (low, high) = Histogram::bounds_us(i);
                                ValueBucketJson { count, high, low }
                            })
                            .collect(),
                        exprs: &s.expr_texts,
                        label: &s.label,
                        mode: "histogram",
                        negative: *negative,
                    }
                }
            })
            .collect();
        Self {
            cumulative,
            interval_seconds: interval.as_secs_f64(),
            probes,
            schema_version: SCHEMA_VERSION,
            time,
            tool: "argdist",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_numbers_while_they_fit_64_bits() {
        let j = |v: Value| serde_json::to_string(&ValueJson(&v)).unwrap();
        assert_eq!(j(Value::Int(-5)), "-5");
        assert_eq!(j(Value::Int(u64::MAX as i128)), u64::MAX.to_string());
        assert_eq!(j(Value::Int(i128::MAX)), format!("\"{}\"", i128::MAX));
        assert_eq!(j(Value::Str("a\"b".into())), r#""a\"b""#);
    }

    fn message() -> TraceMessage {
        TraceMessage {
            ts_ns: 0,
            pid: 7,
            tid: 8,
            comm: "app".into(),
            func: "/usr/lib/libc.so.6:malloc".into(),
            probe: 0,
            message: "size 64\n".into(),
            values: vec![Value::Int(64)],
            truncated: false,
        }
    }

    #[test]
    fn trace_lines_and_json() {
        let m = message();
        let clock = || "01:02:03".to_owned();
        let at = Stamp { t: 2.0, clock: &clock };
        let mut out = Vec::new();
        let layout = TraceLayout::new(false, true);
        layout.write_heading(&mut out).unwrap();
        layout.write(&mut out, &m, at).unwrap();
        TraceLayout::new(true, true).write(&mut out, &m, at).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "TIME     PID     TID     COMM            FUNC             -\n\
             2.000    7       8       app             malloc           size 64\\n\n\
             01:02:03 7       8       app             malloc           size 64\\n\n"
        );
        assert_eq!(
            serde_json::to_string(&TraceMessageJson::new(&m, Some("c:malloc"), 2.0)).unwrap(),
            json!({"schema_version": SCHEMA_VERSION, "time_s": 2.0, "pid": 7, "tid": 8, "comm": "app",
                   "func": m.func, "probe": "c:malloc", "message": m.message, "values": [64], "truncated": false})
            .to_string()
        );
    }
}
