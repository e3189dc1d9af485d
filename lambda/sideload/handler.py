"""Side-load Lambda: mirror the resources bucket onto the dashboard's EFS.

S3 invokes this function for ``ObjectCreated:*`` and ``ObjectRemoved:*`` events
on the allowed folders. Each created object is streamed from S3 into
``$EFS_ROOT/<key>`` (default ``/mnt/efs/var/panintelligence``); each removed
object is deleted there.

Contract (see lambda/README.md):

* Keys are URL-decoded once (``unquote_plus``: ``+`` is a space, ``%2B`` a plus).
* Only keys under ``images/``, ``themes/``, ``excel-data/``, ``svg/`` and
  ``keys/`` are accepted. Keys with ``.``/``..``/empty segments, absolute keys,
  backslashes, NUL or other control characters, and keys that resolve outside
  the root (e.g. through a symlink) are rejected: logged and skipped, never
  raised, because retrying a hostile key can never succeed.
* Keys ending in ``/`` (console "folders") are skipped.
* A file is written to a temp file in the target's own directory
  (``.sideload-*``), fsync'ed, chmod 0644 and renamed onto the target, so a
  reader never sees half a file. Directories are created 0755. Nothing is
  written to /tmp. The object is read in bounded chunks, never whole.
* A failed copy (S3 error, write error) is raised so the invocation fails, the
  error shows in CloudWatch and Lambda's asynchronous retries apply. When an
  event holds several records, every record is processed and a single
  ``SideloadError`` listing all failures is raised at the end, so one bad object
  does not keep the others from being copied. A retry re-runs every record of the
  event; that is safe because each action is idempotent (rewrite the same
  object, delete an already-deleted file).
* After each created object is handled, the outcome is written as the object's
  tags (the only S3 write the role may make: ``s3:PutObjectTagging`` on the
  bucket's objects), so ``pi-deploy sideload`` can print a receipt without
  reading EFS: ``pi-deploy:sideload`` = ``copied``/``rejected``/``failed``,
  ``pi-deploy:etag`` = the ETag of the object version the outcome is about,
  ``pi-deploy:detail`` = the reason or the error line (reduced to the characters
  S3 allows in a tag value). The tag set is replaced. An object that is gone is
  not tagged; any other tagging error is logged and never changes the outcome.
"""

from __future__ import annotations

import logging
import os
import string
import tempfile
import urllib.parse

import boto3
from botocore.config import Config

__all__ = ["handler", "SideloadError", "ALLOWED_FOLDERS", "CHUNK_SIZE", "OUTCOME_TAG", "ETAG_TAG", "DETAIL_TAG"]

ALLOWED_FOLDERS = ("images", "themes", "excel-data", "svg", "keys")
DEFAULT_EFS_ROOT = "/mnt/efs/var/panintelligence"
CHUNK_SIZE = 1024 * 1024  # bytes per read from the S3 body
FILE_MODE = 0o644
DIR_MODE = 0o755
TEMP_PREFIX = ".sideload-"
# The outcome of each created object, as its tags (read by `pi-deploy sideload`).
OUTCOME_TAG = "pi-deploy:sideload"
ETAG_TAG = "pi-deploy:etag"
DETAIL_TAG = "pi-deploy:detail"
TAG_VALUE_MAX = 256
# What every S3 implementation accepts in a tag value (AWS allows any Unicode letter
# or number too; some emulators only ASCII).
_TAG_SAFE = frozenset(string.ascii_letters + string.digits + " _.:/=+-@")
# Codes meaning the object is gone: nothing to tag, and nobody waits for it.
_GONE = frozenset(("NoSuchKey", "404", "NotFound"))

logger = logging.getLogger("sideload")
logger.setLevel(logging.INFO)

# Created on first use (not at import) so tests can replace it and moto's mock
# can intercept it; reused across warm invocations.
_S3_CLIENT = None


class SideloadError(Exception):
    """One or more records of an event could not be mirrored."""


class RejectedKey(ValueError):
    """A key that must never be written: skipped, not retried."""


