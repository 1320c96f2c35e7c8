/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz TCP reassembly with hostile segment orders. The input is a header
 * (config byte, 32-bit ISN) then 5-byte records (offset u16, length u16,
 * flags u8) describing segments cut from a fixed pseudo-random byte source.
 * Flags: 1 FIN after the segment, 2 send different bytes (a conflict),
 * 4 RST, 8 set SYN (a duplicate or bogus SYN), 16 ask reaches().
 * Checks: delivered offsets are contiguous; caps hold; with no conflicting
 * bytes sent, the delivered stream is exactly a prefix of the source, and
 * after an in-order refill it is the whole source up to the FIN; releasing
 * the stream returns every buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/tcp_reasm.h"

#define SRC_LEN 8192u
#define MAX_OOO_BYTES 4096u
#define MAX_OOO_SEGS 32u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	uint8_t buf[SRC_LEN];
	uint64_t n;
};

static uint8_t src[SRC_LEN];
static uint8_t bad[SRC_LEN];

static void deliver(void *ctx, struct mry_tcp_stream *s, const uint8_t *p,
		    uint32_t len, uint64_t off)
{
	struct sink *k = ctx;

	(void)s;
	if (off != k->n || k->n + len > SRC_LEN)
		abort();
	memcpy(k->buf + k->n, p, len);
	k->n += len;
}

static void init_src(void)
{
	uint32_t x = 0x12345678u;

	if (src[0] != 0 || src[1] != 0)
		return;
	for (uint32_t i = 0; i < SRC_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		src[i] = (uint8_t)(x | 1);   /* never zero: src[0..1] mark init */
		bad[i] = (uint8_t)~src[i];
	}
}

/* Without conflicting bytes, what was delivered is the source from the base. */
static void check_prefix(const struct mry_tcp_stream *s, uint32_t isn,
			 const struct sink *k, bool conflict_sent)
{
	uint32_t base = s->base_seq - (isn + 1);

	if (!(s->flags & MRY_STREAM_STARTED)) {
		if (k->n != 0)
			abort();
		return;
	}
	if (base >= SRC_LEN || base + k->n > SRC_LEN)
		abort();
	if (k->n != mry_tcp_stream_delivered(s))
		abort();
	if (!conflict_sent && memcmp(k->buf, src + base, k->n) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t seg_sizes[4] = { 16, 64, 256, 2048 };
	struct mry_reasm_config cfg = { 0 };
	struct mry_tcp_stream s;
	struct mry_reasm_stats st;
	struct mry_pool_stats ps;
	struct mry_reasm *r;
	struct mry_pkt pkt;
	static struct sink k;
	bool conflict_sent = false, rst_sent = false;
	uint32_t isn;
	size_t i;

	if (size < 5)
		return 0;
	init_src();
	cfg.policy = (data[0] & 1) ? MRY_REASM_OVERLAP_LAST : MRY_REASM_OVERLAP_FIRST;
	cfg.seg_size = seg_sizes[(data[0] >> 1) & 3];
	cfg.seg_pool_count = 48;
	cfg.max_ooo_bytes = MAX_OOO_BYTES;
	cfg.max_ooo_segs = MAX_OOO_SEGS;
	memcpy(&isn, data + 1, 4);
	r = mry_reasm_create(mry_alloc_default(), &cfg);
	if (r == NULL)
		abort();
	mry_tcp_stream_init(&s);
	memset(&k, 0, sizeof(k));
	memset(&pkt, 0, sizeof(pkt));
	pkt.ip_version = 4;
	/* without a SYN in front, the first data segment starts the stream */
	if (data[0] & 8) {
		pkt.seq = isn;
		pkt.tcp_flags = MRY_TCP_SYN;
		mry_reasm_segment(r, &s, &pkt, deliver, &k, NULL);
	}
	for (i = 5; i + 5 <= size; i += 5) {
		uint16_t off, len;
		uint8_t fl = data[i + 4];
		struct mry_reasm_seg_info info;

		memcpy(&off, data + i, 2);
		memcpy(&len, data + i + 2, 2);
		off %= SRC_LEN;
		len %= 1500;
		if (off + len > SRC_LEN)
			len = (uint16_t)(SRC_LEN - off);
		pkt.seq = isn + 1 + off;
		pkt.tcp_flags = MRY_TCP_ACK;
		pkt.payload = (fl & 2) ? bad + off : src + off;
		pkt.payload_len = len;
		if (fl & 1)
			pkt.tcp_flags |= MRY_TCP_FIN;
		if (fl & 4)
			pkt.tcp_flags |= MRY_TCP_RST;
		if (fl & 8) {
			pkt.tcp_flags |= MRY_TCP_SYN;
			pkt.seq--;
		}
		if (fl & 16)
			(void)mry_tcp_stream_reaches(&s, &pkt, off);
		conflict_sent |= (fl & 2) && len > 0;
		rst_sent |= (fl & 4) != 0;
		mry_reasm_segment(r, &s, &pkt, deliver, &k, &info);
		if (info.len != len)
			abort();
		if (s.ooo_bytes > MAX_OOO_BYTES || s.nb_ooo > MAX_OOO_SEGS)
			abort();
		check_prefix(&s, isn, &k, conflict_sent);
	}
	/* in-order refill of the rest: the whole source up to the FIN */
	if ((s.flags & MRY_STREAM_STARTED) && !rst_sent) {
		uint32_t base = s.base_seq - (isn + 1);
		uint64_t want = SRC_LEN - base;

		if (s.flags & MRY_STREAM_FIN_SEEN)
			want = mry_tcp_stream_offset(&s, s.fin_seq);
		while (mry_tcp_stream_delivered(&s) < want) {
			uint64_t d = mry_tcp_stream_delivered(&s);
			uint32_t n = (uint32_t)(want - d < 1000 ? want - d : 1000);

			pkt.seq = s.base_seq + (uint32_t)d;
			pkt.tcp_flags = MRY_TCP_ACK;
			pkt.payload = src + base + d;
			pkt.payload_len = n;
			mry_reasm_segment(r, &s, &pkt, deliver, &k, NULL);
			if (mry_tcp_stream_delivered(&s) < d + n)
				abort();
		}
		if (k.n != want)
			abort();
		check_prefix(&s, isn, &k, conflict_sent);
		if ((s.flags & MRY_STREAM_FIN_SEEN) && !(s.flags & MRY_STREAM_FIN_DONE))
			abort();
	}
	mry_tcp_stream_release(r, &s);
	mry_pool_get_stats(mry_reasm_pool(r), &ps);
	mry_reasm_get_stats(r, &st);
	if (ps.in_use != 0 || st.bytes_buffered != 0 || s.ooo_bytes != 0 || s.nb_ooo != 0)
		abort();
	mry_reasm_destroy(r);
	return 0;
}
