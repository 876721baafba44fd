//! Early warnings: what a job that has not ended yet shows before it goes
//! wrong. Pure: the thresholds, a job as stored and the time in; the warnings
//! due out, each with the words its notification carries.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{JobSnapshot, JobStatus, Progress, Standing, StoredJob, Warning, WarningKind};

/// When each warning fires; `None` turns one off.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// `WARN_QUEUED_AFTER` (default 12h): Submitted, Validating or Scheduled this
    /// long after `submitTime`.
    pub queued_after: Option<Duration>,
    /// `WARN_EXPIRY_WITHIN` (default 6h): not yet InProgress and
    /// `jobExpirationTime` this close.
    pub expiry_within: Option<Duration>,
    /// `WARN_STALLED_AFTER` (default 2h): InProgress with `processedRecordCount`
    /// unchanged this long.
    pub stalled_after: Option<Duration>,
    /// `WARN_ERROR_RATE` (default 0.05): errors over processed records above this...
    pub error_rate: Option<f64>,
    /// ...once `WARN_ERROR_MIN_RECORDS` (default 100) records are processed.
    pub error_min_records: i64,
}

pub const DEFAULT_QUEUED_AFTER: Duration = Duration::from_secs(12 * 3600);
pub const DEFAULT_EXPIRY_WITHIN: Duration = Duration::from_secs(6 * 3600);
/// How often a running job's count is written down when `stalled` is off
/// (the ETA's rate still needs it): what the default `WARN_STALLED_AFTER` gives.
pub const PROGRESS_INTERVAL_WITHOUT_STALLED: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_STALLED_AFTER: Duration = Duration::from_secs(2 * 3600);
pub const DEFAULT_ERROR_RATE: f64 = 0.05;
pub const DEFAULT_ERROR_MIN_RECORDS: i64 = 100;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            queued_after: Some(DEFAULT_QUEUED_AFTER),
            expiry_within: Some(DEFAULT_EXPIRY_WITHIN),
            stalled_after: Some(DEFAULT_STALLED_AFTER),
            error_rate: Some(DEFAULT_ERROR_RATE),
            error_min_records: DEFAULT_ERROR_MIN_RECORDS,
        }
    }
}

/// A threshold that is not `<number><s|m|h|d>` (up to 366 days) or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a duration such as 90s, 45m, 12h or 2d (up to 366d), nor off")]
pub struct BadThreshold;

/// Reads `90s`, `45m`, `12h`, `2d` or `off` (`None`).
pub fn parse_threshold(s: &str) -> Result<Option<Duration>, BadThreshold> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or(BadThreshold)?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| BadThreshold)?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(BadThreshold),
    };
    match n.checked_mul(unit_secs) {
        Some(secs) if secs > 0 && secs <= 366 * 86_400 => Ok(Some(Duration::from_secs(secs))),
        _ => Err(BadThreshold),
    }
}

/// A duration the way the thresholds are written: `2d`, `12h`, `45m`, `90s`.
pub fn format_threshold(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// An elapsed time for people: `2d 3h`, `5h 12m`, `7m`, `40s`.
pub fn human(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn is_waiting(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Submitted | JobStatus::Validating | JobStatus::Scheduled
    )
}

/// What the warnings look at: Bedrock's latest state of a job that has not
/// ended, and what the table keeps for it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub snapshot: &'a JobSnapshot,
    /// Kinds already sent (each is sent once).
    pub warned: &'a [WarningKind],
    pub progress: Option<Progress>,
    /// When the job was first seen InProgress, from its history (`None`
    /// when not known: then `errorRate` counts from now).
    pub running_since: Option<DateTime<Utc>>,
    /// Where the job's model stands against the account's batch quota in
    /// its region, when the poll knows (`queuedTooLong` says it).
    pub quota: Option<&'a Standing>,
}

impl<'a> Subject<'a> {
    pub fn of(job: &'a StoredJob) -> Self {
        Self {
            snapshot: &job.snapshot,
            warned: &job.warned,
            progress: job.progress,
            running_since: job
                .phases()
                .into_iter()
                .find(|(s, _)| *s == JobStatus::InProgress)
                .map(|(_, at)| at),
            quota: None,
        }
    }

