//! `fake-bedrock`: a local stand-in for Amazon Bedrock's batch inference API.
//!
//! Nothing else emulates Bedrock batch inference, so the project carries its own.
//! It speaks the REST-JSON wire format the AWS SDK uses (ISO-8601 timestamps,
//! errors named by the `x-amzn-ErrorType` header), serves every region at once
//! (the region is read from the request's SigV4 credential scope, and a job is
//! only visible in its own region, as on AWS), and offers an admin API to seed
//! jobs, move them through their lifecycle, add latency, inject faults and
//! count calls. Tests drive it in-process through [`FakeBedrock`]; the demo runs
//! the `fake-bedrock` binary and drives it over HTTP under `/_admin`.
//!
//! Accounts are kept apart as on AWS. It also answers STS `AssumeRole`
//! (`POST /`, the Query protocol, reached with `AWS_ENDPOINT_URL_STS`) for
//! the member roles a test allows ([`FakeBedrock::allow_role`]), issuing keys
//! of that account. A request signed with such a key acts in that account,
//! any other key in [`HOME_ACCOUNT`]: it sees and lists only that account's
//! jobs, and a job of another account is `AccessDeniedException`.
//!
//! For the batch quota beside a waiting job it serves Bedrock's
//! `ListFoundationModels` (`GET /foundation-models`) and stands in for
//! Service Quotas' `ListServiceQuotas` (`POST /` with the JSON 1.1 target
//! `ServiceQuotasV20190624.ListServiceQuotas`, reached with
//! `AWS_ENDPOINT_URL_SERVICE_QUOTAS`; moto 5.2.5's Service Quotas has only
//! `ListAWSDefaultServiceQuotas` and `GetServiceQuota`, and no Bedrock
//! quotas): the models of [`MODELS`] (or those a test sets), each with the
//! quotas of [`QUOTA_KINDS`] at their defaults unless a test sets one.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The account of a request signed with any key the fake did not issue (the
/// function's own credentials, in tests `test`/`test`), and of a seeded job
/// unless it names another.
pub const HOME_ACCOUNT: &str = "123456789012";

/// How long the credentials AssumeRole issues last, unless a test sets it.
pub const DEFAULT_SESSION: Duration = Duration::from_secs(3600);

/// Every status Bedrock reports for a batch inference job.
pub const STATUSES: [&str; 10] = [
    "Submitted",
    "Validating",
    "Scheduled",
    "InProgress",
    "Stopping",
    "Stopped",
    "Completed",
    "PartiallyCompleted",
    "Failed",
    "Expired",
];

/// A fault the fake answers with instead of doing the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 `ThrottlingException`.
    Throttling,
    /// 500 `InternalServerException`.
    InternalServer,
    /// 503 with no error type, as a load balancer in trouble answers.
    ServiceUnavailable,
    /// 404 `ResourceNotFoundException`.
    NotFound,
    /// 403 `AccessDeniedException`.
    AccessDenied,
}

impl FaultKind {
    fn status_and_type(self) -> (StatusCode, Option<&'static str>) {
        match self {
            Self::Throttling => (StatusCode::TOO_MANY_REQUESTS, Some("ThrottlingException")),
            Self::InternalServer => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Some("InternalServerException"),
            ),
            Self::ServiceUnavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
            Self::NotFound => (StatusCode::NOT_FOUND, Some("ResourceNotFoundException")),
            Self::AccessDenied => (StatusCode::FORBIDDEN, Some("AccessDeniedException")),
        }
    }
}

/// A fault rule: answer `kind` for the next `times` matching calls (all of them
/// when `times` is `None`), optionally only for one job id or one operation
/// (`ListTagsForResource`, ...), and with `every` only for every n-th
/// matching call (`every: 2` throttles half the calls).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    pub kind: FaultKind,
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub every: Option<u32>,
    /// Only calls of this operation (as [`Call::operation`] names it).
    #[serde(default)]
    pub operation: Option<String>,
    /// Matching calls seen so far (for `every`).
    #[serde(skip)]
    pub seen: u32,
}

impl Fault {
    /// Every matching call (or the next `times` of them) answers `kind`.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            times: None,
            job_id: None,
            every: None,
            operation: None,
            seen: 0,
        }
    }

    /// The same rule, for calls of `operation` only.
    pub fn on(mut self, operation: &str) -> Self {
        self.operation = Some(operation.into());
        self
    }
}

/// What a test or the demo seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedJob {
    pub job_name: String,
    #[serde(default = "default_model")]
    pub model_id: String,
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default = "default_account")]
    pub account: String,
    /// Job id; 12 random lowercase alphanumerics when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default = "default_status")]
    pub status: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When the job was submitted; now when absent (backdate to age a queue).
    #[serde(default)]
    pub submit_time: Option<DateTime<Utc>>,
    /// When the job expires if it has not run; 24 hours after submission when absent.
    #[serde(default)]
    pub job_expiration_time: Option<DateTime<Utc>>,
    /// Record counters from the start (absent until the job reads its input).
    #[serde(default)]
    pub records: Option<Records>,
    /// Output location; `s3://batch-output/<name>/` when absent.
    #[serde(default)]
    pub output_s3_uri: Option<String>,
}

