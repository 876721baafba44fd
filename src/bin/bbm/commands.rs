//! `list`, `watch`, `describe` and `digest`: ask, then print for people or
//! for scripts.

use std::io::IsTerminal;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use crate::cli::{Filter, Output};
use crate::error::{CliError, Exit};
use crate::jobs::{self, Listed};
use crate::monitors::Invoke;
use crate::show::{self, Style};

pub fn print_json(v: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Several monitors' errors, each said; one monitor's error is the error.
pub fn failed(mut errors: Vec<CliError>, total: usize) -> Result<Exit, CliError> {
    match errors.len() {
        0 => Ok(Exit::Ok),
        1 if total == 1 => Err(errors.remove(0)),
        n => {
            for e in &errors {
                eprintln!("bbm: {e}");
            }
            Err(CliError::SomeMonitorsFailed { failed: n, total })
        }
    }
}

/// The rows of several monitors in one order: the running jobs newest
/// submitted first, then the ended ones latest end first (each monitor's
/// own listing is in that order already).
fn merged(mut rows: Vec<Listed>) -> Vec<Listed> {
    let key = |r: &Listed| {
        let ended = r.job.get("endedAt").is_some();
        let t = if ended {
            &r.job["endedAt"]
        } else {
            &r.job["submitTime"]
        };
        (ended, std::cmp::Reverse(show::time(t)))
    };
    rows.sort_by_cached_key(key);
    rows
}

/// The listing as the function answers it, every page in one `jobs`; with
/// several monitors each job says which (`monitor`).
fn listing_json(rows: &[Listed], names: &[String]) -> Value {
    let several = names.len() > 1;
    let jobs: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut j = r.job.clone();
            if several && let Value::Object(o) = &mut j {
                o.insert("monitor".into(), json!(names[r.monitor]));
            }
            j
        })
        .collect();
    json!({"jobs": jobs, "next": null})
}

fn nothing_listed(filter: &Filter) -> &'static str {
    if filter.ended {
        "no jobs"
    } else {
        "no running jobs (--ended adds the ended ones the table keeps)"
    }
}

pub async fn list<M: Invoke>(ms: &[M], filter: &Filter, output: Output) -> Result<Exit, CliError> {
    let names: Vec<String> = ms.iter().map(|m| m.name().to_owned()).collect();
    let (rows, errors) = jobs::list_monitors(ms, filter).await;
    let rows = merged(rows);
    if errors.len() == ms.len() {
        return failed(errors, ms.len());
    }
    match output {
        Output::Json => print_json(&listing_json(&rows, &names)),
        Output::Table if rows.is_empty() => eprintln!("{}", nothing_listed(filter)),
        Output::Table => outln!(
            "{}",
            show::jobs_table(&rows, &names, Utc::now(), Style::for_stdout())
        ),
    }
    failed(errors, ms.len())
}

/// Runs until interrupted; gives up after this many refreshes in a row in
/// which no monitor answered.
const FAILED_REFRESHES: u32 = 3;

pub async fn watch<M: Invoke>(
    ms: &[M],
    filter: &Filter,
    interval: Duration,
    output: Output,
) -> Result<Exit, CliError> {
    let names: Vec<String> = ms.iter().map(|m| m.name().to_owned()).collect();
    let tty = std::io::stdout().is_terminal();
    let mut failures = 0;
    loop {
        let (rows, mut errors) = jobs::list_monitors(ms, filter).await;
        let rows = merged(rows);
        let now = Utc::now();
        if errors.len() == ms.len() {
            failures += 1;
            if failures >= FAILED_REFRESHES {
                return Err(errors.remove(0));
            }
        } else {
            failures = 0;
        }
        match output {
            Output::Json => {
                let mut v = listing_json(&rows, &names);
                v["at"] = json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                outln!("{v}");
            }
            Output::Table => {
                let mut out = String::new();
                if tty {
                    // Home and clear: the view is redrawn in place.
                    out.push_str("\x1b[H\x1b[2J");
                }
                out.push_str(&format!(
                    "{} job(s) at {} UTC (every {}; Ctrl-C stops)\n",
                    rows.len(),
                    now.format("%H:%M:%S"),
                    humantime::format_duration(interval)
                ));
                if rows.is_empty() {
                    out.push_str(nothing_listed(filter));
                    out.push('\n');
                } else {
                    out.push_str(&format!(
                        "{}\n",
                        show::jobs_table(&rows, &names, now, Style::for_stdout())
                    ));
                }
                for e in &errors {
                    out.push_str(&format!("bbm: {e}\n"));
                }
                if !tty {
                    out.push('\n');
                }
                out!("{out}");
            }
        }
        tokio::time::sleep(interval).await;
    }
}

