//! template.yaml and the code agree: every variable the configuration reads is
//! set on the function, and the function's IAM policy allows exactly the AWS
//! actions the adapters call, on named resources.

mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bedrock_batch_monitor::config::Config;
use serde_yaml::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
        .expect("template.yaml is YAML")
}

fn function(t: &Value) -> &Value {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .find(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .expect("a serverless function")
}

/// The names `Config` asks its environment for, observed by calling it.
fn variables_read() -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    Config::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        match name {
            "TABLE_NAME" => Some("jobs".into()),
            "TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:alerts".into()),
            _ => None,
        }
    })
    .expect("config from required values");
    asked.into_inner()
}

#[test]
fn every_variable_the_config_reads_should_be_set_by_the_template_and_no_other() {
    let t = template();
    let vars: BTreeSet<String> = function(&t)["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .expect("Environment.Variables")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(vars, variables_read());
}

/// `snake_case` SDK operation to its IAM action name.
fn action(service: &str, op: &str) -> String {
    // ListObjectsV2 is authorized as s3:ListBucket, not an action of its own
    // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
    if (service, op) == ("s3", "list_objects_v2") {
        return "s3:ListBucket".to_owned();
    }
    let pascal: String = op
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{service}:{pascal}")
}

/// The operations each adapter calls on its SDK client, read from the source:
/// `client.<op>()` or `client(<region>).<op>()`.
fn actions_called() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/adapters");
    let mut out = BTreeSet::new();
    // (file, the name the client goes by there, its service)
    // The DynamoDB adapter is one file per capability: every one of them.
    let mut files: Vec<(String, &str, &str)> = vec![
        ("bedrock.rs".into(), "client", "bedrock"),
        ("bedrock.rs".into(), "s3", "s3"),
        ("bedrock.rs".into(), "quota_service", "servicequotas"),
        ("sns.rs".into(), "client", "sns"),
    ];
    for entry in std::fs::read_dir(dir.join("dynamodb")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            files.push((format!("dynamodb/{name}"), "client", "dynamodb"));
        }
    }
    for (file, needle, service) in files {
        let src: String = std::fs::read_to_string(dir.join(&file))
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<String>()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut rest = src.as_str();
        while let Some(i) = rest.find(needle) {
            rest = &rest[i + needle.len()..];
            let mut s = rest;
            if s.starts_with('(') {
                // skip a balanced argument list: client(job.region())
                let mut depth = 0;
                let end = s
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map(|(j, _)| j + 1)
                    .unwrap_or(s.len());
                s = &s[end..];
            }
            // client(region)?.op()
            let s = s.strip_prefix('?').unwrap_or(s);
            let Some(s) = s.strip_prefix('.') else {
                continue;
            };
            let name: String = s
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && s[name.len()..].starts_with("()") {
                out.insert(action(service, &name));
            }
        }
    }
    out.extend(actions_of_credential_providers());
    out
}

/// The AWS actions the SDK's credential providers make for the code, which no
/// adapter calls by name: a role assumed through `aws-config`'s
/// `AssumeRoleProvider` (a member account's credentials) is `sts:AssumeRole`.
fn actions_of_credential_providers() -> BTreeSet<String> {
    let mut sources = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut out = BTreeSet::new();
    if sources.iter().any(|s| {
        s.lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .any(|l| l.contains("AssumeRoleProvider"))
    }) {
        out.insert("sts:AssumeRole".to_owned());
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(seq) => seq.iter().flat_map(strings).collect(),
        _ => vec![],
    }
}

/// A policy the template adds on a condition (`!If [Cond, policy, !Ref AWS::NoValue]`):
/// the policy itself.
fn when_on(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) if t.tag == "If" => &t.value[1],
        other => other,
    }
}

/// Actions that have no resource type in IAM, so a statement can only name "*".
const NO_RESOURCE_TYPE: [&str; 3] = [
    "bedrock:ListModelInvocationJobs",
    "bedrock:ListFoundationModels",
    "servicequotas:ListServiceQuotas",
];

#[test]
fn the_policy_should_allow_exactly_the_actions_the_code_calls_on_named_resources() {
    let called = actions_called();
    assert!(
        called.contains("bedrock:GetModelInvocationJob"),
        "scan found {called:?}"
    );
    assert!(
        called.contains("sns:Publish") && called.contains("dynamodb:UpdateItem"),
        "scan found {called:?}"
    );
    assert!(
        called.contains("bedrock:ListModelInvocationJobs") && called.contains("s3:GetObject"),
        "scan found {called:?}"
    );

    let t = template();
    let mut allowed = BTreeSet::new();
    for policy in function(&t)["Properties"]["Policies"]
        .as_sequence()
        .expect("Policies")
    {
        let policy = when_on(policy);
        for st in policy["Statement"]
            .as_sequence()
            .expect("inline policy statements")
        {
            assert_eq!(st["Effect"].as_str(), Some("Allow"));
            for a in strings(&st["Action"]) {
                assert!(!a.contains('*'), "wildcard action {a}");
                // KMS is how SNS encrypts; the code never calls it directly.
                if !a.starts_with("kms:") {
                    allowed.insert(a);
                }
            }
            let resource = &st["Resource"];
            assert!(!resource.is_null(), "statement without Resource: {st:?}");
            let only_unscoped = strings(&st["Action"])
                .iter()
                .all(|a| NO_RESOURCE_TYPE.contains(&a.as_str()));
            assert!(
                only_unscoped || !strings(resource).iter().any(|r| r == "*"),
                "statement on every resource: {st:?}"
            );
        }
    }
    assert_eq!(
        allowed, called,
        "template policy vs. SDK calls in src/adapters"
    );
}

#[test]
fn the_security_page_should_list_the_functions_permissions_action_by_action() {
    // Every action of the function's policies, and `*` only where the page says.
    let t = template();
    let mut allowed: BTreeSet<String> = BTreeSet::new();
    let mut unscoped: BTreeSet<String> = BTreeSet::new();
    // Each statement's actions, as one row of the page lists them.
    let mut statements: Vec<BTreeSet<String>> = Vec::new();
    for policy in function(&t)["Properties"]["Policies"]
        .as_sequence()
        .expect("Policies")
    {
        for st in when_on(policy)["Statement"]
            .as_sequence()
            .expect("statements")
        {
            let actions = strings(&st["Action"]);
            if strings(&st["Resource"]).iter().any(|r| r == "*") {
                unscoped.extend(actions.iter().cloned());
            }
            statements.push(actions.iter().cloned().collect());
            allowed.extend(actions);
        }
    }
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md"))
            .expect("docs/security.md");
    let rows: Vec<&str> = page
        .lines()
        .skip_while(|l| !l.starts_with("| actions | resource | why |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let mut documented: BTreeSet<String> = BTreeSet::new();
    let mut documented_unscoped: BTreeSet<String> = BTreeSet::new();
    let mut documented_rows: Vec<BTreeSet<String>> = Vec::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let actions: Vec<String> = cells[1]
            .split('`')
            .filter(|a| a.contains(':') && !a.contains(' '))
            .map(str::to_owned)
            .collect();
        if cells[2] == "`*`" {
            documented_unscoped.extend(actions.iter().cloned());
        }
        documented_rows.push(actions.iter().cloned().collect());
        documented.extend(actions);
    }
    // One row a statement: an action granted twice, for two reasons (kms:Decrypt
    // for the topic and for the manifests), is said twice.
    statements.sort();
    documented_rows.sort();
    assert_eq!(
        documented_rows, statements,
        "docs/security.md's rows vs. the function's policy statements"
    );
    assert_eq!(
        documented, allowed,
        "docs/security.md vs. the function's policies"
    );
    assert_eq!(
        documented_unscoped, unscoped,
        "the `*` resources, as documented"
    );
}

#[test]
fn the_bedrock_permission_should_be_limited_to_batch_inference_jobs() {
    let t = template();
    let text = serde_yaml::to_string(&function(&t)["Properties"]["Policies"]).unwrap();
    assert!(text.contains(":model-invocation-job/*"), "{text}");
}

#[test]
fn the_configuration_page_should_list_exactly_the_variables_the_config_reads() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let section = page
        .split("\n## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/configuration.md has a Configuration section");
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, variables_read());

    // The page's defaults, and what each setting does with a value the
    // function cannot use, are the config's: one table, read the way the
    // page reads (`32`, or nothing/(none) for no default).
    let settings: BTreeSet<(String, String, String)> = bedrock_batch_monitor::config::SETTINGS
        .iter()
        .map(|s| {
            (
                s.name.to_owned(),
                s.default.unwrap_or_default().to_owned(),
                s.if_unusable.to_owned(),
            )
        })
        .collect();
    let rows: BTreeSet<(String, String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            let default = cells[3].trim_matches('`');
            let default = if default == "(none)" { "" } else { default };
            (name, default.to_owned(), cells[5].to_owned())
        })
        .collect();
    assert_eq!(
        rows, settings,
        "docs/configuration.md and config::SETTINGS disagree"
    );

    // Each documented SAM parameter exists in the template.
    let t = template();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let last = line
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap()
            .trim();
        if let Some(param) = last.strip_prefix('`').and_then(|p| p.strip_suffix('`')) {
            assert!(
                t["Parameters"][param].is_mapping(),
                "docs/configuration.md names parameter {param}, the template has none"
            );
        }
    }
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap().to_owned(), r))
        .collect()
}

