//! The whole flow through the real handler and real SDK clients, against moto
//! (DynamoDB, SNS, SQS) and the fake Bedrock. Notifications are read from an SQS
//! queue subscribed to the topic, as a subscriber sees them.

mod support;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use fake_bedrock::{Fault, FaultKind, Records, SeedJob, StatusChange};
use serde_json::json;
use support::{World, native_event, sdk_config};

fn fail_with(message: &str) -> StatusChange {
    StatusChange {
        status: "Failed".into(),
        message: Some(message.into()),
        records: None,
    }
}

async fn track(w: &World, arn: &str) {
    let out = w.ok(json!({"track": [arn]})).await;
    assert_eq!(out["tracked"], json!([arn]), "{out}");
}

#[tokio::test]
async fn when_a_job_runs_to_completion_should_notify_each_transition_once_with_history() {
    // GIVEN a submitted job that we track
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("nightly-embeddings"));
    track(&w, &arn).await;

    // WHEN it moves through its lifecycle with a poll after each step
    for status in ["Validating", "InProgress"] {
        w.bedrock.set(&arn, status);
        let s = w.ok(json!({"poll": {}})).await;
        assert_eq!(
            (s["transitions"].as_u64(), s["notified"].as_u64()),
            (Some(1), Some(1)),
            "{s}"
        );
    }
    w.bedrock.set_status(
        &arn,
        StatusChange {
            status: "Completed".into(),
            message: None,
            records: Some(Records {
                total: 10,
                processed: 10,
                success: 10,
                error: 0,
            }),
        },
    );
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 1, "{s}");

    // THEN the subscriber got one message per transition, in order
    let got = w.drain().await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|m| {
            (
                m.body["previousStatus"].as_str().unwrap_or("-").to_owned(),
                m.body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("-", "Submitted"),
            ("Submitted", "Validating"),
            ("Validating", "InProgress"),
            ("InProgress", "Completed")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let last = &got[3];
    assert_eq!(last.body["schemaVersion"], "1");
    assert_eq!(last.body["jobArn"], arn.as_str());
    assert_eq!(last.body["jobName"], "nightly-embeddings");
    assert_eq!(
        last.body["records"],
        json!({"total": 10, "processed": 10, "success": 10, "error": 0})
    );
    assert!(last.body["endTime"].is_string() && last.body["submitTime"].is_string());
    assert!(last.body["message"].is_null());
    assert_eq!(last.attributes["status"], "Completed");
    assert_eq!(last.attributes["previousStatus"], "InProgress");
    assert_eq!(last.attributes["severity"], "success");
    assert_eq!(
        last.attributes["transitionId"],
        last.body["transitionId"].as_str().unwrap()
    );
    assert!(!got[0].attributes.contains_key("previousStatus"));
    assert!(
        last.subject
            .as_deref()
            .unwrap()
            .contains("InProgress -> Completed")
    );

    // AND the stored history holds every step, and the finished job left the work index with a TTL
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(
        support::history_statuses(&d),
        ["Submitted", "Validating", "InProgress", "Completed"]
    );
    assert_eq!(d["pendingNotifications"], 0);
    let item = w.item(&arn).await.unwrap();
    assert!(
        !item.contains_key("pollShard"),
        "finished job still in the work index"
    );
    assert!(matches!(item.get("expiresAt"), Some(AttributeValue::N(_))));

    // AND a further poll does not touch it
    let calls = w.bedrock.count("GetModelInvocationJob");
    let s = w.ok(json!({})).await;
    assert_eq!(s["polled"], 0);
    assert_eq!(w.bedrock.count("GetModelInvocationJob"), calls);
}

#[tokio::test]
async fn when_a_job_fails_should_carry_bedrocks_reason_in_every_form() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("bad-input"));
    track(&w, &arn).await;
    w.bedrock.set(&arn, "InProgress");
    w.ok(json!({})).await;
    let reason = "Input file s3://batch-input/bad-input/input.jsonl is not valid JSONL at line 3";
    w.bedrock.set_status(&arn, fail_with(reason));
    w.ok(json!({})).await;

    let got = w.drain().await;
    let failed = got.last().unwrap();
    assert_eq!(failed.body["status"], "Failed");
    assert_eq!(failed.body["message"], reason);
    assert_eq!(failed.attributes["severity"], "error");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["message"], reason);
    assert_eq!(d["history"][2]["message"], reason);
}

