# checker — build, install, try, test.
#
#   make build          as yourself, with Go: bin/checker (static), bin/man,
#                       bin/completions
#   sudo make install   copies those; needs no Go (sudo's PATH has none)
GO       ?= go
BUILDDIR ?= bin
BIN      ?= $(BUILDDIR)/checker
# Recursive (=), not immediate: `sudo make install` must not run git or go.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   = -s -w -X checker/cmd.version=$(VERSION)
# The man pages' date: the last commit's, so a rebuild changes nothing.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
DOCDIR      ?= $(DATADIR)/doc/checker

.PHONY: build install uninstall demo test deps-test vet bench faults fuzz clean

# CGO_ENABLED=0: a static binary, the same on every Linux, no libc lookups.
# The man pages and completions come from a separate program
# (internal/gendocs) so that cobra's doc package stays out of the binary.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(GO) run ./internal/gendocs -out $(BUILDDIR) -version $(VERSION)

# Copies what `make build` made; never builds (root's PATH has no Go). The
# logrotate snippet is a configuration file: an existing one is kept.
install:
	@test -x $(BIN) && test -f $(BUILDDIR)/man/man1/checker.1 && test -f $(BUILDDIR)/completions/checker.bash || { \
	  echo "make install: $(BIN), its man pages or its completions are missing:" >&2; \
	  echo "  run 'make build' first (as yourself, with Go), then 'sudo make install'" >&2; exit 1; }
	@stale=$$(find . -name $(notdir $(BUILDDIR)) -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer $(BIN) -print | head -n 1); \
	  if [ -n "$$stale" ]; then \
	    echo "make install: $(BIN) is older than $$stale: run 'make build' again first" >&2; exit 1; fi
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/logrotate.d $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/checker
	install -m 0644 $(BUILDDIR)/man/man1/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BUILDDIR)/completions/checker.bash $(DESTDIR)$(BASHCOMPDIR)/checker
	install -m 0644 $(BUILDDIR)/completions/_checker $(DESTDIR)$(ZSHCOMPDIR)/_checker
	install -m 0644 $(BUILDDIR)/completions/checker.fish $(DESTDIR)$(FISHCOMPDIR)/checker.fish
	sed 's|/usr/local/bin/checker|$(BINDIR)/checker|g' checker.service > $(DESTDIR)$(UNITDIR)/checker.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/checker.service
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/logrotate.d/checker ]; then \
	  echo "kept $(DESTDIR)$(SYSCONFDIR)/logrotate.d/checker (the shipped one is packaging/logrotate.d/checker)"; \
	else echo "install -m 0644 packaging/logrotate.d/checker $(DESTDIR)$(SYSCONFDIR)/logrotate.d/checker"; \
	  install -m 0644 packaging/logrotate.d/checker $(DESTDIR)$(SYSCONFDIR)/logrotate.d/checker; fi
	install -m 0644 settings.cfg.example crontab.example $(DESTDIR)$(DOCDIR)/

# Removes what install put in place; settings, state, logs and the
# logrotate snippet stay.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/checker $(DESTDIR)$(MANDIR)/man1/checker.1 $(DESTDIR)$(MANDIR)/man1/checker-*.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/checker $(DESTDIR)$(ZSHCOMPDIR)/_checker $(DESTDIR)$(FISHCOMPDIR)/checker.fish \
	  $(DESTDIR)$(UNITDIR)/checker.service
	rm -rf $(DESTDIR)$(DOCDIR)

# A real cron run on the built-in defaults: no mail server (--nomail), no
# Redis (the local heartbeat store), against endpoints it starts itself.
demo: build
	@sh scripts/demo.sh $(BIN)

# Everything the tests need, then every test with the race detector.
test: deps-test vet
	$(GO) test -race -count=1 ./...

# From Debian's packages: redis-server for the heartbeat store tests,
# logrotate for the test of the shipped logrotate snippet, chromium for the
# status page's test in a real browser (headless).
deps-test:
	@missing=; for p in redis-server logrotate chromium; do \
	  command -v $$p >/dev/null 2>&1 || test -x /usr/sbin/$$p || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing$$missing (needed by the tests)"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; fi

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

clean:
	rm -rf $(BUILDDIR)

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
FUZZ_TARGETS := config:FuzzLoad peer:FuzzParseReply \
	state:FuzzDecodeJob state:FuzzDecodeHealth state:FuzzDecodeNotice state:FuzzDecodeClaims \
	state:FuzzDecodeEvent state:FuzzDecodeSilence state:FuzzDecodeService state:FuzzDecodeRecipient \
	state:FuzzDecodeJSONState heartbeat:FuzzDecode heartbeat:FuzzParseRedisSpec heartbeat:FuzzEscape
fuzz:
	@failed=; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t#*:}; dir=$$pkg/testdata/fuzz/$$fn; log=$$(mktemp); \
	  before=$$(ls $$dir 2>/dev/null | wc -l); \
	  echo "== $$fn in ./$$pkg/ for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$pkg/ >$$log 2>&1; rc=$$?; \
	  grep 'fuzz: elapsed' $$log | tail -n 1; \
	  if grep -q 'no fuzz tests to fuzz' $$log; then rc=1; fi; \
	  if [ $$rc -ne 0 ]; then \
	    if [ "$$(ls $$dir 2>/dev/null | wc -l)" -eq "$$before" ] && grep -q 'context deadline exceeded' $$log; then \
	      echo "   (ended by golang/go#75804, no failing input: counted as passed)"; \
	    else cat $$log; failed="$$failed $$pkg:$$fn"; fi; \
	  fi; rm -f $$log; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi
