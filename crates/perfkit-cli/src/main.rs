//! `perfkit`: Linux performance toolkit. This crate only parses the command
//! line, wires perfkit's library crates together and prints; the work lives
//! in the libraries.

// Standard error and output never panic: these shadow the standard macros
// in every module below. A failed write to standard error is ignored (there
// is nowhere left to report it); standard output closed by its reader ends
// perfkit as coreutils end (see `output`).
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::output::stdout_failed(e);
        }
    }};
}

mod bcc_flags;
mod checkup;
mod clock;
mod help;
mod limits;
mod output;
mod profile;
mod render;
mod serve;
mod signals;
mod stat;
mod sys;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use perfkit_profiler::flags;

const EXAMPLES: &str = "\
Examples:
  perfkit profile -p 1234 -d 30 -o api.svg     # on-CPU flame graph
  perfkit profile -a -d 10                     # the whole machine
  perfkit offcpu -p 1234 -d 10                 # where it blocks, and for how long
  perfkit runqlat 1 5                          # run-queue latency histograms
  perfkit execsnoop -- make -j8                # every exec of a build
  perfkit stat -p 1234 -d 10                   # counts, like perf stat
  perf script | perfkit flamegraph > perf.svg
  perfkit diff before.folded after.folded -o diff.svg
  perfkit sys proc 1                           # pidstat 1
  perfkit checkup -d 30                        # the host's bottlenecks, ranked (USE method)
  perfkit serve --comm postgres                # Prometheus /metrics on 127.0.0.1:9464

`perfkit COMMAND --help` explains each command.";

