//! The records' own errors (issue 31 items 3-5): for a job that ended with
//! failed records, its `.jsonl.out` output files in moto's S3 are read within
//! `RECORD_ERRORS_MAX_BYTES` and the failures counted by `errorCode` and
//! normalized message, through the real handler and SDK clients against moto
//! (DynamoDB, SNS, SQS, S3) and the fake Bedrock. Notifications are read from
//! the queue subscribed to the topic; the email and Slack forms from what
//! moto's SNS was given to send.

mod support;

use std::time::{Duration, Instant};

use bedrock_batch_monitor::handler;
use fake_bedrock::{Records, SeedJob};
use serde_json::{Value, json};
use support::{LogCapture, MotoFault, World, invocation, moto_s3_reads, moto_sent, unique};

/// The reasons the generated records fail for, most frequent first: every
/// `every`-th record (not taken by an earlier reason). The first comes with
/// `errorCode` as a number and as a string, alternately.
const REASONS: [(&str, u64, &str); 6] = [
    (
        "400",
        7,
        "Malformed input request for record {id}: 'prompt-{id}' is too long",
    ),
    (
        "ThrottlingException",
        11,
        "Too many requests ({id} in flight), please wait",
    ),
    ("500", 13, "Internal server error {id}"),
    ("ModelTimeoutException", 17, "Model timed out after {id}ms"),
    ("424", 19, "Model error on {id}"),
    (
        "ValidationException",
        97,
        "max_tokens {id} exceeds the model's limit",
    ),
];

/// One output file as Bedrock writes it: `records` lines, the failed ones
/// with an `error` object in place of `modelOutput`; and how many failed.
fn output_file(first_id: u64, records: u64) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut failed = 0;
    for id in first_id..first_id + records {
        let reason = REASONS.iter().enumerate().find(|(_, r)| id % r.1 == 0);
        let line = match reason {
            Some((i, (code, _, message))) => {
                failed += 1;
                let message = message.replace("{id}", &id.to_string());
                let code: Value = match code.parse::<u64>() {
                    // The same reason's code both ways: Bedrock's docs show a number.
                    Ok(n) if i == 0 && id % 2 == 0 => json!(n),
                    _ => json!(code),
                };
                json!({"recordId": format!("REC{id:08}"), "modelInput": {"prompt": "x".repeat(40)},
                       "error": {"errorCode": code, "errorMessage": message}})
            }
            None => {
                json!({"recordId": format!("REC{id:08}"), "modelInput": {"prompt": "x".repeat(40)},
                           "modelOutput": {"content": [{"type": "text", "text": "y".repeat(60)}]}})
            }
        };
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    (out, failed)
}

/// Failed records in the complete lines of `bytes`.
fn failed_in(bytes: &[u8]) -> u64 {
    let end = bytes.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    bytes[..end]
        .split(|b| *b == b'\n')
        .filter(|l| {
            serde_json::from_slice::<Value>(l)
                .map(|v| v.get("error").is_some())
                .unwrap_or(false)
        })
        .count() as u64
}

struct Ended {
    arn: String,
    /// The files put, by key, with their failed records.
    files: Vec<(String, Vec<u8>, u64)>,
}

/// A job writing to `s3://<bucket>/runs/`, tracked while InProgress, its
/// output files put (each `records` long), then ended PartiallyCompleted
/// with `errorRecordCount` > 0.
async fn ended_job(w: &World, bucket: &str, name: &str, files: &[u64], put: bool) -> Ended {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&w.moto)
            .force_path_style(true)
            .build(),
    );
    let arn = w.bedrock.seed(
        SeedJob::named(name)
            .with_model("anthropic.claude-3-haiku-20240307-v1:0")
            .with_status("InProgress")
            .with_output(&format!("s3://{bucket}/runs/")),
    );
    let id = arn.rsplit('/').next().unwrap().to_owned();
    let mut put_files = Vec::new();
    let mut first = 0;
    for (i, records) in files.iter().enumerate() {
        let (body, failed) = output_file(first, *records);
        first += records;
        let key = format!("runs/{id}/input-{i}.jsonl.out");
        if put {
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.clone().into())
                .send()
                .await
                .expect("put output");
        }
        put_files.push((key, body, failed));
    }
    let tracked = w.ok(json!({ "track": [&arn] })).await;
    assert_eq!(
        tracked["tracked"].as_array().map(Vec::len),
        Some(1),
        "{tracked}"
    );
    w.drain().await;
    let total: u64 = files.iter().sum();
    let failed: u64 = put_files.iter().map(|f| f.2).sum();
    w.bedrock.set_records(
        &arn,
        Records {
            total: total as i64,
            processed: total as i64,
            success: (total - failed) as i64,
            error: failed.max(1) as i64,
        },
    );
    w.bedrock.set(&arn, "PartiallyCompleted");
    Ended {
        arn,
        files: put_files,
    }
}

