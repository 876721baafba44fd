//! The use cases, generic over the ports; they never see an SDK type.
//!
//! - [`poll`](Monitor::poll): one cycle over the work list (`poll.rs`);
//! - [`reconcile`](Monitor::reconcile): Bedrock's event for one job (`reconcile.rs`);
//! - `track`, `untrack`, `describe`: the user's commands (`commands.rs`);
//! - refreshing one job and delivering its outbox, shared by all (`job.rs`).

mod commands;
mod discover;
mod fleet;
mod job;
mod poll;
mod quota;
mod reconcile;
mod routes;
mod summary;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use quota::{NEAR_QUOTA, QuotaReads};
pub use summary::{JobError, Summary};

use crate::config::Config;
use crate::domain::{JobArn, JobRef, JobSnapshot};
use crate::event::Command;
use crate::ports::{
    Fleet, JobPage, JobSource, Jobs, ListQuery, Notifier, NotifyError, Outbox, RouteStore,
    SourceError, StoreError, WorkList,
};

/// A systemic fault: the invocation fails so the Lambda error alarm fires.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{error}; summary so far: {summary}")]
    Store {
        #[source]
        error: Box<StoreError>,
        summary: Value,
    },
    #[error(
        "Bedrock was down for the whole poll: every one of its {calls} requests met an outage in every region, first: {first}; summary: {summary}"
    )]
    Bedrock {
        calls: u64,
        #[source]
        first: Box<SourceError>,
        summary: Value,
    },
    #[error("{error}; the notifications stay pending for the next run; summary: {summary}")]
    Notify {
        #[source]
        error: Box<NotifyError>,
        summary: Value,
    },
    /// A Bedrock event's job could not be judged: its tags decide whether it
    /// is watched or what its labels are, and they could not be read. The
    /// invocation fails so that Lambda retries the event (twice, then the
    /// function's failed-event queue); nothing was written.
    #[error("{error}; Lambda retries the event; summary: {summary}")]
    TagsUnavailable { error: String, summary: Value },
    /// SNS refused the digest for its content, even with its counts alone:
    /// the message's fault, not the topic's.
    #[error(
        "{error}; the digest stays pending and is tried again by the next digest invocation; summary: {summary}"
    )]
    DigestRejected {
        #[source]
        error: Box<NotifyError>,
        summary: Value,
    },
}

/// A store fault before any work was done: there is no summary yet.
impl From<StoreError> for MonitorError {
    fn from(error: StoreError) -> Self {
        Self::Store {
            error: Box::new(error),
            summary: Value::Null,
        }
    }
}

impl MonitorError {
    /// What the invocation had done when the fault stopped it.
    pub fn summary(&self) -> &Value {
        match self {
            Self::Store { summary, .. }
            | Self::Bedrock { summary, .. }
            | Self::Notify { summary, .. }
            | Self::DigestRejected { summary, .. }
            | Self::TagsUnavailable { summary, .. } => summary,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Store { .. } => "TableUnavailable",
            Self::Bedrock { .. } => "BedrockUnavailable",
            Self::Notify { .. } => "TopicUnavailable",
            Self::DigestRejected { .. } => "DigestRejected",
            Self::TagsUnavailable { .. } => "TagsUnavailable",
        }
    }
}

/// The errors of an answer that name a destination other than the job
/// topic: that destination's failed publishes, for the health record.
pub fn destination_failures(answer: &Value) -> u64 {
    errors_where(answer, |e| {
        e.get("destination").and_then(Value::as_str).is_some()
    })
}

/// The errors of an answer of kind `MemberRoleUnavailable`: reads of a
/// member account whose role could not be assumed.
pub fn member_role_failures(answer: &Value) -> u64 {
    errors_where(answer, |e| {
        e.get("kind").and_then(Value::as_str) == Some("MemberRoleUnavailable")
    })
}

fn errors_where(answer: &Value, which: impl Fn(&Value) -> bool) -> u64 {
    answer
        .get("errors")
        .and_then(Value::as_array)
        .map_or(0, |errors| {
            errors.iter().filter(|e| which(e)).count() as u64
        })
}

