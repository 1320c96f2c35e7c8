/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * MIME parser throughput on a mail corpus. Every file is loaded once, then
 * the whole corpus is decoded N times, fed in TCP-segment-sized chunks
 * (1448 bytes), and copied N times with memcpy in the same run; the result
 * is the parser's MB/s as a ratio to memcpy's, so it compares across
 * machines (STYLE.md §11).
 *
 * usage: mime_bench [-n N] [-c chunk] [paths...]
 *        paths: corpus directories or files (bench/mime/run.sh passes
 *        tests/data/mail and tests/data/samples)
 * Output (last line, parsed by run.sh):
 *   bytes=<corpus bytes> mime_mbps=<x> memcpy_mbps=<y> ratio=<x/y>
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moray/mime.h"

struct file {
	uint8_t *data;
	size_t len;
};

static struct file *files;
static size_t nfiles, cap_files, total;

static int add_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	FILE *f;

	(void)ftw;
	if (type != FTW_F || sb->st_size <= 0)
		return 0;
	/* the samples directory also holds pcaps and json: mail only */
	if (strstr(path, "/samples/") != NULL && strstr(path, ".eml") == NULL)
		return 0;
	if (nfiles == cap_files) {
		cap_files = cap_files ? cap_files * 2 : 256;
		files = realloc(files, cap_files * sizeof(*files));
		if (files == NULL)
			abort();
	}
	f = fopen(path, "rb");
	if (f == NULL)
		return 0;
	files[nfiles].data = malloc((size_t)sb->st_size);
	if (files[nfiles].data == NULL)
		abort();
	files[nfiles].len = fread(files[nfiles].data, 1, (size_t)sb->st_size, f);
	fclose(f);
	total += files[nfiles].len;
	nfiles++;
	return 0;
}

static uint64_t sink;

static void b_data(void *user, const uint8_t *d, size_t n)
{
	(void)user;
	sink += n + d[n - 1];
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	static const struct mry_mime_callbacks cb = { .part_data = b_data };
	struct mry_mime_config cfg = { .pool_count = 4 };
	struct mry_mime_ctx *c;
	size_t chunk = 1448, i, f;
	unsigned n = 50, it;
	int a = 1;
	double t0, t_mime, t_copy;
	uint8_t *dst;
	struct mry_mime_stats st;

	for (; a < argc && argv[a][0] == '-'; a++) {
		if (strcmp(argv[a], "-n") == 0 && a + 1 < argc)
			n = (unsigned)atoi(argv[++a]);
		else if (strcmp(argv[a], "-c") == 0 && a + 1 < argc)
			chunk = (size_t)atol(argv[++a]);
	}
	for (; a < argc; a++)
		nftw(argv[a], add_file, 16, FTW_PHYS);
	if (total == 0 || chunk == 0) {
		fprintf(stderr, "no input\n");
		return 1;
	}
	c = mry_mime_ctx_create(mry_alloc_default(), &cfg, &cb);
	dst = malloc(total);
	if (c == NULL || dst == NULL)
		return 1;

	/* warm up both */
	memcpy(dst, files[0].data, files[0].len);
	t0 = now();
	for (it = 0; it < n; it++) {
		for (f = 0; f < nfiles; f++) {
			struct mry_mime *m = mry_mime_begin(c, NULL);

			for (i = 0; i < files[f].len; i += chunk)
				mry_mime_feed(m, files[f].data + i,
					      MRY_MIN(chunk, files[f].len - i));
			mry_mime_end(m);
		}
	}
	t_mime = now() - t0;
	t0 = now();
	for (it = 0; it < n; it++) {
		size_t off = 0;

		for (f = 0; f < nfiles; f++) {
			memcpy(dst + off, files[f].data, files[f].len);
			off += files[f].len;
		}
		__asm__ volatile("" : : "r"(dst) : "memory");
		sink += dst[it % total];
	}
	t_copy = now() - t0;
	mry_mime_get_stats(c, &st);
	printf("files=%zu iterations=%u chunk=%zu decoded=%llu parts=%llu sink=%llu\n",
	       nfiles, n, chunk, (unsigned long long)st.bytes_decoded,
	       (unsigned long long)st.parts, (unsigned long long)(sink & 0xff));
	printf("bytes=%zu mime_mbps=%.1f memcpy_mbps=%.1f ratio=%.4f\n", total,
	       (double)total * n / t_mime / 1e6, (double)total * n / t_copy / 1e6,
	       t_copy / t_mime);
	mry_mime_ctx_destroy(c);
	free(dst);
	return 0;
}
