/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * /moray/... telemetry commands (dpdk-telemetry.py -f <file-prefix>). They
 * run on DPDK's telemetry thread and only read published copies: each
 * worker's seqlock snapshot, the rx lcores' single-writer counters, and the
 * main lcore's control snapshot, each worker's top-sources double buffer.
 * Nothing here touches a worker's engine; block/unblock go through
 * blocklist.c, which publishes a new list to the workers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "app.h"
#include "moray/blocklist.h"

#define D_U64(d, k, v) rte_tel_data_add_dict_u64((d), (k), (uint64_t)(v))

static const char *dispatch_name(const struct app *a)
{
	return a->dispatch == APP_DISPATCH_SW ? "sw" : a->rss_hash ? "rss" : "queue";
}

/*
 * Every number here comes from the counter table (moray/counters.h) through
 * app_counters_*(): a command picks which sources and groups it shows and how
 * keys are formed, never a counter by name.
 */
enum key_mode {
	KEY_FLAT,       /* "name" in group engine, "<group>_<name>" elsewhere */
	KEY_NAME,       /* "name" (commands about one group) */
};

struct add_ctx {
	struct rte_tel_data *d;
	enum key_mode mode;
	const char *group;      /* only this group (NULL: all) */
	const char *contains;   /* only names containing this (NULL: all) */
};

static void add_one(void *ctx, const struct mry_counter_def *def, const char *name,
		    const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	struct add_ctx *c = ctx;
	char key[RTE_TEL_MAX_STRING_LEN];

	(void)s;
	(void)inst;
	if (c->group != NULL && strcmp(c->group, def->group) != 0)
		return;
	if (c->contains != NULL && strstr(name, c->contains) == NULL)
		return;
	if (c->mode == KEY_FLAT && strcmp(def->group, "engine") != 0)
		snprintf(key, sizeof(key), "%s_%s", def->group, name);
	else
		snprintf(key, sizeof(key), "%s", name);
	D_U64(c->d, key, v);
}

static void add_rows(struct rte_tel_data *d, const struct mry_counter_src *srcs,
		     enum key_mode mode, const char *group, const char *contains)
{
	struct add_ctx c = { d, mode, group, contains };
	const struct mry_counter_def *defs;
	size_t nb;

	defs = app_counters_table(&nb);
	mry_counters_foreach(defs, nb, srcs, APP_SRC_MAX, add_one, &c);
}

static int cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;   /* one telemetry thread */
	struct mry_counter_src srcs[APP_SRC_MAX];
	struct app *a = &g_app;

	(void)cmd;
	(void)params;
	app_counters_total(a, &t);
	app_counters_srcs(srcs, &t, APP_COUNTERS_ALL & ~(1u << APP_SRC_PORT), NULL, NULL, 0);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "version", MORAY_VERSION);
	rte_tel_data_add_dict_string(d, "dispatch", dispatch_name(a));
	D_U64(d, "workers", a->nb_workers);
	D_U64(d, "rx_lcores", a->nb_rx);
	D_U64(d, "uptime_s", (app_now_ns() - a->start_ns) / MRY_NS_PER_SEC);
	add_rows(d, srcs, KEY_FLAT, NULL, NULL);
	return 0;
}

static int cmd_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;
	struct mry_counter_src srcs[APP_SRC_MAX];
	struct app *a = &g_app;
	unsigned i;

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	for (i = 0; i < a->nb_workers; i++) {
		struct rte_tel_data *c = rte_tel_data_alloc();
		char key[16];

		if (c == NULL)
			break;
		app_counters_worker(a, i, &t);
		app_counters_srcs(srcs, &t, APP_COUNTERS_WORKER, NULL, NULL, 0);
		rte_tel_data_start_dict(c);
		D_U64(c, "lcore", a->workers[i]->lcore);
		D_U64(c, "socket", (uint64_t)a->workers[i]->socket);
		/* the engine's own stats, not every module's: the output has a cap */
		add_rows(c, srcs, KEY_FLAT, "engine", NULL);
		srcs[APP_SRC_ENG].nb = 0;
		add_rows(c, srcs, KEY_FLAT, NULL, NULL);
		snprintf(key, sizeof(key), "%u", i);
		rte_tel_data_add_dict_container(d, key, c, 0);
	}
	return 0;
}

