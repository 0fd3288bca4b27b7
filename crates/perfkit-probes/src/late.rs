//! Walks finished in user space: an on-CPU sample whose walk reached a
//! mapping or a file table the kernel side did not know yet (a program
//! that just started, a library just mapped) comes with the place to resume
//! from and a copy of its stack ([`LateWalk`]). Once the mappings and tables
//! are known, the walk is finished here with the rows the kernel uses, the
//! frames encoded as the kernel encodes them, and the sample's count moved
//! from the early-ending stack to the finished one.

use std::{
    collections::HashMap,
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use aya::maps::{MapData, RingBuf};
use perfkit_probes_common::{
    sampler::{END_DEPTH, END_ROOT, LATE_STACK_BYTES, LateWalk, MAX_FRAMES, SampleKey},
    unwind::{
        CFA_END, CFA_NONE, CFA_PLT, CFA_RBP, CFA_RBP_X8, CFA_RSP, CFA_RSP_X8, CFA_STACK_SWITCH, CFA_UNSUPPORTED,
        MAX_ROWS_PER_PAGE, MAX_STACK_SWITCHES, PAGE_BITS, RBP_AT_CFA, Row, encode_frame,
    },
};

/// A walk to finish: where to resume, and the stack from the resume SP up.
#[derive(Clone, Debug)]
pub(crate) struct LateRecord {
    /// The sample's key as counted.
    pub key: SampleKey,
    /// The frame to resume at.
    pub n: usize,
    pub pc: u64,
    pub sp: u64,
    pub bp: u64,
    /// The stack's bytes from `sp` (what the kernel read of it).
    pub stack: Vec<u8>,
    /// Tries to finish it while sampling that found its mapping or table
    /// not known yet.
    pub tries: u8,
    /// When it was read from the kernel's ring buffer: it is finished
    /// while sampling only with the side-band records and requests the
    /// loader read after it (the mmaps before its sample among them).
    pub received: std::time::Instant,
}

impl LateRecord {
    /// Parses a ring buffer record; `None` for one too short or whose
    /// fields do not agree (a resume SP outside the pages read).
    pub(crate) fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<LateWalk>() {
            return None;
        }
        let header = std::mem::offset_of!(LateWalk, stack);
        // SAFETY: the record holds a LateWalk's fields before the stack,
        // plain integers; read unaligned.
        let (key, n, pages, pc, sp, bp, base) = unsafe {
            let p = bytes.as_ptr();
            let r = |off: usize| std::ptr::read_unaligned(p.add(off).cast::<u64>());
            (
                std::ptr::read_unaligned(p.cast::<SampleKey>()),
                std::ptr::read_unaligned(p.add(std::mem::offset_of!(LateWalk, n)).cast::<u32>()),
                std::ptr::read_unaligned(p.add(std::mem::offset_of!(LateWalk, pages)).cast::<u32>()),
                r(std::mem::offset_of!(LateWalk, pc)),
                r(std::mem::offset_of!(LateWalk, sp)),
                r(std::mem::offset_of!(LateWalk, bp)),
                r(std::mem::offset_of!(LateWalk, stack_base)),
            )
        };
        let read = (pages as usize * 4096).min(LATE_STACK_BYTES);
        let from = sp.checked_sub(base)? as usize;
        if n as usize >= MAX_FRAMES || from >= read {
            return None;
        }
        let stack = bytes[header + from..header + read].to_vec();
        Some(Self { key, n: n as usize, pc, sp, bp, stack, tries: 0, received: std::time::Instant::now() })
    }
}

/// Records kept at most while sampling (each up to 16 KiB, charged to the
/// memory budget as well).
pub(crate) const MAX_LATE_RECORDS: usize = 4096;

/// Records kept at most per process: a process whose every walk ends in
/// memory no mapping describes (a JIT without frame pointers, or a target
/// that means to) cannot crowd out the others' walks.
pub(crate) const MAX_LATE_RECORDS_PER_PROCESS: usize = 512;

/// What became of the walks sent to be finished late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LateStats {
    /// Samples whose walk was finished in user space.
    pub finished: u64,
    /// Samples whose walk could not be finished (a mapping still unknown,
    /// a table never built, the stack copy too short): they keep the stack
    /// the kernel walked.
    pub unfinished: u64,
    /// Walks not kept: the kernel's ring buffer was full, or user space's
    /// queue reached its bound or the memory budget.
    pub lost: u64,
}

