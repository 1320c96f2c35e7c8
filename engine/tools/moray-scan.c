/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * moray-scan: the engine, offline, as one worker over pcap files. It runs
 * exactly the code the DPDK application runs per packet, with the capture's
 * clock as time, so its verdict log is what moray would have written; it
 * adds forensics outputs (reassembled streams, messages, decoded parts, the
 * frames moray would have forwarded) and a database timeline (--db-at) to
 * replay generation changes against a capture.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <hs.h>
#include <pcap/pcap.h>

#include "moray/blocklist.h"
#include "moray/common.h"
#include "moray/counters.h"
#include "moray/decode.h"
#include "moray/engine.h"
#include "moray/event.h"
#include "moray/sigdb.h"

#define MAX_TIMELINE 64

struct db_offer {
	uint64_t at_ns;                /* offset from the first packet */
	const char *path;              /* NULL: no file at all */
};

/* Output files by name, kept open (bounded) and created once. */
struct outfile {
	char *name;
	FILE *fp;
	uint64_t last_use;
};

struct scan {
	FILE *log;
	const char *dump_streams;
	const char *dump_messages;
	const char *dump_parts;
	pcap_dumper_t *out;
	pcap_t *out_pcap;
	struct pcap_pkthdr cur_hdr;
	struct outfile *files;
	size_t nb_files;
	size_t cap_files;
	uint32_t *index;               /* open addressing: file index + 1, 0 empty */
	size_t index_cap;
	uint64_t use_tick;
	unsigned open_count;
	unsigned max_open;             /* descriptors we allow ourselves */
	uint64_t part_index;           /* per message */
	char part_name[PATH_MAX];
	struct mry_sigdb_ctl *ctl;
	uint64_t events;
	int io_errors;
};

static void usage(FILE *f)
{
	fputs("usage: moray-scan [options] FILE.pcap...\n"
	      "  --db FILE               signature database (moray-sigc compile)\n"
	      "  --db-at SECONDS:FILE    offer FILE when the capture clock reaches SECONDS\n"
	      "                          after its first packet ('-' as FILE: no file); repeatable\n"
	      "  --db-pubkey FILE        require databases signed with this Ed25519 key\n"
	      "  --db-policy hold|last-good   invalid generation state policy (default hold)\n"
	      "  --db-max-age SECONDS    a generation older than this makes the state invalid\n"
	      "                          (0: no limit, else at least 60)\n"
	      "  --hold-timeout SECONDS  held messages are tempfailed after this (1-599, default 240)\n"
	      "  --hold-store-size BYTES hold store cap (k/M/G suffixes; 1M-1T, default 256M)\n"
	      "  --smtp-ports LIST       comma-separated SMTP ports (default 25,587,2525)\n"
	      "  --bare-lf reject|strict a '.' line inside DATA that some server takes as end of\n"
	      "                          data (bare LF/CR): reject the message (default, 554 5.5.2)\n"
	      "                          or judge the RFC 5321 message and forward it if clean\n"
	      "  --log FILE              verdict log, JSON lines (default: stdout)\n"
	      "  --dump-streams DIR      each TCP direction's reassembled bytes\n"
	      "  --dump-messages DIR     each message as the server receives it\n"
	      "  --dump-parts DIR        each decoded MIME leaf part\n"
	      "  --out-pcap FILE         the frames moray would forward or inject\n"
	      "  --tcp-csum on|off|auto  verify IP/TCP checksums (default auto: a kind that\n"
	      "                          fails in a file's first 1000 packets is not verified)\n"
	      "  --no-tcp-csum           same as --tcp-csum off\n"
	      "  --blocklist FILE        source prefixes refused (one CIDR a line, # comments)\n"
	      "  --quiet                 no counter summary on stderr\n"
	      "  --stats-json FILE       every counter at exit, one JSON object {group: {name: value}}\n"
	      "  --metrics-file FILE     every counter at exit, Prometheus text format\n"
	      "  --version, --help\n"
	      "flood defences (the same options as moray's):\n", f);
	mry_engine_option_usage(f);
}

static int parse_ports(const char *s, struct mry_engine_config *cfg)
{
	int n = mry_parse_port_list(s, cfg->smtp_ports, MRY_ENGINE_MAX_SMTP_PORTS);

	if (n < 0)
		return n;
	cfg->nb_smtp_ports = (uint8_t)n;
	return 0;
}

/* ---- output files ------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a */

	while (*s != '\0')
		h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
	return h;
}

/* index of @name in sc->files, or -1; *slot receives its hash slot */
static long outfile_find(const struct scan *sc, const char *name, size_t *slot)
{
	size_t mask = sc->index_cap - 1, i;

	if (sc->index_cap == 0)
		return -1;
	for (i = name_hash(name) & mask;; i = (i + 1) & mask) {
		uint32_t v = sc->index[i];

		*slot = i;
		if (v == 0)
			return -1;
		if (strcmp(sc->files[v - 1].name, name) == 0)
			return (long)v - 1;
	}
}

