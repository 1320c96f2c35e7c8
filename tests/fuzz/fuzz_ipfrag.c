/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz IP fragment reassembly on its own. Unlike fuzz_decode, whose frames
 * must first pass the decoder, every record here becomes a well-formed
 * IPv4 or IPv6 fragment, so the mutations reach the table: overlaps, holes,
 * two ends, data past the end, table and memory limits, timeouts.
 *
 * Input: one config byte (bit 0: FIRST overlap policy, bits 1-2: table of
 * 1/2/4/8 datagrams, bit 3: memory for one datagram only), then records of
 *   [flags] (bit 0: IPv6, bit 1: more fragments, bits 2-3: datagram id 0-3,
 *            bits 4-7: time step in units of 1/8 of the timeout)
 *   [offset, 2 bytes big-endian, in 8-byte units, 13 bits]
 *   [length, 1 byte: payload bytes = length * 8 + (flags & 2 ? 0 : low bits)]
 *   [payload: that many bytes from the input, zero-padded at the end]
 * Checked: a completed datagram decodes in bounds and is no longer than the
 * configured limit; the counters stay consistent.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/decode.h"
#include "moray/ipfrag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TIMEOUT_NS 8000u

static size_t build(uint8_t *pkt, unsigned flags, unsigned off8, const uint8_t *pl,
		    size_t plen)
{
	unsigned id = (flags >> 2) & 3u;
	bool more = (flags & 2u) != 0;
	size_t h;

	if (flags & 1u) {
		/* IPv6 + fragment header, next header TCP */
		memset(pkt, 0, 48);
		pkt[0] = 0x60;
		pkt[4] = (uint8_t)((plen + 8) >> 8);
		pkt[5] = (uint8_t)(plen + 8);
		pkt[6] = 44;
		pkt[7] = 64;
		pkt[8 + 15] = 1;        /* src ::1 */
		pkt[24 + 15] = 2;       /* dst ::2 */
		pkt[40] = 6;
		pkt[42] = (uint8_t)(off8 >> 5);
		pkt[43] = (uint8_t)((off8 << 3) | (more ? 1u : 0u));
		pkt[47] = (uint8_t)(id + 1);
		h = 48;
	} else {
		uint32_t sum;
		uint16_t c;
		size_t tot = 20 + plen;

		memset(pkt, 0, 20);
		pkt[0] = 0x45;
		pkt[2] = (uint8_t)(tot >> 8);
		pkt[3] = (uint8_t)tot;
		pkt[5] = (uint8_t)(id + 1);
		pkt[6] = (uint8_t)(((more ? 0x20u : 0u)) | ((off8 >> 8) & 0x1fu));
		pkt[7] = (uint8_t)off8;
		pkt[8] = 64;
		pkt[9] = 6;
		pkt[12] = 192;
		pkt[15] = 1;
		pkt[16] = 192;
		pkt[19] = 2;
		sum = mry_csum_partial(pkt, 20, 0);
		c = mry_csum_fold(sum);
		pkt[10] = (uint8_t)(c >> 8);
		pkt[11] = (uint8_t)c;
		h = 20;
	}
	memcpy(pkt + h, pl, plen);
	return h + plen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t tables[] = { 1, 2, 4, 8 };
	struct mry_ipfrag_config cfg = {
		.max_bytes = 65535 + 40,
		.timeout_ns = TIMEOUT_NS,
	};
	struct mry_decode_stats dst;
	struct mry_ipfrag_stats st;
	struct mry_ipfrag_table *t;
	uint64_t now = 0, adds = 0;

	if (size < 1)
		return 0;
	cfg.policy = (data[0] & 1u) ? MRY_IPFRAG_OVERLAP_FIRST : MRY_IPFRAG_OVERLAP_DROP;
	cfg.max_datagrams = tables[(data[0] >> 1) & 3u];
	cfg.mem_bytes = (data[0] & 8u) ? 1 : 0;   /* 1: raised to one max_bytes datagram */
	data++;
	size--;
	memset(&dst, 0, sizeof(dst));
	t = mry_ipfrag_create(mry_alloc_default(), &cfg);
	if (t == NULL)
		abort();
	while (size >= 4) {
		unsigned flags = data[0];
		unsigned off8 = ((unsigned)data[1] << 8 | data[2]) & 0x1fffu;
		size_t plen = (size_t)data[3] * 8u + ((flags & 2u) ? 0u : (data[3] & 7u));
		uint8_t pl[2048 + 8], *pkt;
		struct mry_pkt p;
		size_t n;

		data += 4;
		size -= 4;
		if (plen > 2048)
			plen = 2048;
		memset(pl, 0, plen);
		memcpy(pl, data, plen < size ? plen : size);
		data += plen < size ? plen : size;
		size -= plen < size ? plen : size;
		/* exact-size buffer so ASan sees any overread */
		pkt = malloc(48 + plen);
		if (pkt == NULL)
			abort();
		n = build(pkt, flags, off8, pl, plen);
		now += (uint64_t)(flags >> 4) * (TIMEOUT_NS / 8);
		if (mry_decode_ip(pkt, (uint32_t)n, 0, &p, &dst) == MRY_DECODE_FRAGMENT) {
			const uint8_t *dg;
			uint32_t dlen;
			bool conflict = false;

			adds++;
			if (mry_ipfrag_add(t, &p, now, &dg, &dlen, &conflict) ==
			    MRY_IPFRAG_COMPLETE) {
				struct mry_pkt inner;

				if (dlen > cfg.max_bytes + MRY_IPFRAG_HDR_MAX)
					abort();
				if (mry_decode_ip(dg, dlen, 0, &inner, &dst) == MRY_DECODE_FRAGMENT)
					abort();
				if (inner.payload_len > 0 &&
				    (inner.payload < dg || inner.payload + inner.payload_len > dg + dlen))
					abort();
			}
		}
		free(pkt);
		mry_ipfrag_expire(t, now, 2);
		mry_ipfrag_get_stats(t, &st);
		if (st.in_use > cfg.max_datagrams || st.fragments != adds ||
		    st.completed + st.dropped > st.fragments)
			abort();
	}
	mry_ipfrag_destroy(t);
	return 0;
}