/// The drained records, bounded.
#[derive(Default)]
struct Queue {
    records: Vec<LateRecord>,
    dropped: u64,
    /// Records without a stack to finish over (the stack's page did not
    /// read: a sample in an exec, whose old stack is gone).
    unreadable: u64,
    charge: Option<perfkit_safeio::Charge>,
    /// Records kept per process: one process cannot take the whole queue.
    per_process: HashMap<u32, usize>,
    /// Walks finished while sampling.
    finished: Finished,
}

/// Walks finished while sampling, without the frames the kernel walked
/// (joined at the end with the sample's stack): (the sample's key, how
/// many frames the kernel walked, the frames after them, how the walk
/// ended) and how many samples. A few hundred bytes each, against a record's 16 KiB of
/// stack, charged to the memory budget.
#[derive(Default)]
pub(crate) struct Finished {
    /// Samples per finished walk.
    pub walks: HashMap<(SampleKey, usize, Vec<u64>, u8), u64>,
    charge: Option<perfkit_safeio::Charge>,
}

/// What finishes walks while sampling (the table loader, which knows the
/// mappings and tables so far): for each record, the frames after its
/// first `n` and how it ended, `Err(true)` when its mapping or table is
/// not known yet (tried again later), `Err(false)` when it cannot be
/// finished now (left to the end).
pub(crate) type FinishNow = Box<dyn Fn(&[LateRecord]) -> Vec<Result<(Vec<u64>, u8), bool>> + Send>;

/// How often the queued walks are finished while sampling.
const FINISH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Tries while sampling before a walk whose mapping or table stays
/// unknown is left to the end (its table on demand and never built, a
/// mapping the events never reported).
const MAX_TRIES: u8 = 5;

