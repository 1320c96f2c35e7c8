/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet decode: Ethernet (up to two 802.1Q/802.1ad tags), IPv4 (options,
 * fragments), IPv6 (extension header chain), TCP (options), plus the RFC 1071
 * checksum helpers. Pure functions over the caller's bytes: every read is
 * preceded by a length check against what the layer below vouched for, so no
 * input reads outside [frame, frame+len). The trade-off is strictness over
 * leniency: anything a receiving host could interpret in two ways (a short
 * header, a lying length, SYN+FIN) is reported INVALID with an event, because
 * a scanner that accepts what the server would drop, or the reverse, can be
 * evaded (Ptacek & Newsham 1998). The frame trailer (Ethernet padding past
 * the IP length) is ignored, as every IP stack does.
 */
#include <stddef.h>
#include <string.h>

#include "moray/decode.h"

#define ETH_HLEN 14
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86dd
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88a8
#define ETHERTYPE_QINQ_OLD 0x9100
#define VLAN_MAX_TAGS 2

#define IPV4_HLEN_MIN 20
#define IPV4_MF 0x2000
#define IPV4_OFF_MASK 0x1fff
#define IPV4_MAX_LEN 65535u
#define IPV6_HLEN 40

#define PROTO_HOPOPTS 0
#define PROTO_TCP 6
#define PROTO_ROUTING 43
#define PROTO_FRAGMENT 44
#define PROTO_ESP 50
#define PROTO_AH 51
#define PROTO_NONE 59
#define PROTO_DSTOPTS 60

#define TCP_HLEN_MIN 20
#define TCP_OPT_EOL 0
#define TCP_OPT_NOP 1
#define TCP_OPT_MSS 2
#define TCP_OPT_WSCALE 3
#define TCP_OPT_SACK_PERM 4
#define TCP_OPT_SACK 5
#define TCP_OPT_TS 8
#define TCP_WSCALE_MAX 14   /* RFC 7323 §2.3: larger values are treated as 14 */

static const char *const event_names[MRY_DEV_MAX] = {
	[MRY_DEV_ETH_TRUNCATED] = "eth_truncated",
	[MRY_DEV_VLAN_TRUNCATED] = "vlan_truncated",
	[MRY_DEV_VLAN_TOO_DEEP] = "vlan_too_deep",
	[MRY_DEV_IPV4_TRUNCATED] = "ipv4_truncated",
	[MRY_DEV_IPV4_BAD_VERSION] = "ipv4_bad_version",
	[MRY_DEV_IPV4_BAD_IHL] = "ipv4_bad_ihl",
	[MRY_DEV_IPV4_BAD_TOTAL_LEN] = "ipv4_bad_total_len",
	[MRY_DEV_IPV4_BAD_CSUM] = "ipv4_bad_csum",
	[MRY_DEV_IPV4_OPT_INVALID] = "ipv4_opt_invalid",
	[MRY_DEV_IPV6_TRUNCATED] = "ipv6_truncated",
	[MRY_DEV_IPV6_BAD_VERSION] = "ipv6_bad_version",
	[MRY_DEV_IPV6_BAD_PAYLOAD_LEN] = "ipv6_bad_payload_len",
	[MRY_DEV_IPV6_EXTHDR_TRUNCATED] = "ipv6_exthdr_truncated",
	[MRY_DEV_IPV6_EXTHDR_TOO_MANY] = "ipv6_exthdr_too_many",
	[MRY_DEV_IPV6_FRAG_BAD] = "ipv6_frag_bad",
	[MRY_DEV_TCP_TRUNCATED] = "tcp_truncated",
	[MRY_DEV_TCP_BAD_HLEN] = "tcp_bad_hlen",
	[MRY_DEV_TCP_BAD_CSUM] = "tcp_bad_csum",
	[MRY_DEV_TCP_OPT_INVALID] = "tcp_opt_invalid",
	[MRY_DEV_TCP_BAD_FLAGS] = "tcp_bad_flags",
	[MRY_DEV_TCP_PORT_ZERO] = "tcp_port_zero",
	[MRY_DEV_ETH_TRAILER] = "eth_trailer",
	[MRY_DEV_IPV4_FRAG_BAD] = "ipv4_frag_bad",
	[MRY_DEV_IPV6_EXTHDR_BAD] = "ipv6_exthdr_bad",
};

