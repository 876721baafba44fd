//! The account's batch quota beside each waiting job (issue 31): read from
//! fake-bedrock's ListFoundationModels and its Service Quotas stand-in
//! (ListServiceQuotas, JSON 1.1, paged), counted from the account's own
//! jobs, and said by the `queuedTooLong` warning, `list`, `describe` and the
//! digest; a quota that cannot be read is said and changes nothing else.

mod support;

use chrono::{Duration, Utc};
use fake_bedrock::{Fault, FaultKind, HOME_ACCOUNT, SeedJob};
use serde_json::{Value, json};
use support::World;

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SONNET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// A job Bedrock has kept Scheduled for 13 hours (past the default 12h
/// `queuedTooLong` threshold), tracked.
async fn waiting_job(w: &World, name: &str, model: &str) -> String {
    let arn = w.bedrock.seed(
        SeedJob::named(name)
            .with_status("Scheduled")
            .with_model(model)
            .submitted_at(Utc::now() - Duration::hours(13)),
    );
    let t = w.ok(json!({ "track": [arn] })).await;
    assert_eq!(t["tracked"].as_array().map(Vec::len), Some(1), "{t}");
    w.drain().await;
    arn
}

/// `n` jobs of the account (not tracked: the quota counts all of them).
fn others(w: &World, n: usize, model: &str, status: &str) {
    for i in 0..n {
        w.bedrock.seed(
            SeedJob::named(&format!("other-{status}-{i}"))
                .with_status(status)
                .with_model(model),
        );
    }
}

fn queued_warning(got: &[support::Received]) -> Value {
    let warnings: Vec<&Value> = got
        .iter()
        .map(|m| &m.body["warning"])
        .filter(|w| w["kind"] == "queuedTooLong")
        .collect();
    assert_eq!(warnings.len(), 1, "{got:?}");
    warnings[0].clone()
}

fn calls(s: &Value, op: &str) -> u64 {
    s["bedrockCalls"][op].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn when_the_quota_is_full_the_warning_list_and_describe_should_say_the_job_waits_for_a_slot()
{
    // GIVEN a job queued 13 hours, and 20 of the account's Claude 3 Haiku
    // jobs holding every slot (15 running, 5 submitted), none of them tracked
    let w = World::new().await;
    others(&w, 15, HAIKU, "InProgress");
    others(&w, 5, HAIKU, "Submitted");
    // (jobs of another model and ended ones hold no Haiku slot)
    others(&w, 3, SONNET, "InProgress");
    others(&w, 4, HAIKU, "Completed");
    let arn = waiting_job(&w, "queued-behind-others", HAIKU).await;

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;

    // THEN the warning says why it waits
    assert_eq!(s["failed"], 0, "{s}");
    let warning = queued_warning(&w.drain().await);
    let seen = warning["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains(
            "20 of 20 slots for Claude 3 Haiku in us-east-1 are in use; this job waits for one"
        ),
        "{warning}"
    );
    assert!(
        warning["advice"][0]
            .as_str()
            .unwrap_or_default()
            .contains("Service Quotas"),
        "{warning}"
    );
    assert_eq!(s["quotas"], json!({"pairs": 1, "unknown": 0}), "{s}");
    // AND list and describe carry the quota beside the waiting job
    let listed = w.ok(json!({ "list": {} })).await;
    let job = &listed["jobs"][0];
    assert_eq!(job["jobArn"], arn.as_str(), "{listed}");
    assert_eq!(
        job["quota"],
        json!({"used": 20, "limit": 20, "model": "Claude 3 Haiku", "region": "us-east-1", "full": true}),
        "{listed}"
    );
    let described = w.ok(json!({ "describe": arn })).await;
    assert_eq!(described["quota"], job["quota"], "{described}");
}

