//! [`JobStore`] over aws-sdk-dynamodb: one item per job, keyed by `jobArn`.
//!
//! A transition, its history entry and its pending notification are one
//! conditional `UpdateItem` on `version`. `pollShard` exists only while the job
//! needs work, so the sparse index [`WORK_INDEX`] lists the work and nothing else.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;

use super::aws_smithy_error_chain;
use crate::domain::{
    HistoryEntry, JobArn, JobSnapshot, JobStatus, Pending, RecordCounts, StoredJob, Transition,
};
use crate::ports::{ItemError, JobStore, Page, Record, StoreError, Write};

/// The sparse global secondary index on `pollShard` (see template.yaml).
pub const WORK_INDEX: &str = "work-index";
/// Shard values `0..POLL_SHARDS`; a deployment can later split polling by shard.
pub const POLL_SHARDS: u32 = 4;

// Attribute names.
const ARN: &str = "jobArn";
const STATUS: &str = "status";
const VERSION: &str = "version";
const HISTORY: &str = "history";
const OUTBOX: &str = "outbox";
const SHARD: &str = "pollShard";
const EXPIRES: &str = "expiresAt";
const NOT_FOUND: &str = "notFoundCount";
const GONE: &str = "gone";
const LABELS: &str = "labels";
const TRACKED_AT: &str = "trackedAt";
const TRANSITION: &str = "transition";
const CLAIMED_UNTIL: &str = "claimedUntil";

/// Snapshot fields besides the key and the status, in item order.
const SNAPSHOT_FIELDS: [&str; 9] = [
    "jobName",
    "modelId",
    "message",
    "submitTime",
    "lastModifiedTime",
    "endTime",
    "records",
    "inputS3Uri",
    "outputS3Uri",
];

pub struct DynamoJobStore {
    client: Client,
    table: String,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

/// Which work shard a job lives in: a stable hash of its ARN (FNV-1a).
pub fn shard_of(arn: &JobArn) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in arn.as_str().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % POLL_SHARDS
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn ts(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
fn opt_s(v: Option<&str>) -> AttributeValue {
    v.map_or(AttributeValue::Null(true), s)
}

fn snapshot_values(j: &JobSnapshot) -> [(&'static str, Option<AttributeValue>); 9] {
    let records = j.records.filter(|r| !r.is_empty()).map(|r| {
        let mut m = HashMap::new();
        for (k, v) in [
            ("total", r.total),
            ("processed", r.processed),
            ("success", r.success),
            ("error", r.error),
        ] {
            if let Some(v) = v {
                m.insert(k.to_owned(), n(v));
            }
        }
        AttributeValue::M(m)
    });
    let vals = [
        j.job_name.as_deref().map(s),
        j.model_id.as_deref().map(s),
        j.message.as_deref().map(s),
        j.submit_time.map(ts),
        j.last_modified_time.map(ts),
        j.end_time.map(ts),
        records,
        j.input_s3_uri.as_deref().map(s),
        j.output_s3_uri.as_deref().map(s),
    ];
    let mut out: [(&'static str, Option<AttributeValue>); 9] = Default::default();
    for (i, v) in vals.into_iter().enumerate() {
        out[i] = (SNAPSHOT_FIELDS[i], v);
    }
    out
}

fn history_value(h: &HistoryEntry) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        (
            "from".to_owned(),
            opt_s(h.from.as_ref().map(JobStatus::as_str)),
        ),
        ("to".to_owned(), s(h.to.as_str())),
        ("at".to_owned(), ts(h.at)),
        ("message".to_owned(), opt_s(h.message.as_deref())),
    ]))
}

fn pending_value(t: &Transition) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_string(t)
        .map_err(|e| StoreError::Other(format!("cannot encode notification: {e}")))?;
    Ok(AttributeValue::M(HashMap::from([(
        TRANSITION.to_owned(),
        s(json),
    )])))
}

fn labels_value(labels: &BTreeMap<String, String>) -> AttributeValue {
    AttributeValue::M(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), s(v.as_str())))
            .collect(),
    )
}