/// The logical id a `!Ref X` names.
fn ref_target(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" || t.tag == "!Ref" => {
            t.value.as_str().map(str::to_owned)
        }
        Value::Mapping(m) => m
            .get(Value::String("Ref".into()))
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

#[test]
fn every_alarm_should_reach_the_operations_topic_and_say_in_one_line_what_it_means() {
    let t = template();
    let alarms = resources_of_type(&t, "AWS::CloudWatch::Alarm");
    assert!(
        alarms.len() >= 5,
        "{:?}",
        alarms.iter().map(|a| &a.0).collect::<Vec<_>>()
    );
    for (id, alarm) in alarms {
        let p = &alarm["Properties"];
        let actions: Vec<Option<String>> = p["AlarmActions"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id} has no AlarmActions"))
            .iter()
            .map(ref_target)
            .collect();
        assert_eq!(actions, [Some("OpsTopic".to_owned())], "{id}");
        let description = p["AlarmDescription"].as_str().unwrap_or_default();
        assert!(
            !description.is_empty() && !description.contains('\n'),
            "{id}: {description:?}"
        );
    }
}

#[test]
fn the_operations_topic_should_be_encrypted_and_reach_the_alert_email_unfiltered() {
    let t = template();
    let ops = &t["Resources"]["OpsTopic"];
    assert_eq!(ops["Type"].as_str(), Some("AWS::SNS::Topic"));
    assert_eq!(
        ref_target(&ops["Properties"]["KmsMasterKeyId"]).as_deref(),
        Some("EncryptionKey")
    );
    let email = resources_of_type(&t, "AWS::SNS::Subscription")
        .into_iter()
        .find(|(_, s)| ref_target(&s["Properties"]["TopicArn"]).as_deref() == Some("OpsTopic"))
        .expect("a subscription on the operations topic");
    let p = &email.1["Properties"];
    assert_eq!(p["Protocol"].as_str(), Some("email"));
    assert_eq!(ref_target(&p["Endpoint"]).as_deref(), Some("AlertEmail"));
    assert!(
        p["FilterPolicy"].is_null(),
        "the operator's email is filtered"
    );
}

/// The EMF document the function writes by default (`METRICS` unset), and
/// the metric names it declares.
fn default_metrics_document() -> (serde_json::Value, BTreeSet<String>) {
    use bedrock_batch_monitor::adapters::metrics::EmfMetrics;
    use bedrock_batch_monitor::config::{Config, MetricSet};
    use bedrock_batch_monitor::ports::{InvocationReport, MetricsSink};
    use std::sync::{Arc, Mutex};

    let default = Config::from_lookup(|k| match k {
        "TABLE_NAME" => Some("jobs".to_owned()),
        "TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:alerts".to_owned()),
        _ => None,
    })
    .unwrap()
    .metrics;
    assert_eq!(default, MetricSet::Lean);
    let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
    let report = InvocationReport {
        oldest_pending_age: Some(std::time::Duration::from_secs(1)),
        ..InvocationReport::default()
    };
    EmfMetrics::with_output("Ns", "fn", buffer.clone())
        .with_set(default)
        .emit(&report);
    let doc: serde_json::Value = serde_json::from_slice(&buffer.lock().unwrap()).unwrap();
    let written = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .collect();
    (doc, written)
}

#[test]
fn each_alarm_on_the_functions_metrics_should_watch_a_default_metric() {
    let (_, written) = default_metrics_document();

    let t = template();
    let mut watched = BTreeSet::new();
    for (id, alarm) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        let p = &alarm["Properties"];
        if ref_target(&p["Namespace"]).as_deref() == Some("MetricsNamespace") {
            let metric = p["MetricName"].as_str().unwrap().to_owned();
            assert!(
                written.contains(&metric),
                "{id} watches {metric}, not written: {written:?}"
            );
            watched.insert(metric);
        }
    }
    for needed in [
        "OldestPendingNotificationAge",
        "Undeliverable",
        "BedrockErrors",
    ] {
        assert!(watched.contains(needed), "no alarm on {needed}");
    }
}

#[test]
fn the_runbook_should_name_every_alarm() {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operating.md"))
            .unwrap();
    let runbook = page
        .split("\n## Runbook")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/operating.md has a Runbook section");
    let t = template();
    for (id, _) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        assert!(
            runbook.contains(&format!("### `{id}`")),
            "the runbook has no entry for {id}"
        );
    }
}

#[test]
fn the_manifest_permission_should_name_exactly_the_output_buckets() {
    let t = template();
    let policies = function(&t)["Properties"]["Policies"]
        .as_sequence()
        .unwrap();
    let text: Vec<String> = policies
        .iter()
        .filter(|p| matches!(p, Value::Tagged(_)))
        .map(|p| serde_yaml::to_string(p).unwrap())
        .collect();
    let manifests: Vec<&String> = text.iter().filter(|p| p.contains("s3:GetObject")).collect();
    assert_eq!(manifests.len(), 1, "{text:?}");
    let p = manifests[0];
    assert!(
        p.contains("HasOutputBuckets") && p.contains("OutputBuckets"),
        "{p}"
    );
    assert!(!p.contains("s3:::*"), "no bucket wildcard: {p}");
}

/// The value of a template expression for a stack whose parameters and
/// pseudo parameters are `refs` and whose conditions are `cond`: the
/// intrinsic functions the function's policies use (Ref, Sub, Join, Split, If).
fn evaluate(
    v: &Value,
    refs: &BTreeMap<&str, &str>,
    cond: &dyn Fn(&str) -> bool,
) -> serde_json::Value {
    use serde_json::Value as J;
    let text = |v: &Value| match evaluate(v, refs, cond) {
        J::String(s) => s,
        other => panic!("not a string: {other}"),
    };
    let list = |v: &Value| match evaluate(v, refs, cond) {
        J::Array(items) => items
            .into_iter()
            .map(|i| i.as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        other => panic!("not a list: {other}"),
    };
    let substitute = |template: &str, vars: &BTreeMap<String, String>| {
        let mut out = template.to_owned();
        for (k, val) in vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(refs.iter().map(|(k, v)| (*k, *v)))
        {
            out = out.replace(&format!("${{{k}}}"), val);
        }
        assert!(!out.contains("${"), "unresolved: {out}");
        out
    };
    match v {
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => J::Array(items.iter().map(|i| evaluate(i, refs, cond)).collect()),
        Value::Mapping(m) => J::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), evaluate(v, refs, cond)))
                .collect(),
        ),
        Value::Tagged(t) => match t.tag.to_string().trim_start_matches('!') {
            "Ref" => J::String(
                refs.get(t.value.as_str().unwrap())
                    .unwrap_or_else(|| panic!("no value for {:?}", t.value))
                    .to_string(),
            ),
            "If" => {
                let branch = if cond(t.value[0].as_str().unwrap()) {
                    &t.value[1]
                } else {
                    &t.value[2]
                };
                evaluate(branch, refs, cond)
            }
            "Join" => J::String(list(&t.value[1]).join(t.value[0].as_str().unwrap())),
            "Split" => {
                let sep = t.value[0].as_str().unwrap();
                J::Array(
                    text(&t.value[1])
                        .split(sep)
                        .map(|p| J::String(p.to_owned()))
                        .collect(),
                )
            }
            "Sub" => match &t.value {
                Value::String(template) => J::String(substitute(template, &BTreeMap::new())),
                Value::Sequence(parts) => {
                    let vars = parts[1]
                        .as_mapping()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.as_str().unwrap().to_owned(), text(v)))
                        .collect();
                    J::String(substitute(parts[0].as_str().unwrap(), &vars))
                }
                other => panic!("Sub of {other:?}"),
            },
            other => panic!("no evaluation of !{other}"),
        },
        other => panic!("no evaluation of {other:?}"),
    }
}

