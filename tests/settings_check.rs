//! A deploy that sets a value the function cannot use fails with the
//! function's own message (issue 27, item 4): the function serves the
//! template's `Custom::SettingsCheck`. Driven with CloudFormation's own
//! request shape through the real handler (and once through the built
//! function under a local Lambda runtime API), the answer read from a local
//! HTTP server standing in for the pre-signed `ResponseURL`.

mod support;

use std::path::Path;

use bedrock_batch_monitor::config::Config;
use bedrock_batch_monitor::handler::{self, HandlerError};
use serde_json::{Map, Value, json};
use support::response_url::{Put, ResponseUrl};
use support::runtime_api::RuntimeApi;
use support::{World, invocation};

/// The function's environment as the template sets it with every parameter
/// at its default (`!Ref` of a parameter: its default; of the table and the
/// topic: their names; `!If`: the branch a default stack takes).
fn default_variables(table: &str, topic: &str) -> Map<String, Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml"))
        .expect("template.yaml");
    let t: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    let resolve = |v: &serde_yaml::Value| -> String {
        use serde_yaml::Value as Y;
        let reference = |name: &str| match name {
            "JobTable" => table.to_owned(),
            "AlertTopic" => topic.to_owned(),
            "AWS::StackName" => "bedrock-batch-monitor-dev".to_owned(),
            p => match &t["Parameters"][p]["Default"] {
                Y::String(s) => s.clone(),
                Y::Number(n) => n.to_string(),
                other => panic!("no default for {p}: {other:?}"),
            },
        };
        match v {
            Y::String(s) => s.clone(),
            Y::Number(n) => n.to_string(),
            Y::Tagged(tag) if tag.tag == "Ref" => reference(tag.value.as_str().unwrap()),
            // HasEnvironment and HasSlack are false with the defaults.
            Y::Tagged(tag) if tag.tag == "If" => match &tag.value[2] {
                Y::Tagged(r) if r.tag == "Ref" => reference(r.value.as_str().unwrap()),
                other => other.as_str().unwrap_or_default().to_owned(),
            },
            other => panic!("unexpected {other:?}"),
        }
    };
    let function = t["Resources"]["MonitorFunction"]["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .expect("the function's variables");
    function
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), Value::String(resolve(v))))
        .collect()
}

/// CloudFormation's request for the check, as it sends one.
fn request(kind: &str, url: &str, variables: Value, old: Option<Value>) -> Value {
    let token = "arn:aws:lambda:us-east-1:123456789012:function:bedrock-batch-monitor-dev-monitor";
    let mut r = json!({
        "RequestType": kind,
        "ServiceToken": token,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/bedrock-batch-monitor-dev/1134083a-2608-1e91-9897-022501a2c456",
        "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786",
        "LogicalResourceId": "SettingsCheck",
        "ResourceType": "Custom::SettingsCheck",
        "ResourceProperties": {"ServiceToken": token, "ServiceTimeout": "600", "Variables": variables},
    });
    if kind != "Create" {
        r["PhysicalResourceId"] = json!("settings-check");
    }
    if let Some(old) = old {
        r["OldResourceProperties"] =
            json!({"ServiceToken": token, "ServiceTimeout": "600", "Variables": old});
    }
    r
}

/// The message the function itself gives for `name` set to `value` (its
/// `settingWarnings` entry), read by the code that reads its environment.
fn functions_own_message(vars: &Map<String, Value>) -> String {
    let c = Config::from_lookup(|k| vars.get(k).and_then(Value::as_str).map(str::to_owned))
        .expect("required settings set");
    assert_eq!(c.unusable.len(), 1, "{:?}", c.unusable);
    c.unusable[0].error.clone()
}

async fn send(w: &World, event: &Value) -> Result<Value, HandlerError> {
    handler::handle(&w.monitor(), event, &invocation(None)).await
}

fn assert_answers(put: &Put, event: &Value) {
    assert_eq!(put.method, "PUT");
    assert!(
        event["ResponseURL"]
            .as_str()
            .unwrap()
            .ends_with(&put.target),
        "the URL as given, signature included: {}",
        put.target
    );
    assert_eq!(
        put.headers.get("content-type").map(String::as_str),
        Some(""),
        "{:?}",
        put.headers
    );
    assert!(put.raw_len <= 4096, "{}", put.raw_len);
    for id in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(put.body[id], event[id], "{id}: {}", put.body);
    }
    assert_eq!(
        put.body["PhysicalResourceId"], "settings-check",
        "{}",
        put.body
    );
}

