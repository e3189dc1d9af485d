"""Judge a Prowler run (OCSF JSON) and a cloudsplaining run for scripts/security-scan.sh.

    evaluate.py prowler  FINDINGS.ocsf.json STATE.json ARTEFACTS TRADEOFFS SUMMARY.md
    evaluate.py cloudsplaining RESULTS.json ARTEFACTS TRADEOFFS SUMMARY.md

Only findings on the deployment's own resources count: a resource whose uid (ARN or id)
names an id or name that the state file records, or the deployment's name. Every FAIL of
medium severity or above among them must be listed, by check id, in the emulator artefacts
(what only the emulator gets wrong) or in the declared trade-offs (what pi-deploy chose,
with the config switch that changes it). Lists: one entry a line, `check id | why | switch`,
`#` starts a comment. An entry that matches nothing is reported (stale), not fatal.

Exit 0 when nothing is undeclared, 1 otherwise. Standard library only.
"""

import json
import sys
from collections import Counter, defaultdict

SEVERITIES = ["Critical", "High", "Medium", "Low", "Informational"]
BLOCKING = {"Critical", "High", "Medium"}


def load_list(path):
    entries = {}
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split("|")]
            if len(parts) != 3 or not parts[0] or not parts[1]:
                sys.exit(f"{path}:{n}: expected `check id | why | switch` (switch may be `-`)")
            entries[parts[0]] = {"why": parts[1], "switch": parts[2]}
    return entries


def state_markers(state_path):
    """Ids, ARNs and names the state records for the deployment, and its name."""
    with open(state_path, encoding="utf-8") as f:
        state = json.load(f)
    markers = {state.get("deployment", "")}
    for rec in state.get("resources", {}).values():
        for v in (rec.get("outputs") or {}).values():
            if isinstance(v, str) and len(v) >= 6:
                markers.add(v)
        for v in (rec.get("ids") or {}).values():
            if isinstance(v, str) and len(v) >= 6:
                markers.add(v)
    markers.discard("")
    return markers


def ours(uid, name, markers):
    text = f"{uid} {name}"
    return any(m in text for m in markers)


def prowler(findings_path, state_path, artefacts_path, tradeoffs_path, summary_path):
    with open(findings_path, encoding="utf-8") as f:
        findings = json.load(f)
    markers = state_markers(state_path)
    artefacts = load_list(artefacts_path)
    tradeoffs = load_list(tradeoffs_path)
    checks_run = set()
    counts = defaultdict(Counter)  # status -> severity -> n (our resources)
    other = Counter()
    undeclared = []
    declared = defaultdict(list)
    for fd in findings:
        check = fd["metadata"]["event_code"]
        checks_run.add(check)
        status = fd.get("status_code", "?")
        severity = fd.get("severity", "?")
        res = (fd.get("resources") or [{}])[0]
        uid, name = res.get("uid", ""), res.get("name", "")
        if not ours(uid, name, markers):
            other[status] += 1
            continue
        counts[status][severity] += 1
        if status != "FAIL" or severity not in BLOCKING:
            continue
        line = f"{check} [{severity}] {uid}: {fd.get('status_detail', '')}"
        if check in artefacts:
            declared["emulator artefact"].append((check, line))
        elif check in tradeoffs:
            declared["trade-off"].append((check, line))
        else:
            undeclared.append(line)
    used = {c for items in declared.values() for c, _ in items}
    stale = sorted(c for c in set(artefacts) | set(tradeoffs) if c not in used and ":" not in c)
    out = ["## Prowler", "", f"Checks run: {len(checks_run)}; findings: {len(findings)} "
           f"({sum(sum(c.values()) for c in counts.values())} on the deployment's resources, "
           f"{sum(other.values())} on other resources of the account or account-wide).", "",
           "| status | " + " | ".join(SEVERITIES) + " | total |",
           "|---|" + "---|" * (len(SEVERITIES) + 1)]
    for status in ["PASS", "FAIL", "MANUAL"]:
        row = [str(counts[status][s]) for s in SEVERITIES]
        out.append(f"| {status} | " + " | ".join(row) + f" | {sum(counts[status].values())} |")
    for what, items in declared.items():
        out += ["", f"Medium+ FAILs declared as {what}s ({len(items)}):"]
        out += [f"- {line}" for _, line in sorted(items)]
    if stale:
        out += ["", "List entries that matched no finding this run: " + ", ".join(stale)]
    if undeclared:
        out += ["", f"UNDECLARED medium+ FAILs ({len(undeclared)}):"]
        out += [f"- {line}" for line in sorted(undeclared)]
    text = "\n".join(out) + "\n"
    with open(summary_path, "a", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 1 if undeclared else 0


RISKS = [
    "PrivilegeEscalation",
    "DataExfiltration",
    "ResourceExposure",
    "CredentialsExposure",
    "InfrastructureModification",
    "ServiceWildcard",
]


def risk_findings(value):
    """cloudsplaining 0.9 writes each risk as {severity, description, findings: [...]};
    older releases as a bare list."""
    if isinstance(value, dict):
        return value.get("findings") or []
    return value or []


def cloudsplaining(results_path, artefacts_path, tradeoffs_path, summary_path):
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    artefacts = load_list(artefacts_path)
    tradeoffs = load_list(tradeoffs_path)
    undeclared, declared, clean = [], [], []
    for group in ("customer_managed_policies", "inline_policies", "aws_managed_policies"):
        for pid, pol in (results.get(group) or {}).items():
            name = pol.get("PolicyName", pid)
            found = {r: risk_findings(pol.get(r)) for r in RISKS}
            found = {r: f for r, f in found.items() if f}
            if not found:
                clean.append(f"{group}: {name}")
            for risk, actions in sorted(found.items()):
                key = f"cloudsplaining:{name}:{risk}"
                line = f"{key} ({group}): {', '.join(map(str, actions))[:300]}"
                if key in artefacts or key in tradeoffs:
                    declared.append(line)
                else:
                    undeclared.append(line)
    out = ["## cloudsplaining", "",
           f"Policies analysed: {len(clean) + len({l.split(' (')[0].rsplit(':', 1)[0] for l in declared + undeclared})}; "
           f"without findings: {len(clean)}."]
    out += [f"- clean: {c}" for c in sorted(clean)]
    if declared:
        out += ["", "Declared:"] + [f"- {l}" for l in sorted(declared)]
    if undeclared:
        out += ["", f"UNDECLARED ({len(undeclared)}):"] + [f"- {l}" for l in sorted(undeclared)]
    text = "\n".join(out) + "\n"
    with open(summary_path, "a", encoding="utf-8") as f:
        f.write(text)
    print(text)
    return 1 if undeclared else 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "prowler":
        sys.exit(prowler(*sys.argv[2:]))
    if len(sys.argv) == 6 and sys.argv[1] == "cloudsplaining":
        sys.exit(cloudsplaining(*sys.argv[2:]))
    sys.exit(__doc__)
