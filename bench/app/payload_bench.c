/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The reference for moray's per-worker SMTP payload throughput: a plain
 * Hyperscan streaming loop over the same TCP payload bytes, in the same
 * segments, with the same database (the raw-message slot of a moray .mdb),
 * one stream per client->server direction. No decode beyond finding the
 * payload, no reassembly, no SMTP, no MIME: everything moray does besides
 * scanning is what the ratio measures.
 *
 *   hs_payload DB.mdb CAPTURE.pcap [LOOPS]
 * prints "payload_bytes=N seconds=S" for the best of LOOPS passes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hs.h>
#include <pcap/pcap.h>

#include "moray/sigdb.h"

#define MAX_FLOWS 65536

struct seg {
	uint32_t flow;
	uint32_t off;
	uint32_t len;
};

struct flowkey {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	int used;
};

static int on_match(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *ctx)
{
	(void)id; (void)from; (void)to; (void)flags;
	(*(unsigned long *)ctx)++;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE], detail[256];
	struct mry_sigdb_load_opts lo = { 0 };
	struct mry_sigdb_gen *g = NULL;
	const hs_database_t *db;
	hs_scratch_t *scratch = NULL;
	static struct flowkey keys[MAX_FLOWS];
	struct seg *segs = NULL;
	uint8_t *bytes = NULL;
	size_t nsegs = 0, capsegs = 0, nbytes = 0, capbytes = 0;
	uint32_t nflows = 0;
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p;
	int loops = argc > 3 ? atoi(argv[3]) : 5;
	double best = 1e9;

	if (argc < 3) {
		fprintf(stderr, "usage: hs_payload DB.mdb CAPTURE.pcap [LOOPS]\n");
		return 2;
	}
	if (mry_sigdb_load_file(argv[1], &lo, &g, detail, sizeof(detail)) != MRY_SIGDB_OK) {
		fprintf(stderr, "hs_payload: %s: %s\n", argv[1], detail);
		return 2;
	}
	db = mry_sigdb_gen_hs_db(g, MRY_SLOT_RAW);
	if (db == NULL || hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
		fprintf(stderr, "hs_payload: no raw-slot database\n");
		return 2;
	}
	p = pcap_open_offline(argv[2], err);
	if (p == NULL) {
		fprintf(stderr, "hs_payload: %s\n", err);
		return 2;
	}
	/* load the client payload segments into memory first: only scanning is timed */
	while (pcap_next_ex(p, &h, &d) == 1) {
		uint32_t ihl, thl, tot, plen, saddr, daddr, i;
		uint16_t sport, dport;

		if (h->caplen < 54 || d[12] != 0x08 || d[13] != 0x00 || d[23] != 6)
			continue;
		ihl = (uint32_t)(d[14] & 15) * 4;
		tot = (uint32_t)d[16] << 8 | d[17];
		thl = (uint32_t)(d[14 + ihl + 12] >> 4) * 4;
		if (14 + tot > h->caplen || ihl + thl > tot)
			continue;
		sport = (uint16_t)(d[14 + ihl] << 8 | d[14 + ihl + 1]);
		dport = (uint16_t)(d[14 + ihl + 2] << 8 | d[14 + ihl + 3]);
		plen = tot - ihl - thl;
		if (dport != 25 || plen == 0)
			continue;
		memcpy(&saddr, d + 26, 4);
		memcpy(&daddr, d + 30, 4);
		i = (saddr * 2654435761u ^ sport * 40503u) % MAX_FLOWS;
		while (keys[i].used && !(keys[i].saddr == saddr && keys[i].daddr == daddr &&
					 keys[i].sport == sport && keys[i].dport == dport))
			i = (i + 1) % MAX_FLOWS;
		if (!keys[i].used) {
			keys[i] = (struct flowkey){ saddr, daddr, sport, dport, 1 };
			nflows++;
		}
		if (nsegs == capsegs) {
			capsegs = capsegs ? capsegs * 2 : 65536;
			segs = realloc(segs, capsegs * sizeof(*segs));
		}
		while (nbytes + plen > capbytes) {
			capbytes = capbytes ? capbytes * 2 : (1u << 24);
			bytes = realloc(bytes, capbytes);
		}
		if (segs == NULL || bytes == NULL)
			return 2;
		memcpy(bytes + nbytes, d + 14 + ihl + thl, plen);
		segs[nsegs++] = (struct seg){ i, (uint32_t)nbytes, plen };
		nbytes += plen;
	}
	pcap_close(p);
	for (int l = 0; l < loops; l++) {
		static hs_stream_t *streams[MAX_FLOWS];
		unsigned long matches = 0;
		double t0 = now_s();

		for (size_t s = 0; s < nsegs; s++) {
			hs_stream_t **st = &streams[segs[s].flow];

			if (*st == NULL && hs_open_stream(db, 0, st) != HS_SUCCESS)
				return 2;
			hs_scan_stream(*st, (const char *)bytes + segs[s].off, segs[s].len, 0,
				       scratch, on_match, &matches);
		}
		for (uint32_t i = 0; i < MAX_FLOWS; i++) {
			if (streams[i] != NULL) {
				hs_close_stream(streams[i], scratch, on_match, &matches);
				streams[i] = NULL;
			}
		}
		if (now_s() - t0 < best)
			best = now_s() - t0;
	}
	printf("flows=%u segments=%zu payload_bytes=%zu seconds=%.6f MBps=%.1f\n",
	       nflows, nsegs, nbytes, best, (double)nbytes / best / 1e6);
	hs_free_scratch(scratch);
	mry_sigdb_gen_unref(g);
	free(segs);
	free(bytes);
	return 0;
}
