//! Finding `_PyRuntime` in a process: which mapped file holds it, where
//! that file is loaded, and what says the version.

use std::{collections::HashSet, io::Read, path::Path};

use object::{Object, ObjectSymbol};
use perfkit_safeio::Budget;

use super::{Error, Version};
use crate::ElfLayout;

/// The most of `/proc/PID/maps` read (the kernel writes it, but the paths
/// in it are the target's).
const MAX_MAPS: u64 = 8 << 20;
/// The largest python binary or libpython read.
const MAX_FILE: u64 = 512 << 20;

/// What says the version.
pub(crate) enum VersionHint {
    /// The file name (3.8 to 3.10).
    Known(Version),
    /// `Py_Version`, at this address in the process (3.11+).
    At(u64),
    /// Nothing: 3.13's `_Py_DebugOffsets` must say it.
    None,
}

pub(crate) struct Found {
    pub runtime: u64,
    pub version: VersionHint,
    pub code_type: Option<u64>,
}

/// One line of `/proc/PID/maps` that maps a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub start: u64,
    pub end: u64,
    pub offset: u64,
    pub path: String,
}

pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let (range, _perms, offset, _dev, _inode) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let path = fields.next()?.trim_start();
            let (start, end) = range.split_once('-')?;
            path.starts_with('/').then(|| {
                Some(Mapping {
                    start: u64::from_str_radix(start, 16).ok()?,
                    end: u64::from_str_radix(end, 16).ok()?,
                    offset: u64::from_str_radix(offset, 16).ok()?,
                    path: path.to_owned(),
                })
            })?
        })
        .collect()
}

/// The version a file's name says: `python3.10`, `libpython3.8.so.1.0`.
pub(crate) fn version_from_name(path: &str) -> Option<Version> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("libpython").or_else(|| name.strip_prefix("python"))?;
    let (major, rest) = rest.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(Version { major: major.parse().ok()?, minor: minor.parse().ok()?, micro: 0 })
}

/// The thread ids of a process (at most `max`).
pub(crate) fn tasks(pid: u32, max: usize) -> HashSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().take(max).filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

pub(crate) fn find_runtime(pid: u32, budget: &Budget) -> Result<Found, Error> {
    let file_error = |path: String| move |source| Error::File { pid, path, source };
    let maps_path = format!("/proc/{pid}/maps");
    let mut text = String::new();
    std::fs::File::open(&maps_path)
        .and_then(|f| f.take(MAX_MAPS).read_to_string(&mut text))
        .map_err(file_error(maps_path.clone()))?;
    let _maps_charge = budget.charge(text.len() as u64, &maps_path)?;
    let maps = parse_maps(&text);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    for path in candidates(&maps, exe.as_deref().and_then(Path::to_str)) {
        let mappings: Vec<&Mapping> = maps.iter().filter(|m| m.path == path).collect();
        let Some(first) = mappings.first() else { continue };
        // The file the process mapped, even if its path now names another.
        let via = format!("/proc/{pid}/map_files/{:x}-{:x}", first.start, first.end);
        let open = |tables| {
            read_symbols(Path::new(&via), budget, tables)
                .or_else(|_| {
                    read_symbols(
                        &Path::new(&format!("/proc/{pid}/root")).join(path.trim_start_matches('/')),
                        budget,
                        tables,
                    )
                })
                .map_err(file_error(path.to_owned()))
        };
        let mut data = open(SymbolTables::Dynamic)?;
        let Some(mut symbols) = symbols(&data.0, SymbolTables::Dynamic) else { continue };
        // libpython exports them: the .symtab (tens of thousands of
        // symbols) is only read for a static python that does not.
        if symbols.runtime.is_none() || symbols.code_type.is_none() {
            drop(data);
            data = open(SymbolTables::All)?;
            let Some(all) = self::symbols(&data.0, SymbolTables::All) else { continue };
            symbols = all;
        }
        let Some(runtime) = symbols.runtime else { continue };
        let layout = ElfLayout::parse(&data.0);
        let Some(bias) = load_bias(&layout, &mappings) else {
            return Err(Error::Corrupt { pid, what: format!("{path}: its mappings match none of its segments") });
        };
        let version = match (symbols.py_version, version_from_name(path)) {
            (Some(v), _) => VersionHint::At(v.wrapping_add(bias)),
            (None, Some(v)) if (v.major, v.minor) < (3, 11) => VersionHint::Known(v),
            (None, Some(v)) if (v.major, v.minor) >= (3, 13) => VersionHint::None,
            (None, Some(v)) => {
                return Err(Error::Unsupported {
                    pid,
                    version: v.to_string(),
                    why: format!("{path} does not export Py_Version"),
                });
            }
            (None, None) => VersionHint::None,
        };
        return Ok(Found {
            runtime: runtime.wrapping_add(bias),
            version,
            code_type: symbols.code_type.map(|a| a.wrapping_add(bias)),
        });
    }
    Err(Error::NotPython { pid })
}

