//! The `Examples:` blocks after each command's help: perfkit's own words
//! (they name the `perfkit` binary), attached to the commands whose flags
//! the libraries define (`perfkit_profiler::flags`).

pub(crate) const PROFILE_EXAMPLES: &str = "\
Examples:
  perfkit profile -p 1234                  # until Ctrl-C, writes flame.svg
  perfkit profile -p 1234,5678 -d 30 -F 199 -o api.svg --folded api.folded
  perfkit profile -- make -j8              # a command and everything it starts
  perfkit profile ./my-benchmark --iterations 100
  perfkit profile -a -d 10                 # the whole machine
  perfkit profile --cgroup /system.slice/nginx.service -d 30
  perfkit profile -t 4242 --per-thread     # one thread
  perfkit profile -p 1234 -d 30 -f pprof -o api.pb.gz   # go tool pprof, Pyroscope
  perfkit profile -p 1234 --title 'api under load' -o api.svg

Stacks are complete without frame pointers: the eBPF backend walks them in
the kernel with unwind tables built from each binary's DWARF CFI. Needs root,
or CAP_BPF and CAP_PERFMON; without them perfkit falls back to perf_event
(CAP_PERFMON, or kernel.perf_event_paranoid <= 2 for your own processes, then
in user mode only).

Java (HotSpot JDK 11 to 21) and CPython (3.8 to 3.13) need no flags: for a
JVM, perf_event is chosen and its Java frames are walked from its code cache;
JDK 17 and newer are asked for their perf map (as `jcmd PID Compiler.perfmap`
does); JDK 11 to 16 have no such command, so their compiled methods are named
from the code cache instead, and the summary says so.

The SVG's title is the command line, arguments included; use --title to
keep secrets out of a graph you share.";

pub(crate) const OFFCPU_EXAMPLES: &str = "\
Examples:
  perfkit offcpu -p 1234 -d 10                 # offcpu.svg: where it blocks
  perfkit offcpu --min-block 1ms -- ./server   # blocks of 1 ms or more
  perfkit offcpu -a -d 5 --state uninterruptible -f folded -o d-state.folded
  perfkit offcpu --cgroup /system.slice/nginx.service -d 30 -f pprof -o off.pb.gz

Like bcc's offcputime: the stacks (user and kernel) of threads as they
block, weighted by the time until they run again, in microseconds. Unlike
it, user stacks are complete without frame pointers, and the graph is drawn
directly. Bare numbers for --min-block/--max-block are microseconds, as in
bcc. Needs the eBPF backend (root, or CAP_BPF and CAP_PERFMON).";

pub(crate) const RUNQLAT_EXAMPLES: &str = "\
Examples:
  perfkit runqlat                  # until Ctrl-C, then the histogram
  perfkit runqlat 1 10             # every second, 10 times
  perfkit runqlat -m 5             # milliseconds, every 5 s
  perfkit runqlat -P -p 1234,5678  # per process
  perfkit runqlat --json 1 3
  perfkit runqlat -- make -j8

As bcc's runqlat: from a thread's wakeup (or preemption) to the moment it
runs. Built on the sched_wakeup, sched_wakeup_new and sched_switch
tracepoints (BTF raw tracepoints), so it needs no kprobes.";

pub(crate) const BIOLATENCY_EXAMPLES: &str = "\
Examples:
  perfkit biolatency               # until Ctrl-C
  perfkit biolatency -D 1 5        # per disk, every second, 5 times
  perfkit biolatency -F -m         # per operation, in milliseconds
  perfkit biolatency -Q            # including time in the OS queue

As bcc's biolatency: from issue to the device (or, with -Q, insertion into
the OS queue) to completion, from the block tracepoints.";

pub(crate) const SYSCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit syscount                 # top 10 syscalls until Ctrl-C
  perfkit syscount -L -p 1234 1    # with time in them, every second
  perfkit syscount -P              # per process
  perfkit syscount -x              # failed calls only
  perfkit syscount --json -- ./my-program

As bcc's syscount: counts per syscall (or per process with -P), from the
raw_syscalls tracepoints. Syscall names come from the kernel's own syscall
metadata at run time, not from a table compiled in.";

pub(crate) const BIOSNOOP_EXAMPLES: &str = "Examples:\n  perfkit biosnoop\n  perfkit biosnoop -Q --json | jq .\n\nAs bcc's biosnoop: one line per completed block I/O, with its latency \
                        from issue (and with -Q the time queued in the OS before it).";