fn default_model() -> String {
    "anthropic.claude-3-haiku-20240307-v1:0".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_account() -> String {
    HOME_ACCOUNT.into()
}
fn default_status() -> String {
    "Submitted".into()
}

impl SeedJob {
    pub fn named(name: &str) -> Self {
        Self {
            job_name: name.into(),
            model_id: default_model(),
            region: default_region(),
            account: default_account(),
            id: None,
            status: default_status(),
            tags: BTreeMap::new(),
            submit_time: None,
            job_expiration_time: None,
            records: None,
            output_s3_uri: None,
        }
    }
    pub fn with_status(mut self, status: &str) -> Self {
        self.status = status.into();
        self
    }
    pub fn submitted_at(mut self, t: DateTime<Utc>) -> Self {
        self.submit_time = Some(t);
        self
    }
    pub fn expiring_at(mut self, t: DateTime<Utc>) -> Self {
        self.job_expiration_time = Some(t);
        self
    }
    pub fn with_records(mut self, records: Records) -> Self {
        self.records = Some(records);
        self
    }
    pub fn with_output(mut self, s3_uri: &str) -> Self {
        self.output_s3_uri = Some(s3_uri.into());
        self
    }
    /// The model or inference profile id the job runs on.
    pub fn with_model(mut self, model_id: &str) -> Self {
        self.model_id = model_id.into();
        self
    }
    pub fn in_account(mut self, account: &str) -> Self {
        self.account = account.into();
        self
    }

    pub fn in_region(mut self, region: &str) -> Self {
        self.region = region.into();
        self
    }
    pub fn with_tag(mut self, key: &str, value: &str) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }
}

/// A move of a job: new status, optional message and record counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub records: Option<Records>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Records {
    pub total: i64,
    pub processed: i64,
    pub success: i64,
    pub error: i64,
}

/// One call the fake answered (or refused), for assertions.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub operation: String,
    /// The identifier as the caller sent it (ARN or id), when there is one.
    pub target: Option<String>,
    /// The region of the request's SigV4 credential scope.
    pub region: Option<String>,
    /// When it arrived, in milliseconds since the fake started.
    pub at_ms: u64,
    /// The account the request's credentials act in.
    pub account: String,
    /// AssumeRole's `RoleSessionName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
}

#[derive(Debug, Clone)]
struct Job {
    arn: String,
    id: String,
    region: String,
    name: String,
    model_id: String,
    status: String,
    message: Option<String>,
    submit_time: DateTime<Utc>,
    last_modified_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    job_expiration_time: DateTime<Utc>,
    records: Option<Records>,
    output_s3_uri: String,
    tags: BTreeMap<String, String>,
    /// Every status the job has had, in order (its life, for history checks).
    life: Vec<String>,
}

impl Job {
    /// The job as GetModelInvocationJob answers it, and as a list summary
    /// (`ModelInvocationJobSummary` carries the same fields, counters included).
    fn to_json(&self) -> Value {
        let mut v = json!({
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": format!("arn:aws:iam::{}:role/bedrock-batch", account_of(&self.arn)),
            "status": self.status,
            "submitTime": iso(self.submit_time),
            "lastModifiedTime": iso(self.last_modified_time),
            "inputDataConfig": {"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": format!("s3://batch-input/{}/input.jsonl", self.name)}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_s3_uri}},
            "timeoutDurationInHours": 24,
            "jobExpirationTime": iso(self.job_expiration_time),
        });
        let obj = v.as_object_mut().expect("json! object");
        if let Some(m) = &self.message {
            obj.insert("message".into(), json!(m));
        }
        if let Some(t) = self.end_time {
            obj.insert("endTime".into(), json!(iso(t)));
        }
        if let Some(r) = self.records {
            obj.insert("totalRecordCount".into(), json!(r.total));
            obj.insert("processedRecordCount".into(), json!(r.processed));
            obj.insert("successRecordCount".into(), json!(r.success));
            obj.insert("errorRecordCount".into(), json!(r.error));
        }
        v
    }
}

fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or("123456789012")
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn is_terminal(status: &str) -> bool {
    matches!(
        status,
        "Completed" | "PartiallyCompleted" | "Failed" | "Stopped" | "Expired"
    )
}

#[derive(Default)]
struct Inner {
    /// Insertion order kept so listings are stable.
    jobs: Vec<Job>,
    faults: VecDeque<Fault>,
    latency: Duration,
    /// How long a computed list page waits before it is sent (stale answers).
    list_delay: Duration,
    /// How long a computed GetModelInvocationJob answer waits before it is sent.
    get_delay: Duration,
    /// Extra latency for calls naming one job (by id): a hang, for one job.
    job_latency: BTreeMap<String, Duration>,
    calls: Vec<Call>,
    next_id: u64,
    started: Option<std::time::Instant>,
    /// The roles AssumeRole grants: (account, role name).
    roles: std::collections::BTreeSet<(String, String)>,
    /// The access keys AssumeRole issued, and the account each acts in.
    keys: BTreeMap<String, String>,
    /// How long issued credentials last (`None`: [`DEFAULT_SESSION`]).
    session: Option<Duration>,
    /// The foundation models served (`None`: [`MODELS`]).
    models: Option<Vec<(String, String)>>,
    /// Quotas a test set, by (account, quota name): a value, or `None` for
    /// a quota taken away.
    quota_values: BTreeMap<(String, String), Option<f64>>,
}

impl Inner {
    /// [`Inner::find`] among `account`'s jobs only.
    fn find_of(&self, account: &str, ident: &str, region: Option<&str>) -> Option<usize> {
        self.jobs.iter().position(|j| {
            (j.arn == ident || j.id == ident)
                && region.is_none_or(|r| r == j.region)
                && account_of(&j.arn) == account
        })
    }