/// The most files looked at for `_PyRuntime`: each is read whole, and
/// the target chooses how many files named like python it maps (up to
/// its 65,530 mappings).
const MAX_CANDIDATES: usize = 4;

/// The files that may hold `_PyRuntime`, at most [`MAX_CANDIDATES`]:
/// libpython first (a shared build), then whatever else is named like
/// python (a static build), then the executable.
pub(crate) fn candidates<'a>(maps: &'a [Mapping], exe: Option<&str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    let named = |m: &&'a Mapping, library: bool| {
        let name = m.path.rsplit('/').next().unwrap_or("");
        if library { name.starts_with("libpython3") } else { name.contains("python") }
    };
    let libraries = maps.iter().filter(|m| named(m, true));
    let others = maps.iter().filter(|m| named(m, false));
    let exe = maps.iter().filter(|m| Some(m.path.as_str()) == exe);
    for m in libraries.chain(others).chain(exe) {
        if out.len() >= MAX_CANDIDATES {
            break;
        }
        if seen.insert(m.path.as_str()) {
            out.push(m.path.as_str());
        }
    }
    out
}

/// A file's bytes, charged to the budget while they live. From
/// [`read_symbols`], only the ranges the symbol lookup reads hold the
/// file's bytes; the rest reads as zeros.
pub(crate) struct Charged(pub Vec<u8>, #[allow(dead_code)] perfkit_safeio::Charge);

/// Opens a regular file of at most [`MAX_FILE`] bytes without acting on
/// anything else the path may name.
fn open_regular(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    use std::os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _};
    // The path is the target's: by now it may name a FIFO or a device,
    // which opening for reading would act on (a FIFO's writer goes on, a
    // device may act on open). It is looked at through an O_PATH
    // descriptor, which opens nothing, and only a regular file is then
    // opened, through that descriptor (so it is the file looked at).
    let at = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_CLOEXEC).open(path)?;
    let meta = at.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", at.as_raw_fd()))?;
    let len = meta.len();
    if len > MAX_FILE {
        return Err(std::io::Error::other(format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    Ok((file, len))
}

/// What of an ELF file [`read_symbols`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymbolTables {
    /// `.dynsym` and its strings.
    Dynamic,
    /// `.dynsym`, `.symtab` and their strings.
    All,
}

/// An ELF file as its symbol lookup sees it: a buffer of the file's size
/// in which only the ELF header, the program and section headers, the
/// section names and the symbol tables asked for (with their strings) are
/// read; the rest (code, data, debug information: most of a libpython or
/// libjvm.so) is never read and reads as zeros. The buffer is allocated
/// zeroed, so the pages never written take no memory; the bytes read are
/// charged. A file that is not 64-bit little-endian ELF is read whole.
pub(crate) fn read_symbols(path: &Path, budget: &Budget, tables: SymbolTables) -> std::io::Result<Charged> {
    use object::{
        elf::{FileHeader64, SHT_DYNSYM, SHT_SYMTAB, SectionHeader64},
        read::elf::{FileHeader as _, SectionHeader as _},
    };
    use std::os::unix::fs::FileExt as _;
    type E = object::LittleEndian;
    let (file, len) = open_regular(path)?;
    let mut charge = budget.start(path.display());
    // Zeroed: pages never written are never backed.
    let mut data = vec![0u8; len as usize];
    let mut read = |data: &mut Vec<u8>, offset: u64, size: u64| -> std::io::Result<()> {
        let end = offset.checked_add(size).filter(|&e| e <= len).ok_or_else(|| {
            std::io::Error::other(format!("a range past the end of the file ({offset:#x} + {size:#x})"))
        })?;
        charge.grow(size).map_err(std::io::Error::other)?;
        file.read_exact_at(&mut data[offset as usize..end as usize], offset)
    };
    let header_len = std::mem::size_of::<FileHeader64<E>>() as u64;
    if len < header_len {
        read(&mut data, 0, len)?;
        return Ok(Charged(data, charge));
    }
    read(&mut data, 0, header_len)?;
    let head = data[..header_len as usize].to_vec();
    let Ok(header) = FileHeader64::<E>::parse(&head[..]) else {
        // Not what the lookup reads piecemeal: read whole, as before.
        read(&mut data, header_len, len - header_len)?;
        return Ok(Charged(data, charge));
    };
    let endian = E::default();
    let (phoff, phnum) = (header.e_phoff(endian), u64::from(header.e_phnum(endian)));
    let (shoff, shnum) = (header.e_shoff(endian), u64::from(header.e_shnum(endian)));
    if phoff != 0 {
        read(&mut data, phoff, phnum * u64::from(header.e_phentsize(endian)))?;
    }
    if shoff == 0 {
        return Ok(Charged(data, charge));
    }
    let entsize = std::mem::size_of::<SectionHeader64<E>>() as u64;
    // The first section header holds the real count when e_shnum is 0.
    read(&mut data, shoff, entsize)?;
    let shnum = if shnum == 0 {
        let first = object::pod::from_bytes::<SectionHeader64<E>>(&data[shoff as usize..])
            .map_err(|()| std::io::Error::other("a section header out of place"))?;
        first.0.sh_size(endian)
    } else {
        shnum
    };
    if shnum > 1 {
        read(&mut data, shoff + entsize, (shnum - 1).saturating_mul(entsize))?;
    }
    let sections = object::pod::slice_from_bytes::<SectionHeader64<E>>(&data[shoff as usize..], shnum as usize)
        .map_err(|()| std::io::Error::other("section headers out of place"))?
        .0
        .to_vec();
    let mut wanted: Vec<usize> = Vec::new();
    let shstrndx = usize::from(header.e_shstrndx(endian));
    wanted.push(if shstrndx == usize::from(object::elf::SHN_XINDEX) {
        sections.first().map_or(0, |s| s.sh_link(endian) as usize)
    } else {
        shstrndx
    });
    for (i, s) in sections.iter().enumerate() {
        let kind = s.sh_type(endian);
        if kind == SHT_DYNSYM || (kind == SHT_SYMTAB && tables == SymbolTables::All) {
            wanted.push(i);
            wanted.push(s.sh_link(endian) as usize);
        }
    }
    wanted.sort_unstable();
    wanted.dedup();
    for i in wanted {
        let Some(s) = sections.get(i) else { continue };
        if let Some((offset, size)) = s.file_range(endian) {
            read(&mut data, offset, size)?;
        }
    }
    Ok(Charged(data, charge))
}

#[derive(Default)]
struct Symbols {
    runtime: Option<u64>,
    py_version: Option<u64>,
    code_type: Option<u64>,
}

/// `_PyRuntime`, `Py_Version` and `PyCode_Type` from `.dynsym`, and from
/// `.symtab` with [`SymbolTables::All`].
fn symbols(data: &[u8], tables: SymbolTables) -> Option<Symbols> {
    let file = object::File::parse(data).ok()?;
    let mut out = Symbols::default();
    look(&mut out, file.dynamic_symbols());
    if tables == SymbolTables::All && (out.runtime.is_none() || out.code_type.is_none()) {
        look(&mut out, file.symbols());
    }
    Some(out)
}

fn look<'data>(out: &mut Symbols, symbols: impl Iterator<Item = impl ObjectSymbol<'data>>) {
    for sym in symbols {
        let slot = match sym.name_bytes() {
            Ok(b"_PyRuntime") => &mut out.runtime,
            Ok(b"Py_Version") => &mut out.py_version,
            Ok(b"PyCode_Type") => &mut out.code_type,
            _ => continue,
        };
        if slot.is_none() && sym.address() != 0 {
            *slot = Some(sym.address());
        }
    }
}

