#!/usr/bin/env bash
# Stop a moto server started by scripts/emu-start.sh, by PID only.
#
# Usage: bash scripts/emu-stop.sh [PORT]
#
# PORT defaults to $PI_DEPLOY_EMU_PORT (exported by emu-start.sh); without
# either, the one server listed in the run dir is stopped (it is an error if
# there are several). The PID comes from
# "${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}/run/moto-PORT.pid" and is only
# signalled if that process is still our launcher (guards against PID reuse).
# SIGTERM first, SIGKILL after 5 s. Exits 0 if the server is already gone.
set -euo pipefail

cache="${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}"
run_dir="$cache/run"

log() { printf 'emu-stop: %s\n' "$*" >&2; }

port="${1:-${PI_DEPLOY_EMU_PORT:-}}"
if [[ -z "$port" ]]; then
  shopt -s nullglob
  pid_files=("$run_dir"/moto-*.pid)
  shopt -u nullglob
  if ((${#pid_files[@]} == 0)); then
    log "no moto server recorded in $run_dir"
    exit 0
  fi
  if ((${#pid_files[@]} > 1)); then
    log "several moto servers recorded in $run_dir; pass the port:"
    printf '  %s\n' "${pid_files[@]}" >&2
    exit 1
  fi
  port="$(basename "${pid_files[0]}" .pid)"
  port="${port#moto-}"
fi
if [[ ! "$port" =~ ^[0-9]+$ ]]; then
  log "bad port: $port"
  exit 1
fi

pid_file="$run_dir/moto-$port.pid"
port_file="$run_dir/moto-$port.port"
if [[ ! -f "$pid_file" ]]; then
  log "no pid file $pid_file (already stopped?)"
  rm -f "$port_file"
  exit 0
fi
pid="$(cat "$pid_file")"
if [[ ! "$pid" =~ ^[0-9]+$ ]]; then
  log "bad pid in $pid_file: $pid"
  exit 1
fi

is_ours() {
  # /proc/PID/cmdline is NUL-separated; look for the launcher script.
  [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'moto_launcher.py'
}

if kill -0 "$pid" 2>/dev/null; then
  if [[ -d /proc/$pid ]] && ! is_ours; then
    log "pid $pid is no longer moto (port $port); not signalling it"
  else
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped moto on port $port (pid $pid)"
  fi
else
  log "moto on port $port (pid $pid) was not running"
fi
rm -f "$pid_file" "$port_file"
