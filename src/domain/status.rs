//! Job statuses: Bedrock's ten and any it adds later, how loud each is, and
//! how a `Completed` job really ended.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::RecordCounts;

/// A Bedrock batch inference job status. Bedrock's enum is open-ended, so a
/// status we do not know is kept verbatim in `Unknown` and recorded as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Submitted,
    Validating,
    Scheduled,
    InProgress,
    Stopping,
    Stopped,
    Completed,
    PartiallyCompleted,
    Failed,
    Expired,
    Unknown(String),
}

impl JobStatus {
    /// The statuses Bedrock documents, in the order of a job's life.
    pub const KNOWN: [&'static str; 10] = [
        "Submitted",
        "Validating",
        "Scheduled",
        "InProgress",
        "Stopping",
        "Stopped",
        "Completed",
        "PartiallyCompleted",
        "Failed",
        "Expired",
    ];

    pub fn parse(s: &str) -> Self {
        match s {
            "Submitted" => Self::Submitted,
            "Validating" => Self::Validating,
            "Scheduled" => Self::Scheduled,
            "InProgress" => Self::InProgress,
            "Stopping" => Self::Stopping,
            "Stopped" => Self::Stopped,
            "Completed" => Self::Completed,
            "PartiallyCompleted" => Self::PartiallyCompleted,
            "Failed" => Self::Failed,
            "Expired" => Self::Expired,
            other => Self::Unknown(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Submitted => "Submitted",
            Self::Validating => "Validating",
            Self::Scheduled => "Scheduled",
            Self::InProgress => "InProgress",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Completed => "Completed",
            Self::PartiallyCompleted => "PartiallyCompleted",
            Self::Failed => "Failed",
            Self::Expired => "Expired",
            Self::Unknown(s) => s,
        }
    }

    /// Bedrock will not move the job again. Unknown statuses are not terminal:
    /// we keep polling rather than miss the real end.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::PartiallyCompleted
                | Self::Failed
                | Self::Stopped
                | Self::Expired
        )
    }

    pub fn severity(&self) -> Severity {
        match self {
            Self::Failed | Self::Expired => Severity::Error,
            Self::PartiallyCompleted | Self::Stopped => Severity::Warning,
            Self::Completed => Severity::Success,
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// How loud a status is; published as the `severity` message attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Success,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Success => "success",
            Self::Info => "info",
        }
    }
}

/// How a `Completed` job really ended: Bedrock says `Completed` even when
/// records failed, so the counts decide.
pub fn completed_severity(records: Option<RecordCounts>) -> Severity {
    let Some(r) = records else {
        return Severity::Success;
    };
    let failed = r.error.unwrap_or(0);
    if failed <= 0 {
        return Severity::Success;
    }
    let all_failed = r.success == Some(0) || r.processed.is_some_and(|p| failed >= p);
    if all_failed {
        Severity::Error
    } else {
        Severity::Warning
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::fixtures::*;
    use crate::domain::*;

    #[test]
    fn the_known_statuses_should_be_those_the_stand_in_serves_in_order() {
        // `list` validates its status filter against KNOWN: it must be
        // Bedrock's list, as the stand-in serves it.
        assert_eq!(JobStatus::KNOWN, LIFE);
        for s in JobStatus::KNOWN {
            assert!(!matches!(JobStatus::parse(s), JobStatus::Unknown(_)), "{s}");
        }
    }

    #[test]
    fn when_status_is_unknown_should_keep_the_text_and_not_be_terminal() {
        let s = JobStatus::parse("Paused");
        assert_eq!(s, JobStatus::Unknown("Paused".into()));
        assert_eq!(s.as_str(), "Paused");
        assert!(!s.is_terminal());
        assert_eq!(s.severity(), Severity::Info);
    }

    #[test]
    fn every_documented_status_should_round_trip_with_its_severity() {
        let expected = [
            ("Submitted", false, Severity::Info),
            ("Validating", false, Severity::Info),
            ("Scheduled", false, Severity::Info),
            ("InProgress", false, Severity::Info),
            ("Stopping", false, Severity::Info),
            ("Stopped", true, Severity::Warning),
            ("Completed", true, Severity::Success),
            ("PartiallyCompleted", true, Severity::Warning),
            ("Failed", true, Severity::Error),
            ("Expired", true, Severity::Error),
        ];
        for (name, terminal, severity) in expected {
            let s = JobStatus::parse(name);
            assert!(!matches!(s, JobStatus::Unknown(_)), "{name}");
            assert_eq!(s.as_str(), name);
            assert_eq!(s.is_terminal(), terminal, "{name}");
            assert_eq!(s.severity(), severity, "{name}");
        }
    }
}
