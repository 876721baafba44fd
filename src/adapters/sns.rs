//! [`Notifier`] over aws-sdk-sns: one `Publish` per transition, `MessageStructure=json`.

use std::sync::Arc;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use super::{ErrorFacts, facts};
use crate::digest::Digest;
use crate::domain::Transition;
use crate::ports::{Notifier, NotifyError};
use crate::render::{self, notification, notification::Rendered};

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
    /// Which monitor sends: on every message ([`Rendered::stamped`]).
    environment: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
            environment: crate::config::DEFAULT_ENVIRONMENT.to_owned(),
        }
    }

    /// The environment named on every message (`ENVIRONMENT`).
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, transition: &Transition) -> Result<(), NotifyError> {
        self.send(notification::render(transition, &self.environment))
            .await
    }

    async fn publish_digest(&self, digest: &Digest) -> Result<(), NotifyError> {
        self.send(render::digest::render(digest, &self.environment))
            .await
    }
}

impl SnsNotifier {
    async fn send(&self, rendered: Rendered) -> Result<(), NotifyError> {
        let mut req = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(rendered.subject)
            .message(rendered.message)
            .message_structure("json");
        for (name, value) in rendered.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| NotifyError::Rejected {
                    message: format!("attribute {name}: {e}"),
                    cause: Some(Arc::new(e)),
                })?;
            req = req.message_attributes(name, attr);
        }
        req.send().await.map(|_| ()).map_err(map_error)
    }
}

/// Maps an SNS error; the SDK's error is kept as the source.
pub(crate) fn map_error<E>(e: SdkError<E>) -> NotifyError
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
        _ if dispatch => NotifyError::Unreachable { message, cause },
        "NotFound" | "NotFoundException" => NotifyError::TopicNotFound { message, cause },
        c if c.contains("Throttl") => NotifyError::Throttled { message, cause },
        c if c.starts_with("AuthorizationError")
            || c.starts_with("KMS")
            || c == "InvalidClientTokenId"
            || c == "InvalidSecurity" =>
        {
            NotifyError::AccessDenied { message, cause }
        }
        _ if server_status.is_some() => NotifyError::Unreachable { message, cause },
        _ => NotifyError::Rejected { message, cause },
    }
}
