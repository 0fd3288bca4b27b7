//! The JSON form of the sysstat-style reports, as `perfkit sys --json`
//! prints them: identifier keys in the manner of sysstat's `sadf -j`
//! (`cpu_percent`, `read_kib_per_s`), values rounded to the precision the
//! tables print, and a `schema_version` in every document (docs/JSON.md).
//! The model types know nothing of this.
//!
//! ```
//! use perfkit_procstat::json;
//! let doc = json::document(1_700_000_000_250, 1.0, false, "cpus", json::cpu(&[]));
//! assert_eq!(doc["schema_version"], json::SCHEMA_VERSION);
//! assert_eq!(doc["time"], "2023-11-14T22:13:20.25Z");
//! ```

use crate::model::{CpuRow, DiskRow, MemReport, NetRow, ProcRow, PsiRow};
use serde_json::{Value, json};

/// The version of the `sys` JSON documents.
/// Version 2 replaced the Unix `timestamp` by the RFC 3339 `time`.
pub const SCHEMA_VERSION: u32 = 2;

/// A Unix time in milliseconds as an RFC 3339 timestamp in UTC
/// (`2023-11-14T22:13:20.25Z`), the one time representation of perfkit's
/// JSON documents. A time past the range jiff represents is written as the
/// Unix epoch.
pub fn rfc3339(unix_ms: u64) -> String {
    i64::try_from(unix_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Rounds to 2 decimals (as the tables print).
pub fn r2(v: f64) -> f64 {
    if v.is_finite() { (v * 100.0).round() / 100.0 } else { 0.0 }
}

/// One report as a JSON document: `schema_version`, `time` (RFC 3339, of
/// the sample that ends the interval), `interval_seconds`,
/// `average` on the summary after the last interval, and `data` under
/// `key` (`cpus`, `processes`, `memory`, `disks`, `interfaces`,
/// `pressure`).
pub fn document(unix_ms: u64, interval_seconds: f64, average: bool, key: &str, data: Value) -> Value {
    let mut obj = json!({
        "schema_version": SCHEMA_VERSION,
        "time": rfc3339(unix_ms),
        "interval_seconds": r2(interval_seconds),
    });
    if average {
        obj["average"] = json!(true);
    }
    obj[key] = data;
    obj
}

fn r2o(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!(r2(x)))
}

/// Per-CPU utilisation rows (`sys mpstat`), in percent.
pub fn cpu(rows: &[CpuRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "cpu": r.cpu,
                "usr_percent": r2(r.usr),
                "nice_percent": r2(r.nice),
                "sys_percent": r2(r.sys),
                "iowait_percent": r2(r.iowait),
                "irq_percent": r2(r.irq),
                "soft_percent": r2(r.soft),
                "steal_percent": r2(r.steal),
                "guest_percent": r2(r.guest),
                "gnice_percent": r2(r.gnice),
                "idle_percent": r2(r.idle),
            })
        })
        .collect()
}

/// Per-process rows (`sys pidstat`).
pub fn processes(rows: &[ProcRow]) -> Value {
    rows.iter()
        .map(|r| {
            let mut o = json!({
                "uid": r.uid,
                "pid": r.pid,
                // The process's own name: control characters as `\xNN`.
                "comm": perfkit_model::escape_control(&r.command),
                "usr_percent": r2(r.usr),
                "system_percent": r2(r.system),
                "guest_percent": r2(r.guest),
                "wait_percent": r2o(r.wait),
                "cpu_percent": r2(r.cpu_pct),
                "cpu": r.cpu,
                "minor_faults_per_s": r2(r.minflt_s),
                "major_faults_per_s": r2(r.majflt_s),
                "vsz_kib": r.vsz_kib,
                "rss_kib": r.rss_kib,
                "mem_percent": r2(r.mem_pct),
                "read_kib_per_s": r2o(r.kb_rd_s),
                "write_kib_per_s": r2o(r.kb_wr_s),
                "cancelled_write_kib_per_s": r2o(r.kb_ccwr_s),
                "iodelay_ticks": r.iodelay,
                "voluntary_switches_per_s": r2(r.cswch_s),
                "involuntary_switches_per_s": r2(r.nvcswch_s),
            });
            if let Some(tid) = r.tid {
                o["tid"] = json!(tid);
            }
            o
        })
        .collect()
}

