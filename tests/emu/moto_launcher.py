#!/usr/bin/env python3
"""Start moto server 5.2.5 with four bug fixes applied (test harness only; the second,
third and fourth, GetBucketVersioning's root element, ModifyVpcEndpoint's routes and the
launch template version an Auto Scaling group launches from, are described beside their
code).

Usage (what scripts/emu-start.sh runs, with the venv's python):

    python tests/emu/moto_launcher.py -H 127.0.0.1 -p PORT

All arguments are passed unchanged to ``moto.server.main``.

The fix
-------
moto 5.2.5's ``CreateLaunchTemplate`` handler passes
``LaunchTemplateData.UserData`` through ``moto.ec2.utils.parse_user_data``
(which wraps the base64 text in a ``Base64EncodedString``), but
``CreateLaunchTemplateVersion`` stores the raw string. Anything that later
reads ``LaunchTemplateVersion.user_data`` (an Auto Scaling group launching
from version 2 or later, RunInstances from such a version) then trips the
``assert isinstance(user_data, Base64EncodedString)`` in moto's launch
template model, and the server answers HTTP 500. pi-deploy's blue/green
upgrade needs exactly that path, and the code is right for AWS, so the fix
lives here in the harness, not in pi-deploy (see
shared/design/emulators.md, "moto quirks").

``apply_patch()`` wraps
``moto.ec2.responses.launch_templates.LaunchTemplates.create_launch_template_version``
so that, while it runs, ``self._get_param("LaunchTemplateData", ...)``
returns the template data with ``UserData`` set to
``parse_user_data(self._get_param("LaunchTemplateData.UserData"))``, the
same expression ``create_launch_template`` uses. Everything else in the
handler is moto's own code. ``tests/emu/check_launcher_fix.py`` checks that
the fix is still needed and that it works; drop this wrapper when moto
fixes the bug.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import moto
from moto.core.types import Base64EncodedString
from moto.ec2.responses.launch_templates import LaunchTemplates
from moto.ec2.utils import parse_user_data

EXPECTED_MOTO_VERSION = "5.2.5"

_ORIGINAL = LaunchTemplates.create_launch_template_version
_MARKER = "_pi_deploy_user_data_fix"


def _patched_create_launch_template_version(self: Any) -> Any:
    original_get_param = self._get_param

    def get_param(param_name: str, if_none: Any = None) -> Any:
        value = original_get_param(param_name, if_none)
        if param_name == "LaunchTemplateData" and isinstance(value, dict):
            raw = original_get_param("LaunchTemplateData.UserData")
            # Shallow copy: moto's request params keep the raw string, so a
            # later moto that parses UserData itself still sees a str.
            value = dict(value)
            if isinstance(raw, Base64EncodedString):
                value["UserData"] = raw
            else:
                # Same call as LaunchTemplates.create_launch_template.
                value["UserData"] = parse_user_data(raw)
        return value

    # Instance attribute shadows the bound method for this request only.
    self._get_param = get_param
    try:
        return _ORIGINAL(self)
    finally:
        del self._get_param


functools.update_wrapper(_patched_create_launch_template_version, _ORIGINAL)
setattr(_patched_create_launch_template_version, _MARKER, True)


def is_patched() -> bool:
    return getattr(LaunchTemplates.create_launch_template_version, _MARKER, False)


def apply_patch() -> Callable[[], None]:
    """Install the wrapper (idempotent); return a function that removes it."""
    LaunchTemplates.create_launch_template_version = (  # type: ignore[method-assign]
        _patched_create_launch_template_version
    )

    def restore() -> None:
        LaunchTemplates.create_launch_template_version = _ORIGINAL  # type: ignore[method-assign]

    return restore


# ---- second fix: GetBucketVersioning's root element ------------------------------------
# moto 5.2.5 answers GetBucketVersioning with a `<GetBucketVersioningResponse>` root; S3
# answers `<VersioningConfiguration>` (empty for a never-versioned bucket), and the AWS
# SDKs reject any other root element. pi-deploy reads every bucket's versioning on day 2,
# so the harness answers what S3 answers, with moto's own status.
from moto.s3.responses import S3Response  # noqa: E402

_ORIGINAL_VERSIONING = S3Response.get_bucket_versioning
_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def versioning_xml(status: str | None) -> str:
    inner = f"<Status>{status}</Status>" if status else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<VersioningConfiguration xmlns="{_S3_NS}">{inner}</VersioningConfiguration>'
    )


def _patched_get_bucket_versioning(self: Any) -> Any:
    status = self.backend.get_bucket_versioning(self.bucket_name)
    return 200, {}, versioning_xml(status)


functools.update_wrapper(_patched_get_bucket_versioning, _ORIGINAL_VERSIONING)


# ---- third fix: ModifyVpcEndpoint's route tables ------------------------------------------
# On AWS, AddRouteTableIds/RemoveRouteTableIds of a gateway endpoint add and remove the
# service's prefix-list route in those tables. moto 5.2.5 only edits the endpoint's list, so
# a later DeleteVpcEndpoints fails deleting a route that was never made (and the endpoint
# stays `available`). pi-deploy moves the S3 endpoint when `nat_per_az` changes the private
# route tables; the harness makes the routes as AWS does, with moto's own route calls.
from moto.ec2.models.vpcs import VPCBackend  # noqa: E402

_ORIGINAL_MODIFY_ENDPOINT = VPCBackend.modify_vpc_endpoint


def _patched_modify_vpc_endpoint(
    self: Any,
    vpc_id: str,
    policy_doc: str,
    add_subnets: Any,
    remove_subnets: Any,
    remove_route_tables: Any,
    add_route_tables: Any,
    add_security_groups: Any,
    remove_security_groups: Any,
) -> None:
    endpoint = self.describe_vpc_endpoints(vpc_end_point_ids=[vpc_id])[0]
    prefix = getattr(endpoint, "destination_prefix_list_id", None)
    before = list(endpoint.route_table_ids or [])
    _ORIGINAL_MODIFY_ENDPOINT(
        self,
        vpc_id,
        policy_doc,
        add_subnets,
        remove_subnets,
        remove_route_tables,
        add_route_tables,
        add_security_groups,
        remove_security_groups,
    )
    if not prefix:
        return
    for table in add_route_tables or []:
        if table not in before:
            self.create_route(table, None, gateway_id=vpc_id, destination_prefix_list_id=prefix)
    for table in remove_route_tables or []:
        if table in before:
            try:
                self.delete_route(table, None, destination_prefix_list_id=prefix)
            except Exception:  # noqa: BLE001 - already gone is the goal
                pass


functools.update_wrapper(_patched_modify_vpc_endpoint, _ORIGINAL_MODIFY_ENDPOINT)


# ---- a fix: ModifyDBSubnetGroup keeps the group -------------------------------------------
# moto 5.2.5's RDSBackend.modify_db_subnet_group pops the group from its store, changes it
# and returns it without putting it back, so the group is gone after a ModifyDBSubnetGroup
# (AWS changes its subnets and keeps it). pi-deploy puts the DB subnets back into a group
# changed by hand (day 2); the harness keeps the group, with moto's own code.
from moto.rds.models import RDSBackend  # noqa: E402

_ORIGINAL_MODIFY_SUBNET_GROUP = RDSBackend.modify_db_subnet_group


def _patched_modify_db_subnet_group(self: Any, subnet_name: str, *args: Any, **kwargs: Any) -> Any:
    group = _ORIGINAL_MODIFY_SUBNET_GROUP(self, subnet_name, *args, **kwargs)
    self.subnet_groups[subnet_name] = group
    return group


functools.update_wrapper(_patched_modify_db_subnet_group, _ORIGINAL_MODIFY_SUBNET_GROUP)


# ---- a fix: a load balancer's deletion protection ------------------------------------------
# AWS refuses DeleteLoadBalancer with OperationNotPermitted while the load balancer's
# `deletion_protection.enabled` attribute is true; moto 5.2.5 stores the attribute and
# deletes all the same. pi-deploy turns the protection on and must turn it off before its
# delete (src/resources/load_balancer.rs); the harness refuses as AWS does.
from moto.elbv2.exceptions import ELBClientError  # noqa: E402
from moto.elbv2.models import ELBv2Backend  # noqa: E402

_ORIGINAL_DELETE_LOAD_BALANCER = ELBv2Backend.delete_load_balancer


def _patched_delete_load_balancer(self: Any, arn: str) -> None:
    lb = self.load_balancers.get(arn)
    if lb is not None and str(lb.attrs.get("deletion_protection.enabled", "false")).lower() == "true":
        raise ELBClientError(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )
    _ORIGINAL_DELETE_LOAD_BALANCER(self, arn)


functools.update_wrapper(_patched_delete_load_balancer, _ORIGINAL_DELETE_LOAD_BALANCER)


# ---- a fix: S3 conditional writes are atomic ---------------------------------------------
# S3 decides `If-Match` / `If-None-Match` of a PutObject or DeleteObject atomically with the
# write: of two writes conditional on the same ETag, one succeeds and the other gets 412 (or
# 409 ConditionalRequestConflict). moto 5.2.5's handlers read the object, compare, then write,
# with no lock, so two such writes arriving together can both succeed, the later one silently
# replacing the earlier. pi-deploy's S3 state store relies on the compare-and-swap (a run whose
# write was overwritten by another writer must stop before its next AWS change); the
# crash/conflict test `state_s3::a_state_changed_behind_a_runs_back_...` failed once in CI
# through this race. The harness serialises moto's object writes, with moto's own handlers.
import threading  # noqa: E402

_S3_WRITES = threading.RLock()
_ORIGINAL_S3_WRITES = {name: getattr(S3Response, name) for name in ("put_object", "delete_object")}


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _S3_WRITES:
            return method(self, *args, **kwargs)

    return wrapper


def apply_atomic_writes() -> Callable[[], None]:
    """Make PutObject/DeleteObject's condition check and write one step; return the undo."""
    for name, method in _ORIGINAL_S3_WRITES.items():
        setattr(S3Response, name, _serialised(method))

    def restore() -> None:
        for name, method in _ORIGINAL_S3_WRITES.items():
            setattr(S3Response, name, method)

    return restore


