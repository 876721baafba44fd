//! Warnings before a job goes wrong, and the truth about how it ended (issue 9):
//! the real handler and SDK clients against moto (DynamoDB, SNS, SQS, S3) and
//! the fake Bedrock; every notification is read from a subscribed queue.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use fake_bedrock::{Records, SeedJob, StatusChange};
use serde_json::json;
use support::{Received, World, put_manifest, unique};

fn records(total: i64, processed: i64, error: i64) -> Records {
    Records {
        total,
        processed,
        success: processed - error,
        error,
    }
}

/// Warnings received, as (job name, kind).
fn warnings(got: &[Received]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = got
        .iter()
        .filter(|m| m.attributes.get("event").map(String::as_str) == Some("warning"))
        .map(|m| {
            (
                m.attributes["jobName"].clone(),
                m.attributes["warning"].clone(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn track(w: &World, arns: &[&str]) {
    let out = w.ok(json!({ "track": arns })).await;
    assert_eq!(
        out["tracked"].as_array().map(Vec::len),
        Some(arns.len()),
        "{out}"
    );
}

#[tokio::test]
async fn each_warning_should_arrive_once_and_not_for_healthy_jobs() {
    // GIVEN, with stalled at 2 s so the test need not wait hours:
    let w = World::with_env(&[("WARN_STALLED_AFTER", "2s")]).await;
    let now = Utc::now();
    // a job queued for two days, expiring in a day (only queuedTooLong);
    let queued = w.bedrock.seed(
        SeedJob::named("queued-two-days")
            .with_status("Scheduled")
            .submitted_at(now - chrono::Duration::days(2))
            .expiring_at(now + chrono::Duration::days(1)),
    );
    // one submitted an hour ago that Bedrock expires within three hours (only nearExpiry);
    let expiring = w.bedrock.seed(
        SeedJob::named("close-to-expiry")
            .with_status("Submitted")
            .submitted_at(now - chrono::Duration::hours(1))
            .expiring_at(now + chrono::Duration::hours(3)),
    );
    // one running whose counts stop (stalled);
    let stalls = w.bedrock.seed(
        SeedJob::named("counts-stop")
            .with_status("InProgress")
            .with_records(records(1000, 100, 0)),
    );
    // one failing a fifth of its records (errorRate);
    let failing = w.bedrock.seed(
        SeedJob::named("fails-a-fifth")
            .with_status("InProgress")
            .with_records(records(5000, 500, 100)),
    );
    // one failing every record but below the minimum (no warning);
    let few = w.bedrock.seed(
        SeedJob::named("fails-but-few")
            .with_status("InProgress")
            .with_records(records(5000, 50, 50)),
    );
    // and a healthy one whose counters move every poll (no warning).
    let healthy = w.bedrock.seed(
        SeedJob::named("healthy")
            .with_status("InProgress")
            .with_records(records(5000, 100, 1)),
    );
    track(&w, &[&queued, &expiring, &stalls, &failing, &few, &healthy]).await;
    assert_eq!(w.drain().await.len(), 6, "the six first observations");

    // WHEN polled four times over about six seconds, the healthy job moving on
    let mut got = Vec::new();
    for round in 1..=4i64 {
        // The healthy job and the two failing ones make progress; one job stalls.
        w.bedrock
            .set_records(&healthy, records(5000, 100 + 200 * round, 1 + round));
        w.bedrock
            .set_records(&failing, records(5000, 500 * round, 100 * round));
        w.bedrock
            .set_records(&few, records(5000, 50 + 10 * round, 50 + 10 * round));
        let s = w.ok(json!({})).await;
        assert_eq!(s["failed"], 0, "{s}");
        got.extend(w.drain().await);
        tokio::time::sleep(Duration::from_millis(2100)).await;
    }

    // THEN each warning arrived once, for its job only, and nothing else did
    assert_eq!(
        warnings(&got),
        [
            ("close-to-expiry".to_owned(), "nearExpiry".to_owned()),
            ("counts-stop".to_owned(), "stalled".to_owned()),
            ("fails-a-fifth".to_owned(), "errorRate".to_owned()),
            ("queued-two-days".to_owned(), "queuedTooLong".to_owned()),
        ]
    );
    assert_eq!(got.len(), 4, "only the warnings: {got:?}");
    for m in &got {
        assert_eq!(m.attributes["severity"], "warning");
        assert_eq!(m.body["event"], "warning");
        let kind = m.attributes["warning"].as_str();
        let warning = &m.body["warning"];
        assert_eq!(warning["kind"], kind);
        assert!(
            warning["since"].is_string() && warning["seen"].is_string(),
            "{warning}"
        );
        let advice = warning["advice"].to_string();
        assert!(advice.contains("stop-model-invocation-job"), "{advice}");
        let subject = m.subject.as_deref().unwrap_or_default();
        assert!(subject.contains(kind), "{subject}");
    }
    let by_kind: HashMap<&str, &Received> = got
        .iter()
        .map(|m| (m.attributes["warning"].as_str(), m))
        .collect();
    let seen = |k: &str| {
        by_kind[k].body["warning"]["seen"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        seen("queuedTooLong").contains("still Scheduled 2d"),
        "{}",
        seen("queuedTooLong")
    );
    assert!(
        seen("stalled").contains("100 of 1000 records processed"),
        "{}",
        seen("stalled")
    );
    assert!(
        seen("errorRate").contains("100 of 500"),
        "{}",
        seen("errorRate")
    );

    // AND the stored item remembers what was sent
    let item = w.item(&stalls).await.unwrap();
    assert_eq!(
        item["warned"].as_ss().unwrap(),
        &vec!["stalled".to_owned()],
        "{item:?}"
    );
}

#[tokio::test]
async fn a_warning_turned_off_should_never_be_sent() {
    // GIVEN every warning off
    let w = World::with_env(&[
        ("WARN_QUEUED_AFTER", "off"),
        ("WARN_EXPIRY_WITHIN", "off"),
        ("WARN_STALLED_AFTER", "off"),
        ("WARN_ERROR_RATE", "off"),
    ])
    .await;
    let now = Utc::now();
    let queued = w.bedrock.seed(
        SeedJob::named("queued")
            .with_status("Scheduled")
            .submitted_at(now - chrono::Duration::days(2)),
    );
    let failing = w.bedrock.seed(
        SeedJob::named("failing")
            .with_status("InProgress")
            .with_records(records(1000, 500, 500)),
    );
    track(&w, &[&queued, &failing]).await;
    w.drain().await;
    // WHEN polled
    let s = w.ok(json!({})).await;
    // THEN no warning is recorded or sent
    assert_eq!(s["warnings"], 0, "{s}");
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn completed_should_be_success_warning_or_error_by_its_failed_records() {
    // GIVEN three running jobs
    let w = World::new().await;
    let all = w
        .bedrock
        .seed(SeedJob::named("all-failed").with_status("InProgress"));
    let some = w
        .bedrock
        .seed(SeedJob::named("some-failed").with_status("InProgress"));
    let none = w
        .bedrock
        .seed(SeedJob::named("none-failed").with_status("InProgress"));
    track(&w, &[&all, &some, &none]).await;
    w.drain().await;
    // WHEN Bedrock says Completed for each, with every, some and no record failed
    for (arn, failed) in [(&all, 400), (&some, 37), (&none, 0)] {
        w.bedrock.set_status(
            arn,
            StatusChange {
                status: "Completed".into(),
                message: None,
                records: Some(records(400, 400, failed)),
            },
        );
    }
    w.ok(json!({})).await;
    // THEN the severity and the words say how it ended
    let got = w.drain().await;
    let by_name: HashMap<String, &Received> = got
        .iter()
        .map(|m| (m.attributes["jobName"].clone(), m))
        .collect();
    for (name, severity, words) in [
        ("all-failed", "error", Some("all 400 records failed")),
        ("some-failed", "warning", Some("37 of 400 records failed")),
        ("none-failed", "success", None),
    ] {
        let m = by_name[name];
        assert_eq!(m.attributes["status"], "Completed");
        assert_eq!(m.attributes["severity"], severity, "{name}");
        assert_eq!(m.body["severity"], severity, "{name}");
        let subject = m.subject.clone().unwrap_or_default();
        match words {
            Some(words) => assert!(subject.contains(words), "{subject}"),
            None => assert!(!subject.contains("records failed"), "{subject}"),
        }
    }
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn the_final_notification_should_carry_the_token_totals_of_the_manifest() {
    // GIVEN an output bucket the function may read, with the manifest of one job
    let bucket = unique("batch-out").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &bucket)]).await;
    let s3 = w.output_bucket(&bucket).await;
    let output = format!("s3://{bucket}/nightly/");
    let with_manifest = w.bedrock.seed(
        SeedJob::named("with-manifest")
            .with_status("InProgress")
            .with_output(&output),
    );
    let without = w.bedrock.seed(
        SeedJob::named("no-manifest")
            .with_status("InProgress")
            .with_output(&output),
    );
    let elsewhere = w.bedrock.seed(
        SeedJob::named("other-bucket")
            .with_status("InProgress")
            .with_output("s3://not-configured-bucket/out/"),
    );
    put_manifest(&s3, &bucket, "nightly/", &with_manifest, 123456, 7890).await;
    track(&w, &[&with_manifest, &without, &elsewhere]).await;
    w.drain().await;

    // WHEN the three jobs end
    for arn in [&with_manifest, &without, &elsewhere] {
        w.bedrock.set(arn, "Completed");
    }
    let s = w.ok(json!({})).await;

    // THEN the one with a manifest carries its totals; a missing one is no error
    assert_eq!(s["failed"], 0, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 3);
    for m in &got {
        let tokens = &m.body["tokens"];
        if m.attributes["jobName"] == "with-manifest" {
            assert_eq!(tokens, &json!({"input": 123456, "output": 7890}));
        } else {
            assert!(tokens.is_null(), "{}: {tokens}", m.attributes["jobName"]);
        }
    }
}
