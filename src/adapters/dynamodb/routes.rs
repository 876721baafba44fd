//! The routes teams declared (`control#routes`): one item, read once by an
//! invocation that publishes. Each route is an attribute of its own
//! (`route#<name>`), written on the condition that no other stack declared
//! that name; its delivery counts are attributes beside it
//! (`delivered#<name>`, `failures#<name>`, ...), added to once per
//! invocation.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::item::*;
use super::{DynamoJobStore, fail, write_result};
use crate::filter_policy::FilterPolicy;
use crate::ports::{RouteStore, StoreError, Write};
use crate::routes::{Book, Route, Source, Stats};

/// The key of the routes' item: like the cursor, never listed or read as a job.
pub const ROUTES_KEY: &str = "control#routes";
const ROUTE: &str = "route#";
const DELIVERED: &str = "delivered#";
const FAILURES: &str = "failures#";
const LAST_DELIVERY: &str = "lastDelivery#";
const LAST_FAILURE: &str = "lastFailure#";
const LAST_ERROR: &str = "lastError#";
/// Every count kept beside a route.
const STATS: [&str; 5] = [DELIVERED, FAILURES, LAST_DELIVERY, LAST_FAILURE, LAST_ERROR];

const TOPIC_ARN: &str = "topicArn";
const POLICY: &str = "policy";
const STACK_ID: &str = "stackId";
const LOGICAL_ID: &str = "logicalResourceId";
const UPDATED_AT: &str = "updatedAt";

fn route_of(name: &str, v: &AttributeValue) -> Result<Route, String> {
    let m = v.as_m().map_err(|_| "not a map".to_owned())?;
    let text = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| format!("no {k}"))
    };
    let policy_json: serde_json::Value =
        serde_json::from_str(&text(POLICY)?).map_err(|e| format!("its policy is not JSON: {e}"))?;
    let policy = FilterPolicy::from_json(&policy_json).map_err(|e| e.to_string())?;
    Ok(Route {
        name: name.to_owned(),
        topic_arn: text(TOPIC_ARN)?,
        policy_json,
        policy,
        source: Source::Stack {
            stack_id: text(STACK_ID)?,
            logical_id: text(LOGICAL_ID).unwrap_or_default(),
        },
        updated_at: time(m.get(UPDATED_AT)),
    })
}

