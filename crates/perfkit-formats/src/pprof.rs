//! pprof: the gzipped protobuf profile of `go tool pprof`, Grafana
//! Pyroscope, Parca and Google Cloud Profiler.
//!
//! perfkit writes:
//! - sample types `samples/count` and, when the sampling frequency is
//!   known, `cpu/nanoseconds` (count × period), with `period_type`
//!   `cpu/nanoseconds` and `period` 10⁹ / frequency;
//! - one `Location` per physical frame, its `Line`s listing the functions
//!   inlined there innermost first, as pprof specifies, with file and line
//!   where debug information gave them;
//! - kernel functions named with the `_[k]` suffix, as in folded stacks;
//! - the thread name as the root frame of each stack (as flame graphs
//!   show it) and as the label `thread`;
//! - `duration_nanos`, and the command line as a comment;
//! - every string with its control characters as `\xNN`, as in every
//!   format perfkit writes (names read from pprof keep theirs until they
//!   are written again).
//!
//! The message definitions follow `profile.proto` of
//! github.com/google/pprof; they are written out with `prost`'s derive so
//! that building needs no `protoc`.

use std::{
    collections::HashMap,
    io::{Read, Write},
    sync::Arc,
    time::Duration,
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use perfkit_model::{Frame, FrameKind, Location as SourceLocation, Profile, Stack};
use prost::Message;

use crate::{Format, FormatError};

/// `profile.proto`'s messages, as perfkit writes and reads them.
#[allow(missing_docs)]
pub mod proto {
    /// The whole profile.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// A sample type or unit, as string table indices.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack (leaf first) and its values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A sample label.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    /// A mapped binary.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// A physical frame: its lines list inlined functions innermost first.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    /// A function at a line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    /// A function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

#[derive(Default)]
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Self::default();
        s.get("");
        s
    }
    /// The index of `s`, with its control characters written as `\xNN`
    /// (as in every format perfkit writes).
    fn get(&mut self, s: &str) -> i64 {
        let s = &*perfkit_model::escape_control(s);
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// A location's identity: its (function, line) list, mapping and address.
type LocationKey = (Vec<(u64, i64)>, u64, u64);

struct Builder {
    strings: Strings,
    functions: Vec<proto::Function>,
    function_ids: HashMap<(String, String), u64>,
    locations: Vec<proto::Location>,
    location_ids: HashMap<LocationKey, u64>,
    mappings: Vec<proto::Mapping>,
    mapping_ids: HashMap<(Arc<str>, Option<Arc<str>>), u64>,
}

impl Builder {
    fn function(&mut self, name: &str, file: &str) -> u64 {
        if let Some(&id) = self.function_ids.get(&(name.to_owned(), file.to_owned())) {
            return id;
        }
        let id = self.functions.len() as u64 + 1;
        let (name_idx, file_idx) = (self.strings.get(name), self.strings.get(file));
        self.functions.push(proto::Function {
            id,
            name: name_idx,
            system_name: name_idx,
            filename: file_idx,
            start_line: 0,
        });
        self.function_ids.insert((name.to_owned(), file.to_owned()), id);
        id
    }

    /// A location for a physical frame and what was inlined into it,
    /// given outermost first.
    fn location(&mut self, frames: &[&Frame]) -> u64 {
        let mut lines: Vec<(u64, i64)> = frames
            .iter()
            .map(|f| {
                let name = if f.kind == FrameKind::Kernel { f.folded_name() } else { f.name.to_string() };
                let (file, line) = f.location.as_ref().map_or(("", 0), |l| (&*l.file, i64::from(l.line)));
                (self.function(&name, file), line)
            })
            .collect();
        lines.reverse();
        // An unresolved frame keeps its file and offset: a Mapping and an
        // address (the file offset, in a mapping that starts at 0), so that
        // a tool with the binary's symbols can resolve it later.
        let (mapping_id, address) = match frames.first().and_then(|f| f.origin.as_deref()) {
            Some(o) => (self.mapping(o), o.file_offset),
            None => (0, 0),
        };
        let key = (lines, mapping_id, address);
        if let Some(&id) = self.location_ids.get(&key) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let line = key.0.iter().map(|&(function_id, line)| proto::Line { function_id, line, column: 0 }).collect();
        self.locations.push(proto::Location { id, mapping_id, address, line, is_folded: false });
        self.location_ids.insert(key, id);
        id
    }

    fn mapping(&mut self, o: &perfkit_model::Origin) -> u64 {
        let key = (o.path.clone(), o.build_id.clone());
        if let Some(&id) = self.mapping_ids.get(&key) {
            return id;
        }
        let id = self.mappings.len() as u64 + 1;
        let filename = self.strings.get(&o.path);
        let build_id = o.build_id.as_deref().map_or(0, |b| self.strings.get(b));
        self.mappings.push(proto::Mapping {
            id,
            memory_start: 0,
            memory_limit: u64::MAX,
            file_offset: 0,
            filename,
            build_id,
            has_functions: false,
            has_filenames: false,
            has_line_numbers: false,
            has_inline_frames: false,
        });
        self.mapping_ids.insert(key, id);
        id
    }
}

/// Builds the pprof message for `profile`.
pub fn to_proto(profile: &Profile) -> proto::Profile {
    let mut b = Builder {
        strings: Strings::new(),
        functions: Vec::new(),
        function_ids: HashMap::new(),
        locations: Vec::new(),
        location_ids: HashMap::new(),
        mappings: Vec::new(),
        mapping_ids: HashMap::new(),
    };
    let hz = profile.meta.frequency_hz;
    let period = if hz > 0 { 1_000_000_000 / hz as i64 } else { 0 };
    let mut sample_type = vec![proto::ValueType { r#type: b.strings.get("samples"), unit: b.strings.get("count") }];
    let cpu = proto::ValueType { r#type: b.strings.get("cpu"), unit: b.strings.get("nanoseconds") };
    if period > 0 {
        sample_type.push(cpu.clone());
    }
    let thread_key = b.strings.get("thread");

    // Merge identical stacks first: one sample per unique stack.
    let mut merged: HashMap<(&str, &[Frame]), u64> = HashMap::new();
    for s in &profile.stacks {
        *merged.entry((s.root.as_str(), s.frames.as_slice())).or_default() += s.count;
    }
    let mut merged: Vec<_> = merged.into_iter().collect();
    merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let mut samples = Vec::with_capacity(merged.len());
    for ((thread, frames), count) in merged {
        let mut ids = Vec::new();
        ids.push(b.location(&[&Frame::user(thread)]));
        let mut i = 0;
        while i < frames.len() {
            // A physical frame and the inlined frames that follow it.
            let mut j = i + 1;
            while j < frames.len() && frames[j].kind == FrameKind::Inlined {
                j += 1;
            }
            let group: Vec<&Frame> = frames[i..j].iter().collect();
            ids.push(b.location(&group));
            i = j;
        }
        ids.reverse();
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let mut value = vec![count];
        if period > 0 {
            value.push(count.saturating_mul(period));
        }
        let label = vec![proto::Label { key: thread_key, str: b.strings.get(thread), num: 0, num_unit: 0 }];
        samples.push(proto::Sample { location_id: ids, value, label });
    }
    let comment = if profile.meta.command.is_empty() {
        Vec::new()
    } else {
        vec![b.strings.get(&format!("perfkit profile: {}", profile.meta.command))]
    };
    proto::Profile {
        sample_type,
        sample: samples,
        mapping: b.mappings,
        location: b.locations,
        function: b.functions,
        string_table: b.strings.table,
        drop_frames: 0,
        keep_frames: 0,
        time_nanos: 0,
        duration_nanos: i64::try_from(profile.meta.duration.as_nanos()).unwrap_or(i64::MAX),
        period_type: (period > 0).then_some(cpu),
        period,
        comment,
        default_sample_type: 0,
    }
}

/// Writes `profile` as gzipped pprof.
pub fn write<W: Write>(profile: &Profile, out: W) -> Result<(), FormatError> {
    let bytes = to_proto(profile).encode_to_vec();
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?.flush()?;
    Ok(())
}

/// Reads pprof, gzipped or not, within the process's memory budget
/// ([`Budget::process`](crate::Budget::process)).
pub fn read(data: &[u8]) -> Result<Profile, FormatError> {
    read_with(data, crate::Budget::process())
}

/// The most a gzipped profile may unfold to, whatever the budget: the
/// compressed profiles of real programs are a few MiB.
const MAX_DECOMPRESSED: u64 = 1 << 30;

/// Reads pprof within a memory budget. The value used is the profile's
/// default sample type, or the first. Stacks rooted at their `thread` label
/// (as perfkit writes them) get that thread name back; others get the
/// label, or the main binary's name.
///
/// Everything built is charged before it is built: the decompressed bytes
/// as they come (a gzip bomb is an error), then the decoded messages, from
/// a walk over the protobuf that counts every message and repeated field
/// before prost decodes any (an empty `Sample` is 2 bytes of input and
/// about 150 bytes of memory), then the frames the samples expand to
/// (locations named over and over cannot blow a small input up).
pub fn read_with(data: &[u8], budget: &crate::Budget) -> Result<Profile, FormatError> {
    let malformed = |reason: String| FormatError::Malformed { format: Format::Pprof, reason };
    let mut raw = Vec::new();
    let mut input = budget.start("the decompressed pprof");
    let bytes: &[u8] = if data.starts_with(&[0x1f, 0x8b]) {
        let mut gz = GzDecoder::new(data).take(MAX_DECOMPRESSED + 1);
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            let n = match gz.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(malformed(format!("gzip: {e}"))),
            };
            if raw.len() + n > raw.capacity() {
                // Grown by hand, so the charge is what is allocated.
                let more = (raw.capacity()).max(n).max(1 << 20);
                input.grow(more as u64)?;
                raw.reserve_exact(raw.capacity() + more - raw.len());
            }
            raw.extend_from_slice(&chunk[..n]);
        }
        if raw.len() as u64 > MAX_DECOMPRESSED {
            return Err(malformed(format!("it unfolds to more than {} MiB", MAX_DECOMPRESSED >> 20)));
        }
        &raw
    } else {
        data
    };
    let decoded = scan::decoded_size(bytes).map_err(malformed)?;
    let mut messages = budget.charge(decoded, "the pprof's decoded messages")?;
    let p = proto::Profile::decode(bytes).map_err(|e| malformed(e.to_string()))?;
    drop(raw);
    input.shrink(input.bytes());
    // What the conversion builds below: shared strings, the functions' and
    // mappings' indexes.
    let strings: u64 = p.string_table.iter().map(|s| 16 + 16 + s.len() as u64).sum();
    messages.grow(strings + 48 * (p.function.len() + p.mapping.len() + p.location.len()) as u64)?;
    let string = |i: i64| -> Result<&str, FormatError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| p.string_table.get(i))
            .map(String::as_str)
            .ok_or_else(|| malformed(format!("string index {i} out of range")))
    };
    // Each string once: frames share their names.
    let shared: Vec<std::sync::Arc<str>> = p.string_table.iter().map(|s| std::sync::Arc::from(s.as_str())).collect();
    let shared_string = |i: i64| -> Result<std::sync::Arc<str>, FormatError> {
        usize::try_from(i)
            .ok()
            .and_then(|i| shared.get(i))
            .cloned()
            .ok_or_else(|| malformed(format!("string index {i} out of range")))
    };
    let value_index = if p.default_sample_type != 0 {
        p.sample_type.iter().position(|t| t.r#type == p.default_sample_type).unwrap_or(0)
    } else {
        0
    };
    let functions: HashMap<u64, &proto::Function> = p.function.iter().map(|f| (f.id, f)).collect();
    let mappings: HashMap<u64, &proto::Mapping> = p.mapping.iter().map(|m| (m.id, m)).collect();
    let module = |mapping_id: u64| -> Option<String> {
        let m = mappings.get(&mapping_id)?;
        let name = string(m.filename).ok()?;
        Some(name.rsplit('/').next().unwrap_or(name).to_owned()).filter(|n| !n.is_empty())
    };
    let default_thread = p.mapping.first().and_then(|m| module(m.id)).unwrap_or_else(|| "pprof".to_owned());

    // Each location's frames, outermost first.
    let mut locations: HashMap<u64, Vec<Frame>> = HashMap::new();
    for loc in &p.location {
        let lines = loc.line.iter().filter_map(|l| functions.get(&l.function_id)).map(|f| {
            let name = usize::try_from(f.name).ok().and_then(|i| p.string_table.get(i)).map_or(0, String::len);
            crate::frame_cost(name) + 48
        });
        messages.grow(lines.fold(crate::frame_cost(0) + 48, u64::saturating_add))?;
        let mut frames = Vec::new();
        for (k, line) in loc.line.iter().rev().enumerate() {
            let f = functions
                .get(&line.function_id)
                .ok_or_else(|| malformed(format!("location {} names function {}", loc.id, line.function_id)))?;
            let name = string(f.name)?;
            let file = shared_string(f.filename)?;
            let mut frame = if k > 0 { Frame::inlined(shared_string(f.name)?) } else { Frame::from_folded(name) };
            if !file.is_empty() {
                frame = frame.at(Some(SourceLocation { file, line: line.line.try_into().unwrap_or(0) }));
            }
            frames.push(frame);
        }
        if frames.is_empty() {
            frames.push(Frame::unknown_user(module(loc.mapping_id).as_deref()));
        }
        locations.insert(loc.id, frames);
    }

    let thread_key = p.string_table.iter().position(|s| s == "thread").map(|i| i as i64);
    let mut profile = Profile::default();
    let frame = std::mem::size_of::<Frame>() as u64;
    for (n, s) in p.sample.iter().enumerate() {
        let count = s.value.get(value_index).copied().unwrap_or(0);
        if count <= 0 {
            continue;
        }
        let mut frames = Vec::new();
        for id in s.location_id.iter().rev() {
            let loc = locations.get(id).ok_or_else(|| malformed(format!("sample {n} names location {id}")))?;
            if frames.len() + loc.len() > crate::MAX_STACK_DEPTH {
                return Err(malformed(format!("sample {n} is deeper than {} frames", crate::MAX_STACK_DEPTH)));
            }
            messages.grow(frame * loc.len() as u64)?;
            frames.extend(loc.iter().cloned());
        }
        let label = thread_key.and_then(|k| s.label.iter().find(|l| l.key == k)).map(|l| string(l.str)).transpose()?;
        messages.grow(crate::STACK_COST + label.map_or(16, |l| l.len() as u64))?;
        let thread = match label {
            Some(t) if frames.first().is_some_and(|f| &*f.name == t && f.kind == FrameKind::User) => {
                frames.remove(0);
                t.to_owned()
            }
            Some(t) => t.to_owned(),
            None => default_thread.clone(),
        };
        profile.push(Stack::new(thread, frames, count as u64));
    }
    profile.meta.duration = Duration::from_nanos(p.duration_nanos.max(0) as u64);
    if p.period > 0 && p.period_type.as_ref().is_some_and(|t| string(t.unit).ok() == Some("nanoseconds")) {
        profile.meta.frequency_hz = (1_000_000_000 / p.period) as u64;
    }
    if let Some(c) = p.comment.first().and_then(|&c| string(c).ok()) {
        profile.meta.command = c.strip_prefix("perfkit profile: ").unwrap_or(c).to_owned();
    }
    Ok(profile)
}

/// A walk over protobuf's wire format that counts what decoding would
/// build, without building it.
mod scan {
    use std::mem::size_of;

    use super::proto;

    /// One field's value.
    enum Value<'a> {
        Varint,
        Fixed,
        Bytes(&'a [u8]),
    }

    fn varint(buf: &[u8], at: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *buf.get(*at).ok_or("a varint runs past the end")?;
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    /// Calls `f` with each field of the message in `buf`: linear in its
    /// length.
    fn walk<'a>(buf: &'a [u8], mut f: impl FnMut(u64, Value<'a>) -> Result<(), String>) -> Result<(), String> {
        let mut at = 0;
        while at < buf.len() {
            let key = varint(buf, &mut at)?;
            let value = match key & 7 {
                0 => {
                    varint(buf, &mut at)?;
                    Value::Varint
                }
                1 | 5 => {
                    at += if key & 7 == 1 { 8 } else { 4 };
                    if at > buf.len() {
                        return Err("a fixed-size field runs past the end".into());
                    }
                    Value::Fixed
                }
                2 => {
                    let len = usize::try_from(varint(buf, &mut at)?).map_err(|_| "a length overflows")?;
                    let end = at.checked_add(len).filter(|&e| e <= buf.len()).ok_or("a field runs past the end")?;
                    let bytes = &buf[at..end];
                    at = end;
                    Value::Bytes(bytes)
                }
                w => return Err(format!("wire type {w} (groups are not pprof)")),
            };
            f(key >> 3, value)?;
        }
        Ok(())
    }

    /// Repeated scalars: one element per varint (packed or not).
    fn scalars(value: &Value<'_>) -> u64 {
        match value {
            Value::Bytes(b) => b.iter().filter(|&&x| x < 0x80).count() as u64,
            _ => 1,
        }
    }

    /// Each element twice its size: vectors grow by doubling.
    fn vec_of<T>(n: u64) -> u64 {
        2 * n * size_of::<T>() as u64
    }

    /// Bytes that decoding `buf` as a pprof `Profile` allocates, at most
    /// (up to the allocator's rounding): every message, repeated field and
    /// string, counted per occurrence. Linear in `buf`: each byte is looked
    /// at once at each of three nesting levels.
    pub(super) fn decoded_size(buf: &[u8]) -> Result<u64, String> {
        let mut total = 0u64;
        walk(buf, |field, value| {
            total += match (field, value) {
                (1 | 11, _) => vec_of::<proto::ValueType>(1),
                (2, Value::Bytes(b)) => {
                    let mut n = vec_of::<proto::Sample>(1);
                    walk(b, |f, v| {
                        n += match f {
                            1 | 2 => vec_of::<u64>(scalars(&v)),
                            3 => vec_of::<proto::Label>(1),
                            _ => 0,
                        };
                        Ok(())
                    })?;
                    n
                }
                (3, _) => vec_of::<proto::Mapping>(1),
                (4, Value::Bytes(b)) => {
                    let mut n = vec_of::<proto::Location>(1);
                    walk(b, |f, _| {
                        n += if f == 4 { vec_of::<proto::Line>(1) } else { 0 };
                        Ok(())
                    })?;
                    n
                }
                (5, _) => vec_of::<proto::Function>(1),
                (6, Value::Bytes(b)) => vec_of::<String>(1) + b.len() as u64,
                (13, v) => vec_of::<i64>(scalars(&v)),
                (2 | 4, _) => return Err(format!("field {field} is not a message")),
                _ => 0,
            };
            Ok(())
        })?;
        Ok(total)
    }

    #[cfg(test)]
    mod tests {
        use prost::Message;

        use super::*;

        #[test]
        fn counts_empty_messages_and_strings() {
            // 1000 empty samples: 2 bytes each on the wire.
            let wire: Vec<u8> = [0x12, 0x00].repeat(1000);
            assert_eq!(decoded_size(&wire).unwrap(), 1000 * vec_of::<proto::Sample>(1));
            let strings: Vec<u8> = [0x32, 0x00].repeat(1000);
            assert_eq!(decoded_size(&strings).unwrap(), 1000 * vec_of::<String>(1));
            // What a real profile decodes to is counted too.
            let p = proto::Profile {
                sample: vec![proto::Sample { location_id: vec![1, 2, 300], value: vec![5], label: vec![] }],
                location: vec![proto::Location { id: 1, line: vec![proto::Line::default(); 2], ..Default::default() }],
                string_table: vec!["".into(), "main".into()],
                ..Default::default()
            };
            let n = decoded_size(&p.encode_to_vec()).unwrap();
            assert_eq!(
                n,
                vec_of::<proto::Sample>(1)
                    + vec_of::<u64>(4)
                    + vec_of::<proto::Location>(1)
                    + vec_of::<proto::Line>(2)
                    + vec_of::<String>(2)
                    + 4
            );
            assert!(decoded_size(&[0x12, 0x05, 0x00]).is_err(), "a length past the end");
            assert!(decoded_size(&[0x13]).is_err(), "a group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        let mut p = Profile::default();
        let at = |file: &str, line| Some(SourceLocation { file: file.into(), line });
        let main = Frame::user("main").at(at("/src/app.c", 30));
        let step = Frame::inlined("step").at(at("/src/app.c", 12));
        p.push(Stack::new("app", vec![main.clone(), step.clone(), Frame::kernel("schedule")], 6));
        p.push(Stack::new("app", vec![main.clone(), Frame::user("work").at(at("/src/work.c", 7))], 3));
        p.push(Stack::new("app", vec![main, step], 1));
        p.meta.frequency_hz = 100;
        p.meta.duration = Duration::from_secs(2);
        p.meta.command = "./app".into();
        p
    }

    #[test]
    fn writes_sample_types_period_and_inlined_lines() {
        let proto = to_proto(&sample());
        let s = |i: i64| proto.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        let types: Vec<_> = proto.sample_type.iter().map(|t| (s(t.r#type), s(t.unit))).collect();
        assert_eq!(types, vec![("samples", "count"), ("cpu", "nanoseconds")]);
        assert_eq!(proto.period, 10_000_000);
        assert_eq!(proto.duration_nanos, 2_000_000_000);
        let first = &proto.sample[0];
        assert_eq!(first.value, vec![6, 60_000_000]);
        // Leaf first: schedule_[k], then main with step inlined, then the thread.
        let names = |loc_id: u64| -> Vec<&str> {
            proto.location[loc_id as usize - 1]
                .line
                .iter()
                .map(|l| s(proto.function[l.function_id as usize - 1].name))
                .collect()
        };
        let stack: Vec<Vec<&str>> = first.location_id.iter().map(|&id| names(id)).collect();
        assert_eq!(stack, vec![vec!["schedule_[k]"], vec!["step", "main"], vec!["app"]]);
        let step_line = &proto.location[first.location_id[1] as usize - 1].line[0];
        assert_eq!(step_line.line, 12);
    }

    #[test]
    fn unresolved_frames_carry_a_mapping_and_their_file_offset() {
        use perfkit_model::{Origin, Stack};
        let origin =
            |off| Origin { path: "/usr/lib/liblzma.so.5".into(), build_id: Some("abcd".into()), file_offset: off };
        let mut p = Profile::default();
        p.push(Stack::new(
            "xz",
            vec![Frame::user("main"), Frame::user("liblzma.so.5+0x15be0").from_origin(Some(origin(0x14be0)))],
            3,
        ));
        p.push(Stack::new(
            "xz",
            vec![Frame::user("main"), Frame::user("liblzma.so.5+0x15bc9").from_origin(Some(origin(0x14bc9)))],
            2,
        ));
        let proto = to_proto(&p);
        assert_eq!(proto.mapping.len(), 1, "one mapping per file");
        let m = &proto.mapping[0];
        assert_eq!(proto.string_table[m.filename as usize], "/usr/lib/liblzma.so.5");
        assert_eq!(proto.string_table[m.build_id as usize], "abcd");
        let mut addrs: Vec<u64> = proto.location.iter().filter(|l| l.mapping_id == m.id).map(|l| l.address).collect();
        addrs.sort();
        assert_eq!(addrs, vec![0x14bc9, 0x14be0], "two hot spots stay two locations");
    }

    #[test]
    fn round_trips_through_gzip() {
        let mut out = Vec::new();
        write(&sample(), &mut out).unwrap();
        assert_eq!(&out[..2], &[0x1f, 0x8b]);
        let back = read(&out).unwrap();
        assert_eq!(back.folded_counts(), sample().folded_counts());
        assert_eq!(back.meta.frequency_hz, 100);
        assert_eq!(back.meta.command, "./app");
        let work = back.stacks.iter().flat_map(|s| &s.frames).find(|f| &*f.name == "work").unwrap();
        assert_eq!(work.location.as_deref(), Some(&SourceLocation { file: "/src/work.c".into(), line: 7 }));
    }

    #[test]
    fn gzip_bombs_and_location_loops_are_bounded() {
        // 64 MiB of zeros compress to about 64 KiB.
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let budget = crate::Budget::new(16 << 20);
        let err = read_with(&bomb, &budget).unwrap_err();
        assert!(matches!(err, FormatError::Budget(_)), "{err}");
        assert_eq!(budget.used(), 0, "a failed read releases what it charged");
        // A location with many lines, named by many samples many times.
        let lines = vec![proto::Line { function_id: 1, line: 0, column: 0 }; 200];
        let p = proto::Profile {
            string_table: vec!["".into(), "samples".into(), "count".into(), "f".repeat(1000)],
            sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
            function: vec![proto::Function { id: 1, name: 3, ..Default::default() }],
            location: vec![proto::Location { id: 1, line: lines, ..Default::default() }],
            sample: vec![proto::Sample { location_id: vec![1; 60], value: vec![1], label: vec![] }; 500],
            ..Default::default()
        };
        let bytes = p.encode_to_vec();
        let budget = crate::Budget::new(64 << 20);
        let err = read_with(&bytes, &budget).unwrap_err();
        assert!(matches!(err, FormatError::Budget(_) | FormatError::Malformed { .. }), "{err}");
    }

    /// Small inputs of many empty messages or strings: refused before they
    /// are decoded (they took gigabytes), within the budget.
    #[test]
    fn empty_messages_and_strings_are_charged_before_decoding() {
        for (tag, what) in [(0x12u8, "samples"), (0x32, "strings"), (0x22, "locations"), (0x2a, "functions")] {
            // 16 Mi empty messages: 32 MiB of protobuf, gzipped to ~32 KiB.
            let mut gz = GzEncoder::new(Vec::new(), Compression::best());
            let chunk = [tag, 0].repeat(1 << 20);
            for _ in 0..16 {
                gz.write_all(&chunk).unwrap();
            }
            let small = gz.finish().unwrap();
            assert!(small.len() < 200 << 10, "{}", small.len());
            let budget = crate::Budget::new(256 << 20);
            let err = read_with(&small, &budget).unwrap_err();
            assert!(matches!(err, FormatError::Budget(_)), "{what}: {err}");
            assert!(err.to_string().contains("decoded messages") && err.to_string().contains("256 MiB"), "{err}");
            assert_eq!(budget.used(), 0);
        }
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let err = read(&[0x1f, 0x8b, 0, 1, 2]).unwrap_err();
        assert!(err.to_string().starts_with("malformed pprof input: gzip"), "{err}");
        assert!(read(&[0x0a, 0xff, 0xff, 0xff]).is_err());
    }
}
