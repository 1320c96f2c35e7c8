/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hyperscan compiling moray's signature expressions directly, for the
 * large-database benchmark (bench/sigs/large.sh). The .ndb files are
 * translated by moray's own translator (mry_sigsrc_add_file), so both sides
 * compile exactly the same expressions with the same flags and offset
 * bounds; this program then compiles them itself, once, in HS_MODE_STREAM:
 *
 *   whole: one hs_compile_ext_multi() over every expression (what
 *          moray-sigc does per database slot);
 *   split: the pure-literal expressions (only \xHH bytes, no offset bounds)
 *          through hs_compile_lit_multi(), the rest through
 *          hs_compile_ext_multi(): two databases a message would stream
 *          through side by side.
 *
 * It prints the CPU seconds moray's translation took (parse + a Hyperscan
 * check of each expression), then for each mode compile seconds (CPU of this thread), database bytes,
 * stream-state bytes (both streams for split) and scratch bytes. With
 * --scan FILE it also streams FILE in 1448-byte pieces through each
 * (best of 5, thread CPU) and prints MB/s.
 *
 *   hs_direct (whole|split) [--scan FILE] SRC.ndb...
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hs.h>

#include "moray/sigsrc.h"

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* bytes of an expression made only of \xHH escapes; NULL when it is not */
static char *literal_bytes(const char *e, size_t *len)
{
	size_t n = strlen(e), k = 0;
	char *out;

	if (n == 0 || n % 4 != 0)
		return NULL;
	out = malloc(n / 4);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 4) {
		int hi = hexval(e[i + 2]), lo = hexval(e[i + 3]);

		if (e[i] != '\\' || e[i + 1] != 'x' || hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[k++] = (char)(hi << 4 | lo);
	}
	*len = k;
	return out;
}

static int on_match(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *ctx)
{
	(void)id; (void)from; (void)to; (void)flags;
	(*(unsigned long *)ctx)++;
	return 0;
}

static double scan_mbs(hs_database_t *const *db, int ndb, hs_scratch_t *scratch,
		       const char *buf, size_t len, unsigned long *matches)
{
	double best = 1e9;

	for (int rep = 0; rep < 5; rep++) {
		hs_stream_t *st[2] = { NULL, NULL };
		double t0 = cpu_s(), t;

		for (int d = 0; d < ndb; d++)
			if (hs_open_stream(db[d], 0, &st[d]) != HS_SUCCESS)
				return -1;
		for (size_t off = 0; off < len; off += 1448) {
			unsigned n = (unsigned)(len - off < 1448 ? len - off : 1448);

			for (int d = 0; d < ndb; d++)
				hs_scan_stream(st[d], buf + off, n, 0, scratch, on_match, matches);
		}
		for (int d = 0; d < ndb; d++)
			hs_close_stream(st[d], scratch, on_match, matches);
		t = cpu_s() - t0;
		best = t < best ? t : best;
	}
	return (double)len / best / 1e6;
}

