//! One poll cycle over the work list.
//!
//! The cycle lists its shards of the work index (lean items) until their end,
//! the cut, a fault, or the point where it wrapped around to where it began.
//! Then it works on the jobs, `MAX_CONCURRENCY` at a time, as they become
//! ready: a job whose region has fewer than `BULK_READ_MIN` active jobs (or
//! no stored submit time) at once, with a Get; the jobs of a larger region as
//! the pages of that region's ListModelInvocationJobs arrive, each with the
//! state the page gave. A region's listing stops at its cost bound (never
//! more requests than a Get each, see [`Monitor::bulk_read`]) or at its share
//! of the time, and the jobs it did not reach get Gets: regions are read
//! concurrently, so one slow listing never holds back another region's jobs.
//!
//! Every job's work is bounded by the invocation's budget: none starts near
//! the deadline, and what is still running at the cut is abandoned (every
//! write is conditional) and reported deferred. When a cycle does not reach
//! every job, it saves where the first job it did not reach sits in the
//! listing, and the next cycle starts there: jobs left out go first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::summary::{Outcome, Summary, Tally};
use super::{Budget, Invocation, Monitor, MonitorError};

use crate::domain::{JobArn, JobSnapshot, WorkEntry};
use crate::ports::{
    ItemError, JobSource, Jobs, ListPosition, ListQuery, Notifier, Outbox, RouteStore, StoreError,
    WorkList, WorkPage,
};

/// Tries of one page of the work listing before the cycle counts it as a
/// systemic fault (each try is itself the SDK's retried operation).
pub const LIST_ATTEMPTS: u32 = 5;
const LIST_FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LIST_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How far before the oldest active job's submit time a bulk read's listing
/// starts (both times are Bedrock's, so this only guards rounding).
pub const BULK_LIST_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// The listing order of the cycle over `shards` (sorted, non-empty) that
/// starts at `start`: its shard from `start.after`, the other shards from
/// their beginning, then (when the cycle started inside its shard) that shard
/// again from its beginning. A start outside `shards` starts at the first.
pub(crate) fn shard_order(start: &ListPosition, shards: &[u32]) -> Vec<ListPosition> {
    let Some(at) = shards.iter().position(|s| *s == start.shard) else {
        return shards
            .iter()
            .map(|&shard| ListPosition { shard, after: None })
            .collect();
    };
    let n = shards.len();
    let mut order = vec![ListPosition {
        shard: shards[at],
        after: start.after.clone(),
    }];
    order.extend((1..n).map(|i| ListPosition {
        shard: shards[(at + i) % n],
        after: None,
    }));
    if start.after.is_some() {
        order.push(ListPosition {
            shard: shards[at],
            after: None,
        });
    }
    order
}

/// The work list as this cycle read it.
#[derive(Default)]
struct Listed {
    /// (shard, key) of each distinct item, in listing order.
    order: Vec<(u32, String)>,
    /// The readable items, numbered by their place in `order`.
    jobs: Vec<(usize, WorkEntry)>,
    unreadable: Vec<ItemError>,
    /// Where the listing stopped before its end (the cut, or a fault).
    stopped: Option<ListPosition>,
    fault: Option<StoreError>,
}

impl Listed {
    /// The position just before the `i`th listed item.
    fn before(&self, i: usize, start: &ListPosition) -> ListPosition {
        let Some(prev) = i.checked_sub(1).map(|p| &self.order[p]) else {
            return start.clone();
        };
        let shard = self.order[i].0;
        ListPosition {
            shard,
            after: (prev.0 == shard).then(|| prev.1.clone()),
        }
    }
}

/// (account, region): what one listing covers.
type AccountRegion = (String, String);

/// One job ready to be worked on: its place in the listing, the job as
/// listed, and its state from a bulk read's page (a Get when `None`).
struct Ready {
    index: usize,
    entry: WorkEntry,
    listed: Option<JobSnapshot>,
}

