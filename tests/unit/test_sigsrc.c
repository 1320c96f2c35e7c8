/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Signature sources: every syntax feature of moray's format proven by what
 * the compiled database matches, every mistake reported at its file:line:col,
 * and the ClamAV .ndb import: each feature of tests/data/sigs-and-mail.md's
 * table by behaviour, each untranslatable form counted under its reason, and
 * the real rfxn-2013.ndb with its translation report.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>

#include "moray/scan.h"
#include "moray/sigsrc.h"

/* Criterion's str type is char *: drop const for comparisons only */
#define CSTR(x) ((char *)(uintptr_t)(x))

#ifndef MORAY_SRCDIR
#define MORAY_SRCDIR "."
#endif

static struct mry_sigdb_gen *compile_src(const char *moray, const char *ndb,
					 struct mry_sigsrc **keep)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = 7, .created = 1000 };
	struct mry_sigc_report rep;
	struct mry_sigdb_gen *g = NULL;
	uint8_t *img = NULL;
	size_t len = 0;
	char detail[256];
	int rc;

	cr_assert_not_null(s);
	if (moray != NULL)
		cr_assert(eq(int, mry_sigsrc_parse(s, "t.sigs", moray, strlen(moray)), 0),
			  "%s", mry_sigsrc_error(s, 0));
	if (ndb != NULL)
		cr_assert(eq(int, mry_sigsrc_parse_ndb(s, "t.ndb", ndb, strlen(ndb)), 0));
	rc = mry_sigsrc_compile(s, &o, &img, &len, &rep);
	cr_assert(eq(int, rc, 0), "compile: %s", mry_sigsrc_error(s, 0));
	cr_assert(eq(int, mry_sigdb_load_mem(img, len, NULL, &g, detail, sizeof(detail)),
		     MRY_SIGDB_OK), "%s", detail);
	free(img);
	if (keep != NULL)
		*keep = s;
	else
		mry_sigsrc_destroy(s);
	return g;
}

/* which signature ids match @data on @target (raw or a decoded part) */
static struct mry_scan_result scan_as(struct mry_sigdb_gen *g, unsigned target,
				      const void *data, size_t len)
{
	struct mry_scanner *sc = mry_scanner_create(mry_alloc_default(), 2);
	struct mry_scan_msg *m;
	struct mry_scan_result r;

	cr_assert_not_null(sc);
	m = mry_scan_msg_begin(sc, g);
	cr_assert_not_null(m);
	if (target == MRY_TARGET_RAW) {
		mry_scan_msg_raw(m, data, len);
	} else if (target == MRY_TARGET_HEADERS) {
		mry_scan_msg_headers(m, data, len);
	} else {
		mry_scan_msg_part_begin(m);
		mry_scan_msg_part_data(m, data, len);
		mry_scan_msg_part_end(m);
	}
	mry_scan_msg_end(m, &r);
	mry_scanner_destroy(sc);
	return r;
}

static bool matched(const struct mry_scan_result *r, uint32_t id)
{
	for (uint32_t i = 0; i < r->nb_sigs; i++)
		if (r->sig_ids[i] == id)
			return true;
	return false;
}

static bool src_matches(struct mry_sigdb_gen *g, unsigned target, uint32_t id,
			const char *data, size_t len)
{
	struct mry_scan_result r = scan_as(g, target, data, len);

	return matched(&r, id);
}

#define M(g, id, s) src_matches(g, MRY_TARGET_DECODED, id, s, sizeof(s) - 1)

/* ---- moray format: features ------------------------------------------- */

Test(sigsrc, literal_escapes_match_the_bytes_they_name)
{
	struct mry_sigdb_gen *g = compile_src(
		"1 Lit.Esc log decoded lit:\"a\\x00b\\n\\r\\t\\\\\\\"z\"\n", NULL, NULL);

	cr_assert(M(g, 1, "..a\0b\n\r\t\\\"z.."));
	cr_assert_not(M(g, 1, "a\\x00b"));
	mry_sigdb_gen_unref(g);
}

