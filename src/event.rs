//! Incoming event -> [`Command`]: the function is routed by the event's shape.

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{ArnError, JobArn};

pub const SCHEDULED_EVENT: &str = "Scheduled Event";
pub const JOB_STATE_CHANGE: &str = "Batch Inference Job State Change";

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// One poll cycle over every job that still needs work, or (with
    /// `{"poll": {"shards": [..]}}`) over the work in those shards only.
    Poll(Option<Vec<u32>>),
    /// Bedrock's native state-change event: reconcile this job now.
    Reconcile(StateChange),
    /// Start tracking; each item is validated on its own, and a bad one is
    /// that item's error, not the request's.
    Track(Vec<Result<TrackRequest, RejectedItem>>),
    /// Stop tracking; each item is validated on its own.
    Untrack(Vec<Result<String, RejectedItem>>),
    /// The stored state and status history of one job.
    Describe(String),
    /// The tracked jobs, from the table only.
    List(ListRequest),
    /// Publish the digest: what runs, what ended since the last one, the
    /// warnings still open and the monitor's own health.
    Digest,
    /// CloudFormation's request for a custom resource the function serves
    /// (`Custom::SettingsCheck`, ...); answered at its `ResponseURL`.
    CustomResource(Box<crate::custom_resource::Request>),
    /// Stop one tracked job (the Slack channel's Stop job button, through
    /// the function's `stop` alias): `{"stop": "<jobArn>"}` or
    /// `{"stop": {"jobArn": "<jobArn>"}}`.
    Stop(StopRequest),
    /// The notification routes (the stack's Slack channel, the teams'
    /// routes) with their policy, topic, stack and deliveries: `{"routes": {}}`.
    Routes,
}

/// `{"stop": ...}`: the job, as the caller named it (checked by the monitor,
/// so that a bad reference is an answer saying why, like `describe`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRequest {
    pub reference: String,
}

/// `{"list": {...}}`: which tracked jobs, and which page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// Any of these statuses; every status when empty.
    pub status: Vec<String>,
    /// All of these labels.
    pub labels: BTreeMap<String, String>,
    /// Jobs of any of these accounts (12-digit ids, as the job's ARN names
    /// them); every account when empty.
    pub accounts: Vec<String>,
    /// Also the ended jobs the table still keeps.
    pub ended: bool,
    pub limit: usize,
    /// Where the previous page stopped.
    pub next: Option<ListToken>,
    /// When the listing's first page was read (carried by its tokens): the
    /// ended part shows only the ends recorded by then, so a job that ends
    /// between two pages is not shown twice (running, then ended).
    pub as_of: Option<DateTime<Utc>>,
}

/// At most this many jobs in one `list` answer.
pub const MAX_LIST_LIMIT: usize = 100;
/// The page size when `limit` is not given.
pub const DEFAULT_LIST_LIMIT: usize = 50;

/// The place in `list`'s order a page ended at. The jobs that have not
/// ended come first, newest submitted first, then by ARN:
/// `<submitTime>|<jobArn>`, the time empty for a job without one. Then, with
/// `ended`, the ended jobs, latest end first: `ended|<endedAt>|<jobArn>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListToken {
    Running {
        submit_time: Option<DateTime<Utc>>,
        job_arn: String,
    },
    /// In the ended jobs, after this end (`None`: from the latest end).
    Ended {
        after: Option<(DateTime<Utc>, JobArn)>,
    },
}

impl ListToken {
    pub fn encode(&self) -> String {
        let iso = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        match self {
            Self::Running {
                submit_time,
                job_arn,
            } => format!(
                "{}|{job_arn}",
                submit_time.as_ref().map_or(String::new(), iso)
            ),
            Self::Ended { after: None } => "ended|".to_owned(),
            Self::Ended {
                after: Some((ended_at, job_arn)),
            } => format!("ended|{}|{job_arn}", iso(ended_at)),
        }
    }

