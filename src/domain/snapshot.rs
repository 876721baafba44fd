//! What Bedrock says about a job at one moment, and the freshness rule: whether
//! a read may replace what is stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobArn, JobStatus, StoredJob, WorkEntry};

/// Bedrock's record counters, present once the job has read its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordCounts {
    pub total: Option<i64>,
    pub processed: Option<i64>,
    pub success: Option<i64>,
    pub error: Option<i64>,
}

impl RecordCounts {
    pub fn is_empty(&self) -> bool {
        self.total.is_none()
            && self.processed.is_none()
            && self.success.is_none()
            && self.error.is_none()
    }
}

/// What Bedrock says about a job at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSnapshot {
    pub job_arn: JobArn,
    pub job_name: Option<String>,
    pub model_id: Option<String>,
    pub status: JobStatus,
    /// Bedrock's own text (the failure reason): untrusted, up to 2,048 characters.
    pub message: Option<String>,
    pub submit_time: Option<DateTime<Utc>>,
    pub last_modified_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub records: Option<RecordCounts>,
    pub input_s3_uri: Option<String>,
    pub output_s3_uri: Option<String>,
    /// When Bedrock expires the job if it has not finished by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_expiration_time: Option<DateTime<Utc>>,
}

/// Where a status sits in a job's life: Submitted, Validating, Scheduled,
/// InProgress, Stopping, then the ends. `None` for a status we do not know.
fn stage(status: &JobStatus) -> Option<u8> {
    match status {
        JobStatus::Submitted => Some(0),
        JobStatus::Validating => Some(1),
        JobStatus::Scheduled => Some(2),
        JobStatus::InProgress => Some(3),
        JobStatus::Stopping => Some(4),
        JobStatus::Unknown(_) => None,
        _ => Some(5),
    }
}

/// Whether a state read from Bedrock may replace the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Not older than what is stored: record it.
    Current,
    /// Older than what is stored (a list page or an answer that was on its way
    /// while the job moved on): leave the stored state as it is.
    Stale,
}

/// The one rule every writer of a job's state asks (guarantee 2: statuses
/// and counts only move forwards). A read is stale when:
/// - the stored status is an end and the read says another status (an ended
///   job is left only by an explicit `track` of a job that had ended before
///   it, and `track` too writes only a read that is not stale);
/// - it says the same status with fewer processed records than stored
///   (Bedrock's counts only grow: fewer means an older answer);
/// - both carry Bedrock's `lastModifiedTime` and the read's is older;
/// - the times are equal or one is absent, and the read's status comes
///   earlier in a job's life than the stored one (statuses we do not know
///   have no place in it and are never stale on that ground).
pub fn freshness(stored: &JobSnapshot, read: &JobSnapshot) -> Freshness {
    freshness_against(
        &stored.status,
        stored.last_modified_time,
        stored.records.and_then(|r| r.processed),
        read,
    )
}

/// [`freshness`] against a stored status, its time and its processed count,
/// when that is all that is at hand (a [`WorkEntry`] has no time: the order
/// of the life decides, and its last progress reading stands for the count).
pub fn freshness_against(
    status: &JobStatus,
    last_modified: Option<DateTime<Utc>>,
    processed: Option<i64>,
    read: &JobSnapshot,
) -> Freshness {
    if status.is_terminal() && read.status != *status {
        return Freshness::Stale;
    }
    older_or_not(status, last_modified, processed, read)
}

/// The rule without "an end is final": whether `read` is older than what is
/// stored by its time, its count or its place in a job's life.
fn older_or_not(
    status: &JobStatus,
    last_modified: Option<DateTime<Utc>>,
    processed: Option<i64>,
    read: &JobSnapshot,
) -> Freshness {
    let read_processed = read.records.and_then(|r| r.processed);
    if read.status == *status
        && let (Some(stored), Some(read)) = (processed, read_processed)
        && read < stored
    {
        return Freshness::Stale;
    }
    match (last_modified, read.last_modified_time) {
        (Some(s), Some(r)) if r < s => return Freshness::Stale,
        (Some(s), Some(r)) if r > s => return Freshness::Current,
        _ => {}
    }
    match (stage(status), stage(&read.status)) {
        (Some(s), Some(r)) if r < s => Freshness::Stale,
        _ => Freshness::Current,
    }
}

