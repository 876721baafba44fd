"""The deploy check (`make deploy-check`, part of `make test`): what a first real
deploy would meet, checked offline.

1. names: template.yaml expanded by the SAM translator (the pinned
   `samtranslator`, as CloudFormation's transform does), every optional part on.
   No resource, SAM's generated ones included, has a fixed physical name; every
   account-global name carries the region; with a 40-character stack name, in
   every region of the three partitions, every name is within its service's
   limit and pattern.
2. failures: every queue has an alarm, and every schedule, the Bedrock rule and
   Lambda's asynchronous invocations send what they could not deliver to a
   watched queue.
3. partitions: in every region of aws, aws-cn and aws-us-gov, with Slack asked
   for, each resource the stack would create is a type CloudFormation offers
   there (the provider schemas bundled with the pinned cfn-lint), and where
   Slack is not offered the stack says so in an output.
4. logs: the debug function, configured as the template configures it for
   each allowed LogLevel, over a track and a poll with one throttled job
   (moto and fake-bedrock); the lines Lambda's log filter would keep hold
   every metrics document, and the function's own lines at that level only.
5. package: dist/ as `make package` wrote it: the zip holds an executable
   aarch64 `bootstrap`, the packaged template points at it and validates, the
   Serverless Application Repository metadata is complete and matches
   Cargo.toml, and the release workflow publishes both files and the bbm
   archives (`make release`).
6. install: `cargo install --path . --bin bbm --locked`, as docs/cli.md says,
   into a scratch root (from the debug build `make deploy-check` made first, so
   it costs a copy): the installed `bbm` runs and lists its exit statuses.

Each part prints what it checked; any failure exits non-zero. Run from the
repository root with the project's venv: `python scripts/deploy_check.py
[names failures partitions logs package install]` (default: all)."""

from __future__ import annotations

import copy
import json
import os
import re
import struct
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import yaml  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

FAILED: list[str] = []
STACK_40 = "team-platform-bedrock-batch-monitor-prod"  # 40 characters
assert len(STACK_40) == 40
ACCOUNT = "123456789012"


def check(name: str, ok: bool, detail: object = "") -> None:
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        FAILED.append(name)


# ---------------------------------------------------------------- the template

def cfnlint_schemas() -> Path:
    import cfnlint
    return Path(cfnlint.__file__).parent / "data" / "schemas"


def partition_of(region: str) -> str | None:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if re.fullmatch(r"(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d", region):
        return "aws"
    return None  # ISO and sovereign partitions: not supported by the template


def regions() -> dict[str, set[str]]:
    """Region -> the resource types CloudFormation offers there, for the three
    partitions the template supports (cfn-lint bundles the registry's lists)."""
    out = {}
    for f in sorted((cfnlint_schemas() / "providers").glob("*.json")):
        if partition_of(f.stem):
            out[f.stem] = set(json.loads(f.read_text()))
    return out


ALL_ON = {
    "AlertEmail": "ops@example.com",
    "AlertEmailFilterPolicy": '{"severity": ["error"]}',
    "SlackWorkspaceId": "T0123ABCD",
    "SlackChannelId": "C0123456789",
    "SlackActions": "true",
    "PollSchedules": "4",
    "OutputBuckets": "my-bucket",
    "PreviousWorkIndex": "ALL",
    "MemberAccounts": "111111111111,222222222222",
    "OrganizationId": "o-a1b2c3d4e5",
}


def source_template(path: Path = ROOT / "template.yaml") -> dict:
    return yaml_parse(path.read_text())


def expand(tpl: dict) -> dict:
    """CloudFormation's view after the transform. The translator wants an S3
    code location, as `sam deploy` gives it after uploading the code."""
    tpl = copy.deepcopy(tpl)
    tpl["Resources"]["MonitorFunction"]["Properties"]["CodeUri"] = "s3://bucket/code.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(tpl, dict(ALL_ON), NoManagedPolicies())


