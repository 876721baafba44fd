"""`make bench`: the figures of DESIGN.md section 6 and issue 10, measured here.

- release binary sizes, arm64 and x86_64 (cargo lambda build, stripped);
- cold start: process start to the first poll answered (release x86_64 binary,
  local stand-ins, a minimal Lambda Runtime API served here);
- for N = 100, 1,000 and 10,000 active unchanged jobs (Bedrock answering in
  100 ms, 32 jobs in flight, the default request ceiling): the poll's wall
  time, its floor (the table stand-in's own time to return the work pages,
  measured with boto3, plus the Bedrock list pages one after the other), the
  requests by kind to Bedrock, DynamoDB and SNS, DynamoDB read units, and the
  process's peak RSS;
- the work listing with the lean index against the same items projected whole;
- the bulk-read threshold: 1 to 8 jobs in a region, bulk on and off;
- the bill's inputs per poll at each N: Lambda GB-seconds (the poll's time and
  the template's memory), Bedrock requests by kind, DynamoDB read and write
  units (from the item sizes and the write requests), SNS publishes, and the
  log bytes written at the template's log level (INFO, JSON); they are saved
  to docs/bench-figures.json and turned into the monthly bill by
  scripts/cost.py, which rewrites the Cost section of docs/capacity-and-cost.md;
- time to know: from a status change in the fake Bedrock to the message in a
  queue subscribed to the topic, when Bedrock's event is delivered (the
  function reconciles the job at once) and when it is lost (the next poll
  finds it: its own share, besides the wait for the schedule).

The function runs as a real process speaking the Lambda Runtime API; the table
lives in moto (scripts/moto_server.py, which counts requests), the jobs in the
fake Bedrock. Figures are printed, not asserted. Each poll's figures also
carry what repeats from run to run whatever the machine's load: the DynamoDB
requests by kind and the bytes of their answers, the Bedrock requests, and the
function process's CPU time (every thread's, from /proc).

`BENCH_TABLE=dynalite` puts the table on dynalite instead (an independent
DynamoDB emulator, npm `dynalite`, pinned in DYNALITE, installed by this script
with npm into .dynalite/, git-ignored; SNS and SQS stay on moto): moto lists
about 1,000 items a second, so on moto a poll is moto's time; on dynalite it
is the function's own. It measures the cold start and the polls only (at 100,
1,000 and 10,000 jobs, 2,500 a shard: dynalite 4.0 drops items past 1 MB of an
index page, which the lean index's pages stay far below), counts the DynamoDB
requests in one more poll through a counting proxy (the timed polls go
straight to dynalite), prints, and saves to .demo/bench-dynalite.json;
docs/bench-figures.json stays moto's. `BENCH_BINARY=<path>` measures a binary
built elsewhere (an older commit's, side by side) instead of building one;
`BENCH_ONLY=polls` measures the polls alone on moto; `BENCH_ONLY=record-errors`
what reading an ended job's records' errors adds to its poll (S3 requests,
bytes, time)."""

from __future__ import annotations

import copy
from pathlib import Path
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local import REGION, ROOT, VENV_BIN, RuntimeApi, free_port, function_env, log, moto_command, wait_port

LAMBDA_DIR = ROOT / "target" / "lambda" / "bedrock-batch-monitor"
# The independent DynamoDB emulator for BENCH_TABLE=dynalite, pinned.
DYNALITE = "dynalite@4.0.0"
DYNALITE_DIR = ROOT / ".dynalite"