    fn find(&self, ident: &str, region: Option<&str>) -> Option<usize> {
        self.jobs
            .iter()
            .position(|j| (j.arn == ident || j.id == ident) && region.is_none_or(|r| r == j.region))
    }

    /// The account a request signed with `key` acts in.
    fn account_of_key(&self, key: Option<&str>) -> String {
        key.and_then(|k| self.keys.get(k))
            .cloned()
            .unwrap_or_else(default_account)
    }

    fn take_fault(&mut self, operation: &str, job_id: Option<&str>) -> Option<FaultKind> {
        let idx = self.faults.iter().position(|f| {
            (f.job_id.is_none() || f.job_id.as_deref() == job_id)
                && f.operation.as_deref().is_none_or(|o| o == operation)
        })?;
        let fault = &mut self.faults[idx];
        fault.seen += 1;
        if fault
            .every
            .is_some_and(|n| !fault.seen.is_multiple_of(n.max(1)))
        {
            return None;
        }
        let kind = fault.kind;
        match &mut fault.times {
            Some(1) => {
                self.faults.remove(idx);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(kind)
    }

    fn fresh_id(&mut self) -> String {
        // Deterministic but distinct-looking ids: 12 lowercase alphanumerics.
        self.next_id += 1;
        let mut n = self.next_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0005_DEEC_E66D;
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..12)
            .map(|_| {
                let c = alphabet[(n % 36) as usize] as char;
                n /= 36;
                c
            })
            .collect()
    }
}

/// Handle to a running fake: its URL plus the in-process admin API.
#[derive(Clone)]
pub struct FakeBedrock {
    inner: Arc<Mutex<Inner>>,
    addr: SocketAddr,
}

impl FakeBedrock {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let fake = Self {
            inner: Arc::default(),
            addr: listener.local_addr()?,
        };
        let app = router(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(fake)
    }

