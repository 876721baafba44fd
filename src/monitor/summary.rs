//! What an invocation did: per-job outcomes folded into the summary it returns,
//! each per-job failure logged once, and the systemic fault, if any, found.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tracing::{error, warn};

use std::sync::Arc;

use super::{BedrockCalls, Invocation, MonitorError};
use crate::domain::{ArnError, Pending};
use crate::event::RejectedItem;
use crate::labels::LabelError;
use crate::ports::{NotifyError, SourceError, StoreError};
use crate::render::notification::truncate;

/// The longest error text a log line carries (the summary keeps it whole).
const LOGGED_ERROR_MAX: usize = 1024;

/// One job's problem, reported in the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub job_arn: String,
    /// A stable name for the kind of error (`BedrockThrottling`, `PublishRejected`, ...).
    pub kind: String,
    pub error: String,
    /// The destination that failed, when it is not the job topic (`slack`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// What a poll or reconcile did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Jobs whose state Bedrock returned.
    pub polled: usize,
    /// Status changes recorded by this invocation.
    pub transitions: usize,
    /// Notifications the topic accepted.
    pub notified: usize,
    /// Jobs not finished because the deadline was near: not started, or
    /// abandoned in flight. The next cycle takes them first.
    pub deferred: usize,
    /// Jobs with at least one error.
    pub failed: usize,
    /// Items in the table that could not be read.
    pub skipped: usize,
    /// Jobs untracked because Bedrock kept answering NotFound.
    pub untracked: usize,
    /// Jobs that started being tracked (native events for new jobs).
    pub tracked: usize,
    /// Bedrock events left alone: for jobs someone untracked, or for new
    /// jobs outside `WATCH`.
    pub ignored: usize,
    /// Early warnings recorded (each job and kind once).
    pub warnings: usize,
    /// Jobs discovery found and started tracking (`DISCOVERY`).
    pub discovered: usize,
    /// Notifications SNS kept refusing, set aside so the job's later ones go out.
    pub undeliverable: usize,
    /// Notifications of the jobs this invocation met that are still pending
    /// (not yet accepted by SNS) when it ends.
    pub pending: usize,
    /// How long ago the oldest of those was recorded, in seconds.
    pub oldest_pending_age_seconds: Option<i64>,
    /// Bedrock throttled every request of this poll. The poll still
    /// succeeds, so Lambda does not retry it twice more against a service
    /// that asked for less: the next scheduled poll is the retry. Each job's
    /// throttling is in `errors` and counted in the `BedrockErrors` metric
    /// (its alarm sees it). Present only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bedrock_throttled: bool,
    /// The batch quotas of the (account, region) pairs with a waiting job:
    /// how many, and how many could not be read. Absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quotas: Option<super::quota::QuotaReads>,
    pub errors: Vec<JobError>,
}

/// Why one job (or one item of a request) did not get done.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error(transparent)]
    Invalid(#[from] ArnError),
    #[error(transparent)]
    Rejected(#[from] RejectedItem),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    /// A destination other than the job topic failed: that destination's
    /// fault, never the invocation's.
    #[error("{destination}: {error}")]
    Delivery {
        destination: String,
        #[source]
        error: NotifyError,
    },
    #[error("the invocation's deadline came before this item was done; send it again")]
    Deadline,
    #[error(
        "{job_name:?} is not a job this monitor watches (WATCH={watch}): track it with the monitor that watches it, or widen WATCH"
    )]
    NotWatched { job_name: String, watch: String },
    /// The job's tags could not be read, and they decide whether it is
    /// watched (`WATCH`) or what its labels are (`LABEL_TAGS`): not tracked
    /// on a guess.
    #[error(
        "the job's tags could not be read (after the SDK's retries), and they decide whether this monitor watches it (WATCH) or what its labels are (LABEL_TAGS); it was not tracked on a guess: {0}"
    )]
    TagsUnavailable(SourceError),
    /// Tracked, without the labels its tags would give: Bedrock refused the
    /// tag read for a reason a retry does not mend (access denied).
    #[error(
        "the job is tracked, but without labels from its tags (LABEL_TAGS): Bedrock refused to read its tags, and trying again does not mend that (check the role's bedrock:ListTagsForResource): {0}"
    )]
    LabelsUnavailable(SourceError),
    /// The job's account is neither the monitor's own nor one of
    /// `MEMBER_ACCOUNTS`: never read, never tracked.
    #[error(
        "account {account} is not one this monitor reads (its own, {home}, and MEMBER_ACCOUNTS: {members}): add it to MemberAccounts, or use the monitor of that account"
    )]
    AccountNotMember {
        account: String,
        home: String,
        members: String,
    },
}

