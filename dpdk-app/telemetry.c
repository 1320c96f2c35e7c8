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

static void add_engine(struct rte_tel_data *d, const struct mry_engine_stats *e)
{
	D_U64(d, "pkts", e->pkts);
	D_U64(d, "bytes", e->bytes);
	D_U64(d, "pkts_non_smtp", e->pkts_non_smtp);
	D_U64(d, "pkts_forwarded", e->pkts_forwarded);
	D_U64(d, "pkts_dropped", e->pkts_dropped);
	D_U64(d, "drop_invalid", e->drop_invalid);
	D_U64(d, "drop_withheld", e->drop_withheld);
	D_U64(d, "drop_conflict", e->drop_conflict);
	D_U64(d, "drop_ooo", e->drop_ooo);
	D_U64(d, "drop_after_verdict", e->drop_after_verdict);
	D_U64(d, "drop_no_flow", e->drop_no_flow);
	D_U64(d, "drop_midstream_data", e->drop_midstream_data);
	D_U64(d, "msgs", e->msgs);
	D_U64(d, "msgs_clean", e->msgs_clean);
	D_U64(d, "msgs_infected", e->msgs_infected);
	D_U64(d, "msgs_tempfail", e->msgs_tempfail);
	D_U64(d, "msgs_encrypted", e->msgs_encrypted);
	D_U64(d, "msgs_unscanned", e->msgs_unscanned);
	D_U64(d, "msgs_held", e->msgs_held);
	D_U64(d, "msgs_released", e->msgs_released);
	D_U64(d, "hold_timeouts", e->hold_timeouts);
	D_U64(d, "hold_store_full", e->hold_store_full);
	D_U64(d, "replies_injected", e->replies_injected);
	D_U64(d, "resets_injected", e->resets_injected);
	D_U64(d, "events", e->events);
	D_U64(d, "evasions", e->evasions);
	D_U64(d, "msgs_aborted", e->msgs_aborted);
	D_U64(d, "midstream_resets", e->midstream_resets);
	D_U64(d, "encrypted_blocked", e->encrypted_blocked);
	D_U64(d, "session_pool_empty", e->session_pool_empty);
	D_U64(d, "msg_pool_empty", e->msg_pool_empty);
	D_U64(d, "events_dropped", e->events_dropped);
}

static void add_app(struct rte_tel_data *d, const struct app_worker_stats *w)
{
	D_U64(d, "app_rx_pkts", w->rx_pkts);
	D_U64(d, "app_tx_pkts", w->tx_pkts);
	D_U64(d, "app_tx_dropped", w->tx_dropped);
	D_U64(d, "app_multiseg_copied", w->multiseg_copied);
	D_U64(d, "app_oversize_dropped", w->oversize_dropped);
	D_U64(d, "app_emitted", w->emitted);
	D_U64(d, "app_emit_nombuf", w->emit_nombuf);
	D_U64(d, "app_emit_too_big", w->emit_too_big);
	D_U64(d, "log_events", w->log_events);
	D_U64(d, "log_ring_full", w->log_ring_full);
	D_U64(d, "log_too_long", w->log_too_long);
}

static int cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app *a = &g_app;
	struct app_worker_stats *t = malloc(sizeof(*t));
	uint64_t ring_full = 0, rx = 0;
	unsigned i;

	(void)cmd;
	(void)params;
	if (t == NULL)
		return -ENOMEM;
	app_control_sum(a, t);
	for (i = 0; i < a->nb_rx; i++) {
		ring_full += a->rx[i]->st.ring_full;
		rx += a->rx[i]->st.rx_pkts;
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "version", MORAY_VERSION);
	rte_tel_data_add_dict_string(d, "dispatch", dispatch_name(a));
	D_U64(d, "workers", a->nb_workers);
	D_U64(d, "rx_lcores", a->nb_rx);
	D_U64(d, "uptime_s", (app_now_ns() - a->start_ns) / MRY_NS_PER_SEC);
	D_U64(d, "rx_lcore_pkts", rx);
	D_U64(d, "dispatch_ring_full", ring_full);
	add_engine(d, &t->eng);
	add_app(d, t);
	D_U64(d, "log_written", a->log_written);
	D_U64(d, "log_write_errors", a->log_write_errors);
	free(t);
	return 0;
}

static int cmd_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app *a = &g_app;
	struct app_worker_stats *w = malloc(sizeof(*w));
	unsigned i;

	(void)cmd;
	(void)params;
	if (w == NULL)
		return -ENOMEM;
	rte_tel_data_start_dict(d);
	for (i = 0; i < a->nb_workers; i++) {
		struct rte_tel_data *c = rte_tel_data_alloc();
		char key[16];

		if (c == NULL)
			break;
		app_worker_snapshot_read(a->workers[i], w);
		rte_tel_data_start_dict(c);
		D_U64(c, "lcore", a->workers[i]->lcore);
		D_U64(c, "socket", (uint64_t)a->workers[i]->socket);
		add_engine(c, &w->eng);
		add_app(c, w);
		D_U64(c, "polls", w->polls);
		D_U64(c, "busy_polls", w->busy_polls);
		D_U64(c, "hold_msgs", w->eng.hold_msgs);
		D_U64(c, "hold_bytes", w->eng.hold_bytes);
		D_U64(c, "log_ring_used", rte_ring_count(a->workers[i]->log));
		if (a->dispatch == APP_DISPATCH_SW) {
			uint64_t used = 0;
			unsigned r;

			for (r = 0; r < a->nb_rx; r++)
				used += rte_ring_count(a->workers[i]->in[r]);
			D_U64(c, "in_ring_used", used);
		}
		D_U64(c, "mbuf_pool_avail", rte_mempool_avail_count(a->workers[i]->pool));
		snprintf(key, sizeof(key), "%u", i);
		rte_tel_data_add_dict_container(d, key, c, 0);
	}
	free(w);
	return 0;
}

