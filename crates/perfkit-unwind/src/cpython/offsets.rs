//! Where CPython keeps what a stack reader needs, per version (x86-64).
//!
//! 3.8 to 3.12: tables measured with `offsetof` over each version's own
//! headers (`offsets.c` next to this file is the program, run against
//! pyenv's 3.8.18, 3.9.18, 3.10.13, 3.11.7 and 3.12.1; the layouts are
//! fixed within a minor version). 3.13: read from the interpreter itself,
//! `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`, which CPython 3.13
//! publishes for out-of-process readers such as this one).

use super::Version;

/// How a frame's current instruction maps to a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineTable {
    /// 3.8, 3.9: `co_lnotab`, `f_lasti` in bytes.
    Lnotab,
    /// 3.10: `co_linetable` (PEP 626), `f_lasti` in code units.
    Pep626,
    /// 3.11+: the location table, instruction pointers into
    /// `co_code_adaptive`.
    Locations,
}

/// The frame layout of a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameLayout {
    /// 3.8 to 3.10: `PyFrameObject`, from `PyThreadState.frame`.
    Object { f_back: u64, f_code: u64, f_lasti: u64 },
    /// 3.11+: `_PyInterpreterFrame`, from `tstate->cframe->current_frame`
    /// (3.11, 3.12: `cframe` is set) or `tstate->current_frame` (3.13).
    Interpreter {
        /// `tstate->cframe`, then `_PyCFrame.current_frame` (3.11, 3.12).
        cframe: Option<(u64, u64)>,
        previous: u64,
        code: u64,
        instr: u64,
        owner: u64,
        /// `co_code_adaptive`: where a code object's instructions start.
        code_adaptive: u64,
        /// Frames of this owner are the C stack's shims (3.12+), not Python;
        /// the frame they precede is the first one an evaluation loop ran.
        cstack_owner: Option<u8>,
        /// `_PyInterpreterFrame.is_entry` (3.11): the frame is the first
        /// one an evaluation loop ran.
        is_entry: Option<u64>,
    },
}

/// Offsets in bytes, named after CPython's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Offsets {
    /// `_PyRuntimeState.interpreters.head`.
    pub interpreters_head: u64,
    /// `PyInterpreterState.next`.
    pub interp_next: u64,
    /// `PyInterpreterState.tstate_head` / `threads.head`.
    pub interp_threads_head: u64,
    /// `PyThreadState.next`.
    pub tstate_next: u64,
    /// `PyThreadState.frame` (3.8–3.10), `.cframe` (3.11, 3.12),
    /// `.current_frame` (3.13).
    pub tstate_frame: u64,
    /// `PyThreadState.thread_id` (a `pthread_t`).
    pub tstate_thread_id: u64,
    /// `PyThreadState.native_thread_id` (3.11+).
    pub tstate_native_thread_id: Option<u64>,
    pub frame: FrameLayout,
    pub line_table: LineTable,
    /// `PyCodeObject.co_filename`.
    pub code_filename: u64,
    /// `PyCodeObject.co_name`.
    pub code_name: u64,
    /// `PyCodeObject.co_qualname` (3.11+).
    pub code_qualname: Option<u64>,
    /// `co_lnotab` (3.8, 3.9) or `co_linetable`.
    pub code_linetable: u64,
    /// `PyCodeObject.co_firstlineno` (an `int`).
    pub code_firstlineno: u64,
    /// `PyObject.ob_type`.
    pub ob_type: u64,
    /// `PyVarObject.ob_size` of a bytes object.
    pub bytes_size: u64,
    /// `PyBytesObject.ob_sval`.
    pub bytes_sval: u64,
    /// `PyASCIIObject.length`.
    pub unicode_length: u64,
    /// `PyASCIIObject.state` (the bit field).
    pub unicode_state: u64,
    /// `sizeof(PyASCIIObject)`: where a compact ASCII string's bytes are.
    pub ascii_size: u64,
    /// `sizeof(PyCompactUnicodeObject)`: where other compact strings' are.
    pub compact_size: u64,
}

