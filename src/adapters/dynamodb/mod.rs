//! The job table over aws-sdk-dynamodb: one item per job, keyed by `jobArn`.
//!
//! A transition, its history entry and its pending notification are one
//! conditional `UpdateItem` on `version`. `pollShard` exists only while the job
//! needs work, so the sparse index [`WORK_INDEX`] lists the work and nothing else.
//! Every write is conditional: on the version for the job's state, on the
//! claim's holder for its outbox.

mod item;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use chrono::{DateTime, Utc};

use self::item::*;
use super::{ErrorFacts, facts};
use crate::digest::{DigestMark, Health, SetAsideNote, Window};
use crate::domain::{
    EndedJob, Fresh, JobArn, Progress, RecordCounts, SetAside, StoredJob, Transition, WorkEntry,
    has_ended,
};
use crate::ports::{
    Claim, EndedKey, EndedPage, EndedQuery, Fleet, ItemError, Jobs, ListPosition, Outbox, Record,
    StoreError, Untrack, Watermark, WorkList, WorkPage, Write,
};

/// The sparse global secondary index on `pollShard` (see template.yaml). Its
/// projection changed once, so it has a name of its own (the released
/// definitions are pinned by `tests/released-schema.json`).
pub const WORK_INDEX: &str = "work-index-v2";
/// The attributes the work index projects besides the keys: what a poll needs
/// to decide whether a job needs more than a look (template.yaml must agree;
/// `tests/template.rs` checks it): a listed job is a [`WorkEntry`].
pub const WORK_INDEX_ATTRIBUTES: [&str; 10] = [
    STATUS,
    VERSION,
    "submitTime",
    NOT_FOUND,
    GONE,
    UNTRACKED_AT,
    OUTBOX,
    WARNED,
    PROGRESS_COUNT,
    PROGRESS_SINCE,
];
pub use crate::domain::POLL_SHARDS;
/// The sparse index of ends (see template.yaml): `endedIn` (one partition)
/// and `endedAt`, present only on a job whose end or loss is recorded, so
/// `list` and the digest read the ended jobs latest first, by end time,
/// without reading the ones still running or any history.
pub const ENDED_INDEX: &str = "ended-index";
/// The attributes the index of ends projects besides the keys: what `list`
/// and the digest show of an ended job (template.yaml must agree;
/// `tests/template.rs` checks it).
pub const ENDED_INDEX_ATTRIBUTES: [&str; 9] = [
    STATUS,
    "jobName",
    "message",
    "submitTime",
    "lastModifiedTime",
    RECORDS,
    LABELS,
    TOKENS,
    GONE,
];
/// The key of the item that remembers where the next poll cycle starts. It is
/// not a job ARN and has no `pollShard`, so no listing or job read meets it.
pub const CURSOR_KEY: &str = "control#poll-cursor";
/// The key prefix of discovery's watermarks, one item per region
/// (`control#discovery#us-east-1`): like the cursor, never listed or read as a job.
pub const WATERMARK_KEY_PREFIX: &str = "control#discovery#";
const WATERMARK: &str = "watermark";
const BACKLOG_SINCE: &str = "backlogSince";

/// The cursor of a cycle over `shards`: [`CURSOR_KEY`] for every shard, one
/// item per subset otherwise (`control#poll-cursor#1,3`), so schedules over
/// disjoint shards keep their own place.
fn cursor_key(shards: &[u32]) -> String {
    if shards.len() as u32 == POLL_SHARDS && shards.iter().copied().eq(0..POLL_SHARDS) {
        return CURSOR_KEY.to_owned();
    }
    let list: Vec<String> = shards.iter().map(u32::to_string).collect();
    format!("{CURSOR_KEY}#{}", list.join(","))
}

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

    fn key(arn: &JobArn) -> HashMap<String, AttributeValue> {
        HashMap::from([(ARN.to_owned(), s(arn.as_str()))])
    }

    /// A job read back from a write's `ALL_NEW` answer.
    fn job_after(
        item: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Option<StoredJob>, StoreError> {
        item.map(|a| StoredJob::try_from(&a).map_err(StoreError::from))
            .transpose()
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

/// Maps an SDK error; `None` for a failed condition (the caller's `Write::Lost`).
fn classify<E>(e: SdkError<E>, table: &str) -> Option<StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let ErrorFacts {
        code,
        message,
        dispatch,
        cause,
        ..
    } = facts(e);
    Some(match code.as_str() {
        "ConditionalCheckFailedException" => return None,
        _ if dispatch => StoreError::Unreachable { message, cause },
        "ResourceNotFoundException" => StoreError::Unreachable {
            message: format!("table {table} not found ({message})"),
            cause,
        },
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => StoreError::AccessDenied { message, cause },
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "RequestLimitExceeded" => StoreError::Throttled { message, cause },
        _ => StoreError::Other { message, cause },
    })
}

fn write_result<T, E>(r: Result<T, SdkError<E>>, table: &str) -> Result<Write, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(_) => Ok(Write::Done),
        Err(e) => classify(e, table).map_or(Ok(Write::Lost), Err),
    }
}