/// Drains the kernel's ring buffer of walks from a thread of its own while
/// sampling runs, so that it never fills.
pub(crate) struct Drainer {
    queue: Arc<Mutex<Queue>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    /// Starts the thread; with `finish_now`, the walks queued are finished
    /// every [`FINISH_EVERY`] once their mappings and tables are known, so
    /// that a long run keeps few records (each up to 16 KiB).
    pub(crate) fn start(mut ring: RingBuf<MapData>, finish_now: Option<FinishNow>) -> Result<Self, crate::ProbeError> {
        let queue: Arc<Mutex<Queue>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queue.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("perfkit-late".into())
            .spawn(move || {
                let mut fd = libc::pollfd { fd: ring.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                let mut last_finish = std::time::Instant::now();
                loop {
                    // Read once more after the stop: the last records.
                    let stopping = s.load(Ordering::Relaxed);
                    while let Some(item) = ring.next() {
                        let record = LateRecord::parse(&item);
                        drop(item);
                        let mut q = q.lock().expect("late queue lock");
                        match record {
                            Some(r) => q.push(r),
                            None => q.unreadable += 1,
                        }
                    }
                    if stopping {
                        break;
                    }
                    if let Some(finish_now) = &finish_now
                        && last_finish.elapsed() >= FINISH_EVERY
                    {
                        last_finish = std::time::Instant::now();
                        q.lock().expect("late queue lock").finish_some(finish_now);
                    }
                    // SAFETY: one valid pollfd; the timeout lets the stop be seen.
                    unsafe { libc::poll(&raw mut fd, 1, 50) };
                }
            })
            .map_err(|error| crate::ProbeError::Thread { what: "late walk reader", error })?;
        Ok(Self { queue, stop, thread: Some(thread) })
    }

    /// Stops reading (after a last drain) and hands over the records to
    /// finish, the walks finished already, how many were not kept, and how
    /// many had no stack to finish over.
    pub(crate) fn finish(&mut self) -> (Vec<LateRecord>, Finished, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut q = self.queue.lock().expect("late queue lock");
        (std::mem::take(&mut q.records), std::mem::take(&mut q.finished), q.dropped, q.unreadable)
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Queue {
    fn push(&mut self, r: LateRecord) {
        let cost = (size_of::<LateRecord>() + r.stack.len()) as u64;
        let kept = self.per_process.entry(r.key.tgid).or_default();
        if self.records.len() >= MAX_LATE_RECORDS || *kept >= MAX_LATE_RECORDS_PER_PROCESS {
            self.dropped += 1;
            return;
        }
        let charge =
            self.charge.get_or_insert_with(|| perfkit_safeio::Budget::process().start("stacks of walks to finish"));
        if charge.grow(cost).is_err() {
            self.dropped += 1;
            return;
        }
        *self.per_process.entry(r.key.tgid).or_default() += 1;
        self.records.push(r);
    }

    /// Finishes the records whose mappings and tables are known now, and
    /// keeps only their frames; the others wait (at most [`MAX_TRIES`]
    /// tries, then until the end).
    fn finish_some(&mut self, finish_now: &FinishNow) {
        let (tried, waiting): (Vec<LateRecord>, Vec<LateRecord>) =
            std::mem::take(&mut self.records).into_iter().partition(|r| r.tries < MAX_TRIES);
        self.records = waiting;
        if tried.is_empty() {
            return;
        }
        let results = finish_now(&tried);
        let finished = results.iter().filter(|r| r.is_ok()).count();
        tracing::debug!(finished, waiting = tried.len() - finished, "late walks finished while sampling");
        for (mut record, result) in tried.into_iter().zip(results) {
            match result {
                Ok((frames, end)) => {
                    let cost = (size_of::<LateRecord>() + record.stack.len()) as u64;
                    if let Some(charge) = &mut self.charge {
                        charge.shrink(cost);
                    }
                    if let Some(kept) = self.per_process.get_mut(&record.key.tgid) {
                        *kept = kept.saturating_sub(1);
                    }
                    if !self.finished.add(record.key, record.n, frames, end) {
                        self.dropped += 1;
                    }
                }
                Err(retry) => {
                    record.tries = if retry { record.tries + 1 } else { MAX_TRIES };
                    self.records.push(record);
                }
            }
        }
    }
}

impl Finished {
    /// Counts one more sample of this walk; false when a new walk's frames
    /// do not fit the memory budget (not kept).
    fn add(&mut self, key: SampleKey, n: usize, frames: Vec<u64>, end: u8) -> bool {
        let cost = (size_of::<SampleKey>() + 48 + frames.len() * 8) as u64;
        match self.walks.entry((key, n, frames, end)) {
            std::collections::hash_map::Entry::Occupied(mut o) => *o.get_mut() += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                let charge = self
                    .charge
                    .get_or_insert_with(|| perfkit_safeio::Budget::process().start("walks finished while sampling"));
                if charge.grow(cost).is_err() {
                    return false;
                }
                v.insert(1);
            }
        }
        true
    }
}

/// Where an address is, as the process's mappings say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In a file mapped at [start, end) from file offset `offset`.
    File { id: u32, start: u64, end: u64, offset: u64 },
    /// In anonymous executable memory (JIT code): walked with frame
    /// pointers, recorded as an address.
    Anonymous,
}

/// One page of a file's table as the loader holds it (read one page at a
/// time: a compiler's library has millions of rows).
pub(crate) enum PageRows {
    /// The page's rows; `None`: no CFI anywhere in the page.
    Rows(Option<Vec<Row>>),
    /// No CFI in the file: frame pointers.
    FramePointers,
}

/// How a file's frames in one page of file offsets are walked.
pub(crate) enum Code<'a> {
    /// With the page's rows as the kernel holds them; `None`: the page has
    /// none (frame pointers there).
    Rows(Option<&'a [Row]>),
    /// With frame pointers (the file has no CFI).
    FramePointers,
}

/// What the finish needs to know: mappings and tables.
pub(crate) trait Known {
    /// The place of `addr` in the sampled process; `None`: in no known
    /// mapping.
    fn place(&mut self, addr: u64) -> Option<Place>;
    /// How file `id`'s frames in `page` (of file offsets, `PAGE_BITS`) are
    /// walked; `None`: its table is not known.
    fn code(&mut self, id: u32, page: u32) -> Option<Code<'_>>;
}

/// A process's mappings as the loader recorded them (every mapping it
/// had, in order) and the tables known, for [`finish`].
pub(crate) struct Process<'a> {
    /// The process.
    pub tgid: u32,
    /// Its mapping history.
    pub history: &'a [perfkit_target::Mapping],
    /// File ids by the file's handle.
    pub ids: &'a HashMap<*const perfkit_target::ModuleFile, u32>,
    /// A page of a file's table as loaded now.
    pub rows: &'a dyn Fn(u32, u32) -> Option<PageRows>,
    /// Pages of tables read so far, by (file, page).
    pub tables: &'a mut HashMap<(u32, u32), Option<PageRows>>,
    /// Places looked up already, by (process, address): the same return
    /// addresses recur from walk to walk.
    pub places: &'a mut HashMap<(u32, u64), Option<Place>>,
}