class Unresolved(Exception):
    pass


class Evaluator:
    """Conditions and the intrinsic functions names use, for one deployment."""

    def __init__(self, tpl: dict, region: str, stack: str, params: dict | None = None) -> None:
        self.tpl = tpl
        self.values = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
        self.values.update(params or {})
        self.values.update({
            "AWS::Region": region, "AWS::StackName": stack, "AWS::AccountId": ACCOUNT,
            "AWS::Partition": partition_of(region) or "aws", "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        })
        self.cache: dict[str, bool] = {}

    def condition(self, name: str | None) -> bool:
        if name is None:
            return True
        if name not in self.cache:
            self.cache[name] = bool(self.value(self.tpl["Conditions"][name]))
        return self.cache[name]

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict) or len(v) != 1:
            return v
        (fn, arg), = v.items()
        if fn == "Ref":
            if arg in self.values:
                return self.values[arg]
            raise Unresolved(f"Ref {arg}")
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = (self.value(x) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0])
        if fn == "Fn::And":
            return all(self.value(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x) for x in arg)
        if fn == "Fn::If":
            return self.value(arg[1] if self.condition(arg[0]) else arg[2])
        if fn == "Fn::Join":
            return arg[0].join(str(self.value(x)) for x in self.value(arg[1]))
        if fn == "Fn::Sub":
            text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

            def sub(m):
                key = m.group(1)
                if key in local:
                    return str(self.value(local[key]))
                if key in self.values:
                    return str(self.values[key])
                raise Unresolved(f"${{{key}}}")
            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        raise Unresolved(fn)


# Every resource type the stack may hold, with the property naming it (None:
# the type has no name of its own), the service's limit, and whether the name
# is unique per account (global) or per region. Limits as the CloudFormation
# Template Reference and the services' API references give them
# (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-template-resource-type-ref.html);
# where cfn-lint's bundled registry schema carries a maxLength or pattern, the
# check applies it too.
NAMES: dict[str, tuple[str | None, int, str]] = {
    "AWS::Lambda::Function": ("FunctionName", 64, "regional"),
    "AWS::Logs::LogGroup": ("LogGroupName", 512, "regional"),
    "AWS::Scheduler::Schedule": ("Name", 64, "regional"),
    "AWS::Events::Rule": ("Name", 64, "regional"),
    "AWS::Events::EventBus": ("Name", 256, "regional"),
    "AWS::SQS::Queue": ("QueueName", 80, "regional"),
    "AWS::SNS::Topic": ("TopicName", 256, "regional"),
    "AWS::DynamoDB::Table": ("TableName", 255, "regional"),
    "AWS::CloudWatch::Alarm": ("AlarmName", 255, "regional"),
    "AWS::KMS::Key": (None, 0, "regional"),
    "AWS::CloudWatch::Dashboard": ("DashboardName", 255, "global"),
    "AWS::IAM::Role": ("RoleName", 64, "global"),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName", 128, "global"),
    "AWS::Chatbot::SlackChannelConfiguration": ("ConfigurationName", 128, "global"),
    "AWS::Chatbot::CustomAction": ("ActionName", 64, "global"),
    "AWS::SNS::Subscription": (None, 0, "regional"),
    "AWS::SNS::TopicPolicy": (None, 0, "regional"),
    "AWS::SQS::QueuePolicy": (None, 0, "regional"),
    "AWS::Lambda::Permission": (None, 0, "regional"),
    "AWS::Lambda::EventInvokeConfig": (None, 0, "regional"),
    # The Stop job button's alias ("stop"): its name is unique per function only
    # (AliasConfiguration Name, https://docs.aws.amazon.com/lambda/latest/api/API_AliasConfiguration.html).
    "AWS::Lambda::Alias": (None, 0, "regional"),
    # The function's own custom resource (the settings check): no name at all.
    "Custom::SettingsCheck": (None, 0, "regional"),
}


