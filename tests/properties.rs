//! Bad input never panics and never writes half (proptest).
//!
//! - events: arbitrary JSON, and the real shapes in `events/` with parts
//!   replaced or removed: parsing never panics, what it accepts is within its
//!   rules, and an event it refuses reaches no port at all (nothing read,
//!   written or sent);
//! - ARNs and job references: arbitrary text, and valid ARNs with parts
//!   changed: never a panic, and what parses is well-formed;
//! - table items: valid items with attributes replaced by values of any type,
//!   and items of arbitrary attributes: reading never panics, and a job read
//!   from an item names that item's key.
//!
//! Cases per property: `PROPTEST_CASES` (the count `make test` and `make fuzz`
//! use is in the Makefile and the README).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use bedrock_batch_monitor::config::Config;
use bedrock_batch_monitor::domain::{
    JobArn, JobRef, JobSnapshot, StoredJob, Transition, is_region_of,
};
use bedrock_batch_monitor::event::{self, Command, MAX_ITEMS_PER_REQUEST};
use bedrock_batch_monitor::handler::{self, HandlerError};
use bedrock_batch_monitor::monitor::{Invocation, Monitor};
use bedrock_batch_monitor::ports::{
    Claim, Fleet, JobSource, Jobs, ListPosition, Notifier, NotifyError, Outbox, Record, RouteStore,
    SourceError, StoreError, Untrack, WorkList, WorkPage, Write,
};
use bedrock_batch_monitor::routes;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghwxyz";

// ---------------------------------------------------------------- strategies

/// Keys the parser looks at, mixed with arbitrary ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "poll", "track", "untrack", "describe", "stop", "detail-type", "source", "detail",
            "jobArn", "labels", "batchJobArn", "resources", "time", "status", "region",
            "version", "id", "account", "team",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Strings the parser treats specially, mixed with arbitrary ones.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            ARN, "abcdefghwxyz", "Scheduled Event", "aws.events", "aws.scheduler",
            "aws.bedrock", "Batch Inference Job State Change", "Wed Aug 28 22:58:30 UTC 2024",
            "arn:aws:bedrock:moon-base-1:123456789012:model-invocation-job/abcdefghwxyz",
            "status", "AWS.x", "",
        ])
        .prop_map(str::to_owned),
        2 => "\\PC{0,40}",
        1 => ".{0,300}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The events in `events/`, as sent to the function.
fn real_events() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut events: Vec<Value> = std::fs::read_dir(&dir)
        .expect("events/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap())
        .collect();
    events.sort_by_key(Value::to_string);
    events.extend([
        json!({}),
        json!({"poll": {}}),
        json!({"track": [ARN, {"jobArn": ARN, "labels": {"team": "search"}}]}),
    ]);
    events
}

