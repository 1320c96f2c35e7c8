#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# moray's SMTP payload throughput per worker against a plain Hyperscan
# streaming loop over the same payload bytes, in the same segments, with
# the same database, in one process and one run (goal >= 0.7). See the
# header of payload_bench.c for what each side does.
#
#   bench/app/payload.sh [BUILD_DIR] [CAPTURE_MB] [PASSES]   (default build 50 5)
# MORAY_SIGS: directory of the .ndb files compiled into the database.
set -eu
BUILD=${1:-build}
MB=${2:-50}
PASSES=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
SIGS=${MORAY_SIGS:-$HERE/../../tests/data/sigs}
bench_env "$BUILD"
echo "reference: Hyperscan streaming over the client payload of every SMTP flow, same segments, same database; moray: one worker's whole engine on every frame (reassembly, SMTP, MIME, scan, verdicts) - see payload_bench.c"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

/usr/bin/python3 "$HERE/../gen/moray-gen.py" -o "$tmp/smtp.pcap" --size "$MB" \
	--smtp-share 1.0 --seed 7 >/dev/null
"$BUILD/engine/tools/moray-sigc" compile -o "$tmp/db.mdb" "$SIGS"/*.ndb >/dev/null
"$BUILD/bench/payload_bench" "$tmp/db.mdb" "$tmp/smtp.pcap" "$PASSES"
bench_env "$BUILD"
