//! Rendering a transition into one SNS message: a subject, a per-protocol body
//! (`MessageStructure=json`) and the message attributes filter policies match on.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::domain::{
    ErrorReason, JobStatus, RecordCounts, RecordErrors, Severity, Transition, TransitionKind,
};

/// SNS subjects must be ASCII, without control characters, under 100 characters.
pub const SUBJECT_MAX: usize = 99;
/// SNS's whole-message limit is 256 KiB; stay well under it.
pub const MESSAGE_MAX: usize = 250 * 1024;
/// Bedrock's message is at most 2,048 characters; anything beyond this many bytes is cut.
pub const BEDROCK_TEXT_MAX: usize = 8 * 1024;
pub const CUT_MARKER: &str = " [...truncated]";
pub const SCHEMA_VERSION: &str = "1";
/// The Slack title's bound, in bytes: Amazon Q Developer's custom
/// notification schema gives `title` as a string with no documented length
/// (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html);
/// the monitor keeps it to a line or two, as it always has.
pub const TITLE_MAX: usize = 250;
/// A job's name in the Slack title, at most (Bedrock allows 63 characters).
const TITLE_NAME_MAX: usize = 100;

/// What the SNS adapter publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    /// The `MessageStructure=json` document: one body per protocol.
    pub message: String,
    pub attributes: Vec<(String, String)>,
}

/// The message for `t`, as the monitor of environment `env` sends it.
pub fn render(t: &Transition, env: &str) -> Rendered {
    render_as(t, env, None)
}

/// What the Slack channel's Stop job button invokes: the function's `stop`
/// alias ([`crate::config::STOP_ALIAS`]) and its region, written into each
/// custom notification (`stopFn`, `stopRegion`) for the button's command
/// (template.yaml `StopJobAction`). The function stops the job with its
/// account's credentials, so a member account's job has the button too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopVia {
    /// `arn:<partition>:lambda:<region>:<account>:function:<name>:stop`.
    pub function: String,
    pub region: String,
}

impl StopVia {
    /// The alias of function `name` of the monitor whose job topic is
    /// `topic_arn` (the function and its topic are one stack's: same
    /// partition, region and account).
    pub fn of(topic_arn: &str, function_name: &str) -> Option<Self> {
        let parts: Vec<&str> = topic_arn.split(':').collect();
        let [_, partition, _, region, account, ..] = parts.as_slice() else {
            return None;
        };
        Some(Self {
            function: format!(
                "arn:{partition}:lambda:{region}:{account}:function:{function_name}:{}",
                crate::config::STOP_ALIAS
            ),
            region: (*region).to_owned(),
        })
    }
}

/// [`render`], by a monitor whose Slack Stop job button invokes `stop`: the
/// custom notification of a job that can still be stopped names the alias
/// the button invokes. `None`: no button (nothing to invoke).
pub fn render_as(t: &Transition, env: &str, stop: Option<&StopVia>) -> Rendered {
    render_routed(t, env, stop, None)
}

/// [`render_as`], as a route's copy (`route` names it: the stack's
/// Slack channel is `slack`, a team's route its name): the JSON's `route`
/// and Slack's `metadata.additionalContext.route` say which route it came
/// by. The attributes are the same, so a subscription filters it the same.
pub fn render_routed(
    t: &Transition,
    env: &str,
    stop: Option<&StopVia>,
    route: Option<&str>,
) -> Rendered {
    let mut machine = machine_json(t);
    let mut chatbot = chatbot_json_for(t, stop);
    if let Some(route) = route {
        machine["route"] = json!(route);
        if let Some(context) = chatbot["metadata"]["additionalContext"].as_object_mut() {
            context.insert("route".to_owned(), json!(route));
        }
    }
    Rendered::stamped(
        env,
        subject_in(t, Some(env)),
        plain_text(t),
        machine,
        chatbot,
        attributes(t),
    )
}

impl Rendered {
    /// What SNS counts against its message limit: the message and every
    /// attribute's name, type and value ("All parts of the message
    /// attribute, including name, type, and value, are included in the
    /// message size restriction", MessageAttributeValue in the SNS API
    /// reference, https://docs.aws.amazon.com/sns/latest/api/API_MessageAttributeValue.html;
    /// an oversized publish gets `InvalidParameter`,
    /// https://docs.aws.amazon.com/sns/latest/dg/large-message-payloads.html).
    /// The subject is counted too, to be safe.
    pub fn size(&self) -> usize {
        self.message.len()
            + self.subject.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }

