//! The command line: subcommands, flags and `--help`, from one derive.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bedrock_batch_monitor::domain::JobStatus;
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

pub const EXIT_STATUS: &str = "\
Exit status:
  0  done; for `wait`, the job Completed
  1  error: the invocation failed (the function's error, Lambda's, the network's or the
     credentials'), an item of track/untrack was refused, describe found no such job,
     or no watched job has that name
  2  usage: arguments, the config file, no monitor named, or a name that matches several jobs
  3  `wait`: the job ended without completing: Failed, Expired, Stopped or PartiallyCompleted
  4  `wait`: --timeout passed before the job ended

The monitor: --function NAME|ARN, or --stack NAME (its FunctionName output), or the
environment variable BBM_FUNCTION, or every monitor of the config file
(--config, BBM_CONFIG, else $XDG_CONFIG_HOME/bbm/config.toml or ~/.config/bbm/config.toml).
Credentials, region and endpoints come from the AWS SDK's usual sources (--profile,
--region, AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_LAMBDA, ...). See docs/cli.md.";

#[derive(Debug, Parser)]
#[command(
    name = "bbm",
    version,
    about = "Bedrock batch jobs, as the bedrock-batch-monitor function watches them",
    long_about = "Bedrock batch jobs, as the bedrock-batch-monitor function watches them.\n\n\
                  bbm asks a deployed monitor by invoking its function (lambda:InvokeFunction), \
                  and nothing else; --stack also reads the stack's outputs (cloudformation:DescribeStacks).",
    after_help = EXIT_STATUS
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    /// How to print answers: tables and lines for people, or the function's JSON answer for scripts.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// Which monitor, with which credentials.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Which monitor")]
pub struct Target {
    /// The monitor's function: its name or ARN (else BBM_FUNCTION, else the config file).
    #[arg(long, global = true, value_name = "NAME|ARN", conflicts_with = "stack")]
    pub function: Option<String>,
    /// The monitor's stack: its FunctionName output names the function.
    #[arg(long, global = true, value_name = "NAME")]
    pub stack: Option<String>,
    /// A monitor of the config file, by its name (repeat for several; default: all of them).
    #[arg(long = "monitor", short, global = true, value_name = "NAME")]
    pub monitors: Vec<String>,
    /// The config file naming several monitors.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A named profile of the AWS CLI's config and credentials files.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// The AWS Region of the function.
    #[arg(long, global = true)]
    pub region: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The jobs being watched (running ones; --ended adds the ended ones the table keeps).
    List(ListArgs),
    /// One job's story: a timeline of its phases, Bedrock's message, records, cost, notifications.
    Describe {
        /// The job's ARN, or its name or id where unique among the watched jobs.
        #[arg(value_name = "NAME|ARN")]
        job: String,
    },
    /// Start watching jobs (ARNs or ids; from arguments, --file or stdin).
    Track(TrackArgs),
    /// Stop watching jobs (ARNs, or names of watched jobs; from arguments, --file or stdin).
    Untrack(ItemsArgs),
    /// Wait until the job ends: exit 0 when it Completed, 3 when it ended otherwise, 4 on --timeout.
    Wait(WaitArgs),
    /// A live view of the running jobs, refreshed until Ctrl-C.
    Watch {
        #[command(flatten)]
        filter: Filter,
        /// How often to refresh.
        #[arg(long, value_parser = duration, default_value = "10s")]
        interval: Duration,
    },
    /// Send the digest now (what runs, what ended, open warnings, the monitor's health).
    Digest,
    /// The notification routes (the stack's Slack channel, each team's): policy, topic, deliveries.
    Routes,
}

#[derive(Debug, Clone, Default, Args)]
pub struct Filter {
    /// Also the ended jobs the table still keeps, after the running ones.
    #[arg(long)]
    pub ended: bool,
    /// Only jobs with one of these statuses (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',', value_parser = PossibleValuesParser::new(JobStatus::KNOWN))]
    pub status: Vec<String>,
    /// Only jobs with this label (repeat: all of them).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
    /// Only jobs of these accounts, where the monitor watches member accounts (repeat, or commas).
    #[arg(long = "account", value_name = "ACCOUNT_ID", value_delimiter = ',', value_parser = account)]
    pub accounts: Vec<String>,
}

impl Filter {
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.labels.iter().cloned().collect()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Debug, Clone, Args)]
pub struct ItemsArgs {
    /// Job ARNs (or ids); `-` reads them from stdin.
    #[arg(value_name = "ARN")]
    pub jobs: Vec<String>,
    /// A file of job ARNs, one a line or separated by spaces (`#` starts a comment); `-` is stdin.
    #[arg(long, short, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TrackArgs {
    #[command(flatten)]
    pub items: ItemsArgs,
    /// A label for subscribers' filters, given to each job (repeat; at most 3).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// The job's ARN, or its name or id where unique among the watched jobs.
    #[arg(value_name = "NAME|ARN")]
    pub job: String,
    /// Give up after this long (exit 4), e.g. 90m, 6h, 1d.
    #[arg(long, value_parser = duration)]
    pub timeout: Option<Duration>,
    /// How often to ask the monitor (it learns of changes at its own poll rate and from Bedrock's events).
    #[arg(long, value_parser = duration, default_value = "15s")]
    pub interval: Duration,
    /// Track the job first when it is not tracked yet (an ARN or id).
    #[arg(long)]
    pub track: bool,
}

fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e}: a duration such as 30s, 90m, 6h or 1d"))?;
    if d.is_zero() {
        return Err("a duration longer than zero".to_owned());
    }
    Ok(d)
}

fn label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

fn account(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not an AWS account id (12 digits)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bbm").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_should_be_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_should_list_the_exit_statuses() {
        let help = Cli::command().render_long_help().to_string();
        for code in ["0  done", "1  error", "2  usage", "3  `wait`", "4  `wait`"] {
            assert!(help.contains(code), "{code:?} missing from:\n{help}");
        }
    }

    #[test]
    fn list_filters_should_parse_as_people_write_them() {
        let cli = parse(&[
            "list",
            "--ended",
            "--status",
            "InProgress,Failed",
            "--label",
            "team=search",
            "--account",
            "123456789012",
            "--function",
            "mon",
        ])
        .unwrap();
        let Command::List(ListArgs { filter }) = cli.command else {
            panic!()
        };
        assert!(filter.ended);
        assert_eq!(filter.status, ["InProgress", "Failed"]);
        assert_eq!(
            filter.labels(),
            BTreeMap::from([("team".into(), "search".into())])
        );
        assert_eq!(filter.accounts, ["123456789012"]);
        assert_eq!(cli.target.function.as_deref(), Some("mon"));
    }

    #[test]
    fn bad_values_should_be_usage_errors() {
        for args in [
            &["list", "--status", "Running"][..],
            &["list", "--label", "team"],
            &["list", "--account", "12345"],
            &["wait", "job", "--timeout", "soon"],
            &["list", "--function", "a", "--stack", "b"],
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    #[test]
    fn wait_should_take_a_timeout_in_hours() {
        let cli = parse(&["wait", "nightly", "--timeout", "6h"]).unwrap();
        let Command::Wait(w) = cli.command else {
            panic!()
        };
        assert_eq!(w.timeout, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(w.interval, Duration::from_secs(15));
    }
}