    /// Serves until the process ends (used by the binary).
    pub async fn serve_forever(addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let fake = Self {
            inner: Arc::default(),
            addr: listener.local_addr()?,
        };
        axum::serve(listener, router(fake)).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a job and returns its ARN.
    pub fn seed(&self, seed: SeedJob) -> String {
        let mut inner = self.lock();
        let id = seed.id.clone().unwrap_or_else(|| inner.fresh_id());
        let arn = format!(
            "arn:aws:bedrock:{}:{}:model-invocation-job/{}",
            seed.region, seed.account, id
        );
        let now = Utc::now();
        let submit_time = seed.submit_time.unwrap_or(now);
        let output_s3_uri = seed
            .output_s3_uri
            .unwrap_or_else(|| format!("s3://batch-output/{}/", seed.job_name));
        inner.jobs.push(Job {
            arn: arn.clone(),
            id,
            region: seed.region,
            name: seed.job_name,
            model_id: seed.model_id,
            status: seed.status.clone(),
            message: None,
            submit_time,
            last_modified_time: now.max(submit_time),
            end_time: is_terminal(&seed.status).then_some(now),
            job_expiration_time: seed
                .job_expiration_time
                .unwrap_or(submit_time + chrono::Duration::hours(24)),
            records: seed.records,
            output_s3_uri,
            tags: seed.tags,
            life: vec![seed.status],
        });
        arn
    }

    /// Lets AssumeRole grant `role_name` in `account` (to any caller: the
    /// trust policy is the member template's business, tested there).
    pub fn allow_role(&self, account: &str, role_name: &str) {
        self.lock()
            .roles
            .insert((account.to_owned(), role_name.to_owned()));
    }

    /// AssumeRole refuses `role_name` in `account` from now on (credentials
    /// it issued before stay valid, as on AWS).
    pub fn deny_role(&self, account: &str, role_name: &str) {
        self.lock()
            .roles
            .remove(&(account.to_owned(), role_name.to_owned()));
    }

    /// How long the credentials AssumeRole issues from now on last.
    pub fn set_session_length(&self, length: Duration) {
        self.lock().session = Some(length);
    }

    /// Every status the job has had, oldest first (the seeded one, then each
    /// move that changed it); `None` when there is no such job.
    pub fn life(&self, ident: &str) -> Option<Vec<String>> {
        let inner = self.lock();
        inner.find(ident, None).map(|i| inner.jobs[i].life.clone())
    }

    /// Makes every ListModelInvocationJobs answer stale on arrival: the page
    /// is computed when the request comes in and sent `delay` later, so the
    /// jobs may have moved on meanwhile (zero turns it off).
    pub fn set_list_delay(&self, delay: Duration) {
        self.lock().list_delay = delay;
    }

    /// Makes every GetModelInvocationJob answer stale on arrival, as
    /// [`set_list_delay`](Self::set_list_delay) does for list pages: the job
    /// is read when the request comes in and sent `delay` later.
    pub fn set_get_delay(&self, delay: Duration) {
        self.lock().get_delay = delay;
    }

    /// Moves a job to `status`; returns false when there is no such job.
    pub fn set_status(&self, ident: &str, change: StatusChange) -> bool {
        let mut inner = self.lock();
        let Some(i) = inner.find(ident, None) else {
            return false;
        };
        let job = &mut inner.jobs[i];
        let now = Utc::now();
        if job.status != change.status {
            job.life.push(change.status.clone());
        }
        job.status = change.status;
        job.message = change.message.filter(|m| !m.is_empty());
        if change.records.is_some() {
            job.records = change.records;
        }
        job.last_modified_time = now;
        job.end_time = is_terminal(&job.status).then_some(now);
        true
    }

    /// Moves a job's record counters without changing its status (a running
    /// job making progress, or not); false when there is no such job.
    pub fn set_records(&self, ident: &str, records: Records) -> bool {
        let mut inner = self.lock();
        let Some(i) = inner.find(ident, None) else {
            return false;
        };
        let job = &mut inner.jobs[i];
        job.records = Some(records);
        job.last_modified_time = Utc::now();
        true
    }

    /// Shorthand for a status move without message or counts.
    pub fn set(&self, ident: &str, status: &str) -> bool {
        self.set_status(
            ident,
            StatusChange {
                status: status.into(),
                ..StatusChange::default()
            },
        )
    }

    /// Forgets a job, as Bedrock does some time after it ended.
    pub fn remove(&self, ident: &str) -> bool {
        let mut inner = self.lock();
        match inner.find(ident, None) {
            Some(i) => {
                inner.jobs.remove(i);
                true
            }
            None => false,
        }
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Makes every call naming job `ident` (ARN or id) take `latency` (on top of
    /// the global latency): one job that hangs while the others answer.
    pub fn set_job_latency(&self, ident: &str, latency: Duration) {
        let id = ident.rsplit('/').next().unwrap_or(ident).to_owned();
        let mut inner = self.lock();
        if latency.is_zero() {
            inner.job_latency.remove(&id);
        } else {
            inner.job_latency.insert(id, latency);
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// How many calls of `operation` were made.
    pub fn count(&self, operation: &str) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    pub fn reset(&self) {
        *self.lock() = Inner::default();
    }
}

fn router(fake: FakeBedrock) -> Router {
    Router::new()
        .route("/model-invocation-job/{ident}", get(get_job))
        .route("/model-invocation-job/{ident}/stop", post(stop_job))
        .route("/model-invocation-job", post(create_job))
        .route("/model-invocation-jobs", get(list_jobs))
        .route("/listTagsForResource", post(list_tags))
        .route("/", post(sts))
        .route("/foundation-models", get(list_foundation_models))
        .route("/_admin/quotas", put(admin_quota))
        .route("/_admin/models", put(admin_models))
        .route("/_admin/roles", post(admin_role))
        .route("/_admin/session-length", put(admin_session_length))
        .route("/_admin/jobs", post(admin_seed).get(admin_list))
        .route("/_admin/jobs/{ident}/status", post(admin_status))
        .route("/_admin/jobs/{ident}/records", post(admin_records))
        .route("/_admin/jobs/{ident}", axum::routing::delete(admin_remove))
        .route("/_admin/jobs/{ident}/latency", put(admin_job_latency))
        .route("/_admin/latency", put(admin_latency))
        .route("/_admin/list-delay", put(admin_list_delay))
        .route("/_admin/jobs/{ident}/life", get(admin_life))
        .route(
            "/_admin/faults",
            post(admin_fault).delete(admin_clear_faults),
        )
        .route("/_admin/calls", get(admin_calls))
        .route("/_admin/reset", post(admin_reset))
        .with_state(fake)
}

/// Region of the SigV4 credential scope: `Credential=AKID/date/REGION/service/aws4_request`.
fn signing_region(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    cred.split('/').nth(2).map(str::to_owned)
}

/// Access key of the SigV4 credential scope: `Credential=AKID/...`.
fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    cred.split('/').next().map(str::to_owned)
}

/// The account the request acts in, by its access key.
fn caller(fake: &FakeBedrock, headers: &HeaderMap) -> String {
    fake.lock().account_of_key(access_key(headers).as_deref())
}

/// Bedrock's answer to a request for a job of another account.
fn denied(account: &str, operation: &str, ident: &str) -> Response {
    aws_error(
        StatusCode::FORBIDDEN,
        Some("AccessDeniedException"),
        &format!(
            "User: arn:aws:sts::{account}:assumed-role/caller is not authorized to perform: bedrock:{operation} on resource: {ident}"
        ),
    )
}

/// `ident` names a job of another account than `account` (an ARN; an id is
/// looked up among the caller's own jobs).
fn foreign(ident: &str, account: &str) -> bool {
    ident.starts_with("arn:") && account_of(ident) != account
}

fn aws_error(status: StatusCode, error_type: Option<&str>, message: &str) -> Response {
    let mut resp = (status, axum::Json(json!({ "message": message }))).into_response();
    if let Some(t) = error_type {
        resp.headers_mut()
            .insert("x-amzn-ErrorType", t.parse().expect("static header"));
    }
    resp
}

fn fault_response(kind: FaultKind) -> Response {
    let (status, error_type) = kind.status_and_type();
    aws_error(status, error_type, &format!("injected fault: {kind:?}"))
}

/// Records the call, sleeps the configured latency, and returns a fault if one applies.
async fn enter(
    fake: &FakeBedrock,
    operation: &str,
    target: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<String>, Response> {
    let region = signing_region(headers);
    let (latency, fault) = {
        let mut inner = fake.lock();
        let at_ms = inner
            .started
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            .as_millis() as u64;
        let account = inner.account_of_key(access_key(headers).as_deref());
        inner.calls.push(Call {
            operation: operation.into(),
            target: target.map(str::to_owned),
            region: region.clone(),
            at_ms,
            account,
            session_name: None,
        });
        let job_id = target.map(|t| t.rsplit('/').next().unwrap_or(t));
        let extra = job_id
            .and_then(|id| inner.job_latency.get(id))
            .copied()
            .unwrap_or_default();
        (inner.latency + extra, inner.take_fault(operation, job_id))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(kind) => Err(fault_response(kind)),
        None => Ok(region),
    }
}

fn not_found(ident: &str) -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        Some("ResourceNotFoundException"),
        &format!("The specified job {ident} could not be found."),
    )
}

async fn get_job(
    State(fake): State<FakeBedrock>,
    Path(ident): Path<String>,
    headers: HeaderMap,
) -> Response {
    let region = match enter(&fake, "GetModelInvocationJob", Some(&ident), &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let account = caller(&fake, &headers);
    if foreign(&ident, &account) {
        return denied(&account, "GetModelInvocationJob", &ident);
    }
    let (answer, delay) = {
        let inner = fake.lock();
        let answer = match inner.find_of(&account, &ident, region.as_deref()) {
            Some(i) => axum::Json(inner.jobs[i].to_json()).into_response(),
            None => not_found(&ident),
        };
        (answer, inner.get_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    answer
}

async fn stop_job(
    State(fake): State<FakeBedrock>,
    Path(ident): Path<String>,
    headers: HeaderMap,
) -> Response {
    let region = match enter(&fake, "StopModelInvocationJob", Some(&ident), &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let account = caller(&fake, &headers);
    if foreign(&ident, &account) {
        return denied(&account, "StopModelInvocationJob", &ident);
    }
    let mut inner = fake.lock();
    let Some(i) = inner.find_of(&account, &ident, region.as_deref()) else {
        return not_found(&ident);
    };
    let job = &mut inner.jobs[i];
    if is_terminal(&job.status) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            Some("ValidationException"),
            &format!("Job {} is already {}", job.id, job.status),
        );
    }
    if job.status != "Stopping" {
        job.life.push("Stopping".into());
    }
    job.status = "Stopping".into();
    job.last_modified_time = Utc::now();
    axum::Json(json!({})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    job_name: String,
    model_id: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize, Serialize)]
struct Tag {
    key: String,
    value: String,
}

async fn create_job(
    State(fake): State<FakeBedrock>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let region = match enter(&fake, "CreateModelInvocationJob", None, &headers).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let body: CreateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                Some("ValidationException"),
                &e.to_string(),
            );
        }
    };
    let mut seed = SeedJob::named(&body.job_name);
    seed.account = caller(&fake, &headers);
    seed.model_id = body.model_id;
    seed.region = region.unwrap_or_else(default_region);
    seed.tags = body.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let arn = fake.seed(seed);
    axum::Json(json!({ "jobArn": arn })).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    status_equals: Option<String>,
    name_contains: Option<String>,
    submit_time_after: Option<DateTime<Utc>>,
    submit_time_before: Option<DateTime<Utc>>,
    max_results: Option<usize>,
    next_token: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
}

async fn list_jobs(
    State(fake): State<FakeBedrock>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    // A listing by status (the batch quota's count of the account's jobs)
    // says so in its call's target, so tests can tell it from the others.
    let by_status = q
        .status_equals
        .as_ref()
        .map(|st| format!("statusEquals={st}"));
    let region = match enter(
        &fake,
        "ListModelInvocationJobs",
        by_status.as_deref(),
        &headers,
    )
    .await
    {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let max = q.max_results.unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        return aws_error(
            StatusCode::BAD_REQUEST,
            Some("ValidationException"),
            "maxResults must be between 1 and 1000",
        );
    }
    if q.sort_by.as_deref().is_some_and(|s| s != "CreationTime") {
        return aws_error(
            StatusCode::BAD_REQUEST,
            Some("ValidationException"),
            "sortBy must be CreationTime",
        );
    }
    // Bedrock lists the newest first unless asked otherwise.
    let ascending = match q.sort_order.as_deref() {
        None | Some("Descending") => false,
        Some("Ascending") => true,
        Some(_) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                Some("ValidationException"),
                "sortOrder must be Ascending or Descending",
            );
        }
    };
    let start: usize = match q.next_token.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                Some("ValidationException"),
                "invalid nextToken",
            );
        }
    };
    let account = caller(&fake, &headers);
    let (body, delay) = {
        let inner = fake.lock();
        let delay = inner.list_delay;
        let mut matching: Vec<&Job> = inner
            .jobs
            .iter()
            .filter(|j| account_of(&j.arn) == account)
            .filter(|j| region.as_deref().is_none_or(|r| r == j.region))
            .filter(|j| q.status_equals.as_deref().is_none_or(|s| s == j.status))
            .filter(|j| {
                q.name_contains
                    .as_deref()
                    .is_none_or(|n| j.name.contains(n))
            })
            .filter(|j| q.submit_time_after.is_none_or(|t| j.submit_time > t))
            .filter(|j| q.submit_time_before.is_none_or(|t| j.submit_time < t))
            .collect();
        // Stable: jobs submitted at the same instant keep their creation order.
        matching.sort_by_key(|j| j.submit_time);
        if !ascending {
            matching.reverse();
        }
        let page: Vec<Value> = matching
            .iter()
            .skip(start)
            .take(max)
            .map(|j| j.to_json())
            .collect();
        let mut body = json!({ "invocationJobSummaries": page });
        if start + max < matching.len() {
            body["nextToken"] = json!((start + max).to_string());
        }
        (body, delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    axum::Json(body).into_response()
}

#[derive(Deserialize)]
struct TagsBody {
    #[serde(rename = "resourceARN")]
    resource_arn: String,
}

async fn list_tags(
    State(fake): State<FakeBedrock>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: TagsBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return aws_error(
                StatusCode::BAD_REQUEST,
                Some("ValidationException"),
                &e.to_string(),
            );
        }
    };
    let region = match enter(
        &fake,
        "ListTagsForResource",
        Some(&body.resource_arn),
        &headers,
    )
    .await
    {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let account = caller(&fake, &headers);
    if foreign(&body.resource_arn, &account) {
        return denied(&account, "ListTagsForResource", &body.resource_arn);
    }
    let inner = fake.lock();
    match inner.find_of(&account, &body.resource_arn, region.as_deref()) {
        Some(i) => {
            let tags: Vec<Tag> = inner.jobs[i]
                .tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            axum::Json(json!({ "tags": tags })).into_response()
        }
        None => not_found(&body.resource_arn),
    }
}

