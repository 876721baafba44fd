//! SNS subscription filter policies on message attributes, evaluated by the
//! function itself for the Slack channel's own topic (`SLACK_FILTER_POLICY`).
//!
//! Amazon Q Developer subscribes to its topics itself, so no filter can be set
//! on its subscription from the template; the function publishes to the
//! channel's topic only what the policy lets through. The policy is SNS's
//! language, for the `MessageAttributes` scope, as the SNS Developer Guide
//! describes it (https://docs.aws.amazon.com/sns/latest/dg/sns-subscription-filter-policies.html):
//! the keys of an object must all match (AND), the values listed for a key are
//! alternatives (OR), `"$or"` takes a list of policies. A value is a string
//! (exact match) or one of `{"prefix": s}`, `{"suffix": s}`,
//! `{"equals-ignore-case": s}`, `{"anything-but": s | [s, ...] | {"prefix": s}
//! | {"suffix": s}}`, `{"exists": true | false}` and `{"numeric": [...]}` (which
//! never matches: every attribute the monitor sends is a String). Any other
//! operator is refused, naming it (the Slack topic then gets nothing, and
//! every answer says why); a policy that SNS would take and this would not
//! is a refusal, never a silent difference. A setting may also be a list of
//! severities and events ([`list_json`]), which survives a shell and SAM
//! CLI's `--parameter-overrides` parser where JSON does not.
//! tests/filters.rs holds this evaluator to moto's SNS on the documented recipes
//! and many policy and message pairs.

use serde_json::Value;

/// The words of a policy's list form (`error,warning,digest`): each a value
/// of the `severity` attribute or of the `event` attribute.
pub const LIST_WORDS: [&str; 7] = [
    "error",
    "warning",
    "success",
    "info",
    "digest",
    "statusChanged",
    "untracked",
];

/// A policy setting (`SLACK_FILTER_POLICY`, and the template's
/// `AlertEmailFilterPolicy`) in its list form, as the JSON it stands for: a
/// message passes when its `severity` or its `event` is one of the words.
/// The list form exists because a shell and SAM CLI's parameter parser
/// cannot carry JSON through `--parameter-overrides` unharmed; the template
/// builds the same JSON from the same list for the email subscription with
/// `!Join` and `!Split` (`tests/template.rs` holds the two equal).
pub fn list_json(list: &str) -> Result<String, PolicyError> {
    let words: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return refuse("a list names at least one severity or event");
    }
    if let Some(bad) = words.iter().find(|w| !LIST_WORDS.contains(w)) {
        return refuse(format!(
            "{bad:?} is neither a severity nor an event (a list takes {}; a value starting with {{ is a policy in JSON)",
            LIST_WORDS.join(", ")
        ));
    }
    let quoted = words
        .iter()
        .map(|w| format!("\"{w}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        r#"{{"$or": [{{"severity": [{quoted}]}}, {{"event": [{quoted}]}}]}}"#
    ))
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPolicy {
    /// Every key must match.
    all: Vec<Key>,
    /// The policy as written (JSON), for whoever shows it.
    source: Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Key {
    /// The attribute must satisfy one of the conditions.
    Attribute(String, Vec<Condition>),
    /// One of the policies must match.
    Or(Vec<FilterPolicy>),
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Exact(String),
    Prefix(String),
    Suffix(String),
    IgnoreCase(String),
    AnythingBut(Vec<String>),
    AnythingButPrefix(String),
    AnythingButSuffix(String),
    Exists(bool),
    /// Numeric matching: SNS applies it to Number attributes only.
    Never,
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(why.into()))
}

impl FilterPolicy {
    /// Parses a policy setting: JSON when it starts with `{`, else the list
    /// form ([`list_json`]).
    pub fn parse_setting(text: &str) -> Result<Self, PolicyError> {
        let text = text.trim();
        if text.starts_with('{') {
            Self::parse(text)
        } else {
            Self::parse(&list_json(text)?)
        }
    }

    /// Parses a policy in SNS's language (a JSON object).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses a policy given as JSON already (a custom resource's property).
    pub fn from_json(value: &Value) -> Result<Self, PolicyError> {
        Self::from_value(value)
    }

