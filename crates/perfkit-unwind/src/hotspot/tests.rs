use std::time::{Duration, Instant};

use super::*;
use crate::cpython::memory::fake::FakeMemory;

/// Made-up memory laid out in a few zeroed regions, written into.
struct Builder {
    mem: FakeMemory,
    strings: u64,
}

const EXPORTS_AT: u64 = 0x1000;
const STRUCTS_AT: u64 = 0x10000;
const TYPES_AT: u64 = 0x18000;
const CONSTS_AT: u64 = 0x1c000;
const STRINGS_AT: u64 = 0x20000;
const HEAP_AT: u64 = 0x30000;
const SEGMAP_AT: u64 = 0x50000;
const CODE_AT: u64 = 0x100000;
const META_AT: u64 = 0x200000;

/// The layout of the made-up entries (HotSpot's own on x86-64).
const STRUCT_STRIDE: u64 = 48;
const TYPE_STRIDE: u64 = 48;
const CONST_STRIDE: u64 = 16;

impl Builder {
    fn new() -> Self {
        let mut mem = FakeMemory::default();
        for (at, len) in [
            (EXPORTS_AT, 0x1000),
            (STRUCTS_AT, 0x8000),
            (TYPES_AT, 0x4000),
            (CONSTS_AT, 0x4000),
            (STRINGS_AT, 0x8000),
            (HEAP_AT, 0x1000),
            (SEGMAP_AT, 0x1000),
            (CODE_AT, 0x10000),
            (META_AT, 0x10000),
        ] {
            mem.put(at, &vec![0u8; len]);
        }
        Self { mem, strings: STRINGS_AT }
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) {
        let (start, region) = self.mem.regions.range_mut(..=addr).next_back().expect("a region");
        let from = (addr - start) as usize;
        region[from..from + bytes.len()].copy_from_slice(bytes);
    }

