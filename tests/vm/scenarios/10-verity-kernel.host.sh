# shellcheck shell=bash
# The verity package's kernel tests (build tag vmtest) as a test binary.
vm_go test -c -tags vmtest -o "$VM_ROOT/usr/local/bin/verity.test" ./verity
[ -x "$VM_ROOT/usr/local/bin/verity.test" ] || {
	echo "go test -c ./verity wrote no binary (no test files?)"
	exit 1
}
