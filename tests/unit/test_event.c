/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The verdict-log JSON writer: every event line a consumer parses goes
 * through it, so escaping, numbers, timestamps, nesting and the overflow
 * rule (a truncated event is dropped, never emitted half-written) are
 * checked byte for byte.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/blocklist.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/flow.h"
#include "moray/scan.h"
#include "moray/sigdb.h"

#include "engine_priv.h"

static char buf[512];
static struct mry_json J;

static char *finish(void)
{
	size_t n = mry_json_end(&J);

	cr_assert(ne(sz, n, 0), "unexpected overflow");
	cr_assert(eq(sz, n, strlen(buf)));
	return buf;
}

TestSuite(event, .init = NULL);

Test(event, members_are_separated_and_typed)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_str(&J, "a", "x");
	mry_json_u64(&J, "n", 0);
	mry_json_u64(&J, "max", UINT64_MAX);
	mry_json_bool(&J, "t", true);
	mry_json_bool(&J, "f", false);
	mry_json_str(&J, "null", NULL);
	cr_assert(eq(str, finish(),
		     "{\"a\":\"x\",\"n\":0,\"max\":18446744073709551615,\"t\":true,\"f\":false,"
		     "\"null\":null}"));
}

Test(event, strings_are_escaped_as_json_requires)
{
	const char in[] = "q\"b\\c\x01\x1f\x7f tab\t nl\n end";

	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_strn(&J, "s", in, sizeof(in) - 1);
	cr_assert(eq(str, finish(),
		     "{\"s\":\"q\\\"b\\\\c\\u0001\\u001f\\u007f tab\\u0009 nl\\u000a end\"}"));
}

Test(event, valid_utf8_passes_invalid_bytes_are_escaped)
{
	/* é (2 bytes), € (3), 😀 (4); then a lone continuation byte, an
	 * overlong lead 0xc0, a truncated 3-byte sequence at the end */
	const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xe2\x82";

	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_strn(&J, "u", in, sizeof(in) - 1);
	cr_assert(eq(str, finish(),
		     "{\"u\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\u0080|\\u00c0\\u00af|"
		     "\\u00e2\\u0082\"}"));
}

Test(event, timestamps_are_rfc3339_utc_with_microseconds)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_ts(&J, "a", 0);
	/* 2026-11-30T08:15:21.000123Z, then the same second again (cached
	 * date part) and the next second */
	mry_json_ts(&J, "b", 1796026521000123456ull);
	mry_json_ts(&J, "c", 1796026521999999999ull);
	mry_json_ts(&J, "d", 1796026522000000000ull);
	cr_assert(eq(str, finish(),
		     "{\"a\":\"1970-01-01T00:00:00.000000Z\",\"b\":\"2026-11-30T08:15:21.000123Z\","
		     "\"c\":\"2026-11-30T08:15:21.999999Z\",\"d\":\"2026-11-30T08:15:22.000000Z\"}"));
}

Test(event, arrays_and_objects_nest)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_array_begin(&J, "rcpt");
	mry_json_array_str(&J, "a@x");
	mry_json_array_str(&J, "b@y");
	mry_json_array_end(&J);
	mry_json_array_begin(&J, "empty");
	mry_json_array_end(&J);
	mry_json_array_begin(&J, "sigs");
	mry_json_object_begin(&J, NULL);
	mry_json_str(&J, "name", "Eicar");
	mry_json_u64(&J, "id", 7);
	mry_json_object_end(&J);
	mry_json_array_end(&J);
	mry_json_u64(&J, "after", 1);
	cr_assert(eq(str, finish(),
		     "{\"rcpt\":[\"a@x\",\"b@y\"],\"empty\":[],\"sigs\":[{\"name\":\"Eicar\",\"id\":7}],"
		     "\"after\":1}"));
}

Test(event, overflow_drops_the_event_whole)
{
	char small[24];

	memset(small, 'Z', sizeof(small));
	mry_json_begin(&J, small, sizeof(small));
	mry_json_str(&J, "k", "0123456789");
	mry_json_str(&J, "l", "0123456789");
	cr_assert(eq(sz, mry_json_end(&J), 0));
	cr_assert(J.overflow);
	/* never written past the buffer, and what is there stays terminated */
	cr_assert(lt(sz, strlen(small), sizeof(small)));

	mry_json_begin(&J, small, 1);
	cr_assert(eq(sz, mry_json_end(&J), 0));
}

