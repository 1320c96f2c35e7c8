/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Packet decode: Ethernet, 802.1Q/802.1ad (QinQ), IPv4, IPv6 (extension
 * header chain), TCP (options). Pure functions over bytes: no allocation,
 * no state except the caller's counters. IP fragments are recognised here
 * and reassembled by ipfrag.h; the reassembled datagram comes back through
 * mry_decode_ip().
 */
#ifndef MORAY_DECODE_H
#define MORAY_DECODE_H

#include <stdbool.h>
#include <stdint.h>

#include "moray/common.h"

enum mry_decode_result {
	MRY_DECODE_TCP = 0,   /* valid TCP segment: pkt fully filled */
	MRY_DECODE_OTHER,     /* valid, but not TCP (ARP, UDP, ICMP...): forward untouched */
	MRY_DECODE_FRAGMENT,  /* an IP fragment: pass to mry_ipfrag_add() */
	MRY_DECODE_INVALID,   /* malformed: the event says why (counted) */
};

/* One entry per reason; each is counted in mry_decode_stats.ev[]. */
enum mry_decode_event {
	MRY_DEV_ETH_TRUNCATED = 0,
	MRY_DEV_VLAN_TRUNCATED,
	MRY_DEV_VLAN_TOO_DEEP,        /* more than 2 tags */
	MRY_DEV_IPV4_TRUNCATED,
	MRY_DEV_IPV4_BAD_VERSION,
	MRY_DEV_IPV4_BAD_IHL,
	MRY_DEV_IPV4_BAD_TOTAL_LEN,
	MRY_DEV_IPV4_BAD_CSUM,
	MRY_DEV_IPV4_OPT_INVALID,
	MRY_DEV_IPV6_TRUNCATED,
	MRY_DEV_IPV6_BAD_VERSION,
	MRY_DEV_IPV6_BAD_PAYLOAD_LEN,
	MRY_DEV_IPV6_EXTHDR_TRUNCATED,
	MRY_DEV_IPV6_EXTHDR_TOO_MANY,
	MRY_DEV_IPV6_FRAG_BAD,
	MRY_DEV_TCP_TRUNCATED,
	MRY_DEV_TCP_BAD_HLEN,
	MRY_DEV_TCP_BAD_CSUM,
	MRY_DEV_TCP_OPT_INVALID,
	MRY_DEV_TCP_BAD_FLAGS,        /* SYN+FIN, SYN+RST, no flags at all ... */
	MRY_DEV_TCP_PORT_ZERO,
	MRY_DEV_ETH_TRAILER,          /* frame longer than IP says: padding ignored (not invalid) */
	MRY_DEV_IPV4_FRAG_BAD,        /* MF with length not a multiple of 8, empty, or past 65535 */
	MRY_DEV_IPV6_EXTHDR_BAD,      /* hop-by-hop not first, malformed option TLVs */
	MRY_DEV_MAX,
	/* pkt->event when nothing was seen; never counted (not an ev[] index) */
	MRY_DEV_NONE = MRY_DEV_MAX,
};

/* IPv6 extension headers walked before giving up (MRY_DEV_IPV6_EXTHDR_TOO_MANY) */
#define MRY_DECODE_IPV6_MAX_EXTHDR 8

struct mry_decode_stats {
	uint64_t pkts;
	uint64_t tcp;
	uint64_t other;
	uint64_t fragments;
	uint64_t invalid;
	uint64_t ev[MRY_DEV_MAX];
};

#define MRY_TCP_FIN 0x01
#define MRY_TCP_SYN 0x02
#define MRY_TCP_RST 0x04
#define MRY_TCP_PSH 0x08
#define MRY_TCP_ACK 0x10
#define MRY_TCP_URG 0x20
#define MRY_TCP_ECE 0x40
#define MRY_TCP_CWR 0x80

/* decode flags */
#define MRY_DECODE_F_VERIFY_TCP_CSUM 0x1u   /* on offline, off behind HW offload */
#define MRY_DECODE_F_VERIFY_IP_CSUM  0x2u   /* IPv4 header checksum (default on) */

/*
 * A decoded packet. Pointers point into the caller's buffer (zero copy);
 * addresses are in network byte order (IPv4 uses the first 4 bytes of
 * src/dst, the rest zero); ports, seq, ack, win in host order.
 */
