/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scanning: matches survive every chunking, each target sees only its own
 * stream, the most severe action wins, a message finishes on the generation
 * it began with, and running out of message or stream state is counted and
 * never reported as clean.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <hs/hs.h>

#include "moray/scan.h"
#include "moray/sigdb.h"
#include "moray/sigsrc.h"
#include "sigdb_priv.h"

#define EICAR_HEX "58354f2150254041505b345c505a58353428505e2937434329377d2445494341" \
		  "522d5354414e444152442d414e544956495255532d544553542d46494c4521" \
		  "24482b482a"

static const char src[] =
	"1 Moray.Test.EICAR reject any hex:" EICAR_HEX "\n"
	"10 T.Raw reject raw lit:\"raw-only-marker\"\n"
	"11 T.Dec tempfail decoded lit:\"decoded-only-marker\"\n"
	"12 T.Hdr log headers re:/^X-Scan-Test:\\s*yes/m\n"
	"13 T.Log log any lit:\"log-marker\"\n"
	"14 T.Temp tempfail any lit:\"tempfail-marker\"\n"
	"15 T.End log raw re:/tail-marker$/\n"
	"16 T.PartStart reject decoded re:/^MZ\\x90\\x00/\n";

static struct mry_sigdb_gen *gen_of(const char *text, uint64_t number)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = number, .created = 1 };
	struct mry_sigc_report rep;
	struct mry_sigdb_gen *g = NULL;
	uint8_t *img = NULL;
	size_t len = 0;

	cr_assert(eq(int, mry_sigsrc_parse(s, "t.sigs", text, strlen(text)), 0),
		  "%s", mry_sigsrc_error(s, 0));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, &len, &rep), 0));
	cr_assert(eq(int, mry_sigdb_load_mem(img, len, NULL, &g, NULL, 0), MRY_SIGDB_OK));
	free(img);
	mry_sigsrc_destroy(s);
	return g;
}

static size_t eicar(uint8_t *out)
{
	const char *h = EICAR_HEX;
	size_t n = 0;

	for (; h[0] != '\0' && h[1] != '\0'; h += 2) {
		unsigned v;

		sscanf(h, "%2x", &v);
		out[n++] = (uint8_t)v;
	}
	return n;
}

static bool has(const struct mry_scan_result *r, uint32_t id)
{
	for (uint32_t i = 0; i < r->nb_sigs; i++)
		if (r->sig_ids[i] == id)
			return true;
	return false;
}

static struct mry_sigdb_gen *G;
static struct mry_scanner *S;

static void quiet(enum mry_log_level l, const char *m, const char *msg, void *c)
{
	(void)l; (void)m; (void)msg; (void)c;
}

static void setup(void)
{
	mry_log_set_handler(quiet, NULL);
	G = gen_of(src, 3);
	S = mry_scanner_create(mry_alloc_default(), 4);
	cr_assert_not_null(S);
	cr_assert(eq(int, mry_scanner_prepare(S, G), 0));
}

static void teardown(void)
{
	mry_scanner_destroy(S);
	mry_sigdb_gen_unref(G);
}

TestSuite(scan, .init = setup, .fini = teardown);

Test(scan, eicar_split_at_every_boundary_is_found)
{
	uint8_t msg[256], e[80];
	size_t el = eicar(e), len;

	/* "Subject: x\r\n\r\n" + EICAR + "\r\n" */
	len = (size_t)snprintf((char *)msg, sizeof(msg), "Subject: x\r\n\r\n");
	memcpy(msg + len, e, el);
	len += el;
	memcpy(msg + len, "\r\n", 2);
	len += 2;
	for (size_t cut = 0; cut <= len; cut++) {
		for (int target = 0; target < 2; target++) {
			struct mry_scan_msg *m = mry_scan_msg_begin(S, G);
			struct mry_scan_result r;

			cr_assert_not_null(m);
			if (target == 0) {
				mry_scan_msg_raw(m, msg, cut);
				mry_scan_msg_raw(m, msg + cut, len - cut);
			} else {
				mry_scan_msg_part_begin(m);
				mry_scan_msg_part_data(m, msg, cut);
				mry_scan_msg_part_data(m, msg + cut, len - cut);
				mry_scan_msg_part_end(m);
			}
			mry_scan_msg_end(m, &r);
			cr_assert(eq(int, r.action, MRY_ACTION_REJECT), "cut %zu target %d", cut, target);
			cr_assert(has(&r, 1));
			cr_assert(eq(str, r.sig_names[0], "Moray.Test.EICAR"));
		}
	}
}