def registry_type(rtype: str) -> str:
    """The registry's type of a resource: a `Custom::` type is an
    AWS::CloudFormation::CustomResource under the template's own name
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudformation-customresource.html)."""
    return "AWS::CloudFormation::CustomResource" if rtype.startswith("Custom::") else rtype


def registry_schema(rtype: str) -> dict:
    schemas = cfnlint_schemas()
    digest = json.loads((schemas / "providers" / "us-east-1.json").read_text())[rtype]
    return json.loads((schemas / "resources" / f"{digest}.json").read_text())


def check_names(cfn: dict, region_list: list[str]) -> None:
    resources = cfn["Resources"]
    unknown = sorted({r["Type"] for r in resources.values()} - set(NAMES))
    check("every resource type in the expanded template is classified (name property, limit, scope)",
          not unknown, f"{unknown}: add them to NAMES in scripts/deploy_check.py")
    problems = []
    for lid, res in resources.items():
        prop, limit, scope = NAMES.get(res["Type"], (None, 0, "regional"))
        if prop is None or prop not in res.get("Properties", {}):
            continue  # CloudFormation generates a unique name
        raw = res["Properties"][prop]
        schema = registry_schema(res["Type"])["properties"].get(prop, {})
        limit = min(limit, schema.get("maxLength", limit))
        pattern = schema.get("pattern")

        def name(region: str, stack: str) -> str:
            return str(Evaluator(cfn, region, stack, ALL_ON).value(raw))

        if name("us-east-1", "stack-a") == name("us-east-1", "stack-b"):
            problems.append(f"{lid}.{prop} is the same for every stack: {name('us-east-1', 'stack-a')!r}")
        if scope == "global" and name("us-east-1", "stack-a") == name("us-west-2", "stack-a"):
            problems.append(f"{lid}.{prop} is account-global but the same in every region")
        for region in region_list:
            n = name(region, STACK_40)
            if len(n) > limit:
                problems.append(f"{lid}.{prop} {n!r} is {len(n)} characters in {region}, over {limit}")
            if pattern and not re.search(pattern.replace("\\Z", "$"), n):
                problems.append(f"{lid}.{prop} {n!r} does not match {pattern}")
    # Topic display names carry the environment (default: the stack name): at
    # most 100 characters (AWS::SNS::Topic DisplayName), with a 40-character
    # stack name or the longest Environment the parameter takes.
    for lid, res in resources.items():
        raw = res.get("Properties", {}).get("DisplayName")
        if res["Type"] != "AWS::SNS::Topic" or raw is None:
            continue
        for params in (ALL_ON, {**ALL_ON, "Environment": "e" * 64}):
            n = str(Evaluator(cfn, "us-east-1", STACK_40, params).value(raw))
            if len(n) > 100:
                problems.append(f"{lid}.DisplayName {n!r} is {len(n)} characters, over 100")
    named = sorted(f"{lid}" for lid, r in resources.items()
                   if NAMES.get(r["Type"], (None,))[0] in r.get("Properties", {}))
    check(f"no fixed names, global names carry the region, all within limits for a 40-character stack "
          f"in {len(region_list)} regions (named: {', '.join(named)})", not problems, problems)


# ------------------------------------------------------------------ failures

def refs_queue(v) -> str | None:
    """The logical id of the queue an ARN value points at (GetAtt X.Arn)."""
    if isinstance(v, dict) and "Fn::GetAtt" in v:
        ga = v["Fn::GetAtt"]
        ga = ga.split(".") if isinstance(ga, str) else ga
        return ga[0] if ga[1] == "Arn" else None
    return None


