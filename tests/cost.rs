//! What each job cost (issue 23): the estimate in the final notification (every
//! form), `describe`, `list` and the digest, through the real handler and SDK
//! clients against moto (DynamoDB, SNS, SQS, S3) and the fake Bedrock. Every
//! notification is read from a subscribed queue; the email and Slack forms
//! from what moto's SNS was given to send.

mod support;

use fake_bedrock::SeedJob;
use serde_json::{Value, json};
use support::runtime_api::RuntimeApi;
use support::{MotoFault, World, moto_sent, put_manifest, unique};

/// A negotiated price for one model, as a team would set `PRICES`.
const PRICES: &str = r#"{"meta.llama3-1-8b-instruct-v1:0": {"input": 0.05, "output": 0.08, "pricesOf": "2026-10-01"}}"#;

struct Job {
    name: &'static str,
    model: &'static str,
    end: &'static str,
    /// Input and output tokens in the manifest; `None`: no manifest.
    tokens: Option<(i64, i64)>,
}

const JOBS: [Job; 6] = [
    // 2,000,000 x $0.125/M + 400,000 x $0.625/M = $0.25 + $0.25
    Job {
        name: "haiku-done",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        end: "Completed",
        tokens: Some((2_000_000, 400_000)),
    },
    // Stopped part way: priced on what the manifest reports, and said so.
    // 1,000,000 x $0.125/M + 100,000 x $0.625/M = $0.1875, rounded half up
    Job {
        name: "haiku-stopped",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        end: "Stopped",
        tokens: Some((1_000_000, 100_000)),
    },
    // Through a US inference profile: the table has no profile price, so the
    // model's: 10,000,000 x $0.03/M + 5,000,000 x $0.12/M = $0.30 + $0.60
    Job {
        name: "nova-profile",
        model: "us.amazon.nova-lite-v1:0",
        end: "Completed",
        tokens: Some((10_000_000, 5_000_000)),
    },
    // A model the table has no price for: no figure, and what would give one.
    Job {
        name: "mistral",
        model: "mistral.mistral-large-2407-v1:0",
        end: "Completed",
        tokens: Some((1_000_000, 1_000_000)),
    },
    // PRICES: 3,000,000,000 x $0.05/M + 1,000,000,000 x $0.08/M = $150 + $80
    Job {
        name: "llama-negotiated",
        model: "meta.llama3-1-8b-instruct-v1:0",
        end: "Completed",
        tokens: Some((3_000_000_000, 1_000_000_000)),
    },
    // No manifest: no token totals, no estimate, and a note saying so.
    Job {
        name: "no-manifest",
        model: "anthropic.claude-3-haiku-20240307-v1:0",
        end: "Completed",
        tokens: None,
    },
];

/// The `estimatedCost` each job must carry (`null`: none).
fn expected(name: &str) -> Value {
    let est = |usd: f64, i: i64, o: i64, of: &str, source: &str, priced_as: &str, partial: bool| {
        json!({"usd": usd, "inputTokens": i, "outputTokens": o, "pricesOf": of, "source": source,
               "pricedAs": priced_as, "partial": partial})
    };
    match name {
        "haiku-done" => est(
            0.5,
            2_000_000,
            400_000,
            "2025-07-20",
            "table",
            "anthropic.claude-3-haiku-20240307-v1:0",
            false,
        ),
        "haiku-stopped" => est(
            0.19,
            1_000_000,
            100_000,
            "2025-07-20",
            "table",
            "anthropic.claude-3-haiku-20240307-v1:0",
            true,
        ),
        "nova-profile" => est(
            0.9,
            10_000_000,
            5_000_000,
            "2025-07-20",
            "table",
            "amazon.nova-lite-v1:0",
            false,
        ),
        "llama-negotiated" => est(
            230.0,
            3_000_000_000,
            1_000_000_000,
            "2026-10-01",
            "PRICES",
            "meta.llama3-1-8b-instruct-v1:0",
            false,
        ),
        _ => Value::Null,
    }
}

/// `actual` holds every field of `expected` (or both are null).
fn assert_cost(name: &str, actual: &Value) {
    let want = expected(name);
    if want.is_null() {
        assert!(actual.is_null(), "{name}: {actual}");
        return;
    }
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&actual[k], v, "{name}: {k} in {actual}");
    }
    assert_eq!(
        actual["basis"], "estimate, before taxes and discounts",
        "{name}"
    );
    assert_eq!(actual["region"], "us-east-1", "{name}");
}

