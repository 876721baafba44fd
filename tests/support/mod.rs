//! Test support: moto's server (DynamoDB, SNS, SQS), the in-process fake Bedrock,
//! and a per-test world (own table, topic and subscribed queue) built from
//! template.yaml's table definition. Servers are started here; a missing one is a
//! loud failure naming the fix, never a skip.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod response_url;
pub mod runtime_api;

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sns::config::Credentials;
use aws_sdk_sns::config::retry::RetryConfig;
use bedrock_batch_monitor::adapters::bedrock::BedrockJobSource;
use bedrock_batch_monitor::adapters::dynamodb::DynamoJobStore;
use bedrock_batch_monitor::adapters::sns::SnsNotifier;
use bedrock_batch_monitor::config::Config;
use bedrock_batch_monitor::handler::{self, HandlerError};
use bedrock_batch_monitor::monitor::{Invocation, Monitor};
use fake_bedrock::FakeBedrock;
use serde_json::Value;

pub type RealMonitor = Monitor<BedrockJobSource, DynamoJobStore, SnsNotifier>;
/// The production monitor over a store that counts what it does.
pub type CountingMonitor = Monitor<BedrockJobSource, CountingStore<DynamoJobStore>, SnsNotifier>;

pub const REGION: &str = "us-east-1";
/// The function's name, as Lambda gives it (`AWS_LAMBDA_FUNCTION_NAME`).
pub const FUNCTION_NAME: &str = "bedrock-batch-monitor";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The moto server's URL: `MOTO_ENDPOINT` when set (one already running), else a
/// server this test process starts from the project's venv and stops when it exits.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("MOTO_ENDPOINT") {
            wait_for(&url);
            return url;
        }
        // scripts/moto_server.py: moto with DynamoDB writes applied one at a time, as
        // DynamoDB does (see its docstring); run with the project's venv.
        let python = repo_root().join(".venv/bin/python");
        let script = repo_root().join("scripts/moto_server.py");
        assert!(
            python.exists(),
            "the project's Python venv is missing ({}).\n\
             The integration tests need moto's server (DynamoDB, SNS and SQS stand-ins).\n\
             Fix: run `make setup` (creates .venv from requirements.txt), or set MOTO_ENDPOINT to a running moto server.",
            python.display()
        );
        let port = free_port();
        // A watchdog shell stops moto when this test process ends, however it ends.
        let watchdog = format!(
            "\"$0\" \"$1\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill $m",
            pid = std::process::id()
        );
        // Not waited on: the watchdog ends after this process does and init reaps it.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .arg(&python)
            .arg(&script)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let url = format!("http://127.0.0.1:{port}");
        wait_for(&url);
        url
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn wait_for(url: &str) {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto server at {url} did not answer within 30 s (run `make setup`; check `.venv/bin/python scripts/moto_server.py -p 5000` by hand)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SDK configuration for a local endpoint: fixed test credentials, quick retries.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .load()
        .await
}

/// A name no other test in any process uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The job table's definition, read from template.yaml so tests and template agree.
pub struct TableDefinition {
    pub key_schema: Vec<KeySchemaElement>,
    pub attributes: Vec<AttributeDefinition>,
    pub indexes: Vec<GlobalSecondaryIndex>,
}

pub fn table_definition() -> TableDefinition {
    let path = repo_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("template.yaml parses as YAML");
    let resources = doc["Resources"]
        .as_mapping()
        .expect("template has Resources");
    let table = resources
        .values()
        .find(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .expect("template.yaml defines an AWS::DynamoDB::Table");
    let props = &table["Properties"];
    let keys = |v: &serde_yaml::Value| -> Vec<KeySchemaElement> {
        v.as_sequence()
            .expect("KeySchema list")
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(k["AttributeName"].as_str().expect("AttributeName"))
                    .key_type(KeyType::from(k["KeyType"].as_str().expect("KeyType")))
                    .build()
                    .expect("key schema element")
            })
            .collect()
    };
    let attributes = props["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .attribute_name(a["AttributeName"].as_str().expect("AttributeName"))
                .attribute_type(ScalarAttributeType::from(
                    a["AttributeType"].as_str().expect("AttributeType"),
                ))
                .build()
                .expect("attribute definition")
        })
        .collect();
    let indexes = deployed_indexes(&props["GlobalSecondaryIndexes"])
        .as_sequence()
        .map(|s| s.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|g| {
            GlobalSecondaryIndex::builder()
                .index_name(g["IndexName"].as_str().expect("IndexName"))
                .set_key_schema(Some(keys(&g["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            g["Projection"]["ProjectionType"]
                                .as_str()
                                .expect("ProjectionType"),
                        ))
                        .set_non_key_attributes(
                            g["Projection"]["NonKeyAttributes"].as_sequence().map(|s| {
                                s.iter()
                                    .map(|a| a.as_str().expect("attribute name").to_owned())
                                    .collect()
                            }),
                        )
                        .build(),
                )
                .build()
                .expect("global secondary index")
        })
        .collect();
    TableDefinition {
        key_schema: keys(&props["KeySchema"]),
        attributes,
        indexes,
    }
}

