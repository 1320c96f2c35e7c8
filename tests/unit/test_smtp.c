/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SMTP state machines: every rule is driven through the public API with
 * scripted client/server streams, and the recorded callbacks are compared
 * with what the server stores (exact bytes, envelope, end offsets).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/common.h"
#include "moray/smtp.h"

/* ---- recorder --------------------------------------------------------- */

#define MAXMSG 16

struct rmsg {
	void *user;
	enum mry_smtp_msg_kind kind;
	uint32_t index;
	char from[300];
	char rcpt[1024];          /* recipients joined by ',' at msg_begin */
	char rcpt_end[1024];      /* ... at msg_end */
	uint32_t nb_rcpt;
	uint64_t declared;
	bool b8, bbin, utf8;
	bool lost;                /* envelope_lost at msg_begin */
	uint8_t *bytes;
	size_t len;
	size_t cap;               /* bytes allocated (grown by doubling) */
	size_t calls;             /* msg_data calls */
	uint64_t size_at_end;
	uint64_t eom;
	bool ended;
	bool aborted;
	enum mry_smtp_abort_reason why;
	unsigned reply;
	char reply_text[128];
	char rcpt_reply[1024];    /* recipients as the final reply reports them */
};

struct rec {
	struct rmsg m[MAXMSG];
	int nmsg;
	int starttls;
	unsigned an[MRY_SMTP_AN_MAX];
	int order_errors;         /* data/end/abort without an open message */
	int open;                 /* index of the open message or -1 */
	char trace[256];          /* phase events and message events, in order */
	unsigned amb;             /* ambiguous ends of data reported */
	uint64_t amb_off[8];
	enum mry_smtp_anomaly amb_an[8];
};

static struct rec R;

/* One letter per event: phase events in capitals, message events lower case. */
static void trace(char ch)
{
	size_t n = strlen(R.trace);

	if (n + 1 < sizeof(R.trace))
		R.trace[n] = ch;
}

static void join_rcpt(char *dst, size_t cap, const struct mry_smtp_msg_info *mi)
{
	dst[0] = '\0';
	for (uint32_t i = 0; i < mi->nb_rcpt; i++) {
		if (i > 0)
			strncat(dst, ",", cap - strlen(dst) - 1);
		strncat(dst, mi->rcpt[i], cap - strlen(dst) - 1);
	}
}

static void cb_begin(void *u, const struct mry_smtp_msg_info *mi)
{
	struct rmsg *m;

	trace('b');
	if (R.open >= 0 || R.nmsg >= MAXMSG) {
		R.order_errors++;
		return;
	}
	m = &R.m[R.nmsg];
	memset(m, 0, sizeof(*m));
	m->user = u;
	m->kind = mi->kind;
	m->index = mi->msg_index;
	snprintf(m->from, sizeof(m->from), "%s", mi->mail_from);
	join_rcpt(m->rcpt, sizeof(m->rcpt), mi);
	m->nb_rcpt = mi->nb_rcpt;
	m->declared = mi->declared_size;
	m->b8 = mi->body_8bit;
	m->bbin = mi->body_binary;
	m->utf8 = mi->smtputf8;
	m->lost = mi->envelope_lost;
	m->reply = 0;
	R.open = R.nmsg++;
}

static void cb_data(void *u, const uint8_t *d, size_t n)
{
	struct rmsg *m;

	(void)u;
	if (R.open < 0 || n == 0) {
		R.order_errors++;
		return;
	}
	m = &R.m[R.open];
	if (m->len + n > m->cap) {
		/* doubling: one-byte deliveries of a large body stay linear */
		size_t cap = m->cap ? m->cap : 4096;

		while (cap < m->len + n)
			cap *= 2;
		m->bytes = realloc(m->bytes, cap);
		cr_assert_not_null(m->bytes);
		m->cap = cap;
	}
	memcpy(m->bytes + m->len, d, n);
	m->len += n;
	m->calls++;
}

static void cb_end(void *u, const struct mry_smtp_msg_info *mi, uint64_t eom)
{
	(void)u;
	trace('e');
	if (R.open < 0 || R.m[R.open].index != mi->msg_index) {
		R.order_errors++;
		return;
	}
	R.m[R.open].ended = true;
	R.m[R.open].eom = eom;
	R.m[R.open].size_at_end = mi->size;
	join_rcpt(R.m[R.open].rcpt_end, sizeof(R.m[R.open].rcpt_end), mi);
	R.open = -1;
}

static void cb_reply(void *u, const struct mry_smtp_msg_info *mi, unsigned code,
		     const char *t, size_t tl)
{
	uint32_t idx = mi->msg_index;

	for (int i = 0; i < R.nmsg; i++) {
		if (R.m[i].index == idx && R.m[i].user == u) {
			R.m[i].reply = code;
			join_rcpt(R.m[i].rcpt_reply, sizeof(R.m[i].rcpt_reply), mi);
			snprintf(R.m[i].reply_text, sizeof(R.m[i].reply_text), "%.*s",
				 (int)tl, t);
			return;
		}
	}
	R.order_errors++;
}

static void cb_abort(void *u, const struct mry_smtp_msg_info *mi,
		     enum mry_smtp_abort_reason why)
{
	(void)u;
	trace('a');
	if (R.open < 0 || R.m[R.open].index != mi->msg_index) {
		R.order_errors++;
		return;
	}
	R.m[R.open].aborted = true;
	R.m[R.open].why = why;
	R.open = -1;
}

static void cb_starttls(void *u)
{
	(void)u;
	R.starttls++;
}

static void cb_anomaly(void *u, enum mry_smtp_anomaly an)
{
	(void)u;
	R.an[an]++;
}

static void cb_ambiguous(void *u, enum mry_smtp_anomaly an, uint64_t off)
{
	(void)u;
	if (R.amb < 8) {
		R.amb_off[R.amb] = off;
		R.amb_an[R.amb] = an;
	}
	R.amb++;
}

static void cb_phase(void *u, enum mry_smtp_phase_event ev)
{
	static const char letter[MRY_SMTP_PH_MAX] = {
		[MRY_SMTP_PH_GREETING] = 'G', [MRY_SMTP_PH_COMMAND] = 'C',
		[MRY_SMTP_PH_REPLY] = 'R', [MRY_SMTP_PH_DATA_SENT] = 'D',
		[MRY_SMTP_PH_DATA_REFUSED] = 'X', [MRY_SMTP_PH_BDAT_CHUNK] = 'K',
		[MRY_SMTP_PH_BDAT_CHUNK_END] = 'E',
	};

	(void)u;
	cr_assert(lt(u32, (unsigned)ev, MRY_SMTP_PH_MAX));
	trace(letter[ev]);
}

static const struct mry_smtp_callbacks CB = {
	.phase = cb_phase,
	.msg_ambiguous_end = cb_ambiguous,
	.msg_begin = cb_begin,
	.msg_data = cb_data,
	.msg_end = cb_end,
	.msg_reply = cb_reply,
	.msg_abort = cb_abort,
	.starttls = cb_starttls,
	.anomaly = cb_anomaly,
};

static void rec_reset(void)
{
	for (int i = 0; i < R.nmsg; i++)
		free(R.m[i].bytes);
	memset(&R, 0, sizeof(R));
	R.open = -1;
}

/* ---- harness ---------------------------------------------------------- */

static struct mry_smtp_ctx *C;
static struct mry_smtp_session *S;
static uint64_t coff, soff;

static void open_cfg(const struct mry_smtp_config *cfg)
{
	struct mry_smtp_config def = { .max_sessions = 8, .pending_pool_count = 4,
				       .envelope_pool_count = 4, .line_pool_count = 4 };

	rec_reset();
	C = mry_smtp_ctx_create(mry_alloc_default(), cfg != NULL ? cfg : &def, &CB);
	cr_assert_not_null(C);
	S = mry_smtp_session_new(C, NULL);
	cr_assert_not_null(S);
	coff = soff = 0;
}

static void setup(void)
{
	open_cfg(NULL);
}

static void teardown(void)
{
	if (S != NULL)
		mry_smtp_session_free(C, S);
	mry_smtp_ctx_destroy(C);
	S = NULL;
	C = NULL;
	rec_reset();
}

static void cli_n(const void *p, size_t n)
{
	mry_smtp_client_data(C, S, p, n, coff);
	coff += n;
}

static void srv_n(const void *p, size_t n)
{
	mry_smtp_server_data(C, S, p, n, soff);
	soff += n;
}

static void cli(const char *t) { cli_n(t, strlen(t)); }
static void srv(const char *t) { srv_n(t, strlen(t)); }

static struct mry_smtp_stats stats(void)
{
	struct mry_smtp_stats st;

	mry_smtp_get_stats(C, &st);
	return st;
}

static void assert_msg_bytes(int i, const char *want)
{
	cr_assert(lt(int, i, R.nmsg), "message %d was not begun", i);
	cr_assert(eq(sz, R.m[i].len, strlen(want)), "msg %d: %zu bytes, want %zu",
		  i, R.m[i].len, strlen(want));
	cr_assert(eq(int, memcmp(R.m[i].bytes, want, R.m[i].len), 0),
		  "msg %d bytes differ: got '%.*s'", i, (int)R.m[i].len, R.m[i].bytes);
}

static unsigned total_anomalies(void)
{
	unsigned n = 0;

	for (int i = 0; i < MRY_SMTP_AN_MAX; i++)
		n += R.an[i];
	return n;
}

/* ---- a scripted conversation, fed with any segmentation --------------- */

struct step {
	char dir;                 /* 'C' or 'S' */
	const char *text;
};

/*
 * Feed the script in causal order, cutting client bytes at the given
 * client stream offsets; with @client_first all client bytes go first.
 */
