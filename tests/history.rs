//! The history check (issue 14): seeded, randomized lives played against the
//! real handler, moto and the fake Bedrock, with everything that can make a
//! monitor lie happening at once. Each job follows a random legal life with
//! record counts; Bedrock's events arrive late, twice or not at all; list
//! and Get answers are stale on arrival; two to four invocations run at once;
//! people track jobs again (to add a label) or untrack and track them while
//! all this happens; SNS refuses publishes for a while. At the end, for every job:
//! - the statuses notified, in version order, are a subsequence of the life
//!   the fake Bedrock recorded, ending in its final status;
//! - no `transitionId` arrives twice with a different content;
//! - the stored status equals Bedrock's.
//!
//! `HISTORY_ROUNDS` rounds (default 8) of `HISTORY_JOBS` jobs (default 25)
//! each: 200 histories in `make test`; `make fuzz` runs more. A failing round
//! prints its seed; `HISTORY_SEED` replays it alone.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_bedrock::{Records, SeedJob, StatusChange};
use serde_json::json;
use support::{MotoFault, World, native_event};

/// SplitMix64: a small seeded generator, so a failing round replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random legal life after Submitted, ending in a terminal status.
fn random_life(rng: &mut Rng) -> Vec<&'static str> {
    let mut life = vec!["Validating"];
    if rng.chance(10) {
        life.push("Failed");
        return life;
    }
    life.push("Scheduled");
    match rng.below(10) {
        0 => {
            life.push("Expired");
            return life;
        }
        1 => {
            life.extend(["Stopping", "Stopped"]);
            return life;
        }
        _ => {}
    }
    life.push("InProgress");
    life.push(match rng.below(10) {
        0 | 1 => "Failed",
        2 => "PartiallyCompleted",
        3 => "Stopping",
        _ => "Completed",
    });
    if life.last() == Some(&"Stopping") {
        life.push("Stopped");
    }
    life
}

/// One job being played: its planned life and how far it got.
struct Played {
    arn: String,
    plan: Vec<&'static str>,
    next: usize,
    processed: i64,
}

const TOTAL: i64 = 100;

/// Moves the job one step (sometimes two) along its plan, or its counts along
/// while it runs; returns the statuses it entered.
fn advance(w: &World, job: &mut Played, rng: &mut Rng) -> Vec<&'static str> {
    let mut entered = Vec::new();
    let steps = if rng.chance(20) { 2 } else { 1 };
    for _ in 0..steps {
        let current = job.next.checked_sub(1).map(|i| job.plan[i]);
        if current == Some("InProgress") && job.processed < TOTAL && rng.chance(50) {
            job.processed = (job.processed + 1 + rng.below(40) as i64).min(TOTAL);
            w.bedrock.set_records(&job.arn, records(job.processed));
            continue;
        }
        let Some(status) = job.plan.get(job.next).copied() else {
            break;
        };
        job.next += 1;
        let counted = matches!(
            status,
            "InProgress" | "Completed" | "PartiallyCompleted" | "Failed" | "Stopping" | "Stopped"
        ) && job.next > 3;
        w.bedrock.set_status(
            &job.arn,
            StatusChange {
                status: status.into(),
                message: (status == "Failed").then(|| "the input is malformed".to_owned()),
                records: counted.then(|| records(job.processed)),
            },
        );
        entered.push(status);
    }
    entered
}

fn records(processed: i64) -> Records {
    Records {
        total: TOTAL,
        processed,
        success: processed - processed / 10,
        error: processed / 10,
    }
}

