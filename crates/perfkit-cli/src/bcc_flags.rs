//! bcc's (and libbpf-tools') flags on the tools named after theirs: each is
//! accepted with bcc's meaning, or refused here, before clap parses, with a
//! message naming perfkit's equivalent. A flag perfkit also spells but
//! means otherwise is never taken silently. docs/TOOLS.md holds this table
//! row by row (a test keeps them in step).

use std::ffi::OsString;

/// What perfkit does with a bcc flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted, with bcc's meaning; the example parses.
    Same(&'static str),
    /// Refused, naming perfkit's equivalent.
    Refused(&'static str),
    /// Refused when given bare (bcc's flag takes no value; perfkit's flag
    /// of that letter takes one, which is accepted).
    BareRefused(&'static str),
}

/// One flag of a bcc tool.
#[derive(Clone, Copy, Debug)]
pub struct BccFlag {
    /// The perfkit command (bcc's tool name, `offcpu` for offcputime).
    pub tool: &'static str,
    /// The flag as bcc spells it (`-T`, `--max-args`).
    pub flag: &'static str,
    /// Whether bcc's flag takes a value.
    pub takes_value: bool,
    /// What it means in bcc.
    pub meaning: &'static str,
    /// What perfkit does with it.
    pub disposition: Disposition,
}

use Disposition::{BareRefused, Refused, Same};

const fn f(
    tool: &'static str,
    flag: &'static str,
    takes_value: bool,
    meaning: &'static str,
    disposition: Disposition,
) -> BccFlag {
    BccFlag { tool, flag, takes_value, meaning, disposition }
}

const JQ: &str = "--json, and filter its lines (jq)";
const GLOBS: &str = "patterns are globs (* ? [...]): 'c:read*'";
const ADDRESSES: &str = "--addresses (perfkit's -v is log verbosity)";
const PRECOMPILED: &str = "the BPF programs are compiled ahead of time: there is no source to print";
const STACKS: &str = "trace prints no stacks; count them with perfkit stackcount or perfkit profile";
const NO_C: &str = "expressions are not C: they name arg1..arg6, retval, args->FIELD and the signature's parameters";

/// Every flag of bcc's and libbpf-tools' versions of perfkit's tools.
pub const FLAGS: &[BccFlag] = &[
    // offcputime
    f("offcpu", "-p", true, "trace these PIDs", Same("1")),
    f("offcpu", "-t", true, "trace these TIDs", Same("1")),
    f("offcpu", "-u", false, "user threads only", Refused("select threads with -p, -t or --cgroup")),
    f("offcpu", "-k", false, "kernel threads only", Refused("select threads with -p, -t or --cgroup")),
    f(
        "offcpu",
        "-U",
        false,
        "user stacks only",
        Refused("both stacks are kept; kernel frames end in _[k] in -f folded"),
    ),
    f(
        "offcpu",
        "-K",
        false,
        "kernel stacks only",
        Refused("both stacks are kept; kernel frames end in _[k] in -f folded"),
    ),
    f(
        "offcpu",
        "-d",
        false,
        "a delimiter between kernel and user stacks",
        BareRefused("kernel frames end in _[k]; perfkit's -d is DURATION"),
    ),
    f("offcpu", "-f", false, "folded output", BareRefused("-f folded")),
    f("offcpu", "--stack-storage-size", true, "stack map entries", Refused("--stack-map-size N")),
    f("offcpu", "-m", true, "shortest block, us", Same("1000")),
    f("offcpu", "-M", true, "longest block, us", Same("1000000")),
    f("offcpu", "--state", true, "thread state filter (a number)", Same("interruptible")),
    f(
        "offcpu",
        "--perf-max-stack-depth",
        true,
        "stack depth (libbpf-tools)",
        Refused("stacks are kept whole up to the unwinder's bound"),
    ),
    f(
        "offcpu",
        "DURATION",
        true,
        "seconds to trace (positional)",
        Refused("-d DURATION (a positional word is the command to run)"),
    ),
    f("offcpu", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // runqlat
    f("runqlat", "-T", false, "timestamps on each interval", Same("")),
    f("runqlat", "-m", false, "milliseconds", Same("")),
    f("runqlat", "-P", false, "a histogram per process", Same("")),
    f("runqlat", "--pidnss", false, "a histogram per PID namespace", Same("")),
    f("runqlat", "-L", false, "a histogram per thread", Same("")),
    f("runqlat", "-p", true, "this PID only", Same("1")),
    f("runqlat", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    f("runqlat", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // biolatency
    f("biolatency", "-T", false, "timestamps on each interval", Same("")),
    f("biolatency", "-Q", false, "include OS queued time", Same("")),
    f("biolatency", "-m", false, "milliseconds", Same("")),
    f("biolatency", "-D", false, "a histogram per disk", Same("")),
    f("biolatency", "-F", false, "a histogram per I/O flag set", Same("")),
    f(
        "biolatency",
        "-e",
        false,
        "extended summary (average)",
        Refused("--json: count and sum_usecs of each histogram"),
    ),
    f("biolatency", "-j", false, "JSON output", Refused("--json")),
    f("biolatency", "-d", true, "this disk only", Refused("-D: one histogram per disk")),
    f(
        "biolatency",
        "-c",
        true,
        "this cgroup only (libbpf-tools)",
        Refused("no cgroup filter: biosnoop shows the issuing process"),
    ),
    f("biolatency", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // biosnoop
    f("biosnoop", "-Q", false, "include OS queued time", Same("")),
    f("biosnoop", "-d", true, "this disk only", Same("sda")),
    f(
        "biosnoop",
        "-P",
        false,
        "an I/O pattern column (sequential or random)",
        Refused("--json: sector and bytes of each I/O"),
    ),
    f("biosnoop", "-t", false, "a timestamp column (libbpf-tools)", Refused("TIME(s) is always shown")),
    f("biosnoop", "-m", true, "I/O above this latency only, ms (libbpf-tools)", Refused(JQ)),
    f(
        "biosnoop",
        "-c",
        true,
        "this cgroup only (libbpf-tools)",
        Refused("no cgroup filter: the issuing process is shown"),
    ),
    f("biosnoop", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // syscount
    f("syscount", "-p", true, "this PID only", Same("1")),
    f("syscount", "-t", true, "this TID only", Refused("-p PID")),
    f("syscount", "-i", true, "print every INTERVAL seconds", Refused("INTERVAL, positional: syscount 5")),
    f("syscount", "-d", true, "trace for DURATION seconds", Refused("INTERVAL COUNT: syscount 10 1")),
    f("syscount", "-T", true, "the top N rows", Same("5")),
    f("syscount", "-x", false, "failed calls only", Same("")),
    f(
        "syscount",
        "-e",
        true,
        "calls failing with this errno only",
        Refused("-x: all failed calls (the errors column)"),
    ),
    f("syscount", "-L", false, "time in the calls", Same("")),
    f("syscount", "-m", false, "milliseconds", Same("")),
    f("syscount", "-P", false, "per process", Same("")),
    f(
        "syscount",
        "-l",
        false,
        "list the syscall names",
        Refused("names are read from the kernel as rows appear; --json gives them"),
    ),
    f("syscount", "--syscall", true, "this syscall only", Refused(JQ)),
    f("syscount", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    f("syscount", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // execsnoop
    f("execsnoop", "-T", false, "a time column (HH:MM:SS)", Same("")),
    f("execsnoop", "-t", false, "a timestamp column (seconds)", Same("")),
    f("execsnoop", "-x", false, "include failed execs", Same("")),
    f("execsnoop", "--cgroupmap", true, "cgroups in a BPF map only", Refused("--cgroup PATH")),
    f(
        "execsnoop",
        "--mntnsmap",
        true,
        "mount namespaces in a BPF map only",
        Refused("--cgroup PATH (a container's group)"),
    ),
    f("execsnoop", "-u", true, "this UID only", Same("1000")),
    f("execsnoop", "-q", false, "quote the arguments", Same("")),
    f("execsnoop", "-n", true, "commands matching NAME only", Same("sh")),
    f("execsnoop", "-l", true, "commands with an argument matching LINE only", Same("x")),
    f("execsnoop", "-U", false, "a UID column", Same("")),
    f(
        "execsnoop",
        "--max-args",
        true,
        "arguments kept",
        Refused("a successful exec keeps 2560 bytes of argv, a failed one 20 arguments"),
    ),
    f("execsnoop", "-P", true, "children of this PPID only", Same("1")),
    f("execsnoop", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    f("execsnoop", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // opensnoop
    f("opensnoop", "-T", false, "a timestamp column (seconds)", Same("")),
    f("opensnoop", "-U", false, "a UID column", Same("")),
    f("opensnoop", "-x", false, "failed opens only", Same("")),
    f("opensnoop", "-p", true, "this PID only", Same("1")),
    f("opensnoop", "-t", true, "this TID only", Same("1")),
    f("opensnoop", "--cgroupmap", true, "cgroups in a BPF map only", Refused("--cgroup PATH")),
    f(
        "opensnoop",
        "--mntnsmap",
        true,
        "mount namespaces in a BPF map only",
        Refused("--cgroup PATH (a container's group)"),
    ),
    f("opensnoop", "-u", true, "this UID only", Same("1000")),
    f("opensnoop", "-d", true, "trace for DURATION seconds", Same("5")),
    f("opensnoop", "-n", true, "process names containing NAME only", Same("sh")),
    f("opensnoop", "-e", false, "extended fields (flags)", Same("")),
    f("opensnoop", "-f", true, "opens with this flag only", Same("O_WRONLY")),
    f("opensnoop", "-F", false, "full paths of relative ones", Refused("paths are shown as passed")),
    f("opensnoop", "-b", true, "perf buffer pages", Refused("the ring buffer is 1 MiB; losses are counted")),
    f("opensnoop", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    f("opensnoop", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // tcplife
    f("tcplife", "-T", false, "a time column (HH:MM:SS)", Same("")),
    f("tcplife", "-t", false, "a timestamp column (seconds)", Same("")),
    f("tcplife", "-w", false, "wide columns", Same("")),
    f("tcplife", "-s", false, "comma-separated output", Refused("--json")),
    f("tcplife", "-p", true, "this PID only", Same("1")),
    f("tcplife", "-L", true, "these local ports only", Same("80")),
    f("tcplife", "-D", true, "these remote ports only", Same("80")),
    f("tcplife", "-4", false, "IPv4 only", Same("")),
    f("tcplife", "-6", false, "IPv6 only", Same("")),
    f("tcplife", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // tcpretrans
    f("tcpretrans", "-l", false, "tail loss probes too", Refused("tail loss probes need a kprobe: not traced")),
    f("tcpretrans", "-c", false, "counts by flow at the end", Same("")),
    f("tcpretrans", "-4", false, "IPv4 only", Same("")),
    f("tcpretrans", "-6", false, "IPv6 only", Same("")),
    f("tcpretrans", "-s", false, "sequence numbers", Refused("no sequence numbers are read")),
    f("tcpretrans", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // tcpconnect
    f("tcpconnect", "-t", false, "a timestamp column (seconds)", Same("")),
    f("tcpconnect", "-p", true, "this PID only", Same("1")),
    f("tcpconnect", "-P", true, "these remote ports only", Same("80")),
    f(
        "tcpconnect",
        "-L",
        false,
        "a local port column",
        Refused("the local port is chosen after the SYN_SENT moment traced; tcplife shows it"),
    ),
    f("tcpconnect", "-4", false, "IPv4 only", Same("")),
    f("tcpconnect", "-6", false, "IPv6 only", Same("")),
    f("tcpconnect", "-U", false, "a UID column", Same("")),
    f("tcpconnect", "-u", true, "this UID only", Same("0")),
    f("tcpconnect", "-c", false, "counts by address and port at the end", Same("")),
    f(
        "tcpconnect",
        "-d",
        false,
        "DNS names of the addresses",
        BareRefused("no DNS tracking; perfkit's -d is DURATION"),
    ),
    f("tcpconnect", "--cgroupmap", true, "cgroups in a BPF map only", Refused("--cgroup PATH")),
    f(
        "tcpconnect",
        "--mntnsmap",
        true,
        "mount namespaces in a BPF map only",
        Refused("--cgroup PATH (a container's group)"),
    ),
    f(
        "tcpconnect",
        "-s",
        false,
        "count by source port too (libbpf-tools)",
        Refused("the local port is not chosen yet when a connect is traced; tcplife shows it"),
    ),
    f("tcpconnect", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // tcpaccept
    f("tcpaccept", "-T", false, "a time column (HH:MM:SS)", Same("")),
    f("tcpaccept", "-t", false, "a timestamp column (seconds)", Same("")),
    f("tcpaccept", "-p", true, "this PID only", Same("1")),
    f("tcpaccept", "-P", true, "these local ports only", Same("22")),
    f("tcpaccept", "-4", false, "IPv4 only", Same("")),
    f("tcpaccept", "-6", false, "IPv6 only", Same("")),
    f("tcpaccept", "--cgroupmap", true, "cgroups in a BPF map only", Refused("--cgroup PATH")),
    f(
        "tcpaccept",
        "--mntnsmap",
        true,
        "mount namespaces in a BPF map only",
        Refused("--cgroup PATH (a container's group)"),
    ),
    // mountsnoop (bcc's has no flags; these are libbpf-tools')
    f("mountsnoop", "-p", true, "this PID only (libbpf-tools)", Same("1")),
    f("mountsnoop", "-t", false, "a timestamp column (libbpf-tools)", Same("")),
    f(
        "mountsnoop",
        "-d",
        false,
        "detailed output, a field per line (libbpf-tools)",
        BareRefused("--json gives every field; perfkit's -d is DURATION"),
    ),
    f("mountsnoop", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // capable
    f("capable", "-v", false, "non-audit checks too", Refused("--non-audit (perfkit's -v is log verbosity)")),
    f("capable", "-p", true, "this PID only", Same("1")),
    f("capable", "-K", false, "kernel stacks", Refused("no stacks are kept: one line per check")),
    f("capable", "-U", false, "user stacks", Refused("no stacks are kept: one line per check")),
    f("capable", "-x", false, "extra columns (TID, INSETID)", Same("")),
    f(
        "capable",
        "--unique",
        false,
        "each stack once per process",
        Refused("no stacks are shown; every check is a line"),
    ),
    f("capable", "--cgroupmap", true, "cgroups in a BPF map only", Refused("--cgroup PATH")),
    f(
        "capable",
        "--mntnsmap",
        true,
        "mount namespaces in a BPF map only",
        Refused("--cgroup PATH (a container's group)"),
    ),
    f("capable", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    // hardirqs
    f("hardirqs", "-T", false, "timestamps on each interval", Same("")),
    f("hardirqs", "-N", false, "nanoseconds", Same("")),
    f("hardirqs", "-C", false, "event counts instead of time", Same("")),
    f("hardirqs", "-d", false, "histograms instead of totals", Same("")),
    f("hardirqs", "-c", true, "this CPU only (libbpf-tools: a cgroup, --cgroup)", Same("0")),
    f(
        "hardirqs",
        "--cgroup",
        true,
        "interrupts in a cgroup's tasks only (libbpf-tools)",
        Refused("none: an interrupt belongs to no cgroup; -c CPU narrows to a CPU"),
    ),
    f("hardirqs", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // softirqs
    f("softirqs", "-T", false, "timestamps on each interval", Same("")),
    f("softirqs", "-N", false, "nanoseconds", Same("")),
    f("softirqs", "-C", false, "event counts instead of time", Same("")),
    f("softirqs", "-d", false, "histograms instead of totals", Same("")),
    f("softirqs", "-c", true, "this CPU only", Same("0")),
    f("softirqs", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // runqlen
    f("runqlen", "-T", false, "timestamps on each interval", Same("")),
    f("runqlen", "-C", false, "a histogram per CPU", Same("")),
    f("runqlen", "-O", false, "run-queue occupancy", Same("")),
    f("runqlen", "-H", false, "with -O, the histograms too (libbpf-tools)", Same("")),
    f("runqlen", "-f", true, "samples per second (libbpf-tools)", Same("99")),
    f("runqlen", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // funccount
    f("funccount", "-p", true, "this PID only", Same("1")),
    f("funccount", "-i", true, "print every INTERVAL seconds", Same("1")),
    f("funccount", "-d", true, "trace for DURATION seconds", Same("1")),
    f("funccount", "-T", false, "a timestamp on each interval", Same("")),
    f("funccount", "-r", false, "patterns are regular expressions", Refused(GLOBS)),
    f("funccount", "-D", false, "print the BPF program", Refused(PRECOMPILED)),
    f(
        "funccount",
        "-c",
        true,
        "this CPU only",
        Refused("no CPU filter: select processes with -p, --cgroup or a command"),
    ),
    // funclatency
    f("funclatency", "-p", true, "this PID only", Same("1")),
    f("funclatency", "-i", true, "print every INTERVAL seconds", Same("1")),
    f("funclatency", "-d", true, "trace for DURATION seconds", Same("1")),
    f("funclatency", "-T", false, "a timestamp on each interval", Same("")),
    f("funclatency", "-u", false, "microseconds", Same("")),
    f("funclatency", "-m", false, "milliseconds", Same("")),
    f(
        "funclatency",
        "-F",
        false,
        "a histogram per function",
        Refused("one histogram of every function matched: run one funclatency per function"),
    ),
    f("funclatency", "-r", false, "patterns are regular expressions", Refused(GLOBS)),
    f(
        "funclatency",
        "-l",
        true,
        "nesting levels of recursive calls",
        Refused("each thread's latest entry is timed: recursive calls are not nested"),
    ),
    f("funclatency", "-c", true, "this cgroup only (libbpf-tools)", Refused("--cgroup PATH")),
    f("funclatency", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // memleak
    f("memleak", "-p", true, "this PID's allocator", Same("1")),
    f(
        "memleak",
        "-t",
        false,
        "print each allocation and free as it happens",
        Refused("-a: every outstanding allocation, with its address, size and age"),
    ),
    f("memleak", "-a", false, "list the outstanding allocations too", Same("")),
    f("memleak", "-o", true, "leave out allocations younger than OLDER ms", Same("500")),
    f("memleak", "-c", true, "run and watch this command", Same("true")),
    f("memleak", "--combined-only", false, "only each stack's totals, kept in the kernel", Same("")),
    f("memleak", "-C", false, "--combined-only (libbpf-tools)", Same("")),
    f("memleak", "--wa-missing-free", false, "drop an allocation whose address is allocated again", Same("")),
    f("memleak", "-F", false, "--wa-missing-free (libbpf-tools)", Same("")),
    f("memleak", "-s", true, "record one allocation in SAMPLE_RATE", Same("4")),
    f("memleak", "-T", true, "the top N stacks", Same("5")),
    f("memleak", "-z", true, "allocations of at least MIN_SIZE bytes only", Same("16")),
    f("memleak", "-Z", true, "allocations of at most MAX_SIZE bytes only", Same("4096")),
    f("memleak", "-O", true, "the allocator object", Same("c")),
    f(
        "memleak",
        "--percpu",
        false,
        "per-CPU allocations (percpu tracepoints)",
        Refused("kernel mode watches kmalloc, kmem_cache and page allocations; per-CPU ones are not traced"),
    ),
    f(
        "memleak",
        "-P",
        false,
        "--percpu (libbpf-tools)",
        Refused("kernel mode watches kmalloc, kmem_cache and page allocations; per-CPU ones are not traced"),
    ),
    f("memleak", "-v", false, "verbose debug output (libbpf-tools)", Same("")),
    // trace
    f("trace", "-p", true, "this PID only", Same("1")),
    f("trace", "-L", true, "this TID only", Refused("-p PID (processes)")),
    f("trace", "--uid", true, "this user only", Refused("-p PID or --cgroup PATH")),
    f("trace", "-c", true, "this cgroup only", Refused("--cgroup PATH")),
    f("trace", "-b", true, "perf buffer pages", Refused("the ring buffer is 4 MiB; lost hits are counted")),
    f("trace", "-v", false, "print the BPF program", Refused(PRECOMPILED)),
    f("trace", "--ebpf", false, "print the BPF program and exit", Refused(PRECOMPILED)),
    f("trace", "-Z", true, "maximum string size", Same("20")),
    f(
        "trace",
        "-S",
        false,
        "include trace's own process",
        Refused("perfkit traces its own process as any other: -p PID to narrow"),
    ),
    f("trace", "-M", true, "stop after this many events", Same("5")),
    f("trace", "-t", false, "a TIME column: seconds since the start", Same("")),
    f(
        "trace",
        "-u",
        false,
        "with -t: the UNIX time",
        Refused("-T for the clock time, --json for time_s since the start"),
    ),
    f("trace", "-T", false, "a TIME column: the clock time", Same("")),
    f("trace", "-C", false, "a CPU column", Refused("the CPU is not recorded")),
    f("trace", "-n", true, "processes whose name contains this", Same("app")),
    f("trace", "-f", true, "messages containing this", Same("x")),
    f("trace", "-B", false, "STRCMP of binary values", Refused("strings compare with == and != in filters")),
    f("trace", "-s", true, "symbol files for stacks", Refused(STACKS)),
    f("trace", "-K", false, "kernel stacks", Refused(STACKS)),
    f("trace", "-U", false, "user stacks", Refused(STACKS)),
    f("trace", "-a", false, "addresses in stacks", Refused(STACKS)),
    f("trace", "-I", true, "a C header to include", Refused(NO_C)),
    f("trace", "-A", false, "aggregate messages", Refused("count values with perfkit argdist -C")),
    // argdist
    f("argdist", "-p", true, "this PID only", Same("1")),
    f("argdist", "-t", true, "this TID only", Refused("-p PID (processes)")),
    f("argdist", "-z", true, "maximum string size", Same("20")),
    f("argdist", "-i", true, "print every INTERVAL seconds", Same("1")),
    f("argdist", "-d", true, "trace for DURATION seconds", Same("1")),
    f("argdist", "-n", true, "exit after this many outputs", Same("1")),
    f("argdist", "-v", false, "print the BPF program", Refused(PRECOMPILED)),
    f("argdist", "--ebpf", false, "print the BPF program and exit", Refused(PRECOMPILED)),
    f("argdist", "-c", false, "do not clear at each interval", Same("")),
    f("argdist", "-T", true, "the top TOP values of each count", Same("3")),
    f("argdist", "-H", true, "a log2 histogram of a specifier", Same("p:c:malloc(size_t n):u64:n")),
    f("argdist", "-C", true, "counts of a specifier's values", Same("p:c:malloc(size_t n):u64:n")),
    f("argdist", "-I", true, "a C header to include", Refused(NO_C)),
    // wakeuptime
    f("wakeuptime", "-p", true, "this PID only", Same("1")),
    f("wakeuptime", "-u", false, "user threads only", Same("")),
    f("wakeuptime", "-v", false, "raw addresses too", Refused(ADDRESSES)),
    f("wakeuptime", "-f", false, "folded output", Same("")),
    f("wakeuptime", "--stack-storage-size", true, "stack map entries", Same("1024")),
    f("wakeuptime", "-m", true, "shortest block, us", Same("1000")),
    f("wakeuptime", "-M", true, "longest block, us", Same("1000000")),
    f(
        "wakeuptime",
        "DURATION",
        true,
        "seconds to trace (positional)",
        Refused("-d DURATION (a positional word is the command to run, after --)"),
    ),
    // stackcount
    f("stackcount", "-p", true, "this PID only", Same("1")),
    f(
        "stackcount",
        "-c",
        true,
        "this CPU only",
        Refused("no CPU filter: select processes with -p, --cgroup or a command"),
    ),
    f("stackcount", "-i", true, "print every INTERVAL seconds", Same("1")),
    f("stackcount", "-D", true, "trace for DURATION seconds", Same("1")),
    f("stackcount", "-T", false, "a timestamp on each interval", Same("")),
    f("stackcount", "-r", false, "patterns are regular expressions", Refused(GLOBS)),
    f("stackcount", "-s", false, "address offsets", Refused("--addresses: each stack's addresses beside its names")),
    f("stackcount", "-P", false, "a stack per process", Same("")),
    f("stackcount", "-K", false, "kernel stacks only", Same("")),
    f("stackcount", "-U", false, "user stacks only", Same("")),
    f("stackcount", "-v", false, "raw addresses too", Refused(ADDRESSES)),
    f("stackcount", "-d", false, "a delimiter between kernel and user stacks", Same("")),
    f("stackcount", "-f", false, "folded output", Same("")),
    f("stackcount", "--debug", false, "print the BPF program", Refused(PRECOMPILED)),
];

/// Accepted rows no integration test can exercise on the machines the
/// tests run on, and why (docs/TOOLS.md says so in the row): the
/// markers' check lets these alone be unmarked.
#[cfg(test)]
const UNTESTED: &[(&str, &str, &str)] = &[];

/// Options of perfkit's wakeuptime that take a value.
const WAKEUPTIME_VALUES: &[&str] = &[
    "-p",
    "--pid",
    "--cgroup",
    "-d",
    "--duration",
    "-m",
    "--min-block-time",
    "-M",
    "--max-block-time",
    "--stack-storage-size",
    "--max-memory",
];

/// Options of perfkit's offcpu that take a value (their values are not the
/// command).
const OFFCPU_VALUES: &[&str] = &[
    "-p",
    "--pid",
    "-t",
    "--tid",
    "--cgroup",
    "-d",
    "--duration",
    "-o",
    "--output",
    "-f",
    "--format",
    "--folded",
    "--title",
    "--top",
    "-m",
    "--min-block",
    "-M",
    "--max-block",
    "--state",
    "--unwind",
    "--stack-map-size",
    "--counts-map-size",
    "--table-rows",
    "--max-memory",
];

fn refusal(e: &BccFlag, equivalent: &str) -> String {
    format!(
        "perfkit {}: {} is bcc's \"{}\", which perfkit does not take; instead: {equivalent} (docs/TOOLS.md lists bcc's flags)",
        e.tool, e.flag, e.meaning
    )
}

/// Refuses a bcc flag perfkit does not take with bcc's meaning, naming
/// perfkit's equivalent. `args` is the whole command line.
pub fn check(args: &[OsString]) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    // The command: the first word after the global options.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--max-memory" {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    let Some(tool) = args.get(i).map(String::as_str) else { return Ok(()) };
    let flags: Vec<&BccFlag> = FLAGS.iter().filter(|e| e.tool == tool).collect();
    if flags.is_empty() {
        return Ok(());
    }
    let rest = &args[i + 1..];
    let mut skip_value = false;
    for (k, a) in rest.iter().enumerate() {
        if a == "--" {
            break;
        }
        if skip_value {
            skip_value = false;
            continue;
        }
        let next = rest.get(k + 1);
        for e in &flags {
            let matches = if e.flag.starts_with("--") {
                a == e.flag || a.strip_prefix(e.flag).is_some_and(|r| r.starts_with('='))
            } else if e.flag.starts_with('-') {
                a == e.flag || (e.takes_value && a.starts_with(e.flag) && !a.starts_with("--"))
            } else {
                false
            };
            match e.disposition {
                Refused(eq) if matches => return Err(refusal(e, eq)),
                BareRefused(eq) if a == e.flag && next.is_none_or(|n| n.starts_with('-')) => {
                    return Err(refusal(e, eq));
                }
                _ => {}
            }
        }
        let values = match tool {
            "offcpu" => Some(OFFCPU_VALUES),
            "wakeuptime" => Some(WAKEUPTIME_VALUES),
            _ => None,
        };
        if let Some(values) = values {
            if values.contains(&a.as_str()) {
                skip_value = true;
            } else if !a.starts_with('-') {
                // The first word that is not an option starts the command:
                // bcc's positional DURATION would be run as one.
                if a.parse::<f64>().is_ok() {
                    let e = flags.iter().find(|e| e.flag == "DURATION").expect("the DURATION row");
                    if let Refused(eq) = e.disposition {
                        return Err(refusal(e, eq));
                    }
                }
                break;
            }
        }
    }
    Ok(())
}

/// The table as docs/TOOLS.md holds it, one row per flag.
#[cfg(test)]
fn markdown_rows() -> Vec<String> {
    FLAGS
        .iter()
        .map(|e| {
            let untested = UNTESTED.iter().find(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
            let what = match (e.disposition, untested) {
                (Same(_), Some((.., why))) => format!("accepted, same meaning (untested: {why})"),
                (Same(_), None) => "accepted, same meaning".to_owned(),
                (Refused(eq), _) => format!("refused: {eq}"),
                (BareRefused(eq), _) => format!("refused without a value: {eq}"),
            };
            format!("| {} | `{}` | {} | {what} |", e.tool, e.flag, e.meaning)
        })
        .collect()
}

/// The markers `// bcc-flags: TOOL -x --long` in the integration tests'
/// sources: (file, line number, tool, flag). A marker sits inside the test
/// function whose assertions would fail if the flag meant something else.
#[cfg(test)]
fn markers(sources: &[(String, String)]) -> Result<Vec<(String, usize, String, String)>, String> {
    let mut out = Vec::new();
    for (file, text) in sources {
        for (n, line) in text.lines().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("// bcc-flags:") else { continue };
            let mut words = rest.split_whitespace();
            let (Some(tool), Some(first)) = (words.next(), words.next()) else {
                return Err(format!("{file}:{}: a marker names a tool and its flags: {line:?}", n + 1));
            };
            if !line.starts_with(char::is_whitespace) {
                return Err(format!("{file}:{}: a marker goes inside the test function: {line:?}", n + 1));
            }
            for flag in std::iter::once(first).chain(words) {
                out.push((file.clone(), n + 1, tool.to_owned(), flag.to_owned()));
            }
        }
    }
    Ok(out)
}

/// What is wrong with the markers against the table: markers naming no
/// accepted row (stale), and accepted rows no marker names (untested).
#[cfg(test)]
fn marker_problems(markers: &[(String, usize, String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, line, tool, flag) in markers {
        match FLAGS.iter().find(|e| e.tool == tool && e.flag == flag) {
            None => problems.push(format!("{file}:{line}: marker `{tool} {flag}`: no such row in FLAGS")),
            Some(e) if !matches!(e.disposition, Same(_)) => problems
                .push(format!("{file}:{line}: marker `{tool} {flag}`: the row refuses it, so no test exercises it")),
            Some(_) => {}
        }
    }
    for &(tool, flag, _) in UNTESTED {
        if !FLAGS.iter().any(|e| e.tool == tool && e.flag == flag && matches!(e.disposition, Same(_))) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which is no accepted row"));
        } else if markers.iter().any(|(_, _, t, f)| t == tool && f == flag) {
            problems.push(format!("UNTESTED names `{tool} {flag}`, which a test is marked to exercise"));
        }
    }
    let untested = |e: &BccFlag| UNTESTED.iter().any(|(tool, flag, _)| *tool == e.tool && *flag == e.flag);
    for e in FLAGS.iter().filter(|e| matches!(e.disposition, Same(_)) && !untested(e)) {
        if !markers.iter().any(|(_, _, tool, flag)| tool == e.tool && flag == e.flag) {
            problems.push(format!(
                "{} {} ({}): accepted, and no test is marked `// bcc-flags: {} {}`",
                e.tool, e.flag, e.meaning, e.tool, e.flag
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("perfkit").chain(words.iter().copied()).map(OsString::from).collect()
    }

    /// Every flag of the table, as a bcc user types it.
    #[test]
    fn every_bcc_flag_is_taken_with_its_meaning_or_refused_by_name() {
        for e in FLAGS {
            match e.disposition {
                Same(example) => {
                    let mut words = vec![e.tool, e.flag];
                    if !example.is_empty() {
                        words.push(example);
                    }
                    assert!(check(&argv(&words)).is_ok(), "{e:?}");
                    if let Err(err) = crate::Cli::try_parse_from(argv(&words)) {
                        panic!("{words:?} does not parse: {err}");
                    }
                }
                Refused(eq) => {
                    let mut words = vec![e.tool];
                    if e.flag != "DURATION" {
                        words.push(e.flag);
                    }
                    if e.takes_value {
                        words.push("5");
                    }
                    let err = check(&argv(&words)).expect_err(e.flag);
                    assert!(err.contains(e.flag) && err.contains(eq), "{err}");
                    // The refusal comes first: clap would have taken some
                    // of these with another meaning.
                }
                BareRefused(eq) => {
                    let err = check(&argv(&[e.tool, e.flag, "-p", "1"])).expect_err(e.flag);
                    assert!(err.contains(eq), "{err}");
                    assert!(check(&argv(&[e.tool, e.flag])).is_err());
                    // With a value, perfkit's own flag of that letter.
                    assert!(check(&argv(&[e.tool, e.flag, "folded"])).is_ok());
                }
            }
        }
    }

    #[test]
    fn refusals_stop_at_the_command_and_skip_option_values() {
        // After `--`, the command's own flags.
        assert!(check(&argv(&["execsnoop", "--", "ls", "-l"])).is_ok());
        assert!(check(&argv(&["-v", "execsnoop", "--max-args", "5"])).is_err());
        assert!(check(&argv(&["--max-memory", "1G", "tcplife", "-s"])).is_err());
        // offcpu: a number after -d is its value, a bare number is bcc's
        // DURATION, a word is the command.
        assert!(check(&argv(&["offcpu", "-d", "5", "-p", "1"])).is_ok());
        assert!(check(&argv(&["offcpu", "5"])).is_err());
        assert!(check(&argv(&["offcpu", "sleep", "5"])).is_ok());
        // wakeuptime: bcc's positional DURATION is refused, -d is taken.
        assert!(check(&argv(&["wakeuptime", "5"])).is_err());
        assert!(check(&argv(&["wakeuptime", "-m", "5", "-d", "5"])).is_ok());
        assert!(check(&argv(&["profile", "-K"])).is_ok(), "not a bcc tool");
        // syscount -T is the top count, not timestamps and an interval.
        let cli = crate::Cli::try_parse_from(argv(&["syscount", "-T", "5"])).unwrap();
        assert!(format!("{cli:?}").contains("top: 5"), "{cli:?}");
    }

    /// Every accepted row is exercised by an integration test marked
    /// `// bcc-flags: TOOL FLAG...`, and every marker names an accepted row.
    #[test]
    fn every_accepted_bcc_flag_is_exercised_by_a_marked_test() {
        // The integration tests' sources, read at run time: a published
        // package has its tests/ but the check belongs to the repository.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut sources = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&path).expect("a test source");
                    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
                    sources.push((name, text));
                }
            }
        }
        if sources.is_empty() {
            assert!(
                std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "no integration tests in {}; strict mode checks the markers in them",
                dir.display()
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "perfkit-test: skipped every_accepted_bcc_flag_is_exercised_by_a_marked_test: no tests/*.rs beside this package; `cargo xtask test` runs it"
            );
            return;
        }
        // The kernel matrix (`cargo xtask vmtest`, run by CI) exercises
        // what this machine's kernel cannot: capable needs kprobes.
        let matrix = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/src/vmtest/guest.rs");
        if let Ok(text) = std::fs::read_to_string(&matrix) {
            sources.push(("xtask/src/vmtest/guest.rs".to_owned(), text));
        }
        sources.sort();
        let markers = markers(&sources).unwrap_or_else(|e| panic!("{e}"));
        let problems = marker_problems(&markers);
        assert!(problems.is_empty(), "{} problems with the bcc flag markers:\n{}", problems.len(), problems.join("\n"));
    }

    #[test]
    fn markers_are_read_and_checked_against_the_table() {
        let src = |t: &str| vec![("t.rs".to_owned(), t.to_owned())];
        let m = markers(&src("fn t() {\n    // bcc-flags: runqlat -m -P\n}\n")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].1, m[1].2.as_str(), m[1].3.as_str()), (2, "runqlat", "-P"));
        assert!(markers(&src("// bcc-flags: runqlat -m\n")).is_err(), "outside a function");
        assert!(markers(&src("    // bcc-flags: runqlat\n")).is_err(), "no flag");
        let p = marker_problems(&m);
        assert!(p.iter().any(|p| p.starts_with("runqlat -L ")), "{p:?}");
        assert!(!p.iter().any(|p| p.starts_with("runqlat -m ")), "{p:?}");
        let stale = markers(&src("    // bcc-flags: runqlat -Z\n    // bcc-flags: runqlat -c\n")).unwrap();
        let p = marker_problems(&stale);
        assert!(p.iter().any(|p| p.contains("runqlat -Z`: no such row")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("runqlat -c`: the row refuses it")), "{p:?}");
    }

    #[test]
    fn the_table_is_in_the_docs() {
        // The repository's docs, read at run time: a published package has
        // no docs/, and its tests must build from the package.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/TOOLS.md");
        let Ok(doc) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var("PERFKIT_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
                "{} is missing; strict mode checks the table against it",
                path.display()
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "perfkit-test: skipped the_table_is_in_the_docs: no docs/TOOLS.md beside this package; `cargo xtask test` runs it"
            );
            return;
        };
        for row in markdown_rows() {
            assert!(doc.contains(&row), "docs/TOOLS.md lacks the row\n{row}");
        }
    }
}
