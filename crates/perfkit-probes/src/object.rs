//! The shipped eBPF object, loaded and looked into: what the sampler and
//! the tools share. Every lookup and attach failure becomes the
//! [`ProbeError`] a user can act on.

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, Map, MapData, MapError},
    programs::{Program, ProgramError, RawTracePoint, raw_trace_point::RawTracePointLinkId},
};
use perfkit_probes_common::{filter, names};

use crate::{ProbeError, Selection, error::classify};

/// The compiled kernel side: one object for the sampler and every tool.
pub(crate) static OBJECT: &[u8] = aya::include_bytes_aligned!("../bpf/perfkit-probes.bpf.o");

/// A loader for [`OBJECT`], with the settings every user of it needs.
pub(crate) fn loader<'a>() -> EbpfLoader<'a> {
    let mut loader = EbpfLoader::new();
    // The programs read kernel structures at offsets found by crate::btf,
    // not through CO-RE relocations: aya need not parse the kernel's BTF
    // (tens of MiB of memory for this kernel).
    loader.btf(None);
    loader
}

/// Loads [`OBJECT`] with `loader`.
pub(crate) fn load(loader: &mut EbpfLoader<'_>) -> Result<Ebpf, ProbeError> {
    load_bytes(loader, OBJECT)
}

/// Loads `bytes` (the object, or a [`Patched`] copy of it) with `loader`,
/// saying so at info level (`-v`: bcc's verbose flag shows the load too).
pub(crate) fn load_bytes(loader: &mut EbpfLoader<'_>, bytes: &[u8]) -> Result<Ebpf, ProbeError> {
    let ebpf = loader.load(bytes).map_err(load_error)?;
    tracing::info!(
        programs = ebpf.programs().count(),
        maps = ebpf.maps().count(),
        bytes = bytes.len(),
        "loaded the BPF object"
    );
    Ok(ebpf)
}

/// `BPF_F_NO_PREALLOC` in a map's flags.
const NO_PREALLOC: u32 = 1;
/// The byte offset of `map_flags` in a legacy `struct bpf_map_def`.
const MAP_FLAGS_OFFSET: u64 = 16;

/// A copy of [`OBJECT`] with some maps' definitions changed, aligned as
/// the ELF parser needs.
pub(crate) struct Patched(Vec<u64>);

impl Patched {
    /// [`OBJECT`] with the hash maps `preallocate` names preallocated: for
    /// kernels whose perf_event programs take no other (before 6.1).
    pub(crate) fn preallocating(preallocate: &[&str]) -> Result<Self, ProbeError> {
        use object::{Object, ObjectSection, ObjectSymbol};
        let broken = |what: String| ProbeError::Load(format!("the shipped eBPF object: {what}").into());
        let elf = object::File::parse(OBJECT).map_err(|e| broken(e.to_string()))?;
        let maps = elf.section_by_name("maps").ok_or_else(|| broken("no maps section".into()))?;
        let (maps_at, _) = maps.file_range().ok_or_else(|| broken("the maps section has no data".into()))?;
        let mut bytes = OBJECT.to_vec();
        for &name in preallocate {
            let symbol = elf
                .symbols()
                .find(|s| s.name() == Ok(name) && s.section_index() == Some(maps.index()))
                .ok_or_else(|| broken(format!("no map {name}")))?;
            let at = (maps_at + symbol.address() - maps.address() + MAP_FLAGS_OFFSET) as usize;
            let flags = bytes.get(at..at + 4).ok_or_else(|| broken(format!("map {name} is out of its section")))?;
            let flags = u32::from_le_bytes(flags.try_into().expect("four bytes")) & !NO_PREALLOC;
            bytes[at..at + 4].copy_from_slice(&flags.to_le_bytes());
        }
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(b);
        }
        Ok(Self(words))
    }

    /// The object's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the words hold the object's bytes in order (native byte
        // order was kept when they were packed), and the slice covers no
        // more than the vector's initialised memory.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), OBJECT.len()) }
    }
}

/// A failure to load the object or a program.
pub(crate) fn load_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> ProbeError {
    classify("loading BPF programs", &e).unwrap_or_else(|| ProbeError::Load(Box::new(e)))
}

/// A failure to attach `program` to `tracepoint`.
pub(crate) fn tracepoint_error(
    program: &'static str,
    tracepoint: &'static str,
) -> impl FnOnce(ProgramError) -> ProbeError {
    move |source| {
        classify("attaching tracepoints", &source).unwrap_or(ProbeError::AttachTracepoint {
            program,
            tracepoint,
            source,
        })
    }
}

