/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Every counter in the counter table can move. Scenarios feed frames through
 * mry_engine_packet() (and ticks), and after every frame the engine's
 * counters are read through the table; the test then walks the table and
 * fails naming each counter no scenario moved. A counter that cannot move
 * is a defect: delete it or make it move.
 *
 * A counter no scenario can reach through the engine's public API is
 * listed in not_yet_reached[] with the reason; the test fails if one of
 * them moves (so the list only shrinks), so the list is the honest state,
 * not a way to hide a counter.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hs.h>

#include "moray/blocklist.h"
#include "moray/counters.h"
#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/sigdb.h"
#include "moray/smtp.h"

#include "pkt_build.h"

#ifndef MORAY_BUILDDIR
#define MORAY_BUILDDIR "build"
#endif
#define DB_GEN1 MORAY_BUILDDIR "/tests/unit/db-gen1.mdb"
#define MAX_ROWS 512

static const struct mry_counter_def *defs;
static size_t nb_defs;
static bool moved[MAX_ROWS][64];        /* [row][element] */

static struct mry_engine *eng;
static struct mry_sigdb_ctl *ctl;
static uint64_t now;

/* What the Hyperscan fault scenario looks at: replies, events, log lines. */
static bool replied_451;
static char msg_event[16384];
static char scan_log[512];

static void on_emit(void *ctx, enum mry_emit_dir dir, uint16_t port,
		    const uint8_t *frame, uint32_t len)
{
	(void)ctx;
	(void)port;
	if (dir == MRY_EMIT_TO_CLIENT && memmem(frame, len, "451 4.7.1 ", 10) != NULL)
		replied_451 = true;
}

static void on_event(void *ctx, const char *json, size_t len)
{
	(void)ctx;
	if (len < sizeof(msg_event) && strstr(json, "\"event\":\"message\"") != NULL) {
		memcpy(msg_event, json, len);
		msg_event[len] = '\0';
	}
}

static void on_log(enum mry_log_level level, const char *module, const char *msg, void *ctx)
{
	(void)ctx;
	if (level == MRY_LOG_ERR && strcmp(module, "engine") == 0 &&
	    strstr(msg, "could not be scanned") != NULL)
		snprintf(scan_log, sizeof(scan_log), "%s", msg);
}

/*
 * Hyperscan refusing a stream or a scan (in production: a corrupted stream,
 * a scratch in use or too small). The unit test is linked with
 * -Wl,--wrap=hs_scan_stream,--wrap=hs_open_stream (tests/unit/meson.build),
 * so the engine's calls land here and fail while hs_fail is set; the engine
 * itself has no fault hook.
 */
static bool hs_fail_scan, hs_fail_open;

hs_error_t __real_hs_scan_stream(hs_stream_t *id, const char *data, unsigned int length,
				 unsigned int flags, hs_scratch_t *scratch,
				 match_event_handler on_match, void *ctx);
hs_error_t __wrap_hs_scan_stream(hs_stream_t *id, const char *data, unsigned int length,
				 unsigned int flags, hs_scratch_t *scratch,
				 match_event_handler on_match, void *ctx);
hs_error_t __real_hs_open_stream(const hs_database_t *db, unsigned int flags,
				 hs_stream_t **stream);
hs_error_t __wrap_hs_open_stream(const hs_database_t *db, unsigned int flags,
				 hs_stream_t **stream);

hs_error_t __wrap_hs_scan_stream(hs_stream_t *id, const char *data, unsigned int length,
				 unsigned int flags, hs_scratch_t *scratch,
				 match_event_handler on_match, void *ctx)
{
	if (hs_fail_scan)
		return HS_UNKNOWN_ERROR;
	return __real_hs_scan_stream(id, data, length, flags, scratch, on_match, ctx);
}

hs_error_t __wrap_hs_open_stream(const hs_database_t *db, unsigned int flags,
				 hs_stream_t **stream)
{
	if (hs_fail_open)
		return HS_UNKNOWN_ERROR;
	return __real_hs_open_stream(db, flags, stream);
}

/* Marks every counter of the table that is not zero now. */
static void mark(void)
{
	static struct mry_counters c;
	size_t i;
	unsigned j;

	mry_engine_counters(eng, &c);
	for (i = 0; i < nb_defs; i++)
		for (j = 0; j < defs[i].nb; j++) {
			uint64_t v;

			memcpy(&v, (const char *)&c + defs[i].off + j * sizeof(uint64_t), sizeof(v));
			if (v != 0)
				moved[i][j] = true;
		}
}

static void engine_up(const char *db, void (*tune)(struct mry_engine_config *))
{
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl_config cc = { 0 };
	struct mry_engine_io io = { .emit = on_emit, .event = on_event };
	struct mry_sigdb_gen *retired = NULL;

	mry_engine_config_defaults(&cfg);
	cfg.flow.max_flows = 64;
	cfg.max_msgs = 16;
	cfg.hold_store_bytes = 1 << 20;
	cfg.decode_flags |= MRY_DECODE_F_VERIFY_TCP_CSUM;
	if (tune != NULL)
		tune(&cfg);
	now = 1700000000ULL * 1000000000ULL;
	ctl = mry_sigdb_ctl_create(&cc);
	cr_assert_not_null(ctl);
	mry_sigdb_ctl_offer(ctl, db, now / 1000000000ULL, &retired);
	eng = mry_engine_create(mry_alloc_default(), &cfg, ctl, &io, NULL);
	cr_assert_not_null(eng);
}

static void engine_down(void)
{
	mark();
	mry_engine_destroy(eng, now);
	eng = NULL;
	mry_sigdb_ctl_destroy(ctl);
	ctl = NULL;
}

static void offer(const char *db)
{
	struct mry_sigdb_gen *retired = NULL;

	mry_sigdb_ctl_offer(ctl, db, now / 1000000000ULL, &retired);
	mry_engine_tick(eng, now);
	mark();
}

static void tick(uint64_t ns)
{
	now += ns;
	mry_engine_tick(eng, now);
	mark();
}

static void feed(const uint8_t *f, uint32_t len, uint16_t port)
{
	now += 1000000;
	mry_engine_packet(eng, f, len, port, now);
	mark();
}

/* ---- one TCP connection ---------------------------------------------------- */

struct tconn {
	uint8_t cip[4], sip[4];
	uint16_t cport, sport;
	uint32_t cseq, sseq;
};

static struct tconn tc;

