//! [`JobSource`] over aws-sdk-bedrock: GetModelInvocationJob and
//! ListModelInvocationJobs with a client for the job's own account and
//! region, built once per account and region from the shared SDK
//! configuration; and Bedrock's output manifest of a finished job, read with
//! aws-sdk-s3 from the buckets configured, with an S3 client in the bucket's
//! region (also built once per account and region).
//!
//! A job of another account than the function's own is read with the
//! credentials of a role in that account ([`MemberRoles`]), assumed with STS
//! by aws-config's `AssumeRoleProvider` (reached through the SDK's endpoint
//! variables, `AWS_ENDPOINT_URL_STS`). One provider per account and region,
//! shared by that pair's Bedrock and S3 clients; the SDK's identity cache
//! keeps its credentials until shortly before they expire, so a poll assumes
//! each role at most once an hour, not once a job.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_bedrock::Client;
use aws_sdk_bedrock::config::Region;
use aws_sdk_bedrock::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrock::operation::get_model_invocation_job::GetModelInvocationJobOutput;
use aws_sdk_bedrock::primitives::DateTime as SdkTime;
use aws_sdk_bedrock::types::{
    ModelInvocationJobInputDataConfig, ModelInvocationJobOutputDataConfig,
    ModelInvocationJobStatus, ModelInvocationJobSummary, SortJobsBy, SortOrder,
};
use tracing::warn;

use super::{ErrorFacts, facts, to_chrono};
use crate::domain::{
    JobArn, JobRef, JobSnapshot, JobStatus, ReadScope, RecordCounts, RecordErrors, Tally,
    TokenTotals, partition_of,
};
use crate::ports::{
    JobPage, JobSource, ListQuery, ManifestError, OutputError, QuotaError, QuotaPage, SourceError,
};

/// Summaries per ListModelInvocationJobs page: the most Bedrock gives.
pub const LIST_PAGE_SIZE: i32 = 1000;

/// More (account, region) pairs than any deployment reads (member accounts
/// times the regions they run jobs in); past it clients are not kept.
pub const MAX_CACHED_CLIENTS: usize = 4096;

/// The role the source assumes in every account but its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoles {
    /// The function's own account: its jobs are read with its own credentials.
    pub home_account: String,
    /// `MEMBER_ROLE_NAME`.
    pub role_name: String,
    /// STS's `RoleSessionName`, saying which monitor assumed the role (it is
    /// in the member account's CloudTrail).
    pub session_name: String,
}

impl MemberRoles {
    /// `session_name` is `bedrock-batch-monitor-<environment>`, cut to STS's 64 characters.
    pub fn new(home_account: &str, role_name: &str, environment: &str) -> Self {
        let mut session_name = format!("bedrock-batch-monitor-{environment}");
        session_name.truncate(64);
        Self {
            home_account: home_account.to_owned(),
            role_name: role_name.to_owned(),
            session_name,
        }
    }

    /// The role's ARN in `account`, in the partition of `region`.
    pub fn role_arn(&self, account: &str, region: &str) -> String {
        let partition = partition_of(region).unwrap_or("aws");
        format!("arn:{partition}:iam::{account}:role/{}", self.role_name)
    }
}

/// Whose credentials a client carries: the function's own (`None`), or a
/// member account's role.
type ClientKey = (Option<String>, String);

/// How long a role that could not be assumed is not asked again: its
/// account's requests in that region fail at once meanwhile (no STS call, no
/// Bedrock request, no rate-limit slot), so an account whose role is missing
/// costs a poll one AssumeRole a minute, not one a job, and holds up no one.
pub const ROLE_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A ceiling on the requests per second this process sends Bedrock, shared by
/// every operation and region (Bedrock's API quotas are per account and
/// region, and other tools spend them too). Each request takes the next free
/// slot; a throttled request doubles the spacing (up to 16 times), and each
/// accepted one brings it back a tenth of the way, so a throttling Bedrock
/// sees fewer requests, not more.
#[derive(Debug)]
pub struct RateLimit {
    base: Duration,
    state: Mutex<(Instant, Duration)>,
}

impl RateLimit {
    pub fn per_second(rps: u32) -> Self {
        let base = Duration::from_secs(1) / rps.max(1);
        Self {
            base,
            state: Mutex::new((Instant::now(), base)),
        }
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let at = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let at = st.0.max(Instant::now());
            st.0 = at + st.1;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }

    /// Bedrock throttled a request: space the next ones further apart.
    pub fn throttled(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = (st.1 * 2).min(self.base * 16);
    }

    /// Bedrock accepted a request: come back towards the configured rate.
    pub fn accepted(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.1 > self.base {
            st.1 = st.1.saturating_sub(self.base / 10).max(self.base);
        }
    }

