//! [`MetricsSink`] as CloudWatch Embedded Metric Format: one document per
//! invocation, written to stdout (CloudWatch Logs extracts the metrics), with
//! metrique's EMF writer. Dimension: the function's name, so two stacks that
//! share a namespace do not mix.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metrique::emf::Emf;
use metrique::emf::flags::NoMetric;
use metrique::unit::{Count, Millisecond, Second};
use metrique::unit_of_work::metrics;
use metrique::writer::{EntryIoStream, FormatExt};
use metrique::{CloseValue, RootEntry};

use crate::config::MetricSet;
use crate::ports::{InvocationReport, MetricsSink};

/// The Bedrock error kinds with a metric of their own (`BedrockErrors<Kind>`).
const BEDROCK_KINDS: [&str; 7] = [
    "BedrockNotFound",
    "BedrockAccessDenied",
    "BedrockValidation",
    "BedrockThrottling",
    "BedrockInternal",
    "BedrockUnreachable",
    "BedrockOther",
];

/// The metric names of the lean set (`METRICS=lean`, the default): what the
/// alarms and the dashboard use. Every other count is a property of the same
/// document. `tests/template.rs` checks the alarms and the dashboard against it.
pub const LEAN_METRICS: [&str; 11] = [
    "Polled",
    "Transitions",
    "Notified",
    "PendingNotifications",
    "OldestPendingNotificationAge",
    "Undeliverable",
    "Failed",
    "BedrockErrors",
    "UnusableSettings",
    "DestinationFailures",
    "MemberRoleFailures",
];

/// One invocation's EMF entry. Generated twice: the counts outside
/// [`LEAN_METRICS`] are written with `$extra` flags (`NoMetric`: a number
/// property, not declared a metric) in the lean entry, and as metrics in the
/// full one. Field order and names are the same in both.
macro_rules! invocation_metrics {
    ($name:ident $(, $extra:ident)?) => {
        #[metrics(rename_all = "PascalCase")]
        struct $name {
            #[metrics(timestamp)]
            timestamp: SystemTime,
            /// The dimension.
            function_name: String,
            /// Properties (not metrics): what ran and how it ended.
            command: &'static str,
            outcome: String,
            #[metrics(unit = Count)]
            polled: u64,
            #[metrics(unit = Count)]
            transitions: u64,
            #[metrics(unit = Count)]
            notified: u64,
            #[metrics(unit = Count)]
            pending_notifications: u64,
            #[metrics(unit = Second)]
            oldest_pending_notification_age: Option<Duration>,
            #[metrics(unit = Count)]
            undeliverable: u64,
            #[metrics(unit = Count)]
            failed: u64,
            #[metrics(unit = Count)]
            bedrock_errors: u64,
            /// Settings turned off (or to their default) for a value the
            /// function cannot use: the same number in every document while
            /// the value stays (UnusableSettingsAlarm).
            #[metrics(unit = Count)]
            unusable_settings: u64,
            /// Publishes that failed at a destination other than the job
            /// topic (the Slack topic): DestinationFailuresAlarm.
            #[metrics(unit = Count)]
            destination_failures: u64,
            /// Reads of a member account whose role could not be assumed
            /// (MemberRoleUnavailable): MemberRoleAlarm.
            #[metrics(unit = Count)]
            member_role_failures: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            deferred: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            warnings: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            discovered: u64,
            /// Bedrock events left alone: for untracked jobs, jobs outside
            /// WATCH, or accounts that are not members (`ignored`).
            #[metrics(unit = Count $(, flags($extra))?)]
            ignored: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_get_calls: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_list_calls: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_tag_calls: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_not_found: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_access_denied: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_validation: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_throttling: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_internal: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_unreachable: u64,
            #[metrics(unit = Count $(, flags($extra))?)]
            bedrock_errors_other: u64,
            #[metrics(unit = Millisecond $(, flags($extra))?)]
            duration: Duration,
        }

        impl $name {
            fn from_report(function_name: &str, r: &InvocationReport) -> Self {
                let by_kind = |kind: &str| r.bedrock_errors.get(kind).copied().unwrap_or(0);
                let call = |op: &str| r.bedrock_calls.get(op).copied().unwrap_or(0);
                Self {
                    timestamp: SystemTime::now(),
                    function_name: function_name.to_owned(),
                    command: r.command,
                    outcome: r.outcome.clone(),
                    polled: r.polled,
                    transitions: r.transitions,
                    notified: r.notified,
                    pending_notifications: r.pending,
                    oldest_pending_notification_age: r.oldest_pending_age,
                    undeliverable: r.undeliverable,
                    failed: r.failed,
                    bedrock_errors: BEDROCK_KINDS.iter().map(|k| by_kind(k)).sum(),
                    unusable_settings: r.unusable_settings,
                    destination_failures: r.destination_failures,
                    member_role_failures: r.member_role_failures,
                    deferred: r.deferred,
                    warnings: r.warnings,
                    discovered: r.discovered,
                    ignored: r.ignored,
                    bedrock_get_calls: call("GetModelInvocationJob"),
                    bedrock_list_calls: call("ListModelInvocationJobs"),
                    bedrock_tag_calls: call("ListTagsForResource"),
                    bedrock_errors_not_found: by_kind("BedrockNotFound"),
                    bedrock_errors_access_denied: by_kind("BedrockAccessDenied"),
                    bedrock_errors_validation: by_kind("BedrockValidation"),
                    bedrock_errors_throttling: by_kind("BedrockThrottling"),
                    bedrock_errors_internal: by_kind("BedrockInternal"),
                    bedrock_errors_unreachable: by_kind("BedrockUnreachable"),
                    bedrock_errors_other: by_kind("BedrockOther"),
                    duration: r.duration,
                }
            }
        }
    };
}

