//! Faults thrown at the guarantees of DESIGN.md section 4: real SDK clients,
//! moto behind its fault layer (scripts/moto_server.py) or a proxy that cuts
//! it off, and fake-bedrock's fault API. Each test checks what a subscriber
//! and the table show afterwards: no transition lost, none notified twice
//! (unless a publish's outcome was lost, and then with the same transitionId),
//! no item left unreadable.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_batch_monitor::adapters::bedrock::BedrockJobSource;
use bedrock_batch_monitor::adapters::dynamodb::DynamoJobStore;
use bedrock_batch_monitor::adapters::sns::SnsNotifier;
use bedrock_batch_monitor::monitor::Monitor;
use fake_bedrock::{Fault, FaultKind, SeedJob};
use serde_json::json;
use support::{MotoFault, Outage, Received, World, invocation, sdk_config};

fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

/// The version a transitionId names (`<job id>-<version>-<status>`).
fn version_of(transition_id: &str) -> u64 {
    transition_id
        .split('-')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a transitionId: {transition_id}"))
}

/// Each job's notified statuses, in version order, and how often each
/// transitionId arrived.
fn by_job(got: &[Received]) -> (BTreeMap<String, Vec<String>>, HashMap<String, usize>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut jobs: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for m in got {
        let id = m.body["transitionId"].as_str().unwrap().to_owned();
        let n = seen.entry(id.clone()).or_default();
        *n += 1;
        if *n == 1 {
            jobs.entry(m.body["jobArn"].as_str().unwrap().to_owned())
                .or_default()
                .push((
                    version_of(&id),
                    m.body["status"].as_str().unwrap().to_owned(),
                ));
        }
    }
    let ordered = jobs
        .into_iter()
        .map(|(arn, mut v)| {
            v.sort();
            (arn, v.into_iter().map(|(_, s)| s).collect())
        })
        .collect();
    (ordered, seen)
}

async fn track_all(w: &World, arns: &[String]) {
    for chunk in arns.chunks(100) {
        let out = w.ok(json!({ "track": chunk })).await;
        assert_eq!(
            out["tracked"].as_array().unwrap().len(),
            chunk.len(),
            "{out}"
        );
    }
}

/// Every job's stored history, as statuses.
async fn histories(w: &World, arns: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for a in arns {
        let d = w.ok(json!({ "describe": a })).await;
        assert!(d["errorKind"].is_null(), "{a} unreadable: {d}");
        out.insert(a.clone(), support::history_statuses(&d));
    }
    out
}

#[tokio::test]
async fn when_sns_fails_for_several_polls_every_notification_should_arrive_afterwards_once() {
    // GIVEN five tracked jobs, and SNS answering 500 to this topic's publishes
    let w = World::new().await;
    let arns: Vec<String> = (0..5)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("outage-{i}"))))
        .collect();
    track_all(&w, &arns).await;
    w.drain().await;
    let outage = MotoFault::add(
        json!({"service": "sns", "action": "Publish", "contains": w.topic_arn,
        "status": 500, "code": "InternalError"}),
    );

    // WHEN the jobs move twice while three polls cannot publish
    for (poll, status) in ["Validating", "InProgress", "InProgress"]
        .iter()
        .enumerate()
    {
        if poll < 2 {
            for a in &arns {
                w.bedrock.set(a, status);
            }
        }
        let err = w.invoke(&w.monitor(), json!({})).await.unwrap_err();
        let diag: lambda_runtime::Diagnostic = err.into();
        assert_eq!(
            diag.error_type, "TopicUnavailable",
            "{}",
            diag.error_message
        );
    }
    assert!(outage.hits() >= 3);
    drop(outage);
    assert!(w.drain().await.is_empty());

    // THEN once SNS is back, one poll delivers every transition, in order, once
    let s = w.ok(json!({})).await;
    assert_eq!(
        (s["notified"].as_u64(), s["pending"].as_u64()),
        (Some(10), Some(0)),
        "{s}"
    );
    let got = w.drain().await;
    let (jobs, seen) = by_job(&got);
    assert!(seen.values().all(|n| *n == 1), "a repeat: {seen:?}");
    for a in &arns {
        assert_eq!(jobs[a], ["Validating", "InProgress"], "{a}");
    }
    assert!(w.ok(json!({})).await["notified"] == 0);
}

