//! One step of a table walk in user space, with exactly the semantics of
//! the BPF walker, so that tests can check the rules the kernel side
//! follows.

use crate::{CfaRule, RbpRule, TableRow};

/// The registers a table walk tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    /// Instruction pointer (or return address).
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer.
    pub bp: u64,
}

/// Why a step could not continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The outermost frame: the walk is complete.
    End,
    /// A rule the walker cannot follow.
    Unsupported,
    /// A read of stack memory failed.
    Read,
    /// The frame pointer went nowhere.
    FramePointer,
}

/// Steps from `regs` to the caller's registers with `row` (`None`: no CFI,
/// walk with the frame pointer). `read` reads a word of the stack.
pub fn step(row: Option<&TableRow>, regs: Regs, read: &mut dyn FnMut(u64) -> Option<u64>) -> Result<Regs, StepError> {
    let cfa = match row.map(|r| r.cfa) {
        None | Some(CfaRule::None) => return fp_step(regs, read),
        Some(CfaRule::Rsp(o)) => regs.sp.wrapping_add(o as i64 as u64),
        Some(CfaRule::Rbp(o) | CfaRule::StackSwitch(o)) => regs.bp.wrapping_add(o as i64 as u64),
        Some(CfaRule::Plt { threshold }) => regs.sp + 8 + if regs.ip & 15 >= threshold as u64 { 8 } else { 0 },
        Some(CfaRule::End) => return Err(StepError::End),
        Some(CfaRule::Unsupported) => return Err(StepError::Unsupported),
    };
    // A switch to another stack may go down (the BPF walker follows a
    // bounded number per walk).
    if cfa <= regs.sp && !matches!(row.map(|r| r.cfa), Some(CfaRule::StackSwitch(_))) {
        return Err(StepError::Read);
    }
    let ip = read(cfa - 8).ok_or(StepError::Read)?;
    let bp = match row.map(|r| r.rbp) {
        Some(RbpRule::AtCfa(o)) => read(cfa.wrapping_add(o as i64 as u64)).ok_or(StepError::Read)?,
        _ => regs.bp,
    };
    if ip == 0 {
        return Err(StepError::End);
    }
    Ok(Regs { ip, sp: cfa, bp })
}

fn fp_step(regs: Regs, read: &mut dyn FnMut(u64) -> Option<u64>) -> Result<Regs, StepError> {
    if regs.bp == 0 {
        return Err(StepError::End);
    }
    if regs.bp < regs.sp || regs.bp & 7 != 0 {
        return Err(StepError::FramePointer);
    }
    let bp = read(regs.bp).ok_or(StepError::Read)?;
    let ip = read(regs.bp + 8).ok_or(StepError::Read)?;
    if ip == 0 {
        return Err(StepError::End);
    }
    Ok(Regs { ip, sp: regs.bp + 16, bp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn rsp_and_rbp_rules_find_the_caller() {
        let mut mem: HashMap<u64, u64> = HashMap::new();
        // A frame with CFA = RSP + 16: return address at sp + 8.
        mem.insert(0x1008, 0x4000);
        let row = TableRow { offset: 0, cfa: CfaRule::Rsp(16), rbp: RbpRule::AtCfa(-16) };
        mem.insert(0x1000, 0x2000);
        let mut read = |a: u64| mem.get(&a).copied();
        let caller = step(Some(&row), Regs { ip: 0x10, sp: 0x1000, bp: 0x9 }, &mut read).unwrap();
        assert_eq!(caller, Regs { ip: 0x4000, sp: 0x1010, bp: 0x2000 });
        // No CFI: frame pointer.
        let mut mem2: HashMap<u64, u64> = HashMap::new();
        mem2.insert(0x2000, 0x3000);
        mem2.insert(0x2008, 0x5000);
        let mut read2 = |a: u64| mem2.get(&a).copied();
        let caller = step(None, Regs { ip: 1, sp: 0x1f00, bp: 0x2000 }, &mut read2).unwrap();
        assert_eq!(caller, Regs { ip: 0x5000, sp: 0x2010, bp: 0x3000 });
        assert_eq!(step(None, Regs { ip: 1, sp: 0x1f00, bp: 0 }, &mut read2), Err(StepError::End));
    }

    #[test]
    fn a_stack_switch_may_go_down_to_the_goroutine_s_stack() {
        // On a g0 stack at 0x7f00_0000_0000, RBP still holds the goroutine's
        // frame at 0xc000_1000: its saved RBP and return address.
        let mut mem: HashMap<u64, u64> = HashMap::new();
        mem.insert(0xc000_1000, 0xc000_1100);
        mem.insert(0xc000_1008, 0x40_2000);
        let mut read = |a: u64| mem.get(&a).copied();
        let g0 = Regs { ip: 0x40_1000, sp: 0x7f00_0000_0000, bp: 0xc000_1000 };
        let switch = TableRow { offset: 0, cfa: CfaRule::StackSwitch(16), rbp: RbpRule::AtCfa(-16) };
        let caller = step(Some(&switch), g0, &mut read).unwrap();
        assert_eq!(caller, Regs { ip: 0x40_2000, sp: 0xc000_1010, bp: 0xc000_1100 });
        // The same rule as a plain RBP rule is refused: a caller below.
        let plain = TableRow { cfa: CfaRule::Rbp(16), ..switch };
        assert_eq!(step(Some(&plain), g0, &mut read), Err(StepError::Read));
    }

    #[test]
    fn plt_rule_depends_on_the_position_in_the_entry() {
        let mut mem: HashMap<u64, u64> = HashMap::new();
        mem.insert(0x1000, 0xaaaa);
        mem.insert(0x1008, 0xbbbb);
        let row = TableRow { offset: 0, cfa: CfaRule::Plt { threshold: 11 }, rbp: RbpRule::Same };
        let mut read = |a: u64| mem.get(&a).copied();
        // Before the push (ip & 15 = 6): return address at sp.
        let r = step(Some(&row), Regs { ip: 0x106, sp: 0x1000, bp: 0 }, &mut read).unwrap();
        assert_eq!(r.ip, 0xaaaa);
        // After it (ip & 15 = 11): one word further.
        let r = step(Some(&row), Regs { ip: 0x10b, sp: 0x1000, bp: 0 }, &mut read).unwrap();
        assert_eq!(r.ip, 0xbbbb);
    }
}
