# SPDX-License-Identifier: BSD-3-Clause
# Shared by the end-to-end tests: two network namespaces (client $NSC and
# server $NSS) joined to the host through veth pairs $VC/$VS, which moray
# bridges with net_af_packet (veth pairs bridged by af_packet). The caller sets NSC NSS
# VC VS MORAY PREFIX TMP and defines skip() and fail(); this sets NET CLI
# SRV, and start_moray sets MORAY_PID.

# Addresses the host does not use (LAB.md: the host answers ARP for its own).
netns_pick_net() {
	NET=
	for n in 198.51.100 203.0.113; do
		if ! ip -4 addr | grep -q " $n\."; then NET=$n; break; fi
	done
	[ -n "$NET" ] || skip no-free-net "198.51.100.0/24 and 203.0.113.0/24 both in use on this host"
	CLI=$NET.1
	SRV=$NET.2
}

netns_up() {
	netns_pick_net
	ip link add "$VC" type veth peer name "${VC}n" 2>/dev/null || skip no-veth "cannot create veth pairs"
	ip link add "$VS" type veth peer name "${VS}n"
	ip netns add "$NSC"
	ip netns add "$NSS"
	ip link set "${VC}n" netns "$NSC"
	ip link set "${VS}n" netns "$NSS"
	for i in "$VC" "$VS"; do
		sysctl -qw "net.ipv6.conf.$i.disable_ipv6=1"
		ip link set "$i" arp off
		ip link set "$i" up
	done
	ip -n "$NSC" addr add "$CLI/24" dev "${VC}n"
	ip -n "$NSS" addr add "$SRV/24" dev "${VS}n"
	for ns in "$NSC" "$NSS"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NSC" link set "${VC}n" up
	ip -n "$NSS" link set "${VS}n" up
	# veth leaves partial checksums for offload; af_packet hands them on as is.
	ip netns exec "$NSC" ethtool -K "${VC}n" tx off >/dev/null
	ip netns exec "$NSS" ethtool -K "${VS}n" tx off >/dev/null
}

netns_down() {
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSS" 2>/dev/null
	ip link del "$VC" 2>/dev/null
	ip link del "$VS" 2>/dev/null
}

# moray bridging the two veths (sw dispatch, 2 workers on 2 CPUs); waits
# until it runs. Extra moray options as arguments.
start_moray() { # extra moray options...
	: >"$TMP/moray.out"
	"$MORAY" --no-huge --no-pci -m 1024 --no-shconf --file-prefix="$PREFIX" \
		--lcores '(0-2)@(0-1)' --log-level=lib.eal:warning \
		--vdev="net_af_packet0,iface=$VC" --vdev="net_af_packet1,iface=$VS" \
		-- -p 3 --dispatch sw --log "$TMP/moray.jsonl" "$@" >>"$TMP/moray.out" 2>&1 &
	MORAY_PID=$!
	for _ in $(seq 150); do
		grep -q 'moray: running' "$TMP/moray.out" && return 0
		kill -0 "$MORAY_PID" 2>/dev/null || break
		sleep 0.2
	done
	cat "$TMP/moray.out"
	fail "moray did not start"
	exit 1
}

# Every event moray wrote must match docs/verdict-log.schema.json (run once
# moray has exited, so no line is half written).
check_log_schema() {
	[ -s "$TMP/moray.jsonl" ] || return 0
	/usr/bin/python3 "$(dirname "$0")/../tools/validate_log.py" "$TMP/moray.jsonl" ||
		fail "verdict log does not match docs/verdict-log.schema.json"
}

# A private Postfix instance (own config, queue, data and Maildir base under
# directory $1) for the end-to-end tests. The caller defines fail().
pf_config() { # dir hostname extra-settings...
	local d=$1 host=$2
	shift 2
	mkdir -p "$d/etc" "$d/spool" "$d/data" "$d/vmail"
	chmod 755 "$(dirname "$d")"
	cp /etc/postfix/main.cf /etc/postfix/master.cf "$d/etc/"
	postconf -c "$d/etc" -e \
		"queue_directory = $d/spool" "data_directory = $d/data" \
		"myhostname = $host" "mydestination =" \
		"inet_protocols = ipv4" "smtpd_peername_lookup = no" \
		"smtp_dns_support_level = disabled" "maillog_file = $d/maillog" \
		"maillog_file_prefixes = $d" "compatibility_level = 3.6" \
		"virtual_mailbox_base = $d/vmail" \
		"virtual_uid_maps = static:65534" "virtual_gid_maps = static:65534" \
		"alias_maps =" "alias_database =" "smtpd_timeout = 300s" "$@"
	chown postfix "$d/data"
	chown 65534:65534 "$d/vmail"
}

pf_start() { # dir namespace
	setsid ip netns exec "$2" postfix -c "$1/etc" start-fg >"$1/fg.out" 2>&1 &
	for _ in $(seq 50); do
		ip netns exec "$2" ss -ltn | grep -q ':25 ' && return 0
		sleep 0.2
	done
	cat "$1/fg.out" "$1/maillog" 2>/dev/null
	fail "postfix ($1) did not start"
	exit 1
}

pf_stop() { # dir namespace
	ip netns exec "$2" postfix -c "$1/etc" stop >/dev/null 2>&1
	sleep 1
	[ -f "$1/spool/pid/master.pid" ] &&
		kill "$(tr -d ' ' < "$1/spool/pid/master.pid")" 2>/dev/null
}
