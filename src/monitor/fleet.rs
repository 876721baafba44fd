//! The fleet's commands: `list` (the tracked jobs, from the table only) and
//! `digest` (proof of life, published to the topic). Both read what they
//! show: the jobs that have not ended from the work index, the ended ones
//! from the index of ends, each whole job read without its history and only
//! when shown.

use std::cmp::Reverse;
use std::collections::HashMap;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::{Invocation, Monitor, MonitorError};
use crate::digest::{self, Health, SetAsideNote};
use crate::domain::{EndedJob, JobArn, StoredJob, TOPIC, WorkEntry};
use crate::event::{ListRequest, ListToken};
use crate::ports::{
    Claim, EndedKey, EndedQuery, Fleet, ItemError, Notifier, RouteStore, StoreError, WorkList,
    Write,
};
use crate::render::describe;

/// `list`'s order of the jobs that have not ended: newest submitted first
/// (jobs without a submit time last), then by ARN.
fn order_key(
    submit_time: Option<chrono::DateTime<Utc>>,
    arn: &str,
) -> (Reverse<Option<chrono::DateTime<Utc>>>, String) {
    (Reverse(submit_time), arn.to_owned())
}

/// An item left out of `list` and the digest, said once in the log.
fn left_out(e: &ItemError) {
    warn!(job_arn = %e.key, error_kind = "ItemUnreadable", error = %e, "item left out of list and digest");
}