    /// The current spacing between requests.
    pub fn spacing(&self) -> Duration {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

pub struct BedrockJobSource {
    base: SdkConfig,
    limit: RateLimit,
    clients: RwLock<HashMap<ClientKey, Client>>,
    /// Without it every account is read with the function's own credentials.
    roles: Option<MemberRoles>,
    /// The assumed-role credentials of each member account and region.
    providers: RwLock<HashMap<(String, String), SharedCredentialsProvider>>,
    /// The member clients' own identity cache, with room for every provider
    /// kept: the SDK's default cache holds 64 and evicts past that, which
    /// would assume roles again every poll in a large organization.
    member_cache: aws_sdk_bedrock::config::SharedIdentityCache,
    /// Member roles that could not be assumed lately, and why
    /// ([`ROLE_RETRY_AFTER`]).
    role_failures: Mutex<HashMap<(String, String), (Instant, SourceError)>>,
    /// Where finished jobs' manifests may be read (`OUTPUT_BUCKETS`).
    manifests: Option<Manifests>,
    /// Service Quotas clients (the batch quota per model), one per account
    /// and region like the Bedrock clients, endpoints from the same
    /// configuration (`AWS_ENDPOINT_URL_SERVICE_QUOTAS`).
    quota_clients: RwLock<HashMap<ClientKey, aws_sdk_servicequotas::Client>>,
}

/// Quotas per ListServiceQuotas page: the most Service Quotas gives
/// (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html).
pub const QUOTA_PAGE_SIZE: i32 = 100;

/// The buckets the function's role may read manifests from, and an S3 client
/// per region, each built once from `base` (credentials, retries, endpoints:
/// `AWS_ENDPOINT_URL_S3` and the like) with only the region changed. The Rust
/// SDK does not follow S3's redirect to a bucket's own region, so one client
/// in the home region could not read a bucket elsewhere.
struct Manifests {
    base: aws_sdk_s3::Config,
    buckets: Vec<String>,
    clients: RwLock<HashMap<ClientKey, aws_sdk_s3::Client>>,
    /// The source's identity cache for member credentials.
    member_cache: aws_sdk_bedrock::config::SharedIdentityCache,
}

/// Longest S3 or KMS message carried into a notification's cost line.
const MAX_REASON_CHARS: usize = 300;

impl Manifests {
    /// The client for `region` with `as_member`'s credentials (the
    /// function's own when `None`), built once; `None` for a region that is
    /// not well-formed. Past [`MAX_CACHED_CLIENTS`] clients are built, not kept.
    fn client(
        &self,
        region: &str,
        as_member: Option<(&str, &SharedCredentialsProvider)>,
    ) -> Option<aws_sdk_s3::Client> {
        partition_of(region)?;
        let key: ClientKey = (as_member.map(|(a, _)| a.to_owned()), region.to_owned());
        if let Some(c) = self
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(c.clone());
        }
        let mut conf = self
            .base
            .to_builder()
            .region(aws_sdk_s3::config::Region::new(region.to_owned()));
        if let Some((_, credentials)) = as_member {
            conf = conf
                .credentials_provider(credentials.clone())
                .identity_cache(self.member_cache.clone());
        }
        let client = aws_sdk_s3::Client::from_conf(conf.build());
        let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CACHED_CLIENTS {
            return Some(client);
        }
        Some(clients.entry(key).or_insert(client).clone())
    }

    /// The regions a client has been built for (tests: one client a region).
    fn regions(&self) -> usize {
        self.clients.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The manifest's bytes, read in `region` (the job's: where Bedrock
    /// writes its output). When S3 answers that the bucket is in another
    /// region (a 301 PermanentRedirect, or a 400 in regions launched after
    /// March 2019, naming it in the `x-amz-bucket-region` header or the body:
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/UsingRouting.html),
    /// it is read once more there.
    async fn read(
        &self,
        region: &str,
        as_member: Option<(&str, &SharedCredentialsProvider)>,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, ManifestError> {
        let uri = format!("s3://{bucket}/{key}");
        let Some(client) = self.client(region, as_member) else {
            return Err(ManifestError::Unreadable {
                message: format!("{region:?} is not a well-formed AWS region"),
                uri,
                cause: None,
            });
        };
        let err = match get_object(&client, bucket, key).await {
            Ok(out) => return body_of(out, &uri).await,
            Err(e) => e,
        };
        let elsewhere = bucket_region(&err).filter(|r| r != region);
        match elsewhere.as_deref().and_then(|r| self.client(r, as_member)) {
            Some(there) => match get_object(&there, bucket, key).await {
                Ok(out) => body_of(out, &uri).await,
                Err(e) => Err(manifest_error(uri, e, None)),
            },
            None => Err(manifest_error(uri, err, elsewhere.map(|r| (r, region)))),
        }
    }
}

type GetObjectFailure = SdkError<aws_sdk_s3::operation::get_object::GetObjectError>;

async fn get_object(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, GetObjectFailure> {
    s3.get_object().bucket(bucket).key(key).send().await
}

async fn body_of(
    out: aws_sdk_s3::operation::get_object::GetObjectOutput,
    uri: &str,
) -> Result<Vec<u8>, ManifestError> {
    match out.body.collect().await {
        Ok(b) => Ok(b.into_bytes().to_vec()),
        Err(e) => Err(ManifestError::Unreadable {
            uri: uri.to_owned(),
            message: short(&format!("its body did not arrive: {e}")),
            cause: Some(std::sync::Arc::new(e)),
        }),
    }
}

/// The region S3 says the bucket is in, from an answer that refused the
/// request: the `x-amz-bucket-region` header, or `<Region>` in the body.
fn bucket_region(e: &GetObjectFailure) -> Option<String> {
    let raw = e.raw_response()?;
    let named = raw
        .headers()
        .get("x-amz-bucket-region")
        .map(str::to_owned)
        .or_else(|| {
            let body = std::str::from_utf8(raw.body().bytes()?).ok()?;
            let start = body.find("<Region>")? + "<Region>".len();
            let len = body[start..].find("</Region>")?;
            Some(body[start..start + len].to_owned())
        })?;
    let named = named.trim().to_owned();
    partition_of(&named).map(|_| named)
}

/// A GetObject failure as the reason a notification gives. `moved` is the
/// bucket's region and the job's, when they differ and the bucket's could
/// not be tried.
fn manifest_error(
    uri: String,
    e: GetObjectFailure,
    moved: Option<(String, &str)>,
) -> ManifestError {
    let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key())
        || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
    let denied = e.code() == Some("AccessDenied");
    let f = facts(e);
    let mut message = short(&if f.dispatch {
        format!("S3 did not answer: {}", f.message)
    } else {
        f.message
    });
    if let Some((bucket, job)) = moved {
        message.push_str(&format!(" (the bucket is in {bucket}, the job in {job})"));
    }
    if denied && !message.contains("kms:") {
        // Without s3:ListBucket (which the function is not given), S3 answers
        // AccessDenied for an object that does not exist too:
        // https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
        // (KMS's refusal names kms:Decrypt in S3's message instead.)
        message.push_str(
            " (S3 says so of a missing object too, to a role that may not list the bucket)",
        );
    }
    if missing {
        ManifestError::Missing {
            uri,
            message,
            cause: f.cause,
        }
    } else {
        ManifestError::Unreadable {
            uri,
            message,
            cause: f.cause,
        }
    }
}

/// `text` cut to [`MAX_REASON_CHARS`] characters, with a marker.
fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

impl BedrockJobSource {
    /// `base` carries credentials, retries and endpoints (`AWS_ENDPOINT_URL_BEDROCK`);
    /// the region is set per job.
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            limit: RateLimit::per_second(crate::config::DEFAULT_BEDROCK_MAX_RPS),
            clients: RwLock::default(),
            roles: None,
            providers: RwLock::default(),
            member_cache: aws_sdk_bedrock::config::IdentityCache::lazy()
                .max_partitions(2 * MAX_CACHED_CLIENTS)
                .build(),
            role_failures: Mutex::default(),
            manifests: None,
            quota_clients: RwLock::default(),
        }
    }

