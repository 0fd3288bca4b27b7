//! Processes and mappings as the kernel reports them: one side-band perf
//! event per CPU (a software `dummy` event that counts nothing, as `perf
//! record` opens), whose ring buffer receives a record for every
//! executable mapping (`PERF_RECORD_MMAP2`), exec (`COMM` with the exec
//! flag), fork and exit on that CPU, in the order they happened. The
//! table loader reads them when a sample needs them (the kernel side's
//! request for a process or an address it does not know, or an exec) and
//! otherwise every 50 ms; a record does not wake it (on a machine starting
//! programs, a wake-up per record was most of perfkit's CPU time). So a
//! new program's mappings, and the tables of its files, are known before
//! most of its samples, without reading `/proc` after the fact, and are
//! recorded even when the program exits before anyone could have read its
//! `/proc/PID/maps`.
//!
//! The events follow the sampler's selection ([`EventScope`]): every
//! task for the whole machine; the tasks of a cgroup (and the groups
//! below it) through `PERF_FLAG_PID_CGROUP`, so the kernel filters; the
//! selected processes, and with `follow_children` the processes they
//! fork later, by their process ids as the records are read (a per-task
//! event would need one event per thread and CPU, and inheriting
//! followed children would also need each event's ring mapped or
//! redirected).

use std::{
    collections::HashSet,
    fs::File,
    os::fd::{AsRawFd, RawFd},
};

use perf_event::{Builder, SampleFlag, Sampler, data::Record, events::Software};

/// The exec flag of a `COMM` record (`PERF_RECORD_MISC_COMM_EXEC`).
const MISC_COMM_EXEC: u16 = 1 << 13;

/// Bytes of each CPU's ring buffer (a power of two of pages, plus the
/// header page the library adds). A record is about 100 bytes: room for
/// hundreds of execs between two reads.
const RING_BYTES: usize = 64 << 10;

/// Bytes waiting in one CPU's ring that wake the reader: half the ring, so
/// that a burst of records (a parallel build starting compilers) is read
/// before the ring fills, while ordinary records wait for the loader's
/// next reading (a sample's request, an exec, or its 50 ms timer).
const WAKEUP_BYTES: usize = RING_BYTES / 2;

/// One thing a process did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TaskEvent {
    /// An executable mapping was created (mmap, or mprotect adding
    /// execute permission).
    Mapped {
        /// Process id.
        pid: u32,
        /// First address.
        start: u64,
        /// One past the last address.
        end: u64,
        /// File offset of `start`.
        offset: u64,
        /// The file's device (`dev_t`, as `/proc/PID/maps` shows it).
        dev: u64,
        /// The file's inode, 0 for anonymous memory.
        inode: u64,
        /// The path, or a pseudo-name (`[vdso]`, `//anon`).
        path: String,
    },
    /// The process called exec: its mappings are all gone.
    Exec {
        /// Process id.
        pid: u32,
    },
    /// A new process (not a thread) was created as a copy of its parent.
    Fork {
        /// The new process.
        pid: u32,
        /// Its parent process.
        parent: u32,
    },
    /// A process's main thread exited.
    Exit {
        /// Process id.
        pid: u32,
    },
    /// Records were lost (the ring buffer was full): what is known of
    /// processes may be stale.
    Lost(u64),
}

/// Whose side-band events are read.
#[derive(Debug)]
pub(crate) enum EventScope {
    /// Every task.
    All,
    /// The tasks of this cgroup v2 group (its directory, held open) and
    /// of the groups below it.
    Cgroup(File),
    /// These processes (all their threads), and with `follow_children`
    /// the processes they create later.
    Processes {
        /// Process ids.
        pids: HashSet<u32>,
        /// Children followed as their fork records are read.
        follow_children: bool,
    },
}

/// The side-band events of every online CPU.
pub(crate) struct TaskEvents {
    rings: Vec<Sampler>,
    /// The processes whose records are kept (`EventScope::Processes`);
    /// `None`: every record the kernel gave.
    wanted: Option<(HashSet<u32>, bool)>,
}

impl std::fmt::Debug for TaskEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskEvents").field("cpus", &self.rings.len()).finish()
    }
}