/// Linux performance toolkit: eBPF and perf_event profiling, flame graphs,
/// counters, and system statistics.
#[derive(Debug, Parser)]
#[command(name = "perfkit", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    /// More log output (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Memory perfkit may use for what it builds from bytes it does not
    /// trust (input files, pprof and JSON, recordings, a target's files and
    /// maps, clients), for the whole job: bytes, or with a suffix K, M, G
    /// (powers of 1024), such as 512M or 2G. Reaching it stops the reading
    /// with an error naming the input and the limit.
    #[arg(long, global = true, value_name = "SIZE", default_value = "512M", value_parser = perfkit_safeio::parse_size)]
    max_memory: u64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(after_help = help::PROFILE_EXAMPLES)]
    Profile(flags::ProfileArgs),
    #[command(after_help = help::OFFCPU_EXAMPLES)]
    Offcpu(flags::OffcpuArgs),
    #[command(after_help = help::RUNQLAT_EXAMPLES)]
    Runqlat(flags::RunqlatArgs),
    #[command(after_help = help::BIOLATENCY_EXAMPLES)]
    Biolatency(flags::BiolatencyArgs),
    #[command(after_help = help::BIOSNOOP_EXAMPLES)]
    Biosnoop(flags::BiosnoopArgs),
    #[command(after_help = help::SYSCOUNT_EXAMPLES)]
    Syscount(flags::SyscountArgs),
    #[command(after_help = help::EXECSNOOP_EXAMPLES)]
    Execsnoop(flags::ExecsnoopArgs),
    #[command(after_help = help::OPENSNOOP_EXAMPLES)]
    Opensnoop(flags::OpensnoopArgs),
    #[command(after_help = help::TCPLIFE_EXAMPLES)]
    Tcplife(flags::TcplifeArgs),
    #[command(after_help = help::TCPRETRANS_EXAMPLES)]
    Tcpretrans(flags::TcpretransArgs),
    #[command(after_help = help::TCPCONNECT_EXAMPLES)]
    Tcpconnect(flags::TcpconnectArgs),
    #[command(after_help = help::TCPACCEPT_EXAMPLES)]
    Tcpaccept(flags::TcpacceptArgs),
    #[command(after_help = help::OOMKILL_EXAMPLES)]
    Oomkill(flags::OomkillArgs),
    #[command(after_help = help::MOUNTSNOOP_EXAMPLES)]
    Mountsnoop(flags::MountsnoopArgs),
    #[command(after_help = help::CAPABLE_EXAMPLES)]
    Capable(flags::CapableArgs),
    #[command(after_help = help::HARDIRQS_EXAMPLES)]
    Hardirqs(flags::HardirqsArgs),
    #[command(after_help = help::SOFTIRQS_EXAMPLES)]
    Softirqs(flags::SoftirqsArgs),
    #[command(after_help = help::RUNQLEN_EXAMPLES)]
    Runqlen(flags::RunqlenArgs),
    #[command(after_help = help::FUNCCOUNT_EXAMPLES)]
    Funccount(flags::FunccountArgs),
    #[command(after_help = help::FUNCLATENCY_EXAMPLES)]
    Funclatency(flags::FunclatencyArgs),
    #[command(after_help = help::MEMLEAK_EXAMPLES)]
    Memleak(flags::MemleakArgs),
    #[command(after_help = help::TRACE_EXAMPLES)]
    Trace(flags::TraceArgs),
    #[command(after_help = help::ARGDIST_EXAMPLES)]
    Argdist(flags::ArgdistArgs),
    #[command(after_help = help::WAKEUPTIME_EXAMPLES)]
    Wakeuptime(flags::WakeuptimeArgs),
    #[command(after_help = help::STACKCOUNT_EXAMPLES)]
    Stackcount(flags::StackcountArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell).
    #[command(
        after_help = "Examples:\n  perfkit completions bash > /etc/bash_completion.d/perfkit\n  perfkit completions zsh > \"${fpath[1]}/_perfkit\"\n  perfkit completions fish > ~/.config/fish/completions/perfkit.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of perfkit or of one of its commands.
    #[command(after_help = "Examples:\n  perfkit man | man -l -\n  perfkit man profile > perfkit-model.1")]
    Man {
        /// A command (`profile`, `sys`...); default: perfkit itself.
        command: Option<String>,
    },
    #[command(after_help = render::FLAMEGRAPH_EXAMPLES)]
    Flamegraph(perfkit_formats::flags::FlamegraphArgs),
    #[command(after_help = render::DIFF_EXAMPLES)]
    Diff(perfkit_formats::flags::DiffArgs),
    #[command(after_help = render::CONVERT_EXAMPLES)]
    Convert(perfkit_formats::flags::ConvertArgs),
    #[command(after_help = stat::STAT_EXAMPLES)]
    Stat(perfkit_perf_event::flags::StatArgs),
    #[command(after_help = sys::SYS_EXAMPLES)]
    Sys(perfkit_procstat::flags::SysArgs),
    #[command(after_help = serve::SERVE_EXAMPLES)]
    Serve(perfkit_exporter::flags::ServeArgs),
    #[command(after_help = checkup::CHECKUP_EXAMPLES)]
    Checkup(perfkit_checkup::flags::CheckupArgs),
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "perfkit", &mut out);
    output::Output::create(std::path::Path::new("-"))?.commit(|w| Ok(std::io::Write::write_all(w, &out)?))
}

