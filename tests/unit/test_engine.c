/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Engine: the verdict logic end to end on crafted frames. What reaches the
 * server (frame verdicts and emitted frames), what the client is told, and
 * the verdict-log events: clean, infected, held then released or rejected,
 * hold timeout, hold store full, shutdown, a generation change in the middle
 * of a message, withholding against retransmissions in other segmentation.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "moray/counters.h"
#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/flow.h"

#include "pkt_build.h"
#include "moray/sigdb.h"

#ifndef MORAY_BUILDDIR
#define MORAY_BUILDDIR "build"
#endif
#define DB_GEN1 MORAY_BUILDDIR "/tests/unit/db-gen1.mdb"
#define DB_GEN2 MORAY_BUILDDIR "/tests/unit/db-gen2.mdb"

#define MAX_EMIT 64
#define MAX_EVENTS 64

struct emitted {
	enum mry_emit_dir dir;
	uint32_t len;
	uint8_t frame[2048];
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
	cr_assert(le(u32, len, 2048));
	emits[nb_emits].dir = dir;
	emits[nb_emits].len = len;
	memcpy(emits[nb_emits].frame, frame, len);
	nb_emits++;
}

static void on_event(void *ctx, const char *json, size_t len)
{
	(void)ctx;
	cr_assert(lt(u32, nb_events, MAX_EVENTS));
	events[nb_events] = strndup(json, len);
	nb_events++;
}

static struct mry_engine *eng;
static struct mry_sigdb_ctl *ctl;
static uint64_t now;

struct tconn {
	uint8_t cmac[6], smac[6];
	uint8_t cip[4], sip[4];
	uint16_t cport, sport;
	uint32_t cseq, sseq;       /* next sequence number each side sends */
	uint32_t cisn;
};

static struct tconn tc;

static uint32_t mkframe(uint8_t *b, bool from_client, uint32_t seq, uint32_t ack,
			uint8_t flags, const void *payload, uint32_t plen)
{
	return from_client ?
	       pb_tcp4_frame(b, tc.smac, tc.cmac, tc.cip, tc.sip, tc.cport, tc.sport,
			     seq, ack, flags, payload, plen) :
	       pb_tcp4_frame(b, tc.cmac, tc.smac, tc.sip, tc.cip, tc.sport, tc.cport,
			     seq, ack, flags, payload, plen);
}

static uint8_t last_frame[4096];
static uint32_t last_len;

/* client sends @s at an explicit sequence number (retransmissions) */
static enum mry_pkt_verdict client_at(uint32_t seq, const char *s, size_t n)
{
	last_len = mkframe(last_frame, true, seq, tc.sseq, MRY_TCP_ACK | MRY_TCP_PSH, s,
			   (uint32_t)n);
	now += 1000000;
	return mry_engine_packet(eng, last_frame, last_len, 0, now);
}

static enum mry_pkt_verdict client(const char *s)
{
	size_t n = strlen(s);
	enum mry_pkt_verdict v = client_at(tc.cseq, s, n);

	tc.cseq += (uint32_t)n;
	return v;
}

static enum mry_pkt_verdict server(const char *s)
{
	uint8_t b[2048];
	uint32_t n = (uint32_t)strlen(s);
	uint32_t len = mkframe(b, false, tc.sseq, tc.cseq, MRY_TCP_ACK | MRY_TCP_PSH, s, n);

	tc.sseq += n;
	now += 1000000;
	return mry_engine_packet(eng, b, len, 1, now);
}

static void handshake(void)
{
	uint8_t b[128];
	uint32_t len;

	len = mkframe(b, true, tc.cisn, 0, MRY_TCP_SYN, NULL, 0);
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_FORWARD));
	len = mkframe(b, false, tc.sseq - 1, tc.cseq, MRY_TCP_SYN | MRY_TCP_ACK, NULL, 0);
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 1, now), MRY_PKT_FORWARD));
	len = mkframe(b, true, tc.cseq, tc.sseq, MRY_TCP_ACK, NULL, 0);
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_FORWARD));
}

