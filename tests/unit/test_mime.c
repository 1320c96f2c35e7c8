/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Streaming MIME parser: structure (headers, multipart, message/rfc822,
 * caps), decoders (base64, quoted-printable, uuencode) and header values
 * (RFC 2047, RFC 2231), each checked on the exact decoded bytes, and in
 * every chunking where the chunking could matter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "mime_priv.h"
#include "moray/mime.h"

#define MAXP 16
#define PBUF 8192

struct cpart {
	struct mry_mime_part_info pi;
	char ct[MRY_MIME_CT_MAX];
	char filename[MRY_MIME_NAME_MAX];
	char charset[MRY_MIME_CHARSET_MAX];
	bool has_filename;
	bool ended;
	uint8_t data[PBUF];
	size_t len;
};

struct coll {
	struct cpart p[MAXP];
	size_t n;
	uint32_t an[MRY_MIME_AN_MAX];
	uint8_t hdr[PBUF];
	size_t hdr_len;
	uint32_t hdr_index_max;
};

static void c_begin(void *user, const struct mry_mime_part_info *pi)
{
	struct coll *c = user;
	struct cpart *p;

	cr_assert(lt(sz, c->n, (size_t)MAXP));
	p = &c->p[c->n++];
	memset(p, 0, sizeof(*p));
	p->pi = *pi;
	snprintf(p->ct, sizeof(p->ct), "%s", pi->content_type);
	if (pi->filename != NULL) {
		p->has_filename = true;
		snprintf(p->filename, sizeof(p->filename), "%s", pi->filename);
	}
	if (pi->charset != NULL)
		snprintf(p->charset, sizeof(p->charset), "%s", pi->charset);
}

static void c_data(void *user, const uint8_t *d, size_t n)
{
	struct coll *c = user;
	struct cpart *p = &c->p[c->n - 1];

	cr_assert(gt(sz, c->n, 0));
	cr_assert_not(p->ended);
	cr_assert(le(sz, p->len + n, (size_t)PBUF));
	memcpy(p->data + p->len, d, n);
	p->len += n;
}

static void c_end(void *user, const struct mry_mime_part_info *pi)
{
	struct coll *c = user;

	cr_assert(eq(u32, pi->index, c->p[c->n - 1].pi.index));
	c->p[c->n - 1].ended = true;
}

static void c_anomaly(void *user, enum mry_mime_anomaly an)
{
	struct coll *c = user;

	c->an[an]++;
}

static void c_header(void *user, uint32_t idx, const uint8_t *d, size_t n)
{
	struct coll *c = user;

	if (c->hdr_len + n <= sizeof(c->hdr)) {
		memcpy(c->hdr + c->hdr_len, d, n);
		c->hdr_len += n;
	}
	if (idx > c->hdr_index_max)
		c->hdr_index_max = idx;
}

static const struct mry_mime_callbacks cbs = {
	.header_data = c_header,
	.part_begin = c_begin,
	.part_data = c_data,
	.part_end = c_end,
	.anomaly = c_anomaly,
};

static struct mry_mime_ctx *mk(const struct mry_mime_config *cfg)
{
	struct mry_mime_config def = { .pool_count = 2 };
	struct mry_mime_ctx *x = mry_mime_ctx_create(mry_alloc_default(),
						     cfg != NULL ? cfg : &def, &cbs);

	cr_assert_not_null(x);
	return x;
}

/* parse @msg fed in chunks of @chunk bytes (0: one piece) */
static void parse_cfg(struct coll *c, const struct mry_mime_config *cfg,
		      const char *msg, size_t len, size_t chunk)
{
	struct mry_mime_ctx *x = mk(cfg);
	struct mry_mime *m;
	size_t off = 0;

	memset(c, 0, sizeof(*c));
	m = mry_mime_begin(x, c);
	cr_assert_not_null(m);
	if (chunk == 0)
		chunk = len ? len : 1;
	while (off < len) {
		size_t n = MRY_MIN(chunk, len - off);

		mry_mime_feed(m, (const uint8_t *)msg + off, n);
		off += n;
	}
	mry_mime_end(m);
	mry_mime_ctx_destroy(x);
}

static struct coll *parse(const char *msg)
{
	static struct coll c;

	parse_cfg(&c, NULL, msg, strlen(msg), 0);
	return &c;
}

static void expect_part(const struct coll *c, size_t i, const char *exp, size_t elen)
{
	cr_assert(lt(sz, i, c->n), "part %zu missing (have %zu)", i, c->n);
	cr_assert(c->p[i].ended, "part %zu not ended", i);
	if (c->p[i].len != elen || memcmp(c->p[i].data, exp, elen) != 0)
		cr_fatal("part %zu: got %zu bytes \"%.*s\", want %zu bytes \"%.*s\"", i,
			 c->p[i].len, (int)c->p[i].len, (const char *)c->p[i].data,
			 elen, (int)elen, exp);
}

#define EXPECT(c, i, lit) expect_part((c), (i), (lit), sizeof(lit) - 1)

/* ---- structure -------------------------------------------------------- */

Test(mime, single_part_body_is_one_leaf_with_its_final_line_end)
{
	struct coll *c = parse("Subject: x\r\n\r\nhello\r\nworld\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "hello\r\nworld\r\n");
	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	cr_assert(eq(u32, c->p[0].pi.index, 0));
	cr_assert(eq(u32, c->p[0].pi.depth, 0));
	cr_assert(eq(int, (int)c->p[0].pi.encoding, (int)MRY_MIME_ENC_7BIT));
}

Test(mime, bare_lf_line_ends_work)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
			       "Content-Type: text/x-a\n\none\ntwo\n--b--\n");

	cr_assert(eq(sz, c->n, 1));
	cr_assert(eq(str, c->p[0].ct, "text/x-a"));
	EXPECT(c, 0, "one\ntwo");
}

Test(mime, folded_header_is_unfolded_and_names_are_case_insensitive)
{
	struct coll *c = parse("cOnTeNt-TyPe: Multipart/Mixed;\r\n"
			       "\tcharset=x;\r\n"
			       "  BOUNDARY=\"folded b\"\r\n"
			       "\r\n--folded b\r\nCONTENT-TYPE: Text/HTML\r\n\r\n<p>\r\n--folded b--\r\n");

	cr_assert(eq(sz, c->n, 1));
	cr_assert(eq(str, c->p[0].ct, "text/html"));
	EXPECT(c, 0, "<p>");
}

Test(mime, header_block_ends_at_first_empty_line)
{
	struct coll *c = parse("Subject: a\r\n\r\nContent-Type: text/html\r\n\r\nx");

	cr_assert(eq(sz, c->n, 1));
	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	EXPECT(c, 0, "Content-Type: text/html\r\n\r\nx");
}

Test(mime, boundary_quoted_and_unquoted_both_split_parts)
{
	static const char *const msgs[] = {
		"Content-Type: multipart/mixed; boundary=\"=_q uoted\"\r\n\r\n"
		"--=_q uoted\r\n\r\nA\r\n--=_q uoted\r\n\r\nB\r\n--=_q uoted--\r\n",
		"Content-Type: multipart/mixed; boundary=unq_uoted.1\r\n\r\n"
		"--unq_uoted.1\r\n\r\nA\r\n--unq_uoted.1\r\n\r\nB\r\n--unq_uoted.1--\r\n",
	};

	for (size_t i = 0; i < 2; i++) {
		struct coll *c = parse(msgs[i]);

		cr_assert(eq(sz, c->n, 2));
		EXPECT(c, 0, "A");
		EXPECT(c, 1, "B");
	}
}

Test(mime, line_end_before_boundary_belongs_to_boundary)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "--b\r\n\r\nline1\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n");

	EXPECT(c, 0, "line1\r\n");
	EXPECT(c, 1, "x");
}

Test(mime, boundary_with_trailing_whitespace_matches_other_suffix_does_not)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "--b \t\r\n\r\nA\r\n--bx\r\nB\r\n--b--  \r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "A\r\n--bx\r\nB");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_NO_END], 0));
}

Test(mime, preamble_and_epilogue_are_not_parts)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "This is the preamble.\r\n--b\r\n\r\nbody\r\n--b--\r\n"
			       "This is the epilogue.\r\n--b\r\nstill epilogue\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "body");
}

