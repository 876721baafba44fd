//! The account's batch quota beside each waiting job: the poll keeps, for
//! every (account, region) with a waiting job, what Service Quotas allows
//! each model and how many of the account's jobs hold a slot; `list`,
//! `describe`, the `queuedTooLong` warning and the digest say it.
//!
//! Cost: the limits (ListFoundationModels, one request, and every page of
//! ListServiceQuotas for `bedrock`) are read once per [`LIMITS_FOR`] per
//! (account, region); the slots in use (one ListModelInvocationJobs listing
//! per status in [`HOLDS_A_SLOT`], `statusEquals`, all of the account's
//! jobs) once per [`USAGE_FOR`]. The poll's other listings cannot give the
//! count: a bulk read lists only jobs submitted since the oldest watched one
//! and stops once it found them, discovery only those since its watermark.
//! What was read is kept in memory (a warm invocation asks nothing) and in
//! the table (a cold start reads one item a pair, no listing). A pair with
//! no waiting job costs nothing. The reads run within the listing share of
//! the poll's budget, so they never hold a poll past its deadline.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

use super::{Budget, Invocation, Monitor};
use crate::domain::{
    HOLDS_A_SLOT, JobArn, JobSnapshot, JobStatus, QuotaBook, QuotaUse, Standing, WorkEntry,
    waits_long,
};
use crate::ports::{JobSource, ListQuery, Notifier, QuotaError, WorkList};

/// The share of a model's quota at which the digest says it is near.
pub const NEAR_QUOTA: f64 = 0.8;

/// What a poll's quota reads came to (the answer's `quotas`).
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct QuotaReads {
    /// (account, region) pairs with a waiting job.
    pub pairs: usize,
    /// Pairs whose limits or count could not be read this poll (said in the
    /// log; their jobs' quota is "quota unknown: <reason>").
    pub unknown: usize,
}

