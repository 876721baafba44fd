//! The user's commands: `track`, `untrack`, `describe`, `stop`. One bad item is that
//! item's error in the answer; only a systemic fault (the table or the topic
//! unreachable) fails the invocation.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};
use tracing::info;

use super::job::Started;
use super::reconcile::Admission;
use super::summary::{Failure, Outcome, Tally};
use super::{Budget, Invocation, Monitor, MonitorError};
use crate::domain::{JobArn, JobRef, StoredJob, Tracking};
use crate::event::{RejectedItem, StopRequest, TrackRequest};
use crate::ports::{
    JobSource, Jobs, Notifier, Outbox, RouteStore, SourceError, StoreError, Untrack, Write,
};
use crate::render::describe;

/// What `track` did with one item.
#[derive(Debug)]
enum TrackResult {
    /// Tracked from now on (new, or tracked again after untrack, loss or end).
    Tracked,
    /// Tracked already; `Some` with the labels it has now when the given ones changed them.
    Already(Option<BTreeMap<String, String>>),
    /// Not tracked; the outcome says why.
    Failed,
}

impl<S: JobSource, T: Jobs + Outbox + RouteStore, N: Notifier> Monitor<S, T, N> {
    pub(super) async fn track(
        &self,
        items: Vec<Result<TrackRequest, RejectedItem>>,
        inv: &Invocation,
    ) -> Result<Value, MonitorError> {
        let budget = Budget::new(inv.deadline, self.config.deadline_margin);
        let mut tally = Tally::for_command();
        let (mut tracked, mut already, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        let mut seen = HashSet::new();
        let requests = items.into_iter().filter_map(|item| match item {
            // The same reference twice is one request.
            Ok(req) => seen
                .insert(req.reference.trim().to_owned())
                .then_some(Ok(req)),
            Err(rejected) => Some(Err(rejected)),
        });
        let mut results = futures::stream::iter(requests)
            .map(|item| {
                let budget = &budget;
                async move {
                    let req = match item {
                        Ok(req) => req,
                        Err(rejected) => {
                            let key = rejected.item.clone();
                            let mut out = Outcome::default();
                            out.fail(rejected);
                            return (key, TrackResult::Failed, out);
                        }
                    };
                    let mut out = Outcome::default();
                    let mut result = (req.reference.trim().to_owned(), TrackResult::Failed);
                    let done = budget
                        .within(async {
                            result = self.track_one(&req, inv, &mut out).await;
                        })
                        .await;
                    if !done {
                        out.deferred = true;
                        out.fail(Failure::Deadline);
                    }
                    (result.0, result.1, out)
                }
            })
            .buffer_unordered(self.config.max_concurrency);
        while let Some((key, result, outcome)) = results.next().await {
            match result {
                TrackResult::Tracked => tracked.push(key.clone()),
                TrackResult::Already(None) => already.push(key.clone()),
                TrackResult::Already(Some(labels)) => {
                    already.push(key.clone());
                    merged.push(json!({"jobArn": key, "labels": labels}));
                }
                TrackResult::Failed => {}
            }
            tally.add(&key, outcome);
        }
        drop(results);
        let notified = tally.summary.notified;
        let summary = tally.finish()?;
        Ok(json!({
            "tracked": tracked,
            "alreadyTracked": already,
            "labelsMerged": merged,
            "notified": notified,
            "failed": summary.failed,
            "errors": summary.errors,
        }))
    }

    /// Tracks one job: Bedrock must know it. Returns the job's ARN (or the
    /// reference as given, when there is none) and what was done.
    ///
    /// What the item was when the request arrived decides: a job tracked then
    /// is `alreadyTracked` (its labels merged), whatever happens while Bedrock
    /// answers; only a job that had ended, been untracked or been lost before
    /// the request is tracked again. And like every writer, `track` records
    /// only an answer that is not older than what the item holds when it
    /// writes ([`Fresh`](crate::domain::Fresh)).
    async fn track_one(
        &self,
        req: &TrackRequest,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> (String, TrackResult) {
        let given = req.reference.trim().to_owned();
        let reference = match JobRef::parse(&given, &self.home_region) {
            Ok(r) => r,
            Err(e) => {
                out.fail(e);
                return (given, TrackResult::Failed);
            }
        };
        // Another account's job is read with its role only if it is a member.
        if let Some(account) = reference.account()
            && let Err(not_member) = self.member_check(account)
        {
            out.fail(not_member);
            return (given, TrackResult::Failed);
        }
        // The item as the request found it (a bare id has no ARN to look up
        // before Bedrock answers: then the first read after the answer).
        let mut on_arrival = match &reference {
            JobRef::Arn(arn) => match self.store.get(arn).await {
                Ok(stored) => Some(stored),
                Err(e) => {
                    out.fail(e);
                    return (given, TrackResult::Failed);
                }
            },
            JobRef::Id { .. } => None,
        };
        let mut snapshot = match self.bedrock(inv).get_job(&reference).await {
            Ok(s) => s,
            Err(SourceError::NotFound { message, cause }) => {
                out.fail(SourceError::NotFound {
                    message: format!("no such job in {}: {message}", reference.region()),
                    cause,
                });
                return (given, TrackResult::Failed);
            }
            Err(e) => {
                out.fail(e);
                return (given, TrackResult::Failed);
            }
        };
        out.polled = true;
        let arn = snapshot.job_arn.clone();
        let key = arn.to_string();
        if let JobRef::Arn(asked) = &reference
            && *asked != arn
        {
            out.fail(SourceError::other(format!(
                "asked for {asked} and got {arn}"
            )));
            return (given, TrackResult::Failed);
        }
        // A lost race (another invocation wrote the item meanwhile) is read
        // again; a few in a row means the item is contended: say so.
        for _ in 0..3 {
            let stored = match self.store.get(&arn).await {
                Ok(s) => s,
                Err(e) => {
                    out.fail(e);
                    return (key, TrackResult::Failed);
                }
            };
            let arrived = on_arrival.get_or_insert_with(|| stored.clone());
            let tracked_on_arrival =
                arrived.as_ref().map(StoredJob::tracking) == Some(Tracking::Active);
            let arrived_version = arrived.as_ref().map(|j| j.version);
            let current = stored
                .as_ref()
                .map(|j| j.labels.clone())
                .unwrap_or_default();
            let labels = match crate::labels::merge(&current, &req.labels) {
                Ok(l) => l,
                Err(e) => {
                    out.fail(e);
                    return (key, TrackResult::Failed);
                }
            };
            // Tracked now, or ended since it was tracked: by this request's
            // arrival, or by another request meanwhile (the item changed).
            let still_tracked = stored.as_ref().is_some_and(|j| match j.tracking() {
                Tracking::Active => true,
                Tracking::Finished => tracked_on_arrival || arrived_version != Some(j.version),
                Tracking::Untracked | Tracking::Gone => false,
            });
            match stored {
                Some(job) if still_tracked => {
                    // A re-track that gives no labels reads the tags again, so
                    // a job whose tags changed (or could not be read before)
                    // gets the labels they say now.
                    let labels = if req.labels.is_empty() && !self.config.label_tags.is_empty() {
                        match self.bedrock(inv).tags(&arn).await {
                            Ok(tags) => match crate::labels::merge(&labels, &self.labels_of(&tags))
                            {
                                Ok(now) => now,
                                Err(e) => {
                                    out.fail(e);
                                    return (key, TrackResult::Already(None));
                                }
                            },
                            Err(e) => {
                                out.fail(Failure::TagsUnavailable(e));
                                return (key, TrackResult::Already(None));
                            }
                        }
                    } else {
                        labels
                    };
                    if labels == job.labels {
                        return (key, TrackResult::Already(None));
                    }
                    match self.store.set_labels(&arn, &labels, job.version).await {
                        Ok(Write::Done) => {
                            info!(job_arn = %arn, ?labels, "labels merged; they apply from the next notification");
                            return (key, TrackResult::Already(Some(labels)));
                        }
                        Ok(Write::Lost) => continue,
                        Err(e) => {
                            out.fail(e);
                            return (key, TrackResult::Failed);
                        }
                    }
                }
                stored => {
                    // Tracking starts only for a job this monitor watches, with
                    // labels from its tags unless the request gives some (a
                    // re-track reads them again, over the labels it had).
                    let want_labels = req.labels.is_empty();
                    let labels = match self
                        .admit(&arn, snapshot.job_name.as_deref(), want_labels, inv)
                        .await
                    {
                        Admission::Watched(from_tags) if want_labels => {
                            match crate::labels::merge(&labels, &from_tags) {
                                Ok(merged) => merged,
                                Err(e) => {
                                    out.fail(e);
                                    return (key, TrackResult::Failed);
                                }
                            }
                        }
                        Admission::Watched(_) => labels,
                        Admission::Unlabelled(e) => {
                            out.fail(Failure::LabelsUnavailable(e));
                            labels
                        }
                        Admission::NotWatched => {
                            out.fail(Failure::NotWatched {
                                job_name: snapshot.job_name.clone().unwrap_or_else(|| key.clone()),
                                watch: self.config.watch.text(),
                            });
                            return (key, TrackResult::Failed);
                        }
                        Admission::Undecided(e) => {
                            out.fail(Failure::TagsUnavailable(e));
                            return (key, TrackResult::Failed);
                        }
                    };
                    match self
                        .start_tracking(snapshot.clone(), stored, labels, inv, out)
                        .await
                    {
                        Started::Tracked => return (key, TrackResult::Tracked),
                        Started::Failed => return (key, TrackResult::Failed),
                        Started::Raced => continue,
                        Started::Stale => {
                            // The item holds news newer than Bedrock's answer
                            // (written while it was on its way): ask Bedrock
                            // again and judge that.
                            snapshot =
                                match self.bedrock(inv).get_job(&JobRef::Arn(arn.clone())).await {
                                    Ok(s) => s,
                                    Err(e) => {
                                        out.fail(e);
                                        return (key, TrackResult::Failed);
                                    }
                                };
                        }
                    }
                }
            }
        }
        out.fail(StoreError::other(
            "the job's item kept changing while it was being tracked; track it again",
        ));
        (key, TrackResult::Failed)
    }

    pub(super) async fn untrack(
        &self,
        items: Vec<Result<String, RejectedItem>>,
    ) -> Result<Value, MonitorError> {
        let mut untracked = Vec::new();
        let mut not_tracked = Vec::new();
        let mut tally = Tally::for_command();
        let now = Utc::now();
        let expires = now + self.config.retention;
        let mut seen = HashSet::new();
        for item in items {
            let reference = match item {
                Ok(r) => r,
                Err(rejected) => {
                    let key = rejected.item.clone();
                    let mut out = Outcome::default();
                    out.fail(rejected);
                    tally.add(&key, out);
                    continue;
                }
            };
            let arn: JobArn = match reference.parse() {
                Ok(a) => a,
                Err(e) => {
                    let mut out = Outcome::default();
                    out.fail(e);
                    tally.add(reference.trim(), out);
                    continue;
                }
            };
            if !seen.insert(arn.clone()) {
                continue;
            }
            let mut out = Outcome::default();
            match self.store.untrack(&arn, now, expires).await {
                Ok(Untrack::Untracked) => {
                    info!(job_arn = %arn, "untracked on request; Bedrock's events leave it alone until it is tracked again");
                    untracked.push(arn.to_string());
                }
                Ok(Untrack::NotTracked) => not_tracked.push(arn.to_string()),
                Err(e) => out.fail(e),
            }
            tally.add(arn.as_str(), out);
        }
        let summary = tally.finish()?;
        Ok(json!({
            "untracked": untracked,
            "notTracked": not_tracked,
            "failed": summary.failed,
            "errors": summary.errors,
        }))
    }

    pub(super) async fn describe(&self, reference: &str) -> Result<Value, MonitorError> {
        let arn: JobArn = match reference.parse() {
            Ok(a) => a,
            Err(e) => {
                let f = Failure::from(e);
                return Ok(describe::error(reference.trim(), f.kind(), &f.to_string()));
            }
        };
        match self.store.get(&arn).await {
            Ok(Some(job)) => Ok(describe::job(&job, Utc::now(), &self.config.prices)),
            Ok(None) => Ok(describe::not_tracked(&arn)),
            Err(e) if e.is_systemic() => Err(e.into()),
            Err(e) => {
                let f = Failure::from(e);
                tracing::warn!(job_arn = %arn, error_kind = f.kind(), error = %f, "describe failed");
                Ok(describe::error(arn.as_str(), f.kind(), &f.to_string()))
            }
        }
    }

    /// Stops one job this monitor tracks (the Slack channel's Stop job
    /// button, through the `stop` alias): a job of an account it reads,
    /// tracked, and not ended as far as the table knows. Bedrock is asked with
    /// the job's account's credentials (a member's through its role, which
    /// may stop only with that account's `SlackActions` on). Nothing is
    /// recorded here: Bedrock's `Stopping` and `Stopped` arrive as the job's
    /// usual notifications. Every refusal is an answer naming its `kind`;
    /// only the table being unreachable fails the invocation.
    pub(super) async fn stop(
        &self,
        req: &StopRequest,
        inv: &Invocation,
    ) -> Result<Value, MonitorError> {
        let refused = |job: &str, kind: &str, error: String| {
            tracing::warn!(job_arn = job, error_kind = kind, error = %error, "stop refused");
            Ok(json!({"jobArn": job, "stopped": false, "kind": kind, "error": error}))
        };
        let arn: JobArn = match req.reference.trim().parse() {
            Ok(a) => a,
            Err(e) => {
                let f = Failure::from(e);
                return refused(req.reference.trim(), f.kind(), f.to_string());
            }
        };
        if let Err(f) = self.member_check(arn.account()) {
            return refused(arn.as_str(), f.kind(), f.to_string());
        }
        let job = match self.store.get(&arn).await {
            Ok(Some(job)) if job.untracked_at.is_none() && !job.gone => job,
            Ok(_) => {
                return refused(
                    arn.as_str(),
                    "NotTracked",
                    "this monitor does not track the job, and stops only the jobs it tracks: track it first, or stop it with the AWS CLI".to_owned(),
                );
            }
            Err(e) if e.is_systemic() => return Err(e.into()),
            Err(e) => {
                let f = Failure::from(e);
                return refused(arn.as_str(), f.kind(), f.to_string());
            }
        };
        let status = &job.snapshot.status;
        if status.is_terminal() || *status == crate::domain::JobStatus::Stopping {
            return refused(
                arn.as_str(),
                "NotStoppable",
                format!("the job is {status} already: there is nothing to stop"),
            );
        }
        match self.bedrock(inv).stop_job(&arn).await {
            Ok(()) => {
                info!(job_arn = %arn, "stop requested; Bedrock's Stopping and Stopped follow as notifications");
                Ok(json!({
                    "jobArn": arn.as_str(),
                    "stopped": true,
                    "message": format!(
                        "Bedrock is stopping {} ({status} until now, account {}, {}); its Stopping and Stopped come as notifications. Records already processed are billed, and their results are in the output location.",
                        job.snapshot.job_name.as_deref().unwrap_or(arn.job_id()),
                        arn.account(),
                        arn.region(),
                    ),
                }))
            }
            Err(e) => {
                let hint = match &e {
                    SourceError::AccessDenied { .. }
                        if arn.account() != self.config.home_account() =>
                    {
                        " (a member account's role may stop jobs only where that account's member stack has SlackActions=true)"
                    }
                    SourceError::AccessDenied { .. } => {
                        " (the function may stop jobs only where its stack has Slack set and SlackActions=true)"
                    }
                    _ => "",
                };
                let f = Failure::from(e);
                refused(arn.as_str(), f.kind(), format!("{f}{hint}"))
            }
        }
    }
}
