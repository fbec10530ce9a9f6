# Sluice build and test entry points. `make test` is what CI runs (.ci/run): it installs
# what is missing, then vets and tests everything.
SHELL        := bash
.SHELLFLAGS  := -o pipefail -c
GO       ?= go
PKGS     ?= ./...
TIMEOUT  ?= 20m

.PHONY: loadtest loadtest-steps tidy-check test test-fast test-real test-snowflake terraform-lint compose-check image test-loop kafka-up kafka-down kafka-kill kafka-stop kafka-start test-faults test-faults-short peers peers-small ui-vendor deps vet unit race bench fuzz build dev clean

## test: install what is missing, vet, run every test on kfake (unit, fuzz corpora, e2e),
## then the e2e suite again on a real Apache Kafka broker (fetched from Maven Central), then
## the short fault suite on a three-node cluster, then the small Sluice vs Kafka Streams vs
## Flink comparison (agreement only)
test: test-fast test-snowflake terraform-lint test-real test-faults-short peers-small

## test-fast: vet and every test on kfake only, then the live check of every dashboard query
## and alert against a real Prometheus scraping Sluice and a three-node Kafka cluster with the
## JMX exporter (Java needed for that one), printing its count
test-fast: deps vet
	$(GO) test -count=1 -timeout $(TIMEOUT) -skip '^TestSchemathesis$$' $$($(GO) list $(PKGS) | grep -v '/monitoring$$')
	$(GO) test -count=1 -timeout 10m -v -run '^TestSchemathesis$$' ./cmd/sluice/ | grep -E '^(--- |ok|FAIL)|generated|API Operations|Selected|Tested|Failures|failures|passed|ST[0-9]'
	$(GO) test -count=1 -timeout 10m -v ./monitoring/ | grep -E '^(--- |ok|FAIL|PASS|live check)|_test.go'

## test-real: the e2e suite and the SCRAM tests on a real Kafka 4.x broker (make kafka-up)
test-real: deps
	GO=$(GO) scripts/test-real.sh

## test-loop: repeat the exactly-once tests N times on kfake to smoke out flakes
N ?= 20
test-loop: deps
	$(GO) test -count=$(N) -timeout 60m -run 'Crash|ExactlyOnce|Killed|Windows|Replay|Breaker|Poison' ./e2e/

## test-snowflake: the Snowflake dialect through gosnowflake on fakesnow (installs fakesnow
## 0.12.1 into its own virtualenv once): the warehouse suite of pipeline/sink, then the e2e
## sink suite (Kafka -> processor -> sink -> fakesnow, exactly once, rebalance, killed at every
## step of the write protocol)
test-snowflake: deps
	@eval "$$(scripts/fakesnow/fakesnow-up.sh)" && \
	  trap 'scripts/fakesnow/fakesnow-down.sh' EXIT && \
	  SLUICE_TEST_FAKESNOW=$$FAKESNOW $(GO) test -count=1 -v -run Snowflake ./pipeline/sink/ | grep -E '^(--- |ok|FAIL)|^    --- (PASS|FAIL|SKIP): TestSnowflake' && \
	  SLUICE_TEST_FAKESNOW=$$FAKESNOW $(GO) test -count=1 -v -run '^TestSink(ExactlyOnce|Rebalance|KilledAtEveryStep)$$/fakesnow' ./e2e/ | grep -E '^(--- |ok|FAIL)|^    --- |sink_test.go'

## terraform-lint: tflint (bundled ruleset) and checkov over terraform/ (installs both once;
## go test ./terraform/ and ./deploy/ run in test-fast)
terraform-lint:
	GO=$(GO) scripts/terraform/lint.sh

## compose-check: the static checks of docker-compose.yml, the Dockerfile and .dockerignore
compose-check:
	$(GO) test -count=1 -run 'Compose|Dockerfile|Dockerignore' ./deploy/

## image: build the container image (needs a Docker engine; none on the CI machine)
image:
	docker build -t sluice:dev .

## kafka-up: start a real single-node Kafka 4.x broker on 127.0.0.1 (prints BOOTSTRAP=...);
## with BROKERS=3 a three-node cluster on its own ports (scripts/kafka/kafka-cluster.sh)
BROKERS ?= 1
kafka-up:
	@if [ "$(BROKERS)" = 3 ]; then scripts/kafka/kafka-cluster.sh up; \
	  elif [ "$(BROKERS)" = 1 ]; then scripts/kafka/kafka-up.sh; \
	  else echo "BROKERS must be 1 or 3"; exit 2; fi

## kafka-down: stop the broker started by kafka-up (BROKERS=3: every node of the cluster)
kafka-down:
	@if [ "$(BROKERS)" = 3 ]; then scripts/kafka/kafka-cluster.sh down; else scripts/kafka/kafka-down.sh; fi

## kafka-kill / kafka-stop / kafka-start ID=n: kill -9, stop gracefully or start node n (1-3)
## of the three-node cluster
kafka-kill kafka-stop kafka-start:
	@test -n "$(ID)" || { echo "usage: make $@ ID=<1|2|3>"; exit 2; }
	scripts/kafka/kafka-cluster.sh $(@:kafka-%=%) $(ID)

