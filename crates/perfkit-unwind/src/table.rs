//! Evaluating CFI into rows.

use gimli::{
    BaseAddresses, CfaRule as GimliCfa, CieOrFde, DebugFrame, EhFrame, LittleEndian, Reader, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};
use object::{Object, ObjectSection};

use perfkit_safeio::{Budget, BudgetError, Charge};

use crate::{ElfLayout, UnwindError};

/// Where the canonical frame address is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CfaRule {
    /// No CFI covers the address: a walker uses the frame pointer.
    None,
    /// RSP + offset.
    Rsp(i32),
    /// RBP + offset.
    Rbp(i32),
    /// A PLT entry: RSP + 8, plus 8 once `(rip & 15) >= threshold` (past
    /// the entry's push).
    Plt {
        /// 11 for GNU ld and lld, 10 for some older layouts.
        threshold: u8,
    },
    /// The return address is undefined: the outermost frame.
    End,
    /// A rule a table walker cannot follow (a DWARF expression, as in a
    /// signal trampoline, or a register other than RSP and RBP).
    Unsupported,
    /// RBP + offset, where RBP may hold a frame on another stack (Go's
    /// runtime calling on from the g0 or signal stack): the CFA may lie
    /// below SP (a bounded number of times per walk).
    StackSwitch(i32),
}

/// Where the caller's RBP is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RbpRule {
    /// Unchanged.
    Same,
    /// Saved at CFA + offset.
    AtCfa(i32),
    /// Not recoverable with these rules.
    Unknown,
}

/// The rules in force from `offset` (a file offset) to the next row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableRow {
    /// File offset of the first byte the rules cover.
    pub offset: u64,
    /// The CFA.
    pub cfa: CfaRule,
    /// The caller's RBP.
    pub rbp: RbpRule,
}

/// What went into a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableStats {
    /// Functions (FDEs) read.
    pub functions: usize,
    /// Of those, from `.debug_frame`.
    pub debug_frame_functions: usize,
    /// Rows with rules a table walker cannot follow.
    pub unsupported_rows: usize,
    /// Functions whose body computes the CFA from RBP (a frame pointer).
    pub rbp_functions: usize,
    /// Functions at least 32 bytes long (leaf functions and stubs aside).
    pub sized_functions: usize,
    /// Of those, with an RBP-based CFA.
    pub sized_rbp_functions: usize,
    /// Go functions whose rows come from `.gopclntab`'s SP deltas (a Go
    /// binary without CFI); not counted in `functions`, so that the
    /// frame-pointer verdict on such a binary stays what Go keeps.
    pub go_functions: usize,
}

/// The unwind rows of one ELF file, sorted by file offset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnwindTable {
    rows: Vec<TableRow>,
    stats: TableStats,
}

/// The most rows (and functions) one file's table is built with: eight
/// times what the kernel side holds by default (`--table-rows`), far above
/// what real binaries need (a 65 MiB Rust binary: 150 Ki rows), and a
/// bound on the memory a hostile file can make the builder use (about
/// 128 MiB), counted inside each FDE as its rows are evaluated.
pub const MAX_ROWS: usize = 4 << 20;

/// The budget charge of a table being built: rows and covered ranges are
/// counted as they are pushed, and charged in steps.
struct RowCharge {
    charge: Charge,
    counted: usize,
}

/// Rows (and covered ranges) charged at a time.
const CHARGE_STEP: usize = 16 << 10;

impl RowCharge {
    /// Accounts for `items` rows and ranges in all, failing past
    /// [`MAX_ROWS`] or the budget.
    fn account(&mut self, items: usize) -> Result<(), EvalError> {
        if items > MAX_ROWS {
            return Err(EvalError::TooManyRows);
        }
        while items >= self.counted {
            let bytes = (CHARGE_STEP * std::mem::size_of::<VRow>()) as u64;
            self.charge.grow(bytes).map_err(EvalError::Budget)?;
            self.counted += CHARGE_STEP;
        }
        Ok(())
    }
}

/// Why evaluating a section stopped.
enum EvalError {
    TooManyRows,
    Cfi(String),
    Budget(BudgetError),
}

