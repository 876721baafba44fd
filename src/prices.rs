//! What a job cost: batch prices per model (the table built in from
//! `prices/bedrock-batch.json`, corrected or extended by the setting `PRICES`)
//! and the estimate made from a finished job's token totals.
//!
//! A wrong cost is worse than none: a job gets a figure only when a price is
//! known for its model (or inference profile) in the job's own region, and the
//! figure always says which price, of which date, from where. The arithmetic is
//! in whole units (micro-dollars per million tokens, so picodollars per token)
//! and rounds once, to the cent, half up.

/// What a job cost is a domain fact; the price book computes and renders it.
pub use crate::domain::{Costing, Estimate, PriceSource};
use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::domain::{JobSnapshot, JobStatus, TokenTotals};

/// The table built into the function (`make prices-check` validates it).
pub const BUILT_IN: &str = include_str!("../prices/bedrock-batch.json");

/// What every figure is, said with it.
pub const BASIS: &str = "estimate, before taxes and discounts";

/// The highest price accepted, USD per million tokens: far above any model's,
/// and low enough that no token count can overflow the arithmetic.
pub const MAX_PRICE_PER_MILLION: u64 = 1_000;

/// Micro-dollars in a dollar: prices are kept as micro-dollars per million
/// tokens, which is to say picodollars per token.
const MICROS: u64 = 1_000_000;

/// Picodollars in a cent.
const PICO_PER_CENT: u128 = 10_000_000_000;

impl PriceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Override => "PRICES",
        }
    }
}

/// One model's batch price, for the regions it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    /// USD per million input tokens, in micro-dollars.
    pub input: u64,
    /// USD per million output tokens, in micro-dollars.
    pub output: u64,
    /// The regions the price holds in; `None` (an override without
    /// `regions`) holds in every region.
    pub regions: Option<Vec<String>>,
    /// The date the price was read (YYYY-MM-DD); an override may leave it out.
    pub prices_of: Option<String>,
    pub source: PriceSource,
}

impl Price {
    fn holds_in(&self, region: &str) -> bool {
        self.regions
            .as_ref()
            .is_none_or(|rs| rs.iter().any(|r| r == region))
    }
}

/// The prices the function estimates with: `PRICES` first, then the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PriceBook {
    overrides: BTreeMap<String, Vec<Price>>,
    table: BTreeMap<String, Vec<Price>>,
    /// The table's `unpriced`: models it knows run batch jobs, and why it has
    /// no price for them.
    unpriced: BTreeMap<String, String>,
}

impl PriceBook {
    /// The built-in table alone.
    pub fn built_in() -> Self {
        let v: Value = serde_json::from_str(BUILT_IN)
            .unwrap_or_else(|e| panic!("prices/bedrock-batch.json: not JSON: {e}"));
        let table = parse(&v, PriceSource::Table)
            .unwrap_or_else(|e| panic!("prices/bedrock-batch.json: {e}"));
        let unpriced = serde_json::from_value(v["unpriced"].clone()).unwrap_or_default();
        Self {
            overrides: BTreeMap::new(),
            table,
            unpriced,
        }
    }

    /// The built-in table with `PRICES` over it. `text` is a JSON object of
    /// model (or inference profile) ids to prices, or the table's own shape
    /// (an object with `models`).
    pub fn with_overrides(text: &str) -> Result<Self, String> {
        let mut book = Self::built_in();
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        book.overrides = parse(&v, PriceSource::Override)?;
        Ok(book)
    }

    /// The ids the table prices (for tests and docs).
    pub fn table_ids(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(String::as_str)
    }

    /// The price for `model_id` in `region`, and the id it was found under:
    /// `PRICES` before the table; in each, the id as given (an inference
    /// profile's own price) before the model it routes to.
    pub fn find(&self, model_id: &str, region: &str) -> Option<(String, &Price)> {
        let ids = candidates(model_id);
        [&self.overrides, &self.table]
            .into_iter()
            .find_map(|prices| {
                ids.iter().find_map(|id| {
                    prices
                        .get(id)?
                        .iter()
                        .find(|p| p.holds_in(region))
                        .map(|p| (id.clone(), p))
                })
            })
    }

