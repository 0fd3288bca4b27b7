//! What readers of a target's files refused, for the profile's notes.
//!
//! The files a target maps are read in several places (the table loader,
//! the unwinders, the symbolizer), some in threads of their own. When one
//! of them refuses a file (its copy or its decompressed sections would
//! exceed the memory budget, its CFI has too many rows), it pushes one
//! line naming the file and the limit here; the profiler takes them all
//! when it writes its notes. Libraries never print.

use std::sync::{Mutex, OnceLock};

/// At most this many notices are kept (the first ones).
const MAX_NOTICES: usize = 64;

fn notices() -> &'static Mutex<Vec<String>> {
    static NOTICES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    NOTICES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Records a refusal (one line naming the file and the limit); the same
/// line is kept once.
pub fn push(line: String) {
    let mut n = notices().lock().unwrap_or_else(|e| e.into_inner());
    if n.len() < MAX_NOTICES && !n.contains(&line) {
        n.push(line);
    }
}

/// Takes the refusals recorded so far.
pub fn take() -> Vec<String> {
    std::mem::take(&mut *notices().lock().unwrap_or_else(|e| e.into_inner()))
}
