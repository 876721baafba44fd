//! The account's batch inference quota per model and region: what Service
//! Quotas allows, how many of the account's jobs hold a slot, and what that
//! means for a job that waits.
//!
//! Bedrock's quota is named "Sum of in-progress and submitted batch inference
//! jobs using a base model for <model>" (service code `bedrock`, default 20,
//! adjustable: https://docs.aws.amazon.com/general/latest/gr/bedrock.html#limits_bedrock,
//! the table the Bedrock user guide's quotas page points to:
//! https://docs.aws.amazon.com/bedrock/latest/userguide/quotas.html). The
//! model is named by its display name, Bedrock's `ListFoundationModels`
//! `modelName`, so the quota is matched to a job's `modelId` through it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::JobStatus;

/// The quota's name, less the model's display name at its end.
pub const QUOTA_NAME_PREFIX: &str =
    "Sum of in-progress and submitted batch inference jobs using a base model for ";

/// The statuses of a job that holds one of the quota's slots: the quota's
/// own words, "in-progress and submitted" jobs, Bedrock's `InProgress` and
/// `Submitted` (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ModelInvocationJobSummary.html
/// lists the statuses). A job Bedrock has validated and queued (`Scheduled`:
/// "in a queue. The job will automatically start when it reaches its turn")
/// waits for a slot rather than holding one, so the count is of the jobs
/// ahead of it; each status is one listing (`statusEquals`) a count.
pub const HOLDS_A_SLOT: [JobStatus; 2] = [JobStatus::Submitted, JobStatus::InProgress];

/// The statuses of a job that waits to run (what `list`, `describe` and
/// `queuedTooLong` give the quota for).
pub fn is_waiting(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Submitted | JobStatus::Validating | JobStatus::Scheduled
    )
}

/// How long a job waits before its quota is looked up: Bedrock takes
/// minutes to validate and schedule a job, so a job younger than this waits
/// for Bedrock, not yet for a slot. It also keeps the quota reads to the
/// accounts and regions where something has waited that long.
pub const QUOTA_AFTER: chrono::Duration = chrono::Duration::minutes(30);

/// A job that waits (see [`is_waiting`]) and was submitted at least
/// [`QUOTA_AFTER`] before `now`: the quota is given beside it.
pub fn waits_long(
    status: &JobStatus,
    submitted: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    is_waiting(status) && submitted.is_some_and(|t| now - t >= QUOTA_AFTER)
}

/// A job's `modelId` as Service Quotas and the model list key it: the
/// foundation model's id, from an ARN (`arn:aws:bedrock:<region>::foundation-model/<id>`)
/// or as given.
pub fn model_key(model_id: &str) -> &str {
    match model_id.split_once(":foundation-model/") {
        Some((_, id)) => id,
        None => model_id,
    }
}

/// One foundation model of a region: its display name and, when Service
/// Quotas has one named for it, its batch quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelQuota {
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// What the monitor knows of one account's quotas in one region. Limits
/// (Service Quotas and the model list) are read rarely ([`LIMITS_FOR`]),
/// the slots in use more often ([`USAGE_FOR`]); each says when it was read,
/// or why it could not be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaBook {
    pub account: String,
    pub region: String,
    /// Model id -> its name and limit.
    #[serde(default)]
    pub models: BTreeMap<String, ModelQuota>,
    /// When the limits were last read (or tried, when `limits_error`).
    #[serde(default)]
    pub limits_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits_error: Option<String>,
    /// Model id -> the account's jobs of it that hold a slot.
    #[serde(default)]
    pub used: BTreeMap<String, u32>,
    #[serde(default)]
    pub used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_error: Option<String>,
}

/// How long the limits read stay good: quotas change when someone asks
/// Service Quotas for more, which takes hours to days.
pub const LIMITS_FOR: chrono::Duration = chrono::Duration::hours(6);
/// How long a failed read of the limits is not tried again (a missing
/// permission must not cost a full listing every poll).
pub const LIMITS_RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(30);
/// How long a count of the slots in use stays good. A job waits hours; a
/// count five minutes old tells why as well, for a fifth of the listings
/// of a 1-minute schedule.
pub const USAGE_FOR: chrono::Duration = chrono::Duration::minutes(5);

impl QuotaBook {
    pub fn new(account: &str, region: &str) -> Self {
        Self {
            account: account.to_owned(),
            region: region.to_owned(),
            ..Self::default()
        }
    }