/// A notification as the subscriber kept it.
#[derive(Debug, Clone, PartialEq)]
struct Heard {
    version: u64,
    status: String,
    previous: Option<String>,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One round: `jobs` lives played with `seed`. Returns a description of every
/// broken guarantee (empty when none).
async fn round(seed: u64, jobs: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    let w = World::with_env(&[("CLAIM_SECONDS", "30")]).await;
    let list_delay = [0u64, 500, 1500][rng.below(3) as usize];
    w.bedrock.set_list_delay(Duration::from_millis(list_delay));
    // Get answers late too (track's, the events', the polls' one by one).
    let get_delay = [0u64, 200, 800][rng.below(3) as usize];
    w.bedrock.set_get_delay(Duration::from_millis(get_delay));
    let mut played: Vec<Played> = (0..jobs)
        .map(|i| Played {
            arn: w.bedrock.seed(SeedJob::named(&format!("h{seed}-{i}"))),
            plan: random_life(&mut rng),
            next: 0,
            processed: 0,
        })
        .collect();
    let arns: Vec<String> = played.iter().map(|p| p.arn.clone()).collect();
    w.ok(json!({ "track": arns })).await;

    // SNS refuses this round's publishes for a while, from a random tick on.
    let refuse_at = rng.below(6);
    let mut refusal: Option<MotoFault> = None;
    // Events delivered late wait here for the next tick.
    let mut late: Vec<String> = Vec::new();
    let mut retracked: Vec<String> = Vec::new();
    let mut tick = 0;
    while played.iter().any(|p| p.next < p.plan.len()) && tick < 40 {
        if tick == refuse_at {
            refusal = Some(MotoFault::add(json!({
                "service": "sns", "action": "Publish", "contains": w.topic_arn,
                "status": 500, "code": "InternalError", "times": 2 + rng.below(10)
            })));
        }
        // Two to four polls at once; while their list pages are on the way
        // the jobs move, and the events due now are reconciled beside them.
        let polls = 2 + rng.below(3) as usize;
        let pause = Duration::from_millis(rng.below(100));
        let mut events: Vec<String> = std::mem::take(&mut late);
        // Some jobs move before the polls start, their events not yet sent:
        // a poll's list page then carries a status the table has not seen.
        for p in played.iter_mut() {
            if rng.chance(30) && !advance(&w, p, &mut rng).is_empty() && rng.chance(50) {
                late.push(p.arn.clone());
            }
        }
        let mut moved: Vec<String> = Vec::new();
        for p in played.iter_mut() {
            if rng.chance(60) {
                moved.push(p.arn.clone());
            }
        }
        // Each change's event: now (maybe twice), next tick, or never.
        let mut fates = Vec::new();
        for _ in &moved {
            fates.push(rng.below(10));
        }
        let mut steps = Vec::new();
        for _ in &moved {
            steps.push(Rng(rng.next()));
        }
        let invoke = |event: serde_json::Value| {
            let w = &w;
            async move {
                // A failed invocation is what Lambda would retry: the next tick does.
                let _ = w.invoke(&w.monitor(), event).await;
            }
        };
        // People at work beside the polls: some track a job again to add a
        // label, some untrack one and track it again.
        let mut commands: Vec<Vec<serde_json::Value>> = Vec::new();
        for p in &played {
            if rng.chance(8) {
                commands.push(vec![
                    json!({"track": [{"jobArn": p.arn, "labels": {"tick": tick.to_string()}}]}),
                ]);
            } else if rng.chance(4) {
                retracked.push(p.arn.clone());
                commands.push(vec![json!({"untrack": [p.arn]}), json!({"track": [p.arn]})]);
            }
        }
        let people = futures::future::join_all(commands.into_iter().map(|steps| {
            let invoke = &invoke;
            async move {
                for step in steps {
                    invoke(step).await;
                }
            }
        }));
        let poll_all = futures::future::join_all((0..polls).map(|_| invoke(json!({}))));
        let lists_before = w.bedrock.count("ListModelInvocationJobs");
        let move_and_tell = async {
            // Once a poll's list page is computed (and on its way, when the
            // round delays list answers), or after a while.
            for _ in 0..100 {
                if w.bedrock.count("ListModelInvocationJobs") > lists_before {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(pause).await;
            for ((arn, fate), mut step_rng) in moved.iter().zip(&fates).zip(steps) {
                let p = played.iter_mut().find(|p| &p.arn == arn).unwrap();
                if advance(&w, p, &mut step_rng).is_empty() {
                    continue;
                }
                match fate {
                    0..=3 => events.push(arn.clone()),
                    4 | 5 => {
                        events.push(arn.clone());
                        events.push(arn.clone());
                    }
                    6 | 7 => late.push(arn.clone()),
                    _ => {}
                }
            }
            futures::future::join_all(
                events
                    .iter()
                    .map(|arn| invoke(native_event(arn, "InProgress"))),
            )
            .await;
        };
        futures::join!(poll_all, move_and_tell, people);
        tick += 1;
    }
    drop(refusal);
    w.bedrock.set_list_delay(Duration::ZERO);
    w.bedrock.set_get_delay(Duration::ZERO);
    // A job untracked and tracked again is tracked at the end (a track that
    // lost its races is sent again, as a person would).
    retracked.sort();
    retracked.dedup();
    if !retracked.is_empty() {
        w.ok(json!({ "track": retracked })).await;
    }
    // Settle: polls until nothing is pending.
    for _ in 0..6 {
        let s = w.ok(json!({})).await;
        if s["pending"] == 0 && s["transitions"] == 0 {
            break;
        }
    }

    let mut heard: BTreeMap<String, BTreeMap<String, Heard>> = BTreeMap::new();
    let mut broken = Vec::new();
    for m in w.drain().await {
        if m.attributes["event"] != "statusChanged" {
            continue;
        }
        let id = m.body["transitionId"].as_str().unwrap().to_owned();
        let version: u64 = id.rsplit('-').nth(1).unwrap().parse().unwrap();
        let h = Heard {
            version,
            status: m.body["status"].as_str().unwrap().to_owned(),
            previous: m.body["previousStatus"].as_str().map(str::to_owned),
        };
        let job = m.body["jobArn"].as_str().unwrap().to_owned();
        let by_id = heard.entry(job.clone()).or_default();
        if let Some(before) = by_id.get(&id)
            && *before != h
        {
            broken.push(format!(
                "{job}: transitionId {id} arrived twice with different content: {before:?} / {h:?}"
            ));
        }
        by_id.insert(id, h);
    }
    for p in &played {
        let life = w.bedrock.life(&p.arn).expect("the fake knows the job");
        let mut told: Vec<&Heard> = heard
            .get(&p.arn)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        told.sort_by_key(|h| h.version);
        // A job tracked again after an untrack starts a new tracking with a
        // first observation (no previous status) of where it stands: the
        // status subscribers last heard, said again, is no lie.
        let mut statuses: Vec<&str> = Vec::new();
        for h in &told {
            if h.previous.is_none() && statuses.last() == Some(&h.status.as_str()) {
                continue;
            }
            statuses.push(h.status.as_str());
        }
        if !told_the_truth(&statuses, &life) {
            broken.push(format!(
                "{}: told {statuses:?}, but its life was {life:?}",
                p.arn
            ));
        }
        let d = w.ok(json!({ "describe": p.arn })).await;
        if d["status"].as_str() != life.last().map(String::as_str) {
            broken.push(format!(
                "{}: stored {}, but Bedrock says {:?}",
                p.arn,
                d["status"],
                life.last()
            ));
        }
    }
    broken
        .into_iter()
        .map(|b| format!("seed {seed} (list delay {list_delay} ms, get delay {get_delay} ms): {b}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_history_should_tell_subscribers_only_what_bedrock_did() {
    let jobs = env_number("HISTORY_JOBS", 25) as usize;
    let seeds: Vec<u64> = match std::env::var("HISTORY_SEED") {
        Ok(seed) => vec![seed.parse().expect("HISTORY_SEED is a number")],
        Err(_) => {
            let base = env_number("HISTORY_BASE_SEED", 14);
            (0..env_number("HISTORY_ROUNDS", 8))
                .map(|i| base * 1000 + i)
                .collect()
        }
    };
    let rounds = seeds.len();
    // Four rounds at a time: each has its own table, topic and queue.
    let mut broken: Vec<String> = Vec::new();
    for chunk in seeds.chunks(4) {
        let results = futures::future::join_all(chunk.iter().map(|&s| round(s, jobs))).await;
        broken.extend(results.into_iter().flatten());
    }
    println!(
        "history check: {rounds} rounds x {jobs} jobs = {} histories, {} broken",
        rounds * jobs,
        broken.len()
    );
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// The statuses told are, in order, a subsequence of the life, and end in
/// its final status.
fn told_the_truth(told: &[&str], life: &[String]) -> bool {
    let mut rest = life.iter();
    told.iter().all(|s| rest.any(|l| l == s))
        && told.last().copied() == life.last().map(String::as_str)
}

#[test]
fn the_check_should_catch_a_status_out_of_order_a_status_never_had_and_a_missing_end() {
    let life: Vec<String> = ["Submitted", "Validating", "Failed"]
        .map(String::from)
        .to_vec();
    assert!(told_the_truth(&["Submitted", "Failed"], &life));
    assert!(told_the_truth(
        &["Submitted", "Validating", "Failed"],
        &life
    ));
    assert!(!told_the_truth(
        &["Submitted", "Failed", "Validating"],
        &life
    ));
    assert!(!told_the_truth(
        &["Submitted", "InProgress", "Failed"],
        &life
    ));
    assert!(!told_the_truth(&["Submitted", "Validating"], &life));
}