    /// The token as a `next` carries it: `<token>#<as of>`, the time the
    /// listing's first page was read.
    pub fn encode_as_of(&self, as_of: DateTime<Utc>) -> String {
        format!(
            "{}#{}",
            self.encode(),
            as_of.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    }

    /// A `next` split into its token and its time (tokens from before the
    /// time was carried have none); `None` when the time is unreadable.
    pub fn split_as_of(s: &str) -> Option<(&str, Option<DateTime<Utc>>)> {
        match s.rsplit_once('#') {
            None => Some((s, None)),
            Some((token, at)) => {
                let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
                Some((token, Some(at)))
            }
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let time = |t: &str| {
            DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        if let Some(rest) = s.strip_prefix("ended|") {
            if rest.is_empty() {
                return Some(Self::Ended { after: None });
            }
            let (at, arn) = rest.split_once('|')?;
            return Some(Self::Ended {
                after: Some((time(at)?, arn.parse().ok()?)),
            });
        }
        let (at, arn) = s.split_once('|')?;
        let submit_time = if at.is_empty() { None } else { Some(time(at)?) };
        let job_arn: JobArn = arn.parse().ok()?;
        Some(Self::Running {
            submit_time,
            job_arn: job_arn.to_string(),
        })
    }
}

impl Command {
    /// The command's name in metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Poll(_) => "Poll",
            Self::Reconcile(_) => "Reconcile",
            Self::Track(_) => "Track",
            Self::Untrack(_) => "Untrack",
            Self::Describe(_) => "Describe",
            Self::List(_) => "List",
            Self::Digest => "Digest",
            Self::CustomResource(_) => "CustomResource",
            Self::Stop(_) => "Stop",
            Self::Routes => "Routes",
        }
    }
}

/// A job to track, as the caller named it, with labels for subscribers' filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackRequest {
    pub reference: String,
    pub labels: BTreeMap<String, String>,
}

/// At most this many items in one `track` or `untrack` request: each costs a
/// Bedrock call and a few table writes, and the answer must come well inside
/// the function's timeout.
pub const MAX_ITEMS_PER_REQUEST: usize = 100;

/// One item of a `track` or `untrack` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (item {item})")]
pub struct RejectedItem {
    /// The item as given (shortened), or its job reference when it has one.
    pub item: String,
    pub reason: ItemRejection,
}

/// Why one item of a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemRejection {
    #[error(
        "each item of \"track\" must be a job ARN or id string, or a {{\"jobArn\", \"labels\"}} object"
    )]
    NotATrackItem,
    #[error("each object in \"track\" needs a \"jobArn\" string")]
    NoJobArn,
    #[error("\"labels\" must be an object of strings")]
    LabelsNotAnObject,
    #[error("label {0:?} must be a string")]
    LabelNotAString(String),
    #[error(transparent)]
    Label(#[from] crate::labels::LabelError),
    #[error("unknown field {0:?} in a \"track\" object (expected jobArn, labels)")]
    UnknownField(String),
    #[error("each item of \"untrack\" must be a job ARN string")]
    NotAString,
}

/// The parts of Bedrock's native event the monitor uses. The state it reports is
/// only a hint: the job's state is read back from GetModelInvocationJob.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub job_arn: JobArn,
    pub status: Option<String>,
    /// The event's `time`, when it could be read (it is not ISO-8601).
    pub time: Option<DateTime<Utc>>,
}

/// An event the function does not accept. Nothing is written for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(
        "unrecognized event {received}: expected a scheduled event, a Bedrock \"Batch Inference Job State Change\" event, \
         {{}}, {{\"poll\": {{}}}}, {{\"track\": [...]}}, {{\"untrack\": [...]}}, {{\"describe\": \"<job ARN>\"}}, \
         {{\"list\": {{}}}}, {{\"digest\": {{}}}}, {{\"routes\": {{}}}} or a CloudFormation custom resource request"
    )]
    Unrecognized { received: String },
    #[error("malformed {command:?} event: {reason} (received {received})")]
    Malformed {
        command: &'static str,
        reason: String,
        received: String,
    },
    #[error(
        "EventBridge event from {event_source:?} with detail-type {detail_type:?} is not one this function handles"
    )]
    UnsupportedEventBridge {
        event_source: String,
        detail_type: String,
    },
    #[error("CloudFormation custom resource request that cannot be answered: {0}")]
    CustomResource(#[from] crate::custom_resource::RequestError),
    #[error("Bedrock state-change event names no usable job: {0}")]
    BadJobArn(#[from] ArnError),
    #[error(
        "{command:?} names {count} items; at most {MAX_ITEMS_PER_REQUEST} per request: split it into several"
    )]
    TooManyItems { command: &'static str, count: usize },
}

