/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Database files and generations: a file is either completely right for
 * this machine or refused with the reason that explains it. Every
 * truncation and every single-bit flip of a small database is refused with
 * the reason its position predicts; signatures, keys, forged platforms,
 * rollbacks; reference counting, pinning across a swap, and the generation
 * state machine.
 *
 * No Criterion .timeout here: with --jobs 2, two concurrent tests carrying
 * one make Criterion 2.4.1 leak 48 bytes in its runner (LeakSanitizer
 * fails the run); meson's test timeout bounds the whole file instead.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/scan.h"
#include "moray/sigdb.h"
#include "moray/sigsrc.h"
#include "sigdb_priv.h"

#define CSTR(x) ((char *)(uintptr_t)(x))

static const char small_src[] =
	"1 Small.Raw reject raw lit:\"moray-small\"\n"
	"2 Small.Hdr log headers lit:\"X-Small\"\n";

/* compile @src into an image; caller frees */
static uint8_t *build(const char *src, uint64_t gen, const uint8_t *sk, size_t *len)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = gen, .created = 1700000000, .sign_key = sk };
	struct mry_sigc_report rep;
	uint8_t *img = NULL;

	cr_assert(eq(int, mry_sigsrc_parse(s, "t.sigs", src, strlen(src)), 0));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, len, &rep), 0));
	mry_sigsrc_destroy(s);
	return img;
}

static enum mry_sigdb_status load(const uint8_t *buf, size_t len, const uint8_t *pk,
				  uint64_t min_gen, char *detail, size_t dlen)
{
	struct mry_sigdb_load_opts o = { .pubkey = pk, .min_generation = min_gen };
	struct mry_sigdb_gen *g = NULL;
	enum mry_sigdb_status st = mry_sigdb_load_mem(buf, len, &o, &g, detail, dlen);

	if (st == MRY_SIGDB_OK)
		cr_assert_not_null(g);
	else
		cr_assert_null(g);
	mry_sigdb_gen_unref(g);
	return st;
}

static void quiet(enum mry_log_level l, const char *m, const char *msg, void *c)
{
	(void)l; (void)m; (void)msg; (void)c;
}

static void setup(void)
{
	mry_log_set_handler(quiet, NULL);
}

TestSuite(sigdb, .init = setup);

Test(sigdb, valid_file_loads_with_its_header_and_metadata)
{
	size_t len;
	uint8_t *img = build(small_src, 42, NULL, &len);
	struct mry_sigdb_gen *g = NULL;
	char detail[128];

	cr_assert(eq(int, mry_sigdb_load_mem(img, len, NULL, &g, detail, sizeof(detail)),
		     MRY_SIGDB_OK));
	cr_assert(eq(u64, mry_sigdb_gen_number(g), 42));
	cr_assert(eq(u64, mry_sigdb_gen_created(g), 1700000000));
	cr_assert(eq(u32, mry_sigdb_gen_nb_sigs(g), 2));
	cr_assert(eq(str, CSTR(mry_sigdb_gen_sig(g, 1)->name), "Small.Raw"));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 2)->action, MRY_ACTION_LOG));
	cr_assert_null(mry_sigdb_gen_sig(g, 3));
	cr_assert_not_null(mry_sigdb_gen_hs_db(g, MRY_SLOT_RAW));
	cr_assert_null(mry_sigdb_gen_hs_db(g, MRY_SLOT_DECODED));
	cr_assert_not_null(mry_sigdb_gen_hs_db(g, MRY_SLOT_HEADERS));
	cr_assert_not(mry_sigdb_gen_signed(g));
	cr_assert_not_null(strstr(mry_sigdb_gen_hs_info(g), "Mode: STREAM"));
	cr_assert(gt(sz, mry_sigdb_gen_scratch_size(g), 0));
	cr_assert(gt(sz, mry_sigdb_gen_stream_size(g, MRY_SLOT_RAW), 0));
	cr_assert(eq(sz, mry_sigdb_gen_stream_size(g, MRY_SLOT_DECODED), 0));
	mry_sigdb_gen_unref(g);
	free(img);
}

