//! The checkup as one document: what `perfkit checkup --json` writes and
//! `--compare` reads back (docs/JSON.md).

use perfkit_safeio::{Budget, BudgetError};
use serde::{Deserialize, Serialize};

use crate::{
    observe::Observations,
    rules::{Finding, Findings, ResourceLine},
};

/// The version of [`CheckupDocument`]'s schema. Within a version fields
/// are only added (docs/JSON.md).
pub const SCHEMA_VERSION: u32 = 1;

/// The most memory decoding a byte of a checkup document can build, with
/// the doubling of vectors: an empty string (`"",`, 3 bytes) becomes a
/// 24-byte `String` in a vector of up to twice the capacity (16 bytes a
/// byte); numbers, vectors of numbers and structures build less. Charged
/// before decoding, with a margin.
pub const DECODED_BYTES_PER_BYTE: u64 = 24;

/// A whole checkup: findings, summary and observations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckupDocument {
    /// [`SCHEMA_VERSION`] when written.
    pub schema_version: u32,
    /// The observation was ended early (Ctrl-C).
    pub interrupted: bool,
    /// Ranked findings, worst first.
    pub findings: Vec<Finding>,
    /// A line per resource.
    pub summary: Vec<ResourceLine>,
    /// What was observed.
    pub observations: Observations,
}

/// Why a checkup document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Not JSON, or not a checkup document.
    #[error("not a perfkit checkup JSON document: {0}")]
    Json(#[from] serde_json::Error),
    /// Decoding it would exceed the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A schema this perfkit does not read.
    #[error("checkup document of schema_version {found}; this perfkit reads version {SCHEMA_VERSION}")]
    Version {
        /// The document's version.
        found: u64,
    },
}

impl CheckupDocument {
    /// The document of these observations and findings.
    pub fn new(observations: Observations, findings: Findings, interrupted: bool) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            interrupted,
            findings: findings.findings,
            summary: findings.summary,
            observations,
        }
    }

    /// Reads a document written by `perfkit checkup --json`. The caller
    /// charges the bytes to its budget; the version is checked before the
    /// rest is decoded, so a document of another version says so.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DocumentError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u64,
        }
        let v: Version = serde_json::from_slice(bytes)?;
        if v.schema_version != u64::from(SCHEMA_VERSION) {
            return Err(DocumentError::Version { found: v.schema_version });
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// [`Self::from_json`] of an untrusted document, charging `budget`,
    /// before decoding, the most its decoding can build
    /// ([`DECODED_BYTES_PER_BYTE`] a byte), kept while the process lives,
    /// as the document is.
    pub fn from_json_charged(bytes: &[u8], budget: &Budget, what: &str) -> Result<Self, DocumentError> {
        let most = (bytes.len() as u64).saturating_mul(DECODED_BYTES_PER_BYTE);
        let charge = budget.charge(most, format_args!("decoding {what}"))?;
        let doc = Self::from_json(bytes)?;
        charge.keep();
        Ok(doc)
    }

    /// The findings again, as [`crate::analyze`] gave them.
    pub fn findings(&self) -> Findings {
        Findings { findings: self.findings.clone(), summary: self.summary.clone() }
    }
}
