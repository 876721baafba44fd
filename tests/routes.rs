//! Each team its own channel, inbox and digest on one monitor (issue 29):
//! routes declared as CloudFormation's `Custom::NotificationRoute`, driven
//! with CloudFormation's own request shape through the real handler, the
//! answer read from a local `ResponseURL`; the teams' topics are moto's,
//! each with an SQS queue subscribed as the team's channel would be.

mod support;

use fake_bedrock::SeedJob;
use serde_json::{Value, json};
use support::response_url::ResponseUrl;
use support::{MotoFault, World, invocation, unique};

const TOKEN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:bedrock-batch-monitor-dev-monitor:routes";

/// A team's stack, as CloudFormation names it in its requests.
fn stack(team: &str) -> String {
    format!(
        "arn:aws:cloudformation:us-east-1:123456789012:stack/bedrock-batch-monitor-team-{team}/0f1e2d3c"
    )
}

/// CloudFormation's request for a route, as it sends one: every scalar a
/// string (as CloudFormation turns the template's numbers and booleans).
fn request(kind: &str, url: &str, stack_id: &str, props: Value, physical: Option<&str>) -> Value {
    let mut properties = json!({"ServiceToken": TOKEN});
    properties
        .as_object_mut()
        .unwrap()
        .extend(props.as_object().unwrap().clone());
    let mut r = json!({
        "RequestType": kind,
        "ServiceToken": TOKEN,
        "ResponseURL": url,
        "StackId": stack_id,
        "RequestId": unique("request"),
        "LogicalResourceId": "Route",
        "ResourceType": "Custom::NotificationRoute",
        "ResourceProperties": properties,
    });
    if let Some(p) = physical {
        r["PhysicalResourceId"] = json!(p);
    }
    if kind == "Update" {
        r["OldResourceProperties"] = json!({"ServiceToken": TOKEN});
    }
    r
}

/// A team's topic (named as the function's permissions admit) and a queue
/// subscribed to it without a filter, as Amazon Q Developer is.
async fn team_topic(w: &World, team: &str) -> (String, String) {
    w.topic_with_queue(&format!("bedrock-batch-monitor-route-{team}"))
        .await
}

/// The route team/template.yaml declares for `team` with its defaults
/// (`Severities` error,warning,success, `Events` digest), as CloudFormation
/// resolves it: the template's own FilterPolicy, read from the file.
fn team_policy(team: &str) -> Value {
    use serde_yaml::Value as Y;
    let text = std::fs::read_to_string(support::repo_root().join("team/template.yaml"))
        .expect("team/template.yaml");
    let t: Y = serde_yaml::from_str(&text).expect("YAML");
    let default_list = |p: &str| -> Value {
        let d = t["Parameters"][p]["Default"].as_str().expect("a default");
        json!(d.split(',').collect::<Vec<_>>())
    };
    fn resolve(v: &Y, r: &dyn Fn(&str) -> Value) -> Value {
        match v {
            Y::String(s) => json!(s),
            Y::Sequence(items) => Value::Array(items.iter().map(|i| resolve(i, r)).collect()),
            Y::Mapping(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, r)))
                    .collect(),
            ),
            Y::Tagged(tag) if tag.tag == "Ref" => r(tag.value.as_str().unwrap()),
            // HasEvents holds with the default Events (digest).
            Y::Tagged(tag) if tag.tag == "If" => resolve(&tag.value[1], r),
            other => panic!("unexpected {other:?}"),
        }
    }
    let route = &t["Resources"]["Route"]["Properties"]["FilterPolicy"];
    resolve(route, &|name| match name {
        "Team" => json!(team),
        "Severities" | "Events" => default_list(name),
        other => panic!("no value for {other}"),
    })
}

/// Declares a route through the handler, invoked through the `routes`
/// alias as a team's stack invokes it; CloudFormation's answer.
async fn declare(w: &World, event: &Value) -> Value {
    let mut url = ResponseUrl::start(200).await;
    let mut event = event.clone();
    event["ResponseURL"] = json!(url.url);
    let inv = invocation(None).invoked_as(TOKEN);
    bedrock_batch_monitor::handler::handle(&w.monitor(), &event, &inv)
        .await
        .expect("answered");
    let put = url.next().await;
    for id in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(put.body[id], event[id], "{id}: {}", put.body);
    }
    put.body
}