pub(crate) const EXECSNOOP_EXAMPLES: &str = "Examples:\n  perfkit execsnoop\n  perfkit execsnoop --failed-only    # failed execs only\n  perfkit execsnoop --json -- make -j8\n\nAs bcc's execsnoop: from the \
                        syscalls:sys_enter_execve(at) and sys_exit_execve(at) tracepoints, and sched:sched_process_exec for the path and \
                        arguments of a successful exec as the new program holds them (up to 2560 bytes); a failed exec shows up to 20 \
                        arguments of 127 bytes each as passed. A value that could not be read shows as [unreadable] (null in JSON); \
                        a cut one ends the line with ...";

pub(crate) const OPENSNOOP_EXAMPLES: &str = "Examples:\n  perfkit opensnoop\n  perfkit opensnoop -x -p 1234       # failed opens of one process\n  perfkit opensnoop --json -- ./app\n\nAs bcc's opensnoop: open(2) and \
                        openat(2), from the syscalls tracepoints (openat2 is not watched). Paths are kept up to 255 bytes.";

pub(crate) const TCPLIFE_EXAMPLES: &str = "Examples:\n  perfkit tcplife\n  perfkit tcplife -p 1234 --json\n\nAs bcc's tcplife: from sock:inet_sock_set_state, with bytes \
                        received and acknowledged read from the socket at close (the kernel's counters, which include the SYN and FIN: up to 2 bytes above the data). \
                        The owner is the process that connected or closed it.";

pub(crate) const TCPRETRANS_EXAMPLES: &str = "Examples:\n  perfkit tcpretrans\n  perfkit tcpretrans -c             # counts by flow at the end\n\nAs bcc's tcpretrans: from \
                        tcp:tcp_retransmit_skb (no kprobes); tail loss probes are not traced.";

pub(crate) const TCPCONNECT_EXAMPLES: &str = "Examples:\n  perfkit tcpconnect\n  perfkit tcpconnect -P 80,443 -t\n  perfkit tcpconnect -c            # counts by \
                        address and port at the end\n  perfkit tcpconnect --json -- curl -s example.com\n\nAs bcc's tcpconnect: each active \
                        open, when the connecting process enters SYN_SENT (sock:inet_sock_set_state, no kprobes), whether or not the \
                        connection then succeeds. The local port is chosen just after that moment, so it is not shown (tcplife shows it).";

pub(crate) const TCPACCEPT_EXAMPLES: &str = "Examples:\n  perfkit tcpaccept\n  perfkit tcpaccept -P 22 -T\n  perfkit tcpaccept --json -p 1234\n\nAs bcc's \
                        tcpaccept: each passive open whose handshake completed (sock:inet_sock_set_state, SYN_RECV to ESTABLISHED, \
                        no kprobes), shown under the process whose accept(2) or accept4(2) returned it; the handshake itself runs in \
                        the kernel's softirq, in no process. Connections never accepted, or accepted through io_uring, are not shown \
                        (serve --probes counts them by port).";

pub(crate) const OOMKILL_EXAMPLES: &str = "Examples:\n  perfkit oomkill\n  perfkit oomkill --json -d 1h\n\nAs bcc's oomkill, from oom:mark_victim (no kprobes): \
                        the process whose allocation triggered the OOM killer, the process killed, and its size in pages (its \
                        virtual memory, total_vm; bcc prints the memory the OOM killer weighed it against, which only a kprobe can \
                        read). Kernels before 6.x give the victim's PID only: its name is then read from /proc while it dies, or \
                        shown as ?. Every kill on the machine is shown: the OOM killer acts for a cgroup or the system.";

pub(crate) const MOUNTSNOOP_EXAMPLES: &str = "Examples:\n  perfkit mountsnoop\n  perfkit mountsnoop --json -- unshare -m sh -c 'mount -t tmpfs none /mnt'\n\nAs bcc's \
                        mountsnoop: mount(2) and umount(2) (umount2 on x86-64) from the syscalls tracepoints, with the flags named, the \
                        caller's mount namespace, and the result. Paths keep 127 bytes; the new mount API (fsopen, fsmount, \
                        move_mount) is not watched.";

pub(crate) const CAPABLE_EXAMPLES: &str = "Examples:\n  perfkit capable\n  perfkit capable --non-audit -x --json -- unshare -n true\n\nAs bcc's capable: a kprobe on \
                        cap_capable, the kernel's one place that checks a capability (no tracepoint covers it), so it needs a kernel \
                        with kprobes (CONFIG_KPROBES); without them it says so and exits with an error. Audited checks only, unless --non-audit (bcc's -v).";

