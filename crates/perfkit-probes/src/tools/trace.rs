//! trace and argdist: every hit of a uprobe, uretprobe, USDT probe or
//! tracepoint streamed from the kernel with its registers, the strings its
//! expressions name (`bpf_probe_read_user_str`, up to 127 bytes, cut ones
//! marked) and the start of its tracepoint record. Filters, formats and
//! argdist's counts and histograms are computed in user space, from those
//! bytes: a filtered-out hit still crosses the ring buffer, and is counted
//! as filtered.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use aya::maps::{Array, MapData, PerCpuArray};
use perfkit_probes_common::{
    tools::{HIST_SLOTS, log2_slot},
    trace::{
        self as abi, DEREFS, FLAG_DEREF_UNREADABLE, FLAG_STR_TRUNCATED, FLAG_STR_UNREADABLE, MAX_PROBES, STR_SLOTS,
        TP_PROGRAMS, TraceEvent, TraceProbe, UPROBE_PROGRAMS,
    },
};

use super::{
    Globals, Histogram, Probe, ProbeTarget, Resolver, Ring, ToolStats, drain, events,
    traceexpr::{
        ArgdistMode, ArgdistSpec, CType, Compiler, ExprError, Format, Hit, Node, Param, Site, TraceProbeSpec, Value,
        conv_is_string, parse_tp_format, parse_usdt_args, render,
    },
    ufunc::{UprobeLink, attach_tracepoint, attach_uprobe},
};
use crate::{ProbeError, Selection};

/// The longest string shown (the kernel reads 127 bytes and a NUL).
pub const MAX_STRING_SIZE: usize = abi::STR_LEN - 1;

/// One attached kernel probe: what user space makes of its events.
#[derive(Debug)]
struct Slot {
    /// The user's probe it serves.
    owner: usize,
    /// The function, USDT probe or tracepoint, as bcc's FUNC column names it.
    func: String,
    /// The entry probe of a return probe whose `$latency` is asked for.
    latency_entry: bool,
    filter: Option<Node>,
    values: Vec<Node>,
}

/// The shared engine: probes resolved, compiled, attached.
#[derive(Debug)]
struct Engine {
    // Detached (closed) before the object is dropped.
    links: Vec<UprobeLink>,
    probe: Probe,
    ring: Ring,
    slots: Vec<Slot>,
    /// Entry times by thread, for `$latency`.
    starts: HashMap<u32, u64>,
    string_size: usize,
    filtered: u64,
}

/// One probe to compile: its spec, signature, whether it returns, its
/// filter and values (and which values are strings).
struct Wanted<'a> {
    spec: &'a super::ProbeSpec,
    ret: bool,
    params: &'a [Param],
    filter: Option<&'a super::traceexpr::Expr>,
    values: Vec<(&'a super::traceexpr::Expr, bool)>,
}

fn tp_fields(category: &str, name: &str) -> Result<HashMap<String, super::traceexpr::TpField>, ProbeError> {
    let path = super::tracefs::root()?.join("events").join(category).join(name).join("format");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| ProbeError::MissingTracepoint { category: category.to_owned(), name: name.to_owned() })?;
    Ok(parse_tp_format(&text))
}

fn invalid(e: ExprError) -> ProbeError {
    ProbeError::InvalidConfig(e.to_string())
}

