#!/usr/bin/env python3
"""Prove that tests/emu/moto_launcher.py's fixes are still needed, and that they work.

Run with the emulator venv's python (scripts/test.sh does this):

    python tests/emu/check_launcher_fix.py [--endpoint http://127.0.0.1:PORT]

The scenario is the blue/green upgrade path: create a launch template whose
v1 has base64 UserData, create v2 (again with base64 UserData), then create an
Auto Scaling group from v2 and read the launched instance's user data back.

It runs in-process with moto's ``mock_aws`` twice:

1. without the patch: on moto 5.2.5 this fails inside CreateAutoScalingGroup
   (``assert user_data is None or isinstance(user_data, Base64EncodedString)``
   in moto/ec2/models/launch_templates.py; a moto *server* answers that with
   HTTP 500). If it passes, moto has fixed the bug and the wrapper can go.
2. with ``moto_launcher.apply_patch()``: this must pass.

With ``--endpoint URL`` it also runs the scenario against that running server
(which should be moto started through moto_launcher.py, as scripts/emu-start.sh
does), proving the launcher applied the fix in the server process.

To see the failure against a real server without the patch:

    CACHE=${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}
    MOTO_ENABLE_AMI_VALIDATION=true "$CACHE/venv/bin/moto_server" -H 127.0.0.1 -p 5055 &
    "$CACHE/venv/bin/python" tests/emu/check_launcher_fix.py --endpoint http://127.0.0.1:5055
    # -> "server check: FAILED ... HTTP 500" and exit status 1
    kill %1

A second scenario covers the GetBucketVersioning fix: create a bucket, turn
versioning on and check that the raw XML answer of GetBucketVersioning has S3's
root element ``VersioningConfiguration`` (unpatched moto 5.2.5 answers
``GetBucketVersioningResponse``, which the AWS SDK for Rust rejects; boto3's
parsed answer hides it, so the check reads the raw body).

A scenario covers S3's conditional writes: writers racing to PutObject with ``If-Match``
on one ETag, of whom exactly one may win (moto 5.2.5 checks, then writes, unlocked).

A fourth scenario covers the AWS Backup jobs the launcher answers (moto 5.2.5 has none):
StartBackupJob of a file system into the `Default` vault (the same IdempotencyToken answers
the same job), DescribeBackupJob from CREATED/RUNNING to COMPLETED with its recovery point,
ListRecoveryPointsByResource and ListTags of the recovery point; StartRestoreJob /
DescribeRestoreJob (items into the same file system, or a new file system), the vault
access policy calls, and EFS PutBackupPolicy on the restored file system.

Exit status: 0 when every patched run passes (whether or not the fix is still
needed; the answer is printed as "launcher fix still needed: yes/no"), 1 when
a patched run fails.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import traceback
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

REGION = "eu-west-1"
# Same AMI the demo uses; must be in moto's preloaded eu-west-1 set.
DEFAULT_AMI = "ami-0d31d4f8d69d7977a"


def demo_ami() -> str:
    env_file = REPO / "scripts" / "emu-amis.env"
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key == "PI_DEMO_AMI_A" and value:
                return value.strip("'\"")
    return DEFAULT_AMI


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def scenario(endpoint: str | None) -> None:
    """Raise on failure. Cleans up what it created (matters for a live server)."""
    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    ec2 = boto3.client("ec2", **kwargs)
    asg = boto3.client("autoscaling", **kwargs)

    suffix = uuid.uuid4().hex[:8]
    lt_name = f"launcher-check-{suffix}"
    asg_name = f"launcher-check-{suffix}"
    ami = demo_ami()
    data = {"ImageId": ami, "InstanceType": "t3.medium"}
    v2_user_data = f"#!/bin/bash\necho v2 {suffix}\n"

    lt_id = ec2.create_launch_template(
        LaunchTemplateName=lt_name,
        LaunchTemplateData={**data, "UserData": b64("#!/bin/bash\necho v1\n")},
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg_created = False
    try:
        version = ec2.create_launch_template_version(
            LaunchTemplateId=lt_id,
            SourceVersion="1",
            LaunchTemplateData={**data, "UserData": b64(v2_user_data)},
        )["LaunchTemplateVersion"]["VersionNumber"]
        assert version == 2, f"expected version 2, got {version}"

        # moto 5.2.5 without the fix: AssertionError in-process, HTTP 500 on a server.
        asg.create_auto_scaling_group(
            AutoScalingGroupName=asg_name,
            LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "2"},
            MinSize=1,
            MaxSize=1,
            DesiredCapacity=1,
            AvailabilityZones=[f"{REGION}a"],
        )
        asg_created = True
        groups = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[asg_name])
        instances = groups["AutoScalingGroups"][0]["Instances"]
        assert len(instances) == 1, f"expected 1 instance, got {instances}"
        instance_id = instances[0]["InstanceId"]
        attr = ec2.describe_instance_attribute(
            InstanceId=instance_id, Attribute="userData"
        )
        got = base64.b64decode(attr["UserData"]["Value"]).decode()
        assert got == v2_user_data, f"instance user data {got!r} != {v2_user_data!r}"
    finally:
        if asg_created:
            try:
                asg.delete_auto_scaling_group(
                    AutoScalingGroupName=asg_name, ForceDelete=True
                )
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        try:
            ec2.delete_launch_template(LaunchTemplateId=lt_id)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def versioning_scenario(endpoint: str | None) -> None:
    """Raise unless GetBucketVersioning answers with S3's root element."""
    import xml.etree.ElementTree as ET

    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    s3 = boto3.client("s3", **kwargs)
    bucket = f"launcher-check-{uuid.uuid4().hex[:8]}"
    raw: list[bytes] = []

    def keep_body(http_response: Any, **_: Any) -> None:
        raw.append(http_response.content)

    s3.meta.events.register("after-call.s3.GetBucketVersioning", keep_body)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
        assert status == "Enabled", f"versioning status {status!r}"
        root = ET.fromstring(raw[-1]).tag.rpartition("}")[2]
        assert root == "VersioningConfiguration", f"GetBucketVersioning root element {root!r}"
    finally:
        try:
            s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def conditional_write_scenario(endpoint: str | None) -> None:
    """Raise unless, of writers racing to PutObject with `If-Match` on one ETag, exactly one
    wins each round. In process, moto's write of the object is slowed by 0.3 s, so every
    writer's condition check falls inside the first one's write (unpatched moto 5.2.5 then
    lets them all win); against a server, rounds of unslowed racers."""
    import threading

    import boto3
    from botocore.exceptions import ClientError
    from moto.s3.models import S3Backend

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    s3 = boto3.client("s3", **kwargs)
    bucket = f"launcher-check-{uuid.uuid4().hex[:8]}"
    key = "state.json"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    original = S3Backend.put_object
    if endpoint is None:

        def slow_put(self: Any, *args: Any, **kw: Any) -> Any:
            import time

            time.sleep(0.3)
            return original(self, *args, **kw)

        S3Backend.put_object = slow_put  # type: ignore[method-assign]
    try:
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"v0")["ETag"]
        writers = 4
        for round_ in range(1 if endpoint is None else 20):
            start = threading.Barrier(writers)
            won: list[str] = []
            refused: list[str] = []

            def write(i: int) -> None:
                c = boto3.client("s3", **kwargs)
                start.wait()
                try:
                    out = c.put_object(Bucket=bucket, Key=key, Body=f"r{round_}w{i}".encode(), IfMatch=etag)
                    won.append(out["ETag"])
                except ClientError as e:
                    refused.append(e.response["Error"]["Code"])

            threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(won) == 1, f"round {round_}: {len(won)} writers won a PutObject If-Match on one ETag ({refused=})"
            etag = won[0]
    finally:
        S3Backend.put_object = original  # type: ignore[method-assign]
        try:
            for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
                s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            s3.delete_bucket(Bucket=bucket)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def subnet_group_scenario(endpoint: str | None) -> None:
    """Raise unless a DB subnet group is still there after ModifyDBSubnetGroup."""
    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    ec2 = boto3.client("ec2", **kwargs)
    rds = boto3.client("rds", **kwargs)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=zones[i % 2])["Subnet"]["SubnetId"]
        for i in range(3)
    ]
    name = f"launcher-check-{uuid.uuid4().hex[:8]}"
    rds.create_db_subnet_group(DBSubnetGroupName=name, DBSubnetGroupDescription="check", SubnetIds=subnets[:2])
    try:
        rds.modify_db_subnet_group(DBSubnetGroupName=name, SubnetIds=[subnets[0], subnets[2]])
        groups = rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"]
        have = sorted(s["SubnetIdentifier"] for s in groups[0]["Subnets"])
        assert have == sorted([subnets[0], subnets[2]]), f"subnets after the modify: {have}"
    finally:
        try:
            rds.delete_db_subnet_group(DBSubnetGroupName=name)
        except Exception:  # noqa: BLE001 - best-effort cleanup (gone already when unpatched)
            pass
        for s in subnets:
            ec2.delete_subnet(SubnetId=s)
        ec2.delete_vpc(VpcId=vpc)


