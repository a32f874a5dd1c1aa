# cfs-runtime
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)

PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
CONFDIR   ?= /etc/cfs-runtime
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS_BUILD := -s -w -X main.version=$(VERSION)

.PHONY: all build deps deps-demo deps-test install uninstall completion test test-unit test-integration test-vm test-conformance lint bench man demo clean

all: build

# bin/cfs-runtime is the front every runtime call goes through (main.go
# over internal/handoff: argv, configuration, exec; nothing else, so that
# every runc call through it starts fast); it execs bin/cfs-runtime-mount
# (cmd/cfs-runtime-mount over internal/wrapper) for create, run and delete,
# and bin/cfs-runtime-tools (cmd/cfs-runtime-tools) for every other command
# (fsck, import, sign, ...). Install them together.
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS_BUILD)" -o bin/cfs-runtime .
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS_BUILD)" -o bin/cfs-runtime-mount ./cmd/cfs-runtime-mount
	CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags "$(LDFLAGS_BUILD)" -o bin/cfs-runtime-tools ./cmd/cfs-runtime-tools
	CGO_ENABLED=0 go build -trimpath -tags urfave_cli_no_docs -ldflags "$(LDFLAGS_BUILD)" -o bin/cfs-runtime-sigstore ./cmd/cfs-runtime-sigstore
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS_BUILD)" -o bin/cfs-runtime-engine ./cmd/cfs-runtime-engine
	CGO_ENABLED=0 go build -o bin/recvtty ./tests/tools/recvtty

# deps (= deps-demo) installs what building, `make demo` and the README's
# walk-through need on Debian 12; deps-test adds what only the test suites
# use (containerd, crictl built from source, skopeo, umoci, strace, ...).
deps deps-demo:
	tests/install-deps.sh demo

deps-test:
	tests/install-deps.sh test

# install runs mandb -q where it exists (not for a DESTDIR staging
# install), so that man -k and whatis find the new pages.
install: build man completion
	install -D -m 0755 bin/cfs-runtime $(DESTDIR)$(BINDIR)/cfs-runtime
	install -D -m 0755 bin/cfs-runtime-mount $(DESTDIR)$(BINDIR)/cfs-runtime-mount
	install -D -m 0755 bin/cfs-runtime-tools $(DESTDIR)$(BINDIR)/cfs-runtime-tools
	install -D -m 0755 bin/cfs-runtime-sigstore $(DESTDIR)$(BINDIR)/cfs-runtime-sigstore
	install -D -m 0755 bin/cfs-runtime-engine $(DESTDIR)$(BINDIR)/cfs-runtime-engine
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	install -m 0644 contrib/config.toml.example contrib/policy.toml.example $(DESTDIR)$(CONFDIR)/
	install -d -m 0755 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 0644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	if [ -z "$(DESTDIR)" ] && command -v mandb >/dev/null; then mandb -q; fi
	install -D -m 0644 bin/completion/cfs-runtime.bash $(DESTDIR)$(BASHCOMPDIR)/cfs-runtime
	install -D -m 0644 bin/completion/_cfs-runtime $(DESTDIR)$(ZSHCOMPDIR)/_cfs-runtime

# uninstall removes what install puts, with the same PREFIX, DESTDIR and
# directory variables; the configuration directory only if it is then empty
# (config.toml, policy.toml and keys are the administrator's).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cfs-runtime $(DESTDIR)$(BINDIR)/cfs-runtime-mount \
		$(DESTDIR)$(BINDIR)/cfs-runtime-tools $(DESTDIR)$(BINDIR)/cfs-runtime-sigstore \
		$(DESTDIR)$(BINDIR)/cfs-runtime-engine
	rm -f $(DESTDIR)$(CONFDIR)/config.toml.example $(DESTDIR)$(CONFDIR)/policy.toml.example
	[ ! -d $(DESTDIR)$(CONFDIR) ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(CONFDIR)
	rm -f $(DESTDIR)$(MANDIR)/man8/cfs-runtime.8 $(DESTDIR)$(MANDIR)/man8/cfs-runtime-*.8 \
		$(DESTDIR)$(MANDIR)/man5/cfs-runtime-*.5
	rm -f $(DESTDIR)$(BASHCOMPDIR)/cfs-runtime $(DESTDIR)$(ZSHCOMPDIR)/_cfs-runtime

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

# man pages come from the CLI definitions (cfs-runtime-tools' hidden
# generate-man): cfs-runtime.8 and cfs-runtime-COMMAND.8 for each command;
# the files' pages, cfs-runtime-config.toml.5 and cfs-runtime-policy.toml.5,
# from docs/config.md and docs/policy.md.
man: build
	mkdir -p man
	rm -f man/*.8 man/*.5
	bin/cfs-runtime-tools generate-man man docs

# completion scripts come from the CLI definitions too.
completion: build
	mkdir -p bin/completion
	bin/cfs-runtime completion bash >bin/completion/cfs-runtime.bash
	bin/cfs-runtime completion zsh >bin/completion/_cfs-runtime

demo: build
	demo/run.sh

clean:
	rm -rf bin man