# ---- fourth fix: an Auto Scaling group launches from ITS launch template version -----------
# On AWS a group launches every instance from the version it names (`LaunchTemplate.Version`
# of the group, e.g. "3"), EC2 tags the instance `aws:ec2launchtemplate:version` with that
# number, and DescribeAutoScalingGroups reports per instance the version it was launched
# from. moto 5.2.5 takes the image and instance type from the group's version but calls
# RunInstances without a version (so the tags, block devices and the version tag come from
# the template's DEFAULT version), and reports for every instance the template's current
# default version. pi-deploy's blue/green roll tells the new instances from the old by that
# version (a roll keeps the image when only the instance type or user data changes), so the
# harness makes moto launch and report as AWS does, with moto's own code.

from moto.autoscaling.models import FakeAutoScalingGroup  # noqa: E402
from moto.autoscaling.models import InstanceState as AsgInstanceState  # noqa: E402
from moto.ec2.models.instances import InstanceBackend  # noqa: E402

_LAUNCHING = threading.local()
_ORIGINAL_REPLACE = FakeAutoScalingGroup.replace_autoscaling_group_instances
_ORIGINAL_TEMPLATE_FROM_ARGS = InstanceBackend._get_template_from_args
_ORIGINAL_ASG_LT = AsgInstanceState.launch_template


