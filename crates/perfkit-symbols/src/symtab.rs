//! A file's ELF symbol tables, to name functions as `perf` does.
//!
//! DWARF names a function by its short name (`parse_phase`) when debug
//! information is line tables only, and a separate debug file may name a
//! glibc function by its internal alias (`__GI___libc_read`). `perf` names
//! them from the symbol tables, fully qualified and demangled
//! (`rusthot::parse_phase`), choosing among aliases at one address by fixed
//! rules (not a glibc-internal `__GI_` alias, then a sized symbol, then non-weak, then global, then fewer leading
//! underscores, then the longer name). This index applies the same rules.

use object::{Object, ObjectSymbol, SymbolKind};

/// The most function symbols read from one file (real binaries have a few
/// million at most): a file a target controls must not decide how much
/// memory is used. Beyond it, blazesym's names stand.
pub(crate) const MAX_SYMBOLS: usize = 4 << 20;

/// One function symbol.
#[derive(Clone, Debug)]
struct Symbol {
    address: u64,
    size: u64,
    /// 0: local, 1: weak, 2: global (rank order for perf's rules).
    binding: u8,
    /// From a separate debug file's `.symtab`: used where the file's own
    /// tables have no name at that address (its local functions), never
    /// over a name the file itself exports.
    secondary: bool,
    name: String,
}

/// The function symbols of one file, by address.
#[derive(Debug, Default)]
pub(crate) struct SymbolIndex {
    symbols: Vec<Symbol>,
    /// The index's memory, held in the budget while it lives (one charge
    /// per file read).
    _charges: Vec<perfkit_safeio::Charge>,
}

impl SymbolIndex {
    /// Reads `.symtab` and `.dynsym` of an ELF file (`what` names it),
    /// charging each symbol and its name to `budget`: past the budget, the
    /// rest are left to blazesym.
    pub(crate) fn new(data: &[u8], budget: &perfkit_safeio::Budget, what: &str) -> Self {
        let mut index = Self::default();
        index.read(data, budget, what, false);
        index
    }

    /// Adds the function symbols of another ELF file for the same code (a
    /// separate debug file, whose `.symtab` names the local functions a
    /// stripped library's `.dynsym` lacks), charged as [`SymbolIndex::new`]
    /// charges them.
    pub(crate) fn add(&mut self, data: &[u8], budget: &perfkit_safeio::Budget, what: &str) {
        self.read(data, budget, what, true);
    }

    fn read(&mut self, data: &[u8], budget: &perfkit_safeio::Budget, what: &str, secondary: bool) {
        let Ok(file) = object::File::parse(data) else { return };
        let mut charge = budget.start(format_args!("{what} (symbol table)"));
        let room = MAX_SYMBOLS.saturating_sub(self.symbols.len());
        let symbols: Vec<Symbol> = file
            .symbols()
            .chain(file.dynamic_symbols())
            .filter(|s| s.address() != 0 && (s.kind() == SymbolKind::Text || is_code_label(&file, s)))
            .filter_map(|s| {
                let name = s.name().ok()?;
                if name.is_empty() {
                    return None;
                }
                // Versioned dynamic names (`read@@GLIBC_2.2.5`) without
                // their version.
                let name = name.split('@').next().unwrap_or(name).to_owned();
                let binding = if s.is_weak() {
                    1
                } else if s.is_global() {
                    2
                } else {
                    0
                };
                Some(Symbol { address: s.address(), size: s.size(), binding, secondary, name })
            })
            .take(room)
            .take_while(|s| charge.grow((std::mem::size_of::<Symbol>() + s.name.len()) as u64).is_ok())
            .collect();
        self.symbols.extend(symbols);
        self.symbols.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.name.cmp(&b.name)));
        self.symbols.dedup_by(|b, a| a.address == b.address && a.name == b.name);
        self._charges.push(charge);
    }

    /// The best name among the symbols at exactly `address`, demangled, as
    /// perf chooses it; `None` when no symbol starts there.
    pub(crate) fn best_name(&self, address: u64) -> Option<String> {
        let first = self.symbols.partition_point(|s| s.address < address);
        let candidates = || self.symbols[first..].iter().take_while(|s| s.address == address);
        // The file's own names first (`getppid`, exported weak), the debug
        // file's local aliases (`__getppid`) only where it has none.
        let own = candidates().any(|s| !s.secondary);
        let best = candidates().filter(|s| !own || !s.secondary).reduce(|a, b| if better(b, a) { b } else { a })?;
        Some(demangle(&best.name))
    }

    /// The function containing `address`, for files without DWARF: the
    /// last sized symbol starting at or before it that covers it.
    pub(crate) fn containing(&self, address: u64) -> Option<(u64, String)> {
        let end = self.symbols.partition_point(|s| s.address <= address);
        let prior = &self.symbols[..end];
        // A sized symbol covering it; else the nearest unsized one before
        // it (an assembly label such as ld.so's `_start`), which reaches to
        // the next symbol, as perf extends it.
        let s = prior
            .iter()
            .rev()
            .take(64)
            .find(|s| address < s.address + s.size.max(1))
            .or_else(|| prior.last().filter(|s| s.size == 0))?;
        Some((s.address, self.best_name(s.address).unwrap_or_else(|| demangle(&s.name))))
    }
}