fn time(v: Option<&AttributeValue>) -> Option<DateTime<Utc>> {
    v.and_then(|v| v.as_s().ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn stats_of(item: &HashMap<String, AttributeValue>, name: &str) -> Stats {
    let count = |prefix: &str| {
        item.get(&format!("{prefix}{name}"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Stats {
        delivered: count(DELIVERED),
        failures: count(FAILURES),
        last_delivery: time(item.get(&format!("{LAST_DELIVERY}{name}"))),
        last_failure: time(item.get(&format!("{LAST_FAILURE}{name}"))),
        last_error: item
            .get(&format!("{LAST_ERROR}{name}"))
            .and_then(|v| v.as_s().ok())
            .cloned(),
    }
}

impl RouteStore for DynamoJobStore {
    async fn routes(&self) -> Result<Book, StoreError> {
        let Some(item) = self.control_item(ROUTES_KEY.to_owned()).await? else {
            return Ok(Book::default());
        };
        let mut book = Book::default();
        for (key, value) in &item {
            if let Some(name) = STATS.iter().find_map(|p| key.strip_prefix(p)) {
                book.stats
                    .entry(name.to_owned())
                    .or_insert_with(|| stats_of(&item, name));
                continue;
            }
            let Some(name) = key.strip_prefix(ROUTE) else {
                continue;
            };
            match route_of(name, value) {
                Ok(route) => book.declared.push(route),
                // A route is declared only once checked: one the function
                // cannot read was written by hand or by another version.
                Err(e) => tracing::error!(
                    route = name,
                    key = ROUTES_KEY,
                    error = %e,
                    "a stored route is unreadable and gets nothing; update its stack (or delete the attribute {key} of {ROUTES_KEY})"
                ),
            }
        }
        book.declared.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(book)
    }

    async fn put_route(&self, route: &Route) -> Result<Write, StoreError> {
        let (stack_id, logical_id) = match &route.source {
            Source::Stack {
                stack_id,
                logical_id,
            } => (stack_id.as_str(), logical_id.as_str()),
            Source::Setting => {
                return Err(StoreError::other(
                    "the stack's own Slack route is a setting, never stored",
                ));
            }
        };
        let value = AttributeValue::M(HashMap::from([
            (TOPIC_ARN.to_owned(), s(route.topic_arn.as_str())),
            (POLICY.to_owned(), s(route.policy_json.to_string())),
            (STACK_ID.to_owned(), s(stack_id)),
            (LOGICAL_ID.to_owned(), s(logical_id)),
            (
                UPDATED_AT.to_owned(),
                ts(route.updated_at.unwrap_or_else(Utc::now)),
            ),
        ]));
        let route_attr = format!("{ROUTE}{}", route.name);
        // A name nobody has: the route is stored with counts of its own
        // (those a deleted route of that name left are removed).
        let stats: Vec<String> = STATS.iter().map(|p| format!("{p}{}", route.name)).collect();
        let mut first = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(ROUTES_KEY))
            .update_expression(format!(
                "SET #r = :route REMOVE {}",
                (0..stats.len())
                    .map(|i| format!("#s{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .condition_expression("attribute_not_exists(#r)")
            .expression_attribute_names("#r", &route_attr)
            .expression_attribute_values(":route", value.clone());
        for (i, name) in stats.iter().enumerate() {
            first = first.expression_attribute_names(format!("#s{i}"), name);
        }
        if write_result(first.send().await, &self.table)? == Write::Done {
            return Ok(Write::Done);
        }
        // The name is taken: by this stack (an update, or the same route
        // under a new logical id, which now holds it), or by another (Lost).
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(ROUTES_KEY))
            .update_expression("SET #r = :route")
            .condition_expression("#r.#stack = :stack")
            .expression_attribute_names("#r", &route_attr)
            .expression_attribute_names("#stack", STACK_ID)
            .expression_attribute_values(":route", value)
            .expression_attribute_values(":stack", s(stack_id))
            .send()
            .await;
        write_result(r, &self.table)
    }

    async fn delete_route(
        &self,
        name: &str,
        stack_id: &str,
        logical_id: &str,
    ) -> Result<Write, StoreError> {
        let names: Vec<String> = std::iter::once(ROUTE)
            .chain(STATS)
            .map(|p| format!("{p}{name}"))
            .collect();
        let remove: Vec<String> = (0..names.len()).map(|i| format!("#a{i}")).collect();
        // The resource that holds the route, and only it, removes it: a
        // stack's other resource of that name (a logical id renamed, whose
        // old resource CloudFormation deletes last) leaves it.
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(ROUTES_KEY))
            .update_expression(format!("REMOVE {}", remove.join(", ")))
            .condition_expression(
                "attribute_not_exists(#a0) OR (#a0.#stack = :stack AND #a0.#logical = :logical)",
            )
            .expression_attribute_names("#stack", STACK_ID)
            .expression_attribute_names("#logical", LOGICAL_ID)
            .expression_attribute_values(":stack", s(stack_id))
            .expression_attribute_values(":logical", s(logical_id));
        for (i, attr) in names.iter().enumerate() {
            req = req.expression_attribute_names(format!("#a{i}"), attr);
        }
        write_result(req.send().await, &self.table)
    }

    async fn note_route_deliveries(
        &self,
        tallies: &BTreeMap<String, Stats>,
    ) -> Result<(), StoreError> {
        let mut set = Vec::new();
        let mut add = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        for (i, (name, t)) in tallies.iter().filter(|(_, t)| !t.is_empty()).enumerate() {
            let mut bind = |what: &str, prefix: &str, v: AttributeValue| {
                let (n, val) = (format!("#{what}{i}"), format!(":{what}{i}"));
                names.insert(n.clone(), format!("{prefix}{name}"));
                values.insert(val.clone(), v);
                (n, val)
            };
            for (what, prefix, count) in
                [("d", DELIVERED, t.delivered), ("f", FAILURES, t.failures)]
            {
                if count > 0 {
                    let (n, val) = bind(what, prefix, n(count));
                    add.push(format!("{n} {val}"));
                }
            }
            if let Some(at) = t.last_delivery {
                let (n, val) = bind("ld", LAST_DELIVERY, ts(at));
                set.push(format!("{n} = {val}"));
            }
            if let Some(at) = t.last_failure {
                let (n, val) = bind("lf", LAST_FAILURE, ts(at));
                set.push(format!("{n} = {val}"));
            }
            if let Some(e) = &t.last_error {
                let (n, val) = bind("le", LAST_ERROR, s(e.as_str()));
                set.push(format!("{n} = {val}"));
            }
        }
        if set.is_empty() && add.is_empty() {
            return Ok(());
        }
        let mut expression = String::new();
        if !set.is_empty() {
            expression.push_str(&format!("SET {}", set.join(", ")));
        }
        if !add.is_empty() {
            expression.push_str(&format!(" ADD {}", add.join(", ")));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(ARN, s(ROUTES_KEY))
            .update_expression(expression.trim())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| fail(e, &self.table))
    }
}