def _patched_replace(self: Any, *args: Any, **kwargs: Any) -> Any:
    _LAUNCHING.version = getattr(self, "launch_template_version", None)
    try:
        return _ORIGINAL_REPLACE(self, *args, **kwargs)
    finally:
        _LAUNCHING.version = None


def _patched_template_from_args(self: Any, launch_template_arg: dict[str, Any]) -> Any:
    version = getattr(_LAUNCHING, "version", None)
    if version and "Version" not in launch_template_arg:
        launch_template_arg = dict(launch_template_arg, Version=version)
    return _ORIGINAL_TEMPLATE_FROM_ARGS(self, launch_template_arg)


def _patched_asg_launch_template(self: Any) -> Any:
    lt = _ORIGINAL_ASG_LT.fget(self)  # type: ignore[attr-defined]
    if lt is None:
        return None
    tags = {t["key"]: t["value"] for t in self.instance.get_tags()}
    launched = tags.get("aws:ec2launchtemplate:version")
    return dict(lt, Version=launched) if launched else lt


functools.update_wrapper(_patched_replace, _ORIGINAL_REPLACE)


def apply_version_fix() -> Callable[[], None]:
    """Install the fourth fix; return a function that removes it."""
    FakeAutoScalingGroup.replace_autoscaling_group_instances = _patched_replace  # type: ignore[method-assign]
    InstanceBackend._get_template_from_args = _patched_template_from_args  # type: ignore[method-assign]
    AsgInstanceState.launch_template = property(_patched_asg_launch_template)  # type: ignore[method-assign,assignment]

    def restore() -> None:
        FakeAutoScalingGroup.replace_autoscaling_group_instances = _ORIGINAL_REPLACE  # type: ignore[method-assign]
        InstanceBackend._get_template_from_args = _ORIGINAL_TEMPLATE_FROM_ARGS  # type: ignore[method-assign]
        AsgInstanceState.launch_template = _ORIGINAL_ASG_LT  # type: ignore[method-assign]

    return restore


