//! Reading kernel structures at offsets the loader found in BTF.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use perfkit_probes_common::{COMM_LEN, kernel::KernelOffsets};

/// Field offsets, filled in by the loader before the object loads.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    task_flags: 0,
    task_mm: 0,
    task_group_leader: 0,
    task_comm: 0,
    task_pid: 0,
    task_tgid: 0,
    task_state: 0,
    task_stack: 0,
    valid: 0,
};

#[inline(always)]
pub(crate) fn offsets() -> KernelOffsets {
    // SAFETY: a volatile read keeps the compiler from folding the global to
    // its initial value; the loader rewrites it before loading.
    unsafe { core::ptr::read_volatile(&OFFSETS) }
}

/// Reads a `T` at `base + offset` in kernel memory; `None` on a fault or a
/// null base.
#[inline(always)]
pub(crate) fn read<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an
    // error, not a fault.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T).ok() }
}

/// A task's `comm`.
#[inline(always)]
pub(crate) fn comm(task: u64) -> [u8; COMM_LEN] {
    let mut out = [0u8; COMM_LEN];
    if task != 0 {
        // SAFETY: as `read`; the destination is a stack buffer of its size.
        let _ = unsafe {
            bpf_probe_read_kernel_buf((task + offsets().task_comm as u64) as *const u8, &mut out)
        };
    }
    out
}

/// Whether the registers at `regs` (a `struct pt_regs`) were taken in user
/// mode: the low two bits of CS are the privilege level.
///
/// # Safety
///
/// `regs` must be the address of a readable `struct pt_regs` (the perf
/// event context).
#[inline(always)]
pub(crate) unsafe fn user_mode(regs: u64) -> bool {
    // SAFETY: the caller guarantees the address; x86-64 pt_regs keeps CS at
    // byte 136.
    let cs: u64 = unsafe { core::ptr::read_volatile((regs + PT_REGS_CS) as *const u64) };
    cs & 3 == 3
}

/// The address of the user registers `task` saved on entering the kernel
/// (what `task_pt_regs` gives, without `bpf_task_pt_regs`, which needs
/// Linux 5.15): the top of the task's kernel stack. THREAD_SIZE is 16 KiB,
/// or 32 KiB with KASAN, and FRED kernels (6.9 and newer) leave 16 bytes
/// above the registers; the candidate whose saved CS and SS are the user
/// segments is the one. 0 when none is (a kernel thread, a read fault).
#[inline(always)]
pub(crate) fn user_regs(task: u64) -> u64 {
    let Some(stack) = read::<u64>(task, offsets().task_stack) else { return 0 };
    if stack == 0 {
        return 0;
    }
    for top in [16384u64, 16384 - 16, 32768, 32768 - 16] {
        let regs = stack + top - PT_REGS_SIZE;
        if read::<u64>(regs, PT_REGS_CS as u32) == Some(USER_CS) && read::<u64>(regs, PT_REGS_SS as u32) == Some(USER_DS)
        {
            return regs;
        }
    }
    0
}

/// x86-64 `__USER_CS`: the code segment of 64-bit user mode.
const USER_CS: u64 = 0x33;
/// x86-64 `__USER_DS`: the stack segment of user mode.
const USER_DS: u64 = 0x2b;

/// x86-64 `struct pt_regs` byte offsets (the layout is kernel ABI).
pub(crate) const PT_REGS_BP: u64 = 4 * 8;
/// Instruction pointer.
pub(crate) const PT_REGS_IP: u64 = 16 * 8;
/// Code segment.
pub(crate) const PT_REGS_CS: u64 = 17 * 8;
/// Stack pointer.
pub(crate) const PT_REGS_SP: u64 = 19 * 8;
/// Stack segment.
const PT_REGS_SS: u64 = 20 * 8;
/// The size of `struct pt_regs`.
const PT_REGS_SIZE: u64 = 21 * 8;
