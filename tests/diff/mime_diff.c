/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Differential test: moray's streaming MIME parser against GMime 3.
 *
 * Every file under the given paths (default: /work/shared/data/mail/ and
 * /work/shared/samples/ *.eml) is decoded by both; the decoded bytes of every
 * leaf part are compared in order (count, then bytes). moray gets the file
 * in small chunks of varying size so chunk-boundary bugs show up as
 * differences too. Prints one line per difference and a summary; exits 0
 * when every differing file is in the allow-list below, 1 otherwise.
 *
 * Deliberate differences (allow-list reasons, see ALLOW[] below). Measured
 * on the 231 files of the corpus: 225 identical, 6 different, all allowed.
 *  - b64-after-pad: after '=' moray closes the quantum and decodes what
 *    follows as new data (counted as B64_BAD_PADDING); GMime 3.2 and
 *    Python's binascii stop at the padding. A client that keeps decoding
 *    would show bytes a stopping scanner never saw, so moray decodes the
 *    superset. (cjk__big5-base64.1: a list footer after the padding.)
 *  - b64-tail: moray decodes an unpadded tail ("QUJ" -> "AB", counted as
 *    B64_UNPADDED); GMime drops an incomplete final quantum.
 *  - multipart-no-boundary: a multipart/ without a usable boundary is one
 *    leaf for moray (its body is scanned decoded); GMime gives an empty
 *    multipart, i.e. no leaf at all.
 *  - not-a-message: GMime refuses a message whose first line is not a
 *    header (a bare body, a BSMTP transcript) and yields nothing; moray
 *    parses it as headers-then-body like everything else.
 *  - uu-embedded (no corpus file at present): a "begin NNN name" region
 *    inside a text/plain part is cut out as its own uudecoded part, as
 *    ClamAV does; GMime leaves it in the text.
 * Rules where moray follows GMime on purpose: the last Content-Type and the
 * last Content-Transfer-Encoding header win; a non-header line inside a
 * header block stays in the block; a delimiter right after a delimiter
 * (or after header lines that are all malformed) makes no part; the line
 * end before a delimiter is not content, but at end of input it is.
 *
 * Build: see tests/diff/meson.build (needs pkg-config gmime-3.0); the
 * target is mime_diff.
 */
#include <ftw.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "moray/mime.h"

struct part {
	uint8_t *data;
	size_t len;
	size_t cap;
	char ct[96];
};

struct partlist {
	struct part *v;
	size_t n;
	size_t cap;
};

static struct part *pl_add(struct partlist *pl, const char *ct)
{
	struct part *p;

	if (pl->n == pl->cap) {
		pl->cap = pl->cap ? pl->cap * 2 : 8;
		pl->v = realloc(pl->v, pl->cap * sizeof(*pl->v));
		if (pl->v == NULL)
			abort();
	}
	p = &pl->v[pl->n++];
	memset(p, 0, sizeof(*p));
	snprintf(p->ct, sizeof(p->ct), "%s", ct != NULL ? ct : "?");
	return p;
}

static void part_append(struct part *p, const uint8_t *d, size_t n)
{
	if (p->len + n > p->cap) {
		p->cap = (p->len + n) * 2 + 64;
		p->data = realloc(p->data, p->cap);
		if (p->data == NULL)
			abort();
	}
	memcpy(p->data + p->len, d, n);
	p->len += n;
}

static void pl_free(struct partlist *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++)
		free(pl->v[i].data);
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
}

/* ---- moray ------------------------------------------------------------ */

static void cb_begin(void *user, const struct mry_mime_part_info *pi)
{
	pl_add(user, pi->content_type);
}

static void cb_data(void *user, const uint8_t *d, size_t n)
{
	struct partlist *pl = user;

	part_append(&pl->v[pl->n - 1], d, n);
}

static struct mry_mime_ctx *mctx;

static void moray_parse(const uint8_t *buf, size_t len, struct partlist *pl,
			unsigned seed)
{
	struct mry_mime *m = mry_mime_begin(mctx, pl);
	size_t off = 0;

	if (m == NULL)
		abort();
	while (off < len) {
		/* chunk sizes 1..1500, deterministic per file */
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 1500;
		if (n > len - off)
			n = len - off;
		mry_mime_feed(m, buf + off, n);
		off += n;
	}
	mry_mime_end(m);
}

/* ---- GMime ------------------------------------------------------------ */

static void gm_walk(GMimeObject *o, struct partlist *pl)
{
	if (o == NULL)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int i, n = g_mime_multipart_get_count(mp);

		for (i = 0; i < n; i++)
			gm_walk(g_mime_multipart_get_part(mp, i), pl);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *msg = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

		if (msg != NULL)
			gm_walk(g_mime_message_get_mime_part(msg), pl);
	} else if (GMIME_IS_PART(o)) {
		GMimePart *part = GMIME_PART(o);
		GMimeDataWrapper *w = g_mime_part_get_content(part);
		GMimeContentType *ct = g_mime_object_get_content_type(o);
		char *mt = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
		struct part *p = pl_add(pl, mt);

		g_free(mt);
		if (w != NULL) {
			GMimeStream *ms = g_mime_stream_mem_new();
			GByteArray *ba;

			g_mime_data_wrapper_write_to_stream(w, ms);
			ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(ms));
			part_append(p, ba->data, ba->len);
			g_object_unref(ms);
		}
	}
}