# ---- fifth: AWS Backup jobs (moto 5.2.5 has vaults and plans, no jobs) ---------------------
# pi-deploy's `snapshot` backs the file system up with StartBackupJob and waits with
# DescribeBackupJob; `snapshot --list` reads ListRecoveryPointsByResource (and, for the
# recovery points of earlier file systems, ListRecoveryPointsByBackupVault) and ListTags. moto
# 5.2.5 implements none of the job calls, and its ListTags reads the ARN from the path's
# second-to-last segment, so a recovery point's ARN (no slash, no trailing slash from the
# SDK) is not found. The harness answers them as AWS documents them: the vault must exist,
# the role must exist in IAM and the resource in EFS; an IdempotencyToken seen before (for
# the same vault and resource) answers the job it started; a job is CREATED for its first
# second, RUNNING (PercentDone) until 3 s, then COMPLETED with its recovery point (COMPLETED,
# tagged with the RecoveryPointTags). Durations: PI_DEPLOY_EMU_BACKUP_JOB_SECONDS (default 3).
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import unquote  # noqa: E402

from moto.backup import urls as backup_urls  # noqa: E402
from moto.efs.responses import EFSResponse  # noqa: E402
from moto.backup.exceptions import InvalidParameterValueException  # noqa: E402
from moto.backup.exceptions import ResourceNotFoundException as BackupNotFound  # noqa: E402
from moto.backup.models import BackupBackend  # noqa: E402
from moto.backup.responses import BackupResponse  # noqa: E402

_BACKUP_MARKER = "_pi_deploy_backup_jobs"
_ORIGINAL_BACKUP_LIST_TAGS = BackupResponse.list_tags


def _job_seconds() -> float:
    return float(os.environ.get("PI_DEPLOY_EMU_BACKUP_JOB_SECONDS", "3"))


class _Job:
    def __init__(self, backend: Any, vault: Any, resource_arn: str, role_arn: str, token: str | None) -> None:
        self.id = str(uuid.uuid4()).upper()
        self.vault = vault
        self.resource_arn = resource_arn
        self.role_arn = role_arn
        self.token = token
        self.created = time.time()
        partition = vault.backup_vault_arn.split(":")[1]
        self.recovery_point_arn = (
            f"arn:{partition}:backup:{backend.region_name}:{backend.account_id}:recovery-point:{uuid.uuid4()}"
        )
        self.size = 6144

    def state(self) -> tuple[str, str | None]:
        elapsed = time.time() - self.created
        total = _job_seconds()
        if elapsed < min(1.0, total / 3):
            return "CREATED", None
        if elapsed < total:
            return "RUNNING", f"{min(99.0, 100 * elapsed / total):.1f}"
        return "COMPLETED", "100.0"

    def describe(self, account_id: str) -> dict[str, Any]:
        state, percent = self.state()
        out: dict[str, Any] = {
            "AccountId": account_id,
            "BackupJobId": self.id,
            "BackupVaultName": self.vault.backup_vault_name,
            "BackupVaultArn": self.vault.backup_vault_arn,
            "ResourceArn": self.resource_arn,
            "ResourceType": "EFS",
            "IamRoleArn": self.role_arn,
            "CreationDate": self.created,
            "State": state,
            "IsParent": False,
        }
        if percent is not None:
            out["PercentDone"] = percent
        if state == "COMPLETED":
            out["CompletionDate"] = self.created + _job_seconds()
            out["RecoveryPointArn"] = self.recovery_point_arn
            out["BackupSizeInBytes"] = self.size
        return out


def _jobs(backend: Any) -> list[_Job]:
    if not hasattr(backend, _BACKUP_MARKER):
        setattr(backend, _BACKUP_MARKER, [])
    return getattr(backend, _BACKUP_MARKER)


def _start_backup_job(self: Any) -> str:
    params = json.loads(self.body or "{}")
    backend = self.backup_backend
    vault_name = params.get("BackupVaultName", "")
    vault = backend.vaults.get(vault_name)
    if vault is None:
        raise BackupNotFound(f"Backup vault {vault_name} does not exist")
    resource_arn = params.get("ResourceArn", "")
    role_arn = params.get("IamRoleArn", "")
    from moto.iam.models import iam_backends

    try:
        iam_backends[backend.account_id][backend.partition].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - any lookup failure is "no such role"
        raise InvalidParameterValueException(f"IAM Role {role_arn} cannot be assumed by AWS Backup")
    if ":file-system/" in resource_arn:
        from moto.efs.models import efs_backends

        fs_id = resource_arn.rsplit("/", 1)[-1]
        if fs_id not in efs_backends[backend.account_id][backend.region_name].file_systems_by_id:
            raise BackupNotFound(f"Resource {resource_arn} does not exist")
    token = params.get("IdempotencyToken")
    job = next(
        (
            j
            for j in _jobs(backend)
            if token and j.token == token and j.resource_arn == resource_arn and j.vault is vault
        ),
        None,
    )
    if job is None:
        job = _Job(backend, vault, resource_arn, role_arn, token)
        _jobs(backend).append(job)
        if params.get("RecoveryPointTags"):
            backend.tag_resource(job.recovery_point_arn, params["RecoveryPointTags"])
    return json.dumps(
        {
            "BackupJobId": job.id,
            "RecoveryPointArn": job.recovery_point_arn,
            "CreationDate": job.created,
            "IsParent": False,
        }
    )


