//! The user side of stack walking: each process's executable mappings and
//! each file's unwind table, published into the BPF maps ahead of sampling
//! and whenever the kernel side asks (a new process, an exec, an address in
//! no known mapping), from a thread of its own so that sampling never waits
//! for a table to be built.
//!
//! Files are numbered once (by device and inode) and their tables built
//! once, whichever processes map them. The numbering and every mapping ever
//! seen are kept for symbolization: a walked frame is a (file, offset), so
//! it resolves after the process exited or called exec.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, RingBuf};
use perfkit_probes_common::unwind::{
    FILE_LOADED, FILE_NO_CFI, FILE_ON_DEMAND, MAX_FILES, MAX_MAPPINGS, MAX_ROWS_PER_PAGE, MapEntry, PageInfo, PageKey,
    ProcMaps, REQUEST_EXEC, REQUEST_TABLE, Request, Row, VDSO_FILE_ID,
};
use perfkit_target::{Mapping, ModuleFile, Modules, parse_maps};
use perfkit_unwind::UnwindTable;

use crate::events::{TaskEvent, TaskEvents};

/// What the loader did, for the summary and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// Files whose tables are loaded (at the end: in use).
    pub files: u64,
    /// Rows in use.
    pub rows: u64,
    /// Tables evicted to make room for another (least recently used
    /// first, only of files no live process maps); rebuilt if the file is
    /// mapped again.
    pub files_evicted: u64,
    /// Rows those tables held.
    pub rows_evicted: u64,
    /// Files without CFI (walked with frame pointers).
    pub files_without_cfi: u64,
    /// Files whose tables did not fit the rows map (walked with frame
    /// pointers).
    pub files_over_capacity: u64,
    /// Mapped files that could not be opened (the process was gone, or the
    /// file was not a regular file).
    pub files_unopened: u64,
    /// Processes whose mappings were published.
    pub processes: u64,
    /// Mappings left out because a process had more than the map holds.
    pub mappings_dropped: u64,
    /// Requests served.
    pub requests: u64,
    /// Requests served without reading `/proc/PID/maps`: the process's
    /// mappings were known from the kernel's events.
    pub requests_from_events: u64,
    /// Executable mappings learned from the kernel's events (mmap).
    pub mapping_events: u64,
    /// Execs, forks and exits learned from the kernel's events.
    pub task_events: u64,
    /// Side-band records the kernel could not deliver (a full ring
    /// buffer): the processes concerned were read from `/proc` again.
    pub events_lost: u64,
    /// Mappings not kept for symbolization because the mapping history
    /// reached the memory budget (other users' programs mapping and
    /// unmapping code in a loop cannot grow perfkit without bound).
    pub history_dropped: u64,
    /// Reads of `/proc/PID/maps` cut at [`MAX_MAPS_READ`] bytes (a
    /// process with more mappings than that: the rest is not seen).
    pub maps_truncated: u64,
    /// Whether mappings were learned from the kernel's events (false:
    /// only from `/proc/PID/maps`, on request).
    pub events: bool,
    /// Large files (over the size built at once) whose tables were left
    /// until a walk first reached a frame in them (with the kernel's
    /// events: the whole machine), and no walk did: tables never built.
    pub files_on_demand: u64,
    /// Tables built because a walk reached a frame in their file.
    pub tables_requested: u64,
    /// Time spent building and loading tables.
    pub build_time: Duration,
    /// Capacity of the rows map.
    pub row_capacity: u64,
}

/// The rows map, mapped into this process.
struct RowsMap {
    ptr: *mut Row,
    len: usize,
    /// The map itself, kept open while mapped.
    _map: MapData,
}

// SAFETY: the mapping is owned by this value and written by one thread
// at a time (the loader holds it behind a mutex).
unsafe impl Send for RowsMap {}

impl RowsMap {
    fn new(map: MapData, len: usize) -> std::io::Result<Self> {
        let bytes = (len * size_of::<Row>()).next_multiple_of(4096);
        // SAFETY: mapping a BPF array created with BPF_F_MMAPABLE, shared,
        // read-write, over exactly its value area.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self { ptr: ptr.cast(), len, _map: map })
    }

    fn write(&mut self, at: usize, rows: &[Row]) {
        assert!(at + rows.len() <= self.len, "rows written past the map");
        // SAFETY: the range is inside the mapping (checked above), and the
        // kernel side only reads rows that published pages point at, which
        // these are not yet.
        unsafe { std::ptr::copy_nonoverlapping(rows.as_ptr(), self.ptr.add(at), rows.len()) };
    }
}

impl RowsMap {
    /// A copy of `n` rows from `at`; `None` past the map.
    fn read(&self, at: usize, n: usize) -> Option<Vec<Row>> {
        if at.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: the range is inside the mapping (checked above); rows
        // are plain integers.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.add(at), n) }.to_vec())
    }
}

impl Drop for RowsMap {
    fn drop(&mut self) {
        let bytes = (self.len * size_of::<Row>()).next_multiple_of(4096);
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), bytes) };
    }
}

/// A loaded table's place in the maps.
struct Installed {
    start: usize,
    len: usize,
    pages: Vec<u32>,
    last_used: u64,
}

/// The free ranges of the rows map, first fit: a table's rows are one
/// contiguous range, released whole when it is evicted.
#[derive(Debug)]
struct RowSpace {
    /// (start, length), sorted by start, neither overlapping nor touching.
    free: Vec<(usize, usize)>,
}

impl RowSpace {
    fn new(capacity: usize) -> Self {
        Self { free: if capacity > 0 { vec![(0, capacity)] } else { Vec::new() } }
    }

    /// The start of `n` free rows, now taken.
    fn alloc(&mut self, n: usize) -> Option<usize> {
        let i = self.free.iter().position(|&(_, len)| len >= n)?;
        let (start, len) = self.free[i];
        if len == n {
            self.free.remove(i);
        } else {
            self.free[i] = (start + n, len - n);
        }
        Some(start)
    }

    /// Gives back `n` rows from `start`, merged with free neighbours.
    fn release(&mut self, start: usize, n: usize) {
        if n == 0 {
            return;
        }
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, n));
        if i + 1 < self.free.len() && start + n == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == start {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
}