Test(sigsrc, literal_caseless_flag_and_default_case)
{
	struct mry_sigdb_gen *g = compile_src(
		"1 Cs log decoded lit:\"Hello\"\n2 Ci log decoded lit:\"Hello\"i\n", NULL, NULL);

	cr_assert(M(g, 1, "Hello"));
	cr_assert_not(M(g, 1, "hELLO"));
	cr_assert(M(g, 2, "hELLO"));
	mry_sigdb_gen_unref(g);
}

Test(sigsrc, literal_regex_metacharacters_are_literal)
{
	struct mry_sigdb_gen *g = compile_src("1 Meta log decoded lit:\"a.b*(c)\"\n", NULL, NULL);

	cr_assert(M(g, 1, "xa.b*(c)x"));
	cr_assert_not(M(g, 1, "axbbbc"));
	mry_sigdb_gen_unref(g);
}

Test(sigsrc, regex_flags_i_s_m)
{
	struct mry_sigdb_gen *g = compile_src(
		"1 R.plain log decoded re:/ab.cd/\n"
		"2 R.i log decoded re:/abcd/i\n"
		"3 R.s log decoded re:/ab.cd/s\n"
		"4 R.m log decoded re:/^line2$/m\n"
		"5 R.slash log decoded re:/a/b/\n", NULL, NULL);

	cr_assert(M(g, 1, "abXcd"));
	cr_assert_not(M(g, 1, "ab\ncd"));
	cr_assert(M(g, 2, "ABCD"));
	cr_assert(M(g, 3, "ab\ncd"));
	cr_assert(M(g, 4, "line1\nline2\nline3"));
	cr_assert_not(M(g, 4, "xline2"));
	cr_assert(M(g, 5, "a/b"));
	mry_sigdb_gen_unref(g);
}

Test(sigsrc, hex_every_wildcard_form)
{
	struct mry_sigdb_gen *g = compile_src(
		"1 H.any log decoded hex:41??43\n"
		"2 H.nibhi log decoded hex:41 4? 43\n"
		"3 H.niblo log decoded hex:41?243\n"
		"4 H.star log decoded hex:41*43\n"
		"5 H.n log decoded hex:41{2}43\n"
		"6 H.nm log decoded hex:41{1-2}43\n"
		"7 H.upto log decoded hex:41{-2}43\n"
		"8 H.atleast log decoded hex:41{3-}43\n"
		"9 H.range log decoded hex:41[1-2]43\n"
		"10 H.alt log decoded hex:41(42|4344)45\n"
		"11 H.neg log decoded hex:41!(42|43)44\n"
		"12 H.nested log decoded hex:41(42??|(43|44)45)46\n", NULL, NULL);

	cr_assert(M(g, 1, "A\nC"));             /* ?? is any byte, newline too */
	cr_assert_not(M(g, 1, "AC"));
	cr_assert(M(g, 2, "AOC"));              /* 0x4f in 4? */
	cr_assert_not(M(g, 2, "APC"));          /* 0x50 not */
	cr_assert(M(g, 3, "A\x72" "C"));        /* ?2: low nibble 2 */
	cr_assert_not(M(g, 3, "A\x73" "C"));
	cr_assert(M(g, 4, "AC"));
	cr_assert(M(g, 4, "A long way\nC"));
	cr_assert(M(g, 5, "AxxC"));
	cr_assert_not(M(g, 5, "AxC"));
	cr_assert(M(g, 6, "AxC"));
	cr_assert(M(g, 6, "AxxC"));
	cr_assert_not(M(g, 6, "AxxxC"));
	cr_assert(M(g, 7, "AC"));
	cr_assert_not(M(g, 7, "AxxxC"));
	cr_assert(M(g, 8, "AxxxC"));
	cr_assert_not(M(g, 8, "AxxC"));
	cr_assert(M(g, 9, "AxxC"));
	cr_assert_not(M(g, 9, "AC"));
	cr_assert(M(g, 10, "ABE"));
	cr_assert(M(g, 10, "ACDE"));
	cr_assert_not(M(g, 10, "ACE"));
	cr_assert(M(g, 11, "AXD"));
	cr_assert_not(M(g, 11, "ABD"));
	cr_assert_not(M(g, 11, "ACD"));
	cr_assert(M(g, 12, "AB?F"));
	cr_assert(M(g, 12, "ADEF"));
	cr_assert_not(M(g, 12, "ABF"));
	mry_sigdb_gen_unref(g);
}

