//! [`Notifier`] over aws-sdk-sns: one `Publish` per transition, `MessageStructure=json`.

use std::sync::Arc;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use super::{ErrorFacts, facts};
use crate::digest::Digest;
use crate::domain::{SLACK, TOPIC, Transition};
use crate::filter_policy::FilterPolicy;
use crate::ports::{Notifier, NotifyError};
use crate::render::{self, notification, notification::Rendered};

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
    /// Which monitor sends: on every message ([`Rendered::stamped`]).
    environment: String,
    /// The function alias the Slack Stop job button invokes (`None`: no button).
    stop: Option<notification::StopVia>,
    /// The `account` message attribute is sent: by a monitor that reads
    /// member accounts, where it tells them apart. A monitor of one account
    /// leaves it out, so its messages keep the attributes they had (SNS drops
    /// a message with more than 10 for a raw-delivery SQS subscription:
    /// https://docs.aws.amazon.com/sns/latest/dg/SNSMessageAttributes.html).
    account_attribute: bool,
    /// The Slack channel's own topic and what it lets through (`SLACK_TOPIC_ARN`,
    /// `SLACK_FILTER_POLICY`).
    slack: Option<(String, FilterPolicy)>,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
            environment: crate::config::DEFAULT_ENVIRONMENT.to_owned(),
            stop: None,
            account_attribute: true,
            slack: None,
        }
    }

    /// Also publishes to `topic_arn` each message whose attributes `policy`
    /// lets through: the Slack channel's topic, which Amazon Q Developer
    /// subscribes to without a filter. It is a destination of its own
    /// ([`SLACK`]): its failures never make the job topic hear a message twice.
    pub fn with_slack(mut self, topic_arn: impl Into<String>, policy: FilterPolicy) -> Self {
        self.slack = Some((topic_arn.into(), policy));
        self
    }

    /// As the function `function_name` wires it: the job topic, the
    /// environment on every message, the Slack channel's own topic when the
    /// stack has one, and the function's `stop` alias for its Stop job button.
    pub fn from_config(
        client: Client,
        config: &crate::config::Config,
        function_name: &str,
    ) -> Self {
        let mut sns = Self::new(client, &config.topic_arn).with_environment(&config.environment);
        sns.stop = notification::StopVia::of(&config.topic_arn, function_name);
        sns.account_attribute = !config.member_accounts.is_empty();
        match &config.slack {
            Some((topic, policy)) => sns.with_slack(topic, policy.clone()),
            None => sns,
        }
    }

    fn render(&self, transition: &Transition) -> notification::Rendered {
        let mut rendered =
            notification::render_as(transition, &self.environment, self.stop.as_ref());
        if !self.account_attribute {
            rendered.attributes.retain(|(name, _)| name != "account");
        }
        rendered
    }

    /// The environment named on every message (`ENVIRONMENT`).
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }
}

impl Notifier for SnsNotifier {
    fn destinations(&self, transition: &Transition) -> Vec<String> {
        let rendered = self.render(transition);
        self.destinations_for(&rendered.attributes)
    }

    async fn publish(&self, destination: &str, transition: &Transition) -> Result<(), NotifyError> {
        let rendered = self.render(transition);
        self.send_to(self.topic_of(destination)?, &rendered).await
    }

    fn digest_destinations(&self, digest: &Digest) -> Vec<String> {
        let rendered = render::digest::render(digest, &self.environment);
        self.destinations_for(&rendered.attributes)
    }

    async fn publish_digest(&self, destination: &str, digest: &Digest) -> Result<(), NotifyError> {
        let rendered = render::digest::render(digest, &self.environment);
        self.send_to(self.topic_of(destination)?, &rendered).await
    }
}

impl SnsNotifier {
    /// The job topic, then the Slack topic when its policy lets the message through.
    fn destinations_for(&self, attributes: &[(String, String)]) -> Vec<String> {
        let mut out = vec![TOPIC.to_owned()];
        if let Some((_, policy)) = &self.slack
            && policy.matches(attributes)
        {
            out.push(SLACK.to_owned());
        }
        out
    }

    fn topic_of(&self, destination: &str) -> Result<&str, NotifyError> {
        match (destination, &self.slack) {
            (TOPIC, _) => Ok(&self.topic_arn),
            (SLACK, Some((topic, _))) => Ok(topic),
            // A destination this configuration no longer has (a notification
            // recorded when the stack had a Slack topic).
            (other, _) => Err(NotifyError::TopicNotFound {
                message: format!("no destination {other:?} in this configuration"),
                cause: None,
            }),
        }
    }

    async fn send_to(&self, topic_arn: &str, rendered: &Rendered) -> Result<(), NotifyError> {
        let mut req = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .subject(&rendered.subject)
            .message(&rendered.message)
            .message_structure("json");
        for (name, value) in &rendered.attributes {
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
