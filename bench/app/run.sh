#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# moray vs dpdk-testpmd (io forwarding) on the same lcores, the same virtual
# ports and the same capture, in one run:
#
#   port 0: net_pcap rx_pcap=CAPTURE,infinite_rx=1 (replayed from memory)
#   port 1: net_null no-rx=1 (a sink)
#
# Both programs forward port 0 -> port 1. Each runs for SECONDS after a
# warm-up; packets and bytes are read from DPDK telemetry (/ethdev/stats,1
# opackets/obytes) at the start and the end of the window, the same way for
# both, so the ratio is like for like. Captures come from bench/gen/moray-gen.py:
#   non-smtp  HTTP-like TCP and DNS only (moray's short path)
#   mixed     30% of bytes in SMTP sessions with real messages
#   smtp      SMTP only
# moray runs with the test database when moray-sigc can build one (else it
# holds every message: SMTP figures then measure the hold path, reported).
# Scaling from 1 to 2 workers uses --dispatch queue (a worker per rx queue,
# no rx lcore): port 0 gets one capture per queue, worker 2 shares CPU 0
# with the main lcore (which sleeps between its 1 ms control rounds), so on
# a 2-CPU machine the figure is a lower bound. Software dispatch with 2
# workers (main + rx lcore + 2 workers on 2 CPUs) is oversubscribed and only
# shows that it works.
#
# usage: bench/app/run.sh [BUILD_DIR] [SECONDS] [CAPTURE_MB]
# MORAY_SIGS: the .ndb file compiled into the database moray runs with.
set -u

BUILD=${1:-build}
SECS=${2:-8}
MB=${3:-4}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib/env.sh"
ROOT=$(cd "$HERE/../.." && pwd)
MORAY=$BUILD/dpdk-app/moray
SIGC=$BUILD/engine/tools/moray-sigc
TMP=$(mktemp -d /tmp/moray-bench.XXXXXX)
PID=
PREFIX=mrybench$$
WARMUP=3

cleanup() {
	[ -n "$PID" ] && kill -INT "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$TMP" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ -x "$MORAY" ] || { echo "moray not built in $BUILD"; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not installed"; exit 1; }

gen() { # name share
	/usr/bin/python3 "$ROOT/bench/gen/moray-gen.py" -o "$TMP/$1.pcap" --size "$MB" \
		--smtp-share "$2" --seed 7 >/dev/null 2>&1 || { echo "moray-gen failed"; exit 1; }
}
gen non-smtp 0
gen mixed 0.3
gen smtp 1.0
# a second capture of each kind for the second queue
for k in mixed:0.3 smtp:1.0; do
	/usr/bin/python3 "$ROOT/bench/gen/moray-gen.py" -o "$TMP/${k%%:*}-b.pcap" --size "$MB" \
		--smtp-share "${k#*:}" --seed 8 >/dev/null 2>&1 || { echo "moray-gen failed"; exit 1; }
done

DB=
if "$SIGC" compile -o "$TMP/test.mdb" --generation 1 \
	"${MORAY_SIGS:-$ROOT/tests/data/sigs/test-eicar-clamexe.ndb}" >/dev/null 2>&1; then
	DB=$TMP/test.mdb
fi

# opackets of port 1, from telemetry (net_null counts no bytes: bits/s come
# from the capture's mean frame size).
sample() {
	printf '/ethdev/stats,1\n' | /usr/bin/python3 /usr/bin/dpdk-telemetry.py -f "$PREFIX" 2>/dev/null |
		/usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line).get("/ethdev/stats")
        if d:
            print(d["opackets"])
            break'
}

# Runs "$@" in the background, measures port 1 over SECS; prints "pps bps".
measure() {
	"$@" >"$TMP/run.out" 2>&1 &
	PID=$!
	local a b i
	for i in $(seq 100); do
		a=$(sample)
		[ -n "$a" ] && break
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.2
	done
	sleep "$WARMUP"
	a=$(sample)
	sleep "$SECS"
	b=$(sample)
	kill -INT "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=
	rm -rf "/var/run/dpdk/$PREFIX"
	if [ -z "$a" ] || [ -z "$b" ]; then
		echo 0
		tail -5 "$TMP/run.out" >&2
		return
	fi
	echo "$(( (b - a) / SECS ))"
}

# packets and mean frame size (bytes, with the 24 bytes of preamble, SFD,
# FCS and inter-frame gap a wire adds)
cap_info() {
	/usr/bin/python3 -c "
import sys
from scapy.all import PcapReader
n = b = 0
for p in PcapReader(sys.argv[1]):
    n += 1
    b += len(p)
print(n, b / n)" "$1" 2>/dev/null
}

