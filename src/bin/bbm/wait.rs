//! `wait`: until the job ends, asking the monitor (never Bedrock) every
//! interval. A progress bar on a terminal, a line per change otherwise; the
//! exit status says how it ended.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bedrock_batch_monitor::domain::{JobArn, JobStatus};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{Output, WaitArgs};
use crate::commands::print_json;
use crate::error::{CliError, Exit};
use crate::jobs::{self, Found};
use crate::monitors::Invoke;
use crate::show;

/// Gives up after this many failed invocations in a row (a throttled or
/// briefly unreachable function does not end a six-hour wait).
const FAILED_ASKS: u32 = 3;

/// How the wait ends, from the job's status: 0 only for Completed.
pub fn exit_for(status: &str) -> Option<Exit> {
    let s = JobStatus::parse(status);
    match s {
        JobStatus::Completed => Some(Exit::Ok),
        _ if s.is_terminal() => Some(Exit::EndedBadly),
        _ => None,
    }
}

/// Where the wait's lines go: stdout for people, stderr when stdout is the
/// JSON answer.
struct Progress {
    bar: Option<ProgressBar>,
    to_stderr: bool,
    last: Option<String>,
}

impl Progress {
    fn new(output: Output) -> Self {
        let bar = (output == Output::Table && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(150));
            pb
        });
        Self {
            bar,
            to_stderr: output == Output::Json,
            last: None,
        }
    }

    fn line(&self, s: &str) {
        if let Some(pb) = &self.bar {
            pb.println(s);
        } else if self.to_stderr {
            eprintln!("{s}");
        } else {
            outln!("{s}");
        }
    }

    /// A change of status, records or ETA: a line, or the bar moved.
    fn show(&mut self, answer: &Value) {
        let now = Utc::now();
        let line = show::progress_line(answer, now);
        // What changed, without the relative times that move every second.
        let key = format!(
            "{} {} {}",
            answer["status"], answer["records"], answer["eta"]
        );
        if let Some(pb) = &self.bar {
            let r = &answer["records"];
            match (r["total"].as_u64(), r["processed"].as_u64()) {
                (Some(total), processed) if total > 0 => {
                    if pb.length() != Some(total)
                        && let Ok(style) = ProgressStyle::with_template(
                            "{spinner} {prefix} [{bar:30}] {pos}/{len} records {msg}",
                        )
                    {
                        pb.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
                        pb.set_length(total);
                    }
                    pb.set_position(processed.unwrap_or(0));
                }
                _ => {}
            }
            pb.set_prefix(format!(
                "{} {}",
                answer["jobName"].as_str().unwrap_or("?"),
                answer["status"].as_str().unwrap_or("?")
            ));
            pb.set_message(match show::eta(&answer["eta"], now).as_str() {
                "-" => String::new(),
                e => format!("ETA {e}"),
            });
        } else if self.last.as_deref() != Some(key.as_str()) {
            let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            self.line(&format!("{stamp} {line}"));
        }
        self.last = Some(key);
    }

    fn done(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// The job the wait is about; with `--track`, tracked first when it is an
/// ARN or id (the function's answer names its ARN).
async fn target<M: Invoke>(ms: &[M], args: &WaitArgs) -> Result<Found, CliError> {
    let given = args.job.trim();
    let is_id = given.len() == 12
        && given
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !args.track || !(is_id || given.parse::<JobArn>().is_ok()) {
        return jobs::find(ms, given).await;
    }
    let monitor = match given.parse::<JobArn>() {
        Ok(_) => jobs::find(ms, given).await?.monitor,
        Err(_) if ms.len() == 1 => 0,
        Err(_) => {
            return Err(CliError::usage(
                "wait --track with a job id asks one monitor: pick one with --monitor, or give the ARN",
            ));
        }
    };
    let answer = ms[monitor].invoke(&json!({ "track": [given] })).await?;
    let arn = ["tracked", "alreadyTracked"]
        .iter()
        .flat_map(|k| answer[*k].as_array().into_iter().flatten())
        .find_map(Value::as_str)
        .map(str::to_owned);
    match arn {
        Some(arn) => Ok(Found { monitor, arn }),
        None => {
            let e = &answer["errors"][0];
            Err(CliError::NotFound(format!(
                "{given} could not be tracked: {}: {}",
                e["kind"].as_str().unwrap_or("Error"),
                e["error"].as_str().unwrap_or("no reason given")
            )))
        }
    }
}

fn not_waitable(answer: &Value, arn: &str, monitor: &str) -> Option<CliError> {
    if let Some(error) = answer["error"].as_str() {
        return Some(CliError::NotFound(format!("{arn}: {error}")));
    }
    let why = match answer["tracking"].as_str() {
        None => format!(
            "is not tracked by {monitor}: nothing would see it end (`bbm wait --track` tracks it first)"
        ),
        Some("untracked") => format!(
            "was untracked at {}: nothing will see it end",
            answer["untrackedAt"].as_str().unwrap_or("?")
        ),
        Some("gone") => "is no longer known to Bedrock: the monitor stopped tracking it".to_owned(),
        Some(_) => return None,
    };
    Some(CliError::NotFound(format!("{arn} {why}")))
}

pub async fn wait<M: Invoke>(ms: &[M], args: &WaitArgs, output: Output) -> Result<Exit, CliError> {
    let found = target(ms, args).await?;
    let m = &ms[found.monitor];
    let event = json!({ "describe": found.arn });
    let started = Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let mut progress = Progress::new(output);
    let mut failures = 0;
    let mut last: Option<Value> = None;
    loop {
        match m.invoke(&event).await {
            Ok(answer) => {
                failures = 0;
                // An end is the answer, even of a job untracked since.
                let status = answer["status"].as_str().unwrap_or_default().to_owned();
                if let Some(exit) = exit_for(&status) {
                    progress.show(&answer);
                    progress.done();
                    finish(&answer, exit, output);
                    return Ok(exit);
                }
                if let Some(e) = not_waitable(&answer, &found.arn, m.name()) {
                    progress.done();
                    return Err(e);
                }
                progress.show(&answer);
                last = Some(answer);
            }
            Err(e) => {
                failures += 1;
                // Out of time without a single answer: the invocation's
                // error is the answer, not a timeout.
                let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                if failures >= FAILED_ASKS || (out_of_time && last.is_none()) {
                    progress.done();
                    return Err(e);
                }
                progress.line(&format!(
                    "bbm: {e}; asking again in {}",
                    humantime::format_duration(args.interval)
                ));
            }
        }
        let now = Instant::now();
        let pause = match deadline {
            Some(d) if now >= d => {
                progress.done();
                let status = last
                    .as_ref()
                    .and_then(|a| a["status"].as_str())
                    .unwrap_or("?");
                eprintln!(
                    "bbm: timed out after {}: {} is still {status}",
                    humantime::format_duration(args.timeout.unwrap_or_default()),
                    found.arn
                );
                if output == Output::Json
                    && let Some(a) = &last
                {
                    print_json(a);
                }
                return Ok(Exit::Timeout);
            }
            Some(d) => args.interval.min(d - now),
            None => args.interval,
        };
        tokio::time::sleep(pause).await;
    }
}

/// The last word: how the job ended, and Bedrock's message for an end that
/// was not a completion.
fn finish(answer: &Value, exit: Exit, output: Output) {
    if output == Output::Json {
        print_json(answer);
        return;
    }
    let name = answer["jobName"].as_str().unwrap_or("?");
    let status = answer["status"].as_str().unwrap_or("?");
    let took = match (
        show::time(&answer["submitTime"]),
        show::time(&answer["endTime"]),
    ) {
        (Some(s), Some(e)) => format!(" after {}", bedrock_batch_monitor::warnings::human(e - s)),
        _ => String::new(),
    };
    match (exit, answer["message"].as_str()) {
        (Exit::Ok, _) | (_, None) => outln!("{name} {status}{took}"),
        (_, Some(m)) => outln!("{name} {status}{took}: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completed_should_exit_0_and_every_other_end_3() {
        assert_eq!(exit_for("Completed"), Some(Exit::Ok));
        for s in ["Failed", "Expired", "Stopped", "PartiallyCompleted"] {
            assert_eq!(exit_for(s), Some(Exit::EndedBadly), "{s}");
        }
        for s in [
            "Submitted",
            "Validating",
            "Scheduled",
            "InProgress",
            "Stopping",
            "Paused",
        ] {
            assert_eq!(exit_for(s), None, "{s}");
        }
    }

    /// A monitor that answers each describe with the next of `answers`
    /// (the last one again when they run out), or fails every time.
    struct Scripted(Vec<Result<Value, ()>>, std::cell::Cell<usize>);

    impl Invoke for Scripted {
        fn name(&self) -> &str {
            "m"
        }
        async fn invoke(&self, _: &Value) -> Result<Value, CliError> {
            let i = self.1.get();
            self.1.set(i + 1);
            match &self.0[i.min(self.0.len() - 1)] {
                Ok(v) => Ok(v.clone()),
                Err(()) => Err(CliError::Invoke {
                    who: "m".into(),
                    error: "ResourceNotFoundException: Function not found".into(),
                }),
            }
        }
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    const ARN: &str = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdefghijkl";

    fn args(timeout_ms: u64) -> WaitArgs {
        WaitArgs {
            job: ARN.into(),
            timeout: Some(std::time::Duration::from_millis(timeout_ms)),
            interval: std::time::Duration::from_millis(5),
            track: false,
        }
    }

    #[test]
    fn a_job_that_ended_and_was_untracked_since_should_exit_by_its_end() {
        for (status, exit) in [("Completed", Exit::Ok), ("Failed", Exit::EndedBadly)] {
            let m = Scripted(
                vec![Ok(
                    json!({"jobArn": ARN, "tracked": false, "tracking": "untracked", "status": status}),
                )],
                Default::default(),
            );
            let got = block(wait(&[m], &args(1000), Output::Json));
            assert_eq!(got.ok(), Some(exit), "{status}");
        }
    }

    #[test]
    fn a_function_that_never_answers_should_be_an_error_not_a_timeout() {
        let m = Scripted(vec![Err(())], Default::default());
        let got = block(wait(&[m], &args(1), Output::Json));
        assert_eq!(got.map_err(|e| e.exit()).unwrap_err(), Exit::Error);
    }

    #[test]
    fn a_job_nothing_watches_should_not_be_waited_for() {
        let arn = "arn:x";
        assert!(not_waitable(&json!({"jobArn": arn, "tracked": false}), arn, "m").is_some());
        assert!(not_waitable(&json!({"tracking": "untracked"}), arn, "m").is_some());
        assert!(not_waitable(&json!({"tracking": "gone"}), arn, "m").is_some());
        assert!(not_waitable(&json!({"tracking": "active"}), arn, "m").is_none());
        assert!(not_waitable(&json!({"tracking": "finished"}), arn, "m").is_none());
    }
}