static void run_script(const struct step *st, size_t n, const size_t *cuts,
		       size_t ncuts, bool client_first)
{
	for (int pass = 0; pass < (client_first ? 2 : 1); pass++) {
		for (size_t i = 0; i < n; i++) {
			const char *t = st[i].text;
			size_t len = strlen(t), done = 0;

			if (st[i].dir == 'S') {
				if (!client_first || pass == 1)
					srv(t);
				continue;
			}
			if (client_first && pass == 1)
				continue;
			while (done < len) {
				size_t next = len;

				for (size_t k = 0; k < ncuts; k++)
					if (cuts[k] > coff && cuts[k] - coff < next - done)
						next = done + (cuts[k] - coff);
				cli_n(t + done, next - done);
				done = next;
			}
		}
	}
}

static size_t script_client_len(const struct step *st, size_t n)
{
	size_t l = 0;

	for (size_t i = 0; i < n; i++)
		if (st[i].dir == 'C')
			l += strlen(st[i].text);
	return l;
}

TestSuite(smtp, .init = setup, .fini = teardown);

/* ---- greeting, EHLO, happy path --------------------------------------- */

Test(smtp, greeting_with_nothing_pending_is_not_an_anomaly)
{
	srv("220 mx.example ESMTP\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
	srv("250 what\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 1));
	cr_assert(eq(u64, stats().replies, 2));
}

Test(smtp, greeting_after_early_client_command_is_still_the_greeting)
{
	/* client bytes seen first: the 220 must not be taken as EHLO's reply */
	cli("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("220 hi\r\n250 hello\r\n250 ok\r\n550 no\r\n");
	/* RCPT refused, so DATA's 554 comes next */
	srv("554 no valid recipients\r\n");
	cli("QUIT\r\n");
	srv("221 bye\r\n");
	cr_assert(eq(int, R.nmsg, 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
}

Test(smtp, ehlo_multiline_reply_answers_one_command)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n");
	cli("NOOP\r\n");
	srv("250 ok\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
	cr_assert(eq(u64, stats().replies, 3));
	cr_assert(eq(u64, stats().commands, 2));
	/* a multi-line reply split inside a line and across lines */
	cli("EHLO again\r\n");
	srv("25");
	srv("0-a\r");
	srv("\n250");
	srv(" b\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
	cr_assert(eq(u64, stats().replies, 4));
}

static const struct step HAPPY[] = {
	{ 'S', "220 mx.example ESMTP Postfix\r\n" },
	{ 'C', "EHLO client.example\r\n" },
	{ 'S', "250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n" },
	{ 'C', "MAIL FROM:<alice@a.example> SIZE=123 BODY=8BITMIME\r\n" },
	{ 'S', "250 2.1.0 Ok\r\n" },
	{ 'C', "RCPT TO:<bob@b.example>\r\n" },
	{ 'S', "250 2.1.5 Ok\r\n" },
	{ 'C', "DATA\r\n" },
	{ 'S', "354 End data with <CR><LF>.<CR><LF>\r\n" },
	{ 'C', "Subject: hi\r\n\r\nline one\r\n..dotted\r\n.\r\n" },
	{ 'S', "250 2.0.0 Ok: queued as ABC123\r\n" },
	{ 'C', "QUIT\r\n" },
	{ 'S', "221 2.0.0 Bye\r\n" },
};
#define HAPPY_BODY "Subject: hi\r\n\r\nline one\r\n.dotted\r\n"

static uint64_t happy_eom(void)
{
	/* offset of the '.' of the terminator line */
	size_t off = 0;

	for (size_t i = 0; i < MRY_ARRAY_SIZE(HAPPY); i++) {
		if (HAPPY[i].dir != 'C')
			continue;
		if (strstr(HAPPY[i].text, "\r\n.\r\n") != NULL)
			return off + (size_t)(strstr(HAPPY[i].text, "\r\n.\r\n") -
					      HAPPY[i].text) + 2;
		off += strlen(HAPPY[i].text);
	}
	return 0;
}

Test(smtp, happy_path_delivers_exact_bytes_envelope_and_reply)
{
	run_script(HAPPY, MRY_ARRAY_SIZE(HAPPY), NULL, 0, false);
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(int, R.order_errors, 0));
	assert_msg_bytes(0, HAPPY_BODY);
	cr_assert(eq(str, R.m[0].from, "alice@a.example"));
	cr_assert(eq(str, R.m[0].rcpt, "bob@b.example"));
	cr_assert(eq(u64, R.m[0].declared, 123));
	cr_assert(R.m[0].b8);
	cr_assert_not(R.m[0].bbin);
	cr_assert(eq(int, R.m[0].kind, MRY_SMTP_MSG_DATA));
	cr_assert(R.m[0].ended);
	cr_assert(eq(u64, R.m[0].eom, happy_eom()));
	cr_assert(eq(u64, R.m[0].size_at_end, strlen(HAPPY_BODY)));
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(str, R.m[0].reply_text, "2.0.0 Ok: queued as ABC123"));
	cr_assert(eq(u32, total_anomalies(), 0));
	struct mry_smtp_stats st = stats();
	cr_assert(eq(u64, st.messages_begun, 1));
	cr_assert(eq(u64, st.messages_ended, 1));
	cr_assert(eq(u64, st.messages_accepted, 1));
	cr_assert_not(mry_smtp_in_message(S));
}

Test(smtp, message_data_is_zero_copy_split_only_at_stuffing_dots)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	static const char body[] = "abc\r\n..def\r\nghi\r\n.\r\n";
	cli(body);
	assert_msg_bytes(0, "abc\r\n.def\r\nghi\r\n");
	/* one run before the removed dot, one after it */
	cr_assert(eq(sz, R.m[0].calls, 2));
}

Test(smtp, dot_unstuffing_removes_only_the_first_dot_of_a_line)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli(".leading\r\nmid.dle\r\n...three\r\n. space\r\n..\r\n.\r\n");
	assert_msg_bytes(0, "leading\r\nmid.dle\r\n..three\r\n space\r\n.\r\n");
	cr_assert(R.m[0].ended);
}

Test(smtp, empty_message_right_after_354)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli(".\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(R.m[0].ended);
	cr_assert(eq(sz, R.m[0].len, 0));
	cr_assert(eq(u64, R.m[0].eom, strlen("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")));
	srv("250 queued\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
}

/* ---- segmentation ----------------------------------------------------- */

static void check_happy_result(const char *what, size_t a, size_t b)
{
	cr_assert(eq(int, R.nmsg, 1), "%s cut %zu/%zu: %d messages", what, a, b, R.nmsg);
	cr_assert(eq(int, R.order_errors, 0), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(sz, R.m[0].len, strlen(HAPPY_BODY)), "%s cut %zu/%zu: len %zu",
		  what, a, b, R.m[0].len);
	cr_assert(eq(int, memcmp(R.m[0].bytes, HAPPY_BODY, R.m[0].len), 0),
		  "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u64, R.m[0].eom, happy_eom()), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(str, R.m[0].from, "alice@a.example"), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(str, R.m[0].rcpt, "bob@b.example"), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u32, R.m[0].reply, 250), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_LF], 0), "%s cut %zu/%zu", what, a, b);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_CR], 0), "%s cut %zu/%zu", what, a, b);
}

Test(smtp, every_two_segment_split_gives_identical_result)
{
	size_t total = script_client_len(HAPPY, MRY_ARRAY_SIZE(HAPPY));

	for (int mode = 0; mode < 2; mode++) {
		for (size_t a = 1; a < total; a++) {
			teardown();
			setup();
			run_script(HAPPY, MRY_ARRAY_SIZE(HAPPY), &a, 1, mode == 1);
			check_happy_result(mode ? "client-first" : "causal", a, 0);
		}
	}
}

Test(smtp, every_three_segment_split_gives_identical_result)
{
	size_t total = script_client_len(HAPPY, MRY_ARRAY_SIZE(HAPPY));

	for (int mode = 0; mode < 2; mode++) {
		for (size_t a = 1; a < total; a++) {
			for (size_t b = a + 1; b < total; b++) {
				size_t cuts[2] = { a, b };

				teardown();
				setup();
				run_script(HAPPY, MRY_ARRAY_SIZE(HAPPY), cuts, 2, mode == 1);
				check_happy_result(mode ? "client-first" : "causal", a, b);
			}
		}
	}
}

Test(smtp, byte_by_byte_client_and_server_gives_identical_result)
{
	size_t total = script_client_len(HAPPY, MRY_ARRAY_SIZE(HAPPY));
	size_t *cuts = calloc(total, sizeof(*cuts));

	for (size_t i = 0; i < total; i++)
		cuts[i] = i + 1;
	run_script(HAPPY, MRY_ARRAY_SIZE(HAPPY), cuts, total, false);
	check_happy_result("bytes", 0, 0);
	free(cuts);
}

Test(smtp, server_replies_after_all_client_data)
{
	run_script(HAPPY, MRY_ARRAY_SIZE(HAPPY), NULL, 0, true);
	check_happy_result("client-first", 0, 0);
	/* the client did not wait for 354 (as seen here) */
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_PIPELINE_AFTER_DATA], 1));
}

/* ---- replies decide ---------------------------------------------------- */

Test(smtp, rejected_data_makes_following_bytes_commands)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nRSET\r\nMAIL FROM:<c@x>\r\n");
	srv("250 ok\r\n250 ok\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S),
		     strlen("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")));
	srv("451 try later\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S), UINT64_MAX));
	cr_assert(eq(int, R.nmsg, 0));
	srv("250 reset\r\n250 ok\r\n");
	cli("RCPT TO:<d@y>\r\nDATA\r\n");
	srv("250 ok\r\n354 go\r\n");
	cli("body\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(str, R.m[0].from, "c@x"));
	cr_assert(eq(str, R.m[0].rcpt, "d@y"));
	assert_msg_bytes(0, "body\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, refused_rcpt_leaves_the_envelope)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\nRCPT TO:<b3@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n450 4.2.0 busy\r\n250 ok\r\n354 go\r\n");
	cli("x\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(str, R.m[0].rcpt, "b1@y,b3@y"));
	cr_assert(eq(u32, R.m[0].nb_rcpt, 2));
}

Test(smtp, refused_mail_cancels_the_transaction)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<bad@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("553 no\r\n503 need mail\r\n503 need rcpt\r\n");
	cli("RSET\r\nMAIL FROM:<good@x>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("m\r\n.\r\n");
	srv("554 5.7.1 virus\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(str, R.m[0].from, "good@x"));
	cr_assert(eq(str, R.m[0].rcpt, "c@y"));
	cr_assert(eq(u32, R.m[0].reply, 554));
	cr_assert(eq(u64, stats().messages_refused, 1));
}

Test(smtp, pipelined_commands_and_batched_replies)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-x\r\n250 PIPELINING\r\n");
	/* swaks --pipeline: MAIL, two RCPT and DATA in one segment */
	cli("MAIL FROM:<alice@x>\r\nRCPT TO:<bob@y>\r\nRCPT TO:<carol@y>\r\nDATA\r\n");
	srv("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n");
	cli("hello\r\n.\r\nMAIL FROM:<dave@x>\r\nRCPT TO:<erin@y>\r\nDATA\r\n");
	srv("250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("second\r\n.\r\nQUIT\r\n");
	srv("250 queued 2\r\n221 bye\r\n");
	cr_assert(eq(int, R.nmsg, 2));
	cr_assert(eq(str, R.m[0].rcpt, "bob@y,carol@y"));
	assert_msg_bytes(0, "hello\r\n");
	assert_msg_bytes(1, "second\r\n");
	cr_assert(eq(str, R.m[1].from, "dave@x"));
	cr_assert(eq(str, R.m[0].reply_text, "queued 1"));
	cr_assert(eq(str, R.m[1].reply_text, "queued 2"));
	cr_assert(eq(u32, R.m[1].index, 1));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, rset_resets_the_transaction)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<old@x>\r\nRCPT TO:<old@y>\r\nRSET\r\nMAIL FROM:<new@x>\r\n"
	    "RCPT TO:<new@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("b\r\n.\r\n");
	cr_assert(eq(str, R.m[0].from, "new@x"));
	cr_assert(eq(str, R.m[0].rcpt, "new@y"));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_MAIL_NESTED], 0));
}