impl EvalError {
    fn in_section(self, section: &'static str) -> UnwindError {
        match self {
            Self::TooManyRows => UnwindError::TooManyRows { section },
            Self::Cfi(reason) => UnwindError::Cfi { section, reason },
            Self::Budget(e) => UnwindError::Budget(e),
        }
    }
}

/// A gimli row, in virtual addresses, before conversion.
struct VRow {
    start: u64,
    end: u64,
    cfa: CfaRule,
    rbp: RbpRule,
}

impl UnwindTable {
    /// Reads and evaluates the CFI of an x86-64 ELF file, charging what it
    /// builds to the process's budget ([`Budget::process`]). A file with no
    /// CFI gives an empty table.
    pub fn build(data: &[u8]) -> Result<Self, UnwindError> {
        Self::build_in(data, Budget::process(), "an ELF file")
    }

    /// [`UnwindTable::build`] with the memory it uses while building
    /// (decompressed sections, rows) charged to `budget`; `what` names the
    /// file in the error when the budget is reached. The rows of one FDE
    /// count as they are evaluated, so one hostile FDE cannot grow past
    /// [`MAX_ROWS`] or the budget either.
    pub fn build_in(data: &[u8], budget: &Budget, what: &str) -> Result<Self, UnwindError> {
        let file = object::File::parse(data).map_err(|e| UnwindError::NotElf(e.to_string()))?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(UnwindError::Architecture(format!("{:?}", file.architecture())));
        }
        let layout = ElfLayout::of(&file);
        let mut stats = TableStats::default();
        let mut vrows = Vec::new();
        let section_addr = |name: &str| file.section_by_name(name).map(|s| s.address());
        let mut bases = BaseAddresses::default();
        if let Some(a) = section_addr(".text") {
            bases = bases.set_text(a);
        }
        if let Some(a) = section_addr(".got") {
            bases = bases.set_got(a);
        }
        let mut covered: Vec<(u64, u64)> = Vec::new();
        let mut charge = RowCharge { charge: budget.start(format_args!("{what} (unwind rows)")), counted: 0 };
        if let Some(s) = file.section_by_name(".eh_frame")
            && let Some(data) = crate::section_data(&s, budget, what)?
        {
            let eh_bases = bases.clone().set_eh_frame(s.address());
            let eh_bases = match section_addr(".eh_frame_hdr") {
                Some(a) => eh_bases.set_eh_frame_hdr(a),
                None => eh_bases,
            };
            let mut eh = EhFrame::new(&data, LittleEndian);
            eh.set_address_size(8);
            evaluate(&eh, &eh_bases, &mut vrows, &mut covered, &mut stats, &[], &mut charge, None)
                .map_err(|e| e.in_section(".eh_frame"))?;
        }
        if let Some(s) = file.section_by_name(".debug_frame")
            && let Some(data) = crate::section_data(&s, budget, what)?
        {
            covered.sort_unstable();
            let before = stats.functions;
            let mut df = DebugFrame::new(&data, LittleEndian);
            df.set_address_size(8);
            let skip = std::mem::take(&mut covered);
            evaluate(&df, &bases, &mut vrows, &mut covered, &mut stats, &skip, &mut charge, None)
                .map_err(|e| e.in_section(".debug_frame"))?;
            stats.debug_frame_functions = stats.functions - before;
        }
        if stats.debug_frame_functions == 0 {
            // No CFI for Go's code (stripped Go; with cgo, .eh_frame covers
            // only the C code): Go's own SP deltas, where no FDE covers.
            covered.sort_unstable();
            go_rows(data, &mut vrows, &covered, &mut stats, &mut charge).map_err(|e| e.in_section(".gopclntab"))?;
        }
        drop(covered);
        // The rows in file offsets, while the rows in addresses still live.
        charge.charge.grow((vrows.len() + vrows.len() / 8 + 1) as u64 * std::mem::size_of::<TableRow>() as u64)?;
        Ok(Self { rows: to_offsets(vrows, &layout), stats })
    }

    /// The counts of [`UnwindTable::build_in`] that judge frame pointers
    /// (`sized_functions`, `sized_rbp_functions`), without building rows
    /// or reading Go's `.gopclntab`: the CFI is evaluated FDE by FDE, and
    /// the reading stops as soon as more than one in 20 of all the FDEs
    /// (an upper bound of the sized functions) is a sized function
    /// without an RBP-based CFA, since the file then cannot keep frame
    /// pointers ([`crate::frame_pointers::judge`]). The counts are then
    /// those read so far, and judge the same.
    pub fn frame_pointer_counts(data: &[u8], budget: &Budget, what: &str) -> Result<TableStats, UnwindError> {
        let file = object::File::parse(data).map_err(|e| UnwindError::NotElf(e.to_string()))?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(UnwindError::Architecture(format!("{:?}", file.architecture())));
        }
        let mut stats = TableStats::default();
        let section_addr = |name: &str| file.section_by_name(name).map(|s| s.address());
        let mut bases = BaseAddresses::default();
        if let Some(a) = section_addr(".text") {
            bases = bases.set_text(a);
        }
        if let Some(a) = section_addr(".got") {
            bases = bases.set_got(a);
        }
        let eh = match file.section_by_name(".eh_frame") {
            Some(s) => crate::section_data(&s, budget, what)?.map(|d| (d, s.address())),
            None => None,
        };
        let df = match file.section_by_name(".debug_frame") {
            Some(s) => crate::section_data(&s, budget, what)?,
            None => None,
        };
        let eh_bases = eh.as_ref().map(|(_, addr)| {
            let b = bases.clone().set_eh_frame(*addr);
            match section_addr(".eh_frame_hdr") {
                Some(a) => b.set_eh_frame_hdr(a),
                None => b,
            }
        });
        let eh = eh.as_ref().map(|(d, _)| {
            let mut eh = EhFrame::new(d, LittleEndian);
            eh.set_address_size(8);
            eh
        });
        let df = df.as_ref().map(|d| {
            let mut df = DebugFrame::new(d, LittleEndian);
            df.set_address_size(8);
            df
        });
        // Every FDE of both sections: no more functions can be sized.
        fn fdes<R: Reader<Offset = usize>, S: UnwindSection<R>>(section: &S, bases: &BaseAddresses) -> usize {
            let mut entries = section.entries(bases);
            let mut n = 0;
            while let Ok(Some(e)) = entries.next() {
                n += usize::from(matches!(e, CieOrFde::Fde(_)));
            }
            n
        }
        let total = eh.as_ref().zip(eh_bases.as_ref()).map_or(0, |(s, b)| fdes(s, b))
            + df.as_ref().map_or(0, |s| fdes(s, &bases));
        let mut covered: Vec<(u64, u64)> = Vec::new();
        let mut charge = RowCharge { charge: budget.start(format_args!("{what} (unwind rows)")), counted: 0 };
        let mut none = Vec::new();
        if let (Some(eh), Some(eh_bases)) = (&eh, &eh_bases) {
            let judged = evaluate(eh, eh_bases, &mut none, &mut covered, &mut stats, &[], &mut charge, Some(total))
                .map_err(|e| e.in_section(".eh_frame"))?;
            if judged == Judged::Without {
                return Ok(stats);
            }
        }
        if let Some(df) = &df {
            covered.sort_unstable();
            let skip = std::mem::take(&mut covered);
            evaluate(df, &bases, &mut none, &mut covered, &mut stats, &skip, &mut charge, Some(total))
                .map_err(|e| e.in_section(".debug_frame"))?;
        }
        Ok(stats)
    }

    /// A table from rows (sorted by offset, as `build` gives them).
    pub fn from_rows(rows: Vec<TableRow>) -> Self {
        Self { rows, stats: TableStats::default() }
    }

    /// The rows, sorted by file offset.
    pub fn rows(&self) -> &[TableRow] {
        &self.rows
    }

    /// What went into the table.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// The row in force at file offset `offset`.
    pub fn lookup(&self, offset: u64) -> Option<&TableRow> {
        let i = self.rows.partition_point(|r| r.offset <= offset);
        self.rows.get(i.checked_sub(1)?)
    }

    /// The rows grouped in pages of 2^16 file offsets, for the BPF maps:
    /// each page's rows start with the rule in force at the page's start.
    pub fn pages(&self) -> impl Iterator<Item = (u32, &[TableRow], Option<&TableRow>)> + '_ {
        // (page, rows starting in it, the row in force at its start if it
        // started before)
        let mut i = 0;
        let mut pages = Vec::new();
        while i < self.rows.len() {
            let page = self.rows[i].offset >> PAGE_BITS;
            let j = i + self.rows[i..].partition_point(|r| r.offset >> PAGE_BITS == page);
            let carried =
                if self.rows[i].offset & PAGE_MASK != 0 { i.checked_sub(1).map(|k| &self.rows[k]) } else { None };
            pages.push((page as u32, &self.rows[i..j], carried));
            // Pages with no row starting in them inherit the last row of
            // the page before: emit them so lookups find their rule.
            if let Some(next) = self.rows.get(j) {
                let next_page = next.offset >> PAGE_BITS;
                let last = &self.rows[j - 1];
                if last.cfa != CfaRule::None {
                    for p in page + 1..next_page.min(page + 1 + MAX_SPAN_PAGES) {
                        pages.push((p as u32, &[][..], Some(last)));
                    }
                }
            }
            i = j;
        }
        pages.into_iter()
    }
}