Test(event, an_exact_fit_is_not_an_overflow)
{
	char exact[sizeof("{\"k\":\"v\"}")];

	mry_json_begin(&J, exact, sizeof(exact));
	mry_json_str(&J, "k", "v");
	cr_assert(eq(sz, mry_json_end(&J), sizeof(exact) - 1));
	cr_assert(eq(str, exact, "{\"k\":\"v\"}"));
}

Test(event, null_is_written_for_none)
{
	mry_json_begin(&J, buf, sizeof(buf));
	mry_json_null(&J, "g");
	mry_json_array_begin(&J, "a");
	mry_json_null(&J, NULL);
	mry_json_array_end(&J);
	cr_assert(eq(str, finish(), "{\"g\":null,\"a\":[null]}"));
}

/* 2026-01-02T03:04:05.678901Z */
#define TS_NS 1767323045678901234ULL
#define TS_TXT "\"ts\":\"2026-01-02T03:04:05.678901Z\""

static const struct mry_engine_conn conn = {
	.src = "192.0.2.1", .sport = 40000, .dst = "192.0.2.2", .dport = 25,
};
#define CONN_TXT "\"src\":\"192.0.2.1\",\"sport\":40000,\"dst\":\"192.0.2.2\",\"dport\":25"

Test(event, message_event_has_every_field_in_order)
{
	static struct mry_scan_result res = { .generation = 7, .nb_sigs = 1, .sig_ids = { 3 } };
	const char *ev[] = { "smtp_bare_lf", "tcp_overlap_conflict" };
	struct mry_event_msg m = {
		.conn = &conn, .msg_index = 1, .mail_from = "a@x", .rcpt = "b@y\0c@z",
		.nb_rcpt = 2, .size = 42, .generation = 7, .verdict = "infected",
		.action = "rejected", .res = &res, .evasions = ev, .nb_evasions = 2,
		.held = true, .held_ms = 1500, .server_reply = 554,
	};
	size_t n;

	strcpy(res.sig_names[0], "Test.EICAR");
	n = mry_event_message(buf, sizeof(buf), TS_NS, &m);
	cr_assert(eq(sz, n, strlen(buf)));
	cr_assert(eq(str, buf,
		     "{\"event\":\"message\"," TS_TXT "," CONN_TXT ",\"msg_index\":1,"
		     "\"mail_from\":\"a@x\",\"rcpt_to\":[\"b@y\",\"c@z\"],\"size\":42,"
		     "\"generation\":7,\"verdict\":\"infected\",\"server_reply\":554,"
		     "\"action\":\"rejected\","
		     "\"signatures\":[{\"id\":3,\"name\":\"Test.EICAR\"}],"
		     "\"evasions\":[\"smtp_bare_lf\",\"tcp_overlap_conflict\"],\"held_ms\":1500}"));
}

Test(event, message_event_writes_null_for_none)
{
	struct mry_event_msg m = {
		.conn = &conn, .verdict = "encrypted", .action = "forwarded", .reason = "tls",
	};

	cr_assert(ne(sz, mry_event_message(buf, sizeof(buf), TS_NS, &m), 0));
	cr_assert(eq(str, buf,
		     "{\"event\":\"message\"," TS_TXT "," CONN_TXT ",\"msg_index\":0,"
		     "\"mail_from\":null,\"rcpt_to\":[],\"size\":0,\"generation\":null,"
		     "\"verdict\":\"encrypted\",\"server_reply\":null,\"action\":\"forwarded\","
		     "\"signatures\":[],"
		     "\"evasions\":[],\"reason\":\"tls\"}"));
}