Test(mime, nested_multipart_three_deep_gives_indices_and_depths)
{
	struct coll *c = parse(
		"Content-Type: multipart/mixed; boundary=L1\r\n\r\n"
		"--L1\r\nContent-Type: multipart/alternative; boundary=L2\r\n\r\n"
		"--L2\r\nContent-Type: multipart/related; boundary=L3\r\n\r\n"
		"--L3\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
		"--L3--\r\n"
		"--L2\r\nContent-Type: text/html\r\n\r\nmid\r\n"
		"--L2--\r\n"
		"--L1\r\nContent-Type: application/x-top\r\n\r\ntop\r\n"
		"--L1--\r\n");

	cr_assert(eq(sz, c->n, 3));
	EXPECT(c, 0, "deep");
	EXPECT(c, 1, "mid");
	EXPECT(c, 2, "top");
	cr_assert(eq(u32, c->p[0].pi.depth, 3));
	cr_assert(eq(u32, c->p[1].pi.depth, 2));
	cr_assert(eq(u32, c->p[2].pi.depth, 1));
	/* containers take indices too: 0 L1, 1 L2, 2 L3, 3 deep */
	cr_assert(eq(u32, c->p[0].pi.index, 3));
	cr_assert(eq(u32, c->p[1].pi.index, 4));
	cr_assert(eq(u32, c->p[2].pi.index, 5));
	for (int i = 0; i < MRY_MIME_AN_MAX; i++)
		cr_assert(eq(u32, c->an[i], 0), "anomaly %s", mry_mime_anomaly_name(i));
}

Test(mime, outer_boundary_terminates_inner_part)
{
	struct coll *c = parse(
		"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
		"--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
		"--in\r\n\r\ninner\r\n"
		"--out\r\n\r\nnext\r\n--out--\r\n");

	cr_assert(eq(sz, c->n, 2));
	EXPECT(c, 0, "inner");
	EXPECT(c, 1, "next");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_NO_END], 1));
}

Test(mime, missing_final_boundary_is_reported_at_end)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "--b\r\n\r\nlast part\r\n");

	cr_assert(eq(sz, c->n, 1));
	/* no delimiter follows: the line end is content, as in GMime */
	EXPECT(c, 0, "last part\r\n");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_NO_END], 1));
}

Test(mime, message_rfc822_is_parsed_as_nested_message)
{
	struct coll *c = parse(
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: message/rfc822\r\n\r\n"
		"Subject: inner\r\nContent-Type: text/plain; charset=UTF-8\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\naW5uZXIgYm9keQ==\r\n"
		"--b--\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "inner body");
	cr_assert(eq(u32, c->p[0].pi.depth, 2));
	cr_assert(eq(u32, c->p[0].pi.index, 2));
	cr_assert(eq(str, c->p[0].charset, "utf-8"));
	/* header blocks of the top, the part, and the nested message */
	cr_assert(eq(u32, c->hdr_index_max, 2));
	cr_assert_not_null(memmem(c->hdr, c->hdr_len, "Subject: inner\r\n", 16));
}

Test(mime, digest_parts_default_to_message_rfc822)
{
	struct coll *c = parse(
		"Content-Type: multipart/digest; boundary=d\r\n\r\n"
		"--d\r\n\r\nSubject: m1\r\n\r\nfirst\r\n"
		"--d\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--d--\r\n");

	cr_assert(eq(sz, c->n, 2));
	EXPECT(c, 0, "first");
	cr_assert(eq(u32, c->p[0].pi.depth, 2));
	EXPECT(c, 1, "second");
	cr_assert(eq(u32, c->p[1].pi.depth, 1));
}

Test(mime, depth_cap_treats_the_rest_as_one_leaf)
{
	struct mry_mime_config cfg = { .max_depth = 2, .pool_count = 1 };
	const char *msg =
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n"
		"--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n"
		"--c\r\n\r\nhidden\r\n--c--\r\n--b--\r\n--a\r\n\r\nafter\r\n--a--\r\n";
	struct coll c;

	parse_cfg(&c, &cfg, msg, strlen(msg), 0);
	cr_assert(eq(u32, c.an[MRY_MIME_AN_DEPTH_EXCEEDED], 1));
	cr_assert(eq(sz, c.n, 2));
	cr_assert(eq(str, c.p[0].ct, "multipart/mixed"));
	cr_assert(eq(u32, c.p[0].pi.depth, 2));
	EXPECT(&c, 0, "--c\r\n\r\nhidden\r\n--c--");
	EXPECT(&c, 1, "after");
}

Test(mime, missing_subtype_and_missing_content_type_get_defaults)
{
	struct coll *c = parse("Content-Type: text\r\n\r\nx");

	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	c = parse("Content-Type: multipart\r\n\r\nx");
	cr_assert(eq(str, c->p[0].ct, "multipart/mixed"));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_MISSING], 1));
	c = parse("\r\nbody only");
	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	EXPECT(c, 0, "body only");
}

Test(mime, mbox_from_line_is_not_a_malformed_header)
{
	struct coll *c = parse("From someone@example.com  Thu Jul 31 13:51:21 2008\r\n"
			       "Content-Type: text/x-y\r\n\r\nz");

	cr_assert(eq(str, c->p[0].ct, "text/x-y"));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 0));
	/* anywhere else a line that is not a field ends the header */
	c = parse("Subject: a\r\nnot a header\r\nContent-Type: text/x-y\r\n\r\nz");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 1));
	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	EXPECT(c, 0, "not a header\r\nContent-Type: text/x-y\r\n\r\nz");
}

Test(mime, header_data_gets_raw_header_bytes)
{
	const char *h = "Subject: a\r\n b\r\nContent-Type: text/plain\r\n\r\n";
	struct coll *c;
	char msg[256];

	snprintf(msg, sizeof(msg), "%sbody", h);
	c = parse(msg);
	cr_assert(eq(sz, c->hdr_len, strlen(h)));
	cr_assert(eq(int, memcmp(c->hdr, h, strlen(h)), 0));
}

/* ---- base64 ----------------------------------------------------------- */

static size_t b64(const char *in, uint8_t *out, struct mry_b64_dec *d)
{
	size_t n;

	mry_b64_init(d);
	n = mry_b64_decode(d, (const uint8_t *)in, strlen(in), out);
	return n + mry_b64_finish(d, out + n);
}

Test(mime, base64_every_padding_variant)
{
	static const struct {
		const char *in;
		const char *out;
		size_t out_len;
		uint32_t unpadded, bad;
	} tab[] = {
		{ "", "", 0, 0, 0 },
		{ "QQ==", "A", 1, 0, 0 },
		{ "QUI=", "AB", 2, 0, 0 },
		{ "QUJD", "ABC", 3, 0, 0 },
		{ "QQ", "A", 1, 1, 0 },
		{ "QUI", "AB", 2, 1, 0 },
		{ "QQ=", "A", 1, 0, 0 },
		{ "Q", "", 0, 0, 1 },
		{ "QUJDQQ==", "ABCA", 4, 0, 0 },
		{ "QUJD=", "ABC", 3, 0, 1 },
		{ "QQ===", "A", 1, 0, 1 },
		{ "AAA=", "\0\0", 2, 0, 0 },
	};

	for (size_t i = 0; i < MRY_ARRAY_SIZE(tab); i++) {
		struct mry_b64_dec d;
		uint8_t out[32];
		size_t n = b64(tab[i].in, out, &d);

		cr_assert(eq(sz, n, tab[i].out_len), "input \"%s\"", tab[i].in);
		cr_assert(eq(int, memcmp(out, tab[i].out, n), 0), "input \"%s\"", tab[i].in);
		cr_assert(eq(u32, d.unpadded, tab[i].unpadded), "input \"%s\"", tab[i].in);
		cr_assert(eq(u32, d.bad_padding, tab[i].bad), "input \"%s\"", tab[i].in);
		cr_assert(eq(u32, d.invalid, 0));
	}
}