const char *mry_decode_event_name(enum mry_decode_event ev)
{
	if ((unsigned)ev < MRY_DEV_MAX && event_names[ev] != NULL)
		return event_names[ev];
	return ev == MRY_DEV_NONE ? "none" : "unknown";
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* ---- checksums (RFC 1071) ---------------------------------------------- */

static inline uint64_t fold64(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffu) + (acc >> 16);
	acc = (acc & 0xffffu) + (acc >> 16);
	return acc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CSUM_AVX2 1
#include <immintrin.h>

/*
 * Sum of the native 16-bit words of @nb 32-byte blocks: each 32-bit lane
 * takes the two 16-bit halves of its dword, so 16384 blocks (512 KiB) fit
 * before a lane could carry out; longer inputs go in batches.
 */
__attribute__((target("avx2")))
static uint64_t csum_blocks_avx2(const uint8_t *p, size_t nb)
{
	const __m256i lo16 = _mm256_set1_epi32(0xffff);
	uint64_t total = 0;

	while (nb > 0) {
		size_t n = nb > 16384 ? 16384 : nb;
		__m256i acc = _mm256_setzero_si256();
		uint32_t lane[8];

		for (size_t i = 0; i < n; i++) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(p + i * 32));

			acc = _mm256_add_epi32(acc, _mm256_and_si256(v, lo16));
			acc = _mm256_add_epi32(acc, _mm256_srli_epi32(v, 16));
		}
		_mm256_storeu_si256((__m256i *)lane, acc);
		for (int k = 0; k < 8; k++)
			total += lane[k];
		p += n * 32;
		nb -= n;
	}
	return total;
}
#else
#define CSUM_AVX2 0
#endif

/*
 * Sums native-endian 32-bit words (one's complement addition is byte-order
 * independent, RFC 1071 §2(B)) and swaps the folded result once, so the
 * returned partial sum is that of big-endian 16-bit words. On AVX2 CPUs a
 * TCP segment's 32-byte blocks are summed as 16-bit words in vector lanes
 * first: the same sum, in a third of the instructions.
 */
uint32_t mry_csum_partial(const void *data, uint32_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t acc = 0, acc2 = 0, vsum = 0;
	uint16_t r;

#if CSUM_AVX2
	if (len >= 128 && mry_cpu_avx2()) {
		vsum = csum_blocks_avx2(p, len / 32);
		p += len & ~31u;
		len &= 31u;
	}
#endif

	/* 64-bit words with end-around carry, two chains for ILP */
	while (len >= 16) {
		uint64_t a, b;

		memcpy(&a, p, 8);
		memcpy(&b, p + 8, 8);
		acc += a;
		acc += acc < a;
		acc2 += b;
		acc2 += acc2 < b;
		p += 16;
		len -= 16;
	}
	acc = (acc & 0xffffffffu) + (acc >> 32) + (acc2 & 0xffffffffu) + (acc2 >> 32) +
	      (vsum & 0xffffffffu) + (vsum >> 32);
	while (len >= 4) {
		uint32_t w;

		memcpy(&w, p, 4);
		acc += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len != 0) {
		uint8_t tmp[2] = { p[0], 0 };
		uint16_t w;

		memcpy(&w, tmp, 2);
		acc += w;
	}
	r = (uint16_t)fold64(acc);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	r = __builtin_bswap16(r);
#endif
	return (uint32_t)fold64((uint64_t)sum + r);
}

/*
 * A header's checksum is right when its words, checksum included, sum to
 * 0xffff (RFC 1071): mry_csum_fold(mry_csum_partial(ip, ihl, 0)) == 0,
 * inlined for the 20 to 60 bytes of every IPv4 header.
 */
