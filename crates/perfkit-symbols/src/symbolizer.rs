use std::{collections::HashMap, path::Path};

use blazesym::symbolize::{
    self, CodeInfo, Input, Symbolized,
    source::{Elf, Kernel, Process, Source},
};
use perfkit_profile::{
    Frame, Location, Profile, Stack,
    raw::{RawSample, RawStack},
};

use crate::MapsTracker;

/// What to resolve beyond function names.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SymbolizeOptions {
    /// Report functions inlined at an address as their own frames.
    pub inlined: bool,
    /// Demangle Rust and C++ names.
    pub demangle: bool,
}

impl Default for SymbolizeOptions {
    fn default() -> Self {
        Self { inlined: true, demangle: true }
    }
}

/// Turns addresses into frames. Caches parsed files between calls.
pub struct Symbolizer {
    inner: symbolize::Symbolizer,
}

impl std::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Symbolizer")
    }
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new(&SymbolizeOptions::default())
    }
}

/// Frames for one address, outermost first (the function, then what was
/// inlined into it).
type Frames = Vec<Frame>;

impl Symbolizer {
    /// A symbolizer with these options.
    pub fn new(options: &SymbolizeOptions) -> Self {
        let inner = symbolize::Symbolizer::builder()
            .enable_inlined_fns(options.inlined)
            .enable_demangling(options.demangle)
            .enable_code_info(options.inlined)
            .build();
        Self { inner }
    }

    /// Symbolizes user-space addresses of the process `maps` tracks.
    pub fn user(&self, maps: &MapsTracker, addrs: &[u64]) -> HashMap<u64, Frames> {
        let mut out = HashMap::with_capacity(addrs.len());
        // Group by module so each file is symbolized in one batch.
        let mut by_module: HashMap<&Path, (Vec<u64>, Vec<u64>, &str)> = HashMap::new();
        for &addr in addrs {
            match maps.find(addr) {
                Some(m) if m.path == "[vdso]" => {
                    out.insert(addr, self.vdso(m.start, addr));
                }
                Some(m) => match m.symbolize_path() {
                    Some(path) => {
                        let entry = by_module.entry(path).or_insert_with(|| (Vec::new(), Vec::new(), m.module_name()));
                        entry.0.push(addr);
                        entry.1.push(m.file_offset(addr));
                    }
                    None => {
                        out.insert(addr, vec![Frame::unknown_user(Some(m.module_name()))]);
                    }
                },
                None => {
                    out.insert(addr, vec![Frame::unknown_user(None)]);
                }
            }
        }
        for (path, (addrs, offsets, module)) in by_module {
            let src = Source::Elf(Elf::new(path));
            match self.inner.symbolize(&src, Input::FileOffset(&offsets)) {
                Ok(results) => {
                    for (addr, sym) in addrs.into_iter().zip(results) {
                        out.insert(addr, frames_of(sym, Some(module), Frame::user, Frame::unknown_user));
                    }
                }
                Err(err) => {
                    tracing::debug!(path = %path.display(), %err, "symbolizing a module failed");
                    for addr in addrs {
                        out.insert(addr, vec![Frame::unknown_user(Some(module))]);
                    }
                }
            }
        }
        out
    }

    /// The vDSO is the same image in every process: resolve the offset in
    /// this process's own vDSO.
    fn vdso(&self, start: u64, addr: u64) -> Frames {
        let Some(own_start) = crate::own_vdso().map(|r| r.start) else {
            return vec![Frame::unknown_user(Some("[vdso]"))];
        };
        let src = Source::Process(Process::new(std::process::id().into()));
        match self.inner.symbolize_single(&src, Input::AbsAddr(own_start + (addr - start))) {
            Ok(sym) => frames_of(sym, Some("[vdso]"), Frame::user, Frame::unknown_user),
            Err(_) => vec![Frame::unknown_user(Some("[vdso]"))],
        }
    }

