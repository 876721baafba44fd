//! The job table over aws-sdk-dynamodb: one item per job, keyed by `jobArn`.
//!
//! A transition, its history entry and its pending notification are one
//! conditional `UpdateItem` on `version`. `pollShard` exists only while the job
//! needs work, so the sparse index [`WORK_INDEX`] lists the work and nothing else.
//! Every write is conditional: on the version for the job's state, on the
//! claim's holder for its outbox.

//!
//! One file per capability: [`jobs`] (one job's state), [`outbox`] (its
//! pending notifications), [`work`] (the work list, the poll cursor and
//! discovery's watermarks), [`fleet`] (what `list` and the digest read),
//! [`control`] (the digest's own item); [`job_item`] is the one description
//! of what a write that records a read stores, [`item`] the attribute names
//! and the readers, [`update`] the expression builder.

mod control;
mod fleet;
mod item;
mod job_item;
mod jobs;
mod outbox;
mod quota;
mod routes;
mod update;
mod work;

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;

use self::item::*;
use super::{ErrorFacts, facts};
use crate::domain::{JobArn, StoredJob};
use crate::ports::{StoreError, Write};

pub use self::control::{DIGEST_KEY, HEALTH_KEY};
pub use self::routes::ROUTES_KEY;

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
}
