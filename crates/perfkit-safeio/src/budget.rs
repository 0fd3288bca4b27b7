//! One memory budget for untrusted bytes.
//!
//! A [`Budget`] is a limit and a count of bytes in use, shared (it is
//! cheap to clone: clones count against the same limit). A reader asks it
//! before it builds something whose size an input decides:
//!
//! ```
//! use perfkit_safeio::Budget;
//! let budget = Budget::new(1 << 20);
//! // Held while the decoded strings live; released when dropped.
//! let mut strings = budget.charge(4096, "profile.pb.gz")?;
//! strings.grow(8192)?;
//! assert_eq!(budget.used(), 12288);
//! drop(strings);
//! assert_eq!(budget.used(), 0);
//! assert!(budget.charge(2 << 20, "profile.pb.gz").is_err());
//! # Ok::<(), perfkit_safeio::BudgetError>(())
//! ```
//!
//! What a reader charges is an estimate of what it keeps (the bytes of a
//! string, a fixed cost per decoded message, per row, per frame), not an
//! exact allocator count: the point is that the input's size never decides
//! how much memory perfkit uses, and that the failure names the input.

use std::{
    fmt, io,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

/// The process's budget by default: 512 MiB.
pub const DEFAULT_LIMIT: u64 = 512 << 20;

/// A memory limit shared by the readers of untrusted bytes.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: AtomicU64,
    used: AtomicU64,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget").field("limit", &self.limit()).field("used", &self.used()).finish()
    }
}

impl Default for Budget {
    /// The process's budget ([`Budget::process`]).
    fn default() -> Self {
        Self::process().clone()
    }
}

/// Reaching the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what}: needs more than the memory budget of {} for untrusted input ({} in use, {} more asked); \
     raise it with --max-memory if the input is trusted",
    Mib(*.limit), Mib(*.used), Mib(*.asked)
)]
pub struct BudgetError {
    /// The input being read (a file name, a process, a client).
    pub what: String,
    /// The budget's limit, in bytes.
    pub limit: u64,
    /// Bytes in use when the charge was refused.
    pub used: u64,
    /// Bytes asked for.
    pub asked: u64,
}

/// Why a text is not a budget size ([`parse_size`]). Each variant holds
/// the text as given; the messages quote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// No number of bytes at the start.
    #[error("{0:?} is not a size (such as 512M, 2G or a number of bytes)")]
    NotASize(String),
    /// A unit other than K, M, G or T.
    #[error("{0:?}: unknown unit (K, M, G or T)")]
    UnknownUnit(String),
    /// More bytes than a `u64` holds.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// Zero bytes.
    #[error("the memory budget must be more than 0")]
    Zero,
}

/// Parses a budget's size: bytes, or a number with K, M, G or T (powers of
/// 1024, optionally followed by `iB` or `B`, any case), above zero.
///
/// ```
/// use perfkit_safeio::budget::parse_size;
/// assert_eq!(parse_size("512M"), Ok(512 << 20));
/// assert_eq!(parse_size("2GiB"), Ok(2 << 30));
/// assert!(parse_size("0").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let num: u64 = num.parse().map_err(|_| SizeError::NotASize(s.to_owned()))?;
    let shift = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(SizeError::UnknownUnit(s.to_owned())),
    };
    let bytes =
        num.checked_shl(shift).filter(|b| b >> shift == num).ok_or_else(|| SizeError::TooLarge(s.to_owned()))?;
    if bytes == 0 {
        return Err(SizeError::Zero);
    }
    Ok(bytes)
}

/// Bytes shown in MiB, or in bytes below 1 MiB.
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 20 { write!(f, "{} MiB", self.0 >> 20) } else { write!(f, "{} bytes", self.0) }
    }
}

impl Budget {
    /// A budget of `limit` bytes of its own.
    pub fn new(limit: u64) -> Self {
        Self { inner: Arc::new(Inner { limit: AtomicU64::new(limit), used: AtomicU64::new(0) }) }
    }