impl<S: JobSource, T: WorkList, N: Notifier> Monitor<S, T, N> {
    /// Brings up to date what is known of the quotas of every (account,
    /// region) with a job among `jobs` that has waited [`QUOTA_AFTER`] or
    /// longer, within the listing share of `budget`. Nothing is read for a
    /// pair whose book is still good, nor for a pair without such a job.
    ///
    /// [`QUOTA_AFTER`]: crate::domain::QUOTA_AFTER
    pub(super) async fn refresh_quotas<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a WorkEntry>,
        inv: &Invocation,
        budget: &Budget,
    ) -> QuotaReads {
        let now = Utc::now();
        let pairs: BTreeSet<(String, String)> = jobs
            .into_iter()
            .filter(|e| e.needs_polling() && waits_long(&e.status, e.submit_time, now))
            .filter(|e| self.config.reads_account(e.job_arn.account()))
            .map(|e| {
                (
                    e.job_arn.account().to_owned(),
                    e.job_arn.region().to_owned(),
                )
            })
            .collect();
        let mut reads = QuotaReads {
            pairs: pairs.len(),
            unknown: 0,
        };
        if pairs.is_empty() || budget.past_start() {
            return reads;
        }
        let until = budget.listing_share();
        let each = pairs.iter().map(|(account, region)| async move {
            let work = self.refresh_pair(account, region, inv);
            match until {
                Some(t) => tokio::time::timeout_at(t.into(), work)
                    .await
                    .unwrap_or_else(|_| {
                        warn!(
                            account,
                            region,
                            error_kind = "QuotaUnknown",
                            "the quota reads ran out of the poll's listing time; the last ones known stand"
                        );
                        false
                    }),
                None => work.await,
            }
        });
        let known = futures::future::join_all(each).await;
        reads.unknown = known.iter().filter(|ok| !**ok).count();
        reads
    }

    /// One pair: the book from memory, else the table, read again where it
    /// is due, and saved where it changed. False when something could not
    /// be read.
    async fn refresh_pair(&self, account: &str, region: &str, inv: &Invocation) -> bool {
        let key = (account.to_owned(), region.to_owned());
        let now = Utc::now();
        let cached = self.cached_book(&key);
        let stored = match cached {
            Some(b) => Some(b),
            None => match self.store.load_quota(account, region).await {
                Ok(b) => b,
                Err(e) => {
                    warn!(account, region, error_kind = e.kind(), error = %e, "the quota kept in the table could not be read; reading the quotas again");
                    None
                }
            },
        };
        let before = stored.clone();
        let mut book = stored.unwrap_or_else(|| QuotaBook::new(account, region));
        let mut ok = true;
        // The limits and the count at once: the time a poll waits is the
        // longer of the two, not their sum.
        let (limits, used) = futures::join!(
            async {
                match book.limits_due(now) {
                    true => Some(self.read_limits(account, region, inv).await),
                    false => None,
                }
            },
            async {
                match book.used_due(now) {
                    true => Some(self.read_used(account, region, inv).await),
                    false => None,
                }
            }
        );
        match limits {
            Some(Ok((models, quotas))) => {
                book.set_limits(&models, &quotas, now);
                info!(
                    account,
                    region,
                    models = models.len(),
                    with_quota = book.models.values().filter(|m| m.limit.is_some()).count(),
                    "batch quotas read"
                );
            }
            Some(Err(e)) => {
                warn!(account, region, error_kind = "QuotaUnknown", error = %e, "the batch quotas could not be read; the jobs' quota is unknown, nothing else changes");
                book.limits_error = Some(e.to_string());
                book.limits_at = Some(now);
                ok = false;
            }
            None => {}
        }
        match used {
            Some(Ok(jobs)) => book.set_used(
                jobs.iter()
                    .filter_map(|j| Some((j.model_id.as_deref()?, &j.status))),
                now,
            ),
            Some(Err(e)) => {
                warn!(account, region, error_kind = "QuotaUnknown", error = %e, "the account's running jobs could not be counted; the jobs' quota is unknown, nothing else changes");
                book.used_error = Some(e.to_string());
                book.used_at = None;
                ok = false;
            }
            None => {}
        }
        if before.as_ref() != Some(&book)
            && let Err(e) = self.store.save_quota(&book).await
        {
            warn!(account, region, error_kind = e.kind(), error = %e, "the quota read was not kept in the table; a cold start reads it again");
        }
        self.quotas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, book);
        ok
    }

    /// The region's foundation models and every page of the account's
    /// `bedrock` quotas.
    async fn read_limits(
        &self,
        account: &str,
        region: &str,
        inv: &Invocation,
    ) -> Result<(Vec<(String, String)>, Vec<(String, f64)>), QuotaError> {
        inv.calls.models.fetch_add(1, Ordering::Relaxed);
        let models = self.source.foundation_models(account, region).await?;
        let mut quotas = Vec::new();
        let mut token: Option<String> = None;
        loop {
            inv.calls.quotas.fetch_add(1, Ordering::Relaxed);
            let page = self
                .source
                .quota_page(account, region, token.as_deref())
                .await?;
            quotas.extend(page.quotas);
            match page.next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok((models, quotas))
    }

    /// The account's jobs in the region that hold a slot: one listing per
    /// status ([`HOLDS_A_SLOT`]), every page.
    async fn read_used(
        &self,
        account: &str,
        region: &str,
        inv: &Invocation,
    ) -> Result<Vec<JobSnapshot>, QuotaError> {
        let lists = HOLDS_A_SLOT.iter().map(|status| async move {
            let query = ListQuery {
                account,
                region,
                submitted_after: None,
                name_contains: None,
                status: Some(status),
            };
            self.bedrock(inv)
                .list_all(&query, None)
                .await
                .map(|(jobs, _)| jobs)
                .map_err(|e| QuotaError {
                    operation: "ListModelInvocationJobs",
                    message: e.to_string(),
                    cause: None,
                })
        });
        let mut jobs = Vec::new();
        for listed in futures::future::join_all(lists).await {
            jobs.extend(listed?);
        }
        Ok(jobs)
    }
}

