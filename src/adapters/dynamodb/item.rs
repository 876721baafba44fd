//! One job's item: its attribute names, how a [`StoredJob`] is read from an
//! item (anything that is not ours is an [`ItemError`], never a panic) and how
//! its parts are written.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{
    Delivery, EndedJob, HistoryEntry, JobArn, JobSnapshot, JobStatus, Pending, Progress,
    RecordCounts, RecordErrors, Routed, SetAside, StoredJob, TOPIC, TokenTotals, Transition,
    WarningKind, WorkEntry,
};
use crate::ports::{ItemError, StoreError};

pub(super) const ARN: &str = "jobArn";
pub(super) const STATUS: &str = "status";
pub(super) const VERSION: &str = "version";
pub(super) const HISTORY: &str = "history";
pub(super) const OUTBOX: &str = "outbox";
pub(super) const SHARD: &str = "pollShard";
pub(super) const EXPIRES: &str = "expiresAt";
pub(super) const NOT_FOUND: &str = "notFoundCount";
pub(super) const GONE: &str = "gone";
pub(super) const LABELS: &str = "labels";
pub(super) const TRACKED_AT: &str = "trackedAt";
pub(super) const UNTRACKED_AT: &str = "untrackedAt";
pub(super) const UNDELIVERABLE: &str = "undeliverable";
/// Which routes each notification went to (`describe`'s `routedTo`).
pub(super) const ROUTED: &str = "routedTo";
pub(super) const WARNED: &str = "warned";
pub(super) const PROGRESS_COUNT: &str = "progressCount";
pub(super) const PROGRESS_SINCE: &str = "progressSince";
pub(super) const RECORDS: &str = "records";
/// The reading before `progressCount`/`progressSince`, for the rate (not in
/// the work index: only a whole job's reader needs it).
pub(super) const RATE_FROM_COUNT: &str = "rateFromCount";
pub(super) const RATE_FROM_AT: &str = "rateFromAt";
/// Bedrock's token totals, written with the job's end when known.
pub(super) const TOKENS: &str = "tokens";
/// The records' own errors, inside `records` (see `Reader::record_errors`).
pub(super) const RECORD_ERRORS: &str = "errors";
/// The model inside `tokens`.
const MODEL_ID: &str = "modelId";
/// The index of ends' keys: present only on a job whose end (or loss) is
/// recorded, `endedIn` the one partition ([`ENDED_PARTITION`]), `endedAt`
/// when the end was recorded.
pub(super) const ENDED_IN: &str = "endedIn";
pub(super) const ENDED_AT: &str = "endedAt";
pub(super) const ENDED_PARTITION: &str = "ended";
// Inside an outbox entry.
pub(super) const TRANSITION: &str = "transition";
pub(super) const CLAIMED_UNTIL: &str = "claimedUntil";
pub(super) const CLAIMED_BY: &str = "claimedBy";
/// The job topic's refusals and last error keep their first names; another
/// destination's are `attempts@slack`, `lastError@slack` ([`delivery_attr`]).
pub(super) const ATTEMPTS: &str = "attempts";
pub(super) const LAST_ERROR: &str = "lastError";
/// The destinations done with an entry (accepted, or set aside): a string set.
pub(super) const DELIVERED: &str = "delivered";