    /// The limits are due to be read again at `now`.
    pub fn limits_due(&self, now: DateTime<Utc>) -> bool {
        let keep = match self.limits_error {
            Some(_) => LIMITS_RETRY_AFTER,
            None => LIMITS_FOR,
        };
        self.limits_at.is_none_or(|at| now - at >= keep)
    }

    /// The count of slots in use is due to be read again at `now`.
    pub fn used_due(&self, now: DateTime<Utc>) -> bool {
        self.used_at.is_none_or(|at| now - at >= USAGE_FOR)
    }

    /// Sets the limits from the region's models (id, display name) and the
    /// account's `bedrock` quotas (name, value).
    pub fn set_limits(
        &mut self,
        models: &[(String, String)],
        quotas: &[(String, f64)],
        at: DateTime<Utc>,
    ) {
        let by_name: BTreeMap<&str, f64> = quotas
            .iter()
            .filter_map(|(name, value)| {
                name.strip_prefix(QUOTA_NAME_PREFIX)
                    .map(|m| (m.trim(), *value))
            })
            .collect();
        self.models = models
            .iter()
            .map(|(id, name)| {
                let limit = by_name
                    .get(name.trim())
                    .filter(|v| v.is_finite() && **v >= 0.0)
                    .map(|v| v.round().min(f64::from(u32::MAX)) as u32);
                (
                    id.clone(),
                    ModelQuota {
                        model_name: name.clone(),
                        limit,
                    },
                )
            })
            .collect();
        self.limits_at = Some(at);
        self.limits_error = None;
    }

    /// Counts the slots in use from the account's jobs (model id, status)
    /// in the region, as listed.
    pub fn set_used<'a>(
        &mut self,
        jobs: impl IntoIterator<Item = (&'a str, &'a JobStatus)>,
        at: DateTime<Utc>,
    ) {
        let mut used = BTreeMap::new();
        for (model, status) in jobs {
            if HOLDS_A_SLOT.contains(status) {
                *used.entry(model_key(model).to_owned()).or_insert(0) += 1;
            }
        }
        self.used = used;
        self.used_at = Some(at);
        self.used_error = None;
    }

    /// Where a job of `model_id` stands against its quota.
    pub fn standing(&self, model_id: Option<&str>) -> Standing {
        let region = self.region.clone();
        if let Some(why) = self
            .limits_error
            .as_ref()
            .filter(|_| self.models.is_empty())
        {
            return Standing::Unknown {
                region,
                reason: why.clone(),
            };
        }
        let Some(model_id) = model_id else {
            return Standing::Unknown {
                region,
                reason: "the job names no model".to_owned(),
            };
        };
        let key = model_key(model_id);
        if self.limits_at.is_none() {
            return Standing::Unknown {
                region,
                reason: "not read yet".to_owned(),
            };
        }
        let Some(model) = self.models.get(key) else {
            return Standing::NoQuota {
                model: key.to_owned(),
                region,
                why: format!(
                    "{key} is not among the region's foundation models (ListFoundationModels)"
                ),
            };
        };
        let Some(limit) = model.limit else {
            return Standing::NoQuota {
                model: model.model_name.clone(),
                region,
                why: format!(
                    "Service Quotas has no quota named \"{QUOTA_NAME_PREFIX}{}\"",
                    model.model_name
                ),
            };
        };
        if let Some(why) = &self.used_error
            && self.used_at.is_none()
        {
            return Standing::Unknown {
                region,
                reason: why.clone(),
            };
        }
        Standing::Known(QuotaUse {
            used: self.used.get(key).copied().unwrap_or(0),
            limit,
            model: model.model_name.clone(),
            region,
        })
    }
}

/// How many of a model's slots are in use in a region, of how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUse {
    pub used: u32,
    pub limit: u32,
    /// The model's display name.
    pub model: String,
    pub region: String,
}

impl QuotaUse {
    pub fn is_full(&self) -> bool {
        self.used >= self.limit
    }

    /// At or above `share` of the limit (0.8: near its quota).
    pub fn is_near(&self, share: f64) -> bool {
        self.limit == 0 || f64::from(self.used) >= share * f64::from(self.limit)
    }
}

/// Where a job stands against its model's quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Known(QuotaUse),
    /// No quota matches the job's model.
    NoQuota {
        model: String,
        region: String,
        why: String,
    },
    /// The quota or the model list could not be read (or not yet).
    Unknown {
        region: String,
        reason: String,
    },
}