Test(event, hold_flow_and_alarm_events)
{
	cr_assert(ne(sz, mry_event_hold(buf, sizeof(buf), TS_NS, "hold", &conn, 2, 10,
					"no_database"), 0));
	cr_assert(eq(str, buf, "{\"event\":\"hold\"," TS_TXT "," CONN_TXT
		     ",\"msg_index\":2,\"size\":10,\"reason\":\"no_database\"}"));
	cr_assert(ne(sz, mry_event_hold(buf, sizeof(buf), TS_NS, "release", &conn, 2, 10,
					NULL), 0));
	cr_assert(eq(str, buf, "{\"event\":\"release\"," TS_TXT "," CONN_TXT
		     ",\"msg_index\":2,\"size\":10}"));
	cr_assert(ne(sz, mry_event_flow(buf, sizeof(buf), TS_NS, &conn, "evicted"), 0));
	cr_assert(eq(str, buf, "{\"event\":\"flow\"," TS_TXT "," CONN_TXT
		     ",\"reason\":\"evicted\"}"));
	cr_assert(ne(sz, mry_event_alarm(buf, sizeof(buf), TS_NS, true, "db_invalid"), 0));
	cr_assert(eq(str, buf, "{\"event\":\"alarm\"," TS_TXT
		     ",\"alarm\":true,\"reason\":\"db_invalid\"}"));
}

Test(event, emergency_event_names_the_fullest_pool_and_the_marks)
{
	cr_assert(ne(sz, mry_event_emergency(buf, sizeof(buf), TS_NS, true, 87, "message",
					     80, 60), 0));
	cr_assert(eq(str, buf, "{\"event\":\"emergency\"," TS_TXT ",\"emergency\":true,"
		     "\"pressure_pct\":87,\"pool\":\"message\",\"high_pct\":80,\"low_pct\":60}"));
	cr_assert(ne(sz, mry_event_emergency(buf, sizeof(buf), TS_NS, false, 12, "flows",
					     80, 60), 0));
	cr_assert(eq(str, buf, "{\"event\":\"emergency\"," TS_TXT ",\"emergency\":false,"
		     "\"pressure_pct\":12,\"pool\":\"flows\",\"high_pct\":80,\"low_pct\":60}"));
}

Test(event, db_event_generation_zero_is_null)
{
	struct mry_event_db d = { .generation = 0, .valid = false, .reason = "no file" };

	cr_assert(ne(sz, mry_event_db(buf, sizeof(buf), TS_NS, &d), 0));
	cr_assert(eq(str, buf, "{\"event\":\"db\"," TS_TXT ",\"generation\":null,"
		     "\"state\":\"invalid\",\"reason\":\"no file\",\"file\":null,\"offer\":null}"));
	d = (struct mry_event_db){ .generation = 3, .valid = true, .reason = "ok",
				   .file = "/db/m.mdb", .offer = "ok" };
	cr_assert(ne(sz, mry_event_db(buf, sizeof(buf), TS_NS, &d), 0));
	cr_assert(eq(str, buf, "{\"event\":\"db\"," TS_TXT ",\"generation\":3,"
		     "\"state\":\"valid\",\"reason\":\"ok\",\"file\":\"/db/m.mdb\",\"offer\":\"ok\"}"));
}

Test(event, blocklist_event_names_the_prefix_and_its_expiry)
{
	struct mry_blocklist_entry e;

	cr_assert(eq(int, mry_blocklist_parse_entry("2001:db8::/32", 13, &e, NULL, 0), 0));
	e.expires_ns = TS_NS + 3600ULL * 1000000000ULL;
	cr_assert(ne(sz, mry_event_blocklist(buf, sizeof(buf), TS_NS, "block", &e, 3), 0));
	cr_assert(eq(str, buf, "{\"event\":\"blocklist\"," TS_TXT ",\"action\":\"block\","
		     "\"prefix\":\"2001:db8::/32\",\"expires\":\"2026-01-02T04:04:05.678901Z\","
		     "\"entries\":3}"));
	cr_assert(eq(int, mry_blocklist_parse_entry("192.0.2.7", 9, &e, NULL, 0), 0));
	cr_assert(ne(sz, mry_event_blocklist(buf, sizeof(buf), TS_NS, "unblock", &e, 0), 0));
	cr_assert(eq(str, buf, "{\"event\":\"blocklist\"," TS_TXT ",\"action\":\"unblock\","
		     "\"prefix\":\"192.0.2.7/32\",\"expires\":null,\"entries\":0}"));
	/* a file (re)load names no prefix */
	cr_assert(ne(sz, mry_event_blocklist(buf, sizeof(buf), TS_NS, "load", NULL, 2), 0));
	cr_assert(eq(str, buf, "{\"event\":\"blocklist\"," TS_TXT ",\"action\":\"load\","
		     "\"prefix\":null,\"expires\":null,\"entries\":2}"));
}