impl<S: JobSource, T: Jobs + Outbox + WorkList + RouteStore, N: Notifier> Monitor<S, T, N> {
    /// One poll cycle over every job that still needs work, or over the work
    /// in `shards` only (several schedules can split the work list).
    pub async fn poll(
        &self,
        inv: &Invocation,
        shards: Option<Vec<u32>>,
    ) -> Result<Summary, MonitorError> {
        let started = Instant::now();
        let budget = Budget::new(inv.deadline, self.config.deadline_margin);
        let all: Vec<u32> = (0..self.store.shards().max(1)).collect();
        let shards: Vec<u32> = match shards {
            Some(subset) => subset.into_iter().filter(|s| all.contains(s)).collect(),
            None => all.clone(),
        };
        let shards = if shards.is_empty() { all } else { shards };
        let saved = match self.store.load_cursor(&shards).await {
            Ok(c) => c,
            Err(e) if e.is_systemic() => return Err(e.into()),
            Err(e) => {
                warn!(error_kind = e.kind(), error = %e, "could not read where the last cycle stopped; starting at the beginning");
                None
            }
        };
        // Jobs found since the last poll are tracked first, so this cycle polls
        // them too. With the work split between schedules, the one with shard 0
        // discovers.
        let discovered = if shards.contains(&0) {
            self.discover(inv, &budget).await
        } else {
            Vec::new()
        };
        let start = saved.clone().unwrap_or_default();
        // At debug: a quiet poll writes one line at the default level ("poll
        // cycle done", with the counts) besides its metrics document.
        debug!(
            remaining_ms = inv
                .deadline
                .map(|d| d.saturating_duration_since(started).as_millis() as u64),
            start_shard = start.shard,
            shards = ?shards,
            resuming = start.after.is_some(),
            "poll cycle starting"
        );

        let mut listed = self.list(&start, &shards, &budget).await;
        // Before the jobs are worked: a waiting job's warning says where its
        // model stands against the account's quota.
        let quota_reads = self
            .refresh_quotas(listed.jobs.iter().map(|(_, e)| e), inv, &budget)
            .await;
        let mut tally = Tally::for_poll(inv);
        for (key, outcome) in discovered {
            tally.add(&key, outcome);
        }
        for item in std::mem::take(&mut listed.unreadable) {
            tally.skip(item);
        }
        let (ready_tx, ready_rx) = mpsc::unbounded_channel::<Ready>();
        let feed = self.feed(std::mem::take(&mut listed.jobs), inv, &budget, ready_tx);
        let work = async {
            let ready = futures::stream::unfold(ready_rx, |mut rx| async move {
                rx.recv().await.map(|r| (r, rx))
            });
            let done = ready
                .map(
                    |Ready {
                         index,
                         entry,
                         listed,
                     }| {
                        let budget = &budget;
                        async move {
                            let arn = entry.job_arn.to_string();
                            if budget.past_start() {
                                let mut deferred = Outcome {
                                    deferred: true,
                                    ..Outcome::default()
                                };
                                deferred.note_pending(&entry.outbox);
                                return (index, arn, deferred);
                            }
                            (index, arn, self.run_job(entry, listed, inv, budget).await)
                        }
                    },
                )
                .buffer_unordered(self.config.max_concurrency);
            let mut done = std::pin::pin!(done);
            let mut first_unreached: Option<usize> = None;
            while let Some((index, arn, outcome)) = done.next().await {
                if outcome.deferred {
                    first_unreached = Some(first_unreached.map_or(index, |f| f.min(index)));
                }
                tally.add(&arn, outcome);
            }
            first_unreached
        };
        let ((), first_unreached) = futures::join!(feed, work);

        let cursor = match first_unreached {
            Some(i) => Some(listed.before(i, &start)),
            None => listed.stopped.clone(),
        };
        if cursor != saved {
            self.save_cursor(&shards, cursor.as_ref(), &budget).await;
        }
        if let Some(fault) = listed.fault {
            tally.list_fault = Some(fault);
        }
        let mut summary = tally.finish()?;
        summary.quotas = (quota_reads.pairs > 0).then_some(quota_reads);
        info!(
            polled = summary.polled,
            transitions = summary.transitions,
            notified = summary.notified,
            deferred = summary.deferred,
            failed = summary.failed,
            skipped = summary.skipped,
            undeliverable = summary.undeliverable,
            bedrock_requests = inv.calls.total(),
            duration_ms = started.elapsed().as_millis() as u64,
            "poll cycle done"
        );
        Ok(summary)
    }

