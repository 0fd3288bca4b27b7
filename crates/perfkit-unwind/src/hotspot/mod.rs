//! Walking the Java frames of a running HotSpot JVM (JDK 11 to 21,
//! x86-64) without `-XX:+PreserveFramePointer`, from the JVM's own
//! description of its code cache, as the OpenTelemetry eBPF profiler does.
//!
//! [`HotSpot::attach`] finds libjvm.so in the process, reads the
//! `gHotSpotVMStructs`, `gHotSpotVMTypes` and `gHotSpotVMIntConstants`
//! tables through the symbols libjvm.so exports ([`vmstructs`]), and from
//! them the offsets of the fields it needs and the code cache's heaps (their
//! memory, segment map and segment size).
//!
//! [`HotSpot::step`] goes from a frame in the code cache to its caller:
//! the code blob holding the PC is found through its heap's segment map,
//! as `CodeHeap::find_start` does; a compiled frame (an nmethod, or a stub
//! with a frame size) is `frame_size` words above its stack pointer, with
//! the return address on top and the caller's RBP under it; an interpreted
//! frame (and a stub without a frame size, such as the call stub) keeps RBP
//! as its frame pointer, and an interpreted frame holds its `Method*` at a
//! fixed slot under it. [`HotSpot::method_name`] names a `Method*` as the
//! JVM's perf map does (`Class.method(args)`, from the class's, method's
//! and signature's symbols).
//!
//! Every byte read is the target's: reads are bounded, chains (segment map
//! hops) are bounded, names are bounded and charged to a [`Budget`], and
//! attaching has a deadline, so a corrupt or hostile process gives an
//! [`Error`], not a hang or a large allocation.

pub mod vmstructs;

use std::{
    collections::HashMap,
    io,
    sync::Mutex,
    time::{Duration, Instant},
};

use object::{Object, ObjectSymbol};
use perfkit_safeio::{Budget, BudgetError, Charge};

use crate::cpython::{
    Memory, ProcessMemory,
    locate::{Mapping, SymbolTables, load_bias, parse_maps, read_symbols},
};
use vmstructs::{ConstLayout, Field, StructLayout, TypeLayout, Walk};

/// The longest attaching may take (reading the tables is a few thousand
/// small reads).
pub const ATTACH_DEADLINE: Duration = Duration::from_secs(2);
/// The most code heaps read (HotSpot has one to three).
pub const MAX_HEAPS: usize = 16;
/// The most segment map entries followed back to a blob's start.
const MAX_HOPS: usize = 1 << 12;
/// The most scopes followed from one PC: C2 inlines 15 levels deep by
/// default (`-XX:MaxInlineLevel`).
pub const MAX_INLINE_DEPTH: usize = 64;
/// The most PcDescs of one nmethod.
const MAX_PC_DESCS: u64 = 1 << 20;
/// The longest Java name read (a class, method or signature symbol).
pub const MAX_SYMBOL: u64 = 4096;
/// The most method names remembered; past it, all are forgotten.
const MAX_NAMES: usize = 1 << 14;
/// The most bytes of `/proc/PID/maps` read.
const MAX_MAPS: u64 = 8 << 20;

/// Reading a JVM's code cache failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No mapping of the process is a libjvm.so exporting the tables.
    #[error("PID {pid}: not a HotSpot JVM (no libjvm.so exporting gHotSpotVMStructs)")]
    NotHotSpot {
        /// The process.
        pid: u32,
    },
    /// The JVM lacks something needed (a field of its tables).
    #[error("PID {pid}: HotSpot: {why}")]
    Unsupported {
        /// The process.
        pid: u32,
        /// What is missing.
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
        /// Why.
        #[source]
        source: io::Error,
    },
    /// What was read is not what HotSpot would hold there.
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
    /// The work was not done by its deadline.
    #[error("PID {pid}: HotSpot's structures were not read by the deadline")]
    Late {
        /// The process.
        pid: u32,
    },
}

/// The addresses, in the target, of the tables and of the variables that
/// describe their entries (each a `uint64_t`, or a pointer to the table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exports {
    /// `gHotSpotVMStructs` (a pointer to the table).
    pub structs: u64,
    /// `gHotSpotVMStructEntry{ArrayStride, TypeNameOffset, FieldNameOffset,
    /// IsStaticOffset, OffsetOffset, AddressOffset}`.
    pub struct_layout: [u64; 6],
    /// `gHotSpotVMTypes`.
    pub types: u64,
    /// `gHotSpotVMTypeEntry{ArrayStride, TypeNameOffset, SizeOffset}`.
    pub type_layout: [u64; 3],
    /// `gHotSpotVMIntConstants`, when exported.
    pub int_constants: Option<u64>,
    /// `gHotSpotVMIntConstantEntry{ArrayStride, NameOffset, ValueOffset}`.
    pub const_layout: [u64; 3],
}

/// The exported symbol names, in the order of [`Exports`]' fields.
const EXPORTS: [&str; 14] = [
    "gHotSpotVMStructs",
    "gHotSpotVMStructEntryArrayStride",
    "gHotSpotVMStructEntryTypeNameOffset",
    "gHotSpotVMStructEntryFieldNameOffset",
    "gHotSpotVMStructEntryIsStaticOffset",
    "gHotSpotVMStructEntryOffsetOffset",
    "gHotSpotVMStructEntryAddressOffset",
    "gHotSpotVMTypes",
    "gHotSpotVMTypeEntryArrayStride",
    "gHotSpotVMTypeEntryTypeNameOffset",
    "gHotSpotVMTypeEntrySizeOffset",
    "gHotSpotVMIntConstants",
    "gHotSpotVMIntConstantEntryArrayStride",
    // The name and value offsets follow the stride in the table below.
    "gHotSpotVMIntConstantEntryNameOffset",
];
const CONST_VALUE: &str = "gHotSpotVMIntConstantEntryValueOffset";