#[tokio::test]
async fn when_dynamodb_throttles_and_fails_reads_and_writes_no_transition_should_be_lost_or_corrupted()
 {
    // GIVEN six jobs that all change
    let w = World::new().await;
    let arns: Vec<String> = (0..6)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("flaky-table-{i}"))))
        .collect();
    track_all(&w, &arns).await;
    w.drain().await;
    for a in &arns {
        w.bedrock.set(a, "InProgress");
    }
    // AND a table that throttles the listing, fails reads, fails a conditional
    // write outright, and applies another but loses its answer
    let faults = [
        MotoFault::add(
            json!({"service": "dynamodb", "action": "Query", "contains": w.table,
            "status": 400, "code": "ProvisionedThroughputExceededException", "times": 3}),
        ),
        MotoFault::add(
            json!({"service": "dynamodb", "action": "GetItem", "contains": w.table,
            "status": 500, "code": "InternalServerError", "times": 4}),
        ),
        MotoFault::add(json!({"service": "dynamodb", "action": "UpdateItem",
            "contains": [w.table, job_id(&arns[0]), ":history"],
            "status": 500, "code": "InternalServerError", "times": 3})),
        MotoFault::add(json!({"service": "dynamodb", "action": "UpdateItem",
            "contains": [w.table, job_id(&arns[1]), ":history"],
            "status": 500, "code": "InternalServerError", "times": 1, "apply": true})),
    ];

    // WHEN polls run until the faults are spent
    let mut polls = Vec::new();
    for _ in 0..3 {
        polls.push(w.invoke(&w.monitor(), json!({})).await);
    }
    drop(faults);
    let last = w.ok(json!({})).await;

    // THEN every transition is recorded once and notified once, and every item reads
    let got = w.drain().await;
    let (jobs, seen) = by_job(&got);
    assert!(
        seen.values().all(|n| *n == 1),
        "a repeat: {seen:?}; polls {polls:?}"
    );
    for a in &arns {
        assert_eq!(
            jobs.get(a).map(Vec::as_slice),
            Some(&["InProgress".to_owned()][..]),
            "{a}; polls {polls:?}"
        );
    }
    assert_eq!(last["pending"], 0, "{last}");
    for (a, h) in histories(&w, &arns).await {
        assert_eq!(h, ["Submitted", "InProgress"], "{a}");
    }
}

