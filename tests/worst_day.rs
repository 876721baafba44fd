//! The worst day (issue 20), through the real handler and SDK clients against
//! moto and the fake Bedrock: people re-tracking jobs while they end, answers
//! that arrive late, an event that loses a write race, a count that stops
//! moving, and a digest of hundreds of failures, asked for again and again.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bedrock_batch_monitor::monitor::Monitor;
use fake_bedrock::{SeedJob, StatusChange};
use serde_json::{Value, json};
use support::{CountingStore, Received, World, native_event, records};

/// Waits until the fake has answered (or begun answering) more than `before`
/// calls of `operation`.
async fn wait_for_call(w: &World, operation: &str, before: usize) {
    for _ in 0..300 {
        if w.bedrock.count(operation) > before {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no {operation} call came");
}

fn statuses(got: &[Received], arn: &str) -> Vec<String> {
    got.iter()
        .filter(|m| m.body["jobArn"] == arn && m.attributes["event"] == "statusChanged")
        .map(|m| m.body["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_tracked_again_while_it_ends_should_stay_ended_and_be_already_tracked() {
    // GIVEN a tracked job, running
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("relabelled").with_status("InProgress"));
    w.ok(json!({"track": [arn]})).await;
    w.drain().await;

    // WHEN someone tracks it again to add a label, and Bedrock's answer to
    // that (InProgress) is on its way while the job completes and Bedrock's
    // event records the end, notifies it and retires the job
    w.bedrock.set_get_delay(Duration::from_millis(3000));
    let gets = w.bedrock.count("GetModelInvocationJob");
    let retrack = {
        let w = &w;
        let arn = arn.clone();
        async move {
            w.ok(json!({"track": [{"jobArn": arn, "labels": {"team": "search"}}]}))
                .await
        }
    };
    let end = async {
        wait_for_call(&w, "GetModelInvocationJob", gets).await;
        w.bedrock.set_get_delay(Duration::ZERO);
        w.bedrock.set(&arn, "Completed");
        w.ok(native_event(&arn, "Completed")).await
    };
    let (answer, event) = futures::join!(retrack, end);
    assert_eq!(
        event["transitions"], 1,
        "the event recorded the end: {event}"
    );

    // THEN the job was tracked when the request came: alreadyTracked, label merged
    assert_eq!(answer["alreadyTracked"], json!([arn]), "{answer}");
    assert_eq!(answer["tracked"], json!([]), "{answer}");
    assert_eq!(answer["labelsMerged"][0]["labels"]["team"], "search");
    // AND subscribers heard the end once, and nothing after it
    let got = w.drain().await;
    assert_eq!(statuses(&got, &arn), ["Completed"], "{got:?}");
    // AND the item still says Completed, out of the work list
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["status"], "Completed", "{d}");
    assert_eq!(d["labels"]["team"], "search", "{d}");
    assert_eq!(
        support::history_statuses(&d),
        ["InProgress", "Completed"],
        "{d}"
    );
    let s = w.ok(json!({})).await;
    assert_eq!(s["polled"], 0, "an ended job is not polled again: {s}");
}

#[tokio::test]
async fn a_late_answer_should_never_rearm_a_job_that_ended_while_it_was_on_its_way() {
    // GIVEN a job someone untracked while it ran
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("untracked-then-ended").with_status("InProgress"));
    w.ok(json!({"track": [arn]})).await;
    w.ok(json!({"untrack": [arn]})).await;
    w.drain().await;
    // WHEN it is tracked again, and while Bedrock's answer (InProgress) is on
    // its way another request tracks it and records its end
    w.bedrock.set_get_delay(Duration::from_millis(3000));
    let gets = w.bedrock.count("GetModelInvocationJob");
    let slow = {
        let w = &w;
        let arn = arn.clone();
        async move { w.ok(json!({"track": [arn]})).await }
    };
    let fast = async {
        wait_for_call(&w, "GetModelInvocationJob", gets).await;
        w.bedrock.set_get_delay(Duration::ZERO);
        w.bedrock.set(&arn, "Completed");
        w.ok(json!({"track": [arn]})).await
    };
    let (slow, fast) = futures::join!(slow, fast);
    assert_eq!(fast["tracked"], json!([arn]), "{fast}");
    // THEN the late answer re-arms nothing: asked again, Bedrock says Completed,
    // and the job the other request tracked is already tracked
    assert_eq!(slow["tracked"], json!([]), "{slow}");
    assert_eq!(slow["alreadyTracked"], json!([arn]), "{slow}");
    let got = w.drain().await;
    assert_eq!(statuses(&got, &arn), ["Completed"], "{got:?}");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["status"], "Completed", "{d}");
}

