//! What a finished job cost, or why there is no figure: a fact the
//! transition carries to its notification. The price book
//! (`crate::prices`) computes it and renders it; the domain knows no prices.

use serde::{Deserialize, Serialize};

/// Where a price came from: the `source` of `estimatedCost`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PriceSource {
    #[serde(rename = "table")]
    Table,
    #[serde(rename = "PRICES")]
    Override,
}

/// A job's cost, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Costing {
    Estimated(Estimate),
    /// Token totals, but no price for the model in the job's region.
    #[serde(rename_all = "camelCase")]
    NoPrice {
        model_id: Option<String>,
        region: String,
        /// Why the table has no price for the model, when it lists it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<String>,
    },
    /// No token totals: the manifest the function should have read could
    /// not be, and why (the object, and S3's or KMS's own words).
    NoTokens {
        why: String,
    },
}

/// The estimate: tokens x price, and where the price came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    pub cents: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Micro-dollars per million tokens.
    pub input_price: u64,
    pub output_price: u64,
    pub prices_of: Option<String>,
    pub source: PriceSource,
    /// The model or inference profile id whose price was used.
    pub priced_as: String,
    pub region: String,
}
