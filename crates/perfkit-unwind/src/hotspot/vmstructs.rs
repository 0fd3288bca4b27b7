//! HotSpot's description of its own structures: the `gHotSpotVMStructs`,
//! `gHotSpotVMTypes` and `gHotSpotVMIntConstants` tables libjvm.so
//! exports for debuggers (the serviceability agent), and the exported
//! variables that say where each field of an entry lies
//! (`gHotSpotVMStructEntryTypeNameOffset`...).
//!
//! The tables are read from the target's memory, entry by entry: only the
//! entries asked for are kept (so what is kept does not grow with the
//! table), a table is read up to [`MAX_ENTRIES`] entries and names up to
//! [`MAX_NAME`] bytes, and the walk gives up at a deadline.

use std::{collections::HashMap, time::Instant};

use super::Error;
use crate::cpython::Memory;

/// The most entries read from one table (JDK 17 has about 2,000 structure
/// fields): a table without its terminating entry within is corrupt.
pub const MAX_ENTRIES: u64 = 1 << 14;
/// The longest type or field name compared, in bytes.
pub const MAX_NAME: usize = 128;
/// The largest entry (HotSpot's are 48 bytes for structures).
const MAX_STRIDE: u64 = 256;

/// Where each field of a `VMStructEntry` lies, and the entries' stride.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StructLayout {
    /// `gHotSpotVMStructEntryArrayStride`.
    pub stride: u64,
    /// `gHotSpotVMStructEntryTypeNameOffset` (a `const char*`).
    pub type_name: u64,
    /// `gHotSpotVMStructEntryFieldNameOffset` (a `const char*`).
    pub field_name: u64,
    /// `gHotSpotVMStructEntryIsStaticOffset` (an `int32_t`).
    pub is_static: u64,
    /// `gHotSpotVMStructEntryOffsetOffset` (a `uint64_t`).
    pub offset: u64,
    /// `gHotSpotVMStructEntryAddressOffset` (a `void*`).
    pub address: u64,
}

/// Where each field of a `VMTypeEntry` lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeLayout {
    /// `gHotSpotVMTypeEntryArrayStride`.
    pub stride: u64,
    /// `gHotSpotVMTypeEntryTypeNameOffset`.
    pub type_name: u64,
    /// `gHotSpotVMTypeEntrySizeOffset` (a `uint64_t`).
    pub size: u64,
}

/// Where each field of a `VMIntConstantEntry` lies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConstLayout {
    /// `gHotSpotVMIntConstantEntryArrayStride`.
    pub stride: u64,
    /// `gHotSpotVMIntConstantEntryNameOffset`.
    pub name: u64,
    /// `gHotSpotVMIntConstantEntryValueOffset` (an `int32_t`).
    pub value: u64,
}

/// One field of a structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its offset in the structure (non-static fields).
    pub offset: u64,
    /// Its address (static fields).
    pub address: u64,
    /// Whether it is static.
    pub is_static: bool,
}

/// What a walk of a table needs.
pub(crate) struct Walk<'a, M: Memory> {
    pub mem: &'a M,
    pub pid: u32,
    pub deadline: Instant,
}

