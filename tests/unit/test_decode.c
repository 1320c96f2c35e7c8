/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet decode: every header variant, every malformed case, truncation at
 * every length of valid frames (decoded from exact-size heap copies so that
 * ASan catches any read past the end), trailers and checksum verification.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/new/assert.h>

#include "moray/decode.h"
#include "pkt_build.h"

#define ALLF (MRY_DECODE_F_VERIFY_TCP_CSUM | MRY_DECODE_F_VERIFY_IP_CSUM)

static struct mry_decode_stats st;
static struct mry_pkt pkt;
static uint8_t fb[PB_MAX];

static uint8_t *copy; /* pkt points into it until the next decode */

static enum mry_decode_result dec_n(const uint8_t *f, uint32_t len,
				    unsigned flags)
{
	/* exact-size copy: an overread is a heap-buffer-overflow under ASan */
	free(copy);
	copy = malloc(len ? len : 1);
	memcpy(copy, f, len);
	return mry_decode_frame(copy, len, flags, &pkt, &st);
}

static enum mry_decode_result dec(const struct pb_spec *s, unsigned flags)
{
	uint32_t n = pb_frame(fb, s);

	return dec_n(fb, n, flags);
}

static void reset(void)
{
	memset(&st, 0, sizeof(st));
	memset(&pkt, 0xa5, sizeof(pkt));
}

static void cleanup(void)
{
	free(copy);
	copy = NULL;
}

TestSuite(decode, .init = reset, .fini = cleanup);

/* ---- checksums ---- */

Test(decode, csum_matches_rfc1071_example)
{
	/* RFC 1071 §3 numerical example */
	static const uint8_t d[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

	cr_assert(eq(u32, mry_csum_fold(mry_csum_partial(d, 8, 0)) , 0x220d));
	cr_assert(eq(u16, mry_csum_fold(0xddf2), 0x220d));
	/* chaining an even prefix with the rest gives the same sum */
	cr_assert(eq(u16, mry_csum_fold(mry_csum_partial(d + 2, 6,
							 mry_csum_partial(d, 2, 0))),
		     0x220d));
}

Test(decode, csum_partial_matches_reference_for_all_lengths_and_alignments)
{
	uint8_t buf[300];

	srand(7);
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	memset(buf + 100, 0xff, 50); /* exercise carries */
	for (uint32_t a = 0; a < 4; a++)
		for (uint32_t len = 0; len + a <= sizeof(buf); len++)
			cr_assert(eq(u16, mry_csum_fold(mry_csum_partial(buf + a, len, 0x1234)),
				     pb_fold(pb_sum(buf + a, len, 0x1234))),
				  "align %u len %u", a, len);
}

/* the AVX2 lanes (len >= 128) and the scalar code, up to a 64 KiB frame of 0xff */
Test(decode, csum_partial_vector_and_scalar_match_reference_on_large_buffers)
{
	static uint8_t buf[65536 + 3];

	srand(11);
	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (int fill = 0; fill < 2; fill++) {
		if (fill)
			memset(buf, 0xff, sizeof(buf));   /* every lane at its largest */
		for (int scalar = 0; scalar < 2; scalar++) {
			mry_cpu_force_baseline(scalar);
			for (uint32_t len = 120; len <= 65535; len = len * 3 + 7)
				cr_assert(eq(u16, mry_csum_fold(mry_csum_partial(buf + 3, len, 0)),
					     pb_fold(pb_sum(buf + 3, len, 0))),
					  "len %u scalar %d fill %d", len, scalar, fill);
			cr_assert(eq(u16, mry_csum_fold(mry_csum_partial(buf + 1, 65535, 0)),
				     pb_fold(pb_sum(buf + 1, 65535, 0))), "scalar %d", scalar);
			mry_cpu_force_baseline(false);
		}
	}
}

Test(decode, tcp_csum_returns_value_to_store_and_zero_when_valid)
{
	struct pb_spec s = pb_default(4);
	uint8_t seg[64];
	uint16_t ref;
	uint32_t n;

	s.payload = (const uint8_t *)"EHLO x\r\n";
	s.payload_len = 8;
	n = pb_l4(seg, &s);
	pb_tcp_csum(seg, n, 4, pb_src4, pb_dst4);
	ref = (uint16_t)(seg[16] << 8 | seg[17]);
	cr_assert(eq(u16, mry_tcp_csum(4, pb_src4, pb_dst4, seg, n), 0));
	seg[16] = seg[17] = 0;
	cr_assert(eq(u16, mry_tcp_csum(4, pb_src4, pb_dst4, seg, n), ref));

	n = pb_l4(seg, &s);
	pb_tcp_csum(seg, n, 6, pb_src6, pb_dst6);
	ref = (uint16_t)(seg[16] << 8 | seg[17]);
	seg[16] = seg[17] = 0;
	cr_assert(eq(u16, mry_tcp_csum(6, pb_src6, pb_dst6, seg, n), ref));
}

/* ---- valid frames ---- */

Test(decode, ipv4_tcp_fills_every_field)
{
	struct pb_spec s = pb_default(4);
	static const char msg[] = "MAIL FROM:<a@b>\r\n";

	s.payload = (const uint8_t *)msg;
	s.payload_len = sizeof(msg) - 1;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(int, pkt.event, MRY_DEV_NONE));
	cr_assert(eq(u8, pkt.ip_version, 4));
	cr_assert(eq(u8, pkt.nb_vlan, 0));
	cr_assert(eq(u16, pkt.l3_off, 14));
	cr_assert(eq(u16, pkt.l4_off, 34));
	cr_assert(eq(u32, pkt.l3_len, 40 + s.payload_len));
	cr_assert(eq(u8, pkt.l4_proto, 6));
	cr_assert(eq(u8, pkt.ttl, 64));
	cr_assert(eq(int, memcmp(pkt.src, pb_src4, 4), 0));
	cr_assert(eq(int, memcmp(pkt.dst, pb_dst4, 4), 0));
	cr_assert(eq(u8, pkt.src[4], 0));
	cr_assert(eq(u16, pkt.sport, 40000));
	cr_assert(eq(u16, pkt.dport, 25));
	cr_assert(eq(u32, pkt.seq, 0x01020304));
	cr_assert(eq(u32, pkt.ack, 0xa0b0c0d0));
	cr_assert(eq(u16, pkt.win, 29200));
	cr_assert(eq(u8, pkt.tcp_flags, MRY_TCP_PSH | MRY_TCP_ACK));
	cr_assert(eq(u8, pkt.tcp_hlen, 20));
	cr_assert(eq(u16, pkt.mss, 0));
	cr_assert_not(pkt.has_wscale);
	cr_assert_not(pkt.has_ts);
	cr_assert_not(pkt.sack_perm);
	cr_assert(eq(u32, pkt.payload_len, s.payload_len));
	cr_assert(eq(int, memcmp(pkt.payload, msg, s.payload_len), 0));
	cr_assert(eq(i64, pkt.l3 - pkt.frame, 14));
	cr_assert(eq(u64, st.pkts, 1));
	cr_assert(eq(u64, st.tcp, 1));
	cr_assert(eq(u64, st.invalid, 0));
}

