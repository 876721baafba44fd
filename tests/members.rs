//! One monitor for an organization (issue 28): a job of a member account is
//! read with that account's role, assumed with STS, and never with another
//! account's credentials; an account that is not a member is refused; one
//! member whose role cannot be assumed is that member's error alone.
//!
//! Through the real handler and SDK clients against moto and the fake
//! Bedrock, which keeps accounts apart as AWS does: it answers a job only to
//! credentials of the job's account (its STS stand-in issues them), so a read
//! with the wrong credentials fails these tests.

mod support;

use fake_bedrock::{HOME_ACCOUNT, SeedJob};
use serde_json::{Value, json};
use support::{World, native_event, unique};

const DEV: &str = "111122223333";
const PROD: &str = "444455556666";
/// Not in MEMBER_ACCOUNTS.
const STRANGER: &str = "777788889999";
const ROLE: &str = "bedrock-batch-monitor-reader";

/// A monitor reading DEV and PROD, whose roles the fake lets it assume.
async fn hub(extra: &[(&str, &str)]) -> World {
    let members = format!("{DEV},{PROD}");
    let mut env = vec![
        ("MEMBER_ACCOUNTS", members.as_str()),
        ("ENVIRONMENT", "org-hub"),
    ];
    env.extend_from_slice(extra);
    let w = World::with_env(&env).await;
    w.bedrock.allow_role(DEV, ROLE);
    w.bedrock.allow_role(PROD, ROLE);
    w
}

fn seed_in(w: &World, account: &str, region: &str, status: &str) -> String {
    w.bedrock.seed(
        SeedJob::named(&unique("org"))
            .in_account(account)
            .in_region(region)
            .with_status(status),
    )
}

fn kinds(summary: &Value) -> Vec<(String, String)> {
    summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["jobArn"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn each_members_job_should_be_read_with_its_own_accounts_role_and_told() {
    let w = hub(&[]).await;
    let home = seed_in(&w, HOME_ACCOUNT, "us-east-1", "InProgress");
    let dev = seed_in(&w, DEV, "us-east-1", "InProgress");
    let prod = seed_in(&w, PROD, "us-east-1", "InProgress");
    let r = w.ok(json!({"track": [&home, &dev, &prod]})).await;
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["tracked"].as_array().unwrap().len(), 3, "{r}");

    // Each Get went out with credentials of the job's own account.
    for call in w.bedrock.calls() {
        if call.operation == "GetModelInvocationJob" {
            let target = call.target.clone().unwrap();
            let account = target.split(':').nth(4).unwrap();
            assert_eq!(call.account, account, "{call:?}");
        }
    }
    // One role a member account, named by the monitor that assumed it.
    let assumed: Vec<_> = w
        .bedrock
        .calls()
        .into_iter()
        .filter(|c| c.operation == "AssumeRole")
        .collect();
    let mut roles: Vec<String> = assumed.iter().filter_map(|c| c.target.clone()).collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            format!("arn:aws:iam::{DEV}:role/{ROLE}"),
            format!("arn:aws:iam::{PROD}:role/{ROLE}")
        ]
    );
    assert!(
        assumed
            .iter()
            .all(|c| c.session_name.as_deref() == Some("bedrock-batch-monitor-org-hub")),
        "{assumed:?}"
    );

    // A member's job that fails is told, with Bedrock's message.
    w.bedrock.set_status(
        &prod,
        fake_bedrock::StatusChange {
            status: "Failed".into(),
            message: Some("prod's input is malformed".into()),
            records: None,
        },
    );
    w.drain().await;
    let polled = w.ok(json!({"poll": {}})).await;
    assert_eq!(polled["failed"], 0, "{polled}");
    assert_eq!(polled["transitions"], 1, "{polled}");
    let got = w.drain().await;
    let failed = got
        .iter()
        .find(|m| m.body["jobArn"] == prod.as_str())
        .unwrap_or_else(|| panic!("no notification for {prod}: {got:?}"));
    assert_eq!(failed.body["status"], "Failed");
    assert_eq!(failed.body["account"], PROD);
}