/// A team's topic with its queue, its route as the team template declares
/// it, and a job of the team, tracked: the topic, the queue and the job.
async fn team_with_job(w: &World, team: &str) -> (String, String, String) {
    let (topic, queue) = team_topic(w, team).await;
    create_route(w, team, &topic).await;
    let job = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [{"jobArn": job, "labels": {"team": team}}]}))
        .await;
    (topic, queue, job)
}

async fn create_route(w: &World, team: &str, topic: &str) -> Value {
    let e = request(
        "Create",
        "",
        &stack(team),
        json!({"TopicArn": topic, "FilterPolicy": team_policy(team)}),
        None,
    );
    declare(w, &e).await
}

#[tokio::test]
async fn each_team_should_get_its_own_jobs_on_its_own_topic_and_its_own_digest() {
    // GIVEN two teams' routes, declared as CloudFormation creates them
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let team_a = unique("search").replace('_', "-");
    let team_b = unique("ads").replace('_', "-");
    let (topic_a, queue_a) = team_topic(&w, &team_a).await;
    let (topic_b, queue_b) = team_topic(&w, &team_b).await;
    let answer = create_route(&w, &team_a, &topic_a).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], format!("route-{team_a}"));
    assert_eq!(answer["Data"]["Name"], team_a.as_str());
    let answer = create_route(&w, &team_b, &topic_b).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");

    // AND a job of each team, and one of nobody's
    let job_a = w.bedrock.seed(SeedJob::named("a-nightly"));
    let job_b = w.bedrock.seed(SeedJob::named("b-nightly"));
    let job_none = w.bedrock.seed(SeedJob::named("untagged"));
    let t = w
        .ok(json!({"track": [
            {"jobArn": job_a, "labels": {"team": team_a}},
            {"jobArn": job_b, "labels": {"team": team_b}},
            job_none,
        ]}))
        .await;
    assert_eq!(t["tracked"].as_array().map(Vec::len), Some(3), "{t}");

    // WHEN team A's job fails and team B's completes
    w.bedrock.set(&job_a, "Failed");
    w.bedrock.set(&job_b, "Completed");
    let polled = w.ok(json!({})).await;
    assert_eq!(polled["errors"], json!([]), "{polled}");

    // THEN each team's topic heard its own job's end, and only that, saying by which route
    let got_a = w.drain_queue(&queue_a).await;
    let got_b = w.drain_queue(&queue_b).await;
    let ends = |got: &[support::Received]| {
        got.iter()
            .map(|m| {
                (
                    m.body["jobArn"].as_str().unwrap_or_default().to_owned(),
                    m.body["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ends(&got_a),
        [(job_a.clone(), "Failed".to_owned())],
        "{got_a:?}"
    );
    assert_eq!(
        ends(&got_b),
        [(job_b.clone(), "Completed".to_owned())],
        "{got_b:?}"
    );
    assert_eq!(got_a[0].body["route"], team_a.as_str());
    assert_eq!(got_a[0].attributes["team"], team_a);
    // AND the job topic heard every change of all three, without a route
    let all = w.drain().await;
    assert_eq!(
        all.len(),
        5,
        "3 Submitted, a Failed and a Completed: {all:?}"
    );
    assert!(all.iter().all(|m| m.body.get("route").is_none()), "{all:?}");

    // AND describe says which routes each transition went to
    let d = w.ok(json!({"describe": job_a})).await;
    let routed = d["routedTo"].as_array().expect("routedTo");
    assert_eq!(routed.len(), 1, "{d}");
    assert_eq!(routed[0]["status"], "Failed");
    assert_eq!(routed[0]["routes"], json!([team_a]));
    let d = w.ok(json!({"describe": job_none})).await;
    assert_eq!(d["routedTo"], json!([]), "{d}");

    // AND routes lists both, with their policy, topic, stack and deliveries
    let listed = w.ok(json!({"routes": {}})).await;
    let routes = listed["routes"].as_array().expect("routes");
    let a = routes
        .iter()
        .find(|r| r["name"] == team_a.as_str())
        .expect("team A's route");
    assert_eq!(a["topicArn"], topic_a.as_str());
    assert_eq!(a["policy"], team_policy(&team_a));
    assert_eq!(a["declaredBy"]["stackId"], stack(&team_a));
    assert_eq!(a["delivered"], 1, "{a}");
    assert_eq!(a["failures"], 0, "{a}");
    assert!(a["lastDelivery"].is_string(), "{a}");

    // WHEN the digest runs
    let digest = w.ok(json!({"digest": {}})).await;
    assert_eq!(digest["published"], true, "{digest}");
    // THEN each team's topic has a digest of its own jobs, under an id of its own
    let got_a = w.drain_queue(&queue_a).await;
    assert_eq!(got_a.len(), 1, "{got_a:?}");
    let da = &got_a[0];
    assert_eq!(da.body["event"], "digest");
    assert_eq!(da.body["route"], team_a.as_str());
    assert_eq!(
        da.body["digestId"],
        format!("{}-{team_a}", digest["digest"].as_str().unwrap())
    );
    assert_eq!(da.body["endedTotal"], 1, "{}", da.body);
    // (the untagged job still runs: the monitor's digest has it, no team's)
    assert_eq!(da.body["runningTotal"], 0, "{}", da.body);
    assert_eq!(da.body["ended"][0]["jobArn"], job_a.as_str());
    assert_eq!(da.attributes["team"], team_a);
    assert_eq!(da.attributes["route"], team_a);
    let got_b = w.drain_queue(&queue_b).await;
    assert_eq!(got_b.len(), 1, "{got_b:?}");
    assert_eq!(got_b[0].body["ended"][0]["jobArn"], job_b.as_str());
    // AND the monitor's own digest stays whole
    let whole = w.drain().await;
    assert_eq!(whole.len(), 1, "{whole:?}");
    assert_eq!(whole[0].body["endedTotal"], 2, "{}", whole[0].body);
    assert_eq!(whole[0].body["runningTotal"], 1, "{}", whole[0].body);
    assert!(whole[0].body.get("route").is_none());
}

#[tokio::test]
async fn a_quiet_teams_digest_should_say_all_quiet_while_another_teams_has_news() {
    let w = World::with_env(&[("DIGEST_SETTLE_SECONDS", "0")]).await;
    let (quiet, busy) = (unique("quiet"), unique("busy"));
    let (topic_q, queue_q) = team_topic(&w, &quiet).await;
    let (topic_b, queue_b) = team_topic(&w, &busy).await;
    create_route(&w, &quiet, &topic_q).await;
    create_route(&w, &busy, &topic_b).await;
    let job = w.bedrock.seed(SeedJob::named("busy-job"));
    w.ok(json!({"track": [{"jobArn": job, "labels": {"team": busy}}]}))
        .await;
    // A poll ran: the monitor is well, so only news makes a digest not quiet.
    w.ok(json!({})).await;
    w.ok(json!({"digest": {}})).await;
    let q = w.drain_queue(&queue_q).await;
    let b: Vec<_> = w
        .drain_queue(&queue_b)
        .await
        .into_iter()
        .filter(|m| m.body["event"] == "digest")
        .collect();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].body["quiet"], true, "{}", q[0].body);
    assert_eq!(q[0].body["runningTotal"], 0);
    assert_eq!(b[0].body["quiet"], false, "{}", b[0].body);
    assert_eq!(b[0].body["runningTotal"], 1);
}

#[tokio::test]
async fn a_policy_the_function_cannot_evaluate_should_fail_the_deploy_with_the_reason_and_store_nothing()
 {
    let w = World::new().await;
    let team = unique("search");
    let (topic, _) = team_topic(&w, &team).await;
    let cases = [
        (
            json!({"TopicArn": topic, "FilterPolicy": "{\"team\": [\"search\"]}"}),
            "not a JSON string",
        ),
        (
            json!({"TopicArn": topic, "FilterPolicy": {"ip": [{"cidr": "10.0.0.0/8"}]}}),
            "cidr",
        ),
        (json!({"TopicArn": topic}), "FilterPolicy is needed"),
        (
            json!({"TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts", "FilterPolicy": {"team": ["x"]}}),
            "bedrock-batch-monitor-route-",
        ),
        (
            json!({"TopicArn": topic, "Name": "topic", "FilterPolicy": {"team": ["x"]}}),
            "own destination",
        ),
    ];
    for (props, said) in cases {
        let answer = declare(
            &w,
            &request("Create", "", &stack(&team), props.clone(), None),
        )
        .await;
        assert_eq!(answer["Status"], "FAILED", "{props}: {answer}");
        let reason = answer["Reason"].as_str().unwrap_or_default();
        assert!(reason.contains(said), "{props}: {reason}");
    }
    let listed = w.ok(json!({"routes": {}})).await;
    assert_eq!(listed["routes"], json!([]), "{listed}");
}

#[tokio::test]
async fn a_name_another_stack_declared_should_be_refused_and_that_stacks_rollback_take_nothing() {
    // GIVEN team A's route
    let w = World::new().await;
    let team = unique("search");
    let (topic, _) = team_topic(&w, &team).await;
    assert_eq!(create_route(&w, &team, &topic).await["Status"], "SUCCESS");
    // WHEN another stack declares a route of the same name
    let other = stack("impostor");
    let answer = declare(
        &w,
        &request(
            "Create",
            "",
            &other,
            json!({"TopicArn": topic, "FilterPolicy": {"team": ["x"]}}),
            None,
        ),
    )
    .await;
    // THEN its deploy fails, naming the stack that has it
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"].as_str().unwrap().contains(&stack(&team)),
        "{answer}"
    );
    // AND its rollback (a Delete of what the refusal named) takes nothing
    let physical = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    let deleted = declare(
        &w,
        &request(
            "Delete",
            "",
            &other,
            json!({"TopicArn": topic}),
            Some(&physical),
        ),
    )
    .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    // AND even a Delete of the route's own id by the other stack leaves it
    let deleted = declare(
        &w,
        &request(
            "Delete",
            "",
            &other,
            json!({}),
            Some(&format!("route-{team}")),
        ),
    )
    .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let listed = w.ok(json!({"routes": {}})).await;
    assert_eq!(listed["routes"][0]["name"], team.as_str(), "{listed}");
    assert_eq!(listed["routes"][0]["declaredBy"]["stackId"], stack(&team));
}