Test(decode, single_vlan_tag_is_skipped_and_recorded)
{
	struct pb_spec s = pb_default(4);

	s.nb_tags = 1;
	s.tpid[0] = 0x8100;
	s.tci[0] = 0x2064;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u8, pkt.nb_vlan, 1));
	cr_assert(eq(u16, pkt.vlan[0], 0x2064));
	cr_assert(eq(u16, pkt.l3_off, 18));
	cr_assert(eq(u16, pkt.l4_off, 38));
}

Test(decode, qinq_outer_tpids_all_accepted)
{
	static const uint16_t outer[] = { 0x88a8, 0x9100, 0x8100 };

	for (unsigned i = 0; i < 3; i++) {
		struct pb_spec s = pb_default(6);

		s.nb_tags = 2;
		s.tpid[0] = outer[i];
		s.tci[0] = 100;
		s.tpid[1] = 0x8100;
		s.tci[1] = 200;
		cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
		cr_assert(eq(u8, pkt.nb_vlan, 2));
		cr_assert(eq(u16, pkt.vlan[0], 100));
		cr_assert(eq(u16, pkt.vlan[1], 200));
		cr_assert(eq(u16, pkt.l3_off, 22));
	}
}

Test(decode, three_vlan_tags_are_too_deep)
{
	struct pb_spec s = pb_default(4);

	s.nb_tags = 3;
	s.tpid[0] = 0x88a8;
	s.tpid[1] = 0x8100;
	s.tpid[2] = 0x8100;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_VLAN_TOO_DEEP));
	cr_assert(eq(u64, st.ev[MRY_DEV_VLAN_TOO_DEEP], 1));
	cr_assert(eq(u64, st.invalid, 1));
}

