//! Typed configuration from the environment, parsed once at start-up.

use std::cell::RefCell;
use std::time::Duration;
use tracing::level_filters::LevelFilter;

use crate::filter_policy::FilterPolicy;
use crate::prices::PriceBook;

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
    /// `WATCH` (default `all`): which jobs the monitor tracks, from Bedrock's
    /// events, discovery and `track` alike.
    pub watch: Watch,
    /// `DISCOVERY` (default `off`): track jobs without a `track`: `all`, or only
    /// those whose name contains the given text.
    pub discovery: Discovery,
    /// `DISCOVERY_REGIONS` (default none): regions listed besides the function's own.
    pub discovery_regions: Vec<String>,
    /// `MEMBER_ACCOUNTS` (default none: this account alone): the other
    /// accounts whose jobs this monitor reads, each with the role
    /// `MEMBER_ROLE_NAME` assumed in it. Sorted, each once.
    pub member_accounts: Vec<String>,
    /// `MEMBER_ROLE_NAME`: the role's name in every member account.
    pub member_role_name: String,
    /// `WARN_*`: when the early warnings fire.
    pub warnings: Thresholds,
    /// `OUTPUT_BUCKETS` (default none): buckets whose manifests the function
    /// reads for a finished job's token totals.
    pub output_buckets: Vec<String>,
    /// `RECORD_ERRORS_MAX_BYTES` (default 8 MiB, 0 off): how much of a job's
    /// `.jsonl.out` output files is read, per job that ended with failed
    /// records, to count why they failed (in `OUTPUT_BUCKETS` only).
    pub record_errors_max_bytes: u64,
    /// How long that read may take for one job ([`RECORD_ERRORS_TIMEOUT`];
    /// not a setting): past it the end is recorded and notified without
    /// the reasons, saying why, rather than waiting for S3.
    pub record_errors_timeout: std::time::Duration,
    /// `ENVIRONMENT` (default [`DEFAULT_ENVIRONMENT`]): which monitor sent a
    /// message, on every message (subject, text, Slack title, JSON, attribute).
    pub environment: String,
    /// `SLACK_TOPIC_ARN` (default none) and `SLACK_FILTER_POLICY` (default
    /// [`DEFAULT_SLACK_FILTER_POLICY`]): the Slack channel's own topic, which
    /// gets the notifications the policy lets through.
    pub slack: Option<(String, FilterPolicy)>,
    /// `LOG_LEVEL` (default `INFO`): the function's own log lines at this level
    /// and above ([`crate::logging`]); the metrics documents are written whatever it is.
    pub log_level: LevelFilter,
    /// `BEDROCK_MAX_RPS` (default 20): Bedrock requests a second, at most, for
    /// the whole invocation (every operation and region).
    pub bedrock_max_rps: u32,
    /// `DIGEST_SETTLE_SECONDS` (default 300): a digest reports the ends
    /// recorded up to this long before it, so that every end written late
    /// (an invocation's write lands at most its timeout after the time it
    /// carries) is in the table when the digest that reports it reads it;
    /// the later ones are in the next digest. Keep it above the function's
    /// timeout.
    pub digest_settle: Duration,
    /// `POLL_RATE` (the template's `PollRate`; none by default) and
    /// `POLL_SCHEDULES` (default 1): how often the schedules poll, each one
    /// over its share of the work, so the digest knows how many polls a
    /// window should have seen. `None`: unknown (the digest then only asks
    /// that some poll ran).
    pub poll_every: Option<Duration>,
    pub poll_schedules: u32,
    /// `BULK_READ_MIN` (default 2, or `off`): a poll reads the state of a
    /// region's jobs with ListModelInvocationJobs once it has this many active
    /// jobs there, and calls GetModelInvocationJob only for those not listed.
    pub bulk_read_min: Option<usize>,
    /// `PRICES` (default none) over the built-in table
    /// (`prices/bedrock-batch.json`): the batch prices a finished job's cost is
    /// estimated with ([`crate::prices`]).
    pub prices: PriceBook,
    /// The settings given a value the function cannot use, each turned off
    /// or to its default instead of stopping the function.
    pub unusable: Vec<SettingWarning>,
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

pub use crate::domain::{Watch, WatchTerm};

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

/// The AWS SDK clients' timeouts (see `main.rs` and docs/capacity-and-cost.md's arithmetic):
/// connecting, one attempt, and one operation with all its retries.
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const SDK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub const SDK_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Bedrock requests a second when nothing says otherwise (`BEDROCK_MAX_RPS`'s default).
pub const DEFAULT_BEDROCK_MAX_RPS: u32 = 20;

/// One variable the function reads: its name, its default as
/// docs/configuration.md writes it (`None`: required, or nothing), what a
/// malformed value is told it should be, and what the function does instead
/// of a value it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub default: Option<&'static str>,
    pub expected: &'static str,
    /// What a value the function cannot use turns into: only `TABLE_NAME`
    /// and `TOPIC_ARN` stop the function ([`STOPS`]); any other setting's
    /// feature is off, or at its default, and every answer, the digest and
    /// the `UnusableSettings` metric say so.
    pub if_unusable: &'static str,
}

const fn setting(
    name: &'static str,
    default: Option<&'static str>,
    expected: &'static str,
    if_unusable: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        expected,
        if_unusable,
    }
}

/// What a missing or malformed required setting does.
pub const STOPS: &str = "the function stops at start-up";
/// A tuning or presentation setting: its default is always usable.
const DEFAULT: &str = "its default";
/// Without the schedule's rate the digest cannot tell how many polls to expect.
const POLL_RATE_OFF: &str = "the digest's polling check asks only that some poll ran";
const WARNING_OFF: &str = "this warning is off";
/// Not the default (every Slack notification) and not everything: a channel
/// whose policy cannot be read is told nothing rather than too much.
const SLACK_OFF: &str = "nothing is published to the Slack topic";
/// Not `all`: a monitor that cannot tell which jobs are its own takes in no
/// new job rather than every team's (which would send their names and
/// Bedrock's messages to this monitor's subscribers).
const WATCH_NOTHING: &str = "no job starts being tracked (events, discovery and a track of a job not tracked yet are refused as NotWatched); tracked jobs go on";

/// A setting the function cannot use, what it does instead, and why: in
/// every answer (`settingWarnings`), in the digest and in the
/// `UnusableSettings` metric, for as long as the value stays.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingWarning {
    pub setting: &'static str,
    /// The setting's name, the value and what it should be.
    pub error: String,
    /// What the function does instead ([`Setting::if_unusable`]).
    pub instead: &'static str,
}

const DURATION: &str = "a duration such as 90s, 45m, 12h or 2d (up to 366d), or off";

/// The most `RECORD_ERRORS_MAX_BYTES` takes: 1 GiB, beyond what a poll's
/// minutes could read.
pub const MAX_RECORD_ERRORS_BYTES: u64 = 1 << 30;

/// The longest a job's output read (the records' own errors) may take: a
/// slow S3 never keeps a job's end from being recorded and notified.
pub const RECORD_ERRORS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The environment a monitor names on its messages when `ENVIRONMENT` is not
/// set (the template sets it to the stack's `Environment`, or the stack name).
pub const DEFAULT_ENVIRONMENT: &str = "bedrock-batch-monitor";

/// The function's alias that the Slack channel's Stop job button invokes
/// (template.yaml `StopAlias`); through it the function serves `stop` and
/// nothing else, so the channel's role, which may invoke that alias alone,
/// can stop a tracked job and do nothing more.
pub const STOP_ALIAS: &str = "stop";

/// The function's alias that teams' stacks name as the `ServiceToken` of a
/// `Custom::NotificationRoute` (template.yaml `RoutesAlias`, output
/// `RouteServiceToken`); through it the function serves those requests and
/// nothing else, so whoever may declare a route may not poll, track or untrack.
pub const ROUTES_ALIAS: &str = "routes";

/// The custom resource type the `routes` alias serves.
pub const ROUTE_RESOURCE_TYPE: &str = "Custom::NotificationRoute";

/// What the Slack channel gets unless `SLACK_FILTER_POLICY` says otherwise:
/// failures, warnings (early warnings, Stopped, PartiallyCompleted, Completed
/// with failed records, untracked jobs), every other end (Completed) and the
/// digest; not Submitted, Validating, Scheduled, InProgress or Stopping.
pub const DEFAULT_SLACK_FILTER_POLICY: &str = "error,warning,success,digest";

/// The role the monitor assumes in each member account when
/// `MEMBER_ROLE_NAME` is not set (member-account/template.yaml creates it).
pub const DEFAULT_MEMBER_ROLE_NAME: &str = "bedrock-batch-monitor-reader";

/// Not every account in the ARNs it meets: a list that cannot be read reads
/// no other account, as before member accounts existed.
const MEMBERS_OFF: &str =
    "this account alone: jobs of other accounts are refused as AccountNotMember";