Test(smtp, several_messages_get_consecutive_indexes)
{
	srv("220 hi\r\n");
	for (int i = 0; i < 3; i++) {
		char from[64];

		snprintf(from, sizeof(from), "MAIL FROM:<s%d@x>\r\nRCPT TO:<r@y>\r\nDATA\r\n", i);
		cli(from);
		srv("250 ok\r\n250 ok\r\n354 go\r\n");
		cli("m\r\n.\r\n");
		srv("250 ok\r\n");
	}
	cr_assert(eq(int, R.nmsg, 3));
	for (int i = 0; i < 3; i++) {
		char want[16];

		snprintf(want, sizeof(want), "s%d@x", i);
		cr_assert(eq(u32, R.m[i].index, (uint32_t)i));
		cr_assert(eq(str, R.m[i].from, want));
		cr_assert(eq(u32, R.m[i].reply, 250));
	}
}

Test(smtp, helo_also_resets_the_transaction)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<old@x>\r\nRCPT TO:<old@y>\r\nHELO c\r\nMAIL FROM:<new@x>\r\n"
	    "RCPT TO:<new@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("b\r\n.\r\n");
	cr_assert(eq(str, R.m[0].rcpt, "new@y"));
}

/* ---- addresses --------------------------------------------------------- */

Test(smtp, address_forms_are_parsed)
{
	srv("220 hi\r\n");
	cli("mail from: <\"odd > name\"@x> body=BINARYMIME SMTPUTF8\r\n"
	    "rcpt to:plain@y\r\nRCPT TO:<>\r\nRcPt To:  <spaced@y> NOTIFY=NEVER\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli(".\r\n");
	cr_assert(eq(str, R.m[0].from, "\"odd > name\"@x"));
	cr_assert(eq(str, R.m[0].rcpt, "plain@y,,spaced@y"));
	cr_assert(R.m[0].bbin);
	cr_assert(R.m[0].utf8);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
}

Test(smtp, null_sender_is_empty_string)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("bounce\r\n.\r\n");
	cr_assert(eq(str, R.m[0].from, ""));
	cr_assert(eq(u32, R.m[0].nb_rcpt, 1));
}

/* ---- BDAT -------------------------------------------------------------- */

static void bdat_envelope(void)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-x\r\n250 CHUNKING\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n");
	srv("250 ok\r\n250 ok\r\n");
}

Test(smtp, bdat_single_last_chunk)
{
	bdat_envelope();
	uint64_t start = coff;
	cli("BDAT 11 LAST\r\nhello world");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(int, R.m[0].kind, MRY_SMTP_MSG_BDAT));
	assert_msg_bytes(0, "hello world");
	cr_assert(R.m[0].ended);
	cr_assert(eq(u64, R.m[0].eom, start + strlen("BDAT 11 LAST\r\n") + 10));
	cr_assert_not(mry_smtp_in_message(S));
	srv("250 2.0.0 Ok: 11 bytes queued\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, bdat_multi_chunk_joined_without_unstuffing)
{
	bdat_envelope();
	cli("BDAT 6\r\n.a\r\n.\r");
	cr_assert(mry_smtp_in_message(S));
	srv("250 6 octets\r\n");
	cli("BDAT 5 LAST\r\n\n.\r\nx");
	srv("250 queued\r\n");
	assert_msg_bytes(0, ".a\r\n.\r\n.\r\nx");
	cr_assert(R.m[0].ended);
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(int, R.nmsg, 1));
}