Test(decode, non_ip_ethertypes_and_udp_are_other)
{
	struct pb_spec s = pb_default(4);
	static const uint8_t udp[8] = { 0x12, 0x34, 0, 53, 0, 8, 0, 0 };

	s.ethertype = 0x0806; /* ARP */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_OTHER));
	s = pb_default(4);
	s.l4proto = 17;
	s.payload = udp;
	s.payload_len = 8;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_OTHER));
	cr_assert(eq(u8, pkt.l4_proto, 17));
	s.ipver = 6;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_OTHER));
	s.l4proto = 58; /* ICMPv6 */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_OTHER));
	cr_assert(eq(u64, st.other, 4));
	cr_assert(eq(u64, st.pkts, 4));
	cr_assert(eq(u64, st.invalid, 0));
}

Test(decode, ipv4_options_are_skipped)
{
	/* NOP, Record Route (len 7, ptr 4, one slot), EOL: 12 bytes */
	static const uint8_t opt[12] = { 1, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0 };
	struct pb_spec s = pb_default(4);

	s.ipopt = opt;
	s.ipopt_len = sizeof(opt);
	s.payload = (const uint8_t *)"DATA\r\n";
	s.payload_len = 6;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l4_off, 14 + 32));
	cr_assert(eq(u32, pkt.payload_len, 6));
	cr_assert(eq(int, memcmp(pkt.payload, "DATA\r\n", 6), 0));
}

Test(decode, ipv4_option_length_errors_are_invalid)
{
	static const uint8_t bad_opts[][4] = {
		{ 1, 1, 1, 7 },      /* option type without room for its length */
		{ 7, 1, 0, 0 },      /* length < 2 */
		{ 7, 9, 4, 0 },      /* runs past the header */
		{ 130, 0, 0, 0 },    /* length 0 */
	};

	for (unsigned i = 0; i < MRY_ARRAY_SIZE(bad_opts); i++) {
		struct pb_spec s = pb_default(4);

		s.ipopt = bad_opts[i];
		s.ipopt_len = 4;
		cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID), "case %u", i);
		cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_OPT_INVALID));
	}
	cr_assert(eq(u64, st.ev[MRY_DEV_IPV4_OPT_INVALID], MRY_ARRAY_SIZE(bad_opts)));
}

Test(decode, tcp_options_are_parsed)
{
	/* MSS 1460, SACK-permitted, TS, NOP, wscale 7: a Linux SYN */
	static const uint8_t opt[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10,
					 0, 0, 0x12, 0x34, 0, 0, 0, 0x99,
					 1, 3, 3, 7 };
	struct pb_spec s = pb_default(4);

	s.tcpopt = opt;
	s.tcpopt_len = sizeof(opt);
	s.tcp_flags = MRY_TCP_SYN;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u8, pkt.tcp_hlen, 40));
	cr_assert(eq(u16, pkt.mss, 1460));
	cr_assert(pkt.sack_perm);
	cr_assert(pkt.has_ts);
	cr_assert(eq(u32, pkt.ts_val, 0x1234));
	cr_assert(eq(u32, pkt.ts_ecr, 0x99));
	cr_assert(pkt.has_wscale);
	cr_assert(eq(u8, pkt.wscale, 7));
	cr_assert(eq(u32, pkt.payload_len, 0));
}

Test(decode, tcp_wscale_above_14_is_clamped)
{
	static const uint8_t opt[4] = { 3, 3, 200, 0 };
	struct pb_spec s = pb_default(4);

	s.tcpopt = opt;
	s.tcpopt_len = 4;
	s.tcp_flags = MRY_TCP_SYN;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u8, pkt.wscale, 14));
}

Test(decode, tcp_options_after_eol_are_ignored)
{
	static const uint8_t opt[8] = { 0, 2, 4, 0x05, 0xb4, 0xff, 0xff, 0xff };
	struct pb_spec s = pb_default(4);

	s.tcpopt = opt;
	s.tcpopt_len = 8;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.mss, 0));
}