/* everything up to and including the 354 */
static void envelope(void)
{
	handshake();
	cr_assert(eq(int, server("220 srv.example ESMTP\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("EHLO cli.example\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server("250-srv.example\r\n250 PIPELINING\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("MAIL FROM:<alice@example.org>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server("250 2.1.0 Ok\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("RCPT TO:<bob@example.net>\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server("250 2.1.5 Ok\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("DATA\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server("354 End data with <CR><LF>.<CR><LF>\r\n"), MRY_PKT_FORWARD));
}

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

static enum mry_encrypted_policy tls_policy = MRY_ENCRYPTED_PASS;
static void (*cfg_tune)(struct mry_engine_config *cfg);   /* a test's own limits */
static void teardown(void);

/*
 * Criterion runs the suite's .init before a test's own .init (and one
 * .fini): a second setup replaces the first one's engine.
 */
static void setup_with(const char *db, uint64_t store)
{
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl_config cc = { 0 };
	struct mry_engine_io io = { .emit = on_emit, .event = on_event };
	struct mry_sigdb_gen *retired = NULL;

	if (eng != NULL)
		teardown();
	mry_engine_config_defaults(&cfg);
	cfg.flow.max_flows = 64;
	cfg.max_msgs = 16;
	cfg.hold_store_bytes = store;
	cfg.encrypted = tls_policy;
	cfg.decode_flags |= MRY_DECODE_F_VERIFY_TCP_CSUM;
	if (cfg_tune != NULL)
		cfg_tune(&cfg);
	now = 1700000000ULL * 1000000000ULL;
	ctl = mry_sigdb_ctl_create(&cc);
	cr_assert_not_null(ctl);
	if (db != NULL) {
		cr_assert(eq(int, mry_sigdb_ctl_offer(ctl, db, now / 1000000000ULL, &retired),
			     MRY_SIGDB_OK), "test database %s must exist (built by meson)", db);
	} else {
		mry_sigdb_ctl_offer(ctl, NULL, now / 1000000000ULL, &retired);
	}
	eng = mry_engine_create(mry_alloc_default(), &cfg, ctl, &io, NULL);
	cr_assert_not_null(eng);
	memcpy(tc.cmac, "\x02\x00\x00\x00\x00\x01", 6);
	memcpy(tc.smac, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(tc.cip, "\xc0\x00\x02\x01", 4);
	memcpy(tc.sip, "\xc6\x33\x64\x02", 4);
	tc.cport = 40000;
	tc.sport = 25;
	tc.cisn = 0xfffffff0u;     /* the client stream wraps during the session */
	tc.cseq = tc.cisn + 1;
	tc.sseq = 1000;
	make_eicar();
	nb_emits = 0;
	nb_events = 0;
}

static void setup(void)
{
	setup_with(DB_GEN1, 1 << 20);
}

static void setup_nodb(void)
{
	setup_with(NULL, 1 << 20);
}

static void teardown(void)
{
	unsigned i;

	mry_engine_destroy(eng, now);
	mry_sigdb_ctl_destroy(ctl);
	eng = NULL;
	ctl = NULL;
	for (i = 0; i < nb_events; i++)
		free(events[i]);
	nb_events = 0;
}

static const char *find_event(const char *needle)
{
	unsigned i;

	for (i = 0; i < nb_events; i++)
		if (strstr(events[i], needle) != NULL)
			return events[i];
	return NULL;
}

static void offer(const char *db)
{
	struct mry_sigdb_gen *retired = NULL;

	mry_sigdb_ctl_offer(ctl, db, now / 1000000000ULL, &retired);
	if (retired != NULL)
		mry_sigdb_gen_unref(retired);
}

static uint32_t tcp_seq_of(const struct emitted *em)
{
	uint32_t v;

	memcpy(&v, em->frame + 14 + 20 + 4, 4);
	return ntohl(v);
}

static uint8_t tcp_flags_of(const struct emitted *em)
{
	return em->frame[14 + 20 + 13];
}

static const char *payload_of(const struct emitted *em)
{
	return (const char *)em->frame + 54;
}

static bool checksums_ok(const struct emitted *em)
{
	const uint8_t *ip = em->frame + 14;
	uint32_t tl = ((uint32_t)ip[2] << 8) | ip[3];

	return mry_csum_fold(mry_csum_partial(ip, 20, 0)) == 0 &&
	       mry_tcp_csum(4, ip + 12, ip + 16, ip + 20, tl - 20) == 0;
}

TestSuite(engine, .init = setup, .fini = teardown);

Test(engine, clean_message_is_forwarded_and_logged)
{
	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n.\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, server("250 2.0.0 Ok: queued\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(u32, nb_emits, 0));
	const char *ev = find_event("\"event\":\"message\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"verdict\":\"clean\""));
	cr_assert_not_null(strstr(ev, "\"action\":\"forwarded\""));
	cr_assert_not_null(strstr(ev, "\"mail_from\":\"alice@example.org\""));
	cr_assert_not_null(strstr(ev, "\"rcpt_to\":[\"bob@example.net\"]"));
	cr_assert_not_null(strstr(ev, "\"size\":22"));
	cr_assert_not_null(strstr(ev, "\"src\":\"192.0.2.1\""));
	cr_assert_not_null(strstr(ev, "\"dport\":25"));
}

Test(engine, infected_end_is_withheld_client_told_server_reset)
{
	char body[256];

	envelope();
	snprintf(body, sizeof(body), "Subject: x\r\n\r\n%s\r\n", eicar);
	cr_assert(eq(int, client(body), MRY_PKT_FORWARD));
	uint32_t dot_seq = tc.cseq;
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));
	cr_assert(eq(u32, nb_emits, 3));
	/* 554 to the client, then FIN, then RST to the server at the '.' */
	cr_assert(eq(int, emits[0].dir, MRY_EMIT_TO_CLIENT));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "554 5.7.1 ", 10), 0));
	cr_assert(checksums_ok(&emits[0]));
	cr_assert(eq(u32, tcp_seq_of(&emits[0]), tc.sseq));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[1]) & MRY_TCP_FIN), 0));
	cr_assert(eq(int, emits[2].dir, MRY_EMIT_TO_SERVER));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[2]) & MRY_TCP_RST), 0));
	cr_assert(eq(u32, tcp_seq_of(&emits[2]), dot_seq));
	cr_assert(checksums_ok(&emits[2]));
	/* a retransmission of the end never gets through */
	cr_assert(eq(int, client_at(dot_seq, ".\r\n", 3), MRY_PKT_DROP));
	const char *ev = find_event("\"verdict\":\"infected\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"action\":\"rejected\""));
	cr_assert_not_null(strstr(ev, "\"signatures\":[{\"id\":"));
}

