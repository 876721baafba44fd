//! The fleet (issue 15): `list` paging and filters, the ETA of a running job
//! and the digest's window, through the real handler and SDK clients against
//! moto (DynamoDB, SNS, SQS) and the fake Bedrock; the digest is read from
//! the subscribed queue.

mod support;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use fake_bedrock::SeedJob;
use serde_json::{Value, json};
use support::{Received, World, records};

fn names(answer: &Value) -> Vec<String> {
    answer["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {answer}"))
        .iter()
        .map(|j| j["jobName"].as_str().unwrap().to_owned())
        .collect()
}

fn digests(got: &[Received]) -> Vec<&Received> {
    got.iter()
        .filter(|m| m.attributes.get("event").map(String::as_str) == Some("digest"))
        .collect()
}

#[tokio::test]
async fn list_should_page_newest_first_and_filter_by_status_labels_and_end() {
    let w = World::new().await;
    let now = Utc::now();
    // Twelve jobs submitted a minute apart, alternately labelled; two end.
    let mut arns = Vec::new();
    for i in 0..12 {
        let team = if i % 2 == 0 { "search" } else { "ads" };
        let status = if i % 3 == 0 {
            "InProgress"
        } else {
            "Scheduled"
        };
        let arn = w.bedrock.seed(
            SeedJob::named(&format!("job-{i:02}"))
                .with_status(status)
                .submitted_at(now - chrono::Duration::minutes(60 - i))
                .with_records(records(100, 10)),
        );
        arns.push((arn, team));
    }
    let items: Vec<Value> = arns
        .iter()
        .map(|(arn, team)| json!({"jobArn": arn, "labels": {"team": team}}))
        .collect();
    let out = w.ok(json!({ "track": items })).await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), 12, "{out}");
    // job-00 ends, then job-01: the ended ones are listed latest end first.
    w.bedrock.set(&arns[0].0, "Completed");
    w.ok(json!({"poll": {}})).await;
    w.bedrock.set(&arns[1].0, "Failed");
    w.ok(json!({"poll": {}})).await;

    // Not ended, newest first, in pages of 4 that neither repeat nor skip.
    let mut seen = Vec::new();
    let mut next = Value::Null;
    let mut pages = 0;
    loop {
        let answer = w.ok(json!({"list": {"limit": 4, "next": next}})).await;
        pages += 1;
        let page = names(&answer);
        assert!(page.len() <= 4, "{answer}");
        seen.extend(page);
        next = answer["next"].clone();
        if next.is_null() {
            break;
        }
        assert!(next.is_string(), "{answer}");
    }
    let expected: Vec<String> = (2..12).rev().map(|i| format!("job-{i:02}")).collect();
    assert_eq!(seen, expected, "newest first, ended ones left out");
    assert_eq!(pages, 3);

    // Every field of a listed job; no Bedrock call for any of it.
    let before = w.bedrock.calls().len();
    let answer = w.ok(json!({"list": {"limit": 1}})).await;
    assert_eq!(w.bedrock.calls().len(), before, "list reads the table only");
    let job = &answer["jobs"][0];
    assert_eq!(job["jobArn"], arns[11].0.as_str());
    assert_eq!(job["jobName"], "job-11");
    assert_eq!(job["status"], "Scheduled");
    assert_eq!(job["labels"], json!({"team": "ads"}));
    assert_eq!(job["records"]["total"], 100);
    assert!(job["submitTime"].as_str().unwrap().ends_with('Z'));
    assert!(job["lastModifiedTime"].is_string());
    assert!(job.get("eta").is_none(), "one reading: no estimate");

    // Filters: status (any of), labels (all of), ended.
    let running = w.ok(json!({"list": {"status": ["InProgress"]}})).await;
    assert_eq!(names(&running), ["job-09", "job-06", "job-03"]);
    let search = w
        .ok(json!({"list": {"labels": {"team": "search"}, "status": ["InProgress", "Scheduled"]}}))
        .await;
    assert_eq!(
        names(&search),
        ["job-10", "job-08", "job-06", "job-04", "job-02"]
    );
    let all = w.ok(json!({"list": {"ended": true, "limit": 100}})).await;
    assert_eq!(names(&all).len(), 12, "{all}");
    assert!(all["next"].is_null());
    let ended = w
        .ok(json!({"list": {"ended": true, "status": ["Completed", "Failed"]}}))
        .await;
    assert_eq!(names(&ended), ["job-01", "job-00"], "latest end first");
    let nobody = w.ok(json!({"list": {"labels": {"team": "nobody"}}})).await;
    assert_eq!(
        (&nobody["jobs"], &nobody["next"]),
        (&json!([]), &Value::Null)
    );
    assert_eq!(nobody["bedrockCalls"]["GetModelInvocationJob"], 0);
}