/// One file: its id and how its table went.
struct FileSlot {
    id: u32,
    file: Option<Arc<ModuleFile>>,
}

/// The state the loader thread and the sampler share.
struct Loader {
    procs: BpfHashMap<MapData, u32, ProcMaps>,
    file_state: Array<MapData, u32>,
    pages: BpfHashMap<MapData, PageKey, PageInfo>,
    rows: RowsMap,
    /// Where rows are free in the rows map.
    space: RowSpace,
    /// Each loaded table: where its rows are, its pages, when last used.
    installed: HashMap<u32, Installed>,
    /// Files whose tables were evicted (rebuilt when mapped again).
    evicted: std::collections::HashSet<u32>,
    /// Advances at each use of a file, for least-recently-used eviction.
    tick: u64,
    next_id: u32,
    /// Files by (device, inode) as `/proc/PID/maps` shows them.
    files: HashMap<(u64, u64), FileSlot>,
    modules: Modules,
    stats: TableStats,
    proc_root: PathBuf,
    /// A private copy of the published mappings, for `ProcMaps` values.
    scratch: Box<ProcMaps>,
    /// Tables to build, by the builder thread.
    builds: Builds,
    /// Each live process's executable mappings as last known (from
    /// `/proc/PID/maps` once, then from the kernel's events), while the
    /// events are read; a process not here is read from `/proc` when
    /// the kernel side asks.
    live: HashMap<u32, LiveProcess>,
    /// The mapping history's memory, charged to the process's budget.
    history: perfkit_safeio::Charge,
    /// Per process, a hash of each (start, end, offset, path) in its
    /// history since its last exec: a mapping seen again is not kept
    /// twice.
    history_keys: HashMap<u32, HashSet<u64>>,
    /// Large files' tables are built when a walk first reaches them
    /// (set while the kernel's events are read: on a whole machine, most
    /// large files mapped, a build's test binaries and build scripts,
    /// never get a sample, and their tables were most of the loader's
    /// work).
    on_demand: bool,
    /// Files whose state is `FILE_ON_DEMAND`: built on the kernel side's
    /// first request.
    waiting_for_frame: HashSet<u32>,
    /// While the kernel's events are read: the tables the loader thread
    /// is to build itself, least CFI first, one at a time between its
    /// readings of the events and requests. Publishing mappings comes
    /// first: a new program's are never kept waiting behind tables of
    /// other programs (a build starting dozens of compilers), nor its
    /// loader's and libraries' (shared, built already) behind its own.
    deferred: BinaryHeap<Reverse<(u64, u32)>>,
    /// The files of `deferred`.
    deferred_files: HashMap<u32, Arc<ModuleFile>>,
    /// Whether builds the loader thread does itself go to `deferred`.
    defer_builds: bool,
    /// Processes whose mappings changed by events since `PROCS` was last
    /// written: written once per reading of the events (an exec's
    /// mappings, four or five mmaps read together, are one map update
    /// instead of one each).
    dirty: HashSet<u32>,
    /// When the loader's last finished pass began: the side-band records
    /// and requests written before then are read and published.
    read_at: Option<Instant>,
}

/// A process's executable mappings as they are now.
#[derive(Clone, Debug, Default)]
struct LiveProcess {
    /// Sorted by start address, not overlapping.
    maps: Vec<MapEntry>,
    /// Published to `PROCS` since they last changed.
    published: bool,
    /// Mappings beyond what `PROCS` holds, as last counted.
    dropped: usize,
    /// Re-read from `/proc` after its mappings from events passed
    /// [`LIVE_MAPPINGS_REREAD`]: its mmap events are ignored until its
    /// next exec or a request of the kernel side (which reads `/proc`
    /// again), so that a process mapping code in a loop cannot have
    /// `/proc/PID/maps` read at each of its mmaps.
    overflowed: bool,
}

impl LiveProcess {
    /// Adds a mapping, replacing what it overlaps (the kernel reports
    /// no unmap: a new mapping over an old range is how it shows).
    fn insert(&mut self, entry: MapEntry) {
        self.maps.retain(|m| m.end <= entry.start || m.start >= entry.end);
        let at = self.maps.partition_point(|m| m.start < entry.start);
        self.maps.insert(at, entry);
        self.published = false;
    }
}

/// The most mappings kept for a live process from events (4 times what
/// the kernel side holds) before `/proc/PID/maps` is read again instead.
const LIVE_MAPPINGS_REREAD: usize = 4 * MAX_MAPPINGS;

/// Bytes of `/proc/PID/maps` read at most (a process with more mappings
/// is read partially, counted in `maps_truncated`).
pub const MAX_MAPS_READ: u64 = 8 << 20;

/// Mappings kept at most in one process's history: beyond, they are
/// counted in `history_dropped`, so that one user's mmap loop cannot take
/// the whole memory budget.
const MAX_HISTORY_PER_PROCESS: usize = 16_384;

/// Entries of a parent's history looked at, newest first, for a fork.
const FORK_HISTORY_SCAN: usize = 8_192;

/// A hash of a mapping's identity, for the history's dedupe.
fn mapping_key(start: u64, end: u64, offset: u64, path: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A fixed key: the same mapping hashes the same for the run.
    let mut h = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
    h.write_u64(start);
    h.write_u64(end);
    h.write_u64(offset);
    h.write(path.as_bytes());
    h.finish()
}

/// Reads at most [`MAX_MAPS_READ`] bytes of a maps file, cut after its
/// last whole line; the flag says it was cut.
fn read_maps(path: &Path) -> Option<(String, bool)> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_MAPS_READ).read_to_end(&mut bytes).ok()?;
    let cut = bytes.len() as u64 >= MAX_MAPS_READ;
    if cut {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(keep);
    }
    Some((String::from_utf8(bytes).ok()?, cut))
}

/// Files up to this size, mapped by a process as it runs (an mmap event),
/// have their tables built by the loader at once; larger ones are queued
/// for the builder thread.
const BUILD_NOW_BYTES: u64 = 4 << 20;

/// With the kernel's events (the whole machine), a file whose CFI
/// (`.eh_frame`, `.debug_frame`, `.gopclntab`) is at most this large has
/// its table built by the loader at once (a few milliseconds at most),
/// whatever the file's size; larger ones wait for a walk to reach them.
const BUILD_NOW_CFI_BYTES: u64 = 256 << 10;