#[tokio::test]
async fn an_update_should_change_what_a_route_gets_and_a_delete_stop_it() {
    let w = World::new().await;
    let team = unique("search");
    let (topic, queue, job) = team_with_job(&w, &team).await;
    assert!(
        w.drain_queue(&queue).await.is_empty(),
        "Submitted is info: not in the team's policy"
    );
    // WHEN the stack updates the route to every severity (CloudFormation's strings)
    let id = format!("route-{team}");
    let answer = declare(
        &w,
        &request(
            "Update",
            "",
            &stack(&team),
            json!({"TopicArn": topic, "FilterPolicy": {"team": [team], "previousStatus": [{"exists": "true"}]}}),
            Some(&id),
        ),
    )
    .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(
        answer["PhysicalResourceId"],
        id.as_str(),
        "the same resource: an update, not a replacement"
    );
    w.bedrock.set(&job, "InProgress");
    w.ok(json!({})).await;
    let got = w.drain_queue(&queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["status"], "InProgress");
    // AND a policy that takes no digest (a digest has no previousStatus) gets none
    let digest = w.ok(json!({"digest": {}})).await;
    assert_eq!(digest["published"], true, "{digest}");
    assert_eq!(digest["routes"], json!([]), "{digest}");
    assert!(w.drain_queue(&queue).await.is_empty());
    // WHEN the stack is deleted
    let deleted = declare(
        &w,
        &request("Delete", "", &stack(&team), json!({}), Some(&id)),
    )
    .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    w.bedrock.set(&job, "Failed");
    let polled = w.ok(json!({})).await;
    // THEN the route gets nothing more, and nothing fails for its sake
    assert!(w.drain_queue(&queue).await.is_empty());
    assert_eq!(polled["errors"], json!([]), "{polled}");
    assert_eq!(w.ok(json!({"routes": {}})).await["routes"], json!([]));
}

