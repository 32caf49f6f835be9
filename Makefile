GO ?= go
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
# The version is the commit, marked -dirty when the code differs from it;
# BENCHMARKS.md and SCALING.md are what make bench writes, so they do not
# count (a bench run over an earlier run's report measures clean code).
VERSION ?= $(shell v=$$(git describe --always 2>/dev/null) || { echo devel; exit; }; 	git diff --quiet HEAD -- . ':!BENCHMARKS.md' ':!SCALING.md' 2>/dev/null || v=$$v-dirty; echo $$v)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-faults fuzz lint deps bench clean

all: build

## build: compile bin/zkdns
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/zkdns ./cmd/zkdns

## deps: install ZooKeeper, dig and staticcheck if missing (idempotent)
deps:
	scripts/deps

## run: throwaway ZooKeeper + zkdns with the example config + demo instances
run: build
	scripts/deps run
	scripts/demo

## lint: gofmt, go vet, staticcheck
lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN_DIR)/staticcheck ./...

# The fault scenarios (./faults) are left out of `test` and run by
# `test-faults` on their own (-p 1): each runs three ZooKeeper JVMs and
# holds zkdns to session-timeout bounds, which should not depend on how
# busy the other packages' tests keep the machine. .ci/run runs both.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v '/faults$$')

## test: lint, then every test (but the fault scenarios) with -race against a real ZooKeeper
# scripts/gotest reruns a package only for go-zookeeper's own known data
# race (see the script); any other failure fails the run.
test: lint
	GO=$(GO) scripts/gotest -race -count=1 -timeout 20m -- $(UNIT_PKGS)

## test-faults: ZooKeeper ensemble faults and zkdns restarts, end to end (see RELIABILITY.md)
test-faults:
	GO=$(GO) scripts/gotest -race -count=1 -p 1 -timeout 10m -- ./faults/

## fuzz: run every fuzz target for FUZZTIME (default 100,000 inputs, some 15-30 s each here) from its committed corpus
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator
# can report its own deadline as a failure ("context deadline exceeded",
# no crasher; go.dev/issue/75804, fixed in Go 1.27) when a loaded machine
# holds a worker past it.
FUZZTIME ?= 100000x
FUZZ_TARGETS = dnsserver:FuzzAnswer dnsserver:FuzzFastPath dnsserver:FuzzRelay zkwatch:FuzzDecode zkwatch:FuzzJSONObject conf:FuzzParse cmd/zkdns:FuzzLoadRegisterConfig internal/zkclient:FuzzSideConnFraming
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) ./$$pkg/; \
	done

## bench: throughput against Knot, NSD and CoreDNS, propagation, cold sync, churn, ZooKeeper cost (not part of test); writes BENCHMARKS.md and SCALING.md
bench: build
	scripts/deps bench
	scripts/bench

clean:
	rm -rf bin .run

# Install locations. DESTDIR stages the tree for a package build; the config
# path is fixed because it is the binary's default.
PREFIX ?= /usr/local
UNITDIR ?= /lib/systemd/system
ZKDNS_CONF := /etc/zkdns/zkdns.toml

.PHONY: install uninstall

## install: bin/zkdns (built if missing), the systemd units, and the example config unless one exists
install: bin/zkdns
	install -D -m 0755 bin/zkdns $(DESTDIR)$(PREFIX)/bin/zkdns
	install -D -m 0644 deploy/zkdns.service $(DESTDIR)$(UNITDIR)/zkdns.service
	install -D -m 0644 deploy/zkdns-register@.service $(DESTDIR)$(UNITDIR)/zkdns-register@.service
	sed -i -E 's|^(ExecStart(Pre)?=)/usr/bin/zkdns |\1$(PREFIX)/bin/zkdns |' \
	  $(DESTDIR)$(UNITDIR)/zkdns.service $(DESTDIR)$(UNITDIR)/zkdns-register@.service
	@# Never overwrite an operator's config.
	@if [ -e $(DESTDIR)$(ZKDNS_CONF) ]; then \
	  echo "install: keeping existing $(DESTDIR)$(ZKDNS_CONF)"; \
	else \
	  echo "install -D -m 0644 deploy/zkdns.example.toml $(DESTDIR)$(ZKDNS_CONF)"; \
	  install -D -m 0644 deploy/zkdns.example.toml $(DESTDIR)$(ZKDNS_CONF); \
	fi

# install builds only a missing binary, so `make build && sudo make install`
# does not rebuild as root (without the user's Go toolchain on PATH, module
# cache, or git ownership for the version stamp).
bin/zkdns:
	$(MAKE) build

## uninstall: remove the binary and the unit; the config stays
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/zkdns $(DESTDIR)$(UNITDIR)/zkdns.service $(DESTDIR)$(UNITDIR)/zkdns-register@.service
