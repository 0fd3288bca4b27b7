//! Kernel structure offsets from the kernel's BTF.
//!
//! The programs read a few fields of `task_struct`; their offsets vary
//! between kernels and are read from `/sys/kernel/btf/vmlinux` at load time.
//! A BTF file is a flat list of type records: this reader indexes where
//! each record starts and follows only the types it is asked about, so it
//! needs little more memory than the file itself (a general BTF parser that
//! builds every type took 60 MiB for this kernel's 5 MiB of BTF).

use perfkit_probes_common::{kernel::KernelOffsets, tools::ToolOffsets};

use crate::{ProbeError, compat::KernelFeatures};

/// Where the kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// `read` of the kernel's BTF, computed once per process: the file (a few
/// MiB) is read, used and dropped.
fn from_vmlinux<T: Clone>(
    cache: &'static std::sync::OnceLock<Result<T, String>>,
    read: fn(&[u8]) -> Result<T, String>,
) -> Result<T, ProbeError> {
    cache
        .get_or_init(|| {
            let data = std::fs::read(VMLINUX_BTF).map_err(|e| format!("reading {VMLINUX_BTF}: {e}"))?;
            read(&data)
        })
        .clone()
        .map_err(ProbeError::Btf)
}

/// Reads the offsets the programs need from `/sys/kernel/btf/vmlinux`.
/// Parsed once per process.
pub fn kernel_offsets() -> Result<KernelOffsets, ProbeError> {
    static CACHE: std::sync::OnceLock<Result<KernelOffsets, String>> = std::sync::OnceLock::new();
    from_vmlinux(&CACHE, offsets_from)
}

fn offsets_from(data: &[u8]) -> Result<KernelOffsets, String> {
    let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
    let field = |ty: &str, names: &[&str]| -> Result<u32, String> {
        let id = btf.struct_by_name(ty).ok_or_else(|| format!("the kernel's BTF has no struct {ty}"))?;
        names
            .iter()
            .find_map(|n| btf.member_offset(id, n, 0))
            .map(|bits| bits / 8)
            .ok_or_else(|| format!("the kernel's BTF has no field {ty}.{}", names[0]))
    };
    Ok(KernelOffsets {
        task_flags: field("task_struct", &["flags"])?,
        task_mm: field("task_struct", &["mm"])?,
        task_group_leader: field("task_struct", &["group_leader"])?,
        task_comm: field("task_struct", &["comm"])?,
        task_pid: field("task_struct", &["pid"])?,
        task_tgid: field("task_struct", &["tgid"])?,
        task_state: field("task_struct", &["__state", "state"])?,
        task_stack: field("task_struct", &["stack"])?,
        valid: 1,
    })
}

/// Reads what this kernel offers the programs from
/// `/sys/kernel/btf/vmlinux` (see [`crate::compat`]). Parsed once per
/// process.
pub(crate) fn kernel_features() -> Result<KernelFeatures, ProbeError> {
    static CACHE: std::sync::OnceLock<Result<KernelFeatures, String>> = std::sync::OnceLock::new();
    from_vmlinux(&CACHE, features_from)
}

fn features_from(data: &[u8]) -> Result<KernelFeatures, String> {
    let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
    let exit_args = btf
        .tracepoint_args("sched_process_exit")
        .ok_or_else(|| "the kernel's BTF has no prototype of the sched_process_exit tracepoint".to_owned())?;
    let helpers =
        btf.enum_by_name("bpf_func_id").ok_or_else(|| "the kernel's BTF has no enum bpf_func_id".to_owned())?;
    Ok(KernelFeatures {
        exit_group_dead: exit_args >= 2,
        bpf_loop: btf.enum_has(helpers, "BPF_FUNC_loop"),
        lazy_hash_maps: btf.struct_by_name("bpf_mem_alloc").is_some(),
    })
}

