//! Notifications recorded but not yet accepted by SNS, and those set aside.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobStatus, Transition};

/// A notification recorded but not yet accepted by the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub transition: Transition,
    /// Someone is publishing it until then.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Who holds the claim.
    pub claimed_by: Option<String>,
    /// Publishes SNS refused for good so far.
    pub attempts: u32,
    /// SNS's words on the last refusal.
    pub last_error: Option<String>,
}

impl Pending {
    pub fn new(transition: Transition) -> Self {
        Self {
            transition,
            claimed_until: None,
            claimed_by: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// Held by someone else's claim that has not expired.
    pub fn held_by_other(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.claimed_until.is_some_and(|until| until > now)
            && self.claimed_by.as_deref() != Some(token)
    }
}

/// A notification SNS refused for good, set aside so the job's later ones go out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAside {
    pub transition_id: String,
    pub status: JobStatus,
    pub previous_status: Option<JobStatus>,
    /// SNS's words on the last refusal.
    pub error: String,
    pub attempts: u32,
    pub set_aside_at: DateTime<Utc>,
}
