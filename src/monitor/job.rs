//! One job's work, shared by every use case: refresh it from Bedrock, record a
//! change, deliver its pending notifications, start or re-arm its tracking.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use tracing::{Instrument, error, info, info_span, warn};

use super::summary::Outcome;
use super::{Budget, Invocation, Monitor};
use crate::domain::{
    Fresh, JobArn, JobRef, JobSnapshot, JobStatus, Pending, Progress, RecordCounts, RecordErrors,
    SetAside, StoredJob, TOPIC, TokenTotals, Transition, TransitionKind, WarningKind, WorkEntry,
};
use crate::ports::{
    Claim, JobSource, Jobs, Notifier, Outbox, Record, RouteStore, Settlement, SourceError,
    StoreError, Write,
};
use crate::prices::Costing;
use crate::warnings::Subject;

/// How one conditional write for a job went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Written,
    /// Another invocation wrote the item first: nothing more to do with
    /// what this one read (Bedrock's event reads the item again).
    Raced,
    /// A store error, recorded in the outcome.
    Failed,
}

/// How recording a read of Bedrock went ([`Monitor::refresh_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refreshed {
    /// Recorded (or nothing to record), and what is pending delivered.
    Done,
    /// Another invocation wrote the item meanwhile: the read was not recorded.
    Raced,
}

/// How [`Monitor::start_tracking`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Started {
    /// First observation recorded: a new item, or an untracked, lost or
    /// finished job tracked again.
    Tracked,
    /// The item changed meanwhile: read it again and decide again.
    Raced,
    /// Bedrock's answer is older than what the item holds now (the job
    /// moved on while it was on its way): nothing written.
    Stale,
    /// A store error, recorded in the outcome.
    Failed,
}

impl<S: JobSource, T: Jobs + Outbox + RouteStore, N: Notifier> Monitor<S, T, N> {
    /// Refreshes and delivers one job the work index listed, within the
    /// budget; work still in flight at the cut is abandoned and the job
    /// reported deferred.
    pub(super) async fn run_job(
        &self,
        entry: WorkEntry,
        listed: Option<JobSnapshot>,
        inv: &Invocation,
        budget: &Budget,
    ) -> Outcome {
        let mut out = Outcome::default();
        // What is pending as listed: what the summary reports if the work is cut short.
        out.note_pending(&entry.outbox);
        let arn = entry.job_arn.clone();
        // Tracked before its account left MEMBER_ACCOUNTS: not read with a
        // role the monitor no longer uses, loud every poll until untracked;
        // what it still owes subscribers goes out (no role needed for that).
        if let Err(not_member) = self.member_check(arn.account()) {
            if !entry.outbox.is_empty() {
                let deliver = async {
                    if let Some(job) = self.whole_of(&arn, &mut out).await {
                        self.deliver(job, inv, &mut out).await;
                    }
                };
                if !budget.within(deliver).await {
                    out.deferred = true;
                }
            }
            out.fail(not_member);
            return out;
        }
        let span = info_span!("job", job_arn = %arn);
        let done = budget
            .within(
                self.refresh_entry(entry, listed, inv, &mut out)
                    .instrument(span),
            )
            .await;
        if !done {
            warn!(job_arn = %arn, error_kind = "DeadlineReached", "work on this job abandoned at the deadline; the next cycle takes it first");
            out.deferred = true;
        }
        out
    }

