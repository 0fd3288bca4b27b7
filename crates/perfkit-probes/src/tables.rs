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
    collections::HashMap,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, RingBuf};
use perfkit_probes_common::unwind::{
    FILE_LOADED, FILE_NO_CFI, MAX_FILES, MAX_MAPPINGS, MAX_ROWS_PER_PAGE, MapEntry, PageInfo, PageKey, ProcMaps,
    REQUEST_EXEC, Request, Row, VDSO_FILE_ID,
};
use perfkit_target::{Mapping, ModuleFile, Modules, parse_maps};
use perfkit_unwind::UnwindTable;

/// What the loader did, for the summary and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// Files whose tables were loaded.
    pub files: u64,
    /// Rows loaded.
    pub rows: u64,
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

impl Drop for RowsMap {
    fn drop(&mut self) {
        let bytes = (self.len * size_of::<Row>()).next_multiple_of(4096);
        // SAFETY: unmapping exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), bytes) };
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
    next_row: usize,
    next_id: u32,
    /// Files by (device, inode) as `/proc/PID/maps` shows them.
    files: HashMap<(u64, u64), FileSlot>,
    modules: Modules,
    stats: TableStats,
    proc_root: PathBuf,
    /// A private copy of the published mappings, for `ProcMaps` values.
    scratch: Box<ProcMaps>,
}

/// Publishes mappings and tables now and on request until stopped.
pub struct TableLoader {
    shared: Arc<Mutex<Loader>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
        let mut loader = Loader {
            procs,
            file_state,
            pages,
            rows,
            next_row: 0,
            next_id: VDSO_FILE_ID + 1,
            files: HashMap::new(),
            modules: Modules::default(),
            stats,
            proc_root: "/proc".into(),
            scratch,
        };
        loader.load_vdso();
        Ok(Self { shared: Arc::new(Mutex::new(loader)), stop: Arc::new(AtomicBool::new(false)), thread: None })
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

    /// Starts the thread that serves the kernel side's requests.
    pub(crate) fn serve(&mut self, mut requests: RingBuf<MapData>) -> Result<(), crate::ProbeError> {
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("perfkit-tables".into())
            .spawn(move || {
                let fd = requests.as_raw_fd();
                while !stop.load(Ordering::Relaxed) {
                    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                    // SAFETY: one valid pollfd; a timeout so `stop` is seen.
                    unsafe { libc::poll(&mut pfd, 1, 50) };
                    let mut batch: Vec<Request> = Vec::new();
                    while let Some(item) = requests.next() {
                        if item.len() >= size_of::<Request>() {
                            // SAFETY: the ring buffer item holds a Request
                            // the kernel side wrote; read it unaligned.
                            batch.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<Request>()) });
                        }
                    }
                    if batch.is_empty() {
                        continue;
                    }
                    batch.sort_by_key(|r| (r.tgid, std::cmp::Reverse(r.kind)));
                    batch.dedup_by_key(|r| r.tgid);
                    let mut loader = shared.lock().expect("table loader lock");
                    for req in batch {
                        loader.stats.requests += 1;
                        if req.kind == REQUEST_EXEC {
                            tracing::debug!(pid = req.tgid, "exec: reading mappings again");
                        }
                        loader.publish(req.tgid);
                    }
                }
            })
            .map_err(|error| crate::ProbeError::Thread { what: "table loader", error })?;
        self.thread = Some(thread);
        Ok(())
    }

    /// What was loaded so far.
    pub fn stats(&self) -> TableStats {
        self.shared.lock().expect("table loader lock").stats
    }

    /// Stops serving requests and hands over what symbolization needs.
    pub(crate) fn finish(&mut self) -> (Modules, TableStats) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut loader = self.shared.lock().expect("table loader lock");
        (std::mem::take(&mut loader.modules), loader.stats)
    }
}