impl Engine {
    fn start(
        selection: Option<Selection>,
        resolver: &Resolver,
        wanted: Vec<Wanted<'_>>,
        string_size: usize,
    ) -> Result<Self, ProbeError> {
        if string_size == 0 || string_size > MAX_STRING_SIZE {
            return Err(ProbeError::InvalidConfig(format!("string size {string_size}: 1 to {MAX_STRING_SIZE}")));
        }
        // Resolve and compile everything before anything loads: a mistake
        // in the last probe costs no attach.
        let mut slots = Vec::new();
        let mut plan: Vec<(super::ResolvedProbe, TraceProbe, bool)> = Vec::new();
        for (owner, w) in wanted.iter().enumerate() {
            let resolved = resolver.resolve(w.spec).map_err(|e| ProbeError::InvalidConfig(e.to_string()))?;
            for r in resolved {
                let (site, fields, usdt) = match (&r.target, w.spec) {
                    (ProbeTarget::Tracepoint { category, name }, _) => {
                        (Site::Tracepoint, tp_fields(category, name)?, Vec::new())
                    }
                    (_, super::ProbeSpec::Usdt { .. }) => (
                        Site::Usdt,
                        HashMap::new(),
                        parse_usdt_args(&r.usdt_args)
                            .map_err(|e| ProbeError::InvalidConfig(format!("{}: {e}", r.name)))?,
                    ),
                    _ if w.ret => (Site::Return, HashMap::new(), Vec::new()),
                    _ => (Site::Entry, HashMap::new(), Vec::new()),
                };
                let label = format!("{}", w.spec);
                let mut c = Compiler::new(site, w.params, &fields, &usdt, &label);
                let filter = w.filter.map(|f| c.compile(f, false)).transpose().map_err(invalid)?;
                let values = w
                    .values
                    .iter()
                    .map(|(e, string)| c.compile(e, *string))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                let latency = values.iter().chain(&filter).any(Node::uses_latency);
                let config = c.config;
                let func = r.name.clone();
                if latency {
                    let mut entry = TraceProbe::default();
                    for d in &mut entry.derefs {
                        d.reg = u32::MAX;
                    }
                    slots.push(Slot { owner, func: func.clone(), latency_entry: true, filter: None, values: vec![] });
                    plan.push((r.clone(), entry, false));
                }
                slots.push(Slot { owner, func, latency_entry: false, filter, values });
                plan.push((r, config, w.ret));
            }
        }
        if plan.len() > MAX_PROBES {
            return Err(ProbeError::InvalidConfig(format!(
                "{} probes (with $latency's entries): one run attaches at most {MAX_PROBES}",
                plan.len()
            )));
        }
        let mut probe = Probe::load_with(
            // No TOOL_STATS slot: these tools keep their own counters.
            u32::MAX,
            Globals { selection, config: Default::default(), keep: vec![abi::EVENTS, abi::PROBES, abi::STATS] },
            &[],
        )?;
        {
            let map_err = |source| ProbeError::Map { map: abi::PROBES, source };
            let map = crate::object::map_mut(&mut probe.ebpf, abi::PROBES)?;
            let mut array: Array<&mut MapData, TraceProbe> = Array::try_from(map).map_err(map_err)?;
            for (i, (_, config, _)) in plan.iter().enumerate() {
                array.set(i as u32, config, 0).map_err(map_err)?;
            }
        }
        let mut links = Vec::new();
        // Return probes before their entries, as funclatency does: an entry
        // without its return would leave a start behind.
        let mut order: Vec<usize> = (0..plan.len()).collect();
        order.sort_by_key(|&i| !plan[i].2);
        for i in order {
            let (r, _, ret) = &plan[i];
            match &r.target {
                ProbeTarget::Uprobe { .. } => links.push(attach_uprobe(&mut probe, UPROBE_PROGRAMS[i], r, *ret)?),
                ProbeTarget::Tracepoint { category, name } => {
                    attach_tracepoint(&mut probe, TP_PROGRAMS[i], category, name)?
                }
            }
        }
        let ring = probe.ring(abi::EVENTS)?;
        Ok(Self { links, probe, ring, slots, starts: HashMap::new(), string_size, filtered: 0 })
    }

