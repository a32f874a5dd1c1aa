# shellcheck shell=sh
# every helper's failing case; require ends the scenario
check bad false
check_output out a echo b
check_contains lacks xyz echo abc
check_fails wrongmsg xyz cat /nonexistent
check_fails succeeds "" true
require req false
check never-reached true