/// A short rendering of what came in, for error messages.
/// `{"shards": [0, 2]}`: distinct shards of the work list, each below
/// [`POLL_SHARDS`](crate::domain::POLL_SHARDS); `{}` is every shard.
fn poll_shards(o: &serde_json::Map<String, Value>) -> Result<Option<Vec<u32>>, String> {
    let expected = format!(
        "\"shards\" takes a non-empty list of distinct shard numbers from 0 to {}",
        crate::domain::POLL_SHARDS - 1
    );
    if let Some(other) = o.keys().find(|k| *k != "shards") {
        return Err(format!(
            "unknown poll option {other:?}: only \"shards\" is known"
        ));
    }
    let Some(v) = o.get("shards") else {
        return Ok(None);
    };
    let list = v.as_array().filter(|l| !l.is_empty()).ok_or(&expected)?;
    let mut shards = Vec::with_capacity(list.len());
    for item in list {
        let shard = item
            .as_u64()
            .filter(|n| *n < u64::from(crate::domain::POLL_SHARDS))
            .ok_or(&expected)? as u32;
        if shards.contains(&shard) {
            return Err(expected);
        }
        shards.push(shard);
    }
    shards.sort_unstable();
    Ok(Some(shards))
}

fn preview(v: &Value) -> String {
    const MAX: usize = 300;
    let s = v.to_string();
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The envelope of Bedrock's native event. Not `EventBridgeEvent`, whose `time`
/// must be ISO-8601: Bedrock sends `"Wed Aug 28 22:58:30 UTC 2024"`.
#[derive(Deserialize)]
struct NativeEnvelope {
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    detail: NativeDetail,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NativeDetail {
    batch_job_arn: Option<String>,
    status: Option<String>,
}

pub fn parse(event: &Value) -> Result<Command, EventError> {
    let Some(obj) = event.as_object() else {
        return Err(EventError::Unrecognized {
            received: preview(event),
        });
    };
    if obj.is_empty() {
        return Ok(Command::Poll(None));
    }
    if obj.contains_key("detail-type") && obj.contains_key("source") {
        return parse_eventbridge(event);
    }
    if crate::custom_resource::is_request(obj) {
        return Ok(Command::CustomResource(Box::new(
            crate::custom_resource::Request::parse(obj)?,
        )));
    }
    let malformed = |command: &'static str, reason: &str| EventError::Malformed {
        command,
        reason: reason.to_owned(),
        received: preview(event),
    };
    // Exactly one command key: {"poll": ...}, {"track": ...}, ...
    let mut keys = obj.iter();
    let (Some((key, value)), None) = (keys.next(), keys.next()) else {
        return Err(EventError::Unrecognized {
            received: preview(event),
        });
    };
    match key.as_str() {
        "poll" => match value {
            Value::Null => Ok(Command::Poll(None)),
            Value::Object(o) => poll_shards(o)
                .map(Command::Poll)
                .map_err(|reason| malformed("poll", &reason)),
            _ => Err(malformed(
                "poll",
                "\"poll\" takes an object: {\"poll\": {}} or {\"poll\": {\"shards\": [0, 1]}}",
            )),
        },
        "track" => {
            let items = string_or_list(value).ok_or_else(|| {
                malformed(
                    "track",
                    "\"track\" takes a non-empty list of job ARNs or ids, or of {\"jobArn\", \"labels\"} objects",
                )
            })?;
            within_limit("track", &items)?;
            Ok(Command::Track(items.iter().map(track_request).collect()))
        }
        "untrack" => {
            let items = string_or_list(value).ok_or_else(|| {
                malformed("untrack", "\"untrack\" takes a non-empty list of job ARNs")
            })?;
            within_limit("untrack", &items)?;
            Ok(Command::Untrack(
                items
                    .iter()
                    .map(|v| {
                        v.as_str().map(str::to_owned).ok_or_else(|| RejectedItem {
                            item: preview(v),
                            reason: ItemRejection::NotAString,
                        })
                    })
                    .collect(),
            ))
        }
        "describe" => value
            .as_str()
            .map(|s| Command::Describe(s.to_owned()))
            .ok_or_else(|| malformed("describe", "\"describe\" takes one job ARN string")),
        "list" => match value {
            Value::Null => list_request(&serde_json::Map::new())
                .map(Command::List)
                .map_err(|reason| malformed("list", &reason)),
            Value::Object(o) => list_request(o)
                .map(Command::List)
                .map_err(|reason| malformed("list", &reason)),
            _ => Err(malformed(
                "list",
                "\"list\" takes an object: {\"list\": {}} or {\"list\": {\"status\": [\"InProgress\"], \"limit\": 50}}",
            )),
        },
        "stop" => stop_request(value)
            .map(Command::Stop)
            .map_err(|reason| malformed("stop", &reason)),
        "routes" => match value {
            Value::Null => Ok(Command::Routes),
            Value::Object(o) if o.is_empty() => Ok(Command::Routes),
            _ => Err(malformed(
                "routes",
                "\"routes\" takes no options: {\"routes\": {}}",
            )),
        },
        "digest" => match value {
            Value::Null => Ok(Command::Digest),
            Value::Object(o) if o.is_empty() => Ok(Command::Digest),
            _ => Err(malformed(
                "digest",
                "\"digest\" takes no options: {\"digest\": {}}",
            )),
        },
        _ => Err(EventError::Unrecognized {
            received: preview(event),
        }),
    }
}

/// `{"stop": "<jobArn>"}` or `{"stop": {"jobArn": "<jobArn>"}}`.
fn stop_request(value: &Value) -> Result<StopRequest, String> {
    const USAGE: &str = "\"stop\" takes one job ARN: {\"stop\": \"<jobArn>\"} or {\"stop\": {\"jobArn\": \"<jobArn>\"}}";
    let reference = match value {
        Value::String(s) => s,
        Value::Object(o) => {
            if let Some(other) = o.keys().find(|k| k.as_str() != "jobArn") {
                return Err(format!("unknown stop option {other:?}: {USAGE}"));
            }
            match o.get("jobArn") {
                Some(Value::String(s)) => s,
                _ => return Err(USAGE.to_owned()),
            }
        }
        _ => return Err(USAGE.to_owned()),
    };
    if reference.trim().is_empty() {
        return Err(USAGE.to_owned());
    }
    Ok(StopRequest {
        reference: reference.clone(),
    })
}

/// The options of `list`; a reason for the first one that is not usable.
fn list_request(o: &serde_json::Map<String, Value>) -> Result<ListRequest, String> {
    const KNOWN: [&str; 6] = ["status", "labels", "accounts", "ended", "limit", "next"];
    if let Some(other) = o.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown list option {other:?}: the options are status, labels, accounts, ended, limit and next"
        ));
    }
    let mut status = Vec::new();
    match o.get("status") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let known = crate::domain::JobStatus::KNOWN;
            let expected = format!(
                "\"status\" takes a list of statuses, any of {}",
                known.join(", ")
            );
            let list = match v {
                Value::String(_) => vec![v.clone()],
                Value::Array(a) if !a.is_empty() => a.clone(),
                _ => return Err(expected),
            };
            for item in list {
                let s = item
                    .as_str()
                    .filter(|s| known.contains(s))
                    .ok_or(&expected)?;
                if !status.iter().any(|x| x == s) {
                    status.push(s.to_owned());
                }
            }
        }
    }
    let mut labels = BTreeMap::new();
    match o.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(l)) => {
            for (k, v) in l {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("label {k:?} must be a string"))?;
                labels.insert(k.clone(), v.to_owned());
            }
        }
        Some(_) => return Err("\"labels\" takes an object of strings".to_owned()),
    }
    let mut accounts: Vec<String> = Vec::new();
    match o.get("accounts") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let expected =
                "\"accounts\" takes a list of 12-digit AWS account ids, such as [\"111122223333\"]";
            let list = match v {
                Value::String(_) => vec![v.clone()],
                Value::Array(a) if !a.is_empty() => a.clone(),
                _ => return Err(expected.to_owned()),
            };
            for item in list {
                let id = item
                    .as_str()
                    .filter(|id| crate::config::is_account_id(id))
                    .ok_or_else(|| format!("{item} is not an AWS account id: {expected}"))?;
                if !accounts.iter().any(|a| a == id) {
                    accounts.push(id.to_owned());
                }
            }
        }
    }
    let ended = match o.get("ended") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("\"ended\" takes true or false".to_owned()),
    };
    let limit = match o.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIST_LIMIT,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_LIST_LIMIT as u64).contains(n))
            .ok_or_else(|| format!("\"limit\" takes a whole number from 1 to {MAX_LIST_LIMIT}"))?
            as usize,
    };
    let bad_token = || {
        "\"next\" is not a token from a previous list answer: pass its \"next\" as it came"
            .to_owned()
    };
    let (next, as_of) = match o.get("next") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(t)) => {
            let (token, as_of) = ListToken::split_as_of(t).ok_or_else(bad_token)?;
            (Some(ListToken::decode(token).ok_or_else(bad_token)?), as_of)
        }
        Some(_) => {
            return Err("\"next\" takes the \"next\" string of the previous answer".to_owned());
        }
    };
    Ok(ListRequest {
        status,
        labels,
        accounts,
        ended,
        limit,
        next,
        as_of,
    })
}

