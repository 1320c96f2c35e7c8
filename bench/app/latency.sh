#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Latency a user feels: from the arrival of a message's last frame to the
# end of the worker burst that forwards it (p50, p99, max), at 50 % and
# 90 % of one worker's measured capacity, with and without a database swap
# every 5 ms, per database (default: the shared .ndb set; large: the same
# plus bench/sigs/gen_large.py's 98 129 generated signatures when LARGE=1).
# payload_bench --latency replays the payload benchmark's SMTP capture
# through one warm engine, paced on the thread's CPU clock (a dedicated
# core's clock: this machine's 2 shared CPUs preempt a busy-polling DPDK
# lcore for milliseconds, which would measure the scheduler; net_pcap has
# no rate limit and no memif generator is installed to pace the real app).
# Also prints the worker's longest burst (its longest time between two polls).
#
#   bench/app/latency.sh [BUILD_DIR] [CAPTURE_MB] [PASSES]   (default build 10 4)
# MORAY_SIGS: directory of the .ndb files; LARGE=1 adds the large set
# (compiled here, which takes minutes), or LARGE_DB=FILE.mdb uses one built
# before (bench/sigs/large.sh KEEP_DB=FILE.mdb).
set -eu
BUILD=${1:-build}
MB=${2:-10}
PASSES=${3:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
SIGS=${MORAY_SIGS:-$HERE/../../tests/data/sigs}
bench_env "$BUILD"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

/usr/bin/python3 "$HERE/../gen/moray-gen.py" -o "$tmp/smtp.pcap" --size "$MB" \
	--smtp-share 1.0 --seed 7 >/dev/null
dbs=default
"$BUILD/engine/tools/moray-sigc" compile -o "$tmp/default.mdb" "$SIGS"/*.ndb >/dev/null
if [ -n "${LARGE_DB:-}" ]; then
	cp "$LARGE_DB" "$tmp/large.mdb"
	dbs="default large"
elif [ "${LARGE:-0}" = 1 ]; then
	/usr/bin/python3 "$HERE/../sigs/gen_large.py" -o "$tmp/large.ndb"
	"$BUILD/engine/tools/moray-sigc" compile -o "$tmp/large.mdb" "$SIGS"/*.ndb \
		"$tmp/large.ndb" >/dev/null
	dbs="default large"
fi
for db in $dbs; do
	for frac in 0.5 0.9; do
		echo "== database $db, $frac of capacity, no swaps"
		"$BUILD/bench/payload_bench" --latency "$frac" "$tmp/$db.mdb" "$tmp/smtp.pcap" "$PASSES"
		echo "== database $db, $frac of capacity, a swap every 5 ms"
		"$BUILD/bench/payload_bench" --latency "$frac" "$tmp/$db.mdb" "$tmp/smtp.pcap" "$PASSES" \
			"$tmp/swap.mdb"
	done
done
