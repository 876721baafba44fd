//! True at the seams (issue 27): what one write records every write
//! records. Each way a tracking can start at a job's end (track, untrack then
//! track, discovery, an event whose first read is an end, a lost job found
//! again) stores the tokens it read, so the notification, `describe`, `list`
//! and the digest carry one estimate. Through the real handler and SDK
//! clients against moto (DynamoDB, SNS, SQS, S3) and the fake Bedrock; the
//! notification is read from the subscribed queue.

mod support;

use fake_bedrock::{Fault, FaultKind, SeedJob};
use serde_json::{Value, json};
use support::{MotoFault, World, native_event, put_manifest, unique};

/// 2,000,000 x $0.125/M + 400,000 x $0.625/M (Claude 3 Haiku, the table's
/// batch prices of 2025-07-20).
const USD: f64 = 0.5;

/// A world whose jobs write their manifests to a bucket the function reads.
async fn world(extra: &[(&str, &str)]) -> (World, aws_sdk_s3::Client, String) {
    let bucket = unique("seams-out").to_lowercase();
    let mut env = vec![
        ("OUTPUT_BUCKETS", bucket.as_str()),
        ("DIGEST_SETTLE_SECONDS", "0"),
    ];
    env.extend_from_slice(extra);
    let w = World::with_env(&env).await;
    let s3 = w.output_bucket(&bucket).await;
    (w, s3, bucket)
}

/// A Haiku job writing to `bucket`, in `status`, with its manifest there.
async fn seed(w: &World, s3: &aws_sdk_s3::Client, bucket: &str, status: &str) -> String {
    let arn = w.bedrock.seed(
        SeedJob::named(&unique("ended"))
            .with_status(status)
            .with_output(&format!("s3://{bucket}/runs/")),
    );
    put_manifest(s3, bucket, "runs/", &arn, 2_000_000, 400_000).await;
    arn
}

fn assert_estimate(where_: &str, cost: &Value) {
    assert_eq!(cost["usd"], json!(USD), "{where_}: {cost}");
    assert_eq!(cost["inputTokens"], 2_000_000, "{where_}: {cost}");
    assert_eq!(cost["outputTokens"], 400_000, "{where_}: {cost}");
}

/// The last notification of `arn` told `Completed` with the estimate, and
/// `describe`, `list` and the digest carry the same one.
async fn assert_one_estimate_everywhere(w: &World, arn: &str) {
    let got = w.drain().await;
    let told = got
        .iter()
        .rev()
        .find(|m| m.body["jobArn"] == arn && m.body["status"] == "Completed")
        .unwrap_or_else(|| panic!("no Completed notification for {arn}: {got:?}"));
    assert_estimate("notification", &told.body["estimatedCost"]);

    let d = w.ok(json!({"describe": arn})).await;
    assert_estimate("describe", &d["estimatedCost"]);

    let listed = w.ok(json!({"list": {"ended": true}})).await;
    let item = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["jobArn"] == arn)
        .unwrap_or_else(|| panic!("{arn} not listed: {listed}"));
    assert_estimate("list", &item["estimatedCost"]);

    w.ok(json!({"digest": {}})).await;
    let got = w.drain().await;
    let digest = got
        .iter()
        .find(|m| m.attributes["event"] == "digest")
        .expect("a digest");
    let ended = digest.body["ended"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["jobArn"] == arn)
        .unwrap_or_else(|| panic!("{arn} not in the digest: {}", digest.body));
    assert_estimate("digest", &ended["estimatedCost"]);
    assert_eq!(
        digest.body["estimatedSpend"]["noTokens"], 0,
        "{}",
        digest.body
    );
}

#[tokio::test]
async fn when_track_first_sees_a_job_at_its_end_should_keep_its_cost() {
    // GIVEN a job that completed before anyone tracked it
    let (w, s3, bucket) = world(&[]).await;
    let arn = seed(&w, &s3, &bucket, "Completed").await;

    // WHEN it is tracked
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");

    // THEN every view carries the cost the notification told
    assert_one_estimate_everywhere(&w, &arn).await;
}