## test-faults: the whole fault suite on a fresh three-node cluster (broker kills, rolling
## restart, coordinator kill, min.insync.replicas unmet, network faults through toxiproxy);
## prints the Faults table of docs/BENCHMARKS.md
test-faults: deps
	GO=$(GO) scripts/kafka/with-cluster.sh $(GO) test -count=1 -timeout 60m -v -run '^TestFaults$$' ./faults/ | \
	  grep -E '^(--- |ok|FAIL|PASS)|^    --- |faults_test.go|\| '

## test-faults-short: the short suite of make test (about 5 minutes: the partition leader's
## broker killed, ingest's transaction coordinator's broker killed, connection resets, each
## under load)
test-faults-short: deps
	GO=$(GO) scripts/kafka/with-cluster.sh $(GO) test -short -count=1 -timeout 15m -v -run '^TestFaults$$' ./faults/ | \
	  grep -E '^(--- |ok|FAIL|PASS)|^    --- |faults_test.go|\| '

## deps: download Go modules; install Java 17 and Maven for the real broker if missing
## (idempotent; apt-get only where they are absent)
deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl"; exit 1; }
	$(GO) mod download
	@# go mod tidy also reads modules that go mod download leaves out (tests of dependencies,
	@# files under other build tags): fetch them now so tidy-check runs offline later.
	@$(GO) mod tidy -diff >/dev/null 2>&1 || true
	@command -v promtool >/dev/null && command -v amtool >/dev/null && command -v prometheus >/dev/null && \
	  command -v prometheus-node-exporter >/dev/null || { \
	  echo "installing Prometheus, promtool, amtool and the node exporter"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager prometheus-node-exporter; }
	@command -v schemathesis >/dev/null || { echo "installing schemathesis"; pip install -q schemathesis==4.32.5; }
	@test -x k6/node_modules/.bin/tsc || { echo "installing the k6 type definitions"; \
	  npm install --prefix k6 --silent --no-audit --no-fund; }
	@command -v java >/dev/null && command -v javac >/dev/null && command -v jar >/dev/null && command -v mvn >/dev/null || { \
	  echo "installing the Java 17 JDK and Maven (the real Kafka broker, the Connect worker, the peer apps)"; \
	  apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless maven; }
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "installing chromium (the console's browser tests)"; \
	  apt-get update -qq && apt-get install -y -qq chromium; }

## peers: Sluice vs Kafka Streams vs Flink on the same job and a fresh broker of its own
## (port 25092), 1,000,000 events with latency runs; numbers in docs/BENCHMARKS.md
peers: deps
	scripts/peers/run.sh

## peers-small: the same with 50,000 events; asserts only that all three complete and
## agree with the oracle (never speed)
peers-small: deps
	scripts/peers/run.sh --small

## ui-vendor: re-fetch the pinned browser assets (Swagger UI for /docs, htmx for the
## console) and check them against scripts/ui/SHA256SUMS (UPDATE=1 rewrites it)
ui-vendor:
	scripts/ui/vendor.sh

## vet: go vet, tidy-check and gofmt
vet: tidy-check
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## tidy-check: fail when `go mod tidy` would change go.mod or go.sum (a direct import marked
## `// indirect`, a missing or stale requirement or checksum); prints the diff. Needs no
## network once `make deps` has run (it warms the module cache with what tidy reads)
tidy-check:
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }

## race: the tests with the race detector
race: deps
	$(GO) test -race -count=1 -timeout $(TIMEOUT) $(PKGS)

## bench: the Go benchmarks (numbers go to docs/BENCHMARKS.md)
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./pipeline/...

## fuzz: run every fuzz target for FUZZTIME each (new crashers land in testdata/fuzz)
FUZZTIME ?= 30s
fuzz: deps
	$(GO) test ./pipeline/schema -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/schema -run '^$$' -fuzz '^FuzzFromJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/schema -run '^$$' -fuzz '^FuzzDecodeFast$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/schema -run '^$$' -fuzz '^FuzzDecodeProjected$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzPostEvents$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzDecompress$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 50x
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzCloudEvents$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 50x
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzBearerToken$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzParseFastMatchesDecoder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
	$(GO) test ./pipeline/rules -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/wire -run '^$$' -fuzz '^FuzzHeaderGetters$$' -fuzztime $(FUZZTIME)

## loadtest: open-model load on an in-process pipeline (kfake) with the bare franz-go loop
## beside it; numbers in docs/BENCHMARKS.md
RATE ?= 10000
loadtest:
	$(GO) run ./bench --rate $(RATE) --duration 20s --bare

## loadtest-steps: find the knee of the batch endpoint (60k to 130k events/s)
loadtest-steps:
	$(GO) run ./bench --mode batch --batch-size 100 --step 60000:130000:10000 --duration 10s --plot docs/bench-steps.svg

## build: the sluice binary in ./bin
build: deps
	$(GO) build -o bin/sluice ./cmd/sluice

## dev: the whole platform in one process
dev:
	$(GO) run ./cmd/sluice dev

clean:
	rm -rf bin
