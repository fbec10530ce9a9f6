#!/usr/bin/env bash
# A three-node Apache Kafka cluster on loopback (KRaft, every node broker and controller,
# static quorum), from the same jars as scripts/kafka/kafka-up.sh, for the fault suite
# (faults/) and `make kafka-up BROKERS=3`. It never touches the single broker of kafka-up.sh
# (other ports, other state dir).
#
#   kafka-cluster.sh up          fresh cluster: wipe state, format, start all, wait
#   kafka-cluster.sh down        stop every node (SIGTERM, then SIGKILL after 30 s)
#   kafka-cluster.sh kill N      kill -9 node N (1..3)
#   kafka-cluster.sh stop N      stop node N gracefully (SIGTERM, controlled shutdown)
#   kafka-cluster.sh start N     start node N again on its existing data, wait until it serves
#   kafka-cluster.sh status      one line per node: id, pid or "down"
#
# Ports of node N (1..3), base B (SLUICE_KAFKA_CLUSTER_PORT, default 29200), all 127.0.0.1:
#   B+10N     PLAINTEXT  clients and replication, advertised as itself
#   B+10N+1   PROXIED    advertised as B+10N+3, where a test's proxy (toxiproxy) listens
#   B+10N+2   CONTROLLER
#   B+10N+3   (not bound here) the proxy in front of B+10N+1
#   B+10N+4   the Prometheus JMX exporter (javaagent) of node N, /metrics
# A client bootstrapping on PLAINTEXT talks to the brokers directly; one bootstrapping on
# the proxies' ports is told the proxies' addresses, so every byte goes through them.
#
# Topics: default.replication.factor=3 and min.insync.replicas=2 (the pipeline creates its
# topics with the broker default replication factor), offsets and transaction state
# replicated 3 with min ISR 2.
#
# Env: SLUICE_KAFKA_CLUSTER_PORT, SLUICE_KAFKA_CLUSTER_STATE (default
# /tmp/sluice-kafka-cluster-<B>), SLUICE_KAFKA_HOME and SLUICE_KAFKA_VERSION as for
# kafka-up.sh, SLUICE_KAFKA_TIMEOUT (default 180 s), SLUICE_KAFKA_JMX=0 to run without the
# exporter. Stdout of `up` and `start` is KEY=VALUE lines only; progress goes to stderr.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${script_dir}/../.." && pwd)"
pom="${script_dir}/pom.xml"
jmx_pom="${script_dir}/jmx-exporter-pom.xml"
jmx_rules="${repo}/monitoring/kafka/jmx-exporter.yml"