#[tokio::test]
async fn when_the_quota_has_free_slots_the_warning_should_say_it_is_not_the_quota() {
    // GIVEN a job queued 13 hours and 7 of the account's Haiku jobs running,
    // its quota raised to 30
    let w = World::new().await;
    w.bedrock
        .set_batch_quota(HOME_ACCOUNT, "Claude 3 Haiku", Some(30.0));
    others(&w, 7, HAIKU, "InProgress");
    let arn = waiting_job(&w, "queued-with-room", HAIKU).await;

    // WHEN the monitor polls
    w.ok(json!({})).await;

    // THEN the warning says the quota is not what holds it
    let warning = queued_warning(&w.drain().await);
    let seen = warning["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains("7 of 30 slots for Claude 3 Haiku in us-east-1 are in use, so it is not the quota that holds this job"),
        "{warning}"
    );
    let described = w.ok(json!({ "describe": arn })).await;
    assert_eq!(described["quota"]["used"], 7, "{described}");
    assert_eq!(described["quota"]["full"], false, "{described}");
}

#[tokio::test]
async fn when_no_quota_matches_the_model_the_warning_should_say_none_matches() {
    // GIVEN a waiting job of a model Service Quotas has no batch quota for
    let w = World::new().await;
    w.bedrock
        .set_batch_quota(HOME_ACCOUNT, "Claude 3.5 Sonnet", None);
    let arn = waiting_job(&w, "queued-unmatched", SONNET).await;

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;

    // THEN it says no quota matches, names the quota it looked for, and goes on
    assert_eq!(s["failed"], 0, "{s}");
    let warning = queued_warning(&w.drain().await);
    let seen = warning["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains("no batch inference quota matches Claude 3.5 Sonnet in us-east-1")
            && seen.contains("Sum of in-progress and submitted batch inference jobs using a base model for Claude 3.5 Sonnet"),
        "{warning}"
    );
    let described = w.ok(json!({ "describe": arn })).await;
    assert_eq!(described["quota"]["limit"], Value::Null, "{described}");
    assert!(described["quota"]["noQuota"].is_string(), "{described}");
}

#[tokio::test]
async fn when_the_quotas_cannot_be_read_it_should_say_so_and_change_nothing_else() {
    // GIVEN Service Quotas refusing the function's role
    let w = World::new().await;
    w.bedrock
        .inject(Fault::new(FaultKind::AccessDenied).on("ListServiceQuotas"));
    others(&w, 20, HAIKU, "InProgress");
    let arn = waiting_job(&w, "queued-unknown", HAIKU).await;

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;

    // THEN the poll succeeds, the warning still goes out and says the quota
    // is unknown and why, and the answer counts it
    assert_eq!(s["failed"], 0, "{s}");
    assert_eq!(s["warnings"], 1, "{s}");
    assert_eq!(s["quotas"], json!({"pairs": 1, "unknown": 1}), "{s}");
    let warning = queued_warning(&w.drain().await);
    let seen = warning["seen"].as_str().unwrap_or_default();
    assert!(
        seen.contains("quota unknown: ListServiceQuotas: AccessDeniedException"),
        "{warning}"
    );
    let described = w.ok(json!({ "describe": arn })).await;
    assert!(
        described["quota"]["unknown"]
            .as_str()
            .is_some_and(|u| u.starts_with("quota unknown: ListServiceQuotas")),
        "{described}"
    );
    // AND the failure is not retried every poll
    let before = w.bedrock.count("ListServiceQuotas");
    w.ok(json!({})).await;
    assert_eq!(w.bedrock.count("ListServiceQuotas"), before);
}