impl Failure {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "InvalidReference",
            Self::Rejected(_) => "InvalidItem",
            Self::Labels(_) => "InvalidLabels",
            Self::Source(e) => e.kind(),
            Self::Store(e) => e.kind(),
            Self::Notify(e) | Self::Delivery { error: e, .. } => e.kind(),
            Self::Deadline => "DeadlineReached",
            Self::NotWatched { .. } => "NotWatched",
            // The member's role, not the tags: counted where roles are (MemberRoleAlarm).
            Self::TagsUnavailable(SourceError::MemberRoleUnavailable { .. }) => {
                "MemberRoleUnavailable"
            }
            Self::TagsUnavailable(_) => "TagsUnavailable",
            Self::LabelsUnavailable(_) => "LabelsUnavailable",
            Self::AccountNotMember { .. } => "AccountNotMember",
        }
    }

    fn is_systemic(&self) -> bool {
        match self {
            Self::Source(e) => e.is_outage(),
            Self::Store(e) => e.is_systemic(),
            Self::Notify(e) => e.is_systemic(),
            _ => false,
        }
    }
}

/// What happened to one job.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub polled: bool,
    pub transitions: usize,
    pub notified: usize,
    pub untracked: bool,
    pub tracked: bool,
    pub deferred: bool,
    pub ignored: bool,
    pub warnings: usize,
    pub discovered: bool,
    pub undeliverable: usize,
    /// The job's notifications still pending, as last seen, and when the oldest
    /// was recorded.
    pub pending: usize,
    pub oldest_pending: Option<DateTime<Utc>>,
    pub failures: Vec<Failure>,
}

impl Outcome {
    pub fn fail(&mut self, f: impl Into<Failure>) {
        self.failures.push(f.into());
    }

    /// A destination's failure: the job topic's is the invocation's concern
    /// (its systemic faults fail it); another's is that destination's alone.
    pub fn fail_delivery(&mut self, destination: &str, error: NotifyError) {
        if destination == crate::domain::TOPIC {
            self.fail(error);
        } else {
            self.fail(Failure::Delivery {
                destination: destination.to_owned(),
                error,
            });
        }
    }

    /// Notes what a job still has pending for the job topic (its last known
    /// outbox): what `PendingNotificationsAlarm` watches. An entry only
    /// another destination still owes is that destination's
    /// (`DestinationFailures`).
    pub fn note_pending(&mut self, outbox: &[Pending]) {
        let owed = || {
            outbox
                .iter()
                .filter(|p| !p.delivery(crate::domain::TOPIC).done)
        };
        self.pending = owed().count();
        self.oldest_pending = owed().map(|p| p.transition.observed_at).min();
    }
}

/// Folds outcomes into a summary and remembers the systemic faults.
pub(crate) struct Tally {
    /// The listing stopped: the cycle did not see all the work.
    pub list_fault: Option<StoreError>,
    pub summary: Summary,
    /// The invocation's Bedrock requests, when Bedrock down for the whole
    /// invocation fails it (not for user commands: there each item's error
    /// is that item's).
    bedrock: Option<Arc<BedrockCalls>>,
    store_fault: Option<StoreError>,
    notify_fault: Option<NotifyError>,
    oldest_pending: Option<DateTime<Utc>>,
    /// A poll: Bedrock throttling it throughout is no failure.
    throttle_is_success: bool,
}

impl Tally {
    /// For a poll or an event: fails when Bedrock was down throughout `inv`.
    pub fn new(inv: &Invocation) -> Self {
        Self::with_bedrock(Some(inv.calls.clone()))
    }

    /// For a poll: like [`new`](Self::new), but a poll Bedrock throttled
    /// throughout succeeds (see [`Summary::bedrock_throttled`]).
    pub fn for_poll(inv: &Invocation) -> Self {
        let mut tally = Self::new(inv);
        tally.throttle_is_success = true;
        tally
    }

