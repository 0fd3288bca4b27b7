//! Python stacks of a running CPython (3.8 to 3.13, x86-64), read from its
//! memory with no help from the interpreter, as py-spy does.
//!
//! [`CPython::attach`] finds `_PyRuntime` in the process's python binary
//! or libpython (its `.dynsym` or `.symtab`, plus the mapping's load bias),
//! the version (`_Py_DebugOffsets` in 3.13, `Py_Version` in 3.11 and 3.12,
//! the file name `python3.X` / `libpython3.X` before), and the offsets of
//! the structures it walks (`_Py_DebugOffsets` in 3.13; tables measured
//! from each version's headers before, see `offsets.c`).
//! [`CPython::threads`] walks interpreters → thread states → frames;
//! [`CPython::stack`] gives one thread's, by its kernel thread id.
//!
//! Every frame has its qualified name (`co_qualname` from 3.11,
//! `co_name` before), its file and its line, computed from the version's
//! line table and the frame's current instruction as CPython does.
//!
//! The target owns every byte read: each read is bounded, strings and
//! line tables are charged to a [`Budget`], and chains of interpreters,
//! threads and frames are bounded and checked for loops, so a corrupt or
//! hostile process gives an [`Error`], not a hang or a large allocation.
//! The process runs while it is read: a stack read as it changes can be
//! an error, or a mix of two moments; stop the process first (SIGSTOP)
//! for an exact picture.
//!
//! ```no_run
//! use perfkit_unwind::cpython::CPython;
//! let budget = perfkit_safeio::Budget::default();
//! let py = CPython::attach(1234, &budget)?;
//! for thread in py.threads()? {
//!     println!("thread {:?}", thread.native_tid);
//!     for f in &thread.frames {
//!         println!("  {} ({}:{})", f.qualname, f.file, f.line.unwrap_or(f.first_line));
//!     }
//! }
//! # Ok::<(), perfkit_unwind::cpython::Error>(())
//! ```

mod linetable;
pub(crate) mod locate;
pub(crate) mod memory;
mod offsets;

use std::{
    collections::{HashMap, HashSet},
    fmt, io,
    time::Instant,
};

use perfkit_safeio::{Budget, BudgetError, Charge};

pub use memory::{Memory, ProcessMemory};
use offsets::{FrameLayout, Offsets};

/// The most frames read for one thread: a deeper chain is treated as
/// corrupt (CPython's default recursion limit is 1000).
pub const MAX_FRAMES: usize = 4096;
/// The most thread states read in one interpreter.
pub const MAX_THREADS: usize = 4096;
/// The most interpreters read.
pub const MAX_INTERPRETERS: usize = 256;
/// The longest name or file name read, in characters.
pub const MAX_STRING: u64 = 4096;
/// The longest line table read, in bytes.
pub const MAX_LINE_TABLE: u64 = 1 << 20;

/// A CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// 3.
    pub major: u8,
    /// 8 to 13.
    pub minor: u8,
    /// The micro version, 0 when only the minor is known (3.8 to 3.10).
    pub micro: u8,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Reading a CPython's stacks failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No mapping of the process holds `_PyRuntime`.
    #[error("PID {pid}: not a CPython process (no _PyRuntime in its python binary or libpython)")]
    NotPython {
        /// The process.
        pid: u32,
    },
    /// A CPython outside 3.8 to 3.13, or one whose version was not found.
    #[error("PID {pid}: CPython {version}: {why}")]
    Unsupported {
        /// The process.
        pid: u32,
        /// The version, or what names it.
        version: String,
        /// Why it cannot be read.
        why: String,
    },
    /// A file of the process could not be read.
    #[error("PID {pid}: {path}: {source}")]
    File {
        /// The process.
        pid: u32,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Memory of the process could not be read.
    #[error("PID {pid}: reading {what} at {addr:#x}: {source}")]
    Read {
        /// The process.
        pid: u32,
        /// The structure read.
        what: &'static str,
        /// Where.
        addr: u64,
        /// Why (EFAULT: not mapped; ESRCH: the process ended; EPERM: no
        /// right to ptrace it).
        #[source]
        source: io::Error,
    },
    /// What was read is not what CPython would hold there: a loop, a size
    /// past a bound, an unknown string layout.
    #[error("PID {pid}: {what}")]
    Corrupt {
        /// The process.
        pid: u32,
        /// What is wrong.
        what: String,
    },
    /// What was read does not fit the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The read was not done by its deadline ([`CPython::stack_by`]).
    #[error("PID {pid}: its Python stack was not read by the deadline")]
    Late {
        /// The process.
        pid: u32,
    },
}

