//! Rendering the digest into one SNS message, in the same forms as every
//! notification: email text, machine JSON, Amazon Q Developer (Chatbot).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::notification::{
    MESSAGE_MAX, Rendered, SCHEMA_VERSION, escape_slack, reason_line, record_errors_json, truncate,
};
use crate::digest::{AccountCounts, Digest, Ended, Running, Spend};
use crate::domain::{JobArn, RecordCounts, eta_text};
use crate::prices::{self, BASIS};

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

/// An ended job's JSON with its `recordErrors`, present only when read.
fn with_record_errors(mut v: Value, e: &Ended) -> Value {
    if let Some(r) = &e.record_errors {
        v["recordErrors"] = record_errors_json(r);
    }
    v
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
    match &e.cost {
        Some(prices::Costing::Estimated(est)) => {
            s.push_str(&format!(", about {}", prices::dollars(est.cents)));
            if prices::partial(&e.status) {
                s.push_str(" (the tokens its manifest reports)");
            }
        }
        Some(prices::Costing::NoPrice { .. }) => s.push_str(", no price for its model"),
        Some(prices::Costing::NoTokens { .. }) | None => {}
    }
    if let Some(r) = &e.record_errors {
        s.push_str(&format!("; failures {}", r.summary()));
        let top: Vec<String> = r.top.iter().map(reason_line).collect();
        if !top.is_empty() {
            s.push_str(&format!(" ({})", top.join("; ")));
        }
    }
    s
}

/// The estimated spend of the ended jobs, and how many have no figure.
fn spend_text(s: &Spend) -> String {
    let jobs = |n: usize| {
        if n == 1 {
            "job".to_owned()
        } else {
            "jobs".to_owned()
        }
    };
    // Without a single figure, no "$0.00": say there is none, and why.
    let mut out = if s.priced == 0 {
        "none".to_owned()
    } else {
        format!(
            "{} for {} ended {} ({BASIS})",
            prices::dollars(s.cents),
            s.priced,
            jobs(s.priced)
        )
    };
    // "1 ended job ... its", "2 ended jobs ... their".
    let mut without = |n: usize, what: &str| {
        if n > 0 {
            let their = if n == 1 { "its" } else { "their" };
            out.push_str(&format!(
                "; {n} ended {} {}",
                jobs(n),
                what.replace("{their}", their)
            ));
        }
    };
    without(
        s.no_price,
        "had no price for {their} model (the setting PRICES gives one)",
    );
    without(
        s.no_tokens,
        "without token totals ({their} output bucket is not in OUTPUT_BUCKETS, or no manifest was written)",
    );
    out
}

fn spend_json(s: &Spend) -> Value {
    json!({
        "usd": s.cents as f64 / 100.0,
        "jobs": s.priced,
        "noPrice": s.no_price,
        "noTokens": s.no_tokens,
        "basis": BASIS,
    })
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

/// "2 running, 1 ended, 1 warned": one account's counts.
fn account_counts_text(c: &AccountCounts) -> String {
    let mut s = format!("{} running, {} ended", c.running, c.ended);
    if c.warnings > 0 {
        s.push_str(&format!(", {} warned", c.warnings));
    }
    s
}

/// `items` as a form lists them: grouped by account (each account's in the
/// digest's own order) when the digest covers more than one, as they are
/// otherwise.
fn in_account_order<'a, T>(
    d: &Digest,
    items: impl Iterator<Item = &'a T>,
    arn: impl Fn(&T) -> &JobArn,
) -> Vec<&'a T> {
    let mut out: Vec<&T> = items.collect();
    if d.grouped_by_account() {
        // Stable: within an account the digest's order holds.
        out.sort_by(|a, b| arn(a).account().cmp(arn(b).account()));
    }
    out
}

/// "Account 111122223333 (2 running)": the heading before `arn`'s job when
/// it starts an account's group, in a digest of more than one account, with
/// the account's `count` of `what` (all of them, shown or not).
fn account_heading(
    d: &Digest,
    current: &mut Option<String>,
    arn: &JobArn,
    what: &str,
    count: fn(&AccountCounts) -> usize,
) -> Option<String> {
    if !d.grouped_by_account() || current.as_deref() == Some(arn.account()) {
        return None;
    }
    *current = Some(arn.account().to_owned());
    let n = d.accounts.get(arn.account()).map_or(0, count);
    Some(format!("Account {} ({n} {what})", arn.account()))
}

