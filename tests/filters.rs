//! Subscription filter policies against a real SNS implementation (moto): each
//! team's queue receives exactly the notifications its policy asks for.

mod support;

use std::collections::BTreeSet;

use bedrock_batch_monitor::filter_policy::FilterPolicy;
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
async fn a_subscription_filtering_on_account_should_receive_only_that_accounts_jobs() {
    // GIVEN a monitor that reads a member account too, and a queue
    // subscribed for each account
    const HOME: &str = "123456789012";
    const MEMBER: &str = "444455556666";
    let w = World::with_env(&[("MEMBER_ACCOUNTS", MEMBER)]).await;
    w.bedrock.allow_role(MEMBER, "bedrock-batch-monitor-reader");
    let member_queue = w
        .subscribe_filtered(&format!(r#"{{"account": ["{MEMBER}"]}}"#))
        .await;
    let home_queue = w
        .subscribe_filtered(&format!(r#"{{"account": ["{HOME}"]}}"#))
        .await;

    // AND a job in each account
    let home = w.bedrock.seed(SeedJob::named("home-job"));
    let member = w.bedrock.seed(SeedJob {
        account: MEMBER.to_owned(),
        ..SeedJob::named("member-job")
    });
    let out = w.ok(json!({"track": [home, member]})).await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), 2, "{out}");

    // WHEN both end
    w.bedrock.set(&home, "Completed");
    w.bedrock.set(&member, "Failed");
    w.ok(json!({})).await;

    // THEN each account's queue has that account's job, and only that
    let got = w.drain_queue(&member_queue).await;
    assert_eq!(
        seen(&got),
        set(&[("member-job", "Submitted"), ("member-job", "Failed")])
    );
    assert!(
        got.iter()
            .all(|m| m.attributes["account"] == MEMBER && m.body["account"] == MEMBER),
        "{got:?}"
    );
    let got = w.drain_queue(&home_queue).await;
    assert_eq!(
        seen(&got),
        set(&[("home-job", "Submitted"), ("home-job", "Completed")])
    );
    assert!(
        got.iter().all(|m| m.attributes["account"] == HOME),
        "{got:?}"
    );
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

/// One attribute set, as owned pairs.
fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Attribute sets as the monitor sends them: every event, status and severity
/// it uses, with and without a team label, and job names to match prefixes on.
fn message_attributes() -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let statuses = [
        ("Submitted", "info"),
        ("InProgress", "info"),
        ("Stopping", "info"),
        ("Completed", "success"),
        ("Completed", "warning"),
        ("Completed", "error"),
        ("PartiallyCompleted", "warning"),
        ("Failed", "error"),
        ("Expired", "error"),
        ("Stopped", "warning"),
    ];
    for (n, (status, severity)) in statuses.iter().enumerate() {
        let name = if n % 2 == 0 {
            "nightly-embed"
        } else {
            "adhoc-eu"
        };
        let account = if n % 4 == 0 {
            "444455556666"
        } else {
            "123456789012"
        };
        let mut a = attrs(&[
            ("event", "statusChanged"),
            ("status", status),
            ("severity", severity),
            ("jobName", name),
            ("account", account),
            ("environment", "prod"),
        ]);
        if n % 3 != 0 {
            a.extend(attrs(&[(
                "team",
                if n % 3 == 1 { "search" } else { "ads" },
            )]));
        }
        if n > 0 {
            a.extend(attrs(&[("previousStatus", "Validating")]));
        }
        out.push(a);
    }
    for kind in ["stalled", "errorRate"] {
        out.push(attrs(&[
            ("event", "warning"),
            ("warning", kind),
            ("status", "InProgress"),
            ("severity", "warning"),
            ("jobName", "nightly-embed"),
            ("team", "search"),
            ("environment", "prod"),
        ]));
    }
    out.push(attrs(&[
        ("event", "untracked"),
        ("status", "InProgress"),
        ("severity", "warning"),
        ("jobName", "adhoc-eu"),
        ("environment", "dev"),
    ]));
    out.push(attrs(&[
        ("event", "digest"),
        ("severity", "info"),
        ("transitionId", "digest-1"),
        ("environment", "prod"),
    ]));
    out
}

fn generated_policies() -> Vec<String> {
    let conditions = [
        ("status", r#"["Failed", "Expired"]"#),
        (
            "status",
            r#"[{"anything-but": ["Submitted", "InProgress"]}]"#,
        ),
        ("status", r#"[{"anything-but": {"prefix": "In"}}]"#),
        ("status", r#"[{"suffix": "ed"}]"#),
        ("status", r#"[{"equals-ignore-case": "failed"}]"#),
        ("severity", r#"["error", "warning"]"#),
        ("severity", r#"[{"anything-but": "info"}]"#),
        ("jobName", r#"[{"prefix": "nightly-"}]"#),
        ("jobName", r#"[{"suffix": "-eu"}, "nightly-embed"]"#),
        ("team", r#"["search"]"#),
        ("team", r#"[{"exists": false}]"#),
        ("team", r#"[{"exists": true}]"#),
        ("warning", r#"[{"exists": true}]"#),
        ("previousStatus", r#"[{"exists": false}]"#),
        ("event", r#"[{"anything-but": ["digest", "warning"]}]"#),
        ("environment", r#"["prod"]"#),
        ("account", r#"["444455556666"]"#),
        ("account", r#"[{"anything-but": {"prefix": "1111"}}]"#),
    ];
    let mut out: Vec<String> = conditions
        .iter()
        .map(|(k, c)| format!(r#"{{"{k}": {c}}}"#))
        .collect();
    // Pairs of different keys (AND), and $or of two.
    for (i, (k1, c1)) in conditions.iter().enumerate() {
        let (k2, c2) = conditions[(i * 7 + 3) % conditions.len()];
        if *k1 != k2 {
            out.push(format!(r#"{{"{k1}": {c1}, "{k2}": {c2}}}"#));
            out.push(format!(
                r#"{{"$or": [{{"{k1}": {c1}}}, {{"{k2}": {c2}}}]}}"#
            ));
        }
    }
    out
}

#[tokio::test]
async fn the_function_and_sns_should_let_the_same_messages_through_every_policy() {
    // GIVEN one queue per policy (the documented recipes and generated ones),
    // each subscribed to the topic with it
    let w = World::new().await;
    let mut policies: Vec<(String, String)> = support::documented_recipes();
    assert!(policies.len() >= 8, "{policies:?}");
    policies.extend(generated_policies().into_iter().map(|p| (p.clone(), p)));
    let mut queues = Vec::new();
    for (_, policy) in &policies {
        queues.push(w.subscribe_filtered(policy).await);
    }
    // WHEN each kind of message is published once, marked with its index
    let messages = message_attributes();
    for (i, attrs) in messages.iter().enumerate() {
        let mut req = w
            .sns
            .publish()
            .topic_arn(&w.topic_arn)
            .message(json!({"i": i}).to_string());
        for (k, v) in attrs {
            req = req.message_attributes(
                k,
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .unwrap(),
            );
        }
        req.send().await.expect("publish");
    }
    // THEN each queue holds exactly what the function's evaluator lets through
    let mut matched = 0;
    for ((label, policy), queue) in policies.iter().zip(&queues) {
        let ours = FilterPolicy::parse(policy).unwrap_or_else(|e| panic!("{label}: {e}"));
        let expected: BTreeSet<u64> = messages
            .iter()
            .enumerate()
            .filter(|(_, a)| ours.matches(a))
            .map(|(i, _)| i as u64)
            .collect();
        let got: BTreeSet<u64> = w
            .drain_queue(queue)
            .await
            .iter()
            .map(|m| m.body["i"].as_u64().unwrap())
            .collect();
        assert_eq!(
            got, expected,
            "{label}: SNS (moto) and the function disagree on {policy}"
        );
        matched += expected.len();
    }
    // The comparison means something: policies let some messages through, not all.
    assert!(
        matched > 0 && matched < policies.len() * messages.len(),
        "{matched}"
    );
}

#[tokio::test]
async fn the_slack_topic_should_get_only_what_its_policy_lets_through() {
    // GIVEN a monitor with a Slack topic of its own, at the default policy, and
    // a queue subscribed to that topic without any filter (as the channel is)
    let slack_name = support::unique("slack");
    let slack_arn = format!("arn:aws:sns:us-east-1:123456789012:{slack_name}");
    let w = World::with_env(&[("SLACK_TOPIC_ARN", &slack_arn), ("ENVIRONMENT", "prod")]).await;
    let (created, channel) = w.topic_with_queue(&slack_name).await;
    assert_eq!(created, slack_arn);

    // WHEN one job runs to Completed and another fails, and a digest goes out
    let a = w.bedrock.seed(SeedJob::named("search-index"));
    let b = w.bedrock.seed(SeedJob::named("ads-ranking"));
    w.ok(json!({"track": [a, b]})).await;
    w.bedrock.set(&a, "InProgress");
    w.bedrock.set(&b, "InProgress");
    w.ok(json!({})).await;
    w.bedrock.set(&a, "Completed");
    w.bedrock.set_status(
        &b,
        StatusChange {
            status: "Failed".into(),
            message: Some("bad input".into()),
            records: None,
        },
    );
    w.ok(json!({})).await;
    let digest = w.ok(json!({"digest": {}})).await;
    assert_eq!(digest["published"], true, "{digest}");

    // THEN the job topic has every message, the channel only the ends and the digest
    let everything = w.drain().await;
    assert_eq!(everything.len(), 7, "{everything:?}");
    let channel = w.drain_queue(&channel).await;
    let got: BTreeSet<(String, String)> = channel
        .iter()
        .map(|m| {
            (
                m.body["jobName"].as_str().unwrap_or("digest").to_owned(),
                m.body["status"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        set(&[
            ("search-index", "Completed"),
            ("ads-ranking", "Failed"),
            ("digest", "-")
        ])
    );
    assert!(
        channel
            .iter()
            .all(|m| m.attributes.get("environment").map(String::as_str) == Some("prod")),
        "{channel:?}"
    );
}

#[tokio::test]
async fn one_watch_rule_should_decide_for_events_discovery_and_track_alike() {
    // GIVEN a monitor that watches the search team's jobs: by name or by tag
    let w = World::with_env(&[
        ("WATCH", "name:search-, tag:team=search"),
        ("DISCOVERY", "all"),
    ])
    .await;
    let by_name = w.bedrock.seed(SeedJob::named("search-index"));
    let by_tag = w
        .bedrock
        .seed(SeedJob::named("nightly").with_tag("team", "search"));
    let other = w
        .bedrock
        .seed(SeedJob::named("ads-ranking").with_tag("team", "ads"));
    let listed = w
        .bedrock
        .seed(SeedJob::named("ads-listed").with_tag("team", "ads"));
    let found = w
        .bedrock
        .seed(SeedJob::named("found").with_tag("team", "search"));

    // WHEN Bedrock's events arrive for three of them
    for arn in [&by_name, &by_tag, &other] {
        w.bedrock.set(arn, "InProgress");
        w.ok(support::native_event(arn, "InProgress")).await;
    }
    // THEN the two watched are tracked, the other ignored
    let tracked: BTreeSet<String> = w
        .drain()
        .await
        .iter()
        .map(|m| m.body["jobName"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        tracked.contains("search-index") && tracked.contains("nightly"),
        "{tracked:?}"
    );
    assert!(!tracked.contains("ads-ranking"), "{tracked:?}");
    // with labels from the tags (LABEL_TAGS=team) on the one tagged
    let described = w.ok(json!({"describe": by_tag})).await;
    assert_eq!(
        described["labels"],
        json!({"team": "search"}),
        "{described}"
    );

    // WHEN a poll discovers the rest (the first listing takes them in quietly)
    w.ok(json!({})).await;
    // THEN discovery obeys the same rule
    let tracked = |d: &serde_json::Value| d["tracked"] == json!(true);
    assert!(
        tracked(&w.ok(json!({"describe": found})).await),
        "the tagged job is found"
    );
    assert!(
        !tracked(&w.ok(json!({"describe": listed})).await),
        "the other team's is not"
    );
    assert!(!tracked(&w.ok(json!({"describe": other})).await));
    w.drain().await;

    // WHEN someone tracks a job the rule does not cover
    let out = w.ok(json!({"track": [other]})).await;
    // THEN that item fails, by name, saying why; nothing is tracked
    assert_eq!(out["tracked"], json!([]), "{out}");
    assert_eq!(out["errors"][0]["kind"], "NotWatched", "{out}");
    let message = out["errors"][0]["error"].as_str().unwrap();
    assert!(
        message.contains("WATCH=name:search-,tag:team=search"),
        "{message}"
    );
    assert!(w.drain().await.is_empty());
}

#[tokio::test]
async fn track_without_labels_should_take_them_from_the_job_tags() {
    let w = World::new().await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("tagged").with_tag("team", "search"));
    let given = w
        .bedrock
        .seed(SeedJob::named("given").with_tag("team", "search"));
    let out = w
        .ok(json!({"track": [arn, {"jobArn": given, "labels": {"team": "ads"}}]}))
        .await;
    assert_eq!(out["tracked"].as_array().unwrap().len(), 2, "{out}");
    let labels: BTreeSet<(String, String)> = w
        .drain()
        .await
        .iter()
        .map(|m| {
            (
                m.body["jobName"].as_str().unwrap().to_owned(),
                m.body["labels"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        set(&[
            ("tagged", r#"{"team":"search"}"#),
            ("given", r#"{"team":"ads"}"#)
        ]),
        "the tags give labels unless the request does"
    );
}