/// One Python frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyFrame {
    /// `co_qualname` (`Class.method`, `outer.<locals>.inner`) from 3.11;
    /// `co_name` before.
    pub qualname: String,
    /// `co_filename`.
    pub file: String,
    /// The line being run, from the line table; `None` where the table
    /// has none for the instruction.
    pub line: Option<u32>,
    /// `co_firstlineno`: the line of the `def`.
    pub first_line: u32,
    /// The frame is the outermost of those that one call of the
    /// evaluation loop (`_PyEval_EvalFrameDefault`) runs: always before
    /// 3.11, where each Python call is a call of the loop; from 3.11, the
    /// loop runs Python-to-Python calls without a native call. Frames from
    /// one entry frame to the next inner one belong to one native frame of
    /// the loop.
    pub entry: bool,
}

/// A thread's Python stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyThread {
    /// The kernel's thread id (`gettid()`): `PyThreadState.native_thread_id`
    /// from 3.11; before, from glibc's thread descriptor at `thread_id`.
    /// `None` when it could not be found.
    pub native_tid: Option<u32>,
    /// `PyThreadState.thread_id`: the thread's `pthread_t`.
    pub thread_id: u64,
    /// The frames, innermost first.
    pub frames: Vec<PyFrame>,
}

/// A CPython process, ready to be read.
pub struct CPython<M: Memory = ProcessMemory> {
    mem: M,
    pid: u32,
    runtime: u64,
    version: Version,
    off: Offsets,
    /// `&PyCode_Type`, when the binary names it: frames whose code object
    /// is of another type are skipped (3.13 shims) or refused.
    code_type: Option<u64>,
    budget: Budget,
    /// 3.8 to 3.10: where glibc's `struct pthread` holds the thread id,
    /// once found.
    tid_offset: std::sync::OnceLock<usize>,
    /// What was read of code objects, by their address and the addresses
    /// of their name, file and line table (the objects are immutable: a
    /// freed and reused address gets other ones), charged to the budget.
    codes: std::sync::Mutex<(HashMap<CodeKey, std::sync::Arc<CodeInfo>>, Charge)>,
}

/// A code object's address, and those of its name, file and line table,
/// and its first line.
type CodeKey = (u64, u64, u64, u64, i32);

/// What a stack needs of a code object.
struct CodeInfo {
    qualname: String,
    file: String,
    table: Vec<u8>,
}

/// The most code objects remembered; past it, all are forgotten.
const MAX_CODES: usize = 8192;
/// The most bytes of a frame or code object read at once (every field
/// used lies within).
const HEADER: usize = 256;

impl<M: Memory> fmt::Debug for CPython<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CPython")
            .field("pid", &self.pid)
            .field("version", &self.version)
            .field("runtime", &format_args!("{:#x}", self.runtime))
            .finish()
    }
}

impl CPython<ProcessMemory> {
    /// Finds process `pid`'s CPython runtime, its version and its layout.
    /// Reads `/proc/PID/maps` and the python binary or libpython (the
    /// file's bytes charged to `budget` while they are read).
    pub fn attach(pid: u32, budget: &Budget) -> Result<Self, Error> {
        let found = locate::find_runtime(pid, budget)?;
        let mem = ProcessMemory::new(pid);
        let version = match found.version {
            locate::VersionHint::Known(v) => Some(v),
            locate::VersionHint::At(addr) => {
                let hex = u64::from(read_u32(&mem, pid, addr, "Py_Version")?);
                Some(Version { major: (hex >> 24) as u8, minor: (hex >> 16) as u8, micro: (hex >> 8) as u8 })
            }
            locate::VersionHint::None => None,
        };
        Self::new(mem, pid, found.runtime, version, found.code_type, budget)
    }
}

