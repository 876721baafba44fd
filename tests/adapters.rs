//! Adapter tests without a server: the request each adapter sends and how it maps
//! the service's answers, with canned SDK responses (aws-smithy-mocks).

use aws_sdk_bedrock::operation::get_model_invocation_job::{
    GetModelInvocationJobError, GetModelInvocationJobOutput,
};
use aws_sdk_bedrock::primitives::DateTime as SdkTime;
use aws_sdk_bedrock::types::error::{
    AccessDeniedException, InternalServerException, ResourceNotFoundException, ThrottlingException,
    ValidationException,
};
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobS3InputDataConfig, ModelInvocationJobS3OutputDataConfig,
    ModelInvocationJobStatus,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_sdk_sns::types::error::{AuthorizationErrorException, KmsThrottlingException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use bedrock_batch_monitor::adapters::bedrock::BedrockJobSource;
use bedrock_batch_monitor::adapters::dynamodb::DynamoJobStore;
use bedrock_batch_monitor::adapters::sns::SnsNotifier;
use bedrock_batch_monitor::domain::{
    Fresh, JobRef, JobSnapshot, JobStatus, StoredJob, Transition, TransitionKind,
};
use bedrock_batch_monitor::ports::{
    JobSource, Jobs, Notifier, NotifyError, Record, SourceError, Write,
};

/// Errors as the SDK's deserializer builds them: with the wire's error code.
fn wire_code(code: &str) -> aws_sdk_sns::error::ErrorMetadata {
    aws_sdk_sns::error::ErrorMetadata::builder()
        .code(code)
        .build()
}

/// A Bedrock error as the SDK's deserializer builds it: code and message from the wire.
fn bedrock_error(code: &str, message: &str) -> aws_sdk_bedrock::error::ErrorMetadata {
    aws_sdk_bedrock::error::ErrorMetadata::builder()
        .code(code)
        .message(message)
        .build()
}

const ARN: &str = "arn:aws:bedrock:us-west-2:123456789012:model-invocation-job/abcdefghwxyz";

fn job_ref() -> JobRef {
    JobRef::Arn(ARN.parse().unwrap())
}

fn source(client: aws_sdk_bedrock::Client) -> BedrockJobSource {
    BedrockJobSource::new(aws_config::SdkConfig::builder().build()).with_client("us-west-2", client)
}

fn output(status: &str) -> GetModelInvocationJobOutput {
    GetModelInvocationJobOutput::builder()
        .job_arn(ARN)
        .job_name("nightly")
        .model_id("anthropic.claude-3-haiku-20240307-v1:0")
        .role_arn("arn:aws:iam::123456789012:role/r")
        .status(ModelInvocationJobStatus::from(status))
        .message("Quota exceeded for model")
        .submit_time(SdkTime::from_secs(1_700_000_000))
        .end_time(SdkTime::from_secs(1_700_003_600))
        .total_record_count(10)
        .processed_record_count(9)
        .success_record_count(8)
        .error_record_count(1)
        .input_data_config(ModelInvocationJobInputDataConfig::S3InputDataConfig(
            ModelInvocationJobS3InputDataConfig::builder()
                .s3_uri("s3://in/x.jsonl")
                .build()
                .unwrap(),
        ))
        .output_data_config(ModelInvocationJobOutputDataConfig::S3OutputDataConfig(
            ModelInvocationJobS3OutputDataConfig::builder()
                .s3_uri("s3://out/")
                .build()
                .unwrap(),
        ))
        .build()
        .unwrap()
}

#[tokio::test]
async fn when_bedrock_answers_should_ask_by_arn_and_keep_every_field() {
    let rule = mock!(aws_sdk_bedrock::Client::get_model_invocation_job)
        .match_requests(|r| r.job_identifier() == Some(ARN))
        .then_output(|| output("Failed"));
    let client = mock_client!(aws_sdk_bedrock, [&rule]);

    let snap = source(client).get_job(&job_ref()).await.unwrap();

    assert_eq!(rule.num_calls(), 1);
    assert_eq!(snap.status, JobStatus::Failed);
    assert_eq!(snap.message.as_deref(), Some("Quota exceeded for model"));
    assert_eq!(snap.records.unwrap().error, Some(1));
    assert_eq!(snap.input_s3_uri.as_deref(), Some("s3://in/x.jsonl"));
    assert_eq!(snap.output_s3_uri.as_deref(), Some("s3://out/"));
    assert_eq!(snap.end_time.unwrap().timestamp(), 1_700_003_600);
}

#[tokio::test]
async fn when_bedrock_reports_a_status_the_sdk_does_not_know_should_keep_its_text() {
    let rule = mock!(aws_sdk_bedrock::Client::get_model_invocation_job)
        .then_output(|| output("Hibernating"));
    let client = mock_client!(aws_sdk_bedrock, [&rule]);
    let snap = source(client).get_job(&job_ref()).await.unwrap();
    assert_eq!(snap.status, JobStatus::Unknown("Hibernating".into()));
}

#[tokio::test]
async fn each_bedrock_error_should_map_to_its_own_per_job_error() {
    type Make = fn() -> GetModelInvocationJobError;
    type Check = fn(&SourceError) -> bool;
    let cases: [(Make, Check); 5] = [
        (
            || {
                GetModelInvocationJobError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .meta(bedrock_error("ResourceNotFoundException", "gone"))
                        .build(),
                )
            },
            |e| matches!(e, SourceError::NotFound { message, .. } if message.contains("gone")),
        ),
        (
            || {
                GetModelInvocationJobError::AccessDeniedException(
                    AccessDeniedException::builder()
                        .meta(bedrock_error("AccessDeniedException", "no"))
                        .build(),
                )
            },
            |e| matches!(e, SourceError::AccessDenied { .. }) && !e.is_outage(),
        ),
        (
            || {
                GetModelInvocationJobError::ValidationException(
                    ValidationException::builder()
                        .meta(bedrock_error("ValidationException", "bad"))
                        .build(),
                )
            },
            |e| matches!(e, SourceError::Validation { .. }) && !e.is_outage(),
        ),
        (
            || {
                GetModelInvocationJobError::ThrottlingException(
                    ThrottlingException::builder()
                        .meta(bedrock_error("ThrottlingException", "slow"))
                        .build(),
                )
            },
            |e| matches!(e, SourceError::Throttling { .. }) && e.is_outage(),
        ),
        (
            || {
                GetModelInvocationJobError::InternalServerException(
                    InternalServerException::builder()
                        .meta(bedrock_error("InternalServerException", "oops"))
                        .build(),
                )
            },
            |e| matches!(e, SourceError::Internal { .. }) && e.is_outage(),
        ),
    ];
    for (make, expected) in cases {
        let rule = mock!(aws_sdk_bedrock::Client::get_model_invocation_job).then_error(make);
        let client = mock_client!(aws_sdk_bedrock, RuleMode::MatchAny, [&rule]);
        let err = source(client).get_job(&job_ref()).await.unwrap_err();
        assert!(expected(&err), "unexpected mapping: {err:?}");
    }
}