Test(engine, end_split_across_segments_is_withheld_where_the_dot_is)
{
	char body[256];

	envelope();
	snprintf(body, sizeof(body), "Subject: x\r\n\r\n%s\r\n", eicar);
	/*
	 * A lone '.' may still be a dot-stuffed line: it passes, and the server
	 * cannot end the message without the LF, which is withheld. The RST
	 * then sits exactly after the forwarded '.', where the server expects.
	 */
	cr_assert(eq(int, client(body), MRY_PKT_FORWARD));
	uint32_t dot_seq = tc.cseq;
	cr_assert(eq(int, client("."), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("\r\n"), MRY_PKT_DROP));
	cr_assert_not_null(find_event("\"verdict\":\"infected\""));
	cr_assert(eq(u32, nb_emits, 3));
	cr_assert(eq(u32, tcp_seq_of(&emits[2]), dot_seq + 1));
}

Test(engine, non_smtp_traffic_takes_the_short_path)
{
	uint8_t b[128];
	struct mry_engine_stats st;
	uint32_t len;

	tc.sport = 80;
	len = mkframe(b, true, 1, 1, MRY_TCP_ACK | MRY_TCP_PSH, "GET / HTTP/1.0\r\n", 16);
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_FORWARD));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.pkts_non_smtp, 1));
}

/* Inserts @nb 802.1Q tags after the MAC addresses of frame @b (length @len). */
static uint32_t add_vlan_tags(uint8_t *b, uint32_t len, unsigned nb)
{
	memmove(b + 12 + 4 * nb, b + 12, len - 12);
	for (unsigned i = 0; i < nb; i++) {
		b[12 + 4 * i] = 0x81;
		b[13 + 4 * i] = 0x00;
		b[14 + 4 * i] = 0x00;
		b[15 + 4 * i] = (uint8_t)(10 + i);      /* VLAN id */
	}
	return len + 4 * nb;
}

/*
 * A third VLAN tag is more than the decoder takes: the frame must not be
 * forwarded on the non-SMTP shortcut, or a message (here its infected body
 * and its end) would reach the server unscanned behind the extra tag.
 */
Test(engine, smtp_behind_a_third_vlan_tag_is_not_forwarded_unscanned)
{
	static struct mry_counters c;
	char body[256];
	uint8_t b[512];
	uint32_t len;

	envelope();
	snprintf(body, sizeof(body), "Subject: x\r\n\r\n%s\r\n.\r\n", eicar);
	len = mkframe(b, true, tc.cseq, tc.sseq, MRY_TCP_ACK | MRY_TCP_PSH, body,
		      (uint32_t)strlen(body));
	len = add_vlan_tags(b, len, 3);
	now += 1000000;
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_DROP));
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.decode.ev[MRY_DEV_VLAN_TOO_DEEP], 1));
	cr_assert(eq(u64, c.engine.drop_invalid, 1));
	cr_assert(eq(u64, c.engine.pkts_non_smtp, 0));
	cr_assert(eq(u64, c.engine.pkts_dropped, 1));
	cr_assert_null(find_event("\"action\":\"forwarded\""));
	/* the same bytes behind two tags are read as SMTP and judged */
	len = mkframe(b, true, tc.cseq, tc.sseq, MRY_TCP_ACK | MRY_TCP_PSH, body,
		      (uint32_t)strlen(body));
	len = add_vlan_tags(b, len, 2);
	now += 1000000;
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_DROP));
	cr_assert_not_null(find_event("\"verdict\":\"infected\""));
}

Test(engine, malformed_frame_is_dropped_and_counted)
{
	uint8_t b[128];
	struct mry_engine_stats st;
	uint32_t len = mkframe(b, true, 1, 1, MRY_TCP_ACK, "x", 1);

	b[14 + 20 + 16] ^= 0xff;  /* TCP checksum */
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 0, now), MRY_PKT_DROP));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.drop_invalid, 1));
}

Test(engine, midstream_smtp_data_is_reset_not_passed)
{
	struct mry_engine_stats st;

	cr_assert(eq(int, client("Subject: no handshake seen\r\n"), MRY_PKT_DROP));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.midstream_resets, 1));
	cr_assert(eq(u32, nb_emits, 2));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[0]) & MRY_TCP_RST), 0));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[1]) & MRY_TCP_RST), 0));
}

Test(engine, message_started_on_a_generation_finishes_on_it)
{
	char path[] = "/tmp/moray-test-bad-XXXXXX";
	int fd = mkstemp(path);

	cr_assert(ge(int, fd, 0));
	cr_assert(eq(int, (int)write(fd, "garbage", 7), 7));
	close(fd);
	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nfirst half\r\n"), MRY_PKT_FORWARD));
	offer(path);   /* a bad candidate: the state turns invalid */
	cr_assert(eq(int, mry_sigdb_ctl_state(ctl), MRY_DB_INVALID));
	cr_assert(eq(int, client("second half\r\n.\r\n"), MRY_PKT_FORWARD));
	/* a forwarded message is logged with the server's answer to its end */
	cr_assert_null(find_event("\"verdict\":\"clean\""));
	server("250 2.0.0 Ok\r\n");
	cr_assert_not_null(find_event("\"verdict\":\"clean\""));
	cr_assert_not_null(find_event("\"server_reply\":250"));
	cr_assert_not_null(find_event("\"generation\":1"));
	unlink(path);
}

