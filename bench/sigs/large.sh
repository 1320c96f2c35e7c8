#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A ClamAV-scale database: the shared .ndb sets (rfxn + test) plus
# gen_large.py's 98 129 generated signatures (seed 1) = 100 000 signatures.
# Reports, in one run:
#   moray-sigc compile: wall and CPU seconds, peak RSS (/usr/bin/time -v),
#     database file bytes, Hyperscan bytes, stream state and scratch per slot
#     (moray compiles one streaming database per slot: raw and decoded);
#   Hyperscan directly (hs_direct) on the same expressions moray's translator
#     produces: one hs_compile_ext_multi (whole) and literals through
#     hs_compile_lit_multi + the rest (split): compile CPU, peak RSS, sizes,
#     and the streaming speed of each layout over the mail corpus (1448-byte
#     pieces, best of 5, thread CPU);
#   the payload benchmark with this database (bench/app/payload.sh's
#     workload: moray's worker vs plain Hyperscan streaming, and the scan's
#     share of the worker).
#
#   bench/sigs/large.sh [BUILD_DIR] [CAPTURE_MB]      (default build 20)
# MORAY_SIGS: directory of the shared .ndb files; MAIL: the mail corpus dir;
# KEEP_DB=FILE.mdb keeps the compiled database (for bench/app/latency.sh).
set -eu
BUILD=${1:-build}
MB=${2:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
SIGS=${MORAY_SIGS:-$HERE/../../tests/data/sigs}
MAIL=${MAIL:-$HERE/../../tests/data/mail}
bench_env "$BUILD"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

/usr/bin/python3 "$HERE/gen_large.py" -o "$tmp/large.ndb"
set -- "$SIGS"/*.ndb "$tmp/large.ndb"
echo "signatures: $(cat "$@" | grep -c .) lines in $*"
timev() { # label, command...: run under /usr/bin/time -v, print its figures
	_l=$1; shift
	/usr/bin/time -v "$@" >"$tmp/out" 2>"$tmp/time" || { cat "$tmp/out" "$tmp/time"; exit 1; }
	grep -v '^\s' "$tmp/out" || true
	echo "$_l: wall $(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time")," \
		"CPU $(awk -F': ' '/User time/{u=$2} /System time/{s=$2} END{printf "%.1f s", u+s}' "$tmp/time")," \
		"peak RSS $(awk -F': ' '/Maximum resident/{printf "%.0f MB", $2/1024}' "$tmp/time")"
}
timev "moray-sigc compile" "$BUILD/engine/tools/moray-sigc" compile -o "$tmp/large.mdb" "$@"
echo "database file: $(stat -c %s "$tmp/large.mdb") bytes"
[ -z "${KEEP_DB:-}" ] || cp "$tmp/large.mdb" "$KEEP_DB"
find "$MAIL" -type f -exec cat {} + >"$tmp/mail.bin"
timev "hs_direct whole" "$BUILD/bench/hs_direct" whole --scan "$tmp/mail.bin" "$@"
timev "hs_direct split" "$BUILD/bench/hs_direct" split --scan "$tmp/mail.bin" "$@"
echo "payload benchmark with this database ($MB MB SMTP-only capture, seed 7):"
/usr/bin/python3 "$HERE/../gen/moray-gen.py" -o "$tmp/smtp.pcap" --size "$MB" \
	--smtp-share 1.0 --seed 7 >/dev/null
"$BUILD/bench/payload_bench" "$tmp/large.mdb" "$tmp/smtp.pcap" 3
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
