/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Deadlines per SMTP phase, end to end through the engine with a fake
 * clock (README, "Under floods"; flow.h, enum mry_flow_phase): which event
 * arms which deadline, that a deadline ends the flow when it passes and not
 * before, and what each side is told (client: 421 without a message, 451
 * with one, an RST before any payload; server: an RST).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/counters.h"
#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/flow.h"
#include "moray/sigdb.h"

#include "pkt_build.h"

#ifndef MORAY_BUILDDIR
#define MORAY_BUILDDIR "build"
#endif
#define DB_GEN1 MORAY_BUILDDIR "/tests/unit/db-gen1.mdb"

#define SEC 1000000000ULL
#define MAX_EMIT 64

struct emitted {
	enum mry_emit_dir dir;
	uint32_t len;
	uint8_t frame[2048];
};

static struct emitted emits[MAX_EMIT];
static unsigned nb_emits;
static struct mry_engine *eng;
static struct mry_sigdb_ctl *ctl;
static uint64_t now;
static bool with_db = true;

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

struct tconn {
	uint8_t cmac[6], smac[6];
	uint8_t cip[4], sip[4];
	uint16_t cport, sport;
	uint32_t cseq, sseq;
};

static struct tconn tc;

static enum mry_pkt_verdict seg(bool from_client, uint8_t flags, const char *s)
{
	uint8_t b[2048];
	uint32_t n = s != NULL ? (uint32_t)strlen(s) : 0, len;

	len = from_client ?
	      pb_tcp4_frame(b, tc.smac, tc.cmac, tc.cip, tc.sip, tc.cport, tc.sport,
			    tc.cseq, tc.sseq, flags, s, n) :
	      pb_tcp4_frame(b, tc.cmac, tc.smac, tc.sip, tc.cip, tc.sport, tc.cport,
			    tc.sseq, tc.cseq, flags, s, n);
	if (from_client)
		tc.cseq += n;
	else
		tc.sseq += n;
	now += 1000000;
	return mry_engine_packet(eng, b, len, from_client ? 0 : 1, now);
}

static enum mry_pkt_verdict client(const char *s)
{
	return seg(true, MRY_TCP_ACK | MRY_TCP_PSH, s);
}

static enum mry_pkt_verdict server(const char *s)
{
	return seg(false, MRY_TCP_ACK | MRY_TCP_PSH, s);
}

static void handshake(void)
{
	tc.cseq--;
	seg(true, MRY_TCP_SYN, NULL);
	tc.cseq++;
	tc.sseq--;
	seg(false, MRY_TCP_SYN | MRY_TCP_ACK, NULL);
	tc.sseq++;
	seg(true, MRY_TCP_ACK, NULL);
}

/* Greeting, EHLO and its reply: the command phase. */
static void to_cmd(void)
{
	handshake();
	server("220 srv.example ESMTP\r\n");
	client("EHLO cli.example\r\n");
	server("250-srv.example\r\n250 PIPELINING\r\n");
}

/* ... then MAIL, RCPT, DATA: waiting for the 354. */
static void to_data_init(void)
{
	to_cmd();
	client("MAIL FROM:<alice@example.org>\r\n");
	server("250 2.1.0 Ok\r\n");
	client("RCPT TO:<bob@example.net>\r\n");
	server("250 2.1.5 Ok\r\n");
	client("DATA\r\n");
}

/* Let @s seconds pass and run the timers. */
static void wait_s(double s)
{
	now += (uint64_t)(s * (double)SEC);
	mry_engine_tick(eng, now);
}

static struct mry_counters counters(void)
{
	struct mry_counters c;

	mry_engine_counters(eng, &c);
	return c;
}

static uint64_t open_in(enum mry_flow_phase ph)
{
	return counters().flow.open_by_phase[ph];
}

static uint64_t open_flows(void)
{
	return counters().flow.active;
}

static uint8_t tcp_flags_of(const struct emitted *em)
{
	return em->frame[14 + 20 + 13];
}

static const char *payload_of(const struct emitted *em)
{
	return (const char *)em->frame + 54;
}

/* The client got @reply (then a FIN), the server an RST. */
static void assert_shed_with(const char *reply)
{
	bool told = false, reset = false;

	for (unsigned i = 0; i < nb_emits; i++) {
		if (emits[i].dir == MRY_EMIT_TO_CLIENT && emits[i].len > 54 &&
		    strncmp(payload_of(&emits[i]), reply, strlen(reply)) == 0)
			told = true;
		if (emits[i].dir == MRY_EMIT_TO_SERVER && (tcp_flags_of(&emits[i]) & MRY_TCP_RST))
			reset = true;
	}
	cr_assert(told, "the client was not told \"%s\" (%u frames emitted)", reply, nb_emits);
	cr_assert(reset, "no RST toward the server");
	cr_assert(eq(u64, open_flows(), 0));
}