/// Every variable [`Config`] reads, in docs/configuration.md's order; a
/// default is parsed by the same rule as a value given (a test holds this
/// table and the page equal).
pub const SETTINGS: [Setting; 33] = [
    setting(
        "TABLE_NAME",
        None,
        "a DynamoDB table name: 3 to 255 of a-z A-Z 0-9 _ - .",
        STOPS,
    ),
    setting(
        "TOPIC_ARN",
        None,
        "an SNS topic ARN: arn:<partition>:sns:<region>:<account>:<topic>",
        STOPS,
    ),
    setting(
        "MAX_CONCURRENCY",
        Some("32"),
        "a whole number from 1 to 1000",
        DEFAULT,
    ),
    setting(
        "BEDROCK_MAX_RPS",
        Some("20"),
        "a whole number of requests per second from 1 to 10000",
        DEFAULT,
    ),
    setting(
        "BULK_READ_MIN",
        Some("2"),
        "a whole number of active jobs in a region from 1, or off",
        DEFAULT,
    ),
    setting(
        "RETENTION_DAYS",
        Some("30"),
        "a whole number of days from 1 to 3650",
        DEFAULT,
    ),
    setting(
        "NOT_FOUND_LIMIT",
        Some("3"),
        "a whole number from 1 to 100",
        DEFAULT,
    ),
    setting(
        "DEADLINE_MARGIN_MS",
        Some("5000"),
        "milliseconds from 500 (the answer needs the last quarter of it) to 600000",
        DEFAULT,
    ),
    setting(
        "CLAIM_SECONDS",
        Some("60"),
        "seconds from 30 (the publish's timeout: a claim must outlive its publish) to 3600",
        DEFAULT,
    ),
    setting(
        "DIGEST_SETTLE_SECONDS",
        Some("300"),
        "seconds from 0 to 3600 (above the function's timeout, so late writes land before a digest reads them)",
        DEFAULT,
    ),
    setting(
        "POLL_RATE",
        None,
        "an EventBridge rate expression: rate(<n> minute|minutes|hour|hours|day|days)",
        POLL_RATE_OFF,
    ),
    setting("POLL_SCHEDULES", Some("1"), "1, 2 or 4", DEFAULT),
    setting(
        "PUBLISH_MAX_ATTEMPTS",
        Some("5"),
        "a whole number from 1 to 100",
        DEFAULT,
    ),
    setting(
        "METRICS_NAMESPACE",
        Some("BedrockBatchMonitor"),
        "a CloudWatch namespace: 1 to 255 of a-z A-Z 0-9 . - _ / # :, not starting with AWS/",
        DEFAULT,
    ),
    setting(
        "METRICS",
        Some("lean"),
        "lean (the metrics the alarms and the dashboard use) or full (every count)",
        DEFAULT,
    ),
    setting(
        "LABEL_TAGS",
        Some("team"),
        "up to 3 comma-separated tag keys usable as SNS attribute names (not status, severity, ...)",
        "no tag is copied as a label",
    ),
    setting(
        "WATCH",
        Some("all"),
        "all, or comma-separated name:<prefix> and tag:<key>=<value> terms",
        WATCH_NOTHING,
    ),
    setting(
        "DISCOVERY",
        Some("off"),
        "off, all, or a text of up to 63 characters that job names must contain",
        "off: no job is tracked without a track",
    ),
    setting(
        "DISCOVERY_REGIONS",
        None,
        "comma-separated AWS regions such as us-west-2,eu-west-1",
        "discovery lists the function's own region only",
    ),
    setting(
        "MEMBER_ACCOUNTS",
        None,
        "comma-separated 12-digit AWS account ids such as 111122223333,444455556666",
        MEMBERS_OFF,
    ),
    setting(
        "MEMBER_ROLE_NAME",
        Some(DEFAULT_MEMBER_ROLE_NAME),
        "an IAM role name: 1 to 64 of A-Z a-z 0-9 + = , . @ _ -",
        DEFAULT,
    ),
    setting("WARN_QUEUED_AFTER", Some("12h"), DURATION, WARNING_OFF),
    setting("WARN_EXPIRY_WITHIN", Some("6h"), DURATION, WARNING_OFF),
    setting("WARN_STALLED_AFTER", Some("2h"), DURATION, WARNING_OFF),
    setting(
        "WARN_ERROR_RATE",
        Some("0.05"),
        "a share of the processed records between 0 and 1 (0.05 is 5%), or off",
        WARNING_OFF,
    ),
    setting(
        "WARN_ERROR_MIN_RECORDS",
        Some("100"),
        "a whole number of processed records from 1",
        "the error-rate warning is off",
    ),
    setting(
        "OUTPUT_BUCKETS",
        None,
        "comma-separated S3 bucket names (3 to 63 of a-z 0-9 . -), not URIs",
        "no manifest is read: no token totals, no cost",
    ),
    setting(
        "RECORD_ERRORS_MAX_BYTES",
        Some("8388608"),
        "a whole number of bytes from 0 (off) to 1073741824 (1 GiB)",
        DEFAULT,
    ),
    setting(
        "ENVIRONMENT",
        Some(DEFAULT_ENVIRONMENT),
        "1 to 128 of a-z A-Z 0-9 . _ -",
        DEFAULT,
    ),
    setting(
        "SLACK_TOPIC_ARN",
        None,
        "an SNS topic ARN: arn:<partition>:sns:<region>:<account>:<topic>",
        SLACK_OFF,
    ),
    setting(
        "SLACK_FILTER_POLICY",
        Some(DEFAULT_SLACK_FILTER_POLICY),
        "comma-separated severities and events (error, warning, success, info, digest, statusChanged, untracked), or an SNS filter policy in JSON on message attributes that this function can evaluate",
        SLACK_OFF,
    ),
    setting(
        "LOG_LEVEL",
        Some("INFO"),
        "TRACE, DEBUG, INFO, WARN or ERROR",
        DEFAULT,
    ),
    setting(
        "PRICES",
        None,
        "a JSON object of model or inference profile ids to batch prices in USD per million tokens, such as {\"anthropic.claude-3-haiku-20240307-v1:0\": {\"input\": 0.125, \"output\": 0.625}}, with optional regions and pricesOf",
        "the built-in price table alone",
    ),
];

