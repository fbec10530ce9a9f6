#!/usr/bin/env bash
# Runs the Kafka-facing test suites against a real Apache Kafka broker: starts one with
# scripts/kafka/kafka-up.sh (fetched from Maven Central and cached on first use), runs the
# e2e suite and the real-broker SCRAM tests on it, and always stops it again.
#
#   scripts/test-real.sh [go test flags...]      e.g. -run TestReplay
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
TIMEOUT="${TIMEOUT:-30m}"

out="$(scripts/kafka/kafka-up.sh)"
trap 'scripts/kafka/kafka-down.sh >&2 || true' EXIT
bootstrap="$(sed -n 's/^BOOTSTRAP=//p' <<<"$out")"
sasl="$(sed -n 's/^SASL_BOOTSTRAP=//p' <<<"$out")"
version="$(sed -n 's/^KAFKA_VERSION=//p' <<<"$out")"
echo "== e2e on a real Apache Kafka ${version} broker at ${bootstrap} (SASL at ${sasl})"

SLUICE_TEST_BACKEND=external SLUICE_TEST_BROKERS="$bootstrap" SLUICE_TEST_SASL_BROKERS="$sasl" \
  "$GO" test -count=1 -timeout "$TIMEOUT" "$@" ./e2e/ ./pipeline/kafka/
echo "== e2e passed on Apache Kafka ${version}"