impl<S, T: Fleet + WorkList + RouteStore, N: crate::ports::Notifier> Monitor<S, T, N> {
    /// The jobs that have not ended (polled, not untracked, not lost), as
    /// the work index lists them: every shard, every page. What a poll reads
    /// first too: it grows with the jobs running, not with the table.
    async fn running_entries(&self) -> Result<Vec<WorkEntry>, StoreError> {
        let mut out = Vec::new();
        for shard in 0..self.store.shards() {
            let mut after: Option<String> = None;
            loop {
                let page = self.store.work_page(shard, after.as_deref()).await?;
                for item in page.items {
                    match item {
                        Ok(entry) if entry.needs_polling() => out.push(entry),
                        Ok(_) => {}
                        Err(e) => left_out(&e),
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// The jobs `arns` names, read whole without their history, by ARN.
    async fn shown(&self, arns: &[JobArn]) -> Result<HashMap<JobArn, StoredJob>, StoreError> {
        let mut out = HashMap::new();
        for job in self.store.jobs_shown(arns).await? {
            match job {
                Ok(job) => {
                    out.insert(job.arn().clone(), job);
                }
                Err(e) => left_out(&e),
            }
        }
        Ok(out)
    }

    pub(super) async fn list_jobs(&self, req: &ListRequest) -> Result<Value, MonitorError> {
        let now = Utc::now();
        // The ends a listing shows are those recorded by its first page: a
        // job that ends while it is paged through was shown running, or is
        // in the next listing, never twice in this one.
        let as_of = req.as_of.unwrap_or(now);
        let wanted_status =
            |status: &str| req.status.is_empty() || req.status.iter().any(|s| s == status);
        let wanted_labels = |labels: &std::collections::BTreeMap<String, String>| {
            req.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
        };
        // The account is in the ARN, so it is decided before a job is read whole.
        let wanted_account = |arn: &JobArn| {
            req.accounts.is_empty() || req.accounts.iter().any(|a| a == arn.account())
        };
        let mut page: Vec<Value> = Vec::new();
        // The model of each waiting job shown: its quota is given beside it.
        let mut models: HashMap<String, String> = HashMap::new();
        let mut next: Option<ListToken> = None;
        let mut ended_after: Option<EndedKey> = None;
        let mut running_done = false;
        if let Some(ListToken::Ended { after }) = &req.next {
            running_done = true;
            ended_after = after
                .clone()
                .map(|(ended_at, job_arn)| EndedKey { ended_at, job_arn });
        }
        if !running_done {
            let mut entries: Vec<WorkEntry> = self
                .running_entries()
                .await?
                .into_iter()
                .filter(|e| wanted_status(e.status.as_str()) && wanted_account(&e.job_arn))
                .collect();
            entries.sort_by_cached_key(|e| order_key(e.submit_time, e.job_arn.as_str()));
            let start = match &req.next {
                Some(ListToken::Running {
                    submit_time,
                    job_arn,
                }) => {
                    let after = order_key(*submit_time, job_arn);
                    entries
                        .partition_point(|e| order_key(e.submit_time, e.job_arn.as_str()) <= after)
                }
                _ => 0,
            };
            let candidates = &entries[start..];
            let mut read = 0;
            // Read the page's jobs whole (no history), a page's worth at a
            // time, until it is full: a label filter may leave some out.
            while page.len() < req.limit && read < candidates.len() {
                let room = req.limit - page.len();
                let chunk = &candidates[read..(read + room).min(candidates.len())];
                let arns: Vec<JobArn> = chunk.iter().map(|e| e.job_arn.clone()).collect();
                let jobs = self.shown(&arns).await?;
                for entry in chunk {
                    if let Some(job) = jobs.get(&entry.job_arn)
                        && job.needs_polling()
                        && wanted_labels(&job.labels)
                    {
                        page.push(describe::listed(job, now));
                        if let Some(m) = &job.snapshot.model_id {
                            models.insert(job.arn().to_string(), m.clone());
                        }
                    }
                }
                read += chunk.len();
            }
            if read < candidates.len() {
                let last = &candidates[read - 1];
                next = Some(ListToken::Running {
                    submit_time: last.submit_time,
                    job_arn: last.job_arn.to_string(),
                });
            } else {
                running_done = true;
                if req.ended && page.len() == req.limit {
                    // The running jobs filled the page exactly: the ended ones come next.
                    next = Some(ListToken::Ended { after: None });
                }
            }
        }
        if req.ended && running_done && next.is_none() {
            while page.len() < req.limit {
                let room = req.limit - page.len();
                let found = self
                    .store
                    .ended_page(&EndedQuery {
                        since: None,
                        until: Some(as_of),
                        after: ended_after.clone(),
                        limit: room,
                    })
                    .await?;
                for job in found.jobs {
                    match job {
                        Ok(j)
                            if wanted_status(j.status.as_str())
                                && wanted_account(&j.job_arn)
                                && wanted_labels(&j.labels) =>
                        {
                            page.push(describe::listed_ended(&j, &self.config.prices));
                        }
                        Ok(_) => {}
                        Err(e) => left_out(&e),
                    }
                }
                match found.next {
                    Some(key) if page.len() < req.limit => ended_after = Some(key),
                    Some(key) => {
                        next = Some(ListToken::Ended {
                            after: Some((key.ended_at, key.job_arn)),
                        });
                        break;
                    }
                    None => break,
                }
            }
        }
        self.add_quotas(&mut page, &models).await;
        Ok(json!({
            "jobs": page,
            "next": next.map(|t| t.encode_as_of(as_of)),
        }))
    }

    /// What the digest shows of the fleet: the jobs that have not ended
    /// (the first [`digest::DIGEST_LIST_MAX`] of them read whole, without
    /// history), and every end recorded in `window`, from the index of ends.
    async fn fleet_for(
        &self,
        window: &digest::Window,
    ) -> Result<(Vec<WorkEntry>, HashMap<JobArn, StoredJob>, Vec<EndedJob>), StoreError> {
        let mut running = self.running_entries().await?;
        digest::order_running(&mut running);
        let arns: Vec<JobArn> = running
            .iter()
            .take(digest::DIGEST_LIST_MAX)
            .map(|e| e.job_arn.clone())
            .collect();
        let shown = self.shown(&arns).await?;
        let mut ended = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .ended_page(&EndedQuery {
                    since: Some(window.since),
                    until: Some(window.until),
                    after,
                    limit: 1000,
                })
                .await?;
            for job in page.jobs {
                match job {
                    Ok(j) => ended.push(j),
                    Err(e) => left_out(&e),
                }
            }
            match page.next {
                Some(k) => after = Some(k),
                None => break,
            }
        }
        Ok((running, shown, ended))
    }

    /// Publishes the digest. Its window is saved, as pending and held by
    /// this invocation, before anything is published: a digest that was
    /// begun and not finished (its publish failed, or the save after it) is
    /// published again by the next digest invocation under the same id and
    /// with the same window, and nothing new is begun until it is done. So
    /// whatever the number of digests, manual, scheduled, concurrent or
    /// retried, each end is in exactly one of them, and a repeat carries the
    /// `digestId` subscribers drop it by.
    pub(super) async fn digest(&self, inv: &Invocation) -> Result<Value, MonitorError> {
        let now = Utc::now();
        let previous = self.store.last_digest().await?;
        let claim = Claim {
            token: self.claim_token(inv),
            now,
            until: now + self.config.claim_duration,
        };
        let base = previous.as_ref().map_or_else(Health::default, |p| p.health);
        let (window, resumed) = match previous.as_ref().and_then(|p| p.pending.clone()) {
            Some(pending) => match self.store.claim_digest(&pending.id, &claim).await? {
                Write::Done => {
                    info!(digest = %pending.id, "a digest begun earlier was not finished; publishing it again under its id");
                    (pending, true)
                }
                Write::Lost => return Ok(not_now(&pending.id, "held by another invocation")),
            },
            None => {
                let settle = chrono::Duration::from_std(self.config.digest_settle)
                    .unwrap_or(chrono::Duration::zero());
                let window = digest::Window::after(previous.as_ref(), now, settle);
                let begun = self
                    .store
                    .begin_digest(&window, &claim, previous.as_ref().map(|p| p.at))
                    .await?;
                if begun == Write::Lost {
                    return Ok(not_now(&window.id, "another digest began at the same time"));
                }
                (window, false)
            }
        };
        let health = self.store.health().await?;
        let (running, shown, ended) = self.fleet_for(&window).await?;
        let set_aside = self
            .store
            .set_aside_between(window.since, window.until)
            .await?;
        let mut d = digest::build(
            digest::Fleet {
                prices: &self.config.prices,
                running: &running,
                shown: &shown,
                ended: &ended,
                set_aside: &set_aside,
            },
            &window,
            base,
            health,
            now,
        );
        d.unusable_settings = self.config.unusable.clone();
        // The quotas of the accounts and regions with a job that waits long:
        // one item each, kept by the polls (no call to AWS).
        let now_waiting = running
            .iter()
            .filter(|e| crate::domain::waits_long(&e.status, e.submit_time, now))
            .map(|e| {
                (
                    e.job_arn.account().to_owned(),
                    e.job_arn.region().to_owned(),
                )
            });
        d.capacity = self.capacity(now_waiting).await;
        // The polls the schedules imply over the window; a first digest has
        // no previous one to count from.
        d.expected_polls = match (window.first, self.config.poll_every) {
            (false, Some(every)) => {
                let secs = u64::try_from((window.until - window.since).num_seconds()).unwrap_or(0);
                Some(secs / every.as_secs().max(1) * u64::from(self.config.poll_schedules))
            }
            _ => None,
        };
        // The job topic first: until it has the digest, no destination gets
        // it (so none hears it twice when it is tried again). Another
        // destination that fails misses this digest, loudly, and the digest
        // is finished without it.
        let mut form = "full";
        let mut elsewhere = Vec::new();
        // The routes (the stack's Slack channel among them): a table that
        // cannot be read leaves the routes out of this digest, loudly; the
        // job topic still has it.
        let routes = match Box::pin(self.routes(inv)).await {
            Ok(routes) => routes,
            Err(error) => {
                error!(digest = %d.id, error_kind = error.kind(), error = %error, "the routes could not be read; this digest goes to the job topic alone");
                elsewhere.push(missed("routes", error.kind(), &error));
                std::sync::Arc::new(crate::routes::Table::default())
            }
        };
        for destination in self.notifier.digest_destinations(&d, &routes) {
            let (published, sent_as) = self.publish_digest_to(&destination, &d, &routes).await;
            if destination != TOPIC {
                inv.tally(
                    &destination,
                    published.as_ref().map(|_| ()).map_err(|e| e.message()),
                );
            }
            match published {
                Ok(()) if destination == TOPIC => form = sent_as,
                Ok(()) => {}
                Err(error) if destination == TOPIC => {
                    let released = self.store.release_digest(&d.id, &claim.token).await;
                    if !matches!(released, Ok(Write::Done)) {
                        warn!(digest = %d.id, "the digest's claim was not given back; the next try waits for it to run out");
                    }
                    let summary = json!({"digest": d.id, "published": false});
                    return Err(if error.is_permanent() {
                        MonitorError::DigestRejected {
                            error: Box::new(error),
                            summary,
                        }
                    } else {
                        MonitorError::Notify {
                            error: Box::new(error),
                            summary,
                        }
                    });
                }
                Err(error) => {
                    error!(digest = %d.id, destination = %destination, error_kind = error.kind(), error = %error, "the digest did not reach this destination; it misses this digest, the others have it");
                    elsewhere.push(missed(&destination, error.kind(), &error));
                }
            }
        }
        // Each route its own digest: the jobs its policy covers, under an id
        // of its own. One that fails misses this digest, loudly.
        // The monitor's digest is out: nothing here may fail the invocation
        // (that would publish it again), so a read that fails costs the
        // routes this digest, said in `errors`.
        let mut routed = Vec::new();
        let whole = match routes.declared().next() {
            None => None,
            Some(_) => {
                let all: Vec<JobArn> = running.iter().map(|e| e.job_arn.clone()).collect();
                match self.shown(&all).await {
                    Ok(whole) => Some(whole),
                    Err(error) => {
                        error!(digest = %d.id, error_kind = error.kind(), error = %error, "the running jobs could not be read for the routes' digests; the routes miss this digest");
                        elsewhere.push(missed("routes", error.kind(), &error));
                        None
                    }
                }
            }
        };
        if let Some(whole) = whole {
            for route in routes.declared() {
                let rd = self.route_digest(
                    route,
                    &d,
                    &window,
                    digest::Fleet {
                        prices: &self.config.prices,
                        running: &running,
                        shown: &whole,
                        ended: &ended,
                        set_aside: &set_aside,
                    },
                    (base, health),
                );
                if self.notifier.digest_destinations(&rd, &routes).is_empty() {
                    continue;
                }
                let (published, _) = self.publish_digest_to(&route.name, &rd, &routes).await;
                inv.tally(
                    &route.name,
                    published.as_ref().map(|_| ()).map_err(|e| e.message()),
                );
                match published {
                    Ok(()) => {
                        info!(digest = %rd.id, route = %route.name, running = rd.running_total, ended = rd.ended_total, "route digest published");
                        routed.push(json!({"route": route.name, "digest": rd.id,
                            "running": rd.running_total, "ended": rd.ended_total}));
                    }
                    Err(error) => {
                        error!(digest = %rd.id, destination = %route.name, error_kind = error.kind(), error = %error, "the route's digest did not reach its topic; it misses this digest, the others have theirs");
                        elsewhere.push(missed(&route.name, error.kind(), &error));
                    }
                }
            }
        }
        info!(digest = %d.id, running = d.running_total, ended = d.ended_total, warnings = d.warnings_total, resumed, "digest published");
        let iso = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let answer = json!({
            "digest": d.id,
            "published": true,
            "form": form,
            "resumed": resumed,
            "since": iso(d.since),
            "until": iso(d.until),
            "errors": elsewhere,
            "at": iso(d.at),
            "running": d.running_total,
            "ended": d.ended_total,
            "warnings": d.warnings_total,
            "polls": d.polls,
            "failedInvocations": d.failed_invocations,
            "setAside": d.set_aside_total,
            "routes": routed,
        });
        match self
            .store
            .finish_digest(&d.mark(), &d.id, &claim.token)
            .await
        {
            Ok(Write::Done) => Ok(answer),
            Ok(Write::Lost) => {
                warn!(digest = %d.id, "the digest's claim ran out before it was saved as published; its next holder publishes it again, under the same id");
                Ok(answer)
            }
            // Published but not saved: the invocation fails, and the next
            // digest invocation (Lambda's retry, or the next schedule)
            // publishes it again under the same id.
            Err(error) => Err(MonitorError::Store {
                error: Box::new(error),
                summary: answer,
            }),
        }
    }
}

impl<S, T, N: Notifier> Monitor<S, T, N> {
    /// Publishes the digest to one destination; one it refuses for its
    /// content gets the counts alone. How it went, and in which form.
    async fn publish_digest_to(
        &self,
        destination: &str,
        d: &digest::Digest,
        routes: &crate::routes::Table,
    ) -> (Result<(), crate::ports::NotifyError>, &'static str) {
        let published = self.notifier.publish_digest(destination, d, routes).await;
        match published {
            Err(e) if e.is_permanent() => {
                // The message's fault, not the destination's: send the counts alone.
                warn!(digest = %d.id, destination, error = %e, "SNS refused the digest; sending its counts alone");
                (
                    self.notifier
                        .publish_digest(destination, &d.counts_only(), routes)
                        .await,
                    "countsOnly",
                )
            }
            other => (other, "full"),
        }
    }
}

impl<S, T, N> Monitor<S, T, N> {
    /// `route`'s own digest: the jobs of `fleet` its policy covers (every
    /// running job read whole in `fleet.shown`), over the monitor's digest's
    /// window, under the id `<digest id>-<route>`, with the monitor's health.
    fn route_digest(
        &self,
        route: &crate::routes::Route,
        whole: &digest::Digest,
        window: &digest::Window,
        fleet: digest::Fleet<'_>,
        (base, health): (Health, Health),
    ) -> digest::Digest {
        let env = self.config.environment.as_str();
        let covered = |arn: &JobArn,
                       name: Option<&str>,
                       model: Option<&str>,
                       labels: &std::collections::BTreeMap<String, String>| {
            let mut attrs = vec![
                ("account".to_owned(), arn.account().to_owned()),
                ("region".to_owned(), arn.region().to_owned()),
                (
                    "jobName".to_owned(),
                    name.unwrap_or(arn.job_id()).to_owned(),
                ),
                ("environment".to_owned(), env.to_owned()),
            ];
            if let Some(m) = model.filter(|m| !m.is_empty()) {
                attrs.push(("modelId".to_owned(), m.to_owned()));
            }
            attrs.extend(
                labels
                    .iter()
                    .filter(|(k, _)| !crate::labels::RESERVED.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            crate::routes::covers(&route.policy, &attrs)
        };
        let shown: HashMap<JobArn, StoredJob> = fleet
            .shown
            .iter()
            .filter(|(_, j)| {
                covered(
                    j.arn(),
                    j.snapshot.job_name.as_deref(),
                    j.snapshot.model_id.as_deref(),
                    &j.labels,
                )
            })
            .map(|(a, j)| (a.clone(), j.clone()))
            .collect();
        let running: Vec<WorkEntry> = fleet
            .running
            .iter()
            .filter(|e| shown.contains_key(&e.job_arn))
            .cloned()
            .collect();
        let ended: Vec<EndedJob> = fleet
            .ended
            .iter()
            .filter(|j| {
                covered(
                    &j.job_arn,
                    j.job_name.as_deref(),
                    j.model_id.as_deref(),
                    &j.labels,
                )
            })
            .cloned()
            .collect();
        // The notifications set aside at this route (each went there because
        // the route's policy took it, whatever the job does now), and those
        // the job topic set aside of the route's jobs; not other routes'.
        let set_aside: Vec<SetAsideNote> = fleet
            .set_aside
            .iter()
            .filter(|n| {
                n.destination == route.name
                    || (n.destination == TOPIC
                        && (shown.contains_key(&n.job_arn)
                            || ended.iter().any(|e| e.job_arn == n.job_arn)))
            })
            .cloned()
            .collect();
        let mut own = window.clone();
        own.id = format!("{}-{}", window.id, route.name);
        let mut d = digest::build(
            digest::Fleet {
                prices: fleet.prices,
                running: &running,
                shown: &shown,
                ended: &ended,
                set_aside: &set_aside,
            },
            &own,
            base,
            health,
            whole.at,
        );
        d.route = Some(digest::RouteOf {
            name: route.name.clone(),
            attributes: crate::routes::digest_attributes(route),
        });
        d.unusable_settings = whole.unusable_settings.clone();
        d.expected_polls = whole.expected_polls;
        let accounts: std::collections::HashSet<&str> =
            d.accounts.keys().map(String::as_str).collect();
        d.capacity = whole
            .capacity
            .iter()
            .filter(|(account, _)| accounts.contains(account.as_str()))
            .cloned()
            .collect();
        d
    }
}

/// An `errors` entry of the digest's answer: `destination` missed this digest.
fn missed(destination: &str, kind: &str, error: &dyn std::fmt::Display) -> Value {
    json!({
        "jobArn": "digest",
        "destination": destination,
        "kind": kind,
        "error": error.to_string(),
    })
}

/// The answer of a digest invocation that publishes nothing: another holds
/// the digest under way.
fn not_now(id: &str, why: &str) -> Value {
    info!(digest = %id, why, "no digest published by this invocation");
    json!({"digest": id, "published": false, "reason": why})
}
