//! A job's pending notifications ([`Outbox`]): claims, releases, completion
//! and setting aside, each conditional on the claim's holder, and the day's
//! notes of set-aside notifications that the digest reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::item::*;
use super::{DynamoJobStore, classify, fail, write_result};
use crate::digest::SetAsideNote;
use crate::domain::{JobArn, SetAside, StoredJob};
use crate::ports::{Claim, Outbox, StoreError, Write};

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

/// The key prefix of the day's set-aside notifications
/// (`control#set-aside#2026-11-30`): one map of notes a day, read by the digest.
const SET_ASIDE_KEY_PREFIX: &str = "control#set-aside#";
pub(super) const SET_ASIDE_NOTES: &str = "notes";

pub(super) fn set_aside_key(day: chrono::NaiveDate) -> String {
    format!("{SET_ASIDE_KEY_PREFIX}{day}")
}

pub(super) fn set_aside_note(v: &AttributeValue) -> Option<SetAsideNote> {
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