async fn admin_seed(
    State(fake): State<FakeBedrock>,
    axum::Json(seed): axum::Json<SeedJob>,
) -> Response {
    if !STATUSES.contains(&seed.status.as_str()) {
        // Unknown statuses are allowed on purpose (the monitor must keep them), but say so.
        eprintln!(
            "fake-bedrock: note: status {:?} is not one Bedrock documents",
            seed.status
        );
    }
    let arn = fake.seed(seed);
    let inner = fake.lock();
    let i = inner.find(&arn, None).expect("just seeded");
    (StatusCode::CREATED, axum::Json(inner.jobs[i].to_json())).into_response()
}

async fn admin_list(State(fake): State<FakeBedrock>) -> Response {
    let inner = fake.lock();
    let jobs: Vec<Value> = inner.jobs.iter().map(Job::to_json).collect();
    axum::Json(json!({ "jobs": jobs })).into_response()
}

async fn admin_status(
    State(fake): State<FakeBedrock>,
    Path(ident): Path<String>,
    axum::Json(change): axum::Json<StatusChange>,
) -> Response {
    if fake.set_status(&ident, change) {
        let inner = fake.lock();
        let i = inner.find(&ident, None).expect("just updated");
        axum::Json(inner.jobs[i].to_json()).into_response()
    } else {
        not_found(&ident)
    }
}

