//! The digest: proof of life. What runs, what ended since the previous
//! digest, the warnings still open and the monitor's own health, built from
//! the table alone. Pure: the use case reads, this decides.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{JobArn, JobStatus, RecordCounts, StoredJob, TokenTotals, WarningKind};

/// At most this many jobs in each list of one digest (the counts say how
/// many there were): a digest stays far under SNS's message limit.
pub const DIGEST_LIST_MAX: usize = 50;
/// What the first digest looks back over, with no previous one to start at.
pub const FIRST_DIGEST_WINDOW: chrono::Duration = chrono::Duration::hours(24);
/// A status change is written a moment after it is observed: an end observed
/// this long before the previous digest but written after it read the table
/// is still reported once, by the next digest.
pub const LATE_WRITE_MARGIN: chrono::Duration = chrono::Duration::minutes(5);

/// The monitor's own counts, as the table keeps them (from its first poll).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Poll invocations that ran.
    pub polls: u64,
    /// Invocations that failed (a systemic fault), as far as the table could
    /// record them.
    pub failed_invocations: u64,
}

/// What the previous digest covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMark {
    pub at: DateTime<Utc>,
    pub health: Health,
    /// The ends it reported that were observed within [`LATE_WRITE_MARGIN`]
    /// of its time, so the next digest does not report them again.
    pub reported: Vec<String>,
}

/// A job that has not ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub job_arn: JobArn,
    pub job_name: Option<String>,
    pub status: JobStatus,
    pub submit_time: Option<DateTime<Utc>>,
    pub records: Option<RecordCounts>,
    pub eta: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    /// Early warnings sent for it (they stay open while it runs).
    pub warnings: Vec<WarningKind>,
}

/// A job whose end was recorded inside the digest's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub job_arn: JobArn,
    pub job_name: Option<String>,
    pub status: JobStatus,
    /// When the monitor recorded the end.
    pub ended_at: DateTime<Utc>,
    /// Bedrock's message, untrusted.
    pub message: Option<String>,
    pub records: Option<RecordCounts>,
    pub tokens: Option<TokenTotals>,
    pub labels: BTreeMap<String, String>,
}

/// A notification set aside inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAsideNote {
    pub job_arn: JobArn,
    pub transition_id: String,
    pub status: JobStatus,
    pub at: DateTime<Utc>,
}

/// One digest, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// Stable for this digest: subscribers drop repeats by it.
    pub id: String,
    pub at: DateTime<Utc>,
    /// The previous digest's time, or [`FIRST_DIGEST_WINDOW`] before `at`.
    pub since: DateTime<Utc>,
    pub first: bool,
    /// Newest submitted first; at most [`DIGEST_LIST_MAX`] of `running_total`.
    pub running: Vec<Running>,
    pub running_total: usize,
    /// Latest end first; at most [`DIGEST_LIST_MAX`] of `ended_total`.
    pub ended: Vec<Ended>,
    pub ended_total: usize,
    /// Running jobs with a warning sent.
    pub warnings_total: usize,
    pub polls: u64,
    pub failed_invocations: u64,
    pub set_aside: Vec<SetAsideNote>,
    pub set_aside_total: usize,
    /// The mark to save once the digest is published.
    pub mark: DigestMark,
}

impl Digest {
    /// Nothing ran, ended, warned or went wrong in the window.
    pub fn is_quiet(&self) -> bool {
        self.running_total == 0
            && self.ended_total == 0
            && self.failed_invocations == 0
            && self.set_aside_total == 0
    }

    /// The running jobs with an open warning.
    pub fn open_warnings(&self) -> impl Iterator<Item = &Running> {
        self.running.iter().filter(|r| !r.warnings.is_empty())
    }
}