impl<S, T, N> Monitor<S, T, N> {
    fn cached_book(&self, key: &(String, String)) -> Option<QuotaBook> {
        self.quotas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Where a waiting job's model stands against its quota, as this
    /// process knows it (`None`: not known here, or the job does not wait).
    pub(crate) fn standing_of(&self, job: &JobSnapshot) -> Option<Standing> {
        if !waits_long(&job.status, job.submit_time, Utc::now()) {
            return None;
        }
        let key = (
            job.job_arn.account().to_owned(),
            job.job_arn.region().to_owned(),
        );
        self.cached_book(&key)
            .map(|b| b.standing(job.model_id.as_deref()))
    }
}

impl<S, T: WorkList, N> Monitor<S, T, N> {
    /// The books of `pairs`, from memory or the table (one read a pair);
    /// a pair the table cannot give has none.
    pub(super) async fn books(
        &self,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> HashMap<(String, String), Result<QuotaBook, String>> {
        let mut out = HashMap::new();
        for key in pairs.into_iter().collect::<BTreeSet<_>>() {
            let book = match self.cached_book(&key) {
                Some(b) => Ok(b),
                None => match self.store.load_quota(&key.0, &key.1).await {
                    Ok(Some(b)) => Ok(b),
                    Ok(None) => Err("not read yet (no poll has met a waiting job here)".to_owned()),
                    Err(e) => {
                        warn!(account = key.0, region = key.1, error_kind = e.kind(), error = %e, "the quota kept in the table could not be read");
                        Err(format!("the table could not be read: {e}"))
                    }
                },
            };
            out.insert(key, book);
        }
        out
    }

    /// Adds `quota {used, limit, model, region}` to each job of a `list`
    /// or `describe` answer that has waited [`QUOTA_AFTER`] or longer
    /// (objects with `jobArn`, `status`, `submitTime` and, for `list`, the
    /// model given in `models`).
    ///
    /// [`QUOTA_AFTER`]: crate::domain::QUOTA_AFTER
    pub(super) async fn add_quotas(&self, jobs: &mut [Value], models: &HashMap<String, String>) {
        let now = Utc::now();
        let waiting = |j: &Value| {
            let status = j.get("status").and_then(Value::as_str)?;
            let submitted = j
                .get("submitTime")
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            waits_long(&JobStatus::parse(status), submitted, now).then_some(())?;
            j.get("jobArn")
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<JobArn>().ok())
        };
        let arns: Vec<Option<JobArn>> = jobs.iter().map(waiting).collect();
        let pairs = arns
            .iter()
            .flatten()
            .map(|a| (a.account().to_owned(), a.region().to_owned()));
        let books = self.books(pairs).await;
        for (job, arn) in jobs.iter_mut().zip(arns) {
            let Some(arn) = arn else { continue };
            let model = job
                .get("modelId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| models.get(arn.as_str()).cloned());
            let key = (arn.account().to_owned(), arn.region().to_owned());
            let standing = match books.get(&key) {
                Some(Ok(book)) => book.standing(model.as_deref()),
                Some(Err(why)) => Standing::Unknown {
                    region: key.1.clone(),
                    reason: why.clone(),
                },
                None => continue,
            };
            job["quota"] = standing.to_json();
        }
    }

    /// The models and regions at or near their quota among `pairs`, each
    /// with its account, for the digest: fullest first.
    pub(super) async fn capacity(
        &self,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Vec<(String, QuotaUse)> {
        let mut near: Vec<(String, QuotaUse)> = Vec::new();
        for book in self.books(pairs).await.into_values().flatten() {
            for (id, model) in &book.models {
                let Some(limit) = model.limit else { continue };
                let used = book.used.get(id).copied().unwrap_or(0);
                let q = QuotaUse {
                    used,
                    limit,
                    model: model.model_name.clone(),
                    region: book.region.clone(),
                };
                if book.used_at.is_some() && used > 0 && q.is_near(NEAR_QUOTA) {
                    near.push((book.account.clone(), q));
                }
            }
        }
        near.sort_by(|(x, a), (y, b)| {
            let share = |q: &QuotaUse| f64::from(q.used) / f64::from(q.limit.max(1));
            share(b)
                .total_cmp(&share(a))
                .then_with(|| (x, &a.region, &a.model).cmp(&(y, &b.region, &b.model)))
        });
        near
    }
}