Test(engine, held_message_released_byte_identical_when_valid_db_arrives, .init = setup_nodb)
{
	uint8_t eom[4096];
	uint32_t eom_len, dot_seq;

	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n"), MRY_PKT_FORWARD));
	dot_seq = tc.cseq;
	cr_assert(eq(int, client(".\r\nQUIT\r\n"), MRY_PKT_DROP));
	memcpy(eom, last_frame, last_len);
	eom_len = last_len;
	cr_assert_not_null(find_event("\"action\":\"held\""));
	/* retransmissions of withheld bytes, segmented otherwise, are absorbed */
	cr_assert(eq(int, client_at(dot_seq, ".", 1), MRY_PKT_DROP));
	cr_assert(eq(int, client_at(dot_seq - 2, "\r\n.\r\n", 5), MRY_PKT_DROP));
	mry_engine_tick(eng, now);
	cr_assert(eq(u32, nb_emits, 0));
	offer(DB_GEN1);
	mry_engine_tick(eng, now);
	cr_assert(eq(u32, nb_emits, 1));
	cr_assert(eq(int, emits[0].dir, MRY_EMIT_TO_SERVER));
	cr_assert(eq(u32, emits[0].len, eom_len));
	cr_assert(eq(int, memcmp(emits[0].frame, eom, eom_len), 0));
	server("250 2.0.0 Ok\r\n");
	const char *ev = find_event("\"action\":\"released\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"verdict\":\"clean\""));
	/* afterwards retransmissions pass */
	cr_assert(eq(int, client_at(dot_seq, ".\r\nQUIT\r\n", 9), MRY_PKT_FORWARD));
}

Test(engine, held_infected_message_is_rejected_on_release, .init = setup_nodb)
{
	char body[256];

	envelope();
	snprintf(body, sizeof(body), "Subject: x\r\n\r\n%s\r\n", eicar);
	cr_assert(eq(int, client(body), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));
	offer(DB_GEN1);
	mry_engine_tick(eng, now);
	cr_assert(eq(u32, nb_emits, 3));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "554 5.7.1 ", 10), 0));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[2]) & MRY_TCP_RST), 0));
	const char *ev = find_event("\"verdict\":\"infected\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"action\":\"rejected\""));
}

Test(engine, hold_timeout_tempfails_the_client, .init = setup_nodb)
{
	struct mry_engine_stats st;

	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n.\r\n"), MRY_PKT_DROP));
	now += 239ULL * 1000000000ULL;
	mry_engine_tick(eng, now);
	cr_assert(eq(u32, nb_emits, 0));
	now += 2ULL * 1000000000ULL;
	mry_engine_tick(eng, now);
	cr_assert(eq(u32, nb_emits, 3));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "451 4.7.1 ", 10), 0));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.hold_timeouts, 1));
	cr_assert(eq(u32, st.hold_msgs, 0));
	cr_assert_not_null(find_event("\"action\":\"tempfailed\""));
}

static void setup_tiny_store(void)
{
	setup_with(NULL, 16384);
}

Test(engine, hold_store_full_tempfails_at_once, .init = setup_tiny_store)
{
	static char line[1001];
	struct mry_engine_stats st;

	memset(line, 'a', sizeof(line) - 3);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	envelope();
	/* 40 kB: more than the 16 kB store */
	for (int i = 0; i < 40; i++)
		cr_assert(eq(int, client(line), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));
	cr_assert(eq(u32, nb_emits, 3));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "451 4.7.1 ", 10), 0));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.hold_store_full, 1));
	cr_assert(eq(u64, st.hold_bytes, 0));
}

Test(engine, shutdown_answers_held_messages_451, .init = setup_nodb)
{
	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n.\r\n"), MRY_PKT_DROP));
	mry_engine_shutdown(eng, now);
	cr_assert(eq(u32, nb_emits, 3));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "451 4.7.1 ", 10), 0));
}

Test(engine, held_messages_rescanned_in_arrival_order, .init = setup_nodb)
{
	char body[256];
	const char *first, *second;

	envelope();
	cr_assert(eq(int, client("Subject: one\r\n\r\nclean\r\n.\r\n"), MRY_PKT_DROP));
	/* a second connection from another port */
	tc.cport = 40001;
	tc.cseq = tc.cisn + 1;
	tc.sseq = 1000;
	envelope();
	snprintf(body, sizeof(body), "Subject: two\r\n\r\n%s\r\n.\r\n", eicar);
	cr_assert(eq(int, client(body), MRY_PKT_DROP));
	offer(DB_GEN1);
	mry_engine_tick(eng, now);
	/* the release events come in rescan order (the clean message's event
	 * itself waits for its server's reply) */
	first = find_event("\"reason\":\"clean\"");
	second = find_event("\"reason\":\"infected\"");
	cr_assert_not_null(first);
	cr_assert_not_null(second);
	/* events are stored in order: the clean one (first held) comes first */
	unsigned i_first = 0, i_second = 0;
	for (unsigned i = 0; i < nb_events; i++) {
		if (events[i] == first)
			i_first = i;
		if (events[i] == second)
			i_second = i;
	}
	cr_assert(lt(u32, i_first, i_second));
}