Test(smtp, bdat_chunk_containing_crlf_dot_crlf_is_not_a_terminator)
{
	bdat_envelope();
	cli("BDAT 13 LAST\r\nab\r\n.\r\nQUIT\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "ab\r\n.\r\nQUIT\r\n");
	cr_assert(R.m[0].ended);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
}

Test(smtp, bdat_zero_last_ends_at_the_command_lf)
{
	bdat_envelope();
	uint64_t start = coff;
	cli("BDAT 0 LAST\r\nMAIL FROM:<n@x>\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(R.m[0].ended);
	cr_assert(eq(sz, R.m[0].len, 0));
	cr_assert(eq(u64, R.m[0].eom, start + strlen("BDAT 0 LAST\r\n") - 1));
	srv("250 queued\r\n250 ok\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, bdat_rejected_chunk_aborts_but_its_bytes_stay_data)
{
	bdat_envelope();
	cli("BDAT 12\r\nRSET\r\nQUIT");
	srv("552 too big\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(R.m[0].aborted);
	cr_assert(eq(int, R.m[0].why, MRY_SMTP_ABORT_REJECTED));
	/* the rest of the chunk and the next chunks are consumed, not parsed */
	cli("\r\nBDAT 9 LAST\r\nDATA\r\nxyz");
	srv("552 skipped\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert_not(R.m[0].ended);
	cr_assert(eq(u32, R.m[0].reply, 0));
	/* and the next transaction works */
	cli("MAIL FROM:<n@x>\r\nRCPT TO:<m@y>\r\nBDAT 2 LAST\r\nok");
	srv("250 ok\r\n250 ok\r\n250 queued\r\n");
	cr_assert(eq(int, R.nmsg, 2));
	assert_msg_bytes(1, "ok");
	cr_assert(eq(u32, R.m[1].index, 1));
	cr_assert(eq(u32, R.m[1].reply, 250));
	cr_assert(eq(u64, stats().messages_aborted, 1));
}

Test(smtp, rset_between_bdat_chunks_aborts)
{
	bdat_envelope();
	cli("BDAT 3\r\nabc");
	cli("RSET\r\n");
	cr_assert(R.m[0].aborted);
	cr_assert(eq(int, R.m[0].why, MRY_SMTP_ABORT_RSET));
	srv("250 3 octets\r\n250 reset\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, exim_pipelined_mail_rcpt_bdat_last_quit)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-x\r\n250 CHUNKING\r\n");
	cli("MAIL FROM:<alice@x> SIZE=1575\r\nRCPT TO:<dave@y>\r\nBDAT 7 LAST\r\n"
	    "a\r\n.b\r\nQUIT\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "a\r\n.b\r\n");
	cr_assert(R.m[0].ended);
	cr_assert(eq(str, R.m[0].from, "alice@x"));
	cr_assert(eq(str, R.m[0].rcpt, "dave@y"));
	cr_assert(eq(u64, R.m[0].declared, 1575));
	srv("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 7 bytes queued as X\r\n221 Bye\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(str, R.m[0].reply_text, "2.0.0 Ok: 7 bytes queued as X"));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, bdat_then_data_message_without_rset)
{
	bdat_envelope();
	cli("BDAT 4\r\nabcdBDAT 2 LAST\r\nef");
	cli("MAIL FROM:<b@x>\r\nRCPT TO:<a@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("second\r\n.\r\n");
	srv("250 queued\r\n");
	cr_assert(eq(int, R.nmsg, 2));
	assert_msg_bytes(0, "abcdef");
	assert_msg_bytes(1, "second\r\n");
	cr_assert(eq(str, R.m[1].from, "b@x"));
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, R.m[1].reply, 250));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, bad_bdat_takes_a_reply_and_no_data)
{
	bdat_envelope();
	/* suricata-verify smtp-bdat-bad-tail-reply-queue */
	cli("BDAT 5 X\r\nRSET\r\nMAIL FROM:<alice@x>\r\nRCPT TO:<bob@y>\r\nDATA\r\n");
	srv("501 5.5.4 Syntax: BDAT count [LAST]\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("hi\r\n.\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BDAT_BAD_SIZE], 1));
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(int, R.m[0].kind, MRY_SMTP_MSG_DATA));
	cr_assert(eq(str, R.m[0].from, "alice@x"));
	assert_msg_bytes(0, "hi\r\n");
}

/* ---- AUTH, STARTTLS --------------------------------------------------- */

static void auth_login_script(bool client_first)
{
	static const struct step st[] = {
		{ 'S', "220 hi\r\n" },
		{ 'C', "EHLO c\r\n" },
		{ 'S', "250-x\r\n250 AUTH LOGIN PLAIN\r\n" },
		{ 'C', "AUTH LOGIN\r\n" },
		{ 'S', "334 VXNlcm5hbWU6\r\n" },
		{ 'C', "REFUQQ==\r\n" },           /* "DATA" in base64: not a command */
		{ 'S', "334 UGFzc3dvcmQ6\r\n" },
		{ 'C', "RATA\r\n" },               /* looks like a command: SASL anyway */
		{ 'S', "235 2.7.0 Authentication successful\r\n" },
		{ 'C', "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n" },
		{ 'S', "250 ok\r\n250 ok\r\n354 go\r\n" },
		{ 'C', "body\r\n.\r\n" },
		{ 'S', "250 queued\r\n" },
	};

	run_script(st, MRY_ARRAY_SIZE(st), NULL, 0, client_first);
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "body\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, auth_login_responses_are_not_commands)
{
	auth_login_script(false);
}

Test(smtp, auth_login_responses_are_not_commands_client_first)
{
	auth_login_script(true);
}

Test(smtp, auth_plain_initial_response_and_failed_auth)
{
	srv("220 hi\r\n");
	cli("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	srv("535 5.7.8 bad credentials\r\n");
	cli("AUTH PLAIN\r\n");
	srv("334 \r\n");
	cli("REFUQQ==\r\n");
	srv("235 ok\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("z\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(u32, total_anomalies(), 0));
}

Test(smtp, auth_cancelled_with_star)
{
	srv("220 hi\r\n");
	cli("AUTH LOGIN\r\n");
	srv("334 VXNlcm5hbWU6\r\n");
	cli("*\r\n");
	srv("501 5.7.0 cancelled\r\n");
	cli("NOOP\r\n");
	srv("250 ok\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
	cr_assert(eq(u64, stats().commands, 2));
}

Test(smtp, starttls_220_stops_parsing)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-x\r\n250 STARTTLS\r\n");
	cli("STARTTLS\r\n");
	srv("220 2.0.0 Ready to start TLS\r\n");
	cr_assert(eq(int, R.starttls, 1));
	cr_assert(mry_smtp_encrypted(S));
	static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05, 'D', 'A', 'T', 'A', '\n' };
	cli_n(hello, sizeof(hello));
	srv("\x16\x03\x03garbage\r\n");
	cr_assert(eq(u32, total_anomalies(), 0));
	cr_assert(eq(int, R.nmsg, 0));
	cr_assert(eq(u64, stats().starttls, 1));
}

Test(smtp, starttls_refused_keeps_parsing_commands)
{
	srv("220 hi\r\n");
	cli("STARTTLS\r\nMAIL FROM:<a@x>\r\n");
	srv("454 4.7.0 TLS not available\r\n250 ok\r\n");
	cr_assert_not(mry_smtp_encrypted(S));
	cli("RCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n354 go\r\n");
	cli("q\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(str, R.m[0].from, "a@x"));
}

Test(smtp, cleartext_pipelined_after_starttls_is_an_anomaly)
{
	/* CVE-2011-0411 style command injection */
	srv("220 hi\r\n");
	cli("STARTTLS\r\nRSET\r\n");
	srv("220 go ahead\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_DATA_AFTER_TLS], 1));
	cr_assert(mry_smtp_encrypted(S));
}

/* ---- line ends, long lines -------------------------------------------- */

Test(smtp, bare_lf_dot_line_is_an_ambiguous_end_not_the_end)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\nRCPT TO:<b@y>\r\nDATA\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_LF], 1));
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	uint64_t start = coff;
	/* Postfix 3.7 ends the message at "\n.\n"; RFC 5321 does not */
	cli("one\ntwo\r\n\n.\nNOOP\r\n");
	cr_assert(mry_smtp_in_message(S));
	cr_assert(eq(u32, R.amb, 1));
	cr_assert(eq(int, R.amb_an[0], MRY_SMTP_AN_BARE_LF_END_OF_DATA));
	cr_assert(eq(u64, R.amb_off[0], start + strlen("one\ntwo\r\n\n")));
	cli(".\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(R.m[0].ended);
	/* the dot of the ambiguous line is a stuffing dot (a strict server's reading) */
	assert_msg_bytes(0, "one\ntwo\r\n\n\nNOOP\r\n");
	/* "one\n", "\n" and ".\n" */
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_LF], 4));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_LF_END_OF_DATA], 1));
	srv("250 queued\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, every_smuggling_end_of_data_is_reported_and_only_crlf_dot_crlf_ends)
{
	static const struct {
		const char *text;
		enum mry_smtp_anomaly an;
	} cases[] = {
		{ "a\n.\r\nb", MRY_SMTP_AN_BARE_LF_END_OF_DATA },     /* CVE-2023-51764 */
		{ "a\r\n.\nb", MRY_SMTP_AN_BARE_LF_END_OF_DATA },     /* CVE-2023-51765/51766 */
		{ "a\n.\nb", MRY_SMTP_AN_BARE_LF_END_OF_DATA },
		{ "a\r\n.\rb", MRY_SMTP_AN_BARE_CR_END_OF_DATA },
		{ "a\r\n.\r\r\nb", MRY_SMTP_AN_BARE_CR_END_OF_DATA },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		size_t n = strlen(cases[k].text);

		/* whole, and cut after every byte */
		for (size_t cut = 0; cut <= n; cut++) {
			uint64_t start;

			mry_smtp_session_free(C, S);
			mry_smtp_ctx_destroy(C);
			open_cfg(NULL);
			srv("220 hi\r\n");
			cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
			srv("250 ok\r\n250 ok\r\n354 go\r\n");
			start = coff;
			cli_n(cases[k].text, cut);
			cli(cases[k].text + cut);
			cr_assert(mry_smtp_in_message(S), "case %zu cut %zu", k, cut);
			cr_assert(eq(u32, R.amb, 1), "case %zu cut %zu", k, cut);
			cr_assert(eq(int, R.amb_an[0], cases[k].an), "case %zu cut %zu", k, cut);
			cr_assert(eq(u64, R.amb_off[0], start + (uint64_t)(strchr(cases[k].text, '.') -
									cases[k].text)));
			cli("\r\n.\r\n");
			cr_assert_not(mry_smtp_in_message(S), "case %zu cut %zu", k, cut);
			cr_assert(eq(u32, R.amb, 1));
		}
	}
}

Test(smtp, dot_with_extra_crs_and_bare_cr_dot_do_not_end_the_message)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("a\r.\rb\r\n.\r");
	cli("\r");
	cli("x\r\n");
	cr_assert(mry_smtp_in_message(S));
	cli(".\r\r\n");
	cr_assert(mry_smtp_in_message(S));
	cli(".\r\n");
	cr_assert_not(mry_smtp_in_message(S));
	/* ".\r\rx" and ".\r\r\n": the dots are stuffing dots, the CRs are data
	 * (CRs right before an LF are not bare: Postfix strips them) */
	assert_msg_bytes(0, "a\r.\rb\r\n\r\rx\r\n\r\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_CR], 2));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BARE_CR_END_OF_DATA], 2));
}

Test(smtp, pipelined_bdat_last_reply_lists_only_accepted_recipients)
{
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-s\r\n250 CHUNKING\r\n");
	/* Exim: MAIL, RCPT, RCPT and BDAT LAST in one segment */
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nBDAT 5 LAST\r\nhello");
	cr_assert(R.m[0].ended);
	srv("250 ok\r\n250 ok\r\n550 no such user\r\n250 queued\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(str, R.m[0].rcpt_reply, "b@y"));
	/* the same with DATA, the recipient refused after the message ended */
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n");
	cli("x\r\n.\r\n");
	srv("554 refused\r\n");
	cr_assert(eq(u32, R.m[1].reply, 554));
	cr_assert(eq(str, R.m[1].rcpt_reply, "b@y"));
}

Test(smtp, overlong_command_line_is_counted_and_parsing_stays_in_step)
{
	char line[2100];

	srv("220 hi\r\n");
	memcpy(line, "EHLO ", 5);
	memset(line + 5, 'a', sizeof(line) - 8);
	memcpy(line + sizeof(line) - 3, "\r\n", 3);
	cli_n(line, 700);
	cli(line + 700);
	cli("MAIL FROM:<a@x>\r\n");
	srv("500 line too long\r\n250 ok\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_CMD_LINE_TOO_LONG], 1));
	cli("RCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n354 go\r\n");
	cli("x\r\n.\r\n");
	cr_assert(eq(str, R.m[0].from, "a@x"));
}

Test(smtp, overlong_data_line_is_counted_and_dot_after_it_is_data)
{
	char line[2600];

	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	memset(line, 'b', 2048);
	memcpy(line + 2048, ".\r\n.\r\n", 7);
	cli(line);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_DATA_LINE_TOO_LONG], 1));
	cr_assert(eq(sz, R.m[0].len, 2051));
	cr_assert(R.m[0].ended);
}