#[tokio::test]
async fn list_should_refuse_bad_options_clearly_and_read_nothing() {
    let w = World::new().await;
    let m = w.monitor();
    for (event, says) in [
        (json!({"list": {"limit": 101}}), "from 1 to 100"),
        (json!({"list": {"limit": 0}}), "from 1 to 100"),
        (json!({"list": {"status": ["Running"]}}), "InProgress"),
        (
            json!({"list": {"next": "not a token"}}),
            "previous list answer",
        ),
        (json!({"list": {"colour": "red"}}), "unknown list option"),
        (json!({"list": {"ended": "yes"}}), "true or false"),
        (
            json!({"list": {"accounts": ["123456789012", "12345"]}}),
            "\"12345\" is not an AWS account id",
        ),
        (
            json!({"list": {"accounts": []}}),
            "12-digit AWS account ids",
        ),
        (json!({"list": []}), "takes an object"),
        (json!({"digest": {"now": true}}), "no options"),
    ] {
        let err = w.invoke(&m, event.clone()).await.expect_err("refused");
        assert!(err.to_string().contains(says), "{event}: {err}");
    }
}

#[tokio::test]
async fn a_running_job_gets_an_eta_after_two_readings_of_a_moving_count() {
    let w = World::new().await;
    let arn = w.bedrock.seed(
        SeedJob::named("moving")
            .with_status("InProgress")
            .with_records(records(1000, 100)),
    );
    w.ok(json!({"track": [arn]})).await;
    // One reading (the count when first seen running): no estimate anywhere.
    w.ok(json!({"poll": {}})).await;
    let listed = w.ok(json!({"list": {}})).await;
    assert!(listed["jobs"][0].get("eta").is_none(), "{listed}");
    assert!(w.ok(json!({"describe": arn})).await.get("eta").is_none());

    // The count moves between two polls: an estimate, in list and describe.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    w.bedrock.set_records(&arn, records(1000, 400));
    w.ok(json!({"poll": {}})).await;
    let listed = w.ok(json!({"list": {}})).await;
    let eta: DateTime<Utc> = listed["jobs"][0]["eta"]
        .as_str()
        .unwrap_or_else(|| panic!("no eta in {listed}"))
        .parse()
        .unwrap();
    // 300 records in about 1.5 s or more; 600 left: a few seconds ahead at most.
    let ahead = eta - Utc::now();
    assert!(
        ahead > chrono::Duration::zero() && ahead < chrono::Duration::seconds(60),
        "{eta}"
    );
    let described = w.ok(json!({"describe": arn})).await;
    assert_eq!(described["eta"], listed["jobs"][0]["eta"]);

    // Once it ends there is nothing to estimate.
    w.bedrock.set(&arn, "Completed");
    w.ok(json!({"poll": {}})).await;
    let all = w.ok(json!({"list": {"ended": true}})).await;
    assert!(all["jobs"][0].get("eta").is_none(), "{all}");
}

