#!/usr/bin/env bash
# Start moto server 5.2.5 (through tests/emu/moto_launcher.py) on 127.0.0.1 on a
# free port, wait until it answers, and print shell `export` lines for it.
#
# Interface: run it (do not `source` it) and eval its stdout:
#
#   exports="$(bash scripts/emu-start.sh)"   # fails (set -e) if moto did not start
#   eval "$exports"
#   ...                                      # AWS_ENDPOINT_URL now points at moto
#   bash scripts/emu-stop.sh "$PI_DEPLOY_EMU_PORT"
#
# (A plain `eval "$(bash scripts/emu-start.sh)"` also works interactively, but
# loses the exit status.) stdout carries only these lines:
#
#   export AWS_ENDPOINT_URL=http://127.0.0.1:PORT
#   export PI_DEPLOY_TEST_ENDPOINT=http://127.0.0.1:PORT
#   export PI_DEPLOY_EMU_PORT=PORT
#   export PI_DEPLOY_EMU_PID=PID
#   export PI_DEPLOY_EMU_PYTHON=/path/to/venv/bin/python
#
# Progress and the endpoint ("moto ready at ...") go to stderr. It sets no
# credentials or region: scripts/test.sh and scripts/demo.sh do that.
#
# Needs the venv from scripts/emu-install.sh (it is not run from here).
# Files, with CACHE="${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}":
#   $CACHE/moto-PORT.log       server log (kept for a week, for post-mortems)
#   $CACHE/run/moto-PORT.pid   server PID (emu-stop.sh kills this PID only)
#   $CACHE/run/moto-PORT.port  the port
# Several servers can run at once (one per port).
#
# Env: EMU_PORT=N uses that port instead of a free one; EMU_START_TIMEOUT
# (seconds, default 20) bounds the readiness wait.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PI_DEPLOY_CACHE:-$HOME/.cache/pi-deploy}"
run_dir="$cache/run"
py="$cache/venv/bin/python"
launcher="$repo_root/tests/emu/moto_launcher.py"
timeout_s="${EMU_START_TIMEOUT:-20}"

log() { printf 'emu-start: %s\n' "$*" >&2; }

if [[ ! -x "$py" ]]; then
  log "no emulator venv at $cache/venv: run scripts/emu-install.sh first"
  exit 1
fi
mkdir -p "$run_dir"
# Each server logs to its own file; drop the logs of servers from last week.
find "$cache" -maxdepth 1 -type f -name 'moto-*.log' -mtime +7 -delete 2>/dev/null || true

free_port() {
  "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

port_free() {
  "$py" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug does
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# Does process $1 hold a listening TCP socket on port $2? (Linux /proc; where
# /proc is missing, assume yes.) Guards against answering for a server that
# is not ours, e.g. another emulator on EMU_PORT.
owns_port() {
  [[ -d /proc/$1/fd ]] || return 0
  "$py" -c 'import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
inodes = set()
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A":
                    inodes.add(cols[9])
    except OSError:
        pass
fd_dir = f"/proc/{pid}/fd"
for fd in os.listdir(fd_dir):
    try:
        link = os.readlink(os.path.join(fd_dir, fd))
    except OSError:
        continue
    if link.startswith("socket:[") and link[8:-1] in inodes:
        sys.exit(0)
sys.exit(1)' "$1" "$2"
}

is_ready() {
  local url="http://127.0.0.1:$1/moto-api/data.json"
  if command -v curl >/dev/null 2>&1; then
    curl -sf -o /dev/null --max-time 2 "$url"
  else
    "$py" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()' "$url" >/dev/null 2>&1
  fi
}

# Start one server on $1; print its PID on success, return 1 if it died or
# never answered (it is then stopped).
start_on() {
  local port="$1" log_file="$cache/moto-$1.log" pid deadline
  if ! port_free "$port"; then
    log "port $port is already in use"
    return 1
  fi
  MOTO_IAM_LOAD_MANAGED_POLICIES=true MOTO_ENABLE_AMI_VALIDATION=true \
    "$py" "$launcher" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 </dev/null &
  pid=$!
  deadline=$((SECONDS + timeout_s))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "moto exited early on port $port; last lines of $log_file:"
      tail -n 20 "$log_file" >&2 || true
      return 1
    fi
    if is_ready "$port" && owns_port "$pid" "$port"; then
      printf '%s\n' "$pid"
      return 0
    fi
    sleep 0.1
  done
  log "moto did not answer on port $port within ${timeout_s}s; last lines of $log_file:"
  tail -n 20 "$log_file" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}

attempts=3
[[ -n "${EMU_PORT:-}" ]] && attempts=1
pid=""
for ((i = 1; i <= attempts; i++)); do
  port="${EMU_PORT:-$(free_port)}"
  if pid="$(start_on "$port")"; then
    break
  fi
  pid=""
done
if [[ -z "$pid" ]]; then
  log "could not start moto"
  exit 1
fi

printf '%s\n' "$pid" >"$run_dir/moto-$port.pid"
printf '%s\n' "$port" >"$run_dir/moto-$port.port"

endpoint="http://127.0.0.1:$port"
log "moto ready at $endpoint (pid $pid, log $cache/moto-$port.log)"
printf 'export %s=%q\n' \
  AWS_ENDPOINT_URL "$endpoint" \
  PI_DEPLOY_TEST_ENDPOINT "$endpoint" \
  PI_DEPLOY_EMU_PORT "$port" \
  PI_DEPLOY_EMU_PID "$pid" \
  PI_DEPLOY_EMU_PYTHON "$py"
