/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench_scan: moray's scan stage against plain Hyperscan, one run, same
 * bytes, same chunks.
 *
 *   bench_scan [--reps N] [--loops N] [--chunk BYTES] [--list] [--db-out F] CORPUS SRC...
 *
 * CORPUS is a directory laid out by decode_corpus.py (NNNN/raw, hK, pK).
 * SRC... are signature sources (.ndb or moray format), compiled once into a
 * moray database (streaming, per slot) and once into block-mode databases.
 * Contenders, each over (a) the raw messages only and (b) raw + header
 * blocks + decoded parts:
 *   moray   mry_scan_msg_*() in CHUNK-byte pieces
 *   stream  hs_open_stream/hs_scan_stream/hs_close_stream, same pieces
 *   block   hs_scan() over each whole buffer (raw, header block, part)
 * The parts come from decode_corpus.py (Python's email package), so these
 * three time the scan alone.
 * One more contender does what a mail scanner fed a message does (ClamAV's
 * clamd INSTREAM, clamscan): only the raw message bytes, from memory, in
 * CHUNK-byte pieces, through moray's MIME parser (headers, base64 / QP /
 * uuencode decoding) into the scan stage (raw + header blocks + decoded
 * parts), exactly the wiring of the engine's per-message path:
 *   mime+scan  mry_mime_feed() + mry_scan_msg_raw() per piece
 * Prints best-of-N thread CPU times, ratios, and the matched-message counts (which
 * must agree between contenders).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <hs/hs.h>

#include "moray/mime.h"
#include "moray/scan.h"
#include "moray/sigdb.h"
#include "moray/sigsrc.h"

struct buf {
	uint8_t *p;
	size_t len;
};

struct msg {
	char name[256];
	struct buf raw;
	struct buf *hdr;
	size_t nb_hdr;
	struct buf *part;
	size_t nb_part;
};

static struct msg *msgs;
static size_t nb_msgs;
static size_t chunk = 1448;