fn end_key(arn: &JobArn, at: DateTime<Utc>) -> String {
    format!("{arn}@{}", at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The digest at `at` of `jobs` (every job item the table keeps), after
/// `previous`, with the health counts as they stand now.
pub fn build(
    jobs: &[StoredJob],
    previous: Option<&DigestMark>,
    health: Health,
    at: DateTime<Utc>,
) -> Digest {
    let since = previous.map_or(at - FIRST_DIGEST_WINDOW, |p| p.at);
    // Ends observed a little before the previous digest may have been
    // written after it read the table: look back that far, minus those it
    // reported.
    let look_from = previous.map_or(since, |p| p.at - LATE_WRITE_MARGIN);
    let reported_before: &[String] = previous.map_or(&[], |p| &p.reported);
    let mut running = Vec::new();
    let mut ended = Vec::new();
    let mut set_aside = Vec::new();
    for job in jobs.iter().filter(|j| j.untracked_at.is_none()) {
        if job.needs_polling() {
            running.push(Running {
                job_arn: job.arn().clone(),
                job_name: job.snapshot.job_name.clone(),
                status: job.snapshot.status.clone(),
                submit_time: job.snapshot.submit_time,
                records: job.snapshot.records.filter(|r| !r.is_empty()),
                eta: job.eta(),
                labels: job.labels.clone(),
                warnings: job.warned.clone(),
            });
        } else if job.snapshot.status.is_terminal()
            && let Some(end) = job
                .history
                .iter()
                .rev()
                .find(|h| h.to.is_terminal() && h.from.as_ref() != Some(&h.to))
            && end.at > look_from
            && end.at <= at
            && !reported_before.contains(&end_key(job.arn(), end.at))
        {
            ended.push(Ended {
                job_arn: job.arn().clone(),
                job_name: job.snapshot.job_name.clone(),
                status: end.to.clone(),
                ended_at: end.at,
                message: end.message.clone().filter(|m| !m.trim().is_empty()),
                records: job.snapshot.records.filter(|r| !r.is_empty()),
                tokens: job.tokens,
                labels: job.labels.clone(),
            });
        }
        for s in &job.undeliverable {
            if s.set_aside_at > look_from && s.set_aside_at <= at {
                set_aside.push(SetAsideNote {
                    job_arn: job.arn().clone(),
                    transition_id: s.transition_id.clone(),
                    status: s.status.clone(),
                    at: s.set_aside_at,
                });
            }
        }
    }
    // Set-aside notes are few and not reported twice by the window alone
    // unless they fall in the margin: drop those the previous digest saw.
    set_aside.retain(|s| s.at > since || !reported_before.contains(&s.transition_id));
    running.sort_by(|a, b| {
        b.submit_time
            .cmp(&a.submit_time)
            .then_with(|| a.job_arn.as_str().cmp(b.job_arn.as_str()))
    });
    // Jobs with a warning first, so a capped list still shows them.
    running.sort_by_key(|r| r.warnings.is_empty());
    ended.sort_by(|a, b| {
        b.ended_at
            .cmp(&a.ended_at)
            .then_with(|| a.job_arn.as_str().cmp(b.job_arn.as_str()))
    });
    let margin_start = at - LATE_WRITE_MARGIN;
    let mut reported: Vec<String> = ended
        .iter()
        .filter(|e| e.ended_at > margin_start)
        .map(|e| end_key(&e.job_arn, e.ended_at))
        .collect();
    reported.extend(
        set_aside
            .iter()
            .filter(|s| s.at > margin_start)
            .map(|s| s.transition_id.clone()),
    );
    let (running_total, ended_total, set_aside_total) =
        (running.len(), ended.len(), set_aside.len());
    let warnings_total = running.iter().filter(|r| !r.warnings.is_empty()).count();
    running.truncate(DIGEST_LIST_MAX);
    ended.truncate(DIGEST_LIST_MAX);
    set_aside.truncate(DIGEST_LIST_MAX);
    let base = previous.map_or_else(Health::default, |p| p.health);
    Digest {
        id: format!(
            "digest-{}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
                .replace([':', '-'], "")
        ),
        at,
        since,
        first: previous.is_none(),
        running,
        running_total,
        ended,
        ended_total,
        warnings_total,
        polls: health.polls.saturating_sub(base.polls),
        failed_invocations: health
            .failed_invocations
            .saturating_sub(base.failed_invocations),
        set_aside,
        set_aside_total,
        mark: DigestMark {
            at,
            health,
            reported,
        },
    }
}
