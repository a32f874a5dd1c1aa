# shellcheck shell=sh
# every helper's passing case
check ok true
check_output output a echo a
check_contains contains bc echo abcd
check_fails fails-with-text "No such file" cat /nonexistent
