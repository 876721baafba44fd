"""Local stand-ins for the demo, the end-to-end test and the bench: moto's server
(DynamoDB, SNS, SQS), the fake-bedrock binary and the function under `cargo
lambda watch`, plus the table, topic and subscribed queue, created from
template.yaml; and a minimal Lambda Runtime API that sends real deadlines.

Run from the repository root with the project's venv (`make setup`)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
REGION = "us-east-1"
# Where the fake Bedrock's jobs write their output (s3://batch-output/<job name>/):
# the function reads the manifests there for token totals.
OUTPUT_BUCKET = "batch-output"
FUNCTION = "bedrock-batch-monitor"
# The local stack's Environment: on every message the demo and the e2e test read.
ENVIRONMENT = "local-demo"
# The local stack is a hub reading two member accounts besides its own (the
# fake's and moto's 123456789012): fake-bedrock's STS stand-in lets the
# function assume MEMBER_ROLE in them, and answers each account's jobs only
# to that account's credentials.
HOME_ACCOUNT = "123456789012"
MEMBERS = ("111122223333", "444455556666")
MEMBER_ROLE = "bedrock-batch-monitor-reader"


def log(msg: str) -> None:
    print(f"\033[2m[local]\033[0m {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, what: str, proc: subprocess.Popen | None = None, timeout: float = 300) -> None:
    start = time.time()
    while time.time() - start < timeout:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited with code {proc.returncode} before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not listen on port {port} within {timeout:.0f} s")


def moto_command(port: int) -> list[str]:
    """moto's server, DynamoDB requests applied one at a time (see scripts/moto_server.py)."""
    return [str(VENV_BIN / "python"), str(ROOT / "scripts" / "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)]


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation YAML: intrinsic-function tags become plain values."""


def _any_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
        # !If keeps its shape: the table's indexes choose between branches.
        return {"Fn::If": value} if suffix == "If" else value
    return loader.construct_mapping(node)


def _deployed(value):
    """The branch a deployment with the default parameters gets: the last of
    each !If (the others keep an old index during an upgrade)."""
    while isinstance(value, dict) and "Fn::If" in value:
        value = value["Fn::If"][2]
    return value


_CfnLoader.add_multi_constructor("!", _any_tag)


def table_definition() -> dict:
    """The job table's key schema, attributes and indexes, from template.yaml."""
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            p = resource["Properties"]
            return {
                "KeySchema": p["KeySchema"],
                "AttributeDefinitions": p["AttributeDefinitions"],
                "GlobalSecondaryIndexes": _deployed(p.get("GlobalSecondaryIndexes", [])),
                "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
            }
    sys.exit("template.yaml defines no AWS::DynamoDB::Table")


class RuntimeApi:
    """The Lambda Runtime API, enough for one function process."""

    def __init__(self) -> None:
        self.events: "queue.Queue[tuple[str, dict, int]]" = queue.Queue()
        self.results: "queue.Queue[tuple[str, str, bytes]]" = queue.Queue()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    request_id, event, deadline_ms = api.events.get()
                    body = json.dumps(event).encode()
                    self.send_response(200)
                    self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                    self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                    self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                     "arn:aws:lambda:us-east-1:123456789012:function:bedrock-batch-monitor")
                    self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = self.path.split("/")
                kind = parts[-1]
                request_id = parts[-2] if kind in ("response", "error") else "init"
                self.send_response(202)
                self.end_headers()
                api.results.put((request_id, kind, body))

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def send(self, event: dict, deadline_s: float = 900) -> None:
        """Queues one event without waiting for the answer."""
        self.events.put((str(uuid.uuid4()), event, int(time.time() * 1000 + deadline_s * 1000)))

    def invoke(self, event: dict, timeout: float = 600, deadline_s: float = 900) -> tuple[dict, float]:
        """Sends one event; the function's deadline is `deadline_s` from now."""
        request_id = str(uuid.uuid4())
        start = time.perf_counter()
        self.events.put((request_id, event, int(time.time() * 1000 + deadline_s * 1000)))
        rid, kind, body = self.results.get(timeout=timeout)
        elapsed = time.perf_counter() - start
        if kind != "response":
            raise RuntimeError(f"function answered {kind}: {body.decode(errors='replace')}")
        return json.loads(body), elapsed


def function_env(api_port: int, moto: str, bedrock: str, table: str, topic: str, concurrency: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bedrock-batch-monitor",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "LOG_LEVEL": "WARN",
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "AWS_ENDPOINT_URL_SNS": moto,
        "AWS_ENDPOINT_URL_BEDROCK": bedrock,
        # The batch quota of waiting jobs: fake-bedrock's Service Quotas stand-in.
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS": bedrock,
        "TABLE_NAME": table,
        "TOPIC_ARN": topic,
        "MAX_CONCURRENCY": str(concurrency),
    })
    return env


