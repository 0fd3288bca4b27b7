//! Types shared by the kernel side (`perfkit-probes-ebpf`) and the user side
//! (`perfkit-probes`) of perfkit's eBPF probes.
//!
//! Everything here is `#[repr(C)]` plain data: the layout is the contract
//! between the BPF object and the loader, so a change here requires
//! rebuilding the object with `cargo xtask build-ebpf`. One module per
//! concern, used by both sides:
//!
//! - [`filter`]: which tasks a program looks at (processes and their
//!   descendants, threads, a cgroup, or everything).
//! - [`kernel`]: the kernel structure offsets the loader reads from BTF.
//! - [`unwind`]: the compact unwind tables compiled from DWARF CFI, and
//!   how a walked frame is encoded.
//! - [`sampler`]: the on-CPU and off-CPU stack counters.
//! - [`tools`]: the latency histograms and event records of the
//!   bcc-style tools.
//! - [`ufunc`]: the user-function tools' probes, counts and histogram.
//! - [`trace`]: trace and argdist's events.
#![no_std]

/// Length of a task's command name, as the kernel's `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// Names of the programs, maps and globals in the object, used by the
/// loader.
pub mod names {
    /// perf_event program on every CPU: on-CPU samples.
    pub const ON_CPU_PROGRAM: &str = "on_cpu_sample";
    /// Tracepoint sched:sched_process_fork: follows descendants.
    pub const FORK_PROGRAM: &str = "track_fork";
    /// Tracepoint sched:sched_process_exit(task): forgets exited tasks
    /// (kernels whose tracepoint has one argument).
    pub const EXIT_PROGRAM: &str = "track_exit";
    /// The same on kernels whose sched_process_exit also passes
    /// `group_dead` (Linux 6.16 and newer).
    pub const EXIT_GROUP_DEAD_PROGRAM: &str = "track_exit_group_dead";
    /// Tracepoint sched:sched_process_exec: a process's mappings change.
    pub const EXEC_PROGRAM: &str = "track_exec";
    /// Tracepoint sched:sched_switch: off-CPU time.
    pub const OFF_CPU_PROGRAM: &str = "off_cpu_switch";
    /// [`ON_CPU_PROGRAM`] for kernels without `bpf_loop` (before 5.17):
    /// walks a few frames per run and tail-calls
    /// [`ON_CPU_MORE_PROGRAM`] for the rest.
    pub const ON_CPU_LOOPLESS_PROGRAM: &str = "on_cpu_sample_loopless";
    /// perf_event program reached only by tail call: continues an
    /// on-CPU walk.
    pub const ON_CPU_MORE_PROGRAM: &str = "on_cpu_walk_more";
    /// [`OFF_CPU_PROGRAM`] for kernels without `bpf_loop`.
    pub const OFF_CPU_LOOPLESS_PROGRAM: &str = "off_cpu_switch_loopless";
    /// Raw tracepoint program reached only by tail call: continues an
    /// off-CPU walk.
    pub const OFF_CPU_MORE_PROGRAM: &str = "off_cpu_walk_more";
    /// Program array whose one entry is [`ON_CPU_MORE_PROGRAM`]. (A
    /// program array serves one program type, so each continuation has
    /// its own.)
    pub const WALK_MORE_ON_CPU: &str = "WALK_MORE_ON_CPU";
    /// Program array whose one entry is [`OFF_CPU_MORE_PROGRAM`].
    pub const WALK_MORE_OFF_CPU: &str = "WALK_MORE_OFF_CPU";
    /// Per-CPU keys of the walks in progress across tail calls.
    pub const WALK_PENDING: &str = "WALK_PENDING";

    /// runqlat: sched_wakeup, sched_wakeup_new, sched_switch.
    pub const RUNQ_WAKEUP_PROGRAM: &str = "runq_wakeup";
    /// runqlat: sched_wakeup_new.
    pub const RUNQ_WAKEUP_NEW_PROGRAM: &str = "runq_wakeup_new";
    /// runqlat: sched_switch.
    pub const RUNQ_SWITCH_PROGRAM: &str = "runq_switch";
    /// biolatency, biosnoop: block:block_rq_insert.
    pub const BIO_INSERT_PROGRAM: &str = "bio_insert";
    /// block:block_rq_issue.
    pub const BIO_ISSUE_PROGRAM: &str = "bio_issue";
    /// block:block_rq_complete.
    pub const BIO_COMPLETE_PROGRAM: &str = "bio_complete";
    /// syscount: raw_syscalls:sys_enter.
    pub const SYS_ENTER_PROGRAM: &str = "sys_enter_count";
    /// syscount: raw_syscalls:sys_exit.
    pub const SYS_EXIT_PROGRAM: &str = "sys_exit_count";
    /// The syscall-name reader (raw_syscalls:sys_enter, one thread).
    pub const SYSCALL_NAMES_PROGRAM: &str = "syscall_names";
    /// execsnoop: syscalls:sys_enter_execve.
    pub const EXEC_ENTER_PROGRAM: &str = "exec_enter";
    /// execsnoop: syscalls:sys_enter_execveat.
    pub const EXECAT_ENTER_PROGRAM: &str = "execat_enter";
    /// execsnoop: syscalls:sys_exit_execve and sys_exit_execveat.
    pub const EXEC_EXIT_PROGRAM: &str = "exec_exit";
    /// execsnoop: sched:sched_process_exec (the new image).
    pub const EXEC_IMAGE_PROGRAM: &str = "exec_image";
    /// opensnoop: syscalls:sys_enter_openat.
    pub const OPENAT_ENTER_PROGRAM: &str = "openat_enter";
    /// opensnoop: syscalls:sys_enter_open.
    pub const OPEN_ENTER_PROGRAM: &str = "open_enter";
    /// opensnoop: syscalls:sys_exit_open and sys_exit_openat.
    pub const OPEN_EXIT_PROGRAM: &str = "open_exit";
    /// tcplife: sock:inet_sock_set_state.
    pub const TCP_STATE_PROGRAM: &str = "tcp_state";
    /// tcpretrans: tcp:tcp_retransmit_skb.
    pub const TCP_RETRANS_PROGRAM: &str = "tcp_retrans";

    /// tcpconnect, tcpaccept: sock:inet_sock_set_state (active and
    /// passive opens).
    pub const TCP_CONN_PROGRAM: &str = "tcp_conn";
    /// tcpaccept: syscalls:sys_exit_accept(4), naming the accepting process.
    pub const TCP_ACCEPT_RET_PROGRAM: &str = "tcp_accept_ret";
    /// oomkill: oom:mark_victim.
    pub const OOM_VICTIM_PROGRAM: &str = "oom_victim";
    /// mountsnoop: syscalls:sys_enter_mount.
    pub const MOUNT_ENTER_PROGRAM: &str = "mount_enter";
    /// mountsnoop: syscalls:sys_enter_umount.
    pub const UMOUNT_ENTER_PROGRAM: &str = "umount_enter";
    /// mountsnoop: syscalls:sys_exit_mount and sys_exit_umount.
    pub const MOUNT_EXIT_PROGRAM: &str = "mount_exit";
    /// capable: a kprobe on cap_capable.
    pub const CAPABLE_PROGRAM: &str = "capable_check";
    /// Global [`TcpConnConfig`](super::tools::TcpConnConfig).
    pub const TCP_CONN_CONFIG: &str = "TCP_CONN_CONFIG";
    /// tcpconnect and tcpaccept events.
    pub const TCP_CONN_EVENTS: &str = "TCP_CONN_EVENTS";
    /// tcpaccept: handshakes completed, by socket, until accepted.
    pub const TCP_ACCEPT_PENDING: &str = "TCP_ACCEPT_PENDING";
    /// tcpconnect and tcpaccept counts by [`TcpPortKey`](super::tools::TcpPortKey).
    pub const TCP_PORT_COUNTS: &str = "TCP_PORT_COUNTS";
    /// Global [`OomFields`](super::tools::OomFields).
    pub const OOM_FIELDS: &str = "OOM_FIELDS";
    /// oomkill events.
    pub const OOM_EVENTS: &str = "OOM_EVENTS";
    /// Global [`MountConfig`](super::tools::MountConfig).
    pub const MOUNT_CONFIG: &str = "MOUNT_CONFIG";
    /// mountsnoop: calls in flight, by thread.
    pub const MOUNT_START: &str = "MOUNT_START";
    /// mountsnoop events.
    pub const MOUNT_EVENTS: &str = "MOUNT_EVENTS";
    /// Global [`CapableConfig`](super::tools::CapableConfig).
    pub const CAPABLE_CONFIG: &str = "CAPABLE_CONFIG";
    /// capable events.
    pub const CAPABLE_EVENTS: &str = "CAPABLE_EVENTS";

    /// Global [`ToolConfig`](super::tools::ToolConfig).
    pub const TOOL_CONFIG: &str = "TOOL_CONFIG";
    /// Global [`ToolOffsets`](super::tools::ToolOffsets).
    pub const TOOL_OFFSETS: &str = "TOOL_OFFSETS";
    /// Global [`BlockFields`](super::tools::BlockFields).
    pub const BLOCK_FIELDS: &str = "BLOCK_FIELDS";
    /// Global [`SockFields`](super::tools::SockFields).
    pub const SOCK_FIELDS: &str = "SOCK_FIELDS";
    /// Hash map from [`HistKey`](super::tools::HistKey) to a count:
    /// runqlat.
    pub const RUNQ_HIST: &str = "RUNQ_HIST";
    /// Hash map from a thread id to when it was enqueued.
    pub const RUNQ_START: &str = "RUNQ_START";
    /// biolatency histograms.
    pub const BIO_HIST: &str = "BIO_HIST";
    /// I/O in flight.
    pub const BIO_START: &str = "BIO_START";
    /// biosnoop events.
    pub const BIO_EVENTS: &str = "BIO_EVENTS";
    /// syscount counters.
    pub const SYS_COUNTS: &str = "SYS_COUNTS";
    /// syscount: when each thread entered its syscall.
    pub const SYS_START: &str = "SYS_START";
    /// Syscall names, by number.
    pub const SYSCALL_NAMES: &str = "SYSCALL_NAMES";
    /// LRU hash map from a process (or thread) id to its `comm` when the
    /// tool first counted it: runqlat and syscount, so that processes that
    /// have exited keep their names.
    pub const TOOL_COMMS: &str = "TOOL_COMMS";
    /// The syscall-name reader's request.
    pub const SYSCALL_NAMES_REQUEST: &str = "SYSCALL_NAMES_REQUEST";
    /// Code bytes the syscall-name reader copied.
    pub const SYSCALL_NAMES_CODE: &str = "SYSCALL_NAMES_CODE";
    /// execsnoop events.
    pub const EXEC_EVENTS: &str = "EXEC_EVENTS";
    /// opensnoop: opens in flight.
    pub const OPEN_START: &str = "OPEN_START";
    /// opensnoop events.
    pub const OPEN_EVENTS: &str = "OPEN_EVENTS";
    /// tcplife: sockets' births.
    pub const TCP_BIRTH: &str = "TCP_BIRTH";
    /// tcplife events.
    pub const TCP_LIFE_EVENTS: &str = "TCP_LIFE_EVENTS";
    /// tcpretrans events.
    pub const TCP_RETRANS_EVENTS: &str = "TCP_RETRANS_EVENTS";
    /// tcpretrans: counts by TCP state.
    pub const TCP_RETRANS_COUNTS: &str = "TCP_RETRANS_COUNTS";
    /// Per-CPU array of [`ToolStats`](super::tools::ToolStats), one per tool
    /// (`TOOL_*`).
    pub const TOOL_STATS: &str = "TOOL_STATS";