/// The settings as `lookup` gives them: a value or its default, an error
/// naming the variable and what it should be, and the settings the function
/// could not use, noted as they are met.
struct Values<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unusable: RefCell<Vec<SettingWarning>>,
}

fn nothing_set(_: &str) -> Option<String> {
    None
}

impl<'a> Values<'a> {
    fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            unusable: RefCell::default(),
        }
    }

    /// Every setting at its default.
    fn defaults() -> Values<'static> {
        Values::new(&nothing_set)
    }

    fn setting(name: &'static str) -> &'static Setting {
        SETTINGS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or(&SETTINGS[0])
    }

    /// The value given (trimmed, blank as none), or the default.
    fn text(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| Self::setting(name).default.map(str::to_owned))
    }

    fn malformed(&self, name: &'static str, value: impl Into<String>) -> ConfigError {
        ConfigError::Malformed {
            name,
            value: value.into(),
            expected: Self::setting(name).expected,
        }
    }

    /// Notes a setting the function cannot use; it is logged once, at start-up.
    fn note(&self, e: &ConfigError) {
        let name = match e {
            ConfigError::Missing(name) | ConfigError::Malformed { name, .. } => *name,
        };
        self.unusable.borrow_mut().push(SettingWarning {
            setting: name,
            error: e.to_string(),
            instead: Self::setting(name).if_unusable,
        });
    }

    /// What `got` holds, or, for a value the function cannot use, what
    /// `instead` gives (the feature off), noted.
    fn or_off<T>(&self, got: Result<T, ConfigError>, instead: impl FnOnce() -> T) -> T {
        got.unwrap_or_else(|e| {
            self.note(&e);
            instead()
        })
    }

    /// What `parse` makes of the value, or, for a value the function cannot
    /// use, what it makes of the default, noted. A default always parses
    /// (a test holds every one).
    fn or_default<T>(
        &self,
        parse: impl Fn(&Values<'_>) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        parse(self).or_else(|e| {
            self.note(&e);
            parse(&Values::defaults())
        })
    }

    fn required(&self, name: &'static str, valid: fn(&str) -> bool) -> Result<String, ConfigError> {
        let v = self.text(name).ok_or(ConfigError::Missing(name))?;
        if valid(&v) {
            Ok(v)
        } else {
            Err(self.malformed(name, v))
        }
    }

    /// A whole number in `range`.
    fn number(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let v = self.text(name).unwrap_or_default();
        match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(self.malformed(name, v)),
        }
    }

    /// `off`, or what `parse` makes of the value.
    fn optional<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        match self.text(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(None),
            Some(v) => parse(&v).map(Some).ok_or_else(|| self.malformed(name, v)),
        }
    }

    /// A comma-separated list (blanks dropped, repeats removed), each item valid.
    fn list(
        &self,
        name: &'static str,
        valid: fn(&str) -> bool,
    ) -> Result<Vec<String>, ConfigError> {
        let items =
            list((self.lookup)(name).or_else(|| Self::setting(name).default.map(str::to_owned)));
        match items.iter().find(|i| !valid(i)) {
            Some(bad) => Err(self.malformed(name, bad.clone())),
            None => Ok(items),
        }
    }
}

impl Config {
    /// The monitor's own account: its topic's (the stack creates the topic
    /// in the account it runs in). Jobs of this account are read with the
    /// function's own credentials.
    pub fn home_account(&self) -> &str {
        self.topic_arn.split(':').nth(4).unwrap_or_default()
    }

    /// Whether this monitor may read `account`'s jobs: its own, or one of
    /// `MEMBER_ACCOUNTS`.
    pub fn reads_account(&self, account: &str) -> bool {
        account == self.home_account() || self.member_accounts.iter().any(|m| m == account)
    }

