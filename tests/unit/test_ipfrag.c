/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IP fragment reassembly: whole datagrams are built, cut into real fragment
 * frames, decoded with mry_decode_frame() and fed to the table; the result
 * must be byte-identical to the original and decode as TCP with checksums.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/decode.h"
#include "moray/ipfrag.h"
#include "pkt_build.h"

#define ALLF (MRY_DECODE_F_VERIFY_TCP_CSUM | MRY_DECODE_F_VERIFY_IP_CSUM)
#define DG_MAX 70000

static struct mry_ipfrag_table *tbl;
static struct mry_decode_stats dst;
static uint8_t orig[DG_MAX];      /* the datagram before fragmentation */
static uint32_t orig_len;
static uint8_t frame[DG_MAX];
static const uint8_t *out;
static uint32_t out_len;
static bool conflict;

static void mk_table(uint32_t max_dgrams, uint32_t max_bytes, uint32_t mem,
		     enum mry_ipfrag_policy pol)
{
	struct mry_ipfrag_config c = {
		.max_datagrams = max_dgrams,
		.max_bytes = max_bytes,
		.timeout_ns = 30 * MRY_NS_PER_SEC,
		.policy = pol,
		.mem_bytes = mem,
	};

	mry_ipfrag_destroy(tbl);
	tbl = mry_ipfrag_create(mry_alloc_default(), &c);
	cr_assert_not_null(tbl);
}

static void setup(void)
{
	memset(&dst, 0, sizeof(dst));
	tbl = NULL;
	mk_table(0, 0, 0, MRY_IPFRAG_OVERLAP_DROP);
}

static void teardown(void)
{
	mry_ipfrag_destroy(tbl);
	tbl = NULL;
}

TestSuite(ipfrag, .init = setup, .fini = teardown);

static struct mry_ipfrag_stats stats(void)
{
	struct mry_ipfrag_stats s;

	mry_ipfrag_get_stats(tbl, &s);
	return s;
}

/* a TCP datagram with @plen payload bytes of a recognisable pattern */
static void mk_dgram(unsigned ver, uint32_t plen, uint16_t id)
{
	static uint8_t pay[DG_MAX];
	struct pb_spec s = pb_default(ver);

	for (uint32_t i = 0; i < plen; i++)
		pay[i] = (uint8_t)(i * 7 + (i >> 8));
	s.payload = pay;
	s.payload_len = plen;
	s.v4_id = id;
	orig_len = pb_ip(orig, &s);
}

static uint32_t eth(uint8_t *f, uint16_t type)
{
	memset(f, 0, 12);
	f[0] = 2;
	f[6] = 2;
	pb_put16(f + 12, type);
	return 14;
}

/* IPv4 fragment of orig's data [off, off+len) */
static uint32_t frag4(uint32_t off, uint32_t len, bool more)
{
	uint32_t hl = (orig[0] & 15u) * 4, e = eth(frame, 0x0800);
	uint8_t *ip = frame + e;

	memcpy(ip, orig, hl);
	pb_put16(ip + 2, (uint16_t)(hl + len));
	pb_put16(ip + 6, (uint16_t)((orig[6] & 0x40) << 8 | (more ? 0x2000 : 0) | off / 8));
	pb_put16(ip + 10, 0);
	pb_put16(ip + 10, pb_fold(pb_sum(ip, hl, 0)));
	memcpy(ip + hl, orig + hl + off, len);
	return e + hl + len;
}

/*
 * IPv6 fragment: orig's first @unfrag bytes stay in front (the byte at
 * @nh_pos names the next header), then a fragment header, then the data.
 */
static uint32_t frag6x(uint32_t unfrag, uint32_t nh_pos, uint32_t off,
		       uint32_t len, bool more, uint32_t id)
{
	uint32_t e = eth(frame, 0x86dd);
	uint8_t *ip = frame + e;

	memcpy(ip, orig, unfrag);
	ip[nh_pos] = 44;
	ip[unfrag] = orig[nh_pos];
	ip[unfrag + 1] = 0;
	pb_put16(ip + unfrag + 2, (uint16_t)(off | (more ? 1 : 0)));
	pb_put32(ip + unfrag + 4, id);
	memcpy(ip + unfrag + 8, orig + unfrag + off, len);
	pb_put16(ip + 4, (uint16_t)(unfrag - 40 + 8 + len));
	return e + unfrag + 8 + len;
}