Test(sigdb, status_names_are_distinct)
{
	for (int a = 0; a < MRY_SIGDB_STATUS_MAX; a++) {
		cr_assert_str_neq(mry_sigdb_status_name((enum mry_sigdb_status)a), "unknown");
		for (int b = a + 1; b < MRY_SIGDB_STATUS_MAX; b++)
			cr_assert_str_neq(mry_sigdb_status_name((enum mry_sigdb_status)a),
					  mry_sigdb_status_name((enum mry_sigdb_status)b));
	}
}

Test(sigdb, every_truncation_is_refused_as_truncated)
{
	size_t len;
	uint8_t *img = build(small_src, 1, NULL, &len);
	char detail[128];

	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n + 1);

		memcpy(cut, img, n);
		cr_assert(eq(int, load(cut, n, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_TRUNCATED),
			  "cut at %zu: %s", n, detail);
		free(cut);
	}
	free(img);
}

Test(sigdb, trailing_bytes_are_refused_as_too_long)
{
	size_t len;
	uint8_t *img = build(small_src, 1, NULL, &len);
	uint8_t *big = calloc(1, len + 1);
	char detail[128];

	memcpy(big, img, len);
	cr_assert(eq(int, load(big, len + 1, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_TOO_LONG));
	free(big);
	free(img);
}

/* the reason a flip of bit @bit at @off must give (layout in sigdb_priv.h) */
static enum mry_sigdb_status expected_flip(const uint8_t *img, size_t len, size_t off,
					   int bit, bool is_signed, bool with_key)
{
	size_t sig_off = len - (is_signed ? MRY_SIGDB_SIG_LEN : 0);

	if (off < MRY_SIGDB_MAGIC_LEN)
		return MRY_SIGDB_BAD_MAGIC;
	if (off < MRY_SIGDB_OFF_HDR_LEN)
		return MRY_SIGDB_BAD_VERSION;
	if (off < MRY_SIGDB_OFF_GENERATION)
		return MRY_SIGDB_BAD_HEADER;
	if (off == MRY_SIGDB_OFF_FLAGS && bit == 0)
		return is_signed ? MRY_SIGDB_TOO_LONG : MRY_SIGDB_TRUNCATED;
	if (off >= MRY_SIGDB_OFF_FLAGS && off < MRY_SIGDB_OFF_FLAGS + 4)
		return MRY_SIGDB_BAD_HEADER;
	if (off >= MRY_SIGDB_OFF_RESERVED && off < MRY_SIGDB_OFF_RESERVED + 4)
		return MRY_SIGDB_BAD_HEADER;
	if (off >= MRY_SIGDB_OFF_PAYLOAD_LEN && off < MRY_SIGDB_OFF_PAYLOAD_LEN + 8)
		return (img[off] >> bit) & 1 ? MRY_SIGDB_TOO_LONG : MRY_SIGDB_TRUNCATED;
	if (off >= sig_off)
		return with_key ? MRY_SIGDB_BAD_SIG : MRY_SIGDB_OK;
	return MRY_SIGDB_DIGEST_MISMATCH;
}

static void flip_all(bool is_signed)
{
	uint8_t pk[MRY_SIGDB_PUBKEY_BYTES], sk[MRY_SIGDB_SECKEY_BYTES];
	size_t len;
	uint8_t *img, *w;
	char detail[160];
	uint64_t n = 0;

	cr_assert(eq(int, mry_sigdb_keygen(pk, sk), 0));
	img = build(small_src, 1, is_signed ? sk : NULL, &len);
	w = malloc(len);
	for (size_t off = 0; off < len; off++) {
		for (int bit = 0; bit < 8; bit++) {
			enum mry_sigdb_status want = expected_flip(img, len, off, bit, is_signed,
								   is_signed);
			enum mry_sigdb_status got;

			memcpy(w, img, len);
			w[off] ^= (uint8_t)(1u << bit);
			got = load(w, len, is_signed ? pk : NULL, 0, detail, sizeof(detail));
			cr_assert(eq(int, got, want), "byte %zu bit %d: got %s (%s), want %s", off,
				  bit, mry_sigdb_status_name(got), detail, mry_sigdb_status_name(want));
			n++;
		}
	}
	cr_log_info("%llu single-bit flips of a %zu-byte %s database, each refused as predicted",
		    (unsigned long long)n, len, is_signed ? "signed" : "unsigned");
	free(w);
	free(img);
}

Test(sigdb, every_bit_flip_is_refused_with_the_reason_of_its_position)
{
	flip_all(false);
}

Test(sigdb, every_bit_flip_of_a_signed_file_is_refused)
{
	flip_all(true);
}

Test(sigdb, signature_required_and_checked)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	size_t len, ulen;
	uint8_t *img, *uimg;
	char detail[160];

	mry_sigdb_keygen(pk, sk);
	mry_sigdb_keygen(pk2, sk2);
	img = build(small_src, 3, sk, &len);
	uimg = build(small_src, 3, NULL, &ulen);
	cr_assert(eq(int, load(img, len, pk, 0, detail, sizeof(detail)), MRY_SIGDB_OK));
	cr_assert(eq(int, load(img, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_OK));
	cr_assert(eq(int, load(img, len, pk2, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_SIG));
	cr_assert_not_null(strstr(detail, "Ed25519"));
	cr_assert(eq(int, load(uimg, ulen, pk, 0, detail, sizeof(detail)), MRY_SIGDB_UNSIGNED));
	free(img);
	free(uimg);
}

Test(sigdb, file_from_another_platform_is_refused)
{
	size_t len;
	uint8_t *img = build(small_src, 1, NULL, &len);
	uint8_t *w = malloc(len);
	char detail[200];

	/* another Hyperscan version */
	memcpy(w, img, len);
	memset(w + MRY_SIGDB_OFF_HS_VERSION, 0, MRY_SIGDB_HS_VERSION_LEN);
	memcpy(w + MRY_SIGDB_OFF_HS_VERSION, "4.7.0 2018-01-24", 16);
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_PLATFORM));
	cr_assert_not_null(strstr(detail, "4.7.0"));
	/* built for CPU features this machine lacks */
	memcpy(w, img, len);
	mry_wr64(w + MRY_SIGDB_OFF_CPU_FEATURES, ~0ull);
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_PLATFORM));
	cr_assert_not_null(strstr(detail, "CPU features"));
	free(w);
	free(img);
}

