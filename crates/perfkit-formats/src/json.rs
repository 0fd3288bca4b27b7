//! perfkit's JSON profile schema, for scripts.
//!
//! ```json
//! {
//!   "perfkit_profile": 1,
//!   "meta": {
//!     "command": "./server --port 8080",
//!     "duration_seconds": 10.0,
//!     "frequency_hz": 99,
//!     "unit": "samples",
//!     "total_samples": 1975,
//!     "lost_stacks": 0,
//!     "dropped_samples": 0
//!   },
//!   "frames": [
//!     { "name": "main", "kind": "user", "file": "/src/server.c", "line": 40 },
//!     { "name": "parse_request", "kind": "inlined" },
//!     { "name": "do_syscall_64", "kind": "kernel" }
//!   ],
//!   "stacks": [
//!     { "thread": "server", "frames": [0, 1], "count": 753 }
//!   ]
//! }
//! ```
//!
//! - `perfkit_profile` is the schema version (1); readers reject others.
//! - `frames` lists each distinct frame once; `kind` is `user`, `inlined`
//!   (inlined into the frame before it on the stack) or `kernel`; `file` and
//!   `line` are present when debug information gave them.
//! - `stacks[].frames` are indices into `frames`, root (outermost) first;
//!   `thread` is the thread name, the root of the flame graph.
//! - In `meta`, `duration_seconds` and `frequency_hz` are 0 when unknown
//!   (a profile converted from folded stacks, or an off-CPU one).
//! - `unit` says what each stack's `count` measures: `samples`, or
//!   `microseconds` (off-CPU time, or on- and off-CPU time together); the
//!   total is `total_samples` or `total_us` accordingly.
//! - A frame that could not be symbolized (named `module+0xADDR`) also has
//!   `module` (the file's path), `build_id` (when the file has one) and
//!   `file_offset`, so that a tool with the binary's symbols can resolve
//!   it.

use std::{borrow::Cow, cell::RefCell, collections::HashMap, io::Write, marker::PhantomData, time::Duration};

use perfkit_model::{CountUnit, Frame, FrameKind, Location, Profile, ProfileMeta, Stack, escape_control};
use perfkit_safeio::{BudgetError, Charge};
use serde::{Deserialize, Serialize, de};

use crate::{Format, FormatError};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    perfkit_profile: u32,
    meta: Meta,
    frames: Charged<JsonFrame>,
    stacks: Charged<JsonStack>,
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    #[serde(default)]
    command: String,
    #[serde(default)]
    duration_seconds: f64,
    #[serde(default)]
    frequency_hz: u64,
    /// What a stack's `count` measures: `samples` or `microseconds`
    /// (absent in files written before it: samples).
    #[serde(default = "samples")]
    unit: String,
    /// The sum of the counts, with `unit` `samples`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_samples: Option<u64>,
    /// The sum of the counts, with `unit` `microseconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_us: Option<u64>,
    #[serde(default)]
    lost_stacks: u64,
    #[serde(default)]
    dropped_samples: u64,
}

fn samples() -> String {
    CountUnit::Samples.name().to_owned()
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Hash, Clone)]
struct JsonFrame {
    name: String,
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
    /// An unresolved frame's file (its path as the process mapped it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    module: Option<String>,
    /// That file's GNU build id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build_id: Option<String>,
    /// The frame's offset in that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_offset: Option<u64>,
    /// A marker frame's reason (`[truncated: REASON]`): the stack ended
    /// before its outermost frame. Written, not needed to read (the name
    /// says it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    truncated: Option<String>,
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Hash, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    User,
    Inlined,
    Kernel,
    Jit,
    Interpreted,
}

#[derive(Serialize, Deserialize)]
struct JsonStack {
    thread: String,
    frames: Charged<usize>,
    count: u64,
}

/// What an element costs once decoded.
trait Cost {
    fn cost(&self) -> u64;
}