    /// Reads the jobs of every account but `roles.home_account` with the role
    /// `roles.role_name` assumed in that account. (Which accounts may be read
    /// at all is the monitor's decision: `MEMBER_ACCOUNTS`.)
    pub fn with_member_roles(mut self, roles: MemberRoles) -> Self {
        self.roles = Some(roles);
        self
    }

    /// Member roles as `config` sets them (`MEMBER_ACCOUNTS`,
    /// `MEMBER_ROLE_NAME`, `ENVIRONMENT`); none without member accounts, so
    /// a monitor of one account works exactly as before they existed.
    pub fn with_members_of(self, config: &crate::config::Config) -> Self {
        if config.member_accounts.is_empty() {
            return self;
        }
        self.with_member_roles(MemberRoles::new(
            config.home_account(),
            &config.member_role_name,
            &config.environment,
        ))
    }

    /// The member account `account` names, `None` for the function's own
    /// (or every account, without member roles; and a bare id's).
    fn member<'a>(&self, account: Option<&'a str>) -> Option<&'a str> {
        let roles = self.roles.as_ref()?;
        account.filter(|a| *a != roles.home_account)
    }

    /// The credentials of `account`'s role for calls in `region`: one
    /// provider per pair, built once.
    async fn provider(&self, account: &str, region: &str) -> Option<SharedCredentialsProvider> {
        let roles = self.roles.as_ref()?;
        let key = (account.to_owned(), region.to_owned());
        if let Some(p) = self
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(p.clone());
        }
        // STS in the job's own region (a regional endpoint), with the
        // function's own credentials, retries, timeouts and endpoints.
        let provider = AssumeRoleProvider::builder(roles.role_arn(account, region))
            .session_name(roles.session_name.clone())
            .region(Region::new(region.to_owned()))
            .configure(&self.base)
            .build()
            .await;
        let provider = SharedCredentialsProvider::new(provider);
        let mut providers = self.providers.write().unwrap_or_else(|e| e.into_inner());
        if providers.len() >= MAX_CACHED_CLIENTS {
            return Some(provider);
        }
        Some(providers.entry(key).or_insert(provider).clone())
    }

    /// Maps a failed call for `account` in `region`: a role that could not be
    /// assumed is [`SourceError::MemberRoleUnavailable`], anything else as
    /// [`map_error`] maps it.
    fn failure<E>(&self, account: Option<&str>, region: &str, e: SdkError<E>) -> SourceError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if let (Some(member), Some(roles)) = (self.member(account), &self.roles)
            && let Some(why) = credentials_failure(&e)
        {
            return SourceError::MemberRoleUnavailable {
                role_arn: roles.role_arn(member, region),
                message: why,
                cause: Some(std::sync::Arc::new(e)),
            };
        }
        map_error(e)
    }

    /// At most `rps` Bedrock requests a second (`BEDROCK_MAX_RPS`).
    pub fn with_rate_limit(mut self, rps: u32) -> Self {
        self.limit = RateLimit::per_second(rps);
        self
    }

    /// Sends one request for `account`'s jobs in `region` within the rate
    /// limit, and adapts it to the answer. A member whose role could not be
    /// assumed lately fails at once, as it did.
    async fn limited<T>(
        &self,
        account: Option<&str>,
        region: &str,
        call: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let member = self
            .member(account)
            .map(|a| (a.to_owned(), region.to_owned()));
        if let Some(key) = &member
            && let Some((at, e)) = self
                .role_failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
            && at.elapsed() < ROLE_RETRY_AFTER
        {
            return Err(e.clone());
        }
        self.limit.acquire().await;
        let result = call.await;
        match &result {
            Err(SourceError::Throttling { .. }) => self.limit.throttled(),
            Err(e @ SourceError::MemberRoleUnavailable { .. }) => {
                if let Some(key) = member {
                    self.role_failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key, (Instant::now(), e.clone()));
                }
            }
            Ok(_) => {
                self.limit.accepted();
                if let Some(key) = &member {
                    self.role_failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(key);
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Reads the manifests of jobs whose output is in one of `buckets`, with
    /// clients made from `s3` in each bucket's region.
    pub fn with_manifests(mut self, s3: aws_sdk_s3::Config, buckets: Vec<String>) -> Self {
        if !buckets.is_empty() {
            self.manifests = Some(Manifests {
                base: s3,
                buckets,
                clients: RwLock::default(),
                member_cache: self.member_cache.clone(),
            });
        }
        self
    }

    /// How many (account, region) pairs an S3 client was built for (one per
    /// pair, however many manifests are read there).
    pub fn manifest_regions(&self) -> usize {
        self.manifests.as_ref().map_or(0, Manifests::regions)
    }

    /// Uses `client` for `region` and the function's own account instead of
    /// building one (tests, custom clients).
    pub fn with_client(self, region: &str, client: Client) -> Self {
        self.clients
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((None, region.to_owned()), client);
        self
    }

    /// The client for `account`'s jobs in `region`, built once. Only
    /// well-formed regions get one (ARNs are checked when parsed; this guards
    /// every other way in), and the cache stops growing at [`MAX_CACHED_CLIENTS`].
    async fn client(&self, account: Option<&str>, region: &str) -> Result<Client, SourceError> {
        if partition_of(region).is_none() {
            return Err(SourceError::Validation {
                message: format!("{region:?} is not a well-formed AWS region"),
                cause: None,
            });
        }
        let member = self.member(account);
        let key: ClientKey = (member.map(str::to_owned), region.to_owned());
        if let Some(c) = self
            .clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut conf = aws_sdk_bedrock::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()));
        if let Some(member) = member
            && let Some(credentials) = self.provider(member, region).await
        {
            conf = conf
                .credentials_provider(credentials)
                .identity_cache(self.member_cache.clone());
        }
        let client = Client::from_conf(conf.build());
        let mut clients = self.clients.write().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CACHED_CLIENTS {
            return Ok(client);
        }
        Ok(clients.entry(key).or_insert(client).clone())
    }
}