EAL_COMMON="--no-huge --no-pci -m 1024 --no-shconf --file-prefix=$PREFIX --log-level=lib.eal:warning"

testpmd() { # capture
	local n
	read -r n _ <<<"$(cap_info "$1")"
	measure dpdk-testpmd -l 0-1 $EAL_COMMON \
		--vdev="net_pcap0,rx_pcap=$1,infinite_rx=1" --vdev=net_null1,no-rx=1 \
		-- --total-num-mbufs=$((n + 16384)) --forward-mode=io --stats-period=3600
}

moray() { # capture lcores workers
	local n db=()
	read -r n _ <<<"$(cap_info "$1")"
	[ -n "$DB" ] && db=(--db "$DB")
	measure "$MORAY" --lcores "$2" $EAL_COMMON \
		--vdev="net_pcap0,rx_pcap=$1,infinite_rx=1" --vdev=net_null1,no-rx=1 \
		-- -p 3 --workers "$3" --mbufs $((n + 16384)) --max-flows 16384 \
		--hold-store-size 64M "${db[@]}"
}

moray_queues() { # workers capture...
	local w=$1 n rx="" lc db=()
	shift
	read -r n _ <<<"$(cap_info "$1")"
	for c in "$@"; do rx="$rx,rx_pcap=$c"; done
	[ -n "$DB" ] && db=(--db "$DB")
	lc="0@0,1@1"
	[ "$w" = 2 ] && lc="0@0,1@1,2@0"
	measure "$MORAY" --lcores "$lc" $EAL_COMMON \
		--vdev="net_pcap0${rx},infinite_rx=1" --vdev=net_null1,no-rx=1 \
		-- -p 3 --dispatch queue --mbufs $((n * w + 16384)) --max-flows 16384 \
		--hold-store-size 64M "${db[@]}"
}

fmt() { # pps mean-frame-bytes
	awk -v p="$1" -v s="$2" 'BEGIN { printf "%8.3f Mpps %8.2f Gbit/s", p / 1e6, p * s * 8 / 1e9 }'
}

bench_env "$BUILD"
echo "testpmd: io forwarding port 0 -> port 1, no inspection; moray: the same forwarding through its whole inline pipeline (flow table, SMTP reassembly, MIME, scan) on the same lcores, vdevs and captures"
echo "moray vs dpdk-testpmd io-fwd, net_pcap(infinite_rx) -> net_null, ${SECS}s windows,"
echo "captures of ~${MB} MB from moray-gen (seed 7); database: ${DB:-none (messages held)}"
for cap in non-smtp mixed smtp; do
	read -r _ size <<<"$(cap_info "$TMP/$cap.pcap")"
	size=$(awk -v s="$size" 'BEGIN { print s + 24 }')
	tp=$(testpmd "$TMP/$cap.pcap")
	mp=$(moray "$TMP/$cap.pcap" 0-1 1)
	ratio=$(awk -v a="$mp" -v b="$tp" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	printf '%-9s testpmd   %s\n' "$cap" "$(fmt "$tp" "$size")"
	printf '%-9s moray 1w  %s   ratio %s\n' "$cap" "$(fmt "$mp" "$size")" "$ratio"
	if [ "$cap" = mixed ]; then
		mp2=$(moray "$TMP/$cap.pcap" '(0-3)@(0-1)' 2)
		printf '%-9s moray 2w  %s   (sw dispatch, 4 lcores on 2 CPUs: oversubscribed)\n' \
			"$cap" "$(fmt "$mp2" "$size")"
	fi
done

echo "scaling, --dispatch queue (a capture per rx queue; worker 2 shares CPU 0 with the main lcore):"
for cap in mixed smtp; do
	read -r _ size <<<"$(cap_info "$TMP/$cap.pcap")"
	size=$(awk -v s="$size" 'BEGIN { print s + 24 }')
	q1=$(moray_queues 1 "$TMP/$cap.pcap")
	q2=$(moray_queues 2 "$TMP/$cap.pcap" "$TMP/$cap-b.pcap")
	sc=$(awk -v a="$q2" -v b="$q1" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
	printf '%-9s moray 1w  %s\n' "$cap" "$(fmt "$q1" "$size")"
	printf '%-9s moray 2w  %s   scaling %s\n' "$cap" "$(fmt "$q2" "$size")" "$sc"
done
bench_env "$BUILD"