Test(decode, tcp_option_errors_are_invalid)
{
	static const uint8_t bad_opts[][8] = {
		{ 2, 3, 5, 1, 1, 1, 1, 1 },     /* MSS length 3 */
		{ 3, 4, 7, 1, 1, 1, 1, 1 },     /* wscale length 4 */
		{ 4, 3, 0, 1, 1, 1, 1, 1 },     /* SACK-perm length 3 */
		{ 8, 8, 0, 0, 0, 0, 0, 0 },     /* timestamps length 8 */
		{ 5, 6, 0, 0, 0, 0, 1, 1 },     /* SACK block not 8 bytes */
		{ 30, 1, 1, 1, 1, 1, 1, 1 },    /* length < 2 */
		{ 1, 1, 1, 1, 1, 1, 1, 30 },    /* no room for the length byte */
		{ 30, 12, 0, 0, 0, 0, 0, 0 },   /* past the header */
	};

	for (unsigned i = 0; i < MRY_ARRAY_SIZE(bad_opts); i++) {
		struct pb_spec s = pb_default(6);

		s.tcpopt = bad_opts[i];
		s.tcpopt_len = 8;
		cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID), "case %u", i);
		cr_assert(eq(int, pkt.event, MRY_DEV_TCP_OPT_INVALID), "case %u", i);
	}
	cr_assert(eq(u64, st.ev[MRY_DEV_TCP_OPT_INVALID], MRY_ARRAY_SIZE(bad_opts)));
	cr_assert(eq(u64, st.invalid, MRY_ARRAY_SIZE(bad_opts)));
}

/* ---- IPv6 extension headers ---- */

static enum mry_decode_result dec6_ext(const uint8_t *ext, uint32_t len,
				       uint8_t first_nh)
{
	struct pb_spec s = pb_default(6);

	s.ext = ext;
	s.ext_len = len;
	s.ext_first_nh = first_nh;
	s.payload = (const uint8_t *)"QUIT\r\n";
	s.payload_len = 6;
	return dec(&s, ALLF);
}

Test(decode, ipv6_plain_tcp)
{
	struct pb_spec s = pb_default(6);

	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	cr_assert(eq(u8, pkt.ip_version, 6));
	cr_assert(eq(u16, pkt.l4_off, 54));
	cr_assert(eq(u32, pkt.l3_len, 60));
	cr_assert(eq(int, memcmp(pkt.src, pb_src6, 16), 0));
	cr_assert(eq(int, memcmp(pkt.dst, pb_dst6, 16), 0));
}

Test(decode, ipv6_each_extension_header_is_walked)
{
	/* hop-by-hop with PadN(4) */
	static const uint8_t hbh[8] = { 6, 0, 1, 4, 0, 0, 0, 0 };
	/* destination options with Pad1 x6 */
	static const uint8_t dst[8] = { 6, 0, 0, 0, 0, 0, 0, 0 };
	/* routing type 2 with segments left 0 (one address) */
	uint8_t rt[24] = { 6, 2, 2, 0 };
	/* AH: payload len 4 -> (4+2)*4 = 24 bytes */
	uint8_t ah[24] = { 6, 4, 0, 0 };
	/* atomic fragment (offset 0, M=0) */
	static const uint8_t fr[8] = { 6, 0, 0, 0, 0, 0, 0, 9 };

	cr_assert(eq(int, dec6_ext(hbh, 8, 0), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l4_off, 14 + 48));
	cr_assert(eq(int, dec6_ext(dst, 8, 60), MRY_DECODE_TCP));
	cr_assert(eq(int, dec6_ext(rt, 24, 43), MRY_DECODE_TCP));
	cr_assert(eq(int, dec6_ext(ah, 24, 51), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l4_off, 14 + 64));
	cr_assert(eq(int, dec6_ext(fr, 8, 44), MRY_DECODE_TCP));
	cr_assert(eq(u32, pkt.payload_len, 6));
	cr_assert(eq(int, memcmp(pkt.payload, "QUIT\r\n", 6), 0));
	cr_assert(eq(u64, st.tcp, 5));
}

Test(decode, ipv6_chain_of_several_headers)
{
	uint8_t ext[8 + 8 + 24];

	memset(ext, 0, sizeof(ext));
	ext[0] = 60; /* hbh -> dstopts */
	ext[8] = 51; /* dstopts -> AH */
	ext[16] = 6; /* AH -> TCP */
	ext[17] = 4;
	cr_assert(eq(int, dec6_ext(ext, sizeof(ext), 0), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l4_off, 14 + 40 + 40));
}

Test(decode, ipv6_esp_and_no_next_header_are_other)
{
	uint8_t esp[16] = { 0 };
	struct pb_spec s = pb_default(6);

	cr_assert(eq(int, dec6_ext(esp, 16, 50), MRY_DECODE_OTHER));
	cr_assert(eq(u8, pkt.l4_proto, 50));
	s.l4proto = 59;
	s.payload_len = 0;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_OTHER));
	cr_assert(eq(u8, pkt.l4_proto, 59));
	cr_assert(eq(u64, st.invalid, 0));
}