#[tokio::test]
async fn credentials_should_be_assumed_once_per_account_and_region_not_once_per_job() {
    let w = hub(&[]).await;
    let jobs: Vec<String> = (0..6)
        .map(|i| {
            let region = if i % 2 == 0 { "us-east-1" } else { "us-west-2" };
            seed_in(&w, DEV, region, "InProgress")
        })
        .collect();
    let r = w.ok(json!({"track": jobs})).await;
    assert_eq!(r["failed"], 0, "{r}");
    for _ in 0..3 {
        let p = w.ok(json!({"poll": {}})).await;
        assert_eq!(p["failed"], 0, "{p}");
        assert_eq!(p["polled"], 6, "{p}");
    }
    // The monitor's clients live as long as it does (one per warm Lambda
    // environment): each fresh monitor here assumes again. Within one
    // monitor, the role is assumed once per region.
    let m = w.monitor();
    for _ in 0..3 {
        w.invoke(&m, json!({"poll": {}})).await.unwrap();
    }
    let before = w.bedrock.count("AssumeRole");
    for _ in 0..3 {
        w.invoke(&m, json!({"poll": {}})).await.unwrap();
    }
    assert_eq!(
        w.bedrock.count("AssumeRole"),
        before,
        "a warm monitor keeps its credentials until near expiry"
    );
    // Two jobs in each region, read one by one (BULK_READ_MIN off): a Get
    // each, one AssumeRole a region.
    let fresh = World::with_env(&[("MEMBER_ACCOUNTS", DEV), ("BULK_READ_MIN", "off")]).await;
    fresh.bedrock.allow_role(DEV, ROLE);
    let jobs: Vec<String> = ["us-east-1", "us-east-1", "us-west-2", "us-west-2"]
        .iter()
        .map(|r| seed_in(&fresh, DEV, r, "InProgress"))
        .collect();
    let m = fresh.monitor();
    let r = fresh.invoke(&m, json!({"track": jobs})).await.unwrap();
    assert_eq!(r["failed"], 0, "{r}");
    fresh.invoke(&m, json!({"poll": {}})).await.unwrap();
    assert_eq!(fresh.bedrock.count("AssumeRole"), 2, "one per region");
}

#[tokio::test]
async fn a_job_of_an_account_that_is_not_a_member_should_be_refused_and_never_read() {
    let w = hub(&[]).await;
    let stranger = seed_in(&w, STRANGER, "us-east-1", "InProgress");
    let r = w.ok(json!({"track": [&stranger]})).await;
    assert_eq!(r["failed"], 1, "{r}");
    assert_eq!(kinds(&r), [(stranger.clone(), "AccountNotMember".into())]);
    assert!(
        r["errors"][0]["error"].as_str().unwrap().contains(STRANGER),
        "{r}"
    );
    assert_eq!(w.bedrock.count("GetModelInvocationJob"), 0);
    assert_eq!(w.bedrock.count("AssumeRole"), 0);
    let d = w.ok(json!({"describe": &stranger})).await;
    assert_eq!(d["tracked"], false, "{d}");

    // Without member accounts, this account alone, exactly as before.
    let alone = World::new().await;
    let dev = seed_in(&alone, DEV, "us-east-1", "InProgress");
    let r = alone.ok(json!({"track": [&dev]})).await;
    assert_eq!(kinds(&r), [(dev, "AccountNotMember".into())]);
}

#[tokio::test]
async fn an_event_from_an_account_that_is_not_a_member_should_be_ignored_and_counted() {
    let w = hub(&[]).await;
    let stranger = seed_in(&w, STRANGER, "us-east-1", "Failed");
    let r = w.ok(native_event(&stranger, "Failed")).await;
    assert_eq!(r["ignored"], 1, "{r}");
    assert_eq!(r["tracked"], 0, "{r}");
    assert_eq!(w.bedrock.calls().len(), 0, "nothing read for it");
    assert_eq!(w.item_count().await, 0, "nothing written for it");

    // A member's event is the member's job, read with its role.
    let dev = seed_in(&w, DEV, "us-west-2", "Failed");
    let r = w.ok(native_event(&dev, "Failed")).await;
    assert_eq!(r["tracked"], 1, "{r}");
    let got = w.drain().await;
    assert!(
        got.iter()
            .any(|m| m.body["jobArn"] == dev.as_str() && m.body["status"] == "Failed"),
        "{got:?}"
    );
}