Test(scan, one_byte_chunks_find_the_signature)
{
	uint8_t e[80];
	size_t el = eicar(e);
	struct mry_scan_msg *m = mry_scan_msg_begin(S, G);
	struct mry_scan_result r;

	for (size_t i = 0; i < el; i++)
		mry_scan_msg_raw(m, e + i, 1);
	mry_scan_msg_end(m, &r);
	cr_assert(has(&r, 1));
	cr_assert(eq(u64, r.generation, 3));
}

static struct mry_scan_result scan_target(unsigned t, const char *data)
{
	struct mry_scan_msg *m = mry_scan_msg_begin(S, G);
	struct mry_scan_result r;

	cr_assert_not_null(m);
	if (t == MRY_TARGET_RAW) {
		mry_scan_msg_raw(m, (const uint8_t *)data, strlen(data));
	} else if (t == MRY_TARGET_HEADERS) {
		mry_scan_msg_headers(m, (const uint8_t *)data, strlen(data));
	} else {
		mry_scan_msg_part_begin(m);
		mry_scan_msg_part_data(m, (const uint8_t *)data, strlen(data));
		mry_scan_msg_part_end(m);
	}
	mry_scan_msg_end(m, &r);
	return r;
}

Test(scan, each_target_sees_only_its_stream)
{
	const unsigned t[3] = { MRY_TARGET_RAW, MRY_TARGET_DECODED, MRY_TARGET_HEADERS };
	const char *data[3] = { "a raw-only-marker b", "a decoded-only-marker b",
				"From: x\r\nX-Scan-Test: yes\r\n" };
	const uint32_t id[3] = { 10, 11, 12 };

	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 3; j++) {
			struct mry_scan_result r = scan_target(t[j], data[i]);

			if (i == j)
				cr_assert(has(&r, id[i]), "sig %u on its own stream", id[i]);
			else
				cr_assert_not(has(&r, id[i]), "sig %u on stream %u", id[i], t[j]);
		}
	}
	/* "any" everywhere */
	for (int j = 0; j < 3; j++) {
		struct mry_scan_result r = scan_target(t[j], "log-marker");

		cr_assert(has(&r, 13));
	}
}

Test(scan, most_severe_action_wins_in_any_order)
{
	static const char *const orders[] = {
		"log-marker tempfail-marker raw-only-marker",
		"raw-only-marker tempfail-marker log-marker",
		"tempfail-marker raw-only-marker log-marker",
	};
	struct mry_scan_result r;

	for (size_t i = 0; i < MRY_ARRAY_SIZE(orders); i++) {
		r = scan_target(MRY_TARGET_RAW, orders[i]);
		cr_assert(eq(int, r.action, MRY_ACTION_REJECT));
		cr_assert(eq(u32, r.nb_sigs, 3));
		cr_assert(eq(u32, r.nb_sigs_total, 3));
	}
	r = scan_target(MRY_TARGET_RAW, "log-marker tempfail-marker");
	cr_assert(eq(int, r.action, MRY_ACTION_TEMPFAIL));
	r = scan_target(MRY_TARGET_RAW, "log-marker");
	cr_assert(eq(int, r.action, MRY_ACTION_LOG));
	r = scan_target(MRY_TARGET_RAW, "nothing here");
	cr_assert(eq(int, r.action, MRY_ACTION_NONE));
	cr_assert(eq(u32, r.nb_sigs, 0));
	cr_assert_not(r.scan_error);
}

Test(scan, signature_in_two_streams_is_listed_once)
{
	struct mry_scan_msg *m = mry_scan_msg_begin(S, G);
	struct mry_scan_result r;

	mry_scan_msg_raw(m, (const uint8_t *)"log-marker", 10);
	mry_scan_msg_headers(m, (const uint8_t *)"log-marker", 10);
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"log-marker", 10);
	mry_scan_msg_part_end(m);
	mry_scan_msg_end(m, &r);
	cr_assert(eq(u32, r.nb_sigs, 1));
	cr_assert(eq(u32, r.nb_sigs_total, 1));
}

Test(scan, end_anchored_match_fires_when_the_stream_closes)
{
	struct mry_scan_result r = scan_target(MRY_TARGET_RAW, "xx tail-marker");

	cr_assert(has(&r, 15));
	r = scan_target(MRY_TARGET_RAW, "xx tail-marker yy");
	cr_assert_not(has(&r, 15));
}