/// The structure fields read (type, field).
const FIELDS: &[(&str, &str)] = &[
    ("CodeCache", "_heaps"),
    // GrowableArrayBase's from JDK 16, GenericGrowableArray's before.
    ("GrowableArrayBase", "_len"),
    ("GenericGrowableArray", "_len"),
    ("GrowableArray<int>", "_data"),
    ("CodeHeap", "_memory"),
    ("CodeHeap", "_segmap"),
    ("CodeHeap", "_log2_segment_size"),
    ("VirtualSpace", "_low_boundary"),
    ("VirtualSpace", "_high_boundary"),
    ("CodeBlob", "_name"),
    ("CodeBlob", "_frame_complete_offset"),
    ("CodeBlob", "_frame_size"),
    ("CodeBlob", "_code_begin"),
    ("CodeBlob", "_code_end"),
    // CompiledMethod's until JDK 22, nmethod's after.
    ("CompiledMethod", "_method"),
    ("nmethod", "_method"),
    ("Method", "_constMethod"),
    ("ConstMethod", "_constants"),
    ("ConstMethod", "_name_index"),
    ("ConstMethod", "_signature_index"),
    ("ConstantPool", "_pool_holder"),
    ("Klass", "_name"),
    ("Symbol", "_length"),
    ("Symbol", "_body"),
    // Inlined methods (see `ScopeOffsets`): where an nmethod's debug
    // information is (CompiledMethod's `_scopes_data_begin` until JDK 22),
    // and a PcDesc's fields.
    ("CompiledMethod", "_scopes_data_begin"),
    ("nmethod", "_scopes_data_begin"),
    ("nmethod", "_metadata_offset"),
    ("nmethod", "_scopes_pcs_offset"),
    ("nmethod", "_dependencies_offset"),
    ("PcDesc", "_pc_offset"),
    ("PcDesc", "_scope_decode_offset"),
    ("Abstract_VM_Version", "_vm_major_version"),
];
/// The types whose sizes are read.
const TYPES: &[&str] = &["HeapBlock", "ConstantPool", "PcDesc"];
/// The interpreter frame's layout (in words from RBP).
const METHOD_SLOT: &str = "frame::interpreter_frame_method_offset";
const SENDER_SP_SLOT: &str = "frame::interpreter_frame_sender_sp_offset";

/// One heap of the code cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    /// Its reserved memory: `_memory._low_boundary`.
    pub low: u64,
    /// `_memory._high_boundary`.
    pub high: u64,
    /// Its segment map: `_segmap._low_boundary`.
    pub segmap: u64,
    /// `_log2_segment_size`.
    pub log2_segment: u32,
}

/// The offsets read from the tables.
#[derive(Clone, Copy, Debug)]
struct Offsets {
    blob_name: u64,
    blob_frame_complete: u64,
    blob_frame_size: u64,
    blob_code_begin: u64,
    blob_code_end: u64,
    nmethod_method: u64,
    heap_block: u64,
    /// The interpreter frame's `Method*` slot and caller's SP slot, in
    /// words from RBP.
    method_slot: i64,
    sender_sp_slot: i64,
    names: Option<NameOffsets>,
    scopes: Option<ScopeOffsets>,
}

/// What finding the methods inlined at a PC of an nmethod needs: the
/// nmethod's sections (offsets from its start, `int`s), the place of its
/// scopes data (a pointer in the nmethod), and a `PcDesc`'s layout.
#[derive(Clone, Copy, Debug)]
struct ScopeOffsets {
    /// `CompiledMethod::_scopes_data_begin` (an `address`): the scopes
    /// data run from there to the PcDescs.
    scopes_data_begin: u64,
    /// `nmethod::_metadata_offset`: the metadata (`Metadata*`s) run from
    /// there to the scopes data.
    metadata: u64,
    /// `nmethod::_scopes_pcs_offset`: the PcDescs run from there to the
    /// dependencies (`nmethod::_dependencies_offset`).
    scopes_pcs: u64,
    dependencies: u64,
    /// `sizeof(PcDesc)`, and its `_pc_offset` and `_scope_decode_offset`
    /// (`int`s).
    pc_desc_size: u64,
    pc_offset: u64,
    scope_decode_offset: u64,
    /// The compressed integers' encoding: UNSIGNED5 without zero bytes
    /// (JDK 20 and later) or Pack200's (JDK 19 and before).
    encoding: Encoding,
}

/// How HotSpot's `CompressedReadStream::read_int` decodes an integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Pack200's UNSIGNED5 (JDK 19 and before): a byte under 192 ends the
    /// number, each byte adds `b * 64^i`, at most 5 bytes.
    Pack200,
    /// `UNSIGNED5` (unsigned5.hpp, JDK 20 and later): the same with the
    /// zero byte excluded (every byte is taken 1 from), so a byte under
    /// 192 ends the number.
    Unsigned5,
}

/// What naming a `Method*` needs.
#[derive(Clone, Copy, Debug)]
struct NameOffsets {
    const_method: u64,
    constants: u64,
    name_index: u64,
    signature_index: u64,
    pool_holder: u64,
    pool_size: u64,
    klass_name: u64,
    symbol_length: u64,
    symbol_body: u64,
}

/// What kind of code a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A compiled Java method.
    Nmethod,
    /// The template interpreter.
    Interpreter,
    /// Any other stub (call stub, adapters, runtime stubs).
    Stub,
}