#[tokio::test]
async fn when_nothing_changed_should_cost_one_bedrock_call_and_no_write_or_publish() {
    let w = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let arns: Vec<String> = (0..3)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("steady-{i}"))))
        .collect();
    for a in &arns {
        track(&w, a).await;
    }
    w.drain().await;
    let before = w.bedrock.count("GetModelInvocationJob");

    let (monitor, writes) = w.counting_monitor();
    let s = support_handle(&monitor, json!({"poll": {}})).await;

    assert_eq!(s["polled"], 3, "{s}");
    assert_eq!(s["transitions"], 0);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "an unchanged poll wrote to the table"
    );
    assert_eq!(w.bedrock.count("GetModelInvocationJob") - before, 3);
    assert!(w.drain().await.is_empty(), "an unchanged poll published");
}

async fn support_handle<S, T, N>(
    m: &bedrock_batch_monitor::monitor::Monitor<S, T, N>,
    ev: serde_json::Value,
) -> serde_json::Value
where
    S: bedrock_batch_monitor::ports::JobSource,
    T: bedrock_batch_monitor::ports::Jobs
        + bedrock_batch_monitor::ports::Outbox
        + bedrock_batch_monitor::ports::WorkList
        + bedrock_batch_monitor::ports::Fleet
        + bedrock_batch_monitor::ports::RouteStore,
    N: bedrock_batch_monitor::ports::Notifier,
{
    bedrock_batch_monitor::handler::handle(m, &ev, &support::invocation(None))
        .await
        .expect("invocation succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_two_polls_overlap_should_notify_each_transition_exactly_once() {
    let w = World::new().await;
    let arns: Vec<String> = (0..12)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("race-{i}"))))
        .collect();
    w.ok(json!({"track": arns})).await;
    assert_eq!(w.drain().await.len(), 12);
    for a in &arns {
        w.bedrock.set(a, "InProgress");
    }
    w.bedrock.set_latency(Duration::from_millis(40));

    let (a, b) = (w.monitor(), w.monitor());
    let (ra, rb) = tokio::join!(
        w.invoke(&a, json!({"poll": {}})),
        w.invoke(&b, json!({"poll": {}}))
    );
    let (ra, rb) = (ra.expect("first poll"), rb.expect("second poll"));
    assert_eq!(
        ra["transitions"].as_u64().unwrap() + rb["transitions"].as_u64().unwrap(),
        12,
        "{ra} {rb}"
    );

    let got = w.drain().await;
    let ids: HashSet<&str> = got
        .iter()
        .map(|m| m.body["transitionId"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 12, "duplicate or missing notifications: {got:?}");
    assert_eq!(ids.len(), 12);
    assert!(got.iter().all(|m| m.body["status"] == "InProgress"));
}

#[tokio::test]
async fn when_the_topic_is_unreachable_should_fail_the_run_and_deliver_on_the_next() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("outage"));
    track(&w, &arn).await;
    w.drain().await;
    w.bedrock
        .set_status(&arn, fail_with("model access revoked"));

    // WHEN SNS cannot be reached during one poll
    let dead_sns =
        aws_sdk_sns::Client::new(&sdk_config("http://127.0.0.1:9", support::REGION).await);
    let err = w
        .invoke(&w.monitor_with_sns(dead_sns), json!({"poll": {}}))
        .await
        .unwrap_err();
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(
        diag.error_type, "TopicUnavailable",
        "{}",
        diag.error_message
    );

    // THEN the transition is recorded and kept pending
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["status"], "Failed");
    assert_eq!(d["pendingNotifications"], 1);
    assert!(w.drain().await.is_empty());

    // AND the next poll delivers it, once, without calling it a new transition
    let s = w.ok(json!({"poll": {}})).await;
    assert_eq!(
        (s["transitions"].as_u64(), s["notified"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    let got = w.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["message"], "model access revoked");
    assert_eq!(got[0].body["previousStatus"], "Submitted");
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn when_a_job_lives_in_another_region_should_ask_that_region() {
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("far-away").in_region("eu-west-3"));
    track(&w, &arn).await;
    w.bedrock.set(&arn, "Scheduled");
    w.ok(json!({})).await;

    let got = w.drain().await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].attributes["region"], "eu-west-3");
    let regions: HashSet<Option<String>> = w
        .bedrock
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetModelInvocationJob")
        .map(|c| c.region)
        .collect();
    assert_eq!(regions, HashSet::from([Some("eu-west-3".to_owned())]));
}

