"""`make bench`, the organization part (issue 28): one hub polling 4 accounts
(its own and 3 members) x 2 regions x 250 active unchanged jobs, with Bedrock
at 100 ms. It prints, per poll, the time, the Bedrock requests per account and
region (as fake-bedrock saw them: each request's credentials name its
account), and the STS AssumeRole calls: the first poll of a warm function
assumes each member's role once per region, later polls none (the SDK keeps
the credentials until shortly before they expire). Figures are printed, not
asserted; `BENCH_ONLY=org` runs this part alone."""

from __future__ import annotations

import time
import uuid
from collections import Counter

HOME = "123456789012"
MEMBERS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "us-west-2")
PER_PAIR = 250
ROLE = "bedrock-batch-monitor-reader"


def seed_org(bench) -> tuple[str, int]:
    """The jobs in fake-bedrock, each in its account and region, and the same
    jobs already tracked in a fresh table."""
    table = f"bench-org-{uuid.uuid4().hex[:6]}"
    bench.ddb.create_table(TableName=table, **bench.definition)
    bench.admin("POST", "/_admin/reset")
    for account in MEMBERS:
        bench.admin("POST", "/_admin/roles", {"account": account, "roleName": ROLE})
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60))
    batch, n = [], 0
    for account in (HOME, *MEMBERS):
        for region in REGIONS:
            for i in range(PER_PAIR):
                job_id = f"{account[:4]}{region[3:5]}{i:06d}"
                arn = f"arn:aws:bedrock:{region}:{account}:model-invocation-job/{job_id}"
                bench.admin("POST", "/_admin/jobs", {"jobName": f"org-{n}", "id": job_id, "account": account,
                                                     "region": region, "status": "InProgress", "submitTime": now})
                batch.append({"PutRequest": {"Item": {
                    "jobArn": {"S": arn}, "status": {"S": "InProgress"}, "version": {"N": "2"},
                    "jobName": {"S": f"org-{n}"}, "modelId": {"S": "anthropic.claude-3-haiku-20240307-v1:0"},
                    "submitTime": {"S": now}, "lastModifiedTime": {"S": now},
                    "history": {"L": [
                        {"M": {"from": {"NULL": True}, "to": {"S": "InProgress"}, "at": {"S": now},
                               "message": {"NULL": True}}},
                    ]},
                    "outbox": {"M": {}}, "pollShard": {"N": str(n % 4)}, "notFoundCount": {"N": "0"},
                    "gone": {"BOOL": False}, "labels": {"M": {}}, "trackedAt": {"S": now},
                }}})
                n += 1
                if len(batch) == 25:
                    bench.ddb.batch_write_item(RequestItems={table: batch})
                    batch = []
    if batch:
        bench.ddb.batch_write_item(RequestItems={table: batch})
    return table, n


def org_figures(bench, latency_ms: int = 100, polls: int = 3) -> dict:
    table, n = seed_org(bench)
    bench.admin("PUT", "/_admin/latency", {"ms": latency_ms})
    extra = {"MEMBER_ACCOUNTS": ",".join(MEMBERS), "AWS_ENDPOINT_URL_STS": bench.bedrock}
    proc, api = bench.start_function(table, 32, extra)
    runs = []
    try:
        for _ in range(polls):
            before = len(bench.admin("GET", "/_admin/calls")["calls"])
            summary, secs = api.invoke({"poll": {}})
            calls = bench.admin("GET", "/_admin/calls")["calls"][before:]
            assert summary["polled"] == n and summary["failed"] == 0, summary
            per_pair = Counter((c["account"], c.get("region"), c["operation"]) for c in calls
                               if c["operation"] != "AssumeRole")
            sts = [c for c in calls if c["operation"] == "AssumeRole"]
            runs.append({"seconds": secs, "per_pair": per_pair, "sts": len(sts),
                         "requests": sum(per_pair.values())})
    finally:
        proc.terminate()
        proc.wait()
    return {"n": n, "runs": runs, "latency_ms": latency_ms}


def print_org(fig: dict) -> None:
    accounts, regions = len(MEMBERS) + 1, len(REGIONS)
    print(f"  one hub, {accounts} accounts (its own and {len(MEMBERS)} members) x {regions} regions x "
          f"{PER_PAIR} active unchanged jobs ({fig['n']}), Bedrock at {fig['latency_ms']} ms, one warm function:")
    for i, r in enumerate(fig["runs"], 1):
        print(f"    poll {i}: {r['seconds']:.3f} s; Bedrock {r['requests']} request(s); "
              f"STS AssumeRole {r['sts']} call(s)")
    last = fig["runs"][-1]["per_pair"]
    print("    Bedrock requests per account and region (the last poll):")
    for (account, region, op), count in sorted(last.items()):
        print(f"      {account} {region}: {op} {count}")