    /// What a finished job cost, from its token totals: `None` without them.
    pub fn costing(&self, job: &JobSnapshot, tokens: Option<TokenTotals>) -> Option<Costing> {
        let tokens = tokens?;
        let region = job.job_arn.region().to_owned();
        Some(self.costing_of(job.model_id.as_deref(), &region, tokens))
    }

    /// [`PriceBook::costing`] from the parts an ended job keeps.
    pub fn costing_of(&self, model_id: Option<&str>, region: &str, tokens: TokenTotals) -> Costing {
        let Some((priced_as, price)) = model_id.and_then(|m| self.find(m, region)) else {
            let why = model_id.and_then(|m| {
                candidates(m)
                    .iter()
                    .find_map(|id| self.unpriced.get(id).cloned())
            });
            return Costing::NoPrice {
                model_id: model_id.map(str::to_owned),
                region: region.to_owned(),
                why,
            };
        };
        Costing::Estimated(Estimate {
            cents: cents(tokens, price.input, price.output),
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            input_price: price.input,
            output_price: price.output,
            prices_of: price.prices_of.clone(),
            source: price.source,
            priced_as,
            region: region.to_owned(),
        })
    }
}

/// The cost of `tokens` at the two prices (micro-dollars per million tokens),
/// in cents, rounded half up. Negative counts (never stored) count as none.
pub fn cents(tokens: TokenTotals, input_price: u64, output_price: u64) -> u64 {
    let input = u128::try_from(tokens.input.max(0)).unwrap_or(0);
    let output = u128::try_from(tokens.output.max(0)).unwrap_or(0);
    // Picodollars: at most 2 x (2^63 - 1) x 10^9, far inside u128, and the
    // cents at most ~1.8 x 10^18, inside u64 (MAX_PRICE_PER_MILLION).
    let pico = input * u128::from(input_price) + output * u128::from(output_price);
    u64::try_from((pico + PICO_PER_CENT / 2) / PICO_PER_CENT).unwrap_or(u64::MAX)
}

/// Whether a job that ended with `status` ran only part of its records: its
/// cost is what its manifest says it used.
pub fn partial(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Stopped | JobStatus::Expired | JobStatus::PartiallyCompleted | JobStatus::Failed
    )
}

/// `cents` as dollars: `$1,234.56`.
pub fn dollars(cents: u64) -> String {
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("${grouped}.{:02}", cents % 100)
}

