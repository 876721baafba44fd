//! The edges a team meets after the first week (issue 7): each test drives the
//! real handler and SDK clients against moto and the fake Bedrock, and reads
//! what a subscriber or an operator would see.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_batch_monitor::adapters::bedrock::BedrockJobSource;
use bedrock_batch_monitor::adapters::dynamodb::DynamoJobStore;
use bedrock_batch_monitor::adapters::sns::SnsNotifier;
use bedrock_batch_monitor::domain::JobArn;
use bedrock_batch_monitor::handler;
use bedrock_batch_monitor::monitor::Monitor;
use bedrock_batch_monitor::ports::{Claim, Jobs, Outbox, Settlement};
use chrono::Utc;
use fake_bedrock::{Fault, FaultKind, SeedJob, StatusChange};
use serde_json::{Value, json};
use support::{LogCapture, MotoFault, World, invocation, native_event, sdk_config};

fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// Bedrock calls naming each job, in call order.
fn called_jobs(w: &World) -> Vec<String> {
    w.bedrock
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetModelInvocationJob")
        .filter_map(|c| c.target)
        .collect()
}

fn statuses(got: &[support::Received]) -> Vec<(Option<String>, String)> {
    got.iter()
        .map(|m| {
            (
                m.body["previousStatus"].as_str().map(str::to_owned),
                m.body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

// 1. A job Bedrock lost, then found again, can be tracked again.
#[tokio::test]
async fn when_bedrock_lost_a_job_and_knows_it_again_track_should_rearm_it() {
    // GIVEN a tracked job that Bedrock stops knowing, untracked after one NotFound
    let w = World::with_env(&[("NOT_FOUND_LIMIT", "1")]).await;
    let arn = w.bedrock.seed(SeedJob::named("lost-and-found"));
    let out = w.ok(json!({"track": [arn]})).await;
    assert_eq!(out["tracked"], json!([arn]), "{out}");
    w.bedrock.remove(&arn);
    let s = w.ok(json!({})).await;
    assert_eq!(s["untracked"], 1, "{s}");
    let lost = w.drain().await;
    assert_eq!(lost.len(), 2);
    assert_eq!(lost[1].body["event"], "untracked");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(
        (d["tracked"].as_bool(), d["tracking"].as_str()),
        (Some(false), Some("gone")),
        "{d}"
    );

    // WHEN Bedrock knows it again and someone tracks it
    let mut seed = SeedJob::named("lost-and-found");
    seed.id = Some(job_id(&arn).to_owned());
    seed.status = "InProgress".into();
    w.bedrock.seed(seed);
    let out = w.ok(json!({"track": [arn]})).await;

    // THEN it is tracked again, notified as a first observation with a new id
    assert_eq!(out["tracked"], json!([arn]), "{out}");
    assert_eq!(out["alreadyTracked"], json!([]), "{out}");
    let again = w.drain().await;
    assert_eq!(statuses(&again), [(None, "InProgress".to_owned())]);
    let ids: HashSet<&str> = lost
        .iter()
        .chain(&again)
        .map(|m| m.body["transitionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "a transitionId repeated: {ids:?}");

    // AND the schedule polls it again
    w.bedrock.set(&arn, "Completed");
    let s = w.ok(json!({})).await;
    assert_eq!(
        (s["polled"].as_u64(), s["transitions"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    let done = w.drain().await;
    assert_eq!(
        statuses(&done),
        [(Some("InProgress".to_owned()), "Completed".to_owned())]
    );
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(
        (d["tracked"].as_bool(), d["gone"].as_bool()),
        (Some(true), Some(false)),
        "{d}"
    );
    assert_eq!(
        support::history_statuses(&d),
        ["Submitted", "Submitted", "InProgress", "Completed"]
    );
}

#[tokio::test]
async fn when_a_finished_job_is_tracked_again_should_notify_its_status_again() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("finished"));
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    let first = w.drain().await;
    assert!(!w.item(&arn).await.unwrap().contains_key("pollShard"));

    let out = w.ok(json!({"track": [arn]})).await;

    assert_eq!(out["tracked"], json!([arn]), "{out}");
    let again = w.drain().await;
    assert_eq!(statuses(&again), [(None, "Completed".to_owned())]);
    assert_ne!(again[0].body["transitionId"], first[1].body["transitionId"]);
    // Nothing left to do: it leaves the work list again.
    let item = w.item(&arn).await.unwrap();
    assert!(!item.contains_key("pollShard"), "{item:?}");
}

// 2. untrack sticks.
#[tokio::test]
async fn when_a_job_is_untracked_bedrock_events_should_leave_it_alone_until_tracked_again() {
    // GIVEN a tracked job that someone untracks
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("silenced"));
    w.ok(json!({"track": [arn]})).await;
    w.drain().await;
    let out = w.ok(json!({"untrack": [arn]})).await;
    assert_eq!(out["untracked"], json!([arn]), "{out}");

    // WHEN Bedrock reports changes, by event and to the schedule
    w.bedrock.set(&arn, "InProgress");
    let s = w.ok(native_event(&arn, "InProgress")).await;
    let polled = w.ok(json!({})).await;

    // THEN nothing is tracked, written or sent
    assert_eq!(
        (s["ignored"].as_u64(), s["tracked"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(polled["polled"], 0, "{polled}");
    assert!(w.drain().await.is_empty());
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(
        (d["tracked"].as_bool(), d["tracking"].as_str()),
        (Some(false), Some("untracked")),
        "{d}"
    );
    assert!(d["untrackedAt"].is_string(), "{d}");
    let item = w.item(&arn).await.unwrap();
    assert!(
        matches!(item.get("expiresAt"), Some(AttributeValue::N(_))),
        "the marker expires"
    );
    let again = w.ok(json!({"untrack": [arn]})).await;
    assert_eq!(again["notTracked"], json!([arn]), "{again}");

    // AND tracking it again brings it back, with events
    let out = w.ok(json!({"track": [arn]})).await;
    assert_eq!(out["tracked"], json!([arn]), "{out}");
    w.bedrock.set(&arn, "Completed");
    let s = w.ok(native_event(&arn, "Completed")).await;
    assert_eq!(s["transitions"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(
        statuses(&got),
        [
            (None, "InProgress".to_owned()),
            (Some("InProgress".to_owned()), "Completed".to_owned())
        ]
    );
}

// 3. Labels at track are never dropped.
#[tokio::test]
async fn when_an_event_tracked_a_job_first_track_should_merge_the_labels_given() {
    // GIVEN a job a Bedrock event started tracking, with a label from its tags
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("adopted").with_tag("team", "platform"));
    w.bedrock.set(&arn, "InProgress");
    w.ok(native_event(&arn, "InProgress")).await;
    w.drain().await;
    let search_only = w.subscribe_filtered(r#"{"env": ["prod"]}"#).await;

    // WHEN a team tracks it with labels
    let out = w
        .ok(json!({"track": [{"jobArn": arn, "labels": {"team": "search", "env": "prod"}}]}))
        .await;

    // THEN the answer says the labels were merged, and the next notification carries them
    assert_eq!(out["alreadyTracked"], json!([arn]), "{out}");
    assert_eq!(
        out["labelsMerged"],
        json!([{"jobArn": arn, "labels": {"team": "search", "env": "prod"}}]),
        "{out}"
    );
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    let got = w.drain_queue(&search_only).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attributes["env"], "prod");
    assert_eq!(got[0].attributes["team"], "search");
    assert_eq!(
        got[0].body["labels"],
        json!({"team": "search", "env": "prod"})
    );

    // AND labels past the limit are that item's error, nothing changed
    let out = w
        .ok(json!({"track": [{"jobArn": arn, "labels": {"a": "1", "b": "2"}}]}))
        .await;
    assert_eq!(out["failed"], 1, "{out}");
    assert_eq!(out["errors"][0]["kind"], "InvalidLabels", "{out}");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["labels"], json!({"team": "search", "env": "prod"}));
}

// 4. A user command never fails the invocation for one bad item.
#[tokio::test]
async fn when_track_names_jobs_it_cannot_read_should_report_each_as_its_own_error() {
    // GIVEN one good job, one the role may not read, one in another account, one
    // in a region whose endpoint is unreachable, and one in a region that is not one
    let w = World::new().await;
    let good = w.bedrock.seed(SeedJob::named("good"));
    let denied = w.bedrock.seed(SeedJob::named("denied"));
    let foreign = "arn:aws:bedrock:us-east-1:999999999999:model-invocation-job/foreignjob01";
    let far = "arn:aws:bedrock:ap-south-2:123456789012:model-invocation-job/farawayjob01";
    let nowhere = "arn:aws:bedrock:moon-base-1:123456789012:model-invocation-job/nowherejob01";
    for id in [job_id(&denied), job_id(foreign)] {
        w.bedrock.inject(Fault {
            kind: FaultKind::AccessDenied,
            times: None,
            job_id: Some(id.to_owned()),
            every: None,
            operation: None,
            seen: 0,
        });
    }
    let dead = aws_sdk_bedrock::Client::new(&sdk_config("http://127.0.0.1:9", "ap-south-2").await);
    let m = Monitor::new(
        BedrockJobSource::new(w.bedrock_sdk.clone())
            .with_rate_limit(w.config.bedrock_max_rps)
            .with_client("ap-south-2", dead),
        DynamoJobStore::new(w.ddb.clone(), &w.table),
        SnsNotifier::new(w.sns.clone(), &w.topic_arn),
        w.config.clone(),
        support::REGION,
    );

    // WHEN all are tracked in one request
    let out = handler::handle(
        &m,
        &json!({"track": [good, denied, foreign, far, nowhere]}),
        &invocation(None),
    )
    .await
    .expect("the invocation succeeds");

    // THEN the good one is tracked and each other one is its own error
    assert_eq!(out["tracked"], json!([good]), "{out}");
    assert_eq!(out["failed"], 4, "{out}");
    let kind = |arn: &str| {
        out["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["jobArn"] == arn)
            .map(|e| e["kind"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        kind(&denied).as_deref(),
        Some("BedrockAccessDenied"),
        "{out}"
    );
    // Another account's job, with no MEMBER_ACCOUNTS: refused before any read.
    assert_eq!(kind(foreign).as_deref(), Some("AccountNotMember"), "{out}");
    assert_eq!(kind(far).as_deref(), Some("BedrockUnreachable"), "{out}");
    assert_eq!(kind(nowhere).as_deref(), Some("InvalidReference"), "{out}");
    let text = out["errors"].to_string();
    assert!(
        text.contains("not a region of the \\\"aws\\\" partition"),
        "{out}"
    );
    // No client was asked for the region that is not one.
    assert!(
        !w.bedrock
            .calls()
            .iter()
            .any(|c| c.region.as_deref() == Some("moon-base-1"))
    );
    assert_eq!(w.drain().await.len(), 1);

    // AND a request whose every job is unreadable still answers
    let out = handler::handle(&m, &json!({"track": [denied, far]}), &invocation(None))
        .await
        .expect("a track of unreadable jobs is not a systemic fault");
    assert_eq!(out["failed"], 2, "{out}");

    // AND untrack and describe answer for bad items too
    let out = w.ok(json!({"untrack": [nowhere, 7, good]})).await;
    assert_eq!(out["untracked"], json!([good]), "{out}");
    assert_eq!(out["failed"], 2, "{out}");
    let d = w.ok(json!({"describe": nowhere})).await;
    assert_eq!(d["errorKind"], "InvalidReference", "{d}");
}

#[tokio::test]
async fn when_a_request_names_more_items_than_the_limit_should_refuse_it_and_write_nothing() {
    let w = World::new().await;
    let arns: Vec<String> = (0..=bedrock_batch_monitor::event::MAX_ITEMS_PER_REQUEST)
        .map(|i| format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{i:0>12}"))
        .collect();
    let err = w
        .invoke(&w.monitor(), json!({"track": arns}))
        .await
        .unwrap_err();
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "InvalidEvent");
    assert!(
        diag.error_message.contains("at most 100 per request"),
        "{}",
        diag.error_message
    );
    assert_eq!(w.item_count().await, 0);
    assert_eq!(w.bedrock.count("GetModelInvocationJob"), 0);
}

// 5. A poison notification does not block a job.
#[tokio::test]
async fn when_sns_always_refuses_one_notification_should_set_it_aside_and_deliver_the_rest() {
    // GIVEN a tracked job whose InProgress notification SNS refuses for good
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("poison"));
    w.ok(json!({"track": [arn]})).await;
    assert_eq!(w.drain().await.len(), 1);
    let poison = format!("{}-2-InProgress", job_id(&arn));
    let fault = MotoFault::add(
        json!({"service": "sns", "action": "Publish", "contains": [w.topic_arn, poison],
        "status": 400, "code": "InvalidParameter", "message": "Invalid parameter: Message"}),
    );
    w.bedrock.set(&arn, "InProgress");

    // WHEN polls go on (by default five tries, one a poll) and the job completes meanwhile
    let mut summaries = Vec::new();
    for poll in 1..=5 {
        if poll == 2 {
            w.bedrock.set(&arn, "Completed");
        }
        summaries.push(w.ok(json!({})).await);
    }

    // THEN the first four polls report the refusal and hold the later notification back
    for s in &summaries[..4] {
        assert_eq!(s["errors"][0]["kind"], "PublishRejected", "{s}");
        assert_eq!(s["notified"], 0, "{s}");
    }
    // AND the fifth sets it aside, delivers Completed, and the job retires
    assert_eq!(summaries[4]["undeliverable"], 1, "{}", summaries[4]);
    assert_eq!(summaries[4]["notified"], 1, "{}", summaries[4]);
    assert_eq!(fault.hits(), 5);
    let got = w.drain().await;
    assert_eq!(
        statuses(&got),
        [(Some("InProgress".to_owned()), "Completed".to_owned())]
    );
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["undeliverable"][0]["transitionId"], poison, "{d}");
    assert_eq!(d["undeliverable"][0]["attempts"], 5, "{d}");
    assert!(
        d["undeliverable"][0]["error"]
            .as_str()
            .unwrap()
            .contains("InvalidParameter"),
        "{d}"
    );
    assert_eq!(d["pendingNotifications"], 0, "{d}");
    assert!(!w.item(&arn).await.unwrap().contains_key("pollShard"));
}

// 6. An answer before the deadline, whatever Bedrock does.
#[tokio::test]
async fn when_one_jobs_bedrock_call_hangs_should_answer_before_the_deadline_and_defer_it() {
    // GIVEN three jobs, one of which Bedrock takes a minute to answer about
    let w = World::with_env(&[("DEADLINE_MARGIN_MS", "1000"), ("BULK_READ_MIN", "off")]).await;
    let arns: Vec<String> = (0..3)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("hang-{i}"))))
        .collect();
    w.ok(json!({"track": arns})).await;
    w.drain().await;
    for a in &arns {
        w.bedrock.set(a, "InProgress");
    }
    w.bedrock.set_job_latency(&arns[1], Duration::from_secs(60));

    // WHEN a poll has three seconds
    let deadline = Instant::now() + Duration::from_secs(3);
    let s = handler::handle(&w.monitor(), &json!({}), &invocation(Some(deadline)))
        .await
        .expect("poll answers");

    // THEN it answered in time, did the others, and deferred the hung one
    assert!(Instant::now() < deadline, "answered after the deadline");
    assert_eq!(
        (
            s["polled"].as_u64(),
            s["transitions"].as_u64(),
            s["deferred"].as_u64()
        ),
        (Some(2), Some(2), Some(1)),
        "{s}"
    );
    // AND the next cycle, with Bedrock well again, takes it first
    w.bedrock.set_job_latency(&arns[1], Duration::ZERO);
    let before = called_jobs(&w).len();
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 1, "{s}");
    assert_eq!(called_jobs(&w)[before], arns[1]);
    assert_eq!(w.drain().await.len(), 3);
}

// 7. Fairness across cycles.
#[tokio::test]
async fn when_a_cycle_covers_a_third_of_the_jobs_every_job_should_be_polled_within_three() {
    // GIVEN 24 jobs polled one at a time, 100 ms each: a cycle whose jobs may
    // start in its first 1.2 s covers ~10
    const JOBS: usize = 24;
    let w = World::with_env(&[
        ("MAX_CONCURRENCY", "1"),
        ("DEADLINE_MARGIN_MS", "800"),
        ("BULK_READ_MIN", "off"),
    ])
    .await;
    let arns: Vec<String> = (0..JOBS)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("fair-{i}"))))
        .collect();
    w.ok(json!({"track": arns})).await;
    w.bedrock.set_latency(Duration::from_millis(100));

    // WHEN short cycles run until every job was polled (at most six)
    let mut per_cycle: Vec<usize> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    while seen.len() < JOBS && per_cycle.len() < 6 {
        let before = called_jobs(&w).len();
        let deadline = Instant::now() + Duration::from_millis(2000);
        let s = handler::handle(&w.monitor(), &json!({}), &invocation(Some(deadline)))
            .await
            .expect("poll answers");
        let polled = s["polled"].as_u64().unwrap() as usize;
        if per_cycle.is_empty() {
            assert!(
                s["deferred"].as_u64().unwrap() > 0,
                "one cycle covered all: {s}"
            );
        }
        // One at a time: the jobs completed are the first `polled` called (a
        // last one may have been abandoned at the cut, and counts as deferred).
        for job in &called_jobs(&w)[before..before + polled] {
            // THEN until every job was polled once, no cycle polls one again:
            // each starts with the jobs the one before did not reach
            if seen.len() < JOBS {
                assert!(
                    seen.insert(job.clone()),
                    "{job} polled again before every job was polled; per cycle {per_cycle:?}"
                );
            }
        }
        per_cycle.push(polled);
    }

    // AND every job was polled, within three cycles when each covered a third
    assert_eq!(seen.len(), JOBS, "per cycle {per_cycle:?}");
    if per_cycle.iter().take(3).all(|p| *p >= JOBS / 3) {
        assert!(per_cycle.len() <= 3, "per cycle {per_cycle:?}");
    }
}

// 8. Claims that only their holder releases.
#[tokio::test]
async fn when_two_stores_contend_for_one_claim_only_its_holder_should_release_or_complete_it() {
    // GIVEN a job with a pending notification, seen through two store clients
    let w = World::new().await;
    let arn_text = w.bedrock.seed(SeedJob::named("contended"));
    w.ok(json!({"track": [arn_text]})).await;
    w.drain().await;
    w.bedrock.set(&arn_text, "InProgress");
    let dead_sns =
        aws_sdk_sns::Client::new(&sdk_config("http://127.0.0.1:9", support::REGION).await);
    let _ = w.invoke(&w.monitor_with_sns(dead_sns), json!({})).await;
    let arn: JobArn = arn_text.parse().unwrap();
    let id = format!("{}-2-InProgress", job_id(&arn_text));
    let a = DynamoJobStore::new(w.ddb.clone(), &w.table);
    let b = DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&w.moto), &w.table);
    let now = Utc::now();
    let claim = |token: &str, secs: i64| Claim {
        token: token.into(),
        now,
        until: now + chrono::Duration::seconds(secs),
    };

    // Giving the claim back with nothing delivered, and finishing it.
    let release = Settlement::default();
    let finish = Settlement {
        accepted: vec!["topic".to_owned()],
        finished: true,
        ..Settlement::default()
    };

    // WHEN A claims it, B can neither claim, release nor complete it
    assert!(a.claim(&arn, &id, &claim("a", 60)).await.unwrap().is_some());
    assert!(b.claim(&arn, &id, &claim("b", 60)).await.unwrap().is_none());
    assert!(b.settle(&arn, &id, "b", &release).await.unwrap().is_none());
    assert!(b.settle(&arn, &id, "b", &finish).await.unwrap().is_none());
    let held = a.get(&arn).await.unwrap().unwrap();
    assert_eq!(held.outbox[0].claimed_by.as_deref(), Some("a"));

    // AND once A's claim has run out B takes it, and A's late completion is refused
    assert!(a.settle(&arn, &id, "a", &release).await.unwrap().is_some());
    assert!(a.claim(&arn, &id, &claim("a", -1)).await.unwrap().is_some());
    assert!(b.claim(&arn, &id, &claim("b", 60)).await.unwrap().is_some());
    assert!(a.settle(&arn, &id, "a", &finish).await.unwrap().is_none());
    let after = b
        .settle(&arn, &id, "b", &finish)
        .await
        .unwrap()
        .expect("B completes");
    assert!(after.outbox.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_an_invocation_holds_a_notification_it_should_also_deliver_those_recorded_meanwhile() {
    // GIVEN a job whose InProgress notification takes SNS 1.5 s to accept
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("held"));
    w.ok(json!({"track": [arn]})).await;
    w.drain().await;
    let _slow = MotoFault::add(json!({"service": "sns", "action": "Publish",
        "contains": [w.topic_arn, format!("{}-2-InProgress", job_id(&arn))], "delay_ms": 1500}));
    w.bedrock.set(&arn, "InProgress");

    // WHEN a poll is publishing it and Bedrock's event for Completed arrives meanwhile
    let poller = w.monitor();
    let poll = w.invoke(&poller, json!({}));
    let event = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.bedrock.set(&arn, "Completed");
        w.ok(native_event(&arn, "Completed")).await
    };
    let (polled, evented) = tokio::join!(poll, event);
    let polled = polled.expect("poll");

    // THEN the event recorded Completed but left the delivery to the holder,
    // which delivered both, in order, in the same invocation
    assert_eq!(
        (
            evented["transitions"].as_u64(),
            evented["notified"].as_u64()
        ),
        (Some(1), Some(0)),
        "{evented}"
    );
    assert_eq!(polled["notified"], 2, "{polled}");
    let got = w.drain().await;
    assert_eq!(
        statuses(&got),
        [
            (Some("Submitted".to_owned()), "InProgress".to_owned()),
            (Some("InProgress".to_owned()), "Completed".to_owned())
        ]
    );
}

// 9. Errors classified as they are.
#[tokio::test]
async fn when_the_work_listing_is_throttled_should_retry_within_the_cycle() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("listed"));
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.set(&arn, "InProgress");
    // Four refusals: more than the SDK's three tries (tests' setting), fewer than the cycle's.
    let throttled = MotoFault::add(
        json!({"service": "dynamodb", "action": "Query", "contains": w.table,
        "status": 400, "code": "ProvisionedThroughputExceededException", "times": 4}),
    );

    let s = w.ok(json!({})).await;

    assert_eq!(throttled.hits(), 4);
    assert_eq!(s["transitions"], 1, "{s}");
}

