//! Notifications recorded but not yet accepted by every destination, and
//! those set aside.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobStatus, Transition};

/// The job topic's name among a notification's destinations: the one whose
/// failure fails the invocation (the operator's own alerts go through it).
pub const TOPIC: &str = "topic";
/// The Slack channel's own topic (`SLACK_TOPIC_ARN`).
pub const SLACK: &str = "slack";

/// A notification recorded but not yet accepted by every destination it
/// goes to. Each destination has its own delivery: one that fails or
/// refuses is retried (or set aside) alone, and never makes another hear
/// the message twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub transition: Transition,
    /// Someone is publishing it until then.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Who holds the claim.
    pub claimed_by: Option<String>,
    /// How each destination's delivery stands, by destination name
    /// ([`TOPIC`], [`SLACK`], ...); one not named has not been tried.
    pub deliveries: BTreeMap<String, Delivery>,
}

/// How one destination's delivery of a notification stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Accepted, or set aside: not sent there again.
    pub done: bool,
    /// Publishes it refused for good so far.
    pub attempts: u32,
    /// Its words on the last failure.
    pub last_error: Option<String>,
}

impl Pending {
    pub fn new(transition: Transition) -> Self {
        Self {
            transition,
            claimed_until: None,
            claimed_by: None,
            deliveries: BTreeMap::new(),
        }
    }

    /// How `destination`'s delivery stands (untried: the default).
    pub fn delivery(&self, destination: &str) -> Delivery {
        self.deliveries
            .get(destination)
            .cloned()
            .unwrap_or_default()
    }

    /// Held by someone else's claim that has not expired.
    pub fn held_by_other(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.claimed_until.is_some_and(|until| until > now)
            && self.claimed_by.as_deref() != Some(token)
    }
}

fn topic() -> String {
    TOPIC.to_owned()
}

/// A notification a destination refused for good (or kept failing past its
/// bound), set aside there so the job's later ones go out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetAside {
    pub transition_id: String,
    pub status: JobStatus,
    pub previous_status: Option<JobStatus>,
    /// Where it was not delivered (notes from before destinations: the topic).
    #[serde(default = "topic")]
    pub destination: String,
    /// The destination's words on the last failure.
    pub error: String,
    pub attempts: u32,
    pub set_aside_at: DateTime<Utc>,
}

/// The routes (destinations other than the job topic: the stack's Slack
/// channel, teams' routes) that accepted one notification in one delivery,
/// kept with the job for `describe`'s `routedTo`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Routed {
    pub transition_id: String,
    pub status: JobStatus,
    pub event: super::TransitionKind,
    pub routes: Vec<String>,
    pub at: DateTime<Utc>,
}
