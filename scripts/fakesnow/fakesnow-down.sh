#!/usr/bin/env bash
# Stops the fakesnow server that scripts/fakesnow/fakesnow-up.sh started on the same state
# dir: exactly the process whose pid is in <state>/fakesnow.pid, after checking that it is
# that server (SIGINT, which fakesnow handles as its shutdown, up to 10 s; then SIGTERM, then
# SIGKILL). The state dir (the log) is left for inspection; the next fakesnow-up wipes it.
#
# Env: SLUICE_FAKESNOW_PORT (default 29480), SLUICE_FAKESNOW_STATE (default
# /tmp/sluice-fakesnow-<port>).
set -euo pipefail

port="${SLUICE_FAKESNOW_PORT:-29480}"
state="${SLUICE_FAKESNOW_STATE:-/tmp/sluice-fakesnow-${port}}"
pidfile="${state}/fakesnow.pid"

log() { printf 'fakesnow-down: %s\n' "$*" >&2; }

# alive PID: true while PID runs (a zombie counts as gone).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "${st}" != "Z" && -n "${st}" ]]
}

# ours PID: true if PID is the fakesnow server fakesnow-up.sh started on this state dir and port.
ours() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
  [[ "${cmd}" == *" ${state}/launch.py --server --host 127.0.0.1 --port ${port} "* ]]
}

# wait_gone PID TENTHS: true once PID is gone, within TENTHS tenths of a second.
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    alive "$1" || return 0
    sleep 0.1
  done
  ! alive "$1"
}

if [[ ! -f "${pidfile}" ]]; then
  log "no fakesnow running on ${state} (no pid file)"
  exit 0
fi
pid="$(tr -d '[:space:]' <"${pidfile}")"
if [[ ! "${pid}" =~ ^[1-9][0-9]*$ ]]; then
  log "ignoring bad pid file ${pidfile} (${pid:-empty}); removing it"
  rm -f "${pidfile}"
  exit 0
fi
if ! alive "${pid}"; then
  log "fakesnow pid ${pid} is not running; removing stale ${pidfile}"
  rm -f "${pidfile}"
  exit 0
fi
if ! ours "${pid}"; then
  log "pid ${pid} is not the fakesnow server for port ${port}; leaving it alone, removing ${pidfile}"
  rm -f "${pidfile}"
  exit 0
fi

log "stopping fakesnow pid ${pid} (SIGINT)"
kill -INT "${pid}" 2>/dev/null || true
if ! wait_gone "${pid}" 100; then
  log "fakesnow pid ${pid} still up after 10 s; sending SIGTERM"
  kill -TERM "${pid}" 2>/dev/null || true
  if ! wait_gone "${pid}" 50; then
    log "fakesnow pid ${pid} still up; sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
    wait_gone "${pid}" 50 || {
      log "fakesnow pid ${pid} did not exit"
      exit 1
    }
  fi
fi
rm -f "${pidfile}"
log "fakesnow stopped"