static int outfile_index_grow(struct scan *sc)
{
	size_t ncap = sc->index_cap ? sc->index_cap * 2 : 1024, i, slot;
	uint32_t *old = sc->index;
	size_t ocap = sc->index_cap;

	sc->index = calloc(ncap, sizeof(*sc->index));
	if (sc->index == NULL) {
		sc->index = old;
		return -ENOMEM;
	}
	sc->index_cap = ncap;
	for (i = 0; i < ocap; i++) {
		if (old[i] == 0)
			continue;
		(void)outfile_find(sc, sc->files[old[i] - 1].name, &slot);
		sc->index[slot] = old[i];
	}
	free(old);
	return 0;
}

static FILE *outfile_get(struct scan *sc, const char *name)
{
	struct outfile *of = NULL, *lru = NULL;
	size_t i, slot = 0;
	long idx = outfile_find(sc, name, &slot);

	if (idx >= 0)
		of = &sc->files[idx];
	if (of == NULL) {
		if ((sc->nb_files + 1) * 2 > sc->index_cap) {
			if (outfile_index_grow(sc) != 0)
				return NULL;
			(void)outfile_find(sc, name, &slot);
		}
		if (sc->nb_files == sc->cap_files) {
			size_t nc = sc->cap_files ? sc->cap_files * 2 : 64;
			struct outfile *nf = realloc(sc->files, nc * sizeof(*nf));

			if (nf == NULL)
				return NULL;
			sc->files = nf;
			sc->cap_files = nc;
		}
		of = &sc->files[sc->nb_files];
		of->name = strdup(name);
		of->fp = NULL;
		if (of->name == NULL)
			return NULL;
		sc->index[slot] = (uint32_t)++sc->nb_files;
		/* first use: create (truncate) */
		of->fp = fopen(name, "wb");
		if (of->fp == NULL) {
			fprintf(stderr, "moray-scan: cannot create %s: %s\n", name, strerror(errno));
			sc->io_errors++;
			return NULL;
		}
		sc->open_count++;
	} else if (of->fp == NULL) {
		of->fp = fopen(name, "ab");
		if (of->fp == NULL) {
			sc->io_errors++;
			return NULL;
		}
		sc->open_count++;
	}
	of->last_use = ++sc->use_tick;
	/* bound open descriptors: close the least recently used (rare: scan) */
	if (sc->open_count > sc->max_open) {
		for (i = 0; i < sc->nb_files; i++)
			if (sc->files[i].fp != NULL && &sc->files[i] != of &&
			    (lru == NULL || sc->files[i].last_use < lru->last_use))
				lru = &sc->files[i];
		if (lru != NULL) {
			fclose(lru->fp);
			lru->fp = NULL;
			sc->open_count--;
		}
	}
	return of->fp;
}

static void outfile_close(struct scan *sc, const char *name)
{
	size_t slot;
	long idx = outfile_find(sc, name, &slot);

	if (idx >= 0 && sc->files[idx].fp != NULL) {
		fclose(sc->files[idx].fp);
		sc->files[idx].fp = NULL;
		sc->open_count--;
	}
}

static void outfile_close_all(struct scan *sc)
{
	size_t i;

	for (i = 0; i < sc->nb_files; i++) {
		if (sc->files[i].fp != NULL && fclose(sc->files[i].fp) != 0)
			sc->io_errors++;
		free(sc->files[i].name);
	}
	free(sc->files);
	free(sc->index);
	sc->files = NULL;
	sc->index = NULL;
	sc->nb_files = 0;
}

static void write_or_count(struct scan *sc, FILE *fp, const void *d, size_t n)
{
	if (fp != NULL && n > 0 && fwrite(d, 1, n, fp) != n)
		sc->io_errors++;
}

/* ---- engine hooks ------------------------------------------------------- */

static void on_emit(void *ctx, enum mry_emit_dir dir, uint16_t port,
		    const uint8_t *frame, uint32_t len)
{
	struct scan *sc = ctx;
	struct pcap_pkthdr h = sc->cur_hdr;

	(void)dir;
	(void)port;
	if (sc->out == NULL)
		return;
	h.caplen = h.len = len;
	pcap_dump((u_char *)sc->out, &h, frame);
}

static void on_event(void *ctx, const char *json, size_t len)
{
	struct scan *sc = ctx;

	sc->events++;
	if (fwrite(json, 1, len, sc->log) != len || fputc('\n', sc->log) == EOF)
		sc->io_errors++;
}

static void on_stream(void *ctx, const struct mry_engine_conn *c, bool from_client,
		      const uint8_t *data, uint32_t len)
{
	struct scan *sc = ctx;
	char name[PATH_MAX];

	if (sc->dump_streams == NULL)
		return;
	if (from_client)
		snprintf(name, sizeof(name), "%s/%s.%u-%s.%u", sc->dump_streams,
			 c->src, c->sport, c->dst, c->dport);
	else
		snprintf(name, sizeof(name), "%s/%s.%u-%s.%u", sc->dump_streams,
			 c->dst, c->dport, c->src, c->sport);
	write_or_count(sc, outfile_get(sc, name), data, len);
}