fn man(command: Option<&str>) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let root = Cli::command();
    let cmd = match command {
        None => root,
        Some(name) => {
            let sub = root
                .get_subcommands()
                .find(|c| c.get_name() == name)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no command {name:?}; `perfkit --help` lists them"))?;
            sub.name(format!("perfkit-{name}"))
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    output::Output::create(std::path::Path::new("-"))?.commit(|w| Ok(std::io::Write::write_all(w, &out)?))
}

fn main() -> ExitCode {
    // bcc's flags perfkit does not take with bcc's meaning: refused by name
    // before clap could read them otherwise.
    if let Err(message) = bcc_flags::check(&std::env::args_os().collect::<Vec<_>>()) {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let cli = Cli::parse();
    // Before anything is created: see `signals`.
    // The commands that only read and write files end at the first
    // signal; the others handle it.
    let handled = !matches!(
        cli.command,
        Command::Completions { .. }
            | Command::Man { .. }
            | Command::Flamegraph(_)
            | Command::Diff(_)
            | Command::Convert(_)
    );
    if let Err(err) = signals::install(handled) {
        eprintln!("perfkit: error: {err:#}");
        return ExitCode::FAILURE;
    }
    perfkit_safeio::Budget::process().set_limit(cli.max_memory);
    init_tracing(cli.verbose);
    raise_nofile_limit();
    let min_nofile = match cli.command {
        Command::Sys(_) => limits::MIN_NOFILE_SYS,
        _ if handled => limits::MIN_NOFILE,
        _ => limits::MIN_NOFILE_RENDER,
    };
    if let Err(err) = limits::check(min_nofile) {
        eprintln!("perfkit: error: {err:#}");
        return ExitCode::FAILURE;
    }
    let ok = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Profile(args) => profile::run(args),
        Command::Offcpu(args) => profile::run_offcpu(args),
        Command::Runqlat(args) => tools::run(args),
        Command::Biolatency(args) => tools::run(args),
        Command::Biosnoop(args) => tools::run(args),
        Command::Syscount(args) => tools::run(args),
        Command::Execsnoop(args) => tools::run(args),
        Command::Opensnoop(args) => tools::run(args),
        Command::Tcplife(args) => tools::run(args),
        Command::Tcpretrans(args) => tools::run(args),
        Command::Tcpconnect(args) => tools::run(args),
        Command::Tcpaccept(args) => tools::run(args),
        Command::Oomkill(args) => tools::run(args),
        Command::Mountsnoop(args) => tools::run(args),
        Command::Capable(args) => tools::run(args),
        Command::Hardirqs(args) => tools::run(args),
        Command::Softirqs(args) => tools::run(args),
        Command::Runqlen(args) => tools::run(args),
        Command::Funccount(args) => tools::run(args),
        Command::Funclatency(args) => tools::run(args),
        Command::Memleak(args) => tools::run(args),
        Command::Trace(args) => tools::run(args),
        Command::Argdist(args) => tools::run(args),
        Command::Wakeuptime(args) => tools::run(args),
        Command::Stackcount(args) => tools::run(args),
        Command::Completions { shell } => ok(completions(shell)),
        Command::Man { command } => ok(man(command.as_deref())),
        Command::Flamegraph(args) => ok(render::flamegraph(args)),
        Command::Diff(args) => ok(render::diff(args)),
        Command::Convert(args) => ok(render::convert(args)),
        Command::Stat(args) => stat::run(args),
        Command::Sys(args) => ok(sys::run(args)),
        Command::Serve(args) => ok(serve::serve(args)),
        Command::Checkup(args) => ok(checkup::run(args)),
    };
    match result {
        Ok(code) => {
            // Stopped by Ctrl-C, SIGTERM or SIGHUP, outputs written: end by
            // that signal.
            signals::reraise();
            code
        }
        // A closed pipe on standard output (`| head`) ends perfkit as it
        // ends coreutils: quietly, by SIGPIPE.
        Err(err) if output::is_broken_pipe(&err) => output::exit_on_broken_pipe(),
        Err(err) => {
            eprintln!("perfkit: error: {}", perfkit_model::printable(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// As perf does: the perf backend opens an event per (thread, CPU), and the
/// server a socket per client; raise the soft descriptor limit to the hard
/// one.
fn raise_nofile_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    // None: unlimited.
    let below = match (lim.current, lim.maximum) {
        (Some(cur), Some(max)) => cur < max,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}

fn init_tracing(verbose: u8) {
    // inferno logs its collapsers' guesses at error level; perfkit reports
    // an unrecognised input itself.
    let default = match verbose {
        0 => "warn,inferno=off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: logs sent to a file stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}