    /// One message from its forms, each saying which monitor sent it: the
    /// environment (the stack's `Environment`, `ENVIRONMENT`) starts the Slack
    /// title, ends the text, and is the JSON's
    /// `environment`, an `additionalContext` entry and the message attribute
    /// `environment` that filter policies can match. The subject is given
    /// with it already ([`subject_in`], [`tag_subject`]).
    pub fn stamped(
        env: &str,
        subject: String,
        text: String,
        mut machine: Value,
        mut chatbot: Value,
        mut attributes: Vec<(String, String)>,
    ) -> Self {
        let text = format!("{}\nEnvironment: {env}\n", text.trim_end_matches('\n'));
        machine["environment"] = json!(env);
        if let Some(title) = chatbot["content"]["title"].as_str() {
            let tagged = |env: &str| {
                let tag = format!("[{}]", escape_slack(env));
                match title.split_once(' ') {
                    Some((emoji, rest)) if emoji.starts_with(':') => {
                        format!("{emoji} {tag} {rest}")
                    }
                    _ => format!("{tag} {title}"),
                }
            };
            // Too long, the environment is shortened (to 8 characters at
            // least) before the end, which says what happened, is cut.
            let mut title = tagged(env);
            if title.len() > TITLE_MAX {
                let over = title.len() - TITLE_MAX;
                let keep = env.chars().count().saturating_sub(over).max(8);
                title = tagged(&shorten_chars(env, keep));
            }
            chatbot["content"]["title"] = json!(truncate(&title, TITLE_MAX));
        }
        if let Some(context) = chatbot["metadata"]["additionalContext"].as_object_mut() {
            context.insert("environment".to_owned(), json!(env));
        }
        attributes.push(("environment".to_owned(), env.to_owned()));
        Self::of_forms(subject, &text, &machine, &chatbot, attributes)
    }

    /// One message from its forms: the text for `email` and `default`, the
    /// machine JSON for `sqs`, `lambda` and `email-json`, the Chatbot form
    /// for `https`.
    pub fn of_forms(
        subject: String,
        text: &str,
        machine: &Value,
        chatbot: &Value,
        attributes: Vec<(String, String)>,
    ) -> Self {
        let machine = machine.to_string();
        let message = json!({
            "default": text,
            "email": text,
            "sqs": machine,
            "lambda": machine,
            "email-json": machine,
            "https": chatbot.to_string(),
        })
        .to_string();
        Self {
            subject,
            message,
            attributes,
        }
    }
}

/// Cuts `s` to at most `max` bytes on a UTF-8 boundary, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &s[..end])
}

fn job_label(t: &Transition) -> &str {
    t.job
        .job_name
        .as_deref()
        .unwrap_or_else(|| t.job.job_arn.job_id())
}

/// How many records failed, for a `Completed` job some of whose records did
/// (Bedrock still calls it `Completed`).
fn failed_records(t: &Transition) -> Option<String> {
    if t.kind != TransitionKind::StatusChanged || t.job.status != JobStatus::Completed {
        return None;
    }
    let r: RecordCounts = t.job.records?;
    let failed = r.error.filter(|e| *e > 0)?;
    let of = r.processed.or(r.total);
    Some(match (t.severity(), of) {
        (Severity::Error, Some(n)) => format!("all {n} records failed"),
        (Severity::Error, None) => format!("all records failed ({failed})"),
        (_, Some(n)) => format!("{failed} of {n} records failed"),
        (_, None) => format!("{failed} records failed"),
    })
}

/// The subject without an environment (the Slack summary, tests).
pub fn subject(t: &Transition) -> String {
    subject_in(t, None)
}

/// `subject` with the environment after the severity, which mail filters
/// key on ("[error] [prod] ..."), for any short subject of the form "[severity] rest".
pub fn tag_subject(subject: &str, env: &str) -> String {
    let tagged = match subject.split_once("] ") {
        Some((severity, rest)) if severity.starts_with('[') => {
            format!("{severity}] [{env}] {rest}")
        }
        _ => format!("[{env}] {subject}"),
    };
    ascii_subject(&tagged)
}