#[tokio::test]
async fn when_a_job_is_untracked_then_tracked_at_its_end_should_keep_its_cost() {
    // GIVEN a job tracked while running, untracked, then completed
    let (w, s3, bucket) = world(&[]).await;
    let arn = seed(&w, &s3, &bucket, "InProgress").await;
    w.ok(json!({"track": [arn]})).await;
    w.ok(json!({"untrack": [arn]})).await;
    w.bedrock.set(&arn, "Completed");
    w.drain().await;

    // WHEN it is tracked again (a re-arm of its item)
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");

    // THEN every view carries the cost the notification told
    assert_one_estimate_everywhere(&w, &arn).await;
}

#[tokio::test]
async fn when_discovery_finds_a_job_that_ended_between_polls_should_keep_its_cost() {
    // GIVEN discovery after a first (empty) run
    let (w, s3, bucket) = world(&[("DISCOVERY", "all")]).await;
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 0, "{s}");

    // WHEN a job is submitted and completes before the next poll
    let arn = seed(&w, &s3, &bucket, "Completed").await;
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 1, "{s}");

    // THEN every view carries the cost the notification told
    assert_one_estimate_everywhere(&w, &arn).await;
}

#[tokio::test]
async fn when_an_event_first_reads_a_job_at_its_end_should_keep_its_cost() {
    // GIVEN a job never tracked, already completed
    let (w, s3, bucket) = world(&[]).await;
    let arn = seed(&w, &s3, &bucket, "Completed").await;

    // WHEN Bedrock's event for its end arrives
    let s = w.ok(native_event(&arn, "Completed")).await;
    assert_eq!(s["tracked"], 1, "{s}");

    // THEN every view carries the cost the notification told
    assert_one_estimate_everywhere(&w, &arn).await;
}

#[tokio::test]
async fn when_a_lost_job_is_found_again_at_its_end_should_keep_its_cost() {
    // GIVEN a tracked job Bedrock lost (NotFound until the monitor let it go)
    let (w, s3, bucket) = world(&[("NOT_FOUND_LIMIT", "1")]).await;
    let arn = seed(&w, &s3, &bucket, "InProgress").await;
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.remove(&arn);
    let s = w.ok(json!({})).await;
    assert_eq!(s["untracked"], 1, "{s}");

    // WHEN Bedrock knows it again, completed, and its event arrives
    let id = arn.rsplit('/').next().unwrap().to_owned();
    let mut again = SeedJob::named("found-again")
        .with_status("Completed")
        .with_output(&format!("s3://{bucket}/runs/"));
    again.id = Some(id);
    assert_eq!(w.bedrock.seed(again), arn);
    let s = w.ok(native_event(&arn, "Completed")).await;
    assert_eq!(s["tracked"], 1, "{s}");

    // THEN every view carries the cost the notification told
    assert_one_estimate_everywhere(&w, &arn).await;
}

// A failed tag read is retried, never dropped, and labels are never
// silently empty.

/// Every tag read answers ThrottlingException until cleared (after the SDK's
/// own retries too).
fn throttle_tags(w: &World) {
    w.bedrock
        .inject(Fault::new(FaultKind::Throttling).on("ListTagsForResource"));
}