#[tokio::test]
async fn a_quota_on_a_later_page_should_be_found_and_read_once_for_hours() {
    // GIVEN a region of 40 models: 120 quotas, two pages of ListServiceQuotas,
    // Haiku's batch quota on the second
    let w = World::new().await;
    let mut models: Vec<(String, String)> = (0..39)
        .map(|i| (format!("vendor.model-{i:02}-v1:0"), format!("Model {i:02}")))
        .collect();
    models.push((HAIKU.to_owned(), "Claude 3 Haiku".to_owned()));
    let refs: Vec<(&str, &str)> = models
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    w.bedrock.set_models(&refs);
    w.bedrock
        .set_batch_quota(HOME_ACCOUNT, "Claude 3 Haiku", Some(12.0));
    others(&w, 12, HAIKU, "InProgress");
    let arn = waiting_job(&w, "queued-paged", HAIKU).await;

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;

    // THEN it read both pages and the model list once, and found the quota
    assert_eq!(calls(&s, "ListServiceQuotas"), 2, "{s}");
    assert_eq!(calls(&s, "ListFoundationModels"), 1, "{s}");
    let warning = queued_warning(&w.drain().await);
    assert!(
        warning["seen"]
            .as_str()
            .unwrap_or_default()
            .contains("12 of 12 slots for Claude 3 Haiku"),
        "{warning}"
    );

    // AND the next polls, warm or cold, ask Service Quotas nothing
    let m = w.monitor();
    let before = (
        w.bedrock.count("ListServiceQuotas"),
        w.bedrock.count("ListFoundationModels"),
        w.bedrock.count("ListModelInvocationJobs"),
    );
    let cold = w.invoke(&m, json!({})).await.expect("cold poll");
    let warm = w.invoke(&m, json!({})).await.expect("warm poll");
    assert_eq!(
        (
            w.bedrock.count("ListServiceQuotas"),
            w.bedrock.count("ListFoundationModels"),
            w.bedrock.count("ListModelInvocationJobs"),
        ),
        before,
        "{cold} {warm}"
    );
    assert_eq!(cold["quotas"], json!({"pairs": 1, "unknown": 0}), "{cold}");
    let described = w.ok(json!({ "describe": arn })).await;
    assert_eq!(described["quota"]["limit"], 12, "{described}");
}

#[tokio::test]
async fn with_no_waiting_job_a_poll_should_read_no_quota() {
    // GIVEN only running jobs tracked
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("running").with_status("InProgress"));
    w.ok(json!({ "track": [arn] })).await;

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;

    // THEN nothing of the quotas was read, nor said
    assert_eq!(w.bedrock.count("ListServiceQuotas"), 0);
    assert_eq!(w.bedrock.count("ListFoundationModels"), 0);
    assert!(s.get("quotas").is_none(), "{s}");
    let listed = w.ok(json!({ "list": {} })).await;
    assert!(listed["jobs"][0].get("quota").is_none(), "{listed}");
}

