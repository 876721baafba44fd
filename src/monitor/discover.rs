//! Discovery (`DISCOVERY`): each poll lists the jobs submitted since a stored
//! watermark in every region it watches, and tracks the ones it wants.
//!
//! The first discovery in a region takes the backlog: every job not yet
//! finished is tracked quietly (no notification each, one log line with the
//! count). Afterwards a job found is tracked like a `track`, its first
//! observation notified, also when it finished between two polls.
//!
//! The watermark of a region moves only after every job its listing found is
//! tracked, and only from the value this invocation read (a conditional
//! write), so restarts and overlapping invocations never skip a job. The
//! listing starts [`OVERLAP`] before the watermark against clock skew between
//! Bedrock's submit times and ours; a job found twice is tracked once (its
//! item is created on the condition that none exists).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use chrono::Utc;
use futures::StreamExt;
use tracing::{error, info};

use super::summary::{Failure, Outcome};
use super::{Budget, Invocation, Monitor};
use crate::config::Discovery;
use crate::domain::JobSnapshot;
use crate::ports::{JobSource, Jobs, Notifier, Outbox, StoreError, WorkList, Write};

/// How far before the watermark each listing starts.
pub const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// How one job found by a listing went.
enum Found {
    /// Tracked already (or untracked on purpose): nothing to do.
    Known,
    /// Started tracking it.
    Tracked,
    /// Not tracked: the watermark must not move past it.
    Failed,
}

impl<S: JobSource, T: Jobs + Outbox + WorkList, N: Notifier> Monitor<S, T, N> {
    /// Discovers new jobs in every watched region, within the budget: each
    /// job's outcome, and each region's failure (keyed `discovery/<region>`).
    pub(super) async fn discover(
        &self,
        inv: &Invocation,
        budget: &Budget,
    ) -> Vec<(String, Outcome)> {
        if !self.config.discovery.is_on() {
            return Vec::new();
        }
        let mut regions = vec![self.home_region.clone()];
        for r in &self.config.discovery_regions {
            if !regions.contains(r) {
                regions.push(r.clone());
            }
        }
        let results = Mutex::new(Vec::<(String, Outcome)>::new());
        for region in &regions {
            if budget.past_start() {
                info!(
                    region,
                    "deadline near: discovery stops here; the next poll goes on"
                );
                break;
            }
            let done = budget
                .within(self.discover_region(region, inv, &results))
                .await;
            if !done {
                info!(
                    region,
                    "discovery abandoned at the deadline; the watermark did not move"
                );
            }
        }
        results.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    async fn discover_region(
        &self,
        region: &str,
        inv: &Invocation,
        results: &Mutex<Vec<(String, Outcome)>>,
    ) {
        let key = format!("discovery/{region}");
        let push = |k: String, o: Outcome| {
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((k, o))
        };
        let fail = |e: Failure, called_bedrock: bool| {
            let mut o = Outcome {
                called_bedrock,
                ..Outcome::default()
            };
            o.failures.push(e);
            push(key.clone(), o);
        };
        let previous = match self.store.load_watermark(region).await {
            Ok(w) => w,
            Err(e) => return fail(e.into(), false),
        };
        let started = Utc::now();
        let name = match &self.config.discovery {
            Discovery::NameContains(text) => Some(text.as_str()),
            _ => None,
        };
        let listed = match self
            .source
            .list_jobs(region, previous.map(|w| w - OVERLAP), name, None)
            .await
        {
            Ok(listing) => {
                inv.calls.list.fetch_add(listing.pages, Ordering::Relaxed);
                listing.jobs
            }
            Err(e) => {
                inv.calls.list.fetch_add(1, Ordering::Relaxed);
                return fail(e.into(), true);
            }
        };
        let backlog = previous.is_none();
        // The filter is applied here too, whatever the service did with it.
        let wanted: Vec<JobSnapshot> = listed
            .into_iter()
            .filter(|j| {
                self.config
                    .discovery
                    .wants(j.job_name.as_deref().unwrap_or_default())
            })
            .filter(|j| j.job_arn.region() == region)
            .filter(|j| !(backlog && j.status.is_terminal()))
            .collect();
        let found = wanted.len();
        let adopted = futures::stream::iter(wanted)
            .map(|snapshot| async move {
                let arn = snapshot.job_arn.to_string();
                let mut out = Outcome::default();
                let found = self.adopt_one(snapshot, backlog, inv, &mut out).await;
                (arn, out, found)
            })
            .buffer_unordered(self.config.max_concurrency);
        let mut adopted = std::pin::pin!(adopted);
        let (mut tracked, mut failed) = (0usize, 0usize);
        while let Some((arn, out, found)) = adopted.next().await {
            match found {
                Found::Tracked => tracked += 1,
                Found::Failed => failed += 1,
                Found::Known => {}
            }
            push(arn, out);
        }
        if backlog {
            info!(
                region,
                found,
                tracked,
                failed,
                "discovery: first run in this region; jobs not yet finished tracked quietly (no notification each)"
            );
        } else if tracked > 0 {
            info!(
                region,
                found, tracked, failed, "discovery: new jobs tracked"
            );
        }
        if failed > 0 {
            error!(
                region,
                failed,
                "discovery: some jobs found could not be tracked; the watermark stays, so the next poll tries them again"
            );
            return;
        }
        match self.store.save_watermark(region, started, previous).await {
            Ok(Write::Done) => {}
            Ok(Write::Lost) => {
                info!(
                    region,
                    "discovery: another invocation moved the watermark first"
                )
            }
            Err(e) => fail(e.into(), false),
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
        let labels = self.labels_from_tags(&arn, inv).await;
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
            super::job::Started::Raced => Found::Known,
            super::job::Started::Failed => Found::Failed,
        }
    }
}
