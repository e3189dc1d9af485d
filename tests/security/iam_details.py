"""Print GetAccountAuthorizationDetails, cut down to one deployment's IAM roles and the
managed policies they attach, as cloudsplaining's `scan --input-file` reads it.

    iam_details.py DEPLOYMENT > authorization-details.json

Runs with any python that has boto3 (the moto venv's), against AWS_ENDPOINT_URL. The
emulator leaves PolicyName and PolicyId out of the Policies list (and may leave out the
policy versions): they are filled from GetPolicy / GetPolicyVersion, which is what AWS
returns there anyway.
"""

import json
import sys

import boto3


def pages(iam):
    out = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}
    for page in iam.get_paginator("get_account_authorization_details").paginate():
        for key in out:
            out[key].extend(page.get(key, []))
    return out


def main(deployment):
    iam = boto3.client("iam")
    roles = {f"{deployment}-sideload-lambda", f"{deployment}-dashboard-ec2"}
    details = pages(iam)
    kept = [r for r in details["RoleDetailList"] if r.get("RoleName") in roles]
    if {r["RoleName"] for r in kept} != roles:
        sys.exit(f"expected the roles {sorted(roles)}, found {sorted(r['RoleName'] for r in kept)}")
    attached = {p["PolicyArn"] for r in kept for p in r.get("AttachedManagedPolicies", [])}
    policies = []
    for arn in sorted(attached):
        found = next((p for p in details["Policies"] if p.get("Arn") == arn), {"Arn": arn})
        meta = iam.get_policy(PolicyArn=arn)["Policy"]
        for key in ("PolicyName", "PolicyId", "Path", "DefaultVersionId", "AttachmentCount", "IsAttachable"):
            found.setdefault(key, meta.get(key))
        if not found.get("PolicyVersionList"):
            version = iam.get_policy_version(PolicyArn=arn, VersionId=meta["DefaultVersionId"])["PolicyVersion"]
            found["PolicyVersionList"] = [version]
        policies.append(found)
    out = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": kept, "Policies": policies}
    json.dump(out, sys.stdout, indent=1, default=str)
    print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