#[test]
fn manifests_under_a_customer_key_may_be_decrypted_only_through_s3_in_the_regions_watched() {
    let t = template();
    let policy = function(&t)["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| serde_yaml::to_string(p).unwrap().contains("s3:GetObject"))
        .expect("the manifests' policy");
    // Only with OutputBuckets: the same policy as s3:GetObject on them.
    let Value::Tagged(on) = policy else {
        panic!("the manifests' policy is not conditional: {policy:?}")
    };
    assert_eq!(on.value[0].as_str(), Some("HasOutputBuckets"));
    let statements = on.value[1]["Statement"].as_sequence().unwrap();
    let decrypt: Vec<&Value> = statements
        .iter()
        .filter(|st| strings(&st["Action"]).iter().any(|a| a.starts_with("kms:")))
        .collect();
    assert_eq!(decrypt.len(), 1, "{statements:?}");
    let st = decrypt[0];
    assert_eq!(strings(&st["Action"]), ["kms:Decrypt"]);
    let conditions = st["Condition"].as_mapping().expect("a condition");
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    let via = &st["Condition"]["StringEquals"]["kms:ViaService"];
    assert!(!via.is_null(), "{:?}", st["Condition"]);

    for (partition, suffix, discovery, want) in [
        (
            "aws",
            "amazonaws.com",
            "",
            vec!["s3.eu-central-1.amazonaws.com"],
        ),
        (
            "aws",
            "amazonaws.com",
            "us-west-2,ap-south-1",
            vec![
                "s3.eu-central-1.amazonaws.com",
                "s3.us-west-2.amazonaws.com",
                "s3.ap-south-1.amazonaws.com",
            ],
        ),
        (
            "aws-cn",
            "amazonaws.com.cn",
            "cn-northwest-1",
            vec![
                "s3.cn-north-1.amazonaws.com.cn",
                "s3.cn-northwest-1.amazonaws.com.cn",
            ],
        ),
    ] {
        let region = if partition == "aws-cn" {
            "cn-north-1"
        } else {
            "eu-central-1"
        };
        let refs = BTreeMap::from([
            ("AWS::Region", region),
            ("AWS::URLSuffix", suffix),
            ("AWS::Partition", partition),
            ("DiscoveryRegions", discovery),
        ]);
        let cond = |c: &str| match c {
            "HasDiscoveryRegions" => !discovery.is_empty(),
            "IsAwsCn" => partition == "aws-cn",
            "IsAwsUsGov" => partition == "aws-us-gov",
            other => panic!("condition {other} in the ViaService values"),
        };
        assert_eq!(
            evaluate(via, &refs, &cond),
            serde_json::json!(want),
            "{partition} with DiscoveryRegions {discovery:?}"
        );
        let resource = evaluate(&st["Resource"], &refs, &cond);
        assert_eq!(
            resource,
            serde_json::json!(format!("arn:{partition}:kms:*:*:key/*")),
            "keys only, never \"*\""
        );
    }
}

/// Resolves `!If [Cond, a, b]` (nested) for the given condition values.
fn resolve<'a>(v: &'a Value, cond: &dyn Fn(&str) -> bool) -> &'a Value {
    match v {
        Value::Tagged(t) if t.tag == "If" => {
            let branch = if cond(t.value[0].as_str().unwrap()) {
                &t.value[1]
            } else {
                &t.value[2]
            };
            resolve(branch, cond)
        }
        other => other,
    }
}

#[test]
fn the_poll_schedules_should_split_the_shards_between_them_for_each_setting() {
    use bedrock_batch_monitor::event::{Command, parse};
    let t = template();
    for schedules in [1u32, 2, 4] {
        let cond = |name: &str| match name {
            "SplitPolling" => schedules != 1,
            "FourSchedules" => schedules == 4,
            other => panic!("unexpected condition {other}"),
        };
        let mut inputs: Vec<String> = vec![
            resolve(
                &function(&t)["Properties"]["Events"]["Poll"]["Properties"]["Input"],
                &cond,
            )
            .as_str()
            .unwrap()
            .to_owned(),
        ];
        for (name, r) in t["Resources"].as_mapping().unwrap() {
            if r["Type"].as_str() != Some("AWS::Scheduler::Schedule") {
                continue;
            }
            // The digest has a schedule of its own.
            if r["Condition"].as_str() == Some("HasDigest") {
                continue;
            }
            if r["Condition"].as_str().is_some_and(|c| !cond(c)) {
                continue;
            }
            let input = resolve(&r["Properties"]["Target"]["Input"], &cond);
            inputs.push(
                input
                    .as_str()
                    .unwrap_or_else(|| panic!("{name:?}"))
                    .to_owned(),
            );
        }
        assert_eq!(inputs.len() as u32, schedules, "{inputs:?}");
        let mut covered: Vec<u32> = Vec::new();
        for input in &inputs {
            let event: serde_json::Value = serde_json::from_str(input).unwrap();
            match parse(&event).unwrap() {
                Command::Poll(None) => {
                    covered.extend(0..bedrock_batch_monitor::domain::POLL_SHARDS)
                }
                Command::Poll(Some(shards)) => covered.extend(shards),
                other => panic!("{input} is not a poll: {other:?}"),
            }
        }
        covered.sort_unstable();
        let all: Vec<u32> = (0..bedrock_batch_monitor::domain::POLL_SHARDS).collect();
        assert_eq!(covered, all, "PollSchedules={schedules}: {inputs:?}");
    }
}

fn table(t: &Value) -> &Value {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .find(|r| r["Type"].as_str() == Some("AWS::DynamoDB::Table"))
        .unwrap()
}

/// Every index definition in any branch of the table's `!If`s.
fn every_index(v: &Value) -> Vec<&Value> {
    match v {
        Value::Tagged(t) if t.tag == "If" => t.value.as_sequence().unwrap()[1..]
            .iter()
            .flat_map(every_index)
            .collect(),
        Value::Sequence(s) => s.iter().collect(),
        other => panic!("GlobalSecondaryIndexes is neither a list nor an !If: {other:?}"),
    }
}

fn released() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/released-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("tests/released-schema.json"))
        .expect("released-schema.json is JSON")
}

fn as_json(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).expect("YAML to JSON")
}

#[test]
fn the_index_of_ends_should_project_what_list_and_the_digest_show_and_no_history() {
    let t = template();
    let indexes = support_indexes(&table(&t)["Properties"]["GlobalSecondaryIndexes"]);
    let index = indexes
        .iter()
        .find(|i| {
            i["IndexName"].as_str() == Some(bedrock_batch_monitor::adapters::dynamodb::ENDED_INDEX)
        })
        .expect("the index of ends is deployed by default");
    let keys: Vec<(String, String)> = index["KeySchema"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("endedIn".to_owned(), "HASH".to_owned()),
            ("endedAt".to_owned(), "RANGE".to_owned())
        ]
    );
    let projected: BTreeSet<String> = strings(&index["Projection"]["NonKeyAttributes"])
        .into_iter()
        .collect();
    let read: BTreeSet<String> = bedrock_batch_monitor::adapters::dynamodb::ENDED_INDEX_ATTRIBUTES
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert_eq!(projected, read);
    assert!(!projected.contains("history") && !projected.contains("outbox"));
    // Every branch of the upgrade's !If deploys it, so a stack gets it in
    // whichever step it is (one index added per update).
    for branch in every_index(&table(&t)["Properties"]["GlobalSecondaryIndexes"])
        .iter()
        .filter(|i| i["IndexName"].as_str() == Some("ended-index"))
    {
        assert_eq!(*branch, index);
    }
}