Test(mime, base64_whitespace_anywhere_and_padding_split_across_lines)
{
	struct mry_b64_dec d;
	uint8_t out[64];
	size_t n = b64(" SGVs\r\nb G8\t=\r\n\r\n=", out, &d);

	/* "SGVsbG8=" is "Hello"; the stray second '=' after a full quantum
	 * is bad padding, and nothing else is odd */
	cr_assert(eq(sz, n, 5));
	cr_assert(eq(int, memcmp(out, "Hello", 5), 0));
	cr_assert(eq(u32, d.invalid, 0));
	n = b64("QQ\r\n=\r\n=", out, &d);
	cr_assert(eq(sz, n, 1));
	cr_assert(eq(u32, d.bad_padding, 0));
}

Test(mime, base64_invalid_characters_are_skipped_and_counted)
{
	struct mry_b64_dec d;
	uint8_t out[64];
	size_t n = b64("SG!Vs*bG8h", out, &d);
	struct coll *c;

	cr_assert(eq(sz, n, 6));
	cr_assert(eq(int, memcmp(out, "Hello!", 6), 0));
	cr_assert(eq(u32, d.invalid, 2));
	c = parse("Content-Transfer-Encoding: base64\r\n\r\nSG!Vs\r\nbG8h\r\n");
	EXPECT(c, 0, "Hello!");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_B64_INVALID_CHAR], 1));
}

Test(mime, base64_data_after_padding_is_decoded_and_counted)
{
	struct coll *c = parse("Content-Transfer-Encoding: base64\r\n\r\nQQ==\r\nQUJD\r\n");

	EXPECT(c, 0, "AABC");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_B64_BAD_PADDING], 1));
	c = parse("Content-Transfer-Encoding: base64\r\n\r\nQUI\r\n");
	EXPECT(c, 0, "AB");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_B64_UNPADDED], 1));
}

Test(mime, base64_decoder_gives_same_bytes_for_every_split)
{
	const char *in = "VGhlIHF1aWNr\r\nIGJyb3duIGZv\r\neA==";
	size_t len = strlen(in);

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct mry_b64_dec d;
			uint8_t out[64];
			size_t n;

			mry_b64_init(&d);
			n = mry_b64_decode(&d, (const uint8_t *)in, a, out);
			n += mry_b64_decode(&d, (const uint8_t *)in + a, b - a, out + n);
			n += mry_b64_decode(&d, (const uint8_t *)in + b, len - b, out + n);
			n += mry_b64_finish(&d, out + n);
			cr_assert(eq(sz, n, 19), "split %zu/%zu", a, b);
			cr_assert(eq(int, memcmp(out, "The quick brown fox", 19), 0));
		}
	}
}

/*
 * The AVX2 kernel (x86-64) must be invisible: every input, in every
 * chunking, gives the same bytes, state and counters as the scalar code.
 * mry_cpu_force_baseline() selects the scalar side. Without AVX2 (or with
 * MORAY_FORCE_SCALAR=1, as the mime_scalar test runs) both sides are scalar:
 * the comparisons still run and each test says it compared scalar only.
 */
#define B64_GUARD 32

struct b64_res {
	uint8_t *out;                   /* decoded bytes, then the finish() tail */
	size_t n, tail;
	struct mry_b64_dec mid, fin;    /* state before and after finish() */
};

static uint64_t b64_rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool b64_untouched(const uint8_t *p)
{
	for (size_t i = 0; i < B64_GUARD; i++)
		if (p[i] != 0xa5)
			return false;
	return true;
}

/*
 * Decode @in whole (@chunk_seed 0) or in chunks of 1..200 bytes drawn from
 * @chunk_seed. The guard after the bytes written so far must stay intact
 * after every call: the kernel may not store past the decoded length.
 */
static void b64_run(struct b64_res *r, bool scalar, const uint8_t *in, size_t len,
		    uint64_t chunk_seed)
{
	size_t cap = MRY_B64_DEC_BOUND(len) + B64_GUARD;
	struct mry_b64_dec d;
	size_t off = 0;

	mry_cpu_force_baseline(scalar);
	r->out = malloc(cap);
	cr_assert_not_null(r->out);
	memset(r->out, 0xa5, cap);
	mry_b64_init(&d);
	r->n = 0;
	while (off < len) {
		size_t take = chunk_seed ? 1 + b64_rng(&chunk_seed) % 200 : len;

		if (take > len - off)
			take = len - off;
		r->n += mry_b64_decode(&d, in + off, take, r->out + r->n);
		off += take;
		cr_assert(b64_untouched(r->out + r->n), "store past %zu bytes at input %zu",
			  r->n, off);
	}
	r->mid = d;
	r->tail = mry_b64_finish(&d, r->out + r->n);
	r->fin = d;
	cr_assert(b64_untouched(r->out + r->n + r->tail));
	mry_cpu_force_baseline(false);
}

static void b64_same_state(const struct mry_b64_dec *a, const struct mry_b64_dec *b,
			   const char *what, uint64_t id)
{
	cr_assert(eq(u32, a->acc, b->acc), "%s, case %llu", what, (unsigned long long)id);
	cr_assert(eq(u8, a->nchars, b->nchars), "%s, case %llu", what, (unsigned long long)id);
	cr_assert(eq(u8, a->pad_state, b->pad_state), "%s, case %llu", what,
		  (unsigned long long)id);
	cr_assert(eq(u32, a->invalid, b->invalid), "%s, case %llu", what,
		  (unsigned long long)id);
	cr_assert(eq(u32, a->bad_padding, b->bad_padding), "%s, case %llu", what,
		  (unsigned long long)id);
	cr_assert(eq(u32, a->unpadded, b->unpadded), "%s, case %llu", what,
		  (unsigned long long)id);
}

static void b64_same(const struct b64_res *a, const struct b64_res *b, const char *what,
		     uint64_t id)
{
	cr_assert(eq(sz, a->n, b->n), "%s, case %llu", what, (unsigned long long)id);
	cr_assert(eq(sz, a->tail, b->tail), "%s, case %llu", what, (unsigned long long)id);
	cr_assert(eq(int, memcmp(a->out, b->out, a->n + a->tail), 0), "%s, case %llu", what,
		  (unsigned long long)id);
	b64_same_state(&a->mid, &b->mid, what, id);
	b64_same_state(&a->fin, &b->fin, what, id);
}

static bool cpu_has_avx2(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
#else
	return false;
#endif
}

static bool scalar_forced_by_env(void)
{
	const char *e = getenv("MORAY_FORCE_SCALAR");

	return e != NULL && strcmp(e, "1") == 0;
}

/* whether this test compares AVX2 with scalar; says so either way */
static bool b64_sides(const char *test)
{
	bool avx2 = mry_cpu_force_baseline(false);

	fprintf(stderr, "%s: %s\n", test,
		avx2 ? "compared the AVX2 kernel with the scalar code"
		     : "no AVX2 kernel here (CPU without AVX2, or MORAY_FORCE_SCALAR=1): "
		       "compared scalar only");
	return avx2;
}

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

Test(mime, base64_dispatch_uses_avx2_exactly_when_the_cpu_has_it)
{
	cr_assert_not(mry_cpu_force_baseline(true));
	cr_assert(eq(int, mry_cpu_force_baseline(false), cpu_has_avx2() && !scalar_forced_by_env()));
}

Test(mime, base64_vector_path_matches_scalar_for_every_byte_at_every_block_position)
{
	/* 32 valid, the block under test, 64 valid: the first block goes
	 * through the kernel, the tested one fails or passes it, and the
	 * scalar code resynchronises in what follows */
	uint8_t in[128];

	b64_sides("base64 every byte at every block position");

	for (unsigned pos = 0; pos < 32; pos++) {
		for (unsigned b = 0; b < 256; b++) {
			struct b64_res s, v;

			for (size_t i = 0; i < sizeof(in); i++)
				in[i] = (uint8_t)b64_alpha[(i * 7 + pos + b) % 64];
			in[32 + pos] = (uint8_t)b;
			b64_run(&s, true, in, sizeof(in), 0);
			b64_run(&v, false, in, sizeof(in), 0);
			b64_same(&s, &v, "byte at block position", pos << 8 | b);
			free(s.out);
			free(v.out);
		}
	}
}

