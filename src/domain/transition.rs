//! Transitions: a recorded change with everything its notification needs, and
//! the history line it leaves.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    JobArn, JobSnapshot, JobStatus, Progress, Severity, Warning, WarningKind, completed_severity,
};

/// Bedrock's token totals for a finished job, from its output manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub input: i64,
    pub output: i64,
}

/// One line of a job's status history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    pub at: DateTime<Utc>,
    pub message: Option<String>,
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TransitionKind {
    /// Bedrock reported a new status (or the first status after tracking).
    StatusChanged,
    /// Bedrock no longer knows the job; the monitor stopped tracking it.
    Untracked,
    /// An early warning about a job that has not ended (see [`Warning`]).
    Warning,
}

impl TransitionKind {
    /// The `event` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StatusChanged => "statusChanged",
            Self::Untracked => "untracked",
            Self::Warning => "warning",
        }
    }
}

/// A recorded change, and everything its notification needs. It is stored as the
/// pending notification in the same write that records the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Stable id: subscribers drop repeats by it.
    pub id: String,
    pub kind: TransitionKind,
    /// The job's version once this transition is recorded; orders deliveries.
    pub version: u64,
    pub previous: Option<JobStatus>,
    pub job: JobSnapshot,
    pub observed_at: DateTime<Utc>,
    /// When each status was first observed, oldest first (for time spent per phase).
    pub phases: Vec<(JobStatus, DateTime<Utc>)>,
    pub labels: BTreeMap<String, String>,
    /// The warning, when `kind` is `Warning`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<Warning>,
    /// Token totals from Bedrock's manifest, on the notification of a job's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenTotals>,
    /// What the job cost, from `tokens` and the price of its model in its
    /// region (or why there is no figure); on the notification of its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::Costing>,
    /// Why the job's records failed, from its output files, on the
    /// notification of an end with failed records (`RECORD_ERRORS_MAX_BYTES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_errors: Option<super::RecordErrors>,
    /// When a running job should end at its current rate ([`eta`]); `None`
    /// without two readings of a moving count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<DateTime<Utc>>,
}

impl Transition {
    /// The id of the change that takes `job` to `version`: derived, not random, so
    /// two invocations that observe the same change name it alike (one pending
    /// entry in the table, one id for subscribers to drop repeats by).
    pub fn id_for(job: &JobArn, version: u64, kind: TransitionKind, status: &JobStatus) -> String {
        let what: String = match kind {
            TransitionKind::StatusChanged => status
                .as_str()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect(),
            TransitionKind::Untracked => "untracked".to_owned(),
            TransitionKind::Warning => "warning".to_owned(),
        };
        format!("{}-{version}-{what}", job.job_id())
    }

    /// The id of a warning recorded at `version`: also derived, and naming its kind.
    pub fn warning_id(job: &JobArn, version: u64, kind: WarningKind) -> String {
        format!("{}-{version}-{}", job.job_id(), kind.as_str())
    }

    pub fn severity(&self) -> Severity {
        match self.kind {
            TransitionKind::StatusChanged if self.job.status == JobStatus::Completed => {
                completed_severity(self.job.records)
            }
            TransitionKind::StatusChanged => self.job.status.severity(),
            TransitionKind::Untracked | TransitionKind::Warning => Severity::Warning,
        }
    }

    /// The reading a job's rate starts from when this change records it
    /// running: its processed count when it entered InProgress, or when the
    /// monitor first saw it there.
    pub fn entry_reading(&self) -> Option<Progress> {
        if self.kind != TransitionKind::StatusChanged || self.job.status != JobStatus::InProgress {
            return None;
        }
        let processed = self.job.records?.processed?;
        Some(Progress {
            processed,
            since: self.observed_at,
        })
    }

    pub fn history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            from: self.previous.clone(),
            to: self.job.status.clone(),
            at: self.observed_at,
            message: match self.kind {
                TransitionKind::StatusChanged => self.job.message.clone(),
                TransitionKind::Untracked => Some(UNTRACKED_NOTE.to_owned()),
                TransitionKind::Warning => self.warning.as_ref().map(|w| w.seen.clone()),
            },
        }
    }
}

pub const UNTRACKED_NOTE: &str =
    "Bedrock no longer finds this job; the monitor stopped tracking it";

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn transition_ids_should_be_derived_from_job_version_and_change() {
        let arn: JobArn = ARN.parse().unwrap();
        let id = Transition::id_for(&arn, 3, TransitionKind::StatusChanged, &JobStatus::Failed);
        assert_eq!(id, "abcdefghwxyz-3-Failed");
        let odd = JobStatus::Unknown("Odd status!".into());
        assert_eq!(
            Transition::id_for(&arn, 4, TransitionKind::StatusChanged, &odd),
            "abcdefghwxyz-4-Oddstatus"
        );
        assert_eq!(
            Transition::id_for(&arn, 5, TransitionKind::Untracked, &odd),
            "abcdefghwxyz-5-untracked"
        );
    }
}
