//! Golden tests: every status in every form, rendered to reviewable snapshots
//! (tests/snapshots), and every form within SNS's limits, hostile input included.

use std::collections::BTreeMap;

use bedrock_batch_monitor::domain::{
    JobArn, JobSnapshot, JobStatus, Progress, RecordCounts, StoredJob, TokenTotals, Transition,
    TransitionKind, WarningKind,
};
use bedrock_batch_monitor::render::notification::{self, CUT_MARKER, MESSAGE_MAX};
use bedrock_batch_monitor::warnings::Thresholds;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

/// The environment these messages are rendered for (a stack's `Environment`).
const ENV: &str = "prod-eu";

/// Every status Bedrock documents (the list the fake serves), and one it may add later.
fn statuses() -> impl Iterator<Item = &'static str> {
    fake_bedrock::STATUSES.into_iter().chain(["Hibernating"])
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-27T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A job that went Submitted -> Validating -> InProgress and is now `status`.
fn transition(status: &str, message: Option<&str>) -> Transition {
    let status = JobStatus::parse(status);
    let mut phases = vec![
        (JobStatus::Submitted, t0()),
        (JobStatus::Validating, t0() + Duration::minutes(2)),
        (JobStatus::InProgress, t0() + Duration::minutes(5)),
    ];
    let previous = match status {
        JobStatus::Submitted => {
            phases.truncate(1);
            None
        }
        JobStatus::Validating => {
            phases.truncate(2);
            Some(JobStatus::Submitted)
        }
        JobStatus::InProgress => Some(JobStatus::Validating),
        _ => {
            phases.push((status.clone(), t0() + Duration::minutes(125)));
            Some(JobStatus::InProgress)
        }
    };
    let observed_at = phases.last().unwrap().1;
    let ended = status.is_terminal().then_some(observed_at);
    let job_arn: JobArn =
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"
            .parse()
            .unwrap();
    Transition {
        // The id as the code derives it for this change.
        id: Transition::id_for(
            &job_arn,
            phases.len() as u64,
            TransitionKind::StatusChanged,
            &status,
        ),
        kind: TransitionKind::StatusChanged,
        version: phases.len() as u64,
        previous,
        job: JobSnapshot {
            job_arn,
            job_name: Some("nightly-embeddings".into()),
            model_id: Some("anthropic.claude-3-haiku-20240307-v1:0".into()),
            status,
            message: message.map(str::to_owned),
            submit_time: Some(t0()),
            last_modified_time: Some(observed_at),
            end_time: ended,
            records: (phases.len() > 2).then_some(RecordCounts {
                total: Some(1000),
                processed: Some(1000),
                success: Some(988),
                error: Some(12),
            }),
            input_s3_uri: Some("s3://batch-input/nightly/input.jsonl".into()),
            output_s3_uri: Some("s3://batch-output/nightly/".into()),
            job_expiration_time: Some(t0() + Duration::hours(24)),
        },
        observed_at,
        phases,
        labels: BTreeMap::from([("team".to_owned(), "search".to_owned())]),
        warning: None,
        tokens: None,
        cost: None,
        record_errors: None,
        eta: None,
    }
}

fn message_for(status: &str) -> Option<&'static str> {
    match status {
        "Failed" => {
            Some("Input file s3://batch-input/nightly/input.jsonl is not valid JSONL at line 412")
        }
        "Expired" => Some("The job did not finish within its timeout of 24 hours"),
        "PartiallyCompleted" => {
            Some("12 records failed; see the error records in the output location")
        }
        _ => None,
    }
}

/// Checks a custom notification against the types of Amazon Q Developer's
/// event schema (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html):
/// every field a string, `nextSteps`, `keywords` and `relatedResources`
/// lists of strings, `additionalContext` a map of strings; `version` "1.0"
/// and `source` "custom" as required.
fn assert_custom_notification_schema(v: &serde_json::Value) {
    use serde_json::Value;
    let string = |path: &str, v: &Value| {
        assert!(v.is_string(), "{path} must be a string, is {v}");
    };
    let strings = |path: &str, v: &Value| {
        let list = v
            .as_array()
            .unwrap_or_else(|| panic!("{path} must be a list, is {v}"));
        for (i, item) in list.iter().enumerate() {
            string(&format!("{path}[{i}]"), item);
        }
    };
    let object = |path: &str, v: &Value, allowed: &[&str]| {
        let o = v
            .as_object()
            .unwrap_or_else(|| panic!("{path} must be an object, is {v}"));
        for k in o.keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "{path}.{k} is not in the schema"
            );
        }
    };
    object("", v, &["version", "source", "id", "content", "metadata"]);
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["source"], "custom");
    if let Some(id) = v.get("id") {
        string("id", id);
    }
    let content = &v["content"];
    object(
        "content",
        content,
        &["textType", "title", "description", "nextSteps", "keywords"],
    );
    for k in ["textType", "title", "description"] {
        if let Some(x) = content.get(k) {
            string(&format!("content.{k}"), x);
        }
    }
    for k in ["nextSteps", "keywords"] {
        if let Some(x) = content.get(k) {
            strings(&format!("content.{k}"), x);
        }
    }
    if let Some(metadata) = v.get("metadata") {
        object(
            "metadata",
            metadata,
            &[
                "threadId",
                "summary",
                "eventType",
                "relatedResources",
                "additionalContext",
            ],
        );
        for k in ["threadId", "summary", "eventType"] {
            if let Some(x) = metadata.get(k) {
                string(&format!("metadata.{k}"), x);
            }
        }
        if let Some(x) = metadata.get("relatedResources") {
            strings("metadata.relatedResources", x);
        }
        if let Some(context) = metadata.get("additionalContext") {
            let o = context
                .as_object()
                .unwrap_or_else(|| panic!("additionalContext must be an object, is {context}"));
            for (k, x) in o {
                string(&format!("metadata.additionalContext.{k}"), x);
            }
        }
    }
}

