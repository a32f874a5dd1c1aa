# shellcheck shell=bash
echo preparing
false