Test(scan, each_decoded_part_is_its_own_stream)
{
	struct mry_scan_msg *m = mry_scan_msg_begin(S, G);
	struct mry_scan_result r;

	/* "^MZ" means start of a part: second part starts with it */
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"text part\n", 10);
	mry_scan_msg_part_end(m);
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"MZ\x90\x00rest", 8);
	mry_scan_msg_part_end(m);
	mry_scan_msg_end(m, &r);
	cr_assert(has(&r, 16));

	/* ... and across a part boundary there is no match */
	m = mry_scan_msg_begin(S, G);
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"decoded-only-", 13);
	mry_scan_msg_part_end(m);
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"marker", 6);
	mry_scan_msg_part_end(m);
	mry_scan_msg_end(m, &r);
	cr_assert_not(has(&r, 11));
}

Test(scan, message_pool_empty_is_counted)
{
	struct mry_scan_msg *m[5];
	struct mry_scan_stats st;
	struct mry_scan_result r;

	for (int i = 0; i < 4; i++)
		cr_assert_not_null(m[i] = mry_scan_msg_begin(S, G));
	m[4] = mry_scan_msg_begin(S, G);
	cr_assert_null(m[4]);
	mry_scan_get_stats(S, &st);
	cr_assert(eq(u64, st.msg_pool_empty, 1));
	for (int i = 0; i < 4; i++)
		mry_scan_msg_end(m[i], &r);
	cr_assert_not_null(m[0] = mry_scan_msg_begin(S, G));
	mry_scan_msg_abort(m[0]);
}

Test(scan, stream_pool_empty_is_counted_and_not_clean)
{
	struct mry_scanner *s = mry_scanner_create_ex(mry_alloc_default(), 4, 3);
	struct mry_scan_msg *a, *b;
	struct mry_scan_stats st;
	struct mry_scan_result r;

	/* a message takes 2 streams (raw, headers) at begin */
	cr_assert(eq(int, mry_scanner_prepare(s, G), 0));
	a = mry_scan_msg_begin(s, G);
	cr_assert_not_null(a);
	b = mry_scan_msg_begin(s, G);
	cr_assert_null(b);
	mry_scan_get_stats(s, &st);
	cr_assert(eq(u64, st.stream_pool_empty, 1));
	/* the third stream serves a's part; a second part after it closes too */
	mry_scan_msg_part_begin(a);
	mry_scan_msg_part_data(a, (const uint8_t *)"decoded-only-marker", 19);
	mry_scan_msg_part_end(a);
	mry_scan_msg_end(a, &r);
	cr_assert(has(&r, 11));
	cr_assert_not(r.scan_error);

	/* now make the part stream unavailable: a part that cannot be scanned
	 * marks the message scan_error, never clean */
	a = mry_scan_msg_begin(s, G);
	b = NULL;
	{
		struct mry_scanner *tiny = mry_scanner_create_ex(mry_alloc_default(), 2, 2);
		struct mry_scan_msg *t = mry_scan_msg_begin(tiny, G);

		cr_assert_not_null(t);
		mry_scan_msg_part_begin(t);
		mry_scan_msg_part_data(t, (const uint8_t *)"decoded-only-marker", 19);
		mry_scan_msg_part_end(t);
		mry_scan_msg_end(t, &r);
		cr_assert(r.scan_error);
		mry_scan_get_stats(tiny, &st);
		cr_assert(eq(u64, st.stream_pool_empty, 1));
		mry_scanner_destroy(tiny);
	}
	mry_scan_msg_abort(a);
	mry_scanner_destroy(s);
}