static void on_message(void *ctx, const struct mry_engine_conn *c, uint32_t idx,
		       const uint8_t *data, uint32_t len, bool end)
{
	struct scan *sc = ctx;
	char name[PATH_MAX];

	if (sc->dump_messages == NULL)
		return;
	snprintf(name, sizeof(name), "%s/%s.%u-%s.%u.%u.eml", sc->dump_messages,
		 c->src, c->sport, c->dst, c->dport, idx);
	if (end) {
		/* an empty message still gets its (empty) file */
		(void)outfile_get(sc, name);
		outfile_close(sc, name);
		return;
	}
	write_or_count(sc, outfile_get(sc, name), data, len);
}

/* file names from the wire: keep [A-Za-z0-9._-], never a path */
static void sanitize(char *out, size_t cap, const char *in)
{
	size_t i, o = 0;

	for (i = 0; in[i] != '\0' && o + 1 < cap && o < 80; i++) {
		char ch = in[i];

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    (ch == '.' && o > 0))
			out[o++] = ch;
		else
			out[o++] = '_';
	}
	out[o] = '\0';
}

static void on_part(void *ctx, const struct mry_engine_conn *c, uint32_t idx,
		    const struct mry_mime_part_info *pi, enum mry_part_phase ph,
		    const uint8_t *data, uint32_t len)
{
	struct scan *sc = ctx;
	char fname[96];

	if (sc->dump_parts == NULL)
		return;
	switch (ph) {
	case MRY_PART_BEGIN:
		if (pi->filename != NULL && pi->filename[0] != '\0') {
			sanitize(fname, sizeof(fname), pi->filename);
			snprintf(sc->part_name, sizeof(sc->part_name), "%s/%s.%u-%s.%u.%u.%u.%s",
				 sc->dump_parts, c->src, c->sport, c->dst, c->dport, idx,
				 pi->index, fname);
		} else {
			snprintf(sc->part_name, sizeof(sc->part_name), "%s/%s.%u-%s.%u.%u.%u",
				 sc->dump_parts, c->src, c->sport, c->dst, c->dport, idx,
				 pi->index);
		}
		(void)outfile_get(sc, sc->part_name);
		break;
	case MRY_PART_DATA:
		write_or_count(sc, outfile_get(sc, sc->part_name), data, len);
		break;
	case MRY_PART_END:
		outfile_close(sc, sc->part_name);
		break;
	}
}

/* ---- link types -------------------------------------------------------- */

/*
 * The engine takes Ethernet frames (what a NIC port delivers). Captures
 * from loopback or tunnels have other link layers: their IP packet gets a
 * synthetic Ethernet header (ethertype from the IP version). Returns the
 * bytes of link header to strip, or -1 for an unsupported link type.
 */
static int link_strip(int dlt, const u_char *d, uint32_t caplen)
{
	switch (dlt) {
	case DLT_EN10MB:
		return 0;
	case DLT_NULL:
	case DLT_LOOP:
		return caplen >= 4 ? 4 : -2;
	case DLT_RAW:
#ifdef DLT_IPV4
	case DLT_IPV4:
	case DLT_IPV6:
#endif
		return 0;
	case DLT_LINUX_SLL:
		return caplen >= 16 ? 16 : -2;
#ifdef DLT_LINUX_SLL2
	case DLT_LINUX_SLL2:
		return caplen >= 20 ? 20 : -2;
#endif
	default:
		(void)d;
		return -1;
	}
}

static bool link_supported(int dlt)
{
	return link_strip(dlt, NULL, 64) != -1;
}

/* Build an Ethernet frame for a non-Ethernet capture; NULL to skip the packet. */
static const u_char *to_ether(int dlt, const u_char *d, uint32_t *len, u_char *buf,
			      size_t cap)
{
	int strip = link_strip(dlt, d, *len);
	uint32_t n;

	if (dlt == DLT_EN10MB)
		return d;
	if (strip < 0 || (uint32_t)strip >= *len)
		return NULL;
	n = *len - (uint32_t)strip;
	if (n + 14 > cap)
		return NULL;
	memset(buf, 0, 12);
	buf[0] = 0x02;   /* locally administered, so replies have plausible MACs */
	buf[6] = 0x02;
	buf[11] = 1;
	if ((d[strip] >> 4) == 6) {
		buf[12] = 0x86;
		buf[13] = 0xdd;
	} else {
		buf[12] = 0x08;
		buf[13] = 0x00;
	}
	memcpy(buf + 14, d + strip, n);
	*len = n + 14;
	return buf;
}

/*
 * Captures taken on a sending host often carry IP and TCP checksums the NIC
 * was going to fill in (checksum offload), and hand-made test captures carry
 * stray wrong ones. Like Suricata's checksum-validation "auto", look at the
 * first packets of a file: a checksum kind that fails there is not verified
 * for that file (said on stderr), as the server behind a real NIC would have
 * seen correct ones. A file whose checksums are all right is verified.
 * Returns the decode flags to use.
 */