#[tokio::test]
async fn when_the_work_listing_keeps_failing_should_fail_the_invocation_as_a_table_fault() {
    let w = World::new().await;
    let arn = w.bedrock.seed(SeedJob::named("unlisted"));
    w.ok(json!({"track": [arn]})).await;
    let _down = MotoFault::add(
        json!({"service": "dynamodb", "action": "Query", "contains": w.table,
        "status": 500, "code": "InternalServerError"}),
    );

    let err = w.invoke(&w.monitor(), json!({})).await.unwrap_err();

    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(
        diag.error_type, "TableUnavailable",
        "{}",
        diag.error_message
    );
}

#[tokio::test]
async fn when_an_event_names_a_job_whose_item_is_unreadable_should_report_that_job_only() {
    let w = World::new().await;
    let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/brokenitem01";
    w.ddb
        .put_item()
        .table_name(&w.table)
        .item("jobArn", AttributeValue::S(arn.into()))
        .item("status", AttributeValue::N("7".into()))
        .item("version", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();

    let s = w.ok(native_event(arn, "Failed")).await;

    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["errors"][0]["kind"], "ItemUnreadable", "{s}");
    assert!(
        s["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("status is a number"),
        "{s}"
    );
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["errorKind"], "ItemUnreadable", "{d}");
}

// 10. Every per-job failure is logged once, with its fields.
#[tokio::test]
async fn every_failed_job_should_be_logged_once_with_its_arn_kind_and_message() {
    let w = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let a = w.bedrock.seed(SeedJob::named("throttled"));
    let b = w.bedrock.seed(SeedJob::named("fine"));
    w.ok(json!({"track": [a, b]})).await;
    w.bedrock.inject(Fault {
        kind: FaultKind::Throttling,
        times: None,
        job_id: Some(job_id(&a).to_owned()),
        every: None,
        operation: None,
        seen: 0,
    });
    w.bedrock.set_status(
        &b,
        StatusChange {
            status: "InProgress".into(),
            ..StatusChange::default()
        },
    );

    let logs = LogCapture::default();
    let s = {
        let _guard = logs.start();
        w.ok(json!({})).await
    };

    assert_eq!(s["failed"], 1, "{s}");
    let failures: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" || l["level"] == "ERROR")
        .collect();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    let f = &failures[0]["fields"];
    assert_eq!(f["job_arn"], a.as_str());
    assert_eq!(f["error_kind"], "BedrockThrottling");
    assert!(f["error"].as_str().unwrap().contains("throttled"), "{f}");
}