def _s3():
    global _S3_CLIENT
    if _S3_CLIENT is None:
        _S3_CLIENT = boto3.client("s3", config=Config(retries={"mode": "standard"}))
    return _S3_CLIENT


def _efs_root() -> str:
    return os.environ.get("EFS_ROOT") or DEFAULT_EFS_ROOT


def _decode_key(raw_key: str) -> str:
    # S3 event keys are form-encoded: "+" is a space, "%2B" a literal plus.
    return urllib.parse.unquote_plus(raw_key, encoding="utf-8", errors="strict")


def _within(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:
        return False


def _validate_key(key: str) -> None:
    """Raise RejectedKey unless ``key`` is a plain relative path in an allowed folder."""
    if not key:
        raise RejectedKey("empty key")
    if "\\" in key:
        raise RejectedKey("backslash in key")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise RejectedKey("NUL or control character in key")
    if key.startswith("/"):
        raise RejectedKey("absolute key")
    parts = key.split("/")
    if parts[0] not in ALLOWED_FOLDERS:
        raise RejectedKey("not in an allowed folder (%s)" % ", ".join(ALLOWED_FOLDERS))
    if len(parts) < 2:
        raise RejectedKey("folder name without an object name")
    for part in parts:
        if part in ("", ".", ".."):
            raise RejectedKey("empty, '.' or '..' path segment")


def _resolve_target(root: str, key: str) -> str:
    """The absolute file path for a validated key; RejectedKey if it escapes the root.

    The parent directory is resolved with realpath (so a symlink inside the tree
    cannot point the write elsewhere); the last component is kept as is: replace
    and unlink act on a symlink itself, never on what it points to.
    """
    root_real = os.path.realpath(root)
    joined = os.path.join(root_real, *key.split("/"))
    parent_real = os.path.realpath(os.path.dirname(joined))
    target = os.path.join(parent_real, os.path.basename(joined))
    if not _within(root_real, parent_real) or target == root_real:
        raise RejectedKey("resolves outside %s" % root_real)
    return target


def _make_dirs(path: str) -> None:
    """Create ``path`` and missing parents with mode 0755 (not masked by umask)."""
    missing = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise
            continue  # created concurrently by another invocation: not ours to chmod
        os.chmod(directory, DIR_MODE)


def _copy_object(s3, bucket: str, key: str, version_id: str | None, target: str, root: str) -> tuple[int, str]:
    """Stream s3://bucket/key into ``target`` atomically; return the byte count and the ETag."""
    params = {"Bucket": bucket, "Key": key}
    # "null" is the version id of objects written while versioning was off or
    # suspended; GetObject with a VersionId needs s3:GetObjectVersion.
    if version_id and version_id != "null":
        params["VersionId"] = version_id
    response = s3.get_object(**params)
    etag = str(response.get("ETag") or "").strip('"')
    body = response["Body"]
    try:
        directory = os.path.dirname(target)
        _make_dirs(directory)
        # Re-check after creating directories: a symlink may have appeared meanwhile.
        if not _within(os.path.realpath(root), os.path.realpath(directory)):
            raise RejectedKey("resolves outside %s" % os.path.realpath(root))
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=TEMP_PREFIX)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = body.read(CHUNK_SIZE)
                    if not chunk:
                        break
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), FILE_MODE)
            os.replace(tmp_path, target)
        except BaseException:
            try:
                os.unlink(tmp_path)
            except FileNotFoundError:
                pass
            raise
        return size, etag
    finally:
        body.close()


def _delete_file(target: str) -> bool:
    """Delete ``target``; return False if it did not exist."""
    try:
        os.unlink(target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except IsADirectoryError:
        # A directory of the same name (created for other keys): not ours to remove.
        raise RejectedKey("target is a directory") from None
    return True


def _tag_value(text) -> str:
    """``text`` reduced to what S3 accepts in a tag value: other characters dropped,
    runs of spaces folded, at most TAG_VALUE_MAX characters."""
    kept = "".join(c for c in str(text) if c in _TAG_SAFE)
    return " ".join(kept.split())[:TAG_VALUE_MAX]


def _report(bucket: str, key: str, outcome: str, etag: str | None, detail: str = "") -> None:
    """Tag s3://bucket/key with the outcome of its copy (never raises)."""
    tags = [{"Key": OUTCOME_TAG, "Value": outcome}]
    if etag:
        tags.append({"Key": ETAG_TAG, "Value": _tag_value(str(etag).strip('"'))})
    if detail:
        tags.append({"Key": DETAIL_TAG, "Value": _tag_value(detail)})
    try:
        _s3().put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tags})
    except Exception as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in _GONE:
            return
        logger.warning("action=tag-failed bucket=%r key=%r error=%s: %s", bucket, key, type(exc).__name__, exc)


