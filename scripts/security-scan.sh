#!/usr/bin/env bash
# Scan a fresh emulator deployment with Prowler and cloudsplaining:
#
#   bash scripts/security-scan.sh            (scripts/test.sh runs it after cargo test)
#
# 1. Installs, each in its own venv under the cache dir (their boto3 pins conflict with
#    each other and with moto's): Prowler and cloudsplaining at the versions pinned below,
#    once (measured from nothing: 6 min, 2.3 GB). Exit 77 (skipped) when they cannot be
#    installed (no PyPI), with the reason.
# 2. Starts moto (scripts/emu-lib.sh) unless AWS_ENDPOINT_URL is set, builds pi-deploy and
#    runs `pi-deploy up` of the default config (deployment `scan`, the demo AMI).
# 3. Prowler over the services pi-deploy uses (PROWLER_SERVICES), through
#    tests/security/prowler_shim.py (botocore sends every service to AWS_ENDPOINT_URL; the
#    shim strips the account-id host prefix S3 Control puts on its endpoint, which cannot
#    resolve on a loopback address).
# 4. cloudsplaining over GetAccountAuthorizationDetails, cut down to the deployment's two
#    roles and the policies they attach (tests/security/iam_details.py fills PolicyName and
#    PolicyId from GetPolicy where the emulator leaves them out).
# 5. tests/security/evaluate.py: fails on any FAIL of medium or higher severity on the
#    deployment's resources (and any cloudsplaining finding) that is not listed in
#    tests/security/emulator-artefacts.txt or tests/security/trade-offs.txt.
#
# Writes the figures to $PI_SCAN_OUT (default: a temp dir, removed at exit unless
# PI_SCAN_KEEP=1) as summary.md; docs/SECURITY.md quotes them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=emu-lib.sh
. scripts/emu-lib.sh
# shellcheck source=emu-amis.env
. scripts/emu-amis.env

readonly PROWLER_VERSION=5.46.0
readonly CLOUDSPLAINING_VERSION=0.9.1
readonly PROWLER_SERVICES=(ec2 vpc s3 rds efs iam elbv2 awslambda secretsmanager ssm cloudwatch autoscaling)
readonly DEPLOYMENT=scan
readonly SKIPPED=77

started=$SECONDS

# venv_for NAME REQUIREMENT [PIP OPTIONS...]: a venv at $CACHE/scan-NAME holding
# REQUIREMENT, installed once (a stamp holds the requirement and python's version). Prints
# its python; fails (1) when pip cannot install it.
venv_for() {
  local dir="$CACHE/scan-$1" req="$2" want
  shift 2
  want="$req $(python3 -c 'import sys; print(sys.version)')"
  if [[ -x $dir/bin/python && "$(cat "$dir/.stamp" 2>/dev/null)" == "$want" ]]; then
    printf '%s\n' "$dir/bin/python"
    return 0
  fi
  rm -rf "$dir"
  printf 'installing %s into %s\n' "$req" "$dir" >&2
  python3 -m venv "$dir" >&2 || return 1
  if ! "$dir/bin/python" -m pip install --disable-pip-version-check -q "$@" "$req" >&2; then
    rm -rf "$dir"
    return 1
  fi
  printf '%s\n' "$want" >"$dir/.stamp"
  printf '%s\n' "$dir/bin/python"
}

emu_setup

# cloudsplaining first, with a short timeout: small (10 s), so without PyPI the scan is
# skipped in about a minute instead of pip's long retries on Prowler (6 min from nothing).
banner "scanner venvs (prowler==$PROWLER_VERSION, cloudsplaining==$CLOUDSPLAINING_VERSION)"
if ! cs_py="$(venv_for cloudsplaining "cloudsplaining==$CLOUDSPLAINING_VERSION" --timeout 30 --retries 1)" ||
  ! prowler_py="$(venv_for prowler "prowler==$PROWLER_VERSION")"; then
  printf 'security scan SKIPPED: could not install the pinned scanners from PyPI (see the pip output above)\n' >&2
  exit "$SKIPPED"
