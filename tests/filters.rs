//! Subscription filter policies against a real SNS implementation (moto): each
//! team's queue receives exactly the notifications its policy asks for.

mod support;

use std::collections::BTreeSet;

use fake_bedrock::{SeedJob, StatusChange};
use serde_json::json;
use support::{Received, World};

/// (job name, status) of each message, as a set: SNS promises no order across jobs.
fn seen(msgs: &[Received]) -> BTreeSet<(String, String)> {
    msgs.iter()
        .map(|m| {
            (
                m.body["jobName"].as_str().unwrap().to_owned(),
                m.body["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn each_filter_policy_should_receive_exactly_the_messages_it_asks_for() {
    // GIVEN one queue per documented filter policy
    let w = World::new().await;
    let failures = w.subscribe_filtered(r#"{"severity": ["error"]}"#).await;
    let terminal = w
        .subscribe_filtered(
            r#"{"status": ["Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"]}"#,
        )
        .await;
    let search = w.subscribe_filtered(r#"{"team": ["search"]}"#).await;
    let search_failures = w
        .subscribe_filtered(r#"{"team": ["search"], "severity": ["error", "warning"]}"#)
        .await;

    // AND three jobs, two of them labelled for a team
    let a = w.bedrock.seed(SeedJob::named("search-index"));
    let b = w.bedrock.seed(SeedJob::named("ads-ranking"));
    let c = w.bedrock.seed(SeedJob::named("unlabelled"));
    let out = w
        .ok(json!({"track": [
            {"jobArn": a, "labels": {"team": "search"}},
            {"jobArn": b, "labels": {"team": "ads"}},
            c
        ]}))
        .await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), 3, "{out}");

    // WHEN they run: search-index completes partially, ads-ranking fails, unlabelled expires
    w.bedrock.set(&a, "InProgress");
    w.ok(json!({})).await;
    w.bedrock.set(&a, "PartiallyCompleted");
    w.bedrock.set_status(
        &b,
        StatusChange {
            status: "Failed".into(),
            message: Some("bad input".into()),
            records: None,
        },
    );
    w.bedrock.set(&c, "Expired");
    w.ok(json!({})).await;

    // THEN each queue holds exactly what its policy selects
    assert_eq!(
        seen(&w.drain_queue(&failures).await),
        set(&[("ads-ranking", "Failed"), ("unlabelled", "Expired")])
    );
    assert_eq!(
        seen(&w.drain_queue(&terminal).await),
        set(&[
            ("search-index", "PartiallyCompleted"),
            ("ads-ranking", "Failed"),
            ("unlabelled", "Expired")
        ])
    );
    let team = w.drain_queue(&search).await;
    assert_eq!(
        seen(&team),
        set(&[
            ("search-index", "Submitted"),
            ("search-index", "InProgress"),
            ("search-index", "PartiallyCompleted")
        ])
    );
    assert!(
        team.iter()
            .all(|m| m.attributes["team"] == "search" && m.body["labels"]["team"] == "search")
    );
    assert_eq!(
        seen(&w.drain_queue(&search_failures).await),
        set(&[("search-index", "PartiallyCompleted")])
    );
    // AND the unfiltered subscriber got all seven: three first observations, four changes
    assert_eq!(w.drain().await.len(), 7);
}

#[tokio::test]
async fn when_a_native_event_starts_tracking_should_take_labels_from_the_job_tags() {
    let w = World::new().await;
    let team = w.subscribe_filtered(r#"{"team": ["search"]}"#).await;
    let arn = w.bedrock.seed(
        SeedJob::named("tagged")
            .with_tag("team", "search")
            .with_tag("owner", "ana"),
    );
    w.bedrock.set(&arn, "InProgress");

    let event = json!({"version":"0","id":"e1","detail-type":"Batch Inference Job State Change","source":"aws.bedrock",
        "account":"123456789012","time":"Wed Aug 28 22:58:30 UTC 2024","region":"us-east-1","resources":[arn],
        "detail":{"batchJobArn": arn, "status": "InProgress"}});
    let s = w.ok(event).await;
    assert_eq!(s["tracked"], 1, "{s}");

    let got = w.drain_queue(&team).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].body["labels"],
        json!({"team": "search"}),
        "only the configured tag keys become labels"
    );
    assert_eq!(w.bedrock.count("ListTagsForResource"), 1);

    // Later polls do not read the tags again, and keep the labels.
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    assert_eq!(w.bedrock.count("ListTagsForResource"), 1);
    let got = w.drain_queue(&team).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["status"], "Completed");
}
