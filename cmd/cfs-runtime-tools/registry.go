package main

import (
	"io"

	"github.com/urfave/cli/v2"

	"github.com/cfs-runtime/cfs-runtime/ociimage/registry"
)

// registryFlags are skopeo's options for docker:// references (import,
// seal, fsck --repair).
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "authfile", Usage: "docker:// images: credentials `FILE` (containers auth.json; default: where podman looks)", TakesFile: true},
		&cli.StringFlag{Name: "cert-dir", Usage: "docker:// images: `DIR` with the registry's CA certificates (*.crt) and client certificates (*.cert, *.key)", TakesFile: true},
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "docker:// images: require HTTPS and verify certificates (false: as an insecure registry of registries.conf)"},
		&cli.StringFlag{Name: "registries-conf", Usage: "docker:// images: registries.conf `FILE` instead of /etc/containers/registries.conf (and FILE.d instead of its .d)", TakesFile: true},
	}
}

// setupRegistry installs the registry client with the command's flags;
// progress bars are drawn on errw when it is a terminal.
func setupRegistry(c *cli.Context, errw io.Writer) *registry.Stats {
	opts := registryOptions(c)
	if bars := layerBars(errw); bars != nil {
		opts.Progress = bars
	}
	return registry.Register(opts)
}

// registryOptions reads registryFlags.
func registryOptions(c *cli.Context) registry.Options {
	opts := registry.Options{
		AuthFile:       c.String("authfile"),
		CertDir:        c.String("cert-dir"),
		RegistriesConf: c.String("registries-conf"),
	}
	if c.IsSet("tls-verify") {
		v := c.Bool("tls-verify")
		opts.TLSVerify = &v
	}
	return opts
}
