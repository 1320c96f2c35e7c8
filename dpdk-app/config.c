/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Application options: the command line after "--" and --config FILE, which
 * holds the same long options as "key = value" lines. The file is read
 * first and the command line overrides it. Every bad value is one line on
 * stderr and a non-zero exit; nothing here needs EAL, so --help, --version
 * and usage errors answer before EAL starts.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>
#include <rte_version.h>

#include "app.h"

enum {
	OPT_DB = 256,
	OPT_DB_PUBKEY,
	OPT_DB_POLICY,
	OPT_DB_MAX_AGE,
	OPT_HOLD_TIMEOUT,
	OPT_HOLD_STORE,
	OPT_SMTP_PORTS,
	OPT_MAX_FLOWS,
	OPT_REASM_SEGS,
	OPT_LOG,
	OPT_ENCRYPTED,
	OPT_BARE_LF,
	OPT_ALARM,
	OPT_BURST,
	OPT_DISPATCH,
	OPT_RX_LCORES,
	OPT_WORKERS,
	OPT_IDLE_EXIT,
	OPT_STATS,
	OPT_METRICS_FILE,
	OPT_CONFIG,
	OPT_RING_SIZE,
	OPT_MBUFS,
	OPT_RXD,
	OPT_TXD,
	OPT_NO_PROMISC,
	OPT_BLOCKLIST,
	OPT_HELP,
	OPT_VERSION,
	OPT_ENGINE = 512,       /* + index in engine_opts[] */
};

/*
 * The engine options (FLOOD-SPEC: the same names in moray, moray-scan and
 * --config keys): parsed and range-checked by the engine's one table,
 * mry_engine_option_set(); this list only gives getopt their names. All
 * per worker, except --max-flows, which moray keeps as the total over its
 * workers (split evenly, as before): per worker, the default 65536 would
 * need about 700 MiB of EAL memory per worker.
 */
static const char *const engine_opts[] = {
	"max-half-open", "max-per-source", "max-msgs",
	"timeout-half-open", "timeout-greeting", "timeout-cmd", "timeout-data-init",
	"timeout-data", "min-data-rate", "timeout-data-end", "timeout-closing",
	"emergency-high", "emergency-low", "emergency-timeout-pct", "shed-log-interval",
};
#define NB_ENGINE_OPTS (sizeof(engine_opts) / sizeof(engine_opts[0]))

static const struct option app_opts[] = {
	{ "portmask", required_argument, NULL, 'p' },
	{ "db", required_argument, NULL, OPT_DB },
	{ "db-pubkey", required_argument, NULL, OPT_DB_PUBKEY },
	{ "db-policy", required_argument, NULL, OPT_DB_POLICY },
	{ "db-max-age", required_argument, NULL, OPT_DB_MAX_AGE },
	{ "hold-timeout", required_argument, NULL, OPT_HOLD_TIMEOUT },
	{ "hold-store-size", required_argument, NULL, OPT_HOLD_STORE },
	{ "smtp-ports", required_argument, NULL, OPT_SMTP_PORTS },
	{ "max-flows", required_argument, NULL, OPT_MAX_FLOWS },
	{ "reasm-segments", required_argument, NULL, OPT_REASM_SEGS },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "encrypted", required_argument, NULL, OPT_ENCRYPTED },
	{ "bare-lf", required_argument, NULL, OPT_BARE_LF },
	{ "alarm-no-clean", required_argument, NULL, OPT_ALARM },
	{ "burst", required_argument, NULL, OPT_BURST },
	{ "dispatch", required_argument, NULL, OPT_DISPATCH },
	{ "rx-lcores", required_argument, NULL, OPT_RX_LCORES },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "idle-exit", required_argument, NULL, OPT_IDLE_EXIT },
	{ "stats-interval", required_argument, NULL, OPT_STATS },
	{ "metrics-file", required_argument, NULL, OPT_METRICS_FILE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
	{ "mbufs", required_argument, NULL, OPT_MBUFS },
	{ "rxd", required_argument, NULL, OPT_RXD },
	{ "txd", required_argument, NULL, OPT_TXD },
	{ "no-promisc", no_argument, NULL, OPT_NO_PROMISC },
	{ "blocklist", required_argument, NULL, OPT_BLOCKLIST },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* app_opts followed by the engine options: what getopt and --config take */
static struct option long_opts[sizeof(app_opts) / sizeof(app_opts[0]) + NB_ENGINE_OPTS];

static void long_opts_init(void)
{
	size_t n = 0, i;

	if (long_opts[0].name != NULL)
		return;
	for (i = 0; app_opts[i].name != NULL; i++)
		long_opts[n++] = app_opts[i];
	for (i = 0; i < NB_ENGINE_OPTS; i++)
		long_opts[n++] = (struct option){ engine_opts[i], required_argument, NULL,
						  OPT_ENGINE + (int)i };
	long_opts[n] = (struct option){ NULL, 0, NULL, 0 };
}

void app_config_defaults(struct app_options *o)
{
	memset(o, 0, sizeof(*o));
	o->portmask = 0;
	o->db_policy = MRY_DB_POLICY_HOLD;
	o->db_max_age_s = 0;
	o->hold_timeout_s = 240;
	o->hold_store_bytes = 256ULL << 20;
	o->smtp_ports[0] = 25;
	o->smtp_ports[1] = 587;
	o->smtp_ports[2] = 2525;
	o->nb_smtp_ports = 3;
	mry_engine_config_defaults(&o->eng);
	o->max_flows = 65536;
	o->reasm_segments = 65536;
	o->encrypted = MRY_ENCRYPTED_PASS;
	o->bare_lf = MRY_BARE_LF_REJECT;
	o->alarm_no_clean_s = 600;
	o->burst = 32;
	o->dispatch = APP_DISPATCH_AUTO;
	o->nb_rx_lcores = 1;
	o->nb_workers = 0;
	o->idle_exit_s = 0;
	o->stats_interval_s = 0;
	o->ring_size = 1024;
	o->nb_mbufs = 0;
	o->nb_rxd = 1024;
	o->nb_txd = 1024;
	o->promisc = true;
}

/* The engine's option lines, without --max-flows (moray's own, above). */
static void usage_engine(FILE *f)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	if (m == NULL)
		return;
	mry_engine_option_usage(m);
	fclose(m);
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "  --max-flows ", 14) != 0)
			fprintf(f, "%s\n", line);
	free(buf);
}

