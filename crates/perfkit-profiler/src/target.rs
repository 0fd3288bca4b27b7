//! What to profile.

use std::{ffi::OsString, path::PathBuf};

use perfkit_target::{Cgroup, HeldCommand, ProcessInfo, TargetError, family, process_of_thread};

/// The tasks a profile covers.
#[derive(Debug)]
#[non_exhaustive]
pub enum TargetKind {
    /// These processes, all their threads.
    Processes(Vec<ProcessInfo>),
    /// These threads.
    Threads(Vec<u32>),
    /// A cgroup v2 group and the groups below it.
    Cgroup(Cgroup),
    /// Every task on the machine.
    All,
    /// A command started by perfkit, held before exec until sampling is
    /// ready.
    Command {
        /// The held child.
        child: HeldCommand,
        /// Its command line.
        argv: Vec<String>,
        /// The program it runs, as found on `PATH`.
        program: Option<PathBuf>,
    },
}

/// What to profile, and whether children are followed.
#[derive(Debug)]
pub struct Target {
    pub(crate) kind: TargetKind,
    pub(crate) follow_children: bool,
    /// Threads given to `pids` that were resolved to their processes.
    pub(crate) resolved_threads: Vec<(u32, u32)>,
    /// Processes given to `pids` whose existing descendants are not
    /// profiled (without [`Target::with_children`]), and those
    /// descendants with the CPU time they had used (clock ticks), so that
    /// a profile of an idle parent can say where the work went.
    pub(crate) children_left_out: Vec<LeftOut>,
}

/// A process given by PID whose existing descendants are not profiled.
#[derive(Debug, Clone)]
pub(crate) struct LeftOut {
    pub(crate) parent: ProcessInfo,
    /// (PID, CPU clock ticks used when the target was made).
    pub(crate) children: Vec<(u32, u64)>,
}

impl Target {
    /// Processes by id, with the processes they create later. A thread id
    /// stands for its process, as with `perf record -p`.
    pub fn pids(pids: &[u32]) -> Result<Self, TargetError> {
        let mut infos: Vec<ProcessInfo> = Vec::new();
        let mut resolved = Vec::new();
        for &pid in pids {
            let info = match ProcessInfo::read(pid) {
                Ok(i) => i,
                Err(TargetError::NoSuchProcess(_)) => return Err(TargetError::NoSuchProcess(pid)),
                Err(e) => return Err(e),
            };
            let tgid = process_of_thread(pid).unwrap_or(pid);
            let info = if tgid != pid {
                resolved.push((pid, tgid));
                ProcessInfo::read(tgid)?
            } else {
                info
            };
            if !infos.iter().any(|i| i.pid == info.pid) {
                infos.push(info);
            }
        }
        let proc_root = std::path::Path::new("/proc");
        let children_left_out = infos
            .iter()
            .map(|i| LeftOut {
                parent: i.clone(),
                children: family::descendants_in(proc_root, i.pid)
                    .into_iter()
                    .filter_map(|c| Some((c, family::cpu_ticks(proc_root, c)?)))
                    .collect(),
            })
            .filter(|l| !l.children.is_empty())
            .collect();
        Ok(Self {
            kind: TargetKind::Processes(infos),
            follow_children: true,
            resolved_threads: resolved,
            children_left_out,
        })
    }

    /// With the existing descendants of the processes given by PID
    /// (children, their children..., as `pgrep -P` recursively), which
    /// are profiled as if they had been given too; and children started
    /// later are followed. Other targets are unchanged.
    pub fn with_children(mut self) -> Self {
        if let TargetKind::Processes(infos) = &mut self.kind {
            let given: Vec<u32> = infos.iter().map(|i| i.pid).collect();
            for child in family::with_descendants(&given).into_iter().skip(given.len()) {
                // One that exited meanwhile is simply not there.
                if let Ok(info) = ProcessInfo::read(child) {
                    infos.push(info);
                }
            }
            self.follow_children = true;
            self.children_left_out.clear();
        }
        self
    }

