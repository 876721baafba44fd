//! Which monitors a command asks, and asking one: a Lambda Invoke of its
//! function, with the credentials and region the AWS SDK finds as usual.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_lambda::primitives::Blob;
use serde::Deserialize;
use serde_json::Value;

use crate::cli::Target;
use crate::error::CliError;

/// One monitor to ask, as the flags, the environment or the config file name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// How messages and tables name it: the config file's name, else the function or stack.
    pub name: String,
    pub function: FunctionRef,
    pub profile: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionRef {
    /// A function name or ARN, as Lambda's Invoke takes it.
    Function(String),
    /// A stack whose `FunctionName` output names the function.
    Stack(String),
}

/// The parts of the process environment that choose monitors.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub bbm_function: Option<String>,
    pub bbm_config: Option<String>,
    pub xdg_config_home: Option<String>,
    pub home: Option<String>,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            bbm_function: var("BBM_FUNCTION"),
            bbm_config: var("BBM_CONFIG"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
        }
    }
}

/// The config file: named monitors, each a function or a stack, with an
/// optional profile and region.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    monitors: BTreeMap<String, Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    function: Option<String>,
    stack: Option<String>,
    profile: Option<String>,
    region: Option<String>,
}

/// The config file's path, and whether it was named explicitly (then it must exist).
fn config_path(target: &Target, env: &Env) -> Option<(PathBuf, bool)> {
    if let Some(p) = &target.config {
        return Some((p.clone(), true));
    }
    if let Some(p) = &env.bbm_config {
        return Some((PathBuf::from(p), true));
    }
    let base = env
        .xdg_config_home
        .as_ref()
        .map(PathBuf::from)
        .or_else(|| env.home.as_ref().map(|h| Path::new(h).join(".config")))?;
    Some((base.join("bbm").join("config.toml"), false))
}

fn read_config(path: &Path) -> Result<BTreeMap<String, Spec>, CliError> {
    let bad = |reason: String| CliError::Config {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file: ConfigFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, e) in file.monitors {
        let function = match (e.function, e.stack) {
            (Some(f), None) => FunctionRef::Function(f),
            (None, Some(s)) => FunctionRef::Stack(s),
            _ => {
                return Err(bad(format!(
                    "monitor {name:?} needs one of function = \"NAME|ARN\" or stack = \"NAME\""
                )));
            }
        };
        out.insert(
            name.clone(),
            Spec {
                name,
                function,
                profile: e.profile,
                region: e.region,
            },
        );
    }
    Ok(out)
}

/// The monitors a command asks: `--function` or `--stack`; else the config
/// file's monitors named by `--monitor`; else `BBM_FUNCTION`; else every
/// monitor of the config file. `--profile` and `--region` apply to each
/// monitor that does not set its own.
pub fn specs(target: &Target, env: &Env) -> Result<Vec<Spec>, CliError> {
    let one = |name: &str, function: FunctionRef| {
        Ok(vec![Spec {
            name: name.to_owned(),
            function,
            profile: target.profile.clone(),
            region: target.region.clone(),
        }])
    };
    if let Some(f) = &target.function {
        return one(f, FunctionRef::Function(f.clone()));
    }
    if let Some(s) = &target.stack {
        return one(s, FunctionRef::Stack(s.clone()));
    }
    let path = config_path(target, env);
    let configured = match &path {
        Some((p, explicit)) if *explicit || p.exists() => read_config(p)?,
        _ => BTreeMap::new(),
    };
    let fill = |mut s: Spec| {
        s.profile = s.profile.or_else(|| target.profile.clone());
        s.region = s.region.or_else(|| target.region.clone());
        s
    };
    if !target.monitors.is_empty() {
        let mut out = Vec::new();
        for name in &target.monitors {
            match configured.get(name) {
                Some(s) if !out.contains(&fill(s.clone())) => out.push(fill(s.clone())),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = configured.keys().map(String::as_str).collect();
                    return Err(CliError::usage(format!(
                        "no monitor {name:?} in {}{}",
                        path.map_or("the config file".to_owned(), |(p, _)| p
                            .display()
                            .to_string()),
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!(" (it has {})", known.join(", "))
                        }
                    )));
                }
            }
        }
        return Ok(out);
    }
    if let Some(f) = &env.bbm_function {
        return one(f, FunctionRef::Function(f.clone()));
    }
    if !configured.is_empty() {
        return Ok(configured.into_values().map(fill).collect());
    }
    Err(CliError::usage(format!(
        "which monitor? Pass --function NAME|ARN or --stack NAME, set BBM_FUNCTION, or name monitors in {}",
        path.map_or("a config file (--config PATH)".to_owned(), |(p, _)| p
            .display()
            .to_string())
    )))
}