/// The offsets the bcc-style tools read, and the fields this kernel's BTF
/// lacks (named `struct.field`; the tools that need them say so).
pub fn tool_offsets() -> Result<(ToolOffsets, Vec<String>), ProbeError> {
    static CACHE: std::sync::OnceLock<Result<(ToolOffsets, Vec<String>), String>> = std::sync::OnceLock::new();
    from_vmlinux(&CACHE, tool_offsets_from)
}

fn tool_offsets_from(data: &[u8]) -> Result<(ToolOffsets, Vec<String>), String> {
    let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
    let mut missing = Vec::new();
    let mut field = |ty: &str, names: &[&str]| -> u32 {
        let found = btf.struct_by_name(ty).and_then(|id| names.iter().find_map(|n| btf.member_offset(id, n, 0)));
        match found {
            Some(bits) => bits / 8,
            None => {
                missing.push(format!("{ty}.{}", names[0]));
                0
            }
        }
    };
    let mut o = ToolOffsets {
        task_cgroups: field("task_struct", &["cgroups"]),
        css_set_dfl_cgrp: field("css_set", &["dfl_cgrp"]),
        cgroup_kn: field("cgroup", &["kn"]),
        cgroup_level: field("cgroup", &["level"]),
        cgroup_ancestors: field("cgroup", &["ancestors"]),
        kernfs_node_id: field("kernfs_node", &["id"]),
        task_nsproxy: field("task_struct", &["nsproxy"]),
        nsproxy_pid_ns: field("nsproxy", &["pid_ns_for_children"]),
        pid_ns_inum: field("pid_namespace", &["ns"]) + field("ns_common", &["inum"]),
        task_real_parent: field("task_struct", &["real_parent"]),
        tcp_bytes_received: field("tcp_sock", &["bytes_received"]),
        tcp_bytes_acked: field("tcp_sock", &["bytes_acked"]),
        syscall_meta_name: field("syscall_metadata", &["name"]),
        syscall_meta_nr: field("syscall_metadata", &["syscall_nr"]),
        valid: 1,
        mm_arg_start: field("mm_struct", &["arg_start"]),
        mm_arg_end: field("mm_struct", &["arg_end"]),
        skb_cb: field("sk_buff", &["cb"]),
        tcp_skb_cb_gso_segs: field("tcp_skb_cb", &["tcp_gso_segs"]),
    };
    if missing.iter().any(|m| m.starts_with("cgroup") || m.starts_with("css_set") || m.starts_with("kernfs")) {
        o.valid = 0;
    }
    Ok((o, missing))
}

/// The offsets from a task to the socket behind one of its file
/// descriptors: `task_struct.files`, `files_struct.fdt`, `fdtable.max_fds`,
/// `fdtable.fd`, `file.private_data`, `socket.sk` (tcpaccept). Parsed once
/// per process.
pub fn fd_socket_offsets() -> Result<[u32; 6], ProbeError> {
    static CACHE: std::sync::OnceLock<Result<[u32; 6], String>> = std::sync::OnceLock::new();
    from_vmlinux(&CACHE, |data| {
        let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
        let mut out = [0u32; 6];
        let fields = [
            ("task_struct", "files"),
            ("files_struct", "fdt"),
            ("fdtable", "max_fds"),
            ("fdtable", "fd"),
            ("file", "private_data"),
            ("socket", "sk"),
        ];
        for (slot, (ty, name)) in out.iter_mut().zip(fields) {
            *slot =
                btf.struct_by_name(ty).and_then(|id| btf.member_offset(id, name, 0)).map(|bits| bits / 8).ok_or_else(
                    || format!("the kernel's BTF has no field {ty}.{name}, needed to find an accepted socket"),
                )?;
        }
        Ok(out)
    })
}

/// The offsets from a task to its mount namespace's inode number:
/// `task_struct.nsproxy`, `nsproxy.mnt_ns`, `mnt_namespace.ns` +
/// `ns_common.inum` (mountsnoop); `None` when the BTF lacks one.
pub fn mnt_ns_offsets() -> Result<Option<[u32; 3]>, ProbeError> {
    static CACHE: std::sync::OnceLock<Result<Option<[u32; 3]>, String>> = std::sync::OnceLock::new();
    from_vmlinux(&CACHE, |data| {
        let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
        let at =
            |ty: &str, name: &str| btf.struct_by_name(ty).and_then(|id| btf.member_offset(id, name, 0)).map(|b| b / 8);
        Ok((|| {
            Some([
                at("task_struct", "nsproxy")?,
                at("nsproxy", "mnt_ns")?,
                at("mnt_namespace", "ns")? + at("ns_common", "inum")?,
            ])
        })())
    })
}