pub(crate) const FUNCCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit funccount 'c:read*'                    # libc's read* functions, until Ctrl-C
  perfkit funccount -p 1234 -i 1 'c:malloc'      # one process, every second
  perfkit funccount /usr/bin/app:parse_request -d 10
  perfkit funccount u:/usr/bin/app:app:request   # a USDT probe (semaphores incremented)
  perfkit funccount 't:sched:sched_wakeup*'      # tracepoints
  perfkit funccount --json c:getppid -- ./my-program

As bcc's funccount: calls counted exactly in the kernel (uprobes, USDT
probes from .note.stapsdt, tracepoints). LIB is a path or a library name
(c: libc), found in the mappings of -p's process or in the loader's
directories. Kernel functions need kprobes, which perfkit does not use.";

pub(crate) const FUNCLATENCY_EXAMPLES: &str = "\
Examples:
  perfkit funclatency c:read                     # libc's read, nanoseconds, until Ctrl-C
  perfkit funclatency -u -p 1234 -i 1 c:read     # microseconds, every second
  perfkit funclatency -m /usr/bin/app:handle -d 30
  perfkit funclatency --json -u /usr/bin/app:handle -- ./app

As bcc's funclatency: a uprobe records each thread's entry, a uretprobe
the time to the return, in a log2 histogram (one for every function the
pattern matches). A function that never returns (longjmp, a thread that
exits in it) is not counted.";

pub(crate) const WAKEUPTIME_EXAMPLES: &str = "\
Examples:
  perfkit wakeuptime                      # every thread, until Ctrl-C
  perfkit wakeuptime -d 5 -f              # 5 seconds, folded (flamegraph.pl input)
  perfkit wakeuptime -p 1234 -m 1000      # blocks of process 1234 of 1 ms or more
  perfkit wakeuptime --json -- ./app      # the blocks of a command

As bcc's wakeuptime: a thread's block starts when it leaves the CPU not
runnable (sched_switch) and ends when another thread (or an interrupt)
wakes it (sched_waking, which runs in the waker): the time goes under the
waker's stacks, its name and the woken thread's name. -p, --cgroup and a
command select the blocked threads, as bcc's -p. User stacks are walked by
frame pointers, as bcc's.";

pub(crate) const STACKCOUNT_EXAMPLES: &str = "\
Examples:
  perfkit stackcount c:malloc                     # libc's malloc, by stack, until Ctrl-C
  perfkit stackcount -p 1234 -D 10 -f c:write     # one process, 10 s, folded
  perfkit stackcount -P 't:sched:sched_switch'    # a tracepoint, per process
  perfkit stackcount -U u:/usr/bin/app:app:request
  perfkit stackcount --json /usr/bin/app:parse -- ./app

As bcc's stackcount: each hit of a user function (LIB:FUNC, PATH:FUNC,
globs), USDT probe (u:PATH:[PROVIDER:]NAME) or tracepoint
(t:CATEGORY:NAME) is counted in the kernel under its user and kernel
stacks. User stacks are walked by frame pointers, as bcc's. Kernel
functions need kprobes, which perfkit does not use.";

pub(crate) const MEMLEAK_EXAMPLES: &str = "\
Examples:
  perfkit memleak -p 1234                 # libc's allocations of a process, every 5 s
  perfkit memleak -p 1234 -a 10 3         # with each allocation listed, every 10 s, 3 times
  perfkit memleak -c './app --flag'       # a command (or: perfkit memleak -- ./app --flag)
  perfkit memleak -p 1234 -O /usr/lib/libjemalloc.so.2
  perfkit memleak -Z 2048 5               # the kernel's allocations up to 2 KiB
  perfkit memleak --json -p 1234 --combined-only

As bcc's memleak: allocations not freed, by stack, biggest first, every
interval (5 s by default). User mode (-p, -c): uprobes on malloc, calloc,
realloc, posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
mmap, with free and munmap, in the libc the process maps (-O another
allocator). Stacks are walked by frame pointers, as bcc's: code built
without them shows fewer frames. Kernel mode (no -p): the kmem
tracepoints (kmalloc, kmem_cache_alloc, page allocations and their
frees), machine-wide. Allocations younger than -o (500 ms) are left out.";

