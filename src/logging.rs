//! The function's own log lines: JSON (or text locally), at `LOG_LEVEL`.
//!
//! The template leaves Lambda's application-log filter open (TRACE) and gives
//! the level here instead. Lambda counts a JSON line without a `level` as INFO,
//! so its filter at WARN or ERROR would drop the metrics documents (EMF, which
//! carry no level) and with them every alarm and the dashboard; the level set
//! here applies to `tracing` lines only, never to the metrics written beside them.

use lambda_runtime::tracing::subscriber;
use tracing::level_filters::LevelFilter;

/// Installs the process's subscriber: lines at `level` and above, on stdout;
/// JSON when Lambda says `AWS_LAMBDA_LOG_FORMAT=JSON`.
pub fn init(level: LevelFilter) {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level)
        .with_writer(std::io::stdout);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
