GO ?= go
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test lint deps bench clean

all: build

## build: compile bin/zkdns
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/zkdns ./cmd/zkdns

## deps: install ZooKeeper, dig and staticcheck if missing (idempotent)
deps:
	scripts/deps

## run: throwaway ZooKeeper + zkdns with the example config + demo instances
run: build deps
	scripts/demo

## lint: gofmt, go vet, staticcheck
lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN_DIR)/staticcheck ./...

## test: lint, then every test with -race against a real ZooKeeper
test: lint
	$(GO) test -race -count=1 -timeout 20m ./...

## bench: DNS throughput and propagation (not part of test); writes BENCHMARKS.md
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

## install: bin/zkdns (built if missing), the systemd unit, and the example config unless one exists
install: bin/zkdns
	install -D -m 0755 bin/zkdns $(DESTDIR)$(PREFIX)/bin/zkdns
	install -D -m 0644 deploy/zkdns.service $(DESTDIR)$(UNITDIR)/zkdns.service
	sed -i -E 's|^(ExecStart(Pre)?=)/usr/bin/zkdns |\1$(PREFIX)/bin/zkdns |' \
	  $(DESTDIR)$(UNITDIR)/zkdns.service
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
	rm -f $(DESTDIR)$(PREFIX)/bin/zkdns $(DESTDIR)$(UNITDIR)/zkdns.service
