#!/usr/bin/env bash
# FreeSWITCH with sipsilo vs a do-nothing chatplan backend, on one real
# FreeSWITCH 1.10.12, same run (scripts/bench/fs-sipp/fssipp_test.go says how).
# Usage:
#
#   scripts/bench/fs-sipp.sh [RATES] [SECS] [CPU_RATE]   # defaults: 300,500,700,900 6 200
#
# Prints one line per sipp run (rate, failures, retransmissions, the backlog
# left after sipp's end, FreeSWITCH's CPU per MESSAGE), the highest clean rate
# of each backend and their ratio, then FreeSWITCH's CPU per MESSAGE at
# CPU_RATE with sipsilo, with the do-nothing backend, and with the do-nothing
# backend while sipsilo is logged in to the event socket (its event stream
# alone). FreeSWITCH comes from SIPSILO_FS_HOME or the runtime tarball
# (internal/fsreal); sipp from the Debian package sip-tester. FS_SIPP_BIN
# names a prebuilt sipsilo, FS_SIPP_FS_LOGLEVEL sets FreeSWITCH's log level
# (default: the conf's, debug as in vanilla). Only 127.0.0.1 is contacted.
set -euo pipefail
cd "$(dirname "$0")/../.."
export FS_SIPP_RATES=${1:-${FS_SIPP_RATES:-300,500,700,900}}
export FS_SIPP_SECS=${2:-${FS_SIPP_SECS:-6}}
export FS_SIPP_CPU_RATE=${3:-${FS_SIPP_CPU_RATE:-200}}
uptime
exec go test -run '^$' -bench FSSipp -benchtime 1x -timeout 60m ./scripts/bench/fs-sipp/