#[test]
fn the_schema_check_should_refuse_a_null_in_additional_context() {
    let mut chat = notification::chatbot_json(&transition("Submitted", None));
    assert_custom_notification_schema(&chat);
    chat["metadata"]["additionalContext"]["previousStatus"] = serde_json::Value::Null;
    let refused = std::panic::catch_unwind(|| assert_custom_notification_schema(&chat));
    assert!(refused.is_err(), "a null value must fail the check");
}

/// All the forms of one message, as SNS delivers them to each protocol (taken
/// from the published message itself); the Slack form is checked against the
/// custom notification schema on the way.
fn forms(r: &notification::Rendered) -> String {
    let sent: serde_json::Value = serde_json::from_str(&r.message).unwrap();
    let text = sent["email"].as_str().unwrap();
    assert_eq!(sent["default"], sent["email"]);
    let machine: serde_json::Value = serde_json::from_str(sent["sqs"].as_str().unwrap()).unwrap();
    let chatbot: serde_json::Value = serde_json::from_str(sent["https"].as_str().unwrap()).unwrap();
    assert_custom_notification_schema(&chatbot);
    let attrs: Vec<String> = r
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "SUBJECT: {}\nATTRIBUTES: {}\n\n--- email / default ---\n{}\n--- sqs / lambda / email-json ---\n{}\n\n--- https (Amazon Q Developer in chat applications) ---\n{}\n",
        r.subject,
        attrs.join(", "),
        text,
        serde_json::to_string_pretty(&machine).unwrap(),
        serde_json::to_string_pretty(&chatbot).unwrap(),
    )
}

/// All the forms of one notification.
fn all_forms(t: &Transition) -> String {
    forms(&notification::render(t, ENV))
}

#[test]
fn every_status_in_every_form() {
    for status in statuses() {
        let t = transition(status, message_for(status));
        insta::assert_snapshot!(format!("status_{status}"), all_forms(&t));
    }
}

#[test]
fn an_untracked_job_in_every_form() {
    let mut t = transition("InProgress", None);
    t.kind = TransitionKind::Untracked;
    t.previous = Some(JobStatus::InProgress);
    t.id = Transition::id_for(&t.job.job_arn, t.version + 1, t.kind, &t.job.status);
    insta::assert_snapshot!("untracked", all_forms(&t));
}

/// 2,048 characters, as Bedrock allows: non-ASCII, markdown, mentions, a link, control characters.
fn hostile_message() -> String {
    let head = "Ünïcödé 失敗 ✗ *bold* _it_ ~strike~ `code` <!here> @here @channel <https://evil.example|click> \u{7}\r\n> quote | pipe [x](y) ";
    let mut s = head.to_owned();
    while s.chars().count() < 2048 {
        s.push_str("数据错误 é ");
    }
    s.chars().take(2048).collect()
}

#[test]
fn a_hostile_2048_character_failure_message() {
    let t = transition("Failed", Some(&hostile_message()));
    insta::assert_snapshot!("hostile_failure", all_forms(&t));
}

#[test]
fn the_slack_form_should_neither_format_nor_ping_nor_link_bedrocks_text() {
    let t = transition("Failed", Some(&hostile_message()));
    let chat = notification::chatbot_json(&t);
    let desc = chat["content"]["description"].as_str().unwrap();
    let reason = desc.lines().next().unwrap();
    for raw in [
        "@here",
        "@channel",
        "<!here>",
        "<https://",
        "*bold*",
        "_it_",
        "~strike~",
        "`code`",
        "\u{7}",
    ] {
        assert!(!reason.contains(raw), "{raw:?} survived in {reason}");
    }
    assert!(
        reason.contains("Ünïcödé 失敗"),
        "non-ASCII text must survive: {reason}"
    );
    assert_eq!(chat["version"], "1.0");
    assert_eq!(chat["source"], "custom");
    assert_eq!(chat["content"]["textType"], "client-markdown");
    assert_eq!(chat["metadata"]["threadId"], t.job.job_arn.as_str());
    assert!(!chat["content"]["nextSteps"].as_array().unwrap().is_empty());
}

