//! Scale (issue 10): bulk reads with ListModelInvocationJobs, the Bedrock
//! request ceiling under throttling, and polls over a subset of the shards.
//! The real handler and SDK clients against moto and the fake Bedrock.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use fake_bedrock::{Fault, FaultKind, Records, SeedJob, StatusChange};
use serde_json::{Value, json};
use support::{Received, World};

/// The statuses each of `n` jobs goes through, one step a poll; job i skips
/// some steps and stops at a different end, so the histories differ.
fn history(i: usize) -> Vec<&'static str> {
    match i % 4 {
        0 => vec!["Validating", "InProgress", "Completed"],
        1 => vec!["Scheduled", "InProgress", "InProgress", "Failed"],
        2 => vec!["InProgress", "Stopping", "Stopped"],
        _ => vec!["Submitted", "Submitted", "Expired"],
    }
}

/// Seeds `n` jobs, tracks them, then plays their histories one poll a step.
/// Returns what subscribers received per job name (previous -> status), and
/// each poll's summary.
async fn play(w: &World, n: usize) -> (BTreeMap<String, Vec<String>>, Vec<Value>) {
    let arns: Vec<String> = (0..n)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("job-{i:03}"))))
        .collect();
    let out = w.ok(json!({ "track": arns })).await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), n, "{out}");
    let mut summaries = Vec::new();
    for step in 0..4 {
        for (i, arn) in arns.iter().enumerate() {
            if let Some(status) = history(i).get(step) {
                w.bedrock.set_status(
                    arn,
                    StatusChange {
                        status: (*status).into(),
                        message: (*status == "Failed").then(|| "bad input".to_owned()),
                        records: Some(Records {
                            total: 10,
                            processed: step as i64 * 3,
                            success: step as i64 * 3,
                            error: 0,
                        }),
                    },
                );
            }
        }
        summaries.push(w.ok(json!({})).await);
    }
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in w.drain().await {
        seen.entry(m.attributes["jobName"].clone())
            .or_default()
            .push(format!(
                "{}->{}:{}",
                m.body["previousStatus"].as_str().unwrap_or("-"),
                m.body["status"].as_str().unwrap(),
                m.body["message"].as_str().unwrap_or("")
            ));
    }
    (seen, summaries)
}

fn calls(summary: &Value, op: &str) -> u64 {
    summary["bedrockCalls"][op]
        .as_u64()
        .unwrap_or_else(|| panic!("{summary}"))
}

#[tokio::test]
async fn bulk_reads_and_gets_should_record_the_same_transitions_for_the_same_histories() {
    // GIVEN two deployments over the same histories: one reading in bulk, one with Gets
    let bulk = World::with_env(&[("BULK_READ_MIN", "2")]).await;
    let gets = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let (n, polls) = (24, 4u64);
    let ((by_bulk, bulk_summaries), (by_gets, get_summaries)) =
        tokio::join!(play(&bulk, n), play(&gets, n));

    // THEN subscribers received the same notifications, job by job
    assert_eq!(by_bulk.len(), n);
    assert_eq!(by_bulk, by_gets);
    // AND the calls differ as they should: one list page a poll, or a Get a job
    let total = |s: &[Value], op: &str| s.iter().map(|v| calls(v, op)).sum::<u64>();
    assert_eq!(total(&bulk_summaries, "ListModelInvocationJobs"), polls);
    assert!(
        total(&bulk_summaries, "GetModelInvocationJob") == 0,
        "{bulk_summaries:?}"
    );
    assert_eq!(total(&get_summaries, "ListModelInvocationJobs"), 0);
    assert!(total(&get_summaries, "GetModelInvocationJob") >= polls * (n as u64 / 2));
    assert_eq!(
        bulk.bedrock.count("ListModelInvocationJobs") as u64,
        polls,
        "the summary counts what reached Bedrock"
    );
    for s in &bulk_summaries {
        assert_eq!(s["failed"], 0, "{s}");
    }
}