/// The offsets hardirqs and runqlen read: `irqaction.name`, and the path
/// from a task to its CPU's `struct rq` (see
/// [`perfkit_probes_common::runqlen::RunqlenConfig`]).
pub fn aggregate_offsets() -> Result<(u32, perfkit_probes_common::runqlen::RunqlenConfig), ProbeError> {
    static CACHE: std::sync::OnceLock<Result<(u32, perfkit_probes_common::runqlen::RunqlenConfig), String>> =
        std::sync::OnceLock::new();
    from_vmlinux(&CACHE, aggregate_offsets_from)
}

fn aggregate_offsets_from(data: &[u8]) -> Result<(u32, perfkit_probes_common::runqlen::RunqlenConfig), String> {
    use perfkit_probes_common::runqlen::{NO_RQ_FIELD, RunqlenConfig};
    let btf = Btf::parse(data).ok_or_else(|| format!("{VMLINUX_BTF} is not BTF this perfkit reads"))?;
    let find = |ty: &str, name: &str| -> Option<u32> {
        btf.struct_by_name(ty).and_then(|id| btf.member_offset(id, name, 0)).map(|bits| bits / 8)
    };
    let field =
        |ty: &str, name: &str| find(ty, name).ok_or_else(|| format!("the kernel's BTF has no field {ty}.{name}"));
    let irqaction_name = field("irqaction", "name")?;
    let runq = RunqlenConfig {
        task_cfs_rq: field("task_struct", "se")? + field("sched_entity", "cfs_rq")?,
        // Without group scheduling a task's queue is its CPU's own `rq.cfs`.
        cfs_rq_rq: find("cfs_rq", "rq").unwrap_or(NO_RQ_FIELD),
        rq_cfs: field("rq", "cfs")?,
        rq_nr_running: field("rq", "nr_running")?,
    };
    Ok((irqaction_name, runq))
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// A BTF blob with an index of where each type record starts.
struct Btf<'a> {
    types: &'a [u8],
    strings: &'a [u8],
    /// Offset in `types` of type id `i + 1`.
    starts: Vec<u32>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

impl<'a> Btf<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        if data.get(..2)? != [0x9f, 0xeb] {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let (type_off, type_len) = (u32_at(data, 8)? as usize, u32_at(data, 12)? as usize);
        let (str_off, str_len) = (u32_at(data, 16)? as usize, u32_at(data, 20)? as usize);
        let types = data.get(hdr_len.checked_add(type_off)?..hdr_len.checked_add(type_off)?.checked_add(type_len)?)?;
        let strings = data.get(hdr_len.checked_add(str_off)?..hdr_len.checked_add(str_off)?.checked_add(str_len)?)?;
        let mut starts = Vec::with_capacity(types.len() / 16);
        let mut at = 0usize;
        while at + 12 <= types.len() {
            starts.push(at as u32);
            let info = u32_at(types, at + 4)?;
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                _ => 0,
            };
            at += 12 + extra;
        }
        Some(Self { types, strings, starts })
    }

    fn name(&self, off: u32) -> &'a [u8] {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    }

    /// (name offset, kind, vlen, kind flag, size or type, record offset).
    fn record(&self, id: u32) -> Option<(u32, u32, usize, bool, u32, usize)> {
        let at = *self.starts.get((id as usize).checked_sub(1)?)? as usize;
        let info = u32_at(self.types, at + 4)?;
        Some((
            u32_at(self.types, at)?,
            (info >> 24) & 0x1f,
            (info & 0xffff) as usize,
            info >> 31 != 0,
            u32_at(self.types, at + 8)?,
            at,
        ))
    }

    fn find(&self, name: &str, kinds: &[u32]) -> Option<u32> {
        (1..=self.starts.len() as u32)
            .find(|&id| self.record(id).is_some_and(|(n, k, ..)| kinds.contains(&k) && self.name(n) == name.as_bytes()))
    }

    fn struct_by_name(&self, name: &str) -> Option<u32> {
        self.find(name, &[KIND_STRUCT])
    }

    fn enum_by_name(&self, name: &str) -> Option<u32> {
        self.find(name, &[KIND_ENUM, KIND_ENUM64])
    }

    /// Whether enum `id` has an enumerator `name`.
    fn enum_has(&self, id: u32, name: &str) -> bool {
        let Some((_, kind, vlen, _, _, at)) = self.record(id) else { return false };
        let entry = if kind == KIND_ENUM64 { 12 } else { 8 };
        (0..vlen).any(|i| u32_at(self.types, at + 12 + entry * i).is_some_and(|n| self.name(n) == name.as_bytes()))
    }

    /// Follows typedefs and qualifiers to the type itself.
    fn resolve(&self, mut id: u32) -> Option<u32> {
        for _ in 0..16 {
            let (_, kind, _, _, next, _) = self.record(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => id = next,
                _ => return Some(id),
            }
        }
        None
    }

    /// The bit offset of member `name` in struct or union `id`, looking
    /// inside anonymous members as C does.
    fn member_offset(&self, id: u32, name: &str, depth: u32) -> Option<u32> {
        if depth > 8 {
            return None;
        }
        let (_, kind, vlen, kflag, _, at) = self.record(self.resolve(id)?)?;
        if kind != KIND_STRUCT && kind != KIND_UNION {
            return None;
        }
        for i in 0..vlen {
            let m = at + 12 + 12 * i;
            let (mname, mtype, moff) = (u32_at(self.types, m)?, u32_at(self.types, m + 4)?, u32_at(self.types, m + 8)?);
            let bits = if kflag { moff & 0x00ff_ffff } else { moff };
            if mname == 0 {
                if let Some(inner) = self.member_offset(mtype, name, depth + 1) {
                    return Some(bits + inner);
                }
            } else if self.name(mname) == name.as_bytes() {
                return Some(bits);
            }
        }
        None
    }

    /// How many arguments a tracepoint passes to raw tracepoint programs:
    /// its `btf_trace_NAME` typedef is a pointer to a function whose first
    /// parameter is the context.
    fn tracepoint_args(&self, tracepoint: &str) -> Option<usize> {
        let mut id = self.find(&format!("btf_trace_{tracepoint}"), &[KIND_TYPEDEF])?;
        for _ in 0..4 {
            let (_, kind, vlen, _, next, _) = self.record(id)?;
            match kind {
                KIND_TYPEDEF | KIND_PTR => id = next,
                KIND_FUNC_PROTO => return Some(vlen.saturating_sub(1)),
                _ => return None,
            }
        }
        None
    }
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
        // vm_start leads vm_area_struct, inside an anonymous union on 6.x:
        // anonymous members are searched.
        let btf = Btf::parse(&data).unwrap();
        let vma = btf.struct_by_name("vm_area_struct").unwrap();
        assert_eq!(btf.member_offset(vma, "vm_start", 0), Some(0));
        assert_eq!(btf.member_offset(vma, "vm_end", 0), Some(64));
    }

    #[test]
    fn this_kernels_tool_offsets_are_found() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else { return };
        let (o, missing) = tool_offsets_from(&data).unwrap();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(o.valid, 1);
        assert!(o.tcp_bytes_received > 0 && o.tcp_bytes_acked > 0 && o.task_real_parent > 0);
    }

    #[test]
    fn this_kernels_irq_and_run_queue_offsets_are_found() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else { return };
        let (name, runq) = aggregate_offsets_from(&data).unwrap();
        // `irqaction.name` comes after the handler and its data; `rq`
        // begins with its counters, its CFS queue comes later.
        assert!(name > 0);
        assert!(runq.task_cfs_rq > 0 && runq.rq_nr_running < runq.rq_cfs);
    }

    /// A BTF blob with a `sched_process_exit` tracepoint prototype of
    /// `exit_args` arguments, an `enum bpf_func_id` of `helpers`, and, with
    /// `mem_alloc`, a `struct bpf_mem_alloc`.
    fn synthetic_btf(exit_args: u32, helpers: &[&str], mem_alloc: bool) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| {
            let at = strings.len() as u32;
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            at
        };
        let (long, typedef, func_id) = (name("long"), name("btf_trace_sched_process_exit"), name("bpf_func_id"));
        let mem_alloc_name = name("bpf_mem_alloc");
        let helper_names: Vec<u32> = helpers.iter().map(|h| name(h)).collect();
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_le_bytes()));
        let info = |kind: u32, vlen: u32| (kind << 24) | vlen;
        push(&[long, info(KIND_INT, 0), 8, 64]); // 1: long
        push(&[0, info(KIND_PTR, 0), 1]); // 2: long *
        // 3: void (*)(void *ctx, args...): the context, then the arguments.
        push(&[0, info(KIND_FUNC_PROTO, exit_args + 1), 0]);
        for _ in 0..=exit_args {
            push(&[0, 2]);
        }
        push(&[0, info(KIND_PTR, 0), 3]); // 4
        push(&[typedef, info(KIND_TYPEDEF, 0), 4]); // 5
        push(&[func_id, info(KIND_ENUM, helper_names.len() as u32), 4]); // 6
        for (i, n) in helper_names.iter().enumerate() {
            push(&[*n, i as u32]);
        }
        if mem_alloc {
            push(&[mem_alloc_name, info(KIND_STRUCT, 0), 8]); // 7
        }
        let mut blob = vec![0x9f, 0xeb, 1, 0];
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend(types);
        blob.extend(strings);
        blob
    }

    #[test]
    fn the_exit_tracepoints_arguments_and_the_helpers_are_read_from_btf() {
        // 5.10 to 6.12: sched_process_exit(task); no bpf_loop on 5.10.
        let old = features_from(&synthetic_btf(1, &["BPF_FUNC_unspec", "BPF_FUNC_map_lookup_elem"], false)).unwrap();
        assert_eq!(old, KernelFeatures { exit_group_dead: false, bpf_loop: false, lazy_hash_maps: false });
        let v61 = features_from(&synthetic_btf(1, &["BPF_FUNC_unspec", "BPF_FUNC_loop"], true)).unwrap();
        assert_eq!(v61, KernelFeatures { exit_group_dead: false, bpf_loop: true, lazy_hash_maps: true });
        // Newer: sched_process_exit(task, group_dead).
        let new = features_from(&synthetic_btf(2, &["BPF_FUNC_loop"], true)).unwrap();
        assert_eq!(new, KernelFeatures { exit_group_dead: true, bpf_loop: true, lazy_hash_maps: true });
        assert_eq!(new.programs().exit, "track_exit_group_dead");
        assert_eq!(old.programs().on_cpu, "on_cpu_sample_loopless");
    }

    #[test]
    fn this_kernels_features_are_found() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else { return };
        let f = features_from(&data).unwrap();
        // bpf_loop is in every kernel since 5.17; this one is newer.
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (v.next().unwrap(), v.next().unwrap());
        assert_eq!(f.bpf_loop, (major, minor) >= (5, 17), "{release}: {f}");
        assert_eq!(f.lazy_hash_maps, (major, minor) >= (6, 1), "{release}: {f}");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(features_from(b"junk").is_err());
        assert!(offsets_from(b"not btf at all").is_err());
        assert!(offsets_from(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut truncated = vec![0x9f, 0xeb, 1, 0, 24, 0, 0, 0];
        truncated.extend([0, 0, 0, 0, 100, 0, 0, 0, 100, 0, 0, 0, 10, 0, 0, 0]);
        assert!(offsets_from(&truncated).is_err());
    }
}
