//! The fleet's commands: `list` (the tracked jobs, from the table only) and
//! `digest` (proof of life, published to the topic).

use std::cmp::Reverse;

use chrono::Utc;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::{Monitor, MonitorError};
use crate::digest;
use crate::domain::StoredJob;
use crate::event::{ListRequest, ListToken};
use crate::ports::{Fleet, StoreError, Write};
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
        Ok(json!({
            "jobs": page.into_iter().map(describe::listed).collect::<Vec<_>>(),
            "next": next,
        }))
    }

    pub(super) async fn digest(&self) -> Result<Value, MonitorError> {
        let at = Utc::now();
        let previous = self.store.last_digest().await?;
        let health = self.store.health().await?;
        let jobs = self.readable_jobs().await?;
        let d = digest::build(&jobs, previous.as_ref(), health, at);
        if let Err(error) = self.notifier.publish_digest(&d).await {
            return Err(MonitorError::Notify {
                error: Box::new(error),
                summary: json!({"digest": d.id, "published": false}),
            });
        }
        info!(digest = %d.id, running = d.running_total, ended = d.ended_total, warnings = d.warnings_total, "digest published");
        let saved = self
            .store
            .save_digest(&d.mark, previous.as_ref().map(|p| p.at))
            .await?;
        if saved == Write::Lost {
            warn!(digest = %d.id, "another digest ran at the same time; the next one starts from whichever was saved");
        }
        Ok(json!({
            "digest": d.id,
            "published": true,
            "since": d.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "at": d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "running": d.running_total,
            "ended": d.ended_total,
            "warnings": d.warnings_total,
            "polls": d.polls,
            "failedInvocations": d.failed_invocations,
            "setAside": d.set_aside_total,
        }))
    }
}
