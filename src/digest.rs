//! The digest: proof of life. What runs, what ended since the previous
//! digest, the warnings still open and the monitor's own health, built from
//! what the table's indexes give. Pure: the use case reads, this decides.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::SettingWarning;
use crate::prices::{Costing, PriceBook};

use crate::domain::{
    EndedJob, JobArn, JobStatus, RecordCounts, StoredJob, TokenTotals, WarningKind, WorkEntry,
};

/// At most this many jobs in each list of one digest (the counts say how
/// many there were); the rendering shows fewer, and shorter, when the whole
/// would not fit in one SNS message.
pub const DIGEST_LIST_MAX: usize = 50;
/// What the first digest looks back over, with no previous one to start at.
pub const FIRST_DIGEST_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The monitor's own counts, as the table keeps them (from its first poll).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Poll invocations that ran.
    pub polls: u64,
    /// Invocations that failed (a systemic fault), as far as the table could
    /// record them.
    pub failed_invocations: u64,
    /// Publishes that failed at a destination other than the job topic
    /// (the Slack topic): that destination's own health.
    pub destination_failures: u64,
    /// Reads of a member account whose role could not be assumed
    /// (`MemberRoleUnavailable`).
    pub member_role_failures: u64,
}

/// The ends one digest reports: those recorded in `(since, until]`. Windows
/// follow each other without gap or overlap (a digest's `since` is the
/// previous one's `until`), so each end is in exactly one digest; `until`
/// lies the settle time before the digest, so every end recorded in the
/// window has been written when the digest reads the table. Saved before
/// the digest is published: a retried or resumed digest publishes the same
/// window under the same id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Stable: subscribers drop a repeat by it.
    pub id: String,
    /// When the digest was begun.
    pub at: DateTime<Utc>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// No digest before it.
    pub first: bool,
}

impl Window {
    /// The window of a digest begun at `at` after `previous` (`None` before
    /// the first), reporting ends recorded up to `settle` before `at`.
    pub fn after(
        previous: Option<&DigestMark>,
        at: DateTime<Utc>,
        settle: chrono::Duration,
    ) -> Self {
        let since = previous.map_or(at - FIRST_DIGEST_WINDOW - settle, |p| p.until);
        Self {
            // To the millisecond: two digests begin one after the other
            // (never while one is pending), so no two share an id.
            id: format!(
                "digest-{}",
                at.to_rfc3339_opts(SecondsFormat::Millis, true)
                    .replace([':', '-', '.'], "")
            ),
            at,
            since,
            // Never backwards, even with a clock that went back.
            until: (at - settle).max(since),
            first: previous.is_none(),
        }
    }

    pub fn holds(&self, t: DateTime<Utc>) -> bool {
        self.since < t && t <= self.until
    }
}

/// What the last digest covered, and the digest under way, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestMark {
    /// When the last published digest was begun.
    pub at: DateTime<Utc>,
    /// The end of the last published digest's window: the next one starts here.
    pub until: DateTime<Utc>,
    /// The health counts as that digest read them.
    pub health: Health,
    /// A digest begun and not yet known to be published: the next digest
    /// invocation publishes it again, under its id, before anything new.
    pub pending: Option<Window>,
}

/// Whose digest a route's digest is.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteOf {
    pub name: String,
    /// Message attributes it carries beside the digest's own
    /// ([`crate::routes::digest_attributes`]).
    pub attributes: Vec<(String, String)>,
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
    /// What it cost, from `tokens` (none without them).
    pub cost: Option<Costing>,
    pub labels: BTreeMap<String, String>,
    /// Why its records failed, as recorded with its end.
    pub record_errors: Option<crate::domain::RecordErrors>,
}

/// The estimated spend of the jobs a digest reports as ended: the sum of the
/// estimates, and how many ended jobs have none, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spend {
    pub cents: u64,
    /// Ended jobs with an estimate.
    pub priced: usize,
    /// Ended jobs with token totals but no price for their model and region.
    pub no_price: usize,
    /// Ended jobs without token totals (no manifest read).
    pub no_tokens: usize,
}

impl Spend {
    fn of<'a>(ended: impl Iterator<Item = &'a Ended>) -> Self {
        let mut s = Self::default();
        for e in ended {
            match &e.cost {
                Some(Costing::Estimated(est)) => {
                    s.cents = s.cents.saturating_add(est.cents);
                    s.priced += 1;
                }
                Some(Costing::NoPrice { .. }) => s.no_price += 1,
                Some(Costing::NoTokens { .. }) | None => s.no_tokens += 1,
            }
        }
        s
    }
}

/// What a digest reports of one account's jobs: every job, shown or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountCounts {
    /// Jobs that have not ended.
    pub running: usize,
    /// Ends recorded in the window.
    pub ended: usize,
    /// Running jobs with a warning sent.
    pub warnings: usize,
}