static int cmd_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_port_counters es[APP_MAX_PORTS];
	static uint16_t ids[APP_MAX_PORTS];
	struct mry_counter_src srcs[APP_SRC_MAX];
	struct app *a = &g_app;
	unsigned i, n;

	(void)cmd;
	(void)params;
	n = app_counters_ports(a, es, ids);
	rte_tel_data_start_dict(d);
	for (i = 0; i < n; i++) {
		struct rte_tel_data *c = rte_tel_data_alloc();
		uint16_t p = ids[i];
		char key[16];

		if (c == NULL)
			break;
		rte_tel_data_start_dict(c);
		D_U64(c, "pair", a->pair[p]);
		if (a->dispatch == APP_DISPATCH_SW && a->port_owner[p] >= 0)
			D_U64(c, "rx_lcore", a->rx[a->port_owner[p]]->lcore);
		app_counters_srcs(srcs, NULL, 1u << APP_SRC_PORT, &es[i], NULL, 1);
		srcs[APP_SRC_PORT].label = NULL;   /* one port per dict */
		add_rows(c, srcs, KEY_NAME, NULL, NULL);
		snprintf(key, sizeof(key), "%u", p);
		rte_tel_data_add_dict_container(d, key, c, 0);
	}
	return 0;
}

static int cmd_db(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;
	struct mry_counter_src srcs[APP_SRC_MAX];
	struct app_ctl_snapshot s;

	(void)cmd;
	(void)params;
	app_control_snapshot_read(&g_app, &s);
	app_counters_total(&g_app, &t);
	app_counters_srcs(srcs, &t, 1u << APP_SRC_CTL, NULL, NULL, 0);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "state", s.db_valid ? "valid" : "invalid");
	rte_tel_data_add_dict_string(d, "reason", s.db_reason);
	rte_tel_data_add_dict_string(d, "policy",
				     g_app.opt.db_policy == MRY_DB_POLICY_HOLD ? "hold" : "last-good");
	rte_tel_data_add_dict_string(d, "path", g_app.opt.db_path);
	add_rows(d, srcs, KEY_NAME, "db", NULL);
	return 0;
}

static int cmd_hold(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;
	struct mry_counter_src srcs[APP_SRC_MAX];
	uint64_t now = app_now_ns(), oldest;

	(void)cmd;
	(void)params;
	app_counters_total(&g_app, &t);
	app_counters_srcs(srcs, &t, 1u << APP_SRC_ENG, NULL, NULL, 0);
	oldest = t.eng.engine.hold_oldest_ns;
	rte_tel_data_start_dict(d);
	add_rows(d, srcs, KEY_NAME, "engine", "hold");
	D_U64(d, "oldest_age_ms", oldest != 0 && now > oldest ?
	      (now - oldest) / MRY_NS_PER_MS : 0);
	D_U64(d, "hold_store_bytes_total", g_app.opt.hold_store_bytes);
	D_U64(d, "hold_timeout_s", g_app.opt.hold_timeout_s);
	return 0;
}

/* {"group": {"name": value, ...}, ...}: what moray-scan --stats-json writes */
static int cmd_counters(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;
	struct mry_counter_src srcs[APP_SRC_MAX];
	const struct mry_counter_def *defs;
	const char *last = NULL;
	size_t nb, i;

	(void)cmd;
	(void)params;
	app_counters_total(&g_app, &t);
	app_counters_srcs(srcs, &t, APP_COUNTERS_ALL & ~(1u << APP_SRC_PORT), NULL, NULL, 0);
	defs = app_counters_table(&nb);
	rte_tel_data_start_dict(d);
	for (i = 0; i < nb; i++) {
		struct rte_tel_data *c;

		if (defs[i].src == APP_SRC_PORT ||
		    (last != NULL && strcmp(last, defs[i].group) == 0))
			continue;
		last = defs[i].group;
		c = rte_tel_data_alloc();
		if (c == NULL)
			break;
		rte_tel_data_start_dict(c);
		add_rows(c, srcs, KEY_NAME, defs[i].group, NULL);
		rte_tel_data_add_dict_container(d, defs[i].group, c, 0);
	}
	return 0;
}

static int cmd_alarm(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app_ctl_snapshot s;

	(void)cmd;
	(void)params;
	app_control_snapshot_read(&g_app, &s);
	rte_tel_data_start_dict(d);
	D_U64(d, "alarm", s.alarm);
	rte_tel_data_add_dict_string(d, "reason", s.alarm_reason);
	D_U64(d, "alarm_no_clean_s", g_app.opt.alarm_no_clean_s);
	return 0;
}