    /// Global [`FilterConfig`](super::filter::FilterConfig).
    pub const FILTER: &str = "FILTER";
    /// Global [`KernelOffsets`](super::kernel::KernelOffsets).
    pub const OFFSETS: &str = "OFFSETS";
    /// Global [`SamplerConfig`](super::sampler::SamplerConfig).
    pub const SAMPLER: &str = "SAMPLER";
    /// Hash map of selected process ids (`u32` → `u8`).
    pub const TARGET_TGIDS: &str = "TARGET_TGIDS";
    /// Hash map of selected thread ids (`u32` → `u8`).
    pub const TARGET_TIDS: &str = "TARGET_TIDS";
    /// Hash map from [`SampleKey`](super::sampler::SampleKey) to a count.
    pub const COUNTS: &str = "COUNTS";
    /// Hash map from a stack hash to a [`StackTrace`](super::sampler::StackTrace).
    pub const STACKS: &str = "STACKS";
    /// Per-CPU array with one [`SampleStats`](super::sampler::SampleStats).
    pub const STATS: &str = "STATS";
    /// Hash map from a process id to its
    /// [`ProcMaps`](super::unwind::ProcMaps).
    pub const PROCS: &str = "PROCS";
    /// Array of `u32` file states (`FILE_*`), by file id.
    pub const FILE_STATE: &str = "FILE_STATE";
    /// Hash map from [`PageKey`](super::unwind::PageKey) to
    /// [`PageInfo`](super::unwind::PageInfo).
    pub const PAGES: &str = "PAGES";
    /// Array of [`Row`](super::unwind::Row).
    pub const ROWS: &str = "ROWS";
    /// Ring buffer of [`Request`](super::unwind::Request)s for unwind tables.
    pub const REQUESTS: &str = "REQUESTS";
    /// Ring buffer of walks to finish in user space (`sampler::LateWalk`).
    pub const LATE: &str = "LATE";
    /// Hash map from thread id to [`OffCpuStart`](super::sampler::OffCpuStart).
    pub const OFF_CPU_START: &str = "OFF_CPU_START";
    /// hardirqs: irq_handler_entry (raw).
    pub const HARDIRQ_ENTRY_PROGRAM: &str = "hardirq_entry";
    /// hardirqs: irq_handler_exit (raw).
    pub const HARDIRQ_EXIT_PROGRAM: &str = "hardirq_exit";
    /// softirqs: softirq_entry (raw).
    pub const SOFTIRQ_ENTRY_PROGRAM: &str = "softirq_entry";
    /// softirqs: softirq_exit (raw).
    pub const SOFTIRQ_EXIT_PROGRAM: &str = "softirq_exit";
    /// runqlen: a perf_event program sampling each CPU's run queue.
    pub const RUNQLEN_PROGRAM: &str = "runqlen_sample";
    /// Global [`super::irqs::IrqConfig`].
    pub const IRQ_CONFIG: &str = "IRQ_CONFIG";
    /// Global [`super::runqlen::RunqlenConfig`].
    pub const RUNQLEN_CONFIG: &str = "RUNQLEN_CONFIG";
    /// Per-CPU hash map from [`super::irqs::IrqKey`] to
    /// [`super::tools::HistValue`]: hardirqs and softirqs.
    pub const IRQ_HIST: &str = "IRQ_HIST";
    /// Per-CPU array of [`super::irqs::IrqStart`] (one entry).
    pub const IRQ_START: &str = "IRQ_START";
    /// Per-CPU array of `u64`: samples by run-queue length.
    pub const RUNQLEN_HIST: &str = "RUNQLEN_HIST";
    /// Per-CPU array of [`super::tools::ToolStats`], one slot per
    /// aggregating tool (`AGG_*`).
    pub const AGG_STATS: &str = "AGG_STATS";
}

/// Which tasks the programs look at.
pub mod filter {
    /// Every task on the machine, kernel threads included.
    pub const MODE_ALL: u32 = 0;
    /// The processes in `TARGET_TGIDS` (all their threads), and, with
    /// `follow_children`, every process they create.
    pub const MODE_PROCESSES: u32 = 1;
    /// The threads in `TARGET_TIDS`.
    pub const MODE_THREADS: u32 = 2;
    /// The tasks in a cgroup v2 group and the groups below it.
    pub const MODE_CGROUP: u32 = 3;

    /// A process the user named, as its value in `TARGET_TGIDS` (a
    /// thread's in `TARGET_TIDS`).
    pub const NAMED: u8 = 1;
    /// A process followed because a selected one created it: it leaves
    /// `TARGET_TGIDS` when it exits, so that its id, once reused, selects
    /// nothing.
    pub const FOLLOWED: u8 = 2;

    /// The selection, set by the loader before the object loads.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FilterConfig {
        /// One of the `MODE_*` constants.
        pub mode: u32,
        /// With [`MODE_PROCESSES`]: processes forked by a selected process
        /// are selected too (perf's inherit).
        pub follow_children: u32,
        /// With [`MODE_CGROUP`]: the group's id (the inode number of its
        /// directory in the cgroup v2 file system).
        pub cgroup_id: u64,
        /// With [`MODE_CGROUP`]: the group's depth below the root (the root
        /// is 0), to compare a task's ancestor at that depth.
        pub cgroup_level: u32,
        /// Padding, always zero.
        pub _pad: u32,
    }
}

/// Offsets of the few kernel structure fields the programs read, found by
/// the loader in the kernel's BTF (`/sys/kernel/btf/vmlinux`): the object
/// needs no kernel headers and no CO-RE support in the compiler.
pub mod kernel {
    /// Byte offsets of fields, 0 when the field is unused.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct KernelOffsets {
        /// `task_struct.flags`.
        pub task_flags: u32,
        /// `task_struct.mm`.
        pub task_mm: u32,
        /// `task_struct.group_leader`.
        pub task_group_leader: u32,
        /// `task_struct.comm`.
        pub task_comm: u32,
        /// `task_struct.pid` (the thread id).
        pub task_pid: u32,
        /// `task_struct.tgid` (the process id).
        pub task_tgid: u32,
        /// `task_struct.__state` (`state` before Linux 5.14).
        pub task_state: u32,
        /// `task_struct.stack`: the task's kernel stack, whose top holds
        /// the user registers saved on entry to the kernel.
        pub task_stack: u32,
        /// Non-zero once the loader filled the offsets in.
        pub valid: u32,
    }

    /// `PF_KTHREAD` in `task_struct.flags`: a kernel thread (no user stack).
    pub const PF_KTHREAD: u32 = 0x0020_0000;
}

/// Unwind tables: DWARF CFI compiled into rows the BPF program can follow
/// without evaluating DWARF, each process's executable mappings, and the
/// encoding of walked frames.
///
/// A file's rows are addressed by *file offset*, not by virtual address:
/// the program knows a frame's mapping (from `PROCS`, which user space
/// fills from `/proc/PID/maps`), so `pc - start + offset` is the file
/// offset, whatever the linker's segment layout. The rows of a file are
/// grouped in pages of 64 KiB of file offsets: `PAGES[(file, offset >>
/// 16)]` gives the slice of `ROWS` to binary-search, whose first row is the
/// rule in force at the page's start.
pub mod unwind {
    /// Bits of file offset per page.
    pub const PAGE_BITS: u32 = 16;
    /// Rows searched per page at most (the binary search's bound).
    pub const MAX_ROWS_PER_PAGE: u32 = 1 << 14;

    /// No CFI covers this pc: walk one frame with the frame pointer.
    pub const CFA_NONE: u8 = 0;
    /// CFA = RSP + offset.
    pub const CFA_RSP: u8 = 1;
    /// CFA = RBP + offset.
    pub const CFA_RBP: u8 = 2;
    /// A PLT entry: CFA = RSP + 8, + 8 more once `(rip & 15) >= offset`
    /// (past the entry's push), the expression every x86-64 linker emits.
    pub const CFA_PLT: u8 = 3;
    /// The return address is undefined: the outermost frame (`_start`,
    /// a thread's start routine).
    pub const CFA_END: u8 = 4;
    /// A rule the program cannot follow (a DWARF expression, as in a
    /// signal trampoline; a frame address in another register; an offset
    /// beyond the scaled rules' reach): the walk stops here.
    pub const CFA_UNSUPPORTED: u8 = 5;
    /// CFA = RBP + offset, where RBP may hold a frame on another stack: Go's
    /// runtime calling on from the g0 or signal stack (`systemstack`,
    /// `morestack`, `mcall`), whose caller is the goroutine's frame that
    /// RBP still points at. The CFA may then lie below SP, at most
    /// [`MAX_STACK_SWITCHES`] times per walk.
    pub const CFA_STACK_SWITCH: u8 = 6;
    /// The most stack switches one walk follows.
    pub const MAX_STACK_SWITCHES: u32 = 4;
    /// CFA = RSP + 8 × offset: a frame of 32 KiB or more (a large local
    /// array), whose offset does not fit 16 bits; up to 256 KiB.
    pub const CFA_RSP_X8: u8 = 7;
    /// CFA = RBP + 8 × offset, as [`CFA_RSP_X8`].
    pub const CFA_RBP_X8: u8 = 8;

    /// RBP keeps its value in the caller.
    pub const RBP_SAME: u8 = 0;
    /// The caller's RBP is saved at CFA + offset.
    pub const RBP_AT_CFA: u8 = 1;
    /// The caller's RBP cannot be recovered (a rule the program cannot
    /// follow); it is kept, which matters only to a caller that uses it.
    pub const RBP_UNKNOWN: u8 = 2;

    /// One unwind rule, in force from `pc_low` (offset in its page) to the
    /// next row.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Row {
        /// File offset of the row's first byte, modulo the page size
        /// (0 for the row carried over from the previous page).
        pub pc_low: u16,
        /// One of the `CFA_*` constants.
        pub cfa: u8,
        /// One of the `RBP_*` constants.
        pub rbp: u8,
        /// The CFA's offset from its register.
        pub cfa_offset: i16,
        /// With [`RBP_AT_CFA`]: where the caller's RBP is, from the CFA.
        pub rbp_offset: i16,
    }

    /// Key of the pages map.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PageKey {
        /// The file's id.
        pub file: u32,
        /// File offset >> [`PAGE_BITS`].
        pub page: u32,
    }

    /// The rows of one page: `ROWS[start .. start + count]`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PageInfo {
        /// Index of the first row.
        pub start: u32,
        /// Rows in the page, at least 1.
        pub count: u32,
    }

    /// `FILE_STATE[id]`: the file's table is not loaded.
    pub const FILE_PENDING: u32 = 0;
    /// The file's rows are loaded.
    pub const FILE_LOADED: u32 = 1;
    /// The file has no CFI (or its table did not fit): frames in it are
    /// walked with frame pointers.
    pub const FILE_NO_CFI: u32 = 2;
    /// The file's table is built when a walk first reaches a frame in it
    /// (a large file, with the whole machine sampled): the kernel side
    /// sends a [`REQUEST_TABLE`] and sets the state to [`FILE_PENDING`];
    /// until the table is loaded, frames there are walked with frame
    /// pointers.
    pub const FILE_ON_DEMAND: u32 = 3;

    /// File ids are below this (the size of `FILE_STATE`).
    pub const MAX_FILES: u32 = 1 << 16;
    /// The vDSO's file id.
    pub const VDSO_FILE_ID: u32 = 1;

    /// Executable mappings kept per process.
    pub const MAX_MAPPINGS: usize = 256;

    /// One executable file mapping of a process.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MapEntry {
        /// First address.
        pub start: u64,
        /// One past the last address.
        pub end: u64,
        /// The file offset of `start`.
        pub offset: u64,
        /// The file's id.
        pub file: u32,
        /// Padding, always zero.
        pub _pad: u32,
    }

    /// A process's executable file mappings, sorted by address.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct ProcMaps {
        /// Entries used.
        pub count: u32,
        /// Padding, always zero.
        pub _pad: u32,
        /// The mappings.
        pub maps: [MapEntry; MAX_MAPPINGS],
    }

    /// A sample met an address in no known mapping of its process (or a
    /// process without mappings yet): read its mappings.
    pub const REQUEST_MAPS: u32 = 1;
    /// A selected process called exec: its mappings are all new.
    pub const REQUEST_EXEC: u32 = 2;
    /// A walk reached a frame in a file whose state is
    /// [`FILE_ON_DEMAND`]: build its table. The request's `tgid` holds the
    /// file's id.
    pub const REQUEST_TABLE: u32 = 3;

    /// The kernel side asks user space for something.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Request {
        /// `REQUEST_*`.
        pub kind: u32,
        /// The process ([`REQUEST_TABLE`]: the file's id).
        pub tgid: u32,
    }

    /// A walked frame that is a place in a file: bit 63 set, the file id in
    /// bits 40..63, the file offset in bits 0..40. Frames without a known
    /// file (anonymous memory: JIT code; a mapping not yet known) are plain
    /// addresses, below 2^47.
    pub const FRAME_IN_FILE: u64 = 1 << 63;
    /// Bits of file offset in an encoded frame.
    pub const FRAME_OFFSET_BITS: u32 = 40;
    /// Largest file id an encoded frame holds.
    pub const MAX_FILE_ID: u32 = (1 << 23) - 1;

    /// Encodes a place in a file as a frame.
    #[inline(always)]
    pub const fn encode_frame(file: u32, offset: u64) -> u64 {
        FRAME_IN_FILE
            | ((file as u64 & MAX_FILE_ID as u64) << FRAME_OFFSET_BITS)
            | (offset & ((1 << FRAME_OFFSET_BITS) - 1))
    }

    /// The (file id, file offset) of an encoded frame, or `None` for a
    /// plain address.
    #[inline(always)]
    pub const fn decode_frame(frame: u64) -> Option<(u32, u64)> {
        if frame & FRAME_IN_FILE == 0 {
            return None;
        }
        Some((((frame >> FRAME_OFFSET_BITS) & MAX_FILE_ID as u64) as u32, frame & ((1 << FRAME_OFFSET_BITS) - 1)))
    }
}

/// The stack sampler (on-CPU) and the off-CPU tracker.
pub mod sampler {
    use super::COMM_LEN;

    /// Deepest stack walked, user and kernel alike.
    pub const MAX_FRAMES: usize = 128;

    /// Frames a loopless walk (kernels without `bpf_loop`) takes per
    /// program run; it tail-calls itself for the next ones, at most
    /// `MAX_FRAMES / FRAMES_PER_RUN - 1` times (the kernel allows 32).
    pub const FRAMES_PER_RUN: usize = 8;
    /// The walk slot of the perf event program (on-CPU samples).
    pub const WALK_ON_CPU: u32 = 0;
    /// The walk slot of the tracepoint programs (off-CPU time). A perf
    /// event can interrupt a tracepoint's program, so each has its own.
    pub const WALK_OFF_CPU: u32 = 1;

    /// Default entries of the counts map (allocated as used).
    pub const DEFAULT_COUNTS_ENTRIES: u32 = 1 << 18;
    /// Default entries of the stacks map (allocated as used).
    pub const DEFAULT_STACK_ENTRIES: u32 = 1 << 17;

    /// User stacks walked with frame pointers (`bpf_get_stack`).
    pub const UNWIND_FP: u32 = 0;
    /// User stacks walked with the unwind tables, frame pointers where a
    /// file has none.
    pub const UNWIND_TABLES: u32 = 1;

    /// How the sampler works, set by the loader.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SamplerConfig {
        /// `UNWIND_FP` or `UNWIND_TABLES`.
        pub unwind: u32,
        /// Non-zero: record kernel stacks.
        pub kernel_stacks: u32,
        /// Off-CPU: blocks shorter than this are not counted (ns).
        pub min_block_ns: u64,
        /// Off-CPU: blocks longer than this are not counted (ns).
        pub max_block_ns: u64,
        /// Off-CPU: the `STATE_*` bits of the switches to count.
        pub states: u32,
        /// Padding, always zero.
        pub _pad: u32,
    }

    /// The walk reached the outermost frame (or a frame-pointer chain's
    /// end): the stack is complete.
    pub const END_ROOT: u8 = 0;
    /// [`MAX_FRAMES`] frames were walked and more remain.
    pub const END_DEPTH: u8 = 1;
    /// A read of user memory failed (a stack or frame pointer into memory
    /// that is not there, or paged out).
    pub const END_READ: u8 = 2;
    /// A rule the program cannot follow (a signal frame).
    pub const END_UNSUPPORTED: u8 = 3;
    /// A frame-pointer step in code without CFI went nowhere (code built
    /// without frame pointers and without CFI).
    pub const END_NO_CFI: u8 = 4;
    /// A mapping or table was not known yet (a process that just started or
    /// mapped a library): frames there were walked with frame pointers, and
    /// the walk ended early.
    pub const END_PENDING: u8 = 5;
    /// The walk's own limits (loop budget, verifier bounds) ended it.
    pub const END_OTHER: u8 = 6;
    /// There is no user stack (a kernel thread).
    pub const END_NO_USER: u8 = 7;
    /// Number of `END_*` reasons.
    pub const END_REASONS: usize = 8;

    /// Key of the counts map: one unique (process, thread, names, stacks).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct SampleKey {
        /// Process id; 0 for the idle task.
        pub tgid: u32,
        /// Thread id.
        pub tid: u32,
        /// Hash of the user stack in `STACKS`; 0 for none.
        pub user_stack: u64,
        /// Hash of the kernel stack in `STACKS`; 0 for none.
        pub kernel_stack: u64,
        /// The thread's name, NUL-padded.
        pub comm: [u8; COMM_LEN],
        /// The process's name (its main thread's), NUL-padded.
        pub process_comm: [u8; COMM_LEN],
        /// How the user stack's walk ended (`END_*`).
        pub user_end: u8,
        /// [`KIND_ON_CPU`] (the count is samples) or [`KIND_OFF_CPU`] (the
        /// count is nanoseconds blocked).
        pub kind: u8,
        /// Non-zero when the user stack was walked but could not be kept
        /// (a full or failing stacks map).
        pub user_lost: u8,
        /// Padding, always zero.
        pub _pad: [u8; 5],
    }

    /// A [`SampleKey`] of on-CPU samples.
    pub const KIND_ON_CPU: u8 = 0;
    /// A [`SampleKey`] of off-CPU time.
    pub const KIND_OFF_CPU: u8 = 1;

    /// TASK_INTERRUPTIBLE, for [`SamplerConfig::states`].
    pub const STATE_INTERRUPTIBLE: u32 = 1;
    /// TASK_UNINTERRUPTIBLE, for [`SamplerConfig::states`].
    pub const STATE_UNINTERRUPTIBLE: u32 = 2;
    /// Preempted while runnable (state TASK_RUNNING), for
    /// [`SamplerConfig::states`].
    pub const STATE_PREEMPTED: u32 = 4;

    /// A stack, innermost frame first. User frames are encoded as
    /// [`unwind::encode_frame`](super::unwind::encode_frame) says (or plain
    /// addresses); kernel frames are addresses.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct StackTrace {
        /// Frames used.
        pub len: u32,
        /// Padding, always zero.
        pub _pad: u32,
        /// The frames.
        pub frames: [u64; MAX_FRAMES],
    }

    /// When a thread went off CPU, and the stacks it left with.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct OffCpuStart {
        /// `bpf_ktime_get_ns` at the switch.
        pub start_ns: u64,
        /// The key to add the blocked time to once it runs again.
        pub key: SampleKey,
    }

    /// Bytes of user stack copied with a [`LateWalk`]: whole pages from
    /// the one holding the resume SP upwards.
    pub const LATE_STACK_BYTES: usize = 16384;
    /// Pages of [`LATE_STACK_BYTES`].
    pub const LATE_STACK_PAGES: usize = LATE_STACK_BYTES / 4096;

    /// An on-CPU walk that reached, at frame `n`, a mapping not known yet
    /// or a file whose table was not loaded: the place to resume it from
    /// and a copy of the stack above, for user space to finish it once
    /// the mappings and tables are known. The sample is counted under
    /// `key` as the kernel walked it; user space moves that one count to
    /// the finished stack.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct LateWalk {
        /// The sample's key, exactly as counted.
        pub key: SampleKey,
        /// The frame the walk resumes at (frames before it are the
        /// kernel's).
        pub n: u32,
        /// Pages of `stack` read (from `stack_base`), 0 to
        /// [`LATE_STACK_PAGES`].
        pub pages: u32,
        /// The registers at frame `n`.
        pub pc: u64,
        /// SP at frame `n`.
        pub sp: u64,
        /// RBP at frame `n`.
        pub bp: u64,
        /// The address of `stack[0]`: SP rounded down to its page.
        pub stack_base: u64,
        /// The user stack from `stack_base`.
        pub stack: [u8; LATE_STACK_BYTES],
    }

    /// Counters kept per CPU by the programs. User space sums them over
    /// CPUs; each field only ever grows.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SampleStats {
        /// Samples of selected tasks.
        pub samples: u64,
        /// Samples of the idle task (system-wide runs).
        pub idle: u64,
        /// Stacks lost because the stacks map was full.
        pub stacks_full: u64,
        /// Samples not counted because the counts map was full.
        pub counts_full: u64,
        /// Stack reads or stores that failed for another reason.
        pub stack_errors: u64,
        /// The last such failure's (negative) errno.
        pub last_error: i64,
        /// Requests for mappings dropped (ring buffer full).
        pub requests_dropped: u64,
        /// Frames in memory with no known file mapping (JIT code, or a
        /// mapping user space had not read yet).
        pub unmapped_frames: u64,
        /// Frames walked with unwind tables.
        pub table_frames: u64,
        /// Frames walked with frame pointers.
        pub fp_frames: u64,
        /// Processes followed because a selected process created them.
        pub children: u64,
        /// Off-CPU: blocks counted.
        pub blocks: u64,
        /// Off-CPU: blocks whose start was lost (the start map was full).
        pub blocks_lost: u64,
        /// User stacks by how their walk ended (`END_*`).
        pub user_end: [u64; END_REASONS],
        /// On-CPU walks that met a mapping or table not known yet, sent
        /// to user space to be finished there ([`LateWalk`]).
        pub late_sent: u64,
        /// Such walks that could not be sent (the ring buffer was full):
        /// they keep the stack the kernel walked.
        pub late_dropped: u64,
    }

    impl SampleStats {
        /// Adds another CPU's counters to these.
        pub fn merge(&mut self, other: &SampleStats) {
            self.samples += other.samples;
            self.idle += other.idle;
            self.stacks_full += other.stacks_full;
            self.counts_full += other.counts_full;
            self.stack_errors += other.stack_errors;
            if other.last_error != 0 {
                self.last_error = other.last_error;
            }
            self.requests_dropped += other.requests_dropped;
            self.unmapped_frames += other.unmapped_frames;
            self.table_frames += other.table_frames;
            self.fp_frames += other.fp_frames;
            self.children += other.children;
            self.blocks += other.blocks;
            self.blocks_lost += other.blocks_lost;
            let mut i = 0;
            while i < END_REASONS {
                self.user_end[i] += other.user_end[i];
                i += 1;
            }
            self.late_sent += other.late_sent;
            self.late_dropped += other.late_dropped;
        }
    }
}

pub mod tools {
    //! The bcc-style tools: in-kernel log2 histograms and counters, and
    //! event records streamed through ring buffers. One section per tool;
    //! kernel and user side read the same definitions.