impl Cost for JsonFrame {
    fn cost(&self) -> u64 {
        let len = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64);
        std::mem::size_of::<Self>() as u64
            + self.name.len() as u64
            + len(&self.file)
            + len(&self.module)
            + len(&self.build_id)
            + len(&self.truncated)
    }
}

impl Cost for JsonStack {
    fn cost(&self) -> u64 {
        // Its frames were charged as they were read.
        std::mem::size_of::<Self>() as u64 + self.thread.len() as u64
    }
}

impl Cost for usize {
    fn cost(&self) -> u64 {
        8
    }
}

thread_local! {
    /// The charge of the JSON document being read on this thread, and the
    /// refusal that stopped it: serde's `Deserialize` takes no context.
    static READING: RefCell<(Option<Charge>, Option<BudgetError>)> = const { RefCell::new((None, None)) };
}

/// A vector whose elements are charged to the budget of the read in
/// progress as they are decoded (twice their cost: vectors grow by
/// doubling), so that a document cannot decode to more than the budget.
#[derive(Serialize, Default)]
#[serde(transparent)]
struct Charged<T>(Vec<T>);

impl<'de, T: Deserialize<'de> + Cost> Deserialize<'de> for Charged<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Cost> de::Visitor<'de> for Visit<T> {
            type Value = Charged<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element::<T>()? {
                    charge(2 * x.cost()).map_err(de::Error::custom)?;
                    out.push(x);
                }
                Ok(Charged(out))
            }
        }
        d.deserialize_seq(Visit(PhantomData))
    }
}

/// Charges `bytes` to the read in progress (none: nothing to charge).
fn charge(bytes: u64) -> Result<(), String> {
    READING.with(|r| {
        let mut r = r.borrow_mut();
        let Some(c) = r.0.as_mut() else { return Ok(()) };
        c.grow(bytes).map_err(|e| {
            let text = e.to_string();
            r.1 = Some(e);
            text
        })
    })
}

/// A name as JSON carries it: control characters as `\xNN`, as in every
/// format perfkit writes ([`escape_control`]), so that a script printing
/// it prints no escape sequence.
fn text(s: &str) -> String {
    match escape_control(s) {
        Cow::Borrowed(s) => s.to_owned(),
        Cow::Owned(s) => s,
    }
}

/// Writes `profile` as perfkit JSON (merged: one entry per unique stack).
/// Names with control characters are written with them as `\xNN`.
pub fn write<W: Write>(profile: &Profile, mut out: W) -> Result<(), FormatError> {
    let mut frames: Vec<JsonFrame> = Vec::new();
    let mut index: HashMap<JsonFrame, usize> = HashMap::new();
    let mut merged: HashMap<(String, Vec<usize>), u64> = HashMap::new();
    for stack in &profile.stacks {
        let ids = stack
            .frames
            .iter()
            .map(|f| {
                let jf = JsonFrame {
                    name: text(&f.name),
                    kind: match f.kind {
                        FrameKind::User => Kind::User,
                        FrameKind::Inlined => Kind::Inlined,
                        FrameKind::Kernel => Kind::Kernel,
                        FrameKind::Jit => Kind::Jit,
                        FrameKind::Interpreted => Kind::Interpreted,
                    },
                    file: f.location.as_ref().map(|l| text(&l.file)),
                    line: f.location.as_ref().map(|l| l.line).filter(|&l| l > 0),
                    module: f.origin.as_ref().map(|o| text(&o.path)),
                    build_id: f.origin.as_ref().and_then(|o| o.build_id.as_ref().map(|b| text(b))),
                    file_offset: f.origin.as_ref().map(|o| o.file_offset),
                    truncated: f.truncation().map(|t| t.word().to_owned()),
                };
                *index.entry(jf.clone()).or_insert_with(|| {
                    frames.push(jf);
                    frames.len() - 1
                })
            })
            .collect();
        *merged.entry((text(&stack.root), ids)).or_default() += stack.count;
    }
    let mut stacks: Vec<JsonStack> = merged
        .into_iter()
        .map(|((thread, frames), count)| JsonStack { thread, frames: Charged(frames), count })
        .collect();
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.thread, &a.frames.0).cmp(&(&b.thread, &b.frames.0))));
    let m = &profile.meta;
    let doc = Document {
        perfkit_profile: SCHEMA_VERSION,
        meta: Meta {
            command: text(&m.command),
            duration_seconds: m.duration.as_secs_f64(),
            frequency_hz: m.frequency_hz,
            unit: m.unit.name().to_owned(),
            total_samples: (m.unit == CountUnit::Samples).then(|| profile.total_samples()),
            total_us: (m.unit == CountUnit::Microseconds).then(|| profile.total_samples()),
            lost_stacks: m.lost_stacks,
            dropped_samples: m.dropped_samples,
        },
        frames: Charged(frames),
        stacks: Charged(stacks),
    };
    serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Reads perfkit JSON, within the process's memory budget