/// The name of one destination's attribute in an outbox entry: the job
/// topic's is the bare `base` (as items before destinations had it).
pub(super) fn delivery_attr(base: &str, destination: &str) -> String {
    if destination == TOPIC {
        base.to_owned()
    } else {
        format!("{base}@{destination}")
    }
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
pub(super) fn ts(t: DateTime<Utc>) -> AttributeValue {
    s(t.to_rfc3339_opts(SecondsFormat::Millis, true))
}
fn opt_s(v: Option<&str>) -> AttributeValue {
    v.map_or(AttributeValue::Null(true), s)
}

/// One field of a job's snapshot in its item: its attribute name, how it is
/// written (`None`: Bedrock did not give it, so it is removed) and how it is
/// read back. The one table of the snapshot's fields besides the key and the
/// status: the writes and the item reader both go through it.
pub(super) struct SnapshotField {
    pub name: &'static str,
    pub write: fn(&JobSnapshot) -> Option<AttributeValue>,
    read: fn(&Reader<'_>, &mut JobSnapshot, &'static str) -> Result<(), ItemError>,
}

pub(super) const SNAPSHOT_FIELDS: [SnapshotField; 10] = [
    SnapshotField {
        name: "jobName",
        write: |j| j.job_name.as_deref().map(s),
        read: |r, j, name| {
            j.job_name = r.string(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "modelId",
        write: |j| j.model_id.as_deref().map(s),
        read: |r, j, name| {
            j.model_id = r.string(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "message",
        write: |j| j.message.as_deref().map(s),
        read: |r, j, name| {
            j.message = r.string(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "submitTime",
        write: |j| j.submit_time.map(ts),
        read: |r, j, name| {
            j.submit_time = r.time(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "lastModifiedTime",
        write: |j| j.last_modified_time.map(ts),
        read: |r, j, name| {
            j.last_modified_time = r.time(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "endTime",
        write: |j| j.end_time.map(ts),
        read: |r, j, name| {
            j.end_time = r.time(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: RECORDS,
        write: |j| j.records.filter(|r| !r.is_empty()).map(records_value),
        read: |r, j, _| {
            j.records = r.records()?;
            Ok(())
        },
    },
    SnapshotField {
        name: "inputS3Uri",
        write: |j| j.input_s3_uri.as_deref().map(s),
        read: |r, j, name| {
            j.input_s3_uri = r.string(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "outputS3Uri",
        write: |j| j.output_s3_uri.as_deref().map(s),
        read: |r, j, name| {
            j.output_s3_uri = r.string(name)?;
            Ok(())
        },
    },
    SnapshotField {
        name: "jobExpirationTime",
        write: |j| j.job_expiration_time.map(ts),
        read: |r, j, name| {
            j.job_expiration_time = r.time(name)?;
            Ok(())
        },
    },
];

/// Token totals, with the model that used them: the index of ends projects
/// `tokens` (not `modelId`), and `list` and the digest price an ended job
/// from what that index holds.
pub(super) fn tokens_value(t: TokenTotals, model_id: Option<&str>) -> AttributeValue {
    let mut m = HashMap::from([
        ("input".to_owned(), n(t.input)),
        ("output".to_owned(), n(t.output)),
    ]);
    if let Some(model) = model_id {
        m.insert(MODEL_ID.to_owned(), AttributeValue::S(model.to_owned()));
    }
    AttributeValue::M(m)
}

/// `records` with the records' own errors kept inside (JSON text).
pub(super) fn records_with_errors(r: Option<RecordCounts>, e: &RecordErrors) -> AttributeValue {
    let mut m = match r.map(records_value) {
        Some(AttributeValue::M(m)) => m,
        _ => HashMap::new(),
    };
    if let Ok(text) = serde_json::to_string(e) {
        m.insert(RECORD_ERRORS.to_owned(), s(&text));
    }
    AttributeValue::M(m)
}

pub(super) fn records_value(r: RecordCounts) -> AttributeValue {
    let counts = [
        ("total", r.total),
        ("processed", r.processed),
        ("success", r.success),
        ("error", r.error),
    ];
    AttributeValue::M(
        counts
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), n(v))))
            .collect(),
    )
}

pub(super) fn history_value(h: &HistoryEntry) -> AttributeValue {
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

/// A new outbox entry: the notification as JSON, unclaimed.
pub(super) fn pending_value(t: &Transition) -> Result<AttributeValue, StoreError> {
    let json = serde_json::to_string(t)
        .map_err(|e| StoreError::other(format!("cannot encode notification {}: {e}", t.id)))?;
    Ok(AttributeValue::M(HashMap::from([(
        TRANSITION.to_owned(),
        s(json),
    )])))
}

pub(super) fn labels_value(labels: &BTreeMap<String, String>) -> AttributeValue {
    AttributeValue::M(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), s(v.as_str())))
            .collect(),
    )
}

pub(super) fn routed_value(r: &Routed) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("transitionId".to_owned(), s(r.transition_id.as_str())),
        ("status".to_owned(), s(r.status.as_str())),
        ("event".to_owned(), s(r.event.as_str())),
        ("routes".to_owned(), AttributeValue::Ss(r.routes.clone())),
        ("at".to_owned(), ts(r.at)),
    ]))
}

pub(super) fn set_aside_value(e: &SetAside) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("transitionId".to_owned(), s(e.transition_id.as_str())),
        ("status".to_owned(), s(e.status.as_str())),
        (
            "previousStatus".to_owned(),
            opt_s(e.previous_status.as_ref().map(JobStatus::as_str)),
        ),
        ("destination".to_owned(), s(e.destination.as_str())),
        ("error".to_owned(), s(e.error.as_str())),
        ("attempts".to_owned(), n(e.attempts)),
        ("setAsideAt".to_owned(), ts(e.set_aside_at)),
    ]))
}

pub(super) fn type_name(v: &AttributeValue) -> &'static str {
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

/// The item's key as found, for error reports.
pub(super) fn key_of(item: &HashMap<String, AttributeValue>) -> String {
    match item.get(ARN) {
        Some(AttributeValue::S(k)) => k.clone(),
        Some(other) => format!("<jobArn of type {}>", type_name(other)),
        None => "<no jobArn>".to_owned(),
    }
}

/// Reads attributes of one item, each failure naming the item and the attribute.
pub(super) struct Reader<'a> {
    item: &'a HashMap<String, AttributeValue>,
    key: String,
}