/// A code blob of the code cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// Its address.
    pub start: u64,
    /// Its kind.
    pub kind: BlobKind,
    /// Its frame's size in bytes (0: it keeps RBP as frame pointer).
    pub frame_bytes: u64,
    /// Where its frame is complete (its prologue ends), when known.
    pub frame_complete: Option<u64>,
    /// Its code.
    pub code: std::ops::Range<u64>,
    /// The `Method*` of an nmethod.
    pub method: Option<u64>,
    /// Where its name is (`CodeBlob::_name`, in libjvm.so).
    pub name: u64,
}

/// One step from a frame in the code cache to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The caller's PC (the return address).
    pub pc: u64,
    /// The caller's stack pointer.
    pub sp: u64,
    /// The caller's RBP.
    pub bp: u64,
    /// The kind of the frame stepped out of.
    pub kind: BlobKind,
    /// Its `Method*`: an nmethod's, or an interpreted frame's.
    pub method: Option<u64>,
    /// Its code blob's code.
    pub code: (u64, u64),
    /// Where its code blob's name is.
    pub name: u64,
    /// Its code blob's address.
    pub blob: u64,
}

/// A HotSpot JVM, ready to be read.
pub struct HotSpot<M: Memory = ProcessMemory> {
    mem: M,
    pid: u32,
    heaps: Vec<Heap>,
    off: Offsets,
    /// Blob kinds and names by the address of their name (names live in
    /// libjvm.so).
    kinds: Mutex<HashMap<u64, (BlobKind, std::sync::Arc<str>)>>,
    /// Method names by `Method*`, charged to the budget.
    names: Mutex<(HashMap<u64, std::sync::Arc<str>>, Charge)>,
    /// Why inlined methods cannot be read, when they cannot.
    no_inlining: Option<String>,
}

impl<M: Memory> std::fmt::Debug for HotSpot<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotSpot").field("pid", &self.pid).field("heaps", &self.heaps).finish()
    }
}

impl HotSpot<ProcessMemory> {
    /// Finds process `pid`'s libjvm.so, its tables and its code cache.
    /// Reads `/proc/PID/maps` and libjvm.so (charged to `budget` while they
    /// are read). A JVM still starting (no code cache yet) gives an error;
    /// the caller may try again later.
    pub fn attach(pid: u32, budget: &Budget) -> Result<Self, Error> {
        let exports = find_exports(pid, budget)?;
        Self::new(ProcessMemory::new(pid), pid, &exports, budget, Instant::now() + ATTACH_DEADLINE)
    }
}

