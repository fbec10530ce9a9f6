#!/usr/bin/env bash
# Stops the Kafka broker that scripts/kafka/kafka-up.sh started on the same state dir: exactly
# the process whose pid is in <state>/kafka.pid (SIGTERM, up to 30 s, then SIGKILL). The state
# dir (data, logs) is left for inspection; the next kafka-up wipes it.
#
# Env: SLUICE_KAFKA_PORT (default 29092), SLUICE_KAFKA_STATE (default /tmp/sluice-kafka-<port>).
set -euo pipefail

port="${SLUICE_KAFKA_PORT:-29092}"
state="${SLUICE_KAFKA_STATE:-/tmp/sluice-kafka-${port}}"
pidfile="${state}/kafka.pid"

log() { printf 'kafka-down: %s\n' "$*" >&2; }

# alive PID: true while PID runs (a zombie counts as gone).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ "${st}" != "Z" && -n "${st}" ]]
}

# ours PID: true if PID is the broker kafka-up.sh started on this state dir.
ours() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
  [[ "${cmd}" == *"-Dsluice.kafka.state=${state} "* && "${cmd}" == *" kafka.Kafka "* ]]
}

if [[ ! -f "${pidfile}" ]]; then
  log "no broker running on ${state} (no pid file)"
  exit 0
fi

pid="$(tr -d '[:space:]' <"${pidfile}")"
if [[ ! "${pid}" =~ ^[1-9][0-9]*$ ]]; then
  log "ignoring bad pid file ${pidfile} (${pid:-empty}); removing it"
  rm -f "${pidfile}"
  exit 0
fi
if ! alive "${pid}"; then
  log "broker pid ${pid} is not running; removing stale ${pidfile}"
  rm -f "${pidfile}"
  exit 0
fi
if ! ours "${pid}"; then
  log "pid ${pid} is not the Kafka broker for ${state}; leaving it alone, removing ${pidfile}"
  rm -f "${pidfile}"
  exit 0
fi

log "stopping broker pid ${pid} (SIGTERM)"
kill -TERM "${pid}" 2>/dev/null || true
for ((i = 0; i < 150; i++)); do # 150 x 0.2 s = 30 s
  alive "${pid}" || break
  sleep 0.2
done
if alive "${pid}"; then
  log "broker pid ${pid} still up after 30 s; sending SIGKILL"
  kill -KILL "${pid}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do # up to 10 s
    alive "${pid}" || break
    sleep 0.2
  done
fi
if alive "${pid}"; then
  log "broker pid ${pid} did not exit"
  exit 1
fi
rm -f "${pidfile}"
log "broker stopped"