#[tokio::test]
async fn a_stale_list_page_should_never_move_the_counts_back() {
    // GIVEN a running job whose count the monitor has written down, read by
    // list pages (bulk reads) that arrive seconds after they were computed
    let w = World::with_env(&[("BULK_READ_MIN", "1"), ("WARN_STALLED_AFTER", "20s")]).await;
    let arn = w.bedrock.seed(
        SeedJob::named("counting")
            .with_status("InProgress")
            .with_records(records(1000, 100)),
    );
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.set_records(&arn, records(1000, 200));
    w.ok(json!({})).await;
    // The next reading may be written once a quarter of WARN_STALLED_AFTER has passed.
    tokio::time::sleep(Duration::from_millis(5200)).await;

    // WHEN a poll's list page is computed at 500, and while it is on its way
    // the count reaches 900 and Bedrock's event records it
    w.bedrock.set_records(&arn, records(1000, 500));
    w.bedrock.set_list_delay(Duration::from_millis(3000));
    let lists = w.bedrock.count("ListModelInvocationJobs");
    let poll = w.ok(json!({}));
    let event = async {
        wait_for_call(&w, "ListModelInvocationJobs", lists).await;
        w.bedrock.set_records(&arn, records(1000, 900));
        w.ok(native_event(&arn, "InProgress")).await
    };
    futures::join!(poll, event);
    w.bedrock.set_list_delay(Duration::ZERO);

    // THEN the stored count is the event's 900, not the page's 500
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["records"]["processed"], 900, "{d}");
}

#[tokio::test]
async fn an_event_that_loses_a_write_race_should_record_its_news_at_once() {
    // GIVEN a scheduled job read by list pages that arrive late
    let w = World::with_env(&[("BULK_READ_MIN", "1")]).await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("raced").with_status("Scheduled"));
    w.ok(json!({"track": [arn]})).await;
    w.drain().await;
    w.bedrock.set(&arn, "InProgress");
    w.bedrock.set_list_delay(Duration::from_millis(1500));

    // WHEN a poll's page (InProgress) is on its way, the job completes, and
    // Bedrock's event reads the item before the poll records InProgress but
    // writes after it (its own Get answer is slower still)
    let lists = w.bedrock.count("ListModelInvocationJobs");
    let poll = w.ok(json!({}));
    let event = async {
        wait_for_call(&w, "ListModelInvocationJobs", lists).await;
        w.bedrock.set(&arn, "Completed");
        w.bedrock.set_get_delay(Duration::from_millis(3500));
        w.ok(native_event(&arn, "Completed")).await
    };
    let (_, event) = futures::join!(poll, event);
    w.bedrock.set_list_delay(Duration::ZERO);
    w.bedrock.set_get_delay(Duration::ZERO);

    // THEN the event recorded Completed on the item as the poll left it,
    // without waiting for the next poll
    assert_eq!(event["transitions"], 1, "{event}");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["status"], "Completed", "{d}");
    let got = w.drain().await;
    assert_eq!(statuses(&got, &arn), ["InProgress", "Completed"], "{got:?}");
}