/// The memory report (`sys vmstat`); `null` before a second sample.
pub fn memory(m: Option<&MemReport>) -> Value {
    let Some(m) = m else { return Value::Null };
    json!({
        "runnable": m.r,
        "blocked": m.b,
        "swap_used_kib": m.swpd_kib,
        "free_kib": m.free_kib,
        "buffers_kib": m.buff_kib,
        "cache_kib": m.cache_kib,
        "swap_in_kib_per_s": r2(m.si),
        "swap_out_kib_per_s": r2(m.so),
        "block_in_kib_per_s": r2(m.bi),
        "block_out_kib_per_s": r2(m.bo),
        "interrupts_per_s": r2(m.interrupts),
        "context_switches_per_s": r2(m.cs),
        "user_percent": r2(m.us),
        "system_percent": r2(m.sy),
        "idle_percent": r2(m.id),
        "iowait_percent": r2(m.wa),
        "steal_percent": r2(m.st),
        "total_kib": m.total_kib,
        "used_kib": m.used_kib,
        "shared_kib": m.shared_kib,
        "available_kib": m.available_kib,
        "swap_total_kib": m.swap_total_kib,
        "swap_free_kib": m.swap_free_kib,
        "faults_per_s": r2(m.faults),
        "major_faults_per_s": r2(m.major_faults),
        "load_1m": r2(m.load[0]),
        "load_5m": r2(m.load[1]),
        "load_15m": r2(m.load[2]),
    })
}

/// Per-device rows (`sys iostat`).
pub fn disks(rows: &[DiskRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "device": r.device,
                "reads_per_s": r2(r.r_s),
                "read_kib_per_s": r2(r.rkb_s),
                "read_merges_per_s": r2(r.rrqm_s),
                "read_merges_percent": r2(r.rrqm_pct),
                "read_await_ms": r2(r.r_await),
                "read_request_kib": r2(r.rareq_sz),
                "writes_per_s": r2(r.w_s),
                "write_kib_per_s": r2(r.wkb_s),
                "write_merges_per_s": r2(r.wrqm_s),
                "write_merges_percent": r2(r.wrqm_pct),
                "write_await_ms": r2(r.w_await),
                "write_request_kib": r2(r.wareq_sz),
                "queue_size": r2(r.aqu_sz),
                "util_percent": r2(r.util),
            })
        })
        .collect()
}

/// Per-interface rows (`sys net`).
pub fn interfaces(rows: &[NetRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "iface": r.iface,
                "rx_packets_per_s": r2(r.rxpck_s),
                "tx_packets_per_s": r2(r.txpck_s),
                "rx_kib_per_s": r2(r.rxkb_s),
                "tx_kib_per_s": r2(r.txkb_s),
                "rx_compressed_per_s": r2(r.rxcmp_s),
                "tx_compressed_per_s": r2(r.txcmp_s),
                "rx_multicast_per_s": r2(r.rxmcst_s),
                "util_percent": r2(r.ifutil),
            })
        })
        .collect()
}

/// Pressure-stall rows (`sys psi`).
pub fn pressure(rows: &[PsiRow]) -> Value {
    rows.iter()
        .map(|r| {
            json!({
                "resource": r.resource,
                "some_avg10_percent": r2(r.some_avg10),
                "some_avg60_percent": r2(r.some_avg60),
                "some_avg300_percent": r2(r.some_avg300),
                "some_percent": r2(r.some_pct),
                "full_avg10_percent": r2o(r.full_avg10),
                "full_avg60_percent": r2o(r.full_avg60),
                "full_avg300_percent": r2o(r.full_avg300),
                "full_percent": r2o(r.full_pct),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_and_names_keys_for_jq() {
        assert_eq!(r2(2.130000114440918), 2.13);
        assert_eq!(r2(f64::NAN), 0.0);
        let mut sample = crate::Sample::default();
        let stat = crate::sample::CpuStat {
            total: crate::sample::CpuTicks { user: 123_456, system: 10_000, idle: 866_544, ..Default::default() },
            ..Default::default()
        };
        sample.cpu = Some(stat);
        let rows = crate::model::cpu(None, &sample);
        let v = cpu(&rows);
        assert_eq!(v[0]["usr_percent"], 12.35);
        assert_eq!(v[0]["idle_percent"], 86.65);
        assert!(
            v[0].as_object()
                .unwrap()
                .keys()
                .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        );
    }
}