impl<M: Memory> Walk<'_, M> {
    fn corrupt(&self, what: String) -> Error {
        Error::Corrupt { pid: self.pid, what }
    }

    fn check(&self) -> Result<(), Error> {
        if Instant::now() >= self.deadline { Err(Error::Late { pid: self.pid }) } else { Ok(()) }
    }

    /// Reads a NUL-terminated string of at most [`MAX_NAME`] bytes into
    /// `buf`, a page at a time (a name may end just before an unmapped
    /// page). `None` when it has no NUL within.
    pub(crate) fn string<'b>(&self, addr: u64, buf: &'b mut [u8; MAX_NAME]) -> Result<Option<&'b [u8]>, Error> {
        let mut len = 0;
        while len < MAX_NAME {
            let at = addr.checked_add(len as u64).ok_or_else(|| self.corrupt(format!("a name at {addr:#x}")))?;
            let to_page = (0x1000 - (at & 0xfff)) as usize;
            let n = to_page.min(MAX_NAME - len);
            self.mem.read(at, &mut buf[len..len + n]).map_err(|source| Error::Read {
                pid: self.pid,
                what: "a HotSpot VMStructs name",
                addr: at,
                source,
            })?;
            if let Some(nul) = buf[len..len + n].iter().position(|&b| b == 0) {
                return Ok(Some(&buf[..len + nul]));
            }
            len += n;
        }
        Ok(None)
    }

    /// Visits each entry of the table at `table` (`stride` bytes each)
    /// until one whose pointer at `name_at` is null, with the entry's
    /// bytes and the name it points to.
    fn entries(
        &self,
        what: &'static str,
        table: u64,
        stride: u64,
        name_at: u64,
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if !(8..=MAX_STRIDE).contains(&stride) || name_at + 8 > stride {
            return Err(self.corrupt(format!("{what}: an entry of {stride} bytes with its name at {name_at}")));
        }
        let mut entry = [0u8; MAX_STRIDE as usize];
        let entry = &mut entry[..stride as usize];
        let mut name = [0u8; MAX_NAME];
        for i in 0..MAX_ENTRIES {
            self.check()?;
            let at = table
                .checked_add(i * stride)
                .ok_or_else(|| self.corrupt(format!("{what} runs past the end of memory")))?;
            self.mem.read(at, entry).map_err(|source| Error::Read { pid: self.pid, what, addr: at, source })?;
            let name_ptr = u64_at(entry, name_at);
            if name_ptr == 0 {
                return Ok(());
            }
            if let Some(n) = self.string(name_ptr, &mut name)? {
                visit(entry, n)?;
            }
        }
        Err(self.corrupt(format!("{what} has no end within {MAX_ENTRIES} entries")))
    }

    /// The fields asked for (type, field) found in the structures table.
    pub(crate) fn structs(
        &self,
        table: u64,
        layout: &StructLayout,
        wanted: &[(&'static str, &'static str)],
    ) -> Result<HashMap<(&'static str, &'static str), Field>, Error> {
        let l = layout;
        for (name, at, size) in [
            ("field name", l.field_name, 8),
            ("is-static flag", l.is_static, 4),
            ("offset", l.offset, 8),
            ("address", l.address, 8),
        ] {
            if at.checked_add(size).is_none_or(|end| end > l.stride) {
                return Err(self.corrupt(format!(
                    "gHotSpotVMStructs: the {name} at {at} lies outside an entry of {} bytes",
                    l.stride
                )));
            }
        }
        let mut found = HashMap::new();
        let mut field = [0u8; MAX_NAME];
        self.entries("gHotSpotVMStructs", table, l.stride, l.type_name, |entry, type_name| {
            if !wanted.iter().any(|(t, _)| t.as_bytes() == type_name) {
                return Ok(());
            }
            let Some(field_name) = self.string(u64_at(entry, l.field_name), &mut field)? else { return Ok(()) };
            if let Some(&key) = wanted.iter().find(|(t, f)| t.as_bytes() == type_name && f.as_bytes() == field_name) {
                let is_static =
                    u32::from_le_bytes(entry[l.is_static as usize..][..4].try_into().expect("4 bytes")) != 0;
                found.insert(
                    key,
                    Field { offset: u64_at(entry, l.offset), address: u64_at(entry, l.address), is_static },
                );
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The sizes of the types asked for, from the types table.
    pub(crate) fn type_sizes(
        &self,
        table: u64,
        layout: &TypeLayout,
        wanted: &[&'static str],
    ) -> Result<HashMap<&'static str, u64>, Error> {
        if layout.size.checked_add(8).is_none_or(|end| end > layout.stride) {
            return Err(self.corrupt("gHotSpotVMTypes: the size lies outside an entry".into()));
        }
        let mut found = HashMap::new();
        self.entries("gHotSpotVMTypes", table, layout.stride, layout.type_name, |entry, name| {
            if let Some(&t) = wanted.iter().find(|t| t.as_bytes() == name) {
                found.insert(t, u64_at(entry, layout.size));
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The integer constants asked for.
    pub(crate) fn int_constants(
        &self,
        table: u64,
        layout: &ConstLayout,
        wanted: &[&'static str],
    ) -> Result<HashMap<&'static str, i32>, Error> {
        if layout.value.checked_add(4).is_none_or(|end| end > layout.stride) {
            return Err(self.corrupt("gHotSpotVMIntConstants: the value lies outside an entry".into()));
        }
        let mut found = HashMap::new();
        self.entries("gHotSpotVMIntConstants", table, layout.stride, layout.name, |entry, name| {
            if let Some(&c) = wanted.iter().find(|c| c.as_bytes() == name) {
                let v = i32::from_le_bytes(entry[layout.value as usize..][..4].try_into().expect("4 bytes"));
                found.insert(c, v);
            }
            Ok(())
        })?;
        Ok(found)
    }
}

/// The little-endian u64 at `at` in `bytes` (the callers checked the
/// bounds against the stride).
fn u64_at(bytes: &[u8], at: u64) -> u64 {
    u64::from_le_bytes(bytes[at as usize..][..8].try_into().expect("8 bytes"))
}