static uint32_t mkframe(uint8_t *b, bool from_client, uint32_t seq, uint32_t ack,
			uint8_t flags, const void *payload, uint32_t plen)
{
	static const uint8_t cmac[6] = { 2, 0, 0, 0, 0, 1 }, smac[6] = { 2, 0, 0, 0, 0, 2 };

	return from_client ?
	       pb_tcp4_frame(b, smac, cmac, tc.cip, tc.sip, tc.cport, tc.sport,
			     seq, ack, flags, payload, plen) :
	       pb_tcp4_frame(b, cmac, smac, tc.sip, tc.cip, tc.sport, tc.cport,
			     seq, ack, flags, payload, plen);
}

static void conn(uint16_t cport, uint16_t sport)
{
	memcpy(tc.cip, "\xc0\x00\x02\x01", 4);
	memcpy(tc.sip, "\xc6\x33\x64\x02", 4);
	tc.cport = cport;
	tc.sport = sport;
	tc.cseq = 5000;
	tc.sseq = 9000;
}

static void client_at(uint32_t seq, const char *s, size_t n, uint8_t flags)
{
	uint8_t b[4096];

	feed(b, mkframe(b, true, seq, tc.sseq, flags, s, (uint32_t)n), 0);
}

static void client(const char *s)
{
	size_t n = strlen(s);

	client_at(tc.cseq, s, n, MRY_TCP_ACK | MRY_TCP_PSH);
	tc.cseq += (uint32_t)n;
}

static void server(const char *s)
{
	uint8_t b[4096];
	uint32_t n = (uint32_t)strlen(s);

	feed(b, mkframe(b, false, tc.sseq, tc.cseq, MRY_TCP_ACK | MRY_TCP_PSH, s, n), 1);
	tc.sseq += n;
}

static void ctl_flag(bool from_client, uint8_t flags)
{
	uint8_t b[128];

	feed(b, mkframe(b, from_client, from_client ? tc.cseq : tc.sseq,
			from_client ? tc.sseq : tc.cseq, flags, NULL, 0), from_client ? 0 : 1);
	if ((flags & (MRY_TCP_SYN | MRY_TCP_FIN)) != 0) {
		if (from_client)
			tc.cseq++;
		else
			tc.sseq++;
	}
}

static void handshake(void)
{
	tc.cseq--;
	ctl_flag(true, MRY_TCP_SYN);
	tc.sseq--;
	ctl_flag(false, MRY_TCP_SYN | MRY_TCP_ACK);
	ctl_flag(true, MRY_TCP_ACK);
}

static void envelope(void)
{
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n");
	client("MAIL FROM:<alice@example.org>\r\n");
	server("250 2.1.0 Ok\r\n");
	client("RCPT TO:<bob@example.net>\r\n");
	server("250 2.1.5 Ok\r\n");
	client("DATA\r\n");
	server("354 go ahead\r\n");
}

static const char *const mime_body =
	"Subject: t\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
	"--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
	"--b1\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
	"--b1--\r\n";

static char eicar[80];

static void make_eicar(void)
{
	static const char hex[] =
		"58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d"
		"5354414e444152442d414e544956495255532d544553542d46494c452124482b482a";
	size_t i;

	for (i = 0; i < sizeof(hex) / 2; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		eicar[i] = (char)v;
	}
	eicar[i] = '\0';
}

/* ---- scenarios ------------------------------------------------------------- */

/* A clean MIME message, the close, then the closing deadline. */
static void clean_message(void)
{
	engine_up(DB_GEN1, NULL);
	conn(40000, 25);
	envelope();
	client(mime_body);
	client(".\r\n");
	server("250 2.0.0 queued\r\n");
	client("QUIT\r\n");
	server("221 bye\r\n");
	ctl_flag(true, MRY_TCP_FIN | MRY_TCP_ACK);
	ctl_flag(false, MRY_TCP_FIN | MRY_TCP_ACK);
	client("late\r\n");                         /* after the close */
	tick(3600ULL * MRY_NS_PER_SEC);
	engine_down();
}

/* EICAR: rejected, reply and reset injected, the retransmitted end dropped. */
static void infected_message(void)
{
	char body[256];
	uint32_t end;

	make_eicar();
	engine_up(DB_GEN1, NULL);
	conn(40001, 25);
	envelope();
	snprintf(body, sizeof(body), "Subject: x\r\n\r\n%s\r\n", eicar);
	client(body);
	end = tc.cseq;
	client(".\r\n");
	client_at(end, ".\r\n", 3, MRY_TCP_ACK | MRY_TCP_PSH);
	engine_down();
}

/* Not SMTP, not TCP, not even a whole frame. */
static void other_traffic(void)
{
	uint8_t f[PB_MAX];
	struct pb_spec s;
	uint32_t n;

	engine_up(DB_GEN1, NULL);
	conn(40002, 80);
	handshake();
	s = pb_default(4);
	s.l4proto = 17;
	feed(f, pb_frame(f, &s), 0);
	s = pb_default(4);
	n = pb_frame(f, &s);
	feed(f, 10, 0);                              /* truncated Ethernet */
	feed(f, n - 30, 0);                          /* truncated IP */
	engine_down();
}

/* Data on a flow whose start moray never saw. */
static void midstream(void)
{
	engine_up(DB_GEN1, NULL);
	conn(40003, 25);
	client("MAIL FROM:<a@b>\r\n");
	server("250 ok\r\n");
	client("RCPT TO:<c@d>\r\n");
	server("250 ok\r\n");
	client("DATA\r\n");
	server("354 go\r\n");
	client("Subject: s\r\n\r\nbody\r\n.\r\n");
	engine_down();
}

/* No database: held, then released when one arrives. */
static void hold_release(void)
{
	engine_up(NULL, NULL);
	conn(40004, 25);
	envelope();
	client("Subject: h\r\n\r\nheld\r\n");
	client(".\r\n");
	offer(DB_GEN1);
	engine_down();
}

/* No database: held until the hold timeout. */
static void hold_timeout(void)
{
	engine_up(NULL, NULL);
	conn(40005, 25);
	envelope();
	client("Subject: h\r\n\r\nheld\r\n");
	client(".\r\n");
	/* past the hold timeout and the final-reply deadline: the flow's
	 * deadline passes while it is held (flow.timeout_held), the hold's
	 * timeout ends the message */
	tick(600ULL * MRY_NS_PER_SEC);
	engine_down();
}

static void tiny_store(struct mry_engine_config *cfg)
{
	cfg->hold_store_bytes = 16384;
}

