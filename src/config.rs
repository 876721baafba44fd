//! Typed configuration from the environment, parsed once at start-up.

use std::time::Duration;

use crate::warnings::{Thresholds, parse_threshold};

/// A setting that is missing or malformed; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required but not set")]
    Missing(&'static str),
    #[error("{name} is malformed ({value:?}): {expected}")]
    Malformed {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Everything the function reads from its environment (besides the SDK's own
/// variables: region, credentials, `AWS_ENDPOINT_URL*`, `AWS_MAX_ATTEMPTS`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TABLE_NAME`: the job table.
    pub table_name: String,
    /// `TOPIC_ARN`: the SNS topic notifications go to.
    pub topic_arn: String,
    /// `MAX_CONCURRENCY` (default 32): Bedrock calls in flight during a poll.
    pub max_concurrency: usize,
    /// `RETENTION_DAYS` (default 30): how long a finished job stays in the table.
    pub retention: Duration,
    /// `NOT_FOUND_LIMIT` (default 3): polls in a row answering NotFound before the job is untracked.
    pub not_found_limit: u32,
    /// `DEADLINE_MARGIN_MS` (default 5000): stop starting jobs this close to the
    /// Lambda deadline; work still in flight is abandoned at half of it.
    pub deadline_margin: Duration,
    /// `CLAIM_SECONDS` (default 60, at least [`SDK_OPERATION_TIMEOUT`]): how long a
    /// claim on a pending notification holds, so it outlives the publish.
    pub claim_duration: Duration,
    /// `PUBLISH_MAX_ATTEMPTS` (default 5): publishes SNS may refuse for good (one a
    /// poll) before the notification is set aside as undeliverable.
    pub publish_max_attempts: u32,
    /// `METRICS_NAMESPACE` (default `BedrockBatchMonitor`): the CloudWatch
    /// namespace of the metrics each invocation writes.
    pub metrics_namespace: String,
    /// `METRICS` (default `lean`): `lean` declares only the metrics the
    /// alarms and the dashboard use, the other counts stay in the same EMF
    /// document as properties; `full` declares every count a metric.
    pub metrics: MetricSet,
    /// `LABEL_TAGS` (default `team`): job tags copied as labels when a Bedrock
    /// event starts tracking a job; comma-separated, at most 3, empty for none.
    pub label_tags: Vec<String>,
    /// `DISCOVERY` (default `off`): track jobs without a `track`: `all`, or only
    /// those whose name contains the given text.
    pub discovery: Discovery,
    /// `DISCOVERY_REGIONS` (default none): regions listed besides the function's own.
    pub discovery_regions: Vec<String>,
    /// `WARN_*`: when the early warnings fire.
    pub warnings: Thresholds,
    /// `OUTPUT_BUCKETS` (default none): buckets whose manifests the function
    /// reads for a finished job's token totals.
    pub output_buckets: Vec<String>,
    /// `BEDROCK_MAX_RPS` (default 20): Bedrock requests a second, at most, for
    /// the whole invocation (every operation and region).
    pub bedrock_max_rps: u32,
    /// `BULK_READ_MIN` (default 2, or `off`): a poll reads the state of a
    /// region's jobs with ListModelInvocationJobs once it has this many active
    /// jobs there, and calls GetModelInvocationJob only for those not listed.
    pub bulk_read_min: Option<usize>,
}

/// Which jobs are tracked without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    Off,
    All,
    /// Only jobs whose name contains this text.
    NameContains(String),
}

impl Discovery {
    pub fn is_on(&self) -> bool {
        !matches!(self, Self::Off)
    }

    /// Whether a job of this name is to be tracked.
    pub fn wants(&self, job_name: &str) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::NameContains(text) => job_name.contains(text.as_str()),
        }
    }
}

pub const DEFAULT_MAX_CONCURRENCY: usize = 32;
pub const DEFAULT_RETENTION_DAYS: u64 = 30;
pub const DEFAULT_NOT_FOUND_LIMIT: u32 = 3;
pub const DEFAULT_DEADLINE_MARGIN_MS: u64 = 5_000;
pub const DEFAULT_CLAIM_SECONDS: u64 = 60;
pub const DEFAULT_LABEL_TAGS: &str = "team";
pub const DEFAULT_PUBLISH_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_METRICS_NAMESPACE: &str = "BedrockBatchMonitor";

/// Which counts of an invocation are CloudWatch metrics (each costs money a
/// month); the rest are properties of the same EMF document, for Logs Insights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricSet {
    /// The metrics the alarms and the dashboard use.
    #[default]
    Lean,
    /// Every count.
    Full,
}
pub const DEFAULT_BEDROCK_MAX_RPS: u32 = 20;
pub const DEFAULT_BULK_READ_MIN: usize = 2;

