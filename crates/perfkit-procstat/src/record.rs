//! Recordings: raw samples appended to a file as they are taken, so any
//! view can be replayed later with the figures a live run would show.
//!
//! # Format (version 2)
//!
//! A header, `PERFKIT-SYS` and the format version (`u32`, little-endian),
//! then one frame per sample:
//!
//! | bytes | content |
//! |---|---|
//! | 4 | sync marker `f0 50 4b 53` |
//! | 4 | payload length, `u32` LE (at most [`MAX_FRAME`]) |
//! | 4 | CRC-32 of the payload, `u32` LE |
//! | n | the sample, encoded with `postcard` |
//!
//! Each frame is written whole and flushed, so an interrupted recording
//! keeps every sample taken before the interruption; a torn last frame is
//! reported and skipped. A frame whose checksum or decoding fails costs
//! that frame alone: the reader reports it and resynchronises at the next
//! sync marker whose frame checks out.
//!
//! Version 1 (perfkit 0.1's first recordings) had no marker and no
//! checksum (`u32` length, payload); it is still read.
//!
//! # Evolution rule
//!
//! The payload is positional (postcard has no field names): **any change
//! to [`Sample`] or the types in it bumps [`FORMAT_VERSION`]**, and the
//! reader keeps a frozen copy of the previous layout to convert from. A
//! test encodes a canonical sample and compares it with a committed golden
//! encoding, so a layout change without a bump fails; golden recordings of
//! every version are committed and must keep reading.

use std::io::{self, Read, Write};

use perfkit_safeio::{Budget, BudgetError, Charge};

use crate::{CollectOptions, ProcessSelection, sample::Sample};

/// The cgroup v2 depth a recording takes: the root's children and theirs
/// (a systemd slice's services, a pod's containers), which every view
/// replayed from it can show, without the unbounded deeper levels.
pub const CGROUP_DEPTH: usize = 2;

/// What a recording collects so that any view can be replayed from it:
/// every process (one row per thread too with `threads`) and cgroups
/// [`CGROUP_DEPTH`] deep.
pub fn collect_options(threads: bool) -> CollectOptions {
    CollectOptions { processes: ProcessSelection::All, threads, cgroup_depth: CGROUP_DEPTH }
}

const MAGIC: &[u8; 11] = b"PERFKIT-SYS";
/// The recording format version this crate writes.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest version this crate reads.
pub const OLDEST_VERSION: u32 = 1;
/// The marker that starts every version 2 frame.
pub const SYNC: [u8; 4] = [0xf0, 0x50, 0x4b, 0x53];
/// The largest frame payload read (a sample of every process and thread of
/// a large machine is a few MiB).
pub const MAX_FRAME: u32 = 256 << 20;
/// The largest recording read (its samples are kept in memory).
pub const MAX_RECORDING: u64 = 8 << 30;

/// Why a recording could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The file does not start with the recording header.
    #[error("not a perfkit sys recording (no PERFKIT-SYS header)")]
    NotARecording,
    /// Written by a newer perfkit, or damaged.
    #[error("recording format version {0}; this perfkit reads versions {OLDEST_VERSION} to {FORMAT_VERSION}")]
    Version(u32),
    /// A sample could not be encoded.
    #[error("sample {index} could not be encoded: {reason}")]
    Encode {
        /// 0-based sample index.
        index: usize,
        /// The encoder's message.
        reason: String,
    },
    /// Larger than [`MAX_RECORDING`].
    #[error("the recording is larger than {} GiB", MAX_RECORDING >> 30)]
    TooLarge,
    /// Reading it would take more memory than the budget allows.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// Reading or writing failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
}

/// Memory a sample's decoding may take per byte of its payload, beyond the
/// `Sample` itself, at most:
/// postcard writes a `u64` of 0 in one byte, an absent `Option` in one, so
/// an element can be 16 times larger in memory than on disk (a test checks
/// every element type), and vectors grow by doubling. Charged before a
/// frame is decoded; what the sample keeps is charged after.
const DECODE_EXPANSION: u64 = 32;

/// Appends samples to a writer.
#[derive(Debug)]
pub struct Recorder<W: Write> {
    out: W,
    samples: usize,
    bytes: u64,
}