/* ---- open flows by phase, pool use, emergency: the flow gauges --------- */

/* One worker's flow gauges, picked out of the counter table by group. */
struct flow_gauges {
	uint64_t open[MRY_FLOW_PHASE_MAX];
	uint64_t sources, half_open_budget, pressure_pct, emergency;
	uint64_t hold_msgs, msgs_open;
};

static void pick_gauge(void *ctx, const struct mry_counter_def *def, const char *name,
		       const struct mry_counter_src *s, unsigned inst, uint64_t v)
{
	struct flow_gauges *g = ctx;
	unsigned i;

	(void)s;
	(void)inst;
	if (strcmp(def->group, "flow_open") == 0) {
		for (i = 0; i < MRY_FLOW_PHASE_MAX; i++)
			if (strcmp(name, mry_flow_phase_name_u(i)) == 0)
				g->open[i] = v;
	} else if (strcmp(def->group, "flow") == 0) {
		if (strcmp(name, "sources") == 0)
			g->sources = v;
		else if (strcmp(name, "half_open_budget") == 0)
			g->half_open_budget = v;
		else if (strcmp(name, "pressure_pct") == 0)
			g->pressure_pct = v;
		else if (strcmp(name, "emergency") == 0)
			g->emergency = v;
	} else if (strcmp(def->group, "engine") == 0 && strcmp(name, "hold_msgs") == 0) {
		g->hold_msgs = v;
	} else if (strcmp(def->group, "engine") == 0 && strcmp(name, "msgs_open") == 0) {
		g->msgs_open = v;
	}
}

static uint64_t open_total(const struct flow_gauges *g)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < MRY_FLOW_PHASE_MAX; i++)
		n += g->open[i];
	return n;
}

static struct rte_tel_data *gauge_dict(const struct flow_gauges *g)
{
	struct rte_tel_data *c = rte_tel_data_alloc();
	unsigned i;

	if (c == NULL)
		return NULL;
	rte_tel_data_start_dict(c);
	D_U64(c, "open", open_total(g));
	for (i = 0; i < MRY_FLOW_PHASE_MAX; i++)
		D_U64(c, mry_flow_phase_name_u(i), g->open[i]);
	D_U64(c, "sources", g->sources);
	D_U64(c, "pressure_pct", g->pressure_pct);
	D_U64(c, "emergency", g->emergency);
	return c;
}

static void pool_dict(struct rte_tel_data *d, const char *name, uint64_t used, uint64_t cap)
{
	struct rte_tel_data *c = rte_tel_data_alloc();

	if (c == NULL)
		return;
	rte_tel_data_start_dict(c);
	D_U64(c, "used", used);
	D_U64(c, "capacity", cap);
	D_U64(c, "use_pct", cap != 0 ? used * 100 / cap : 0);
	rte_tel_data_add_dict_container(d, name, c, 0);
}

/*
 * {"total": {...}, "workers": {"0": {...}}, "pools": {...}, "emergency": n}:
 * open flows by phase, distinct sources, the fullest pool's use and the
 * emergency state, per worker and summed ("emergency" and "pressure_pct" of
 * the total: how many workers are in emergency mode, the highest use).
 */