#[test]
fn the_work_index_should_project_exactly_what_a_poll_reads_from_it() {
    let t = template();
    let indexes = support_indexes(&table(&t)["Properties"]["GlobalSecondaryIndexes"]);
    let index = indexes
        .iter()
        .find(|i| {
            i["IndexName"].as_str() == Some(bedrock_batch_monitor::adapters::dynamodb::WORK_INDEX)
        })
        .expect("the work index is deployed by default");
    assert_eq!(
        index["Projection"]["ProjectionType"].as_str(),
        Some("INCLUDE")
    );
    let projected: BTreeSet<String> = strings(&index["Projection"]["NonKeyAttributes"])
        .into_iter()
        .collect();
    let read: BTreeSet<String> = bedrock_batch_monitor::adapters::dynamodb::WORK_INDEX_ATTRIBUTES
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    assert_eq!(projected, read);
    assert!(
        !projected.contains("history"),
        "the history is never listed"
    );
}

/// The default deployment's indexes (the last branch of each `!If`).
fn support_indexes(v: &Value) -> Vec<Value> {
    match v {
        Value::Tagged(t) if t.tag == "If" => support_indexes(&t.value[2]),
        Value::Sequence(s) => s.clone(),
        other => panic!("GlobalSecondaryIndexes is neither a list nor an !If: {other:?}"),
    }
}

#[test]
fn the_table_keys_and_indexes_should_match_what_was_released() {
    let t = template();
    let props = &table(&t)["Properties"];
    let record = released();
    // The key schema cannot change on a table that exists.
    assert_eq!(as_json(&props["KeySchema"]), record["keySchema"]);
    // A released attribute keeps its type; a new index may add attributes.
    let defined = as_json(&props["AttributeDefinitions"]);
    for released in record["attributeDefinitions"].as_array().unwrap() {
        assert!(
            defined.as_array().unwrap().contains(released),
            "the released attribute definition {released} changed or went"
        );
    }
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operating.md"))
            .expect("docs/operating.md");
    let upgrading = page
        .split("\n## ")
        .find(|s| s.starts_with("Upgrading"))
        .expect("docs/operating.md has an Upgrading section");
    for index in every_index(&props["GlobalSecondaryIndexes"]) {
        let name = index["IndexName"].as_str().expect("IndexName");
        let mut definition = as_json(index);
        definition.as_object_mut().unwrap().remove("IndexName");
        match record["indexes"][name].as_array() {
            // A released name keeps a definition it was released with: CloudFormation
            // refuses to change an index in place on an existing stack.
            Some(known) => assert!(
                known.contains(&definition),
                "index {name} changed its definition: give the new one a new name, keep {name} \
                 for the upgrade, and say in docs/operating.md's Upgrading section what sam deploy does"
            ),
            None => assert!(
                upgrading.contains(name),
                "index {name} is new: docs/operating.md's Upgrading section must say what sam deploy does with it, \
                 and tests/released-schema.json records it once released"
            ),
        }
    }
}

// ------------------------------------------------------------ issue 15

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    &t["Resources"][id]
}

/// Follows a custom action variable's path (`event.a.b`) into a rendered
/// custom notification: `event` is the notification itself.
fn variable_in<'a>(
    path: &str,
    notification: &'a serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let mut at = notification;
    let mut parts = path.split('.');
    assert_eq!(parts.next(), Some("event"), "{path}");
    for p in parts {
        at = at.get(p)?;
    }
    Some(at)
}

fn running_transition(status: &str) -> bedrock_batch_monitor::domain::Transition {
    use bedrock_batch_monitor::domain::{JobSnapshot, JobStatus, Transition, TransitionKind};
    let now = chrono::Utc::now();
    let arn: bedrock_batch_monitor::domain::JobArn =
        "arn:aws:bedrock:eu-west-1:123456789012:model-invocation-job/abcdefghwxyz"
            .parse()
            .unwrap();
    Transition {
        id: "t".into(),
        kind: TransitionKind::StatusChanged,
        version: 2,
        previous: Some(JobStatus::Scheduled),
        job: JobSnapshot {
            job_arn: arn,
            job_name: Some("nightly".into()),
            model_id: None,
            status: JobStatus::parse(status),
            message: None,
            submit_time: Some(now),
            last_modified_time: Some(now),
            end_time: None,
            records: None,
            input_s3_uri: None,
            output_s3_uri: None,
            job_expiration_time: None,
        },
        observed_at: now,
        phases: vec![],
        labels: Default::default(),
        warning: None,
        tokens: None,
        cost: None,
        record_errors: None,
        eta: None,
    }
}

#[test]
fn the_stop_button_should_invoke_the_stop_alias_for_the_job_of_its_notification_only_while_stoppable()
 {
    use bedrock_batch_monitor::render::notification::{StopVia, chatbot_json, chatbot_json_for};
    let t = template();
    let action = resource(&t, "StopJobAction");
    assert_eq!(action["Type"].as_str(), Some("AWS::Chatbot::CustomAction"));
    assert_eq!(action["Condition"].as_str(), Some("HasSlackActions"));
    let command = action["Properties"]["Definition"]["CommandText"]
        .as_str()
        .unwrap();
    assert!(command.len() <= 100, "{} characters", command.len());
    // The payload is the function's own `stop` command, with the job's ARN.
    let payload = command
        .split_once("--payload ")
        .map(|(_, p)| {
            p.split_whitespace()
                .next()
                .unwrap()
                .replace("$jobArn", "ARN")
        })
        .expect("a payload");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
        serde_json::json!({"stop": "ARN"}),
        "{command}"
    );
    assert!(
        command.starts_with("lambda invoke --function-name $stopFn --region $stopRegion "),
        "{command}"
    );
    let attachment = &action["Properties"]["Attachments"][0];
    assert_eq!(attachment["NotificationType"].as_str(), Some("Custom"));
    assert_eq!(attachment["ButtonText"].as_str(), Some("Stop job"));
    let vars = attachment["Variables"].as_mapping().unwrap();
    assert!(vars.len() <= 5, "at most 5 variables: {vars:?}");
    // Every $variable of the command is bound.
    let mut words: Vec<String> = command
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '$'))
        .filter(|w| w.starts_with('$'))
        .map(|w| w[1..].to_owned())
        .collect();
    words.dedup();
    assert_eq!(words.len(), 3, "{words:?}");
    // No variable's name begins another's: however Amazon Q substitutes
    // ($stop before $stopFn, say), each finds its own value.
    let names: Vec<String> = vars
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for a in &names {
        for b in &names {
            assert!(a == b || !b.starts_with(a.as_str()), "${a} begins ${b}");
        }
    }
    for word in &words {
        assert!(
            vars.contains_key(Value::String(word.clone())),
            "${word} unbound"
        );
    }
    // Each binding finds the value the function wrote, in a notification of
    // a running job, from a monitor that knows its stop alias.
    let via = StopVia::of("arn:aws:sns:us-east-1:123456789012:alerts", "prod-monitor").unwrap();
    let running = chatbot_json_for(&running_transition("InProgress"), Some(&via));
    let ended = chatbot_json_for(&running_transition("Completed"), Some(&via));
    let bound = |name: &str, n: &serde_json::Value| {
        let path = vars[Value::String(name.into())]
            .as_str()
            .unwrap()
            .to_owned();
        variable_in(&path, n)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        bound("jobArn", &running).as_deref(),
        Some("arn:aws:bedrock:eu-west-1:123456789012:model-invocation-job/abcdefghwxyz")
    );
    // The function's alias in the function's region, not the job's.
    assert_eq!(
        bound("stopFn", &running).as_deref(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:prod-monitor:stop")
    );
    assert_eq!(bound("stopRegion", &running).as_deref(), Some("us-east-1"));
    // The criteria: shown where every one holds, and so only while stoppable.
    let shown = |n: &serde_json::Value| {
        attachment["Criteria"]
            .as_sequence()
            .unwrap()
            .iter()
            .all(|c| {
                let value = bound(c["VariableName"].as_str().unwrap(), n);
                match c["Operator"].as_str().unwrap() {
                    "EQUALS" => value.as_deref() == c["Value"].as_str(),
                    "HAS_VALUE" => value.is_some_and(|v| !v.is_empty()),
                    other => panic!("operator {other}"),
                }
            })
    };
    assert!(shown(&running));
    assert!(!shown(&ended), "no Stop job button on an ended job");
    assert!(!shown(&chatbot_json_for(
        &running_transition("Stopping"),
        Some(&via)
    )));
    // Without an alias to invoke, no button.
    assert!(!shown(&chatbot_json(&running_transition("InProgress"))));
    // The alias the button invokes: the function's, at $LATEST, named `stop`
    // as the function knows it.
    let alias = resource(&t, "StopAlias");
    assert_eq!(alias["Type"].as_str(), Some("AWS::Lambda::Alias"));
    assert_eq!(alias["Condition"].as_str(), Some("HasSlackActions"));
    assert_eq!(
        alias["Properties"]["Name"].as_str(),
        Some(bedrock_batch_monitor::config::STOP_ALIAS)
    );
    assert_eq!(
        alias["Properties"]["FunctionVersion"].as_str(),
        Some("$LATEST")
    );
    assert_eq!(
        ref_target(&alias["Properties"]["FunctionName"]).as_deref(),
        Some("MonitorFunction")
    );
    // The channel offers it only with SlackActions on.
    let channel = &resource(&t, "SlackChannel")["Properties"];
    let arns = resolve(&channel["CustomizationResourceArns"], &|c| {
        c == "HasSlackActions"
    });
    assert!(format!("{arns:?}").contains("StopJobAction"), "{arns:?}");
    let params = &t["Parameters"];
    assert_eq!(params["SlackActions"]["Default"].as_str(), Some("true"));
}