Test(smtp, long_mail_from_split_across_segments_is_kept)
{
	char cmd[400], want[300];

	memset(want, 'q', 250);
	strcpy(want + 250, "@x");
	snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", want);
	srv("220 hi\r\n");
	for (size_t i = 0; i < strlen(cmd); i += 7)
		cli_n(cmd + i, MRY_MIN((size_t)7, strlen(cmd) - i));
	cli("RCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli(".\r\n");
	cr_assert(eq(str, R.m[0].from, want));
	cr_assert(eq(u32, total_anomalies(), 0));
}

/* ---- anomalies, each on its own --------------------------------------- */

Test(smtp, malformed_and_long_replies)
{
	char l[700];

	srv("220 hi\r\n");
	srv("hello\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_REPLY_MALFORMED], 1));
	cli("NOOP\r\n");
	memset(l, 'z', sizeof(l));
	memcpy(l, "250 ", 4);
	memcpy(l + sizeof(l) - 3, "\r\n", 3);
	srv(l);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_REPLY_LINE_TOO_LONG], 1));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, unknown_command_still_takes_a_reply)
{
	srv("220 hi\r\n");
	cli("XYZZY\r\nMAIL FROM:<a@x>\r\n");
	srv("502 unknown\r\n250 ok\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 1));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, nul_in_command)
{
	srv("220 hi\r\n");
	cli_n("NOOP\0x\r\n", 8);
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_NUL_IN_COMMAND], 1));
}

Test(smtp, data_without_rcpt_and_nested_mail)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nMAIL FROM:<b@x>\r\nDATA\r\n");
	srv("250 ok\r\n503 nested\r\n554 no valid recipients\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_MAIL_NESTED], 1));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_DATA_WITHOUT_RCPT], 1));
	cli("RCPT TO:<c@y>\r\nDATA\r\n");
	srv("250 ok\r\n354 go\r\n");
	cli(".\r\n");
	/* the first MAIL stands, as in Postfix */
	cr_assert(eq(str, R.m[0].from, "a@x"));
}

Test(smtp, bdat_and_data_mixed)
{
	bdat_envelope();
	cli("BDAT 2\r\nabDATA\r\n");
	srv("250 ok\r\n503 mixed\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BDAT_AFTER_DATA_MIX], 1));
	cr_assert(mry_smtp_in_message(S));
	cli("BDAT 1 LAST\r\nc");
	srv("250 queued\r\n");
	assert_msg_bytes(0, "abc");
}

Test(smtp, too_many_rcpt_and_truncated_address)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .max_rcpt = 2, .max_addr_len = 8 };

	teardown();
	open_cfg(&cfg);
	srv("220 hi\r\n");
	cli("MAIL FROM:<longsender@x>\r\nRCPT TO:<a@y>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli(".\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_TOO_MANY_RCPT], 1));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_ENVELOPE_TRUNCATED], 1));
	cr_assert(eq(str, R.m[0].from, "longsend"));
	cr_assert(eq(str, R.m[0].rcpt, "a@y,b@y"));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, close_inside_a_message_aborts)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("partial\r\n");
	mry_smtp_close(C, S);
	cr_assert(R.m[0].aborted);
	cr_assert(eq(int, R.m[0].why, MRY_SMTP_ABORT_CLOSED));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_MSG_UNTERMINATED], 1));
	cli("more\r\n.\r\n");
	cr_assert_not(R.m[0].ended);
}

Test(smtp, reply_421_closes)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("partial\r\n");
	srv("421 4.4.2 timeout\r\n");
	cr_assert(R.m[0].aborted);
	cr_assert(eq(int, R.m[0].why, MRY_SMTP_ABORT_CLOSED));
	cli("x\r\n.\r\n");
	cr_assert_not(R.m[0].ended);
}

Test(smtp, pending_cap_decides_data_is_a_message)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .max_pending_data = 16,
				       .pending_pool_count = 1 };

	teardown();
	open_cfg(&cfg);
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n");
	cli("0123456789\r\n");
	cr_assert(eq(int, R.nmsg, 0));
	cli("abcdefghij\r\n.\r\nQUIT\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_PENDING_DATA_FULL], 1));
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "0123456789\r\nabcdefghij\r\n");
	cr_assert(R.m[0].ended);
	srv("354 go\r\n250 queued\r\n221 bye\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, pending_pool_empty_is_counted_and_decided)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .pending_pool_count = 1 };
	struct mry_smtp_session *s2;

	teardown();
	open_cfg(&cfg);
	s2 = mry_smtp_session_new(C, NULL);
	mry_smtp_server_data(C, s2, (const uint8_t *)"220 hi\r\n", 8, 0);
	mry_smtp_client_data(C, s2, (const uint8_t *)"DATA\r\nx", 7, 0);
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nbody\r\n.\r\n");
	cr_assert(eq(u64, stats().pending_pool_empty, 1));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_PENDING_DATA_FULL], 1));
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "body\r\n");
	mry_smtp_session_free(C, s2);
}