    use super::COMM_LEN;

    /// log2 histogram slots: slot `i` counts values in `[2^i, 2^(i+1))`
    /// (slot 0 also counts 0). Slot `HIST_SLOTS` holds the sum of the
    /// values, in nanoseconds.
    pub const HIST_SLOTS: usize = 64;

    /// `TOOL_STATS` slot of runqlat.
    pub const TOOL_RUNQLAT: u32 = 0;
    /// biolatency and biosnoop.
    pub const TOOL_BIO: u32 = 1;
    /// syscount.
    pub const TOOL_SYSCOUNT: u32 = 2;
    /// execsnoop.
    pub const TOOL_EXECSNOOP: u32 = 3;
    /// opensnoop.
    pub const TOOL_OPENSNOOP: u32 = 4;
    /// tcplife.
    pub const TOOL_TCPLIFE: u32 = 5;
    /// tcpretrans.
    pub const TOOL_TCPRETRANS: u32 = 6;

    /// The slot of a value.
    #[inline(always)]
    pub fn log2_slot(v: u64) -> u32 {
        if v == 0 { 0 } else { 63 - v.leading_zeros() }
    }

    /// A histogram bucket: what it is per (a PID, a cgroup id, a disk, an
    /// operation), and the slot.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct HistKey {
        /// What the histogram is per: 0 when not split.
        pub id: u64,
        /// A second split (the I/O operation with biolatency -F), or 0.
        pub sub: u32,
        /// The log2 slot.
        pub slot: u32,
    }

    /// A per-CPU histogram bucket: values counted, and their sum (so that one
    /// map update records both).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct HistValue {
        /// Values in the bucket.
        pub count: u64,
        /// Their sum, in nanoseconds.
        pub sum_ns: u64,
    }

    /// Counters every tool keeps (a per-CPU array of one).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ToolStats {
        /// Events seen (after filtering).
        pub events: u64,
        /// Events lost: the ring buffer was full.
        pub ring_full: u64,
        /// Starts not recorded: the map of starts was full.
        pub starts_lost: u64,
        /// Histogram or counter updates lost: the map was full.
        pub updates_lost: u64,
        /// Ends whose start was never seen (begun before the tool).
        pub unmatched: u64,
    }

    impl ToolStats {
        /// Adds another CPU's counters.
        pub fn merge(&mut self, o: &Self) {
            self.events = self.events.saturating_add(o.events);
            self.ring_full = self.ring_full.saturating_add(o.ring_full);
            self.starts_lost = self.starts_lost.saturating_add(o.starts_lost);
            self.updates_lost = self.updates_lost.saturating_add(o.updates_lost);
            self.unmatched = self.unmatched.saturating_add(o.unmatched);
        }
    }

    /// What a histogram is split by.
    pub const PER_NONE: u32 = 0;
    /// Per process (tgid).
    pub const PER_PROCESS: u32 = 1;
    /// Per thread.
    pub const PER_THREAD: u32 = 2;
    /// Per cgroup v2 id.
    pub const PER_CGROUP: u32 = 3;
    /// Per PID namespace (inode number).
    pub const PER_PIDNS: u32 = 4;

    /// Kernel structure offsets the tools read (from BTF).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ToolOffsets {
        /// `task_struct.cgroups` (a `css_set *`).
        pub task_cgroups: u32,
        /// `css_set.dfl_cgrp` (the cgroup v2 group).
        pub css_set_dfl_cgrp: u32,
        /// `cgroup.kn` (its kernfs node).
        pub cgroup_kn: u32,
        /// `cgroup.level`.
        pub cgroup_level: u32,
        /// `cgroup.ancestors` (a flexible array of `cgroup *`).
        pub cgroup_ancestors: u32,
        /// `kernfs_node.id` (the cgroup id).
        pub kernfs_node_id: u32,
        /// `task_struct.nsproxy`.
        pub task_nsproxy: u32,
        /// `nsproxy.pid_ns_for_children`.
        pub nsproxy_pid_ns: u32,
        /// `pid_namespace.ns` + `ns_common.inum`.
        pub pid_ns_inum: u32,
        /// `task_struct.real_parent`.
        pub task_real_parent: u32,
        /// `tcp_sock.bytes_received`.
        pub tcp_bytes_received: u32,
        /// `tcp_sock.bytes_acked`.
        pub tcp_bytes_acked: u32,
        /// `syscall_metadata.name`.
        pub syscall_meta_name: u32,
        /// `syscall_metadata.syscall_nr`.
        pub syscall_meta_nr: u32,
        /// Non-zero once filled in.
        pub valid: u32,
        /// `mm_struct.arg_start` (where the argv strings begin).
        pub mm_arg_start: u32,
        /// `mm_struct.arg_end`.
        pub mm_arg_end: u32,
        /// `sk_buff.cb` (the TCP control block, `struct tcp_skb_cb`).
        pub skb_cb: u32,
        /// `tcp_skb_cb.tcp_gso_segs` (what `tcp_skb_pcount()` reads).
        pub tcp_skb_cb_gso_segs: u32,
    }

    /// Offsets of tracepoint record fields, from tracefs format files.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BlockFields {
        /// `dev` (a `dev_t`, 4 bytes).
        pub dev: u32,
        /// `sector` (8 bytes).
        pub sector: u32,
        /// `nr_sector` (4 bytes).
        pub nr_sector: u32,
        /// `bytes` in block_rq_issue and block_rq_insert (4 bytes).
        pub bytes: u32,
        /// `rwbs` (the operation flags, as text).
        pub rwbs: u32,
        /// Size of `rwbs`.
        pub rwbs_len: u32,
        /// `dev` in block_rq_complete.
        pub complete_dev: u32,
        /// `sector` in block_rq_complete.
        pub complete_sector: u32,
        /// `error` in block_rq_complete.
        pub complete_error: u32,
        /// `rwbs` in block_rq_complete.
        pub complete_rwbs: u32,
    }

    /// Offsets of `sock:inet_sock_set_state` and `tcp:tcp_retransmit_skb`
    /// record fields.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SockFields {
        /// inet_sock_set_state: skaddr, oldstate, newstate, sport, dport,
        /// family, protocol, saddr, daddr, saddr_v6, daddr_v6.
        pub state: [u32; 11],
        /// tcp_retransmit_skb: skaddr, state, sport, dport, family, saddr,
        /// daddr, saddr_v6, daddr_v6, skbaddr, err. `family` is
        /// [`NO_FIELD`] on kernels whose record lacks it (before 5.12): the
        /// addresses tell; `err` is on kernels that also trace failed
        /// attempts (without it, only successful ones are traced).
        pub retrans: [u32; 11],
    }

    /// The offset of a tracepoint field this kernel's record lacks.
    pub const NO_FIELD: u32 = u32::MAX;

    /// What the tools do, set by the loader.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ToolConfig {
        /// runqlat: `PER_*`.
        pub runq_per: u32,
        /// biolatency: split by disk.
        pub bio_per_disk: u32,
        /// biolatency: split by operation flags.
        pub bio_per_flags: u32,
        /// biolatency: from insertion (OS queue) rather than issue.
        pub bio_queued: u32,
        /// biosnoop: stream one event per I/O.
        pub bio_snoop: u32,
        /// biolatency: keep histograms.
        pub bio_hist: u32,
        /// syscount: per process.
        pub sys_per_process: u32,
        /// syscount: measure latency.
        pub sys_latency: u32,
        /// syscount: failed calls only.
        pub sys_failed_only: u32,
        /// opensnoop: failed opens only.
        pub open_failed_only: u32,
        /// Thread that triggers the syscall-name reader.
        pub names_tid: u32,
        /// Padding.
        pub _pad: u32,
    }

    /// The syscall-name reader's request (`SYSCALL_NAMES_REQUEST`, an
    /// array of `u64`): index 0 the step, 1 a kernel address, 2 the first
    /// entry.
    pub const NAMES_STEP: u32 = 0;
    /// The address the step works on.
    pub const NAMES_ADDR: u32 = 1;
    /// The first table entry a `NAMES_STEP_TABLE` step reads.
    pub const NAMES_FIRST: u32 = 2;
    /// Table entries one run of the reader copies: a bounded loop the
    /// verifier of every kernel accepts (5.10's refuses 1024 iterations:
    /// too many branches pending).
    pub const NAMES_PER_RUN: u32 = 64;
    /// Step: copy `NAMES_CODE_LEN` bytes of code at the address into
    /// `SYSCALL_NAMES_CODE`.
    pub const NAMES_STEP_CODE: u64 = 1;
    /// Step: the address is the kernel's `syscalls_metadata` variable;
    /// copy the name of each entry from `NAMES_FIRST` on (`NAMES_PER_RUN`
    /// of them) whose `syscall_nr` is its index.
    pub const NAMES_STEP_TABLE: u64 = 2;
    /// Bytes of code copied.
    pub const NAMES_CODE_LEN: usize = 96;

    /// biolatency: an I/O's operation, from the first letter(s) of rwbs.
    pub const OP_READ: u32 = 1;
    /// A write.
    pub const OP_WRITE: u32 = 2;
    /// A discard.
    pub const OP_DISCARD: u32 = 3;
    /// A flush (no data).
    pub const OP_FLUSH: u32 = 4;
    /// Anything else.
    pub const OP_OTHER: u32 = 5;
    /// Synchronous (`S` in rwbs), added to the operation with -F.
    pub const OP_SYNC: u32 = 0x10;

    /// An I/O in flight, keyed by device and sector.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BioKey {
        /// The device (`dev_t`, as the tracepoint gives it).
        pub dev: u32,
        /// Padding.
        pub _pad: u32,
        /// The first sector.
        pub sector: u64,
    }

    /// When an I/O was inserted and issued, and by whom.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BioStart {
        /// Inserted into the OS queue (0 if not seen).
        pub insert_ns: u64,
        /// Issued to the device (0 if not yet).
        pub issue_ns: u64,
        /// Process that issued or queued it.
        pub pid: u32,
        /// Bytes.
        pub bytes: u32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
    }

    /// biosnoop: one completed I/O.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BioEvent {
        /// Completion time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// Issue to completion.
        pub latency_ns: u64,
        /// Insertion to issue (0 when not seen).
        pub queued_ns: u64,
        /// The first sector.
        pub sector: u64,
        /// The device.
        pub dev: u32,
        /// Bytes.
        pub bytes: u32,
        /// Process that issued or queued it (0: unknown).
        pub pid: u32,
        /// Error (negative errno) or 0.
        pub error: i32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
        /// Operation flags as the kernel writes them (`W`, `RS`, `FWS`...).
        pub rwbs: [u8; 16],
    }

    /// syscount: what a count is per.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct SyscallKey {
        /// The process (0 when not per process).
        pub pid: u32,
        /// The syscall number.
        pub nr: u32,
    }

    /// syscount: calls and total time.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SyscallStat {
        /// Calls.
        pub count: u64,
        /// Nanoseconds in them (with latency).
        pub total_ns: u64,
        /// Failed calls (negative return).
        pub errors: u64,
    }

    /// Syscall names read from the kernel's own metadata, by number.
    pub const MAX_SYSCALLS: u32 = 1024;
    /// Bytes of a syscall name kept.
    pub const SYSCALL_NAME_LEN: usize = 48;

    /// One syscall's name, as the kernel names it (`sys_openat`).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SyscallName {
        /// NUL-terminated.
        pub name: [u8; SYSCALL_NAME_LEN],
    }

    impl Default for SyscallName {
        fn default() -> Self {
            Self { name: [0; SYSCALL_NAME_LEN] }
        }
    }

    /// execsnoop: arguments kept, and bytes of each.
    pub const EXEC_ARGS: usize = 20;
    /// Bytes kept of each argument.
    pub const EXEC_ARG_LEN: usize = 128;
    /// Bytes kept of the new image's argv block (`args[1..]`, flat).
    pub const EXEC_IMAGE_ARGS: usize = EXEC_ARGS * EXEC_ARG_LEN;

    /// execsnoop: an exec, its arguments as it started (`EXEC_ARGS_EVENT`),
    /// or the new image's path and arguments (`EXEC_IMAGE_EVENT`: `args[0]`
    /// is the path, and `args[1..]` one flat block of the new program's
    /// NUL-separated argv as its stack holds it, `argc` bytes long).
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct ExecEvent {
        /// `EXEC_ARGS_EVENT` or `EXEC_IMAGE_EVENT`.
        pub kind: u32,
        /// The thread (its process once the exec succeeds).
        pub pid: u32,
        /// Its parent process.
        pub ppid: u32,
        /// Its user.
        pub uid: u32,
        /// The return value (with `EXEC_RET_EVENT`).
        pub ret: i32,
        /// `EXEC_ARGS_EVENT`: arguments read (more were left out when it
        /// is `EXEC_ARGS + 1`). `EXEC_IMAGE_EVENT`: bytes of the argv block
        /// (`mm.arg_end - mm.arg_start`, which may be more than kept).
        pub argc: u32,
        /// `EXEC_ARGS_EVENT`: bit `i` set when `args[i]` (0: the path) was
        /// cut to its buffer. `EXEC_IMAGE_EVENT`: bit 0 when the path was.
        pub truncated: u32,
        /// `EXEC_ARGS_EVENT`: bit `i` set when `args[i]` could not be read
        /// (a page not mapped yet). `EXEC_IMAGE_EVENT`: bit 1 when the argv
        /// block could not be read.
        pub unreadable: u32,
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The name before (args) or after (image) the exec.
        pub comm: [u8; COMM_LEN],
        /// The program path, then arguments: NUL-terminated each.
        pub args: [[u8; EXEC_ARG_LEN]; EXEC_ARGS + 1],
    }

    /// execsnoop: an exec returned.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ExecRetEvent {
        /// `EXEC_RET_EVENT`.
        pub kind: u32,
        /// The thread.
        pub pid: u32,
        /// The return value.
        pub ret: i32,
        /// Padding.
        pub _pad: u32,
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The name after the exec (before it, when it failed).
        pub comm: [u8; COMM_LEN],
    }

    /// An exec begins: path and arguments.
    pub const EXEC_ARGS_EVENT: u32 = 1;
    /// An exec returned.
    pub const EXEC_RET_EVENT: u32 = 2;
    /// An exec succeeded: the new image's path and arguments.
    pub const EXEC_IMAGE_EVENT: u32 = 3;

    /// opensnoop: the arguments of an open in flight.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct OpenStart {
        /// The path (a user address).
        pub path: u64,
        /// The flags.
        pub flags: u64,
    }

    /// Bytes of an opened path kept.
    pub const OPEN_PATH_LEN: usize = 256;

    /// opensnoop: one open.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct OpenEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The flags.
        pub flags: u64,
        /// Process.
        pub pid: u32,
        /// Thread.
        pub tid: u32,
        /// User.
        pub uid: u32,
        /// The file descriptor, or a negative errno.
        pub ret: i32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
        /// The path, NUL-terminated.
        pub path: [u8; OPEN_PATH_LEN],
    }

    /// tcplife: a socket's birth and owner.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpBirth {
        /// First seen (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The process that opened or accepted it (0 until known).
        pub pid: u32,
        /// Padding.
        pub _pad: u32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
    }

    /// tcplife: one closed session.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpLifeEvent {
        /// Closed at (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// Lifetime.
        pub duration_ns: u64,
        /// Bytes received.
        pub rx_bytes: u64,
        /// Bytes sent and acknowledged.
        pub tx_bytes: u64,
        /// The owning process (0: unknown).
        pub pid: u32,
        /// AF_INET or AF_INET6.
        pub family: u16,
        /// Local port.
        pub sport: u16,
        /// Remote port.
        pub dport: u16,
        /// Padding.
        pub _pad: [u16; 3],
        /// Local address (4 or 16 bytes used).
        pub saddr: [u8; 16],
        /// Remote address.
        pub daddr: [u8; 16],
        /// The owner's name.
        pub comm: [u8; COMM_LEN],
    }

    /// tcpretrans: one retransmitted segment.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpRetransEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The process running when it was retransmitted (often none: a
        /// timer).
        pub pid: u32,
        /// TCP state (`TCP_ESTABLISHED` = 1...).
        pub state: u32,
        /// AF_INET or AF_INET6.
        pub family: u16,
        /// Local port.
        pub sport: u16,
        /// Remote port.
        pub dport: u16,
        /// Padding.
        pub _pad: u16,
        /// Local address.
        pub saddr: [u8; 16],
        /// Remote address.
        pub daddr: [u8; 16],
        /// Segments in the retransmitted skb (`tcp_skb_pcount()`).
        pub segs: u32,
        /// 0, or the negative errno of a failed attempt.
        pub err: i32,
    }

    /// `TCP_RETRANS_COUNTS` slots: `16 * kind + state`, with kind one of
    /// these.
    pub const RETRANS_HITS: u32 = 0;
    /// Segments of successful retransmissions.
    pub const RETRANS_SEGS: u32 = 1;
    /// Failed attempts (err != 0).
    pub const RETRANS_FAILED: u32 = 2;
    /// Segments of failed attempts.
    pub const RETRANS_FAILED_SEGS: u32 = 3;

    /// `TOOL_STATS` slot of tcpconnect.
    pub const TOOL_TCPCONNECT: u32 = 12;
    /// tcpaccept.
    pub const TOOL_TCPACCEPT: u32 = 13;
    /// oomkill.
    pub const TOOL_OOMKILL: u32 = 14;
    /// mountsnoop.
    pub const TOOL_MOUNTSNOOP: u32 = 15;
    /// capable.
    pub const TOOL_CAPABLE: u32 = 16;

    /// tcpconnect and tcpaccept: what is streamed, and the kernel offsets
    /// that lead from an accepted file descriptor to its socket.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpConnConfig {
        /// Stream active opens (connects).
        pub connect_events: u32,
        /// Stream passive opens (accepts).
        pub accept_events: u32,
        /// `task_struct.files`.
        pub task_files: u32,
        /// `files_struct.fdt`.
        pub files_fdt: u32,
        /// `fdtable.max_fds`.
        pub fdtable_max_fds: u32,
        /// `fdtable.fd` (a `struct file **`).
        pub fdtable_fd: u32,
        /// `file.private_data` (a socket file's `struct socket *`).
        pub file_private_data: u32,
        /// `socket.sk`.
        pub socket_sk: u32,
    }

    /// An active open (a connect entering SYN_SENT).
    pub const CONN_CONNECT: u32 = 1;
    /// A passive open (a handshake completed on a listening socket).
    pub const CONN_ACCEPT: u32 = 2;

    /// tcpconnect and tcpaccept: one open.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TcpConnEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The connecting or accepting process (0: not known).
        pub pid: u32,
        /// Its thread.
        pub tid: u32,
        /// Its user.
        pub uid: u32,
        /// `CONN_CONNECT` or `CONN_ACCEPT`.
        pub kind: u32,
        /// AF_INET or AF_INET6.
        pub family: u16,
        /// Local port (0 for a connect: not chosen yet in SYN_SENT).
        pub sport: u16,
        /// Remote port.
        pub dport: u16,
        /// Padding.
        pub _pad: u16,
        /// Local address (4 or 16 bytes used).
        pub saddr: [u8; 16],
        /// Remote address.
        pub daddr: [u8; 16],
        /// The process's name.
        pub comm: [u8; COMM_LEN],
    }

    /// `TCP_PORT_COUNTS` key: opens of a kind, by port (the remote port of
    /// a connect, the local port of an accept).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TcpPortKey {
        /// `CONN_CONNECT` or `CONN_ACCEPT`.
        pub kind: u32,
        /// The port.
        pub port: u32,
    }

    /// Offsets of `oom:mark_victim` record fields, from tracefs
    /// ([`NO_FIELD`] where this kernel's record lacks one: before 6.x it
    /// holds only the pid).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct OomFields {
        /// `pid` (the victim).
        pub pid: u32,
        /// `comm` (a `__data_loc` string).
        pub comm: u32,
        /// `total_vm` (kB).
        pub total_vm: u32,
        /// `anon_rss` (kB).
        pub anon_rss: u32,
        /// `file_rss` (kB).
        pub file_rss: u32,
        /// `shmem_rss` (kB).
        pub shmem_rss: u32,
    }

    /// oomkill: one process chosen by the OOM killer.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct OomEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The victim's virtual memory, kB (`u64::MAX`: not in the record).
        pub total_vm_kb: u64,
        /// Its anonymous resident memory, kB.
        pub anon_rss_kb: u64,
        /// Its file-backed resident memory, kB.
        pub file_rss_kb: u64,
        /// Its shared-memory resident memory, kB.
        pub shmem_rss_kb: u64,
        /// The process whose allocation triggered the OOM killer.
        pub trigger_pid: u32,
        /// The process killed.
        pub victim_pid: u32,
        /// The trigger's name.
        pub trigger_comm: [u8; COMM_LEN],
        /// The victim's name (empty when the record has none).
        pub victim_comm: [u8; COMM_LEN],
    }

    /// mountsnoop: the kernel offsets to a task's mount namespace.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MountConfig {
        /// `task_struct.nsproxy`.
        pub task_nsproxy: u32,
        /// `nsproxy.mnt_ns`.
        pub nsproxy_mnt_ns: u32,
        /// `mnt_namespace.ns` + `ns_common.inum`.
        pub mnt_ns_inum: u32,
        /// Non-zero when the three were found.
        pub valid: u32,
    }

    /// mount(2).
    pub const MOUNT_CALL: u32 = 1;
    /// umount(2) (umount2 on x86-64).
    pub const UMOUNT_CALL: u32 = 2;

    /// mountsnoop: a call in flight (user addresses of its arguments).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MountStart {
        /// `MOUNT_CALL` or `UMOUNT_CALL`.
        pub call: u32,
        /// Padding.
        pub _pad: u32,
        /// The flags.
        pub flags: u64,
        /// mount: the source; umount: the target.
        pub source: u64,
        /// mount: the target.
        pub target: u64,
        /// mount: the file system type.
        pub fstype: u64,
        /// mount: the data (options).
        pub data: u64,
    }

    /// Bytes kept of a mount path (source or target).
    pub const MOUNT_PATH_LEN: usize = 128;
    /// Bytes kept of a file system type.
    pub const MOUNT_FSTYPE_LEN: usize = 32;
    /// Bytes kept of the mount data.
    pub const MOUNT_DATA_LEN: usize = 128;

    /// mountsnoop: one mount or umount call.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct MountEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// The flags.
        pub flags: u64,
        /// Process.
        pub pid: u32,
        /// Thread.
        pub tid: u32,
        /// Its mount namespace (inode number; 0 when unknown).
        pub mnt_ns: u32,
        /// The return value (0 or a negative errno).
        pub ret: i32,
        /// `MOUNT_CALL` or `UMOUNT_CALL`.
        pub call: u32,
        /// Padding.
        pub _pad: u32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
        /// mount: the source; umount: the target. NUL-terminated.
        pub source: [u8; MOUNT_PATH_LEN],
        /// mount: the target.
        pub target: [u8; MOUNT_PATH_LEN],
        /// mount: the file system type.
        pub fstype: [u8; MOUNT_FSTYPE_LEN],
        /// mount: the data.
        pub data: [u8; MOUNT_DATA_LEN],
    }

    /// capable: which checks are reported.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct CapableConfig {
        /// Also the checks made without auditing (bcc's -v).
        pub non_audit: u32,
        /// Padding.
        pub _pad: u32,
    }

    /// capable: one capability check.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct CapableEvent {
        /// Time (CLOCK_MONOTONIC ns).
        pub ts_ns: u64,
        /// Process.
        pub pid: u32,
        /// Thread.
        pub tid: u32,
        /// User.
        pub uid: u32,
        /// The capability (`CAP_SYS_ADMIN` = 21...).
        pub cap: i32,
        /// The check's options (`CAP_OPT_NOAUDIT` = 2: not audited).
        pub opts: u32,
        /// Padding.
        pub _pad: u32,
        /// Its name.
        pub comm: [u8; COMM_LEN],
    }
}

