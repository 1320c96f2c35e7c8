/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Differential test: moray's streaming MIME parser against GMime 3.
 *
 * Usage: mime_diff [-v] [-d] [[-s SUFFIX] PATH]...
 * Every file under the given paths (one or more corpus directories or
 * files; -s limits the following directories to names ending in SUFFIX)
 * is decoded by both; the leaf-part count and the decoded bytes of every
 * leaf part are compared in order. moray gets the file in small chunks of
 * varying size so chunk-boundary bugs show up as differences too. Prints
 * one line per difference (message and part) and how many messages and
 * parts were compared; exits 0 only when something was compared, every
 * difference is in the allow-list below, and every allow-list entry of a
 * compared message still occurs.
 *
 * Deliberate differences (allow-list reasons, see ALLOW[] below). Measured
 * on tests/data/mail and tests/data/samples/ *.eml: 231 messages, 217
 * identical; 398 parts compared, 384 identical; 19 differences, all allowed.
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
 *  - uu-embedded: a "begin NNN name" or "begin-base64 NNN name" region
 *    inside a text/plain part is cut out as its own decoded part, as
 *    ClamAV does; GMime leaves it in the text.
 *  - header-ends-at-non-field: the first line that is neither a header
 *    field nor a continuation ends the header block and starts the body
 *    (Postfix cleanup, Python's email); GMime keeps reading fields.
 *  - multipart-boundary-not-found: the body of a multipart whose boundary
 *    never appears is one text part for moray; GMime yields no part.
 *  - message-encoded: an encoded message/rfc822 is decoded and parsed as a
 *    message by moray; GMime keeps it as one undecoded leaf.
 * Rules where moray follows GMime on purpose: the last Content-Type and the
 * last Content-Transfer-Encoding header win; a delimiter right after a delimiter
 * (or after header lines that are all malformed) makes no part; the line
 * end before a delimiter is not content, but at end of input it is.
 *
 * Build: see tests/diff/meson.build (needs pkg-config gmime-3.0); the
 * target is mime_diff.
 */
#include <errno.h>
#include <ftw.h>
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

/*
 * Each known difference by message (path suffix) and part: part -1 is the
 * leaf-part count. The lengths (or counts) on both sides are part of the
 * entry, so a different difference in an allowed part, or a difference in
 * another part of the same message, fails. An entry whose message was
 * compared without showing the difference fails too (remove it).
 */
struct allow {
	const char *suffix;
	int part;
	size_t moray, gmime;    /* part lengths, or part counts for part -1 */
	const char *reason;
	int seen;
};

static struct allow ALLOW[] = {
	/* multipart/ without a usable boundary: one leaf for moray, none for GMime */
	{ "/python-email/msg_41.txt", -1, 1, 0, "multipart-no-boundary", 0 },
	{ "/python-email/msg_25.txt", -1, 1, 0, "multipart-no-boundary", 0 },
	/* first line not a header: GMime yields nothing, moray one part */
	{ "/python-email/msg_19.txt", -1, 1, 0, "not-a-message", 0 },
	{ "/spamassassin/spam/bsmtp", -1, 1, 0, "not-a-message", 0 },
	/* six application/octet-stream parts whose base64 is "QUJ"-style unpadded */
	{ "/python-email/msg_39.txt", 0, 2, 0, "b64-tail", 0 },
	{ "/python-email/msg_39.txt", 1, 2, 0, "b64-tail", 0 },
	{ "/python-email/msg_39.txt", 2, 2, 0, "b64-tail", 0 },
	{ "/python-email/msg_39.txt", 3, 2, 0, "b64-tail", 0 },
	{ "/python-email/msg_39.txt", 4, 2, 0, "b64-tail", 0 },
	{ "/python-email/msg_39.txt", 5, 2, 0, "b64-tail", 0 },
	/* text/html: a mailing-list footer after the base64 padding */
	{ "/spamassassin/nice/cjk__big5-base64.1", 0, 2817, 2744, "b64-after-pad", 0 },
	/* a line that is not a header field ends the header block (RFC 5322
	 * section 2.2 syntax; Postfix cleanup and Python's email do the same);
	 * GMime 3.2 keeps reading header fields after it */
	{ "/python-email/msg_35.txt", 0, 56, 0, "header-ends-at-non-field", 0 },
	{ "/python-email/msg_38.txt", -1, 4, 3, "header-ends-at-non-field", 0 },
	{ "/spamassassin/spam/015", 0, 356, 345, "header-ends-at-non-field", 0 },
	{ "/spamassassin/spam/badmime2.txt", 0, 3659, 3777, "header-ends-at-non-field", 0 },
	{ "/mimekit/messages__issue358.txt", -1, 1, 2, "header-ends-at-non-field", 0 },
	{ "/mime-edge/no-blank-line-top.eml", 0, 68, 0, "header-ends-at-non-field", 0 },
	{ "/mime-edge/no-blank-line-part.eml", 1, 68, 0, "header-ends-at-non-field", 0 },
	/* a multipart whose boundary never appears: its body is one text part
	 * for moray (Python's email keeps it too); GMime gives no part */
	{ "/python-email/msg_17.txt", -1, 1, 0, "multipart-boundary-not-found", 0 },
	{ "/python-email/msg_31.txt", -1, 1, 0, "multipart-boundary-not-found", 0 },
	{ "/spamassassin/spam/badmime3.txt", -1, 1, 0, "multipart-boundary-not-found", 0 },
	{ "/mime-edge/boundary-never-appears.eml", -1, 3, 0, "multipart-boundary-not-found", 0 },
	{ "/mime-edge/boundary-never-appears-nested.eml", -1, 2, 1, "multipart-boundary-not-found", 0 },
	/* a base64/QP-encoded message/rfc822 (RFC 2046 5.2.1 forbids it;
	 * clients send it, ClamAV decodes it): moray decodes and parses the
	 * inner message; GMime keeps one undecoded leaf */
	{ "/mime-edge/rfc822-base64.eml", -1, 3, 2, "message-encoded", 0 },
	{ "/mime-edge/rfc822-qp.eml", -1, 3, 2, "message-encoded", 0 },
	/* uuencode -m (begin-base64 ... ====) inside text: its own decoded
	 * part for moray, as classic uuencode; GMime leaves it in the text */
	{ "/mime-edge/uuencode-m.eml", -1, 3, 1, "uu-embedded", 0 },
	{ "/mime-edge/uuencode-m-in-part.eml", -1, 4, 1, "uu-embedded", 0 },
};

static struct allow *allowed(const char *path, int part, size_t moray, size_t gmime)
{
	size_t i, pl = strlen(path);

	for (i = 0; i < sizeof(ALLOW) / sizeof(ALLOW[0]); i++) {
		size_t sl = strlen(ALLOW[i].suffix);

		if (pl >= sl && strcmp(path + pl - sl, ALLOW[i].suffix) == 0 &&
		    ALLOW[i].part == part && ALLOW[i].moray == moray && ALLOW[i].gmime == gmime)
			return &ALLOW[i];
	}
	return NULL;
}

/* the allow-list entries for a message compared: each must have been seen */
static void allow_check_file(const char *path, unsigned *stale)
{
	size_t i, pl = strlen(path);

	for (i = 0; i < sizeof(ALLOW) / sizeof(ALLOW[0]); i++) {
		size_t sl = strlen(ALLOW[i].suffix);

		if (pl >= sl && strcmp(path + pl - sl, ALLOW[i].suffix) == 0 && !ALLOW[i].seen) {
			printf("STALE allow-list entry %s part %d (%s): the difference no longer occurs\n",
			       path, ALLOW[i].part, ALLOW[i].reason);
			(*stale)++;
		}
	}
}

/* ---- driver ----------------------------------------------------------- */

static unsigned nfiles, nfiles_same, nparts, nparts_same, ndiff_allowed, ndiff, nstale,
	nunreadable;
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

/* one difference: allowed (and marked seen) or counted as new */
static int difference(const char *path, int part, size_t moray, size_t gmime, const char *what)
{
	struct allow *al = allowed(path, part, moray, gmime);

	if (al != NULL) {
		al->seen = 1;
		ndiff_allowed++;
		printf("DIFF(allowed: %s) %s %s\n", al->reason, path, what);
		return 0;
	}
	ndiff++;
	printf("DIFF %s %s\n", path, what);
	return 1;
}

static void one_file(const char *path)
{
	struct partlist a = { 0 }, b = { 0 };
	size_t len, i;
	uint8_t *buf = read_file(path, &len);
	char what[256];
	int bad = 0, differs = 0;

	if (buf == NULL) {
		printf("FAIL cannot read %s\n", path);
		nunreadable++;
		return;
	}
	nfiles++;
	moray_parse(buf, len, &a, (unsigned)len);
	gmime_parse(buf, len, &b);
	if (a.n != b.n) {
		snprintf(what, sizeof(what), "part count: moray %zu gmime %zu", a.n, b.n);
		bad |= difference(path, -1, a.n, b.n, what);
		differs = 1;
	}
	/* the parts both have, in order: each one compared and reported */
	for (i = 0; i < a.n && i < b.n; i++) {
		size_t k, m = a.v[i].len < b.v[i].len ? a.v[i].len : b.v[i].len;

		nparts++;
		if (a.n == b.n && a.v[i].len == b.v[i].len &&
		    memcmp(a.v[i].data, b.v[i].data, m) == 0) {
			nparts_same++;
			continue;
		}
		if (a.n != b.n)
			continue;       /* parts do not line up: the count says it */
		for (k = 0; k < m && a.v[i].data[k] == b.v[i].data[k]; k++)
			;
		snprintf(what, sizeof(what),
			 "part %zu (%s): len moray %zu gmime %zu, first difference at %zu", i,
			 b.v[i].ct, a.v[i].len, b.v[i].len, k);
		bad |= difference(path, (int)i, a.v[i].len, b.v[i].len, what);
		differs = 1;
	}
	if (!differs) {
		nfiles_same++;
		if (verbose > 1) {
			printf("SAME %s\n", path);
			dump("moray", &a);
		}
	} else if (bad && verbose) {
		dump("moray", &a);
		dump("gmime", &b);
	}
	allow_check_file(path, &nstale);
	pl_free(&a);
	pl_free(&b);
	free(buf);
}

static const char *walk_suffix;

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	size_t pl = strlen(path), sl = walk_suffix != NULL ? strlen(walk_suffix) : 0;

	(void)sb;
	(void)ftw;
	if (type == FTW_F && (sl == 0 || (pl >= sl && strcmp(path + pl - sl, walk_suffix) == 0)))
		one_file(path);
	else if (type == FTW_DNR || type == FTW_NS) {
		printf("FAIL cannot read %s\n", path);
		nunreadable++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i, npaths = 0;

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
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-v") == 0) {
			verbose++;
		} else if (strcmp(argv[i], "-d") == 0) {
			dump_files = verbose = 1;
		} else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
			walk_suffix = argv[++i][0] != '\0' ? argv[i] : NULL;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "usage: mime_diff [-v] [-d] [[-s SUFFIX] PATH]...\n");
			return 2;
		} else {
			unsigned before = nfiles;

			npaths++;
			if (nftw(argv[i], walk_cb, 16, FTW_PHYS) != 0) {
				printf("FAIL corpus %s: %s\n", argv[i], strerror(errno));
				nunreadable++;
			} else if (nfiles == before) {
				printf("FAIL corpus %s: no messages in it\n", argv[i]);
				nunreadable++;
			}
		}
	}
	printf("mime_diff: compared %u messages (%u identical) and %u parts (%u identical); "
	       "%u differences allowed, %u not allowed, %u stale allow-list entries, "
	       "%u unreadable paths\n",
	       nfiles, nfiles_same, nparts, nparts_same, ndiff_allowed, ndiff, nstale, nunreadable);
	mry_mime_ctx_destroy(mctx);
	g_mime_shutdown();
	if (npaths == 0 || nfiles == 0) {
		printf("FAIL no messages compared (give one or more corpus paths)\n");
		return 1;
	}
	return ndiff == 0 && nstale == 0 && nunreadable == 0 ? 0 : 1;
}