#[tokio::test]
async fn a_bulk_read_of_unchanged_jobs_should_write_and_publish_nothing() {
    // GIVEN 40 tracked jobs that do not move
    let w = World::new().await;
    let arns: Vec<String> = (0..40)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("steady-{i}"))))
        .collect();
    w.ok(json!({ "track": arns })).await;
    w.drain().await;
    let before = w.bedrock.calls().len();
    // WHEN polled
    let (monitor, writes) = w.counting_monitor();
    let s =
        bedrock_batch_monitor::handler::handle(&monitor, &json!({}), &support::invocation(None))
            .await
            .unwrap();
    // THEN one Bedrock request, no write, no publish
    assert_eq!(s["polled"], 40, "{s}");
    assert_eq!(
        w.bedrock.calls().len() - before,
        1,
        "{:?}",
        w.bedrock.calls()
    );
    assert_eq!(calls(&s, "ListModelInvocationJobs"), 1);
    assert_eq!(calls(&s, "GetModelInvocationJob"), 0);
    assert_eq!(writes.load(Ordering::SeqCst), 0);
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn a_job_the_list_does_not_return_should_be_read_with_a_get() {
    // GIVEN five tracked jobs, one of which Bedrock no longer lists
    let w = World::with_env(&[("NOT_FOUND_LIMIT", "1")]).await;
    let arns: Vec<String> = (0..5)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("listed-{i}"))))
        .collect();
    w.ok(json!({ "track": arns })).await;
    w.drain().await;
    w.bedrock.remove(&arns[2]);
    // WHEN polled
    let s = w.ok(json!({})).await;
    // THEN one list page and one Get, for the missing job, which is untracked
    assert_eq!(calls(&s, "ListModelInvocationJobs"), 1, "{s}");
    assert_eq!(calls(&s, "GetModelInvocationJob"), 1, "{s}");
    let got: Vec<String> = w
        .bedrock
        .calls()
        .into_iter()
        .filter(|c| c.operation == "GetModelInvocationJob")
        .filter_map(|c| c.target)
        .collect();
    assert_eq!(got.last(), Some(&arns[2]));
    assert_eq!(s["untracked"], 1, "{s}");
}

#[tokio::test]
async fn under_throttling_of_half_the_calls_the_cycle_should_end_with_bounded_calls_and_rate() {
    // GIVEN 60 jobs read one by one, a ceiling of 40 requests a second, and
    // Bedrock throttling every second request
    let w = World::with_env(&[("BULK_READ_MIN", "off"), ("BEDROCK_MAX_RPS", "40")]).await;
    let arns: Vec<String> = (0..60)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("busy-{i}"))))
        .collect();
    w.ok(json!({ "track": arns })).await;
    w.drain().await;
    let before = w.bedrock.calls().len();
    w.bedrock.inject(Fault {
        every: Some(2),
        ..Fault::new(FaultKind::Throttling)
    });

    // WHEN polled
    let s = w.ok(json!({})).await;

    // THEN the cycle ends, every job accounted for
    let polled = s["polled"].as_u64().unwrap();
    let failed = s["failed"].as_u64().unwrap();
    assert_eq!(polled + failed, 60, "{s}");
    // AND the calls stay bounded: at most the SDK's 3 attempts a job
    let calls: Vec<fake_bedrock::Call> = w.bedrock.calls()[before..].to_vec();
    assert!(calls.len() <= 60 * 3, "{} calls", calls.len());
    // AND within the ceiling: no second holds more than 40 requests (the SDK's
    // retries of a throttled request come on top of its slot)
    let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
    let first = calls[0].at_ms;
    for c in &calls {
        *per_second.entry((c.at_ms - first) / 1000).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    assert!(
        busiest <= 40 * 2,
        "busiest second: {busiest} ({per_second:?})"
    );
}

#[tokio::test]
async fn polls_over_disjoint_shards_should_cover_every_job_once() {
    // GIVEN 40 tracked jobs that all move
    let w = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let arns: Vec<String> = (0..40)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("sharded-{i}"))))
        .collect();
    w.ok(json!({ "track": arns })).await;
    w.drain().await;
    for arn in &arns {
        w.bedrock.set(arn, "InProgress");
    }
    let before = w.bedrock.calls().len();

    // WHEN one schedule polls shards 0 and 1, another shards 2 and 3
    let low = w.ok(json!({"poll": {"shards": [0, 1]}})).await;
    let low_calls: BTreeSet<String> = w.bedrock.calls()[before..]
        .iter()
        .filter_map(|c| c.target.clone())
        .collect();
    let high = w.ok(json!({"poll": {"shards": [2, 3]}})).await;

    // THEN each job was polled by exactly one of them
    let (a, b) = (
        low["polled"].as_u64().unwrap(),
        high["polled"].as_u64().unwrap(),
    );
    assert_eq!(a + b, 40, "{low} {high}");
    assert!(a > 0 && b > 0, "both halves hold jobs: {a} {b}");
    let got: Vec<Received> = w.drain().await;
    assert_eq!(got.len(), 40);
    let names: BTreeSet<String> = got
        .iter()
        .map(|m| m.attributes["jobName"].clone())
        .collect();
    assert_eq!(names.len(), 40);
    assert_eq!(low_calls.len() as u64, a);
    // AND a second pass over the low shards finds nothing more to do
    let again = w.ok(json!({"poll": {"shards": [0, 1]}})).await;
    assert_eq!(again["transitions"], 0, "{again}");
}

