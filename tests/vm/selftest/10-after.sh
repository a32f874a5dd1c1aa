# shellcheck shell=sh
# never starts: the guest is dead
check never true
