//! The frame walker over made-up 3.12 and 3.10 memory: what it reads, and
//! how it refuses what a hostile process could put there.

use super::{memory::fake::FakeMemory, *};

const RUNTIME: u64 = 0x10_000;
const INTERP: u64 = 0x20_000;
const TSTATE: u64 = 0x30_000;
const CFRAME: u64 = 0x38_000;
const CODE_TYPE: u64 = 0x90_000;

fn v(minor: u8) -> Version {
    Version { major: 3, minor, micro: 0 }
}

/// A compact ASCII `str` of 3.12 (PyASCIIObject is 40 bytes).
fn put_str(mem: &mut FakeMemory, addr: u64, text: &str) {
    let mut obj = vec![0u8; 40];
    obj[16..24].copy_from_slice(&(text.len() as u64).to_le_bytes());
    // kind 1, compact, ascii.
    obj[32..36].copy_from_slice(&((1u32 << 2) | (1 << 5) | (1 << 6)).to_le_bytes());
    obj.extend_from_slice(text.as_bytes());
    mem.put(addr, &obj);
}

/// A 3.12 code object at `addr` with its strings and location table; its
/// instructions start at `addr + 192`.
fn put_code(mem: &mut FakeMemory, addr: u64, qualname: &str, file: &str, first_line: i32, table: &[u8]) {
    let mut code = vec![0u8; 192 + 64];
    code[8..16].copy_from_slice(&CODE_TYPE.to_le_bytes());
    code[68..72].copy_from_slice(&first_line.to_le_bytes());
    for (field, target) in [(112, addr + 0x1000), (120, addr + 0x2000), (128, addr + 0x2000), (136, addr + 0x3000)] {
        code[field..field + 8].copy_from_slice(&target.to_le_bytes());
    }
    mem.put(addr, &code);
    put_str(mem, addr + 0x1000, file);
    put_str(mem, addr + 0x2000, qualname);
    let mut bytes = vec![0u8; 32];
    bytes[16..24].copy_from_slice(&(table.len() as u64).to_le_bytes());
    bytes.extend_from_slice(table);
    mem.put(addr + 0x3000, &bytes);
}

/// A 3.12 `_PyInterpreterFrame` at `addr`.
fn put_frame(mem: &mut FakeMemory, addr: u64, code: u64, instr_unit: u64, previous: u64, owner: u8) {
    let mut f = vec![0u8; 80];
    f[0..8].copy_from_slice(&code.to_le_bytes());
    f[8..16].copy_from_slice(&previous.to_le_bytes());
    f[56..64].copy_from_slice(&(code + 192 + instr_unit * 2).to_le_bytes());
    f[70] = owner;
    mem.put(addr, &f);
}

/// One interpreter, one thread (tid 4242) with `main` (line 20) calling
/// `Worker.run` (line 11), through a C-stack shim frame.
fn process_312() -> FakeMemory {
    let mut mem = FakeMemory::default();
    let mut runtime = vec![0u8; 64];
    runtime[40..48].copy_from_slice(&INTERP.to_le_bytes());
    mem.put(RUNTIME, &runtime);
    let mut interp = vec![0u8; 128];
    interp[72..80].copy_from_slice(&TSTATE.to_le_bytes());
    mem.put(INTERP, &interp);
    let mut tstate = vec![0u8; 256];
    tstate[56..64].copy_from_slice(&CFRAME.to_le_bytes());
    tstate[136..144].copy_from_slice(&0x7f00_dead_0000u64.to_le_bytes());
    tstate[144..152].copy_from_slice(&4242u64.to_le_bytes());
    mem.put(TSTATE, &tstate);
    mem.put_u64(CFRAME, 0x40_000);
    // Lines: units 0..2 at first line + 1, units 2..4 at + 2 (no column).
    let table = [0x80 | (13 << 3) | 1, 2, 0x80 | (13 << 3) | 1, 2];
    put_code(&mut mem, 0x50_000, "Worker.run", "/app/w.py", 9, &table);
    put_code(&mut mem, 0x60_000, "main", "/app/main.py", 18, &table);
    put_frame(&mut mem, 0x40_000, 0x50_000, 3, 0x41_000, 0);
    put_frame(&mut mem, 0x41_000, 0x60_000, 0, 0x42_000, 3);
    put_frame(&mut mem, 0x42_000, 0x60_000, 2, 0, 0);
    mem
}