impl Known for Process<'_> {
    fn place(&mut self, addr: u64) -> Option<Place> {
        let (history, ids) = (self.history, self.ids);
        *self.places.entry((self.tgid, addr)).or_insert_with(|| {
            // The newest mapping holding the address (the history keeps
            // every mapping the process had, an older program's included).
            let m = history.iter().rev().find(|m| m.start <= addr && addr < m.end)?;
            Some(match m.file.as_ref().and_then(|f| ids.get(&Arc::as_ptr(f))) {
                Some(&id) => Place::File { id, start: m.start, end: m.end, offset: m.offset },
                // Anonymous code, or a file that could not be opened: the
                // kernel walks both as anonymous memory.
                None => Place::Anonymous,
            })
        })
    }
    fn code(&mut self, id: u32, page: u32) -> Option<Code<'_>> {
        let rows = self.rows;
        match self.tables.entry((id, page)).or_insert_with(|| rows(id, page)).as_ref()? {
            PageRows::Rows(page) => Some(Code::Rows(page.as_deref())),
            PageRows::FramePointers => Some(Code::FramePointers),
        }
    }
}

/// Reads words from the stack copy.
struct Copy<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl Copy<'_> {
    fn read(&self, addr: u64) -> Option<u64> {
        let at = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let word = self.bytes.get(at..at.checked_add(8)?)?;
        Some(u64::from_le_bytes(word.try_into().ok()?))
    }
}

/// The walk's registers.
struct Regs {
    pc: u64,
    sp: u64,
    bp: u64,
    switches: u32,
}

/// One step's outcome.
enum Step {
    Next,
    Root,
    /// The walk cannot be finished here (the copy ends, a rule cannot be
    /// followed, the state is corrupt).
    Fail,
}

/// Why a walk could not be finished (for the debug log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// The kernel's frames before the resume frame were not as recorded.
    Prefix,
    /// An address in no known mapping of the process.
    Unmapped(u64),
    /// A file whose table is not loaded (never built, or evicted).
    NoTable(u32),
    /// The stack copy ended, or a rule could not be followed, at this
    /// frame.
    Stopped(usize),
}

/// Finishes a walk: `prefix` is the kernel's frames before the resume
/// frame. Returns the whole stack and how it ended (`END_ROOT` or
/// `END_DEPTH`), or why it cannot be finished.
pub(crate) fn finish(prefix: &[u64], record: &LateRecord, known: &mut dyn Known) -> Result<(Vec<u64>, u8), Unfinished> {
    if prefix.len() != record.n {
        return Err(Unfinished::Prefix);
    }
    let copy = Copy { base: record.sp, bytes: &record.stack };
    let mut frames = prefix.to_vec();
    let mut r = Regs { pc: record.pc, sp: record.sp, bp: record.bp, switches: 0 };
    while frames.len() < MAX_FRAMES {
        let n = frames.len();
        // A return address points after its call: look up the call itself.
        let look = if n == 0 { r.pc } else { r.pc.wrapping_sub(1) };
        let step = match known.place(look).ok_or(Unfinished::Unmapped(look))? {
            Place::Anonymous => {
                frames.push(r.pc);
                fp_step(&mut r, &copy)
            }
            Place::File { id, start, offset, .. } => {
                frames.push(encode_frame(id, r.pc.wrapping_sub(start).wrapping_add(offset)));
                let file_offset = look.wrapping_sub(start).wrapping_add(offset);
                match known.code(id, (file_offset >> PAGE_BITS) as u32).ok_or(Unfinished::NoTable(id))? {
                    // No CFI in the file, or anywhere in this page.
                    Code::FramePointers | Code::Rows(None) => fp_step(&mut r, &copy),
                    Code::Rows(Some(rows)) => table_step(&mut r, &copy, rows, file_offset),
                }
            }
        };
        match step {
            Step::Next => {}
            Step::Root => return Ok((frames, END_ROOT)),
            Step::Fail => return Err(Unfinished::Stopped(n)),
        }
    }
    Ok((frames, END_DEPTH))
}

