//! CloudFormation's custom resource protocol, for any resource type the
//! function serves: the request CloudFormation sends, what the resource
//! decided, and the answer CloudFormation waits for at the request's
//! `ResponseURL`. Which resource serves a request is decided by its
//! `ResourceType` ([`crate::monitor::Monitor::provide`]); the answer goes out
//! through the [`CloudFormation`](crate::ports::CloudFormation) port.
//!
//! Request fields: <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html>.
//! Response fields, and "the total size of the response body can't exceed
//! 4096 bytes": <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html>.
//! CloudFormation invokes a Lambda-backed resource asynchronously
//! (<https://docs.aws.amazon.com/lambda/latest/dg/services-cloudformation.html>):
//! the invocation's own answer goes nowhere, and an invocation that fails is
//! retried by Lambda, so whatever the resource decided is always sent, and a
//! send that fails fails the invocation.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ports::{AnswerError, CloudFormation};

/// What the stack operation asks of the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

impl RequestType {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Update => "Update",
            Self::Delete => "Delete",
        }
    }
}

/// One request from CloudFormation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_type: RequestType,
    /// The pre-signed S3 URL the answer is PUT to.
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    /// The resource's name in the template.
    pub logical_resource_id: String,
    /// What an earlier answer called the resource (Update and Delete only).
    pub physical_resource_id: Option<String>,
    /// `Custom::...`, as the template names the type.
    pub resource_type: String,
    /// The template's properties, `ServiceToken` among them. CloudFormation
    /// sends every scalar as a string (numbers and booleans too:
    /// aws-cloudformation/cloudformation-coverage-roadmap#1037).
    pub properties: Map<String, Value>,
    /// The properties before this update (Update only).
    pub old_properties: Option<Map<String, Value>>,
}

/// Why an event shaped like CloudFormation's request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("a custom resource request needs a {0:?} string")]
    Missing(&'static str),
    #[error("{0:?} must be an object")]
    NotAnObject(&'static str),
    #[error("RequestType {0:?} is none of Create, Update and Delete")]
    UnknownRequestType(String),
}

/// Whether an event is CloudFormation's custom resource request: it names a
/// `RequestType` and a `ResponseURL`.
pub fn is_request(event: &Map<String, Value>) -> bool {
    event.contains_key("RequestType") && event.contains_key("ResponseURL")
}

impl Request {
    /// The request in `event`; an error for a request that names no
    /// `ResponseURL`, no ids to answer it by, or a `RequestType` other than
    /// the three CloudFormation sends.
    pub fn parse(event: &Map<String, Value>) -> Result<Self, RequestError> {
        let text = |name: &'static str| {
            event
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or(RequestError::Missing(name))
        };
        let object = |name: &'static str| match event.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o.clone())),
            Some(_) => Err(RequestError::NotAnObject(name)),
        };
        let request_type = match text("RequestType")?.as_str() {
            "Create" => RequestType::Create,
            "Update" => RequestType::Update,
            "Delete" => RequestType::Delete,
            other => return Err(RequestError::UnknownRequestType(other.to_owned())),
        };
        Ok(Self {
            request_type,
            response_url: text("ResponseURL")?,
            stack_id: text("StackId")?,
            request_id: text("RequestId")?,
            logical_resource_id: text("LogicalResourceId")?,
            physical_resource_id: text("PhysicalResourceId").ok(),
            resource_type: text("ResourceType")?,
            properties: object("ResourceProperties")?.unwrap_or_default(),
            old_properties: object("OldResourceProperties")?,
        })
    }
}

/// What the resource decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    tag = "outcome",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Outcome {
    /// Done: the resource is (or stays) `physical_id`, with `data` for `Fn::GetAtt`.
    Done {
        physical_id: String,
        data: Map<String, Value>,
    },
    /// Refused, and why: the stack operation fails with this reason and rolls back.
    Refused { physical_id: String, reason: String },
}

impl Outcome {
    /// A request for a type this function does not serve: refused, except a
    /// Delete, which is never blocked (a stack must always be deletable).
    pub fn unknown_type(request: &Request, served: &[&str]) -> Self {
        let physical_id = request
            .physical_resource_id
            .clone()
            .unwrap_or_else(|| request.logical_resource_id.clone());
        if request.request_type == RequestType::Delete {
            return Self::Done {
                physical_id,
                data: Map::new(),
            };
        }
        Self::Refused {
            physical_id,
            reason: format!(
                "this function serves no resource of type {:?}; it serves {}",
                request.resource_type,
                served.join(", ")
            ),
        }
    }
}

/// `Status` of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The answer CloudFormation reads from `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    pub status: Status,
    /// Required with FAILED; CloudFormation shows it in the stack's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same for every answer about one resource: a different one on
    /// Update is taken as a replacement (and the old one is sent a Delete).
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

/// The most a response body may hold.
pub const MAX_RESPONSE_BYTES: usize = 4096;

impl Response {
    /// The answer to `request`, copying the ids CloudFormation matches it by.
    pub fn to(request: &Request, outcome: Outcome) -> Self {
        let (status, physical_resource_id, reason, data) = match outcome {
            Outcome::Done { physical_id, data } => (Status::Success, physical_id, None, data),
            Outcome::Refused {
                physical_id,
                reason,
            } => (Status::Failed, physical_id, Some(reason), Map::new()),
        };
        Self {
            status,
            reason,
            physical_resource_id,
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            data,
        }
    }