/* No database and a hold store too small for the message. */
static void hold_store_full(void)
{
	static char big[40000];

	engine_up(NULL, tiny_store);
	conn(40006, 25);
	envelope();
	memset(big, 'a', sizeof(big) - 1);
	for (size_t i = 900; i < sizeof(big) - 2; i += 900) {
		big[i] = '\r';
		big[i + 1] = '\n';
	}
	client("Subject: big\r\n\r\n");
	for (int i = 0; i < 30; i++) {
		char chunk[1201];

		memcpy(chunk, big + (i % 4) * 1200, 1200);
		chunk[1200] = '\0';
		client(chunk);
	}
	client("\r\n.\r\n");
	engine_down();
}

static void block_tls(struct mry_engine_config *cfg)
{
	cfg->encrypted = MRY_ENCRYPTED_BLOCK;
}

/* STARTTLS, passed and then blocked by policy. */
static void starttls(void)
{
	for (int blocked = 0; blocked < 2; blocked++) {
		engine_up(DB_GEN1, blocked ? block_tls : NULL);
		conn((uint16_t)(40007 + blocked * 100), 25);
		handshake();
		server("220 srv.example ESMTP\r\n");
		client("EHLO cli.example\r\n");
		server("250-srv.example\r\n250 STARTTLS\r\n");
		client("STARTTLS\r\n");
		server("220 2.0.0 go ahead\r\n");
		client("\x16\x03\x01\x00\x05hello");
		engine_down();
	}
}

static void one_segment_buffer(struct mry_engine_config *cfg)
{
	cfg->reasm.seg_pool_count = 1;
}

/* Reordered, retransmitted, overlapping client segments; an aborted message. */
static void segments(void)
{
	uint32_t at;

	engine_up(DB_GEN1, one_segment_buffer);
	conn(40008, 25);
	envelope();
	at = tc.cseq;
	client_at(at + 10, "0123456789\r\n", 12, MRY_TCP_ACK | MRY_TCP_PSH);   /* ahead */
	client_at(at + 40, "0123456789\r\n", 12, MRY_TCP_ACK | MRY_TCP_PSH);   /* no buffer left */
	client("Subject: s\r\n");
	client_at(at, "Subject: s\r\n", 12, MRY_TCP_ACK | MRY_TCP_PSH);         /* again */
	client_at(at, "Subject: X\r\n", 12, MRY_TCP_ACK | MRY_TCP_PSH);         /* conflict */
	client_at(at + 6, ": s\r\nmore", 9, MRY_TCP_ACK | MRY_TCP_PSH);         /* overlaps */
	tc.cseq = at + 15;
	client("\r\nbody\r\n");
	client("RSET\r\n");
	ctl_flag(true, MRY_TCP_RST);
	engine_down();
}

/* A TCP segment in two IPv4 fragments, reassembled and sent as one frame. */
static void fragments(void)
{
	uint8_t f[PB_MAX], seg[PB_MAX];
	struct pb_spec s;
	uint32_t n, l4;

	engine_up(DB_GEN1, NULL);
	conn(40009, 25);
	s = pb_default(4);
	s.dport = 80;
	s.payload = (const uint8_t *)"EHLO fragmented.example\r\n";
	s.payload_len = 25;
	n = pb_frame(seg, &s);                       /* the whole datagram, to cut */
	l4 = n - 14 - 20;
	/* first fragment: IP header + 24 bytes of TCP, MF */
	memcpy(f, seg, 14 + 20 + 24);
	pb_put16(f + 14 + 2, 20 + 24);
	pb_put16(f + 14 + 6, 0x2000);
	f[14 + 10] = f[14 + 11] = 0;
	pb_put16(f + 14 + 10, pb_fold(pb_sum(f + 14, 20, 0)));
	feed(f, 14 + 20 + 24, 0);
	/* second fragment: the rest at offset 24 */
	memcpy(f, seg, 14 + 20);
	memcpy(f + 34, seg + 34 + 24, l4 - 24);
	pb_put16(f + 14 + 2, (uint16_t)(20 + l4 - 24));
	pb_put16(f + 14 + 6, 24 / 8);
	f[14 + 10] = f[14 + 11] = 0;
	pb_put16(f + 14 + 10, pb_fold(pb_sum(f + 14, 20, 0)));
	feed(f, 14 + 20 + l4 - 24, 0);
	engine_down();
}

static void two_flows(struct mry_engine_config *cfg)
{
	cfg->flow.max_flows = 1;
}

/* A flow table of one: the second connection evicts the first (before DATA). */
static void table_full(void)
{
	engine_up(DB_GEN1, two_flows);
	conn(40010, 25);
	handshake();
	conn(40011, 25);
	handshake();
	client("EHLO x\r\n");
	engine_down();
}


static void ip4_csum(uint8_t *f)
{
	uint32_t ihl = (f[14] & 0x0fu) * 4u;

	f[24] = f[25] = 0;
	if (ihl >= 20)
		pb_put16(f + 24, pb_fold(pb_sum(f + 14, ihl, 0)));
}

/* Sends the IPv4 frame @f (14-byte Ethernet, 20-byte IP) as two fragments, cut @cut bytes into the IP payload. */
static void send_in_two(const uint8_t *f, uint32_t n, uint32_t cut)
{
	uint8_t g[PB_MAX];
	uint32_t l4 = n - 34;

	memcpy(g, f, 34 + cut);
	pb_put16(g + 16, (uint16_t)(20 + cut));
	pb_put16(g + 20, 0x2000);
	ip4_csum(g);
	feed(g, 34 + cut, 0);
	memcpy(g, f, 34);
	memcpy(g + 34, f + 34 + cut, l4 - cut);
	pb_put16(g + 16, (uint16_t)(20 + l4 - cut));
	pb_put16(g + 20, (uint16_t)(cut / 8));
	ip4_csum(g);
	feed(g, 34 + l4 - cut, 0);
}

