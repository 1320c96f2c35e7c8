/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fuzz the packet decoder and IP reassembly together. Input: one flags
 * byte (bit 0: verify TCP checksum, bit 1: verify IP checksum, bit 2:
 * FIRST overlap policy), then records of [length, 2 bytes big-endian]
 * [frame]. Each frame goes through mry_decode_frame(); fragments go into a
 * small reassembly table and every completed datagram through
 * mry_decode_ip(), so one input can carry a whole fragmented datagram.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moray/decode.h"
#include "moray/ipfrag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mry_ipfrag_config cfg = {
		.max_datagrams = 4,
		.max_bytes = 65535 + 40,
		.timeout_ns = 1000,
		.mem_bytes = 1,
	};
	struct mry_decode_stats st;
	struct mry_ipfrag_table *t;
	unsigned flags;
	uint64_t now = 0;

	if (size < 1)
		return 0;
	flags = data[0] & 3u;
	cfg.policy = (data[0] & 4u) ? MRY_IPFRAG_OVERLAP_FIRST : MRY_IPFRAG_OVERLAP_DROP;
	data++;
	size--;
	memset(&st, 0, sizeof(st));
	t = mry_ipfrag_create(mry_alloc_default(), &cfg);
	if (t == NULL)
		abort();
	while (size >= 2) {
		size_t n = (size_t)data[0] << 8 | data[1];
		struct mry_pkt pkt;
		uint8_t *frame;

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		/* exact-size copy so ASan sees any overread */
		frame = malloc(n ? n : 1);
		if (frame == NULL)
			abort();
		memcpy(frame, data, n);
		data += n;
		size -= n;
		now += 100;
		if (mry_decode_frame(frame, (uint32_t)n, flags, &pkt, &st) ==
		    MRY_DECODE_FRAGMENT) {
			const uint8_t *dg;
			uint32_t dlen;
			bool conflict;

			if (mry_ipfrag_add(t, &pkt, now, &dg, &dlen, &conflict) ==
			    MRY_IPFRAG_COMPLETE) {
				struct mry_pkt inner;
				enum mry_decode_result r;

				r = mry_decode_ip(dg, dlen, flags, &inner, &st);
				if (r == MRY_DECODE_TCP &&
				    inner.payload + inner.payload_len > dg + dlen)
					abort();
			}
		}
		free(frame);
		mry_ipfrag_expire(t, now, 2);
	}
	if (st.pkts != st.tcp + st.other + st.fragments + st.invalid)
		abort();
	mry_ipfrag_destroy(t);
	return 0;
}
