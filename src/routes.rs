//! Notification routes: a team's own topic and the SNS filter policy that
//! decides what of the monitor's notifications it gets, declared in a
//! team's stack as the custom resource `Custom::NotificationRoute`
//! (team/template.yaml) and kept in the job table (`control#routes`).
//!
//! Each route is a destination of its own, like the stack's Slack channel
//! (which is one more route, named [`SLACK`], declared by the stack's
//! settings `SLACK_TOPIC_ARN` and `SLACK_FILTER_POLICY`): every notification
//! goes to the job topic and to each route whose policy lets its message
//! attributes through, each destination with its own delivery state, so a
//! team's deleted or failing topic holds back only its own messages. Each
//! route also gets a digest of the jobs its policy covers ([`covers`]).
//!
//! A request is checked before anything is stored ([`declare`]): a policy
//! the function cannot evaluate, a topic outside the name rule the
//! function's permissions admit, or a name another stack declared fails the
//! deploy with the reason, on CloudFormation's `ResponseURL`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::custom_resource::Request;
use crate::domain::{SLACK, TOPIC};
use crate::filter_policy::FilterPolicy;

/// The custom resource type a route is declared as.
pub const TYPE: &str = crate::config::ROUTE_RESOURCE_TYPE;

/// Every route's topic is named `bedrock-batch-monitor-route-<name>`: the
/// function may publish to those topics only (template.yaml
/// `PublishRoutes`), in any account, so a team's topic needs no change to
/// the monitor's permissions.
pub const TOPIC_PREFIX: &str = "bedrock-batch-monitor-route-";

/// A route's name: what its messages, its digest and `routes` call it.
pub const NAME_MAX: usize = 40;

/// Names a route cannot take: the destinations the monitor has already.
pub const RESERVED: [&str; 2] = [TOPIC, SLACK];

/// The properties a route takes: CloudFormation's own (`ServiceToken`, and
/// `ServiceTimeout`, how long it waits for the answer:
/// <https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-customresource.html>)
/// and the route's.
pub const PROPERTIES: [&str; 5] = [
    "ServiceToken",
    "ServiceTimeout",
    "TopicArn",
    "FilterPolicy",
    "Name",
];

/// Attributes that differ from one notification of a job to the next: a
/// policy's conditions on them say which of a job's notifications a route
/// gets, not whether the job is the route's ([`covers`]).
pub const PER_MESSAGE: [&str; 6] = [
    "status",
    "previousStatus",
    "severity",
    "event",
    "transitionId",
    "warning",
];

/// SNS's limits on a filter policy: "A filter policy can have a maximum of
/// five keys" and "The total combination of values in a filter policy must
/// not exceed 150"
/// (<https://docs.aws.amazon.com/sns/latest/dg/subscription-filter-policy-constraints.html>).
pub const MAX_KEYS: usize = 5;
pub const MAX_COMBINATIONS: u64 = 150;

/// Who declared a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The monitor's own stack, through `SLACK_TOPIC_ARN`.
    Setting,
    /// A stack's `Custom::NotificationRoute`.
    Stack {
        stack_id: String,
        logical_id: String,
    },
}

/// One route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub topic_arn: String,
    /// The policy as declared (JSON), for `routes`.
    pub policy_json: Value,
    pub policy: FilterPolicy,
    pub source: Source,
    pub updated_at: Option<DateTime<Utc>>,
}

/// How a route's deliveries went: as the table counts them, and what one
/// invocation adds to that when it ends (one write for all routes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Messages it accepted (notifications and digests).
    pub delivered: u64,
    /// Publishes that failed.
    pub failures: u64,
    pub last_delivery: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Stats {
    /// Nothing published.
    pub fn is_empty(&self) -> bool {
        self.delivered == 0 && self.failures == 0
    }
}

/// What the table keeps: the declared routes, by name, and the delivery
/// counts of every route (the stack's Slack channel's too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    pub declared: Vec<Route>,
    pub stats: std::collections::BTreeMap<String, Stats>,
}

