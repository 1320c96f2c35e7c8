#!/bin/bash
# SPDX-License-Identifier: BSD-3-Clause
#
# End to end with Postfix as the SENDING MTA (suite 'slow'):
#
#   [ns C: Postfix (sender)] <veth> C0 ==moray== S0 <veth> [ns S: Postfix (receiver)]
#
# The sending Postfix relays everything to [server ip] (relayhost), retries
# quickly (5 s backoff and queue run delay) and delivers its own bounces to
# a local Maildir; the receiving Postfix delivers bob@ to a Maildir. Both
# are private instances (own config, queue and data directories) and all of
# it is removed on exit.
#   retry   moray starts with no database and --hold-timeout 5: a mail
#           injected into the sender is held, then answered 451 4.7.1; the
#           sender logs it deferred and keeps it queued; a valid database
#           is renamed into place; the sender retries on its own and the
#           mail is delivered exactly once, byte-identical; the queue drains.
#   eicar   an EICAR mail injected while the database is valid: the sender
#           logs 554 5.7.1 and bounces it (the bounce reaches alice's
#           Maildir); the receiver never delivers it.
#   clean   a clean mail afterwards is delivered exactly once.
#   count   the receiver holds exactly the retry and clean mails, the
#           sender's queue is empty, moray logged each message as expected.
# Skipped (exit 77, "SKIP-REASON: <key>") only for a reason tests/data/README.md
# lists: not root, no veth support, no free test subnet. A missing tool or an
# unbuilt binary fails.
#
# usage: netns_retry_test.sh MORAY MORAY-SIGC SIGS.ndb
set -u

MORAY=$1
SIGC=$2
SIGS=$3

skip() { k=$1; shift; echo "SKIP-REASON: $k ($*)"; exit 77; }
missing() { echo "FAIL: $* missing"; exit 1; }
. "$(dirname "$0")/netns_lib.sh"
[ "$(id -u)" = 0 ] || skip not-root "network namespaces, af_packet"
for t in ip ethtool postfix postconf postqueue sendmail ss; do
	command -v "$t" >/dev/null 2>&1 || missing "tool $t"
done
for b in "$MORAY" "$SIGC"; do [ -x "$b" ] || missing "binary $b (not built?)"; done
[ -f "$SIGS" ] || missing "test data $SIGS"

ID=$(( $$ % 100000 ))
NSC=mrr${ID}c
NSS=mrr${ID}s
VC=mrr${ID}c0
VS=mrr${ID}s0
PREFIX=mryretry$ID
TMP=$(mktemp -d /tmp/moray-retry.XXXXXX)
PFS=$TMP/pf-srv
PFC=$TMP/pf-cli
MORAY_PID=
PF_STARTED=
FAILS=0