pub async fn describe<M: Invoke>(ms: &[M], job: &str, output: Output) -> Result<Exit, CliError> {
    let found = jobs::find(ms, job).await?;
    let m = &ms[found.monitor];
    let answer = m.invoke(&json!({ "describe": found.arn })).await?;
    if output == Output::Json {
        print_json(&answer);
    }
    if let Some(error) = answer["error"].as_str() {
        return Err(CliError::NotFound(format!(
            "{}: {}: {error}",
            found.arn,
            answer["errorKind"].as_str().unwrap_or("Error")
        )));
    }
    if answer.get("tracking").is_none() {
        return Err(CliError::NotFound(format!(
            "{} is not tracked by {} (`bbm track {}` starts)",
            found.arn,
            m.name(),
            found.arn
        )));
    }
    if output == Output::Table {
        out!("{}", show::story(&answer, Utc::now(), Style::for_stdout()));
    }
    Ok(Exit::Ok)
}

fn digest_line(a: &Value) -> String {
    let id = a["digest"].as_str().unwrap_or("?");
    if a["published"].as_bool() != Some(true) {
        return format!(
            "digest {id} not published by this request: {}",
            a["reason"].as_str().unwrap_or("no reason given")
        );
    }
    let n = |k: &str| a[k].as_u64().unwrap_or(0);
    let mut s = format!(
        "digest {id} published{}: {} running, {} ended, {} warnings, {} polls, {} failed invocations, {} set aside",
        match a["form"].as_str() {
            Some("countsOnly") => " (its counts only: SNS refused the full one)",
            _ => "",
        },
        n("running"),
        n("ended"),
        n("warnings"),
        n("polls"),
        n("failedInvocations"),
        n("setAside"),
    );
    if a["resumed"].as_bool() == Some(true) {
        s.push_str(" (a digest begun earlier, sent again under its id)");
    }
    for r in a["routes"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  route {}: its own digest, {} running, {} ended",
            r["route"].as_str().unwrap_or("?"),
            r["running"].as_u64().unwrap_or(0),
            r["ended"].as_u64().unwrap_or(0)
        ));
    }
    for e in a["errors"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  {} did not get it: {}",
            e["destination"].as_str().unwrap_or("?"),
            e["error"].as_str().unwrap_or_default()
        ));
    }
    s
}

/// One line a route: its name, what it gets, where, and how its deliveries went.
fn route_lines(a: &Value) -> Vec<String> {
    let routes = a["routes"].as_array().cloned().unwrap_or_default();
    if routes.is_empty() {
        return vec!["no routes: the job topic alone (no Slack topic, no team's route)".to_owned()];
    }
    routes
        .iter()
        .map(|r| {
            let by = match (&r["declaredBy"]["setting"], &r["declaredBy"]["stackId"]) {
                (Value::String(s), _) => format!("setting {s}"),
                (_, Value::String(stack)) => format!(
                    "stack {}",
                    stack.split('/').nth(1).unwrap_or(stack.as_str())
                ),
                _ => "?".to_owned(),
            };
            let mut line = format!(
                "{}: {} (by {by}), policy {}; {} delivered, {} failed",
                r["name"].as_str().unwrap_or("?"),
                r["topicArn"].as_str().unwrap_or("?"),
                r["policy"],
                r["delivered"].as_u64().unwrap_or(0),
                r["failures"].as_u64().unwrap_or(0),
            );
            if let Some(at) = r["lastDelivery"].as_str() {
                line.push_str(&format!(", last at {at}"));
            }
            if let Some(e) = r["lastError"].as_str() {
                line.push_str(&format!(
                    "; last error at {}: {e}",
                    r["lastFailure"].as_str().unwrap_or("?")
                ));
            }
            line
        })
        .collect()
}

pub async fn routes<M: Invoke>(ms: &[M], output: Output) -> Result<Exit, CliError> {
    each_monitor(ms, output, &json!({"routes": {}}), |a| {
        route_lines(a).join("\n")
    })
    .await
}

pub async fn digest<M: Invoke>(ms: &[M], output: Output) -> Result<Exit, CliError> {
    each_monitor(ms, output, &json!({"digest": {}}), digest_line).await
}