static uint32_t frag6(uint32_t off, uint32_t len, bool more)
{
	return frag6x(40, 6, off, len, more, 0x11223344);
}

static enum mry_ipfrag_result feed_at(uint32_t n, uint64_t now)
{
	struct mry_pkt p;

	cr_assert(eq(int, mry_decode_frame(frame, n, ALLF, &p, &dst),
		     MRY_DECODE_FRAGMENT));
	return mry_ipfrag_add(tbl, &p, now, &out, &out_len, &conflict);
}

static enum mry_ipfrag_result feed(uint32_t n)
{
	return feed_at(n, 1000);
}

static uint32_t data_len(void)
{
	return orig[0] >> 4 == 4 ? orig_len - (orig[0] & 15u) * 4 : orig_len - 40;
}

/* the reassembled datagram is the original, and decodes as TCP */
static void assert_rebuilt(uint32_t payload_len)
{
	struct mry_pkt p;

	cr_assert_not_null(out);
	cr_assert(eq(u32, out_len, orig_len));
	cr_assert(eq(int, memcmp(out, orig, orig_len), 0));
	cr_assert(eq(int, mry_decode_ip(out, out_len, ALLF, &p, &dst), MRY_DECODE_TCP));
	cr_assert(eq(u32, p.payload_len, payload_len));
	cr_assert(eq(int, memcmp(p.payload, orig + orig_len - payload_len,
				 payload_len), 0));
	cr_assert(eq(u32, stats().in_use, 0));
}

