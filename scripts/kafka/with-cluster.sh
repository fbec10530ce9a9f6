#!/usr/bin/env bash
# Runs a command against a fresh three-node cluster (scripts/kafka/kafka-cluster.sh) and
# always stops the cluster afterwards: the fault suite's entry point (make test-faults,
# make test-faults-short). The command gets SLUICE_TEST_FAULTS=1 and
# SLUICE_KAFKA_CLUSTER_PORT (the cluster's base port).
#
#   scripts/kafka/with-cluster.sh go test -v ./faults/
set -euo pipefail
cd "$(dirname "$0")/../.."
export SLUICE_KAFKA_CLUSTER_PORT="${SLUICE_KAFKA_CLUSTER_PORT:-29200}"
out="$(scripts/kafka/kafka-cluster.sh up)"
trap 'scripts/kafka/kafka-cluster.sh down >&2 || true' EXIT
echo "== three-node Apache Kafka $(sed -n 's/^KAFKA_VERSION=//p' <<<"$out") at $(sed -n 's/^BOOTSTRAP=//p' <<<"$out")" >&2
SLUICE_TEST_FAULTS=1 "$@"
