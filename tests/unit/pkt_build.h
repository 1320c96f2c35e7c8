/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test helpers: build Ethernet/VLAN/IPv4/IPv6/TCP frames byte by byte, with
 * checksums from a naive reference implementation (independent of the
 * engine's mry_csum_*), for test_decode.c and test_ipfrag.c.
 */
#ifndef MORAY_TESTS_PKT_BUILD_H
#define MORAY_TESTS_PKT_BUILD_H

#include <stdint.h>
#include <string.h>

#define PB_MAX 4096

struct pb_spec {
	unsigned nb_tags;
	uint16_t tpid[3];
	uint16_t tci[3];
	uint16_t ethertype;        /* 0: from ipver */
	unsigned ipver;            /* 4 or 6 */
	const uint8_t *ipopt;      /* IPv4 options, multiple of 4 */
	uint32_t ipopt_len;
	const uint8_t *ext;        /* IPv6 extension headers, chained by caller */
	uint32_t ext_len;
	uint8_t ext_first_nh;      /* next header of the IPv6 header when ext */
	uint16_t v4_frag;          /* IPv4 flags + fragment offset field */
	uint16_t v4_id;
	uint8_t l4proto;           /* 0: TCP */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t win;
	const uint8_t *tcpopt;     /* multiple of 4 */
	uint32_t tcpopt_len;
	const uint8_t *payload;
	uint32_t payload_len;
	uint32_t trailer;          /* Ethernet padding after the datagram */
	const uint8_t *csum_dst;   /* IPv6 pseudo-header destination override */
};

static inline void pb_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void pb_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* naive RFC 1071 sum: big-endian 16-bit words, byte by byte */
static inline uint32_t pb_sum(const uint8_t *p, uint32_t len, uint32_t sum)
{
	for (uint32_t i = 0; i < len; i++)
		sum += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	return sum;
}

static inline uint16_t pb_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static const uint8_t pb_src4[4] = { 192, 0, 2, 1 };
static const uint8_t pb_dst4[4] = { 198, 51, 100, 25 };
static const uint8_t pb_src6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
				     0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t pb_dst6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
				     0, 0, 0, 0, 0, 0, 0, 0x25 };

static inline struct pb_spec pb_default(unsigned ipver)
{
	struct pb_spec s;

	memset(&s, 0, sizeof(s));
	s.ipver = ipver;
	s.sport = 40000;
	s.dport = 25;
	s.seq = 0x01020304;
	s.ack = 0xa0b0c0d0;
	s.tcp_flags = 0x18; /* PSH|ACK */
	s.win = 29200;
	s.v4_id = 0x1234;
	return s;
}

/* TCP segment (or raw l4 payload) into @p; returns its length */
static inline uint32_t pb_l4(uint8_t *p, const struct pb_spec *s)
{
	uint32_t hl = 20 + s->tcpopt_len;

	if (s->l4proto != 0 && s->l4proto != 6) {
		if (s->payload_len)
			memcpy(p, s->payload, s->payload_len);
		return s->payload_len;
	}
	memset(p, 0, hl);
	pb_put16(p, s->sport);
	pb_put16(p + 2, s->dport);
	pb_put32(p + 4, s->seq);
	pb_put32(p + 8, s->ack);
	p[12] = (uint8_t)((hl / 4) << 4);
	p[13] = s->tcp_flags;
	pb_put16(p + 14, s->win);
	if (s->tcpopt_len)
		memcpy(p + 20, s->tcpopt, s->tcpopt_len);
	if (s->payload_len)
		memcpy(p + hl, s->payload, s->payload_len);
	return hl + s->payload_len;
}

static inline void pb_tcp_csum(uint8_t *tcp, uint32_t len, unsigned ipver,
			       const uint8_t *src, const uint8_t *dst)
{
	unsigned alen = ipver == 6 ? 16 : 4;
	uint32_t sum = 0;

	pb_put16(tcp + 16, 0);
	sum = pb_sum(src, alen, sum);
	sum = pb_sum(dst, alen, sum);
	sum += 6 + (len >> 16) + (len & 0xffff);
	sum = pb_sum(tcp, len, sum);
	pb_put16(tcp + 16, pb_fold(sum));
}

