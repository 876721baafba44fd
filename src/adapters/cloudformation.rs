//! The answer to CloudFormation: an HTTP PUT of the response's JSON to the
//! request's pre-signed `ResponseURL` (an S3 object URL; no AWS credentials,
//! so no IAM permission), on the SDK's own HTTP client (hyper and rustls,
//! already built for the SDK).
//!
//! The body is sent with an empty `Content-Type`, as the URL was signed for
//! one, and its length ("the provider includes these properties when it
//! sends the JSON file to the presigned URL",
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html>).

use std::sync::OnceLock;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;

use crate::config::{SDK_ATTEMPT_TIMEOUT, SDK_CONNECT_TIMEOUT};
use crate::custom_resource::Response;
use crate::ports::{AnswerError, CloudFormation};

/// Attempts at one answer: a connection that fails or a 5xx is tried again
/// after a short pause. The three together stay well inside the function's
/// timeout; past them the invocation fails and Lambda retries it.
const ATTEMPTS: u32 = 3;

/// Answers CloudFormation at the request's URL. The HTTP client is made on
/// the first answer (most invocations never answer one).
#[derive(Debug, Default)]
pub struct PresignedUrl {
    connector: OnceLock<Option<SharedHttpConnector>>,
}

impl PresignedUrl {
    pub fn new() -> Self {
        Self::default()
    }

    fn connector(&self) -> Option<&SharedHttpConnector> {
        self.connector
            .get_or_init(|| {
                let settings = HttpConnectorSettings::builder()
                    .connect_timeout(SDK_CONNECT_TIMEOUT)
                    .read_timeout(SDK_ATTEMPT_TIMEOUT)
                    .build();
                aws_smithy_http_client::default_connector(&settings, None)
            })
            .as_ref()
    }

    async fn put_once(&self, url: &str, body: &str) -> Result<(), AnswerError> {
        let unreachable = |message: String, cause: Option<crate::ports::Cause>| {
            AnswerError::Unreachable { message, cause }
        };
        let connector = self.connector().ok_or_else(|| {
            unreachable("no HTTP client is built into this function".into(), None)
        })?;
        let mut request = HttpRequest::new(SdkBody::from(body.to_owned()));
        request
            .set_method("PUT")
            .map_err(|e| unreachable(e.to_string(), None))?;
        request.set_uri(url).map_err(|e| AnswerError::Refused {
            status: 0,
            message: format!("the response URL is not a URL: {e}"),
        })?;
        request.headers_mut().insert("content-type", "");
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        let response = connector.call(request).await.map_err(|e| {
            let message = crate::adapters::aws_smithy_error_chain(&e);
            unreachable(message, Some(std::sync::Arc::new(e)))
        })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let said = ByteStream::new(response.into_body())
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.into_bytes()).into_owned())
            .unwrap_or_default();
        let message = crate::custom_resource::elide(said.trim(), 500);
        if status >= 500 {
            Err(unreachable(format!("HTTP {status}: {message}"), None))
        } else {
            Err(AnswerError::Refused { status, message })
        }
    }
}

impl CloudFormation for PresignedUrl {
    async fn answer(&self, response_url: &str, response: &Response) -> Result<(), AnswerError> {
        let body = response.body();
        let mut attempt = 1;
        loop {
            match self.put_once(response_url, &body).await {
                Ok(()) => return Ok(()),
                Err(e @ AnswerError::Unreachable { .. }) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "the answer to CloudFormation did not arrive; trying again");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
