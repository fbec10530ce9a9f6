# Sluice build and test entry points. `make test` is what CI runs (.ci/run): it installs
# what is missing, then vets and tests everything.
GO       ?= go
PKGS     ?= ./...
TIMEOUT  ?= 20m

.PHONY: test deps vet unit race bench fuzz build dev clean

## test: install what is missing, vet, and run every test (unit, fuzz corpora, e2e on kfake)
test: deps vet
	$(GO) test -count=1 -timeout $(TIMEOUT) $(PKGS)

## deps: download Go modules (idempotent)
deps:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl"; exit 1; }
	$(GO) mod download

## vet: go vet and gofmt
vet:
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

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
	$(GO) test ./pipeline/ingest -run '^$$' -fuzz '^FuzzPostEvents$$' -fuzztime $(FUZZTIME)
	$(GO) test ./pipeline/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s
	$(GO) test ./pipeline/rules -run '^$$' -fuzz '^FuzzCheck$$' -fuzztime $(FUZZTIME)

## build: the sluice binary in ./bin
build: deps
	$(GO) build -o bin/sluice ./cmd/sluice

## dev: the whole platform in one process
dev:
	$(GO) run ./cmd/sluice dev

clean:
	rm -rf bin