    /// The process's budget: [`DEFAULT_LIMIT`] until [`Budget::set_limit`]
    /// changes it (the CLI does, from `--max-memory`). Readers use it
    /// unless they are given another.
    pub fn process() -> &'static Budget {
        static PROCESS: OnceLock<Budget> = OnceLock::new();
        PROCESS.get_or_init(|| Budget::new(DEFAULT_LIMIT))
    }

    /// Changes the limit (charges already made stay).
    pub fn set_limit(&self, limit: u64) {
        self.inner.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Bytes charged and not released.
    pub fn used(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Takes `bytes` from the budget for `what`, or fails without taking
    /// anything.
    fn take(&self, bytes: u64, what: &dyn fmt::Display) -> Result<(), BudgetError> {
        let limit = self.limit();
        let mut used = self.inner.used.load(Ordering::Relaxed);
        loop {
            let total = used.checked_add(bytes).filter(|&t| t <= limit);
            let Some(total) = total else {
                return Err(BudgetError { what: what.to_string(), limit, used, asked: bytes });
            };
            match self.inner.used.compare_exchange_weak(used, total, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, bytes: u64) {
        self.inner.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Reserves `bytes` for `what` while the returned [`Charge`] lives.
    pub fn charge(&self, bytes: u64, what: impl fmt::Display) -> Result<Charge, BudgetError> {
        self.take(bytes, &what)?;
        Ok(Charge { budget: self.clone(), bytes, what: what.to_string() })
    }

    /// A charge of nothing yet, that grows as a reader builds.
    pub fn start(&self, what: impl fmt::Display) -> Charge {
        Charge { budget: self.clone(), bytes: 0, what: what.to_string() }
    }

    /// Everything `input` holds (a file, a pipe, a socket), its buffer
    /// charged as it grows: an input larger than the budget stops here,
    /// named `what`, before it is held. The charge comes back with the
    /// bytes; a [`BudgetError`] is the error's source (`io::Error::other`).
    pub fn read_all(&self, mut input: impl io::Read, what: impl fmt::Display) -> io::Result<(Vec<u8>, Charge)> {
        let mut charge = self.start(what);
        let mut data: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 256 << 10];
        loop {
            let n = match input.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if data.len() + n > data.capacity() {
                let more = data.capacity().max(n).max(1 << 20);
                charge.grow(more as u64).map_err(io::Error::other)?;
                data.reserve_exact(data.capacity() + more - data.len());
            }
            data.extend_from_slice(&chunk[..n]);
        }
        Ok((data, charge))
    }
}

/// Bytes reserved from a [`Budget`], released when dropped.
#[must_use = "a charge is released when dropped"]
pub struct Charge {
    budget: Budget,
    bytes: u64,
    what: String,
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Charge").field("what", &self.what).field("bytes", &self.bytes).finish()
    }
}

impl Charge {
    /// Reserves `more` bytes, or fails (keeping what was reserved).
    pub fn grow(&mut self, more: u64) -> Result<(), BudgetError> {
        self.budget.take(more, &self.what)?;
        self.bytes += more;
        Ok(())
    }

    /// Releases `less` bytes (at most what is held).
    pub fn shrink(&mut self, less: u64) {
        let less = less.min(self.bytes);
        self.budget.give_back(less);
        self.bytes -= less;
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// What the bytes are for.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Keeps the bytes charged for the rest of the process (for what lives
    /// as long as the job: the profile itself).
    pub fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_with_and_without_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size(" 1k "), Ok(1024));
        assert_eq!(parse_size("3 GiB"), Ok(3 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_size("0M").unwrap_err().to_string(), "the memory budget must be more than 0");
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "\"lots\" is not a size (such as 512M, 2G or a number of bytes)"
        );
        assert_eq!(parse_size("-1"), Err(SizeError::NotASize("-1".into())));
        assert_eq!(parse_size("5X").unwrap_err().to_string(), "\"5X\": unknown unit (K, M, G or T)");
        assert_eq!(parse_size("99999999999999999999"), Err(SizeError::NotASize("99999999999999999999".into())));
        assert_eq!(parse_size("17000000T").unwrap_err().to_string(), "\"17000000T\" is too large");
    }

    #[test]
    fn reading_all_charges_the_buffer_and_stops_at_the_limit() {
        let budget = Budget::new(4 << 20);
        let (data, charge) = budget.read_all(&[7u8; 3 << 20][..], "input").unwrap();
        assert_eq!(data.len(), 3 << 20);
        assert!(charge.bytes() >= data.len() as u64 && budget.used() == charge.bytes());
        drop(charge);
        assert_eq!(budget.used(), 0);
        let e = budget.read_all(&[7u8; 5 << 20][..], "big.folded").unwrap_err();
        let inner = e.get_ref().and_then(|e| e.downcast_ref::<BudgetError>()).expect("a budget error");
        assert_eq!(inner.what, "big.folded");
        assert!(e.to_string().starts_with("big.folded: needs more than the memory budget of 4 MiB"), "{e}");
        assert_eq!(budget.used(), 0, "a refused read holds nothing");
    }

    #[test]
    fn charges_count_against_one_limit_and_are_released() {
        let b = Budget::new(100);
        let clone = b.clone();
        let a = b.charge(60, "a").unwrap();
        let err = clone.charge(50, "b.pb.gz").unwrap_err();
        assert_eq!((err.limit, err.used, err.asked), (100, 60, 50));
        assert!(err.to_string().starts_with("b.pb.gz: needs more than the memory budget of 100 bytes"), "{err}");
        drop(a);
        assert_eq!(b.used(), 0);
        let mut c = b.start("c");
        c.grow(100).unwrap();
        assert!(c.grow(1).is_err());
        assert_eq!(c.bytes(), 100);
        c.shrink(30);
        assert_eq!(b.used(), 70);
        c.keep();
        assert_eq!(b.used(), 70, "kept bytes stay charged");
    }

    #[test]
    fn overflow_is_a_refusal_not_a_wrap() {
        let b = Budget::new(u64::MAX);
        let _a = b.charge(u64::MAX - 1, "a").unwrap();
        assert!(b.charge(2, "b").is_err());
    }

    #[test]
    fn concurrent_charges_never_exceed_the_limit() {
        let b = Budget::new(1000);
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || (0..100).filter_map(|_| b.charge(3, "x").ok()).collect::<Vec<_>>())
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 333);
        assert_eq!(b.used(), 999);
    }

    #[test]
    fn the_process_budget_defaults_to_512_mib_and_can_be_set() {
        assert_eq!(DEFAULT_LIMIT, 512 << 20);
        let p = Budget::process();
        assert!(p.limit() > 0);
    }
}