fn transition() -> Transition {
    let now = chrono::Utc::now();
    Transition {
        id: "t-7".into(),
        kind: TransitionKind::StatusChanged,
        version: 4,
        previous: Some(JobStatus::InProgress),
        job: JobSnapshot {
            job_arn: ARN.parse().unwrap(),
            job_name: Some("nightly".into()),
            model_id: None,
            status: JobStatus::Completed,
            message: None,
            submit_time: Some(now),
            last_modified_time: None,
            end_time: None,
            records: None,
            input_s3_uri: None,
            output_s3_uri: None,
            job_expiration_time: None,
        },
        observed_at: now,
        phases: vec![],
        labels: Default::default(),
        warning: None,
        tokens: None,
        cost: None,
        record_errors: None,
        eta: None,
    }
}

#[tokio::test]
async fn a_transition_should_be_one_update_conditional_on_the_version_and_a_lost_race_is_not_an_error()
 {
    let shape = |r: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput| {
        let expr = r.update_expression().unwrap_or_default();
        let values = r.expression_attribute_values().unwrap();
        let names = r.expression_attribute_names().unwrap();
        let name = |attr: &str| {
            names
                .iter()
                .find(|(_, n)| n.as_str() == attr)
                .map(|(k, _)| k.clone())
                .unwrap_or_default()
        };
        let number = |placeholder: &str| {
            values
                .get(placeholder.trim())
                .and_then(|v| v.as_n().ok())
                .cloned()
        };
        // `#version = :vN` in the condition (3) and in the SET clause (4).
        let version = name("version");
        let condition = r.condition_expression().unwrap_or_default();
        let set_to = expr
            .split(", ")
            .chain(expr.split("SET "))
            .find_map(|c| c.strip_prefix(&format!("{version} = ")))
            .map(|rest| rest.split([',', ' ']).next().unwrap_or_default().to_owned());
        r.table_name() == Some("jobs")
            && condition
                .strip_prefix(&format!("{version} = "))
                .and_then(number)
                .as_deref()
                == Some("3")
            && set_to.as_deref().and_then(number).as_deref() == Some("4")
            && expr.contains(&format!("{} = list_append", name("history")))
            && expr.contains(&format!("{}.{} = ", name("outbox"), name("t-7")))
            && expr.contains("REMOVE")
    };
    let won = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(shape)
        .then_output(|| UpdateItemOutput::builder().build());
    let lost = mock!(aws_sdk_dynamodb::Client::update_item)
        .match_requests(shape)
        .then_error(|| {
            UpdateItemError::ConditionalCheckFailedException(
                ConditionalCheckFailedException::builder()
                    .meta(wire_code("ConditionalCheckFailedException"))
                    .build(),
            )
        });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&won, &lost]);
    let store = DynamoJobStore::new(client, "jobs");
    let t = transition();
    // The stored job at version 3, still InProgress: the Completed read is fresh.
    let stored = StoredJob {
        snapshot: JobSnapshot {
            status: JobStatus::InProgress,
            ..t.job.clone()
        },
        version: 3,
        history: vec![],
        outbox: vec![],
        not_found_count: 0,
        gone: false,
        active: true,
        labels: Default::default(),
        untracked_at: None,
        undeliverable: vec![],
        warned: vec![],
        progress: None,
        rate_from: None,
        tokens: None,
        ended_at: None,
        record_errors: None,
        routed: Vec::new(),
    };
    let basis = Fresh::judge(&stored, &t.job).expect("a newer status is fresh");
    let record = || Record {
        transition: &t,
        basis,
        gone: false,
    };

    assert_eq!(store.record(record()).await.unwrap(), Write::Done);
    assert_eq!(store.record(record()).await.unwrap(), Write::Lost);
    assert_eq!((won.num_calls(), lost.num_calls()), (1, 1));
}

