# shellcheck shell=sh
# the guest kernel panics mid-scenario
check before true
echo c >/proc/sysrq-trigger
check after true