#[tokio::test]
async fn a_deleted_team_topic_should_fail_alone() {
    // GIVEN two teams' routes, one of whose topics was deleted by hand
    let w = World::new().await;
    let (gone, kept) = (unique("gone"), unique("kept"));
    let (topic_g, _) = team_topic(&w, &gone).await;
    let (topic_k, queue_k) = team_topic(&w, &kept).await;
    create_route(&w, &gone, &topic_g).await;
    create_route(&w, &kept, &topic_k).await;
    w.sns
        .delete_topic()
        .topic_arn(&topic_g)
        .send()
        .await
        .unwrap();
    let job_g = w.bedrock.seed(SeedJob::named("g"));
    let job_k = w.bedrock.seed(SeedJob::named("k"));
    w.ok(json!({"track": [
        {"jobArn": job_g, "labels": {"team": gone}},
        {"jobArn": job_k, "labels": {"team": kept}},
    ]}))
    .await;
    w.drain().await;
    // WHEN both jobs fail
    w.bedrock.set(&job_g, "Failed");
    w.bedrock.set(&job_k, "Failed");
    let polled = w
        .invoke(&w.monitor(), json!({}))
        .await
        .expect("a team's topic never fails the poll");
    // THEN the other team and the job topic heard theirs
    let k = w.drain_queue(&queue_k).await;
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(k[0].body["jobArn"], job_k.as_str());
    assert_eq!(w.drain().await.len(), 2);
    // AND the poll names the gone route's failure, and only that
    let errors = polled["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{polled}");
    assert!(
        errors.iter().all(|e| e["destination"] == gone.as_str()),
        "{polled}"
    );
    // AND routes counts it
    let listed = w.ok(json!({"routes": {}})).await;
    let g = listed["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == gone.as_str())
        .unwrap()
        .clone();
    assert_eq!(g["failures"], 1, "{g}");
    assert!(g["lastError"].is_string(), "{g}");
    // AND the gone route's notification waits for it alone (the job topic has it)
    let d = w.ok(json!({"describe": job_g})).await;
    let pending = d["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{d}");
    assert_eq!(
        pending[0]["destinations"]["topic"]["delivered"], true,
        "{d}"
    );
    assert_eq!(
        pending[0]["destinations"][gone.as_str()]["delivered"],
        false,
        "{d}"
    );
}

#[tokio::test]
async fn the_stacks_slack_channel_should_be_a_route_listed_beside_the_teams() {
    let name = format!("{}-channel", unique("slack"));
    let arn = format!("arn:aws:sns:us-east-1:123456789012:{name}");
    let w = World::with_env(&[("SLACK_TOPIC_ARN", arn.as_str())]).await;
    let (_, slack_queue) = w.topic_with_queue(&name).await;
    let job = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [job]})).await;
    w.bedrock.set(&job, "Failed");
    w.ok(json!({})).await;
    let got = w.drain_queue(&slack_queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["route"], "slack");
    let listed = w.ok(json!({"routes": {}})).await;
    assert_eq!(listed["routes"][0]["name"], "slack", "{listed}");
    assert_eq!(
        listed["routes"][0]["declaredBy"]["setting"],
        "SLACK_TOPIC_ARN"
    );
    assert_eq!(listed["routes"][0]["delivered"], 1, "{listed}");
    let d = w.ok(json!({"describe": job})).await;
    assert_eq!(d["routedTo"][0]["routes"], json!(["slack"]), "{d}");
}

