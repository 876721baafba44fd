//! The pure domain: job statuses, ARNs, snapshots and transitions. No I/O, no SDK types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The work list is spread over shards `0..POLL_SHARDS` (a stable hash of the
/// job ARN), so several schedules can poll disjoint parts of it.
pub const POLL_SHARDS: u32 = 4;

/// A Bedrock batch inference job status. Bedrock's enum is open-ended, so a
/// status we do not know is kept verbatim in `Unknown` and recorded as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Stopping,
    Stopped,
    Completed,
    PartiallyCompleted,
    Failed,
    Expired,
    Unknown(String),
}

impl JobStatus {
    /// The statuses Bedrock documents, in the order of a job's life.
    pub const KNOWN: [&'static str; 10] = [
        "Submitted",
        "Validating",
        "Scheduled",
        "InProgress",
        "Stopping",
        "Stopped",
        "Completed",
        "PartiallyCompleted",
        "Failed",
        "Expired",
    ];

    pub fn parse(s: &str) -> Self {
        match s {
            "Submitted" => Self::Submitted,
            "Validating" => Self::Validating,
            "Scheduled" => Self::Scheduled,
            "InProgress" => Self::InProgress,
            "Stopping" => Self::Stopping,
            "Stopped" => Self::Stopped,
            "Completed" => Self::Completed,
            "PartiallyCompleted" => Self::PartiallyCompleted,
            "Failed" => Self::Failed,
            "Expired" => Self::Expired,
            other => Self::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Submitted => "Submitted",
            Self::Validating => "Validating",
            Self::Scheduled => "Scheduled",
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Completed => "Completed",
            Self::PartiallyCompleted => "PartiallyCompleted",
            Self::Failed => "Failed",
            Self::Expired => "Expired",
            Self::Unknown(s) => s,
        }
    }

    /// Bedrock will not move the job again. Unknown statuses are not terminal:
    /// we keep polling rather than miss the real end.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::PartiallyCompleted
                | Self::Failed
                | Self::Stopped
                | Self::Expired
        )
    }

    pub fn severity(&self) -> Severity {
        match self {
            Self::Failed | Self::Expired => Severity::Error,
            Self::PartiallyCompleted | Self::Stopped => Severity::Warning,
            Self::Completed => Severity::Success,
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// How loud a status is; published as the `severity` message attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Success,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Success => "success",
            Self::Info => "info",
        }
    }
}

/// Why a job reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    #[error("empty job reference")]
    Empty,
    #[error(
        "{0:?} is not a Bedrock batch inference job ARN \
         (arn:<partition>:bedrock:<region>:<account>:model-invocation-job/<id>) or job id (12 lowercase letters and digits)"
    )]
    Malformed(String),
    #[error(
        "{arn:?} names region {region:?}, which is not a region of the {partition:?} partition \
         (for example us-east-1 in aws, cn-north-1 in aws-cn, us-gov-west-1 in aws-us-gov)"
    )]
    Region {
        arn: String,
        region: String,
        partition: String,
    },
}

/// `arn:<partition>:bedrock:<region>:<account>:model-invocation-job/<id>`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobArn(String);

impl JobArn {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    fn part(&self, i: usize) -> &str {
        self.0.split(':').nth(i).unwrap_or_default()
    }
    pub fn partition(&self) -> &str {
        self.part(1)
    }
    pub fn region(&self) -> &str {
        self.part(3)
    }
    pub fn account(&self) -> &str {
        self.part(4)
    }
    pub fn job_id(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or_default()
    }
}

