//! The narrow traits the use cases depend on, in domain types only.
//!
//! The job table is split by capability: [`Jobs`] (one job's state),
//! [`Outbox`] (its pending notifications) and [`WorkList`] (listing the jobs
//! that still need work), so each use case's bounds say what it may touch.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::digest::{Digest, DigestMark, Health, SetAsideNote, Window};

use crate::domain::{
    EndedJob, Fresh, JobArn, JobRef, JobSnapshot, JobStatus, Progress, QuotaBook, RecordCounts,
    RecordErrors, SetAside, StoredJob, TokenTotals, Transition, WorkEntry,
};

/// The underlying cause of an adapter error (the SDK's error), kept as the source.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why Bedrock could not tell us about one job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("Bedrock does not know this job: {message}")]
    NotFound {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error(
        "access denied by Bedrock (the function's role may not read this job: another account, \
         a region the policy excludes, or a missing permission): {message}"
    )]
    AccessDenied {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("Bedrock rejected the request: {message}")]
    Validation {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("Bedrock throttled the request (after the SDK's retries): {message}")]
    Throttling {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("Bedrock internal error (after the SDK's retries): {message}")]
    Internal {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("Bedrock endpoint unreachable: {message}")]
    Unreachable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("unexpected answer from Bedrock: {message}")]
    Other {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// STS would not give credentials of the member account's role: every
    /// call for that account fails until the role can be assumed.
    #[error("the member account's role {role_arn} could not be assumed: {message}")]
    MemberRoleUnavailable {
        role_arn: String,
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl SourceError {
    /// An error with no SDK error behind it (a check of the answer failed).
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
            cause: None,
        }
    }

    /// Bedrock itself is in trouble (throttling after the SDK's retries, a
    /// server error, an endpoint that does not answer), not this request's
    /// job: the evidence a region's health record counts as an outage.
    /// AccessDenied is not: the role may read some jobs and not others.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Throttling { .. } | Self::Internal { .. } | Self::Unreachable { .. }
        )
    }

    /// A stable name for logs, summaries and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "BedrockNotFound",
            Self::AccessDenied { .. } => "BedrockAccessDenied",
            Self::Validation { .. } => "BedrockValidation",
            Self::Throttling { .. } => "BedrockThrottling",
            Self::Internal { .. } => "BedrockInternal",
            Self::Unreachable { .. } => "BedrockUnreachable",
            Self::Other { .. } => "BedrockOther",
            Self::MemberRoleUnavailable { .. } => "MemberRoleUnavailable",
        }
    }
}

/// Why a finished job's output files could not be read for its records'
/// errors. The text is what the notification says: short, naming the object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the output {uri} could not be read: {message}")]
pub struct OutputError {
    pub uri: String,
    pub message: String,
    /// A stable name for logs: `OutputMissing`, `OutputDenied`, `OutputUnreadable`.
    pub kind: &'static str,
    #[source]
    pub cause: Option<Cause>,
}

/// Why a finished job's manifest gave no token totals. The text is what the
/// final notification's cost line says: short, stable, naming the object.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ManifestError {
    /// S3 has no such object (or bucket).
    #[error("the manifest {uri} is not there: {message}")]
    Missing {
        uri: String,
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// S3 (or KMS through it) refused, redirected or did not answer.
    #[error("the manifest {uri} could not be read: {message}")]
    Unreadable {
        uri: String,
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The object is not a manifest as Bedrock writes it.
    #[error("the manifest {uri} is not one Bedrock writes: {message}")]
    Malformed { uri: String, message: String },
}

impl ManifestError {
    /// A stable name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "ManifestMissing",
            Self::Unreadable { .. } => "ManifestUnreadable",
            Self::Malformed { .. } => "ManifestMalformed",
        }
    }
}

/// Bedrock, as far as the monitor needs it.
pub trait JobSource: Send + Sync {
    fn get_job(
        &self,
        job: &JobRef,
    ) -> impl Future<Output = Result<JobSnapshot, SourceError>> + Send;