static inline bool ipv4_hdr_csum_ok(const uint8_t *ip, uint32_t ihl)
{
	uint64_t acc = 0;

	for (uint32_t i = 0; i < ihl; i += 4) {
		uint32_t w;

		memcpy(&w, ip + i, 4);
		acc += w;
	}
	return fold64(acc) == 0xffff;
}

uint16_t mry_csum_fold(uint32_t sum)
{
	return (uint16_t)~fold64(sum);
}

static uint32_t pseudo_sum(uint8_t ip_version, const uint8_t *src,
			   const uint8_t *dst, uint32_t tcp_len)
{
	unsigned alen = ip_version == 6 ? 16 : 4;
	uint32_t sum;

	/* big-endian words of the addresses, summed in place: a call per
	 * 4-byte address cost more than the segment's own words */
	sum = 0;
	for (unsigned i = 0; i < alen; i += 2)
		sum += (uint32_t)rd16(src + i) + rd16(dst + i);
	/* RFC 793 (12-byte) and RFC 8200 §8.1 (40-byte) pseudo-headers */
	sum += PROTO_TCP + (tcp_len >> 16) + (tcp_len & 0xffff);
	return sum;
}

uint16_t mry_tcp_csum(uint8_t ip_version, const uint8_t *src, const uint8_t *dst,
		      const uint8_t *tcp, uint32_t tcp_len)
{
	uint32_t sum = pseudo_sum(ip_version, src, dst, tcp_len);

	return mry_csum_fold(mry_csum_partial(tcp, tcp_len, sum));
}

/* ---- helpers ----------------------------------------------------------- */

static enum mry_decode_result bad(struct mry_pkt *pkt,
				  struct mry_decode_stats *st,
				  enum mry_decode_event ev)
{
	pkt->event = ev;
	st->ev[ev]++;
	st->invalid++;
	return MRY_DECODE_INVALID;
}

static inline void note(struct mry_pkt *pkt, struct mry_decode_stats *st,
			enum mry_decode_event ev)
{
	pkt->event = ev;
	st->ev[ev]++;
}

static inline enum mry_decode_result other(struct mry_decode_stats *st)
{
	st->other++;
	return MRY_DECODE_OTHER;
}

/* ---- TCP (RFC 9293 §3.1, options RFC 7323, RFC 2018) -------------------- */

static bool tcp_options(struct mry_pkt *pkt, const uint8_t *o, uint32_t len)
{
	uint32_t i = 0;

	while (i < len) {
		uint8_t kind = o[i];
		uint8_t olen;

		if (kind == TCP_OPT_EOL)
			break;
		if (kind == TCP_OPT_NOP) {
			i++;
			continue;
		}
		if (i + 2 > len)
			return false;
		olen = o[i + 1];
		if (olen < 2 || i + olen > len)
			return false;
		switch (kind) {
		case TCP_OPT_MSS:
			if (olen != 4)
				return false;
			pkt->mss = rd16(o + i + 2);
			break;
		case TCP_OPT_WSCALE:
			if (olen != 3)
				return false;
			pkt->wscale = MRY_MIN(o[i + 2], TCP_WSCALE_MAX);
			pkt->has_wscale = true;
			break;
		case TCP_OPT_SACK_PERM:
			if (olen != 2)
				return false;
			pkt->sack_perm = true;
			break;
		case TCP_OPT_SACK:
			if (olen < 10 || (olen - 2) % 8 != 0)
				return false;
			break;
		case TCP_OPT_TS:
			if (olen != 10)
				return false;
			pkt->has_ts = true;
			pkt->ts_val = rd32(o + i + 2);
			pkt->ts_ecr = rd32(o + i + 6);
			break;
		default:
			break;
		}
		i += olen;
	}
	return true;
}

/*
 * @tcp: first byte of the segment; @seglen: bytes the IP layer says the
 * segment has (already within the buffer). @csum_dst: destination address
 * for the pseudo-header (IPv6 routing header: the final one).
 */