def cpu_seconds(pid: int) -> float:
    """The process's time on a CPU so far, every thread's (schedstat, in
    nanoseconds: finer than the 10 ms ticks of /proc/<pid>/stat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def dynalite_command(port: int) -> list[str]:
    """dynalite in memory on `port`, installed into .dynalite/ with npm at the
    pinned version when it is not there yet."""
    cli = DYNALITE_DIR / "node_modules" / "dynalite" / "cli.js"
    if not cli.exists():
        if shutil.which("npm") is None or shutil.which("node") is None:
            sys.exit("BENCH_TABLE=dynalite needs Node.js and npm (https://nodejs.org) to install " + DYNALITE)
        log(f"npm install {DYNALITE} into {DYNALITE_DIR.relative_to(ROOT)}/")
        subprocess.run(["npm", "install", "--prefix", str(DYNALITE_DIR), "--no-audit", "--no-fund",
                        "--save-exact", DYNALITE], check=True)
    return ["node", str(cli), "--port", str(port), "--createTableMs", "0", "--deleteTableMs", "0",
            "--updateTableMs", "0"]


class CountingProxy:
    """An HTTP proxy in front of a DynamoDB endpoint that counts the requests
    by action and the bytes of their answers (dynalite counts nothing)."""

    def __init__(self, upstream_port: int) -> None:
        self.counts: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                action = (self.headers.get("X-Amz-Target") or "?").rsplit(".", 1)[-1]
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port)
                conn.request("POST", self.path, body,
                             {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                with proxy.lock:
                    proxy.counts[action] = proxy.counts.get(action, 0) + 1
                    proxy.bytes[action] = proxy.bytes.get(action, 0) + len(data)
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> tuple[dict, dict]:
        with self.lock:
            counts, size = self.counts, self.bytes
            self.counts, self.bytes = {}, {}
        return counts, size


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_sizes() -> dict:
    sizes = {}
    for arch_flag, arch in (("--arm64", "arm64"), ("--x86-64", "x86_64")):
        log(f"cargo lambda build --release {arch_flag}")
        subprocess.run([str(VENV_BIN / "cargo-lambda"), "lambda", "build", "--release", "--locked", arch_flag,
                        "--bin", "bedrock-batch-monitor"], cwd=ROOT, check=True)
        binary = LAMBDA_DIR / "bootstrap"
        sizes[arch] = binary.stat().st_size / (1024 * 1024)
        if arch == "x86_64":
            sizes["x86_64_path"] = str(binary)
    return sizes


class Bench:
    def __init__(self, binary: str, table: str = "moto") -> None:
        import boto3

        self.binary = binary
        self.procs: list[subprocess.Popen] = []
        self.moto_port, self.bedrock_port = free_port(), free_port()
        self.moto = f"http://127.0.0.1:{self.moto_port}"
        self.bedrock = f"http://127.0.0.1:{self.bedrock_port}"
        logdir = ROOT / ".demo"
        logdir.mkdir(exist_ok=True)
        self.procs.append(subprocess.Popen(moto_command(self.moto_port),
                                           stdout=open(logdir / "bench-moto.log", "w"), stderr=subprocess.STDOUT))
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "fake-bedrock"], cwd=ROOT, check=True)
        # Where cargo put it: CARGO_TARGET_DIR when set, as cargo itself reads it.
        target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
        self.procs.append(subprocess.Popen([str(target / "release/fake-bedrock"), "--port", str(self.bedrock_port)],
                                           stdout=open(logdir / "bench-fake-bedrock.log", "w"), stderr=subprocess.STDOUT))
        wait_port(self.moto_port, "moto_server", self.procs[0], 60)
        wait_port(self.bedrock_port, "fake-bedrock", self.procs[1], 60)
        # Where the table lives: moto (which counts requests itself) or dynalite
        # (counted by a proxy in front of it, for one poll of each figure).
        self.table_kind = table
        self.table_url, self.proxy = self.moto, None
        if table == "dynalite":
            port = free_port()
            self.procs.append(subprocess.Popen(dynalite_command(port), stdout=open(logdir / "bench-dynalite.log", "w"),
                                               stderr=subprocess.STDOUT))
            wait_port(port, "dynalite", self.procs[-1], 60)
            self.table_url = f"http://127.0.0.1:{port}"
            self.proxy = CountingProxy(port)
        kw = dict(endpoint_url=self.moto, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **{**kw, "endpoint_url": self.table_url})
        sns = boto3.client("sns", **kw)
        self.topic = sns.create_topic(Name="bench")["TopicArn"]
        self.sqs = boto3.client("sqs", **kw)
        self.queue = self.sqs.create_queue(QueueName="bench-subscriber")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn)
        from local import table_definition
        self.definition = table_definition()

    def admin(self, method: str, path: str, body: dict | None = None, base: str | None = None) -> dict | None:
        req = urllib.request.Request((base or self.bedrock) + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
        text = urllib.request.urlopen(req).read()
        return json.loads(text) if text else None

    def bedrock_calls(self) -> dict:
        return self.admin("GET", "/_admin/calls")["counts"]

    def table_calls(self) -> dict:
        return self.admin("GET", "/_stats", base=self.moto)

    def table_bytes(self, table: str) -> dict:
        """The bytes of the DynamoDB answers for `table` (moto), by action."""
        return self.admin("GET", f"/_stats?table={table}", base=self.moto)["bytes"]

    def seed(self, n: int, whole_copy: bool = False) -> tuple[str, str | None]:
        """n jobs InProgress in Bedrock, and the same n already tracked in a fresh
        table; with `whole_copy`, also a table whose index projects every attribute."""
        table = f"bench-{n}-{uuid.uuid4().hex[:6]}"
        self.ddb.create_table(TableName=table, **self.definition)
        whole = None
        if whole_copy:
            whole = table + "-all"
            definition = copy.deepcopy(self.definition)
            for index in definition["GlobalSecondaryIndexes"]:
                index["Projection"] = {"ProjectionType": "ALL"}
            self.ddb.create_table(TableName=whole, **definition)
        self.admin("POST", "/_admin/reset")
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60))
        batch = []
        for i in range(n):
            job_id = f"{i:012d}"
            arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{job_id}"
            self.admin("POST", "/_admin/jobs", {"jobName": f"bench-{i}", "id": job_id, "status": "InProgress",
                                                "submitTime": now})
            batch.append({"PutRequest": {"Item": {
                "jobArn": {"S": arn}, "status": {"S": "InProgress"}, "version": {"N": "2"},
                "jobName": {"S": f"bench-{i}"}, "modelId": {"S": "anthropic.claude-3-haiku-20240307-v1:0"},
                "submitTime": {"S": now}, "lastModifiedTime": {"S": now},
                "inputS3Uri": {"S": f"s3://batch-input/bench-{i}/input.jsonl"},
                "outputS3Uri": {"S": f"s3://batch-output/bench-{i}/"},
                "history": {"L": [
                    {"M": {"from": {"NULL": True}, "to": {"S": "Submitted"}, "at": {"S": now}, "message": {"NULL": True}}},
                    {"M": {"from": {"S": "Submitted"}, "to": {"S": "InProgress"}, "at": {"S": now}, "message": {"NULL": True}}},
                ]},
                "outbox": {"M": {}}, "pollShard": {"N": str(i % 4)}, "notFoundCount": {"N": "0"},
                "gone": {"BOOL": False}, "labels": {"M": {"team": {"S": "search"}}}, "trackedAt": {"S": now},
            }}})
            if len(batch) == 25:
                for t in filter(None, (table, whole)):
                    self.ddb.batch_write_item(RequestItems={t: batch})
                batch = []
        if batch:
            for t in filter(None, (table, whole)):
                self.ddb.batch_write_item(RequestItems={t: batch})
        return table, whole

    def list_work(self, table: str) -> tuple[float, float, int]:
        """What the table stand-in itself takes to return the work pages (the
        function's queries, with boto3): seconds, read units, pages. moto counts
        one unit a page whatever it holds, so the units are DynamoDB's rule
        applied to the items returned: a Query reads the sum of its items'
        sizes, rounded up to 4 KB, half a unit each (eventually consistent)."""
        start, units, pages, items = time.perf_counter(), 0.0, 0, 0
        for shard in range(4):
            kw = dict(TableName=table, IndexName="work-index-v2", KeyConditionExpression="pollShard = :s",
                      ExpressionAttributeValues={":s": {"N": str(shard)}})
            while True:
                r = self.ddb.query(**kw)
                pages += 1
                items += len(r["Items"])
                size = sum(item_size(i) for i in r["Items"])
                units += math.ceil(size / 4096) * 0.5
                if "LastEvaluatedKey" not in r:
                    break
                kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]
        self.listed_items = items
        return time.perf_counter() - start, units, pages

    def start_function(self, table: str, concurrency: int = 32, extra: dict | None = None,
                       log_path: str | None = None) -> tuple[subprocess.Popen, RuntimeApi]:
        """The function as a process. With `log_path`, at the template's log
        level and format (INFO, JSON), its output (logs and EMF documents)
        going to that file, as Lambda sends both to CloudWatch Logs."""
        api = RuntimeApi()
        env = function_env(api.port, self.moto, self.bedrock, table, self.topic, concurrency)
        env["AWS_ENDPOINT_URL_DYNAMODB"] = self.table_url
        if log_path:
            env.update(LOG_LEVEL="INFO", AWS_LAMBDA_LOG_FORMAT="JSON")
            out = open(log_path, "wb")
            proc = subprocess.Popen([self.binary], env={**env, **(extra or {})}, stdout=out, stderr=out)
        else:
            env.update(extra or {})
            proc = subprocess.Popen([self.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc, api

    def wait_message(self, timeout: float = 30) -> float:
        """Seconds until a message is on the subscriber's queue (deleted)."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            r = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=1, WaitTimeSeconds=0)
            for m in r.get("Messages", []):
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
                return time.perf_counter() - start
            time.sleep(0.005)
        raise RuntimeError("no message on the subscriber's queue")

    def purge(self) -> None:
        while self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
            self.sqs.purge_queue(QueueUrl=self.queue)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def value_size(v: dict) -> int:
    """An attribute value's size by DynamoDB's item size rules (approximately)."""
    (kind, x), = v.items()
    if kind == "S":
        return len(x.encode())
    if kind == "N":
        return len(x.lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(e) for k, e in x.items())
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in x)
    if kind in ("SS", "NS"):
        return sum(len(e.encode()) for e in x)
    return len(str(x))


def item_size(item: dict) -> int:
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


def poll_figures(bench: Bench, n: int, latency_ms: int, extra: dict | None = None, runs: int = 3) -> dict:
    """Polls n seeded unchanged jobs `runs` times in one process; the best run's
    figures, with the last run's request counts, answer bytes and log bytes,
    and the CPU time of each run. On dynalite the requests are counted in one
    more poll, by a second process sent through the counting proxy."""
    table, whole = bench.seed(n, whole_copy=n >= 1000 and bench.table_kind == "moto")
    bench.admin("PUT", "/_admin/latency", {"ms": latency_ms})
    log_path = str(ROOT / ".demo" / f"bench-function-{n}.log")
    proc, api = bench.start_function(table, 32, extra, log_path=log_path)
    times, cpus = [], []
    for _ in range(runs):
        b_before = bench.bedrock_calls()
        bench.admin("DELETE", "/_stats", base=bench.moto)
        log_before = os.path.getsize(log_path)
        cpu_before = cpu_seconds(proc.pid)
        summary, secs = api.invoke({"poll": {}})
        assert summary["polled"] == n and summary["transitions"] == 0, summary
        times.append(secs)
        bedrock = delta(bench.bedrock_calls(), b_before)
        table_calls = bench.table_calls()
        answer_bytes = bench.table_bytes(table)
        time.sleep(0.2)  # the process's last lines reach the file
        cpus.append(cpu_seconds(proc.pid) - cpu_before)
        with open(log_path, "rb") as f:
            f.seek(log_before)
            lines = f.read().decode("utf-8", "replace").splitlines()
    rss = peak_rss_mb(proc.pid)
    proc.terminate()
    proc.wait()
    ddb = table_calls.get("dynamodb", {})
    if bench.proxy is not None:
        counted, counted_api = bench.start_function(table, 32, {**(extra or {}),
                                                                "AWS_ENDPOINT_URL_DYNAMODB": bench.proxy.url})
        bench.proxy.take()
        summary, _ = counted_api.invoke({"poll": {}})
        assert summary["polled"] == n and summary["transitions"] == 0, summary
        ddb, answer_bytes = bench.proxy.take()
        counted.terminate()
        counted.wait()
    emf = [line for line in lines if '"_aws"' in line]
    log_lines = [line for line in lines if '"_aws"' not in line]
    floors = [bench.list_work(table) for _ in range(3)]
    listing, units, pages = min(floors)
    if bench.listed_items != n:
        log(f"warning: the table's listing returned {bench.listed_items} of {n} items: the floor is not comparable")
    out = {"n": n, "best": min(times), "times": times, "bedrock": bedrock, "summary_calls": summary["bedrockCalls"],
           "dynamodb": ddb, "dynamodb_bytes": answer_bytes, "cpu": cpus, "sns": table_calls.get("sns", {}), "rss": rss,
           "listing": listing, "units": units, "pages": pages,
           # Each write here is of an item under 1 KB: one write unit. A
           # GetItem (consistent, under 4 KB) is one read unit.
           "write_units": sum(v for k, v in ddb.items() if k in WRITES),
           "get_units": ddb.get("GetItem", 0),
           "log_bytes": sum(len(line.encode()) + 1 for line in lines),
           "log_lines": len(log_lines), "emf_documents": len(emf), "log_sample": log_lines[:3]}
    if whole:
        w_listing, w_units, w_pages = min(bench.list_work(whole) for _ in range(3))
        out.update(whole_listing=w_listing, whole_units=w_units, whole_pages=w_pages)
    return out