static int cmd_flows(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct app_counters t;
	struct mry_counter_src srcs[APP_SRC_MAX];
	const struct mry_counter_def *defs;
	struct rte_tel_data *wd, *pools, *c;
	struct flow_gauges sum, g;
	struct app *a = &g_app;
	const struct mry_engine_config *ec = &a->ecfg;
	uint64_t msgs_cap;
	size_t nb;
	unsigned i, k;

	(void)cmd;
	(void)params;
	defs = app_counters_table(&nb);
	memset(&sum, 0, sizeof(sum));
	rte_tel_data_start_dict(d);
	wd = rte_tel_data_alloc();
	if (wd != NULL)
		rte_tel_data_start_dict(wd);
	for (i = 0; i < a->nb_workers; i++) {
		char key[16];

		app_counters_worker(a, i, &t);
		app_counters_srcs(srcs, &t, 1u << APP_SRC_ENG, NULL, NULL, 0);
		memset(&g, 0, sizeof(g));
		mry_counters_foreach(defs, nb, srcs, APP_SRC_MAX, pick_gauge, &g);
		for (k = 0; k < MRY_FLOW_PHASE_MAX; k++)
			sum.open[k] += g.open[k];
		sum.sources += g.sources;
		sum.half_open_budget += g.half_open_budget;
		sum.pressure_pct = MRY_MAX(sum.pressure_pct, g.pressure_pct);
		sum.emergency += g.emergency;
		sum.hold_msgs += g.hold_msgs;
		sum.msgs_open += g.msgs_open;
		if (wd != NULL && (c = gauge_dict(&g)) != NULL) {
			snprintf(key, sizeof(key), "%u", i);
			rte_tel_data_add_dict_container(wd, key, c, 0);
		}
	}
	if ((c = gauge_dict(&sum)) != NULL)
		rte_tel_data_add_dict_container(d, "total", c, 0);
	if (wd != NULL)
		rte_tel_data_add_dict_container(d, "workers", wd, 0);
	D_U64(d, "emergency", sum.emergency);
	pools = rte_tel_data_alloc();
	if (pools == NULL)
		return 0;
	rte_tel_data_start_dict(pools);
	/* max-msgs 0: what mry_engine_create() derives (max-flows/16, 64..max-flows) */
	msgs_cap = ec->max_msgs != 0 ? ec->max_msgs :
		MRY_MIN(ec->flow.max_flows, MRY_MAX(ec->flow.max_flows / 16u, 64u));
	pool_dict(pools, "flows", open_total(&sum), (uint64_t)ec->flow.max_flows * a->nb_workers);
	pool_dict(pools, "half_open", sum.open[MRY_FLOW_PHASE_HALF_OPEN], sum.half_open_budget);
	pool_dict(pools, "msgs", sum.msgs_open, msgs_cap * a->nb_workers);
	pool_dict(pools, "hold", sum.hold_msgs, (uint64_t)ec->hold_max_msgs * a->nb_workers);
	rte_tel_data_add_dict_container(d, "pools", pools, 0);
	return 0;
}

/* ---- top talkers: the workers' published top-N lists, merged ---------- */

#define TOP_DEFAULT 10

struct top_ent {
	struct mry_flow_source s;
	unsigned worker;
};

static int cmp_addr_worker(const void *x, const void *y)
{
	const struct top_ent *a = x, *b = y;
	int c;

	if (a->s.ip_version != b->s.ip_version)
		return a->s.ip_version < b->s.ip_version ? -1 : 1;
	c = memcmp(a->s.addr, b->s.addr, sizeof(a->s.addr));
	if (c != 0)
		return c;
	return a->worker < b->worker ? -1 : a->worker > b->worker;
}

static enum mry_flow_top_key sort_key;

static uint64_t key_of(const struct mry_flow_source *s, enum mry_flow_top_key k)
{
	return k == MRY_FLOW_TOP_FLOWS ? s->flows :
		k == MRY_FLOW_TOP_DATA_FLOWS ? s->data_flows : s->bytes;
}

/* highest first; ties: more flows, then lower address (as the engine sorts) */
static int cmp_key(const void *x, const void *y)
{
	const struct top_ent *a = x, *b = y;
	uint64_t ka = key_of(&a->s, sort_key), kb = key_of(&b->s, sort_key);

	if (ka != kb)
		return ka > kb ? -1 : 1;
	if (a->s.flows != b->s.flows)
		return a->s.flows > b->s.flows ? -1 : 1;
	return cmp_addr_worker(x, y);
}