#[tokio::test]
async fn when_a_job_disappears_should_untrack_it_after_the_limit_and_say_so() {
    let w = World::with_env(&[("NOT_FOUND_LIMIT", "2")]).await;
    let arn = w.bedrock.seed(SeedJob::named("vanishing"));
    track(&w, &arn).await;
    w.drain().await;
    w.bedrock.remove(&arn);

    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 1, "{s}");
    assert!(
        s["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("NotFound 1 of 2"),
        "{s}"
    );
    assert!(w.drain().await.is_empty());

    let s = w.ok(json!({})).await;
    assert_eq!(s["untracked"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["event"], "untracked");
    assert!(got[0].subject.as_deref().unwrap().contains("untracked"));
    let item = w.item(&arn).await.unwrap();
    assert!(!item.contains_key("pollShard"));

    let s = w.ok(json!({})).await;
    assert_eq!(s["polled"], 0, "an untracked job is still polled: {s}");
}

#[tokio::test]
async fn when_a_native_event_repeats_what_the_poll_recorded_should_not_notify_again() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("evented"));
    track(&w, &arn).await;
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    assert_eq!(w.drain().await.len(), 2);

    let event = native_event(&arn, "Completed");
    let s = w.ok(event).await;
    assert_eq!(s["transitions"], 0, "{s}");
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn when_a_native_event_names_an_untracked_job_should_track_and_notify_it() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("adopted"));
    w.bedrock.set(&arn, "InProgress");
    let s = w.ok(native_event(&arn, "InProgress")).await;
    assert_eq!(s["tracked"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["status"], "InProgress");
    assert!(got[0].body["previousStatus"].is_null());
}

#[tokio::test]
async fn when_track_names_a_malformed_arn_or_an_unknown_job_should_say_so_and_write_nothing() {
    let w = World::new().await;
    let bad = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/NOT-AN-ID";
    let unknown = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/zzzzzzzzzzzz";
    let s = w.ok(json!({"track": [bad, unknown]})).await;

    assert_eq!(s["tracked"], json!([]));
    assert_eq!(s["failed"], 2, "{s}");
    let errors = s["errors"].as_array().unwrap();
    let for_job = |a: &str| {
        errors
            .iter()
            .find(|e| e["jobArn"] == a)
            .map(|e| e["error"].as_str().unwrap().to_owned())
    };
    assert!(
        for_job(bad)
            .unwrap()
            .contains("is not a Bedrock batch inference job ARN"),
        "{s}"
    );
    assert!(for_job(unknown).unwrap().contains("no such job"), "{s}");
    assert_eq!(w.item_count().await, 0);
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn when_track_repeats_should_be_idempotent() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("twice"));
    track(&w, &arn).await;
    let s = w.ok(json!({"track": [arn]})).await;
    assert_eq!(s["alreadyTracked"], json!([arn]), "{s}");
    assert_eq!(w.drain().await.len(), 1);
}

#[tokio::test]
async fn when_the_table_holds_items_that_are_not_ours_should_skip_and_report_them() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("neighbour"));
    track(&w, &arn).await;
    w.bedrock.set(&arn, "InProgress");
    for item in [
        vec![
            ("jobArn", AttributeValue::S("customer#42".into())),
            ("pollShard", AttributeValue::N("1".into())),
        ],
        vec![
            (
                "jobArn",
                AttributeValue::S(
                    "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/aaaaaaaaaaaa"
                        .into(),
                ),
            ),
            ("pollShard", AttributeValue::N("2".into())),
            ("status", AttributeValue::N("7".into())),
            ("version", AttributeValue::N("1".into())),
        ],
    ] {
        let mut put = w.ddb.put_item().table_name(&w.table);
        for (k, v) in item {
            put = put.item(k, v);
        }
        put.send().await.unwrap();
    }

    let s = w.ok(json!({})).await;
    assert_eq!(s["skipped"], 2, "{s}");
    assert_eq!(s["transitions"], 1, "{s}");
    let text = s["errors"].to_string();
    assert!(
        text.contains("customer#42") && text.contains("status is a number"),
        "{s}"
    );
}

