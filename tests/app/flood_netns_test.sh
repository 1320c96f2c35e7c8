#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# End-to-end flood test (suite 'slow'): real Postfix behind the real moray,
# a keep-alive flood of our own (tests/tools/floodclient.py) and legitimate
# mail from Postfix's smtp-source at the same time.
#
#   [ns C: smtp-source, floodclient] <veth> ==moray== <veth> [ns S: Postfix]
#
# Checks:
#   baseline  unloaded: every legitimate message delivered
#   flood     idle-after-EHLO connections from many sources (each over the
#             per-source cap) and slow-DATA connections reach Postfix;
#             legitimate mail sent during the flood is all delivered, no
#             451 from moray, no message tempfailed in the log
#   cap       no source has more than --max-per-source connections at Postfix
#   deadline  the flood connections are ended by moray's deadlines: the
#             flood client sees 421/451 or a reset, and Postfix's connection
#             count is back at its baseline while the flood client still runs
#   block     /moray/block sheds a source's open connections and refuses
#             new ones; /moray/unblock lets it in again
#   log       flood endings are aggregated "shed" events, not a line per flow
# Everything runs in namespaces the test creates (TEST-NET addresses), each
# flood bounded in connections and seconds; it removes all of it on exit.
# Skipped (exit 77, "SKIP-REASON: <key>") only for a reason tests/data/README.md
# lists: not root, no veth support, no free test subnet.
#
# usage: flood_netns_test.sh MORAY MORAY-SIGC SIGS.ndb
set -u

MORAY=$1
SIGC=$2
SIGS=$3
HERE=$(cd "$(dirname "$0")" && pwd)
FLOOD=$HERE/../tools/floodclient.py
TEL=$HERE/../tools/telemetry.py

skip() { k=$1; shift; echo "SKIP-REASON: $k ($*)"; exit 77; }
. "$HERE/netns_lib.sh"
[ "$(id -u)" = 0 ] || skip not-root "network namespaces, af_packet"
FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok   $*"; }
for t in ip ethtool postfix postconf ss smtp-source; do
	command -v "$t" >/dev/null 2>&1 || { fail "$t not installed"; exit 1; }
done
for f in "$MORAY" "$SIGC" "$SIGS" "$FLOOD" "$TEL"; do
	[ -e "$f" ] || { fail "missing $f"; exit 1; }
done

ID=$(( $$ % 100000 ))
NSC=mry${ID}c
NSS=mry${ID}s
VC=mry${ID}c0
VS=mry${ID}s0
PREFIX=mryflood$ID
TMP=$(mktemp -d /tmp/moray-flood.XXXXXX)
PF=$TMP/postfix
MORAY_PID=
PF_STARTED=
FLOOD_PIDS=