void app_config_usage(FILE *f)
{
	fprintf(f,
"usage: moray [EAL options] -- [options]\n"
"  -p, --portmask MASK      ports to use (hex), paired 0<->1, 2<->3 ... (required)\n"
"  --db FILE                signature database, watched and reloaded on change\n"
"  --db-pubkey FILE         Ed25519 public key (32 raw bytes or 64 hex chars)\n"
"  --db-policy hold|last-good  what an invalid database means (default hold)\n"
"  --db-max-age SEC         database older than this is invalid (0: no limit,\n"
"                           else at least 60)\n"
"  --hold-timeout SEC       held message answered 451 after this (1-599, default 240)\n"
"  --hold-store-size BYTES  hold store, total over workers; k/M/G suffixes\n"
"                           (1M-1T, default 256M; each worker's share at least 1M)\n"
"  --smtp-ports LIST        SMTP server ports (default 25,587,2525)\n"
"  --max-flows N            flow table entries, total over workers (default 65536;\n"
"                           moray-scan: its one table)\n"
"  --reasm-segments N       out-of-order segment buffers (2 KiB), total over\n"
"                           workers (default 65536)\n"
"  --log FILE               verdict log, JSON lines (SIGHUP reopens it)\n"
"  --blocklist FILE         source prefixes to refuse, one CIDR a line ('#' comments);\n"
"                           reloaded when the file changes (a bad file keeps the\n"
"                           previous list); /moray/block adds prefixes at runtime\n"
"  --encrypted pass|block   STARTTLS policy (default pass)\n"
"  --bare-lf reject|strict  a '.' line in DATA that some server takes as end of data\n"
"                           (SMTP smuggling): reject the message with 554 5.5.2\n"
"                           (default), or judge the RFC 5321 message, forward if clean\n"
"  --alarm-no-clean SEC     alarm when no clean message passed this long while SMTP\n"
"                           traffic is present (default 600, 0: off)\n"
"  --burst N                rx/tx burst size (default 32, max %d)\n"
"  --dispatch auto|sw|rss|queue\n"
"                           packet distribution to workers (default auto: rss when\n"
"                           every port has RSS and enough queues, else sw; with\n"
"                           one worker, rss means it polls every port itself);\n"
"                           queue: one rx queue per worker as rss, but the device\n"
"                           steers flows itself (flow rules set up outside moray,\n"
"                           net_pcap with one capture per queue): both directions\n"
"                           of a connection must reach the same queue number\n"
"  --rx-lcores N            sw dispatch: lcores polling the ports (default 1)\n"
"  --workers N              worker lcores (default: every lcore left)\n"
"  --ring-size N            sw dispatch ring entries (power of 2, default 1024)\n"
"  --mbufs N                mbufs per socket (default: computed)\n"
"  --rxd N / --txd N        descriptors per queue (default 1024)\n"
"  --no-promisc             leave promiscuous mode off\n"
"  --idle-exit SEC          exit cleanly when no packet arrived for SEC (tests)\n"
"  --stats-interval SEC     print statistics every SEC (0: off)\n"
"  --metrics-file PATH      Prometheus text file (node_exporter textfile collector),\n"
"                           rewritten atomically every --stats-interval (10 s when\n"
"                           that is 0) and at exit\n"
"  --config FILE            the same long options as 'key = value' lines\n"
"  --help, --version\n"
"engine options (per worker; the same in moray-scan and as --config keys):\n",
		APP_MAX_BURST);
	usage_engine(f);
}

