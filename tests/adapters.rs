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

    notifier.publish("topic", &t).await.unwrap();
    let e = notifier.publish("topic", &t).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::AccessDenied { .. }) && e.is_systemic(),
        "{e:?}"
    );
    let e = notifier.publish("topic", &t).await.unwrap_err();
    assert!(
        matches!(e, NotifyError::Throttled { .. }) && !e.is_systemic(),
        "{e:?}"
    );
}