Test(decode, ipv6_hop_by_hop_not_first_is_invalid)
{
	uint8_t ext[16] = { 0 };

	ext[0] = 0;  /* dstopts -> hop-by-hop */
	ext[8] = 6;
	cr_assert(eq(int, dec6_ext(ext, 16, 60), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_EXTHDR_BAD));
}

Test(decode, ipv6_bad_option_tlv_is_invalid)
{
	static const uint8_t hbh[8] = { 6, 0, 1, 9, 0, 0, 0, 0 };

	cr_assert(eq(int, dec6_ext(hbh, 8, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_EXTHDR_BAD));
}

Test(decode, ipv6_too_many_extension_headers_is_invalid)
{
	uint8_t ext[8 * (MRY_DECODE_IPV6_MAX_EXTHDR + 1)];

	memset(ext, 0, sizeof(ext));
	for (unsigned i = 0; i <= MRY_DECODE_IPV6_MAX_EXTHDR; i++)
		ext[8 * i] = i == MRY_DECODE_IPV6_MAX_EXTHDR ? 6 : 60;
	cr_assert(eq(int, dec6_ext(ext, sizeof(ext), 60), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_EXTHDR_TOO_MANY));
	/* exactly the cap is fine */
	cr_assert(eq(int, dec6_ext(ext + 8, sizeof(ext) - 8, 60), MRY_DECODE_TCP));
}

Test(decode, ipv6_extension_header_past_payload_is_invalid)
{
	uint8_t ext[8] = { 6, 5, 0, 0, 0, 0, 0, 0 }; /* claims 48 bytes */
	struct pb_spec s = pb_default(6);

	s.ext = ext;
	s.ext_len = 8;
	s.ext_first_nh = 60;
	s.l4proto = 59;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_EXTHDR_TRUNCATED));
}

Test(decode, ipv6_routing_header_final_destination_in_pseudo_header)
{
	static const uint8_t final[16] = { 0x20, 0x01, 0x0d, 0xb8, 9, 9, 9, 9,
					   0, 0, 0, 0, 0, 0, 0, 0x77 };
	uint8_t rt[24] = { 6, 2, 2, 1 }; /* type 2, segments left 1 */
	struct pb_spec s = pb_default(6);

	memcpy(rt + 8, final, 16);
	s.ext = rt;
	s.ext_len = 24;
	s.ext_first_nh = 43;
	s.csum_dst = final;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP));
	s.csum_dst = NULL; /* checksum over the IPv6 dst instead: wrong */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_BAD_CSUM));
}

Test(decode, ipv6_zero_payload_length_with_data_is_invalid)
{
	struct pb_spec s = pb_default(6);
	uint32_t n = pb_frame(fb, &s);

	fb[14 + 4] = 0;
	fb[14 + 5] = 0;
	cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_BAD_PAYLOAD_LEN));
}

/* ---- fragments ---- */

Test(decode, ipv4_fragment_fields_are_filled)
{
	struct pb_spec s = pb_default(4);
	uint8_t data[64];

	memset(data, 'x', sizeof(data));
	s.payload = data;
	s.payload_len = 12; /* 20 + 12 = 32 bytes of TCP: multiple of 8 */
	s.v4_frag = 0x2000 | 0; /* MF, offset 0 */
	s.v4_id = 0xbeef;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_FRAGMENT));
	cr_assert(eq(u32, pkt.frag_id, 0xbeef));
	cr_assert(eq(u16, pkt.frag_off, 0));
	cr_assert(pkt.frag_more);
	cr_assert(eq(u8, pkt.frag_next_proto, 6));
	cr_assert(eq(u32, pkt.frag_data_len, 32));
	cr_assert(eq(u16, pkt.frag_unfrag_len, 20));
	cr_assert(eq(i64, pkt.frag_data - pkt.l3, 20));
	cr_assert(eq(u64, st.fragments, 1));

	s.v4_frag = 185; /* last fragment at 1480 */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_FRAGMENT));
	cr_assert(eq(u16, pkt.frag_off, 1480));
	cr_assert_not(pkt.frag_more);
}