static enum mry_decode_result decode_tcp(struct mry_pkt *pkt,
					 struct mry_decode_stats *st,
					 unsigned flags, const uint8_t *tcp,
					 uint32_t seglen, const uint8_t *csum_dst)
{
	uint32_t hlen;
	uint8_t fl;

	pkt->l4 = tcp;
	pkt->l4_off = (uint16_t)(tcp - pkt->frame);
	pkt->l4_proto = PROTO_TCP;
	if (mry_unlikely(seglen < TCP_HLEN_MIN))
		return bad(pkt, st, MRY_DEV_TCP_TRUNCATED);
	pkt->sport = rd16(tcp);
	pkt->dport = rd16(tcp + 2);
	pkt->seq = rd32(tcp + 4);
	pkt->ack = rd32(tcp + 8);
	hlen = (uint32_t)(tcp[12] >> 4) * 4;
	fl = tcp[13];
	pkt->tcp_flags = fl;
	pkt->win = rd16(tcp + 14);
	pkt->tcp_hlen = (uint8_t)hlen;
	if (mry_unlikely(hlen < TCP_HLEN_MIN || hlen > seglen))
		return bad(pkt, st, MRY_DEV_TCP_BAD_HLEN);
	if (mry_unlikely(pkt->sport == 0 || pkt->dport == 0))
		return bad(pkt, st, MRY_DEV_TCP_PORT_ZERO);
	/* hosts disagree on these (RFC 9293 leaves them undefined): refuse */
	if (mry_unlikely((fl & (MRY_TCP_SYN | MRY_TCP_FIN)) ==
			 (MRY_TCP_SYN | MRY_TCP_FIN) ||
			 (fl & (MRY_TCP_SYN | MRY_TCP_RST)) ==
			 (MRY_TCP_SYN | MRY_TCP_RST) || fl == 0))
		return bad(pkt, st, MRY_DEV_TCP_BAD_FLAGS);
	if (hlen > TCP_HLEN_MIN &&
	    mry_unlikely(!tcp_options(pkt, tcp + TCP_HLEN_MIN,
				      hlen - TCP_HLEN_MIN)))
		return bad(pkt, st, MRY_DEV_TCP_OPT_INVALID);
	if ((flags & MRY_DECODE_F_VERIFY_TCP_CSUM) != 0 &&
	    mry_tcp_csum(pkt->ip_version, pkt->src, csum_dst, tcp, seglen) != 0)
		return bad(pkt, st, MRY_DEV_TCP_BAD_CSUM);
	pkt->payload = tcp + hlen;
	pkt->payload_len = seglen - hlen;
	st->tcp++;
	return MRY_DECODE_TCP;
}

/* ---- IPv4 (RFC 791) ---------------------------------------------------- */

/* RFC 791 §3.1: EOL and NOP are one byte, others carry a length >= 2. */
static bool ipv4_options_ok(const uint8_t *o, uint32_t len)
{
	uint32_t i = 0;

	while (i < len) {
		if (o[i] == 0)
			return true;
		if (o[i] == 1) {
			i++;
			continue;
		}
		if (i + 2 > len || o[i + 1] < 2 || i + o[i + 1] > len)
			return false;
		i += o[i + 1];
	}
	return true;
}