#[tokio::test]
async fn each_ended_job_says_what_it_cost_wherever_it_is_shown() {
    // GIVEN jobs on priced, profiled, unpriced and negotiated models, each
    // writing its manifest to a bucket the function may read
    let bucket = unique("cost-out").to_lowercase();
    let w = World::with_env(&[
        ("OUTPUT_BUCKETS", &bucket),
        ("PRICES", PRICES),
        ("DIGEST_SETTLE_SECONDS", "0"),
    ])
    .await;
    let s3 = w.output_bucket(&bucket).await;
    let output = format!("s3://{bucket}/runs/");
    let mut arns = Vec::new();
    for job in &JOBS {
        let arn = w.bedrock.seed(
            SeedJob::named(job.name)
                .with_model(job.model)
                .with_status("InProgress")
                .with_output(&output),
        );
        if let Some((input, output_tokens)) = job.tokens {
            put_manifest(&s3, &bucket, "runs/", &arn, input, output_tokens).await;
        }
        arns.push(arn);
    }
    let tracked = w.ok(json!({ "track": arns })).await;
    assert_eq!(
        tracked["tracked"].as_array().map(Vec::len),
        Some(JOBS.len()),
        "{tracked}"
    );
    w.drain().await;

    // WHEN they end and the monitor polls
    for (job, arn) in JOBS.iter().zip(&arns) {
        w.bedrock.set(arn, job.end);
    }
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN each final notification, read from the queue, carries its estimate
    let got = w.drain().await;
    assert_eq!(got.len(), JOBS.len(), "{got:?}");
    for m in &got {
        let name = m.attributes["jobName"].as_str();
        assert_cost(name, &m.body["estimatedCost"]);
        let note = m.body.get("costNote").and_then(Value::as_str);
        if name == "mistral" {
            let note = note.unwrap_or_else(|| panic!("mistral: no costNote in {}", m.body));
            assert!(
                note.contains("mistral.mistral-large-2407-v1:0") && note.contains("PRICES"),
                "{note}"
            );
        } else if name == "no-manifest" {
            let note = note.unwrap_or_else(|| panic!("no-manifest: no costNote in {}", m.body));
            assert!(
                note.starts_with(&format!(
                    "no estimate: no token totals, as the manifest s3://{bucket}/runs/"
                )) && note.contains("/manifest.json.out is not there: NoSuchKey"),
                "{note}"
            );
        } else {
            assert!(note.is_none(), "{name}: {note:?}");
        }
    }

    // AND the email text and the Slack form say it, as SNS was given them
    let sent = moto_sent(&w.topic_arn);
    let forms_of = |name: &str| -> (String, String) {
        // Each published message, one body per protocol; the job's name from its machine JSON.
        let message: Value = sent
            .iter()
            .rev()
            .map(|p| serde_json::from_str::<Value>(p["message"].as_str().unwrap()).unwrap())
            .find(|m| {
                serde_json::from_str::<Value>(m["sqs"].as_str().unwrap()).unwrap()["jobName"]
                    == name
            })
            .unwrap_or_else(|| panic!("{name} not published"));
        let slack: Value = serde_json::from_str(message["https"].as_str().unwrap()).unwrap();
        (
            message["email"].as_str().unwrap().to_owned(),
            slack["content"]["description"].as_str().unwrap().to_owned(),
        )
    };
    let (email, slack) = forms_of("haiku-done");
    assert!(
        email.contains("Cost:      $0.50 (estimate, before taxes and discounts): 2000000 input tokens x $0.125/M + 400000 output tokens x $0.625/M, batch prices of 2025-07-20 for anthropic.claude-3-haiku-20240307-v1:0 in us-east-1"),
        "{email}"
    );
    assert!(
        slack.contains("*Cost:* $0.50 (estimate, before taxes and discounts)"),
        "{slack}"
    );
    let (email, slack) = forms_of("haiku-stopped");
    assert!(email.contains("Cost:      $0.19 ("), "{email}");
    assert!(
        email
            .contains("the job ended Stopped, so this prices only the tokens its manifest reports"),
        "{email}"
    );
    assert!(
        slack.contains("prices only the tokens its manifest reports"),
        "{slack}"
    );
    let (email, slack) = forms_of("mistral");
    assert!(
        email.contains(
            "Cost:      no estimate: no batch price for mistral.mistral-large-2407-v1:0 in us-east-1 \
             (the table lists it without one: No batch price in either reading of the page"
        ) && email.contains("the setting PRICES (template parameter Prices) gives one"),
        "{email}"
    );
    assert!(slack.contains("*Cost:* no estimate"), "{slack}");
    let (email, _) = forms_of("llama-negotiated");
    assert!(
        email.contains("Cost:      $230.00 (") && email.contains("from the PRICES setting"),
        "{email}"
    );
    let (email, slack) = forms_of("no-manifest");
    assert!(
        email.contains(&format!(
            "Cost:      no estimate: no token totals, as the manifest s3://{bucket}/runs/"
        )) && email.contains("is not there: NoSuchKey"),
        "{email}"
    );
    assert!(
        slack.contains("*Cost:* no estimate: no token totals"),
        "{slack}"
    );

    // AND describe carries the same estimate
    for (job, arn) in JOBS.iter().zip(&arns) {
        let d = w.ok(json!({"describe": arn})).await;
        assert_cost(job.name, &d["estimatedCost"]);
    }

    // AND so does list, for the ended jobs
    let listed = w.ok(json!({"list": {"ended": true, "limit": 100}})).await;
    let items = listed["jobs"].as_array().unwrap();
    assert_eq!(items.len(), JOBS.len(), "{listed}");
    for item in items {
        assert_cost(item["jobName"].as_str().unwrap(), &item["estimatedCost"]);
    }

    // AND the digest adds up the spend of the ends it reports, and counts
    // those it could not price
    w.ok(json!({"digest": {}})).await;
    let got = w.drain().await;
    let digest = got
        .iter()
        .find(|m| m.attributes["event"] == "digest")
        .expect("a digest");
    assert_eq!(
        digest.body["estimatedSpend"],
        json!({"usd": 231.59, "jobs": 4, "noPrice": 1, "noTokens": 1,
               "basis": "estimate, before taxes and discounts"}),
        "{}",
        digest.body
    );
    for e in digest.body["ended"].as_array().unwrap() {
        assert_cost(e["jobName"].as_str().unwrap(), &e["estimatedCost"]);
    }
    let sent = moto_sent(&w.topic_arn);
    let last: Value =
        serde_json::from_str(sent.last().unwrap()["message"].as_str().unwrap()).unwrap();
    let text = last["email"].as_str().unwrap();
    assert!(
        text.contains("Estimated spend: $231.59 for 4 ended jobs (estimate, before taxes and discounts); 1 ended job had no price for its model (the setting PRICES gives one); 1 ended job without token totals"),
        "{text}"
    );
}

