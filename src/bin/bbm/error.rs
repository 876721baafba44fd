//! What can go wrong in `bbm`, and the exit status each cause gives.

use std::fmt;
use std::process::ExitCode;

/// The exit statuses, as `bbm --help` and docs/cli.md list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `wait`, the job Completed.
    Ok = 0,
    /// The invocation failed (the function's error, Lambda's, the network's),
    /// an item was refused, or no watched job has that name.
    Error = 1,
    /// Arguments, the config file, no monitor named, or a name that matches
    /// several jobs (clap's own usage errors exit 2 too).
    Usage = 2,
    /// `wait`: the job ended but did not complete (Failed, Expired, Stopped,
    /// PartiallyCompleted).
    EndedBadly = 3,
    /// `wait`: the timeout passed before the job ended.
    Timeout = 4,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// One job a name matched, for the message that lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub monitor: String,
    pub arn: String,
    pub status: String,
    pub submitted: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("the config file {path}: {reason}")]
    Config { path: String, reason: String },
    /// Lambda, the network or the credentials: the function did not answer.
    /// `who`: the function, and the monitor's name when it has another.
    #[error("could not invoke {who}: {error}")]
    Invoke { who: String, error: String },
    /// The function answered with an error (Lambda's `FunctionError`).
    #[error("the function {who} failed: {error_type}: {message}")]
    Function {
        who: String,
        error_type: String,
        message: String,
    },
    #[error("the stack {stack}: {error}")]
    Stack { stack: String, error: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{}", ambiguous(.name, .matches))]
    Ambiguous { name: String, matches: Vec<Match> },
    /// Some items of a track or untrack were refused; each was printed.
    #[error("{failed} of {total} items were refused (listed above)")]
    ItemsRefused { failed: usize, total: usize },
    /// Several monitors were asked and some failed; each error was printed.
    #[error("{failed} of {total} monitors failed (listed above)")]
    SomeMonitorsFailed { failed: usize, total: usize },
    #[error("reading {what}: {error}")]
    Read { what: String, error: std::io::Error },
}

fn ambiguous(name: &str, matches: &[Match]) -> String {
    let mut s = format!(
        "{name:?} names {} watched jobs; name one by its ARN:",
        matches.len()
    );
    for m in matches {
        s.push_str(&format!(
            "\n  {}  {}  submitted {}  ({})",
            m.arn, m.status, m.submitted, m.monitor
        ));
    }
    s
}

impl CliError {
    pub fn exit(&self) -> Exit {
        match self {
            Self::Usage(_) | Self::Config { .. } | Self::Ambiguous { .. } => Exit::Usage,
            _ => Exit::Error,
        }
    }

    pub fn usage(message: impl fmt::Display) -> Self {
        Self::Usage(message.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_name_is_ambiguous_the_message_should_list_every_match_and_exit_2() {
        let e = CliError::Ambiguous {
            name: "nightly".into(),
            matches: vec![
                Match {
                    monitor: "prod".into(),
                    arn: "arn:a".into(),
                    status: "InProgress".into(),
                    submitted: "2026-01-01T00:00:00Z".into(),
                },
                Match {
                    monitor: "prod".into(),
                    arn: "arn:b".into(),
                    status: "Failed".into(),
                    submitted: "2025-12-31T00:00:00Z".into(),
                },
            ],
        };
        let text = e.to_string();
        assert!(text.contains("2 watched jobs"), "{text}");
        assert!(text.contains("arn:a") && text.contains("arn:b"), "{text}");
        assert_eq!(e.exit(), Exit::Usage);
    }

    #[test]
    fn the_exit_statuses_should_be_the_documented_numbers() {
        let codes = [
            Exit::Ok,
            Exit::Error,
            Exit::Usage,
            Exit::EndedBadly,
            Exit::Timeout,
        ]
        .map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(
            CliError::Function {
                who: "f".into(),
                error_type: "TableUnavailable".into(),
                message: "x".into()
            }
            .exit(),
            Exit::Error
        );
    }
}