#[test]
fn the_slack_channel_may_invoke_the_stop_alias_and_nothing_else() {
    let t = template();
    let policy = resource(&t, "StopJobPolicy");
    assert_eq!(policy["Type"].as_str(), Some("AWS::IAM::ManagedPolicy"));
    let statements = policy["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"].as_str(), Some("Allow"));
    assert_eq!(strings(&s["Action"]), ["lambda:InvokeFunction"]);
    // The alias alone: not the function, whose other commands track,
    // untrack and poll.
    assert_eq!(ref_target(&s["Resource"]).as_deref(), Some("StopAlias"));
    let role = &resource(&t, "SlackChannelRole")["Properties"];
    assert!(role.get("Policies").is_none(), "no inline permissions");
    let managed = resolve(&role["ManagedPolicyArns"], &|c| c == "HasSlackActions");
    assert_eq!(
        managed
            .as_sequence()
            .map(|m| m.iter().filter_map(ref_target).collect::<Vec<_>>()),
        Some(vec!["StopJobPolicy".to_owned()])
    );
    let channel = &resource(&t, "SlackChannel")["Properties"];
    let guardrail = resolve(&channel["GuardrailPolicies"], &|c| c == "HasSlackActions");
    assert_eq!(
        guardrail
            .as_sequence()
            .map(|m| m.iter().filter_map(ref_target).collect::<Vec<_>>()),
        Some(vec!["StopJobPolicy".to_owned()])
    );
    // Without the buttons the role grants nothing.
    let off = resolve(&role["ManagedPolicyArns"], &|_| false);
    assert!(
        ref_target(off).as_deref() == Some("AWS::NoValue"),
        "{off:?}"
    );
}

#[test]
fn the_dashboard_should_chart_only_default_metrics_and_show_every_alarm() {
    let (doc, written) = default_metrics_document();

    let t = template();
    let dashboard = resource(&t, "Dashboard");
    assert_eq!(
        dashboard["Type"].as_str(),
        Some("AWS::CloudWatch::Dashboard")
    );
    let Value::Tagged(sub) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is a !Sub");
    };
    let body_text = sub.value[0].as_str().unwrap();
    assert_eq!(
        ref_target(&sub.value[1]["Ns"]).as_deref(),
        Some("MetricsNamespace")
    );
    // The body is JSON once CloudFormation substitutes it.
    let body: serde_json::Value = serde_json::from_str(body_text).expect("the body is JSON");
    let mut charted = BTreeSet::new();
    let mut titles = Vec::new();
    for w in body["widgets"].as_array().unwrap() {
        titles.push(w["properties"]["title"].as_str().unwrap().to_owned());
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            if m[0] == "${Ns}" {
                let name = m[1].as_str().unwrap();
                assert!(
                    written.contains(name),
                    "{name} is charted but not written: {written:?}"
                );
                charted.insert(name.to_owned());
            }
        }
    }
    for needed in bedrock_batch_monitor::adapters::metrics::LEAN_METRICS {
        assert!(charted.contains(needed), "{needed} not on the dashboard");
    }
    // The counts that are not metrics by default are charted from the
    // documents' properties, with Logs Insights: each name one the EMF
    // document carries.
    let queries: Vec<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "log")
        .map(|w| w["properties"]["query"].as_str().unwrap().to_owned())
        .collect();
    for property in [
        "BedrockGetCalls",
        "BedrockListCalls",
        "BedrockErrorsThrottling",
        "Deferred",
    ] {
        assert!(
            doc.get(property).is_some(),
            "{property} is not in the document: {doc}"
        );
        assert!(
            queries
                .iter()
                .any(|q| q.contains(&format!("sum({property})"))),
            "{property} is not charted: {queries:?}"
        );
    }
    let alarms: BTreeSet<String> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, _)| format!("${{{id}.Arn}}"))
        .collect();
    let shown: BTreeSet<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(shown, alarms, "every alarm, and only alarms that exist");
    assert!(
        queries.iter().any(|q| q.contains("error_kind")),
        "a Logs Insights widget of the latest per-job failures: {queries:?}"
    );
}

/// Every balanced `{...}` in `text` that is JSON, with the text after it.
fn json_examples(text: &str) -> Vec<(serde_json::Value, String)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let mut next = i + 1;
        if bytes[i] == b'{' {
            let mut depth = 0;
            let end = (i..bytes.len()).find(|&j| {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
                depth == 0
            });
            if let Some(j) = end
                && let Ok(v) = serde_json::from_str(&text[i..=j])
            {
                out.push((v, text[j + 1..].to_owned()));
                next = j + 1;
            }
        }
        i = next;
    }
    out
}

/// docs/notifications.md's filter-policy recipes: what a subscriber wants -> policy.
fn recipes() -> BTreeMap<String, serde_json::Value> {
    support::documented_recipes()
        .into_iter()
        .map(|(label, policy)| {
            let v = serde_json::from_str(&policy).unwrap_or_else(|e| panic!("{policy}: {e}"));
            (label, v)
        })
        .collect()
}