impl BedrockJobSource {
    /// The Service Quotas client for `account` in `region`, built once.
    async fn quota_client(
        &self,
        account: &str,
        region: &str,
    ) -> Result<aws_sdk_servicequotas::Client, QuotaError> {
        if partition_of(region).is_none() {
            return Err(QuotaError {
                operation: "ListServiceQuotas",
                message: format!("{region:?} is not a well-formed AWS region"),
                cause: None,
            });
        }
        let member = self.member(Some(account));
        let key: ClientKey = (member.map(str::to_owned), region.to_owned());
        if let Some(c) = self
            .quota_clients
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let mut conf = aws_sdk_servicequotas::config::Builder::from(&self.base).region(
            aws_sdk_servicequotas::config::Region::new(region.to_owned()),
        );
        if let Some(member) = member
            && let Some(credentials) = self.provider(member, region).await
        {
            conf = conf
                .credentials_provider(credentials)
                .identity_cache(self.member_cache.clone());
        }
        let client = aws_sdk_servicequotas::Client::from_conf(conf.build());
        let mut clients = self
            .quota_clients
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CACHED_CLIENTS {
            return Ok(client);
        }
        Ok(clients.entry(key).or_insert(client).clone())
    }
}

/// A failed quota or model read as the reason people are told: the
/// member role's refusal when that is why, else the service's code and words.
fn quota_error<E>(operation: &'static str, e: SdkError<E>) -> QuotaError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let Some(why) = credentials_failure(&e) {
        return QuotaError {
            operation,
            message: format!("the member account's role could not be assumed: {why}"),
            cause: Some(std::sync::Arc::new(e)),
        };
    }
    let f = facts(e);
    QuotaError {
        operation,
        message: short(&if f.dispatch {
            format!("no answer: {}", f.message)
        } else {
            f.message
        }),
        cause: f.cause,
    }
}