impl<W: Write> Recorder<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> Result<Self, RecordError> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.flush()?;
        Ok(Self { out, samples: 0, bytes: (MAGIC.len() + 4) as u64 })
    }

    /// Appends one sample and flushes it.
    pub fn push(&mut self, sample: &Sample) -> Result<(), RecordError> {
        let payload = postcard::to_stdvec(sample)
            .map_err(|e| RecordError::Encode { index: self.samples, reason: e.to_string() })?;
        let mut frame = Vec::with_capacity(payload.len() + 12);
        frame.extend_from_slice(&SYNC);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        // One write per frame: a crash tears at most the last one.
        self.out.write_all(&frame)?;
        self.out.flush()?;
        self.samples += 1;
        self.bytes += frame.len() as u64;
        Ok(())
    }

    /// Samples written so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Bytes written so far, header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A frame that could not be read, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorruptFrame {
    /// Byte offset of the damage in the file.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
}

/// A recording read back.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Recording {
    /// The format version of the file.
    pub version: u32,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
    /// Whether the last frame was cut short (the recorder was killed while
    /// writing it); the samples before it are whole.
    pub truncated: bool,
    /// Damaged stretches that were skipped.
    pub corrupt: Vec<CorruptFrame>,
}

/// Reads a whole recording (at most [`MAX_RECORDING`] bytes), within the
/// process's memory budget ([`Budget::process`]).
pub fn read<R: Read>(input: R) -> Result<Recording, RecordError> {
    read_with(input, Budget::process())
}

/// Reads a whole recording within `budget`: the file's bytes as they are
/// read, each sample's decoding before it is decoded, and the samples kept.
pub fn read_with<R: Read>(input: R, budget: &Budget) -> Result<Recording, RecordError> {
    let mut file = budget.start("the recording");
    let data = read_charged(input.take(MAX_RECORDING + 1), &mut file)?;
    if data.len() as u64 > MAX_RECORDING {
        return Err(RecordError::TooLarge);
    }
    if data.len() < MAGIC.len() + 4 || &data[..MAGIC.len()] != MAGIC {
        return Err(RecordError::NotARecording);
    }
    let version = u32::from_le_bytes(data[MAGIC.len()..MAGIC.len() + 4].try_into().expect("4 bytes"));
    let body = &data[MAGIC.len() + 4..];
    let base = (MAGIC.len() + 4) as u64;
    let mut samples = budget.start("the recording's samples");
    let mut out = match version {
        1 => read_v1(body, base, &mut samples)?,
        2 => read_v2(body, base, &mut samples)?,
        v => return Err(RecordError::Version(v)),
    };
    out.version = version;
    Ok(out)
}