    /// Every account this monitor reads, its own first.
    pub fn accounts(&self) -> Vec<&str> {
        let mut all = vec![self.home_account()];
        all.extend(
            self.member_accounts
                .iter()
                .map(String::as_str)
                .filter(|m| *m != self.home_account()),
        );
        all
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process
    /// environment; each through [`SETTINGS`]' default and error text. Only
    /// a missing or malformed `TABLE_NAME` or `TOPIC_ARN` is an error: any
    /// other value the function cannot use turns its feature off (or to its
    /// default) and is listed in [`Config::unusable`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Values::new(&lookup);
        let table_name = v.required("TABLE_NAME", is_table_name)?;
        let topic_arn = v.required("TOPIC_ARN", is_topic_arn)?;
        // Set but blank: no labels (the default applies only when unset).
        let label_tags = v.or_off(
            v.list("LABEL_TAGS", |t| crate::labels::validate(t, "x").is_ok())
                .and_then(|tags| {
                    if tags.len() > crate::labels::MAX_LABELS {
                        Err(v.malformed("LABEL_TAGS", tags.join(",")))
                    } else {
                        Ok(tags)
                    }
                }),
            Vec::new,
        );
        let threshold = |name: &'static str| -> Option<Duration> {
            let given = v.text(name).unwrap_or_default();
            v.or_off(
                parse_threshold(&given).map_err(|_| v.malformed(name, given)),
                || None,
            )
        };
        let error_min_records = v.or_off(
            v.number("WARN_ERROR_MIN_RECORDS", 1..=1_000_000_000)
                .map(|n| Some(n as i64)),
            || None,
        );
        let warnings = Thresholds {
            queued_after: threshold("WARN_QUEUED_AFTER"),
            expiry_within: threshold("WARN_EXPIRY_WITHIN"),
            stalled_after: threshold("WARN_STALLED_AFTER"),
            // Without a usable minimum, the error-rate warning is off too.
            error_rate: error_min_records.and_then(|_| {
                v.or_off(
                    v.optional("WARN_ERROR_RATE", |s| {
                        s.parse::<f64>().ok().filter(|r| *r > 0.0 && *r < 1.0)
                    }),
                    || None,
                )
            }),
            error_min_records: error_min_records.unwrap_or(i64::MAX),
        };
        let slack_policy = {
            // Read even without a Slack topic: a policy the function cannot
            // evaluate is said at once, not when Slack is added.
            let policy = v.text("SLACK_FILTER_POLICY").unwrap_or_default();
            v.or_off(
                FilterPolicy::parse_setting(&policy)
                    .map(Some)
                    .map_err(|e| v.malformed("SLACK_FILTER_POLICY", format!("{policy}: {e}"))),
                || None,
            )
        };
        let slack_topic = v.or_off(
            match v.text("SLACK_TOPIC_ARN") {
                None => Ok(None),
                Some(arn) if is_topic_arn(&arn) => Ok(Some(arn)),
                Some(other) => Err(v.malformed("SLACK_TOPIC_ARN", other)),
            },
            || None,
        );
        let config = Self {
            table_name,
            topic_arn,
            max_concurrency: v.or_default(|v| v.number("MAX_CONCURRENCY", 1..=1000))? as usize,
            bedrock_max_rps: v.or_default(|v| v.number("BEDROCK_MAX_RPS", 1..=10_000))? as u32,
            bulk_read_min: v.or_default(|v| {
                v.optional("BULK_READ_MIN", |s| {
                    s.parse::<usize>()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                })
            })?,
            retention: Duration::from_secs(
                86_400 * v.or_default(|v| v.number("RETENTION_DAYS", 1..=3650))?,
            ),
            not_found_limit: v.or_default(|v| v.number("NOT_FOUND_LIMIT", 1..=100))? as u32,
            deadline_margin: Duration::from_millis(
                v.or_default(|v| v.number("DEADLINE_MARGIN_MS", 500..=600_000))?,
            ),
            claim_duration: Duration::from_secs(v.or_default(|v| {
                v.number("CLAIM_SECONDS", SDK_OPERATION_TIMEOUT.as_secs()..=3600)
            })?),
            digest_settle: Duration::from_secs(
                v.or_default(|v| v.number("DIGEST_SETTLE_SECONDS", 0..=3600))?,
            ),
            poll_every: v.or_off(
                match v.text("POLL_RATE") {
                    None => Ok(None),
                    Some(rate) => rate_of(&rate)
                        .map(Some)
                        .ok_or_else(|| v.malformed("POLL_RATE", rate)),
                },
                || None,
            ),
            poll_schedules: v.or_default(|v| match v.number("POLL_SCHEDULES", 1..=4)? {
                n @ (1 | 2 | 4) => Ok(n as u32),
                other => Err(v.malformed("POLL_SCHEDULES", other.to_string())),
            })?,
            publish_max_attempts: v.or_default(|v| v.number("PUBLISH_MAX_ATTEMPTS", 1..=100))?
                as u32,
            metrics_namespace: v.or_default(|v| v.required("METRICS_NAMESPACE", is_namespace))?,
            metrics: v.or_default(|v| match v.text("METRICS").unwrap_or_default() {
                m if m.eq_ignore_ascii_case("lean") => Ok(MetricSet::Lean),
                m if m.eq_ignore_ascii_case("full") => Ok(MetricSet::Full),
                other => Err(v.malformed("METRICS", other)),
            })?,
            label_tags,
            watch: {
                let text = v.text("WATCH").unwrap_or_default();
                v.or_off(
                    Watch::parse(&text).ok_or_else(|| v.malformed("WATCH", text)),
                    Watch::nothing,
                )
            },
            discovery: v.or_off(
                match v.text("DISCOVERY").unwrap_or_default() {
                    d if d.eq_ignore_ascii_case("off") => Ok(Discovery::Off),
                    d if d.eq_ignore_ascii_case("all") => Ok(Discovery::All),
                    d if d.len() <= 63 => Ok(Discovery::NameContains(d)),
                    other => Err(v.malformed("DISCOVERY", other)),
                },
                || Discovery::Off,
            ),
            discovery_regions: v.or_off(
                v.list("DISCOVERY_REGIONS", |r| {
                    crate::domain::partition_of(r).is_some()
                }),
                Vec::new,
            ),
            member_accounts: {
                let mut ids = v.or_off(v.list("MEMBER_ACCOUNTS", is_account_id), Vec::new);
                ids.sort();
                ids
            },
            member_role_name: v.or_default(|v| v.required("MEMBER_ROLE_NAME", is_role_name))?,
            warnings,
            output_buckets: v.or_off(v.list("OUTPUT_BUCKETS", is_bucket_name), Vec::new),
            record_errors_max_bytes: v
                .or_default(|v| v.number("RECORD_ERRORS_MAX_BYTES", 0..=MAX_RECORD_ERRORS_BYTES))?,
            record_errors_timeout: RECORD_ERRORS_TIMEOUT,
            environment: v.or_default(|v| v.required("ENVIRONMENT", is_environment))?,
            slack: slack_topic.zip(slack_policy),
            prices: v.or_off(
                match v.text("PRICES") {
                    None => Ok(PriceBook::built_in()),
                    Some(text) => PriceBook::with_overrides(&text)
                        .map_err(|e| v.malformed("PRICES", format!("{text}: {e}"))),
                },
                PriceBook::built_in,
            ),
            log_level: v.or_default(|v| {
                match v
                    .text("LOG_LEVEL")
                    .unwrap_or_default()
                    .to_ascii_uppercase()
                    .as_str()
                {
                    "TRACE" => Ok(LevelFilter::TRACE),
                    "DEBUG" => Ok(LevelFilter::DEBUG),
                    "INFO" => Ok(LevelFilter::INFO),
                    "WARN" => Ok(LevelFilter::WARN),
                    "ERROR" => Ok(LevelFilter::ERROR),
                    _ => Err(v.malformed("LOG_LEVEL", v.text("LOG_LEVEL").unwrap_or_default())),
                }
            })?,
            unusable: Vec::new(),
        };
        Ok(Self {
            unusable: v.unusable.into_inner(),
            ..config
        })
    }
}