#[test]
fn every_form_should_stay_within_sns_limits() {
    let mut huge = hostile_message();
    huge.push_str(&"x".repeat(300_000)); // far beyond anything Bedrock sends
    for status in statuses() {
        for message in [None, Some(hostile_message()), Some(huge.clone())] {
            let mut t = transition(status, message.as_deref());
            t.job.job_name = Some(format!("{}-名前", "n".repeat(120)));
            let r = notification::render(&t, ENV);
            assert!(
                r.subject.len() < 100,
                "{status}: subject {} bytes",
                r.subject.len()
            );
            assert!(
                r.subject
                    .chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_control()),
                "{}",
                r.subject
            );
            let attr_bytes: usize = r
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum();
            assert!(
                r.message.len() + attr_bytes < MESSAGE_MAX,
                "{status}: {} bytes",
                r.message.len()
            );
            // Ten of the monitor's own at most: as many as an SQS
            // subscription with raw message delivery accepts (labels add to
            // them, docs/notifications.md says so).
            let own = r
                .attributes
                .iter()
                .filter(|(k, _)| !t.labels.contains_key(k))
                .count();
            assert!(own <= 10, "{status}: {own} attributes of its own");
            assert_eq!(
                r.attributes.len(),
                own + t.labels.len(),
                "{status}: every label an attribute"
            );
            assert!(r.attributes.iter().all(|(_, v)| !v.is_empty()));
            let forms: serde_json::Value = serde_json::from_str(&r.message).unwrap();
            for key in ["default", "email", "sqs", "lambda", "email-json", "https"] {
                assert!(forms[key].is_string(), "{status}: no {key} form");
            }
            if message.as_deref() == Some(huge.as_str()) {
                let m = notification::machine_json(&t);
                assert!(m["message"].as_str().unwrap().ends_with(CUT_MARKER));
            }
        }
    }
}

/// `Completed` with `error` of `processed` records failed.
fn completed(processed: i64, error: i64) -> Transition {
    let mut t = transition("Completed", None);
    t.job.records = Some(RecordCounts {
        total: Some(processed),
        processed: Some(processed),
        success: Some(processed - error),
        error: Some(error),
    });
    t
}

#[test]
fn completed_should_say_how_it_really_ended() {
    let cases = [
        (1000, 0, "success", None),
        (1000, 200, "warning", Some("200 of 1000 records failed")),
        (1000, 1000, "error", Some("all 1000 records failed")),
    ];
    for (processed, error, severity, says) in cases {
        let t = completed(processed, error);
        let r = notification::render(&t, ENV);
        let attr = |k: &str| {
            r.attributes
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            attr("severity").as_deref(),
            Some(severity),
            "{error} failed"
        );
        assert!(
            r.subject.starts_with(&format!("[{severity}]")),
            "{}",
            r.subject
        );
        assert_eq!(notification::machine_json(&t)["severity"], severity);
        let text = notification::plain_text(&t);
        match says {
            Some(words) => {
                assert!(r.subject.contains(words), "{}", r.subject);
                assert!(text.contains(words), "{text}");
            }
            None => assert!(!r.subject.contains("failed"), "{}", r.subject),
        }
        insta::assert_snapshot!(
            format!("completed_{error}_of_{processed}_failed"),
            all_forms(&t)
        );
    }
}

#[test]
fn a_final_notification_should_carry_the_token_totals() {
    let mut t = completed(1000, 0);
    t.tokens = Some(TokenTotals {
        input: 1_234_567,
        output: 89_012,
    });
    let m = notification::machine_json(&t);
    assert_eq!(
        m["tokens"],
        serde_json::json!({"input": 1_234_567, "output": 89_012})
    );
    assert!(
        notification::plain_text(&t).contains("Tokens:    1234567 input, 89012 output"),
        "{}",
        notification::plain_text(&t)
    );
    assert!(transition("Completed", None).tokens.is_none());
    assert!(notification::machine_json(&transition("Completed", None))["tokens"].is_null());
}

