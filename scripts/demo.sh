#!/usr/bin/env bash
# Run the pi-deploy demo against a local AWS emulator: `bash scripts/demo.sh`
#
#   1. install the moto venv and start moto (as scripts/test.sh does; moto is
#      stopped by PID on exit), unless AWS_ENDPOINT_URL is already set
#   2. cargo build --locked --features fault-injection (debug), into CARGO_TARGET_DIR
#      (default "${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}/target"): the flavour
#      scripts/test.sh tests, so that it reuses this build (Cargo.toml says why);
#      the injected faults and latencies stay off unless their variables are set
#   3. pi-deploy up      --deployment demo --ami $PI_DEMO_AMI_A --yes
#   4. pi-deploy upgrade --deployment demo --ami $PI_DEMO_AMI_B --yes
#      (only if `pi-deploy --help` lists an `upgrade` command)
#   5. pi-deploy destroy --deployment demo --yes --skip-final-snapshot
#      --disable-deletion-protection (the demo database is protected by default)
#
# Every pi-deploy call gets --state-dir pointing at a temporary directory
# (removed on exit) and the emulator env (fake credentials, eu-west-1).
# AMI ids come from scripts/emu-amis.env (override with PI_DEMO_AMI_A/B).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=emu-lib.sh
. scripts/emu-lib.sh
# shellcheck source=emu-amis.env
. scripts/emu-amis.env
ami_a="${PI_DEMO_AMI_A:?}"
ami_b="${PI_DEMO_AMI_B:?}"

emu_setup
emu_export_aws_env

banner "cargo build --locked --features fault-injection (target $CARGO_TARGET_DIR)"
cargo build --locked --features fault-injection
bin="$CARGO_TARGET_DIR/debug/pi-deploy"

state_dir="$(mktemp -d "${TMPDIR:-/tmp}/pi-deploy-demo.XXXXXX")"
EMU_CLEANUP_PATHS+=("$state_dir")

pi() {
  printf '+ pi-deploy %s --state-dir %s\n' "$*" "$state_dir" >&2
  "$bin" "$@" --state-dir "$state_dir"
}

printf '\nendpoint %s, region %s, state dir %s\n' "$AWS_ENDPOINT_URL" "$AWS_REGION" "$state_dir" >&2

banner "1/3 pi-deploy up (AMI $ami_a)"
pi up --deployment demo --ami "$ami_a" --yes

help_text="$("$bin" --help)"
if grep -qE '^[[:space:]]+upgrade([[:space:]]|$)' <<<"$help_text"; then
  banner "2/3 pi-deploy upgrade (AMI $ami_b)"
  pi upgrade --deployment demo --ami "$ami_b" --yes
else
  banner "2/3 pi-deploy upgrade: skipped (pi-deploy --help lists no upgrade command)"
fi

banner "3/3 pi-deploy destroy"
pi destroy --deployment demo --yes --skip-final-snapshot --disable-deletion-protection

banner "demo finished"