static void teardown(void);

static void setup_cfg(void (*tune)(struct mry_engine_config *))
{
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl_config cc = { 0 };
	struct mry_engine_io io = { .emit = on_emit };
	struct mry_sigdb_gen *retired = NULL;

	if (eng != NULL)
		teardown();
	mry_engine_config_defaults(&cfg);
	cfg.flow.max_flows = 64;
	cfg.max_msgs = 16;
	cfg.hold_store_bytes = 1 << 20;
	if (tune != NULL)
		tune(&cfg);
	now = 1700000000ULL * SEC;
	ctl = mry_sigdb_ctl_create(&cc);
	cr_assert_not_null(ctl);
	if (with_db)
		cr_assert(eq(int, mry_sigdb_ctl_offer(ctl, DB_GEN1, now / SEC, &retired),
			     MRY_SIGDB_OK));
	else
		mry_sigdb_ctl_offer(ctl, NULL, now / SEC, &retired);
	eng = mry_engine_create(mry_alloc_default(), &cfg, ctl, &io, NULL);
	cr_assert_not_null(eng);
	memcpy(tc.cmac, "\x02\x00\x00\x00\x00\x01", 6);
	memcpy(tc.smac, "\x02\x00\x00\x00\x00\x02", 6);
	memcpy(tc.cip, "\xc0\x00\x02\x01", 4);
	memcpy(tc.sip, "\xc6\x33\x64\x02", 4);
	tc.cport = 40000;
	tc.sport = 25;
	tc.cseq = 0x10000;
	tc.sseq = 1000;
	nb_emits = 0;
}

static void setup(void)
{
	setup_cfg(NULL);
}

static void setup_nodb(void)
{
	with_db = false;
	setup_cfg(NULL);
	with_db = true;
}

/* The database appears: held messages are judged at the next tick. */
static void offer_db(void)
{
	struct mry_sigdb_gen *retired = NULL;

	cr_assert(eq(int, mry_sigdb_ctl_offer(ctl, DB_GEN1, now / SEC, &retired), MRY_SIGDB_OK));
	if (retired != NULL)
		mry_sigdb_gen_unref(retired);
	mry_engine_tick(eng, now);
}

static void teardown(void)
{
	mry_engine_destroy(eng, now);
	mry_sigdb_ctl_destroy(ctl);
	eng = NULL;
	ctl = NULL;
}

TestSuite(deadline, .init = setup, .fini = teardown);

/* RFC 5321 4.5.3.2.1: 5 minutes for the greeting, from the handshake's end. */
Test(deadline, greeting_waits_five_minutes_not_more)
{
	handshake();
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_GREETING), 1));
	/* a client speaking first does not extend the server's deadline */
	client("EHLO early.example\r\n");
	wait_s(298);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_GREETING), 1));
	cr_assert(eq(u32, nb_emits, 0));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_GREETING], 1));
	assert_shed_with("421 4.4.2 ");
}

Test(deadline, greeting_without_client_payload_resets_both)
{
	handshake();
	wait_s(303);
	cr_assert(eq(u64, open_flows(), 0));
	cr_assert(eq(u32, nb_emits, 2));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[0]) & MRY_TCP_RST), 0));
	cr_assert(ne(u8, (uint8_t)(tcp_flags_of(&emits[1]) & MRY_TCP_RST), 0));
}

/* The greeting ends GREETING: from then on the command deadline runs. */
Test(deadline, greeting_enters_command_phase)
{
	handshake();
	server("220 srv.example ESMTP\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
}

/* RFC 5321 4.5.3.2.7: a client idle 45 s after EHLO is well within its 5 min. */
Test(deadline, command_phase_idle_45s_stays)
{
	to_cmd();
	wait_s(45);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	cr_assert(eq(u32, nb_emits, 0));
	/* and goes on normally */
	cr_assert(eq(int, client("MAIL FROM:<a@example.org>\r\n"), MRY_PKT_FORWARD));
}

Test(deadline, command_phase_idle_5min_is_shed_both_sides_told)
{
	to_cmd();
	wait_s(298);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_CMD], 1));
	cr_assert(eq(u64, counters().engine.shed_deadline, 1));
	assert_shed_with("421 4.4.2 ");
}