static int read_all(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	long n;

	if (f == NULL)
		return -1;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b->p = malloc((size_t)n + 1);
	b->len = b->p != NULL ? fread(b->p, 1, (size_t)n, f) : 0;
	fclose(f);
	return b->p != NULL ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_corpus(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (d == NULL) {
		perror(dir);
		exit(1);
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = realloc(names, (n + 1) * sizeof(*names));
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	msgs = calloc(n, sizeof(*msgs));
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		struct msg *m = &msgs[nb_msgs];
		struct buf nb;

		snprintf(path, sizeof(path), "%s/%s/raw", dir, names[i]);
		if (read_all(path, &m->raw) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s/name", dir, names[i]);
		if (read_all(path, &nb) == 0) {
			snprintf(m->name, sizeof(m->name), "%.*s", (int)strcspn((char *)nb.p, "\n"),
				 (char *)nb.p);
			free(nb.p);
		}
		for (size_t k = 0;; k++) {
			struct buf b;

			snprintf(path, sizeof(path), "%s/%s/h%zu", dir, names[i], k);
			if (read_all(path, &b) != 0)
				break;
			m->hdr = realloc(m->hdr, (k + 1) * sizeof(*m->hdr));
			m->hdr[m->nb_hdr++] = b;
		}
		for (size_t k = 0;; k++) {
			struct buf b;

			snprintf(path, sizeof(path), "%s/%s/p%zu", dir, names[i], k);
			if (read_all(path, &b) != 0)
				break;
			m->part = realloc(m->part, (k + 1) * sizeof(*m->part));
			m->part[m->nb_part++] = b;
		}
		nb_msgs++;
		free(names[i]);
	}
	free(names);
}

/* this thread's CPU time: on a shared machine, time spent preempted by
 * other processes is not charged to whichever contender was running */
static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- contender: moray ---------------------------------------------------- */

static bool list_matches;

static size_t run_moray(struct mry_scanner *s, struct mry_sigdb_gen *g, bool full)
{
	size_t hits = 0;

	for (size_t i = 0; i < nb_msgs; i++) {
		struct msg *mm = &msgs[i];
		struct mry_scan_msg *m = mry_scan_msg_begin(s, g);
		struct mry_scan_result r;

		if (m == NULL) {
			fprintf(stderr, "bench_scan: scan pool empty\n");
			exit(1);
		}
		for (size_t o = 0; o < mm->raw.len; o += chunk)
			mry_scan_msg_raw(m, mm->raw.p + o, MRY_MIN(chunk, mm->raw.len - o));
		if (full) {
			for (size_t h = 0; h < mm->nb_hdr; h++)
				for (size_t o = 0; o < mm->hdr[h].len; o += chunk)
					mry_scan_msg_headers(m, mm->hdr[h].p + o,
							     MRY_MIN(chunk, mm->hdr[h].len - o));
			for (size_t p = 0; p < mm->nb_part; p++) {
				mry_scan_msg_part_begin(m);
				for (size_t o = 0; o < mm->part[p].len; o += chunk)
					mry_scan_msg_part_data(m, mm->part[p].p + o,
							       MRY_MIN(chunk, mm->part[p].len - o));
				mry_scan_msg_part_end(m);
			}
		}
		mry_scan_msg_end(m, &r);
		if (r.nb_sigs > 0)
			hits++;
		if (list_matches && r.nb_sigs > 0) {
			printf("  %-60s", mm->name);
			for (uint32_t k = 0; k < r.nb_sigs; k++)
				printf(" %s", r.sig_names[k]);
			printf("\n");
		}
	}
	return hits;
}

/* ---- contender: moray MIME parser + scan stage, raw message only in ------- */

static void ms_header(void *user, uint32_t part_index, const uint8_t *d, size_t len)
{
	(void)part_index;
	mry_scan_msg_headers(user, d, len);
}

static void ms_part_begin(void *user, const struct mry_mime_part_info *pi)
{
	(void)pi;
	mry_scan_msg_part_begin(user);
}

static void ms_part_data(void *user, const uint8_t *d, size_t len)
{
	mry_scan_msg_part_data(user, d, len);
}

static void ms_part_end(void *user, const struct mry_mime_part_info *pi)
{
	(void)pi;
	mry_scan_msg_part_end(user);
}

static const struct mry_mime_callbacks ms_cb = {
	.header_data = ms_header,
	.part_begin = ms_part_begin,
	.part_data = ms_part_data,
	.part_end = ms_part_end,
};

static size_t run_mime_scan(struct mry_scanner *s, struct mry_mime_ctx *mc,
			    struct mry_sigdb_gen *g)
{
	size_t hits = 0;

	for (size_t i = 0; i < nb_msgs; i++) {
		struct msg *mm = &msgs[i];
		struct mry_scan_msg *m = mry_scan_msg_begin(s, g);
		struct mry_mime *p;
		struct mry_scan_result r;

		if (m == NULL) {
			fprintf(stderr, "bench_scan: scan pool empty\n");
			exit(1);
		}
		p = mry_mime_begin(mc, m);
		if (p == NULL) {
			fprintf(stderr, "bench_scan: MIME pool empty\n");
			exit(1);
		}
		for (size_t o = 0; o < mm->raw.len; o += chunk) {
			size_t n = MRY_MIN(chunk, mm->raw.len - o);

			mry_scan_msg_raw(m, mm->raw.p + o, n);
			mry_mime_feed(p, mm->raw.p + o, n);
		}
		mry_mime_end(p);
		mry_scan_msg_end(m, &r);
		if (r.nb_sigs > 0)
			hits++;
	}
	return hits;
}

/* ---- contender: plain Hyperscan streaming -------------------------------- */

static int hs_cb(unsigned int id, unsigned long long from, unsigned long long to,
		 unsigned int flags, void *ctx)
{
	(void)id;
	(void)from;
	(void)to;
	(void)flags;
	*(unsigned *)ctx += 1;
	return 0;
}

static void stream_one(const hs_database_t *db, hs_scratch_t *scr, const struct buf *b,
		       unsigned *n)
{
	hs_stream_t *st;

	if (db == NULL)
		return;
	if (hs_open_stream(db, 0, &st) != HS_SUCCESS)
		exit(1);
	for (size_t o = 0; o < b->len; o += chunk)
		hs_scan_stream(st, (const char *)b->p + o, (unsigned)MRY_MIN(chunk, b->len - o),
			       0, scr, hs_cb, n);
	hs_close_stream(st, scr, hs_cb, n);
}

static size_t run_stream(const hs_database_t *const *db, hs_scratch_t *scr, bool full)
{
	size_t hits = 0;

	for (size_t i = 0; i < nb_msgs; i++) {
		struct msg *mm = &msgs[i];
		unsigned n = 0;

		stream_one(db[MRY_SLOT_RAW], scr, &mm->raw, &n);
		if (full) {
			/* one header stream for all blocks, as moray does */
			if (db[MRY_SLOT_HEADERS] != NULL) {
				hs_stream_t *st;

				hs_open_stream(db[MRY_SLOT_HEADERS], 0, &st);
				for (size_t h = 0; h < mm->nb_hdr; h++)
					for (size_t o = 0; o < mm->hdr[h].len; o += chunk)
						hs_scan_stream(st, (const char *)mm->hdr[h].p + o,
							       (unsigned)MRY_MIN(chunk, mm->hdr[h].len - o),
							       0, scr, hs_cb, &n);
				hs_close_stream(st, scr, hs_cb, &n);
			}
			for (size_t p = 0; p < mm->nb_part; p++)
				stream_one(db[MRY_SLOT_DECODED], scr, &mm->part[p], &n);
		}
		if (n > 0)
			hits++;
	}
	return hits;
}

/* ---- contender: block mode --------------------------------------------- */

static void block_one(const hs_database_t *db, hs_scratch_t *scr, const struct buf *b,
		      unsigned *n)
{
	if (db != NULL)
		hs_scan(db, (const char *)b->p, (unsigned)b->len, 0, scr, hs_cb, n);
}

static size_t run_block(hs_database_t *const *db, hs_scratch_t *scr, bool full)
{
	size_t hits = 0;

	for (size_t i = 0; i < nb_msgs; i++) {
		struct msg *mm = &msgs[i];
		unsigned n = 0;

		block_one(db[MRY_SLOT_RAW], scr, &mm->raw, &n);
		if (full) {
			for (size_t h = 0; h < mm->nb_hdr; h++)
				block_one(db[MRY_SLOT_HEADERS], scr, &mm->hdr[h], &n);
			for (size_t p = 0; p < mm->nb_part; p++)
				block_one(db[MRY_SLOT_DECODED], scr, &mm->part[p], &n);
		}
		if (n > 0)
			hits++;
	}
	return hits;
}

static hs_database_t *compile_block(const struct mry_sigsrc *src, int slot)
{
	uint32_t n = mry_sigsrc_nb_sigs(src), k = 0;
	const char **ex = calloc(n, sizeof(*ex));
	unsigned *fl = calloc(n, sizeof(*fl)), *ids = calloc(n, sizeof(*ids));
	hs_expr_ext_t *ext = calloc(n, sizeof(*ext));
	const hs_expr_ext_t **extp = calloc(n, sizeof(*extp));
	hs_database_t *db = NULL;
	hs_compile_error_t *err = NULL;

	for (uint32_t i = 0; i < n; i++) {
		const struct mry_sigsrc_sig *g = mry_sigsrc_sig_at(src, i);

		if ((g->targets & (1u << slot)) == 0)
			continue;
		ex[k] = g->expr;
		fl[k] = g->hs_flags;
		ids[k] = g->id;
		if (g->min_offset != 0 || g->max_offset != 0) {
			ext[k].flags = HS_EXT_FLAG_MIN_OFFSET | HS_EXT_FLAG_MAX_OFFSET;
			ext[k].min_offset = g->min_offset;
			ext[k].max_offset = g->max_offset;
			extp[k] = &ext[k];
		}
		k++;
	}
	if (k > 0 && hs_compile_ext_multi(ex, fl, ids, extp, k, HS_MODE_BLOCK, NULL, &db,
					  &err) != HS_SUCCESS) {
		fprintf(stderr, "bench_scan: block compile: %s\n", err->message);
		exit(1);
	}
	free(ex);
	free(fl);
	free(ids);
	free(ext);
	free(extp);
	return db;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "loops", required_argument, NULL, 'n' },
		{ "chunk", required_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "db-out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *db_out = NULL;
	struct mry_sigsrc *src;
	struct mry_sigc_opts o = { .generation = 1, .created = (uint64_t)time(NULL) };
	struct mry_sigc_report rep;
	struct mry_sigdb_gen *g = NULL;
	struct mry_scanner *sc;
	struct mry_mime_ctx *mc;
	struct mry_mime_config mcfg = { 0 };
	hs_database_t *bdb[MRY_SLOT_MAX] = { NULL };
	const hs_database_t *sdb[MRY_SLOT_MAX];
	hs_scratch_t *sscr = NULL, *bscr = NULL;
	uint8_t *img;
	size_t len, bytes_raw = 0, bytes_full = 0, scr_size = 0;
	int reps = 5, loops = 10, c;
	char detail[256];

	while ((c = getopt_long(argc, argv, "r:n:c:lo:", lo, NULL)) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'n': loops = atoi(optarg); break;
		case 'c': chunk = (size_t)atol(optarg); break;
		case 'l': list_matches = true; break;
		case 'o': db_out = optarg; break;
		default: return 2;
		}
	}
	if (argc - optind < 2 || chunk == 0 || reps < 1 || loops < 1) {
		fprintf(stderr, "usage: bench_scan [--reps N] [--loops N] [--chunk B] [--list] [--db-out F] CORPUS SRC...\n");
		return 2;
	}
	load_corpus(argv[optind]);
	src = mry_sigsrc_create();
	for (int i = optind + 1; i < argc; i++)
		mry_sigsrc_add_file(src, argv[i]);
	if (mry_sigsrc_compile(src, &o, &img, &len, &rep) != 0) {
		for (uint32_t i = 0; mry_sigsrc_error(src, i) != NULL; i++)
			fprintf(stderr, "%s\n", mry_sigsrc_error(src, i));
		return 1;
	}
	if (db_out != NULL)
		mry_sigdb_write_file(db_out, img, len);
	if (mry_sigdb_load_mem(img, len, NULL, &g, detail, sizeof(detail)) != MRY_SIGDB_OK) {
		fprintf(stderr, "bench_scan: load: %s\n", detail);
		return 1;
	}
	for (int k = 0; k < MRY_SLOT_MAX; k++) {
		sdb[k] = mry_sigdb_gen_hs_db(g, (enum mry_sigdb_slot)k);
		if (sdb[k] != NULL)
			hs_alloc_scratch(sdb[k], &sscr);
		bdb[k] = compile_block(src, k);
		if (bdb[k] != NULL)
			hs_alloc_scratch(bdb[k], &bscr);
	}
	sc = mry_scanner_create(mry_alloc_default(), 4);
	mry_scanner_prepare(sc, g);
	mc = mry_mime_ctx_create(mry_alloc_default(), &mcfg, &ms_cb);
	if (mc == NULL) {
		fprintf(stderr, "bench_scan: MIME context\n");
		return 1;
	}
	for (size_t i = 0; i < nb_msgs; i++) {
		bytes_raw += msgs[i].raw.len;
		bytes_full += msgs[i].raw.len;
		for (size_t h = 0; h < msgs[i].nb_hdr; h++)
			bytes_full += msgs[i].hdr[h].len;
		for (size_t p = 0; p < msgs[i].nb_part; p++)
			bytes_full += msgs[i].part[p].len;
	}
	hs_scratch_size(sscr, &scr_size);
	printf("corpus: %zu messages, raw %zu bytes, raw+headers+parts %zu bytes; chunk %zu\n",
	       nb_msgs, bytes_raw, bytes_full, chunk);
	printf("database: %u signatures (raw %u decoded %u headers %u), %zu bytes, compile %.3f s\n",
	       rep.nb_sigs, rep.per_slot[0], rep.per_slot[1], rep.per_slot[2], len, rep.compile_s);
	printf("stream state: raw %zu decoded %zu headers %zu bytes; scratch %zu bytes (moray %zu)\n",
	       rep.stream_size[0], rep.stream_size[1], rep.stream_size[2], scr_size,
	       mry_scanner_scratch_size(sc));
	if (list_matches) {
		printf("matches (moray, full):\n");
		run_moray(sc, g, true);
		list_matches = false;
	}
	double last[3] = { 0 };

	for (int full = 0; full <= 1; full++) {
		double best[3] = { 1e9, 1e9, 1e9 };
		size_t hits[3] = { 0 };
		size_t bytes = full ? bytes_full : bytes_raw;

		/* interleaved, best of reps, each rep = loops passes over the corpus */
		for (int r = 0; r < reps; r++) {
			double t0 = now_s();

			for (int l = 0; l < loops; l++)
				hits[0] = run_moray(sc, g, full);
			best[0] = MRY_MIN(best[0], (now_s() - t0) / loops);
			t0 = now_s();
			for (int l = 0; l < loops; l++)
				hits[1] = run_stream(sdb, sscr, full);
			best[1] = MRY_MIN(best[1], (now_s() - t0) / loops);
			t0 = now_s();
			for (int l = 0; l < loops; l++)
				hits[2] = run_block(bdb, bscr, full);
			best[2] = MRY_MIN(best[2], (now_s() - t0) / loops);
		}
		printf("%s:\n", full ? "raw + headers + decoded parts" : "raw messages only");
		printf("  moray scan stage  %8.2f ms %8.1f MB/s  %zu messages matched\n",
		       best[0] * 1e3, (double)bytes / best[0] / 1e6, hits[0]);
		printf("  hs streaming      %8.2f ms %8.1f MB/s  %zu messages matched\n",
		       best[1] * 1e3, (double)bytes / best[1] / 1e6, hits[1]);
		printf("  hs block          %8.2f ms %8.1f MB/s  %zu messages matched\n",
		       best[2] * 1e3, (double)bytes / best[2] / 1e6, hits[2]);
		printf("  ratio moray/hs-streaming %.3f, moray/hs-block %.3f, hs-streaming/hs-block %.3f\n",
		       best[1] / best[0], best[2] / best[0], best[2] / best[1]);
		if (hits[0] != hits[1] || hits[1] != hits[2])
			printf("  WARNING: matched-message counts differ\n");
		memcpy(last, best, sizeof(last));
	}

	/* the whole per-message path from the raw bytes: MIME + scan */
	double best_ms = 1e9;
	size_t hits_ms = 0;
	struct mry_mime_stats mst;

	for (int r = 0; r < reps; r++) {
		double t0 = now_s();

		for (int l = 0; l < loops; l++)
			hits_ms = run_mime_scan(sc, mc, g);
		best_ms = MRY_MIN(best_ms, (now_s() - t0) / loops);
	}
	mry_mime_get_stats(mc, &mst);
	printf("raw messages in, moray MIME parse + decode + scan (raw + headers + parts):\n");
	printf("  moray mime+scan   %8.2f ms %8.1f MB/s of messages  %zu messages matched, "
	       "%.1f parts per message\n",
	       best_ms * 1e3, (double)bytes_raw / best_ms / 1e6, hits_ms,
	       mst.messages > 0 ? (double)mst.parts / (double)mst.messages : 0.0);
	printf("result moray_full_s=%.6f stream_full_s=%.6f block_full_s=%.6f mime_scan_s=%.6f "
	       "mime_scan_hits=%zu raw_bytes=%zu\n",
	       last[0], last[1], last[2], best_ms, hits_ms, bytes_raw);
	mry_mime_ctx_destroy(mc);
	mry_scanner_destroy(sc);
	mry_sigdb_gen_unref(g);
	mry_sigsrc_destroy(src);
	free(img);
	return 0;
}