struct mry_pkt {
	const uint8_t *frame;      /* start of Ethernet header, or of IP for mry_decode_ip() */
	const uint8_t *l3;
	const uint8_t *l4;
	const uint8_t *payload;
	uint32_t frame_len;
	uint32_t l3_len;           /* IP total length as the header says (trailer excluded) */
	uint32_t payload_len;      /* TCP payload bytes */
	uint16_t l3_off;           /* from frame */
	uint16_t l4_off;           /* from frame */
	uint16_t vlan[2];          /* TCI, outer first */
	uint8_t nb_vlan;
	uint8_t ip_version;        /* 4 or 6 */
	uint8_t l4_proto;          /* IPPROTO_* of the final header */
	uint8_t ttl;               /* TTL / hop limit */
	uint8_t src[16];
	uint8_t dst[16];
	/* TCP */
	uint16_t sport;
	uint16_t dport;
	uint32_t seq;
	uint32_t ack;
	uint16_t win;
	uint8_t tcp_flags;
	uint8_t tcp_hlen;          /* bytes */
	uint16_t mss;              /* 0 if absent */
	uint8_t wscale;            /* valid if has_wscale */
	bool has_wscale;
	bool sack_perm;
	bool has_ts;
	uint32_t ts_val;
	uint32_t ts_ecr;
	/* IP fragment (result MRY_DECODE_FRAGMENT) */
	uint32_t frag_id;          /* IPv4 ID or IPv6 fragment identification */
	uint16_t frag_off;         /* bytes */
	bool frag_more;
	uint8_t frag_next_proto;   /* IPv6: next header after the fragment header; IPv4: protocol */
	const uint8_t *frag_data;  /* fragment payload */
	uint32_t frag_data_len;
	uint16_t frag_unfrag_len;  /* bytes of IP header (+ unfragmentable ext headers) preceding frag_data */
	/* the last event seen (also for results other than INVALID, e.g. ETH_TRAILER) */
	enum mry_decode_event event;
};

/**
 * Decode an Ethernet frame. Fast-path safe, never reads outside
 * [frame, frame+len). Counts into @st (pkts, result class, events).
 * @return the result class; @pkt is filled as far as decoding went.
 */
enum mry_decode_result mry_decode_frame(const uint8_t *frame, uint32_t len,
					unsigned flags, struct mry_pkt *pkt,
					struct mry_decode_stats *st);

/**
 * Decode a bare IP datagram (IPv4 or IPv6, by version nibble), e.g. one that
 * mry_ipfrag_add() reassembled. Same contract as mry_decode_frame(); a
 * reassembled datagram has no fragment fields set and cannot return
 * MRY_DECODE_FRAGMENT.
 */
enum mry_decode_result mry_decode_ip(const uint8_t *ip, uint32_t len,
				     unsigned flags, struct mry_pkt *pkt,
				     struct mry_decode_stats *st);

/**
 * Whether the datagram a fragment (result MRY_DECODE_FRAGMENT) belongs to
 * may carry TCP, so that the fragment must be withheld until the datagram is
 * complete and judged. IPv4: the protocol is TCP. IPv6: the fragmentable
 * part's extension-header chain (Routing, Destination Options, AH; RFC 8200
 * §4.1 allows them after the fragment header) is walked as far as this
 * fragment carries it, at most MRY_DECODE_IPV6_MAX_EXTHDR headers in all:
 * true when it reaches TCP, or when it cannot be followed to its end here (a
 * later fragment, a header cut by the fragment boundary, too many headers:
 * the reassembled datagram decides); false when it ends in another protocol
 * (ESP, No Next Header, UDP, ICMPv6, ...). Fast-path safe.
 */
bool mry_decode_frag_may_be_tcp(const struct mry_pkt *pkt);

/** Stable snake_case name of an event ("tcp_bad_csum"), for logs and telemetry. */
const char *mry_decode_event_name(enum mry_decode_event ev);

/*
 * RFC 1071 internet checksum helpers, also used to build injected replies.
 * All values are in host order: store a result with a big-endian write
 * (htons()). mry_csum_partial() adds @data, read as big-endian 16-bit words,
 * to @sum (an odd trailing byte is padded with zero, so only the last piece
 * of a chained sum may have an odd length). mry_csum_fold() folds the carries
 * and returns the one's complement: the checksum to store, or 0 when the
 * summed bytes already contain a correct checksum.
 */
uint32_t mry_csum_partial(const void *data, uint32_t len, uint32_t sum);
uint16_t mry_csum_fold(uint32_t sum);
/**
 * TCP checksum over a pseudo-header (IPv4: 4-byte addresses, IPv6: 16) +
 * segment; returns the value to store (host order, write it big-endian)
 * when the caller zeroed the checksum field, or 0 when the segment's
 * checksum is already correct.
 */
uint16_t mry_tcp_csum(uint8_t ip_version, const uint8_t *src, const uint8_t *dst,
		      const uint8_t *tcp, uint32_t tcp_len);

#endif /* MORAY_DECODE_H */
