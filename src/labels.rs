//! Team labels: stored with a job and published as SNS message attributes, so each
//! team can subscribe with a filter policy on its own jobs.

/// Attribute names the monitor publishes itself; labels may not shadow them.
pub const RESERVED: [&str; 7] = [
    "status",
    "previousStatus",
    "severity",
    "jobName",
    "modelId",
    "region",
    "transitionId",
];

/// With the seven attributes above, three labels keep a message within the ten
/// attributes an SQS subscription with raw message delivery accepts.
pub const MAX_LABELS: usize = 3;

/// Checks one label against SNS's rules for message attribute names and values.
pub fn validate(key: &str, value: &str) -> Result<(), String> {
    let key_ok = !key.is_empty()
        && key.len() <= 128
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && !key.to_ascii_lowercase().starts_with("aws.")
        && !key.to_ascii_lowercase().starts_with("amazon.");
    if !key_ok {
        return Err(format!(
            "label name {key:?} is not usable as an SNS message attribute (1-128 of a-z A-Z 0-9 - _ ., no leading AWS./Amazon.)"
        ));
    }
    if RESERVED.contains(&key) {
        return Err(format!(
            "label name {key:?} is reserved for the monitor's own attribute"
        ));
    }
    if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
        return Err(format!(
            "label {key:?} needs a value of 1 to 256 characters without control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn when_label_is_reasonable_should_accept_it() {
        assert!(validate("team", "search").is_ok());
        assert!(validate("cost-center.id", "42").is_ok());
    }

    #[test]
    fn when_label_clashes_or_breaks_sns_rules_should_say_why() {
        assert!(validate("status", "x").unwrap_err().contains("reserved"));
        assert!(validate("AWS.team", "x").is_err());
        assert!(validate("a b", "x").is_err());
        assert!(validate("team", "").is_err());
        assert!(validate("team", "a\nb").is_err());
    }
}