Test(engine, starttls_passes_and_is_logged_encrypted)
{
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250 STARTTLS\r\n");
	client("STARTTLS\r\n");
	cr_assert(eq(int, server("220 2.0.0 Ready to start TLS\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), MRY_PKT_FORWARD));
	const char *ev = find_event("\"verdict\":\"encrypted\"");
	cr_assert_not_null(ev);
	cr_assert_not_null(strstr(ev, "\"action\":\"forwarded\""));
}

static void setup_block_tls(void)
{
	tls_policy = MRY_ENCRYPTED_BLOCK;
	setup_with(DB_GEN1, 1 << 20);
}

Test(engine, starttls_blocked_resets_both_sides, .init = setup_block_tls)
{
	struct mry_engine_stats st;

	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250 STARTTLS\r\n");
	client("STARTTLS\r\n");
	cr_assert(eq(int, server("220 2.0.0 Ready to start TLS\r\n"), MRY_PKT_DROP));
	cr_assert(eq(u32, nb_emits, 2));
	cr_assert(eq(int, emits[0].dir, MRY_EMIT_TO_CLIENT));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[0]) & MRY_TCP_RST), 0));
	cr_assert(eq(int, emits[1].dir, MRY_EMIT_TO_SERVER));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[1]) & MRY_TCP_RST), 0));
	cr_assert(eq(int, client("\x16\x03\x01"), MRY_PKT_DROP));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.encrypted_blocked, 1));
}

Test(engine, connection_state_is_bounded)
{
	size_t n = mry_engine_conn_bytes(eng);

	cr_log_info("bytes per SMTP connection before DATA: %zu", n);
	/* flow slot (with its deadline, rate clock and source entry) + session
	 * + SMTP state: a flood of idle connections costs about a kilobyte
	 * each (1,032 bytes today), so a million fit in 1.1 GB */
	cr_assert(le(sz, n, 1152));
}

/* ---- EICAR inside every encoding MIME decodes ------------------------- */

static void b64(const char *in, size_t n, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
		if (o % 77 == 76) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
	}
	out[o] = '\0';
}

/* quoted-printable: every byte as =XX, soft line breaks every 60 columns */
static void qp(const char *in, size_t n, char *out)
{
	size_t i, o = 0, col = 0;

	for (i = 0; i < n; i++) {
		o += (size_t)sprintf(out + o, "=%02X", (uint8_t)in[i]);
		col += 3;
		if (col >= 60) {
			o += (size_t)sprintf(out + o, "=\r\n");
			col = 0;
		}
	}
	out[o] = '\0';
}

/* uuencode (one "begin" block) */
static void uu(const char *in, size_t n, char *out)
{
	size_t i, o = 0;

	o += (size_t)sprintf(out + o, "begin 644 test.com\r\n");
	for (i = 0; i < n; i += 45) {
		size_t k, len = MRY_MIN(45, n - i);

		out[o++] = (char)(32 + len);
		for (k = 0; k < len; k += 3) {
			uint32_t v = (uint32_t)(uint8_t)in[i + k] << 16;

			if (k + 1 < len)
				v |= (uint32_t)(uint8_t)in[i + k + 1] << 8;
			if (k + 2 < len)
				v |= (uint8_t)in[i + k + 2];
			for (int sh = 18; sh >= 0; sh -= 6) {
				uint32_t c = (v >> sh) & 63;

				out[o++] = (char)(c == 0 ? '`' : 32 + c);
			}
		}
		out[o++] = '\r';
		out[o++] = '\n';
	}
	o += (size_t)sprintf(out + o, "`\r\nend\r\n");
	out[o] = '\0';
}

enum enc_case { ENC_B64, ENC_QP, ENC_UU_CTE, ENC_UU_TEXT, ENC_NESTED, ENC_RFC822, ENC_MAX };

