//! The kernel log (`/dev/kmsg`): records parsed and classified (OOM kills,
//! hung tasks, soft and hard lockups, I/O and file system errors). The
//! parser takes bytes; [`KmsgReader`] reads the device without blocking,
//! a record at a time, and keeps what it returns within a [`Budget`].

use std::{
    fs,
    io::{self, Read},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use perfkit_safeio::{Budget, BudgetError, Charge};
use serde::{Deserialize, Serialize};

/// What a kernel message reports, for the ones checkup judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum MessageClass {
    OomKill,
    HungTask,
    SoftLockup,
    HardLockup,
    IoError,
    FilesystemError,
    /// Any other message at level `err` or worse.
    OtherError,
}

impl MessageClass {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            MessageClass::OomKill => "oom_kill",
            MessageClass::HungTask => "hung_task",
            MessageClass::SoftLockup => "soft_lockup",
            MessageClass::HardLockup => "hard_lockup",
            MessageClass::IoError => "io_error",
            MessageClass::FilesystemError => "filesystem_error",
            MessageClass::OtherError => "other_error",
        }
    }
}

/// One kernel log record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KernelMessage {
    /// Seconds since boot (the record's timestamp).
    pub seconds: f64,
    /// syslog level: 0 emerg ... 3 err, 4 warning ... 7 debug.
    pub level: u8,
    /// The text (the kernel escapes unprintable bytes as `\xNN`), cut at
    /// [`MAX_TEXT`] bytes.
    pub text: String,
    /// What it reports, when checkup recognizes it.
    pub class: Option<MessageClass>,
    /// The process it names (an OOM victim, a hung or locked-up task).
    pub pid: Option<u32>,
    /// That process's name.
    pub comm: Option<String>,
    /// The memory cgroup whose limit an OOM kill enforced (from the
    /// `oom-kill:` record before it), when it was a cgroup's.
    pub oom_memcg: Option<String>,
}

/// The longest text kept of a record.
pub const MAX_TEXT: usize = 512;

/// Parses one `/dev/kmsg` record: `PRI,SEQ,USECS,FLAGS;TEXT` followed by
/// continuation lines (`" KEY=VALUE"`, ignored). `None` when malformed.
pub fn parse_record(record: &[u8]) -> Option<(u64, KernelMessage)> {
    let semi = record.iter().position(|&b| b == b';')?;
    let head = std::str::from_utf8(&record[..semi]).ok()?;
    let mut f = head.split(',');
    let pri: u32 = f.next()?.parse().ok()?;
    let seq: u64 = f.next()?.parse().ok()?;
    let usecs: u64 = f.next()?.parse().ok()?;
    let body = &record[semi + 1..];
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut text = String::from_utf8_lossy(line).into_owned();
    if text.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let level = (pri & 7) as u8;
    let mut m = KernelMessage { seconds: usecs as f64 / 1e6, level, text, ..KernelMessage::default() };
    classify(&mut m);
    Some((seq, m))
}

/// `NUMBER (NAME)` at the start of `s`.
fn pid_paren_comm(s: &str) -> Option<(u32, String)> {
    let (pid, rest) = s.split_once(' ')?;
    let comm = rest.strip_prefix('(')?.split_once(')')?.0;
    Some((pid.parse().ok()?, comm.to_string()))
}