/* offset of the first byte of section @sec's body */
static size_t section_body(const uint8_t *img, uint32_t sec)
{
	size_t p = MRY_SIGDB_HDR_LEN;

	for (uint32_t s = MRY_SIGDB_SEC_META; s < sec; s++)
		p += 16 + ((mry_rd64(img + p + 8) + 7u) & ~(uint64_t)7u);
	return p + 16;
}

Test(sigdb, checks_behind_the_digest_refuse_forged_contents)
{
	size_t len;
	uint8_t *img = build(small_src, 1, NULL, &len);
	uint8_t *w = malloc(len);
	size_t meta = section_body(img, MRY_SIGDB_SEC_META);
	size_t raw = section_body(img, MRY_SIGDB_SEC_HS_RAW);
	char detail[200];

	/* section tag */
	memcpy(w, img, len);
	w[MRY_SIGDB_HDR_LEN] = 9;
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_HEADER));
	/* unknown action in metadata */
	memcpy(w, img, len);
	w[meta + 4 + 4] = 9;
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_META));
	cr_assert_not_null(strstr(detail, "action"));
	/* signature count disagreeing with the table */
	memcpy(w, img, len);
	mry_wr32(w + MRY_SIGDB_OFF_NB_SIGS, 3);
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_META));
	/* Hyperscan blob damaged */
	memcpy(w, img, len);
	w[raw] ^= 0xff;
	w[raw + 1] ^= 0xff;
	mry_sigdb_file_reseal(w, len);
	cr_assert(eq(int, load(w, len, NULL, 0, detail, sizeof(detail)), MRY_SIGDB_HS_DESERIALIZE));
	free(w);
	free(img);
}