/// Bits of file offset per page.
const PAGE_BITS: u64 = 16;
const PAGE_MASK: u64 = (1 << PAGE_BITS) - 1;
/// A function longer than this many pages is not spanned (no such CFI is
/// real).
const MAX_SPAN_PAGES: u64 = 64;

/// A page's rows in the BPF encoding (`perfkit_probes_common`-style
/// `(pc_low, cfa, rbp, cfa_offset, rbp_offset)`), the carried-over row
/// first. Rules whose offsets do not fit 16 bits become unsupported.
pub fn encode_page(rows: &[TableRow], carried: Option<&TableRow>) -> Vec<(u16, u8, u8, i16, i16)> {
    let mut out = Vec::with_capacity(rows.len() + 1);
    let starts_at_zero = rows.first().is_some_and(|r| r.offset & PAGE_MASK == 0);
    if !starts_at_zero {
        let rule = carried.copied().unwrap_or(TableRow { offset: 0, cfa: CfaRule::None, rbp: RbpRule::Same });
        out.push(encode_row(0, &rule));
    }
    for r in rows {
        out.push(encode_row((r.offset & PAGE_MASK) as u16, r));
    }
    out
}

fn encode_row(pc_low: u16, r: &TableRow) -> (u16, u8, u8, i16, i16) {
    // The constants of perfkit-probes-common's unwind module.
    // An offset beyond 16 bits (a frame of 32 KiB or more) is kept in
    // units of 8 bytes (CFA_RSP_X8, CFA_RBP_X8) when it is a multiple of 8,
    // as a compiler's frames are: up to 256 KiB.
    let offset = |o: i64, plain: u8, scaled: u8| match i16::try_from(o) {
        Ok(o) => (plain, o),
        Err(_) if o % 8 == 0 => i16::try_from(o / 8).map_or((5, 0), |o| (scaled, o)),
        Err(_) => (5, 0),
    };
    let (cfa, off) = match r.cfa {
        CfaRule::None => (0, 0),
        CfaRule::Rsp(o) => offset(o.into(), 1, 7),
        CfaRule::Rbp(o) => offset(o.into(), 2, 8),
        CfaRule::StackSwitch(o) => match i16::try_from(o) {
            Ok(o) => (6, o),
            Err(_) => (5, 0),
        },
        CfaRule::Plt { threshold } => (3, threshold as i16),
        CfaRule::End => (4, 0),
        CfaRule::Unsupported => (5, 0),
    };
    let (rbp, rbp_off) = match r.rbp {
        RbpRule::Same => (0, 0),
        RbpRule::AtCfa(o) => match i16::try_from(o) {
            Ok(o) => (1, o),
            Err(_) => (2, 0),
        },
        RbpRule::Unknown => (2, 0),
    };
    (pc_low, cfa, rbp, off, rbp_off)
}

