#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Reassembly throughput of moray-scan as a ratio to a plain libpcap read loop
# over the same file, measured in one run.
#   bench/gen/reasm_bench.sh [BUILD_DIR] [SIZE_MB]      (default build, 200)
# Needs moray-scan in BUILD_DIR/engine/tools; builds pcap_loop itself if the
# build tree has none. Prints both rates and the ratio; asserts nothing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/env.sh"
build=${1:-build}
size=${2:-200}
scan=$build/engine/tools/moray-scan
[ -x "$scan" ] || { echo "reasm_bench: $scan not built" >&2; exit 2; }
bench_env "$build"
echo "reference: pcap_next_ex loop touching every byte of the capture; moray-scan: the same file through its whole pipeline (reassembly, SMTP, MIME, scan with the default db), then again dumping client streams"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
loop=$build/bench/gen/pcap_loop
if [ ! -x "$loop" ]; then
	cc -O2 -o "$tmp/pcap_loop" "$here/pcap_loop.c" -lpcap
	loop=$tmp/pcap_loop
fi
/usr/bin/python3 "$here/moray-gen.py" -o "$tmp/big.pcap" --size "$size" \
	--smtp-share 1.0 --expect "$tmp/expect" >&2
bytes=$(stat -c %s "$tmp/big.pcap")
now() { date +%s.%N; }
# warm the page cache so both runs read from memory
cat "$tmp/big.pcap" > /dev/null
t0=$(now); "$loop" "$tmp/big.pcap" > /dev/null; t1=$(now)
# with the default database: reassembly + SMTP + MIME + scan, what
# moray-scan does with every capture (without one, messages would be held)
db=$build/patterns/default.mdb
"$scan" --quiet --db "$db" --log /dev/null "$tmp/big.pcap" > /dev/null; t2=$(now)
"$scan" --quiet --db "$db" --log /dev/null --dump-streams "$tmp/streams" "$tmp/big.pcap" > /dev/null; t3=$(now)
# the dump must be exact, or the rate means nothing
bad=0
for f in "$tmp/expect"/*; do
	cmp -s "$f" "$tmp/streams/$(basename "$f")" || bad=$((bad + 1))
done
awk -v b="$bytes" -v l="$t0 $t1" -v s="$t1 $t2" -v d="$t2 $t3" -v bad="$bad" 'BEGIN {
	split(l, L); split(s, S); split(d, D)
	tl = L[2] - L[1]; ts = S[2] - S[1]; td = D[2] - D[1]
	printf "capture            %.1f MB\n", b / 1e6
	printf "pcap_next_ex loop  %.2f s  %.0f MB/s\n", tl, b / 1e6 / tl
	printf "moray-scan --db    %.2f s  %.0f MB/s  ratio %.3f\n", ts, b / 1e6 / ts, tl / ts
	printf "moray-scan --dump-streams %.2f s  %.0f MB/s  ratio %.3f\n", td, b / 1e6 / td, tl / td
	printf "client streams differing from the generator: %d\n", bad
}'
bench_env "$build"
