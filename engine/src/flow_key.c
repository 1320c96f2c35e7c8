/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Flow keys: the normalised 5-tuple of a packet (side 0 is the lower
 * (address, port) pair, so both directions build the same key) and its
 * hash. Per packet, before any table is touched; apart from flow_table.c
 * so the table file holds the table alone.
 */
#include <endian.h>
#include <string.h>

#include "flow_priv.h"

/* Symmetric by construction: both directions build the same key. */
uint32_t mry_flow_key_hash(const struct mry_flow_key *key)
{
	const uint8_t *b = (const uint8_t *)key;
	uint64_t h = HASH_K2 ^ sizeof(*key);

	static_assert(sizeof(struct mry_flow_key) == 40, "key layout");
	h = hash_round(h, load64(b));
	h = hash_round(h, load64(b + 8));
	h = hash_round(h, load64(b + 16));
	h = hash_round(h, load64(b + 24));
	h = hash_round(h, load64(b + 32));
	return hash_final(h);
}

/* memcmp() order of the addresses, then ports; inline, once per packet */
static int side_cmp(const uint8_t *a1, uint16_t p1, const uint8_t *a2, uint16_t p2)
{
	for (int i = 0; i < 16; i += 8) {
		uint64_t x, y;

		memcpy(&x, a1 + i, 8);
		memcpy(&y, a2 + i, 8);
		if (x != y)
			return be64toh(x) < be64toh(y) ? -1 : 1;
	}
	return (int)p1 - (int)p2;
}

void mry_flow_key_from_pkt(const struct mry_pkt *pkt, struct mry_flow_key *key,
			   uint8_t *side)
{
	uint8_t src[16] = {0}, dst[16] = {0};
	size_t alen = pkt->ip_version == 6 ? 16 : 4;
	uint8_t s;

	/* IPv4 uses 4 bytes: never hash whatever follows them */
	memcpy(src, pkt->src, alen);
	memcpy(dst, pkt->dst, alen);
	memset(key, 0, sizeof(*key));
	s = side_cmp(src, pkt->sport, dst, pkt->dport) <= 0 ? 0 : 1;
	memcpy(key->addr[s], src, 16);
	memcpy(key->addr[s ^ 1], dst, 16);
	key->port[s] = pkt->sport;
	key->port[s ^ 1] = pkt->dport;
	key->ip_version = pkt->ip_version;
	if (side != NULL)
		*side = s;
}