#[tokio::test]
async fn when_an_events_tags_cannot_be_read_should_fail_it_for_lambda_to_retry_then_track_it() {
    // GIVEN a monitor that watches the search team's jobs by tag, discovery
    // off, and a search job that completed while its tags cannot be read
    let w = World::with_env(&[("WATCH", "tag:team=search"), ("LABEL_TAGS", "team")]).await;
    let arn = w.bedrock.seed(
        SeedJob::named("nightly")
            .with_status("Completed")
            .with_tag("team", "search"),
    );
    throttle_tags(&w);

    // WHEN Bedrock's event for its end arrives
    let failed = w
        .invoke(&w.monitor(), native_event(&arn, "Completed"))
        .await;

    // THEN the invocation fails (Lambda retries it), naming why, and nothing is written
    let e = failed.expect_err("the event must fail so that Lambda retries it");
    let diagnostic = lambda_runtime::Diagnostic::from(e);
    assert_eq!(diagnostic.error_type, "TagsUnavailable", "{diagnostic:?}");
    assert!(
        diagnostic.error_message.contains("WATCH"),
        "{}",
        diagnostic.error_message
    );
    assert!(w.item(&arn).await.is_none(), "tracked on a guess");
    assert!(w.drain().await.is_empty());

    // AND Lambda's retry, once the tags can be read, tracks it and tells its end
    w.bedrock.clear_faults();
    let s = w.ok(native_event(&arn, "Completed")).await;
    assert_eq!(s["tracked"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attributes["status"], "Completed");
    assert_eq!(got[0].attributes["team"], "search");
}

#[tokio::test]
async fn when_track_cannot_read_the_tags_its_labels_come_from_should_say_so_for_that_item() {
    // GIVEN labels from tags, and tags that cannot be read
    let w = World::with_env(&[("LABEL_TAGS", "team")]).await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("nightly").with_tag("team", "search"));
    throttle_tags(&w);

    // WHEN the job is tracked without labels in the request
    let t = w.ok(json!({"track": [arn]})).await;

    // THEN that item fails as TagsUnavailable: not tracked with empty labels
    assert_eq!(t["tracked"], json!([]), "{t}");
    assert_eq!(t["errors"][0]["kind"], "TagsUnavailable", "{t}");
    assert!(w.item(&arn).await.is_none());

    // AND tracked again once they can be read, it has its labels
    w.bedrock.clear_faults();
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");
    let got = w.drain().await;
    assert_eq!(got[0].attributes["team"], "search", "{got:?}");
}

#[tokio::test]
async fn when_a_tracked_job_is_tracked_again_without_labels_should_read_its_tags_again() {
    // GIVEN a job tracked before its team tag was set
    let w = World::with_env(&[("LABEL_TAGS", "team")]).await;
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [arn]})).await;
    let tags_before = w.bedrock.count("ListTagsForResource");

    // WHEN the tag is set and the job is tracked again, without labels
    w.bedrock.remove(&arn);
    let mut again = SeedJob::named("nightly").with_tag("team", "search");
    again.id = Some(arn.rsplit('/').next().unwrap().to_owned());
    w.bedrock.seed(again);
    let t = w.ok(json!({"track": [arn]})).await;

    // THEN the tags are read again and the label merged
    assert_eq!(w.bedrock.count("ListTagsForResource"), tags_before + 1);
    assert_eq!(t["alreadyTracked"], json!([arn]), "{t}");
    assert_eq!(
        t["labelsMerged"],
        json!([{"jobArn": arn, "labels": {"team": "search"}}]),
        "{t}"
    );
}

#[tokio::test]
async fn discovery_should_read_each_jobs_tags_once_and_one_unreadable_job_never_holds_the_others() {
    // GIVEN discovery of the search team's jobs (by tag), after a first run
    let w = World::with_env(&[("DISCOVERY", "all"), ("WATCH", "tag:team=search")]).await;
    w.ok(json!({})).await;

    // WHEN another team's job, a search job and a search job whose tag read
    // fails are submitted
    let ads = w
        .bedrock
        .seed(SeedJob::named("ads-nightly").with_tag("team", "ads"));
    let search = w
        .bedrock
        .seed(SeedJob::named("search-nightly").with_tag("team", "search"));
    let unreadable = w
        .bedrock
        .seed(SeedJob::named("search-late").with_tag("team", "search"));
    w.bedrock.inject(Fault {
        job_id: Some(unreadable.rsplit('/').next().unwrap().to_owned()),
        ..Fault::new(FaultKind::Throttling).on("ListTagsForResource")
    });
    let watermark = || async {
        let item = w.item("control#discovery#us-east-1").await.unwrap();
        item["watermark"].as_s().unwrap().clone()
    };
    let before = watermark().await;
    let s = w.ok(json!({})).await;
    assert!(
        watermark().await > before,
        "one job that could not be judged held the watermark"
    );

    // THEN the search job is tracked, the unreadable one is that job's error
    assert_eq!(s["discovered"], 1, "{s}");
    assert!(
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["jobArn"] == unreadable && e["kind"] == "TagsUnavailable"),
        "{s}"
    );
    assert!(w.item(&ads).await.is_none());
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["jobArn"], search);

    // AND the next polls read no tags of the job judged not watched, while
    // the unreadable one is judged again and tracked once its tags can be read
    let tags_of = |arn: &str| {
        w.bedrock
            .calls()
            .iter()
            .filter(|c| c.operation == "ListTagsForResource" && c.target.as_deref() == Some(arn))
            .count()
    };
    let ads_reads = tags_of(&ads);
    w.bedrock.clear_faults();
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["jobArn"], unreadable);
    w.ok(json!({})).await;
    assert_eq!(
        tags_of(&ads),
        ads_reads,
        "the not-watched verdict was read again"
    );

    // AND the watermark moved on: a job submitted now is found next poll
    let later = w
        .bedrock
        .seed(SeedJob::named("search-later").with_tag("team", "search"));
    let s = w.ok(json!({})).await;
    assert_eq!(s["discovered"], 1, "{s}");
    assert_eq!(w.drain().await[0].body["jobArn"], later);
}