Test(sigsrc, targets_select_slots_and_comment_blank_crlf_lines_are_skipped)
{
	struct mry_sigsrc *s = NULL;
	struct mry_sigdb_gen *g = compile_src(
		"# comment\r\n\r\n   \n\t# indented comment\n"
		"1 T.raw log raw lit:\"xyz\"\r\n"
		"2 T.dec log decoded lit:\"xyz\"\n"
		"3 T.hdr log headers lit:\"xyz\"\n"
		"4 T.any log any lit:\"xyz\"\n"
		"5 T.two tempfail raw,headers lit:\"xyz\"\n", NULL, &s);

	cr_assert(eq(u32, mry_sigsrc_nb_sigs(s), 5));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 1)->targets, MRY_TARGET_RAW));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 2)->targets, MRY_TARGET_DECODED));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 3)->targets, MRY_TARGET_HEADERS));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 4)->targets, MRY_TARGET_ANY));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 5)->targets, MRY_TARGET_RAW | MRY_TARGET_HEADERS));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, 5)->action, MRY_ACTION_TEMPFAIL));
	cr_assert(eq(str, CSTR(mry_sigdb_gen_sig(g, 2)->name), "T.dec"));
	cr_assert(src_matches(g, MRY_TARGET_RAW, 1, "xyz", 3));
	cr_assert_not(src_matches(g, MRY_TARGET_DECODED, 1, "xyz", 3));
	cr_assert(src_matches(g, MRY_TARGET_DECODED, 2, "xyz", 3));
	cr_assert_not(src_matches(g, MRY_TARGET_HEADERS, 2, "xyz", 3));
	cr_assert(src_matches(g, MRY_TARGET_HEADERS, 3, "xyz", 3));
	cr_assert_not(src_matches(g, MRY_TARGET_RAW, 3, "xyz", 3));
	cr_assert(src_matches(g, MRY_TARGET_HEADERS, 4, "xyz", 3));
	cr_assert(src_matches(g, MRY_TARGET_RAW, 5, "xyz", 3));
	mry_sigdb_gen_unref(g);
	mry_sigsrc_destroy(s);
}

/* ---- moray format: errors ------------------------------------------------ */

/* Parameters are copied into each test's process: arrays, not pointers */
struct err_case {
	char text[64];
	char where[16];        /* "t.sigs:L:C" */
	char what[48];         /* substring of the message */
};