static void send_encoded(enum enc_case c)
{
	static char enc[4096], body[8192];
	size_t n = strlen(eicar);

	switch (c) {
	case ENC_B64:
		b64(eicar, n, enc);
		snprintf(body, sizeof(body),
			 "Subject: b64\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
			 "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
			 "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			 "%s\r\n--b1--\r\n", enc);
		break;
	case ENC_QP:
		qp(eicar, n, enc);
		snprintf(body, sizeof(body),
			 "Subject: qp\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
			 "Content-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n", enc);
		break;
	case ENC_UU_CTE:
		uu(eicar, n, enc);
		snprintf(body, sizeof(body),
			 "Subject: uu\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Transfer-Encoding: x-uuencode\r\n\r\n%s", enc);
		break;
	case ENC_UU_TEXT:
		uu(eicar, n, enc);
		snprintf(body, sizeof(body), "Subject: uu in text\r\n\r\nSee below.\r\n\r\n%s", enc);
		break;
	case ENC_NESTED:
		b64(eicar, n, enc);
		snprintf(body, sizeof(body),
			 "Subject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=o\r\n\r\n"
			 "--o\r\nContent-Type: multipart/alternative; boundary=\"i\"\r\n\r\n"
			 "--i\r\nContent-Type: text/plain\r\n\r\nx\r\n"
			 "--i\r\nContent-Type: application/zip; name=\"a.com\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			 "%s\r\n--i--\r\n--o--\r\n", enc);
		break;
	case ENC_RFC822:
		b64(eicar, n, enc);
		snprintf(body, sizeof(body),
			 "Subject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
			 "--z\r\nContent-Type: message/rfc822\r\n\r\n"
			 "Subject: inner\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--z--\r\n", enc);
		break;
	default:
		break;
	}
	envelope();
	/* in 1000-byte segments, as a client would */
	for (size_t off = 0, len = strlen(body); off < len; off += 1000) {
		char seg[1001];
		size_t k = MRY_MIN((size_t)1000, len - off);

		memcpy(seg, body + off, k);
		seg[k] = '\0';
		client(seg);
	}
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));
}

ParameterizedTestParameters(engine, eicar_in_every_encoding_is_rejected)
{
	static int cases[] = { ENC_B64, ENC_QP, ENC_UU_CTE, ENC_UU_TEXT, ENC_NESTED, ENC_RFC822 };

	return cr_make_param_array(int, cases, MRY_ARRAY_SIZE(cases));
}

ParameterizedTest(int *c, engine, eicar_in_every_encoding_is_rejected)
{
	send_encoded((enum enc_case)*c);
	const char *ev = find_event("\"verdict\":\"infected\"");
	cr_assert_not_null(ev, "encoding case %d not detected", *c);
	cr_assert_not_null(strstr(ev, "Moray.Test.EICAR"));
}

/* ---- IP fragments of TCP: withheld until the datagram is judged -------- */

/* IPv4 fragment of a client segment: bytes [off, off+n) of the IP payload */
static uint32_t mkfrag(uint8_t *b, const uint8_t *whole, uint32_t whole_len,
		       uint32_t off, uint32_t n, bool more)
{
	uint8_t *ip = b + 14;
	uint16_t v16, csum;

	memcpy(b, whole, 14 + 20);
	v16 = htons((uint16_t)(20 + n));
	memcpy(ip + 2, &v16, 2);
	ip[4] = 0x12;
	ip[5] = 0x34;
	v16 = htons((uint16_t)((more ? 0x2000 : 0) | (off / 8)));
	memcpy(ip + 6, &v16, 2);
	ip[10] = ip[11] = 0;
	csum = htons(mry_csum_fold(mry_csum_partial(ip, 20, 0)));
	memcpy(ip + 10, &csum, 2);
	(void)whole_len;
	memcpy(ip + 20, whole + 34 + off, n);
	return 34 + n;
}

Test(engine, tcp_fragments_are_withheld_and_go_out_reassembled)
{
	uint8_t whole[256], f1[128], f2[256];
	uint32_t wl, l1, l2;
	struct mry_engine_stats st;
	const char *line = "Subject: fragmented\r\n\r\nhello\r\n.\r\n";

	envelope();
	wl = mkframe(whole, true, tc.cseq, tc.sseq, MRY_TCP_ACK | MRY_TCP_PSH, line,
		     (uint32_t)strlen(line));
	/* TCP header split: 16 bytes, then the rest */
	l1 = mkfrag(f1, whole, wl, 0, 16, true);
	l2 = mkfrag(f2, whole, wl, 16, wl - 34 - 16, false);
	cr_assert(eq(int, mry_engine_packet(eng, f1, l1, 0, now), MRY_PKT_DROP));
	cr_assert(eq(u32, nb_emits, 0));
	cr_assert(eq(int, mry_engine_packet(eng, f2, l2, 0, now), MRY_PKT_DROP));
	/* the whole datagram went out as one frame, and the message was judged */
	cr_assert(eq(u32, nb_emits, 1));
	cr_assert(eq(int, emits[0].dir, MRY_EMIT_TO_SERVER));
	cr_assert(eq(u32, emits[0].len, wl));
	cr_assert(eq(int, memcmp(emits[0].frame + 34, whole + 34, wl - 34), 0));
	server("250 2.0.0 Ok\r\n");
	cr_assert_not_null(find_event("\"verdict\":\"clean\""));
	mry_engine_get_stats(eng, &st);
	cr_assert(eq(u64, st.frag_withheld, 1));
	cr_assert(eq(u64, st.frag_reassembled_sent, 1));
}

Test(engine, a_lone_late_fragment_never_passes)
{
	uint8_t whole[256], f2[256];
	uint32_t wl, l2;
	const char *line = "Subject: x\r\n\r\nhello\r\n.\r\n";

	envelope();
	wl = mkframe(whole, true, tc.cseq, tc.sseq, MRY_TCP_ACK | MRY_TCP_PSH, line,
		     (uint32_t)strlen(line));
	/* the first fragment went to a server long ago; moray only sees the tail */
	l2 = mkfrag(f2, whole, wl, 16, wl - 34 - 16, false);
	cr_assert(eq(int, mry_engine_packet(eng, f2, l2, 0, now), MRY_PKT_DROP));
	cr_assert(eq(u32, nb_emits, 0));
	cr_assert_null(find_event("\"event\":\"message\""));
}