/// The AWS SDK clients' timeouts (see `main.rs` and docs/capacity-and-cost.md's arithmetic):
/// connecting, one attempt, and one operation with all its retries.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let table_name = get("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?;
        let table_ok = (3..=255).contains(&table_name.len())
            && table_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !table_ok {
            return Err(ConfigError::Malformed {
                name: "TABLE_NAME",
                value: table_name,
                expected: "a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ - .",
            });
        }

        let topic_arn = get("TOPIC_ARN").ok_or(ConfigError::Missing("TOPIC_ARN"))?;
        if !is_topic_arn(&topic_arn) {
            return Err(ConfigError::Malformed {
                name: "TOPIC_ARN",
                value: topic_arn,
                expected: "an SNS topic ARN: arn:<partition>:sns:<region>:<account>:<topic>",
            });
        }

        let number = |name: &'static str,
                      default: u64,
                      min: u64,
                      max: u64,
                      expected: &'static str| match get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(ConfigError::Malformed {
                    name,
                    value: v,
                    expected,
                }),
            },
        };

        let label_tags: Vec<String> = match lookup("LABEL_TAGS") {
            None => vec![DEFAULT_LABEL_TAGS.to_owned()],
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        let tags_ok = label_tags.len() <= crate::labels::MAX_LABELS
            && label_tags
                .iter()
                .all(|t| crate::labels::validate(t, "x").is_ok());
        if !tags_ok {
            return Err(ConfigError::Malformed {
                name: "LABEL_TAGS",
                value: label_tags.join(","),
                expected: "up to 3 comma-separated tag keys usable as SNS attribute names (not status, severity, ...)",
            });
        }

        let metrics_namespace =
            get("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_owned());
        let namespace_ok = metrics_namespace.len() <= 255
            && !metrics_namespace.starts_with("AWS/")
            && metrics_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_/#:".contains(c));
        if !namespace_ok {
            return Err(ConfigError::Malformed {
                name: "METRICS_NAMESPACE",
                value: metrics_namespace,
                expected: "a CloudWatch namespace: 1 to 255 of a-z A-Z 0-9 . - _ / # :, not starting with AWS/",
            });
        }

        let metrics = match get("METRICS") {
            None => MetricSet::Lean,
            Some(v) if v.eq_ignore_ascii_case("lean") => MetricSet::Lean,
            Some(v) if v.eq_ignore_ascii_case("full") => MetricSet::Full,
            Some(value) => {
                return Err(ConfigError::Malformed {
                    name: "METRICS",
                    value,
                    expected: "lean (the metrics the alarms and the dashboard use) or full (every count)",
                });
            }
        };

        let discovery = match get("DISCOVERY") {
            None => Discovery::Off,
            Some(v) if v.eq_ignore_ascii_case("off") => Discovery::Off,
            Some(v) if v.eq_ignore_ascii_case("all") => Discovery::All,
            Some(v) if v.len() <= 63 => Discovery::NameContains(v),
            Some(v) => {
                return Err(ConfigError::Malformed {
                    name: "DISCOVERY",
                    value: v,
                    expected: "off, all, or a text of up to 63 characters that job names must contain",
                });
            }
        };
        let discovery_regions = list(lookup("DISCOVERY_REGIONS"));
        if let Some(bad) = discovery_regions
            .iter()
            .find(|r| crate::domain::partition_of(r).is_none())
        {
            return Err(ConfigError::Malformed {
                name: "DISCOVERY_REGIONS",
                value: bad.clone(),
                expected: "comma-separated AWS regions such as us-west-2,eu-west-1",
            });
        }
        let output_buckets = list(lookup("OUTPUT_BUCKETS"));
        if let Some(bad) = output_buckets.iter().find(|b| !is_bucket_name(b)) {
            return Err(ConfigError::Malformed {
                name: "OUTPUT_BUCKETS",
                value: bad.clone(),
                expected: "comma-separated S3 bucket names (3 to 63 of a-z 0-9 . -), not URIs",
            });
        }
        let threshold = |name: &'static str, default: Duration| match get(name) {
            None => Ok(Some(default)),
            Some(v) => parse_threshold(&v).map_err(|_| ConfigError::Malformed {
                name,
                value: v,
                expected: "a duration such as 90s, 45m, 12h or 2d (up to 366d), or off",
            }),
        };
        let error_rate = match get("WARN_ERROR_RATE") {
            None => Some(crate::warnings::DEFAULT_ERROR_RATE),
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => match v.parse::<f64>() {
                Ok(r) if r > 0.0 && r < 1.0 => Some(r),
                _ => {
                    return Err(ConfigError::Malformed {
                        name: "WARN_ERROR_RATE",
                        value: v,
                        expected: "a share of the processed records between 0 and 1 (0.05 is 5%), or off",
                    });
                }
            },
        };
        let warnings = Thresholds {
            queued_after: threshold("WARN_QUEUED_AFTER", crate::warnings::DEFAULT_QUEUED_AFTER)?,
            expiry_within: threshold("WARN_EXPIRY_WITHIN", crate::warnings::DEFAULT_EXPIRY_WITHIN)?,
            stalled_after: threshold("WARN_STALLED_AFTER", crate::warnings::DEFAULT_STALLED_AFTER)?,
            error_rate,
            error_min_records: number(
                "WARN_ERROR_MIN_RECORDS",
                crate::warnings::DEFAULT_ERROR_MIN_RECORDS as u64,
                1,
                1_000_000_000,
                "a whole number of processed records from 1",
            )? as i64,
        };

        let bulk_read_min = match get("BULK_READ_MIN") {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            _ => Some(number(
                "BULK_READ_MIN",
                DEFAULT_BULK_READ_MIN as u64,
                1,
                1_000_000,
                "a whole number of active jobs in a region from 1, or off",
            )? as usize),
        };

        Ok(Self {
            bedrock_max_rps: number(
                "BEDROCK_MAX_RPS",
                u64::from(DEFAULT_BEDROCK_MAX_RPS),
                1,
                10_000,
                "a whole number of requests per second from 1 to 10000",
            )? as u32,
            bulk_read_min,
            metrics,
            discovery,
            discovery_regions,
            warnings,
            output_buckets,
            metrics_namespace,
            label_tags,
            table_name,
            topic_arn,
            max_concurrency: number(
                "MAX_CONCURRENCY",
                DEFAULT_MAX_CONCURRENCY as u64,
                1,
                1000,
                "a whole number from 1 to 1000",
            )? as usize,
            retention: Duration::from_secs(
                86_400
                    * number(
                        "RETENTION_DAYS",
                        DEFAULT_RETENTION_DAYS,
                        1,
                        3650,
                        "a whole number of days from 1 to 3650",
                    )?,
            ),
            not_found_limit: number(
                "NOT_FOUND_LIMIT",
                DEFAULT_NOT_FOUND_LIMIT as u64,
                1,
                100,
                "a whole number from 1 to 100",
            )? as u32,
            deadline_margin: Duration::from_millis(number(
                "DEADLINE_MARGIN_MS",
                DEFAULT_DEADLINE_MARGIN_MS,
                500,
                600_000,
                "milliseconds from 500 (the answer needs the last quarter of it) to 600000",
            )?),
            claim_duration: Duration::from_secs(number(
                "CLAIM_SECONDS",
                DEFAULT_CLAIM_SECONDS,
                SDK_OPERATION_TIMEOUT.as_secs(),
                3600,
                "seconds from 30 (the publish's timeout: a claim must outlive its publish) to 3600",
            )?),
            publish_max_attempts: number(
                "PUBLISH_MAX_ATTEMPTS",
                u64::from(DEFAULT_PUBLISH_MAX_ATTEMPTS),
                1,
                100,
                "a whole number from 1 to 100",
            )? as u32,
        })
    }
}