/// The email text and Slack description of the last message published about `arn`.
fn forms_of(w: &World, arn: &str) -> (String, String) {
    let sent = moto_sent(&w.topic_arn);
    let message: Value = sent
        .iter()
        .rev()
        .map(|p| serde_json::from_str::<Value>(p["message"].as_str().unwrap()).unwrap())
        .find(|m| {
            serde_json::from_str::<Value>(m["sqs"].as_str().unwrap()).unwrap()["jobArn"] == arn
        })
        .unwrap_or_else(|| panic!("{arn} not published"));
    let slack: Value = serde_json::from_str(message["https"].as_str().unwrap()).unwrap();
    (
        message["email"].as_str().unwrap().to_owned(),
        slack["content"]["description"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn when_a_job_ends_with_failed_records_should_count_them_by_reason_in_the_notification_and_describe()
 {
    // GIVEN a job whose two output files hold 5,000 records, failures of six
    // reasons mixed in (errorCode as a number and as a string)
    let bucket = unique("recerr").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &bucket), ("DIGEST_SETTLE_SECONDS", "0")]).await;
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "reasons", &[3_000, 2_000], true).await;
    let failed: u64 = job.files.iter().map(|f| f.2).sum();
    let bytes: u64 = job.files.iter().map(|f| f.1.len() as u64).sum();

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN the final notification, read from the queue, counts every failed
    // record of both files, top five reasons first, 400 counted once for
    // both forms of its code, ids and numbers normalized
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0].body["recordErrors"];
    assert_eq!(e["failed"], failed, "{e}");
    assert_eq!(e["files"], 2, "{e}");
    assert_eq!(e["filesRead"], 2, "{e}");
    assert_eq!(e["complete"], true, "{e}");
    assert_eq!(e["bytesRead"], bytes, "{e}");
    assert_eq!(e["reasons"], 6, "{e}");
    let top = e["top"].as_array().unwrap();
    assert_eq!(top.len(), 5, "{e}");
    let sevens = (0..5_000u64).filter(|i| i % 7 == 0).count() as u64;
    assert_eq!(
        top[0],
        json!({"errorCode": "400", "count": sevens,
               "errorMessage": "Malformed input request for record <n>: '…' is too long"}),
        "{e}"
    );
    let codes: Vec<&str> = top
        .iter()
        .map(|r| r["errorCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "400",
            "ThrottlingException",
            "500",
            "ModelTimeoutException",
            "424"
        ],
        "{e}"
    );
    let summary = format!(
        "in all 2 files ({}): {failed} failed records",
        bedrock_batch_monitor::domain::bytes(bytes)
    );
    assert_eq!(e["summary"], summary, "{e}");

    // and the email and Slack forms say it too
    let (email, slack) = forms_of(&w, &job.arn);
    assert!(email.contains(&format!("Failures:  {summary}")), "{email}");
    assert!(
        email.contains(&format!(
            "  {sevens} × 400: Malformed input request for record <n>: '…' is too long"
        )),
        "{email}"
    );
    assert!(slack.contains("*Failures:*"), "{slack}");
    assert!(slack.contains("ThrottlingException"), "{slack}");

    // and describe shows what the end recorded, without reading S3 again
    // Tests share moto: this test's reads are its bucket's.
    let ours = || {
        moto_s3_reads()
            .iter()
            .filter(|r| {
                r["path"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("/{bucket}"))
            })
            .count()
    };
    let reads = ours();
    let d = w.ok(json!({ "describe": &job.arn })).await;
    assert_eq!(d["recordErrors"], *e, "{d}");
    assert_eq!(ours(), reads, "describe read S3");

    // and so does the digest, in its text and its JSON
    w.ok(json!({ "digest": {} })).await;
    assert_eq!(ours(), reads, "the digest read S3");
    let digest = w.drain().await;
    let ended = &digest.last().expect("a digest").body["ended"][0];
    assert_eq!(ended["recordErrors"], *e, "{ended}");
    let sent = moto_sent(&w.topic_arn);
    let last: Value =
        serde_json::from_str(sent.last().unwrap()["message"].as_str().unwrap()).unwrap();
    let text = last["email"].as_str().unwrap();
    assert!(
        text.contains(&format!("failures {summary} ({sevens} × 400: ")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_output_is_larger_than_the_bound_should_read_only_its_first_bytes() {
    // GIVEN RECORD_ERRORS_MAX_BYTES of 64 KiB and a job whose first output
    // file alone is several times larger
    let bucket = unique("recerr-big").to_lowercase();
    let w = World::with_env(&[
        ("OUTPUT_BUCKETS", &bucket),
        ("RECORD_ERRORS_MAX_BYTES", "65536"),
    ])
    .await;
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "big", &[4_000, 1_000], true).await;
    assert!(job.files[0].1.len() > 4 * 65_536);

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN only the first 64 KiB of the first file were asked for (one
    // ranged GET), the second file not at all
    let id = job.arn.rsplit('/').next().unwrap();
    let reads: Vec<Value> = moto_s3_reads()
        .into_iter()
        // Job ids repeat between fake Bedrocks: the bucket makes it this test's.
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap()
                .starts_with(&format!("/{bucket}/runs/{id}/input-"))
        })
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(
        reads[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("input-0.jsonl.out"),
        "{reads:?}"
    );
    assert_eq!(reads[0]["range"], "bytes=0-65535", "{reads:?}");

    // and the notification counts the failures of the complete lines in
    // those bytes, saying exactly what was read
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0].body["recordErrors"];
    let failed = failed_in(&job.files[0].1[..65_536]);
    assert_eq!(e["failed"], failed, "{e}");
    assert_eq!(e["bytesRead"], 65_536, "{e}");
    assert_eq!(e["complete"], false, "{e}");
    assert_eq!(
        e["summary"],
        format!("in the first 64 KiB of 1 of 2 files: {failed} failed records"),
        "{e}"
    );
}