static int cmd_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app *a = &g_app;
	unsigned i;

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	for (i = 0; i < a->nb_ports; i++) {
		struct rte_tel_data *c = rte_tel_data_alloc();
		struct rte_eth_stats es;
		uint16_t p = a->ports[i];
		char key[16];

		if (c == NULL)
			break;
		rte_tel_data_start_dict(c);
		D_U64(c, "pair", a->pair[p]);
		if (rte_eth_stats_get(p, &es) == 0) {
			D_U64(c, "ipackets", es.ipackets);
			D_U64(c, "opackets", es.opackets);
			D_U64(c, "ibytes", es.ibytes);
			D_U64(c, "obytes", es.obytes);
			D_U64(c, "imissed", es.imissed);
			D_U64(c, "ierrors", es.ierrors);
			D_U64(c, "oerrors", es.oerrors);
			D_U64(c, "rx_nombuf", es.rx_nombuf);
		}
		if (a->dispatch == APP_DISPATCH_SW && a->port_owner[p] >= 0) {
			struct app_rx_lcore *rx = a->rx[a->port_owner[p]];

			D_U64(c, "rx_lcore", rx->lcore);
			D_U64(c, "tx_dropped", rx->txq[p].dropped);
		}
		snprintf(key, sizeof(key), "%u", p);
		rte_tel_data_add_dict_container(d, key, c, 0);
	}
	return 0;
}

static int cmd_db(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app_ctl_snapshot s;

	(void)cmd;
	(void)params;
	app_control_snapshot_read(&g_app, &s);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "state", s.db_valid ? "valid" : "invalid");
	rte_tel_data_add_dict_string(d, "reason", s.db_reason);
	rte_tel_data_add_dict_string(d, "policy",
				     g_app.opt.db_policy == MRY_DB_POLICY_HOLD ? "hold" : "last-good");
	rte_tel_data_add_dict_string(d, "path", g_app.opt.db_path);
	D_U64(d, "generation", s.db_generation);
	D_U64(d, "created", s.db_created);
	D_U64(d, "signatures", s.db_nb_sigs);
	D_U64(d, "scanning", s.db_usable);
	D_U64(d, "changes", s.db_changes);
	D_U64(d, "offers", s.db_offers);
	D_U64(d, "rejected", s.db_rejected);
	D_U64(d, "reclaimed", s.db_reclaimed);
	return 0;
}

static int cmd_hold(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app_worker_stats *t = malloc(sizeof(*t));
	uint64_t now = app_now_ns();

	(void)cmd;
	(void)params;
	if (t == NULL)
		return -ENOMEM;
	app_control_sum(&g_app, t);
	rte_tel_data_start_dict(d);
	D_U64(d, "held_msgs", t->eng.hold_msgs);
	D_U64(d, "held_bytes", t->eng.hold_bytes);
	D_U64(d, "oldest_age_ms", t->eng.hold_oldest_ns != 0 && now > t->eng.hold_oldest_ns ?
	      (now - t->eng.hold_oldest_ns) / MRY_NS_PER_MS : 0);
	D_U64(d, "msgs_held", t->eng.msgs_held);
	D_U64(d, "msgs_released", t->eng.msgs_released);
	D_U64(d, "hold_timeouts", t->eng.hold_timeouts);
	D_U64(d, "hold_store_full", t->eng.hold_store_full);
	D_U64(d, "hold_store_bytes_total", g_app.opt.hold_store_bytes);
	D_U64(d, "hold_timeout_s", g_app.opt.hold_timeout_s);
	free(t);
	return 0;
}

static int cmd_counters(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct app_worker_stats *t = malloc(sizeof(*t));
	unsigned i;

	(void)cmd;
	(void)params;
	if (t == NULL)
		return -ENOMEM;
	app_control_sum(&g_app, t);
	/* {"module": {"name": value, ...}, ...} */
	rte_tel_data_start_dict(d);
	for (i = 0; i < t->nb_counters; i++) {
		struct rte_tel_data *c;
		unsigned j;
		bool first = true;

		for (j = 0; j < i; j++)
			if (strcmp(t->counters[j].module, t->counters[i].module) == 0)
				first = false;
		if (!first)
			continue;
		c = rte_tel_data_alloc();
		if (c == NULL)
			break;
		rte_tel_data_start_dict(c);
		for (j = i; j < t->nb_counters; j++)
			if (strcmp(t->counters[j].module, t->counters[i].module) == 0)
				D_U64(c, t->counters[j].name, t->counters[j].value);
		rte_tel_data_add_dict_container(d, t->counters[i].module, c, 0);
	}
	free(t);
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
		"Engine anomaly and limit counters by name. No parameters");
	rc |= rte_telemetry_register_cmd("/moray/alarm", cmd_alarm,
		"Alarm flag and reason. No parameters");
	return rc == 0 ? 0 : -EINVAL;
}