fn fail<E>(e: SdkError<E>, table: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    classify(e, table).unwrap_or_else(|| StoreError::other("unexpected condition failure"))
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

/// An `UpdateItem` expression built a clause at a time.
#[derive(Default)]
struct Update {
    names: Names,
    values: HashMap<String, AttributeValue>,
    set: Vec<String>,
    remove: Vec<String>,
    /// `ADD` clauses (adding to a set), written whole.
    add: Vec<String>,
}

impl Update {
    fn name(&mut self, name: &str) -> String {
        self.names.of(name)
    }
    fn value(&mut self, placeholder: &str, v: AttributeValue) -> String {
        self.values.insert(placeholder.to_owned(), v);
        placeholder.to_owned()
    }
    fn set(&mut self, attr: &str, placeholder: &str, v: AttributeValue) {
        let lhs = self.name(attr);
        let rhs = self.value(placeholder, v);
        self.set.push(format!("{lhs} = {rhs}"));
    }
    fn remove(&mut self, attr: &str) {
        let n = self.name(attr);
        self.remove.push(n);
    }
    /// The snapshot's fields, and the status: set what Bedrock gave, remove the rest.
    fn snapshot(&mut self, t: &Transition) {
        self.set(STATUS, ":status", s(t.job.status.as_str()));
        for (i, field) in SNAPSHOT_FIELDS.iter().enumerate() {
            match (field.write)(&t.job) {
                Some(v) => self.set(field.name, &format!(":f{i}"), v),
                None => self.remove(field.name),
            }
        }
    }
    /// The history entry and pending notification of `t`, and its version.
    fn transition(&mut self, t: &Transition) -> Result<(), StoreError> {
        self.set(VERSION, ":version", n(t.version));
        let h = self.name(HISTORY);
        self.value(":empty", AttributeValue::L(vec![]));
        self.value(
            ":history",
            AttributeValue::L(vec![history_value(&t.history_entry())]),
        );
        self.set.push(format!(
            "{h} = list_append(if_not_exists({h}, :empty), :history)"
        ));
        let (o, id) = (self.name(OUTBOX), self.name(&t.id));
        let p = self.value(":pending", pending_value(t)?);
        self.set.push(format!("{o}.{id} = {p}"));
        Ok(())
    }
    /// The index of ends' keys: set when `t` ends the job (or records its
    /// loss), removed otherwise.
    fn ended(&mut self, t: &Transition, gone: bool) {
        if has_ended(&t.job.status, gone) {
            self.set(ENDED_IN, ":endedIn", s(ENDED_PARTITION));
            self.set(ENDED_AT, ":endedAt", ts(t.observed_at));
        } else {
            self.remove(ENDED_IN);
            self.remove(ENDED_AT);
        }
    }
    /// Where the rate of a running job is measured from (`None` removes it).
    fn rate_from(&mut self, reading: Option<Progress>) {
        match reading {
            Some(p) => {
                self.set(RATE_FROM_COUNT, ":fromCount", n(p.processed));
                self.set(RATE_FROM_AT, ":fromAt", ts(p.since));
            }
            None => {
                self.remove(RATE_FROM_COUNT);
                self.remove(RATE_FROM_AT);
            }
        }
    }
    fn expression(&self) -> String {
        let mut expr = format!("SET {}", self.set.join(", "));
        if !self.remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            expr.push_str(&format!(" ADD {}", self.add.join(", ")));
        }
        expr
    }
}

impl DynamoJobStore {
    /// Sends `u` on the condition that the stored version is `expected_version`.
    async fn update_on_version(
        &self,
        key: &JobArn,
        mut u: Update,
        expected_version: u64,
    ) -> Result<Write, StoreError> {
        let condition = format!("{} = :expected", u.name(VERSION));
        u.value(":expected", n(expected_version));
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(u.expression())
            .condition_expression(condition)
            .set_expression_attribute_names(Some(u.names.into_map()))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        write_result(r, &self.table)
    }
}