/// A comma-separated list, blanks dropped, repeats removed.
fn list(v: Option<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in v.unwrap_or_default().split(',').map(str::trim) {
        if !item.is_empty() && !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    out
}

fn is_bucket_name(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn is_topic_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    matches!(parts[..], ["arn", partition, "sns", region, account, topic]
        if partition.starts_with("aws")
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !topic.is_empty()
            && topic.len() <= 256
            && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:bedrock-batch-alerts";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn when_only_required_settings_are_given_should_use_documented_defaults() {
        let c = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)]).unwrap();
        assert_eq!(c.max_concurrency, 32);
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.not_found_limit, 3);
        assert_eq!(c.deadline_margin, Duration::from_secs(5));
        assert_eq!(c.claim_duration, Duration::from_secs(60));
        assert_eq!(c.label_tags, ["team"]);
        assert_eq!(c.publish_max_attempts, 5);
        assert_eq!(c.metrics_namespace, "BedrockBatchMonitor");
        assert_eq!(c.discovery, Discovery::Off);
        assert_eq!(c.bedrock_max_rps, 20);
        assert_eq!(c.bulk_read_min, Some(2));
        assert!(c.discovery_regions.is_empty() && c.output_buckets.is_empty());
        assert_eq!(c.warnings, Thresholds::default());
        assert_eq!(
            c.warnings.queued_after,
            Some(Duration::from_secs(12 * 3600))
        );
    }

    #[test]
    fn when_discovery_and_warnings_are_set_should_read_them_and_name_bad_values() {
        let c = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("DISCOVERY", "nightly-"),
            ("DISCOVERY_REGIONS", "us-west-2, eu-west-1,us-west-2"),
            ("WARN_QUEUED_AFTER", "off"),
            ("WARN_STALLED_AFTER", "45m"),
            ("WARN_ERROR_RATE", "0.2"),
            ("WARN_ERROR_MIN_RECORDS", "10"),
            ("OUTPUT_BUCKETS", "my-output,other.bucket"),
        ])
        .unwrap();
        assert_eq!(c.discovery, Discovery::NameContains("nightly-".into()));
        assert!(c.discovery.wants("nightly-embeddings") && !c.discovery.wants("adhoc"));
        assert_eq!(c.discovery_regions, ["us-west-2", "eu-west-1"]);
        assert_eq!(c.warnings.queued_after, None);
        assert_eq!(c.warnings.stalled_after, Some(Duration::from_secs(2700)));
        assert_eq!(c.warnings.error_rate, Some(0.2));
        assert_eq!(c.warnings.error_min_records, 10);
        assert_eq!(c.output_buckets, ["my-output", "other.bucket"]);
        for (name, value) in [
            ("DISCOVERY_REGIONS", "us-west-2,mars-1"),
            ("WARN_EXPIRY_WITHIN", "6 hours"),
            ("WARN_ERROR_RATE", "5%"),
            ("OUTPUT_BUCKETS", "s3://my-output"),
        ] {
            let err =
                config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC), (name, value)]).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name} is malformed")),
                "{err}"
            );
        }
    }

    #[test]
    fn when_label_tags_are_set_should_split_them_and_refuse_reserved_names() {
        let c = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("LABEL_TAGS", "team, cost-center"),
        ])
        .unwrap();
        assert_eq!(c.label_tags, ["team", "cost-center"]);
        let c = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("LABEL_TAGS", ""),
        ])
        .unwrap();
        assert!(c.label_tags.is_empty());
        let err = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("LABEL_TAGS", "status"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().starts_with("LABEL_TAGS is malformed"),
            "{err}"
        );
    }

    #[test]
    fn metrics_should_be_lean_unless_full_is_asked_for() {
        let base = [("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)];
        assert_eq!(config(&base).unwrap().metrics, MetricSet::Lean);
        let with = |v| {
            let mut vars = base.to_vec();
            vars.push(("METRICS", v));
            config(&vars)
        };
        assert_eq!(with("full").unwrap().metrics, MetricSet::Full);
        assert_eq!(with("LEAN").unwrap().metrics, MetricSet::Lean);
        let err = with("some").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("METRICS is malformed (\"some\")"),
            "{err}"
        );
    }

    #[test]
    fn when_a_required_setting_is_missing_should_name_it() {
        let err = config(&[("TOPIC_ARN", TOPIC)]).unwrap_err();
        assert_eq!(err.to_string(), "TABLE_NAME is required but not set");
        let err = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", " ")]).unwrap_err();
        assert_eq!(err.to_string(), "TOPIC_ARN is required but not set");
    }

    #[test]
    fn when_a_setting_is_malformed_should_name_it_and_the_value() {
        let err = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", "my-topic")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("TOPIC_ARN is malformed (\"my-topic\")"),
            "{err}"
        );
        let err = config(&[("TABLE_NAME", "no spaces"), ("TOPIC_ARN", TOPIC)]).unwrap_err();
        assert!(
            err.to_string().starts_with("TABLE_NAME is malformed"),
            "{err}"
        );
        let err = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("MAX_CONCURRENCY", "0"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("MAX_CONCURRENCY is malformed (\"0\")"),
            "{err}"
        );
    }

    #[test]
    fn when_optional_settings_are_given_should_use_them() {
        let c = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("MAX_CONCURRENCY", "8"),
            ("RETENTION_DAYS", "7"),
            ("NOT_FOUND_LIMIT", "5"),
            ("DEADLINE_MARGIN_MS", "1500"),
            ("CLAIM_SECONDS", "30"),
            ("PUBLISH_MAX_ATTEMPTS", "2"),
        ])
        .unwrap();
        assert_eq!(c.max_concurrency, 8);
        assert_eq!(c.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.not_found_limit, 5);
        assert_eq!(c.deadline_margin, Duration::from_millis(1500));
        assert_eq!(c.claim_duration, Duration::from_secs(30));
        assert_eq!(c.publish_max_attempts, 2);
    }

    #[test]
    fn when_the_deadline_margin_leaves_no_time_to_answer_should_refuse_it() {
        let err = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("DEADLINE_MARGIN_MS", "0"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DEADLINE_MARGIN_MS is malformed (\"0\")"),
            "{err}"
        );
    }

    #[test]
    fn when_the_claim_is_shorter_than_the_publish_timeout_should_refuse_it() {
        let err = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("CLAIM_SECONDS", "29"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CLAIM_SECONDS is malformed (\"29\")")
                && err.to_string().contains("publish"),
            "{err}"
        );
    }
}