Test(smtp, pipeline_overflow_keeps_replies_in_step)
{
	srv("220 hi\r\n");
	for (int i = 0; i < 20; i++)
		cli("MAIL FROM:<a@x>\r\nRSET\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_PIPELINE_OVERFLOW] > 0, 1));
	for (int i = 0; i < 20; i++)
		srv("250 ok\r\n250 reset\r\n");
	cli("MAIL FROM:<z@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("ok\r\n.\r\n");
	srv("250 queued\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, withhold_from_covers_bytes_after_data_until_its_reply)
{
	srv("220 hi\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S), UINT64_MAX));
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S), coff));
	srv("250 ok\r\n250 ok\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S), coff));
	srv("354 go\r\n");
	cr_assert(eq(u64, mry_smtp_withhold_from(S), UINT64_MAX));
	cr_assert(mry_smtp_in_message(S));
}

Test(smtp, session_is_small_and_pool_empty_is_counted)
{
	struct mry_smtp_config cfg = { .max_sessions = 1 };

	cr_assert(le(sz, mry_smtp_session_bytes(), 512));
	teardown();
	open_cfg(&cfg);
	cr_assert_null(mry_smtp_session_new(C, NULL));
	cr_assert(eq(u64, stats().session_pool_empty, 1));
	cr_assert(eq(u64, stats().sessions, 1));
}

Test(smtp, anomaly_names_are_distinct)
{
	for (int i = 0; i < MRY_SMTP_AN_MAX; i++) {
		cr_assert_not_null(mry_smtp_anomaly_name(i));
		for (int j = 0; j < i; j++)
			cr_assert(ne(int, strcmp(mry_smtp_anomaly_name(i),
						 mry_smtp_anomaly_name(j)), 0));
	}
}

Test(smtp, missing_greeting_does_not_shift_replies)
{
	/* suricata-verify smtp-rset-starttls: the server never sent 220 */
	cli("EHLO\nrset\nstaRttLs\n");
	srv("250\r\n250\r\n220\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_REPLY_OUT_OF_STEP], 1));
	cr_assert(mry_smtp_encrypted(S));
	cr_assert(eq(int, R.starttls, 1));
}

Test(smtp, reply_354_finds_the_waiting_data)
{
	/* a multi-line EHLO reply lost its last line: replies one behind */
	srv("220 hi\r\n");
	cli("EHLO c\r\n");
	srv("250-x\r\n");
	cli("MAIL FROM:<a@x>\r\n");
	srv("250 ok\r\n");
	cli("RCPT TO:<b@y>\r\n");
	srv("250 ok\r\n");
	cli("DATA\r\n");
	srv("354 go\r\n");
	cli("m\r\n.\r\n");
	srv("250 queued\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_REPLY_OUT_OF_STEP], 1));
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "m\r\n");
	cr_assert(eq(u32, R.m[0].reply, 250));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
}

Test(smtp, close_flushes_bytes_waiting_for_a_lost_data_reply)
{
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nkept\r\n.\r\nQUIT\r\n");
	cr_assert(eq(int, R.nmsg, 0));
	mry_smtp_close(C, S);
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "kept\r\n");
	cr_assert(R.m[0].ended);
	cr_assert(eq(u32, R.m[0].reply, 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
}

Test(smtp, rejected_bdat_chunk_reported_after_last_gives_refused_reply)
{
	bdat_envelope();
	/* all chunks sent before any reply: the message ends first */
	cli("BDAT 3\r\nabcBDAT 2 LAST\r\nde");
	cr_assert(R.m[0].ended);
	srv("552 5.3.4 too big\r\n552 5.3.4 skipped\r\n");
	cr_assert_not(R.m[0].aborted);
	cr_assert(eq(u32, R.m[0].reply, 552));
	cr_assert(eq(u64, stats().messages_refused, 1));
}

Test(smtp, empty_envelope_data_after_rset_is_one_empty_message)
{
	/* suricata-verify smtp-pipelined-rset-data-replies */
	srv("220 hi\r\n");
	cli("RSET\r\nDATA\r\n.\r\n");
	srv("250 ok\r\n354 go\r\n250 ok\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(sz, R.m[0].len, 0));
	cr_assert(eq(str, R.m[0].from, ""));
	cr_assert(eq(u32, R.m[0].nb_rcpt, 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_DATA_WITHOUT_RCPT], 1));
	cr_assert(eq(u32, R.m[0].reply, 250));
}

Test(smtp, freed_sessions_return_their_buffers)
{
	struct mry_smtp_config cfg = { .max_sessions = 1, .pending_pool_count = 1,
				       .envelope_pool_count = 1, .line_pool_count = 1 };

	teardown();
	open_cfg(&cfg);
	for (int i = 0; i < 3; i++) {
		srv("220 hi\r\n");
		cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nheld\r\n");
		cli("MAIL FROM:<a-long-address-split-over-segments");
		mry_smtp_session_free(C, S);
		S = mry_smtp_session_new(C, NULL);
		cr_assert_not_null(S);
		coff = soff = 0;
	}
	struct mry_smtp_stats st = stats();
	cr_assert(eq(u64, st.pending_pool_empty, 0));
	cr_assert(eq(u64, st.envelope_pool_empty, 0));
	cr_assert(eq(u64, st.line_pool_empty, 0));
	cr_assert(eq(u64, st.session_pool_empty, 0));
}

Test(smtp, envelope_pool_empty_still_delivers_the_message)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .envelope_pool_count = 1 };
	struct mry_smtp_session *s2;

	teardown();
	open_cfg(&cfg);
	s2 = mry_smtp_session_new(C, NULL);
	mry_smtp_client_data(C, s2, (const uint8_t *)"MAIL FROM:<z@x>\r\n", 17, 0);
	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	cli("still scanned\r\n.\r\n");
	cr_assert(eq(u64, stats().envelope_pool_empty, 2));
	cr_assert(eq(int, R.nmsg, 1));
	assert_msg_bytes(0, "still scanned\r\n");
	cr_assert(eq(str, R.m[0].from, ""));
	cr_assert(R.m[0].lost, "the engine refuses a message whose envelope was lost");
	mry_smtp_session_free(C, s2);
}

Test(smtp, a_fifth_recipient_moves_the_envelope_to_a_big_one)
{
	char line[64];

	srv("220 hi\r\n");
	cli("MAIL FROM:<a@x>\r\n");
	for (int i = 0; i < 12; i++) {
		snprintf(line, sizeof(line), "RCPT TO:<r%d@y>\r\n", i);
		cli(line);
	}
	cli("DATA\r\n");
	srv("250 ok\r\n");
	for (int i = 0; i < 12; i++)
		srv(i == 2 || i == 7 ? "550 no\r\n" : "250 ok\r\n");
	srv("354 go\r\n");
	cli("x\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert_not(R.m[0].lost);
	cr_assert(eq(str, R.m[0].from, "a@x"));
	cr_assert(eq(u32, R.m[0].nb_rcpt, 10));
	cr_assert(eq(str, R.m[0].rcpt,
		     "r0@y,r1@y,r3@y,r4@y,r5@y,r6@y,r8@y,r9@y,r10@y,r11@y"));
	cr_assert(eq(u64, stats().envelope_pool_empty, 0));
}

Test(smtp, many_recipients_without_a_big_envelope_lose_the_envelope)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .envelope_pool_count = 2,
				       .big_envelope_pool_count = 1 };
	struct mry_smtp_session *s2;
	static const char five[] = "MAIL FROM:<z@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\n"
				   "RCPT TO:<3@y>\r\nRCPT TO:<4@y>\r\nRCPT TO:<5@y>\r\n";

	teardown();
	open_cfg(&cfg);
	s2 = mry_smtp_session_new(C, NULL);
	mry_smtp_client_data(C, s2, (const uint8_t *)five, sizeof(five) - 1, 0);
	srv("220 hi\r\n");
	cli(five);                        /* the only big envelope is s2's */
	cli("DATA\r\n");
	srv("250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(R.m[0].lost, "never reported with part of its recipients");
	cr_assert(eq(u64, stats().envelope_pool_empty, 1));
	mry_smtp_session_free(C, s2);
}

Test(smtp, cleartext_after_starttls_220_is_an_anomaly)
{
	srv("220 hi\r\n");
	cli("STARTTLS\r\n");
	srv("220 go ahead\r\n");
	cli("MAIL FROM:<a@x>\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_DATA_AFTER_TLS], 1));
	cr_assert(eq(int, R.nmsg, 0));
	cr_assert(eq(u64, stats().commands, 1));
}

Test(smtp, bdat_bad_sizes_consume_no_data)
{
	static const char *bad[] = {
		"BDAT\r\n", "BDAT x\r\n", "BDAT -5\r\n", "BDAT 5 LAST X\r\n",
		"BDAT 99999999999999999999999\r\n", "BDAT 5x\r\n", "BDAT 5 FIRST\r\n",
	};

	bdat_envelope();
	for (size_t i = 0; i < MRY_ARRAY_SIZE(bad); i++) {
		cli(bad[i]);
		cli("NOOP\r\n");
	}
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_BDAT_BAD_SIZE], MRY_ARRAY_SIZE(bad)));
	cr_assert(eq(int, R.nmsg, 0));
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
	for (size_t i = 0; i < MRY_ARRAY_SIZE(bad); i++)
		srv("501 5.5.4 Syntax\r\n250 ok\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
}

Test(smtp, pending_cap_behind_auth_reads_commands)
{
	struct mry_smtp_config cfg = { .max_sessions = 2, .max_pending_data = 16,
				       .pending_pool_count = 1 };

	teardown();
	open_cfg(&cfg);
	srv("220 hi\r\n");
	/* a client that does not wait for the AUTH reply: never skip bytes */
	cli("AUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_PENDING_DATA_FULL], 1));
	srv("235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cli("m\r\n.\r\n");
	cr_assert(eq(int, R.nmsg, 1));
	cr_assert(eq(str, R.m[0].from, "a@x"));
	assert_msg_bytes(0, "m\r\n");
}

/* ---- real captures: tests/data/samples --------------------------------- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* a test-data directory the build names (MORAY_TESTDATA): missing fails */
static const char *data_dir(const char *sub)
{
	static char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", MORAY_TESTDATA, sub);
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		cr_fatal("test data directory %s missing", path);
	return path;
}

struct conn {
	uint16_t cport, sport;
	uint32_t cisn, sisn;
	bool have_c, have_s;
	uint64_t cnext, snext;
	struct mry_smtp_session *s;
};

#define MAXCONN 8
static struct conn CS[MAXCONN];
static int NC;

static uint32_t rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Replays a classic pcap (Ethernet or BSD loopback, IPv4/IPv6, TCP) in capture
 * order, one session per connection (user = connection number from 1),
 * retransmitted bytes trimmed. The server is the SYN's destination, else
 * the side on port 25/587/2525. With @client_first every client byte goes
 * before every server byte. Sessions are closed at the end.
 */
static void replay_pcap(const char *path, bool client_first)
{
	size_t len, p;
	uint8_t *pc = slurp(path, &len);
	uint32_t link;

	cr_assert_not_null(pc, "cannot read %s", path);
	cr_assert(ge(sz, len, 24));
	link = rd32le(pc + 20);
	memset(CS, 0, sizeof(CS));
	NC = 0;
	for (int pass = 0; pass < (client_first ? 2 : 1); pass++) {
		for (int i = 0; i < NC; i++)
			CS[i].cnext = CS[i].snext = 0;
		p = 24;
		while (p + 16 <= len) {
			uint32_t incl = rd32le(pc + p + 8);
			const uint8_t *fr = pc + p + 16, *ip, *t, *d;
			size_t ihl, thl, tot, plen;
			uint16_t sp, dp;
			uint32_t seq;
			uint8_t fl;
			struct conn *k = NULL;
			bool toserver = false;

			p += 16 + incl;
			if (p > len)
				break;
			if (link == 1) {
				if (!(fr[12] == 0x08 && fr[13] == 0x00) &&
				    !(fr[12] == 0x86 && fr[13] == 0xdd))
					continue;
				ip = fr + 14;
			} else if (link == 0) {
				ip = fr + 4;
			} else {
				cr_fail("link type %u", link);
				return;
			}
			if ((ip[0] >> 4) == 6) {
				/* no extension headers in these captures */
				if (ip[6] != 6)
					continue;
				ihl = 40;
				tot = 40 + ((size_t)ip[4] << 8 | ip[5]);
			} else {
				if ((ip[0] >> 4) != 4 || ip[9] != 6)
					continue;
				ihl = (size_t)(ip[0] & 0x0f) * 4;
				tot = (size_t)ip[2] << 8 | ip[3];
			}
			t = ip + ihl;
			sp = (uint16_t)(t[0] << 8 | t[1]);
			dp = (uint16_t)(t[2] << 8 | t[3]);
			seq = (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];
			thl = (size_t)(t[12] >> 4) * 4;
			fl = t[13];
			plen = tot - ihl - thl;
			for (int i = 0; i < NC; i++) {
				if (CS[i].cport == sp && CS[i].sport == dp) {
					k = &CS[i];
					toserver = true;
				} else if (CS[i].cport == dp && CS[i].sport == sp) {
					k = &CS[i];
				}
			}
			if (k == NULL) {
				cr_assert(lt(int, NC, MAXCONN));
				k = &CS[NC++];
				toserver = (fl & 0x12) == 0x02 || dp == 25 || dp == 587 || dp == 2525;
				k->cport = toserver ? sp : dp;
				k->sport = toserver ? dp : sp;
				k->s = mry_smtp_session_new(C, (void *)(uintptr_t)NC);
				cr_assert_not_null(k->s);
			}
			if (fl & 0x02) {
				if (toserver) {
					k->cisn = seq;
					k->have_c = true;
				} else {
					k->sisn = seq;
					k->have_s = true;
				}
				continue;
			}
			if (plen == 0)
				continue;
			if (toserver && !k->have_c) {
				k->cisn = seq - 1;
				k->have_c = true;
			} else if (!toserver && !k->have_s) {
				k->sisn = seq - 1;
				k->have_s = true;
			}
			uint64_t o = (uint32_t)(seq - (toserver ? k->cisn : k->sisn) - 1);
			uint64_t *next = toserver ? &k->cnext : &k->snext;

			d = t + thl;
			if (o + plen <= *next)
				continue;
			cr_assert(le(u64, o, *next), "gap in %s", path);
			d += *next - o;
			plen -= (size_t)(*next - o);
			o = *next;
			*next += plen;
			if (toserver && (!client_first || pass == 0))
				mry_smtp_client_data(C, k->s, d, plen, o);
			else if (!toserver && (!client_first || pass == 1))
				mry_smtp_server_data(C, k->s, d, plen, o);
		}
	}
	for (int i = 0; i < NC; i++) {
		mry_smtp_close(C, CS[i].s);
		mry_smtp_session_free(C, CS[i].s);
	}
	free(pc);
}

/* compares every message with <stem>.<src>.<sport>-<dst>.<dport>.<idx>.eml */
static int replay_sample(const char *dir, const char *stem, bool client_first)
{
	char path[512];
	int checked = 0;

	snprintf(path, sizeof(path), "%s/%s.pcap", dir, stem);
	replay_pcap(path, client_first);
	/* one message per connection, connections one after the other */
	for (int i = 0; i < NC; i++) {
		uint8_t *want;
		size_t wlen;

		snprintf(path, sizeof(path), "%s/%s.192.0.2.1.%u-192.0.2.2.25.0.eml", dir,
			 stem, CS[i].cport);
		want = slurp(path, &wlen);
		cr_assert_not_null(want, "missing %s", path);
		cr_assert(lt(int, i, R.nmsg));
		cr_assert(R.m[i].ended, "%s conn %d not ended", stem, i);
		cr_assert(eq(sz, R.m[i].len, wlen), "%s conn %d: %zu bytes, eml %zu", stem, i,
			  R.m[i].len, wlen);
		cr_assert(eq(int, memcmp(R.m[i].bytes, want, wlen), 0), "%s conn %d differs", stem, i);
		cr_assert(eq(u32, R.m[i].index, 0));
		cr_assert(eq(u32, R.m[i].reply, 250), "%s conn %d reply %u", stem, i, R.m[i].reply);
		free(want);
		checked++;
	}
	cr_assert(eq(int, R.nmsg, NC));
	return checked;
}

static void sample_test(const char *stem, int conns)
{
	const char *dir = data_dir("samples");

	for (int mode = 0; mode < 2; mode++) {
		teardown();
		setup();
		cr_assert(eq(int, replay_sample(dir, stem, mode == 1), conns));
		cr_assert(eq(int, R.order_errors, 0));
		cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNEXPECTED_REPLY], 0));
		cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 0));
	}
}