fi

emu_export_aws_env
out="${PI_SCAN_OUT:-}"
if [[ -z $out ]]; then
  out="$(mktemp -d "${TMPDIR:-/tmp}/pi-deploy-scan.XXXXXX")"
  [[ "${PI_SCAN_KEEP:-}" == 1 ]] || EMU_CLEANUP_PATHS+=("$out")
fi
mkdir -p "$out"
state_dir="$out/state"
: >"$out/summary.md"

# The binary as test.sh builds it (the test build's features, so the AWS SDK is not
# compiled a second time; after test.sh's cargo test this builds nothing).
banner "cargo test --locked --features fault-injection --no-run (target $CARGO_TARGET_DIR)"
cargo test --locked --features fault-injection --no-run
bin="$CARGO_TARGET_DIR/debug/pi-deploy"

banner "pi-deploy up --deployment $DEPLOYMENT (endpoint $AWS_ENDPOINT_URL)"
t0=$SECONDS
"$bin" up --deployment "$DEPLOYMENT" --ami "$PI_DEMO_AMI_A" --state-dir "$state_dir" -q
printf 'up: %d s\n' "$((SECONDS - t0))" >&2

banner "prowler aws --services ${PROWLER_SERVICES[*]}"
t0=$SECONDS
rc=0
PYTHONDONTWRITEBYTECODE=1 "$prowler_py" tests/security/prowler_shim.py aws \
  --region "$EMU_REGION" --services "${PROWLER_SERVICES[@]}" \
  --output-formats json-ocsf --output-directory "$out/prowler" --output-filename findings \
  --no-banner --ignore-exit-code-3 >"$out/prowler.log" 2>&1 || rc=$?
prowler_s=$((SECONDS - t0))
if ((rc != 0)); then
  tail -n 40 "$out/prowler.log" >&2
  printf 'prowler failed (exit %d) after %d s; log: %s/prowler.log\n' "$rc" "$prowler_s" "$out" >&2
  exit 1
fi
printf 'prowler: %d s\n' "$prowler_s" >&2

banner "cloudsplaining (the deployment's roles)"
t0=$SECONDS
"$EMU_PY" tests/security/iam_details.py "$DEPLOYMENT" >"$out/authorization-details.json"
mkdir -p "$out/cloudsplaining"
PYTHONDONTWRITEBYTECODE=1 "$(dirname "$cs_py")/cloudsplaining" scan \
  --input-file "$out/authorization-details.json" --output "$out/cloudsplaining" \
  --skip-open-report >"$out/cloudsplaining.log" 2>&1 || {
  tail -n 40 "$out/cloudsplaining.log" >&2
  exit 1
}
cs_s=$((SECONDS - t0))
printf 'cloudsplaining: %d s\n' "$cs_s" >&2

banner "findings"
verdict=0
"$EMU_PY" tests/security/evaluate.py prowler "$out/prowler/findings.ocsf.json" \
  "$state_dir/$DEPLOYMENT.json" tests/security/emulator-artefacts.txt \
  tests/security/trade-offs.txt "$out/summary.md" || verdict=1
cs_results="$(find "$out/cloudsplaining" -name 'iam-results-*.json' | head -n 1)"
"$EMU_PY" tests/security/evaluate.py cloudsplaining "$cs_results" \
  tests/security/emulator-artefacts.txt tests/security/trade-offs.txt "$out/summary.md" || verdict=1
printf '\nRun time: prowler %d s, cloudsplaining %d s, whole scan %d s.\n' \
  "$prowler_s" "$cs_s" "$((SECONDS - started))" | tee -a "$out/summary.md" >&2

if ((verdict != 0)); then
  banner "security scan FAILED: undeclared findings above (fix them, or declare them in tests/security/*.txt)"
  exit 1
fi
banner "security scan passed (summary: $out/summary.md)"