static unsigned csum_auto(const char *path, unsigned flags)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, errbuf);
	struct mry_decode_stats ip_st = { 0 }, tcp_st = { 0 };
	struct pcap_pkthdr *h;
	const u_char *d;
	static u_char buf[262144 + 14];
	unsigned seen = 0;

	flags |= MRY_DECODE_F_VERIFY_IP_CSUM | MRY_DECODE_F_VERIFY_TCP_CSUM;
	if (p == NULL)
		return flags;
	while (seen < 1000 && pcap_next_ex(p, &h, &d) == 1) {
		struct mry_pkt pkt;
		uint32_t len = h->caplen;
		const u_char *f = to_ether(pcap_datalink(p), d, &len, buf, sizeof(buf));

		if (f == NULL)
			continue;
		(void)mry_decode_frame(f, len, MRY_DECODE_F_VERIFY_IP_CSUM, &pkt, &ip_st);
		(void)mry_decode_frame(f, len, MRY_DECODE_F_VERIFY_TCP_CSUM, &pkt, &tcp_st);
		seen++;
	}
	pcap_close(p);
	if (ip_st.ev[MRY_DEV_IPV4_BAD_CSUM] > 0) {
		fprintf(stderr, "moray-scan: %s: %" PRIu64 " bad IPv4 header checksums in the first %u packets (offload?): not verified\n",
			path, ip_st.ev[MRY_DEV_IPV4_BAD_CSUM], seen);
		flags &= ~MRY_DECODE_F_VERIFY_IP_CSUM;
	}
	if (tcp_st.ev[MRY_DEV_TCP_BAD_CSUM] > 0) {
		fprintf(stderr, "moray-scan: %s: %" PRIu64 " bad TCP checksums in the first %u packets (offload?): not verified\n",
			path, tcp_st.ev[MRY_DEV_TCP_BAD_CSUM], seen);
		flags &= ~MRY_DECODE_F_VERIFY_TCP_CSUM;
	}
	return flags;
}

/* ---- database timeline -------------------------------------------------- */

/* @path/@st: the offer this event follows; NULL: a state change without one */
static void db_event(struct scan *sc, uint64_t now_ns, const char *path,
		     const enum mry_sigdb_status *st)
{
	struct mry_sigdb_gen *g = mry_sigdb_ctl_active(sc->ctl);
	struct mry_event_db d = {
		.generation = g != NULL ? mry_sigdb_gen_number(g) : 0,
		.valid = mry_sigdb_ctl_state(sc->ctl) == MRY_DB_VALID,
		.reason = mry_sigdb_ctl_reason(sc->ctl),
		.file = path,
		.offer = st != NULL ? mry_sigdb_status_name(*st) : NULL,
	};
	static char buf[MRY_EVENT_DB_MAX];     /* fits every db event (test_event) */
	size_t n = mry_event_db(buf, sizeof(buf), now_ns, &d);

	if (n == 0) {
		fprintf(stderr, "moray-scan: BUG: a db event did not fit its bound and was lost\n");
		return;
	}
	on_event(sc, buf, n);
}

static enum mry_sigdb_status offer(struct scan *sc, const char *path, uint64_t now_ns)
{
	struct mry_sigdb_gen *retired = NULL;
	enum mry_sigdb_status st;

	st = mry_sigdb_ctl_offer(sc->ctl, path, now_ns / MRY_NS_PER_SEC, &retired);
	/* single-threaded: no reader can still be inside the old pointer */
	if (retired != NULL)
		mry_sigdb_gen_unref(retired);
	db_event(sc, now_ns, path, &st);
	return st;
}

static int cmp_offer(const void *a, const void *b)
{
	const struct db_offer *x = a, *y = b;

	return x->at_ns < y->at_ns ? -1 : x->at_ns > y->at_ns;
}

/* a tick that leaves work due at the same instant runs again, this often at most */
#define SAME_INSTANT_MAX 65536u

/*
 * The replay clock. moray runs its periodic work continuously, so a timer
 * fires at its deadline and an offered database takes effect when offered,
 * not at the next packet. Move the clock to @target through every timeline
 * offer and engine deadline on the way, in time order, each handled at its
 * own time (offers first at equal times, as they are applied before the
 * packet that follows).
 */
static void advance(struct scan *sc, struct mry_engine *e,
		    const struct db_offer *tl, unsigned nb_offers, unsigned *next,
		    uint64_t t0, uint64_t *clock, uint64_t target)
{
	unsigned same = 0;

	for (;;) {
		uint64_t at = *next < nb_offers ? t0 + tl[*next].at_ns : UINT64_MAX;

		at = MRY_MIN(at, mry_engine_next_deadline(e));
		if (at > target)
			break;
		if (at <= *clock) {
			/* due already (budget left work, or the capture went back) */
			at = *clock;
			if (++same > SAME_INSTANT_MAX)
				break;
		} else {
			same = 0;
		}
		*clock = at;
		while (*next < nb_offers && t0 + tl[*next].at_ns <= at) {
			offer(sc, tl[*next].path, t0 + tl[*next].at_ns);
			(*next)++;
		}
		if (mry_sigdb_ctl_tick(sc->ctl, at / MRY_NS_PER_SEC))
			db_event(sc, at, NULL, NULL);
		/* frames a timer injects go out at the timer's time (nanosecond capture) */
		sc->cur_hdr.ts.tv_sec = (time_t)(at / MRY_NS_PER_SEC);
		sc->cur_hdr.ts.tv_usec = (suseconds_t)(at % MRY_NS_PER_SEC);
		mry_engine_tick(e, at);
	}
	if (target > *clock)
		*clock = target;
}