/* One malformed frame per decode event (a TCP segment to port 25, then broken). */
static void decode_events(void)
{
	static const uint8_t bad_ipopt[4] = { 0x83, 0x01, 0x00, 0x00 };
	static const uint8_t bad_tcpopt[4] = { 0x02, 0x01, 0x00, 0x00 };
	static uint8_t many_ext[8 * 20];
	static const uint8_t hbh_late[16] = { 0, 0, 1, 4, 0, 0, 0, 0,      /* dest opts -> hbh */
					      6, 0, 1, 4, 0, 0, 0, 0 };     /* hbh (not first) */
	static const uint8_t frag6_bad[8] = { 6, 0, 0x00, 0x01, 0, 0, 0, 1 }; /* MF, 5 bytes */
	static const uint8_t hbh_long[8] = { 6, 255, 1, 4, 0, 0, 0, 0 };
	uint8_t f[PB_MAX];
	struct pb_spec s;
	uint32_t n;

	engine_up(DB_GEN1, NULL);
	s = pb_default(4);
	s.payload = (const uint8_t *)"hello\r\n";
	s.payload_len = 7;
	n = pb_frame(f, &s);
	feed(f, 10, 0);                                          /* eth_truncated */
	feed(f, n - 30, 0);                                      /* ipv4_truncated */
	f[14] = 0x55; ip4_csum(f); feed(f, n, 0);                /* ipv4_bad_version */
	n = pb_frame(f, &s);
	f[14] = 0x44; f[32] = 0; f[33] = 25; feed(f, n, 0);      /* ipv4_bad_ihl (ports read there) */
	n = pb_frame(f, &s);
	pb_put16(f + 16, 10); ip4_csum(f); feed(f, n, 0);        /* ipv4_bad_total_len */
	n = pb_frame(f, &s);
	f[24] ^= 0xff; feed(f, n, 0);                            /* ipv4_bad_csum */
	n = pb_frame(f, &s);
	f[34 + 16] ^= 0xff; feed(f, n, 0);                       /* tcp_bad_csum */
	n = pb_frame(f, &s);
	f[34 + 12] = 0x40; feed(f, n, 0);                        /* tcp_bad_hlen */
	n = pb_frame(f, &s);
	pb_put16(f + 16, 20 + 10); ip4_csum(f); feed(f, 14 + 30, 0);   /* tcp_truncated */
	s.trailer = 10;
	feed(f, pb_frame(f, &s), 0);                             /* eth_trailer */
	s.trailer = 0;
	s.ipopt = bad_ipopt;
	s.ipopt_len = 4;
	feed(f, pb_frame(f, &s), 0);                             /* ipv4_opt_invalid */
	s.ipopt = NULL;
	s.ipopt_len = 0;
	s.tcpopt = bad_tcpopt;
	s.tcpopt_len = 4;
	feed(f, pb_frame(f, &s), 0);                             /* tcp_opt_invalid */
	s.tcpopt = NULL;
	s.tcpopt_len = 0;
	s.tcp_flags = MRY_TCP_SYN | MRY_TCP_FIN;
	feed(f, pb_frame(f, &s), 0);                             /* tcp_bad_flags */
	s.tcp_flags = MRY_TCP_ACK;
	s.sport = 0;
	feed(f, pb_frame(f, &s), 0);                             /* tcp_port_zero */
	s.sport = 40000;
	s.v4_frag = 0x2000;                                      /* MF, 27 bytes: not 8k */
	feed(f, pb_frame(f, &s), 0);                             /* ipv4_frag_bad */
	s.v4_frag = 0;
	s.nb_tags = 1;
	s.tpid[0] = 0x8100;
	n = pb_frame(f, &s);
	feed(f, 16, 0);                                          /* vlan_truncated */
	s.nb_tags = 3;
	s.tpid[1] = s.tpid[2] = 0x8100;
	feed(f, pb_frame(f, &s), 0);                             /* vlan_too_deep */
	s.nb_tags = 0;
	s = (struct pb_spec){ 0 };
	s = pb_default(6);
	s.payload = (const uint8_t *)"hello\r\n";
	s.payload_len = 7;
	n = pb_frame(f, &s);
	feed(f, 14 + 20, 0);                                     /* ipv6_truncated */
	f[14] = 0x40; feed(f, n, 0);                             /* ipv6_bad_version */
	n = pb_frame(f, &s);
	pb_put16(f + 18, 0); feed(f, n, 0);                      /* ipv6_bad_payload_len */
	s.ext = hbh_long;
	s.ext_len = 8;
	s.ext_first_nh = 0;
	feed(f, pb_frame(f, &s), 0);                             /* ipv6_exthdr_truncated */
	for (unsigned i = 0; i < 20; i++) {
		many_ext[i * 8] = i + 1 < 20 ? 60 : 6;
		many_ext[i * 8 + 2] = 1;
		many_ext[i * 8 + 3] = 4;
	}
	s.ext = many_ext;
	s.ext_len = sizeof(many_ext);
	s.ext_first_nh = 60;
	feed(f, pb_frame(f, &s), 0);                             /* ipv6_exthdr_too_many */
	s.ext = hbh_late;
	s.ext_len = sizeof(hbh_late);
	s.ext_first_nh = 60;
	feed(f, pb_frame(f, &s), 0);                             /* ipv6_exthdr_bad */
	s.ext = frag6_bad;
	s.ext_len = sizeof(frag6_bad);
	s.ext_first_nh = 44;
	feed(f, pb_frame(f, &s), 0);                             /* ipv6_frag_bad */
	engine_down();
}

/* SMTP anomalies: bad commands, bad replies, odd transactions. */
static void smtp_anomalies(void)
{
	static char longline[1200];

	engine_up(DB_GEN1, NULL);
	conn(40020, 25);
	handshake();
	client("EHLO early\r\n");                                 /* before the greeting */
	server("220 srv.example ESMTP\r\n");
	server("250 unasked\r\n");
	server("hello there\r\n");
	client("EHLO cli\rexample\r\n");
	server("250 ok\r\n");
	client_at(tc.cseq, "NOOP\0x\r\n", 8, MRY_TCP_ACK | MRY_TCP_PSH);
	tc.cseq += 8;
	server("250 ok\r\n");
	client("FROB\r\n");
	server("502 no\r\n");
	memset(longline, 'a', sizeof(longline) - 3);
	memcpy(longline, "NOOP ", 5);
	memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
	client(longline);
	server("500 too long\r\n");
	memset(longline, 'b', 600);
	memcpy(longline, "250 ", 4);
	memcpy(longline + 600, "\r\n", 3);
	server(longline);
	client("MAIL FROM:<a@b>\r\n");
	server("250 ok\r\n");
	client("MAIL FROM:<a@b>\r\n");
	server("503 nested\r\n");
	client("DATA\r\n");
	server("554 no valid recipients\r\n");
	client("RCPT TO:<");
	for (int i = 0; i < 40; i++)
		client("xxxxxxxxxx");
	client("@example.net>\r\n");
	server("250 ok\r\n");
	for (int i = 0; i < 120; i++) {
		client("RCPT TO:<r@example.net>\r\n");
		server("250 ok\r\n");
	}
	client("BDAT many\r\n");
	server("501 bad\r\n");
	client("DATA\r\nSubject: piped\r\n");                      /* before the 354 */
	server("354 go\r\n");
	memset(longline, 'c', sizeof(longline) - 3);
	memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
	client(longline);
	client("\r\n.\r\n");
	server("250 ok\r\n");
	client("MAIL FROM:<a@b>\r\n");
	server("250 ok\r\n");
	client("RCPT TO:<c@d>\r\n");
	server("250 ok\r\n");
	client("BDAT 5\r\nhello");
	server("250 ok\r\n");
	client("DATA\r\n");
	server("503 mixed\r\n");
	client("RSET\r\n");
	server("250 ok\r\n");
	client("STARTTLS\r\n");
	server("220 go ahead\r\n");
	client("EHLO cleartext\r\n");
	engine_down();
}

