//! Jobs found without registering (issue 9): `DISCOVERY` against the fake
//! Bedrock's ListModelInvocationJobs (pages, regions told apart by the
//! signature, filters) and moto; notifications read from a subscribed queue.

mod support;

use std::collections::HashMap;

use chrono::Utc;
use fake_bedrock::SeedJob;
use serde_json::{Value, json};
use support::{Received, World, invocation};

const WEST: &str = "us-west-2";

/// Discovery's listings in `region` (the batch quota's count of the
/// account's waiting and running jobs lists by status: not counted here).
fn list_calls(w: &World, region: &str) -> usize {
    w.bedrock
        .calls()
        .iter()
        .filter(|c| c.operation == "ListModelInvocationJobs" && c.region.as_deref() == Some(region))
        .filter(|c| {
            c.target
                .as_deref()
                .is_none_or(|t| !t.starts_with("statusEquals="))
        })
        .count()
}

fn per_job(got: &[Received]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for m in got {
        *n.entry(m.body["jobArn"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    n
}

async fn described(w: &World, arn: &str) -> Value {
    w.ok(json!({ "describe": arn })).await
}

#[tokio::test]
async fn the_first_run_should_track_the_backlog_of_every_region_quietly_then_notify_new_jobs_once()
{
    // GIVEN 1,150 jobs not yet finished in us-east-1 (two list pages), 12
    // finished ones, and 40 running in us-west-2, all submitted an hour ago
    // (Bulk reads off: every ListModelInvocationJobs call here is discovery's.)
    let w = World::with_env(&[
        ("DISCOVERY", "all"),
        ("DISCOVERY_REGIONS", WEST),
        ("BULK_READ_MIN", "off"),
    ])
    .await;
    let hour_ago = Utc::now() - chrono::Duration::hours(1);
    let statuses = ["Submitted", "Validating", "Scheduled", "InProgress"];
    for i in 0..1150 {
        w.bedrock.seed(
            SeedJob::named(&format!("east-{i}"))
                .with_status(statuses[i % 4])
                .submitted_at(hour_ago),
        );
    }
    for i in 0..12 {
        w.bedrock.seed(
            SeedJob::named(&format!("east-done-{i}"))
                .with_status("Completed")
                .submitted_at(hour_ago),
        );
    }
    let tagged = w.bedrock.seed(
        SeedJob::named("west-tagged")
            .in_region(WEST)
            .with_status("InProgress")
            .with_tag("team", "search")
            .submitted_at(hour_ago),
    );
    for i in 0..39 {
        w.bedrock.seed(
            SeedJob::named(&format!("west-{i}"))
                .in_region(WEST)
                .with_status("InProgress")
                .submitted_at(hour_ago),
        );
    }

    // WHEN the first poll runs
    let first = w.ok(json!({})).await;

    // THEN every unfinished job is tracked, quietly, and none finished is
    assert_eq!(first["discovered"], 1190, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    assert!(
        w.drain().await.is_empty(),
        "the backlog is tracked without a message per job"
    );
    assert_eq!(
        list_calls(&w, "us-east-1"),
        2,
        "1,162 jobs are two pages of 1,000"
    );
    assert_eq!(list_calls(&w, WEST), 1);
    let d = described(&w, &tagged).await;
    assert_eq!(
        d["labels"],
        json!({"team": "search"}),
        "labels from the tags: {d}"
    );
    assert_eq!(d["status"], "InProgress", "{d}");
    assert_eq!(
        w.item_count().await,
        1190 + 2 + 1 + 1,
        "the jobs, two watermarks, the health record and us-east-1's batch quota \
         (jobs there have waited an hour)"
    );

    // WHEN thirty jobs are submitted later (a few in us-west-2), and two polls overlap
    let mut new = Vec::new();
    for i in 0..30 {
        let seed = SeedJob::named(&format!("later-{i}"));
        let seed = if i % 5 == 0 {
            seed.in_region(WEST)
        } else {
            seed
        };
        new.push(w.bedrock.seed(seed));
    }
    let (a, b) = (w.monitor(), w.monitor());
    let (poll, inv_a, inv_b) = (json!({}), invocation(None), invocation(None));
    let (ra, rb) = tokio::join!(
        bedrock_batch_monitor::handler::handle(&a, &poll, &inv_a),
        bedrock_batch_monitor::handler::handle(&b, &poll, &inv_b),
    );
    let (ra, rb) = (ra.expect("first poll"), rb.expect("second poll"));

    // THEN each new job is tracked once and notified once, as a first observation
    assert_eq!(
        ra["discovered"].as_u64().unwrap() + rb["discovered"].as_u64().unwrap(),
        30,
        "{ra} {rb}"
    );
    let got = w.drain().await;
    let counts = per_job(&got);
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    for arn in &new {
        assert_eq!(counts.get(arn), Some(&1), "{arn}");
    }
    assert!(got.iter().all(|m| m.body["previousStatus"].is_null()));
    assert!(got.iter().all(|m| m.attributes["event"] == "statusChanged"));

    // AND a poll after that finds nothing new
    let again = w.ok(json!({})).await;
    assert_eq!(again["discovered"], 0, "{again}");
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn a_discovered_job_should_be_followed_through_its_lifecycle() {
    // GIVEN discovery of jobs named nightly-*, after a first (empty) run
    let w = World::with_env(&[("DISCOVERY", "nightly-")]).await;
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 0, "{s}");

    // WHEN a matching and an unmatching job are submitted, and one matching
    // job finishes before the next poll
    let nightly = w.bedrock.seed(SeedJob::named("nightly-embeddings"));
    let adhoc = w.bedrock.seed(SeedJob::named("adhoc-test"));
    let quick = w.bedrock.seed(SeedJob::named("nightly-quick"));
    w.bedrock.set(&quick, "Completed");
    let s = w.ok(json!({})).await;

    // THEN the two matching jobs are tracked and notified, the finished one too
    assert_eq!(s["discovered"], 2, "{s}");
    let got = w.drain().await;
    let seen: HashMap<String, String> = got
        .iter()
        .map(|m| {
            (
                m.body["jobArn"].as_str().unwrap().to_owned(),
                m.attributes["status"].clone(),
            )
        })
        .collect();
    assert_eq!(seen.get(&nightly).map(String::as_str), Some("Submitted"));
    assert_eq!(seen.get(&quick).map(String::as_str), Some("Completed"));
    assert!(!seen.contains_key(&adhoc), "{seen:?}");
    assert_eq!(got.len(), 2);
    assert!(
        w.item(&adhoc).await.is_none(),
        "a job the filter leaves out is not stored"
    );

    // AND the discovered job is followed like any other to its end
    for status in ["InProgress", "Completed"] {
        w.bedrock.set(&nightly, status);
        w.ok(json!({})).await;
    }
    let got = w.drain().await;
    let path: Vec<(Option<String>, String)> = got
        .iter()
        .map(|m| {
            (
                m.body["previousStatus"].as_str().map(str::to_owned),
                m.body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            (Some("Submitted".to_owned()), "InProgress".to_owned()),
            (Some("InProgress".to_owned()), "Completed".to_owned()),
        ]
    );
}

#[tokio::test]
async fn an_untracked_job_should_stay_untracked_when_a_listing_meets_it_again() {
    // GIVEN a discovered job someone untracked
    let w = World::with_env(&[("DISCOVERY", "all")]).await;
    w.ok(json!({})).await;
    let arn = w.bedrock.seed(SeedJob::named("not-wanted"));
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 1, "{s}");
    let out = w.ok(json!({ "untrack": [arn] })).await;
    assert_eq!(out["untracked"], json!([arn]), "{out}");
    w.drain().await;

    // WHEN the next listings meet it again (it is inside the overlap window)
    w.bedrock.set(&arn, "InProgress");
    let s = w.ok(json!({})).await;

    // THEN it is neither tracked again nor notified
    assert_eq!(s["discovered"], 0, "{s}");
    assert!(w.drain().await.is_empty());
    assert!(w.item(&arn).await.unwrap().contains_key("untrackedAt"));
}

#[tokio::test]
async fn a_listing_that_fails_should_leave_the_watermark_and_be_retried() {
    // GIVEN a first run done, then a new job, and Bedrock refusing the next listing
    let w = World::with_env(&[("DISCOVERY", "all")]).await;
    w.ok(json!({})).await;
    let watermark = |item: Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>| {
        item.unwrap()["watermark"].as_s().unwrap().clone()
    };
    let before = watermark(w.item("control#discovery#us-east-1").await);
    let arn = w.bedrock.seed(SeedJob::named("found-late"));
    w.bedrock.inject(fake_bedrock::Fault {
        kind: fake_bedrock::FaultKind::InternalServer,
        times: Some(3),
        job_id: None,
        every: None,
        operation: None,
        seen: 0,
    });

    // WHEN a poll runs: the listing, its only Bedrock request, fails after
    // the SDK's retries: Bedrock was down for the whole poll, so it fails
    // (and Lambda's async retries run it again)
    let err = w
        .invoke(&w.monitor(), json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Bedrock was down for the whole poll"), "{err}");
    assert!(err.contains("discovery/us-east-1"), "{err}");
    assert_eq!(
        watermark(w.item("control#discovery#us-east-1").await),
        before,
        "the watermark did not move"
    );

    // THEN the next poll finds the job
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["jobArn"], arn.as_str());
}

/// Writes discovery's control item for us-east-1 by hand (a stack that was
/// down, or a backlog begun by an earlier poll).
async fn set_control(w: &World, attrs: &[(&str, chrono::DateTime<Utc>)]) {
    use aws_sdk_dynamodb::types::AttributeValue;
    let mut item = HashMap::from([(
        "jobArn".to_owned(),
        AttributeValue::S("control#discovery#us-east-1".into()),
    )]);
    for (name, t) in attrs {
        item.insert(
            (*name).to_owned(),
            AttributeValue::S(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    w.ddb
        .put_item()
        .table_name(&w.table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put the discovery item");
}

#[tokio::test]
async fn after_a_gap_the_jobs_found_should_be_taken_in_quietly_not_one_notification_each() {
    // GIVEN a watermark 7 hours old (the monitor was down) and 30 jobs
    // submitted since, still running
    let w = World::with_env(&[("DISCOVERY", "all"), ("BULK_READ_MIN", "off")]).await;
    set_control(
        &w,
        &[("watermark", Utc::now() - chrono::Duration::hours(7))],
    )
    .await;
    for i in 0..30 {
        w.bedrock.seed(
            SeedJob::named(&format!("while-down-{i}"))
                .with_status("InProgress")
                .submitted_at(Utc::now() - chrono::Duration::hours(3)),
        );
    }

    // WHEN a poll runs
    let s = w.ok(json!({})).await;

    // THEN they are tracked quietly: no flood of notifications
    assert_eq!(s["discovered"], 30, "{s}");
    assert!(w.drain().await.is_empty(), "a gap is a quiet backlog");
    // AND the watermark moved on, so the next new job is notified as usual
    let arn = w.bedrock.seed(SeedJob::named("after-the-gap"));
    w.ok(json!({})).await;
    let got = w.drain().await;
    assert_eq!(per_job(&got).get(&arn), Some(&1), "{got:?}");
}

#[tokio::test]
async fn a_job_that_ends_while_a_backlog_is_taken_in_should_be_notified() {
    // GIVEN a job that ended before the backlog began, then a backlog begun
    // by an earlier poll (its time kept, no watermark yet), then a job that
    // ended after it began and one still running
    let w = World::with_env(&[("DISCOVERY", "all"), ("BULK_READ_MIN", "off")]).await;
    let before = w
        .bedrock
        .seed(SeedJob::named("ended-before").with_status("Completed"));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    set_control(&w, &[("backlogSince", Utc::now())]).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let after = w
        .bedrock
        .seed(SeedJob::named("ended-after").with_status("Failed"));
    let running = w
        .bedrock
        .seed(SeedJob::named("running").with_status("InProgress"));

    // WHEN the next poll goes on with the backlog
    let s = w.ok(json!({})).await;

    // THEN the job that ended meanwhile is notified, the running one tracked
    // quietly, the one that ended before left alone
    let got = per_job(&w.drain().await);
    assert_eq!(got.get(&after), Some(&1), "{s} {got:?}");
    assert_eq!(got.get(&running), None, "{got:?}");
    assert_eq!(described(&w, &running).await["status"], "InProgress");
    assert_eq!(described(&w, &before).await["tracked"], false);
    // AND when the running job ends, it is notified like any other
    w.bedrock.set(&running, "Completed");
    w.ok(json!({})).await;
    let got = per_job(&w.drain().await);
    assert_eq!(got.get(&running), Some(&1), "{got:?}");
}
