/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/tcp_reasm.h"

#define SINK_MAX 8192

/* what the consumer received, checked for contiguity */
struct sink {
	uint8_t buf[SINK_MAX];
	uint64_t n;
	unsigned calls;
	unsigned bad_off;
	const uint8_t *last_ptr;
};

static void to_sink(void *ctx, struct mry_tcp_stream *s, const uint8_t *data,
		    uint32_t len, uint64_t off)
{
	struct sink *k = ctx;

	(void)s;
	if (off != k->n)
		k->bad_off++;
	if (k->n + len <= SINK_MAX)
		memcpy(k->buf + k->n, data, len);
	k->n += len;
	k->calls++;
	k->last_ptr = data;
}

static uint8_t src[SINK_MAX];
static struct mry_reasm *R;
static struct mry_tcp_stream S;
static struct sink K;

static void setup_cfg(const struct mry_reasm_config *c)
{
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)('A' + (i * 7 + i / 26) % 26);
	R = mry_reasm_create(mry_alloc_default(), c);
	cr_assert_not_null(R);
	mry_tcp_stream_init(&S);
	memset(&K, 0, sizeof(K));
}

static void setup(void)
{
	struct mry_reasm_config c = { .seg_pool_count = 512, .seg_size = 256 };

	setup_cfg(&c);
}

/* every test ends with the pool full again: nothing leaks */
static void teardown(void)
{
	struct mry_pool_stats ps;
	struct mry_reasm_stats st;

	mry_tcp_stream_release(R, &S);
	mry_pool_get_stats(mry_reasm_pool(R), &ps);
	mry_reasm_get_stats(R, &st);
	cr_assert(eq(u32, ps.in_use, 0));
	cr_assert(eq(u64, st.bytes_buffered, 0));
	cr_assert(eq(u32, S.ooo_bytes, 0));
	cr_assert(eq(u16, S.nb_ooo, 0));
	mry_reasm_destroy(R);
}

TestSuite(tcp_reasm, .init = setup, .fini = teardown);

#define ISN 1000u

static struct mry_pkt mk(uint32_t seq, uint8_t flags, const uint8_t *data,
			 uint32_t len)
{
	struct mry_pkt p;

	memset(&p, 0, sizeof(p));
	p.ip_version = 4;
	p.seq = seq;
	p.tcp_flags = flags;
	p.payload = data;
	p.payload_len = len;
	return p;
}

static enum mry_reasm_result seg_flags(uint32_t isn, uint64_t off, uint32_t len,
				       uint8_t flags)
{
	struct mry_pkt p = mk(isn + 1 + (uint32_t)off, flags, src + off, len);

	return mry_reasm_segment(R, &S, &p, to_sink, &K, NULL);
}

/* data segment carrying src[off, off + len) */
static enum mry_reasm_result seg(uint64_t off, uint32_t len)
{
	return seg_flags(ISN, off, len, MRY_TCP_ACK);
}

/* same range, other bytes */
static enum mry_reasm_result seg_bytes(uint64_t off, const char *bytes)
{
	struct mry_pkt p = mk(ISN + 1 + (uint32_t)off, MRY_TCP_ACK,
			      (const uint8_t *)bytes, (uint32_t)strlen(bytes));

	return mry_reasm_segment(R, &S, &p, to_sink, &K, NULL);
}

static void syn(uint32_t isn)
{
	struct mry_pkt p = mk(isn, MRY_TCP_SYN, NULL, 0);

	cr_assert(eq(int, mry_reasm_segment(R, &S, &p, to_sink, &K, NULL),
		     MRY_REASM_EMPTY));
}

static void assert_stream(uint64_t n)
{
	cr_assert(eq(u64, K.n, n));
	cr_assert(eq(u32, K.bad_off, 0));
	cr_assert(eq(u64, mry_tcp_stream_delivered(&S), n));
	cr_assert(eq(int, memcmp(K.buf, src, n), 0), "delivered bytes differ");
}