/* A partial line never re-arms: one byte every 10 s ends at the deadline. */
Test(deadline, partial_line_trickle_does_not_rearm)
{
	static const char noop[] = "NOOPNOOPNOOPNOOPNOOPNOOPNOOPNOOPNOOP";
	char b[2] = { 0, 0 };

	to_cmd();
	for (unsigned i = 0; i < 29; i++) {
		wait_s(10);
		b[0] = noop[i];
		client(b);
	}
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1), "shed before its deadline");
	for (unsigned i = 29; i < 32 && open_flows() > 0; i++) {
		wait_s(10);
		b[0] = noop[i];
		client(b);
	}
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_CMD], 1));
	assert_shed_with("421 4.4.2 ");
}

/* Lines of garbage are no commands: they and the server's 500s do not re-arm. */
Test(deadline, garbage_lines_do_not_rearm)
{
	to_cmd();
	for (unsigned i = 0; i < 5; i++) {
		wait_s(55);
		client("\x16\x03\x01 junk\n");
		server("500 5.5.2 Error: command not recognized\r\n");
	}
	wait_s(20);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(10);
	assert_shed_with("421 4.4.2 ");
}

/* A real command line every 4 minutes keeps the session for as long as it lasts. */
Test(deadline, noop_every_four_minutes_keeps_it)
{
	to_cmd();
	for (unsigned i = 0; i < 6; i++) {
		wait_s(240);
		cr_assert(eq(int, client("NOOP\r\n"), MRY_PKT_FORWARD));
		server("250 2.0.0 Ok\r\n");
	}
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	cr_assert(eq(u32, nb_emits, 0));
	/* a command without a reply re-arms too: the client waits for the server */
	wait_s(240);
	client("NOOP\r\n");
	wait_s(240);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(65);
	assert_shed_with("421 4.4.2 ");
}

/* RFC 5321 4.5.3.2.5: DATA sent, the server silent: 2 minutes. */
Test(deadline, data_init_server_silent_two_minutes)
{
	to_data_init();
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	wait_s(118);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_DATA_INIT], 1));
	/* no message yet (no 354): 421 to the client, RST to the server */
	assert_shed_with("421 4.4.2 ");
}

/* DATA refused: back to the command phase (its 5 minutes, not DATA_INIT's 2). */
Test(deadline, data_refused_returns_to_command_phase)
{
	to_data_init();
	server("554 5.5.1 Error: no valid recipients\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(200);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
}

/* 354 enters DATA; pipelined replies before it re-arm DATA_INIT. */
Test(deadline, pipelined_data_waits_for_the_replies_before_it)
{
	to_cmd();
	client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	wait_s(100);
	server("250 2.1.0 Ok\r\n");
	wait_s(100);
	server("250 2.1.5 Ok\r\n");
	wait_s(100);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	server("354 go ahead\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA), 1));
}

/* A trickle below --min-data-rate in DATA ends: 451 to the client. */
Test(deadline, data_trickle_below_min_rate_is_ended)
{
	char b[2] = { 'x', 0 };
	unsigned i;

	to_data_init();
	server("354 End data with <CR><LF>.<CR><LF>\r\n");
	client("Subject: slow\r\n\r\n");
	for (i = 0; i < 17; i++) {
		wait_s(10);
		client(b);
	}
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA), 1), "ended before the data deadline");
	for (; i < 40 && open_flows() > 0; i++) {
		wait_s(10);
		client(b);
	}
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_DATA], 1));
	cr_assert(eq(u64, counters().flow.timeout_data_slow, 1));
	cr_assert(le(u32, i, 19), "ended %u s into DATA", i * 10);
	assert_shed_with("451 4.4.2 ");
}

/* A transfer at the rate is never cut, however long it takes. */
Test(deadline, data_at_the_min_rate_goes_on)
{
	static char chunk[1401];

	memset(chunk, 'y', 1400);
	chunk[1398] = '\r';
	chunk[1399] = '\n';
	to_data_init();
	server("354 go\r\n");
	client("Subject: big\r\n\r\n");
	for (unsigned i = 0; i < 200; i++) {
		wait_s(2);           /* 700 B/s */
		client(chunk);
	}
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA), 1));
	client(".\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	cr_assert(eq(u64, counters().engine.msgs_clean, 1));
}

/*
 * RFC 5321 4.5.3.2.6: after the end of data the client waits up to 10 min
 * for the final reply while the server stores the message; the reply
 * returns to the command phase.
 */