def version_scenario(endpoint: str | None) -> None:
    """A group pointed at version 2 while the default stays 1 launches from 2: the instance
    runs version 2's instance type, carries EC2's version tag 2, and the group reports 2 for
    it and 1 for the instance launched before. (No user data: that is the first fix's.)"""
    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    ec2 = boto3.client("ec2", **kwargs)
    asg = boto3.client("autoscaling", **kwargs)
    suffix = uuid.uuid4().hex[:8]
    name = f"version-check-{suffix}"
    ami = demo_ami()
    lt_id = ec2.create_launch_template(
        LaunchTemplateName=name,
        LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.medium"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    created = False
    try:
        ec2.create_launch_template_version(
            LaunchTemplateId=lt_id,
            LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.large"},
        )
        asg.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "1"},
            MinSize=1,
            MaxSize=2,
            DesiredCapacity=1,
            AvailabilityZones=[f"{REGION}a"],
        )
        created = True
        first = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]["Instances"][0]
        asg.update_auto_scaling_group(
            AutoScalingGroupName=name, LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "2"}
        )
        asg.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=2)
        group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        versions = {i["InstanceId"]: i["LaunchTemplate"]["Version"] for i in group["Instances"]}
        assert versions.get(first["InstanceId"]) == "1", f"the first instance: {versions}"
        new = [i for i in versions if i != first["InstanceId"]]
        assert len(new) == 1 and versions[new[0]] == "2", f"the new instance: {versions}"
        inst = ec2.describe_instances(InstanceIds=new)["Reservations"][0]["Instances"][0]
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        assert tags.get("aws:ec2launchtemplate:version") == "2", f"EC2's version tag: {tags}"
        assert inst["InstanceType"] == "t3.large", inst["InstanceType"]
    finally:
        if created:
            try:
                asg.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        try:
            ec2.delete_launch_template(LaunchTemplateId=lt_id)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def backup_scenario(endpoint: str | None) -> None:
    """Raise unless an AWS Backup job of a file system runs to a listed, tagged recovery point."""
    import time

    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    backup = boto3.client("backup", **kwargs)
    efs = boto3.client("efs", **kwargs)
    iam = boto3.client("iam", **kwargs)
    suffix = uuid.uuid4().hex[:8]
    fs = efs.create_file_system(CreationToken=f"backup-check-{suffix}")
    role = iam.create_role(RoleName=f"backup-check-{suffix}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    try:
        backup.describe_backup_vault(BackupVaultName="Default")
    except backup.exceptions.ResourceNotFoundException:
        backup.create_backup_vault(BackupVaultName="Default")
    try:
        start = dict(
            BackupVaultName="Default",
            ResourceArn=fs["FileSystemArn"],
            IamRoleArn=role,
            IdempotencyToken=suffix,
            RecoveryPointTags={"check": suffix},
        )
        job = backup.start_backup_job(**start)
        again = backup.start_backup_job(**start)
        assert again["BackupJobId"] == job["BackupJobId"], "the same token started another job"
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            d = backup.describe_backup_job(BackupJobId=job["BackupJobId"])
            if not seen or seen[-1] != d["State"]:
                seen.append(d["State"])
            if d["State"] == "COMPLETED":
                break
            time.sleep(0.2)
        assert seen[-1] == "COMPLETED" and "CREATED" in seen, f"job states {seen}"
        rp = d["RecoveryPointArn"]
        points = backup.list_recovery_points_by_resource(ResourceArn=fs["FileSystemArn"])["RecoveryPoints"]
        assert [p["RecoveryPointArn"] for p in points] == [rp], f"recovery points {points}"
        tags = backup.list_tags(ResourceArn=rp)["Tags"]
        assert tags.get("check") == suffix, f"recovery point tags {tags}"
        in_vault = backup.list_recovery_points_by_backup_vault(BackupVaultName="Default", ByResourceType="EFS")
        mine = [p for p in in_vault["RecoveryPoints"] if p["RecoveryPointArn"] == rp]
        assert [(p["ResourceArn"], p["ResourceType"]) for p in mine] == [(fs["FileSystemArn"], "EFS")], f"vault's {in_vault}"
        other = backup.list_recovery_points_by_backup_vault(BackupVaultName="Default", ByResourceType="RDS")
        assert rp not in [p["RecoveryPointArn"] for p in other["RecoveryPoints"]], f"RDS filter {other}"
        restore_scenario(backup, efs, fs, role, rp, suffix)
    finally:
        try:
            efs.delete_file_system(FileSystemId=fs["FileSystemId"])
            iam.delete_role(RoleName=f"backup-check-{suffix}")
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def wait_restore(backup: Any, job_id: str) -> dict[str, Any]:
    import time

    seen: list[str] = []
    deadline = time.time() + 30
    while time.time() < deadline:
        d = backup.describe_restore_job(RestoreJobId=job_id)
        if not seen or seen[-1] != d["Status"]:
            seen.append(d["Status"])
        if d["Status"] == "COMPLETED":
            assert "PENDING" in seen, f"restore job states {seen}"
            return d
        time.sleep(0.2)
    raise AssertionError(f"restore job states {seen}")


def restore_scenario(backup: Any, efs: Any, fs: dict[str, Any], role: str, rp: str, suffix: str) -> None:
    """Raise unless item-level and full restore jobs and a denying vault policy behave as AWS documents."""
    import json

    items = dict(
        RecoveryPointArn=rp,
        IamRoleArn=role,
        IdempotencyToken=f"items-{suffix}",
        ResourceType="EFS",
        Metadata={
            "file-system-id": fs["FileSystemId"],
            "newFileSystem": "false",
            "itemsToRestore": json.dumps(["/themes"]),
        },
    )
    job = backup.start_restore_job(**items)["RestoreJobId"]
    assert backup.start_restore_job(**items)["RestoreJobId"] == job, "the same token started another restore"
    assert "CreatedResourceArn" not in wait_restore(backup, job)
    full = backup.start_restore_job(
        RecoveryPointArn=rp,
        IamRoleArn=role,
        IdempotencyToken=f"full-{suffix}",
        Metadata={"newFileSystem": "true", "CreationToken": f"full-{suffix}", "PerformanceMode": "generalPurpose"},
    )["RestoreJobId"]
    created = wait_restore(backup, full)["CreatedResourceArn"]
    new_fs = created.rsplit("/", 1)[-1]
    assert efs.describe_file_systems(FileSystemId=new_fs)["FileSystems"], created
    # Restored without automatic backups; PutBackupPolicy turns them on (moto has no such call).
    efs.put_backup_policy(FileSystemId=new_fs, BackupPolicy={"Status": "ENABLED"})
    assert efs.describe_backup_policy(FileSystemId=new_fs)["BackupPolicy"]["Status"] == "ENABLED"
    efs.delete_file_system(FileSystemId=new_fs)
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "no-restores", "Effect": "Deny", "Principal": "*", "Action": "backup:StartRestoreJob", "Resource": "*"}],
    }
    backup.put_backup_vault_access_policy(BackupVaultName="Default", Policy=json.dumps(deny))
    try:
        assert json.loads(backup.get_backup_vault_access_policy(BackupVaultName="Default")["Policy"]) == deny
        try:
            backup.start_restore_job(**{**items, "IdempotencyToken": f"denied-{suffix}"})
            raise AssertionError("a vault policy that denies StartRestoreJob did not refuse it")
        except backup.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDeniedException", e.response
    finally:
        backup.delete_backup_vault_access_policy(BackupVaultName="Default")
    try:
        backup.get_backup_vault_access_policy(BackupVaultName="Default")
        raise AssertionError("the deleted access policy is still there")
    except backup.exceptions.ResourceNotFoundException:
        pass


