"""`bbm`, the command line, run as a process against the function under `cargo
lambda watch` (its Lambda Invoke API), with the e2e run's stand-ins and build:
its output and exit statuses, as a person or a script meets them. Called by
scripts/e2e.py (`make e2e`); docs/cli.md says what each exit status means."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from local import FUNCTION, MEMBERS, REGION, ROOT, Stack, free_port

BBM = ROOT / "target" / "debug" / "bbm"
ACCOUNT = "123456789012"
# Every job of these checks carries this label, and every listing filters on
# it: the rest of the e2e run's jobs are in the same table.
SUITE = "suite=bbm"


def arn(job_id: str) -> str:
    return f"arn:aws:bedrock:{REGION}:{ACCOUNT}:model-invocation-job/{job_id}"


class LambdaShape:
    """A proxy in front of `cargo lambda watch` that answers a function error
    the way Lambda does (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):
    status 200, the header X-Amz-Function-Error, the function's error document
    as the payload. cargo lambda watch answers it with status 500 instead; bbm
    must read both."""

    def __init__(self, target_port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                req = urllib.request.Request(f"http://127.0.0.1:{target_port}{self.path}", data=body, method="POST",
                                             headers={"content-type": "application/json"})
                function_error = None
                try:
                    with urllib.request.urlopen(req, timeout=120) as resp:
                        payload = resp.read()
                except urllib.error.HTTPError as e:
                    payload = e.read()
                    function_error = "Unhandled" if e.code == 500 else None
                    if function_error is None:
                        self.send_response(e.code)
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                self.send_response(200)
                if function_error:
                    self.send_header("X-Amz-Function-Error", function_error)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def run(stack: Stack, check: Callable[[str, bool, object], None]) -> None:
    home = Path(tempfile.mkdtemp(prefix="bbm-home-"))
    lambda_url = f"http://127.0.0.1:{stack.lambda_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BBM_"))}
    env.update({
        # No config file of the machine's user, no profile of theirs.
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
        "AWS_CONFIG_FILE": str(home / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
        "AWS_ENDPOINT_URL_CLOUDFORMATION": stack.moto,
        # One attempt: cargo lambda watch answers a function error with a 500,
        # which the SDK would otherwise send again.
        "AWS_MAX_ATTEMPTS": "1",
        "NO_COLOR": "1",
    })

    def bbm(*args: str, stdin: str | None = None, extra: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        e = dict(env, **(extra or {}))
        return subprocess.run([str(BBM), *args], env=e, input=stdin, capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def spawn(*args: str) -> tuple[subprocess.Popen, list[str], threading.Thread]:
        """A running bbm, the lines of its stdout so far (read as they come), and their reader."""
        p = subprocess.Popen([str(BBM), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=ROOT)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
        reader.start()
        return p, lines, reader

    def until(what: Callable[[], bool], timeout: float = 30) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if what():
                return True
            time.sleep(0.1)
        return False

    def seed(job_id: str, name: str) -> None:
        stack.admin("POST", "/_admin/jobs", {"jobName": name, "id": job_id})

    def set_status(job_id: str, status: str, message: str | None = None, records: dict | None = None) -> None:
        body: dict = {"status": status, "message": message}
        if records:
            body["records"] = records
        stack.admin("POST", f"/_admin/jobs/{job_id}/status", body)

    def poll() -> dict:
        return stack.invoke_event("bbm-poll.json", {"poll": {}})

    fn = ["--function", FUNCTION]
    jobs = {"bbmokjob0001": "bbm-ok", "bbmbadjob001": "bbm-bad", "bbmslowjob01": "bbm-slow",
            "bbmtwinjob01": "bbm-twin", "bbmtwinjob02": "bbm-twin"}
    for job_id, name in jobs.items():
        seed(job_id, name)

    # track: ARNs on stdin, any number, with a label.
    r = bbm(*fn, "track", "-", "--label", SUITE, stdin="\n".join(arn(j) for j in jobs) + "\n")
    check("bbm track - tracks the ARNs read from stdin",
          r.returncode == 0 and all(f"tracked         {arn(j)}" in r.stdout for j in jobs), (r.returncode, r.stdout, r.stderr))
    stack.drain()

    # list: a table for people, the function's JSON for scripts.
    set_status("bbmslowjob01", "InProgress", records={"total": 1000, "processed": 250, "success": 250, "error": 0})
    poll()
    r = bbm(*fn, "list", "--label", SUITE)
    lines = r.stdout.splitlines()
    header = lines[0].split() if lines else []
    slow = next((line for line in lines if "bbm-slow" in line), "")
    check("bbm list prints a table of the watched jobs: name, status, records as a bar, ETA, age, labels",
          r.returncode == 0 and header == ["NAME", "STATUS", "RECORDS", "ETA", "AGE", "LABELS"]
          and len(lines) == 1 + len(jobs) and "InProgress" in slow and "[##........] 250/1000" in slow
          and SUITE in slow and "ago" in slow, (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "list", "--label", SUITE, "--status", "InProgress", "--output", "json")
    try:
        answer = json.loads(r.stdout)
    except json.JSONDecodeError:
        answer = {}
    check("bbm list --output json prints the function's answer, filtered by status",
          r.returncode == 0 and [j.get("jobArn") for j in answer.get("jobs", [])] == [arn("bbmslowjob01")]
          and answer["jobs"][0].get("records", {}).get("processed") == 250 and answer.get("next") is None,
          (r.returncode, r.stdout, r.stderr))

    # --account: sent only when given, and the function filters on it (a
    # member account's job, labelled like the suite's, is left out, and is
    # all that --account with its account lists).
    member = stack.admin("POST", "/_admin/jobs", {"jobName": "bbm-member", "account": MEMBERS[0],
                                                  "status": "InProgress"})["jobArn"]
    bbm(*fn, "track", member, "--label", SUITE)
    stack.drain()
    r = bbm(*fn, "list", "--label", SUITE, "--account", ACCOUNT, "--output", "json")
    got = [j["jobArn"] for j in json.loads(r.stdout)["jobs"]] if r.returncode == 0 else r.stderr
    check("bbm list --account lists that account's jobs and no other's",
          isinstance(got, list) and sorted(got) == sorted(arn(j) for j in jobs),
          (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "list", "--label", SUITE, "--account", MEMBERS[0], "--output", "json")
    got = [j["jobArn"] for j in json.loads(r.stdout)["jobs"]] if r.returncode == 0 else r.stderr
    check("bbm list --account with a member's account lists its job alone", got == [member], (r.returncode, r.stdout, r.stderr))
    bbm(*fn, "untrack", member)
    stack.drain()

    # A failing invocation: the table denied. Non-zero, with the function's message,
    # whether the error comes as cargo lambda's 500 or as Lambda's FunctionError.
    rule = stack.fault({"service": "dynamodb", "action": "Query", "status": 400, "code": "AccessDeniedException",
                        "message": "not authorized to perform dynamodb:Query"})
    shape = LambdaShape(stack.lambda_port)
    try:
        r = bbm(*fn, "list")
        check("bbm list exits 1 with the function's error when the invocation failed (cargo lambda's 500)",
              r.returncode == 1 and "TableUnavailable" in r.stderr and "not authorized to perform dynamodb:Query" in r.stderr
              and not r.stdout, (r.returncode, r.stdout, r.stderr))
        r = bbm(*fn, "list", "--output", "json", extra={"AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{shape.port}"})
        check("... and when Lambda reports it as FunctionError (status 200), --output json too",
              r.returncode == 1 and "TableUnavailable" in r.stderr and "not authorized to perform dynamodb:Query" in r.stderr
              and not r.stdout, (r.returncode, r.stdout, r.stderr))
        r = bbm(*fn, "list", extra={"AWS_ENDPOINT_URL_LAMBDA": f"http://127.0.0.1:{shape.port}"})
        check("... (table form)", r.returncode == 1 and "TableUnavailable" in r.stderr, (r.returncode, r.stderr))
    finally:
        stack.clear_fault(rule)
        shape.close()
    r = bbm("--function", "no-such-function", "list")
    check("a function that does not exist: exit 1, saying so", r.returncode == 1 and "no-such-function" in r.stderr,
          (r.returncode, r.stderr))

    # Names: unique ones are enough, a shared one lists its matches.
    r = bbm(*fn, "describe", "bbm-twin")
    check("bbm describe of a name two jobs share exits 2 listing both",
          r.returncode == 2 and arn("bbmtwinjob01") in r.stderr and arn("bbmtwinjob02") in r.stderr
          and "name one by its ARN" in r.stderr, (r.returncode, r.stderr))
    r = bbm(*fn, "describe", "bbm-slow")
    check("bbm describe NAME tells the job's story: a timeline of its phases with durations, its records",
          r.returncode == 0 and arn("bbmslowjob01") in r.stdout and "timeline" in r.stdout
          and "Submitted" in r.stdout and "InProgress" in r.stdout and "so far" in r.stdout
          and "250/1000" in r.stdout, (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "describe", "bbm-nobody")
    check("bbm describe of a name no job has exits 1", r.returncode == 1 and "bbm-nobody" in r.stderr,
          (r.returncode, r.stderr))

    # wait: 0 for Completed, 3 for Failed (with Bedrock's message), 4 on timeout.
    ok, ok_lines, ok_reader = spawn(*fn, "wait", "bbm-ok", "--interval", "200ms", "--timeout", "2m")
    bad, bad_lines, bad_reader = spawn(*fn, "wait", arn("bbmbadjob001"), "--interval", "200ms", "--timeout", "2m")
    until(lambda: ok_lines and bad_lines)
    set_status("bbmokjob0001", "InProgress", records={"total": 10, "processed": 4, "success": 4, "error": 0})
    set_status("bbmbadjob001", "InProgress")
    poll()
    # The change seen before the next one is made, so that its line is there.
    saw = until(lambda: any("bbm-ok InProgress" in line for line in ok_lines))
    set_status("bbmokjob0001", "Completed", records={"total": 10, "processed": 10, "success": 10, "error": 0})
    set_status("bbmbadjob001", "Failed", "Input file is not valid JSONL at line 3")
    poll()
    try:
        ok.wait(timeout=60)
        bad.wait(timeout=60)
        ok_reader.join(10)
        bad_reader.join(10)
        out = "".join(ok_lines)
        check("bbm wait exits 0 when the job Completed, a line per change on the way",
              saw and ok.returncode == 0 and "bbm-ok InProgress, records [####......] 4/10" in out
              and out.rstrip().splitlines()[-1].startswith("bbm-ok Completed"), (ok.returncode, out, ok.stderr.read()))
        out = "".join(bad_lines)
        check("bbm wait exits 3 when the job Failed, with Bedrock's message",
              bad.returncode == 3 and "bbm-bad Failed" in out and "Input file is not valid JSONL at line 3" in out,
              (bad.returncode, out, bad.stderr.read()))
    except subprocess.TimeoutExpired:
        ok.kill()
        bad.kill()
        check("bbm wait ended when the jobs did", False, "still waiting after 60 s")
    started = time.monotonic()
    r = bbm(*fn, "wait", "bbm-slow", "--interval", "200ms", "--timeout", "1s")
    check("bbm wait --timeout exits 4 when the job is still running",
          r.returncode == 4 and "timed out" in r.stderr and "InProgress" in r.stderr and time.monotonic() - started < 30,
          (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "wait", "bbm-ok", "--output", "json")
    check("bbm wait --output json of an ended job prints describe's answer",
          r.returncode == 0 and json.loads(r.stdout or "{}").get("status") == "Completed", (r.returncode, r.stdout))
    stack.drain()

    # The monitor by its stack's FunctionName output, and several monitors from a config file.
    cfn = stack.client("cloudformation")
    cfn.create_stack(StackName="bbm-e2e", TemplateBody=json.dumps({
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "bbm-e2e-placeholder"}}},
        "Outputs": {"FunctionName": {"Value": FUNCTION}}}))
    r = bbm("--stack", "bbm-e2e", "list", "--label", SUITE, "--status", "InProgress")
    check("bbm --stack finds the function by the stack's FunctionName output",
          r.returncode == 0 and "bbm-slow" in r.stdout, (r.returncode, r.stdout, r.stderr))
    r = bbm("--stack", "no-such-stack", "list")
    check("bbm --stack of a stack that does not exist exits 1 with CloudFormation's words",
          r.returncode == 1 and "no-such-stack" in r.stderr and "does not exist" in r.stderr, (r.returncode, r.stderr))
    config = home / ".config" / "bbm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[monitors.here]\nfunction = "{FUNCTION}"\n\n[monitors.stacked]\nstack = "bbm-e2e"\nregion = "{REGION}"\n')
    r = bbm("list", "--label", SUITE, "--status", "InProgress")
    rows = [line.split() for line in r.stdout.splitlines()]
    check("with no --function, every monitor of the config file is listed, each row saying which",
          r.returncode == 0 and rows[:1] == [["MONITOR", "NAME", "STATUS", "RECORDS", "ETA", "AGE", "LABELS"]]
          and sorted(row[0] for row in rows[1:]) == ["here", "stacked"], (r.returncode, r.stdout, r.stderr))
    r = bbm("--monitor", "here", "list", "--label", SUITE, "--status", "InProgress")
    check("--monitor picks one of them", r.returncode == 0 and "MONITOR" not in r.stdout and "bbm-slow" in r.stdout,
          (r.returncode, r.stdout, r.stderr))
    r = bbm("--monitor", "there", "list")
    check("--monitor of a name the file lacks is a usage error (2) naming the ones it has",
          r.returncode == 2 and "here, stacked" in r.stderr, (r.returncode, r.stderr))
    config.unlink()

    # watch: the table again and again (a time line each refresh), until stopped.
    w, w_lines, w_reader = spawn(*fn, "watch", "--label", SUITE, "--status", "InProgress", "--interval", "200ms")
    refreshed = until(lambda: sum("job(s) at" in line for line in w_lines) >= 2)
    w.terminate()
    w.wait(timeout=10)
    w_reader.join(10)
    text = "".join(w_lines)
    check("bbm watch redraws the running jobs at each refresh",
          refreshed and text.count("1 job(s) at") >= 2 and text.count("bbm-slow") >= 2, text[-2000:])

    # digest, and untrack by name and by ARN.
    r = bbm(*fn, "digest")
    got = stack.drain()
    check("bbm digest sends the digest now", r.returncode == 0 and "published" in r.stdout
          and any(m["attributes"].get("event") == "digest" for m in got), (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "routes")
    check("bbm routes says there are none on a stack without Slack or teams' routes",
          r.returncode == 0 and r.stdout.startswith("no routes"), (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "untrack", "bbm-slow", arn("bbmtwinjob01"), arn("bbmtwinjob02"))
    check("bbm untrack takes names of watched jobs and ARNs",
          r.returncode == 0 and all(f"untracked       {arn(j)}" in r.stdout
                                    for j in ("bbmslowjob01", "bbmtwinjob01", "bbmtwinjob02")),
          (r.returncode, r.stdout, r.stderr))
    r = bbm(*fn, "untrack", "not-an-arn-or-name")
    check("bbm untrack of a name no job has exits 1", r.returncode == 1, (r.returncode, r.stderr))
    r = bbm(*fn, "track", arn("nosuchjob001"))
    check("bbm track of a job Bedrock does not know exits 1 with the function's reason",
          r.returncode == 1 and "BedrockNotFound" in r.stderr, (r.returncode, r.stderr))
    r = bbm("list")
    check("with no monitor named anywhere: usage error (2) saying how to name one",
          r.returncode == 2 and "--function" in r.stderr and "BBM_FUNCTION" in r.stderr, (r.returncode, r.stderr))