#[tokio::test]
async fn discovery_should_cover_every_member_and_region_and_one_members_role_fails_alone() {
    // A member whose role cannot be assumed yet (its stack not deployed, say).
    const LOCKED: &str = STRANGER;
    let w = World::with_env(&[
        ("MEMBER_ACCOUNTS", &format!("{DEV},{LOCKED}")),
        ("DISCOVERY", "all"),
        ("DISCOVERY_REGIONS", "us-west-2"),
    ])
    .await;
    w.bedrock.allow_role(DEV, ROLE);
    let home = seed_in(&w, HOME_ACCOUNT, "us-east-1", "InProgress");
    let dev_east = seed_in(&w, DEV, "us-east-1", "InProgress");
    let dev_west = seed_in(&w, DEV, "us-west-2", "Scheduled");
    let locked = seed_in(&w, LOCKED, "us-east-1", "InProgress");

    let p = w.ok(json!({"poll": {}})).await;
    let listed = w.ok(json!({"list": {}})).await;
    let arns: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobArn"].as_str().unwrap())
        .collect();
    for arn in [&home, &dev_east, &dev_west] {
        assert!(arns.contains(&arn.as_str()), "{arn} not discovered: {p}");
    }
    assert!(!arns.contains(&locked.as_str()), "{listed}");
    let mut errors = kinds(&p);
    errors.sort();
    assert_eq!(
        errors,
        [
            (
                format!("discovery/{LOCKED}/us-east-1"),
                "MemberRoleUnavailable".into()
            ),
            (
                format!("discovery/{LOCKED}/us-west-2"),
                "MemberRoleUnavailable".into()
            ),
        ],
        "{p}"
    );
    let message = p["errors"][0]["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("arn:aws:iam::{LOCKED}:role/{ROLE}"))
            && message.contains("STS AssumeRole: AccessDenied: User:"),
        "{message}"
    );

    // Once its role exists, the member is discovered too; the others' watermarks held.
    w.bedrock.allow_role(LOCKED, ROLE);
    let p = w.ok(json!({"poll": {}})).await;
    assert_eq!(p["failed"], 0, "{p}");
    let d = w.ok(json!({"describe": &locked})).await;
    assert_eq!(d["tracked"], true, "{d}");
}

#[tokio::test]
async fn a_members_manifest_should_be_read_with_its_role_and_priced() {
    let bucket = unique("org-out").to_lowercase();
    let w = hub(&[("OUTPUT_BUCKETS", &bucket)]).await;
    let s3 = w.output_bucket(&bucket).await;
    let arn = w.bedrock.seed(
        SeedJob::named(&unique("org-priced"))
            .in_account(DEV)
            .with_status("Completed")
            .with_output(&format!("s3://{bucket}/runs/")),
    );
    support::put_manifest(&s3, &bucket, "runs/", &arn, 2_000_000, 400_000).await;
    let r = w.ok(json!({"track": [&arn]})).await;
    assert_eq!(r["failed"], 0, "{r}");
    let got = w.drain().await;
    let told = got
        .iter()
        .find(|m| m.body["jobArn"] == arn.as_str())
        .unwrap_or_else(|| panic!("no notification for {arn}: {got:?}"));
    // Claude 3 Haiku's batch price: 2M x $0.125/M + 0.4M x $0.625/M.
    assert_eq!(
        told.body["estimatedCost"]["usd"],
        json!(0.5),
        "{}",
        told.body
    );
    assert_eq!(told.body["account"], DEV);
    // Read with DEV's credentials (the fake's STS issues ASIAFAKE<account>... keys).
    let id = arn.rsplit('/').next().unwrap();
    let reads: Vec<Value> = support::moto_s3_reads()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap_or_default().contains(id))
        .collect();
    assert!(!reads.is_empty(), "the manifest was not read");
    assert!(
        reads.iter().all(|r| r["accessKey"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("ASIAFAKE{DEV}"))),
        "{reads:?}"
    );
}