    /// The job's resource tags (read once, when a Bedrock event or discovery
    /// starts tracking it).
    fn tags(
        &self,
        job: &JobArn,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, SourceError>> + Send;

    /// Asks Bedrock to stop the job (StopModelInvocationJob), with the
    /// credentials of the job's account.
    fn stop_job(&self, job: &JobArn) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// One page of the jobs of `query.account` in `query.region` submitted after
    /// `query.submitted_after` (all of them when `None`) whose name contains
    /// `query.name_contains`, oldest first; `token` is the previous page's `next`.
    fn list_page(
        &self,
        query: &ListQuery<'_>,
        token: Option<&str>,
    ) -> impl Future<Output = Result<JobPage, SourceError>> + Send;

    /// Bedrock's token totals for a finished job, from the manifest it writes
    /// next to the output; `None` when none is to be read (no output URI, or a
    /// bucket the function is not configured to read), an error saying why
    /// when one should be and cannot.
    fn token_totals(
        &self,
        job: &JobSnapshot,
    ) -> impl Future<Output = Result<Option<TokenTotals>, ManifestError>> + Send;

    /// Why a finished job's records failed: its output prefix listed for its
    /// `.jsonl.out` files, read in order within `max_bytes` (ranged reads).
    /// `None` when there is nothing to read (no output URI, a bucket the
    /// function is not configured to read), an error saying why when there
    /// is and it cannot be read.
    fn record_errors(
        &self,
        _job: &JobSnapshot,
        _max_bytes: u64,
    ) -> impl Future<Output = Result<Option<RecordErrors>, OutputError>> + Send {
        async { Ok(None) }
    }

    /// The foundation models of `region` as `account` sees them: (model id,
    /// display name), from Bedrock's ListFoundationModels. A source that
    /// cannot tell says so.
    fn foundation_models(
        &self,
        _account: &str,
        _region: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, QuotaError>> + Send {
        async { Err(QuotaError::unsupported("ListFoundationModels")) }
    }

    /// One page of `account`'s Service Quotas for the service code `bedrock`
    /// in `region`: (quota name, value); `token` is the previous page's `next`.
    fn quota_page(
        &self,
        _account: &str,
        _region: &str,
        _token: Option<&str>,
    ) -> impl Future<Output = Result<QuotaPage, QuotaError>> + Send {
        async { Err(QuotaError::unsupported("ListServiceQuotas")) }
    }
}

/// One page of ListServiceQuotas.
#[derive(Debug, Default)]
pub struct QuotaPage {
    /// (QuotaName, Value).
    pub quotas: Vec<(String, f64)>,
    pub next: Option<String>,
}

/// Why a quota or the model list could not be read: the text `list`,
/// `describe`, the warning and the digest carry after "quota unknown: ".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct QuotaError {
    /// `ListServiceQuotas`, `ListFoundationModels` or `ListModelInvocationJobs`.
    pub operation: &'static str,
    /// The service's code and words.
    pub message: String,
    #[source]
    pub cause: Option<Cause>,
}

impl QuotaError {
    pub fn unsupported(operation: &'static str) -> Self {
        Self {
            operation,
            message: "not available from this job source".to_owned(),
            cause: None,
        }
    }
}

/// Which of Bedrock's jobs a listing asks for.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    /// Whose jobs: the function's own account, or a member's (read with its role).
    pub account: &'a str,
    pub region: &'a str,
    pub submitted_after: Option<DateTime<Utc>>,
    pub name_contains: Option<&'a str>,
    /// Only jobs in this status (ListModelInvocationJobs' `statusEquals`).
    pub status: Option<&'a JobStatus>,
}

/// One page of a listing of Bedrock's jobs.
#[derive(Debug, Default)]
pub struct JobPage {
    pub jobs: Vec<JobSnapshot>,
    /// The token of the next page; `None` on the last.
    pub next: Option<String>,
}

/// An item in the table that this monitor cannot read (not ours, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable item {key}: {reason}")]
pub struct ItemError {
    /// The item's key as found, or `<no jobArn>`.
    pub key: String,
    pub reason: String,
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("job table unreachable: {message}")]
    Unreachable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("job table access denied: {message}")]
    AccessDenied {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("job table throttled the request (after the SDK's retries): {message}")]
    Throttled {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("job table error: {message}")]
    Other {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The job's item exists but is not readable as a job: that job's problem.
    #[error(transparent)]
    Unreadable(#[from] ItemError),
}

impl StoreError {
    pub fn other(message: impl Into<String>) -> Self {
        Self::Other {
            message: message.into(),
            cause: None,
        }
    }

    /// Every job would fail the same way: the invocation fails.
    pub fn is_systemic(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::AccessDenied { .. })
    }

    /// Worth trying again within the same cycle (after a pause).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Other { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "TableUnreachable",
            Self::AccessDenied { .. } => "TableAccessDenied",
            Self::Throttled { .. } => "TableThrottled",
            Self::Other { .. } => "TableError",
            Self::Unreadable(_) => "ItemUnreadable",
        }
    }
}