#[tokio::test]
async fn when_bedrock_throttles_one_job_should_report_it_and_poll_the_others() {
    let w = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let a = w.bedrock.seed(SeedJob::named("throttled"));
    let b = w.bedrock.seed(SeedJob::named("fine"));
    w.ok(json!({"track": [a, b]})).await;
    w.bedrock.set(&a, "InProgress");
    w.bedrock.set(&b, "InProgress");
    w.bedrock.inject(Fault {
        kind: FaultKind::Throttling,
        times: None,
        job_id: Some(a.rsplit('/').next().unwrap().to_owned()),
        every: None,
        operation: None,
        seen: 0,
    });

    let s = w.ok(json!({})).await;
    assert_eq!(
        (
            s["polled"].as_u64(),
            s["failed"].as_u64(),
            s["transitions"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["errors"][0]["jobArn"], a.as_str());
    assert!(
        s["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("throttled"),
        "{s}"
    );

    // The SDK retried (the tests configure 3 attempts), and the next poll catches up.
    let attempts = w
        .bedrock
        .calls()
        .iter()
        .filter(|c| {
            c.operation == "GetModelInvocationJob" && c.target.as_deref() == Some(a.as_str())
        })
        .count();
    assert_eq!(
        attempts,
        1 + 3,
        "one call while tracking, then three attempts"
    );
    w.bedrock.clear_faults();
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 1, "{s}");
}

#[tokio::test]
async fn when_every_bedrock_call_is_denied_should_report_each_job_and_not_fail_the_invocation() {
    // GIVEN a tracked job the role may not read (AccessDenied is the job's)
    let w = World::new().await;
    let a = w.bedrock.seed(SeedJob::named("denied"));
    track(&w, &a).await;
    w.bedrock.inject(Fault {
        kind: FaultKind::AccessDenied,
        times: None,
        job_id: None,
        every: None,
        operation: None,
        seen: 0,
    });
    // WHEN a poll runs
    let s = w.ok(json!({})).await;
    // THEN the job's error is in the summary, and the invocation succeeds
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["errors"][0]["kind"], "BedrockAccessDenied", "{s}");
    assert_eq!(s["errors"][0]["jobArn"], a.as_str(), "{s}");
}

#[tokio::test]
async fn when_bedrock_is_down_for_the_whole_poll_should_fail_the_invocation() {
    // GIVEN a tracked job, and Bedrock failing every request with a server error
    let w = World::new().await;
    let a = w.bedrock.seed(SeedJob::named("unanswered"));
    track(&w, &a).await;
    w.bedrock.inject(Fault {
        kind: FaultKind::InternalServer,
        times: None,
        job_id: None,
        every: None,
        operation: None,
        seen: 0,
    });
    // WHEN a poll runs
    let err = w.invoke(&w.monitor(), json!({})).await.unwrap_err();
    // THEN the invocation fails, so the error alarm fires and Lambda retries
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(
        diag.error_type, "BedrockUnavailable",
        "{}",
        diag.error_message
    );
    assert!(
        diag.error_message.contains("InternalServer"),
        "{}",
        diag.error_message
    );
}

#[tokio::test]
async fn when_bedrock_throttles_the_whole_poll_should_succeed_so_lambda_does_not_retry_it() {
    // GIVEN two tracked jobs, and Bedrock throttling every request
    let w = World::new().await;
    let a = w.bedrock.seed(SeedJob::named("throttled-a"));
    let b = w.bedrock.seed(SeedJob::named("throttled-b"));
    w.ok(json!({"track": [a, b]})).await;
    w.bedrock.inject(Fault {
        kind: FaultKind::Throttling,
        times: None,
        job_id: None,
        every: None,
        operation: None,
        seen: 0,
    });
    // WHEN a poll runs
    let result = w.invoke(&w.monitor(), json!({})).await;
    // THEN it succeeds (Lambda's async retries would triple the load on a
    // service that asked for less; the next schedule is the retry) and says so
    let s = result
        .as_ref()
        .expect("a throttled poll is no failed invocation");
    assert_eq!(s["bedrockThrottled"], true, "{s}");
    assert_eq!(s["failed"], 2, "{s}");
    assert!(
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "BedrockThrottling"),
        "{s}"
    );
    // AND the metrics still count it, so BedrockErrorsAlarm sees it
    let report = bedrock_batch_monitor::handler::report("Poll", &result, Duration::ZERO);
    assert_eq!(report.outcome, "Ok");
    assert_eq!(report.bedrock_errors.get("BedrockThrottling"), Some(&2));
    // AND a poll Bedrock answers carries no such flag
    w.bedrock.clear_faults();
    let s = w.ok(json!({})).await;
    assert!(s.get("bedrockThrottled").is_none(), "{s}");
}

