//! The Lambda entry point: event in, JSON summary (or a typed error) out.

use lambda_runtime::Diagnostic;
use serde_json::Value;
use tracing::{error, warn};

use crate::event::{self, EventError};
use crate::monitor::{Invocation, Monitor, MonitorError};
use crate::ports::{JobSource, Jobs, Notifier, Outbox, WorkList};

/// Why an invocation failed. `errorType` in Lambda's answer names the variant.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error(transparent)]
    Systemic(#[from] MonitorError),
}

impl From<HandlerError> for Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Event(_) => "InvalidEvent",
            HandlerError::Systemic(m) => m.kind(),
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Routes one event to its use case.
pub async fn handle<S, T, N>(
    monitor: &Monitor<S, T, N>,
    payload: &Value,
    invocation: &Invocation,
) -> Result<Value, HandlerError>
where
    S: JobSource,
    T: Jobs + Outbox + WorkList,
    N: Notifier,
{
    let command = event::parse(payload).inspect_err(|e| warn!(error = %e, "rejected event"))?;
    monitor
        .handle(command, invocation)
        .await
        .inspect_err(|e| error!(error = %e, "systemic fault"))
        .map_err(HandlerError::from)
}