/// The routes one invocation publishes to: the stack's Slack channel, when
/// it has one, then the declared routes by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    routes: Vec<Route>,
}

impl Table {
    pub fn new(slack: Option<&(String, FilterPolicy)>, declared: Vec<Route>) -> Self {
        let mut routes: Vec<Route> = slack
            .map(|(topic, policy)| Route {
                name: SLACK.to_owned(),
                topic_arn: topic.clone(),
                policy_json: policy.source().clone(),
                policy: policy.clone(),
                source: Source::Setting,
                updated_at: None,
            })
            .into_iter()
            .collect();
        let mut declared: Vec<Route> = declared
            .into_iter()
            .filter(|r| !RESERVED.contains(&r.name.as_str()))
            .collect();
        declared.sort_by(|a, b| a.name.cmp(&b.name));
        routes.extend(declared);
        Self { routes }
    }

    /// The routes whose policy lets a message with `attributes` through.
    pub fn matching<'a>(
        &'a self,
        attributes: &'a [(String, String)],
    ) -> impl Iterator<Item = &'a Route> + 'a {
        self.routes
            .iter()
            .filter(move |r| r.policy.matches(attributes))
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The routes teams declared (each has a digest of its own).
    pub fn declared(&self) -> impl Iterator<Item = &Route> {
        self.routes
            .iter()
            .filter(|r| matches!(r.source, Source::Stack { .. }))
    }
}

/// Whether the job with these attributes (its account, region, name, model
/// and labels) is one `policy` would send notifications of: its conditions
/// on [`PER_MESSAGE`] attributes are set aside. A team route's policy
/// (`team` = `search`, with severities) covers the search team's jobs.
pub fn covers(policy: &FilterPolicy, job_attributes: &[(String, String)]) -> bool {
    policy.matches_ignoring(job_attributes, &|name| PER_MESSAGE.contains(&name))
}

/// Whether a route takes its own digest (its `attributes` as rendered):
/// judged on the policy's conditions on [`PER_MESSAGE`] attributes alone
/// (`event` = `digest`, a severity), those on the job having chosen the
/// digest's jobs ([`covers`]). A policy of `team: [search, search-ml]`
/// takes the digest of both teams' jobs; one of `status: [Failed]` none.
pub fn takes_digest(route: &Route, attributes: &[(String, String)]) -> bool {
    route
        .policy
        .matches_ignoring(attributes, &|name| !PER_MESSAGE.contains(&name))
}

/// The attributes a route's digest carries beside the digest's own: each
/// attribute the policy pins to one exact value outside [`PER_MESSAGE`]
/// (`team` = `search`), so a subscription filtered like the route (the
/// team's inbox) gets the team's digest; and `route`.
pub fn digest_attributes(route: &Route) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = route
        .policy
        .pinned()
        .into_iter()
        .filter(|(k, _)| !PER_MESSAGE.contains(&k.as_str()) && k != "route")
        .collect();
    out.push(("route".to_owned(), route.name.clone()));
    out
}

/// Why a route cannot be declared: the deploy fails with this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(why.into()))
}

/// The physical id CloudFormation knows a route by: the same for every
/// answer about it, so changing its topic or policy is an update, and
/// changing its name a replacement (CloudFormation then deletes the old one).
pub fn physical_id(name: &str) -> String {
    format!("route-{name}")
}

/// The name a physical id stands for (what a Delete removes).
pub fn name_of_physical_id(id: &str) -> Option<&str> {
    id.strip_prefix("route-").filter(|n| valid_name(n))
}

/// `[a-z0-9][a-z0-9-]*`, at most [`NAME_MAX`] characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

