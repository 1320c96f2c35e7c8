/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The app's view of the counter table (moray/counters.h): every row, engine
 * and app alike, as offsets into struct app_counters (per-port rows into
 * struct rte_eth_stats), and the snapshots the rows are read from: summed
 * over workers and rx lcores, or one worker's. Telemetry, the stats line
 * and the Prometheus file are all written from this one table. Runs on the
 * main lcore or the telemetry thread, never on a worker.
 */
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_ring.h>

#include "app.h"

#define ROW_(src, snap, prefix, group, name, kind, line, field, help) \
	MRY_COUNTER_DEF_(src, snap, group, name, kind, line, prefix field, help)
#define ROW_ENG(...) ROW_(APP_SRC_ENG, struct app_counters, eng., __VA_ARGS__)
#define ROW_APPW(...) ROW_(APP_SRC_APPW, struct app_counters, , __VA_ARGS__)
#define ROW_RX(...) ROW_(APP_SRC_RX, struct app_counters, , __VA_ARGS__)
#define ROW_CTL(...) ROW_(APP_SRC_CTL, struct app_counters, , __VA_ARGS__)
#define ROW_RING(...) ROW_(APP_SRC_RING, struct app_counters, , __VA_ARGS__)
#define ROW_PORT(...) ROW_(APP_SRC_PORT, struct app_port_counters, , __VA_ARGS__)
#define ROWA_ENG(group, nb, fn, kind, field, help) \
	MRY_COUNTER_DEFA_(APP_SRC_ENG, struct app_counters, group, nb, fn, kind, eng.field, help)
#define APP_X(src, ...) ROW_##src(__VA_ARGS__)
#define APP_XA(src, ...) ROWA_##src(__VA_ARGS__)

static const struct mry_counter_def app_table[] = {
	MRY_COUNTERS(APP_X, APP_XA)
};

const struct mry_counter_def *app_counters_table(size_t *nb)
{
	*nb = sizeof(app_table) / sizeof(app_table[0]);
	return app_table;
}

/* Adds the rows of sources @mask (bits of enum app_counter_src) of @in to @sum. */
static void add_rows(struct app_counters *sum, const struct app_counters *in, unsigned mask)
{
	size_t i;
	unsigned j;

	for (i = 0; i < sizeof(app_table) / sizeof(app_table[0]); i++) {
		const struct mry_counter_def *d = &app_table[i];

		if ((mask & (1u << d->src)) == 0 || d->src == APP_SRC_ENG)
			continue;
		for (j = 0; j < d->nb; j++) {
			uint64_t a, b;
			size_t off = d->off + j * sizeof(uint64_t);

			memcpy(&a, (char *)sum + off, sizeof(a));
			memcpy(&b, (const char *)in + off, sizeof(b));
			a += b;
			memcpy((char *)sum + off, &a, sizeof(a));
		}
	}
	if ((mask & (1u << APP_SRC_ENG)) != 0)
		mry_counters_add(&sum->eng, &in->eng);
}

void app_counters_worker(struct app *a, unsigned i, struct app_counters *out)
{
	struct app_worker *w = a->workers[i];
	unsigned r;

	memset(out, 0, sizeof(*out));
	app_worker_snapshot_read(w, &out->w, &out->eng);
	out->ring.log_used = rte_ring_count(w->log);
	if (a->dispatch == APP_DISPATCH_SW)
		for (r = 0; r < a->nb_rx; r++)
			out->ring.in_used += rte_ring_count(w->in[r]);
	out->ring.mbuf_avail = rte_mempool_avail_count(w->pool);
}

void app_counters_total(struct app *a, struct app_counters *t)
{
	static struct app_counters one;   /* large: not on the telemetry thread's stack */
	struct app_ctl_snapshot s;
	unsigned i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < a->nb_workers; i++) {
		app_counters_worker(a, i, &one);
		add_rows(t, &one, (1u << APP_SRC_ENG) | (1u << APP_SRC_APPW) | (1u << APP_SRC_RING));
	}
	memset(&one, 0, sizeof(one));
	for (i = 0; i < a->nb_rx; i++) {
		one.rx = a->rx[i]->st;
		add_rows(t, &one, 1u << APP_SRC_RX);
	}
	app_control_snapshot_read(a, &s);
	t->db.generation = s.db_generation;
	t->db.created = s.db_created;
	t->db.signatures = s.db_nb_sigs;
	t->db.valid = s.db_valid;
	t->db.scanning = s.db_usable;
	t->db.changes = s.db_changes;
	t->db.offers = s.db_offers;
	t->db.rejected = s.db_rejected;
	t->db.reclaimed = s.db_reclaimed;
	t->alarm = s.alarm;
	t->log_written = a->log_written;
	t->log_write_errors = a->log_write_errors;
	t->blocklist_refused = app_blocklist_refused();
}

unsigned app_counters_ports(struct app *a, struct app_port_counters *es, uint16_t *ids)
{
	unsigned i, n = 0;

	for (i = 0; i < a->nb_ports; i++) {
		uint16_t p = a->ports[i];

		memset(&es[n], 0, sizeof(es[n]));
		if (rte_eth_stats_get(p, &es[n].eth) != 0)
			continue;
		if (a->dispatch == APP_DISPATCH_SW && a->port_owner[p] >= 0)
			es[n].sw_tx_dropped = a->rx[a->port_owner[p]]->txq[p].dropped;
		ids[n++] = p;
	}
	return n;
}

void app_counters_srcs(struct mry_counter_src srcs[APP_SRC_MAX], const struct app_counters *t,
		       unsigned mask, const struct app_port_counters *es, const uint16_t *ids,
		       unsigned nb_ports)
{
	unsigned i;

	for (i = 0; i < APP_SRC_MAX; i++)
		srcs[i] = (struct mry_counter_src){
			.base = t, .stride = sizeof(*t), .nb = (mask & (1u << i)) != 0 ? 1 : 0,
		};
	srcs[APP_SRC_PORT] = (struct mry_counter_src){
		.base = es, .stride = sizeof(*es),
		.nb = (mask & (1u << APP_SRC_PORT)) != 0 ? nb_ports : 0,
		.label = "port", .ids = ids,
	};
}

int app_counters_write_metrics(struct app *a)
{
	static struct app_counters t;
	static struct app_port_counters es[APP_MAX_PORTS];
	static uint16_t ids[APP_MAX_PORTS];
	struct mry_counter_src srcs[APP_SRC_MAX];
	unsigned nb_ports;
	size_t nb;
	const struct mry_counter_def *defs = app_counters_table(&nb);

	if (a->opt.metrics_path[0] == '\0')
		return 0;
	app_counters_total(a, &t);
	nb_ports = app_counters_ports(a, es, ids);
	app_counters_srcs(srcs, &t, APP_COUNTERS_ALL, es, ids, nb_ports);
	return mry_counters_write_prom_file(a->opt.metrics_path, defs, nb, srcs, APP_SRC_MAX);
}