def _process_record(record, root: str) -> str:
    """Mirror one S3 event record and return the outcome.

    Outcomes: "copied", "deleted", "absent", "skipped", "rejected". Raises only
    for a failure worth retrying (S3 or file system error).
    """
    if not isinstance(record, dict):
        logger.warning("action=skip reason=%r", "record is not an object")
        return "skipped"
    event_name = str(record.get("eventName") or "")
    try:
        bucket = record["s3"]["bucket"]["name"]
        raw_key = record["s3"]["object"]["key"]
        version_id = record["s3"]["object"].get("versionId")
        event_etag = record["s3"]["object"].get("eTag")
    except (KeyError, TypeError, AttributeError):
        logger.warning("action=skip event=%r reason=%r", event_name, "not an S3 object record")
        return "skipped"

    try:
        key = _decode_key(raw_key)
    except (UnicodeDecodeError, TypeError):
        logger.warning("action=reject bucket=%r key=%r reason=%r", bucket, raw_key, "key is not UTF-8 text")
        return "rejected"

    if event_name.startswith("ObjectCreated:"):
        action = "copy"
    elif event_name.startswith("ObjectRemoved:"):
        action = "delete"
    else:
        logger.info("action=skip bucket=%r key=%r reason=%r", bucket, key, "event %s not handled" % event_name)
        return "skipped"

    if key.endswith("/"):
        logger.info("action=skip bucket=%r key=%r reason=%r", bucket, key, "folder marker")
        return "skipped"

    try:
        _validate_key(key)
        target = _resolve_target(root, key)
        if action == "copy":
            size, etag = _copy_object(_s3(), bucket, key, version_id, target, root)
            logger.info("action=copy bucket=%r key=%r size=%d", bucket, key, size)
            _report(bucket, key, "copied", etag or event_etag)
            return "copied"
        existed = _delete_file(target)
        logger.info(
            "action=delete bucket=%r key=%r result=%s", bucket, key, "deleted" if existed else "already absent"
        )
        return "deleted" if existed else "absent"
    except RejectedKey as exc:
        logger.warning("action=reject bucket=%r key=%r reason=%r", bucket, key, str(exc))
        if action == "copy":
            _report(bucket, key, "rejected", event_etag, str(exc))
        return "rejected"
    except Exception as exc:
        logger.error("action=%s-failed bucket=%r key=%r error=%s: %s", action, bucket, key, type(exc).__name__, exc)
        if action == "copy":
            _report(bucket, key, "failed", event_etag, "%s: %s" % (type(exc).__name__, exc))
        raise


def handler(event, context):
    """Lambda entry point for S3 event notifications.

    Returns the count of each outcome, e.g. {"copied": 2, "rejected": 1}.
    Raises SideloadError, after processing every record, if any copy or delete
    failed.
    """
    root = _efs_root()
    records = (event or {}).get("Records") or []
    failures = []
    summary = {}
    for record in records:
        try:
            outcome = _process_record(record, root)
        except Exception as exc:  # already logged; collected and raised below
            obj = record["s3"]["object"]
            failures.append((record["s3"]["bucket"]["name"], obj["key"], exc))
            outcome = "failed"
        summary[outcome] = summary.get(outcome, 0) + 1
    if failures:
        detail = "; ".join("s3://%s/%s: %s: %s" % (b, k, type(e).__name__, e) for b, k, e in failures)
        raise SideloadError(
            "%d of %d record(s) failed: %s" % (len(failures), len(records), detail)
        ) from failures[0][2]
    return summary