/// The final notification with its cost, as the monitor makes it: token
/// totals from the manifest priced with the built-in table; partial runs and
/// a model without a price each say so.
#[test]
fn a_final_notification_says_what_the_job_cost_in_every_form() {
    for (name, status, model) in [
        (
            "cost_completed",
            "Completed",
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        (
            "cost_partially_completed",
            "PartiallyCompleted",
            "us.amazon.nova-pro-v1:0",
        ),
        (
            "cost_no_price",
            "Completed",
            "mistral.mistral-large-2407-v1:0",
        ),
    ] {
        let mut t = transition(status, message_for(status));
        t.job.model_id = Some(model.to_owned());
        t.tokens = Some(TokenTotals {
            input: 48_000_000,
            output: 9_500_000,
        });
        t.cost = PRICE_BOOK.costing(&t.job, t.tokens);
        insta::assert_snapshot!(name, all_forms(&t));
    }
}

/// The final notification of a job whose manifest the function may read but
/// could not: no figure, and the cost line says why in every form.
#[test]
fn a_final_notification_says_why_an_unreadable_manifest_gave_no_cost_in_every_form() {
    let mut t = transition("Completed", None);
    t.job.model_id = Some("anthropic.claude-3-haiku-20240307-v1:0".to_owned());
    t.job.output_s3_uri = Some("s3://team-batch-out/runs/".to_owned());
    let why = bedrock_batch_monitor::ports::ManifestError::Unreadable {
        uri: format!(
            "s3://team-batch-out/runs/{}/manifest.json.out",
            t.job.job_arn.job_id()
        ),
        message: "AccessDenied: User: arn:aws:sts::123456789012:assumed-role/monitor/fn is not \
                  authorized to perform: kms:Decrypt on the resource associated with this ciphertext"
            .to_owned(),
        cause: None,
    };
    t.cost = Some(bedrock_batch_monitor::prices::Costing::NoTokens {
        why: why.to_string(),
    });
    let m = notification::machine_json(&t);
    assert!(m["estimatedCost"].is_null(), "{m}");
    assert!(
        m["costNote"]
            .as_str()
            .is_some_and(|n| n.contains("could not be read: AccessDenied")),
        "{m}"
    );
    insta::assert_snapshot!("cost_unreadable_manifest", all_forms(&t));
}

/// A stored job in `status` at `now`, for the warnings' own words.
fn stored(status: &str, records: Option<RecordCounts>, progress: Option<Progress>) -> StoredJob {
    let mut t = transition(status, None);
    t.job.records = records;
    t.job.end_time = None;
    StoredJob {
        snapshot: t.job,
        version: 3,
        history: vec![],
        outbox: vec![],
        not_found_count: 0,
        gone: false,
        active: true,
        labels: t.labels,
        untracked_at: None,
        undeliverable: vec![],
        warned: vec![],
        progress,
        rate_from: None,
        tokens: None,
        ended_at: None,
        record_errors: None,
        routed: Vec::new(),
    }
}

#[test]
fn each_warning_in_every_form() {
    let now = t0() + Duration::days(2);
    let thresholds = Thresholds::default();
    let mut queued = stored("Scheduled", None, None);
    queued.snapshot.job_expiration_time = Some(t0() + Duration::days(2) + Duration::hours(3));
    let stalled = stored(
        "InProgress",
        Some(RecordCounts {
            total: Some(5000),
            processed: Some(1200),
            success: Some(1200),
            error: Some(0),
        }),
        Some(Progress {
            processed: 1200,
            since: now - Duration::hours(3),
        }),
    );
    let failing = stored(
        "InProgress",
        Some(RecordCounts {
            total: Some(5000),
            processed: Some(500),
            success: Some(400),
            error: Some(100),
        }),
        Some(Progress {
            processed: 500,
            since: now,
        }),
    );
    let mut seen = Vec::new();
    for job in [queued, stalled, failing] {
        for w in thresholds.due(&job, now) {
            let kind = w.kind;
            seen.push(kind);
            let mut t = transition("InProgress", None);
            t.kind = TransitionKind::Warning;
            t.id = Transition::warning_id(&t.job.job_arn, 4, kind);
            t.previous = None;
            t.job = job.snapshot.clone();
            t.observed_at = now;
            t.warning = Some(w);
            let r = notification::render(&t, ENV);
            assert!(
                r.attributes
                    .contains(&("event".to_owned(), "warning".to_owned()))
            );
            assert!(
                r.attributes
                    .contains(&("warning".to_owned(), kind.to_string()))
            );
            assert!(
                r.attributes
                    .contains(&("severity".to_owned(), "warning".to_owned()))
            );
            assert!(!r.attributes.iter().any(|(k, _)| k == "previousStatus"));
            let text = notification::plain_text(&t);
            assert!(
                text.contains("Since:") && text.contains("stop-model-invocation-job"),
                "{text}"
            );
            assert_eq!(
                notification::machine_json(&t)["warning"]["kind"],
                kind.as_str()
            );
            insta::assert_snapshot!(format!("warning_{kind}"), all_forms(&t));
        }
    }
    assert_eq!(seen, WarningKind::ALL, "one job for each kind, in order");
}

#[test]
fn every_notification_should_say_which_event_it_is() {
    let mut t = transition("Failed", None);
    assert!(
        notification::attributes(&t).contains(&("event".to_owned(), "statusChanged".to_owned()))
    );
    t.kind = TransitionKind::Untracked;
    assert!(notification::attributes(&t).contains(&("event".to_owned(), "untracked".to_owned())));
    assert!(
        !notification::attributes(&t)
            .iter()
            .any(|(k, _)| k == "warning")
    );
}

#[test]
fn a_running_job_with_a_rate_carries_its_eta_and_a_stop_button_in_every_form() {
    let mut t = transition("InProgress", None);
    t.job.records = Some(RecordCounts {
        total: Some(1000),
        processed: Some(400),
        success: Some(400),
        error: Some(0),
    });
    t.eta = Some(t.observed_at + Duration::minutes(130));
    let text = notification::plain_text(&t);
    assert!(
        text.contains("ETA:       about 2 h 10 min left at the current rate"),
        "{text}"
    );
    assert!(text.contains(
        "Stop it:   aws bedrock stop-model-invocation-job --job-identifier arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz --region us-east-1"
    ));
    let machine = notification::machine_json(&t);
    assert_eq!(machine["eta"], "2026-11-27T10:15:00Z");
    let chat = notification::chatbot_json(&t);
    assert_eq!(chat["metadata"]["additionalContext"]["stoppable"], "true");
    assert_eq!(
        chat["metadata"]["additionalContext"]["jobArn"],
        machine["jobArn"]
    );
    let steps = chat["content"]["nextSteps"].to_string();
    assert!(
        steps.contains("stop-model-invocation-job") && steps.contains("console"),
        "{steps}"
    );
    assert!(
        chat["content"]["description"]
            .as_str()
            .unwrap()
            .contains("about 2 h 10 min left at the current rate")
    );
    insta::assert_snapshot!("eta_InProgress", all_forms(&t));
}

#[test]
fn without_two_readings_there_is_no_eta_and_an_ended_job_has_no_stop() {
    for status in statuses() {
        let t = transition(status, message_for(status));
        let machine = notification::machine_json(&t);
        assert!(machine.get("eta").is_none(), "{status}: absent, not null");
        assert!(!notification::plain_text(&t).contains("ETA:"), "{status}");
        let chat = notification::chatbot_json(&t);
        let stoppable = chat["metadata"]["additionalContext"]["stoppable"] == "true";
        let ended = JobStatus::parse(status).is_terminal();
        if ended || status == "Stopping" {
            assert!(!stoppable, "{status}");
            assert!(machine.get("stopCommand").is_none(), "{status}");
            assert!(
                !notification::plain_text(&t).contains("Stop it:"),
                "{status}"
            );
        }
        if ["Submitted", "Validating", "Scheduled", "InProgress"].contains(&status) {
            assert!(stoppable, "{status}");
        }
    }
}

/// Jobs for the digest: one running with a rate, one warned, two ended in
/// the window (one with tokens and a reason), one ended before it.
fn digest_jobs(at: DateTime<Utc>) -> Vec<StoredJob> {
    let mut running = stored(
        "InProgress",
        Some(RecordCounts {
            total: Some(1000),
            processed: Some(400),
            success: Some(400),
            error: Some(0),
        }),
        Some(Progress {
            processed: 400,
            since: at - Duration::minutes(10),
        }),
    );
    running.rate_from = Some(Progress {
        processed: 300,
        since: at - Duration::minutes(20),
    });
    let mut warned = stored("Scheduled", None, None);
    warned.snapshot.job_arn =
        "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/queuedjob001"
            .parse()
            .unwrap();
    warned.snapshot.job_name = Some("weekly-backfill".into());
    warned.warned = vec![WarningKind::QueuedTooLong];
    let ended = |id: &str, name: &str, status: &str, ago: i64, message: Option<&str>| {
        let mut j = stored(status, None, None);
        j.snapshot.job_arn =
            format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{id}")
                .parse()
                .unwrap();
        j.snapshot.job_name = Some(name.into());
        j.active = false;
        j.history = vec![bedrock_batch_monitor::domain::HistoryEntry {
            from: Some(JobStatus::InProgress),
            to: JobStatus::parse(status),
            at: at - Duration::hours(ago),
            message: message.map(str::to_owned),
        }];
        j
    };
    let mut completed = ended("donejob00001", "daily-summaries", "Completed", 2, None);
    completed.tokens = Some(TokenTotals {
        input: 1_200_000,
        output: 340_000,
    });
    let failed = ended(
        "failedjob001",
        "ad-hoc-eval",
        "Failed",
        5,
        Some("Input file is not valid JSONL at line 3"),
    );
    let old = ended("oldjob000001", "last-week", "Completed", 24 * 7, None);
    vec![running, warned, completed, failed, old]
}

/// The digest's reads of a table holding `jobs`: the work index's entries
/// of those still running (in the digest's order), those read whole, and the
/// index of ends' entries of those that ended.
struct FleetReads {
    running: Vec<bedrock_batch_monitor::domain::WorkEntry>,
    shown: std::collections::HashMap<JobArn, StoredJob>,
    ended: Vec<bedrock_batch_monitor::domain::EndedJob>,
}

impl FleetReads {
    fn of(jobs: &[StoredJob]) -> Self {
        let mut running: Vec<_> = jobs
            .iter()
            .filter(|j| j.needs_polling())
            .map(|j| bedrock_batch_monitor::domain::WorkEntry {
                job_arn: j.arn().clone(),
                status: j.snapshot.status.clone(),
                version: j.version,
                submit_time: j.snapshot.submit_time,
                not_found_count: j.not_found_count,
                gone: j.gone,
                untracked_at: j.untracked_at,
                outbox: j.outbox.clone(),
                warned: j.warned.clone(),
                progress: j.progress,
            })
            .collect();
        bedrock_batch_monitor::digest::order_running(&mut running);
        let ended = jobs
            .iter()
            .filter(|j| !j.needs_polling())
            .filter_map(|j| {
                let end = j.history.iter().rev().find(|h| h.to.is_terminal())?;
                Some(bedrock_batch_monitor::domain::EndedJob {
                    job_arn: j.arn().clone(),
                    job_name: j.snapshot.job_name.clone(),
                    status: end.to.clone(),
                    ended_at: end.at,
                    message: end.message.clone(),
                    submit_time: j.snapshot.submit_time,
                    last_modified_time: j.snapshot.last_modified_time,
                    records: j.snapshot.records,
                    labels: j.labels.clone(),
                    tokens: j.tokens,
                    model_id: j.snapshot.model_id.clone(),
                    record_errors: j.record_errors.clone(),
                    gone: j.gone,
                })
            })
            .collect();
        Self {
            running,
            shown: jobs.iter().map(|j| (j.arn().clone(), j.clone())).collect(),
            ended,
        }
    }

    fn fleet(&self) -> bedrock_batch_monitor::digest::Fleet<'_> {
        bedrock_batch_monitor::digest::Fleet {
            running: &self.running,
            shown: &self.shown,
            ended: &self.ended,
            set_aside: &[],
            prices: &PRICE_BOOK,
        }
    }
}