/// Files up to this size found in `/proc/PID/maps` (a process older than
/// sampling) are built at once; larger ones are queued, so that reading an
/// old process's many libraries never delays a new program's tables.
const BUILD_NOW_READ_BYTES: u64 = 256 << 10;

/// Files waiting for their tables, least CFI first (the build time grows
/// with it): a fresh small program is not kept waiting behind a
/// compiler's 100 MiB library.
#[derive(Default)]
struct BuildQueue {
    /// (bytes of CFI, file id).
    waiting: BinaryHeap<Reverse<(u64, u32)>>,
    files: HashMap<u32, Arc<ModuleFile>>,
    /// Builds under way (one per builder thread at most).
    running: u32,
    stop: bool,
}

/// The second builder thread takes only files with at most this much CFI
/// (about ten milliseconds): while the first spends seconds on a compiler's
/// library, a program that just got its first samples is not kept
/// waiting.
const QUICK_BUILD_CFI_BYTES: u64 = 1 << 20;

/// The queue and its signal (a file queued, a build done, stop).
type Builds = Arc<(Mutex<BuildQueue>, Condvar)>;

/// Publishes mappings and tables now and on request until stopped.
pub struct TableLoader {
    shared: Arc<Mutex<Loader>>,
    builds: Builds,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    builders: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for TableLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableLoader").finish_non_exhaustive()
    }
}

impl TableLoader {
    /// Takes over the table maps.
    pub(crate) fn new(
        procs: aya::maps::Map,
        file_state: aya::maps::Map,
        pages: aya::maps::Map,
        rows: MapData,
        row_capacity: u32,
    ) -> Result<Self, String> {
        let procs = BpfHashMap::try_from(procs).map_err(|e| e.to_string())?;
        let file_state = Array::try_from(file_state).map_err(|e| e.to_string())?;
        let pages = BpfHashMap::try_from(pages).map_err(|e| e.to_string())?;
        let rows = RowsMap::new(rows, row_capacity as usize).map_err(|e| format!("mapping the rows map: {e}"))?;
        let stats = TableStats { row_capacity: row_capacity as u64, ..TableStats::default() };
        let scratch = Box::new(ProcMaps { count: 0, _pad: 0, maps: [MapEntry::default(); MAX_MAPPINGS] });
        let builds: Builds = Arc::default();
        let mut loader = Loader {
            procs,
            file_state,
            pages,
            rows,
            space: RowSpace::new(row_capacity as usize),
            installed: HashMap::new(),
            evicted: std::collections::HashSet::new(),
            tick: 0,
            next_id: VDSO_FILE_ID + 1,
            files: HashMap::new(),
            modules: Modules::default(),
            stats,
            proc_root: "/proc".into(),
            scratch,
            builds: builds.clone(),
            live: HashMap::new(),
            history_keys: HashMap::new(),
            on_demand: false,
            waiting_for_frame: HashSet::new(),
            deferred: BinaryHeap::new(),
            deferred_files: HashMap::new(),
            defer_builds: false,
            dirty: HashSet::new(),
            read_at: None,
            history: perfkit_safeio::Budget::process().start("the mapping history of the processes sampled"),
        };
        loader.load_vdso();
        let shared = Arc::new(Mutex::new(loader));
        let mut builders = Vec::new();
        for (name, quick_only) in [("perfkit-build", None), ("perfkit-build-quick", Some(QUICK_BUILD_CFI_BYTES))] {
            let (for_thread, queue) = (shared.clone(), builds.clone());
            let spawned = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || build_tables(&for_thread, &queue, quick_only))
                .map_err(|error| crate::ProbeError::Thread { what: "table builder", error }.to_string());
            match spawned {
                Ok(handle) => builders.push(handle),
                Err(e) => {
                    // Dropped: the builder already started is stopped.
                    drop(Self { shared, builds, stop: Arc::new(AtomicBool::new(false)), thread: None, builders });
                    return Err(e);
                }
            }
        }
        Ok(Self { shared, builds, stop: Arc::new(AtomicBool::new(false)), thread: None, builders })
    }

    /// Waits until every table queued so far is built (the selected
    /// processes' at start, so that their first samples are walked with
    /// them).
    pub(crate) fn wait_built(&self) {
        let (queue, signal) = &*self.builds;
        let mut q = queue.lock().expect("build queue lock");
        while !q.stop && (!q.waiting.is_empty() || q.running > 0) {
            q = signal.wait(q).expect("build queue lock");
        }
    }

    /// Publishes `pid`'s mappings (and loads their files' tables) now.
    pub(crate) fn publish(&self, pid: u32) {
        self.shared.lock().expect("table loader lock").publish(pid);
    }

    /// Builds the table of a file a process will map (the program a held
    /// command is about to run), so that it is ready at its exec.
    pub(crate) fn prepare(&self, path: &Path) {
        self.shared.lock().expect("table loader lock").prepare(path);
    }

    /// Starts the thread that serves the kernel side's requests, and with
    /// `events` learns processes and mappings from the kernel's events as
    /// they happen; with `on_demand` (the whole machine, with events),
    /// large files' tables wait for a walk to reach them.
    pub(crate) fn serve(
        &mut self,
        mut requests: RingBuf<MapData>,
        mut events: Option<TaskEvents>,
        on_demand: bool,
    ) -> Result<(), crate::ProbeError> {
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        {
            let mut loader = shared.lock().expect("table loader lock");
            loader.stats.events = events.is_some();
            loader.on_demand = on_demand && events.is_some();
            loader.defer_builds = on_demand && events.is_some();
        }
        let thread = std::thread::Builder::new()
            .name("perfkit-tables".into())
            .spawn(move || {
                if events.is_some() {
                    realtime();
                }
                let mut fds = vec![libc::pollfd { fd: requests.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                if let Some(events) = &events {
                    fds.extend(events.fds().map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }));
                }
                let mut happened: Vec<TaskEvent> = Vec::new();
                loop {
                    let stopping = stop.load(Ordering::Relaxed);
                    let pass = Instant::now();
                    let mut batch: Vec<Request> = Vec::new();
                    while let Some(item) = requests.next() {
                        if item.len() >= size_of::<Request>() {
                            // SAFETY: the ring buffer item holds a Request
                            // the kernel side wrote; read it unaligned.
                            batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Request>()) });
                        }
                    }
                    // Then the events: every record written before the
                    // requests just read (the exec or mmap a request
                    // follows) is among them, so a request for a process
                    // whose mappings they describe is served without
                    // reading `/proc`.
                    if let Some(events) = &mut events {
                        events.drain(&mut happened);
                    }
                    // Tables asked for by a walk: queued for the builder
                    // (the request names a file, not a process).
                    batch.retain(|r| {
                        if r.kind != REQUEST_TABLE {
                            return true;
                        }
                        shared.lock().expect("table loader lock").on_table_request(r.tgid);
                        false
                    });
                    batch.sort_by_key(|r| (r.tgid, std::cmp::Reverse(r.kind)));
                    batch.dedup_by_key(|r| r.tgid);
                    let mut pending = batch.into_iter();
                    // Processes published from the events in this pass:
                    // their requests are answered already.
                    let mut fresh: HashSet<u32> = HashSet::new();
                    loop {
                        // New programs first, between two requests: a
                        // request may read an old process's mappings.
                        if !happened.is_empty() {
                            let mut loader = shared.lock().expect("table loader lock");
                            for event in happened.drain(..) {
                                loader.on_event(event);
                            }
                            fresh.extend(loader.publish_dirty());
                        }
                        let Some(req) = pending.next() else { break };
                        {
                            let mut loader = shared.lock().expect("table loader lock");
                            loader.stats.requests += 1;
                            if fresh.contains(&req.tgid) {
                                loader.stats.requests_from_events += 1;
                            } else {
                                loader.on_request(req, events.is_some());
                            }
                        }
                        if let Some(events) = &mut events {
                            events.drain(&mut happened);
                        }
                    }
                    shared.lock().expect("table loader lock").read_at = Some(pass);
                    if stopping {
                        break;
                    }
                    // One table, then the events and requests again.
                    if shared.lock().expect("table loader lock").build_next_deferred() {
                        continue;
                    }
                    // SAFETY: valid pollfds; a timeout so `stop` is seen.
                    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
                }
            })
            .map_err(|error| crate::ProbeError::Thread { what: "table loader", error })?;
        self.thread = Some(thread);
        Ok(())
    }

    /// One page of file `id`'s table as the kernel side reads it (the
    /// page's rows, or frame pointers for a file without CFI); `None`
    /// while the table is not loaded. For walks finished in user space.
    pub(crate) fn page_rows(&self, id: u32, page: u32) -> Option<crate::late::PageRows> {
        self.shared.lock().expect("table loader lock").page_rows(id, page)
    }

    /// Finishes late walks with the mappings and tables known so far, for
    /// the late-walk reader while sampling (see [`crate::late::FinishNow`]).
    pub(crate) fn finisher(&self) -> crate::late::FinishNow {
        let shared = self.shared.clone();
        Box::new(move |records| shared.lock().expect("table loader lock").finish_walks(records))
    }

    /// What was loaded so far.
    pub fn stats(&self) -> TableStats {
        let loader = self.shared.lock().expect("table loader lock");
        TableStats { files_on_demand: loader.waiting_for_frame.len() as u64, ..loader.stats }
    }

    /// Stops serving requests and hands over what symbolization needs.
    pub(crate) fn finish(&mut self) -> (Modules, TableStats) {
        self.stop_threads();
        let mut loader = self.shared.lock().expect("table loader lock");
        let stats = TableStats { files_on_demand: loader.waiting_for_frame.len() as u64, ..loader.stats };
        (std::mem::take(&mut loader.modules), stats)
    }
}