/// An untyped symbol defined in code: an assembly entry point such as
/// ld.so's `_start` (`NOTYPE`, unsized).
fn is_code_label<'d>(file: &object::File<'d>, s: &object::Symbol<'d, '_>) -> bool {
    use object::{ObjectSection, SectionFlags};
    // By the section's flags, not its kind: in a separate debug file the
    // code sections are NOBITS.
    s.kind() == SymbolKind::Unknown
        && !s.is_undefined()
        && s.section_index().and_then(|i| file.section_by_index(i).ok()).is_some_and(|sec| {
            matches!(sec.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0)
        })
}

/// perf's `choose_best_symbol`: whether `a` is a better name than `b`.
fn better(a: &Symbol, b: &Symbol) -> bool {
    // glibc's hidden internal aliases (`__GI___qsort_r`), found in its
    // separate debug file's `.symtab`, are never the name a user knows:
    // any other alias at the address is better (`qsort_r`, weak).
    let internal = |s: &Symbol| s.name.starts_with("__GI_");
    if internal(a) != internal(b) {
        return !internal(a);
    }
    if (a.size > 0) != (b.size > 0) {
        return a.size > 0;
    }
    let weak = |s: &Symbol| s.binding == 1;
    if weak(a) != weak(b) {
        return !weak(a);
    }
    let global = |s: &Symbol| s.binding == 2;
    if global(a) != global(b) {
        return global(a);
    }
    let underscores = |s: &Symbol| s.name.bytes().take_while(|&c| c == b'_').count();
    if underscores(a) != underscores(b) {
        return underscores(a) < underscores(b);
    }
    a.name.len() > b.name.len()
}

/// Demangles Rust (legacy and v0, without the hash, as perf prints them)
/// and C++ names; other names as they are.
pub(crate) fn demangle(name: &str) -> String {
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    if name.starts_with("_Z")
        && let Ok(sym) = cpp_demangle::Symbol::new(name)
        && let Ok(d) = sym.demangle()
    {
        return d;
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(name: &str, size: u64, binding: u8) -> Symbol {
        Symbol { address: 0x100, size, binding, secondary: false, name: name.into() }
    }

    #[test]
    fn chooses_aliases_as_perf_does() {
        let index = SymbolIndex {
            _charges: Vec::new(),
            symbols: vec![
                sym("__GI___libc_read", 157, 0),
                sym("__libc_read", 157, 2),
                sym("__read", 157, 2),
                sym("read", 157, 2),
            ],
        };
        assert_eq!(index.best_name(0x100).as_deref(), Some("read"));
        let index = SymbolIndex {
            _charges: Vec::new(),
            symbols: vec![sym("__GI___strcoll_l", 80, 0), sym("__strcoll_l", 80, 2)],
        };
        assert_eq!(index.best_name(0x100).as_deref(), Some("__strcoll_l"));
        // A weak public name beats glibc's local internal alias.
        let index =
            SymbolIndex { _charges: Vec::new(), symbols: vec![sym("__GI___qsort_r", 834, 0), sym("qsort_r", 834, 1)] };
        assert_eq!(index.best_name(0x100).as_deref(), Some("qsort_r"));
        // A debug file's local alias never replaces the file's own name.
        let index = SymbolIndex {
            _charges: Vec::new(),
            symbols: vec![Symbol { secondary: true, ..sym("__getppid", 8, 0) }, sym("getppid", 8, 1)],
        };
        assert_eq!(index.best_name(0x100).as_deref(), Some("getppid"));
        let index = SymbolIndex {
            _charges: Vec::new(),
            symbols: vec![Symbol { secondary: true, ..sym("msort_with_tmp", 8, 0) }],
        };
        assert_eq!(index.best_name(0x100).as_deref(), Some("msort_with_tmp"));
        // Sized beats unsized, non-weak beats weak.
        assert!(better(&sym("a", 1, 0), &sym("bbbb", 0, 2)));
        assert!(better(&sym("_x", 1, 2), &sym("x", 1, 1)));
        assert_eq!(index.best_name(0x200), None);
    }

    #[test]
    fn demangles_rust_without_hash_and_cpp() {
        assert_eq!(demangle("_ZN7rusthot11parse_phase17h0123456789abcdefE"), "rusthot::parse_phase");
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangle("main"), "main");
    }

    #[test]
    fn finds_the_containing_function() {
        let index = SymbolIndex {
            _charges: Vec::new(),
            symbols: vec![
                Symbol { address: 0x100, size: 0x20, binding: 2, secondary: false, name: "f".into() },
                Symbol { address: 0x200, size: 0x10, binding: 2, secondary: false, name: "g".into() },
            ],
        };
        assert_eq!(index.containing(0x110), Some((0x100, "f".into())));
        assert_eq!(index.containing(0x150), None, "between functions");
    }
}