/// A read judged not stale against the stored state it is about to replace
/// ([`freshness`]), with that state's version: what a store write of the read
/// is made on, conditional on the version. Only the judges make one, so no
/// writer (a poll, an event, `track`, a progress note) can write a read
/// without asking the rule; and since every write that changes what the rule
/// looks at bumps the version, the verdict still holds when the write lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    version: u64,
}

impl Fresh {
    /// `read` against the whole stored job; `None` when it is stale.
    pub fn judge(stored: &StoredJob, read: &JobSnapshot) -> Option<Self> {
        (freshness(&stored.snapshot, read) == Freshness::Current).then_some(Self {
            version: stored.version,
        })
    }

    /// `read` as the first observation of a new tracking of a job that is no
    /// longer tracked (untracked, lost by Bedrock, or ended before the
    /// request): the end it held is not final for a new tracking, but an
    /// answer older than it (by `lastModifiedTime`, or without times by the
    /// order of a job's life) never re-arms it. `None` when it is older.
    pub fn judge_rearm(stored: &StoredJob, read: &JobSnapshot) -> Option<Self> {
        let s = &stored.snapshot;
        let processed = s.records.and_then(|r| r.processed);
        (older_or_not(&s.status, s.last_modified_time, processed, read) == Freshness::Current)
            .then_some(Self {
                version: stored.version,
            })
    }

    /// `read` against a work index entry (no time: the life's order and the
    /// last progress reading decide); `None` when it is stale.
    pub fn judge_entry(entry: &WorkEntry, read: &JobSnapshot) -> Option<Self> {
        let processed = entry.progress.map(|p| p.processed);
        (freshness_against(&entry.status, None, processed, read) == Freshness::Current).then_some(
            Self {
                version: entry.version,
            },
        )
    }