    /// The events of up to `timeout`, each with the slot it came from and
    /// its values (filtered ones counted and left out).
    fn poll(&mut self, timeout: Duration) -> Vec<(usize, TraceEvent, Vec<Value>, bool)> {
        let raw = drain(&mut self.ring, timeout, events::record::<TraceEvent>);
        let mut out = Vec::with_capacity(raw.len());
        for e in raw {
            let Some(slot) = self.slots.get(e.probe as usize) else { continue };
            if slot.latency_entry {
                if self.starts.len() < 1 << 20 {
                    self.starts.insert(e.tid, e.ts_ns);
                }
                continue;
            }
            let latency = if slot.values.iter().chain(&slot.filter).any(Node::uses_latency) {
                match self.starts.remove(&e.tid) {
                    Some(s) => Some(e.ts_ns.saturating_sub(s)),
                    // The call began before the tool.
                    None => continue,
                }
            } else {
                None
            };
            let mut strings = Vec::with_capacity(STR_SLOTS);
            for (i, s) in e.strings.iter().enumerate() {
                let len = s.iter().position(|&b| b == 0).unwrap_or(s.len());
                let cut = len > self.string_size;
                let bytes = &s[..len.min(self.string_size)];
                let truncated = cut || e.flags & (FLAG_STR_TRUNCATED << i) != 0;
                let unreadable = e.flags & (FLAG_STR_UNREADABLE << i) != 0;
                strings.push((perfkit_model::escape_bytes(bytes), truncated, unreadable));
            }
            let mut derefs = e.derefs;
            for (i, d) in derefs.iter_mut().enumerate().take(DEREFS) {
                if e.flags & (FLAG_DEREF_UNREADABLE << i) != 0 {
                    *d = 0;
                }
            }
            let hit = Hit {
                regs: &e.regs,
                derefs: &derefs,
                record: &e.record,
                strings: &strings,
                latency,
                pid: e.pid,
                tid: e.tid,
            };
            if let Some(f) = &slot.filter
                && matches!(f.eval(&hit), Value::Int(0))
            {
                self.filtered += 1;
                continue;
            }
            let mut truncated = false;
            let values = slot
                .values
                .iter()
                .map(|n| {
                    let v = n.eval(&hit);
                    if let Node::Slot(i) = n
                        && let Some((_, cut, unreadable)) = strings.get(*i)
                    {
                        truncated |= *cut;
                        if *unreadable {
                            return Value::Str("[unreadable]".to_owned());
                        }
                        if *cut {
                            return Value::Str(format!("{v}..."));
                        }
                    }
                    v
                })
                .collect();
            out.push((e.probe as usize, e, values, truncated));
        }
        out
    }

    fn stats(&self) -> Result<TraceStats, ProbeError> {
        let map_err = |source| ProbeError::Map { map: abi::STATS, source };
        let stats: PerCpuArray<&MapData, ToolStats> =
            PerCpuArray::try_from(self.probe.map(abi::STATS)?).map_err(map_err)?;
        let mut total = ToolStats::default();
        for cpu in stats.get(&0, 0).map_err(map_err)?.iter() {
            total.merge(cpu);
        }
        Ok(TraceStats { tool: total, filtered: self.filtered, uprobes: self.links.len() })
    }
}

/// Counters of trace and argdist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceStats {
    /// Hits seen in the kernel and hits lost to a full ring buffer.
    pub tool: ToolStats,
    /// Hits the filter left out (in user space).
    pub filtered: u64,
    /// Uprobes attached.
    pub uprobes: usize,
}

/// One hit of a trace probe that passed its filter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TraceMessage {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Process.
    pub pid: u32,
    /// Thread.
    pub tid: u32,
    /// Its name (escaped).
    pub comm: String,
    /// The function, USDT probe (`provider:name`) or tracepoint
    /// (`category:name`).
    pub func: String,
    /// Which probe of the command line (from 0).
    pub probe: usize,
    /// The formatted message (empty without a format).
    pub message: String,
    /// The format's arguments.
    pub values: Vec<Value>,
    /// A string was cut (at the string size, or the 127 bytes read).
    pub truncated: bool,
}

/// What trace traces.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TraceConfig {
    /// The processes traced (`None`: every process).
    pub selection: Option<Selection>,
    /// Where `LIB` names are looked for.
    pub resolver: Resolver,
    /// The probes.
    pub probes: Vec<TraceProbeSpec>,
    /// Strings are cut at this many bytes (bcc's `-Z`; at most
    /// [`MAX_STRING_SIZE`]).
    pub string_size: usize,
}

/// Prints a message at each hit of a probe (bcc's trace).
#[derive(Debug)]
pub struct Tracer {
    engine: Engine,
    formats: Vec<Option<Format>>,
}

