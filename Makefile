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