static enum mry_decode_result decode_ipv4(struct mry_pkt *pkt,
					  struct mry_decode_stats *st,
					  unsigned flags, uint32_t off)
{
	const uint8_t *ip = pkt->frame + off;
	uint32_t avail = pkt->frame_len - off;
	uint32_t ihl, total, fo;

	pkt->ip_version = 4;
	pkt->l3 = ip;
	pkt->l3_off = (uint16_t)off;
	if (mry_unlikely(avail < IPV4_HLEN_MIN))
		return bad(pkt, st, MRY_DEV_IPV4_TRUNCATED);
	if (mry_unlikely((ip[0] >> 4) != 4))
		return bad(pkt, st, MRY_DEV_IPV4_BAD_VERSION);
	ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	if (mry_unlikely(ihl < IPV4_HLEN_MIN))
		return bad(pkt, st, MRY_DEV_IPV4_BAD_IHL);
	if (mry_unlikely(ihl > avail))
		return bad(pkt, st, MRY_DEV_IPV4_TRUNCATED);
	total = rd16(ip + 2);
	if (mry_unlikely(total < ihl))
		return bad(pkt, st, MRY_DEV_IPV4_BAD_TOTAL_LEN);
	if (mry_unlikely(total > avail))
		return bad(pkt, st, MRY_DEV_IPV4_TRUNCATED);
	pkt->l3_len = total;
	pkt->ttl = ip[8];
	pkt->l4_proto = ip[9];
	memcpy(pkt->src, ip + 12, 4);
	memcpy(pkt->dst, ip + 16, 4);
	if ((flags & MRY_DECODE_F_VERIFY_IP_CSUM) != 0 &&
	    mry_unlikely(!ipv4_hdr_csum_ok(ip, ihl)))
		return bad(pkt, st, MRY_DEV_IPV4_BAD_CSUM);
	if (ihl > IPV4_HLEN_MIN &&
	    mry_unlikely(!ipv4_options_ok(ip + IPV4_HLEN_MIN, ihl - IPV4_HLEN_MIN)))
		return bad(pkt, st, MRY_DEV_IPV4_OPT_INVALID);
	if (total < avail)
		note(pkt, st, MRY_DEV_ETH_TRAILER);

	fo = rd16(ip + 6);
	if ((fo & (IPV4_MF | IPV4_OFF_MASK)) != 0) {
		pkt->frag_id = rd16(ip + 4);
		pkt->frag_off = (uint16_t)((fo & IPV4_OFF_MASK) * 8);
		pkt->frag_more = (fo & IPV4_MF) != 0;
		pkt->frag_next_proto = ip[9];
		pkt->frag_data = ip + ihl;
		pkt->frag_data_len = total - ihl;
		pkt->frag_unfrag_len = (uint16_t)ihl;
		/* RFC 791: all but the last carry multiples of 8 bytes; a
		 * datagram past 65535 bytes is the "ping of death" */
		if (mry_unlikely(pkt->frag_data_len == 0 ||
				 (pkt->frag_more && pkt->frag_data_len % 8 != 0) ||
				 ihl + pkt->frag_off + pkt->frag_data_len > IPV4_MAX_LEN))
			return bad(pkt, st, MRY_DEV_IPV4_FRAG_BAD);
		st->fragments++;
		return MRY_DECODE_FRAGMENT;
	}
	if (pkt->l4_proto != PROTO_TCP)
		return other(st);
	return decode_tcp(pkt, st, flags, ip + ihl, total - ihl, pkt->dst);
}

/* ---- IPv6 (RFC 8200) --------------------------------------------------- */