impl Jobs for DynamoJobStore {
    async fn get(&self, arn: &JobArn) -> Result<Option<StoredJob>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        Self::job_after(out.item)
    }

    async fn create(&self, first: &Transition) -> Result<Write, StoreError> {
        self.put_first(first, true).await
    }

    async fn adopt(&self, first: &Transition) -> Result<Write, StoreError> {
        self.put_first(first, false).await
    }

    async fn warn(&self, warning: &Transition, expected_version: u64) -> Result<Write, StoreError> {
        let kind = warning
            .warning
            .as_ref()
            .ok_or_else(|| StoreError::other(format!("{} is not a warning", warning.id)))?
            .kind;
        let mut u = Update::default();
        u.set(VERSION, ":version", n(warning.version));
        let (o, id) = (u.name(OUTBOX), u.name(&warning.id));
        let p = u.value(":pending", pending_value(warning)?);
        u.set.push(format!("{o}.{id} = {p}"));
        let w = u.name(WARNED);
        u.value(":kind", AttributeValue::Ss(vec![kind.as_str().to_owned()]));
        u.add.push(format!("{w} :kind"));
        self.update_on_version(&warning.job.job_arn, u, expected_version)
            .await
    }

    async fn set_progress(
        &self,
        arn: &JobArn,
        basis: Fresh,
        progress: Progress,
        records: RecordCounts,
        previous: Option<Progress>,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(VERSION, ":version", n(basis.version() + 1));
        if let Some(p) = previous {
            u.set(RATE_FROM_COUNT, ":fromCount", n(p.processed));
            u.set(RATE_FROM_AT, ":fromAt", ts(p.since));
        }
        u.set(PROGRESS_COUNT, ":count", n(progress.processed));
        u.set(PROGRESS_SINCE, ":since", ts(progress.since));
        u.set(RECORDS, ":records", records_value(records));
        self.update_on_version(arn, u, basis.version()).await
    }

    async fn rearm(&self, first: &Transition, basis: Fresh) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.snapshot(first);
        u.transition(first)?;
        u.set(NOT_FOUND, ":zero", n(0));
        u.set(GONE, ":gone", AttributeValue::Bool(false));
        u.set(LABELS, ":labels", labels_value(&first.labels));
        u.set(SHARD, ":shard", n(shard_of(&first.job.job_arn)));
        u.set(TRACKED_AT, ":trackedAt", ts(first.observed_at));
        u.remove(EXPIRES);
        u.remove(UNTRACKED_AT);
        u.remove(PROGRESS_COUNT);
        u.remove(PROGRESS_SINCE);
        u.remove(TOKENS);
        u.rate_from(first.entry_reading());
        u.ended(first, false);
        self.update_on_version(&first.job.job_arn, u, basis.version())
            .await
    }

    async fn record(&self, change: Record<'_>) -> Result<Write, StoreError> {
        let t = change.transition;
        let mut u = Update::default();
        u.snapshot(t);
        u.transition(t)?;
        u.set(NOT_FOUND, ":zero", n(0));
        u.set(GONE, ":gone", AttributeValue::Bool(change.gone));
        // A status change resets progress: the next poll of a running job
        // writes its first reading.
        u.remove(PROGRESS_COUNT);
        u.remove(PROGRESS_SINCE);
        u.rate_from(t.entry_reading());
        u.ended(t, change.gone);
        if let Some(tokens) = t.tokens {
            u.set(
                TOKENS,
                ":tokens",
                tokens_value(tokens, t.job.model_id.as_deref()),
            );
        }
        self.update_on_version(&t.job.job_arn, u, change.basis.version())
            .await
    }

    async fn set_labels(
        &self,
        arn: &JobArn,
        labels: &BTreeMap<String, String>,
        expected_version: u64,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(LABELS, ":labels", labels_value(labels));
        u.set(VERSION, ":version", n(expected_version + 1));
        self.update_on_version(arn, u, expected_version).await
    }

    async fn set_not_found_count(
        &self,
        arn: &JobArn,
        expected_version: u64,
        count: u32,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(NOT_FOUND, ":count", n(count));
        self.update_on_version(arn, u, expected_version).await
    }

    async fn retire(
        &self,
        arn: &JobArn,
        expected_version: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(EXPIRES, ":expires", n(expires_at.timestamp()));
        u.remove(SHARD);
        self.update_on_version(arn, u, expected_version).await
    }

    async fn untrack(
        &self,
        arn: &JobArn,
        at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Untrack, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .update_expression(
                "SET #u = :at, #e = :exp, #o = :none, #v = #v + :one REMOVE #s, #ei, #ea",
            )
            .expression_attribute_names("#ei", ENDED_IN)
            .expression_attribute_names("#ea", ENDED_AT)
            .condition_expression("attribute_exists(#k) AND attribute_not_exists(#u)")
            .expression_attribute_names("#k", ARN)
            .expression_attribute_names("#u", UNTRACKED_AT)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_names("#s", SHARD)
            .expression_attribute_values(":at", ts(at))
            .expression_attribute_values(":exp", n(expires_at.timestamp()))
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        Ok(match write_result(r, &self.table)? {
            Write::Done => Untrack::Untracked,
            Write::Lost => Untrack::NotTracked,
        })
    }
}