#[test]
fn filter_policy_examples_should_mean_the_same_in_the_template_the_readme_and_the_docs() {
    let recipes = recipes();
    assert!(recipes.len() >= 8, "{recipes:?}");
    for (label, policy) in &recipes {
        bedrock_batch_monitor::filter_policy::FilterPolicy::parse(&policy.to_string())
            .unwrap_or_else(|e| panic!("recipe {label:?} cannot be evaluated: {e}"));
    }
    let mut seen = 0;
    // The template's parameter texts: "<policy> for <what a subscriber wants>".
    let t = template();
    for (name, param) in t["Parameters"].as_mapping().unwrap() {
        let text = param["Description"].as_str().unwrap_or_default();
        for (policy, after) in json_examples(text) {
            let label = after
                .trim_start()
                .strip_prefix("for ")
                .unwrap_or_else(|| panic!("{name:?}: say what {policy} is for"));
            let label = label.split([',', '.', '(']).next().unwrap().trim();
            assert_eq!(
                recipes.get(label),
                Some(&policy),
                "{name:?}: {policy} for {label:?}"
            );
            seen += 1;
        }
        // "<list> for <what a subscriber wants>": the list lets through what the recipe does.
        let words: Vec<&str> = text.split_whitespace().collect();
        for pair in words.windows(2) {
            let list = pair[0];
            let is_list = list
                .split(',')
                .all(|w| bedrock_batch_monitor::filter_policy::LIST_WORDS.contains(&w));
            if !is_list || pair[1] != "for" {
                continue;
            }
            let after = text.split(&format!("{list} for ")).nth(1).unwrap();
            let label = after.split([',', '.', '(']).next().unwrap().trim();
            let recipe = recipes
                .get(label)
                .unwrap_or_else(|| panic!("{name:?}: {list} for {label:?}: no such recipe"));
            assert_same_messages(list, &recipe.to_string());
            seen += 1;
        }
    }
    // The Slack default (a list) lets through what the recipe it says it is
    // lets through, and is the function's own default.
    let slack_default = t["Parameters"]["SlackFilterPolicy"]["Default"]
        .as_str()
        .unwrap();
    assert_eq!(
        slack_default,
        bedrock_batch_monitor::config::DEFAULT_SLACK_FILTER_POLICY
    );
    assert_same_messages(
        slack_default,
        &recipes["failures, warnings, ends and the digest"].to_string(),
    );
    // docs/notifications.md's list form of each recipe lets through what its JSON does.
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/notifications.md"),
    )
    .unwrap();
    let mut lists = 0;
    for row in page.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() == 3
            && let Some(json) = recipes.get(cells[0])
            && let Some(list) = cells[2].strip_prefix('`').and_then(|c| c.strip_suffix('`'))
        {
            assert_same_messages(list, &json.to_string());
            lists += 1;
        }
    }
    assert!(lists >= 6, "list forms found: {lists}");
    // The README: "<what a subscriber wants> (is) `<policy>`".
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let readme = readme.replace('\n', " ");
    for part in readme.split('`').collect::<Vec<_>>().windows(2) {
        let Ok(policy) = serde_json::from_str::<serde_json::Value>(part[1]) else {
            continue;
        };
        // A filter policy: an object whose every value is a list (not a command).
        let is_policy = policy
            .as_object()
            .is_some_and(|o| !o.is_empty() && o.values().all(serde_json::Value::is_array));
        if !is_policy {
            continue;
        }
        let before = part[0].trim_end().trim_end_matches(" is");
        let label = before.rsplit([':', ',', '.']).next().unwrap().trim();
        assert_eq!(
            recipes.get(label),
            Some(&policy),
            "README: {policy} for {label:?}"
        );
        seen += 1;
    }
    assert!(seen >= 5, "the examples found: {seen}");
}

/// Discovery's scope and the ways to cover a second region are said the same
/// way in the template's parameter texts, the README and docs/: the stack's
/// region and `DiscoveryRegions`, nothing account-wide.
#[test]
fn discovery_scope_and_regions_should_be_said_the_same_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| {
        std::fs::read_to_string(root.join(p))
            .unwrap()
            .replace('\n', " ")
    };
    let readme = read("README.md");
    let page = read("docs/warnings-and-discovery.md");
    let t = template();
    let discovery = t["Parameters"]["Discovery"]["Description"]
        .as_str()
        .unwrap()
        .replace('\n', " ");
    let regions = t["Parameters"]["DiscoveryRegions"]["Description"]
        .as_str()
        .unwrap();
    assert!(
        discovery.contains("the stack's region and DiscoveryRegions")
            && discovery.contains("no other region"),
        "Discovery: {discovery}"
    );
    assert!(
        regions.contains("besides the stack's own"),
        "DiscoveryRegions: {regions}"
    );
    assert!(
        readme.contains("every job submitted in its region and `DISCOVERY_REGIONS`"),
        "README"
    );
    assert!(
        page.contains("in the function's region and each of `DISCOVERY_REGIONS` (no other region)"),
        "docs/warnings-and-discovery.md, Discovery"
    );
    for (name, text) in [
        ("README.md", &readme),
        ("docs/warnings-and-discovery.md", &page),
    ] {
        assert!(
            !text.contains("submitted in the account"),
            "{name} says discovery covers the account"
        );
    }
    // The two ways to cover a second region, what each costs, when a job is missed.
    let section = &page[page.find("## Regions").expect("a Regions section")..];
    for needle in [
        "a stack in each region",
        "`DiscoveryRegions`",
        "fixed monthly cost",
        "per stack",
        "missed",
    ] {
        assert!(section.contains(needle), "Regions section lacks {needle:?}");
    }
    assert!(
        readme.contains("warnings-and-discovery.md#regions"),
        "the README links the Regions section"
    );
}

/// A policy setting (a list) lets through the same messages as a policy in
/// JSON, of every kind the monitor sends: a status change of any severity, an
/// untracked job or an early warning (severity warning), the digest (info).
fn assert_same_messages(setting: &str, json: &str) {
    use bedrock_batch_monitor::filter_policy::FilterPolicy;
    let list = FilterPolicy::parse_setting(setting).unwrap();
    let recipe = FilterPolicy::parse(json).unwrap();
    for (severity, event) in [
        ("error", "statusChanged"),
        ("warning", "statusChanged"),
        ("success", "statusChanged"),
        ("info", "statusChanged"),
        ("warning", "untracked"),
        ("warning", "warning"),
        ("info", "digest"),
    ] {
        let attrs = [
            ("severity".to_owned(), severity.to_owned()),
            ("event".to_owned(), event.to_owned()),
        ];
        assert_eq!(
            list.matches(&attrs),
            recipe.matches(&attrs),
            "{setting} and {json} differ on {attrs:?}"
        );
    }
}

/// The email subscription's filter policy, as CloudFormation resolves it for
/// a list: `!Sub` over `!Join` over `!Split`, evaluated here as the
/// intrinsic functions' pages describe them, must be the very policy the
/// function builds from the same list for Slack, and JSON passes as given.
#[test]
fn the_email_filter_policy_should_be_built_from_a_list_as_the_function_builds_it() {
    let t = template();
    let policy = &t["Resources"]["EmailSubscription"]["Properties"]["FilterPolicy"];
    let tagged = |v: &Value, tag: &str| -> Value {
        match v {
            Value::Tagged(t) if t.tag == tag || t.tag == format!("!{tag}") => t.value.clone(),
            _ => panic!("expected !{tag}: {v:?}"),
        }
    };
    let outer = tagged(policy, "If");
    assert_eq!(outer[0].as_str(), Some("HasEmailFilter"));
    let inner = tagged(&outer[1], "If");
    assert_eq!(inner[0].as_str(), Some("EmailFilterIsJson"));
    assert_eq!(
        ref_target(&inner[1]).as_deref(),
        Some("AlertEmailFilterPolicy")
    );
    let sub = tagged(&inner[2], "Sub");
    let body = sub[0].as_str().unwrap();
    let join = tagged(&sub[1]["Words"], "Join");
    let separator = join[0].as_str().unwrap();
    let split = tagged(&join[1], "Split");
    let delimiter = split[0].as_str().unwrap();
    assert_eq!(
        ref_target(&split[1]).as_deref(),
        Some("AlertEmailFilterPolicy")
    );
    // The condition: the part before the first "{" is empty.
    let condition = tagged(&t["Conditions"]["EmailFilterIsJson"], "Equals");
    let select = tagged(&condition[0], "Select");
    let on = tagged(&select[1], "Split")[0].as_str().unwrap().to_owned();
    let is_json = |v: &str| v.split(on.as_str()).next() == Some(condition[1].as_str().unwrap());

    for list in [
        "error",
        "error,warning",
        "error,warning,success,digest",
        "untracked,statusChanged",
    ] {
        assert!(!is_json(list), "{list}");
        let words: Vec<&str> = list.split(delimiter).collect();
        let built = body.replace("${Words}", &words.join(separator));
        assert_eq!(
            built,
            bedrock_batch_monitor::filter_policy::list_json(list).unwrap(),
            "{list}"
        );
        serde_json::from_str::<serde_json::Value>(&built).expect("the built policy is JSON");
    }
    for json in [
        r#"{"severity": ["error"]}"#,
        "{\n  \"event\": [\"digest\"]\n}",
    ] {
        assert!(is_json(json), "{json}");
    }
}