static struct err_case err_cases[] = {
	{ "x1 N log raw lit:\"a\"", "t.sigs:1:1", "bad id" },
	{ "0 N log raw lit:\"a\"", "t.sigs:1:1", "bad id" },
	{ "1000000 N log raw lit:\"a\"", "t.sigs:1:1", "bad id" },
	{ "1 N log raw lit:\"a\"\n1 M log raw lit:\"b\"", "t.sigs:2:1", "duplicate id 1 (first defined at t.sigs:1)" },
	{ "1", "t.sigs:1:2", "missing name" },
	{ "1 N", "t.sigs:1:4", "missing action" },
	{ "1 N drop raw lit:\"a\"", "t.sigs:1:5", "unknown action 'drop'" },
	{ "1 N log", "t.sigs:1:8", "missing target" },
	{ "1 N log body lit:\"a\"", "t.sigs:1:9", "unknown target" },
	{ "1 N log raw,bogus lit:\"a\"", "t.sigs:1:13", "unknown target" },
	{ "1 N log raw", "t.sigs:1:12", "missing pattern" },
	{ "1 N log raw str:\"a\"", "t.sigs:1:13", "unknown pattern kind" },
	{ "1 N log raw hex:41g2", "t.sigs:1:19", "bad hex digit 'g'" },
	{ "1 N log raw hex:414", "t.sigs:1:19", "odd number of hex digits" },
	{ "1 N log raw hex:41(42|43", "t.sigs:1:19", "unbalanced '('" },
	{ "1 N log raw hex:4142)43", "t.sigs:1:21", "unbalanced ')'" },
	{ "1 N log raw hex:41{x}42", "t.sigs:1:19", "bad gap" },
	{ "1 N log raw hex:41{5-2}42", "t.sigs:1:19", "low bound above high" },
	{ "1 N log raw hex:41{2", "t.sigs:1:19", "unterminated gap" },
	{ "1 N log raw hex:41(|42)", "t.sigs:1:20", "empty alternative" },
	{ "1 N log raw hex:", "t.sigs:1:17", "empty hex signature" },
	{ "1 N log raw hex:41(B)", "t.sigs:1:19", "boundary anchor" },
	{ "1 N log raw hex:41!(4243|44)", "t.sigs:1:19", "negated alternative" },
	{ "1 N log raw lit:\"abc", "t.sigs:1:17", "unterminated literal" },
	{ "1 N log raw lit:\"a\\q\"", "t.sigs:1:19", "unknown escape '\\q'" },
	{ "1 N log raw lit:\"a\\x4\"", "t.sigs:1:19", "\\x needs two hex digits" },
	{ "1 N log raw lit:\"\"", "t.sigs:1:17", "empty literal" },
	{ "1 N log raw lit:\"a\"z", "t.sigs:1:20", "unknown literal flag 'z'" },
	{ "1 N log raw lit:\"a\" extra", "t.sigs:1:21", "unexpected text after pattern" },
	{ "1 N log raw re:abc", "t.sigs:1:16", "regex must be written" },
	{ "1 N log raw re:/abc", "t.sigs:1:16", "unterminated regex" },
	{ "1 N log raw re://", "t.sigs:1:16", "empty regex" },
	{ "1 N log raw re:/abc/q", "t.sigs:1:21", "unknown regex flag 'q'" },
	{ "1 N log raw re:/a(b/", "t.sigs:1:13", "Hyperscan refuses pattern" },
	{ "1 N log raw re:/(a)\\1/", "t.sigs:1:13", "Hyperscan refuses pattern" },
	{ "1 N log raw re:/a*/", "t.sigs:1:13", "Hyperscan refuses pattern" },
	{ "# ok\n\n1 N\"x log raw lit:\"a\"", "t.sigs:3:4", "bad character in name" },
};

ParameterizedTestParameters(sigsrc, each_mistake_is_reported_at_file_line_col)
{
	return cr_make_param_array(struct err_case, err_cases, MRY_ARRAY_SIZE(err_cases));
}

ParameterizedTest(struct err_case *c, sigsrc, each_mistake_is_reported_at_file_line_col)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	int rc = mry_sigsrc_parse(s, "t.sigs", c->text, strlen(c->text));
	const char *e = mry_sigsrc_error(s, 0);
	char where[64];

	cr_assert(eq(int, rc, -EINVAL), "accepted: %s", c->text);
	cr_assert_not_null(e);
	snprintf(where, sizeof(where), "%s: ", c->where);
	cr_assert(eq(int, strncmp(e, where, strlen(where)), 0), "got '%s', want at %s", e, c->where);
	cr_assert_not_null(strstr(e, c->what), "got '%s', want '%s'", e, c->what);
	mry_sigsrc_destroy(s);
}