def seed_ended(bench: Bench, table: str, count: int) -> None:
    """`count` jobs that ended ten days ago, as the table keeps them for
    RETENTION_DAYS: a history of four statuses, Bedrock's message, labels,
    and the index of ends' keys."""
    ended = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 10 * 86400))
    message = "Input file is not valid JSONL: record 17 has no recordId. " * 4
    batch = []
    for i in range(count):
        arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/e{i:011d}"
        hist = [{"M": {"from": {"S": a} if a else {"NULL": True}, "to": {"S": b}, "at": {"S": ended},
                       "message": {"S": message} if b == "Failed" else {"NULL": True}}}
                for a, b in ((None, "Submitted"), ("Submitted", "Validating"), ("Validating", "InProgress"),
                             ("InProgress", "Failed"))]
        batch.append({"PutRequest": {"Item": {
            "jobArn": {"S": arn}, "status": {"S": "Failed"}, "version": {"N": "4"},
            "jobName": {"S": f"old-{i}"}, "message": {"S": message}, "submitTime": {"S": ended},
            "lastModifiedTime": {"S": ended}, "history": {"L": hist}, "outbox": {"M": {}},
            "labels": {"M": {"team": {"S": "search"}}}, "notFoundCount": {"N": "0"}, "gone": {"BOOL": False},
            "endedIn": {"S": "ended"}, "endedAt": {"S": ended}, "expiresAt": {"N": str(int(time.time()) + 20 * 86400)},
        }}})
        if len(batch) == 25:
            bench.ddb.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        bench.ddb.batch_write_item(RequestItems={table: batch})


def fleet_figures(bench: Bench, ended: int) -> dict:
    """`list` (its first and tenth page of 50) and the digest with 1,000
    running jobs and `ended` jobs that ended ten days ago: time, DynamoDB
    requests, read units (from the item sizes: the work index's entries, 0.5
    a job read whole without history, the index of ends' entries read) and
    the process's peak RSS."""
    table, _ = bench.seed(1000)
    seed_ended(bench, table, ended)
    proc, api = bench.start_function(table, 32, {"DIGEST_SETTLE_SECONDS": "0"})
    listing_units = min(bench.list_work(table)[1] for _ in range(2))
    out = {"ended": ended}
    token = None
    for page in range(1, 11):
        bench.admin("DELETE", "/_stats", base=bench.moto)
        answer, secs = api.invoke({"list": {"limit": 50, **({"next": token} if token else {})}})
        token = answer.get("next")
        if page in (1, 10):
            shown = len(answer["jobs"])
            out[f"page{page}"] = {"seconds": secs, "jobs": shown, "dynamodb": bench.table_calls().get("dynamodb", {}),
                                  "read_units": listing_units + 0.5 * shown}
    bench.admin("DELETE", "/_stats", base=bench.moto)
    answer, secs = api.invoke({"digest": {}})
    assert answer["published"] is True, answer
    ddb = bench.table_calls().get("dynamodb", {})
    # The work listing, the jobs shown (0.5 each), the index of ends' one
    # query over the window (nothing ended in it: its minimum, 0.5), and one
    # unit a consistent GetItem of the monitor's own items (digest, health,
    # the days' set-aside notes).
    out["digest"] = {"seconds": secs, "dynamodb": ddb,
                     "read_units": listing_units + 0.5 * min(50, answer["running"]) + 0.5 + ddb.get("GetItem", 0),
                     "ended": answer["ended"]}
    out["rss"] = peak_rss_mb(proc.pid)
    proc.terminate()
    proc.wait()
    return out