static void gmime_parse(const uint8_t *buf, size_t len, struct partlist *pl)
{
	GMimeStream *st = g_mime_stream_mem_new_with_buffer((const char *)buf, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	GMimeMessage *msg;

	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	msg = g_mime_parser_construct_message(parser, NULL);
	if (msg != NULL) {
		gm_walk(g_mime_message_get_mime_part(msg), pl);
		g_object_unref(msg);
	}
	g_object_unref(parser);
	g_object_unref(st);
}

/* ---- allow-list ------------------------------------------------------- */

static const struct {
	const char *suffix;
	const char *reason;
} ALLOW[] = {
	{ "/python-email/msg_41.txt", "multipart-no-boundary" },
	{ "/python-email/msg_25.txt", "multipart-no-boundary" },
	{ "/python-email/msg_19.txt", "not-a-message" },
	{ "/spamassassin/spam/bsmtp", "not-a-message" },
	{ "/python-email/msg_39.txt", "b64-tail" },
	{ "/spamassassin/nice/cjk__big5-base64.1", "b64-after-pad" },
};

static const char *allowed(const char *path)
{
	size_t i, pl = strlen(path);

	for (i = 0; i < sizeof(ALLOW) / sizeof(ALLOW[0]); i++) {
		size_t sl = strlen(ALLOW[i].suffix);

		if (pl >= sl && strcmp(path + pl - sl, ALLOW[i].suffix) == 0)
			return ALLOW[i].reason;
	}
	return NULL;
}

/* ---- driver ----------------------------------------------------------- */

static unsigned nfiles, nsame, ndiff_allowed, ndiff;
static int verbose;

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static int dump_files;

/* -v: list parts; -d: also write them to ./mime_diff.<who>.<n> */
static void dump(const char *who, const struct partlist *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++) {
		printf("    %s part %zu %s len %zu\n", who, i, pl->v[i].ct, pl->v[i].len);
		if (dump_files) {
			char name[64];
			FILE *f;

			snprintf(name, sizeof(name), "mime_diff.%s.%zu", who, i);
			f = fopen(name, "wb");
			if (f != NULL) {
				fwrite(pl->v[i].data, 1, pl->v[i].len, f);
				fclose(f);
			}
		}
	}
}

static void one_file(const char *path)
{
	struct partlist a = { 0 }, b = { 0 };
	size_t len, i;
	uint8_t *buf = read_file(path, &len);
	char why[256] = "";
	const char *allow;

	if (buf == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		return;
	}
	nfiles++;
	moray_parse(buf, len, &a, (unsigned)len);
	gmime_parse(buf, len, &b);
	if (a.n != b.n) {
		snprintf(why, sizeof(why), "part count moray %zu gmime %zu", a.n, b.n);
	} else {
		for (i = 0; i < a.n; i++) {
			size_t k, m = a.v[i].len < b.v[i].len ? a.v[i].len : b.v[i].len;

			if (a.v[i].len == b.v[i].len &&
			    memcmp(a.v[i].data, b.v[i].data, m) == 0)
				continue;
			for (k = 0; k < m && a.v[i].data[k] == b.v[i].data[k]; k++)
				;
			snprintf(why, sizeof(why),
				 "part %zu (%s) len moray %zu gmime %zu, first difference at %zu",
				 i, b.v[i].ct, a.v[i].len, b.v[i].len, k);
			break;
		}
	}
	if (why[0] == '\0') {
		nsame++;
		if (verbose > 1) {
			printf("SAME %s\n", path);
			dump("moray", &a);
		}
	} else if ((allow = allowed(path)) != NULL) {
		ndiff_allowed++;
		printf("DIFF(allowed: %s) %s: %s\n", allow, path, why);
	} else {
		ndiff++;
		printf("DIFF %s: %s\n", path, why);
		if (verbose) {
			dump("moray", &a);
			dump("gmime", &b);
		}
	}
	pl_free(&a);
	pl_free(&b);
	free(buf);
}

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_F)
		one_file(path);
	return 0;
}

int main(int argc, char **argv)
{
	int i, first = 1;

	g_mime_init();
	mctx = mry_mime_ctx_create(mry_alloc_default(), NULL, NULL);
	{
		/* callbacks need the ctx to exist; re-create with them */
		struct mry_mime_callbacks cb = {
			.part_begin = cb_begin,
			.part_data = cb_data,
		};
		struct mry_mime_config cfg = { .pool_count = 1 };

		mry_mime_ctx_destroy(mctx);
		mctx = mry_mime_ctx_create(mry_alloc_default(), &cfg, &cb);
	}
	if (mctx == NULL)
		return 2;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-v") == 0)
			verbose++;
		if (strcmp(argv[i], "-d") == 0)
			dump_files = verbose = 1;
		first = i + 1;
	}
	if (first >= argc) {
		glob_t g;
		size_t k;

		nftw("/work/shared/data/mail", walk_cb, 16, FTW_PHYS);
		if (glob("/work/shared/samples/*.eml", 0, NULL, &g) == 0) {
			for (k = 0; k < g.gl_pathc; k++)
				one_file(g.gl_pathv[k]);
			globfree(&g);
		}
	} else {
		for (i = first; i < argc; i++)
			nftw(argv[i], walk_cb, 16, FTW_PHYS);
	}
	printf("mime_diff: %u files, %u identical, %u different (allowed), %u different (not allowed)\n",
	       nfiles, nsame, ndiff_allowed, ndiff);
	mry_mime_ctx_destroy(mctx);
	g_mime_shutdown();
	return ndiff == 0 ? 0 : 1;
}
