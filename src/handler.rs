//! The Lambda entry point: event in, JSON summary (or a typed error) out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_runtime::Diagnostic;
use serde_json::Value;
use tracing::{error, warn};

use crate::adapters::cloudformation::PresignedUrl;
use crate::config::SettingWarning;
use crate::custom_resource;
use crate::event::{self, Command, EventError};
use crate::monitor::{Invocation, Monitor, MonitorError};
use crate::ports::{
    AnswerError, CloudFormation, Fleet, InvocationReport, JobSource, Jobs, MetricsSink, Notifier,
    Outbox, RouteStore, WorkList,
};

/// Why an invocation failed. `errorType` in Lambda's answer names the variant.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Systemic(#[from] MonitorError),
    /// CloudFormation's answer could not be sent: the invocation fails so
    /// that Lambda retries it (the request is checked and answered again).
    #[error("{0}; Lambda retries the request")]
    Unanswered(#[from] AnswerError),
    /// Invoked through the `stop` alias (the Slack channel's), with another
    /// command: that alias stops a job and does nothing else.
    #[error(
        "through the function's \"{alias}\" alias only {{\"stop\": \"<jobArn>\"}} is served, not {command}: invoke the function itself for anything else",
        alias = crate::config::STOP_ALIAS
    )]
    StopOnly { command: &'static str },
    /// Invoked through the `routes` alias (teams' stacks' `ServiceToken`) with
    /// anything but a `Custom::NotificationRoute` request.
    #[error(
        "through the function's \"{alias}\" alias only {resource} requests are served, not {what}: invoke the function itself for anything else",
        alias = crate::config::ROUTES_ALIAS,
        resource = crate::config::ROUTE_RESOURCE_TYPE
    )]
    RoutesOnly { what: String },
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Systemic(m) => m.kind(),
            HandlerError::Unanswered(_) => "CloudFormationUnanswered",
            HandlerError::StopOnly { .. } => "StopOnly",
            HandlerError::RoutesOnly { .. } => "RoutesOnly",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Routes one event to its use case; CloudFormation's custom resource
/// requests are answered at their `ResponseURL` as `main.rs` wires it
/// ([`PresignedUrl`]).
pub async fn handle<S, T, N>(
    monitor: &Monitor<S, T, N>,
    payload: &Value,
    invocation: &Invocation,
) -> Result<Value, HandlerError>
where
    S: JobSource,
    T: Jobs + Outbox + WorkList + Fleet + RouteStore,
    N: Notifier,
{
    dispatch(monitor, &PresignedUrl::new(), payload, invocation)
        .await
        .1
}

/// Routes one event to its use case and emits the invocation's metrics,
/// however it ends (one document per invocation).
pub async fn handle_and_report<S, T, N, C, M>(
    monitor: &Monitor<S, T, N>,
    cloudformation: &C,
    metrics: &M,
    payload: &Value,
    invocation: &Invocation,
) -> Result<Value, HandlerError>
where
    S: JobSource,
    T: Jobs + Outbox + WorkList + Fleet + RouteStore,
    N: Notifier,
    C: CloudFormation,
    M: MetricsSink,
{
    let started = Instant::now();
    let (command, result) = dispatch(monitor, cloudformation, payload, invocation).await;
    let mut r = report(command, &result, started.elapsed());
    r.unusable_settings = monitor.config().unusable.len() as u64;
    metrics.emit(&r);
    result
}