/// The built-in price table, as a deployed function has it without PRICES.
static PRICE_BOOK: std::sync::LazyLock<bedrock_batch_monitor::prices::PriceBook> =
    std::sync::LazyLock::new(bedrock_batch_monitor::prices::PriceBook::built_in);

fn digest_forms(d: &bedrock_batch_monitor::digest::Digest) -> String {
    forms(&bedrock_batch_monitor::render::digest::render(d, ENV))
}

#[test]
fn a_digest_in_every_form() {
    use bedrock_batch_monitor::digest::{self, DigestMark, Health};
    let at = t0() + Duration::days(1);
    let previous = DigestMark {
        at: at - Duration::days(1),
        until: at - Duration::days(1) - Duration::minutes(5),
        health: Health {
            polls: 100,
            failed_invocations: 1,
            destination_failures: 0,
            member_role_failures: 0,
        },
        pending: None,
    };
    let health = Health {
        polls: 388,
        failed_invocations: 1,
        destination_failures: 0,
        member_role_failures: 0,
    };
    let window = digest::Window::after(Some(&previous), at, Duration::minutes(5));
    assert_eq!(
        window.since, previous.until,
        "each window starts where the last ended"
    );
    assert_eq!(window.until, at - Duration::minutes(5));
    let reads = FleetReads::of(&digest_jobs(at));
    let d = digest::build(reads.fleet(), &window, previous.health, health, at);
    let machine = bedrock_batch_monitor::render::digest::machine_json(&d);
    assert_eq!(machine["event"], "digest");
    assert_eq!(machine["running"].as_array().unwrap().len(), 2);
    assert_eq!(
        machine["running"][0]["jobName"], "weekly-backfill",
        "warned first"
    );
    assert_eq!(
        machine["running"][1]["eta"], "2026-11-28T08:50:00Z",
        "600 left at 100 per 10 min, from the reading 10 min ago"
    );
    assert!(
        machine["running"][0].get("eta").is_none(),
        "no readings, no estimate: absent"
    );
    let ended: Vec<&str> = machine["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(
        ended,
        ["daily-summaries", "ad-hoc-eval"],
        "latest first; last week's left out"
    );
    assert_eq!(machine["ended"][0]["tokens"]["input"], 1_200_000);
    assert_eq!(machine["warnings"][0]["kinds"][0], "queuedTooLong");
    assert_eq!(machine["health"]["polls"], 288);
    assert_eq!(machine["health"]["failedInvocations"], 0);
    let r = bedrock_batch_monitor::render::digest::render(&d, ENV);
    assert!(
        r.attributes
            .contains(&("event".to_owned(), "digest".to_owned()))
    );
    assert!(
        r.attributes
            .contains(&("severity".to_owned(), "info".to_owned()))
    );
    assert!(r.message.len() < MESSAGE_MAX);
    let text = bedrock_batch_monitor::render::digest::plain_text(&d);
    assert!(
        text.contains("about 50 min left at the current rate"),
        "{text}"
    );
    insta::assert_snapshot!("digest_busy", digest_forms(&d));
}