Test(sigsrc, errors_keep_valid_lines_and_block_compile)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	const char *t = "1 A log raw lit:\"a\"\n2 B nope raw lit:\"b\"\n3 C log raw lit:\"c\"\n";
	struct mry_sigc_opts o = { .generation = 1 };
	struct mry_sigc_report rep;
	uint8_t *img = NULL;
	size_t len = 0;

	cr_assert(eq(int, mry_sigsrc_parse(s, "t.sigs", t, strlen(t)), -EINVAL));
	cr_assert(eq(u32, mry_sigsrc_nb_errors(s), 1));
	cr_assert(eq(u32, mry_sigsrc_nb_sigs(s), 2));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, &len, &rep), -EINVAL));
	cr_assert_null(img);
	mry_sigsrc_destroy(s);
}

Test(sigsrc, duplicate_id_across_files_is_an_error)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	const char *a = "5 A log raw lit:\"a\"\n", *b = "\n5 B log raw lit:\"b\"\n";

	cr_assert(eq(int, mry_sigsrc_parse(s, "a.sigs", a, strlen(a)), 0));
	cr_assert(eq(int, mry_sigsrc_parse(s, "b.sigs", b, strlen(b)), -EINVAL));
	cr_assert(eq(str, CSTR(mry_sigsrc_error(s, 0)),
		     "b.sigs:2:1: duplicate id 5 (first defined at a.sigs:1)"));
	mry_sigsrc_destroy(s);
}

Test(sigsrc, missing_file_is_an_error_naming_it)
{
	struct mry_sigsrc *s = mry_sigsrc_create();

	cr_assert(lt(int, mry_sigsrc_add_file(s, "/nonexistent/x.sigs"), 0));
	cr_assert_not_null(strstr(mry_sigsrc_error(s, 0), "/nonexistent/x.sigs"));
	mry_sigsrc_destroy(s);
}

Test(sigsrc, empty_source_does_not_compile)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = 1 };
	struct mry_sigc_report rep;
	uint8_t *img = NULL;
	size_t len = 0;

	cr_assert(eq(int, mry_sigsrc_parse(s, "t", "# nothing\n", 10), 0));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, &len, &rep), -ENOENT));
	mry_sigsrc_destroy(s);
}

/* ---- ClamAV .ndb ---------------------------------------------------------- */

struct ndb_case {
	char line[32];         /* without the name */
	unsigned target;       /* where to scan */
	char hit[16];
	size_t hit_len;        /* 0: no positive case */
	char miss[16];
	size_t miss_len;       /* 0: no negative case */
};

#define S(x) x, sizeof(x) - 1

static struct ndb_case ndb_cases[] = {
	/* pure literal */
	{ "0:*:414243", MRY_TARGET_RAW, S("xxABCxx"), S("ABxC") },
	/* ?? */
	{ "0:*:41??43", MRY_TARGET_DECODED, S("A\xff" "C"), S("AC") },
	/* a? / ?a nibbles */
	{ "0:*:414?", MRY_TARGET_DECODED, S("AO"), S("AP") },
	{ "0:*:41?f", MRY_TARGET_DECODED, S("A/"), S("A0") },
	/* * */
	{ "0:*:41*4243", MRY_TARGET_DECODED, S("A.........BC"), S("BCA") },
	/* {n} {-n} {n-} {n-m} */
	{ "0:*:41{3}42", MRY_TARGET_DECODED, S("A123B"), S("A12B") },
	{ "0:*:41{-2}42", MRY_TARGET_DECODED, S("A12B"), S("A123B") },
	{ "0:*:41{2-}42", MRY_TARGET_DECODED, S("A12345B"), S("A1B") },
	{ "0:*:41{1-3}42", MRY_TARGET_DECODED, S("A12B"), S("A1234B") },
	/* bound above 32767 widened to unbounded (still matches) */
	{ "0:*:41{1-40000}42", MRY_TARGET_DECODED, S("A12B"), S("AB") },
	/* [x-y] */
	{ "0:*:41[1-2]42", MRY_TARGET_DECODED, S("A1B"), S("A123B") },
	/* alternatives: single, multi-byte, with wildcards inside */
	{ "0:*:41(42|43)44", MRY_TARGET_DECODED, S("ACD"), S("AED") },
	{ "0:*:41(4242|4343)44", MRY_TARGET_DECODED, S("ACCD"), S("ABCD") },
	{ "0:*:41(42??|43{2}44)45", MRY_TARGET_DECODED, S("AC..DE"), S("ACDE") },
	/* !(..) single-byte negation */
	{ "0:*:41!(42|43)44", MRY_TARGET_DECODED, S("AZD"), S("ABD") },
	/* absolute offset n and n,m */
	{ "0:3:4142", MRY_TARGET_DECODED, S("123AB"), S("1234AB") },
	{ "0:2,2:4142", MRY_TARGET_DECODED, S("1234AB"), S("12345AB") },
	/* large absolute offset, fixed width: Hyperscan offset bounds */
	{ "0:40000:4142", MRY_TARGET_DECODED, "", 0, S("AB") },
	/* file-type targets match decoded parts, not the raw message */
	{ "1:*:4d5a9000", MRY_TARGET_DECODED, S("MZ\x90\0"), "", 0 },
	{ "6:*:7f454c46", MRY_TARGET_DECODED, S("\x7f" "ELF"), "", 0 },
	/* MinFL/MaxFL accepted and ignored */
	{ "0:*:41424344:51:255", MRY_TARGET_RAW, S("ABCD"), S("ABC") },
};