    fn u64(&mut self, addr: u64, v: u64) {
        self.write(addr, &v.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> u64 {
        let at = self.strings;
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.write(at, &b);
        self.strings += b.len() as u64;
        at
    }

    /// The exported variables: 14 + 1 u64s, in the order of `Exports`.
    fn exports(&mut self) -> Exports {
        let values = [
            STRUCTS_AT, // the pointer gHotSpotVMStructs holds
            STRUCT_STRIDE,
            0,
            8,
            24,
            32,
            40,
            TYPES_AT,
            TYPE_STRIDE,
            0,
            40,
            CONSTS_AT,
            CONST_STRIDE,
            0,
            8,
        ];
        for (i, v) in values.iter().enumerate() {
            self.u64(EXPORTS_AT + 8 * i as u64, *v);
        }
        let at = |i: u64| EXPORTS_AT + 8 * i;
        Exports {
            structs: at(0),
            struct_layout: [at(1), at(2), at(3), at(4), at(5), at(6)],
            types: at(7),
            type_layout: [at(8), at(9), at(10)],
            int_constants: Some(at(11)),
            const_layout: [at(12), at(13), at(14)],
        }
    }

    /// A structures table of these (type, field, offset or address).
    fn structs(&mut self, entries: &[(&str, &str, u64, bool)]) {
        for (i, &(t, f, value, is_static)) in entries.iter().enumerate() {
            let at = STRUCTS_AT + STRUCT_STRIDE * i as u64;
            let (t, f) = (self.string(t), self.string(f));
            self.u64(at, t);
            self.u64(at + 8, f);
            self.write(at + 24, &(is_static as i32).to_le_bytes());
            self.u64(if is_static { at + 40 } else { at + 32 }, value);
        }
    }

    fn types(&mut self, entries: &[(&str, u64)]) {
        for (i, &(t, size)) in entries.iter().enumerate() {
            let at = TYPES_AT + TYPE_STRIDE * i as u64;
            let t = self.string(t);
            self.u64(at, t);
            self.u64(at + 40, size);
        }
    }
}

/// A JVM's description of itself, made up with HotSpot 17's layout on
/// x86-64, and a code cache of one heap (128-byte segments) holding one
/// nmethod over segments 2 to 4, the interpreter over segments 8 to 9,
/// and a free block at 6.
fn jvm() -> (Builder, Exports) {
    jvm_of("GrowableArrayBase")
}

/// [`jvm`], with the code heaps' array length described as `growable`'s
/// (`GrowableArrayBase` from JDK 16, `GenericGrowableArray` before).
fn jvm_of(growable: &str) -> (Builder, Exports) {
    let mut b = Builder::new();
    let exports = b.exports();
    // CodeCache::_heaps -> a GrowableArray at 0x30800 of one CodeHeap*.
    let heaps_var = 0x30f00;
    let array = 0x30800;
    b.structs(&[
        ("Unrelated", "_field", 0x99, false),
        ("CodeCache", "_heaps", heaps_var, true),
        (growable, "_len", 0, false),
        ("GrowableArray<int>", "_data", 8, false),
        ("CodeHeap", "_memory", 0x10, false),
        ("CodeHeap", "_segmap", 0x40, false),
        ("CodeHeap", "_log2_segment_size", 0x80, false),
        ("VirtualSpace", "_low_boundary", 0, false),
        ("VirtualSpace", "_high_boundary", 8, false),
        ("CodeBlob", "_name", 8, false),
        ("CodeBlob", "_frame_complete_offset", 0x18, false),
        ("CodeBlob", "_frame_size", 0x1c, false),
        ("CodeBlob", "_code_begin", 0x28, false),
        ("CodeBlob", "_code_end", 0x30, false),
        ("CompiledMethod", "_method", 0x60, false),
        ("Method", "_constMethod", 8, false),
        ("ConstMethod", "_constants", 8, false),
        ("ConstMethod", "_name_index", 0x22, false),
        ("ConstMethod", "_signature_index", 0x24, false),
        ("ConstantPool", "_pool_holder", 0x18, false),
        ("Klass", "_name", 0x10, false),
        ("Symbol", "_length", 0, false),
        ("Symbol", "_body", 6, false),
        ("CompiledMethod", "_scopes_data_begin", 0x68, false),
        ("nmethod", "_metadata_offset", 0x70, false),
        ("nmethod", "_scopes_pcs_offset", 0x74, false),
        ("nmethod", "_dependencies_offset", 0x78, false),
        ("PcDesc", "_pc_offset", 0, false),
        ("PcDesc", "_scope_decode_offset", 4, false),
        ("Abstract_VM_Version", "_vm_major_version", HEAP_AT + 0x200, true),
    ]);
    b.types(&[("HeapBlock", 16), ("ConstantPool", 0x48), ("int", 4), ("PcDesc", 16)]);
    b.write(HEAP_AT + 0x200, &17u32.to_le_bytes());
    // No constants: x86-64's interpreter layout is assumed.
    b.u64(heaps_var, array);
    b.write(array, &1u32.to_le_bytes());
    b.u64(array + 8, array + 0x20);
    b.u64(array + 0x20, HEAP_AT);
    b.u64(HEAP_AT + 0x10, CODE_AT);
    b.u64(HEAP_AT + 0x18, CODE_AT + 0x10000);
    b.u64(HEAP_AT + 0x40, SEGMAP_AT);
    b.write(HEAP_AT + 0x80, &7u32.to_le_bytes());
    let mut segmap = vec![0xffu8; 0x200];
    segmap[2..5].copy_from_slice(&[0, 1, 2]);
    segmap[8..10].copy_from_slice(&[0, 1]);
    b.write(SEGMAP_AT, &segmap);
    let nmethod_name = b.string("nmethod");
    let interpreter_name = b.string("Interpreter");
    // The nmethod: its code from +0x80, 6 words of frame, complete at +0x10.
    let blob = CODE_AT + 2 * 128 + 16;
    b.u64(blob + 8, nmethod_name);
    b.write(blob + 0x18, &0x10i32.to_le_bytes());
    b.write(blob + 0x1c, &6i32.to_le_bytes());
    b.u64(blob + 0x28, blob + 0x80);
    b.u64(blob + 0x30, blob + 0x170);
    b.u64(blob + 0x60, META_AT);
    // The interpreter: no frame size (-1).
    let interp = CODE_AT + 8 * 128 + 16;
    b.u64(interp + 8, interpreter_name);
    b.write(interp + 0x18, &(-1i32).to_le_bytes());
    b.write(interp + 0x1c, &(-1i32).to_le_bytes());
    b.u64(interp + 0x28, interp + 0x40);
    b.u64(interp + 0x30, interp + 0xe0);
    // Method at META_AT -> ConstMethod at +0x100 -> ConstantPool at
    // +0x200 (holder Klass at +0x400), symbols at +0x800...
    let (method, cm, cp, klass) = (META_AT, META_AT + 0x100, META_AT + 0x200, META_AT + 0x400);
    b.u64(method + 8, cm);
    b.u64(cm + 8, cp);
    b.write(cm + 0x22, &3u16.to_le_bytes());
    b.write(cm + 0x24, &4u16.to_le_bytes());
    b.u64(cp + 0x18, klass);
    let symbol = |b: &mut Builder, at: u64, text: &str| {
        b.write(at, &(text.len() as u16).to_le_bytes());
        b.write(at + 6, text.as_bytes());
    };
    symbol(&mut b, META_AT + 0x800, "com/example/Hot");
    symbol(&mut b, META_AT + 0x900, "run");
    symbol(&mut b, META_AT + 0xa00, "([Ljava/lang/String;IJ)[[D");
    b.u64(klass + 0x10, META_AT + 0x800);
    b.u64(cp + 0x48 + 3 * 8, META_AT + 0x900);
    b.u64(cp + 0x48 + 4 * 8, META_AT + 0xa00);
    (b, exports)
}

#[test]
fn jdk_11s_generic_growable_array_holds_the_code_heaps() {
    let budget = Budget::new(1 << 20);
    let (b, exports) = jvm_of("GenericGrowableArray");
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    assert_eq!(hs.heaps().len(), 1);
    assert_eq!(hs.heaps()[0].low, CODE_AT);
    // Neither name: the JVM is not read, and the error says what it lacks.
    let (b, exports) = jvm_of("SomeOtherArray");
    let e = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap_err();
    assert!(e.to_string().contains("GenericGrowableArray::_len"), "{e}");
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[test]
fn vmstructs_give_the_code_cache_and_its_blobs() {
    let (b, exports) = jvm();
    let budget = Budget::new(1 << 20);
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    assert_eq!(hs.heaps(), [Heap { low: CODE_AT, high: CODE_AT + 0x10000, segmap: SEGMAP_AT, log2_segment: 7 }]);
    // A PC in the nmethod's last segment: two segments back to its start.
    let blob_at = CODE_AT + 2 * 128 + 16;
    let pc = CODE_AT + 4 * 128 + 0x20;
    let blob = hs.blob(pc).unwrap().unwrap();
    assert_eq!(
        blob,
        Blob {
            start: blob_at,
            kind: BlobKind::Nmethod,
            frame_bytes: 48,
            frame_complete: Some(blob_at + 0x90),
            code: blob_at + 0x80..blob_at + 0x170,
            method: Some(META_AT),
            name: blob.name,
        }
    );
    assert_eq!(&*hs.kind(blob.name).unwrap().1, "nmethod");
    // Outside the blob's code (its header), in a free block, outside the
    // heap: none.
    assert_eq!(hs.blob(blob_at + 0x10).unwrap(), None);
    assert_eq!(hs.blob(CODE_AT + 6 * 128).unwrap(), None);
    assert_eq!(hs.blob(CODE_AT + 0x20000).unwrap(), None);
    assert!(!hs.contains(0x1234) && hs.contains(pc));
    // The interpreter, whose frame size is -1.
    let interp = hs.blob(CODE_AT + 9 * 128).unwrap().unwrap();
    assert_eq!((interp.kind, interp.frame_bytes, interp.frame_complete), (BlobKind::Interpreter, 0, None));
    assert_eq!(&*hs.method_name(META_AT).unwrap(), "double[][] com.example.Hot.run(java.lang.String[], int, long)");
}

#[test]
fn steps_through_compiled_and_interpreted_frames() {
    let (b, exports) = jvm();
    let hs = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap();
    let pc = CODE_AT + 4 * 128 + 0x20;
    // A compiled frame of 6 words at SP 0x7000: the return address at
    // 0x7028, the caller's RBP at 0x7020.
    let stack: std::collections::HashMap<u64, u64> =
        [(0x7028, 0xaaaa), (0x7020, 0x7100), (0x7000, 0xbbbb), (0x7100, 0x7200), (0x7108, 0xcccc), (0x70e8, 0x42)]
            .into_iter()
            .collect();
    let read = |a: u64| stack.get(&a).copied();
    let step = hs.step(pc, true, 0x7000, 0x1, read).unwrap().unwrap();
    assert_eq!(
        (step.pc, step.sp, step.bp, step.kind, step.method),
        (0xaaaa, 0x7030, 0x7100, BlobKind::Nmethod, Some(META_AT))
    );
    let blob_at = CODE_AT + 2 * 128 + 16;
    assert_eq!(step.code, (blob_at + 0x80, blob_at + 0x170));
    // In its prologue (before the frame is complete): the return address
    // is on top of the stack.
    let early = CODE_AT + 2 * 128 + 16 + 0x84;
    let step = hs.step(early, true, 0x7000, 0x1, read).unwrap().unwrap();
    assert_eq!((step.pc, step.sp, step.bp), (0xbbbb, 0x7008, 0x1));
    // The interpreter: RBP-based, the Method* 3 words under RBP.
    let step = hs.step(CODE_AT + 9 * 128 + 1, false, 0x7000, 0x7100, read).unwrap().unwrap();
    assert_eq!(
        (step.pc, step.sp, step.bp, step.kind, step.method),
        (0xcccc, 0x7110, 0x7200, BlobKind::Interpreter, Some(0x42))
    );
    assert_eq!(&*hs.kind(step.name).unwrap().1, "Interpreter");
    let with_method: std::collections::HashMap<u64, u64> =
        stack.iter().map(|(&k, &v)| (k, v)).chain([(0x7100 - 24, META_AT), (0x7100 - 8, 0x7108)]).collect();
    let step = hs.step(CODE_AT + 9 * 128 + 1, false, 0x7000, 0x7100, |a| with_method.get(&a).copied()).unwrap();
    assert_eq!(step.unwrap().method, Some(META_AT));
    assert_eq!(step.unwrap().sp, 0x7108, "the caller's SP saved in the frame");
    // A step that would not go up the stack is refused.
    assert_eq!(hs.step(CODE_AT + 9 * 128 + 1, false, 0x7000, 0x6000, read).unwrap(), None);
    // Not in the code cache: for the native unwinder.
    assert_eq!(hs.step(0x1234, true, 0x7000, 0x7100, read).unwrap(), None);
}

#[test]
fn java_names_as_the_perf_map_writes_them() {
    assert_eq!(java_name("HotSplit", "hotAlpha", "(JI)J"), "long HotSplit.hotAlpha(long, int)");
    assert_eq!(java_name("java/lang/Object", "<init>", "()V"), "void java.lang.Object.<init>()");
    assert_eq!(
        java_name("a/B", "m", "([[Ljava/util/List;ZBCSFD)Ljava/lang/String;"),
        "java.lang.String a.B.m(java.util.List[][], boolean, byte, char, short, float, double)"
    );
    // Not a descriptor: shown as it is.
    assert_eq!(java_name("a/B", "m", "(Q)V"), "a.B.m(Q)V");
    assert_eq!(java_name("a/B", "m", "(I"), "a.B.m(I");
}

#[test]
fn a_missing_field_or_an_absurd_layout_is_an_error() {
    // Without CodeBlob::_frame_size.
    let (mut b, exports) = jvm();
    let frame_size_entry = STRUCTS_AT + STRUCT_STRIDE * 11;
    b.u64(frame_size_entry + 8, b.strings); // a field named ""
    let err = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap_err();
    assert!(err.to_string().contains("no CodeBlob::_frame_size"), "{err}");
    // A stride of 1 MiB, or one with the name outside it.
    for stride in [1 << 20, 4] {
        let (mut b, exports) = jvm();
        b.u64(EXPORTS_AT + 8, stride);
        let err = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    // A billion code heaps.
    let (mut b, exports) = jvm();
    b.write(0x30800, &(1u32 << 30).to_le_bytes());
    let err = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap_err();
    assert!(err.to_string().contains("code heaps"), "{err}");
}

#[test]
fn a_table_without_end_or_names_without_nul_is_bounded() {
    // Every entry names a type without a NUL in its first 128 bytes, and
    // the table never ends (the memory repeats it as far as it is read).
    struct Endless;
    impl Memory for Endless {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
            // gHotSpotVMStructs (0x100) points to 0x2000; the stride
            // (0x200) is 16 and every field is at 0 (0x208); past 0x2000,
            // every word is 0x4141...: entries whose names are all 'A'.
            let word = |a: u64| match a {
                0x100 => 0x2000,
                0x200 => 16,
                a if a < 0x2000 => 0,
                _ => 0x4141_4141_4141_4141u64,
            };
            for (i, b) in buf.iter_mut().enumerate() {
                let a = addr + i as u64;
                *b = word(a & !7).to_le_bytes()[(a % 8) as usize];
            }
            Ok(())
        }
    }
    let exports = Exports {
        structs: 0x100,
        struct_layout: [0x200, 0x208, 0x208, 0x208, 0x208, 0x208],
        types: 0x100,
        type_layout: [0x200, 0x208, 0x208],
        int_constants: None,
        const_layout: [0; 3],
    };
    // Strides of 16 with every field at 0: the fields overlap but lie
    // within; the entries never end.
    let started = Instant::now();
    let err = HotSpot::new(Endless, 7, &exports, &Budget::new(1 << 20), soon()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(err.to_string().contains("no end within"), "{err}");
    // The deadline ends the walk first when it is near.
    let err = HotSpot::new(Endless, 7, &exports, &Budget::new(1 << 20), Instant::now()).unwrap_err();
    assert!(matches!(err, Error::Late { .. }), "{err}");
}

#[test]
fn a_segment_map_that_never_reaches_a_start_is_refused() {
    let (mut b, exports) = jvm();
    // Hops of 1 from the end of the map down to segment 0, which says 1
    // again: more than there are segments.
    b.write(SEGMAP_AT, &vec![1u8; 0x200]);
    let hs = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap();
    let err = hs.blob(CODE_AT + 0x1ff * 128).unwrap_err();
    assert!(err.to_string().contains("segment map"), "{err}");
    // Long but finite chains are followed (across windows of the map).
    let (mut b, exports) = jvm();
    let mut map = vec![1u8; 0x200];
    map[0] = 0;
    b.write(SEGMAP_AT, &map);
    b.u64(CODE_AT + 16 + 8, b.strings - 12); // "Interpreter"'s name
    b.u64(CODE_AT + 16 + 0x28, CODE_AT + 0x100);
    b.u64(CODE_AT + 16 + 0x30, CODE_AT + 0x10000);
    let hs = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap();
    let blob = hs.blob(CODE_AT + 0x1ff * 128).unwrap().unwrap();
    assert_eq!((blob.start, blob.kind), (CODE_AT + 16, BlobKind::Interpreter));
}

#[test]
fn method_names_are_bounded_and_charged() {
    let (mut b, exports) = jvm();
    // A symbol that says it is 60,000 bytes long.
    b.write(META_AT + 0x900, &60_000u16.to_le_bytes());
    let budget = Budget::new(1 << 20);
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    let err = hs.method_name(META_AT).unwrap_err();
    assert!(err.to_string().contains("a symbol of 60000 bytes"), "{err}");
    // A name within bounds is charged while it is remembered.
    let (b, exports) = jvm();
    let budget = Budget::new(1 << 20);
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    let before = budget.used();
    hs.method_name(META_AT).unwrap();
    assert!(budget.used() > before);
    drop(hs);
    assert_eq!(budget.used(), 0);
}

#[test]
fn pointers_at_the_end_of_memory_are_corrupt_not_an_overflow() {
    // A method pointer (from a hostile JVM's frame or nmethod) whose fields
    // lie past the end of the address space.
    let (b, exports) = jvm();
    let hs = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap();
    let err = hs.method_name(u64::MAX - 4).unwrap_err();
    assert!(err.to_string().contains("past the end of memory"), "{err}");
    // A constant pool pointer there, read from the target's memory.
    let (mut b, exports) = jvm();
    b.u64(META_AT + 0x100 + 8, u64::MAX - 2);
    let hs = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).unwrap();
    let err = hs.method_name(META_AT).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. } | Error::Read { .. }), "{err}");
    // A CodeHeap* at the end of memory (its _memory field is past it).
    let (mut b, exports) = jvm();
    b.u64(0x30800 + 0x20, u64::MAX - 2);
    let err = HotSpot::new(b.mem, 7, &exports, &Budget::new(1 << 20), soon()).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("past the end of memory"), "{err}");
}

