/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * /moray/... telemetry commands (dpdk-telemetry.py -f <file-prefix>). They
 * run on DPDK's telemetry thread and only read published copies: each
 * worker's seqlock snapshot, the rx lcores' single-writer counters, and the
 * main lcore's control snapshot. Nothing here touches a worker's engine.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "app.h"

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
	return rc == 0 ? 0 : -EINVAL;
}