pub(crate) const TRACE_EXAMPLES: &str = "\
Examples:
  perfkit trace '/usr/bin/app:f \"a=%d s=%s\", arg1, arg2'
  perfkit trace 'r:/usr/bin/app:f \"ret %d\", retval'
  perfkit trace '/usr/bin/app:f (arg1 > 5) \"%d\", arg1'     # a filter
  perfkit trace 'p:c:open(char *path, int flags) \"%s\", path'
  perfkit trace 't:syscalls:sys_enter_openat \"%s\", args->filename'
  perfkit trace 'u:/usr/bin/app:myprov:tick \"%d\", arg1'
  perfkit trace -p 1234 -M 10 'c:malloc \"%llu bytes\", arg1'

As bcc's trace: PROBE [(FILTER)] [\"FORMAT\"[, ARG...]], several probes in
one run. PROBE is [p:]LIB:FUNC[(SIGNATURE)], r:LIB:FUNC (retval),
t:CATEGORY:NAME (args->FIELD) or u:LIB:[PROVIDER:]NAME (arg1..., from the
USDT note). Conversions: %d %i %u %x %X %s %c %p with l/ll. The kernel
captures the argument registers, the return value, the strings %s names
(up to 127 bytes, bpf_probe_read_user_str) and the tracepoint record; the
filter and the format are evaluated in user space (filtered hits are
counted on exit). A cut string ends in ...; one that could not be read
shows as [unreadable].";

pub(crate) const ARGDIST_EXAMPLES: &str = "\
Examples:
  perfkit argdist -C 'p:/usr/bin/app:f(int a, char *s):int:a'     # counts of each a
  perfkit argdist -C 'p:/usr/bin/app:f(int a, char *s):char*:s'   # counts of each string
  perfkit argdist -H 'p:c:malloc(size_t size):size_t:size'        # a log2 histogram
  perfkit argdist -H 'r:/usr/bin/app:f():u64:$latency'            # nanoseconds per call
  perfkit argdist -C 'r:/usr/bin/app:g():int:$retval' -i 5 -n 3
  perfkit argdist -C 't:syscalls:sys_enter_openat():int:args->flags'
  perfkit argdist -C 'p:/usr/bin/app:f(int a):int:a:a>5#big a'    # a filter and a label

As bcc's argdist: {p,r,t,u}:SPEC(SIGNATURE)[:TYPE[,TYPE...]:EXPR[,EXPR...][:FILTER]][#LABEL].
Each hit's values are streamed from the kernel (as trace's) and counted,
filtered and put in log2 buckets in user space. Every INTERVAL (1 s) the
counts are printed and cleared (kept with -c).";

pub(crate) const HARDIRQS_EXAMPLES: &str = "\
Examples:
  perfkit hardirqs                 # until Ctrl-C: time per handler
  perfkit hardirqs 1 10            # every second, 10 times
  perfkit hardirqs -C              # runs per handler
  perfkit hardirqs -d -T 5         # histograms, every 5 s, with the time
  perfkit hardirqs --json 1 3

As bcc's hardirqs: time in each hard IRQ handler, by the name it
registered (the last column of /proc/interrupts), from irq_handler_entry
to irq_handler_exit (raw tracepoints; no kprobes).";

pub(crate) const SOFTIRQS_EXAMPLES: &str = "\
Examples:
  perfkit softirqs                 # until Ctrl-C: time per vector
  perfkit softirqs 1 10            # every second, 10 times
  perfkit softirqs -C              # runs per vector (as /proc/softirqs)
  perfkit softirqs -d              # histograms
  perfkit softirqs --json 1 3

As bcc's softirqs: time in each softirq vector (net_rx, timer, rcu...),
from softirq_entry to softirq_exit (raw tracepoints; no kprobes).";

pub(crate) const RUNQLEN_EXAMPLES: &str = "\
Examples:
  perfkit runqlen                  # until Ctrl-C: one histogram
  perfkit runqlen 1 10             # every second, 10 times
  perfkit runqlen -C               # a histogram per CPU
  perfkit runqlen -O               # occupancy: how often a task waits
  perfkit runqlen --json 1 3

As bcc's runqlen: each CPU's run queue sampled 99 times a second (-f),
counting the tasks waiting besides the one running. perfkit reads the CPU's
own count of runnable tasks (struct rq, every scheduling class), where bcc
reads the running task's CFS queue (only its cgroup's, with group
scheduling).";
