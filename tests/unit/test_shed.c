/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flows moray ends (shed.c) and emergency mode fed by the engine's pools
 * (pressure.c), through the engine's public API on crafted frames: a new
 * blocklist sheds the open flows of its sources (IPv4 and IPv6 prefixes)
 * and no others, tells both sides, tempfails a held message, and does a
 * bounded amount of work per tick; a full message pool turns emergency mode
 * on with an "emergency" event, and it turns off below the low mark.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/blocklist.h"
#include "moray/counters.h"
#include "moray/engine.h"
#include "moray/sigdb.h"

#include "pkt_build.h"

#ifndef MORAY_BUILDDIR
#define MORAY_BUILDDIR "build"
#endif
#define DB_GEN1 MORAY_BUILDDIR "/tests/unit/db-gen1.mdb"
#define SEC MRY_NS_PER_SEC
#define MAX_EMIT 512
#define MAX_EVENTS 64

struct emitted {
	enum mry_emit_dir dir;
	uint32_t len;
	uint8_t frame[256];
};

static struct emitted emits[MAX_EMIT];
static unsigned nb_emits;
static char *events[MAX_EVENTS];
static unsigned nb_events;

static void on_emit(void *ctx, enum mry_emit_dir dir, uint16_t port,
		    const uint8_t *frame, uint32_t len)
{
	(void)ctx;
	(void)port;
	cr_assert(lt(u32, nb_emits, MAX_EMIT));
	emits[nb_emits].dir = dir;
	emits[nb_emits].len = len;
	memcpy(emits[nb_emits].frame, frame, MRY_MIN(len, (uint32_t)sizeof(emits[0].frame)));
	nb_emits++;
}

static void on_event(void *ctx, const char *json, size_t len)
{
	(void)ctx;
	cr_assert(lt(u32, nb_events, MAX_EVENTS));
	events[nb_events++] = strndup(json, len);
}

static struct mry_engine *eng;
static struct mry_sigdb_ctl *ctl;
static struct mry_blocklist *bl;
static uint64_t now;

/* ---- connections, IPv4 or IPv6 ------------------------------------------- */

struct conn {
	unsigned ver;
	uint8_t cip[16], sip[16];
	uint16_t cport;
	uint32_t cseq, sseq;        /* next sequence number each side sends */
};

static uint32_t tcp6_frame(uint8_t *b, const uint8_t sip[16], const uint8_t dip[16],
			   uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
			   uint8_t flags, const void *payload, uint32_t plen)
{
	static const uint8_t mac[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };
	uint8_t *ip = b + 14, *tcp = b + 54;

	memcpy(b, mac, 12);
	pb_put16(b + 12, 0x86dd);
	memset(ip, 0, 40);
	ip[0] = 0x60;
	pb_put16(ip + 4, (uint16_t)(20 + plen));
	ip[6] = 6;
	ip[7] = 64;
	memcpy(ip + 8, sip, 16);
	memcpy(ip + 24, dip, 16);
	memset(tcp, 0, 20);
	pb_put16(tcp, sport);
	pb_put16(tcp + 2, dport);
	pb_put32(tcp + 4, seq);
	pb_put32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	pb_put16(tcp + 14, 65535);
	if (plen > 0)
		memcpy(tcp + 20, payload, plen);
	pb_tcp_csum(tcp, 20 + plen, 6, sip, dip);
	return 74 + plen;
}

static enum mry_pkt_verdict send_seg(const struct conn *c, bool from_client, uint32_t seq,
				     uint32_t ack, uint8_t flags, const char *s)
{
	static const uint8_t cmac[6] = { 2, 0, 0, 0, 0, 1 }, smac[6] = { 2, 0, 0, 0, 0, 2 };
	uint8_t b[2048];
	uint32_t n = s != NULL ? (uint32_t)strlen(s) : 0, len;

	if (c->ver == 4)
		len = from_client ?
		      pb_tcp4_frame(b, smac, cmac, c->cip, c->sip, c->cport, 25, seq, ack,
				    flags, s, n) :
		      pb_tcp4_frame(b, cmac, smac, c->sip, c->cip, 25, c->cport, seq, ack,
				    flags, s, n);
	else
		len = from_client ?
		      tcp6_frame(b, c->cip, c->sip, c->cport, 25, seq, ack, flags, s, n) :
		      tcp6_frame(b, c->sip, c->cip, 25, c->cport, seq, ack, flags, s, n);
	now += 1000000;
	return mry_engine_packet(eng, b, len, from_client ? 0 : 1, now);
}

