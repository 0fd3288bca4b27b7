//! perfkit's JSON profile schema, for scripts.
//!
//! ```json
//! {
//!   "perfkit_profile": 1,
//!   "meta": {
//!     "command": "./server --port 8080",
//!     "duration_seconds": 10.0,
//!     "frequency_hz": 99,
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
//!   (a profile converted from folded stacks).
//! - A frame that could not be symbolized (named `module+0xADDR`) also has
//!   `module` (the file's path), `build_id` (when the file has one) and
//!   `file_offset`, so that a tool with the binary's symbols can resolve
//!   it.

use std::{collections::HashMap, io::Write, time::Duration};

use perfkit_profile::{Frame, FrameKind, Location, Profile, ProfileMeta, Stack};
use serde::{Deserialize, Serialize};

use crate::{Format, FormatError};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    perfkit_profile: u32,
    meta: Meta,
    frames: Vec<JsonFrame>,
    stacks: Vec<JsonStack>,
}

#[derive(Serialize, Deserialize, Default)]
struct Meta {
    #[serde(default)]
    command: String,
    #[serde(default)]
    duration_seconds: f64,
    #[serde(default)]
    frequency_hz: u64,
    #[serde(default)]
    total_samples: u64,
    #[serde(default)]
    lost_stacks: u64,
    #[serde(default)]
    dropped_samples: u64,
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
}

#[derive(Serialize, Deserialize, PartialEq, Eq, Hash, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Kind {
    User,
    Inlined,
    Kernel,
}

#[derive(Serialize, Deserialize)]
struct JsonStack {
    thread: String,
    frames: Vec<usize>,
    count: u64,
}

/// Writes `profile` as perfkit JSON (merged: one entry per unique stack).
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
                    name: f.name.to_string(),
                    kind: match f.kind {
                        FrameKind::User => Kind::User,
                        FrameKind::Inlined => Kind::Inlined,
                        FrameKind::Kernel => Kind::Kernel,
                    },
                    file: f.location.as_ref().map(|l| l.file.to_string()),
                    line: f.location.as_ref().map(|l| l.line).filter(|&l| l > 0),
                    module: f.origin.as_ref().map(|o| o.path.to_string()),
                    build_id: f.origin.as_ref().and_then(|o| o.build_id.as_ref().map(|b| b.to_string())),
                    file_offset: f.origin.as_ref().map(|o| o.file_offset),
                };
                *index.entry(jf.clone()).or_insert_with(|| {
                    frames.push(jf);
                    frames.len() - 1
                })
            })
            .collect();
        *merged.entry((stack.thread.clone(), ids)).or_default() += stack.count;
    }
    let mut stacks: Vec<JsonStack> =
        merged.into_iter().map(|((thread, frames), count)| JsonStack { thread, frames, count }).collect();
    stacks.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.thread, &a.frames).cmp(&(&b.thread, &b.frames))));
    let m = &profile.meta;
    let doc = Document {
        perfkit_profile: SCHEMA_VERSION,
        meta: Meta {
            command: m.command.clone(),
            duration_seconds: m.duration.as_secs_f64(),
            frequency_hz: m.frequency_hz,
            total_samples: profile.total_samples(),
            lost_stacks: m.lost_stacks,
            dropped_samples: m.dropped_samples,
        },
        frames,
        stacks,
    };
    serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Reads perfkit JSON, with the default memory budget.
pub fn read(data: &[u8]) -> Result<Profile, FormatError> {
    read_with(data, &mut crate::Budget::new(crate::ReadOptions::default().budget(data.len())))
}

/// Reads perfkit JSON within a memory budget: stacks that name the same
/// large frames over and over cannot blow a small input up.
pub(crate) fn read_with(data: &[u8], budget: &mut crate::Budget) -> Result<Profile, FormatError> {
    let malformed = |reason: String| FormatError::Malformed { format: Format::Json, reason };
    let doc: Document = serde_json::from_slice(data).map_err(|e| malformed(e.to_string()))?;
    if doc.perfkit_profile != SCHEMA_VERSION {
        return Err(malformed(format!(
            "schema version {} (this perfkit reads version {SCHEMA_VERSION})",
            doc.perfkit_profile
        )));
    }
    let frames: Vec<Frame> = doc
        .frames
        .into_iter()
        .map(|f| {
            let kind = match f.kind {
                Kind::User => FrameKind::User,
                Kind::Inlined => FrameKind::Inlined,
                Kind::Kernel => FrameKind::Kernel,
            };
            let origin = match (f.module, f.file_offset) {
                (Some(path), Some(file_offset)) => Some(perfkit_profile::Origin {
                    path: path.into(),
                    build_id: f.build_id.map(Into::into),
                    file_offset,
                }),
                _ => None,
            };
            Frame::new(f.name, kind)
                .at(f.file.map(|file| Location { file: file.into(), line: f.line.unwrap_or(0) }))
                .from_origin(origin)
        })
        .collect();
    let mut profile = Profile::default();
    for (i, s) in doc.stacks.into_iter().enumerate() {
        if s.frames.len() > crate::MAX_STACK_DEPTH {
            return Err(malformed(format!(
                "stack {i} has {} frames (at most {})",
                s.frames.len(),
                crate::MAX_STACK_DEPTH
            )));
        }
        let bytes: u64 = s
            .frames
            .iter()
            .map(|&id| frames.get(id).map_or(0, |f| f.name.len() as u64 + 96))
            .fold(64, u64::saturating_add);
        budget.take(bytes, "the stacks' frames")?;
        let stack_frames = s
            .frames
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
        let mut budget = crate::Budget::new(64 << 20);
        let err = read_with(doc.as_bytes(), &mut budget).unwrap_err();
        assert!(matches!(err, FormatError::TooLarge { .. }), "{err}");
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
