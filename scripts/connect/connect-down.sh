#!/usr/bin/env bash
# Stops the Connect worker that scripts/connect/connect-up.sh started on the same state dir:
# exactly the process whose pid is in <state>/connect.pid (SIGTERM, up to 30 s, then
# SIGKILL). The state dir (config, logs) is left for inspection; the next connect-up wipes it.
#
# Env: SLUICE_CONNECT_PORT (default 28083), SLUICE_CONNECT_STATE (default
# /tmp/sluice-connect-<port>).
set -euo pipefail

port="${SLUICE_CONNECT_PORT:-28083}"
state="${SLUICE_CONNECT_STATE:-/tmp/sluice-connect-${port}}"
pidfile="${state}/connect.pid"

log() { printf 'connect-down: %s\n' "$*" >&2; }

alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "${st}" != "Z" && -n "${st}" ]]
}

# ours PID: true if PID is the worker connect-up.sh started on this state dir.
ours() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
  [[ "${cmd}" == *"-Dsluice.connect.state=${state} "* && "${cmd}" == *" org.apache.kafka.connect.cli.ConnectDistributed "* ]]
}

if [[ ! -f "${pidfile}" ]]; then
  log "no worker running on ${state} (no pid file)"
  exit 0
fi
pid="$(tr -d '[:space:]' <"${pidfile}")"
if [[ ! "${pid}" =~ ^[1-9][0-9]*$ ]] || ! alive "${pid}" || ! ours "${pid}"; then
  log "pid file ${pidfile} (${pid:-empty}) names no worker of ${state}; removing it"
  rm -f "${pidfile}"
  exit 0
fi

log "stopping worker pid ${pid} (SIGTERM)"
kill -TERM "${pid}" 2>/dev/null || true
for ((i = 0; i < 150; i++)); do # 150 x 0.2 s = 30 s
  alive "${pid}" || break
  sleep 0.2
done
if alive "${pid}"; then
  log "worker pid ${pid} still up after 30 s; sending SIGKILL"
  kill -KILL "${pid}" 2>/dev/null || true
fi
rm -f "${pidfile}"
log "stopped"