Test(scan, message_finishes_on_the_generation_it_began_with)
{
	struct mry_sigdb_gen *g2 = gen_of("1 Other.Sig reject raw lit:\"other-marker\"\n", 4);
	uint64_t live = mry_sigdb_gen_nb_live();
	struct mry_scan_msg *m_old, *m_new;
	struct mry_scan_result r;

	m_old = mry_scan_msg_begin(S, G);
	mry_scan_msg_raw(m_old, (const uint8_t *)"raw-only-", 9);
	/* swap: the control path drops the only other reference of G */
	mry_sigdb_gen_unref(G);
	G = NULL;
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live));  /* pinned by m_old */
	cr_assert(eq(int, mry_scanner_prepare(S, g2), 0));
	m_new = mry_scan_msg_begin(S, g2);
	mry_scan_msg_raw(m_new, (const uint8_t *)"raw-only-marker other-marker", 28);
	mry_scan_msg_raw(m_old, (const uint8_t *)"marker other-marker", 19);
	mry_scan_msg_end(m_old, &r);
	cr_assert(eq(u64, r.generation, 3));
	cr_assert(has(&r, 10));
	cr_assert_not(has(&r, 1));
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live - 1));   /* gen 3 freed */
	mry_scan_msg_end(m_new, &r);
	cr_assert(eq(u64, r.generation, 4));
	cr_assert(has(&r, 1));
	cr_assert(eq(str, r.sig_names[0], "Other.Sig"));
	G = g2;
}

Test(scan, generation_with_bigger_state_replaces_pool_while_old_streams_live)
{
	/* many regex signatures: larger stream state than the fixture's */
	char big[8192];
	size_t n = 0;
	struct mry_sigdb_gen *g2;
	struct mry_scan_msg *m_old, *m_new;
	struct mry_scan_result r;

	for (int i = 1; i <= 60; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "%d S%d log raw re:/w%dx[^y]{%d,%d}z/\n", i, i, i, i, i + 40);
	g2 = gen_of(big, 9);
	cr_assert(gt(sz, mry_sigdb_gen_stream_size(g2, MRY_SLOT_RAW),
		     mry_sigdb_gen_stream_size(G, MRY_SLOT_RAW)));
	m_old = mry_scan_msg_begin(S, G);
	cr_assert(eq(int, mry_scanner_prepare(S, g2), 0));
	m_new = mry_scan_msg_begin(S, g2);
	cr_assert_not_null(m_new);
	mry_scan_msg_raw(m_new, (const uint8_t *)"w7x1234567z", 11);
	mry_scan_msg_raw(m_old, (const uint8_t *)"raw-only-marker", 15);
	mry_scan_msg_end(m_new, &r);
	cr_assert(has(&r, 7));
	mry_scan_msg_end(m_old, &r);
	cr_assert(has(&r, 10));
	mry_sigdb_gen_unref(g2);
}

Test(scan, more_signatures_than_the_list_keeps_the_most_severe)
{
	char text[8192], data[4096];
	size_t n = 0, d = 0;
	struct mry_sigdb_gen *g;
	struct mry_scan_result r;

	for (int i = 1; i <= 30; i++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%d S%d %s raw lit:\"k%02d;\"\n",
				      i, i, i == 30 ? "reject" : "log", i);
		d += (size_t)snprintf(data + d, sizeof(data) - d, "k%02d; ", i);
	}
	g = gen_of(text, 5);
	cr_assert(eq(int, mry_scan_buffer(S, g, (const uint8_t *)data, d, &r), 0));
	cr_assert(eq(u32, r.nb_sigs, MRY_SCAN_MAX_SIGS));
	cr_assert(eq(u32, r.nb_sigs_total, 30));
	cr_assert(eq(int, r.action, MRY_ACTION_REJECT));
	cr_assert(has(&r, 30));
	mry_sigdb_gen_unref(g);
}

Test(scan, scan_buffer_is_raw_only_and_counts_bytes)
{
	struct mry_scan_result r;
	struct mry_scan_stats st;

	cr_assert(eq(int, mry_scan_buffer(S, G, (const uint8_t *)"raw-only-marker", 15, &r), 0));
	cr_assert(has(&r, 10));
	cr_assert(eq(int, mry_scan_buffer(S, G, (const uint8_t *)"decoded-only-marker", 19, &r), 0));
	cr_assert_not(has(&r, 11));
	cr_assert(eq(int, mry_scan_buffer(S, NULL, (const uint8_t *)"x", 1, &r), -EINVAL));
	cr_assert(r.scan_error);
	mry_scan_get_stats(S, &st);
	cr_assert(eq(u64, st.bytes_raw, 34));
	cr_assert(eq(u64, st.messages, 2));
	cr_assert(ge(u64, st.matches, 1));
}

