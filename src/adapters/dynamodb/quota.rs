//! What the poll learned of each account's batch quotas in each region
//! (`control#quota#<account>#<region>`): kept so a cold start reads one item
//! instead of listing Service Quotas again, and so `list`, `describe` and
//! the digest show a waiting job's quota without a call to AWS.

use chrono::Utc;

use super::item::*;
use super::{DynamoJobStore, fail};
use crate::domain::QuotaBook;
use crate::ports::StoreError;

/// The key prefix of the quota items: like the cursor, never listed or read as a job.
pub const QUOTA_KEY_PREFIX: &str = "control#quota#";
/// The book, as JSON (its maps are small: one entry a model of the region).
const BOOK: &str = "book";

fn quota_key(account: &str, region: &str) -> String {
    format!("{QUOTA_KEY_PREFIX}{account}#{region}")
}

impl DynamoJobStore {
    pub(super) async fn load_quota_book(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<QuotaBook>, StoreError> {
        let Some(item) = self.control_item(quota_key(account, region)).await? else {
            return Ok(None);
        };
        // An unreadable book is only a lost cache: the next poll reads the quotas again.
        Ok(item
            .get(BOOK)
            .and_then(|v| v.as_s().ok())
            .and_then(|json| serde_json::from_str::<QuotaBook>(json).ok())
            .filter(|b| b.account == account && b.region == region))
    }

    pub(super) async fn save_quota_book(&self, book: &QuotaBook) -> Result<(), StoreError> {
        let json = serde_json::to_string(book)
            .map_err(|e| StoreError::other(format!("the quota book could not be written: {e}")))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(ARN, s(quota_key(&book.account, &book.region)))
            .item(BOOK, s(json))
            .item("updatedAt", ts(Utc::now()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(e, &self.table))
    }
}