/// Evaluates every FDE of a section into `out`, skipping functions that
/// start inside `skip` (ranges already covered, sorted). With `judge`
/// (the count of all FDEs), rows are only counted, not kept, and the
/// evaluation stops once the file cannot keep frame pointers.
#[allow(clippy::too_many_arguments)] // the builder's state, passed as it is threaded through both sections
fn evaluate<R: Reader<Offset = usize>, S: UnwindSection<R>>(
    section: &S,
    bases: &BaseAddresses,
    out: &mut Vec<VRow>,
    covered: &mut Vec<(u64, u64)>,
    stats: &mut TableStats,
    skip: &[(u64, u64)],
    charge: &mut RowCharge,
    judge: Option<usize>,
) -> Result<Judged, EvalError> {
    let mut ctx = Box::new(UnwindContext::new());
    let mut entries = section.entries(bases);
    let mut any_rows = !out.is_empty();
    loop {
        let entry = match entries.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            // A malformed entry ends the section; what was read is kept.
            Err(_) if any_rows => break,
            Err(e) => return Err(EvalError::Cfi(e.to_string())),
        };
        charge.account(out.len() + covered.len() + 1)?;
        let CieOrFde::Fde(partial) = entry else { continue };
        let Ok(fde) = partial.parse(S::cie_from_offset) else { continue };
        let (start, len) = (fde.initial_address(), fde.len());
        if len == 0 || start == 0 {
            continue;
        }
        let i = skip.partition_point(|&(s, _)| s <= start);
        if i > 0 && start < skip[i - 1].1 {
            continue;
        }
        // A function that would end past the address space is malformed.
        let Some(end) = start.checked_add(len) else { continue };
        stats.functions += 1;
        covered.push((start, end));
        let Ok(mut table) = fde.rows(section, bases, &mut ctx) else { continue };
        let mut rbp_based = false;
        // The outermost functions (`_start`) and PLT stubs say nothing of
        // how the compiler built the code: they are left out of the verdict.
        let mut special = false;
        let mut rows = 0;
        while let Ok(Some(row)) = table.next_row() {
            // Inside one FDE too: its instructions can describe any number
            // of rows.
            rows += 1;
            charge.account(out.len() + covered.len() + if judge.is_some() { rows } else { 1 })?;
            let ra_undefined = matches!(row.register(X86_64::RA), Some(RegisterRule::Undefined));
            let cfa = match row.cfa() {
                _ if ra_undefined => CfaRule::End,
                GimliCfa::RegisterAndOffset { register, offset } => match (*register, i32::try_from(*offset)) {
                    (X86_64::RSP, Ok(o)) => CfaRule::Rsp(o),
                    (X86_64::RBP, Ok(o)) => {
                        rbp_based = true;
                        CfaRule::Rbp(o)
                    }
                    _ => CfaRule::Unsupported,
                },
                GimliCfa::Expression(e) => match e.get(section) {
                    Ok(expr) => plt_rule(expr.0.to_slice().ok().as_deref().unwrap_or(&[])),
                    Err(_) => CfaRule::Unsupported,
                },
            };
            let rbp = match row.register(X86_64::RBP) {
                None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => RbpRule::Same,
                Some(RegisterRule::Offset(o)) => i32::try_from(o).map_or(RbpRule::Unknown, RbpRule::AtCfa),
                Some(_) => RbpRule::Unknown,
            };
            if cfa == CfaRule::Unsupported {
                stats.unsupported_rows += 1;
            }
            if matches!(cfa, CfaRule::End | CfaRule::Plt { .. }) {
                special = true;
            }
            if judge.is_none() {
                out.push(VRow { start: row.start_address(), end: row.end_address(), cfa, rbp });
            }
        }
        if rows == 0 {
            continue;
        }
        any_rows = true;
        if rbp_based {
            stats.rbp_functions += 1;
        }
        if len >= 32 && !special {
            stats.sized_functions += 1;
            if rbp_based {
                stats.sized_rbp_functions += 1;
            }
        }
        // Judging frame pointers, with at most `fdes` sized functions in
        // all: once more than one in 20 lack them, none can keep them.
        if let Some(fdes) = judge
            && (stats.sized_functions - stats.sized_rbp_functions) * 20 > fdes
        {
            return Ok(Judged::Without);
        }
    }
    Ok(Judged::Open)
}