#[tokio::test]
async fn publish_should_send_json_structure_with_attributes_and_map_errors() {
    let ok = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| {
            let attrs = r.message_attributes().unwrap();
            r.message_structure() == Some("json")
                && r.topic_arn() == Some("arn:aws:sns:us-east-1:123456789012:t")
                && r.subject().is_some_and(|s| s.len() < 100)
                && attrs["status"].string_value() == Some("Completed")
                && attrs["previousStatus"].string_value() == Some("InProgress")
                && attrs["severity"].string_value() == Some("success")
                && serde_json::from_str::<serde_json::Value>(r.message().unwrap()).unwrap()["sqs"]
                    .is_string()
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let denied = mock!(aws_sdk_sns::Client::publish).then_error(|| {
        PublishError::AuthorizationErrorException(
            AuthorizationErrorException::builder()
                .meta(wire_code("AuthorizationError"))
                .build(),
        )
    });
    let throttled = mock!(aws_sdk_sns::Client::publish).then_error(|| {
        PublishError::KmsThrottlingException(
            KmsThrottlingException::builder()
                .meta(wire_code("KMSThrottling"))
                .build(),
        )
    });
    let client = mock_client!(
        aws_sdk_sns,
        RuleMode::Sequential,
        [&ok, &denied, &throttled]
    );
    let notifier = SnsNotifier::new(client, "arn:aws:sns:us-east-1:123456789012:t");
    let t = transition();

    notifier
        .publish("topic", &t, &Default::default())
        .await
        .unwrap();
    let e = notifier
        .publish("topic", &t, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, NotifyError::AccessDenied { .. }) && e.is_systemic(),
        "{e:?}"
    );
    let e = notifier
        .publish("topic", &t, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, NotifyError::Throttled { .. }) && !e.is_systemic(),
        "{e:?}"
    );
}

// ---- Manifests: read in the bucket's region, and why not when not ----

use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use bedrock_batch_monitor::ports::ManifestError;

const BUCKET: &str = "team-batch-out";

