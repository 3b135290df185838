# checker — build, try, test.
GO      ?= go
BIN     ?= bin/checker
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X checker/cmd.version=$(VERSION)
PREFIX  ?= /usr/local

.PHONY: build install demo test deps-test vet bench faults fuzz clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/checker

# A real cron run on the built-in defaults: no mail server (--nomail), no
# Redis (the local heartbeat store), against endpoints it starts itself.
demo: build
	@sh scripts/demo.sh $(BIN)

# Everything the tests need, then every test with the race detector.
test: deps-test vet
	$(GO) test -race -count=1 ./...

# redis-server (from Debian's packages) for the heartbeat store tests.
deps-test:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (needed by the heartbeat tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

clean:
	rm -rf bin

# Performance evidence (bench/run.sh): wall time and peak RSS of whole cron
# runs against loopback servers, then the in-process Go benchmarks.
bench: build
	CHECKER_BIN=$(BIN) GO=$(GO) sh bench/run.sh

# The fault tests through the real binary, including the slow ones behind
# the "faults" build tag (SMTP hang: each run waits out the 30 s timeout).
faults:
	$(GO) test -race -count=1 -tags faults -v -run 'Kill|Invocations|SMTP|BadState|DiskFull' ./e2e/

# Every fuzz target for FUZZTIME each, one after the other. An input that
# fails lands in the package's testdata/fuzz and so runs in every go test.
# Go 1.26's fuzz coordinator can end a clean run with "context deadline
# exceeded" (golang/go#75804, fixed in Go 1.27): that alone, with no new
# failing input written, is not a failure.
FUZZTIME ?= 60s
FUZZMINIMIZETIME ?= 10s
FUZZ_TARGETS := config:FuzzLoad state:FuzzDecode peer:FuzzParseReply heartbeat:FuzzDecode
fuzz:
	@failed=; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t#*:}; dir=$$pkg/testdata/fuzz/$$fn; log=$$(mktemp); \
	  before=$$(ls $$dir 2>/dev/null | wc -l); \
	  echo "== $$fn in ./$$pkg/ for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ >$$log 2>&1; rc=$$?; \
	  grep 'fuzz: elapsed' $$log | tail -n 1; \
	  if [ $$rc -ne 0 ]; then \
	    if [ "$$(ls $$dir 2>/dev/null | wc -l)" -eq "$$before" ] && grep -q 'context deadline exceeded' $$log; then \
	      echo "   (ended by golang/go#75804, no failing input: counted as passed)"; \
	    else cat $$log; failed="$$failed $$pkg:$$fn"; fi; \
	  fi; rm -f $$log; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi
