//! The fleet's commands: `list` (the tracked jobs, from the table only) and
//! `digest` (proof of life, published to the topic).

use std::cmp::Reverse;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{Invocation, Monitor, MonitorError};
use crate::digest::{self, Health};
use crate::domain::StoredJob;
use crate::event::{ListRequest, ListToken};
use crate::ports::{Claim, Fleet, StoreError, Write};
use crate::render::describe;

/// `list`'s order: newest submitted first (jobs without a submit time last),
/// then by ARN.
fn order_key(
    submit_time: Option<chrono::DateTime<Utc>>,
    arn: &str,
) -> (Reverse<Option<chrono::DateTime<Utc>>>, String) {
    (Reverse(submit_time), arn.to_owned())
}

impl<S, T: Fleet, N: crate::ports::Notifier> Monitor<S, T, N> {
    /// Every readable job item; unreadable ones are logged once and left out.
    async fn readable_jobs(&self) -> Result<Vec<StoredJob>, StoreError> {
        let mut jobs = Vec::new();
        for item in self.store.all_jobs().await? {
            match item {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    warn!(job_arn = %e.key, error_kind = "ItemUnreadable", error = %e, "item left out of list and digest");
                }
            }
        }
        Ok(jobs)
    }

    pub(super) async fn list_jobs(&self, req: &ListRequest) -> Result<Value, MonitorError> {
        let mut jobs: Vec<StoredJob> = self
            .readable_jobs()
            .await?
            .into_iter()
            .filter(|j| j.untracked_at.is_none())
            .filter(|j| req.ended || j.needs_polling())
            .filter(|j| {
                req.status.is_empty() || req.status.iter().any(|s| s == j.snapshot.status.as_str())
            })
            .filter(|j| req.labels.iter().all(|(k, v)| j.labels.get(k) == Some(v)))
            .collect();
        jobs.sort_by_cached_key(|j| order_key(j.snapshot.submit_time, j.arn().as_str()));
        let start = req.next.as_ref().map_or(0, |t| {
            let after = order_key(t.submit_time, &t.job_arn);
            jobs.partition_point(|j| order_key(j.snapshot.submit_time, j.arn().as_str()) <= after)
        });
        let page: Vec<&StoredJob> = jobs.iter().skip(start).take(req.limit).collect();
        let next = (start + page.len() < jobs.len())
            .then(|| page.last())
            .flatten()
            .map(|last| {
                ListToken {
                    submit_time: last.snapshot.submit_time,
                    job_arn: last.arn().to_string(),
                }
                .encode()
            });
        let now = Utc::now();
        Ok(json!({
            "jobs": page.into_iter().map(|j| describe::listed(j, now)).collect::<Vec<_>>(),
            "next": next,
        }))
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
        let jobs = self.readable_jobs().await?;
        let d = digest::build(&jobs, &window, base, health, now);
        let mut form = "full";
        let mut published = self.notifier.publish_digest(&d).await;
        if let Err(e) = &published
            && e.is_permanent()
        {
            // The message's fault, not the topic's: send the counts alone.
            warn!(digest = %d.id, error = %e, "SNS refused the digest; sending its counts alone");
            form = "countsOnly";
            published = self.notifier.publish_digest(&d.counts_only()).await;
        }
        if let Err(error) = published {
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
        info!(digest = %d.id, running = d.running_total, ended = d.ended_total, warnings = d.warnings_total, resumed, "digest published");
        let iso = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let answer = json!({
            "digest": d.id,
            "published": true,
            "form": form,
            "resumed": resumed,
            "since": iso(d.since),
            "until": iso(d.until),
            "at": iso(d.at),
            "running": d.running_total,
            "ended": d.ended_total,
            "warnings": d.warnings_total,
            "polls": d.polls,
            "failedInvocations": d.failed_invocations,
            "setAside": d.set_aside_total,
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

/// The answer of a digest invocation that publishes nothing: another holds
/// the digest under way.
fn not_now(id: &str, why: &str) -> Value {
    info!(digest = %id, why, "no digest published by this invocation");
    json!({"digest": id, "published": false, "reason": why})
}