#[tokio::test]
async fn the_slack_stop_button_should_be_offered_on_every_accounts_jobs_and_invoke_the_hub() {
    // The button invokes the hub's function (its `stop` alias), which acts
    // with the job's account's credentials: a member's job has it too.
    let name = unique("org-slack");
    let slack = format!("arn:aws:sns:us-east-1:{HOME_ACCOUNT}:{name}");
    let w = hub(&[
        ("SLACK_TOPIC_ARN", &slack),
        ("SLACK_FILTER_POLICY", "error,warning,success,info"),
    ])
    .await;
    w.topic_with_queue(&name).await;
    let home = seed_in(&w, HOME_ACCOUNT, "us-east-1", "InProgress");
    let dev = seed_in(&w, DEV, "us-east-1", "InProgress");
    let r = w.ok(json!({"track": [&home, &dev]})).await;
    assert_eq!(r["failed"], 0, "{r}");
    let sent = support::moto_sent(&slack);
    let stoppable = |arn: &str| {
        sent.iter()
            .filter_map(|m| {
                let forms: Value = serde_json::from_str(m["message"].as_str()?).ok()?;
                let chat: Value = serde_json::from_str(forms["https"].as_str()?).ok()?;
                let context = &chat["metadata"]["additionalContext"];
                (context["jobArn"] == arn).then(|| {
                    assert_eq!(
                        context["stopFn"],
                        format!(
                            "arn:aws:lambda:us-east-1:{HOME_ACCOUNT}:function:{}:stop",
                            support::FUNCTION_NAME
                        ),
                        "{context}"
                    );
                    context["stoppable"].clone()
                })
            })
            .next()
            .unwrap_or_else(|| panic!("no Slack message for {arn}: {sent:?}"))
    };
    // The button invokes the hub's function, which stops a member's job with
    // that account's role: both jobs have it.
    assert_eq!(stoppable(&home), "true");
    assert_eq!(stoppable(&dev), "true");
    // The stop command is still given, for that account's credentials.
    let got = w.drain().await;
    let member = got
        .iter()
        .find(|m| m.body["jobArn"] == dev.as_str())
        .unwrap();
    assert!(
        member.body["stopCommand"].as_str().unwrap().contains(&dev),
        "{}",
        member.body
    );
}

