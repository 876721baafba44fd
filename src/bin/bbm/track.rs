//! `track` and `untrack`: any number of jobs, from arguments, a file or
//! stdin, sent in requests of the function's limit.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Read};

use bedrock_batch_monitor::domain::JobArn;
use bedrock_batch_monitor::event::MAX_ITEMS_PER_REQUEST;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{ItemsArgs, Output, TrackArgs};
use crate::commands::print_json;
use crate::error::{CliError, Exit};
use crate::jobs::Catalog;
use crate::monitors::Invoke;

/// The words of a list of jobs: whitespace-separated, `#` to the end of a
/// line is a comment.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(before, _)| before))
        .flat_map(str::split_whitespace)
}

/// The jobs named on the command line, in `--file`, or on stdin (`-`), in
/// order, each once.
pub fn items(args: &ItemsArgs, mut stdin: impl Read) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut stdin_text: Option<String> = None;
    let mut read_stdin = |out: &mut Vec<String>| -> Result<(), CliError> {
        if stdin_text.is_none() {
            let mut s = String::new();
            stdin
                .read_to_string(&mut s)
                .map_err(|error| CliError::Read {
                    what: "stdin".into(),
                    error,
                })?;
            out.extend(words(&s).map(str::to_owned));
            stdin_text = Some(s);
        }
        Ok(())
    };
    for j in &args.jobs {
        if j == "-" {
            read_stdin(&mut out)?;
        } else {
            out.push(j.trim().to_owned());
        }
    }
    match args.file.as_deref() {
        Some(p) if p.as_os_str() == "-" => read_stdin(&mut out)?,
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|error| CliError::Read {
                what: p.display().to_string(),
                error,
            })?;
            out.extend(words(&text).map(str::to_owned));
        }
        None => {}
    }
    let mut seen = HashSet::new();
    out.retain(|j| !j.is_empty() && seen.insert(j.clone()));
    if out.is_empty() {
        return Err(CliError::usage(
            "no jobs given: pass ARNs, --file PATH, or - to read them from stdin",
        ));
    }
    Ok(out)
}

/// What the requests answered, added up: the function's own fields.
#[derive(Debug, Default)]
struct Tally {
    lists: BTreeMap<&'static str, Vec<Value>>,
    counts: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn add(&mut self, answer: &Value, lists: &[&'static str], counts: &[&'static str]) {
        for k in lists {
            self.lists
                .entry(k)
                .or_default()
                .extend(answer[*k].as_array().into_iter().flatten().cloned());
        }
        for k in counts {
            *self.counts.entry(k).or_default() += answer[*k].as_u64().unwrap_or(0);
        }
    }

    fn json(&self) -> Value {
        let mut o = serde_json::Map::new();
        for (k, v) in &self.lists {
            o.insert((*k).into(), json!(v));
        }
        for (k, v) in &self.counts {
            o.insert((*k).into(), json!(v));
        }
        Value::Object(o)
    }

    fn list(&self, k: &str) -> &[Value] {
        self.lists.get(k).map_or(&[], Vec::as_slice)
    }
}

fn bar(items: usize) -> Option<ProgressBar> {
    (items > MAX_ITEMS_PER_REQUEST && std::io::stderr().is_terminal()).then(|| {
        let pb = ProgressBar::new(items as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} jobs {msg}") {
            pb.set_style(style);
        }
        pb
    })
}

