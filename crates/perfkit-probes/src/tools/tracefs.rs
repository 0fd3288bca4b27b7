//! tracefs: where the kernel lists its tracepoints and the layout of each
//! one's record.

use std::{collections::HashMap, path::PathBuf};

use crate::ProbeError;

/// Where tracefs is mounted on current systems.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// Where older systems reach it, under debugfs.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The tracefs directory, mounting it at `/sys/kernel/tracing` when
/// nothing is mounted there (as root; systemd does the same at boot on
/// most distributions).
pub fn root() -> Result<PathBuf, ProbeError> {
    for dir in [TRACEFS, DEBUGFS_TRACING] {
        if std::path::Path::new(dir).join("events").is_dir() {
            return Ok(PathBuf::from(dir));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: valid NUL-terminated strings; mount(2) has no memory
    // preconditions beyond them.
    let rc = unsafe { libc::mount(c"nodev".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
    if rc == 0 {
        tracing::info!("mounted tracefs at {TRACEFS}");
        return Ok(PathBuf::from(TRACEFS));
    }
    let err = std::io::Error::last_os_error();
    Err(ProbeError::Tracefs(format!(
        "tracefs is not mounted and mounting it at {TRACEFS} failed ({err}); \
         run `mount -t tracefs nodev {TRACEFS}` as root"
    )))
}

/// A field of a tracepoint's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Byte offset in the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
}

/// The fields of tracepoint `category:name`, by name.
pub fn fields(category: &str, name: &str) -> Result<HashMap<String, Field>, ProbeError> {
    let path = root()?.join("events").join(category).join(name).join("format");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| ProbeError::MissingTracepoint { category: category.to_owned(), name: name.to_owned() })?;
    Ok(parse_format(&text))
}

/// Parses a tracepoint's `format` file: lines such as
/// `field:char rwbs[10];<TAB>offset:34;<TAB>size:10;<TAB>signed:0;`.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("field:") else { continue };
        let mut parts = rest.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let mut offset = None;
        let mut size = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        let Some(last) = decl.split_whitespace().last() else { continue };
        let name = last.split('[').next().unwrap_or(last).trim_start_matches('*');
        if let (Some(offset), Some(size)) = (offset, size) {
            out.insert(name.to_owned(), Field { offset, size });
        }
    }
    out
}

/// The offset of a required field.
pub(crate) fn offset(fields: &HashMap<String, Field>, event: &str, field: &str) -> Result<u32, ProbeError> {
    fields
        .get(field)
        .map(|f| f.offset)
        .ok_or_else(|| ProbeError::Tracefs(format!("the {event} tracepoint has no field {field} this perfkit reads")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_format_file() {
        let text = "name: block_rq_issue\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:dev_t dev;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:char rwbs[10];\toffset:34;\tsize:10;\tsigned:0;\n\tfield:const char * filename;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] cmd;\toffset:60;\tsize:4;\tsigned:0;\n\nprint fmt: \"%d\"";
        let f = parse_format(text);
        assert_eq!(f["dev"], Field { offset: 8, size: 4 });
        assert_eq!(f["rwbs"], Field { offset: 34, size: 10 });
        assert_eq!(f["filename"].offset, 16);
        assert_eq!(f["cmd"].offset, 60);
        assert!(parse_format("garbage\nfield:;;;").is_empty());
    }
}
