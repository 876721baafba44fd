//! One optional feature's bad value never stops the others (issue 27): a
//! setting the function cannot use turns its own feature off, safely, and
//! says so in every answer and the digest, while polls, events, `track` and
//! the job topic go on. Through the real handler and SDK clients against moto
//! and the fake Bedrock; notifications read from subscribed queues.

mod support;

use bedrock_batch_monitor::config::Config;
use fake_bedrock::SeedJob;
use serde_json::{Value, json};
use support::{World, moto_sent, native_event, queue_arn, unique};

/// The `settingWarnings` entry for `setting` in an answer.
fn warning<'a>(answer: &'a Value, setting: &str) -> &'a Value {
    answer["settingWarnings"]
        .as_array()
        .and_then(|ws| ws.iter().find(|w| w["setting"] == setting))
        .unwrap_or_else(|| panic!("no settingWarnings entry for {setting}: {answer}"))
}

#[tokio::test]
async fn when_watch_cannot_be_read_should_take_in_no_new_job_and_say_so_everywhere() {
    // GIVEN a job tracked while WATCH was usable (all), then a deploy that
    // sets a WATCH not in the language, and a new job
    let mut w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let old_arn = w
        .bedrock
        .seed(SeedJob::named("search-old").with_status("InProgress"));
    let tracked = w.ok(json!({"track": [old_arn]})).await;
    assert_eq!(tracked["tracked"][0], old_arn.as_str(), "{tracked}");
    assert!(tracked.get("settingWarnings").is_none(), "{tracked}");
    w.drain().await;
    let vars = [
        ("TABLE_NAME", w.table.clone()),
        ("TOPIC_ARN", w.topic_arn.clone()),
        ("BEDROCK_MAX_RPS", "2000".to_owned()),
        ("DIGEST_SETTLE_SECONDS", "0".to_owned()),
        ("WATCH", "owner:search".to_owned()),
    ];
    w.config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .expect("a bad WATCH does not stop the function");
    let new_arn = w
        .bedrock
        .seed(SeedJob::named("search-new").with_status("InProgress"));

    // WHEN Bedrock tells of the new job, and someone tracks it
    let event = w.ok(native_event(&new_arn, "InProgress")).await;
    let track = w.ok(json!({"track": [new_arn]})).await;

    // THEN it is not taken in, and both answers say why
    assert_eq!(event["tracked"], 0, "{event}");
    assert_eq!(track["errors"][0]["kind"], "NotWatched", "{track}");
    assert!(
        track["errors"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unusable")),
        "{track}"
    );
    for answer in [&event, &track] {
        let wa = warning(answer, "WATCH");
        assert!(
            wa["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("WATCH is malformed (\"owner:search\")")),
            "{answer}"
        );
        assert!(
            wa["instead"]
                .as_str()
                .is_some_and(|i| i.starts_with("no job starts being tracked")),
            "{answer}"
        );
    }
    // AND the job tracked before goes on: its end is told
    w.bedrock.set(&old_arn, "Completed");
    let polled = w.ok(json!({})).await;
    assert_eq!(polled["transitions"], 1, "{polled}");
    warning(&polled, "WATCH");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["jobArn"], old_arn.as_str());
    // AND describe and list say it too
    let described = w.ok(json!({"describe": old_arn})).await;
    warning(&described, "WATCH");
    let listed = w.ok(json!({"list": {}})).await;
    warning(&listed, "WATCH");

    // AND the digest names the setting, is not "all quiet", and counts it in its subject
    let digest = w.ok(json!({"digest": {}})).await;
    warning(&digest, "WATCH");
    let got = w.drain().await;
    let d = got
        .iter()
        .find(|m| m.attributes["event"] == "digest")
        .expect("a digest");
    assert_eq!(d.body["health"]["unusableSettings"][0]["setting"], "WATCH");
    assert_eq!(d.body["quiet"], false, "{}", d.body);
    let subject = d.subject.clone().unwrap_or_default();
    assert!(subject.contains("1 setting unusable"), "{subject}");
    let sent = moto_sent(&w.topic_arn);
    let last: Value =
        serde_json::from_str(sent.last().unwrap()["message"].as_str().unwrap()).unwrap();
    let text = last["email"].as_str().unwrap();
    assert!(
        text.contains("- setting WATCH cannot be used, so no job starts being tracked"),
        "{text}"
    );
    let slack: Value = serde_json::from_str(last["https"].as_str().unwrap()).unwrap();
    assert!(
        slack["content"]["description"]
            .as_str()
            .is_some_and(|t| t.contains("Setting WATCH cannot be used")),
        "{slack}"
    );
}

#[tokio::test]
async fn when_the_slack_policy_cannot_be_evaluated_should_send_nothing_to_slack_and_all_else_on() {
    // GIVEN a Slack topic (a queue stands for Amazon Q) and a policy with an
    // operator the function cannot evaluate
    let moto = support::sdk_config(support::moto_endpoint(), support::REGION).await;
    let sns = aws_sdk_sns::Client::new(&moto);
    let sqs = aws_sdk_sqs::Client::new(&moto);
    let slack_topic = sns
        .create_topic()
        .name(unique("slack"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let slack_queue = sqs
        .create_queue()
        .queue_name(unique("slack-queue"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sns.subscribe()
        .topic_arn(&slack_topic)
        .protocol("sqs")
        .endpoint(queue_arn(&sqs, &slack_queue).await)
        .send()
        .await
        .unwrap();
    let w = World::with_env(&[
        ("SLACK_TOPIC_ARN", &slack_topic),
        ("SLACK_FILTER_POLICY", r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#),
    ])
    .await;
    let arn = w
        .bedrock
        .seed(SeedJob::named("fails").with_status("InProgress"));

    // WHEN a job is tracked and fails
    let tracked = w.ok(json!({"track": [arn]})).await;
    w.bedrock.set(&arn, "Failed");
    let polled = w.ok(json!({})).await;

    // THEN the job topic hears every step, the Slack topic nothing
    assert_eq!(polled["transitions"], 1, "{polled}");
    let got = w.drain().await;
    assert_eq!(
        got.iter()
            .map(|m| m.body["status"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["InProgress", "Failed"],
        "{got:?}"
    );
    assert!(w.drain_queue(&slack_queue).await.is_empty());
    // AND both answers say which setting, why, and what is done instead
    for answer in [&tracked, &polled] {
        let wa = warning(answer, "SLACK_FILTER_POLICY");
        assert!(
            wa["error"].as_str().is_some_and(|e| e.contains("cidr")),
            "{answer}"
        );
        assert_eq!(
            wa["instead"], "nothing is published to the Slack topic",
            "{answer}"
        );
    }
}
