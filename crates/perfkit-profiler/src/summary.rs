//! What a finished session says about itself: its summary lines, or why
//! it holds no samples.

use std::fmt;

use perfkit_model::CountUnit;

use crate::{EndReason, Finished, Note};

/// Why a [`Finished`] profile holds no samples, in words that name no
/// command-line flag (a front end adds its own remedies).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EmptyProfile {
    /// Off-CPU time only: the target did not block, in the states asked
    /// for.
    NoOffCpuTime {
        /// The target, as the message names it.
        what: String,
        /// Seconds sampled.
        seconds: f64,
    },
    /// Interrupted before the first sample.
    InterruptedEarly,
    /// The target exited before the first sample.
    ExitedEarly {
        /// The target, as the message names it.
        what: String,
    },
    /// System-wide: every sample was of an idle CPU.
    Idle {
        /// Seconds sampled.
        seconds: f64,
        /// Samples of the idle task.
        idle_samples: u64,
    },
    /// The target did not run on a CPU.
    NotOnCpu {
        /// The target, as the message names it.
        what: String,
        /// Seconds sampled.
        seconds: f64,
        /// What its descendants, left out, used instead
        /// ([`Note::ChildrenLeftOut`]).
        children: Option<Note>,
    },
}

impl fmt::Display for EmptyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmptyProfile::NoOffCpuTime { what, seconds } => {
                write!(f, "no off-CPU time: {what} did not block (in the states asked for) during the {seconds:.1} s")
            }
            EmptyProfile::InterruptedEarly => f.write_str("interrupted before the first sample"),
            EmptyProfile::ExitedEarly { what } => write!(f, "no samples: {what} exited before the first sample"),
            EmptyProfile::Idle { seconds, idle_samples } => write!(
                f,
                "no samples: the CPUs were idle for the {seconds:.1} s of sampling ({idle_samples} idle samples)"
            ),
            EmptyProfile::NotOnCpu { what, seconds, .. } => {
                write!(f, "no samples: {what} did not run on a CPU during the {seconds:.1} s of sampling")
            }
        }
    }
}

impl Finished {
    /// Why the profile holds no samples; `None` when it holds some. `end`
    /// is why sampling ended, `off_cpu_only` whether only off-CPU time was
    /// asked for.
    pub fn why_empty(&self, end: EndReason, off_cpu_only: bool) -> Option<EmptyProfile> {
        if self.profile.total_samples() > 0 {
            return None;
        }
        let seconds = self.profile.meta.duration.as_secs_f64();
        let what = self.target_name();
        // Under 50 ms: no sampling period of any supported frequency ended.
        let early = seconds < 0.05;
        Some(if off_cpu_only {
            EmptyProfile::NoOffCpuTime { what, seconds }
        } else if end == EndReason::Interrupted && early {
            EmptyProfile::InterruptedEarly
        } else if end == EndReason::TargetExited && early {
            EmptyProfile::ExitedEarly { what }
        } else if self.idle_samples > 0 && self.watched.is_empty() {
            EmptyProfile::Idle { seconds, idle_samples: self.idle_samples }
        } else {
            EmptyProfile::NotOnCpu { what, seconds, children: self.children_hint.clone() }
        })
    }

    /// The target as messages name it: `PID 1234`, `PIDs 1, 2`, or the
    /// session's description when no process was watched.
    pub fn target_name(&self) -> String {
        let ids: Vec<String> = self.watched.iter().map(u32::to_string).collect();
        match ids.len() {
            0 => self.profile.meta.command.clone(),
            1 => format!("PID {}", ids[0]),
            _ => format!("PIDs {}", ids.join(", ")),
        }
    }

    /// The summary of the run: `N samples in S s at F Hz (why it ended);
    /// U unique stacks, P processes` (`off CPU` after the unit with
    /// `off_cpu_only`).
    pub fn summary_line(&self, end: EndReason, off_cpu_only: bool) -> String {
        let m = &self.profile.meta;
        let rate = if m.frequency_hz > 0 { format!(" at {} Hz", m.frequency_hz) } else { String::new() };
        let why = match end {
            EndReason::Interrupted => "interrupted".to_owned(),
            EndReason::Duration => "duration reached".to_owned(),
            EndReason::TargetExited => match self.command_status {
                Some(status) => format!("command exited, {status}"),
                None => "target exited".to_owned(),
            },
        };
        format!(
            "{} {}{} in {:.2} s{rate} ({why}); {} unique stacks, {} process{}",
            self.profile.total_samples(),
            m.unit.name(),
            if off_cpu_only { " off CPU" } else { "" },
            m.duration.as_secs_f64(),
            self.profile.folded_counts().len(),
            self.processes,
            if self.processes == 1 { "" } else { "es" }
        )
    }