/// An HTTP answer as S3 gives it.
fn s3_answer(status: u16, headers: &[(&str, &str)], body: &str) -> ReplayEvent {
    let request = http::Request::builder()
        .uri("https://placeholder.invalid/")
        .body(SdkBody::empty())
        .unwrap();
    let mut response = http::Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(*k, *v);
    }
    ReplayEvent::new(
        request,
        response.body(SdkBody::from(body.to_owned())).unwrap(),
    )
}

fn s3_error(status: u16, headers: &[(&str, &str)], code: &str, message: &str) -> ReplayEvent {
    s3_answer(
        status,
        headers,
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message>\
             <RequestId>r1</RequestId></Error>"
        ),
    )
}

const MANIFEST: &str = r#"{"totalRecordCount": 10, "processedRecordCount": 10, "successRecordCount": 10,
    "errorRecordCount": 0, "inputTokenCount": 1200, "outputTokenCount": 340}"#;

/// The source as main.rs wires it, its S3 configuration in the home region
/// (us-east-1) and its HTTP answered by `http`.
fn manifest_source(http: &StaticReplayClient) -> BedrockJobSource {
    let s3 = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        ))
        .http_client(http.clone())
        .build();
    BedrockJobSource::new(aws_config::SdkConfig::builder().build())
        .with_manifests(s3, vec![BUCKET.to_owned()])
}

/// A job of `region` that ended with its output in `s3://team-batch-out/runs/`.
fn ended_in(region: &str, id: &str) -> JobSnapshot {
    JobSnapshot {
        job_arn: format!("arn:aws:bedrock:{region}:123456789012:model-invocation-job/{id}")
            .parse()
            .unwrap(),
        job_name: Some("nightly".into()),
        model_id: Some("anthropic.claude-3-haiku-20240307-v1:0".into()),
        status: JobStatus::Completed,
        message: None,
        submit_time: None,
        last_modified_time: None,
        end_time: None,
        records: None,
        input_s3_uri: None,
        output_s3_uri: Some(format!("s3://{BUCKET}/runs/")),
        job_expiration_time: None,
    }
}

/// Where a request went (its URI) and the region it was signed for (its
/// `authorization` header's credential scope).
fn host_and_scope(uri: &str, auth: Option<&str>) -> (String, String) {
    let host = uri.split('/').nth(2).unwrap_or_default().to_owned();
    let auth = auth.unwrap_or_default();
    let scope = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or_default()
        .to_owned();
    (host, scope)
}

#[tokio::test]
async fn when_a_job_is_in_another_region_its_manifest_should_be_read_there_with_one_client_per_region()
 {
    // GIVEN a monitor in us-east-1 and two jobs that ended in us-west-2
    let http = StaticReplayClient::new(vec![
        s3_answer(200, &[], MANIFEST),
        s3_answer(200, &[], MANIFEST),
    ]);
    let source = manifest_source(&http);

    // WHEN their manifests are read
    for id in ["abcdefghwxy1", "abcdefghwxy2"] {
        let totals = source.token_totals(&ended_in("us-west-2", id)).await;
        assert_eq!(
            totals.unwrap().map(|t| (t.input, t.output)),
            Some((1200, 340))
        );
    }

    // THEN each request went to S3 in us-west-2, signed for us-west-2, for
    // the object Bedrock writes
    let sent: Vec<_> = http.actual_requests().collect();
    assert_eq!(sent.len(), 2);
    for (r, id) in sent.iter().zip(["abcdefghwxy1", "abcdefghwxy2"]) {
        let (host, scope) = host_and_scope(r.uri(), r.headers().get("authorization"));
        assert_eq!(
            host,
            format!("{BUCKET}.s3.us-west-2.amazonaws.com"),
            "{}",
            r.uri()
        );
        assert_eq!(scope, "us-west-2");
        let path = r.uri().split('?').next().unwrap_or_default();
        assert!(
            path.ends_with(&format!("/runs/{id}/manifest.json.out")),
            "{}",
            r.uri()
        );
    }
    // AND one client served both
    assert_eq!(source.manifest_regions(), 1);
}

