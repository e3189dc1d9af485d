#!/usr/bin/env python3
"""What the emulator does with S3 conditional writes (the S3 state store relies on them).

    "$PI_DEPLOY_EMU_PYTHON" tests/emu/probe_conditional_writes.py --endpoint http://127.0.0.1:PORT [--rounds 60 --writers 8]

Checks, on a fresh versioned bucket, and prints one line each:
1. PutObject ``If-None-Match: *``: created when absent, 412 when the key exists.
2. PutObject ``If-Match``: written on the current ETag, 412 on a stale one, 404 on a
   missing key (as AWS).
3. DeleteObject ``If-Match``: 412 on a stale ETag, deleted on the current one.
4. Races: ``--rounds`` rounds of ``--writers`` threads each creating the same fresh key
   with ``If-None-Match: *`` at once, then the same with ``If-Match`` on one shared ETag;
   counts the winners per round (one is right; moto's check is a read then a write).

Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from collections import Counter

import boto3
from botocore.exceptions import ClientError

REGION = "eu-west-1"


def code(f) -> str:
    try:
        f()
        return "ok"
    except ClientError as e:
        return f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Code')}"


def race(s3, bucket: str, rounds: int, writers: int, conditional) -> Counter:
    winners: Counter = Counter()
    for r in range(rounds):
        key, cond = conditional(r)
        barrier = threading.Barrier(writers)
        won = []

        def write(i: int) -> None:
            barrier.wait()
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=f"writer {i}".encode(), **cond)
                won.append(i)
            except ClientError:
                pass

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners[len(won)] += 1
    return winners


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--writers", type=int, default=8)
    a = p.parse_args()
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=a.endpoint)
    bucket = f"probe-cond-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    failed = False

    def check(name: str, got: str, want: str) -> None:
        nonlocal failed
        ok = got.startswith(want)
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {got} (want {want})")

    check("create absent, If-None-Match *", code(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")), "ok")
    check("create existing, If-None-Match *", code(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")), "412")
    etag = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    check("write, If-Match current", code(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"3", IfMatch=etag)), "ok")
    check("write, If-Match stale", code(lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"4", IfMatch=etag)), "412")
    check("write missing key, If-Match", code(lambda: s3.put_object(Bucket=bucket, Key="none", Body=b"5", IfMatch=etag)), "404")
    check("delete, If-Match stale", code(lambda: s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)), "412")
    current = s3.head_object(Bucket=bucket, Key="k")["ETag"]
    check("delete, If-Match current", code(lambda: s3.delete_object(Bucket=bucket, Key="k", IfMatch=current)), "ok")

    created = race(s3, bucket, a.rounds, a.writers, lambda r: (f"race-create-{r}", {"IfNoneMatch": "*"}))

    def shared_etag(r: int):
        key = f"race-swap-{r}"
        s3.put_object(Bucket=bucket, Key=key, Body=b"base")
        return key, {"IfMatch": s3.head_object(Bucket=bucket, Key=key)["ETag"]}

    swapped = race(s3, bucket, a.rounds, a.writers, shared_etag)
    for name, winners in (("If-None-Match *", created), ("If-Match", swapped)):
        ok = set(winners) == {1}
        failed |= not ok
        print(
            f"{'ok  ' if ok else 'FAIL'} race {name}: {a.rounds} rounds of {a.writers} writers, "
            f"winners per round: {dict(sorted(winners.items()))}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