def print_fleet(fleet: list[dict]) -> None:
    print("  list and the digest: 1,000 running jobs, and ended jobs kept from ten days ago:")
    for f in fleet:
        for what in ("page1", "page10", "digest"):
            r = f[what]
            ddb = ", ".join(f"{k} {v}" for k, v in sorted(r["dynamodb"].items()))
            print(f"    {f['ended']:>6} ended: {what:<7} {r['seconds']:.3f} s, about {r['read_units']:.1f} read units; "
                  f"DynamoDB: {ddb}")
        print(f"    {f['ended']:>6} ended: peak RSS {f['rss']:.1f} MiB")


def time_to_know(bench: Bench, latency_ms: int, runs: int = 5) -> dict:
    """With 1,000 unchanged jobs tracked: one job fails in the fake Bedrock;
    the seconds until its notification is on the subscriber's queue, (a) when
    Bedrock's event reaches the function at once, (b) when the event is lost
    and the next poll finds the failure (its own share: the schedule's wait
    comes on top)."""
    table, _ = bench.seed(1000)
    bench.admin("PUT", "/_admin/latency", {"ms": latency_ms})
    proc, api = bench.start_function(table, 32)
    bench.purge()
    event_s, poll_s = [], []
    try:
        for i in range(runs):
            job = f"{i:012d}"
            arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{job}"
            start = time.perf_counter()
            bench.admin("POST", f"/_admin/jobs/{job}/status", {"status": "Failed", "message": "bench"})
            api.send({"version": "0", "id": str(uuid.uuid4()), "detail-type": "Batch Inference Job State Change",
                      "source": "aws.bedrock", "account": "123456789012", "time": "Wed Aug 28 22:58:30 UTC 2024",
                      "region": REGION, "resources": [arn],
                      "detail": {"batchJobArn": arn, "status": "Failed", "batchJobName": f"bench-{i}"}})
            event_s.append(time.perf_counter() - start + bench.wait_message())
            api.results.get(timeout=60)
        for i in range(runs, 2 * runs):
            job = f"{i:012d}"
            start = time.perf_counter()
            bench.admin("POST", f"/_admin/jobs/{job}/status", {"status": "Failed", "message": "bench"})
            api.send({"poll": {}})
            poll_s.append(time.perf_counter() - start + bench.wait_message())
            api.results.get(timeout=600)
    finally:
        proc.terminate()
        proc.wait()
    return {"event": event_s, "poll": poll_s}