Test(event, an_event_too_big_for_the_buffer_is_dropped)
{
	char small[64];

	cr_assert(eq(sz, mry_event_flow(small, sizeof(small), TS_NS, &conn, "evicted"), 0));
}


/*
 * The largest event of each kind the engine writes into its event buffer
 * (e->evbuf, EVENT_BUF bytes) fits it, so no verdict is ever lost to its
 * size: this replaces a counter of dropped events that no input could move.
 * Each field is at the bound the engine enforces, taken from the engine's
 * own declarations so that growing one grows the test:
 *   - a string from the wire (mail_from, recipients) fills its storage in
 *     struct msg with bytes the writer escapes to 6 (\u00XX);
 *   - recipients: one address filling rcpt[] costs the most (each further
 *     one saves 6 escaped bytes for its NUL and adds 3: quotes and comma);
 *   - signature names: MRY_SCAN_MAX_SIGS kept per message, each cut to
 *     MRY_SCAN_NAME_MAX - 1 bytes (scan.c), of the bytes a database may hold
 *     (0x21..0x7e, sigdb.c), '"' being the longest escaped (2);
 *   - evasions: every anomaly bit the engine has, by its name;
 *   - numbers at their type's largest value; addresses as long as
 *     struct mry_engine_conn holds; a reason of MRY_SIGDB_REASON_MAX - 1
 *     bytes escaped to 6 each (the longest reason any event carries: the
 *     database state of a hold; the others are short literals).
 */
#define EV_BIG_STR 32   /* longer than any verdict or action name the engine writes */

static char evbuf[EVENT_BUF];

static void fill(char *s, size_t n, char c)
{
	memset(s, c, n);
	s[n] = '\0';
}

static void largest_conn(struct mry_engine_conn *c)
{
	fill(c->src, sizeof(c->src) - 1, 'f');
	fill(c->dst, sizeof(c->dst) - 1, 'f');
	c->sport = UINT16_MAX;
	c->dport = UINT16_MAX;
}

static const char *all_evasions[EV_MAX];

static uint32_t every_evasion(void)
{
	uint32_t n = 0;

	for (unsigned i = 0; i < EV_MAX; i++)
		if (ev_name(i) != NULL)
			all_evasions[n++] = ev_name(i);
	return n;
}

static char big_reason[MRY_SIGDB_REASON_MAX];

static void largest_reason(void)
{
	fill(big_reason, sizeof(big_reason) - 1, '\x01');
}

Test(event, largest_message_event_fits_the_engine_buffer)
{
	static struct msg m;   /* only for its field sizes and storage */
	static struct mry_scan_result res;
	char verdict[EV_BIG_STR + 1], action[EV_BIG_STR + 1];
	struct mry_engine_conn c;
	struct mry_event_msg em;
	size_t n, longest = 0;

	largest_conn(&c);
	largest_reason();
	fill(verdict, EV_BIG_STR, 'v');
	fill(action, EV_BIG_STR, 'a');
	for (int v = 0; v <= V_EVASION + 1; v++)
		cr_assert(lt(sz, strlen(mry_verdict_name((enum msg_verdict)v)), EV_BIG_STR));
	fill(m.mail_from, sizeof(m.mail_from) - 1, '\x01');
	res.nb_sigs = MRY_SCAN_MAX_SIGS;
	res.generation = UINT64_MAX;
	for (unsigned i = 0; i < MRY_SCAN_MAX_SIGS; i++) {
		res.sig_ids[i] = UINT32_MAX;
		fill(res.sig_names[i], MRY_SCAN_NAME_MAX - 1, '"');
	}
	/* recipients: one filling rcpt[], then more and shorter ones */
	for (size_t each = sizeof(m.rcpt) - 1; each >= 1; each = each / 2) {
		uint32_t k = (uint32_t)(sizeof(m.rcpt) / (each + 1));

		memset(m.rcpt, 0, sizeof(m.rcpt));
		for (uint32_t i = 0; i < k; i++)
			memset(m.rcpt + i * (each + 1), '\xff', each);
		em = (struct mry_event_msg){
			.conn = &c, .msg_index = UINT32_MAX, .mail_from = m.mail_from,
			.rcpt = m.rcpt, .nb_rcpt = k, .size = UINT64_MAX,
			.generation = UINT64_MAX, .verdict = verdict, .action = action,
			.res = &res, .evasions = all_evasions, .nb_evasions = every_evasion(),
			.held = true, .held_ms = UINT64_MAX, .reason = big_reason,
			.server_reply = UINT16_MAX,
		};
		n = mry_event_message(evbuf, sizeof(evbuf), UINT64_MAX, &em);
		cr_assert(ne(sz, n, 0), "a message event with %u recipients of %zu bytes "
			  "does not fit %d bytes", k, each, EVENT_BUF);
		if (n > longest)
			longest = n;
	}
	cr_log_info("largest message event: %zu of %d bytes", longest, EVENT_BUF);
}