/// The digest's severity: `warning` when the monitor is not polling as it
/// should (the subject and the `severity` attribute say so), else `info`.
pub fn severity(d: &Digest) -> &'static str {
    if d.polling_warning().is_some() {
        "warning"
    } else {
        "info"
    }
}

/// What the digest counts, for its subject: "not polling" first when so.
fn counts(d: &Digest) -> String {
    if d.is_quiet() {
        return "all quiet".to_owned();
    }
    let mut parts = Vec::new();
    if d.polling_warning().is_some() {
        parts.push("not polling".to_owned());
    }
    parts.push(format!("{} running", d.running_total));
    parts.push(format!("{} ended", d.ended_total));
    if d.warnings_total > 0 {
        parts.push(format!("{} warned", d.warnings_total));
    }
    if d.failed_invocations > 0 {
        parts.push(format!("{} failed runs", d.failed_invocations));
    }
    if d.destination_failures > 0 {
        parts.push(format!("{} failed deliveries", d.destination_failures));
    }
    if d.member_role_failures > 0 {
        parts.push(format!("{} member reads failed", d.member_role_failures));
    }
    if d.set_aside_total > 0 {
        parts.push(format!("{} set aside", d.set_aside_total));
    }
    if !d.unusable_settings.is_empty() {
        let n = d.unusable_settings.len();
        parts.push(format!(
            "{n} {} unusable",
            if n == 1 { "setting" } else { "settings" }
        ));
    }
    parts.join(", ")
}

/// The subject without an environment: the Slack title and summary.
pub fn subject(d: &Digest) -> String {
    format!("[{}] Bedrock batch digest: {}", severity(d), counts(d))
}

/// The subject as the monitor of environment `env` sends it. Too long, the
/// noun is shortened, then the environment (to 8 characters at least): the
/// counts are never cut while anything else can be.
pub fn subject_in(d: &Digest, env: &str) -> String {
    let env = crate::render::notification::ascii_subject(env);
    let (severity, counts) = (severity(d), counts(d));
    // A route's digest says whose it is.
    let of = d
        .route
        .as_ref()
        .map(|r| format!(" ({})", r.name))
        .unwrap_or_default();
    let form = |noun: &str, env: &str| format!("[{severity}] [{env}] {noun}{of}: {counts}");
    let full = form("Bedrock batch digest", &env);
    if full.len() <= crate::render::notification::SUBJECT_MAX {
        return full;
    }
    let short = form("digest", &env);
    let over = short
        .len()
        .saturating_sub(crate::render::notification::SUBJECT_MAX);
    if over == 0 {
        return short;
    }
    let env = crate::render::notification::shorten(&env, env.len().saturating_sub(over).max(8));
    crate::render::notification::ascii_subject(&form("digest", &env))
}

/// How much of a digest's lists a rendering shows: at most `list_max` jobs
/// of each list, Bedrock's messages cut to `text_max` bytes. [`render`]
/// takes the first of [`SHAPES`] whose message fits SNS's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub list_max: usize,
    pub text_max: usize,
    /// The accounts whose counts are given, at most (a digest of more than
    /// one account): a few hundred bytes each over the forms.
    pub accounts_max: usize,
}

/// From everything the digest holds to its counts alone (and the counts of
/// the first few accounts).
pub const SHAPES: [Shape; 6] = [
    Shape {
        list_max: crate::digest::DIGEST_LIST_MAX,
        text_max: 2_048,
        accounts_max: 200,
    },
    Shape {
        list_max: crate::digest::DIGEST_LIST_MAX,
        text_max: 500,
        accounts_max: 100,
    },
    Shape {
        list_max: 25,
        text_max: 300,
        accounts_max: 50,
    },
    Shape {
        list_max: 10,
        text_max: 200,
        accounts_max: 25,
    },
    Shape {
        list_max: 5,
        text_max: 0,
        accounts_max: 10,
    },
    Shape {
        list_max: 0,
        text_max: 0,
        accounts_max: 10,
    },
];