    /// Symbolizes kernel addresses with kallsyms (and vmlinux when found).
    pub fn kernel(&self, addrs: &[u64]) -> HashMap<u64, Frames> {
        let src = Source::Kernel(Kernel::default());
        match self.inner.symbolize(&src, Input::AbsAddr(addrs)) {
            Ok(results) => addrs
                .iter()
                .zip(results)
                .map(|(&addr, sym)| (addr, frames_of(sym, None, Frame::kernel, Frame::unknown_kernel)))
                .collect(),
            Err(err) => {
                tracing::warn!(%err, "kernel symbolization failed");
                addrs.iter().map(|&a| (a, vec![Frame::unknown_kernel(None)])).collect()
            }
        }
    }

    /// Symbolizes raw samples into a profile. `maps` holds a tracker per
    /// process id seen in the samples; processes without one get
    /// `[unknown]` user frames.
    pub fn profile(&self, samples: &[RawSample], maps: &HashMap<u32, MapsTracker>) -> Profile {
        // Return addresses point after the call; look up the call itself.
        fn lookup_addrs(ips: &[u64]) -> impl Iterator<Item = u64> + '_ {
            ips.iter().enumerate().map(|(i, &ip)| if i == 0 { ip } else { ip.saturating_sub(1) })
        }
        let mut user_addrs: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut kernel_addrs = Vec::new();
        for s in samples {
            if let RawStack::Frames(ips) = &s.user {
                user_addrs.entry(s.tgid).or_default().extend(lookup_addrs(ips));
            }
            if let RawStack::Frames(ips) = &s.kernel {
                kernel_addrs.extend(lookup_addrs(ips));
            }
        }
        let empty = MapsTracker::new(0);
        let user: HashMap<u32, HashMap<u64, Frames>> = user_addrs
            .into_iter()
            .map(|(tgid, mut addrs)| {
                addrs.sort_unstable();
                addrs.dedup();
                (tgid, self.user(maps.get(&tgid).unwrap_or(&empty), &addrs))
            })
            .collect();
        kernel_addrs.sort_unstable();
        kernel_addrs.dedup();
        let kernel = if kernel_addrs.is_empty() { HashMap::new() } else { self.kernel(&kernel_addrs) };

        let mut profile = Profile::default();
        for s in samples {
            let mut frames = Vec::new();
            match &s.user {
                RawStack::Frames(ips) => {
                    let resolved = &user[&s.tgid];
                    for addr in lookup_addrs(ips).collect::<Vec<_>>().into_iter().rev() {
                        frames.extend(resolved[&addr].iter().cloned());
                    }
                }
                RawStack::Lost => frames.push(Frame::user("[lost stack]")),
                RawStack::None => {}
            }
            match &s.kernel {
                RawStack::Frames(ips) => {
                    for addr in lookup_addrs(ips).collect::<Vec<_>>().into_iter().rev() {
                        frames.extend(kernel[&addr].iter().cloned());
                    }
                }
                RawStack::Lost => frames.push(Frame::kernel("[lost stack]")),
                RawStack::None => {}
            }
            profile.push(Stack::new(s.comm.clone(), frames, s.count));
        }
        profile
    }
}

fn location(info: Option<&CodeInfo<'_>>) -> Option<Location> {
    let info = info?;
    let file = match &info.dir {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(&info.file),
        _ => Path::new(&info.file).to_owned(),
    };
    Some(Location { file: file.to_string_lossy().into_owned(), line: info.line.unwrap_or(0) })
}

fn frames_of(
    sym: Symbolized<'_>,
    module: Option<&str>,
    known: fn(String) -> Frame,
    unknown: fn(Option<&str>) -> Frame,
) -> Frames {
    match sym {
        Symbolized::Sym(sym) => {
            // Each frame's location is inside its own function: the outer
            // one's is the call site of the first inlined function.
            let mut frames = vec![known(sym.name.into_owned()).at(location(sym.code_info.as_deref()))];
            frames.extend(
                sym.inlined.iter().map(|f| Frame::inlined(f.name.to_string()).at(location(f.code_info.as_ref()))),
            );
            frames
        }
        Symbolized::Unknown(_) => vec![unknown(module)],
    }
}