def calls(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"


def measure_polls(bench: Bench, latency: int) -> tuple[list, list, dict]:
    """Cold starts, the polls of 100, 1,000 and 10,000 unchanged jobs, and
    1,000 read one by one."""
    log("cold start: process start to the first poll answered (empty table), 7 runs")
    table, _ = bench.seed(0)
    colds = []
    for _ in range(7):
        start = time.perf_counter()
        proc, api = bench.start_function(table)
        api.invoke({"poll": {}})
        colds.append((time.perf_counter() - start) * 1000)
        proc.terminate()
        proc.wait()
    results = []
    for n in (100, 1000, 10_000):
        log(f"{n} active unchanged jobs; Bedrock latency {latency} ms; 32 in flight; default settings")
        results.append(poll_figures(bench, n, latency, runs=3 if n < 10_000 else 2))
    log("1,000 jobs read one by one (BULK_READ_MIN=off, ceiling 1000 requests/s), for comparison")
    gets = poll_figures(bench, 1000, latency, {"BULK_READ_MIN": "off", "BEDROCK_MAX_RPS": "1000"}, runs=2)
    return colds, results, gets


def print_polls(bench: Bench, colds: list, results: list, gets: dict, latency: int) -> None:
    print(f"  cold start to first poll answered:  median {statistics.median(colds):.1f} ms, "
          f"min {min(colds):.1f} ms over {len(colds)} runs   (target < 50 ms)")
    print(f"  polls of N active unchanged jobs, table on {bench.table_kind}, Bedrock at {latency} ms, 32 in flight, "
          "BEDROCK_MAX_RPS 20, BULK_READ_MIN 2:")
    for r in results:
        list_pages = r["bedrock"].get("ListModelInvocationJobs", 0)
        floor = r["listing"] + list_pages * latency / 1000
        print(f"    N={r['n']:>6}: poll best {r['best']:.3f} s (runs {', '.join(f'{t:.3f}' for t in r['times'])}); "
              f"floor {floor:.3f} s = table listing {r['listing']:.3f} s ({r['pages']} pages) + "
              f"{list_pages} Bedrock list page(s) x {latency} ms; ratio {r['best'] / floor:.2f}x")
        print(f"             CPU {', '.join(f'{c * 1000:.1f}' for c in r['cpu'])} ms a poll (every thread's); "
              f"peak RSS {r['rss']:.1f} MiB")
        print(f"             Bedrock: {calls(r['bedrock'])}; DynamoDB: {calls(r['dynamodb'])} "
              f"(answers: {calls(r['dynamodb_bytes'])} bytes); SNS: {calls(r['sns']) if r['sns'] else 'none'}")
        print(f"             DynamoDB read units for the work listing (from the item sizes): {r['units']:.1f}")
        if "whole_listing" in r:
            print(f"             the same items projected whole (ProjectionType ALL): listing {r['whole_listing']:.3f} s, "
                  f"{r['whole_units']:.1f} read units, {r['whole_pages']} pages")
    print(f"  N=  1000 read one by one (bulk off, ceiling 1000/s): poll best {gets['best']:.3f} s; "
          f"Bedrock: {calls(gets['bedrock'])}")


def poll_record(r: dict) -> dict:
    """One poll's figures as docs/bench-figures.json keeps them."""
    return {"n": r["n"], "seconds": r["best"], "cpu_seconds": min(r["cpu"]),
            "bedrock_requests": sum(r["bedrock"].values()), "bedrock_by_kind": r["bedrock"],
            "dynamodb_by_kind": r["dynamodb"], "dynamodb_answer_bytes": sum(r["dynamodb_bytes"].values()),
            "read_units": r["units"] + r["get_units"], "write_units": r["write_units"],
            "sns_publishes": r["sns"].get("Publish", 0), "log_bytes": r["log_bytes"], "log_lines": r["log_lines"]}


def x86_binary() -> str:
    """BENCH_BINARY, or the x86_64 release binary built now."""
    if os.environ.get("BENCH_BINARY"):
        return os.environ["BENCH_BINARY"]
    subprocess.run([str(VENV_BIN / "cargo-lambda"), "lambda", "build", "--release", "--locked", "--x86-64",
                    "--bin", "bedrock-batch-monitor"], cwd=ROOT, check=True)
    return str(LAMBDA_DIR / "bootstrap")


def quota_figures(bench: Bench, latency_ms: int, n: int = 100) -> dict:
    """What knowing the batch quota costs a poll (src/monitor/quota.rs): n
    unchanged running jobs and one job waiting an hour, in one region. The
    poll that reads the quotas (the limits and the count), then the same
    process again (warm: nothing to read), then a fresh process (cold: the
    quota item from the table). Requests by operation and the time each poll
    took; `added_ms` is the first poll's time less the warm one's."""
    table, _ = bench.seed(n)
    bench.admin("PUT", "/_admin/latency", {"ms": latency_ms})
    waited = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 3600))
    job = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{'q' * 12}"
    bench.admin("POST", "/_admin/jobs", {"jobName": "bench-waiting", "id": "q" * 12, "status": "Scheduled",
                                        "submitTime": waited})
    proc, api = bench.start_function(table, 32)
    tracked, _ = api.invoke({"track": [job]})
    assert tracked["tracked"], tracked
    runs = []
    for label in ("reads", "warm"):
        before = bench.bedrock_calls()
        bench.admin("DELETE", "/_stats", base=bench.moto)
        summary, secs = api.invoke({"poll": {}})
        assert summary.get("quotas", {}).get("unknown") == 0, summary
        runs.append({"label": label, "seconds": secs, "bedrock": delta(bench.bedrock_calls(), before),
                     "dynamodb": bench.table_calls().get("dynamodb", {})})
    proc.terminate()
    proc.wait()
    proc, api = bench.start_function(table, 32)
    before = bench.bedrock_calls()
    bench.admin("DELETE", "/_stats", base=bench.moto)
    summary, secs = api.invoke({"poll": {}})
    runs.append({"label": "cold", "seconds": secs, "bedrock": delta(bench.bedrock_calls(), before),
                 "dynamodb": bench.table_calls().get("dynamodb", {})})
    proc.terminate()
    proc.wait()
    reads, warm, cold = runs
    quota_ops = ("ListServiceQuotas", "ListFoundationModels")
    extra = {k: v for k, v in reads["bedrock"].items() if k in quota_ops}
    # The count's listings: the first poll's listings less the warm one's.
    listings = reads["bedrock"].get("ListModelInvocationJobs", 0) - warm["bedrock"].get("ListModelInvocationJobs", 0)
    if listings:
        extra["ListModelInvocationJobs"] = listings
    return {"n": n, "runs": runs, "requests": sum(extra.values()), "by_operation": calls(extra),
            "added_ms": (reads["seconds"] - warm["seconds"]) * 1000,
            "next_requests": sum(v for k, v in cold["bedrock"].items() if k in quota_ops)
            + cold["bedrock"].get("ListModelInvocationJobs", 0) - warm["bedrock"].get("ListModelInvocationJobs", 0)}


def print_quota(q: dict) -> None:
    print(f"  the batch quota beside a waiting job ({q['n']} running jobs and 1 waiting, one region):")
    for r in q["runs"]:
        print(f"    {r['label']:>5} poll: {r['seconds']:.3f} s; Bedrock and Service Quotas: {calls(r['bedrock'])}; "
              f"DynamoDB: {calls(r['dynamodb'])}")
    print(f"    reading the quotas: {q['requests']} request(s) ({q['by_operation']}), {q['added_ms']:.0f} ms added; "
          f"the next poll, cold: {q['next_requests']} more")