impl Outbox for DynamoJobStore {
    async fn claim(
        &self,
        arn: &JobArn,
        transition_id: &str,
        claim: &Claim,
    ) -> Result<Write, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .update_expression("SET #o.#t.#c = :until, #o.#t.#b = :token")
            .condition_expression(
                "attribute_exists(#o.#t) AND (attribute_not_exists(#o.#t.#c) OR #o.#t.#c < :now)",
            )
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#t", transition_id)
            .expression_attribute_names("#c", CLAIMED_UNTIL)
            .expression_attribute_names("#b", CLAIMED_BY)
            .expression_attribute_values(":until", n(claim.until.timestamp_millis()))
            .expression_attribute_values(":now", n(claim.now.timestamp_millis()))
            .expression_attribute_values(":token", s(claim.token.as_str()))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn release(
        &self,
        arn: &JobArn,
        transition_id: &str,
        token: &str,
        rejected: Option<&str>,
    ) -> Result<Write, StoreError> {
        let req = self
            .held_entry(arn, transition_id, token)
            .expression_attribute_names("#c", CLAIMED_UNTIL);
        let req = match rejected {
            None => req.update_expression("REMOVE #o.#t.#c, #o.#t.#b"),
            Some(error) => req
                .update_expression(
                    "SET #o.#t.#n = if_not_exists(#o.#t.#n, :zero) + :one, #o.#t.#e = :error \
                     REMOVE #o.#t.#c, #o.#t.#b",
                )
                .expression_attribute_names("#n", ATTEMPTS)
                .expression_attribute_names("#e", LAST_ERROR)
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":error", s(error)),
        };
        write_result(req.send().await, &self.table)
    }

    async fn complete(
        &self,
        arn: &JobArn,
        transition_id: &str,
        token: &str,
    ) -> Result<Option<StoredJob>, StoreError> {
        let req = self
            .held_entry(arn, transition_id, token)
            .update_expression("REMOVE #o.#t");
        self.job_after_held_write(req).await
    }

    async fn set_aside(
        &self,
        arn: &JobArn,
        token: &str,
        entry: &SetAside,
    ) -> Result<Option<StoredJob>, StoreError> {
        let req = self
            .held_entry(arn, &entry.transition_id, token)
            .update_expression(
                "REMOVE #o.#t SET #u = list_append(if_not_exists(#u, :empty), :entry)",
            )
            .expression_attribute_names("#u", UNDELIVERABLE)
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":entry", AttributeValue::L(vec![set_aside_value(entry)]));
        let after = self.job_after_held_write(req).await?;
        if after.is_some() {
            // The day's list of set-aside notifications, which the digest
            // reads instead of every job's item; it expires with the jobs.
            self.note_set_aside(arn, entry).await;
        }
        Ok(after)
    }
}

impl DynamoJobStore {
    /// An update of one outbox entry (`#o.#t`) on the condition that `token`
    /// holds its claim: only the holder releases, completes or sets it aside.
    fn held_entry(
        &self,
        arn: &JobArn,
        transition_id: &str,
        token: &str,
    ) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .condition_expression("#o.#t.#b = :token")
            .expression_attribute_names("#o", OUTBOX)
            .expression_attribute_names("#t", transition_id)
            .expression_attribute_names("#b", CLAIMED_BY)
            .expression_attribute_values(":token", s(token))
    }

    /// Sends a holder's write; the job afterwards, or `None` when the claim was
    /// no longer ours.
    async fn job_after_held_write(
        &self,
        req: UpdateItemFluentBuilder,
    ) -> Result<Option<StoredJob>, StoreError> {
        match req.return_values(ReturnValue::AllNew).send().await {
            Ok(out) => Self::job_after(out.attributes),
            Err(e) => classify(e, &self.table).map_or(Ok(None), Err),
        }
    }
}

impl WorkList for DynamoJobStore {
    fn shards(&self) -> u32 {
        POLL_SHARDS
    }

    async fn work_page(&self, shard: u32, after: Option<&str>) -> Result<WorkPage, StoreError> {
        let start =
            after.map(|a| HashMap::from([(ARN.to_owned(), s(a)), (SHARD.to_owned(), n(shard))]));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(WORK_INDEX)
            .key_condition_expression("#s = :s")
            .expression_attribute_names("#s", SHARD)
            .expression_attribute_values(":s", n(shard))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        let next = out
            .last_evaluated_key
            .as_ref()
            .and_then(|k| k.get(ARN))
            .and_then(|v| v.as_s().ok())
            .cloned();
        let items = out
            .items
            .unwrap_or_default()
            .iter()
            .map(WorkEntry::try_from)
            .collect();
        Ok(WorkPage { items, next })
    }