impl TableLoader {
    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        {
            let (queue, signal) = &*self.builds;
            queue.lock().expect("build queue lock").stop = true;
            signal.notify_all();
        }
        for t in self.builders.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for TableLoader {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// Puts the calling thread (the loader) in the real-time class at the
/// lowest priority, where the kernel lets it: on a saturated machine a
/// thread of the normal class woken by an exec may wait tens of
/// milliseconds for a CPU, and a program that lives 0.1 s would have a
/// tenth of its samples taken before its mappings are published. The
/// loader's work per wake-up is small and bounded (tables of files up to
/// `BUILD_NOW_BYTES`; larger ones go to the builder thread, which stays in
/// the normal class), and the kernel's real-time throttling still leaves
/// other tasks 5 % of each CPU.
fn realtime() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sets the calling thread's policy; `param` is valid.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "the table loader stays in the normal class");
    }
}

/// Whether a file's CFI (`.eh_frame`, `.debug_frame`, `.gopclntab`) is
/// at most [`BUILD_NOW_CFI_BYTES`]: its table takes a few milliseconds at
/// most, whatever the file's size (a C library, a program with large
/// data), and is built at once rather than waiting, in the builder's
/// queue, behind a compiler's library for seconds.
fn little_cfi(file: &ModuleFile) -> bool {
    file.map().is_ok_and(|data| perfkit_unwind::cfi_size(&data) <= BUILD_NOW_CFI_BYTES)
}

/// A builder thread: builds queued tables, least CFI first, outside the
/// loader's lock (sampling and the loader go on), then installs each.
/// With `quick_only`, only files with at most that many bytes of CFI.
fn build_tables(shared: &Mutex<Loader>, builds: &Builds, quick_only: Option<u64>) {
    let (queue, signal) = &**builds;
    let mut built = false;
    loop {
        let (id, file) = {
            let mut q = queue.lock().expect("build queue lock");
            if built {
                q.running = q.running.saturating_sub(1);
                signal.notify_all();
            }
            loop {
                if q.stop {
                    return;
                }
                if let Some(&Reverse((cfi, id))) = q.waiting.peek()
                    && quick_only.is_none_or(|max| cfi <= max)
                {
                    q.waiting.pop();
                    let file = q.files.remove(&id).expect("a queued file");
                    q.running += 1;
                    break (id, file);
                }
                q = signal.wait(q).expect("build queue lock");
            }
        };
        built = true;
        let started = Instant::now();
        let encoded = encode_table(&file);
        let took = started.elapsed();
        shared.lock().expect("table loader lock").install(id, &file, encoded, took);
    }
}