ParameterizedTestParameters(sigsrc, ndb_feature_translates_to_same_matches)
{
	return cr_make_param_array(struct ndb_case, ndb_cases, MRY_ARRAY_SIZE(ndb_cases));
}

ParameterizedTest(struct ndb_case *c, sigsrc, ndb_feature_translates_to_same_matches)
{
	char line[256];
	struct mry_sigsrc *s = NULL;
	struct mry_sigdb_gen *g;
	uint32_t id = MRY_SIGSRC_NDB_ID_BASE + 1;

	snprintf(line, sizeof(line), "Case.Sig:%s\n", c->line);
	g = compile_src(NULL, line, &s);
	cr_assert(eq(u32, mry_sigsrc_ndb_report(s)->translated, 1), "%s: %s", c->line,
		  mry_sigsrc_note(s, 0));
	if (c->hit_len != 0)
		cr_assert(src_matches(g, c->target, id, c->hit, c->hit_len), "%s should match", c->line);
	if (c->miss_len != 0)
		cr_assert_not(src_matches(g, c->target, id, c->miss, c->miss_len),
			      "%s should not match", c->line);
	mry_sigdb_gen_unref(g);
	mry_sigsrc_destroy(s);
}

Test(sigsrc, ndb_large_offset_bounds_the_match_end)
{
	struct mry_sigsrc *s = NULL;
	struct mry_sigdb_gen *g = compile_src(NULL, "Far:0:40000:4142\n", &s);
	char *buf = malloc(40010);

	memset(buf, '.', 40010);
	memcpy(buf + 40000, "AB", 2);
	cr_assert(src_matches(g, MRY_TARGET_DECODED, MRY_SIGSRC_NDB_ID_BASE + 1, buf, 40010));
	memset(buf, '.', 40010);
	memcpy(buf + 40001, "AB", 2);
	cr_assert_not(src_matches(g, MRY_TARGET_DECODED, MRY_SIGSRC_NDB_ID_BASE + 1, buf, 40010));
	free(buf);
	mry_sigdb_gen_unref(g);
	mry_sigsrc_destroy(s);
}

Test(sigsrc, ndb_targets_map_any_and_mail_to_raw_and_decoded)
{
	struct mry_sigsrc *s = NULL;
	struct mry_sigdb_gen *g = compile_src(NULL,
		"Any:0:*:41424344\nMail:4:*:41424344\nPE:1:*:41424344\nHTML:3:*:41424344\n"
		"ASCII:7:*:41424344\nPDF:10:*:41424344\n", &s);

	cr_assert(eq(u32, mry_sigdb_gen_sig(g, MRY_SIGSRC_NDB_ID_BASE + 1)->targets,
		     MRY_TARGET_RAW | MRY_TARGET_DECODED));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, MRY_SIGSRC_NDB_ID_BASE + 2)->targets,
		     MRY_TARGET_RAW | MRY_TARGET_DECODED));
	for (uint32_t l = 3; l <= 6; l++)
		cr_assert(eq(u32, mry_sigdb_gen_sig(g, MRY_SIGSRC_NDB_ID_BASE + l)->targets,
			     MRY_TARGET_DECODED));
	cr_assert(eq(u32, mry_sigdb_gen_sig(g, MRY_SIGSRC_NDB_ID_BASE + 1)->action,
		     MRY_ACTION_REJECT));
	mry_sigdb_gen_unref(g);
	mry_sigsrc_destroy(s);
}