Test(smtp, sample_swaks_plain_is_byte_identical)
{
	sample_test("01_swaks_plain", 1);
}

Test(smtp, sample_swaks_attachment_is_byte_identical)
{
	sample_test("02_swaks_attach_eicar", 1);
}

Test(smtp, sample_swaks_pipeline_is_byte_identical)
{
	sample_test("03_swaks_pipeline", 1);
	cr_assert(eq(str, R.m[0].rcpt, "bob@corp-srv.example,carol@corp-srv.example"));
}

Test(smtp, sample_exim_bdat_is_byte_identical)
{
	sample_test("04_exim_bdat", 2);
	cr_assert(eq(int, R.m[0].kind, MRY_SMTP_MSG_BDAT));
	cr_assert(eq(u64, R.m[0].declared, 1575));
}

/* ---- suricata-verify captures (tests/data/peer) ----------------------- */

struct peer_case {
	const char *file;
	int begun, ended, accepted;
	unsigned max_unknown;     /* UNKNOWN_COMMAND allowed (garbage captures) */
};

/*
 * Expected counts follow "What an SMTP scanner should report" in the
 * peer README, read through the server's replies.
 */
static const struct peer_case PEERS[] = {
	{ "bug-1045/smtpsuricataflowbitsFN.pcap", 1, 1, 1, 0 },
	{ "bug-3616-smtp/input.pcap", 1, 1, 1, 0 },
	{ "bug-7126/input.pcap", 2, 2, 2, 0 },
	{ "detect-email-received/input.pcap", 1, 1, 1, 0 },
	{ "ruletype-firewall-131-smtp-quit-after-mail-from/smtp-quit-after-mail.pcap", 0, 0, 0, 0 },
	{ "ruletype-firewall-135-smtp-multi-mail-accept/smtp-multi-mail.pcap", 3, 3, 3, 0 },
	{ "ruletype-firewall-139-smtp-pipelined-post-data-mail-from/smtp-pipelined-post-data-mail-from.pcap", 2, 2, 2, 0 },
	{ "smtp-bdat-bad-tail-next-mail/input.pcap", 2, 2, 0, 0 },
	{ "smtp-bdat-bad-tail-reply-queue/input.pcap", 1, 1, 1, 0 },
	{ "smtp-bdat-last-next-mail/input.pcap", 2, 2, 2, 0 },
	{ "smtp-bdat-multichunk-inspection/input.pcap", 2, 2, 2, 0 },
	{ "smtp-bdat-multichunk-next-mail/input.pcap", 2, 2, 2, 0 },
	{ "smtp-bdat-pipelined-next-mail/input.pcap", 2, 2, 2, 0 },
	{ "smtp-bdat-zero-last-next-mail/input.pcap", 2, 2, 2, 0 },
	{ "smtp-bug-5981/input.pcap", 1, 1, 1, 0 },
	{ "smtp-bug-5989/input.pcap", 1, 1, 0, 2 },
	{ "smtp-bug-6053/input.pcap", 0, 0, 0, 1 },
	{ "smtp-data-rejected/10.7.29.101_49898-178.63.41.150_25.pcap", 1, 1, 0, 0 },
	{ "smtp-ehlo-reset-after-rejected-data/input.pcap", 1, 1, 1, 0 },
	{ "smtp-long-command/input.pcap", 0, 0, 0, 0 },
	{ "smtp-pipelined-post-data-rset-sequence/input.pcap", 2, 2, 2, 0 },
	{ "smtp-pipelined-rset-after-complete/input.pcap", 2, 2, 2, 0 },
	{ "smtp-pipelined-rset-data-replies/input.pcap", 1, 1, 1, 0 },
	{ "smtp-rset/input.pcap", 2, 2, 2, 0 },
	{ "smtp-rset-starttls/input.pcap", 0, 0, 0, 0 },
	{ "smtp-startssl/input.pcap", 0, 0, 0, 0 },
	{ "mime-stream-depth/input.pcap", 4, 3, 3, 0 },
};

Test(smtp, suricata_verify_captures_give_the_expected_messages)
{
	const char *dir = data_dir("peer/suricata-verify");

	for (size_t i = 0; i < MRY_ARRAY_SIZE(PEERS); i++) {
		for (int mode = 0; mode < 2; mode++) {
			char path[512];
			struct mry_smtp_stats sst;
			int ended = 0;

			/*
			 * Client first holds whole conversations behind DATA:
			 * a buffer big enough that no decision is forced.
			 */
			struct mry_smtp_config cfg = { .max_sessions = 8,
						       .max_pending_data = 4u << 20,
						       .pending_pool_count = 2 };

			teardown();
			open_cfg(&cfg);
			snprintf(path, sizeof(path), "%s/%s", dir, PEERS[i].file);
			replay_pcap(path, mode == 1);
			sst = stats();
			for (int m = 0; m < R.nmsg; m++)
				ended += R.m[m].ended;
			cr_assert(eq(int, R.nmsg, PEERS[i].begun), "%s mode %d", PEERS[i].file, mode);
			cr_assert(eq(int, ended, PEERS[i].ended), "%s mode %d", PEERS[i].file, mode);
			cr_assert(eq(u64, sst.messages_accepted, (uint64_t)PEERS[i].accepted),
				  "%s mode %d", PEERS[i].file, mode);
			cr_assert(le(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], PEERS[i].max_unknown),
				  "%s mode %d", PEERS[i].file, mode);
			cr_assert(eq(int, R.order_errors, 0), "%s mode %d", PEERS[i].file, mode);
		}
	}
}

/* ---- Zeek captures with the message Zeek extracted -------------------- */

Test(smtp, zeek_captures_give_byte_identical_messages)
{
	/* client side only (IPv6, no replies): flushed at close; BDAT non-ASCII */
	static const char *stems[] = { "smtp-attachment-msg", "rfc3030-bdat-nonascii" };
	const char *dir = data_dir("peer/zeek");

	for (size_t i = 0; i < MRY_ARRAY_SIZE(stems); i++) {
		char path[512];
		uint8_t *want;
		size_t wlen;

		teardown();
		setup();
		snprintf(path, sizeof(path), "%s/%s.pcap", dir, stems[i]);
		replay_pcap(path, false);
		snprintf(path, sizeof(path), "%s/%s.expected-message.eml", dir, stems[i]);
		want = slurp(path, &wlen);
		cr_assert_not_null(want, "test data %s missing", path);
		cr_assert(eq(int, R.nmsg, 1), "%s", stems[i]);
		cr_assert(R.m[0].ended, "%s", stems[i]);
		cr_assert(eq(sz, R.m[0].len, wlen), "%s", stems[i]);
		cr_assert(eq(int, memcmp(R.m[0].bytes, want, wlen), 0), "%s", stems[i]);
		free(want);
	}
}

