//! Discovery (`DISCOVERY`): each poll lists the jobs submitted since a stored
//! watermark in every region it watches, and tracks the ones it wants.
//!
//! A first discovery in a region, or one after a gap (a watermark older than
//! [`GAP`]), takes a quiet backlog: every job not yet finished is tracked
//! quietly (no notification each, one log line with the count), and a job
//! that ended after the backlog began (its time is kept with the watermark)
//! is tracked and notified, so a job that ends while a long backlog is taken
//! in over several polls is not missed. Otherwise a job found is tracked
//! like a `track`, its first observation notified, also when it finished
//! between two polls.
//!
//! Regions are listed concurrently, each within the poll's listing share of
//! the time: one slow or unreachable region is that region's error and
//! delays no other. The watermark of a region moves only after its whole
//! listing was read and every job it found is tracked, and only from the
//! value this invocation read (a conditional write), so restarts and
//! overlapping invocations never skip a job. The listing starts [`OVERLAP`]
//! before the watermark against clock skew between Bedrock's submit times
//! and ours; a job found twice is tracked once (its item is created on the
//! condition that none exists).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::{error, info};

use super::summary::{Failure, Outcome};
use super::{Budget, Invocation, Monitor};
use crate::config::Discovery;
use crate::domain::{JobArn, JobRef, JobSnapshot};
use crate::ports::{
    JobSource, Jobs, Judged, ListQuery, Notifier, Outbox, RouteStore, SourceError, StoreError,
    WorkList, Write,
};

/// One account in one region, as discovery lists it.
struct Scope<'a> {
    account: &'a str,
    region: &'a str,
    /// The monitor's own account (its keys stay as before member accounts).
    home: bool,
}

impl Scope<'_> {
    /// The key of its errors in the summary: `discovery/<region>` for the
    /// monitor's own account, `discovery/<account>/<region>` for a member's.
    fn error_key(&self) -> String {
        match self.home {
            true => format!("discovery/{}", self.region),
            false => format!("discovery/{}/{}", self.account, self.region),
        }
    }

    /// What the store keeps its watermark under: the region for the
    /// monitor's own account, `<account>#<region>` for a member's.
    fn watermark_key(&self) -> String {
        match self.home {
            true => self.region.to_owned(),
            false => format!("{}#{}", self.account, self.region),
        }
    }
}

/// How far before the watermark each listing starts.
pub const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// A watermark older than this means the monitor was not polling for a
/// while: the jobs found are taken in as a quiet backlog, not one
/// notification each.
pub const GAP: chrono::Duration = chrono::Duration::hours(6);

/// Verdicts kept with a watermark at most: past this, the oldest
/// not-watched ones are forgotten (their tags are read again: a cost, not a
/// loss), and with this many undecided jobs the watermark stays.
pub const JUDGED_MAX: usize = 2000;

/// How one job found by a listing went.
enum Found {
    /// Tracked already (or untracked on purpose): nothing to do.
    Known,
    /// Started tracking it.
    Tracked,
    /// `WATCH` says it is not this monitor's: remembered, so its tags are
    /// read once.
    NotWatched,
    /// Its tags could not be read: judged again next poll, while the
    /// watermark moves on.
    Undecided,
    /// Not tracked: the watermark must not move past it.
    Failed,
}

/// How a listing's jobs are taken in.
#[derive(Debug, Clone, Copy)]
enum Intake {
    /// One notification each, as a `track` would send.
    Notify,
    /// A backlog that began at the time given: jobs not yet finished are
    /// tracked quietly, jobs that ended after it are notified, the others left.
    Quiet(DateTime<Utc>),
}