/// One invocation: who it is (claims are taken in its name), when it must
/// have answered, and the Bedrock calls it made.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id (unique per invocation).
    pub id: String,
    /// When Lambda stops the invocation; `None` when the runtime gave no usable one.
    pub deadline: Option<Instant>,
    pub calls: Arc<BedrockCalls>,
    /// The alias or version the function was invoked through (the last part
    /// of Lambda's `invoked_function_arn`, when it has one): through the
    /// `stop` alias ([`crate::config::STOP_ALIAS`]) only `stop` is served,
    /// through `routes` ([`crate::config::ROUTES_ALIAS`]) only routes.
    pub qualifier: Option<String>,
    /// The routes, read from the table once, when the invocation first
    /// publishes ([`Monitor::routes`]).
    routes: Arc<tokio::sync::OnceCell<Arc<crate::routes::Table>>>,
    /// What its publishes to each route came to: added to the routes'
    /// counts in one write when it ends.
    route_tallies: Arc<Mutex<BTreeMap<String, crate::routes::Stats>>>,
}

impl Invocation {
    pub fn new(id: impl Into<String>, deadline: Option<Instant>) -> Self {
        Self {
            id: id.into(),
            deadline,
            calls: Arc::default(),
            qualifier: None,
            routes: Arc::default(),
            route_tallies: Arc::default(),
        }
    }

    /// Notes one publish to the route `name` (any destination but the job topic).
    pub(crate) fn tally(&self, name: &str, result: Result<(), &str>) {
        let mut tallies = self.route_tallies.lock().unwrap_or_else(|e| e.into_inner());
        let t = tallies.entry(name.to_owned()).or_default();
        let now = chrono::Utc::now();
        match result {
            Ok(()) => {
                t.delivered += 1;
                t.last_delivery = Some(now);
            }
            Err(e) => {
                t.failures += 1;
                t.last_failure = Some(now);
                t.last_error = Some(e.to_owned());
            }
        }
    }

    /// The invocation as Lambda named the function it invoked:
    /// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`
    /// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-versions.html,
    /// "qualified ARN").
    pub fn invoked_as(mut self, invoked_function_arn: &str) -> Self {
        self.qualifier = invoked_function_arn
            .split(':')
            .nth(7)
            .filter(|q| !q.is_empty())
            .map(str::to_owned);
        self
    }

    /// Invoked through the `stop` alias, the one the Slack channel may invoke.
    pub fn through_stop_alias(&self) -> bool {
        self.qualifier.as_deref() == Some(crate::config::STOP_ALIAS)
    }

    /// Invoked through the `routes` alias, the one teams' stacks name as a
    /// route's `ServiceToken`.
    pub fn through_routes_alias(&self) -> bool {
        self.qualifier.as_deref() == Some(crate::config::ROUTES_ALIAS)
    }
}

/// Bedrock requests an invocation made, by operation (each list page is a
/// request), counted when sent: failed and abandoned ones count too. Reported
/// in the summary as `bedrockCalls` and in the metrics. Beside the counts, a
/// health record per region says how Bedrock answered there.
#[derive(Debug, Default)]
pub struct BedrockCalls {
    pub get: AtomicU64,
    pub list: AtomicU64,
    pub tags: AtomicU64,
    pub stop: AtomicU64,
    /// ListFoundationModels (the models' display names, for the quotas).
    pub models: AtomicU64,
    /// Service Quotas' ListServiceQuotas pages (not Bedrock's, counted beside it).
    pub quotas: AtomicU64,
    health: Mutex<BTreeMap<String, RegionHealth>>,
}

/// How Bedrock answered one invocation's requests in one region.
#[derive(Debug, Default, Clone)]
pub struct RegionHealth {
    /// Requests Bedrock answered.
    pub answered: u64,
    /// Requests refused for their own job's sake (NotFound, AccessDenied, ...).
    pub refused: u64,
    /// Requests that met an outage (throttling, server errors, no answer).
    pub outages: u64,
    /// The first outage met, for the invocation's error.
    pub first_outage: Option<SourceError>,
}