    /// The stored version the verdict was given on: the write's condition.
    pub fn version(self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn an_ended_job_should_never_take_another_status_from_a_read() {
        for stored in LIFE.iter().filter(|s| JobStatus::parse(s).is_terminal()) {
            for read in LIFE.iter().chain(&["Paused"]) {
                for (s, r) in [
                    (Some(10), Some(20)),
                    (Some(20), Some(10)),
                    (Some(10), Some(10)),
                    (None, None),
                    (Some(10), None),
                ] {
                    let verdict = freshness(&snap(stored, s), &snap(read, r));
                    let older = matches!((s, r), (Some(s), Some(r)) if r < s);
                    let expected = if read == stored && !older {
                        Freshness::Current
                    } else {
                        Freshness::Stale
                    };
                    assert_eq!(verdict, expected, "{stored}@{s:?} then {read}@{r:?}");
                }
            }
        }
    }

    #[test]
    fn a_newer_read_should_replace_any_status_that_has_not_ended_and_an_older_one_none() {
        for stored in LIFE
            .iter()
            .chain(&["Paused"])
            .filter(|s| !JobStatus::parse(s).is_terminal())
        {
            for read in LIFE.iter().chain(&["Paused"]) {
                let newer = freshness(&snap(stored, Some(10)), &snap(read, Some(20)));
                assert_eq!(newer, Freshness::Current, "{stored} then newer {read}");
                let older = freshness(&snap(stored, Some(20)), &snap(read, Some(10)));
                assert_eq!(older, Freshness::Stale, "{stored} then older {read}");
            }
        }
    }

    #[test]
    fn without_an_order_in_time_a_read_should_never_move_a_job_back_in_its_life() {
        for (i, stored) in LIFE
            .iter()
            .enumerate()
            .filter(|(_, s)| !JobStatus::parse(s).is_terminal())
        {
            for (j, read) in LIFE.iter().enumerate() {
                let stage = |k: usize| k.min(5);
                let expected = if stage(j) < stage(i) {
                    Freshness::Stale
                } else {
                    Freshness::Current
                };
                for (s, r) in [
                    (Some(10), Some(10)),
                    (None, Some(10)),
                    (Some(10), None),
                    (None, None),
                ] {
                    assert_eq!(
                        freshness(&snap(stored, s), &snap(read, r)),
                        expected,
                        "{stored}@{s:?} then {read}@{r:?}"
                    );
                }
            }
            // A status we do not know has no place in the life: never stale on that ground.
            assert_eq!(
                freshness(&snap(stored, None), &snap("Paused", None)),
                Freshness::Current
            );
            assert_eq!(
                freshness(&snap("Paused", None), &snap(stored, None)),
                Freshness::Current
            );
        }
    }

    fn counted(status: &str, modified: Option<i64>, processed: i64) -> JobSnapshot {
        let mut s = snap(status, modified);
        s.records = Some(RecordCounts {
            total: Some(1000),
            processed: Some(processed),
            success: None,
            error: None,
        });
        s
    }

    #[test]
    fn a_read_of_the_same_status_with_fewer_records_processed_should_be_stale() {
        for (s, r) in [
            (Some(10), Some(20)),
            (Some(10), Some(10)),
            (None, None),
            (Some(10), None),
        ] {
            let stored = counted("InProgress", s, 900);
            assert_eq!(
                freshness(&stored, &counted("InProgress", r, 500)),
                Freshness::Stale,
                "900 then 500 @{s:?}/{r:?}"
            );
            assert_eq!(
                freshness(&stored, &counted("InProgress", r, 900)),
                Freshness::Current
            );
            assert_eq!(
                freshness(&stored, &counted("InProgress", r, 950)),
                Freshness::Current
            );
            // Another status is judged by time and the life's order, not counts.
            assert_eq!(
                freshness(&stored, &counted("Completed", r, 500)),
                Freshness::Current
            );
        }
    }

    #[test]
    fn a_new_tracking_should_take_a_newer_end_and_never_an_older_answer() {
        let ended = stored(snap("Completed", Some(20)), 5);
        for (read, expected) in [
            (snap("Failed", Some(30)), true),
            (snap("Completed", Some(20)), true),
            (snap("Failed", None), true),
            (snap("InProgress", Some(10)), false),
            (snap("InProgress", None), false),
            (snap("InProgress", Some(30)), true),
        ] {
            assert_eq!(
                Fresh::judge_rearm(&ended, &read).map(Fresh::version),
                expected.then_some(5),
                "{read:?}"
            );
        }
        // A tracked job's end is final, whatever the time says.
        assert_eq!(Fresh::judge(&ended, &snap("Failed", Some(30))), None);
    }

    #[test]
    fn only_a_judge_gives_the_version_a_write_is_made_on() {
        let arn: JobArn = ARN.parse().unwrap();
        let mut job = stored(counted("InProgress", Some(20), 900), 7);
        job.progress = Some(reading(900, 5));
        job.snapshot.job_arn = arn.clone();
        let newer = counted("Completed", Some(30), 1000);
        assert_eq!(Fresh::judge(&job, &newer).map(Fresh::version), Some(7));
        assert_eq!(
            Fresh::judge(&job, &counted("InProgress", Some(10), 950)),
            None
        );
        let entry = WorkEntry {
            job_arn: arn,
            status: JobStatus::InProgress,
            version: 7,
            submit_time: None,
            not_found_count: 0,
            gone: false,
            untracked_at: None,
            outbox: Vec::new(),
            warned: Vec::new(),
            progress: Some(reading(900, 5)),
        };
        assert_eq!(
            Fresh::judge_entry(&entry, &counted("InProgress", None, 800)),
            None
        );
        assert_eq!(
            Fresh::judge_entry(&entry, &counted("Scheduled", None, 0)),
            None
        );
        assert_eq!(
            Fresh::judge_entry(&entry, &counted("InProgress", None, 901)).map(Fresh::version),
            Some(7)
        );
    }
}
