# shellcheck shell=sh
# exits non-zero without a FAIL
exit 3