impl<M: Memory> CPython<M> {
    /// A reader of the CPython whose `_PyRuntime` is at `runtime` in
    /// `mem`. `version` may be `None` for 3.13, whose `_Py_DebugOffsets`
    /// say it; `code_type` is `&PyCode_Type` if known.
    pub fn new(
        mem: M,
        pid: u32,
        runtime: u64,
        version: Option<Version>,
        code_type: Option<u64>,
        budget: &Budget,
    ) -> Result<Self, Error> {
        let unsupported = |version: String, why: &str| Error::Unsupported { pid, version, why: why.into() };
        let (version, off) = match version {
            Some(v) if (v.major, v.minor) < (3, 13) => {
                let off = offsets::table(v).ok_or_else(|| unsupported(v.to_string(), "3.8 to 3.13 are supported"))?;
                (v, off)
            }
            Some(v) if (v.major, v.minor) > (3, 13) => {
                return Err(unsupported(v.to_string(), "3.8 to 3.13 are supported"));
            }
            _ => {
                let mut bytes = vec![0u8; offsets::DEBUG_OFFSETS_SIZE];
                mem.read(runtime, &mut bytes).map_err(|source| Error::Read {
                    pid,
                    what: "_PyRuntime.debug_offsets",
                    addr: runtime,
                    source,
                })?;
                offsets::from_debug_offsets(&bytes).map_err(|why| {
                    let v = version.map_or_else(|| "of unknown version".to_owned(), |v| v.to_string());
                    unsupported(v, &why)
                })?
            }
        };
        let (frame_len, code_len) = off.header_lengths();
        if frame_len > HEADER as u64 || code_len > HEADER as u64 {
            return Err(unsupported(version.to_string(), "its frames or code objects are laid out past 256 bytes"));
        }
        let codes = std::sync::Mutex::new((HashMap::new(), budget.start(format_args!("Python code of PID {pid}"))));
        Ok(Self {
            mem,
            pid,
            runtime,
            version,
            off,
            code_type,
            budget: budget.clone(),
            tid_offset: Default::default(),
            codes,
        })
    }

    /// The interpreter's version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The address of `_PyRuntime`.
    pub fn runtime_address(&self) -> u64 {
        self.runtime
    }

    /// Every thread state of every interpreter, with its stack.
    pub fn threads(&self) -> Result<Vec<PyThread>, Error> {
        let tstates = self.thread_states(Clock(None))?;
        let tids = self.native_tids(&tstates, Clock(None))?;
        let mut out = Vec::with_capacity(tstates.len());
        for (&tstate, native_tid) in tstates.iter().zip(tids) {
            let thread_id = self.u64(tstate + self.off.tstate_thread_id, "PyThreadState.thread_id")?;
            out.push(PyThread { native_tid, thread_id, frames: self.frames(tstate, Clock(None))? });
        }
        Ok(out)
    }

    /// The Python stack of the thread whose kernel thread id is `tid`, or
    /// `None` when no thread state has that id (a thread that never ran
    /// Python, or one that ended).
    ///
    /// The work is bounded by the chains' and strings' bounds alone, which
    /// a hostile process can make cost seconds (thousands of frames, each
    /// walking a line table of a megabyte): a caller that must not wait
    /// uses [`CPython::stack_by`].
    pub fn stack(&self, tid: u32) -> Result<Option<Vec<PyFrame>>, Error> {
        self.stack_within(tid, None)
    }

    /// [`CPython::stack`], given up with [`Error::Late`] once `deadline`
    /// has passed: checked at every thread state and frame, so the read
    /// ends at most one frame's work (one line table, at most
    /// [`MAX_LINE_TABLE`] bytes) after it.
    pub fn stack_by(&self, tid: u32, deadline: Instant) -> Result<Option<Vec<PyFrame>>, Error> {
        self.stack_within(tid, Some(deadline))
    }

    fn stack_within(&self, tid: u32, deadline: Option<Instant>) -> Result<Option<Vec<PyFrame>>, Error> {
        let clock = Clock(deadline);
        let tstates = self.thread_states(clock)?;
        let tids = self.native_tids(&tstates, clock)?;
        match tstates.iter().zip(tids).find(|(_, t)| *t == Some(tid)) {
            Some((&tstate, _)) => Ok(Some(self.frames(tstate, clock)?)),
            None => Ok(None),
        }
    }

