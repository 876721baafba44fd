//! Wiring only: configuration, SDK clients built once, the Lambda runtime loop.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bedrock_batch_monitor::adapters::{
    bedrock::BedrockJobSource, cloudformation::PresignedUrl, dynamodb::DynamoJobStore,
    metrics::EmfMetrics, sns::SnsNotifier,
};
use bedrock_batch_monitor::config::{
    Config, SDK_ATTEMPT_TIMEOUT, SDK_CONNECT_TIMEOUT, SDK_OPERATION_TIMEOUT,
};
use bedrock_batch_monitor::handler;
use bedrock_batch_monitor::logging;
use bedrock_batch_monitor::monitor::{Invocation, Monitor};
use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;
use tracing::level_filters::LevelFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The level is a setting like the others; a configuration that cannot be
    // read is logged at the default level, then stops the function.
    let config = Config::from_env();
    logging::init(config.as_ref().map_or(LevelFilter::INFO, |c| c.log_level));
    let config = config.map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        e
    })?;
    // Each answer, the digest and the UnusableSettings metric say it too.
    for w in &config.unusable {
        tracing::error!(setting = w.setting, error = %w.error, instead = w.instead, "a setting the function cannot use; its feature is off");
    }
    // Region, credentials, retries (AWS_MAX_ATTEMPTS) and endpoints
    // (AWS_ENDPOINT_URL_*) come from the SDK's standard sources. The timeouts
    // bound each call; the invocation's own budget bounds each job (docs/capacity-and-cost.md).
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(SDK_CONNECT_TIMEOUT)
                .operation_attempt_timeout(SDK_ATTEMPT_TIMEOUT)
                .operation_timeout(SDK_OPERATION_TIMEOUT)
                .build(),
        )
        .load()
        .await;
    let home_region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".to_owned());
    // Lambda names the function in its environment; the metrics' dimension.
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| "bedrock-batch-monitor".to_owned());
    let metrics =
        EmfMetrics::new(&config.metrics_namespace, &function_name).with_set(config.metrics);
    // Manifests are read only from OUTPUT_BUCKETS, by clients the source makes
    // from this configuration in each bucket's region. A local S3 stand-in
    // behind an endpoint (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL) needs
    // path-style addresses: bucket names are not DNS names there.
    let local_s3 = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|u| !u.trim().is_empty()));
    let s3 = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(local_s3)
        .build();
    // Member accounts' jobs through their role, assumed with STS
    // (AWS_ENDPOINT_URL_STS like every other endpoint).
    let source = BedrockJobSource::new(sdk.clone())
        .with_rate_limit(config.bedrock_max_rps)
        .with_manifests(s3, config.output_buckets.clone())
        .with_members_of(&config);
    let monitor = Monitor::new(
        source,
        DynamoJobStore::new(aws_sdk_dynamodb::Client::new(&sdk), &config.table_name),
        SnsNotifier::from_config(aws_sdk_sns::Client::new(&sdk), &config, &function_name),
        config.clone(),
        home_region,
    );
    // CloudFormation's custom resource requests are answered at their
    // pre-signed ResponseURL (no credentials).
    let cloudformation = PresignedUrl::new();
    let (monitor, metrics, cloudformation) = (&monitor, &metrics, &cloudformation);
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let invocation = Invocation::new(
            ev.context.request_id.clone(),
            deadline_instant(ev.context.deadline),
        )
        .invoked_as(&ev.context.invoked_function_arn);
        handler::handle_and_report(monitor, cloudformation, metrics, &ev.payload, &invocation).await
    }))
    .await
}

/// The runtime gives the deadline in epoch milliseconds; the use cases want an Instant.
/// A deadline that is not in the future is not a real one (`cargo lambda watch`
/// sends a constant 600000): then there is none, and no work is cut short.
fn deadline_instant(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis() as u64;
    (deadline_ms > now_ms).then(|| Instant::now() + Duration::from_millis(deadline_ms - now_ms))
}