#[tokio::test]
async fn two_digests_in_a_row_report_each_end_once_and_an_empty_one_says_so() {
    // Ends count from the moment they are recorded (no settle time), so the
    // test need not wait.
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    // The first digest of an empty table (after a poll: "all quiet" needs
    // polls): it still goes out, and says so.
    w.ok(json!({"poll": {}})).await;
    let first = w.ok(json!({"digest": {}})).await;
    assert_eq!(first["published"], true, "{first}");
    let got = w.drain().await;
    let d = digests(&got);
    assert_eq!(d.len(), 1, "{got:?}");
    assert_eq!(d[0].attributes["severity"], "info");
    assert_eq!(d[0].body["quiet"], true);
    for field in ["running", "ended", "warnings", "health"] {
        assert!(d[0].body.get(field).is_some(), "{field} in {}", d[0].body);
    }
    assert!(d[0].subject.as_deref().unwrap().contains("all quiet"));

    // Jobs run; two polls; one ends.
    let a = w.bedrock.seed(
        SeedJob::named("ends-first")
            .with_status("InProgress")
            .with_records(records(10, 5)),
    );
    let b = w.bedrock.seed(
        SeedJob::named("ends-second")
            .with_status("InProgress")
            .with_records(records(10, 5)),
    );
    let c = w
        .bedrock
        .seed(SeedJob::named("keeps-running").with_status("InProgress"));
    w.ok(json!({"track": [a, b, c]})).await;
    w.ok(json!({"poll": {}})).await;
    w.bedrock.set(&a, "Completed");
    w.ok(json!({"poll": {}})).await;
    w.drain().await;

    let second = w.ok(json!({"digest": {}})).await;
    assert_eq!(
        (second["running"].clone(), second["ended"].clone()),
        (json!(2), json!(1)),
        "{second}"
    );
    let got = w.drain().await;
    let d = digests(&got);
    assert_eq!(d.len(), 1);
    let body = &d[0].body;
    assert_eq!(body["quiet"], false);
    assert_eq!(body["ended"][0]["jobName"], "ends-first");
    assert_eq!(body["ended"][0]["status"], "Completed");
    let running: BTreeSet<&str> = body["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(running, BTreeSet::from(["ends-second", "keeps-running"]));
    assert_eq!(
        body["health"]["polls"], 2,
        "the polls since the first digest"
    );
    assert_eq!(body["health"]["failedInvocations"], 0);

    // The other ends between the digests: the third reports it, and not the first.
    w.bedrock.set(&b, "Failed");
    w.ok(json!({"poll": {}})).await;
    w.ok(json!({"digest": {}})).await;
    let got = w.drain().await;
    let d = digests(&got);
    assert_eq!(d.len(), 1);
    let ended: Vec<&str> = d[0].body["ended"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jobName"].as_str().unwrap())
        .collect();
    assert_eq!(ended, ["ends-second"], "nothing twice, nothing missed");
    assert_eq!(d[0].body["health"]["polls"], 1);
}

#[tokio::test]
async fn digest_only_and_no_digest_filter_policies_split_the_stream() {
    let w = World::new().await;
    let only = w.subscribe_filtered(r#"{"event": ["digest"]}"#).await;
    let none = w
        .subscribe_filtered(r#"{"event": [{"anything-but": "digest"}]}"#)
        .await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("some-job").with_status("Submitted"));
    w.ok(json!({"track": [arn]})).await;
    w.ok(json!({"digest": {}})).await;
    let got_only = w.drain_queue(&only).await;
    let got_none = w.drain_queue(&none).await;
    assert_eq!(got_only.len(), 1, "{got_only:?}");
    assert_eq!(got_only[0].attributes["event"], "digest");
    assert_eq!(got_none.len(), 1, "{got_none:?}");
    assert_eq!(got_none[0].attributes["event"], "statusChanged");
}

#[tokio::test]
async fn a_list_page_and_the_digest_should_cost_what_they_show_not_the_ended_jobs_kept() {
    use std::sync::atomic::Ordering;
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    // Five jobs running; then 40 jobs that ended long ago, kept in the table.
    let running: Vec<String> = (0..5)
        .map(|i| {
            w.bedrock
                .seed(SeedJob::named(&format!("running-{i}")).with_status("InProgress"))
        })
        .collect();
    w.ok(json!({"track": running})).await;
    let (m, read) = w.reads_monitor();
    let cost = |event: Value| {
        let (read, m) = (read.clone(), &m);
        async move {
            let before = read.load(Ordering::SeqCst);
            let answer =
                bedrock_batch_monitor::handler::handle(m, &event, &support::invocation(None))
                    .await
                    .expect("the command succeeds");
            (answer, read.load(Ordering::SeqCst) - before)
        }
    };
    let (first, without) = cost(json!({"list": {"limit": 3}})).await;
    let (_, digest_without) = cost(json!({"digest": {}})).await;
    let ended: Vec<String> = (0..40)
        .map(|i| {
            w.bedrock
                .seed(SeedJob::named(&format!("old-{i:02}")).with_status("Completed"))
        })
        .collect();
    for chunk in ended.chunks(20) {
        w.ok(json!({"track": chunk})).await;
    }
    w.drain().await;
    let (again, with) = cost(json!({"list": {"limit": 3}})).await;
    assert_eq!(names(&first), names(&again));
    // The first page reads the work index (5 entries) and the 3 jobs it shows.
    assert_eq!(
        (without, with),
        (8, 8),
        "the first page's cost grows with ended jobs"
    );
    // With `ended`, a page past the running jobs reads only the ends it shows.
    let (page, cost_ended) = cost(json!({"list": {"ended": true, "limit": 8}})).await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 8, "{page}");
    assert_eq!(cost_ended, 5 + 5 + 3, "{page}");
    let next = page["next"].as_str().expect("more ended jobs").to_owned();
    let (page2, cost2) = cost(json!({"list": {"ended": true, "limit": 8, "next": next}})).await;
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 8);
    assert_eq!(cost2, 8, "a later page of ended jobs reads that page only");
    // A page the running jobs fill exactly still leads on to the ended ones.
    let (exact, _) = cost(json!({"list": {"ended": true, "limit": 5}})).await;
    let rest = exact["next"]
        .as_str()
        .expect("the ended jobs follow")
        .to_owned();
    let (after_exact, _) = cost(json!({"list": {"ended": true, "limit": 5, "next": rest}})).await;
    assert!(
        names(&after_exact).iter().all(|n| n.starts_with("old-")),
        "{after_exact}"
    );
    let all: Vec<String> = names(&page).into_iter().chain(names(&page2)).collect();
    assert_eq!(all.len(), 16);
    assert!(all.iter().skip(5).all(|n| n.starts_with("old-")), "{all:?}");
    // The digest reads the running jobs and the ends of its window: the 40 new
    // ends, not more (and the 5 it shows whole).
    let (_, digest_with) = cost(json!({"digest": {}})).await;
    assert_eq!(digest_without, 5 + 5);
    assert_eq!(digest_with, 5 + 5 + 40);
    let (_, digest_after) = cost(json!({"digest": {}})).await;
    assert_eq!(
        digest_after,
        5 + 5,
        "ends already reported are not read again"
    );
}

/// The monitor's own account (moto's and the fake's) and a member account.
const HOME: &str = "123456789012";
const MEMBER: &str = "444455556666";

fn in_member_account(seed: SeedJob) -> SeedJob {
    SeedJob {
        account: MEMBER.to_owned(),
        ..seed
    }
}

/// The account a job's ARN names.
fn account_of(job: &Value) -> &str {
    job["jobArn"].as_str().unwrap().split(':').nth(4).unwrap()
}

#[tokio::test]
async fn list_describe_and_the_digest_should_name_each_jobs_account() {
    // GIVEN a monitor that reads a member account too, and in each account
    // a job that keeps running and one that ends
    let w = World::with_env(&[("MEMBER_ACCOUNTS", MEMBER), ("DIGEST_SETTLE_SECONDS", "0")]).await;
    w.bedrock.allow_role(MEMBER, "bedrock-batch-monitor-reader");
    let now = Utc::now();
    let at = |minutes: i64| now - chrono::Duration::minutes(minutes);
    let home_running = w.bedrock.seed(
        SeedJob::named("home-running")
            .with_status("InProgress")
            .submitted_at(at(4)),
    );
    let home_ends = w.bedrock.seed(
        SeedJob::named("home-ends")
            .with_status("InProgress")
            .submitted_at(at(3)),
    );
    let member_running = w.bedrock.seed(in_member_account(
        SeedJob::named("member-running")
            .with_status("InProgress")
            .submitted_at(at(2)),
    ));
    let member_ends = w.bedrock.seed(in_member_account(
        SeedJob::named("member-ends")
            .with_status("InProgress")
            .submitted_at(at(1)),
    ));
    assert!(
        member_ends.contains(&format!(":{MEMBER}:")),
        "{member_ends}"
    );
    let out = w
        .ok(json!({"track": [home_running, home_ends, member_running, member_ends]}))
        .await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), 4, "{out}");
    w.bedrock.set(&home_ends, "Completed");
    w.bedrock.set(&member_ends, "Failed");
    w.ok(json!({"poll": {}})).await;

    // WHEN list is asked for one account, then both: each job says its account
    let member = w
        .ok(json!({"list": {"accounts": [MEMBER], "ended": true}}))
        .await;
    assert_eq!(
        names(&member),
        ["member-running", "member-ends"],
        "{member}"
    );
    let home = w
        .ok(json!({"list": {"accounts": HOME, "ended": true}}))
        .await;
    assert_eq!(names(&home), ["home-running", "home-ends"], "{home}");
    let both = w.ok(json!({"list": {"accounts": [HOME, MEMBER]}})).await;
    assert_eq!(names(&both), ["member-running", "home-running"], "{both}");
    for job in [&member, &home, &both]
        .iter()
        .flat_map(|a| a["jobs"].as_array().unwrap())
    {
        assert_eq!(job["account"], account_of(job), "{job}");
    }
    assert_eq!(both["bedrockCalls"]["GetModelInvocationJob"], 0);

    // AND describe says the account
    let described = w.ok(json!({"describe": member_ends})).await;
    assert_eq!(described["account"], MEMBER, "{described}");

    // AND the digest groups the jobs by account, in the JSON and the email text
    w.drain().await;
    let answer = w.ok(json!({"digest": {}})).await;
    assert_eq!(answer["published"], true, "{answer}");
    let got = w.drain().await;
    let d = digests(&got);
    assert_eq!(d.len(), 1, "{got:?}");
    assert_eq!(
        d[0].body["byAccount"],
        json!({
            HOME: {"running": 1, "ended": 1, "warnings": 0},
            MEMBER: {"running": 1, "ended": 1, "warnings": 0},
        })
    );
    for job in d[0].body["ended"].as_array().unwrap() {
        assert_eq!(job["account"], account_of(job), "{job}");
    }
    let sent = support::moto_sent(&w.topic_arn);
    let digest = sent
        .iter()
        .rev()
        .find(|m| m["subject"].as_str().unwrap_or_default().contains("digest"))
        .expect("the digest was published");
    let forms: Value = serde_json::from_str(digest["message"].as_str().unwrap()).unwrap();
    let text = forms["email"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "By account (2 accounts):\n- {HOME}: 1 running, 1 ended\n- {MEMBER}: 1 running, 1 ended\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Account {MEMBER} (1 ended):\n- member-ends: Failed"
        )),
        "{text}"
    );
}