/// Where a judging evaluation stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// Every FDE read: the counts are whole.
    Open,
    /// Stopped once too many sized functions were seen without frame
    /// pointers: the file has none, whatever the rest holds.
    Without,
}

/// The CFA expression every x86-64 linker emits for `.plt`:
/// `DW_OP_breg7 (rsp) 8; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and;
/// DW_OP_lit11 (or lit10); DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus`.
fn plt_rule(expr: &[u8]) -> CfaRule {
    match expr {
        [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, lit, 0x2a, 0x33, 0x24, 0x22] if (0x30..=0x4f).contains(lit) => {
            CfaRule::Plt { threshold: lit - 0x30 }
        }
        _ => CfaRule::Unsupported,
    }
}

/// Converts rows in virtual addresses into sorted rows in file offsets,
/// with a `None` row wherever one function's rows end and no other's begin.
/// Functions of Go's runtime that move to another stack (the g0 or signal
/// stack) and call on from there, or that set SP arbitrarily: their SP
/// delta says nothing of where their caller's frame is. The frame pointer
/// still holds the frame of the goroutine's code that called them, as Go's
/// own traceback and perf's frame-pointer walk find it.
const GO_STACK_SWITCHES: &[&str] = &[
    "runtime.systemstack",
    "runtime.mcall",
    "runtime.morestack",
    "runtime.morestack_noctxt",
    "runtime.asmcgocall",
    "runtime.asmcgocall_no_g",
    "runtime.cgocallback",
    "runtime.sigtramp",
    "runtime.cgoSigtramp",
    "runtime.sigpanic0",
];