static void src_text(const struct mry_flow_source *s, char *buf, size_t len)
{
	if (inet_ntop(s->ip_version == 6 ? AF_INET6 : AF_INET, s->addr, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

/*
 * {"workers": n, "age_ms": ms, "by_flows": {"1": {"src", "flows",
 * "data_flows", "bytes"}, "2": ...}, "by_data_flows": ..., "by_bytes": ...}:
 * each ranking an object keyed by rank from 1, in rank order (DPDK 22.11
 * telemetry cannot put objects in an array).
 * Each worker's sources are exact for its own flows (the dispatcher hashes
 * the IP pair, so one source talking to several servers may be on several
 * workers); a source is summed over the workers whose top lists name it.
 */
static int cmd_top_talkers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct top_ent ent[APP_MAX_WORKERS * APP_TOP_KEYS * APP_TOP_MAX];
	static struct app_top t;
	static const char *const keys[APP_TOP_KEYS] = { "by_flows", "by_data_flows", "by_bytes" };
	struct app *a = &g_app;
	unsigned n = 0, i, j, k, top = TOP_DEFAULT, nw = 0;
	uint64_t oldest = UINT64_MAX;

	(void)cmd;
	if (params != NULL && *params != '\0') {
		char *end;
		unsigned long v = strtoul(params, &end, 10);

		if (*end != '\0' || v == 0 || v > APP_TOP_MAX)
			return -EINVAL;
		top = (unsigned)v;
	}
	for (i = 0; i < a->nb_workers; i++) {
		if (!app_worker_top_read(a->workers[i], &t))
			continue;
		nw++;
		oldest = MRY_MIN(oldest, t.ns);
		for (k = 0; k < APP_TOP_KEYS; k++)
			for (j = 0; j < t.nb[k] && j < APP_TOP_MAX; j++)
				ent[n++] = (struct top_ent){ t.src[k][j], i };
	}
	/* one entry per (source, worker), then one per source summed */
	qsort(ent, n, sizeof(ent[0]), cmp_addr_worker);
	for (i = 0, j = 0; i < n; i++) {
		if (j > 0 && ent[j - 1].s.ip_version == ent[i].s.ip_version &&
		    memcmp(ent[j - 1].s.addr, ent[i].s.addr, sizeof(ent[i].s.addr)) == 0) {
			if (ent[j - 1].worker != ent[i].worker) {
				ent[j - 1].s.flows += ent[i].s.flows;
				ent[j - 1].s.data_flows += ent[i].s.data_flows;
				ent[j - 1].s.bytes += ent[i].s.bytes;
				ent[j - 1].worker = ent[i].worker;
			}
			continue;
		}
		ent[j++] = ent[i];
	}
	n = j;
	rte_tel_data_start_dict(d);
	D_U64(d, "workers", nw);
	D_U64(d, "age_ms", oldest != UINT64_MAX && app_now_ns() > oldest ?
	      (app_now_ns() - oldest) / MRY_NS_PER_MS : 0);
	for (k = 0; k < APP_TOP_KEYS; k++) {
		struct rte_tel_data *list = rte_tel_data_alloc();

		if (list == NULL)
			break;
		sort_key = (enum mry_flow_top_key)k;
		qsort(ent, n, sizeof(ent[0]), cmp_key);
		rte_tel_data_start_dict(list);
		for (i = 0; i < n && i < top; i++) {
			struct rte_tel_data *c;
			char src[64], rank[16];

			if (key_of(&ent[i].s, sort_key) == 0 || (c = rte_tel_data_alloc()) == NULL)
				break;
			src_text(&ent[i].s, src, sizeof(src));
			rte_tel_data_start_dict(c);
			rte_tel_data_add_dict_string(c, "src", src);
			D_U64(c, "flows", ent[i].s.flows);
			D_U64(c, "data_flows", ent[i].s.data_flows);
			D_U64(c, "bytes", ent[i].s.bytes);
			snprintf(rank, sizeof(rank), "%u", i + 1);
			rte_tel_data_add_dict_container(list, rank, c, 0);
		}
		rte_tel_data_add_dict_container(d, keys[k], list, 0);
	}
	return 0;
}

/* {"ok": bool, "error": why (on failure), "entries": N} */
static void bl_answer(struct rte_tel_data *d, int rc, const char *err)
{
	size_t total;

	rte_tel_data_start_dict(d);
	D_U64(d, "ok", rc == 0);
	if (rc != 0)
		rte_tel_data_add_dict_string(d, "error", err);
	app_blocklist_list(NULL, 0, &total);
	D_U64(d, "entries", total);
}

/* /moray/block,<prefix>[,seconds] */
static int cmd_block(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const char *comma;
	uint64_t secs = 0;
	char err[160] = "";
	size_t len;
	int rc;

	(void)cmd;
	if (params == NULL || *params == '\0') {
		bl_answer(d, -EINVAL, "usage: /moray/block,<prefix>[,seconds]");
		return 0;
	}
	comma = strchr(params, ',');
	len = comma != NULL ? (size_t)(comma - params) : strlen(params);
	if (comma != NULL) {
		char *end;

		errno = 0;
		secs = strtoull(comma + 1, &end, 10);
		if (comma[1] == '\0' || *end != '\0' || errno != 0 || secs == 0 ||
		    secs > 100ULL * 365 * 86400) {
			bl_answer(d, -EINVAL, "seconds: expected 1 to 3153600000");
			return 0;
		}
	}
	rc = app_blocklist_block(&g_app, params, len, secs, err, sizeof(err));
	bl_answer(d, rc, err);
	return 0;
}

/* /moray/unblock,<prefix> */
static int cmd_unblock(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char err[160] = "";
	int rc;

	(void)cmd;
	if (params == NULL || *params == '\0') {
		bl_answer(d, -EINVAL, "usage: /moray/unblock,<prefix>");
		return 0;
	}
	rc = app_blocklist_unblock(&g_app, params, strlen(params), err, sizeof(err));
	bl_answer(d, rc, err);
	return 0;
}

#define BL_SHOW 128     /* entries a telemetry answer lists (its size is capped) */

/*
 * {"entries": N, "shown": n, "file": path, "prefixes": [...], "expires":
 * [RFC 3339 | "never", ...], "expires_in_s": [...]}: parallel arrays (DPDK
 * 22.11 telemetry puts no objects in arrays and no '.' or ':' in keys).
 */
static int cmd_blocklist(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static struct mry_blocklist_entry e[BL_SHOW];
	struct rte_tel_data *pfx_a, *exp_a, *left_a;
	uint64_t now = app_now_ns();
	size_t total, n, i;

	(void)cmd;
	(void)params;
	n = app_blocklist_list(e, BL_SHOW, &total);
	rte_tel_data_start_dict(d);
	D_U64(d, "entries", total);
	D_U64(d, "shown", n);
	rte_tel_data_add_dict_string(d, "file", g_app.opt.blocklist_path);
	pfx_a = rte_tel_data_alloc();
	exp_a = rte_tel_data_alloc();
	left_a = rte_tel_data_alloc();
	if (pfx_a == NULL || exp_a == NULL || left_a == NULL) {
		rte_tel_data_free(pfx_a);
		rte_tel_data_free(exp_a);
		rte_tel_data_free(left_a);
		return 0;
	}
	rte_tel_data_start_array(pfx_a, RTE_TEL_STRING_VAL);
	rte_tel_data_start_array(exp_a, RTE_TEL_STRING_VAL);
	rte_tel_data_start_array(left_a, RTE_TEL_U64_VAL);
	for (i = 0; i < n; i++) {
		char pfx[64], ts[64] = "never";
		uint64_t left = 0;

		mry_blocklist_format_entry(&e[i], pfx, sizeof(pfx));
		if (e[i].expires_ns != 0) {
			time_t t = (time_t)(e[i].expires_ns / MRY_NS_PER_SEC);
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
			left = e[i].expires_ns > now ?
				(e[i].expires_ns - now + MRY_NS_PER_SEC - 1) / MRY_NS_PER_SEC : 0;
		}
		rte_tel_data_add_array_string(pfx_a, pfx);
		rte_tel_data_add_array_string(exp_a, ts);
		rte_tel_data_add_array_u64(left_a, left);
	}
	rte_tel_data_add_dict_container(d, "prefixes", pfx_a, 0);
	rte_tel_data_add_dict_container(d, "expires", exp_a, 0);
	rte_tel_data_add_dict_container(d, "expires_in_s", left_a, 0);
	return 0;
}

int app_telemetry_register(void)
{
	int rc = 0;

	rc |= rte_telemetry_register_cmd("/moray/stats", cmd_stats,
		"Global moray statistics: packets, messages by verdict, drops. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/workers", cmd_workers,
		"Per-worker statistics, rings and pools. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/ports", cmd_ports,
		"Per-port packets, bytes, drops. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/db", cmd_db,
		"Signature database: state, generation, reason. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/hold", cmd_hold,
		"Hold ring: held messages, bytes, oldest age. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/counters", cmd_counters,
		"Every counter by group, as moray-scan --stats-json writes them. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/alarm", cmd_alarm,
		"Alarm flag and reason. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/flows", cmd_flows,
		"Open flows by phase per worker and total, pool use, emergency state. "
		"No parameters");
	rc |= rte_telemetry_register_cmd("/moray/top_talkers", cmd_top_talkers,
		"Top sources by open flows, DATA flows, bytes (last second). "
		"Parameters: N (default 10, max 32)");
	rc |= rte_telemetry_register_cmd("/moray/block", cmd_block,
		"Block a source prefix (new connections refused, open ones shed). "
		"Parameters: prefix[,seconds]");
	rc |= rte_telemetry_register_cmd("/moray/unblock", cmd_unblock,
		"Remove a prefix from the blocklist. Parameters: prefix");
	rc |= rte_telemetry_register_cmd("/moray/blocklist", cmd_blocklist,
		"Blocked prefixes with their expiry. No parameters");
	return rc == 0 ? 0 : -EINVAL;
}