/// The region a function ARN names (`arn:<partition>:lambda:<region>:...`):
/// Lambda is asked in the function's own region.
fn arn_region(function: &str) -> Option<&str> {
    let mut parts = function.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("lambda"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

async fn sdk_config(spec: &Spec, region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(p) = &spec.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    loader.load().await
}

/// A monitor ready to be asked.
pub struct Monitor {
    pub name: String,
    pub function: String,
    client: aws_sdk_lambda::Client,
    warned: AtomicBool,
}

impl Monitor {
    /// The SDK configuration for the spec, and the function's name (read from
    /// the stack's outputs for `--stack`).
    pub async fn connect(spec: &Spec) -> Result<Self, CliError> {
        let region = match &spec.function {
            FunctionRef::Function(f) => arn_region(f).or(spec.region.as_deref()),
            FunctionRef::Stack(_) => spec.region.as_deref(),
        };
        let sdk = sdk_config(spec, region).await;
        if sdk.region().is_none() {
            return Err(CliError::usage(format!(
                "no AWS Region for {}: pass --region, set AWS_REGION, or give the profile a region",
                spec.name
            )));
        }
        let function = match &spec.function {
            FunctionRef::Function(f) => f.clone(),
            FunctionRef::Stack(stack) => stack_function(&sdk, stack).await?,
        };
        Ok(Self {
            name: spec.name.clone(),
            function,
            client: aws_sdk_lambda::Client::new(&sdk),
            warned: AtomicBool::new(false),
        })
    }
}

/// The stack's `FunctionName` output (template.yaml, Outputs), from
/// DescribeStacks:
/// https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html
async fn stack_function(sdk: &SdkConfig, stack: &str) -> Result<String, CliError> {
    let err = |error: String| CliError::Stack {
        stack: stack.to_owned(),
        error,
    };
    let out = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            use aws_sdk_cloudformation::error::ProvideErrorMetadata;
            err(match e.as_service_error() {
                Some(s) => format!(
                    "{}: {}",
                    s.code().unwrap_or("Error"),
                    s.message().unwrap_or_default()
                ),
                None => chain(&e),
            })
        })?;
    out.stacks()
        .first()
        .and_then(|s| {
            s.outputs()
                .iter()
                .find(|o| o.output_key() == Some("FunctionName"))
        })
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| {
            err("has no FunctionName output: is it a bedrock-batch-monitor stack?".into())
        })
}

/// What the commands need of a monitor: its name, and its answer to an event.
pub trait Invoke {
    fn name(&self) -> &str;
    async fn invoke(&self, payload: &Value) -> Result<Value, CliError>;
}

impl Invoke for Monitor {
    fn name(&self) -> &str {
        &self.name
    }

    /// A synchronous Invoke (RequestResponse): the function's answer, or its
    /// error when Lambda reports `FunctionError`
    /// (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html: the
    /// status code does not say it; the payload is then
    /// `{"errorType", "errorMessage"}`).
    async fn invoke(&self, payload: &Value) -> Result<Value, CliError> {
        let out = match self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => return Err(self.invoke_error(e)),
        };
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if out.function_error().is_some() {
            return Err(self
                .function_error(body, out.function_error())
                .unwrap_or_else(|| CliError::Function {
                    who: self.who(),
                    error_type: out.function_error().unwrap_or_default().to_owned(),
                    message: String::from_utf8_lossy(body).into_owned(),
                }));
        }
        let answer: Option<Value> = serde_json::from_slice(body).ok();
        let answer = answer.ok_or_else(|| CliError::Invoke {
            who: self.who(),
            error: format!(
                "the answer is not JSON: {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            ),
        })?;
        if !self.warned.swap(true, Ordering::Relaxed) {
            setting_warnings(&self.name, &answer);
        }
        Ok(answer)
    }
}

impl Monitor {
    fn who(&self) -> String {
        if self.name == self.function {
            self.function.clone()
        } else {
            format!("{} (monitor {})", self.function, self.name)
        }
    }