/// Everything `input` holds, its buffer charged to `charge` as it grows.
fn read_charged(mut input: impl Read, charge: &mut Charge) -> Result<Vec<u8>, RecordError> {
    let mut data: Vec<u8> = Vec::new();
    loop {
        if data.len() == data.capacity() {
            let more = data.capacity().max(64 << 10);
            charge.grow(more as u64)?;
            data.reserve_exact(more);
        }
        let len = data.len();
        data.resize(data.capacity(), 0);
        match input.read(&mut data[len..]) {
            Ok(0) => {
                data.truncate(len);
                return Ok(data);
            }
            Ok(n) => data.truncate(len + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => data.truncate(len),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Memory a decoded sample holds, roughly.
fn sample_bytes(s: &Sample) -> u64 {
    use std::mem::size_of_val;
    let strings: usize = s.processes.iter().map(|p| p.comm.len()).sum::<usize>()
        + s.disks.iter().map(|d| d.name.len()).sum::<usize>()
        + s.interfaces.iter().map(|i| i.name.len()).sum::<usize>()
        + s.cgroups.iter().map(|c| c.path.len()).sum::<usize>();
    (size_of_val(s)
        + size_of_val(&s.processes[..])
        + size_of_val(&s.disks[..])
        + size_of_val(&s.interfaces[..])
        + size_of_val(&s.cgroups[..])
        + s.cpu.as_ref().map_or(0, |c| size_of_val(&c.per_cpu[..]))
        + strings) as u64
}

/// Decodes one payload, charging its decoding before and what it keeps
/// after.
fn decode(payload: &[u8], samples: &mut Charge) -> Result<Result<Sample, postcard::Error>, BudgetError> {
    // The sample itself (once per frame), and its vectors' elements.
    let decoding =
        (std::mem::size_of::<Sample>() as u64).saturating_add((payload.len() as u64).saturating_mul(DECODE_EXPANSION));
    samples.grow(decoding)?;
    let decoded = postcard::from_bytes::<Sample>(payload);
    samples.shrink(decoding);
    if let Ok(s) = &decoded {
        samples.grow(sample_bytes(s))?;
    }
    Ok(decoded)
}

/// Version 1: `u32` length and payload, no marker, no checksum. A bad
/// frame ends the reading (there is nothing to resynchronise on).
fn read_v1(mut rest: &[u8], mut offset: u64, charge: &mut Charge) -> Result<Recording, BudgetError> {
    let mut out = Recording::default();
    while !rest.is_empty() {
        if rest.len() < 4 {
            out.truncated = true;
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if len as u64 > MAX_FRAME as u64 || rest.len() < 4 + len {
            out.truncated = true;
            break;
        }
        match decode(&rest[4..4 + len], charge)? {
            Ok(sample) => out.samples.push(sample),
            Err(e) => {
                out.corrupt.push(CorruptFrame { offset, reason: format!("sample does not decode: {e}") });
                break;
            }
        }
        rest = &rest[4 + len..];
        offset += 4 + len as u64;
    }
    Ok(out)
}

/// Version 2: frames with markers and checksums; damage is skipped.
fn read_v2(body: &[u8], base: u64, charge: &mut Charge) -> Result<Recording, BudgetError> {
    let mut out = Recording::default();
    let mut at = 0usize;
    // Where the current run of damage started, if in one.
    let mut damage: Option<(usize, String)> = None;
    while at < body.len() {
        let rest = &body[at..];
        match frame_at(rest, charge)? {
            Frame::Sample(sample, len) => {
                if let Some((start, reason)) = damage.take() {
                    out.corrupt.push(CorruptFrame { offset: base + start as u64, reason });
                }
                out.samples.push(*sample);
                at += len;
            }
            Frame::Torn => {
                if damage.is_none() {
                    out.truncated = true;
                }
                break;
            }
            Frame::Bad(reason) => {
                damage.get_or_insert((at, reason));
                // Resynchronise: the next marker after this position.
                match find_sync(&body[at + 1..]) {
                    Some(i) => at += 1 + i,
                    None => break,
                }
            }
        }
    }
    if let Some((start, reason)) = damage {
        out.corrupt.push(CorruptFrame { offset: base + start as u64, reason });
    }
    Ok(out)
}

enum Frame {
    Sample(Box<Sample>, usize),
    /// The recording ends inside this frame.
    Torn,
    Bad(String),
}

fn frame_at(rest: &[u8], charge: &mut Charge) -> Result<Frame, BudgetError> {
    if rest.len() < 12 {
        return Ok(if SYNC.starts_with(&rest[..rest.len().min(4)]) {
            Frame::Torn
        } else {
            Frame::Bad("damaged frame".into())
        });
    }
    if rest[..4] != SYNC {
        return Ok(Frame::Bad("no frame marker".into()));
    }
    let len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
    if len > MAX_FRAME {
        return Ok(Frame::Bad(format!("frame length {len} is impossible")));
    }
    let len = len as usize;
    if rest.len() < 12 + len {
        // The last frame, cut short; or a damaged length: a marker further
        // on tells.
        return Ok(if find_sync(&rest[12..]).is_some() {
            Frame::Bad("frame length runs past the next frame".into())
        } else {
            Frame::Torn
        });
    }
    let payload = &rest[12..12 + len];
    if crc32fast::hash(payload) != crc {
        return Ok(Frame::Bad("checksum mismatch".into()));
    }
    Ok(match decode(payload, charge)? {
        Ok(s) => Frame::Sample(Box::new(s), 12 + len),
        Err(e) => Frame::Bad(format!("sample does not decode: {e}")),
    })
}

fn find_sync(data: &[u8]) -> Option<usize> {
    data.windows(4).position(|w| w == SYNC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{CpuStat, Process};

    fn sample(n: u64) -> Sample {
        Sample {
            uptime: n as f64,
            ticks_per_second: 100,
            cpu: Some(CpuStat { context_switches: n * 1000, ..Default::default() }),
            processes: vec![Process { pid: 1, comm: "init".into(), state: 'S', utime: n, ..Default::default() }],
            ..Sample::default()
        }
    }

    fn recording(n: u64) -> Vec<u8> {
        let mut rec = Recorder::new(Vec::new()).unwrap();
        for i in 0..n {
            rec.push(&sample(i)).unwrap();
        }
        rec.into_inner()
    }

    #[test]
    fn round_trips_and_survives_a_torn_last_frame() {
        let bytes = recording(3);
        let back = read(&bytes[..]).unwrap();
        assert_eq!(back.samples, vec![sample(0), sample(1), sample(2)]);
        assert!(!back.truncated && back.corrupt.is_empty());
        assert_eq!(back.version, 2);
        let torn = read(&bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(torn.samples.len(), 2);
        assert!(torn.truncated);
        assert!(torn.corrupt.is_empty());
    }

    #[test]
    fn a_damaged_frame_costs_that_frame_alone() {
        let bytes = recording(5);
        let mut bad = bytes.clone();
        // Somewhere in the third frame's payload.
        let third = 15 + 2 * (bytes.len() - 15) / 5 + 20;
        bad[third] ^= 0x55;
        let back = read(&bad[..]).unwrap();
        assert_eq!(back.samples, vec![sample(0), sample(1), sample(3), sample(4)]);
        assert_eq!(back.corrupt.len(), 1, "{:?}", back.corrupt);
    }

    #[test]
    fn no_single_byte_change_yields_a_wrong_sample_or_a_panic() {
        let bytes = recording(3);
        let originals = [sample(0), sample(1), sample(2)];
        let mut reported = 0;
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                match read(&bad[..]) {
                    // The header: not a recording, or another version.
                    Err(_) => assert!(i < 15, "byte {i}"),
                    Ok(r) => {
                        for s in &r.samples {
                            assert!(originals.contains(s), "byte {i} ^ {flip:#x} gave a sample that was never written");
                        }
                        if r.samples.len() < 3 {
                            assert!(!r.corrupt.is_empty() || r.truncated, "byte {i}: a loss was not reported");
                            reported += 1;
                        }
                    }
                }
            }
        }
        assert!(reported > 0);
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(read(&b"hello world, not a recording"[..]), Err(RecordError::NotARecording)));
        let mut v = MAGIC.to_vec();
        v.extend(7u32.to_le_bytes());
        assert!(matches!(read(&v[..]), Err(RecordError::Version(7))));
    }

    #[test]
    fn decoding_stays_within_its_expansion_bound() {
        use crate::sample::{Cgroup, CpuTicks, Disk, Interface};
        fn ratio<T: Default + serde::Serialize>() -> usize {
            let encoded = postcard::to_stdvec(&T::default()).unwrap().len();
            std::mem::size_of::<T>().div_ceil(encoded)
        }
        for (name, r) in [
            ("Process", ratio::<Process>()),
            ("Disk", ratio::<Disk>()),
            ("Interface", ratio::<Interface>()),
            ("Cgroup", ratio::<Cgroup>()),
            ("(u32, CpuTicks)", ratio::<(u32, CpuTicks)>()),
        ] {
            assert!(r as u64 * 2 <= DECODE_EXPANSION, "{name} is {r} times larger decoded");
        }
    }

    #[test]
    fn the_budget_bounds_what_a_recording_decodes_to() {
        let bytes = recording(50);
        let budget = Budget::new(bytes.len() as u64 * 4);
        let err = read_with(&bytes[..], &budget).unwrap_err();
        assert!(matches!(err, RecordError::Budget(_)), "{err}");
        assert!(err.to_string().contains("recording"), "{err}");
        assert_eq!(budget.used(), 0, "released");
        assert_eq!(read_with(&bytes[..], &Budget::new(64 << 20)).unwrap().samples.len(), 50);
    }

    #[test]
    fn version_1_recordings_still_read() {
        let mut v1 = MAGIC.to_vec();
        v1.extend(1u32.to_le_bytes());
        for i in 0..2 {
            let payload = postcard::to_stdvec(&sample(i)).unwrap();
            v1.extend((payload.len() as u32).to_le_bytes());
            v1.extend(payload);
        }
        let back = read(&v1[..]).unwrap();
        assert_eq!((back.version, back.samples.len()), (1, 2));
        assert_eq!(back.samples[1], sample(1));
    }
}