#[tokio::test]
async fn a_create_with_the_templates_defaults_should_succeed() {
    // GIVEN the variables a stack with every default sets
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let vars = default_variables(&w.table, &w.topic_arn);
    // WHEN CloudFormation creates the check
    let event = request("Create", &url.url, Value::Object(vars), None);
    let answer = send(&w, &event).await.expect("answered");
    // THEN it is told SUCCESS, under the check's one name
    let put = url.next().await;
    assert_answers(&put, &event);
    assert_eq!(put.body["Status"], "SUCCESS", "{}", put.body);
    assert!(put.body.get("Reason").is_none(), "{}", put.body);
    assert_eq!(answer["customResource"]["status"], "SUCCESS", "{answer}");
}

#[tokio::test]
async fn an_update_that_sets_an_unusable_slack_policy_should_fail_with_the_functions_message() {
    // GIVEN a stack with the defaults
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let before = default_variables(&w.table, &w.topic_arn);
    // WHEN an update sets a Slack policy SNS takes and the function cannot evaluate
    let mut after = before.clone();
    after.insert(
        "SLACK_FILTER_POLICY".into(),
        json!(r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#),
    );
    let event = request(
        "Update",
        &url.url,
        Value::Object(after.clone()),
        Some(Value::Object(before)),
    );
    let answer = send(&w, &event).await.expect("answered");
    // THEN CloudFormation is told FAILED, with the setting and the function's own words
    let put = url.next().await;
    assert_answers(&put, &event);
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    let own = functions_own_message(&after);
    assert!(own.starts_with("SLACK_FILTER_POLICY is malformed") && own.contains("cidr"));
    assert!(reason.contains(&own), "{reason}\nexpected: {own}");
    assert!(
        reason.contains("nothing is published to the Slack topic"),
        "{reason}"
    );
    assert_eq!(answer["customResource"]["status"], "FAILED", "{answer}");
}

#[tokio::test]
async fn malformed_prices_should_fail_naming_prices() {
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let mut vars = default_variables(&w.table, &w.topic_arn);
    vars.insert(
        "PRICES".into(),
        json!(r#"{"anthropic.claude-3-haiku-20240307-v1:0": {"input": 0.1}}"#),
    );
    let event = request("Create", &url.url, Value::Object(vars.clone()), None);
    send(&w, &event).await.expect("answered");
    let put = url.next().await;
    assert_answers(&put, &event);
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("PRICES is malformed") && reason.contains("output is missing"),
        "{reason}"
    );
    assert!(reason.contains(&functions_own_message(&vars)), "{reason}");
}

#[tokio::test]
async fn an_environment_over_lambdas_4_kb_should_fail_saying_so() {
    // GIVEN a WATCH the function can use, long enough to take the
    // environment past 4 KB
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let mut vars = default_variables(&w.table, &w.topic_arn);
    let watch: Vec<String> = (0..60)
        .map(|i| format!("name:team-{i:02}-{}", "x".repeat(50)))
        .collect();
    vars.insert("WATCH".into(), json!(watch.join(",")));
    assert!(
        Config::from_lookup(|k| vars.get(k).and_then(Value::as_str).map(str::to_owned))
            .unwrap()
            .unusable
            .is_empty(),
        "every setting is usable on its own"
    );
    // WHEN CloudFormation creates the check
    let event = request("Create", &url.url, Value::Object(vars), None);
    send(&w, &event).await.expect("answered");
    // THEN it fails saying the size, the limit and the largest variable
    let put = url.next().await;
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("4 KB (4096 bytes)") && reason.contains("the largest: WATCH"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_delete_should_succeed_whatever_the_properties_say() {
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    for variables in [
        json!({"PRICES": "{not json", "SLACK_FILTER_POLICY": "{"}),
        json!("not a map"),
    ] {
        let event = request("Delete", &url.url, variables.clone(), None);
        send(&w, &event).await.expect("answered");
        let put = url.next().await;
        assert_answers(&put, &event);
        assert_eq!(put.body["Status"], "SUCCESS", "{variables}: {}", put.body);
    }
}

#[tokio::test]
async fn a_type_the_function_does_not_serve_should_fail_naming_it() {
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let mut event = request("Create", &url.url, json!({}), None);
    event["ResourceType"] = json!("Custom::Unknown");
    send(&w, &event).await.expect("answered");
    let put = url.next().await;
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("Custom::Unknown") && reason.contains("Custom::SettingsCheck"),
        "{reason}"
    );
}

/// Through the `routes` alias (teams' stacks' `RouteServiceToken`) the
/// function serves notification routes and nothing else: the settings check
/// is answered FAILED at once (no stack waits for an answer), and a command
/// fails as `RoutesOnly` before anything is read. Without the alias, the same
/// settings check succeeds.
#[tokio::test]
async fn through_the_routes_alias_only_routes_should_be_served() {
    let w = World::new().await;
    let mut url = ResponseUrl::start(200).await;
    let event = request(
        "Create",
        &url.url,
        Value::Object(default_variables(&w.table, &w.topic_arn)),
        None,
    );
    w.invoke_through("routes", event.clone())
        .await
        .expect("answered");
    let put = url.next().await;
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    assert!(reason.contains("Custom::NotificationRoute"), "{reason}");

    for command in [json!({"poll": {}}), json!({"untrack": ["x"]}), json!({})] {
        let e = w
            .invoke_through("routes", command.clone())
            .await
            .expect_err("refused");
        assert!(
            matches!(e, HandlerError::RoutesOnly { .. }),
            "{command}: {e}"
        );
    }
    assert!(w.bedrock.calls().is_empty(), "{:?}", w.bedrock.calls());

    send(&w, &event).await.expect("answered");
    assert_eq!(url.next().await.body["Status"], "SUCCESS");
}

#[tokio::test]
async fn an_answer_the_url_refuses_should_fail_the_invocation_so_lambda_retries_it() {
    // GIVEN a response URL that refuses (an expired signature)
    let w = World::new().await;
    let mut url = ResponseUrl::start(403).await;
    let vars = default_variables(&w.table, &w.topic_arn);
    let event = request("Create", &url.url, Value::Object(vars), None);
    // WHEN the check answers
    let err = send(&w, &event).await.expect_err("the invocation fails");
    // THEN it tried, and the invocation's error says what S3 said
    assert_eq!(url.next().await.body["Status"], "SUCCESS");
    assert!(matches!(err, HandlerError::Unanswered(_)), "{err:?}");
    let said = err.to_string();
    assert!(
        said.contains("HTTP 403") && said.contains("Request has expired"),
        "{said}"
    );
}

/// The built function, started as Lambda starts it with a `PRICES` it
/// cannot use in its own environment: it starts, and answers the check from
/// the request's properties (not from its own settings), FAILED for the
/// Slack policy the update sets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_started_as_lambda_starts_it_should_answer_from_the_requests_properties() {
    let api = RuntimeApi::start().await;
    let mut url = ResponseUrl::start(200).await;
    let topic = "arn:aws:sns:us-east-1:123456789012:alerts";
    let mut function = std::process::Command::new(env!("CARGO_BIN_EXE_bedrock-batch-monitor"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bedrock-batch-monitor")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("TABLE_NAME", "jobs")
        .env("TOPIC_ARN", topic)
        .env("PRICES", "{not json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the function");
    let before = default_variables("jobs", topic);
    let mut after = before.clone();
    after.insert(
        "SLACK_FILTER_POLICY".into(),
        json!(r#"{"ip": [{"cidr": "10.0.0.0/8"}]}"#),
    );
    let event = request(
        "Update",
        &url.url,
        Value::Object(after),
        Some(Value::Object(before)),
    );
    let (kind, answer) = api.invoke_any(&mut function, event.clone()).await;
    let put = url.next().await;
    let _ = function.kill();
    let _ = function.wait();
    assert_eq!(kind, "response", "{answer}");
    assert_answers(&put, &event);
    assert_eq!(put.body["Status"], "FAILED", "{}", put.body);
    let reason = put.body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("SLACK_FILTER_POLICY is malformed") && !reason.contains("PRICES"),
        "{reason}"
    );
    // Its own unusable PRICES is still said, as in every answer.
    assert_eq!(
        answer["settingWarnings"][0]["setting"], "PRICES",
        "{answer}"
    );
}