fn is_job_id(s: &str) -> bool {
    s.len() == 12
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Region name prefixes of each partition, after the AWS SDK's partition rules
/// (`regionRegex`): `<prefix>-<direction>-<number>`, e.g. `us-east-1`, `us-gov-west-1`.
const PARTITION_REGIONS: [(&str, &[&str]); 8] = [
    (
        "aws",
        &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
    ),
    ("aws-cn", &["cn"]),
    ("aws-us-gov", &["us-gov"]),
    ("aws-iso", &["us-iso"]),
    ("aws-iso-b", &["us-isob"]),
    ("aws-iso-e", &["eu-isoe"]),
    ("aws-iso-f", &["us-isof"]),
    ("aws-eusc", &["eusc-de"]),
];

/// Whether `region` is a well-formed region of `partition`. Only such regions
/// ever get an SDK client: anything else is refused as the job's own error.
pub fn is_region_of(partition: &str, region: &str) -> bool {
    let Some((_, prefixes)) = PARTITION_REGIONS.iter().find(|(p, _)| *p == partition) else {
        return false;
    };
    prefixes.iter().any(|prefix| {
        let Some((direction, number)) = region
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split_once('-'))
        else {
            return false;
        };
        (1..=16).contains(&direction.len())
            && direction.bytes().all(|b| b.is_ascii_lowercase())
            && (1..=2).contains(&number.len())
            && number.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The partition a region belongs to, if it is a well-formed region of one.
pub fn partition_of(region: &str) -> Option<&'static str> {
    PARTITION_REGIONS
        .iter()
        .map(|(p, _)| *p)
        .find(|p| is_region_of(p, region))
}

impl FromStr for JobArn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, ArnError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ArnError::Empty);
        }
        let bad = || ArnError::Malformed(s.to_owned());
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad());
        };
        let id = resource
            .strip_prefix("model-invocation-job/")
            .ok_or_else(bad)?;
        let ok = arn == "arn"
            && partition.starts_with("aws")
            && service == "bedrock"
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && is_job_id(id);
        if !ok {
            return Err(bad());
        }
        if !is_region_of(partition, region) {
            return Err(ArnError::Region {
                arn: s.to_owned(),
                region: region.to_owned(),
                partition: partition.to_owned(),
            });
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for JobArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JobArn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JobArn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a caller names a job by: a full ARN, or a bare id in the function's own region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    Arn(JobArn),
    Id { id: String, region: String },
}

impl JobRef {
    pub fn parse(s: &str, default_region: &str) -> Result<Self, ArnError> {
        let t = s.trim();
        if t.starts_with("arn:") {
            return t.parse().map(Self::Arn);
        }
        if t.is_empty() {
            return Err(ArnError::Empty);
        }
        if is_job_id(t) {
            return Ok(Self::Id {
                id: t.to_owned(),
                region: default_region.to_owned(),
            });
        }
        Err(ArnError::Malformed(t.to_owned()))
    }

    pub fn region(&self) -> &str {
        match self {
            Self::Arn(a) => a.region(),
            Self::Id { region, .. } => region,
        }
    }

    /// What GetModelInvocationJob takes as `jobIdentifier`.
    pub fn identifier(&self) -> &str {
        match self {
            Self::Arn(a) => a.as_str(),
            Self::Id { id, .. } => id,
        }
    }
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.identifier())
    }
}

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

/// The one rule every writer of a status asks (guarantee 2: statuses only
/// move forwards). A read is stale when:
/// - the stored status is an end and the read says another status (an ended
///   job is left only by an explicit `track`);
/// - both carry Bedrock's `lastModifiedTime` and the read's is older;
/// - the times are equal or one is absent, and the read's status comes
///   earlier in a job's life than the stored one (statuses we do not know
///   have no place in it and are never stale on that ground).
pub fn freshness(stored: &JobSnapshot, read: &JobSnapshot) -> Freshness {
    freshness_against(&stored.status, stored.last_modified_time, read)
}