struct skip_case {
	char line[32];
	enum mry_ndb_skip reason;
};

static struct skip_case skip_cases[] = {
	{ "N:0:EOF-10:41424344", MRY_NDB_SKIP_OFFSET_EOF },
	{ "N:0:EOF-10,20:41424344", MRY_NDB_SKIP_OFFSET_EOF },
	{ "N:1:EP+0:41424344", MRY_NDB_SKIP_OFFSET_EP },
	{ "N:1:EP-16,8:41424344", MRY_NDB_SKIP_OFFSET_EP },
	{ "N:1:S2+4:41424344", MRY_NDB_SKIP_OFFSET_SECTION },
	{ "N:1:SE1:41424344", MRY_NDB_SKIP_OFFSET_SECTION },
	{ "N:1:SL+10:41424344", MRY_NDB_SKIP_OFFSET_SECTION },
	{ "N:1:VI:41424344", MRY_NDB_SKIP_OFFSET_OTHER },
	{ "N:0:40000:41*42", MRY_NDB_SKIP_OFFSET_RANGE },
	{ "N:0:*:41(B)4243", MRY_NDB_SKIP_ANCHOR },
	{ "N:0:*:(L)41424344", MRY_NDB_SKIP_ANCHOR },
	{ "N:0:*:4142(W)43", MRY_NDB_SKIP_ANCHOR },
	{ "N:0:*:41!(4243|44)45", MRY_NDB_SKIP_NEG_MULTIBYTE },
	{ "N:8:*:41424344", MRY_NDB_SKIP_TARGET },
	{ "N:13:*:41424344", MRY_NDB_SKIP_TARGET },
	{ "N:0:*:41424g", MRY_NDB_SKIP_SYNTAX },
	{ "N:0:*", MRY_NDB_SKIP_SYNTAX },
	{ "N:x:*:4142", MRY_NDB_SKIP_SYNTAX },
	{ "N:0:1,:4142", MRY_NDB_SKIP_SYNTAX },
	{ "N:0:*:41(42", MRY_NDB_SKIP_SYNTAX },
	{ "N:0:*:4142:1:2:3", MRY_NDB_SKIP_SYNTAX },
	{ "N:0:*:*", MRY_NDB_SKIP_SYNTAX },
	{ "N\tx:0:*:41424344", MRY_NDB_SKIP_SYNTAX },
};

ParameterizedTestParameters(sigsrc, ndb_untranslatable_is_counted_by_reason)
{
	return cr_make_param_array(struct skip_case, skip_cases, MRY_ARRAY_SIZE(skip_cases));
}

ParameterizedTest(struct skip_case *c, sigsrc, ndb_untranslatable_is_counted_by_reason)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	const struct mry_ndb_report *r;

	cr_assert(eq(int, mry_sigsrc_parse_ndb(s, "t.ndb", c->line, strlen(c->line)), 0));
	r = mry_sigsrc_ndb_report(s);
	cr_assert(eq(u32, r->lines, 1));
	cr_assert(eq(u32, r->translated, 0));
	cr_assert(eq(u32, r->skipped[c->reason], 1), "%s: note '%s'", c->line,
		  mry_sigsrc_note(s, 0));
	cr_assert(eq(u32, mry_sigsrc_nb_notes(s), 1));
	cr_assert_not_null(strstr(mry_sigsrc_note(s, 0), mry_ndb_skip_name(c->reason)));
	cr_assert_not_null(strstr(mry_sigsrc_note(s, 0), "t.ndb:1: N"));
	cr_assert(eq(u32, mry_sigsrc_nb_sigs(s), 0));
	mry_sigsrc_destroy(s);
}