// Each destination its own delivery: a failing Slack topic never floods the
// job topic's subscribers, never fails the poll, never holds the job.

/// A world with a Slack topic of its own (`slack` unique name) that does not
/// exist yet, and the queue a channel would be once it does.
async fn with_slack(extra: &[(&str, &str)]) -> (World, String, String) {
    // Ended by a word so no name is the start of another (a fault matches on the text).
    let name = format!("{}-channel", unique("slack"));
    let arn = format!("arn:aws:sns:us-east-1:123456789012:{name}");
    let mut env = vec![
        ("SLACK_TOPIC_ARN", arn.as_str()),
        ("DIGEST_SETTLE_SECONDS", "0"),
    ];
    env.extend_from_slice(extra);
    let w = World::with_env(&env).await;
    (w, name, arn)
}

/// Creates the Slack topic and a queue subscribed to it, as the channel is.
async fn mend_slack(w: &World, name: &str) -> String {
    w.topic_with_queue(name).await.1
}

#[tokio::test]
async fn when_the_slack_topic_is_gone_the_job_topic_should_hear_each_change_once_and_the_poll_succeed()
 {
    // GIVEN a monitor whose Slack topic was deleted, and a tracked job
    let (w, slack_name, _) = with_slack(&[]).await;
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");

    // WHEN the job fails and three polls run
    w.bedrock.set(&arn, "Failed");
    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(w.ok(json!({})).await);
    }

    // THEN the job topic's subscriber heard each status once
    let got = w.drain().await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|m| m.attributes["status"].as_str())
        .collect();
    assert_eq!(statuses, ["Submitted", "Failed"], "{got:?}");
    // AND each poll succeeded, Slack's failure its own error, named
    for a in &answers {
        let slack_errors: Vec<&Value> = a["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["destination"] == "slack")
            .collect();
        assert!(!slack_errors.is_empty(), "{a}");
        assert!(
            a["errors"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["destination"] == "slack"),
            "{a}"
        );
    }
    let d = w.ok(json!({"describe": arn})).await;
    // (the default Slack policy lets Failed through, not Submitted)
    let pending = d["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{d}");
    for p in pending {
        assert_eq!(p["destinations"]["topic"]["delivered"], true, "{d}");
        assert_eq!(p["destinations"]["slack"]["delivered"], false, "{d}");
    }

    // AND once Slack is mended, it gets what it missed, in order, and the
    // job topic nothing again
    let channel = mend_slack(&w, &slack_name).await;
    let s = w.ok(json!({})).await;
    assert_eq!(s["errors"], json!([]), "{s}");
    let slack: Vec<String> = w
        .drain_queue(&channel)
        .await
        .iter()
        .map(|m| m.attributes["status"].clone())
        .collect();
    assert_eq!(
        slack,
        ["Failed"],
        "the default Slack policy lets errors through"
    );
    assert!(w.drain().await.is_empty(), "the job topic heard a repeat");
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["pending"], json!([]), "{d}");
    assert_eq!(
        d["active"], false,
        "the job retires once every destination is done: {d}"
    );
}