/// The final notification's forms of the job named `name`, as SNS was given
/// them: (email text, Slack description).
fn email_and_slack(topic_arn: &str, name: &str) -> (String, String) {
    let message: Value = moto_sent(topic_arn)
        .iter()
        .rev()
        .map(|p| serde_json::from_str::<Value>(p["message"].as_str().unwrap()).unwrap())
        .find(|m| {
            serde_json::from_str::<Value>(m["sqs"].as_str().unwrap()).unwrap()["jobName"] == name
        })
        .unwrap_or_else(|| panic!("{name} not published"));
    let slack: Value = serde_json::from_str(message["https"].as_str().unwrap()).unwrap();
    (
        message["email"].as_str().unwrap().to_owned(),
        slack["content"]["description"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_manifest_that_cannot_be_read_says_why_in_the_final_notifications_cost_line() {
    // GIVEN jobs whose output is in buckets the function is set to read, where
    // S3 refuses one manifest (its key denied through KMS), another is not
    // JSON, and the third job's bucket does not exist
    let bucket = unique("cost-why").to_lowercase();
    let gone = unique("cost-gone").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &format!("{bucket},{gone}"))]).await;
    let s3 = w.output_bucket(&bucket).await;
    let seed = |name: &str, out: &str| {
        w.bedrock.seed(
            SeedJob::named(name)
                .with_model("anthropic.claude-3-haiku-20240307-v1:0")
                .with_status("InProgress")
                .with_output(out),
        )
    };
    let denied = seed("kms-denied", &format!("s3://{bucket}/runs/"));
    put_manifest(&s3, &bucket, "runs/", &denied, 1_000, 100).await;
    let garbled = seed("not-json", &format!("s3://{bucket}/runs/"));
    let garbled_key = format!(
        "runs/{}/manifest.json.out",
        garbled.rsplit('/').next().unwrap()
    );
    s3.put_object()
        .bucket(&bucket)
        .key(&garbled_key)
        .body(br#"{"inputTokenCount": 12,"#.to_vec().into())
        .send()
        .await
        .unwrap();
    let no_bucket = seed("no-bucket", &format!("s3://{gone}/runs/"));
    let kms = concat!(
        "User: arn:aws:sts::123456789012:assumed-role/monitor/fn is not authorized to perform: ",
        "kms:Decrypt on the resource associated with this ciphertext because no identity-based ",
        "policy allows the kms:Decrypt action"
    );
    let _fault = MotoFault::add(json!({
        "service": "s3", "action": "GetObject",
        // Job ids repeat between fake Bedrocks: the bucket scopes it to this test.
        "contains": [&bucket, denied.rsplit('/').next().unwrap()],
        "status": 403, "code": "AccessDenied", "message": kms,
    }));
    let tracked = w
        .ok(json!({"track": [&denied, &garbled, &no_bucket]}))
        .await;
    assert_eq!(
        tracked["tracked"].as_array().map(Vec::len),
        Some(3),
        "{tracked}"
    );
    w.drain().await;

    // WHEN they complete and the monitor polls
    for arn in [&denied, &garbled, &no_bucket] {
        w.bedrock.set(arn, "Completed");
    }
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN each final notification, read from the queue, has no estimate and
    // says why in its cost note: the object and S3's (or KMS's) own words
    let got = w.drain().await;
    assert_eq!(got.len(), 3, "{got:?}");
    let uri = |b: &str, arn: &str| {
        format!(
            "s3://{b}/runs/{}/manifest.json.out",
            arn.rsplit('/').next().unwrap()
        )
    };
    let why = |name: &str| -> String {
        match name {
            "kms-denied" => format!(
                "no estimate: no token totals, as the manifest {} could not be read: AccessDenied: {}",
                uri(&bucket, &denied),
                &kms[..60]
            ),
            "not-json" => format!(
                "no estimate: no token totals, as the manifest {} is not one Bedrock writes: EOF while parsing",
                uri(&bucket, &garbled)
            ),
            "no-bucket" => format!(
                "no estimate: no token totals, as the manifest {} is not there: NoSuchBucket",
                uri(&gone, &no_bucket)
            ),
            other => panic!("unexpected job {other}"),
        }
    };
    for m in &got {
        let name = m.attributes["jobName"].as_str();
        assert!(m.body["estimatedCost"].is_null(), "{name}: {}", m.body);
        assert!(m.body["tokens"].is_null(), "{name}: {}", m.body);
        let note = m.body["costNote"].as_str().unwrap_or_default();
        assert!(
            note.starts_with(&why(name)),
            "{name}: {note}
wanted: {}",
            why(name)
        );

        // AND the email's Cost: line and Slack's *Cost:* say the same
        let (email, slack) = email_and_slack(&w.topic_arn, name);
        let line = email
            .lines()
            .find(|l| l.starts_with("Cost:"))
            .unwrap_or_else(|| panic!("{name}: no Cost: line in {email}"));
        assert_eq!(line, format!("Cost:      {note}"), "{name}");
        let slack_line = slack
            .lines()
            .find(|l| l.starts_with("*Cost:*"))
            .unwrap_or_else(|| panic!("{name}: no *Cost:* in {slack}"));
        assert!(
            slack_line.starts_with("*Cost:* no estimate: no token totals, as the manifest s3://"),
            "{slack_line}"
        );
    }
}

#[tokio::test]
async fn a_job_in_another_region_is_priced_from_its_manifest_read_in_that_region() {
    // GIVEN a monitor in us-east-1 and a job of us-west-2 whose output bucket
    // is in us-west-2, where S3 refuses a client of the home region
    let bucket = unique("cost-west").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &bucket), ("PRICES", PRICES)]).await;
    let west = w.output_bucket_in(&bucket, "us-west-2").await;
    let arn = w.bedrock.seed(
        SeedJob::named("west-llama")
            .in_region("us-west-2")
            .with_model("meta.llama3-1-8b-instruct-v1:0")
            .with_status("InProgress")
            .with_output(&format!("s3://{bucket}/runs/")),
    );
    put_manifest(&west, &bucket, "runs/", &arn, 2_000_000, 1_000_000).await;
    let home = w
        .output_bucket_in(&unique("cost-home").to_lowercase(), "us-east-1")
        .await;
    let refused = home
        .get_object()
        .bucket(&bucket)
        .key(format!(
            "runs/{}/manifest.json.out",
            arn.rsplit('/').next().unwrap()
        ))
        .send()
        .await
        .expect_err("S3 (the moto front) refuses a client of another region");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(301),
        "{refused:?}"
    );
    let tracked = w.ok(json!({"track": [&arn]})).await;
    assert_eq!(
        tracked["tracked"].as_array().map(Vec::len),
        Some(1),
        "{tracked}"
    );
    w.drain().await;

    // WHEN it completes and the monitor polls
    w.bedrock.set(&arn, "Completed");
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN its final notification carries the estimate from that manifest:
    // 2,000,000 x $0.05/M + 1,000,000 x $0.08/M = $0.18, priced for us-west-2
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let cost = &got[0].body["estimatedCost"];
    assert_eq!(cost["usd"], json!(0.18), "{}", got[0].body);
    assert_eq!(cost["inputTokens"], json!(2_000_000));
    assert_eq!(cost["region"], "us-west-2");
    assert!(got[0].body.get("costNote").is_none(), "{}", got[0].body);
}