Test(decode, ipv4_bad_fragments_are_invalid)
{
	struct pb_spec s = pb_default(4);
	uint8_t data[64] = { 0 };

	s.payload = data;
	s.payload_len = 3; /* 23 bytes with MF: not a multiple of 8 */
	s.v4_frag = 0x2000;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_FRAG_BAD));
	/* ping of death: last fragment ending past 65535 */
	s.payload_len = 20;
	s.v4_frag = 0x1fff;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_FRAG_BAD));
	cr_assert(eq(u64, st.ev[MRY_DEV_IPV4_FRAG_BAD], 2));
}

Test(decode, ipv6_fragment_fields_are_filled)
{
	/* dstopts (unfragmentable here) then fragment header, offset 16, M=1 */
	uint8_t ext[16] = { 44, 0, 0, 0, 0, 0, 0, 0,
			    6, 0, 0, 16 | 1, 0xde, 0xad, 0xbe, 0xef };
	struct pb_spec s = pb_default(6);
	uint8_t data[16] = { 0 };

	s.ext = ext;
	s.ext_len = 16;
	s.ext_first_nh = 60;
	s.payload = data;
	s.payload_len = 12; /* 32 bytes of fragment data */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_FRAGMENT));
	cr_assert(eq(u32, pkt.frag_id, 0xdeadbeef));
	cr_assert(eq(u16, pkt.frag_off, 16));
	cr_assert(pkt.frag_more);
	cr_assert(eq(u8, pkt.frag_next_proto, 6));
	cr_assert(eq(u16, pkt.frag_unfrag_len, 48));
	cr_assert(eq(u32, pkt.frag_data_len, 32));
	cr_assert(eq(i64, pkt.frag_data - pkt.l3, 56));

	ext[11] = 16 | 1;
	s.payload_len = 13; /* 33 bytes with M: bad */
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_FRAG_BAD));
}

/* ---- malformed headers ---- */

Test(decode, truncated_at_every_length_is_invalid)
{
	static const uint8_t ipopt[4] = { 1, 1, 1, 0 };
	static const uint8_t tcpopt[16] = { 2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2 };
	uint8_t ext[32] = { 0 };
	struct pb_spec v[4];

	ext[0] = 60;  /* hbh -> dstopts -> AH(16) -> TCP */
	ext[8] = 51;
	ext[16] = 6;
	ext[17] = 2;
	v[0] = pb_default(4);
	v[0].ipopt = ipopt;
	v[0].ipopt_len = 4;
	v[1] = pb_default(6);
	v[1].ext = ext;
	v[1].ext_len = 32;
	v[1].ext_first_nh = 0;
	v[2] = pb_default(4);
	v[2].nb_tags = 2;
	v[2].tpid[0] = 0x88a8;
	v[2].tpid[1] = 0x8100;
	v[3] = pb_default(6);
	v[3].nb_tags = 1;
	v[3].tpid[0] = 0x8100;
	for (unsigned i = 0; i < 4; i++) {
		uint32_t n;

		v[i].tcpopt = tcpopt;
		v[i].tcpopt_len = sizeof(tcpopt);
		v[i].payload = (const uint8_t *)"RCPT TO:<x@y>\r\n";
		v[i].payload_len = 15;
		n = pb_frame(fb, &v[i]);
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_TCP), "variant %u", i);
		for (uint32_t len = 0; len < n; len++) {
			uint64_t before = st.invalid;

			cr_assert(eq(int, dec_n(fb, len, ALLF), MRY_DECODE_INVALID),
				  "variant %u len %u", i, len);
			cr_assert(eq(u64, st.invalid, before + 1));
			cr_assert(lt(int, pkt.event, MRY_DEV_MAX));
			cr_assert(eq(u64, st.ev[pkt.event] > 0, 1));
		}
	}
	cr_assert(eq(u64, st.pkts, st.tcp + st.other + st.fragments + st.invalid));
	cr_assert(eq(u64, st.tcp, 4));
}