/// A notification set aside inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAsideNote {
    pub job_arn: JobArn,
    pub transition_id: String,
    /// Where it was not delivered (`topic`, `slack`, ...).
    pub destination: String,
    pub status: JobStatus,
    pub at: DateTime<Utc>,
}

/// One digest, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    /// Stable for this digest: subscribers drop repeats by it (a route's
    /// digest: the monitor's digest's id and the route's name).
    pub id: String,
    /// A route's own digest: the jobs its policy covers, to its topic.
    pub route: Option<RouteOf>,
    pub at: DateTime<Utc>,
    /// The window of ends it reports: `(since, until]`.
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub first: bool,
    /// Newest submitted first; at most [`DIGEST_LIST_MAX`] of `running_total`.
    pub running: Vec<Running>,
    pub running_total: usize,
    /// Latest end first; at most [`DIGEST_LIST_MAX`] of `ended_total`.
    pub ended: Vec<Ended>,
    pub ended_total: usize,
    /// How many ended with each status (all of them, shown or not).
    pub ended_by_status: BTreeMap<String, usize>,
    /// The estimated spend of every job reported as ended (shown or not).
    pub spend: Spend,
    /// Running jobs with a warning sent.
    pub warnings_total: usize,
    /// The accounts of the jobs it reports (running, or ended in the
    /// window), each with its counts: a digest of more than one account
    /// groups its jobs by account in every form.
    pub accounts: BTreeMap<String, AccountCounts>,
    pub polls: u64,
    /// The polls the schedule implies over the window (`POLL_RATE` x
    /// `POLL_SCHEDULES`), when known; none for a first digest.
    pub expected_polls: Option<u64>,
    pub failed_invocations: u64,
    pub destination_failures: u64,
    pub member_role_failures: u64,
    pub set_aside: Vec<SetAsideNote>,
    pub set_aside_total: usize,
    /// The health counts read, for the mark saved once it is published.
    pub health: Health,
    /// The settings the function could not use, each off or at its default.
    pub unusable_settings: Vec<SettingWarning>,
    /// Each model and region (with its account) whose batch quota is at
    /// least [`crate::monitor::NEAR_QUOTA`] used, fullest first: why jobs
    /// wait, or soon will.
    pub capacity: Vec<(String, crate::domain::QuotaUse)>,
}

impl Digest {
    /// Nothing ran, ended, warned or went wrong in the window, and the
    /// monitor polled as its schedule says: "all quiet" needs polls.
    pub fn is_quiet(&self) -> bool {
        self.running_total == 0
            && self.ended_total == 0
            && self.failed_invocations == 0
            && self.destination_failures == 0
            && self.member_role_failures == 0
            && self.set_aside_total == 0
            && self.unusable_settings.is_empty()
            && self.polling_warning().is_none()
    }

    /// What is wrong with the monitor's polling, if anything: no poll since
    /// the last digest, or fewer than half of those its schedule implies.
    pub fn polling_warning(&self) -> Option<String> {
        if self.polls == 0 {
            return Some(
                "the monitor is not polling: no poll ran since the last digest (is the schedule disabled, or are its invocations failing? see docs/operating.md)"
                    .to_owned(),
            );
        }
        match self.expected_polls {
            Some(expected) if expected >= 4 && self.polls * 2 < expected => Some(format!(
                "the monitor is not polling as scheduled: {} polls ran since the last digest, where its schedule implies about {expected} (see docs/operating.md)",
                self.polls
            )),
            _ => None,
        }
    }

    /// It reports jobs of more than one account: every form then groups
    /// its jobs by account and gives each account's counts.
    pub fn grouped_by_account(&self) -> bool {
        self.accounts.len() > 1
    }

    /// The running jobs with an open warning.
    pub fn open_warnings(&self) -> impl Iterator<Item = &Running> {
        self.running.iter().filter(|r| !r.warnings.is_empty())
    }

    /// The mark to save once this digest is published.
    pub fn mark(&self) -> DigestMark {
        DigestMark {
            at: self.at,
            until: self.until,
            health: self.health,
            pending: None,
        }
    }

    /// The same digest with only its counts: what is sent when SNS refuses
    /// the full one for its content, so that the digest still goes out.
    pub fn counts_only(&self) -> Self {
        Self {
            running: Vec::new(),
            ended: Vec::new(),
            set_aside: Vec::new(),
            ..self.clone()
        }
    }
}