const FULL: Shape = SHAPES[0];

fn more(shown: usize, total: usize, what: &str, command: &str) -> Option<String> {
    (total > shown).then(|| {
        format!(
            "... and {} more {what}: invoke the function with {command} to see them all",
            total - shown
        )
    })
}

/// "and 143 more Failed, 12 more Completed": the ends a shape leaves out, by status.
fn more_ended(d: &Digest, shown: &[Ended]) -> Option<String> {
    let mut left = d.ended_by_status.clone();
    for e in shown {
        if let Some(n) = left.get_mut(e.status.as_str()) {
            *n = n.saturating_sub(1);
        }
    }
    let parts: Vec<String> = left
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(status, n)| format!("{n} more {status}"))
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "... and {}: invoke the function with {{\"list\": {{\"ended\": true}}}} to see them all",
            parts.join(", ")
        )
    })
}

/// The `email` / `default` body, whole.
pub fn plain_text(d: &Digest) -> String {
    plain_text_shaped(d, FULL)
}

fn plain_text_shaped(d: &Digest, shape: Shape) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let first = if d.first { " (the first digest)" } else { "" };
    line(format!(
        "Bedrock batch monitor digest at {}{first}: ends recorded from {} to {}; ends since then are in the next digest.",
        iso(d.at),
        iso(d.since),
        iso(d.until)
    ));
    line(String::new());
    if let Some(w) = d.polling_warning() {
        line(format!("Warning: {w}."));
        line(String::new());
    }
    if d.is_quiet() {
        line(format!(
            "All quiet: no job is running, none ended, and the monitor ran {} polls without a failed invocation. This digest is sent even so, so that silence means the monitor is alive.",
            d.polls
        ));
        line(String::new());
    }
    if d.grouped_by_account() {
        line(format!("By account ({} accounts):", d.accounts.len()));
        for (account, c) in d.accounts.iter().take(shape.accounts_max) {
            line(format!("- {account}: {}", account_counts_text(c)));
        }
        if d.accounts.len() > shape.accounts_max {
            line(format!(
                "... and {} more accounts: invoke the function with {{\"list\": {{\"accounts\": [\"<account id>\"]}}}} to see an account's jobs",
                d.accounts.len() - shape.accounts_max
            ));
        }
        line(String::new());
    }
    line(format!("Running ({}):", d.running_total));
    if d.running.is_empty() {
        line("- none".into());
    }
    let running = &d.running[..d.running.len().min(shape.list_max)];
    let mut account = None;
    for r in in_account_order(d, running.iter(), |r| &r.job_arn) {
        if let Some(h) = account_heading(d, &mut account, &r.job_arn, "running", |c| c.running) {
            line(format!("{h}:"));
        }
        line(format!("- {}", running_line(r, d.at)));
        line(format!("  {}", r.job_arn));
    }
    if let Some(m) = more(running.len(), d.running_total, "running", "{\"list\": {}}") {
        line(m);
    }
    line(String::new());
    line(format!("Ended since the last digest ({}):", d.ended_total));
    if d.ended.is_empty() {
        line("- none".into());
    }
    let ended = &d.ended[..d.ended.len().min(shape.list_max)];
    let mut account = None;
    for e in in_account_order(d, ended.iter(), |e| &e.job_arn) {
        if let Some(h) = account_heading(d, &mut account, &e.job_arn, "ended", |c| c.ended) {
            line(format!("{h}:"));
        }
        line(format!(
            "- {}: {}",
            name(e.job_name.as_deref(), &e.job_arn),
            ended_outcome(e)
        ));
        if let Some(m) = e.message.as_deref().filter(|_| shape.text_max > 0) {
            let clean: String = truncate(m, shape.text_max.min(500))
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            line(format!("  Reason from Bedrock: {clean}"));
        }
        line(format!("  {}", e.job_arn));
    }
    if let Some(m) = more_ended(d, ended) {
        line(m);
    }
    if d.ended_total > 0 {
        line(format!("Estimated spend: {}", spend_text(&d.spend)));
    }
    line(String::new());
    line(format!("Warnings still open ({}):", d.warnings_total));
    let mut any = false;
    let mut account = None;
    for r in in_account_order(d, d.open_warnings().take(shape.list_max), |r| &r.job_arn) {
        any = true;
        if let Some(h) = account_heading(d, &mut account, &r.job_arn, "warned", |c| c.warnings) {
            line(format!("{h}:"));
        }
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
    if !d.capacity.is_empty() {
        line(String::new());
        line("Batch quotas at or near their limit:".into());
        for line_text in capacity_lines(d) {
            line(format!("- {line_text}"));
        }
    }
    line(String::new());
    line("The monitor since the last digest:".into());
    line(format!("- polls run: {}", d.polls));
    if let Some(expected) = d.expected_polls {
        line(format!("- polls the schedule implies: about {expected}"));
    }
    line(format!("- failed invocations: {}", d.failed_invocations));
    if d.destination_failures > 0 {
        line(format!(
            "- publishes that failed at another destination (the Slack topic): {} (see each poll's errors, destination)",
            d.destination_failures
        ));
    }
    if d.member_role_failures > 0 {
        line(format!(
            "- reads of member accounts whose role could not be assumed: {} (each poll's errors of kind MemberRoleUnavailable name the role; see the runbook, MemberRoleAlarm)",
            d.member_role_failures
        ));
    }
    line(format!("- notifications set aside: {}", d.set_aside_total));
    for s in d.set_aside.iter().take(shape.list_max) {
        line(format!(
            "  {} ({}, {}): see describe for SNS's words",
            s.transition_id, s.status, s.job_arn
        ));
    }
    for w in &d.unusable_settings {
        line(format!(
            "- setting {} cannot be used, so {}: {}",
            w.setting,
            w.instead,
            truncate(&w.error, 300)
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
/// One line per model and region at or near its batch quota: "20 of 20
/// slots for Claude 3 Haiku in us-east-1 in use (full)", with the account
/// when the digest covers more than one.
fn capacity_lines(d: &Digest) -> Vec<String> {
    d.capacity
        .iter()
        .map(|(account, q)| {
            let whose = if d.accounts.len() > 1 {
                format!(" (account {account})")
            } else {
                String::new()
            };
            format!(
                "{} of {} slots for {} in {}{whose} in use{}",
                q.used,
                q.limit,
                q.model,
                q.region,
                if q.is_full() {
                    ": full, new jobs wait"
                } else {
                    ""
                }
            )
        })
        .collect()
}

fn running_json(r: &Running) -> Value {
    let mut out = json!({
        "jobArn": r.job_arn,
        "account": r.job_arn.account(),
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

/// The `sqs` / `lambda` / `email-json` body, whole.
pub fn machine_json(d: &Digest) -> Value {
    machine_json_shaped(d, FULL)
}

/// The machine JSON with `shape`'s lists: the totals and `endedByStatus`
/// count every job, shown or not.
fn machine_json_shaped(d: &Digest, shape: Shape) -> Value {
    let cut = |m: &str| (shape.text_max > 0).then(|| truncate(m, shape.text_max));
    let mut out = json!({
        "schemaVersion": SCHEMA_VERSION,
        "event": DIGEST_EVENT,
        "transitionId": d.id,
        "digestId": d.id,
        "severity": "info",
        "at": iso(d.at),
        "since": iso(d.since),
        "first": d.first,
        "quiet": d.is_quiet(),
        "until": iso(d.until),
        "running": d.running.iter().take(shape.list_max).map(running_json).collect::<Vec<_>>(),
        "runningTotal": d.running_total,
        "ended": d.ended.iter().take(shape.list_max).map(|e| with_record_errors(json!({
            "jobArn": e.job_arn,
            "account": e.job_arn.account(),
            "jobName": e.job_name,
            "status": e.status,
            "endedAt": iso(e.ended_at),
            "message": e.message.as_deref().and_then(cut),
            "records": e.records,
            "tokens": e.tokens,
            "estimatedCost": e.cost.as_ref().map_or(Value::Null, |c| c.json(&e.status)),
            "labels": e.labels,
        }), e)).collect::<Vec<_>>(),
        "estimatedSpend": spend_json(&d.spend),
        "endedTotal": d.ended_total,
        "endedByStatus": d.ended_by_status,
        "warnings": d.open_warnings().take(shape.list_max).map(|r| json!({
            "jobArn": r.job_arn,
            "account": r.job_arn.account(),
            "jobName": r.job_name,
            "status": r.status,
            "kinds": r.warnings,
        })).collect::<Vec<_>>(),
        "warningsTotal": d.warnings_total,
        "byAccount": d.accounts.iter().take(shape.accounts_max).map(|(account, c)| (account.clone(), json!({
            "running": c.running,
            "ended": c.ended,
            "warnings": c.warnings,
        }))).collect::<serde_json::Map<String, Value>>(),
        "accountsTotal": d.accounts.len(),
        "health": {
            "polls": d.polls,
            "expectedPolls": d.expected_polls,
            "pollingWarning": d.polling_warning(),
            "failedInvocations": d.failed_invocations,
            "destinationFailures": d.destination_failures,
            "memberRoleFailures": d.member_role_failures,
            "setAside": d.set_aside_total,
            "unusableSettings": d.unusable_settings,
            "setAsideNotifications": d.set_aside.iter().take(shape.list_max).map(|s| json!({
                "jobArn": s.job_arn,
                "transitionId": s.transition_id,
                "status": s.status,
                "setAsideAt": iso(s.at),
            })).collect::<Vec<_>>(),
        },
    });
    // Only when a model is at or near its batch quota.
    if !d.capacity.is_empty() {
        out["capacity"] = json!(
            d.capacity
                .iter()
                .map(|(account, q)| json!({
                    "account": account,
                    "used": q.used,
                    "limit": q.limit,
                    "model": q.model,
                    "region": q.region,
                    "full": q.is_full(),
                }))
                .collect::<Vec<_>>()
        );
    }
    out
}

/// The `https` body: an Amazon Q Developer custom notification, whole.
pub fn chatbot_json(d: &Digest) -> Value {
    chatbot_json_shaped(d, FULL)
}

fn chatbot_json_shaped(d: &Digest, shape: Shape) -> Value {
    let shown = shape.list_max.min(10);
    let mut desc = String::new();
    if let Some(w) = d.polling_warning() {
        desc.push_str(&format!("*Warning:* {}\n", escape_slack(&w)));
    }
    if d.is_quiet() {
        desc.push_str(&format!(
            "*All quiet:* nothing running or ended; {} polls, no failed invocation.\n",
            d.polls
        ));
    }
    if d.grouped_by_account() {
        let accounts = shape.accounts_max.min(10);
        let mut parts: Vec<String> = d
            .accounts
            .iter()
            .take(accounts)
            .map(|(account, c)| format!("{account}: {}", account_counts_text(c)))
            .collect();
        if d.accounts.len() > accounts {
            parts.push(format!("{} more accounts", d.accounts.len() - accounts));
        }
        desc.push_str(&format!(
            "*By account ({}):* {}\n",
            d.accounts.len(),
            parts.join("; ")
        ));
    }
    desc.push_str(&format!("*Running ({}):*\n", d.running_total));
    let mut account = None;
    for r in in_account_order(d, d.running.iter().take(shown), |r| &r.job_arn) {
        if let Some(h) = account_heading(d, &mut account, &r.job_arn, "running", |c| c.running) {
            desc.push_str(&format!("_{h}_\n"));
        }
        desc.push_str(&format!("• {}\n", escape_slack(&running_line(r, d.at))));
    }
    desc.push_str(&format!("*Ended ({}):*\n", d.ended_total));
    let mut account = None;
    for e in in_account_order(d, d.ended.iter().take(shown), |e| &e.job_arn) {
        if let Some(h) = account_heading(d, &mut account, &e.job_arn, "ended", |c| c.ended) {
            desc.push_str(&format!("_{h}_\n"));
        }
        desc.push_str(&format!(
            "• {}: {}\n",
            escape_slack(&name(e.job_name.as_deref(), &e.job_arn)),
            escape_slack(&ended_outcome(e))
        ));
    }
    if d.ended_total > 0 {
        desc.push_str(&format!(
            "*Estimated spend:* {}\n",
            escape_slack(&spend_text(&d.spend))
        ));
    }
    if d.warnings_total > 0 {
        desc.push_str(&format!("*Warnings still open:* {}\n", d.warnings_total));
    }
    for c in capacity_lines(d) {
        desc.push_str(&format!("*Batch quota:* {}\n", escape_slack(&c)));
    }
    desc.push_str(&format!(
        "*Monitor:* {} polls, {} failed invocations, {} notifications set aside",
        d.polls, d.failed_invocations, d.set_aside_total
    ));
    if d.destination_failures > 0 {
        desc.push_str(&format!(
            ", {} failed deliveries to the Slack topic",
            d.destination_failures
        ));
    }
    if d.member_role_failures > 0 {
        desc.push_str(&format!(
            ", {} reads of member accounts whose role could not be assumed",
            d.member_role_failures
        ));
    }
    for w in &d.unusable_settings {
        desc.push_str(&format!(
            "\n*Setting {} cannot be used:* {}",
            escape_slack(w.setting),
            escape_slack(w.instead)
        ));
    }
    let mut steps = Vec::new();
    if d.running_total > shown || d.ended_total > shown {
        steps.push(
            "Invoke the function with {\"list\": {\"ended\": true}} for every job".to_owned(),
        );
    }
    if d.failed_invocations > 0
        || d.set_aside_total > 0
        || d.destination_failures > 0
        || d.member_role_failures > 0
        || !d.unusable_settings.is_empty()
        || d.polling_warning().is_some()
    {
        steps.push("Check the operations alarms and the runbook (docs/operating.md)".to_owned());
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": d.id,
        "content": {
            "textType": "client-markdown",
            "title": format!(
                "{} {}",
                if severity(d) == "warning" { ":warning:" } else { ":information_source:" },
                subject(d).split_once("] ").map_or("", |(_, rest)| rest)
            ),
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

/// The digest as one SNS message that fits SNS's limit in every form
/// (guarantee 9): the first of [`SHAPES`] that fits, down to the counts
/// alone, so that the worst day's digest (hundreds of ends, each with
/// Bedrock's 2,048 characters) still goes out, its lists cut short with
/// how many of each status were left out.
pub fn render(d: &Digest, env: &str) -> Rendered {
    let mut last = None;
    for shape in SHAPES {
        let r = render_shaped(d, shape, env);
        if r.size() <= MESSAGE_MAX {
            return r;
        }
        last = Some(r);
    }
    // The counts alone are a few KB: this is never reached.
    last.unwrap_or_else(|| render_shaped(d, SHAPES[SHAPES.len() - 1], env))
}

/// The digest rendered with `shape`, whatever its size.
pub fn render_shaped(d: &Digest, shape: Shape, env: &str) -> Rendered {
    let mut chatbot = chatbot_json_shaped(d, shape);
    // Each monitor's digests in a Slack thread of their own: two stacks posting
    // to one channel must not cover each other's silence.
    // A route's digest in a thread of its own too: a team's channel may also
    // have the monitor's.
    let mut machine = machine_json_shaped(d, shape);
    let mut attributes = vec![
        ("event".to_owned(), DIGEST_EVENT.to_owned()),
        ("severity".to_owned(), severity(d).to_owned()),
        ("transitionId".to_owned(), d.id.clone()),
    ];
    match &d.route {
        None => {
            chatbot["metadata"]["threadId"] = json!(format!("bedrock-batch-monitor-digest-{env}"));
        }
        Some(route) => {
            chatbot["metadata"]["threadId"] =
                json!(format!("bedrock-batch-monitor-digest-{env}-{}", route.name));
            if let Some(context) = chatbot["metadata"]["additionalContext"].as_object_mut() {
                context.insert("route".to_owned(), json!(route.name));
            }
            machine["route"] = json!(route.name);
            attributes.extend(
                route
                    .attributes
                    .iter()
                    .filter(|(k, _)| !attributes.iter().any(|(a, _)| a == k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
    }
    Rendered::stamped(
        env,
        subject_in(d, env),
        plain_text_shaped(d, shape),
        machine,
        chatbot,
        attributes,
    )
}