    /// The policy as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let Some(object) = value.as_object() else {
            return refuse("a filter policy is a JSON object of attribute names");
        };
        if object.is_empty() {
            return refuse("a filter policy names at least one attribute");
        }
        let mut all = Vec::new();
        for (name, rules) in object {
            let Some(list) = rules.as_array() else {
                return refuse(format!("{name:?} takes a list of values"));
            };
            if list.is_empty() {
                return refuse(format!("{name:?} takes at least one value"));
            }
            if name == "$or" && list.iter().all(Value::is_object) {
                all.push(Key::Or(
                    list.iter()
                        .map(Self::from_value)
                        .collect::<Result<_, _>>()?,
                ));
            } else {
                all.push(Key::Attribute(
                    name.clone(),
                    list.iter()
                        .map(|r| condition(name, r))
                        .collect::<Result<_, _>>()?,
                ));
            }
        }
        Ok(Self {
            all,
            source: value.clone(),
        })
    }

    /// Whether a message with these (String) attributes passes.
    pub fn matches(&self, attributes: &[(String, String)]) -> bool {
        self.matches_ignoring(attributes, &|_| false)
    }

    /// [`Self::matches`], with every condition on an attribute `ignored`
    /// names taken as met.
    pub fn matches_ignoring(
        &self,
        attributes: &[(String, String)],
        ignored: &dyn Fn(&str) -> bool,
    ) -> bool {
        self.all.iter().all(|key| match key {
            Key::Or(policies) => policies
                .iter()
                .any(|p| p.matches_ignoring(attributes, ignored)),
            Key::Attribute(name, _) if ignored(name) => true,
            Key::Attribute(name, conditions) => {
                let value = attributes
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str());
                conditions.iter().any(|c| c.matches(value))
            }
        })
    }
}

impl FilterPolicy {
    /// The attributes the policy requires to be one exact value (top-level
    /// keys with a single exact string), in the policy's order.
    pub fn pinned(&self) -> Vec<(String, String)> {
        self.all
            .iter()
            .filter_map(|key| match key {
                Key::Attribute(name, conditions) => match conditions.as_slice() {
                    [Condition::Exact(v)] => Some((name.clone(), v.clone())),
                    _ => None,
                },
                Key::Or(_) => None,
            })
            .collect()
    }

    /// The distinct attribute names the policy reads (SNS's "keys").
    pub fn key_count(&self) -> usize {
        fn names<'a>(p: &'a FilterPolicy, out: &mut std::collections::BTreeSet<&'a str>) {
            for key in &p.all {
                match key {
                    Key::Attribute(name, _) => {
                        out.insert(name);
                    }
                    Key::Or(policies) => policies.iter().for_each(|p| names(p, out)),
                }
            }
        }
        let mut out = std::collections::BTreeSet::new();
        names(self, &mut out);
        out.len()
    }

    /// SNS's "total combination of values": the product of each key's
    /// number of values, an `$or` counting the sum of its branches'.
    pub fn combinations(&self) -> u64 {
        self.all
            .iter()
            .map(|key| match key {
                Key::Attribute(_, conditions) => conditions.len() as u64,
                Key::Or(policies) => policies.iter().map(Self::combinations).sum(),
            })
            .fold(1u64, u64::saturating_mul)
    }
}

fn text<'a>(name: &str, op: &str, v: &'a Value) -> Result<&'a str, PolicyError> {
    v.as_str()
        .ok_or_else(|| PolicyError(format!("{name:?}: {op} takes a string")))
}

fn condition(name: &str, rule: &Value) -> Result<Condition, PolicyError> {
    match rule {
        Value::String(s) => Ok(Condition::Exact(s.clone())),
        Value::Object(o) if o.len() == 1 => {
            let (op, v) = o.iter().next().expect("one entry");
            match op.as_str() {
                "prefix" => Ok(Condition::Prefix(text(name, op, v)?.to_owned())),
                "suffix" => Ok(Condition::Suffix(text(name, op, v)?.to_owned())),
                "equals-ignore-case" => {
                    Ok(Condition::IgnoreCase(text(name, op, v)?.to_lowercase()))
                }
                "exists" => match v {
                    Value::Bool(b) => Ok(Condition::Exists(*b)),
                    _ => refuse(format!("{name:?}: exists takes true or false")),
                },
                "numeric" => Ok(Condition::Never),
                "anything-but" => match v {
                    Value::String(s) => Ok(Condition::AnythingBut(vec![s.clone()])),
                    Value::Array(items) => Ok(Condition::AnythingBut(
                        items
                            .iter()
                            .map(|i| text(name, "anything-but", i).map(str::to_owned))
                            .collect::<Result<_, _>>()?,
                    )),
                    Value::Object(inner) if inner.len() == 1 => {
                        let (iop, iv) = inner.iter().next().expect("one entry");
                        match iop.as_str() {
                            "prefix" => Ok(Condition::AnythingButPrefix(
                                text(name, iop, iv)?.to_owned(),
                            )),
                            "suffix" => Ok(Condition::AnythingButSuffix(
                                text(name, iop, iv)?.to_owned(),
                            )),
                            other => refuse(format!(
                                "{name:?}: anything-but with {other:?} is not supported here (prefix, suffix)"
                            )),
                        }
                    }
                    _ => refuse(format!(
                        "{name:?}: anything-but takes a string, a list or a prefix"
                    )),
                },
                other => refuse(format!(
                    "{name:?}: the operator {other:?} is not supported here (prefix, suffix, equals-ignore-case, anything-but, exists, numeric)"
                )),
            }
        }
        Value::Number(_) => Ok(Condition::Never),
        _ => refuse(format!(
            "{name:?}: a value is a string or one operator object"
        )),
    }
}