async fn dispatch<S, T, N, C>(
    monitor: &Monitor<S, T, N>,
    cloudformation: &C,
    payload: &Value,
    invocation: &Invocation,
) -> (&'static str, Result<Value, HandlerError>)
where
    S: JobSource,
    T: Jobs + Outbox + WorkList + Fleet + RouteStore,
    N: Notifier,
    C: CloudFormation,
{
    let command = match event::parse(payload) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "rejected event");
            return ("Invalid", Err(e.into()));
        }
    };
    let name = command.name();
    if invocation.through_stop_alias() && !matches!(command, Command::Stop(_)) {
        let e = HandlerError::StopOnly { command: name };
        warn!(error = %e, "refused through the stop alias");
        return ("Refused", Err(e));
    }
    // Through the routes alias: routes only. A command fails as RoutesOnly; a
    // custom resource of another type is answered FAILED, so its stack fails
    // at once rather than waiting for an answer.
    let routes_only = invocation.through_routes_alias();
    if routes_only && !matches!(command, Command::CustomResource(_)) {
        let e = HandlerError::RoutesOnly {
            what: name.to_owned(),
        };
        warn!(error = %e, "refused through the routes alias");
        return ("Refused", Err(e));
    }
    // Decided by the resource from the request alone (not from the function's
    // own settings), and always answered, FAILED included.
    if let Command::CustomResource(request) = command {
        let outcome = if routes_only && request.resource_type != crate::config::ROUTE_RESOURCE_TYPE
        {
            warn!(
                resource_type = %request.resource_type,
                "refused through the routes alias"
            );
            custom_resource::Outcome::unknown_type(&request, &[crate::config::ROUTE_RESOURCE_TYPE])
        } else {
            monitor.provide(&request).await
        };
        let result = custom_resource::answer(cloudformation, &request, outcome)
            .await
            .inspect_err(|e| error!(error = %e, "CloudFormation was not answered"))
            .map_err(HandlerError::from)
            .map(|answer| with_setting_warnings(answer, &monitor.config().unusable));
        return (name, result);
    }
    let result = monitor
        .handle(command, invocation)
        .await
        .inspect_err(|e| error!(error = %e, "systemic fault"))
        .map_err(HandlerError::from)
        .map(|answer| with_setting_warnings(answer, &monitor.config().unusable));
    (name, result)
}

/// Every answer says which settings the function could not use and what it
/// does instead (`settingWarnings`, present while there are any): whoever
/// invokes it, a person or a script, hears of a feature turned off.
fn with_setting_warnings(mut answer: Value, unusable: &[SettingWarning]) -> Value {
    if !unusable.is_empty()
        && let Value::Object(o) = &mut answer
    {
        o.insert(
            "settingWarnings".to_owned(),
            serde_json::to_value(unusable).unwrap_or(Value::Null),
        );
    }
    answer
}

/// The invocation's counts, read from its answer (or from the summary a
/// systemic fault carries).
pub fn report(
    command: &'static str,
    result: &Result<Value, HandlerError>,
    duration: Duration,
) -> InvocationReport {
    let (outcome, answer) = match result {
        Ok(v) => ("Ok".to_owned(), Some(v)),
        Err(HandlerError::Event(_)) => ("InvalidEvent".to_owned(), None),
        Err(HandlerError::Unanswered(_)) => ("CloudFormationUnanswered".to_owned(), None),
        Err(HandlerError::StopOnly { .. }) => ("StopOnly".to_owned(), None),
        Err(HandlerError::RoutesOnly { .. }) => ("RoutesOnly".to_owned(), None),
        Err(HandlerError::Systemic(m)) => (m.kind().to_owned(), Some(m.summary())),
    };
    let count = |field: &str| {
        answer
            .and_then(|a| a.get(field))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let mut bedrock_errors = BTreeMap::new();
    for e in answer
        .and_then(|a| a.get("errors"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(kind) = e["kind"].as_str().filter(|k| k.starts_with("Bedrock")) {
            *bedrock_errors.entry(kind.to_owned()).or_default() += 1;
        }
    }
    // A poll Bedrock throttled throughout succeeds (no Lambda retry); it
    // still counts as Bedrock errors, so BedrockErrorsAlarm sees it even when
    // its only request was a listing with no job to blame.
    if answer.and_then(|a| a.get("bedrockThrottled")) == Some(&Value::Bool(true))
        && bedrock_errors.is_empty()
    {
        bedrock_errors.insert("BedrockThrottling".to_owned(), 1);
    }
    InvocationReport {
        command,
        outcome,
        polled: count("polled"),
        transitions: count("transitions"),
        notified: count("notified"),
        deferred: count("deferred"),
        failed: count("failed"),
        warnings: count("warnings"),
        ignored: count("ignored"),
        discovered: count("discovered"),
        bedrock_calls: answer
            .and_then(|a| a.get("bedrockCalls"))
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                    .collect()
            })
            .unwrap_or_default(),
        undeliverable: count("undeliverable"),
        pending: count("pending"),
        oldest_pending_age: answer
            .and_then(|a| a.get("oldestPendingAgeSeconds"))
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            // A poll that saw every job and nothing pending: the oldest is 0 s.
            // Other commands see only their jobs, so they say nothing.
            .or((command == "Poll" && result.is_ok()).then_some(Duration::ZERO)),
        bedrock_errors,
        // Not in the answer: the caller knows it from the configuration.
        unusable_settings: 0,
        destination_failures: answer.map_or(0, crate::monitor::destination_failures),
        member_role_failures: answer.map_or(0, crate::monitor::member_role_failures),
        duration,
    }
}
