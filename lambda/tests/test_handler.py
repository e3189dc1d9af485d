"""Tests for lambda/sideload/handler.py (S3 -> EFS side-loading)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import stat
import tempfile
import tracemalloc
import urllib.parse

import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

import handler as sideload  # lambda/sideload is put on sys.path by conftest.py

BUCKET = "pi-test-resources"  # the bucket conftest.py's s3 fixture creates
MIB = 1024 * 1024


# ---------------------------------------------------------------- helpers


def record(raw_key, event_name="ObjectCreated:Put", bucket=BUCKET, version_id=None, size=0):
    """One S3 notification record; raw_key is used as is (already URL-encoded)."""
    obj = {"key": raw_key, "size": size, "eTag": "0", "sequencer": "0A1B2C3D4E5F678901"}
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "eu-west-1",
        "eventTime": "2026-01-01T00:00:00.000Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "sideload",
            "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
            "object": obj,
        },
    }


def event(*records):
    return {"Records": list(records)}


def encode(key):
    """Encode a key the way S3 does in event notifications (space -> '+')."""
    return urllib.parse.quote_plus(key, safe="/")


def created(key, **kw):
    return record(encode(key), "ObjectCreated:Put", **kw)


def removed(key, **kw):
    return record(encode(key), "ObjectRemoved:Delete", **kw)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def all_files(top):
    """Every file below top, as paths relative to it."""
    found = []
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            found.append(os.path.relpath(os.path.join(dirpath, name), top))
    return sorted(found)


class ForbiddenS3:
    """An S3 client that must not read anything (a rejected key must never be fetched);
    only the outcome tag may be written, and each such call is recorded."""

    def __init__(self):
        self.tagged = []

    def put_object_tagging(self, **params):
        self.tagged.append(params)

    def __getattr__(self, name):
        raise AssertionError("S3 was called (%s) for a key that should have been rejected" % name)


def tags_of(params):
    """The tag set of one recorded put_object_tagging call, as a dict."""
    return {t["Key"]: t["Value"] for t in params["Tagging"]["TagSet"]}


class SpyBody:
    """Wraps a StreamingBody and records every read() argument."""

    def __init__(self, body):
        self._body = body
        self.reads = []
        self.closed = False

    def read(self, *args, **kwargs):
        self.reads.append((args, kwargs))
        return self._body.read(*args, **kwargs)

    def close(self):
        self.closed = True
        self._body.close()

    def __getattr__(self, name):  # iter_chunks etc. would bypass read(): fail loudly
        raise AssertionError("unexpected use of Body.%s" % name)


class LazyRaw:
    """A raw stream that generates `total` bytes on demand (never holds them all)."""

    def __init__(self, total, fail_after=None):
        self.total = total
        self.sent = 0
        self.fail_after = fail_after

    def read(self, amt=None):
        if amt is None or amt < 0:
            raise AssertionError("whole-object read on a large body")
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError(errno.ECONNRESET, "connection reset by peer")
        n = min(amt, self.total - self.sent)
        self.sent += n
        return b"x" * n

    def close(self):
        pass


class FakeS3:
    """Minimal client whose get_object returns a lazily generated body."""

    def __init__(self, total, fail_after=None):
        self.total = total
        self.fail_after = fail_after
        self.calls = []
        self.tagged = []

    def get_object(self, **params):
        self.calls.append(params)
        raw = LazyRaw(self.total, self.fail_after)
        return {"Body": StreamingBody(raw, self.total), "ContentLength": self.total, "ETag": '"fake-etag"'}

    def put_object_tagging(self, **params):
        self.tagged.append(params)


# ---------------------------------------------------------------- copying


@pytest.mark.parametrize("folder", ["images", "themes", "excel-data", "svg", "keys"])
def test_copies_object_in_each_allowed_folder(s3, efs_root, folder):
    key = folder + "/sub/dir/file.bin"
    data = os.urandom(4096)
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    result = sideload.handler(event(created(key, size=len(data))), None)

    assert result == {"copied": 1}
    target = efs_root / folder / "sub" / "dir" / "file.bin"
    assert target.read_bytes() == data
    assert all_files(efs_root) == [os.path.join(folder, "sub", "dir", "file.bin")]


def test_top_level_file_in_folder(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="images/logo.png", Body=b"png")
    sideload.handler(event(created("images/logo.png")), None)
    assert (efs_root / "images" / "logo.png").read_bytes() == b"png"


def test_overwrite_replaces_content(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="themes/site.css", Body=b"old")
    sideload.handler(event(created("themes/site.css")), None)
    s3.put_object(Bucket=BUCKET, Key="themes/site.css", Body=b"new content")
    sideload.handler(event(created("themes/site.css")), None)
    assert (efs_root / "themes" / "site.css").read_bytes() == b"new content"
    assert os.listdir(efs_root / "themes") == ["site.css"]


@pytest.mark.parametrize(
    "event_name",
    ["ObjectCreated:Put", "ObjectCreated:Copy", "ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Post"],
)
def test_every_object_created_event_copies(s3, efs_root, event_name):
    s3.put_object(Bucket=BUCKET, Key="svg/icon.svg", Body=b"<svg/>")
    assert sideload.handler(event(record("svg/icon.svg", event_name)), None) == {"copied": 1}
    assert (efs_root / "svg" / "icon.svg").read_bytes() == b"<svg/>"


def test_uses_the_records_bucket(s3, efs_root):
    s3.create_bucket(Bucket="other-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="other-bucket", Key="images/a.png", Body=b"from other bucket")
    sideload.handler(event(record("images/a.png", bucket="other-bucket")), None)
    assert (efs_root / "images" / "a.png").read_bytes() == b"from other bucket"


def test_empty_object(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="keys/empty", Body=b"")
    assert sideload.handler(event(created("keys/empty")), None) == {"copied": 1}
    assert (efs_root / "keys" / "empty").read_bytes() == b""


def test_passes_version_id(s3, efs_root):
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=BUCKET, Key="images/v.png", Body=b"version one")["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="images/v.png", Body=b"version two")

    sideload.handler(event(created("images/v.png", version_id=v1)), None)

    assert (efs_root / "images" / "v.png").read_bytes() == b"version one"


def test_null_version_id_is_not_passed(monkeypatch, efs_root):
    fake = FakeS3(3)
    monkeypatch.setattr(sideload, "_S3_CLIENT", fake)
    sideload.handler(event(created("images/n.png", version_id="null")), None)
    assert fake.calls == [{"Bucket": BUCKET, "Key": "images/n.png"}]


def test_version_id_passed_to_get_object(monkeypatch, efs_root):
    fake = FakeS3(3)
    monkeypatch.setattr(sideload, "_S3_CLIENT", fake)
    sideload.handler(event(created("images/n.png", version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")), None)
    assert fake.calls == [{"Bucket": BUCKET, "Key": "images/n.png", "VersionId": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"}]


# ---------------------------------------------------------------- URL-encoded keys


@pytest.mark.parametrize(
    "raw_key, s3_key",
    [
        ("images/my+logo.png", "images/my logo.png"),  # space as '+'
        ("images/my%20logo.png", "images/my logo.png"),  # space as %20
        ("images/a%2Bb.png", "images/a+b.png"),  # literal plus
        ("images/caf%C3%A9.png", "images/café.png"),  # unicode
        ("excel-data/Q1+%2B+Q2%20%282026%29.xlsx", "excel-data/Q1 + Q2 (2026).xlsx"),
        ("images/%252e%252e/x.png", "images/%2e%2e/x.png"),  # decoded once only: a literal name
    ],
)
def test_url_encoded_keys(s3, efs_root, raw_key, s3_key):
    s3.put_object(Bucket=BUCKET, Key=s3_key, Body=s3_key.encode())

    assert sideload.handler(event(record(raw_key)), None) == {"copied": 1}

    target = efs_root.joinpath(*s3_key.split("/"))
    assert target.read_bytes() == s3_key.encode()
    assert all_files(efs_root) == [os.path.join(*s3_key.split("/"))]


def test_plus_is_a_space_not_a_plus(s3, efs_root):
    # Only "images/a+b.png" exists; the event key "images/a+b.png" means "images/a b.png".
    s3.put_object(Bucket=BUCKET, Key="images/a+b.png", Body=b"x")
    with pytest.raises(sideload.SideloadError, match="NoSuchKey"):
        sideload.handler(event(record("images/a+b.png")), None)
    assert not efs_root.exists()


def test_encoded_key_deleted(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="images/my logo é.png", Body=b"x")
    sideload.handler(event(record("images/my+logo+%C3%A9.png")), None)
    assert (efs_root / "images" / "my logo é.png").exists()
    sideload.handler(event(record("images/my%20logo%20%C3%A9.png", "ObjectRemoved:Delete")), None)
    assert not (efs_root / "images" / "my logo é.png").exists()


# ---------------------------------------------------------------- hostile and invalid keys

HOSTILE_KEYS = [
    "images/../../etc/passwd",
    "images/%2e%2e/x",
    "images/%2E%2E/%2E%2E/x",
    "images/a/../../../x",
    "images/..",
    "images/../images/x.png",  # would stay inside, still refused: no '..' at all
    "excel-data/../keys/id_rsa",
    "/abs",
    "%2Fabs",
    "/images/x.png",
    "%2Fimages%2Fx.png",
    "other/x.png",
    "x.png",
    "images",
    "Images/x.png",
    "excel/report.xlsx",  # the vendor's wrong folder name
    "images/./x.png",
    "images//x.png",
    "images\\..\\..\\x",
    "images/%5C..%5C..%5Cx",
    "images/a%00b.png",
    "images/a%0Ab.png",
    "images/%FF.png",  # not UTF-8
    "",
    "..%2F..%2Fx",
    "var/panintelligence/images/x.png",
]


@pytest.mark.parametrize("raw_key", HOSTILE_KEYS)
@pytest.mark.parametrize("event_name", ["ObjectCreated:Put", "ObjectRemoved:Delete"])
def test_hostile_keys_rejected_without_raising(monkeypatch, tmp_path, efs_root, raw_key, event_name, caplog):
    forbidden = ForbiddenS3()
    monkeypatch.setattr(sideload, "_S3_CLIENT", forbidden)
    # Put a victim file wherever the key would land if it were joined naively.
    decoded = urllib.parse.unquote_plus(raw_key, errors="replace")
    naive = os.path.normpath(os.path.join(str(efs_root), decoded.replace("\x00", "")))
    victim = None
    if naive.startswith(str(tmp_path) + os.sep) and not naive.startswith(str(efs_root) + os.sep):
        victim = naive
        os.makedirs(os.path.dirname(victim), exist_ok=True)
        with open(victim, "wb") as f:
            f.write(b"victim")
    before = all_files(tmp_path)
    caplog.set_level(logging.INFO, logger="sideload")

    result = sideload.handler(event(record(raw_key, event_name)), None)

    assert result == {"rejected": 1}
    assert all_files(tmp_path) == before
    if victim:
        with open(victim, "rb") as f:
            assert f.read() == b"victim"
    rejects = [r for r in caplog.records if r.name == "sideload"]
    assert len(rejects) == 1 and rejects[0].levelno == logging.WARNING
    assert "action=reject" in rejects[0].getMessage()
    # A created object is tagged `rejected` (so `pi-deploy sideload` can say why); a removed
    # one or a key that is not text is not tagged.
    if event_name.startswith("ObjectCreated") and raw_key != "images/%FF.png":
        (call,) = forbidden.tagged
        assert call["Bucket"] == BUCKET
        assert call["Key"] == urllib.parse.unquote_plus(raw_key)
        assert tags_of(call)[sideload.OUTCOME_TAG] == "rejected"
        assert tags_of(call)[sideload.DETAIL_TAG]
    else:
        assert forbidden.tagged == []


def test_hostile_key_creates_no_directories(monkeypatch, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    sideload.handler(event(record("images/%2e%2e/%2e%2e/evil/x")), None)
    assert not efs_root.exists()


def test_symlink_pointing_outside_is_rejected(s3, tmp_path, efs_root):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"keep me")
    (efs_root / "images").mkdir(parents=True)
    os.symlink(outside, efs_root / "images" / "evil")
    s3.put_object(Bucket=BUCKET, Key="images/evil/x.png", Body=b"payload")

    assert sideload.handler(event(created("images/evil/x.png")), None) == {"rejected": 1}
    assert sideload.handler(event(removed("images/evil/secret")), None) == {"rejected": 1}

    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"keep me"


def test_symlinked_root_is_fine(s3, tmp_path, monkeypatch):
    real_root = tmp_path / "real-efs"
    real_root.mkdir()
    link = tmp_path / "link-efs"
    os.symlink(real_root, link)
    monkeypatch.setenv("EFS_ROOT", str(link))
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"a")
    assert sideload.handler(event(created("images/a.png")), None) == {"copied": 1}
    assert (real_root / "images" / "a.png").read_bytes() == b"a"


def test_rejection_does_not_block_other_records(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="images/ok.png", Body=b"ok")
    result = sideload.handler(
        event(record("images/../../etc/passwd"), created("images/ok.png"), record("excel/x.xlsx")), None
    )
    assert result == {"rejected": 2, "copied": 1}
    assert all_files(efs_root) == ["images/ok.png"]


# ---------------------------------------------------------------- folder markers and other events


@pytest.mark.parametrize("key", ["images/", "images/sub/", "excel-data/", "keys/a/b/"])
def test_folder_markers_skipped(monkeypatch, efs_root, key):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    assert sideload.handler(event(created(key)), None) == {"skipped": 1}
    assert not efs_root.exists()


def test_folder_marker_removal_keeps_directory(monkeypatch, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    (efs_root / "images" / "sub").mkdir(parents=True)
    (efs_root / "images" / "sub" / "a.png").write_bytes(b"a")
    assert sideload.handler(event(removed("images/sub/")), None) == {"skipped": 1}
    assert (efs_root / "images" / "sub" / "a.png").exists()


def test_other_event_types_skipped(monkeypatch, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    result = sideload.handler(
        event(record("images/a.png", "ObjectRestore:Completed"), record("images/a.png", "s3:TestEvent")), None
    )
    assert result == {"skipped": 2}


def test_malformed_records_skipped(monkeypatch):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    assert sideload.handler({"Records": [{"eventName": "ObjectCreated:Put"}, "junk"]}, None) == {"skipped": 2}
    assert sideload.handler({}, None) == {}
    assert sideload.handler({"Records": []}, None) == {}


# ---------------------------------------------------------------- deletion


@pytest.mark.parametrize("event_name", ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated"])
def test_deletion_mirrored(s3, efs_root, event_name):
    s3.put_object(Bucket=BUCKET, Key="images/sub/gone.png", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="images/sub/stays.png", Body=b"y")
    sideload.handler(event(created("images/sub/gone.png"), created("images/sub/stays.png")), None)

    assert sideload.handler(event(record("images/sub/gone.png", event_name)), None) == {"deleted": 1}

    assert all_files(efs_root) == ["images/sub/stays.png"]


def test_deletion_of_missing_file_is_fine(monkeypatch, efs_root, caplog):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    caplog.set_level(logging.INFO, logger="sideload")
    (efs_root / "images").mkdir(parents=True)
    result = sideload.handler(event(removed("images/never-there.png"), removed("themes/no/dir/x.css")), None)
    assert result == {"absent": 2}
    assert [r.levelno for r in caplog.records if r.name == "sideload"] == [logging.INFO, logging.INFO]


def test_deletion_under_a_file_is_fine(monkeypatch, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    (efs_root / "images").mkdir(parents=True)
    (efs_root / "images" / "a.png").write_bytes(b"a")
    assert sideload.handler(event(removed("images/a.png/b")), None) == {"absent": 1}


def test_deletion_of_a_directory_is_refused(monkeypatch, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    (efs_root / "images" / "dir").mkdir(parents=True)
    (efs_root / "images" / "dir" / "a.png").write_bytes(b"a")
    assert sideload.handler(event(removed("images/dir")), None) == {"rejected": 1}
    assert (efs_root / "images" / "dir" / "a.png").exists()


def test_deleting_a_symlink_removes_the_link_only(monkeypatch, tmp_path, efs_root):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"keep")
    (efs_root / "images").mkdir(parents=True)
    os.symlink(outside, efs_root / "images" / "link.png")
    assert sideload.handler(event(removed("images/link.png")), None) == {"deleted": 1}
    assert outside.read_bytes() == b"keep"


# ---------------------------------------------------------------- streaming


def test_large_object_is_streamed_in_bounded_chunks(s3, efs_root, monkeypatch):
    size = 8 * MIB + 12345
    data = os.urandom(size)
    s3.put_object(Bucket=BUCKET, Key="excel-data/big.xlsx", Body=data)

    client = sideload._s3()
    original = client.get_object
    bodies = []

    def spy_get_object(**params):
        response = original(**params)
        response["Body"] = SpyBody(response["Body"])
        bodies.append(response["Body"])
        return response

    monkeypatch.setattr(client, "get_object", spy_get_object)

    assert sideload.handler(event(created("excel-data/big.xlsx", size=size)), None) == {"copied": 1}

    (body,) = bodies
    assert body.closed
    assert len(body.reads) >= size // sideload.CHUNK_SIZE
    for args, kwargs in body.reads:
        amt = args[0] if args else kwargs.get("amt")
        assert isinstance(amt, int) and 0 < amt <= sideload.CHUNK_SIZE, (args, kwargs)
    assert sideload.CHUNK_SIZE <= MIB
    target = efs_root / "excel-data" / "big.xlsx"
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_peak_memory_is_bounded(monkeypatch, efs_root):
    size = 64 * MIB
    monkeypatch.setattr(sideload, "_S3_CLIENT", FakeS3(size))
    tracemalloc.start()
    try:
        sideload.handler(event(created("images/huge.bin", size=size)), None)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert os.path.getsize(efs_root / "images" / "huge.bin") == size
    assert peak < 8 * MIB, "peak Python allocation %d bytes for a %d-byte object" % (peak, size)


# ---------------------------------------------------------------- failures


def test_s3_missing_object_raises(s3, efs_root):
    with pytest.raises(sideload.SideloadError) as info:
        sideload.handler(event(created("images/missing.png")), None)
    assert "images/missing.png" in str(info.value)
    assert isinstance(info.value.__cause__, ClientError)
    assert info.value.__cause__.response["Error"]["Code"] == "NoSuchKey"
    assert not efs_root.exists()


def test_s3_missing_bucket_raises(s3, efs_root):
    with pytest.raises(sideload.SideloadError, match="NoSuchBucket"):
        sideload.handler(event(created("images/a.png", bucket="no-such-bucket")), None)


def test_replace_failure_raises_and_leaves_no_temp_file(s3, efs_root, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"new")
    (efs_root / "images").mkdir(parents=True)
    (efs_root / "images" / "a.png").write_bytes(b"old")

    def failing_replace(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sideload.os, "replace", failing_replace)

    with pytest.raises(sideload.SideloadError, match="No space left"):
        sideload.handler(event(created("images/a.png")), None)

    assert os.listdir(efs_root / "images") == ["a.png"]
    assert (efs_root / "images" / "a.png").read_bytes() == b"old"


def test_write_failure_raises_and_leaves_no_temp_file(s3, efs_root, monkeypatch):
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"new content")
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, f):
            self._f = f

        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self):
            return self._f.fileno()

        def close(self):
            self._f.close()
            super().close()

    monkeypatch.setattr(sideload.os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))

    with pytest.raises(sideload.SideloadError, match="No space left"):
        sideload.handler(event(created("images/a.png")), None)
    assert os.listdir(efs_root / "images") == []


def test_stream_failure_midway_leaves_old_file_and_no_temp(monkeypatch, efs_root):
    (efs_root / "themes").mkdir(parents=True)
    (efs_root / "themes" / "t.css").write_bytes(b"old")
    monkeypatch.setattr(sideload, "_S3_CLIENT", FakeS3(4 * MIB, fail_after=2 * MIB))

    with pytest.raises(sideload.SideloadError, match="reset"):
        sideload.handler(event(created("themes/t.css")), None)

    assert os.listdir(efs_root / "themes") == ["t.css"]
    assert (efs_root / "themes" / "t.css").read_bytes() == b"old"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_raises(s3, efs_root):
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"x")
    (efs_root / "images").mkdir(parents=True)
    os.chmod(efs_root / "images", 0o555)
    try:
        with pytest.raises(sideload.SideloadError, match="PermissionError"):
            sideload.handler(event(created("images/a.png")), None)
        assert os.listdir(efs_root / "images") == []
    finally:
        os.chmod(efs_root / "images", 0o755)


def test_file_where_directory_is_needed_raises(s3, efs_root):
    (efs_root / "images").mkdir(parents=True)
    (efs_root / "images" / "sub").write_bytes(b"a file, not a directory")
    s3.put_object(Bucket=BUCKET, Key="images/sub/a.png", Body=b"x")
    with pytest.raises(sideload.SideloadError):
        sideload.handler(event(created("images/sub/a.png")), None)


def test_failures_reported_after_all_records(s3, efs_root, caplog):
    caplog.set_level(logging.INFO, logger="sideload")
    s3.put_object(Bucket=BUCKET, Key="images/one.png", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="images/three.png", Body=b"3")

    with pytest.raises(sideload.SideloadError) as info:
        sideload.handler(
            event(
                created("images/one.png"),
                created("images/missing-a.png"),
                record("images/%2e%2e/x"),
                created("images/three.png"),
                created("themes/missing-b.css"),
            ),
            None,
        )

    message = str(info.value)
    assert message.startswith("2 of 5 record(s) failed")
    assert "images/missing-a.png" in message and "themes/missing-b.css" in message
    assert "%2e%2e" not in message  # a rejected key is not a failure
    assert all_files(efs_root) == ["images/one.png", "images/three.png"]
    levels = [r.levelno for r in caplog.records if r.name == "sideload"]
    assert levels == [logging.INFO, logging.ERROR, logging.WARNING, logging.INFO, logging.ERROR]


# ---------------------------------------------------------------- modes, temp files, /tmp


def test_file_and_directory_modes(s3, efs_root, tmp_path):
    old_umask = os.umask(0o077)
    try:
        s3.put_object(Bucket=BUCKET, Key="keys/a/b/c.key", Body=b"k")
        sideload.handler(event(created("keys/a/b/c.key")), None)
    finally:
        os.umask(old_umask)
    assert mode(efs_root / "keys" / "a" / "b" / "c.key") == 0o644
    for d in [efs_root, efs_root / "keys", efs_root / "keys" / "a", efs_root / "keys" / "a" / "b"]:
        assert mode(d) == 0o755, d
    # the root's missing ancestors are created 0755 as well
    assert mode(tmp_path / "efs") == 0o755
    assert mode(tmp_path / "efs" / "var") == 0o755


def test_overwrite_resets_mode(s3, efs_root):
    (efs_root / "images").mkdir(parents=True)
    (efs_root / "images" / "a.png").write_bytes(b"old")
    os.chmod(efs_root / "images" / "a.png", 0o777)
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"new")
    sideload.handler(event(created("images/a.png")), None)
    assert mode(efs_root / "images" / "a.png") == 0o644


def test_existing_directory_modes_untouched(s3, efs_root):
    (efs_root / "images").mkdir(parents=True)
    os.chmod(efs_root / "images", 0o775)
    s3.put_object(Bucket=BUCKET, Key="images/a.png", Body=b"x")
    sideload.handler(event(created("images/a.png")), None)
    assert mode(efs_root / "images") == 0o775


def test_nothing_but_the_target_is_left(s3, efs_root):
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key="svg/i%d.svg" % i, Body=b"<svg/>")
    sideload.handler(event(*[created("svg/i%d.svg" % i) for i in range(3)]), None)
    assert sorted(os.listdir(efs_root / "svg")) == ["i0.svg", "i1.svg", "i2.svg"]
    assert not any(name.startswith(".sideload-") for _d, _s, files in os.walk(efs_root) for name in files)


def test_temp_file_is_created_next_to_the_target_and_not_in_tmp(s3, efs_root, tmp_path, monkeypatch):
    fake_tmp = tmp_path / "system-tmp"
    fake_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fake_tmp))
    monkeypatch.setenv("TMPDIR", str(fake_tmp))
    mkstemp_calls = []
    real_mkstemp = tempfile.mkstemp

    def spy_mkstemp(*args, **kwargs):
        mkstemp_calls.append(kwargs)
        fd, path = real_mkstemp(*args, **kwargs)
        mkstemp_calls[-1]["path"] = path
        return fd, path

    monkeypatch.setattr(sideload.tempfile, "mkstemp", spy_mkstemp)
    s3.put_object(Bucket=BUCKET, Key="images/deep/t.png", Body=b"t" * 1000)
    real_tmp_before = {n for n in os.listdir("/tmp") if n.startswith(".sideload-")}

    sideload.handler(event(created("images/deep/t.png")), None)

    (call,) = mkstemp_calls
    assert call["dir"] == str(efs_root / "images" / "deep")
    assert os.path.basename(call["path"]).startswith(".sideload-")
    assert os.listdir(fake_tmp) == []
    assert {n for n in os.listdir("/tmp") if n.startswith(".sideload-")} == real_tmp_before


# ---------------------------------------------------------------- logging


def test_one_log_line_per_object_without_contents(s3, efs_root, caplog):
    caplog.set_level(logging.INFO, logger="sideload")
    secret = b"TOP-SECRET-CONTENT-4f1d"
    s3.put_object(Bucket=BUCKET, Key="keys/licence.key", Body=secret)
    sideload.handler(
        event(created("keys/licence.key"), removed("keys/licence.key"), created("images/"), record("excel/x")),
        None,
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "sideload"]
    assert len(lines) == 4
    assert lines[0] == "action=copy bucket='%s' key='keys/licence.key' size=%d" % (BUCKET, len(secret))
    assert lines[1].startswith("action=delete bucket='%s' key='keys/licence.key'" % BUCKET)
    assert lines[2].startswith("action=skip") and "folder marker" in lines[2]
    assert lines[3].startswith("action=reject") and "excel/x" in lines[3]
    assert not any(secret.decode() in line for line in lines)


def test_control_characters_in_keys_do_not_forge_log_lines(monkeypatch, caplog):
    monkeypatch.setattr(sideload, "_S3_CLIENT", ForbiddenS3())
    caplog.set_level(logging.INFO, logger="sideload")
    sideload.handler(event(record("images/a%0Aaction%3Dcopy+key%3Dfake")), None)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "sideload"]
    assert "\n" not in line


# ---------------------------------------------------------------- configuration and vendor defects


def test_default_efs_root(monkeypatch):
    monkeypatch.delenv("EFS_ROOT")
    assert sideload._efs_root() == "/mnt/efs/var/panintelligence"


def test_client_is_created_lazily_and_cached(s3):
    assert sideload._S3_CLIENT is None
    first = sideload._s3()
    assert sideload._s3() is first


def test_vendor_defects_absent(monkeypatch, efs_root):
    # Folder list matches the instance links; the vendor's "excel" is not accepted.
    assert set(sideload.ALLOWED_FOLDERS) == {"images", "themes", "excel-data", "svg", "keys"}
    assert "excel" not in sideload.ALLOWED_FOLDERS
    monkeypatch.setattr(sideload, "_S3_CLIENT", FakeS3(10))
    assert sideload.handler(event(created("excel/report.xlsx")), None) == {"rejected": 1}
    assert sideload.handler(event(created("excel-data/report.xlsx")), None) == {"copied": 1}
    # Files are not world-writable (the vendor copied everything 0777).
    assert mode(efs_root / "excel-data" / "report.xlsx") == 0o644
    assert mode(efs_root / "excel-data") == 0o755
    # No X-Ray: the handler does not import or patch aws_xray_sdk.
    with open(sideload.__file__, encoding="utf-8") as f:
        assert "xray" not in f.read().lower()


# ---------------------------------------------------------------- the outcome tags


TAG_VALUE = __import__("re").compile(r"^[A-Za-z0-9 _.:/=+\-@]*$")


def object_tags(s3, key):
    return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}


def test_a_copied_object_is_tagged_with_its_outcome_and_etag(s3, efs_root):
    etag = s3.put_object(Bucket=BUCKET, Key="images/logo.png", Body=b"png")["ETag"].strip('"')
    assert sideload.handler(event(created("images/logo.png")), None) == {"copied": 1}
    assert object_tags(s3, "images/logo.png") == {sideload.OUTCOME_TAG: "copied", sideload.ETAG_TAG: etag}


def test_a_rejection_by_the_lambda_is_tagged_with_the_reason(s3, tmp_path, efs_root):
    outside = tmp_path / "outside"
    outside.mkdir()
    (efs_root / "images").mkdir(parents=True)
    os.symlink(outside, efs_root / "images" / "evil")
    etag = s3.put_object(Bucket=BUCKET, Key="images/evil/x.png", Body=b"p")["ETag"].strip('"')
    rec = created("images/evil/x.png")
    rec["s3"]["object"]["eTag"] = etag

    assert sideload.handler(event(rec), None) == {"rejected": 1}

    tags = object_tags(s3, "images/evil/x.png")
    assert tags[sideload.OUTCOME_TAG] == "rejected"
    assert tags[sideload.ETAG_TAG] == etag
    assert tags[sideload.DETAIL_TAG].startswith("resolves outside ")
    assert os.listdir(outside) == []


def test_a_failed_copy_is_tagged_with_the_error_line(s3, efs_root):
    (efs_root / "images").mkdir(parents=True)
    (efs_root / "images" / "sub").write_bytes(b"a file where a directory is needed")
    s3.put_object(Bucket=BUCKET, Key="images/sub/a.png", Body=b"x")

    with pytest.raises(sideload.SideloadError):
        sideload.handler(event(created("images/sub/a.png")), None)

    tags = object_tags(s3, "images/sub/a.png")
    assert tags[sideload.OUTCOME_TAG] == "failed"
    assert tags[sideload.DETAIL_TAG].split(":")[0] in ("FileExistsError", "NotADirectoryError")
    assert TAG_VALUE.match(tags[sideload.DETAIL_TAG])


def test_a_gone_object_is_neither_tagged_nor_logged_twice(s3, efs_root, caplog):
    caplog.set_level(logging.INFO, logger="sideload")
    with pytest.raises(sideload.SideloadError):
        sideload.handler(event(created("images/missing.png")), None)
    assert [r.levelno for r in caplog.records if r.name == "sideload"] == [logging.ERROR]


def test_a_tagging_error_is_logged_and_keeps_the_outcome(monkeypatch, efs_root, caplog):
    class NoTagging(FakeS3):
        def put_object_tagging(self, **params):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "PutObjectTagging")

    monkeypatch.setattr(sideload, "_S3_CLIENT", NoTagging(3))
    caplog.set_level(logging.INFO, logger="sideload")
    assert sideload.handler(event(created("images/a.png")), None) == {"copied": 1}
    assert (efs_root / "images" / "a.png").read_bytes() == b"xxx"
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "sideload"]
    assert lines[0][0] == logging.INFO and lines[0][1].startswith("action=copy")
    assert lines[1][0] == logging.WARNING and lines[1][1].startswith("action=tag-failed")
    assert "AccessDenied" in lines[1][1]


def test_the_role_needs_only_get_object_and_put_object_tagging(monkeypatch, efs_root):
    """The Lambda's inline policy (src/core/policy.rs) grants s3:GetObject(Version) and
    s3:PutObjectTagging only: every S3 call of a copy, a rejection and a failure is one of those."""
    used = []

    class Spy(FakeS3):
        def __getattribute__(self, name):
            if not name.startswith("_") and name not in ("total", "fail_after", "calls", "tagged"):
                used.append(name)
            return object.__getattribute__(self, name)

    monkeypatch.setattr(sideload, "_S3_CLIENT", Spy(3))
    sideload.handler(event(created("images/a.png"), record("images/%2e%2e/x"), removed("images/a.png")), None)
    (efs_root / "themes").mkdir(parents=True)
    (efs_root / "themes" / "dir").write_bytes(b"file")
    with pytest.raises(sideload.SideloadError):
        sideload.handler(event(created("themes/dir/x.css")), None)
    assert set(used) == {"get_object", "put_object_tagging"}


def test_deletions_are_not_tagged(monkeypatch, efs_root):
    forbidden = ForbiddenS3()
    monkeypatch.setattr(sideload, "_S3_CLIENT", forbidden)
    assert sideload.handler(event(removed("images/a.png")), None) == {"absent": 1}
    assert forbidden.tagged == []


@pytest.mark.parametrize(
    "text",
    [
        "empty, '.' or '..' path segment",
        "FileExistsError: [Errno 17] File exists: '/mnt/efs/images/sub'",
        "not in an allowed folder (images, themes, excel-data, svg, keys)",
        "caf\u00e9 \u2603 \x00\n\t<>\"|?*%&$#!~`^{}[];,",
        "x" * 1000,
    ],
)
def test_tag_values_hold_only_what_s3_accepts(text):
    value = sideload._tag_value(text)
    assert TAG_VALUE.match(value), value
    assert len(value) <= sideload.TAG_VALUE_MAX
    assert "  " not in value and value == value.strip()


def test_tag_values_stay_readable():
    assert sideload._tag_value("empty, '.' or '..' path segment") == "empty . or .. path segment"
    assert (
        sideload._tag_value("FileExistsError: [Errno 17] File exists: '/mnt/efs/images/sub'")
        == "FileExistsError: Errno 17 File exists: /mnt/efs/images/sub"
    )


# ---------------------------------------------------------------- the rules pi-deploy shares

KEY_RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "key_rules.json")


def test_key_rules_shared_with_pi_deploy():
    """lambda/tests/key_rules.json is what `pi-deploy sideload` checks keys against before any
    upload (src/core/sideload.rs reads the same file in its unit test)."""
    with open(KEY_RULES, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    assert len(cases) >= 20
    for case in cases:
        if case["reason"] is None:
            sideload._validate_key(case["key"])
        else:
            with pytest.raises(sideload.RejectedKey) as info:
                sideload._validate_key(case["key"])
            assert str(info.value) == case["reason"], case["key"]