/*
 * Mail-like base64 with per-input anomaly rates (none to dense): CRLF or LF
 * line ends every 76 characters (or a random width, or none), junk bytes,
 * '=' and "==" in the middle, whitespace, and an unpadded, padded or
 * over-padded end.
 */
static size_t b64_random_input(uint8_t *buf, size_t cap, uint64_t *s)
{
	static const unsigned rate[] = { 0, 1, 10, 100, 1000 };    /* per 10000 */
	static const char ws[] = " \t\r\n\v\f";
	size_t len = b64_rng(s) % (cap - 4), n = 0, col = 0;
	unsigned junk = rate[b64_rng(s) % 5], pad = rate[b64_rng(s) % 5];
	unsigned space = rate[b64_rng(s) % 5];
	unsigned width = (unsigned[]){ 76, 76, 76, 0, 1 + (unsigned)(b64_rng(s) % 100) }
			 [b64_rng(s) % 5];
	bool crlf = b64_rng(s) % 4 != 0;

	while (n < len) {
		unsigned r = (unsigned)(b64_rng(s) % 10000);

		if (width && col == width) {
			if (crlf)
				buf[n++] = '\r';
			buf[n++] = '\n';
			col = 0;
			continue;
		}
		if (r < junk)
			buf[n++] = (uint8_t)b64_rng(s);
		else if ((r -= junk) < pad)
			buf[n++] = '=';
		else if ((r -= pad) < space)
			buf[n++] = (uint8_t)ws[b64_rng(s) % 6];
		else
			buf[n++] = (uint8_t)b64_alpha[b64_rng(s) % 64];
		col++;
	}
	for (unsigned k = (unsigned)(b64_rng(s) % 4); k > 0; k--)
		buf[n++] = '=';
	return n;
}

Test(mime, base64_vector_and_scalar_agree_on_random_input_in_random_chunks, .timeout = 120)
{
	static uint8_t in[4096 + 8];
	uint64_t s = 0x6d6f726179ull;

	b64_sides("base64 random input in random chunks");
	for (uint64_t i = 0; i < 3000; i++) {
		size_t len = b64_random_input(in, 4096, &s);
		uint64_t cs = b64_rng(&s) | 1;
		struct b64_res ref, v, vc, sc;

		b64_run(&ref, true, in, len, 0);
		b64_run(&v, false, in, len, 0);
		b64_run(&vc, false, in, len, cs);
		b64_run(&sc, true, in, len, cs);
		b64_same(&ref, &v, "whole", i);
		b64_same(&ref, &vc, "vector chunked", i);
		b64_same(&ref, &sc, "scalar chunked", i);
		free(ref.out);
		free(v.out);
		free(vc.out);
		free(sc.out);
	}
}

/* base64 of bytes 0..255 three times: 768 bytes, 1024 chars, no padding */
static const char b64_bytes3[] =
	"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v"
	"MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f"
	"YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6P"
	"kJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/"
	"wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v"
	"8PHy8/T19vf4+fr7/P3+/wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
	"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5P"
	"UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/"
	"gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6v"
	"sLGys7S1tre4ubq7vL2+v8DBwsPExcbHyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f"
	"4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3+Pn6+/z9/v8AAQIDBAUGBwgJCgsMDQ4P"
	"EBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
	"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5v"
	"cHFyc3R1dnd4eXp7fH1+f4CBgoOEhYaHiImKi4yNjo+QkZKTlJWWl5iZmpucnZ6f"
	"oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr/AwcLDxMXGx8jJysvMzc7P"
	"0NHS09TV1tfY2drb3N3e3+Dh4uPk5ebn6Onq6+zt7u/w8fLz9PX29/j5+vv8/f7/";

Test(mime, base64_long_lines_of_every_byte_value_decode_exactly)
{
	enum { REP = 8, CHARS = 1024 * REP, BYTES = 768 * REP };
	static uint8_t line[CHARS], mail[CHARS + CHARS / 76 * 2 + 2];
	size_t mlen = 0;

	/* one 8192-char line, and the same folded MIME-style at 76 + CRLF */
	for (size_t i = 0; i < CHARS; i++) {
		line[i] = (uint8_t)b64_bytes3[i % 1024];
		if (i && i % 76 == 0) {
			mail[mlen++] = '\r';
			mail[mlen++] = '\n';
		}
		mail[mlen++] = line[i];
	}
	mail[mlen++] = '\r';
	mail[mlen++] = '\n';
	b64_sides("base64 long lines of every byte value");
	for (int scalar = 0; scalar < 2; scalar++) {
		for (int folded = 0; folded < 2; folded++) {
			struct b64_res r;

			b64_run(&r, scalar, folded ? mail : line, folded ? mlen : CHARS, 0);
			cr_assert(eq(sz, r.n, BYTES), "scalar %d folded %d", scalar, folded);
			cr_assert(eq(sz, r.tail, 0));
			for (size_t i = 0; i < BYTES; i++)
				if (r.out[i] != (uint8_t)i)
					cr_assert(eq(u8, r.out[i], (uint8_t)i), "byte %zu, %d/%d",
						  i, scalar, folded);
			cr_assert(eq(u32, r.fin.invalid, 0));
			cr_assert(eq(u32, r.fin.bad_padding, 0));
			cr_assert(eq(u32, r.fin.unpadded, 0));
			free(r.out);
		}
	}
}

Test(mime, message_decodes_identically_at_every_chunk_split, .timeout = 60)
{
	const char *msg =
		"Content-Type: multipart/mixed;\r\n boundary=\"xyz\"\r\n\r\npre\r\n"
		"--xyz\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
		"caf=C3=A9 soft=\r\nbreak=\n\r\n"
		"--xyz\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\nVGhlIHF1aWNr\r\nIGJyb3duIGZv\r\neA==\r\n"
		"--xyz--\r\nepilogue\r\n";
	size_t len = strlen(msg);
	struct coll ref, c;

	parse_cfg(&ref, NULL, msg, len, 0);
	cr_assert(eq(sz, ref.n, 2));
	/* "=\n" is a soft break; the CRLF after it belongs to the boundary */
	EXPECT(&ref, 0, "caf\xc3\xa9 softbreak");
	EXPECT(&ref, 1, "The quick brown fox");
	/* every two-piece split, then every fixed chunk size */
	for (size_t cut = 0; cut <= len; cut++) {
		struct mry_mime_ctx *x = mk(NULL);
		struct mry_mime *m;

		memset(&c, 0, sizeof(c));
		m = mry_mime_begin(x, &c);
		mry_mime_feed(m, (const uint8_t *)msg, cut);
		mry_mime_feed(m, (const uint8_t *)msg + cut, len - cut);
		mry_mime_end(m);
		mry_mime_ctx_destroy(x);
		cr_assert(eq(sz, c.n, ref.n), "cut %zu", cut);
		for (size_t i = 0; i < ref.n; i++) {
			cr_assert(eq(sz, c.p[i].len, ref.p[i].len), "cut %zu part %zu", cut, i);
			cr_assert(eq(int, memcmp(c.p[i].data, ref.p[i].data, ref.p[i].len), 0));
		}
		cr_assert(eq(sz, c.hdr_len, ref.hdr_len), "cut %zu", cut);
	}
	for (size_t chunk = 1; chunk < 40; chunk++) {
		parse_cfg(&c, NULL, msg, len, chunk);
		cr_assert(eq(sz, c.n, ref.n), "chunk %zu", chunk);
		for (size_t i = 0; i < ref.n; i++)
			cr_assert(eq(int, memcmp(c.p[i].data, ref.p[i].data, ref.p[i].len), 0),
				  "chunk %zu part %zu", chunk, i);
	}
}

/* ---- quoted-printable ------------------------------------------------- */

Test(mime, qp_soft_line_breaks_crlf_and_lf)
{
	struct coll *c = parse("Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			       "ab=\r\ncd=\nef\r\ngh=3D=\r\n");

	EXPECT(c, 0, "abcdef\r\ngh=");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_QP_INVALID_ESCAPE], 0));
}

Test(mime, qp_lower_case_hex_is_decoded_and_counted)
{
	struct coll *c = parse("Content-Transfer-Encoding: Quoted-Printable\r\n\r\n=e9=E9");

	EXPECT(c, 0, "\xe9\xe9");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_QP_LOWERCASE_HEX], 1));
}