void app_config_version(FILE *f)
{
	fprintf(f, "moray %s (%s, Hyperscan %s", MORAY_VERSION, rte_version(),
		hs_version());
#ifdef MRY_SIGDB_FORMAT_VERSION
	fprintf(f, ", db format %u", (unsigned)MRY_SIGDB_FORMAT_VERSION);
#endif
	fprintf(f, ")\n");
}

int app_config_early(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
		if (strcmp(argv[i], "--version") == 0)
			return 2;
	}
	return 0;
}

static int bad(const char *opt, const char *val, const char *why)
{
	fprintf(stderr, "moray: error: --%s '%s': %s\n", opt, val, why);
	return -EINVAL;
}

static int parse_num(const char *name, const char *s, uint64_t min, uint64_t max,
		     uint64_t *out, bool suffix)
{
	char why[96];
	int rc = mry_parse_u64(s, min, max, suffix, out);

	if (rc == -ERANGE) {
		snprintf(why, sizeof(why), "out of range [%" PRIu64 ", %" PRIu64 "]",
			 min, max);
		return bad(name, s, why);
	}
	if (rc != 0)
		return bad(name, s, suffix ? "not a number (k/M/G suffixes allowed)"
				     : "not a number");
	return 0;
}

static int parse_ports(struct app_options *o, const char *s)
{
	int n = mry_parse_port_list(s, o->smtp_ports, MRY_ENGINE_MAX_SMTP_PORTS);

	if (n == -E2BIG)
		return bad("smtp-ports", s, "too many ports (max 16)");
	if (n < 0)
		return bad("smtp-ports", s, "expected a comma-separated list of ports 1-65535");
	o->nb_smtp_ports = (uint8_t)n;
	return 0;
}

static int load_pubkey(struct app_options *o, const char *path)
{
	char why[128];

	if (mry_sigdb_read_key(path, o->db_pubkey, sizeof(o->db_pubkey), why, sizeof(why)) != 0)
		return bad("db-pubkey", path, why);
	o->have_pubkey = true;
	return 0;
}

static int set_path(char *dst, size_t len, const char *name, const char *val)
{
	if (*val == '\0')
		return bad(name, val, "empty path");
	if (strlen(val) >= len)
		return bad(name, val, "path too long");
	strcpy(dst, val);
	return 0;
}

static int load_config_file(struct app_options *o, const char *path, int depth);