/// Sends `items` in requests of at most the function's limit, one after
/// the other. A request that fails stops there: the jobs before it are
/// done, the rest not sent (both commands are idempotent: run it again).
async fn batched<M: Invoke>(
    m: &M,
    command: &str,
    items: &[Value],
    tally: &mut Tally,
    lists: &[&'static str],
    counts: &[&'static str],
) -> Result<(), CliError> {
    let pb = bar(items.len());
    for (i, chunk) in items.chunks(MAX_ITEMS_PER_REQUEST).enumerate() {
        let answer = match m.invoke(&json!({ command: chunk })).await {
            Ok(a) => a,
            Err(e) => {
                if let Some(pb) = &pb {
                    pb.abandon();
                }
                let done = i * MAX_ITEMS_PER_REQUEST;
                if done > 0 {
                    eprintln!(
                        "bbm: {done} of {} jobs were sent; the rest, from {}, were not (`{command}` can be run again)",
                        items.len(),
                        chunk[0]
                            .as_str()
                            .unwrap_or_else(|| chunk[0]["jobArn"].as_str().unwrap_or("?"))
                    );
                }
                return Err(e);
            }
        };
        tally.add(&answer, lists, counts);
        if let Some(pb) = &pb {
            pb.inc(chunk.len() as u64);
        }
    }
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    Ok(())
}

fn print_lines(tally: &Tally, groups: &[(&str, &str)]) {
    for (key, word) in groups {
        for v in tally.list(key) {
            match v {
                Value::String(arn) => outln!("{word:<16}{arn}"),
                other => outln!(
                    "{word:<16}{}  {}",
                    other["jobArn"].as_str().unwrap_or("?"),
                    crate::show::labels(&other["labels"])
                ),
            }
        }
    }
}

/// Prints each error with the function's words. An item the function did
/// what was asked for (listed under one of `done`) but said something of
/// (tracked without labels, a first notification not delivered yet) is a
/// warning; only the others are refusals, and they decide the exit.
fn refused(tally: &Tally, total: usize, done: &[&str]) -> Result<Exit, CliError> {
    let errors = tally.list("errors");
    let is_done = |arn: &Value| done.iter().any(|k| tally.list(k).contains(arn));
    let mut failed = 0;
    for e in errors {
        let what = if is_done(&e["jobArn"]) {
            "warning"
        } else {
            failed += 1;
            "refused"
        };
        eprintln!(
            "{what:<15} {}  {}: {}",
            e["jobArn"].as_str().unwrap_or("?"),
            e["kind"].as_str().unwrap_or("Error"),
            e["error"].as_str().unwrap_or_default()
        );
    }
    if failed == 0 {
        Ok(Exit::Ok)
    } else {
        Err(CliError::ItemsRefused { failed, total })
    }
}

pub async fn track<M: Invoke>(
    ms: &[M],
    args: &TrackArgs,
    output: Output,
) -> Result<Exit, CliError> {
    let [m] = ms else {
        let names: Vec<&str> = ms.iter().map(|m| m.name()).collect();
        return Err(CliError::usage(format!(
            "track asks one monitor: pick one with --monitor ({})",
            names.join(", ")
        )));
    };
    let jobs = items(&args.items, std::io::stdin())?;
    let labels: BTreeMap<&str, &str> = args
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let requests: Vec<Value> = jobs
        .iter()
        .map(|j| {
            if labels.is_empty() {
                json!(j)
            } else {
                json!({"jobArn": j, "labels": labels})
            }
        })
        .collect();
    let mut tally = Tally::default();
    batched(
        m,
        "track",
        &requests,
        &mut tally,
        &["tracked", "alreadyTracked", "labelsMerged", "errors"],
        &["notified", "failed"],
    )
    .await?;
    match output {
        Output::Json => print_json(&tally.json()),
        Output::Table => print_lines(
            &tally,
            &[
                ("tracked", "tracked"),
                ("alreadyTracked", "already tracked"),
                ("labelsMerged", "labels now"),
            ],
        ),
    }
    refused(&tally, jobs.len(), &["tracked", "alreadyTracked"])
}

pub async fn untrack<M: Invoke>(
    ms: &[M],
    args: &ItemsArgs,
    output: Output,
) -> Result<Exit, CliError> {
    let jobs = items(args, std::io::stdin())?;
    // Names are looked up among the watched jobs (one listing for all of
    // them); an ARN goes to every monitor, and counts as untracked where one
    // of them tracked it.
    let (arns, names): (Vec<&String>, Vec<&String>) =
        jobs.iter().partition(|j| j.parse::<JobArn>().is_ok());
    let mut per_monitor: Vec<Vec<Value>> = vec![arns.iter().map(|a| json!(a)).collect(); ms.len()];
    if !names.is_empty() {
        let catalog = Catalog::read(ms).await?;
        for n in names {
            let found = catalog.find(n)?;
            per_monitor[found.monitor].push(json!(found.arn));
        }
    }
    let mut tallies = Vec::new();
    for (m, items) in ms.iter().zip(&per_monitor) {
        let mut t = Tally::default();
        if !items.is_empty() {
            batched(
                m,
                "untrack",
                items,
                &mut t,
                &["untracked", "notTracked", "errors"],
                &["failed"],
            )
            .await?;
        }
        tallies.push(t);
    }
    let mut tally = Tally::default();
    let untracked: HashSet<Value> = tallies
        .iter()
        .flat_map(|t| t.list("untracked").iter().cloned())
        .collect();
    for t in &tallies {
        tally.add(&t.json(), &["untracked", "errors"], &["failed"]);
    }
    let mut not_tracked: Vec<Value> = Vec::new();
    for t in &tallies {
        for v in t.list("notTracked") {
            if !untracked.contains(v) && !not_tracked.contains(v) {
                not_tracked.push(v.clone());
            }
        }
    }
    tally.lists.insert("notTracked", not_tracked);
    match output {
        Output::Json => print_json(&tally.json()),
        Output::Table => print_lines(
            &tally,
            &[("untracked", "untracked"), ("notTracked", "not tracked")],
        ),
    }
    refused(&tally, jobs.len(), &["untracked"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::tests::{Fake, job};
    use std::path::PathBuf;

    fn args(jobs: &[&str], file: Option<&str>) -> ItemsArgs {
        ItemsArgs {
            jobs: jobs.iter().map(|s| s.to_string()).collect(),
            file: file.map(PathBuf::from),
        }
    }

    fn arn(i: usize) -> String {
        format!("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/job{i:09}")
    }

    #[test]
    fn items_should_come_from_arguments_a_file_and_stdin_each_once() {
        let path = std::env::temp_dir().join(format!("bbm-items-{}", std::process::id()));
        std::fs::write(
            &path,
            format!("# jobs\n{} {}\n\n{} # again\n", arn(1), arn(2), arn(1)),
        )
        .unwrap();
        let got = items(
            &args(&[&arn(0), "-"], Some(path.to_str().unwrap())),
            format!("{}\n{}\n", arn(3), arn(0)).as_bytes(),
        )
        .unwrap();
        assert_eq!(got, [arn(0), arn(3), arn(1), arn(2)]);
        let e = items(&args(&[], None), &b""[..]).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Answers track requests: every item tracked.
    struct Tracker(std::cell::RefCell<Vec<usize>>);

    impl Invoke for Tracker {
        fn name(&self) -> &str {
            "t"
        }
        async fn invoke(&self, payload: &Value) -> Result<Value, CliError> {
            let items = payload["track"].as_array().unwrap();
            self.0.borrow_mut().push(items.len());
            Ok(
                json!({"tracked": items, "alreadyTracked": [], "labelsMerged": [], "errors": [], "notified": items.len(), "failed": 0}),
            )
        }
    }

    #[test]
    fn any_number_of_jobs_should_go_in_requests_of_the_functions_limit() {
        let jobs: Vec<Value> = (0..250).map(|i| json!(arn(i))).collect();
        let t = Tracker(Default::default());
        let mut tally = Tally::default();
        block(batched(
            &t,
            "track",
            &jobs,
            &mut tally,
            &["tracked", "errors"],
            &["notified"],
        ))
        .unwrap();
        assert_eq!(*t.0.borrow(), [100, 100, 50]);
        assert_eq!(tally.list("tracked").len(), 250);
        assert_eq!(tally.json()["notified"], 250);
    }

    #[test]
    fn an_item_tracked_with_an_error_should_be_a_warning_not_a_refusal() {
        let mut tally = Tally::default();
        tally.lists.insert("tracked", vec![json!(arn(1))]);
        tally.lists.insert(
            "errors",
            vec![json!({"jobArn": arn(1), "kind": "LabelsUnavailable", "error": "tracked, without labels"})],
        );
        assert_eq!(
            refused(&tally, 1, &["tracked", "alreadyTracked"]).ok(),
            Some(Exit::Ok)
        );
        tally
            .lists
            .get_mut("errors")
            .unwrap()
            .push(json!({"jobArn": arn(2), "kind": "AccountNotMember", "error": "not a member"}));
        let e = refused(&tally, 2, &["tracked", "alreadyTracked"]).unwrap_err();
        assert!(
            matches!(
                e,
                CliError::ItemsRefused {
                    failed: 1,
                    total: 2
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn untrack_should_look_names_up_and_send_their_arns() {
        let m = Fake::new("m", vec![job("nightly", "aaaaaaaaaaaa", "InProgress")]);
        // The fake answers lists; an untrack gets an empty page back, which is enough here.
        let ms = [m];
        let _ = block(untrack(&ms, &args(&["nightly"], None), Output::Json));
        let sent = ms[0].sent.borrow();
        let untrack = sent.iter().find(|e| e.get("untrack").is_some()).unwrap();
        assert_eq!(
            untrack["untrack"],
            json!(["arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/aaaaaaaaaaaa"])
        );
    }
}