impl BedrockCalls {
    pub fn as_json(&self) -> Value {
        let mut calls = serde_json::json!({
            "GetModelInvocationJob": self.get.load(Ordering::Relaxed),
            "ListModelInvocationJobs": self.list.load(Ordering::Relaxed),
            "ListTagsForResource": self.tags.load(Ordering::Relaxed),
            "ListFoundationModels": self.models.load(Ordering::Relaxed),
            "ListServiceQuotas": self.quotas.load(Ordering::Relaxed),
        });
        // Only `stop` sends it: the other commands' answers keep their shape.
        let stop = self.stop.load(Ordering::Relaxed);
        if stop > 0 {
            calls["StopModelInvocationJob"] = stop.into();
        }
        calls
    }

    /// Every request sent, of every kind.
    pub fn total(&self) -> u64 {
        self.get.load(Ordering::Relaxed)
            + self.list.load(Ordering::Relaxed)
            + self.tags.load(Ordering::Relaxed)
            + self.stop.load(Ordering::Relaxed)
    }

    fn note<T>(&self, region: &str, result: &Result<T, SourceError>) {
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let h = health.entry(region.to_owned()).or_default();
        match result {
            // The account's role, not Bedrock: says nothing of Bedrock's
            // health there (a missing role must not hide an outage).
            Err(SourceError::MemberRoleUnavailable { .. }) => {}
            Ok(_) => h.answered += 1,
            Err(e) if e.is_outage() => {
                h.outages += 1;
                h.first_outage.get_or_insert_with(|| e.clone());
            }
            Err(_) => h.refused += 1,
        }
    }

    /// The health record of each region this invocation sent requests to.
    pub fn health(&self) -> BTreeMap<String, RegionHealth> {
        self.health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Bedrock was down for the whole invocation: it met an outage, and in
    /// every region it heard from, every request it heard back on met one
    /// (nothing answered, nothing refused for a job's own sake). The first
    /// outage met, or `None` when Bedrock was not down.
    pub fn bedrock_down(&self) -> Option<SourceError> {
        let health = self.health();
        let down = !health.is_empty()
            && health
                .values()
                .all(|h| h.answered == 0 && h.refused == 0 && h.outages > 0);
        if !down {
            return None;
        }
        health.into_values().find_map(|h| h.first_outage)
    }
}

/// The job source as the use cases reach it: every Bedrock request counted
/// by kind when sent, and its answer noted in its region's health record.
pub(crate) struct Counted<'a, S> {
    source: &'a S,
    calls: &'a BedrockCalls,
}

impl<S: JobSource> Counted<'_, S> {
    pub async fn get_job(&self, job: &JobRef) -> Result<JobSnapshot, SourceError> {
        self.calls.get.fetch_add(1, Ordering::Relaxed);
        let result = self.source.get_job(job).await;
        self.calls.note(job.region(), &result);
        result
    }

    pub async fn tags(&self, job: &JobArn) -> Result<BTreeMap<String, String>, SourceError> {
        self.calls.tags.fetch_add(1, Ordering::Relaxed);
        let result = self.source.tags(job).await;
        self.calls.note(job.region(), &result);
        result
    }

    pub async fn stop_job(&self, job: &JobArn) -> Result<(), SourceError> {
        self.calls.stop.fetch_add(1, Ordering::Relaxed);
        let result = self.source.stop_job(job).await;
        self.calls.note(job.region(), &result);
        result
    }

    pub async fn list_page(
        &self,
        query: &ListQuery<'_>,
        token: Option<&str>,
    ) -> Result<JobPage, SourceError> {
        self.calls.list.fetch_add(1, Ordering::Relaxed);
        let result = self.source.list_page(query, token).await;
        self.calls.note(query.region, &result);
        result
    }

    /// Every page of a listing until `until` (no limit when `None`): the jobs,
    /// and whether the last page was reached.
    pub async fn list_all(
        &self,
        query: &ListQuery<'_>,
        until: Option<Instant>,
    ) -> Result<(Vec<JobSnapshot>, bool), SourceError> {
        let mut jobs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(query, token.as_deref());
            let page = match until {
                Some(t) => match tokio::time::timeout_at(t.into(), page).await {
                    Ok(page) => page?,
                    Err(_) => return Ok((jobs, false)),
                },
                None => page.await?,
            };
            jobs.extend(page.jobs);
            match page.next {
                Some(next) => token = Some(next),
                None => return Ok((jobs, true)),
            }
        }
    }
}

