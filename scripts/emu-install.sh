#!/usr/bin/env bash
# Install the local AWS emulator (moto server 5.2.5) and pytest into a Python
# venv OUTSIDE the repository:
#
#   "${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}/venv"
#
# Usage: bash scripts/emu-install.sh
#
# - Versions are pinned by tests/emu/moto-constraints.txt (pip -c) and below.
# - Idempotent: a stamp file in the venv holds a hash of the constraints file,
#   this script and the python3 version; when it matches, the script exits at
#   once. Delete the venv (or the stamp) to force a reinstall.
# - Needs python3 (from PATH) with the venv module. If venv creation fails and
#   apt-get is usable (root or sudo), python3-venv is installed and the venv is
#   created again.
# - Prints the venv's python path on stdout (all progress goes to stderr).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}"
venv="$cache/venv"
py="$venv/bin/python"
constraints="$repo_root/tests/emu/moto-constraints.txt"
stamp="$venv/.pi-deploy-install-stamp"

# Exact pins. moto's own dependencies are pinned by the constraints file;
# pytest's are pinned here (the constraints file is a verbatim copy of the
# design's and does not list them).
requirements=(
  'moto[server]==5.2.5'
  'pytest==8.4.2'
  'iniconfig==2.3.1'
  'packaging==26.4'
  'pluggy==1.7.0'
  'Pygments==2.21.0'
)

log() { printf 'emu-install: %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1; then
  log "python3 is not on PATH; install it first (e.g. apt-get install -y python3)"
  exit 1
fi
if [[ ! -f "$constraints" ]]; then
  log "missing $constraints"
  exit 1
fi

want="$(
  {
    cat "$constraints" "${BASH_SOURCE[0]}"
    python3 -c 'import sys; print(sys.version)'
  } | sha256sum | cut -d' ' -f1
)"

venv_ok() {
  [[ -x "$py" ]] && "$py" -c 'import sys' >/dev/null 2>&1
}

if venv_ok && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
  printf '%s\n' "$py"
  exit 0
fi

mkdir -p "$cache"

# Serialize concurrent installs (e.g. test.sh and demo.sh started together).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/venv.lock"
  flock 9
  # Another run may have finished the job while we waited.
  if venv_ok && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
    printf '%s\n' "$py"
    exit 0
  fi
fi

apt_install() {
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      return 1
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y "$@" >&2; then
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y "$@" >&2
  fi
}

make_venv() {
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
}

if ! venv_ok; then
  log "creating venv at $venv"
  if ! make_venv; then
    log "python3 -m venv failed; installing python3-venv with apt-get"
    ver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    apt_install python3-venv || apt_install "python${ver}-venv" || {
      log "could not install python3-venv; install it by hand and re-run"
      exit 1
    }
    make_venv
  fi
fi

rm -f "$stamp"
log "installing ${requirements[*]} (constraints: tests/emu/moto-constraints.txt)"
"$py" -m pip install --disable-pip-version-check -q \
  -c "$constraints" "${requirements[@]}" >&2
"$py" -c 'import moto, moto.server, pytest, yaml, boto3' >&2
printf '%s\n' "$want" >"$stamp"
log "ready: $py (moto $("$py" -c 'import moto; print(moto.__version__)'))"
printf '%s\n' "$py"