impl Offsets {
    /// The bytes of a frame and of a code object that hold every field
    /// read.
    pub(crate) fn header_lengths(&self) -> (u64, u64) {
        let frame = match self.frame {
            FrameLayout::Object { f_back, f_code, f_lasti } => f_back.max(f_code).max(f_lasti),
            FrameLayout::Interpreter { previous, code, instr, owner, is_entry, .. } => {
                previous.max(code).max(instr).max(owner).max(is_entry.unwrap_or(0))
            }
        };
        let code = [
            self.code_filename,
            self.code_name,
            self.code_qualname.unwrap_or(0),
            self.code_linetable,
            self.code_firstlineno,
            self.ob_type,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        (frame + 8, code + 8)
    }
}

const V38: Offsets = Offsets {
    interpreters_head: 32,
    interp_next: 0,
    interp_threads_head: 8,
    tstate_next: 8,
    tstate_frame: 24,
    tstate_thread_id: 176,
    tstate_native_thread_id: None,
    frame: FrameLayout::Object { f_back: 24, f_code: 32, f_lasti: 104 },
    line_table: LineTable::Lnotab,
    code_filename: 104,
    code_name: 112,
    code_qualname: None,
    code_linetable: 120,
    code_firstlineno: 40,
    ob_type: 8,
    bytes_size: 16,
    bytes_sval: 32,
    unicode_length: 16,
    unicode_state: 32,
    ascii_size: 48,
    compact_size: 72,
};

const V310: Offsets = Offsets {
    frame: FrameLayout::Object { f_back: 24, f_code: 32, f_lasti: 96 },
    line_table: LineTable::Pep626,
    ..V38
};

const V311: Offsets = Offsets {
    interpreters_head: 40,
    interp_next: 0,
    interp_threads_head: 16,
    tstate_next: 8,
    tstate_frame: 56,
    tstate_thread_id: 152,
    tstate_native_thread_id: Some(160),
    frame: FrameLayout::Interpreter {
        cframe: Some((56, 8)),
        previous: 48,
        code: 32,
        instr: 56,
        owner: 69,
        code_adaptive: 184,
        cstack_owner: None,
        is_entry: Some(68),
    },
    line_table: LineTable::Locations,
    code_filename: 112,
    code_name: 120,
    code_qualname: Some(128),
    code_linetable: 136,
    code_firstlineno: 72,
    ob_type: 8,
    bytes_size: 16,
    bytes_sval: 32,
    unicode_length: 16,
    unicode_state: 32,
    ascii_size: 48,
    compact_size: 72,
};

const V312: Offsets = Offsets {
    interpreters_head: 40,
    interp_threads_head: 72,
    tstate_frame: 56,
    tstate_thread_id: 136,
    tstate_native_thread_id: Some(144),
    frame: FrameLayout::Interpreter {
        cframe: Some((56, 0)),
        previous: 8,
        code: 0,
        instr: 56,
        owner: 70,
        code_adaptive: 192,
        cstack_owner: Some(3),
        is_entry: None,
    },
    code_firstlineno: 68,
    ascii_size: 40,
    compact_size: 56,
    ..V311
};

/// The table of a version older than 3.13, if it is one perfkit knows.
pub(crate) fn table(version: Version) -> Option<Offsets> {
    match (version.major, version.minor) {
        (3, 8 | 9) => Some(V38),
        (3, 10) => Some(V310),
        (3, 11) => Some(V311),
        (3, 12) => Some(V312),
        _ => None,
    }
}

/// The size of `_Py_DebugOffsets` in 3.13: 73 `uint64_t` (the cookie
/// counts as one).
pub(crate) const DEBUG_OFFSETS_SIZE: usize = 73 * 8;

/// The cookie that starts `_Py_DebugOffsets`.
pub(crate) const DEBUG_COOKIE: &[u8; 8] = b"xdebugpy";

/// Offsets from 3.13's `_Py_DebugOffsets` (its first
/// [`DEBUG_OFFSETS_SIZE`] bytes): `Err` names what is wrong with them.
/// Fields are read by their index in the 3.13 structure; 3.14 changed it,
/// so only a 3.13 `version` is accepted.
pub(crate) fn from_debug_offsets(bytes: &[u8]) -> Result<(Version, Offsets), String> {
    if bytes.len() < DEBUG_OFFSETS_SIZE || &bytes[..8] != DEBUG_COOKIE {
        return Err("no _Py_DebugOffsets cookie at _PyRuntime".into());
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let hex = word(1);
    let version = Version { major: (hex >> 24) as u8, minor: (hex >> 16) as u8, micro: (hex >> 8) as u8 };
    if (version.major, version.minor) != (3, 13) {
        return Err(format!("_Py_DebugOffsets of version {version}, only 3.13's layout is known"));
    }
    if word(2) != 0 {
        return Err("free-threaded CPython (3.13t) is not supported".into());
    }
    // Every offset lies within its structure: a field past the size given
    // is a corrupt table (the bytes are the target's).
    let check = |value: u64, size: u64, name: &str| -> Result<u64, String> {
        if value.checked_add(8).is_some_and(|end| end <= size) {
            Ok(value)
        } else {
            Err(format!("_Py_DebugOffsets: {name} {value} is outside its structure of {size} bytes"))
        }
    };
    let (interp, tstate, frame, code) = (word(6), word(19), word(28), word(34));
    let unicode_size = word(67);
    Ok((
        version,
        Offsets {
            interpreters_head: check(word(5), word(3), "interpreters_head")?,
            interp_next: check(word(8), interp, "interpreter next")?,
            interp_threads_head: check(word(9), interp, "threads_head")?,
            tstate_next: check(word(21), tstate, "thread next")?,
            tstate_frame: check(word(23), tstate, "current_frame")?,
            tstate_thread_id: check(word(24), tstate, "thread_id")?,
            tstate_native_thread_id: Some(check(word(25), tstate, "native_thread_id")?),
            frame: FrameLayout::Interpreter {
                cframe: None,
                previous: check(word(29), frame, "previous")?,
                code: check(word(30), frame, "executable")?,
                instr: check(word(31), frame, "instr_ptr")?,
                owner: check(word(33), frame, "owner")?,
                code_adaptive: check(word(43), code + 8, "co_code_adaptive")?,
                cstack_owner: Some(3),
                is_entry: None,
            },
            line_table: LineTable::Locations,
            code_filename: check(word(35), code, "co_filename")?,
            code_name: check(word(36), code, "co_name")?,
            code_qualname: Some(check(word(37), code, "co_qualname")?),
            code_linetable: check(word(38), code, "co_linetable")?,
            code_firstlineno: check(word(39), code, "co_firstlineno")?,
            ob_type: check(word(45), word(44), "ob_type")?,
            bytes_size: check(word(65), word(64) + 8, "bytes ob_size")?,
            bytes_sval: check(word(66), word(64) + 8, "ob_sval")?,
            unicode_length: check(word(69), unicode_size, "unicode length")?,
            unicode_state: check(word(68), unicode_size, "unicode state")?,
            ascii_size: check(word(70), 4096, "PyASCIIObject size")?,
            // PyCompactUnicodeObject adds utf8_length and utf8 to
            // PyASCIIObject (3.12+): 3.13 does not publish its size.
            compact_size: check(word(70), 4096, "PyASCIIObject size")? + 16,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3.13.0's `_Py_DebugOffsets` as a table of words (from
    /// `offsets.c` against 3.13.0's headers, and its static initializer).
    pub(crate) fn debug_offsets_313() -> Vec<u8> {
        let mut words = [0u64; 73];
        words[1] = 0x030D00F0;
        words[3] = 4096;
        words[5] = 632;
        words[6] = 8192;
        words[8] = 7264;
        words[9] = 7344;
        words[19] = 512;
        words[21] = 8;
        words[23] = 72;
        words[24] = 152;
        words[25] = 160;
        words[28] = 80;
        words[29] = 8;
        words[30] = 0;
        words[31] = 56;
        words[33] = 70;
        words[34] = 208;
        words[35] = 112;
        words[36] = 120;
        words[37] = 128;
        words[38] = 136;
        words[39] = 68;
        words[43] = 200;
        words[44] = 16;
        words[45] = 8;
        words[64] = 40;
        words[65] = 16;
        words[66] = 32;
        words[67] = 40;
        words[68] = 32;
        words[69] = 16;
        words[70] = 40;
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[..8].copy_from_slice(DEBUG_COOKIE);
        bytes
    }

    #[test]
    fn debug_offsets_of_3_13_give_what_its_headers_say() {
        let (version, off) = from_debug_offsets(&debug_offsets_313()).unwrap();
        assert_eq!((version.major, version.minor), (3, 13));
        assert_eq!((off.interpreters_head, off.interp_threads_head, off.tstate_frame), (632, 7344, 72));
        assert_eq!(off.tstate_native_thread_id, Some(160));
        assert_eq!((off.ascii_size, off.compact_size), (40, 56));
        let FrameLayout::Interpreter { previous, code_adaptive, .. } = off.frame else { panic!("3.13 frames") };
        assert_eq!((previous, code_adaptive), (8, 200));
    }

    #[test]
    fn corrupt_debug_offsets_are_refused() {
        let good = debug_offsets_313();
        let mut no_cookie = good.clone();
        no_cookie[0] = b'y';
        assert!(from_debug_offsets(&no_cookie).unwrap_err().contains("cookie"));
        let mut v314 = good.clone();
        v314[8..16].copy_from_slice(&0x030E00F0u64.to_le_bytes());
        assert!(from_debug_offsets(&v314).unwrap_err().contains("3.14"));
        let mut far = good.clone();
        far[21 * 8..22 * 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(from_debug_offsets(&far).unwrap_err().contains("thread next"));
        assert!(from_debug_offsets(&good[..100]).is_err());
    }

    #[test]
    fn tables_cover_3_8_to_3_12() {
        for minor in 8..=12 {
            assert!(table(Version { major: 3, minor, micro: 0 }).is_some(), "3.{minor}");
        }
        assert!(table(Version { major: 3, minor: 7, micro: 0 }).is_none());
        assert!(table(Version { major: 3, minor: 13, micro: 0 }).is_none());
    }
}