/// Sends `event` to every monitor: each answer as `line` has it (prefixed
/// with the monitor's name when there are several), or as JSON.
async fn each_monitor<M: Invoke>(
    ms: &[M],
    output: Output,
    event: &Value,
    line: impl Fn(&Value) -> String,
) -> Result<Exit, CliError> {
    let event = event.clone();
    let answers = futures::future::join_all(ms.iter().map(|m| m.invoke(&event))).await;
    let mut errors = Vec::new();
    let mut all = Map::new();
    for (m, a) in ms.iter().zip(answers) {
        match a {
            Ok(a) => {
                if output == Output::Table {
                    let prefix = if ms.len() > 1 {
                        format!("{}: ", m.name())
                    } else {
                        String::new()
                    };
                    outln!("{prefix}{}", line(&a));
                }
                all.insert(m.name().to_owned(), a);
            }
            Err(e) => errors.push(e),
        }
    }
    if output == Output::Json {
        // One monitor: its answer; several: each answer under its monitor's name.
        if ms.len() == 1 {
            if let Some((_, a)) = all.into_iter().next() {
                print_json(&a);
            }
        } else {
            print_json(&Value::Object(all));
        }
    }
    failed(errors, ms.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_should_read_as_one_line() {
        let a = json!({"routes": [
            {"name": "slack", "topicArn": "arn:aws:sns:us-east-1:1:s", "policy": {"severity": ["error"]},
             "declaredBy": {"setting": "SLACK_TOPIC_ARN"}, "delivered": 3, "failures": 0,
             "lastDelivery": "2026-12-04T10:00:00Z", "lastFailure": null, "lastError": null},
            {"name": "search", "topicArn": "arn:aws:sns:us-east-1:1:bedrock-batch-monitor-route-search",
             "policy": {"team": ["search"]},
             "declaredBy": {"stackId": "arn:aws:cloudformation:us-east-1:1:stack/bbm-team-search/abc"},
             "delivered": 0, "failures": 2, "lastDelivery": null,
             "lastFailure": "2026-12-04T11:00:00Z", "lastError": "Topic does not exist"}]});
        assert_eq!(
            route_lines(&a),
            [
                r#"slack: arn:aws:sns:us-east-1:1:s (by setting SLACK_TOPIC_ARN), policy {"severity":["error"]}; 3 delivered, 0 failed, last at 2026-12-04T10:00:00Z"#,
                r#"search: arn:aws:sns:us-east-1:1:bedrock-batch-monitor-route-search (by stack bbm-team-search), policy {"team":["search"]}; 0 delivered, 2 failed; last error at 2026-12-04T11:00:00Z: Topic does not exist"#,
            ]
        );
        assert!(route_lines(&json!({"routes": []}))[0].starts_with("no routes"));
    }

    #[test]
    fn a_digest_should_read_as_one_line() {
        let a = json!({"digest": "2026-11-29", "published": true, "form": "full", "running": 3,
                       "ended": 2, "warnings": 1, "polls": 1440, "failedInvocations": 0, "setAside": 0,
                       "errors": []});
        assert_eq!(
            digest_line(&a),
            "digest 2026-11-29 published: 3 running, 2 ended, 1 warnings, 1440 polls, 0 failed invocations, 0 set aside"
        );
        let a = json!({"digest": "d", "published": false, "reason": "held by another invocation"});
        assert!(digest_line(&a).contains("held by another invocation"));
        let a = json!({"digest": "d", "published": true, "routes": [
            {"route": "search", "digest": "d-search", "running": 2, "ended": 1}]});
        assert!(
            digest_line(&a).ends_with("\n  route search: its own digest, 2 running, 1 ended"),
            "{}",
            digest_line(&a)
        );
    }

    #[test]
    fn several_monitors_rows_should_merge_running_first_then_ended() {
        let rows = vec![
            Listed {
                monitor: 0,
                job: json!({"jobName": "old", "submitTime": "2026-01-01T00:00:00Z"}),
            },
            Listed {
                monitor: 0,
                job: json!({"jobName": "done", "endedAt": "2026-01-03T00:00:00Z"}),
            },
            Listed {
                monitor: 1,
                job: json!({"jobName": "new", "submitTime": "2026-01-02T00:00:00Z"}),
            },
        ];
        let names: Vec<String> = merged(rows)
            .iter()
            .map(|r| r.job["jobName"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["new", "old", "done"]);
    }
}
