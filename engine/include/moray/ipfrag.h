/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * IP fragment reassembly (IPv4 and IPv6) with a bounded table: at most
 * max_datagrams in progress, each at most max_bytes, each dropped after
 * timeout. Overlapping fragments are an evasion (Ptacek & Newsham 1998):
 * counted, and answered by policy.
 */
#ifndef MORAY_IPFRAG_H
#define MORAY_IPFRAG_H

#include <stdint.h>

#include "moray/common.h"
#include "moray/decode.h"

enum mry_ipfrag_policy {
	/* default: an overlap with different bytes drops the whole datagram */
	MRY_IPFRAG_OVERLAP_DROP = 0,
	/* keep the first copy of each byte (flagged) */
	MRY_IPFRAG_OVERLAP_FIRST,
};

enum mry_ipfrag_result {
	MRY_IPFRAG_NEED_MORE = 0,   /* stored a copy, waiting for the rest */
	MRY_IPFRAG_COMPLETE,        /* *dgram holds the whole IP datagram */
	MRY_IPFRAG_DROPPED,         /* table full, too big, bad overlap ...: counted */
};

/* disjoint byte ranges held per datagram before it is dropped (holes_full) */
#define MRY_IPFRAG_MAX_RANGES 16
/* IP header + unfragmentable extension headers kept per datagram (too_big past it) */
#define MRY_IPFRAG_HDR_MAX 256
/* fragment data is stored in chunks of this many bytes from a shared pool */
#define MRY_IPFRAG_CHUNK 1024

struct mry_ipfrag_config {
	uint32_t max_datagrams;     /* default 1024 */
	uint32_t max_bytes;         /* per datagram, fragment data (offset + length), default 65535 + 40 */
	uint64_t timeout_ns;        /* default 30 s (RFC 791 suggests 15 s min; Linux uses 30 s) */
	enum mry_ipfrag_policy policy;
	/* fragment data memory for the whole table, preallocated at create;
	 * default max_datagrams * 8 KiB, raised to hold one max_bytes datagram */
	uint32_t mem_bytes;
};

struct mry_ipfrag_stats {
	uint64_t fragments;
	uint64_t completed;
	uint64_t timeouts;
	uint64_t table_full;
	uint64_t too_big;
	uint64_t overlap_same;      /* overlap with identical bytes (retransmission) */
	uint64_t overlap_conflict;  /* overlap with different bytes: evasion */
	uint64_t dropped;           /* fragments answered DROPPED, whatever the reason */
	uint32_t in_use;
	/* further drop reasons (each also counted in dropped) */
	uint64_t no_mem;            /* data pool (mem_bytes) exhausted */
	uint64_t holes_full;        /* more than MRY_IPFRAG_MAX_RANGES disjoint ranges */
	uint64_t inconsistent;      /* two different ends, data past the end, bad length */
};

struct mry_ipfrag_table;

/** NULL (logged) on bad config or no memory. Fills 0 config fields with defaults. */
struct mry_ipfrag_table *mry_ipfrag_create(const struct mry_alloc *a,
					   const struct mry_ipfrag_config *cfg);
void mry_ipfrag_destroy(struct mry_ipfrag_table *t);

/**
 * Add a fragment decoded by mry_decode_frame() (result MRY_DECODE_FRAGMENT).
 * The bytes are copied. On MRY_IPFRAG_COMPLETE, *dgram / *dgram_len give the
 * reassembled IP datagram (header rewritten: no fragment fields, correct
 * lengths and IPv4 checksum), valid until the next call on this table; decode
 * it with mry_decode_ip(). *conflict is set when an overlap with different
 * bytes was seen in this datagram (the caller records an evasion).
 */
enum mry_ipfrag_result mry_ipfrag_add(struct mry_ipfrag_table *t,
				      const struct mry_pkt *frag, uint64_t now_ns,
				      const uint8_t **dgram, uint32_t *dgram_len,
				      bool *conflict);

/**
 * When the oldest datagram in the table times out (mry_ipfrag_expire() drops
 * it at or after that time); UINT64_MAX when the table is empty.
 */
uint64_t mry_ipfrag_next_deadline(const struct mry_ipfrag_table *t);

/** Drop datagrams older than the timeout; at most @budget per call. */
void mry_ipfrag_expire(struct mry_ipfrag_table *t, uint64_t now_ns, unsigned budget);

void mry_ipfrag_get_stats(const struct mry_ipfrag_table *t, struct mry_ipfrag_stats *st);

#endif /* MORAY_IPFRAG_H */