    /// For user commands: a Bedrock error is always the item's own.
    pub fn for_command() -> Self {
        Self::with_bedrock(None)
    }

    fn with_bedrock(bedrock: Option<Arc<BedrockCalls>>) -> Self {
        Self {
            list_fault: None,
            summary: Summary::default(),
            bedrock,
            store_fault: None,
            notify_fault: None,
            oldest_pending: None,
            throttle_is_success: false,
        }
    }

    /// Adds one job's outcome; each of its failures is logged here, once, with
    /// the job's ARN (scheduled and event invocations are asynchronous: the log
    /// is all an operator has).
    pub fn add(&mut self, key: &str, o: Outcome) {
        let s = &mut self.summary;
        s.polled += usize::from(o.polled);
        s.transitions += o.transitions;
        s.notified += o.notified;
        s.deferred += usize::from(o.deferred);
        s.untracked += usize::from(o.untracked);
        s.tracked += usize::from(o.tracked);
        s.ignored += usize::from(o.ignored);
        s.warnings += o.warnings;
        s.discovered += usize::from(o.discovered);
        s.undeliverable += o.undeliverable;
        s.pending += o.pending;
        self.oldest_pending = match (self.oldest_pending, o.oldest_pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if !o.failures.is_empty() {
            s.failed += 1;
        }
        for f in o.failures {
            // Service errors quote the service; a log line stays short.
            let text = truncate(&f.to_string(), LOGGED_ERROR_MAX);
            if f.is_systemic() {
                error!(job_arn = key, error_kind = f.kind(), error = %text, "job failed");
            } else {
                warn!(job_arn = key, error_kind = f.kind(), error = %text, "job failed");
            }
            s.errors.push(JobError {
                job_arn: key.to_owned(),
                kind: f.kind().to_owned(),
                error: f.to_string(),
                destination: match &f {
                    Failure::Delivery { destination, .. } => Some(destination.clone()),
                    _ => None,
                },
            });
            match f {
                Failure::Store(e) if e.is_systemic() => {
                    self.store_fault.get_or_insert(e);
                }
                Failure::Notify(e) if e.is_systemic() => {
                    self.notify_fault.get_or_insert(e);
                }
                _ => {}
            }
        }
    }

    /// An item of the work list that is not readable as a job.
    pub fn skip(&mut self, e: crate::ports::ItemError) {
        warn!(job_arn = %e.key, error_kind = "ItemUnreadable", error = %e.reason, "skipping unreadable item");
        self.summary.skipped += 1;
        self.summary.errors.push(JobError {
            job_arn: e.key.clone(),
            kind: "ItemUnreadable".to_owned(),
            error: e.to_string(),
            destination: None,
        });
    }

    /// The summary, or the systemic fault it reveals. Bedrock fails the
    /// invocation only when its health records say it was down in every
    /// region for the whole invocation (see [`BedrockCalls::bedrock_down`]);
    /// a job's own error, or an outage in one region, is in the summary.
    pub fn finish(mut self) -> Result<Summary, MonitorError> {
        self.summary.oldest_pending_age_seconds = self
            .oldest_pending
            .map(|t| (Utc::now() - t).num_seconds().max(0));
        let summary_json = || serde_json::to_value(&self.summary).unwrap_or(Value::Null);
        if let Some(error) = self.list_fault.clone().or_else(|| self.store_fault.clone()) {
            return Err(MonitorError::Store {
                error: Box::new(error),
                summary: summary_json(),
            });
        }
        if let Some(calls) = &self.bedrock
            && let Some(first) = calls.bedrock_down()
        {
            if self.throttle_is_success && matches!(first, SourceError::Throttling { .. }) {
                warn!(calls = calls.total(), error = %first, "Bedrock throttled the whole poll; not failing it, so Lambda does not retry it: the next scheduled poll is the retry");
                self.summary.bedrock_throttled = true;
                return Ok(self.summary);
            }
            return Err(MonitorError::Bedrock {
                calls: calls.total(),
                first: Box::new(first),
                summary: summary_json(),
            });
        }
        if let Some(error) = self.notify_fault.clone() {
            return Err(MonitorError::Notify {
                error: Box::new(error),
                summary: summary_json(),
            });
        }
        Ok(self.summary)
    }
}