/// The subject: severity, environment (when given), the job and what
/// happened. Too long, the job's name is shortened first, so what happened
/// is always read.
pub fn subject_in(t: &Transition, env: Option<&str>) -> String {
    let mut what = match (t.kind, &t.previous) {
        (TransitionKind::Untracked, _) => "no longer found in Bedrock, untracked".to_owned(),
        (TransitionKind::Warning, _) => match &t.warning {
            Some(w) => format!("warning {} while {}", w.kind, t.job.status),
            None => format!("warning while {}", t.job.status),
        },
        (_, Some(prev)) => format!("{prev} -> {}", t.job.status),
        (_, None) => format!("{} (now tracked)", t.job.status),
    };
    if let Some(failed) = failed_records(t) {
        what.push_str(&format!(", {failed}"));
    }
    let severity = t.severity().as_str();
    let tail = format!(": {what}");
    let name = ascii_subject(job_label(t));
    let env = env.map(ascii_subject);
    let form = |noun: &str, env: Option<&str>, name: &str| match env {
        Some(e) => format!("[{severity}] [{e}] {noun} {name}{tail}"),
        None => format!("[{severity}] {noun} {name}{tail}"),
    };
    // The long form, then "job" alone, then the job's name shortened (to 8
    // characters at least), then the environment too: what happened stays.
    let full = form("Bedrock batch job", env.as_deref(), &name);
    if full.len() <= SUBJECT_MAX {
        return full;
    }
    let short = form("job", env.as_deref(), &name);
    let over = short.len().saturating_sub(SUBJECT_MAX);
    if over == 0 {
        return short;
    }
    let name = shorten(&name, name.len().saturating_sub(over).max(8));
    let short = form("job", env.as_deref(), &name);
    let over = short.len().saturating_sub(SUBJECT_MAX);
    let env = env.map(|e| shorten(&e, e.len().saturating_sub(over).max(8)));
    ascii_subject(&form("job", env.as_deref(), &name))
}

/// `s` cut to `max` characters with "..." at the end, when longer.
fn shorten_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let kept: String = s.chars().take(max.saturating_sub(3)).collect();
        format!("{kept}...")
    }
}

/// `s` cut to `max` bytes (ASCII) with "..." at the end, when longer.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        format!("{}...", &s[..max.saturating_sub(3)])
    }
}

/// SNS's rules for a subject: ASCII without control characters, under 100
/// characters (the end cut, marked, when it is longer).
pub(crate) fn ascii_subject(raw: &str) -> String {
    let ascii: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if ascii.len() <= SUBJECT_MAX {
        ascii
    } else {
        format!("{}...", &ascii[..SUBJECT_MAX - 3])
    }
}

fn iso(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))
    })
}

/// Time spent in each observed phase, in seconds; the current phase runs to
/// the observation unless the job has ended.
fn phase_durations(t: &Transition) -> Vec<(JobStatus, i64)> {
    let mut out = Vec::new();
    for (i, (status, start)) in t.phases.iter().enumerate() {
        let end = match t.phases.get(i + 1) {
            Some((_, next)) => *next,
            None if status.is_terminal() => continue,
            None => t.observed_at,
        };
        out.push((status.clone(), (end - *start).num_seconds().max(0)));
    }
    out
}

fn human_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

pub fn console_url(t: &Transition) -> String {
    let region = t.job.job_arn.region();
    let host = match t.job.job_arn.partition() {
        "aws-cn" => "console.amazonaws.cn".to_owned(),
        "aws-us-gov" => "console.amazonaws-us-gov.com".to_owned(),
        _ => format!("{region}.console.aws.amazon.com"),
    };
    format!("https://{host}/bedrock/home?region={region}#/batch-inference")
}

/// Whether Bedrock would still stop the job: it has not ended, is not being
/// stopped already, and the monitor still tracks it.
pub fn stoppable(t: &Transition) -> bool {
    t.kind != TransitionKind::Untracked
        && matches!(
            t.job.status,
            JobStatus::Submitted
                | JobStatus::Validating
                | JobStatus::Scheduled
                | JobStatus::InProgress
        )
}

/// The exact AWS CLI command that stops the job.
pub fn stop_command(t: &Transition) -> String {
    format!(
        "aws bedrock stop-model-invocation-job --job-identifier {} --region {}",
        t.job.job_arn,
        t.job.job_arn.region()
    )
}

/// The ETA line of the text forms: "about 2 h 10 min left at the current
/// rate (ends about 2026-...)", from the notification's observation.
fn eta_line(t: &Transition) -> Option<String> {
    let eta = t.eta?;
    Some(format!(
        "{} (ends about {})",
        crate::domain::eta_text(eta, t.observed_at),
        eta.to_rfc3339_opts(SecondsFormat::Secs, true)
    ))
}

fn bedrock_message(t: &Transition) -> Option<String> {
    t.job
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .map(|m| truncate(m, BEDROCK_TEXT_MAX))
}