/* MIME anomalies: one message holding most of them. */
static void mime_anomalies(void)
{
	static char hdr[3000];

	engine_up(DB_GEN1, NULL);
	conn(40030, 25);
	envelope();
	client("Subject: m\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n"
	       "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
	client_at(tc.cseq, "--b1\r\nX-Bad\0: 1\r\n\r\nx\r\n", 21, MRY_TCP_ACK | MRY_TCP_PSH);
	tc.cseq += 21;
	client("--b1\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\nno colon here\r\n\r\nx\r\n"
	       "--b1\r\nContent-Transfer-Encoding: base64\r\n\r\naGVs*bG8=x\r\n"
	       "--b1\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8\r\n"
	       "--b1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nbad =zz and =3d\r\n"
	       "--b1\r\nContent-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n\r\nx\r\n"
	       "--b1\r\nContent-Transfer-Encoding: x-weird\r\n\r\nx\r\n"
	       "--b1\r\nContent-Type: multipart/mixed\r\n\r\nx\r\n"
	       "--b1\r\nContent-Type: multipart/mixed; boundary=\"bad boundary with spaces and "
	       "far too long to be a boundary at all by any reading of RFC 2046 section 5.1.1\"\r\n\r\nx\r\n"
	       "--b1\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f.txt\r\nM!!!\r\nend\r\n"
	       "--b1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	       "U3ViamVjdDogaQ0KDQpoaQ0K\r\n"
	       "--b1\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n"
	       "--b2\r\nContent-Type: text/plain\r\n\r\nno end of b2\r\n");
	memset(hdr, 'h', sizeof(hdr) - 3);
	memcpy(hdr, "--b1\r\nX-Long: ", 14);
	memcpy(hdr + sizeof(hdr) - 3, "\r\n", 3);
	client(hdr);
	client("\r\nbody\r\n");
	client(".\r\n");
	engine_down();
}


static void small_mime(struct mry_engine_config *cfg)
{
	cfg->mime.max_depth = 1;
	cfg->mime.max_parts = 4;
	cfg->mime.max_header_bytes = 512;
	cfg->mime.max_line = 264;
	cfg->mime.max_part_bytes = 16;
	cfg->mime.max_msg_bytes = 24;
	cfg->mime.pool_count = 1;
}

/* MIME caps: depth, parts, header and line lengths, decoded bytes, parsers. */
static void mime_caps(void)
{
	static char hdr[1200], line[600];

	engine_up(DB_GEN1, small_mime);
	conn(40040, 25);
	envelope();
	client("Subject: m\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n");
	client("--b1\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n"
	       "--b2\r\nContent-Type: multipart/mixed; boundary=\"b3\"\r\n\r\n"
	       "--b3\r\n\r\nx\r\n--b3--\r\n--b2--\r\n");
	client("--b1\r\n\r\n0123456789012345678901234567890123456789\r\n");
	memset(line, 'l', sizeof(line) - 3);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	client(line);
	memset(hdr, 'h', sizeof(hdr) - 3);
	memcpy(hdr, "--b1\r\nX-Long: ", 14);
	memcpy(hdr + sizeof(hdr) - 3, "\r\n", 3);
	client(hdr);
	client("\r\nbody\r\n--b1\r\n\r\nx\r\n--b1\r\n\r\nx\r\n--b1\r\n\r\nx\r\n--b1--\r\n");
	/* a second message at once on another connection: no parser left */
	conn(40041, 25);
	envelope();
	client("Subject: second\r\n\r\nbody\r\n");
	engine_down();
}


static void short_deadlines(struct mry_engine_config *cfg)
{
	cfg->flow.max_per_source = 4;
	cfg->reasm.max_ooo_segs = 2;
	cfg->ipfrag.max_datagrams = 2;
	cfg->smtp.max_pending_data = 64;
	cfg->ipfrag.max_bytes = 3000;
}

/* Flow deadlines in every phase, the per-source cap, out-of-order caps, IP fragment troubles. */
static void limits(void)
{
	static char big[2001];
	uint8_t f[PB_MAX];
	struct pb_spec s;
	uint32_t at, n;

	memset(big, 'z', 2000);

	engine_up(DB_GEN1, short_deadlines);
	conn(40050, 25);
	tc.cseq--;
	ctl_flag(true, MRY_TCP_SYN);                            /* stays half-open */
	conn(40051, 25);
	handshake();
	server("220 srv.example ESMTP\r\n");                    /* command phase */
	client("EHLO x\r\n");
	server("250 ok\r\n");
	conn(40052, 25);
	envelope();
	client("Subject: slow\r\n\r\n");                        /* data phase */
	at = tc.cseq;
	client_at(at + 100, "aaaaaa", 6, MRY_TCP_ACK | MRY_TCP_PSH);
	client_at(at + 102, "aaaaaa", 6, MRY_TCP_ACK | MRY_TCP_PSH);         /* overlaps, same */
	client_at(at + 200, "bbbb\r\n", 6, MRY_TCP_ACK | MRY_TCP_PSH);
	client_at(at + 300, "cccc\r\n", 6, MRY_TCP_ACK | MRY_TCP_PSH);       /* over the cap */
	conn(40055, 25);
	handshake();
	client("EHLO x\r\n");                                   /* the greeting was never seen */
	server("250 ok\r\n");
	client("MAIL FROM:<a@b>\r\n");
	server("250 ok\r\n");
	client("RCPT TO:<c@d>\r\n");
	server("250 ok\r\n");
	client("DATA\r\n0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
	server("354 go\r\n");
	client("\r\n.\r\n");
	server("250 ok\r\n");
	{
		/* RCPT and NOOP alternate: 40 distinct runs for a 16-run reply queue */
		char many[20 * 21 + 1];

		for (int i = 0; i < 20; i++)
			memcpy(many + 21 * i, "RCPT TO:<x@y>\r\nNOOP\r\n", 21);
		many[20 * 21] = '\0';
		client("MAIL FROM:<a@b>\r\n");
		client(many);
	}
	conn(40053, 25);
	handshake();                                            /* fifth from one source */
	/* IP fragments: a lone first fragment (times out), a duplicate, a
	 * conflicting overlap, a third datagram over the table, a TCP datagram
	 * too large for one frame, and a UDP datagram reassembled */
	s = pb_default(4);
	s.dport = 80;
	s.payload = (const uint8_t *)big;
	s.payload_len = 1400;
	for (uint16_t id = 1; id <= 4; id++) {
		s.v4_id = id;
		s.v4_frag = 0x2000;
		s.payload_len = 1004;                           /* 1024 bytes of IP payload */
		feed(f, pb_frame(f, &s), 0);
		if (id == 2)
			feed(f, pb_frame(f, &s), 0);                    /* same bytes again */
	}
	s.v4_id = 2;
	s.payload = (const uint8_t *)"different bytes here";
	s.payload_len = 12;
	feed(f, pb_frame(f, &s), 0);                             /* overlaps, differs */
	s.v4_id = 1;
	s.payload = (const uint8_t *)big;
	s.payload_len = 1000;
	s.v4_frag = 4000 / 8;                                   /* past max_bytes */
	s.l4proto = 17;
	feed(f, pb_frame(f, &s), 0);
	tick(60ULL * MRY_NS_PER_SEC);                            /* fragments time out */
	s = pb_default(4);
	s.dport = 80;
	s.v4_id = 9;
	s.payload = (const uint8_t *)big;
	s.payload_len = 1600;
	n = pb_frame(f, &s);
	send_in_two(f, n, 1400);                                 /* over max_frame */
	s.l4proto = 17;
	s.v4_id = 10;
	s.payload_len = 40;
	n = pb_frame(f, &s);
	send_in_two(f, n, 24);                                   /* UDP, reassembled */
	for (int i = 0; i < 12; i++)
		tick(600ULL * MRY_NS_PER_SEC);
	engine_down();
}


static void one_msg(struct mry_engine_config *cfg)
{
	cfg->max_msgs = 1;
	cfg->smtp.envelope_pool_count = 4;   /* the message slot runs out first */
}

/* One message slot, two messages at once: the second is answered 451. */
static void msg_slots(void)
{
	engine_up(DB_GEN1, one_msg);
	conn(40060, 25);
	envelope();
	client("Subject: first\r\n\r\n");
	conn(40061, 25);
	envelope();
	client("Subject: second\r\n\r\n");
	engine_down();
}

static void one_nested(struct mry_engine_config *cfg)
{
	cfg->mime.nested_pool_count = 1;
	cfg->mime.max_preamble = 64;
}

/* An encoded message/rfc822 parsed as a message, a long preamble spilled,
 * and a second encoded message while the only nested parser is taken. */
static void encoded_messages(void)
{
	static const char part[] =
		"--b\r\nContent-Type: message/rfc822\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"U3ViamVjdDogaW5uZXINCg0KaGVsbG8NCg==\r\n";
	static char pre[200];

	engine_up(DB_GEN1, one_nested);
	conn(40070, 25);
	envelope();
	client("Subject: a\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
	memset(pre, 'p', sizeof(pre) - 3);
	memcpy(pre + sizeof(pre) - 3, "\r\n", 3);
	client(pre);
	client(part);
	conn(40071, 25);
	envelope();
	client("Subject: b\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
	client(part);
	engine_down();
}

static void one_smtp_session(struct mry_engine_config *cfg)
{
	cfg->smtp.max_sessions = 1;
}

/* One SMTP session slot, two connections: the second gets no session. */
static void session_slots(void)
{
	engine_up(DB_GEN1, one_smtp_session);
	conn(40070, 25);
	handshake();
	conn(40071, 25);
	handshake();
	engine_down();
}

/* Whether a flow in DATA was evicted, whether a frame found no room at all. */
static void flow_counters_are(bool evicted, bool full)
{
	static struct mry_counters c;

	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.flow.evicted_data != 0, evicted), "evicted_data %llu",
		  (unsigned long long)c.flow.evicted_data);
	cr_assert(eq(u64, c.flow.table_full != 0, full), "table_full %llu",
		  (unsigned long long)c.flow.table_full);
}

static void two_flows_each(struct mry_engine_config *cfg)
{
	cfg->flow.max_flows = 2;
}

/*
 * A table of two flows, both with a message in progress, and one more SYN
 * (each from its own address, so no per-source cap applies): whatever the
 * eviction order, no flow before DATA is left to take, so one in DATA goes.
 */
static void evict_data(void)
{
	engine_up(DB_GEN1, two_flows_each);
	for (uint8_t i = 0; i < 2; i++) {
		conn((uint16_t)(40080 + i), 25);
		tc.cip[3] = (uint8_t)(10 + i);
		envelope();
		client("Subject: in progress\r\n\r\nbody\r\n");
	}
	conn(40082, 25);
	tc.cip[3] = 12;
	handshake();
	flow_counters_are(true, false);
	engine_down();
}

/*
 * No database: two messages end and are held, filling a table of two (a
 * held flow is never evicted: its message waits for a verdict). One more
 * SYN finds no room at all.
 */
static void table_of_held(void)
{
	engine_up(NULL, two_flows_each);
	for (uint8_t i = 0; i < 2; i++) {
		conn((uint16_t)(40090 + i), 25);
		tc.cip[3] = (uint8_t)(20 + i);
		envelope();
		client("Subject: held\r\n\r\nbody\r\n.\r\n");
	}
	conn(40092, 25);
	tc.cip[3] = 22;
	handshake();
	flow_counters_are(false, true);
	engine_down();
}

static void one_half_open(struct mry_engine_config *cfg)
{
	cfg->flow.max_half_open = 1;
}

/* A half-open budget of one: the second SYN evicts the first half-open flow. */
static void half_open_budget(void)
{
	engine_up(DB_GEN1, one_half_open);
	conn(40110, 25);
	tc.cseq--;
	ctl_flag(true, MRY_TCP_SYN);
	conn(40111, 25);
	tc.cseq--;
	ctl_flag(true, MRY_TCP_SYN);
	engine_down();
}

/*
 * A table of two flows with messages moving slower than the minimum data
 * rate (a few bytes in 6 s, past the 5 s grace) and one more SYN: a slow
 * DATA flow is the one evicted.
 */
static void evict_slow_data(void)
{
	engine_up(DB_GEN1, two_flows_each);
	for (uint8_t i = 0; i < 2; i++) {
		conn((uint16_t)(40120 + i), 25);
		tc.cip[3] = (uint8_t)(30 + i);
		envelope();
		client("Subject: slow\r\n\r\nb\r\n");
	}
	now += 6 * MRY_NS_PER_SEC;
	conn(40122, 25);
	tc.cip[3] = 32;
	handshake();
	engine_down();
}

static void four_msgs(struct mry_engine_config *cfg)
{
	cfg->max_msgs = 4;
}

/*
 * Every message slot taken (4 of 4, in a table of 64 flows): emergency
 * mode on at the next tick, armed deadlines cut; the messages end and it
 * is off again below the low mark.
 */
static void emergency(void)
{
	struct tconn c[4];

	engine_up(DB_GEN1, four_msgs);
	for (uint8_t i = 0; i < 4; i++) {
		conn((uint16_t)(40130 + i), 25);
		tc.cip[3] = (uint8_t)(40 + i);
		envelope();
		client("Subject: e\r\n\r\nbody\r\n");
		c[i] = tc;
	}
	tick(1000);
	for (uint8_t i = 0; i < 3; i++) {
		tc = c[i];
		client(".\r\n");
		server("250 2.0.0 queued\r\n");
	}
	tick(1000);
	engine_down();
}

/*
 * A blocklist arrives while a session of a listed source is open: the
 * sweep at the next tick sheds it, its late frames are dropped.
 */
static void blocked(void)
{
	static const char *const prefixes[] = { "192.0.2.0/24" };
	struct mry_blocklist *bl;
	char err[128];

	engine_up(DB_GEN1, NULL);
	conn(40140, 25);
	envelope();
	bl = mry_blocklist_from_strings(mry_alloc_default(), prefixes, 1, err, sizeof(err));
	cr_assert_not_null(bl, "%s", err);
	mry_engine_set_blocklist(eng, bl);
	tick(1000);
	client("late\r\n");
	engine_down();
	mry_blocklist_free(bl);
}

static void tls_cleartext_counted(void)
{
	static struct mry_counters c;

	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.smtp.anomalies[MRY_SMTP_AN_DATA_AFTER_TLS], 1));
}