/// [`freshness`] against a stored status and its time, when that is all
/// that is at hand (a [`WorkEntry`] has no time: the order of the life decides).
pub fn freshness_against(
    status: &JobStatus,
    last_modified: Option<DateTime<Utc>>,
    read: &JobSnapshot,
) -> Freshness {
    if status.is_terminal() && read.status != *status {
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

/// How a `Completed` job really ended: Bedrock says `Completed` even when
/// records failed, so the counts decide.
pub fn completed_severity(records: Option<RecordCounts>) -> Severity {
    let Some(r) = records else {
        return Severity::Success;
    };
    let failed = r.error.unwrap_or(0);
    if failed <= 0 {
        return Severity::Success;
    }
    let all_failed = r.success == Some(0) || r.processed.is_some_and(|p| failed >= p);
    if all_failed {
        Severity::Error
    } else {
        Severity::Warning
    }
}

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

/// Bedrock's token totals for a finished job, from its output manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenTotals {
    pub input: i64,
    pub output: i64,
}

/// When the job's processed record count last moved (for `stalled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub processed: i64,
    pub since: DateTime<Utc>,
}

/// The longest estimate given: past it, a rate is too slow to mean anything.
pub const ETA_HORIZON_DAYS: i64 = 366;

/// When a job with `total` records ends if it keeps the rate between two
/// readings of its processed count: `None` unless the count moved forwards
/// between them, time passed, and records remain.
pub fn eta(from: Progress, to: Progress, total: i64) -> Option<DateTime<Utc>> {
    let moved = to.processed.checked_sub(from.processed)?;
    let elapsed_ms = (to.since - from.since).num_milliseconds();
    let remaining = total.checked_sub(to.processed)?;
    if moved <= 0 || elapsed_ms <= 0 || remaining <= 0 {
        return None;
    }
    let left_ms = i128::from(remaining) * i128::from(elapsed_ms) / i128::from(moved);
    let horizon = i128::from(ETA_HORIZON_DAYS * 86_400_000);
    if left_ms > horizon {
        return None;
    }
    Some(to.since + chrono::Duration::milliseconds(left_ms as i64))
}

/// "about 2 h 10 min left at the current rate": the time from `now` to `eta`,
/// to the minute.
pub fn eta_text(eta: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = ((eta - now).num_seconds() + 30).div_euclid(60);
    let (h, m) = (minutes / 60, minutes % 60);
    match (h, m) {
        _ if minutes < 1 => "less than a minute left at the current rate".to_owned(),
        (0, m) => format!("about {m} min left at the current rate"),
        (h, 0) => format!("about {h} h left at the current rate"),
        (h, m) => format!("about {h} h {m} min left at the current rate"),
    }
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

/// A notification recorded but not yet accepted by the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub transition: Transition,
    /// Someone is publishing it until then.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Who holds the claim.
    pub claimed_by: Option<String>,
    /// Publishes SNS refused for good so far.
    pub attempts: u32,
    /// SNS's words on the last refusal.
    pub last_error: Option<String>,
}

impl Pending {
    pub fn new(transition: Transition) -> Self {
        Self {
            transition,
            claimed_until: None,
            claimed_by: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// Held by someone else's claim that has not expired.
    pub fn held_by_other(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.claimed_until.is_some_and(|until| until > now)
            && self.claimed_by.as_deref() != Some(token)
    }
}

/// A notification SNS refused for good, set aside so the job's later ones go out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAside {
    pub transition_id: String,
    pub status: JobStatus,
    pub previous_status: Option<JobStatus>,
    /// SNS's words on the last refusal.
    pub error: String,
    pub attempts: u32,
    pub set_aside_at: DateTime<Utc>,
}

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
}

impl StoredJob {
    /// When the job should end at the rate between its last two readings
    /// ([`eta`]); only while it is InProgress.
    pub fn eta(&self) -> Option<DateTime<Utc>> {
        if self.snapshot.status != JobStatus::InProgress || !self.needs_polling() {
            return None;
        }
        eta(
            self.rate_from?,
            self.progress?,
            self.snapshot.records?.total?,
        )
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
    use super::*;

    const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz";

    #[test]
    fn when_arn_is_well_formed_should_expose_its_parts() {
        let arn: JobArn = ARN.parse().unwrap();
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "123456789012");
        assert_eq!(arn.job_id(), "abcdefghwxyz");
        assert_eq!(arn.partition(), "aws");
    }

