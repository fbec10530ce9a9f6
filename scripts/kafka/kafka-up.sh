#!/usr/bin/env bash
# Starts a fresh single-node Apache Kafka broker (KRaft, combined broker+controller) on
# loopback, without Docker. The broker jars are fetched once with Maven (scripts/kafka/pom.xml)
# into a cache dir; each run wipes the state dir, formats storage, starts the broker in the
# background and waits until it serves. A broker left by an earlier run on the same state dir
# is stopped first. Stop it with scripts/kafka/kafka-down.sh.
#
# Listeners (all 127.0.0.1):
#   <port>    PLAINTEXT
#   <port+1>  SASL_PLAINTEXT: SCRAM-SHA-256/512 user sluice/sluice-secret, PLAIN admin/admin-secret
#   <port+2>  CONTROLLER
#
# Env:
#   SLUICE_KAFKA_PORT     base port (default 29092)
#   SLUICE_KAFKA_STATE    state dir: data, logs, pid (default /tmp/sluice-kafka-<port>)
#   SLUICE_KAFKA_HOME     jar cache (default $HOME/.cache/sluice/kafka-<version>)
#   SLUICE_KAFKA_VERSION  override the version pinned in pom.xml
#   SLUICE_KAFKA_TIMEOUT  seconds to wait for the broker (default 120)
#
# Stdout gets only KEY=VALUE lines (BOOTSTRAP, SASL_BOOTSTRAP, KAFKA_VERSION, KAFKA_STATE);
# progress goes to stderr.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="${script_dir}/pom.xml"

