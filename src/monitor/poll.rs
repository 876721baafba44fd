//! One poll cycle over the work list.
//!
//! The cycle lists its shards of the work index (lean items), then reads the
//! state of each region's active jobs in bulk where it has enough of them
//! (`BULK_READ_MIN`), then works on the jobs, `MAX_CONCURRENCY` at a time, a
//! Get each for those the bulk read did not cover. Every job's work is
//! bounded by the invocation's budget:
//! none starts near the deadline, and what is still running at the cut is
//! abandoned (every write is conditional) and reported deferred. When a cycle
//! does not reach every job, it saves where the first job it did not reach
//! sits in the listing, and the next cycle starts there: jobs left out go first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::summary::{Outcome, Summary, Tally};
use super::{Budget, Invocation, Monitor, MonitorError};
use chrono::{DateTime, Utc};

use crate::domain::{JobArn, JobSnapshot, StoredJob};
use crate::ports::{
    ItemError, JobSource, Jobs, ListPosition, Notifier, Outbox, StoreError, WorkList, WorkPage,
};

/// Tries of one page of the work listing before the cycle counts it as a
/// systemic fault (each try is itself the SDK's retried operation).
pub const LIST_ATTEMPTS: u32 = 5;
const LIST_FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LIST_MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How far before the oldest active job's submit time a bulk read's listing
/// starts (both times are Bedrock's, so this only guards rounding).
pub const BULK_LIST_MARGIN: chrono::Duration = chrono::Duration::minutes(1);

/// What the lister hands the workers.
enum Listed {
    Page {
        shard: u32,
        items: Vec<Result<StoredJob, ItemError>>,
    },
    /// The listing stopped early: at the cut (no fault) or on a fault that
    /// outlasted the retries. `at` is where the rest of the work starts.
    Stopped {
        at: ListPosition,
        fault: Option<StoreError>,
    },
}

/// One listed item on its way to a worker.
enum Entry {
    Job(usize, Box<StoredJob>),
    Unreadable(ItemError),
    Skip,
}

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

/// Listing bookkeeping: which jobs this cycle met, in listing order.
#[derive(Default)]
struct Book {
    seen: HashSet<String>,
    /// (shard, key) of each distinct item, in listing order.
    order: Vec<(u32, String)>,
    stopped: Option<ListPosition>,
    fault: Option<StoreError>,
}

impl Book {
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

impl<S: JobSource, T: Jobs + Outbox + WorkList, N: Notifier> Monitor<S, T, N> {
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
        info!(
            remaining_ms = inv
                .deadline
                .map(|d| d.saturating_duration_since(started).as_millis() as u64),
            start_shard = start.shard,
            shards = ?shards,
            resuming = start.after.is_some(),
            "poll cycle starting"
        );

        let stop_listing = AtomicBool::new(false);
        let book = Mutex::new(Book::default());
        let (pages_tx, pages_rx) = mpsc::channel::<Listed>(2);
        let lister = self.list(&start, &shards, &budget, &stop_listing, pages_tx);
        let worker = async {
            let pages = futures::stream::unfold(pages_rx, |mut rx| async move {
                rx.recv().await.map(|page| (page, rx))
            });
            let listed = pages.flat_map(|listed| {
                let entries: Vec<Entry> = match listed {
                    Listed::Page { shard, items } => items
                        .into_iter()
                        .map(|item| self.admit(&book, &stop_listing, shard, item))
                        .collect(),
                    Listed::Stopped { at, fault } => {
                        let mut b = book.lock().unwrap_or_else(|e| e.into_inner());
                        b.stopped = Some(at);
                        b.fault = fault;
                        vec![Entry::Skip]
                    }
                };
                futures::stream::iter(entries)
            });
            // The whole work list first: a region with enough active jobs is
            // read with one ListModelInvocationJobs call a page, not a Get each.
            let entries: Vec<Entry> = listed.collect().await;
            let known = self.bulk_read(&entries, inv, &budget).await;
            let known = &known;
            let done = futures::stream::iter(entries)
                .map(|entry| {
                    let budget = &budget;
                    async move {
                        match entry {
                            Entry::Job(index, job) => {
                                let arn = job.arn().to_string();
                                if budget.past_start() {
                                    let mut deferred = Outcome {
                                        deferred: true,
                                        ..Outcome::default()
                                    };
                                    deferred.note_pending(&job);
                                    return Some((index, arn, Ok(deferred)));
                                }
                                let listed = known.get(job.arn()).cloned();
                                let out = self.run_job(*job, listed, inv, budget).await;
                                Some((index, arn, Ok(out)))
                            }
                            Entry::Unreadable(e) => Some((usize::MAX, String::new(), Err(e))),
                            Entry::Skip => None,
                        }
                    }
                })
                .buffer_unordered(self.config.max_concurrency);
            let mut done = std::pin::pin!(done);
            let mut tally = Tally::new();
            for (key, outcome) in discovered {
                tally.add(&key, outcome);
            }
            let mut first_unreached: Option<usize> = None;
            while let Some(result) = done.next().await {
                match result {
                    Some((index, arn, Ok(outcome))) => {
                        if outcome.deferred {
                            first_unreached = Some(first_unreached.map_or(index, |f| f.min(index)));
                        }
                        tally.add(&arn, outcome);
                    }
                    Some((_, _, Err(item))) => tally.skip(item),
                    None => {}
                }
            }
            (tally, first_unreached)
        };
        let ((), (mut tally, first_unreached)) = futures::join!(lister, worker);