impl Drop for TableLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Loader {
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
        let text = match std::fs::read_to_string(self.proc_root.join(format!("{pid}/maps"))) {
            Ok(t) if !t.is_empty() => t,
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
                self.file_id(pid, line.dev, line.inode, line.start, line.end)
            };
            let history = self.modules.processes.entry(pid).or_default();
            let seen = history
                .iter()
                .any(|m| m.start == line.start && m.end == line.end && m.offset == line.offset && m.path == line.path);
            if !seen {
                let module = self.modules.files.get(&file).filter(|_| file != 0).cloned();
                history.push(Mapping {
                    start: line.start,
                    end: line.end,
                    offset: line.offset,
                    path: line.path,
                    file: module,
                });
            }
            entries.push(MapEntry { start: line.start, end: line.end, offset: line.offset, file, _pad: 0 });
        }
        entries.sort_by_key(|e| e.start);
        if entries.len() > MAX_MAPPINGS {
            self.stats.mappings_dropped += (entries.len() - MAX_MAPPINGS) as u64;
            entries.truncate(MAX_MAPPINGS);
        }
        self.scratch.count = entries.len() as u32;
        self.scratch.maps[..entries.len()].copy_from_slice(&entries);
        if self.procs.insert(pid, *self.scratch, 0).is_ok() {
            self.stats.processes += 1;
        }
    }

    /// The id of the file with this device and inode, opening it through
    /// the mapping and loading its table the first time; 0 (walked as
    /// anonymous memory) when it cannot be opened.
    fn file_id(&mut self, pid: u32, dev: u64, ino: u64, start: u64, end: u64) -> u32 {
        if let Some(slot) = self.files.get(&(dev, ino))
            && slot.file.is_some()
        {
            return slot.id;
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
            return slot.id;
        }
        if self.next_id >= MAX_FILES {
            return 0;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.build(id, &file);
        self.modules.files.insert(id, file.clone());
        self.files.insert((dev, ino), FileSlot { id, file: Some(file.clone()) });
        self.files.insert(file.identity(), FileSlot { id, file: Some(file) });
        id
    }

    /// Builds and publishes a file's table under `id`.
    fn build(&mut self, id: u32, file: &ModuleFile) {
        let started = Instant::now();
        // Built within the process's memory budget: a file whose CFI would
        // take more (one FDE of millions of rows, huge compressed
        // sections) gets no table, is walked with frame pointers, and is
        // named in the profile's notes.
        let built = file.map().ok().and_then(|data| {
            match UnwindTable::build_in(&data, perfkit_safeio::Budget::process(), file.path()) {
                Ok(table) => Some(table),
                Err(e @ perfkit_unwind::UnwindError::Budget(_)) => {
                    perfkit_target::notices::push(format!("{e}; walked with frame pointers"));
                    None
                }
                Err(e @ perfkit_unwind::UnwindError::TooManyRows { .. }) => {
                    perfkit_target::notices::push(format!("{}: {e}; walked with frame pointers", file.path()));
                    None
                }
                Err(_) => None,
            }
        });
        let state = match built {
            Some(table) if !table.rows().is_empty() => self.publish_rows(id, &table),
            _ => {
                self.stats.files_without_cfi += 1;
                FILE_NO_CFI
            }
        };
        if state == FILE_LOADED {
            self.stats.files += 1;
        }
        let _ = self.file_state.set(id, state, 0);
        self.stats.build_time += started.elapsed();
        tracing::debug!(file = file.path(), id, state, took = ?started.elapsed(), "unwind table");
    }

    /// Writes a table's rows and pages; returns the file's state.
    fn publish_rows(&mut self, id: u32, table: &UnwindTable) -> u32 {
        let encoded: Vec<(u32, Vec<Row>)> = table
            .pages()
            .map(|(page, rows, carried)| {
                let rows = perfkit_unwind::encode_page(rows, carried)
                    .into_iter()
                    .take(MAX_ROWS_PER_PAGE as usize)
                    .map(|(pc_low, cfa, rbp, cfa_offset, rbp_offset)| Row { pc_low, cfa, rbp, cfa_offset, rbp_offset })
                    .collect();
                (page, rows)
            })
            .collect();
        let needed: usize = encoded.iter().map(|(_, r)| r.len()).sum();
        if self.next_row + needed > self.rows.len {
            self.stats.files_over_capacity += 1;
            return FILE_NO_CFI;
        }
        for (page, rows) in &encoded {
            let info = PageInfo { start: self.next_row as u32, count: rows.len() as u32 };
            self.rows.write(self.next_row, rows);
            self.next_row += rows.len();
            let _ = self.pages.insert(PageKey { file: id, page: *page }, info, 0);
        }
        self.stats.rows += needed as u64;
        FILE_LOADED
    }
}