/// The indexes a deployment with the default parameters gets: the last
/// branch of each `!If` (the others keep an old index during an upgrade).
pub fn deployed_indexes(v: &serde_yaml::Value) -> &serde_yaml::Value {
    match v {
        serde_yaml::Value::Tagged(t) if t.tag == "If" => deployed_indexes(&t.value[2]),
        other => other,
    }
}

pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let def = table_definition();
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(def.key_schema))
        .set_attribute_definitions(Some(def.attributes))
        .set_global_secondary_indexes(Some(def.indexes).filter(|i| !i.is_empty()))
        .send()
        .await
        .expect("create the job table in moto");
}

/// One test's world: fake Bedrock, its own table, topic and subscribed queue.
pub struct World {
    pub bedrock: FakeBedrock,
    pub moto: SdkConfig,
    pub bedrock_sdk: SdkConfig,
    pub ddb: aws_sdk_dynamodb::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub topic_arn: String,
    pub queue_url: String,
    pub config: Config,
}

/// A notification as a subscriber's SQS queue received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub subject: Option<String>,
    /// The `sqs` body: the machine JSON.
    pub body: Value,
    pub attributes: HashMap<String, String>,
}

impl World {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    /// `env` overrides configuration variables (e.g. `NOT_FOUND_LIMIT`).
    pub async fn with_env(env: &[(&str, &str)]) -> Self {
        let bedrock = FakeBedrock::start().await.expect("start fake Bedrock");
        let moto = sdk_config(moto_endpoint(), REGION).await;
        let bedrock_sdk = sdk_config(&bedrock.url(), REGION).await;
        let ddb = aws_sdk_dynamodb::Client::new(&moto);
        let sns = aws_sdk_sns::Client::new(&moto);
        let sqs = aws_sdk_sqs::Client::new(&moto);
        let table = unique("jobs");
        create_table(&ddb, &table).await;
        let topic_arn = sns
            .create_topic()
            .name(unique("alerts"))
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("subscriber"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("subscribe queue");
        // The fake has no quota: a high ceiling keeps the tests' hundreds of
        // calls quick. The rate limit has its own test, at a low ceiling.
        let mut vars: HashMap<String, String> = HashMap::from([
            ("TABLE_NAME".into(), table.clone()),
            ("TOPIC_ARN".into(), topic_arn.clone()),
            ("BEDROCK_MAX_RPS".into(), "2000".into()),
        ]);
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        Self {
            bedrock,
            moto,
            bedrock_sdk,
            ddb,
            sns,
            sqs,
            table,
            topic_arn,
            queue_url,
            config,
        }
    }

    /// The function as production wires it, against the local stand-ins.
    pub fn monitor(&self) -> RealMonitor {
        self.monitor_with_sns(aws_sdk_sns::Client::new(&self.moto))
    }

    pub fn monitor_with_sns(&self, sns: aws_sdk_sns::Client) -> RealMonitor {
        // As main.rs wires it: manifests from OUTPUT_BUCKETS, path-style (moto's S3).
        let s3 = aws_sdk_s3::config::Builder::from(&self.moto)
            .force_path_style(true)
            .build();
        Monitor::new(
            BedrockJobSource::new(self.bedrock_sdk.clone())
                .with_rate_limit(self.config.bedrock_max_rps)
                .with_manifests(s3, self.config.output_buckets.clone())
                .with_members_of(&self.config),
            DynamoJobStore::new(self.ddb.clone(), &self.config.table_name),
            SnsNotifier::from_config(sns, &self.config, FUNCTION_NAME),
            self.config.clone(),
            REGION,
        )
    }

    pub async fn invoke(&self, monitor: &RealMonitor, event: Value) -> Result<Value, HandlerError> {
        handler::handle(monitor, &event, &invocation(None)).await
    }

    /// Invokes a fresh monitor through `qualifier` (an alias: `stop`), as
    /// Lambda names it in the context's `invoked_function_arn`.
    pub async fn invoke_through(
        &self,
        qualifier: &str,
        event: Value,
    ) -> Result<Value, HandlerError> {
        let arn = format!(
            "arn:aws:lambda:{REGION}:{}:function:{FUNCTION_NAME}:{qualifier}",
            self.config.home_account()
        );
        handler::handle(&self.monitor(), &event, &invocation(None).invoked_as(&arn)).await
    }

    /// Invokes a fresh monitor and expects success.
    pub async fn ok(&self, event: Value) -> Value {
        let m = self.monitor();
        match self.invoke(&m, event.clone()).await {
            Ok(v) => v,
            Err(e) => panic!("invocation {event} failed: {e}"),
        }
    }

    /// A bucket in moto's S3 for the jobs' output, and a client for it
    /// (path-style, as main.rs sets it for a local S3).
    pub async fn output_bucket(&self, name: &str) -> aws_sdk_s3::Client {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.moto)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("create bucket");
        s3
    }

