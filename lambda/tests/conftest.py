"""Fixtures for the side-load Lambda tests.

A temp directory stands in for the EFS mount (via EFS_ROOT) and S3 is moto's
in-process mock. Nothing here talks to AWS or to a moto server: any endpoint,
profile or credentials from the environment are masked for every test.
"""

from __future__ import annotations

import os
import sys

import boto3
import pytest
from moto import mock_aws

SIDELOAD_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sideload")
if SIDELOAD_DIR not in sys.path:
    sys.path.insert(0, SIDELOAD_DIR)

import handler as sideload  # noqa: E402  (needs the path above)

REGION = "eu-west-1"
BUCKET = "pi-test-resources"  # test_handler.py uses the same name


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """Fake credentials, no custom endpoint, a fresh client cache, EFS_ROOT in tmp_path."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_SECURITY_TOKEN",
        "AWS_CA_BUNDLE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    root = tmp_path / "efs" / "var" / "panintelligence"
    monkeypatch.setenv("EFS_ROOT", str(root))
    monkeypatch.setattr(sideload, "_S3_CLIENT", None)
    # boto3's default session caches a region/credential resolver; start clean.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    yield


@pytest.fixture
def efs_root(tmp_path):
    """The directory the handler writes to (not created in advance)."""
    return tmp_path / "efs" / "var" / "panintelligence"


@pytest.fixture
def s3():
    """A moto-backed S3 client with an empty bucket named BUCKET."""
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield client