/// A file's table as rows per page; `None`: the file has no usable CFI
/// (walked with frame pointers).
fn encode_table(file: &ModuleFile) -> Option<Vec<(u32, Vec<Row>)>> {
    // Built within the process's memory budget: a file whose CFI would
    // take more (one FDE of millions of rows, huge compressed sections)
    // gets no table, is walked with frame pointers, and is named in the
    // profile's notes.
    let data = file.map().ok()?;
    let table = match UnwindTable::build_in(&data, perfkit_safeio::Budget::process(), file.path()) {
        Ok(table) => table,
        Err(e @ perfkit_unwind::UnwindError::Budget(_)) => {
            perfkit_target::notices::push(format!("{e}; walked with frame pointers"));
            return None;
        }
        Err(e @ perfkit_unwind::UnwindError::TooManyRows { .. }) => {
            perfkit_target::notices::push(format!("{}: {e}; walked with frame pointers", file.path()));
            return None;
        }
        Err(_) => return None,
    };
    if table.rows().is_empty() {
        return None;
    }
    Some(
        table
            .pages()
            .map(|(page, rows, carried)| {
                let rows = perfkit_unwind::encode_page(rows, carried)
                    .into_iter()
                    .take(MAX_ROWS_PER_PAGE as usize)
                    .map(|(pc_low, cfa, rbp, cfa_offset, rbp_offset)| Row { pc_low, cfa, rbp, cfa_offset, rbp_offset })
                    .collect();
                (page, rows)
            })
            .collect(),
    )
}

impl Loader {
    /// One page of file `id`'s table as the kernel side reads it; `None`
    /// while the table is not loaded.
    fn page_rows(&self, id: u32, page: u32) -> Option<crate::late::PageRows> {
        match self.file_state.get(&id, 0) {
            Ok(FILE_NO_CFI) => return Some(crate::late::PageRows::FramePointers),
            Ok(FILE_LOADED) => {}
            _ => return None,
        }
        if !self.installed.get(&id)?.pages.contains(&page) {
            return Some(crate::late::PageRows::Rows(None));
        }
        let info = self.pages.get(&PageKey { file: id, page }, 0).ok()?;
        Some(crate::late::PageRows::Rows(Some(self.rows.read(info.start as usize, info.count as usize)?)))
    }

    /// Finishes what it can of `records` with the mappings and tables
    /// known now: each one's frames after its first `n`, or whether to try
    /// again (its mapping or table not known yet).
    fn finish_walks(&self, records: &[crate::late::LateRecord]) -> Vec<Result<(Vec<u64>, u8), bool>> {
        use crate::late::{Process, Unfinished};
        let read_at = self.read_at;
        let ids: HashMap<*const ModuleFile, u32> =
            self.modules.files.iter().map(|(&id, f)| (Arc::as_ptr(f), id)).collect();
        let mut tables = HashMap::new();
        let mut places = HashMap::new();
        let rows = |id, page| self.page_rows(id, page);
        records
            .iter()
            .map(|record| {
                // Not before the loader read what came before its sample.
                if read_at.is_none_or(|at| at <= record.received) {
                    return Err(true);
                }
                let history = self.modules.processes.get(&record.key.tgid).map_or(&[][..], Vec::as_slice);
                let mut known = Process {
                    tgid: record.key.tgid,
                    history,
                    ids: &ids,
                    rows: &rows,
                    tables: &mut tables,
                    places: &mut places,
                };
                // The kernel's frames are joined at the end: placeholders
                // of the same number here.
                match crate::late::finish(&vec![0; record.n], record, &mut known) {
                    Ok((frames, end)) => Ok((frames[record.n..].to_vec(), end)),
                    Err(Unfinished::Unmapped(_) | Unfinished::NoTable(_)) => Err(true),
                    Err(Unfinished::Prefix | Unfinished::Stopped(_)) => Err(false),
                }
            })
            .collect()
    }

    fn load_vdso(&mut self) {
        let Some((_, image)) = perfkit_target::own_vdso() else { return };
        let Ok(file) = ModuleFile::from_bytes("[vdso]", image) else { return };
        let file = Arc::new(file);
        self.build(VDSO_FILE_ID, &file);
        self.modules.files.insert(VDSO_FILE_ID, file);
    }