invocation_metrics!(LeanInvocationMetrics, NoMetric);
invocation_metrics!(FullInvocationMetrics);

/// Where the documents go: stdout in Lambda, a buffer in tests.
pub type Output = Arc<Mutex<dyn Write + Send>>;

pub struct EmfMetrics {
    namespace: String,
    function_name: String,
    set: MetricSet,
    output: Output,
}

impl EmfMetrics {
    /// Writes to stdout.
    pub fn new(namespace: impl Into<String>, function_name: impl Into<String>) -> Self {
        Self::with_output(
            namespace,
            function_name,
            Arc::new(Mutex::new(std::io::stdout())),
        )
    }

    pub fn with_output(
        namespace: impl Into<String>,
        function_name: impl Into<String>,
        output: Output,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            function_name: function_name.into(),
            set: MetricSet::Lean,
            output,
        }
    }

    /// Which counts are metrics (`METRICS`); lean unless told.
    pub fn with_set(mut self, set: MetricSet) -> Self {
        self.set = set;
        self
    }
}

impl MetricsSink for EmfMetrics {
    fn emit(&self, report: &InvocationReport) {
        match self.set {
            MetricSet::Lean => self.write(RootEntry::new(
                LeanInvocationMetrics::from_report(&self.function_name, report).close(),
            )),
            MetricSet::Full => self.write(RootEntry::new(
                FullInvocationMetrics::from_report(&self.function_name, report).close(),
            )),
        }
    }
}

impl EmfMetrics {
    fn write(&self, entry: impl metrique::writer::Entry) {
        let mut out = self.output.lock().unwrap_or_else(|e| e.into_inner());
        let mut stream = Emf::builder(
            self.namespace.clone(),
            vec![vec!["FunctionName".to_owned()]],
        )
        .build()
        .output_to(&mut *out);
        // Metrics must never fail the invocation: a write error is only logged.
        if let Err(e) = stream
            .next(&entry)
            .map_err(|e| e.to_string())
            .and_then(|()| stream.flush().map_err(|e| e.to_string()))
        {
            tracing::warn!(error = %e, "could not write the invocation's metrics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn one_report_should_be_one_emf_document_with_every_count_and_the_function_as_dimension() {
        for set in [MetricSet::Lean, MetricSet::Full] {
            one_document(set);
        }
    }

    fn one_document(set: MetricSet) {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = EmfMetrics::with_output("TestNs", "monitor-fn", buffer.clone()).with_set(set);
        let report = InvocationReport {
            command: "Poll",
            outcome: "Ok".into(),
            polled: 12,
            transitions: 2,
            notified: 2,
            deferred: 1,
            failed: 3,
            warnings: 2,
            discovered: 5,
            ignored: 4,
            bedrock_calls: BTreeMap::from([
                ("GetModelInvocationJob".to_owned(), 7),
                ("ListModelInvocationJobs".to_owned(), 2),
            ]),
            undeliverable: 1,
            pending: 4,
            oldest_pending_age: Some(Duration::from_secs(90)),
            bedrock_errors: BTreeMap::from([
                ("BedrockThrottling".to_owned(), 2),
                ("BedrockAccessDenied".to_owned(), 1),
            ]),
            unusable_settings: 1,
            destination_failures: 2,
            member_role_failures: 3,
            duration: Duration::from_millis(1234),
        };

        sink.emit(&report);

        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let doc: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "TestNs", "{doc}");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]]),
            "{doc}"
        );
        assert_eq!(doc["FunctionName"], "monitor-fn");
        assert_eq!(doc["Command"], "Poll");
        for (name, value) in [
            ("Polled", 12.0),
            ("Transitions", 2.0),
            ("Notified", 2.0),
            ("PendingNotifications", 4.0),
            ("OldestPendingNotificationAge", 90.0),
            ("Undeliverable", 1.0),
            ("Deferred", 1.0),
            ("Warnings", 2.0),
            ("Discovered", 5.0),
            ("Ignored", 4.0),
            ("BedrockGetCalls", 7.0),
            ("BedrockListCalls", 2.0),
            ("BedrockTagCalls", 0.0),
            ("BedrockErrors", 3.0),
            ("BedrockErrorsThrottling", 2.0),
            ("BedrockErrorsAccessDenied", 1.0),
            ("UnusableSettings", 1.0),
            ("DestinationFailures", 2.0),
            ("MemberRoleFailures", 3.0),
            ("Duration", 1234.0),
        ] {
            assert_eq!(doc[name].as_f64(), Some(value), "{name} in {doc}");
            let declared = directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["Name"] == name);
            let metric = set == MetricSet::Full || LEAN_METRICS.contains(&name);
            assert_eq!(
                declared, metric,
                "{name} declared a metric: {declared}, {set:?}, {doc}"
            );
        }
        let declared: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        match set {
            MetricSet::Lean => assert_eq!(declared, LEAN_METRICS, "{doc}"),
            MetricSet::Full => assert_eq!(declared.len(), 26, "{declared:?}"),
        }
        assert!(declared.len() <= 11 || set == MetricSet::Full);
    }
}