/// Sets the class, pid and comm of a message from its text.
fn classify(m: &mut KernelMessage) {
    let t = m.text.as_str();
    if let Some(rest) = t.split_once("Killed process ").map(|(_, r)| r) {
        // "Out of memory: Killed process 1234 (x) total-vm:..." and
        // "Memory cgroup out of memory: Killed process 1234 (x) ...".
        m.class = Some(MessageClass::OomKill);
        if let Some((pid, comm)) = pid_paren_comm(rest) {
            m.pid = Some(pid);
            m.comm = Some(comm);
        }
    } else if let Some(rest) = t.strip_prefix("oom-kill:") {
        // The summary record before the kill: its cgroup and victim.
        for kv in rest.split(',') {
            match kv.split_once('=') {
                Some(("oom_memcg", v)) => m.oom_memcg = Some(v.to_string()),
                Some(("pid", v)) => m.pid = v.parse().ok(),
                Some(("task", v)) => m.comm = Some(v.to_string()),
                _ => {}
            }
        }
    } else if let Some(rest) = t.strip_prefix("INFO: task ").filter(|r| r.contains(" blocked for more than ")) {
        // "INFO: task NAME:PID blocked for more than 120 seconds."
        m.class = Some(MessageClass::HungTask);
        if let Some((comm, pid)) = rest.split_once(" blocked").and_then(|(who, _)| who.rsplit_once(':')) {
            m.pid = pid.parse().ok();
            m.comm = Some(comm.to_string());
        }
    } else if t.contains("soft lockup - CPU#") || t.contains("hard LOCKUP") {
        // "watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [NAME:PID]"
        m.class = Some(if t.contains("soft lockup") { MessageClass::SoftLockup } else { MessageClass::HardLockup });
        if let Some((comm, pid)) =
            t.rsplit_once('[').and_then(|(_, r)| r.strip_suffix(']')).and_then(|r| r.rsplit_once(':'))
        {
            m.pid = pid.parse().ok();
            m.comm = Some(comm.to_string());
        }
    } else if t.contains("I/O error") {
        m.class = Some(MessageClass::IoError);
    } else if t.contains("-fs error") {
        m.class = Some(MessageClass::FilesystemError);
    } else if m.level <= 3 {
        m.class = Some(MessageClass::OtherError);
    }
}

/// Records read at most per call: a log flooding faster than checkup
/// reads is cut, and the cut counted.
const MAX_RECORDS_PER_READ: usize = 100_000;

/// Reads `/dev/kmsg` without blocking.
pub struct KmsgReader {
    file: fs::File,
    last_seq: Option<u64>,
    /// Records overwritten before they were read (the ring wrapped).
    pub lost: u64,
    /// Memory cgroup and name of the last `oom-kill:` records, by pid.
    oom_context: Vec<(u32, Option<String>, Option<String>)>,
}