#[tokio::test]
async fn when_bedrock_throttles_in_a_storm_the_other_jobs_should_go_on() {
    // GIVEN twenty jobs, half of which Bedrock throttles every time
    let w = World::with_env(&[("BULK_READ_MIN", "off")]).await;
    let arns: Vec<String> = (0..20)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("storm-{i}"))))
        .collect();
    track_all(&w, &arns).await;
    w.drain().await;
    for a in &arns {
        w.bedrock.set(a, "InProgress");
    }
    for a in &arns[..10] {
        w.bedrock.inject(Fault {
            kind: FaultKind::Throttling,
            times: None,
            job_id: Some(job_id(a).to_owned()),
            every: None,
            operation: None,
            seen: 0,
        });
    }

    // WHEN a poll runs in the storm
    let s = w.ok(json!({})).await;

    // THEN the others are recorded and notified, the throttled ones reported
    assert_eq!(
        (
            s["polled"].as_u64(),
            s["transitions"].as_u64(),
            s["failed"].as_u64()
        ),
        (Some(10), Some(10), Some(10)),
        "{s}"
    );
    assert!(
        s["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "BedrockThrottling")
    );
    let notified: HashSet<String> = w
        .drain()
        .await
        .iter()
        .map(|m| m.body["jobArn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(notified, arns[10..].iter().cloned().collect());

    // AND after the storm the rest catch up
    w.bedrock.clear_faults();
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 10, "{s}");
}

/// A small xorshift generator: the test prints its seed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_eight_polls_run_at_once_over_200_jobs_each_transition_should_be_notified_exactly_once()
 {
    // GIVEN 200 tracked jobs
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("FAULTS_SEED={seed}");
    let mut rng = Rng(seed);
    let w = World::new().await;
    let arns: Vec<String> = (0..200)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("crowd-{i}"))))
        .collect();
    track_all(&w, &arns).await;
    let mut did: BTreeMap<String, Vec<String>> = arns
        .iter()
        .map(|a| (a.clone(), vec!["Submitted".to_owned()]))
        .collect();
    const PATH: [&str; 2] = ["Submitted", "InProgress"];

    // WHEN, three times, random jobs move one step (to an end after InProgress)
    // and eight polls run at once
    for _ in 0..3 {
        for a in &arns {
            let history = did.get_mut(a).unwrap();
            let now = history.last().unwrap().clone();
            let Some(i) = PATH.iter().position(|s| *s == now) else {
                continue; // ended
            };
            // A quarter of the jobs move each round: each move costs moto
            // four writes and a delivery, the whole suite's time.
            if !rng.next().is_multiple_of(4) {
                continue;
            }
            let next = match PATH.get(i + 1) {
                Some(s) => (*s).to_owned(),
                None if rng.next().is_multiple_of(2) => "Completed".to_owned(),
                None => "Failed".to_owned(),
            };
            w.bedrock.set(a, &next);
            history.push(next);
        }
        let monitors: Vec<_> = (0..8).map(|_| w.monitor()).collect();
        let runs = futures::future::join_all(monitors.iter().map(|m| w.invoke(m, json!({})))).await;
        for r in runs {
            r.unwrap_or_else(|e| panic!("a poll failed (FAULTS_SEED={seed}): {e}"));
        }
    }

    // THEN each transition was notified exactly once, and every history is what Bedrock did
    let got = w.drain().await;
    let (jobs, seen) = by_job(&got);
    let repeats: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeats.is_empty(),
        "repeats (FAULTS_SEED={seed}): {repeats:?}"
    );
    assert_eq!(
        jobs, did,
        "notifications differ from Bedrock's history (FAULTS_SEED={seed})"
    );
    assert_eq!(histories(&w, &arns).await, did, "FAULTS_SEED={seed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_moto_goes_away_in_the_middle_of_a_cycle_the_next_cycle_should_recover() {
    // GIVEN twenty changed jobs, polled four at a time, through a proxy to moto
    let w = World::with_env(&[("MAX_CONCURRENCY", "4")]).await;
    let arns: Vec<String> = (0..20)
        .map(|i| w.bedrock.seed(SeedJob::named(&format!("restart-{i}"))))
        .collect();
    track_all(&w, &arns).await;
    w.drain().await;
    for a in &arns {
        w.bedrock.set(a, "InProgress");
    }
    w.bedrock.set_latency(Duration::from_millis(100));
    let proxy = Outage::start(support::moto_endpoint()).await;
    let via_proxy = sdk_config(&proxy.url(), support::REGION).await;
    let monitor = || {
        Monitor::new(
            BedrockJobSource::new(w.bedrock_sdk.clone()).with_rate_limit(w.config.bedrock_max_rps),
            DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&via_proxy), &w.table),
            SnsNotifier::new(aws_sdk_sns::Client::new(&via_proxy), &w.topic_arn),
            w.config.clone(),
            support::REGION,
        )
    };

    // WHEN moto goes away 250 ms into a cycle, and comes back a second later
    let (first, poll, inv) = (monitor(), json!({}), invocation(None));
    let cycle = bedrock_batch_monitor::handler::handle(&first, &poll, &inv);
    let outage = async {
        tokio::time::sleep(Duration::from_millis(250)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(1)).await;
        proxy.restore();
    };
    let (interrupted, ()) = tokio::join!(cycle, outage);

    // THEN the next cycle succeeds
    let next = bedrock_batch_monitor::handler::handle(&monitor(), &json!({}), &invocation(None))
        .await
        .unwrap_or_else(|e| {
            panic!("the next cycle failed: {e}; the interrupted one: {interrupted:?}")
        });
    // AND a notification whose claim the interrupted cycle left behind goes
    // out once that claim runs out (made to run out now rather than waited for)
    let mut stuck = 0;
    for a in &arns {
        let item = w.item(a).await.unwrap();
        if let Some(AttributeValue::M(outbox)) = item.get("outbox") {
            for id in outbox.keys() {
                stuck += 1;
                w.ddb
                    .update_item()
                    .table_name(&w.table)
                    .key("jobArn", AttributeValue::S(a.clone()))
                    .update_expression("SET outbox.#t.claimedUntil = :past")
                    .expression_attribute_names("#t", id)
                    .expression_attribute_values(":past", AttributeValue::N("0".into()))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    let after = w.ok(json!({})).await;
    assert_eq!(after["pending"], 0, "{after}");

    // AND every transition is recorded once and notified, at most once more
    // (a publish whose removal was cut off), with the same transitionId
    let got = w.drain().await;
    let (jobs, seen) = by_job(&got);
    for a in &arns {
        assert_eq!(
            jobs.get(a).map(Vec::as_slice),
            Some(&["InProgress".to_owned()][..]),
            "{a}; interrupted {interrupted:?}; next {next}; {stuck} stuck"
        );
    }
    assert!(seen.values().all(|n| *n <= 2), "{seen:?}");
    for (a, h) in histories(&w, &arns).await {
        assert_eq!(h, ["Submitted", "InProgress"], "{a}");
    }
}