log() { printf 'kafka-cluster: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

nodes=(1 2 3)
pinned="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "${pom}" | head -n 1)"
version="${SLUICE_KAFKA_VERSION:-${pinned}}"
jmx_version="$(sed -n 's:.*<jmx.exporter.version>\([^<]*\)</jmx.exporter.version>.*:\1:p' "${jmx_pom}" | head -n 1)"
base="${SLUICE_KAFKA_CLUSTER_PORT:-29200}"
[[ "${base}" =~ ^[1-9][0-9]*$ ]] && ((base < 65400)) || die "bad SLUICE_KAFKA_CLUSTER_PORT=${base}"
state="${SLUICE_KAFKA_CLUSTER_STATE:-/tmp/sluice-kafka-cluster-${base}}"
[[ "${state}" == /* && "${state}" != "/" ]] || die "SLUICE_KAFKA_CLUSTER_STATE must be an absolute dir"
timeout_s="${SLUICE_KAFKA_TIMEOUT:-180}"
home="${SLUICE_KAFKA_HOME:-${HOME}/.cache/sluice/kafka-${version}}"
libdir="${home}/libs"
jmx_home="${HOME}/.cache/sluice/jmx-exporter-${jmx_version}"
jmx_jar="${jmx_home}/jmx_prometheus_javaagent-${jmx_version}.jar"
marker="${state}/.sluice-kafka-cluster"

port_of() { echo $((base + 10 * $1)); }
proxied_of() { echo $((base + 10 * $1 + 1)); }
ctrl_of() { echo $((base + 10 * $1 + 2)); }
proxy_of() { echo $((base + 10 * $1 + 3)); }
jmx_of() { echo $((base + 10 * $1 + 4)); }
dir_of() { echo "${state}/node-$1"; }

alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "${st}" && "${st}" != "Z" ]]
}
# ours PID N: PID is node N of this cluster.
ours() {
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true)"
  [[ "${cmd}" == *"-Dsluice.kafka.state=$(dir_of "$2") "* && "${cmd}" == *" kafka.Kafka "* ]]
}
can_connect() {
  # shellcheck disable=SC2016 # $1 belongs to the inner bash.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}
check_id() { [[ "$1" =~ ^[1-3]$ ]] || die "node id must be 1, 2 or 3, not '$1'"; }
# pid_of N: the running pid of node N, or nothing.
pid_of() {
  local f pid
  f="$(dir_of "$1")/kafka.pid"
  [[ -f "${f}" ]] || return 0
  pid="$(tr -d '[:space:]' <"${f}")"
  [[ "${pid}" =~ ^[1-9][0-9]*$ ]] && alive "${pid}" && ours "${pid}" "$1" && echo "${pid}"
  return 0
}

fetch() {
  if [[ ! -f "${home}/.complete" ]]; then
    command -v mvn >/dev/null || die "mvn is required to fetch Kafka ${version} once"
    log "fetching Kafka ${version} jars into ${libdir} (once)"
    mkdir -p "${home}"
    local tmp="${home}/libs.tmp.$$"
    rm -rf "${tmp}"
    if ! mvn -q -U -B -Dstyle.color=never -f "${pom}" dependency:copy-dependencies \
      -Dkafka.version="${version}" -Dsluice.kafka.libdir="${tmp}" >"${home}/mvn.log" 2>&1; then
      cat "${home}/mvn.log" >&2
      rm -rf "${tmp}"
      die "maven could not fetch org.apache.kafka:kafka_2.13:${version}"
    fi
    rm -rf "${libdir}"
    mv "${tmp}" "${libdir}"
    printf '%s\n' "${version}" >"${home}/.complete"
  fi
  if [[ "${SLUICE_KAFKA_JMX:-1}" != 0 && ! -f "${jmx_jar}" ]]; then
    command -v mvn >/dev/null || die "mvn is required to fetch the JMX exporter once"
    log "fetching jmx_prometheus_javaagent ${jmx_version} into ${jmx_home} (once)"
    mkdir -p "${jmx_home}"
    local tmp="${jmx_home}/tmp.$$"
    rm -rf "${tmp}"
    if ! mvn -q -U -B -Dstyle.color=never -f "${jmx_pom}" dependency:copy-dependencies \
      -Dsluice.jmx.libdir="${tmp}" >"${jmx_home}/mvn.log" 2>&1; then
      cat "${jmx_home}/mvn.log" >&2
      rm -rf "${tmp}"
      die "maven could not fetch io.prometheus.jmx:jmx_prometheus_javaagent:${jmx_version}"
    fi
    mv "${tmp}/jmx_prometheus_javaagent-${jmx_version}.jar" "${jmx_jar}"
    rm -rf "${tmp}"
  fi
}

write_config() {
  local n="$1" d voters=""
  d="$(dir_of "${n}")"
  for m in "${nodes[@]}"; do
    voters+="${voters:+,}${m}@127.0.0.1:$(ctrl_of "${m}")"
  done
  mkdir -p "${d}/data" "${d}/logs"
  cat >"${d}/server.properties" <<EOF
process.roles=broker,controller
node.id=${n}
controller.quorum.voters=${voters}
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$(port_of "${n}"),PROXIED://127.0.0.1:$(proxied_of "${n}"),CONTROLLER://127.0.0.1:$(ctrl_of "${n}")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port_of "${n}"),PROXIED://127.0.0.1:$(proxy_of "${n}")
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${d}/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
unclean.leader.election.enable=false
transaction.max.timeout.ms=900000
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
# A killed broker is fenced after 3 s without a heartbeat (Kafka's default is 9 s).
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
log.message.timestamp.after.max.ms=9223372036854775807
log.retention.ms=-1
auto.create.topics.enable=false
EOF
  cat >"${d}/log4j2.properties" <<'EOF'
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
}

# launch N: start node N in the background on its config (no wait).
launch() {
  local n="$1" d agent=()
  d="$(dir_of "${n}")"
  if [[ "${SLUICE_KAFKA_JMX:-1}" != 0 ]]; then
    agent=("-javaagent:${jmx_jar}=127.0.0.1:$(jmx_of "${n}"):${jmx_rules}")
  fi
  : >"${d}/starting"
  rm -f "${d}/kafka.pid"
  # Each start appends to server.log; the wait looks only at lines after this mark.
  wc -l <"${d}/logs/server.log" 2>/dev/null | tr -d ' ' >"${d}/log.mark" || echo 0 >"${d}/log.mark"
  # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash.
  nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "${d}/kafka.pid" \
    java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    "${agent[@]}" \
    -Dsluice.kafka.state="${d}" -Dkafka.logs.dir="${d}/logs" \
    -Dlog4j2.configurationFile="${d}/log4j2.properties" \
    -cp "${libdir}/*" kafka.Kafka "${d}/server.properties" \
    >>"${d}/kafka.out" 2>&1 </dev/null &
}

# wait_up N...: until every node N serves (log line after the mark, port accepting).
wait_up() {
  local deadline=$((SECONDS + timeout_s)) n d pid mark
  for n in "$@"; do
    d="$(dir_of "${n}")"
    mark="$(cat "${d}/log.mark" 2>/dev/null || echo 0)"
    pid=""
    while ((SECONDS < deadline)); do
      [[ -s "${d}/kafka.pid" ]] && pid="$(<"${d}/kafka.pid")" && break
      sleep 0.1
    done
    [[ -n "${pid}" ]] || die "node ${n}: no pid file after ${timeout_s} s"
    until tail -n +"$((mark + 1))" "${d}/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started'; do
      if ! alive "${pid}"; then
        tail -n 30 "${d}/logs/server.log" >&2 2>/dev/null || true
        tail -n 20 "${d}/kafka.out" >&2 2>/dev/null || true
        die "node ${n} (pid ${pid}) exited"
      fi
      ((SECONDS < deadline)) || die "node ${n}: no 'Kafka Server started' after ${timeout_s} s (log ${d}/logs/server.log)"
      sleep 0.2
    done
    until can_connect "$(port_of "${n}")"; do
      ((SECONDS < deadline)) || die "node ${n}: port $(port_of "${n}") not accepting"
      sleep 0.2
    done
    rm -f "${d}/starting"
    log "node ${n} up (pid ${pid})"
  done
}

# stop_node N SIGNAL: signal node N and wait until it is gone (TERM: up to 30 s, then KILL).
stop_node() {
  local n="$1" sig="$2" pid i
  pid="$(pid_of "${n}")"
  if [[ -z "${pid}" ]]; then
    log "node ${n} is not running"
    return 0
  fi
  log "node ${n}: SIG${sig} to pid ${pid}"
  kill -"${sig}" "${pid}" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    alive "${pid}" || break
    sleep 0.2
  done
  if alive "${pid}"; then
    log "node ${n} still up after 30 s; SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "${pid}" || break
      sleep 0.2
    done
  fi
  alive "${pid}" && die "node ${n} (pid ${pid}) did not exit"
  rm -f "$(dir_of "${n}")/kafka.pid"
}

# stop_all SIGNAL: signal every running node at once (a broker stopped last waits for a
# controller quorum that the others took with them), wait up to 30 s, then SIGKILL.
stop_all() {
  local sig="$1" n pid i pids=()
  for n in "${nodes[@]}"; do
    pid="$(pid_of "${n}")"
    [[ -n "${pid}" ]] || continue
    log "node ${n}: SIG${sig} to pid ${pid}"
    kill -"${sig}" "${pid}" 2>/dev/null || true
    pids+=("${pid}")
  done
  for ((i = 0; i < 150; i++)); do
    local left=0
    for pid in "${pids[@]}"; do alive "${pid}" && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do
    if alive "${pid}"; then
      log "pid ${pid} still up after 30 s; SIGKILL"
      kill -KILL "${pid}" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 50; i++)); do
    local left=0
    for pid in "${pids[@]}"; do alive "${pid}" && left=1; done
    ((left)) || break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do alive "${pid}" && die "pid ${pid} did not exit"; done
  for n in "${nodes[@]}"; do rm -f "$(dir_of "${n}")/kafka.pid"; done
}

print_env() {
  local direct="" proxied="" jmx=""
  for n in "${nodes[@]}"; do
    direct+="${direct:+,}127.0.0.1:$(port_of "${n}")"
    proxied+="${proxied:+,}127.0.0.1:$(proxy_of "${n}")"
    jmx+="${jmx:+,}127.0.0.1:$(jmx_of "${n}")"
  done
  printf 'BOOTSTRAP=%s\n' "${direct}"
  printf 'PROXIED_BOOTSTRAP=%s\n' "${proxied}"
  printf 'PROXIED_UPSTREAMS=%s\n' "$(for n in "${nodes[@]}"; do printf '127.0.0.1:%s ' "$(proxied_of "${n}")"; done | sed 's/ $//; s/ /,/g')"
  [[ "${SLUICE_KAFKA_JMX:-1}" != 0 ]] && printf 'JMX_TARGETS=%s\n' "${jmx}"
  printf 'KAFKA_VERSION=%s\n' "${version}"
  printf 'KAFKA_CLUSTER_STATE=%s\n' "${state}"
}

cmd="${1:-}"
case "${cmd}" in
up)
  command -v java >/dev/null || die "java (17+) is required"
  fetch
  stop_all KILL # its state is wiped next
  if [[ -d "${state}" && ! -f "${marker}" && -n "$(ls -A "${state}")" ]]; then
    die "${state} exists, is not empty and was not made by kafka-cluster.sh; refusing to wipe it"
  fi
  rm -rf "${state}"
  mkdir -p "${state}"
  : >"${marker}"
  for n in "${nodes[@]}"; do
    for p in "$(port_of "${n}")" "$(proxied_of "${n}")" "$(ctrl_of "${n}")" "$(jmx_of "${n}")"; do
      can_connect "${p}" && die "127.0.0.1:${p} is in use (set SLUICE_KAFKA_CLUSTER_PORT)"
    done
  done
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  [[ "${cluster_id}" == -* ]] && cluster_id="A${cluster_id:1}"
  log "formatting 3 nodes (Kafka ${version}, cluster ${cluster_id}) in ${state}"
  for n in "${nodes[@]}"; do
    write_config "${n}"
    d="$(dir_of "${n}")"
    java -cp "${libdir}/*" -Dkafka.logs.dir="${d}/logs" -Dlog4j2.configurationFile="${d}/log4j2.properties" \
      kafka.tools.StorageTool format --config "${d}/server.properties" --cluster-id "${cluster_id}" \
      >"${d}/format.out" 2>&1 &
  done
  wait || die "kafka-storage format failed (see ${state}/node-*/format.out)"
  for n in "${nodes[@]}"; do
    grep -q 'Formatting' "$(dir_of "${n}")/format.out" || { cat "$(dir_of "${n}")/format.out" >&2; die "node ${n}: format failed"; }
  done
  t0="${SECONDS}"
  for n in "${nodes[@]}"; do launch "${n}"; done
  wait_up "${nodes[@]}"
  log "cluster up in $((SECONDS - t0)) s"
  print_env
  ;;
down)
  stop_all TERM
  ;;
kill | stop)
  check_id "${2:-}"
  if [[ "${cmd}" == kill ]]; then stop_node "$2" KILL; else stop_node "$2" TERM; fi
  ;;
start)
  check_id "${2:-}"
  [[ -f "${marker}" ]] || die "no cluster in ${state}: run 'kafka-cluster.sh up' first"
  if [[ -n "$(pid_of "$2")" ]]; then
    log "node $2 already runs"
  else
    launch "$2"
    wait_up "$2"
  fi
  print_env
  ;;
status)
  for n in "${nodes[@]}"; do
    pid="$(pid_of "${n}")"
    printf 'node %s %s\n' "${n}" "${pid:-down}"
  done
  ;;
env)
  print_env
  ;;
*)
  die "usage: kafka-cluster.sh up|down|status|env|kill N|stop N|start N"
  ;;
esac
