//! [`Notifier`] over aws-sdk-sns: one `Publish` per transition, `MessageStructure=json`.

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use super::aws_smithy_error_chain;
use crate::domain::Transition;
use crate::notification;
use crate::ports::{Notifier, NotifyError};

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, transition: &Transition) -> Result<(), NotifyError> {
        let rendered = notification::render(transition);
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
                .map_err(|e| NotifyError::Rejected(format!("attribute {name}: {e}")))?;
            req = req.message_attributes(name, attr);
        }
        req.send().await.map(|_| ()).map_err(map_error)
    }
}

pub(crate) fn map_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E>,
) -> NotifyError {
    let code = e.code().unwrap_or_default().to_owned();
    let text = match e.message() {
        Some(m) => format!("{code}: {m}"),
        None => aws_smithy_error_chain(&e),
    };
    match (&e, code.as_str()) {
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
            NotifyError::Unreachable(text)
        }
        (_, "NotFound" | "NotFoundException") => NotifyError::TopicNotFound(text),
        (_, c) if c.contains("Throttl") => NotifyError::Throttled(text),
        (_, c)
            if c.starts_with("AuthorizationError")
                || c.starts_with("KMS")
                || c == "InvalidClientTokenId"
                || c == "InvalidSecurity" =>
        {
            NotifyError::AccessDenied(text)
        }
        (SdkError::ServiceError(ctx), _) if ctx.raw().status().is_server_error() => {
            NotifyError::Unreachable(text)
        }
        _ => NotifyError::Rejected(text),
    }
}