impl Tracer {
    /// Resolves, compiles, loads and attaches.
    pub fn start(config: TraceConfig) -> Result<Self, ProbeError> {
        let TraceConfig { selection, resolver, probes, string_size } = config;
        if probes.is_empty() {
            return Err(ProbeError::InvalidConfig("trace needs a probe".into()));
        }
        let wanted = probes
            .iter()
            .map(|p| Wanted {
                spec: &p.spec,
                ret: p.ret,
                params: &p.params,
                filter: p.filter.as_ref(),
                values: p
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a, p.format.as_ref().is_some_and(|f| conv_is_string(f, i))))
                    .collect(),
            })
            .collect();
        let engine = Engine::start(selection, &resolver, wanted, string_size)?;
        Ok(Self { engine, formats: probes.into_iter().map(|p| p.format).collect() })
    }

    /// The hits of up to `timeout` that passed their filters.
    pub fn messages(&mut self, timeout: Duration) -> Vec<TraceMessage> {
        let hits = self.engine.poll(timeout);
        hits.into_iter()
            .map(|(slot, e, values, truncated)| {
                let s = &self.engine.slots[slot];
                let message = self.formats[s.owner].as_ref().map(|f| render(f, &values)).unwrap_or_default();
                TraceMessage {
                    ts_ns: e.ts_ns,
                    pid: e.pid,
                    tid: e.tid,
                    comm: events::text(&e.comm),
                    func: s.func.clone(),
                    probe: s.owner,
                    message,
                    values,
                    truncated,
                }
            })
            .collect()
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        Ok(self.engine.stats()?.tool)
    }

    /// Counters since the start, with the hits filtered out.
    pub fn trace_stats(&self) -> Result<TraceStats, ProbeError> {
        self.engine.stats()
    }
}

/// What argdist aggregates.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ArgDistConfig {
    /// The processes traced (`None`: every process).
    pub selection: Option<Selection>,
    /// Where `LIB` names are looked for.
    pub resolver: Resolver,
    /// The specifiers (`-C` and `-H`).
    pub specs: Vec<ArgdistSpec>,
    /// Strings are cut at this many bytes (bcc's `-z`).
    pub string_size: usize,
}

/// One specifier's aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Aggregate {
    /// `-C`: how many hits had each tuple of values.
    Counts(BTreeMap<Vec<Value>, u64>),
    /// `-H`: log2 slots (slot 0 counts 0 and 1, slot `i` counts `[2^i,
    /// 2^(i+1))`, as [`Histogram::bounds_us`] says, in the value's own
    /// unit); values below zero counted apart.
    Histogram {
        /// Counts by slot.
        hist: Box<Histogram>,
        /// Values below zero.
        negative: u64,
    },
}

/// The most distinct tuples of values one `-C` specifier counts in one
/// interval (bcc's argdist: its hash map's 10240 entries). The values come
/// from a target, which could otherwise make each hit a new key and grow
/// perfkit's memory without bound; hits of tuples beyond these are counted
/// in [`ArgDist::uncounted`].
pub const MAX_DISTINCT: usize = 10240;

/// Counts `values` in `counts`, unless it is a new tuple and `counts`
/// already holds [`MAX_DISTINCT`]: then the hit adds to `uncounted`.
fn count_values(counts: &mut BTreeMap<Vec<Value>, u64>, values: Vec<Value>, uncounted: &mut u64) {
    if let Some(c) = counts.get_mut(&values) {
        *c += 1;
    } else if counts.len() < MAX_DISTINCT {
        counts.insert(values, 1);
    } else {
        *uncounted += 1;
    }
}

/// Counts or histograms of values at probes (bcc's argdist).
#[derive(Debug)]
pub struct ArgDist {
    engine: Engine,
    specs: Vec<ArgdistSpec>,
    aggregates: Vec<Aggregate>,
    uncounted: u64,
}

fn empty(mode: ArgdistMode) -> Aggregate {
    match mode {
        ArgdistMode::Count => Aggregate::Counts(BTreeMap::new()),
        ArgdistMode::Histogram => Aggregate::Histogram { hist: Box::new(Histogram::new(0, 0)), negative: 0 },
    }
}