/// Why the credentials of a call could not be had, when that is why it
/// failed: the SDK reports a credentials provider's failure (STS refusing
/// AssumeRole, say) as a dispatch failure whose sources hold the provider's
/// `CredentialsError`.
fn credentials_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    type AssumeRoleFailure = SdkError<
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_smithy_runtime_api::http::Response,
    >;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<CredentialsError>().is_some() {
            // STS's own code and words when it answered (AccessDenied: the
            // role is missing or does not trust this function's role).
            let mut inner = err.source();
            while let Some(i) = inner {
                if let Some(sts) = i.downcast_ref::<AssumeRoleFailure>()
                    && let (Some(code), message) = (sts.code(), sts.message())
                {
                    return Some(format!(
                        "STS AssumeRole: {code}: {}",
                        message.unwrap_or_default()
                    ));
                }
                inner = i.source();
            }
            return Some(super::aws_smithy_error_chain(err));
        }
        cur = err.source();
    }
    None
}

impl JobSource for BedrockJobSource {
    async fn get_job(&self, job: &JobRef) -> Result<JobSnapshot, SourceError> {
        let client = self.client(job.account(), job.region()).await?;
        let out = self
            .limited(job.account(), job.region(), async {
                client
                    .get_model_invocation_job()
                    .job_identifier(job.identifier())
                    .send()
                    .await
                    .map_err(|e| self.failure(job.account(), job.region(), e))
            })
            .await?;
        snapshot(&out)
    }

    async fn tags(&self, job: &JobArn) -> Result<BTreeMap<String, String>, SourceError> {
        let client = self.client(Some(job.account()), job.region()).await?;
        let out = self
            .limited(Some(job.account()), job.region(), async {
                client
                    .list_tags_for_resource()
                    .resource_arn(job.as_str())
                    .send()
                    .await
                    .map_err(|e| self.failure(Some(job.account()), job.region(), e))
            })
            .await?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }

    async fn stop_job(&self, job: &JobArn) -> Result<(), SourceError> {
        let account = Some(job.account());
        let client = self.client(account, job.region()).await?;
        self.limited(account, job.region(), async {
            client
                .stop_model_invocation_job()
                .job_identifier(job.as_str())
                .send()
                .await
                .map_err(|e| self.failure(account, job.region(), e))
        })
        .await?;
        Ok(())
    }

    async fn list_page(
        &self,
        query: &ListQuery<'_>,
        token: Option<&str>,
    ) -> Result<JobPage, SourceError> {
        let account = Some(query.account);
        let client = self.client(account, query.region).await?;
        let request = client
            .list_model_invocation_jobs()
            .set_submit_time_after(
                query
                    .submitted_after
                    .map(|t| SdkTime::from_millis(t.timestamp_millis())),
            )
            .set_name_contains(query.name_contains.map(str::to_owned))
            .set_status_equals(
                query
                    .status
                    .map(|s| ModelInvocationJobStatus::from(s.as_str())),
            )
            .sort_by(SortJobsBy::CreationTime)
            .sort_order(SortOrder::Ascending)
            .max_results(LIST_PAGE_SIZE)
            .set_next_token(token.map(str::to_owned));
        let out = self
            .limited(account, query.region, async {
                request
                    .send()
                    .await
                    .map_err(|e| self.failure(account, query.region, e))
            })
            .await?;
        let mut page = JobPage::default();
        for summary in out.invocation_job_summaries() {
            match summary_snapshot(summary) {
                Ok(s) => page.jobs.push(s),
                Err(e) => {
                    warn!(region = query.region, job_arn = summary.job_arn(), error = %e, "skipping a job Bedrock listed that cannot be read")
                }
            }
        }
        page.next = out
            .next_token()
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(page)
    }