Test(smtp, zeek_bdat_captures)
{
	static const struct peer_case zk[] = {
		{ "rfc3030-bdat-0-last.pcap", 1, 1, 1, 0 },
		{ "rfc3030-bdat-example1.pcap", 1, 1, 1, 0 },
		{ "rfc3030-bdat-multipart.pcap", 1, 1, 1, 0 },
		{ "rfc3030-bdat-multipart-chunked.pcap", 1, 1, 1, 0 },
		{ "smtp-bdat-cmd-chunk-size-overflow.pcap", 0, 0, 0, 0 },
		{ "smtp-bdat-cmd-negative-chunk-size.pcap", 0, 0, 0, 0 },
		{ "smtp-starttls.pcap", 0, 0, 0, 0 },
	};
	const char *dir = data_dir("peer/zeek");
	for (size_t i = 0; i < MRY_ARRAY_SIZE(zk); i++) {
		char path[512];
		int ended = 0;

		teardown();
		setup();
		snprintf(path, sizeof(path), "%s/%s", dir, zk[i].file);
		replay_pcap(path, false);
		for (int m = 0; m < R.nmsg; m++)
			ended += R.m[m].ended;
		cr_assert(eq(int, R.nmsg, zk[i].begun), "%s", zk[i].file);
		cr_assert(eq(int, ended, zk[i].ended), "%s", zk[i].file);
		cr_assert(eq(u64, stats().messages_accepted, (uint64_t)zk[i].accepted), "%s", zk[i].file);
		/* one chunk, or 26 x 129 + 106 octets, joined: 3460 either way */
		if (strstr(zk[i].file, "multipart") != NULL)
			cr_assert(eq(sz, R.m[0].len, 3460), "%s", zk[i].file);
	}
}

/* ---- the block line scanner against the per-line code -------------------- */

/*
 * A body of plain lines with, here and there, what the block scanner must
 * hand back to the per-line code: bare CR, bare LF, "\r\r\n", stuffed dots,
 * lines over the 1000-byte limit. Fed whole (block scanner) and byte by
 * byte (per-line code only), the message bytes and every anomaly count must
 * be the same.
 */
static size_t random_body(uint8_t *b, size_t cap, unsigned seed)
{
	size_t n = 0;

	srand(seed);
	while (n + 1300 < cap) {
		int kind = rand() % 24, len = rand() % 90;

		if (kind == 0)
			len = 990 + rand() % 30;        /* around the line limit */
		if (kind == 1)
			b[n++] = '.';                   /* stuffed */
		for (int i = 0; i < len; i++)
			b[n++] = (uint8_t)('A' + rand() % 58);
		if (kind == 2 && len > 2)
			b[n - 1 - rand() % 2] = '\r';   /* bare CR inside */
		if (kind == 3) {
			b[n++] = '\n';                  /* bare LF */
		} else if (kind == 4) {
			b[n++] = '\r';
			b[n++] = '\r';
			b[n++] = '\n';
		} else {
			b[n++] = '\r';
			b[n++] = '\n';
		}
	}
	memcpy(b + n, ".\r\n", 3);
	return n + 3;
}

static void feed_body(const uint8_t *body, size_t len, size_t step)
{
	cli("MAIL FROM:<a@a.example>\r\nRCPT TO:<b@b.example>\r\nDATA\r\n");
	srv("250 ok\r\n250 ok\r\n354 go\r\n");
	for (size_t i = 0; i < len; i += step)
		cli_n(body + i, MRY_MIN(step, len - i));
}

static void block_scanner_matches_per_line_code(bool baseline)
{
	static uint8_t body[200000];
	unsigned an_whole[MRY_SMTP_AN_MAX];

	mry_cpu_force_baseline(baseline);
	for (unsigned seed = 1; seed <= 20; seed++) {
		size_t len = random_body(body, sizeof(body), seed), whole_len;
		uint8_t *whole;

		teardown();
		setup();
		srv("220 mx\r\n");
		feed_body(body, len, len);
		cr_assert(eq(int, R.nmsg, 1), "seed %u", seed);
		cr_assert(R.m[0].ended, "seed %u", seed);
		whole = R.m[0].bytes;
		whole_len = R.m[0].len;
		R.m[0].bytes = NULL;
		memcpy(an_whole, R.an, sizeof(an_whole));

		teardown();
		setup();
		srv("220 mx\r\n");
		feed_body(body, len, 1);
		cr_assert(eq(int, R.nmsg, 1), "seed %u", seed);
		cr_assert(eq(sz, R.m[0].len, whole_len), "seed %u", seed);
		cr_assert(eq(int, memcmp(R.m[0].bytes, whole, whole_len), 0), "seed %u", seed);
		for (int a = 0; a < MRY_SMTP_AN_MAX; a++)
			cr_assert(eq(u32, R.an[a], an_whole[a]), "seed %u: anomaly %s: %u whole, %u byte by byte",
				  seed, mry_smtp_anomaly_name((enum mry_smtp_anomaly)a), an_whole[a], R.an[a]);
		cr_assert(gt(u32, R.an[MRY_SMTP_AN_BARE_CR] + R.an[MRY_SMTP_AN_BARE_LF], 0));
		free(whole);
	}
	mry_cpu_force_baseline(false);
}

/* the SSE2 scanner, on any x86-64 */
Test(smtp, block_line_scanner_matches_the_per_line_code)
{
	block_scanner_matches_per_line_code(true);
}

/*
 * the AVX2 scanner where the CPU has it; without AVX2 (or with
 * MORAY_FORCE_SCALAR=1, as the smtp_scalar test runs) the SSE2 one again,
 * and the test says so
 */
Test(smtp, block_line_scanner_avx2_matches_the_per_line_code)
{
	fprintf(stderr, "block line scanner: %s\n",
		mry_cpu_force_baseline(false)
			? "compared the AVX2 scanner with the per-line code"
			: "no AVX2 scanner here (CPU without AVX2, or MORAY_FORCE_SCALAR=1): "
			  "compared the SSE2 scanner only");
	block_scanner_matches_per_line_code(false);
}

/* ---- phase events (the engine's deadlines follow them) ----------------- */

/* G greeting, C command line, R reply, D DATA sent, X DATA refused, K BDAT
 * chunk octets follow, E chunk ended (not LAST); b/e/a message begin/end/abort */
Test(smtp, phase_events_for_data_in_order)
{
	srv("220 mx ESMTP\r\n");
	cli("EHLO c\r\n");
	srv("250-mx\r\n250 PIPELINING\r\n");
	cli("MAIL FROM:<a@b>\r\n");
	srv("250 ok\r\n");
	cli("RCPT TO:<c@d>\r\n");
	srv("250 ok\r\n");
	cli("DATA\r\n");
	srv("354 go\r\n");
	cli("Subject: x\r\n\r\nbody\r\n.\r\n");
	srv("250 queued\r\n");
	cli("QUIT\r\n");
	srv("221 bye\r\n");
	cr_assert_str_eq(R.trace, "GCRCRCRCDRbeRCR");
}

Test(smtp, phase_events_partial_line_fires_nothing_until_its_end)
{
	srv("220 mx ESMTP\r\n");
	cli("N");
	cli("O");
	cli("O");
	cr_assert_str_eq(R.trace, "G");
	cli("P\r\n");
	cr_assert_str_eq(R.trace, "GC");
}

Test(smtp, phase_events_for_pipelined_mail_rcpt_data)
{
	srv("220 mx ESMTP\r\n");
	cli("EHLO c\r\n");
	srv("250 PIPELINING\r\n");
	cli("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n");
	cr_assert_str_eq(R.trace, "GCRCCCCD");
	srv("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
	cr_assert_str_eq(R.trace, "GCRCCCCDRRRRb");
	cli("hi\r\n.\r\n");
	srv("250 queued\r\n");
	cr_assert_str_eq(R.trace, "GCRCCCCDRRRRbeR");
}

Test(smtp, phase_events_for_refused_data)
{
	srv("220 mx ESMTP\r\n");
	cli("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
	srv("250 mx\r\n250 ok\r\n550 no such user\r\n554 no valid recipients\r\n");
	cr_assert_str_eq(R.trace, "GCCCCDRRRRX");
	cr_assert(eq(int, R.nmsg, 0));
	cli("QUIT\r\n");
	cr_assert_str_eq(R.trace, "GCCCCDRRRRXC");
}

Test(smtp, phase_events_for_bdat_chunks)
{
	srv("220 mx ESMTP\r\n");
	cli("EHLO c\r\n");
	srv("250 CHUNKING\r\n");
	cli("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
	srv("250 ok\r\n250 ok\r\n");
	cli("BDAT 5\r\nhel");
	cr_assert_str_eq(R.trace, "GCRCCRRCbK");
	cli("lo");
	cr_assert_str_eq(R.trace, "GCRCCRRCbKE");
	srv("250 5 octets\r\n");
	cli("BDAT 3 LAST\r\nabc");
	srv("250 queued\r\n");
	cr_assert_str_eq(R.trace, "GCRCCRRCbKERCKeR");
	assert_msg_bytes(0, "helloabc");
	/* BDAT 0 LAST: no octets follow, no chunk */
	rec_reset();
	cli("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 0 LAST\r\n");
	cr_assert_str_eq(R.trace, "CCCbe");
}

/* Garbage lines are no commands: neither they nor the replies to them count. */
Test(smtp, phase_events_skip_unknown_commands_and_their_replies)
{
	srv("220 mx ESMTP\r\n");
	cli("EHLO c\r\n");
	srv("250 mx\r\n");
	cli("xyzzy\r\n\r\nGET / HTTP/1.0\r\n");
	srv("500 5.5.2 Error: command not recognized\r\n");
	srv("500 5.5.2 Error: command not recognized\r\n");
	srv("500 5.5.2 Error: command not recognized\r\n");
	cr_assert_str_eq(R.trace, "GCR");
	cli("NOOP\r\n");
	srv("250 ok\r\n");
	cr_assert_str_eq(R.trace, "GCRCR");
	cr_assert(eq(u32, R.an[MRY_SMTP_AN_UNKNOWN_COMMAND], 3));
}