impl ArgDist {
    /// Resolves, compiles, loads and attaches.
    pub fn start(config: ArgDistConfig) -> Result<Self, ProbeError> {
        let ArgDistConfig { selection, resolver, specs, string_size } = config;
        if specs.is_empty() {
            return Err(ProbeError::InvalidConfig("argdist needs a -C or -H specifier".into()));
        }
        let wanted = specs
            .iter()
            .map(|s| Wanted {
                spec: &s.spec,
                ret: s.ret,
                params: &s.params,
                filter: s.filter.as_ref(),
                values: s.exprs.iter().zip(&s.types).map(|(e, t)| (e, *t == CType::Str)).collect(),
            })
            .collect();
        let engine = Engine::start(selection, &resolver, wanted, string_size)?;
        let aggregates = specs.iter().map(|s| empty(s.mode)).collect();
        Ok(Self { engine, specs, aggregates, uncounted: 0 })
    }

    /// The specifiers, in order.
    pub fn specs(&self) -> &[ArgdistSpec] {
        &self.specs
    }

    /// Reads the hits of up to `timeout` into the aggregates.
    pub fn poll(&mut self, timeout: Duration) {
        for (slot, _, values, _) in self.engine.poll(timeout) {
            let owner = self.engine.slots[slot].owner;
            let types = &self.specs[owner].types;
            let values: Vec<Value> = values
                .into_iter()
                .zip(types.iter().copied().chain(std::iter::repeat(CType::Signed(8))))
                .map(|(v, t)| match (v, t) {
                    (Value::Int(i), CType::Signed(_) | CType::Unsigned(_)) => Value::Int(t.cast(i as u64)),
                    (v, _) => v,
                })
                .collect();
            match &mut self.aggregates[owner] {
                Aggregate::Counts(m) => count_values(m, values, &mut self.uncounted),
                Aggregate::Histogram { hist, negative } => match values.first() {
                    Some(Value::Int(v)) if *v < 0 => *negative += 1,
                    Some(Value::Int(v)) => {
                        let slot = log2_slot((*v).min(u64::MAX as i128) as u64) as usize;
                        hist.counts[slot.min(HIST_SLOTS - 1)] += 1;
                    }
                    _ => {}
                },
            }
        }
    }

    /// Each specifier's aggregate since the start or the last `take` that
    /// cleared them (`clear`; bcc clears at each interval unless `-c`).
    pub fn take(&mut self, clear: bool) -> Vec<Aggregate> {
        let out = self.aggregates.clone();
        if clear {
            self.aggregates = self.specs.iter().map(|s| empty(s.mode)).collect();
        }
        out
    }

    /// Counters since the start.
    pub fn stats(&self) -> Result<ToolStats, ProbeError> {
        Ok(self.engine.stats()?.tool)
    }

    /// Hits since the start left out of a `-C` count because their tuple
    /// was new and the interval's count already held [`MAX_DISTINCT`].
    pub fn uncounted(&self) -> u64 {
        self.uncounted
    }

    /// Counters since the start, with the hits filtered out.
    pub fn trace_stats(&self) -> Result<TraceStats, ProbeError> {
        self.engine.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_at_most_max_distinct_tuples_and_the_rest_apart() {
        let mut counts = BTreeMap::new();
        let mut uncounted = 0;
        // A hostile target: every hit a new value, twice the cap.
        for i in 0..2 * MAX_DISTINCT as i128 {
            count_values(&mut counts, vec![Value::Int(i), Value::Str(format!("s{i}"))], &mut uncounted);
        }
        assert_eq!(counts.len(), MAX_DISTINCT);
        assert_eq!(uncounted, MAX_DISTINCT as u64);
        // Tuples already counted still count once the cap is reached.
        count_values(&mut counts, vec![Value::Int(7), Value::Str("s7".into())], &mut uncounted);
        assert_eq!(counts[&vec![Value::Int(7), Value::Str("s7".into())]], 2);
        assert_eq!(counts.len(), MAX_DISTINCT);
        assert_eq!(uncounted, MAX_DISTINCT as u64);
    }
}
