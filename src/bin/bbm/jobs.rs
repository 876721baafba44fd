//! The function's events as `bbm` sends them, every page of a listing, and
//! a job found by its name.

use bedrock_batch_monitor::domain::JobArn;
use bedrock_batch_monitor::event::MAX_LIST_LIMIT;
use serde_json::{Map, Value, json};

use crate::cli::Filter;
use crate::error::{CliError, Match};
use crate::monitors::Invoke;

/// `{"list": {...}}` with the filters given, and only those: `accounts`
/// only with `--account` (a monitor without member accounts may not know it).
pub fn list_event(filter: &Filter, next: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert("limit".into(), json!(MAX_LIST_LIMIT));
    if filter.ended {
        o.insert("ended".into(), json!(true));
    }
    if !filter.status.is_empty() {
        o.insert("status".into(), json!(filter.status));
    }
    if !filter.labels.is_empty() {
        o.insert("labels".into(), json!(filter.labels()));
    }
    if !filter.accounts.is_empty() {
        o.insert("accounts".into(), json!(filter.accounts));
    }
    if let Some(n) = next {
        o.insert("next".into(), json!(n));
    }
    json!({ "list": o })
}

/// Every job a listing shows, page after page (each answer's `next`).
pub async fn list_all<M: Invoke>(m: &M, filter: &Filter) -> Result<Vec<Value>, CliError> {
    let mut jobs = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let answer = m.invoke(&list_event(filter, next.as_deref())).await?;
        if let Some(page) = answer["jobs"].as_array() {
            jobs.extend(page.iter().cloned());
        }
        match answer["next"].as_str() {
            Some(n) if next.as_deref() == Some(n) => {
                return Err(CliError::NotFound(format!(
                    "{}: the listing gave the same page token twice; stopped",
                    m.name()
                )));
            }
            Some(n) => next = Some(n.to_owned()),
            None => return Ok(jobs),
        }
    }
}

/// One listed job and the monitor (its index) that listed it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub monitor: usize,
    pub job: Value,
}

/// Each monitor's listing, asked at the same time; one that fails is its
/// own error and the others are shown.
pub async fn list_monitors<M: Invoke>(
    monitors: &[M],
    filter: &Filter,
) -> (Vec<Listed>, Vec<CliError>) {
    let answers = futures::future::join_all(monitors.iter().map(|m| list_all(m, filter))).await;
    let (mut jobs, mut errors) = (Vec::new(), Vec::new());
    for (i, a) in answers.into_iter().enumerate() {
        match a {
            Ok(list) => jobs.extend(list.into_iter().map(|job| Listed { monitor: i, job })),
            Err(e) => errors.push(e),
        }
    }
    (jobs, errors)
}

/// A job, found: the monitor that watches it and its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub monitor: usize,
    pub arn: String,
}

fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or_default()
}

/// Every watched job of every monitor (running and ended), to find names in.
pub struct Catalog {
    jobs: Vec<Listed>,
    names: Vec<String>,
}

impl Catalog {
    /// Read whole: a name is unique only if no monitor that could not be
    /// read might hold another job of that name.
    pub async fn read<M: Invoke>(monitors: &[M]) -> Result<Self, CliError> {
        let all = Filter {
            ended: true,
            ..Filter::default()
        };
        let (jobs, mut errors) = list_monitors(monitors, &all).await;
        if !errors.is_empty() {
            return Err(errors.remove(0));
        }
        Ok(Self {
            jobs,
            names: monitors.iter().map(|m| m.name().to_owned()).collect(),
        })
    }

    /// The job `given` names: its name or id, unique among the watched jobs.
    pub fn find(&self, given: &str) -> Result<Found, CliError> {
        let mut found: Vec<&Listed> = Vec::new();
        for l in &self.jobs {
            let arn = l.job["jobArn"].as_str().unwrap_or_default();
            let named = l.job["jobName"].as_str() == Some(given) || job_id(arn) == given;
            // The same job under two monitors is one job.
            if named && !found.iter().any(|f| f.job["jobArn"].as_str() == Some(arn)) {
                found.push(l);
            }
        }
        match found.as_slice() {
            [] => Err(CliError::NotFound(format!(
                "no watched job is named {given:?} (`bbm list --ended` shows them; an ARN works for any job)"
            ))),
            [one] => Ok(Found {
                monitor: one.monitor,
                arn: one.job["jobArn"].as_str().unwrap_or_default().to_owned(),
            }),
            many => Err(CliError::Ambiguous {
                name: given.to_owned(),
                matches: many
                    .iter()
                    .map(|l| Match {
                        monitor: self.names[l.monitor].clone(),
                        arn: l.job["jobArn"].as_str().unwrap_or_default().to_owned(),
                        status: l.job["status"].as_str().unwrap_or("?").to_owned(),
                        submitted: l.job["submitTime"].as_str().unwrap_or("?").to_owned(),
                    })
                    .collect(),
            }),
        }
    }
}

