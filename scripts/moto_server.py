"""moto's server (DynamoDB, SNS, SQS) with DynamoDB requests applied one at a
time, and a fault layer in front of it for what moto cannot fail by itself.

Atomic DynamoDB writes: real DynamoDB applies each conditional write
atomically. moto's own server runs requests on concurrent threads with no lock
around its DynamoDB backend, so two overlapping `UpdateItem ...
ConditionExpression version = :v` calls can both pass their condition. The
monitor's "a transition is recorded at most once" guarantee rests on that
atomicity, and the tests exercise overlapping invocations, so this wrapper
serialises DynamoDB requests (and only those: SQS long polls and SNS stay
concurrent).

Faults: `POST /_faults` with a JSON rule makes matching requests fail the way
the real service fails, before moto sees them:

    {"service": "sns" | "dynamodb" | "s3", "action": "Publish" | "Query" | "GetObject" | ...,
     "contains": "<text>" | ["<text>", ...],   # the request body (for S3 its path) must contain each
     "status": 400, "code": "InvalidParameter", "message": "...",
     "times": 3,                      # omitted or null: every match
     "delay_ms": 1500,                # wait first; without "code", then pass the request on
     "apply": true}                   # let moto apply it, then answer the error anyway
                                      # (a write done whose answer was lost)

It answers `{"id": N}`; `DELETE /_faults/N` removes the rule, `GET /_faults`
lists the rules with how many requests each failed. `contains` scopes a rule to
one test (a table name; a topic and a job id), so tests sharing the server do not
disturb each other. SNS errors come as awsQuery XML, DynamoDB's as JSON with
`__type`, S3's as its `<Error>` XML, as the SDKs parse them. An S3 request's
action is GetObject, PutObject or HeadObject for an object (path-style
`/bucket/key`), the HTTP method otherwise.

S3 regions: moto keeps each bucket's region but serves every bucket to a
request signed for any region. Real S3 does not: a request for a bucket in
another region is refused with a redirect naming the bucket's region (301
PermanentRedirect, the region in the `x-amz-bucket-region` header:
https://docs.aws.amazon.com/AmazonS3/latest/API/UsingRouting.html), and the
Rust SDK does not follow it. So this front answers the same way when an S3
request's SigV4 scope names another region than its (path-style) bucket's.

Counts: `GET /_stats` answers the requests served so far by service and
action (`{"dynamodb": {"Query": 4, ...}, "sns": {"Publish": 2}}`);
`GET /_stats?table=<name>` answers one table's DynamoDB requests by action and
the bytes of their answers (`{"dynamodb": {"Query": 4, ...}, "bytes": {"Query":
27416, ...}}`; a batch or a transaction counts once for each table it names),
so tests sharing the server each count their own table's; `DELETE /_stats`
starts again. The benchmark and tests/scale.rs read them.

Published messages: `GET /_sent?topic=<topic ARN>` answers what moto's SNS
kept of each message published to the topic (`[{"subject", "message",
"attributes"}]`, `message` as published: with `MessageStructure=json`, one
body per protocol). `make demo` prints the email body from it, which no
local subscriber can receive.

S3 reads: `GET /_s3_reads` answers the last 1,000 S3 GETs with the access key
each was signed with, its query and its Range header (`[{"path", "accessKey", "query",
"range"}]`): moto accepts any key, so a
test tells by it whose credentials read a member account's manifest.

Usage: python scripts/moto_server.py [-H HOST] [-p PORT]"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import urllib.parse
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class Faults:
    """The fault rules, shared by the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: dict[int, dict] = {}
        self.next_id = 1

    def admin(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "").rstrip("/")
        with self.lock:
            if method == "POST" and path == "/_faults":
                rule = json.loads(read_body(environ) or b"{}")
                missing = [k for k in ("service", "action") if k not in rule]
                if "code" in rule and "status" not in rule:
                    missing.append("status")
                if missing:
                    return respond(start_response, 400, {"error": f"missing {missing}"})
                rule.setdefault("contains", "")
                rule.setdefault("code", None)
                rule.setdefault("delay_ms", 0)
                rule.setdefault("apply", False)
                rule.setdefault("message", f"injected fault: {rule['code']}")
                rule.setdefault("times", None)
                rule["hits"] = 0
                rule["id"] = self.next_id
                self.rules[self.next_id] = rule
                self.next_id += 1
                return respond(start_response, 200, {"id": rule["id"]})
            if method == "GET" and path == "/_faults":
                return respond(start_response, 200, {"rules": list(self.rules.values())})
            if method == "DELETE" and path.startswith("/_faults/"):
                removed = self.rules.pop(int(path.rsplit("/", 1)[1]), None)
                return respond(start_response, 200 if removed else 404, removed or {})
        return respond(start_response, 404, {"error": "unknown fault API call"})

    def match(self, service: str, action: str, body: str) -> dict | None:
        with self.lock:
            for rule in self.rules.values():
                if rule["service"] != service or rule["action"] != action:
                    continue
                needles = rule["contains"] if isinstance(rule["contains"], list) else [rule["contains"]]
                if not all(n in body for n in needles):
                    continue
                if rule["times"] is not None and rule["hits"] >= rule["times"]:
                    continue
                rule["hits"] += 1
                return dict(rule)
        return None