/// `job` moved to account `account` (same region and id).
fn in_account(mut job: StoredJob, account: &str) -> StoredJob {
    let arn = job
        .snapshot
        .job_arn
        .as_str()
        .replace(":123456789012:", &format!(":{account}:"));
    job.snapshot.job_arn = arn.parse().unwrap();
    job
}

#[test]
fn a_digest_of_two_accounts_should_group_its_jobs_by_account_in_every_form() {
    use bedrock_batch_monitor::digest::{self, Health};
    use bedrock_batch_monitor::render::digest as render;
    // GIVEN the digest's jobs, the warned one and the failed one in a member account
    let at = t0() + Duration::days(1);
    let jobs: Vec<StoredJob> = digest_jobs(at)
        .into_iter()
        .map(|j| match j.snapshot.job_name.as_deref() {
            Some("weekly-backfill" | "ad-hoc-eval") => in_account(j, "444455556666"),
            _ => j,
        })
        .collect();
    let window = digest::Window::after(None, at, Duration::minutes(5));
    let health = Health {
        polls: 288,
        failed_invocations: 0,
        destination_failures: 0,
        member_role_failures: 0,
    };
    let d = digest::build(
        FleetReads::of(&jobs).fleet(),
        &window,
        Health::default(),
        health,
        at,
    );
    assert!(d.grouped_by_account());

    // THEN the text gives each account's counts and lists each account's jobs together
    let text = render::plain_text(&d);
    assert!(
        text.contains(
            "By account (2 accounts):\n- 123456789012: 1 running, 1 ended\n- 444455556666: 1 running, 1 ended, 1 warned\n"
        ),
        "{text}"
    );
    let running = text.split("Running (2):\n").nth(1).unwrap();
    assert!(
        running.starts_with("Account 123456789012 (1 running):\n- nightly-embeddings: InProgress"),
        "{text}"
    );
    assert!(
        running.contains("\nAccount 444455556666 (1 running):\n- weekly-backfill: Scheduled"),
        "{text}"
    );
    let ended = text
        .split("Ended since the last digest (2):\n")
        .nth(1)
        .unwrap();
    assert!(
        ended.starts_with("Account 123456789012 (1 ended):\n- daily-summaries: Completed"),
        "{text}"
    );
    assert!(
        ended.contains("\nAccount 444455556666 (1 ended):\n- ad-hoc-eval: Failed"),
        "{text}"
    );
    assert!(
        text.contains("Warnings still open (1):\nAccount 444455556666 (1 warned):\n- weekly-backfill: queuedTooLong"),
        "{text}"
    );

    // AND the JSON names each job's account and counts per account
    let machine = render::machine_json(&d);
    assert_eq!(
        machine["byAccount"],
        json!({
            "123456789012": {"running": 1, "ended": 1, "warnings": 0},
            "444455556666": {"running": 1, "ended": 1, "warnings": 1},
        })
    );
    assert_eq!(machine["accountsTotal"], 2);
    for list in ["running", "ended", "warnings"] {
        for job in machine[list].as_array().unwrap() {
            let arn = job["jobArn"].as_str().unwrap();
            assert_eq!(job["account"], arn.split(':').nth(4).unwrap(), "{job}");
        }
    }

    // AND Slack says the same, account by account
    let chat = render::chatbot_json(&d);
    let desc = chat["content"]["description"].as_str().unwrap();
    assert!(
        desc.contains("*By account (2):* 123456789012: 1 running, 1 ended; 444455556666: 1 running, 1 ended, 1 warned\n"),
        "{desc}"
    );
    assert!(
        desc.contains("_Account 444455556666 (1 running)_\n• weekly-backfill: Scheduled"),
        "{desc}"
    );
    insta::assert_snapshot!("digest_two_accounts", digest_forms(&d));

    // AND a digest of one account is not grouped
    let one = digest::build(
        FleetReads::of(&digest_jobs(at)).fleet(),
        &window,
        Health::default(),
        health,
        at,
    );
    assert!(!one.grouped_by_account());
    let text = render::plain_text(&one);
    assert!(
        !text.contains("By account") && !text.contains("\nAccount "),
        "{text}"
    );
}