pub mod irqs {
    //! hardirqs and softirqs: time in each interrupt handler and softirq
    //! vector, as log2 histograms kept per CPU.

    /// Bytes of an IRQ handler's name kept (bcc keeps 32).
    pub const IRQ_NAME_LEN: usize = 32;

    /// `IrqKey::kind` of a hard IRQ handler.
    pub const KIND_HARD: u32 = 1;
    /// `IrqKey::kind` of a softirq vector.
    pub const KIND_SOFT: u32 = 2;

    /// `AGG_STATS` slot of hardirqs.
    pub const AGG_HARDIRQS: u32 = 0;
    /// `AGG_STATS` slot of softirqs.
    pub const AGG_SOFTIRQS: u32 = 1;
    /// `AGG_STATS` slot of runqlen.
    pub const AGG_RUNQLEN: u32 = 2;
    /// Slots of `AGG_STATS`.
    pub const AGG_SLOTS: u32 = 4;

    /// A histogram bucket: a handler (kind, IRQ number and name) or a
    /// softirq vector, and the log2 slot.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct IrqKey {
        /// `KIND_HARD` or `KIND_SOFT`.
        pub kind: u32,
        /// The IRQ number, or the softirq vector.
        pub number: u32,
        /// The log2 slot (of microseconds, or of nanoseconds with
        /// `IrqConfig::ns_slots`).
        pub slot: u32,
        /// Padding.
        pub _pad: u32,
        /// The handler's name (hard IRQs), NUL-terminated; zeros for
        /// softirqs.
        pub name: [u8; IRQ_NAME_LEN],
    }

    /// Where a CPU is: the hard IRQ handler and softirq it runs, since
    /// when (0: none).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IrqStart {
        /// `bpf_ktime_get_ns` at irq_handler_entry.
        pub hard_ns: u64,
        /// `bpf_ktime_get_ns` at softirq_entry.
        pub soft_ns: u64,
        /// The IRQ number.
        pub hard_irq: u32,
        /// The softirq vector.
        pub soft_vec: u32,
        /// The handler's name.
        pub hard_name: [u8; IRQ_NAME_LEN],
    }

    /// What the IRQ tools do, and the kernel offset they read (from BTF).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IrqConfig {
        /// `irqaction.name` (the raw irq_handler_entry passes the action).
        pub irqaction_name: u32,
        /// Only this CPU, or -1 for all.
        pub cpu: i32,
        /// Slots of log2 nanoseconds instead of microseconds.
        pub ns_slots: u32,
        /// Padding.
        pub _pad: u32,
    }
}