fn reader(mem: FakeMemory, minor: u8) -> CPython<FakeMemory> {
    CPython::new(mem, 1, RUNTIME, Some(v(minor)), Some(CODE_TYPE), &Budget::new(1 << 20)).unwrap()
}

#[test]
fn reads_thread_stacks_with_lines_and_skips_shims() {
    let py = reader(process_312(), 12);
    let threads = py.threads().unwrap();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].native_tid, Some(4242));
    assert_eq!(threads[0].thread_id, 0x7f00_dead_0000);
    let frames: Vec<(&str, &str, Option<u32>)> =
        threads[0].frames.iter().map(|f| (f.qualname.as_str(), f.file.as_str(), f.line)).collect();
    assert_eq!(frames, [("Worker.run", "/app/w.py", Some(11)), ("main", "/app/main.py", Some(20))]);
    // Worker.run was called from C (through the shim): both began a loop.
    assert!(threads[0].frames.iter().all(|f| f.entry));
    assert_eq!(py.stack(4242).unwrap().map(|s| s.len()), Some(2));
    assert_eq!(py.stack(4243).unwrap(), None);
}

#[test]
fn a_frame_loop_is_an_error_not_a_hang() {
    let mut mem = process_312();
    put_frame(&mut mem, 0x42_000, 0x60_000, 2, 0x40_000, 0);
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.to_string().contains("loops"), "{err}");
}

#[test]
fn a_thread_list_loop_is_an_error() {
    let mut mem = process_312();
    mem.regions.get_mut(&TSTATE).unwrap()[8..16].copy_from_slice(&TSTATE.to_le_bytes());
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(err.to_string().contains("thread states list loops"), "{err}");
}