/*
 * After STARTTLS a client speaks TLS first (a handshake record, 0x16):
 * cleartext instead, once after the server's 220 and once pipelined
 * before it (RFC 3207 §4 forbids both).
 */
static void cleartext_after_starttls(void)
{
	engine_up(DB_GEN1, NULL);
	conn(40100, 25);
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250 STARTTLS\r\n");
	client("STARTTLS\r\n");
	server("220 2.0.0 go ahead\r\n");
	client("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	tls_cleartext_counted();
	engine_down();
	engine_up(DB_GEN1, NULL);
	conn(40101, 25);
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250 STARTTLS\r\n");
	client("STARTTLS\r\nMAIL FROM:<a@b>\r\n");
	server("220 2.0.0 go ahead\r\n");
	tls_cleartext_counted();
	engine_down();
}

/* Ends of data some server would honour (SMTP smuggling), and a stop with
 * a message in DATA. */
static void smuggling_and_stop(void)
{
	engine_up(DB_GEN1, NULL);
	conn(40080, 25);
	envelope();
	client("Subject: lf\r\n\r\nhello\n.\r\nMAIL FROM:<x@y.example>\r\n.\r\n");
	conn(40081, 25);
	envelope();
	client("Subject: cr\r\n\r\nhello\r\n.\rX\r\n.\r\n");
	conn(40082, 25);
	envelope();
	client("Subject: stop\r\n\r\nbody, no end yet\r\n");
	mry_engine_shutdown(eng, now);
	engine_down();
}

/* The client's end of data; returns what the engine does with that frame. */
static enum mry_pkt_verdict end_of_data(void)
{
	enum mry_pkt_verdict v;
	uint8_t b[256];

	now += 1000000;
	v = mry_engine_packet(eng, b, mkframe(b, true, tc.cseq, tc.sseq,
					      MRY_TCP_ACK | MRY_TCP_PSH, ".\r\n", 3), 0, now);
	tc.cseq += 3;
	mark();
	return v;
}

/*
 * One message whose body Hyperscan refuses to scan (@body, on connection
 * @cport), or whose streams it refuses to open (@refuse_open). Returns what
 * the engine did with its end of data; replied_451, msg_event and scan_log
 * say the rest.
 */
static enum mry_pkt_verdict hs_refuses(uint16_t cport, const char *body, bool refuse_open)
{
	replied_451 = false;
	msg_event[0] = scan_log[0] = '\0';
	mry_log_set_handler(on_log, NULL);
	engine_up(DB_GEN1, NULL);
	conn(cport, 25);
	hs_fail_open = refuse_open;
	envelope();
	client("Subject: x\r\n\r\n");
	hs_fail_scan = !refuse_open;
	client(body);
	hs_fail_scan = hs_fail_open = false;
	return end_of_data();
}

static void hs_error(void)
{
	hs_refuses(40090, "hello\r\n", false);
	engine_down();
	mry_log_set_handler(NULL, NULL);
}

static void assert_not_passed(enum mry_pkt_verdict end, const char *log_line)
{
	struct mry_counters c;

	mry_engine_counters(eng, &c);
	/* the end of the message never reaches the server; the client retries */
	cr_assert(eq(int, end, MRY_PKT_DROP));
	cr_assert(replied_451);
	cr_assert(eq(u64, c.engine.msgs_tempfail, 1));
	cr_assert(eq(u64, c.engine.msgs_clean + c.engine.msgs_infected, 0));
	cr_assert(ge(u64, c.scan.hs_errors, 1));
	cr_assert(not(eq(ptr, strstr(msg_event, "\"verdict\":\"tempfail\""), NULL)), "%s", msg_event);
	cr_assert(not(eq(ptr, strstr(msg_event, "\"action\":\"tempfailed\""), NULL)), "%s", msg_event);
	cr_assert(not(eq(ptr, strstr(scan_log, log_line), NULL)), "log: %s", scan_log);
	engine_down();
	mry_log_set_handler(NULL, NULL);
}

Test(counters, a_message_hyperscan_cannot_scan_does_not_pass)
{
	char body[256];

	defs = mry_counters_engine_table(&nb_defs);
	assert_not_passed(hs_refuses(40091, "hello\r\n", false),
			  "message 0 from 192.0.2.1:40091 could not be scanned and will not pass");
	/* EICAR in the bytes Hyperscan refused: not known infected, not clean */
	make_eicar();
	snprintf(body, sizeof(body), "%s\r\n", eicar);
	assert_not_passed(hs_refuses(40092, body, false),
			  "message 0 from 192.0.2.1:40092 could not be scanned and will not pass");
	/* Hyperscan refuses the message's streams when its data begins */
	assert_not_passed(hs_refuses(40093, "hello\r\n", true),
			  "message 0 from 192.0.2.1:40093 could not be scanned and will not pass");
}

/*
 * The deadlines the SMTP exchange arms: a server that never greets, a DATA
 * never answered 354, a trickle below --min-data-rate in DATA, a message
 * whose final reply never comes.
 */
static void deadlines(void)
{
	int i;

	engine_up(DB_GEN1, NULL);
	conn(40110, 25);
	handshake();                                    /* no greeting ever */
	conn(40111, 25);
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	conn(40113, 25);
	envelope();
	client("Subject: no reply\r\n\r\nhello\r\n.\r\n");
	conn(40112, 25);
	envelope();
	client("Subject: trickle\r\n\r\n");
	for (i = 0; i < 16; i++) {                      /* 1 byte per 10 s */
		tick(10 * MRY_NS_PER_SEC);
		client("x");
	}
	for (i = 0; i < 4; i++)
		tick(10 * MRY_NS_PER_SEC);
	tick(300 * MRY_NS_PER_SEC);
	tick(300 * MRY_NS_PER_SEC);
	engine_down();
}

static void reclaim_msg_tune(struct mry_engine_config *cfg)
{
	cfg->max_msgs = 1;
	cfg->smtp.envelope_pool_count = 4;
}

static void reclaim_env_tune(struct mry_engine_config *cfg)
{
	cfg->smtp.envelope_pool_count = 1;
}

/*
 * Pools a flood empties: a slow DATA flow gives its message slot to a new
 * message; a connection idle after MAIL gives its envelope; a MAIL that
 * finds none (the holder is moving) has its message refused, not logged
 * with an empty envelope.
 */
static void pool_reclaim(void)
{
	engine_up(DB_GEN1, reclaim_msg_tune);
	conn(40120, 25);
	envelope();
	client("Subject: slow\r\n");
	tick(30 * MRY_NS_PER_SEC);
	conn(40121, 25);
	envelope();                              /* msg_slot_reclaimed */
	engine_down();

	engine_up(DB_GEN1, reclaim_env_tune);
	conn(40122, 25);
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("MAIL FROM:<a@b>\r\n");
	server("250 2.1.0 Ok\r\n");
	tick(20 * MRY_NS_PER_SEC);
	conn(40123, 25);
	envelope();                              /* env_slot_reclaimed */
	conn(40124, 25);
	envelope();                              /* msg_no_envelope */
	engine_down();
}

/* Counters no scenario here reaches yet (see the file comment). */
static const char *const not_yet_reached[] = {
	/* empty: every counter of the table has a scenario above */
	NULL,
};

static bool listed(const char *group, const char *name)
{
	char full[128];

	snprintf(full, sizeof(full), "%s.%s", group, name);
	for (size_t i = 0; not_yet_reached[i] != NULL; i++)
		if (strcmp(not_yet_reached[i], full) == 0)
			return true;
	return false;
}

Test(counters, every_counter_in_the_table_moves, .timeout = 120)
{
	char missing[8192] = "", stale[2048] = "";
	size_t i;
	unsigned j, nb_missing = 0, nb_stale = 0;

	defs = mry_counters_engine_table(&nb_defs);
	cr_assert(le(sz, nb_defs, MAX_ROWS));
	clean_message();
	infected_message();
	other_traffic();
	midstream();
	hold_release();
	hold_timeout();
	hold_store_full();
	starttls();
	segments();
	fragments();
	table_full();
	decode_events();
	smtp_anomalies();
	mime_anomalies();
	mime_caps();
	limits();
	msg_slots();
	encoded_messages();
	smuggling_and_stop();
	session_slots();
	evict_data();
	table_of_held();
	cleartext_after_starttls();
	hs_error();
	deadlines();
	half_open_budget();
	evict_slow_data();
	emergency();
	blocked();
	pool_reclaim();
	for (i = 0; i < nb_defs; i++) {
		cr_assert(le(u32, defs[i].nb, 64));
		for (j = 0; j < defs[i].nb; j++) {
			const char *name = defs[i].nb == 1 && defs[i].name != NULL ?
					   defs[i].name : defs[i].elem_name(j);
			char *buf = moved[i][j] ? stale : missing;
			size_t cap = moved[i][j] ? sizeof(stale) : sizeof(missing);

			if (moved[i][j] != listed(defs[i].group, name))
				continue;
			snprintf(buf + strlen(buf), cap - strlen(buf), " %s.%s", defs[i].group, name);
			if (moved[i][j])
				nb_stale++;
			else
				nb_missing++;
		}
	}
	cr_expect(eq(u32, nb_stale, 0), "listed as not reached, but moved (take them off): %s",
		  stale);
	cr_assert(eq(u32, nb_missing, 0), "%u counters no scenario moved:%s", nb_missing, missing);
}

/* The writers: JSON names every counter once, Prometheus has HELP/TYPE per metric. */
Test(counters, writers_cover_the_table)
{
	static struct mry_counters c;
	struct mry_counter_src src = { .base = &c, .stride = sizeof(c), .nb = 1 };
	char *buf = NULL;
	size_t len = 0, nb, i, rows = 0;
	FILE *f;

	defs = mry_counters_engine_table(&nb);
	for (i = 0; i < nb; i++)
		rows += defs[i].nb;
	c.engine.pkts = 7;
	c.flow.timeouts[MRY_FLOW_PHASE_DATA] = 3;
	f = open_memstream(&buf, &len);
	cr_assert_not_null(f);
	cr_assert(eq(int, mry_counters_write_prom(f, defs, nb, &src, 1), 0));
	fclose(f);
	cr_assert_not_null(strstr(buf, "# HELP moray_engine_pkts_total Frames handed to the engine\n"
				       "# TYPE moray_engine_pkts_total counter\n"
				       "moray_engine_pkts_total 7\n"));
	cr_assert_not_null(strstr(buf, "moray_flow_timeout_data_total 3\n"));
	cr_assert_not_null(strstr(buf, "# TYPE moray_engine_hold_msgs gauge\nmoray_engine_hold_msgs 0\n"));
	{
		size_t types = 0;

		for (char *p = buf; (p = strstr(p, "# TYPE ")) != NULL; p++)
			types++;
		cr_assert(eq(sz, types, rows));
	}
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	cr_assert(eq(int, mry_counters_write_json(f, defs, nb, &src, 1), 0));
	fclose(f);
	cr_assert(eq(int, strncmp(buf, "{\"engine\":{\"pkts\":7,", 20), 0), "%s", buf);
	cr_assert_not_null(strstr(buf, "\"flow\":{\"created\":0,"));
	free(buf);
}