pub mod runqlen {
    //! runqlen: each CPU's run-queue length, sampled.

    /// Lengths counted apart; longer queues count in the last slot.
    pub const RUNQLEN_SLOTS: u32 = 64;

    /// Kernel offsets (from BTF) from the current task to its CPU's
    /// `struct rq`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct RunqlenConfig {
        /// `task_struct.se` + `sched_entity.cfs_rq`: the task's CFS queue.
        pub task_cfs_rq: u32,
        /// `cfs_rq.rq` (with group scheduling), or [`NO_RQ_FIELD`].
        pub cfs_rq_rq: u32,
        /// `rq.cfs`: without `cfs_rq.rq`, the queue is the CPU's own, at
        /// this offset in its `struct rq`.
        pub rq_cfs: u32,
        /// `rq.nr_running`: runnable tasks of every class, the running
        /// one included.
        pub rq_nr_running: u32,
    }

    /// `cfs_rq.rq` does not exist (no `CONFIG_FAIR_GROUP_SCHED`).
    pub const NO_RQ_FIELD: u32 = u32::MAX;
}

/// The user-function tools (funccount, funclatency): uprobes, uretprobes,
/// USDT probes and tracepoints counted by probe index, and one latency
/// histogram.
///
/// One program per probe index (a uprobe and a tracepoint version of
/// each), so that a count needs no attach cookie (5.15) and no address
/// lookup: the loader attaches program `i` to the `i`-th probe.
pub mod ufunc {

    /// Probes one run can count.
    pub const MAX_PROBES: usize = 64;

    /// The uprobe counting programs, by probe index.
    pub const COUNT_PROGRAMS: [&str; MAX_PROBES] = [
        "ufunc_count_0",
        "ufunc_count_1",
        "ufunc_count_2",
        "ufunc_count_3",
        "ufunc_count_4",
        "ufunc_count_5",
        "ufunc_count_6",
        "ufunc_count_7",
        "ufunc_count_8",
        "ufunc_count_9",
        "ufunc_count_10",
        "ufunc_count_11",
        "ufunc_count_12",
        "ufunc_count_13",
        "ufunc_count_14",
        "ufunc_count_15",
        "ufunc_count_16",
        "ufunc_count_17",
        "ufunc_count_18",
        "ufunc_count_19",
        "ufunc_count_20",
        "ufunc_count_21",
        "ufunc_count_22",
        "ufunc_count_23",
        "ufunc_count_24",
        "ufunc_count_25",
        "ufunc_count_26",
        "ufunc_count_27",
        "ufunc_count_28",
        "ufunc_count_29",
        "ufunc_count_30",
        "ufunc_count_31",
        "ufunc_count_32",
        "ufunc_count_33",
        "ufunc_count_34",
        "ufunc_count_35",
        "ufunc_count_36",
        "ufunc_count_37",
        "ufunc_count_38",
        "ufunc_count_39",
        "ufunc_count_40",
        "ufunc_count_41",
        "ufunc_count_42",
        "ufunc_count_43",
        "ufunc_count_44",
        "ufunc_count_45",
        "ufunc_count_46",
        "ufunc_count_47",
        "ufunc_count_48",
        "ufunc_count_49",
        "ufunc_count_50",
        "ufunc_count_51",
        "ufunc_count_52",
        "ufunc_count_53",
        "ufunc_count_54",
        "ufunc_count_55",
        "ufunc_count_56",
        "ufunc_count_57",
        "ufunc_count_58",
        "ufunc_count_59",
        "ufunc_count_60",
        "ufunc_count_61",
        "ufunc_count_62",
        "ufunc_count_63",
    ];

    /// The tracepoint counting programs, by probe index.
    pub const TP_COUNT_PROGRAMS: [&str; MAX_PROBES] = [
        "tp_count_0",
        "tp_count_1",
        "tp_count_2",
        "tp_count_3",
        "tp_count_4",
        "tp_count_5",
        "tp_count_6",
        "tp_count_7",
        "tp_count_8",
        "tp_count_9",
        "tp_count_10",
        "tp_count_11",
        "tp_count_12",
        "tp_count_13",
        "tp_count_14",
        "tp_count_15",
        "tp_count_16",
        "tp_count_17",
        "tp_count_18",
        "tp_count_19",
        "tp_count_20",
        "tp_count_21",
        "tp_count_22",
        "tp_count_23",
        "tp_count_24",
        "tp_count_25",
        "tp_count_26",
        "tp_count_27",
        "tp_count_28",
        "tp_count_29",
        "tp_count_30",
        "tp_count_31",
        "tp_count_32",
        "tp_count_33",
        "tp_count_34",
        "tp_count_35",
        "tp_count_36",
        "tp_count_37",
        "tp_count_38",
        "tp_count_39",
        "tp_count_40",
        "tp_count_41",
        "tp_count_42",
        "tp_count_43",
        "tp_count_44",
        "tp_count_45",
        "tp_count_46",
        "tp_count_47",
        "tp_count_48",
        "tp_count_49",
        "tp_count_50",
        "tp_count_51",
        "tp_count_52",
        "tp_count_53",
        "tp_count_54",
        "tp_count_55",
        "tp_count_56",
        "tp_count_57",
        "tp_count_58",
        "tp_count_59",
        "tp_count_60",
        "tp_count_61",
        "tp_count_62",
        "tp_count_63",
    ];

    /// funclatency: the uprobe that records a call's start.
    pub const ENTRY_PROGRAM: &str = "ufunc_entry";
    /// funclatency: the uretprobe that records its latency.
    pub const RETURN_PROGRAM: &str = "ufunc_return";

    /// Per-CPU array of `u64` counts, by probe index.
    pub const COUNTS: &str = "UFUNC_COUNTS";
    /// Hash map from a thread (`pid_tgid`) to the start of its call.
    pub const START: &str = "UFUNC_START";
    /// Per-CPU array of `u64`: [`HIST_SLOTS`](super::tools::HIST_SLOTS)
    /// log2 slots of latency in the configured unit, then the sum in
    /// nanoseconds.
    pub const HIST: &str = "UFUNC_HIST";
    /// Per-CPU array of one [`ToolStats`](super::tools::ToolStats).
    pub const STATS: &str = "UFUNC_STATS";
    /// Global [`UfuncConfig`].
    pub const CONFIG: &str = "UFUNC_CONFIG";

    /// What the latency programs do.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct UfuncConfig {
        /// Latencies are divided by this (1: nanoseconds, 1000:
        /// microseconds, 1000000: milliseconds) before their log2 slot is
        /// taken, as bcc's funclatency does.
        pub unit_div: u64,
    }

    #[cfg(feature = "user")]
    // SAFETY: `#[repr(C)]`, `Copy`, one integer: every bit pattern is valid.
    unsafe impl aya::Pod for UfuncConfig {}
}

/// memleak: outstanding allocations by stack, from uprobes on a user
/// allocator or from the kernel's `kmem` tracepoints.
pub mod memleak {
    /// Allocation entries: a uprobe per allocator function, keeping the
    /// requested size per thread until the function returns.
    pub const MALLOC_ENTER: &str = "memleak_malloc_enter";
    /// `calloc(nmemb, size)`.
    pub const CALLOC_ENTER: &str = "memleak_calloc_enter";
    /// `realloc(ptr, size)`: frees `ptr`, then allocates.
    pub const REALLOC_ENTER: &str = "memleak_realloc_enter";
    /// `aligned_alloc(align, size)` and `memalign(align, size)`.
    pub const MEMALIGN_ENTER: &str = "memleak_memalign_enter";
    /// `posix_memalign(memptr, align, size)`.
    pub const POSIX_MEMALIGN_ENTER: &str = "memleak_posix_memalign_enter";
    /// `mmap(addr, length, ...)`.
    pub const MMAP_ENTER: &str = "memleak_mmap_enter";
    /// The uretprobe of every function returning the address.
    pub const ALLOC_EXIT: &str = "memleak_alloc_exit";
    /// The uretprobe of `mmap` (`MAP_FAILED` is not an address).
    pub const MMAP_EXIT: &str = "memleak_mmap_exit";
    /// The uretprobe of `posix_memalign` (the address is in `*memptr`).
    pub const POSIX_MEMALIGN_EXIT: &str = "memleak_posix_memalign_exit";
    /// `free(ptr)`.
    pub const FREE_ENTER: &str = "memleak_free_enter";
    /// `munmap(addr, length)`.
    pub const MUNMAP_ENTER: &str = "memleak_munmap_enter";
    /// kmem:kmalloc and kmem:kmalloc_node.
    pub const KMALLOC: &str = "memleak_kmalloc";
    /// kmem:kmem_cache_alloc and kmem:kmem_cache_alloc_node.
    pub const CACHE_ALLOC: &str = "memleak_cache_alloc";
    /// kmem:kfree.
    pub const KFREE: &str = "memleak_kfree";
    /// kmem:kmem_cache_free.
    pub const CACHE_FREE: &str = "memleak_cache_free";
    /// kmem:mm_page_alloc.
    pub const PAGE_ALLOC: &str = "memleak_page_alloc";
    /// kmem:mm_page_free.
    pub const PAGE_FREE: &str = "memleak_page_free";