    #[test]
    fn when_arn_is_malformed_should_refuse_it_and_name_it() {
        for bad in [
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/ABCDEFGHWXYZ",
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/short",
            "arn:aws:s3:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
            "arn:aws:bedrock:us-east-1:12345:model-invocation-job/abcdefghwxyz",
            "arn:aws:bedrock:us-east-1:123456789012:custom-model/abcdefghwxyz",
            "arn:aws:bedrock::123456789012:model-invocation-job/abcdefghwxyz",
            "not an arn",
        ] {
            let err = JobRef::parse(bad, "us-east-1").unwrap_err();
            assert!(err.to_string().contains(bad.trim()), "{err}");
        }
        assert_eq!(JobRef::parse("  ", "us-east-1"), Err(ArnError::Empty));
    }

    #[test]
    fn a_region_should_be_well_formed_for_its_partition() {
        for (partition, region) in [
            ("aws", "us-east-1"),
            ("aws", "ap-southeast-7"),
            ("aws", "il-central-1"),
            ("aws-cn", "cn-northwest-1"),
            ("aws-us-gov", "us-gov-west-1"),
            ("aws-iso-b", "us-isob-east-1"),
            ("aws-eusc", "eusc-de-east-1"),
        ] {
            assert!(is_region_of(partition, region), "{partition} {region}");
            assert_eq!(partition_of(region), Some(partition));
        }
        for (partition, region) in [
            ("aws", "us-gov-west-1"),
            ("aws-cn", "us-east-1"),
            ("aws", "moon-base-1"),
            ("aws", "us-east"),
            ("aws", "us-East-1"),
            ("aws", "us-east-123"),
            ("aws", "us--1"),
            ("aws-xyz", "us-east-1"),
        ] {
            assert!(!is_region_of(partition, region), "{partition} {region}");
        }
        let err = "arn:aws-cn:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"
            .parse::<JobArn>()
            .unwrap_err();
        assert!(matches!(err, ArnError::Region { .. }), "{err}");
    }

    #[test]
    fn when_reference_is_a_bare_id_should_use_the_default_region() {
        let r = JobRef::parse("abcdefghwxyz", "eu-west-3").unwrap();
        assert_eq!(r.region(), "eu-west-3");
        assert_eq!(r.identifier(), "abcdefghwxyz");
    }

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

    fn snap(status: &str, modified: Option<i64>) -> JobSnapshot {
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
    const LIFE: [&str; 10] = fake_bedrock::STATUSES;

    #[test]
    fn the_known_statuses_should_be_those_the_stand_in_serves_in_order() {
        // `list` validates its status filter against KNOWN: it must be
        // Bedrock's list, as the stand-in serves it.
        assert_eq!(JobStatus::KNOWN, LIFE);
        for s in JobStatus::KNOWN {
            assert!(!matches!(JobStatus::parse(s), JobStatus::Unknown(_)), "{s}");
        }
    }

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

    #[test]
    fn when_status_is_unknown_should_keep_the_text_and_not_be_terminal() {
        let s = JobStatus::parse("Paused");
        assert_eq!(s, JobStatus::Unknown("Paused".into()));
        assert_eq!(s.as_str(), "Paused");
        assert!(!s.is_terminal());
        assert_eq!(s.severity(), Severity::Info);
    }

    #[test]
    fn every_documented_status_should_round_trip_with_its_severity() {
        let expected = [
            ("Submitted", false, Severity::Info),
            ("Validating", false, Severity::Info),
            ("Scheduled", false, Severity::Info),
            ("InProgress", false, Severity::Info),
            ("Stopping", false, Severity::Info),
            ("Stopped", true, Severity::Warning),
            ("Completed", true, Severity::Success),
            ("PartiallyCompleted", true, Severity::Warning),
            ("Failed", true, Severity::Error),
            ("Expired", true, Severity::Error),
        ];
        for (name, terminal, severity) in expected {
            let s = JobStatus::parse(name);
            assert!(!matches!(s, JobStatus::Unknown(_)), "{name}");
            assert_eq!(s.as_str(), name);
            assert_eq!(s.is_terminal(), terminal, "{name}");
            assert_eq!(s.severity(), severity, "{name}");
        }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minutes)
    }

