//! `describe`'s answer: a job's stored state, its status history, what is
//! pending and what was set aside.

use serde_json::{Value, json};

use crate::domain::{EndedJob, JobArn, StoredJob, Tracking};
use crate::prices::{self, PriceBook};

/// The stored job. `tracked` is false once the monitor stopped tracking it:
/// someone untracked it (the item is then a marker that keeps Bedrock's events
/// from tracking it again), or Bedrock stopped knowing it (`gone`).
/// A finished job's `estimatedCost` is priced with today's `prices`.
pub fn job(job: &StoredJob, now: chrono::DateTime<chrono::Utc>, prices: &PriceBook) -> Value {
    let s = &job.snapshot;
    let tracking = job.tracking();
    let pending: Vec<Value> = {
        let mut outbox: Vec<_> = job.outbox.iter().collect();
        outbox.sort_by_key(|p| p.transition.version);
        outbox
            .into_iter()
            .map(|p| {
                json!({
                    "transitionId": p.transition.id,
                    "event": p.transition.kind,
                    "status": p.transition.job.status,
                    "previousStatus": p.transition.previous,
                    // The job topic's, as before destinations; each
                    // destination's own under `destinations`.
                    "attempts": p.delivery(crate::domain::TOPIC).attempts,
                    "lastError": p.delivery(crate::domain::TOPIC).last_error,
                    "destinations": p.deliveries.iter().map(|(d, s)| (d.clone(), json!({
                        "delivered": s.done,
                        "attempts": s.attempts,
                        "lastError": s.last_error,
                    }))).collect::<serde_json::Map<String, Value>>(),
                    "claimedUntil": p.claimed_until,
                })
            })
            .collect()
    };
    let mut out = json!({
        "jobArn": s.job_arn,
        "account": s.job_arn.account(),
        "tracked": matches!(tracking, Tracking::Active | Tracking::Finished),
        "tracking": match tracking {
            Tracking::Active => "active",
            Tracking::Finished => "finished",
            Tracking::Gone => "gone",
            Tracking::Untracked => "untracked",
        },
        "active": job.active,
        "gone": job.gone,
        "untrackedAt": job.untracked_at,
        "jobName": s.job_name,
        "modelId": s.model_id,
        "status": s.status,
        "message": s.message,
        "submitTime": s.submit_time,
        "lastModifiedTime": s.last_modified_time,
        "endTime": s.end_time,
        "records": s.records,
        "inputS3Uri": s.input_s3_uri,
        "outputS3Uri": s.output_s3_uri,
        "jobExpirationTime": s.job_expiration_time,
        "version": job.version,
        "warningsSent": job.warned,
        "processedUnchangedSince": job.progress.map(|p| p.since),
        "labels": job.labels,
        "notFoundCount": job.not_found_count,
        "pendingNotifications": job.outbox.len(),
        "pending": pending,
        "undeliverable": job.undeliverable,
        "history": job.history,
        // Which routes (the stack's Slack channel, teams' routes) each
        // notification went to, oldest first: one entry per transition,
        // every route that accepted it over its deliveries.
        "routedTo": routed_to(&job.routed),
    });
    // Absent, not null or zero, without two readings of a moving count or
    // once the estimate is behind us.
    if let Some(eta) = job.eta(now) {
        out["eta"] = json!(iso(eta));
    }
    prices::annotate(&mut out, prices.costing(s, job.tokens).as_ref(), &s.status);
    if let Some(e) = &job.record_errors {
        out["recordErrors"] = super::notification::record_errors_json(e);
    }
    out
}

fn routed_to(routed: &[crate::domain::Routed]) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for r in routed {
        match out.iter_mut().find(|(id, _)| *id == r.transition_id) {
            Some((_, entry)) => {
                if let Some(list) = entry["routes"].as_array_mut() {
                    for name in &r.routes {
                        if !list.iter().any(|v| v == name) {
                            list.push(json!(name));
                        }
                    }
                }
            }
            None => out.push((
                r.transition_id.clone(),
                json!({
                    "transitionId": r.transition_id,
                    "event": r.event,
                    "status": r.status,
                    "routes": r.routes,
                    "at": iso(r.at),
                }),
            )),
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

fn iso(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One job of `list`'s answer: `records` and `eta` only when known.
pub fn listed(job: &StoredJob, now: chrono::DateTime<chrono::Utc>) -> Value {
    let s = &job.snapshot;
    let mut out = json!({
        "jobArn": s.job_arn,
        "account": s.job_arn.account(),
        "jobName": s.job_name,
        "status": s.status,
        "submitTime": s.submit_time.map(iso),
        "lastModifiedTime": s.last_modified_time.map(iso),
        "labels": job.labels,
    });
    if let Some(r) = s.records.filter(|r| !r.is_empty()) {
        out["records"] = json!(r);
    }
    if let Some(eta) = job.eta(now) {
        out["eta"] = json!(iso(eta));
    }
    out
}

/// One ended job of `list`'s answer, from the index of ends: `records` when
/// known, when its end was recorded, and its `estimatedCost`.
pub fn listed_ended(job: &EndedJob, prices: &PriceBook) -> Value {
    let mut out = json!({
        "jobArn": job.job_arn,
        "account": job.job_arn.account(),
        "jobName": job.job_name,
        "status": job.status,
        "submitTime": job.submit_time.map(iso),
        "lastModifiedTime": job.last_modified_time.map(iso),
        "endedAt": iso(job.ended_at),
        "labels": job.labels,
    });
    if let Some(r) = job.records.filter(|r| !r.is_empty()) {
        out["records"] = json!(r);
    }
    if job.gone {
        out["gone"] = json!(true);
    }
    let cost = job
        .tokens
        .map(|t| prices.costing_of(job.model_id.as_deref(), job.job_arn.region(), t));
    prices::annotate(&mut out, cost.as_ref(), &job.status);
    out
}

/// A job the table has no item for.
pub fn not_tracked(arn: &JobArn) -> Value {
    json!({"jobArn": arn, "tracked": false})
}

/// A job that cannot be described: a bad reference, or an unreadable item.
pub fn error(job: &str, kind: &str, error: &str) -> Value {
    json!({"jobArn": job, "tracked": false, "errorKind": kind, "error": error})
}