/// An organization's worst day: ends in hundreds of accounts, each with
/// Bedrock's longest message. The digest still fits, in a smaller shape,
/// with the counts of the accounts it names and how many more there are.
#[test]
fn a_digest_of_hundreds_of_accounts_should_fit_and_say_how_many_it_left_out() {
    use bedrock_batch_monitor::digest::{self, Health};
    use bedrock_batch_monitor::render::digest as render;
    let at = t0() + Duration::days(1);
    let reason = "x".repeat(2048);
    let jobs: Vec<StoredJob> = (0..600)
        .map(|i| {
            let mut j = stored("Failed", None, None);
            j.snapshot.job_arn = format!(
                "arn:aws:bedrock:us-east-1:{:012}:model-invocation-job/job{i:09}",
                100_000_000_000_u64 + i
            )
            .parse()
            .unwrap();
            j.snapshot.job_name = Some(format!("job-{i}"));
            j.active = false;
            j.history = vec![bedrock_batch_monitor::domain::HistoryEntry {
                from: Some(JobStatus::InProgress),
                to: JobStatus::Failed,
                at: at - Duration::hours(1),
                message: Some(reason.clone()),
            }];
            j
        })
        .collect();
    let window = digest::Window::after(None, at, Duration::minutes(5));
    let d = digest::build(
        FleetReads::of(&jobs).fleet(),
        &window,
        Health::default(),
        Health::default(),
        at,
    );
    assert_eq!(d.accounts.len(), 600);
    let r = render::render(&d, ENV);
    assert!(r.size() <= MESSAGE_MAX, "{} bytes", r.size());
    let sent: serde_json::Value = serde_json::from_str(&r.message).unwrap();
    let machine: serde_json::Value = serde_json::from_str(sent["sqs"].as_str().unwrap()).unwrap();
    assert_eq!(machine["accountsTotal"], 600);
    let named = machine["byAccount"].as_object().unwrap().len();
    assert!((10..600).contains(&named), "{named}");
    let text = sent["email"].as_str().unwrap();
    assert!(
        text.contains(&format!("... and {} more accounts", 600 - named)),
        "{text}"
    );
}

