//! Recordings: raw samples appended to a file as they are taken, so any
//! view can be replayed later with the figures a live run would show.
//!
//! The file is a header (`PERFKIT-SYS`, a format version) followed by one
//! frame per sample: a little-endian `u32` length and the sample encoded
//! with `postcard` (compact: integers are varints). Each frame is written
//! whole and flushed, so an interrupted recording keeps every sample taken
//! before the interruption; a torn last frame is reported and skipped.

use std::io::{self, Read, Write};

use crate::sample::Sample;

const MAGIC: &[u8; 11] = b"PERFKIT-SYS";
/// The recording format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a recording could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The file does not start with the recording header.
    #[error("not a perfkit sys recording (no PERFKIT-SYS header)")]
    NotARecording,
    /// Written by a newer or older perfkit.
    #[error("recording format version {0}; this perfkit reads version {FORMAT_VERSION}")]
    Version(u32),
    /// A frame did not decode.
    #[error("sample {index} is corrupt: {reason}")]
    Corrupt {
        /// 0-based sample index.
        index: usize,
        /// The decoder's message.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
}

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
        let bytes = postcard::to_stdvec(sample)
            .map_err(|e| RecordError::Corrupt { index: self.samples, reason: e.to_string() })?;
        self.out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        self.samples += 1;
        self.bytes += 4 + bytes.len() as u64;
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

/// A recording read back.
#[derive(Debug, Default)]
pub struct Recording {
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
    /// Whether the last frame was cut short (the recorder was killed while
    /// writing it); the samples before it are whole.
    pub truncated: bool,
}

/// Reads a whole recording.
pub fn read<R: Read>(mut input: R) -> Result<Recording, RecordError> {
    let mut data = Vec::new();
    input.read_to_end(&mut data)?;
    if data.len() < MAGIC.len() + 4 || &data[..MAGIC.len()] != MAGIC {
        return Err(RecordError::NotARecording);
    }
    let version = u32::from_le_bytes(data[MAGIC.len()..MAGIC.len() + 4].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(RecordError::Version(version));
    }
    let mut rest = &data[MAGIC.len() + 4..];
    let mut out = Recording::default();
    while !rest.is_empty() {
        if rest.len() < 4 {
            out.truncated = true;
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if rest.len() < 4 + len {
            out.truncated = true;
            break;
        }
        let sample = postcard::from_bytes(&rest[4..4 + len])
            .map_err(|e| RecordError::Corrupt { index: out.samples.len(), reason: e.to_string() })?;
        out.samples.push(sample);
        rest = &rest[4 + len..];
    }
    Ok(out)
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

    #[test]
    fn round_trips_and_survives_a_torn_last_frame() {
        let mut rec = Recorder::new(Vec::new()).unwrap();
        for n in 0..3 {
            rec.push(&sample(n)).unwrap();
        }
        assert_eq!(rec.samples(), 3);
        let bytes = rec.into_inner();
        let back = read(&bytes[..]).unwrap();
        assert_eq!(back.samples, vec![sample(0), sample(1), sample(2)]);
        assert!(!back.truncated);
        let torn = read(&bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(torn.samples.len(), 2);
        assert!(torn.truncated);
    }

    #[test]
    fn rejects_other_files() {
        assert!(matches!(read(&b"hello world, not a recording"[..]), Err(RecordError::NotARecording)));
        let mut v = MAGIC.to_vec();
        v.extend(7u32.to_le_bytes());
        assert!(matches!(read(&v[..]), Err(RecordError::Version(7))));
        let mut v = MAGIC.to_vec();
        v.extend(FORMAT_VERSION.to_le_bytes());
        v.extend(3u32.to_le_bytes());
        v.extend([0xff, 0xff, 0xff]);
        assert!(matches!(read(&v[..]), Err(RecordError::Corrupt { index: 0, .. })));
    }
}