impl Standing {
    /// What a waiting job's warning says of it.
    pub fn sentence(&self) -> String {
        match self {
            Self::Known(q) if q.is_full() => format!(
                "{} of {} slots for {} in {} are in use; this job waits for one",
                q.used, q.limit, q.model, q.region
            ),
            Self::Known(q) => format!(
                "{} of {} slots for {} in {} are in use, so it is not the quota that holds this job",
                q.used, q.limit, q.model, q.region
            ),
            Self::NoQuota { model, region, why } => {
                format!("no batch inference quota matches {model} in {region}: {why}")
            }
            Self::Unknown { reason, .. } => format!("quota unknown: {reason}"),
        }
    }

    /// `quota {used, limit, model, region}` as `list` and `describe` give it
    /// (with `unknown` or `noQuota` saying why when there are no numbers).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Known(q) => serde_json::json!({
                "used": q.used, "limit": q.limit, "model": q.model, "region": q.region,
                "full": q.is_full(),
            }),
            Self::NoQuota { model, region, why } => serde_json::json!({
                "used": null, "limit": null, "model": model, "region": region,
                "noQuota": why,
            }),
            Self::Unknown { region, reason } => serde_json::json!({
                "used": null, "limit": null, "model": null, "region": region,
                "unknown": format!("quota unknown: {reason}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(m: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000 + m * 60, 0).unwrap()
    }

    fn book() -> QuotaBook {
        let mut b = QuotaBook::new("123456789012", "us-east-1");
        b.set_limits(
            &[
                (
                    "anthropic.claude-3-haiku-20240307-v1:0".into(),
                    "Claude 3 Haiku".into(),
                ),
                (
                    "amazon.titan-embed-text-v2:0".into(),
                    "Titan Text Embeddings V2".into(),
                ),
            ],
            &[
                (format!("{QUOTA_NAME_PREFIX}Claude 3 Haiku"), 20.0),
                (
                    "Batch inference job size (in GB) for Claude 3 Haiku".into(),
                    5.0,
                ),
            ],
            t(0),
        );
        b
    }

    #[test]
    fn a_full_quota_should_say_the_job_waits_for_a_slot() {
        let mut b = book();
        let haiku =
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0";
        let statuses = vec![JobStatus::InProgress; 20];
        b.set_used(statuses.iter().map(|s| (haiku, s)), t(1));
        assert_eq!(
            b.standing(Some("anthropic.claude-3-haiku-20240307-v1:0"))
                .sentence(),
            "20 of 20 slots for Claude 3 Haiku in us-east-1 are in use; this job waits for one"
        );
    }

    #[test]
    fn ended_and_stopping_jobs_should_hold_no_slot() {
        let mut b = book();
        let m = "anthropic.claude-3-haiku-20240307-v1:0";
        let statuses = [
            JobStatus::Scheduled,
            JobStatus::InProgress,
            JobStatus::Completed,
            JobStatus::Stopping,
            JobStatus::Failed,
        ];
        b.set_used(statuses.iter().map(|s| (m, s)), t(1));
        let Standing::Known(q) = b.standing(Some(m)) else {
            panic!("known")
        };
        assert_eq!((q.used, q.limit, q.is_full()), (1, 20, false));
        assert!(b.standing(Some(m)).sentence().contains("not the quota"));
    }

    #[test]
    fn a_model_without_a_quota_should_say_none_matches() {
        let b = book();
        let s = b.standing(Some("amazon.titan-embed-text-v2:0"));
        assert!(matches!(s, Standing::NoQuota { .. }), "{s:?}");
        assert!(
            s.sentence()
                .starts_with("no batch inference quota matches Titan Text Embeddings V2")
        );
        let s = b.standing(Some("meta.llama-unknown"));
        assert!(matches!(s, Standing::NoQuota { .. }), "{s:?}");
    }

    #[test]
    fn limits_should_be_read_again_after_hours_and_a_failure_sooner() {
        let mut b = book();
        assert!(!b.limits_due(t(60)));
        assert!(b.limits_due(t(6 * 60)));
        b.limits_error = Some("AccessDenied".into());
        assert!(b.limits_due(t(30)));
        assert!(b.used_due(t(0)));
        b.set_used([], t(0));
        assert!(!b.used_due(t(4)) && b.used_due(t(5)));
    }
}
