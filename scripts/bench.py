"""`make bench`: the figures of DESIGN.md section 6, measured on this machine.

- release binary sizes, arm64 and x86_64 (cargo lambda build, stripped);
- cold start: process start to the first poll answered (release x86_64 binary,
  local stand-ins, a minimal Lambda Runtime API served here);
- one poll cycle over 1,000 active unchanged jobs, Bedrock answering in 25 ms,
  32 calls in flight, listing included, against the I/O floor 1000 x 25 / 32 ms;
- peak RSS (VmHWM) of the function polling 10,000 active jobs in one invocation.

The function runs as a real process speaking the Lambda Runtime API; the table
lives in moto, the jobs in the fake Bedrock. Figures are printed, not asserted."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from local import REGION, ROOT, VENV_BIN, RuntimeApi, free_port, function_env, log, moto_command, wait_port

LAMBDA_DIR = ROOT / "target" / "lambda" / "bedrock-batch-monitor"


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
    def __init__(self, binary: str) -> None:
        import boto3
        from local import Stack  # noqa: F401  (same venv)

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
        self.procs.append(subprocess.Popen([str(ROOT / "target/release/fake-bedrock"), "--port", str(self.bedrock_port)],
                                           stdout=open(logdir / "bench-fake-bedrock.log", "w"), stderr=subprocess.STDOUT))
        wait_port(self.moto_port, "moto_server", self.procs[0], 60)
        wait_port(self.bedrock_port, "fake-bedrock", self.procs[1], 60)
        kw = dict(endpoint_url=self.moto, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test")
        self.ddb = boto3.client("dynamodb", **kw)
        self.topic = boto3.client("sns", **kw).create_topic(Name="bench")["TopicArn"]
        from local import table_definition
        self.definition = table_definition()

    def admin(self, method: str, path: str, body: dict | None = None) -> None:
        import urllib.request
        req = urllib.request.Request(self.bedrock + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req).read()

    def seed(self, n: int) -> str:
        """n jobs InProgress in Bedrock, and the same n already tracked in a fresh table."""
        table = f"bench-{n}-{uuid.uuid4().hex[:6]}"
        self.ddb.create_table(TableName=table, **self.definition)
        self.admin("POST", "/_admin/reset")
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        batch = []
        for i in range(n):
            job_id = f"{i:012d}"
            arn = f"arn:aws:bedrock:{REGION}:123456789012:model-invocation-job/{job_id}"
            self.admin("POST", "/_admin/jobs", {"jobName": f"bench-{i}", "id": job_id, "status": "InProgress"})
            batch.append({"PutRequest": {"Item": {
                "jobArn": {"S": arn}, "status": {"S": "InProgress"}, "version": {"N": "2"},
                "jobName": {"S": f"bench-{i}"}, "modelId": {"S": "anthropic.claude-3-haiku-20240307-v1:0"},
                "history": {"L": [{"M": {"from": {"NULL": True}, "to": {"S": "InProgress"}, "at": {"S": now},
                                         "message": {"NULL": True}}}]},
                "outbox": {"M": {}}, "pollShard": {"N": str(i % 4)}, "notFoundCount": {"N": "0"},
                "gone": {"BOOL": False}, "labels": {"M": {}}, "trackedAt": {"S": now},
            }}})
            if len(batch) == 25:
                self.ddb.batch_write_item(RequestItems={table: batch})
                batch = []
        if batch:
            self.ddb.batch_write_item(RequestItems={table: batch})
        return table

    def start_function(self, table: str, concurrency: int = 32) -> tuple[subprocess.Popen, RuntimeApi]:
        api = RuntimeApi()
        env = function_env(api.port, self.moto, self.bedrock, table, self.topic, concurrency)
        proc = subprocess.Popen([self.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(proc)
        return proc, api

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> int:
    sizes = build_sizes()
    bench = Bench(sizes["x86_64_path"])
    try:
        log("cold start: process start to the first poll answered (empty table), 7 runs")
        table = bench.seed(0)
        colds = []
        for _ in range(7):
            start = time.perf_counter()
            proc, api = bench.start_function(table)
            api.invoke({"poll": {}})
            colds.append((time.perf_counter() - start) * 1000)
            proc.terminate()
            proc.wait()

        log("seeding 1,000 active unchanged jobs; Bedrock latency 25 ms; 32 calls in flight")
        table = bench.seed(1000)
        bench.admin("PUT", "/_admin/latency", {"ms": 25})
        proc, api = bench.start_function(table, 32)
        cycles = []
        for _ in range(3):
            summary, secs = api.invoke({"poll": {}})
            assert summary["polled"] == 1000 and summary["transitions"] == 0, summary
            cycles.append(secs)
        # The same cycle with Bedrock answering at once: what listing 1,000 jobs
        # from moto costs by itself (real DynamoDB lists them an order faster).
        bench.admin("PUT", "/_admin/latency", {"ms": 0})
        listing = min(api.invoke({"poll": {}})[1] for _ in range(3))
        bench.admin("PUT", "/_admin/latency", {"ms": 25})
        proc.terminate()
        proc.wait()

        log("seeding 10,000 active jobs for peak memory (25 ms latency, 32 in flight)")
        table = bench.seed(10_000)
        proc, api = bench.start_function(table, 32)
        summary, secs_10k = api.invoke({"poll": {}})
        assert summary["polled"] == 10_000, summary
        rss = peak_rss_mb(proc.pid)
        proc.terminate()
        proc.wait()
    finally:
        bench.stop()

    floor = 1000 * 0.025 / 32
    best = min(cycles)
    print()
    print("bedrock-batch-monitor figures (this machine: %d cores)" % os.cpu_count())
    print(f"  release binary, arm64 (stripped):   {sizes['arm64']:.2f} MiB   (target < 10 MB)")
    print(f"  release binary, x86_64 (stripped):  {sizes['x86_64']:.2f} MiB")
    print(f"  cold start to first poll answered:  median {statistics.median(colds):.1f} ms, "
          f"min {min(colds):.1f} ms over {len(colds)} runs   (target < 50 ms)")
    print(f"  poll cycle, 1,000 unchanged jobs:   best {best:.3f} s, runs {', '.join(f'{c:.3f}' for c in cycles)} s; "
          f"I/O floor {floor:.3f} s; ratio {best / floor:.2f}x   (target <= 1.25x)")
    print(f"    the same cycle, Bedrock answering at once (moto listing bound): {listing:.3f} s; "
          f"floor counting that listing, max(I/O, listing) = {max(floor, listing):.3f} s; "
          f"ratio {best / max(floor, listing):.2f}x")
    print(f"  10,000 active jobs, one invocation: peak RSS {rss:.1f} MiB, cycle {secs_10k:.1f} s   (target < 64 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