/// Replaces (or removes) the value at a path chosen by `choices` in `v`.
fn mutate(v: &mut Value, choices: &[usize], replacement: Option<Value>) {
    let Some((c, rest)) = choices.split_first() else {
        if let Some(r) = replacement {
            *v = r;
        }
        return;
    };
    match v {
        Value::Object(map) if !map.is_empty() => {
            let k = map.keys().nth(c % map.len()).unwrap().clone();
            match (rest.is_empty(), replacement) {
                (true, Some(r)) => {
                    map.insert(k, r);
                }
                (true, None) => {
                    map.remove(&k);
                }
                (false, r) => mutate(map.get_mut(&k).unwrap(), rest, r),
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = c % items.len();
            match (rest.is_empty(), replacement) {
                (true, Some(r)) => items[i] = r,
                (true, None) => {
                    items.remove(i);
                }
                (false, r) => mutate(&mut items[i], rest, r),
            }
        }
        other => {
            if let Some(r) = replacement {
                *other = r;
            }
        }
    }
}

fn mutated_event() -> impl Strategy<Value = Value> {
    let events = real_events();
    (
        prop::sample::select(events),
        prop::collection::vec(any::<usize>(), 1..5),
        prop::option::weighted(0.8, json_value()),
    )
        .prop_map(|(mut e, path, replacement)| {
            mutate(&mut e, &path, replacement);
            e
        })
}

fn any_event() -> impl Strategy<Value = Value> {
    prop_oneof![1 => json_value(), 3 => mutated_event()]
}

// ------------------------------------------------------------------- events

/// Ports that fail the test if anything reaches them.
struct Untouchable;

impl JobSource for Untouchable {
    async fn get_job(&self, _: &JobRef) -> Result<JobSnapshot, SourceError> {
        panic!("a refused event reached Bedrock")
    }
    async fn tags(&self, _: &JobArn) -> Result<BTreeMap<String, String>, SourceError> {
        panic!("a refused event reached Bedrock")
    }
    async fn stop_job(&self, _: &JobArn) -> Result<(), SourceError> {
        panic!("a refused event reached Bedrock")
    }
    async fn list_page(
        &self,
        _: &bedrock_batch_monitor::ports::ListQuery<'_>,
        _: Option<&str>,
    ) -> Result<bedrock_batch_monitor::ports::JobPage, SourceError> {
        panic!("a refused event reached Bedrock")
    }
    async fn token_totals(
        &self,
        _: &JobSnapshot,
    ) -> Result<
        Option<bedrock_batch_monitor::domain::TokenTotals>,
        bedrock_batch_monitor::ports::ManifestError,
    > {
        panic!("a refused event read S3")
    }
}

impl Jobs for Untouchable {
    async fn get(&self, _: &JobArn) -> Result<Option<StoredJob>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn create(&self, _: &Transition) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn rearm(
        &self,
        _: &Transition,
        _: bedrock_batch_monitor::domain::Fresh,
        _: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn adopt(&self, _: &Transition) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn warn(&self, _: &Transition, _: u64) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn set_progress(
        &self,
        _: &JobArn,
        _: bedrock_batch_monitor::domain::Fresh,
        _: bedrock_batch_monitor::domain::Progress,
        _: bedrock_batch_monitor::domain::RecordCounts,
        _: Option<bedrock_batch_monitor::domain::Progress>,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn record(&self, _: Record<'_>) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn set_labels(
        &self,
        _: &JobArn,
        _: &BTreeMap<String, String>,
        _: u64,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn set_not_found_count(&self, _: &JobArn, _: u64, _: u32) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn retire(&self, _: &JobArn, _: u64, _: DateTime<Utc>) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn untrack(
        &self,
        _: &JobArn,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Untrack, StoreError> {
        panic!("a refused event wrote")
    }
}

impl Outbox for Untouchable {
    async fn claim(&self, _: &JobArn, _: &str, _: &Claim) -> Result<Option<StoredJob>, StoreError> {
        panic!("a refused event wrote")
    }
    async fn settle(
        &self,
        _: &JobArn,
        _: &str,
        _: &str,
        _: &bedrock_batch_monitor::ports::Settlement,
    ) -> Result<Option<StoredJob>, StoreError> {
        panic!("a refused event wrote")
    }
}

impl WorkList for Untouchable {
    fn shards(&self) -> u32 {
        4
    }
    async fn work_page(&self, _: u32, _: Option<&str>) -> Result<WorkPage, StoreError> {
        panic!("a refused event listed the work")
    }
    async fn load_cursor(&self, _: &[u32]) -> Result<Option<ListPosition>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn save_cursor(&self, _: &[u32], _: Option<&ListPosition>) -> Result<(), StoreError> {
        panic!("a refused event wrote")
    }
    async fn load_watermark(
        &self,
        _: &str,
    ) -> Result<bedrock_batch_monitor::ports::Watermark, StoreError> {
        panic!("a refused event read the table")
    }
    async fn begin_backlog(
        &self,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: &bedrock_batch_monitor::ports::Watermark,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn save_watermark(
        &self,
        _: &str,
        _: chrono::DateTime<chrono::Utc>,
        _: Option<chrono::DateTime<chrono::Utc>>,
        _: &bedrock_batch_monitor::ports::Judged,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn load_quota(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<bedrock_batch_monitor::domain::QuotaBook>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn save_quota(
        &self,
        _: &bedrock_batch_monitor::domain::QuotaBook,
    ) -> Result<(), StoreError> {
        panic!("a refused event wrote")
    }
}

impl Fleet for Untouchable {
    async fn jobs_shown(
        &self,
        _: &[JobArn],
    ) -> Result<Vec<Result<StoredJob, bedrock_batch_monitor::ports::ItemError>>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn ended_page(
        &self,
        _: &bedrock_batch_monitor::ports::EndedQuery,
    ) -> Result<bedrock_batch_monitor::ports::EndedPage, StoreError> {
        panic!("a refused event read the table")
    }
    async fn set_aside_between(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> Result<Vec<bedrock_batch_monitor::digest::SetAsideNote>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn count_invocation(
        &self,
        _: &bedrock_batch_monitor::ports::InvocationCounts,
    ) -> Result<(), StoreError> {
        panic!("a refused event wrote")
    }
    async fn health(&self) -> Result<bedrock_batch_monitor::digest::Health, StoreError> {
        panic!("a refused event read the table")
    }
    async fn last_digest(
        &self,
    ) -> Result<Option<bedrock_batch_monitor::digest::DigestMark>, StoreError> {
        panic!("a refused event read the table")
    }
    async fn begin_digest(
        &self,
        _: &bedrock_batch_monitor::digest::Window,
        _: &bedrock_batch_monitor::ports::Claim,
        _: Option<DateTime<Utc>>,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn claim_digest(
        &self,
        _: &str,
        _: &bedrock_batch_monitor::ports::Claim,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn release_digest(&self, _: &str, _: &str) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn finish_digest(
        &self,
        _: &bedrock_batch_monitor::digest::DigestMark,
        _: &str,
        _: &str,
    ) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
}

impl Notifier for Untouchable {
    fn destinations(&self, _: &Transition, _: &routes::Table) -> Vec<String> {
        panic!("a refused event published")
    }
    async fn publish(&self, _: &str, _: &Transition, _: &routes::Table) -> Result<(), NotifyError> {
        panic!("a refused event published")
    }
    fn digest_destinations(
        &self,
        _: &bedrock_batch_monitor::digest::Digest,
        _: &routes::Table,
    ) -> Vec<String> {
        panic!("a refused event published")
    }
    async fn publish_digest(
        &self,
        _: &str,
        _: &bedrock_batch_monitor::digest::Digest,
        _: &routes::Table,
    ) -> Result<(), NotifyError> {
        panic!("a refused event published")
    }
}

impl RouteStore for Untouchable {
    async fn routes(&self) -> Result<routes::Book, StoreError> {
        panic!("a refused event read the routes")
    }
    async fn put_route(&self, _: &routes::Route) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn delete_route(&self, _: &str, _: &str, _: &str) -> Result<Write, StoreError> {
        panic!("a refused event wrote")
    }
    async fn note_route_deliveries(
        &self,
        _: &std::collections::BTreeMap<String, routes::Stats>,
    ) -> Result<(), StoreError> {
        panic!("a refused event wrote")
    }
}

fn untouchable_monitor() -> Monitor<Untouchable, Untouchable, Untouchable> {
    let config = Config::from_lookup(|k| match k {
        "TABLE_NAME" => Some("jobs".into()),
        "TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:alerts".into()),
        _ => None,
    })
    .unwrap();
    Monitor::new(Untouchable, Untouchable, Untouchable, config, "us-east-1")
}

proptest! {
    #[test]
    fn parsing_any_event_never_panics_and_accepts_only_what_its_rules_allow(event in any_event()) {
        match event::parse(&event) {
            Ok(Command::Track(items)) => {
                prop_assert!(!items.is_empty() && items.len() <= MAX_ITEMS_PER_REQUEST);
                for item in items.into_iter().flatten() {
                    prop_assert!(item.labels.len() <= 3);
                    for (k, v) in &item.labels {
                        prop_assert!(bedrock_batch_monitor::labels::validate(k, v).is_ok());
                    }
                }
            }
            Ok(Command::Untrack(items)) => {
                prop_assert!(!items.is_empty() && items.len() <= MAX_ITEMS_PER_REQUEST);
            }
            Ok(Command::Reconcile(change)) => {
                prop_assert!(change.job_arn.as_str().parse::<JobArn>().is_ok());
            }
            Ok(Command::List(req)) => {
                prop_assert!((1..=bedrock_batch_monitor::event::MAX_LIST_LIMIT).contains(&req.limit));
                for s in &req.status {
                    prop_assert!(bedrock_batch_monitor::domain::JobStatus::KNOWN.contains(&s.as_str()));
                }
            }
            Ok(Command::CustomResource(request)) => {
                prop_assert!(!request.response_url.is_empty() && !request.request_id.is_empty());
            }
            Ok(Command::Stop(req)) => {
                prop_assert!(!req.reference.trim().is_empty());
            }
            Ok(Command::Poll(_) | Command::Describe(_) | Command::Digest | Command::Routes) | Err(_) => {}
        }
    }

    #[test]
    fn an_event_the_function_refuses_should_reach_no_port(event in any_event()) {
        // About half the cases parse; this property is about the others.
        if event::parse(&event).is_ok() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let monitor = untouchable_monitor();
        let inv = Invocation::new("prop", None);
        let result = runtime.block_on(handler::handle(&monitor, &event, &inv));
        prop_assert!(matches!(result, Err(HandlerError::Event(_))), "{result:?}");
    }

    #[test]
    fn through_the_stop_alias_nothing_but_stop_should_reach_a_port(event in any_event()) {
        // The Slack channel's role may invoke the `stop` alias alone; any other
        // command sent through it is refused before Bedrock, the table or SNS.
        let Ok(command) = event::parse(&event) else {
            return Ok(());
        };
        if matches!(command, Command::Stop(_)) {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let monitor = untouchable_monitor();
        let inv = Invocation::new("prop", None)
            .invoked_as("arn:aws:lambda:us-east-1:123456789012:function:bedrock-batch-monitor:stop");
        let result = runtime.block_on(handler::handle(&monitor, &event, &inv));
        prop_assert!(matches!(result, Err(HandlerError::StopOnly { .. })), "{result:?}");
    }
}

// --------------------------------------------------------------------- ARNs

fn arn_like() -> impl Strategy<Value = String> {
    let part = |valid: &'static [&'static str]| {
        prop_oneof![
            3 => prop::sample::select(valid.to_vec()).prop_map(str::to_owned),
            1 => "\\PC{0,16}",
        ]
    };
    (
        part(&["arn"]),
        part(&[
            "aws",
            "aws-cn",
            "aws-us-gov",
            "aws-iso-b",
            "aws-eusc",
            "awsx",
        ]),
        part(&["bedrock", "s3"]),
        part(&[
            "us-east-1",
            "eu-west-3",
            "cn-north-1",
            "us-gov-west-1",
            "eusc-de-east-1",
            "us-east",
            "moon-base-1",
        ]),
        part(&["123456789012", "12345678901", "12345678901a"]),
        part(&[
            "model-invocation-job/abcdefghwxyz",
            "model-invocation-job/ABCDEFGHWXYZ",
            "model-invocation-job/",
            "custom-model/abcdefghwxyz",
        ]),
    )
        .prop_map(|(a, p, s, r, acct, res)| format!("{a}:{p}:{s}:{r}:{acct}:{res}"))
}

proptest! {
    #[test]
    fn parsing_any_job_reference_never_panics_and_accepts_only_well_formed_ones(
        input in prop_oneof![2 => arn_like(), 1 => "\\PC{0,80}"],
    ) {
        if let Ok(arn) = input.parse::<JobArn>() {
            prop_assert_eq!(arn.as_str(), input.trim());
            prop_assert!(is_region_of(arn.partition(), arn.region()), "{}", arn);
            prop_assert!(arn.account().len() == 12 && arn.account().bytes().all(|b| b.is_ascii_digit()));
            prop_assert!(arn.job_id().len() == 12
                && arn.job_id().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
        if let Ok(r) = JobRef::parse(&input, "us-east-1") {
            prop_assert!(!r.identifier().is_empty());
        }
    }
}

// -------------------------------------------------------------------- items

fn attribute_value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        text().prop_map(AttributeValue::S),
        prop_oneof!["-?[0-9]{1,20}", "[0-9]+\\.[0-9]+", "\\PC{0,8}",].prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null(true)),
        prop::collection::vec(text(), 0..3).prop_map(AttributeValue::Ss),
        prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(b))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(AttributeValue::L),
            prop::collection::hash_map(key(), inner, 0..5).prop_map(AttributeValue::M),
        ]
    })
}

/// An item as the store writes it for a tracked job with a pending notification.
fn valid_item() -> HashMap<String, AttributeValue> {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: &str| AttributeValue::N(v.to_owned());
    let transition = json!({"id": "abcdefghwxyz-2-InProgress", "kind": "statusChanged", "version": 2,
        "previous": "Submitted", "job": {"jobArn": ARN, "jobName": "j", "modelId": "m", "status": "InProgress",
        "message": null, "submitTime": "2026-01-02T03:04:05Z", "lastModifiedTime": null, "endTime": null,
        "records": null, "inputS3Uri": null, "outputS3Uri": null},
        "observedAt": "2026-01-02T03:04:05Z", "phases": [["Submitted", "2026-01-02T03:04:05Z"]], "labels": {}});
    HashMap::from([
        ("jobArn".to_owned(), s(ARN)),
        ("status".to_owned(), s("InProgress")),
        ("version".to_owned(), n("2")),
        ("jobName".to_owned(), s("j")),
        ("submitTime".to_owned(), s("2026-01-02T03:04:05.000Z")),
        (
            "records".to_owned(),
            AttributeValue::M(HashMap::from([("total".to_owned(), n("3"))])),
        ),
        (
            "history".to_owned(),
            AttributeValue::L(vec![AttributeValue::M(HashMap::from([
                ("from".to_owned(), AttributeValue::Null(true)),
                ("to".to_owned(), s("Submitted")),
                ("at".to_owned(), s("2026-01-02T03:04:05.000Z")),
                ("message".to_owned(), AttributeValue::Null(true)),
            ]))]),
        ),
        (
            "outbox".to_owned(),
            AttributeValue::M(HashMap::from([(
                "abcdefghwxyz-2-InProgress".to_owned(),
                AttributeValue::M(HashMap::from([
                    ("transition".to_owned(), s(&transition.to_string())),
                    ("claimedUntil".to_owned(), n("1767322245000")),
                    ("claimedBy".to_owned(), s("req#1")),
                    ("attempts".to_owned(), n("1")),
                ])),
            )])),
        ),
        ("undeliverable".to_owned(), AttributeValue::L(vec![])),
        ("pollShard".to_owned(), n("1")),
        ("notFoundCount".to_owned(), n("0")),
        ("gone".to_owned(), AttributeValue::Bool(false)),
        (
            "labels".to_owned(),
            AttributeValue::M(HashMap::from([("team".to_owned(), s("a"))])),
        ),
    ])
}

fn item() -> impl Strategy<Value = HashMap<String, AttributeValue>> {
    let names: Vec<String> = valid_item().keys().cloned().collect();
    let damaged = prop::collection::vec(
        (
            prop_oneof![3 => prop::sample::select(names), 1 => key()],
            prop::option::weighted(0.8, attribute_value()),
        ),
        1..5,
    )
    .prop_map(|changes| {
        let mut item = valid_item();
        for (name, value) in changes {
            match value {
                Some(v) => item.insert(name, v),
                None => item.remove(&name),
            };
        }
        item
    });
    prop_oneof![
        4 => damaged,
        1 => prop::collection::hash_map(key(), attribute_value(), 0..8),
    ]
}

proptest! {
    #[test]
    fn reading_any_item_never_panics_and_a_job_names_its_items_key(item in item()) {
        if let Ok(job) = StoredJob::try_from(&item) {
            prop_assert_eq!(Some(&AttributeValue::S(job.arn().to_string())), item.get("jobArn"));
            prop_assert_eq!(job.active, item.contains_key("pollShard"));
        }
    }
}

#[test]
fn the_valid_item_of_these_properties_should_read_as_a_job() {
    let job = StoredJob::try_from(&valid_item()).expect("the seed item reads");
    assert_eq!(job.outbox.len(), 1);
    assert_eq!(job.outbox[0].delivery("topic").attempts, 1);
    assert_eq!(job.history.len(), 1);
}
