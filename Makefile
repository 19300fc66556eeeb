# Build, test and benchmark the Kinesis Data Streams output for Fluent Bit.

PLUGIN_NAME ?= kinesis_streams_go
GO          ?= go
BUILD_DIR   ?= build
LIB         := $(BUILD_DIR)/$(PLUGIN_NAME).so
GO_SOURCES  := $(shell find . -name '*.go' -not -path './test/*' -not -name '*_test.go') go.mod go.sum
# Every package but the end-to-end tests; those need the built library.
UNIT_PKGS    = $(shell $(GO) list ./... | grep -v /test)
BENCH_PKGS  ?= ./record/ ./timefmt/ ./batcher/ ./kinesis/ ./kpl/ ./internal/wire/ ./compress/
BENCH_TIME  ?= 1s
PERF_RECORDS ?= 500000
PROFILE_DIR ?= /tmp/kinesis-perf-profiles

.PHONY: all build build-debug test vet unit e2e bench bench-fluent-bit bench-soak bench-profile clean help

all: build

build: $(LIB) ## build the plugin library (build/kinesis_streams_go.so)

$(LIB): $(GO_SOURCES)
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath \
		-ldflags "-s -w -X main.pluginName=$(PLUGIN_NAME)" -o $@ .

build-debug: ## the library with its symbols and DWARF, for perf: build/debug/kinesis_streams_go.so
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath \
		-ldflags "-X main.pluginName=$(PLUGIN_NAME)" -o $(BUILD_DIR)/debug/$(PLUGIN_NAME).so .

test: vet unit e2e ## vet, unit tests with the race detector, end-to-end tests

vet: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './test/node_modules/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit: ## unit tests (incl. examples/ and Dockerfile checks) with -race, without cgo, and record/ without assembly
	$(GO) test -race -count=1 $(UNIT_PKGS)
	CGO_ENABLED=0 $(GO) test -count=1 $(filter-out $(shell $(GO) list .),$(UNIT_PKGS))
	$(GO) test -count=1 -tags purego ./record/ ./internal/wire/ # the portable code that replaces the assembly elsewhere

e2e: build test/node_modules ## the built library through its C ABI against kinesis-mock
	$(GO) test -count=1 -timeout 10m ./test/...

test/node_modules: test/package.json test/package-lock.json
	cd test && npm ci --no-audit --no-fund
	@touch $@

bench: build ## benchmarks with allocations, then the whole path through the C ABI (test/perf)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) $(BENCH_PKGS)
	PERF_RECORDS=$(PERF_RECORDS) $(GO) test -count=1 -timeout 3m -run '^$$' -bench BenchmarkWholePath -benchtime 1x ./test/perf/

bench-fluent-bit: build ## real Fluent Bit (FLUENT_BIT: absolute, or relative to this directory): null, the C output and this plugin, alternating
	@[ -n "$$FLUENT_BIT" ] || { echo "bench-fluent-bit: set FLUENT_BIT to a fluent-bit binary"; exit 2; }
	PERF_RECORDS=$(PERF_RECORDS) $(GO) test -count=1 -timeout 60m -run '^$$' -bench BenchmarkFluentBit -benchtime 1x ./test/perf/

bench-soak: build ## the whole path with 2,000,000 records: fails if the resident set grows
	PERF_RECORDS=2000000 PERF_RUNS=1 $(GO) test -count=1 -timeout 5m -run '^$$' -bench BenchmarkWholePath -benchtime 1x ./test/perf/

bench-profile: ## CPU and allocation profiles of the in-process flush path, written outside the repo
	mkdir -p $(PROFILE_DIR)
	$(GO) test -count=1 -timeout 3m -run '^$$' -bench BenchmarkFlushTLS -benchtime 3s -benchmem \
		-cpuprofile $(PROFILE_DIR)/cpu.out -memprofile $(PROFILE_DIR)/mem.out -o $(PROFILE_DIR)/perf.test ./test/perf/
	$(GO) tool pprof -top -nodecount 20 $(PROFILE_DIR)/perf.test $(PROFILE_DIR)/cpu.out

clean: ## remove build output
	rm -rf $(BUILD_DIR)

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s '	'