        let book = book.into_inner().unwrap_or_else(|e| e.into_inner());
        let cursor = match first_unreached {
            Some(i) => Some(book.before(i, &start)),
            None => book.stopped.clone(),
        };
        if cursor != saved {
            self.save_cursor(&shards, cursor.as_ref(), &budget).await;
        }
        if let Some(fault) = book.fault {
            tally.list_fault = Some(fault);
        }
        let summary = tally.finish()?;
        info!(
            polled = summary.polled,
            transitions = summary.transitions,
            notified = summary.notified,
            deferred = summary.deferred,
            failed = summary.failed,
            skipped = summary.skipped,
            undeliverable = summary.undeliverable,
            duration_ms = started.elapsed().as_millis() as u64,
            "poll cycle done"
        );
        Ok(summary)
    }

    /// The state of the active jobs of each region with at least
    /// `BULK_READ_MIN` of them, from ListModelInvocationJobs: the jobs
    /// submitted since the oldest one (less [`BULK_LIST_MARGIN`]), at most as
    /// many pages as the region has jobs, so it never costs more requests than
    /// a Get each. A job the listing did not return is read with a Get; a
    /// listing that fails leaves its region to Gets.
    async fn bulk_read(
        &self,
        entries: &[Entry],
        inv: &Invocation,
        budget: &Budget,
    ) -> HashMap<JobArn, JobSnapshot> {
        let Some(min) = self.config.bulk_read_min else {
            return HashMap::new();
        };
        // region -> (active jobs, oldest submit time, a job without one)
        let mut regions: BTreeMap<&str, (u64, Option<DateTime<Utc>>, bool)> = BTreeMap::new();
        let mut active: HashSet<&JobArn> = HashSet::new();
        for entry in entries {
            let Entry::Job(_, job) = entry else { continue };
            if !job.needs_polling() {
                continue;
            }
            active.insert(job.arn());
            let r = regions.entry(job.arn().region()).or_default();
            r.0 += 1;
            match job.snapshot.submit_time {
                Some(t) => r.1 = Some(r.1.map_or(t, |o| o.min(t))),
                None => r.2 = true,
            }
        }
        let lists = regions
            .into_iter()
            .filter(|(_, (n, _, _))| *n >= min as u64)
            .map(|(region, (n, oldest, undated))| async move {
                if budget.past_start() {
                    return Vec::new();
                }
                let after = if undated {
                    None
                } else {
                    oldest.map(|t| t - BULK_LIST_MARGIN)
                };
                let call = self.source.list_jobs(region, after, None, Some(n));
                let result = match budget.cut_at {
                    Some(cut) => tokio::time::timeout_at(cut.into(), call).await.ok(),
                    None => Some(call.await),
                };
                match result {
                    Some(Ok(listing)) => {
                        inv.calls.list.fetch_add(listing.pages, Ordering::Relaxed);
                        info!(region, active = n, listed = listing.jobs.len(), pages = listing.pages, complete = listing.complete, "bulk read of the region's jobs");
                        listing.jobs
                    }
                    Some(Err(e)) => {
                        inv.calls.list.fetch_add(1, Ordering::Relaxed);
                        warn!(region, error_kind = e.kind(), error = %e, "bulk read failed; this region's jobs are read one by one");
                        Vec::new()
                    }
                    None => Vec::new(),
                }
            });
        futures::future::join_all(lists)
            .await
            .into_iter()
            .flatten()
            .filter(|s| active.contains(&s.job_arn))
            .map(|s| (s.job_arn.clone(), s))
            .collect()
    }

    /// Numbers a listed item in listing order, or drops it when this cycle met
    /// it already: then the listing wrapped around to where the cycle began,
    /// and the rest of it is known too.
    fn admit(
        &self,
        book: &Mutex<Book>,
        stop_listing: &AtomicBool,
        shard: u32,
        item: Result<StoredJob, ItemError>,
    ) -> Entry {
        let key = match &item {
            Ok(job) => job.arn().to_string(),
            Err(e) => e.key.clone(),
        };
        let mut b = book.lock().unwrap_or_else(|e| e.into_inner());
        if !b.seen.insert(key.clone()) {
            stop_listing.store(true, Ordering::Relaxed);
            return Entry::Skip;
        }
        let index = b.order.len();
        b.order.push((shard, key));
        match item {
            Ok(job) => Entry::Job(index, Box::new(job)),
            Err(e) => Entry::Unreadable(e),
        }
    }

    /// Lists the work in the cycle's order, a page at a time, until its end,
    /// the cut, a fault, or the workers say the rest is known.
    async fn list(
        &self,
        start: &ListPosition,
        shards: &[u32],
        budget: &Budget,
        stop: &AtomicBool,
        tx: mpsc::Sender<Listed>,
    ) {
        for segment in shard_order(start, shards) {
            let mut after = segment.after;
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
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
                        let _ = tx.send(Listed::Stopped { at, fault }).await;
                        return;
                    }
                };
                let next = page.next;
                let listed = Listed::Page {
                    shard: segment.shard,
                    items: page.items,
                };
                if tx.send(listed).await.is_err() {
                    return;
                }
                match next {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
        }
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
        let book = Book {
            order: vec![(1, "a".into()), (1, "b".into()), (2, "c".into())],
            ..Book::default()
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