Test(ipfrag, ipv4_in_order_rebuilds_the_datagram)
{
	mk_dgram(4, 3000, 77);
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert_null(out);
	cr_assert(eq(u32, stats().in_use, 1));
	cr_assert(eq(int, feed(frag4(1480, 1480, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(2960, data_len() - 2960, false)), MRY_IPFRAG_COMPLETE));
	cr_assert_not(conflict);
	assert_rebuilt(3000);
	cr_assert(eq(u64, stats().completed, 1));
	cr_assert(eq(u64, stats().fragments, 3));
	cr_assert(eq(u64, stats().dropped, 0));
}

Test(ipfrag, ipv4_reverse_order_rebuilds_the_datagram)
{
	mk_dgram(4, 3000, 78);
	cr_assert(eq(int, feed(frag4(2960, data_len() - 2960, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(1480, 1480, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(3000);
}

Test(ipfrag, ipv4_header_rewrite_keeps_df_and_options)
{
	static const uint8_t opt[4] = { 1, 1, 1, 0 };
	struct pb_spec s = pb_default(4);
	static uint8_t pay[100];

	s.ipopt = opt;
	s.ipopt_len = 4;
	s.payload = pay;
	s.payload_len = sizeof(pay);
	s.v4_frag = 0x4000; /* DF in the original */
	orig_len = pb_ip(orig, &s);
	cr_assert(eq(int, feed(frag4(64, data_len() - 64, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(0, 64, true)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(100);
}

Test(ipfrag, tiny_first_fragment_splitting_tcp_header_reassembles)
{
	/* 8 bytes: ports and sequence only; flags and options arrive later */
	mk_dgram(4, 500, 79);
	cr_assert(eq(int, feed(frag4(0, 8, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(8, 8, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(16, data_len() - 16, false)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(500);
}

Test(ipfrag, all_8_byte_fragments_interleaved_reassemble)
{
	uint32_t dl;
	unsigned nb;

	mk_dgram(6, 200, 0);
	dl = data_len();
	nb = (dl + 7) / 8;
	/* odd-numbered fragments first (many holes), then the even ones */
	for (unsigned pass = 0; pass < 2; pass++) {
		for (unsigned i = 1 - pass; i < nb; i += 2) {
			uint32_t off = i * 8, len = MRY_MIN(8, dl - off);
			enum mry_ipfrag_result r = feed(frag6(off, len, off + len < dl));

			if (pass == 1 && i + 2 >= nb)
				cr_assert(eq(int, r, MRY_IPFRAG_COMPLETE));
			else
				cr_assert(eq(int, r, MRY_IPFRAG_NEED_MORE), "frag %u", i);
		}
	}
	assert_rebuilt(200);
}

Test(ipfrag, duplicate_fragment_counts_overlap_same)
{
	mk_dgram(4, 2000, 80);
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert_not(conflict);
	/* partial overlap with identical bytes */
	cr_assert(eq(int, feed(frag4(1400, data_len() - 1400, false)), MRY_IPFRAG_COMPLETE));
	cr_assert_not(conflict);
	assert_rebuilt(2000);
	cr_assert(eq(u64, stats().overlap_same, 2));
	cr_assert(eq(u64, stats().overlap_conflict, 0));
}

Test(ipfrag, conflicting_overlap_drops_datagram_by_default)
{
	uint32_t n;

	mk_dgram(4, 2000, 81);
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_NEED_MORE));
	n = frag4(1400, data_len() - 1400, false);
	frame[n - 500] ^= 0xff; /* a byte beyond the overlap: no conflict */
	frame[34 + 10] ^= 0xff; /* a byte inside the overlap (offset 1410) */
	cr_assert(eq(int, feed(n), MRY_IPFRAG_DROPPED));
	cr_assert(conflict);
	cr_assert_null(out);
	cr_assert(eq(u64, stats().overlap_conflict, 1));
	cr_assert(eq(u64, stats().dropped, 1));
	cr_assert(eq(u32, stats().in_use, 0));
	/* what arrives afterwards starts over and cannot complete alone */
	cr_assert(eq(int, feed(frag4(1480, data_len() - 1480, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert_not(conflict);
}

Test(ipfrag, conflicting_overlap_keeps_first_copy_under_first_policy)
{
	uint32_t n;

	mk_table(0, 0, 0, MRY_IPFRAG_OVERLAP_FIRST);
	mk_dgram(4, 2000, 82);
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_NEED_MORE));
	n = frag4(1400, data_len() - 1400, false);
	frame[34 + 10] ^= 0xff;
	cr_assert(eq(int, feed(n), MRY_IPFRAG_COMPLETE));
	cr_assert(conflict);
	assert_rebuilt(2000); /* the original bytes won */
	cr_assert(eq(u64, stats().overlap_conflict, 1));
	cr_assert(eq(u64, stats().dropped, 0));
}

Test(ipfrag, first_policy_keeps_an_early_forged_copy)
{
	uint32_t n;

	mk_table(0, 0, 0, MRY_IPFRAG_OVERLAP_FIRST);
	mk_dgram(4, 2000, 83);
	n = frag4(1400, data_len() - 1400, false);
	frame[34 + 10] ^= 0xff; /* forged byte at data offset 1410 first */
	cr_assert(eq(int, feed(n), MRY_IPFRAG_NEED_MORE));
	cr_assert_not(conflict);
	cr_assert(eq(int, feed(frag4(0, 1480, true)), MRY_IPFRAG_COMPLETE));
	cr_assert(conflict);
	cr_assert(eq(u32, out_len, orig_len));
	cr_assert(eq(u8, out[20 + 1410], (uint8_t)(orig[20 + 1410] ^ 0xff)));
	cr_assert(eq(int, memcmp(out + 20, orig + 20, 1410), 0));
}

Test(ipfrag, caller_buffer_is_not_pinned)
{
	mk_dgram(4, 1000, 84);
	cr_assert(eq(int, feed(frag4(0, 512, true)), MRY_IPFRAG_NEED_MORE));
	memset(frame, 0xcc, sizeof(frame));
	cr_assert(eq(int, feed(frag4(512, data_len() - 512, false)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(1000);
}

Test(ipfrag, datagram_times_out)
{
	mk_dgram(4, 1000, 85);
	cr_assert(eq(int, feed_at(frag4(0, 512, true), 5 * MRY_NS_PER_SEC),
		     MRY_IPFRAG_NEED_MORE));
	mry_ipfrag_expire(tbl, 35 * MRY_NS_PER_SEC - 1, 16);
	cr_assert(eq(u32, stats().in_use, 1));
	mry_ipfrag_expire(tbl, 35 * MRY_NS_PER_SEC, 16);
	cr_assert(eq(u32, stats().in_use, 0));
	cr_assert(eq(u64, stats().timeouts, 1));
	/* the expired half is gone: the other half alone does not complete */
	cr_assert(eq(int, feed_at(frag4(512, data_len() - 512, false), 36 * MRY_NS_PER_SEC),
		     MRY_IPFRAG_NEED_MORE));
}

Test(ipfrag, late_fragment_of_expired_datagram_starts_over)
{
	mk_dgram(4, 1000, 86);
	cr_assert(eq(int, feed_at(frag4(0, 512, true), 0), MRY_IPFRAG_NEED_MORE));
	/* no expire() call: the lookup itself notices the deadline */
	cr_assert(eq(int, feed_at(frag4(512, data_len() - 512, false), 31 * MRY_NS_PER_SEC),
		     MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(u64, stats().timeouts, 1));
	cr_assert(eq(u32, stats().in_use, 1));
}

Test(ipfrag, expire_respects_budget)
{
	mk_dgram(4, 1000, 0);
	for (unsigned i = 0; i < 5; i++) {
		orig[4] = (uint8_t)i; /* different IP ids */
		cr_assert(eq(int, feed_at(frag4(0, 512, true), i), MRY_IPFRAG_NEED_MORE));
	}
	cr_assert(eq(u32, stats().in_use, 5));
	mry_ipfrag_expire(tbl, 100 * MRY_NS_PER_SEC, 2);
	cr_assert(eq(u32, stats().in_use, 3));
	mry_ipfrag_expire(tbl, 100 * MRY_NS_PER_SEC, 0);
	cr_assert(eq(u32, stats().in_use, 3));
	mry_ipfrag_expire(tbl, 100 * MRY_NS_PER_SEC, 100);
	cr_assert(eq(u32, stats().in_use, 0));
	cr_assert(eq(u64, stats().timeouts, 5));
}

Test(ipfrag, full_table_drops_new_datagrams_until_one_expires)
{
	mk_table(2, 0, 0, MRY_IPFRAG_OVERLAP_DROP);
	mk_dgram(4, 1000, 0);
	for (unsigned i = 0; i < 2; i++) {
		orig[4] = (uint8_t)i;
		cr_assert(eq(int, feed_at(frag4(0, 512, true), i), MRY_IPFRAG_NEED_MORE));
	}
	orig[4] = 9;
	cr_assert(eq(int, feed_at(frag4(0, 512, true), 10), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().table_full, 1));
	cr_assert(eq(u64, stats().dropped, 1));
	/* existing datagrams still complete */
	orig[4] = 1;
	cr_assert(eq(int, feed_at(frag4(512, data_len() - 512, false), 11), MRY_IPFRAG_COMPLETE));
	/* once the oldest is due, a new datagram reclaims its slot */
	orig[4] = 9;
	cr_assert(eq(int, feed_at(frag4(0, 512, true), 12), MRY_IPFRAG_NEED_MORE));
	orig[4] = 10;
	cr_assert(eq(int, feed_at(frag4(0, 512, true), 31 * MRY_NS_PER_SEC),
		     MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(u64, stats().timeouts, 1));
	cr_assert(eq(u32, stats().in_use, 2));
}

Test(ipfrag, datagram_larger_than_max_bytes_is_dropped)
{
	mk_table(0, 1024, 0, MRY_IPFRAG_OVERLAP_DROP);
	mk_dgram(4, 2000, 87);
	cr_assert(eq(int, feed(frag4(0, 1000, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(1000, 40, true)), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().too_big, 1));
	cr_assert(eq(u32, stats().in_use, 0));
}

Test(ipfrag, data_pool_exhaustion_is_counted)
{
	/* max_bytes 2048 -> pool of 3 chunks; each datagram needs 2 */
	mk_table(0, 2048, 1, MRY_IPFRAG_OVERLAP_DROP);
	mk_dgram(4, 1500, 0);
	orig[4] = 1;
	cr_assert(eq(int, feed(frag4(0, 1504, true)), MRY_IPFRAG_NEED_MORE));
	orig[4] = 2;
	cr_assert(eq(int, feed(frag4(0, 1504, true)), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().no_mem, 1));
	/* the first one completes and gives its chunks back */
	orig[4] = 1;
	cr_assert(eq(int, feed(frag4(1504, data_len() - 1504, false)), MRY_IPFRAG_COMPLETE));
	orig[4] = 2;
	cr_assert(eq(int, feed(frag4(0, 1504, true)), MRY_IPFRAG_NEED_MORE));
}

Test(ipfrag, too_many_holes_drops_the_datagram)
{
	mk_dgram(4, 1000, 88);
	for (unsigned i = 0; i < MRY_IPFRAG_MAX_RANGES; i++)
		cr_assert(eq(int, feed(frag4(16 * i, 8, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(16 * MRY_IPFRAG_MAX_RANGES, 8, true)), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().holes_full, 1));
	cr_assert(eq(u32, stats().in_use, 0));
}

Test(ipfrag, two_different_ends_are_inconsistent)
{
	mk_dgram(4, 1000, 89);
	cr_assert(eq(int, feed(frag4(512, data_len() - 512, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(512, 64, false)), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().inconsistent, 1));
	/* data past a known end */
	cr_assert(eq(int, feed(frag4(64, 64, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag4(128, 64, true)), MRY_IPFRAG_DROPPED));
	cr_assert(eq(u64, stats().inconsistent, 2));
}

Test(ipfrag, ipv6_in_order_and_reversed)
{
	mk_dgram(6, 3000, 0);
	cr_assert(eq(int, feed(frag6(0, 1448, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag6(1448, 1448, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag6(2896, data_len() - 2896, false)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(3000);
	cr_assert(eq(int, feed(frag6(2896, data_len() - 2896, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag6(1448, 1448, true)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag6(0, 1448, true)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(3000);
	cr_assert(eq(u64, stats().completed, 2));
}

Test(ipfrag, ipv6_unfragmentable_headers_are_kept_and_chained)
{
	/* hop-by-hop (PadN) then the fragment header */
	static const uint8_t hbh[8] = { 6, 0, 1, 4, 0, 0, 0, 0 };
	static uint8_t pay[1200];
	struct pb_spec s = pb_default(6);

	s.ext = hbh;
	s.ext_len = 8;
	s.ext_first_nh = 0;
	s.payload = pay;
	s.payload_len = sizeof(pay);
	orig_len = pb_ip(orig, &s);
	cr_assert(eq(int, feed(frag6x(48, 40, 800, orig_len - 48 - 800, false, 5)),
		     MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(int, feed(frag6x(48, 40, 0, 800, true, 5)), MRY_IPFRAG_COMPLETE));
	assert_rebuilt(1200);
}

/* decode a fragment frame, as feed() does, and ask whether it may be TCP */
static bool may_be_tcp(uint32_t n)
{
	struct mry_pkt p;

	cr_assert(eq(int, mry_decode_frame(frame, n, ALLF, &p, &dst),
		     MRY_DECODE_FRAGMENT));
	return mry_decode_frag_may_be_tcp(&p);
}

Test(ipfrag, ipv6_destination_options_after_the_fragment_header)
{
	/* hop-by-hop (unfragmentable), fragment header, then destination
	 * options in the fragmentable part before TCP, as Linux sends with
	 * IPV6_HOPOPTS + IPV6_DSTOPTS (RFC 8200 §4.1 order) */
	static const uint8_t ext[16] = { 60, 0, 1, 4, 0, 0, 0, 0,
					 6, 0, 1, 4, 0, 0, 0, 0 };
	static uint8_t pay[1200];
	struct pb_spec s = pb_default(6);

	s.ext = ext;
	s.ext_len = sizeof(ext);
	s.ext_first_nh = 0;
	s.payload = pay;
	s.payload_len = sizeof(pay);
	orig_len = pb_ip(orig, &s);
	/* the fragment header names destination options, not TCP */
	uint32_t n = frag6x(48, 40, 800, orig_len - 48 - 800, false, 6);

	cr_assert(eq(u8, frame[14 + 48], 60));
	cr_assert(may_be_tcp(n), "a later fragment cannot rule TCP out");
	cr_assert(eq(int, feed(n), MRY_IPFRAG_NEED_MORE));
	n = frag6x(48, 40, 0, 800, true, 6);
	cr_assert(may_be_tcp(n), "the chain dstopts -> TCP is walked");
	cr_assert(eq(int, feed(n), MRY_IPFRAG_COMPLETE));
	/* the rebuilt datagram walks hbh -> dstopts -> TCP */
	assert_rebuilt(1200);
}

Test(ipfrag, ipv6_fragmentable_chain_ending_in_another_protocol_is_not_tcp)
{
	/* fragmentable part: destination options -> UDP (17) */
	uint8_t ext[8] = { 17, 0, 1, 4, 0, 0, 0, 0 };
	static uint8_t pay[400];
	struct pb_spec s = pb_default(6);
	uint32_t n;

	s.ext = ext;
	s.ext_len = sizeof(ext);
	s.ext_first_nh = 60;
	s.payload = pay;
	s.payload_len = sizeof(pay);
	orig_len = pb_ip(orig, &s);
	n = frag6x(40, 6, 0, 200, true, 7);
	cr_assert_not(may_be_tcp(n));
	/* the same chain ending in ESP, or in No Next Header: not TCP */
	frame[14 + 48] = 50;
	cr_assert_not(may_be_tcp(n));
	frame[14 + 48] = 59;
	cr_assert_not(may_be_tcp(n));
	/* K destination options headers, the last one naming UDP: walked to
	 * the end up to the bound; past it, left to the datagram's decode */
	for (uint32_t k = MRY_DECODE_IPV6_MAX_EXTHDR; k <= MRY_DECODE_IPV6_MAX_EXTHDR + 1; k++) {
		for (uint32_t i = 0; i < k; i++) {
			frame[14 + 48 + 8 * i] = i + 1 < k ? 60 : 17;
			frame[14 + 48 + 8 * i + 1] = 0;
		}
		cr_assert(eq(int, may_be_tcp(n), k > MRY_DECODE_IPV6_MAX_EXTHDR));
	}
}

Test(ipfrag, ipv6_conflict_is_flagged)
{
	uint32_t n;

	mk_dgram(6, 1000, 0);
	cr_assert(eq(int, feed(frag6(0, 512, true)), MRY_IPFRAG_NEED_MORE));
	n = frag6(0, 512, true);
	frame[n - 1] ^= 1;
	cr_assert(eq(int, feed(n), MRY_IPFRAG_DROPPED));
	cr_assert(conflict);
	cr_assert(eq(u64, stats().overlap_conflict, 1));
}

Test(ipfrag, datagrams_with_other_keys_do_not_mix)
{
	static uint8_t a[DG_MAX];
	uint32_t alen;

	/* same id, different source; then IPv6 with the same id */
	mk_dgram(4, 1000, 90);
	cr_assert(eq(int, feed(frag4(0, 512, true)), MRY_IPFRAG_NEED_MORE));
	memcpy(a, orig, orig_len);
	alen = orig_len;
	orig[15] ^= 1; /* src address */
	pb_put16(orig + 10, 0);
	pb_put16(orig + 10, pb_fold(pb_sum(orig, 20, 0)));
	cr_assert(eq(int, feed(frag4(512, data_len() - 512, false)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(u32, stats().in_use, 2));
	memcpy(orig, a, alen);
	orig_len = alen;
	cr_assert(eq(int, feed(frag4(512, data_len() - 512, false)), MRY_IPFRAG_COMPLETE));
	cr_assert(eq(u32, out_len, orig_len));
	cr_assert(eq(int, memcmp(out, orig, orig_len), 0));
	cr_assert(eq(u32, stats().in_use, 1)); /* the other source still waits */
	/* an IPv6 datagram with the same id does not complete it either */
	mk_dgram(6, 1000, 0);
	cr_assert(eq(int, feed(frag6x(40, 6, 0, 512, true, 90)), MRY_IPFRAG_NEED_MORE));
	cr_assert(eq(u32, stats().in_use, 2));
}

Test(ipfrag, bad_config_is_refused)
{
	struct mry_ipfrag_config c = { .policy = (enum mry_ipfrag_policy)7 };

	cr_assert_null(mry_ipfrag_create(mry_alloc_default(), &c));
	c.policy = MRY_IPFRAG_OVERLAP_DROP;
	c.max_bytes = 1u << 30;
	cr_assert_null(mry_ipfrag_create(mry_alloc_default(), &c));
	cr_assert_null(mry_ipfrag_create(mry_alloc_default(), NULL));
}
