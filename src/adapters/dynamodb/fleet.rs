//! What `list` and the digest read ([`Fleet`]): jobs shown by BatchGet
//! without their history, pages of the index of ends, the set-aside notes,
//! the health counts; the digest's control item is in [`super::control`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use chrono::{DateTime, Utc};

use super::control::HEALTH_KEY;
use super::item::*;
use super::outbox::{SET_ASIDE_NOTES, set_aside_key, set_aside_note};
use super::update::Names;
use super::{DynamoJobStore, ENDED_INDEX, fail};
use crate::digest::{DigestMark, Health, SetAsideNote, Window};
use crate::domain::{EndedJob, JobArn, StoredJob};
use crate::ports::{
    Claim, EndedKey, EndedPage, EndedQuery, Fleet, InvocationCounts, ItemError, StoreError, Write,
};

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

    async fn count_invocation(&self, counts: &InvocationCounts) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(HEALTH_KEY))
            .update_expression("ADD #p :p, #f :f, #d :d, #m :m SET #u = :now")
            .expression_attribute_names("#p", "polls")
            .expression_attribute_names("#f", "failedInvocations")
            .expression_attribute_names("#d", DESTINATION_FAILURES)
            .expression_attribute_names("#m", MEMBER_ROLE_FAILURES)
            .expression_attribute_names("#u", "updatedAt")
            .expression_attribute_values(":p", n(u8::from(counts.poll)))
            .expression_attribute_values(":f", n(u8::from(counts.failed)))
            .expression_attribute_values(":d", n(counts.destination_failures))
            .expression_attribute_values(":m", n(counts.member_role_failures))
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
        self.load_digest_mark().await
    }

    async fn begin_digest(
        &self,
        window: &Window,
        claim: &Claim,
        previous: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        self.begin_digest_window(window, claim, previous).await
    }

    async fn claim_digest(&self, id: &str, claim: &Claim) -> Result<Write, StoreError> {
        self.claim_digest_window(id, claim).await
    }

    async fn release_digest(&self, id: &str, token: &str) -> Result<Write, StoreError> {
        self.release_digest_window(id, token).await
    }

    async fn finish_digest(
        &self,
        mark: &DigestMark,
        id: &str,
        token: &str,
    ) -> Result<Write, StoreError> {
        self.finish_digest_window(mark, id, token).await
    }
}

/// Publishes that failed at a destination other than the job topic, in the
/// health record and in the last digest's mark.
pub(super) const DESTINATION_FAILURES: &str = "destinationFailures";
/// Reads of a member account whose role could not be assumed, likewise.
pub(super) const MEMBER_ROLE_FAILURES: &str = "memberRoleFailures";

pub(super) fn health_of(item: &HashMap<String, AttributeValue>) -> Health {
    let count = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Health {
        polls: count("polls"),
        failed_invocations: count("failedInvocations"),
        destination_failures: count(DESTINATION_FAILURES),
        member_role_failures: count(MEMBER_ROLE_FAILURES),
    }
}
