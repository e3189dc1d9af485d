# shellcheck shell=bash
# Shared setup for scripts/test.sh and scripts/demo.sh. Source it; it does
# nothing on its own. Expects `set -euo pipefail` and the repo root as cwd.
#
#   emu_setup           install the emulator venv, then use $AWS_ENDPOINT_URL if
#                       the caller set it, else start moto (emu-start.sh) and
#                       stop it by PID on exit (also on failure or Ctrl-C)
#   emu_export_aws_env  export the endpoint, fake credentials and region for
#                       the process under test (pi-deploy / cargo test)
#   py_run CMD...       run a command (the venv's python) with a clean fake-AWS
#                       env and NO endpoint, for in-process tests (mock_aws)
#   banner TEXT         print a step banner
#   apt_install PKG...  apt-get install, running apt-get update when needed
#
# After emu_setup: CACHE, EMU_PY (venv python), EMU_ENDPOINT, EMU_STARTED_PORT
# (empty when an external endpoint is used). Paths appended to
# EMU_CLEANUP_PATHS are removed on exit.

CACHE="${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}"
export PI_DEPLOY_CACHE="$CACHE"
EMU_PY=""
EMU_ENDPOINT=""
EMU_STARTED_PORT=""
EMU_CLEANUP_PATHS=()
EMU_REGION="eu-west-1"

banner() {
  printf '\n==== %s ====\n' "$*" >&2
}

apt_install() {
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      printf 'cannot install %s: not root and no sudo\n' "$*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'cannot install %s: no apt-get\n' "$*" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # No package lists yet (fresh machine): fetch them first. Stale lists: the
  # first install fails, then update and retry.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    "${sudo[@]}" apt-get update -q >&2
  fi
  if ! "${sudo[@]}" apt-get install -y -q "$@" >&2; then
    "${sudo[@]}" apt-get update -q >&2
    "${sudo[@]}" apt-get install -y -q "$@" >&2
  fi
}

emu_cleanup() {
  local rc=$?
  if [[ -n "$EMU_STARTED_PORT" ]]; then
    bash scripts/emu-stop.sh "$EMU_STARTED_PORT" || true
    EMU_STARTED_PORT=""
  fi
  if ((${#EMU_CLEANUP_PATHS[@]} > 0)); then
    rm -rf -- "${EMU_CLEANUP_PATHS[@]}"
  fi
  return "$rc"
}

emu_setup() {
  trap emu_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
    # shellcheck source=/dev/null
    . "$HOME/.cargo/env"
  fi

  banner "emulator venv (scripts/emu-install.sh)"
  EMU_PY="$(bash scripts/emu-install.sh)"
  printf 'python: %s\n' "$EMU_PY" >&2

  if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    EMU_ENDPOINT="$AWS_ENDPOINT_URL"
    banner "using the caller's AWS_ENDPOINT_URL=$EMU_ENDPOINT (moto not started)"
  else
    banner "starting moto (scripts/emu-start.sh)"
    local exports
    exports="$(bash scripts/emu-start.sh)"
    eval "$exports"
    EMU_STARTED_PORT="${PI_DEPLOY_EMU_PORT:?emu-start.sh printed no port}"
    EMU_ENDPOINT="$AWS_ENDPOINT_URL"
    # Exported again by emu_export_aws_env, for the process under test only.
    unset AWS_ENDPOINT_URL PI_DEPLOY_TEST_ENDPOINT
  fi
}

# Fake credentials, no profile or metadata lookups: nothing can reach real AWS.
_emu_fake_aws_env() {
  unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN \
    AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  export AWS_EC2_METADATA_DISABLED=true
  export AWS_CONFIG_FILE=/dev/null
  export AWS_SHARED_CREDENTIALS_FILE=/dev/null
  export AWS_ACCESS_KEY_ID=test
  export AWS_SECRET_ACCESS_KEY=test
  export AWS_REGION="$EMU_REGION"
  export AWS_DEFAULT_REGION="$EMU_REGION"
}

emu_export_aws_env() {
  _emu_fake_aws_env
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
  export AWS_ENDPOINT_URL="$EMU_ENDPOINT"
  export PI_DEPLOY_TEST_ENDPOINT="$EMU_ENDPOINT"
  export PI_DEPLOY_EMU_PYTHON="$EMU_PY"
}

py_run() {
  (
    _emu_fake_aws_env
    unset AWS_ENDPOINT_URL
    export PYTHONDONTWRITEBYTECODE=1
    "$@"
  )
}