/// A job item as an older version wrote it for a running job (the shape
/// scripts/bench.py seeds): none of the attributes added since (labels,
/// trackedAt, tokens, the index of ends, where the rate is measured from).
async fn put_older_item(w: &World, arn: &str, name: &str, shard: u32) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let step = |from: Option<&str>, to: &str| {
        A::M(HashMap::from([
            (
                "from".into(),
                from.map_or(A::Null(true), |f| A::S(f.into())),
            ),
            ("to".into(), A::S(to.into())),
            ("at".into(), A::S(now.clone())),
            ("message".into(), A::Null(true)),
        ]))
    };
    let item = HashMap::from([
        ("jobArn".to_owned(), A::S(arn.into())),
        ("status".into(), A::S("InProgress".into())),
        ("version".into(), A::N("2".into())),
        ("jobName".into(), A::S(name.into())),
        (
            "modelId".into(),
            A::S("anthropic.claude-3-haiku-20240307-v1:0".into()),
        ),
        ("submitTime".into(), A::S(now.clone())),
        ("lastModifiedTime".into(), A::S(now.clone())),
        (
            "history".into(),
            A::L(vec![
                step(None, "Submitted"),
                step(Some("Submitted"), "InProgress"),
            ]),
        ),
        ("outbox".into(), A::M(HashMap::new())),
        ("pollShard".into(), A::N(shard.to_string())),
        ("notFoundCount".into(), A::N("0".into())),
        ("gone".into(), A::Bool(false)),
    ]);
    w.ddb
        .put_item()
        .table_name(&w.table)
        .set_item(Some(item))
        .send()
        .await
        .expect("put an item as an older version wrote it");
}

#[tokio::test]
async fn an_unchanged_poll_should_cost_the_table_its_listing_and_no_request_per_job() {
    // GIVEN a monitor with a Slack topic, WATCH on a tag and labels from tags
    let slack = format!("{}-channel", support::unique("slack"));
    let slack_arn = format!("arn:aws:sns:us-east-1:123456789012:{slack}");
    let w = World::with_env(&[
        ("SLACK_TOPIC_ARN", slack_arn.as_str()),
        ("WATCH", "name:steady,tag:team=search"),
        ("LABEL_TAGS", "team"),
    ])
    .await;
    w.topic_with_queue(&slack).await;
    // AND jobs that do not move, each way the table comes to hold one:
    // tracked with labels from their tags; running, with a reading of their
    // count stored (it moved once, then stood); and items an older version
    // wrote
    let tagged: Vec<String> = (0..12)
        .map(|i| {
            w.bedrock.seed(
                SeedJob::named(&format!("steady-tagged-{i}"))
                    .with_status("Scheduled")
                    .with_tag("team", "search"),
            )
        })
        .collect();
    let counted: Vec<String> = (0..6)
        .map(|i| {
            w.bedrock.seed(
                SeedJob::named(&format!("steady-counted-{i}"))
                    .with_status("InProgress")
                    .with_records(support::records(1000, 0)),
            )
        })
        .collect();
    let all = [tagged.clone(), counted.clone()].concat();
    let t = w.ok(json!({ "track": all })).await;
    assert_eq!(t["tracked"].as_array().map(Vec::len), Some(18), "{t}");
    for (i, id) in (0..6).map(|i| (i, format!("older{i:07}"))) {
        let arn = w.bedrock.seed(SeedJob {
            id: Some(id),
            ..SeedJob::named(&format!("steady-older-{i}")).with_status("InProgress")
        });
        put_older_item(&w, &arn, &format!("steady-older-{i}"), i % 4).await;
    }
    for arn in &counted {
        w.bedrock.set_records(arn, support::records(1000, 100));
    }
    // (the first poll writes the counted jobs' first reading)
    let first = w.ok(json!({})).await;
    assert_eq!(first["polled"], 24, "{first}");
    w.drain().await;
    let before = support::table_requests(&w.table);
    let bedrock_before = w.bedrock.calls().len();

    // WHEN the next poll finds every job as it was
    let s = w.ok(json!({})).await;

    // THEN the table served the listing alone: one page a shard, the
    // cursor's read and the health record's count; no job was read whole or
    // written (the whole item is read only for a job that changed or has a
    // warning or a notification due)
    assert_eq!(s["polled"], 24, "{s}");
    assert_eq!(s["transitions"], 0, "{s}");
    let after = support::table_requests(&w.table);
    let served: BTreeMap<String, u64> = after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let expected: BTreeMap<String, u64> = [("Query", 4), ("GetItem", 1), ("UpdateItem", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    assert_eq!(served, expected, "{s}");
    // AND Bedrock was asked for one list page, and nothing was published
    assert_eq!(
        w.bedrock.calls().len() - bedrock_before,
        1,
        "{:?}",
        &w.bedrock.calls()[bedrock_before..]
    );
    assert_eq!(calls(&s, "ListModelInvocationJobs"), 1, "{s}");
    assert!(w.drain().await.is_empty());
}