Test(sigdb, generation_not_above_minimum_is_stale)
{
	size_t len;
	uint8_t *img = build(small_src, 10, NULL, &len);
	char detail[160];

	cr_assert(eq(int, load(img, len, NULL, 9, detail, sizeof(detail)), MRY_SIGDB_OK));
	cr_assert(eq(int, load(img, len, NULL, 10, detail, sizeof(detail)), MRY_SIGDB_STALE_GEN));
	cr_assert(eq(int, load(img, len, NULL, 11, detail, sizeof(detail)), MRY_SIGDB_STALE_GEN));
	cr_assert_not_null(strstr(detail, "rollback"));
	free(img);
}

Test(sigdb, missing_file_and_foreign_file)
{
	struct mry_sigdb_gen *g = NULL;
	char detail[200];
	uint8_t junk[300];

	cr_assert(eq(int, mry_sigdb_load_file("/nonexistent.mdb", NULL, &g, detail, sizeof(detail)),
		     MRY_SIGDB_IO_ERROR));
	memset(junk, 'A', sizeof(junk));
	cr_assert(eq(int, load(junk, sizeof(junk), NULL, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_MAGIC));
	memcpy(junk, MRY_SIGDB_MAGIC, 8);
	mry_wr32(junk + 8, 2);
	cr_assert(eq(int, load(junk, sizeof(junk), NULL, 0, detail, sizeof(detail)), MRY_SIGDB_BAD_VERSION));
}

/* ---- files, generations, state ------------------------------------------- */

static char tmpdir[64];

static void write_db(const char *name, const char *src, uint64_t gen, char *path, size_t plen)
{
	size_t len;
	uint8_t *img = build(src, gen, NULL, &len);

	snprintf(path, plen, "%s/%s", tmpdir, name);
	cr_assert(eq(int, mry_sigdb_write_file(path, img, len), 0));
	free(img);
}

static void mk_tmp(void)
{
	setup();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/moray-sigdb-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	cr_assert(eq(int, system(cmd), 0));
}

Test(sigdb, write_is_atomic_and_leaves_no_temp_file, .init = mk_tmp, .fini = rm_tmp)
{
	char path[256], cmd[300];
	struct mry_sigdb_gen *g = NULL;

	write_db("a.mdb", small_src, 5, path, sizeof(path));
	cr_assert(eq(int, mry_sigdb_load_file(path, NULL, &g, NULL, 0), MRY_SIGDB_OK));
	mry_sigdb_gen_unref(g);
	snprintf(cmd, sizeof(cmd), "test $(ls %s | wc -l) -eq 1", tmpdir);
	cr_assert(eq(int, system(cmd), 0));
}

Test(sigdb, reference_held_by_a_message_keeps_old_generation_after_swap,
     .init = mk_tmp, .fini = rm_tmp)
{
	struct mry_sigdb_ctl_config cfg = { .policy = MRY_DB_POLICY_HOLD };
	struct mry_sigdb_ctl *c = mry_sigdb_ctl_create(&cfg);
	struct mry_sigdb_gen *retired = NULL, *old, *pinned;
	char p1[256], p2[256];
	uint64_t live0 = mry_sigdb_gen_nb_live();

	write_db("g1.mdb", small_src, 1, p1, sizeof(p1));
	write_db("g2.mdb", small_src, 2, p2, sizeof(p2));
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p1, 100, &retired), MRY_SIGDB_OK));
	cr_assert_null(retired);
	old = mry_sigdb_ctl_usable(c);
	cr_assert(eq(u64, mry_sigdb_gen_number(old), 1));
	/* a message begins: pins gen 1 */
	pinned = old;
	mry_sigdb_gen_ref(pinned);
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live0 + 1));

	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p2, 101, &retired), MRY_SIGDB_OK));
	cr_assert(eq(ptr, retired, old));
	cr_assert(eq(u64, mry_sigdb_gen_number(mry_sigdb_ctl_usable(c)), 2));
	mry_sigdb_gen_unref(retired);      /* readers quiesced: control drops its ref */
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live0 + 2));
	/* the message still finishes on gen 1 */
	cr_assert(eq(u64, mry_sigdb_gen_number(pinned), 1));
	cr_assert_not_null(mry_sigdb_gen_sig(pinned, 1));
	mry_sigdb_gen_unref(pinned);       /* message ends: gen 1 freed */
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live0 + 1));
	mry_sigdb_ctl_destroy(c);
	cr_assert(eq(u64, mry_sigdb_gen_nb_live(), live0));
}