Test(mime, qp_invalid_escapes_pass_through_literally)
{
	struct coll *c = parse("Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			       "100=% =ZZ done =4");

	EXPECT(c, 0, "100=% =ZZ done ");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_QP_INVALID_ESCAPE], 1));
}

Test(mime, qp_trailing_whitespace_is_kept_as_gmime_does)
{
	struct coll *c = parse("Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			       "a  \r\nb\t\r\n");

	EXPECT(c, 0, "a  \r\nb\t\r\n");
}

Test(mime, qp_decoder_carries_state_across_calls)
{
	const char *in = "x=4\r\n1=\r\n=4";
	struct mry_qp_dec d;
	uint8_t out[32];
	size_t n = 0;

	mry_qp_init(&d);
	for (size_t i = 0; in[i] != '\0'; i++)
		n += mry_qp_decode(&d, (const uint8_t *)in + i, 1, out + n);
	n += mry_qp_finish(&d, out + n);
	/* "=4\r" is invalid: passed through; "=\r\n" soft; "=4" at end dropped */
	cr_assert(eq(sz, n, 6));
	cr_assert(eq(int, memcmp(out, "x=4\r\n1", 6), 0));
	cr_assert(eq(u32, d.invalid, 2));
}

/* ---- uuencode --------------------------------------------------------- */

Test(mime, uuencode_cte_is_decoded)
{
	struct coll *c = parse("Content-Type: application/octet-stream; name=x\r\n"
			       "Content-Transfer-Encoding: x-uuencode\r\n\r\n"
			       "junk before\r\nbegin 644 x.txt\r\n#86)C\r\n`\r\nend\r\ntrailer\r\n");

	cr_assert(eq(sz, c->n, 1));
	cr_assert(eq(int, (int)c->p[0].pi.encoding, (int)MRY_MIME_ENC_UUENCODE));
	EXPECT(c, 0, "abc");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_UU_MALFORMED], 0));
}

Test(mime, uuencode_inside_text_plain_becomes_its_own_part)
{
	struct coll *c = parse("Subject: uu\r\n\r\nHello,\r\nsee attached\r\n"
			       "begin 600 doc.bin\r\n#86)C\r\n`\r\nend\r\n\r\nBye\r\n");

	cr_assert(eq(sz, c->n, 3));
	EXPECT(c, 0, "Hello,\r\nsee attached");
	EXPECT(c, 1, "abc");
	cr_assert(eq(int, (int)c->p[1].pi.encoding, (int)MRY_MIME_ENC_UUENCODE));
	cr_assert(eq(str, c->p[1].filename, "doc.bin"));
	cr_assert(eq(str, c->p[1].ct, "application/octet-stream"));
	EXPECT(c, 2, "Bye\r\n");
	cr_assert(eq(str, c->p[2].ct, "text/plain"));
}

Test(mime, uuencode_short_line_is_malformed)
{
	struct mry_uu_dec d;
	uint8_t out[128];
	size_t n;

	mry_uu_init(&d, false);
	n = mry_uu_decode(&d, (const uint8_t *)"M86)C\n", 6, out);
	n += mry_uu_finish(&d, out + n);
	cr_assert(eq(sz, n, 3));
	cr_assert(eq(u32, d.malformed, 1));
}

/* ---- header values ---------------------------------------------------- */

Test(mime, encoded_word_filenames_q_and_b)
{
	char out[256];

	mry_mime_decode_2047("=?UTF-8?B?w6lww6l0ZS5leGU=?=", out, sizeof(out));
	cr_assert(eq(str, out, "\xc3\xa9p\xc3\xa9te.exe"));
	mry_mime_decode_2047("=?iso-8859-1?Q?caf=E9_menu?= =?us-ascii?q?.pdf?=", out, sizeof(out));
	cr_assert(eq(str, out, "caf\xc3\xa9 menu.pdf"));
	mry_mime_decode_2047("=?koi8-r?B?8A==?=x", out, sizeof(out));
	cr_assert(eq(str, out, "\xf0x"));
	mry_mime_decode_2047("plain =?bogus", out, sizeof(out));
	cr_assert(eq(str, out, "plain =?bogus"));
}

Test(mime, part_info_filename_from_disposition_or_name)
{
	struct coll *c = parse(
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: application/x-exe; name=\"=?utf-8?q?ev=C3=AEl.exe?=\"\r\n"
		"Content-Disposition: ATTACHMENT\r\n\r\nx\r\n"
		"--b\r\nContent-Type: application/pdf; name=n.pdf\r\n"
		"Content-Disposition: inline; filename=\"d.pdf\"\r\n\r\ny\r\n"
		"--b\r\n\r\nz\r\n--b--\r\n");

	cr_assert(eq(sz, c->n, 3));
	cr_assert(eq(str, c->p[0].filename, "ev\xc3\xael.exe"));
	cr_assert(c->p[0].pi.attachment);
	cr_assert(eq(str, c->p[1].filename, "d.pdf"));
	cr_assert_not(c->p[1].pi.attachment);
	cr_assert_not(c->p[2].has_filename);
}

Test(mime, rfc2231_continuations_and_charset)
{
	struct coll *c = parse(
		"Content-Type: application/octet-stream\r\n"
		"Content-Disposition: attachment;\r\n"
		" filename*1*=%20%E9t%E9.txt;\r\n"
		" filename*0*=iso-8859-1'fr'un;\r\n"
		" filename*2=\"!\"\r\n\r\nx");

	cr_assert(eq(str, c->p[0].filename, "un \xc3\xa9t\xc3\xa9.txt!"));
	c = parse("Content-Type: text/plain; name*=UTF-8''%E2%82%AC.txt;\r\n"
		  " charset*=us-ascii'en'utf-8\r\n\r\nx");
	cr_assert(eq(str, c->p[0].filename, "\xe2\x82\xac.txt"));
	cr_assert(eq(str, c->p[0].charset, "utf-8"));
}

Test(mime, rfc2231_boundary_is_understood)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary*=us-ascii''b%41\r\n\r\n"
			       "--bA\r\n\r\nx\r\n--bA--\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "x");
}

/* ---- encodings and anomalies ------------------------------------------ */

Test(mime, seven_eight_bit_and_binary_pass_through)
{
	static const char *const cte[] = { "7bit", "8BIT", "binary" };

	for (size_t i = 0; i < 3; i++) {
		char msg[128];
		struct coll *c;

		snprintf(msg, sizeof(msg),
			 "Content-Transfer-Encoding: %s\r\n\r\n=41\xff\r\nQQ==", cte[i]);
		c = parse(msg);
		EXPECT(c, 0, "=41\xff\r\nQQ==");
		cr_assert(eq(u32, c->an[MRY_MIME_AN_CTE_UNKNOWN], 0));
	}
}

Test(mime, unknown_cte_passes_through_with_anomaly)
{
	struct coll *c = parse("Content-Transfer-Encoding: x-rot13\r\n\r\nuryyb");

	EXPECT(c, 0, "uryyb");
	cr_assert(eq(int, (int)c->p[0].pi.encoding, (int)MRY_MIME_ENC_UNKNOWN));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_CTE_UNKNOWN], 1));
}

Test(mime, conflicting_cte_headers_are_an_anomaly_last_wins)
{
	struct coll *c = parse("Content-Transfer-Encoding: 7bit\r\n"
			       "Content-Transfer-Encoding: base64\r\n\r\nQUJD");

	cr_assert(eq(u32, c->an[MRY_MIME_AN_CTE_CONFLICT], 1));
	EXPECT(c, 0, "ABC");
	c = parse("Content-Transfer-Encoding: base64\r\n"
		  "Content-Transfer-Encoding: BASE64\r\n\r\nQUJD");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_CTE_CONFLICT], 0));
}

Test(mime, duplicate_content_type_is_an_anomaly_last_wins)
{
	struct coll *c = parse("Content-Type: text/html\r\n"
			       "Content-Type: multipart/mixed; boundary=q\r\n\r\n"
			       "--q\r\n\r\nin\r\n--q--\r\n");

	cr_assert(eq(u32, c->an[MRY_MIME_AN_CT_DUPLICATE], 1));
	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "in");
}

