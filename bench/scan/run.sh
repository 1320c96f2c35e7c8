#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# One run, same machine, same messages, same signatures (the .ndb files
# below, which bench_scan compiles into a moray database and clamd loads
# as its only database). Comparisons and what each side does:
#
#  1. scan stage: moray's mry_scan_msg_*() vs plain Hyperscan streaming
#     (hs_scan_stream, same 1448-byte pieces) and block mode (hs_scan), all
#     three over the same bytes already in memory: each raw message, its
#     header blocks and its decoded parts (decoded beforehand by
#     decode_corpus.py). Only the scan is timed (thread CPU, best of 5).
#  2. clamd vs moray, both given only the raw message bytes from memory
#     and both doing MIME parse + decode + scan of message and parts:
#       clamd  clamd_instream.py reads every message into memory, then sends
#              it over clamd's unix socket with INSTREAM (1448-byte chunks,
#              one connection per message); clamd opens no file of ours.
#              Timed: clamd's own CPU (user+sys of the clamd process, from
#              /proc) over a pass of the corpus, best of 3; the client's
#              wall time is printed too. clamd runs from a config in a
#              temporary directory (unix socket, DisableCache yes, default
#              ScanMail, TemporaryDirectory on /dev/shm) whose DatabaseDirectory holds copies of exactly
#              these .ndb files and nothing else; the loaded signature count
#              is checked against moray's.
#       moray  bench_scan's "mime+scan": mry_mime_feed() and
#              mry_scan_msg_raw() over the same raw bytes in 1448-byte pieces,
#              MIME callbacks into the scan (header blocks, decoded parts), as
#              the engine does per message (thread CPU, best of 5).
# clamscan (start-up and database load separately from scanning) and
# moray-scan end to end are compared in e2e.sh.
#
#   bench/scan/run.sh [BUILD_DIR] [DATA_DIR]      (defaults: build tests/data)
#
# DATA_DIR holds mail/ (the messages) and sigs/*.ndb (MORAY_SIGS overrides
# the list of signature files). BUILD_DIR must hold bench/scan/bench_scan.
# ClamAV: Debian packages clamav-daemon (clamd); no freshclam database used.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
BUILD=${1:-build}
DATA=${2:-$HERE/../../tests/data}
BENCH=$BUILD/bench/scan/bench_scan
SIGS=${MORAY_SIGS:-"$DATA/sigs/rfxn-2013.ndb $DATA/sigs/test-eicar-clamexe.ndb"}
[ -x "$BENCH" ] || { echo "run.sh: $BENCH not built" >&2; exit 2; }
[ -d "$DATA/mail" ] || { echo "run.sh: no mail corpus in $DATA/mail" >&2; exit 2; }
tmp=$(mktemp -d)
# ClamAV writes the parts it extracts to its temporary directory: tmpfs
# when there is one, so its figure is not a disk's
ctmp=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
clamd_pid=
cleanup() {
	[ -n "$clamd_pid" ] && kill "$clamd_pid" 2>/dev/null && wait "$clamd_pid" 2>/dev/null
	rm -rf "$tmp" "$ctmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

bench_env "$BUILD"
echo "scan stage: moray mry_scan_msg_*, Hyperscan streaming (same 1448-byte pieces) and block mode, all over the same pre-decoded bytes in memory (raw message, header blocks, decoded parts)"
echo "clamd vs moray: both get only the raw message bytes from memory (clamd over its socket with INSTREAM) and both parse MIME, decode and scan message and parts with the same .ndb signatures; CPU seconds"
python3 "$HERE/decode_corpus.py" "$DATA/mail" "$tmp/corpus"
"$BENCH" --reps 5 --loops 20 "$tmp/corpus" $SIGS 2>/dev/null | tee "$tmp/bench.out"
res=$(grep '^result ' "$tmp/bench.out")
get() { echo "$res" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
moray_ms=$(get mime_scan_s)
moray_hits=$(get mime_scan_hits)
moray_sigs=$(sed -n 's/^database: \([0-9]*\) signatures.*/\1/p' "$tmp/bench.out")

CLAMD=$(command -v clamd || echo /usr/sbin/clamd)
[ -x "$CLAMD" ] || { echo "clamd: not installed (apt-get install clamav-daemon)" >&2; exit 2; }
mkdir -p "$tmp/db"
cp $SIGS "$tmp/db/"
cat >"$tmp/clamd.conf" <<CONF
LocalSocket $tmp/clamd.sock
DatabaseDirectory $tmp/db
Foreground yes
DisableCache yes
LogFile $tmp/clamd.log
LogVerbose yes
PidFile $tmp/clamd.pid
TemporaryDirectory $ctmp
CONF
"$CLAMD" --config-file="$tmp/clamd.conf" >"$tmp/clamd.out" 2>&1 &
clamd_pid=$!
python3 "$HERE/clamd_instream.py" "$tmp/clamd.sock" "$DATA/mail" "$clamd_pid" 3 | tee "$tmp/clamd.res"
clamd_sigs=$(sed -n 's/.*Loaded \([0-9]*\) signatures.*/\1/p' "$tmp/clamd.log" | tail -n 1)
echo "clamd database: $tmp/db holds only: $(cd "$tmp/db" && ls | tr '\n' ' '); clamd loaded ${clamd_sigs:-?} signatures, moray compiled $moray_sigs"
if [ "$clamd_sigs" != "$moray_sigs" ]; then
	echo "run.sh: clamd and moray signature counts differ" >&2
	exit 1
fi
res=$(grep '^result ' "$tmp/clamd.res")
clamd_cpu=$(get clamd_cpu_s)
clamd_wall=$(get clamd_wall_s)
clamd_found=$(get clamd_found)
echo "moray mime+scan: $moray_ms s CPU per corpus pass, $moray_hits messages matched; clamd: $clamd_found messages FOUND"
echo "clamd wall seen by the client: $clamd_wall s (includes waiting for the CPU on a shared machine)"
awk -v c="$clamd_cpu" -v m="$moray_ms" 'BEGIN {
	printf "ratio clamd INSTREAM / moray mime+scan (raw message bytes from memory, MIME + decode + scan on both, CPU seconds): %.0fx\n", c / m }'
bench_env "$BUILD"