#[tokio::test]
async fn an_estimate_should_never_be_in_the_past_and_a_stalled_job_quotes_none() {
    // GIVEN two running jobs: one almost done, one far from it
    let w = World::with_env(&[("WARN_STALLED_AFTER", "4s")]).await;
    let near = w.bedrock.seed(
        SeedJob::named("nearly-done")
            .with_status("InProgress")
            .with_records(records(1000, 0)),
    );
    let far = w.bedrock.seed(
        SeedJob::named("long-haul")
            .with_status("InProgress")
            .with_records(records(1_000_000, 0)),
    );
    w.ok(json!({"track": [near, far]})).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // WHEN their counts reach 900 (a rate) and then stand still
    w.bedrock.set_records(&near, records(1000, 900));
    w.bedrock.set_records(&far, records(1_000_000, 900));
    w.ok(json!({})).await;
    // 100 left at 900 a second: the estimate is about 0.1 s ahead; wait past it.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // THEN list, describe and the digest give no estimate for the job whose
    // estimate passed, and keep the one still ahead
    let listed = w.ok(json!({"list": {}})).await;
    let eta_of = |answer: &Value, arn: &str| -> Option<Value> {
        answer["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["jobArn"] == arn)
            .and_then(|j| j.get("eta").cloned())
    };
    assert_eq!(eta_of(&listed, &near), None, "{listed}");
    let far_eta = eta_of(&listed, &far).expect("the slow job has an estimate");
    let far_eta: chrono::DateTime<chrono::Utc> =
        far_eta.as_str().unwrap().parse().expect("an ISO time");
    assert!(far_eta > chrono::Utc::now(), "{far_eta}");
    let d = w.ok(json!({"describe": near})).await;
    assert!(d.get("eta").is_none(), "{d}");
    w.drain().await;
    let digest = World::digest_now(&w).await;
    for r in digest.body["running"].as_array().unwrap() {
        if let Some(eta) = r.get("eta") {
            let eta: chrono::DateTime<chrono::Utc> = eta.as_str().unwrap().parse().unwrap();
            assert!(
                eta > chrono::Utc::now(),
                "a digest's estimate is ahead: {r}"
            );
            assert_eq!(r["jobArn"], far.as_str());
        }
    }

    // AND when the count has stood still long enough to warn, the warning
    // quotes no estimate in any form
    tokio::time::sleep(Duration::from_millis(3000)).await;
    w.ok(json!({})).await;
    let got = w.drain().await;
    let stalled: Vec<&Received> = got
        .iter()
        .filter(|m| m.attributes.get("warning").map(String::as_str) == Some("stalled"))
        .collect();
    assert_eq!(stalled.len(), 2, "{got:?}");
    for m in stalled {
        assert!(m.body.get("eta").is_none(), "{}", m.body);
        assert!(
            !m.subject.as_deref().unwrap_or_default().contains("left"),
            "{:?}",
            m.subject
        );
    }
}

impl World {
    /// Sends `{"digest": {}}` and returns the digest the subscriber received.
    async fn digest_now(&self) -> Received {
        let answer = self.ok(json!({"digest": {}})).await;
        assert_eq!(answer["published"], true, "{answer}");
        let got = self.drain().await;
        let digests: Vec<Received> = got
            .into_iter()
            .filter(|m| m.attributes.get("event").map(String::as_str) == Some("digest"))
            .collect();
        assert_eq!(digests.len(), 1, "one digest: {digests:?}");
        digests.into_iter().next().unwrap()
    }
}

fn long_message(i: usize) -> String {
    let mut m = format!("Job {i}: the input file is not valid JSONL. ");
    while m.chars().count() < 2048 {
        m.push_str("Record 17 has no \"recordId\" and its \"modelInput\" is not an object. ");
    }
    m.chars().take(2048).collect()
}

#[tokio::test]
async fn the_digest_of_500_failures_with_long_messages_should_go_out_and_fit() {
    // GIVEN 500 jobs that failed, each with Bedrock's longest message
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0"), ("MAX_CONCURRENCY", "64")]).await;
    let digests = w.subscribe_filtered(r#"{"event": ["digest"]}"#).await;
    let arns: Vec<String> = (0..500)
        .map(|i| {
            w.bedrock
                .seed(SeedJob::named(&format!("bad-input-{i:03}")).with_status("InProgress"))
        })
        .collect();
    for chunk in arns.chunks(100) {
        w.ok(json!({"track": chunk})).await;
    }
    for (i, arn) in arns.iter().enumerate() {
        w.bedrock.set_status(
            arn,
            StatusChange {
                status: "Failed".into(),
                message: Some(long_message(i)),
                records: None,
            },
        );
    }
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 500, "{}", s["errors"]);

    // WHEN the digest is asked for
    let answer = w.ok(json!({"digest": {}})).await;

    // THEN it goes out, whole in its counts, its lists cut to fit
    assert_eq!(answer["published"], true, "{answer}");
    assert_eq!(answer["ended"], 500, "{answer}");
    let got = w.drain_queue(&digests).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0].body;
    assert_eq!(body["endedTotal"], 500);
    assert_eq!(body["endedByStatus"]["Failed"], 500);
    let shown = body["ended"].as_array().unwrap().len();
    assert!(shown > 0 && shown < 500, "{shown} shown");
    for e in body["ended"].as_array().unwrap() {
        let m = e["message"].as_str().unwrap_or_default();
        assert!(m.len() < 2048, "messages are cut: {}", m.len());
    }
    // AND the email form says how many were left out, and how to see them
    let sent = support::moto_sent(&w.topic_arn);
    let text = sent
        .iter()
        .rev()
        .find(|m| m["subject"].as_str().unwrap_or_default().contains("digest"))
        .map(|m| {
            let structure: Value = serde_json::from_str(m["message"].as_str().unwrap()).unwrap();
            structure["email"].as_str().unwrap().to_owned()
        })
        .expect("the digest was published");
    let tail = &text[text.len().saturating_sub(1200)..];
    assert!(
        text.contains("more Failed: invoke the function with {\"list\": {\"ended\": true}}"),
        "{tail}"
    );
}

