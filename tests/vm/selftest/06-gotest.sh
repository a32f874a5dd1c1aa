# shellcheck shell=sh
# check_gotest on canned go test -v output: pass, skip, fail with subtest;
# then a binary that panics before running any test
cat >"$VM_WORK/fake.test" <<'X'
#!/bin/sh
cat <<'Y'
=== RUN   TestA
--- PASS: TestA (0.00s)
=== RUN   TestB
    b_test.go:3: no frobnicator
--- SKIP: TestB (0.00s)
=== RUN   TestC
    c_test.go:7: got 1, want 2
=== RUN   TestC/sub
    c_test.go:9: inner
--- FAIL: TestC (0.00s)
    --- FAIL: TestC/sub (0.00s)
FAIL
Y
exit 1
X
printf '#!/bin/sh\necho panic: boom\nexit 2\n' >"$VM_WORK/fake2.test"
chmod +x "$VM_WORK/fake.test" "$VM_WORK/fake2.test"
check_gotest fake "$VM_WORK/fake.test" -test.v
check_gotest fake2 "$VM_WORK/fake2.test" -test.v
