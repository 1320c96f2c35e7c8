#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/flood: legitimate delivery rate under a keep-alive flood, as a
# ratio to the unloaded rate measured in the same run, for floods of
# increasing size (DESIGN.md, "Why it exists" 2); and the same ratio with
# moray replaced by the kernel, so that what the flood costs the server and
# the machine is not charged to moray.
#
#   moray path:  [ns C: smtp-source + floodclient] <veth> ==moray==  <veth> [ns S: smtp-sink]
#   kernel path: [ns KC: smtp-source + floodclient] <veth> ==bridge== <veth> [ns KS: smtp-sink]
#
# What both sides of each ratio do: smtp-source sends the same MESSAGES
# messages (4 KiB, SESSIONS parallel sessions) through the same path to the
# same smtp-sink; the only difference is the flood running beside it: SIZE
# connections from SIZE/100 sources (half idle after EHLO, half in slow DATA
# sending a line every 5 s), opened before the legitimate mail starts and
# held until it ends. smtp-sink (one process, thousands of connections) is
# the server. The moray path is moray (default options, one database,
# af_packet, sw dispatch, lcores 0-2 on CPUs 0-1) bridging two veths; the
# kernel path is a second pair of namespaces, identical (same addresses,
# same flood sources, tx checksum offload off), whose veths a Linux bridge
# joins instead (no STP, bridge netfilter off for it). Each path's unloaded
# time is the median of 3 runs after a warm-up of MESSAGES/10 messages (a
# run of 1,000 messages takes well under a second, so one run is noisy);
# the time under each flood is one run. Then for each size the flood and
# the legitimate load run through moray, then the same through the kernel
# path. While the kernel path is measured, moray is
# stopped (SIGSTOP: its polling workers would otherwise take CPU from the
# reference), and resumed after.
#
# Reported per size: ratio = unloaded time / time under flood through moray
# (goal >= 0.9); kern_ratio = the same through the kernel path; share =
# ratio / kern_ratio, what is moray's own (1.0: moray adds nothing to what
# the flood costs the server and the machine); moray's RSS and its growth
# per flood flow; flows moray saw (telemetry); and a line of moray's pool
# and shedding counters (summed over workers, cumulative over the run).
# On 2 vCPUs smtp-sink under 10,000 connections, the Python flood clients,
# the kernel and moray's polling workers share the machine: the kernel
# ratio shows how much of the slow-down is theirs.
# Traffic stays in namespaces this script creates, on TEST-NET addresses;
# every flood is bounded in connections (20,000) and time, and stops itself.
# Run under flock /tmp/moray-netns.lock.
#
# usage: bench/flood/run.sh [BUILD_DIR] [SIZES...]   (default: build 500 2000 5000 10000)
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
# the kernel path: the same pair again, joined by a Linux bridge
KNSC=mrb${ID}kc
KNSS=mrb${ID}ks
KVC=mrb${ID}kc0
KVS=mrb${ID}ks0
KBR=mrb${ID}br
PREFIX=mryfb$ID
TMP=$(mktemp -d /tmp/moray-floodbench.XXXXXX)
MORAY_PID=
SINK_PID=
KSINK_PID=
FLOOD_PIDS=
cleanup() {
	set +e
	for p in $FLOOD_PIDS; do kill "$p" 2>/dev/null; done
	[ -n "$MORAY_PID" ] && { kill -CONT "$MORAY_PID"; kill -INT "$MORAY_PID"; wait "$MORAY_PID"; }
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
	[ -n "$KSINK_PID" ] && kill "$KSINK_PID" 2>/dev/null
	netns_down
	kern_down
	rm -rf "/var/run/dpdk/$PREFIX" "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The reference: namespaces $KNSC/$KNSS set up as netns_up sets up
# $NSC/$NSS (same addresses: the bridge joins only these two), with a
# bridge where moray would be.
kern_up() {
	ip link add "$KBR" type bridge stp_state 0 forward_delay 0 \
		nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0 ||
		fail "cannot create a bridge"
	ip link add "$KVC" type veth peer name "${KVC}n"
	ip link add "$KVS" type veth peer name "${KVS}n"
	ip netns add "$KNSC"
	ip netns add "$KNSS"
	ip link set "${KVC}n" netns "$KNSC"
	ip link set "${KVS}n" netns "$KNSS"
	for i in "$KBR" "$KVC" "$KVS"; do
		sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"
		ip link set "$i" arp off
	done
	ip link set "$KVC" master "$KBR"
	ip link set "$KVS" master "$KBR"
	for i in "$KBR" "$KVC" "$KVS"; do ip link set "$i" up; done
	ip -n "$KNSC" addr add "$CLI/24" dev "${KVC}n"
	ip -n "$KNSS" addr add "$SRV/24" dev "${KVS}n"
	for ns in "$KNSC" "$KNSS"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$KNSC" link set "${KVC}n" up
	ip -n "$KNSS" link set "${KVS}n" up
	ip netns exec "$KNSC" ethtool -K "${KVC}n" tx off >/dev/null
	ip netns exec "$KNSS" ethtool -K "${KVS}n" tx off >/dev/null
}
kern_down() {
	ip netns del "$KNSC" 2>/dev/null
	ip netns del "$KNSS" 2>/dev/null
	ip link del "$KVC" 2>/dev/null
	ip link del "$KVS" 2>/dev/null
	ip link del "$KBR" 2>/dev/null
}

netns_up
kern_up
# flood sources: $NET.16 .. $NET.215 (200 addresses, each under the default
# per-source cap at the largest size)
for i in $(seq 16 215); do
	ip -n "$NSC" addr add "$NET.$i/24" dev "${VC}n"
	ip -n "$KNSC" addr add "$NET.$i/24" dev "${KVC}n"
done
# -m: smtp-sink serves at most 256 connections at once by default and leaves
# the rest in the listen queue, which would measure smtp-sink, not moray.
sink() { # namespace (exec: $! is then smtp-sink itself, which cleanup kills)
	exec ip netns exec "$1" bash -c 'ulimit -n 65536; exec smtp-sink -u nobody -m 30000 -c '"$SRV"':25 4096'
}
sink "$NSS" >"$TMP/sink.out" 2>&1 &
SINK_PID=$!
sink "$KNSS" >"$TMP/ksink.out" 2>&1 &
KSINK_PID=$!
sleep 0.5

DB=$BUILD/patterns/default.mdb
[ -e "$DB" ] || fail "missing $DB (build first)"
start_moray --db "$DB"
pid_rss() { awk '/^VmRSS/ { print $2 }' "/proc/$MORAY_PID/status"; }

legit() { # namespace [messages] -> seconds for them, or "fail"
	local t0 t1
	t0=$(date +%s.%N)
	ip netns exec "$1" timeout 300 smtp-source -s "$SESSIONS" -m "${2:-$MESSAGES}" -l 4096 \
		-f alice@cli.lab.example -t bob@srv.lab.example "$SRV:25" >"$TMP/legit.out" 2>&1 ||
		{ echo fail; return; }
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

flood() { # namespace size: starts both halves of the flood, sets FLOOD_PIDS
	local srcs list dur
	srcs=$(( $2 / 100 )); [ $srcs -ge 1 ] || srcs=1; [ $srcs -le 200 ] || srcs=200
	list=$(seq -s, -f "$NET.%g" 16 $((15 + srcs)))
	dur=$(( 60 + $2 / 200 ))
	ip netns exec "$1" bash -c "ulimit -n 65536; exec /usr/bin/python3 $FLOOD --server $SRV \
		--sources $list --conns $(($2 / 2)) --mode idle --duration $dur --rate 2000" \
		>"$TMP/fi.$1.$2.json" 2>&1 &
	FLOOD_PIDS=$!
	ip netns exec "$1" bash -c "ulimit -n 65536; exec /usr/bin/python3 $FLOOD --server $SRV \
		--sources $list --conns $(($2 / 2)) --mode data --gap 5 --duration $dur --rate 2000" \
		>"$TMP/fd.$1.$2.json" 2>&1 &
	FLOOD_PIDS="$FLOOD_PIDS $!"
	sleep $(( 3 + $2 / 1500 ))
}

flood_stop() {
	kill $FLOOD_PIDS 2>/dev/null
	wait $FLOOD_PIDS 2>/dev/null
	FLOOD_PIDS=
	sleep 2 # the closes reach the sink
}

# the kernel path, with moray stopped so it takes no CPU from the reference
kern_legit() { # [messages]
	local r
	kill -STOP "$MORAY_PID"
	r=$(legit "$KNSC" "$@")
	kill -CONT "$MORAY_PID"
	echo "$r"
}

bench_env "$BUILD"
echo "bench/flood: smtp-source $MESSAGES x 4 KiB, $SESSIONS sessions, through moray (defaults) to smtp-sink, and through a Linux bridge (kernel) to another smtp-sink; beside it a flood of SIZE connections (half idle after EHLO, half slow DATA), same run"
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
legit "$NSC" $(( MESSAGES / 10 )) >/dev/null
rss0=$(pid_rss)
b1=$(legit "$NSC"); b2=$(legit "$NSC"); b3=$(legit "$NSC")
case "$b1 $b2 $b3" in *fail*) fail "unloaded delivery through moray failed: $(tail -3 "$TMP/legit.out")";; esac
base=$(median3 "$b1" "$b2" "$b3")
kern_legit $(( MESSAGES / 10 )) >/dev/null
k1=$(kern_legit); k2=$(kern_legit); k3=$(kern_legit)
case "$k1 $k2 $k3" in *fail*) fail "unloaded delivery through the kernel failed: $(tail -3 "$TMP/legit.out")";; esac
kbase=$(median3 "$k1" "$k2" "$k3")
printf 'unloaded: moray %.3f %.3f %.3f s, kernel %.3f %.3f %.3f s (medians below)\n' "$b1" "$b2" "$b3" "$k1" "$k2" "$k3"
printf '%-8s %-10s %-8s %-8s %-9s %-10s %-7s %-10s %-10s %s\n' \
	size delivered secs ratio kern_secs kern_ratio share rss_kib kib/flow flows_seen