def patch_backup() -> Any:
    import moto_launcher

    return moto_launcher.apply_backup_jobs()


def patch_version() -> Any:
    import moto_launcher

    return moto_launcher.apply_version_fix()


def patch_launch_template() -> Any:
    import moto_launcher

    return moto_launcher.apply_patch()


def patch_versioning() -> Any:
    """Install the launcher's GetBucketVersioning fix (main() installs it in the server)."""
    from moto.s3.responses import S3Response

    import moto_launcher

    S3Response.get_bucket_versioning = moto_launcher._patched_get_bucket_versioning  # type: ignore[method-assign]

    def restore() -> None:
        S3Response.get_bucket_versioning = moto_launcher._ORIGINAL_VERSIONING  # type: ignore[method-assign]

    return restore


def deletion_protection_scenario(endpoint: str | None) -> None:
    """Raise unless a load balancer with deletion protection on is refused its delete."""
    import boto3
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    ec2 = boto3.client("ec2", **kwargs)
    elb = boto3.client("elbv2", **kwargs)
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.8.{i}.0/24", AvailabilityZone=zones[i])["Subnet"]["SubnetId"]
        for i in range(2)
    ]
    name = f"check-{uuid.uuid4().hex[:8]}"
    arn = elb.create_load_balancer(Name=name, Subnets=subnets, Scheme="internal")["LoadBalancers"][0]["LoadBalancerArn"]
    protection = [{"Key": "deletion_protection.enabled", "Value": "true"}]
    elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=protection)
    try:
        try:
            elb.delete_load_balancer(LoadBalancerArn=arn)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "OperationNotPermitted", e.response["Error"]
        else:
            raise AssertionError("a load balancer with deletion protection on was deleted")
        assert elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"], "the load balancer is kept"
    finally:
        protection[0]["Value"] = "false"
        try:
            elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=protection)
            elb.delete_load_balancer(LoadBalancerArn=arn)
        except Exception:  # noqa: BLE001 - best-effort cleanup (gone already when unpatched)
            pass
        for s in subnets:
            ec2.delete_subnet(SubnetId=s)
        ec2.delete_vpc(VpcId=vpc)


