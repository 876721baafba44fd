//! Team labels: stored with a job and published as SNS message attributes, so each
//! team can subscribe with a filter policy on its own jobs.

use std::collections::BTreeMap;

/// Attribute names the monitor publishes itself; labels may not shadow them.
pub const RESERVED: [&str; 11] = [
    "environment",
    "account",
    "status",
    "previousStatus",
    "severity",
    "jobName",
    "modelId",
    "region",
    "transitionId",
    "event",
    "warning",
];

/// A message carries at most ten of the attributes above (`previousStatus`
/// and `warning` never come together): the ten an SQS subscription with raw
/// message delivery accepts. A label makes eleven to thirteen, which only
/// subscriptions without raw delivery take (SNS discards the message for a
/// raw one: https://docs.aws.amazon.com/sns/latest/dg/SNSMessageAttributes.html;
/// docs/notifications.md says so).
pub const MAX_LABELS: usize = 3;

/// Why a label cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "label name {0:?} is not usable as an SNS message attribute (1-128 of a-z A-Z 0-9 - _ ., no leading AWS./Amazon.)"
    )]
    BadName(String),
    #[error("label name {0:?} is reserved for the monitor's own attribute")]
    Reserved(String),
    #[error("label {0:?} needs a value of 1 to 256 characters without control characters")]
    BadValue(String),
    #[error("at most {MAX_LABELS} labels per job (this would make {0})")]
    TooMany(usize),
}

/// Checks one label against SNS's rules for message attribute names and values.
pub fn validate(key: &str, value: &str) -> Result<(), LabelError> {
    let lower = key.to_ascii_lowercase();
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && !lower.starts_with("aws.")
        && !lower.starts_with("amazon.");
    if !key_ok {
        return Err(LabelError::BadName(key.to_owned()));
    }
    if RESERVED.contains(&key) {
        return Err(LabelError::Reserved(key.to_owned()));
    }
    if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(LabelError::BadValue(key.to_owned()));
    }
    Ok(())
}

/// `current` with `given` merged in (a given value replaces the current one).
pub fn merge(
    current: &BTreeMap<String, String>,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LabelError> {
    let mut merged = current.clone();
    merged.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged.len() > MAX_LABELS {
        return Err(LabelError::TooMany(merged.len()));
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_label_is_reasonable_should_accept_it() {
        assert!(validate("team", "search").is_ok());
        assert!(validate("cost-center.id", "42").is_ok());
    }

    #[test]
    fn when_label_clashes_or_breaks_sns_rules_should_say_why() {
        assert_eq!(
            validate("status", "x"),
            Err(LabelError::Reserved("status".into()))
        );
        assert_eq!(
            validate("account", "x"),
            Err(LabelError::Reserved("account".into()))
        );
        assert!(validate("AWS.team", "x").is_err());
        assert!(validate("a b", "x").is_err());
        assert!(validate("team", "").is_err());
        assert!(validate("team", "a\nb").is_err());
    }

    #[test]
    fn when_labels_are_merged_should_replace_given_keys_and_keep_the_rest_up_to_the_limit() {
        let current = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
        let given = BTreeMap::from([
            ("team".to_owned(), "b".to_owned()),
            ("env".to_owned(), "prod".to_owned()),
        ]);
        let merged = merge(&current, &given).unwrap();
        assert_eq!(merged["team"], "b");
        assert_eq!(merged["env"], "prod");
        let more = BTreeMap::from([
            ("x".to_owned(), "1".to_owned()),
            ("y".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(merge(&merged, &more), Err(LabelError::TooMany(4)));
    }
}