Test(event, largest_hold_flow_and_shed_events_fit_the_engine_buffer)
{
	struct mry_event_shed_src top[SHED_TOP_LOG];
	uint64_t phases[MRY_FLOW_PHASE_MAX];
	const char *longest_shed = "";
	struct mry_engine_conn c;
	char event[EV_BIG_STR + 1];

	largest_conn(&c);
	largest_reason();
	fill(event, EV_BIG_STR, 'e');
	cr_assert(ne(sz, mry_event_hold(evbuf, sizeof(evbuf), UINT64_MAX, event, &c,
					UINT32_MAX, UINT64_MAX, big_reason), 0));
	cr_assert(ne(sz, mry_event_flow_evasions(evbuf, sizeof(evbuf), UINT64_MAX, &c,
						 big_reason, all_evasions, every_evasion()), 0));
	for (int r = 0; r < SHED_MAX; r++)
		if (strlen(mry_shed_reason_name((enum shed_reason)r)) > strlen(longest_shed))
			longest_shed = mry_shed_reason_name((enum shed_reason)r);
	for (unsigned i = 0; i < SHED_TOP_LOG; i++) {
		fill(top[i].src, sizeof(top[i].src) - 1, 'f');
		top[i].count = UINT64_MAX;
	}
	for (unsigned i = 0; i < MRY_FLOW_PHASE_MAX; i++)
		phases[i] = UINT64_MAX;
	cr_assert(ne(sz, mry_event_shed(evbuf, sizeof(evbuf), UINT64_MAX, longest_shed,
					UINT64_MAX, UINT64_MAX, phases, MRY_FLOW_PHASE_MAX,
					top, SHED_TOP_LOG), 0));
}

/*
 * The control-path events (db, alarm, blocklist) fit the bounds event.h
 * gives their callers' buffers, with every string at its bound in bytes the
 * writer escapes to 6 and every number at its largest; a longer string is
 * cut visibly (MRY_EVENT_CUT_MARK), never a lost event.
 */
static char ctl_buf[MRY_EVENT_DB_MAX];
static char long_str[2 * MRY_EVENT_FILE_MAX + 1];

static size_t big_db(size_t file_len, size_t reason_len, size_t offer_len, char fill_byte)
{
	static char file[sizeof(long_str)], reason[sizeof(long_str)], offer[sizeof(long_str)];
	struct mry_event_db d = {
		.generation = UINT64_MAX, .valid = false,
		.reason = reason, .file = file, .offer = offer,
	};

	fill(file, file_len, fill_byte);
	fill(reason, reason_len, fill_byte);
	fill(offer, offer_len, fill_byte);
	return mry_event_db(ctl_buf, sizeof(ctl_buf), UINT64_MAX, &d);
}

