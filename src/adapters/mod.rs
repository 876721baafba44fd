//! Adapters: the ports over the AWS SDK. They translate; they decide nothing.

pub mod bedrock;
pub mod dynamodb;
pub mod sns;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

/// The service's own words for an error, or the SDK's when the service said nothing.
pub(crate) fn describe<E: ProvideErrorMetadata + std::error::Error>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_owned(),
        (None, Some(msg)) => msg.to_owned(),
        (None, None) => aws_smithy_error_chain(e),
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
