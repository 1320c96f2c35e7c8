/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the MIME parser and its decoders. The first input
 * byte picks the chunk size and a small config (depth, line and header
 * caps) so limits are crossed often; the rest is the message. Callbacks
 * check what the API promises: part_data only between part_begin and
 * part_end, content_type lower case, bytes within the caps. The decoders
 * are also run stand-alone against their output bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/mime.h"

struct fstate {
	bool open;
	uint64_t part_bytes;
	uint64_t msg_bytes;
	uint64_t max_part;
};

static void f_begin(void *user, const struct mry_mime_part_info *pi)
{
	struct fstate *s = user;
	const char *p;

	if (s->open)
		abort();
	for (p = pi->content_type; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			abort();
	s->open = true;
	s->part_bytes = 0;
}

static void f_data(void *user, const uint8_t *d, size_t n)
{
	struct fstate *s = user;
	volatile uint8_t sink = 0;
	size_t i;

	if (!s->open || n == 0)
		abort();
	for (i = 0; i < n; i++)
		sink ^= d[i];       /* ASan: the bytes are readable */
	(void)sink;
	s->part_bytes += n;
	s->msg_bytes += n;
	if (s->part_bytes > s->max_part)
		abort();
}

static void f_end(void *user, const struct mry_mime_part_info *pi)
{
	struct fstate *s = user;

	(void)pi;
	if (!s->open)
		abort();
	s->open = false;
}

static void f_header(void *user, uint32_t idx, const uint8_t *d, size_t n)
{
	(void)user;
	(void)idx;
	if (n > 0 && d == NULL)
		abort();
}

static void decoders(const uint8_t *data, size_t size)
{
	uint8_t *out = malloc(MRY_UU_DEC_BOUND(size) + MRY_QP_DEC_BOUND(size) + 128);
	struct mry_b64_dec b;
	struct mry_qp_dec q;
	struct mry_uu_dec u;
	size_t half = size / 2, n;

	if (out == NULL)
		return;
	mry_b64_init(&b);
	n = mry_b64_decode(&b, data, half, out);
	n += mry_b64_decode(&b, data + half, size - half, out + n);
	n += mry_b64_finish(&b, out + n);
	if (n > MRY_B64_DEC_BOUND(size) + 3)
		abort();
	if (mry_cpu_avx2()) {
		/* the AVX2 kernel and the baseline code agree on every input */
		uint8_t *ref = malloc(MRY_B64_DEC_BOUND(size) + 8);
		struct mry_b64_dec r;
		size_t m;

		if (ref != NULL) {
			mry_cpu_force_baseline(true);
			mry_b64_init(&r);
			m = mry_b64_decode(&r, data, size, ref);
			m += mry_b64_finish(&r, ref + m);
			mry_cpu_force_baseline(false);
			if (m != n || memcmp(ref, out, n) != 0 || r.invalid != b.invalid ||
			    r.bad_padding != b.bad_padding || r.unpadded != b.unpadded)
				abort();
			free(ref);
		}
	}
	mry_qp_init(&q);
	n = mry_qp_decode(&q, data, size, out);
	n += mry_qp_finish(&q, out + n);
	if (n > MRY_QP_DEC_BOUND(size))
		abort();
	mry_uu_init(&u, size > 0 && (data[0] & 1));
	n = mry_uu_decode(&u, data, size, out);
	n += mry_uu_finish(&u, out + n);
	if (n > MRY_UU_DEC_BOUND(size) + 64)
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mry_mime_callbacks cb = {
		.header_data = f_header,
		.part_begin = f_begin,
		.part_data = f_data,
		.part_end = f_end,
	};
	struct mry_mime_config cfg = { .pool_count = 1 };
	struct mry_mime_ctx *c;
	struct mry_mime *m;
	struct fstate s = { 0 };
	size_t chunk, off = 0;
	uint8_t sel;

	if (size < 1)
		return 0;
	sel = data[0];
	data++;
	size--;
	chunk = 1 + (sel & 0x1f) * 7;
	if (sel & 0x20) {
		cfg.max_depth = 3;
		cfg.max_line = 64;          /* raised to the minimum by the parser */
		cfg.max_header_bytes = 200;
		cfg.max_parts = 8;
		cfg.max_part_bytes = 300;
		cfg.max_msg_bytes = 500;
	}
	c = mry_mime_ctx_create(mry_alloc_default(), &cfg, &cb);
	if (c == NULL)
		return 0;
	s.max_part = cfg.max_part_bytes ? cfg.max_part_bytes : (64ULL << 20);
	m = mry_mime_begin(c, &s);
	while (off < size) {
		size_t n = chunk < size - off ? chunk : size - off;

		mry_mime_feed(m, data + off, n);
		off += n;
	}
	if (sel & 0x40)
		mry_mime_abort(m);
	else
		mry_mime_end(m);
	if (!(sel & 0x40) && s.open)
		abort();
	if (cfg.max_msg_bytes && s.msg_bytes > cfg.max_msg_bytes)
		abort();
	mry_mime_ctx_destroy(c);
	decoders(data, size);
	return 0;
}