/// What a digest is built from, as the table's indexes give it.
#[derive(Debug, Clone, Copy)]
pub struct Fleet<'a> {
    /// Every job that has not ended (the work index), in [`order_running`]'s order.
    pub running: &'a [WorkEntry],
    /// The first [`DIGEST_LIST_MAX`] of them, read whole (without history).
    pub shown: &'a HashMap<JobArn, StoredJob>,
    /// Every end recorded in the window (the index of ends), latest first.
    pub ended: &'a [EndedJob],
    /// The notifications set aside in the window.
    pub set_aside: &'a [SetAsideNote],
    /// The prices the ended jobs' costs are estimated with.
    pub prices: &'a PriceBook,
}

/// The digest's order of running jobs: those with a warning first (so a
/// capped list still shows them), then newest submitted, then by ARN.
pub fn order_running(entries: &mut [WorkEntry]) {
    entries.sort_by(|a, b| {
        a.warned
            .is_empty()
            .cmp(&b.warned.is_empty())
            .then_with(|| b.submit_time.cmp(&a.submit_time))
            .then_with(|| a.job_arn.as_str().cmp(b.job_arn.as_str()))
    });
}

/// The digest of `window` from `fleet`, with the health counts as they
/// stand now, `base` those of the previous digest.
pub fn build(
    fleet: Fleet<'_>,
    window: &Window,
    base: Health,
    health: Health,
    now: DateTime<Utc>,
) -> Digest {
    let running: Vec<Running> = fleet
        .running
        .iter()
        .filter_map(|e| fleet.shown.get(&e.job_arn))
        .filter(|job| job.needs_polling())
        .take(DIGEST_LIST_MAX)
        .map(|job| Running {
            job_arn: job.arn().clone(),
            job_name: job.snapshot.job_name.clone(),
            status: job.snapshot.status.clone(),
            submit_time: job.snapshot.submit_time,
            records: job.snapshot.records.filter(|r| !r.is_empty()),
            eta: job.eta(now),
            labels: job.labels.clone(),
            warnings: job.warned.clone(),
        })
        .collect();
    let mut ended: Vec<Ended> = fleet
        .ended
        .iter()
        // A lost job did not end: `list` shows it, the digest does not.
        .filter(|j| !j.gone && j.status.is_terminal() && window.holds(j.ended_at))
        .map(|j| Ended {
            job_arn: j.job_arn.clone(),
            job_name: j.job_name.clone(),
            status: j.status.clone(),
            ended_at: j.ended_at,
            message: j.message.clone().filter(|m| !m.trim().is_empty()),
            records: j.records.filter(|r| !r.is_empty()),
            tokens: j.tokens,
            cost: j.tokens.map(|t| {
                fleet
                    .prices
                    .costing_of(j.model_id.as_deref(), j.job_arn.region(), t)
            }),
            labels: j.labels.clone(),
            record_errors: j.record_errors.clone(),
        })
        .collect();
    ended.sort_by(|a, b| {
        b.ended_at
            .cmp(&a.ended_at)
            .then_with(|| a.job_arn.as_str().cmp(b.job_arn.as_str()))
    });
    let mut ended_by_status = BTreeMap::new();
    for e in &ended {
        *ended_by_status
            .entry(e.status.as_str().to_owned())
            .or_default() += 1;
    }
    let mut set_aside: Vec<SetAsideNote> = fleet
        .set_aside
        .iter()
        .filter(|s| window.holds(s.at))
        .cloned()
        .collect();
    let mut accounts: BTreeMap<String, AccountCounts> = BTreeMap::new();
    for e in fleet.running {
        let counts = accounts.entry(e.job_arn.account().to_owned()).or_default();
        counts.running += 1;
        if !e.warned.is_empty() {
            counts.warnings += 1;
        }
    }
    for e in &ended {
        accounts
            .entry(e.job_arn.account().to_owned())
            .or_default()
            .ended += 1;
    }
    let (ended_total, set_aside_total) = (ended.len(), set_aside.len());
    let spend = Spend::of(ended.iter());
    ended.truncate(DIGEST_LIST_MAX);
    set_aside.truncate(DIGEST_LIST_MAX);
    Digest {
        id: window.id.clone(),
        route: None,
        at: window.at,
        since: window.since,
        until: window.until,
        first: window.first,
        running,
        running_total: fleet.running.len(),
        ended,
        ended_total,
        ended_by_status,
        spend,
        warnings_total: fleet
            .running
            .iter()
            .filter(|e| !e.warned.is_empty())
            .count(),
        accounts,
        polls: health.polls.saturating_sub(base.polls),
        expected_polls: None,
        failed_invocations: health
            .failed_invocations
            .saturating_sub(base.failed_invocations),
        destination_failures: health
            .destination_failures
            .saturating_sub(base.destination_failures),
        member_role_failures: health
            .member_role_failures
            .saturating_sub(base.member_role_failures),
        set_aside,
        set_aside_total,
        health,
        unusable_settings: Vec::new(),
        capacity: Vec::new(),
    }
}