def check_failures(cfn: dict) -> None:
    res = cfn["Resources"]
    queues = {lid for lid, r in res.items() if r["Type"] == "AWS::SQS::Queue"}
    watched = {}
    for lid, r in res.items():
        if r["Type"] != "AWS::CloudWatch::Alarm":
            continue
        p = r["Properties"]
        for d in p.get("Dimensions", []):
            v = d.get("Value")
            if d.get("Name") == "QueueName" and isinstance(v, dict) and "Fn::GetAtt" in v:
                q = v["Fn::GetAtt"]
                q = q.split(".")[0] if isinstance(q, str) else q[0]
                if p.get("AlarmActions") and p.get("MetricName") == "ApproximateNumberOfMessagesVisible":
                    watched[q] = lid
    check(f"every queue has an alarm that notifies ({', '.join(f'{q}: {a}' for q, a in sorted(watched.items()))})",
          queues and queues <= set(watched), sorted(queues - set(watched)))
    senders = []
    for lid, r in res.items():
        p = r.get("Properties", {})
        if r["Type"] == "AWS::Scheduler::Schedule":
            senders.append((lid, refs_queue(p["Target"].get("DeadLetterConfig", {}).get("Arn"))))
        elif r["Type"] == "AWS::Events::Rule":
            for t in p.get("Targets", []):
                senders.append((f"{lid}/{t.get('Id')}", refs_queue(t.get("DeadLetterConfig", {}).get("Arn"))))
        elif r["Type"] == "AWS::Lambda::EventInvokeConfig":
            dest = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            senders.append((lid, refs_queue(dest)))
    bad = [(s, q) for s, q in senders if q not in watched]
    check(f"every schedule, rule target and asynchronous invocation sends failures to a watched queue "
          f"({len(senders)}: {', '.join(s for s, _ in senders)})", len(senders) >= 6 and not bad, bad)
    # EventBridge needs the queue's permission; Scheduler uses its role.
    policies = [r for r in res.values() if r["Type"] == "AWS::SQS::QueuePolicy"]
    rule_ok = all(any("events.amazonaws.com" in json.dumps(p["Properties"]["PolicyDocument"]) for p in policies)
                  for s, _ in senders if "/" in s)
    roles_ok = True
    for lid, r in res.items():
        if r["Type"] == "AWS::Scheduler::Schedule":
            role = r["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"]
            role = role.split(".")[0] if isinstance(role, str) else role[0]
            roles_ok &= "sqs:SendMessage" in json.dumps(res[role]["Properties"].get("Policies", []))
    check("EventBridge may send to the queue (queue policy) and each schedule's role may (sqs:SendMessage)",
          rule_ok and roles_ok)


# ---------------------------------------------------------------- partitions

def check_partitions(cfn: dict, offered: dict[str, set[str]]) -> None:
    cannot, slack = [], {}
    for region, types in offered.items():
        ev = Evaluator(cfn, region, STACK_40, ALL_ON)
        active = {lid: r["Type"] for lid, r in cfn["Resources"].items() if ev.condition(r.get("Condition"))}
        missing = sorted({t for t in active.values() if registry_type(t) not in types})
        if missing:
            cannot.append((region, missing))
        has_slack = any(t.startswith("AWS::Chatbot::") for t in active.values())
        notice = ev.condition(cfn["Outputs"].get("SlackNotice", {}).get("Condition", "__none__")) \
            if "SlackNotice" in cfn.get("Outputs", {}) else False
        slack[region] = (has_slack, notice)
    check(f"every resource the stack creates is offered in each of {len(offered)} regions (aws, aws-cn, aws-us-gov)",
          not cannot, cannot)
    wrong = [r for r, (has, notice) in slack.items()
             if (partition_of(r) == "aws") != has or has == notice]
    check("Slack is set up in the aws partition only; elsewhere the SlackNotice output says why", not wrong,
          {r: slack[r] for r in wrong})


# ---------------------------------------------------------------------- logs

LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def lambda_keeps(line: str, application_level: str) -> bool:
    """Lambda's application-log filter with the JSON log format: a line's level
    is its "level" field, and INFO when that is missing or invalid (or the line
    is not JSON); lines below the configured level are dropped. Source:
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html"""
    try:
        doc = json.loads(line)
        level = str(doc.get("level", "")).upper() if isinstance(doc, dict) else ""
    except json.JSONDecodeError:
        level = ""
    if level not in LEVELS:
        level = "INFO"
    return LEVELS.index(level) >= LEVELS.index(application_level.upper())


def check_logs(tpl: dict) -> None:
    from local import FUNCTION, RuntimeApi, Stack, function_env
    allowed = tpl["Parameters"]["LogLevel"]["AllowedValues"]
    fn = tpl["Resources"]["MonitorFunction"]["Properties"]
    with Stack(watch=False) as stack:
        for n, level in enumerate(allowed):
            ev = Evaluator(tpl, "us-east-1", "logs", {"LogLevel": level})
            application = str(ev.value(fn["LoggingConfig"].get("ApplicationLogLevel", "INFO")))
            fmt = str(ev.value(fn["LoggingConfig"].get("LogFormat", "Text")))
            own = {k: ev.value(v) for k, v in fn["Environment"]["Variables"].items() if k == "LOG_LEVEL"}
            ids = [f"lvl{n}job{k:05d}" for k in (1, 2)]  # job ids: 12 lowercase letters and digits
            arns = [f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/{i}" for i in ids]
            for i in ids:
                stack.admin("POST", "/_admin/jobs", {"jobName": f"logs-{i}", "id": i})
            api = RuntimeApi()
            env = function_env(api.port, stack.moto, stack.bedrock, stack.table, stack.topic_arn, 8)
            env.pop("LOG_LEVEL", None)
            # As Lambda sets them from LoggingConfig, and the function's variables as the template sets them.
            env.update({"AWS_LAMBDA_LOG_FORMAT": fmt.upper(), "AWS_LAMBDA_LOG_LEVEL": application,
                        "AWS_MAX_ATTEMPTS": "2", "BULK_READ_MIN": "off", **own})
            path = ROOT / ".demo" / f"deploy-check-logs-{level}.log"
            proc = subprocess.Popen([str(ROOT / "target" / "debug" / FUNCTION)], env=env,
                                    stdout=open(path, "w"), stderr=subprocess.STDOUT)
            try:
                api.invoke({"track": arns}, timeout=60)
                stack.drain()
                for i in ids:
                    stack.admin("POST", f"/_admin/jobs/{i}/status", {"status": "InProgress"})
                stack.admin("POST", "/_admin/faults", {"kind": "Throttling", "jobId": ids[0]})
                api.invoke({"poll": {}}, timeout=60)
                stack.admin("DELETE", "/_admin/faults")
                stack.drain()
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            lines = [x for x in path.read_text().splitlines() if x.strip()]
            kept = [json.loads(x) for x in lines if lambda_keeps(x, application) and x.startswith("{")]
            emf = [d for d in kept if "_aws" in d]
            own_lines = [d for d in kept if "level" in d]
            levels = {d["level"].upper() for d in own_lines}
            at = LEVELS.index(level)
            throttled = any(d.get("fields", {}).get("error_kind") == "BedrockThrottling" for d in own_lines)
            check(f"LogLevel {level} (Lambda's filter at {application}): both metrics documents reach CloudWatch",
                  len(emf) == 2 and {d.get("Command") for d in emf} == {"Track", "Poll"},
                  [d.get("Command") for d in emf])
            # The throttled job's line is a warning (or an error when a whole poll was throttled).
            check(f"LogLevel {level}: the function's lines are at {level} or above, and those are there",
                  all(LEVELS.index(lv) >= at for lv in levels)
                  and (throttled or at > LEVELS.index("WARN"))
                  and ("INFO" in levels) == (at <= LEVELS.index("INFO"))
                  and ("DEBUG" in levels) == (at <= LEVELS.index("DEBUG")),
                  (sorted(levels), throttled))


# ------------------------------------------------------------------- package

def cargo() -> dict:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]