    async fn foundation_models(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Vec<(String, String)>, QuotaError> {
        const OP: &str = "ListFoundationModels";
        let client = self
            .client(Some(account), region)
            .await
            .map_err(|e| QuotaError {
                operation: OP,
                message: e.to_string(),
                cause: None,
            })?;
        self.limit.acquire().await;
        // One answer holds every model of the region: the operation has no paging
        // (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_ListFoundationModels.html).
        let out = client
            .list_foundation_models()
            .send()
            .await
            .map_err(|e| quota_error(OP, e))?;
        Ok(out
            .model_summaries()
            .iter()
            .filter_map(|m| Some((m.model_id().to_owned(), m.model_name()?.to_owned())))
            .collect())
    }

    async fn quota_page(
        &self,
        account: &str,
        region: &str,
        token: Option<&str>,
    ) -> Result<QuotaPage, QuotaError> {
        const OP: &str = "ListServiceQuotas";
        let quota_service = self.quota_client(account, region).await?;
        let out = quota_service
            .list_service_quotas()
            .service_code("bedrock")
            .max_results(QUOTA_PAGE_SIZE)
            .set_next_token(token.map(str::to_owned))
            .send()
            .await
            .map_err(|e| quota_error(OP, e))?;
        Ok(QuotaPage {
            quotas: out
                .quotas()
                .iter()
                .filter_map(|q| Some((q.quota_name()?.to_owned(), q.value()?)))
                .collect(),
            next: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }

    async fn token_totals(&self, job: &JobSnapshot) -> Result<Option<TokenTotals>, ManifestError> {
        let Some(manifests) = &self.manifests else {
            return Ok(None);
        };
        let Some((bucket, key)) = job
            .output_s3_uri
            .as_deref()
            .and_then(|uri| manifest_location(uri, job.job_arn.job_id()))
        else {
            return Ok(None);
        };
        if !manifests.buckets.contains(&bucket) {
            return Ok(None);
        }
        // The job's region first: Bedrock writes a job's output there (and
        // `read` follows S3's word where the bucket is elsewhere).
        let region = job.job_arn.region();
        let member = self.member(Some(job.job_arn.account()));
        let credentials = match member {
            Some(account) => self.provider(account, region).await,
            None => None,
        };
        let as_member = member.zip(credentials.as_ref());
        let body = manifests.read(region, as_member, &bucket, &key).await?;
        parse_manifest(&body)
            .map(Some)
            .map_err(|message| ManifestError::Malformed {
                uri: format!("s3://{bucket}/{key}"),
                message: short(&message),
            })
    }

    async fn record_errors(
        &self,
        job: &JobSnapshot,
        max_bytes: u64,
    ) -> Result<Option<RecordErrors>, OutputError> {
        let Some(manifests) = &self.manifests else {
            return Ok(None);
        };
        let Some((bucket, prefix)) = job
            .output_s3_uri
            .as_deref()
            .and_then(|uri| output_prefix(uri, job.job_arn.job_id()))
        else {
            return Ok(None);
        };
        if max_bytes == 0 || !manifests.buckets.contains(&bucket) {
            return Ok(None);
        }
        let region = job.job_arn.region();
        let member = self.member(Some(job.job_arn.account()));
        let credentials = match member {
            Some(account) => self.provider(account, region).await,
            None => None,
        };
        let as_member = member.zip(credentials.as_ref());
        let uri = format!("s3://{bucket}/{prefix}");
        let Some(client) = manifests.client(region, as_member) else {
            return Err(OutputError {
                message: format!("{region:?} is not a well-formed AWS region"),
                uri,
                kind: "OutputUnreadable",
                cause: None,
            });
        };
        read_record_errors(&client, &bucket, &prefix, max_bytes)
            .await
            .map(Some)
    }
}

/// Where Bedrock writes a job's output files: `<outputS3Uri>/<job id>/`
/// (https://docs.aws.amazon.com/bedrock/latest/userguide/batch-inference-results.html).
pub fn output_prefix(output_s3_uri: &str, job_id: &str) -> Option<(String, String)> {
    let (bucket, manifest) = manifest_location(output_s3_uri, job_id)?;
    let prefix = manifest.strip_suffix("manifest.json.out")?.to_owned();
    Some((bucket, prefix))
}

/// Keys per ListObjectsV2 page: the most S3 gives
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
const OUTPUT_LIST_PAGE: i32 = 1000;
/// Listing pages read of a job's output prefix: 10,000 objects.
const OUTPUT_LIST_MAX_PAGES: usize = 10;

/// Lists `prefix` for its `.jsonl.out` files (ListObjectsV2, paginated: it
/// needs `s3:ListBucket`) and reads them in key order with ranged GETs
/// (`Range: bytes=a-b`, https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)
/// until `max_bytes` are read; a partial last line is dropped. A failure
/// after some files were read keeps their counts and says why the rest was not.
pub async fn read_record_errors(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    max_bytes: u64,
) -> Result<RecordErrors, OutputError> {
    let mut files: Vec<(String, u64)> = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    let mut listed_all = true;
    loop {
        // At most OUTPUT_LIST_MAX_PAGES pages: a prefix of more objects is
        // read as far as they go, and the read is not complete.
        if pages == OUTPUT_LIST_MAX_PAGES {
            listed_all = false;
            break;
        }
        pages += 1;
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .max_keys(OUTPUT_LIST_PAGE)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| output_error(format!("s3://{bucket}/{prefix}"), e))?;
        files.extend(page.contents().iter().filter_map(|o| {
            let key = o.key()?;
            let size = u64::try_from(o.size()?).ok()?;
            key.ends_with(".jsonl.out").then(|| (key.to_owned(), size))
        }));
        match page.next_continuation_token().filter(|t| !t.is_empty()) {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    // Bedrock writes a .jsonl.out per input file of a job that processed
    // records: none is a missing output, not "0 failed records".
    if files.is_empty() {
        return Err(OutputError {
            uri: format!("s3://{bucket}/{prefix}"),
            message: "no .jsonl.out file is there".to_owned(),
            kind: "OutputMissing",
            cause: None,
        });
    }
    files.sort();
    let mut tally = Tally::default();
    let mut read = ReadScope {
        files: files.len() as u64,
        max_bytes,
        complete: listed_all,
        ..ReadScope::default()
    };
    for (key, size) in &files {
        let left = max_bytes.saturating_sub(read.bytes_read);
        if left == 0 {
            read.complete = false;
            break;
        }
        if *size == 0 {
            read.files_read += 1;
            continue;
        }
        let want = (*size).min(left);
        let got = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes=0-{}", want - 1))
            .send()
            .await;
        let mut body = match got {
            Ok(out) => out.body,
            Err(e) => {
                let e = output_error(format!("s3://{bucket}/{key}"), e);
                if read.files_read == 0 {
                    return Err(e);
                }
                read.unreadable = Some(e.to_string());
                read.complete = false;
                break;
            }
        };
        // Streamed and counted as it arrives: only the last line not yet
        // complete is held, so memory stays a line and a chunk whatever the
        // bound. A server that ignores the range sends the whole object: no
        // more than the bound is read of it.
        let mut carry: Vec<u8> = Vec::new();
        let mut arrived: u64 = 0;
        let mut cut_short = None;
        while arrived < want {
            match body.next().await {
                None => break,
                Some(Ok(chunk)) => {
                    let take = chunk
                        .len()
                        .min(usize::try_from(want - arrived).unwrap_or(usize::MAX));
                    carry.extend_from_slice(&chunk[..take]);
                    arrived += take as u64;
                    if let Some(i) = carry.iter().rposition(|b| *b == b'\n') {
                        tally.add(&carry[..=i], true);
                        carry.drain(..=i);
                    }
                }
                Some(Err(e)) => {
                    cut_short = Some(short(&format!(
                        "s3://{bucket}/{key}: its body did not arrive: {e}"
                    )));
                    break;
                }
            }
        }
        read.bytes_read += arrived;
        read.files_read += 1;
        let whole = cut_short.is_none() && arrived >= *size;
        // The file's last line has no newline when it is whole; a cut one is partial.
        tally.add(&carry, whole);
        if !whole {
            read.complete = false;
        }
        if let Some(why) = cut_short {
            read.unreadable = Some(why);
            break;
        }
    }
    Ok(tally.finish(read))
}

/// A ListObjectsV2 or GetObject failure as the notification says it.
fn output_error<E>(uri: String, e: SdkError<E>) -> OutputError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let missing = e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
        || matches!(e.code(), Some("NoSuchKey" | "NoSuchBucket"));
    let denied = e.code() == Some("AccessDenied");
    let f = facts(e);
    let message = short(&if f.dispatch {
        format!("S3 did not answer: {}", f.message)
    } else {
        f.message
    });
    OutputError {
        uri,
        message,
        kind: if missing {
            "OutputMissing"
        } else if denied {
            "OutputDenied"
        } else {
            "OutputUnreadable"
        },
        cause: f.cause,
    }
}

/// Where Bedrock writes a job's manifest: `<outputS3Uri>/<job id>/manifest.json.out`.
pub fn manifest_location(output_s3_uri: &str, job_id: &str) -> Option<(String, String)> {
    let rest = output_s3_uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    let prefix = prefix.trim_end_matches('/');
    let key = if prefix.is_empty() {
        format!("{job_id}/manifest.json.out")
    } else {
        format!("{prefix}/{job_id}/manifest.json.out")
    };
    Some((bucket.to_owned(), key))
}

/// The token totals of `manifest.json.out`.
pub fn parse_manifest(bytes: &[u8]) -> Result<TokenTotals, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let count = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_i64)
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("no {k}"))
    };
    Ok(TokenTotals {
        input: count("inputTokenCount")?,
        output: count("outputTokenCount")?,
    })
}

