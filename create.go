package main

import (
	"fmt"
	"os"

	"github.com/cfs-runtime/cfs-runtime/bundle"
)

// prepareCreate runs before create and run hand off: it loads the bundle's
// config.json so that a broken bundle is reported by cfs-runtime with a
// clear message.
func prepareCreate(env *runtimeEnv) error {
	inv := env.inv
	if len(inv.Positional) != 1 {
		// Let the runtime print its own usage error for a wrong number of
		// arguments, exactly as it would without cfs-runtime.
		return nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	b, err := bundle.Load(inv.Bundle(cwd), inv.ConfigName())
	if err != nil {
		return err
	}
	env.log.Info("create", "id", inv.ContainerID(), "bundle", b.Dir)
	return nil
}