def record_errors_figures(bench: Bench, files: int = 3, file_mib: int = 6) -> dict:
    """What reading the records' own errors costs a poll (src/adapters/bedrock.rs
    read_record_errors): a job ends PartiallyCompleted with `files` output files
    of `file_mib` MiB in moto's S3, failures mixed in; the poll that records its
    end, at the default RECORD_ERRORS_MAX_BYTES (8 MiB), against the same job
    shape polled with the setting 0. S3 requests (from moto's /_s3_reads: the
    LIST and the ranged GETs), bytes asked for, and the time added."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=bench.moto, region_name=REGION, aws_access_key_id="test",
                      aws_secret_access_key="test")
    bucket = f"bench-out-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=bucket)
    line_ok = json.dumps({"recordId": "R", "modelInput": {"p": "x" * 200}, "modelOutput": {"t": "y" * 400}})
    runs = {}
    for label, max_bytes in (("off", "0"), ("on", str(8 * 1024 * 1024))):
        table, _ = bench.seed(0)
        ident = (label * 12)[:12]
        arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{ident}"
        bench.admin("POST", "/_admin/jobs", {"jobName": f"bench-{label}", "id": ident, "status": "InProgress",
                                            "outputS3Uri": f"s3://{bucket}/runs/"})
        lines, failed = [], 0
        while sum(len(x) + 1 for x in lines) < file_mib * 1024 * 1024:
            if len(lines) % 10 == 0:
                failed += 1
                lines.append(json.dumps({"recordId": f"R{len(lines)}", "modelInput": {"p": "x" * 200},
                                         "error": {"errorCode": 400, "errorMessage": f"bad record {len(lines)}"}}))
            else:
                lines.append(line_ok)
        body = ("\n".join(lines) + "\n").encode()
        for i in range(files):
            s3.put_object(Bucket=bucket, Key=f"runs/{ident}/input-{i}.jsonl.out", Body=body)
        proc, api = bench.start_function(table, 32, extra={"OUTPUT_BUCKETS": bucket, "AWS_ENDPOINT_URL_S3": bench.moto,
                                                          "RECORD_ERRORS_MAX_BYTES": max_bytes})
        tracked, _ = api.invoke({"track": [arn]})
        assert tracked["tracked"], tracked
        total = len(lines) * files
        bench.admin("POST", f"/_admin/jobs/{ident}/status", {
            "status": "PartiallyCompleted",
            "records": {"total": total, "processed": total, "success": total - failed * files,
                        "error": failed * files}})
        before = len(bench.admin("GET", "/_s3_reads", base=bench.moto))
        summary, secs = api.invoke({"poll": {}})
        assert summary.get("transitions") == 1, summary
        reads = [r for r in bench.admin("GET", "/_s3_reads", base=bench.moto)[before:] if ident in
                 (r["path"] + (r.get("query") or ""))]
        proc.terminate()
        proc.wait()
        lists = [r for r in reads if "list-type" in (r.get("query") or "")]
        gets = [r for r in reads if r["path"].endswith(".jsonl.out")]
        asked = sum(int(r["range"].split("-")[1]) + 1 for r in gets if r.get("range"))
        runs[label] = {"seconds": secs, "LIST": len(lists), "GET": len(gets), "bytes": asked}
    on, off = runs["on"], runs["off"]
    return {"files": files, "file_mib": file_mib, "runs": runs, "requests": on["LIST"] + on["GET"],
            "by_operation": f"{on['LIST']} LIST, {on['GET']} GET", "bytes": on["bytes"],
            "added_ms": (on["seconds"] - off["seconds"]) * 1000}


def print_record_errors(r: dict) -> None:
    print(f"  the records' own errors of an ended job ({r['files']} output files of {r['file_mib']} MiB):")
    for label, run in r["runs"].items():
        print(f"    RECORD_ERRORS_MAX_BYTES {'8 MiB' if label == 'on' else '0'}: poll {run['seconds']:.3f} s; "
              f"S3: {run['LIST']} LIST, {run['GET']} GET, {run['bytes']:,} bytes")
    print(f"    added per ended job: {r['requests']} requests ({r['by_operation']}), {r['bytes']:,} bytes, "
          f"{r['added_ms']:.0f} ms")


def main() -> int:
    table = os.environ.get("BENCH_TABLE", "moto")
    if table not in ("moto", "dynalite"):
        sys.exit(f"BENCH_TABLE is moto (the default) or dynalite, not {table!r}")
    only = os.environ.get("BENCH_ONLY")
    latency = 100
    if only == "org":
        # One hub over member accounts and regions (scripts/bench_org.py).
        from bench_org import org_figures, print_org
        bench = Bench(x86_binary())
        try:
            org = org_figures(bench)
        finally:
            bench.stop()
        print_org(org)
        return 0
    if only == "record-errors":
        # The cost of reading an ended job's records' errors (a few seconds).
        bench = Bench(x86_binary())
        try:
            figures = record_errors_figures(bench)
        finally:
            bench.stop()
        print_record_errors(figures)
        return 0
    if only == "quota":
        # The cost of knowing the batch quota (a few seconds).
        bench = Bench(x86_binary())
        try:
            quota = quota_figures(bench, latency)
        finally:
            bench.stop()
        print_quota(quota)
        return 0
    if only == "fleet":
        # Just the reads of list and the digest (no release builds of the
        # function for arm64): a few minutes.
        bench = Bench(x86_binary())
        try:
            fleet = [fleet_figures(bench, e) for e in (0, 20_000)]
        finally:
            bench.stop()
        print_fleet(fleet)
        return 0
    if table == "dynalite" or only == "polls":
        # The polls alone (no arm64 build, docs/bench-figures.json untouched).
        bench = Bench(x86_binary(), table)
        try:
            colds, results, gets = measure_polls(bench, latency)
        finally:
            bench.stop()
        print()
        print(f"bedrock-batch-monitor polls (this machine: {os.cpu_count()} cores; {bench.binary})")
        print_polls(bench, colds, results, gets, latency)
        out = ROOT / ".demo" / f"bench-{table}.json"
        out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d"), "table": table, "binary": bench.binary,
                                   "cold_start_ms": colds, "polls": [poll_record(r) for r in results],
                                   "one_by_one": poll_record(gets)}, indent=2) + "\n")
        print(f"  saved to {out.relative_to(ROOT)}")
        return 0
    sizes = build_sizes()
    bench = Bench(os.environ.get("BENCH_BINARY") or sizes["x86_64_path"])
    try:
        colds, results, gets = measure_polls(bench, latency)

        log("time to know: a status change to the message in the subscriber's queue, 1,000 jobs tracked")
        know = time_to_know(bench, latency)

        log("list and the digest with 1,000 running jobs, and 0 then 20,000 ended jobs kept")
        fleet = [fleet_figures(bench, e) for e in (0, 20_000)]

        log("one hub: 4 accounts x 2 regions x 250 jobs (scripts/bench_org.py)")
        from bench_org import org_figures, print_org
        org = org_figures(bench)

        log("the batch quota beside a waiting job: the poll that reads it, warm, cold")
        quota = quota_figures(bench, latency)

        log("the bulk-read threshold: 1 to 8 jobs in one region, bulk on and off")
        threshold = []
        for n in (1, 2, 4, 8):
            on = poll_figures(bench, n, latency, {"BULK_READ_MIN": "1"}, runs=3)
            off = poll_figures(bench, n, latency, {"BULK_READ_MIN": "off"}, runs=3)
            threshold.append((n, on, off))
    finally:
        bench.stop()

    print()
    print("bedrock-batch-monitor figures (this machine: %d cores)" % os.cpu_count())
    print(f"  release binary, arm64 (stripped):   {sizes['arm64']:.2f} MiB   (target < 10 MB)")
    print(f"  release binary, x86_64 (stripped):  {sizes['x86_64']:.2f} MiB")
    print_polls(bench, colds, results, gets, latency)
    print("  the bill's inputs per poll (unchanged jobs; log at INFO, JSON, as the template sets):")
    for r in results:
        print(f"    N={r['n']:>6}: {r['best'] * 0.25:.4f} GB-s (256 MB x {r['best']:.3f} s); "
              f"Bedrock {sum(r['bedrock'].values())} request(s) ({calls(r['bedrock'])}); "
              f"DynamoDB {r['units'] + r['get_units']:.1f} read units, {r['write_units']} write unit(s); "
              f"SNS {r['sns'].get('Publish', 0)} publish(es); "
              f"log {r['log_bytes']} bytes: {r['emf_documents']} EMF document(s) and {r['log_lines']} other line(s)")
        for line in r["log_sample"]:
            print(f"             {line[:160]}")
    e, p = know["event"], know["poll"]
    print(f"  time to know, status change to the subscriber's queue, 1,000 jobs tracked, Bedrock at {latency} ms:")
    print(f"    Bedrock's event delivered: median {statistics.median(e):.3f} s, max {max(e):.3f} s over {len(e)} runs"
          " (EventBridge's own delivery comes on top)")
    print(f"    event lost, the next poll: median {statistics.median(p):.3f} s, max {max(p):.3f} s of the poll's own"
          f" over {len(p)} runs, after the wait for the schedule (at most one PollRate)")
    figures = {
        "measured": time.strftime("%Y-%m-%d"),
        "memory_mb": 256,
        "polls": [poll_record(r) for r in results],
        "time_to_know": {"event_median_s": statistics.median(e), "event_max_s": max(e),
                         "poll_median_s": statistics.median(p), "poll_max_s": max(p)},
        "quota": {k: quota[k] for k in ("requests", "by_operation", "added_ms", "next_requests")},
    }
    out = ROOT / "docs" / "bench-figures.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"  saved to {out.relative_to(ROOT)}; the bill: python scripts/cost.py")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "cost.py")], check=True)
    print_fleet(fleet)
    print_org(org)
    print_quota(quota)
    print("  bulk-read threshold (wall time, Bedrock requests), bulk on vs off:")
    for n, on, off in threshold:
        print(f"    {n} job(s): bulk {on['best']:.3f} s, {sum(on['bedrock'].values())} request(s); "
              f"Gets {off['best']:.3f} s, {sum(off['bedrock'].values())} request(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
