//! Bedrock's native state-change event: reconcile that one job now.

use std::collections::BTreeMap;

use tracing::{info, warn};

use super::summary::{Failure, Outcome, Summary, Tally};
use super::{Budget, Invocation, Monitor, MonitorError};
use crate::domain::{JobArn, JobRef, StoredJob, Tracking};
use crate::event::StateChange;
use crate::ports::{JobSource, Jobs, Notifier, Outbox, RouteStore};

/// What `WATCH` says of a job about to be tracked (the domain's decision).
pub(super) type Admission = crate::domain::Admission<crate::ports::SourceError>;

impl<S: JobSource, T: Jobs + Outbox + RouteStore, N: Notifier> Monitor<S, T, N> {
    /// Reads the job back from Bedrock (the event is only a hint) and records
    /// what changed. A job not tracked yet starts being tracked; one Bedrock had
    /// lost is tracked again; one someone untracked is left alone.
    pub async fn reconcile(
        &self,
        change: StateChange,
        inv: &Invocation,
    ) -> Result<Summary, MonitorError> {
        let arn = change.job_arn;
        info!(job_arn = %arn, hinted_status = ?change.status, event_time = ?change.time, "state-change event");
        let budget = Budget::new(inv.deadline, self.config.deadline_margin);
        let mut out = Outcome::default();
        // An event forwarded from an account this monitor does not read (the
        // hub's bus admits the organization; MEMBER_ACCOUNTS says which it
        // reads): ignored, counted, and nothing read or written.
        if let Err(not_member) = self.member_check(arn.account()) {
            warn!(job_arn = %arn, account = arn.account(), error = %not_member, "Bedrock event from an account this monitor does not read; ignored");
            out.ignored = true;
            let mut tally = Tally::new(inv);
            tally.add(arn.as_str(), out);
            return tally.finish();
        }
        let done = budget.within(self.reconcile_job(&arn, inv, &mut out)).await;
        if !done {
            out.deferred = true;
        }
        let undecided = out.failures.iter().find_map(|f| match f {
            Failure::TagsUnavailable(_) => Some(f.to_string()),
            _ => None,
        });
        let mut tally = Tally::new(inv);
        tally.add(arn.as_str(), out);
        let summary = tally.finish()?;
        match undecided {
            // Lambda retries a failed asynchronous invocation: the job is
            // judged again once its tags can be read.
            Some(error) => Err(MonitorError::TagsUnavailable {
                error,
                summary: serde_json::to_value(&summary).unwrap_or_default(),
            }),
            None => Ok(summary),
        }
    }

    async fn reconcile_job(&self, arn: &JobArn, inv: &Invocation, out: &mut Outcome) {
        // A job someone tracks meanwhile (or that another event adopts) is a
        // lost race: read it again, at most twice.
        for _ in 0..3 {
            let stored = match self.store.get(arn).await {
                Ok(stored) => stored,
                Err(e) => return out.fail(e),
            };
            match stored.as_ref().map(|j| j.tracking()) {
                Some(Tracking::Untracked) => {
                    info!(job_arn = %arn, "the job was untracked; ignoring Bedrock's event");
                    out.ignored = true;
                    return;
                }
                Some(Tracking::Active | Tracking::Finished) => {
                    if let Some(job) = stored {
                        self.refresh_as_told(job, inv, out).await;
                    }
                    return;
                }
                // Gone: Bedrock knows the job again. New: start tracking it.
                Some(Tracking::Gone) | None => {}
            }
            let snapshot = match self.bedrock(inv).get_job(&JobRef::Arn(arn.clone())).await {
                Ok(s) => s,
                Err(e) => return out.fail(e),
            };
            out.polled = true;
            // A job Bedrock had lost was watched when it was tracked; a new
            // one must be watched (WATCH) to be tracked from its events.
            let labels = match &stored {
                Some(job) => job.labels.clone(),
                None => match self
                    .admit(arn, snapshot.job_name.as_deref(), true, inv)
                    .await
                {
                    Admission::Watched(labels) => labels,
                    Admission::Unlabelled(e) => {
                        out.fail(Failure::LabelsUnavailable(e));
                        BTreeMap::new()
                    }
                    Admission::NotWatched => {
                        info!(job_arn = %arn, job_name = ?snapshot.job_name, "not a job this monitor watches (WATCH); ignoring Bedrock's event");
                        out.ignored = true;
                        return;
                    }
                    Admission::Undecided(e) => return out.fail(Failure::TagsUnavailable(e)),
                },
            };
            match self
                .start_tracking(snapshot, stored, labels, inv, out)
                .await
            {
                super::job::Started::Raced => continue,
                _ => return,
            }
        }
        out.fail(crate::ports::StoreError::other(
            "the job's item kept changing while this event was handled",
        ));
    }

    /// Refreshes a tracked job with one Get. The event is news: when another
    /// invocation writes the item while this one records the answer (a poll
    /// recording an older step, a progress note), the item is read again and
    /// the same answer recorded on it at once, rather than left for the next
    /// poll. The answer is judged again each time, so it never overwrites
    /// anything newer.
    async fn refresh_as_told(&self, job: StoredJob, inv: &Invocation, out: &mut Outcome) {
        if !job.needs_polling() {
            return self.refresh(job, inv, out).await;
        }
        let arn = job.arn().clone();
        let read = self.bedrock(inv).get_job(&JobRef::Arn(arn.clone())).await;
        let mut job = job;
        for attempt in 0..4 {
            let refreshed = self.refresh_with(job, read.clone(), inv, out).await;
            if refreshed == super::job::Refreshed::Done || attempt == 3 {
                return;
            }
            info!(job_arn = %arn, "the item changed while the event's answer was recorded; recording it on the item as it is now");
            job = match self.store.get(&arn).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(e) => return out.fail(e),
            };
        }
    }

    /// Whether a job about to be tracked is one this monitor watches
    /// (`WATCH`), and its labels from its tags (`LABEL_TAGS`): the tags are
    /// read once, and only when one of the two needs them.
    pub(super) async fn admit(
        &self,
        arn: &JobArn,
        job_name: Option<&str>,
        want_labels: bool,
        inv: &Invocation,
    ) -> Admission {
        let watch = &self.config.watch;
        let want_labels = want_labels && !self.config.label_tags.is_empty();
        let tags = if watch.needs_tags(job_name, want_labels) {
            let read = self.bedrock(inv).tags(arn).await;
            if let Err(e) = &read {
                // Neither WATCH nor the labels are guessed without the tags:
                // the job is not tracked now, and whoever asked decides again
                // (Lambda's retry of an event, the next discovery, the next track).
                warn!(job_arn = %arn, error_kind = e.kind(), error = %e, "could not read the job's tags; not tracked on a guess");
            }
            Some(read)
        } else {
            None
        };
        match watch.admission(job_name, tags, |tags| self.labels_of(tags)) {
            // Only the labels hang on the tags, and Bedrock refused them for a
            // reason a retry does not mend: the job is not left untracked for
            // an optional label (the failure is reported, LabelsUnavailable).
            Admission::Undecided(e) if watch.by_name(job_name) && !e.is_outage() => {
                Admission::Unlabelled(e)
            }
            other => other,
        }
    }

    /// The tags `LABEL_TAGS` names, as labels (at most [`crate::labels::MAX_LABELS`]).
    pub(super) fn labels_of(&self, tags: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        tags.iter()
            .filter(|(k, v)| {
                self.config.label_tags.contains(k) && crate::labels::validate(k, v).is_ok()
            })
            .take(crate::labels::MAX_LABELS)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
