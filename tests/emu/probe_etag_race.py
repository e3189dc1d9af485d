#!/usr/bin/env python3
"""Whether the emulator's PutObject answers an ETag the object does not have while the
object is being read (the cause of a spurious exit 3 of an S3-state run, docs/RELIABILITY.md).

    "$PI_DEPLOY_EMU_PYTHON" tests/emu/probe_etag_race.py --endpoint http://127.0.0.1:PORT [--writes 2000 --readers 8]

One writer rewrites one key of a fresh versioned bucket ``--writes`` times, each with
``If-Match`` on the ETag the previous PutObject answered (as pi-deploy's S3 state store
does), while ``--readers`` threads GetObject the key in a loop (as the crash tests poll the
state object). There is no other writer, so every condition should hold. moto 5.2.5
computes an object's ETag lazily (``FakeKey.etag``) from a buffer that a concurrent
GetObject seeks and reads without the key's lock; a PutObject answered at that moment can
carry the MD5 of a partial read (e.g. ``d41d8cd98f00b204e9800998ecf8427e``, the MD5 of no
bytes) while the object's ETag is later the MD5 of its bytes, and the next ``If-Match``
then fails with no other writer. Prints every such failure and a summary line; exits 0
either way (it measures the emulator, it does not test pi-deploy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

REGION = "eu-west-1"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--writes", type=int, default=2000)
    ap.add_argument("--readers", type=int, default=8)
    args = ap.parse_args()

    def client():
        return boto3.client(
            "s3",
            endpoint_url=args.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}),
        )

    s3 = client()
    bucket = "probe-etag-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "pi/probe.json"
    stop = threading.Event()

    def read() -> None:
        c = client()
        while not stop.is_set():
            try:
                c.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError:
                pass

    readers = [threading.Thread(target=read) for _ in range(args.readers)]
    for t in readers:
        t.start()
    etag, failed, misreported = None, 0, 0
    try:
        for i in range(args.writes):
            body = json.dumps({"serial": i, "pad": "x" * 30000}).encode()
            cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                etag = s3.put_object(Bucket=bucket, Key=key, Body=body, **cond)["ETag"]
                if etag.strip('"') != hashlib.md5(body).hexdigest():
                    misreported += 1
            except ClientError as e:
                failed += 1
                cur = s3.get_object(Bucket=bucket, Key=key)
                got = cur["Body"].read()
                print(
                    f"write {i}: {e.response['Error']['Code']} with no other writer: held {etag}, "
                    f"the object has {cur['ETag']} (md5 of its bytes {hashlib.md5(got).hexdigest()}), "
                    f"serial {json.loads(got)['serial']}",
                    flush=True,
                )
                etag = cur["ETag"]
    finally:
        stop.set()
        for t in readers:
            t.join()
    print(
        f"{args.writes} conditional writes, {args.readers} readers: {failed} failed conditions "
        f"with no other writer, {misreported} PutObject answers whose ETag was not the MD5 of the body"
    )


if __name__ == "__main__":
    main()
