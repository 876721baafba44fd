//! [`JobSource`] over aws-sdk-bedrock: GetModelInvocationJob with a client for the
//! job's own region, built once per region from the shared SDK configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use aws_config::SdkConfig;
use aws_sdk_bedrock::Client;
use aws_sdk_bedrock::config::Region;
use aws_sdk_bedrock::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;

use super::{ErrorFacts, facts, to_chrono};
use crate::domain::{JobArn, JobRef, JobSnapshot, JobStatus, RecordCounts, partition_of};
use crate::ports::{JobSource, SourceError};

/// More regions than any deployment tracks jobs in; past it clients are not kept.
pub const MAX_CACHED_REGIONS: usize = 32;

pub struct BedrockJobSource {
    base: SdkConfig,
    clients: RwLock<HashMap<String, Client>>,
}

impl BedrockJobSource {
    /// `base` carries credentials, retries and endpoints (`AWS_ENDPOINT_URL_BEDROCK`);
    /// the region is set per job.
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            clients: RwLock::default(),
        }
    }

    /// Uses `client` for `region` instead of building one (tests, custom clients).
    pub fn with_client(self, region: &str, client: Client) -> Self {
        self.clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(region.to_owned(), client);
        self
    }

    /// The client for `region`, built once. Only well-formed regions get one
    /// (ARNs are checked when parsed; this guards every other way in), and the
    /// cache stops growing at [`MAX_CACHED_REGIONS`].
    fn client(&self, region: &str) -> Result<Client, SourceError> {
        if partition_of(region).is_none() {
            return Err(SourceError::Validation {
                message: format!("{region:?} is not a well-formed AWS region"),
                cause: None,
            });
        }
        if let Some(c) = self
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(region)
        {
            return Ok(c.clone());
        }
        let conf = aws_sdk_bedrock::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .build();
        let client = Client::from_conf(conf);
        let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CACHED_REGIONS {
            return Ok(client);
        }
        Ok(clients.entry(region.to_owned()).or_insert(client).clone())
    }
}

impl JobSource for BedrockJobSource {
    async fn get_job(&self, job: &JobRef) -> Result<JobSnapshot, SourceError> {
        let out = self
            .client(job.region())?
            .get_model_invocation_job()
            .job_identifier(job.identifier())
            .send()
            .await
            .map_err(map_error)?;
        snapshot(&out)
    }

    async fn tags(&self, job: &JobArn) -> Result<BTreeMap<String, String>, SourceError> {
        let out = self
            .client(job.region())?
            .list_tags_for_resource()
            .resource_arn(job.as_str())
            .send()
            .await
            .map_err(map_error)?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }
}

/// Maps a Bedrock error by its wire code (the same codes for every operation),
/// keeping the service's words and the SDK's error as the source.
pub(crate) fn map_error<E>(e: SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let ErrorFacts {
        code,
        message,
        dispatch,
        server_status,
        cause,
    } = facts(e);
    match code.as_str() {
        _ if dispatch => SourceError::Unreachable { message, cause },
        "ResourceNotFoundException" => SourceError::NotFound { message, cause },
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => SourceError::AccessDenied { message, cause },
        "ValidationException" => SourceError::Validation { message, cause },
        "ThrottlingException" | "TooManyRequestsException" => {
            SourceError::Throttling { message, cause }
        }
        "InternalServerException" => SourceError::Internal { message, cause },
        _ => match server_status {
            Some(status) => SourceError::Internal {
                message: format!("HTTP {status}: {message}"),
                cause,
            },
            None => SourceError::Other { message, cause },
        },
    }
}

pub(crate) fn snapshot(out: &GetModelInvocationJobOutput) -> Result<JobSnapshot, SourceError> {
    let job_arn = out
        .job_arn()
        .parse()
        .map_err(|e| SourceError::other(format!("Bedrock returned an unusable job ARN: {e}")))?;
    let status = out
        .status()
        .map(|s| JobStatus::parse(s.as_str()))
        .ok_or_else(|| {
            SourceError::other(format!("Bedrock returned no status for {}", out.job_arn()))
        })?;
    let records = RecordCounts {
        total: out.total_record_count(),
        processed: out.processed_record_count(),
        success: out.success_record_count(),
        error: out.error_record_count(),
    };
    Ok(JobSnapshot {
        job_arn,
        job_name: out.job_name().map(str::to_owned),
        model_id: Some(out.model_id().to_owned()).filter(|m| !m.is_empty()),
        status,
        // Read with .message(): the SDK's Debug output redacts it.
        message: out.message().map(str::to_owned).filter(|m| !m.is_empty()),
        submit_time: to_chrono(out.submit_time()),
        last_modified_time: out.last_modified_time().and_then(to_chrono),
        end_time: out.end_time().and_then(to_chrono),
        records: (!records.is_empty()).then_some(records),
        input_s3_uri: out
            .input_data_config()
            .and_then(|c| c.as_s3_input_data_config().ok())
            .map(|s| s.s3_uri().to_owned()),
        output_s3_uri: out
            .output_data_config()
            .and_then(|c| c.as_s3_output_data_config().ok())
            .map(|s| s.s3_uri().to_owned()),
    })
}
