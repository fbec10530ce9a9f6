#!/usr/bin/env bash
# Starts a Kafka Connect worker (distributed mode, plain Java, no Docker) with the Snowflake
# sink connector on its plugin path, against a running broker (scripts/kafka/kafka-up.sh).
# The worker runs deploy/connect/worker.properties with loopback overrides appended.
#
# Fetched once with Maven into a cache dir (scripts/connect/pom.xml):
#   libs/                          org.apache.kafka:connect-runtime at the broker's Kafka
#                                  version (from scripts/kafka/pom.xml) and its dependencies
#   plugins/snowflake-kafka-connector/
#                                  com.snowflake:snowflake-kafka-connector, the jar ALONE:
#                                  it bundles what it needs (164 MB), and its POM names
#                                  io.confluent artifacts Maven Central does not serve.
#
# Env:
#   SLUICE_CONNECT_BOOTSTRAP  brokers (default 127.0.0.1:29092, kafka-up's default)
#   SLUICE_CONNECT_PORT       REST port on 127.0.0.1 (default 28083)
#   SLUICE_CONNECT_STATE      state dir: config, logs, pid (default /tmp/sluice-connect-<port>)
#   SLUICE_CONNECT_HOME       jar cache (default $HOME/.cache/sluice/connect-<kafka version>)
#   SLUICE_CONNECT_TIMEOUT    seconds to wait for the worker (default 120)
#
# Stdout gets only KEY=VALUE lines (CONNECT_URL, CONNECT_STATE, KAFKA_VERSION,
# SNOWFLAKE_CONNECTOR_VERSION); progress goes to stderr. Stop it with connect-down.sh.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "${script_dir}/../.." && pwd)"
pom="${script_dir}/pom.xml"
worker_props="${repo}/deploy/connect/worker.properties"