def patch_deletion_protection() -> Any:
    """Install the launcher's load balancer deletion protection (main() installs it in the server)."""
    from moto.elbv2.models import ELBv2Backend

    import moto_launcher

    ELBv2Backend.delete_load_balancer = moto_launcher._patched_delete_load_balancer  # type: ignore[method-assign]

    def restore() -> None:
        ELBv2Backend.delete_load_balancer = moto_launcher._ORIGINAL_DELETE_LOAD_BALANCER  # type: ignore[method-assign]

    return restore


def patch_atomic_writes() -> Any:
    """Install the launcher's S3 conditional write fix (main() installs it in the server)."""
    import moto_launcher

    return moto_launcher.apply_atomic_writes()


def patch_subnet_group() -> Any:
    """Install the launcher's ModifyDBSubnetGroup fix (main() installs it in the server)."""
    from moto.rds.models import RDSBackend

    import moto_launcher

    RDSBackend.modify_db_subnet_group = moto_launcher._patched_modify_db_subnet_group  # type: ignore[method-assign]

    def restore() -> None:
        RDSBackend.modify_db_subnet_group = moto_launcher._ORIGINAL_MODIFY_SUBNET_GROUP  # type: ignore[method-assign]

    return restore


def lambda_file_system_scenario(endpoint: str | None) -> None:
    """Raise unless a function's FileSystemConfigs are returned as created, then as updated."""
    import io
    import zipfile

    import boto3

    kwargs: dict[str, Any] = {"region_name": REGION}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    iam = boto3.client("iam", **kwargs)
    lam = boto3.client("lambda", **kwargs)
    suffix = uuid.uuid4().hex[:8]
    trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
    role = iam.create_role(RoleName=f"fs-check-{suffix}", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return None\n")
    ap = f"arn:aws:elasticfilesystem:{REGION}:123456789012:access-point/fsap-{suffix}"
    name = f"fs-check-{suffix}"
    try:
        lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": buf.getvalue()},
            FileSystemConfigs=[{"Arn": ap, "LocalMountPath": "/mnt/efs"}],
        )
        got = lam.get_function_configuration(FunctionName=name).get("FileSystemConfigs", [])
        assert [c["Arn"] for c in got] == [ap], f"FileSystemConfigs not returned: {got}"
        other = ap + "x"
        lam.update_function_configuration(
            FunctionName=name, FileSystemConfigs=[{"Arn": other, "LocalMountPath": "/mnt/efs"}]
        )
        got = lam.get_function_configuration(FunctionName=name).get("FileSystemConfigs", [])
        assert [c["Arn"] for c in got] == [other], f"FileSystemConfigs not updated: {got}"
    finally:
        try:
            lam.delete_function(FunctionName=name)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
        iam.delete_role(RoleName=f"fs-check-{suffix}")