/* ---- main ---------------------------------------------------------------- */

/*
 * The counters after the run, from the counter table: the summary on stderr
 * (the line counters, then every counter that moved), --stats-json and
 * --metrics-file.
 */
static void print_moved(void *ctx, const struct mry_counter_def *d, const char *name,
			const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	(void)s;
	(void)inst;
	if (v != 0)
		fprintf(ctx, "  %-10s %-28s %" PRIu64 "\n", d->group, name, v);
}

static int write_counters(const struct mry_engine *e, bool quiet, const char *json_path,
			  const char *metrics_path)
{
	struct mry_counters c;
	struct mry_counter_src src;
	const struct mry_counter_def *defs;
	size_t nb;
	int rc = 0;

	mry_engine_counters(e, &c);
	defs = mry_counters_engine_table(&nb);
	src = (struct mry_counter_src){ .base = &c, .stride = sizeof(c), .nb = 1 };
	if (!quiet) {
		fputs("moray-scan: ", stderr);
		mry_counters_write_line(stderr, defs, nb, &src, 1);
		fprintf(stderr, "moray-scan: counters\n");
		mry_counters_foreach(defs, nb, &src, 1, print_moved, stderr);
	}
	if (json_path != NULL) {
		FILE *f = fopen(json_path, "w");

		if (f == NULL || mry_counters_write_json(f, defs, nb, &src, 1) != 0) {
			fprintf(stderr, "moray-scan: %s: %s\n", json_path, strerror(errno));
			rc = -EIO;
		}
		if (f != NULL && fclose(f) != 0 && rc == 0) {
			fprintf(stderr, "moray-scan: %s: %s\n", json_path, strerror(errno));
			rc = -EIO;
		}
	}
	if (metrics_path != NULL) {
		int r = mry_counters_write_prom_file(metrics_path, defs, nb, &src, 1);

		if (r != 0) {
			fprintf(stderr, "moray-scan: %s: %s\n", metrics_path, strerror(-r));
			rc = r;
		}
	}
	return rc;
}

static void print_pool(void *ctx, const char *name, uint64_t count, uint64_t bytes)
{
	(void)ctx;
	fprintf(stderr, "moray-scan: pool %s %" PRIu64 " x %" PRIu64 " B = %.1f MiB\n", name,
		count, count != 0 ? bytes / count : 0, (double)bytes / (1024.0 * 1024.0));
}

enum {
	OPT_DB = 256, OPT_DB_AT, OPT_DB_PUBKEY, OPT_DB_POLICY, OPT_DB_MAX_AGE,
	OPT_HOLD_TIMEOUT, OPT_HOLD_STORE, OPT_SMTP_PORTS, OPT_LOG, OPT_DUMP_STREAMS,
	OPT_DUMP_MESSAGES, OPT_DUMP_PARTS, OPT_OUT_PCAP, OPT_NO_CSUM, OPT_ENGINE, OPT_BLOCKLIST,
	OPT_QUIET, OPT_VERSION, OPT_HELP, OPT_TCP_CSUM, OPT_STATS_JSON, OPT_METRICS_FILE,
	OPT_BARE_LF,
};

