#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/flood: legitimate delivery rate under a keep-alive flood, as a
# ratio to the unloaded rate measured in the same run, for floods of
# increasing size (DESIGN.md, "Why it exists" 2).
#
#   [ns C: smtp-source + floodclient] <veth> ==moray== <veth> [ns S: smtp-sink]
#
# What both sides of each ratio do: smtp-source sends the same MESSAGES
# messages (4 KiB, SESSIONS parallel sessions) through the same moray (default
# options, one database) to the same smtp-sink; the only difference is the
# flood running beside it: SIZE connections from SIZE/100 sources (half idle
# after EHLO, half in slow DATA sending a line every 5 s), opened before the
# legitimate mail starts and held until it ends. smtp-sink (one process,
# thousands of connections) is the server so the server is not what limits.
# Reported per size: delivered/sent, rate ratio (goal >= 0.9), moray's RSS
# and its growth per flood flow, flows moray saw (telemetry).
# Traffic stays in namespaces this script creates, on TEST-NET addresses;
# every flood is bounded in connections (20,000) and time, and stops itself.
#
# usage: bench/flood/run.sh [BUILD_DIR] [SIZES...]   (default: build 0 500 2000 5000 10000)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$HERE/../..
BUILD=${1:-$ROOT/build}
shift || true
SIZES=${*:-500 2000 5000 10000}
MESSAGES=${MESSAGES:-1000}
SESSIONS=${SESSIONS:-8}
MORAY=$BUILD/dpdk-app/moray
FLOOD=$ROOT/tests/tools/floodclient.py
TEL=$ROOT/tests/tools/telemetry.py
. "$HERE/../lib/env.sh"

fail() { echo "bench/flood: $*" >&2; exit 1; }
skip() { fail "$*"; }
[ "$(id -u)" = 0 ] || fail "needs root (network namespaces, af_packet)"
for f in "$MORAY" "$FLOOD" "$TEL"; do [ -e "$f" ] || fail "missing $f (build first)"; done
for t in smtp-source smtp-sink ip ethtool; do command -v $t >/dev/null || fail "$t not installed"; done
. "$ROOT/tests/app/netns_lib.sh"