#[tokio::test]
async fn a_digest_refused_for_its_content_should_go_out_as_counts_and_never_blame_the_topic() {
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("one").with_status("InProgress"));
    w.ok(json!({"track": [arn]})).await;
    w.drain().await;
    // WHEN SNS refuses the full digest for its content once
    let refuse = |times: u64| {
        support::MotoFault::add(json!({
            "service": "sns", "action": "Publish", "contains": w.topic_arn,
            "status": 400, "code": "InvalidParameter",
            "message": "Invalid parameter: Message too long", "times": times
        }))
    };
    let fault = refuse(1);
    let answer = w.ok(json!({"digest": {}})).await;
    drop(fault);
    // THEN the counts alone go out
    assert_eq!(answer["published"], true, "{answer}");
    assert_eq!(answer["form"], "countsOnly", "{answer}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["runningTotal"], 1);
    assert_eq!(got[0].body["running"], json!([]));
    // AND when even the counts are refused, the error names the message, not the topic
    let fault = refuse(2);
    let err = w
        .invoke(&w.monitor(), json!({"digest": {}}))
        .await
        .unwrap_err();
    drop(fault);
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "DigestRejected", "{}", diag.error_message);
    // AND that digest is the next one published, under the same id
    let again = w.ok(json!({"digest": {}})).await;
    assert_eq!(again["resumed"], true, "{again}");
}