impl Reader<'_> {
    fn err(&self, reason: String) -> ItemError {
        ItemError {
            key: self.key.clone(),
            reason,
        }
    }

    fn wrong_type(&self, name: &str, v: &AttributeValue, expected: &str) -> ItemError {
        self.err(format!("{name} is a {}, expected {expected}", type_name(v)))
    }

    fn string(&self, name: &str) -> Result<Option<String>, ItemError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.wrong_type(name, other, "a string")),
        }
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ItemError> {
        self.string(name)?
            .map(|v| {
                DateTime::parse_from_rfc3339(&v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| self.err(format!("{name} is not an RFC 3339 time ({v:?}): {e}")))
            })
            .transpose()
    }

    fn number(&self, name: &str) -> Result<Option<i64>, ItemError> {
        match self.item.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.err(format!("{name} is not a whole number ({v:?})"))),
            Some(other) => Err(self.wrong_type(name, other, "a number")),
        }
    }

    fn arn(&self) -> Result<JobArn, ItemError> {
        self.key
            .parse()
            .map_err(|e: crate::domain::ArnError| self.err(e.to_string()))
    }

    fn status(&self) -> Result<JobStatus, ItemError> {
        let status = self
            .string(STATUS)?
            .ok_or_else(|| self.err("no status".into()))?;
        Ok(JobStatus::parse(&status))
    }

    fn version(&self) -> Result<u64, ItemError> {
        let v = self
            .number(VERSION)?
            .ok_or_else(|| self.err("no version".into()))?;
        u64::try_from(v).map_err(|_| self.err(format!("negative version {v}")))
    }

    fn records(&self) -> Result<Option<RecordCounts>, ItemError> {
        match self.item.get(RECORDS) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::M(m)) => {
                let count = |k: &str| {
                    m.get(k)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                };
                Ok(Some(RecordCounts {
                    total: count("total"),
                    processed: count("processed"),
                    success: count("success"),
                    error: count("error"),
                }))
            }
            Some(other) => Err(self.wrong_type("records", other, "a map")),
        }
    }

    fn snapshot(&self) -> Result<JobSnapshot, ItemError> {
        let mut j = JobSnapshot {
            job_arn: self.arn()?,
            job_name: None,
            model_id: None,
            status: self.status()?,
            message: None,
            submit_time: None,
            last_modified_time: None,
            end_time: None,
            records: None,
            input_s3_uri: None,
            output_s3_uri: None,
            job_expiration_time: None,
        };
        for field in &SNAPSHOT_FIELDS {
            (field.read)(self, &mut j, field.name)?;
        }
        Ok(j)
    }

    fn list(&self, name: &str) -> Result<&[AttributeValue], ItemError> {
        match self.item.get(name) {
            None => Ok(&[]),
            Some(AttributeValue::L(list)) => Ok(list),
            Some(other) => Err(self.wrong_type(name, other, "a list")),
        }
    }

    fn history(&self) -> Result<Vec<HistoryEntry>, ItemError> {
        self.list(HISTORY)?
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let m = h
                    .as_m()
                    .map_err(|_| self.err(format!("history[{i}] is not a map")))?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                let to =
                    text("to").ok_or_else(|| self.err(format!("history[{i}] has no \"to\"")))?;
                let at = text("at")
                    .and_then(|a| DateTime::parse_from_rfc3339(&a).ok())
                    .ok_or_else(|| self.err(format!("history[{i}] has no readable \"at\"")))?;
                Ok(HistoryEntry {
                    from: text("from").map(|f| JobStatus::parse(&f)),
                    to: JobStatus::parse(&to),
                    at: at.with_timezone(&Utc),
                    message: text("message"),
                })
            })
            .collect()
    }

    fn outbox(&self) -> Result<Vec<Pending>, ItemError> {
        let entries = match self.item.get(OUTBOX) {
            None => return Ok(Vec::new()),
            Some(AttributeValue::M(m)) => m,
            Some(other) => return Err(self.wrong_type(OUTBOX, other, "a map")),
        };
        entries
            .iter()
            .map(|(id, entry)| {
                let e = entry
                    .as_m()
                    .map_err(|_| self.err(format!("outbox entry {id} is not a map")))?;
                let json = e
                    .get(TRANSITION)
                    .and_then(|v| v.as_s().ok())
                    .ok_or_else(|| self.err(format!("outbox entry {id} has no transition")))?;
                let transition: Transition = serde_json::from_str(json)
                    .map_err(|x| self.err(format!("outbox entry {id} is unreadable: {x}")))?;
                let number = |k: &str| {
                    e.get(k)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse::<i64>().ok())
                };
                let done: Vec<String> = match e.get(DELIVERED) {
                    Some(AttributeValue::Ss(d)) => d.clone(),
                    _ => Vec::new(),
                };
                // Each destination named by a state of its own, or done.
                let mut deliveries = BTreeMap::new();
                for key in e.keys() {
                    let destination = match key.as_str() {
                        ATTEMPTS | LAST_ERROR => TOPIC,
                        k => match k.split_once('@') {
                            Some((ATTEMPTS | LAST_ERROR, d)) => d,
                            _ => continue,
                        },
                    };
                    deliveries.insert(destination.to_owned(), Delivery::default());
                }
                for d in &done {
                    deliveries.insert(d.clone(), Delivery::default());
                }
                for (destination, delivery) in deliveries.iter_mut() {
                    delivery.done = done.contains(destination);
                    delivery.attempts = number(&delivery_attr(ATTEMPTS, destination))
                        .map_or(0, |a| a.clamp(0, i64::from(u32::MAX)) as u32);
                    delivery.last_error = e
                        .get(&delivery_attr(LAST_ERROR, destination))
                        .and_then(|v| v.as_s().ok())
                        .cloned();
                }
                Ok(Pending {
                    transition,
                    claimed_until: number(CLAIMED_UNTIL).and_then(DateTime::from_timestamp_millis),
                    claimed_by: e.get(CLAIMED_BY).and_then(|v| v.as_s().ok()).cloned(),
                    deliveries,
                })
            })
            .collect()
    }

    /// Warning kinds sent: a string set; kinds this version does not know are skipped.
    fn warned(&self) -> Result<Vec<WarningKind>, ItemError> {
        match self.item.get(WARNED) {
            None | Some(AttributeValue::Null(_)) => Ok(Vec::new()),
            Some(AttributeValue::Ss(kinds)) => {
                let mut out: Vec<WarningKind> =
                    kinds.iter().filter_map(|k| WarningKind::parse(k)).collect();
                out.sort();
                Ok(out)
            }
            Some(other) => Err(self.wrong_type(WARNED, other, "a string set")),
        }
    }

    fn progress(&self) -> Result<Option<Progress>, ItemError> {
        self.reading(PROGRESS_COUNT, PROGRESS_SINCE)
    }

    fn reading(&self, count: &str, at: &str) -> Result<Option<Progress>, ItemError> {
        Ok(match (self.number(count)?, self.time(at)?) {
            (Some(processed), Some(since)) => Some(Progress { processed, since }),
            _ => None,
        })
    }

    /// Token totals: a map of two numbers; anything else is ignored (they are
    /// only shown, never decided on).
    fn tokens(&self) -> Option<TokenTotals> {
        let m = self.item.get(TOKENS)?.as_m().ok()?;
        let num = |k: &str| m.get(k)?.as_n().ok()?.parse::<i64>().ok();
        Some(TokenTotals {
            input: num("input")?,
            output: num("output")?,
        })
    }

    /// The records' own errors, kept as JSON text inside `records` (as
    /// [`RECORD_ERRORS`]): the index of ends projects `records` already, so
    /// the digest shows them without a new projection (a GSI's projection
    /// cannot change in place). Unreadable text is ignored: they are only shown.
    fn record_errors(&self) -> Option<RecordErrors> {
        let m = self.item.get(RECORDS)?.as_m().ok()?;
        serde_json::from_str(m.get(RECORD_ERRORS)?.as_s().ok()?).ok()
    }

    /// The model kept with the token totals (ends recorded before it was kept
    /// have none).
    fn tokens_model(&self) -> Option<String> {
        let m = self.item.get(TOKENS)?.as_m().ok()?;
        m.get(MODEL_ID)?.as_s().ok().cloned()
    }

    fn labels(&self) -> BTreeMap<String, String> {
        match self.item.get(LABELS) {
            Some(AttributeValue::M(m)) => m
                .iter()
                .filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// Which routes each notification went to; an entry this version
    /// cannot read is left out (it only ever informs `describe`).
    fn routed(&self) -> Vec<Routed> {
        let Some(AttributeValue::L(entries)) = self.item.get(ROUTED) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|v| {
                let m = v.as_m().ok()?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(Routed {
                    transition_id: text("transitionId")?,
                    status: JobStatus::parse(&text("status")?),
                    event: serde_json::from_value(serde_json::Value::String(text("event")?))
                        .ok()?,
                    routes: m.get("routes").and_then(|v| v.as_ss().ok()).cloned()?,
                    at: text("at")
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc))?,
                })
            })
            .collect()
    }

    fn undeliverable(&self) -> Result<Vec<SetAside>, ItemError> {
        self.list(UNDELIVERABLE)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let bad = || self.err(format!("{UNDELIVERABLE}[{i}] is not readable"));
                let m = v.as_m().map_err(|_| bad())?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                Ok(SetAside {
                    transition_id: text("transitionId").ok_or_else(bad)?,
                    status: JobStatus::parse(&text("status").ok_or_else(bad)?),
                    previous_status: text("previousStatus").map(|p| JobStatus::parse(&p)),
                    destination: text("destination").unwrap_or_else(|| TOPIC.to_owned()),
                    error: text("error").unwrap_or_default(),
                    attempts: m
                        .get("attempts")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    set_aside_at: text("setAsideAt")
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc))
                        .ok_or_else(bad)?,
                })
            })
            .collect()
    }
}