Test(sigdb, state_machine_no_db_valid_rejected_recovered, .init = mk_tmp, .fini = rm_tmp)
{
	struct mry_sigdb_ctl_config cfg = { .policy = MRY_DB_POLICY_HOLD };
	struct mry_sigdb_ctl *c = mry_sigdb_ctl_create(&cfg);
	struct mry_sigdb_gen *retired = NULL;
	char p1[256], p2[256], p3[256], bad[256];
	uint64_t v;
	FILE *f;

	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_INVALID));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "no_database"));
	cr_assert_null(mry_sigdb_ctl_usable(c));
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, NULL, 1, &retired), MRY_SIGDB_IO_ERROR));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_INVALID));

	write_db("g5.mdb", small_src, 5, p1, sizeof(p1));
	write_db("g4.mdb", small_src, 4, p2, sizeof(p2));
	write_db("g6.mdb", small_src, 6, p3, sizeof(p3));
	v = mry_sigdb_ctl_version(c);
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p1, 1, &retired), MRY_SIGDB_OK));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_VALID));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "ok"));
	cr_assert(gt(u64, mry_sigdb_ctl_version(c), v));

	/* the same file again is not a candidate: nothing changes */
	v = mry_sigdb_ctl_version(c);
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p1, 2, &retired), MRY_SIGDB_OK));
	cr_assert_null(retired);
	cr_assert(eq(u64, mry_sigdb_ctl_version(c), v));

	/* rollback: refused, state invalid, hold policy -> nothing usable */
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p2, 3, &retired), MRY_SIGDB_STALE_GEN));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_INVALID));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "candidate_rejected: stale_generation"));
	cr_assert_null(mry_sigdb_ctl_usable(c));
	cr_assert(eq(u64, mry_sigdb_gen_number(mry_sigdb_ctl_active(c)), 5));
	cr_assert(eq(u64, mry_sigdb_ctl_rejected(c, MRY_SIGDB_STALE_GEN), 1));

	/* a corrupt candidate keeps it invalid */
	snprintf(bad, sizeof(bad), "%s/bad.mdb", tmpdir);
	f = fopen(bad, "wb");
	fputs("MORAYSDB garbage", f);
	fclose(f);
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, bad, 4, &retired), MRY_SIGDB_BAD_VERSION));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "candidate_rejected: bad_version"));

	/* a valid newer one recovers */
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p3, 5, &retired), MRY_SIGDB_OK));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_VALID));
	cr_assert(eq(u64, mry_sigdb_gen_number(mry_sigdb_ctl_usable(c)), 6));
	cr_assert(eq(u64, mry_sigdb_gen_number(retired), 5));
	mry_sigdb_gen_unref(retired);
	mry_sigdb_ctl_destroy(c);
}

Test(sigdb, last_good_policy_keeps_scanning_while_invalid, .init = mk_tmp, .fini = rm_tmp)
{
	struct mry_sigdb_ctl_config cfg = { .policy = MRY_DB_POLICY_LAST_GOOD };
	struct mry_sigdb_ctl *c = mry_sigdb_ctl_create(&cfg);
	struct mry_sigdb_gen *retired = NULL;
	char p1[256], p2[256];

	write_db("g5.mdb", small_src, 5, p1, sizeof(p1));
	write_db("g4.mdb", small_src, 4, p2, sizeof(p2));
	cr_assert_null(mry_sigdb_ctl_usable(c));   /* nothing to fall back on */
	mry_sigdb_ctl_offer(c, p1, 1, &retired);
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p2, 2, &retired), MRY_SIGDB_STALE_GEN));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_INVALID));
	cr_assert_not_null(mry_sigdb_ctl_usable(c));
	cr_assert(eq(u64, mry_sigdb_gen_number(mry_sigdb_ctl_usable(c)), 5));
	mry_sigdb_ctl_destroy(c);
}