    /// The same, with where its model stands against the quota.
    pub fn with_quota(mut self, quota: Option<&'a Standing>) -> Self {
        self.quota = quota;
        self
    }
}

impl Thresholds {
    /// How often a running job's moving record count is written down (for
    /// `stalled` and the rate its ETA uses): a quarter of
    /// `WARN_STALLED_AFTER`, so a stall is seen at most that much late, or
    /// [`PROGRESS_INTERVAL_WITHOUT_STALLED`] when `stalled` is off.
    pub fn progress_interval(&self) -> chrono::Duration {
        self.stalled_after
            .and_then(|d| chrono::Duration::from_std(d / 4).ok())
            .unwrap_or_else(|| {
                chrono::Duration::from_std(PROGRESS_INTERVAL_WITHOUT_STALLED)
                    .unwrap_or(chrono::Duration::MAX)
            })
    }

    /// The warnings due for `job` at `now` that it has not been sent yet, in
    /// the order of [`WarningKind::ALL`].
    pub fn due(&self, job: &StoredJob, now: DateTime<Utc>) -> Vec<Warning> {
        self.due_with(job, now, None)
    }

    /// [`due`](Self::due), saying where the job's model stands against its
    /// quota when that is known.
    pub fn due_with(
        &self,
        job: &StoredJob,
        now: DateTime<Utc>,
        quota: Option<&Standing>,
    ) -> Vec<Warning> {
        if !job.needs_polling() {
            return Vec::new();
        }
        self.due_for(&Subject::of(job).with_quota(quota), now)
    }

    /// The warnings due for what a poll knows of a job (see [`Subject`]).
    pub fn due_for(&self, job: &Subject<'_>, now: DateTime<Utc>) -> Vec<Warning> {
        WarningKind::ALL
            .into_iter()
            .filter(|k| !job.warned.contains(k))
            .filter_map(|k| self.check(k, job, now))
            .collect()
    }

