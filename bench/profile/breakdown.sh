#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Where a worker's instructions go, per frame and per stage, on the payload
# benchmark's workload (bench/app/payload.sh: SMTP-only capture, seed 7):
# payload_bench --engine-only replays the capture through one warm engine
# (exactly what a worker runs between rx and tx burst, no DPDK) under
# valgrind --tool=callgrind, collecting only inside engine_passes();
# breakdown.py charges each instruction to the innermost stage entry on
# its call chain (--separate-callers) and prints instructions/frame and
# share per stage, and the scan's share. Instruction counts do not depend
# on the machine's load; the database is compiled under valgrind too, so
# that Hyperscan's platform check matches the CPU valgrind emulates (AVX2,
# no AVX-512: the scan's instructions are those of the AVX2 runtime).
#
#   bench/profile/breakdown.sh [BUILD_DIR] [CAPTURE_MB] [PASSES] [DETAIL]
#   (default build 10 1 0; DETAIL N lists the N largest functions per stage)
# MORAY_SIGS: directory of the .ndb files compiled into the database.
set -eu
BUILD=${1:-build}
MB=${2:-10}
PASSES=${3:-1}
DETAIL=${4:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
SIGS=${MORAY_SIGS:-$HERE/../../tests/data/sigs}
bench_env "$BUILD"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

/usr/bin/python3 "$HERE/../gen/moray-gen.py" -o "$tmp/smtp.pcap" --size "$MB" \
	--smtp-share 1.0 --seed 7 >/dev/null
valgrind -q --tool=none "$BUILD/engine/tools/moray-sigc" compile -o "$tmp/db.mdb" \
	"$SIGS"/*.ndb >/dev/null
valgrind -q --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
	--toggle-collect=engine_passes --separate-callers=40 \
	--compress-strings=no --compress-pos=no \
	"$BUILD/bench/payload_bench" --engine-only "$tmp/db.mdb" "$tmp/smtp.pcap" "$PASSES" \
	>"$tmp/run.txt"
sed "s/, [0-9]* ns\/frame$/ (its time under valgrind means nothing)/" "$tmp/run.txt"
frames=$(sed -n 's/^engine only: \([0-9]*\) frames a pass.*/\1/p' "$tmp/run.txt")
echo "workload: $MB MB SMTP-only capture (moray-gen seed 7), $PASSES pass(es) after one warm-up; instructions (callgrind Ir) per frame:"
if [ "$DETAIL" -gt 0 ]; then
	/usr/bin/python3 "$HERE/breakdown.py" "$tmp/cg.out" $((frames * PASSES)) --detail "$DETAIL"
else
	/usr/bin/python3 "$HERE/breakdown.py" "$tmp/cg.out" $((frames * PASSES))
fi