def read_body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def table_names(raw: bytes) -> list[str]:
    """The tables a DynamoDB request names: TableName, a batch's RequestItems,
    a transaction's items."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return []
    names = {body["TableName"]} if isinstance(body.get("TableName"), str) else set()
    names.update(body.get("RequestItems") or {})
    for item in body.get("TransactItems") or []:
        for op in item.values():
            if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                names.add(op["TableName"])
    return sorted(names)


def respond(start_response, status: int, payload: dict):
    body = json.dumps(payload).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def signing_service(environ) -> str:
    """The service of the request's SigV4 credential scope: .../region/SERVICE/aws4_request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
    parts = scope.split("/")
    return parts[3] if len(parts) > 3 else ""


def signing_region(environ) -> str:
    """The region of the request's SigV4 credential scope: .../REGION/service/aws4_request."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in auth else ""
    parts = scope.split("/")
    return parts[2] if len(parts) > 3 else ""


def s3_bucket_region(name: str) -> str | None:
    """The region moto created bucket `name` in, or None when there is no such bucket."""
    from moto.s3.models import s3_backends

    found = s3_backends.bucket_accounts.get(name)
    if not found:
        return None
    partition, account = found
    bucket = s3_backends[account][partition].buckets.get(name)
    return bucket.region_name if bucket is not None else None


def s3_wrong_region(environ) -> tuple[str, str] | None:
    """(bucket, its region) when an S3 request is signed for another region than the bucket's."""
    if signing_service(environ) != "s3":
        return None
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    if not bucket:
        return None
    region = s3_bucket_region(bucket)
    if region is None or region == signing_region(environ):
        return None
    return bucket, region


def s3_action(environ) -> str:
    """GetObject, PutObject or HeadObject for a path-style object request; the method otherwise."""
    method = environ.get("REQUEST_METHOD", "")
    has_key = "/" in environ.get("PATH_INFO", "").lstrip("/")
    names = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject"}
    return names.get(method, method) if has_key else method


def redirect_response(start_response, environ, bucket: str, region: str):
    body = b""
    if environ.get("REQUEST_METHOD") != "HEAD":
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>PermanentRedirect</Code>"
                "<Message>The bucket you are attempting to access must be addressed using the specified "
                "endpoint. Please send all future requests to this endpoint.</Message>"
                f"<Bucket>{escape(bucket)}</Bucket><Endpoint>s3.{escape(region)}.amazonaws.com</Endpoint>"
                "<RequestId>moto-front</RequestId></Error>").encode()
    start_response("301 Moved Permanently", [("Content-Type", "application/xml"), ("x-amz-bucket-region", region),
                                             ("Content-Length", str(len(body)))])
    return [body]