Test(sigsrc, ndb_ids_are_deterministic_per_file_and_line)
{
	struct mry_sigsrc *s = mry_sigsrc_create();
	const char *a = "# c\nA:0:*:41424344\n", *b = "B:0:*:45464748\n";

	mry_sigsrc_parse_ndb(s, "a.ndb", a, strlen(a));
	mry_sigsrc_parse_ndb(s, "b.ndb", b, strlen(b));
	cr_assert(eq(u32, mry_sigsrc_sig_at(s, 0)->id, MRY_SIGSRC_NDB_ID_BASE + 2));
	cr_assert(eq(u32, mry_sigsrc_sig_at(s, 1)->id, 2 * MRY_SIGSRC_NDB_ID_BASE + 1));
	cr_assert(eq(str, CSTR(mry_sigsrc_sig_at(s, 0)->origin), "a.ndb:2"));
	mry_sigsrc_destroy(s);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	*len = fread(b, 1, (size_t)n, f);
	fclose(f);
	return b;
}

Test(sigsrc, rfxn_2013_ndb_imports_with_a_translation_report)
{
	const char *path = MORAY_TESTDATA "/sigs/rfxn-2013.ndb";
	struct mry_sigsrc *s = mry_sigsrc_create();
	struct mry_sigc_opts o = { .generation = 1 };
	struct mry_sigc_report rep;
	const struct mry_ndb_report *r;
	uint32_t skipped = 0;
	uint8_t *img = NULL;
	size_t len = 0;
	char *text = slurp(path, &len);

	if (text == NULL)
		cr_fatal("test data %s missing", path);
	cr_assert(eq(int, mry_sigsrc_parse_ndb(s, "rfxn-2013.ndb", text, len), 0));
	r = mry_sigsrc_ndb_report(s);
	for (int k = 0; k < MRY_NDB_SKIP_MAX; k++)
		skipped += r->skipped[k];
	cr_log_info("rfxn-2013.ndb: %u signatures, %u translated, %u not translated",
		    r->lines, r->translated, skipped);
	cr_assert(eq(u32, r->lines, 1869));
	cr_assert(eq(u32, r->translated + skipped, r->lines));
	cr_assert(eq(u32, r->translated, 1869));
	cr_assert(eq(int, mry_sigsrc_compile(s, &o, &img, &len, &rep), 0));
	cr_assert(eq(u32, rep.nb_sigs, 1869));
	cr_log_info("compiled in %.3f s, %zu bytes, stream state %zu", rep.compile_s, len,
		    rep.stream_size[MRY_SLOT_RAW]);
	free(img);
	free(text);
	mry_sigsrc_destroy(s);
}

Test(sigsrc, hex_to_expr_reports_reason_and_column)
{
	char *e = NULL, err[128];
	uint64_t mn, mx;
	size_t col = 0;

	cr_assert(eq(int, mry_sigsrc_hex_to_expr("41{2-4}42", 9, &e, &mn, &mx, err, sizeof(err), &col), 0));
	cr_assert(eq(str, e, "\\x41.{2,4}\\x42"));
	cr_assert(eq(u64, mn, 4));
	cr_assert(eq(u64, mx, 6));
	free(e);
	cr_assert(eq(int, mry_sigsrc_hex_to_expr("4142*43", 7, &e, &mn, &mx, err, sizeof(err), &col), 0));
	cr_assert(eq(u64, mx, UINT64_MAX));
	free(e);
	cr_assert(eq(int, mry_sigsrc_hex_to_expr("4142!(4344|45)", 14, &e, &mn, &mx, err,
						 sizeof(err), &col), 1 + MRY_NDB_SKIP_NEG_MULTIBYTE));
	cr_assert(eq(sz, col, 4));
	cr_assert_null(e);
}
