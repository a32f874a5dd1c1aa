# shellcheck shell=sh
# never runs: its host hook fails
check never true
