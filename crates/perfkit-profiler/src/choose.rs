//! Which modules keep frame pointers: the perf_event backend's choice of
//! stack walker, and the note after a frame-pointer run.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use object::read::elf::ElfFile64;
use perfkit_target::ModuleFile;
use perfkit_unwind::frame_pointers::{self, Verdict};

/// Verdicts by file path (the same binaries recur across runs of one
/// process).
fn cache() -> &'static Mutex<HashMap<PathBuf, Verdict>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Verdict>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The verdict on one file.
pub(crate) fn verdict(file: &ModuleFile) -> Verdict {
    let key = PathBuf::from(file.path());
    if let Some(v) = cache().lock().expect("verdict cache").get(&key) {
        return *v;
    }
    let v = file
        .map()
        .ok()
        .and_then(|d| match frame_pointers::verdict_in(&d, perfkit_safeio::Budget::process(), file.path()) {
            Ok(v) => Some(v),
            // Refused by a bound: named in the profile's notes.
            Err(e @ perfkit_unwind::UnwindError::Budget(_)) => {
                perfkit_target::notices::push(format!("{e}; its frame pointers are not judged from its CFI"));
                None
            }
            Err(e @ perfkit_unwind::UnwindError::TooManyRows { .. }) => {
                perfkit_target::notices::push(format!(
                    "{}: {e}; its frame pointers are not judged from its CFI",
                    file.path()
                ));
                None
            }
            Err(_) => None,
        })
        .unwrap_or(Verdict::Unknown);
    cache().lock().expect("verdict cache").insert(key, v);
    v
}

/// The files a program will map at start: itself, its interpreter, and
/// the libraries it names, found where the dynamic loader looks by default.
pub(crate) fn program_files(program: &Path) -> Vec<PathBuf> {
    let mut out = vec![program.to_owned()];
    // Opened as a target's file is: never blocking on a FIFO, a regular
    // file of bounded size, mapped rather than read.
    let Ok(file) = ModuleFile::open_path(program) else { return out };
    let Ok(data) = file.map() else { return out };
    let Ok(elf) = ElfFile64::<object::Endianness>::parse(&*data) else { return out };
    if let Some(interp) = interpreter(&elf) {
        out.push(interp);
    }
    if let Some(dynamic) = elf_dynamic(&elf) {
        let ld_library_path = std::env::var("LD_LIBRARY_PATH").ok();
        let dirs = crate::ldpath::search_dirs(
            program,
            dynamic.rpath.as_deref(),
            dynamic.runpath.as_deref(),
            ld_library_path.as_deref(),
            Path::new("/etc/ld.so.conf"),
        );
        for lib in dynamic.needed {
            if let Some(p) = dirs.iter().map(|d| d.join(&lib)).find(|p| p.is_file()) {
                out.push(p);
            }
        }
    }
    out
}

fn interpreter(elf: &ElfFile64<'_, object::Endianness>) -> Option<PathBuf> {
    use object::read::elf::ProgramHeader;
    let endian = elf.endian();
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) == object::elf::PT_INTERP {
            let bytes = ph.data(endian, elf.data()).ok()?;
            let s = std::str::from_utf8(bytes).ok()?.trim_end_matches('\0');
            return Some(PathBuf::from(s));
        }
    }
    None
}

/// What a program's dynamic section says of its libraries.
struct Dynamic {
    needed: Vec<String>,
    rpath: Option<String>,
    runpath: Option<String>,
}

fn elf_dynamic(elf: &ElfFile64<'_, object::Endianness>) -> Option<Dynamic> {
    use object::read::elf::Dyn;
    let endian = elf.endian();
    let sections = elf.elf_section_table();
    // The index returned is that of the linked string table.
    let (dynamic, strings_index) = sections.dynamic(endian, elf.data()).ok()??;
    let strings = sections.strings(endian, elf.data(), strings_index).ok()?;
    let mut out = Dynamic { needed: Vec::new(), rpath: None, runpath: None };
    for d in dynamic {
        let tag = d.d_tag(endian);
        if ![object::elf::DT_NEEDED, object::elf::DT_RPATH, object::elf::DT_RUNPATH].contains(&tag) {
            continue;
        }
        let Ok(value) = d.string(endian, strings) else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        match tag {
            object::elf::DT_NEEDED => out.needed.push(value),
            object::elf::DT_RPATH => out.rpath = Some(value),
            _ => out.runpath = Some(value),
        }
    }
    Some(out)
}

/// The files of these paths that lack frame pointers, by name.
pub(crate) fn without_frame_pointers(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .filter_map(|p| {
            let f = ModuleFile::open_path(p).ok()?;
            (verdict(&f) == Verdict::NoFramePointers).then(|| f.name().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_program_brings_its_loader_and_libraries() {
        // This test binary is itself a dynamically linked program.
        let me = std::env::current_exe().unwrap();
        let files = program_files(&me);
        let names: Vec<String> = files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(files[0], me);
        assert!(names.iter().any(|n| n.starts_with("ld-linux")), "{names:?}");
        assert!(names.iter().any(|n| n == "libc.so.6"), "{names:?}");
    }
}