/// Maps a Bedrock error by its wire code (the same codes for every operation),
/// keeping the service's words and the SDK's error as the source.
pub(crate) fn map_error<E>(e: SdkError<E>) -> SourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let ErrorFacts {
        code,
        message,
        dispatch,
        server_status,
        cause,
    } = facts(e);
    match code.as_str() {
        _ if dispatch => SourceError::Unreachable { message, cause },
        "ResourceNotFoundException" => SourceError::NotFound { message, cause },
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException" => SourceError::AccessDenied { message, cause },
        "ValidationException" => SourceError::Validation { message, cause },
        "ThrottlingException" | "TooManyRequestsException" => {
            SourceError::Throttling { message, cause }
        }
        "InternalServerException" => SourceError::Internal { message, cause },
        _ => match server_status {
            Some(status) => SourceError::Internal {
                message: format!("HTTP {status}: {message}"),
                cause,
            },
            None => SourceError::Other { message, cause },
        },
    }
}

/// The fields of a job that GetModelInvocationJob and a list summary share.
struct Fields<'a> {
    job_arn: &'a str,
    job_name: Option<&'a str>,
    model_id: &'a str,
    status: Option<&'a ModelInvocationJobStatus>,
    message: Option<&'a str>,
    submit_time: &'a SdkTime,
    last_modified_time: Option<&'a SdkTime>,
    end_time: Option<&'a SdkTime>,
    job_expiration_time: Option<&'a SdkTime>,
    records: RecordCounts,
    input: Option<&'a ModelInvocationJobInputDataConfig>,
    output: Option<&'a ModelInvocationJobOutputDataConfig>,
}