Test(mime, boundary_missing_and_invalid_are_anomalies)
{
	struct coll *c = parse("Content-Type: multipart/mixed\r\n\r\nbody");
	char msg[512];
	char b[80];

	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_MISSING], 1));
	EXPECT(c, 0, "body");
	memset(b, 'x', 75);
	b[75] = '\0';
	snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=%s\r\n\r\n"
		 "--%s\r\n\r\nlong\r\n--%s--\r\n", b, b, b);
	c = parse(msg);
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_INVALID], 1));
	EXPECT(c, 0, "long");
}

Test(mime, nul_in_header_is_an_anomaly)
{
	const char msg[] = "Subject: a\0b\r\n\r\nx";
	struct coll c;

	parse_cfg(&c, NULL, msg, sizeof(msg) - 1, 0);
	cr_assert(eq(u32, c.an[MRY_MIME_AN_NUL_IN_HEADER], 1));
	EXPECT(&c, 0, "x");
}

/* ---- caps ------------------------------------------------------------- */

Test(mime, max_parts_stops_parsing_with_anomaly)
{
	struct mry_mime_config cfg = { .max_parts = 3, .pool_count = 1 };
	const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			  "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n--b--\r\n";
	struct coll c;

	parse_cfg(&c, &cfg, msg, strlen(msg), 0);
	cr_assert(eq(sz, c.n, 2));
	EXPECT(&c, 0, "1");
	EXPECT(&c, 1, "2");
	cr_assert(eq(u32, c.an[MRY_MIME_AN_TOO_MANY_PARTS], 1));
}

Test(mime, part_and_message_byte_caps_truncate_delivery)
{
	struct mry_mime_config cfg = { .max_part_bytes = 4, .max_msg_bytes = 6,
				       .pool_count = 1 };
	const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			  "--b\r\n\r\n123456\r\n--b\r\n\r\nabcdef\r\n--b\r\n\r\nXY\r\n--b--\r\n";
	struct coll c;

	parse_cfg(&c, &cfg, msg, strlen(msg), 0);
	cr_assert(eq(sz, c.n, 3));
	EXPECT(&c, 0, "1234");
	EXPECT(&c, 1, "ab");
	EXPECT(&c, 2, "");
	/* parts 0 and 1 each pass the part cap; part 1 then hits the message cap */
	cr_assert(eq(u32, c.an[MRY_MIME_AN_PART_TOO_BIG], 2));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_MSG_TOO_BIG], 1));
}

Test(mime, long_header_block_and_long_lines_are_capped)
{
	struct mry_mime_config cfg = { .max_header_bytes = 64, .max_line = 300,
				       .pool_count = 1 };
	char msg[2048];
	char pad[1000];
	struct coll c;

	memset(pad, 'a', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	/* the Content-Type after the cap is not parsed */
	snprintf(msg, sizeof(msg), "X-Pad: %.80s\r\nContent-Type: text/html\r\n\r\n%s\r\nend",
		 pad, pad);
	parse_cfg(&c, &cfg, msg, strlen(msg), 7);
	cr_assert(eq(u32, c.an[MRY_MIME_AN_HEADER_TOO_LONG], 1));
	cr_assert(eq(str, c.p[0].ct, "text/plain"));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_LINE_TOO_LONG], 1));
	/* the long line is still delivered whole */
	cr_assert(eq(sz, c.p[0].len, strlen(pad) + 5));
}

Test(mime, pool_empty_returns_null_and_counts)
{
	struct mry_mime_config cfg = { .pool_count = 1 };
	static struct coll c;
	struct mry_mime_ctx *x = mk(&cfg);
	struct mry_mime *a = mry_mime_begin(x, &c), *b = mry_mime_begin(x, &c);
	struct mry_mime_stats st;

	cr_assert_not_null(a);
	cr_assert_null(b);
	mry_mime_abort(a);
	a = mry_mime_begin(x, &c);
	cr_assert_not_null(a);
	mry_mime_end(a);
	mry_mime_get_stats(x, &st);
	cr_assert(eq(u64, st.pool_empty, 1));
	cr_assert(eq(u64, st.messages, 1));
	mry_mime_ctx_destroy(x);
}

Test(mime, stats_count_parts_bytes_and_anomalies)
{
	static struct coll c;
	struct mry_mime_ctx *x = mk(NULL);
	struct mry_mime *m = mry_mime_begin(x, &c);
	const char *msg = "Content-Transfer-Encoding: base64\r\n\r\nQU*JD\r\n";
	struct mry_mime_stats st;

	mry_mime_feed(m, (const uint8_t *)msg, strlen(msg));
	mry_mime_end(m);
	mry_mime_get_stats(x, &st);
	cr_assert(eq(u64, st.parts, 1));
	cr_assert(eq(u64, st.bytes_in, strlen(msg)));
	cr_assert(eq(u64, st.bytes_decoded, 3));
	cr_assert(eq(u64, st.anomalies[MRY_MIME_AN_B64_INVALID_CHAR], 1));
	mry_mime_ctx_destroy(x);
}

Test(mime, names_cover_every_value)
{
	for (int i = 0; i < MRY_MIME_AN_MAX; i++)
		cr_assert(ne(int, strcmp(mry_mime_anomaly_name(i), "unknown"), 0), "anomaly %d", i);
	cr_assert(eq(int, strcmp(mry_mime_encoding_name(MRY_MIME_ENC_QP), "quoted-printable"), 0));
}

/* ---- ClamAV's test messages ------------------------------------------- */

#define CLAM_DIR MORAY_TESTDATA "/mail/clamav-testfiles/"

static bool read_all(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return false;
	*len = fread(buf, 1, cap, f);
	fclose(f);
	return true;
}

Test(mime, clamav_messages_all_yield_the_same_clam_exe)
{
	static const char *const files[] = {
		"clam.exe.mbox.base64", "clam.exe.mbox.uu", "clam.mail",
	};
	static struct coll c[3];
	static char buf[8192];
	const struct cpart *exe[3];

	for (size_t i = 0; i < 3; i++) {
		char path[256];
		size_t len;

		snprintf(path, sizeof(path), CLAM_DIR "%s", files[i]);
		if (!read_all(path, buf, sizeof(buf), &len))
			cr_fatal("test data %s missing", path);
		parse_cfg(&c[i], NULL, buf, len, 13);
		exe[i] = NULL;
		for (size_t k = 0; k < c[i].n; k++)
			if (c[i].p[k].len > 2 && memcmp(c[i].p[k].data, "MZ", 2) == 0)
				exe[i] = &c[i].p[k];
		cr_assert_not_null(exe[i], "%s: no MZ part", files[i]);
	}
	/* the base64 file decodes to 544 bytes; all three must agree */
	cr_assert(eq(sz, exe[0]->len, 544));
	cr_assert(eq(int, strcmp(exe[0]->filename, "clam.exe"), 0), "%s", exe[0]->filename);
	cr_assert(eq(int, (int)exe[1]->pi.encoding, (int)MRY_MIME_ENC_UUENCODE));
	for (size_t i = 1; i < 3; i++) {
		cr_assert(eq(sz, exe[i]->len, exe[0]->len), "%s", files[i]);
		cr_assert(eq(int, memcmp(exe[i]->data, exe[0]->data, exe[0]->len), 0),
			  "%s", files[i]);
	}
	cr_assert(eq(sz, c[2].n, 2));
	cr_assert(eq(str, c[2].p[1].ct, "application/x-ms-dos-executable"));
	cr_assert(c[2].p[1].pi.attachment);
}

Test(mime, delimiter_right_after_delimiter_makes_no_part)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "--b\r\n--b\r\nContent-Type: text/x-a\r\n\r\nA\r\n"
			       "--b\r\n\r\nB\r\n--b--\r\n");

	cr_assert(eq(sz, c->n, 2));
	EXPECT(c, 0, "A");
	EXPECT(c, 1, "B");
}

