// Pinned dependencies for building opencontainers/runtime-tools v0.9.0 validation
// programs (v0.9.0 predates Go modules). tests/conformance/run.sh copies this
// file to go.mod (and runtime-tools.sum to go.sum) in a copy of the module
// source. Versions follow v0.9.0's Godeps.json where the module proxy serves
// them, otherwise the oldest served version; runtime-spec is v1.0.2, which
// the tests report as the spec version. "go 1.21" keeps pre-1.22 loop
// variable semantics the 2019 code was written for.

module github.com/opencontainers/runtime-tools

go 1.21

require (
	github.com/blang/semver v3.5.0+incompatible
	github.com/hashicorp/go-multierror v1.0.0
	github.com/mndrix/tap-go v0.0.0-20171203230836-629fa407e90b
	github.com/mrunalp/fileutils v0.5.0
	github.com/opencontainers/runtime-spec v1.0.2
	github.com/opencontainers/selinux v1.6.0
	github.com/satori/go.uuid v1.1.0
	github.com/sirupsen/logrus v1.0.4
	github.com/syndtr/gocapability v0.0.0-20200815063812-42c35b437635
	github.com/urfave/cli v1.19.1
	github.com/xeipuuv/gojsonschema v1.1.0
	golang.org/x/sys v0.1.0
)

require (
	github.com/hashicorp/errwrap v1.0.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/xeipuuv/gojsonpointer v0.0.0-20190905194746-02993c407bfb // indirect
	github.com/xeipuuv/gojsonreference v0.0.0-20180127040603-bd5ef7bd5415 // indirect
	golang.org/x/crypto v0.1.0 // indirect
	golang.org/x/term v0.1.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