impl Fields<'_> {
    fn snapshot(self) -> Result<JobSnapshot, SourceError> {
        let job_arn = self.job_arn.parse().map_err(|e| {
            SourceError::other(format!("Bedrock returned an unusable job ARN: {e}"))
        })?;
        let status = self
            .status
            .map(|s| JobStatus::parse(s.as_str()))
            .ok_or_else(|| {
                SourceError::other(format!("Bedrock returned no status for {}", self.job_arn))
            })?;
        Ok(JobSnapshot {
            job_arn,
            job_name: self.job_name.map(str::to_owned).filter(|n| !n.is_empty()),
            model_id: Some(self.model_id.to_owned()).filter(|m| !m.is_empty()),
            status,
            // Read with .message(): the SDK's Debug output redacts it.
            message: self.message.map(str::to_owned).filter(|m| !m.is_empty()),
            submit_time: to_chrono(self.submit_time),
            last_modified_time: self.last_modified_time.and_then(to_chrono),
            end_time: self.end_time.and_then(to_chrono),
            records: (!self.records.is_empty()).then_some(self.records),
            input_s3_uri: self
                .input
                .and_then(|c| c.as_s3_input_data_config().ok())
                .map(|s| s.s3_uri().to_owned()),
            output_s3_uri: self
                .output
                .and_then(|c| c.as_s3_output_data_config().ok())
                .map(|s| s.s3_uri().to_owned()),
            job_expiration_time: self.job_expiration_time.and_then(to_chrono),
        })
    }
}

pub(crate) fn snapshot(out: &GetModelInvocationJobOutput) -> Result<JobSnapshot, SourceError> {
    Fields {
        job_arn: out.job_arn(),
        job_name: out.job_name(),
        model_id: out.model_id(),
        status: out.status(),
        message: out.message(),
        submit_time: out.submit_time(),
        last_modified_time: out.last_modified_time(),
        end_time: out.end_time(),
        job_expiration_time: out.job_expiration_time(),
        records: RecordCounts {
            total: out.total_record_count(),
            processed: out.processed_record_count(),
            success: out.success_record_count(),
            error: out.error_record_count(),
        },
        input: out.input_data_config(),
        output: out.output_data_config(),
    }
    .snapshot()
}

pub(crate) fn summary_snapshot(
    out: &ModelInvocationJobSummary,
) -> Result<JobSnapshot, SourceError> {
    Fields {
        job_arn: out.job_arn(),
        job_name: Some(out.job_name()),
        model_id: out.model_id(),
        status: out.status(),
        message: out.message(),
        submit_time: out.submit_time(),
        last_modified_time: out.last_modified_time(),
        end_time: out.end_time(),
        job_expiration_time: out.job_expiration_time(),
        records: RecordCounts {
            total: out.total_record_count(),
            processed: out.processed_record_count(),
            success: out.success_record_count(),
            error: out.error_record_count(),
        },
        input: out.input_data_config(),
        output: out.output_data_config(),
    }
    .snapshot()
}