async fn admin_records(
    State(fake): State<FakeBedrock>,
    Path(ident): Path<String>,
    axum::Json(records): axum::Json<Records>,
) -> Response {
    if fake.set_records(&ident, records) {
        let inner = fake.lock();
        let i = inner.find(&ident, None).expect("just updated");
        axum::Json(inner.jobs[i].to_json()).into_response()
    } else {
        not_found(&ident)
    }
}

async fn admin_remove(State(fake): State<FakeBedrock>, Path(ident): Path<String>) -> Response {
    if fake.remove(&ident) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&ident)
    }
}

#[derive(Deserialize)]
struct LatencyBody {
    ms: u64,
}

async fn admin_latency(
    State(fake): State<FakeBedrock>,
    axum::Json(body): axum::Json<LatencyBody>,
) -> StatusCode {
    fake.set_latency(Duration::from_millis(body.ms));
    StatusCode::NO_CONTENT
}

async fn admin_list_delay(
    State(fake): State<FakeBedrock>,
    axum::Json(body): axum::Json<LatencyBody>,
) -> StatusCode {
    fake.set_list_delay(Duration::from_millis(body.ms));
    StatusCode::NO_CONTENT
}

async fn admin_life(State(fake): State<FakeBedrock>, Path(ident): Path<String>) -> Response {
    match fake.life(&ident) {
        Some(life) => axum::Json(json!({ "life": life })).into_response(),
        None => not_found(&ident),
    }
}

async fn admin_job_latency(
    State(fake): State<FakeBedrock>,
    Path(ident): Path<String>,
    axum::Json(body): axum::Json<LatencyBody>,
) -> StatusCode {
    fake.set_job_latency(&ident, Duration::from_millis(body.ms));
    StatusCode::NO_CONTENT
}

async fn admin_fault(
    State(fake): State<FakeBedrock>,
    axum::Json(fault): axum::Json<Fault>,
) -> StatusCode {
    fake.inject(fault);
    StatusCode::NO_CONTENT
}

async fn admin_clear_faults(State(fake): State<FakeBedrock>) -> StatusCode {
    fake.clear_faults();
    StatusCode::NO_CONTENT
}

async fn admin_calls(State(fake): State<FakeBedrock>) -> Response {
    let calls = fake.calls();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for c in &calls {
        *counts.entry(c.operation.clone()).or_default() += 1;
    }
    axum::Json(json!({ "counts": counts, "calls": calls })).into_response()
}

async fn admin_reset(State(fake): State<FakeBedrock>) -> StatusCode {
    fake.reset();
    StatusCode::NO_CONTENT
}

