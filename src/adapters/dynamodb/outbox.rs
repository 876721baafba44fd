//! A job's pending notifications ([`Outbox`]): the claim, and what a
//! delivery came to destination by destination (accepted, refused, failed,
//! set aside), each write conditional on the claim's holder; and the day's
//! notes of set-aside notifications that the digest reads.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::item::*;
use super::update::Update;
use super::{DynamoJobStore, classify, fail};
use crate::digest::SetAsideNote;
use crate::domain::{JobArn, SetAside, StoredJob, TOPIC};
use crate::ports::{Claim, Outbox, Settlement, StoreError};

impl Outbox for DynamoJobStore {
    async fn claim(
        &self,
        arn: &JobArn,
        transition_id: &str,
        claim: &Claim,
    ) -> Result<Option<StoredJob>, StoreError> {
        let req = self
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
            .expression_attribute_values(":token", s(claim.token.as_str()));
        self.job_after_held_write(req).await
    }

    async fn settle(
        &self,
        arn: &JobArn,
        transition_id: &str,
        token: &str,
        settlement: &Settlement,
    ) -> Result<Option<StoredJob>, StoreError> {
        let entry = [OUTBOX, transition_id];
        let mut u = Update::default();
        if settlement.finished {
            u.remove_path(&entry);
        } else {
            let mut done: Vec<String> = settlement.accepted.clone();
            done.extend(settlement.set_aside.iter().map(|e| e.destination.clone()));
            if !done.is_empty() {
                u.add_to_set_at(
                    &[OUTBOX, transition_id, DELIVERED],
                    AttributeValue::Ss(done),
                );
            }
            for (destination, error) in &settlement.refused {
                let attempts = delivery_attr(ATTEMPTS, destination);
                u.increment(&[OUTBOX, transition_id, &attempts]);
                let last = delivery_attr(LAST_ERROR, destination);
                u.set(&[OUTBOX, transition_id, &last], s(error.as_str()));
            }
            for (destination, error) in &settlement.failed {
                let last = delivery_attr(LAST_ERROR, destination);
                u.set(&[OUTBOX, transition_id, &last], s(error.as_str()));
            }
            u.remove_path(&[OUTBOX, transition_id, CLAIMED_UNTIL]);
            u.remove_path(&[OUTBOX, transition_id, CLAIMED_BY]);
        }
        if let Some(routed) = &settlement.routed {
            u.append(ROUTED, vec![routed_value(routed)]);
        }
        if !settlement.set_aside.is_empty() {
            u.append(
                UNDELIVERABLE,
                settlement.set_aside.iter().map(set_aside_value).collect(),
            );
        }
        let holder = u.path(&[OUTBOX, transition_id, CLAIMED_BY]);
        let expected = u.value(s(token));
        let (expression, names, values) = u.into_parts();
        let req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(arn)))
            .update_expression(expression)
            .condition_expression(format!("{holder} = {expected}"))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values));
        let after = self.job_after_held_write(req).await?;
        if after.is_some() {
            // The day's list of set-aside notifications, which the digest
            // reads instead of every job's item; it expires with the jobs.
            for e in &settlement.set_aside {
                self.note_set_aside(arn, e).await;
            }
        }
        Ok(after)
    }
}

impl DynamoJobStore {
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
        destination: text("destination").map_or_else(|| TOPIC.to_owned(), String::clone),
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
            ("destination".to_owned(), s(entry.destination.as_str())),
            ("status".to_owned(), s(entry.status.as_str())),
            ("setAsideAt".to_owned(), ts(entry.set_aside_at)),
        ]));
        // One note per notification and destination (the job topic's keyed
        // by the transition alone, as before destinations).
        let note_key = delivery_attr(&entry.transition_id, &entry.destination);
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
                .expression_attribute_names("#t", note_key)
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