/// HotSpot's writer of compressed integers (`CompressedWriteStream::
/// write_int`), for both encodings: low bytes (under 192) end a number,
/// high bytes carry 6 more bits each; UNSIGNED5 adds 1 to every byte.
fn write_compressed(mut v: u64, encoding: Encoding, out: &mut Vec<u8>) {
    let x = match encoding {
        Encoding::Pack200 => 0,
        Encoding::Unsigned5 => 1,
    };
    let l = 192 - x;
    for i in 0..5 {
        if v < l || i == 4 {
            out.push((v + x) as u8);
            return;
        }
        v -= l;
        out.push((l + x + v % 64) as u8);
        v >>= 6;
    }
}

#[test]
fn compressed_integers_read_as_hotspot_writes_them() {
    for encoding in [Encoding::Pack200, Encoding::Unsigned5] {
        let values = [0u64, 1, 190, 191, 192, 193, 4000, 12_287, 12_288, 1 << 20, 0x7fff_ffff];
        let mut bytes = Vec::new();
        for &v in &values {
            write_compressed(v, encoding, &mut bytes);
        }
        let mut pos = 0;
        for &v in &values {
            assert_eq!(read_compressed(&bytes, &mut pos, encoding), Some(v), "{encoding:?}");
        }
        assert_eq!(pos, bytes.len());
        // Cut short: no number, and the position stays.
        let mut pos = 0;
        assert_eq!(read_compressed(&[0xc0, 0xff], &mut pos, encoding), None);
        assert_eq!(pos, 0);
    }
    // One byte each: under 192 the value itself (less 1 in UNSIGNED5).
    assert_eq!(read_compressed(&[7], &mut 0, Encoding::Pack200), Some(7));
    assert_eq!(read_compressed(&[7], &mut 0, Encoding::Unsigned5), Some(6));
    // UNSIGNED5 never writes a zero byte.
    assert_eq!(read_compressed(&[0], &mut 0, Encoding::Unsigned5), None);
    // Five bytes at most, whatever the fifth.
    let mut pos = 0;
    assert!(read_compressed(&[0xff; 8], &mut pos, Encoding::Pack200).is_some());
    assert_eq!(pos, 5);
}