/// A price in micro-dollars per million tokens as dollars: `0.0175`.
pub fn price_text(micros: u64) -> String {
    let whole = micros / MICROS;
    let frac = micros % MICROS;
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn price_number(micros: u64) -> Value {
    // Exact for every price accepted (at most 1000 with 6 decimals).
    json!(micros as f64 / MICROS as f64)
}

impl Estimate {
    /// The `estimatedCost` field, in every place that carries one.
    pub fn json(&self, status: &JobStatus) -> Value {
        json!({
            "usd": self.cents as f64 / 100.0,
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "pricesOf": self.prices_of,
            "source": self.source,
            "pricedAs": self.priced_as,
            "region": self.region,
            "inputPerMillion": price_number(self.input_price),
            "outputPerMillion": price_number(self.output_price),
            "partial": partial(status),
            "basis": BASIS,
        })
    }

    /// The whole figure and how it was made, for the email text.
    pub fn text(&self, status: &JobStatus) -> String {
        let figure = if self.cents == 0 && (self.input_tokens > 0 || self.output_tokens > 0) {
            "under $0.01".to_owned()
        } else {
            dollars(self.cents)
        };
        let of = self
            .prices_of
            .as_deref()
            .map_or_else(String::new, |d| format!(" of {d}"));
        let from = match self.source {
            PriceSource::Table => "the built-in table",
            PriceSource::Override => "the PRICES setting",
        };
        let mut s = format!(
            "{figure} ({BASIS}): {} input tokens x ${}/M + {} output tokens x ${}/M, batch prices{of} for {} in {} from {from}",
            self.input_tokens,
            price_text(self.input_price),
            self.output_tokens,
            price_text(self.output_price),
            self.priced_as,
            self.region,
        );
        if partial(status) {
            s.push_str(&format!(
                "; the job ended {status}, so this prices only the tokens its manifest reports"
            ));
        }
        s
    }
}

impl Costing {
    /// The `estimatedCost` field: the estimate, or `null` with no price.
    pub fn json(&self, status: &JobStatus) -> Value {
        match self {
            Self::Estimated(e) => e.json(status),
            Self::NoPrice { .. } | Self::NoTokens { .. } => Value::Null,
        }
    }

    /// The `Cost:` line's text.
    pub fn text(&self, status: &JobStatus) -> String {
        match self {
            Self::Estimated(e) => e.text(status),
            Self::NoPrice {
                model_id,
                region,
                why,
            } => no_price_text(model_id.as_deref(), region, why.as_deref()),
            Self::NoTokens { why } => no_tokens_text(why),
        }
    }

    pub fn estimate(&self) -> Option<&Estimate> {
        match self {
            Self::Estimated(e) => Some(e),
            Self::NoPrice { .. } | Self::NoTokens { .. } => None,
        }
    }

    /// Why there is no figure, when there is none: the `costNote`.
    pub fn note(&self) -> Option<String> {
        match self {
            Self::Estimated(_) => None,
            Self::NoPrice {
                model_id,
                region,
                why,
            } => Some(no_price_text(model_id.as_deref(), region, why.as_deref())),
            Self::NoTokens { why } => Some(no_tokens_text(why)),
        }
    }
}

/// Sets `estimatedCost` on a job's JSON (null without a figure: no token
/// totals, or no price) and, where there is no figure for a known reason,
/// `costNote`: the setting that would give a price, or why the manifest
/// could not be read.
pub fn annotate(out: &mut Value, cost: Option<&Costing>, status: &JobStatus) {
    out["estimatedCost"] = cost.map_or(Value::Null, |c| c.json(status));
    if let Some(note) = cost.and_then(Costing::note) {
        out["costNote"] = json!(note);
    }
}

/// Why a job that should have token totals has none.
pub fn no_tokens_text(why: &str) -> String {
    format!("no estimate: no token totals, as {why}")
}

/// Why there is no figure, and the setting that would give one.
pub fn no_price_text(model_id: Option<&str>, region: &str, why: Option<&str>) -> String {
    let why = why.map_or_else(String::new, |w| {
        format!(" (the table lists it without one: {w})")
    });
    match model_id {
        Some(m) => format!(
            "no estimate: no batch price for {m} in {region}{why}; the setting PRICES (template parameter Prices) gives one"
        ),
        None => format!(
            "no estimate: the job's model is not known here (Bedrock named none, or its end was recorded before the model was kept with its token totals); describe prices it from the stored job, with the table or the setting PRICES (template parameter Prices) for {region}"
        ),
    }
}

/// The ids a price may be found under, most specific first: the id as given
/// (an ARN, a model id or an inference profile id), the id inside an ARN
/// (`foundation-model/<id>`, `inference-profile/<id>`), then the model a
/// cross-Region inference profile routes to (its geographic prefix, such as
/// `us.` or `eu.`, taken off:
/// https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html).
pub fn candidates(model_id: &str) -> Vec<String> {
    let mut out = vec![model_id.to_owned()];
    let mut id = model_id;
    if model_id.starts_with("arn:")
        && let Some(resource) = model_id.splitn(6, ':').nth(5)
    {
        for kind in ["foundation-model/", "inference-profile/"] {
            if let Some(rest) = resource.strip_prefix(kind) {
                id = rest;
            }
        }
    }
    out.push(id.to_owned());
    if let Some((geo, model)) = id.split_once('.')
        && GEOGRAPHIES.contains(&geo)
        && model.contains('.')
    {
        out.push(model.to_owned());
    }
    out.dedup();
    out
}

/// The geographic prefixes of system-defined cross-Region inference profiles.
const GEOGRAPHIES: [&str; 8] = ["us", "us-gov", "eu", "apac", "global", "jp", "au", "ca"];

/// The fields an entry may have; anything else is refused (a misspelt price
/// must not pass silently).
const FIELDS: [&str; 7] = [
    "name", "input", "output", "regions", "pricesOf", "source", "note",
];

fn parse(v: &Value, source: PriceSource) -> Result<BTreeMap<String, Vec<Price>>, String> {
    let models = match v {
        Value::Object(o) if o.contains_key("models") => &o["models"],
        other => other,
    };
    let Value::Object(models) = models else {
        return Err(
            "expected an object of model or inference profile ids to prices, such as {\"anthropic.claude-3-haiku-20240307-v1:0\": {\"input\": 0.125, \"output\": 0.625}}".to_owned(),
        );
    };
    let mut out = BTreeMap::new();
    for (id, entry) in models {
        if id.is_empty() || id.len() > 2048 || id.chars().any(char::is_whitespace) {
            return Err(format!(
                "{id:?} is not a model or inference profile id (1 to 2048 characters, no spaces)"
            ));
        }
        let entries: Vec<&Value> = match entry {
            Value::Array(items) if !items.is_empty() => items.iter().collect(),
            Value::Object(_) => vec![entry],
            _ => {
                return Err(format!(
                    "{id}: expected an object with input and output (USD per million tokens), or a list of them"
                ));
            }
        };
        let prices = entries
            .into_iter()
            .map(|e| price(e, source).map_err(|why| format!("{id}: {why}")))
            .collect::<Result<Vec<_>, _>>()?;
        out.insert(id.clone(), prices);
    }
    Ok(out)
}

fn price(e: &Value, source: PriceSource) -> Result<Price, String> {
    let Value::Object(o) = e else {
        return Err("expected an object with input and output".to_owned());
    };
    if let Some(extra) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown field {extra:?} (the fields are {})",
            FIELDS.join(", ")
        ));
    }
    let amount = |k: &str| -> Result<u64, String> {
        let v = o
            .get(k)
            .ok_or_else(|| format!("{k} is missing: USD per million {k} tokens"))?;
        micros(v).map_err(|why| format!("{k}: {why}"))
    };
    let regions = match o.get("regions") {
        None if source == PriceSource::Override => None,
        None => return Err("regions is missing".to_owned()),
        Some(Value::Array(rs)) if !rs.is_empty() => Some(
            rs.iter()
                .map(|r| match r.as_str() {
                    Some(r) if crate::domain::partition_of(r).is_some() => Ok(r.to_owned()),
                    _ => Err(format!("regions: {r} is not an AWS region code")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(format!(
                "regions: expected a list of region codes, got {other}"
            ));
        }
    };
    let prices_of = match o.get("pricesOf") {
        None if source == PriceSource::Override => None,
        None => return Err("pricesOf is missing".to_owned()),
        Some(Value::String(d)) if is_date(d) => Some(d.clone()),
        Some(other) => {
            return Err(format!(
                "pricesOf: expected the date the prices were read, YYYY-MM-DD, got {other}"
            ));
        }
    };
    Ok(Price {
        input: amount("input")?,
        output: amount("output")?,
        regions,
        prices_of,
        source,
    })
}

fn is_date(d: &str) -> bool {
    d.len() == 10 && chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
}

/// A price as micro-dollars per million tokens: a number (or a string of
/// one) from 0 to [`MAX_PRICE_PER_MILLION`] with at most 6 decimals.
fn micros(v: &Value) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let bad = || {
        format!(
            "{v} is not a price: USD per million tokens, a number from 0 to {MAX_PRICE_PER_MILLION} with at most 6 decimals"
        )
    };
    let n = n.filter(|n| n.is_finite()).ok_or_else(bad)?;
    if !(0.0..=MAX_PRICE_PER_MILLION as f64).contains(&n) {
        return Err(bad());
    }
    let scaled = n * MICROS as f64;
    let whole = scaled.round();
    if (scaled - whole).abs() > 1e-3 {
        return Err(bad());
    }
    Ok(whole as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: i64, output: i64) -> TokenTotals {
        TokenTotals { input, output }
    }

    #[test]
    fn the_built_in_table_parses_and_prices_claude_3_haiku_in_us_east_1() {
        let book = PriceBook::built_in();
        let (id, p) = book
            .find("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1")
            .unwrap();
        assert_eq!(id, "anthropic.claude-3-haiku-20240307-v1:0");
        assert_eq!((p.input, p.output), (125_000, 625_000));
        assert_eq!(p.prices_of.as_deref(), Some("2025-07-20"));
        // Not read for another region: no price there.
        assert!(
            book.find("anthropic.claude-3-haiku-20240307-v1:0", "eu-west-1")
                .is_none()
        );
    }

    #[test]
    fn a_missing_figure_keeps_its_reason_through_the_outbox() {
        // The pending notification is stored as JSON and read back for its retries.
        let c = Costing::NoTokens {
            why: "the manifest s3://b/k could not be read: AccessDenied: Access Denied".into(),
        };
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["kind"], "noTokens");
        assert_eq!(serde_json::from_value::<Costing>(stored).unwrap(), c);
        assert!(c.json(&JobStatus::Completed).is_null());
        assert_eq!(
            c.note().as_deref(),
            Some(
                "no estimate: no token totals, as the manifest s3://b/k could not be read: AccessDenied: Access Denied"
            )
        );
    }

    #[test]
    fn cents_round_half_up_once() {
        // 1,000,000 input tokens at $0.125/M and 1,000,000 output at $0.625/M.
        assert_eq!(cents(tokens(1_000_000, 1_000_000), 125_000, 625_000), 75);
        // $0.0175/M x 285,714 tokens = $0.00499999...: under half a cent.
        assert_eq!(cents(tokens(285_714, 0), 17_500, 0), 0);
        // $0.0175/M x 285,715 tokens = $0.0050000125: half a cent and more, up.
        assert_eq!(cents(tokens(285_715, 0), 17_500, 0), 1);
        // Exactly half a cent: 500,000 tokens at $0.01/M.
        assert_eq!(cents(tokens(500_000, 0), 10_000, 0), 1);
        // One rounding for the sum, not one per part: 0.4 + 0.4 cents is 1 cent.
        assert_eq!(cents(tokens(400_000, 400_000), 10_000, 10_000), 1);
        assert_eq!(cents(tokens(0, 0), 125_000, 625_000), 0);
    }

    #[test]
    fn thousands_of_millions_of_tokens_do_not_overflow() {
        // 5 billion input and 2 billion output tokens of Claude 3.5 Sonnet batch.
        assert_eq!(
            cents(tokens(5_000_000_000, 2_000_000_000), 1_500_000, 7_500_000),
            2_250_000 // $7,500 + $15,000
        );
        // The largest counts at the largest price still fit.
        let max = MAX_PRICE_PER_MILLION * MICROS;
        let c = cents(tokens(i64::MAX, i64::MAX), max, max);
        assert_eq!(
            u128::from(c),
            (2 * i64::MAX as u128 * max as u128 + PICO_PER_CENT / 2) / PICO_PER_CENT
        );
    }

    #[test]
    fn dollars_and_prices_read_as_people_write_them() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(7), "$0.07");
        assert_eq!(dollars(123_456_789), "$1,234,567.89");
        assert_eq!(price_text(17_500), "0.0175");
        assert_eq!(price_text(7_500_000), "7.5");
        assert_eq!(price_text(1_000_000), "1");
    }

    #[test]
    fn an_inference_profile_is_priced_by_its_own_price_first_then_its_model() {
        let book = PriceBook::with_overrides(
            r#"{"us.amazon.nova-lite-v1:0": {"input": 0.05, "output": 0.2}}"#,
        )
        .unwrap();
        let (id, p) = book.find("us.amazon.nova-lite-v1:0", "us-east-1").unwrap();
        assert_eq!(
            (id.as_str(), p.source),
            ("us.amazon.nova-lite-v1:0", PriceSource::Override)
        );
        let (id, p) = book.find("us.amazon.nova-pro-v1:0", "us-east-1").unwrap();
        assert_eq!(
            (id.as_str(), p.source),
            ("amazon.nova-pro-v1:0", PriceSource::Table)
        );
        let arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0";
        assert_eq!(
            book.find(arn, "us-east-1").unwrap().0,
            "amazon.nova-micro-v1:0"
        );
        let profile = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-1-8b-instruct-v1:0";
        assert_eq!(
            book.find(profile, "us-east-1").unwrap().0,
            "meta.llama3-1-8b-instruct-v1:0"
        );
    }

    #[test]
    fn overrides_beat_the_table_and_may_name_regions() {
        let book = PriceBook::with_overrides(
            r#"{"anthropic.claude-3-haiku-20240307-v1:0": {"input": "0.1", "output": 0.5, "regions": ["us-west-2"], "pricesOf": "2026-11-01"}}"#,
        )
        .unwrap();
        let (_, p) = book
            .find("anthropic.claude-3-haiku-20240307-v1:0", "us-west-2")
            .unwrap();
        assert_eq!((p.input, p.source), (100_000, PriceSource::Override));
        // In us-east-1 the override does not hold: the table's price does.
        let (_, p) = book
            .find("anthropic.claude-3-haiku-20240307-v1:0", "us-east-1")
            .unwrap();
        assert_eq!(p.source, PriceSource::Table);
    }

    #[test]
    fn malformed_overrides_are_refused_with_what_is_wrong() {
        for (text, says) in [
            ("not json", "not JSON"),
            ("[1, 2]", "expected an object"),
            (r#"{"m": 3}"#, "expected an object with input and output"),
            (r#"{"m": {"input": 1}}"#, "output is missing"),
            (r#"{"m": {"input": -1, "output": 1}}"#, "is not a price"),
            (r#"{"m": {"input": 1e9, "output": 1}}"#, "is not a price"),
            (
                r#"{"m": {"input": 0.0000001, "output": 1}}"#,
                "at most 6 decimals",
            ),
            (
                r#"{"m": {"input": 1, "output": 1, "inputPrice": 2}}"#,
                "unknown field \"inputPrice\"",
            ),
            (
                r#"{"m": {"input": 1, "output": 1, "regions": ["mars-1"]}}"#,
                "not an AWS region",
            ),
            (
                r#"{"m": {"input": 1, "output": 1, "pricesOf": "last week"}}"#,
                "YYYY-MM-DD",
            ),
            (r#"{"has space": {"input": 1, "output": 1}}"#, "no spaces"),
        ] {
            let err = PriceBook::with_overrides(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn the_whole_table_shape_is_accepted_as_overrides() {
        let book = PriceBook::with_overrides(BUILT_IN).unwrap();
        let (_, p) = book.find("amazon.nova-micro-v1:0", "us-east-1").unwrap();
        assert_eq!(p.source, PriceSource::Override);
    }

    #[test]
    fn a_costing_survives_the_pending_notification_it_is_stored_in() {
        let book = PriceBook::built_in();
        for c in [
            book.costing_of(Some("amazon.nova-pro-v1:0"), "us-east-1", tokens(7, 9)),
            book.costing_of(None, "eu-west-1", tokens(1, 2)),
        ] {
            let text = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<Costing>(&text).unwrap(), c, "{text}");
        }
    }

    #[test]
    fn the_estimate_says_what_it_is_and_partial_runs_say_so() {
        let book = PriceBook::built_in();
        let c = book.costing_of(
            Some("anthropic.claude-3-haiku-20240307-v1:0"),
            "us-east-1",
            tokens(2_000_000, 400_000),
        );
        let e = c.estimate().unwrap();
        assert_eq!(e.cents, 50);
        let text = c.text(&JobStatus::Completed);
        assert!(
            text.starts_with(
                "$0.50 (estimate, before taxes and discounts): 2000000 input tokens x $0.125/M"
            ),
            "{text}"
        );
        assert!(!text.contains("manifest"));
        assert!(
            c.text(&JobStatus::Stopped)
                .contains("prices only the tokens its manifest reports")
        );
        let j = c.json(&JobStatus::PartiallyCompleted);
        assert_eq!(j["usd"], json!(0.5));
        assert_eq!(j["source"], json!("table"));
        assert_eq!(j["pricesOf"], json!("2025-07-20"));
        assert_eq!(j["partial"], json!(true));
        let none = book.costing_of(
            Some("mistral.mistral-large-2407-v1:0"),
            "us-east-1",
            tokens(1, 1),
        );
        assert_eq!(none.json(&JobStatus::Completed), Value::Null);
        assert!(none.text(&JobStatus::Completed).contains("PRICES"));
    }
}