    fn check(&self, kind: WarningKind, job: &Subject<'_>, now: DateTime<Utc>) -> Option<Warning> {
        let j = job.snapshot;
        let stop = format!(
            "If the job is no longer wanted, stop it: aws bedrock stop-model-invocation-job --job-identifier {} --region {}",
            j.job_arn,
            j.job_arn.region()
        );
        let model = j.model_id.as_deref().unwrap_or("its model");
        match kind {
            WarningKind::QueuedTooLong => {
                let limit = self.queued_after?;
                let submitted = j.submit_time?;
                let waited = now - submitted;
                if !is_waiting(&j.status) || waited.to_std().ok()? <= limit {
                    return None;
                }
                // Why it waits, when the poll knows the model's quota: the
                // slots the account's jobs hold, or that it is not the quota.
                let quota = job
                    .quota
                    .map_or(String::new(), |q| format!("; {}", q.sentence()));
                let check = match job.quota {
                    Some(Standing::Known(q)) if q.is_full() => format!(
                        "The account's jobs of {} hold every slot of its batch quota in {}: this job starts when one of them ends. Ask Service Quotas for more (\"{}{}\"), or stop a job that is no longer wanted",
                        q.model,
                        q.region,
                        crate::domain::QUOTA_NAME_PREFIX,
                        q.model
                    ),
                    Some(Standing::Known(_)) => format!(
                        "The account's batch quota for {model} in {} has free slots: the wait is Bedrock's capacity, not the quota",
                        j.job_arn.region()
                    ),
                    _ => format!(
                        "Check the account's batch inference quotas for {model} in {} (Service Quotas): jobs waiting behind others start only as capacity frees",
                        j.job_arn.region()
                    ),
                };
                Some(Warning {
                    kind,
                    seen: format!(
                        "still {} {} after it was submitted at {} (the warning threshold is {}){quota}",
                        j.status,
                        human(waited),
                        iso(submitted),
                        format_threshold(limit)
                    ),
                    since: submitted,
                    threshold: format_threshold(limit),
                    advice: vec![check, stop],
                })
            }
            WarningKind::NearExpiry => {
                let limit = self.expiry_within?;
                let expires = j.job_expiration_time?;
                let left = expires - now;
                let near = left.to_std().map_or(true, |l| l <= limit);
                if !is_waiting(&j.status) || !near {
                    return None;
                }
                Some(Warning {
                    kind,
                    seen: format!(
                        "still {} and not yet running; Bedrock expires it at {} ({}), within the warning threshold of {}",
                        j.status,
                        iso(expires),
                        if left.num_seconds() > 0 {
                            format!("in {}", human(left))
                        } else {
                            "already past".to_owned()
                        },
                        format_threshold(limit)
                    ),
                    since: j.submit_time.unwrap_or(now),
                    threshold: format_threshold(limit),
                    advice: vec![
                        "A job that has not finished by its expiration time ends Expired and its work is lost: check the quotas for the model, or split the input into smaller jobs".to_owned(),
                        stop,
                    ],
                })
            }
            WarningKind::Stalled => {
                let limit = self.stalled_after?;
                let progress = job.progress?;
                let still = now - progress.since;
                // The count read now must be the one written down: one that
                // moved since (and waits to be written down) is no stall.
                let unmoved = j.records.and_then(|r| r.processed) == Some(progress.processed);
                if j.status != JobStatus::InProgress || !unmoved || still.to_std().ok()? <= limit {
                    return None;
                }
                let of = j
                    .records
                    .and_then(|r| r.total)
                    .map_or(String::new(), |t| format!(" of {t}"));
                Some(Warning {
                    kind,
                    seen: format!(
                        "InProgress with {}{of} records processed, unchanged since {} ({}, the warning threshold is {})",
                        progress.processed,
                        iso(progress.since),
                        human(still),
                        format_threshold(limit)
                    ),
                    since: progress.since,
                    threshold: format_threshold(limit),
                    advice: vec![
                        format!(
                            "Look at the input around record {} and at the service role's access to the input and output buckets",
                            progress.processed + 1
                        ),
                        stop,
                    ],
                })
            }
            WarningKind::ErrorRate => {
                let limit = self.error_rate?;
                let r = j.records?;
                let (processed, errors) = (r.processed?, r.error?);
                if processed < self.error_min_records.max(1) {
                    return None;
                }
                let rate = errors as f64 / processed as f64;
                if rate <= limit {
                    return None;
                }
                let since = job.running_since.unwrap_or(now);
                let output = j.output_s3_uri.as_deref().map_or(String::new(), |o| {
                    format!(" ({}/{}/)", o.trim_end_matches('/'), j.job_arn.job_id())
                });
                Some(Warning {
                    kind,
                    seen: format!(
                        "{errors} of {processed} processed records failed ({:.1}%) while {}, above the warning threshold of {:.1}%",
                        rate * 100.0,
                        j.status,
                        limit * 100.0
                    ),
                    since,
                    threshold: format!("{limit}"),
                    advice: vec![
                        format!(
                            "Look at the failed records in the output location{output} and fix the input they come from"
                        ),
                        format!("Every further failing record is still billed. {stop}"),
                    ],
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_should_read_units_and_off() {
        assert_eq!(parse_threshold("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_threshold("45m"), Ok(Some(Duration::from_secs(2700))));
        assert_eq!(
            parse_threshold("12h"),
            Ok(Some(Duration::from_secs(43_200)))
        );
        assert_eq!(
            parse_threshold("2d"),
            Ok(Some(Duration::from_secs(172_800)))
        );
        assert_eq!(parse_threshold("off"), Ok(None));
        for bad in ["", "12", "h", "-1h", "1.5h", "0s", "12 h", "400d", "1w"] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn thresholds_should_print_as_written() {
        for s in ["90s", "45m", "12h", "2d"] {
            assert_eq!(format_threshold(parse_threshold(s).unwrap().unwrap()), s);
        }
    }
}