/* RFC 8200 §4.2: Pad1 is one byte, other options type + length + data. */
static bool ipv6_options_ok(const uint8_t *h, uint32_t hlen)
{
	uint32_t i = 2;

	while (i < hlen) {
		if (h[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > hlen)
			return false;
		i += 2u + h[i + 1];
	}
	return i == hlen;
}

/*
 * Routing header with segments left: the TCP pseudo-header uses the final
 * destination (RFC 8200 §8.1): the last address of a type 0 header, the
 * only one of type 2 (RFC 6275), segment list[0] of an SRH (RFC 8754).
 */
static const uint8_t *routing_final_dst(const uint8_t *h, uint32_t hlen)
{
	uint32_t n = (hlen - 8) / 16;

	if (h[3] == 0 || n == 0)
		return NULL;
	switch (h[2]) {
	case 0:
		return h + 8 + 16 * (n - 1);
	case 2:
	case 4:
		return h + 8;
	default:
		return NULL;
	}
}

static enum mry_decode_result decode_ipv6(struct mry_pkt *pkt,
					  struct mry_decode_stats *st,
					  unsigned flags, uint32_t off)
{
	const uint8_t *ip = pkt->frame + off;
	uint32_t avail = pkt->frame_len - off;
	const uint8_t *csum_dst;
	uint32_t end, p;
	unsigned nb_ext = 0;
	uint8_t nh;

	pkt->ip_version = 6;
	pkt->l3 = ip;
	pkt->l3_off = (uint16_t)off;
	if (mry_unlikely(avail < IPV6_HLEN))
		return bad(pkt, st, MRY_DEV_IPV6_TRUNCATED);
	if (mry_unlikely((ip[0] >> 4) != 6))
		return bad(pkt, st, MRY_DEV_IPV6_BAD_VERSION);
	end = IPV6_HLEN + rd16(ip + 4);
	nh = ip[6];
	pkt->ttl = ip[7];
	memcpy(pkt->src, ip + 8, 16);
	memcpy(pkt->dst, ip + 24, 16);
	pkt->l4_proto = nh;
	/* payload length 0 means a jumbogram (RFC 2675): not on Ethernet */
	if (mry_unlikely(end == IPV6_HLEN && nh != PROTO_NONE))
		return bad(pkt, st, MRY_DEV_IPV6_BAD_PAYLOAD_LEN);
	if (mry_unlikely(end > avail))
		return bad(pkt, st, MRY_DEV_IPV6_TRUNCATED);
	pkt->l3_len = end;
	if (end < avail)
		note(pkt, st, MRY_DEV_ETH_TRAILER);

	csum_dst = pkt->dst;
	p = IPV6_HLEN;
	for (;;) {
		const uint8_t *h = ip + p;
		uint32_t hlen;

		pkt->l4_proto = nh;
		switch (nh) {
		case PROTO_TCP:
			return decode_tcp(pkt, st, flags, h, end - p, csum_dst);
		case PROTO_HOPOPTS:
		case PROTO_ROUTING:
		case PROTO_DSTOPTS:
		case PROTO_AH:
		case PROTO_FRAGMENT:
			break;
		default:
			/* ESP, no next header, UDP, ICMPv6, unknown */
			return other(st);
		}
		if (mry_unlikely(++nb_ext > MRY_DECODE_IPV6_MAX_EXTHDR))
			return bad(pkt, st, MRY_DEV_IPV6_EXTHDR_TOO_MANY);
		if (mry_unlikely(end - p < 8))
			return bad(pkt, st, MRY_DEV_IPV6_EXTHDR_TRUNCATED);
		if (nh == PROTO_FRAGMENT) {
			uint16_t fo = rd16(h + 2);

			nh = h[0];
			if ((fo & 0xfff9) == 0) {
				/* atomic fragment (RFC 6946): not a fragment */
				p += 8;
				continue;
			}
			pkt->frag_id = rd32(h + 4);
			pkt->frag_off = (uint16_t)(fo & 0xfff8);
			pkt->frag_more = (fo & 1) != 0;
			pkt->frag_next_proto = nh;
			pkt->frag_data = h + 8;
			pkt->frag_data_len = end - p - 8;
			pkt->frag_unfrag_len = (uint16_t)p;
			pkt->l4_proto = nh;
			/* RFC 8200 §4.5: non-last fragments are multiples of
			 * 8 bytes; the datagram stays below 65535 + 40 */
			if (mry_unlikely(pkt->frag_data_len == 0 ||
					 (pkt->frag_more &&
					  pkt->frag_data_len % 8 != 0) ||
					 p - IPV6_HLEN + pkt->frag_off +
					 pkt->frag_data_len > 65535u))
				return bad(pkt, st, MRY_DEV_IPV6_FRAG_BAD);
			st->fragments++;
			return MRY_DECODE_FRAGMENT;
		}
		if (nh == PROTO_AH)
			hlen = ((uint32_t)h[1] + 2) * 4;   /* RFC 4302 §2.2 */
		else
			hlen = ((uint32_t)h[1] + 1) * 8;
		if (mry_unlikely(hlen > end - p))
			return bad(pkt, st, MRY_DEV_IPV6_EXTHDR_TRUNCATED);
		if (nh == PROTO_HOPOPTS && mry_unlikely(p != IPV6_HLEN))
			return bad(pkt, st, MRY_DEV_IPV6_EXTHDR_BAD);
		if ((nh == PROTO_HOPOPTS || nh == PROTO_DSTOPTS) &&
		    mry_unlikely(!ipv6_options_ok(h, hlen)))
			return bad(pkt, st, MRY_DEV_IPV6_EXTHDR_BAD);
		if (nh == PROTO_ROUTING) {
			const uint8_t *fd = routing_final_dst(h, hlen);

			if (fd != NULL)
				csum_dst = fd;
		}
		nh = h[0];
		p += hlen;
	}
}

bool mry_decode_frag_may_be_tcp(const struct mry_pkt *pkt)
{
	const uint8_t *h = pkt->frag_data;
	uint32_t left = pkt->frag_data_len;
	unsigned nb_ext = 0;
	uint8_t nh = pkt->frag_next_proto;

	if (pkt->ip_version != 6)
		return nh == PROTO_TCP;
	/* the whole chain's bound is checked again on the reassembled datagram */
	for (;;) {
		uint32_t hlen;

		switch (nh) {
		case PROTO_TCP:
			return true;
		case PROTO_ROUTING:
		case PROTO_DSTOPTS:
		case PROTO_AH:
		case PROTO_HOPOPTS:  /* misplaced: the datagram's decode refuses it */
			break;
		default:
			return false;
		}
		/* only the first fragment holds the start of the chain */
		if (pkt->frag_off != 0 || left < 8 ||
		    ++nb_ext > MRY_DECODE_IPV6_MAX_EXTHDR)
			return true;
		hlen = nh == PROTO_AH ? ((uint32_t)h[1] + 2) * 4 :
			((uint32_t)h[1] + 1) * 8;
		if (hlen > left)
			return true;
		nh = h[0];
		h += hlen;
		left -= hlen;
	}
}

/* ---- entry points ------------------------------------------------------ */

static inline void pkt_init(struct mry_pkt *pkt, const uint8_t *frame,
			    uint32_t len)
{
	memset(pkt, 0, sizeof(*pkt));
	pkt->frame = frame;
	pkt->frame_len = len;
	pkt->event = MRY_DEV_NONE;
}

enum mry_decode_result mry_decode_frame(const uint8_t *frame, uint32_t len,
					unsigned flags, struct mry_pkt *pkt,
					struct mry_decode_stats *st)
{
	uint32_t off = ETH_HLEN;
	uint16_t type;

	pkt_init(pkt, frame, len);
	st->pkts++;
	if (mry_unlikely(len < ETH_HLEN))
		return bad(pkt, st, MRY_DEV_ETH_TRUNCATED);
	type = rd16(frame + 12);
	while (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ ||
	       type == ETHERTYPE_QINQ_OLD) {
		if (mry_unlikely(pkt->nb_vlan == VLAN_MAX_TAGS))
			return bad(pkt, st, MRY_DEV_VLAN_TOO_DEEP);
		if (mry_unlikely(len - off < 4))
			return bad(pkt, st, MRY_DEV_VLAN_TRUNCATED);
		pkt->vlan[pkt->nb_vlan++] = rd16(frame + off);
		type = rd16(frame + off + 2);
		off += 4;
	}
	if (type == ETHERTYPE_IPV4)
		return decode_ipv4(pkt, st, flags, off);
	if (type == ETHERTYPE_IPV6)
		return decode_ipv6(pkt, st, flags, off);
	pkt->l3 = frame + off;
	pkt->l3_off = (uint16_t)off;
	return other(st);
}

enum mry_decode_result mry_decode_ip(const uint8_t *ip, uint32_t len,
				     unsigned flags, struct mry_pkt *pkt,
				     struct mry_decode_stats *st)
{
	pkt_init(pkt, ip, len);
	st->pkts++;
	if (mry_unlikely(len == 0))
		return bad(pkt, st, MRY_DEV_IPV4_TRUNCATED);
	if ((ip[0] >> 4) == 6)
		return decode_ipv6(pkt, st, flags, 0);
	return decode_ipv4(pkt, st, flags, 0);
}