    /// A bucket in moto's S3 created in `region` (its LocationConstraint), and a
    /// client in that region to fill it: the moto front refuses an S3 request
    /// signed for another region than the bucket's, as S3 does.
    pub async fn output_bucket_in(&self, name: &str, region: &str) -> aws_sdk_s3::Client {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.moto)
                .region(aws_sdk_s3::config::Region::new(region.to_owned()))
                .force_path_style(true)
                .build(),
        );
        // us-east-1 takes no LocationConstraint; every other region its own.
        let elsewhere = (region != "us-east-1").then(|| {
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region))
                .build()
        });
        s3.create_bucket()
            .bucket(name)
            .set_create_bucket_configuration(elsewhere)
            .send()
            .await
            .expect("create bucket");
        s3
    }

    /// Every message the subscriber's queue holds now, after delivery settles.
    pub async fn drain(&self) -> Vec<Received> {
        self.drain_queue(&self.queue_url).await
    }

    /// Creates the topic `name` (a Slack channel's own topic, say) with a new
    /// queue subscribed to it without a filter, as Amazon Q Developer is:
    /// the topic's ARN and the queue's URL.
    pub async fn topic_with_queue(&self, name: &str) -> (String, String) {
        let topic = self
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("create topic")
            .topic_arn
            .expect("topic arn");
        let queue = self.subscribe_queue(&topic, "channel", None).await;
        (topic, queue)
    }

    /// Subscribes a new queue to the topic with a filter policy on message attributes.
    pub async fn subscribe_filtered(&self, filter_policy: &str) -> String {
        self.subscribe_queue(&self.topic_arn, "filtered", Some(filter_policy))
            .await
    }

    /// A new queue (named from `prefix`) subscribed to `topic`, with a filter
    /// policy on message attributes when given: its URL.
    async fn subscribe_queue(&self, topic: &str, prefix: &str, filter: Option<&str>) -> String {
        let url = self
            .sqs
            .create_queue()
            .queue_name(unique(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("queue url");
        let mut req = self
            .sns
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(queue_arn(&self.sqs, &url).await);
        if let Some(policy) = filter {
            req = req
                .attributes("FilterPolicy", policy)
                .attributes("FilterPolicyScope", "MessageAttributes");
        }
        req.send().await.expect("subscribe queue");
        url
    }

    /// Every message a queue holds now, oldest first as SQS returns them.
    pub async fn drain_queue(&self, queue_url: &str) -> Vec<Received> {
        let mut out = Vec::new();
        loop {
            let resp = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if out.is_empty() { 1 } else { 0 })
                .send()
                .await
                .expect("receive from queue");
            let msgs = resp.messages.unwrap_or_default();
            if msgs.is_empty() {
                return out;
            }
            let mut done = Vec::new();
            for m in msgs {
                let envelope: Value =
                    serde_json::from_str(m.body().expect("body")).expect("SNS envelope JSON");
                let message = envelope["Message"].as_str().expect("Message");
                let body: Value = serde_json::from_str(message).expect("the sqs form is JSON");
                let attributes = envelope["MessageAttributes"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v["Value"].as_str().unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Received {
                    subject: envelope["Subject"].as_str().map(str::to_owned),
                    body,
                    attributes,
                });
                done.push(
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(done.len().to_string())
                        .receipt_handle(m.receipt_handle().expect("receipt handle"))
                        .build()
                        .expect("delete entry"),
                );
            }
            self.sqs
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .expect("delete messages");
        }
    }

    /// The raw stored item of a job, straight from the table.
    pub async fn item(
        &self,
        arn: &str,
    ) -> Option<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key(
                "jobArn",
                aws_sdk_dynamodb::types::AttributeValue::S(arn.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn")
}

/// A fresh invocation (its own id, so its own claims) with an optional deadline.
pub fn invocation(deadline: Option<Instant>) -> Invocation {
    Invocation::new(unique("invocation"), deadline)
}

/// A job table decorator counting the writes that reach the real table.
pub struct CountingStore<T> {
    pub inner: T,
    pub writes: std::sync::Arc<AtomicU32>,
    /// The health record's one write per poll, counted apart: the cost
    /// guarantees are per job.
    pub health_writes: std::sync::Arc<AtomicU32>,
    /// While set, saving a published digest fails as the table would
    /// (the digest was published; Lambda retries the invocation).
    pub fail_digest_finish: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Items the reads of `list` and the digest returned (work index
    /// entries, jobs read whole, ended jobs): what they cost.
    pub items_read: std::sync::Arc<AtomicU32>,
}

impl<T> CountingStore<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            writes: Default::default(),
            health_writes: Default::default(),
            fail_digest_finish: Default::default(),
            items_read: Default::default(),
        }
    }
    fn count(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
    fn read(&self, items: usize) {
        self.items_read.fetch_add(items as u32, Ordering::SeqCst);
    }
}

use bedrock_batch_monitor::domain::{Fresh, JobArn, Progress, RecordCounts, StoredJob, Transition};
use bedrock_batch_monitor::ports::{
    Claim, Fleet, Jobs, ListPosition, Outbox, Record, RouteStore, StoreError, Untrack, Watermark,
    WorkList, WorkPage, Write,
};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

impl<T: Jobs> Jobs for CountingStore<T> {
    async fn get(&self, arn: &JobArn) -> Result<Option<StoredJob>, StoreError> {
        self.inner.get(arn).await
    }
    async fn create(&self, first: &Transition) -> Result<Write, StoreError> {
        self.count();
        self.inner.create(first).await
    }
    async fn adopt(&self, first: &Transition) -> Result<Write, StoreError> {
        self.count();
        self.inner.adopt(first).await
    }
    async fn warn(&self, warning: &Transition, v: u64) -> Result<Write, StoreError> {
        self.count();
        self.inner.warn(warning, v).await
    }
    async fn set_progress(
        &self,
        arn: &JobArn,
        v: Fresh,
        progress: Progress,
        records: RecordCounts,
        previous: Option<Progress>,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner
            .set_progress(arn, v, progress, records, previous)
            .await
    }
    async fn rearm(
        &self,
        first: &Transition,
        v: Fresh,
        same: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.rearm(first, v, same).await
    }
    async fn record(&self, change: Record<'_>) -> Result<Write, StoreError> {
        self.count();
        self.inner.record(change).await
    }
    async fn set_labels(
        &self,
        arn: &JobArn,
        labels: &BTreeMap<String, String>,
        v: u64,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.set_labels(arn, labels, v).await
    }
    async fn set_not_found_count(&self, arn: &JobArn, v: u64, c: u32) -> Result<Write, StoreError> {
        self.count();
        self.inner.set_not_found_count(arn, v, c).await
    }
    async fn retire(&self, arn: &JobArn, v: u64, at: DateTime<Utc>) -> Result<Write, StoreError> {
        self.count();
        self.inner.retire(arn, v, at).await
    }
    async fn untrack(
        &self,
        arn: &JobArn,
        at: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<Untrack, StoreError> {
        self.count();
        self.inner.untrack(arn, at, expires).await
    }
}

impl<T: Outbox> Outbox for CountingStore<T> {
    async fn claim(
        &self,
        arn: &JobArn,
        id: &str,
        claim: &Claim,
    ) -> Result<Option<StoredJob>, StoreError> {
        self.count();
        self.inner.claim(arn, id, claim).await
    }
    async fn settle(
        &self,
        arn: &JobArn,
        id: &str,
        token: &str,
        settlement: &bedrock_batch_monitor::ports::Settlement,
    ) -> Result<Option<StoredJob>, StoreError> {
        self.count();
        self.inner.settle(arn, id, token, settlement).await
    }
}

impl<T: WorkList> WorkList for CountingStore<T> {
    fn shards(&self) -> u32 {
        self.inner.shards()
    }
    async fn work_page(&self, shard: u32, after: Option<&str>) -> Result<WorkPage, StoreError> {
        let page = self.inner.work_page(shard, after).await?;
        self.read(page.items.len());
        Ok(page)
    }
    async fn load_cursor(&self, shards: &[u32]) -> Result<Option<ListPosition>, StoreError> {
        self.inner.load_cursor(shards).await
    }
    async fn save_cursor(
        &self,
        shards: &[u32],
        cursor: Option<&ListPosition>,
    ) -> Result<(), StoreError> {
        self.count();
        self.inner.save_cursor(shards, cursor).await
    }
    async fn load_watermark(&self, region: &str) -> Result<Watermark, StoreError> {
        self.inner.load_watermark(region).await
    }
    async fn begin_backlog(
        &self,
        region: &str,
        since: DateTime<Utc>,
        previous: &Watermark,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.begin_backlog(region, since, previous).await
    }
    async fn save_watermark(
        &self,
        region: &str,
        to: DateTime<Utc>,
        previous: Option<DateTime<Utc>>,
        judged: &bedrock_batch_monitor::ports::Judged,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner
            .save_watermark(region, to, previous, judged)
            .await
    }
    async fn load_quota(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<bedrock_batch_monitor::domain::QuotaBook>, StoreError> {
        self.inner.load_quota(account, region).await
    }
    async fn save_quota(
        &self,
        book: &bedrock_batch_monitor::domain::QuotaBook,
    ) -> Result<(), StoreError> {
        self.count();
        self.inner.save_quota(book).await
    }
}

impl<T: RouteStore> RouteStore for CountingStore<T> {
    async fn routes(&self) -> Result<bedrock_batch_monitor::routes::Book, StoreError> {
        self.inner.routes().await
    }
    async fn put_route(
        &self,
        route: &bedrock_batch_monitor::routes::Route,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.put_route(route).await
    }
    async fn delete_route(
        &self,
        name: &str,
        stack_id: &str,
        logical_id: &str,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.delete_route(name, stack_id, logical_id).await
    }
    async fn note_route_deliveries(
        &self,
        tallies: &BTreeMap<String, bedrock_batch_monitor::routes::Stats>,
    ) -> Result<(), StoreError> {
        self.count();
        self.inner.note_route_deliveries(tallies).await
    }
}

impl<T: Fleet> Fleet for CountingStore<T> {
    async fn jobs_shown(
        &self,
        arns: &[JobArn],
    ) -> Result<Vec<Result<StoredJob, bedrock_batch_monitor::ports::ItemError>>, StoreError> {
        let jobs = self.inner.jobs_shown(arns).await?;
        self.read(jobs.len());
        Ok(jobs)
    }
    async fn ended_page(
        &self,
        query: &bedrock_batch_monitor::ports::EndedQuery,
    ) -> Result<bedrock_batch_monitor::ports::EndedPage, StoreError> {
        let page = self.inner.ended_page(query).await?;
        self.read(page.jobs.len());
        Ok(page)
    }
    async fn set_aside_between(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<bedrock_batch_monitor::digest::SetAsideNote>, StoreError> {
        self.inner.set_aside_between(since, until).await
    }
    async fn count_invocation(
        &self,
        counts: &bedrock_batch_monitor::ports::InvocationCounts,
    ) -> Result<(), StoreError> {
        self.health_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.count_invocation(counts).await
    }
    async fn health(&self) -> Result<bedrock_batch_monitor::digest::Health, StoreError> {
        self.inner.health().await
    }
    async fn last_digest(
        &self,
    ) -> Result<Option<bedrock_batch_monitor::digest::DigestMark>, StoreError> {
        self.inner.last_digest().await
    }
    async fn begin_digest(
        &self,
        window: &bedrock_batch_monitor::digest::Window,
        claim: &Claim,
        previous: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        self.count();
        self.inner.begin_digest(window, claim, previous).await
    }
    async fn claim_digest(&self, id: &str, claim: &Claim) -> Result<Write, StoreError> {
        self.count();
        self.inner.claim_digest(id, claim).await
    }
    async fn release_digest(&self, id: &str, token: &str) -> Result<Write, StoreError> {
        self.count();
        self.inner.release_digest(id, token).await
    }
    async fn finish_digest(
        &self,
        mark: &bedrock_batch_monitor::digest::DigestMark,
        id: &str,
        token: &str,
    ) -> Result<Write, StoreError> {
        self.count();
        if self.fail_digest_finish.load(Ordering::SeqCst) {
            return Err(StoreError::other(
                "injected: the table failed saving the digest as published",
            ));
        }
        self.inner.finish_digest(mark, id, token).await
    }
}

impl World {
    /// The production monitor with its store wrapped to count writes.
    pub fn counting_monitor(&self) -> (CountingMonitor, std::sync::Arc<AtomicU32>) {
        let store = CountingStore::new(DynamoJobStore::new(
            self.ddb.clone(),
            &self.config.table_name,
        ));
        let writes = store.writes.clone();
        let m = self.monitor_over(store);
        (m, writes)
    }

    /// The production monitor with its store wrapped to count the items
    /// `list` and the digest read.
    pub fn reads_monitor(&self) -> (CountingMonitor, std::sync::Arc<AtomicU32>) {
        let store = CountingStore::new(DynamoJobStore::new(
            self.ddb.clone(),
            &self.config.table_name,
        ));
        let read = store.items_read.clone();
        (self.monitor_over(store), read)
    }

    fn monitor_over(&self, store: CountingStore<DynamoJobStore>) -> CountingMonitor {
        Monitor::new(
            BedrockJobSource::new(self.bedrock_sdk.clone())
                .with_rate_limit(self.config.bedrock_max_rps),
            store,
            SnsNotifier::new(aws_sdk_sns::Client::new(&self.moto), &self.config.topic_arn),
            self.config.clone(),
            REGION,
        )
    }

    /// Number of items in the table.
    pub async fn item_count(&self) -> i32 {
        self.ddb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .expect("scan")
            .count
    }
}

/// A fault rule in front of moto (scripts/moto_server.py's `/_faults` API),
/// removed when dropped. Scope it with `contains` (a table, a job id) so tests
/// sharing the server do not meet it.
pub struct MotoFault {
    id: u64,
}

impl MotoFault {
    /// `rule`: `{"service", "action", "contains", "status", "code", "message"?, "times"?, "delay_ms"?}`.
    pub fn add(rule: Value) -> Self {
        let answer = moto_admin("POST", "/_faults", Some(&rule));
        let id = answer["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("moto's fault API refused {rule}: {answer}"));
        Self { id }
    }

    /// How many requests this rule failed (or delayed) so far.
    pub fn hits(&self) -> u64 {
        let all = moto_admin("GET", "/_faults", None);
        all["rules"]
            .as_array()
            .and_then(|rules| rules.iter().find(|r| r["id"] == self.id))
            .and_then(|r| r["hits"].as_u64())
            .unwrap_or(0)
    }
}

impl Drop for MotoFault {
    fn drop(&mut self) {
        moto_admin("DELETE", &format!("/_faults/{}", self.id), None);
    }
}

/// Writes the manifest Bedrock leaves for `job_arn` under `s3://<bucket>/<prefix>`:
/// `<prefix><job id>/manifest.json.out`, with these token totals.
pub async fn put_manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    job_arn: &str,
    input_tokens: i64,
    output_tokens: i64,
) {
    let id = job_arn.rsplit('/').next().unwrap();
    let manifest = serde_json::json!({
        "totalRecordCount": 400, "processedRecordCount": 400, "successRecordCount": 400,
        "errorRecordCount": 0, "inputTokenCount": input_tokens, "outputTokenCount": output_tokens
    });
    s3.put_object()
        .bucket(bucket)
        .key(format!("{prefix}{id}/manifest.json.out"))
        .body(manifest.to_string().into_bytes().into())
        .send()
        .await
        .expect("put manifest");
}

/// What moto's SNS kept of each publish to `topic_arn`, oldest first:
/// `{"subject", "message", "attributes"}` (scripts/moto_server.py's `/_sent`),
/// so a test can read the email form subscribers of that protocol get.
pub fn moto_sent(topic_arn: &str) -> Vec<Value> {
    let answer = moto_admin("GET", &format!("/_sent?topic={topic_arn}"), None);
    answer
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("moto's /_sent answered {answer}"))
}

/// The S3 GETs moto's front served, each with the access key it was signed
/// with (`{"path", "accessKey"}`, the last 1,000): whose credentials read it.
pub fn moto_s3_reads() -> Vec<Value> {
    let answer = moto_admin("GET", "/_s3_reads", None);
    answer
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("moto's /_s3_reads answered {answer}"))
}

/// The DynamoDB requests moto's front served for `table` so far, by action
/// (scripts/moto_server.py's `/_stats?table=`): one test's own count, however
/// many tests share the server.
pub fn table_requests(table: &str) -> std::collections::BTreeMap<String, u64> {
    let answer = moto_admin("GET", &format!("/_stats?table={table}"), None);
    let Some(by_action) = answer["dynamodb"].as_object() else {
        panic!("moto's /_stats answered {answer}");
    };
    by_action
        .iter()
        .map(|(action, n)| (action.clone(), n.as_u64().unwrap_or(0)))
        .collect()
}

/// One plain HTTP/1.1 call to the moto wrapper's own API.
fn moto_admin(method: &str, path: &str, body: Option<&Value>) -> Value {
    use std::io::{Read, Write};
    let addr = moto_endpoint().trim_start_matches("http://").to_owned();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(&addr).expect("connect to moto");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write to moto");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("read moto's answer");
    let json = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// Log lines captured as JSON (the format Lambda gets with AWS_LAMBDA_LOG_FORMAT=JSON).
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Captures this thread's events at INFO and above while the guard lives
    /// (use a current-thread runtime: `#[tokio::test]`).
    pub fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_current_span(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Record counts of a job with `processed` of `total` records done, none failed.
pub fn records(total: i64, processed: i64) -> fake_bedrock::Records {
    fake_bedrock::Records {
        total,
        processed,
        success: processed,
        error: 0,
    }
}

/// The filter-policy recipes of docs/notifications.md, as written: what a
/// subscriber wants -> policy (JSON text).
pub fn documented_recipes() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(repo_root().join("docs/notifications.md")).unwrap();
    let start = page
        .find("| what a subscriber wants | filter policy |")
        .expect("the recipes table");
    page[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            (cells[0].to_owned(), cells[1].trim_matches('`').to_owned())
        })
        .collect()
}

/// Bedrock's native state-change event for `arn` (the shape in DESIGN.md).
pub fn native_event(arn: &str, status: &str) -> Value {
    serde_json::json!({"version":"0","id":"a1b2c3d4","detail-type":"Batch Inference Job State Change",
        "source":"aws.bedrock","account":"123456789012","time":"Wed Aug 28 22:58:30 UTC 2024",
        "region":"us-east-1","resources":[arn],
        "detail":{"version":"0.0","accountId":"123456789012","batchJobName":"x","batchJobArn":arn,
          "batchModelId":"m","status":status,"failureMessage":"","creationTime":"Aug 28, 2024, 10:47:53 PM"}})
}

/// The statuses of `describe`'s history, oldest first.
pub fn history_statuses(described: &Value) -> Vec<String> {
    described["history"]
        .as_array()
        .unwrap_or_else(|| panic!("describe has no history: {described}"))
        .iter()
        .map(|h| h["to"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A TCP proxy in front of moto that can cut every connection and refuse new
/// ones, then serve again: moto going away in the middle of a cycle and coming
/// back with its state (a restart of the real service keeps the table).
pub struct Outage {
    addr: std::net::SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Outage {
    pub async fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let (d, c) = (down.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                c.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(task.abort_handle());
            }
        });
        Self {
            addr,
            down,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            c.abort();
        }
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}
