//! Warming the kernel's per-CPU element caches of hash maps that are not
//! preallocated.
//!
//! Such a map takes its elements from a per-CPU cache that the kernel
//! refills from an irq_work. A program that runs with interrupts disabled
//! (sched_switch, perf events) and inserts more elements than the cache
//! holds gets ENOMEM until the refill runs: at the start of a run, a burst
//! of new stacks would be lost. Inserting and deleting elements from each
//! CPU before the programs attach leaves each cache full.

use aya::{
    Pod,
    maps::{HashMap, MapData},
};

/// Elements inserted and deleted per CPU: about the cache's high watermark.
const PER_CPU: u64 = 64;

/// Fills the per-CPU caches of hash map `name` (best effort: any failure
/// only leaves a cache as it was).
pub(crate) fn warm<K: Pod, V: Pod>(ebpf: &mut aya::Ebpf, name: &str, key: impl Fn(u64) -> K, value: V) {
    let Some(map) = ebpf.map_mut(name) else { return };
    let Ok(mut map) = HashMap::<&mut MapData, K, V>::try_from(map) else { return };
    let Ok(cpus) = aya::util::online_cpus() else { return };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity
    // writes at most its size.
    let mut saved: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, for the calling thread.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut saved) } != 0 {
        return;
    }
    for cpu in cpus {
        // SAFETY: a zeroed set with one CPU added; the size is the set's.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                continue;
            }
        }
        let base = u64::from(cpu) * PER_CPU;
        let inserted: Vec<u64> = (0..PER_CPU).filter(|i| map.insert(key(base + i), value, 0).is_ok()).collect();
        for i in inserted {
            let _ = map.remove(&key(base + i));
        }
    }
    // SAFETY: restores the mask read above.
    unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &saved) };
}

/// An all-zero value of a plain-data type.
pub(crate) fn zeroed<T: Pod>() -> T {
    // SAFETY: `Pod` types are plain data for which every bit pattern,
    // all zeroes included, is a valid value.
    unsafe { std::mem::zeroed() }
}
