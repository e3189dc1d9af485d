#!/usr/bin/env bash
# Run every check and test of the project: `bash scripts/test.sh [CARGO TEST ARGS]`
#
# Needs only the Rust toolchain, python3 and apt-get (as root or with sudo);
# installs what is missing: shellcheck (apt), python3-venv (apt, if venv
# creation fails), the moto venv (scripts/emu-install.sh, outside the repo in
# "${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}/venv").
#
# Steps, in order (any failure stops the run; moto is stopped by PID on exit):
#   1. shellcheck: scripts/**/*.sh, .ci/*.sh, .ci/run, templates/*.sh
#   2. pytest under lambda/ (if the directory exists)
#   3. YAML syntax of docker-compose.localstack.yml (if present)
#   4. tests/emu/check_launcher_fix.py (the moto launcher's bug fixes) and
#      tests/emu/probe_conditional_writes.py (S3 If-None-Match / If-Match, races)
#   5. cargo fmt --all -- --check
#   6. cargo test --locked --features fault-injection "$@"  (PI_TEST_FAULTS=0: without)
#                                   e.g. scripts/test.sh -- --nocapture
#      tests/integration/crash.rs kills up/destroy/upgrade, a day-2 update, an `up`
#      that rolls the instances, an `up` that upgrades the engine a major version
#      (a create-before-destroy replace) and an `up` that does both at once at EVERY
#      state transition
#      when the executor or state code changed since the last exhaustive pass (hash in
#      $CACHE/crash-exhaustive.sha256), else at a sample; PI_DEPLOY_CRASH_EVERY=1 or 0
#      forces either (figures in docs/RELIABILITY.md)
#   7. a representative part of the integration suite again with every
#      deployment's state in S3 on the emulator (PI_DEPLOY_TEST_STATE=s3):
#      when no cargo arguments were given, or PI_TEST_S3_STATE=1 (=0 skips)
#   8. scripts/security-scan.sh: Prowler and cloudsplaining over a fresh deployment on the
#      same endpoint (docs/SECURITY.md); fails on an undeclared medium+ finding. On a full
#      run (no cargo test arguments) or PI_TEST_SECURITY_SCAN=1 (=0 skips). The first run
#      builds the two scanner venvs under the cache dir (measured from nothing: 6 min,
#      2.3 GB); skipped with a message when the pinned scanners cannot be installed (no PyPI)
#
# Endpoint: moto 5.2.5 on a free 127.0.0.1 port, unless AWS_ENDPOINT_URL is
# already set (e.g. LocalStack: AWS_ENDPOINT_URL=http://127.0.0.1:4566), in
# which case that endpoint is used and moto is not started.
# Exported for cargo test: AWS_ENDPOINT_URL, PI_DEPLOY_TEST_ENDPOINT,
# PI_DEPLOY_EMU_PYTHON, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY=test,
# AWS_REGION=eu-west-1, AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE=/dev/null,
# AWS_EC2_METADATA_DISABLED=true, CARGO_TARGET_DIR (default $CACHE/target).
#
# PI_TEST_SKIP_CARGO=1 stops after step 4 (for working on the scripts only).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=emu-lib.sh
. scripts/emu-lib.sh

started=$SECONDS

# ---- tools ----------------------------------------------------------------
if ! command -v shellcheck >/dev/null 2>&1; then
  banner "installing shellcheck (apt-get)"
  apt_install shellcheck
fi

emu_setup

# ---- 1. shellcheck --------------------------------------------------------
banner "shellcheck"
sh_files=()
for dir in scripts .ci; do
  if [[ -d "$dir" ]]; then
    while IFS= read -r -d '' f; do
      sh_files+=("$f")
    done < <(find "$dir" -type f -name '*.sh' -print0 | sort -z)
  fi