/// The `email` / `default` body: what a person reads first comes first.
pub fn plain_text(t: &Transition) -> String {
    let j = &t.job;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    match t.kind {
        TransitionKind::Untracked => line(format!(
            "Bedrock no longer finds batch job {} (last status {}); the monitor stopped tracking it.",
            job_label(t),
            j.status
        )),
        TransitionKind::Warning => {
            let kind = t.warning.as_ref().map_or("warning", |w| w.kind.as_str());
            line(format!(
                "Early warning ({kind}): Bedrock batch job {} is {}.",
                job_label(t),
                j.status
            ));
            if let Some(w) = &t.warning {
                line(String::new());
                line(format!("Seen:      {}", w.seen));
                line(format!(
                    "Since:     {}",
                    w.since.to_rfc3339_opts(SecondsFormat::Secs, true)
                ));
                line(format!(
                    "Threshold: {} (this warning is sent once per job)",
                    w.threshold
                ));
            }
        }
        TransitionKind::StatusChanged => match &t.previous {
            Some(prev) => line(format!(
                "Bedrock batch job {} is now {} (was {prev}).",
                job_label(t),
                j.status
            )),
            None => line(format!(
                "Bedrock batch job {} is {} (first observation since tracking).",
                job_label(t),
                j.status
            )),
        },
    }
    if let Some(failed) = failed_records(t) {
        line(format!(
            "Bedrock reports Completed, but {failed}: see the error records in the output location."
        ));
    }
    if let Some(m) = bedrock_message(t) {
        line(String::new());
        line("Reason from Bedrock:".into());
        // Untrusted text: no control characters in a mail body but line breaks.
        line(
            m.chars()
                .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
                .collect(),
        );
    }
    line(String::new());
    line(format!("Job:       {}", j.job_arn));
    line(format!("Account:   {}", j.job_arn.account()));
    line(format!("Region:    {}", j.job_arn.region()));
    if let Some(model) = &j.model_id {
        line(format!("Model:     {model}"));
    }
    if t.kind == TransitionKind::Warning {
        line(format!(
            "Status:    {} ({})",
            j.status,
            t.severity().as_str()
        ));
    } else {
        line(format!(
            "Status:    {} -> {} ({})",
            t.previous.as_ref().map_or("(none)", JobStatus::as_str),
            j.status,
            t.severity().as_str()
        ));
    }
    if let Some(s) = j.submit_time {
        line(format!(
            "Submitted: {}",
            s.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    if let Some(e) = j.end_time {
        line(format!(
            "Ended:     {}",
            e.to_rfc3339_opts(SecondsFormat::Secs, true)
        ));
    }
    let phases = phase_durations(t);
    if t.phases.len() > 1 {
        let parts: Vec<String> = phases
            .iter()
            .map(|(s, d)| format!("{s} {}", human_duration(*d)))
            .collect();
        line(format!("Phases:    {} (as observed)", parts.join(", ")));
    }
    if let Some(r) = j.records.filter(|r| !r.is_empty()) {
        let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
        let mut s = format!(
            "Records:   {} processed of {}, {} succeeded, {} failed",
            n(r.processed),
            n(r.total),
            n(r.success),
            n(r.error)
        );
        if let (Some(e), Some(p)) = (r.error, r.processed.filter(|p| *p > 0)) {
            s.push_str(&format!(
                " ({:.1}% error rate)",
                e as f64 * 100.0 / p as f64
            ));
        }
        line(s);
    }
    if let Some(eta) = eta_line(t) {
        line(format!("ETA:       {eta}"));
    }
    if let Some(tokens) = t.tokens {
        line(format!(
            "Tokens:    {} input, {} output (from the job's manifest)",
            tokens.input, tokens.output
        ));
    }
    if let Some(cost) = &t.cost {
        line(format!("Cost:      {}", cost.text(&j.status)));
    }
    if let Some(e) = &t.record_errors {
        line(format!("Failures:  {}", e.summary()));
        for r in &e.top {
            line(format!("  {}", reason_line(r)));
        }
    }
    if let Some(i) = &j.input_s3_uri {
        line(format!("Input:     {i}"));
    }
    if let Some(o) = &j.output_s3_uri {
        line(format!("Output:    {o}"));
        line(format!(
            "Manifest:  {}/{}/manifest.json.out",
            o.trim_end_matches('/'),
            j.job_arn.job_id()
        ));
    }
    for (k, v) in &t.labels {
        line(format!("Label:     {k}={v}"));
    }
    line(format!(
        "Console:   {} (choose the job {})",
        console_url(t),
        job_label(t)
    ));
    if stoppable(t) {
        line(format!("Stop it:   {}", stop_command(t)));
    }
    let steps = next_steps(t);
    if !steps.is_empty() {
        line(String::new());
        line("Next steps:".into());
        for step in steps {
            line(format!("- {step}"));
        }
    }
    line(String::new());
    line(format!(
        "Transition id {} observed at {}.",
        t.id,
        t.observed_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    ));
    line("To stop these emails, use the unsubscribe link below, or ask the stack owner to set a filter policy (see the README).".into());
    out
}

/// The `sqs` / `lambda` / `email-json` body: versioned, for programs.
pub fn machine_json(t: &Transition) -> Value {
    let j = &t.job;
    let mut out = json!({
        "schemaVersion": SCHEMA_VERSION,
        "event": t.kind,
        "transitionId": t.id,
        "jobArn": j.job_arn,
        "jobId": j.job_arn.job_id(),
        "jobName": j.job_name,
        "modelId": j.model_id,
        "region": j.job_arn.region(),
        "account": j.job_arn.account(),
        "status": j.status,
        "previousStatus": t.previous,
        "severity": t.severity(),
        "message": bedrock_message(t),
        "observedAt": iso(Some(t.observed_at)),
        "submitTime": iso(j.submit_time),
        "lastModifiedTime": iso(j.last_modified_time),
        "endTime": iso(j.end_time),
        "records": j.records.filter(|r| !r.is_empty()),
        "tokens": t.tokens,
        "warning": t.warning.as_ref().map(|w| json!({
            "kind": w.kind,
            "seen": w.seen,
            "since": iso(Some(w.since)),
            "threshold": w.threshold,
            "advice": w.advice,
        })),
        "jobExpirationTime": iso(j.job_expiration_time),
        "inputS3Uri": j.input_s3_uri,
        "outputS3Uri": j.output_s3_uri,
        "phases": phase_durations(t).into_iter().map(|(s, d)| json!({"status": s, "seconds": d})).collect::<Vec<_>>(),
        "labels": t.labels,
        "consoleUrl": console_url(t),
    });
    crate::prices::annotate(&mut out, t.cost.as_ref(), &j.status);
    // Absent, not null, when there is none.
    if let Some(eta) = t.eta {
        out["eta"] = json!(eta.to_rfc3339_opts(SecondsFormat::Secs, true));
    }
    if stoppable(t) {
        out["stopCommand"] = json!(stop_command(t));
    }
    if let Some(e) = &t.record_errors {
        out["recordErrors"] = record_errors_json(e);
    }
    out
}

/// One reason with its count: "340 × 400: Bad record <n>" (the message is
/// Bedrock's, untrusted: escape it where markup is read).
pub fn reason_line(r: &ErrorReason) -> String {
    if r.message.is_empty() {
        format!("{} × {}", r.count, r.code)
    } else {
        format!("{} × {}: {}", r.count, r.code, r.message)
    }
}

/// `recordErrors` in the machine JSON (and `describe`, the digest):
/// documented in docs/notifications.md.
pub fn record_errors_json(e: &RecordErrors) -> Value {
    json!({
        "failed": e.failed,
        "top": e.top.iter().map(|r| json!({"errorCode": r.code, "errorMessage": r.message, "count": r.count})).collect::<Vec<_>>(),
        "reasons": e.reasons,
        "filesRead": e.files_read,
        "files": e.files,
        "bytesRead": e.bytes_read,
        "maxBytes": e.max_bytes,
        "complete": e.complete,
        "malformedLines": e.malformed_lines,
        "unreadable": e.unreadable,
        "summary": e.summary(),
    })
}

/// Escapes untrusted text for Slack's markdown: no formatting, links or mentions.
pub fn escape_slack(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' | '|' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            // A zero-width space after @ keeps @here / @channel from pinging anyone.
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn next_steps(t: &Transition) -> Vec<String> {
    if let Some(w) = &t.warning {
        return w.advice.clone();
    }
    if failed_records(t).is_some() {
        return vec![
            "Inspect the error records in the output location".to_owned(),
            "Fix their input and resubmit those records".to_owned(),
        ];
    }
    let steps: &[&str] = match (t.kind, &t.job.status) {
        (TransitionKind::Untracked, _) => &[
            "Check that the job was not deleted on purpose",
            "Track it again with {\"track\": [\"<job ARN>\"]} if it should be watched",
        ],
        (_, JobStatus::Failed) => &[
            "Read the reason above and fix the input or the service role",
            "Check the output location for the error records",
            "Resubmit the job with CreateModelInvocationJob",
        ],
        (_, JobStatus::Expired) => &[
            "The job ran past its timeout: raise timeoutDurationInHours or split the input",
            "Resubmit the job",
        ],
        (_, JobStatus::PartiallyCompleted) => &[
            "Inspect the error records in the output location",
            "Resubmit the failed records",
        ],
        (_, JobStatus::Stopped) => &[
            "Confirm the stop was intended",
            "Partial results are in the output location",
        ],
        (_, JobStatus::Completed) => &["Collect the results from the output location"],
        _ => &[],
    };
    steps.iter().map(|s| (*s).to_owned()).collect()
}

/// The Chatbot form's next steps: the text form's, the console link and,
/// for a job that can still be stopped, the command that stops it.
fn chatbot_steps(t: &Transition) -> Vec<String> {
    let mut steps = next_steps(t);
    steps.push(format!(
        "Open the job in the Bedrock console: {} (choose {})",
        console_url(t),
        escape_slack(job_label(t))
    ));
    if stoppable(t) {
        steps.push(format!("Stop it: `{}`", stop_command(t)));
    }
    steps
}

/// The `https` body: an Amazon Q Developer in chat applications custom
/// notification, threaded per job (without a Stop job button: see
/// [`chatbot_json_for`]).
pub fn chatbot_json(t: &Transition) -> Value {
    chatbot_json_for(t, None)
}

/// [`chatbot_json`], naming the alias the Stop job button invokes when there
/// is one; the button is shown where `stoppable` is "true" and `stopFn` is set.
pub fn chatbot_json_for(t: &Transition, stop: Option<&StopVia>) -> Value {
    let j = &t.job;
    let emoji = match t.severity() {
        crate::domain::Severity::Error => ":red_circle:",
        crate::domain::Severity::Warning => ":warning:",
        crate::domain::Severity::Success => ":white_check_mark:",
        crate::domain::Severity::Info => ":information_source:",
    };
    // Bedrock's job names are at most 63 characters; a longer one is cut so
    // that the title keeps its account and what happened.
    let name = escape_slack(&shorten_chars(job_label(t), TITLE_NAME_MAX));
    let job = format!("Batch job {name} in account {}", j.job_arn.account());
    let title = match (&t.kind, &t.previous) {
        (TransitionKind::Untracked, _) => {
            format!("{emoji} {job} no longer found, untracked")
        }
        (TransitionKind::Warning, _) => format!(
            "{emoji} {job}: early warning {} ({})",
            t.warning.as_ref().map_or("", |w| w.kind.as_str()),
            j.status
        ),
        (_, Some(prev)) => format!("{emoji} {job}: {prev} → {}", j.status),
        (_, None) => format!("{emoji} {job}: {}", j.status),
    };
    let mut desc = String::new();
    if let Some(w) = &t.warning {
        desc.push_str(&format!("*Seen:* {}\n", escape_slack(&w.seen)));
    }
    if let Some(failed) = failed_records(t) {
        desc.push_str(&format!("*Completed, but:* {failed}\n"));
    }
    if let Some(m) = bedrock_message(t) {
        desc.push_str(&format!(
            "*Reason:* {}\n",
            escape_slack(&truncate(&m, 2_000))
        ));
    }
    if let Some(model) = &j.model_id {
        desc.push_str(&format!("*Model:* {}\n", escape_slack(model)));
    }
    if let Some(r) = j.records.filter(|r| !r.is_empty()) {
        let n = |v: Option<i64>| v.map_or("?".to_owned(), |v| v.to_string());
        desc.push_str(&format!(
            "*Records:* {} processed of {}, {} failed\n",
            n(r.processed),
            n(r.total),
            n(r.error)
        ));
    }
    if let Some(eta) = eta_line(t) {
        desc.push_str(&format!("*ETA:* {eta}\n"));
    }
    if let Some(tokens) = t.tokens {
        desc.push_str(&format!(
            "*Tokens:* {} input, {} output\n",
            tokens.input, tokens.output
        ));
    }
    if let Some(cost) = &t.cost {
        desc.push_str(&format!(
            "*Cost:* {}\n",
            escape_slack(&cost.text(&j.status))
        ));
    }
    if let Some(e) = &t.record_errors {
        desc.push_str(&format!("*Failures:* {}\n", escape_slack(&e.summary())));
        for r in &e.top {
            desc.push_str(&format!("• {}\n", escape_slack(&reason_line(r))));
        }
    }
    desc.push_str(&format!("<{}|Open in the Bedrock console>", console_url(t)));
    let mut keywords = vec![
        j.status.as_str().to_owned(),
        t.severity().as_str().to_owned(),
    ];
    if let Some(m) = &j.model_id {
        keywords.push(truncate(m, 75));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": t.id,
        "content": {
            "textType": "client-markdown",
            "title": truncate(&title, TITLE_MAX),
            "description": desc,
            "nextSteps": chatbot_steps(t),
            "keywords": keywords,
        },
        "metadata": {
            "threadId": j.job_arn,
            "summary": subject(t),
            "eventType": match t.kind {
                TransitionKind::Untracked => "Untracked",
                TransitionKind::Warning => "Warning",
                TransitionKind::StatusChanged => j.status.as_str(),
            },
            "relatedResources": [j.job_arn],
            "additionalContext": additional_context(t, stop),
        },
    })
}

/// `metadata.additionalContext`: strings only, as the custom notification
/// schema has it (`"customerProvidedKey1": String`,
/// https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html),
/// so a first observation has no `previousStatus` rather than a null one.
/// The Stop job custom action reads jobArn, stopFn and stopRegion from here, and is
/// shown only where stoppable is "true" and fn is set (template.yaml).
fn additional_context(t: &Transition, stop: Option<&StopVia>) -> Value {
    let j = &t.job;
    let mut context = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        context.insert(k.to_owned(), Value::String(v.to_owned()));
    };
    if let Some(previous) = &t.previous {
        put("previousStatus", previous.as_str());
    }
    put("region", j.job_arn.region());
    put("account", j.job_arn.account());
    put("transitionId", &t.id);
    put("jobArn", j.job_arn.as_str());
    put("stoppable", if stoppable(t) { "true" } else { "false" });
    if let Some(via) = stop {
        put("stopFn", &via.function);
        put("stopRegion", &via.region);
    }
    Value::Object(context)
}

/// Message attributes for subscription filter policies.
pub fn attributes(t: &Transition) -> Vec<(String, String)> {
    let j = &t.job;
    let mut out = vec![
        ("status".to_owned(), j.status.as_str().to_owned()),
        ("severity".to_owned(), t.severity().as_str().to_owned()),
        ("region".to_owned(), j.job_arn.region().to_owned()),
        ("account".to_owned(), j.job_arn.account().to_owned()),
        ("transitionId".to_owned(), t.id.clone()),
        ("jobName".to_owned(), job_label(t).to_owned()),
        ("event".to_owned(), t.kind.as_str().to_owned()),
    ];
    if let Some(w) = &t.warning {
        out.push(("warning".to_owned(), w.kind.as_str().to_owned()));
    }
    if let Some(p) = &t.previous {
        out.push(("previousStatus".to_owned(), p.as_str().to_owned()));
    }
    if let Some(m) = j.model_id.as_deref().filter(|m| !m.is_empty()) {
        out.push(("modelId".to_owned(), m.to_owned()));
    }
    // A label stored before its name was reserved (`account`, added with
    // member accounts) never shadows the monitor's own attribute: SNS takes
    // one value a name, and filter policies must see the job's account.
    out.extend(
        t.labels
            .iter()
            .filter(|(k, _)| !crate::labels::RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{JobSnapshot, RecordCounts};
    use std::collections::BTreeMap;

    fn transition(status: &str, previous: Option<&str>, message: Option<&str>) -> Transition {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        Transition {
            id: "t-1".into(),
            kind: TransitionKind::StatusChanged,
            version: 2,
            previous: previous.map(JobStatus::parse),
            job: JobSnapshot {
                job_arn: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"
                    .parse()
                    .unwrap(),
                job_name: Some("nightly-embeddings".into()),
                model_id: Some("anthropic.claude-3-haiku-20240307-v1:0".into()),
                status: JobStatus::parse(status),
                message: message.map(str::to_owned),
                submit_time: Some(at),
                last_modified_time: Some(at),
                end_time: None,
                records: Some(RecordCounts {
                    total: Some(100),
                    processed: Some(50),
                    success: Some(45),
                    error: Some(5),
                }),
                input_s3_uri: Some("s3://in/x.jsonl".into()),
                output_s3_uri: Some("s3://out/".into()),
                job_expiration_time: None,
            },
            observed_at: at + chrono::Duration::minutes(90),
            phases: vec![
                (JobStatus::Submitted, at),
                (JobStatus::InProgress, at + chrono::Duration::minutes(30)),
            ],
            labels: BTreeMap::from([("team".to_owned(), "search".to_owned())]),
            warning: None,
            tokens: None,
            cost: None,
            record_errors: None,
            eta: None,
        }
    }

    #[test]
    fn when_job_fails_should_lead_with_bedrock_reason_not_the_status_word() {
        let t = transition(
            "Failed",
            Some("InProgress"),
            Some("Input file is not valid JSONL at line 3"),
        );
        let text = plain_text(&t);
        assert!(
            text.lines()
                .nth(3)
                .unwrap()
                .contains("Input file is not valid JSONL"),
            "{text}"
        );
        let m = machine_json(&t);
        assert_eq!(m["message"], "Input file is not valid JSONL at line 3");
        assert_eq!(m["previousStatus"], "InProgress");
        assert_eq!(m["severity"], "error");
        assert_eq!(m["phases"][0]["seconds"], 1800);
        assert_eq!(
            subject(&t),
            "[error] Bedrock batch job nightly-embeddings: InProgress -> Failed"
        );
    }

    #[test]
    fn when_first_observation_should_have_null_previous_and_no_previous_attribute() {
        let t = transition("Submitted", None, None);
        assert!(machine_json(&t)["previousStatus"].is_null());
        assert!(machine_json(&t)["message"].is_null());
        assert!(!attributes(&t).iter().any(|(k, _)| k == "previousStatus"));
    }

    #[test]
    fn when_message_is_huge_and_hostile_should_stay_within_sns_limits_and_not_ping() {
        let hostile = format!("@here <!channel> *boom* {}", "é".repeat(20_000));
        let mut t = transition("Failed", Some("InProgress"), Some(&hostile));
        t.job.job_name = Some(format!("{}日本", "x".repeat(200)));
        let r = render(&t, "test");
        assert!(
            r.subject.len() < 100 && r.subject.is_ascii(),
            "{}",
            r.subject
        );
        assert!(r.message.len() < MESSAGE_MAX, "{}", r.message.len());
        let chat = chatbot_json(&t);
        let desc = chat["content"]["description"].as_str().unwrap();
        assert!(
            !desc.contains("@here") && !desc.contains("<!channel>") && !desc.contains("*boom*"),
            "{desc}"
        );
        assert!(
            machine_json(&t)["message"]
                .as_str()
                .unwrap()
                .ends_with(CUT_MARKER)
        );
    }

    /// The Slack title of `t` as the monitor of `env` sends it.
    fn slack_title(t: &Transition, env: &str) -> String {
        let forms: Value = serde_json::from_str(&render(t, env).message).unwrap();
        let chat: Value = serde_json::from_str(forms["https"].as_str().unwrap()).unwrap();
        chat["content"]["title"].as_str().unwrap().to_owned()
    }

    #[test]
    fn every_form_should_name_the_account_and_no_label_should_shadow_its_attribute() {
        let mut t = transition("Failed", Some("InProgress"), None);
        t.job.job_arn = "arn:aws:bedrock:us-west-2:111122223333:model-invocation-job/abcdefghwxyz"
            .parse()
            .unwrap();
        // A label stored before `account` was a reserved name.
        t.labels
            .insert("account".to_owned(), "someone-else".to_owned());
        let accounts: Vec<String> = attributes(&t)
            .into_iter()
            .filter(|(k, _)| k == "account")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(accounts, ["111122223333"]);
        let text = plain_text(&t);
        assert!(
            text.contains("\nAccount:   111122223333\nRegion:    us-west-2\n"),
            "{text}"
        );
        assert_eq!(machine_json(&t)["account"], "111122223333");
        assert_eq!(
            chatbot_json(&t)["metadata"]["additionalContext"]["account"],
            "111122223333"
        );
        assert_eq!(
            slack_title(&t, "prod"),
            ":red_circle: [prod] Batch job nightly-embeddings in account 111122223333: InProgress → Failed"
        );
    }

    #[test]
    fn the_slack_title_should_keep_the_account_and_what_happened_whatever_the_lengths() {
        let mut t = transition("Failed", Some("InProgress"), None);
        for name_len in [1, 63, 100, 300] {
            // `_` is escaped for Slack: an environment of them doubles in the title.
            for env in ["p".to_owned(), "e".repeat(64), "_".repeat(128)] {
                t.job.job_name = Some("n".repeat(name_len));
                let title = slack_title(&t, &env);
                assert!(title.len() <= TITLE_MAX, "{} bytes: {title}", title.len());
                assert!(
                    title.ends_with(" in account 123456789012: InProgress → Failed"),
                    "name {name_len}, environment {}: {title}",
                    env.len()
                );
            }
        }
    }

    #[test]
    fn truncate_should_cut_on_a_char_boundary() {
        let s = "é".repeat(20);
        let cut = truncate(&s, CUT_MARKER.len() + 3);
        assert!(cut.ends_with(CUT_MARKER));
        assert_eq!(cut.trim_end_matches(CUT_MARKER), "é");
    }

    #[test]
    fn the_subject_always_says_what_happened_whatever_the_names_lengths() {
        let mut t = transition("Completed", Some("InProgress"), None);
        t.job.records = Some(RecordCounts {
            total: Some(400),
            processed: Some(400),
            success: Some(363),
            error: Some(37),
        });
        for name_len in [1, 11, 18, 40, 63, 100] {
            for env_len in [0, 4, 21, 64, 128] {
                t.job.job_name = Some("n".repeat(name_len));
                let env = "e".repeat(env_len);
                let subject = subject_in(&t, (env_len > 0).then_some(env.as_str()));
                assert!(subject.len() <= SUBJECT_MAX, "{subject}");
                assert!(
                    subject.starts_with("[warning] ")
                        && subject.ends_with(": InProgress -> Completed, 37 of 400 records failed"),
                    "name {name_len}, environment {env_len}: {subject}"
                );
                if env_len > 0 {
                    assert!(subject.contains(&"e".repeat(env_len.min(5))), "{subject}");
                }
            }
        }
    }
}