impl<S: JobSource, T: Jobs + Outbox + WorkList + RouteStore, N: Notifier> Monitor<S, T, N> {
    /// Discovers new jobs in every watched region at once, within the
    /// listing share of the budget: each job's outcome, and each region's
    /// failure (keyed `discovery/<region>`).
    pub(super) async fn discover(
        &self,
        inv: &Invocation,
        budget: &Budget,
    ) -> Vec<(String, Outcome)> {
        if !self.config.discovery.is_on() || budget.past_start() {
            return Vec::new();
        }
        let mut regions = vec![self.home_region.clone()];
        for r in &self.config.discovery_regions {
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
        // Every account it reads, in every region: each pair its own listing,
        // watermark and errors, so one that cannot be read holds up no other.
        let scopes: Vec<Scope<'_>> = self
            .config
            .accounts()
            .into_iter()
            .flat_map(|account| {
                let home = account == self.config.home_account();
                regions.iter().map(move |region| Scope {
                    account,
                    region,
                    home,
                })
            })
            .collect();
        let until = budget.listing_share();
        let results = Mutex::new(Vec::<(String, Outcome)>::new());
        let each = scopes.iter().map(|scope| {
            let results = &results;
            async move {
                let done = budget
                    .within(self.discover_region(scope, until, inv, results))
                    .await;
                if !done {
                    info!(
                        account = scope.account,
                        region = scope.region,
                        "discovery abandoned at the deadline; the watermark did not move"
                    );
                }
            }
        });
        futures::future::join_all(each).await;
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    async fn discover_region(
        &self,
        scope: &Scope<'_>,
        until: Option<std::time::Instant>,
        inv: &Invocation,
        results: &Mutex<Vec<(String, Outcome)>>,
    ) {
        let region = scope.region;
        let account = scope.account;
        let key = scope.error_key();
        let watermark = scope.watermark_key();
        let watermark = watermark.as_str();
        let push = |k: String, o: Outcome| {
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((k, o))
        };
        let fail = |e: Failure| {
            let mut o = Outcome::default();
            o.failures.push(e);
            push(key.clone(), o);
        };
        let previous = match self.store.load_watermark(watermark).await {
            Ok(w) => w,
            Err(e) => return fail(e.into()),
        };
        let started = Utc::now();
        let intake = match previous.at {
            Some(at) if started - at <= GAP => Intake::Notify,
            _ => match previous.backlog_since {
                Some(since) => Intake::Quiet(since),
                None => match self
                    .store
                    .begin_backlog(watermark, started, &previous)
                    .await
                {
                    Ok(Write::Done) => Intake::Quiet(started),
                    Ok(Write::Lost) => {
                        info!(
                            account,
                            region,
                            "discovery: another invocation began this region's backlog; it goes on next poll"
                        );
                        return;
                    }
                    Err(e) => return fail(e.into()),
                },
            },
        };
        let query = ListQuery {
            account,
            region,
            submitted_after: previous.at.map(|w| w - OVERLAP),
            name_contains: match &self.config.discovery {
                Discovery::NameContains(text) => Some(text.as_str()),
                _ => None,
            },
            status: None,
        };
        let (listed, complete) = match self.bedrock(inv).list_all(&query, until).await {
            Ok(listed) => listed,
            Err(e) => return fail(e.into()),
        };
        // Jobs whose tags could not be read last time, judged again: from this
        // listing when it has them, else read one by one.
        let mut carried = BTreeMap::new();
        let mut again = Vec::new();
        for (arn, submitted) in &previous.judged.undecided {
            if listed.iter().any(|j| j.job_arn.as_str() == arn) {
                continue;
            }
            let Ok(job_arn) = arn.parse::<JobArn>() else {
                continue;
            };
            match self.bedrock(inv).get_job(&JobRef::Arn(job_arn)).await {
                Ok(snapshot) => again.push(snapshot),
                Err(SourceError::NotFound { .. }) => {}
                Err(e) => {
                    let mut o = Outcome::default();
                    o.fail(e);
                    push(arn.clone(), o);
                    carried.insert(arn.clone(), *submitted);
                }
            }
        }
        let not_watched = &previous.judged.not_watched;
        // The filter is applied here too, whatever the service did with it.
        let wanted: Vec<(JobSnapshot, bool)> = listed
            .into_iter()
            .chain(again)
            .filter(|j| !not_watched.contains_key(j.job_arn.as_str()))
            .filter(|j| {
                let name = j.job_name.as_deref();
                self.config.discovery.wants(name.unwrap_or_default())
                    // WATCH: on the name here; a tag term is decided per job.
                    && (self.config.watch.by_name(name) || self.config.watch.has_tag_terms())
            })
            .filter(|j| j.job_arn.region() == region && j.job_arn.account() == account)
            .filter_map(|j| match intake {
                Intake::Notify => Some((j, false)),
                Intake::Quiet(_) if !j.status.is_terminal() => Some((j, true)),
                Intake::Quiet(since) => {
                    let ended = j.end_time.or(j.last_modified_time);
                    ended.is_some_and(|t| t >= since).then_some((j, false))
                }
            })
            .collect();
        let found = wanted.len();
        let adopted = futures::stream::iter(wanted)
            .map(|(snapshot, quietly)| async move {
                let arn = snapshot.job_arn.to_string();
                let submitted = snapshot.submit_time.unwrap_or(started);
                let mut out = Outcome::default();
                let found = self.adopt_one(snapshot, quietly, inv, &mut out).await;
                (arn, submitted, out, found)
            })
            .buffer_unordered(self.config.max_concurrency);
        let mut adopted = std::pin::pin!(adopted);
        let (mut tracked, mut failed) = (0usize, 0usize);
        let mut judged = Judged {
            not_watched: previous.judged.not_watched.clone(),
            undecided: carried,
        };
        while let Some((arn, submitted, out, found)) = adopted.next().await {
            match found {
                Found::Tracked => tracked += 1,
                Found::Failed => failed += 1,
                Found::NotWatched => {
                    judged.not_watched.insert(arn.clone(), submitted);
                }
                Found::Undecided => {
                    judged.undecided.insert(arn.clone(), submitted);
                }
                Found::Known => {}
            }
            push(arn, out);
        }
        // A not-watched verdict is kept while the next listing (from the new
        // watermark less the overlap) can meet the job again.
        judged
            .not_watched
            .retain(|_, submitted| *submitted >= started - OVERLAP);
        let room = JUDGED_MAX.saturating_sub(judged.undecided.len());
        if judged.not_watched.len() > room {
            let mut by_age: Vec<_> = judged.not_watched.into_iter().collect();
            by_age.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
            by_age.truncate(room);
            judged.not_watched = by_age.into_iter().collect();
        }
        if judged.undecided.len() >= JUDGED_MAX {
            error!(
                account,
                region,
                undecided = judged.undecided.len(),
                "discovery: too many jobs whose tags cannot be read; the watermark stays until they can be"
            );
            return;
        }
        if !judged.undecided.is_empty() {
            error!(
                account,
                region,
                undecided = judged.undecided.len(),
                "discovery: some jobs' tags could not be read; they are judged again each poll, and the watermark moves on for the others"
            );
        }
        if let Intake::Quiet(since) = intake {
            info!(
                account,
                region,
                found,
                tracked,
                failed,
                complete,
                backlog_since = %since,
                "discovery: backlog (a first run, or one after a gap); jobs not yet finished tracked quietly, jobs that ended since the backlog began notified"
            );
        } else if tracked > 0 {
            info!(
                account,
                region, found, tracked, failed, "discovery: new jobs tracked"
            );
        }
        if failed > 0 {
            error!(
                account,
                region,
                failed,
                "discovery: some jobs found could not be tracked; the watermark stays, so the next poll tries them again"
            );
            return;
        }
        if !complete {
            info!(
                account,
                region,
                found,
                "discovery: the listing did not finish in its share of the time; the watermark stays and the next poll goes on"
            );
            return;
        }
        match self
            .store
            .save_watermark(watermark, started, previous.at, &judged)
            .await
        {
            Ok(Write::Done) => {}
            Ok(Write::Lost) => {
                info!(
                    account,
                    region, "discovery: another invocation moved the watermark first"
                )
            }
            Err(e) => fail(e.into()),
        }
    }

    /// Tracks one job a listing found, unless the table knows it already.
    async fn adopt_one(
        &self,
        snapshot: JobSnapshot,
        quietly: bool,
        inv: &Invocation,
        out: &mut Outcome,
    ) -> Found {
        let arn = snapshot.job_arn.clone();
        match self.store.get(&arn).await {
            Ok(Some(_)) => return Found::Known,
            Ok(None) => {}
            Err(StoreError::Unreadable(e)) => {
                // Something else sits under this key: leave it, and say so.
                out.fail(StoreError::Unreadable(e));
                return Found::Known;
            }
            Err(e) => {
                out.fail(e);
                return Found::Failed;
            }
        }
        let labels = match self
            .admit(&arn, snapshot.job_name.as_deref(), true, inv)
            .await
        {
            super::reconcile::Admission::Watched(labels) => labels,
            super::reconcile::Admission::Unlabelled(e) => {
                out.fail(Failure::LabelsUnavailable(e));
                std::collections::BTreeMap::new()
            }
            super::reconcile::Admission::NotWatched => return Found::NotWatched,
            super::reconcile::Admission::Undecided(e) => {
                out.fail(Failure::TagsUnavailable(e));
                return Found::Undecided;
            }
        };
        if quietly {
            let first = Self::first_observation(snapshot, 1, labels);
            return match self.store.adopt(&first).await {
                Ok(Write::Done) => {
                    out.discovered = true;
                    out.tracked = true;
                    Found::Tracked
                }
                Ok(Write::Lost) => Found::Known,
                Err(e) => {
                    out.fail(e);
                    Found::Failed
                }
            };
        }
        match self.start_tracking(snapshot, None, labels, inv, out).await {
            super::job::Started::Tracked => {
                out.discovered = true;
                info!(job_arn = %arn, "discovery: new job tracked");
                Found::Tracked
            }
            super::job::Started::Raced | super::job::Started::Stale => Found::Known,
            super::job::Started::Failed => Found::Failed,
        }
    }
}