    fn function_error(&self, body: &[u8], header: Option<&str>) -> Option<CliError> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        let error_type = doc["errorType"].as_str().or(header)?;
        Some(CliError::Function {
            who: self.who(),
            error_type: error_type.to_owned(),
            message: doc["errorMessage"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Lambda's own refusal in its words (`ResourceNotFoundException: Function
    /// not found: ...`), a connection that failed, or a function error
    /// carried by an HTTP error: `cargo lambda watch` answers a function
    /// error with status 500 and the function's `{"errorType", "errorMessage"}`.
    fn invoke_error(
        &self,
        e: aws_sdk_lambda::error::SdkError<
            aws_sdk_lambda::operation::invoke::InvokeError,
            aws_sdk_lambda::config::http::HttpResponse,
        >,
    ) -> CliError {
        use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
        let error = match &e {
            SdkError::ServiceError(ctx) => {
                let body = ctx.raw().body().bytes().unwrap_or_default();
                if let Some(f) = self.function_error(body, None) {
                    return f;
                }
                match (ctx.err().code(), ctx.err().message()) {
                    (Some(code), Some(m)) => format!("{code}: {m}"),
                    (Some(code), None) => code.to_owned(),
                    _ => format!(
                        "HTTP {}: {}",
                        ctx.raw().status().as_u16(),
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ),
                }
            }
            _ => chain(&e),
        };
        CliError::Invoke {
            who: self.who(),
            error,
        }
    }
}

/// An error and its causes, each once: "dispatch failure: io error: ...:
/// Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cause = c.source();
    }
    parts.join(": ")
}

/// The settings the function cannot use (`settingWarnings`, on every answer
/// while there are any), said once per monitor on stderr.
fn setting_warnings(monitor: &str, answer: &Value) {
    for w in answer["settingWarnings"].as_array().into_iter().flatten() {
        eprintln!(
            "bbm: warning: {monitor}: {} (instead: {})",
            w["error"].as_str().unwrap_or_default(),
            w["instead"].as_str().unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target::default()
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("config.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bbm-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const TWO: &str = r#"
[monitors.us]
stack = "bedrock-batch-monitor"
region = "us-east-1"
profile = "prod"

[monitors.eu]
function = "arn:aws:lambda:eu-west-1:123456789012:function:mon"
"#;

    #[test]
    fn a_flag_should_win_over_the_environment_and_the_config_file() {
        let dir = tmp("flag");
        let env = Env {
            bbm_function: Some("from-env".into()),
            xdg_config_home: Some(dir.display().to_string()),
            ..Env::default()
        };
        write(&dir.join("bbm"), TWO);
        let t = Target {
            stack: Some("s".into()),
            region: Some("eu-north-1".into()),
            ..target()
        };
        let got = specs(&t, &env).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].function, FunctionRef::Stack("s".into()));
        assert_eq!(got[0].region.as_deref(), Some("eu-north-1"));
        // Without a flag, BBM_FUNCTION beats the file.
        let got = specs(&target(), &env).unwrap();
        assert_eq!(got[0].function, FunctionRef::Function("from-env".into()));
    }

    #[test]
    fn the_config_file_should_name_every_monitor_or_those_asked_for() {
        let dir = tmp("file");
        let env = Env {
            home: Some(dir.display().to_string()),
            ..Env::default()
        };
        write(&dir.join(".config/bbm"), TWO);
        let t = Target {
            profile: Some("default-profile".into()),
            ..target()
        };
        let all = specs(&t, &env).unwrap();
        assert_eq!(
            all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["eu", "us"]
        );
        // A monitor's own profile wins over --profile; one without gets it.
        assert_eq!(all[1].profile.as_deref(), Some("prod"));
        assert_eq!(all[0].profile.as_deref(), Some("default-profile"));
        let t = Target {
            monitors: vec!["us".into()],
            ..target()
        };
        assert_eq!(specs(&t, &env).unwrap().len(), 1);
        let t = Target {
            monitors: vec!["asia".into()],
            ..target()
        };
        let e = specs(&t, &env).unwrap_err().to_string();
        assert!(e.contains("asia") && e.contains("eu, us"), "{e}");
    }

    #[test]
    fn a_bad_config_file_should_say_where_and_why() {
        let dir = tmp("bad");
        let p = write(&dir, "[monitors.x]\nfunction = \"a\"\nstack = \"b\"\n");
        let t = Target {
            config: Some(p.clone()),
            ..target()
        };
        let e = specs(&t, &Env::default()).unwrap_err();
        assert!(e.to_string().contains("needs one of"), "{e}");
        assert_eq!(e.exit(), crate::error::Exit::Usage);
        std::fs::write(&p, "[monitors.x]\nfunktion = \"a\"\n").unwrap();
        let e = specs(&t, &Env::default()).unwrap_err().to_string();
        assert!(e.contains("funktion"), "{e}");
        // Named explicitly, a missing file is an error, not "no monitors".
        let t = Target {
            config: Some(dir.join("missing.toml")),
            ..target()
        };
        assert!(specs(&t, &Env::default()).is_err());
    }

    #[test]
    fn with_no_monitor_anywhere_the_error_should_say_how_to_name_one() {
        let env = Env {
            home: Some(tmp("none").display().to_string()),
            ..Env::default()
        };
        let e = specs(&target(), &env).unwrap_err().to_string();
        assert!(
            e.contains("--function") && e.contains("--stack") && e.contains("BBM_FUNCTION"),
            "{e}"
        );
    }

    #[test]
    fn a_function_arn_should_be_asked_in_its_own_region() {
        assert_eq!(
            arn_region("arn:aws:lambda:eu-west-1:123456789012:function:mon"),
            Some("eu-west-1")
        );
        assert_eq!(arn_region("mon"), None);
        assert_eq!(arn_region("123456789012:function:mon"), None);
    }
}
