/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * pcap_loop: the baseline for bench/gen/reasm_bench.sh. Reads a capture with
 * libpcap's pcap_next_ex and touches every byte (a running sum, so the read
 * cannot be optimised away), like the cheapest possible consumer.
 *   cc -O2 -o pcap_loop bench/gen/pcap_loop.c -lpcap
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* u_char and friends under -std=c11 */
#endif
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	uint64_t pkts = 0, bytes = 0, sum = 0;
	pcap_t *p;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: pcap_loop FILE.pcap\n");
		return 2;
	}
	p = pcap_open_offline(argv[1], err);
	if (p == NULL) {
		fprintf(stderr, "pcap_loop: %s\n", err);
		return 1;
	}
	while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
		for (uint32_t i = 0; i < h->caplen; i++)
			sum += d[i];
		pkts++;
		bytes += h->caplen;
	}
	if (rc == PCAP_ERROR) {
		fprintf(stderr, "pcap_loop: %s\n", pcap_geterr(p));
		pcap_close(p);
		return 1;
	}
	pcap_close(p);
	printf("packets %llu bytes %llu sum %llu\n", (unsigned long long)pkts,
	       (unsigned long long)bytes, (unsigned long long)sum);
	return 0;
}