/// [`jvm`]'s nmethod with debug information after its code: two
/// `Metadata*` (its method, and an inlined one), scopes data (Pack200,
/// JDK 17), and PcDescs at code offsets 0x10 (the inlined method's scope,
/// whose sender is the nmethod's own), 0x40 (its own), 0x50 (a scope that
/// is its own sender) and 0x60 (a method index past the metadata).
fn jvm_with_scopes() -> (Builder, Exports, u64) {
    let (mut b, exports) = jvm();
    let blob = CODE_AT + 2 * 128 + 16;
    let inner = META_AT + 0x1000;
    b.write(blob + 0x70, &0x180i32.to_le_bytes());
    b.u64(blob + 0x180, META_AT);
    b.u64(blob + 0x188, inner);
    b.u64(blob + 0x68, blob + 0x190);
    // Each scope: sender, method index, bci + 1.
    b.write(blob + 0x190, &[0xff, 0, 1, 6, 1, 2, 4, 7, 2, 1, 0, 9, 1]);
    b.write(blob + 0x74, &0x1a0i32.to_le_bytes());
    let descs: [(i32, i32); 5] = [(-1, 0), (0x10, 4), (0x40, 1), (0x50, 7), (0x60, 10)];
    for (i, (pc, scope)) in descs.iter().enumerate() {
        b.write(blob + 0x1a0 + 16 * i as u64, &pc.to_le_bytes());
        b.write(blob + 0x1a4 + 16 * i as u64, &scope.to_le_bytes());
    }
    b.write(blob + 0x78, &(0x1a0i32 + 16 * 5).to_le_bytes());
    (b, exports, blob)
}

