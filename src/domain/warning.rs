//! Early warnings: the kinds, and what a warning's notification says.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An early warning: what the monitor saw in a job that has not ended yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WarningKind {
    /// Waiting (Submitted, Validating, Scheduled) for too long since submission.
    QueuedTooLong,
    /// Not running yet, and its expiration time is near.
    NearExpiry,
    /// InProgress with its processed record count unchanged for too long.
    Stalled,
    /// Failing too large a share of the records it processed.
    ErrorRate,
}

impl WarningKind {
    pub const ALL: [Self; 4] = [
        Self::QueuedTooLong,
        Self::NearExpiry,
        Self::Stalled,
        Self::ErrorRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueuedTooLong => "queuedTooLong",
            Self::NearExpiry => "nearExpiry",
            Self::Stalled => "stalled",
            Self::ErrorRate => "errorRate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One early warning, with what its notification says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub kind: WarningKind,
    /// What was seen, in a sentence.
    pub seen: String,
    /// Since when it has been so.
    pub since: DateTime<Utc>,
    /// The threshold crossed, as configured (`12h`, `0.05`).
    pub threshold: String,
    /// What to do about it.
    pub advice: Vec<String>,
}
