"""moto's server (DynamoDB, SNS, SQS) with DynamoDB requests applied one at a time.

Real DynamoDB applies each conditional write atomically. moto's own server runs
requests on concurrent threads with no lock around its DynamoDB backend, so two
overlapping `UpdateItem ... ConditionExpression version = :v` calls can both
pass their condition. The monitor's "a transition is recorded at most once"
guarantee rests on that atomicity, and the tests exercise overlapping
invocations, so this wrapper serialises DynamoDB requests (and only those: SQS
long polls and SNS stay concurrent).

Usage: python scripts/moto_server.py [-H HOST] [-p PORT]"""

from __future__ import annotations

import argparse
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()

    moto = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def app(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with dynamodb:
                # Build the whole response under the lock.
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