impl KmsgReader {
    /// Opens the log (root, or CAP_SYSLOG with `kernel.dmesg_restrict`)
    /// at its oldest record.
    pub fn open(path: &Path) -> io::Result<Self> {
        const O_NONBLOCK: i32 = 0o4000;
        let file = fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)?;
        Ok(Self { file, last_seq: None, lost: 0, oom_context: Vec::new() })
    }

    /// Every record available now, oldest first, given to `keep`; returns
    /// how many were read. A record the ring overwrote before it was read
    /// is counted in [`KmsgReader::lost`].
    pub fn read_available(&mut self, mut keep: impl FnMut(KernelMessage)) -> io::Result<usize> {
        // A record is at most 8 KiB with its continuation lines (the
        // kernel's CONSOLE_EXT_LOG_MAX); a read of one never returns part.
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        while n < MAX_RECORDS_PER_READ {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(len) => {
                    n += 1;
                    let Some((seq, mut m)) = parse_record(&buf[..len]) else { continue };
                    if let Some(last) = self.last_seq {
                        self.lost += seq.saturating_sub(last + 1);
                    }
                    self.last_seq = Some(seq);
                    if m.text.starts_with("oom-kill:") {
                        if let Some(pid) = m.pid {
                            self.oom_context.push((pid, m.oom_memcg.clone(), m.comm.clone()));
                            if self.oom_context.len() > 16 {
                                self.oom_context.remove(0);
                            }
                        }
                        continue;
                    }
                    if m.class == Some(MessageClass::OomKill)
                        && let Some(ctx) = self.oom_context.iter().rev().find(|c| Some(c.0) == m.pid)
                    {
                        m.oom_memcg = ctx.1.clone().filter(|g| g != "/");
                        if m.comm.is_none() {
                            m.comm = ctx.2.clone();
                        }
                    }
                    keep(m);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // EPIPE: the next record was overwritten; the read after
                // it returns the oldest one still there.
                Err(e) if e.raw_os_error() == Some(32) => self.lost += 1,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// Messages kept within a budget: the newest `max` of them.
pub struct KeptMessages {
    /// Oldest first.
    pub messages: std::collections::VecDeque<KernelMessage>,
    max: usize,
    /// Messages dropped to stay within `max`.
    pub dropped: u64,
    charge: Charge,
}

impl KeptMessages {
    /// Keeps at most `max` messages, charged to `budget`.
    pub fn new(max: usize, budget: &Budget, what: &str) -> Self {
        Self { messages: Default::default(), max, dropped: 0, charge: budget.start(what) }
    }

    fn cost(m: &KernelMessage) -> u64 {
        (std::mem::size_of::<KernelMessage>()
            + m.text.len()
            + m.comm.as_ref().map_or(0, String::len)
            + m.oom_memcg.as_ref().map_or(0, String::len)) as u64
    }

    /// Adds one, dropping the oldest past `max`.
    pub fn push(&mut self, m: KernelMessage) -> Result<(), BudgetError> {
        self.charge.grow(Self::cost(&m))?;
        self.messages.push_back(m);
        if self.messages.len() > self.max {
            if let Some(old) = self.messages.pop_front() {
                self.charge.shrink(Self::cost(&old));
            }
            self.dropped += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(r: &str) -> KernelMessage {
        parse_record(r.as_bytes()).unwrap().1
    }

    #[test]
    fn records_are_classified() {
        let m = one(
            "3,1234,5000000,-;Memory cgroup out of memory: Killed process 4242 (hog) total-vm:10kB, anon-rss:5kB\n SUBSYSTEM=x\n",
        );
        assert_eq!(
            (m.class, m.pid, m.comm.as_deref(), m.level, m.seconds),
            (Some(MessageClass::OomKill), Some(4242), Some("hog"), 3, 5.0)
        );
        let m = one(
            "6,1,1,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/t,task_memcg=/t,task=hog,pid=4242,uid=0",
        );
        assert_eq!((m.oom_memcg.as_deref(), m.pid, m.comm.as_deref()), (Some("/t"), Some(4242), Some("hog")));
        let m = one("3,2,2,-;INFO: task jbd2/sda1-8:311 blocked for more than 120 seconds.");
        assert_eq!((m.class, m.pid, m.comm.as_deref()), (Some(MessageClass::HungTask), Some(311), Some("jbd2/sda1-8")));
        let m = one("0,3,3,-;watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [spin:99]");
        assert_eq!((m.class, m.pid, m.comm.as_deref()), (Some(MessageClass::SoftLockup), Some(99), Some("spin")));
        let m = one("3,4,4,-;I/O error, dev loop0, sector 8 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 2");
        assert_eq!(m.class, Some(MessageClass::IoError));
        let m = one("2,5,5,-;EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory");
        assert_eq!(m.class, Some(MessageClass::FilesystemError));
        let m = one("6,6,6,-;loop0: detected capacity change from 0 to 131072");
        assert_eq!(m.class, None);
        let m = one("3,7,7,-;something else failed");
        assert_eq!(m.class, Some(MessageClass::OtherError));
        // Facility bits are not the level.
        let m = one("30,8,8,-;systemd[1]: started");
        assert_eq!((m.level, m.class), (6, None));
    }

    #[test]
    fn bad_records_are_refused_not_panics() {
        for r in ["", ";", "a,b,c;x", "3,1;x", "3,1,x;y", "\u{0}\u{1};"] {
            assert!(parse_record(r.as_bytes()).is_none(), "{r:?}");
        }
        let long = format!("3,1,1,-;{}é{}", "a".repeat(MAX_TEXT - 1), "b".repeat(100));
        assert!(one(&long).text.len() <= MAX_TEXT);
        assert!(parse_record(b"3,1,1,-;\xff\xfe").is_some());
    }

    #[test]
    fn kept_messages_stay_within_their_count_and_budget() {
        let budget = Budget::new(1 << 20);
        let mut k = KeptMessages::new(3, &budget, "kmsg");
        for i in 0..10 {
            k.push(KernelMessage { seconds: i as f64, ..Default::default() }).unwrap();
        }
        assert_eq!((k.messages.len(), k.dropped, k.messages[0].seconds), (3, 7, 7.0));
        let tiny = Budget::new(10);
        let mut k = KeptMessages::new(3, &tiny, "kmsg");
        assert!(k.push(KernelMessage::default()).is_err());
    }
}