log() { printf 'kafka-up: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

pinned="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "${pom}" | head -n 1)"
version="${SLUICE_KAFKA_VERSION:-${pinned}}"
[[ -n "${version}" ]] || die "no <kafka.version> in ${pom}"

# The default ports lie below Linux's ephemeral range (32768-60999 by default): a port in
# it can be, for a moment, the local end of any outgoing connection on the machine, and
# the broker then fails to bind ("Address already in use"). CI once failed so at 39092.
port="${SLUICE_KAFKA_PORT:-29092}"
if [[ ! "${port}" =~ ^[1-9][0-9]*$ ]] || ((port > 65533)); then
  die "bad SLUICE_KAFKA_PORT=${port}"
fi
sasl_port=$((port + 1))
ctrl_port=$((port + 2))
timeout_s="${SLUICE_KAFKA_TIMEOUT:-120}"
[[ "${timeout_s}" =~ ^[1-9][0-9]*$ ]] || die "bad SLUICE_KAFKA_TIMEOUT=${timeout_s}"

home="${SLUICE_KAFKA_HOME:-${HOME}/.cache/sluice/kafka-${version}}"
libdir="${home}/libs"
state="${SLUICE_KAFKA_STATE:-/tmp/sluice-kafka-${port}}"
[[ "${state}" == /* && "${state}" != "/" ]] || die "SLUICE_KAFKA_STATE must be an absolute dir, not ${state}"
marker="${state}/.sluice-kafka-state"
pidfile="${state}/kafka.pid"
logfile="${state}/logs/server.log"

command -v java >/dev/null || die "java (17+) is required"

# --- 1. jars, fetched once --------------------------------------------------------------
if [[ ! -f "${home}/.complete" ]]; then
  command -v mvn >/dev/null || die "mvn is required to fetch Kafka ${version} once"
  log "fetching Kafka ${version} jars into ${libdir} (once)"
  mkdir -p "${home}"
  tmp="${home}/libs.tmp.$$"
  rm -rf "${tmp}"
  t0="${SECONDS}"
  if ! mvn -q -U -B -Dstyle.color=never -f "${pom}" dependency:copy-dependencies \
    -Dkafka.version="${version}" -Dsluice.kafka.libdir="${tmp}" >"${home}/mvn.log" 2>&1; then
    cat "${home}/mvn.log" >&2
    rm -rf "${tmp}"
    die "maven could not fetch org.apache.kafka:kafka_2.13:${version} (log: ${home}/mvn.log)"
  fi
  compgen -G "${tmp}/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar in ${tmp}"
  rm -rf "${libdir}"
  mv "${tmp}" "${libdir}"
  printf '%s\n' "${version}" >"${home}/.complete"
  log "fetched in $((SECONDS - t0)) s"
fi

# --- 2. stop an earlier broker, fresh state dir -------------------------------------------
if [[ -f "${pidfile}" ]]; then
  SLUICE_KAFKA_PORT="${port}" SLUICE_KAFKA_STATE="${state}" "${script_dir}/kafka-down.sh"
fi
shopt -s dotglob nullglob
existing=("${state}"/*)
shopt -u dotglob nullglob
if [[ -d "${state}" && ! -f "${marker}" && ${#existing[@]} -gt 0 ]]; then
  die "${state} exists, is not empty and was not made by kafka-up.sh; refusing to wipe it"
fi
rm -rf "${state}"
mkdir -p "${state}/data" "${state}/logs"
: >"${marker}"

# can_connect PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
can_connect() {
  # shellcheck disable=SC2016 # $1 belongs to the inner bash.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}
for p in "${port}" "${sasl_port}" "${ctrl_port}"; do
  if can_connect "${p}"; then
    die "127.0.0.1:${p} is already in use (set SLUICE_KAFKA_PORT to another base port)"
  fi
done

# --- 3. config ------------------------------------------------------------------------------
cat >"${state}/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${ctrl_port}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${port},SASL_PLAINTEXT://127.0.0.1:${sasl_port},CONTROLLER://127.0.0.1:${ctrl_port}
advertised.listeners=PLAINTEXT://127.0.0.1:${port},SASL_PLAINTEXT://127.0.0.1:${sasl_port},CONTROLLER://127.0.0.1:${ctrl_port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret";
log.dirs=${state}/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.max.timeout.ms=900000
group.initial.rebalance.delay.ms=0
# Tests kill instances and wait out their session: allow short sessions (kfake does).
group.min.session.timeout.ms=500
log.message.timestamp.after.max.ms=9223372036854775807
log.retention.ms=-1
auto.create.topics.enable=false
EOF

cat >"${state}/log4j2.properties" <<'EOF'
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

# A random cluster id: 16 bytes, base64url without padding (22 chars), not starting with '-'.
cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
[[ "${cluster_id}" == -* ]] && cluster_id="A${cluster_id:1}"

classpath="${libdir}/*"
log "formatting storage (Kafka ${version}, cluster ${cluster_id})"
if ! java -cp "${classpath}" -Dkafka.logs.dir="${state}/logs" \
  -Dlog4j2.configurationFile="${state}/log4j2.properties" \
  kafka.tools.StorageTool format --config "${state}/server.properties" \
  --cluster-id "${cluster_id}" --standalone \
  --add-scram 'SCRAM-SHA-256=[name=sluice,password=sluice-secret]' \
  --add-scram 'SCRAM-SHA-512=[name=sluice,password=sluice-secret]' \
  >"${state}/format.out" 2>&1; then
  cat "${state}/format.out" >&2
  die "kafka-storage format failed"
fi

# --- 4. start -------------------------------------------------------------------------------
log "starting broker on 127.0.0.1:${port} (state ${state})"
t0="${SECONDS}"
# The inner bash writes its own pid and execs java, so the pid file holds the broker's pid.
# shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash.
nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "${pidfile}" \
  java -Xms256m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  -Dsluice.kafka.state="${state}" -Dkafka.logs.dir="${state}/logs" \
  -Dlog4j2.configurationFile="${state}/log4j2.properties" \
  -cp "${classpath}" kafka.Kafka "${state}/server.properties" \
  >"${state}/kafka.out" 2>&1 </dev/null &

# alive PID: true while PID runs (a zombie counts as gone: the broker is our child until we exit).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "${st}" && "${st}" != "Z" ]]
}

# fail MSG: show the broker's last log lines, stop it, exit 1.
fail() {
  log "error: $*; last 50 lines of ${logfile}:"
  tail -n 50 "${logfile}" >&2 2>/dev/null || true
  if [[ -s "${state}/kafka.out" ]]; then
    log "last 20 lines of ${state}/kafka.out:"
    tail -n 20 "${state}/kafka.out" >&2
  fi
  SLUICE_KAFKA_PORT="${port}" SLUICE_KAFKA_STATE="${state}" "${script_dir}/kafka-down.sh" || true
  exit 1
}

deadline=$((SECONDS + timeout_s))
pid=""
while ((SECONDS < deadline)); do
  [[ -s "${pidfile}" ]] && pid="$(<"${pidfile}")" && break
  sleep 0.1
done
[[ -n "${pid}" ]] || fail "no pid file after ${timeout_s} s"

until grep -q 'Kafka Server started' "${logfile}" 2>/dev/null; do
  alive "${pid}" || fail "broker pid ${pid} exited"
  ((SECONDS < deadline)) || fail "no 'Kafka Server started' after ${timeout_s} s"
  sleep 0.2
done
until can_connect "${port}"; do
  alive "${pid}" || fail "broker pid ${pid} exited"
  ((SECONDS < deadline)) || fail "127.0.0.1:${port} not accepting connections after ${timeout_s} s"
  sleep 0.2
done
log "broker pid ${pid} up in $((SECONDS - t0)) s"

printf 'BOOTSTRAP=127.0.0.1:%s\n' "${port}"
printf 'SASL_BOOTSTRAP=127.0.0.1:%s\n' "${sasl_port}"
printf 'KAFKA_VERSION=%s\n' "${version}"
printf 'KAFKA_STATE=%s\n' "${state}"