Test(decode, short_ethernet_is_truncated)
{
	cr_assert(eq(int, dec_n(fb, 13, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_ETH_TRUNCATED));
	cr_assert(eq(int, dec_n(fb, 0, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(u64, st.ev[MRY_DEV_ETH_TRUNCATED], 2));
}

Test(decode, ipv4_header_checksum_checked_only_when_asked)
{
	struct pb_spec s = pb_default(4);
	uint32_t n = pb_frame(fb, &s);

	fb[14 + 10] ^= 0x40;
	cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_BAD_CSUM));
	cr_assert(eq(u64, st.ev[MRY_DEV_IPV4_BAD_CSUM], 1));
	cr_assert(eq(int, dec_n(fb, n, MRY_DECODE_F_VERIFY_TCP_CSUM), MRY_DECODE_TCP));
}

Test(decode, tcp_checksum_checked_only_when_asked)
{
	for (unsigned ver = 4; ver <= 6; ver += 2) {
		struct pb_spec s = pb_default(ver);
		uint32_t n, l4;

		s.payload = (const uint8_t *)"hello";
		s.payload_len = 5; /* odd length */
		n = pb_frame(fb, &s);
		l4 = 14 + (ver == 4 ? 20 : 40);
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_TCP));
		fb[n - 1] ^= 1; /* payload byte flipped */
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_INVALID));
		cr_assert(eq(int, pkt.event, MRY_DEV_TCP_BAD_CSUM));
		cr_assert(eq(int, dec_n(fb, n, MRY_DECODE_F_VERIFY_IP_CSUM), MRY_DECODE_TCP));
		fb[n - 1] ^= 1;
		fb[l4 + 17] ^= 0x10; /* checksum field itself */
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_INVALID));
		cr_assert(eq(int, dec_n(fb, n, 0), MRY_DECODE_TCP));
	}
	cr_assert(eq(u64, st.ev[MRY_DEV_TCP_BAD_CSUM], 4));
}