    /// [`Error::Late`] once the deadline has passed.
    fn check(&self, clock: Clock) -> Result<(), Error> {
        match clock.0 {
            Some(d) if Instant::now() >= d => Err(Error::Late { pid: self.pid }),
            _ => Ok(()),
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> Error {
        Error::Corrupt { pid: self.pid, what: what.into() }
    }

    fn read(&self, addr: u64, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
        self.mem.read(addr, buf).map_err(|source| Error::Read { pid: self.pid, what, addr, source })
    }

    fn u64(&self, addr: u64, what: &'static str) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The addresses of every thread state, interpreter by interpreter.
    fn thread_states(&self, clock: Clock) -> Result<Vec<u64>, Error> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut interp = self.u64(self.runtime + self.off.interpreters_head, "_PyRuntime.interpreters.head")?;
        let mut interpreters = 0;
        while interp != 0 {
            interpreters += 1;
            if interpreters > MAX_INTERPRETERS || !seen.insert(interp) {
                return Err(self.corrupt(format!("the interpreters list loops or is longer than {MAX_INTERPRETERS}")));
            }
            let mut tstate = self.u64(interp + self.off.interp_threads_head, "PyInterpreterState.threads")?;
            while tstate != 0 {
                self.check(clock)?;
                if out.len() >= MAX_THREADS * 4 || !seen.insert(tstate) {
                    return Err(self.corrupt(format!("the thread states list loops or is longer than {MAX_THREADS}")));
                }
                out.push(tstate);
                tstate = self.u64(tstate + self.off.tstate_next, "PyThreadState.next")?;
            }
            interp = self.u64(interp + self.off.interp_next, "PyInterpreterState.next")?;
        }
        if out.len() > MAX_THREADS {
            return Err(self.corrupt(format!("more than {MAX_THREADS} thread states")));
        }
        Ok(out)
    }

    /// The kernel thread ids of thread states: `native_thread_id` from
    /// 3.11; before, the `tid` of glibc's `struct pthread` that
    /// `thread_id` points to, at the offset where every thread state's
    /// descriptor holds one of the process's thread ids.
    fn native_tids(&self, tstates: &[u64], clock: Clock) -> Result<Vec<Option<u32>>, Error> {
        if let Some(off) = self.off.tstate_native_thread_id {
            return tstates
                .iter()
                .map(|&t| {
                    self.check(clock)?;
                    let tid = self.u64(t + off, "PyThreadState.native_thread_id")?;
                    Ok(u32::try_from(tid).ok().filter(|&t| t != 0))
                })
                .collect();
        }
        // glibc's struct pthread: its tid is at 0x2d0 on x86-64 since
        // 2.26; found, not assumed, within its first 2 KiB, once.
        const SPAN: usize = 2048;
        if let Some(&offset) = self.tid_offset.get() {
            return tstates
                .iter()
                .map(|&t| {
                    self.check(clock)?;
                    let pthread = self.u64(t + self.off.tstate_thread_id, "PyThreadState.thread_id")?;
                    let mut b = [0u8; 4];
                    Ok(self
                        .read(pthread + offset as u64, &mut b, "struct pthread")
                        .ok()
                        .map(|()| u32::from_le_bytes(b)))
                })
                .collect();
        }
        let tasks = locate::tasks(self.pid, MAX_THREADS * 4);
        let _charge = self
            .budget
            .charge((tstates.len() * SPAN) as u64, format_args!("the thread descriptors of PID {}", self.pid))?;
        let mut descriptors = Vec::with_capacity(tstates.len());
        for &t in tstates {
            self.check(clock)?;
            let pthread = self.u64(t + self.off.tstate_thread_id, "PyThreadState.thread_id")?;
            let mut bytes = vec![0u8; SPAN];
            descriptors.push(self.read(pthread, &mut bytes, "struct pthread").ok().map(|()| bytes));
        }
        let at = |bytes: &[u8], o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
        let mut late = false;
        let offset = (0..SPAN / 4).map(|i| i * 4).find(|&o| {
            if self.check(clock).is_err() {
                late = true;
                return true;
            }
            let mut seen = HashSet::new();
            let mut any = false;
            for bytes in descriptors.iter().flatten() {
                let tid = at(bytes, o);
                if !tasks.contains(&tid) || !seen.insert(tid) {
                    return false;
                }
                any = true;
            }
            any
        });
        if late {
            return Err(Error::Late { pid: self.pid });
        }
        // Kept when found from two threads or more, or at glibc's place
        // (one thread's id alone could match elsewhere by chance).
        if let Some(o) = offset
            && (descriptors.iter().flatten().count() >= 2 || o == 0x2d0)
        {
            let _ = self.tid_offset.set(o);
        }
        Ok(descriptors.iter().map(|d| Some(at(d.as_deref()?, offset?))).collect())
    }

    /// The frames of a thread state, innermost first.
    fn frames(&self, tstate: u64, clock: Clock) -> Result<Vec<PyFrame>, Error> {
        let off = &self.off;
        let mut frames: Vec<PyFrame> = Vec::new();
        let mut seen = HashSet::new();
        let mut frame = self.u64(tstate + off.tstate_frame, "PyThreadState's frame")?;
        if let FrameLayout::Interpreter { cframe: Some((_, current)), .. } = off.frame
            && frame != 0
        {
            frame = self.u64(frame + current, "_PyCFrame.current_frame")?;
        }
        let mut budget = self.budget.start(format_args!("Python frames of PID {}", self.pid));
        let mut steps = 0;
        while frame != 0 {
            self.check(clock)?;
            steps += 1;
            if steps > MAX_FRAMES || !seen.insert(frame) {
                return Err(self.corrupt(format!("a frame chain loops or is deeper than {MAX_FRAMES}")));
            }
            let mut header = [0u8; HEADER];
            let (frame_len, code_len) = off.header_lengths();
            self.read(frame, &mut header[..frame_len as usize], "a Python frame")?;
            let word =
                |h: &[u8; HEADER], at: u64| u64::from_le_bytes(h[at as usize..at as usize + 8].try_into().expect("8"));
            let (code, offset, next, skip, entry) = match off.frame {
                FrameLayout::Object { f_back, f_code, f_lasti } => {
                    let lasti = i64::from(i32::from_le_bytes(
                        header[f_lasti as usize..f_lasti as usize + 4].try_into().expect("4 bytes"),
                    ));
                    let offset = if off.line_table == offsets::LineTable::Pep626 { lasti * 2 } else { lasti };
                    (word(&header, f_code), offset, word(&header, f_back), false, true)
                }
                FrameLayout::Interpreter {
                    previous,
                    code,
                    instr,
                    owner,
                    code_adaptive,
                    cstack_owner,
                    is_entry,
                    ..
                } => {
                    let code_addr = word(&header, code);
                    let start = code_addr.wrapping_add(code_adaptive);
                    let offset = (word(&header, instr) as i64).wrapping_sub(start as i64);
                    let entry = is_entry.is_some_and(|at| header[at as usize] != 0);
                    let shim = Some(header[owner as usize]) == cstack_owner;
                    (code_addr, offset, word(&header, previous), shim, entry)
                }
            };
            frame = next;
            if skip {
                // A shim: the frame it precedes (the last read) is where
                // an evaluation loop began.
                if let Some(last) = frames.last_mut() {
                    last.entry = true;
                }
                continue;
            }
            let mut code_header = [0u8; HEADER];
            self.read(code, &mut code_header[..code_len as usize], "a code object")?;
            if let Some(code_type) = self.code_type
                && word(&code_header, off.ob_type) != code_type
            {
                if self.version.minor >= 13 {
                    // 3.13 runs frames whose executable is not code.
                    continue;
                }
                return Err(self.corrupt(format!("a frame's code object at {code:#x} is not of type code")));
            }
            let mut py = self.frame(code, &code_header, offset)?;
            py.entry = entry;
            budget.grow((py.qualname.len() + py.file.len() + 64) as u64)?;
            frames.push(py);
        }
        // The outermost frame began the thread's first evaluation loop.
        if let Some(last) = frames.last_mut() {
            last.entry = true;
        }
        Ok(frames)
    }

    fn frame(&self, code: u64, header: &[u8; HEADER], offset: i64) -> Result<PyFrame, Error> {
        let off = &self.off;
        let word = |at: u64| u64::from_le_bytes(header[at as usize..at as usize + 8].try_into().expect("8 bytes"));
        let at = off.code_firstlineno as usize;
        let first_line = i32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let (name, file, table) =
            (word(off.code_qualname.unwrap_or(off.code_name)), word(off.code_filename), word(off.code_linetable));
        let key = (code, name, file, table, first_line);
        let known = self.codes.lock().expect("code cache").0.get(&key).cloned();
        let info = match known {
            Some(info) => info,
            None => {
                let info = std::sync::Arc::new(CodeInfo {
                    qualname: self.string(name)?,
                    file: self.string(file)?,
                    table: self.bytes(table)?,
                });
                let mut codes = self.codes.lock().expect("code cache");
                let (map, charge) = &mut *codes;
                if map.len() >= MAX_CODES {
                    map.clear();
                    charge.shrink(charge.bytes());
                }
                charge.grow((info.qualname.len() + info.file.len() + info.table.len() + 96) as u64)?;
                map.insert(key, info.clone());
                info
            }
        };
        let line = linetable::line(off.line_table, &info.table, i64::from(first_line), offset);
        Ok(PyFrame {
            qualname: info.qualname.clone(),
            file: info.file.clone(),
            line,
            first_line: u32::try_from(first_line).unwrap_or(0),
            entry: false,
        })
    }

    /// A `bytes` object's contents, at most [`MAX_LINE_TABLE`] bytes.
    fn bytes(&self, obj: u64) -> Result<Vec<u8>, Error> {
        let size = self.u64(obj + self.off.bytes_size, "a bytes object's size")?;
        if size > MAX_LINE_TABLE {
            return Err(self.corrupt(format!("a line table of {size} bytes (more than {MAX_LINE_TABLE})")));
        }
        let _charge = self.budget.charge(size, format_args!("a line table of PID {}", self.pid))?;
        let mut out = vec![0u8; size as usize];
        self.read(obj + self.off.bytes_sval, &mut out, "a bytes object's contents")?;
        Ok(out)
    }

    /// A compact `str` object's text, at most [`MAX_STRING`] characters.
    fn string(&self, obj: u64) -> Result<String, Error> {
        let mut header = [0u8; 64];
        let len = (self.off.unicode_length.max(self.off.unicode_state) + 8) as usize;
        self.read(obj, &mut header[..len], "a str object")?;
        let field = |at: u64| u64::from_le_bytes(header[at as usize..at as usize + 8].try_into().expect("8 bytes"));
        let length = field(self.off.unicode_length);
        if length > MAX_STRING {
            return Err(self.corrupt(format!("a name of {length} characters (more than {MAX_STRING})")));
        }
        let state = field(self.off.unicode_state) as u32;
        let (kind, compact, ascii) = ((state >> 2) & 7, state & (1 << 5) != 0, state & (1 << 6) != 0);
        if !compact || !matches!(kind, 1 | 2 | 4) {
            return Err(self.corrupt(format!("a str object at {obj:#x} of layout {state:#x}, not compact")));
        }
        let data = obj + if ascii { self.off.ascii_size } else { self.off.compact_size };
        let _charge = self.budget.charge(length * u64::from(kind), format_args!("a name in PID {}", self.pid))?;
        let mut raw = vec![0u8; (length * u64::from(kind)) as usize];
        self.read(data, &mut raw, "a str object's characters")?;
        Ok(match kind {
            1 => raw.iter().map(|&b| char::from(b)).collect(),
            2 => raw
                .chunks_exact(2)
                .map(|c| char::from_u32(u32::from(u16::from_le_bytes([c[0], c[1]]))).unwrap_or('\u{fffd}'))
                .collect(),
            _ => raw
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}'))
                .collect(),
        })
    }
}

/// When a read must be done by, if ever.
#[derive(Clone, Copy)]
struct Clock(Option<Instant>);

fn read_u32(mem: &impl Memory, pid: u32, addr: u64, what: &'static str) -> Result<u32, Error> {
    let mut b = [0u8; 4];
    mem.read(addr, &mut b).map_err(|source| Error::Read { pid, what, addr, source })?;
    Ok(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests;