#[tokio::test]
async fn the_digest_should_have_a_capacity_line_for_a_quota_at_or_near_its_limit() {
    // GIVEN a job waiting behind 17 of 20 Haiku slots in use (85%), and
    // Sonnet's quota with 1 of 20 in use (not near)
    let w = World::new().await;
    others(&w, 16, HAIKU, "InProgress");
    others(&w, 1, HAIKU, "Submitted");
    others(&w, 1, SONNET, "InProgress");
    waiting_job(&w, "queued-near", HAIKU).await;
    waiting_job(&w, "queued-sonnet", SONNET).await;
    w.ok(json!({})).await;
    w.drain().await;

    // WHEN the digest goes out
    let d = w.ok(json!({"digest": {}})).await;
    assert_eq!(d["published"], true, "{d}");

    // THEN each form has one capacity line, for Haiku in us-east-1
    let got = w.drain().await;
    let digest = got
        .iter()
        .find(|m| m.body["event"] == "digest")
        .expect("a digest");
    assert_eq!(
        digest.body["capacity"],
        json!([{"account": HOME_ACCOUNT, "used": 17, "limit": 20, "model": "Claude 3 Haiku", "region": "us-east-1", "full": false}]),
        "{}",
        digest.body
    );
    let sent = support::moto_sent(&w.topic_arn);
    let message: Value = sent
        .iter()
        .rev()
        .map(|p| serde_json::from_str::<Value>(p["message"].as_str().unwrap()).unwrap())
        .find(|m| {
            serde_json::from_str::<Value>(m["sqs"].as_str().unwrap()).unwrap()["event"] == "digest"
        })
        .expect("the digest as SNS was given it");
    let email = message["email"].as_str().unwrap_or_default();
    assert!(
        email.contains("Batch quotas at or near their limit:\n- 17 of 20 slots for Claude 3 Haiku in us-east-1 in use"),
        "{email}"
    );
    assert!(!email.contains("Claude 3.5 Sonnet in"), "{email}");
    let slack: Value = serde_json::from_str(message["https"].as_str().unwrap()).unwrap();
    assert!(
        slack["content"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("*Batch quota:* 17 of 20 slots for Claude 3 Haiku"),
        "{slack}"
    );
}

#[tokio::test]
async fn a_member_accounts_job_should_be_given_that_accounts_own_quota_read_with_its_role() {
    // GIVEN a hub reading a member account, whose Haiku quota is 5 with 5 of
    // its jobs running, while the hub's own account runs 3 of its 20
    const DEV: &str = "111122223333";
    let w = World::with_env(&[("MEMBER_ACCOUNTS", DEV)]).await;
    w.bedrock.allow_role(DEV, "bedrock-batch-monitor-reader");
    w.bedrock.set_batch_quota(DEV, "Claude 3 Haiku", Some(5.0));
    for i in 0..5 {
        w.bedrock.seed(
            SeedJob::named(&format!("dev-running-{i}"))
                .in_account(DEV)
                .with_status("InProgress"),
        );
    }
    others(&w, 3, HAIKU, "InProgress");
    let arn = w.bedrock.seed(
        SeedJob::named("dev-queued")
            .in_account(DEV)
            .with_status("Scheduled")
            .submitted_at(Utc::now() - Duration::hours(13)),
    );
    w.ok(json!({ "track": [arn] })).await;
    w.drain().await;

    // WHEN the hub polls
    let s = w.ok(json!({})).await;

    // THEN the member's job is told the member's quota, read with its role
    assert_eq!(s["failed"], 0, "{s}");
    let warning = queued_warning(&w.drain().await);
    assert!(
        warning["seen"].as_str().unwrap_or_default().contains(
            "5 of 5 slots for Claude 3 Haiku in us-east-1 are in use; this job waits for one"
        ),
        "{warning}"
    );
    let asked: Vec<String> = w
        .bedrock
        .calls()
        .into_iter()
        .filter(|c| c.operation == "ListServiceQuotas" || c.operation == "ListFoundationModels")
        .map(|c| c.account)
        .collect();
    assert_eq!(asked, [DEV, DEV], "read with the member's credentials");
    let described = w.ok(json!({ "describe": arn })).await;
    assert_eq!(described["quota"]["limit"], 5, "{described}");
}

#[tokio::test]
async fn a_quota_read_that_hangs_should_not_hold_the_poll_past_its_deadline() {
    // GIVEN a waiting job, and Bedrock hanging on the count of the account's
    // running jobs (the listing by status)
    let w = World::new().await;
    let arn = waiting_job(&w, "queued-hung", HAIKU).await;
    w.bedrock.set_job_latency(
        "statusEquals=InProgress",
        std::time::Duration::from_secs(30),
    );

    // WHEN a poll runs with 4 seconds left
    let m = w.monitor();
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(4);
    let s = bedrock_batch_monitor::handler::handle(
        &m,
        &json!({}),
        &support::invocation(Some(deadline)),
    )
    .await
    .expect("the poll answers");

    // THEN it answers before the deadline, the job polled and warned, and
    // the quota counted as unknown
    assert!(std::time::Instant::now() < deadline, "{s}");
    assert_eq!(s["polled"], 1, "{s}");
    assert_eq!(s["warnings"], 1, "{s}");
    assert_eq!(s["quotas"], json!({"pairs": 1, "unknown": 1}), "{s}");
    let warning = queued_warning(&w.drain().await);
    assert_eq!(warning["kind"], "queuedTooLong", "{warning}");
    let _ = arn;
}