// A current-thread runtime: the log capture is this thread's.
#[tokio::test]
async fn when_the_output_cannot_be_read_should_say_so_and_still_notify_the_end_once() {
    let logs = LogCapture::default();
    let _guard = logs.start();
    // GIVEN a job whose output file S3 refuses, and one whose bucket is not there
    let bucket = unique("recerr-denied").to_lowercase();
    let gone = unique("recerr-gone").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &format!("{bucket},{gone}"))]).await;
    w.output_bucket(&bucket).await;
    let denied = ended_job(&w, &bucket, "denied", &[500], true).await;
    let missing = ended_job(&w, &gone, "missing", &[500], false).await;
    let _fault = MotoFault::add(json!({
        "service": "s3", "action": "GetObject",
        "contains": [&bucket, denied.arn.rsplit('/').next().unwrap(), ".jsonl.out"],
        "status": 403, "code": "AccessDenied", "message": "Access Denied",
    }));

    // WHEN the monitor polls
    let s = w.ok(json!({})).await;
    assert_eq!(s["failed"], 0, "{s}");

    // THEN each end is notified once, saying why its records' errors are not known
    let got = w.drain().await;
    assert_eq!(got.len(), 2, "{got:?}");
    for m in &got {
        assert_eq!(m.body["status"], "PartiallyCompleted");
        let e = &m.body["recordErrors"];
        let why = e["unreadable"].as_str().unwrap_or_else(|| panic!("{e}"));
        let summary = e["summary"].as_str().unwrap();
        assert!(
            summary.starts_with("the output could not be read: "),
            "{summary}"
        );
        if m.body["jobArn"] == denied.arn.as_str() {
            assert!(
                why.contains("AccessDenied") && why.contains(&denied.files[0].0),
                "{why}"
            );
        } else {
            assert!(why.contains("NoSuchBucket") && why.contains(&gone), "{why}");
        }
    }
    // and each is a warning in the log, with the job's ARN and why
    for (job, kind) in [(&denied, "OutputDenied"), (&missing, "OutputMissing")] {
        let warned = logs
            .lines()
            .into_iter()
            .filter(|l| l["level"] == "WARN" && l["fields"]["error_kind"] == kind)
            .filter(|l| l["fields"]["job_arn"] == job.arn.as_str())
            .count();
        assert_eq!(warned, 1, "{kind}: {:?}", logs.lines());
    }
    let (email, _) = forms_of(&w, &missing.arn);
    assert!(
        email.contains("Failures:  the output could not be read: "),
        "{email}"
    );

    // and nothing is left to retry: a second poll sends nothing more
    w.ok(json!({})).await;
    assert!(w.drain().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn when_record_errors_max_bytes_is_0_should_read_nothing() {
    // GIVEN RECORD_ERRORS_MAX_BYTES=0 and a job with failed records in its output
    let bucket = unique("recerr-off").to_lowercase();
    let w = World::with_env(&[
        ("OUTPUT_BUCKETS", &bucket),
        ("RECORD_ERRORS_MAX_BYTES", "0"),
    ])
    .await;
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "off", &[1_000], true).await;

    // WHEN the monitor polls
    w.ok(json!({})).await;

    // THEN the end is notified without recordErrors, and neither the prefix
    // was listed nor an output file read
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].body["recordErrors"].is_null(), "{}", got[0].body);
    let id = job.arn.rsplit('/').next().unwrap();
    let touched: Vec<Value> = moto_s3_reads()
        .into_iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap();
            path.starts_with(&format!("/{bucket}/runs/{id}/input-"))
                || (path.trim_end_matches('/') == format!("/{bucket}")
                    && r["query"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("list-type"))
        })
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_s3_is_slow_should_answer_before_the_deadline_and_notify_the_end_next_poll() {
    // GIVEN a job that ended with failed records, whose output file S3 takes
    // six seconds to serve
    let bucket = unique("recerr-slow").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &bucket), ("DEADLINE_MARGIN_MS", "1000")]).await;
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "slow", &[500], true).await;
    let slow = MotoFault::add(json!({
        "service": "s3", "action": "GetObject",
        "contains": [&bucket, job.arn.rsplit('/').next().unwrap(), ".jsonl.out"],
        "delay_ms": 6000,
    }));

    // WHEN a poll has three seconds
    let deadline = Instant::now() + Duration::from_secs(3);
    let s = handler::handle(&w.monitor(), &json!({}), &invocation(Some(deadline)))
        .await
        .expect("poll answers");

    // THEN it answered in time and deferred the job, recording nothing yet
    assert!(Instant::now() < deadline, "answered after the deadline");
    assert_eq!(s["deferred"], 1, "{s}");
    assert_eq!(s["transitions"], 0, "{s}");
    assert!(w.drain().await.is_empty());

    // AND the next poll, with S3 quick again, notifies the end once, with the errors
    drop(slow);
    let s = w.ok(json!({})).await;
    assert_eq!(s["transitions"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].body["recordErrors"]["failed"], job.files[0].2,
        "{}",
        got[0].body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_s3_is_slower_than_the_reads_limit_should_notify_the_end_saying_so() {
    // GIVEN a job that ended with failed records, whose output file S3 takes
    // three seconds to serve, and a read limit of half a second
    let bucket = unique("recerr-limit").to_lowercase();
    let mut w = World::with_env(&[("OUTPUT_BUCKETS", &bucket)]).await;
    w.config.record_errors_timeout = Duration::from_millis(500);
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "limit", &[500], true).await;
    let _slow = MotoFault::add(json!({
        "service": "s3", "action": "GetObject",
        "contains": [&bucket, job.arn.rsplit('/').next().unwrap(), ".jsonl.out"],
        "delay_ms": 3000,
    }));

    // WHEN a poll runs, with all the time it wants
    let s = w.ok(json!({})).await;

    // THEN the end is recorded and notified at once, saying why the reasons are missing
    assert_eq!(s["transitions"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let why = got[0].body["recordErrors"]["unreadable"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        why.contains("did not arrive within 0.5 s"),
        "{}",
        got[0].body
    );
    let d = w.ok(json!({"describe": &job.arn})).await;
    assert_ne!(d["status"], "InProgress", "the end is recorded: {d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_output_prefix_has_no_output_file_should_say_it_is_missing() {
    // GIVEN a job that ended with failed records whose output files were never written
    let bucket = unique("recerr-none").to_lowercase();
    let w = World::with_env(&[("OUTPUT_BUCKETS", &bucket)]).await;
    w.output_bucket(&bucket).await;
    let job = ended_job(&w, &bucket, "none", &[500], false).await;

    // WHEN a poll sees the end
    let s = w.ok(json!({})).await;

    // THEN the end is notified once, saying no output file is there (not "0 failed records")
    assert_eq!(s["transitions"], 1, "{s}");
    let got = w.drain().await;
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0].body["recordErrors"];
    let why = e["unreadable"].as_str().unwrap_or_else(|| panic!("{e}"));
    assert!(why.contains("no .jsonl.out file is there"), "{why}");
    assert!(
        why.contains(&job.arn.rsplit('/').next().unwrap().to_owned()),
        "{why}"
    );
}