ID=$(( $$ % 100000 ))
NSC=mrb${ID}c
NSS=mrb${ID}s
VC=mrb${ID}c0
VS=mrb${ID}s0
PREFIX=mryfb$ID
TMP=$(mktemp -d /tmp/moray-floodbench.XXXXXX)
MORAY_PID=
SINK_PID=
FLOOD_PIDS=
cleanup() {
	set +e
	for p in $FLOOD_PIDS; do kill "$p" 2>/dev/null; done
	[ -n "$MORAY_PID" ] && { kill -INT "$MORAY_PID"; wait "$MORAY_PID"; }
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	netns_down
	rm -rf "/var/run/dpdk/$PREFIX" "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

netns_up
# flood sources: $NET.16 .. $NET.215 (200 addresses, each under the default
# per-source cap at the largest size)
for i in $(seq 16 215); do ip -n "$NSC" addr add "$NET.$i/24" dev "${VC}n"; done
# -m: smtp-sink serves at most 256 connections at once by default and leaves
# the rest in the listen queue, which would measure smtp-sink, not moray.
ip netns exec "$NSS" bash -c 'ulimit -n 65536; exec smtp-sink -u nobody -m 30000 -c '"$SRV"':25 4096' \
	>"$TMP/sink.out" 2>&1 &
SINK_PID=$!
sleep 0.5

DB=$BUILD/patterns/default.mdb
[ -e "$DB" ] || fail "missing $DB (build first)"
start_moray --db "$DB"
pid_rss() { awk '/^VmRSS/ { print $2 }' "/proc/$MORAY_PID/status"; }

legit() { # -> seconds for MESSAGES messages, or "fail"
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$NSC" timeout 300 smtp-source -s "$SESSIONS" -m "$MESSAGES" -l 4096 \
		-f alice@cli.lab.example -t bob@srv.lab.example "$SRV:25" >"$TMP/legit.out" 2>&1 ||
		{ echo fail; return; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

bench_env "$BUILD"
echo "bench/flood: smtp-source $MESSAGES x 4 KiB, $SESSIONS sessions, through moray (defaults) to smtp-sink; beside it a flood of SIZE connections (half idle after EHLO, half slow DATA), same run"
rss0=$(pid_rss)
base=$(legit)
[ "$base" = fail ] && fail "unloaded delivery failed: $(tail -3 "$TMP/legit.out")"
printf '%-8s %-10s %-8s %-8s %-10s %-12s %s\n' size delivered secs ratio rss_kib kib/flow flows_seen
printf '%-8s %-10s %-8.2f %-8s %-10s %-12s %s\n' 0 "$MESSAGES/$MESSAGES" "$base" 1.00 "$rss0" - -
worst=1
for n in $SIZES; do
	[ "$n" -le 20000 ] || fail "size $n over the 20,000 bound"
	srcs=$(( n / 100 )); [ $srcs -ge 1 ] || srcs=1; [ $srcs -le 200 ] || srcs=200
	list=$(seq -s, -f "$NET.%g" 16 $((15 + srcs)))
	dur=$(( 60 + n / 200 ))
	ip netns exec "$NSC" bash -c "ulimit -n 65536; exec /usr/bin/python3 $FLOOD --server $SRV \
		--sources $list --conns $((n / 2)) --mode idle --duration $dur --rate 2000" \
		>"$TMP/fi.$n.json" 2>&1 &
	fi=$!
	ip netns exec "$NSC" bash -c "ulimit -n 65536; exec /usr/bin/python3 $FLOOD --server $SRV \
		--sources $list --conns $((n / 2)) --mode data --gap 5 --duration $dur --rate 2000" \
		>"$TMP/fd.$n.json" 2>&1 &
	fd=$!
	FLOOD_PIDS="$fi $fd"
	sleep $(( 3 + n / 1500 ))
	secs=$(legit)
	rss=$(pid_rss)
	seen=$("$TEL" "$PREFIX" /moray/flows 2>/dev/null | python3 -c \
		'import json,sys; d=json.load(sys.stdin); print(d.get("total", {}).get("open", "?"))' 2>/dev/null)
	"$TEL" "$PREFIX" /moray/counters >"$TMP/counters.$n.json" 2>/dev/null
	kill $fi $fd 2>/dev/null
	wait $fi $fd 2>/dev/null
	# what the flood cost moray's pools (summed over workers)
	python3 - "$TMP/counters.$n.json" <<'PY'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
want = ("msg_slot_reclaimed", "env_slot_reclaimed", "msg_no_envelope", "msg_pool_empty",
        "shed_deadline", "shed_evicted", "shed_per_source_cap", "shed_half_open_budget",
        "msgs_tempfail")
out = []
def walk(o, path):
    if isinstance(o, dict):
        for k, v in o.items():
            walk(v, path + [k])
    elif path and path[-1] in want and isinstance(o, int):
        out.append("%s=%d" % (path[-1], o))
walk(d, [])
print("         " + " ".join(out))
PY
	if [ "$secs" = fail ]; then
		printf '%-8s %-10s\n' "$n" "fail: $(tail -1 "$TMP/legit.out")"
		worst=0
		continue
	fi
	ratio=$(echo "$base / $secs" | bc -l)
	perflow=$(echo "($rss - $rss0) / $n" | bc -l)
	printf '%-8s %-10s %-8.2f %-8.2f %-10s %-12.2f %s\n' "$n" "$MESSAGES/$MESSAGES" "$secs" "$ratio" "$rss" "$perflow" "${seen:-?}"
	worst=$(echo "if ($ratio < $worst) $ratio else $worst" | bc -l)
	sleep 2
done
printf 'bench/flood: worst ratio %.2f (goal >= 0.9); load average %s\n' "$worst" "$(cut -d' ' -f1-3 /proc/loadavg)"
bench_env "$BUILD"