Test(mime, uuencode_is_only_looked_for_in_plain_text)
{
	struct coll *c = parse("Content-Type: text/html\r\n\r\n"
			       "begin 644 x\r\n#86)C\r\n`\r\nend\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "begin 644 x\r\n#86)C\r\n`\r\nend\r\n");
}

Test(mime, long_line_pieces_are_never_delimiters)
{
	struct mry_mime_config cfg = { .max_line = 300, .pool_count = 1 };
	char msg[1024];
	char pad[301];
	struct coll c;

	memset(pad, 'x', 300);
	pad[300] = '\0';
	/* "--b" sits right after a 300-byte piece: a continuation, not a line */
	snprintf(msg, sizeof(msg), "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		 "--b\r\n\r\n%s--b\r\n--b--\r\n", pad);
	parse_cfg(&c, &cfg, msg, strlen(msg), 5);
	cr_assert(eq(sz, c.n, 1));
	cr_assert(eq(sz, c.p[0].len, 303));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_LINE_TOO_LONG], 1));
}

Test(mime, malformed_header_lines_reach_header_data)
{
	struct coll *c = parse("Subject: a\r\nX-Odd  : b\r\n\r\nx");

	/* blanks before the colon are the obsolete syntax, still a field */
	cr_assert(eq(sz, c->hdr_len, 12 + 12 + 2));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 0));
	EXPECT(c, 0, "x");
	/* a line that is no field is body, not header bytes */
	c = parse("Subject: a\r\nno colon here\r\n\r\nx");
	cr_assert(eq(sz, c->hdr_len, 12));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 1));
	EXPECT(c, 0, "no colon here\r\n\r\nx");
}

/* ---- what real clients send beyond the RFCs ---------------------------- */

Test(mime, header_without_empty_line_ends_at_first_non_field_line)
{
	struct coll *c = parse("From: a@example.com\r\nSubject: no gap\r\n"
			       "Content-Type: text/plain\r\n"
			       "Content-Transfer-Encoding: base64\r\n"
			       "aGVsbG8gd29ybGQK\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "hello world\n");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 1));
	cr_assert_null(memmem(c->hdr, c->hdr_len, "aGVs", 4));
}

Test(mime, part_header_without_empty_line_ends_at_first_non_field_line)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			       "--b\r\nContent-Type: application/x-y\r\n"
			       "Content-Transfer-Encoding: base64\r\n"
			       "aGVsbG8gd29ybGQK\r\n--b\r\nnot a header line\r\n--b--\r\n");

	cr_assert(eq(sz, c->n, 2));
	cr_assert(eq(str, c->p[0].ct, "application/x-y"));
	EXPECT(c, 0, "hello world\n");
	/* no header at all: the line is the body of a text/plain part */
	cr_assert(eq(str, c->p[1].ct, "text/plain"));
	EXPECT(c, 1, "not a header line");
}

Test(mime, byte_order_mark_before_first_field_is_skipped)
{
	struct coll *c = parse("\xef\xbb\xbf" "Content-Type: text/x-y\r\n\r\nz");

	cr_assert(eq(str, c->p[0].ct, "text/x-y"));
	cr_assert(eq(u32, c->an[MRY_MIME_AN_HEADER_MALFORMED], 0));
	EXPECT(c, 0, "z");
}

/* an inner message with a base64 attachment, itself sent base64 */
static const char inner_msg[] =
	"Subject: inner\r\nMIME-Version: 1.0\r\n"
	"Content-Type: multipart/mixed; boundary=in\r\n\r\n"
	"--in\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
	"--in\r\nContent-Type: application/octet-stream; name=\"x.bin\"\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\naGlkZGVuIHBheWxvYWQ=\r\n"
	"--in--\r\n";

static size_t b64_encode(const char *in, size_t n, char *out)
{
	static const char al[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, w = 0, col = 0;

	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(uint8_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(uint8_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (uint8_t)in[i + 2];
		out[w++] = al[v >> 18 & 63];
		out[w++] = al[v >> 12 & 63];
		out[w++] = i + 1 < n ? al[v >> 6 & 63] : '=';
		out[w++] = i + 2 < n ? al[v & 63] : '=';
		if ((col += 4) == 76) {
			out[w++] = '\r';
			out[w++] = '\n';
			col = 0;
		}
	}
	out[w++] = '\r';
	out[w++] = '\n';
	out[w] = '\0';
	return w;
}

static size_t encoded_rfc822(char *msg, size_t cap)
{
	char enc[1024];

	b64_encode(inner_msg, sizeof(inner_msg) - 1, enc);
	return (size_t)snprintf(msg, cap,
		"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
		"--out\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
		"--out\r\nContent-Type: message/rfc822\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n%s--out--\r\n", enc);
}

Test(mime, base64_message_rfc822_is_decoded_and_parsed_as_a_message, .timeout = 60)
{
	char msg[2048];
	size_t len = encoded_rfc822(msg, sizeof(msg)), chunk;
	struct coll c;

	for (chunk = 0; chunk <= 64; chunk++) {
		parse_cfg(&c, NULL, msg, len, chunk);
		cr_assert(eq(sz, c.n, 3), "chunk %zu", chunk);
		EXPECT(&c, 0, "see attached");
		EXPECT(&c, 1, "inner text");
		EXPECT(&c, 2, "hidden payload");
		/* as deep as an unencoded message: top, part, message, its part */
		cr_assert(eq(u32, c.p[2].pi.depth, 3));
		cr_assert(eq(u32, c.p[2].pi.index, 5));
		cr_assert(eq(str, c.p[2].filename, "x.bin"));
		cr_assert(eq(u32, c.an[MRY_MIME_AN_MESSAGE_ENCODED], 1));
		/* the inner message's header block reaches the header stream */
		cr_assert_not_null(memmem(c.hdr, c.hdr_len, "Subject: inner\r\n", 16));
	}
}

Test(mime, quoted_printable_message_rfc822_is_parsed_as_a_message)
{
	struct coll *c = parse("Content-Type: message/rfc822\r\n"
			       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
			       "Subject: q\r\nContent-Type: text/plain\r\n"
			       "Content-Transfer-Encoding: base64\r\n\r\n"
			       "aGlkZGVu=\r\nIHRleHQ=3D\r\n");

	cr_assert(eq(sz, c->n, 1));
	EXPECT(c, 0, "hidden text");
	cr_assert(eq(u32, c->p[0].pi.depth, 1));
}

Test(mime, encoded_messages_nest_within_the_depth_cap)
{
	struct mry_mime_config cfg = { .max_depth = 3, .pool_count = 4 };
	char l1[512], l2[1024], msg[2048];
	struct coll c;
	struct mry_mime_ctx *x;
	struct mry_mime_stats st;
	struct mry_mime *m;

	/* message in a message in a message, each encoded */
	b64_encode("Content-Type: text/plain\r\n\r\ndeep\r\n", 34, l1);
	snprintf(l2, sizeof(l2), "Content-Type: message/rfc822\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\n%s", l1);
	b64_encode(l2, strlen(l2), l1);
	snprintf(msg, sizeof(msg), "Content-Type: message/rfc822\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\n%s", l1);
	parse_cfg(&c, &cfg, msg, strlen(msg), 7);
	cr_assert(eq(sz, c.n, 1));
	EXPECT(&c, 0, "deep\r\n");
	cr_assert(eq(u32, c.p[0].pi.depth, 2));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_DEPTH_EXCEEDED], 0));
	/* with max_depth 1 the second one is a decoded leaf of its own */
	cfg.max_depth = 1;
	parse_cfg(&c, &cfg, msg, strlen(msg), 7);
	cr_assert(eq(sz, c.n, 1));
	cr_assert(eq(str, c.p[0].ct, "message/rfc822"));
	cr_assert(eq(u32, c.p[0].pi.depth, 1));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_DEPTH_EXCEEDED], 1));
	EXPECT(&c, 0, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	/* one nested parser only: no layer for the second message, one leaf */
	cfg.max_depth = 0;
	cfg.pool_count = 1;
	cfg.nested_pool_count = 1;
	x = mry_mime_ctx_create(mry_alloc_default(), &cfg, &cbs);
	memset(&c, 0, sizeof(c));
	m = mry_mime_begin(x, &c);
	mry_mime_feed(m, (const uint8_t *)msg, strlen(msg));
	mry_mime_end(m);
	mry_mime_get_stats(x, &st);
	cr_assert(eq(sz, c.n, 1));
	cr_assert(eq(str, c.p[0].ct, "message/rfc822"));
	cr_assert(eq(u32, c.p[0].pi.depth, 1));
	cr_assert(eq(u64, st.encoded_msg_no_parser, 1));
	cr_assert(eq(u64, st.encoded_msgs, 1));
	cr_assert(eq(u64, st.pool_empty, 0));
	mry_mime_ctx_destroy(x);
}

