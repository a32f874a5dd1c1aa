# shellcheck shell=sh
# runs no check at all
echo hi