Test(engine, server_closing_during_a_hold_tempfails_the_client, .init = setup_nodb)
{
	uint8_t b[128];
	uint32_t len;

	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n.\r\n"), MRY_PKT_DROP));
	/* the server gives up waiting (its idle timeout) and closes */
	len = mkframe(b, false, tc.sseq, tc.cseq, MRY_TCP_FIN | MRY_TCP_ACK, NULL, 0);
	cr_assert(eq(int, mry_engine_packet(eng, b, len, 1, now), MRY_PKT_DROP));
	/* the client is told to retry at once, not at the hold timeout */
	cr_assert(ge(u32, nb_emits, 1));
	cr_assert(eq(int, strncmp(payload_of(&emits[0]), "451 4.7.1 ", 10), 0));
	cr_assert_not_null(find_event("\"action\":\"tempfailed\""));
}

Test(engine, port_reuse_after_close_starts_a_new_connection)
{
	uint8_t b[128];
	uint32_t len;

	envelope();
	cr_assert(eq(int, client("Subject: one\r\n\r\nfirst\r\n.\r\n"), MRY_PKT_FORWARD));
	server("250 2.0.0 Ok\r\n");
	client("QUIT\r\n");
	server("221 2.0.0 Bye\r\n");
	len = mkframe(b, false, tc.sseq, tc.cseq, MRY_TCP_FIN | MRY_TCP_ACK, NULL, 0);
	mry_engine_packet(eng, b, len, 1, now);
	tc.sseq++;
	len = mkframe(b, true, tc.cseq, tc.sseq, MRY_TCP_FIN | MRY_TCP_ACK, NULL, 0);
	mry_engine_packet(eng, b, len, 0, now);
	/* the same 4-tuple again at once, with new initial sequence numbers */
	tc.cisn = 0x12345678u;
	tc.cseq = tc.cisn + 1;
	tc.sseq = 777000;
	envelope();
	cr_assert(eq(int, client("Subject: two\r\n\r\nsecond\r\n.\r\n"), MRY_PKT_FORWARD));
	server("250 2.0.0 Ok\r\n");
	unsigned clean = 0;
	for (unsigned i = 0; i < nb_events; i++)
		if (strstr(events[i], "\"verdict\":\"clean\"") != NULL)
			clean++;
	cr_assert(eq(u32, clean, 2));
}

Test(engine, the_frame_ending_a_judged_message_is_flagged)
{
	envelope();
	cr_assert_not(mry_engine_frame_ended_message(eng));
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n"), MRY_PKT_FORWARD));
	cr_assert_not(mry_engine_frame_ended_message(eng));
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_FORWARD));
	cr_assert(mry_engine_frame_ended_message(eng));
	cr_assert(eq(int, server("250 2.0.0 Ok: queued\r\n"), MRY_PKT_FORWARD));
	cr_assert_not(mry_engine_frame_ended_message(eng));
}

Test(engine, a_held_end_is_not_flagged_as_judged, .init = setup_nodb)
{
	envelope();
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n"), MRY_PKT_FORWARD));
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));
	cr_assert_not(mry_engine_frame_ended_message(eng));
}

/* ---- message slots under a slow-DATA flood ------------------------------ */

static void one_msg(struct mry_engine_config *cfg)
{
	cfg->max_msgs = 1;
	cfg->smtp.envelope_pool_count = 4;   /* the message slot runs out first */
}

static void setup_one_msg(void)
{
	cfg_tune = one_msg;
	setup();
	cfg_tune = NULL;
}

/* A second connection on the test's addresses, from client port @cport. */
static void next_conn(uint16_t cport)
{
	tc.cport = cport;
	tc.cisn = 100000u * cport;
	tc.cseq = tc.cisn + 1;
	tc.sseq = 5000u * cport;
}

static const struct emitted *emitted_to_client(const char *text)
{
	for (unsigned i = 0; i < nb_emits; i++)
		if (emits[i].dir == MRY_EMIT_TO_CLIENT && emits[i].len > 54 &&
		    strncmp(payload_of(&emits[i]), text, strlen(text)) == 0)
			return &emits[i];
	return NULL;
}

Test(engine, a_slow_data_flow_gives_its_message_slot_to_a_new_message, .init = setup_one_msg)
{
	struct mry_counters c;

	next_conn(41000);
	envelope();
	cr_assert(eq(int, client("Subject: slow\r\n"), MRY_PKT_FORWARD));
	now += 30 * MRY_NS_PER_SEC;     /* 15 bytes in 30 s: far behind 500 B/s */
	next_conn(41001);
	envelope();                     /* the only slot is taken: the slow one goes */
	cr_assert_not_null(find_event("\"reason\":\"evicted\""), "the slow message is tempfailed");
	cr_assert_not_null(emitted_to_client("451 4.3.2"));
	cr_assert(eq(int, client("Subject: fast\r\n\r\nhello\r\n.\r\n"), MRY_PKT_FORWARD));
	server("250 2.0.0 Ok\r\n");
	cr_assert_not_null(find_event("\"verdict\":\"clean\""), "the new message is judged");
	cr_assert_null(find_event("no_msg_slot"));
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.engine.msg_slot_reclaimed, 1));
	cr_assert(eq(u64, c.flow.evicted[MRY_FLOW_EVICT_DATA_SLOW], 1));
	cr_assert(eq(u64, c.engine.msgs_open, 0), "both slots are back");
}