Test(mime, uuencode_base64_form_inside_text_becomes_its_own_part)
{
	struct coll *c = parse("Content-Type: text/plain\r\n\r\nhi\r\n"
			       "begin-base64 644 x.txt\r\naGVsbG8g\r\nd29ybGQK\r\n====\r\n"
			       "bye\r\n");

	cr_assert(eq(sz, c->n, 3));
	EXPECT(c, 0, "hi");
	cr_assert(eq(str, c->p[1].ct, "application/octet-stream"));
	cr_assert(eq(str, c->p[1].filename, "x.txt"));
	EXPECT(c, 1, "hello world\n");
	EXPECT(c, 2, "bye\r\n");
}

Test(mime, uuencode_base64_form_decoder_any_split)
{
	static const char in[] = "junk\nbegin-base64 600 f\naGVsbG8g\nd29y\nbGQK\n====\nafter\n";
	uint8_t out[MRY_UU_DEC_BOUND(sizeof(in)) + 16];
	size_t cut;

	for (cut = 0; cut < sizeof(in) - 1; cut++) {
		struct mry_uu_dec d;
		size_t w;

		mry_uu_init(&d, true);
		w = mry_uu_decode(&d, (const uint8_t *)in, cut, out);
		w += mry_uu_decode(&d, (const uint8_t *)in + cut, sizeof(in) - 1 - cut, out + w);
		w += mry_uu_finish(&d, out + w);
		cr_assert(eq(sz, w, 12), "cut %zu", cut);
		cr_assert(eq(int, memcmp(out, "hello world\n", 12), 0));
		cr_assert(eq(u8, d.state, 2));
		cr_assert(eq(u32, d.malformed, 0));
	}
	cr_assert(mry_uu_is_begin((const uint8_t *)"begin-base64 644 a b", 20, NULL, 0));
	cr_assert_not(mry_uu_is_begin((const uint8_t *)"begin-base64 x a", 16, NULL, 0));
}

Test(mime, multipart_whose_boundary_never_appears_is_one_text_part)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
			       "hello there\r\nbegin 644 u.bin\r\n#86)C\r\n`\r\nend\r\n");

	/* its body is text: a uuencoded file in it is cut out as usual */
	cr_assert(eq(sz, c->n, 2));
	cr_assert(eq(str, c->p[0].ct, "text/plain"));
	EXPECT(c, 0, "hello there");
	EXPECT(c, 1, "abc");
	cr_assert(eq(u32, c->an[MRY_MIME_AN_BOUNDARY_NOT_FOUND], 1));
	/* blank lines only: nothing to scan, no part (as GMime) */
	c = parse("Content-Type: multipart/mixed; boundary=zz\r\n\r\n\r\n \r\n");
	cr_assert(eq(sz, c->n, 0));
}

Test(mime, inner_multipart_closed_by_outer_delimiter_keeps_its_body)
{
	struct coll *c = parse("Content-Type: multipart/mixed; boundary=out\r\n\r\n"
			       "--out\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"
			       "lost text\r\n--out\r\n\r\nlast\r\n--out--\r\n");

	cr_assert(eq(sz, c->n, 2));
	EXPECT(c, 0, "lost text");
	cr_assert(eq(u32, c->p[0].pi.depth, 1));
	EXPECT(c, 1, "last");
}

Test(mime, long_preamble_is_scanned_as_it_comes_and_parts_follow)
{
	struct mry_mime_config cfg = { .max_preamble = 64, .pool_count = 1 };
	struct mry_mime_ctx *x = mry_mime_ctx_create(mry_alloc_default(), &cfg, &cbs);
	const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
			  "0123456789012345678901234567890123456789\r\n"
			  "0123456789012345678901234567890123456789\r\n"
			  "--b\r\n\r\npart\r\n--b--\r\n";
	struct mry_mime_stats st;
	struct coll c;
	struct mry_mime *m;
	size_t i;

	memset(&c, 0, sizeof(c));
	m = mry_mime_begin(x, &c);
	for (i = 0; msg[i] != '\0'; i++)
		mry_mime_feed(m, (const uint8_t *)msg + i, 1);
	mry_mime_end(m);
	mry_mime_get_stats(x, &st);
	cr_assert(eq(sz, c.n, 2));
	EXPECT(&c, 0, "0123456789012345678901234567890123456789\r\n"
		      "0123456789012345678901234567890123456789");
	EXPECT(&c, 1, "part");
	cr_assert(eq(u64, st.preamble_spills, 1));
	cr_assert(eq(u32, c.an[MRY_MIME_AN_BOUNDARY_NOT_FOUND], 0));
	mry_mime_ctx_destroy(x);
}

Test(mime, header_block_reader_classifies_lines_without_callbacks)
{
	static char field[MRY_MIME_FIELD_MAX];
	struct mry_mime_hdr_block b;

#define LINE(s, start) mry_mime_hdr_block_line(&b, (const uint8_t *)(s), strlen(s), \
			strcspn((s), "\r\n"), (start))
	mry_mime_hdr_block_init(&b, field, 1024);
	cr_assert(eq(int, LINE("Content-Type: text/x-a;\r\n", true), MRY_MIME_HL_FIELD));
	cr_assert(eq(int, LINE(" name=\"a.b\"\r\n", true), MRY_MIME_HL_FIELD));
	cr_assert(eq(int, LINE("Content-Transfer-Encoding  : base64\r\n", true), MRY_MIME_HL_FIELD));
	cr_assert(eq(int, LINE("aGVsbG8=\r\n", true), MRY_MIME_HL_NOT_FIELD));
	cr_assert(eq(int, LINE(": no name\r\n", true), MRY_MIME_HL_NOT_FIELD));
	cr_assert(eq(int, LINE("\r\n", true), MRY_MIME_HL_END));
	/* the fields before the non-field line were parsed */
	cr_assert(eq(str, b.hdr.ct, "text/x-a"));
	cr_assert(eq(str, b.hdr.name, "a.b"));
	cr_assert(eq(int, b.hdr.enc, MRY_MIME_ENC_BASE64));
	cr_assert(eq(u32, b.lines, 4));
#undef LINE
}

/* the first line start a delimiter or "begin" may open, the plain way */
static const uint8_t *line_mark_ref(const uint8_t *p, size_t n, bool uu)
{
	for (size_t i = 0; i + 1 < n; i++) {
		const uint8_t *q = p + i + 1;

		if (p[i] != '\n')
			continue;
		if (*q == '-' || (uu && (size_t)(p + n - q) >= 5 && memcmp(q, "begin", 5) == 0))
			return q;
	}
	return NULL;
}

Test(mime, line_mark_vector_and_scalar_match_the_plain_search, .timeout = 60)
{
	static const char alpha[] = "ab-\n\nbeginxyz-";
	static uint8_t buf[400];
	uint64_t s = 0x6c696e65ull;

	b64_sides("line starts with '-' or \"begin\"");
	for (int i = 0; i < 20000; i++) {
		size_t n = 2 + b64_rng(&s) % (sizeof(buf) - 2);
		bool uu = b64_rng(&s) & 1;

		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)alpha[b64_rng(&s) % (sizeof(alpha) - 1)];
		if (b64_rng(&s) % 4 == 0)
			memcpy(buf + b64_rng(&s) % (n - 1), "\nbegin", MRY_MIN(n - 1, (size_t)6));
		buf[n - 1] = '\n';
		for (int scalar = 0; scalar < 2; scalar++) {
			mry_cpu_force_baseline(scalar);
			const uint8_t *got = mry_mime_line_mark(buf, n, uu);
			const uint8_t *want = line_mark_ref(buf, n, uu);

			cr_assert(got == want, "case %d, n %zu, uu %d, scalar %d: %td vs %td",
				  i, n, uu, scalar, got != NULL ? got - buf : -1,
				  want != NULL ? want - buf : -1);
		}
		mry_cpu_force_baseline(false);
	}
}