    /// The `n` functions with the most self time (off-CPU time with
    /// `off_cpu_only`), for the terminal: a heading, then one line per
    /// function with its share, count and name (control characters made
    /// visible). Empty when `n` is 0 or the profile is.
    pub fn top_lines(&self, n: usize, off_cpu_only: bool) -> Vec<String> {
        let total = self.profile.total_samples();
        if n == 0 || total == 0 {
            return Vec::new();
        }
        let heading = if off_cpu_only { "top functions by off-CPU time:" } else { "top functions by self time:" };
        std::iter::once(heading.to_owned())
            .chain(self.profile.top_self(n).iter().map(|f| {
                format!(
                    "  {:>6.2}%  {:>8}  {}",
                    100.0 * f.count as f64 / total as f64,
                    f.count,
                    perfkit_model::printable(&f.folded_name())
                )
            }))
            .collect()
    }

    /// With samples of idle CPUs (system-wide runs): how many, and their
    /// share of the CPU time sampled.
    pub fn idle_line(&self) -> Option<String> {
        let idle = self.idle_samples;
        if idle == 0 {
            return None;
        }
        let on_cpu = if self.profile.meta.unit == CountUnit::Samples { self.profile.total_samples() } else { 0 };
        Some(format!(
            "idle: {idle} samples ({:.1}% of CPU time) not drawn",
            100.0 * idle as f64 / (idle + on_cpu).max(1) as f64
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use perfkit_model::Profile;

    use super::*;
    use crate::{Backend, Choice, Walker};

    fn finished(stacks: &[(&str, u64)], seconds: f64, watched: &[u32], idle: u64) -> Finished {
        let mut profile = Profile::from_folded(stacks.iter().map(|(s, c)| (s.to_string(), *c)));
        profile.meta.duration = Duration::from_secs_f64(seconds);
        profile.meta.frequency_hz = 99;
        profile.meta.command = "the whole machine".to_owned();
        let choice = Choice { backend: Backend::Ebpf, walker: Walker::Tables, user_only: false, reason: String::new() };
        Finished {
            profile,
            notes: Vec::new(),
            choice,
            command: None,
            command_status: None,
            idle_samples: idle,
            watched: watched.to_vec(),
            bytes_from_kernel: None,
            processes: stacks.len(),
            children_hint: None,
        }
    }

    #[test]
    fn the_top_functions_by_self_time() {
        let f = finished(&[("a;b", 3), ("a;c", 1), ("x;c\u{1b}", 4)], 1.0, &[], 0);
        assert_eq!(
            f.top_lines(2, false),
            ["top functions by self time:", "   50.00%         4  c\\x1b", "   37.50%         3  b"]
        );
        assert_eq!(f.top_lines(1, true)[0], "top functions by off-CPU time:");
        assert!(f.top_lines(0, false).is_empty());
        assert!(finished(&[], 1.0, &[], 0).top_lines(5, false).is_empty());
    }

    #[test]
    fn an_empty_profile_says_why() {
        let f = finished(&[], 2.0, &[42], 0);
        let e = f.why_empty(EndReason::Duration, false).unwrap();
        assert_eq!(e.to_string(), "no samples: PID 42 did not run on a CPU during the 2.0 s of sampling");
        assert_eq!(
            f.why_empty(EndReason::Duration, true).unwrap().to_string(),
            "no off-CPU time: PID 42 did not block (in the states asked for) during the 2.0 s"
        );
        let f = finished(&[], 0.01, &[1, 2], 0);
        assert_eq!(f.why_empty(EndReason::Interrupted, false), Some(EmptyProfile::InterruptedEarly));
        assert_eq!(
            f.why_empty(EndReason::TargetExited, false).unwrap().to_string(),
            "no samples: PIDs 1, 2 exited before the first sample"
        );
        let f = finished(&[], 1.0, &[], 7);
        assert_eq!(
            f.why_empty(EndReason::Duration, false).unwrap().to_string(),
            "no samples: the CPUs were idle for the 1.0 s of sampling (7 idle samples)"
        );
        assert_eq!(finished(&[("a;b", 1)], 1.0, &[], 0).why_empty(EndReason::Duration, false), None);
    }

    #[test]
    fn the_summary_counts_samples_stacks_and_processes() {
        let f = finished(&[("a;b", 3), ("a;c", 1)], 1.5, &[], 4);
        assert_eq!(
            f.summary_line(EndReason::Duration, false),
            "4 samples in 1.50 s at 99 Hz (duration reached); 2 unique stacks, 2 processes"
        );
        assert_eq!(f.idle_line().unwrap(), "idle: 4 samples (50.0% of CPU time) not drawn");
        assert_eq!(finished(&[("a", 1)], 1.0, &[], 0).idle_line(), None);
    }
}
