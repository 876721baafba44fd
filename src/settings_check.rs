//! `Custom::SettingsCheck`: a deploy refuses what the function would refuse.
//!
//! The template gives this resource the function's environment variables
//! (property `Variables`, the same expressions as the function's
//! `Environment.Variables`), so every change of a setting updates it and
//! runs this check, after CloudFormation has updated the function and before
//! the stack completes. The settings are read by the same code that reads
//! the environment ([`Config::from_lookup`]): a value the function would set
//! aside ([`Config::unusable`]), or a missing or malformed `TABLE_NAME` or
//! `TOPIC_ARN`, answers FAILED with the function's own message, naming the
//! setting, and the stack rolls back. So does an environment over Lambda's
//! 4 KB.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::custom_resource::{Outcome, Request, RequestType, elide};

/// The `ResourceType` this check serves.
pub const TYPE: &str = "Custom::SettingsCheck";
/// The one name of the resource: the same in every answer, so an update is
/// never taken for a replacement.
pub const PHYSICAL_ID: &str = "settings-check";
/// The property holding the function's environment variables.
pub const VARIABLES: &str = "Variables";

/// Lambda's limit on a function's environment variables together: 4 KB
/// ("Total size of environment variables",
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>),
/// measured on the variables object as stored: "The maximum size of the
/// variables object that is stored in the function's configuration must not
/// exceed 4096 bytes"
/// (<https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-deployment.html#troubleshooting-deployment-InvalidParameterValueException1>,
/// quoted in DataBiosphere/azul#3479). Lambda's refusal shows the string it
/// measured, the variables as compact JSON (`String measured:
/// {"KEY":"value",...}`, github-aws-runners/terraform-aws-github-runner#3594),
/// so keys, values, quotes and separators all count, as [`environment_size`]
/// counts them.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// Each setting's message in a reason at most this long (the whole answer
/// has 4096 bytes); the function's log has them whole.
const MAX_MESSAGE: usize = 900;

/// The size Lambda measures: the variables as compact JSON, in bytes.
pub fn environment_size(variables: &BTreeMap<String, String>) -> usize {
    serde_json::to_string(variables).map_or(usize::MAX, |s| s.len())
}

/// A property's value as the environment would hold it: CloudFormation
/// sends scalars as strings (numbers and booleans too); anything else is
/// kept as its JSON, which no setting takes.
fn as_variable(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        other => other.to_string(),
    }
}

fn variables(properties: Option<&Map<String, Value>>) -> Option<BTreeMap<String, String>> {
    properties?
        .get(VARIABLES)?
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), as_variable(v))).collect())
}