Test(scan, unprepared_generation_is_prepared_once_and_counted)
{
	struct mry_sigdb_gen *g2 = gen_of("1 X reject raw lit:\"zz-marker\"\n", 6);
	struct mry_scan_result r;
	struct mry_scan_stats st;

	cr_assert(eq(int, mry_scan_buffer(S, g2, (const uint8_t *)"zz-marker", 9, &r), 0));
	cr_assert(eq(int, mry_scan_buffer(S, g2, (const uint8_t *)"zz-marker", 9, &r), 0));
	cr_assert(has(&r, 1));
	mry_scan_get_stats(S, &st);
	cr_assert(eq(u64, st.prepare_lazy, 1));
	mry_sigdb_gen_unref(g2);
}

Test(scan, default_database_from_the_build_detects_eicar)
{
	const char *path = MORAY_BUILDDIR "/patterns/default.mdb";
	struct mry_sigdb_gen *g = NULL;
	struct mry_scan_result r;
	uint8_t e[80];
	size_t el = eicar(e);

	if (access(path, R_OK) != 0)
		cr_fatal("%s missing (not built?)", path);
	cr_assert(eq(int, mry_sigdb_load_file(path, NULL, &g, NULL, 0), MRY_SIGDB_OK),
		  "%s does not load", path);
	cr_assert(eq(int, mry_scan_buffer(S, g, e, el, &r), 0));
	cr_assert(eq(int, r.action, MRY_ACTION_REJECT));
	cr_assert(eq(str, r.sig_names[0], "Moray.Test.EICAR"));
	mry_sigdb_gen_unref(g);
}

Test(scan, other_hyperscan_users_never_draw_from_a_worker_pool)
{
	struct mry_scanner *s = mry_scanner_create_ex(mry_alloc_default(), 1, 3);
	const hs_database_t *db = mry_sigdb_gen_hs_db(G, MRY_SLOT_RAW);
	hs_stream_t *st[8];
	struct mry_scan_msg *m;
	struct mry_scan_result r;

	m = mry_scan_msg_begin(s, G);
	cr_assert_not_null(m);
	/* a plain Hyperscan loop on the same thread, between scanner calls */
	for (int i = 0; i < 8; i++)
		cr_assert(eq(int, hs_open_stream(db, 0, &st[i]), HS_SUCCESS));
	mry_scan_msg_part_begin(m);
	mry_scan_msg_part_data(m, (const uint8_t *)"decoded-only-marker", 19);
	mry_scan_msg_part_end(m);
	mry_scan_msg_end(m, &r);
	cr_assert_not(r.scan_error);
	cr_assert(has(&r, 11));
	for (int i = 0; i < 8; i++)
		hs_close_stream(st[i], NULL, NULL, NULL);
	mry_scanner_destroy(s);
}

/*
 * A generation published through a controller brings its scratch: the
 * control side made one per worker before publishing it, so the worker's
 * prepare and message begin call neither hs_alloc_scratch (which checks the
 * database's CRC: 0.3 ms a slot for the default database) nor
 * hs_clone_scratch. The test binary is linked with
 * -Wl,--wrap=hs_alloc_scratch,--wrap=hs_clone_scratch (tests/unit/meson.build)
 * so every call the engine makes is counted here.
 */
static unsigned nb_alloc_scratch, nb_clone_scratch;

hs_error_t __real_hs_alloc_scratch(const hs_database_t *db, hs_scratch_t **scratch);
hs_error_t __wrap_hs_alloc_scratch(const hs_database_t *db, hs_scratch_t **scratch);
hs_error_t __real_hs_clone_scratch(const hs_scratch_t *from, hs_scratch_t **dest);
hs_error_t __wrap_hs_clone_scratch(const hs_scratch_t *from, hs_scratch_t **dest);

hs_error_t __wrap_hs_alloc_scratch(const hs_database_t *db, hs_scratch_t **scratch)
{
	nb_alloc_scratch++;
	return __real_hs_alloc_scratch(db, scratch);
}

hs_error_t __wrap_hs_clone_scratch(const hs_scratch_t *from, hs_scratch_t **dest)
{
	nb_clone_scratch++;
	return __real_hs_clone_scratch(from, dest);
}

/* compile @text as generation @number into @path */
static void file_of(const char *text, uint64_t number, const char *path)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = number, .created = 1 };
	struct mry_sigc_report rep;
	uint8_t *img = NULL;
	size_t len = 0;

	cr_assert(eq(int, mry_sigsrc_parse(s, "t.sigs", text, strlen(text)), 0));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, &len, &rep), 0));
	cr_assert(eq(int, mry_sigdb_write_file(path, img, len), 0));
	free(img);
	mry_sigsrc_destroy(s);
}