static enum mry_pkt_verdict client(struct conn *c, const char *s)
{
	enum mry_pkt_verdict v = send_seg(c, true, c->cseq, c->sseq,
					  MRY_TCP_ACK | MRY_TCP_PSH, s);

	c->cseq += (uint32_t)strlen(s);
	return v;
}

static enum mry_pkt_verdict server(struct conn *c, const char *s)
{
	enum mry_pkt_verdict v = send_seg(c, false, c->sseq, c->cseq,
					  MRY_TCP_ACK | MRY_TCP_PSH, s);

	c->sseq += (uint32_t)strlen(s);
	return v;
}

static struct conn conn4(const char *client_ip, uint16_t cport)
{
	struct conn c = { .ver = 4, .cport = cport, .cseq = 5001, .sseq = 9001 };

	cr_assert(eq(int, inet_pton(AF_INET, client_ip, c.cip), 1));
	cr_assert(eq(int, inet_pton(AF_INET, "198.51.100.25", c.sip), 1));
	return c;
}

static struct conn conn6(const char *client_ip, uint16_t cport)
{
	struct conn c = { .ver = 6, .cport = cport, .cseq = 7001, .sseq = 3001 };

	cr_assert(eq(int, inet_pton(AF_INET6, client_ip, c.cip), 1));
	cr_assert(eq(int, inet_pton(AF_INET6, "2001:db8:ffff::25", c.sip), 1));
	return c;
}

static void handshake(struct conn *c)
{
	cr_assert(eq(int, send_seg(c, true, c->cseq - 1, 0, MRY_TCP_SYN, NULL), MRY_PKT_FORWARD));
	cr_assert(eq(int, send_seg(c, false, c->sseq - 1, c->cseq, MRY_TCP_SYN | MRY_TCP_ACK,
				   NULL), MRY_PKT_FORWARD));
	cr_assert(eq(int, send_seg(c, true, c->cseq, c->sseq, MRY_TCP_ACK, NULL), MRY_PKT_FORWARD));
}