/// The interval of an EventBridge rate expression, `rate(<n> <unit>)`
/// (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#rate-based).
fn rate_of(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (n, unit) = inner.trim().split_once(' ')?;
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit = match (n, unit.trim()) {
        (1, "minute") | (2.., "minutes") => 60,
        (1, "hour") | (2.., "hours") => 3_600,
        (1, "day") | (2.., "days") => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

/// Up to 128 characters: the template's default is the stack name, which
/// CloudFormation allows that long (the `Environment` parameter takes 64).
fn is_environment(env: &str) -> bool {
    (1..=128).contains(&env.len())
        && env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An AWS account id: 12 digits.
pub fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM role name (IAM's CreateRole: `[\w+=,.@-]+`, 1 to 64 characters,
/// https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_namespace(ns: &str) -> bool {
    ns.len() <= 255
        && !ns.starts_with("AWS/")
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#:".contains(c))
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
    use std::collections::BTreeMap;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:bedrock-batch-alerts";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    /// The configuration with `name` set to `value` beside the required
    /// settings, and the one warning that value gives.
    fn unusable(name: &str, value: &str) -> (Config, SettingWarning) {
        let c = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC), (name, value)])
            .unwrap_or_else(|e| panic!("{name}={value} stopped the function: {e}"));
        assert_eq!(c.unusable.len(), 1, "{name}={value}: {:?}", c.unusable);
        let w = c.unusable[0].clone();
        assert_eq!(w.setting, name);
        assert!(
            w.error.starts_with(&format!("{name} is malformed")),
            "{}",
            w.error
        );
        (c, w)
    }

    #[test]
    fn every_default_should_be_usable() {
        let c = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)]).unwrap();
        assert!(c.unusable.is_empty(), "{:?}", c.unusable);
    }

    #[test]
    fn only_the_table_and_the_topic_should_stop_the_function() {
        for s in SETTINGS {
            let stops = s.if_unusable == STOPS;
            assert_eq!(
                stops,
                matches!(s.name, "TABLE_NAME" | "TOPIC_ARN"),
                "{}",
                s.name
            );
            if stops {
                continue;
            }
            // A value no setting can use: every other setting goes on.
            let (_, w) = unusable(s.name, &format!("\u{1}{}", "x".repeat(300)));
            assert_eq!(w.instead, s.if_unusable);
        }
    }

    #[test]
    fn an_unusable_optional_setting_should_turn_its_feature_off_not_on() {
        let (c, _) = unusable("PRICES", "{not json");
        assert_eq!(c.prices, PriceBook::built_in());
        let (c, _) = unusable("OUTPUT_BUCKETS", "s3://my-output");
        assert!(c.output_buckets.is_empty());
        let (c, _) = unusable("DISCOVERY_REGIONS", "us-west-2,mars-1");
        assert!(c.discovery_regions.is_empty());
        // A member list it cannot read: this account alone, not some of the list.
        let (c, w) = unusable("MEMBER_ACCOUNTS", "111122223333,4444");
        assert!(c.member_accounts.is_empty());
        assert!(w.instead.contains("AccountNotMember"), "{}", w.instead);
        let (c, _) = unusable("MEMBER_ROLE_NAME", "has spaces");
        assert_eq!(c.member_role_name, DEFAULT_MEMBER_ROLE_NAME);
        let (c, _) = unusable("DISCOVERY", &"x".repeat(64));
        assert_eq!(c.discovery, Discovery::Off);
        let (c, _) = unusable("WARN_EXPIRY_WITHIN", "6 hours");
        assert_eq!(c.warnings.expiry_within, None);
        assert_eq!(c.warnings.queued_after, Thresholds::default().queued_after);
        let (c, _) = unusable("WARN_ERROR_MIN_RECORDS", "many");
        assert_eq!(c.warnings.error_rate, None);
        let (c, _) = unusable("LABEL_TAGS", "a,b,c,d");
        assert!(c.label_tags.is_empty());
        let (c, _) = unusable("MAX_CONCURRENCY", "0");
        assert_eq!(c.max_concurrency, 32);
        let (c, _) = unusable("ENVIRONMENT", "has spaces");
        assert_eq!(c.environment, DEFAULT_ENVIRONMENT);
        // WATCH: nothing new is taken in, rather than every team's jobs.
        let (c, w) = unusable("WATCH", "owner:ana");
        assert!(!c.watch.is_all() && !c.watch.has_tag_terms());
        let tags = BTreeMap::from([("team".to_owned(), "search".to_owned())]);
        assert!(!c.watch.by_name(Some("search-1")) && !c.watch.admits(Some("x"), &tags));
        assert!(w.instead.contains("NotWatched"), "{}", w.instead);
        // A Slack policy it cannot evaluate: nothing goes to Slack, rather than everything.
        let mut vars = vec![("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)];
        vars.push(("SLACK_TOPIC_ARN", TOPIC));
        vars.push(("SLACK_FILTER_POLICY", r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#));
        let c = config(&vars).unwrap();
        assert!(c.slack.is_none());
        assert_eq!(c.unusable[0].setting, "SLACK_FILTER_POLICY");
        assert!(c.unusable[0].error.contains("cidr"), "{:?}", c.unusable);
        assert_eq!(c.unusable[0].instead, SLACK_OFF);
    }

    #[test]
    fn member_accounts_should_be_read_sorted_and_once_each() {
        let c = config(&[
            ("TABLE_NAME", "jobs"),
            ("TOPIC_ARN", TOPIC),
            ("MEMBER_ACCOUNTS", "444455556666, 111122223333,444455556666"),
            ("MEMBER_ROLE_NAME", "monitor-reader@org"),
        ])
        .unwrap();
        assert_eq!(c.member_accounts, ["111122223333", "444455556666"]);
        assert_eq!(c.member_role_name, "monitor-reader@org");
        assert!(c.unusable.is_empty(), "{:?}", c.unusable);
    }

    #[test]
    fn when_only_required_settings_are_given_should_use_documented_defaults() {
        let c = config(&[("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)]).unwrap();
        assert_eq!(c.max_concurrency, 32);
        assert_eq!(c.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.not_found_limit, 3);
        assert_eq!(c.deadline_margin, Duration::from_secs(5));
        assert_eq!(c.claim_duration, Duration::from_secs(60));
        assert_eq!(c.digest_settle, Duration::from_secs(300));
        assert_eq!(c.label_tags, ["team"]);
        assert_eq!(c.publish_max_attempts, 5);
        assert_eq!(c.metrics_namespace, "BedrockBatchMonitor");
        assert_eq!(c.discovery, Discovery::Off);
        assert_eq!(c.bedrock_max_rps, 20);
        assert_eq!(c.bulk_read_min, Some(2));
        assert!(c.discovery_regions.is_empty() && c.output_buckets.is_empty());
        assert!(c.member_accounts.is_empty());
        assert_eq!(c.member_role_name, "bedrock-batch-monitor-reader");
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
        assert!(c.unusable.is_empty());
        for (name, value) in [
            ("DISCOVERY_REGIONS", "us-west-2,mars-1"),
            ("WARN_EXPIRY_WITHIN", "6 hours"),
            ("WARN_ERROR_RATE", "5%"),
            ("OUTPUT_BUCKETS", "s3://my-output"),
        ] {
            unusable(name, value);
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
        assert!(c.label_tags.is_empty() && c.unusable.is_empty());
        let (c, _) = unusable("LABEL_TAGS", "status");
        assert!(c.label_tags.is_empty());
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
        let (c, w) = unusable("METRICS", "some");
        assert_eq!(c.metrics, MetricSet::Lean);
        assert!(
            w.error.starts_with("METRICS is malformed (\"some\")"),
            "{w:?}"
        );
    }

    #[test]
    fn the_slack_topic_gets_the_default_policy_and_a_bad_policy_is_named() {
        let base = [("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)];
        assert!(config(&base).unwrap().slack.is_none());
        let mut vars = base.to_vec();
        vars.push(("SLACK_TOPIC_ARN", TOPIC));
        let (topic, policy) = config(&vars).unwrap().slack.unwrap();
        assert_eq!(topic, TOPIC);
        assert_eq!(
            policy,
            FilterPolicy::parse_setting(DEFAULT_SLACK_FILTER_POLICY).unwrap()
        );
        let (_, w) = unusable("SLACK_FILTER_POLICY", r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#);
        assert!(w.error.contains("cidr"), "{w:?}");
    }

    #[test]
    fn watch_should_read_name_and_tag_terms_and_refuse_anything_else() {
        let base = [("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)];
        assert!(config(&base).unwrap().watch.is_all());
        let with = |v| {
            let mut vars = base.to_vec();
            vars.push(("WATCH", v));
            config(&vars)
        };
        let w = with("name:search-, tag:team=search").unwrap().watch;
        assert_eq!(
            w.terms,
            [
                WatchTerm::NamePrefix("search-".into()),
                WatchTerm::Tag("team".into(), "search".into())
            ]
        );
        assert_eq!(w.text(), "name:search-,tag:team=search");
        let tags = BTreeMap::from([("team".to_owned(), "search".to_owned())]);
        assert!(w.by_name(Some("search-index")) && !w.by_name(Some("ads")));
        assert!(w.admits(Some("ads"), &tags) && !w.admits(Some("ads"), &BTreeMap::new()));
        for bad in ["search-", "name:", "tag:team", "tag:=x", "owner:ana"] {
            let (c, _) = unusable("WATCH", bad);
            assert_eq!(c.watch, Watch::nothing(), "{bad}");
        }
    }

    #[test]
    fn log_level_should_default_to_info_and_name_a_bad_value() {
        let base = [("TABLE_NAME", "jobs"), ("TOPIC_ARN", TOPIC)];
        assert_eq!(config(&base).unwrap().log_level, LevelFilter::INFO);
        let with = |v| {
            let mut vars = base.to_vec();
            vars.push(("LOG_LEVEL", v));
            config(&vars)
        };
        assert_eq!(with("warn").unwrap().log_level, LevelFilter::WARN);
        assert_eq!(with("ERROR").unwrap().log_level, LevelFilter::ERROR);
        assert_eq!(with("TRACE").unwrap().log_level, LevelFilter::TRACE);
        let (c, w) = unusable("LOG_LEVEL", "verbose");
        assert_eq!(c.log_level, LevelFilter::INFO);
        assert!(
            w.error.starts_with("LOG_LEVEL is malformed (\"verbose\")"),
            "{w:?}"
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
        let (c, w) = unusable("MAX_CONCURRENCY", "0");
        assert_eq!(c.max_concurrency, 32);
        assert!(
            w.error.starts_with("MAX_CONCURRENCY is malformed (\"0\")"),
            "{w:?}"
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
    fn when_the_deadline_margin_leaves_no_time_to_answer_should_take_the_default() {
        let (c, w) = unusable("DEADLINE_MARGIN_MS", "0");
        assert_eq!(c.deadline_margin, Duration::from_secs(5));
        assert!(
            w.error
                .starts_with("DEADLINE_MARGIN_MS is malformed (\"0\")"),
            "{w:?}"
        );
    }

    #[test]
    fn when_the_claim_is_shorter_than_the_publish_timeout_should_take_the_default() {
        let (c, w) = unusable("CLAIM_SECONDS", "29");
        assert_eq!(c.claim_duration, Duration::from_secs(60));
        assert!(
            w.error.starts_with("CLAIM_SECONDS is malformed (\"29\")")
                && w.error.contains("publish"),
            "{w:?}"
        );
    }
}