    fn reading(processed: i64, minutes: i64) -> Progress {
        Progress {
            processed,
            since: at(minutes),
        }
    }

    #[test]
    fn eta_should_extend_the_rate_between_two_readings_to_the_records_left() {
        // 100 records in 10 min; 300 left: 30 min after the second reading.
        assert_eq!(eta(reading(100, 0), reading(200, 10), 500), Some(at(40)));
        // A fraction of a minute is kept to the millisecond.
        assert_eq!(
            eta(reading(0, 0), reading(3, 1), 4),
            Some(at(1) + chrono::Duration::seconds(20))
        );
    }

    #[test]
    fn eta_should_be_absent_without_two_readings_of_a_moving_count() {
        assert_eq!(
            eta(reading(200, 0), reading(200, 10), 500),
            None,
            "count stood still"
        );
        assert_eq!(
            eta(reading(300, 0), reading(200, 10), 500),
            None,
            "count went back"
        );
        assert_eq!(
            eta(reading(100, 10), reading(200, 10), 500),
            None,
            "no time passed"
        );
        assert_eq!(
            eta(reading(100, 20), reading(200, 10), 500),
            None,
            "readings out of order"
        );
        assert_eq!(
            eta(reading(100, 0), reading(500, 10), 500),
            None,
            "nothing left"
        );
        assert_eq!(
            eta(reading(100, 0), reading(600, 10), 500),
            None,
            "more than the total"
        );
        // One record a year, a million left: no estimate past the horizon.
        assert_eq!(eta(reading(0, 0), reading(1, 525_600), 1_000_000), None);
        assert_eq!(eta(reading(i64::MIN, 0), reading(i64::MAX, 1), 5), None);
    }

    #[test]
    fn eta_text_should_read_in_hours_and_minutes() {
        assert_eq!(
            eta_text(at(130), at(0)),
            "about 2 h 10 min left at the current rate"
        );
        assert_eq!(
            eta_text(at(45), at(0)),
            "about 45 min left at the current rate"
        );
        assert_eq!(
            eta_text(at(180), at(0)),
            "about 3 h left at the current rate"
        );
        assert_eq!(
            eta_text(at(0) + chrono::Duration::seconds(20), at(0)),
            "less than a minute left at the current rate"
        );
        assert_eq!(
            eta_text(at(0), at(5)),
            "less than a minute left at the current rate",
            "an estimate already passed"
        );
    }

    #[test]
    fn stored_job_eta_should_need_inprogress_two_readings_and_a_total() {
        let arn: JobArn = ARN.parse().unwrap();
        let mut job = StoredJob {
            snapshot: JobSnapshot {
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
            version: 3,
            history: Vec::new(),
            outbox: Vec::new(),
            not_found_count: 0,
            gone: false,
            active: true,
            labels: BTreeMap::new(),
            untracked_at: None,
            undeliverable: Vec::new(),
            warned: Vec::new(),
            progress: Some(reading(200, 10)),
            rate_from: Some(reading(100, 0)),
            tokens: None,
        };
        assert_eq!(job.eta(), Some(at(40)));
        job.rate_from = None;
        assert_eq!(job.eta(), None, "one reading");
        job.rate_from = Some(reading(100, 0));
        job.snapshot.records.as_mut().unwrap().total = None;
        assert_eq!(job.eta(), None, "no total");
        job.snapshot.records.as_mut().unwrap().total = Some(500);
        job.snapshot.status = JobStatus::Stopping;
        assert_eq!(job.eta(), None, "not running");
    }
}