static struct mry_reasm_stats stats(void)
{
	struct mry_reasm_stats st;

	mry_reasm_get_stats(R, &st);
	return st;
}

Test(tcp_reasm, syn_sets_isn_and_in_order_data_is_delivered_zero_copy)
{
	struct mry_pkt p = mk(ISN + 1, MRY_TCP_ACK | MRY_TCP_PSH, src, 100);
	struct mry_reasm_seg_info info;

	syn(ISN);
	cr_assert(eq(u32, S.base_seq, ISN + 1));
	cr_assert(eq(u8, S.flags & (MRY_STREAM_SYN_SEEN | MRY_STREAM_STARTED),
		     MRY_STREAM_SYN_SEEN | MRY_STREAM_STARTED));
	cr_assert(eq(int, mry_reasm_segment(R, &S, &p, to_sink, &K, &info),
		     MRY_REASM_IN_ORDER));
	cr_assert(eq(u64, (uintptr_t)K.last_ptr, (uintptr_t)src));   /* not copied */
	cr_assert(eq(u64, info.off, 0));
	cr_assert(eq(u32, info.len, 100));
	cr_assert(eq(int, info.result, MRY_REASM_IN_ORDER));
	cr_assert(eq(int, seg(100, 50), MRY_REASM_IN_ORDER));
	assert_stream(150);
	cr_assert(eq(u64, stats().in_order, 2));
	cr_assert(eq(u64, stats().bytes_delivered, 150));
}

Test(tcp_reasm, every_order_of_four_segments_gives_the_same_stream)
{
	static const uint32_t off[4] = { 0, 100, 250, 300 };
	static const uint32_t len[4] = { 100, 150, 50, 200 };
	int count = 0;

	/* every 4-digit base-4 code whose digits are distinct: 24 orders */
	for (int code = 0; code < 256; code++) {
		int perm[4], seen = 0;

		for (int k = 0; k < 4; k++) {
			perm[k] = (code >> (2 * k)) & 3;
			seen |= 1 << perm[k];
		}
		if (seen != 0xf)
			continue;
		mry_tcp_stream_release(R, &S);
		mry_tcp_stream_init(&S);
		memset(&K, 0, sizeof(K));
		syn(ISN);
		for (int k = 0; k < 4; k++) {
			/* in order exactly when it starts at the delivered edge */
			int want = off[perm[k]] == mry_tcp_stream_delivered(&S) ?
				   MRY_REASM_IN_ORDER : MRY_REASM_OUT_OF_ORDER;

			cr_assert(eq(int, seg(off[perm[k]], len[perm[k]]), want),
				  "code %d step %d", code, k);
		}
		assert_stream(500);
		cr_assert(eq(u16, S.nb_ooo, 0));
		count++;
	}
	cr_assert(eq(int, count, 24));
	cr_assert(eq(u64, stats().overlap_conflict, 0));
}