impl<M: Memory> HotSpot<M> {
    /// A reader of the JVM whose tables `exports` locates in `mem`, giving
    /// up with [`Error::Late`] at `deadline`.
    pub fn new(mem: M, pid: u32, exports: &Exports, budget: &Budget, deadline: Instant) -> Result<Self, Error> {
        let walk = Walk { mem: &mem, pid, deadline };
        let u64_at = |addr: u64, what: &'static str| -> Result<u64, Error> { read_u64(&mem, pid, addr, what) };
        let [s0, s1, s2, s3, s4, s5] = exports.struct_layout;
        let struct_layout = StructLayout {
            stride: u64_at(s0, "gHotSpotVMStructEntryArrayStride")?,
            type_name: u64_at(s1, "gHotSpotVMStructEntryTypeNameOffset")?,
            field_name: u64_at(s2, "gHotSpotVMStructEntryFieldNameOffset")?,
            is_static: u64_at(s3, "gHotSpotVMStructEntryIsStaticOffset")?,
            offset: u64_at(s4, "gHotSpotVMStructEntryOffsetOffset")?,
            address: u64_at(s5, "gHotSpotVMStructEntryAddressOffset")?,
        };
        let [t0, t1, t2] = exports.type_layout;
        let type_layout = TypeLayout {
            stride: u64_at(t0, "gHotSpotVMTypeEntryArrayStride")?,
            type_name: u64_at(t1, "gHotSpotVMTypeEntryTypeNameOffset")?,
            size: u64_at(t2, "gHotSpotVMTypeEntrySizeOffset")?,
        };
        let structs_table = u64_at(exports.structs, "gHotSpotVMStructs")?;
        let types_table = u64_at(exports.types, "gHotSpotVMTypes")?;
        let fields = walk.structs(structs_table, &struct_layout, FIELDS)?;
        let sizes = walk.type_sizes(types_table, &type_layout, TYPES)?;
        let constants = match exports.int_constants {
            Some(at) => {
                let [c0, c1, c2] = exports.const_layout;
                let layout = ConstLayout {
                    stride: u64_at(c0, "gHotSpotVMIntConstantEntryArrayStride")?,
                    name: u64_at(c1, "gHotSpotVMIntConstantEntryNameOffset")?,
                    value: u64_at(c2, CONST_VALUE)?,
                };
                walk.int_constants(u64_at(at, "gHotSpotVMIntConstants")?, &layout, &[METHOD_SLOT, SENDER_SP_SLOT])?
            }
            None => HashMap::new(),
        };
        let missing = |t: &str, f: &str| Error::Unsupported { pid, why: format!("its VMStructs have no {t}::{f}") };
        let field = |t: &'static str, f: &'static str| -> Result<Field, Error> {
            fields.get(&(t, f)).copied().ok_or_else(|| missing(t, f))
        };
        let offset = |t: &'static str, f: &'static str| -> Result<u64, Error> {
            let v = field(t, f)?.offset;
            // Every structure read is read whole from its start: an offset
            // past a few KiB is not HotSpot's.
            if v > 4096 {
                return Err(Error::Corrupt { pid, what: format!("{t}::{f} at offset {v}") });
            }
            Ok(v)
        };
        let names = (|| -> Result<NameOffsets, Error> {
            Ok(NameOffsets {
                const_method: offset("Method", "_constMethod")?,
                constants: offset("ConstMethod", "_constants")?,
                name_index: offset("ConstMethod", "_name_index")?,
                signature_index: offset("ConstMethod", "_signature_index")?,
                pool_holder: offset("ConstantPool", "_pool_holder")?,
                pool_size: sizes.get("ConstantPool").copied().filter(|&s| s > 0 && s <= 4096).ok_or_else(|| {
                    Error::Unsupported { pid, why: "its VMTypes have no size for ConstantPool".into() }
                })?,
                klass_name: offset("Klass", "_name")?,
                symbol_length: offset("Symbol", "_length")?,
                symbol_body: offset("Symbol", "_body")?,
            })
        })()
        .ok();
        // Inlined methods: without any of these (JDK 22 and later lay
        // their nmethods out otherwise), compiled frames are named by
        // their own method only.
        let scopes = (|| -> Result<ScopeOffsets, Error> {
            let version = field("Abstract_VM_Version", "_vm_major_version")?;
            let major = if version.is_static {
                read_u32(&mem, pid, version.address, "Abstract_VM_Version::_vm_major_version")?
            } else {
                return Err(missing("Abstract_VM_Version", "_vm_major_version (static)"));
            };
            Ok(ScopeOffsets {
                scopes_data_begin: offset("nmethod", "_scopes_data_begin")
                    .or_else(|_| offset("CompiledMethod", "_scopes_data_begin"))?,
                metadata: offset("nmethod", "_metadata_offset")?,
                scopes_pcs: offset("nmethod", "_scopes_pcs_offset")?,
                dependencies: offset("nmethod", "_dependencies_offset")?,
                pc_desc_size: sizes.get("PcDesc").copied().filter(|&s| (8..=64).contains(&s)).unwrap_or(16),
                pc_offset: offset("PcDesc", "_pc_offset")?,
                scope_decode_offset: offset("PcDesc", "_scope_decode_offset")?,
                encoding: if major >= 20 { Encoding::Unsigned5 } else { Encoding::Pack200 },
            })
        })();
        let (scopes, no_inlining) = match scopes {
            Ok(s) if s.pc_offset.max(s.scope_decode_offset) + 4 <= s.pc_desc_size => (Some(s), None),
            Ok(_) => return Err(Error::Corrupt { pid, what: "a PcDesc's fields lie outside it".into() }),
            Err(e) => (None, Some(e.to_string())),
        };
        // x86-64's layout (frame_x86.hpp), when the constants are not
        // exported: RBP-1 the caller's SP, RBP-3 the Method*.
        let slot = |name: &str, default: i64| constants.get(name).map_or(default, |&v| i64::from(v)).clamp(-64, -1);
        let off = Offsets {
            blob_name: offset("CodeBlob", "_name")?,
            blob_frame_complete: offset("CodeBlob", "_frame_complete_offset")?,
            blob_frame_size: offset("CodeBlob", "_frame_size")?,
            blob_code_begin: offset("CodeBlob", "_code_begin")?,
            blob_code_end: offset("CodeBlob", "_code_end")?,
            nmethod_method: offset("nmethod", "_method").or_else(|_| offset("CompiledMethod", "_method"))?,
            heap_block: sizes
                .get("HeapBlock")
                .copied()
                .filter(|&s| (8..=256).contains(&s))
                .ok_or_else(|| Error::Unsupported { pid, why: "its VMTypes have no size for HeapBlock".into() })?,
            method_slot: slot(METHOD_SLOT, -3),
            sender_sp_slot: slot(SENDER_SP_SLOT, -1),
            names,
            scopes,
        };
        // The heaps: CodeCache::_heaps, a GrowableArray<CodeHeap*>*.
        let heaps_field = field("CodeCache", "_heaps")?;
        if !heaps_field.is_static {
            return Err(missing("CodeCache", "_heaps (static)"));
        }
        let array = u64_at(heaps_field.address, "CodeCache::_heaps")?;
        if array == 0 {
            return Err(Error::Unsupported { pid, why: "its code cache is not made yet".into() });
        }
        let len_at = offset("GrowableArrayBase", "_len").or_else(|_| offset("GenericGrowableArray", "_len"))?;
        let len = read_u32(&mem, pid, field_at(pid, array, len_at)?, "the code heaps' count")?;
        let data = u64_at(field_at(pid, array, offset("GrowableArray<int>", "_data")?)?, "the code heaps")?;
        if len as usize > MAX_HEAPS {
            return Err(Error::Corrupt { pid, what: format!("{len} code heaps (at most {MAX_HEAPS})") });
        }
        let memory = offset("CodeHeap", "_memory")?;
        let segmap = offset("CodeHeap", "_segmap")?;
        let log2 = offset("CodeHeap", "_log2_segment_size")?;
        let low = offset("VirtualSpace", "_low_boundary")?;
        let high = offset("VirtualSpace", "_high_boundary")?;
        let mut heaps = Vec::with_capacity(len as usize);
        for i in 0..u64::from(len) {
            let heap = u64_at(field_at(pid, data, 8 * i)?, "a CodeHeap*")?;
            let at = |a: u64, b: u64| field_at(pid, heap, a.saturating_add(b));
            let h = Heap {
                low: u64_at(at(memory, low)?, "CodeHeap::_memory")?,
                high: u64_at(at(memory, high)?, "CodeHeap::_memory")?,
                segmap: u64_at(at(segmap, low)?, "CodeHeap::_segmap")?,
                log2_segment: read_u32(&mem, pid, at(log2, 0)?, "CodeHeap::_log2_segment_size")?,
            };
            if h.low >= h.high || !(4..=16).contains(&h.log2_segment) || h.segmap == 0 {
                return Err(Error::Corrupt { pid, what: format!("a code heap {h:x?}") });
            }
            heaps.push(h);
        }
        let names = Mutex::new((HashMap::new(), budget.start(format_args!("Java method names of PID {pid}"))));
        Ok(Self { mem, pid, heaps, off, kinds: Mutex::new(HashMap::new()), names, no_inlining })
    }