#[test]
fn huge_lengths_are_refused_before_allocating() {
    let mut mem = process_312();
    // A name claiming 2^40 characters, a line table of 2^40 bytes.
    mem.regions.get_mut(&0x52_000).unwrap()[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(err.to_string().contains("a name of 1099511627776 characters"), "{err}");
    let mut mem = process_312();
    mem.regions.get_mut(&0x53_000).unwrap()[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(err.to_string().contains("a line table of 1099511627776 bytes"), "{err}");
}

#[test]
fn the_budget_bounds_what_is_read() {
    let py = CPython::new(process_312(), 1, RUNTIME, Some(v(12)), Some(CODE_TYPE), &Budget::new(8)).unwrap();
    assert!(matches!(py.threads().unwrap_err(), Error::Budget(_)));
}

#[test]
fn bad_pointers_and_types_are_errors() {
    let mut mem = process_312();
    put_frame(&mut mem, 0x42_000, 0xdead_0000, 2, 0, 0);
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(matches!(err, Error::Read { what: "a code object", addr: 0xdead_0000, .. }), "{err}");
    let mut mem = process_312();
    mem.regions.get_mut(&0x60_000).unwrap()[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
    let err = reader(mem, 12).threads().unwrap_err();
    assert!(err.to_string().contains("is not of type code"), "{err}");
    // A non-compact string layout.
    let mut mem = process_312();
    mem.regions.get_mut(&0x51_000).unwrap()[32] = 1 << 2;
    assert!(reader(mem, 12).threads().unwrap_err().to_string().contains("not compact"));
}

#[test]
fn versions_outside_3_8_to_3_13_are_refused() {
    for minor in [7, 14] {
        let err = CPython::new(process_312(), 1, RUNTIME, Some(v(minor)), None, &Budget::new(1 << 20)).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
    // 3.13 without debug offsets at _PyRuntime.
    let err = CPython::new(process_312(), 1, RUNTIME, None, None, &Budget::new(1 << 20)).unwrap_err();
    assert!(err.to_string().contains("_PyRuntime.debug_offsets") || err.to_string().contains("cookie"), "{err}");
}

#[test]
fn reads_3_10_frame_objects_and_their_pep626_lines() {
    let mut mem = FakeMemory::default();
    let mut runtime = vec![0u8; 64];
    runtime[32..40].copy_from_slice(&INTERP.to_le_bytes());
    mem.put(RUNTIME, &runtime);
    let mut interp = vec![0u8; 64];
    interp[8..16].copy_from_slice(&TSTATE.to_le_bytes());
    mem.put(INTERP, &interp);
    let mut tstate = vec![0u8; 256];
    tstate[24..32].copy_from_slice(&0x40_000u64.to_le_bytes());
    mem.put(TSTATE, &tstate);
    // PyFrameObject: f_back 24, f_code 32, f_lasti 96 (in code units).
    let mut frame = vec![0u8; 128];
    frame[32..40].copy_from_slice(&0x50_000u64.to_le_bytes());
    frame[96..100].copy_from_slice(&3i32.to_le_bytes());
    mem.put(0x40_000, &frame);
    // 3.10 code: co_firstlineno 40, co_filename 104, co_name 112,
    // co_linetable 120; str objects of 48 bytes.
    let mut code = vec![0u8; 176];
    code[40..44].copy_from_slice(&30i32.to_le_bytes());
    for (field, target) in [(104, 0x51_000u64), (112, 0x52_000), (120, 0x53_000)] {
        code[field..field + 8].copy_from_slice(&target.to_le_bytes());
    }
    mem.put(0x50_000, &code);
    for (addr, text) in [(0x51_000, "/x.py"), (0x52_000, "spin")] {
        let mut obj = vec![0u8; 48];
        obj[16..24].copy_from_slice(&(text.len() as u64).to_le_bytes());
        obj[32..36].copy_from_slice(&((1u32 << 2) | (1 << 5) | (1 << 6)).to_le_bytes());
        obj.extend_from_slice(text.as_bytes());
        mem.put(addr, &obj);
    }
    // Bytes 0..4 line 31, 4..10 line 33: f_lasti 3 is byte 6.
    let mut table = vec![0u8; 32];
    table[16..24].copy_from_slice(&4u64.to_le_bytes());
    table.extend_from_slice(&[4, 1, 6, 2]);
    mem.put(0x53_000, &table);
    let py = CPython::new(mem, std::process::id(), RUNTIME, Some(v(10)), None, &Budget::new(1 << 20)).unwrap();
    let threads = py.threads().unwrap();
    assert_eq!(threads[0].frames[0].qualname, "spin");
    assert_eq!(threads[0].frames[0].line, Some(33));
    // Its pthread_t points nowhere readable: no thread id, not an error.
    assert_eq!(threads[0].native_tid, None);
}

/// 4096 frames of one code object whose 1 MiB location table puts every
/// frame's instruction at its end: each read walks 4 GiB of table.
fn process_with_costly_frames() -> FakeMemory {
    let mut mem = process_312();
    // Entries of 8 code units with no line change: 2 bytes each.
    let table: Vec<u8> = [0x80 | (13 << 3) | 7, 0].repeat(MAX_LINE_TABLE as usize / 2);
    let last_unit = (table.len() as u64 / 2) * 8 - 1;
    put_code(&mut mem, 0x50_000, "f", "/x.py", 1, &table);
    let base = 0x100_0000u64;
    for i in 0..MAX_FRAMES as u64 {
        let previous = if i + 1 < MAX_FRAMES as u64 { base + (i + 1) * 0x100 } else { 0 };
        put_frame(&mut mem, base + i * 0x100, 0x50_000, last_unit, previous, 0);
    }
    mem.put_u64(CFRAME, base);
    mem
}

#[test]
fn a_stack_read_ends_at_its_deadline() {
    let py =
        CPython::new(process_with_costly_frames(), 1, RUNTIME, Some(v(12)), Some(CODE_TYPE), &Budget::new(64 << 20))
            .unwrap();
    // Unbounded, this read takes seconds (5.7 s in a release build): at
    // every sample, in the sampler's real-time drain thread.
    let start = std::time::Instant::now();
    let err = py.stack_by(4242, start + std::time::Duration::from_millis(2)).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Late { pid: 1 }), "{err}");
    // One frame's work past the deadline at most (a debug build walks a
    // megabyte of line table in some milliseconds).
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    // A read that fits its deadline is whole.
    let frames = reader(process_312(), 12).stack_by(4242, start + std::time::Duration::from_secs(60)).unwrap();
    assert_eq!(frames.map(|f| f.len()), Some(2));
}
