# shellcheck shell=sh
# outlives CFS_VM_SCENARIO_TIMEOUT=5
check slow sleep 60