#[tokio::test]
async fn when_the_deadline_is_near_should_defer_the_rest_to_the_next_cycle() {
    // GIVEN four jobs polled one at a time, each Bedrock call taking 300 ms
    let w = World::with_env(&[("MAX_CONCURRENCY", "1"), ("BULK_READ_MIN", "off")]).await;
    let arns: Vec<String> = (0..4)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("late-{i}"))))
        .collect();
    w.ok(json!({"track": arns})).await;
    w.bedrock.set_latency(Duration::from_millis(300));

    // WHEN the invocation has one second left (the margin shrinks to half of it)
    let m = w.monitor();
    let s = bedrock_batch_monitor::handler::handle(
        &m,
        &json!({}),
        &support::invocation(Some(Instant::now() + Duration::from_secs(1))),
    )
    .await
    .unwrap();

    // THEN it starts what fits and defers the rest
    let (polled, deferred) = (
        s["polled"].as_u64().unwrap(),
        s["deferred"].as_u64().unwrap(),
    );
    assert!(
        polled >= 1 && deferred >= 1 && polled + deferred == 4,
        "{s}"
    );

    // AND with no time left at all it starts nothing
    let before = w.bedrock.count("GetModelInvocationJob");
    let s = bedrock_batch_monitor::handler::handle(
        &m,
        &json!({}),
        &support::invocation(Some(Instant::now())),
    )
    .await
    .unwrap();
    assert_eq!(s["polled"], 0, "{s}");
    assert_eq!(w.bedrock.count("GetModelInvocationJob"), before);
}

#[tokio::test]
async fn when_bedrock_reports_an_unknown_status_should_record_it_as_it_came() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("novel"));
    track(&w, &arn).await;
    w.bedrock.set(&arn, "Paused");
    w.ok(json!({})).await;
    let got = w.drain().await;
    assert_eq!(got[1].body["status"], "Paused");
    assert_eq!(got[1].attributes["severity"], "info");
    let item = w.item(&arn).await.unwrap();
    assert!(
        item.contains_key("pollShard"),
        "an unknown status is not terminal"
    );
}

#[tokio::test]
async fn when_the_event_is_unrecognized_should_fail_naming_it_and_write_nothing() {
    let w = World::new().await;
    let err = w
        .invoke(&w.monitor(), json!({"hello": "world"}))
        .await
        .unwrap_err();
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "InvalidEvent");
    assert!(
        diag.error_message.contains(r#"{"hello":"world"}"#),
        "{}",
        diag.error_message
    );
    assert_eq!(w.item_count().await, 0);
}

#[tokio::test]
async fn when_untracked_should_stop_polling_the_job() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("dropped"));
    track(&w, &arn).await;
    let s = w.ok(json!({"untrack": [arn]})).await;
    assert_eq!(s["untracked"], json!([arn]));
    let s = w.ok(json!({"untrack": [arn]})).await;
    assert_eq!(s["notTracked"], json!([arn]));
    let s = w.ok(json!({})).await;
    assert_eq!(s["polled"], 0);
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["tracked"], false);
}

#[tokio::test]
async fn when_track_names_a_bare_job_id_should_find_it_in_the_functions_region() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("by-id"));
    let id = arn.rsplit('/').next().unwrap();
    let s = w.ok(json!({"track": [id]})).await;
    assert_eq!(s["tracked"], json!([arn]), "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["jobArn"], arn.as_str());
}

#[tokio::test]
async fn when_the_table_is_unreachable_should_fail_the_invocation_as_a_table_fault() {
    use bedrock_batch_monitor::adapters::{
        bedrock::BedrockJobSource, dynamodb::DynamoJobStore, sns::SnsNotifier,
    };
    use bedrock_batch_monitor::monitor::Monitor;

    let w = World::new().await;
    let dead =
        aws_sdk_dynamodb::Client::new(&sdk_config("http://127.0.0.1:9", support::REGION).await);
    let m = Monitor::new(
        BedrockJobSource::new(w.bedrock_sdk.clone()).with_rate_limit(w.config.bedrock_max_rps),
        DynamoJobStore::new(dead, &w.table),
        SnsNotifier::new(w.sns.clone(), &w.topic_arn),
        w.config.clone(),
        support::REGION,
    );
    for event in [
        json!({}),
        native_event(
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz",
            "Failed",
        ),
    ] {
        let err = bedrock_batch_monitor::handler::handle(&m, &event, &support::invocation(None))
            .await
            .unwrap_err();
        let diag: lambda_runtime::Diagnostic = err.into();
        assert_eq!(
            diag.error_type, "TableUnavailable",
            "{}",
            diag.error_message
        );
    }
    assert_eq!(
        w.bedrock.count("GetModelInvocationJob"),
        0,
        "no Bedrock call without the table"
    );
}