/// A job by its ARN, or by its name or id among the watched jobs, and the
/// monitor to ask about it. An ARN with several monitors goes to the one
/// whose table knows the job (the first, when none does).
pub async fn find<M: Invoke>(monitors: &[M], given: &str) -> Result<Found, CliError> {
    let given = given.trim();
    if let Ok(arn) = given.parse::<JobArn>() {
        let arn = arn.to_string();
        if monitors.len() > 1 {
            let event = json!({ "describe": arn });
            let answers =
                futures::future::join_all(monitors.iter().map(|m| m.invoke(&event))).await;
            for (i, a) in answers.iter().enumerate() {
                if let Ok(a) = a
                    && a.get("tracking").is_some()
                {
                    return Ok(Found { monitor: i, arn });
                }
            }
        }
        return Ok(Found { monitor: 0, arn });
    }
    Catalog::read(monitors).await?.find(given)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A monitor in memory: answers `list` from its jobs, `page` at a time,
    /// and records the events it was sent.
    pub struct Fake {
        pub name: String,
        pub jobs: Vec<Value>,
        pub page: usize,
        pub sent: RefCell<Vec<Value>>,
    }

    impl Fake {
        pub fn new(name: &str, jobs: Vec<Value>) -> Self {
            Self {
                name: name.into(),
                jobs,
                page: 2,
                sent: RefCell::new(Vec::new()),
            }
        }
    }

    impl Invoke for Fake {
        fn name(&self) -> &str {
            &self.name
        }
        async fn invoke(&self, payload: &Value) -> Result<Value, CliError> {
            self.sent.borrow_mut().push(payload.clone());
            if let Some(arn) = payload["describe"].as_str() {
                return Ok(match self.jobs.iter().find(|j| j["jobArn"] == arn) {
                    Some(j) => {
                        json!({"jobArn": arn, "tracked": true, "tracking": "active", "status": j["status"]})
                    }
                    None => json!({"jobArn": arn, "tracked": false}),
                });
            }
            let start: usize = payload["list"]["next"]
                .as_str()
                .map_or(0, |n| n.parse().unwrap());
            let end = (start + self.page).min(self.jobs.len());
            Ok(json!({
                "jobs": self.jobs[start..end],
                "next": (end < self.jobs.len()).then(|| end.to_string()),
            }))
        }
    }

    pub fn job(name: &str, id: &str, status: &str) -> Value {
        json!({
            "jobArn": format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{id}"),
            "jobName": name,
            "status": status,
            "submitTime": "2026-01-01T00:00:00Z",
        })
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn list_should_send_only_the_filters_given() {
        assert_eq!(
            list_event(&Filter::default(), None),
            json!({"list": {"limit": 100}})
        );
        let f = Filter {
            ended: true,
            status: vec!["Failed".into()],
            labels: vec![("team".into(), "search".into())],
            accounts: vec!["123456789012".into()],
        };
        assert_eq!(
            list_event(&f, Some("tok")),
            json!({"list": {"limit": 100, "ended": true, "status": ["Failed"],
                            "labels": {"team": "search"}, "accounts": ["123456789012"], "next": "tok"}})
        );
    }

    #[test]
    fn list_should_read_every_page() {
        let jobs: Vec<Value> = (0..5)
            .map(|i| job(&format!("j{i}"), &format!("abcdefghij{i:02}"), "InProgress"))
            .collect();
        let m = Fake::new("m", jobs.clone());
        let got = block(list_all(&m, &Filter::default())).unwrap();
        assert_eq!(got, jobs);
        assert_eq!(m.sent.borrow().len(), 3, "5 jobs, 2 a page");
        assert_eq!(m.sent.borrow()[2]["list"]["next"], "4");
    }

    #[test]
    fn a_unique_name_or_id_should_find_its_job_and_a_shared_one_should_list_the_matches() {
        let a = Fake::new(
            "us",
            vec![
                job("nightly", "aaaaaaaaaaaa", "InProgress"),
                job("weekly", "bbbbbbbbbbbb", "Completed"),
                job("nightly", "cccccccccccc", "Failed"),
            ],
        );
        let b = Fake::new("eu", vec![job("hourly", "dddddddddddd", "Submitted")]);
        let ms = [a, b];
        let found = block(find(&ms, "hourly")).unwrap();
        assert_eq!(found.monitor, 1);
        assert!(found.arn.ends_with("/dddddddddddd"));
        let found = block(find(&ms, "bbbbbbbbbbbb")).unwrap();
        assert_eq!(found.monitor, 0);
        match block(find(&ms, "nightly")) {
            Err(CliError::Ambiguous { matches, .. }) => {
                assert_eq!(matches.len(), 2);
                assert_eq!(matches[0].status, "InProgress");
                assert_eq!(matches[1].status, "Failed");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            block(find(&ms, "monthly")),
            Err(CliError::NotFound(_))
        ));
    }

    #[test]
    fn an_arn_should_go_to_the_monitor_that_knows_it() {
        let ms = [
            Fake::new("us", vec![]),
            Fake::new("eu", vec![job("x", "dddddddddddd", "Submitted")]),
        ];
        let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/dddddddddddd";
        assert_eq!(
            block(find(&ms, arn)).unwrap(),
            Found {
                monitor: 1,
                arn: arn.into()
            }
        );
        // No listing for an ARN: the name need not be unique.
        assert!(ms[0].sent.borrow().iter().all(|e| e.get("list").is_none()));
    }
}