cleanup() {
	set +e
	if [ -n "$MORAY_PID" ]; then
		kill -INT "$MORAY_PID" 2>/dev/null
		wait "$MORAY_PID" 2>/dev/null
	fi
	if [ -n "$PF_STARTED" ]; then
		pf_stop "$PFC" "$NSC"
		pf_stop "$PFS" "$NSS"
	fi
	netns_down
	rm -rf "/var/run/dpdk/$PREFIX"
	[ -n "${MORAY_E2E_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok   $*"; }

netns_up

# ---- two private Postfix instances
pf_config "$PFS" srv.lab.example \
	"inet_interfaces = all" "mynetworks = 127.0.0.0/8 $NET.0/24" "relayhost =" \
	"virtual_mailbox_domains = srv.lab.example" \
	"virtual_mailbox_maps = inline:{ bob@srv.lab.example=bob/ }"
# The sender: relays all to the server, its own domain (bounces to alice)
# delivered locally; fast retries; no TLS (moray would see no message).
pf_config "$PFC" cli.lab.example \
	"inet_interfaces = loopback-only" "mynetworks = 127.0.0.0/8" \
	"relayhost = [$SRV]" "default_transport = smtp" "relay_transport = relay" \
	"myorigin = cli.lab.example" "smtp_tls_security_level = none" \
	"virtual_mailbox_domains = cli.lab.example" \
	"virtual_mailbox_maps = inline:{ alice@cli.lab.example=alice/ }" \
	"minimal_backoff_time = 5s" "maximal_backoff_time = 10s" "queue_run_delay = 5s" \
	"smtp_connect_timeout = 10s" "delay_warning_time = 0h"

PF_STARTED=1
pf_start "$PFS" "$NSS"
pf_start "$PFC" "$NSC"

# ---- the database (compiled at run time) and moray
DB=$TMP/test.mdb
LIVE=$TMP/live.mdb
if ! "$SIGC" compile -o "$DB" --generation 1 "$SIGS" >"$TMP/sigc.out" 2>&1; then
	cat "$TMP/sigc.out"
	fail "moray-sigc compile failed"
	exit 1
fi

# A message (LF line ends, as a local sendmail(1) caller writes it) with a
# unique token.
make_msg() { # file token body-kib [extra]
	local f=$1 tok=$2 kib=$3 extra=${4:-}
	{
		printf 'From: alice@cli.lab.example\nTo: bob@srv.lab.example\n'
		printf 'Subject: moray retry %s\nMessage-ID: <%s@cli.lab.example>\n' "$tok" "$tok"
		printf 'Date: Thu, 01 Jan 2026 00:00:00 +0000\n\n'
		printf 'token %s\n' "$tok"
		[ -n "$extra" ] && printf '%s\n' "$extra"
		local i=0
		while [ $i -lt $((kib * 16)) ]; do
			printf 'line %06d of the moray retry body, ..... 64 bytes long....\n' $i
			i=$((i + 1))
		done
		printf '.leading dot, stuffed on the wire\n'
	} >"$f"
}

inject() { # msgfile
	ip netns exec "$NSC" sendmail -C "$PFC/etc" -f alice@cli.lab.example \
		bob@srv.lab.example <"$1"
}

# Delivered copies carrying a token, in the receiver's / sender's Maildirs.
delivered() { grep -rlF -- "token $1" "$PFS/vmail" 2>/dev/null | wc -l; }
bounced() { grep -rlF -- "token $1" "$PFC/vmail" 2>/dev/null | wc -l; }
queued() { ip netns exec "$NSC" postqueue -c "$PFC/etc" -j 2>/dev/null | grep -c '"queue_id"'; }
slog() { cat "$PFC/maillog" 2>/dev/null; }
ndeferred() { slog | grep -F "$1: to=" | grep -c 'status=deferred'; }

wait_for() { # seconds 'shell condition' (evaluated on every try)
	local n=$(( $1 * 5 ))
	shift
	for _ in $(seq "$n"); do
		eval "$1" && return 0
		sleep 0.2
	done
	return 1
}

# The delivered copy ends with exactly the injected message: each Postfix
# only prepends its trace headers.
same_bytes() { # token msgfile
	local got
	got=$(grep -rlF -- "token $1" "$PFS/vmail" | head -1)
	cmp -s <(tail -c "$(stat -c %s "$2")" "$got") "$2"
}

# The queue id the sender gave the message carrying a token.
qid_of() { # token
	grep -F "message-id=<$1@cli.lab.example>" "$PFC/maillog" | head -1 |
		sed -E 's/.*: ([0-9A-F]+): message-id=.*/\1/'
}

# ---------------------------------------------------------------- retry
start_moray --db "$LIVE" --hold-timeout 5
grep -q '"state":"invalid"' "$TMP/moray.jsonl" || fail "retry: no db invalid event at start"
make_msg "$TMP/retry.eml" "retry$ID" 16
inject "$TMP/retry.eml" || fail "retry: sendmail failed"
deferred_451() {
	local q
	q=$(qid_of "retry$ID")
	[ -n "$q" ] && slog | grep -F "$q:" | grep 'status=deferred' | grep -q '451 4.7.1'
}
if wait_for 60 deferred_451; then
	ok "retry: sender got 451 4.7.1 and deferred the mail"
else
	fail "retry: no 451 deferral in the sender's log"
	slog | tail -5
fi
Q=$(qid_of "retry$ID")
if [ "$(queued)" = 1 ] && ip netns exec "$NSC" postqueue -c "$PFC/etc" -p | grep -q "^$Q"; then
	ok "retry: the mail stays in the sender's queue ($Q)"
else
	fail "retry: sender queue holds $(queued) mails, want 1 ($Q)"
fi
[ "$(delivered "retry$ID")" = 0 ] || fail "retry: delivered while there was no database"
# Let the sender meet the 451 once more from its own retry schedule.
wait_for 30 '[ "$(ndeferred "$Q")" -ge 2 ]' ||
	fail "retry: the sender did not retry on its own"
NDEF=$(ndeferred "$Q")
cp "$DB" "$LIVE.tmp" && mv "$LIVE.tmp" "$LIVE"
wait_for 10 'grep -q "\"state\":\"valid\"" "$TMP/moray.jsonl"' || fail "retry: no db valid event"
if wait_for 60 '[ "$(delivered "retry$ID")" -ge 1 ]'; then
	sleep 2
	if [ "$(delivered "retry$ID")" = 1 ] && same_bytes "retry$ID" "$TMP/retry.eml"; then
		ok "retry: delivered exactly once, byte-identical, after $NDEF deferral(s)"
	else
		fail "retry: delivered $(delivered "retry$ID") times or bytes differ"
	fi
else
	fail "retry: never delivered after the database arrived"
	slog | tail -5
fi
wait_for 10 '[ "$(queued)" = 0 ]' || fail "retry: sender queue not empty: $(queued)"
slog | grep -F "$Q:" | grep -q 'status=sent' || fail "retry: sender did not log status=sent"

# ---------------------------------------------------------------- eicar
EICAR=$(printf '%s' 58354f2150254041505b345c505a58353428505e2937434329377d24454943\
41522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a |
	xxd -r -p)
make_msg "$TMP/eicar.eml" "eicar$ID" 4 "$EICAR"
inject "$TMP/eicar.eml" || fail "eicar: sendmail failed"
bounced_554() {
	local q
	q=$(qid_of "eicar$ID")
	[ -n "$q" ] && slog | grep -F "$q:" | grep 'status=bounced' | grep -q '554 5.7.1'
}
if wait_for 60 bounced_554; then
	ok "eicar: sender got 554 5.7.1 and bounced the mail"
else
	fail "eicar: no 554 bounce in the sender's log"
	slog | tail -5
fi
if wait_for 30 '[ "$(bounced "eicar$ID")" -ge 1 ]' && sleep 1 && [ "$(bounced "eicar$ID")" = 1 ]; then
	ok "eicar: the bounce reached alice once"
else
	fail "eicar: $(bounced "eicar$ID") bounces in alice's Maildir"
fi
sleep 2
if [ "$(delivered "eicar$ID")" = 0 ]; then
	ok "eicar: never delivered by the receiver"
else
	fail "eicar: delivered $(delivered "eicar$ID") times"
fi

# ---------------------------------------------------------------- clean
make_msg "$TMP/clean.eml" "clean$ID" 64
inject "$TMP/clean.eml" || fail "clean: sendmail failed"
if wait_for 60 '[ "$(delivered "clean$ID")" -ge 1 ]' && sleep 2 &&
	[ "$(delivered "clean$ID")" = 1 ] && same_bytes "clean$ID" "$TMP/clean.eml"; then
	ok "clean: delivered exactly once, byte-identical"
else
	fail "clean: delivered $(delivered "clean$ID") times"
fi

# ---------------------------------------------------------------- count
wait_for 10 '[ "$(queued)" = 0 ]' || fail "count: sender queue not empty: $(queued)"
kill -TERM "$MORAY_PID"
wait "$MORAY_PID"
rc=$?
MORAY_PID=
[ $rc = 0 ] || fail "moray exit $rc after SIGTERM"
grep 'moray: final:' "$TMP/moray.out"
NREC=$(find "$PFS/vmail" -type f -path '*/new/*' | wc -l)
NBOUNCE=$(find "$PFC/vmail" -type f -path '*/new/*' | wc -l)
/usr/bin/python3 - "$TMP/moray.jsonl" "$(ndeferred "$Q")" <<'EOF' || fail "count: moray's log"
import json, sys
ev = [json.loads(x) for x in open(sys.argv[1]) if x.strip()]
msgs = [e for e in ev if e.get("event") == "message"]
acts = [(e["action"], e["verdict"]) for e in msgs]
print("moray message events: %s" % acts)
tf = [a for a in acts if a[0] == "tempfailed"]
# a retry in flight when the database arrives is released, not tempfailed
fwd = [a for a in acts if a[0] in ("forwarded", "released") and a[1] == "clean"]
rej = [a for a in acts if a[0] == "rejected" and a[1] == "infected"]
ok = len(tf) == int(sys.argv[2]) and len(fwd) == 2 and len(rej) == 1 and \
    len(tf) + len(fwd) + len(rej) == len(msgs) - sum(1 for a in acts if a[0] == "held")
sys.exit(0 if ok else 1)
EOF
if [ "$NREC" = 2 ] && [ "$NBOUNCE" = 1 ]; then
	ok "count: receiver holds 2 mails (retry, clean), alice 1 bounce; nothing lost or duplicated"
else
	fail "count: receiver holds $NREC mails (want 2), alice $NBOUNCE (want 1)"
fi

check_log_schema
echo "$FAILS failure(s)"
[ $FAILS = 0 ]