/// When to stop starting work and when to abandon work in flight, so the
/// answer leaves before the deadline. With a margin `m` (`DEADLINE_MARGIN_MS`,
/// never more than half the time left): no job starts in the last `m`; every
/// job still running at `m / 2` before the deadline is abandoned (each of its
/// writes is conditional, so nothing is left half done) and reported deferred;
/// the cycle's own last write (where the next starts) must be done `m / 4`
/// before the deadline, which leaves that last quarter for the answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub start_by: Option<Instant>,
    pub cut_at: Option<Instant>,
    pub wrap_up_by: Option<Instant>,
}

impl Budget {
    pub fn new(deadline: Option<Instant>, margin: Duration) -> Self {
        let Some(deadline) = deadline else {
            return Self {
                start_by: None,
                cut_at: None,
                wrap_up_by: None,
            };
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        // A short local timeout must still leave half the time for work.
        let margin = margin.min(remaining / 2);
        Self {
            start_by: Some(deadline - margin),
            cut_at: Some(deadline - margin / 2),
            wrap_up_by: Some(deadline - margin / 4),
        }
    }

    /// Too late to start another job.
    pub fn past_start(&self) -> bool {
        self.start_by.is_some_and(|t| Instant::now() >= t)
    }

    /// Half of the time left before no job may start: how long a listing of
    /// Bedrock's jobs (a bulk read, a discovery) may run, so the jobs it
    /// leaves keep the other half.
    pub fn listing_share(&self) -> Option<Instant> {
        let now = Instant::now();
        self.start_by
            .map(|t| now + t.saturating_duration_since(now) / 2)
    }

    /// Runs `work` until the cut; false when it was abandoned there.
    pub async fn within<F: Future<Output = ()>>(&self, work: F) -> bool {
        match self.cut_at {
            None => {
                work.await;
                true
            }
            Some(cut) => tokio::time::timeout_at(cut.into(), work).await.is_ok(),
        }
    }
}

/// The monitor: the use cases over a job source, the job table and a notifier.
pub struct Monitor<S, T, N> {
    source: S,
    store: T,
    notifier: N,
    config: Config,
    /// Region a bare job id is looked up in.
    home_region: String,
    claims: AtomicU64,
    /// What this process learned of each (account, region)'s batch quotas:
    /// a warm invocation reads neither Service Quotas nor the table for them.
    quotas: Mutex<std::collections::HashMap<(String, String), crate::domain::QuotaBook>>,
}

impl<S, T, N> Monitor<S, T, N> {
    pub fn new(
        source: S,
        store: T,
        notifier: N,
        config: Config,
        home_region: impl Into<String>,
    ) -> Self {
        Self {
            source,
            store,
            notifier,
            config,
            home_region: home_region.into(),
            claims: AtomicU64::new(0),
            quotas: Mutex::default(),
        }
    }

    /// The configuration it runs with (the settings it could not use among it).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Bedrock, counted for `inv`.
    pub(crate) fn bedrock<'a>(&'a self, inv: &'a Invocation) -> Counted<'a, S> {
        Counted {
            source: &self.source,
            calls: &inv.calls,
        }
    }

    /// `Ok` when this monitor reads `account`'s jobs (its own, or one of
    /// `MEMBER_ACCOUNTS`); else the item's `AccountNotMember`.
    pub(crate) fn member_check(&self, account: &str) -> Result<(), summary::Failure> {
        if self.config.reads_account(account) {
            return Ok(());
        }
        Err(summary::Failure::AccountNotMember {
            account: account.to_owned(),
            home: self.config.home_account().to_owned(),
            members: match self.config.member_accounts.join(",") {
                m if m.is_empty() => "none".to_owned(),
                m => m,
            },
        })
    }

    /// A claim token no other delivery uses: the invocation's id and a counter.
    fn claim_token(&self, inv: &Invocation) -> String {
        format!("{}#{}", inv.id, self.claims.fetch_add(1, Ordering::Relaxed))
    }
}

impl<S, T: RouteStore, N> Monitor<S, T, N> {
    /// The routes `inv` publishes to: the stack's Slack channel and the
    /// routes teams declared, read from the table once an invocation (and
    /// only by one that publishes). A table that cannot be read is the
    /// caller's fault to report: its notifications stay pending.
    pub(crate) async fn routes(
        &self,
        inv: &Invocation,
    ) -> Result<Arc<crate::routes::Table>, StoreError> {
        inv.routes
            .get_or_try_init(|| async {
                let book = self.store.routes().await?;
                Ok(Arc::new(crate::routes::Table::new(
                    self.config.slack.as_ref(),
                    book.declared,
                )))
            })
            .await
            .cloned()
    }

