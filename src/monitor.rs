//! The use cases: poll cycle, reconcile, track, untrack, describe. Generic over
//! the ports; never sees an SDK type.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{Instrument, info, info_span, warn};

use crate::config::Config;
use crate::domain::{
    ArnError, JobArn, JobRef, JobSnapshot, Pending, StoredJob, Transition, TransitionKind,
};
use crate::event::{Command, StateChange, TrackRequest};
use crate::ports::{
    ItemError, JobSource, JobStore, Notifier, NotifyError, Page, Record, SourceError, StoreError,
    Write,
};

/// The knobs the use cases need (a subset of [`Config`] plus the home region).
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_concurrency: usize,
    pub retention: Duration,
    pub not_found_limit: u32,
    pub deadline_margin: Duration,
    pub claim_duration: Duration,
    /// Region a bare job id is looked up in.
    pub home_region: String,
    /// Tag keys copied as labels when a native event starts tracking a job.
    pub label_tags: Vec<String>,
}

impl Settings {
    pub fn new(config: &Config, home_region: impl Into<String>) -> Self {
        Self {
            max_concurrency: config.max_concurrency,
            retention: config.retention,
            not_found_limit: config.not_found_limit,
            deadline_margin: config.deadline_margin,
            claim_duration: config.claim_duration,
            home_region: home_region.into(),
            label_tags: config.label_tags.clone(),
        }
    }
}

/// A systemic fault: the invocation fails so the Lambda error alarm fires.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{error}; summary so far: {summary}")]
    Store { error: StoreError, summary: Value },
    #[error("every Bedrock call failed ({calls} calls), first: {first}; summary: {summary}")]
    Bedrock {
        calls: usize,
        first: SourceError,
        summary: Value,
    },
    #[error("{error}; the notifications stay pending for the next run; summary: {summary}")]
    Notify { error: NotifyError, summary: Value },
}

/// A store fault before any work was done: there is no summary yet.
impl From<StoreError> for MonitorError {
    fn from(error: StoreError) -> Self {
        Self::Store {
            error,
            summary: Value::Null,
        }
    }
}

impl MonitorError {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store { .. } => "TableUnavailable",
            Self::Bedrock { .. } => "BedrockUnavailable",
            Self::Notify { .. } => "TopicUnavailable",
        }
    }
}

/// One job's problem, reported in the summary.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobError {
    pub job_arn: String,
    pub error: String,
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
    /// Jobs not started because the deadline was near; the next cycle takes them.
    pub deferred: usize,
    /// Jobs with at least one error.
    pub failed: usize,
    /// Items in the table that could not be read.
    pub skipped: usize,
    /// Jobs untracked because Bedrock kept answering NotFound.
    pub untracked: usize,
    /// Jobs that started being tracked (native events for new jobs).
    pub tracked: usize,
    pub errors: Vec<JobError>,
}

#[derive(Debug)]
enum Failure {
    Invalid(ArnError),
    Source(SourceError),
    Store(StoreError),
    Notify(NotifyError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::Source(e) => e.fmt(f),
            Self::Store(e) => e.fmt(f),
            Self::Notify(e) => e.fmt(f),
        }
    }
}

/// What happened to one job.
#[derive(Debug, Default)]
struct Outcome {
    called_bedrock: bool,
    polled: bool,
    transitions: usize,
    notified: usize,
    untracked: bool,
    tracked: bool,
    deferred: bool,
    failures: Vec<Failure>,
}

/// One step of a poll: a listed item on its way in, or a job done.
enum Entry {
    Item(Result<Box<StoredJob>, ItemError>),
    ListFailed(StoreError),
    Done(JobArn, Outcome),
}

/// Folds outcomes into a summary and remembers the systemic faults.
struct Tally {
    /// The listing stopped: the cycle did not see all the work.
    list_fault: Option<StoreError>,
    summary: Summary,
    bedrock_calls: usize,
    bedrock_systemic: usize,
    first_bedrock: Option<SourceError>,
    store_fault: Option<StoreError>,
    notify_fault: Option<NotifyError>,
}