    /// Threads by id.
    pub fn threads(tids: &[u32]) -> Result<Self, TargetError> {
        for &tid in tids {
            if process_of_thread(tid).is_none() {
                return Err(TargetError::NoSuchThread(tid));
            }
        }
        Ok(Self {
            kind: TargetKind::Threads(tids.to_vec()),
            follow_children: false,
            resolved_threads: Vec::new(),
            children_left_out: Vec::new(),
        })
    }

    /// A cgroup v2 group (a directory of the v2 file system, or a path below
    /// its root).
    pub fn cgroup(path: &std::path::Path) -> Result<Self, TargetError> {
        Ok(Self {
            kind: TargetKind::Cgroup(Cgroup::resolve(path)?),
            follow_children: false,
            resolved_threads: Vec::new(),
            children_left_out: Vec::new(),
        })
    }

    /// The whole machine.
    pub fn all() -> Self {
        Self {
            kind: TargetKind::All,
            follow_children: false,
            resolved_threads: Vec::new(),
            children_left_out: Vec::new(),
        }
    }

    /// A command, forked now and held before exec until sampling starts.
    /// With `stdout_to_stderr`, its standard output goes to standard error.
    pub fn command(argv: &[OsString], stdout_to_stderr: bool) -> Result<Self, TargetError> {
        let (program, rest) = argv.split_first().ok_or(TargetError::EmptyCommand)?;
        let rest: Vec<&OsString> = rest.iter().collect();
        let child = HeldCommand::spawn_with(program, &rest, stdout_to_stderr)?;
        let argv_s = argv.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        Ok(Self {
            kind: TargetKind::Command { child, argv: argv_s, program: resolve_program(std::path::Path::new(program)) },
            follow_children: true,
            resolved_threads: Vec::new(),
            children_left_out: Vec::new(),
        })
    }

    /// Follow (or not) the processes the target creates.
    pub fn follow_children(mut self, follow: bool) -> Self {
        if matches!(self.kind, TargetKind::Processes(_) | TargetKind::Command { .. }) {
            self.follow_children = follow;
        }
        self
    }

    /// What is profiled, for titles and summaries.
    pub fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Processes(p) if p.len() == 1 => p[0].display_command(),
            TargetKind::Processes(p) => {
                p.iter().map(|i| format!("{} ({})", i.pid, i.comm)).collect::<Vec<_>>().join(", ")
            }
            TargetKind::Threads(t) => {
                format!(
                    "thread{} {}",
                    if t.len() > 1 { "s" } else { "" },
                    t.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
                )
            }
            TargetKind::Cgroup(c) => format!("cgroup {}", c.path.display()),
            TargetKind::All => "all CPUs".to_owned(),
            TargetKind::Command { argv, .. } => argv.join(" "),
        }
    }

    /// The kind of target.
    pub fn kind(&self) -> &TargetKind {
        &self.kind
    }
}

/// The executable a command line will run: the path as given, or found on
/// `PATH`.
pub fn resolve_program(program: &std::path::Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        return Some(program.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// A target as the bcc-style tools take it: the tasks to watch, and the
/// command to release once the tool is attached.
#[derive(Debug)]
#[non_exhaustive]
pub struct ToolTarget {
    /// For a tool's configuration (`selection`): `None` for every task.
    pub selection: Option<perfkit_probes::Selection>,
    /// A command target's held child: release it once the tool is
    /// attached ([`HeldCommand::release`]).
    pub command: Option<HeldCommand>,
}

impl Target {
    /// The same target for a bcc-style tool ([`perfkit_probes::tools`]):
    /// processes (with the descendants [`Target::with_children`] added,
    /// and new children followed), threads, a cgroup, a held command, or
    /// every task.
    pub fn into_tool_target(self) -> ToolTarget {
        let plan = crate::session::plan(self.kind, self.follow_children);
        let selection = match plan.selection {
            perfkit_probes::Selection::All => None,
            s => Some(s),
        };
        ToolTarget { selection, command: plan.command }
    }
}