/// What is added to the file's virtual addresses where it is loaded: from
/// a mapping of it, and the segment that holds the mapping's file offset.
pub(crate) fn load_bias(layout: &ElfLayout, mappings: &[&Mapping]) -> Option<u64> {
    mappings.iter().find_map(|m| {
        let seg = layout.segments.iter().find(|s| {
            let start = s.offset & !0xfff;
            start <= m.offset && m.offset < s.offset.saturating_add(s.filesz.max(1))
        })?;
        // The mapping's offset lies at this virtual address in the file.
        let vaddr = seg.vaddr.wrapping_sub(seg.offset.wrapping_sub(m.offset));
        Some(m.start.wrapping_sub(vaddr))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt as _;

    use crate::Segment;

    #[test]
    fn maps_lines_with_files_are_kept() {
        let text = "\
55d0c0000000-55d0c0001000 r--p 00000000 08:01 1234   /usr/bin/python3.12\n\
7f0000000000-7f0000200000 r-xp 00100000 08:01 99     /opt/lib/libpython3.12.so.1.0\n\
7f0000300000-7f0000301000 rw-p 00000000 00:00 0 \n\
7fff00000000-7fff00021000 rw-p 00000000 00:00 0      [stack]\n\
7f0000400000-7f0000401000 r--p 00000000 08:01 7      /tmp/a name with spaces\n\
garbage\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[1].offset, 0x100000);
        assert_eq!(maps[1].path, "/opt/lib/libpython3.12.so.1.0");
        assert_eq!(maps[2].path, "/tmp/a name with spaces");
    }

    #[test]
    fn versions_from_file_names() {
        let v = |p| version_from_name(p).map(|v: Version| (v.major, v.minor));
        assert_eq!(v("/usr/lib/libpython3.8.so.1.0"), Some((3, 8)));
        assert_eq!(v("/root/.pyenv/versions/3.10.13/bin/python3.10"), Some((3, 10)));
        assert_eq!(v("/usr/bin/python3"), None);
        assert_eq!(v("/usr/bin/pythonX.Y"), None);
    }

    #[test]
    fn few_files_are_looked_at_however_many_are_named_like_python() {
        let mapping = |path: &str| Mapping { start: 0, end: 0x1000, offset: 0, path: path.to_owned() };
        // The target maps 60,000 files named like python, twice each.
        let mut maps: Vec<Mapping> = (0..60_000).map(|i| mapping(&format!("/tmp/x/python-{i}"))).collect();
        maps.extend((0..60_000).map(|i| mapping(&format!("/tmp/x/python-{i}"))));
        maps.push(mapping("/usr/lib/libpython3.11.so.1.0"));
        maps.push(mapping("/usr/bin/app"));
        let started = std::time::Instant::now();
        let found = candidates(&maps, Some("/usr/bin/app"));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(found, ["/usr/lib/libpython3.11.so.1.0", "/tmp/x/python-0", "/tmp/x/python-1", "/tmp/x/python-2"]);
        // A usual process: libpython, then the executable.
        let maps =
            [mapping("/usr/bin/python3.11"), mapping("/usr/lib/libpython3.11.so.1.0"), mapping("/usr/lib/libc.so.6")];
        assert_eq!(
            candidates(&maps, Some("/usr/bin/python3.11")),
            ["/usr/lib/libpython3.11.so.1.0", "/usr/bin/python3.11"]
        );
        let maps = [mapping("/opt/app/bin/app"), mapping("/usr/lib/libc.so.6")];
        assert_eq!(candidates(&maps, Some("/opt/app/bin/app")), ["/opt/app/bin/app"]);
    }

    #[test]
    fn a_fifo_or_device_at_the_path_is_never_opened() {
        // The fallback path is the target's (through /proc/PID/root): it
        // may name a FIFO or a device by then. Opening either for reading
        // has effects (a FIFO's blocked writer goes on; some devices act
        // on open): the file is looked at without being opened.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("python3.11");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            // Blocks in open until a reader opens the FIFO.
            std::thread::spawn(move || std::fs::OpenOptions::new().write(true).open(fifo).map(drop))
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let err = read_symbols(&fifo, &Budget::new(1 << 20), SymbolTables::All).err().expect("a FIFO is refused");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        std::thread::sleep(std::time::Duration::from_millis(100));
        let opened = writer.is_finished();
        // Let the writer go either way.
        let _reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();
        writer.join().unwrap().unwrap();
        assert!(!opened, "perfkit opened the FIFO for reading");
        // A regular file that is not ELF is read whole.
        let file = dir.path().join("libpython3.11.so");
        std::fs::write(&file, b"\x7fELF and more").unwrap();
        assert_eq!(read_symbols(&file, &Budget::new(1 << 20), SymbolTables::All).unwrap().0, b"\x7fELF and more");
    }

    #[test]
    fn only_the_symbol_tables_of_an_elf_file_are_read() {
        // This test binary: its symbols, found in the pieces read, are
        // those of the whole file, for a fraction of its bytes.
        let me = std::env::current_exe().unwrap();
        let whole = std::fs::read(&me).unwrap();
        let names = |data: &[u8], all: bool| -> Vec<(String, u64)> {
            let file = object::File::parse(data).unwrap();
            let mut v: Vec<(String, u64)> =
                if all { file.symbols().collect::<Vec<_>>() } else { file.dynamic_symbols().collect() }
                    .iter()
                    .map(|s| (s.name().unwrap_or("").to_owned(), s.address()))
                    .collect();
            v.sort();
            v
        };
        let budget = Budget::new(1 << 30);
        for (tables, all) in [(SymbolTables::Dynamic, false), (SymbolTables::All, true)] {
            let part = read_symbols(&me, &budget, tables).unwrap();
            assert_eq!(part.0.len(), whole.len());
            let expected = names(&whole, all);
            assert!(!expected.is_empty());
            assert_eq!(names(&part.0, all), expected);
            assert_eq!(crate::ElfLayout::parse(&part.0).segments, crate::ElfLayout::parse(&whole).segments);
            assert!(budget.used() < whole.len() as u64 / 2, "{} of {} bytes read", budget.used(), whole.len());
        }
        assert_eq!(budget.used(), 0, "released with the bytes");
        // The pieces are charged: a budget smaller than them refuses.
        assert!(read_symbols(&me, &Budget::new(32), SymbolTables::Dynamic).is_err());
        // A file whose headers point past its end is refused, not read.
        let dir = tempfile::tempdir().unwrap();
        let cut = dir.path().join("libpython3.12.so");
        std::fs::write(&cut, &whole[..4096]).unwrap();
        assert!(read_symbols(&cut, &budget, SymbolTables::All).is_err());
    }

    #[test]
    fn load_bias_from_any_mapping() {
        let layout = ElfLayout {
            segments: vec![
                Segment { vaddr: 0, memsz: 0x5000, offset: 0, filesz: 0x5000, executable: false },
                Segment { vaddr: 0x6010, memsz: 0x3000, offset: 0x5010, filesz: 0x3000, executable: true },
            ],
        };
        let text = Mapping { start: 0x7f00_0000_6000, end: 0x7f00_0000_9000, offset: 0x5000, path: "/l".into() };
        assert_eq!(load_bias(&layout, &[&text]), Some(0x7f00_0000_0000));
        let first = Mapping { start: 0x7f00_0000_0000, end: 0x7f00_0000_5000, offset: 0, path: "/l".into() };
        assert_eq!(load_bias(&layout, &[&first]), Some(0x7f00_0000_0000));
        let beyond = Mapping { start: 0x1000, end: 0x2000, offset: 0x90000, path: "/l".into() };
        assert_eq!(load_bias(&layout, &[&beyond]), None);
    }
}
