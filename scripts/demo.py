"""`make demo`: the whole flow on this machine.

Starts moto (DynamoDB, SNS, SQS), the fake Bedrock and the function under
`cargo lambda watch`; creates the table from template.yaml, the topic and an SQS
queue subscribed to it; seeds a Bedrock batch job and drives it
Submitted -> Validating -> InProgress -> Failed, invoking the function with the
files in events/ through `cargo lambda invoke`. It prints each notification as
the SQS subscriber receives it, the email text of the failure as an email
subscriber reads it (with what the job cost, from the manifest Bedrock leaves
in S3), the `list` answer while the job runs (with its ETA), a second job
that completes (and its cost), and the digest (with the spend of both)."""

from __future__ import annotations

import json
import sys
import textwrap

from local import Stack

JOB_ID = "abcdefghwxyz"  # the job the files in events/ name
BOLD, DIM, RED, GREEN, RESET = "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m"


def step(text: str) -> None:
    print(f"\n{BOLD}== {text}{RESET}", flush=True)


def show_invocation(name: str, result: dict) -> None:
    print(f"{DIM}cargo lambda invoke --data-file events/{name} ->{RESET} {json.dumps(result)}")


def show_notifications(stack: Stack, expect: int) -> None:
    got = stack.drain()
    if not got:
        print(f"{DIM}(no notification){RESET}")
    for m in got:
        b, a = m["body"], m["attributes"]
        colour = RED if a.get("severity") == "error" else GREEN
        print(f"{colour}notification{RESET}  subject: {m['subject']}")
        print(f"  attributes: {json.dumps(a)}")
        print(f"  {b['previousStatus'] or '(new)'} -> {b['status']}  message: {json.dumps(b['message'])}")
        if b.get("records"):
            print(f"  records: {json.dumps(b['records'])}")
        if b.get("estimatedCost"):
            c = b["estimatedCost"]
            print(f"  estimatedCost: ${c['usd']:.2f} ({c['inputTokens']} input, {c['outputTokens']} output tokens;"
                  f" {c['source']} prices of {c['pricesOf']})")
    if len(got) != expect:
        sys.exit(f"demo: expected {expect} notification(s), the subscriber received {len(got)}")


def show_email(stack: Stack, what: str, must: str | None = None) -> None:
    """The email body of the last message published, as an email subscriber
    reads it; the demo stops if it lacks `must`."""
    subject, body = stack.sent_email()[-1]
    print(f"{BOLD}{what}{RESET}")
    print(textwrap.indent(f"Subject: {subject}\n\n{body}", "  | ", predicate=lambda _: True), end="")
    if must is not None and must not in body:
        sys.exit(f"demo: the email should carry {must!r}")