#[tokio::test]
async fn when_slack_refuses_a_message_for_good_it_should_be_set_aside_there_alone() {
    // GIVEN a Slack topic that refuses every publish, at two attempts
    let (w, slack_name, slack_arn) = with_slack(&[("PUBLISH_MAX_ATTEMPTS", "2")]).await;
    let channel = mend_slack(&w, &slack_name).await;
    let _refuse = MotoFault::add(json!({"service": "sns", "action": "Publish",
        "contains": [slack_name], "status": 400, "code": "InvalidParameter",
        "message": "Invalid parameter: Message too long"}));
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [arn]})).await;

    // WHEN the job fails and polls run
    w.bedrock.set(&arn, "Failed");
    w.ok(json!({})).await;
    w.ok(json!({})).await;
    let s = w.ok(json!({})).await;

    // THEN the job topic heard Failed once, nothing reached Slack, and the
    // Slack delivery alone is set aside: the job topic's is not called undeliverable
    let got = w.drain().await;
    let statuses: Vec<&str> = got
        .iter()
        .map(|m| m.attributes["status"].as_str())
        .collect();
    assert_eq!(statuses, ["Submitted", "Failed"], "{got:?}");
    assert!(w.drain_queue(&channel).await.is_empty());
    let d = w.ok(json!({"describe": arn})).await;
    assert_eq!(d["pending"], json!([]), "{d}");
    let aside = d["undeliverable"].as_array().unwrap();
    assert_eq!(aside.len(), 1, "{d}");
    assert_eq!(aside[0]["destination"], "slack", "{d}");
    assert_eq!(aside[0]["status"], "Failed", "{d}");
    assert_eq!(d["active"], false, "{d} {s}");
    let _ = slack_arn;
}

#[tokio::test]
async fn when_slack_fails_the_digest_the_job_topic_should_have_it_once() {
    // GIVEN a monitor whose Slack topic is gone
    let (w, _, _) = with_slack(&[]).await;

    // WHEN two digests are sent
    let first = w.ok(json!({"digest": {}})).await;
    let second = w.ok(json!({"digest": {}})).await;

    // THEN each reached the job topic once, under its own id, and each
    // answer names Slack's failure
    let got: Vec<String> = w
        .drain()
        .await
        .iter()
        .filter(|m| m.attributes["event"] == "digest")
        .map(|m| m.body["digestId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_ne!(got[0], got[1], "the same digest again");
    for a in [&first, &second] {
        assert_eq!(a["published"], true, "{a}");
        assert_eq!(a["errors"][0]["destination"], "slack", "{a}");
    }
}

// The digest keeps its word, and list pages never repeat.

/// The ARNs of the ended jobs the next digest reports.
async fn digest_ends(w: &World) -> Vec<String> {
    w.ok(json!({"digest": {}})).await;
    let got = w.drain().await;
    let digest = got
        .iter()
        .find(|m| m.attributes["event"] == "digest")
        .expect("a digest");
    digest.body["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jobArn"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_end_a_digest_reported_should_not_be_reported_again_whatever_track_and_untrack_do() {
    // GIVEN a job whose end one digest reported
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    assert_eq!(digest_ends(&w).await, vec![arn.clone()]);

    // WHEN the unchanged job is tracked again, then untracked and tracked again
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");
    w.ok(json!({})).await;
    let first = digest_ends(&w).await;
    w.ok(json!({"untrack": [arn]})).await;
    w.ok(json!({"track": [arn]})).await;
    w.ok(json!({})).await;
    let second = digest_ends(&w).await;

    // THEN no later digest reports the end again
    assert!(first.is_empty(), "reported again after a track: {first:?}");
    assert!(
        second.is_empty(),
        "reported again after untrack and track: {second:?}"
    );
    // AND list still shows it ended
    let listed = w.ok(json!({"list": {"ended": true}})).await;
    assert_eq!(listed["jobs"][0]["jobArn"], arn, "{listed}");
}

#[tokio::test]
async fn a_job_that_ends_between_two_list_pages_should_not_be_shown_twice() {
    // GIVEN three running jobs, listed one a page with the ended ones
    let w = World::new().await;
    let mut arns = Vec::new();
    for i in 0..3 {
        let arn = w.bedrock.seed(SeedJob::named(&format!("job-{i}")));
        arns.push(arn);
    }
    w.ok(json!({"track": arns})).await;
    let page = w.ok(json!({"list": {"ended": true, "limit": 1}})).await;
    let mut shown = vec![page["jobs"][0]["jobArn"].as_str().unwrap().to_owned()];

    // WHEN the job the first page showed ends before the next pages are read
    w.bedrock.set(&shown[0], "Completed");
    w.ok(json!({})).await;
    let mut next = page["next"].clone();
    while !next.is_null() {
        let page = w
            .ok(json!({"list": {"ended": true, "limit": 1, "next": next}}))
            .await;
        for j in page["jobs"].as_array().unwrap() {
            shown.push(j["jobArn"].as_str().unwrap().to_owned());
        }
        next = page["next"].clone();
    }

    // THEN every job is shown once
    let mut unique = shown.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), shown.len(), "shown twice: {shown:?}");
    assert_eq!(shown.len(), 3, "{shown:?}");
}

#[tokio::test]
async fn an_end_untracked_before_any_digest_reported_it_should_be_reported_once_tracked_again() {
    // GIVEN a job whose end was recorded, then untracked before a digest ran
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [arn]})).await;
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({})).await;
    w.ok(json!({"untrack": [arn]})).await;
    assert!(
        digest_ends(&w).await.is_empty(),
        "an untracked job in a digest"
    );

    // WHEN it is tracked again, at the same end
    w.ok(json!({"track": [arn]})).await;
    w.ok(json!({})).await;

    // THEN the next digest reports its end, and the one after does not
    assert_eq!(digest_ends(&w).await, vec![arn.clone()]);
    w.ok(json!({})).await;
    assert!(digest_ends(&w).await.is_empty());
}