/* IP datagram (no Ethernet) into @p; returns its length */
static inline uint32_t pb_ip(uint8_t *p, const struct pb_spec *s)
{
	uint8_t proto = s->l4proto ? s->l4proto : 6;
	uint32_t hl, l4len;

	if (s->ipver == 4) {
		hl = 20 + s->ipopt_len;
		memset(p, 0, hl);
		p[0] = (uint8_t)(0x40 | (hl / 4));
		pb_put16(p + 4, s->v4_id);
		pb_put16(p + 6, s->v4_frag);
		p[8] = 64;
		p[9] = proto;
		memcpy(p + 12, pb_src4, 4);
		memcpy(p + 16, pb_dst4, 4);
		if (s->ipopt_len)
			memcpy(p + 20, s->ipopt, s->ipopt_len);
		l4len = pb_l4(p + hl, s);
		if (proto == 6)
			pb_tcp_csum(p + hl, l4len, 4, pb_src4, pb_dst4);
		pb_put16(p + 2, (uint16_t)(hl + l4len));
		pb_put16(p + 10, pb_fold(pb_sum(p, hl, 0)));
		return hl + l4len;
	}
	hl = 40 + s->ext_len;
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = s->ext_len ? s->ext_first_nh : proto;
	p[7] = 64;
	memcpy(p + 8, pb_src6, 16);
	memcpy(p + 24, pb_dst6, 16);
	if (s->ext_len)
		memcpy(p + 40, s->ext, s->ext_len);
	l4len = pb_l4(p + hl, s);
	if (proto == 6)
		pb_tcp_csum(p + hl, l4len, 6, pb_src6,
			    s->csum_dst ? s->csum_dst : pb_dst6);
	pb_put16(p + 4, (uint16_t)(s->ext_len + l4len));
	return hl + l4len;
}

/* Ethernet frame into @f; returns its length */
static inline uint32_t pb_frame(uint8_t *f, const struct pb_spec *s)
{
	static const uint8_t mac[12] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2 };
	uint32_t off = 12, n;

	memcpy(f, mac, 12);
	for (unsigned i = 0; i < s->nb_tags; i++) {
		pb_put16(f + off, s->tpid[i]);
		pb_put16(f + off + 2, s->tci[i]);
		off += 4;
	}
	pb_put16(f + off, s->ethertype ? s->ethertype :
		 (s->ipver == 6 ? 0x86dd : 0x0800));
	off += 2;
	n = pb_ip(f + off, s);
	memset(f + off + n, 0, s->trailer);
	return off + n + s->trailer;
}

/*
 * One Ethernet/IPv4/TCP frame between two given endpoints (no options, DF,
 * TTL 64, window 65535), for tests that play whole connections; returns
 * its length.
 */
static inline uint32_t pb_tcp4_frame(uint8_t *b, const uint8_t dmac[6], const uint8_t smac[6],
				     const uint8_t sip[4], const uint8_t dip[4],
				     uint16_t sport, uint16_t dport, uint32_t seq,
				     uint32_t ack, uint8_t flags, const void *payload,
				     uint32_t plen)
{
	uint8_t *ip = b + 14, *tcp = b + 34;

	memcpy(b, dmac, 6);
	memcpy(b + 6, smac, 6);
	pb_put16(b + 12, 0x0800);
	memset(ip, 0, 20);
	ip[0] = 0x45;
	pb_put16(ip + 2, (uint16_t)(40 + plen));
	ip[6] = 0x40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, sip, 4);
	memcpy(ip + 16, dip, 4);
	pb_put16(ip + 10, pb_fold(pb_sum(ip, 20, 0)));
	memset(tcp, 0, 20);
	pb_put16(tcp, sport);
	pb_put16(tcp + 2, dport);
	pb_put32(tcp + 4, seq);
	pb_put32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	pb_put16(tcp + 14, 65535);
	if (plen > 0)
		memcpy(tcp + 20, payload, plen);
	pb_tcp_csum(tcp, 20 + plen, 4, sip, dip);
	return 54 + plen;
}

#endif /* MORAY_TESTS_PKT_BUILD_H */
