#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# End-to-end test of the real moray between real software (suite 'slow'):
#
#   [ns C: swaks] <veth> C0 ==moray (net_af_packet)== S0 <veth> [ns S: Postfix]
#
# The test makes its own namespaces, veth pairs and a private Postfix
# instance (own config, queue and data directories, delivering to a Maildir
# under the test's temporary directory), and removes all of it on exit.
# Checks:
#   hold     moray starts with no database: a clean mail is held (swaks waits,
#            nothing delivered); a valid database is renamed into place; the
#            mail is delivered exactly once, byte-identical.
#   clean    a ~200 KiB mail is delivered exactly once, byte-identical.
#   eicar    a mail carrying EICAR is refused: swaks sees 554 5.7.1, Postfix
#            never delivers it.
#   parallel 6 concurrent clean mails: each delivered exactly once.
#   tempfail moray restarted with no database and --hold-timeout 3: the
#            client gets 451 4.7.1, nothing is delivered.
#   stop     SIGTERM: moray exits 0 with final statistics; a client that
#            stopped inside DATA gets 421 4.3.2, Postfix delivers nothing.
# Skipped (exit 77, "SKIP-REASON: <key>") only for a reason tests/data/README.md
# lists: not root, no veth support, no free test subnet. A missing tool or an
# unbuilt binary fails.
#
# usage: moray_netns_test.sh MORAY MORAY-SIGC SIGS.ndb
set -u

MORAY=$1
SIGC=$2
SIGS=$3

skip() { k=$1; shift; echo "SKIP-REASON: $k ($*)"; exit 77; }
missing() { echo "FAIL: $* missing"; exit 1; }
. "$(dirname "$0")/netns_lib.sh"
[ "$(id -u)" = 0 ] || skip not-root "network namespaces, af_packet"
for t in ip ethtool swaks postfix postconf ss; do
	command -v "$t" >/dev/null 2>&1 || missing "tool $t"
done
for b in "$MORAY" "$SIGC"; do [ -x "$b" ] || missing "binary $b (not built?)"; done
[ -f "$SIGS" ] || missing "test data $SIGS"

ID=$(( $$ % 100000 ))
NSC=mry${ID}c
NSS=mry${ID}s
VC=mry${ID}c0
VS=mry${ID}s0
PREFIX=mrye2e$ID
TMP=$(mktemp -d /tmp/moray-e2e.XXXXXX)
PF=$TMP/postfix
MORAY_PID=
PF_STARTED=
FAILS=0