def _describe_backup_job(self: Any) -> str:
    job_id = unquote(self.path.rstrip("/").split("/")[-1])
    job = next((j for j in _jobs(self.backup_backend) if j.id == job_id), None)
    if job is None:
        raise BackupNotFound(f"Backup job {job_id} does not exist")
    return json.dumps(job.describe(self.current_account))


def _list_recovery_points_by_resource(self: Any) -> str:
    path = self.path.rstrip("/")
    resource_arn = unquote(path[path.index("/resources/") + len("/resources/") : path.rindex("/recovery-points")])
    points = []
    for job in _jobs(self.backup_backend):
        if job.resource_arn == resource_arn and job.state()[0] == "COMPLETED":
            points.append(
                {
                    "RecoveryPointArn": job.recovery_point_arn,
                    "CreationDate": job.created,
                    "Status": "COMPLETED",
                    "BackupSizeBytes": job.size,
                    "BackupVaultName": job.vault.backup_vault_name,
                    "IsParent": False,
                }
            )
    return json.dumps({"RecoveryPoints": points})


def _list_recovery_points_by_backup_vault(self: Any) -> str:
    path = self.path.split("?")[0].rstrip("/")
    name = unquote(path[path.index("/backup-vaults/") + len("/backup-vaults/") : path.rindex("/recovery-points")])
    backend = self.backup_backend
    if name not in backend.vaults:
        raise BackupNotFound(f"Backup vault {name} does not exist")
    query = self.querystring
    by_type = (query.get("resourceType") or [None])[0]
    by_arn = (query.get("resourceArn") or [None])[0]
    points = []
    for job in _jobs(backend):
        kind = "EFS" if ":elasticfilesystem:" in job.resource_arn else "Other"
        if job.vault.backup_vault_name != name or job.state()[0] != "COMPLETED":
            continue
        if (by_type and by_type != kind) or (by_arn and by_arn != job.resource_arn):
            continue
        points.append(
            {
                "RecoveryPointArn": job.recovery_point_arn,
                "BackupVaultName": name,
                "BackupVaultArn": job.vault.backup_vault_arn,
                "ResourceArn": job.resource_arn,
                "ResourceType": kind,
                "CreationDate": job.created,
                "Status": "COMPLETED",
                "BackupSizeInBytes": job.size,
                "IsParent": False,
            }
        )
    return json.dumps({"RecoveryPoints": points})


def _list_tags(self: Any) -> str:
    path = self.path.rstrip("/")
    resource_arn = unquote(path[path.index("/tags/") + len("/tags/") :])
    return json.dumps({"Tags": self.backup_backend.list_tags(resource_arn=resource_arn)})


# Restore jobs (StartRestoreJob / DescribeRestoreJob) and vault access policies
# (Put/Get/DeleteBackupVaultAccessPolicy), as AWS documents them: the recovery point must be
# one a job above made, the role must exist in IAM; an access policy whose Deny statement
# (without a Condition) covers backup:StartRestoreJob refuses it (AccessDeniedException); an
# IdempotencyToken seen before answers the job it started. EFS metadata: newFileSystem
# "false" needs `file-system-id` to exist (the items are not copied: moto keeps no file
# data); "true" creates the file system in moto's EFS (CreationToken, PerformanceMode,
# Encrypted, KmsKeyId), named in CreatedResourceArn once COMPLETED. A restore job is PENDING
# for its first second, RUNNING (PercentDone) until PI_DEPLOY_EMU_BACKUP_JOB_SECONDS, then
# COMPLETED.
_POLICY_ATTR = "_pi_deploy_access_policy"