    /// Hands the listed jobs to the workers as each becomes ready: first the
    /// ones that need no bulk read (a Get each, or no Bedrock call at all),
    /// then each large region's jobs as its pages arrive, all regions at once.
    async fn feed(
        &self,
        jobs: Vec<(usize, WorkEntry)>,
        inv: &Invocation,
        budget: &Budget,
        ready: mpsc::UnboundedSender<Ready>,
    ) {
        // Bulk reads list one account's jobs in one region (a listing shows
        // only the caller's account).
        let mut regions: BTreeMap<AccountRegion, Vec<(usize, WorkEntry)>> = BTreeMap::new();
        let mut now = Vec::new();
        for (index, entry) in jobs {
            // A job without a stored submit time would widen the listing to
            // the account's first job: it gets a Get.
            if entry.needs_polling()
                && entry.submit_time.is_some()
                && self.config.reads_account(entry.job_arn.account())
            {
                let at = entry.job_arn.account().to_owned();
                regions
                    .entry((at, entry.job_arn.region().to_owned()))
                    .or_default()
                    .push((index, entry));
            } else {
                now.push((index, entry));
            }
        }
        let min = self.config.bulk_read_min.unwrap_or(usize::MAX);
        let bulk: Vec<(AccountRegion, Vec<(usize, WorkEntry)>)> = regions
            .into_iter()
            .filter_map(|(region, jobs)| {
                if jobs.len() >= min {
                    Some((region, jobs))
                } else {
                    now.extend(jobs);
                    None
                }
            })
            .collect();
        now.sort_by_key(|(index, _)| *index);
        for (index, entry) in now {
            let _ = ready.send(Ready {
                index,
                entry,
                listed: None,
            });
        }
        let until = budget.listing_share();
        let reads = bulk.into_iter().map(|((account, region), jobs)| {
            self.bulk_read(account, region, jobs, until, inv, &ready)
        });
        futures::future::join_all(reads).await;
    }