Test(engine, a_moving_message_keeps_its_slot_and_the_new_one_is_refused, .init = setup_one_msg)
{
	char line[1001];
	struct mry_counters c;

	memset(line, 'x', 998);
	memcpy(line + 998, "\r\n", 3);
	next_conn(41010);
	envelope();
	cr_assert(eq(int, client("Subject: moving\r\n\r\n"), MRY_PKT_FORWARD));
	for (int i = 0; i < 30; i++) {   /* 1,000 bytes a second */
		now += MRY_NS_PER_SEC;
		cr_assert(eq(int, client(line), MRY_PKT_FORWARD));
	}
	next_conn(41011);
	envelope();
	cr_assert_not_null(find_event("\"reason\":\"no_msg_slot\""));
	cr_assert_not_null(emitted_to_client("451 4.3.2"));
	cr_assert_null(find_event("\"reason\":\"evicted\""), "a moving message is never evicted");
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.engine.msg_pool_empty, 1));
	cr_assert(eq(u64, c.engine.msgs_open, 1), "the moving message holds the only slot");
	cr_assert(eq(u64, c.engine.msg_slot_reclaimed, 0));
}

static void one_envelope(struct mry_engine_config *cfg)
{
	cfg->smtp.envelope_pool_count = 1;
}

static void setup_one_envelope(void)
{
	cfg_tune = one_envelope;
	setup();
	cfg_tune = NULL;
}

/* A connection that sent MAIL and waits: from its own address, port @cport. */
static void mail_and_wait(uint16_t cport)
{
	next_conn(cport);
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO a.example\r\n");
	server("250 srv.example\r\n");
	client("MAIL FROM:<waits@example.org>\r\n");   /* takes the only envelope */
	server("250 2.1.0 Ok\r\n");
}

Test(engine, an_idle_connection_gives_its_envelope_to_a_moving_one, .init = setup_one_envelope)
{
	struct mry_counters c;

	mail_and_wait(41030);
	now += 20 * MRY_NS_PER_SEC;                     /* idle for 20 s */
	next_conn(41031);
	envelope();
	cr_assert_not_null(emitted_to_client("421 4.3.2"), "the idle one is told to retry");
	cr_assert(eq(int, client("Subject: hi\r\n\r\nhello\r\n.\r\n"), MRY_PKT_FORWARD));
	server("250 2.0.0 Ok\r\n");
	cr_assert_not_null(find_event("\"mail_from\":\"alice@example.org\""));
	cr_assert_not_null(find_event("\"verdict\":\"clean\""));
	cr_assert_null(find_event("no_envelope_slot"));
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.engine.env_slot_reclaimed, 1));
	cr_assert(eq(u64, c.flow.evicted[MRY_FLOW_EVICT_IDLE], 1));
}

Test(engine, a_message_whose_envelope_was_not_stored_is_refused_not_logged_empty,
     .init = setup_one_envelope)
{
	struct mry_counters c;
	const char *ev;

	mail_and_wait(41020);
	now += 2 * MRY_NS_PER_SEC;                      /* not idle long enough to go */
	next_conn(41021);
	envelope();                                     /* its MAIL finds none */
	ev = find_event("\"reason\":\"no_envelope_slot\"");
	cr_assert_not_null(ev, "refused with its reason");
	cr_assert_not_null(strstr(ev, "\"verdict\":\"tempfail\""));
	cr_assert_null(strstr(ev, "smtp_data_without_rcpt"), "no false evasion");
	cr_assert_not_null(emitted_to_client("451 4.3.2"));
	for (unsigned i = 0; i < nb_events; i++)
		cr_assert_null(strstr(events[i], "\"verdict\":\"clean\""),
			       "no message passes with an unknown envelope");
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.engine.msg_no_envelope, 1));
	cr_assert(eq(u64, c.engine.env_slot_reclaimed, 0));
}

Test(engine, a_silent_new_data_flow_gives_its_slot_a_moving_one_does_not,
     .init = setup_one_msg)
{
	struct mry_counters c;

	next_conn(41040);
	envelope();
	cr_assert(eq(int, client("Subject: opened and silent\r\n"), MRY_PKT_FORWARD));
	now += MRY_NS_PER_SEC / 2;      /* within the grace period, just active */
	next_conn(41041);
	envelope();
	cr_assert_not_null(find_event("\"reason\":\"no_msg_slot\""),
			   "a flow active half a second ago keeps its slot");
	now += 3 * MRY_NS_PER_SEC;      /* 3 s silent, still within the grace */
	next_conn(41042);
	envelope();
	cr_assert_not_null(find_event("\"reason\":\"evicted\""));
	mry_engine_counters(eng, &c);
	cr_assert(eq(u64, c.engine.msg_slot_reclaimed, 1));
}