def _denies(policy: str | None, action: str) -> str | None:
    """The Sid (or `#n`) of an unconditional Deny statement covering `action`."""
    import fnmatch

    if not policy:
        return None
    statements = json.loads(policy).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for i, st in enumerate(statements):
        if st.get("Effect") != "Deny" or "Condition" in st:
            continue
        names = st.get("NotAction", st.get("Action", []))
        names = [names] if isinstance(names, str) else names
        hit = any(fnmatch.fnmatchcase(action.lower(), n.lower()) for n in names)
        if hit != ("NotAction" in st):
            return st.get("Sid", f"#{i + 1}")
    return None


class _RestoreJob:
    def __init__(self, backup_job: _Job, role_arn: str, token: str | None, metadata: dict[str, str]) -> None:
        self.id = str(uuid.uuid4()).upper()
        self.backup_job = backup_job
        self.role_arn = role_arn
        self.token = token
        self.metadata = metadata
        self.created = time.time()
        self.created_resource_arn: str | None = None

    def describe(self, account_id: str) -> dict[str, Any]:
        elapsed = time.time() - self.created
        total = _job_seconds()
        out: dict[str, Any] = {
            "AccountId": account_id,
            "RestoreJobId": self.id,
            "RecoveryPointArn": self.backup_job.recovery_point_arn,
            "CreationDate": self.created,
            "IamRoleArn": self.role_arn,
            "ResourceType": "EFS",
        }
        if elapsed < min(1.0, total / 3):
            out["Status"] = "PENDING"
        elif elapsed < total:
            out["Status"] = "RUNNING"
            out["PercentDone"] = f"{min(99.0, 100 * elapsed / total):.1f}"
        else:
            out["Status"] = "COMPLETED"
            out["PercentDone"] = "100.0"
            out["CompletionDate"] = self.created + total
            if self.created_resource_arn:
                out["CreatedResourceArn"] = self.created_resource_arn
        return out


def _restore_jobs(backend: Any) -> list[_RestoreJob]:
    if not hasattr(backend, "_pi_deploy_restore_jobs"):
        setattr(backend, "_pi_deploy_restore_jobs", [])
    return getattr(backend, "_pi_deploy_restore_jobs")


def _start_restore_job(self: Any) -> str:
    from moto.core.exceptions import JsonRESTError
    from moto.efs.models import efs_backends
    from moto.iam.models import iam_backends

    params = json.loads(self.body or "{}")
    backend = self.backup_backend
    rp = params.get("RecoveryPointArn", "")
    source = next((j for j in _jobs(backend) if j.recovery_point_arn == rp and j.state()[0] == "COMPLETED"), None)
    if source is None:
        raise BackupNotFound(f"Recovery point {rp} does not exist")
    denied = _denies(getattr(source.vault, _POLICY_ATTR, None), "backup:StartRestoreJob")
    if denied is not None:
        err = JsonRESTError(
            "AccessDeniedException",
            f"User is not authorized to perform: backup:StartRestoreJob on resource: {source.vault.backup_vault_arn} with an explicit deny in a resource-based policy",
        )
        err.code = 403
        raise err
    role_arn = params.get("IamRoleArn", "")
    try:
        iam_backends[backend.account_id][backend.partition].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - any lookup failure is "no such role"
        raise InvalidParameterValueException(f"IAM Role {role_arn} cannot be assumed by AWS Backup")
    token = params.get("IdempotencyToken")
    job = next((j for j in _restore_jobs(backend) if token and j.token == token), None)
    if job is None:
        metadata = params.get("Metadata", {})
        efs = efs_backends[backend.account_id][backend.region_name]
        job = _RestoreJob(source, role_arn, token, metadata)
        if metadata.get("newFileSystem") == "true":
            fs = efs.create_file_system(
                creation_token=metadata.get("CreationToken") or job.id,
                performance_mode=metadata.get("PerformanceMode", "generalPurpose"),
                encrypted=metadata.get("Encrypted") == "true",
                kms_key_id=metadata.get("KmsKeyId", ""),
                throughput_mode="bursting",
                provisioned_throughput_in_mibps=0,
                availability_zone_name="",
                backup=False,
                tags=[],
            )
            job.created_resource_arn = fs.file_system_arn
        else:
            fs_id = metadata.get("file-system-id", "")
            if fs_id not in efs.file_systems_by_id:
                raise InvalidParameterValueException(f"File system {fs_id} does not exist")
            items = json.loads(metadata.get("itemsToRestore", "[]"))
            if not isinstance(items, list) or len(items) > 5 or any(not str(i).startswith("/") for i in items):
                raise InvalidParameterValueException(f"Invalid itemsToRestore {items!r}")
        _restore_jobs(backend).append(job)
    return json.dumps({"RestoreJobId": job.id})