Test(event, largest_db_event_fits_its_bound)
{
	size_t n;

	/* a maximal operator path (PATH_MAX - 1 bytes, each escaped to 6) */
	n = big_db(MRY_EVENT_FILE_MAX, MRY_EVENT_REASON_MAX, MRY_EVENT_NAME_MAX, '\x01');
	cr_assert(ne(sz, n, 0), "a db event with a %d-byte path does not fit %zu bytes",
		  MRY_EVENT_FILE_MAX, sizeof(ctl_buf));
	cr_assert(eq(sz, n, strlen(ctl_buf)));
	cr_assert(eq(ptr, strstr(ctl_buf, MRY_EVENT_CUT_MARK), NULL), "nothing at the bound is cut");
	cr_log_info("largest db event: %zu of %d bytes", n, MRY_EVENT_DB_MAX);
	/* the database's own reasons are never cut */
	cr_assert(le(sz, MRY_SIGDB_REASON_MAX - 1, MRY_EVENT_REASON_MAX));
}

Test(event, a_db_event_with_a_longer_path_is_written_with_the_path_cut)
{
	char *file, *end;
	size_t n;

	n = big_db(2 * MRY_EVENT_FILE_MAX, 2 * MRY_EVENT_FILE_MAX, 2 * MRY_EVENT_FILE_MAX, 'p');
	cr_assert(ne(sz, n, 0));
	file = strstr(ctl_buf, "\"file\":\"");
	cr_assert(ne(ptr, file, NULL));
	file += strlen("\"file\":\"");
	end = strchr(file, '"');
	cr_assert(eq(sz, (size_t)(end - file), MRY_EVENT_FILE_MAX));
	cr_assert(eq(int, memcmp(end - strlen(MRY_EVENT_CUT_MARK), MRY_EVENT_CUT_MARK,
				 strlen(MRY_EVENT_CUT_MARK)), 0), "the cut shows: %.40s", end - 40);
	/* escaped bytes past the bound: still written */
	cr_assert(ne(sz, big_db(2 * MRY_EVENT_FILE_MAX, 2 * MRY_EVENT_FILE_MAX,
				  2 * MRY_EVENT_FILE_MAX, '\x7f'), 0));
}

Test(event, largest_alarm_event_fits_its_bound)
{
	char alarm_buf[MRY_EVENT_ALARM_MAX];

	fill(long_str, MRY_EVENT_REASON_MAX, '\x01');
	cr_assert(ne(sz, mry_event_alarm(alarm_buf, sizeof(alarm_buf), UINT64_MAX, true,
					 long_str), 0));
	fill(long_str, sizeof(long_str) - 1, '\x01');
	cr_assert(ne(sz, mry_event_alarm(alarm_buf, sizeof(alarm_buf), UINT64_MAX, true,
					 long_str), 0));
	cr_assert(ne(ptr, strstr(alarm_buf, MRY_EVENT_CUT_MARK), NULL));
}

Test(event, largest_blocklist_event_fits_its_bound)
{
	char bl_buf[MRY_EVENT_BLOCKLIST_MAX], pfx[64];
	struct mry_blocklist_entry e;
	const char *text = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128";
	size_t n;

	cr_assert(eq(int, mry_blocklist_parse_entry(text, strlen(text), &e, NULL, 0), 0));
	cr_assert(eq(int, mry_blocklist_format_entry(&e, pfx, sizeof(pfx)), 0));
	cr_assert(eq(sz, strlen(pfx), MRY_EVENT_BLOCKLIST_PREFIX_MAX));
	e.expires_ns = UINT64_MAX;
	fill(long_str, MRY_EVENT_NAME_MAX, '\x01');
	n = mry_event_blocklist(bl_buf, sizeof(bl_buf), UINT64_MAX, long_str, &e, UINT64_MAX);
	cr_assert(ne(sz, n, 0));
	cr_assert(ne(ptr, strstr(bl_buf, text), NULL), "prefix written: %s", bl_buf);
	fill(long_str, sizeof(long_str) - 1, '\x01');
	cr_assert(ne(sz, mry_event_blocklist(bl_buf, sizeof(bl_buf), UINT64_MAX, long_str, &e,
					     UINT64_MAX), 0));
	cr_log_info("largest blocklist event: %zu of %d bytes", n, MRY_EVENT_BLOCKLIST_MAX);
}