log() { printf 'connect-up: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

kafka_version="$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "${repo}/scripts/kafka/pom.xml" | head -n 1)"
sf_version="$(sed -n 's:.*<snowflake.connector.version>\([^<]*\)</snowflake.connector.version>.*:\1:p' "${pom}" | head -n 1)"
[[ -n "${kafka_version}" && -n "${sf_version}" ]] || die "no version pins in scripts/kafka/pom.xml or ${pom}"

bootstrap="${SLUICE_CONNECT_BOOTSTRAP:-127.0.0.1:29092}"
port="${SLUICE_CONNECT_PORT:-28083}"
[[ "${port}" =~ ^[1-9][0-9]*$ ]] && ((port < 65536)) || die "bad SLUICE_CONNECT_PORT=${port}"
timeout_s="${SLUICE_CONNECT_TIMEOUT:-120}"
[[ "${timeout_s}" =~ ^[1-9][0-9]*$ ]] || die "bad SLUICE_CONNECT_TIMEOUT=${timeout_s}"
home="${SLUICE_CONNECT_HOME:-${HOME}/.cache/sluice/connect-${kafka_version}}"
libdir="${home}/libs"
plugindir="${home}/plugins"
state="${SLUICE_CONNECT_STATE:-/tmp/sluice-connect-${port}}"
[[ "${state}" == /* && "${state}" != "/" ]] || die "SLUICE_CONNECT_STATE must be an absolute dir, not ${state}"
marker="${state}/.sluice-connect-state"
pidfile="${state}/connect.pid"
logfile="${state}/logs/connect.log"

command -v java >/dev/null || die "java (17+) is required"
command -v curl >/dev/null || die "curl is required"

# mvn_fetch WHAT LOG ARGS...: run maven quietly, show its log and die on failure.
mvn_fetch() {
  local what="$1" mlog="$2"
  shift 2
  command -v mvn >/dev/null || die "mvn is required to fetch ${what} once"
  if ! mvn -q -B -Dstyle.color=never -f "${pom}" "$@" >"${mlog}" 2>&1; then
    cat "${mlog}" >&2
    die "maven could not fetch ${what} (log: ${mlog})"
  fi
}

# --- 1. jars, fetched once ------------------------------------------------------------------
mkdir -p "${home}"
if [[ ! -f "${libdir}/.complete" ]]; then
  log "fetching connect-runtime ${kafka_version} and its dependencies into ${libdir} (once)"
  t0="${SECONDS}"
  tmp="${home}/libs.tmp.$$"
  rm -rf "${tmp}"
  mvn_fetch "org.apache.kafka:connect-runtime:${kafka_version}" "${home}/mvn-runtime.log" \
    dependency:copy-dependencies -Dkafka.version="${kafka_version}" -Dsluice.connect.libdir="${tmp}"
  compgen -G "${tmp}/connect-runtime-*.jar" >/dev/null || die "no connect-runtime jar in ${tmp}"
  rm -rf "${libdir}"
  mv "${tmp}" "${libdir}"
  printf '%s\n' "${kafka_version}" >"${libdir}/.complete"
  log "fetched in $((SECONDS - t0)) s"
fi
sfdir="${plugindir}/snowflake-kafka-connector"
if [[ ! -f "${sfdir}/.complete-${sf_version}" ]]; then
  log "fetching com.snowflake:snowflake-kafka-connector:${sf_version} alone into ${sfdir} (once, 164 MB)"
  t0="${SECONDS}"
  tmp="${plugindir}/snowflake.tmp.$$"
  rm -rf "${tmp}"
  # dependency:copy copies the one artifact named, never its dependencies. The plugin's
  # outputDirectory comes from the POM (sluice.connect.libdir), so point that at tmp.
  mvn_fetch "the Snowflake connector" "${home}/mvn-snowflake.log" \
    dependency:copy -Dartifact="com.snowflake:snowflake-kafka-connector:${sf_version}:jar" \
    -Dsluice.connect.libdir="${tmp}"
  [[ -f "${tmp}/snowflake-kafka-connector-${sf_version}.jar" ]] || die "no connector jar in ${tmp}"
  rm -rf "${sfdir}"
  mkdir -p "${plugindir}"
  mv "${tmp}" "${sfdir}"
  : >"${sfdir}/.complete-${sf_version}"
  log "fetched in $((SECONDS - t0)) s"
fi

# The connector jar carries no ServiceLoader manifests for its plugins, so by default the
# worker finds them by reflection over all 164 MB (about 25 s of every start). A small jar
# beside it lists them (KIP-898 manifests), and the test worker uses
# plugin.discovery=service_load. Listed: the connector, the Confluent Avro converter it
# bundles, and Snowflake's converters (so that a config naming one of them reaches the
# connector's own check instead of failing as an unknown class).
manifests="${sfdir}/sluice-service-manifests.jar"
if [[ ! -f "${manifests}" ]]; then
  command -v jar >/dev/null || die "jar (from the JDK) is required"
  tmp="$(mktemp -d)"
  mkdir -p "${tmp}/META-INF/services"
  printf '%s\n' com.snowflake.kafka.connector.SnowflakeSinkConnector \
    >"${tmp}/META-INF/services/org.apache.kafka.connect.sink.SinkConnector"
  printf '%s\n' io.confluent.connect.avro.AvroConverter \
    com.snowflake.kafka.connector.records.SnowflakeAvroConverter \
    com.snowflake.kafka.connector.records.SnowflakeAvroConverterWithoutSchemaRegistry \
    com.snowflake.kafka.connector.records.SnowflakeJsonConverter \
    >"${tmp}/META-INF/services/org.apache.kafka.connect.storage.Converter"
  jar cf "${manifests}.tmp" -C "${tmp}" META-INF
  mv "${manifests}.tmp" "${manifests}"
  rm -rf "${tmp}"
fi

# --- 2. stop an earlier worker, fresh state dir ---------------------------------------------
if [[ -f "${pidfile}" ]]; then
  SLUICE_CONNECT_PORT="${port}" SLUICE_CONNECT_STATE="${state}" "${script_dir}/connect-down.sh"
fi
shopt -s dotglob nullglob
existing=("${state}"/*)
shopt -u dotglob nullglob
if [[ -d "${state}" && ! -f "${marker}" && ${#existing[@]} -gt 0 ]]; then
  die "${state} exists, is not empty and was not made by connect-up.sh; refusing to wipe it"
fi
rm -rf "${state}"
mkdir -p "${state}/logs"
: >"${marker}"

can_connect() {
  # shellcheck disable=SC2016 # $1 belongs to the inner bash.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}
can_connect "${port}" && die "127.0.0.1:${port} is already in use (set SLUICE_CONNECT_PORT)"

# --- 3. config: the deployed worker file, loopback overrides last (later keys win) -----------
{
  cat "${worker_props}"
  cat <<EOF

# --- test overrides (scripts/connect/connect-up.sh) ---
bootstrap.servers=${bootstrap}
listeners=http://127.0.0.1:${port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port=${port}
plugin.path=${plugindir}
plugin.discovery=service_load
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
EOF
} >"${state}/worker.properties"

cat >"${state}/log4j2.properties" <<'EOF'
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:sluice.connect.logfile}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.reflections.name = org.reflections
logger.reflections.level = ERROR
EOF

# --- 4. start -------------------------------------------------------------------------------
log "starting Connect ${kafka_version} worker on 127.0.0.1:${port} against ${bootstrap} (state ${state})"
t0="${SECONDS}"
# shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash.
# The connector config reads these through ${env:...}; the test worker must not see a
# developer's real values (it would log in to Snowflake), so they are unset. And at every
# start the connector asks Maven Central for a newer version of itself
# (Utils.checkConnectorVersion; no setting turns it off): the JVM's HTTP(S) proxy is a
# port on 127.0.0.1 that refuses, so that request fails without leaving the machine
# (Java sends loopback addresses, and Kafka's own clients, past the proxy).
nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "${pidfile}" \
  env -u SNOWFLAKE_URL -u SNOWFLAKE_USER -u SNOWFLAKE_PRIVATE_KEY -u SNOWFLAKE_ROLE \
  -u SNOWFLAKE_DATABASE -u SNOWFLAKE_SCHEMA -u SCHEMA_REGISTRY_URL -u SCHEMA_REGISTRY_USER_INFO \
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
  -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=9 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=9 \
  -Dsluice.connect.state="${state}" -Dsluice.connect.logfile="${logfile}" \
  -Dlog4j2.configurationFile="${state}/log4j2.properties" \
  -cp "${libdir}/*" org.apache.kafka.connect.cli.ConnectDistributed "${state}/worker.properties" \
  >"${state}/connect.out" 2>&1 </dev/null &

alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "${st}" && "${st}" != "Z" ]]
}
fail() {
  log "error: $*; last 40 lines of ${logfile}:"
  tail -n 40 "${logfile}" >&2 2>/dev/null || true
  [[ -s "${state}/connect.out" ]] && tail -n 20 "${state}/connect.out" >&2
  SLUICE_CONNECT_PORT="${port}" SLUICE_CONNECT_STATE="${state}" "${script_dir}/connect-down.sh" || true
  exit 1
}

deadline=$((SECONDS + timeout_s))
pid=""
while ((SECONDS < deadline)); do
  [[ -s "${pidfile}" ]] && pid="$(<"${pidfile}")" && break
  sleep 0.1
done
[[ -n "${pid}" ]] || fail "no pid file after ${timeout_s} s"

# Ready when the REST API lists the connector: plugins are scanned before it answers, and
# the worker has joined its group once /connectors answers 200.
url="http://127.0.0.1:${port}"
until curl -fsS "${url}/connector-plugins" 2>/dev/null | grep -q 'com.snowflake.kafka.connector.SnowflakeSinkConnector' &&
  curl -fsS -o /dev/null "${url}/connectors" 2>/dev/null; do
  alive "${pid}" || fail "worker pid ${pid} exited"
  ((SECONDS < deadline)) || fail "no SnowflakeSinkConnector at ${url}/connector-plugins after ${timeout_s} s"
  sleep 0.5
done
log "worker pid ${pid} up in $((SECONDS - t0)) s"

printf 'CONNECT_URL=%s\n' "${url}"
printf 'CONNECT_STATE=%s\n' "${state}"
printf 'KAFKA_VERSION=%s\n' "${kafka_version}"
printf 'SNOWFLAKE_CONNECTOR_VERSION=%s\n' "${sf_version}"
