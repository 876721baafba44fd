//! The narrow traits the use cases depend on, in domain types only.

use std::collections::BTreeMap;
use std::future::Future;

use futures::Stream;

use chrono::{DateTime, Utc};

use crate::domain::{JobArn, JobRef, JobSnapshot, StoredJob, Transition};

/// Why Bedrock could not tell us about one job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("Bedrock does not know this job: {0}")]
    NotFound(String),
    #[error("access denied by Bedrock: {0}")]
    AccessDenied(String),
    #[error("Bedrock rejected the request: {0}")]
    Validation(String),
    #[error("Bedrock throttled the request (after the SDK's retries): {0}")]
    Throttling(String),
    #[error("Bedrock internal error (after the SDK's retries): {0}")]
    Internal(String),
    #[error("Bedrock endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("unexpected answer from Bedrock: {0}")]
    Other(String),
}

impl SourceError {
    /// A fault that is not about one job: every job would fail the same way.
    pub fn is_systemic(&self) -> bool {
        matches!(self, Self::AccessDenied(_) | Self::Unreachable(_))
    }
}

/// Bedrock, as far as the monitor needs it.
pub trait JobSource: Send + Sync {
    fn get_job(
        &self,
        job: &JobRef,
    ) -> impl Future<Output = Result<JobSnapshot, SourceError>> + Send;

    /// The job's resource tags (read once, when a Bedrock event starts tracking it).
    fn tags(
        &self,
        job: &JobArn,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, SourceError>> + Send;
}

/// A storage failure. Item-level oddities are [`ItemError`], not this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("job table unreachable: {0}")]
    Unreachable(String),
    #[error("job table access denied: {0}")]
    AccessDenied(String),
    #[error("job table throttled the request: {0}")]
    Throttled(String),
    #[error("job table error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_systemic(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::AccessDenied(_))
    }
}

/// An item in the table that this monitor cannot read (not ours, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable item {key}: {reason}")]
pub struct ItemError {
    /// The item's key as found, or `<no jobArn>`.
    pub key: String,
    pub reason: String,
}

/// One page of the work listing: jobs, or items that are not readable as jobs.
pub type Page = Vec<Result<StoredJob, ItemError>>;

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
    /// The stored version the change was computed from.
    pub expected_version: u64,
    pub gone: bool,
}

/// The job table.
pub trait JobStore: Send + Sync {
    /// Every job the work index lists (the ones that still need work), a page at
    /// a time, so polling can start before the listing ends. `rotation` moves
    /// where the listing starts, so that deferred work is not always the same.
    fn list_active(&self, rotation: u32) -> impl Stream<Item = Result<Page, StoreError>> + Send;

    fn get(
        &self,
        arn: &JobArn,
    ) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;

    /// Starts tracking with the first observation (a transition from nothing)
    /// and its pending notification. `Lost` when the job is tracked already.
    fn create(&self, first: &Transition) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Records a transition with its history entry and pending notification,
    /// conditional on the stored version.
    fn record(&self, change: Record<'_>) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Remembers how many polls in a row Bedrock answered NotFound (no version bump).
    fn set_not_found_count(
        &self,
        arn: &JobArn,
        expected_version: u64,
        count: u32,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Claims a pending notification until `until`, unless someone else holds it.
    fn claim(
        &self,
        arn: &JobArn,
        transition_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Gives up a claim after a failed publish, so the next run retries at once.
    fn release(
        &self,
        arn: &JobArn,
        transition_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a delivered notification; returns the job as it is afterwards.
    fn complete(
        &self,
        arn: &JobArn,
        transition_id: &str,
    ) -> impl Future<Output = Result<Option<StoredJob>, StoreError>> + Send;

    /// Takes a finished job out of the work index and sets its expiry,
    /// conditional on the version (no transition recorded meanwhile).
    fn retire(
        &self,
        arn: &JobArn,
        expected_version: u64,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<Write, StoreError>> + Send;

    /// Stops tracking; returns whether the job was tracked.
    fn delete(&self, arn: &JobArn) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Why a notification was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notification topic unreachable: {0}")]
    Unreachable(String),
    #[error("notification topic refused access: {0}")]
    AccessDenied(String),
    #[error("notification topic does not exist: {0}")]
    TopicNotFound(String),
    #[error("notification topic throttled the publish: {0}")]
    Throttled(String),
    #[error("notification rejected: {0}")]
    Rejected(String),
}

impl NotifyError {
    pub fn is_systemic(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::AccessDenied(_) | Self::TopicNotFound(_)
        )
    }
}

/// Where notifications go.
pub trait Notifier: Send + Sync {
    fn publish(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<(), NotifyError>> + Send;
}
