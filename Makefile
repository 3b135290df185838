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