impl Condition {
    fn matches(&self, value: Option<&str>) -> bool {
        let Some(v) = value else {
            return matches!(self, Self::Exists(false));
        };
        match self {
            Self::Exact(s) => v == s,
            Self::Prefix(p) => v.starts_with(p.as_str()),
            Self::Suffix(s) => v.ends_with(s.as_str()),
            Self::IgnoreCase(s) => v.to_lowercase() == *s,
            Self::AnythingBut(list) => !list.iter().any(|s| s == v),
            Self::AnythingButPrefix(p) => !v.starts_with(p.as_str()),
            Self::AnythingButSuffix(s) => !v.ends_with(s.as_str()),
            Self::Exists(present) => *present,
            Self::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_list_should_pass_a_message_whose_severity_or_event_it_names() {
        let p = FilterPolicy::parse_setting("error, warning,digest").unwrap();
        assert!(p.matches(&attrs(&[("severity", "error"), ("event", "statusChanged")])));
        assert!(p.matches(&attrs(&[("severity", "info"), ("event", "digest")])));
        assert!(!p.matches(&attrs(&[
            ("severity", "success"),
            ("event", "statusChanged")
        ])));
        assert_eq!(
            list_json("error,digest").unwrap(),
            r#"{"$or": [{"severity": ["error", "digest"]}, {"event": ["error", "digest"]}]}"#
        );
        let json = FilterPolicy::parse_setting(r#" {"severity": ["error"]}"#).unwrap();
        assert_eq!(
            json,
            FilterPolicy::parse(r#"{"severity": ["error"]}"#).unwrap()
        );
        for bad in ["errors", "error,,{", "", "severity=error"] {
            let err = FilterPolicy::parse_setting(bad).unwrap_err().to_string();
            assert!(err.contains("severity"), "{bad}: {err}");
        }
    }

    #[test]
    fn keys_are_anded_values_ored_and_or_takes_policies() {
        let p = FilterPolicy::parse(r#"{"severity": ["error", "warning"], "team": ["search"]}"#)
            .unwrap();
        assert!(p.matches(&attrs(&[("severity", "error"), ("team", "search")])));
        assert!(!p.matches(&attrs(&[("severity", "error"), ("team", "ads")])));
        assert!(!p.matches(&attrs(&[("severity", "error")])));
        let p = FilterPolicy::parse(r#"{"$or": [{"severity": ["error"]}, {"event": ["digest"]}]}"#)
            .unwrap();
        assert!(p.matches(&attrs(&[("severity", "info"), ("event", "digest")])));
        assert!(!p.matches(&attrs(&[("severity", "info"), ("event", "statusChanged")])));
    }

    #[test]
    fn operators_match_as_sns_describes_them() {
        let m = |policy: &str, pairs: &[(&str, &str)]| {
            FilterPolicy::parse(policy).unwrap().matches(&attrs(pairs))
        };
        assert!(m(
            r#"{"jobName": [{"prefix": "nightly-"}]}"#,
            &[("jobName", "nightly-1")]
        ));
        assert!(m(
            r#"{"jobName": [{"suffix": "-eu"}]}"#,
            &[("jobName", "x-eu")]
        ));
        assert!(m(
            r#"{"status": [{"equals-ignore-case": "FAILED"}]}"#,
            &[("status", "Failed")]
        ));
        assert!(m(
            r#"{"status": [{"anything-but": ["InProgress"]}]}"#,
            &[("status", "Failed")]
        ));
        assert!(!m(
            r#"{"status": [{"anything-but": ["InProgress"]}]}"#,
            &[("event", "digest")]
        ));
        assert!(!m(
            r#"{"status": [{"anything-but": {"prefix": "In"}}]}"#,
            &[("status", "InProgress")]
        ));
        assert!(m(
            r#"{"warning": [{"exists": false}]}"#,
            &[("status", "Failed")]
        ));
        assert!(!m(
            r#"{"warning": [{"exists": true}]}"#,
            &[("status", "Failed")]
        ));
        assert!(!m(
            r#"{"records": [{"numeric": [">", 0]}]}"#,
            &[("records", "5")]
        ));
    }

    #[test]
    fn what_it_cannot_evaluate_is_refused_by_name() {
        for (policy, says) in [
            ("[]", "JSON object"),
            ("{}", "at least one"),
            (r#"{"status": "Failed"}"#, "list"),
            (r#"{"ip": [{"cidr": "10.0.0.0/24"}]}"#, "\"cidr\""),
            (
                r#"{"status": [{"anything-but": {"wildcard": "x*"}}]}"#,
                "\"wildcard\"",
            ),
            ("not json", "not JSON"),
        ] {
            let err = FilterPolicy::parse(policy).unwrap_err().to_string();
            assert!(err.contains(says), "{policy}: {err}");
        }
    }
}