impl Tally {
    fn new() -> Self {
        Self {
            list_fault: None,
            summary: Summary::default(),
            bedrock_calls: 0,
            bedrock_systemic: 0,
            first_bedrock: None,
            store_fault: None,
            notify_fault: None,
        }
    }

    fn add(&mut self, key: &str, o: Outcome) {
        let s = &mut self.summary;
        s.polled += usize::from(o.polled);
        s.transitions += o.transitions;
        s.notified += o.notified;
        s.deferred += usize::from(o.deferred);
        s.untracked += usize::from(o.untracked);
        s.tracked += usize::from(o.tracked);
        self.bedrock_calls += usize::from(o.called_bedrock);
        if !o.failures.is_empty() {
            s.failed += 1;
        }
        for f in o.failures {
            s.errors.push(JobError {
                job_arn: key.to_owned(),
                error: f.to_string(),
            });
            match f {
                Failure::Source(e) if e.is_systemic() => {
                    self.bedrock_systemic += 1;
                    self.first_bedrock.get_or_insert(e);
                }
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

    fn skip(&mut self, e: ItemError) {
        self.summary.skipped += 1;
        self.summary.errors.push(JobError {
            job_arn: e.key.clone(),
            error: e.to_string(),
        });
    }

    /// The summary, or the systemic fault it reveals.
    fn finish(self) -> Result<Summary, MonitorError> {
        let summary_json = || serde_json::to_value(&self.summary).unwrap_or(Value::Null);
        if let Some(error) = self.list_fault.clone().or_else(|| self.store_fault.clone()) {
            return Err(MonitorError::Store {
                error,
                summary: summary_json(),
            });
        }
        if self.bedrock_calls > 0 && self.bedrock_systemic == self.bedrock_calls {
            if let Some(first) = self.first_bedrock.clone() {
                return Err(MonitorError::Bedrock {
                    calls: self.bedrock_calls,
                    first,
                    summary: summary_json(),
                });
            }
        }
        if let Some(error) = self.notify_fault.clone() {
            return Err(MonitorError::Notify {
                error,
                summary: summary_json(),
            });
        }
        Ok(self.summary)
    }
}

/// The monitor: the use cases over a job source, a job store and a notifier.
pub struct Monitor<S, T, N> {
    source: S,
    store: T,
    notifier: N,
    settings: Settings,
}

impl<S: JobSource, T: JobStore, N: Notifier> Monitor<S, T, N> {
    pub fn new(source: S, store: T, notifier: N, settings: Settings) -> Self {
        Self {
            source,
            store,
            notifier,
            settings,
        }
    }

    /// Runs one command. `deadline` is when the invocation must have answered.
    pub async fn handle(
        &self,
        command: Command,
        deadline: Option<Instant>,
    ) -> Result<Value, MonitorError> {
        let to_value = |s: Summary| serde_json::to_value(s).unwrap_or(Value::Null);
        match command {
            // Boxed: the poll future is deep enough to strain the compiler's layout limit.
            Command::Poll => Box::pin(self.poll(deadline)).await.map(to_value),
            Command::Reconcile(change) => self.reconcile(change).await.map(to_value),
            Command::Track(requests) => self.track(requests).await,
            Command::Untrack(refs) => self.untrack(refs).await,
            Command::Describe(reference) => self.describe(&reference).await,
        }
    }

    /// One poll cycle over every job that still needs work.
    pub async fn poll(&self, deadline: Option<Instant>) -> Result<Summary, MonitorError> {
        // Stop starting jobs `deadline_margin` before the deadline, but never spend
        // less than half of the invocation's time working: a short local timeout
        // (cargo lambda watch) must still make progress.
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let margin = remaining.map_or(self.settings.deadline_margin, |r| {
            self.settings.deadline_margin.min(r / 2)
        });
        info!(
            remaining_ms = remaining.map(|r| r.as_millis() as u64),
            "poll cycle starting"
        );
        // The listing runs up to two pages ahead of the work, so Bedrock calls start
        // with the first page and overlap the rest of the listing. Where it starts
        // moves every cycle, so deferred work is not always the same jobs.
        let rotation = Utc::now().timestamp_subsec_nanos();
        let (pages_tx, pages_rx) = tokio::sync::mpsc::channel::<Result<Page, StoreError>>(2);
        let lister = async move {
            let mut pages = std::pin::pin!(self.store.list_active(rotation));
            while let Some(page) = pages.next().await {
                if pages_tx.send(page).await.is_err() {
                    break;
                }
            }
        };
        let entries = futures::stream::unfold(pages_rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        })
        .flat_map(|page| {
            let entries: Vec<Entry> = match page {
                Ok(items) => items
                    .into_iter()
                    .map(|i| Entry::Item(i.map(Box::new)))
                    .collect(),
                Err(e) => vec![Entry::ListFailed(e)],
            };
            futures::stream::iter(entries)
        });
        let worker = async move {
            let mut tally = Tally::new();
            let done = entries
                .map(|entry| async move {
                    let job = match entry {
                        Entry::Item(Ok(job)) => *job,
                        other => return other,
                    };
                    let arn = job.arn().clone();
                    if deadline.is_some_and(|d| Instant::now() + margin >= d) {
                        let deferred = Outcome {
                            deferred: true,
                            ..Outcome::default()
                        };
                        return Entry::Done(arn, deferred);
                    }
                    let span = info_span!("job", job_arn = %arn);
                    let outcome = self.process(job).instrument(span).await;
                    Entry::Done(arn, outcome)
                })
                .buffer_unordered(self.settings.max_concurrency);
            let mut done = std::pin::pin!(done);
            while let Some(entry) = done.next().await {
                match entry {
                    Entry::Done(arn, outcome) => tally.add(arn.as_str(), outcome),
                    Entry::Item(Err(e)) => {
                        warn!(item = %e.key, reason = %e.reason, "skipping unreadable item");
                        tally.skip(e);
                    }
                    Entry::ListFailed(e) => {
                        warn!(error = %e, "listing the work failed");
                        tally.list_fault.get_or_insert(e);
                    }
                    Entry::Item(Ok(_)) => {}
                }
            }
            tally
        };
        let ((), tally) = futures::join!(lister, worker);
        let summary = tally.finish()?;
        info!(
            polled = summary.polled,
            transitions = summary.transitions,
            notified = summary.notified,
            deferred = summary.deferred,
            failed = summary.failed,
            skipped = summary.skipped,
            "poll cycle done"
        );
        Ok(summary)
    }

    /// Bedrock's native event: reconcile that job now, tracking it if new.
    pub async fn reconcile(&self, change: StateChange) -> Result<Summary, MonitorError> {
        let arn = change.job_arn;
        info!(job_arn = %arn, hinted_status = ?change.status, event_time = ?change.time, "state-change event");
        let mut tally = Tally::new();
        let stored = self.store.get(&arn).await?;
        let outcome = match stored {
            Some(job) => self.process(job).await,
            None => {
                let labels = self.labels_from_tags(&arn).await;
                self.start_tracking(&JobRef::Arn(arn.clone()), labels)
                    .await
                    .1
            }
        };
        tally.add(arn.as_str(), outcome);
        tally.finish()
    }

    /// The job's tags named by `label_tags`, as labels. Labels are a convenience:
    /// when the tags cannot be read the job is tracked without them.
    async fn labels_from_tags(&self, arn: &JobArn) -> BTreeMap<String, String> {
        if self.settings.label_tags.is_empty() {
            return BTreeMap::new();
        }
        match self.source.tags(arn).await {
            Ok(tags) => tags
                .into_iter()
                .filter(|(k, v)| {
                    self.settings.label_tags.contains(k) && crate::labels::validate(k, v).is_ok()
                })
                .collect(),
            Err(e) => {
                warn!(job_arn = %arn, error = %e, "could not read the job's tags; tracking it without labels");
                BTreeMap::new()
            }
        }
    }

    /// Refreshes one job from Bedrock, records a change, and delivers what is pending.
    async fn process(&self, mut job: StoredJob) -> Outcome {
        let mut out = Outcome::default();
        if job.needs_polling() {
            out.called_bedrock = true;
            match self.source.get_job(&JobRef::Arn(job.arn().clone())).await {
                Ok(snapshot) => {
                    out.polled = true;
                    if snapshot.job_arn != *job.arn() {
                        out.failures
                            .push(Failure::Source(SourceError::Other(format!(
                                "asked for {} and got {}",
                                job.arn(),
                                snapshot.job_arn
                            ))));
                    } else if snapshot.status != job.snapshot.status {
                        let t = self.next_transition(&job, snapshot, TransitionKind::StatusChanged);
                        if !self.record(&mut job, t, false, &mut out).await {
                            return out;
                        }
                    } else if job.not_found_count > 0 {
                        // Found again after a NotFound blip: forget the count.
                        if let Err(e) = self
                            .store
                            .set_not_found_count(job.arn(), job.version, 0)
                            .await
                        {
                            out.failures.push(Failure::Store(e));
                        }
                    }
                }
                Err(SourceError::NotFound(msg)) => {
                    let count = job.not_found_count + 1;
                    if count >= self.settings.not_found_limit {
                        warn!(job_arn = %job.arn(), count, "Bedrock keeps answering NotFound; untracking");
                        let snapshot = job.snapshot.clone();
                        let t = self.next_transition(&job, snapshot, TransitionKind::Untracked);
                        if !self.record(&mut job, t, true, &mut out).await {
                            return out;
                        }
                        out.untracked = true;
                    } else {
                        out.failures
                            .push(Failure::Source(SourceError::NotFound(format!(
                                "{msg} (NotFound {count} of {} before the job is untracked)",
                                self.settings.not_found_limit
                            ))));
                        if let Err(e) = self
                            .store
                            .set_not_found_count(job.arn(), job.version, count)
                            .await
                        {
                            out.failures.push(Failure::Store(e));
                        }
                    }
                }
                Err(e) => {
                    warn!(job_arn = %job.arn(), error = %e, "GetModelInvocationJob failed");
                    out.failures.push(Failure::Source(e));
                }
            }
        }
        self.deliver(job, &mut out).await;
        out
    }

    fn next_transition(
        &self,
        job: &StoredJob,
        snapshot: JobSnapshot,
        kind: TransitionKind,
    ) -> Transition {
        let now = Utc::now();
        let mut phases = job.phases();
        if kind == TransitionKind::StatusChanged
            && !phases.iter().any(|(s, _)| *s == snapshot.status)
        {
            phases.push((snapshot.status.clone(), now));
        }
        Transition {
            id: Transition::id_for(job.arn(), job.version + 1, kind, &snapshot.status),
            kind,
            version: job.version + 1,
            previous: Some(job.snapshot.status.clone()),
            job: snapshot,
            observed_at: now,
            phases,
            labels: job.labels.clone(),
        }
    }

    /// Records `t` conditionally; false when there is nothing more to do for this job.
    async fn record(
        &self,
        job: &mut StoredJob,
        t: Transition,
        gone: bool,
        out: &mut Outcome,
    ) -> bool {
        let change = Record {
            transition: &t,
            expected_version: job.version,
            gone,
        };
        match self.store.record(change).await {
            Ok(Write::Done) => {
                info!(job_arn = %job.arn(), from = ?t.previous.as_ref().map(|s| s.as_str()), to = %t.job.status, version = t.version, "transition recorded");
                out.transitions += 1;
                job.history.push(t.history_entry());
                job.snapshot = t.job.clone();
                job.version = t.version;
                job.gone = gone;
                job.not_found_count = 0;
                job.outbox.push(Pending {
                    transition: t,
                    claimed_until: None,
                });
                true
            }
            Ok(Write::Lost) => {
                // Another invocation recorded this job first; it delivers what it recorded.
                info!(job_arn = %job.arn(), "transition already recorded by another invocation");
                false
            }
            Err(e) => {
                out.failures.push(Failure::Store(e));
                false
            }
        }
    }

    /// Publishes the job's pending notifications, oldest first, then retires the
    /// job when nothing is left to do.
    async fn deliver(&self, mut job: StoredJob, out: &mut Outcome) {
        let mut pending = std::mem::take(&mut job.outbox);
        pending.sort_by_key(|p| p.transition.version);
        let arn = job.arn().clone();
        let mut latest = Some(job);
        for p in pending {
            let id = p.transition.id.as_str();
            let now = Utc::now();
            if p.claimed_until.is_some_and(|until| until > now) {
                // Another invocation is publishing it; keep order by stopping here.
                return;
            }
            let until = now + self.settings.claim_duration;
            match self.store.claim(&arn, id, now, until).await {
                Ok(Write::Done) => {}
                Ok(Write::Lost) => return,
                Err(e) => {
                    out.failures.push(Failure::Store(e));
                    return;
                }
            }
            if let Err(e) = self.notifier.publish(&p.transition).await {
                warn!(job_arn = %arn, transition_id = id, error = %e, "publish failed; notification stays pending");
                if let Err(release) = self.store.release(&arn, id).await {
                    warn!(job_arn = %arn, error = %release, "could not release the claim; it expires by itself");
                }
                out.failures.push(Failure::Notify(e));
                return;
            }
            out.notified += 1;
            info!(job_arn = %arn, transition_id = id, status = %p.transition.job.status, "notification published");
            match self.store.complete(&arn, id).await {
                Ok(after) => latest = after,
                Err(e) => {
                    // Published but still pending: a later run may repeat it, with the same id.
                    out.failures.push(Failure::Store(e));
                    return;
                }
            }
        }
        if let Some(job) = latest.filter(|j| j.is_finished() && j.active) {
            let expires = Utc::now() + self.settings.retention;
            match self.store.retire(&arn, job.version, expires).await {
                Ok(_) => info!(job_arn = %arn, "job finished; left the work index"),
                Err(e) => out.failures.push(Failure::Store(e)),
            }
        }
    }

    /// Starts tracking one job: reads it from Bedrock, records the first
    /// observation and notifies it. Returns the ARN when known.
    async fn start_tracking(
        &self,
        reference: &JobRef,
        labels: BTreeMap<String, String>,
    ) -> (Option<JobArn>, Outcome, bool) {
        let mut out = Outcome {
            called_bedrock: true,
            ..Outcome::default()
        };
        let snapshot = match self.source.get_job(reference).await {
            Ok(s) => s,
            Err(SourceError::NotFound(msg)) => {
                out.failures
                    .push(Failure::Source(SourceError::NotFound(format!(
                        "no such job in {}: {msg}",
                        reference.region()
                    ))));
                return (None, out, false);
            }
            Err(e) => {
                out.failures.push(Failure::Source(e));
                return (None, out, false);
            }
        };
        out.polled = true;
        let now = Utc::now();
        let arn = snapshot.job_arn.clone();
        let stored_labels = labels.clone();
        let first = Transition {
            id: Transition::id_for(&arn, 1, TransitionKind::StatusChanged, &snapshot.status),
            kind: TransitionKind::StatusChanged,
            version: 1,
            previous: None,
            phases: vec![(snapshot.status.clone(), now)],
            job: snapshot,
            observed_at: now,
            labels,
        };
        match self.store.create(&first).await {
            Ok(Write::Done) => {
                info!(job_arn = %arn, status = %first.job.status, "tracking started");
                out.tracked = true;
                out.transitions += 1;
                let job = StoredJob {
                    history: vec![first.history_entry()],
                    snapshot: first.job.clone(),
                    version: 1,
                    outbox: vec![Pending {
                        transition: first,
                        claimed_until: None,
                    }],
                    not_found_count: 0,
                    gone: false,
                    active: true,
                    labels: stored_labels,
                };
                self.deliver(job, &mut out).await;
                (Some(arn), out, true)
            }
            Ok(Write::Lost) => (Some(arn), out, false),
            Err(e) => {
                out.failures.push(Failure::Store(e));
                (Some(arn), out, false)
            }
        }
    }

    async fn track(&self, requests: Vec<TrackRequest>) -> Result<Value, MonitorError> {
        let mut tally = Tally::new();
        let mut tracked = Vec::new();
        let mut already = Vec::new();
        let home = self.settings.home_region.as_str();
        let mut results = futures::stream::iter(requests)
            .map(|req| async move {
                match JobRef::parse(&req.reference, home) {
                    Ok(r) => {
                        let (arn, outcome, created) = self.start_tracking(&r, req.labels).await;
                        (req.reference, arn, outcome, created)
                    }
                    Err(e) => {
                        let o = Outcome {
                            failures: vec![Failure::Invalid(e)],
                            ..Outcome::default()
                        };
                        (req.reference, None, o, false)
                    }
                }
            })
            .buffer_unordered(self.settings.max_concurrency);
        while let Some((reference, arn, outcome, created)) = results.next().await {
            if let Some(a) = &arn {
                if created {
                    tracked.push(a.to_string());
                } else if outcome.failures.is_empty() {
                    already.push(a.to_string());
                }
            }
            let key = arn.map_or(reference, |a| a.to_string());
            tally.add(&key, outcome);
        }
        drop(results);
        let notified = tally.summary.notified;
        let summary = tally.finish()?;
        Ok(json!({
            "tracked": tracked,
            "alreadyTracked": already,
            "notified": notified,
            "failed": summary.failed,
            "errors": summary.errors,
        }))
    }

    async fn untrack(&self, refs: Vec<String>) -> Result<Value, MonitorError> {
        let mut untracked = Vec::new();
        let mut not_tracked = Vec::new();
        let mut errors = Vec::new();
        for r in refs {
            let arn: JobArn = match r.parse() {
                Ok(a) => a,
                Err(e) => {
                    errors.push(JobError {
                        job_arn: r,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            match self.store.delete(&arn).await {
                Ok(true) => untracked.push(arn.to_string()),
                Ok(false) => not_tracked.push(arn.to_string()),
                Err(error) if error.is_systemic() => {
                    return Err(MonitorError::Store {
                        error,
                        summary: json!({"untracked": untracked}),
                    });
                }
                Err(e) => errors.push(JobError {
                    job_arn: arn.to_string(),
                    error: e.to_string(),
                }),
            }
        }
        Ok(json!({
            "untracked": untracked,
            "notTracked": not_tracked,
            "failed": errors.len(),
            "errors": errors,
        }))
    }

    async fn describe(&self, reference: &str) -> Result<Value, MonitorError> {
        let arn: JobArn = match reference.parse() {
            Ok(a) => a,
            Err(e) => {
                return Ok(json!({"jobArn": reference, "tracked": false, "error": e.to_string()}));
            }
        };
        let job = self.store.get(&arn).await?;
        let Some(job) = job else {
            return Ok(json!({"jobArn": arn, "tracked": false}));
        };
        let s = &job.snapshot;
        Ok(json!({
            "jobArn": arn,
            "tracked": true,
            "active": job.active,
            "gone": job.gone,
            "jobName": s.job_name,
            "modelId": s.model_id,
            "status": s.status,
            "message": s.message,
            "submitTime": s.submit_time,
            "lastModifiedTime": s.last_modified_time,
            "endTime": s.end_time,
            "records": s.records,
            "inputS3Uri": s.input_s3_uri,
            "outputS3Uri": s.output_s3_uri,
            "version": job.version,
            "labels": job.labels,
            "notFoundCount": job.not_found_count,
            "pendingNotifications": job.outbox.len(),
            "history": job.history,
        }))
    }
}