#[tokio::test]
async fn three_digests_in_a_row_should_report_each_end_exactly_once() {
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "1")]).await;
    let a = w
        .bedrock
        .seed(SeedJob::named("ends-first").with_status("InProgress"));
    let b = w
        .bedrock
        .seed(SeedJob::named("ends-second").with_status("InProgress"));
    w.ok(json!({"track": [a, b]})).await;
    w.bedrock.set(&a, "Failed");
    w.ok(json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.drain().await;

    let ended = |d: &Received| -> Vec<String> {
        d.body["ended"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["jobName"].as_str().unwrap().to_owned())
            .collect()
    };
    // A manual digest, then B ends, then the schedule's digest, then another.
    let first = w.digest_now().await;
    w.bedrock.set(&b, "Completed");
    w.ok(json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    w.drain().await;
    let second = w.digest_now().await;
    let third = w.digest_now().await;
    assert_eq!(ended(&first), ["ends-first"]);
    assert_eq!(ended(&second), ["ends-second"]);
    assert_eq!(ended(&third), Vec::<String>::new(), "{}", third.body);
    // Their windows follow each other without gap or overlap.
    assert_eq!(first.body["until"], second.body["since"]);
    assert_eq!(second.body["until"], third.body["since"]);
}

#[tokio::test]
async fn concurrent_digests_should_publish_one_and_each_end_once() {
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let arns: Vec<String> = (0..3)
        .map(|i| {
            w.bedrock
                .seed(SeedJob::named(&format!("done-{i}")).with_status("Completed"))
        })
        .collect();
    w.ok(json!({"track": arns})).await;
    w.drain().await;
    let answers = futures::future::join_all((0..4).map(|_| w.ok(json!({"digest": {}})))).await;
    let published: Vec<&Value> = answers.iter().filter(|a| a["published"] == true).collect();
    assert_eq!(published.len(), 1, "{answers:?}");
    for a in answers.iter().filter(|a| a["published"] == false) {
        assert!(a["reason"].is_string(), "{a}");
    }
    let got = w.drain().await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in got.iter().filter(|m| m.attributes["event"] == "digest") {
        for e in m.body["ended"].as_array().unwrap() {
            *seen
                .entry(e["jobName"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(
        seen,
        BTreeMap::from([
            ("done-0".to_owned(), 1),
            ("done-1".to_owned(), 1),
            ("done-2".to_owned(), 1)
        ])
    );
}

#[tokio::test]
async fn a_retried_digest_should_repeat_its_id_and_ends_and_publish_nothing_new() {
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0"), ("CLAIM_SECONDS", "30")]).await;
    let a = w
        .bedrock
        .seed(SeedJob::named("reported-once").with_status("Failed"));
    w.ok(json!({"track": [a]})).await;
    w.drain().await;
    // GIVEN a digest invocation that publishes, then fails to save that it did
    let store = CountingStore::new(
        bedrock_batch_monitor::adapters::dynamodb::DynamoJobStore::new(
            w.ddb.clone(),
            &w.config.table_name,
        ),
    );
    store.fail_digest_finish.store(true, Ordering::SeqCst);
    let failing = Monitor::new(
        bedrock_batch_monitor::adapters::bedrock::BedrockJobSource::new(w.bedrock_sdk.clone()),
        store,
        bedrock_batch_monitor::adapters::sns::SnsNotifier::new(
            aws_sdk_sns::Client::new(&w.moto),
            &w.config.topic_arn,
        ),
        w.config.clone(),
        support::REGION,
    );
    let err = bedrock_batch_monitor::handler::handle(
        &failing,
        &json!({"digest": {}}),
        &support::invocation(None),
    )
    .await
    .unwrap_err();
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "TableUnavailable");
    let first = w.drain().await;
    assert_eq!(first.len(), 1);
    // WHEN Lambda retries it (another invocation, once the claim has run out)
    // and then the next digest runs
    let b = w
        .bedrock
        .seed(SeedJob::named("ends-later").with_status("Failed"));
    w.ok(json!({"track": [b]})).await;
    w.drain().await;
    let held = w.ok(json!({"digest": {}})).await;
    assert_eq!(held["published"], false, "the claim still holds: {held}");
    w.expire_digest_claim().await;
    let retry = w.ok(json!({"digest": {}})).await;
    let repeat = w.drain().await;
    let next = w.ok(json!({"digest": {}})).await;
    let fresh = w.drain().await;

    // THEN the retry publishes the same digest, same id, same ends
    assert_eq!(retry["resumed"], true, "{retry}");
    assert_eq!(repeat.len(), 1);
    assert_eq!(repeat[0].body["digestId"], first[0].body["digestId"]);
    assert_eq!(repeat[0].body["ended"], first[0].body["ended"]);
    // AND the next digest reports only what ended after it
    assert_eq!(next["resumed"], false, "{next}");
    assert_ne!(fresh[0].body["digestId"], first[0].body["digestId"]);
    let names: Vec<&str> = fresh[0].body["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ends-later"]);
}

impl World {
    /// Moves the pending digest's claim into the past, as if its holder's
    /// time had run out (rather than waiting `CLAIM_SECONDS`).
    async fn expire_digest_claim(&self) {
        self.ddb
            .update_item()
            .table_name(&self.table)
            .key(
                "jobArn",
                aws_sdk_dynamodb::types::AttributeValue::S("control#digest".into()),
            )
            .update_expression("SET claimedUntil = :past")
            .expression_attribute_values(
                ":past",
                aws_sdk_dynamodb::types::AttributeValue::S("2000-01-01T00:00:00.000Z".into()),
            )
            .send()
            .await
            .expect("expire the digest's claim");
    }
}