impl TryFrom<&HashMap<String, AttributeValue>> for StoredJob {
    type Error = ItemError;

    fn try_from(item: &HashMap<String, AttributeValue>) -> Result<Self, ItemError> {
        let r = Reader {
            item,
            key: key_of(item),
        };
        Ok(StoredJob {
            snapshot: r.snapshot()?,
            version: r.version()?,
            history: r.history()?,
            outbox: r.outbox()?,
            not_found_count: r
                .number(NOT_FOUND)?
                .unwrap_or(0)
                .clamp(0, i64::from(u32::MAX)) as u32,
            gone: matches!(item.get(GONE), Some(AttributeValue::Bool(true))),
            active: item.contains_key(SHARD),
            labels: r.labels(),
            untracked_at: r.time(UNTRACKED_AT)?,
            undeliverable: r.undeliverable()?,
            warned: r.warned()?,
            progress: r.progress()?,
            rate_from: r.reading(RATE_FROM_COUNT, RATE_FROM_AT)?,
            tokens: r.tokens(),
            ended_at: r.time(ENDED_AT)?,
            record_errors: r.record_errors(),
            routed: r.routed(),
        })
    }
}

/// A work index item: the attributes the index projects (`WORK_INDEX_ATTRIBUTES`).
impl TryFrom<&HashMap<String, AttributeValue>> for WorkEntry {
    type Error = ItemError;

