//! Rendering the digest into one SNS message, in the same forms as every
//! notification: email text, machine JSON, Amazon Q Developer (Chatbot).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::notification::{Rendered, SCHEMA_VERSION, escape_slack, truncate};
use crate::digest::{Digest, Ended, Running};
use crate::domain::{RecordCounts, eta_text};

/// The `event` attribute of a digest.
pub const DIGEST_EVENT: &str = "digest";

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn name(job_name: Option<&str>, arn: &crate::domain::JobArn) -> String {
    job_name.map_or_else(|| arn.job_id().to_owned(), str::to_owned)
}

fn records_text(r: &RecordCounts) -> String {
    let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
    format!(
        "{} of {} records processed, {} failed",
        n(r.processed),
        n(r.total),
        n(r.error)
    )
}

fn ended_outcome(e: &Ended) -> String {
    let mut s = format!("{} at {}", e.status, iso(e.ended_at));
    if let Some(r) = &e.records {
        s.push_str(&format!(", {}", records_text(r)));
    }
    if let Some(t) = e.tokens {
        s.push_str(&format!(
            ", {} input and {} output tokens",
            t.input, t.output
        ));
    }
    s
}

fn running_line(r: &Running, now: DateTime<Utc>) -> String {
    let mut s = format!("{}: {}", name(r.job_name.as_deref(), &r.job_arn), r.status);
    if let Some(rec) = &r.records {
        s.push_str(&format!(", {}", records_text(rec)));
    }
    if let Some(eta) = r.eta {
        s.push_str(&format!(
            ", {} (ends about {})",
            eta_text(eta, now),
            iso(eta)
        ));
    }
    s
}

pub fn subject(d: &Digest) -> String {
    if d.is_quiet() {
        return "[info] Bedrock batch digest: all quiet".to_owned();
    }
    let mut parts = vec![
        format!("{} running", d.running_total),
        format!("{} ended", d.ended_total),
    ];
    if d.warnings_total > 0 {
        parts.push(format!("{} warned", d.warnings_total));
    }
    if d.failed_invocations > 0 {
        parts.push(format!("{} failed runs", d.failed_invocations));
    }
    if d.set_aside_total > 0 {
        parts.push(format!("{} set aside", d.set_aside_total));
    }
    format!("[info] Bedrock batch digest: {}", parts.join(", "))
}

fn more(shown: usize, total: usize) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "... and {} more (use {{\"list\": {{}}}} to see them all)",
            total - shown
        )
    })
}

/// The `email` / `default` body.
pub fn plain_text(d: &Digest) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let window = if d.first {
        format!(
            "the last {} hours (the first digest)",
            crate::digest::FIRST_DIGEST_WINDOW.num_hours()
        )
    } else {
        format!("the previous digest at {}", iso(d.since))
    };
    line(format!(
        "Bedrock batch monitor digest at {}, covering what happened since {window}.",
        iso(d.at)
    ));
    line(String::new());
    if d.is_quiet() {
        line(format!(
            "All quiet: no job is running, none ended, and the monitor ran {} polls without a failed invocation. This digest is sent even so, so that silence means the monitor is alive.",
            d.polls
        ));
        line(String::new());
    }
    line(format!("Running ({}):", d.running_total));
    if d.running.is_empty() {
        line("- none".into());
    }
    for r in &d.running {
        line(format!("- {}", running_line(r, d.at)));
        line(format!("  {}", r.job_arn));
    }
    if let Some(m) = more(d.running.len(), d.running_total) {
        line(m);
    }
    line(String::new());
    line(format!("Ended since the last digest ({}):", d.ended_total));
    if d.ended.is_empty() {
        line("- none".into());
    }
    for e in &d.ended {
        line(format!(
            "- {}: {}",
            name(e.job_name.as_deref(), &e.job_arn),
            ended_outcome(e)
        ));
        if let Some(m) = &e.message {
            let clean: String = truncate(m, 500)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            line(format!("  Reason from Bedrock: {clean}"));
        }
        line(format!("  {}", e.job_arn));
    }
    if let Some(m) = more(d.ended.len(), d.ended_total) {
        line(m);
    }
    line(String::new());
    line(format!("Warnings still open ({}):", d.warnings_total));
    let mut any = false;
    for r in d.open_warnings() {
        any = true;
        let kinds: Vec<&str> = r.warnings.iter().map(|k| k.as_str()).collect();
        line(format!(
            "- {}: {} ({})",
            name(r.job_name.as_deref(), &r.job_arn),
            kinds.join(", "),
            r.status
        ));
    }
    if !any {
        line("- none".into());
    }
    line(String::new());
    line("The monitor since the last digest:".into());
    line(format!("- polls run: {}", d.polls));
    line(format!("- failed invocations: {}", d.failed_invocations));
    line(format!("- notifications set aside: {}", d.set_aside_total));
    for s in &d.set_aside {
        line(format!(
            "  {} ({}, {}): see describe for SNS's words",
            s.transition_id, s.status, s.job_arn
        ));
    }
    line(String::new());
    line(format!(
        "Digest id {}. To stop digests, set the subscription's filter policy to {{\"event\": [{{\"anything-but\": \"digest\"}}]}} (see docs/notifications.md).",
        d.id
    ));
    out
}