def fault_response(start_response, service: str, rule: dict):
    status = int(rule["status"])
    reason = "Bad Request" if status < 500 else "Internal Server Error"
    if service == "dynamodb":
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{rule['code']}",
                           "message": rule["message"]}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-ErrorType", rule["code"])]
    elif service == "s3":
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{escape(rule['code'])}</Code>"
                f"<Message>{escape(rule['message'])}</Message><RequestId>fault-{rule['id']}</RequestId></Error>").encode()
        headers = [("Content-Type", "application/xml")]
    else:
        kind = "Sender" if status < 500 else "Receiver"
        body = (f'<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>{kind}</Type>'
                f"<Code>{escape(rule['code'])}</Code><Message>{escape(rule['message'])}</Message></Error>"
                f"<RequestId>fault-{rule['id']}</RequestId></ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml")]
    start_response(f"{status} {reason}", headers + [("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()

    moto = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()
    faults = Faults()
    stats_lock = threading.Lock()
    stats: dict[str, dict[str, int]] = {}
    # S3 reads and the access key each was signed with (moto itself accepts
    # any key): a test can tell a member account's credentials were used.
    s3_reads: list[dict[str, str]] = []
    # Table name -> {"dynamodb": {action: requests}, "bytes": {action: answer bytes}}.
    tables: dict[str, dict[str, dict[str, int]]] = {}

    def count(environ, raw: bytes | None) -> tuple[bytes | None, str, str]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            service, action = "dynamodb", target.rsplit(".", 1)[-1]
            if raw is None:
                raw = read_body(environ)
                environ["wsgi.input"] = io.BytesIO(raw)
            with stats_lock:
                for table in table_names(raw):
                    per = tables.setdefault(table, {"dynamodb": {}, "bytes": {}})["dynamodb"]
                    per[action] = per.get(action, 0) + 1
        elif target:
            service, action = signing_service(environ) or "other", target.rsplit(".", 1)[-1]
        else:
            if raw is None:
                raw = read_body(environ)
                environ["wsgi.input"] = io.BytesIO(raw)
            form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
            service, action = signing_service(environ) or "other", (form.get("Action") or ["?"])[0]
        with stats_lock:
            per = stats.setdefault(service, {})
            per[action] = per.get(action, 0) + 1
        return raw, service, action

    def count_bytes(raw: bytes, action: str, answer: list[bytes]) -> None:
        size = sum(len(chunk) for chunk in answer)
        with stats_lock:
            for table in table_names(raw):
                per = tables.setdefault(table, {"dynamodb": {}, "bytes": {}})["bytes"]
                per[action] = per.get(action, 0) + size

    def stats_admin(environ, start_response):
        with stats_lock:
            if environ["REQUEST_METHOD"] == "DELETE":
                stats.clear()
                tables.clear()
            table = (urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("table") or [None])[0]
            if table is not None:
                return respond(start_response, 200, tables.get(table, {"dynamodb": {}, "bytes": {}}))
            return respond(start_response, 200, stats)

    def sent_admin(environ, start_response):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns.models import sns_backends

        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        arn = (query.get("topic") or [""])[0]
        region = arn.split(":")[3] if arn.count(":") >= 5 else "us-east-1"
        topic = sns_backends[DEFAULT_ACCOUNT_ID][region].topics.get(arn)
        if topic is None:
            return respond(start_response, 404, {"error": f"no topic {arn!r}"})
        return respond(start_response, 200, [
            {"subject": subject, "message": message, "attributes": attributes}
            for _id, message, subject, attributes, _group in topic.sent_notifications
        ])

    def app(environ, start_response):
        if environ.get("PATH_INFO", "").startswith("/_sent"):
            return sent_admin(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/_faults"):
            return faults.admin(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/_stats"):
            return stats_admin(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/_s3_reads"):
            with stats_lock:
                return respond(start_response, 200, list(s3_reads))
        raw, service, action = count(environ, None)
        if service == "dynamodb":
            answer = dynamodb_app(environ, start_response)
            count_bytes(raw or b"", action, answer)
            return answer
        if signing_service(environ) == "s3" and environ["REQUEST_METHOD"] == "GET":
            auth = environ.get("HTTP_AUTHORIZATION", "")
            key = auth.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in auth else ""
            with stats_lock:
                s3_reads.append({"path": environ.get("PATH_INFO", ""), "accessKey": key,
                                 "query": environ.get("QUERY_STRING", ""),
                                 "range": environ.get("HTTP_RANGE")})
                del s3_reads[:-1000]
        wrong = s3_wrong_region(environ)
        if wrong is not None:
            return redirect_response(start_response, environ, *wrong)
        if faults.rules:
            raw = read_body(environ)
            environ["wsgi.input"] = io.BytesIO(raw)
            if signing_service(environ) == "s3":
                service, action, text = "s3", s3_action(environ), environ.get("PATH_INFO", "")
            else:
                text = urllib.parse.unquote_plus(raw.decode("utf-8", "replace"))
                form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
                service, action = signing_service(environ), (form.get("Action") or [""])[0]
            rule = faults.match(service, action, text)
            if rule is not None:
                time.sleep(rule["delay_ms"] / 1000)
                if rule["code"] is not None:
                    if rule["apply"]:
                        list(forward(environ))
                    return fault_response(start_response, service, rule)
        return forward(environ, start_response)

    def dynamodb_app(environ, start_response) -> list[bytes]:
        """A DynamoDB request: its fault rule if one matches, else moto's answer (whole)."""
        if faults.rules:
            raw = read_body(environ)
            environ["wsgi.input"] = io.BytesIO(raw)
            action = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
            rule = faults.match("dynamodb", action, raw.decode("utf-8", "replace"))
            if rule is not None:
                time.sleep(rule["delay_ms"] / 1000)
                if rule["code"] is not None:
                    if rule["apply"]:
                        list(forward(environ))
                    return fault_response(start_response, "dynamodb", rule)
        return forward(environ, start_response)

    def forward(environ, start_response=lambda *_: None):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # Build the whole response under the lock.
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