cleanup() {
	set +e
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

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok   $*"; }

netns_up

# ---- a private Postfix in the server namespace, delivering to a Maildir
pf_config "$PF" srv.lab.example \
	"mydestination = localhost" "inet_interfaces = all" \
	"mynetworks = 127.0.0.0/8 $NET.0/24" "relayhost =" \
	"virtual_mailbox_domains = srv.lab.example" \
	"virtual_mailbox_maps = inline:{ bob@srv.lab.example=bob/ }"
PF_STARTED=1
pf_start "$PF" "$NSS"

# ---- the database (compiled at run time) and moray
DB=$TMP/test.mdb
LIVE=$TMP/live.mdb
if ! "$SIGC" compile -o "$DB" --generation 1 "$SIGS" >"$TMP/sigc.out" 2>&1; then
	cat "$TMP/sigc.out"
	fail "moray-sigc compile failed"
	exit 1
fi

stop_moray() {
	kill -TERM "$MORAY_PID"
	wait "$MORAY_PID"
	local rc=$?
	MORAY_PID=
	[ $rc = 0 ] || fail "moray exit $rc after SIGTERM"
	grep -q 'moray: final:' "$TMP/moray.out" || fail "no final statistics after SIGTERM"
}

# A message (CRLF) carrying a unique token; $2: extra body text.
make_msg() { # file token body-kib [extra]
	local f=$1 tok=$2 kib=$3 extra=${4:-}
	{
		printf 'From: alice@cli.lab.example\r\nTo: bob@srv.lab.example\r\n'
		printf 'Subject: moray e2e %s\r\nMessage-ID: <%s@cli.lab.example>\r\n\r\n' "$tok" "$tok"
		printf 'token %s\r\n' "$tok"
		[ -n "$extra" ] && printf '%s\r\n' "$extra"
		local i=0
		while [ $i -lt $((kib * 16)) ]; do
			printf 'line %06d of the moray end-to-end body, 64 bytes long...\r\n' $i
			i=$((i + 1))
		done
	} >"$f"
	# swaks ends DATA with CRLF.CRLF itself; without our last CRLF the
	# server receives exactly this file plus one CRLF.
	truncate -s -2 "$f"
}

send() { # msgfile outfile [timeout]
	ip netns exec "$NSC" swaks --server "$SRV" --from alice@cli.lab.example \
		--to bob@srv.lab.example --data "@$1" --timeout "${3:-60}" >"$2" 2>&1
}

# Number of delivered messages carrying a token.
delivered() { grep -rl -- "token $1" "$PF/vmail" 2>/dev/null | wc -l; }

wait_delivered() { # token
	for _ in $(seq 100); do
		[ "$(delivered "$1")" -ge 1 ] && { sleep 0.5; return 0; }
		sleep 0.2
	done
	return 1
}

# Delivered copy ends with the sent message plus the CRLF swaks adds
# (Maildir stores LF line ends); Postfix only prepends its trace headers.
same_bytes() { # token msgfile
	local got
	got=$(grep -rl -- "token $1" "$PF/vmail" | head -1)
	/usr/bin/python3 - "$got" "$2" <<'EOF'
import sys
got = open(sys.argv[1], "rb").read()
sent = open(sys.argv[2], "rb").read().replace(b"\r\n", b"\n") + b"\n"
sys.exit(0 if got.endswith(sent) else 1)
EOF
}

# ---------------------------------------------------------------- hold
start_moray --db "$LIVE" --hold-timeout 120
grep -q '"state":"invalid"' "$TMP/moray.jsonl" || fail "hold: no db invalid event at start"
make_msg "$TMP/hold.eml" "hold$ID" 8
send "$TMP/hold.eml" "$TMP/hold.out" 90 &
SWAKS=$!
sleep 4
if kill -0 $SWAKS 2>/dev/null && [ "$(delivered "hold$ID")" = 0 ]; then
	ok "hold: message held without a database (client waiting, nothing delivered)"
else
	fail "hold: message not held ($(delivered "hold$ID") delivered)"
fi
cp "$DB" "$LIVE.tmp" && mv "$LIVE.tmp" "$LIVE"
wait $SWAKS
rc=$?
if [ $rc = 0 ] && wait_delivered "hold$ID" && [ "$(delivered "hold$ID")" = 1 ] &&
	same_bytes "hold$ID" "$TMP/hold.eml"; then
	ok "hold: released after the database arrived, delivered once, byte-identical"
else
	fail "hold: swaks rc $rc, delivered $(delivered "hold$ID")"
	tail -5 "$TMP/hold.out"
fi
grep -q '"state":"valid"' "$TMP/moray.jsonl" || fail "hold: no db valid event"

# ---------------------------------------------------------------- clean
make_msg "$TMP/clean.eml" "clean$ID" 200
if send "$TMP/clean.eml" "$TMP/clean.out" && wait_delivered "clean$ID" &&
	[ "$(delivered "clean$ID")" = 1 ] && same_bytes "clean$ID" "$TMP/clean.eml"; then
	ok "clean: 200 KiB mail delivered exactly once, byte-identical"
else
	fail "clean: delivered $(delivered "clean$ID") times"
	tail -5 "$TMP/clean.out"
fi

# ---------------------------------------------------------------- eicar
EICAR=$(printf '%s' 58354f2150254041505b345c505a58353428505e2937434329377d24454943\
41522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a |
	xxd -r -p)
make_msg "$TMP/eicar.eml" "eicar$ID" 4 "$EICAR"
send "$TMP/eicar.eml" "$TMP/eicar.out"
rc=$?
sleep 2
if [ $rc != 0 ] && grep -q '554 5.7.1' "$TMP/eicar.out" && [ "$(delivered "eicar$ID")" = 0 ]; then
	ok "eicar: refused with 554 5.7.1, never delivered"
else
	fail "eicar: swaks rc $rc, delivered $(delivered "eicar$ID")"
	grep -E '^ *<~?\*? *[0-9]{3}' "$TMP/eicar.out" | tail -3
fi

# ---------------------------------------------------------------- parallel
pids=
for k in 1 2 3 4 5 6; do
	make_msg "$TMP/par$k.eml" "par$ID.$k" $((k * 16))
	send "$TMP/par$k.eml" "$TMP/par$k.out" &
	pids="$pids $!"
done
prc=0
for p in $pids; do wait "$p" || prc=1; done
bad=0
for k in 1 2 3 4 5 6; do
	wait_delivered "par$ID.$k"
	[ "$(delivered "par$ID.$k")" = 1 ] && same_bytes "par$ID.$k" "$TMP/par$k.eml" || bad=$((bad + 1))
done
if [ $prc = 0 ] && [ $bad = 0 ]; then
	ok "parallel: 6 concurrent mails each delivered exactly once, byte-identical"
else
	fail "parallel: $bad of 6 not delivered exactly once (swaks failures: $prc)"
fi

# ---------------------------------------------------------------- stop
# A client stops inside DATA (body sent, no end): at SIGTERM it must get
# 421 4.3.2 from moray, and Postfix (reset) must deliver nothing.
{
	ip netns exec "$NSC" /usr/bin/python3 - "$SRV" "stop$ID" >"$TMP/stop.out" 2>&1 <<'EOF' &
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=60)
f = s.makefile("rb")
def reply():
    while True:
        ln = f.readline()
        if not ln or ln[3:4] != b"-":
            return ln
reply()
for c in (b"EHLO cli.lab.example", b"MAIL FROM:<alice@cli.lab.example>",
          b"RCPT TO:<bob@srv.lab.example>", b"DATA"):
    s.sendall(c + b"\r\n")
    reply()
s.sendall(b"Subject: stop\r\n\r\ntoken " + sys.argv[2].encode() + b"\r\nmore to come\r\n")
print("in-data", flush=True)
print("answer:", reply().decode(errors="replace").strip(), flush=True)
EOF
	STOPC=$!
	for _ in $(seq 100); do grep -q in-data "$TMP/stop.out" && break; sleep 0.1; done
	sleep 0.5
}
stop_moray && ok "stop: SIGTERM, exit 0, final statistics"
{
	wait "$STOPC"
	sleep 1
	if grep -q 'answer: 421 4.3.2' "$TMP/stop.out" && [ "$(delivered "stop$ID")" = 0 ] &&
	   grep -q '"reason":"shutdown"' "$TMP/moray.jsonl"; then
		ok "stop: a client inside DATA got 421 4.3.2, nothing delivered"
	else
		fail "stop: client inside DATA: $(tr '\n' ' ' < "$TMP/stop.out"), delivered $(delivered "stop$ID")"
	fi
}

# ---------------------------------------------------------------- tempfail
rm -f "$LIVE"
start_moray --db "$LIVE" --hold-timeout 3
make_msg "$TMP/tf.eml" "tf$ID" 4
send "$TMP/tf.eml" "$TMP/tf.out"
rc=$?
sleep 1
if [ $rc != 0 ] && grep -q '451 4.7.1' "$TMP/tf.out" && [ "$(delivered "tf$ID")" = 0 ]; then
	ok "tempfail: hold timeout answered 451 4.7.1, nothing delivered"
else
	fail "tempfail: swaks rc $rc, delivered $(delivered "tf$ID")"
	tail -5 "$TMP/tf.out"
fi
stop_moray

check_log_schema
echo "$FAILS failure(s)"
[ $FAILS = 0 ]
