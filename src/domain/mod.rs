//! The pure domain: job statuses, ARNs, snapshots and transitions. No I/O, no
//! SDK types. One file a concept, each saying in its first line which.

mod arn;
mod cost;
mod job;
mod pending;
mod progress;
mod quota;
mod record_errors;
mod snapshot;
mod status;
mod transition;
mod warning;
mod watch;

pub use arn::*;
pub use cost::*;
pub use job::*;
pub use pending::*;
pub use progress::*;
pub use quota::*;
pub use record_errors::*;
pub use snapshot::*;
pub use status::*;
pub use transition::*;
pub use warning::*;
pub use watch::*;

/// What the domain's tests share: a job, a snapshot, times and readings.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use chrono::{DateTime, Utc};

    pub const ARN: &str =
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz";

    pub fn snap(status: &str, modified: Option<i64>) -> JobSnapshot {
        JobSnapshot {
            job_arn: ARN.parse().unwrap(),
            job_name: None,
            model_id: None,
            status: JobStatus::parse(status),
            message: None,
            submit_time: None,
            last_modified_time: modified.and_then(|s| DateTime::from_timestamp(s, 0)),
            end_time: None,
            records: None,
            input_s3_uri: None,
            output_s3_uri: None,
            job_expiration_time: None,
        }
    }

    /// Every status Bedrock documents, in the order of a job's life up to
    /// Stopping, then the ends (the stand-in's list, not a copy of it).
    pub const LIFE: [&str; 10] = fake_bedrock::STATUSES;

    pub fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    pub fn reading(processed: i64, minutes: i64) -> Progress {
        Progress {
            processed,
            since: at(minutes),
        }
    }

    /// A tracked job in `snapshot`'s state at `version`, nothing else known.
    pub fn stored(snapshot: JobSnapshot, version: u64) -> StoredJob {
        StoredJob {
            snapshot,
            version,
            history: Vec::new(),
            outbox: Vec::new(),
            not_found_count: 0,
            gone: false,
            active: true,
            labels: std::collections::BTreeMap::new(),
            untracked_at: None,
            undeliverable: Vec::new(),
            warned: Vec::new(),
            progress: None,
            rate_from: None,
            tokens: None,
            ended_at: None,
            record_errors: None,
            routed: Vec::new(),
        }
    }
}