/// A single value is taken as a list of one; an empty list is refused.
fn string_or_list(v: &Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) if !a.is_empty() => Some(a.clone()),
        Value::String(_) | Value::Object(_) => Some(vec![v.clone()]),
        _ => None,
    }
}

fn within_limit(command: &'static str, items: &[Value]) -> Result<(), EventError> {
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(EventError::TooManyItems {
            command,
            count: items.len(),
        });
    }
    Ok(())
}

fn track_request(item: &Value) -> Result<TrackRequest, RejectedItem> {
    let reject = |reason: ItemRejection| RejectedItem {
        item: item
            .get("jobArn")
            .and_then(Value::as_str)
            .map_or_else(|| preview(item), str::to_owned),
        reason,
    };
    match item {
        Value::String(s) => Ok(TrackRequest {
            reference: s.clone(),
            labels: BTreeMap::new(),
        }),
        Value::Object(o) => {
            let reference = o
                .get("jobArn")
                .and_then(Value::as_str)
                .ok_or_else(|| reject(ItemRejection::NoJobArn))?
                .to_owned();
            if let Some(extra) = o.keys().find(|k| *k != "jobArn" && *k != "labels") {
                return Err(reject(ItemRejection::UnknownField(extra.clone())));
            }
            let mut labels = BTreeMap::new();
            match o.get("labels") {
                None | Some(Value::Null) => {}
                Some(Value::Object(l)) => {
                    for (k, v) in l {
                        let v = v
                            .as_str()
                            .ok_or_else(|| reject(ItemRejection::LabelNotAString(k.clone())))?;
                        crate::labels::validate(k, v).map_err(|e| reject(e.into()))?;
                        labels.insert(k.clone(), v.to_owned());
                    }
                    crate::labels::merge(&BTreeMap::new(), &labels)
                        .map_err(|e| reject(e.into()))?;
                }
                Some(_) => return Err(reject(ItemRejection::LabelsNotAnObject)),
            }
            Ok(TrackRequest { reference, labels })
        }
        _ => Err(reject(ItemRejection::NotATrackItem)),
    }
}