#[tokio::test]
async fn when_s3_names_another_region_for_the_bucket_should_read_it_once_more_there() {
    for (first, says) in [
        // A redirect naming the region in its header.
        (
            s3_error(
                301,
                &[("x-amz-bucket-region", "eu-west-1")],
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified endpoint.",
            ),
            "header",
        ),
        // A 400 (regions launched after March 2019) naming it in the body.
        (
            s3_answer(
                400,
                &[],
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-west-2' is wrong; \
                 expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>",
            ),
            "body",
        ),
    ] {
        // GIVEN a job of us-west-2 whose output bucket S3 says is in eu-west-1
        let http = StaticReplayClient::new(vec![first, s3_answer(200, &[], MANIFEST)]);
        let source = manifest_source(&http);

        // WHEN its manifest is read
        let totals = source
            .token_totals(&ended_in("us-west-2", "abcdefghwxyz"))
            .await;

        // THEN it is read, the second time in eu-west-1
        assert_eq!(
            totals.unwrap().map(|t| t.input),
            Some(1200),
            "region in the {says}"
        );
        let sent: Vec<_> = http
            .actual_requests()
            .map(|r| host_and_scope(r.uri(), r.headers().get("authorization")))
            .collect();
        assert_eq!(
            sent,
            [
                (
                    format!("{BUCKET}.s3.us-west-2.amazonaws.com"),
                    "us-west-2".to_owned()
                ),
                (
                    format!("{BUCKET}.s3.eu-west-1.amazonaws.com"),
                    "eu-west-1".to_owned()
                ),
            ],
            "region in the {says}"
        );
    }
}

#[tokio::test]
async fn a_manifest_that_cannot_be_read_should_say_why_in_a_short_stable_text() {
    let uri = format!("s3://{BUCKET}/runs/abcdefghwxyz/manifest.json.out");
    for (answer, kind, says) in [
        (
            s3_error(403, &[], "AccessDenied", "Access Denied"),
            "ManifestUnreadable",
            format!(
                "the manifest {uri} could not be read: AccessDenied: Access Denied (S3 says so of a \
                 missing object too, to a role that may not list the bucket)"
            ),
        ),
        (
            s3_error(
                403,
                &[],
                "AccessDenied",
                "User: arn:aws:sts::123456789012:assumed-role/monitor/fn is not authorized to perform: \
                 kms:Decrypt on the resource associated with this ciphertext",
            ),
            "ManifestUnreadable",
            format!(
                "the manifest {uri} could not be read: AccessDenied: User: \
                 arn:aws:sts::123456789012:assumed-role/monitor/fn is not authorized to perform: kms:Decrypt"
            ),
        ),
        (
            s3_error(404, &[], "NoSuchKey", "The specified key does not exist."),
            "ManifestMissing",
            format!(
                "the manifest {uri} is not there: NoSuchKey: The specified key does not exist."
            ),
        ),
        (
            s3_error(
                404,
                &[],
                "NoSuchBucket",
                "The specified bucket does not exist",
            ),
            "ManifestMissing",
            format!("the manifest {uri} is not there: NoSuchBucket"),
        ),
        (
            s3_answer(200, &[], "{not json"),
            "ManifestMalformed",
            format!("the manifest {uri} is not one Bedrock writes: key must be a string"),
        ),
        (
            s3_answer(200, &[], r#"{"inputTokenCount": 10}"#),
            "ManifestMalformed",
            format!("the manifest {uri} is not one Bedrock writes: no outputTokenCount"),
        ),
    ] {
        // GIVEN S3 answering the read of a job's manifest so
        let http = StaticReplayClient::new(vec![answer]);
        let source = manifest_source(&http);

        // WHEN it is read
        let got = source
            .token_totals(&ended_in("us-east-1", "abcdefghwxyz"))
            .await;

        // THEN the error names the object and says why
        let e: ManifestError = got.expect_err(&says);
        assert_eq!(e.kind(), kind, "{e}");
        assert!(e.to_string().starts_with(&says), "{e}\nwanted: {says}");
        assert!(e.to_string().chars().count() < 500, "{e}");
    }
}

#[tokio::test]
async fn a_bucket_outside_output_buckets_or_a_job_without_output_should_not_be_read() {
    let http = StaticReplayClient::new(vec![]);
    let source = manifest_source(&http);
    let mut elsewhere = ended_in("us-east-1", "abcdefghwxyz");
    elsewhere.output_s3_uri = Some("s3://someone-else/out/".into());
    assert!(source.token_totals(&elsewhere).await.unwrap().is_none());
    elsewhere.output_s3_uri = None;
    assert!(source.token_totals(&elsewhere).await.unwrap().is_none());
    assert_eq!(http.actual_requests().count(), 0);
}