/// A running job: `records` and `eta` only when known (absent, not null).
fn running_json(r: &Running) -> Value {
    let mut out = json!({
        "jobArn": r.job_arn,
        "jobName": r.job_name,
        "status": r.status,
        "submitTime": r.submit_time.map(iso),
        "labels": r.labels,
        "warnings": r.warnings,
    });
    if let Some(rec) = r.records {
        out["records"] = json!(rec);
    }
    if let Some(eta) = r.eta {
        out["eta"] = json!(iso(eta));
    }
    out
}

/// The `sqs` / `lambda` / `email-json` body.
pub fn machine_json(d: &Digest) -> Value {
    json!({
        "schemaVersion": SCHEMA_VERSION,
        "event": DIGEST_EVENT,
        "transitionId": d.id,
        "digestId": d.id,
        "severity": "info",
        "at": iso(d.at),
        "since": iso(d.since),
        "first": d.first,
        "quiet": d.is_quiet(),
        "running": d.running.iter().map(running_json).collect::<Vec<_>>(),
        "runningTotal": d.running_total,
        "ended": d.ended.iter().map(|e| json!({
            "jobArn": e.job_arn,
            "jobName": e.job_name,
            "status": e.status,
            "endedAt": iso(e.ended_at),
            "message": e.message.as_deref().map(|m| truncate(m, 2_048)),
            "records": e.records,
            "tokens": e.tokens,
            "labels": e.labels,
        })).collect::<Vec<_>>(),
        "endedTotal": d.ended_total,
        "warnings": d.open_warnings().map(|r| json!({
            "jobArn": r.job_arn,
            "jobName": r.job_name,
            "status": r.status,
            "kinds": r.warnings,
        })).collect::<Vec<_>>(),
        "warningsTotal": d.warnings_total,
        "health": {
            "polls": d.polls,
            "failedInvocations": d.failed_invocations,
            "setAside": d.set_aside_total,
            "setAsideNotifications": d.set_aside.iter().map(|s| json!({
                "jobArn": s.job_arn,
                "transitionId": s.transition_id,
                "status": s.status,
                "setAsideAt": iso(s.at),
            })).collect::<Vec<_>>(),
        },
    })
}

/// The `https` body: an Amazon Q Developer custom notification.
pub fn chatbot_json(d: &Digest) -> Value {
    let mut desc = String::new();
    if d.is_quiet() {
        desc.push_str(&format!(
            "*All quiet:* nothing running or ended; {} polls, no failed invocation.\n",
            d.polls
        ));
    }
    desc.push_str(&format!("*Running ({}):*\n", d.running_total));
    for r in d.running.iter().take(10) {
        desc.push_str(&format!("• {}\n", escape_slack(&running_line(r, d.at))));
    }
    desc.push_str(&format!("*Ended ({}):*\n", d.ended_total));
    for e in d.ended.iter().take(10) {
        desc.push_str(&format!(
            "• {}: {}\n",
            escape_slack(&name(e.job_name.as_deref(), &e.job_arn)),
            escape_slack(&ended_outcome(e))
        ));
    }
    if d.warnings_total > 0 {
        desc.push_str(&format!("*Warnings still open:* {}\n", d.warnings_total));
    }
    desc.push_str(&format!(
        "*Monitor:* {} polls, {} failed invocations, {} notifications set aside",
        d.polls, d.failed_invocations, d.set_aside_total
    ));
    let mut steps = Vec::new();
    if d.running_total > 10 || d.ended_total > 10 {
        steps.push(
            "Invoke the function with {\"list\": {\"ended\": true}} for every job".to_owned(),
        );
    }
    if d.failed_invocations > 0 || d.set_aside_total > 0 {
        steps.push("Check the operations alarms and the runbook (docs/operating.md)".to_owned());
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": d.id,
        "content": {
            "textType": "client-markdown",
            "title": format!(":information_source: {}", subject(d).trim_start_matches("[info] ")),
            "description": truncate(&desc, 3_500),
            "nextSteps": steps,
            "keywords": ["digest"],
        },
        "metadata": {
            "threadId": "bedrock-batch-monitor-digest",
            "summary": subject(d),
            "eventType": "Digest",
            "additionalContext": {
                "digestId": d.id,
                "stoppable": "false",
            },
        },
    })
}

pub fn render(d: &Digest) -> Rendered {
    Rendered::of_forms(
        subject(d),
        &plain_text(d),
        &machine_json(d),
        &chatbot_json(d),
        vec![
            ("event".to_owned(), DIGEST_EVENT.to_owned()),
            ("severity".to_owned(), "info".to_owned()),
            ("transitionId".to_owned(), d.id.clone()),
        ],
    )
}