def patch_lambda_file_systems() -> Any:
    """Install the launcher's Lambda FileSystemConfigs fix (main() installs it in the server)."""
    import moto_launcher

    return moto_launcher.apply_lambda_file_systems()


SCENARIOS = {
    "CreateLaunchTemplateVersion UserData": (scenario, patch_launch_template),
    "GetBucketVersioning root": (versioning_scenario, patch_versioning),
    "Auto Scaling launch template version": (version_scenario, patch_version),
    "AWS Backup jobs": (backup_scenario, patch_backup),
    "ModifyDBSubnetGroup keeps the group": (subnet_group_scenario, patch_subnet_group),
    "S3 conditional writes are atomic": (conditional_write_scenario, patch_atomic_writes),
    "Load balancer deletion protection": (deletion_protection_scenario, patch_deletion_protection),
    "Lambda FileSystemConfigs": (lambda_file_system_scenario, patch_lambda_file_systems),
}


def run_in_process(patched: bool, check: Any = scenario, patch: Any = patch_launch_template) -> BaseException | None:
    from moto import mock_aws

    restore = patch() if patched else None
    try:
        with mock_aws():
            check(endpoint=None)
        return None
    except Exception as exc:  # noqa: BLE001 - report any failure
        return exc
    finally:
        if restore is not None:
            restore()


def describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        where = "/".join(Path(last.filename).parts[-3:])
        text = f"{text} at {where}:{last.lineno} ({last.line})"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint",
        help="also run the scenario against this running server (started through moto_launcher.py)",
    )
    args = parser.parse_args()

    # In-process runs must not be redirected to a server, nor touch real AWS.
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOTO_ENABLE_AMI_VALIDATION": "true",
        }
    )

    import moto

    print(f"moto {moto.__version__}; AMI {demo_ami()}")
    failed = False

    for name, (check, patch) in SCENARIOS.items():
        unpatched = run_in_process(patched=False, check=check, patch=patch)
        if unpatched is None:
            print(f"{name}: unpatched moto works")
            print(f"{name}: launcher fix still needed: no (moto fixed it: drop its wrapper in tests/emu/moto_launcher.py)")
        else:
            print(f"{name}: unpatched moto fails as expected: {describe(unpatched)}")
            print(f"{name}: launcher fix still needed: yes")

        patched = run_in_process(patched=True, check=check, patch=patch)
        if patched is None:
            print(f"{name}: patched moto (in-process): OK")
        else:
            failed = True
            print(f"{name}: patched moto (in-process): FAILED: {describe(patched)}")
            traceback.print_exception(patched)

        if args.endpoint:
            try:
                check(endpoint=args.endpoint)
                print(f"{name}: server check ({args.endpoint}): OK")
            except Exception as exc:  # noqa: BLE001 - report any failure
                failed = True
                print(f"{name}: server check ({args.endpoint}): FAILED: {describe(exc)}")

    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