/* One option by its long name (command line or config file). */
static int apply(struct app_options *o, int id, const char *name, const char *val,
		 int depth)
{
	uint64_t v;
	char *end;

	if (id >= OPT_ENGINE) {
		char why[256];

		if (mry_engine_option_set(&o->eng, name, val, why, sizeof(why)) != 0) {
			fprintf(stderr, "moray: error: %s\n", why);
			return -EINVAL;
		}
		return 0;
	}
	switch (id) {
	case 'p':
		errno = 0;
		v = strtoull(val, &end, 16);
		if (*val == '\0' || *end != '\0' || errno != 0 || v == 0)
			return bad("portmask", val, "expected a non-zero hex mask");
		o->portmask = v;
		return 0;
	case OPT_DB:
		return set_path(o->db_path, sizeof(o->db_path), name, val);
	case OPT_DB_PUBKEY:
		return load_pubkey(o, val);
	case OPT_DB_POLICY:
		if (strcmp(val, "hold") == 0)
			o->db_policy = MRY_DB_POLICY_HOLD;
		else if (strcmp(val, "last-good") == 0)
			o->db_policy = MRY_DB_POLICY_LAST_GOOD;
		else
			return bad(name, val, "expected hold or last-good");
		return 0;
	case OPT_DB_MAX_AGE:
		return parse_num(name, val, 0, UINT32_MAX, &o->db_max_age_s, false);
	case OPT_HOLD_TIMEOUT:
		/* the range (and why) is the engine's: check() */
		return parse_num(name, val, 0, UINT32_MAX, &o->hold_timeout_s, false);
	case OPT_HOLD_STORE:
		return parse_num(name, val, 0, 1ULL << 40, &o->hold_store_bytes, true);
	case OPT_SMTP_PORTS:
		return parse_ports(o, val);
	case OPT_MAX_FLOWS:
		if (parse_num(name, val, 1, 1U << 26, &v, true) != 0)
			return -EINVAL;
		o->max_flows = (uint32_t)v;
		return 0;
	case OPT_REASM_SEGS:
		if (parse_num(name, val, 64, 1U << 26, &v, true) != 0)
			return -EINVAL;
		o->reasm_segments = (uint32_t)v;
		return 0;
	case OPT_LOG:
		return set_path(o->log_path, sizeof(o->log_path), name, val);
	case OPT_METRICS_FILE:
		return set_path(o->metrics_path, sizeof(o->metrics_path), name, val);
	case OPT_BLOCKLIST:
		return set_path(o->blocklist_path, sizeof(o->blocklist_path), name, val);
	case OPT_ENCRYPTED:
		if (strcmp(val, "pass") == 0)
			o->encrypted = MRY_ENCRYPTED_PASS;
		else if (strcmp(val, "block") == 0)
			o->encrypted = MRY_ENCRYPTED_BLOCK;
		else
			return bad(name, val, "expected pass or block");
		return 0;
	case OPT_BARE_LF:
		if (strcmp(val, "reject") == 0)
			o->bare_lf = MRY_BARE_LF_REJECT;
		else if (strcmp(val, "strict") == 0)
			o->bare_lf = MRY_BARE_LF_STRICT;
		else
			return bad(name, val, "expected reject or strict");
		return 0;
	case OPT_ALARM:
		return parse_num(name, val, 0, UINT32_MAX, &o->alarm_no_clean_s, false);
	case OPT_BURST:
		if (parse_num(name, val, 1, APP_MAX_BURST, &v, false) != 0)
			return -EINVAL;
		o->burst = (uint32_t)v;
		return 0;
	case OPT_DISPATCH:
		if (strcmp(val, "sw") == 0)
			o->dispatch = APP_DISPATCH_SW;
		else if (strcmp(val, "rss") == 0)
			o->dispatch = APP_DISPATCH_RSS;
		else if (strcmp(val, "queue") == 0)
			o->dispatch = APP_DISPATCH_QUEUE;
		else if (strcmp(val, "auto") == 0)
			o->dispatch = APP_DISPATCH_AUTO;
		else
			return bad(name, val, "expected auto, sw, rss or queue");
		return 0;
	case OPT_RX_LCORES:
		if (parse_num(name, val, 1, APP_MAX_RX_LCORES, &v, false) != 0)
			return -EINVAL;
		o->nb_rx_lcores = (uint32_t)v;
		return 0;
	case OPT_WORKERS:
		if (parse_num(name, val, 1, APP_MAX_WORKERS, &v, false) != 0)
			return -EINVAL;
		o->nb_workers = (uint32_t)v;
		return 0;
	case OPT_IDLE_EXIT:
		return parse_num(name, val, 0, UINT32_MAX, &o->idle_exit_s, false);
	case OPT_STATS:
		return parse_num(name, val, 0, UINT32_MAX, &o->stats_interval_s, false);
	case OPT_CONFIG:
		return load_config_file(o, val, depth + 1);
	case OPT_RING_SIZE:
		if (parse_num(name, val, 64, 1U << 20, &v, false) != 0)
			return -EINVAL;
		if ((v & (v - 1)) != 0)
			return bad(name, val, "must be a power of 2");
		o->ring_size = (uint32_t)v;
		return 0;
	case OPT_MBUFS:
		if (parse_num(name, val, 1024, 1U << 24, &v, true) != 0)
			return -EINVAL;
		o->nb_mbufs = (uint32_t)v;
		return 0;
	case OPT_RXD:
	case OPT_TXD:
		if (parse_num(name, val, 32, 16384, &v, false) != 0)
			return -EINVAL;
		if (id == OPT_RXD)
			o->nb_rxd = (uint16_t)v;
		else
			o->nb_txd = (uint16_t)v;
		return 0;
	case OPT_NO_PROMISC:
		o->promisc = false;
		return 0;
	default:
		fprintf(stderr, "moray: error: option --%s not allowed here\n", name);
		return -EINVAL;
	}
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_config_file(struct app_options *o, const char *path, int depth)
{
	char line[2048];
	unsigned lineno = 0;
	int rc = 0;
	FILE *f;

	if (depth > 4)
		return bad("config", path, "nested too deeply");
	f = fopen(path, "r");
	if (f == NULL)
		return bad("config", path, strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		const struct option *lo;
		char *key, *val, *eq, *s;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "moray: error: %s:%u: line too long\n", path, lineno);
			rc = -EINVAL;
			break;
		}
		s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		eq = strchr(s, '=');
		if (eq != NULL) {
			*eq = '\0';
			val = trim(eq + 1);
		} else {
			val = NULL;
		}
		key = trim(s);
		for (lo = long_opts; lo->name != NULL; lo++)
			if (strcmp(lo->name, key) == 0)
				break;
		if (lo->name == NULL || lo->val == OPT_HELP || lo->val == OPT_VERSION) {
			fprintf(stderr, "moray: error: %s:%u: unknown option '%s'\n",
				path, lineno, key);
			rc = -EINVAL;
			break;
		}
		if (lo->has_arg == required_argument && (val == NULL || *val == '\0')) {
			fprintf(stderr, "moray: error: %s:%u: '%s' needs a value\n",
				path, lineno, key);
			rc = -EINVAL;
			break;
		}
		if (lo->has_arg == no_argument && val != NULL &&
		    strcmp(val, "true") != 0 && strcmp(val, "yes") != 0 &&
		    strcmp(val, "1") != 0) {
			if (strcmp(val, "false") == 0 || strcmp(val, "no") == 0 ||
			    strcmp(val, "0") == 0)
				continue;
			fprintf(stderr, "moray: error: %s:%u: '%s' takes no value\n",
				path, lineno, key);
			rc = -EINVAL;
			break;
		}
		rc = apply(o, lo->val, lo->name, val != NULL ? val : "", depth);
	}
	fclose(f);
	return rc;
}

