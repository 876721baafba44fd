//! [`MetricsSink`] as CloudWatch Embedded Metric Format: one document per
//! invocation, written to stdout (CloudWatch Logs extracts the metrics), with
//! metrique's EMF writer. Dimension: the function's name, so two stacks that
//! share a namespace do not mix.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use metrique::emf::Emf;
use metrique::unit::{Count, Millisecond, Second};
use metrique::unit_of_work::metrics;
use metrique::writer::{EntryIoStream, FormatExt};
use metrique::{CloseValue, RootEntry};

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

#[metrics(rename_all = "PascalCase")]
struct InvocationMetrics {
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
    deferred: u64,
    #[metrics(unit = Count)]
    failed: u64,
    #[metrics(unit = Count)]
    warnings: u64,
    #[metrics(unit = Count)]
    discovered: u64,
    #[metrics(unit = Count)]
    bedrock_get_calls: u64,
    #[metrics(unit = Count)]
    bedrock_list_calls: u64,
    #[metrics(unit = Count)]
    bedrock_tag_calls: u64,
    #[metrics(unit = Count)]
    bedrock_errors: u64,
    #[metrics(unit = Count)]
    bedrock_errors_not_found: u64,
    #[metrics(unit = Count)]
    bedrock_errors_access_denied: u64,
    #[metrics(unit = Count)]
    bedrock_errors_validation: u64,
    #[metrics(unit = Count)]
    bedrock_errors_throttling: u64,
    #[metrics(unit = Count)]
    bedrock_errors_internal: u64,
    #[metrics(unit = Count)]
    bedrock_errors_unreachable: u64,
    #[metrics(unit = Count)]
    bedrock_errors_other: u64,
    #[metrics(unit = Millisecond)]
    duration: Duration,
}

/// Where the documents go: stdout in Lambda, a buffer in tests.
pub type Output = Arc<Mutex<dyn Write + Send>>;

pub struct EmfMetrics {
    namespace: String,
    function_name: String,
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
            output,
        }
    }

    fn entry(&self, r: &InvocationReport) -> InvocationMetrics {
        let by_kind = |kind: &str| r.bedrock_errors.get(kind).copied().unwrap_or(0);
        let call = |op: &str| r.bedrock_calls.get(op).copied().unwrap_or(0);
        InvocationMetrics {
            timestamp: SystemTime::now(),
            function_name: self.function_name.clone(),
            command: r.command,
            outcome: r.outcome.clone(),
            polled: r.polled,
            transitions: r.transitions,
            notified: r.notified,
            pending_notifications: r.pending,
            oldest_pending_notification_age: r.oldest_pending_age,
            undeliverable: r.undeliverable,
            deferred: r.deferred,
            failed: r.failed,
            warnings: r.warnings,
            discovered: r.discovered,
            bedrock_get_calls: call("GetModelInvocationJob"),
            bedrock_list_calls: call("ListModelInvocationJobs"),
            bedrock_tag_calls: call("ListTagsForResource"),
            bedrock_errors: BEDROCK_KINDS.iter().map(|k| by_kind(k)).sum(),
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

impl MetricsSink for EmfMetrics {
    fn emit(&self, report: &InvocationReport) {
        let entry = RootEntry::new(self.entry(report).close());
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
    fn one_report_should_be_one_emf_document_with_every_metric_and_the_function_as_dimension() {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = EmfMetrics::with_output("TestNs", "monitor-fn", buffer.clone());
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
            ("BedrockGetCalls", 7.0),
            ("BedrockListCalls", 2.0),
            ("BedrockTagCalls", 0.0),
            ("BedrockErrors", 3.0),
            ("BedrockErrorsThrottling", 2.0),
            ("BedrockErrorsAccessDenied", 1.0),
            ("Duration", 1234.0),
        ] {
            assert_eq!(doc[name].as_f64(), Some(value), "{name} in {doc}");
            let declared = directive["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["Name"] == name);
            assert!(declared, "{name} is not declared a metric in {doc}");
        }
    }
}