    /// The JSON body, within [`MAX_RESPONSE_BYTES`]: a reason too long is
    /// shortened in its middle (its start names the setting, its end says
    /// what it should be), then `Data` is dropped if still too long.
    pub fn body(&self) -> String {
        let encode = |r: &Response| serde_json::to_string(r).unwrap_or_default();
        let mut body = encode(self);
        if body.len() <= MAX_RESPONSE_BYTES {
            return body;
        }
        let mut shorter = self.clone();
        if let Some(reason) = &self.reason {
            // The longest shortening that fits (JSON escapes make the
            // reason's share of the body larger than its length).
            let (mut fits, mut over) = (0, reason.len());
            while fits + 1 < over {
                let keep = (fits + over) / 2;
                shorter.reason = Some(elide(reason, keep));
                if encode(&shorter).len() <= MAX_RESPONSE_BYTES {
                    fits = keep;
                } else {
                    over = keep;
                }
            }
            shorter.reason = Some(elide(reason, fits));
            body = encode(&shorter);
        }
        if body.len() > MAX_RESPONSE_BYTES {
            shorter.data = Map::new();
            body = encode(&shorter);
        }
        body
    }
}

/// `text` in at most about `max` bytes: its start and its end, the middle
/// replaced by a marker, cut on character boundaries.
pub fn elide(text: &str, max: usize) -> String {
    const MARK: &str = " [...] ";
    if text.len() <= max {
        return text.to_owned();
    }
    let half = max.saturating_sub(MARK.len()) / 2;
    let mut head = half;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - half;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}{MARK}{}", &text[..head], &text[tail..])
}

/// Sends what the resource decided to CloudFormation, and returns the
/// invocation's answer (what was sent, without the URL's signature).
pub async fn answer<C: CloudFormation>(
    cfn: &C,
    request: &Request,
    outcome: Outcome,
) -> Result<Value, AnswerError> {
    let response = Response::to(request, outcome);
    match &response.reason {
        Some(reason) => tracing::error!(
            resource_type = %request.resource_type,
            logical_resource_id = %request.logical_resource_id,
            request_type = request.request_type.as_str(),
            reason = %reason,
            "custom resource refused: the stack operation fails and rolls back"
        ),
        None => tracing::info!(
            resource_type = %request.resource_type,
            logical_resource_id = %request.logical_resource_id,
            request_type = request.request_type.as_str(),
            "custom resource done"
        ),
    }
    cfn.answer(&request.response_url, &response).await?;
    Ok(serde_json::json!({
        "customResource": {
            "resourceType": request.resource_type,
            "logicalResourceId": request.logical_resource_id,
            "requestType": request.request_type.as_str(),
            "status": response.status,
            "physicalResourceId": response.physical_resource_id,
            "reason": response.reason,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "RequestType": "Create",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:m",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=y",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
            "RequestId": "r-1",
            "LogicalResourceId": "SettingsCheck",
            "ResourceType": "Custom::SettingsCheck",
            "ResourceProperties": {"ServiceToken": "arn", "Variables": {"A": "1"}}
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base.as_object().cloned().unwrap()
    }

    #[test]
    fn a_request_should_keep_the_ids_the_answer_copies() {
        let r = Request::parse(&request(json!({"RequestType": "Update",
            "PhysicalResourceId": "settings-check", "OldResourceProperties": {"Variables": {}}})))
        .unwrap();
        assert_eq!(r.request_type, RequestType::Update);
        assert_eq!(r.physical_resource_id.as_deref(), Some("settings-check"));
        assert!(r.old_properties.is_some());
        let response = Response::to(
            &r,
            Outcome::Refused {
                physical_id: "settings-check".into(),
                reason: "no".into(),
            },
        );
        let body: Value = serde_json::from_str(&response.body()).unwrap();
        assert_eq!(
            body,
            json!({"Status": "FAILED", "Reason": "no", "PhysicalResourceId": "settings-check",
                "StackId": r.stack_id, "RequestId": "r-1", "LogicalResourceId": "SettingsCheck"})
        );
    }

    #[test]
    fn a_request_that_cannot_be_answered_should_be_an_error() {
        for missing in ["ResponseURL", "StackId", "RequestId", "LogicalResourceId"] {
            let mut r = request(json!({}));
            r.remove(missing);
            assert_eq!(
                Request::parse(&r),
                Err(RequestError::Missing(match missing {
                    "ResponseURL" => "ResponseURL",
                    "StackId" => "StackId",
                    "RequestId" => "RequestId",
                    _ => "LogicalResourceId",
                }))
            );
        }
        let r = request(json!({"ResourceProperties": "x"}));
        assert!(Request::parse(&r).is_err());
    }

    #[test]
    fn a_long_reason_should_be_shortened_to_fit_the_response_and_keep_both_ends() {
        let r = Request::parse(&request(json!({}))).unwrap();
        let reason = format!(
            "PRICES is malformed (\"{}\"): the end that says what it takes",
            "\"é\\".repeat(3000)
        );
        let body = Response::to(
            &r,
            Outcome::Refused {
                physical_id: "p".into(),
                reason,
            },
        )
        .body();
        assert!(body.len() <= MAX_RESPONSE_BYTES, "{}", body.len());
        let back: Value = serde_json::from_str(&body).unwrap();
        let said = back["Reason"].as_str().unwrap();
        assert!(said.starts_with("PRICES is malformed"), "{said}");
        assert!(said.ends_with("the end that says what it takes"), "{said}");
        assert!(said.contains("[...]"));
    }

    #[test]
    fn an_unknown_type_should_be_refused_but_its_delete_never_blocked() {
        let mut r = Request::parse(&request(json!({"ResourceType": "Custom::Other"}))).unwrap();
        let o = Outcome::unknown_type(&r, &["Custom::SettingsCheck"]);
        assert!(
            matches!(&o, Outcome::Refused { reason, .. } if reason.contains("Custom::Other")),
            "{o:?}"
        );
        r.request_type = RequestType::Delete;
        assert!(matches!(
            Outcome::unknown_type(&r, &[]),
            Outcome::Done { .. }
        ));
    }
}