Test(scan, generation_from_a_controller_brings_scratch_for_each_worker)
{
	/* many regex signatures: a larger scratch and state than the fixture's */
	char big[8192], dir[] = "/tmp/moray-scan-XXXXXX", path[64];
	struct mry_sigdb_ctl_config cc = { .nb_scratch = 2 };
	struct mry_sigdb_ctl *ctl = mry_sigdb_ctl_create(&cc);
	struct mry_sigdb_gen *retired = NULL, *g_big, *g_small;
	struct mry_scanner *w[3];
	struct mry_scan_msg *m_big, *m_small;
	struct mry_scan_result r;
	struct mry_scan_stats st;
	uint8_t e[128];
	size_t n = 0, elen = eicar(e);

	for (int i = 1; i <= 60; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "%d S%d log raw re:/w%dx[^y]{%d,%d}z/\n", i, i, i, i, i + 40);
	snprintf(big + n, sizeof(big) - n, "100 Moray.Test.EICAR reject any hex:%s\n", EICAR_HEX);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/db.mdb", dir);
	cr_assert_not_null(ctl);
	for (int i = 0; i < 3; i++)
		cr_assert_not_null(w[i] = mry_scanner_create(mry_alloc_default(), 4));

	/* the big generation first: scanners 0 and 1 take the ready scratch */
	file_of(big, 10, path);
	cr_assert(eq(int, mry_sigdb_ctl_offer(ctl, path, 1, &retired), MRY_SIGDB_OK));
	g_big = mry_sigdb_ctl_usable(ctl);
	mry_sigdb_gen_ref(g_big);
	nb_alloc_scratch = nb_clone_scratch = 0;
	cr_assert(eq(int, mry_scanner_prepare(w[0], g_big), 0));
	cr_assert(eq(int, mry_scanner_prepare(w[1], g_big), 0));
	m_big = mry_scan_msg_begin(w[0], g_big);
	cr_assert_not_null(m_big);
	cr_assert(eq(u32, nb_alloc_scratch, 0));
	cr_assert(eq(u32, nb_clone_scratch, 0));
	mry_scan_get_stats(w[0], &st);
	cr_assert(eq(u64, st.scratch_handed, 1));
	cr_assert(eq(u64, st.scratch_grown, 0));
	/* a third scanner finds none left: it grows its own, counted */
	cr_assert(eq(int, mry_scanner_prepare(w[2], g_big), 0));
	cr_assert(gt(u32, nb_alloc_scratch, 0));
	mry_scan_get_stats(w[2], &st);
	cr_assert(eq(u64, st.scratch_grown, 1));

	/* a smaller generation: the scratch handed over still fits the big
	 * one's message in flight on scanner 0 */
	file_of(src, 11, path);
	cr_assert(eq(int, mry_sigdb_ctl_offer(ctl, path, 1, &retired), MRY_SIGDB_OK));
	cr_assert(eq(ptr, retired, g_big));
	mry_sigdb_gen_unref(retired);
	g_small = mry_sigdb_ctl_usable(ctl);
	nb_alloc_scratch = nb_clone_scratch = 0;
	cr_assert(eq(int, mry_scanner_prepare(w[0], g_small), 0));
	m_small = mry_scan_msg_begin(w[0], g_small);
	cr_assert_not_null(m_small);
	cr_assert(eq(u32, nb_alloc_scratch, 0));
	cr_assert(eq(u32, nb_clone_scratch, 0));
	mry_scan_msg_raw(m_big, (const uint8_t *)"w7x1234567z ", 12);
	mry_scan_msg_raw(m_big, e, elen);
	mry_scan_msg_raw(m_small, (const uint8_t *)"raw-only-marker", 15);
	mry_scan_msg_end(m_big, &r);
	cr_assert_not(r.scan_error);
	cr_assert(has(&r, 7));
	cr_assert(has(&r, 100));
	mry_scan_msg_end(m_small, &r);
	cr_assert_not(r.scan_error);
	cr_assert(has(&r, 10));
	mry_scan_get_stats(w[0], &st);
	cr_assert(eq(u64, st.scratch_handed, 2));
	cr_assert(eq(u64, st.hs_errors, 0));
	mry_sigdb_gen_unref(g_big);
	for (int i = 0; i < 3; i++)
		mry_scanner_destroy(w[i]);
	mry_sigdb_ctl_destroy(ctl);
	unlink(path);
	rmdir(dir);
}