/// ([`Budget::process`](crate::Budget::process)).
pub fn read(data: &[u8]) -> Result<Profile, FormatError> {
    read_with(data, crate::Budget::process())
}

/// Reads perfkit JSON within a memory budget: frames and stacks are
/// charged as they are decoded, and stacks that name the same large frames
/// over and over cannot blow a small input up. Nesting is bounded by
/// serde_json (128 levels).
pub fn read_with(data: &[u8], budget: &crate::Budget) -> Result<Profile, FormatError> {
    let malformed = |reason: String| FormatError::Malformed { format: Format::Json, reason };
    let previous = READING.with(|r| r.replace((Some(budget.start("the JSON profile's frames and stacks")), None)));
    let doc = serde_json::from_slice::<Document>(data);
    let (charge, refused) = READING.with(|r| r.replace(previous));
    let mut charge = charge.expect("the charge of this read");
    let doc = match (doc, refused) {
        (Ok(doc), _) => doc,
        (Err(_), Some(refused)) => return Err(refused.into()),
        (Err(e), None) => return Err(malformed(e.to_string())),
    };
    let (frames, stacks) = (doc.frames.0, doc.stacks.0);
    if doc.perfkit_profile != SCHEMA_VERSION {
        return Err(malformed(format!(
            "schema version {} (this perfkit reads version {SCHEMA_VERSION})",
            doc.perfkit_profile
        )));
    }
    charge.grow(frames.iter().map(|f| crate::frame_cost(f.name.len()) + 64).fold(0, u64::saturating_add))?;
    let frames: Vec<Frame> = frames
        .into_iter()
        .map(|f| {
            let kind = match f.kind {
                Kind::User => FrameKind::User,
                Kind::Inlined => FrameKind::Inlined,
                Kind::Kernel => FrameKind::Kernel,
                Kind::Jit => FrameKind::Jit,
                Kind::Interpreted => FrameKind::Interpreted,
            };
            let origin = match (f.module, f.file_offset) {
                (Some(path), Some(file_offset)) => {
                    Some(perfkit_model::Origin { path: path.into(), build_id: f.build_id.map(Into::into), file_offset })
                }
                _ => None,
            };
            Frame::new(f.name, kind)
                .at(f.file.map(|file| Location { file: file.into(), line: f.line.unwrap_or(0) }))
                .from_origin(origin)
        })
        .collect();
    let mut profile = Profile::default();
    let frame_size = std::mem::size_of::<Frame>() as u64;
    for (i, s) in stacks.into_iter().enumerate() {
        let ids = &s.frames.0;
        if ids.len() > crate::MAX_STACK_DEPTH {
            return Err(malformed(format!("stack {i} has {} frames (at most {})", ids.len(), crate::MAX_STACK_DEPTH)));
        }
        charge.grow(crate::STACK_COST + frame_size * ids.len() as u64)?;
        let stack_frames = ids
            .iter()
            .map(|&id| {
                frames
                    .get(id)
                    .cloned()
                    .ok_or_else(|| malformed(format!("stack {i} names frame {id}, which does not exist")))
            })
            .collect::<Result<_, _>>()?;
        profile.push(Stack::new(s.thread, stack_frames, s.count));
    }
    let mut meta = ProfileMeta::default();
    meta.command = doc.meta.command;
    meta.duration = Duration::try_from_secs_f64(doc.meta.duration_seconds)
        .map_err(|_| malformed(format!("duration_seconds {:?} is not a duration", doc.meta.duration_seconds)))?;
    meta.frequency_hz = doc.meta.frequency_hz;
    meta.unit = match doc.meta.unit.as_str() {
        "samples" => CountUnit::Samples,
        "microseconds" => CountUnit::Microseconds,
        other => return Err(malformed(format!("unit {other:?} (samples or microseconds)"))),
    };
    meta.lost_stacks = doc.meta.lost_stacks;
    meta.dropped_samples = doc.meta.dropped_samples;
    profile.meta = meta;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        let mut p = Profile::default();
        let main = Frame::user("main").at(Some(Location { file: "/src/a.c".into(), line: 12 }));
        p.push(Stack::new("app", vec![main.clone(), Frame::inlined("step"), Frame::kernel("schedule")], 5));
        p.push(Stack::new("app", vec![main.clone(), Frame::inlined("step"), Frame::kernel("schedule")], 2));
        p.push(Stack::new("worker", vec![main], 1));
        p.meta.command = "./app --fast".into();
        p.meta.frequency_hz = 99;
        p.meta.duration = Duration::from_millis(2500);
        p
    }

    #[test]
    fn round_trips_stacks_locations_and_meta() {
        let mut out = Vec::new();
        write(&sample(), &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["perfkit_profile"], 1);
        assert_eq!(value["meta"]["total_samples"], 8);
        assert_eq!(value["frames"][0]["file"], "/src/a.c");
        assert_eq!(value["stacks"][0]["count"], 7, "identical stacks merge, most first");
        let back = read(&out).unwrap();
        assert_eq!(back.folded_counts(), sample().folded_counts());
        assert_eq!(back.stacks[0].frames[0].location.as_ref().unwrap().line, 12);
        assert_eq!(back.meta.command, "./app --fast");
        assert_eq!(back.meta.duration, Duration::from_millis(2500));
        assert_eq!(value["meta"]["unit"], "samples");
        assert!(value["meta"].get("total_us").is_none());
    }

    #[test]
    fn microsecond_profiles_say_their_unit() {
        let mut p = sample();
        p.meta.unit = CountUnit::Microseconds;
        p.meta.frequency_hz = 0;
        let mut out = Vec::new();
        write(&p, &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["meta"]["unit"], "microseconds");
        assert_eq!(value["meta"]["total_us"], 8);
        assert!(value["meta"].get("total_samples").is_none(), "microseconds are not samples: {value}");
        assert_eq!(read(&out).unwrap().meta.unit, CountUnit::Microseconds);
        let err =
            read(br#"{"perfkit_profile": 1, "meta": {"unit": "hours"}, "frames": [], "stacks": []}"#).unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
    }

    #[test]
    fn interpreted_frames_keep_their_kind_file_and_line() {
        let mut p = Profile::default();
        let py = Frame::interpreted("Worker.run").at(Some(Location { file: "/app/w.py".into(), line: 11 }));
        p.push(Stack::new("python3", vec![Frame::user("main"), py], 3));
        let mut out = Vec::new();
        write(&p, &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let frame = &value["frames"][1];
        assert_eq!(
            (&frame["kind"], &frame["file"], &frame["line"]),
            (&"interpreted".into(), &"/app/w.py".into(), &11.into())
        );
        let back = read(&out).unwrap();
        assert_eq!(back.stacks[0].frames[1].kind, FrameKind::Interpreted);
    }

    #[test]
    fn absurd_durations_and_blow_ups_are_errors_not_panics() {
        let err = read(br#"{"perfkit_profile": 1, "meta": {"duration_seconds": 1e300}, "frames": [], "stacks": []}"#)
            .unwrap_err();
        assert!(err.to_string().contains("duration_seconds"), "{err}");
        assert!(
            read(br#"{"perfkit_profile": 1, "meta": {"duration_seconds": -1}, "frames": [], "stacks": []}"#).is_err()
        );
        // One long frame named by many stacks, many times each.
        let name = "x".repeat(10_000);
        let ids = vec!["0"; 1000].join(",");
        let stacks = vec![format!(r#"{{"thread": "t", "frames": [{ids}], "count": 1}}"#); 100].join(",");
        let doc = format!(
            r#"{{"perfkit_profile": 1, "meta": {{}}, "frames": [{{"name": "{name}", "kind": "user"}}], "stacks": [{stacks}]}}"#
        );
        // Read, the frames are shared: small. Unfolded into folded stacks
        // (1 GB of text), they are refused before they are written.
        let budget = crate::Budget::new(64 << 20);
        assert!(read_with(doc.as_bytes(), &budget).is_ok());
        let err = crate::read_folded(doc.as_bytes(), &crate::ReadOptions::with_budget(budget.clone())).unwrap_err();
        assert!(matches!(err, FormatError::Budget(_)), "{err}");
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn huge_arrays_are_charged_while_they_are_decoded() {
        // 8 Mi frame indices: 16 MiB of JSON, 128 MiB of vector.
        let ids = "0,".repeat(8 << 20);
        let doc = format!(
            r#"{{"perfkit_profile": 1, "meta": {{}}, "frames": [], "stacks": [{{"thread": "t", "frames": [{ids}0], "count": 1}}]}}"#
        );
        let budget = crate::Budget::new(32 << 20);
        let err = read_with(doc.as_bytes(), &budget).unwrap_err();
        assert!(matches!(err, FormatError::Budget(_)), "{err}");
        assert!(err.to_string().contains("JSON profile") && err.to_string().contains("32 MiB"), "{err}");
        // Many small frames.
        let frames = vec![r#"{"name": "", "kind": "user"}"#; 1 << 20].join(",");
        let doc = format!(r#"{{"perfkit_profile": 1, "meta": {{}}, "frames": [{frames}], "stacks": []}}"#);
        assert!(matches!(read_with(doc.as_bytes(), &budget), Err(FormatError::Budget(_))));
        assert_eq!(budget.used(), 0);
        // Deep nesting stops at serde_json's limit.
        let deep = format!(r#"{{"perfkit_profile": 1, "meta": {}"#, "[".repeat(100_000));
        assert!(matches!(read_with(deep.as_bytes(), &budget), Err(FormatError::Malformed { .. })));
    }

    #[test]
    fn control_characters_are_written_visibly() {
        let mut p = Profile::default();
        p.push(Stack::new("\u{1b}[31mred\u{7}", vec![Frame::user("f\u{1b}")], 1));
        p.meta.command = "cmd\u{7}".into();
        let mut out = Vec::new();
        write(&p, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""thread": "\\x1b[31mred\\x07""#), "{text}");
        assert!(text.contains(r#""name": "f\\x1b""#) && text.contains(r#""command": "cmd\\x07""#), "{text}");
        assert!(!text.contains("\\u001b") && !text.chars().any(|c| c.is_control() && c != '\n'));
    }

    #[test]
    fn rejects_other_versions_and_dangling_frames() {
        let err = read(br#"{"perfkit_profile": 2, "meta": {}, "frames": [], "stacks": []}"#).unwrap_err();
        assert!(err.to_string().contains("schema version 2"), "{err}");
        let err = read(br#"{"perfkit_profile": 1, "meta": {}, "frames": [], "stacks": [{"thread": "t", "frames": [3], "count": 1}]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("frame 3"), "{err}");
    }
}