/// STS's Query-protocol error document.
fn sts_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{}</Message></Error><RequestId>fake</RequestId></ErrorResponse>",
        xml_escape(message)
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A form field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// STS `AssumeRole`: credentials of the role's account, for a role a test
/// allowed; `AccessDenied` for any other, as STS answers a role that does
/// not exist or does not trust the caller
/// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html).
async fn sts(State(fake): State<FakeBedrock>, headers: HeaderMap, body: String) -> Response {
    // Service Quotas shares `POST /` (the JSON 1.1 protocol names its
    // operation in X-Amz-Target; STS's Query protocol in the form body).
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok())
        && let Some(op) = target.strip_prefix("ServiceQuotasV20190624.")
    {
        return service_quotas(&fake, op, &headers, &body).await;
    }
    let action = form_field(&body, "Action").unwrap_or_default();
    let role_arn = form_field(&body, "RoleArn").unwrap_or_default();
    let session_name = form_field(&body, "RoleSessionName").unwrap_or_default();
    let region = signing_region(&headers);
    let mut inner = fake.lock();
    let at_ms = inner
        .started
        .get_or_insert_with(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64;
    let account = inner.account_of_key(access_key(&headers).as_deref());
    inner.calls.push(Call {
        operation: if action.is_empty() {
            "Sts".into()
        } else {
            action.clone()
        },
        target: Some(role_arn.clone()).filter(|r| !r.is_empty()),
        region,
        at_ms,
        account: account.clone(),
        session_name: Some(session_name.clone()).filter(|s| !s.is_empty()),
    });
    if action != "AssumeRole" {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("the fake answers AssumeRole only, not {action:?}"),
        );
    }
    if session_name.is_empty() || session_name.len() > 64 {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            "RoleSessionName must be 2 to 64 characters",
        );
    }
    if let Some(kind) = inner.take_fault("AssumeRole", None) {
        let (status, _) = kind.status_and_type();
        return sts_error(status, "Throttling", &format!("injected fault: {kind:?}"));
    }
    // arn:<partition>:iam::<account>:role/<name>
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    let target = match parts[..] {
        ["arn", _, "iam", "", acct, resource] => resource.strip_prefix("role/").map(|name| {
            (
                acct.to_owned(),
                name.rsplit('/').next().unwrap_or(name).to_owned(),
            )
        }),
        _ => None,
    };
    let Some((role_account, role_name)) = target.filter(|t| inner.roles.contains(t)) else {
        return sts_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: arn:aws:sts::{account}:assumed-role/caller is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
            ),
        );
    };
    inner.next_id += 1;
    let key = format!("ASIAFAKE{role_account}{:06}", inner.next_id);
    inner.keys.insert(key.clone(), role_account.clone());
    let length = inner.session.unwrap_or(DEFAULT_SESSION);
    let expires = Utc::now() + chrono::Duration::from_std(length).unwrap_or_default();
    let body = format!(
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
         <Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>fake-secret</SecretAccessKey>\
         <SessionToken>fake-session-{key}</SessionToken><Expiration>{}</Expiration></Credentials>\
         <AssumedRoleUser><AssumedRoleId>AROAFAKE:{session}</AssumedRoleId>\
         <Arn>arn:aws:sts::{role_account}:assumed-role/{role_name}/{session}</Arn></AssumedRoleUser>\
         </AssumeRoleResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></AssumeRoleResponse>",
        expires.to_rfc3339_opts(SecondsFormat::Secs, true),
        session = xml_escape(&session_name),
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleBody {
    account: String,
    role_name: String,
}

async fn admin_role(
    State(fake): State<FakeBedrock>,
    axum::Json(r): axum::Json<RoleBody>,
) -> StatusCode {
    fake.allow_role(&r.account, &r.role_name);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SecondsBody {
    seconds: u64,
}

async fn admin_session_length(
    State(fake): State<FakeBedrock>,
    axum::Json(b): axum::Json<SecondsBody>,
) -> StatusCode {
    fake.set_session_length(Duration::from_secs(b.seconds));
    StatusCode::NO_CONTENT
}

/// The foundation models the fake serves unless a test sets others: (model
/// id, display name), as ListFoundationModels names them.
pub const MODELS: [(&str, &str); 4] = [
    ("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku"),
    (
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "Claude 3.5 Sonnet",
    ),
    ("amazon.nova-lite-v1:0", "Nova Lite"),
    ("amazon.titan-embed-text-v2:0", "Titan Text Embeddings V2"),
];

/// The quotas the fake has for each model (`{model}` its display name),
/// with their defaults; the first is the batch quota the monitor reads.
/// Names as Bedrock's quotas are named
/// (https://docs.aws.amazon.com/general/latest/gr/bedrock.html#limits_bedrock).
pub const QUOTA_KINDS: [(&str, f64); 3] = [
    (
        "Sum of in-progress and submitted batch inference jobs using a base model for {model}",
        20.0,
    ),
    ("Records per batch inference job for {model}", 50_000.0),
    ("Batch inference job size (in GB) for {model}", 1.0),
];

/// Service Quotas' largest page (`MaxResults`, 1 to 100).
pub const QUOTA_PAGE_MAX: usize = 100;

impl FakeBedrock {
    /// Serves these foundation models (id, display name) instead of [`MODELS`].
    pub fn set_models(&self, models: &[(&str, &str)]) {
        self.lock().models = Some(
            models
                .iter()
                .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
                .collect(),
        );
    }

    /// Sets `account`'s quota named `name` (`None` takes it away).
    pub fn set_quota(&self, account: &str, name: &str, value: Option<f64>) {
        self.lock()
            .quota_values
            .insert((account.to_owned(), name.to_owned()), value);
    }

    /// `account`'s batch quota for the model named `model` (display name).
    pub fn set_batch_quota(&self, account: &str, model: &str, value: Option<f64>) {
        self.set_quota(account, &QUOTA_KINDS[0].0.replace("{model}", model), value);
    }
}

impl Inner {
    fn models(&self) -> Vec<(String, String)> {
        self.models.clone().unwrap_or_else(|| {
            MODELS
                .iter()
                .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
                .collect()
        })
    }

    /// `account`'s quotas: every kind for every model, as set or at its default.
    fn quotas_of(&self, account: &str) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = Vec::new();
        for (_, model) in self.models() {
            for (kind, default) in QUOTA_KINDS {
                let name = kind.replace("{model}", &model);
                match self.quota_values.get(&(account.to_owned(), name.clone())) {
                    Some(None) => {}
                    Some(Some(v)) => out.push((name, *v)),
                    None => out.push((name, default)),
                }
            }
        }
        // Quotas a test set for models the fake does not serve.
        for ((a, name), v) in &self.quota_values {
            if a == account
                && let Some(v) = v
                && !out.iter().any(|(n, _)| n == name)
            {
                out.push((name.clone(), *v));
            }
        }
        out
    }
}

/// Bedrock's `ListFoundationModels`: every model of the region in one answer
/// (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html).
async fn list_foundation_models(State(fake): State<FakeBedrock>, headers: HeaderMap) -> Response {
    let region = match enter(&fake, "ListFoundationModels", None, &headers).await {
        Ok(r) => r.unwrap_or_else(default_region),
        Err(resp) => return resp,
    };
    let models = fake.lock().models();
    let summaries: Vec<Value> = models
        .iter()
        .map(|(id, name)| {
            json!({
                "modelArn": format!("arn:aws:bedrock:{region}::foundation-model/{id}"),
                "modelId": id,
                "modelName": name,
                "providerName": id.split('.').next().unwrap_or_default(),
                "inputModalities": ["TEXT"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": true,
                "customizationsSupported": [],
                "inferenceTypesSupported": ["ON_DEMAND"],
                "modelLifecycle": {"status": "ACTIVE"},
            })
        })
        .collect();
    axum::Json(json!({ "modelSummaries": summaries })).into_response()
}

/// An error in the JSON 1.1 protocol's shape: `__type` and `message`.
fn json11_error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(json!({ "__type": code, "message": message })),
    )
        .into_response();
    resp.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.1".parse().expect("static header"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct QuotasBody {
    service_code: Option<String>,
    next_token: Option<String>,
    max_results: Option<usize>,
}

