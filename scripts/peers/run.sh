#!/usr/bin/env bash
# The peer comparison of issue 20: Sluice vs Kafka Streams vs Flink on the same job, the
# same input and a fresh broker (docs/BENCHMARKS.md, "Sluice vs Kafka Streams vs Flink").
#
#   scripts/peers/run.sh            full comparison: 1,000,000 events, latency runs,
#                                   Flink at 1 s and 100 ms checkpoints (tens of minutes)
#   scripts/peers/run.sh --small    the test version: 50,000 events, no latency runs;
#                                   passes when all three complete and equal the oracle
#                                   (asserts no speed)
#   extra arguments go to the bench (e.g. --events 200000 --latency 60s)
#
# Builds the two Java apps with Maven (bench/peers/{kstreams,flink}; only the first build
# downloads, into ~/.m2), then starts a fresh single broker with scripts/kafka/kafka-up.sh
# on its own port and state dir (SLUICE_PEERS_KAFKA_PORT, default 25092;
# SLUICE_PEERS_KAFKA_STATE, default /tmp/sluice-kafka-peers) and stops it at the end. With
# SLUICE_PEERS_BROKERS set it uses that broker instead and starts none.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "${root}"
log() { printf 'peers: %s\n' "$*" >&2; }

small=0
if [[ "${1:-}" == "--small" ]]; then
  small=1
  shift
fi

command -v mvn >/dev/null || { log "mvn is required (Maven, Java 17)"; exit 1; }
for app in kstreams flink; do
  log "building bench/peers/${app} (mvn -B -q package)"
  (cd "bench/peers/${app}" && mvn -B -q package)
done
# The decode + rules code is one file, kept identical in both apps.
cmp -s bench/peers/kstreams/src/main/java/sluice/peers/Purchases.java \
  bench/peers/flink/src/main/java/sluice/peers/Purchases.java ||
  { log "bench/peers/{kstreams,flink}/.../Purchases.java differ; keep them identical"; exit 1; }

port="${SLUICE_PEERS_KAFKA_PORT:-25092}"
state="${SLUICE_PEERS_KAFKA_STATE:-/tmp/sluice-kafka-peers}"
brokers="${SLUICE_PEERS_BROKERS:-}"
if [[ -z "${brokers}" ]]; then
  out="$(SLUICE_KAFKA_PORT="${port}" SLUICE_KAFKA_STATE="${state}" scripts/kafka/kafka-up.sh)"
  trap 'SLUICE_KAFKA_PORT="${port}" SLUICE_KAFKA_STATE="${state}" scripts/kafka/kafka-down.sh' EXIT
  brokers="$(sed -n 's/^BOOTSTRAP=//p' <<<"${out}")"
  [[ -n "${brokers}" ]] || { log "kafka-up printed no BOOTSTRAP"; exit 1; }
fi
log "broker ${brokers}"

if ((small)); then
  SLUICE_PEERS_BROKERS="${brokers}" SLUICE_PEERS_ARGS="$*" \
    go test -count=1 -run '^TestPeersAgree$' -v -timeout 20m ./bench/
  exit
fi

full=(--events 1000000 --event-rate 2000 --latency 120s --latency-warmup 15s --rate 5000 --flink-checkpoints 1s,100ms --drain-timeout 20m)
if grep -q 'parsePeerOptions' bench/main.go; then
  exec go run ./bench --peer all --backend external --brokers "${brokers}" --json "${full[@]}" "$@"
fi
# Until bench/main.go hands --peer to runPeers: the same run through the test.
SLUICE_PEERS_BROKERS="${brokers}" SLUICE_PEERS_ARGS="${full[*]} $*" \
  go test -count=1 -run '^TestPeersAgree$' -v -timeout 90m ./bench/ | tee /tmp/sluice-peers-last.log |
  sed -n 's/^ *peers_test.go:[0-9]*: //p'