class Stack:
    """Starts the stand-ins and the function; stops them on exit."""

    def __init__(self, ports: tuple[int, int, int] | None = None, invoke_address: str = "127.0.0.1",
                 watch: bool = True) -> None:
        self.procs: list[subprocess.Popen] = []
        # Without `watch`, only the stand-ins: the caller runs the function itself.
        self.watch = watch
        # cargo lambda's own default is "::", which plain `cargo lambda invoke` reaches.
        self.invoke_address = invoke_address
        self.moto_port, self.bedrock_port, self.lambda_port = ports or (free_port(), free_port(), free_port())
        self.moto = f"http://127.0.0.1:{self.moto_port}"
        self.bedrock = f"http://127.0.0.1:{self.bedrock_port}"
        self.logdir = ROOT / ".demo"
        self.logdir.mkdir(exist_ok=True)

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        out = open(self.logdir / f"{name}.log", "w")
        p = subprocess.Popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def start(self) -> "Stack":
        # A SIGTERM (CI's timeout, `kill`) unwinds like Ctrl-C, so the stand-ins stop too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        for port in (self.moto_port, self.bedrock_port, self.lambda_port):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    sys.exit(f"port {port} is already in use (a previous run still going?); stop it and retry")
        if not (VENV_BIN / "moto_server").exists():
            sys.exit(f"moto is not installed in {VENV_BIN.parent}: run `make setup` first")
        log("building the function and fake-bedrock (debug)")
        subprocess.run(["cargo", "build", "--quiet", "--workspace", "--bins"], cwd=ROOT, check=True)
        p = self._spawn("moto", moto_command(self.moto_port))
        wait_port(self.moto_port, "moto_server", p, 60)
        log(f"moto (DynamoDB, SNS, SQS) on {self.moto}")
        p = self._spawn("fake-bedrock", [str(ROOT / "target/debug/fake-bedrock"), "--port", str(self.bedrock_port)])
        wait_port(self.bedrock_port, "fake-bedrock", p, 60)
        log(f"fake Bedrock on {self.bedrock}")
        for account in MEMBERS:
            self.admin("POST", "/_admin/roles", {"account": account, "roleName": MEMBER_ROLE})
        log(f"member accounts {', '.join(MEMBERS)}: role {MEMBER_ROLE} (fake-bedrock's STS)")
        self._create_resources()
        if not self.watch:
            return self
        env = dict(os.environ)
        env.update(self.function_env())
        p = self._spawn(
            "cargo-lambda-watch",
            [str(VENV_BIN / "cargo-lambda"), "lambda", "watch", "--quiet", "--ignore-changes",
             "--invoke-address", self.invoke_address, "--invoke-port", str(self.lambda_port)],
            env=env,
        )
        wait_port(self.lambda_port, "cargo lambda watch", p, 120)
        log(f"function under `cargo lambda watch` on port {self.lambda_port} (logs: .demo/cargo-lambda-watch.log)")
        return self

    def function_env(self) -> dict:
        return {
            "TABLE_NAME": self.table,
            "TOPIC_ARN": self.topic_arn,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL_DYNAMODB": self.moto,
            "AWS_ENDPOINT_URL_SNS": self.moto,
            "AWS_ENDPOINT_URL_BEDROCK": self.bedrock,
            # Member accounts' roles, assumed with fake-bedrock's STS stand-in.
            "AWS_ENDPOINT_URL_STS": self.bedrock,
            # The batch quota beside waiting jobs: fake-bedrock's Service Quotas stand-in.
            "AWS_ENDPOINT_URL_SERVICE_QUOTAS": self.bedrock,
            "MEMBER_ACCOUNTS": ",".join(MEMBERS),
            # Manifests (token totals, and so the cost line) from moto's S3.
            "AWS_ENDPOINT_URL_S3": self.moto,
            "OUTPUT_BUCKETS": OUTPUT_BUCKET,
            "AWS_MAX_ATTEMPTS": "2",
            "LOG_LEVEL": "INFO",
            "ENVIRONMENT": ENVIRONMENT,
            # The demo's hours are seconds: its digest reports ends up to the
            # moment it is sent (deployed, ends of the last 5 minutes wait for
            # the next digest: docs/notifications.md, the digest).
            "DIGEST_SETTLE_SECONDS": "0",
        }

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.moto, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def _create_resources(self) -> None:
        self.table = "bedrock-batch-jobs"
        self.client("dynamodb").create_table(TableName=self.table, **table_definition())
        sns, sqs = self.client("sns"), self.client("sqs")
        self.topic_arn = sns.create_topic(Name="bedrock-batch-alerts")["TopicArn"]
        self.queue_url = sqs.create_queue(QueueName="alerts-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.s3().create_bucket(Bucket=OUTPUT_BUCKET)
        log(f"table {self.table} (from template.yaml), topic {self.topic_arn}, subscribed queue {queue_arn}")

    def s3(self):
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.moto, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(s3={"addressing_style": "path"}))

    def put_manifest(self, job: dict, input_tokens: int, output_tokens: int) -> str:
        """Writes the manifest Bedrock leaves at <outputS3Uri>/<job id>/manifest.json.out."""
        prefix = job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"].removeprefix(f"s3://{OUTPUT_BUCKET}/")
        key = f"{prefix.rstrip('/')}/{job['jobArn'].rsplit('/', 1)[-1]}/manifest.json.out"
        self.s3().put_object(Bucket=OUTPUT_BUCKET, Key=key, Body=json.dumps({
            "inputTokenCount": input_tokens, "outputTokenCount": output_tokens}).encode())
        return f"s3://{OUTPUT_BUCKET}/{key}"

    def invoke_event(self, name: str, event: dict) -> dict:
        """Writes `event` to .demo/<name> and invokes the function with it."""
        path = self.logdir / name
        path.write_text(json.dumps(event))
        return self.invoke_file(str(path))

    def invoke_file(self, path: str) -> dict:
        """`cargo lambda invoke --data-file`, as a developer would."""
        r = subprocess.run(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", FUNCTION, "--data-file", path,
             "--invoke-address", "127.0.0.1", "--invoke-port", str(self.lambda_port), "--output-format", "json"],
            cwd=ROOT, capture_output=True, text=True,
        )
        if r.returncode != 0:
            return {"invocationError": (r.stderr or r.stdout).strip()}
        return json.loads(r.stdout)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict | None:
        req = urllib.request.Request(self.bedrock + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            text = resp.read()
            return json.loads(text) if text else None

    def fault(self, rule: dict) -> int:
        """Adds a fault rule in front of moto (scripts/moto_server.py); returns its id."""
        req = urllib.request.Request(self.moto + "/_faults", method="POST", data=json.dumps(rule).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            return json.loads(resp.read())["id"]

    def clear_fault(self, rule_id: int) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.moto}/_faults/{rule_id}", method="DELETE")).read()

    def sent_email(self) -> list[tuple[str, str]]:
        """(subject, email body) of each message published to the topic so far,
        as moto's SNS kept them (scripts/moto_server.py, /_sent)."""
        url = f"{self.moto}/_sent?topic={urllib.parse.quote(self.topic_arn, safe='')}"
        with urllib.request.urlopen(url) as resp:
            sent = json.loads(resp.read())
        return [(m["subject"], json.loads(m["message"])["email"]) for m in sent]

    def drain(self, wait: float = 1.0) -> list[dict]:
        """Messages on the subscribed queue: the SNS envelope with the sqs form inside."""
        sqs, out = self.client("sqs"), []
        while True:
            r = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                    WaitTimeSeconds=int(wait) if not out else 0)
            msgs = r.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                env = json.loads(m["Body"])
                out.append({
                    "subject": env.get("Subject"),
                    "body": json.loads(env["Message"]),
                    "attributes": {k: v["Value"] for k, v in env.get("MessageAttributes", {}).items()},
                })
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 15)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    """`make local`: the stand-ins and the function on fixed ports, until Ctrl-C."""
    with Stack(ports=(5000, 4010, 9000), invoke_address="::") as stack:
        env = " ".join(f"{k}={v}" for k, v in stack.function_env().items())
        print(f"""
The function runs under `cargo lambda watch` on port 9000, against:
  moto (DynamoDB, SNS, SQS)   {stack.moto}   table {stack.table}, topic {stack.topic_arn}
  fake Bedrock                {stack.bedrock}   admin API under /_admin
  SQS subscriber              {stack.queue_url}

Try, in another shell:
  curl -s -XPOST {stack.bedrock}/_admin/jobs -d '{{"jobName": "nightly", "id": "abcdefghwxyz"}}' -H 'content-type: application/json'
  .venv/bin/cargo-lambda lambda invoke bedrock-batch-monitor --data-file events/track.json
  curl -s -XPOST {stack.bedrock}/_admin/jobs/abcdefghwxyz/status -d '{{"status": "Failed", "message": "bad input"}}' -H 'content-type: application/json'
  .venv/bin/cargo-lambda lambda invoke bedrock-batch-monitor --data-file events/poll.json
  .venv/bin/cargo-lambda lambda invoke bedrock-batch-monitor --data-file events/describe.json

The function's environment: {env}
Ctrl-C stops everything.""", flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