#[tokio::test]
async fn a_route_renamed_in_its_stack_should_stay_and_one_may_choose_by_account() {
    // GIVEN a route on a monitor of one account, choosing that account's errors
    let w = World::new().await;
    let team = unique("platform");
    let (topic, queue) = team_topic(&w, &team).await;
    let props = json!({"TopicArn": topic, "FilterPolicy": {"account": ["123456789012"], "severity": ["error"]}});
    let created = declare(
        &w,
        &request("Create", "", &stack(&team), props.clone(), None),
    )
    .await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    // WHEN the stack renames the resource: CloudFormation creates the new
    // one, then deletes the old one under the same physical id
    let mut renamed = request("Create", "", &stack(&team), props, None);
    renamed["LogicalResourceId"] = json!("TeamRoute");
    let answer = declare(&w, &renamed).await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["PhysicalResourceId"], created["PhysicalResourceId"]);
    let id = created["PhysicalResourceId"].as_str().unwrap().to_owned();
    let old = declare(
        &w,
        &request("Delete", "", &stack(&team), json!({}), Some(&id)),
    )
    .await;
    assert_eq!(old["Status"], "SUCCESS", "{old}");
    // THEN the route stays, held by the new resource
    let listed = w.ok(json!({"routes": {}})).await;
    assert_eq!(
        listed["routes"][0]["declaredBy"]["logicalResourceId"], "TeamRoute",
        "{listed}"
    );
    // AND it gets the account's errors (the message itself names no account
    // attribute on a monitor of one account; the route is judged with it)
    let job = w.bedrock.seed(SeedJob::named("nightly"));
    w.ok(json!({"track": [job]})).await;
    w.bedrock.set(&job, "Failed");
    w.ok(json!({})).await;
    let got = w.drain_queue(&queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["status"], "Failed");
    // AND the new resource's own Delete removes it
    let mut gone = request("Delete", "", &stack(&team), json!({}), Some(&id));
    gone["LogicalResourceId"] = json!("TeamRoute");
    assert_eq!(declare(&w, &gone).await["Status"], "SUCCESS");
    assert_eq!(w.ok(json!({"routes": {}})).await["routes"], json!([]));
}