def check_package(tpl: dict) -> None:
    pkg = cargo()
    version = pkg["version"]
    dist = ROOT / "dist"
    zip_name = f"bedrock-batch-monitor-{version}-arm64.zip"
    zpath = dist / zip_name
    check(f"dist/{zip_name} exists (make package)", zpath.exists(), "run `make package`")
    if zpath.exists():
        with zipfile.ZipFile(zpath) as z:
            names = z.namelist()
            info = z.getinfo("bootstrap") if "bootstrap" in names else None
            head = z.read("bootstrap")[:20] if info else b""
        mode = (info.external_attr >> 16) if info else 0
        elf = head[:4] == b"\x7fELF" and head[4] == 2 and head[5] == 1
        machine = struct.unpack("<H", head[18:20])[0] if len(head) >= 20 else None
        check("the zip holds one file, bootstrap, executable, a 64-bit little-endian ELF for aarch64 (e_machine 183)",
              names == ["bootstrap"] and mode & 0o111 == 0o111 and elf and machine == 183,
              (names, oct(mode), head[:6], machine))
    packaged = dist / "packaged.yaml"
    check("dist/packaged.yaml exists", packaged.exists())
    if packaged.exists():
        p = yaml_parse(packaged.read_text())
        code = p["Resources"]["MonitorFunction"]["Properties"].get("CodeUri")
        check("the packaged template's function code is the zip beside it",
              code == zip_name and (packaged.parent / str(code)).exists(), code)
        check("the packaged template has no build step (no BuildMethod) and no local file to upload but the zip",
              "BuildMethod" not in json.dumps(p["Resources"]["MonitorFunction"].get("Metadata", {}))
              and "AWS::ServerlessRepo::Application" not in p.get("Metadata", {}))
        same = copy.deepcopy(p)
        src = copy.deepcopy(tpl)
        for t in (same, src):
            t["Resources"]["MonitorFunction"]["Properties"].pop("CodeUri")
            t["Resources"]["MonitorFunction"].get("Metadata", {}).pop("BuildMethod", None)
            t["Resources"]["MonitorFunction"].get("Metadata", {}).pop("BuildProperties", None)
            t.pop("Metadata", None)
        check("apart from the code and the metadata, the packaged template is template.yaml", same == src)
        lint = subprocess.run([str(ROOT / ".venv/bin/cfn-lint"), str(packaged)], capture_output=True, text=True)
        check("cfn-lint accepts dist/packaged.yaml", lint.returncode == 0, lint.stdout[-2000:])
        val = subprocess.run([str(ROOT / ".venv/bin/sam"), "validate", "--lint", "--template-file", str(packaged)],
                             capture_output=True, text=True, cwd=ROOT)
        check("sam validate --lint accepts dist/packaged.yaml", val.returncode == 0, (val.stdout + val.stderr)[-2000:])
        try:
            expand(p)
            translated = True
        except Exception as e:  # noqa: BLE001
            translated = e
        check("the SAM translator expands dist/packaged.yaml", translated is True, translated)
    # The Serverless Application Repository's fields (names, limits and patterns from
    # https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/serverless-sam-template-publishing-applications-metadata-properties.html).
    sar = tpl.get("Metadata", {}).get("AWS::ServerlessRepo::Application", {})
    problems = []
    for field in ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl",
                  "SemanticVersion", "SourceCodeUrl", "HomePageUrl"):
        if not isinstance(sar.get(field), str) or not sar[field]:
            problems.append(f"{field} missing")
    if not problems:
        if not re.fullmatch(r"[a-zA-Z0-9\-]{1,140}", sar["Name"]):
            problems.append("Name")
        if len(sar["Description"]) > 256:
            problems.append("Description over 256")
        if not re.fullmatch(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?", sar["Author"]) or len(sar["Author"]) > 127:
            problems.append("Author pattern")
        if sar["SemanticVersion"] != version:
            problems.append(f"SemanticVersion {sar['SemanticVersion']} is not Cargo.toml's {version}")
        if sar["SpdxLicenseId"] != pkg.get("license"):
            problems.append(f"SpdxLicenseId is not Cargo.toml's license {pkg.get('license')}")
        for f in ("LicenseUrl", "ReadmeUrl"):
            if not (ROOT / sar[f]).is_file():
                problems.append(f"{f} {sar[f]} is not a file")
        if sar["SourceCodeUrl"] != pkg.get("repository"):
            problems.append("SourceCodeUrl is not Cargo.toml's repository")
        labels = sar.get("Labels", [])
        if len(labels) > 10 or not all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", x) for x in labels):
            problems.append("Labels")
    check("the Serverless Application Repository metadata is complete and agrees with Cargo.toml and LICENSE",
          not problems, problems)
    licence = (ROOT / "LICENSE").read_text() if (ROOT / "LICENSE").exists() else ""
    check("LICENSE is the MIT licence Cargo.toml names", pkg.get("license") == "MIT" and "MIT License" in licence)
    wf = ROOT / ".github" / "workflows" / "release.yml"
    ok = wf.exists()
    if ok:
        w = yaml.safe_load(wf.read_text())
        on = w.get(True) or w.get("on") or {}
        run = json.dumps(w)
        ok = ("tags" in on.get("push", {}) and "make test" in run and "make package" in run
              and "dist/packaged.yaml" in run and "-arm64.zip" in run and "gh release" in run)
    check("the release workflow builds, tests and attaches the zip and packaged.yaml for a version tag", ok)
    check("... and bbm for Linux x86_64 and arm64, built by `make release`",
          ok and "make release" in run and all(f"dist/bbm-${{version}}-{t}.tar.gz" in run
                                               for t in ("x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu")))
    makefile = (ROOT / "Makefile").read_text()
    check("`make release` cross-compiles bbm for both Linux targets and packs them",
          re.search(r"^release:", makefile, re.M) is not None
          and "for t in x86_64-unknown-linux-gnu $(ARM_TARGET)" in makefile
          and "--bin bbm --features cli" in makefile and "scripts/release.py" in makefile)
    check("the function's own builds (sam build, make package) leave bbm's dependencies out",
          tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["metadata"]["lambda"]["build"]
          .get("no_default_features") is True)


def check_install() -> None:
    """`cargo install --path . --bin bbm`, debug, into a scratch root."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="bbm-install-") as root:
        r = subprocess.run(["cargo", "install", "--path", ".", "--bin", "bbm", "--locked", "--debug",
                            "--root", root, "--target-dir", str(ROOT / "target"), "--quiet"],
                           cwd=ROOT, capture_output=True, text=True)
        check("cargo install --path . --bin bbm installs bbm", r.returncode == 0, r.stderr[-2000:])
        bbm = Path(root) / "bin" / "bbm"
        if not bbm.exists():
            return
        h = subprocess.run([str(bbm), "--help"], capture_output=True, text=True)
        check("the installed bbm runs: --help lists the exit statuses",
              h.returncode == 0 and "Exit status:" in h.stdout and "3  `wait`" in h.stdout, h.stdout[-2000:])


# ---------------------------------------------------------------------- main

def main() -> int:
    parts = sys.argv[1:] or ["names", "failures", "partitions", "logs", "package", "install"]
    tpl = source_template()
    cfn = expand(tpl)
    offered = regions()
    if "names" in parts:
        check_names(cfn, sorted(offered))
    if "failures" in parts:
        check_failures(cfn)
    if "partitions" in parts:
        check_partitions(cfn, offered)
    if "logs" in parts:
        check_logs(tpl)
    if "package" in parts:
        check_package(tpl)
    if "install" in parts:
        check_install()
    print(f"deploy check: {'all passed' if not FAILED else f'{len(FAILED)} failed'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
