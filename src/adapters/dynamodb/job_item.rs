//! What a job item holds after a write that records a read of Bedrock: the
//! one description the first write, the re-arm and a recorded transition are
//! all built from, so none of them can store less than another (the tokens
//! and the model they were used by, the index of ends, the labels, the
//! version, the work list, where the rate is measured from).

use aws_sdk_dynamodb::types::AttributeValue;

use super::item::*;
use super::shard_of;
use crate::domain::{Transition, has_ended};

/// How the write that records `transition` relates to the tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tracking {
    /// The first observation of a tracking: a new item, or a re-arm.
    Starts,
    /// A change of a job tracked already.
    Goes,
}

/// The facts a recorded transition puts on its job's item, besides the key,
/// its history entry and its pending notification.
pub(super) struct JobFacts<'a> {
    pub transition: &'a Transition,
    /// Bedrock no longer knows the job (its loss is what is recorded).
    pub gone: bool,
    pub tracking: Tracking,
    /// A re-arm at an end a digest already reported: the time it was
    /// recorded at, kept, so no later digest reports it again.
    pub reported_end: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a write does with one attribute.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fact {
    Set(AttributeValue),
    Remove,
}

impl Fact {
    fn of(v: Option<AttributeValue>) -> Self {
        v.map_or(Self::Remove, Self::Set)
    }
}

impl JobFacts<'_> {
    /// Every attribute the write decides (a new item leaves out what is
    /// removed).
    pub(super) fn attributes(&self) -> Vec<(&'static str, Fact)> {
        let t = self.transition;
        let j = &t.job;
        let ended = has_ended(&j.status, self.gone);
        let rate = t.entry_reading();
        let mut a = vec![
            (STATUS, Some(s(j.status.as_str()))),
            (VERSION, Some(n(t.version))),
            (NOT_FOUND, Some(n(0))),
            (GONE, Some(AttributeValue::Bool(self.gone))),
            (LABELS, Some(labels_value(&t.labels))),
            // In the work list until its notifications are delivered and it
            // has ended (retire takes it out).
            (SHARD, Some(n(shard_of(&j.job_arn)))),
            (EXPIRES, None),
            (UNTRACKED_AT, None),
            (
                TOKENS,
                t.tokens.map(|x| tokens_value(x, j.model_id.as_deref())),
            ),
            // A status change resets progress: the next poll of a running job
            // writes its first reading.
            (PROGRESS_COUNT, None),
            (PROGRESS_SINCE, None),
            (RATE_FROM_COUNT, rate.map(|p| n(p.processed))),
            (RATE_FROM_AT, rate.map(|p| ts(p.since))),
            (ENDED_IN, ended.then(|| s(ENDED_PARTITION))),
            (ENDED_AT, ended.then(|| ts(t.observed_at))),
        ];
        a.extend(
            SNAPSHOT_FIELDS
                .iter()
                .map(|f| match (&t.record_errors, f.name) {
                    (Some(e), RECORDS) => (f.name, Some(records_with_errors(j.records, e))),
                    _ => (f.name, (f.write)(j)),
                }),
        );
        if self.tracking == Tracking::Starts {
            a.push((TRACKED_AT, Some(ts(t.observed_at))));
        }
        a.into_iter()
            .map(|(name, v)| match (name, v, self.reported_end) {
                (ENDED_AT, Some(_), Some(at)) => (name, Fact::Set(ts(at))),
                (name, v, _) => (name, Fact::of(v)),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn when_a_rearm_meets_an_end_already_reported_should_keep_the_time_it_was_recorded() {
        let t = transition(JobStatus::Completed, None);
        let reported = chrono::Utc::now() - chrono::Duration::days(2);
        let facts = JobFacts {
            transition: &t,
            gone: false,
            tracking: Tracking::Starts,
            reported_end: Some(reported),
        };
        let ended_at = facts
            .attributes()
            .into_iter()
            .find(|(k, _)| *k == ENDED_AT)
            .map(|(_, v)| v);
        assert_eq!(ended_at, Some(Fact::Set(ts(reported))));
    }

    use super::*;
    use crate::domain::fixtures::*;
    use crate::domain::{JobStatus, TokenTotals, TransitionKind};

    fn transition(status: JobStatus, tokens: Option<TokenTotals>) -> Transition {
        let mut job = snap(status.as_str(), None);
        job.model_id = Some("amazon.nova-micro-v1:0".into());
        let now = chrono::Utc::now();
        Transition {
            id: "t".into(),
            kind: TransitionKind::StatusChanged,
            version: 3,
            previous: None,
            phases: vec![(status, now)],
            job,
            observed_at: now,
            labels: Default::default(),
            warning: None,
            tokens,
            cost: None,
            record_errors: None,
            eta: None,
        }
    }

    fn names(facts: &JobFacts<'_>) -> Vec<&'static str> {
        facts
            .attributes()
            .iter()
            .filter(|(_, v)| *v != Fact::Remove)
            .map(|(k, _)| *k)
            .collect()
    }

    #[test]
    fn when_an_end_is_recorded_by_any_write_should_store_its_tokens_and_its_end() {
        let t = transition(
            JobStatus::Completed,
            Some(TokenTotals {
                input: 10,
                output: 5,
            }),
        );
        for tracking in [Tracking::Starts, Tracking::Goes] {
            let facts = JobFacts {
                transition: &t,
                gone: false,
                tracking,
                reported_end: None,
            };
            let stored = names(&facts);
            for wanted in [TOKENS, ENDED_IN, ENDED_AT, LABELS, VERSION, SHARD, STATUS] {
                assert!(stored.contains(&wanted), "{tracking:?} leaves out {wanted}");
            }
            assert_eq!(stored.contains(&TRACKED_AT), tracking == Tracking::Starts);
        }
    }

    #[test]
    fn when_a_running_job_is_recorded_should_remove_the_end_and_the_tokens() {
        let t = transition(JobStatus::InProgress, None);
        let facts = JobFacts {
            transition: &t,
            gone: false,
            tracking: Tracking::Starts,
            reported_end: None,
        };
        let removed: Vec<_> = facts
            .attributes()
            .into_iter()
            .filter(|(_, v)| *v == Fact::Remove)
            .map(|(k, _)| k)
            .collect();
        for attr in [ENDED_IN, ENDED_AT, TOKENS, EXPIRES, UNTRACKED_AT] {
            assert!(removed.contains(&attr), "{attr} kept");
        }
    }
}