/// Rows from the SP deltas of a Go binary's function table (its pcsp
/// tables), for the functions no FDE in `covered` (sorted) covers: the CFA is RSP + delta + 8 (the return address is at the
/// entry's RSP), and a function with a frame has saved its caller's RBP
/// just below the return address. The runtime's stack switches
/// ([`GO_STACK_SWITCHES`], and functions Go flags as writing SP) are
/// walked by their frame pointer, which may lead back to the goroutine's
/// stack ([`CfaRule::StackSwitch`]).
fn go_rows(
    data: &[u8],
    vrows: &mut Vec<VRow>,
    covered: &[(u64, u64)],
    stats: &mut TableStats,
    charge: &mut RowCharge,
) -> Result<(), EvalError> {
    use crate::gopclntab::{FLAG_SPWRITE, GoTable, Layout};
    let Some(table) = GoTable::find(data) else { return Ok(()) };
    for f in table.functions() {
        // An FDE covers it (cgo's C code): its CFI stands.
        let i = covered.partition_point(|&(start, _)| start <= f.entry);
        if i > 0 && f.entry < covered[i - 1].1 {
            continue;
        }
        stats.go_functions += 1;
        let spwrite = table.layout() != Layout::Go116 && f.flag & FLAG_SPWRITE != 0;
        if spwrite || table.name(&f).is_some_and(|n| GO_STACK_SWITCHES.contains(&&*n)) {
            vrows.push(VRow { start: f.entry, end: f.end, cfa: CfaRule::StackSwitch(16), rbp: RbpRule::AtCfa(-16) });
            charge.account(vrows.len())?;
            continue;
        }
        for (start, end, delta) in table.sp_deltas(&f) {
            if start >= f.end {
                break;
            }
            if start == end {
                // A step that adds 0 to the PC: covers nothing.
                continue;
            }
            let (cfa, rbp) = match delta.checked_add(8) {
                Some(cfa) if delta >= 0 => {
                    (CfaRule::Rsp(cfa), if delta > 0 { RbpRule::AtCfa(-16) } else { RbpRule::Same })
                }
                _ => (CfaRule::Unsupported, RbpRule::Unknown),
            };
            if cfa == CfaRule::Unsupported {
                stats.unsupported_rows += 1;
            }
            vrows.push(VRow { start, end: end.min(f.end), cfa, rbp });
            charge.account(vrows.len())?;
        }
    }
    Ok(())
}

