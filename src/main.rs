//! Wiring only: configuration, SDK clients built once, the Lambda runtime loop.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bedrock_batch_monitor::adapters::{
    bedrock::BedrockJobSource, dynamodb::DynamoJobStore, sns::SnsNotifier,
};
use bedrock_batch_monitor::config::Config;
use bedrock_batch_monitor::handler;
use bedrock_batch_monitor::monitor::{Monitor, Settings};
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = Config::from_env().map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    // Region, credentials, retries (AWS_MAX_ATTEMPTS) and endpoints
    // (AWS_ENDPOINT_URL_*) come from the SDK's standard sources. Timeouts are set
    // here so a hung endpoint costs one job a few seconds, not the invocation.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .load()
        .await;
    let home_region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let monitor = Monitor::new(
        BedrockJobSource::new(sdk.clone()),
        DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name),
        SnsNotifier::new(aws_sdk_sns::Client::new(&sdk), &config.topic_arn),
        Settings::new(&config, home_region),
    );
    let monitor = &monitor;
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let deadline = deadline_instant(ev.context.deadline);
        handler::handle(monitor, &ev.payload, deadline).await
    }))
    .await
}

/// The runtime gives the deadline in epoch milliseconds; the use cases want an Instant.
/// A deadline that is not in the future is not a real one (`cargo lambda watch`
/// sends its timeout, not a time): then there is none.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    (deadline_ms > now_ms).then(|| Instant::now() + Duration::from_millis(deadline_ms - now_ms))
}