Test(sigdb, max_age_makes_state_invalid_on_tick, .init = mk_tmp, .fini = rm_tmp)
{
	struct mry_sigdb_ctl_config cfg = { .policy = MRY_DB_POLICY_HOLD, .max_age_s = 3600 };
	struct mry_sigdb_ctl *c = mry_sigdb_ctl_create(&cfg);
	struct mry_sigdb_gen *retired = NULL;
	char p1[256];
	const uint64_t created = 1700000000;   /* build() */

	write_db("g5.mdb", small_src, 5, p1, sizeof(p1));
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p1, created + 10, &retired), MRY_SIGDB_OK));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_VALID));
	cr_assert_not(mry_sigdb_ctl_tick(c, created + 3600));
	cr_assert(mry_sigdb_ctl_tick(c, created + 3601));
	cr_assert(eq(int, mry_sigdb_ctl_state(c), MRY_DB_INVALID));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "too_old"));
	cr_assert_null(mry_sigdb_ctl_usable(c));
	cr_assert_not(mry_sigdb_ctl_tick(c, created + 4000));
	mry_sigdb_ctl_destroy(c);
}

Test(sigdb, ctl_with_key_refuses_unsigned_candidate, .init = mk_tmp, .fini = rm_tmp)
{
	uint8_t pk[32], sk[64];
	struct mry_sigdb_ctl_config cfg = { .policy = MRY_DB_POLICY_HOLD, .pubkey = pk };
	struct mry_sigdb_ctl *c;
	struct mry_sigdb_gen *retired = NULL;
	char p1[256];

	mry_sigdb_keygen(pk, sk);
	c = mry_sigdb_ctl_create(&cfg);
	memset(pk, 0, sizeof(pk));            /* the ctl copied it */
	write_db("u.mdb", small_src, 5, p1, sizeof(p1));
	cr_assert(eq(int, mry_sigdb_ctl_offer(c, p1, 1, &retired), MRY_SIGDB_UNSIGNED));
	cr_assert(eq(str, CSTR(mry_sigdb_ctl_reason(c)), "candidate_rejected: unsigned"));
	mry_sigdb_ctl_destroy(c);
}

/* ---- moray-sigc, the interface DESIGN.md promises ---------------------- */

