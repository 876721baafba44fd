//! Only the truth reaches subscribers (issue 14): a stale read never moves a
//! job backwards, one job's error never fails a poll, `stalled` counts from
//! InProgress, and a slow bulk listing never starves the poll. Each test
//! drives the real handler and SDK clients against moto and the fake Bedrock,
//! and each failed on the code before the fix.

mod support;

use std::time::{Duration, Instant};

use bedrock_batch_monitor::handler;
use fake_bedrock::{Fault, FaultKind, Records, SeedJob, StatusChange};
use serde_json::{Value, json};
use support::{World, history_statuses, invocation, native_event};

fn fault_for(kind: FaultKind, arn: &str) -> Fault {
    Fault {
        kind,
        times: None,
        job_id: Some(arn.rsplit('/').next().unwrap().to_owned()),
        every: None,
        operation: None,
        seen: 0,
    }
}

/// (previousStatus, status) of each notification about `arn`, in arrival order.
fn moves(received: &[support::Received], arn: &str) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|m| m.body["jobArn"] == arn && m.attributes["event"] == "statusChanged")
        .map(|m| {
            (
                m.body["previousStatus"].as_str().unwrap_or("-").to_owned(),
                m.body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn when_a_stale_list_page_arrives_after_the_event_recorded_the_end_should_never_move_the_job_back()
 {
    // GIVEN three tracked jobs in one region (read in bulk), one of them Validating
    let w = World::new().await;
    let arns: Vec<String> = (0..3)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("stale-{i}"))))
        .collect();
    w.ok(json!({ "track": arns })).await;
    let target = arns[0].clone();
    w.bedrock.set(&target, "Validating");
    // AND list answers that leave 1.5 s after they were computed
    w.bedrock.set_list_delay(Duration::from_millis(1500));

    // WHEN a poll starts, and while its page is on the way the job fails and
    // Bedrock's event for it is reconciled by another invocation
    let poll = async { w.ok(json!({})).await };
    let event = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        w.bedrock.set_status(
            &target,
            StatusChange {
                status: "Failed".into(),
                message: Some("bad input".into()),
                records: None,
            },
        );
        w.ok(native_event(&target, "Failed")).await
    };
    let (polled, reconciled) = tokio::join!(poll, event);
    assert_eq!(reconciled["transitions"], 1, "{reconciled}");
    assert_eq!(polled["polled"], 3, "{polled}");

    // THEN subscribers heard Submitted, then Failed, and nothing after it
    let got = w.drain().await;
    assert_eq!(
        moves(&got, &target),
        [
            ("-".to_owned(), "Submitted".to_owned()),
            ("Submitted".to_owned(), "Failed".to_owned())
        ],
        "{got:#?}"
    );
    // AND the job is recorded Failed, with a history that never went back
    let d = w.ok(json!({ "describe": target })).await;
    assert_eq!(d["status"], "Failed", "{d}");
    assert_eq!(history_statuses(&d), ["Submitted", "Failed"], "{d}");
    // AND a later poll, with the stale page gone, still says nothing more
    w.bedrock.set_list_delay(Duration::ZERO);
    w.ok(json!({})).await;
    assert!(moves(&w.drain().await, &target).is_empty());
}

#[tokio::test]
async fn when_one_region_denies_its_job_should_report_it_and_succeed_with_the_others() {
    // GIVEN three jobs in us-east-1 (a bulk read) and one in us-west-2 the role may not read
    let w = World::new().await;
    let east: Vec<String> = (0..3)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("east-{i}"))))
        .collect();
    let west = w
        .bedrock
        .seed(SeedJob::named("west").in_region("us-west-2"));
    let mut all = east.clone();
    all.push(west.clone());
    w.ok(json!({ "track": all })).await;
    w.drain().await;
    for arn in &east {
        w.bedrock.set(arn, "InProgress");
    }
    w.bedrock.inject(fault_for(FaultKind::AccessDenied, &west));

    // WHEN a poll runs
    let s = w.ok(json!({})).await;

    // THEN the poll succeeded: the three changes notified, the denied job reported
    assert_eq!(s["transitions"], 3, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["errors"][0]["jobArn"], west.as_str(), "{s}");
    assert_eq!(s["errors"][0]["kind"], "BedrockAccessDenied", "{s}");
    let got = w.drain().await;
    for arn in &east {
        assert_eq!(
            moves(&got, arn),
            [("Submitted".to_owned(), "InProgress".to_owned())]
        );
    }
}