cleanup() {
	set +e
	for p in $FLOOD_PIDS; do kill "$p" 2>/dev/null; done
	if [ -n "$MORAY_PID" ]; then
		kill -INT "$MORAY_PID" 2>/dev/null
		wait "$MORAY_PID" 2>/dev/null
	fi
	[ -n "$PF_STARTED" ] && pf_stop "$PF" "$NSS"
	netns_down
	rm -rf "/var/run/dpdk/$PREFIX"
	[ -n "${MORAY_E2E_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

netns_up
# flood sources: $NET.64-$NET.127 (idle flood), $NET.128-$NET.159 (slow DATA),
# $NET.200 (blocked and unblocked); legitimate mail comes from $CLI.
for i in $(seq 64 159) 200; do
	ip -n "$NSC" addr add "$NET.$i/24" dev "${VC}n"
done

# Postfix sized so that Postfix itself is not the bottleneck: no per-client
# limit of its own (moray's is under test), enough smtpd processes.
pf_config "$PF" srv.lab.example \
	"inet_interfaces = all" "mynetworks = 127.0.0.0/8 $NET.0/24" "relayhost =" \
	"virtual_mailbox_domains = srv.lab.example" \
	"virtual_mailbox_maps = inline:{ bob@srv.lab.example=bob/ }" \
	"default_process_limit = 1200" "smtpd_client_connection_count_limit = 0" \
	"smtpd_client_connection_rate_limit = 0"
PF_STARTED=1
pf_start "$PF" "$NSS"

DB=$TMP/test.mdb
"$SIGC" compile -o "$DB" --generation 1 "$SIGS" >"$TMP/sigc.out" 2>&1 ||
	{ cat "$TMP/sigc.out"; fail "moray-sigc compile failed"; exit 1; }

CAP=8
start_moray --db "$DB" --max-per-source $CAP --timeout-cmd 20 --timeout-data 20 \
	--min-data-rate 200 --timeout-half-open 5 --shed-log-interval 2

# established connections to Postfix's port 25 (server namespace)
pf_conns() { ip netns exec "$NSS" ss -Htn state established '( sport = :25 )' | wc -l; }
# ... per client address
pf_conns_by_src() { ip netns exec "$NSS" ss -Htn state established '( sport = :25 )' |
	awk '{ split($4, a, ":"); print a[1] }' | sort | uniq -c | sort -rn; }
delivered_count() { find "$PF/vmail" -type f -path '*/new/*' 2>/dev/null | wc -l; }

legit() { # count out
	ip netns exec "$NSC" timeout 120 smtp-source -c -s 4 -m "$1" -l 4096 \
		-f alice@cli.lab.example -t bob@srv.lab.example "$SRV:25" >"$2" 2>&1
}

wait_delivered() { # count
	for _ in $(seq 150); do
		[ "$(delivered_count)" -ge "$1" ] && return 0
		sleep 0.2
	done
	return 1
}

# ---------------------------------------------------------------- baseline
BASE=$(pf_conns)
N=40
t0=$(date +%s.%N)
legit $N "$TMP/base.out"
rc=$?
wait_delivered $N
t1=$(date +%s.%N)
got=$(delivered_count)
if [ $rc = 0 ] && [ "$got" = $N ]; then
	ok "baseline: $N messages delivered ($(echo "$t1 - $t0" | bc) s)"
else
	fail "baseline: smtp-source rc $rc, $got of $N delivered"
	tail -5 "$TMP/base.out"
fi

# ---------------------------------------------------------------- flood
# 64 sources x 12 idle connections (over the cap of 8), 32 sources x 4
# slow-DATA connections; the clients stop by themselves after 60 s.
ip netns exec "$NSC" /usr/bin/python3 "$FLOOD" --server "$SRV" --sources "$NET.64/26" \
	--conns 768 --mode idle --duration 60 --rate 400 >"$TMP/flood-idle.json" 2>&1 &
FLOOD_PIDS="$FLOOD_PIDS $!"
P_IDLE=$!
srcs=$(seq -s, -f "$NET.%g" 128 159)
ip netns exec "$NSC" /usr/bin/python3 "$FLOOD" --server "$SRV" --sources "$srcs" \
	--conns 128 --mode data --gap 8 --duration 60 --rate 200 >"$TMP/flood-data.json" 2>&1 &
FLOOD_PIDS="$FLOOD_PIDS $!"
P_DATA=$!
sleep 5
PEAK=$(pf_conns)
if [ "$PEAK" -ge 300 ]; then
	ok "flood: $PEAK connections reached Postfix (baseline $BASE)"
else
	fail "flood: only $PEAK connections reached Postfix"
fi
top=$(pf_conns_by_src | head -1 | awk '{ print $1 }')
if [ "${top:-0}" -le $CAP ]; then
	ok "cap: at most $top connections per source at Postfix (cap $CAP)"
else
	fail "cap: a source has $top connections at Postfix (cap $CAP)"
	pf_conns_by_src | head -3
fi
tt=$("$TEL" "$PREFIX" /moray/top_talkers) || fail "telemetry /moray/top_talkers unreachable"
echo "$tt" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
srcs = [s["src"] for s in d["by_flows"].values()]  # ranked object: "1", "2", ...
sys.exit(0 if any(s.startswith(sys.argv[1] + ".") for s in srcs) else 1)' "$NET" &&
	ok "top talkers: flood sources listed by open flows" ||
	fail "top talkers: flood sources not listed: $tt"

before=$(delivered_count)
legit $N "$TMP/flood.out"
rc=$?
wait_delivered $((before + N))
got=$(( $(delivered_count) - before ))
n451=$(grep -c ' 451 ' "$TMP/flood.out")
tf=$(grep '"event":"message"' "$TMP/moray.jsonl" | grep -c '"verdict":"tempfail"')
if [ $rc = 0 ] && [ "$got" = $N ] && [ "$n451" = 0 ] && [ "$tf" = 0 ]; then
	ok "flood: $N legitimate messages delivered during the flood, no 451, no tempfail"
else
	fail "flood: smtp-source rc $rc, $got of $N delivered, $n451 451 replies, $tf tempfailed"
	tail -5 "$TMP/flood.out"
fi

# ---------------------------------------------------------------- deadline
# the flood clients still hold their sockets; moray's deadlines (20 s, plus
# the timer tick) must end every flood connection on both sides.
back=
for _ in $(seq 40); do
	sleep 1
	if [ "$(pf_conns)" -le $((BASE + 2)) ]; then back=1; break; fi
done
if [ -n "$back" ]; then
	ok "deadline: Postfix back to $(pf_conns) connections (baseline $BASE) while the flood clients run"
else
	fail "deadline: Postfix still holds $(pf_conns) connections (baseline $BASE)"
fi
wait $P_IDLE $P_DATA
/usr/bin/python3 - "$TMP/flood-idle.json" "$TMP/flood-data.json" <<'EOF' || fail "deadline: flood clients not told"
import json, sys
bad = 0
for path in sys.argv[1:]:
    d = json.load(open(path))
    told = d["ended_by_peer"] + d["refused"]
    print("    %s: %s" % (path.rsplit("/", 1)[1], json.dumps(d, sort_keys=True)))
    if d["open_at_end"] != 0 or told != d["attempted"]:
        bad += 1
sys.exit(1 if bad else 0)
EOF

# ---------------------------------------------------------------- block
ip netns exec "$NSC" /usr/bin/python3 "$FLOOD" --server "$SRV" --sources "$NET.200" \
	--conns 4 --mode idle --duration 15 --rate 50 >"$TMP/flood-block.json" 2>&1 &
P_BLK=$!
FLOOD_PIDS="$FLOOD_PIDS $P_BLK"
sleep 2
n200() { pf_conns_by_src | awk -v a="$NET.200" '$2 == a { print $1 }'; }
[ "$(n200)" = 4 ] || fail "block: $NET.200 has $(n200) connections before the block"
"$TEL" "$PREFIX" "/moray/block,$NET.200/32,60" >"$TMP/block.json" || fail "block: telemetry failed"
sleep 2
if [ -z "$(n200)" ]; then
	ok "block: the blocked source's open connections were shed"
else
	fail "block: $NET.200 still has $(n200) connections"
fi
if ip netns exec "$NSC" timeout 5 bash -c "exec 3<>/dev/tcp/$SRV/25 && head -c 3 <&3" 2>/dev/null |
	grep -q 220; then
	ok "block: other sources still connect"
else
	fail "block: $CLI cannot connect while $NET.200 is blocked"
fi
"$TEL" "$PREFIX" /moray/blocklist | grep -q "$NET.200" || fail "block: /moray/blocklist does not list it"
wait $P_BLK
"$TEL" "$PREFIX" "/moray/unblock,$NET.200/32" >/dev/null || fail "unblock: telemetry failed"
ip netns exec "$NSC" /usr/bin/python3 "$FLOOD" --server "$SRV" --sources "$NET.200" \
	--conns 2 --mode idle --duration 3 --rate 50 >"$TMP/flood-unblock.json" 2>&1
grep -q '"established": 2' "$TMP/flood-unblock.json" && ok "unblock: the source connects again" ||
	fail "unblock: $(cat "$TMP/flood-unblock.json")"

# ---------------------------------------------------------------- log
stop_moray() {
	kill -TERM "$MORAY_PID"
	wait "$MORAY_PID"
	local rc=$?
	MORAY_PID=
	[ $rc = 0 ] || fail "moray exit $rc after SIGTERM"
}
stop_moray
shed=$(grep -c '"event":"shed"' "$TMP/moray.jsonl")
lines=$(wc -l <"$TMP/moray.jsonl")
if [ "$shed" -ge 1 ] && [ "$lines" -le 400 ]; then
	ok "log: $shed aggregated shed events, $lines lines in all"
else
	fail "log: $shed shed events, $lines lines (flood endings must be aggregated)"
fi
grep -q '"event":"blocklist"' "$TMP/moray.jsonl" || fail "log: no blocklist event"
VALIDATE=$HERE/../tools/validate_log.py
if [ -e "$VALIDATE" ]; then
	/usr/bin/python3 "$VALIDATE" "$TMP/moray.jsonl" || fail "log: does not validate against the schema"
fi

echo "$FAILS failure(s)"
[ $FAILS = 0 ]
