# cfs-runtime
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
CONFDIR   ?= /etc/cfs-runtime
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GOFLAGS_BUILD := -trimpath -tags urfave_cli_no_docs -ldflags "-s -w -X main.version=$(VERSION)"

.PHONY: all build deps install test test-unit test-integration test-vm test-conformance lint bench man demo clean

all: build

build:
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o bin/cfs-runtime .
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o bin/cfs-runtime-sigstore ./cmd/cfs-runtime-sigstore
	CGO_ENABLED=0 go build -o bin/recvtty ./tests/tools/recvtty

# deps installs what building and testing need on Debian 12.
deps:
	tests/install-deps.sh

install: build
	install -D -m 0755 bin/cfs-runtime $(DESTDIR)$(BINDIR)/cfs-runtime
	install -D -m 0755 bin/cfs-runtime-sigstore $(DESTDIR)$(BINDIR)/cfs-runtime-sigstore
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	install -m 0644 contrib/config.toml.example contrib/policy.toml.example $(DESTDIR)$(CONFDIR)/
	if [ -f man/cfs-runtime.8 ]; then install -D -m 0644 man/cfs-runtime.8 $(DESTDIR)$(MANDIR)/man8/cfs-runtime.8; fi

# test runs every suite and ends with one "N passed, N failed" line.
test: build
	tests/run-all.sh unit integration vm conformance

test-unit:
	tests/run-all.sh unit

test-integration: build
	tests/run-all.sh integration

test-vm: build
	tests/run-all.sh vm

test-conformance: build
	tests/run-all.sh conformance

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	go vet ./...
	go vet -tags vmtest ./...
	command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@2025.1.1
	staticcheck ./...

bench: build
	@for b in tests/bench/*.sh; do echo "== $$b"; bash $$b || exit 1; done

# man pages come from the CLI definitions (a build with the docs generator).
man:
	mkdir -p man
	go build -o bin/cfs-runtime-docs .
	bin/cfs-runtime-docs generate-man man

demo: build
	demo/run.sh

clean:
	rm -rf bin man