static int run(const char *cmd, char *out, size_t out_len)
{
	FILE *p = popen(cmd, "r");
	size_t n;
	int st;

	cr_assert_not_null(p);
	n = fread(out, 1, out_len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(sigdb, sigc_verify_exits_zero_only_for_a_valid_file, .init = mk_tmp, .fini = rm_tmp)
{
	const char *sigc = MORAY_BUILDDIR "/engine/tools/moray-sigc";
	char cmd[1024], out[1024], src[256];
	FILE *f;

	if (access(sigc, X_OK) != 0)
		cr_fatal("%s missing (not built?)", sigc);
	snprintf(src, sizeof(src), "%s/t.sigs", tmpdir);
	f = fopen(src, "w");
	fputs(small_src, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s keygen %s/k.key %s/k.pub && %s compile -o %s/a.mdb "
		 "--generation 9 --sign-key %s/k.key %s", sigc, tmpdir, tmpdir, sigc, tmpdir,
		 tmpdir, src);
	cr_assert(eq(int, run(cmd, out, sizeof(out)), 0), "%s", out);
	cr_assert_not_null(strstr(out, "generation 9, 2 signatures"));
	snprintf(cmd, sizeof(cmd), "%s verify --pubkey %s/k.pub %s/a.mdb", sigc, tmpdir, tmpdir);
	cr_assert(eq(int, run(cmd, out, sizeof(out)), 0), "%s", out);
	cr_assert_not_null(strstr(out, "valid: generation 9"));
	/* one flipped byte in the middle */
	snprintf(cmd, sizeof(cmd), "printf 'Z' | dd of=%s/a.mdb bs=1 seek=300 conv=notrunc "
		 "status=none && %s verify %s/a.mdb", tmpdir, sigc, tmpdir);
	cr_assert(eq(int, run(cmd, out, sizeof(out)), 1));
	cr_assert_not_null(strstr(out, "invalid: digest_mismatch: "));
	cr_assert(eq(int, (int)(strchr(out, '\n') - out), (int)strlen(out) - 1), "one line: %s", out);
	/* a source error: nothing written, file:line:col on stderr */
	f = fopen(src, "a");
	fputs("3 Bad drop raw lit:\"x\"\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s compile -o %s/b.mdb %s 2>&1; test ! -e %s/b.mdb", sigc,
		 tmpdir, src, tmpdir);
	cr_assert(eq(int, run(cmd, out, sizeof(out)), 0), "%s", out);
	cr_assert_not_null(strstr(out, "t.sigs:3:7: unknown action 'drop'"), "%s", out);
}

/* ---- key files ----------------------------------------------------------- */

static const char *write_tmp(const char *name, const void *data, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/moray-test-key-%d-%s", (int)getpid(), name);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert(eq(sz, fwrite(data, 1, len, f), len));
	fclose(f);
	return path;
}

Test(sigdb, key_files_raw_or_hex)
{
	uint8_t pk[MRY_SIGDB_PUBKEY_BYTES], sk[MRY_SIGDB_SECKEY_BYTES], got[MRY_SIGDB_PUBKEY_BYTES];
	char hex[2 * MRY_SIGDB_PUBKEY_BYTES + 2], why[128];
	const char *path;

	cr_assert(eq(int, mry_sigdb_keygen(pk, sk), 0));
	path = write_tmp("raw", pk, sizeof(pk));
	cr_assert(eq(int, mry_sigdb_read_key(path, got, sizeof(got), why, sizeof(why)), 0));
	cr_assert(eq(int, memcmp(got, pk, sizeof(pk)), 0));
	unlink(path);
	for (size_t i = 0; i < sizeof(pk); i++)
		snprintf(hex + 2 * i, 3, i % 2 ? "%02X" : "%02x", pk[i]);
	strcat(hex, "\n");
	path = write_tmp("hex", hex, strlen(hex));
	memset(got, 0, sizeof(got));
	cr_assert(eq(int, mry_sigdb_read_key(path, got, sizeof(got), why, sizeof(why)), 0));
	cr_assert(eq(int, memcmp(got, pk, sizeof(pk)), 0));
	unlink(path);
	/* the secret key file moray-sigc writes reads back too */
	path = write_tmp("sk", sk, sizeof(sk));
	cr_assert(eq(int, mry_sigdb_read_key(path, sk, sizeof(sk), why, sizeof(why)), 0));
	unlink(path);
}

Test(sigdb, bad_key_files_say_why)
{
	uint8_t key[MRY_SIGDB_PUBKEY_BYTES];
	char why[128], hex[2 * MRY_SIGDB_PUBKEY_BYTES + 1];
	const char *path;

	cr_assert(eq(int, mry_sigdb_read_key("/nonexistent/key", key, sizeof(key), why,
					     sizeof(why)), -ENOENT));
	cr_assert(ne(ptr, strstr(why, "No such file"), NULL), "%s", why);
	path = write_tmp("short", "abc", 3);
	cr_assert(eq(int, mry_sigdb_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL));
	cr_assert(ne(ptr, strstr(why, "32 raw bytes or 64 hex"), NULL), "%s", why);
	unlink(path);
	memset(hex, 'a', sizeof(hex) - 1);
	hex[7] = 'g';
	path = write_tmp("badhex", hex, sizeof(hex) - 1);
	cr_assert(eq(int, mry_sigdb_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL));
	unlink(path);
	path = write_tmp("long", hex, sizeof(hex) - 2);   /* 63 characters */
	cr_assert(eq(int, mry_sigdb_read_key(path, key, sizeof(key), why, sizeof(why)), -EINVAL));
	unlink(path);
}