/// The route a Create or Update request declares, checked: the topic is an
/// SNS topic in `region` (the function's) named `bedrock-batch-monitor-route-...`;
/// the policy is an object the function can evaluate; the name (`Name`, or
/// the topic's name after the prefix) is free to take.
pub fn declare(request: &Request, region: &str, now: DateTime<Utc>) -> Result<Route, Refusal> {
    let p = &request.properties;
    if let Some(unknown) = p.keys().find(|k| !PROPERTIES.contains(&k.as_str())) {
        return refuse(format!(
            "{TYPE} takes no property {unknown:?}; it takes TopicArn, FilterPolicy and Name"
        ));
    }
    let topic_arn = match p.get("TopicArn") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => return refuse(format!("{TYPE} needs TopicArn, the team's SNS topic's ARN")),
    };
    let topic_name = topic_name_in(&topic_arn, region)?;
    // A stack routes to its own account's topic only: a team cannot send
    // the monitor's notifications to another account's topic.
    let stack_account = request.stack_id.split(':').nth(4).unwrap_or_default();
    let topic_account = topic_arn.split(':').nth(4).unwrap_or_default();
    if stack_account != topic_account {
        return refuse(format!(
            "TopicArn {topic_arn:?} is in account {topic_account}; a stack in account {stack_account} routes to its own account's topics only"
        ));
    }
    let name = match p.get("Name") {
        None | Some(Value::Null) => topic_name.to_owned(),
        Some(Value::String(s)) if s.is_empty() => topic_name.to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return refuse(format!("Name must be a string, not {other}")),
    };
    if !valid_name(&name) {
        return refuse(format!(
            "the route's name {name:?} must be 1 to {NAME_MAX} of a-z, 0-9 and -, starting with a letter or digit"
        ));
    }
    if RESERVED.contains(&name.as_str()) {
        return refuse(format!(
            "the route's name {name:?} is the monitor's own destination; pick another (Name)"
        ));
    }
    let policy_json = match p.get("FilterPolicy") {
        Some(Value::Object(o)) => restore_scalars(&Value::Object(o.clone())),
        Some(Value::String(_)) => {
            return refuse(
                "FilterPolicy must be an object in SNS's filter-policy language, written as YAML in the template, not a JSON string",
            );
        }
        _ => {
            return refuse(
                "FilterPolicy is needed: an object in SNS's filter-policy language, such as {team: [search]}",
            );
        }
    };
    let policy = FilterPolicy::from_json(&policy_json)
        .map_err(|e| Refusal(format!("FilterPolicy cannot be evaluated: {e}")))?;
    let keys = policy.key_count();
    if keys > MAX_KEYS {
        return refuse(format!(
            "FilterPolicy names {keys} attributes; SNS takes at most {MAX_KEYS}"
        ));
    }
    let combinations = policy.combinations();
    if combinations > MAX_COMBINATIONS {
        return refuse(format!(
            "FilterPolicy has {combinations} combinations of values; SNS takes at most {MAX_COMBINATIONS}"
        ));
    }
    Ok(Route {
        name,
        topic_arn,
        policy_json,
        policy,
        source: Source::Stack {
            stack_id: request.stack_id.clone(),
            logical_id: request.logical_resource_id.clone(),
        },
        updated_at: Some(now),
    })
}

/// The name after the prefix of a topic ARN in `region`, or why not.
fn topic_name_in<'a>(arn: &'a str, region: &str) -> Result<&'a str, Refusal> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [head, _partition, service, topic_region, account, name] = parts.as_slice() else {
        return refuse(format!(
            "TopicArn {arn:?} is not an SNS topic's ARN (arn:aws:sns:<region>:<account>:<name>)"
        ));
    };
    if *head != "arn"
        || *service != "sns"
        || account.len() != 12
        || !account.bytes().all(|b| b.is_ascii_digit())
        || name.is_empty()
    {
        return refuse(format!(
            "TopicArn {arn:?} is not an SNS topic's ARN (arn:aws:sns:<region>:<account>:<name>)"
        ));
    }
    if *topic_region != region {
        return refuse(format!(
            "TopicArn {arn:?} is in {topic_region}; the monitor publishes to topics in its own region, {region}"
        ));
    }
    match name.strip_prefix(TOPIC_PREFIX) {
        Some(rest) if !rest.is_empty() => Ok(rest),
        _ => refuse(format!(
            "the topic {name:?} must be named {TOPIC_PREFIX}<name>: the monitor may publish to those topics only"
        )),
    }
}