/// A `.debug_frame` section made from the SP deltas of a Go binary's
/// function table, with the rules [`UnwindTable::build`] derives from them,
/// for unwinders that read DWARF CFI (the perf backend's): `None` when the
/// file has no table or has its own `.debug_frame`. Its memory is charged
/// to `budget` (`what` names the file) while the returned charge lives.
pub fn go_debug_frame(data: &[u8], budget: &Budget, what: &str) -> Result<Option<(Vec<u8>, Charge)>, BudgetError> {
    use crate::gopclntab::{FLAG_SPWRITE, GoTable, Layout};
    let Ok(file) = object::File::parse(data) else { return Ok(None) };
    if file.section_by_name(".debug_frame").is_some() {
        return Ok(None);
    }
    let Some(table) = GoTable::find(data) else { return Ok(None) };
    let mut charge = budget.start(format_args!("{what} (CFI from .gopclntab)"));
    // The CIE: version 1, no augmentation, code alignment 1, data
    // alignment -8, return address in r16; CFA = RSP + 8, return address
    // at CFA - 8. Padded to 8 bytes.
    let mut out: Vec<u8> = Vec::new();
    let cie_body: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 0, 1, 0x78, 16, 0x0c, 7, 8, 0x90, 1, 0, 0, 0, 0, 0, 0];
    charge.grow(4 + cie_body.len() as u64)?;
    out.extend_from_slice(&(cie_body.len() as u32).to_le_bytes());
    out.extend_from_slice(cie_body);
    let uleb = |v: u64, out: &mut Vec<u8>| {
        let mut v = v;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            out.push(if v == 0 { b } else { b | 0x80 });
            if v == 0 {
                break;
            }
        }
    };
    let mut fde = Vec::new();
    // The FDE buffer's bytes charged so far: charged as it grows, before
    // it is copied (and charged again) into the section.
    let mut fde_charged = 0usize;
    let mut grow_fde = |len: usize, charge: &mut Charge| -> Result<(), BudgetError> {
        if len > fde_charged {
            let more = (len - fde_charged).next_multiple_of(4096);
            charge.grow(more as u64)?;
            fde_charged += more;
        }
        Ok(())
    };
    for f in table.functions() {
        fde.clear();
        fde.extend_from_slice(&0u32.to_le_bytes()); // the CIE, at offset 0
        fde.extend_from_slice(&f.entry.to_le_bytes());
        fde.extend_from_slice(&(f.end - f.entry).to_le_bytes());
        let spwrite = table.layout() != Layout::Go116 && f.flag & FLAG_SPWRITE != 0;
        if spwrite || table.name(&f).is_some_and(|n| GO_STACK_SWITCHES.contains(&&*n)) {
            // CFA = RBP + 16, the caller's RBP at CFA - 16.
            fde.extend_from_slice(&[0x0c, 6, 16, 0x86, 2]);
        } else {
            let mut at = f.entry;
            for (start, end, delta) in table.sp_deltas(&f) {
                if start >= f.end {
                    break;
                }
                if start == end {
                    // A step that adds 0 to the PC: covers nothing.
                    continue;
                }
                grow_fde(fde.len() + 32, &mut charge)?;
                let Ok(delta) = u64::try_from(delta) else { break };
                if start > at {
                    // DW_CFA_advance_loc4.
                    fde.push(0x04);
                    fde.extend_from_slice(&u32::try_from(start - at).unwrap_or(u32::MAX).to_le_bytes());
                    at = start;
                }
                // DW_CFA_def_cfa_offset; then RBP saved at CFA - 16 in a
                // frame, unchanged out of one.
                fde.push(0x0e);
                uleb(delta + 8, &mut fde);
                fde.extend_from_slice(if delta > 0 { &[0x86, 2] } else { &[0x08, 6] });
            }
        }
        while (fde.len() + 4) % 8 != 0 {
            fde.push(0);
        }
        charge.grow((fde.len() + 4) as u64)?;
        out.extend_from_slice(&(fde.len() as u32).to_le_bytes());
        out.extend_from_slice(&fde);
    }
    out.shrink_to_fit();
    Ok(Some((out, charge)))
}