    async fn load_cursor(&self, shards: &[u32]) -> Result<Option<ListPosition>, StoreError> {
        let Some(item) = self.control_item(cursor_key(shards)).await? else {
            return Ok(None);
        };
        // An unreadable cursor is only a lost hint: start from the beginning.
        let shard = item
            .get("shard")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|s| shards.contains(s));
        Ok(shard.map(|shard| ListPosition {
            shard,
            after: item.get("after").and_then(|v| v.as_s().ok()).cloned(),
        }))
    }

    async fn save_cursor(
        &self,
        shards: &[u32],
        cursor: Option<&ListPosition>,
    ) -> Result<(), StoreError> {
        let Some(c) = cursor else {
            return self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(ARN, s(cursor_key(shards)))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| fail(e, &self.table));
        };
        let mut item = HashMap::from([
            (ARN.to_owned(), s(cursor_key(shards))),
            ("shard".to_owned(), n(c.shard)),
            ("updatedAt".to_owned(), ts(Utc::now())),
        ]);
        if let Some(after) = &c.after {
            item.insert("after".to_owned(), s(after.as_str()));
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(e, &self.table))
    }

    async fn load_watermark(&self, region: &str) -> Result<Watermark, StoreError> {
        let key = format!("{WATERMARK_KEY_PREFIX}{region}");
        let Some(item) = self.control_item(key).await? else {
            return Ok(Watermark::default());
        };
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
            let Some(v) = item.get(name) else {
                return Ok(None);
            };
            let text = v.as_s().ok();
            match text.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
                Some(t) => Ok(Some(t.with_timezone(&Utc))),
                None => Err(StoreError::other(format!(
                    "the discovery {name} of {region} is unreadable ({text:?}); delete the item {WATERMARK_KEY_PREFIX}{region} to start discovery there again"
                ))),
            }
        };
        Ok(Watermark {
            at: time(WATERMARK)?,
            backlog_since: time(BACKLOG_SINCE)?,
        })
    }

    async fn begin_backlog(
        &self,
        region: &str,
        since: DateTime<Utc>,
        previous: &Watermark,
    ) -> Result<Write, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(format!("{WATERMARK_KEY_PREFIX}{region}")))
            .update_expression("SET #b = :since, #u = :now")
            .expression_attribute_names("#b", BACKLOG_SINCE)
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_names("#w", WATERMARK)
            .expression_attribute_values(":since", ts(since))
            .expression_attribute_values(":now", ts(Utc::now()));
        let req = match previous.at {
            None => {
                req.condition_expression("attribute_not_exists(#w) AND attribute_not_exists(#b)")
            }
            Some(p) => req
                .condition_expression("#w = :previous AND attribute_not_exists(#b)")
                .expression_attribute_values(":previous", ts(p)),
        };
        write_result(req.send().await, &self.table)
    }

    async fn save_watermark(
        &self,
        region: &str,
        to: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        // The whole item is replaced: a backlog being taken in ends here.
        let item = HashMap::from([
            (ARN.to_owned(), s(format!("{WATERMARK_KEY_PREFIX}{region}"))),
            (WATERMARK.to_owned(), ts(to)),
            ("updatedAt".to_owned(), ts(Utc::now())),
        ]);
        let req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_names("#w", WATERMARK);
        let req = match previous {
            None => req.condition_expression("attribute_not_exists(#w)"),
            Some(p) => req
                .condition_expression("#w = :previous")
                .expression_attribute_values(":previous", ts(p)),
        };
        write_result(req.send().await, &self.table)
    }
}

impl DynamoJobStore {
    /// One of the monitor's own items (a cursor, a watermark), read consistently.
    async fn control_item(
        &self,
        key: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ARN, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        Ok(out.item)
    }

    /// A new job item with its first observation; with `notify`, its pending
    /// notification too.
    async fn put_first(&self, first: &Transition, notify: bool) -> Result<Write, StoreError> {
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
                AttributeValue::M(if notify {
                    HashMap::from([(first.id.clone(), pending_value(first)?)])
                } else {
                    HashMap::new()
                }),
            ),
            (SHARD.to_owned(), n(shard_of(&j.job_arn))),
            (NOT_FOUND.to_owned(), n(0)),
            (GONE.to_owned(), AttributeValue::Bool(false)),
            (LABELS.to_owned(), labels_value(&first.labels)),
            (TRACKED_AT.to_owned(), ts(first.observed_at)),
        ]);
        for field in &SNAPSHOT_FIELDS {
            if let Some(v) = (field.write)(j) {
                item.insert(field.name.to_owned(), v);
            }
        }
        if let Some(p) = first.entry_reading() {
            item.insert(RATE_FROM_COUNT.to_owned(), n(p.processed));
            item.insert(RATE_FROM_AT.to_owned(), ts(p.since));
        }
        if has_ended(&j.status, false) {
            item.insert(ENDED_IN.to_owned(), s(ENDED_PARTITION));
            item.insert(ENDED_AT.to_owned(), ts(first.observed_at));
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
}

/// The key prefix of the day's set-aside notifications
/// (`control#set-aside#2026-11-30`): one map of notes a day, read by the digest.
const SET_ASIDE_KEY_PREFIX: &str = "control#set-aside#";
const SET_ASIDE_NOTES: &str = "notes";

fn set_aside_key(day: chrono::NaiveDate) -> String {
    format!("{SET_ASIDE_KEY_PREFIX}{day}")
}