static const struct option longopts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "db-at", required_argument, NULL, OPT_DB_AT },
	{ "db-pubkey", required_argument, NULL, OPT_DB_PUBKEY },
	{ "db-policy", required_argument, NULL, OPT_DB_POLICY },
	{ "db-max-age", required_argument, NULL, OPT_DB_MAX_AGE },
	{ "hold-timeout", required_argument, NULL, OPT_HOLD_TIMEOUT },
	{ "hold-store-size", required_argument, NULL, OPT_HOLD_STORE },
	{ "smtp-ports", required_argument, NULL, OPT_SMTP_PORTS },
	{ "bare-lf", required_argument, NULL, OPT_BARE_LF },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "dump-streams", required_argument, NULL, OPT_DUMP_STREAMS },
	{ "dump-messages", required_argument, NULL, OPT_DUMP_MESSAGES },
	{ "dump-parts", required_argument, NULL, OPT_DUMP_PARTS },
	{ "out-pcap", required_argument, NULL, OPT_OUT_PCAP },
	{ "no-tcp-csum", no_argument, NULL, OPT_NO_CSUM },
	{ "tcp-csum", required_argument, NULL, OPT_TCP_CSUM },
	/* the engine's flood options (engine_opts.c): one parser for both hosts */
	{ "max-flows", required_argument, NULL, OPT_ENGINE },
	{ "max-half-open", required_argument, NULL, OPT_ENGINE },
	{ "max-per-source", required_argument, NULL, OPT_ENGINE },
	{ "max-msgs", required_argument, NULL, OPT_ENGINE },
	{ "timeout-half-open", required_argument, NULL, OPT_ENGINE },
	{ "timeout-greeting", required_argument, NULL, OPT_ENGINE },
	{ "timeout-cmd", required_argument, NULL, OPT_ENGINE },
	{ "timeout-data-init", required_argument, NULL, OPT_ENGINE },
	{ "timeout-data", required_argument, NULL, OPT_ENGINE },
	{ "min-data-rate", required_argument, NULL, OPT_ENGINE },
	{ "timeout-data-end", required_argument, NULL, OPT_ENGINE },
	{ "timeout-closing", required_argument, NULL, OPT_ENGINE },
	{ "emergency-high", required_argument, NULL, OPT_ENGINE },
	{ "emergency-low", required_argument, NULL, OPT_ENGINE },
	{ "emergency-timeout-pct", required_argument, NULL, OPT_ENGINE },
	{ "shed-log-interval", required_argument, NULL, OPT_ENGINE },
	{ "blocklist", required_argument, NULL, OPT_BLOCKLIST },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "stats-json", required_argument, NULL, OPT_STATS_JSON },
	{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int mkdir_p(const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb) == 0)
		return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	return mkdir(dir, 0755) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
	struct mry_engine_config cfg;
	struct mry_sigdb_ctl_config ccfg = { 0 };
	struct db_offer timeline[MAX_TIMELINE];
	unsigned nb_offers = 0, next_offer = 0;
	const char *db = NULL, *log_path = NULL, *out_pcap = NULL;
	const char *stats_json = NULL, *metrics_file = NULL;
	struct mry_engine_io io = { 0 };
	struct scan sc = { 0 };
	struct mry_engine *e = NULL;
	uint8_t pubkey[32];
	char why[256];
	bool have_key = false, quiet = false, first = true;
	uint64_t t0 = 0, now = 0, clock = 0, v;
	int opt, optidx = 0, rc = 0, i, csum_mode = 2;
	const char *blocklist_path = NULL;
	struct mry_blocklist *blocklist = NULL;
	char errbuf[PCAP_ERRBUF_SIZE];

	mry_engine_config_defaults(&cfg);
	cfg.decode_flags |= MRY_DECODE_F_VERIFY_TCP_CSUM;
	{
		/* dumps keep files open: as many as the hard limit allows */
		struct rlimit rl;

		sc.max_open = 128;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;

			rl.rlim_cur = MRY_MIN(want, (rlim_t)65536);
			if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 64)
				sc.max_open = (unsigned)MRY_MIN(rl.rlim_cur - 32, (rlim_t)16384);
		}
	}
	while ((opt = getopt_long(argc, argv, "", longopts, &optidx)) != -1) {
		switch (opt) {
		case OPT_DB:
			db = optarg;
			break;
		case OPT_DB_AT: {
			char *colon = strchr(optarg, ':');
			double secs;
			char *end;

			if (colon == NULL || nb_offers == MAX_TIMELINE) {
				fprintf(stderr, "moray-scan: --db-at wants SECONDS:FILE (at most %d)\n",
					MAX_TIMELINE);
				return 2;
			}
			*colon = '\0';
			secs = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || secs < 0) {
				fprintf(stderr, "moray-scan: --db-at: bad seconds '%s'\n", optarg);
				return 2;
			}
			timeline[nb_offers].at_ns = (uint64_t)(secs * 1e9);
			timeline[nb_offers].path = strcmp(colon + 1, "-") == 0 ? NULL : colon + 1;
			nb_offers++;
			break;
		}
		case OPT_DB_PUBKEY:
			if (mry_sigdb_read_key(optarg, pubkey, sizeof(pubkey), why,
					       sizeof(why)) != 0) {
				fprintf(stderr, "moray-scan: --db-pubkey %s: %s\n", optarg, why);
				return 2;
			}
			have_key = true;
			break;
		case OPT_DB_POLICY:
			if (strcmp(optarg, "hold") == 0)
				ccfg.policy = MRY_DB_POLICY_HOLD;
			else if (strcmp(optarg, "last-good") == 0)
				ccfg.policy = MRY_DB_POLICY_LAST_GOOD;
			else {
				fprintf(stderr, "moray-scan: --db-policy must be hold or last-good\n");
				return 2;
			}
			break;
		case OPT_DB_MAX_AGE:
			if (mry_parse_u64(optarg, 0, UINT64_MAX, false, &ccfg.max_age_s) != 0) {
				fprintf(stderr, "moray-scan: --db-max-age: bad number '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_BARE_LF:
			if (strcmp(optarg, "reject") == 0) {
				cfg.bare_lf = MRY_BARE_LF_REJECT;
			} else if (strcmp(optarg, "strict") == 0) {
				cfg.bare_lf = MRY_BARE_LF_STRICT;
			} else {
				fprintf(stderr, "moray-scan: --bare-lf: reject or strict, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case OPT_HOLD_TIMEOUT:
			if (mry_parse_u64(optarg, 0, UINT32_MAX, false, &v) != 0) {
				fprintf(stderr, "moray-scan: --hold-timeout: bad number '%s'\n", optarg);
				return 2;
			}
			cfg.hold_timeout_ns = v * MRY_NS_PER_SEC;
			break;
		case OPT_HOLD_STORE:
			if (mry_parse_u64(optarg, 0, UINT64_MAX, true, &cfg.hold_store_bytes) != 0) {
				fprintf(stderr, "moray-scan: --hold-store-size: bad size '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_SMTP_PORTS:
			if (parse_ports(optarg, &cfg) != 0) {
				fprintf(stderr, "moray-scan: --smtp-ports: bad list '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_LOG:
			log_path = optarg;
			break;
		case OPT_DUMP_STREAMS:
			sc.dump_streams = optarg;
			break;
		case OPT_DUMP_MESSAGES:
			sc.dump_messages = optarg;
			break;
		case OPT_DUMP_PARTS:
			sc.dump_parts = optarg;
			break;
		case OPT_OUT_PCAP:
			out_pcap = optarg;
			break;
		case OPT_NO_CSUM:
			csum_mode = 0;
			break;
		case OPT_TCP_CSUM:
			if (strcmp(optarg, "on") == 0)
				csum_mode = 1;
			else if (strcmp(optarg, "off") == 0)
				csum_mode = 0;
			else if (strcmp(optarg, "auto") == 0)
				csum_mode = 2;
			else {
				fprintf(stderr, "moray-scan: --tcp-csum must be on, off or auto\n");
				return 2;
			}
			break;
		case OPT_ENGINE:
			if (mry_engine_option_set(&cfg, longopts[optidx].name, optarg, why,
						  sizeof(why)) != 0) {
				fprintf(stderr, "moray-scan: %s\n", why);
				return 2;
			}
			break;
		case OPT_BLOCKLIST:
			blocklist_path = optarg;
			break;
		case OPT_QUIET:
			quiet = true;
			break;
		case OPT_STATS_JSON:
			stats_json = optarg;
			break;
		case OPT_METRICS_FILE:
			metrics_file = optarg;
			break;
		case OPT_VERSION:
			printf("moray-scan %s (Hyperscan %s)\n", MORAY_VERSION, hs_version());
			return 0;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "moray-scan: no capture given\n");
		usage(stderr);
		return 2;
	}
	if (db != NULL && nb_offers > 0) {
		fprintf(stderr, "moray-scan: use --db or --db-at, not both\n");
		return 2;
	}
	/* the same range checks as moray's, in the same words */
	if (mry_engine_config_check(&cfg, &ccfg, why, sizeof(why)) != 0) {
		fprintf(stderr, "moray-scan: %s\n", why);
		return 2;
	}
	{
		const char *dirs[3] = { sc.dump_streams, sc.dump_messages, sc.dump_parts };

		for (i = 0; i < 3; i++) {
			if (dirs[i] != NULL && mkdir_p(dirs[i]) != 0) {
				fprintf(stderr, "moray-scan: cannot use directory %s\n", dirs[i]);
				return 2;
			}
		}
	}
	if (sc.dump_streams != NULL)
		cfg.track_all_tcp = true;
	if (log_path != NULL) {
		sc.log = fopen(log_path, "w");
		if (sc.log == NULL) {
			fprintf(stderr, "moray-scan: cannot write %s: %s\n", log_path, strerror(errno));
			return 2;
		}
	} else {
		sc.log = stdout;
	}
	ccfg.pubkey = have_key ? pubkey : NULL;
	sc.ctl = mry_sigdb_ctl_create(&ccfg);
	if (sc.ctl == NULL) {
		fprintf(stderr, "moray-scan: cannot create database control\n");
		return 2;
	}
	if (db != NULL) {
		char detail[256];
		struct mry_sigdb_gen *g = NULL;
		struct mry_sigdb_load_opts lo = { .pubkey = ccfg.pubkey, .min_generation = 0 };
		enum mry_sigdb_status st = mry_sigdb_load_file(db, &lo, &g, detail, sizeof(detail));

		/* --db alone: an unusable database is an error, not a timeline */
		if (st != MRY_SIGDB_OK) {
			fprintf(stderr, "moray-scan: %s: invalid database: %s (%s)\n", db,
				mry_sigdb_status_name(st), detail);
			mry_sigdb_ctl_destroy(sc.ctl);
			return 3;
		}
		mry_sigdb_gen_unref(g);
		timeline[0].at_ns = 0;
		timeline[0].path = db;
		nb_offers = 1;
	}
	qsort(timeline, nb_offers, sizeof(timeline[0]), cmp_offer);

	io.emit = on_emit;
	io.event = on_event;
	io.stream = sc.dump_streams != NULL ? on_stream : NULL;
	io.message = sc.dump_messages != NULL ? on_message : NULL;
	io.part = sc.dump_parts != NULL ? on_part : NULL;
	e = mry_engine_create(mry_alloc_default(), &cfg, sc.ctl, &io, &sc);
	if (e == NULL) {
		fprintf(stderr, "moray-scan: cannot create the engine (see log above)\n");
		rc = 2;
		goto out;
	}
	if (!quiet)
		mry_engine_pool_report(e, print_pool, NULL);
	if (blocklist_path != NULL) {
		blocklist = mry_blocklist_load_file(mry_alloc_default(), blocklist_path, why,
						    sizeof(why));
		if (blocklist == NULL) {
			fprintf(stderr, "moray-scan: --blocklist %s: %s\n", blocklist_path, why);
			rc = 2;
			goto out;
		}
		mry_engine_set_blocklist(e, blocklist);
	}

	for (i = optind; i < argc; i++) {
		pcap_t *p = pcap_open_offline_with_tstamp_precision(argv[i],
				PCAP_TSTAMP_PRECISION_NANO, errbuf);
		struct pcap_pkthdr *h;
		const u_char *data;
		uint64_t snapped = 0;
		int r;

		if (p == NULL) {
			fprintf(stderr, "moray-scan: %s: %s\n", argv[i], errbuf);
			rc = 1;
			continue;
		}
		if (csum_mode == 2) {
			cfg.decode_flags = csum_auto(argv[i], cfg.decode_flags);
		} else if (csum_mode == 1) {
			cfg.decode_flags |= MRY_DECODE_F_VERIFY_TCP_CSUM | MRY_DECODE_F_VERIFY_IP_CSUM;
		} else {
			cfg.decode_flags &= ~MRY_DECODE_F_VERIFY_TCP_CSUM;
		}
		mry_engine_set_decode_flags(e, cfg.decode_flags);
		if (!link_supported(pcap_datalink(p))) {
			fprintf(stderr, "moray-scan: %s: link type %s not supported (Ethernet, NULL/LOOP, RAW, Linux SLL)\n",
				argv[i], pcap_datalink_val_to_name(pcap_datalink(p)));
			pcap_close(p);
			rc = 1;
			continue;
		}
		if (out_pcap != NULL && sc.out == NULL) {
			sc.out_pcap = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535,
									PCAP_TSTAMP_PRECISION_NANO);
			sc.out = sc.out_pcap != NULL ? pcap_dump_open(sc.out_pcap, out_pcap) : NULL;
			if (sc.out == NULL) {
				fprintf(stderr, "moray-scan: cannot write %s\n", out_pcap);
				pcap_close(p);
				rc = 2;
				goto out;
			}
		}
		while ((r = pcap_next_ex(p, &h, &data)) == 1) {
			enum mry_pkt_verdict vd;
			static u_char ebuf[262144 + 14];
			uint32_t flen = h->caplen;
			const u_char *frame = to_ether(pcap_datalink(p), data, &flen, ebuf,
						       sizeof(ebuf));

			now = (uint64_t)h->ts.tv_sec * MRY_NS_PER_SEC + (uint64_t)h->ts.tv_usec;
			if (first) {
				t0 = now;
				first = false;
			}
			/* offers and timers due before this packet, each at its time */
			advance(&sc, e, timeline, nb_offers, &next_offer, t0, &clock, now);
			if (mry_sigdb_ctl_tick(sc.ctl, now / MRY_NS_PER_SEC))
				db_event(&sc, now, NULL, NULL);
			sc.cur_hdr = *h;
			/* timers, and held messages go as soon as an offer made them judgeable */
			mry_engine_tick(e, now);
			/* snapped frames are decoded as captured; said once per file */
			if (h->caplen < h->len)
				snapped++;
			if (frame == NULL)
				continue;   /* shorter than its link header */
			vd = mry_engine_packet(e, frame, flen, 0, now);
			if (vd == MRY_PKT_FORWARD && sc.out != NULL) {
				struct pcap_pkthdr oh = *h;

				oh.caplen = oh.len = flen;
				pcap_dump((u_char *)sc.out, &oh, frame);
			}
		}
		if (snapped > 0)
			fprintf(stderr, "moray-scan: %s: %" PRIu64 " frames shorter than on the wire (snap length), decoded as captured\n",
				argv[i], snapped);
		if (r == -1) {
			fprintf(stderr, "moray-scan: %s: %s\n", argv[i], pcap_geterr(p));
			rc = 1;
		}
		pcap_close(p);
	}
	/* an empty capture has no clock: events take the wall clock */
	if (first) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		now = t0 = (uint64_t)ts.tv_sec * MRY_NS_PER_SEC + (uint64_t)ts.tv_nsec;
	}
	/* offers scheduled after the last packet still happen, in order, with
	 * the timers due between them */
	if (next_offer < nb_offers) {
		uint64_t last = t0 + timeline[nb_offers - 1].at_ns;

		clock = MRY_MAX(clock, now);
		advance(&sc, e, timeline, nb_offers, &next_offer, t0, &clock,
			MRY_MAX(last, now));
		now = clock;
	}

out:
	if (e != NULL) {
		/* the end of the capture is a shutdown: held messages are tempfailed */
		mry_engine_shutdown(e, now);
		if (write_counters(e, quiet, stats_json, metrics_file) != 0)
			sc.io_errors++;
		mry_engine_destroy(e, now);
	}
	if (sc.out != NULL)
		pcap_dump_close(sc.out);
	if (sc.out_pcap != NULL)
		pcap_close(sc.out_pcap);
	outfile_close_all(&sc);
	if (sc.log != stdout && sc.log != NULL && fclose(sc.log) != 0)
		sc.io_errors++;
	else if (sc.log == stdout)
		fflush(stdout);
	mry_blocklist_free(blocklist);
	mry_sigdb_ctl_destroy(sc.ctl);   /* drops the active generation's reference */
	if (sc.io_errors > 0) {
		fprintf(stderr, "moray-scan: %d output errors\n", sc.io_errors);
		if (rc == 0)
			rc = 1;
	}
	return rc;
}