/* a session in the command phase: greeting and EHLO done */
static void to_cmd(struct conn *c)
{
	handshake(c);
	cr_assert(eq(int, server(c, "220 srv.example ESMTP\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(c, "EHLO cli.example\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server(c, "250 srv.example\r\n"), MRY_PKT_FORWARD));
}

/* up to and including the 354, then a first line of the message */
static void to_data(struct conn *c)
{
	to_cmd(c);
	cr_assert(eq(int, client(c, "MAIL FROM:<a@example.org>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server(c, "250 2.1.0 Ok\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(c, "RCPT TO:<b@example.net>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server(c, "250 2.1.5 Ok\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(c, "DATA\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server(c, "354 go ahead\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(c, "Subject: s\r\n\r\nbody\r\n"), MRY_PKT_FORWARD));
}

/* ---- emitted frames ------------------------------------------------------ */

static unsigned l4_off(const struct emitted *em)
{
	return em->frame[12] == 0x86 ? 54 : 34;
}

/* toward @c's client (its address and port) or its server (from its port) */
static bool to_addr(const struct emitted *em, const struct conn *c, bool to_client)
{
	const uint8_t *want = to_client ? c->cip : c->sip;
	const uint8_t *tcp = em->frame + (em->frame[12] == 0x86 ? 54 : 34);
	uint16_t port = (uint16_t)(tcp[to_client ? 2 : 0] << 8 | tcp[to_client ? 3 : 1]);

	if (port != c->cport)
		return false;
	if (c->ver == 6)
		return em->frame[12] == 0x86 && memcmp(em->frame + 14 + 24, want, 16) == 0;
	return em->frame[12] == 0x08 && memcmp(em->frame + 14 + 16, want, 4) == 0;
}

static uint32_t seq_of(const struct emitted *em)
{
	uint32_t v;

	memcpy(&v, em->frame + l4_off(em) + 4, 4);
	return ntohl(v);
}

static uint8_t flags_of(const struct emitted *em)
{
	return em->frame[l4_off(em) + 13];
}

static const char *payload_of(const struct emitted *em)
{
	return (const char *)em->frame + l4_off(em) + 20;
}

/* The frames moray sent toward one side of @c, from emits[@from] on. */
static unsigned frames_to(const struct conn *c, bool to_client, unsigned from,
			  const struct emitted **first)
{
	unsigned n = 0;

	*first = NULL;
	for (unsigned i = from; i < nb_emits; i++) {
		if (emits[i].dir != (to_client ? MRY_EMIT_TO_CLIENT : MRY_EMIT_TO_SERVER) ||
		    !to_addr(&emits[i], c, to_client))
			continue;
		if (n++ == 0)
			*first = &emits[i];
	}
	return n;
}

/* @c was shed: @reply (then a FIN) to the client, an RST at @srv_seq (where the server is) */
static void assert_shed_at(const struct conn *c, unsigned from, const char *reply,
			   uint32_t srv_seq)
{
	const struct emitted *cf, *sf;

	cr_assert(eq(u32, frames_to(c, true, from, &cf), 2));
	cr_assert(eq(int, strncmp(payload_of(cf), reply, strlen(reply)), 0),
		  "client got %.40s", payload_of(cf));
	cr_assert(eq(u32, seq_of(cf), c->sseq));
	cr_assert(eq(u32, frames_to(c, false, from, &sf), 1));
	cr_assert(ne(u8, (uint8_t)(flags_of(sf) & MRY_TCP_RST), 0));
	cr_assert(eq(u32, seq_of(sf), srv_seq), "server RST at %u, expects %u",
		  seq_of(sf), srv_seq);
}

/* the server has every byte the client sent */
static void assert_shed(const struct conn *c, unsigned from, const char *reply)
{
	assert_shed_at(c, from, reply, c->cseq);
}

static void assert_untouched(const struct conn *c, unsigned from)
{
	const struct emitted *f;

	cr_assert(eq(u32, frames_to(c, true, from, &f), 0));
	cr_assert(eq(u32, frames_to(c, false, from, &f), 0));
}

static const char *find_event(const char *a, const char *b)
{
	for (unsigned i = 0; i < nb_events; i++)
		if (strstr(events[i], a) != NULL && (b == NULL || strstr(events[i], b) != NULL))
			return events[i];
	return NULL;
}

static struct mry_engine_stats stats(void)
{
	struct mry_engine_stats st;

	mry_engine_get_stats(eng, &st);
	return st;
}

static void block(const char *const *prefixes, size_t n)
{
	char err[128];
	struct mry_blocklist *old = bl;

	bl = mry_blocklist_from_strings(mry_alloc_default(), prefixes, n, err, sizeof(err));
	cr_assert_not_null(bl, "%s", err);
	mry_engine_set_blocklist(eng, bl);
	mry_blocklist_free(old);    /* the engine holds the new one only */
}

static void tick(uint64_t ns)
{
	now += ns;
	mry_engine_tick(eng, now);
}

/* ---- setup --------------------------------------------------------------- */

static uint32_t cfg_flows = 64, cfg_msgs = 16;
static void teardown(void);

static void up(const char *db)
{
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl_config cc = { 0 };
	struct mry_engine_io io = { .emit = on_emit, .event = on_event };
	struct mry_sigdb_gen *retired = NULL;

	if (eng != NULL)        /* the suite's .init ran before the test's own */
		teardown();
	mry_engine_config_defaults(&cfg);
	cfg.flow.max_flows = cfg_flows;
	cfg.max_msgs = cfg_msgs;
	cfg.hold_store_bytes = 1 << 20;
	now = 1700000000ULL * SEC;
	ctl = mry_sigdb_ctl_create(&cc);
	cr_assert_not_null(ctl);
	mry_sigdb_ctl_offer(ctl, db, now / SEC, &retired);
	eng = mry_engine_create(mry_alloc_default(), &cfg, ctl, &io, NULL);
	cr_assert_not_null(eng);
	nb_emits = 0;
	nb_events = 0;
}

static void setup(void)
{
	up(DB_GEN1);
}

static void setup_nodb(void)
{
	up(NULL);
}

static void setup_big(void)
{
	cfg_flows = 1024;
	up(DB_GEN1);
}

static void setup_four_msgs(void)
{
	cfg_msgs = 4;
	up(DB_GEN1);
}

static void teardown(void)
{
	mry_engine_destroy(eng, now);
	eng = NULL;
	mry_sigdb_ctl_destroy(ctl);
	ctl = NULL;
	mry_blocklist_free(bl);
	bl = NULL;
	for (unsigned i = 0; i < nb_events; i++)
		free(events[i]);
	nb_events = 0;
}

TestSuite(shed, .init = setup, .fini = teardown);

/* ---- blocklist sweep ----------------------------------------------------- */

Test(shed, block_sheds_open_flows_of_listed_ipv4_and_ipv6_prefixes_only)
{
	static const char *const list[] = { "192.0.2.0/24", "2001:db8:1::/48" };
	struct conn a = conn4("192.0.2.7", 41000), b = conn4("203.0.113.7", 41001);
	struct conn c = conn6("2001:db8:1:ff::5", 41002), d = conn6("2001:db8:2::5", 41003);
	struct conn m = conn4("192.0.2.200", 41004);
	unsigned from;
	const char *ev;

	to_cmd(&a);
	to_cmd(&b);
	to_cmd(&c);
	to_cmd(&d);
	to_data(&m);
	from = nb_emits;
	block(list, 2);
	cr_assert(eq(u32, nb_emits, from), "nothing happens before the tick");
	cr_assert(eq(u64, mry_engine_next_deadline(eng), now), "a sweep asks for a tick");
	tick(1000000);
	cr_assert(le(u64, now, mry_engine_next_deadline(eng)));
	assert_shed(&a, from, "421 4.7.1 ");
	assert_shed(&c, from, "421 4.7.1 ");
	assert_shed(&m, from, "451 4.7.1 ");
	assert_untouched(&b, from);
	assert_untouched(&d, from);
	cr_assert(eq(u64, stats().shed_blocked, 3));
	cr_assert(eq(u64, stats().msgs_tempfail, 1));
	cr_assert_not_null(find_event("\"event\":\"message\"", "\"reason\":\"blocked\""));
	/* the others go on; late frames of the shed ones are dropped */
	cr_assert(eq(int, client(&b, "MAIL FROM:<x@example.org>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(&d, "MAIL FROM:<x@example.org>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(&a, "MAIL FROM:<x@example.org>\r\n"), MRY_PKT_DROP));
	cr_assert(eq(int, client(&c, "MAIL FROM:<x@example.org>\r\n"), MRY_PKT_DROP));
	cr_assert(eq(u64, stats().drop_after_shed, 2));
	/* one aggregated event for the interval, its sources named */
	tick(11 * SEC);
	ev = find_event("\"event\":\"shed\"", "\"reason\":\"blocked\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"count\":3"), "%s", ev);
	cr_assert_not_null(strstr(ev, "\"cmd\":2"), "%s", ev);
	cr_assert_not_null(strstr(ev, "\"data\":1"), "%s", ev);
	cr_assert_not_null(strstr(ev, "\"src\":\"2001:db8:1:ff::5\""), "%s", ev);
	cr_assert_not_null(strstr(ev, "\"src\":\"192.0.2.7\""), "%s", ev);
}

Test(shed, a_flow_without_client_payload_gets_resets_on_both_sides)
{
	static const char *const list[] = { "192.0.2.7" };
	struct conn a = conn4("192.0.2.7", 41010);
	const struct emitted *cf, *sf;

	handshake(&a);
	block(list, 1);
	tick(1000000);
	cr_assert(eq(u32, frames_to(&a, true, 0, &cf), 1));
	cr_assert(ne(u8, (uint8_t)(flags_of(cf) & MRY_TCP_RST), 0));
	cr_assert(eq(u32, frames_to(&a, false, 0, &sf), 1));
	cr_assert(ne(u8, (uint8_t)(flags_of(sf) & MRY_TCP_RST), 0));
	cr_assert(eq(u32, seq_of(sf), a.cseq));
	cr_assert(eq(u64, stats().shed_blocked, 1));
}

Test(shed, a_held_message_of_a_blocked_source_is_tempfailed_never_passed,
     .init = setup_nodb)
{
	static const char *const list[] = { "192.0.2.0/24" };
	struct conn a = conn4("192.0.2.7", 41020);
	uint32_t eom_end;
	unsigned from;
	const struct emitted *cf;

	to_data(&a);
	cr_assert(eq(int, client(&a, ".\r\n"), MRY_PKT_DROP), "held: no database");
	eom_end = a.cseq;
	cr_assert(eq(u32, stats().hold_msgs, 1));
	from = nb_emits;
	block(list, 1);
	tick(1000000);
	/* the withheld end never reached the server: its RST sits before it */
	assert_shed_at(&a, from, "451 4.7.1 ", eom_end - 3);
	/* the 451 acknowledges the withheld end: the client knows to retry */
	frames_to(&a, true, from, &cf);
	{
		uint32_t ack;

		memcpy(&ack, cf->frame + l4_off(cf) + 8, 4);
		cr_assert(eq(u32, ntohl(ack), eom_end));
	}
	cr_assert(eq(u32, stats().hold_msgs, 0));
	cr_assert(eq(u64, stats().msgs_tempfail, 1));
	cr_assert(eq(u64, stats().msgs_released, 0));
	cr_assert_not_null(find_event("\"event\":\"release\"", "\"reason\":\"blocked\""));
	cr_assert_not_null(find_event("\"verdict\":\"tempfail\"", NULL));
	/* a database now: nothing is left to release toward the server */
	from = nb_emits;
	{
		struct mry_sigdb_gen *retired = NULL;

		mry_sigdb_ctl_offer(ctl, DB_GEN1, now / SEC, &retired);
	}
	tick(1000000);
	cr_assert(eq(u32, nb_emits, from));
	cr_assert(eq(u64, stats().msgs_released, 0));
}

Test(shed, a_sweep_looks_at_a_bounded_number_of_slots_per_tick, .init = setup_big)
{
	static const char *const list[] = { "192.0.2.99" };
	struct conn late = conn4("192.0.2.99", 42000);

	/* 600 flows of other sources fill slots 0..599, the blocked one is 600 */
	for (uint16_t i = 0; i < 600; i++) {
		struct conn o = conn4("203.0.113.1", (uint16_t)(30000 + i));

		o.cip[3] = (uint8_t)(1 + i % 200);
		handshake(&o);
	}
	handshake(&late);
	block(list, 1);
	/* 256 slots a tick: slots 512..767 hold it, the 3rd tick; the 4th ends the sweep */
	for (unsigned i = 0; i < 2; i++) {
		tick(1000);
		cr_assert(eq(u64, stats().shed_blocked, 0), "slot 600 reached at tick %u", i);
		cr_assert(eq(u64, mry_engine_next_deadline(eng), now));
	}
	tick(1000);
	cr_assert(eq(u64, stats().shed_blocked, 1));
	cr_assert(eq(u64, mry_engine_next_deadline(eng), now));
	tick(1000);
	cr_assert(gt(u64, mry_engine_next_deadline(eng), now));
}

Test(shed, a_sweep_ends_at_most_64_flows_per_tick, .init = setup_big)
{
	static const char *const list[] = { "192.0.2.0/24" };

	for (uint16_t i = 0; i < 150; i++) {
		struct conn o = conn4("192.0.2.1", (uint16_t)(30000 + i));

		o.cip[3] = (uint8_t)(1 + i % 100);
		handshake(&o);
	}
	block(list, 1);
	tick(1000);
	cr_assert(eq(u64, stats().shed_blocked, 64));
	cr_assert(eq(u64, mry_engine_next_deadline(eng), now));
	tick(1000);
	cr_assert(eq(u64, stats().shed_blocked, 128));
	tick(1000);
	cr_assert(eq(u64, stats().shed_blocked, 150));
}

Test(shed, a_new_list_during_a_sweep_starts_it_again, .init = setup_big)
{
	static const char *const first[] = { "192.0.2.99" };
	static const char *const second[] = { "192.0.2.99", "198.18.0.5" };
	struct conn early = conn4("198.18.0.5", 42001);

	handshake(&early);       /* slot 0 */
	for (uint16_t i = 0; i < 300; i++) {
		struct conn o = conn4("203.0.113.1", (uint16_t)(30000 + i));

		o.cip[3] = (uint8_t)(1 + i % 200);
		handshake(&o);
	}
	block(first, 1);
	tick(1000);              /* slots 0..255 looked at: not listed then */
	cr_assert(eq(u64, stats().shed_blocked, 0));
	block(second, 2);
	tick(1000);              /* from slot 0 again */
	cr_assert(eq(u64, stats().shed_blocked, 1));
}

Test(shed, no_list_or_the_same_list_starts_no_sweep)
{
	static const char *const list[] = { "192.0.2.0/24" };
	struct conn a = conn4("203.0.113.7", 41030);

	to_cmd(&a);
	tick(1000);
	mry_engine_set_blocklist(eng, NULL);
	cr_assert(gt(u64, mry_engine_next_deadline(eng), now));
	block(list, 1);
	tick(1000);
	cr_assert(gt(u64, mry_engine_next_deadline(eng), now));
	mry_engine_set_blocklist(eng, bl);
	cr_assert(gt(u64, mry_engine_next_deadline(eng), now));
}

/* ---- emergency mode fed by the message pool ------------------------------ */

Test(shed, a_full_message_pool_turns_emergency_mode_on_and_off, .init = setup_four_msgs)
{
	struct conn c[4];
	struct mry_counters k;
	const char *ev;

	for (unsigned i = 0; i < 4; i++) {
		c[i] = conn4("192.0.2.1", (uint16_t)(43000 + i));
		c[i].cip[3] = (uint8_t)(10 + i);
		to_data(&c[i]);
	}
	/* 4 of 64 flows (6 %), but every message slot taken */
	tick(1000);
	mry_engine_counters(eng, &k);
	cr_assert(eq(u64, k.flow.emergency, 1));
	cr_assert(eq(u64, k.flow.emergency_entered, 1));
	cr_assert(eq(u64, k.flow.pressure_pct, 100));
	cr_assert(gt(u64, k.flow.emergency_shortened, 0), "armed deadlines cut");
	ev = find_event("\"event\":\"emergency\"", "\"emergency\":true");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"pressure_pct\":100,\"pool\":\"message\","
				      "\"high_pct\":80,\"low_pct\":60"), "%s", ev);
	/* 3 messages end: 1 of 4 slots (25 %) is below the low mark */
	for (unsigned i = 0; i < 3; i++) {
		cr_assert(eq(int, client(&c[i], ".\r\n"), MRY_PKT_FORWARD));
		cr_assert(eq(int, server(&c[i], "250 2.0.0 queued\r\n"), MRY_PKT_FORWARD));
	}
	tick(1000);
	mry_engine_counters(eng, &k);
	cr_assert(eq(u64, k.flow.emergency, 0));
	cr_assert(eq(u64, k.flow.emergency_exited, 1));
	ev = find_event("\"event\":\"emergency\"", "\"emergency\":false");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"pressure_pct\":25,"), "%s", ev);
}

Test(shed, between_the_marks_the_state_stays, .init = setup_four_msgs)
{
	struct conn c[4];
	struct mry_counters k;

	for (unsigned i = 0; i < 4; i++) {
		c[i] = conn4("192.0.2.1", (uint16_t)(43100 + i));
		c[i].cip[3] = (uint8_t)(20 + i);
		if (i < 3)
			to_data(&c[i]);
	}
	tick(1000);              /* 3 of 4: 75 %, below 80 */
	mry_engine_counters(eng, &k);
	cr_assert(eq(u64, k.flow.emergency, 0));
	cr_assert_null(find_event("\"event\":\"emergency\"", NULL));
	to_data(&c[3]);
	tick(1000);
	cr_assert(eq(u32, nb_events, 1));
	cr_assert(eq(int, client(&c[0], ".\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server(&c[0], "250 2.0.0 queued\r\n"), MRY_PKT_FORWARD));
	tick(1000);              /* 75 %: above 60, still on */
	mry_engine_counters(eng, &k);
	cr_assert(eq(u64, k.flow.emergency, 1));
}