/// Maps an SDK error; `None` for a failed condition (the caller's `Write::Lost`).
fn classify<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E>,
    table: &str,
) -> Option<StoreError> {
    let code = e.code().unwrap_or_default().to_owned();
    let text = match e.message() {
        Some(m) => format!("{code}: {m}"),
        None => aws_smithy_error_chain(&e),
    };
    Some(match (&e, code.as_str()) {
        (_, "ConditionalCheckFailedException") => return None,
        (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
            StoreError::Unreachable(text)
        }
        (_, "ResourceNotFoundException") => {
            StoreError::Unreachable(format!("table {table} not found ({text})"))
        }
        (
            _,
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException",
        ) => StoreError::AccessDenied(text),
        (
            _,
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled(text),
        _ => StoreError::Other(text),
    })
}

fn write_result<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
    r: Result<T, SdkError<E>>,
    table: &str,
) -> Result<Write, StoreError> {
    match r {
        Ok(_) => Ok(Write::Done),
        Err(e) => match classify(e, table) {
            None => Ok(Write::Lost),
            Some(err) => Err(err),
        },
    }
}

fn fail<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: SdkError<E>,
    table: &str,
) -> StoreError {
    classify(e, table).unwrap_or_else(|| StoreError::Other("unexpected condition failure".into()))
}

/// Builds expression attribute names `#a0, #a1, ...` for the names used.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn of(&mut self, name: &str) -> String {
        let i = self.0.iter().position(|n| n == name).unwrap_or_else(|| {
            self.0.push(name.to_owned());
            self.0.len() - 1
        });
        format!("#a{i}")
    }
    fn into_map(self) -> HashMap<String, String> {
        self.0
            .into_iter()
            .enumerate()
            .map(|(i, n)| (format!("#a{i}"), n))
            .collect()
    }
}

impl JobStore for DynamoJobStore {
    fn list_active(&self, rotation: u32) -> impl Stream<Item = Result<Page, StoreError>> + Send {
        // One Query page per step: shard after shard, each to its last page.
        struct Cursor {
            shards: std::vec::IntoIter<u32>,
            shard: Option<u32>,
            start: Option<HashMap<String, AttributeValue>>,
            done: bool,
        }
        let order: Vec<u32> = (0..POLL_SHARDS)
            .map(|i| (i + rotation) % POLL_SHARDS)
            .collect();
        let cursor = Cursor {
            shards: order.into_iter(),
            shard: None,
            start: None,
            done: false,
        };
        futures::stream::unfold(cursor, move |mut c| async move {
            if c.done {
                return None;
            }
            let shard = match c.shard {
                Some(s) => s,
                None => *c.shard.insert(c.shards.next()?),
            };
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(WORK_INDEX)
                .key_condition_expression("#s = :s")
                .expression_attribute_names("#s", SHARD)
                .expression_attribute_values(":s", n(shard))
                .set_exclusive_start_key(c.start.take())
                .send()
                .await;
            match page {
                Ok(out) => {
                    c.start = out.last_evaluated_key.filter(|k| !k.is_empty());
                    if c.start.is_none() {
                        c.shard = None;
                    }
                    let items = out
                        .items
                        .unwrap_or_default()
                        .into_iter()
                        .map(parse_item)
                        .collect();
                    Some((Ok(items), c))
                }
                Err(e) => {
                    c.done = true;
                    Some((Err(fail(e, &self.table)), c))
                }
            }
        })
    }