#[test]
fn inlined_methods_are_read_from_the_scopes_of_the_next_pc_desc() {
    let (b, exports, blob) = jvm_with_scopes();
    let budget = Budget::new(1 << 20);
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    assert_eq!(hs.inlining_unsupported(), None);
    let code = blob + 0x80;
    let inner = META_AT + 0x1000;
    // Before the first PcDesc and at it: the inlined method's scope.
    assert_eq!(hs.inlined(blob, code, META_AT, code).unwrap(), [inner]);
    assert_eq!(hs.inlined(blob, code, META_AT, code + 0x10).unwrap(), [inner]);
    // Past it, up to the next: the nmethod's own scope, nothing inlined.
    assert!(hs.inlined(blob, code, META_AT, code + 0x11).unwrap().is_empty());
    assert!(hs.inlined(blob, code, META_AT, code + 0x40).unwrap().is_empty());
    // Past the last PcDesc, or before the code: nothing known.
    assert!(hs.inlined(blob, code, META_AT, code + 0x61).unwrap().is_empty());
    assert!(hs.inlined(blob, code, META_AT, code - 1).unwrap().is_empty());
    // Scopes that end at another method than the nmethod's: an error.
    let e = hs.inlined(blob, code, META_AT + 8, code).unwrap_err();
    assert!(e.to_string().contains("whose scopes end at"), "{e}");
    // A scope that is its own sender ends at the depth limit.
    let e = hs.inlined(blob, code, META_AT, code + 0x50).unwrap_err();
    assert!(e.to_string().contains("with a scope at 7"), "{e}");
    // A method index past the metadata.
    let e = hs.inlined(blob, code, META_AT, code + 0x60).unwrap_err();
    assert!(e.to_string().contains("metadata #9 of 2"), "{e}");
}

#[test]
fn corrupt_nmethod_sections_are_errors() {
    let budget = Budget::new(1 << 20);
    // Sections out of order: the PcDescs end before they begin.
    let (mut b, exports, blob) = jvm_with_scopes();
    b.write(blob + 0x78, &0x100i32.to_le_bytes());
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    let e = hs.inlined(blob, blob + 0x80, META_AT, blob + 0x80).unwrap_err();
    assert!(e.to_string().contains("out of order"), "{e}");
    // A negative section offset.
    let (mut b, exports, blob) = jvm_with_scopes();
    b.write(blob + 0x74, &(-8i32).to_le_bytes());
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    let e = hs.inlined(blob, blob + 0x80, META_AT, blob + 0x80).unwrap_err();
    assert!(e.to_string().contains("negative section offsets"), "{e}");
    // Scopes data past the heap: out of order too.
    let (mut b, exports, blob) = jvm_with_scopes();
    b.u64(blob + 0x68, u64::MAX - 4);
    let hs = HotSpot::new(b.mem, 7, &exports, &budget, soon()).unwrap();
    assert!(hs.inlined(blob, blob + 0x80, META_AT, blob + 0x80).is_err());
}
