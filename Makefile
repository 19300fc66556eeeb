# Build, test and benchmark the Kinesis Data Streams output for Fluent Bit.

PLUGIN_NAME ?= kinesis_streams_go
GO          ?= go
BUILD_DIR   ?= build
LIB         := $(BUILD_DIR)/$(PLUGIN_NAME).so
GO_SOURCES  := $(shell find . -name '*.go' -not -path './test/*' -not -path './tools/*' -not -name '*_test.go') $(wildcard *.c *.h) go.mod go.sum
# Every package but the end-to-end tests; those need the built library.
UNIT_PKGS    = $(shell $(GO) list ./... | grep -v /test)
# The packages tested again on the other platforms: all but package main (cgo), the end-to-end tests
# and tools/ (run on the build machine only).
CROSS_PKGS   = $(filter-out $(shell $(GO) list .),$(shell $(GO) list ./... | grep -v -e /test -e /tools/))
BENCH_PKGS  ?= ./record/ ./timefmt/ ./batcher/ ./kinesis/ ./kpl/ ./internal/wire/ ./compress/
BENCH_TIME  ?= 1s
PERF_RECORDS ?= 500000
PROFILE_DIR ?= /tmp/kinesis-perf-profiles

# Release builds (make dist): one library per platform, in dist/<os>-<arch>/, cross-compiled with
# Debian's C compilers (gcc-aarch64-linux-gnu, gcc-mingw-w64-x86-64).
DIST_DIR       ?= dist
DIST_PLATFORMS := linux-amd64 linux-arm64 windows-amd64
dist_lib        = $(DIST_DIR)/$(1)/$(PLUGIN_NAME).$(if $(filter windows-%,$(1)),dll,so)
DIST_LIBS      := $(foreach p,$(DIST_PLATFORMS),$(call dist_lib,$(p)))
CC_linux_amd64   ?= x86_64-linux-gnu-gcc
CC_linux_arm64   ?= aarch64-linux-gnu-gcc
CC_windows_amd64 ?= x86_64-w64-mingw32-gcc
# The newest glibc a Linux library may need: aws-for-fluent-bit 3.x (Amazon Linux 2023) has 2.34.
MAX_GLIBC   ?= 2.34
LDFLAGS     := -s -w -X main.pluginName=$(PLUGIN_NAME)
# The arm64 tests run in qemu-user; -L points it to the arm64 dynamic loader and C library
# (libc6-arm64-cross) that the C host and cgo test binaries need.
QEMU_ARM64  ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
# Debian's wine64 installs its loader off PATH.
WINE        ?= /usr/lib/wine/wine64

.PHONY: all build build-debug test vet unit e2e e2e-fluent-bit e2e-overload bench bench-fluent-bit bench-latency bench-soak bench-profile clean help dist \
	dist-names test-arm64 test-windows

all: build

build: $(LIB) ## build the plugin library (build/kinesis_streams_go.so)

$(LIB): $(GO_SOURCES)
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -trimpath -ldflags "$(LDFLAGS)" -o $@ .

dist: $(DIST_LIBS) ## the libraries for linux/amd64, linux/arm64 and windows/amd64, checked, and dist/SHA256SUMS
	$(GO) run ./tools/libcheck -max-glibc $(MAX_GLIBC) $^
	cd $(DIST_DIR) && sha256sum $(DIST_LIBS:$(DIST_DIR)/%=%) > SHA256SUMS && cat SHA256SUMS

dist-names: ## the files make dist writes, one per platform
	@echo $(DIST_LIBS)

# make dist-linux-arm64 (and so on): one platform's library, checked (the Dockerfile builds one).
.SECONDEXPANSION:
$(addprefix dist-,$(DIST_PLATFORMS)): dist-%: $$(call dist_lib,$$*)
	$(GO) run ./tools/libcheck -max-glibc $(MAX_GLIBC) $<

# The C header that -buildmode=c-shared writes beside each library is not shipped.
$(DIST_DIR)/linux-%/$(PLUGIN_NAME).so: $(GO_SOURCES)
	CGO_ENABLED=1 GOOS=linux GOARCH=$* CC=$(CC_linux_$*) \
		$(GO) build -buildmode=c-shared -trimpath -ldflags "$(LDFLAGS)" -o $@ .
	rm -f $(@:.so=.h)

$(DIST_DIR)/windows-%/$(PLUGIN_NAME).dll: $(GO_SOURCES)
	CGO_ENABLED=1 GOOS=windows GOARCH=$* CC=$(CC_windows_$*) \
		$(GO) build -buildmode=c-shared -trimpath -ldflags "$(LDFLAGS)" -o $@ .
	rm -f $(@:.dll=.h)

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