/// What the check decides for one request.
pub fn check(request: &Request) -> Outcome {
    let physical_id = request
        .physical_resource_id
        .clone()
        .unwrap_or_else(|| PHYSICAL_ID.to_owned());
    let done = |data: Map<String, Value>| Outcome::Done {
        physical_id: physical_id.clone(),
        data,
    };
    // Never block a rollback or a stack's deletion: nothing to undo.
    if request.request_type == RequestType::Delete {
        return done(Map::new());
    }
    let refused = |problems: Vec<String>| Outcome::Refused {
        physical_id: physical_id.clone(),
        reason: format!(
            "the function cannot use {} of the stack's settings: {}",
            if problems.len() == 1 {
                "one".to_owned()
            } else {
                problems.len().to_string()
            },
            problems.join("; ")
        ),
    };
    let Some(vars) = variables(Some(&request.properties)) else {
        return refused(vec![format!(
            "the resource's {VARIABLES} property must be the function's environment variables, as a map"
        )]);
    };
    let mut problems = Vec::new();
    let size = environment_size(&vars);
    if size > MAX_ENVIRONMENT_BYTES {
        let mut largest: Vec<(&String, usize)> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k,
                    environment_size(&BTreeMap::from([(k.clone(), v.clone())])),
                )
            })
            .collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let named: Vec<String> = largest
            .iter()
            .take(3)
            .map(|(k, n)| format!("{k} {n} bytes"))
            .collect();
        problems.push(format!(
            "the environment variables total {size} bytes (as Lambda measures them: names and values as JSON), \
             over Lambda's 4 KB ({MAX_ENVIRONMENT_BYTES} bytes); the largest: {}",
            named.join(", ")
        ));
    }
    match Config::from_lookup(|name| vars.get(name).cloned()) {
        Err(e) => problems.push(format!("{e} (the function would stop at start-up)")),
        Ok(config) => {
            // On an update, a value kept from the previous properties passed
            // the deploy that set it: refusing it now would refuse the
            // rollback too (CloudFormation rolls this resource back with an
            // Update to those properties). It stays loud where the function
            // runs (settingWarnings, UnusableSettings).
            let before = (request.request_type == RequestType::Update)
                .then(|| variables(request.old_properties.as_ref()))
                .flatten();
            for w in &config.unusable {
                let kept = before
                    .as_ref()
                    .is_some_and(|b| b.get(w.setting) == vars.get(w.setting));
                if kept {
                    tracing::warn!(setting = w.setting, error = %w.error, "a setting the function cannot use, kept from the previous deploy: not refused, so that a rollback can pass");
                    continue;
                }
                tracing::error!(setting = w.setting, error = %w.error, instead = w.instead, "a setting the function cannot use: the deploy is refused");
                problems.push(elide(
                    &format!(
                        "{} (the function would set it aside: {})",
                        w.error, w.instead
                    ),
                    MAX_MESSAGE,
                ));
            }
        }
    }
    if problems.is_empty() {
        let mut data = Map::new();
        data.insert("EnvironmentBytes".to_owned(), Value::from(size));
        done(data)
    } else {
        refused(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";

    fn request(kind: RequestType, vars: Value, old: Option<Value>) -> Request {
        Request {
            request_type: kind,
            response_url: "https://example.invalid/r".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1".into(),
            request_id: "r-1".into(),
            logical_resource_id: "SettingsCheck".into(),
            physical_resource_id: None,
            resource_type: TYPE.into(),
            properties: json!({"ServiceToken": "arn", VARIABLES: vars})
                .as_object()
                .cloned()
                .unwrap(),
            old_properties: old.map(|o| json!({ VARIABLES: o }).as_object().cloned().unwrap()),
        }
    }

    #[test]
    fn the_size_should_count_names_values_and_the_json_around_them() {
        let vars = BTreeMap::from([("AB".to_owned(), "x\"y".to_owned())]);
        // {"AB":"x\"y"}
        assert_eq!(environment_size(&vars), 13);
        assert_eq!(environment_size(&BTreeMap::new()), 2);
    }

    #[test]
    fn numbers_as_cloudformation_sends_them_should_be_read_as_the_environment_holds_them() {
        let r = request(
            RequestType::Create,
            json!({"TABLE_NAME": "jobs", "TOPIC_ARN": TOPIC, "MAX_CONCURRENCY": 8, "RETENTION_DAYS": "7"}),
            None,
        );
        assert!(matches!(check(&r), Outcome::Done { .. }), "{:?}", check(&r));
        let r = request(
            RequestType::Create,
            json!({"TABLE_NAME": "jobs", "TOPIC_ARN": TOPIC, "MAX_CONCURRENCY": [8]}),
            None,
        );
        assert!(
            matches!(check(&r), Outcome::Refused { reason, .. } if reason.contains("MAX_CONCURRENCY")),
            "{:?}",
            check(&r)
        );
    }

    #[test]
    fn a_missing_table_should_be_refused_saying_the_function_would_stop() {
        let r = request(RequestType::Create, json!({"TOPIC_ARN": TOPIC}), None);
        let Outcome::Refused { reason, .. } = check(&r) else {
            panic!()
        };
        assert!(
            reason.contains("TABLE_NAME is required but not set") && reason.contains("stop"),
            "{reason}"
        );
    }

    #[test]
    fn an_unusable_value_kept_from_the_previous_deploy_should_not_block_the_update() {
        let bad = json!({"TABLE_NAME": "jobs", "TOPIC_ARN": TOPIC, "PRICES": "{not json"});
        let mut changed = bad.clone();
        changed["WATCH"] = json!("name:search-");
        let r = request(RequestType::Update, changed.clone(), Some(bad.clone()));
        assert!(matches!(check(&r), Outcome::Done { .. }), "{:?}", check(&r));
        // ... but a value this update sets is refused, and so is any on a Create
        let good = json!({"TABLE_NAME": "jobs", "TOPIC_ARN": TOPIC});
        let r = request(RequestType::Update, changed.clone(), Some(good));
        assert!(matches!(check(&r), Outcome::Refused { .. }));
        let r = request(RequestType::Create, changed, None);
        assert!(matches!(check(&r), Outcome::Refused { .. }));
    }

    #[test]
    fn no_variables_should_be_refused_and_a_delete_never() {
        let mut r = request(RequestType::Create, json!("nope"), None);
        assert!(matches!(check(&r), Outcome::Refused { .. }));
        r.request_type = RequestType::Delete;
        assert!(matches!(check(&r), Outcome::Done { .. }));
    }
}