impl TaskEvents {
    /// Opens and enables one event per online CPU for `scope`.
    pub(crate) fn open(scope: EventScope) -> std::io::Result<Self> {
        let cpus = aya::util::online_cpus().map_err(|(_, e)| e)?;
        let mut rings = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let mut b = Builder::new(Software::DUMMY);
            match &scope {
                EventScope::Cgroup(dir) => b.observe_cgroup(dir),
                EventScope::All | EventScope::Processes { .. } => b.any_pid(),
            };
            b.one_cpu(cpu as usize)
                .enabled(true)
                .exclude_hv(true)
                .mmap(true)
                .mmap2(true)
                .comm(true)
                .comm_exec(true)
                .task(true)
                // Each record ends with its time, so that the records of
                // all CPUs are read in the order they happened (an exec
                // may move to another CPU halfway).
                .sample_id_all(true)
                .sample(SampleFlag::TIME)
                // Records do not wake the reader (unless the ring is half
                // full): a sample that needs them asks (the kernel side's
                // requests), and the loader reads them at least every
                // 50 ms.
                .wakeup_watermark(WAKEUP_BYTES);
            rings.push(b.build()?.sampled(RING_BYTES)?);
        }
        let wanted = match scope {
            EventScope::Processes { pids, follow_children } => Some((pids, follow_children)),
            EventScope::All | EventScope::Cgroup(_) => None,
        };
        Ok(Self { rings, wanted })
    }

    /// The file descriptors to poll.
    pub(crate) fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.rings.iter().map(AsRawFd::as_raw_fd)
    }

    /// Appends every record waiting, in the order they happened.
    pub(crate) fn drain(&mut self, out: &mut Vec<TaskEvent>) {
        let mut timed: Vec<(u64, TaskEvent)> = Vec::new();
        for ring in &mut self.rings {
            while let Some(record) = ring.next_record() {
                let misc = record.misc();
                // The sample id (the time alone) is the record's last 8
                // bytes.
                let bytes = record.to_contiguous();
                let time = bytes
                    .len()
                    .checked_sub(8)
                    .and_then(|at| bytes.get(at..))
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes);
                match record.parse_record() {
                    Ok(parsed) => timed.extend(to_event(parsed, misc).map(|e| (time, e))),
                    Err(e) => tracing::debug!(%e, "unparsed side-band perf record"),
                }
            }
        }
        timed.sort_by_key(|(time, _)| *time);
        match &mut self.wanted {
            None => out.extend(timed.into_iter().map(|(_, e)| e)),
            Some((pids, follow)) => {
                out.extend(timed.into_iter().filter_map(|(_, e)| keep(pids, *follow, e)));
            }
        }
    }
}

/// Whether an event of these processes (and, with `follow`, of the
/// children they fork, added to `pids` as their forks are read) is kept.
/// A lost count is always kept: any process may have missed records.
fn keep(pids: &mut HashSet<u32>, follow: bool, event: TaskEvent) -> Option<TaskEvent> {
    let mine = match &event {
        TaskEvent::Mapped { pid, .. } | TaskEvent::Exec { pid } => pids.contains(pid),
        TaskEvent::Fork { pid, parent } => {
            let followed = follow && pids.contains(parent);
            if followed {
                pids.insert(*pid);
            }
            followed
        }
        // A pid may be reused by another process: an exited one is
        // forgotten.
        TaskEvent::Exit { pid } => pids.remove(pid),
        TaskEvent::Lost(_) => true,
    };
    mine.then_some(event)
}

/// A mapping's path as `/proc/PID/maps` shows it: the kernel names
/// anonymous memory `//anon` in its records and leaves it blank in the
/// maps file, where perfkit-target recognises it (JIT code, generated
/// code: named from perf maps, marked `anon-code`).
fn mapping_path(name: &[u8]) -> String {
    if name == b"//anon" { String::new() } else { String::from_utf8_lossy(name).into_owned() }
}

fn to_event(record: Record<'_>, misc: u16) -> Option<TaskEvent> {
    Some(match record {
        // Build-id records (which carry no device and inode) are not asked
        // for.
        Record::Mmap2(m) if m.prot & libc::PROT_EXEC as u32 != 0 => TaskEvent::Mapped {
            pid: m.pid,
            start: m.addr,
            end: m.addr.saturating_add(m.len),
            offset: m.pgoff,
            dev: libc::makedev(m.maj().unwrap_or(0), m.min().unwrap_or(0)),
            inode: m.ino().unwrap_or(0),
            path: mapping_path(&m.filename),
        },
        Record::Comm(c) if misc & MISC_COMM_EXEC != 0 => TaskEvent::Exec { pid: c.pid },
        Record::Fork(f) if f.pid != f.ppid => TaskEvent::Fork { pid: f.pid, parent: f.ppid },
        Record::Exit(e) if e.pid == e.tid => TaskEvent::Exit { pid: e.pid },
        Record::Lost(l) => TaskEvent::Lost(l.lost),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_memory_is_named_as_proc_names_it() {
        assert_eq!(mapping_path(b"//anon"), "");
        assert_eq!(mapping_path(b"/usr/lib/libc.so.6"), "/usr/lib/libc.so.6");
        assert_eq!(mapping_path(b"[vdso]"), "[vdso]");
    }

    #[test]
    fn only_the_selected_processes_and_their_followed_children_are_kept() {
        let map = |pid| TaskEvent::Mapped {
            pid,
            start: 0x1000,
            end: 0x2000,
            offset: 0,
            dev: 1,
            inode: 2,
            path: "/lib/x.so".into(),
        };
        for follow in [false, true] {
            let mut pids: HashSet<u32> = [10].into_iter().collect();
            let mut kept = |e: TaskEvent| keep(&mut pids, follow, e.clone()) == Some(e);
            assert!(kept(map(10)));
            assert!(!kept(map(11)), "another process");
            assert!(kept(TaskEvent::Exec { pid: 10 }));
            assert_eq!(kept(TaskEvent::Fork { pid: 12, parent: 10 }), follow);
            assert_eq!(kept(map(12)), follow, "a child only when followed");
            assert!(!kept(TaskEvent::Fork { pid: 13, parent: 11 }), "the child of another process");
            assert!(!kept(map(13)));
            assert!(kept(TaskEvent::Lost(3)));
            assert!(kept(TaskEvent::Exit { pid: 10 }));
            assert!(!kept(map(10)), "an exited pid, reused by another process");
        }
    }
}
