//! Block I/O latency per disk over the window (eBPF `biolatency -D`).

use std::collections::HashMap;

use perfkit_probes::tools::{BlockIo, BlockIoConfig, Histogram, disk_name, kernel_dev};
use serde::{Deserialize, Serialize};

use crate::observe::LatencyHistogram;

/// One disk's I/O latency, from issue to completion (as bcc's
/// `biolatency -D`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiskLatency {
    /// The disk's name (`sda`, `loop0`), or `MAJOR:MINOR`.
    pub device: String,
    /// Its latency histogram over the window.
    pub histogram: LatencyHistogram,
}

/// The biolatency tool over a window: started before the first snapshot,
/// the counts before it taken off at the end.
pub(crate) struct BlockLatency {
    tool: BlockIo,
    baseline: HashMap<u64, Histogram>,
}

impl BlockLatency {
    /// Loads and attaches the tool (per-disk histograms).
    pub(crate) fn start() -> Result<BlockIo, perfkit_probes::ProbeError> {
        let mut config = BlockIoConfig::default();
        config.histograms = true;
        config.per_disk = true;
        BlockIo::start(config)
    }

    /// The window starts now.
    pub(crate) fn baseline(tool: BlockIo) -> Result<Self, perfkit_probes::ProbeError> {
        let baseline = tool.histograms()?.into_iter().map(|h| (h.id, h)).collect();
        Ok(Self { tool, baseline })
    }

    /// The disks with I/O in the window, by name.
    pub(crate) fn finish(self) -> Result<Vec<DiskLatency>, perfkit_probes::ProbeError> {
        let mut disks: Vec<DiskLatency> = self
            .tool
            .histograms()?
            .into_iter()
            .map(|h| self.baseline.get(&h.id).map_or_else(|| h.clone(), |b| h.since(b)))
            .filter(|h| h.count() > 0)
            .map(|h| {
                let (major, minor) = kernel_dev(h.id);
                DiskLatency { device: disk_name(major, minor), histogram: LatencyHistogram::from_probe(&h) }
            })
            .collect();
        disks.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(disks)
    }
}