/// CloudFormation sends every scalar of a property as a string
/// (aws-cloudformation/cloudformation-coverage-roadmap#1037): `exists: true`
/// arrives as `"true"`, `numeric: [">", 5]` as `[">", "5"]`. Restored
/// where the policy language takes a boolean or a number, so a policy means
/// what the template wrote.
pub fn restore_scalars(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, inner) in o {
                let restored = match (k.as_str(), inner) {
                    ("exists", Value::String(s)) if s == "true" || s == "false" => {
                        Value::Bool(s == "true")
                    }
                    ("numeric", Value::Array(items)) => Value::Array(
                        items
                            .iter()
                            .map(|i| match i {
                                Value::String(s) => s
                                    .parse::<f64>()
                                    .ok()
                                    .and_then(|f| {
                                        s.parse::<i64>().map(Value::from).ok().or_else(|| {
                                            serde_json::Number::from_f64(f).map(Value::Number)
                                        })
                                    })
                                    .unwrap_or_else(|| i.clone()),
                                other => other.clone(),
                            })
                            .collect(),
                    ),
                    _ => restore_scalars(inner),
                };
                out.insert(k.clone(), restored);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(restore_scalars).collect()),
        other => other.clone(),
    }
}

/// A route as `routes` shows it.
pub fn listed(route: &Route, stats: Option<&Stats>) -> Value {
    let iso = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = json!({
        "name": route.name,
        "topicArn": route.topic_arn,
        "policy": route.policy_json,
    });
    match &route.source {
        Source::Setting => out["declaredBy"] = json!({"setting": "SLACK_TOPIC_ARN"}),
        Source::Stack {
            stack_id,
            logical_id,
        } => {
            out["declaredBy"] = json!({"stackId": stack_id, "logicalResourceId": logical_id});
        }
    }
    if let Some(t) = route.updated_at {
        out["updatedAt"] = json!(iso(t));
    }
    let stats = stats.cloned().unwrap_or_default();
    out["delivered"] = json!(stats.delivered);
    out["failures"] = json!(stats.failures);
    out["lastDelivery"] = json!(stats.last_delivery.map(iso));
    out["lastFailure"] = json!(stats.last_failure.map(iso));
    out["lastError"] = json!(stats.last_error);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::custom_resource::RequestType;

    fn request(props: Value) -> Request {
        Request {
            request_type: RequestType::Create,
            response_url: "https://example.com/r".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/team-search/1".into(),
            request_id: "r".into(),
            logical_resource_id: "Route".into(),
            physical_resource_id: None,
            resource_type: TYPE.into(),
            properties: props.as_object().cloned().unwrap(),
            old_properties: None,
        }
    }

    const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:bedrock-batch-monitor-route-search";

    #[test]
    fn a_route_should_take_its_name_from_its_topic_and_restore_cloudformation_strings() {
        let r = declare(
            &request(json!({"ServiceToken": "x", "TopicArn": TOPIC_ARN,
                "FilterPolicy": {"team": ["search"], "records": [{"numeric": [">", "5"]}],
                    "jobName": [{"exists": "true"}]}})),
            "us-east-1",
            Utc::now(),
        )
        .unwrap();
        assert_eq!(r.name, "search");
        assert_eq!(r.policy_json["jobName"], json!([{"exists": true}]));
        assert_eq!(r.policy_json["records"], json!([{"numeric": [">", 5]}]));
        let attrs = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        // `exists: "true"` read as a string would have been refused.
        assert!(
            !r.policy
                .matches(&attrs(&[("team", "search"), ("jobName", "j")]))
        );
    }

    #[test]
    fn a_route_the_function_cannot_serve_should_be_refused_with_the_reason() {
        let cases = [
            (
                json!({"TopicArn": TOPIC_ARN, "FilterPolicy": "{\"team\": [\"search\"]}"}),
                "not a JSON string",
            ),
            (json!({"TopicArn": TOPIC_ARN}), "FilterPolicy is needed"),
            (
                json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": [{"wildcard": "s*"}]}}),
                "wildcard",
            ),
            (
                json!({"TopicArn": "arn:aws:sns:eu-west-1:210987654321:bedrock-batch-monitor-route-search", "FilterPolicy": {"team": ["a"]}}),
                "own region",
            ),
            (
                json!({"TopicArn": "arn:aws:sns:us-east-1:210987654321:alerts", "FilterPolicy": {"team": ["a"]}}),
                "must be named",
            ),
            (
                json!({"TopicArn": "search", "FilterPolicy": {"team": ["a"]}}),
                "not an SNS topic",
            ),
            (
                json!({"TopicArn": TOPIC_ARN, "Name": "slack", "FilterPolicy": {"team": ["a"]}}),
                "own destination",
            ),
            (
                json!({"TopicArn": TOPIC_ARN, "Name": "Search Team", "FilterPolicy": {"team": ["a"]}}),
                "a-z",
            ),
            (
                json!({"TopicArn": TOPIC_ARN, "Topic": "x", "FilterPolicy": {"team": ["a"]}}),
                "no property",
            ),
            (
                json!({"TopicArn": "arn:aws:sns:us-east-1:999999999999:bedrock-batch-monitor-route-search", "FilterPolicy": {"team": ["a"]}}),
                "its own account",
            ),
            (
                json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"a": ["1"], "b": ["1"], "c": ["1"], "d": ["1"], "e": ["1"], "f": ["1"]}}),
                "at most 5",
            ),
        ];
        for (props, said) in cases {
            let e = declare(&request(props.clone()), "us-east-1", Utc::now()).unwrap_err();
            assert!(e.0.contains(said), "{props}: {e}");
        }
        // 76 x 2 = 152 combinations; an $or counts its branches' sum.
        let many: Vec<String> = (0..76).map(|i| format!("t{i}")).collect();
        let props = json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": many, "severity": ["error", "warning"]}});
        let e = declare(&request(props), "us-east-1", Utc::now()).unwrap_err();
        assert!(e.0.contains("152 combinations"), "{e}");
        let props = json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": ["a", "b"],
            "$or": [{"severity": ["error", "warning"]}, {"event": ["digest"]}]}});
        let r = declare(&request(props), "us-east-1", Utc::now()).unwrap();
        assert_eq!(r.policy.combinations(), 6);
    }

    #[test]
    fn a_team_route_should_cover_its_teams_jobs_and_pin_its_team_on_its_digest() {
        let r = declare(
            &request(
                json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": ["search"],
                "$or": [{"severity": ["error"]}, {"event": ["digest"]}]}}),
            ),
            "us-east-1",
            Utc::now(),
        )
        .unwrap();
        let job = |team: &str| {
            vec![
                ("team".to_owned(), team.to_owned()),
                ("region".to_owned(), "us-east-1".to_owned()),
            ]
        };
        assert!(covers(&r.policy, &job("search")));
        assert!(!covers(&r.policy, &job("ads")));
        let digest = [
            ("event".to_owned(), "digest".to_owned()),
            ("severity".to_owned(), "info".to_owned()),
        ];
        assert!(takes_digest(&r, &digest));
        // Two teams' route takes their digest; one of one status none.
        let two = declare(
            &request(
                json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": ["search", "search-ml"],
                "$or": [{"severity": ["error"]}, {"event": ["digest"]}]}}),
            ),
            "us-east-1",
            Utc::now(),
        )
        .unwrap();
        assert!(takes_digest(&two, &digest));
        let failed_only = declare(
            &request(json!({"TopicArn": TOPIC_ARN, "FilterPolicy": {"team": ["search"], "status": ["Failed"]}})),
            "us-east-1",
            Utc::now(),
        )
        .unwrap();
        assert!(!takes_digest(&failed_only, &digest));
        assert_eq!(
            digest_attributes(&r),
            vec![
                ("team".to_owned(), "search".to_owned()),
                ("route".to_owned(), "search".to_owned())
            ]
        );
    }
}
