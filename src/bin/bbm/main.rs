//! `bbm`: the command line for people. Wiring only: arguments, the monitors
//! to ask, the command, its exit status.

/// Writes to stdout; a reader that went away (`bbm list | head -1`) ends
/// the program quietly, as a pipe's writer should.
fn stdout_write(args: std::fmt::Arguments, newline: bool) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let written = o
        .write_fmt(args)
        .and_then(|_| if newline { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|_| o.flush());
    if let Err(e) = written
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

macro_rules! outln {
    ($($t:tt)*) => { $crate::stdout_write(format_args!($($t)*), true) };
}

macro_rules! out {
    ($($t:tt)*) => { $crate::stdout_write(format_args!($($t)*), false) };
}

mod cli;
mod commands;
mod error;
mod jobs;
mod monitors;
mod show;
mod track;
mod wait;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{CliError, Exit};
use crate::monitors::{Env, Monitor};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bbm: cannot start: {e}");
            return Exit::Error.into();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("bbm: {e}");
            e.exit().into()
        }
    }
}

async fn run(cli: Cli) -> Result<Exit, CliError> {
    let specs = monitors::specs(&cli.target, &Env::from_process())?;
    let connected = futures::future::join_all(specs.iter().map(Monitor::connect)).await;
    let total = connected.len();
    let (mut ms, mut errors) = (Vec::new(), Vec::new());
    for c in connected {
        match c {
            Ok(m) => ms.push(m),
            Err(e) => errors.push(e),
        }
    }
    // A monitor that cannot be reached is its own error: a listing or a
    // digest goes on with the others; a command about one job does not guess.
    let spans_all = matches!(
        cli.command,
        Command::List(_) | Command::Watch { .. } | Command::Digest | Command::Routes
    );
    if !errors.is_empty() {
        if ms.is_empty() || !spans_all {
            return commands::failed(errors, total);
        }
        for e in &errors {
            eprintln!("bbm: {e}");
        }
    }
    let out = cli.output;
    let result = match &cli.command {
        Command::List(a) => commands::list(&ms, &a.filter, out).await,
        Command::Watch { filter, interval } => commands::watch(&ms, filter, *interval, out).await,
        Command::Describe { job } => commands::describe(&ms, job, out).await,
        Command::Track(a) => track::track(&ms, a, out).await,
        Command::Untrack(a) => track::untrack(&ms, a, out).await,
        Command::Wait(a) => wait::wait(&ms, a, out).await,
        Command::Digest => commands::digest(&ms, out).await,
        Command::Routes => commands::routes(&ms, out).await,
    };
    match result {
        Ok(_) if !errors.is_empty() => Err(CliError::SomeMonitorsFailed {
            failed: errors.len(),
            total,
        }),
        other => other,
    }
}
