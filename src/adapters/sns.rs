//! [`Notifier`] over aws-sdk-sns: one `Publish` per transition, `MessageStructure=json`.

use std::sync::Arc;

use aws_sdk_sns::Client;
use aws_sdk_sns::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use super::{ErrorFacts, facts};
use crate::digest::Digest;
use crate::domain::{SLACK, TOPIC, Transition};
use crate::ports::{Notifier, NotifyError};
use crate::render::{self, notification, notification::Rendered};
use crate::routes::Table;

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
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
            environment: crate::config::DEFAULT_ENVIRONMENT.to_owned(),
            stop: None,
            account_attribute: true,
        }
    }

    /// As the function `function_name` wires it: the job topic, the
    /// environment on every message, and the function's `stop` alias for
    /// its Stop job button. The stack's Slack channel is a route
    /// ([`crate::routes::Table::new`]).
    pub fn from_config(
        client: Client,
        config: &crate::config::Config,
        function_name: &str,
    ) -> Self {
        let mut sns = Self::new(client, &config.topic_arn).with_environment(&config.environment);
        sns.stop = notification::StopVia::of(&config.topic_arn, function_name);
        sns.account_attribute = !config.member_accounts.is_empty();
        sns
    }

    /// The message for `transition`; a route's copy names the route
    /// (`route` in the JSON and in Slack's `additionalContext`).
    fn render(&self, transition: &Transition, route: Option<&str>) -> notification::Rendered {
        let mut rendered =
            notification::render_routed(transition, &self.environment, self.stop.as_ref(), route);
        if !self.account_attribute {
            rendered.attributes.retain(|(name, _)| name != "account");
        }
        rendered
    }

    /// The attributes the routes' policies are judged on: the message's,
    /// with `account` even where the message leaves it out (a route may
    /// choose one account's jobs on any monitor).
    fn route_attributes(&self, transition: &Transition) -> Vec<(String, String)> {
        let mut attributes = notification::attributes(transition);
        attributes.push(("environment".to_owned(), self.environment.clone()));
        attributes
    }

    /// The environment named on every message (`ENVIRONMENT`).
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = environment.into();
        self
    }
}

/// The route a destination names, when it is not the job topic.
fn route_name(destination: &str) -> Option<&str> {
    (destination != TOPIC).then_some(destination)
}

impl Notifier for SnsNotifier {
    fn destinations(&self, transition: &Transition, routes: &Table) -> Vec<String> {
        let attributes = self.route_attributes(transition);
        let mut out = vec![TOPIC.to_owned()];
        out.extend(routes.matching(&attributes).map(|r| r.name.clone()));
        out
    }

    async fn publish(
        &self,
        destination: &str,
        transition: &Transition,
        routes: &Table,
    ) -> Result<(), NotifyError> {
        let topic = self.topic_of(destination, routes)?;
        let rendered = self.render(transition, route_name(destination));
        self.send_to(topic, &rendered).await
    }

    fn digest_destinations(&self, digest: &Digest, routes: &Table) -> Vec<String> {
        let rendered = render::digest::render(digest, &self.environment);
        // A route's own digest goes to that route alone, if its policy takes
        // it (a team that lists no `digest` event and no digest severity has none).
        if let Some(of) = &digest.route {
            return routes
                .get(&of.name)
                .filter(|r| crate::routes::takes_digest(r, &rendered.attributes))
                .map(|r| vec![r.name.clone()])
                .unwrap_or_default();
        }
        let mut out = vec![TOPIC.to_owned()];
        if let Some(slack) = routes.get(SLACK)
            && slack.policy.matches(&rendered.attributes)
        {
            out.push(SLACK.to_owned());
        }
        out
    }

    async fn publish_digest(
        &self,
        destination: &str,
        digest: &Digest,
        routes: &Table,
    ) -> Result<(), NotifyError> {
        let topic = self.topic_of(destination, routes)?;
        let rendered = render::digest::render(digest, &self.environment);
        self.send_to(topic, &rendered).await
    }
}

impl SnsNotifier {
    fn topic_of<'a>(
        &'a self,
        destination: &str,
        routes: &'a Table,
    ) -> Result<&'a str, NotifyError> {
        if destination == TOPIC {
            return Ok(&self.topic_arn);
        }
        match routes.get(destination) {
            Some(route) => Ok(&route.topic_arn),
            // A destination this configuration no longer has (a notification
            // recorded when the stack had a Slack topic, a route deleted).
            None => Err(NotifyError::TopicNotFound {
                message: format!("no destination {destination:?} in this configuration"),
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