fn to_offsets(mut vrows: Vec<VRow>, layout: &ElfLayout) -> Vec<TableRow> {
    vrows.sort_by_key(|r| r.start);
    let mut rows: Vec<TableRow> = Vec::with_capacity(vrows.len() + vrows.len() / 8);
    for (i, r) in vrows.iter().enumerate() {
        let Some(offset) = layout.vaddr_to_offset(r.start) else { continue };
        let row = TableRow { offset, cfa: r.cfa, rbp: r.rbp };
        match rows.last_mut() {
            // Two rows at one offset (one function's end, the next's
            // start): the later, real one wins.
            Some(last) if last.offset == offset => *last = row,
            // The same rules continue: no new row.
            Some(last) if last.cfa == row.cfa && last.rbp == row.rbp => {}
            _ => rows.push(row),
        }
        let next_start = vrows.get(i + 1).map(|n| n.start);
        if next_start.is_none_or(|n| n > r.end)
            && let Some(end) = layout.vaddr_to_offset(r.end.saturating_sub(1)).and_then(|o| o.checked_add(1))
        {
            rows.push(TableRow { offset: end, cfa: CfaRule::None, rbp: RbpRule::Same });
        }
    }
    // Sorting by address kept file offsets sorted within each segment;
    // across segments, sort again.
    rows.sort_by_key(|r| r.offset);
    rows.dedup_by(|b, a| a.offset == b.offset);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_plt_expression() {
        let lld = [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22];
        assert_eq!(plt_rule(&lld), CfaRule::Plt { threshold: 11 });
        assert_eq!(plt_rule(&[0x77, 0x08]), CfaRule::Unsupported);
    }

    #[test]
    fn rows_convert_to_offsets_and_gaps_get_none() {
        let layout = ElfLayout {
            segments: vec![crate::Segment {
                vaddr: 0x1000,
                memsz: 0x1000,
                offset: 0,
                filesz: 0x1000,
                executable: true,
            }],
        };
        let v = vec![
            VRow { start: 0x1000, end: 0x1004, cfa: CfaRule::Rsp(8), rbp: RbpRule::Same },
            VRow { start: 0x1004, end: 0x1010, cfa: CfaRule::Rsp(16), rbp: RbpRule::Same },
            // A gap from 0x1010 to 0x1020.
            VRow { start: 0x1020, end: 0x1030, cfa: CfaRule::Rsp(8), rbp: RbpRule::Same },
        ];
        let rows = to_offsets(v, &layout);
        let offs: Vec<(u64, CfaRule)> = rows.iter().map(|r| (r.offset, r.cfa)).collect();
        assert_eq!(
            offs,
            vec![
                (0x0, CfaRule::Rsp(8)),
                (0x4, CfaRule::Rsp(16)),
                (0x10, CfaRule::None),
                (0x20, CfaRule::Rsp(8)),
                (0x30, CfaRule::None)
            ]
        );
        let t = UnwindTable::from_rows(rows);
        assert_eq!(t.lookup(0x8).unwrap().cfa, CfaRule::Rsp(16));
        assert_eq!(t.lookup(0x18).unwrap().cfa, CfaRule::None);
    }

    #[test]
    fn pages_start_with_the_rule_in_force() {
        let r = |offset, o| TableRow { offset, cfa: CfaRule::Rsp(o), rbp: RbpRule::Same };
        let t = UnwindTable::from_rows(vec![r(0xfff0, 8), r(0x1_0010, 16), r(0x3_0000, 24)]);
        let pages: Vec<(u32, usize, Option<TableRow>)> =
            t.pages().map(|(p, rows, carried)| (p, rows.len(), carried.copied())).collect();
        assert_eq!(pages[0], (0, 1, None));
        assert_eq!(pages[1], (1, 1, Some(r(0xfff0, 8))));
        // Page 2 has no row of its own: it inherits 0x1_0010's rule.
        assert_eq!(pages[2], (2, 0, Some(r(0x1_0010, 16))));
        assert_eq!(pages[3], (3, 1, None));
        let enc = encode_page(&t.rows()[1..2], Some(&r(0xfff0, 8)));
        assert_eq!(enc, vec![(0, 1, 0, 8, 0), (0x10, 1, 0, 16, 0)]);
    }

    #[test]
    fn frames_of_32_kib_and_more_keep_their_offset_in_units_of_8() {
        let enc = |cfa| *encode_page(&[TableRow { offset: 0x20, cfa, rbp: RbpRule::AtCfa(-16) }], None).last().unwrap();
        assert_eq!(enc(CfaRule::Rsp(32_760)), (0x20, 1, 1, 32_760, -16));
        // `sub $0x10008, %rsp` after four pushes: rsp + 65,576.
        assert_eq!(enc(CfaRule::Rsp(65_576)), (0x20, 7, 1, 8_197, -16));
        assert_eq!(enc(CfaRule::Rbp(40_000)), (0x20, 8, 1, 5_000, -16));
        assert_eq!(enc(CfaRule::Rsp(262_136)), (0x20, 7, 1, 32_767, -16));
        // Beyond 256 KiB, or not a multiple of 8: not followed.
        assert_eq!(enc(CfaRule::Rsp(262_144)).1, 5);
        assert_eq!(enc(CfaRule::Rsp(40_001)).1, 5);
    }
}