def _describe_restore_job(self: Any) -> str:
    job_id = unquote(self.path.rstrip("/").split("/")[-1])
    job = next((j for j in _restore_jobs(self.backup_backend) if j.id == job_id), None)
    if job is None:
        raise BackupNotFound(f"Restore job {job_id} does not exist")
    return json.dumps(job.describe(self.current_account))


def _vault_of_path(self: Any) -> Any:
    path = self.path.rstrip("/")
    name = unquote(path[path.index("/backup-vaults/") + len("/backup-vaults/") : path.rindex("/access-policy")])
    vault = self.backup_backend.vaults.get(name)
    if vault is None:
        raise BackupNotFound(f"Backup vault {name} does not exist")
    return vault


def _put_backup_vault_access_policy(self: Any) -> str:
    setattr(_vault_of_path(self), _POLICY_ATTR, json.loads(self.body or "{}").get("Policy"))
    return "{}"


def _get_backup_vault_access_policy(self: Any) -> str:
    vault = _vault_of_path(self)
    policy = getattr(vault, _POLICY_ATTR, None)
    if policy is None:
        raise BackupNotFound(f"Backup vault {vault.backup_vault_name} has no access policy")
    return json.dumps(
        {"BackupVaultName": vault.backup_vault_name, "BackupVaultArn": vault.backup_vault_arn, "Policy": policy}
    )


def _delete_backup_vault_access_policy(self: Any) -> str:
    setattr(_vault_of_path(self), _POLICY_ATTR, None)
    return "{}"


def _put_backup_policy(self: Any) -> str:
    """EFS PutBackupPolicy (moto 5.2.5 has DescribeBackupPolicy only): a file system AWS
    Backup restored into a new one has automatic backups off until it is put."""
    from moto.efs.exceptions import FileSystemNotFound

    fs_id = unquote(self.path.rstrip("/").split("/")[-2])
    fs = self.efs_backend.file_systems_by_id.get(fs_id)
    if fs is None:
        raise FileSystemNotFound(fs_id)
    status = json.loads(self.body or "{}").get("BackupPolicy", {}).get("Status")
    if status not in ("ENABLED", "DISABLED"):
        raise InvalidParameterValueException(f"Invalid backup policy status {status!r}")
    fs._backup = status == "ENABLED"
    return json.dumps({"BackupPolicy": {"Status": status}})


_RESTORE_METHODS = {
    "start_restore_job": _start_restore_job,
    "describe_restore_job": _describe_restore_job,
    "put_backup_vault_access_policy": _put_backup_vault_access_policy,
    "get_backup_vault_access_policy": _get_backup_vault_access_policy,
    "delete_backup_vault_access_policy": _delete_backup_vault_access_policy,
}


_BACKUP_PATHS = {
    # moto turns a trailing `/?` into a rule without the slash (werkzeug's strict slashes):
    # both forms are listed, as the SDKs send either.
    "{0}/backup-jobs$": BackupResponse.dispatch,
    "{0}/backup-jobs/$": BackupResponse.dispatch,
    "{0}/backup-jobs/(?P<job_id>[^/]+)$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/recovery-points/$": BackupResponse.dispatch,
    "{0}/resources/(?P<resource_arn>.+)/recovery-points$": BackupResponse.dispatch,
    "{0}/resources/(?P<resource_arn>.+)/recovery-points/$": BackupResponse.dispatch,
    "{0}/restore-jobs$": BackupResponse.dispatch,
    "{0}/restore-jobs/$": BackupResponse.dispatch,
    "{0}/restore-jobs/(?P<restore_job_id>[^/]+)$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/access-policy$": BackupResponse.dispatch,
    "{0}/backup-vaults/(?P<name>[^/]+)/access-policy/$": BackupResponse.dispatch,
}


