//! Kernel structure offsets from the kernel's BTF.

use std::io;

use btfparse::{Offset, Readable, TypeInformation, TypeVariant};
use perfkit_probes_common::kernel::KernelOffsets;

use crate::ProbeError;

/// Where the kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

struct Bytes(Vec<u8>);

impl Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).ok();
        match start.and_then(|s| self.0.get(s..s.checked_add(buffer.len())?)) {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
        }
    }
}

/// Reads the offsets the programs need from `/sys/kernel/btf/vmlinux`.
/// Parsed once per process.
pub fn kernel_offsets() -> Result<KernelOffsets, ProbeError> {
    static CACHE: std::sync::OnceLock<Result<KernelOffsets, String>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            let data = std::fs::read(VMLINUX_BTF).map_err(|e| format!("reading {VMLINUX_BTF}: {e}"))?;
            offsets_from(&data)
        })
        .clone()
        .map_err(ProbeError::Btf)
}

fn offsets_from(data: &[u8]) -> Result<KernelOffsets, String> {
    let bytes = Bytes(data.to_vec());
    let ti = TypeInformation::new(&bytes).map_err(|e| format!("parsing {VMLINUX_BTF}: {e:?}"))?;
    let field = |ty: &str, paths: &[&str]| -> Result<u32, String> {
        let id = ti.id_of(ty).ok_or_else(|| format!("the kernel's BTF has no struct {ty}"))?;
        for path in paths {
            if let Ok((_, Offset::ByteOffset(o))) = ti.offset_of(id, path) {
                return u32::try_from(o).map_err(|_| format!("{ty}.{path} is at an unexpected offset"));
            }
        }
        Err(format!("the kernel's BTF has no field {ty}.{}", paths[0]))
    };
    Ok(KernelOffsets {
        task_flags: field("task_struct", &["flags"])?,
        task_mm: field("task_struct", &["mm"])?,
        task_group_leader: field("task_struct", &["group_leader"])?,
        task_comm: field("task_struct", &["comm"])?,
        task_pid: field("task_struct", &["pid"])?,
        task_tgid: field("task_struct", &["tgid"])?,
        task_state: field("task_struct", &["__state", "state"])?,
        exit_has_group_dead: u32::from(tracepoint_args(&ti, "sched_process_exit").is_some_and(|n| n >= 2)),
        valid: 1,
    })
}

/// The number of arguments a tracepoint passes to raw tracepoint programs
/// (its `btf_trace_NAME` typedef is a pointer to a function whose first
/// parameter is the context).
fn tracepoint_args(ti: &TypeInformation, name: &str) -> Option<usize> {
    let mut id = ti.id_of(&format!("btf_trace_{name}"))?;
    for _ in 0..4 {
        match ti.from_id(id)? {
            TypeVariant::Typedef(t) => id = *t.tid(),
            TypeVariant::Ptr(p) => id = *p.tid(),
            TypeVariant::FuncProto(f) => return Some(f.parameter_list().len().saturating_sub(1)),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernels_offsets_are_found() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else { return };
        let o = offsets_from(&data).unwrap();
        assert_eq!(o.valid, 1);
        assert!(o.task_comm > o.task_pid);
        assert_eq!(o.task_tgid, o.task_pid + 4, "pid and tgid are neighbours in task_struct");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(offsets_from(b"not btf at all").is_err());
    }
}