e2e: build test/node_modules ## the built library through its C ABI, and in the Fluent Bit named by FLUENT_BIT, against kinesis-mock
	@[ -n "$$FLUENT_BIT" ] || echo "e2e: FLUENT_BIT not set: the tests in real Fluent Bit (test/fluentbit) skip"
	@# One package at a time: each starts its own kinesis-mock and keeps both cores busy.
	$(GO) test -p 1 -count=1 -timeout 10m ./test/...

e2e-fluent-bit: build test/node_modules ## the built library in the real Fluent Bit named by FLUENT_BIT (absolute, or relative to this directory)
	@[ -n "$$FLUENT_BIT" ] || { echo "e2e-fluent-bit: set FLUENT_BIT to a fluent-bit binary"; exit 2; }
	$(GO) test -count=1 -timeout 15m ./test/fluentbit/

test-arm64: $(call dist_lib,linux-arm64) test/node_modules ## unit and C-host end-to-end tests for linux/arm64, in qemu-user
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -count=1 -exec "$(QEMU_ARM64)" $(CROSS_PKGS)
	CGO_ENABLED=1 GOARCH=arm64 CC=$(CC_linux_arm64) $(GO) test -count=1 -exec "$(QEMU_ARM64)" .
	E2E_CC=$(CC_linux_arm64) E2E_EXEC="$(QEMU_ARM64)" E2E_PLUGIN=$(CURDIR)/$< \
		$(GO) test -count=1 -timeout 20m ./test/

# Go's runtime needs ProcessPrng from bcryptprimitives.dll, which Wine 8 (Debian 12) lacks:
# tools/wine/bcryptprimitives.c provides it in a Wine prefix made for the run.
test-windows: ## unit tests for windows/amd64, in Wine
	@prefix=$$(mktemp -d); trap 'rm -rf "$$prefix"' EXIT; set -e; \
	export WINEPREFIX=$$prefix WINEDEBUG=-all; \
	$(WINE) wineboot --init >/dev/null 2>&1; \
	$(CC_windows_amd64) -O2 -shared -o $$prefix/drive_c/windows/system32/bcryptprimitives.dll \
		tools/wine/bcryptprimitives.c -lbcrypt; \
	set -x; \
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) test -count=1 -exec $(WINE) $(CROSS_PKGS); \
	GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=$(CC_windows_amd64) $(GO) test -count=1 -exec $(WINE) .

e2e-overload: build test/node_modules ## a 4-shard stream offered twice its capacity for 60 s, through the C host and (with FLUENT_BIT) in Fluent Bit
	OVERLOAD_SECONDS=60 $(GO) test -p 1 -count=1 -timeout 20m -run TestShardLimitedOverload -v ./test/ ./test/fluentbit/

test/node_modules: test/package.json test/package-lock.json
	cd test && npm ci --no-audit --no-fund
	@touch $@

bench: build ## benchmarks with allocations, then the whole path through the C ABI (test/perf)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) $(BENCH_PKGS)
	PERF_RECORDS=$(PERF_RECORDS) $(GO) test -count=1 -timeout 3m -run '^$$' -bench BenchmarkWholePath -benchtime 1x ./test/perf/

bench-latency: build ## real Fluent Bit (FLUENT_BIT), 100,000 lines, a 50 ms sink, workers 1: this plugin beside the C output
	$(GO) test -count=1 -timeout 20m -run '^$$' -bench BenchmarkFluentBitLatency -benchtime 1x ./test/perf/

bench-fluent-bit: build ## real Fluent Bit (FLUENT_BIT: absolute, or relative to this directory): null, the C output and this plugin, alternating
	@[ -n "$$FLUENT_BIT" ] || { echo "bench-fluent-bit: set FLUENT_BIT to a fluent-bit binary"; exit 2; }
	PERF_RECORDS=$(PERF_RECORDS) $(GO) test -count=1 -timeout 60m -run '^$$' -bench '^BenchmarkFluentBit$$' -benchtime 1x ./test/perf/

bench-soak: build ## the whole path with 2,000,000 records: fails if the resident set grows
	PERF_RECORDS=2000000 PERF_RUNS=1 $(GO) test -count=1 -timeout 5m -run '^$$' -bench BenchmarkWholePath -benchtime 1x ./test/perf/

bench-profile: ## CPU and allocation profiles of the in-process flush path, written outside the repo
	mkdir -p $(PROFILE_DIR)
	$(GO) test -count=1 -timeout 3m -run '^$$' -bench BenchmarkFlushTLS -benchtime 3s -benchmem \
		-cpuprofile $(PROFILE_DIR)/cpu.out -memprofile $(PROFILE_DIR)/mem.out -o $(PROFILE_DIR)/perf.test ./test/perf/
	$(GO) tool pprof -top -nodecount 20 $(PROFILE_DIR)/perf.test $(PROFILE_DIR)/cpu.out

clean: ## remove build output
	rm -rf $(BUILD_DIR) $(DIST_DIR)

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s '	'