fn set_aside_note(v: &AttributeValue) -> Option<SetAsideNote> {
    let m = v.as_m().ok()?;
    let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok());
    Some(SetAsideNote {
        job_arn: text("jobArn")?.parse().ok()?,
        transition_id: text("transitionId")?.clone(),
        status: crate::domain::JobStatus::parse(text("status")?),
        at: DateTime::parse_from_rfc3339(text("setAsideAt")?)
            .ok()?
            .with_timezone(&Utc),
    })
}

impl DynamoJobStore {
    /// Adds a set-aside notification to its day's notes. Best effort: the
    /// job's own item keeps it whatever happens here (describe shows it).
    async fn note_set_aside(&self, arn: &JobArn, entry: &SetAside) {
        let note = AttributeValue::M(HashMap::from([
            ("jobArn".to_owned(), s(arn.as_str())),
            ("transitionId".to_owned(), s(entry.transition_id.as_str())),
            ("status".to_owned(), s(entry.status.as_str())),
            ("setAsideAt".to_owned(), ts(entry.set_aside_at)),
        ]));
        let expires = entry.set_aside_at + chrono::Duration::days(400);
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(set_aside_key(entry.set_aside_at.date_naive())))
            .update_expression("SET #n = if_not_exists(#n, :empty), #e = :expires")
            .expression_attribute_names("#n", SET_ASIDE_NOTES)
            .expression_attribute_names("#e", EXPIRES)
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .expression_attribute_values(":expires", n(expires.timestamp()))
            .send()
            .await;
        let r = match r {
            Ok(_) => self
                .client
                .update_item()
                .table_name(&self.table)
                .key(ARN, s(set_aside_key(entry.set_aside_at.date_naive())))
                .update_expression("SET #n.#t = :note")
                .expression_attribute_names("#n", SET_ASIDE_NOTES)
                .expression_attribute_names("#t", entry.transition_id.as_str())
                .expression_attribute_values(":note", note)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| fail(e, &self.table)),
            Err(e) => Err(fail(e, &self.table)),
        };
        if let Err(e) = r {
            tracing::warn!(job_arn = %arn, transition_id = %entry.transition_id, error_kind = e.kind(), error = %e, "the set-aside notification was not added to the day's notes; the digest will not count it (describe shows it)");
        }
    }
}

/// The key of the monitor's health counts (polls run, failed invocations):
/// like the cursor, never listed or read as a job.
pub const HEALTH_KEY: &str = "control#health";
/// The key of the item that remembers what the last digest covered, and
/// the digest under way (its window and who holds it).
pub const DIGEST_KEY: &str = "control#digest";
const DIGEST_PENDING_ID: &str = "pendingId";
const DIGEST_PENDING_AT: &str = "pendingAt";
const DIGEST_PENDING_SINCE: &str = "pendingSince";
const DIGEST_PENDING_UNTIL: &str = "pendingUntil";
const DIGEST_PENDING_FIRST: &str = "pendingFirst";