    async fn get(&self, arn: &JobArn) -> Result<Option<StoredJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        match out.item {
            None => Ok(None),
            Some(item) => parse_item(item)
                .map(Some)
                .map_err(|e| StoreError::Other(e.to_string())),
        }
    }

    async fn create(&self, first: &Transition) -> Result<Write, StoreError> {
        let j = &first.job;
        let mut item: HashMap<String, AttributeValue> = HashMap::from([
            (ARN.to_owned(), s(j.job_arn.as_str())),
            (STATUS.to_owned(), s(j.status.as_str())),
            (VERSION.to_owned(), n(first.version)),
            (
                HISTORY.to_owned(),
                AttributeValue::L(vec![history_value(&first.history_entry())]),
            ),
            (
                OUTBOX.to_owned(),
                AttributeValue::M(HashMap::from([(first.id.clone(), pending_value(first)?)])),
            ),
            (SHARD.to_owned(), n(shard_of(&j.job_arn))),
            (NOT_FOUND.to_owned(), n(0)),
            (GONE.to_owned(), AttributeValue::Bool(false)),
            (LABELS.to_owned(), labels_value(&first.labels)),
            (TRACKED_AT.to_owned(), ts(first.observed_at)),
        ]);
        for (name, value) in snapshot_values(j) {
            if let Some(v) = value {
                item.insert(name.to_owned(), v);
            }
        }
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", ARN)
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn record(&self, change: Record<'_>) -> Result<Write, StoreError> {
        let t = change.transition;
        let mut names = Names::default();
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut set = vec![
            format!("{} = :status", names.of(STATUS)),
            format!("{} = :version", names.of(VERSION)),
            format!(
                "{h} = list_append(if_not_exists({h}, :empty), :history)",
                h = names.of(HISTORY)
            ),
            format!("{}.{} = :pending", names.of(OUTBOX), names.of(&t.id)),
            format!("{} = :zero", names.of(NOT_FOUND)),
            format!("{} = :gone", names.of(GONE)),
        ];
        values.insert(":status".into(), s(t.job.status.as_str()));
        values.insert(":version".into(), n(t.version));
        values.insert(":expected".into(), n(change.expected_version));
        values.insert(":empty".into(), AttributeValue::L(vec![]));
        values.insert(
            ":history".into(),
            AttributeValue::L(vec![history_value(&t.history_entry())]),
        );
        values.insert(":pending".into(), pending_value(t)?);
        values.insert(":zero".into(), n(0));
        values.insert(":gone".into(), AttributeValue::Bool(change.gone));
        let mut remove = Vec::new();
        for (i, (name, value)) in snapshot_values(&t.job).into_iter().enumerate() {
            match value {
                Some(v) => {
                    set.push(format!("{} = :f{i}", names.of(name)));
                    values.insert(format!(":f{i}"), v);
                }
                None => remove.push(names.of(name)),
            }
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let condition = format!("{} = :expected", names.of(VERSION));
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(t.job.job_arn.as_str()))
            .update_expression(expr)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names.into_map()))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn set_not_found_count(
        &self,
        arn: &JobArn,
        expected_version: u64,
        count: u32,
    ) -> Result<Write, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .update_expression("SET #nf = :n")
            .condition_expression("#v = :v")
            .expression_attribute_names("#nf", NOT_FOUND)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":n", n(count))
            .expression_attribute_values(":v", n(expected_version))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn claim(
        &self,
        arn: &JobArn,
        transition_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Write, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .update_expression("SET #o.#t.#c = :until")
            .condition_expression(
                "attribute_exists(#o.#t) AND (attribute_not_exists(#o.#t.#c) OR #o.#t.#c < :now)",
            )
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#t", transition_id)
            .expression_attribute_names("#c", CLAIMED_UNTIL)
            .expression_attribute_values(":until", n(until.timestamp_millis()))
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn release(&self, arn: &JobArn, transition_id: &str) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .update_expression("REMOVE #o.#t.#c")
            .condition_expression("attribute_exists(#o.#t)")
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#t", transition_id)
            .expression_attribute_names("#c", CLAIMED_UNTIL)
            .send()
            .await;
        write_result(r, &self.table).map(|_| ())
    }

    async fn complete(
        &self,
        arn: &JobArn,
        transition_id: &str,
    ) -> Result<Option<StoredJob>, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .update_expression("REMOVE #o.#t")
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#t", transition_id)
            .expression_attribute_names("#k", ARN)
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => Ok(out.attributes.and_then(|a| parse_item(a).ok())),
            Err(e) => match classify(e, &self.table) {
                None => Ok(None), // untracked meanwhile
                Some(err) => Err(err),
            },
        }
    }

    async fn retire(
        &self,
        arn: &JobArn,
        expected_version: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<Write, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .update_expression("REMOVE #s SET #e = :e")
            .condition_expression("#v = :v")
            .expression_attribute_names("#s", SHARD)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":e", n(expires_at.timestamp()))
            .expression_attribute_values(":v", n(expected_version))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn delete(&self, arn: &JobArn) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(ARN, s(arn.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// Reads one item; anything that is not ours is an [`ItemError`], never a panic.
pub fn parse_item(item: HashMap<String, AttributeValue>) -> Result<StoredJob, ItemError> {
    let key = match item.get(ARN) {
        Some(AttributeValue::S(k)) => k.clone(),
        Some(other) => format!("<jobArn of type {}>", type_name(other)),
        None => "<no jobArn>".to_owned(),
    };
    let err = |reason: String| ItemError {
        key: key.clone(),
        reason,
    };
    let job_arn: JobArn = key
        .parse()
        .map_err(|e: crate::domain::ArnError| err(e.to_string()))?;
    let get_s = |name: &str| -> Result<Option<String>, ItemError> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(other) => Err(err(format!(
                "{name} is a {}, expected a string",
                type_name(other)
            ))),
        }
    };
    let get_time = |name: &str| -> Result<Option<DateTime<Utc>>, ItemError> {
        get_s(name)?
            .map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| err(format!("{name} is not an RFC 3339 time ({v:?}): {e}")))
            })
            .transpose()
    };
    let get_n = |name: &str| -> Result<Option<i64>, ItemError> {
        match item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| err(format!("{name} is not a whole number ({v:?})"))),
            Some(other) => Err(err(format!(
                "{name} is a {}, expected a number",
                type_name(other)
            ))),
        }
    };
    let status = get_s(STATUS)?.ok_or_else(|| err("no status".into()))?;
    let version = get_n(VERSION)?.ok_or_else(|| err("no version".into()))?;
    let version = u64::try_from(version).map_err(|_| err(format!("negative version {version}")))?;

    let records = match item.get("records") {
        None | Some(AttributeValue::Null(_)) => None,
        Some(AttributeValue::M(m)) => {
            let f = |k: &str| {
                m.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse().ok())
            };
            Some(RecordCounts {
                total: f("total"),
                processed: f("processed"),
                success: f("success"),
                error: f("error"),
            })
        }
        Some(other) => {
            return Err(err(format!(
                "records is a {}, expected a map",
                type_name(other)
            )));
        }
    };

    let mut history = Vec::new();
    match item.get(HISTORY) {
        None => {}
        Some(AttributeValue::L(list)) => {
            for (i, h) in list.iter().enumerate() {
                let m = h
                    .as_m()
                    .map_err(|_| err(format!("history[{i}] is not a map")))?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                let to = text("to").ok_or_else(|| err(format!("history[{i}] has no \"to\"")))?;
                let at = text("at")
                    .and_then(|a| DateTime::parse_from_rfc3339(&a).ok())
                    .ok_or_else(|| err(format!("history[{i}] has no readable \"at\"")))?;
                history.push(HistoryEntry {
                    from: text("from").map(|f| JobStatus::parse(&f)),
                    to: JobStatus::parse(&to),
                    at: at.with_timezone(&Utc),
                    message: text("message"),
                });
            }
        }
        Some(other) => {
            return Err(err(format!(
                "history is a {}, expected a list",
                type_name(other)
            )));
        }
    }

    let mut outbox = Vec::new();
    match item.get(OUTBOX) {
        None => {}
        Some(AttributeValue::M(m)) => {
            for (id, entry) in m {
                let e = entry
                    .as_m()
                    .map_err(|_| err(format!("outbox entry {id} is not a map")))?;
                let json = e
                    .get(TRANSITION)
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| err(format!("outbox entry {id} has no transition")))?;
                let transition: Transition = serde_json::from_str(json)
                    .map_err(|x| err(format!("outbox entry {id} is unreadable: {x}")))?;
                let claimed_until = e
                    .get(CLAIMED_UNTIL)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .and_then(DateTime::from_timestamp_millis);
                outbox.push(Pending {
                    transition,
                    claimed_until,
                });
            }
        }
        Some(other) => {
            return Err(err(format!(
                "outbox is a {}, expected a map",
                type_name(other)
            )));
        }
    }

    let labels = match item.get(LABELS) {
        Some(AttributeValue::M(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
            .collect(),
        _ => BTreeMap::new(),
    };

    Ok(StoredJob {
        snapshot: JobSnapshot {
            job_arn,
            job_name: get_s("jobName")?,
            model_id: get_s("modelId")?,
            status: JobStatus::parse(&status),
            message: get_s("message")?,
            submit_time: get_time("submitTime")?,
            last_modified_time: get_time("lastModifiedTime")?,
            end_time: get_time("endTime")?,
            records,
            input_s3_uri: get_s("inputS3Uri")?,
            output_s3_uri: get_s("outputS3Uri")?,
        },
        version,
        history,
        outbox,
        not_found_count: get_n(NOT_FOUND)?.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        gone: matches!(item.get(GONE), Some(AttributeValue::Bool(true))),
        active: item.contains_key(SHARD),
        labels,
    })
}

fn type_name(v: &AttributeValue) -> &'static str {
    match v {
        AttributeValue::S(_) => "string",
        AttributeValue::N(_) => "number",
        AttributeValue::B(_) => "binary",
        AttributeValue::Bool(_) => "boolean",
        AttributeValue::Null(_) => "null",
        AttributeValue::M(_) => "map",
        AttributeValue::L(_) => "list",
        AttributeValue::Ss(_) => "string set",
        AttributeValue::Ns(_) => "number set",
        AttributeValue::Bs(_) => "binary set",
        _ => "value of an unknown type",
    }
}