fn parse_eventbridge(event: &Value) -> Result<Command, EventError> {
    let detail_type = event["detail-type"].as_str().unwrap_or_default().to_owned();
    let source = event["source"].as_str().unwrap_or_default().to_owned();
    match (detail_type.as_str(), source.as_str()) {
        (SCHEDULED_EVENT, "aws.events" | "aws.scheduler") => {
            // Validate the envelope; the schedule carries nothing else we need.
            serde_json::from_value::<EventBridgeEvent>(event.clone()).map_err(|e| {
                EventError::Malformed {
                    command: "scheduled event",
                    reason: e.to_string(),
                    received: preview(event),
                }
            })?;
            Ok(Command::Poll(None))
        }
        (JOB_STATE_CHANGE, "aws.bedrock") => {
            let env: NativeEnvelope =
                serde_json::from_value(event.clone()).map_err(|e| EventError::Malformed {
                    command: "Batch Inference Job State Change",
                    reason: e.to_string(),
                    received: preview(event),
                })?;
            let arn = env
                .detail
                .batch_job_arn
                .filter(|a| !a.is_empty())
                .or_else(|| env.resources.into_iter().next())
                .unwrap_or_default();
            Ok(Command::Reconcile(StateChange {
                job_arn: arn.parse()?,
                status: env.detail.status,
                time: env.time.as_deref().and_then(parse_lenient_time),
            }))
        }
        _ => Err(EventError::UnsupportedEventBridge {
            event_source: source,
            detail_type,
        }),
    }
}