    /// Refreshes a job the work index listed, from a bulk read's `listed`
    /// state or a Get. The common case stays on the entry: Bedrock says the
    /// same status, the read is current and no warning is due, so only the
    /// counts are noted. Anything else (a change, a warning due, a stale
    /// read, NotFound at its limit, notifications to deliver) reads the whole
    /// item and goes the whole job's way.
    async fn refresh_entry(
        &self,
        entry: WorkEntry,
        listed: Option<JobSnapshot>,
        inv: &Invocation,
        out: &mut Outcome,
    ) {
        if !entry.needs_polling() {
            // Ended, with notifications still to deliver.
            if let Some(job) = self.whole_of(&entry.job_arn, out).await {
                self.deliver(job, inv, out).await;
            }
            return;
        }
        let read = match listed {
            Some(snapshot) => Ok(snapshot),
            None => {
                self.bedrock(inv)
                    .get_job(&JobRef::Arn(entry.job_arn.clone()))
                    .await
            }
        };
        let now = Utc::now();
        let basis = read
            .as_ref()
            .ok()
            .and_then(|s| Fresh::judge_entry(&entry, s));
        let stays_lean = match &read {
            Ok(s) => {
                let subject = Subject {
                    snapshot: s,
                    warned: &entry.warned,
                    progress: entry.progress,
                    running_since: None,
                    quota: None,
                };
                s.job_arn == entry.job_arn
                    && s.status == entry.status
                    && basis.is_some()
                    && self.config.warnings.due_for(&subject, now).is_empty()
                    // A running job without a reading yet is compared with
                    // its count at the start, which only the whole item has.
                    && (entry.progress.is_some() || !counts_running(s))
            }
            Err(SourceError::NotFound { .. }) => {
                entry.not_found_count + 1 < self.config.not_found_limit
            }
            Err(_) => true,
        };
        if !stays_lean {
            if let Some(job) = self.whole_of(&entry.job_arn, out).await {
                self.refresh_with(job, read, inv, out).await;
            }
            return;
        }
        let arn = &entry.job_arn;
        match read {
            Ok(snapshot) => {
                out.polled = true;
                if entry.not_found_count > 0 {
                    // Found again after a NotFound blip: forget the count.
                    let reset = self.store.set_not_found_count(arn, entry.version, 0).await;
                    self.expect_written(arn, "the count of NotFound answers", reset, out);
                }
                if let Some((progress, records, previous)) =
                    self.progress_due(&snapshot, entry.progress, None, now)
                    && let Some(basis) = basis
                {
                    match self
                        .store
                        .set_progress(arn, basis, progress, records, previous)
                        .await
                    {
                        Ok(Write::Done) => {}
                        // Changed meanwhile: the next poll sees it as it is.
                        Ok(Write::Lost) => return,
                        Err(e) => return out.fail(e),
                    }
                }
            }
            Err(SourceError::NotFound { message, cause }) => {
                self.not_found_again(
                    arn,
                    entry.version,
                    entry.not_found_count,
                    message,
                    cause,
                    out,
                )
                .await;
            }
            Err(e) => out.fail(e),
        }
        if !entry.outbox.is_empty()
            && let Some(job) = self.whole_of(arn, out).await
        {
            self.deliver(job, inv, out).await;
        }
    }

    /// Refreshes a whole job with a Get, records a change, and delivers what
    /// is pending.
    pub(super) async fn refresh(&self, job: StoredJob, inv: &Invocation, out: &mut Outcome) {
        if !job.needs_polling() {
            return self.deliver(job, inv, out).await;
        }
        let read = self
            .bedrock(inv)
            .get_job(&JobRef::Arn(job.arn().clone()))
            .await;
        self.refresh_with(job, read, inv, out).await;
    }