int main(int argc, char **argv)
{
	struct mry_sigsrc *s;
	const char *scan_path = NULL;
	bool split;
	int first = 2;
	uint32_t nb;
	const char **ex;
	char **lit;
	unsigned *fl, *ids, *lfl, *lids, nex = 0, nlit = 0;
	size_t *llen;
	hs_expr_ext_t *ext;
	const hs_expr_ext_t **extp;
	hs_database_t *db[2] = { NULL, NULL };
	hs_scratch_t *scratch = NULL;
	hs_compile_error_t *cerr = NULL;
	int ndb = 0;
	double t0, t_ex = 0, t_lit = 0, t_parse;
	size_t dbsz = 0, stsz = 0, scsz = 0;

	if (argc < 3 || (strcmp(argv[1], "whole") != 0 && strcmp(argv[1], "split") != 0)) {
		fprintf(stderr, "usage: hs_direct (whole|split) [--scan FILE] SRC.ndb...\n");
		return 2;
	}
	split = strcmp(argv[1], "split") == 0;
	if (argc > 3 && strcmp(argv[2], "--scan") == 0) {
		scan_path = argv[3];
		first = 4;
	}
	s = mry_sigsrc_create();
	if (s == NULL)
		return 2;
	t0 = cpu_s();
	for (int i = first; i < argc; i++)
		if (mry_sigsrc_add_file(s, argv[i]) != 0 && mry_sigsrc_nb_errors(s) != 0) {
			fprintf(stderr, "hs_direct: %s: %s\n", argv[i], mry_sigsrc_error(s, 0));
			return 2;
		}
	nb = mry_sigsrc_nb_sigs(s);
	t_parse = cpu_s() - t0;
	ex = calloc(nb + 1, sizeof(*ex));
	lit = calloc(nb + 1, sizeof(*lit));
	fl = calloc(nb + 1, sizeof(*fl));
	ids = calloc(nb + 1, sizeof(*ids));
	lfl = calloc(nb + 1, sizeof(*lfl));
	lids = calloc(nb + 1, sizeof(*lids));
	llen = calloc(nb + 1, sizeof(*llen));
	ext = calloc(nb + 1, sizeof(*ext));
	extp = calloc(nb + 1, sizeof(*extp));
	if (ex == NULL || lit == NULL || fl == NULL || ids == NULL || lfl == NULL ||
	    lids == NULL || llen == NULL || ext == NULL || extp == NULL)
		return 2;
	for (uint32_t i = 0; i < nb; i++) {
		const struct mry_sigsrc_sig *g = mry_sigsrc_sig_at(s, i);
		bool bounded = g->min_offset != 0 || g->max_offset != 0;
		char *lb = NULL;
		size_t ll = 0;

		if (split && !bounded && (lb = literal_bytes(g->expr, &ll)) != NULL) {
			lit[nlit] = lb;
			llen[nlit] = ll;
			lfl[nlit] = g->hs_flags & (HS_FLAG_CASELESS | HS_FLAG_SINGLEMATCH);
			lids[nlit++] = g->id;
			continue;
		}
		ex[nex] = g->expr;
		fl[nex] = g->hs_flags;
		ids[nex] = g->id;
		if (bounded) {
			ext[nex].flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
			ext[nex].min_offset = g->min_offset;
			ext[nex].max_offset = g->max_offset;
			extp[nex] = &ext[nex];
		}
		nex++;
	}
	if (nlit > 0) {
		t0 = cpu_s();
		if (hs_compile_lit_multi((const char *const *)lit, lfl, lids, llen, nlit, HS_MODE_STREAM, NULL,
					 &db[ndb], &cerr) != HS_SUCCESS) {
			fprintf(stderr, "hs_direct: literals: %s\n", cerr->message);
			return 2;
		}
		t_lit = cpu_s() - t0;
		ndb++;
	}
	if (nex > 0) {
		t0 = cpu_s();
		if (hs_compile_ext_multi(ex, fl, ids, extp, nex, HS_MODE_STREAM, NULL, &db[ndb],
					 &cerr) != HS_SUCCESS) {
			fprintf(stderr, "hs_direct: expression %d: %s\n", cerr->expression,
				cerr->message);
			return 2;
		}
		t_ex = cpu_s() - t0;
		ndb++;
	}
	for (int d = 0; d < ndb; d++) {
		size_t a = 0, b = 0;

		if (hs_alloc_scratch(db[d], &scratch) != HS_SUCCESS)
			return 2;
		hs_database_size(db[d], &a);
		hs_stream_size(db[d], &b);
		dbsz += a;
		stsz += b;
	}
	hs_scratch_size(scratch, &scsz);
	printf("hs_direct %s: %u expressions (%u literal via hs_compile_lit_multi, %u via "
	       "hs_compile_ext_multi)\n", split ? "split" : "whole", nb, nlit, nex);
	printf("moray's translation of the sources (mry_sigsrc_add_file, not timed below): "
	       "%.3f s CPU\n", t_parse);
	printf("result mode=%s compile_s=%.3f lit_compile_s=%.3f ext_compile_s=%.3f "
	       "db_bytes=%zu stream_bytes=%zu scratch_bytes=%zu\n", split ? "split" : "whole",
	       t_lit + t_ex, t_lit, t_ex, dbsz, stsz, scsz);
	if (scan_path != NULL) {
		FILE *f = fopen(scan_path, "rb");
		char *buf;
		long len;
		unsigned long matches = 0;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0)
			return 2;
		rewind(f);
		buf = malloc((size_t)len);
		if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len)
			return 2;
		fclose(f);
		printf("result mode=%s scan_mbs=%.1f matches=%lu bytes=%ld\n",
		       split ? "split" : "whole",
		       scan_mbs(db, ndb, scratch, buf, (size_t)len, &matches), matches, len);
		free(buf);
	}
	for (int d = 0; d < ndb; d++)
		hs_free_database(db[d]);
	hs_free_scratch(scratch);
	for (unsigned i = 0; i < nlit; i++)
		free(lit[i]);
	mry_sigsrc_destroy(s);
	return 0;
}