/// The program `name`, as its type `P`.
pub(crate) fn program<'a, P: 'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, ProbeError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| ProbeError::Load(format!("the object has no program {name}").into()))?
        .try_into()
        .map_err(|e: ProgramError| ProbeError::Load(Box::new(e)))
}

fn no_map(name: &'static str) -> ProbeError {
    ProbeError::Map { map: name, source: MapError::InvalidName { name: name.into() } }
}

/// The map `name`.
pub(crate) fn map<'a>(ebpf: &'a Ebpf, name: &'static str) -> Result<&'a Map, ProbeError> {
    ebpf.map(name).ok_or_else(|| no_map(name))
}

/// The map `name`, to write.
pub(crate) fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Map, ProbeError> {
    ebpf.map_mut(name).ok_or_else(|| no_map(name))
}

/// Takes the map `name` out of the object (for a thread of its own).
pub(crate) fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map, ProbeError> {
    ebpf.take_map(name).ok_or_else(|| no_map(name))
}

/// Loads the raw tracepoint program `program` (once: a program can be
/// attached to several tracepoints) and attaches it to `tracepoint`.
pub(crate) fn attach_raw(
    ebpf: &mut Ebpf,
    program: &'static str,
    tracepoint: &'static str,
) -> Result<RawTracePointLinkId, ProbeError> {
    let p: &mut RawTracePoint = self::program(ebpf, program)?;
    if p.fd().is_err() {
        p.load().map_err(load_error)?;
    }
    p.attach(tracepoint).map_err(tracepoint_error(program, tracepoint))
}

/// Detaches raw tracepoint links made by [`attach_raw`].
pub(crate) fn detach_raw(ebpf: &mut Ebpf, links: impl IntoIterator<Item = (&'static str, RawTracePointLinkId)>) {
    for (name, link) in links {
        if let Some(p) = ebpf.program_mut(name)
            && let Ok(p) = <&mut RawTracePoint>::try_from(p)
        {
            let _ = p.detach(link);
        }
    }
}

/// Adds `ids` to the set map `name` (the selected processes or threads).
pub(crate) fn fill_set(ebpf: &mut Ebpf, name: &'static str, ids: &[u32]) -> Result<(), ProbeError> {
    let map_err = |source| ProbeError::Map { map: name, source };
    let mut set: BpfHashMap<&mut MapData, u32, u8> = BpfHashMap::try_from(map_mut(ebpf, name)?).map_err(map_err)?;
    for &id in ids {
        set.insert(id, filter::NAMED, 0).map_err(map_err)?;
    }
    Ok(())
}

/// Fills the set map that `selection` filters on, if it has one.
pub(crate) fn fill_selection(ebpf: &mut Ebpf, selection: &Selection) -> Result<(), ProbeError> {
    match selection {
        Selection::Processes { pids, .. } => fill_set(ebpf, names::TARGET_TGIDS, pids),
        Selection::Threads(tids) => fill_set(ebpf, names::TARGET_TIDS, tids),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags word of map `name`'s definition in `object`.
    fn flags(object: &[u8], name: &str) -> u32 {
        use object::{Object, ObjectSection, ObjectSymbol};
        let elf = object::File::parse(object).unwrap();
        let maps = elf.section_by_name("maps").unwrap();
        let sym = elf.symbols().find(|s| s.name() == Ok(name)).unwrap();
        let at = (maps.file_range().unwrap().0 + sym.address() - maps.address() + MAP_FLAGS_OFFSET) as usize;
        u32::from_le_bytes(object[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn preallocating_clears_no_prealloc_on_the_named_maps_only() {
        use perfkit_probes_common::names;
        assert_eq!(flags(OBJECT, names::STACKS) & NO_PREALLOC, NO_PREALLOC);
        assert_eq!(flags(OBJECT, names::BIO_HIST) & NO_PREALLOC, NO_PREALLOC);
        let patched = Patched::preallocating(&[names::STACKS, names::COUNTS]).unwrap();
        assert_eq!(patched.bytes().len(), OBJECT.len());
        assert_eq!(flags(patched.bytes(), names::STACKS) & NO_PREALLOC, 0);
        assert_eq!(flags(patched.bytes(), names::COUNTS) & NO_PREALLOC, 0);
        assert_eq!(flags(patched.bytes(), names::BIO_HIST) & NO_PREALLOC, NO_PREALLOC);
        assert!(Patched::preallocating(&["NO_SUCH_MAP"]).is_err());
    }
}