#[tokio::test]
async fn a_member_whose_role_fails_should_cost_one_assume_role_a_poll_not_one_a_job() {
    let w = hub(&[]).await;
    let jobs: Vec<String> = (0..5)
        .map(|_| seed_in(&w, DEV, "us-east-1", "InProgress"))
        .collect();
    let home = seed_in(&w, HOME_ACCOUNT, "us-east-1", "InProgress");
    let mut all = jobs.clone();
    all.push(home.clone());
    let r = w.ok(json!({"track": all})).await;
    assert_eq!(r["failed"], 0, "{r}");
    // DEV's role is removed (its stack deleted, say).
    w.bedrock.deny_role(DEV, ROLE);
    let before = w.bedrock.count("AssumeRole");
    let p = w.ok(json!({"poll": {}})).await;
    assert_eq!(
        w.bedrock.count("AssumeRole") - before,
        1,
        "one AssumeRole for the account and region, however many jobs: {p}"
    );
    let mut errors = kinds(&p);
    errors.sort();
    let mut expected: Vec<(String, String)> = jobs
        .iter()
        .map(|j| (j.clone(), "MemberRoleUnavailable".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(errors, expected, "{p}");
    // The others go on: the hub's own job was read.
    assert_eq!(p["polled"], 1, "{p}");
}

#[tokio::test]
async fn a_monitor_of_one_account_should_send_the_attributes_it_sent_before() {
    // No `account` attribute without member accounts: a labelled job keeps
    // within SNS's 10 attributes for raw-delivery subscriptions, as before.
    let alone = World::new().await;
    let arn = seed_in(&alone, HOME_ACCOUNT, "us-east-1", "InProgress");
    alone
        .ok(json!({"track": [{"jobArn": &arn, "labels": {"team": "search"}}]}))
        .await;
    let got = alone.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got[0].attributes.contains_key("account"), "{got:?}");
    assert_eq!(got[0].body["account"], HOME_ACCOUNT);
    // A hub sends it.
    let w = hub(&[]).await;
    let arn = seed_in(&w, DEV, "us-east-1", "InProgress");
    w.ok(json!({"track": [&arn]})).await;
    let got = w.drain().await;
    assert_eq!(got[0].attributes["account"], DEV, "{got:?}");
}

#[tokio::test]
async fn a_job_whose_account_leaves_the_members_should_still_deliver_what_it_owes() {
    use bedrock_batch_monitor::adapters::{
        bedrock::BedrockJobSource, dynamodb::DynamoJobStore, sns::SnsNotifier,
    };
    let w = hub(&[]).await;
    // An id no other test's job has (the fake's own ids repeat across
    // tests), since the fault below matches it.
    let job_id = format!("leave{:07}", std::process::id() % 10_000_000);
    let dev = w.bedrock.seed(SeedJob {
        id: Some(job_id.clone()),
        ..SeedJob::named(&unique("org-leaves"))
            .in_account(DEV)
            .with_status("InProgress")
    });
    // The first observation cannot be published yet (the topic refuses).
    let refuse = support::MotoFault::add(json!({"service": "sns", "action": "Publish",
        "contains": [job_id], "status": 400, "code": "InvalidParameter",
        "message": "Invalid parameter: refused once"}));
    let r = w.ok(json!({"track": [&dev]})).await;
    assert_eq!(r["tracked"], json!([&dev]), "{r}");
    assert_eq!(r["failed"], 1, "the publish was refused: {r}");
    assert!(w.drain().await.is_empty());
    drop(refuse);

    // WHEN the account is no longer a member and a poll runs
    let mut config = w.config.clone();
    config.member_accounts.clear();
    let m = bedrock_batch_monitor::monitor::Monitor::new(
        BedrockJobSource::new(w.bedrock_sdk.clone()).with_members_of(&config),
        DynamoJobStore::new(w.ddb.clone(), &config.table_name),
        SnsNotifier::from_config(w.sns.clone(), &config, support::FUNCTION_NAME),
        config,
        support::REGION,
    );
    let calls = w.bedrock.count("GetModelInvocationJob");
    let p = w.invoke(&m, json!({"poll": {}})).await.unwrap();

    // THEN it is not read, says so, and what it owed went out
    assert_eq!(w.bedrock.count("GetModelInvocationJob"), calls);
    assert_eq!(kinds(&p), [(dev.clone(), "AccountNotMember".into())], "{p}");
    let got = w.drain().await;
    assert!(
        got.iter()
            .any(|m| m.body["jobArn"] == dev.as_str() && m.body["status"] == "InProgress"),
        "{got:?}"
    );
}

/// The Slack Stop job button: `{"stop": ...}` through the function's `stop`
/// alias, as Amazon Q Developer invokes it.
#[tokio::test]
async fn the_stop_button_should_stop_a_member_accounts_job_with_that_accounts_role() {
    let w = hub(&[]).await;
    let home = seed_in(&w, HOME_ACCOUNT, "us-east-1", "InProgress");
    let dev = seed_in(&w, DEV, "us-west-2", "Scheduled");
    let r = w.ok(json!({"track": [&home, &dev]})).await;
    assert_eq!(r["failed"], 0, "{r}");
    for (job, account) in [(&dev, DEV), (&home, HOME_ACCOUNT)] {
        let before = w.bedrock.calls().len();
        let r = w
            .invoke_through("stop", json!({"stop": job}))
            .await
            .expect("stop answers");
        assert_eq!(r["stopped"], true, "{r}");
        assert_eq!(r["bedrockCalls"]["StopModelInvocationJob"], 1, "{r}");
        let stops: Vec<_> = w.bedrock.calls()[before..]
            .iter()
            .filter(|c| c.operation == "StopModelInvocationJob")
            .cloned()
            .collect();
        assert_eq!(stops.len(), 1, "{stops:?}");
        // With the credentials of the job's own account (a member's role for
        // DEV), in the job's region.
        assert_eq!(stops[0].account, account, "{stops:?}");
        assert_eq!(
            stops[0].region.as_deref(),
            Some(job.split(':').nth(3).unwrap())
        );
        let id = job.rsplit('/').next().unwrap();
        assert_eq!(
            w.bedrock.life(id).unwrap().last().map(String::as_str),
            Some("Stopping"),
            "{job}"
        );
    }
    // The next poll reports it as usual.
    w.drain().await;
    w.ok(json!({"poll": {}})).await;
    let got = w.drain().await;
    let stopping = got
        .iter()
        .find(|m| m.body["jobArn"] == dev.as_str())
        .expect("the member job's Stopping notification");
    assert_eq!(stopping.body["status"], "Stopping");
}

#[tokio::test]
async fn the_stop_button_should_refuse_what_the_monitor_does_not_track_and_reach_no_one() {
    let w = hub(&[]).await;
    let stranger = seed_in(&w, STRANGER, "us-east-1", "InProgress");
    let untracked = seed_in(&w, DEV, "us-east-1", "InProgress");
    let ended = seed_in(&w, PROD, "us-east-1", "Completed");
    let r = w.ok(json!({"track": [&ended]})).await;
    assert_eq!(r["failed"], 0, "{r}");
    let before = w.bedrock.count("StopModelInvocationJob");
    for (job, kind) in [
        (stranger.as_str(), "AccountNotMember"),
        (untracked.as_str(), "NotTracked"),
        (ended.as_str(), "NotStoppable"),
        ("abcdefghwxyz", "InvalidReference"),
    ] {
        let r = w
            .invoke_through("stop", json!({"stop": {"jobArn": job}}))
            .await
            .expect("a refusal is an answer");
        assert_eq!(r["stopped"], false, "{r}");
        assert_eq!(r["kind"], kind, "{r}");
        assert!(!r["error"].as_str().unwrap().is_empty(), "{r}");
    }
    assert_eq!(w.bedrock.count("StopModelInvocationJob"), before);
    // A member whose role is gone: that role's error, naming it.
    w.bedrock.deny_role(DEV, ROLE);
    let r = w.ok(json!({"track": [&untracked]})).await;
    assert_eq!(kinds(&r)[0].1, "MemberRoleUnavailable", "{r}");
}

#[tokio::test]
async fn through_the_stop_alias_the_function_should_serve_stop_and_nothing_else() {
    let w = hub(&[]).await;
    let dev = seed_in(&w, DEV, "us-east-1", "InProgress");
    w.ok(json!({"track": [&dev]})).await;
    w.drain().await;
    let before = w.bedrock.calls().len();
    for event in [
        json!({"untrack": [&dev]}),
        json!({"poll": {}}),
        json!({"track": [&dev]}),
        json!({"digest": {}}),
        json!({}),
    ] {
        let e = w
            .invoke_through("stop", event.clone())
            .await
            .expect_err("refused");
        assert!(
            matches!(
                e,
                bedrock_batch_monitor::handler::HandlerError::StopOnly { .. }
            ),
            "{event}: {e}"
        );
    }
    // Nothing was read, written or sent: the job is still tracked.
    assert_eq!(w.bedrock.calls().len(), before);
    assert!(w.drain().await.is_empty());
    let d = w.ok(json!({"describe": &dev})).await;
    assert_eq!(d["tracked"], true, "{d}");
    // Through the function itself (no alias), every command as before.
    let r = w.ok(json!({"untrack": [&dev]})).await;
    assert_eq!(r["untracked"], json!([&dev]), "{r}");
}