def apply_backup_jobs() -> Callable[[], None]:
    """Install the AWS Backup job calls; return a function that removes them."""
    BackupResponse.start_backup_job = _start_backup_job  # type: ignore[attr-defined]
    BackupResponse.describe_backup_job = _describe_backup_job  # type: ignore[attr-defined]
    BackupResponse.list_recovery_points_by_resource = _list_recovery_points_by_resource  # type: ignore[attr-defined]
    BackupResponse.list_recovery_points_by_backup_vault = _list_recovery_points_by_backup_vault  # type: ignore[attr-defined]
    BackupResponse.list_tags = _list_tags  # type: ignore[method-assign]
    for name, method in _RESTORE_METHODS.items():
        setattr(BackupResponse, name, method)
    backup_urls.url_paths.update(_BACKUP_PATHS)
    EFSResponse.put_backup_policy = _put_backup_policy  # type: ignore[attr-defined]

    def restore() -> None:
        if "put_backup_policy" in EFSResponse.__dict__:
            delattr(EFSResponse, "put_backup_policy")
        for name in (
            "start_backup_job",
            "describe_backup_job",
            "list_recovery_points_by_resource",
            "list_recovery_points_by_backup_vault",
            *_RESTORE_METHODS,
        ):
            if name in BackupResponse.__dict__:
                delattr(BackupResponse, name)
        BackupResponse.list_tags = _ORIGINAL_BACKUP_LIST_TAGS  # type: ignore[method-assign]
        for k in _BACKUP_PATHS:
            backup_urls.url_paths.pop(k, None)

    return restore


assert BackupBackend  # the backend the jobs hang off (one per account and region)


# Lambda's FileSystemConfigs (the EFS access point a function mounts): moto 5.2.5 drops them
# on CreateFunction and UpdateFunctionConfiguration and never returns them, so a function
# switched to another access point (a restore of the file system) cannot be read back.
from moto.awslambda.models import LambdaFunction  # noqa: E402

_ORIGINAL_LAMBDA_INIT = LambdaFunction.__init__
_ORIGINAL_LAMBDA_CONFIGURATION = LambdaFunction.get_configuration
_ORIGINAL_LAMBDA_UPDATE = LambdaFunction.update_configuration


def _patched_lambda_init(self: Any, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
    _ORIGINAL_LAMBDA_INIT(self, account_id, spec, *args, **kwargs)
    self._pi_deploy_file_system_configs = list(spec.get("FileSystemConfigs") or [])


def _patched_lambda_configuration(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    config = _ORIGINAL_LAMBDA_CONFIGURATION(self, *args, **kwargs)
    configs = getattr(self, "_pi_deploy_file_system_configs", [])
    if configs:
        config["FileSystemConfigs"] = configs
    return config


def _patched_lambda_update(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
    if "FileSystemConfigs" in config_updates:
        self._pi_deploy_file_system_configs = list(config_updates["FileSystemConfigs"] or [])
    return _ORIGINAL_LAMBDA_UPDATE(self, config_updates)


def apply_lambda_file_systems() -> Callable[[], None]:
    """Keep and return Lambda's FileSystemConfigs; return a function that removes the fix."""
    LambdaFunction.__init__ = _patched_lambda_init  # type: ignore[method-assign]
    LambdaFunction.get_configuration = _patched_lambda_configuration  # type: ignore[method-assign]
    LambdaFunction.update_configuration = _patched_lambda_update  # type: ignore[method-assign]

    def restore() -> None:
        LambdaFunction.__init__ = _ORIGINAL_LAMBDA_INIT  # type: ignore[method-assign]
        LambdaFunction.get_configuration = _ORIGINAL_LAMBDA_CONFIGURATION  # type: ignore[method-assign]
        LambdaFunction.update_configuration = _ORIGINAL_LAMBDA_UPDATE  # type: ignore[method-assign]

    return restore


def main(argv: list[str]) -> None:
    if moto.__version__ != EXPECTED_MOTO_VERSION:
        print(
            f"moto_launcher: warning: written for moto {EXPECTED_MOTO_VERSION}, "
            f"running {moto.__version__}; re-run tests/emu/check_launcher_fix.py",
            file=sys.stderr,
        )
    apply_patch()
    S3Response.get_bucket_versioning = _patched_get_bucket_versioning  # type: ignore[method-assign]
    VPCBackend.modify_vpc_endpoint = _patched_modify_vpc_endpoint  # type: ignore[method-assign]
    RDSBackend.modify_db_subnet_group = _patched_modify_db_subnet_group  # type: ignore[method-assign]
    ELBv2Backend.delete_load_balancer = _patched_delete_load_balancer  # type: ignore[method-assign]
    apply_version_fix()
    apply_atomic_writes()
    apply_backup_jobs()
    apply_lambda_file_systems()
    print(
        "moto_launcher: CreateLaunchTemplateVersion UserData, GetBucketVersioning, ModifyVpcEndpoint, ModifyDBSubnetGroup, load balancer deletion protection, launch template version, S3 conditional write and Lambda FileSystemConfigs fixes applied; AWS Backup jobs (backup, restore, vault access policies) and EFS PutBackupPolicy answered",
        file=sys.stderr,
        flush=True,
    )
    from moto.server import main as moto_server_main

    moto_server_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