    fn try_from(item: &HashMap<String, AttributeValue>) -> Result<Self, ItemError> {
        let r = Reader {
            item,
            key: key_of(item),
        };
        Ok(WorkEntry {
            job_arn: r.arn()?,
            status: r.status()?,
            version: r.version()?,
            submit_time: r.time("submitTime")?,
            not_found_count: r
                .number(NOT_FOUND)?
                .unwrap_or(0)
                .clamp(0, i64::from(u32::MAX)) as u32,
            gone: matches!(item.get(GONE), Some(AttributeValue::Bool(true))),
            untracked_at: r.time(UNTRACKED_AT)?,
            outbox: r.outbox()?,
            warned: r.warned()?,
            progress: r.progress()?,
        })
    }
}

/// An item of the index of ends: the attributes it projects
/// (`ENDED_INDEX_ATTRIBUTES`).
impl TryFrom<&HashMap<String, AttributeValue>> for EndedJob {
    type Error = ItemError;

    fn try_from(item: &HashMap<String, AttributeValue>) -> Result<Self, ItemError> {
        let r = Reader {
            item,
            key: key_of(item),
        };
        Ok(EndedJob {
            job_arn: r.arn()?,
            job_name: r.string("jobName")?,
            status: r.status()?,
            ended_at: r
                .time(ENDED_AT)?
                .ok_or_else(|| r.err(format!("no {ENDED_AT}")))?,
            message: r.string("message")?,
            submit_time: r.time("submitTime")?,
            last_modified_time: r.time("lastModifiedTime")?,
            records: r.records()?,
            labels: r.labels(),
            tokens: r.tokens(),
            model_id: r.tokens_model(),
            record_errors: r.record_errors(),
            gone: matches!(item.get(GONE), Some(AttributeValue::Bool(true))),
        })
    }
}