    fn prepare(&mut self, path: &Path) {
        let Ok(file) = ModuleFile::open_path(path) else { return };
        let (dev, ino) = file.identity();
        if self.files.contains_key(&(dev, ino)) || self.next_id >= MAX_FILES {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let file = Arc::new(file);
        self.build(id, &file);
        self.modules.files.insert(id, file.clone());
        self.files.insert((dev, ino), FileSlot { id, file: Some(file) });
    }

    /// Reads `pid`'s mappings, loads the tables of files not seen before,
    /// and publishes the mappings to the kernel side.
    fn publish(&mut self, pid: u32) {
        let text = match read_maps(&self.proc_root.join(format!("{pid}/maps"))) {
            Some((t, cut)) if !t.is_empty() => {
                if cut {
                    self.stats.maps_truncated += 1;
                }
                t
            }
            _ => return,
        };
        self.modules.note_uid(&self.proc_root, pid);
        let mut entries: Vec<MapEntry> = Vec::new();
        for line in parse_maps(&text).into_iter().filter(|l| l.perms.contains('x')) {
            let file = if line.path == "[vdso]" {
                VDSO_FILE_ID
            } else if line.inode == 0 || !line.path.starts_with('/') {
                // Anonymous executable memory: JIT code.
                0
            } else {
                self.file_id(pid, line.dev, line.inode, line.start, line.end, BUILD_NOW_READ_BYTES)
            };
            // Mappings already in the history are left out by `remember`
            // (a hash set per process, not a scan of the history).
            let module = self.modules.files.get(&file).filter(|_| file != 0).cloned();
            let mapping =
                Mapping { start: line.start, end: line.end, offset: line.offset, path: line.path, file: module };
            self.remember(pid, mapping);
            entries.push(MapEntry { start: line.start, end: line.end, offset: line.offset, file, _pad: 0 });
        }
        entries.sort_by_key(|e| e.start);
        let live = LiveProcess { maps: entries, ..LiveProcess::default() };
        self.live.insert(pid, live);
        self.publish_live(pid);
    }

    /// Keeps a mapping in `pid`'s history for symbolization, within the
    /// memory budget and [`MAX_HISTORY_PER_PROCESS`] (counted in
    /// `history_dropped` beyond them); a mapping already kept for `pid`
    /// (since its last exec) is not kept again.
    fn remember(&mut self, pid: u32, mapping: Mapping) {
        let key = mapping_key(mapping.start, mapping.end, mapping.offset, &mapping.path);
        if self.history_keys.get(&pid).is_some_and(|keys| keys.contains(&key)) {
            return;
        }
        if self.modules.processes.get(&pid).is_some_and(|h| h.len() >= MAX_HISTORY_PER_PROCESS) {
            self.stats.history_dropped += 1;
            return;
        }
        // The mapping, its path, and its key in the hash set.
        let cost = (std::mem::size_of::<Mapping>() + mapping.path.len() + 16 + 16) as u64;
        if self.history.grow(cost).is_err() {
            self.stats.history_dropped += 1;
            return;
        }
        self.history_keys.entry(pid).or_default().insert(key);
        self.modules.processes.entry(pid).or_default().push(mapping);
    }

    /// Writes what is known of `pid`'s mappings to `PROCS`.
    fn publish_live(&mut self, pid: u32) {
        let Some(live) = self.live.get_mut(&pid) else { return };
        let entries = &live.maps;
        let n = entries.len().min(MAX_MAPPINGS);
        self.scratch.count = n as u32;
        self.scratch.maps[..n].copy_from_slice(&entries[..n]);
        if self.procs.insert(pid, *self.scratch, 0).is_ok() {
            let over = entries.len().saturating_sub(MAX_MAPPINGS);
            if over > live.dropped {
                self.stats.mappings_dropped += (over - live.dropped) as u64;
                live.dropped = over;
            }
            if !live.published {
                self.stats.processes += 1;
            }
            live.published = true;
        }
    }

    /// A request of the kernel side: a process it has no mappings for
    /// (new, or after an exec), or an address in none of them.
    fn on_request(&mut self, req: Request, events: bool) {
        if req.kind == REQUEST_EXEC {
            tracing::debug!(pid = req.tgid, "exec: mappings again");
        }
        // Known from the events and not yet published, or published
        // before the exec's tracepoint dropped them: published again as
        // they are. Otherwise (a process older than the events, or an
        // address the events did not report), `/proc/PID/maps` is read.
        let known = events && self.live.get(&req.tgid).is_some_and(|l| req.kind == REQUEST_EXEC || !l.published);
        if known {
            self.stats.requests_from_events += 1;
            self.publish_live(req.tgid);
        } else {
            self.publish(req.tgid);
        }
    }

    /// Writes to `PROCS` the mappings of the processes whose mappings
    /// the events changed (see `dirty`); a process that exited or called
    /// exec since is not written (`live` no longer has its old mappings).
    /// Returns the processes written.
    fn publish_dirty(&mut self) -> Vec<u32> {
        let mut dirty: Vec<u32> = self.dirty.drain().collect();
        dirty.retain(|pid| self.live.get(pid).is_some_and(|l| !l.published && !l.maps.is_empty()));
        for &pid in &dirty {
            self.publish_live(pid);
        }
        dirty
    }

    /// What a process did, as the kernel reported it.
    fn on_event(&mut self, event: TaskEvent) {
        match event {
            TaskEvent::Mapped { pid, start, end, offset, dev, inode, path } => {
                self.stats.mapping_events += 1;
                if self.live.get(&pid).is_some_and(|l| l.overflowed) {
                    // Re-read from `/proc` already: until its next exec or
                    // a request, its mappings are not followed (nor kept
                    // for naming: counted as such).
                    self.stats.history_dropped += 1;
                    return;
                }
                if !self.live.contains_key(&pid) {
                    // Older than the events, or of a parent that was: its
                    // mappings, this one included, as `/proc` shows them.
                    self.publish(pid);
                    if self.live.contains_key(&pid) {
                        return;
                    }
                    // Gone already (its exec was reported on another CPU
                    // and read later): what the event says is all there
                    // is to know, kept for symbolization.
                    self.live.insert(pid, LiveProcess::default());
                }
                let file = if path == "[vdso]" {
                    VDSO_FILE_ID
                } else if inode == 0 || !path.starts_with('/') {
                    0
                } else {
                    // Opened now, through the mapping, while the process
                    // still has it: a program that has exited by the
                    // time its samples are read is still resolved.
                    self.file_id(pid, dev, inode, start, end, BUILD_NOW_BYTES)
                };
                if path.is_empty() {
                    // Anonymous code (JIT): its perf map is written by the
                    // process's user as of now, which may have changed
                    // since its exec (a server dropping root).
                    self.modules.note_uid(&self.proc_root, pid);
                }
                let module = self.modules.files.get(&file).filter(|_| file != 0).cloned();
                self.remember(pid, Mapping { start, end, offset, path, file: module });
                let live = self.live.get_mut(&pid).expect("checked above");
                live.insert(MapEntry { start, end, offset, file, _pad: 0 });
                if live.maps.len() > LIVE_MAPPINGS_REREAD {
                    // Unmaps are not reported: a process that maps code at
                    // ever new addresses would grow this list, and the
                    // work per event with it. Past the bound, what
                    // `/proc` says replaces it.
                    self.live.remove(&pid);
                    self.publish(pid);
                    self.live.entry(pid).or_default().overflowed = true;
                    return;
                }
                self.dirty.insert(pid);
            }
            TaskEvent::Exec { pid } => {
                self.stats.task_events += 1;
                self.modules.note_uid(&self.proc_root, pid);
                self.live.insert(pid, LiveProcess::default());
                // The old program's mappings leave the kernel side, if
                // the exec tracepoint has not dropped them already (a
                // record read before the tracepoint fired); the new
                // program's mmaps follow.
                let _ = self.procs.remove(&pid);
                // New mappings: a mapping seen before the exec is kept
                // again if mapped again.
                self.history_keys.remove(&pid);
            }
            TaskEvent::Fork { pid, parent } => {
                self.stats.task_events += 1;
                // The child starts as a copy of its parent; published when
                // it first gets a sample (most children exec first).
                if let Some(p) = self.live.get(&parent) {
                    let child =
                        LiveProcess { maps: p.maps.clone(), overflowed: p.overflowed, ..LiveProcess::default() };
                    // The parent's history entries of the child's live
                    // mappings: newest first, at most FORK_HISTORY_SCAN
                    // entries, until every live mapping is matched (the
                    // work per fork does not grow with the history).
                    let mut wanted: HashSet<(u64, u64)> = child.maps.iter().map(|c| (c.start, c.end)).collect();
                    let mut history: Vec<Mapping> = Vec::new();
                    if let Some(h) = self.modules.processes.get(&parent) {
                        for m in h.iter().rev().take(FORK_HISTORY_SCAN) {
                            if wanted.is_empty() {
                                break;
                            }
                            if wanted.remove(&(m.start, m.end)) {
                                history.push(m.clone());
                            }
                        }
                    }
                    history.reverse();
                    for mapping in history {
                        self.remember(pid, mapping);
                    }
                    if let Some(&uid) = self.modules.uids.get(&parent) {
                        self.modules.uids.insert(pid, uid);
                    }
                    self.live.insert(pid, child);
                }
            }
            TaskEvent::Exit { pid } => {
                self.stats.task_events += 1;
                self.live.remove(&pid);
                // Its mappings leave the kernel side (the exit tracepoint
                // is not attached while the events are read).
                let _ = self.procs.remove(&pid);
                self.history_keys.remove(&pid);
            }
            TaskEvent::Lost(n) => {
                // What was missed cannot be known: every process is read
                // from `/proc` again when next asked for.
                self.stats.events_lost += n;
                self.live.clear();
                // An exec may be among the records lost: the kernel side
                // forgets every process's mappings, so that no new
                // program is walked with its old one's, and asks again.
                let published: Vec<u32> = self.procs.keys().filter_map(Result::ok).collect();
                for pid in published {
                    let _ = self.procs.remove(&pid);
                }
            }
        }
    }

    /// The id of the file with this device and inode, opening it through
    /// the mapping and loading its table the first time; 0 (walked as
    /// anonymous memory) when it cannot be opened.
    fn file_id(&mut self, pid: u32, dev: u64, ino: u64, start: u64, end: u64, build_now: u64) -> u32 {
        if let Some(slot) = self.files.get(&(dev, ino))
            && slot.file.is_some()
        {
            let id = slot.id;
            self.touch(id, build_now);
            return id;
        }
        let file = match ModuleFile::open_mapping(&self.proc_root, pid, start, end) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                tracing::debug!(pid, %e, "could not open a mapped file");
                self.stats.files_unopened += 1;
                return 0;
            }
        };
        // A file prepared by path has the same identity.
        if let Some(slot) = self.files.get(&file.identity())
            && slot.file.is_some()
        {
            let id = slot.id;
            self.touch(id, build_now);
            return id;
        }
        if self.next_id >= MAX_FILES {
            return 0;
        }
        let id = self.next_id;
        self.next_id += 1;
        // A small file's table takes a millisecond or less: built now, so
        // a fresh program's is ready before its samples. A large one (a
        // compiler's libraries) is built by the builder thread, while the
        // loader goes on serving; its frames are walked with frame
        // pointers until then.
        self.build_or_defer(id, &file, build_now);
        self.modules.files.insert(id, file.clone());
        self.files.insert((dev, ino), FileSlot { id, file: Some(file.clone()) });
        self.files.insert(file.identity(), FileSlot { id, file: Some(file) });
        id
    }

    /// Builds and publishes a file's table under `id` now.
    fn build(&mut self, id: u32, file: &ModuleFile) {
        let started = Instant::now();
        let encoded = encode_table(file);
        self.install(id, file, encoded, started.elapsed());
    }

    /// Builds a file's table now, or, while the events are read, once
    /// the mappings known are published (see `deferred`).
    fn build_soon(&mut self, id: u32, file: &Arc<ModuleFile>) {
        if !self.defer_builds {
            self.build(id, file);
            return;
        }
        let cfi = file.map().map_or(file.size(), |data| perfkit_unwind::cfi_size(&data));
        self.deferred.push(Reverse((cfi, id)));
        self.deferred_files.insert(id, file.clone());
    }

    /// Builds the deferred table with the least CFI; false when none is
    /// left.
    fn build_next_deferred(&mut self) -> bool {
        let Some(Reverse((_, id))) = self.deferred.pop() else { return false };
        if let Some(file) = self.deferred_files.remove(&id) {
            self.build(id, &file);
        }
        true
    }

    /// Queues a file's table for the builder thread; its frames are
    /// walked with frame pointers until it is installed.
    fn queue(&self, id: u32, file: Arc<ModuleFile>) {
        let cfi = file.map().map_or(file.size(), |data| perfkit_unwind::cfi_size(&data));
        let (queue, signal) = &*self.builds;
        let mut q = queue.lock().expect("build queue lock");
        q.waiting.push(Reverse((cfi, id)));
        q.files.insert(id, file);
        signal.notify_all();
    }

    /// Publishes a built table (or the lack of one) under `id`.
    fn install(&mut self, id: u32, file: &ModuleFile, encoded: Option<Vec<(u32, Vec<Row>)>>, took: Duration) {
        let state = match encoded {
            Some(pages) => self.publish_rows(id, &pages),
            None => {
                self.stats.files_without_cfi += 1;
                FILE_NO_CFI
            }
        };
        if state == FILE_LOADED {
            self.stats.files += 1;
        }
        let _ = self.file_state.set(id, state, 0);
        self.stats.build_time += took;
        tracing::debug!(file = file.path(), id, state, ?took, "unwind table");
    }

    /// Writes a table's rows and pages; returns the file's state. When
    /// the rows do not fit, the tables of files no live process maps are
    /// evicted, least recently used first, until they do.
    fn publish_rows(&mut self, id: u32, encoded: &[(u32, Vec<Row>)]) -> u32 {
        let needed: usize = encoded.iter().map(|(_, r)| r.len()).sum();
        let Some(start) = self.space.alloc(needed).or_else(|| self.evict_for(needed)) else {
            self.stats.files_over_capacity += 1;
            return FILE_NO_CFI;
        };
        let mut at = start;
        let mut pages = Vec::with_capacity(encoded.len());
        for (page, rows) in encoded {
            let info = PageInfo { start: at as u32, count: rows.len() as u32 };
            self.rows.write(at, rows);
            at += rows.len();
            let _ = self.pages.insert(PageKey { file: id, page: *page }, info, 0);
            pages.push(*page);
        }
        self.tick += 1;
        self.installed.insert(id, Installed { start, len: needed, pages, last_used: self.tick });
        self.stats.rows += needed as u64;
        FILE_LOADED
    }

    /// Evicts unused tables, least recently used first, until `needed`
    /// rows are free in one range; returns its start, taken.
    fn evict_for(&mut self, needed: usize) -> Option<usize> {
        if needed > self.rows.len {
            return None;
        }
        let mapped: std::collections::HashSet<u32> =
            self.live.values().flat_map(|l| l.maps.iter().map(|m| m.file)).collect();
        let mut unused: Vec<(u64, u32)> = self
            .installed
            .iter()
            .filter(|(id, _)| !mapped.contains(id) && **id != VDSO_FILE_ID)
            .map(|(id, t)| (t.last_used, *id))
            .collect();
        unused.sort_unstable();
        for (_, id) in unused {
            self.evict(id);
            if let Some(start) = self.space.alloc(needed) {
                return Some(start);
            }
        }
        None
    }

    /// Drops a file's table: the kernel walks its frames with frame
    /// pointers (its state is pending) until it is rebuilt. A walk on
    /// another CPU that looked up one of its pages just before may read
    /// rows another table is given: one frame of one sample, at worst.
    fn evict(&mut self, id: u32) {
        let Some(t) = self.installed.remove(&id) else { return };
        let _ = self.file_state.set(id, perfkit_probes_common::unwind::FILE_PENDING, 0);
        for page in t.pages {
            let _ = self.pages.remove(&PageKey { file: id, page });
        }
        self.space.release(t.start, t.len);
        self.evicted.insert(id);
        self.stats.files = self.stats.files.saturating_sub(1);
        self.stats.rows = self.stats.rows.saturating_sub(t.len as u64);
        self.stats.files_evicted += 1;
        self.stats.rows_evicted += t.len as u64;
        tracing::debug!(id, rows = t.len, "unwind table evicted");
    }

    /// A file is mapped (again): its table counts as used now, and is
    /// rebuilt if it was evicted.
    fn touch(&mut self, id: u32, build_now: u64) {
        self.tick += 1;
        if let Some(t) = self.installed.get_mut(&id) {
            t.last_used = self.tick;
        } else if self.evicted.remove(&id)
            && let Some(file) = self.modules.files.get(&id).cloned()
        {
            self.build_or_defer(id, &file, build_now);
        }
    }

    /// A file up to `build_now` bytes has its table built now; a larger
    /// one is queued for the builder thread, or, on a whole machine,
    /// left until a walk reaches a frame in it (its frames are walked
    /// with frame pointers until its table is loaded, as they are while
    /// it is queued).
    fn build_or_defer(&mut self, id: u32, file: &Arc<ModuleFile>, build_now: u64) {
        if file.size() <= build_now || (self.on_demand && little_cfi(file)) {
            self.build_soon(id, file);
        } else if self.on_demand {
            if self.file_state.set(id, FILE_ON_DEMAND, 0).is_ok() {
                self.waiting_for_frame.insert(id);
            } else {
                self.queue(id, file.clone());
            }
        } else {
            self.queue(id, file.clone());
        }
    }

    /// A walk reached a frame in file `id`, left for that moment: its
    /// table is queued for the builder thread. A file not waiting (asked
    /// twice, or an id the loader never gave) is ignored.
    fn on_table_request(&mut self, id: u32) {
        if !self.waiting_for_frame.remove(&id) {
            return;
        }
        let Some(file) = self.modules.files.get(&id).cloned() else { return };
        self.stats.tables_requested += 1;
        tracing::debug!(file = file.path(), id, "table asked for by a walk");
        self.queue(id, file);
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_MAPS_READ, RowSpace, mapping_key, read_maps};

    #[test]
    fn a_maps_file_is_read_up_to_the_cap_at_a_whole_line() {
        let dir = std::env::temp_dir().join(format!("perfkit-maps-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("maps");
        let line = "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n";
        std::fs::write(&path, line.repeat(3)).unwrap();
        let (text, cut) = read_maps(&path).unwrap();
        assert_eq!((text.len(), cut), (3 * line.len(), false));
        let n = MAX_MAPS_READ as usize / line.len() + 10;
        std::fs::write(&path, line.repeat(n)).unwrap();
        let (text, cut) = read_maps(&path).unwrap();
        assert!(cut && text.len() as u64 <= MAX_MAPS_READ && text.ends_with('\n'));
        assert_eq!(text.len() % line.len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mapping_keys_tell_mappings_apart() {
        assert_eq!(mapping_key(1, 2, 3, "/a"), mapping_key(1, 2, 3, "/a"));
        assert_ne!(mapping_key(1, 2, 3, "/a"), mapping_key(1, 2, 3, "/b"));
        assert_ne!(mapping_key(1, 2, 3, "/a"), mapping_key(1, 2, 4, "/a"));
    }

    #[test]
    fn row_space_fits_first_and_merges_what_is_released() {
        let mut space = RowSpace::new(100);
        assert_eq!(space.alloc(40), Some(0));
        assert_eq!(space.alloc(40), Some(40));
        assert_eq!(space.alloc(30), None);
        assert_eq!(space.alloc(20), Some(80));
        assert_eq!(space.alloc(1), None);
        // Two separate holes of 40 do not hold 60 ...
        space.release(0, 40);
        assert_eq!(space.alloc(60), None);
        // ... merged with their neighbour they do.
        space.release(40, 40);
        assert_eq!(space.free, vec![(0, 80)]);
        assert_eq!(space.alloc(60), Some(0));
        space.release(80, 20);
        assert_eq!(space.free, vec![(60, 40)]);
        space.release(0, 60);
        assert_eq!(space.free, vec![(0, 100)]);
        assert_eq!(RowSpace::new(0).alloc(1), None);
    }
}
