//! A stored job: the work index's entry and the whole item, and where a job
//! stands with the monitor.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{
    HistoryEntry, JobArn, JobSnapshot, JobStatus, Pending, Progress, SetAside, TokenTotals,
    WarningKind, eta,
};

/// The work list is spread over shards `0..POLL_SHARDS` (a stable hash of the
/// job ARN), so several schedules can poll disjoint parts of it.
pub const POLL_SHARDS: u32 = 4;

/// Where a stored job stands with the monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tracking {
    /// Polled, or with notifications still to deliver.
    Active,
    /// Ended and delivered: out of the work list until it expires.
    Finished,
    /// Bedrock stopped knowing it and the monitor untracked it.
    Gone,
    /// Someone untracked it: Bedrock's events leave it alone until it is tracked again.
    Untracked,
}

/// A job as the work index lists it: only what a poll decides on. No
/// history, labels or Bedrock's details: a rule that needs those reads the
/// whole [`StoredJob`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkEntry {
    pub job_arn: JobArn,
    pub status: JobStatus,
    pub version: u64,
    pub submit_time: Option<DateTime<Utc>>,
    pub not_found_count: u32,
    pub gone: bool,
    pub untracked_at: Option<DateTime<Utc>>,
    pub outbox: Vec<Pending>,
    pub warned: Vec<WarningKind>,
    pub progress: Option<Progress>,
}

impl WorkEntry {
    /// Bedrock still has something to tell us about this job.
    pub fn needs_polling(&self) -> bool {
        self.untracked_at.is_none() && !self.gone && !self.status.is_terminal()
    }
}

/// Whether a job with `status`, lost by Bedrock or not, has ended for the
/// monitor: one `list` and the digest read from the index of ends.
pub fn has_ended(status: &JobStatus, gone: bool) -> bool {
    gone || status.is_terminal()
}

/// A job whose end (or loss by Bedrock) is recorded, as the table's index of
/// ends lists it: what `list` and the digest show of it, without its history.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedJob {
    pub job_arn: JobArn,
    pub job_name: Option<String>,
    pub status: JobStatus,
    /// When the monitor recorded the end.
    pub ended_at: DateTime<Utc>,
    /// Bedrock's message, untrusted.
    pub message: Option<String>,
    pub submit_time: Option<DateTime<Utc>>,
    pub last_modified_time: Option<DateTime<Utc>>,
    pub records: Option<super::RecordCounts>,
    pub labels: BTreeMap<String, String>,
    pub tokens: Option<TokenTotals>,
    /// The model the tokens were used by (kept with them), for their cost.
    pub model_id: Option<String>,
    /// Why its records failed, recorded with the end.
    pub record_errors: Option<super::RecordErrors>,
    /// Bedrock lost it (it did not end): `list` shows it, the digest does not.
    pub gone: bool,
}

/// Everything stored about a tracked job.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    pub snapshot: JobSnapshot,
    pub version: u64,
    pub history: Vec<HistoryEntry>,
    pub outbox: Vec<Pending>,
    pub not_found_count: u32,
    /// Bedrock lost the job and we stopped tracking it.
    pub gone: bool,
    /// Listed by the work index (the item has a poll shard).
    pub active: bool,
    pub labels: BTreeMap<String, String>,
    /// Set when someone untracked the job: the item is only a marker now.
    pub untracked_at: Option<DateTime<Utc>>,
    /// Notifications SNS refused for good, oldest first.
    pub undeliverable: Vec<SetAside>,
    /// Early warnings already recorded for this job (each is sent once).
    pub warned: Vec<WarningKind>,
    /// When the processed record count last moved, as far as the monitor saw.
    pub progress: Option<Progress>,
    /// The reading before `progress` (or the count when the job entered
    /// InProgress): with it, the rate the job runs at ([`StoredJob::eta`]).
    pub rate_from: Option<Progress>,
    /// Bedrock's token totals, recorded with the job's end when known.
    pub tokens: Option<TokenTotals>,
    /// Why its records failed, recorded with the job's end when read.
    pub record_errors: Option<super::RecordErrors>,
    /// When the end (or loss) the item holds was recorded (`endedAt`).
    pub ended_at: Option<DateTime<Utc>>,
    /// Which routes each notification went to, oldest first.
    pub routed: Vec<super::Routed>,
}

impl StoredJob {
    /// When the job should end at the rate between its last two readings
    /// ([`eta`]), seen from `now`; only while it is InProgress, and only
    /// while that time is still ahead: a count that stopped moving leaves an
    /// estimate behind it, and an estimate of the past is none (guarantee 10).
    pub fn eta(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.snapshot.status != JobStatus::InProgress || !self.needs_polling() {
            return None;
        }
        eta(
            self.rate_from?,
            self.progress?,
            self.snapshot.records?.total?,
        )
        .filter(|t| *t > now)
    }

    pub fn arn(&self) -> &JobArn {
        &self.snapshot.job_arn
    }

    /// Bedrock still has something to tell us about this job.
    pub fn needs_polling(&self) -> bool {
        self.untracked_at.is_none() && !self.gone && !self.snapshot.status.is_terminal()
    }

    pub fn tracking(&self) -> Tracking {
        if self.untracked_at.is_some() {
            Tracking::Untracked
        } else if self.gone {
            Tracking::Gone
        } else if self.active {
            Tracking::Active
        } else {
            Tracking::Finished
        }
    }

    /// No further work: it may leave the index and expire.
    pub fn is_finished(&self) -> bool {
        !self.needs_polling() && self.outbox.is_empty()
    }

    /// When each status was first observed in the current tracking (which
    /// starts at the last history entry without a `from`), from the history.
    pub fn phases(&self) -> Vec<(JobStatus, DateTime<Utc>)> {
        let start = self
            .history
            .iter()
            .rposition(|h| h.from.is_none())
            .unwrap_or(0);
        let mut out: Vec<(JobStatus, DateTime<Utc>)> = Vec::new();
        for h in &self.history[start..] {
            if !out.iter().any(|(s, _)| *s == h.to) {
                out.push((h.to.clone(), h.at));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn stored_job_eta_should_need_inprogress_two_readings_and_a_total() {
        let arn: JobArn = ARN.parse().unwrap();
        let mut job = stored(
            JobSnapshot {
                job_arn: arn,
                job_name: None,
                model_id: None,
                status: JobStatus::InProgress,
                message: None,
                submit_time: None,
                last_modified_time: None,
                end_time: None,
                records: Some(RecordCounts {
                    total: Some(500),
                    processed: Some(200),
                    success: None,
                    error: None,
                }),
                input_s3_uri: None,
                output_s3_uri: None,
                job_expiration_time: None,
            },
            3,
        );
        job.progress = Some(reading(200, 10));
        job.rate_from = Some(reading(100, 0));
        assert_eq!(job.eta(at(10)), Some(at(40)));
        assert_eq!(job.eta(at(39)), Some(at(40)), "still ahead");
        assert_eq!(
            job.eta(at(40)),
            None,
            "the count stood still until the estimate was reached: none, not one in the past"
        );
        assert_eq!(job.eta(at(600)), None, "hours later: still none");
        job.rate_from = None;
        assert_eq!(job.eta(at(10)), None, "one reading");
        job.rate_from = Some(reading(100, 0));
        job.snapshot.records.as_mut().unwrap().total = None;
        assert_eq!(job.eta(at(10)), None, "no total");
        job.snapshot.records.as_mut().unwrap().total = Some(500);
        job.snapshot.status = JobStatus::Stopping;
        assert_eq!(job.eta(at(10)), None, "not running");
    }
}