/// The console groups the parameters (`AWS::CloudFormation::Interface`) and
/// `sam deploy --guided` asks for them in the template's order: every
/// parameter is in exactly one group, the template lists them group by
/// group, and the first group is what a first deploy needs to set.
#[test]
fn every_parameter_should_be_in_exactly_one_group_in_the_order_guided_asks() {
    let t = template();
    let interface = &t["Metadata"]["AWS::CloudFormation::Interface"];
    let groups = interface["ParameterGroups"]
        .as_sequence()
        .expect("ParameterGroups");
    let grouped: Vec<String> = groups
        .iter()
        .flat_map(|g| g["Parameters"].as_sequence().unwrap().iter())
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let declared: Vec<String> = t["Parameters"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        grouped, declared,
        "the groups, in order, are the template's parameters, in order, each once"
    );
    assert_eq!(
        grouped.iter().collect::<BTreeSet<_>>().len(),
        grouped.len(),
        "a parameter in two groups"
    );
    for g in groups {
        assert!(
            g["Label"]["default"]
                .as_str()
                .is_some_and(|l| !l.is_empty()),
            "{g:?}"
        );
    }
    let first: Vec<&str> = groups[0]["Parameters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for needed in ["AlertEmail", "SlackWorkspaceId", "SlackChannelId"] {
        assert!(first.contains(&needed), "{needed} not in the first group");
    }
    let schedules: Vec<&str> = groups[1]["Parameters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(schedules.contains(&"PollRate") && schedules.contains(&"DigestSchedule"));
    for (label, _) in interface["ParameterLabels"].as_mapping().unwrap() {
        let label = label.as_str().unwrap();
        assert!(t["Parameters"][label].is_mapping(), "label for {label}");
    }
    // Every parameter has a default, so Enter keeps it in --guided.
    for name in &declared {
        assert!(
            !t["Parameters"][name.as_str()]["Default"].is_null(),
            "{name} has no default"
        );
    }
}

/// The resource the deploy check is: the function's own custom resource.
fn settings_check(t: &Value) -> (String, &Value) {
    let checks = t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(bedrock_batch_monitor::settings_check::TYPE))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect::<Vec<_>>();
    assert_eq!(checks.len(), 1, "one Custom::SettingsCheck");
    let (id, r) = checks[0];
    (id.to_owned(), r)
}

/// Every setting a deploy sets is checked: the check's `Variables` are the
/// function's environment, expression for expression (a variable left out
/// would pass unchecked; one changed would check another value), and the
/// function itself serves it.
#[test]
fn the_settings_check_should_carry_exactly_the_functions_environment_to_the_function() {
    let t = template();
    let (_, check) = settings_check(&t);
    let props = &check["Properties"];
    assert_eq!(
        props[bedrock_batch_monitor::settings_check::VARIABLES],
        function(&t)["Properties"]["Environment"]["Variables"],
        "SettingsCheck's Variables and MonitorFunction's Environment.Variables differ"
    );
    let token: Value = serde_yaml::from_str("!GetAtt MonitorFunction.Arn").unwrap();
    assert_eq!(props["ServiceToken"], token);
    assert!(
        t["Resources"]["MonitorFunction"]["Type"].as_str() == Some("AWS::Serverless::Function")
    );
    // At most ten minutes without an answer, which covers Lambda's retries.
    let timeout = props["ServiceTimeout"].as_u64().expect("ServiceTimeout");
    assert!((300..=900).contains(&timeout), "{timeout}");
}

/// The template as CloudFormation gets it after SAM's transform (the pinned
/// `samtranslator`, as `sam deploy` and CloudFormation's transform expand it).
fn sam_translated() -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the project's venv is missing: run `make setup`"
    );
    let script = r#"
import json
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
tpl = yaml_parse(open("template.yaml").read())
tpl["Resources"]["MonitorFunction"]["Properties"]["CodeUri"] = "s3://bucket/code.zip"
class NoManagedPolicies:
    def load(self):
        return {}
