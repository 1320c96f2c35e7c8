/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * moray's per-worker SMTP payload throughput against a plain Hyperscan
 * streaming loop over the same payload bytes, in the same segments, with the
 * same database, in one process and one run.
 *
 * The capture is read into memory first; neither side pays for pcap I/O.
 *   reference: the client->server TCP payload of every port-25 flow, one
 *              Hyperscan stream per flow (the raw-message slot of the .mdb),
 *              no decode, no reassembly, no SMTP, no MIME.
 *   scan only: plain Hyperscan streaming over exactly the bytes moray scans,
 *              in the chunks it scans them: each message as the server
 *              receives it (raw slot) and each decoded MIME part (decoded
 *              slot), recorded by a first, untimed engine pass. moray against
 *              this is the share of its time that is the scan itself.
 *   moray:     one worker's engine (mry_engine_packet on every frame, the
 *              engine's 1 ms tick on the capture clock, events copied out as
 *              the app's log ring would), exactly what a worker lcore runs
 *              between rx burst and tx burst. One engine, warmed up by an
 *              untimed pass; each pass replays the capture an hour after the
 *              last ended, so its connections are new ones to a worker whose
 *              pools and tables are in use, as in steady state.
 * Passes alternate between the two so drift on a shared machine hits both.
 *
 *   payload_bench DB.mdb CAPTURE.pcap [PASSES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hs.h>
#include <pcap/pcap.h>

#include "moray/engine.h"
#include "moray/sigdb.h"

#define MAX_FLOWS 65536

struct frame {
	uint64_t ts_ns;
	uint32_t off;
	uint32_t len;
	uint32_t flow;          /* reference stream, UINT32_MAX: not client payload */
	uint32_t poff, plen;    /* client payload within the frame */
};

struct flowkey {
	uint32_t saddr, daddr;
	uint16_t sport, dport;
	int used;
};

struct capture {
	struct frame *f;
	size_t nf, capf;
	uint8_t *bytes;
	size_t nbytes, capbytes;
	size_t payload;
	uint32_t nflows;
};

/* what moray scanned: chunks in order, each tagged with its stream */
struct chunk {
	uint32_t stream;        /* index into the stream table */
	uint32_t off, len;      /* into rec.bytes; len 0: the stream ends */
};

struct recording {
	struct chunk *c;
	size_t nc, capc;
	uint8_t *bytes;
	size_t nbytes, capbytes;
	uint8_t *slot;          /* per stream: MRY_SLOT_RAW or MRY_SLOT_DECODED */
	uint32_t nstreams, capstreams;
	uint32_t cur_msg_stream, cur_part_stream;
	bool in_msg;
	bool oom;
};

static struct recording rec;

static uint32_t rec_stream(uint8_t slot)
{
	if (rec.nstreams == rec.capstreams) {
		rec.capstreams = rec.capstreams ? rec.capstreams * 2 : 4096;
		rec.slot = realloc(rec.slot, rec.capstreams);
		if (rec.slot == NULL) {
			rec.oom = true;
			return 0;
		}
	}
	rec.slot[rec.nstreams] = slot;
	return rec.nstreams++;
}

static void rec_chunk(uint32_t stream, const uint8_t *d, uint32_t len)
{
	if (rec.oom)
		return;
	if (rec.nc == rec.capc) {
		rec.capc = rec.capc ? rec.capc * 2 : 65536;
		rec.c = realloc(rec.c, rec.capc * sizeof(*rec.c));
	}
	while (rec.nbytes + len > rec.capbytes) {
		rec.capbytes = rec.capbytes ? rec.capbytes * 2 : (1u << 24);
		rec.bytes = realloc(rec.bytes, rec.capbytes);
	}
	if (rec.c == NULL || rec.bytes == NULL) {
		rec.oom = true;
		return;
	}
	if (len != 0)
		memcpy(rec.bytes + rec.nbytes, d, len);
	rec.c[rec.nc++] = (struct chunk){ stream, (uint32_t)rec.nbytes, len };
	rec.nbytes += len;
}

static void on_message(void *ctx, const struct mry_engine_conn *c, uint32_t msg_index,
		       const uint8_t *data, uint32_t len, bool end)
{
	(void)ctx; (void)c; (void)msg_index;
	if (!rec.in_msg) {
		rec.cur_msg_stream = rec_stream(MRY_SLOT_RAW);
		rec.in_msg = true;
	}
	if (len != 0)
		rec_chunk(rec.cur_msg_stream, data, len);
	if (end) {
		rec_chunk(rec.cur_msg_stream, NULL, 0);
		rec.in_msg = false;
	}
}

static void on_part(void *ctx, const struct mry_engine_conn *c, uint32_t msg_index,
		    const struct mry_mime_part_info *pi, enum mry_part_phase phase,
		    const uint8_t *data, uint32_t len)
{
	(void)ctx; (void)c; (void)msg_index; (void)pi;
	if (phase == MRY_PART_BEGIN)
		rec.cur_part_stream = rec_stream(MRY_SLOT_DECODED);
	else if (phase == MRY_PART_DATA)
		rec_chunk(rec.cur_part_stream, data, len);
	else
		rec_chunk(rec.cur_part_stream, NULL, 0);
}

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

static uint32_t flow_of(struct flowkey *keys, struct capture *c, uint32_t saddr,
			uint32_t daddr, uint16_t sport, uint16_t dport)
{
	uint32_t i = (saddr * 2654435761u ^ sport * 40503u) % MAX_FLOWS;

	while (keys[i].used && !(keys[i].saddr == saddr && keys[i].daddr == daddr &&
				 keys[i].sport == sport && keys[i].dport == dport))
		i = (i + 1) % MAX_FLOWS;
	if (!keys[i].used) {
		keys[i] = (struct flowkey){ saddr, daddr, sport, dport, 1 };
		c->nflows++;
	}
	return i;
}

static int load(const char *path, struct capture *c)
{
	static struct flowkey keys[MAX_FLOWS];
	char err[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO,
							     err);

	if (p == NULL) {
		fprintf(stderr, "payload_bench: %s\n", err);
		return -1;
	}
	if (pcap_datalink(p) != DLT_EN10MB) {
		fprintf(stderr, "payload_bench: %s: not an Ethernet capture\n", path);
		pcap_close(p);
		return -1;
	}
	while (pcap_next_ex(p, &h, &d) == 1) {
		struct frame fr = { .flow = UINT32_MAX };
		uint32_t ihl, thl, tot, saddr, daddr;

		if (h->caplen != h->len)
			continue;
		if (c->nf == c->capf) {
			c->capf = c->capf ? c->capf * 2 : 65536;
			c->f = realloc(c->f, c->capf * sizeof(*c->f));
		}
		while (c->nbytes + h->caplen > c->capbytes) {
			c->capbytes = c->capbytes ? c->capbytes * 2 : (1u << 24);
			c->bytes = realloc(c->bytes, c->capbytes);
		}
		if (c->f == NULL || c->bytes == NULL)
			return -1;
		memcpy(c->bytes + c->nbytes, d, h->caplen);
		fr.ts_ns = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec;
		fr.off = (uint32_t)c->nbytes;
		fr.len = h->caplen;
		c->nbytes += h->caplen;
		if (h->caplen >= 54 && d[12] == 0x08 && d[13] == 0x00 && d[23] == 6) {
			ihl = (uint32_t)(d[14] & 15) * 4;
			tot = (uint32_t)d[16] << 8 | d[17];
			thl = 14 + ihl + 12 < h->caplen ? (uint32_t)(d[14 + ihl + 12] >> 4) * 4 : 0;
			if (14 + tot <= h->caplen && ihl + thl <= tot && thl >= 20 &&
			    (d[14 + ihl + 2] << 8 | d[14 + ihl + 3]) == 25 && tot > ihl + thl) {
				memcpy(&saddr, d + 26, 4);
				memcpy(&daddr, d + 30, 4);
				fr.flow = flow_of(keys, c, saddr, daddr,
						  (uint16_t)(d[14 + ihl] << 8 | d[14 + ihl + 1]), 25);
				fr.poff = 14 + ihl + thl;
				fr.plen = tot - ihl - thl;
				c->payload += fr.plen;
			}
		}
		c->f[c->nf++] = fr;
	}
	pcap_close(p);
	return 0;
}

static double run_reference(const struct capture *c, const hs_database_t *db,
			    hs_scratch_t *scratch, unsigned long *matches)
{
	static hs_stream_t *streams[MAX_FLOWS];
	double t0 = now_s(), t;

	for (size_t i = 0; i < c->nf; i++) {
		const struct frame *f = &c->f[i];
		hs_stream_t **st;

		if (f->flow == UINT32_MAX)
			continue;
		st = &streams[f->flow];
		if (*st == NULL && hs_open_stream(db, 0, st) != HS_SUCCESS)
			return -1;
		hs_scan_stream(*st, (const char *)c->bytes + f->off + f->poff, f->plen, 0,
			       scratch, on_match, matches);
	}
	for (uint32_t i = 0; i < MAX_FLOWS; i++) {
		if (streams[i] != NULL) {
			hs_close_stream(streams[i], scratch, on_match, matches);
			streams[i] = NULL;
		}
	}
	t = now_s() - t0;
	return t;
}

static double run_scan_only(const hs_database_t *db[2], hs_scratch_t *scratch,
			    unsigned long *matches)
{
	static hs_stream_t **open;
	double t0, t;

	if (open == NULL && (open = calloc(rec.nstreams, sizeof(*open))) == NULL)
		return -1;
	t0 = now_s();
	for (size_t i = 0; i < rec.nc; i++) {
		const struct chunk *k = &rec.c[i];
		hs_stream_t **st = &open[k->stream];

		if (k->len == 0) {
			if (*st != NULL)
				hs_close_stream(*st, scratch, on_match, matches);
			*st = NULL;
			continue;
		}
		if (*st == NULL && hs_open_stream(db[rec.slot[k->stream]], 0, st) != HS_SUCCESS)
			return -1;
		hs_scan_stream(*st, (const char *)rec.bytes + k->off, k->len, 0, scratch,
			       on_match, matches);
	}
	t = now_s() - t0;
	for (uint32_t i = 0; i < rec.nstreams; i++) {
		if (open[i] != NULL) {
			hs_close_stream(open[i], scratch, on_match, matches);
			open[i] = NULL;
		}
	}
	return t;
}

/* what the app's log ring does with an event: one copy */
static char event_sink[1 << 16];
static unsigned long nb_events;

static void on_event(void *ctx, const char *json, size_t len)
{
	(void)ctx;
	memcpy(event_sink, json, len < sizeof(event_sink) ? len : sizeof(event_sink));
	nb_events++;
}

static void on_emit(void *ctx, enum mry_emit_dir dir, uint16_t client_port,
		    const uint8_t *frame, uint32_t len)
{
	static uint8_t out[65536];

	(void)ctx; (void)dir; (void)client_port;
	memcpy(out, frame, len < sizeof(out) ? len : sizeof(out));
}

static uint64_t scanned[3];   /* raw, decoded, headers */

static struct mry_engine *new_engine(struct mry_sigdb_ctl *ctl, bool record)
{
	static const struct mry_engine_io io = { .emit = on_emit, .event = on_event };
	static const struct mry_engine_io io_rec = {
		.emit = on_emit, .event = on_event, .message = on_message, .part = on_part,
	};
	struct mry_engine_config cfg;

	mry_engine_config_defaults(&cfg);
	return mry_engine_create(mry_alloc_default(), &cfg, ctl, record ? &io_rec : &io, NULL);
}

/*
 * One pass of the capture through @e, its clock shifted by @shift_ns so
 * that every pass comes after the last one ended (the flows of a pass are
 * long over when the same connections start again, as on a worker that has
 * run for a while: pools and tables warm, nothing allocated).
 */
static double run_moray(struct mry_engine *e, const struct capture *c, uint64_t shift_ns)
{
	uint64_t last_tick = c->nf ? c->f[0].ts_ns + shift_ns : 0;
	double t0 = now_s();

	for (size_t i = 0; i < c->nf; i++) {
		const struct frame *f = &c->f[i];
		uint64_t ts = f->ts_ns + shift_ns;

		mry_engine_packet(e, c->bytes + f->off, f->len, 0, ts);
		if (ts - last_tick >= 1000000) {
			mry_engine_tick(e, ts);
			last_tick = ts;
		}
	}
	return now_s() - t0;
}

int main(int argc, char **argv)
{
	struct mry_sigdb_load_opts lo = { 0 };
	struct mry_sigdb_ctl_config ccfg = { 0 };
	struct mry_sigdb_gen *g = NULL, *retired = NULL;
	struct mry_sigdb_ctl *ctl;
	struct mry_engine_stats st = { 0 };
	struct mry_engine *e;
	uint64_t span;
	struct capture cap = { 0 };
	const hs_database_t *db, *slots[2];
	hs_scratch_t *scratch = NULL;
	char detail[256];
	int passes = argc > 3 ? atoi(argv[3]) : 5;
	double best_hs = 1e9, best_mry = 1e9, best_scan = 1e9;
	unsigned long matches = 0;

	if (argc < 3 || passes < 1) {
		fprintf(stderr, "usage: payload_bench DB.mdb CAPTURE.pcap [PASSES]\n");
		return 2;
	}
	mry_log_set_level(MRY_LOG_WARNING);
	if (mry_sigdb_load_file(argv[1], &lo, &g, detail, sizeof(detail)) != MRY_SIGDB_OK) {
		fprintf(stderr, "payload_bench: %s: %s\n", argv[1], detail);
		return 2;
	}
	db = mry_sigdb_gen_hs_db(g, MRY_SLOT_RAW);
	if (db == NULL || hs_alloc_scratch(db, &scratch) != HS_SUCCESS) {
		fprintf(stderr, "payload_bench: no raw-slot database\n");
		return 2;
	}
	slots[MRY_SLOT_RAW] = db;
	slots[MRY_SLOT_DECODED] = mry_sigdb_gen_hs_db(g, MRY_SLOT_DECODED);
	if (slots[MRY_SLOT_DECODED] == NULL ||
	    hs_alloc_scratch(slots[MRY_SLOT_DECODED], &scratch) != HS_SUCCESS) {
		fprintf(stderr, "payload_bench: no decoded-slot database\n");
		return 2;
	}
	ctl = mry_sigdb_ctl_create(&ccfg);
	if (ctl == NULL || mry_sigdb_ctl_offer(ctl, argv[1], (uint64_t)time(NULL), &retired) !=
			   MRY_SIGDB_OK) {
		fprintf(stderr, "payload_bench: %s: not accepted as the active database\n", argv[1]);
		return 2;
	}
	if (load(argv[2], &cap) != 0)
		return 2;
	if (cap.payload == 0) {
		fprintf(stderr, "payload_bench: %s: no client payload to port 25\n", argv[2]);
		return 2;
	}
	/* untimed: record what moray scans, then warm the timed engine up */
	e = new_engine(ctl, true);
	if (e == NULL)
		return 2;
	run_moray(e, &cap, 0);
	mry_engine_destroy(e, cap.f[cap.nf - 1].ts_ns);
	if (rec.oom) {
		fprintf(stderr, "payload_bench: the recording pass ran out of memory\n");
		return 2;
	}
	e = new_engine(ctl, false);
	if (e == NULL)
		return 2;
	span = cap.f[cap.nf - 1].ts_ns - cap.f[0].ts_ns + 3600 * 1000000000ull;
	run_moray(e, &cap, 0);
	for (int i = 0; i < passes; i++) {
		struct mry_engine_stats s0;
		double a = run_reference(&cap, db, scratch, &matches);
		double b, c;

		mry_engine_get_stats(e, &s0);
		b = run_moray(e, &cap, (uint64_t)(i + 1) * span);
		mry_engine_get_stats(e, &st);
		st.msgs -= s0.msgs;
		st.msgs_clean -= s0.msgs_clean;
		st.msgs_infected -= s0.msgs_infected;
		c = run_scan_only(slots, scratch, &matches);

		if (a < 0 || b < 0 || c < 0) {
			fprintf(stderr, "payload_bench: a pass failed\n");
			return 2;
		}
		best_hs = a < best_hs ? a : best_hs;
		best_mry = b < best_mry ? b : best_mry;
		best_scan = c < best_scan ? c : best_scan;
	}
	{
		struct mry_counters c;

		mry_engine_counters(e, &c);
		scanned[0] = c.scan.bytes_raw;
		scanned[1] = c.scan.bytes_decoded;
		scanned[2] = c.scan.bytes_headers;
	}
	mry_engine_destroy(e, cap.f[cap.nf - 1].ts_ns + (uint64_t)(passes + 1) * span);
	printf("capture: %zu frames, %u SMTP client flows, %zu payload bytes\n", cap.nf,
	       cap.nflows, cap.payload);
	printf("moray judged %lu messages a pass (%lu clean, %lu infected, %lu other), %lu events\n",
	       (unsigned long)st.msgs, (unsigned long)st.msgs_clean,
	       (unsigned long)st.msgs_infected,
	       (unsigned long)(st.msgs - st.msgs_clean - st.msgs_infected),
	       nb_events / (unsigned long)(passes + 2));
	for (int k = 0; k < 3; k++)
		scanned[k] /= (uint64_t)(passes + 1);
	printf("moray scanned %.1f MB raw message, %.1f MB decoded parts, %.1f MB headers a pass "
	       "(%.2fx the payload)\n", (double)scanned[0] / 1e6, (double)scanned[1] / 1e6,
	       (double)scanned[2] / 1e6,
	       (double)(scanned[0] + scanned[1] + scanned[2]) / (double)cap.payload);
	printf("plain hyperscan streaming: %8.1f MB/s of SMTP payload (best of %d: %.4f s)\n",
	       (double)cap.payload / best_hs / 1e6, passes, best_hs);
	printf("moray engine, one worker:  %8.1f MB/s of SMTP payload (best of %d: %.4f s, %.0f ns/frame)\n",
	       (double)cap.payload / best_mry / 1e6, passes, best_mry, best_mry * 1e9 / (double)cap.nf);
	printf("plain hyperscan streaming over what moray scans (%zu streams, %.1f MB): "
	       "%.4f s\n", (size_t)rec.nstreams, (double)rec.nbytes / 1e6, best_scan);
	printf("ratio moray / plain streaming: %.2f  (goal >= 0.7)\n", best_hs / best_mry);
	printf("share of moray's time that is the scan itself: %.2f  (the rest: %.0f ns/frame)\n",
	       best_scan / best_mry, (best_mry - best_scan) * 1e9 / (double)cap.nf);
	hs_free_scratch(scratch);
	mry_sigdb_gen_unref(g);
	mry_sigdb_ctl_destroy(ctl);
	free(cap.f);
	free(cap.bytes);
	free(rec.c);
	free(rec.bytes);
	free(rec.slot);
	return 0;
}