    /// The code cache's heaps.
    pub fn heaps(&self) -> &[Heap] {
        &self.heaps
    }

    /// Whether `pc` lies in a heap of the code cache.
    pub fn contains(&self, pc: u64) -> bool {
        self.heaps.iter().any(|h| h.low <= pc && pc < h.high)
    }

    fn read(&self, addr: u64, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
        self.mem.read(addr, buf).map_err(|source| Error::Read { pid: self.pid, what, addr, source })
    }

    fn corrupt(&self, what: String) -> Error {
        Error::Corrupt { pid: self.pid, what }
    }

    /// The blob whose code holds `pc`, found through the segment map as
    /// `CodeHeap::find_start` does; `None` where `pc` is in no heap, in a
    /// free block, or outside the blob's code.
    pub fn blob(&self, pc: u64) -> Result<Option<Blob>, Error> {
        let Some(heap) = self.heaps.iter().find(|h| h.low <= pc && pc < h.high) else { return Ok(None) };
        let mut index = (pc - heap.low) >> heap.log2_segment;
        // The map's bytes: 0xff a free segment, 0 a block's first, n the
        // count of segments back to go (at most 0xfe at a time).
        let mut window = [0u8; 256];
        let mut hops = 0;
        'walk: loop {
            let from = index.saturating_sub(255);
            let bytes = &mut window[..(index - from + 1) as usize];
            self.read(field_at(self.pid, heap.segmap, from)?, bytes, "a code heap's segment map")?;
            loop {
                let b = bytes[(index - from) as usize];
                match b {
                    0xff => return Ok(None),
                    0 => break 'walk,
                    n => {
                        hops += 1;
                        if u64::from(n) > index || hops > MAX_HOPS {
                            return Err(self.corrupt(format!("a code heap's segment map at {pc:#x}")));
                        }
                        index -= u64::from(n);
                        if index < from {
                            continue 'walk;
                        }
                    }
                }
            }
        }
        let start = heap.low + (index << heap.log2_segment) + self.off.heap_block;
        let o = &self.off;
        let len = [o.blob_name, o.blob_frame_complete, o.blob_frame_size, o.blob_code_begin, o.blob_code_end]
            .into_iter()
            .max()
            .unwrap_or(0)
            + 8;
        let mut header = [0u8; 4096 + 8];
        let header = &mut header[..len as usize];
        self.read(start, header, "a code blob")?;
        let u64_at = |at: u64| u64::from_le_bytes(header[at as usize..][..8].try_into().expect("8 bytes"));
        let i32_at = |at: u64| i32::from_le_bytes(header[at as usize..][..4].try_into().expect("4 bytes"));
        let code = u64_at(o.blob_code_begin)..u64_at(o.blob_code_end);
        if !code.contains(&pc) || code.start < start || code.end > heap.high {
            return Ok(None);
        }
        // Stubs that have no frame of their own say -1.
        let frame_words = i32_at(o.blob_frame_size).max(0);
        if frame_words > 1 << 16 {
            return Err(self.corrupt(format!("a code blob at {start:#x} with a frame of {frame_words} words")));
        }
        let complete = i32_at(o.blob_frame_complete);
        let frame_complete = u64::try_from(complete).ok().map(|c| code.start.saturating_add(c));
        let name = u64_at(o.blob_name);
        let kind = self.kind(name)?.0;
        let method = match kind {
            BlobKind::Nmethod => {
                let mut b = [0u8; 8];
                self.read(field_at(self.pid, start, o.nmethod_method)?, &mut b, "nmethod::_method")?;
                Some(u64::from_le_bytes(b)).filter(|&m| m != 0)
            }
            _ => None,
        };
        Ok(Some(Blob { start, kind, frame_bytes: frame_words as u64 * 8, frame_complete, code, method, name }))
    }

    /// A blob's kind and name, from its name's address (read once per
    /// name, at most [`vmstructs::MAX_NAME`] bytes).
    pub fn kind(&self, name: u64) -> Result<(BlobKind, std::sync::Arc<str>), Error> {
        if let Some(k) = self.kinds.lock().expect("blob kinds").get(&name) {
            return Ok(k.clone());
        }
        let walk = Walk { mem: &self.mem, pid: self.pid, deadline: Instant::now() + Duration::from_secs(1) };
        let mut buf = [0u8; vmstructs::MAX_NAME];
        let text = walk.string(name, &mut buf)?;
        let kind = match text {
            // A JNI method's wrapper is an nmethod too, with its Method*.
            Some(b"nmethod" | b"native nmethod") => BlobKind::Nmethod,
            Some(b"Interpreter") => BlobKind::Interpreter,
            _ => BlobKind::Stub,
        };
        let text: std::sync::Arc<str> = String::from_utf8_lossy(text.unwrap_or(b"[code blob]")).into();
        let mut kinds = self.kinds.lock().expect("blob kinds");
        if kinds.len() >= 1024 {
            kinds.clear();
        }
        kinds.insert(name, (kind, text.clone()));
        Ok((kind, text))
    }

    /// From the frame at `pc` (the sampled PC when `first`, else a return
    /// address) with stack pointer `sp` and RBP `bp`, to its caller;
    /// `read_stack` reads the thread's stack. `Ok(None)` when `pc` is not
    /// in the code cache's code (the caller unwinds it otherwise), or the
    /// step would not go up the stack.
    pub fn step(
        &self,
        pc: u64,
        first: bool,
        sp: u64,
        bp: u64,
        mut read_stack: impl FnMut(u64) -> Option<u64>,
    ) -> Result<Option<Step>, Error> {
        // A return address may be just past the blob's last call.
        let lookup = if first { pc } else { pc.saturating_sub(1) };
        let Some(blob) = self.blob(lookup)? else { return Ok(None) };
        let in_prologue = first && blob.frame_complete.is_some_and(|c| pc < c);
        let made = Step {
            pc: 0,
            sp: 0,
            bp: 0,
            kind: blob.kind,
            method: blob.method,
            code: (blob.code.start, blob.code.end),
            name: blob.name,
            blob: blob.start,
        };
        let step = match blob.kind {
            // The frame is not built yet: the return address is on top.
            BlobKind::Nmethod | BlobKind::Stub if in_prologue => {
                sp.checked_add(8).and_then(|next| read_stack(sp).map(|ra| Step { pc: ra, sp: next, bp, ..made }))
            }
            BlobKind::Nmethod | BlobKind::Stub if blob.frame_bytes >= 16 => {
                let sender_sp = sp.checked_add(blob.frame_bytes);
                sender_sp.and_then(|s| Some(Step { pc: read_stack(s - 8)?, sp: s, bp: read_stack(s - 16)?, ..made }))
            }
            // RBP is the frame pointer: the interpreter's frames and the
            // stubs without a frame size (the call stub).
            _ => {
                if bp < sp || bp.checked_add(16).is_none() {
                    return Ok(None);
                }
                let method = match blob.kind {
                    BlobKind::Interpreter => {
                        read_stack(bp.wrapping_add_signed(self.off.method_slot * 8)).filter(|&m| m != 0)
                    }
                    _ => None,
                };
                // An interpreted frame's caller may have had its stack
                // extended for the callee's locals: its SP is the one
                // saved in the frame when it lies between.
                let saved_sp = match blob.kind {
                    BlobKind::Interpreter => read_stack(bp.wrapping_add_signed(self.off.sender_sp_slot * 8))
                        .filter(|&s| s > sp && s <= bp + 16),
                    _ => None,
                };
                (|| {
                    Some(Step {
                        pc: read_stack(bp + 8)?,
                        sp: saved_sp.unwrap_or(bp + 16),
                        bp: read_stack(bp)?,
                        method,
                        ..made
                    })
                })()
            }
        };
        Ok(step.filter(|s| s.sp > sp && s.pc != 0))
    }

    /// Why the methods inlined into compiled ones are not read from this
    /// JVM ([`HotSpot::inlined`] finds none), when they are not: a field
    /// missing from its VMStructs.
    pub fn inlining_unsupported(&self) -> Option<&str> {
        self.no_inlining.as_deref()
    }

    /// The methods inlined at `pc` into the nmethod at `blob` (whose code
    /// begins at `code_begin` and whose method is `method`), innermost
    /// first, as the JVM's debug information describes them; empty where
    /// none is (or where this JVM's debug information cannot be read).
    /// `pc` is the sampled PC or a return address: as HotSpot's
    /// `nmethod::find_pc_desc` does when it approximates, its PcDesc is the
    /// first (they are sorted) at or after its offset in the code, and its
    /// scope chain is decoded from the scopes data
    /// (`ScopeDesc::decode_body`: the sender's decode offset, then the
    /// method's index in the metadata, then the bci), up to the nmethod's
    /// own method, which must be `method`.
    pub fn inlined(&self, blob: u64, code_begin: u64, method: u64, pc: u64) -> Result<Vec<u64>, Error> {
        let Some(o) = self.off.scopes else { return Ok(Vec::new()) };
        let Some(target) = pc.checked_sub(code_begin) else { return Ok(Vec::new()) };
        // The nmethod's sections, in the order HotSpot lays them out:
        // metadata, scopes data, PcDescs, dependencies.
        let len = [o.scopes_data_begin + 8, o.metadata + 4, o.scopes_pcs + 4, o.dependencies + 4]
            .into_iter()
            .max()
            .unwrap_or(0);
        let mut header = [0u8; 4096 + 8];
        let header = &mut header[..len as usize];
        self.read(blob, header, "an nmethod")?;
        let i32_at = |at: u64| i32::from_le_bytes(header[at as usize..][..4].try_into().expect("4 bytes"));
        let section = |at: u64| u64::try_from(i32_at(at)).ok().and_then(|off| blob.checked_add(off));
        let data = u64::from_le_bytes(header[o.scopes_data_begin as usize..][..8].try_into().expect("8 bytes"));
        let (Some(metadata), Some(pcs), Some(pcs_end)) =
            (section(o.metadata), section(o.scopes_pcs), section(o.dependencies))
        else {
            return Err(self.corrupt(format!("an nmethod at {blob:#x} with negative section offsets")));
        };
        let heap = self.heaps.iter().find(|h| h.low <= blob && blob < h.high);
        if !(metadata <= data && data <= pcs && pcs <= pcs_end && heap.is_some_and(|h| pcs_end <= h.high)) {
            return Err(self.corrupt(format!("an nmethod at {blob:#x} whose debug information is out of order")));
        }
        let count = (pcs_end - pcs) / o.pc_desc_size;
        if count > MAX_PC_DESCS {
            return Err(self.corrupt(format!("an nmethod at {blob:#x} with {count} PcDescs")));
        }
        let desc_field = |i: u64, field: u64, what| -> Result<i32, Error> {
            let mut b = [0u8; 4];
            self.read(pcs + i * o.pc_desc_size + field, &mut b, what)?;
            Ok(i32::from_le_bytes(b))
        };
        // The first PcDesc at or after the offset (the first one, HotSpot's
        // sentinel, has -1).
        let (mut lo, mut hi) = (0, count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if i64::from(desc_field(mid, o.pc_offset, "PcDesc::_pc_offset")?) < target as i64 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == count {
            return Ok(Vec::new());
        }
        let mut decode = desc_field(lo, o.scope_decode_offset, "PcDesc::_scope_decode_offset")?;
        let (data_len, methods) = (pcs - data, (data - metadata) / 8);
        let mut chain = Vec::new();
        // 0 is DebugInformationRecorder::serialized_null: no scope (the
        // nmethod's own method) or no sender.
        while decode != 0 {
            let off = u64::try_from(decode).ok().filter(|&d| d < data_len);
            let Some(off) = off.filter(|_| chain.len() < MAX_INLINE_DEPTH) else {
                return Err(self.corrupt(format!("an nmethod at {blob:#x} with a scope at {decode}")));
            };
            // The sender's offset and the method's index: at most two
            // compressed integers of 5 bytes.
            let mut bytes = [0u8; 10];
            let bytes = &mut bytes[..(data_len - off).min(10) as usize];
            self.read(data + off, bytes, "an nmethod's scopes data")?;
            let mut pos = 0;
            let (Some(sender), Some(index)) =
                (read_compressed(bytes, &mut pos, o.encoding), read_compressed(bytes, &mut pos, o.encoding))
            else {
                return Err(self.corrupt(format!("an nmethod at {blob:#x} with a scope at {decode} cut short")));
            };
            if index == 0 || index > methods {
                return Err(self.corrupt(format!("an nmethod at {blob:#x} with metadata #{index} of {methods}")));
            }
            chain.push(read_u64(&self.mem, self.pid, metadata + 8 * (index - 1), "an nmethod's metadata")?);
            decode = i32::try_from(sender).map_err(|_| self.corrupt(format!("a scope's sender at {sender}")))?;
        }
        match chain.pop() {
            None => Ok(chain),
            Some(outer) if outer == method => Ok(chain),
            Some(outer) => {
                Err(self
                    .corrupt(format!("an nmethod at {blob:#x} of Method* {method:#x} whose scopes end at {outer:#x}")))
            }
        }
    }

    /// The name of a Java method as HotSpot's perf map writes it
    /// (`long HotSplit.hotAlpha(long, int)`: see [`java_name`]).
    /// Remembered by `Method*`.
    pub fn method_name(&self, method: u64) -> Result<std::sync::Arc<str>, Error> {
        if let Some(n) = self.names.lock().expect("method names").0.get(&method) {
            return Ok(n.clone());
        }
        let Some(o) = self.off.names else {
            return Err(Error::Unsupported { pid: self.pid, why: "its VMStructs do not describe method names".into() });
        };
        let ptr = |addr: u64, what| read_u64(&self.mem, self.pid, addr, what);
        let u16_at = |addr: u64, what| -> Result<u16, Error> {
            let mut b = [0u8; 2];
            self.read(addr, &mut b, what)?;
            Ok(u16::from_le_bytes(b))
        };
        let at = |base: u64, offset: u64| field_at(self.pid, base, offset);
        let const_method = ptr(at(method, o.const_method)?, "Method::_constMethod")?;
        let pool = ptr(at(const_method, o.constants)?, "ConstMethod::_constants")?;
        let name_index = u16_at(at(const_method, o.name_index)?, "ConstMethod::_name_index")?;
        let signature_index = u16_at(at(const_method, o.signature_index)?, "ConstMethod::_signature_index")?;
        let holder = ptr(at(pool, o.pool_holder)?, "ConstantPool::_pool_holder")?;
        let slot = |i: u16| at(pool, o.pool_size.saturating_add(8 * u64::from(i)));
        let class = self.symbol(ptr(at(holder, o.klass_name)?, "Klass::_name")?, &o)?;
        let name = self.symbol(ptr(slot(name_index)?, "a method name")?, &o)?;
        let signature = self.symbol(ptr(slot(signature_index)?, "a method signature")?, &o)?;
        let full: std::sync::Arc<str> = java_name(&class, &name, &signature).into();
        let mut names = self.names.lock().expect("method names");
        if names.0.len() >= MAX_NAMES {
            names.0.clear();
            let held = names.1.bytes();
            names.1.shrink(held);
        }
        names.1.grow(full.len() as u64 + 64)?;
        names.0.insert(method, full.clone());
        Ok(full)
    }

    /// A `Symbol`'s text (at most [`MAX_SYMBOL`] bytes).
    fn symbol(&self, symbol: u64, o: &NameOffsets) -> Result<String, Error> {
        let mut b = [0u8; 2];
        self.read(field_at(self.pid, symbol, o.symbol_length)?, &mut b, "Symbol::_length")?;
        let len = u64::from(u16::from_le_bytes(b));
        if len > MAX_SYMBOL {
            return Err(self.corrupt(format!("a symbol of {len} bytes")));
        }
        let mut text = vec![0u8; len as usize];
        self.read(field_at(self.pid, symbol, o.symbol_body)?, &mut text, "Symbol::_body")?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// A method as HotSpot's perf map (`Compiler.perfmap`) names it: the
/// return type, the dotted class name, the method's name and its
/// parameter types, from the class's internal name (`java/lang/String`)
/// and the method's descriptor (`(JI)J`): `long HotSplit.hotAlpha(long,
/// int)`. A descriptor that does not parse is shown as it is.
pub fn java_name(class: &str, method: &str, descriptor: &str) -> String {
    let class = class.replace('/', ".");
    let parsed = (|| {
        let rest = descriptor.strip_prefix('(')?;
        let (params, ret) = rest.split_once(')')?;
        let mut types = Vec::new();
        let mut p = params;
        while !p.is_empty() {
            let (t, next) = java_type(p)?;
            types.push(t);
            p = next;
        }
        let (ret, tail) = java_type(ret)?;
        tail.is_empty().then(|| format!("{ret} {class}.{method}({})", types.join(", ")))
    })();
    parsed.unwrap_or_else(|| format!("{class}.{method}{descriptor}"))
}

/// The first type of a descriptor, as Java writes it, and the rest.
fn java_type(d: &str) -> Option<(String, &str)> {
    let mut dims = 0;
    let mut d = d;
    while let Some(rest) = d.strip_prefix('[') {
        dims += 1;
        d = rest;
    }
    let (base, rest) = match d.as_bytes().first()? {
        b'L' => {
            let (name, rest) = d[1..].split_once(';')?;
            (name.replace('/', "."), rest)
        }
        c => {
            let name = match c {
                b'B' => "byte",
                b'C' => "char",
                b'D' => "double",
                b'F' => "float",
                b'I' => "int",
                b'J' => "long",
                b'S' => "short",
                b'Z' => "boolean",
                b'V' => "void",
                _ => return None,
            };
            (name.to_owned(), &d[1..])
        }
    };
    Some((format!("{base}{}", "[]".repeat(dims)), rest))
}

/// One compressed integer of HotSpot's debug information
/// (`CompressedReadStream::read_int`) from `bytes` at `pos`, which it
/// moves past it; `None` where the bytes end first or hold an excluded
/// byte. Up to 5 bytes: a byte under 192 is the last, each adds its value
/// (less 1 in [`Encoding::Unsigned5`], where 0 is excluded) times 64 to the
/// power of its place.
pub fn read_compressed(bytes: &[u8], pos: &mut usize, encoding: Encoding) -> Option<u64> {
    let mut sum = 0u64;
    for i in 0..5 {
        let b = u64::from(*bytes.get(pos.checked_add(i)?)?);
        let value = match encoding {
            Encoding::Pack200 => b,
            Encoding::Unsigned5 => b.checked_sub(1)?,
        };
        sum += value << (6 * i);
        if b < 192 || i == 4 {
            *pos += i + 1;
            return Some(sum);
        }
    }
    None
}

/// `base + offset`, where either comes from the target (a pointer read from
/// its memory, an offset from its libjvm's VMStructs): past the end of the
/// address space is a corrupt structure, never an overflow.
fn field_at(pid: u32, base: u64, offset: u64) -> Result<u64, Error> {
    base.checked_add(offset).ok_or_else(|| Error::Corrupt {
        pid,
        what: format!("an address past the end of memory ({base:#x} + {offset:#x})"),
    })
}

fn read_u64(mem: &impl Memory, pid: u32, addr: u64, what: &'static str) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    mem.read(addr, &mut b).map_err(|source| Error::Read { pid, what, addr, source })?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(mem: &impl Memory, pid: u32, addr: u64, what: &'static str) -> Result<u32, Error> {
    let mut b = [0u8; 4];
    mem.read(addr, &mut b).map_err(|source| Error::Read { pid, what, addr, source })?;
    Ok(u32::from_le_bytes(b))
}

/// Finds libjvm.so among the process's mappings and the addresses of its
/// exported tables.
pub fn find_exports(pid: u32, budget: &Budget) -> Result<Exports, Error> {
    use std::io::Read as _;
    let maps_path = format!("/proc/{pid}/maps");
    let mut text = String::new();
    std::fs::File::open(&maps_path)
        .and_then(|f| f.take(MAX_MAPS).read_to_string(&mut text))
        .map_err(|source| Error::File { pid, path: maps_path.clone(), source })?;
    let _maps_charge = budget.charge(text.len() as u64, &maps_path)?;
    let maps = parse_maps(&text);
    let Some(first) = maps.iter().find(|m| m.path.rsplit('/').next() == Some("libjvm.so")) else {
        return Err(Error::NotHotSpot { pid });
    };
    let mappings: Vec<&Mapping> = maps.iter().filter(|m| m.path == first.path).collect();
    let via = format!("/proc/{pid}/map_files/{:x}-{:x}", first.start, first.end);
    let data = read_symbols(std::path::Path::new(&via), budget, SymbolTables::Dynamic)
        .map_err(|source| Error::File { pid, path: first.path.clone(), source })?;
    let file = object::File::parse(&*data.0).map_err(|_| Error::NotHotSpot { pid })?;
    let mut found: HashMap<&str, u64> = HashMap::new();
    for sym in file.dynamic_symbols() {
        if let Ok(name) = sym.name()
            && let Some(n) = EXPORTS.iter().chain([&CONST_VALUE]).find(|n| **n == name)
            && sym.address() != 0
        {
            found.insert(n, sym.address());
        }
    }
    let layout = crate::ElfLayout::parse(&data.0);
    let bias = load_bias(&layout, &mappings).ok_or_else(|| Error::Corrupt {
        pid,
        what: format!("{}: its mappings match none of its segments", first.path),
    })?;
    let at = |name: &str| found.get(name).map(|a| a.wrapping_add(bias));
    let need = |name: &str| at(name).ok_or(Error::NotHotSpot { pid });
    let constants = at("gHotSpotVMIntConstants");
    let const_layout =
        [at("gHotSpotVMIntConstantEntryArrayStride"), at("gHotSpotVMIntConstantEntryNameOffset"), at(CONST_VALUE)];
    let (int_constants, const_layout) = match (constants, const_layout) {
        (Some(c), [Some(a), Some(b), Some(d)]) => (Some(c), [a, b, d]),
        _ => (None, [0; 3]),
    };
    Ok(Exports {
        structs: need(EXPORTS[0])?,
        struct_layout: [
            need(EXPORTS[1])?,
            need(EXPORTS[2])?,
            need(EXPORTS[3])?,
            need(EXPORTS[4])?,
            need(EXPORTS[5])?,
            need(EXPORTS[6])?,
        ],
        types: need(EXPORTS[7])?,
        type_layout: [need(EXPORTS[8])?, need(EXPORTS[9])?, need(EXPORTS[10])?],
        int_constants,
        const_layout,
    })
}

#[cfg(test)]
mod tests;
