//! The work list ([`WorkList`]): pages of the sparse work index, the poll
//! cursor, and discovery's watermark per region.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use chrono::{DateTime, Utc};

use super::item::*;
use super::{
    CURSOR_KEY, DynamoJobStore, POLL_SHARDS, WATERMARK_KEY_PREFIX, WORK_INDEX, fail, write_result,
};
use crate::domain::{QuotaBook, WorkEntry};
use crate::ports::{Judged, ListPosition, StoreError, Watermark, WorkList, WorkPage, Write};

const WATERMARK: &str = "watermark";
const BACKLOG_SINCE: &str = "backlogSince";
/// Discovery's verdicts kept with the watermark (see [`Judged`]): maps of
/// job ARN to submit time.
const NOT_WATCHED: &str = "notWatched";
const UNDECIDED: &str = "undecided";

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

impl WorkList for DynamoJobStore {
    fn shards(&self) -> u32 {
        POLL_SHARDS
    }

    async fn load_quota(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<QuotaBook>, StoreError> {
        self.load_quota_book(account, region).await
    }

    async fn save_quota(&self, book: &QuotaBook) -> Result<(), StoreError> {
        self.save_quota_book(book).await
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
        // A verdict that cannot be read is only forgotten: the job is judged again.
        let verdicts = |name: &str| -> BTreeMap<String, DateTime<Utc>> {
            item.get(name)
                .and_then(|v| v.as_m().ok())
                .map(|m| {
                    m.iter()
                        .filter_map(|(arn, t)| {
                            let t = DateTime::parse_from_rfc3339(t.as_s().ok()?).ok()?;
                            Some((arn.clone(), t.with_timezone(&Utc)))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Watermark {
            at: time(WATERMARK)?,
            backlog_since: time(BACKLOG_SINCE)?,
            judged: Judged {
                not_watched: verdicts(NOT_WATCHED),
                undecided: verdicts(UNDECIDED),
            },
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
        judged: &Judged,
    ) -> Result<Write, StoreError> {
        let verdicts = |m: &BTreeMap<String, DateTime<Utc>>| {
            AttributeValue::M(m.iter().map(|(arn, t)| (arn.clone(), ts(*t))).collect())
        };
        // The whole item is replaced: a backlog being taken in ends here.
        let item = HashMap::from([
            (ARN.to_owned(), s(format!("{WATERMARK_KEY_PREFIX}{region}"))),
            (WATERMARK.to_owned(), ts(to)),
            ("updatedAt".to_owned(), ts(Utc::now())),
            (NOT_WATCHED.to_owned(), verdicts(&judged.not_watched)),
            (UNDECIDED.to_owned(), verdicts(&judged.undecided)),
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