done
[[ -f .ci/run ]] && sh_files+=(.ci/run)
if [[ -d templates ]]; then
  shopt -s nullglob
  sh_files+=(templates/*.sh)
  shopt -u nullglob
fi
printf '  %s\n' "${sh_files[@]}" >&2
shellcheck -x "${sh_files[@]}"
printf 'shellcheck: %d files OK\n' "${#sh_files[@]}" >&2

# ---- 2. lambda pytest -----------------------------------------------------
if [[ -d lambda ]]; then
  banner "pytest lambda/"
  lambda_tests=()
  while IFS= read -r -d '' f; do
    lambda_tests+=("$f")
  done < <(find lambda -type f \( -name 'test_*.py' -o -name '*_test.py' \) -print0)
  rc=0
  py_run "$EMU_PY" -m pytest -p no:cacheprovider lambda || rc=$?
  if ((rc == 5)) && ((${#lambda_tests[@]} == 0)); then
    printf 'pytest: no test files under lambda/ (exit 5 accepted)\n' >&2
  elif ((rc != 0)); then
    printf 'pytest failed (exit %d)\n' "$rc" >&2
    exit "$rc"
  fi
fi

# ---- 3. docker-compose.localstack.yml -------------------------------------
if [[ -f docker-compose.localstack.yml ]]; then
  banner "YAML check: docker-compose.localstack.yml"
  py_run "$EMU_PY" - docker-compose.localstack.yml <<'EOF'
import sys

import yaml

path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    doc = yaml.safe_load(f)
if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
    sys.exit(f"{path}: expected a mapping with a 'services' mapping")
print(f"{path}: OK (services: {', '.join(doc['services'])})")
EOF
fi

# ---- 4. moto launcher fix -------------------------------------------------
banner "tests/emu/check_launcher_fix.py"
check_args=()
if [[ -n "$EMU_STARTED_PORT" ]]; then
  # Only against our own moto: the check creates (and deletes) an ASG.
  check_args=(--endpoint "$EMU_ENDPOINT")
fi
py_run "$EMU_PY" tests/emu/check_launcher_fix.py "${check_args[@]}"
# What the endpoint does with S3's conditional writes (the S3 state store relies on them).
banner "tests/emu/probe_conditional_writes.py"
py_run "$EMU_PY" tests/emu/probe_conditional_writes.py --endpoint "$EMU_ENDPOINT" --rounds 20

if [[ "${PI_TEST_SKIP_CARGO:-}" == 1 ]]; then
  banner "PI_TEST_SKIP_CARGO=1: skipping cargo fmt and cargo test"
  exit 0
fi

# ---- 5./6. cargo ----------------------------------------------------------
emu_export_aws_env
banner "cargo fmt --all -- --check"
cargo fmt --all -- --check

# The crash tests (tests/integration/crash.rs) kill up, destroy, upgrade, a day-2 update run,
# an `up` that rolls the instances, one that replaces the parameter group (a major engine
# upgrade), one that does both, a `restore` of the database and one of the file system at every
# state transition when the code they guard
# changed since the last exhaustive pass, else at a sample (docs/RELIABILITY.md has the
# figures). The pass is recorded as the hash of those files in $CACHE/crash-exhaustive.sha256,
# written only after the whole cargo test passed with all ten crash tests reporting every
# transition. A caller's PI_DEPLOY_CRASH_EVERY
# (1 or 0) decides instead.
crash_guarded=(src/core/executor.rs src/core/executor src/core/state.rs src/state_file.rs
  src/core/upgrade.rs src/commands/upgrade.rs src/commands/destroy.rs src/commands/up.rs
  src/core/plan.rs src/resources/fleet.rs src/core/restore.rs src/commands/restore.rs
  src/resources/restore.rs src/commands/restore_fs.rs)
crash_stamp="$CACHE/crash-exhaustive.sha256"
crash_hash="$({ find "${crash_guarded[@]}" -type f -print0 2>/dev/null || true; } |
  LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)"
crash_last="$(cat "$crash_stamp" 2>/dev/null || true)"
if [[ -n "${PI_DEPLOY_CRASH_EVERY:-}" ]]; then
  crash_why="PI_DEPLOY_CRASH_EVERY=$PI_DEPLOY_CRASH_EVERY set by the caller"
elif [[ "$crash_last" != "$crash_hash" ]]; then
  export PI_DEPLOY_CRASH_EVERY=1
  crash_why="the executor or state code changed since the last exhaustive pass (${crash_last:-none} -> $crash_hash)"
else
  export PI_DEPLOY_CRASH_EVERY=0
  crash_why="the executor and state code are as at the last exhaustive pass ($crash_stamp)"
fi
crash_variant="every 5th transition and the first and last 3"
[[ "$PI_DEPLOY_CRASH_EVERY" == 1 ]] && crash_variant="EVERY transition (exhaustive)"
crash_reports="$(mktemp -d)"
EMU_CLEANUP_PATHS+=("$crash_reports")
export PI_DEPLOY_CRASH_REPORT_DIR="$crash_reports"
banner "crash tests: $crash_variant, because $crash_why"

# The fault-injection feature only adds src/aws/fault.rs (inactive unless PI_DEPLOY_FAULTS
# is set) and tests/integration/faults.rs; CI builds one flavour, so it costs no extra build.
# PI_TEST_FAULTS=0 builds without it (the faults test is then not compiled).
features=(--features fault-injection)
if [[ "${PI_TEST_FAULTS:-1}" == 0 ]]; then
  features=()
fi
banner "cargo test --locked ${features[*]} $* (endpoint $AWS_ENDPOINT_URL, target $CARGO_TARGET_DIR)"
cargo test --locked "${features[@]}" "$@"

shopt -s nullglob
crash_done=("$crash_reports"/*.txt)
shopt -u nullglob
if ((${#crash_done[@]} > 0)); then
  banner "crash tests ($crash_variant)"
  cat "${crash_done[@]}" >&2
fi
if [[ "$PI_DEPLOY_CRASH_EVERY" == 1 ]]; then
  crash_every=0
  for name in up destroy upgrade update roll major-upgrade roll-replace restore restore-finish-abort files-restore; do
    if grep -qs '(every transition)' "$crash_reports/$name.txt"; then
      crash_every=$((crash_every + 1))
    fi
  done
  if ((crash_every == 10)); then
    mkdir -p "$CACHE"
    printf '%s\n' "$crash_hash" >"$crash_stamp"
    printf 'crash tests: exhaustive pass recorded in %s\n' "$crash_stamp" >&2
  else
    printf 'crash tests: %d of 10 ran at every transition (a test filter?): no stamp written\n' "$crash_every" >&2
  fi
fi

# ---- 7. the state in S3 ---------------------------------------------------
# tests/integration/state_s3.rs (two runs at once, a killed holder, a state changed behind a
# run, push/pull, state init) ran in step 6; it always uses S3. These run the same tests as
# step 6 with the state in an S3 bucket of the emulator instead of a directory
# (tests/integration/common.rs), chosen to cover refusals, plan/status/outputs, destroy, a
# killed run, the secret scan of every state version and the commands that read the state
# without its lock (sideload, connect, logs) (docs/RELIABILITY.md has the times).
s3_tests=(hostile_state:: operator:: destroy:: network::killed data::secret_values day_to_day::)
if [[ "${PI_TEST_S3_STATE:-}" == 1 || (-z "${PI_TEST_S3_STATE:-}" && $# -eq 0) ]]; then
  banner "integration tests with the state in S3 (PI_DEPLOY_TEST_STATE=s3): ${s3_tests[*]}"
  s3_started=$SECONDS
  PI_DEPLOY_TEST_STATE=s3 cargo test --locked "${features[@]}" --test integration -- "${s3_tests[@]}"
  printf 'state in S3: passed in %d s\n' "$((SECONDS - s3_started))" >&2
fi

# ---- 8. security scan -----------------------------------------------------
if [[ "${PI_TEST_SECURITY_SCAN:-}" == 0 ]]; then
  banner "security scan: skipped (PI_TEST_SECURITY_SCAN=0)"
elif (($# > 0)) && [[ "${PI_TEST_SECURITY_SCAN:-}" != 1 ]]; then
  banner "security scan: skipped (a filtered run: cargo test $*); PI_TEST_SECURITY_SCAN=1 runs it, or bash scripts/security-scan.sh"
else
  scan_rc=0
  bash scripts/security-scan.sh || scan_rc=$?
  if ((scan_rc == 77)); then
    banner "security scan: SKIPPED (the scanners could not be installed; see above)"
  elif ((scan_rc != 0)); then
    exit "$scan_rc"
  fi
fi

banner "all checks passed in $((SECONDS - started)) s"