/// Result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Done,
    /// The condition failed: another invocation got there first.
    Lost,
}

/// A change to record in one conditional write.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub transition: &'a Transition,
    /// The verdict that the transition's read is not older than the stored
    /// state, and the version it was given on (the write's condition).
    pub basis: Fresh,
    pub gone: bool,
}

/// What `untrack` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrack {
    /// The job was tracked; it is now an untracked marker.
    Untracked,
    /// Nothing to untrack (never tracked, or untracked already).
    NotTracked,
}

/// One job's stored state.
pub trait Jobs: Send + Sync {
    /// The stored job; `Err(StoreError::Unreadable)` when its item is not readable.
    fn get(
        &self,
        arn: &JobArn,
    ) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;

    /// Starts tracking with the first observation (a transition from nothing)
    /// and its pending notification. `Lost` when the item exists already.
    fn create(&self, first: &Transition) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Starts tracking quietly: like [`create`](Jobs::create), with the first
    /// observation in the history but no notification (discovery's backlog).
    fn adopt(&self, first: &Transition) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Records an early warning: its pending notification and its kind among
    /// those sent, bumping the version; conditional on the stored version.
    fn warn(
        &self,
        warning: &Transition,
        expected_version: u64,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Remembers where the record counters stand and since when the processed
    /// count has not moved; `previous`, the reading it replaces, becomes where
    /// the job's rate is measured from. Conditional on the version `basis`
    /// was judged on, and bumps it: counts only move forwards, and a change
    /// computed before this note cannot be recorded over it.
    fn set_progress(
        &self,
        arn: &JobArn,
        basis: Fresh,
        progress: Progress,
        records: RecordCounts,
        previous: Option<Progress>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Tracks again a job that was untracked, lost by Bedrock, or finished: the
    /// first observation of a new tracking, appended to the history, the job back
    /// in the work list. Conditional on the version `basis` was judged on.
    /// With `recorded_end` (the time the item recorded this very end at),
    /// the end keeps that time, so the digest that reported it is the only
    /// one; otherwise it is recorded at the first observation's time.
    fn rearm(
        &self,
        first: &Transition,
        basis: Fresh,
        reported_end: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Records a transition with its history entry and pending notification,
    /// conditional on the stored version.
    fn record(&self, change: Record<'_>) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Replaces the job's labels (bumps the version, conditional on it), so a
    /// transition computed from the old labels cannot be recorded afterwards.
    fn set_labels(
        &self,
        arn: &JobArn,
        labels: &BTreeMap<String, String>,
        expected_version: u64,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Remembers how many polls in a row Bedrock answered NotFound (no version bump).
    fn set_not_found_count(
        &self,
        arn: &JobArn,
        expected_version: u64,
        count: u32,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Takes a finished job out of the work list and sets its expiry,
    /// conditional on the version (no transition recorded meanwhile).
    fn retire(
        &self,
        arn: &JobArn,
        expected_version: u64,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Stops tracking: the item becomes a marker that keeps Bedrock's events
    /// from tracking the job again, and expires at `expires_at`. Pending
    /// notifications are dropped; the version is bumped so in-flight work loses.
    /// The job leaves the index of ends; the time its end was recorded stays
    /// only when a digest has reported it (so a later tracking at the same
    /// end is not reported again, and one no digest reported is, once).
    fn untrack(
        &self,
        arn: &JobArn,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Untrack, StoreError>> + Send;
}

/// A claim on a pending notification: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Unique per delivery attempt; only the holder may release or complete.
    pub token: String,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What one delivery attempt of a pending notification came to, destination
/// by destination, written in one conditional write by the claim's holder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settlement {
    /// Destinations that accepted it now.
    pub accepted: Vec<String>,
    /// Destinations that refused it for good, below the attempts' limit:
    /// their attempt count goes up, with the error.
    pub refused: Vec<(String, String)>,
    /// Destinations that failed for a reason not the message's (unreachable,
    /// throttled...): the error is kept; they are tried again.
    pub failed: Vec<(String, String)>,
    /// Destinations given up now: set aside there (the job's list of
    /// undeliverable notifications, the day's notes for the digest).
    pub set_aside: Vec<SetAside>,
    /// Every destination is done: the notification leaves the outbox.
    pub finished: bool,
    /// The routes that accepted it now (kept with the job for `describe`).
    pub routed: Option<crate::domain::Routed>,
}

/// The pending notifications of a job.
pub trait Outbox: Send + Sync {
    /// Claims a pending notification unless another holder's claim is still
    /// valid: the job as the claim left it (the entry's deliveries as they
    /// stand now), or `None` when it was not ours to take.
    fn claim(
        &self,
        arn: &JobArn,
        transition_id: &str,
        claim: &Claim,
    ) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;

    /// Writes what a delivery attempt came to ([`Settlement`]) and gives up
    /// the claim, if we still hold it: a finished notification leaves the
    /// outbox, an unfinished one keeps each destination's state for the next
    /// run. The job as it is afterwards, or `None` when the claim was no
    /// longer ours.
    fn settle(
        &self,
        arn: &JobArn,
        transition_id: &str,
        token: &str,
        settlement: &Settlement,
    ) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;
}

/// Where a listing of the work starts: a shard, after a job (exclusive) or at
/// its beginning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPosition {
    pub shard: u32,
    pub after: Option<String>,
}

/// One page of one shard of the work list.
#[derive(Debug, Default)]
pub struct WorkPage {
    pub items: Vec<Result<WorkEntry, ItemError>>,
    /// Where the next page of this shard starts; `None` at the shard's end.
    pub next: Option<String>,
}

/// The jobs that still need work, listed shard by shard, and where the last
/// cycle stopped.
pub trait WorkList: Send + Sync {
    /// How many shards the work is spread over (shards are `0..shards()`).
    fn shards(&self) -> u32;

    /// One page of a shard, starting after `after` (or at the shard's start).
    fn work_page(
        &self,
        shard: u32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<WorkPage, StoreError>> + Send;

    /// Where the next cycle over `shards` should start: saved by a cycle over
    /// the same shards that did not reach every job.
    fn load_cursor(
        &self,
        shards: &[u32],
    ) -> impl Future<Output = Result<Option<ListPosition>, StoreError>> + Send;

    /// Saves (or with `None` clears) where the next cycle over `shards` should start.
    fn save_cursor(
        &self,
        shards: &[u32],
        cursor: Option<&ListPosition>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Discovery's watermark for `scope` (a region for the monitor's own
    /// account, `<account>#<region>` for a member account's): jobs submitted
    /// before it were seen, and when a quiet backlog began there, if one is
    /// being taken in.
    fn load_watermark(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Watermark, StoreError>> + Send;

    /// Remembers that a quiet backlog began at `since`, on the condition that
    /// the watermark still is `previous.at` and no backlog began meanwhile.
    fn begin_backlog(
        &self,
        region: &str,
        since: DateTime<Utc>,
        previous: &Watermark,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Moves the watermark to `to` (and ends a backlog) with the verdicts
    /// to remember, on the condition that it still is `previous` (absent
    /// when `None`): `Lost` when another invocation moved it.
    fn save_watermark(
        &self,
        region: &str,
        to: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
        judged: &Judged,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// What the last poll learned of `account`'s batch quotas in `region`.
    fn load_quota(
        &self,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<Option<QuotaBook>, StoreError>> + Send;

    /// Keeps what a poll learned of an account's batch quotas in a region.
    fn save_quota(&self, book: &QuotaBook) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Discovery's place in one region.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Jobs submitted before it were seen; `None` before the first discovery.
    pub at: Option<DateTime<Utc>>,
    /// When the quiet backlog being taken in began (a first run, or one
    /// after a gap): jobs that ended after it are notified.
    pub backlog_since: Option<DateTime<Utc>>,
    pub judged: Judged,
}

/// What discovery decided about jobs it did not track, kept with the
/// watermark: job ARN -> the job's submit time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judged {
    /// Not watched (`WATCH` said no, on tags read once): left alone while
    /// a listing can meet them again (submitted within its overlap).
    pub not_watched: BTreeMap<String, DateTime<Utc>>,
    /// Their tags could not be read: judged again each poll until they can
    /// be, while the watermark moves on for the others.
    pub undecided: BTreeMap<String, DateTime<Utc>>,
}

/// Where a page of the ended jobs starts: after this end (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedKey {
    pub ended_at: DateTime<Utc>,
    pub job_arn: JobArn,
}

/// Which ended jobs a page of the index of ends holds: latest end first,
/// ended in `(since, until]` (either bound open when `None`), after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedQuery {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<EndedKey>,
    /// Items read at most (before any filter): what the page costs.
    pub limit: usize,
}

/// One page of the ended jobs.
#[derive(Debug, Default)]
pub struct EndedPage {
    pub jobs: Vec<Result<EndedJob, ItemError>>,
    /// Where the next page starts; `None` after the last.
    pub next: Option<EndedKey>,
}

/// What `list` and the digest read: reads that cost what they show, never
/// the table's history. The jobs that still need work come from the work
/// index ([`WorkList`]); those that ended, from an index of ends keyed by end
/// time; both are read whole only for the jobs shown, and without history.
/// Beside them, the monitor's own health counts and the digest's place.
pub trait Fleet: Send + Sync {
    /// The jobs `arns` names, read without their history, outbox and
    /// set-aside notifications (what `list` and the digest show of them);
    /// a job the table no longer has is left out.
    fn jobs_shown(
        &self,
        arns: &[JobArn],
    ) -> impl Future<Output = Result<Vec<Result<StoredJob, ItemError>>, StoreError>> + Send;

    /// One page of the ended jobs, latest end first.
    fn ended_page(
        &self,
        query: &EndedQuery,
    ) -> impl Future<Output = Result<EndedPage, StoreError>> + Send;

    /// The notifications set aside in `(since, until]`.
    fn set_aside_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<SetAsideNote>, StoreError>> + Send;

    /// Counts one invocation in the health record (for the digest).
    fn count_invocation(
        &self,
        counts: &InvocationCounts,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The health counts as they stand.
    fn health(&self) -> impl Future<Output = Result<Health, StoreError>> + Send;

    /// What the previous digest covered and the digest under way, if any;
    /// `None` before the first.
    fn last_digest(&self) -> impl Future<Output = Result<Option<DigestMark>, StoreError>> + Send;

    /// Begins a digest: saves `window` as the pending digest, held by
    /// `claim`, on the condition that none is pending and the last one still
    /// is `previous` (none when `None`). `Lost` when another digest began first.
    fn begin_digest(
        &self,
        window: &Window,
        claim: &Claim,
        previous: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Claims the pending digest `id` unless another holder's claim is still valid.
    fn claim_digest(
        &self,
        id: &str,
        claim: &Claim,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Gives up our claim on the pending digest `id` (its publish failed), so
    /// the next try goes at once.
    fn release_digest(
        &self,
        id: &str,
        token: &str,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// The pending digest `id` was published: saves `mark` as the last digest
    /// and clears the pending one, if we still hold its claim.
    fn finish_digest(
        &self,
        mark: &DigestMark,
        id: &str,
        token: &str,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;
}

/// The routes teams declared ([`crate::routes`]), kept in the table.
pub trait RouteStore: Send + Sync {
    /// Every declared route by name, and every route's delivery counts; a route
    /// the table holds in a shape this version cannot read is left out,
    /// loudly.
    fn routes(&self) -> impl Future<Output = Result<crate::routes::Book, StoreError>> + Send;

    /// Saves `route` (declared by a stack's resource): `Lost` when another
    /// stack declared its name. A name the same stack holds is taken over
    /// (an update, or a logical id renamed); a name nobody holds starts
    /// with counts of its own.
    fn put_route(
        &self,
        route: &crate::routes::Route,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Removes the route `name` with its counts, if the resource
    /// `logical_id` of `stack_id` holds it: `Lost` when another resource
    /// does (that route stays), `Done` when it is gone (or was never there).
    fn delete_route(
        &self,
        name: &str,
        stack_id: &str,
        logical_id: &str,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Adds one invocation's deliveries to the routes' counts.
    fn note_route_deliveries(
        &self,
        tallies: &BTreeMap<String, crate::routes::Stats>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a notification was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    #[error("notification topic unreachable: {message}")]
    Unreachable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("notification topic refused access: {message}")]
    AccessDenied {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("notification topic does not exist: {message}")]
    TopicNotFound {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    #[error("notification topic throttled the publish: {message}")]
    Throttled {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// SNS refused this message for good (a client error such as InvalidParameter).
    #[error("notification rejected: {message}")]
    Rejected {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
}

impl NotifyError {
    pub fn is_systemic(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::AccessDenied { .. } | Self::TopicNotFound { .. }
        )
    }

    /// Refused because of this message: retrying it unchanged will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    /// What SNS said, without our prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::Unreachable { message, .. }
            | Self::AccessDenied { message, .. }
            | Self::TopicNotFound { message, .. }
            | Self::Throttled { message, .. }
            | Self::Rejected { message, .. } => message,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "TopicUnreachable",
            Self::AccessDenied { .. } => "TopicAccessDenied",
            Self::TopicNotFound { .. } => "TopicNotFound",
            Self::Throttled { .. } => "PublishThrottled",
            Self::Rejected { .. } => "PublishRejected",
        }
    }
}

/// Where notifications go: destinations by name, the job topic
/// ([`crate::domain::TOPIC`]) first, then the routes ([`crate::routes`]:
/// the stack's Slack channel, the teams' topics), each delivered on its own.
pub trait Notifier: Send + Sync {
    /// The destinations `transition` goes to: the job topic, then each
    /// route of `routes` whose policy lets it through.
    fn destinations(&self, transition: &Transition, routes: &crate::routes::Table) -> Vec<String>;

    /// Publishes `transition` to `destination` (the job topic, or a route
    /// of `routes`; one `routes` no longer has is `TopicNotFound`).
    fn publish(
        &self,
        destination: &str,
        transition: &Transition,
        routes: &crate::routes::Table,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;

    /// The destinations the monitor's digest goes to: the job topic, then
    /// the stack's Slack channel when its policy lets the digest through; a
    /// route's own digest, to that route when its policy lets it through.
    fn digest_destinations(&self, digest: &Digest, routes: &crate::routes::Table) -> Vec<String>;

    /// Publishes `digest` to `destination`: the monitor's digest to the job
    /// topic or its Slack channel, or a route's own digest to that route.
    fn publish_digest(
        &self,
        destination: &str,
        digest: &Digest,
        routes: &crate::routes::Table,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
}

/// What one invocation did, for metrics: counts from its answer, however it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationReport {
    /// `Poll`, `Reconcile`, `Track`, `Untrack`, `Describe`, or `Invalid`.
    pub command: &'static str,
    /// `Ok`, or the failed invocation's error type (`TableUnavailable`, ...).
    pub outcome: String,
    pub polled: u64,
    pub transitions: u64,
    pub notified: u64,
    pub deferred: u64,
    pub failed: u64,
    /// Early warnings recorded.
    pub warnings: u64,
    /// Bedrock events left alone (untracked jobs, jobs outside `WATCH`,
    /// accounts that are not members).
    pub ignored: u64,
    /// Jobs discovery started tracking.
    pub discovered: u64,
    /// Bedrock requests by operation (`GetModelInvocationJob`, ...).
    pub bedrock_calls: BTreeMap<String, u64>,
    pub undeliverable: u64,
    pub pending: u64,
    pub oldest_pending_age: Option<std::time::Duration>,
    /// Per-job Bedrock errors by kind (`BedrockThrottling`, ...).
    pub bedrock_errors: BTreeMap<String, u64>,
    /// Settings the function cannot use (each turned off or to its
    /// default), in every invocation's report while the value stays.
    pub unusable_settings: u64,
    /// Errors of the answer at a destination other than the job topic.
    pub destination_failures: u64,
    /// Errors of the answer whose kind is `MemberRoleUnavailable`.
    pub member_role_failures: u64,
    pub duration: std::time::Duration,
}

/// What one invocation adds to the health record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InvocationCounts {
    /// It was a poll.
    pub poll: bool,
    /// It failed (a systemic fault).
    pub failed: bool,
    /// Publishes that failed at a destination other than the job topic.
    pub destination_failures: u64,
    /// Reads a member account's role could not be assumed for.
    pub member_role_failures: u64,
}

/// Where an invocation's metrics go: written whatever the log level.
pub trait MetricsSink: Send + Sync {
    fn emit(&self, report: &InvocationReport);
}

/// Why CloudFormation did not get a custom resource's answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnswerError {
    /// No answer came from the response URL (connection, timeout), or it
    /// failed for a while: the invocation fails, and Lambda retries it.
    #[error("the custom resource's response URL could not be reached: {message}")]
    Unreachable {
        message: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The response URL refused the answer (an expired or altered pre-signed URL).
    #[error("the custom resource's response URL refused the answer (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
}

/// CloudFormation, waiting for a custom resource's answer at the request's
/// pre-signed `ResponseURL`.
pub trait CloudFormation: Send + Sync {
    fn answer(
        &self,
        response_url: &str,
        response: &crate::custom_resource::Response,
    ) -> impl Future<Output = Result<(), AnswerError>> + Send;
}