    /// Records what Bedrock answered about a whole job, then delivers what is
    /// pending.
    pub(super) async fn refresh_with(
        &self,
        mut job: StoredJob,
        read: Result<JobSnapshot, SourceError>,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> Refreshed {
        out.polled |= read.is_ok();
        if !job.needs_polling() {
            // Ended, untracked or lost meanwhile (the whole item was read
            // after the listing): nothing to record, only what is pending.
            self.deliver(job, inv, out).await;
            return Refreshed::Done;
        }
        match read {
            Ok(snapshot) if snapshot.job_arn != *job.arn() => {
                out.fail(SourceError::other(format!(
                    "asked for {} and got {}",
                    job.arn(),
                    snapshot.job_arn
                )));
            }
            Ok(snapshot) => match self.apply_read(job, snapshot, out).await {
                Ok(current) => job = current,
                Err(Step::Raced) => return Refreshed::Raced,
                Err(_) => return Refreshed::Done,
            },
            Err(SourceError::NotFound { .. })
                if job.not_found_count + 1 >= self.config.not_found_limit =>
            {
                info!(job_arn = %job.arn(), count = job.not_found_count + 1, "Bedrock keeps answering NotFound; untracking");
                let snapshot = job.snapshot.clone();
                let Some(basis) = Fresh::judge(&job, &snapshot) else {
                    self.deliver(job, inv, out).await;
                    return Refreshed::Done;
                };
                let t = self.next_transition(&job, snapshot, TransitionKind::Untracked);
                match self.record(&mut job, t, basis, true, out).await {
                    Step::Written => out.untracked = true,
                    other => {
                        out.note_pending(&job.outbox);
                        return if other == Step::Raced {
                            Refreshed::Raced
                        } else {
                            Refreshed::Done
                        };
                    }
                }
            }
            Err(SourceError::NotFound { message, cause }) => {
                self.not_found_again(
                    job.arn(),
                    job.version,
                    job.not_found_count,
                    message,
                    cause,
                    out,
                )
                .await;
            }
            Err(e) => out.fail(e),
        }
        self.deliver(job, inv, out).await;
        Refreshed::Done
    }

    /// One more NotFound, below the limit: the job's error, and the count kept.
    async fn not_found_again(
        &self,
        arn: &JobArn,
        version: u64,
        count: u32,
        message: String,
        cause: Option<crate::ports::Cause>,
        out: &mut Outcome,
    ) {
        let count = count + 1;
        out.fail(SourceError::NotFound {
            message: format!(
                "{message} (NotFound {count} of {} before the job is untracked)",
                self.config.not_found_limit
            ),
            cause,
        });
        let written = self.store.set_not_found_count(arn, version, count).await;
        self.expect_written(arn, "the count of NotFound answers", written, out);
    }

    /// Records what a read of Bedrock says about `job`, unless it is older
    /// than what is stored ([`freshness`]): a new status as a transition, the
    /// same status's counters as progress, and the warnings now due. The job
    /// as it is afterwards, or the step that left nothing more to do for it
    /// now (another invocation changed it, or the table failed).
    async fn apply_read(
        &self,
        mut job: StoredJob,
        read: JobSnapshot,
        out: &mut Outcome,
    ) -> Result<StoredJob, Step> {
        let Some(mut basis) = self.judged(&job, &read) else {
            return Ok(job);
        };
        if read.status != job.snapshot.status {
            let mut t = self.next_transition(&job, read, TransitionKind::StatusChanged);
            (t.tokens, t.cost) = self.tokens_and_cost(&t.job).await;
            t.record_errors = self.record_errors_of(&t.job).await;
            let step = self.record(&mut job, t, basis, false, out).await;
            if step != Step::Written {
                out.note_pending(&job.outbox);
                return Err(step);
            }
            // The job is now what was just written: the next write's basis.
            basis = Fresh::judge(&job, &job.snapshot).ok_or(Step::Failed)?;
        } else {
            if job.not_found_count > 0 {
                // Found again after a NotFound blip: forget the count.
                let reset = self
                    .store
                    .set_not_found_count(job.arn(), job.version, 0)
                    .await;
                self.expect_written(job.arn(), "the count of NotFound answers", reset, out);
            }
            // Same status: the counters and times may have moved.
            job.snapshot = read;
        }
        let now = Utc::now();
        let mut step = self.note_progress(&mut job, basis, now, out).await;
        if step == Step::Written {
            step = self.send_warnings(&mut job, now, out).await;
        }
        if step != Step::Written {
            out.note_pending(&job.outbox);
            return Err(step);
        }
        Ok(job)
    }

    /// The verdict on `read` against what `job` holds ([`Fresh::judge`]);
    /// a stale read is logged and gets none.
    fn judged(&self, job: &StoredJob, read: &JobSnapshot) -> Option<Fresh> {
        let verdict = Fresh::judge(job, read);
        if verdict.is_some() {
            return verdict;
        }
        info!(
            job_arn = %job.arn(),
            stored = %job.snapshot.status,
            stored_modified = ?job.snapshot.last_modified_time,
            read = %read.status,
            read_modified = ?read.last_modified_time,
            "Bedrock's answer is older than what is recorded; left as it is"
        );
        None
    }

    /// A write whose loss is only a cost (a count, a claim given back): a
    /// failure is that job's error, a lost condition a warning, each logged
    /// once with the job's ARN.
    fn expect_written(
        &self,
        arn: &JobArn,
        what: &str,
        result: Result<Write, StoreError>,
        out: &mut Outcome,
    ) {
        match result {
            Ok(Write::Done) => {}
            Ok(Write::Lost) => {
                warn!(job_arn = %arn, write = what, "write not made: the item changed meanwhile");
            }
            Err(e) => out.fail(e),
        }
    }

    /// The reading of a running job's processed count to write down now, if
    /// any, with the reading it replaces (which becomes where the job's rate
    /// is measured from). Only while InProgress (a status change resets it).
    /// The first reading after the count the job started with (`rate_from`)
    /// is written at the first poll that sees the count move, so an ETA
    /// follows two polls; if it does not move, the start's count is written
    /// once [`progress_interval`](crate::warnings::Thresholds::progress_interval)
    /// has passed, as the clock `stalled` runs on. After that a moving count
    /// is written at most once per interval; one that moved sooner waits.
    fn progress_due(
        &self,
        read: &JobSnapshot,
        stored: Option<Progress>,
        rate_from: Option<Progress>,
        now: DateTime<Utc>,
    ) -> Option<(Progress, RecordCounts, Option<Progress>)> {
        let every = self.config.warnings.progress_interval();
        if read.status != JobStatus::InProgress {
            return None;
        }
        let records = read.records?;
        let processed = records.processed?;
        let reading = |since| Progress { processed, since };
        match (stored, rate_from) {
            (Some(p), _) => (p.processed != processed && now - p.since >= every).then_some((
                reading(now),
                records,
                Some(p),
            )),
            (None, Some(start)) if start.processed == processed => {
                (now - start.since >= every).then_some((reading(start.since), records, None))
            }
            (None, _) => Some((reading(now), records, None)),
        }
    }

    /// Writes down the job's progress when it is due ([`Self::progress_due`]).
    /// False when the job changed meanwhile or the table failed.
    async fn note_progress(
        &self,
        job: &mut StoredJob,
        basis: Fresh,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> Step {
        let Some((progress, records, previous)) =
            self.progress_due(&job.snapshot, job.progress, job.rate_from, now)
        else {
            return Step::Written;
        };
        match self
            .store
            .set_progress(job.arn(), basis, progress, records, previous)
            .await
        {
            Ok(Write::Done) => {
                job.version = basis.version() + 1;
                if previous.is_some() {
                    job.rate_from = previous;
                }
                job.progress = Some(progress);
                Step::Written
            }
            Ok(Write::Lost) => Step::Raced,
            Err(e) => {
                out.fail(e);
                Step::Failed
            }
        }
    }

    /// Records the early warnings now due (each job and kind once); they are
    /// delivered with the job's other pending notifications. False when the
    /// job changed meanwhile or the table failed.
    async fn send_warnings(
        &self,
        job: &mut StoredJob,
        now: DateTime<Utc>,
        out: &mut Outcome,
    ) -> Step {
        let quota = self.standing_of(&job.snapshot);
        for warning in self.config.warnings.due_with(job, now, quota.as_ref()) {
            let kind = warning.kind;
            let version = job.version + 1;
            let t = Transition {
                id: Transition::warning_id(job.arn(), version, kind),
                kind: TransitionKind::Warning,
                version,
                previous: None,
                job: job.snapshot.clone(),
                observed_at: now,
                phases: job.phases(),
                labels: job.labels.clone(),
                // A stalled job's rate is none: it quotes no estimate.
                eta: (kind != WarningKind::Stalled)
                    .then(|| job.eta(now))
                    .flatten(),
                warning: Some(warning),
                tokens: None,
                cost: None,
                record_errors: None,
            };
            match self.store.warn(&t, job.version).await {
                Ok(Write::Done) => {
                    info!(job_arn = %job.arn(), warning = kind.as_str(), status = %job.snapshot.status, version, "early warning recorded");
                    out.warnings += 1;
                    job.version = version;
                    job.warned.push(kind);
                    job.outbox.push(Pending::new(t));
                }
                Ok(Write::Lost) => return Step::Raced,
                Err(e) => {
                    out.fail(e);
                    return Step::Failed;
                }
            }
        }
        Step::Written
    }

    /// The whole item of a job; `None` when it is gone (nothing to do) or
    /// unreadable (noted in `out`).
    async fn whole_of(&self, arn: &JobArn, out: &mut Outcome) -> Option<StoredJob> {
        match self.store.get(arn).await {
            Ok(found) => found,
            Err(e) => {
                out.fail(e);
                None
            }
        }
    }

    /// Token totals from Bedrock's manifest for a job that has ended, and what
    /// they cost. They are a bonus: a manifest that cannot be read is logged,
    /// and the notification goes without them, its cost line saying why.
    pub(super) async fn tokens_and_cost(
        &self,
        job: &JobSnapshot,
    ) -> (Option<TokenTotals>, Option<Costing>) {
        if !job.status.is_terminal() {
            return (None, None);
        }
        match self.source.token_totals(job).await {
            Ok(totals) => (totals, self.config.prices.costing(job, totals)),
            Err(e) => {
                warn!(job_arn = %job.job_arn, error_kind = e.kind(), error = %e, "could not read the job's manifest; notifying without token totals");
                let why = e.to_string();
                (None, Some(Costing::NoTokens { why }))
            }
        }
    }

    /// Why the records of a job that ended with failed records failed, read
    /// from its output within `RECORD_ERRORS_MAX_BYTES`. Like the tokens, a
    /// bonus: an output that cannot be read is logged and said, and changes
    /// nothing else. The read runs inside the job's share of the poll's
    /// budget, so it never holds a poll past its deadline, and for at most
    /// `record_errors_timeout`, so a slow S3 never holds back the end.
    pub(super) async fn record_errors_of(&self, job: &JobSnapshot) -> Option<RecordErrors> {
        let max_bytes = self.config.record_errors_max_bytes;
        let failed = job.records.and_then(|r| r.error).unwrap_or(0);
        if !job.status.is_terminal() || failed <= 0 || max_bytes == 0 {
            return None;
        }
        let limit = self.config.record_errors_timeout;
        match tokio::time::timeout(limit, self.source.record_errors(job, max_bytes)).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                warn!(job_arn = %job.job_arn, error_kind = e.kind, error = %e, "could not read the job's output for its records' errors; notifying without them");
                Some(RecordErrors::unreadable(e.to_string(), max_bytes))
            }
            Err(_) => {
                let why = format!("the output did not arrive within {} s", limit.as_secs_f64());
                warn!(job_arn = %job.job_arn, error_kind = "OutputTimedOut", error = %why, "could not read the job's output for its records' errors; notifying without them");
                Some(RecordErrors::unreadable(why, max_bytes))
            }
        }
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
            warning: None,
            tokens: None,
            cost: None,
            record_errors: None,
            eta: None,
        }
    }

    /// The first observation of a tracking that starts at `version`.
    pub(super) fn first_observation(
        snapshot: JobSnapshot,
        version: u64,
        labels: BTreeMap<String, String>,
    ) -> Transition {
        let now = Utc::now();
        Transition {
            id: Transition::id_for(
                &snapshot.job_arn,
                version,
                TransitionKind::StatusChanged,
                &snapshot.status,
            ),
            kind: TransitionKind::StatusChanged,
            version,
            previous: None,
            phases: vec![(snapshot.status.clone(), now)],
            job: snapshot,
            observed_at: now,
            labels,
            warning: None,
            tokens: None,
            cost: None,
            record_errors: None,
            eta: None,
        }
    }

    /// Records `t` conditionally; anything but `Written` leaves nothing more
    /// to do for this job now.
    async fn record(
        &self,
        job: &mut StoredJob,
        t: Transition,
        basis: Fresh,
        gone: bool,
        out: &mut Outcome,
    ) -> Step {
        // A status change resets progress; a job entering InProgress keeps
        // its count then as where its rate is measured from.
        let change = Record {
            transition: &t,
            basis,
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
                job.progress = None;
                job.rate_from = t.entry_reading();
                job.tokens = t.tokens.or(job.tokens);
                if t.record_errors.is_some() {
                    job.record_errors = t.record_errors.clone();
                }
                job.outbox.push(Pending::new(t));
                Step::Written
            }
            Ok(Write::Lost) => {
                // Another invocation recorded this job first; it delivers what it recorded.
                info!(job_arn = %job.arn(), "transition already recorded by another invocation");
                Step::Raced
            }
            Err(e) => {
                out.fail(e);
                Step::Failed
            }
        }
    }

    /// Tracks `snapshot`'s job from now on: creates its item, or re-arms an item
    /// that is no longer tracked (untracked, lost by Bedrock, finished). The
    /// first observation is notified like any transition.
    pub(super) async fn start_tracking(
        &self,
        snapshot: JobSnapshot,
        existing: Option<StoredJob>,
        labels: BTreeMap<String, String>,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> Started {
        let arn = snapshot.job_arn.clone();
        // Like every writer, a re-arm writes only a read that is not older
        // than what the item holds: an answer that was on its way while the
        // job ended never re-arms it (the end is not final for a new
        // tracking, but an older answer is never taken).
        let basis = match &existing {
            None => None,
            Some(old) => match Fresh::judge_rearm(old, &snapshot) {
                Some(basis) => Some(basis),
                None => {
                    info!(job_arn = %arn, stored = %old.snapshot.status, read = %snapshot.status, "Bedrock's answer is older than what the item holds; not tracked again with it");
                    return Started::Stale;
                }
            },
        };
        let version = existing.as_ref().map_or(1, |j| j.version + 1);
        let mut first = Self::first_observation(snapshot, version, labels);
        (first.tokens, first.cost) = self.tokens_and_cost(&first.job).await;
        first.record_errors = self.record_errors_of(&first.job).await;
        // Tracked again at the very end the item holds: the tokens it read
        // then stand when the manifest cannot be read now.
        let same_end = existing.as_ref().filter(|old| {
            old.snapshot.status.is_terminal() && old.snapshot.status == first.job.status
        });
        if let Some(old) = same_end
            && first.tokens.is_none()
            && old.tokens.is_some()
        {
            first.tokens = old.tokens;
            first.cost = self.config.prices.costing(&first.job, first.tokens);
        }
        let write = match basis {
            None => self.store.create(&first).await,
            Some(basis) => {
                // The same end keeps the time it was recorded at, so only the
                // digest whose window holds that time reports it. (Untracking
                // drops the time of an end no digest has reported yet: then
                // the end is recorded now, and the next digest reports it.)
                let recorded_end = same_end.and_then(|old| old.ended_at);
                self.store.rearm(&first, basis, recorded_end).await
            }
        };
        match write {
            Ok(Write::Done) => {}
            Ok(Write::Lost) => return Started::Raced,
            Err(e) => {
                out.fail(e);
                return Started::Failed;
            }
        }
        let was = existing.as_ref().map(StoredJob::tracking);
        info!(job_arn = %arn, status = %first.job.status, version, ?was, "tracking started");
        out.tracked = true;
        out.transitions += 1;
        let (mut history, outbox, undeliverable, warned, routed) = existing
            .map(|j| (j.history, j.outbox, j.undeliverable, j.warned, j.routed))
            .unwrap_or_default();
        history.push(first.history_entry());
        let mut outbox = outbox;
        outbox.push(Pending::new(first.clone()));
        let job = StoredJob {
            history,
            snapshot: first.job.clone(),
            version,
            outbox,
            not_found_count: 0,
            gone: false,
            active: true,
            labels: first.labels.clone(),
            untracked_at: None,
            undeliverable,
            warned,
            progress: None,
            rate_from: first.entry_reading(),
            tokens: first.tokens,
            ended_at: None,
            record_errors: first.record_errors.clone(),
            routed,
        };
        self.deliver(job, inv, out).await;
        Started::Tracked
    }

    /// Publishes the job's pending notifications, then retires the job when
    /// nothing is left to do. What is still pending afterwards is noted in `out`.
    pub(super) async fn deliver(&self, job: StoredJob, inv: &Invocation, out: &mut Outcome) {
        let current = self.publish_pending(job, inv, out).await;
        out.note_pending(&current.outbox);
        if current.is_finished() && current.active {
            let arn = current.arn();
            let expires = Utc::now() + self.config.retention;
            let retired = self.store.retire(arn, current.version, expires).await;
            if matches!(retired, Ok(Write::Done)) {
                info!(job_arn = %arn, "job finished; left the work list");
            }
            self.expect_written(
                arn,
                "taking the finished job out of the work list",
                retired,
                out,
            );
        }
    }

    /// Publishes the job's pending notifications, oldest first, each to every
    /// destination it goes to that has not had it; returns the job as last seen.
    ///
    /// Each is claimed first (a conditional write naming this delivery), so two
    /// invocations never publish the same one at once. A notification held by
    /// someone else stops this delivery: its holder goes on with the later ones
    /// once done (it sees them in the item its settlement returns), so a later
    /// notification never waits for the next poll.
    ///
    /// Each destination has its own delivery: what one accepted is never sent
    /// it again, and one that fails holds back only its own later messages
    /// (so each destination hears a job's statuses in order), never another
    /// destination's. One a destination refuses for good is retried once a
    /// poll and set aside there after `PUBLISH_MAX_ATTEMPTS`; a destination
    /// other than the job topic that keeps failing for another reason is set
    /// aside after [`DESTINATION_GIVE_UP_AFTER`], so it never keeps a job from
    /// retiring beyond that.
    async fn publish_pending(
        &self,
        job: StoredJob,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> StoredJob {
        let arn = job.arn().clone();
        if job.outbox.is_empty() {
            return job;
        }
        // The routes are read once an invocation, by the first job with
        // something to publish; a table that cannot be read keeps every
        // notification pending (none leaves the outbox without its routes).
        let routes = match Box::pin(self.routes(inv)).await {
            Ok(routes) => routes,
            Err(e) => {
                out.fail(e);
                return job;
            }
        };
        let token = self.claim_token(inv);
        let mut current = job;
        let mut handled: HashSet<String> = HashSet::new();
        // Destinations with an earlier notification still pending this run.
        let mut blocked: HashSet<String> = HashSet::new();
        // Each turn settles an entry or stops; the bound only guards against a
        // table that keeps changing under us.
        let mut turns = current.outbox.len() + 4;
        while let Some(p) = current
            .outbox
            .iter()
            .filter(|p| !handled.contains(&p.transition.id))
            .min_by_key(|p| p.transition.version)
            .cloned()
        {
            if turns == 0 {
                return current;
            }
            turns -= 1;
            let id = p.transition.id.clone();
            handled.insert(id.clone());
            let (wanted, now_to) = self.owed(&p, &blocked, &routes);
            if now_to.is_empty() && !wanted.is_empty() {
                // Every destination it still needs waits for an earlier one.
                continue;
            }
            let now = Utc::now();
            let claim = Claim {
                token: token.clone(),
                now,
                until: now + self.config.claim_duration,
            };
            // What is owed is decided on the entry as the claim found it: an
            // entry read before another invocation delivered part of it
            // would send those destinations a repeat.
            let p = match self.store.claim(&arn, &id, &claim).await {
                Ok(Some(claimed)) => {
                    match claimed.outbox.into_iter().find(|q| q.transition.id == id) {
                        Some(entry) => entry,
                        None => continue,
                    }
                }
                Ok(None) => {
                    // Held by someone else, or delivered meanwhile: look again.
                    match self.store.get(&arn).await {
                        Ok(Some(fresh)) => {
                            let held = fresh
                                .outbox
                                .iter()
                                .any(|q| q.transition.id == id && q.held_by_other(&token, now));
                            if held {
                                info!(job_arn = %arn, transition_id = %id, "notification held by another invocation; it delivers the rest");
                                return fresh;
                            }
                            handled.remove(&id);
                            current = fresh;
                            continue;
                        }
                        Ok(None) => return current,
                        Err(e) => {
                            out.fail(e);
                            return current;
                        }
                    }
                }
                Err(e) => {
                    out.fail(e);
                    return current;
                }
            };
            let (wanted, now_to) = self.owed(&p, &blocked, &routes);
            let settlement = self
                .deliver_one(&arn, &p, (&now_to, &wanted), &routes, inv, out)
                .await;
            let unfinished: Vec<String> = wanted
                .iter()
                .filter(|d| {
                    !settlement.accepted.contains(d)
                        && !settlement.set_aside.iter().any(|a| &a.destination == *d)
                })
                .cloned()
                .collect();
            match self.store.settle(&arn, &id, &token, &settlement).await {
                Ok(Some(after)) => current = after,
                Ok(None) => {
                    // Our claim ran out and someone else took it: it may
                    // publish this one again (same transitionId).
                    warn!(job_arn = %arn, transition_id = %id, write = "settling the delivery", "write not made: the claim ran out first; its next holder may publish it again, with the same transitionId");
                    return current;
                }
                Err(e) => {
                    // Published but still pending: a later run repeats it, same id.
                    out.fail(e);
                    return current;
                }
            }
            blocked.extend(unfinished);
        }
        current
    }

    /// The destinations `p` still goes to, and those of them it may go to
    /// now (none that waits for an earlier notification of the job).
    fn owed(
        &self,
        p: &Pending,
        blocked: &HashSet<String>,
        routes: &crate::routes::Table,
    ) -> (Vec<String>, Vec<String>) {
        let wanted: Vec<String> = self
            .notifier
            .destinations(&p.transition, routes)
            .into_iter()
            .filter(|d| !p.delivery(d).done)
            .collect();
        let now_to = wanted
            .iter()
            .filter(|d| !blocked.contains(*d))
            .cloned()
            .collect();
        (wanted, now_to)
    }

    /// Publishes `p` to each destination of `now_to`, and says what came of
    /// it; `wanted` is every destination it still needs (those waiting for an
    /// earlier message included), so the settlement knows when it is finished.
    async fn deliver_one(
        &self,
        arn: &JobArn,
        p: &Pending,
        (now_to, wanted): (&[String], &[String]),
        routes: &crate::routes::Table,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> Settlement {
        let id = &p.transition.id;
        let mut s = Settlement::default();
        for destination in now_to {
            let state = p.delivery(destination);
            let set_aside = |error: &str, attempts: u32| SetAside {
                transition_id: id.clone(),
                status: p.transition.job.status.clone(),
                previous_status: p.transition.previous.clone(),
                destination: destination.clone(),
                error: error.to_owned(),
                attempts,
                set_aside_at: Utc::now(),
            };
            let published = self
                .notifier
                .publish(destination, &p.transition, routes)
                .await;
            if destination != TOPIC {
                inv.tally(
                    destination,
                    published.as_ref().map(|_| ()).map_err(|e| e.message()),
                );
            }
            match published {
                Ok(()) => {
                    if destination == TOPIC {
                        out.notified += 1;
                    }
                    info!(job_arn = %arn, transition_id = %id, destination = %destination, status = %p.transition.job.status, "notification published");
                    s.accepted.push(destination.clone());
                }
                Err(e) if e.is_permanent() => {
                    let attempts = state.attempts + 1;
                    if attempts < self.config.publish_max_attempts {
                        s.refused
                            .push((destination.clone(), e.message().to_owned()));
                        out.fail_delivery(destination, e);
                    } else {
                        error!(job_arn = %arn, transition_id = %id, destination = %destination, attempts, error_kind = e.kind(), sns_error = e.message(), "the destination keeps refusing this notification; set aside as undeliverable there");
                        out.undeliverable += 1;
                        s.set_aside.push(set_aside(e.message(), attempts));
                    }
                }
                Err(e) => {
                    let waited = Utc::now() - p.transition.observed_at;
                    if destination != TOPIC
                        && waited
                            .to_std()
                            .is_ok_and(|w| w >= DESTINATION_GIVE_UP_AFTER)
                    {
                        error!(job_arn = %arn, transition_id = %id, destination = %destination, error_kind = e.kind(), sns_error = e.message(), "the destination has failed this notification for too long; set aside as undeliverable there");
                        out.undeliverable += 1;
                        s.set_aside.push(set_aside(e.message(), state.attempts));
                    } else {
                        s.failed.push((destination.clone(), e.message().to_owned()));
                    }
                    out.fail_delivery(destination, e);
                }
            }
        }
        s.finished = wanted
            .iter()
            .all(|d| s.accepted.contains(d) || s.set_aside.iter().any(|a| &a.destination == d));
        let routed: Vec<String> = s.accepted.iter().filter(|d| *d != TOPIC).cloned().collect();
        if !routed.is_empty() {
            s.routed = Some(crate::domain::Routed {
                transition_id: id.clone(),
                status: p.transition.job.status.clone(),
                event: p.transition.kind,
                routes: routed,
                at: Utc::now(),
            });
        }
        s
    }
}

/// How long a destination other than the job topic may keep failing a
/// notification (unreachable, throttled, its topic gone) before it is set
/// aside there: the longest a failing Slack topic keeps a finished job in
/// the work list. The job topic's failures fail the invocation instead, and
/// its notifications wait for it however long it takes.
pub const DESTINATION_GIVE_UP_AFTER: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// Bedrock reports a processed count for a running job.
fn counts_running(s: &JobSnapshot) -> bool {
    s.status == JobStatus::InProgress && s.records.and_then(|r| r.processed).is_some()
}