/// The function itself, started as Lambda starts it, with a `PRICES` it
/// cannot read: it starts, says so in every answer (and its log and
/// metrics), estimates with the built-in table alone, and polls, tracks and
/// notifies as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_prices_turn_off_only_the_overrides_and_say_why() {
    for (prices, says) in [
        ("{not json", "not JSON"),
        (
            r#"{"anthropic.claude-3-haiku-20240307-v1:0": {"input": 0.1}}"#,
            "output is missing",
        ),
        (
            r#"{"anthropic.claude-3-haiku-20240307-v1:0": {"input": "cheap", "output": 1}}"#,
            "is not a price",
        ),
        (
            r#"{"anthropic.claude-3-haiku-20240307-v1:0": {"input": 1, "output": 1, "inputPrice": 2}}"#,
            "unknown field",
        ),
    ] {
        // GIVEN the function started as Lambda starts it, PRICES malformed
        let w = World::new().await;
        let arn = w.bedrock.seed(
            SeedJob::named("haiku-run")
                .with_model("anthropic.claude-3-haiku-20240307-v1:0")
                .with_status("InProgress"),
        );
        let api = RuntimeApi::start().await;
        let mut function = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-batch-monitor"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &api.address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bedrock-batch-monitor")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL_DYNAMODB", support::moto_endpoint())
            .env("AWS_ENDPOINT_URL_SNS", support::moto_endpoint())
            .env("AWS_ENDPOINT_URL_BEDROCK", w.bedrock.url())
            .env("TABLE_NAME", &w.table)
            .env("TOPIC_ARN", &w.topic_arn)
            .env("PRICES", prices)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run the function");

        // WHEN a job is tracked, ends, and a poll runs
        let tracked = api.invoke(&mut function, json!({"track": [arn]})).await;
        w.drain().await;
        w.bedrock.set(&arn, "Completed");
        let polled = api.invoke(&mut function, json!({})).await;
        let _ = function.kill();
        let out = function.wait_with_output().expect("the function's output");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        // THEN every answer names the setting, why, and what is done instead
        for answer in [&tracked, &polled] {
            let warning = &answer["settingWarnings"][0];
            assert_eq!(warning["setting"], "PRICES", "{prices}: {answer}");
            let error = warning["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with("PRICES is malformed") && error.contains(says),
                "{prices}: {answer}"
            );
            assert_eq!(
                warning["instead"], "the built-in price table alone",
                "{answer}"
            );
        }
        // AND the track and the poll did their work, and the subscriber heard of the end
        assert_eq!(tracked["tracked"][0], arn.as_str(), "{tracked}");
        assert_eq!(polled["transitions"], 1, "{polled}");
        let got = w.drain().await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].body["status"], "Completed", "{:?}", got[0].body);
        // AND the log says it at start-up, and each metrics document counts it
        assert!(
            said.contains("a setting the function cannot use") && said.contains(says),
            "{prices}: {said}"
        );
        let documents: Vec<Value> = said
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|d| d.get("_aws").is_some())
            .collect();
        assert_eq!(documents.len(), 2, "{said}");
        for d in &documents {
            assert_eq!(d["UnusableSettings"], 1, "{d}");
        }
    }
}