    /// Hash map from [`AllocKey`] to [`AllocInfo`]: what is outstanding.
    pub const ALLOCS: &str = "MEMLEAK_ALLOCS";
    /// Hash map from a stack id (`u64`) to [`Combined`].
    pub const COMBINED: &str = "MEMLEAK_COMBINED";
    /// Stack trace map of the allocations' stacks.
    pub const STACKS: &str = "MEMLEAK_STACKS";
    /// Hash map from a thread (`pid_tgid`) to the size it asked for.
    pub const SIZES: &str = "MEMLEAK_SIZES";
    /// Hash map from a thread (`pid_tgid`) to `posix_memalign`'s `memptr`.
    pub const MEMPTRS: &str = "MEMLEAK_MEMPTRS";
    /// Per-CPU array of one [`MemleakStats`].
    pub const STATS: &str = "MEMLEAK_STATS";
    /// Array of one `u64`: allocations seen, for `-s` sampling.
    pub const SEEN: &str = "MEMLEAK_SEEN";
    /// Global [`MemleakConfig`].
    pub const CONFIG: &str = "MEMLEAK_CONFIG";

    /// Outstanding allocations kept at most (a preallocated map: about
    /// 13 MiB).
    pub const MAX_ALLOCS: u32 = 1 << 17;
    /// Distinct stacks kept at most (as libbpf-tools' memleak).
    pub const MAX_STACKS: u32 = 10_240;
    /// Threads inside an allocator function at once, at most.
    pub const MAX_THREADS: u32 = 1 << 14;

    /// The `tgid` of a kernel page allocation's key: its address is a page
    /// frame number.
    pub const PAGE_TGID: u32 = u32::MAX;
    /// The stack id of an allocation whose stack could not be kept.
    pub const NO_STACK: u64 = u64::MAX;

    /// What the programs do, filled in before the object loads.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct MemleakConfig {
        /// Smallest size recorded (bcc's `-z`).
        pub min_size: u64,
        /// Largest size recorded (bcc's `-Z`).
        pub max_size: u64,
        /// Record one allocation in this many (bcc's `-s`; 0 and 1: all).
        pub sample_every: u64,
        /// Offsets in the kmem tracepoints' records: kmalloc's `ptr` and
        /// `bytes_alloc`, kmem_cache_alloc's `ptr` and `bytes_alloc`,
        /// kfree's and kmem_cache_free's `ptr`, mm_page_alloc's `pfn` and
        /// `order`, mm_page_free's `pfn` and `order`.
        pub kmalloc_ptr: u32,
        /// See `kmalloc_ptr`.
        pub kmalloc_bytes: u32,
        /// See `kmalloc_ptr`.
        pub cache_alloc_ptr: u32,
        /// See `kmalloc_ptr`.
        pub cache_alloc_bytes: u32,
        /// See `kmalloc_ptr`.
        pub kfree_ptr: u32,
        /// See `kmalloc_ptr`.
        pub cache_free_ptr: u32,
        /// See `kmalloc_ptr`.
        pub page_alloc_pfn: u32,
        /// See `kmalloc_ptr`.
        pub page_alloc_order: u32,
        /// See `kmalloc_ptr`.
        pub page_free_pfn: u32,
        /// See `kmalloc_ptr`.
        pub page_free_order: u32,
    }

    impl Default for MemleakConfig {
        fn default() -> Self {
            Self {
                min_size: 0,
                max_size: u64::MAX,
                sample_every: 1,
                kmalloc_ptr: 0,
                kmalloc_bytes: 0,
                cache_alloc_ptr: 0,
                cache_alloc_bytes: 0,
                kfree_ptr: 0,
                cache_free_ptr: 0,
                page_alloc_pfn: 0,
                page_alloc_order: 0,
                page_free_pfn: 0,
                page_free_order: 0,
            }
        }
    }

    /// Which allocation: the process (0 for the kernel, [`PAGE_TGID`] for
    /// pages) and the address (a page frame number for pages).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct AllocKey {
        /// The address.
        pub addr: u64,
        /// The process.
        pub tgid: u32,
        /// Zero.
        pub _pad: u32,
    }

    /// One outstanding allocation.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct AllocInfo {
        /// Bytes.
        pub size: u64,
        /// When it was made (`bpf_ktime_get_ns`, CLOCK_MONOTONIC).
        pub time_ns: u64,
        /// Its stack's id in [`STACKS`], or [`NO_STACK`].
        pub stack_id: u64,
        /// The thread that made it.
        pub tid: u32,
        /// Zero.
        pub _pad: u32,
    }

    /// Outstanding bytes and allocations of one stack.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Combined {
        /// Bytes (wrapping: frees subtract).
        pub bytes: u64,
        /// Allocations (wrapping: frees subtract).
        pub count: u64,
    }

    /// What memleak saw and could not keep.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct MemleakStats {
        /// Allocations recorded.
        pub allocs: u64,
        /// Frees of a recorded allocation.
        pub frees: u64,
        /// Allocations not recorded: the map of outstanding allocations
        /// was full.
        pub allocs_lost: u64,
        /// Allocations not recorded: the map of threads inside an
        /// allocator was full.
        pub sizes_lost: u64,
        /// Allocations recorded without their stack (the stack map was
        /// full, or the stack could not be read).
        pub stacks_lost: u64,
        /// Allocations not added to their stack's totals: the map of
        /// totals was full.
        pub combined_lost: u64,
        /// Allocations at an address still outstanding (its free was
        /// missed): the old one is dropped.
        pub replaced: u64,
        /// Allocations skipped by `-s` sampling or the size bounds.
        pub skipped: u64,
    }

    impl MemleakStats {
        /// Adds another CPU's counters.
        pub fn merge(&mut self, o: &Self) {
            self.allocs = self.allocs.saturating_add(o.allocs);
            self.frees = self.frees.saturating_add(o.frees);
            self.allocs_lost = self.allocs_lost.saturating_add(o.allocs_lost);
            self.sizes_lost = self.sizes_lost.saturating_add(o.sizes_lost);
            self.stacks_lost = self.stacks_lost.saturating_add(o.stacks_lost);
            self.combined_lost = self.combined_lost.saturating_add(o.combined_lost);
            self.replaced = self.replaced.saturating_add(o.replaced);
            self.skipped = self.skipped.saturating_add(o.skipped);
        }
    }

    #[cfg(feature = "user")]
    mod pod {
        // SAFETY: each type is `#[repr(C)]`, `Copy`, and made only of
        // integers with explicit padding fields: every bit pattern is valid
        // and no byte is uninitialised.
        unsafe impl aya::Pod for super::MemleakConfig {}
        // SAFETY: as above.
        unsafe impl aya::Pod for super::AllocKey {}
        // SAFETY: as above.
        unsafe impl aya::Pod for super::AllocInfo {}
        // SAFETY: as above.
        unsafe impl aya::Pod for super::Combined {}
        // SAFETY: as above.
        unsafe impl aya::Pod for super::MemleakStats {}
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn layouts_have_no_implicit_padding() {
            assert_eq!(core::mem::size_of::<super::MemleakConfig>(), 24 + 4 * 10);
            assert_eq!(core::mem::size_of::<super::AllocKey>(), 16);
            assert_eq!(core::mem::size_of::<super::AllocInfo>(), 32);
            assert_eq!(core::mem::size_of::<super::Combined>(), 16);
            assert_eq!(core::mem::size_of::<super::MemleakStats>(), 64);
        }
    }
}

/// trace and argdist: one event per hit of a uprobe, uretprobe, USDT probe
/// or tracepoint, with the registers, the strings the format names and,
/// for a tracepoint, the start of its record. Formatting, filters and
/// aggregation happen in user space.
///
/// One program per probe index, as in [`ufunc`]: the event
/// carries the index, so no attach cookie (5.15) is needed. A uprobe
/// program serves uprobes and uretprobes alike (the perf event says which).
pub mod trace {
    use super::COMM_LEN;

    /// Probes one run attaches.
    pub const MAX_PROBES: usize = 16;
    /// Strings one probe reads.
    pub const STR_SLOTS: usize = 4;
    /// Bytes of each string, its NUL included.
    pub const STR_LEN: usize = 128;
    /// Bytes of a tracepoint's record copied.
    pub const RECORD_BYTES: usize = 256;
    /// Words of x86-64 `struct pt_regs`.
    pub const REGS: usize = 21;
    /// Memory operands (USDT arguments such as `-4@8(%rbp)`) read per hit.
    pub const DEREFS: usize = 6;

    /// The uprobe programs, by probe index.
    pub const UPROBE_PROGRAMS: [&str; MAX_PROBES] = [
        "trace_u_0",
        "trace_u_1",
        "trace_u_2",
        "trace_u_3",
        "trace_u_4",
        "trace_u_5",
        "trace_u_6",
        "trace_u_7",
        "trace_u_8",
        "trace_u_9",
        "trace_u_10",
        "trace_u_11",
        "trace_u_12",
        "trace_u_13",
        "trace_u_14",
        "trace_u_15",
    ];
    /// The tracepoint programs, by probe index.
    pub const TP_PROGRAMS: [&str; MAX_PROBES] = [
        "trace_t_0",
        "trace_t_1",
        "trace_t_2",
        "trace_t_3",
        "trace_t_4",
        "trace_t_5",
        "trace_t_6",
        "trace_t_7",
        "trace_t_8",
        "trace_t_9",
        "trace_t_10",
        "trace_t_11",
        "trace_t_12",
        "trace_t_13",
        "trace_t_14",
        "trace_t_15",
    ];

    /// Ring buffer of [`TraceEvent`]s.
    pub const EVENTS: &str = "TRACE_EVENTS";
    /// Array of [`TraceProbe`], by probe index.
    pub const PROBES: &str = "TRACE_PROBES";
    /// Per-CPU array of one [`ToolStats`](super::tools::ToolStats).
    pub const STATS: &str = "TRACE_STATS";

    /// A string slot is unused.
    pub const STR_NONE: u32 = 0;
    /// The string's address is register `index` (a `pt_regs` word).
    pub const STR_REG: u32 = 1;
    /// The string's address is the `u64` at record offset `index` (a user
    /// pointer, or a kernel one when the user read fails).
    pub const STR_FIELD: u32 = 2;
    /// The string is in the record: a `__data_loc` word at offset `index`
    /// (offset in the low 16 bits, length in the high 16).
    pub const STR_DATA_LOC: u32 = 3;
    /// The string's address is memory operand `index`'s value.
    pub const STR_DEREF: u32 = 4;