printf '%-8s %-10s %-8.2f %-8s %-9.2f %-10s %-7s %-10s %-10s %s\n' \
	0 "$MESSAGES/$MESSAGES" "$base" 1.00 "$kbase" 1.00 1.00 "$rss0" - -
worst=1
wshare=
for n in $SIZES; do
	[ "$n" -le 20000 ] || fail "size $n over the 20,000 bound"
	flood "$NSC" "$n"
	secs=$(legit "$NSC")
	lout=$(tail -1 "$TMP/legit.out")
	rss=$(pid_rss)
	seen=$("$TEL" "$PREFIX" /moray/flows 2>/dev/null | python3 -c \
		'import json,sys; d=json.load(sys.stdin); print(d.get("total", {}).get("open", "?"))' 2>/dev/null)
	"$TEL" "$PREFIX" /moray/counters >"$TMP/counters.$n.json" 2>/dev/null
	flood_stop
	# the same flood and load through the kernel path
	kill -STOP "$MORAY_PID"
	flood "$KNSC" "$n"
	ksecs=$(legit "$KNSC")
	klout=$(tail -1 "$TMP/legit.out")
	flood_stop
	kill -CONT "$MORAY_PID"
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
	if [ "$secs" = fail ] || [ "$ksecs" = fail ]; then
		[ "$secs" = fail ] && printf '%-8s %-10s\n' "$n" "fail through moray: $lout"
		[ "$ksecs" = fail ] && printf '%-8s %-10s\n' "$n" "fail through the kernel: $klout"
		[ "$secs" = fail ] && worst=0
		continue
	fi
	ratio=$(echo "$base / $secs" | bc -l)
	kratio=$(echo "$kbase / $ksecs" | bc -l)
	share=$(echo "$ratio / $kratio" | bc -l)
	perflow=$(echo "($rss - $rss0) / $n" | bc -l)
	printf '%-8s %-10s %-8.2f %-8.2f %-9.2f %-10.2f %-7.2f %-10s %-10.2f %s\n' "$n" "$MESSAGES/$MESSAGES" \
		"$secs" "$ratio" "$ksecs" "$kratio" "$share" "$rss" "$perflow" "${seen:-?}"
	worst=$(echo "if ($ratio < $worst) $ratio else $worst" | bc -l)
	if [ -z "$wshare" ]; then wshare=$share; else
		wshare=$(echo "if ($share < $wshare) $share else $wshare" | bc -l); fi
done
printf 'bench/flood: worst ratio %.2f (goal >= 0.9); worst share %.2f (moray ratio / kernel ratio); load average %s\n' \
	"$worst" "${wshare:-0}" "$(cut -d' ' -f1-3 /proc/loadavg)"
bench_env "$BUILD"
