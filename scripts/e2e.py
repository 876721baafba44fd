"""End-to-end test of the built function under `cargo lambda watch`: every file in
events/ is sent with `cargo lambda invoke --data-file` against moto and the fake
Bedrock; each response and the notifications the SQS subscriber receives are
checked. Then the same binary under a Lambda Runtime API that sends a real
deadline (cargo lambda watch sends none): a Bedrock call that hangs must not
keep the answer past it. Then `bbm`, the command line, against the function
under `cargo lambda watch` (scripts/e2e_bbm.py). Run by `make test` (target `e2e`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import e2e_bbm
from local import (ENVIRONMENT, FUNCTION, HOME_ACCOUNT, MEMBER_ROLE, MEMBERS, ROOT, VENV_BIN, RuntimeApi, Stack,
                   function_env)

JOB_ID = "abcdefghwxyz"
ARN = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{JOB_ID}"
TERMINAL = {
    "completed": ("Completed", None, "success"),
    "partially-completed": ("PartiallyCompleted", "Some records failed: see the error records", "warning"),
    "failed": ("Failed", "Input file is not valid JSONL at line 3", "error"),
    "stopped": ("Stopped", None, "warning"),
    "expired": ("Expired", "The job did not finish within its timeout of 24 hours", "error"),
}

passed, failed = 0, 0


def check(name: str, ok: bool, detail: object = "") -> None:
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name}: {detail}")


def main() -> int:
    events = sorted(p.name for p in (ROOT / "events").glob("*.json"))
    sent: set[str] = set()
    with Stack() as stack:
        def invoke(name: str) -> dict:
            sent.add(name)
            return stack.invoke_file(f"events/{name}")

        def set_status(status: str, message: str | None = None) -> None:
            stack.admin("POST", f"/_admin/jobs/{JOB_ID}/status", {"status": status, "message": message})

        stack.admin("POST", "/_admin/jobs", {"jobName": "nightly-embeddings", "id": JOB_ID})

        r = invoke("describe.json")
        check("describe before tracking says not tracked", r.get("tracked") is False, r)

        r = invoke("track.json")
        check("track.json tracks the job", r.get("tracked") == [ARN], r)
        got = stack.drain()
        check("tracking notifies the first observation once",
              len(got) == 1 and got[0]["body"]["status"] == "Submitted" and got[0]["body"]["previousStatus"] is None, got)
        check("the message names its monitor: the subject, the JSON's environment and the attribute",
              len(got) == 1 and got[0]["body"].get("environment") == ENVIRONMENT
              and got[0]["attributes"].get("environment") == ENVIRONMENT
              and f"[{ENVIRONMENT}]" in (got[0]["subject"] or ""), got)

        r = invoke("track.json")
        check("track.json again is idempotent", r.get("alreadyTracked") == [ARN] and not stack.drain(), r)

        for name in ("poll.json", "scheduled-event.json"):
            r = invoke(name)
            check(f"{name} polls the unchanged job without notifying",
                  r.get("polled") == 1 and r.get("transitions") == 0 and not stack.drain(), r)

        # The job's shard, as the function computes it (FNV-1a of the ARN, mod 4).
        h = 0x811C9DC5
        for b in ARN.encode():
            h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
        in_low_shards = h % 4 in (0, 1)
        r = invoke("poll-shards.json")
        check(f"poll-shards.json polls shards 0 and 1 only (the job is in shard {h % 4})",
              r.get("polled") == (1 if in_low_shards else 0) and r.get("transitions") == 0
              and "bedrockCalls" in r and not stack.drain(), r)

        set_status("InProgress")
        r = invoke("state-change-in-progress.json")
        got = stack.drain()
        check("state-change-in-progress.json reconciles the job",
              r.get("transitions") == 1 and len(got) == 1 and got[0]["body"]["status"] == "InProgress"
              and got[0]["attributes"].get("previousStatus") == "Submitted", (r, got))

        r = invoke("describe.json")
        history = [h["to"] for h in r.get("history", [])]
        check("describe.json returns the history", history == ["Submitted", "InProgress"], r)

        r = invoke("list.json")
        jobs = r.get("jobs", [])
        check("list.json lists the running job from the table only",
              [j.get("jobArn") for j in jobs] == [ARN] and jobs[0].get("status") == "InProgress"
              and r.get("next") is None and not any(r.get("bedrockCalls", {}).values()), r)

        r = invoke("digest.json")
        got = stack.drain()
        check("digest.json publishes one digest with the running job",
              r.get("published") is True and len(got) == 1 and got[0]["attributes"].get("event") == "digest"
              and [j["jobName"] for j in got[0]["body"].get("running", [])] == ["nightly-embeddings"]
              and all(k in got[0]["body"] for k in ("running", "ended", "warnings", "health")), (r, got))

        # No team has declared a route in this stack (the route's custom
        # resource is driven with CloudFormation's request in tests/routes.rs):
        # the answer is the empty list, read from the table alone.
        r = invoke("routes.json")
        check("routes.json lists the routes (none declared, no Slack topic) without calling Bedrock",
              r.get("routes") == [] and not any(r.get("bedrockCalls", {}).values()), r)

        r = invoke("stop.json")
        calls = r.get("bedrockCalls", {})
        check("stop.json asks Bedrock to stop the tracked job, once",
              r.get("stopped") is True and calls.get("StopModelInvocationJob") == 1
              and (stack.admin("GET", f"/_admin/jobs/{JOB_ID}/life") or {}).get("life", [])[-1:] == ["Stopping"], r)

        for suffix, (status, message, severity) in TERMINAL.items():
            name = f"state-change-{suffix}.json"
            r = invoke("untrack.json")
            check(f"untrack.json before {name}", r.get("untracked") == [ARN], r)
            set_status(status, message)
            r = invoke(name)
            check(f"{name} for the untracked job is ignored",
                  r.get("ignored") == 1 and r.get("transitions") == 0 and not stack.drain(), r)
            r = invoke("track.json")
            got = stack.drain()
            body = got[0]["body"] if got else {}
            check(f"track.json tracks it again and notifies {status} with Bedrock's message",
                  r.get("tracked") == [ARN] and len(got) == 1 and body.get("status") == status
                  and body.get("previousStatus") is None
                  and body.get("message") == message and got[0]["attributes"].get("severity") == severity, (r, got))
            r = invoke(name)
            check(f"{name} then changes nothing", r.get("transitions") == 0 and not stack.drain(), r)

        bad = subprocess.run(
            [str(VENV_BIN / "cargo-lambda"), "lambda", "invoke", FUNCTION, "--data-ascii", '{"hello": "world"}',
             "--invoke-address", "127.0.0.1", "--invoke-port", str(stack.lambda_port)],
            cwd=ROOT, capture_output=True, text=True,
        )
        out = bad.stdout + bad.stderr
        check("an unrecognized event fails naming what came in",
              bad.returncode != 0 and "InvalidEvent" in out and "hello" in out, out)
        check("refusing it published nothing", not stack.drain())

        member_checks(stack)
        deadline_checks(stack)
        json_log_checks(stack)
        kill_checks(stack)
        e2e_bbm.run(stack, check)

    missing = sorted(set(events) - sent)
    check("every file in events/ was sent", not missing, missing)
    print(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


def member_checks(stack: Stack) -> None:
    """One hub, three accounts (its own and two members), two regions: each
    member's jobs are read with its own role (fake-bedrock refuses any other
    credentials), each notification names its account, and an event from an
    account that is not a member is ignored."""
    accounts, regions = (HOME_ACCOUNT, *MEMBERS), ("us-east-1", "us-west-2")
    jobs = {}
    for account in accounts:
        for region in regions:
            job = stack.admin("POST", "/_admin/jobs", {"jobName": f"org-{account}-{region}", "account": account,
                                                       "region": region, "status": "InProgress"})
            jobs[(account, region)] = job["jobArn"]
    # Two in one member's region: a poll reads those with one list page (BULK_READ_MIN 2).
    job = stack.admin("POST", "/_admin/jobs", {"jobName": "org-bulk", "account": MEMBERS[0],
                                               "region": "us-east-1", "status": "InProgress"})
    jobs[("bulk", "us-east-1")] = job["jobArn"]
    before = stack.admin("GET", "/_admin/calls")["calls"]
    r = stack.invoke_event("track-members.json", {"track": list(jobs.values())})
    check("track of seven jobs in three accounts and two regions tracks them all",
          sorted(r.get("tracked", [])) == sorted(jobs.values()) and r.get("failed") == 0, r)
    got = stack.drain()
    check("each first observation names its account in the attribute and the JSON",
          len(got) == 7 and all(m["attributes"].get("account") == m["body"].get("account")
                                == m["body"]["jobArn"].split(":")[4] for m in got), got)
    r = stack.invoke_event("poll-members.json", {"poll": {}})
    check("a poll reads every account's jobs", r.get("failed") == 0 and r.get("polled", 0) >= 7, r)
    calls = stack.admin("GET", "/_admin/calls")["calls"][len(before):]
    reads = [c for c in calls if c["operation"] in ("GetModelInvocationJob", "ListModelInvocationJobs")]
    wrong = [c for c in reads if c["operation"] == "GetModelInvocationJob"
             and c["target"].split(":")[4] != c["account"]]
    check("every Get went out with credentials of the job's own account", reads and not wrong, wrong or calls)
    listed = {(c["account"], c["region"]) for c in reads if c["operation"] == "ListModelInvocationJobs"}
    check("the member region with two jobs is listed once, with that member's credentials",
          listed == {(MEMBERS[0], "us-east-1")}, listed)
    assumed = [c for c in calls if c["operation"] == "AssumeRole"]
    check("each member's role was assumed once per region, named by the monitor",
          sorted((c["target"], c["region"]) for c in assumed)
          == sorted((f"arn:aws:iam::{a}:role/{MEMBER_ROLE}", g) for a in MEMBERS for g in regions)
          and all(c.get("sessionName") == f"bedrock-batch-monitor-{ENVIRONMENT}" for c in assumed), assumed)

    failing = jobs[(MEMBERS[1], "us-west-2")]
    stack.admin("POST", f"/_admin/jobs/{failing.rsplit('/', 1)[1]}/status",
                {"status": "Failed", "message": "prod input malformed"})
    r = stack.invoke_event("poll-members.json", {"poll": {}})
    got = stack.drain()
    check("a member's failed job is told with its account and Bedrock's message",
          r.get("transitions") == 1 and len(got) == 1 and got[0]["attributes"].get("account") == MEMBERS[1]
          and got[0]["body"].get("message") == "prod input malformed", (r, got))

    stranger = stack.admin("POST", "/_admin/jobs", {"jobName": "not-ours", "account": "777788889999",
                                                   "status": "Failed"})["jobArn"]
    event = json.loads((ROOT / "events" / "state-change-failed.json").read_text())
    event["account"] = event["detail"]["accountId"] = "777788889999"
    event["resources"] = [stranger]
    event["detail"]["batchJobArn"] = stranger
    r = stack.invoke_event("state-change-stranger.json", event)
    check("an event from an account that is not a member is ignored and counted",
          r.get("ignored") == 1 and r.get("tracked") == 0 and not stack.drain(), r)
    r = stack.invoke_event("track-stranger.json", {"track": [stranger]})
    check("a track of its job is refused as AccountNotMember",
          [e.get("kind") for e in r.get("errors", [])] == ["AccountNotMember"], r)

    r = stack.invoke_event("untrack-members.json", {"untrack": list(jobs.values())})
    check("the members' jobs untrack", r.get("failed") == 0, r)
    stack.drain()


def deadline_checks(stack: Stack) -> None:
    """The debug binary, defaults as documented, with an 8 s deadline and one
    job whose Bedrock calls take a minute."""
    ids = ["hangjob00001", "hangjob00002", "hangjob00003"]
    arns = [f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{i}" for i in ids]
    for i in ids:
        stack.admin("POST", "/_admin/jobs", {"jobName": f"deadline-{i}", "id": i})
    api = RuntimeApi()
    env = function_env(api.port, stack.moto, stack.bedrock, stack.table, stack.topic_arn, 32)
    env["LOG_LEVEL"] = "INFO"
    # The hang is in one job's own Bedrock call: read the jobs one by one.
    env["BULK_READ_MIN"] = "off"
    log = open(ROOT / ".demo" / "e2e-runtime-api.log", "w")
    proc = subprocess.Popen([str(ROOT / "target" / "debug" / FUNCTION)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        r, _ = api.invoke({"track": arns}, timeout=60)
        check("under a Runtime API with deadlines, track works", sorted(r.get("tracked", [])) == sorted(arns), r)
        stack.drain()
        for i in ids:
            stack.admin("POST", f"/_admin/jobs/{i}/status", {"status": "InProgress"})
        stack.admin("PUT", f"/_admin/jobs/{ids[1]}/latency", {"ms": 60_000})
        r, secs = api.invoke({"poll": {}}, timeout=60, deadline_s=8)
        check("a poll whose Bedrock call hangs answers before its 8 s deadline, the job deferred",
              secs < 8 and r.get("deferred") == 1 and r.get("polled") == 2 and r.get("transitions") == 2,
              (f"{secs:.1f} s", r))
        stack.admin("PUT", f"/_admin/jobs/{ids[1]}/latency", {"ms": 0})
        r, _ = api.invoke({"poll": {}}, timeout=60)
        got = stack.drain()
        check("the next poll takes the deferred job",
              r.get("transitions") == 1 and len(got) == 3
              and {m["body"]["jobArn"] for m in got} == set(arns), (r, got))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def json_log_checks(stack: Stack) -> None:
    """The debug binary with AWS_LAMBDA_LOG_FORMAT=JSON over a poll in which one
    job's Bedrock calls keep failing: what an operator reads in CloudWatch."""
    ids = ["logsjob00001", "logsjob00002"]
    arns = [f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{i}" for i in ids]
    for i in ids:
        stack.admin("POST", "/_admin/jobs", {"jobName": f"logs-{i}", "id": i})
    api = RuntimeApi()
    env = function_env(api.port, stack.moto, stack.bedrock, stack.table, stack.topic_arn, 32)
    # The fault is on one job's own Bedrock call: read the jobs one by one.
    env.update({"AWS_LAMBDA_LOG_FORMAT": "JSON", "LOG_LEVEL": "INFO", "AWS_MAX_ATTEMPTS": "2",
                "BULK_READ_MIN": "off"})
    path = ROOT / ".demo" / "e2e-json-logs.log"
    proc = subprocess.Popen([str(ROOT / "target" / "debug" / FUNCTION)], env=env,
                            stdout=open(path, "w"), stderr=subprocess.STDOUT)
    try:
        api.invoke({"track": arns}, timeout=60)
        stack.drain()
        stack.admin("POST", "/_admin/faults", {"kind": "Throttling", "jobId": ids[0]})
        summary, _ = api.invoke({"poll": {}}, timeout=60)
        stack.admin("DELETE", "/_admin/faults")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    parsed, not_json = [], []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            not_json.append(line)
    check("with AWS_LAMBDA_LOG_FORMAT=JSON every log line is JSON", lines and not not_json, not_json[:3])
    failing = [p for p in parsed if p.get("level") in ("WARN", "ERROR") and arns[0] in json.dumps(p)]
    check("the failing job's ARN is on a warn/error line, with the error kind",
          any(p.get("fields", {}).get("job_arn") == arns[0]
              and p["fields"].get("error_kind") == "BedrockThrottling" for p in failing), failing)
    emf = [p for p in parsed if "_aws" in p and p.get("Command") == "Poll"]
    check("one EMF document for the poll, its Polled equal to the summary's polled",
          len(emf) == 1 and emf[0].get("Polled") == summary.get("polled") and summary.get("polled", 0) >= 1
          and emf[0].get("BedrockErrorsThrottling") == 1, (summary, emf))


def kill_checks(stack: Stack) -> None:
    """The process killed (SIGKILL) after SNS accepted a publish and before the
    outbox entry was removed: the next process repeats it once, with the same
    transitionId, once the dead one's claim has run out."""
    job = "killjob00001"
    arn = f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{job}"
    stack.admin("POST", "/_admin/jobs", {"jobName": "killed", "id": job})

    def start() -> tuple[subprocess.Popen, RuntimeApi]:
        api = RuntimeApi()
        env = function_env(api.port, stack.moto, stack.bedrock, stack.table, stack.topic_arn, 32)
        proc = subprocess.Popen([str(ROOT / "target" / "debug" / FUNCTION)], env=env,
                                stdout=open(ROOT / ".demo" / "e2e-kill.log", "a"), stderr=subprocess.STDOUT)
        return proc, api

    proc, api = start()
    api.invoke({"track": [arn]}, timeout=60)
    stack.drain()
    # Hold the outbox removal (the settlement that finishes a notification,
    # `REMOVE outbox.<id>` alone: `REMOVE #a0.#a1`) of this table back, and fail it.
    rule = stack.fault({"service": "dynamodb", "action": "UpdateItem", "contains": [stack.table, '"REMOVE #a0.#a1"'],
                        "delay_ms": 5000, "status": 500, "code": "InternalServerError"})
    stack.admin("POST", f"/_admin/jobs/{job}/status", {"status": "InProgress"})
    api.send({"poll": {}})
    first = stack.drain(wait=10)
    proc.kill()
    proc.wait(timeout=10)
    stack.clear_fault(rule)
    check("SIGKILL after SNS accepted the publish, before the outbox removal",
          len(first) == 1 and first[0]["body"]["status"] == "InProgress", first)
    # The dead process's claim runs out after CLAIM_SECONDS; move it into the past
    # rather than wait for it.
    ddb = stack.client("dynamodb")
    item = ddb.get_item(TableName=stack.table, Key={"jobArn": {"S": arn}}, ConsistentRead=True)["Item"]
    pending = list(item["outbox"]["M"])
    for tid in pending:
        ddb.update_item(TableName=stack.table, Key={"jobArn": {"S": arn}},
                        UpdateExpression="SET outbox.#t.claimedUntil = :past",
                        ExpressionAttributeNames={"#t": tid}, ExpressionAttributeValues={":past": {"N": "0"}})
    proc, api = start()
    try:
        r, _ = api.invoke({"poll": {}}, timeout=60)
        again = stack.drain()
        r2, _ = api.invoke({"poll": {}}, timeout=60)
        more = stack.drain()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ids = {m["body"]["transitionId"] for m in first + again}
    check("the next process repeats it once, with the same transitionId, and nothing after",
          len(pending) == 1 and len(again) == 1 and len(ids) == 1 and not more and r.get("notified") == 1
          and r2.get("pending") == 0, (pending, r, again, r2, more))


if __name__ == "__main__":
    sys.exit(main())