/// Without a token total among the ends, the digest says there is no
/// estimate and why, not "$0.00".
#[test]
fn a_digest_without_token_totals_says_it_has_no_estimate() {
    use bedrock_batch_monitor::digest::{self, Health};
    let at = t0() + Duration::days(1);
    let mut jobs = digest_jobs(at);
    for j in &mut jobs {
        j.tokens = None;
    }
    let window = digest::Window::after(None, at, Duration::minutes(5));
    let d = digest::build(
        FleetReads::of(&jobs).fleet(),
        &window,
        Health::default(),
        Health::default(),
        at,
    );
    let text = bedrock_batch_monitor::render::digest::plain_text(&d);
    assert!(
        text.contains("Estimated spend: none; 2 ended jobs without token totals (their output bucket is not in OUTPUT_BUCKETS"),
        "{text}"
    );
    let machine = bedrock_batch_monitor::render::digest::machine_json(&d);
    assert_eq!(machine["estimatedSpend"]["usd"], 0.0);
    assert_eq!(machine["estimatedSpend"]["jobs"], 0);
    assert_eq!(machine["estimatedSpend"]["noTokens"], 2);
}

#[test]
fn a_quiet_digest_still_goes_out_and_says_so() {
    use bedrock_batch_monitor::digest::{self, Health};
    let at = t0();
    let window = digest::Window::after(None, at, Duration::minutes(5));
    let d = digest::build(
        FleetReads::of(&[]).fleet(),
        &window,
        Health::default(),
        Health {
            polls: 288,
            failed_invocations: 0,
            destination_failures: 0,
            member_role_failures: 0,
        },
        at,
    );
    assert!(d.is_quiet() && d.first);
    let text = bedrock_batch_monitor::render::digest::plain_text(&d);
    assert!(text.contains("All quiet"), "{text}");
    assert_eq!(
        bedrock_batch_monitor::render::digest::subject(&d),
        "[info] Bedrock batch digest: all quiet"
    );
    insta::assert_snapshot!("digest_quiet", digest_forms(&d));
}

/// A digest built at `at` from `polls` polls since the previous one, an hour
/// of window, with `expected` polls the schedule implies.
fn digest_after(
    polls: u64,
    failed: u64,
    expected: Option<u64>,
) -> bedrock_batch_monitor::digest::Digest {
    use bedrock_batch_monitor::digest::{self, DigestMark, Health};
    let at = t0();
    let previous = DigestMark {
        at: at - Duration::hours(1),
        until: at - Duration::hours(1),
        health: Health::default(),
        pending: None,
    };
    let window = digest::Window::after(Some(&previous), at, Duration::zero());
    let mut d = digest::build(
        FleetReads::of(&[]).fleet(),
        &window,
        Health::default(),
        Health {
            polls,
            failed_invocations: failed,
            destination_failures: 0,
            member_role_failures: 0,
        },
        at,
    );
    d.expected_polls = expected;
    d
}

#[test]
fn a_digest_after_no_poll_should_say_in_its_subject_that_the_monitor_is_not_polling() {
    use bedrock_batch_monitor::render::digest;
    // GIVEN nothing running or ended, and no poll since the last digest
    let d = digest_after(0, 0, None);

    // THEN it is no "all quiet": the subject warns, and so does every form
    assert!(!d.is_quiet());
    let subject = digest::subject_in(&d, "prod");
    assert!(
        subject.starts_with("[warning] [prod] Bedrock batch digest: not polling"),
        "{subject}"
    );
    let text = digest::plain_text(&d);
    assert!(
        text.contains("Warning: the monitor is not polling"),
        "{text}"
    );
    assert!(!text.contains("All quiet"), "{text}");
    let r = digest::render(&d, "prod");
    assert!(
        r.attributes
            .contains(&("severity".to_owned(), "warning".to_owned())),
        "{:?}",
        r.attributes
    );

    // AND far fewer polls than the schedule implies warn too; about as many do not
    let d = digest_after(3, 0, Some(60));
    assert!(
        digest::subject(&d).contains("not polling"),
        "{}",
        digest::subject(&d)
    );
    let d = digest_after(58, 0, Some(60));
    assert_eq!(
        digest::subject(&d),
        "[info] Bedrock batch digest: all quiet"
    );
}

#[test]
fn a_long_environment_should_be_shortened_before_any_count_of_the_digest_subject() {
    use bedrock_batch_monitor::render::digest;
    // GIVEN a digest with failed runs, from a monitor whose environment
    // takes the 128 characters allowed
    let d = digest_after(60, 3, Some(60));
    let env = "e".repeat(128);

    // THEN the subject fits and still says every count
    let subject = digest::subject_in(&d, &env);
    assert!(subject.len() < 100, "{subject}");
    assert!(
        subject.ends_with(": 0 running, 0 ended, 3 failed runs"),
        "{subject}"
    );
    assert!(subject.contains("eee...] digest: "), "{subject}");
}