    /// Adds what `inv` published to each route to the routes' counts (one
    /// write); a failure is logged: only `routes`' counts undercount.
    async fn save_tallies(&self, inv: &Invocation) {
        let tallies =
            std::mem::take(&mut *inv.route_tallies.lock().unwrap_or_else(|e| e.into_inner()));
        if tallies.values().all(crate::routes::Stats::is_empty) {
            return;
        }
        if let Err(e) = self.store.note_route_deliveries(&tallies).await {
            tracing::warn!(error_kind = e.kind(), error = %e, "the routes' delivery counts were not updated; `routes` undercounts them");
        }
    }
}

impl<S: JobSource, T: Jobs + Outbox + WorkList + Fleet + RouteStore, N: Notifier> Monitor<S, T, N> {
    /// Runs one command for one invocation, and counts polls and failed
    /// invocations in the table's health record (for the digest).
    pub async fn handle(&self, command: Command, inv: &Invocation) -> Result<Value, MonitorError> {
        let poll = matches!(command, Command::Poll(_));
        // Boxed: the commands' futures are deep enough to strain the compiler's layout limit.
        let result = Box::pin(self.run(command, inv)).await;
        Box::pin(self.save_tallies(inv)).await;
        let counts = crate::ports::InvocationCounts {
            poll,
            failed: result.is_err(),
            destination_failures: result.as_ref().map_or(0, destination_failures),
            member_role_failures: result.as_ref().map_or(0, member_role_failures),
        };
        if counts != crate::ports::InvocationCounts::default()
            && let Err(e) = self.store.count_invocation(&counts).await
        {
            tracing::warn!(error_kind = e.kind(), error = %e, "the health record was not updated; the next digest undercounts");
        }
        result
    }

    /// What the custom resource a CloudFormation request names decides, by
    /// its `ResourceType`: the settings check, or a team's route.
    pub async fn provide(
        &self,
        request: &crate::custom_resource::Request,
    ) -> crate::custom_resource::Outcome {
        use crate::{custom_resource::Outcome, routes, settings_check};
        match request.resource_type.as_str() {
            settings_check::TYPE => settings_check::check(request),
            routes::TYPE => Box::pin(self.provide_route(request)).await,
            _ => Outcome::unknown_type(request, &[settings_check::TYPE, routes::TYPE]),
        }
    }

    async fn run(&self, command: Command, inv: &Invocation) -> Result<Value, MonitorError> {
        let to_value = |s: Summary| serde_json::to_value(s).unwrap_or(Value::Null);
        let mut answer = match command {
            // Boxed: the poll future is deep enough to strain the compiler's layout limit.
            Command::Poll(shards) => Box::pin(self.poll(inv, shards)).await.map(to_value),
            Command::Reconcile(change) => Box::pin(self.reconcile(change, inv)).await.map(to_value),
            Command::Track(items) => Box::pin(self.track(items, inv)).await,
            Command::Untrack(items) => self.untrack(items).await,
            Command::Describe(reference) => {
                let mut described = self.describe(&reference).await?;
                self.add_quotas(
                    std::slice::from_mut(&mut described),
                    &std::collections::HashMap::new(),
                )
                .await;
                Ok(described)
            }
            Command::List(req) => self.list_jobs(&req).await,
            Command::Digest => Box::pin(self.digest(inv)).await,
            Command::Stop(req) => self.stop(&req, inv).await,
            Command::Routes => self.list_routes().await,
            // The decision alone: the handler sends it to CloudFormation
            // (`handler::handle` does both).
            Command::CustomResource(request) => Ok(serde_json::json!({
                "customResource": self.provide(&request).await,
            })),
        }?;
        if let Value::Object(o) = &mut answer {
            o.insert("bedrockCalls".to_owned(), inv.calls.as_json());
        }
        Ok(answer)
    }
}