#[tokio::test]
async fn tracked_again_at_its_end_with_the_manifest_gone_a_job_should_keep_its_cost() {
    // GIVEN a completed job whose cost was recorded, then its manifest deleted
    let (w, s3, bucket) = world(&[]).await;
    let arn = seed(&w, &s3, &bucket, "Completed").await;
    w.ok(json!({"track": [arn]})).await;
    let id = arn.rsplit('/').next().unwrap();
    s3.delete_object()
        .bucket(&bucket)
        .key(format!("runs/{id}/manifest.json.out"))
        .send()
        .await
        .unwrap();

    // WHEN it is tracked again
    w.drain().await;
    let t = w.ok(json!({"track": [arn]})).await;
    assert_eq!(t["tracked"], json!([arn]), "{t}");

    // THEN every view keeps the estimate
    assert_one_estimate_everywhere(&w, &arn).await;
}

#[tokio::test]
async fn when_only_labels_hang_on_tags_bedrock_refuses_for_good_the_job_should_be_tracked_and_it_said()
 {
    // GIVEN every job watched, labels from tags, and a role that may not read tags
    let w = World::with_env(&[("LABEL_TAGS", "team")]).await;
    let arn = w.bedrock.seed(
        SeedJob::named("nightly")
            .with_status("Completed")
            .with_tag("team", "search"),
    );
    w.bedrock
        .inject(Fault::new(FaultKind::AccessDenied).on("ListTagsForResource"));

    // WHEN Bedrock's event for its end arrives
    let s = w.ok(native_event(&arn, "Completed")).await;

    // THEN it is tracked and told, and the answer says its labels are missing
    assert_eq!(s["tracked"], 1, "{s}");
    assert_eq!(s["errors"][0]["kind"], "LabelsUnavailable", "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attributes["status"], "Completed");
}

#[tokio::test]
async fn a_track_after_untrack_without_labels_should_read_the_tags_again() {
    // GIVEN a job tracked with a label of its own before its tag was set,
    // then untracked
    let w = World::with_env(&[("LABEL_TAGS", "team")]).await;
    let arn = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [{"jobArn": arn, "labels": {"owner": "ops"}}]}))
        .await;
    w.ok(json!({"untrack": [arn]})).await;
    w.bedrock.remove(&arn);
    let mut again = SeedJob::named("nightly").with_tag("team", "search");
    again.id = Some(arn.rsplit('/').next().unwrap().to_owned());
    w.bedrock.seed(again);
    w.drain().await;

    // WHEN it is tracked again without labels
    let t = w.ok(json!({"track": [arn]})).await;

    // THEN its labels come from its tags as they are now
    assert_eq!(t["tracked"], json!([arn]), "{t}");
    let got = w.drain().await;
    assert_eq!(
        got[0].attributes.get("team").map(String::as_str),
        Some("search"),
        "{got:?}"
    );
}