/*
 * What the values mean, after the file and the command line: the engine's
 * shared range checks on the totals, in the same words as moray-scan (each
 * worker's share is checked again once the workers are known).
 */
static int check(const struct app_options *o)
{
	struct mry_sigdb_ctl_config db = { .max_age_s = o->db_max_age_s };
	struct mry_engine_config c;
	char why[256];

	c = o->eng;
	c.flow.max_flows = o->max_flows;
	memcpy(c.smtp_ports, o->smtp_ports, sizeof(c.smtp_ports));
	c.nb_smtp_ports = o->nb_smtp_ports;
	c.hold_timeout_ns = o->hold_timeout_s * MRY_NS_PER_SEC;
	c.hold_store_bytes = o->hold_store_bytes;

	if (mry_engine_config_check(&c, &db, why, sizeof(why)) != 0) {
		fprintf(stderr, "moray: error: %s\n", why);
		return -EINVAL;
	}
	return 0;
}

int app_config_parse(struct app_options *o, int argc, char **argv)
{
	int c, i, rc;

	long_opts_init();
	/* --config first, so the command line overrides the file. */
	for (i = 1; i < argc; i++) {
		const char *v = NULL;

		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			v = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			v = argv[i] + 9;
		if (v != NULL && load_config_file(o, v, 0) != 0)
			return -EINVAL;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":p:", long_opts, NULL)) != -1) {
		const char *name = NULL;
		const struct option *lo;

		if (c == '?') {
			fprintf(stderr, "moray: error: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (c == ':') {
			fprintf(stderr, "moray: error: option '%s' needs a value\n",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (c == OPT_CONFIG)
			continue;
		for (lo = long_opts; lo->name != NULL; lo++)
			if (lo->val == c)
				name = lo->name;
		rc = apply(o, c, name, optarg != NULL ? optarg : "", 0);
		if (rc != 0)
			return rc;
	}
	if (optind < argc) {
		fprintf(stderr, "moray: error: unexpected argument '%s' (see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	if (o->portmask == 0) {
		fprintf(stderr, "moray: error: no ports: give -p PORTMASK (see --help)\n");
		return -EINVAL;
	}
	return check(o);
}