/// One step with the frame pointer, as the kernel's `fp_step`.
fn fp_step(r: &mut Regs, copy: &Copy<'_>) -> Step {
    if r.bp == 0 {
        return Step::Root;
    }
    if r.bp < r.sp || r.bp & 7 != 0 {
        return Step::Fail;
    }
    // A hostile frame pointer may sit at the top of the address space.
    let (Some(ra_at), Some(sp)) = (r.bp.checked_add(8), r.bp.checked_add(16)) else { return Step::Fail };
    let (Some(next_bp), Some(ra)) = (copy.read(r.bp), copy.read(ra_at)) else { return Step::Fail };
    r.sp = sp;
    r.bp = next_bp;
    r.pc = ra;
    if ra == 0 { Step::Root } else { Step::Next }
}

/// One step with the row in force at `offset` (a file offset), as the
/// kernel's `table_step`.
fn table_step(r: &mut Regs, copy: &Copy<'_>, rows: &[Row], offset: u64) -> Step {
    let rows = &rows[..rows.len().min(MAX_ROWS_PER_PAGE as usize)];
    let target = (offset & ((1 << PAGE_BITS) - 1)) as u16;
    // The last row at or before the target (the first row of a page
    // starts at 0 or carries the previous page's rule).
    let i = rows.partition_point(|row| row.pc_low <= target).saturating_sub(1);
    let Some(row) = rows.get(i).copied() else { return Step::Fail };
    let cfa = match row.cfa {
        CFA_RSP => r.sp.wrapping_add(row.cfa_offset as i64 as u64),
        CFA_RBP | CFA_STACK_SWITCH => r.bp.wrapping_add(row.cfa_offset as i64 as u64),
        CFA_RSP_X8 => r.sp.wrapping_add((row.cfa_offset as i64 * 8) as u64),
        CFA_RBP_X8 => r.bp.wrapping_add((row.cfa_offset as i64 * 8) as u64),
        CFA_PLT => r.sp.wrapping_add(8 + if r.pc & 15 >= 11 { 8 } else { 0 }),
        CFA_END => return Step::Root,
        CFA_NONE => return fp_step(r, copy),
        CFA_UNSUPPORTED => return Step::Fail,
        _ => return Step::Fail,
    };
    if cfa <= r.sp {
        // Another stack: the copy holds only this one.
        if row.cfa != CFA_STACK_SWITCH || r.switches >= MAX_STACK_SWITCHES {
            return Step::Fail;
        }
        r.switches += 1;
    }
    let Some(ra) = copy.read(cfa.wrapping_sub(8)) else { return Step::Fail };
    if row.rbp == RBP_AT_CFA {
        match copy.read(cfa.wrapping_add(row.rbp_offset as i64 as u64)) {
            Some(bp) => r.bp = bp,
            None => return Step::Fail,
        }
    }
    r.sp = cfa;
    r.pc = ra;
    if ra == 0 { Step::Root } else { Step::Next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_probes_common::unwind::{RBP_SAME, decode_frame};

    fn row(pc_low: u16, cfa: u8, cfa_offset: i16, rbp: u8, rbp_offset: i16) -> Row {
        Row { pc_low, cfa, rbp, cfa_offset, rbp_offset }
    }

    /// A program mapped at 0x40_0000 from offset 0 (file 7), libc-like
    /// code in file 9 at 0x7f00_0000_0000, and JIT code at 0x5000_0000.
    struct Fake {
        rows7: HashMap<u32, Vec<Row>>,
        loaded9: bool,
    }

    impl Known for Fake {
        fn place(&mut self, addr: u64) -> Option<Place> {
            match addr {
                0x40_0000..0x41_0000 => Some(Place::File { id: 7, start: 0x40_0000, end: 0x41_0000, offset: 0 }),
                0x7f00_0000_0000..0x7f00_0001_0000 => {
                    Some(Place::File { id: 9, start: 0x7f00_0000_0000, end: 0x7f00_0001_0000, offset: 0x2000 })
                }
                0x5000_0000..0x5000_1000 => Some(Place::Anonymous),
                _ => None,
            }
        }
        fn code(&mut self, id: u32, page: u32) -> Option<Code<'_>> {
            match id {
                7 => Some(Code::Rows(self.rows7.get(&page).map(Vec::as_slice))),
                9 if self.loaded9 => Some(Code::FramePointers),
                _ => None,
            }
        }
    }

    fn fake() -> Fake {
        // File 7, page 0: [0x100, 0x200) leaf without a frame (CFA = RSP +
        // 8); [0x200, 0x300) a function with 0x18 bytes of locals and RBP
        // saved at CFA - 16 (CFA = RSP + 0x28); from 0x300: the outermost
        // frame (_start).
        let rows = vec![
            row(0, CFA_NONE, 0, RBP_SAME, 0),
            row(0x100, CFA_RSP, 8, RBP_SAME, 0),
            row(0x200, CFA_RSP, 0x28, RBP_AT_CFA, -16),
            row(0x300, CFA_END, 0, RBP_SAME, 0),
        ];
        Fake { rows7: HashMap::from([(0, rows)]), loaded9: true }
    }

    /// A stack at 0x7ffd_0000_1000 with the given words.
    fn record(n: usize, pc: u64, bp: u64, words: &[u64]) -> LateRecord {
        let stack = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        LateRecord {
            key: crate::warm::zeroed(),
            n,
            pc,
            sp: 0x7ffd_0000_1000,
            bp,
            stack,
            tries: 0,
            received: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_walk_is_finished_with_the_rows_and_frame_pointers_from_its_stack_copy() {
        let sp = 0x7ffd_0000_1000u64;
        // Frame 1 (resumed): in the leaf at 0x400150, its return address
        // at [sp] into 0x400250 (the function with locals), whose CFA is
        // sp + 8 + 0x28, RBP saved at CFA - 16 and its return address at
        // CFA - 8 into libc (frame pointers): RBP there points at a frame
        // record {next RBP = 0, return 0x400310 in _start}.
        let mut words = vec![0u64; 16];
        words[0] = 0x40_0250; // return address of the leaf
        let cfa = sp + 8 + 0x28;
        let frame_record = sp + 0x40;
        words[((cfa - 16 - sp) / 8) as usize] = frame_record; // saved RBP
        words[((cfa - 8 - sp) / 8) as usize] = 0x7f00_0000_0480; // into libc
        words[((frame_record - sp) / 8) as usize] = 0; // next RBP
        words[((frame_record + 8 - sp) / 8) as usize] = 0x40_0310; // into _start
        let prefix = [0x5000_0010u64];
        let r = record(1, 0x40_0150, 0xdead_0000, &words);
        let (frames, end) = finish(&prefix, &r, &mut fake()).expect("finished");
        assert_eq!(end, END_ROOT);
        let decoded: Vec<Option<(u32, u64)>> = frames.iter().map(|&f| decode_frame(f)).collect();
        assert_eq!(decoded, vec![None, Some((7, 0x150)), Some((7, 0x250)), Some((9, 0x2480)), Some((7, 0x310)),]);
        assert_eq!(frames[0], 0x5000_0010);
    }

    #[test]
    fn a_walk_whose_mapping_or_table_is_still_unknown_or_whose_copy_ends_is_not_finished() {
        let words = vec![0x40_0250u64, 0, 0, 0];
        // The caller's frame lies beyond the four words copied.
        assert_eq!(finish(&[], &record(0, 0x40_0150, 0, &words), &mut fake()), Err(Unfinished::Stopped(1)));
        // An address in no mapping.
        assert_eq!(finish(&[], &record(0, 0x1234, 0, &words), &mut fake()), Err(Unfinished::Unmapped(0x1234)));
        // A file whose table is not loaded.
        let mut f = fake();
        f.loaded9 = false;
        assert_eq!(finish(&[], &record(0, 0x7f00_0000_0480, 0, &words), &mut f), Err(Unfinished::NoTable(9)));
        // A prefix that does not match the resume frame.
        assert_eq!(finish(&[1, 2], &record(1, 0x40_0150, 0, &words), &mut fake()), Err(Unfinished::Prefix));
        // The outermost frame at once: complete.
        let (frames, end) = finish(&[], &record(0, 0x40_0310, 0, &words), &mut fake()).unwrap();
        assert_eq!((frames.len(), end), (1, END_ROOT));
    }

    #[test]
    fn a_frame_pointer_at_the_top_of_the_address_space_ends_the_walk() {
        // Libc-like code (frame pointers) with RBP where adding to it
        // would overflow: the walk stops, it does not panic.
        let words = vec![0u64; 4];
        let r = record(0, 0x7f00_0000_0480, 0xffff_ffff_ffff_fff8, &words);
        assert_eq!(finish(&[], &r, &mut fake()), Err(Unfinished::Stopped(0)));
    }

    #[test]
    fn one_process_cannot_take_the_whole_queue() {
        let mut q = Queue::default();
        let mut r = record(0, 0x40_0150, 0, &[0; 4]);
        r.key.tgid = 1;
        for _ in 0..MAX_LATE_RECORDS_PER_PROCESS + 10 {
            q.push(r.clone());
        }
        assert_eq!((q.records.len(), q.dropped), (MAX_LATE_RECORDS_PER_PROCESS, 10));
        r.key.tgid = 2;
        q.push(r);
        assert_eq!(q.records.len(), MAX_LATE_RECORDS_PER_PROCESS + 1);
    }

    fn bytes_of(w: &LateWalk) -> Vec<u8> {
        // SAFETY: a plain-integer struct without padding, viewed as bytes.
        unsafe { std::slice::from_raw_parts((w as *const LateWalk).cast::<u8>(), size_of::<LateWalk>()) }.to_vec()
    }

    #[test]
    fn a_record_is_parsed_from_the_resume_sp_to_the_pages_read() {
        let mut w: LateWalk = crate::warm::zeroed();
        w.key.tgid = 42;
        w.n = 3;
        w.pages = 2;
        w.pc = 0x40_0150;
        w.sp = 0x7ffd_0000_1ff0;
        w.bp = 8;
        w.stack_base = 0x7ffd_0000_1000;
        w.stack[0xff0] = 0xaa;
        let bytes = bytes_of(&w);
        let r = LateRecord::parse(&bytes).unwrap();
        assert_eq!((r.key.tgid, r.n, r.pc, r.sp, r.bp), (42, 3, 0x40_0150, 0x7ffd_0000_1ff0, 8));
        assert_eq!(r.stack.len(), 2 * 4096 - 0xff0);
        assert_eq!(r.stack[0], 0xaa);
        // An SP outside the pages read, or a short record: refused.
        w.pages = 0;
        let bytes = bytes_of(&w);
        assert!(LateRecord::parse(&bytes).is_none());
        assert!(LateRecord::parse(&bytes[..100]).is_none());
    }

    #[test]
    fn walks_finished_while_sampling_leave_the_queue_and_the_others_wait() {
        let mut q = Queue::default();
        let key = |tgid: u32| {
            let mut r = record(2, 0x40_1000, 0, &[0; 4]);
            r.key.tgid = tgid;
            r
        };
        for tgid in [1, 2, 3, 1] {
            q.push(key(tgid));
        }
        let charged = q.charge.as_ref().map(perfkit_safeio::Charge::bytes);
        // Process 1's walks finish (the same frames: one walk, two
        // samples), 2's mapping is not known yet, 3's cannot be finished.
        let finish_now: FinishNow = Box::new(|records: &[LateRecord]| {
            records
                .iter()
                .map(|r| match r.key.tgid {
                    1 => Ok((vec![5, 6], END_ROOT)),
                    2 => Err(true),
                    _ => Err(false),
                })
                .collect()
        });
        q.finish_some(&finish_now);
        assert_eq!(q.records.len(), 2);
        assert_eq!(q.finished.walks.len(), 1);
        let (&(k, n, ref frames, end), &count) = q.finished.walks.iter().next().unwrap();
        assert_eq!((k.tgid, n, frames.as_slice(), end, count), (1, 2, &[5, 6][..], END_ROOT, 2));
        assert_eq!(q.per_process[&1], 0, "process 1's records are released");
        assert!(q.charge.as_ref().map(perfkit_safeio::Charge::bytes) < charged, "their stacks are no longer charged");
        let tries = |tgid| q.records.iter().find(|r| r.key.tgid == tgid).unwrap().tries;
        assert_eq!((tries(2), tries(3)), (1, MAX_TRIES), "3 is left to the end, 2 tried again");
        // 2 is tried until MAX_TRIES, then left to the end too.
        for _ in 0..MAX_TRIES + 2 {
            q.finish_some(&finish_now);
        }
        assert_eq!(q.records.len(), 2);
        assert!(q.records.iter().all(|r| r.tries == MAX_TRIES));
    }
}