/// Bedrock's event times come as `Wed Aug 28 22:58:30 UTC 2024` or
/// `Aug 28, 2024, 10:47:53 PM`; ISO-8601 is accepted too.
pub fn parse_lenient_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%a %b %d %H:%M:%S UTC %Y",
        "%b %d, %Y, %I:%M:%S %p",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_accounts_should_take_account_ids_once_each_and_name_a_bad_one() {
        let accounts = |v: Value| match parse(&serde_json::json!({"list": {"accounts": v}})) {
            Ok(Command::List(req)) => Ok(req.accounts),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            accounts(serde_json::json!([
                "111122223333",
                "444455556666",
                "111122223333"
            ])),
            Ok(vec!["111122223333".to_owned(), "444455556666".to_owned()])
        );
        assert_eq!(
            accounts(serde_json::json!("111122223333")),
            Ok(vec!["111122223333".to_owned()])
        );
        for (bad, says) in [
            (
                serde_json::json!(["111122223333", "11112222333"]),
                "\"11112222333\" is not an AWS account id",
            ),
            (
                serde_json::json!(["arn:aws:iam::111122223333:root"]),
                "\"arn:aws:iam::111122223333:root\" is not",
            ),
            (
                serde_json::json!([111122223333_u64]),
                "111122223333 is not an AWS account id",
            ),
            (serde_json::json!([]), "12-digit AWS account ids"),
            (
                serde_json::json!({"id": "111122223333"}),
                "12-digit AWS account ids",
            ),
        ] {
            let err = accounts(bad.clone()).expect_err("refused");
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn list_tokens_should_round_trip_and_refuse_anything_else() {
        let arn: JobArn =
            "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz"
                .parse()
                .unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-30T05:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        for token in [
            ListToken::Running {
                submit_time: Some(at),
                job_arn: arn.to_string(),
            },
            ListToken::Running {
                submit_time: None,
                job_arn: arn.to_string(),
            },
            ListToken::Ended { after: None },
            ListToken::Ended {
                after: Some((at, arn.clone())),
            },
        ] {
            assert_eq!(
                ListToken::decode(&token.encode()),
                Some(token.clone()),
                "{token:?}"
            );
        }
        for bad in ["", "ended", "ended|yesterday|x", "|not an arn", "x|y|z"] {
            assert_eq!(ListToken::decode(bad), None, "{bad:?}");
        }
    }
    use serde_json::json;

    const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz";

    #[test]
    fn when_event_is_empty_or_poll_or_scheduled_should_poll() {
        assert_eq!(parse(&json!({})).unwrap(), Command::Poll(None));
        assert_eq!(parse(&json!({"poll": {}})).unwrap(), Command::Poll(None));
        assert_eq!(
            parse(&json!({"poll": {"shards": [3, 1]}})).unwrap(),
            Command::Poll(Some(vec![1, 3]))
        );
        for bad in [
            json!({"poll": {"shards": []}}),
            json!({"poll": {"shards": [4]}}),
            json!({"poll": {"shards": [1, 1]}}),
            json!({"poll": {"shards": ["0"]}}),
            json!({"poll": {"shards": 0}}),
            json!({"poll": {"shard": [0]}}),
        ] {
            let err = parse(&bad).unwrap_err().to_string();
            assert!(err.starts_with("malformed \"poll\" event"), "{bad}: {err}");
        }
        for source in ["aws.events", "aws.scheduler"] {
            let ev = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": source,
                "account": "123456789012", "time": "2024-08-28T22:58:30Z", "region": "us-east-1",
                "resources": ["arn:aws:events:us-east-1:123456789012:rule/poll"], "detail": {}});
            assert_eq!(parse(&ev).unwrap(), Command::Poll(None), "{source}");
        }
    }

    #[test]
    fn when_native_event_arrives_should_reconcile_its_job_with_lenient_time() {
        let ev = json!({"version":"0","id":"a1b2c3d4","detail-type":"Batch Inference Job State Change",
            "source":"aws.bedrock","account":"123456789012","time":"Wed Aug 28 22:58:30 UTC 2024",
            "region":"us-east-1","resources":[ARN],
            "detail":{"version":"0.0","accountId":"123456789012","batchJobName":"dummy","batchJobArn":ARN,
              "batchModelId":"m","status":"Completed","failureMessage":"","creationTime":"Aug 28, 2024, 10:47:53 PM"}});
        let Command::Reconcile(change) = parse(&ev).unwrap() else {
            panic!("not reconcile")
        };
        assert_eq!(change.job_arn.as_str(), ARN);
        assert_eq!(change.status.as_deref(), Some("Completed"));
        assert_eq!(
            change.time.unwrap().to_rfc3339(),
            "2024-08-28T22:58:30+00:00"
        );
        assert!(parse_lenient_time("Aug 28, 2024, 10:47:53 PM").is_some());
    }

    #[test]
    fn when_native_event_has_a_bad_arn_should_refuse_it() {
        let ev = json!({"detail-type":"Batch Inference Job State Change","source":"aws.bedrock",
            "detail":{"batchJobArn":"arn:aws:bedrock:us-east-1:1:nope"}});
        assert!(matches!(parse(&ev), Err(EventError::BadJobArn(_))));
    }

    #[test]
    fn when_track_lists_arns_and_labelled_objects_should_keep_both() {
        let cmd =
            parse(&json!({"track": [ARN, {"jobArn": ARN, "labels": {"team": "search"}}]})).unwrap();
        let Command::Track(reqs) = cmd else { panic!() };
        assert_eq!(reqs.len(), 2);
        assert!(reqs[0].as_ref().unwrap().labels.is_empty());
        assert_eq!(reqs[1].as_ref().unwrap().labels["team"], "search");
        assert_eq!(
            parse(&json!({"track": ARN})).unwrap(),
            Command::Track(vec![Ok(TrackRequest {
                reference: ARN.into(),
                labels: BTreeMap::new()
            })])
        );
    }

    #[test]
    fn when_one_track_item_is_bad_should_reject_that_item_only() {
        let cmd = parse(&json!({"track": [
            ARN,
            {"jobArn": ARN, "labels": {"status": "x"}},
            {"jobArn": ARN, "labels": {"a": "1", "b": "2", "c": "3", "d": "4"}},
            {"jobArn": ARN, "colour": "red"},
            42,
        ]}))
        .unwrap();
        let Command::Track(items) = cmd else { panic!() };
        assert!(items[0].is_ok());
        let reasons: Vec<String> = items[1..]
            .iter()
            .map(|i| i.as_ref().unwrap_err().to_string())
            .collect();
        assert!(
            reasons[0].contains("reserved") && reasons[0].contains(ARN),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("at most 3 labels"), "{reasons:?}");
        assert!(reasons[2].contains("colour"), "{reasons:?}");
        assert!(reasons[3].contains("(item 42)"), "{reasons:?}");
    }

    #[test]
    fn when_a_request_names_too_many_items_should_refuse_it_saying_the_limit() {
        let arns: Vec<String> = (0..=MAX_ITEMS_PER_REQUEST)
            .map(|_| ARN.to_owned())
            .collect();
        for command in ["track", "untrack"] {
            let err = parse(&json!({ command: arns })).unwrap_err();
            assert_eq!(
                err,
                EventError::TooManyItems {
                    command: if command == "track" {
                        "track"
                    } else {
                        "untrack"
                    },
                    count: MAX_ITEMS_PER_REQUEST + 1
                }
            );
            assert!(err.to_string().contains("at most 100 per request"), "{err}");
        }
        let ok: Vec<String> = arns[..MAX_ITEMS_PER_REQUEST].to_vec();
        assert!(parse(&json!({ "track": ok })).is_ok());
    }

    #[test]
    fn a_cloudformation_request_should_be_a_custom_resource_command() {
        let ev = json!({"RequestType": "Create", "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:f",
            "ResponseURL": "https://example.invalid/r?X-Amz-Signature=s", "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
            "RequestId": "r", "LogicalResourceId": "SettingsCheck", "ResourceType": "Custom::SettingsCheck",
            "ResourceProperties": {"ServiceToken": "arn", "Variables": {"TABLE_NAME": "jobs"}}});
        let Command::CustomResource(r) = parse(&ev).unwrap() else {
            panic!("not a custom resource")
        };
        assert_eq!(r.resource_type, "Custom::SettingsCheck");
        assert_eq!(r.properties["Variables"]["TABLE_NAME"], "jobs");
        // One that cannot be answered is refused as an event.
        let mut bad = ev.clone();
        bad["RequestType"] = json!("Replace");
        let err = parse(&bad).unwrap_err();
        assert!(
            matches!(err, EventError::CustomResource(_)) && err.to_string().contains("Replace"),
            "{err}"
        );
    }

    #[test]
    fn when_event_is_unknown_should_name_what_came_in() {
        for ev in [
            json!({"hello": "world"}),
            json!([1, 2]),
            json!("poll"),
            json!({"poll": {}, "track": []}),
        ] {
            let err = parse(&ev).unwrap_err().to_string();
            assert!(err.contains(&preview(&ev)), "{err}");
        }
        let err = parse(&json!({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {}})).unwrap_err();
        assert!(err.to_string().contains("aws.ec2"), "{err}");
        let err = parse(&json!({"track": []})).unwrap_err();
        assert!(err.to_string().contains("track"), "{err}");
        let err = parse(&json!({"describe": 3})).unwrap_err();
        assert!(err.to_string().contains("describe"), "{err}");
    }

    #[test]
    fn when_a_huge_event_is_refused_should_cut_the_preview_on_a_char_boundary() {
        let ev = json!({"x": "é".repeat(1000)});
        let err = parse(&ev).unwrap_err().to_string();
        assert!(err.len() < 1000);
        assert!(err.contains("..."));
    }

    #[test]
    fn stop_takes_one_job_arn_as_a_string_or_an_object() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz";
        for ev in [json!({"stop": arn}), json!({"stop": {"jobArn": arn}})] {
            assert_eq!(
                parse(&ev).unwrap(),
                Command::Stop(StopRequest {
                    reference: arn.to_owned()
                }),
                "{ev}"
            );
        }
        for ev in [
            json!({"stop": ""}),
            json!({"stop": [arn]}),
            json!({"stop": {"jobArn": arn, "force": true}}),
            json!({"stop": {}}),
        ] {
            let e = parse(&ev).unwrap_err().to_string();
            assert!(
                e.contains("\"stop\" takes one job ARN") || e.contains("unknown stop option"),
                "{ev}: {e}"
            );
        }
    }
}
