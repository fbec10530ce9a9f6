#!/usr/bin/env bash
# Runs the Kafka-facing test suites against a real Apache Kafka broker: starts one with
# scripts/kafka/kafka-up.sh (fetched from Maven Central and cached on first use), runs the
# e2e suite and the real-broker SCRAM tests on it, then starts a Kafka Connect worker of the
# same Kafka version with the Snowflake sink connector (scripts/connect/connect-up.sh, also
# cached) and checks deploy/connect/snowflake-sink.json on it (deploy/connect_test.go). The
# worker and the broker are always stopped again.
#
#   scripts/test-real.sh [go test flags...]      e.g. -run TestReplay (e2e and kafka only)
set -euo pipefail
cd "$(dirname "$0")/.."
GO="${GO:-go}"
TIMEOUT="${TIMEOUT:-30m}"

out="$(scripts/kafka/kafka-up.sh)"
# The worker (if started) goes first: it is a client of the broker.
trap 'scripts/connect/connect-down.sh >&2 || true; scripts/kafka/kafka-down.sh >&2 || true' EXIT
bootstrap="$(sed -n 's/^BOOTSTRAP=//p' <<<"$out")"
sasl="$(sed -n 's/^SASL_BOOTSTRAP=//p' <<<"$out")"
version="$(sed -n 's/^KAFKA_VERSION=//p' <<<"$out")"
echo "== e2e on a real Apache Kafka ${version} broker at ${bootstrap} (SASL at ${sasl})"

SLUICE_TEST_BACKEND=external SLUICE_TEST_BROKERS="$bootstrap" SLUICE_TEST_SASL_BROKERS="$sasl" \
  "$GO" test -count=1 -timeout "$TIMEOUT" "$@" ./e2e/ ./pipeline/kafka/
echo "== e2e passed on Apache Kafka ${version}"

t0="${SECONDS}"
cout="$(SLUICE_CONNECT_BOOTSTRAP="$bootstrap" scripts/connect/connect-up.sh)"
curl_url="$(sed -n 's/^CONNECT_URL=//p' <<<"$cout")"
sf="$(sed -n 's/^SNOWFLAKE_CONNECTOR_VERSION=//p' <<<"$cout")"
echo "== Snowflake sink ${sf} config on a Kafka Connect ${version} worker at ${curl_url}"
SLUICE_TEST_CONNECT_URL="$curl_url" "$GO" test -count=1 -timeout 5m -v -run '^TestConnector' ./deploy/ |
  grep -E '^(--- |ok|FAIL|PASS)|connect_test.go'
scripts/connect/connect-down.sh >&2
echo "== Kafka Connect check passed in $((SECONDS - t0)) s (worker start included)"