Test(tcp_reasm, one_byte_segments_in_reverse_order)
{
	syn(ISN);
	for (int i = 199; i >= 1; i--)
		cr_assert(eq(int, seg((uint64_t)i, 1), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(u64, K.n, 0));
	cr_assert(eq(u16, S.nb_ooo, 199));
	cr_assert(eq(int, seg(0, 1), MRY_REASM_IN_ORDER));
	assert_stream(200);
	cr_assert(eq(u64, stats().out_of_order, 199));
}

Test(tcp_reasm, duplicate_of_delivered_segment_is_a_retransmit)
{
	syn(ISN);
	seg(0, 100);
	cr_assert(eq(int, seg(0, 100), MRY_REASM_RETRANSMIT));
	cr_assert(eq(int, seg(20, 30), MRY_REASM_RETRANSMIT));
	/* duplicate SYN: nothing changes */
	syn(ISN);
	assert_stream(100);
	cr_assert(eq(u64, stats().retransmit, 2));
	cr_assert(eq(u64, stats().syn_mismatch, 0));
}

Test(tcp_reasm, duplicate_of_buffered_segment_is_absorbed)
{
	syn(ISN);
	cr_assert(eq(int, seg(100, 50), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(int, seg(100, 50), MRY_REASM_RETRANSMIT));
	cr_assert(eq(int, seg(110, 20), MRY_REASM_RETRANSMIT));
	cr_assert(eq(u32, S.ooo_bytes, 50));
	cr_assert(eq(u64, stats().overlap_same, 2));
	seg(0, 100);
	assert_stream(150);
}

Test(tcp_reasm, same_bytes_partial_overlaps_keep_only_the_new_part)
{
	syn(ISN);
	seg(100, 50);
	/* overlaps the front and the back of what is buffered */
	cr_assert(eq(int, seg(80, 40), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(int, seg(140, 30), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(u32, S.ooo_bytes, 90));
	cr_assert(eq(int, seg(60, 130), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(u32, S.ooo_bytes, 130));
	cr_assert(eq(u64, stats().overlap_same, 3));
	/* in-order segment covering part of the buffer */
	cr_assert(eq(int, seg(0, 70), MRY_REASM_IN_ORDER));
	assert_stream(190);
	cr_assert(eq(u64, stats().overlap_conflict, 0));
	cr_assert(eq(u8, S.flags & MRY_STREAM_CONFLICT, 0));
}

Test(tcp_reasm, conflicting_overlap_keeps_first_copy_by_default)
{
	syn(ISN);
	seg(10, 10);
	cr_assert(eq(int, seg_bytes(12, "xyz"), MRY_REASM_CONFLICT));
	cr_assert(eq(u8, S.flags & MRY_STREAM_CONFLICT, MRY_STREAM_CONFLICT));
	cr_assert(eq(u64, stats().overlap_conflict, 1));
	seg(0, 10);
	assert_stream(20);   /* the original bytes */
}

Test(tcp_reasm, in_order_segment_conflicting_with_buffer_delivers_first_copy)
{
	syn(ISN);
	seg(5, 5);           /* src[5..10) buffered first */
	cr_assert(eq(int, seg_bytes(0, "0123456789ab"), MRY_REASM_CONFLICT));
	cr_assert(eq(u64, K.n, 12));
	cr_assert(eq(u32, K.bad_off, 0));
	cr_assert(eq(int, memcmp(K.buf, "01234", 5), 0));
	cr_assert(eq(int, memcmp(K.buf + 5, src + 5, 5), 0));
	cr_assert(eq(int, memcmp(K.buf + 10, "ab", 2), 0));
	cr_assert(eq(u64, stats().overlap_conflict, 1));
}

Test(tcp_reasm, last_policy_replaces_buffered_bytes)
{
	struct mry_reasm_config c = { .seg_pool_count = 64, .seg_size = 256,
				      .policy = MRY_REASM_OVERLAP_LAST };

	mry_reasm_destroy(R);
	setup_cfg(&c);
	syn(ISN);
	seg(10, 10);
	cr_assert(eq(int, seg_bytes(12, "xyz"), MRY_REASM_CONFLICT));
	cr_assert(eq(u8, S.flags & MRY_STREAM_CONFLICT, MRY_STREAM_CONFLICT));
	seg(0, 10);
	cr_assert(eq(u64, K.n, 20));
	cr_assert(eq(int, memcmp(K.buf, src, 12), 0));
	cr_assert(eq(int, memcmp(K.buf + 12, "xyz", 3), 0));
	cr_assert(eq(int, memcmp(K.buf + 15, src + 15, 5), 0));
}

Test(tcp_reasm, last_policy_delivers_in_order_copy_over_buffer)
{
	struct mry_reasm_config c = { .seg_pool_count = 64, .seg_size = 256,
				      .policy = MRY_REASM_OVERLAP_LAST };

	mry_reasm_destroy(R);
	setup_cfg(&c);
	syn(ISN);
	seg(5, 10);
	cr_assert(eq(int, seg_bytes(0, "0123456789"), MRY_REASM_CONFLICT));
	cr_assert(eq(u64, K.n, 15));
	cr_assert(eq(int, memcmp(K.buf, "0123456789", 10), 0));
	cr_assert(eq(int, memcmp(K.buf + 10, src + 10, 5), 0));
}

Test(tcp_reasm, segment_straddling_delivered_edge_delivers_only_new_part)
{
	struct mry_reasm_seg_info info;
	struct mry_pkt p;

	syn(ISN);
	seg(0, 100);
	p = mk(ISN + 1 + 50, MRY_TCP_ACK, src + 50, 100);
	cr_assert(eq(int, mry_reasm_segment(R, &S, &p, to_sink, &K, &info),
		     MRY_REASM_IN_ORDER));
	cr_assert(eq(u64, info.off, 50));
	cr_assert(eq(u32, K.calls, 2));
	assert_stream(150);
	cr_assert(eq(u64, stats().overlap_delivered, 1));
}

Test(tcp_reasm, sequence_wrap_is_invisible_to_the_consumer)
{
	const uint32_t isn = 0xffffff00u;
	static const uint32_t off[] = { 300, 0, 200, 100 };

	syn(isn);
	for (int i = 0; i < 4; i++)
		seg_flags(isn, off[i], 100, MRY_TCP_ACK);
	cr_assert(eq(u64, K.n, 400));
	cr_assert(eq(int, memcmp(K.buf, src, 400), 0));
	cr_assert(eq(u64, mry_tcp_stream_delivered(&S), 400));
	cr_assert(eq(u32, S.next_seq, isn + 401));
	/* a sequence past the wrap maps to its offset */
	cr_assert(eq(u64, mry_tcp_stream_offset(&S, 0x10), 0x10 + 0x100 - 1));
	cr_assert(eq(u64, mry_tcp_stream_offset(&S, isn + 1), 0));
}

static uint64_t big_n;
static unsigned big_bad;

static void count_only(void *ctx, struct mry_tcp_stream *s, const uint8_t *data,
		       uint32_t len, uint64_t off)
{
	(void)ctx;
	(void)s;
	(void)data;
	if (off != big_n)
		big_bad++;
	big_n += len;
}

Test(tcp_reasm, stream_longer_than_4_gib_keeps_64_bit_offsets, .timeout = 60)
{
	static uint8_t chunk[65536];
	const uint64_t total = (1ULL << 32) + 3 * 65536;
	uint32_t seq = 0x80000000u;
	struct mry_pkt p;

	p = mk(seq - 1, MRY_TCP_SYN, NULL, 0);
	mry_reasm_segment(R, &S, &p, count_only, NULL, NULL);
	for (uint64_t done = 0; done < total; done += sizeof(chunk)) {
		p = mk(seq, MRY_TCP_ACK, chunk, sizeof(chunk));
		cr_assert(eq(int, mry_reasm_segment(R, &S, &p, count_only, NULL, NULL),
			     MRY_REASM_IN_ORDER));
		seq += sizeof(chunk);
	}
	cr_assert(eq(u64, big_n, total));
	cr_assert(eq(u32, big_bad, 0));
	cr_assert(eq(u64, mry_tcp_stream_delivered(&S), total));
	cr_assert(eq(u32, S.wrap_hi, 1));
	cr_assert(eq(u64, mry_tcp_stream_offset(&S, seq), total));
	cr_assert(eq(u64, mry_tcp_stream_offset(&S, seq + 10), total + 10));
	/* an old retransmission is recognised as such after the wrap */
	p = mk(seq - 100, MRY_TCP_ACK, chunk, 50);
	cr_assert(eq(int, mry_reasm_segment(R, &S, &p, count_only, NULL, NULL),
		     MRY_REASM_RETRANSMIT));
}

Test(tcp_reasm, data_after_fin_is_counted_not_delivered)
{
	syn(ISN);
	cr_assert(eq(int, seg_flags(ISN, 0, 10, MRY_TCP_ACK | MRY_TCP_FIN),
		     MRY_REASM_IN_ORDER));
	cr_assert(eq(u8, S.flags & (MRY_STREAM_FIN_SEEN | MRY_STREAM_FIN_DONE),
		     MRY_STREAM_FIN_SEEN | MRY_STREAM_FIN_DONE));
	cr_assert(eq(int, seg(10, 5), MRY_REASM_AFTER_CLOSE));
	cr_assert(eq(int, seg(20, 5), MRY_REASM_AFTER_CLOSE));
	/* a retransmission of bytes before the FIN is still a retransmission */
	cr_assert(eq(int, seg(0, 10), MRY_REASM_RETRANSMIT));
	assert_stream(10);
	cr_assert(eq(u64, stats().after_close, 2));
}

Test(tcp_reasm, data_after_rst_is_counted_not_delivered)
{
	syn(ISN);
	seg(0, 10);
	cr_assert(eq(int, seg_flags(ISN, 10, 0, MRY_TCP_RST), MRY_REASM_EMPTY));
	cr_assert(eq(u8, S.flags & MRY_STREAM_RST, MRY_STREAM_RST));
	cr_assert(eq(int, seg(10, 5), MRY_REASM_AFTER_CLOSE));
	assert_stream(10);
	cr_assert(eq(u64, stats().after_close, 1));
}

Test(tcp_reasm, fin_out_of_order_is_done_once_the_gap_fills)
{
	syn(ISN);
	seg(0, 10);
	cr_assert(eq(int, seg_flags(ISN, 20, 10, MRY_TCP_ACK | MRY_TCP_FIN),
		     MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(u8, S.flags & MRY_STREAM_FIN_SEEN, MRY_STREAM_FIN_SEEN));
	cr_assert(eq(u8, S.flags & MRY_STREAM_FIN_DONE, 0));
	cr_assert(eq(int, seg(10, 10), MRY_REASM_IN_ORDER));
	cr_assert(eq(u8, S.flags & MRY_STREAM_FIN_DONE, MRY_STREAM_FIN_DONE));
	assert_stream(30);
}

Test(tcp_reasm, bare_fin_before_missing_data_and_buffered_bytes_past_it)
{
	syn(ISN);
	seg(50, 10);         /* buffered, but lies past the FIN below */
	cr_assert(eq(int, seg_flags(ISN, 20, 0, MRY_TCP_ACK | MRY_TCP_FIN),
		     MRY_REASM_EMPTY));
	cr_assert(eq(u32, S.ooo_bytes, 0));
	cr_assert(eq(int, seg(0, 30), MRY_REASM_IN_ORDER));   /* cut at the FIN */
	cr_assert(eq(u8, S.flags & MRY_STREAM_FIN_DONE, MRY_STREAM_FIN_DONE));
	assert_stream(20);
	cr_assert(eq(u64, stats().after_close, 2));
	/* a second FIN elsewhere is ignored and counted */
	seg_flags(ISN, 25, 0, MRY_TCP_ACK | MRY_TCP_FIN);
	cr_assert(eq(u64, stats().fin_mismatch, 1));
	cr_assert(eq(u32, S.fin_seq, ISN + 21));
}

Test(tcp_reasm, per_stream_byte_cap_refuses_the_segment)
{
	struct mry_reasm_config c = { .seg_pool_count = 64, .seg_size = 64,
				      .max_ooo_bytes = 100, .max_ooo_segs = 8 };

	mry_reasm_destroy(R);
	setup_cfg(&c);
	syn(ISN);
	cr_assert(eq(int, seg(10, 60), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(int, seg(100, 60), MRY_REASM_OOO_FULL));
	cr_assert(eq(u32, S.ooo_bytes, 60));
	cr_assert(eq(u64, stats().ooo_stream_cap, 1));
	cr_assert(eq(int, seg(100, 40), MRY_REASM_OUT_OF_ORDER));
	seg(0, 10);
	assert_stream(70);
	cr_assert(eq(u32, S.ooo_bytes, 40));
}

Test(tcp_reasm, per_stream_segment_cap_refuses_the_segment)
{
	struct mry_reasm_config c = { .seg_pool_count = 64, .seg_size = 64,
				      .max_ooo_segs = 3 };

	mry_reasm_destroy(R);
	setup_cfg(&c);
	syn(ISN);
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, seg((uint64_t)(10 + 2 * i), 1), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(int, seg(30, 1), MRY_REASM_OOO_FULL));
	/* one segment longer than a buffer needs several */
	mry_tcp_stream_release(R, &S);
	cr_assert(eq(int, seg(10, 130), MRY_REASM_OUT_OF_ORDER));
	cr_assert(eq(u16, S.nb_ooo, 3));
	cr_assert(eq(int, seg(200, 1), MRY_REASM_OOO_FULL));
	cr_assert(eq(u64, stats().ooo_stream_cap, 2));
	seg(0, 10);
	assert_stream(140);
}

Test(tcp_reasm, empty_pool_is_counted_and_stream_recovers)
{
	syn(ISN);
	mry_pool_debug_fail_every(mry_reasm_pool(R), 1);
	cr_assert(eq(int, seg(10, 10), MRY_REASM_OOO_FULL));
	cr_assert(eq(u64, stats().ooo_pool_empty, 1));
	cr_assert(eq(u16, S.nb_ooo, 0));
	mry_pool_debug_fail_every(mry_reasm_pool(R), 0);
	/* in order needs no buffer; the sender retransmits the rest */
	seg(0, 10);
	seg(10, 10);
	assert_stream(20);
}

Test(tcp_reasm, pool_empty_midway_keeps_what_was_copied)
{
	syn(ISN);
	/* 600 bytes need 3 buffers of 256: the second get fails */
	mry_pool_debug_fail_every(mry_reasm_pool(R), 2);
	cr_assert(eq(int, seg(100, 600), MRY_REASM_OOO_FULL));
	mry_pool_debug_fail_every(mry_reasm_pool(R), 0);
	cr_assert(eq(u32, S.ooo_bytes, 256));
	cr_assert(eq(int, seg(100, 600), MRY_REASM_OUT_OF_ORDER));
	seg(0, 100);
	assert_stream(700);
}

Test(tcp_reasm, midstream_pickup_takes_base_from_first_data)
{
	struct mry_pkt ack = mk(5000, MRY_TCP_ACK, NULL, 0);

	cr_assert(eq(int, mry_reasm_segment(R, &S, &ack, to_sink, &K, NULL),
		     MRY_REASM_NOT_STARTED));
	cr_assert(eq(u8, S.flags & MRY_STREAM_STARTED, 0));
	/* data at ISN+1+100 in the generic helper: base becomes that sequence */
	cr_assert(eq(int, seg(100, 50), MRY_REASM_IN_ORDER));
	cr_assert(eq(u8, S.flags & (MRY_STREAM_MIDSTREAM | MRY_STREAM_SYN_SEEN),
		     MRY_STREAM_MIDSTREAM));
	cr_assert(eq(u64, K.n, 50));
	cr_assert(eq(int, memcmp(K.buf, src + 100, 50), 0));
	cr_assert(eq(u64, mry_tcp_stream_offset(&S, ISN + 1 + 100), 0));
	/* bytes before the pickup point are treated as old */
	cr_assert(eq(int, seg(90, 10), MRY_REASM_RETRANSMIT));
}

Test(tcp_reasm, syn_ack_with_other_isn_is_ignored_and_counted)
{
	syn(ISN);
	syn(ISN + 5000);
	cr_assert(eq(u32, S.base_seq, ISN + 1));
	cr_assert(eq(u64, stats().syn_mismatch, 1));
	seg(0, 10);
	assert_stream(10);
}

Test(tcp_reasm, data_on_syn_is_offset_zero)
{
	struct mry_pkt p = mk(ISN, MRY_TCP_SYN, src, 20);

	cr_assert(eq(int, mry_reasm_segment(R, &S, &p, to_sink, &K, NULL),
		     MRY_REASM_IN_ORDER));
	seg(20, 5);
	assert_stream(25);
}

Test(tcp_reasm, reaches_tells_whether_a_packet_carries_bytes_at_or_past_offset)
{
	struct mry_pkt p;

	syn(ISN);
	seg(0, 100);
	p = mk(ISN + 1 + 50, MRY_TCP_ACK, src, 30);        /* bytes 50..79 */
	cr_assert(mry_tcp_stream_reaches(&S, &p, 79));
	cr_assert_not(mry_tcp_stream_reaches(&S, &p, 80));
	p = mk(ISN + 1 + 80, MRY_TCP_ACK | MRY_TCP_FIN, NULL, 0);   /* FIN at 80 */
	cr_assert(mry_tcp_stream_reaches(&S, &p, 80));
	cr_assert_not(mry_tcp_stream_reaches(&S, &p, 81));
	p = mk(ISN + 1 + 200, MRY_TCP_ACK, NULL, 0);                /* pure ACK */
	cr_assert_not(mry_tcp_stream_reaches(&S, &p, 0));
	p = mk(ISN + 1 + 90, MRY_TCP_ACK, src, 100);                /* ahead */
	cr_assert(mry_tcp_stream_reaches(&S, &p, 150));
	cr_assert(mry_tcp_stream_reaches(&S, &p, 189));
	cr_assert_not(mry_tcp_stream_reaches(&S, &p, 190));
}

Test(tcp_reasm, reaches_is_wrap_safe)
{
	const uint32_t isn = 0xfffffff0u;
	struct mry_pkt p;

	syn(isn);
	seg_flags(isn, 0, 10, MRY_TCP_ACK);
	p = mk(isn + 1 + 20, MRY_TCP_ACK, src, 10);   /* seq wrapped past 0 */
	cr_assert(lt(u32, p.seq, isn));
	cr_assert(mry_tcp_stream_reaches(&S, &p, 29));
	cr_assert_not(mry_tcp_stream_reaches(&S, &p, 30));
}

Test(tcp_reasm, release_returns_buffers_to_the_pool)
{
	struct mry_pool_stats ps;

	syn(ISN);
	seg(10, 300);
	seg(1000, 10);
	mry_pool_get_stats(mry_reasm_pool(R), &ps);
	cr_assert(eq(u32, ps.in_use, 3));
	cr_assert(eq(u64, stats().bytes_buffered, 310));
	mry_tcp_stream_release(R, &S);
	mry_pool_get_stats(mry_reasm_pool(R), &ps);
	cr_assert(eq(u32, ps.in_use, 0));
	cr_assert(eq(u64, stats().bytes_buffered, 0));
}

Test(tcp_reasm, random_orders_and_overlaps_reassemble_exactly)
{
	uint32_t rnd = 99;

	for (int round = 0; round < 200; round++) {
		uint64_t total = 2000;
		uint32_t isn;

		mry_tcp_stream_release(R, &S);
		mry_tcp_stream_init(&S);
		memset(&K, 0, sizeof(K));
		rnd = rnd * 1103515245u + 12345u;
		isn = rnd;          /* wraps in some rounds */
		syn(isn);
		for (int n = 0; n < 400 && K.n < total; n++) {
			uint64_t off;
			uint32_t len;

			rnd = rnd * 1103515245u + 12345u;
			off = (rnd >> 4) % total;
			rnd = rnd * 1103515245u + 12345u;
			len = 1 + (rnd >> 4) % 300;
			if (off + len > total)
				len = (uint32_t)(total - off);
			seg_flags(isn, off, len, MRY_TCP_ACK);
		}
		seg_flags(isn, 0, (uint32_t)total, MRY_TCP_ACK);
		assert_stream(total);
	}
	cr_assert(eq(u64, stats().overlap_conflict, 0));
}