    /// Reads the active jobs of one region from ListModelInvocationJobs, the
    /// jobs submitted since the oldest one (less [`BULK_LIST_MARGIN`]),
    /// oldest first, handing each job to the workers as its page arrives.
    ///
    /// Cost bound: with `n` jobs, page `k + 1` is asked for only when the
    /// first `k` pages found at least `k + 1` of them, so pages and the Gets
    /// for the jobs not found together stay within `n` requests; the one
    /// exception is a first page that holds none of them (the oldest job gone
    /// from Bedrock, or over 1,000 others submitted in the minute before it),
    /// which costs one more. The listing also stops at `until` (its share of
    /// the time) and on a failure; the jobs not found then get Gets.
    async fn bulk_read(
        &self,
        account: String,
        region: String,
        jobs: Vec<(usize, WorkEntry)>,
        until: Option<Instant>,
        inv: &Invocation,
        ready: &mpsc::UnboundedSender<Ready>,
    ) {
        let n = jobs.len();
        let oldest = jobs.iter().filter_map(|(_, e)| e.submit_time).min();
        let mut waiting: HashMap<JobArn, (usize, WorkEntry)> = jobs
            .into_iter()
            .map(|(index, entry)| (entry.job_arn.clone(), (index, entry)))
            .collect();
        let query = ListQuery {
            account: &account,
            region: &region,
            submitted_after: oldest.map(|t| t - BULK_LIST_MARGIN),
            name_contains: None,
            status: None,
        };
        let bedrock = self.bedrock(inv);
        let (mut pages, mut token): (usize, Option<String>) = (0, None);
        let stopped = loop {
            let found = n - waiting.len();
            if waiting.is_empty() {
                break "every job found";
            }
            if pages > 0 && pages + 1 > found {
                break "another page could cost more than a Get for each job left";
            }
            if until.is_some_and(|t| Instant::now() >= t) {
                break "its share of the time is spent";
            }
            pages += 1;
            let page = bedrock.list_page(&query, token.as_deref());
            let page = match until {
                Some(t) => match tokio::time::timeout_at(t.into(), page).await {
                    Ok(page) => page,
                    Err(_) => break "its share of the time is spent",
                },
                None => page.await,
            };
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    warn!(account, region, error_kind = e.kind(), error = %e, "bulk read failed; this region's jobs left are read one by one");
                    break "the listing failed";
                }
            };
            for snapshot in page.jobs {
                if let Some((index, entry)) = waiting.remove(&snapshot.job_arn) {
                    let _ = ready.send(Ready {
                        index,
                        entry,
                        listed: Some(snapshot),
                    });
                }
            }
            match page.next {
                Some(next) => token = Some(next),
                None => break "the listing ended",
            }
        };
        debug!(
            account,
            region,
            active = n,
            found = n - waiting.len(),
            pages,
            stopped,
            "bulk read of the region's jobs"
        );
        let mut left: Vec<(usize, WorkEntry)> = waiting.into_values().collect();
        left.sort_by_key(|(index, _)| *index);
        for (index, entry) in left {
            let _ = ready.send(Ready {
                index,
                entry,
                listed: None,
            });
        }
    }

    /// Lists the work in the cycle's order, a page at a time, until its end,
    /// the cut, a fault, or an item met already (the listing wrapped around
    /// to where the cycle began, and the rest of it is known too).
    async fn list(&self, start: &ListPosition, shards: &[u32], budget: &Budget) -> Listed {
        let mut listed = Listed::default();
        let mut seen: HashSet<String> = HashSet::new();
        for segment in shard_order(start, shards) {
            let mut after = segment.after;
            loop {
                let at = ListPosition {
                    shard: segment.shard,
                    after: after.clone(),
                };
                let page = match self.list_page(&at, budget).await {
                    Ok(page) => page,
                    Err(fault) => {
                        if fault.is_none() {
                            info!(shard = at.shard, "deadline near: the listing stops here");
                        }
                        listed.stopped = Some(at);
                        listed.fault = fault;
                        return listed;
                    }
                };
                for item in page.items {
                    let key = match &item {
                        Ok(entry) => entry.job_arn.to_string(),
                        Err(e) => e.key.clone(),
                    };
                    if !seen.insert(key.clone()) {
                        return listed;
                    }
                    let index = listed.order.len();
                    listed.order.push((segment.shard, key));
                    match item {
                        Ok(job) => listed.jobs.push((index, job)),
                        Err(e) => listed.unreadable.push(e),
                    }
                }
                match page.next {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
        }
        listed
    }

    /// One page, retried with backoff while the error may pass and time allows.
    /// `Err(None)`: the cut came first; `Err(Some(e))`: it kept failing.
    async fn list_page(
        &self,
        at: &ListPosition,
        budget: &Budget,
    ) -> Result<WorkPage, Option<StoreError>> {
        let mut backoff = LIST_FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let call = self.store.work_page(at.shard, at.after.as_deref());
            let result = match budget.cut_at {
                Some(cut) => tokio::time::timeout_at(cut.into(), call)
                    .await
                    .map_err(|_| None)?,
                None => call.await,
            };
            let error = match result {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let time_left = budget
                .cut_at
                .is_none_or(|cut| Instant::now() + backoff < cut);
            if matches!(error, StoreError::AccessDenied { .. })
                || attempt >= LIST_ATTEMPTS
                || !time_left
            {
                return Err(Some(error));
            }
            warn!(shard = at.shard, attempt, error_kind = error.kind(), error = %error, backoff_ms = backoff.as_millis() as u64, "listing the work failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(LIST_MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Saves where the next cycle starts. A failure only costs fairness, so it
    /// is a warning; it must not hold the answer past the deadline.
    async fn save_cursor(&self, shards: &[u32], cursor: Option<&ListPosition>, budget: &Budget) {
        let save = self.store.save_cursor(shards, cursor);
        let result = match budget.wrap_up_by {
            Some(by) => tokio::time::timeout_at(by.into(), save).await.ok(),
            None => Some(save.await),
        };
        match result {
            Some(Ok(())) => match cursor {
                Some(c) => {
                    info!(shard = c.shard, after = ?c.after, "cycle incomplete: the next one starts where this one stopped")
                }
                None => info!("cycle complete: the next one starts at the beginning"),
            },
            Some(Err(e)) => {
                warn!(error_kind = e.kind(), error = %e, "could not save where the next cycle starts")
            }
            None => warn!("no time left to save where the next cycle starts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_from_the_start_should_list_each_shard_once() {
        let order = shard_order(&ListPosition::default(), &[0, 1, 2, 3]);
        let shards: Vec<u32> = order.iter().map(|p| p.shard).collect();
        assert_eq!(shards, [0, 1, 2, 3]);
        assert!(order.iter().all(|p| p.after.is_none()));
        let order = shard_order(&ListPosition::default(), &[1, 3]);
        let shards: Vec<u32> = order.iter().map(|p| p.shard).collect();
        assert_eq!(shards, [1, 3], "a subset starts at its first shard");
    }

    #[test]
    fn a_resumed_cycle_should_start_where_the_last_stopped_and_wrap_around() {
        let start = ListPosition {
            shard: 2,
            after: Some("k".into()),
        };
        let order = shard_order(&start, &[0, 1, 2, 3]);
        let got: Vec<(u32, Option<&str>)> = order
            .iter()
            .map(|p| (p.shard, p.after.as_deref()))
            .collect();
        assert_eq!(
            got,
            [(2, Some("k")), (3, None), (0, None), (1, None), (2, None)]
        );
    }

    #[test]
    fn the_position_before_an_item_should_follow_its_shard() {
        let book = Listed {
            order: vec![(1, "a".into()), (1, "b".into()), (2, "c".into())],
            ..Listed::default()
        };
        let start = ListPosition {
            shard: 1,
            after: Some("z".into()),
        };
        assert_eq!(book.before(0, &start), start);
        assert_eq!(
            book.before(1, &start),
            ListPosition {
                shard: 1,
                after: Some("a".into())
            }
        );
        assert_eq!(
            book.before(2, &start),
            ListPosition {
                shard: 2,
                after: None
            }
        );
    }
}