impl Fleet for DynamoJobStore {
    async fn jobs_shown(
        &self,
        arns: &[JobArn],
    ) -> Result<Vec<Result<StoredJob, ItemError>>, StoreError> {
        // Everything a StoredJob is read from but its history, outbox and
        // set-aside notifications: what a job shown costs, whatever its past.
        let mut names = Names::default();
        let mut attributes: Vec<&str> = vec![
            ARN,
            STATUS,
            VERSION,
            NOT_FOUND,
            GONE,
            SHARD,
            LABELS,
            UNTRACKED_AT,
            WARNED,
            PROGRESS_COUNT,
            PROGRESS_SINCE,
            RATE_FROM_COUNT,
            RATE_FROM_AT,
            TOKENS,
        ];
        attributes.extend(SNAPSHOT_FIELDS.iter().map(|f| f.name));
        let projection: Vec<String> = attributes.iter().map(|a| names.of(a)).collect();
        let projection = projection.join(", ");
        let names = names.into_map();
        let mut out = Vec::new();
        // BatchGetItem takes at most 100 keys
        // (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html);
        // keys it leaves unprocessed are asked for again, a few times.
        for chunk in arns.chunks(100) {
            let mut keys: Vec<HashMap<String, AttributeValue>> =
                chunk.iter().map(Self::key).collect();
            for attempt in 0..6 {
                if keys.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut keys)))
                    .projection_expression(&projection)
                    .set_expression_attribute_names(Some(names.clone()))
                    .build()
                    .map_err(|e| StoreError::other(format!("batch read: {e}")))?;
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| fail(e, &self.table))?;
                for item in answer
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    out.push(StoredJob::try_from(&item));
                }
                keys = answer
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
            if !keys.is_empty() {
                return Err(StoreError::Throttled {
                    message: format!(
                        "{} jobs left unread by BatchGetItem after retries",
                        keys.len()
                    ),
                    cause: None,
                });
            }
        }
        Ok(out)
    }

    async fn ended_page(&self, query: &EndedQuery) -> Result<EndedPage, StoreError> {
        let req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ENDED_INDEX)
            .expression_attribute_names("#p", ENDED_IN)
            .expression_attribute_values(":p", s(ENDED_PARTITION))
            // Latest end first.
            .scan_index_forward(false)
            .limit(query.limit.clamp(1, 1000) as i32);
        let req = match (query.since, query.until) {
            (Some(since), Some(until)) => req
                .key_condition_expression("#p = :p AND #at BETWEEN :since AND :until")
                .expression_attribute_names("#at", ENDED_AT)
                .expression_attribute_values(":since", ts(since))
                .expression_attribute_values(":until", ts(until)),
            (Some(since), None) => req
                .key_condition_expression("#p = :p AND #at > :since")
                .expression_attribute_names("#at", ENDED_AT)
                .expression_attribute_values(":since", ts(since)),
            (None, Some(until)) => req
                .key_condition_expression("#p = :p AND #at <= :until")
                .expression_attribute_names("#at", ENDED_AT)
                .expression_attribute_values(":until", ts(until)),
            (None, None) => req.key_condition_expression("#p = :p"),
        };
        let start = query.after.as_ref().map(|k| {
            HashMap::from([
                (ARN.to_owned(), s(k.job_arn.as_str())),
                (ENDED_IN.to_owned(), s(ENDED_PARTITION)),
                (ENDED_AT.to_owned(), ts(k.ended_at)),
            ])
        });
        let out = req
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| fail(e, &self.table))?;
        let since = query.since;
        let jobs = out
            .items
            .unwrap_or_default()
            .iter()
            .map(EndedJob::try_from)
            // BETWEEN is inclusive: `since` itself belongs to the window before.
            .filter(|j| !matches!((j, since), (Ok(j), Some(t)) if j.ended_at <= t))
            .collect();
        let next = out.last_evaluated_key.as_ref().and_then(|k| {
            let arn = k.get(ARN)?.as_s().ok()?.parse().ok()?;
            let at = k.get(ENDED_AT)?.as_s().ok()?;
            let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
            Some(EndedKey {
                ended_at: at,
                job_arn: arn,
            })
        });
        Ok(EndedPage { jobs, next })
    }

    async fn set_aside_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<SetAsideNote>, StoreError> {
        let mut notes = Vec::new();
        let mut day = since.date_naive();
        // At most a year of days: a digest window longer than that is read
        // from its last year (notes older than the retention are gone anyway).
        let first = (until - chrono::Duration::days(366)).date_naive();
        day = day.max(first);
        while day <= until.date_naive() {
            if let Some(item) = self.control_item(set_aside_key(day)).await?
                && let Some(AttributeValue::M(entries)) = item.get(SET_ASIDE_NOTES)
            {
                notes.extend(entries.values().filter_map(set_aside_note));
            }
            day = day.succ_opt().unwrap_or(day);
            if day == chrono::NaiveDate::MAX {
                break;
            }
        }
        notes.retain(|n: &SetAsideNote| since < n.at && n.at <= until);
        notes.sort_by_key(|n| n.at);
        Ok(notes)
    }

    async fn count_invocation(&self, poll: bool, failed: bool) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(HEALTH_KEY))
            .update_expression("ADD #p :p, #f :f SET #u = :now")
            .expression_attribute_names("#p", "polls")
            .expression_attribute_names("#f", "failedInvocations")
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_values(":p", n(u8::from(poll)))
            .expression_attribute_values(":f", n(u8::from(failed)))
            .expression_attribute_values(":now", ts(Utc::now()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(e, &self.table))
    }

    async fn health(&self) -> Result<Health, StoreError> {
        let item = self.control_item(HEALTH_KEY.to_owned()).await?;
        Ok(item.as_ref().map_or_else(Health::default, health_of))
    }

    async fn last_digest(&self) -> Result<Option<DigestMark>, StoreError> {
        let Some(item) = self.control_item(DIGEST_KEY.to_owned()).await? else {
            return Ok(None);
        };
        let unreadable = |what: &str| {
            StoreError::other(format!(
                "the {what} in {DIGEST_KEY} is unreadable; delete that item and the next digest covers the last 24 hours"
            ))
        };
        let time = |name: &str| -> Option<DateTime<Utc>> {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let pending = match item.get(DIGEST_PENDING_ID).and_then(|v| v.as_s().ok()) {
            None => None,
            Some(id) => Some(Window {
                id: id.clone(),
                at: time(DIGEST_PENDING_AT).ok_or_else(|| unreadable("pending digest's time"))?,
                since: time(DIGEST_PENDING_SINCE)
                    .ok_or_else(|| unreadable("pending digest's window"))?,
                until: time(DIGEST_PENDING_UNTIL)
                    .ok_or_else(|| unreadable("pending digest's window"))?,
                first: item
                    .get(DIGEST_PENDING_FIRST)
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
            }),
        };
        // Before the first digest is published, a pending one may be all there is.
        let Some(at) = time("at") else {
            return match pending {
                Some(p) if !item.contains_key("at") => Ok(Some(DigestMark {
                    at: p.since,
                    until: p.since,
                    health: Health::default(),
                    pending: Some(p),
                })),
                _ => Err(unreadable("last digest's time")),
            };
        };
        Ok(Some(DigestMark {
            at,
            // Items written before digests had windows: the last one covered up to its time.
            until: time("until").unwrap_or(at),
            health: health_of(&item),
            pending,
        }))
    }

    async fn begin_digest(
        &self,
        window: &Window,
        claim: &Claim,
        previous: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(DIGEST_KEY))
            .update_expression(
                "SET #pid = :id, #pat = :at, #psince = :since, #puntil = :until, #pfirst = :first, #by = :token, #till = :till",
            )
            .expression_attribute_names("#pid", DIGEST_PENDING_ID)
            .expression_attribute_names("#pat", DIGEST_PENDING_AT)
            .expression_attribute_names("#psince", DIGEST_PENDING_SINCE)
            .expression_attribute_names("#puntil", DIGEST_PENDING_UNTIL)
            .expression_attribute_names("#pfirst", DIGEST_PENDING_FIRST)
            .expression_attribute_names("#by", CLAIMED_BY)
            .expression_attribute_names("#till", CLAIMED_UNTIL)
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":id", s(window.id.as_str()))
            .expression_attribute_values(":at", ts(window.at))
            .expression_attribute_values(":since", ts(window.since))
            .expression_attribute_values(":until", ts(window.until))
            .expression_attribute_values(":first", AttributeValue::Bool(window.first))
            .expression_attribute_values(":token", s(claim.token.as_str()))
            .expression_attribute_values(":till", ts(claim.until));
        let req = match previous {
            None => {
                req.condition_expression("attribute_not_exists(#pid) AND attribute_not_exists(#at)")
            }
            Some(p) => req
                .condition_expression("attribute_not_exists(#pid) AND #at = :previous")
                .expression_attribute_values(":previous", ts(p)),
        };
        write_result(req.send().await, &self.table)
    }

    async fn claim_digest(&self, id: &str, claim: &Claim) -> Result<Write, StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(DIGEST_KEY))
            .update_expression("SET #by = :token, #till = :till")
            .condition_expression(
                "#pid = :id AND (attribute_not_exists(#till) OR #till < :now OR #by = :token)",
            )
            .expression_attribute_names("#pid", DIGEST_PENDING_ID)
            .expression_attribute_names("#by", CLAIMED_BY)
            .expression_attribute_names("#till", CLAIMED_UNTIL)
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":token", s(claim.token.as_str()))
            .expression_attribute_values(":till", ts(claim.until))
            .expression_attribute_values(":now", ts(claim.now))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn release_digest(&self, id: &str, token: &str) -> Result<Write, StoreError> {
        let r = self
            .held_digest(id, token)
            .update_expression("REMOVE #by, #till")
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn finish_digest(
        &self,
        mark: &DigestMark,
        id: &str,
        token: &str,
    ) -> Result<Write, StoreError> {
        let r = self
            .held_digest(id, token)
            .update_expression(
                "SET #at = :at, #until = :until, #polls = :polls, #failed = :failed \
                 REMOVE #pid, #pat, #psince, #puntil, #pfirst, #by, #till, #reported",
            )
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#polls", "polls")
            .expression_attribute_names("#failed", "failedInvocations")
            .expression_attribute_names("#pat", DIGEST_PENDING_AT)
            .expression_attribute_names("#psince", DIGEST_PENDING_SINCE)
            .expression_attribute_names("#puntil", DIGEST_PENDING_UNTIL)
            .expression_attribute_names("#pfirst", DIGEST_PENDING_FIRST)
            // What digests before windows remembered; no longer read.
            .expression_attribute_names("#reported", "reported")
            .expression_attribute_values(":at", ts(mark.at))
            .expression_attribute_values(":until", ts(mark.until))
            .expression_attribute_values(":polls", n(mark.health.polls))
            .expression_attribute_values(":failed", n(mark.health.failed_invocations))
            .send()
            .await;
        write_result(r, &self.table)
    }
}

impl DynamoJobStore {
    /// An update of the digest's item on the condition that `token` holds
    /// the pending digest `id` (names `#pid`, `#by`, `#till` bound).
    fn held_digest(&self, id: &str, token: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(DIGEST_KEY))
            .condition_expression("#pid = :id AND #by = :token")
            .expression_attribute_names("#pid", DIGEST_PENDING_ID)
            .expression_attribute_names("#by", CLAIMED_BY)
            .expression_attribute_names("#till", CLAIMED_UNTIL)
            .expression_attribute_values(":id", s(id))
            .expression_attribute_values(":token", s(token))
    }
}

fn health_of(item: &HashMap<String, AttributeValue>) -> Health {
    let count = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Health {
        polls: count("polls"),
        failed_invocations: count("failedInvocations"),
    }
}