#[tokio::test]
async fn when_a_job_queued_longer_than_the_stall_threshold_starts_should_not_be_stalled_until_it_stalls()
 {
    // GIVEN a 2 s stall threshold and a job Scheduled with its count at 0
    let w = World::with_env(&[("WARN_STALLED_AFTER", "2s")]).await;
    let counts = |processed| Records {
        total: 10,
        processed,
        success: processed,
        error: 0,
    };
    let arn = w.bedrock.seed(
        SeedJob::named("queued")
            .with_status("Scheduled")
            .with_records(counts(0)),
    );
    w.ok(json!({ "track": [arn] })).await;
    w.ok(json!({})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // WHEN it starts, its count still at 0, and a poll sees it
    w.bedrock.set_status(
        &arn,
        StatusChange {
            status: "InProgress".into(),
            message: None,
            records: Some(counts(0)),
        },
    );
    let s = w.ok(json!({})).await;

    // THEN no stall yet: it has run for no time at all
    assert_eq!(s["warnings"], 0, "{s}");
    // AND once the count stands still past the threshold while it runs, it is reported
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = w.ok(json!({})).await;
    assert_eq!(s["warnings"], 1, "{s}");
    let stalled: Vec<Value> = w
        .drain()
        .await
        .into_iter()
        .filter(|m| m.attributes.get("warning").map(String::as_str) == Some("stalled"))
        .map(|m| m.body)
        .collect();
    assert_eq!(stalled.len(), 1, "{stalled:#?}");
}

#[tokio::test]
async fn when_one_regions_listing_is_slow_should_still_read_every_job_in_one_poll() {
    // GIVEN three tracked jobs in eu-west-1 with 2,500 other jobs submitted
    // among them, one in us-east-1, and list pages that take 3 s each
    let w = World::new().await;
    let seed = |name: &str, region: &str| w.bedrock.seed(SeedJob::named(name).in_region(region));
    let mut tracked = vec![seed("eu-first", "eu-west-1")];
    for i in 0..2500 {
        seed(&format!("other-{i}"), "eu-west-1");
    }
    tracked.push(seed("eu-second", "eu-west-1"));
    tracked.push(seed("eu-third", "eu-west-1"));
    tracked.push(seed("us-one", "us-east-1"));
    w.ok(json!({ "track": tracked })).await;
    w.drain().await;
    for arn in &tracked {
        w.bedrock.set(arn, "Completed");
    }
    w.bedrock.set_list_delay(Duration::from_secs(3));

    // WHEN a poll runs with 10 s left
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = handler::handle(&w.monitor(), &json!({}), &invocation(Some(deadline)))
        .await
        .expect("poll answers");

    // THEN every job was read and its end notified, in time, none deferred
    assert!(Instant::now() < deadline, "answered after the deadline");
    assert_eq!(s["polled"], 4, "{s}");
    assert_eq!(s["deferred"], 0, "{s}");
    assert_eq!(s["transitions"], 4, "{s}");
    // AND the requests counted are the ones sent, the abandoned page included
    let calls = &s["bedrockCalls"];
    assert_eq!(calls["ListModelInvocationJobs"], 1, "{s}");
    assert_eq!(calls["GetModelInvocationJob"], 4, "{s}");
    let got = w.drain().await;
    for arn in &tracked {
        assert_eq!(
            moves(&got, arn),
            [("Submitted".to_owned(), "Completed".to_owned())]
        );
    }
}

#[tokio::test]
async fn a_bulk_read_should_cost_no_more_requests_than_a_get_per_job() {
    // GIVEN two tracked jobs in one region with 2,000 others submitted
    // between them: the first page holds only the first
    let w = World::new().await;
    let mut tracked = vec![w.bedrock.seed(SeedJob::named("first"))];
    for i in 0..2000 {
        w.bedrock.seed(SeedJob::named(&format!("other-{i}")));
    }
    tracked.push(w.bedrock.seed(SeedJob::named("second")));
    w.ok(json!({ "track": tracked })).await;

    // WHEN a poll runs
    let s = w.ok(json!({})).await;

    // THEN pages and Gets together cost no more than a Get per job
    let calls = &s["bedrockCalls"];
    let total = calls["ListModelInvocationJobs"].as_u64().unwrap()
        + calls["GetModelInvocationJob"].as_u64().unwrap();
    assert_eq!(s["polled"], 2, "{s}");
    assert!(total <= 2, "{s}");
}

#[tokio::test]
async fn a_job_without_a_stored_submit_time_should_not_widen_the_listing() {
    // GIVEN two dated jobs submitted today, after 3,000 older ones, and a
    // tracked job whose item has no submit time
    let w = World::new().await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(30);
    for i in 0..3000 {
        w.bedrock
            .seed(SeedJob::named(&format!("old-{i}")).submitted_at(long_ago));
    }
    let dated: Vec<String> = (0..2)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("dated-{i}"))))
        .collect();
    let undated = w.bedrock.seed(SeedJob::named("undated"));
    let mut all = dated.clone();
    all.push(undated.clone());
    w.ok(json!({ "track": all })).await;
    w.ddb
        .update_item()
        .table_name(&w.table)
        .key(
            "jobArn",
            aws_sdk_dynamodb::types::AttributeValue::S(undated.clone()),
        )
        .update_expression("REMOVE submitTime")
        .send()
        .await
        .expect("remove submitTime");

    // WHEN a poll runs
    let s = w.ok(json!({})).await;

    // THEN the listing starts at the dated jobs: one page, and a Get for the undated one
    assert_eq!(s["polled"], 3, "{s}");
    assert_eq!(s["bedrockCalls"]["ListModelInvocationJobs"], 1, "{s}");
    assert_eq!(s["bedrockCalls"]["GetModelInvocationJob"], 1, "{s}");
}
