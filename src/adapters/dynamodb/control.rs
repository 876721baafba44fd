//! The digest's control item (`control#digest`): what the last digest
//! covered, and the digest under way with its claim. The rule it serves,
//! each end in exactly one digest, is told whole in `crate::digest`.

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::fleet::{DESTINATION_FAILURES, MEMBER_ROLE_FAILURES, health_of};
use super::item::*;
use super::{DynamoJobStore, write_result};
use crate::digest::{DigestMark, Health, Window};
use crate::ports::{Claim, StoreError, Write};

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

impl DynamoJobStore {
    pub(super) async fn load_digest_mark(&self) -> Result<Option<DigestMark>, StoreError> {
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

    pub(super) async fn begin_digest_window(
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

    pub(super) async fn claim_digest_window(
        &self,
        id: &str,
        claim: &Claim,
    ) -> Result<Write, StoreError> {
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

    pub(super) async fn release_digest_window(
        &self,
        id: &str,
        token: &str,
    ) -> Result<Write, StoreError> {
        let r = self
            .held_digest(id, token)
            .update_expression("REMOVE #by, #till")
            .send()
            .await;
        write_result(r, &self.table)
    }

    pub(super) async fn finish_digest_window(
        &self,
        mark: &DigestMark,
        id: &str,
        token: &str,
    ) -> Result<Write, StoreError> {
        let r = self
            .held_digest(id, token)
            .update_expression(
                "SET #at = :at, #until = :until, #polls = :polls, #failed = :failed, #dest = :dest, #member = :member \
                 REMOVE #pid, #pat, #psince, #puntil, #pfirst, #by, #till, #reported",
            )
            .expression_attribute_names("#at", "at")
            .expression_attribute_names("#until", "until")
            .expression_attribute_names("#polls", "polls")
            .expression_attribute_names("#failed", "failedInvocations")
            .expression_attribute_names("#dest", DESTINATION_FAILURES)
            .expression_attribute_names("#member", MEMBER_ROLE_FAILURES)
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
            .expression_attribute_values(":dest", n(mark.health.destination_failures))
            .expression_attribute_values(":member", n(mark.health.member_role_failures))
            .send()
            .await;
        write_result(r, &self.table)
    }

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