#[tokio::test]
async fn when_the_routes_cannot_be_read_the_notifications_should_wait_for_them() {
    // GIVEN a team's route and its job
    let w = World::new().await;
    let team = unique("search");
    let (_, queue, job) = team_with_job(&w, &team).await;
    assert_eq!(w.drain().await.len(), 1);
    // WHEN the job fails while the table will not give the routes
    let fault = MotoFault::add(json!({"service": "dynamodb", "action": "GetItem",
        "contains": [w.table, "control#routes"], "status": 500, "code": "InternalServerError"}));
    w.bedrock.set(&job, "Failed");
    let _ = w.invoke(&w.monitor(), json!({})).await;
    assert!(fault.hits() > 0, "the routes were read");
    // THEN nothing was published: the notification waits for its routes
    assert!(w.drain().await.is_empty());
    assert!(w.drain_queue(&queue).await.is_empty());
    drop(fault);
    // AND once the table answers, the route and the job topic each hear it once
    w.ok(json!({})).await;
    let got = w.drain_queue(&queue).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body["status"], "Failed");
    let all = w.drain().await;
    assert_eq!(all.len(), 1, "{all:?}");
}

#[tokio::test]
async fn a_name_declared_again_should_start_with_counts_of_its_own() {
    let w = World::new().await;
    let team = unique("search");
    let (topic, _queue, job) = team_with_job(&w, &team).await;
    w.bedrock.set(&job, "Failed");
    w.ok(json!({})).await;
    let route = |l: &Value| l["routes"][0].clone();
    assert_eq!(route(&w.ok(json!({"routes": {}})).await)["delivered"], 1);
    // WHEN the stack is deleted and another declares the name
    let id = format!("route-{team}");
    declare(
        &w,
        &request("Delete", "", &stack(&team), json!({}), Some(&id)),
    )
    .await;
    // (an invocation that published before the delete adds its counts after it)
    use aws_sdk_dynamodb::types::AttributeValue as A;
    w.ddb
        .update_item()
        .table_name(&w.table)
        .key("jobArn", A::S("control#routes".into()))
        .update_expression("ADD #d :n SET #e = :e")
        .expression_attribute_names("#d", format!("delivered#{team}"))
        .expression_attribute_names("#e", format!("lastError#{team}"))
        .expression_attribute_values(":n", A::N("3".into()))
        .expression_attribute_values(":e", A::S("stale".into()))
        .send()
        .await
        .unwrap();
    let again = declare(
        &w,
        &request(
            "Create",
            "",
            &stack("again"),
            json!({"TopicArn": topic, "FilterPolicy": team_policy(&team)}),
            None,
        ),
    )
    .await;
    assert_eq!(again["Status"], "SUCCESS", "{again}");
    // THEN it starts from nothing
    let r = route(&w.ok(json!({"routes": {}})).await);
    assert_eq!(r["declaredBy"]["stackId"], stack("again"));
    assert_eq!(r["delivered"], 0, "{r}");
    assert_eq!(r["lastDelivery"], Value::Null, "{r}");
    assert_eq!(r["lastError"], Value::Null, "{r}");
}