Test(deadline, after_data_the_final_reply_returns_to_command_phase)
{
	to_data_init();
	server("354 go\r\n");
	client("Subject: hi\r\n\r\nhello\r\n.\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	client("QUIT\r\n");            /* pipelined: still waiting for the reply */
	wait_s(420);                     /* longer than the command deadline */
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	server("250 2.0.0 Ok: queued\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(298);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	cr_assert(eq(u32, nb_emits, 0));
	wait_s(5);
	assert_shed_with("421 4.4.2 ");
}

/* The next transaction pipelined after the end: its DATA waits for 354 once the reply came. */
Test(deadline, data_pipelined_after_the_end_waits_for_its_354)
{
	to_data_init();
	server("354 go\r\n");
	client("Subject: hi\r\n\r\nhello\r\n.\r\n"
	       "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	wait_s(400);
	server("250 2.0.0 Ok: queued\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	wait_s(118);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_DATA_INIT], 1));
	assert_shed_with("421 4.4.2 ");
}

Test(deadline, after_data_a_silent_server_is_cut_at_ten_minutes)
{
	to_data_init();
	server("354 go\r\n");
	client("Subject: hi\r\n\r\nhello\r\n.\r\n");
	wait_s(598);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	cr_assert(eq(u32, nb_emits, 0));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_DATA_END], 1));
	assert_shed_with("421 4.4.2 ");
}

/* A message moray answered itself (rejected): no final reply will come. */
Test(deadline, after_a_rejected_message_no_final_reply_is_awaited)
{
	static const char hex[] =
		"58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d"
		"5354414e444152442d414e544956495255532d544553542d46494c452124482b482a";
	char body[160] = "Subject: x\r\n\r\n";
	size_t n = strlen(body);

	for (size_t i = 0; i < sizeof(hex) / 2; i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		body[n++] = (char)v;
	}
	memcpy(body + n, "\r\n.\r\n", 6);
	to_data_init();
	server("354 go\r\n");
	cr_assert(eq(int, client(body), MRY_PKT_DROP));
	cr_assert(eq(u64, counters().engine.msgs_infected, 1));
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 0));
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
}

/* A message held for want of a database: the hold's end re-arms DATA_END. */
Test(deadline, held_message_waits_its_hold_then_data_end_runs_afresh, .init = setup_nodb)
{
	to_data_init();
	server("354 go\r\n");
	client("Subject: hi\r\n\r\nhello\r\n");
	cr_assert(eq(int, client(".\r\n"), MRY_PKT_DROP));       /* withheld */
	wait_s(200);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	offer_db();                                              /* judged clean, released */
	wait_s(590);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1), "cut before 10 min after release");
	server("250 2.0.0 Ok: queued\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
}

/* BDAT: a chunk's octets are data; between chunks the command deadline runs. */
Test(deadline, bdat_between_chunks_is_command_phase)
{
	to_cmd();
	client("MAIL FROM:<a@example.org>\r\n");
	server("250 ok\r\n");
	client("RCPT TO:<b@example.net>\r\n");
	server("250 ok\r\n");
	client("BDAT 21\r\nSubject: x\r\n\r\n");     /* 14 + 7 octets */
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA), 1));
	client("hello\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	server("250 2.0.0 21 octets\r\n");
	wait_s(240);              /* past the data deadline, within the command one */
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	client("BDAT 7 LAST\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA), 1));
	client("world\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_END), 1));
	server("250 2.0.0 queued\r\n");
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	cr_assert(eq(u64, counters().engine.msgs_clean, 1));
	cr_assert(eq(u32, nb_emits, 0));
}

/* A message between BDAT chunks when the command deadline passes: 451. */
Test(deadline, bdat_idle_between_chunks_tempfails_the_message)
{
	to_cmd();
	client("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n");
	server("250 ok\r\n250 ok\r\n");
	client("BDAT 7\r\nhello\r\n");
	server("250 ok\r\n");
	wait_s(303);
	assert_shed_with("451 4.4.2 ");
}

/* After STARTTLS moray cannot see commands: any payload re-arms the command deadline. */
Test(deadline, encrypted_any_payload_rearms)
{
	to_cmd();
	client("STARTTLS\r\n");
	server("220 2.0.0 Ready to start TLS\r\n");
	for (unsigned i = 0; i < 4; i++) {
		wait_s(240);
		client("\x16\x03\x01 tls bytes without a line end");
	}
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_CMD), 1));
	wait_s(303);
	cr_assert(eq(u64, open_flows(), 0));
}

static void short_data_init(struct mry_engine_config *cfg)
{
	cfg->flow.timeout_ns[MRY_FLOW_PHASE_DATA_INIT] = 30 * SEC;
}

/* --timeout-data-init sets DATA_INIT's own deadline. */
Test(deadline, data_init_deadline_is_its_option)
{
	setup_cfg(short_data_init);
	to_data_init();
	wait_s(28);
	cr_assert(eq(u64, open_in(MRY_FLOW_PHASE_DATA_INIT), 1));
	wait_s(5);
	cr_assert(eq(u64, counters().flow.timeouts[MRY_FLOW_PHASE_DATA_INIT], 1));
}