def main() -> None:
    with Stack() as stack:
        step("Bedrock has a batch job (fake-bedrock admin API)")
        job = stack.admin("POST", "/_admin/jobs", {"jobName": "nightly-embeddings", "id": JOB_ID})
        print(f"{job['jobArn']}  status {job['status']}")

        step("Track it")
        show_invocation("track.json", stack.invoke_file("events/track.json"))
        show_notifications(stack, 1)

        moves = [
            ("Validating", None, None),
            ("InProgress", None, {"total": 100000, "processed": 250, "success": 250, "error": 0}),
        ]
        for status, message, records in moves:
            step(f"Bedrock moves the job to {status}; the schedule polls")
            stack.admin("POST", f"/_admin/jobs/{JOB_ID}/status",
                        {"status": status, "message": message, "records": records})
            show_invocation("poll.json", stack.invoke_file("events/poll.json"))
            show_notifications(stack, 1)

        step("The job processes records; the schedule polls (a reading of its count: no notification)")
        stack.admin("POST", f"/_admin/jobs/{JOB_ID}/records",
                    {"total": 100000, "processed": 600, "success": 599, "error": 1})
        show_invocation("poll.json", stack.invoke_file("events/poll.json"))
        show_notifications(stack, 0)

        # 100,000 records: at the demo's pace (hundreds a second) the estimate
        # is still ahead when list runs; an estimate already passed is none.
        step("What is watched? list reads the table only (the demo's hours are seconds, so the ETA is close)")
        listed = stack.invoke_file("events/list.json")
        show_invocation("list.json", listed)
        for j in listed.get("jobs", []):
            r = j.get("records") or {}
            print(f"  {j['jobName']:<20} {j['status']:<11} {r.get('processed', '-')}/{r.get('total', '-')} records"
                  f"  eta {j.get('eta', '(none yet)')}")
        if not listed.get("jobs") or "eta" not in listed["jobs"][0]:
            sys.exit("demo: the running job should be listed with an ETA after two readings of its count")

        step("Nothing changed; the schedule polls again (one Bedrock call, no write, no notification)")
        show_invocation("poll.json", stack.invoke_file("events/poll.json"))
        show_notifications(stack, 0)

        step("Bedrock moves the job to Failed, leaving its manifest (token totals) in S3; the schedule polls")
        print(stack.put_manifest(job, 1_260_000, 318_000))
        stack.admin("POST", f"/_admin/jobs/{JOB_ID}/status",
                    {"status": "Failed",
                     "message": "Input file s3://batch-input/nightly/input.jsonl is not valid JSONL at line 412: "
                                "Unexpected token '}' at column 88",
                     "records": {"total": 100000, "processed": 600, "success": 599, "error": 1}})
        show_invocation("poll.json", stack.invoke_file("events/poll.json"))
        show_notifications(stack, 1)
        show_email(stack, "The same notification, as an email subscriber reads it (Cost: from the manifest's tokens):",
                   must="Cost:      $0.36 (estimate, before taxes and discounts)")

        step("Bedrock's own state-change event arrives late (already recorded: no second notification)")
        show_invocation("state-change-failed.json", stack.invoke_file("events/state-change-failed.json"))
        show_notifications(stack, 0)

        step("A second job runs to the end and completes; the schedule polls")
        done = stack.admin("POST", "/_admin/jobs", {"jobName": "daily-summaries", "id": "donejob00001",
                                                    "status": "InProgress"})
        show_invocation("track-done.json", stack.invoke_event("track-done.json", {"track": [done["jobArn"]]}))
        show_notifications(stack, 1)
        stack.admin("POST", "/_admin/jobs/donejob00001/status",
                    {"status": "Completed", "records": {"total": 5000, "processed": 5000, "success": 5000, "error": 0}})
        print(stack.put_manifest(done, 9_800_000, 2_150_000))
        show_invocation("poll.json", stack.invoke_file("events/poll.json"))
        show_notifications(stack, 1)
        show_email(stack, "The completion, as an email subscriber reads it:",
                   must="Cost:      $2.57 (estimate, before taxes and discounts)")

        step("Describe: the stored state and its history")
        d = stack.invoke_file("events/describe.json")
        for h in d.get("history", []):
            print(f"  {h['at']}  {h['from'] or '(new)':>10} -> {h['to']:<10} {h['message'] or ''}")
        step("The daily digest (sent by the DigestSchedule schedule; here, events/digest.json)")
        show_invocation("digest.json", stack.invoke_file("events/digest.json"))
        got = stack.drain()
        if len(got) != 1 or got[0]["attributes"].get("event") != "digest":
            sys.exit(f"demo: expected the digest on the queue, got {got}")
        show_email(stack, "The digest, as an email subscriber reads it:",
                   must="Estimated spend: $2.93 for 2 ended jobs")

        print(textwrap.dedent(f"""
            {BOLD}Done.{RESET} Each notification above is what an SQS subscriber of the topic received:
            the subject, the message attributes (for filter policies) and the machine JSON.
            Email subscribers read the text shown for the failure, the completion and the digest; Slack gets
            a formatted version with a Stop job button while a job can still be stopped.
            Logs of the stand-ins and the function: .demo/*.log"""))


if __name__ == "__main__":
    main()
