//go:build slim

package main

import "github.com/urfave/cli/v2"

// The slim build is the runtime binary (make build: bin/cfs-runtime): it
// holds only what a runtime invocation and the commands run along with one
// (the poststop cleanup, the exit watcher, hook mode) need, so that every
// runc call made through it starts as fast as possible. Every other
// command runs in cfs-runtime-tools (see tools_binary.go).
var toolCommands = []*cli.Command{cleanupCommand, hookCommand}

const slimBuild = true
