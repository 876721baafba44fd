//! Adapters: the ports over the AWS SDK. They translate; they decide nothing.

pub mod bedrock;
pub mod cloudformation;
pub mod dynamodb;
pub mod metrics;
pub mod sns;

use std::sync::Arc;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::ports::Cause;

/// What an adapter needs of an SDK error to map it to its port's error.
pub(crate) struct ErrorFacts {
    /// The service's error code (`ThrottlingException`, ...), empty when none.
    pub code: String,
    /// The service's own words (`code: message`), or the SDK's when it said nothing.
    pub message: String,
    /// No answer came: the connection failed or timed out.
    pub dispatch: bool,
    /// The service answered with this 5xx status.
    pub server_status: Option<u16>,
    /// The SDK's error itself, kept as the source.
    pub cause: Option<Cause>,
}

pub(crate) fn facts<E>(e: SdkError<E>) -> ErrorFacts
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.code().unwrap_or_default().to_owned();
    let message = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(msg)) => msg.to_owned(),
        (None, None) => aws_smithy_error_chain(&e),
    };
    let dispatch = matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_));
    let server_status = match &e {
        SdkError::ServiceError(ctx) if ctx.raw().status().is_server_error() => {
            Some(ctx.raw().status().as_u16())
        }
        _ => None,
    };
    ErrorFacts {
        code,
        message,
        dispatch,
        server_status,
        cause: Some(Arc::new(e)),
    }
}

/// Display of an error and its sources, for errors that carry no service metadata.
pub(crate) fn aws_smithy_error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

/// SDK timestamps to chrono.
pub(crate) fn to_chrono(
    t: &aws_sdk_bedrock::primitives::DateTime,
) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}
