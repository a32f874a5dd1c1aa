//go:build !slim

package main

import "github.com/urfave/cli/v2"

// toolCommands are cfs-runtime's own subcommands. Everything that is not one
// of these is an OCI runtime invocation and is handled by the argv table in
// package oci, so that its argv reaches the real runtime untouched.
// One file per command, as in runc; add each new command here.
var toolCommands = []*cli.Command{verityCommand, digestCommand, mkimageCommand, infoCommand, importCommand, sealCommand, signCommand, verifyCommand, policyCommand, cleanupCommand, hookCommand, completionCommand, fsckCommand, gcCommand, imagesCommand}

// slimBuild: this is the full build (see commands_slim.go).
const slimBuild = false