    /// Where one string comes from.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct StrSource {
        /// `STR_*`.
        pub kind: u32,
        /// The register, record offset or memory operand.
        pub index: u32,
    }

    /// A memory operand: `size` bytes at register `reg` plus `offset`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Deref {
        /// The base register (a `pt_regs` word); `u32::MAX`: unused.
        pub reg: u32,
        /// Bytes read (1, 2, 4 or 8).
        pub size: u32,
        /// Added to the register.
        pub offset: i64,
    }

    /// What probe `i` reads at each hit.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TraceProbe {
        /// The strings.
        pub strings: [StrSource; STR_SLOTS],
        /// The memory operands.
        pub derefs: [Deref; DEREFS],
        /// Tracepoints: bytes of the record to copy (at most
        /// [`RECORD_BYTES`]).
        pub record_len: u32,
        /// Padding.
        pub _pad: u32,
    }

    /// String `i` was cut: bit `i` of [`TraceEvent::flags`].
    pub const FLAG_STR_TRUNCATED: u32 = 1;
    /// String `i` could not be read: bit `8 + i`.
    pub const FLAG_STR_UNREADABLE: u32 = 1 << 8;
    /// Memory operand `i` could not be read: bit `16 + i`.
    pub const FLAG_DEREF_UNREADABLE: u32 = 1 << 16;

    /// One hit.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct TraceEvent {
        /// CLOCK_MONOTONIC nanoseconds.
        pub ts_ns: u64,
        /// Process.
        pub pid: u32,
        /// Thread.
        pub tid: u32,
        /// The probe index.
        pub probe: u32,
        /// `FLAG_*` bits.
        pub flags: u32,
        /// The thread's name.
        pub comm: [u8; COMM_LEN],
        /// Uprobes: `struct pt_regs` at the hit.
        pub regs: [u64; REGS],
        /// The memory operands' values (zero-extended).
        pub derefs: [u64; DEREFS],
        /// Tracepoints: the start of the record.
        pub record: [u8; RECORD_BYTES],
        /// The strings, NUL-terminated.
        pub strings: [[u8; STR_LEN]; STR_SLOTS],
    }

    #[cfg(feature = "user")]
    // SAFETY: `#[repr(C)]`, `Copy`, integers only with explicit padding.
    unsafe impl aya::Pod for TraceProbe {}
}

/// wakeuptime and stackcount: time blocked summed by the waker's stacks,
/// and hits of probes counted by stack. Stacks are the kernel's own
/// (`bpf_get_stackid` into a stack-trace map: frame pointers for user
/// stacks), as bcc's tools take them.
pub mod wakestack {
    /// sched_switch (raw): a thread that leaves the CPU blocked.
    pub const WAKE_SWITCH_PROGRAM: &str = "wakeuptime_switch";
    /// sched_waking (raw): in the waker's context, the time its target
    /// was blocked, under the waker's stacks.
    pub const WAKE_WAKING_PROGRAM: &str = "wakeuptime_waking";
    /// stackcount: a uprobe at a function's entry (its caller's return
    /// address is read from the top of the stack).
    pub const STACKCOUNT_ENTRY_PROGRAM: &str = "stackcount_entry";
    /// stackcount: a uprobe inside a function (a USDT probe).
    pub const STACKCOUNT_UPROBE_PROGRAM: &str = "stackcount_uprobe";
    /// stackcount: a tracepoint.
    pub const STACKCOUNT_TP_PROGRAM: &str = "stackcount_tp";

    /// Hash map from a blocked thread's id to when it left the CPU.
    pub const WAKE_START: &str = "WAKE_START";
    /// Hash map from [`WakeKey`] to nanoseconds blocked.
    pub const WAKE_COUNTS: &str = "WAKE_COUNTS";
    /// Hash map from [`StackCountKey`] to hits.
    pub const STACKCOUNT_COUNTS: &str = "STACKCOUNT_COUNTS";
    /// The stack-trace map both tools store stacks in.
    pub const STACK_IDS: &str = "WAKESTACK_IDS";
    /// Per-CPU array of one [`ToolStats`](super::tools::ToolStats).
    pub const STATS: &str = "WAKESTACK_STATS";
    /// Global [`WakeStackConfig`].
    pub const CONFIG: &str = "WAKESTACK_CONFIG";

    /// Stacks kept by default (bcc's `--stack-storage-size` default).
    pub const DEFAULT_STACK_STORAGE: u32 = 16_384;
    /// Keys counted at most.
    pub const COUNTS_ENTRIES: u32 = 16_384;
    /// Blocked threads tracked at once.
    pub const START_ENTRIES: u32 = 16_384;
    /// Frames a stack-trace map entry holds (`PERF_MAX_STACK_DEPTH`).
    pub const STACK_DEPTH: usize = 127;
    /// The stack id of a stack not taken (`-U`/`-K`).
    pub const NOT_TAKEN: i32 = i32::MIN;

    /// What the programs do, filled in by the loader.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct WakeStackConfig {
        /// wakeuptime: blocks shorter than this are left out.
        pub min_block_ns: u64,
        /// wakeuptime: blocks longer than this are left out.
        pub max_block_ns: u64,
        /// wakeuptime: kernel threads' blocks are left out (bcc's `-u`).
        pub user_threads_only: u32,
        /// Take user stacks.
        pub user_stacks: u32,
        /// Take kernel stacks.
        pub kernel_stacks: u32,
        /// Explicit padding.
        pub _pad: u32,
    }

    /// wakeuptime's key: who woke whom, and the waker's stacks (ids in
    /// [`STACK_IDS`], a negative errno when not stored, [`NOT_TAKEN`]).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct WakeKey {
        /// The waker's process id (its user stack's address space).
        pub waker_tgid: u32,
        /// The woken thread's process id.
        pub target_tgid: u32,
        /// The waker's user stack.
        pub user_stack: i32,
        /// The waker's kernel stack.
        pub kernel_stack: i32,
        /// The waker's thread name.
        pub waker: [u8; 16],
        /// The woken thread's name.
        pub target: [u8; 16],
    }

    /// stackcount's key: the process, its stacks, and, at a function's
    /// entry, the caller's return address (frame-pointer walks from a
    /// function's first instruction skip the caller).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct StackCountKey {
        /// Process id.
        pub tgid: u32,
        /// Thread id.
        pub tid: u32,
        /// User stack (as in [`WakeKey`]).
        pub user_stack: i32,
        /// Kernel stack.
        pub kernel_stack: i32,
        /// At a function's entry: the word on top of the user stack (the
        /// caller's return address); else 0.
        pub entry_return: u64,
        /// The thread's name.
        pub comm: [u8; 16],
    }

    #[cfg(feature = "user")]
    // SAFETY: `#[repr(C)]`, `Copy`, integers only, no implicit padding.
    unsafe impl aya::Pod for WakeStackConfig {}
    #[cfg(feature = "user")]
    // SAFETY: as above.
    unsafe impl aya::Pod for WakeKey {}
    #[cfg(feature = "user")]
    // SAFETY: as above.
    unsafe impl aya::Pod for StackCountKey {}
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, `Copy`, and made only of
    // integers and integer arrays with explicit padding fields, so every bit
    // pattern is valid and no byte is uninitialised.
    unsafe impl aya::Pod for super::filter::FilterConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::kernel::KernelOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::Row {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::MapEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::ProcMaps {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::PageKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::PageInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::unwind::Request {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::SamplerConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::SampleKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::StackTrace {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::SampleStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::OffCpuStart {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::sampler::LateWalk {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::HistKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::ToolStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::HistValue {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::ToolOffsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::BlockFields {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::SockFields {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::ToolConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::SyscallKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::SyscallStat {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::SyscallName {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::TcpConnConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::TcpPortKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::OomFields {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::MountConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::tools::CapableConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::irqs::IrqKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::irqs::IrqStart {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::irqs::IrqConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::runqlen::RunqlenConfig {}
}

#[cfg(test)]
mod tests {
    use super::{sampler::*, unwind::*};

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(core::mem::size_of::<SampleKey>(), 64);
        assert_eq!(core::mem::size_of::<Row>(), 8);
        assert_eq!(core::mem::size_of::<Request>(), 8);
        assert_eq!(core::mem::size_of::<ProcMaps>(), 8 + 32 * MAX_MAPPINGS);
        assert_eq!(core::mem::size_of::<StackTrace>(), 8 + 8 * MAX_FRAMES);
        assert_eq!(core::mem::size_of::<SampleStats>(), 8 * (15 + END_REASONS));
        assert_eq!(core::mem::size_of::<LateWalk>(), 64 + 8 + 32 + LATE_STACK_BYTES);
        assert_eq!(core::mem::size_of::<super::filter::FilterConfig>(), 24);
        assert_eq!(core::mem::size_of::<super::kernel::KernelOffsets>(), 36);
        assert_eq!(core::mem::size_of::<OffCpuStart>(), 72);
        use super::tools::*;
        assert_eq!(core::mem::size_of::<HistKey>(), 16);
        assert_eq!(core::mem::size_of::<ToolStats>(), 40);
        assert_eq!(core::mem::size_of::<ToolOffsets>(), 76);
        assert_eq!(core::mem::size_of::<ExecEvent>(), 40 + 16 + 128 * 21);
        assert_eq!(core::mem::size_of::<ToolConfig>(), 48);
        assert_eq!(core::mem::size_of::<BlockFields>(), 40);
        assert_eq!(core::mem::size_of::<SockFields>(), 88);
        assert_eq!(core::mem::size_of::<SyscallKey>(), 8);
        assert_eq!(core::mem::size_of::<SyscallStat>(), 24);
        assert_eq!(core::mem::size_of::<BioKey>(), 16);
        assert_eq!(core::mem::size_of::<BioStart>(), 40);
        assert_eq!(core::mem::size_of::<BioEvent>(), 80);
        assert_eq!(core::mem::size_of::<ExecRetEvent>(), 40);
        assert_eq!(core::mem::size_of::<TcpLifeEvent>(), 96);
        assert_eq!(core::mem::size_of::<TcpRetransEvent>(), 64);
        assert_eq!(core::mem::size_of::<TcpConnConfig>(), 32);
        assert_eq!(core::mem::size_of::<TcpConnEvent>(), 80);
        assert_eq!(core::mem::size_of::<OomEvent>(), 80);
        assert_eq!(core::mem::size_of::<MountStart>(), 48);
        assert_eq!(core::mem::size_of::<MountEvent>(), 56 + 128 + 128 + 32 + 128);
        assert_eq!(core::mem::size_of::<CapableEvent>(), 48);
        assert_eq!(core::mem::size_of::<super::irqs::IrqKey>(), 48);
        assert_eq!(core::mem::size_of::<super::irqs::IrqStart>(), 56);
        assert_eq!(core::mem::size_of::<super::irqs::IrqConfig>(), 16);
        assert_eq!(core::mem::size_of::<super::runqlen::RunqlenConfig>(), 16);
        assert_eq!(core::mem::size_of::<super::trace::TraceProbe>(), 32 + 16 * 6 + 8);
        assert_eq!(core::mem::size_of::<super::trace::TraceEvent>(), 40 + 8 * 21 + 8 * 6 + 256 + 128 * 4);
        assert_eq!(core::mem::size_of::<super::wakestack::WakeStackConfig>(), 32);
        assert_eq!(core::mem::size_of::<super::wakestack::WakeKey>(), 48);
        assert_eq!(core::mem::size_of::<super::wakestack::StackCountKey>(), 40);
    }

    #[test]
    fn frames_encode_file_and_offset() {
        let f = encode_frame(5, 0x1234);
        assert_eq!(decode_frame(f), Some((5, 0x1234)));
        assert_eq!(decode_frame(0x7fff_1234_5678), None);
        assert_eq!(decode_frame(encode_frame(MAX_FILE_ID, (1 << 40) - 1)), Some((MAX_FILE_ID, (1 << 40) - 1)));
    }

    #[test]
    fn merge_sums_counters() {
        let mut a = SampleStats { samples: 3, stacks_full: 1, ..Default::default() };
        let mut b = SampleStats { samples: 4, ..Default::default() };
        b.user_end[END_DEPTH as usize] = 2;
        a.merge(&b);
        assert_eq!(a.samples, 7);
        assert_eq!(a.user_end[END_DEPTH as usize], 2);
    }
}