Test(decode, ipv4_bad_version_ihl_and_total_length)
{
	struct pb_spec s = pb_default(4);
	uint32_t n = pb_frame(fb, &s);
	uint8_t c[PB_MAX];

	memcpy(c, fb, n);
	c[14] = 0x55;
	cr_assert(eq(int, dec_n(c, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_BAD_VERSION));
	c[14] = 0x44; /* IHL 16 bytes */
	cr_assert(eq(int, dec_n(c, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_BAD_IHL));
	c[14] = 0x4f; /* IHL 60 bytes > total length 40 (buffer long enough) */
	memset(c + n, 0, 30);
	cr_assert(eq(int, dec_n(c, n + 30, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_BAD_TOTAL_LEN));
	c[14] = 0x4f; /* IHL 60 bytes past a 40-byte buffer */
	cr_assert(eq(int, dec_n(c, 14 + 40, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_TRUNCATED));
	memcpy(c, fb, n);
	pb_put16(c + 16, 19); /* total length < IHL */
	cr_assert(eq(int, dec_n(c, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_BAD_TOTAL_LEN));
	pb_put16(c + 16, (uint16_t)(n - 14 + 1)); /* longer than the frame */
	cr_assert(eq(int, dec_n(c, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV4_TRUNCATED));
	/* IPv6 ethertype with a version 4 header */
	memcpy(c, fb, n);
	pb_put16(c + 12, 0x86dd);
	c[14] = 0x45;
	cr_assert(eq(int, dec_n(c, 80, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_IPV6_BAD_VERSION));
}

Test(decode, tcp_bad_data_offset_is_invalid)
{
	struct pb_spec s = pb_default(4);
	uint32_t n;

	s.payload = (const uint8_t *)"abcdefgh";
	s.payload_len = 8;
	n = pb_frame(fb, &s);
	fb[34 + 12] = 4 << 4; /* 16 bytes < 20 */
	cr_assert(eq(int, dec_n(fb, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_BAD_HLEN));
	fb[34 + 12] = 8 << 4; /* 32 bytes > 28-byte segment */
	cr_assert(eq(int, dec_n(fb, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_BAD_HLEN));
	fb[34 + 12] = 7 << 4; /* 28: exactly the segment, options = payload */
	cr_assert(eq(int, dec_n(fb, n, 0), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_OPT_INVALID));
	cr_assert(eq(u64, st.ev[MRY_DEV_TCP_BAD_HLEN], 2));
}

Test(decode, tcp_bad_flag_combinations_are_invalid)
{
	static const uint8_t bad_flags[] = {
		MRY_TCP_SYN | MRY_TCP_FIN,
		MRY_TCP_SYN | MRY_TCP_RST,
		MRY_TCP_SYN | MRY_TCP_FIN | MRY_TCP_ACK | MRY_TCP_PSH | MRY_TCP_URG,
		0,
	};
	static const uint8_t good_flags[] = {
		MRY_TCP_SYN, MRY_TCP_SYN | MRY_TCP_ACK, MRY_TCP_FIN | MRY_TCP_ACK,
		MRY_TCP_RST, MRY_TCP_RST | MRY_TCP_ACK, MRY_TCP_ACK,
		MRY_TCP_SYN | MRY_TCP_ECE | MRY_TCP_CWR,
	};

	for (unsigned i = 0; i < MRY_ARRAY_SIZE(bad_flags); i++) {
		struct pb_spec s = pb_default(4);

		s.tcp_flags = bad_flags[i];
		cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID), "flags %#x", bad_flags[i]);
		cr_assert(eq(int, pkt.event, MRY_DEV_TCP_BAD_FLAGS));
	}
	for (unsigned i = 0; i < MRY_ARRAY_SIZE(good_flags); i++) {
		struct pb_spec s = pb_default(4);

		s.tcp_flags = good_flags[i];
		cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_TCP), "flags %#x", good_flags[i]);
		cr_assert(eq(u8, pkt.tcp_flags, good_flags[i]));
	}
	cr_assert(eq(u64, st.ev[MRY_DEV_TCP_BAD_FLAGS], MRY_ARRAY_SIZE(bad_flags)));
}

Test(decode, tcp_port_zero_is_invalid)
{
	struct pb_spec s = pb_default(6);

	s.sport = 0;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_PORT_ZERO));
	s.sport = 1;
	s.dport = 0;
	cr_assert(eq(int, dec(&s, ALLF), MRY_DECODE_INVALID));
	cr_assert(eq(int, pkt.event, MRY_DEV_TCP_PORT_ZERO));
}

Test(decode, ethernet_trailer_is_ignored_and_counted)
{
	for (unsigned ver = 4; ver <= 6; ver += 2) {
		struct pb_spec s = pb_default(ver);
		uint32_t n;

		/* a 40-byte IPv4 SYN padded to the 60-byte minimum frame,
		 * with non-zero padding that must not become payload */
		s.tcp_flags = MRY_TCP_SYN;
		s.trailer = 6;
		n = pb_frame(fb, &s);
		memset(fb + n - 6, 0xee, 6);
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_TCP));
		cr_assert(eq(u32, pkt.payload_len, 0));
		cr_assert(eq(u32, pkt.l3_len, ver == 4 ? 40u : 60u));
		cr_assert(eq(u32, pkt.frame_len, n));
		cr_assert(eq(int, pkt.event, MRY_DEV_ETH_TRAILER));
		s.payload = (const uint8_t *)"250 OK\r\n";
		s.payload_len = 8;
		s.trailer = 3;
		n = pb_frame(fb, &s);
		cr_assert(eq(int, dec_n(fb, n, ALLF), MRY_DECODE_TCP));
		cr_assert(eq(u32, pkt.payload_len, 8));
	}
	cr_assert(eq(u64, st.ev[MRY_DEV_ETH_TRAILER], 4));
	cr_assert(eq(u64, st.invalid, 0));
	cr_assert(eq(u64, st.tcp, 4));
}

Test(decode, decode_ip_takes_a_bare_datagram)
{
	struct pb_spec s = pb_default(4);
	uint32_t n = pb_ip(fb, &s);

	cr_assert(eq(int, mry_decode_ip(fb, n, ALLF, &pkt, &st), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l3_off, 0));
	cr_assert(eq(u16, pkt.l4_off, 20));
	s = pb_default(6);
	n = pb_ip(fb, &s);
	cr_assert(eq(int, mry_decode_ip(fb, n, ALLF, &pkt, &st), MRY_DECODE_TCP));
	cr_assert(eq(u16, pkt.l4_off, 40));
	cr_assert(eq(int, mry_decode_ip(fb, 0, ALLF, &pkt, &st), MRY_DECODE_INVALID));
	cr_assert(eq(u64, st.pkts, 3));
}

Test(decode, every_event_has_a_unique_name)
{
	for (unsigned i = 0; i < MRY_DEV_MAX; i++) {
		const char *a = mry_decode_event_name((enum mry_decode_event)i);

		cr_assert(ne(int, strcmp(a, "unknown"), 0), "event %u", i);
		for (unsigned j = 0; j < i; j++)
			cr_assert(ne(int, strcmp(a, mry_decode_event_name((enum mry_decode_event)j)), 0),
				  "events %u and %u share %s", i, j, a);
	}
	cr_assert(eq(int, strcmp(mry_decode_event_name(MRY_DEV_TCP_BAD_CSUM), "tcp_bad_csum"), 0));
	cr_assert(eq(int, strcmp(mry_decode_event_name(MRY_DEV_NONE), "none"), 0));
}