print(json.dumps(transform(tpl, {}, NoManagedPolicies())))
"#;
    let out = std::process::Command::new(python)
        .current_dir(root)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run the SAM translator");
    assert!(
        out.status.success(),
        "the SAM translator refused the template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// What CloudFormation gets after SAM's transform (the pinned
/// `samtranslator`, as `sam deploy` and CloudFormation's transform expand
/// it): the check still names the function's ARN and still carries exactly
/// the expanded function's environment.
#[test]
fn the_sam_translator_should_keep_the_check_on_the_functions_environment() {
    let cfn = sam_translated();
    let (id, _) = settings_check(&template());
    let check = &cfn["Resources"][id.as_str()];
    assert_eq!(check["Type"], "Custom::SettingsCheck", "{check}");
    assert_eq!(
        check["Properties"]["ServiceToken"],
        serde_json::json!({"Fn::GetAtt": ["MonitorFunction", "Arn"]}),
        "{check}"
    );
    let function = &cfn["Resources"]["MonitorFunction"];
    assert_eq!(function["Type"], "AWS::Lambda::Function");
    assert_eq!(
        check["Properties"]["Variables"],
        function["Properties"]["Environment"]["Variables"]
    );
}

// ------------------------------------------------------------ issue 28

fn member_template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("member-account/template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).expect("member-account/template.yaml"))
        .expect("member-account/template.yaml is YAML")
}

/// `!If [cond, a, b]` with its condition's name.
fn if_parts(v: &Value) -> Option<(&str, &Value, &Value)> {
    match v {
        Value::Tagged(t) if t.tag == "If" => {
            Some((t.value[0].as_str().unwrap(), &t.value[1], &t.value[2]))
        }
        _ => None,
    }
}

/// The function may assume the role `MemberRoleName` and no other, only in
/// the accounts of `MemberAccounts`, and only when there are some: a stack
/// for one account grants no `sts:AssumeRole` at all.
#[test]
fn the_function_should_assume_the_member_role_only_in_the_member_accounts() {
    let t = template();
    let mut assuming = Vec::new();
    for policy in function(&t)["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
    {
        for st in when_on(policy)["Statement"].as_sequence().unwrap() {
            if strings(&st["Action"]).iter().any(|a| a.starts_with("sts:")) {
                assuming.push((policy, st));
            }
        }
    }
    assert_eq!(assuming.len(), 1, "one statement assumes roles");
    let (policy, st) = assuming[0];
    let (condition, _, off) = if_parts(policy).expect("the policy is there only on a condition");
    assert_eq!(condition, "HasMemberAccounts");
    assert_eq!(ref_target(off).as_deref(), Some("AWS::NoValue"));
    let on = format!("{:?}", t["Conditions"]["HasMemberAccounts"]);
    assert!(on.contains("MemberAccounts") && on.contains("Not"), "{on}");
    assert_eq!(strings(&st["Action"]), ["sts:AssumeRole"]);
    let conditions = st["Condition"].as_mapping().expect("a condition");
    assert_eq!(conditions.len(), 1, "{conditions:?}");
    for (members, want) in [
        ("111111111111", vec!["111111111111"]),
        (
            "111111111111,222222222222,333333333333",
            vec!["111111111111", "222222222222", "333333333333"],
        ),
    ] {
        let refs = BTreeMap::from([
            ("AWS::Partition", "aws"),
            ("MemberAccounts", members),
            ("MemberRoleName", "bedrock-batch-monitor-reader"),
        ]);
        let no_condition = |c: &str| panic!("condition {c} in the statement");
        assert_eq!(
            evaluate(&st["Resource"], &refs, &no_condition),
            serde_json::json!("arn:aws:iam::*:role/bedrock-batch-monitor-reader"),
            "the member role's name, no other role"
        );
        assert_eq!(
            evaluate(
                &st["Condition"]["StringEquals"]["aws:ResourceAccount"],
                &refs,
                &no_condition
            ),
            serde_json::json!(want),
            "only in the member accounts: {members}"
        );
    }
}

/// The member accounts' bus admits the listed accounts, or the organization
/// when `OrganizationId` is set, to put events on that bus and nothing else;
/// its rule hands the function what the default bus's rule does, with the
/// same retries and dead-letter queue, and the function and the queue let
/// that rule in.
#[test]
fn the_member_accounts_bus_should_admit_the_members_and_hand_their_events_to_the_function() {
    let t = template();
    let bus = resource(&t, "MemberEventBus");
    assert_eq!(bus["Type"].as_str(), Some("AWS::Events::EventBus"));
    assert_eq!(bus["Condition"].as_str(), Some("HasMemberAccounts"));
    let statements = bus["Properties"]["Policy"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 1);
    let st = &statements[0];
    assert_eq!(st["Effect"].as_str(), Some("Allow"));
    assert_eq!(strings(&st["Action"]), ["events:PutEvents"]);
    let refs = BTreeMap::from([
        ("AWS::Partition", "aws"),
        ("AWS::Region", "us-east-1"),
        ("AWS::AccountId", "999999999999"),
        ("AWS::StackName", "bbm"),
        ("MemberAccounts", "111111111111,222222222222"),
        ("OrganizationId", "o-abcdefghij"),
    ]);
    let never = |c: &str| panic!("condition {c}");
    let name = evaluate(&bus["Properties"]["Name"], &refs, &never);
    assert_eq!(
        evaluate(&st["Resource"], &refs, &never),
        serde_json::json!(format!(
            "arn:aws:events:us-east-1:999999999999:event-bus/{}",
            name.as_str().unwrap()
        )),
        "this bus only"
    );
    for (org, want) in [
        (
            true,
            serde_json::json!({"StringEquals": {"aws:PrincipalOrgID": "o-abcdefghij"}}),
        ),
        (
            false,
            serde_json::json!({"StringEquals": {"aws:PrincipalAccount": ["111111111111", "222222222222"]}}),
        ),
    ] {
        let cond = |c: &str| match c {
            "HasOrganizationId" => org,
            other => panic!("condition {other}"),
        };
        assert_eq!(
            evaluate(&st["Condition"], &refs, &cond),
            want,
            "OrganizationId set: {org}"
        );
    }
    let org_condition = format!("{:?}", t["Conditions"]["HasOrganizationId"]);
    assert!(org_condition.contains("OrganizationId"), "{org_condition}");

    // The rule: the default bus rule's pattern, retries and dead-letter queue.
    let rule = resource(&t, "MemberBedrockStateChange");
    assert_eq!(rule["Condition"].as_str(), Some("HasMemberAccounts"));
    let p = &rule["Properties"];
    assert_eq!(
        ref_target(&p["EventBusName"]).as_deref(),
        Some("MemberEventBus")
    );
    let default_bus = &function(&t)["Properties"]["Events"]["BedrockStateChange"]["Properties"];
    assert_eq!(p["EventPattern"], default_bus["Pattern"]);
    let targets = p["Targets"].as_sequence().unwrap();
    assert_eq!(targets.len(), 1);
    let function_arn: Value = serde_yaml::from_str("!GetAtt MonitorFunction.Arn").unwrap();
    assert_eq!(targets[0]["Arn"], function_arn);
    assert_eq!(targets[0]["RetryPolicy"], default_bus["RetryPolicy"]);
    assert_eq!(
        targets[0]["DeadLetterConfig"],
        default_bus["DeadLetterConfig"]
    );
    // The function may be invoked by that rule.
    let rule_arn: Value = serde_yaml::from_str("!GetAtt MemberBedrockStateChange.Arn").unwrap();
    let permissions: Vec<_> = resources_of_type(&t, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, r)| r["Properties"]["SourceArn"] == rule_arn)
        .collect();
    assert_eq!(
        permissions.len(),
        1,
        "the function's permission for the rule"
    );
    let perm = &permissions[0].1;
    assert_eq!(perm["Condition"].as_str(), Some("HasMemberAccounts"));
    assert_eq!(
        perm["Properties"]["Principal"].as_str(),
        Some("events.amazonaws.com")
    );
    assert_eq!(
        ref_target(&perm["Properties"]["FunctionName"]).as_deref(),
        Some("MonitorFunction")
    );
    // Its undeliverable events reach the failed-invocation queue.
    let queue_policy = serde_yaml::to_string(
        &resource(&t, "FailedInvocationQueuePolicy")["Properties"]["PolicyDocument"],
    )
    .unwrap();
    assert!(
        queue_policy.contains("MemberBedrockStateChange.Arn"),
        "{queue_policy}"
    );
}

/// The member template takes the hub's outputs: the function's role (the one
/// principal its role trusts) and the bus (where its rules forward).
#[test]
fn the_hub_should_output_what_the_member_template_takes() {
    let t = template();
    let outputs = &t["Outputs"];
    let role: Value = serde_yaml::from_str("!GetAtt MonitorFunctionRole.Arn").unwrap();
    assert_eq!(outputs["FunctionRoleArn"]["Value"], role);
    let bus: Value = serde_yaml::from_str("!GetAtt MemberEventBus.Arn").unwrap();
    assert_eq!(outputs["EventBusArn"]["Value"], bus);
    assert_eq!(
        outputs["EventBusArn"]["Condition"].as_str(),
        Some("HasMemberAccounts")
    );
    let member = member_template();
    for (output, parameter) in [
        ("FunctionRoleArn", "HubFunctionRoleArn"),
        ("EventBusArn", "HubEventBusArn"),
    ] {
        let text = outputs[output]["Description"].as_str().unwrap();
        assert!(text.contains(parameter), "{output}: {text}");
        assert!(
            member["Parameters"][parameter].is_mapping(),
            "member-account/template.yaml has no {parameter}"
        );
    }
    assert_eq!(
        member["Parameters"]["MemberRoleName"]["Default"],
        t["Parameters"]["MemberRoleName"]["Default"]
    );
}

/// The reader role's statements in the member template: its inline
/// policies and the policies attached to it, each statement's actions.
fn member_role_statements(member: &Value) -> Vec<BTreeSet<String>> {
    let mut out = Vec::new();
    for (id, r) in member["Resources"].as_mapping().unwrap() {
        let docs: Vec<&Value> = match r["Type"].as_str() {
            Some("AWS::IAM::Role") if id.as_str() == Some("ReaderRole") => {
                r["Properties"]["Policies"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|p| &p["PolicyDocument"])
                    .collect()
            }
            Some("AWS::IAM::Policy")
                if r["Properties"]["Roles"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|role| ref_target(role).as_deref() == Some("ReaderRole")) =>
            {
                vec![&r["Properties"]["PolicyDocument"]]
            }
            _ => vec![],
        };
        for doc in docs {
            for st in doc["Statement"].as_sequence().unwrap() {
                out.push(strings(&st["Action"]).into_iter().collect());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_security_page_should_list_the_member_roles_permissions_action_by_action() {
    let statements = member_role_statements(&member_template());
    assert!(statements.len() >= 4, "{statements:?}");
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/security.md"))
            .expect("docs/security.md");
    let mut rows: Vec<BTreeSet<String>> = page
        .lines()
        .skip_while(|l| !l.starts_with("| member role actions | resource | why |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            row.split('|')
                .nth(1)
                .unwrap()
                .split('`')
                .filter(|a| a.contains(':') && !a.contains(' '))
                .map(str::to_owned)
                .collect()
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows, statements,
        "docs/security.md's member role rows vs. member-account/template.yaml"
    );
}

/// What CloudFormation gets after SAM's transform: the role the hub's
/// `FunctionRoleArn` output names is the function's own, and it keeps the
/// conditional `sts:AssumeRole` statement.
#[test]
fn the_sam_translator_should_give_the_function_the_role_the_output_names() {
    let cfn = sam_translated();
    let function = &cfn["Resources"]["MonitorFunction"]["Properties"];
    assert_eq!(
        function["Role"],
        serde_json::json!({"Fn::GetAtt": ["MonitorFunctionRole", "Arn"]})
    );
    let role = &cfn["Resources"]["MonitorFunctionRole"];
    assert_eq!(role["Type"], "AWS::IAM::Role");
    let policies = role["Properties"]["Policies"].to_string();
    assert!(
        policies.contains("sts:AssumeRole") && policies.contains("HasMemberAccounts"),
        "{policies}"
    );
    assert_eq!(
        cfn["Outputs"]["FunctionRoleArn"]["Value"],
        serde_json::json!({"Fn::GetAtt": ["MonitorFunctionRole", "Arn"]})
    );
}
