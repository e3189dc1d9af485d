"""Stand-in for S3 -> Lambda delivery on the emulator (tests/integration/day_to_day.rs).

moto stores the bucket notification but cannot run a Lambda without Docker, so this process
plays both S3's event delivery and the Lambda runtime: it watches the bucket, and for each
object created or changed under an allowed folder (and each one that disappears) it calls
the real handler (lambda/sideload/handler.py) with the S3 event record, one invocation per
record as S3 sends them, with EFS_ROOT pointing at a local directory. The handler talks to
the emulator's S3 (GetObject, PutObjectTagging). What the handler logs is written to the
function's log group the way the Lambda runtime formats it, so `pi-deploy` reads it as it
would on AWS.

    python sideload_lambda.py --bucket B --log-group G --efs-root DIR --stop-file F

Prints `ready` on stdout once it has taken the bucket's current content as already handled.
Stops when the stop file exists, or after --timeout seconds. Credentials, region and
AWS_ENDPOINT_URL come from the environment.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import time
import urllib.parse
import uuid

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "lambda", "sideload"))

import handler as sideload  # noqa: E402  (needs the path above)

PREFIXES = tuple(folder + "/" for folder in sideload.ALLOWED_FOLDERS)


class Capture(logging.Handler):
    """Keeps the handler's log records of one invocation."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def listing(s3, bucket):
    """key -> (eTag, LastModified) of every object under an allowed folder."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            if o["Key"].startswith(PREFIXES):
                out[o["Key"]] = (o["ETag"].strip('"'), o["LastModified"])
    return out


def record(bucket, key, event_name, etag=None):
    """An S3 event record as S3 sends it: the key form-encoded (space as '+')."""
    obj = {"key": urllib.parse.quote_plus(key, safe="/"), "sequencer": "0"}
    if etag:
        obj["eTag"] = etag
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket}, "object": obj},
    }


def runtime_line(level, request_id, message, when=None):
    when = when or datetime.datetime.now(datetime.timezone.utc)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (when.microsecond // 1000)
    return "[%s]\t%s\t%s\t%s" % (level, stamp, request_id, message)


def invoke(rec, capture):
    """One invocation: the handler's lines and, when it raised, the runtime's error line."""
    request_id = str(uuid.uuid4())
    capture.records.clear()
    error = None
    try:
        sideload.handler({"Records": [rec]}, None)
    except Exception as exc:  # what the Lambda runtime reports for a failed invocation
        error = "%s: %s" % (type(exc).__name__, exc)
    lines = [runtime_line(r.levelname, request_id, r.getMessage()) for r in capture.records]
    if error:
        lines.append(runtime_line("ERROR", request_id, error))
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--log-group", required=True)
    ap.add_argument("--efs-root", required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args()

    os.environ["EFS_ROOT"] = args.efs_root
    config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
    s3 = boto3.client("s3", config=config)
    sideload._S3_CLIENT = s3
    logs = boto3.client("logs")
    stream = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex
    logs.create_log_stream(logGroupName=args.log_group, logStreamName=stream)

    capture = Capture()
    logger = logging.getLogger("sideload")
    logger.addHandler(capture)
    logger.propagate = False

    seen = listing(s3, args.bucket)
    print("ready", flush=True)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and not os.path.exists(args.stop_file):
        now = listing(s3, args.bucket)
        records = []
        for key, (etag, modified) in sorted(now.items()):
            if seen.get(key) != (etag, modified):
                records.append(record(args.bucket, key, "ObjectCreated:Put", etag))
        for key in sorted(set(seen) - set(now)):
            records.append(record(args.bucket, key, "ObjectRemoved:Delete"))
        seen = now
        lines = []
        for rec in records:
            lines.extend(invoke(rec, capture))
        for line in lines:
            # On the test's stderr too: what a failed assertion about the receipt needs.
            print("sideload-lambda: " + line, file=sys.stderr, flush=True)
        if lines:
            stamp = int(time.time() * 1000)
            logs.put_log_events(
                logGroupName=args.log_group,
                logStreamName=stream,
                logEvents=[{"timestamp": stamp, "message": line} for line in lines],
            )
        time.sleep(0.1)


if __name__ == "__main__":
    main()
