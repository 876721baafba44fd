//! One job's state ([`Jobs`]): the writes that record what Bedrock said
//! (first write, re-arm, transition, progress), each built from the one
//! description of a job item in [`super::job_item`], and the small writes
//! around them (labels, NotFound counts, retirement, untrack).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::item::*;
use super::job_item::{Fact, JobFacts, Tracking};
use super::update::Update;
use super::{DynamoJobStore, fail, write_result};
use crate::domain::{Fresh, JobArn, Progress, RecordCounts, StoredJob, Transition};
use crate::ports::{Jobs, Record, StoreError, Untrack, Write};

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
        u.set(&[VERSION], n(warning.version));
        u.set(&[OUTBOX, &warning.id], pending_value(warning)?);
        u.add_to_set(WARNED, AttributeValue::Ss(vec![kind.as_str().to_owned()]));
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
        u.set(&[VERSION], n(basis.version() + 1));
        if let Some(p) = previous {
            u.set(&[RATE_FROM_COUNT], n(p.processed));
            u.set(&[RATE_FROM_AT], ts(p.since));
        }
        u.set(&[PROGRESS_COUNT], n(progress.processed));
        u.set(&[PROGRESS_SINCE], ts(progress.since));
        u.set(&[RECORDS], records_value(records));
        self.update_on_version(arn, u, basis.version()).await
    }

    async fn rearm(
        &self,
        first: &Transition,
        basis: Fresh,
        recorded_end: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        let facts = JobFacts {
            transition: first,
            gone: false,
            tracking: Tracking::Starts,
            reported_end: recorded_end,
        };
        self.record_facts(&facts, basis).await
    }

    async fn record(&self, change: Record<'_>) -> Result<Write, StoreError> {
        let facts = JobFacts {
            transition: change.transition,
            gone: change.gone,
            tracking: Tracking::Goes,
            reported_end: None,
        };
        self.record_facts(&facts, change.basis).await
    }

    async fn set_labels(
        &self,
        arn: &JobArn,
        labels: &BTreeMap<String, String>,
        expected_version: u64,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(&[LABELS], labels_value(labels));
        u.set(&[VERSION], n(expected_version + 1));
        self.update_on_version(arn, u, expected_version).await
    }

    async fn set_not_found_count(
        &self,
        arn: &JobArn,
        expected_version: u64,
        count: u32,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(&[NOT_FOUND], n(count));
        self.update_on_version(arn, u, expected_version).await
    }

    async fn retire(
        &self,
        arn: &JobArn,
        expected_version: u64,
        expires_at: DateTime<Utc>,
    ) -> Result<Write, StoreError> {
        let mut u = Update::default();
        u.set(&[EXPIRES], n(expires_at.timestamp()));
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
            .update_expression("SET #u = :at, #e = :exp, #o = :none, #v = #v + :one REMOVE #s, #ei")
            // Out of the index of ends (endedIn is its key); the end's time
            // is decided below.
            .expression_attribute_names("#ei", ENDED_IN)
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
        if write_result(r, &self.table)? == Write::Lost {
            return Ok(Untrack::NotTracked);
        }
        // The end's time stays only when a digest has reported it (its window
        // reached that time while the job was in the index of ends): an end
        // no digest reported is recorded again at a later tracking, and the
        // next digest reports it.
        let reported_until = self.load_digest_mark().await?.map(|m| m.until);
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .update_expression("REMOVE #ea")
            .expression_attribute_names("#ea", ENDED_AT)
            .expression_attribute_names("#u", UNTRACKED_AT);
        let req = match reported_until {
            // Times are RFC 3339 in UTC with milliseconds, so they compare as
            // text: "String value comparisons for greater than, equals, or less
            // than are based on ASCII character code values" (Condition, DynamoDB
            // API reference, https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Condition.html).
            Some(until) => req
                .condition_expression("attribute_exists(#u) AND #ea > :until")
                .expression_attribute_values(":until", ts(until)),
            None => req.condition_expression("attribute_exists(#u) AND attribute_exists(#ea)"),
        };
        write_result(req.send().await, &self.table)?;
        Ok(Untrack::Untracked)
    }
}

impl DynamoJobStore {
    /// A new job item with its first observation; with `notify`, its pending
    /// notification too.
    async fn put_first(&self, first: &Transition, notify: bool) -> Result<Write, StoreError> {
        let facts = JobFacts {
            transition: first,
            gone: false,
            tracking: Tracking::Starts,
            reported_end: None,
        };
        let mut item: HashMap<String, AttributeValue> = facts
            .attributes()
            .into_iter()
            .filter_map(|(k, v)| match v {
                Fact::Set(v) => Some((k.to_owned(), v)),
                Fact::Remove => None,
            })
            .collect();
        item.insert(ARN.to_owned(), s(first.job.job_arn.as_str()));
        item.insert(
            HISTORY.to_owned(),
            AttributeValue::L(vec![history_value(&first.history_entry())]),
        );
        let outbox = if notify {
            HashMap::from([(first.id.clone(), pending_value(first)?)])
        } else {
            HashMap::new()
        };
        item.insert(OUTBOX.to_owned(), AttributeValue::M(outbox));
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

    /// Records a transition on an item that exists (a change, or a re-arm):
    /// its facts, history entry and pending notification, conditional on the
    /// version `basis` was judged on.
    async fn record_facts(&self, facts: &JobFacts<'_>, basis: Fresh) -> Result<Write, StoreError> {
        let t = facts.transition;
        let mut u = Update::default();
        for (attr, v) in facts.attributes() {
            match v {
                Fact::Set(v) => u.set(&[attr], v),
                Fact::Remove => u.remove(attr),
            }
        }
        u.append(HISTORY, vec![history_value(&t.history_entry())]);
        u.set(&[OUTBOX, &t.id], pending_value(t)?);
        self.update_on_version(&t.job.job_arn, u, basis.version())
            .await
    }
}