/// Service Quotas' `ListServiceQuotas` for the caller's account, paged by
/// `NextToken`
/// (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html).
async fn service_quotas(fake: &FakeBedrock, op: &str, headers: &HeaderMap, body: &str) -> Response {
    let region = match enter(fake, op, None, headers).await {
        Ok(r) => r.unwrap_or_else(default_region),
        Err(resp) => {
            // The fault in this protocol's shape.
            let status = resp.status();
            let code = resp
                .headers()
                .get("x-amzn-ErrorType")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("ServiceException")
                .to_owned();
            return json11_error(status, &code, "injected fault");
        }
    };
    if op != "ListServiceQuotas" {
        return json11_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the fake answers ListServiceQuotas only, not {op}"),
        );
    }
    let q: QuotasBody = match serde_json::from_str(if body.is_empty() { "{}" } else { body }) {
        Ok(q) => q,
        Err(e) => {
            return json11_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                &e.to_string(),
            );
        }
    };
    let max = q.max_results.unwrap_or(QUOTA_PAGE_MAX);
    if !(1..=QUOTA_PAGE_MAX).contains(&max) {
        return json11_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "MaxResults must be between 1 and 100",
        );
    }
    let Some(code) = q.service_code.filter(|c| !c.is_empty()) else {
        return json11_error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "ServiceCode is required",
        );
    };
    if code != "bedrock" {
        return json11_error(
            StatusCode::NOT_FOUND,
            "NoSuchResourceException",
            &format!("the fake has quotas of bedrock only, not {code}"),
        );
    }
    let start: usize = match q.next_token.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return json11_error(
                StatusCode::BAD_REQUEST,
                "InvalidPaginationTokenException",
                "invalid NextToken",
            );
        }
    };
    let account = caller(fake, headers);
    let quotas = fake.lock().quotas_of(&account);
    let page: Vec<Value> = quotas
        .iter()
        .enumerate()
        .skip(start)
        .take(max)
        .map(|(i, (name, value))| {
            let code = format!("L-{:08X}", i + 1);
            json!({
                "ServiceCode": "bedrock",
                "ServiceName": "Amazon Bedrock",
                "QuotaArn": format!("arn:aws:servicequotas:{region}:{account}:bedrock/{code}"),
                "QuotaCode": code,
                "QuotaName": name,
                "Value": value,
                "Unit": "None",
                "Adjustable": true,
                "GlobalQuota": false,
            })
        })
        .collect();
    let mut out = json!({ "Quotas": page });
    if start + max < quotas.len() {
        out["NextToken"] = json!((start + max).to_string());
    }
    let mut resp = axum::Json(out).into_response();
    resp.headers_mut().insert(
        "content-type",
        "application/x-amz-json-1.1".parse().expect("static header"),
    );
    resp
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuotaAdminBody {
    #[serde(default = "default_account")]
    account: String,
    quota_name: String,
    /// `null` takes the quota away.
    value: Option<f64>,
}

async fn admin_quota(
    State(fake): State<FakeBedrock>,
    axum::Json(b): axum::Json<QuotaAdminBody>,
) -> StatusCode {
    fake.set_quota(&b.account, &b.quota_name, b.value);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelAdmin {
    model_id: String,
    model_name: String,
}

async fn admin_models(
    State(fake): State<FakeBedrock>,
    axum::Json(models): axum::Json<Vec<ModelAdmin>>,
) -> StatusCode {
    let pairs: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.model_id.as_str(), m.model_name.as_str()))
        .collect();
    fake.set_models(&pairs);
    StatusCode::NO_CONTENT
}
