/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A worker lcore: run to completion. Frames come from its rings (software
 * dispatch) or its own rx queue on every port (RSS); each goes through
 * mry_engine_packet() and is then forwarded out the paired port or freed.
 * Frames the engine emits (injected replies, resets, released
 * end-of-message segments) are copied into fresh mbufs from the worker's
 * pool. Output goes through rte_eth_tx_buffer, flushed on a TSC timer, or
 * back to the rx lcore that owns the output port. No locks, no allocation
 * beyond mbufs, no logging: everything is a counter in the worker's stats,
 * published to the control thread through a seqlock snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "app.h"

#define TX_DRAIN_US 100
#define TICK_US 1000
#define SNAPSHOT_US 50000
#define TOP_US 1000000
#define IDLE_YIELD_POLLS 1024

static void *eal_alloc(void *ctx, size_t size, size_t align)
{
	int socket = (int)(intptr_t)ctx;

	return rte_zmalloc_socket("moray_engine", size, (unsigned)align, socket);
}

static void eal_free(void *ctx, void *p)
{
	(void)ctx;
	rte_free(p);
}

static unsigned lat_bucket(uint64_t ns)
{
	unsigned e;

	if (ns < 8)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns);
	return (e - 2u) * 8u + (unsigned)((ns >> (e - 3u)) & 7u);
}

/* the largest value a bucket holds */
static uint64_t lat_bucket_max(unsigned b)
{
	unsigned e = b / 8u + 2u;

	if (b < 8)
		return b;
	return ((uint64_t)(8u + b % 8u + 1u) << (e - 3u)) - 1u;
}

/* the pending message ends left the worker at @tsc */
static void lat_settle(struct app_worker *w, uint64_t tsc)
{
	struct app_lat *l = &w->lat;
	const uint64_t hz = rte_get_tsc_hz();

	for (uint32_t i = 0; i < l->nb_pending; i++) {
		uint64_t ns = (tsc - l->pending[i]) * 1000000000ull / hz;

		l->hist[lat_bucket(ns)]++;
		l->n++;
		if (ns > l->max_ns)
			l->max_ns = ns;
	}
	l->nb_pending = 0;
}

void app_worker_print_latency(const struct app_worker *w, FILE *out)
{
	const struct app_lat *l = &w->lat;
	uint64_t p[2] = { 0, 0 }, acc = 0;
	const double q[2] = { 0.50, 0.99 };
	unsigned b, k = 0;

	for (b = 0; b < APP_LAT_BUCKETS && k < 2; b++) {
		acc += l->hist[b];
		while (k < 2 && l->n != 0 && (double)acc >= q[k] * (double)l->n)
			p[k++] = lat_bucket_max(b);
	}
	fprintf(out, "moray: worker %u message-end latency (last frame rx burst -> tx): %" PRIu64
		" messages, p50 %.1f us, p99 %.1f us, max %.1f us; longest poll gap %.1f us\n",
		w->id, l->n, (double)p[0] / 1e3, (double)p[1] / 1e3, (double)l->max_ns / 1e3,
		(double)l->max_gap_ns / 1e3);
}

/*
 * Hands pending frames back to rx lcore @r. A full return ring is
 * backpressure, not loss: the rx lcore drains it on every loop until every
 * worker is done (it never waits on a worker), so wait for room.
 */
static inline void flush_ret(struct app_worker *w, unsigned r)
{
	uint32_t n = w->nb_ret_pending[r], sent = 0;

	if (n == 0)
		return;
	for (;;) {
		sent += rte_ring_enqueue_burst(w->ret[r], (void **)&w->ret_pending[r][sent],
					       n - sent, NULL);
		if (sent == n)
			break;
		w->st.ret_full_waits++;
		sched_yield();
	}
	w->nb_ret_pending[r] = 0;
}

static inline void send_pkt(struct app_worker *w, struct rte_mbuf *m, uint16_t port)
{
	struct app *a = &g_app;

	w->st.tx_pkts++;
	if (a->tx_via_rx) {
		unsigned r = (unsigned)a->port_owner[port];

		m->port = port;
		w->ret_pending[r][w->nb_ret_pending[r]++] = m;
		if (w->nb_ret_pending[r] >= a->opt.burst)
			flush_ret(w, r);
		return;
	}
	rte_eth_tx_buffer(port, w->txq[port].queue, w->txq[port].buf, m);
}

static void flush_all(struct app_worker *w)
{
	struct app *a = &g_app;
	unsigned i;

	if (a->tx_via_rx) {
		for (i = 0; i < a->nb_rx; i++)
			flush_ret(w, i);
	} else {
		for (i = 0; i < a->nb_ports; i++) {
			uint16_t p = a->ports[i];

			rte_eth_tx_buffer_flush(p, w->txq[p].queue, w->txq[p].buf);
		}
	}
	if (w->lat.nb_pending != 0)
		lat_settle(w, rte_rdtsc());
}

/* nothing of this worker waits in a tx buffer or return ring batch */
static bool tx_empty(const struct app_worker *w)
{
	struct app *a = &g_app;
	unsigned i;

	if (a->tx_via_rx) {
		for (i = 0; i < a->nb_rx; i++)
			if (w->nb_ret_pending[i] != 0)
				return false;
		return true;
	}
	for (i = 0; i < a->nb_ports; i++)
		if (w->txq[a->ports[i]].buf->length != 0)
			return false;
	return true;
}

/* mry_engine_io.emit: copy into a new mbuf, out the port @dir names. */
static void on_emit(void *ctx, enum mry_emit_dir dir, uint16_t client_port,
		    const uint8_t *frame, uint32_t len)
{
	struct app_worker *w = ctx;
	struct app *a = &g_app;
	struct rte_mbuf *m;
	uint16_t port;
	char *dst;

	if (client_port >= RTE_MAX_ETHPORTS || a->port_owner[client_port] < 0) {
		w->st.emit_too_big++;
		return;
	}
	port = dir == MRY_EMIT_TO_CLIENT ? client_port : a->pair[client_port];
	m = rte_pktmbuf_alloc(w->pool);
	if (m == NULL) {
		w->st.emit_nombuf++;
		return;
	}
	dst = len <= rte_pktmbuf_tailroom(m) ? rte_pktmbuf_append(m, (uint16_t)len) : NULL;
	if (dst == NULL) {
		w->st.emit_too_big++;
		rte_pktmbuf_free(m);
		return;
	}
	memcpy(dst, frame, len);
	w->st.emitted++;
	send_pkt(w, m, port);
}

static void on_event(void *ctx, const char *json, size_t len)
{
	app_log_push(ctx, json, len);
}

static const struct mry_engine_io worker_io = {
	.emit = on_emit,
	.event = on_event,
};

static inline void process_burst(struct app_worker *w, struct rte_mbuf **pkts,
				 unsigned n, uint64_t now, uint64_t rx_tsc)
{
	struct app *a = &g_app;
	struct rte_mbuf *drop[APP_MAX_BURST];
	unsigned i, nd = 0;

	w->st.rx_pkts += n;
	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const uint8_t *data;
		uint32_t len;

		if (i + 1 < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
		if (mry_likely(m->nb_segs == 1)) {
			data = rte_pktmbuf_mtod(m, const uint8_t *);
			len = m->data_len;
		} else if (m->pkt_len <= APP_LINEAR_BUF) {
			len = m->pkt_len;
			data = rte_pktmbuf_read(m, 0, len, w->linear);
			w->st.multiseg_copied++;
		} else {
			w->st.oversize_dropped++;
			drop[nd++] = m;
			continue;
		}
		if (mry_engine_packet(w->engine, data, len, m->port, now) == MRY_PKT_FORWARD) {
			if (mry_engine_frame_ended_message(w->engine)) {
				if (w->lat.nb_pending == APP_LAT_PENDING)
					lat_settle(w, rte_rdtsc());
				w->lat.pending[w->lat.nb_pending++] = rx_tsc;
			}
			send_pkt(w, m, a->pair[m->port]);
		} else {
			drop[nd++] = m;
		}
	}
	if (nd != 0)
		rte_pktmbuf_free_bulk(drop, nd);
	/* a full tx buffer went out during the burst: the ends left with it */
	if (w->lat.nb_pending != 0 && tx_empty(w))
		lat_settle(w, rte_rdtsc());
}

static void publish(struct app_worker *w)
{
	struct app *a = &g_app;
	unsigned i;

	w->st.tx_dropped = 0;
	if (!a->tx_via_rx)
		for (i = 0; i < a->nb_ports; i++)
			w->st.tx_dropped += w->txq[a->ports[i]].dropped;
	__atomic_store_n(&w->snap.seq, w->snap.seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	w->snap.st = w->st;
	mry_engine_counters(w->engine, &w->snap.eng);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&w->snap.seq, w->snap.seq + 1, __ATOMIC_RELAXED);
}

void app_worker_snapshot_read(const struct app_worker *w, struct app_worker_stats *st,
			      struct mry_counters *eng)
{
	uint32_t s1, s2;

	do {
		s1 = __atomic_load_n(&w->snap.seq, __ATOMIC_ACQUIRE);
		if (s1 & 1) {
			rte_pause();
			continue;
		}
		memcpy(st, &w->snap.st, sizeof(*st));
		memcpy(eng, &w->snap.eng, sizeof(*eng));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&w->snap.seq, __ATOMIC_RELAXED);
		if (s1 == s2)
			return;
	} while (1);
}

/*
 * Top sources of this worker's flow table, into the buffer readers are not
 * reading (the flow table is the worker's own: nobody else may walk it).
 */
static void publish_top(struct app_worker *w, uint64_t now)
{
	uint32_t g = w->top_gen;
	struct app_top *t = &w->top[(g + 1) & 1];
	unsigned k;

	t->ns = now;
	for (k = 0; k < APP_TOP_KEYS; k++)
		t->nb[k] = mry_engine_top_sources(w->engine, (enum mry_flow_top_key)k,
						  APP_TOP_MAX, t->src[k]);
	__atomic_store_n(&w->top_gen, g + 1, __ATOMIC_RELEASE);
}

/*
 * The buffer of generation g is rewritten only while the worker prepares
 * generation g + 2, i.e. after it has published g + 1: a copy is whole
 * when the generation has not moved meanwhile.
 */
bool app_worker_top_read(const struct app_worker *w, struct app_top *out)
{
	uint32_t g;

	do {
		g = __atomic_load_n(&w->top_gen, __ATOMIC_ACQUIRE);
		if (g == 0)
			return false;
		memcpy(out, &w->top[g & 1], sizeof(*out));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	} while (__atomic_load_n(&w->top_gen, __ATOMIC_RELAXED) != g);
	return true;
}

/*
 * Installs the control side's current blocklist in the engine. Called just
 * before the quiescent report; blocklist.c frees a replaced list only after
 * two grace periods, so the engine never holds a freed one.
 */
static inline void install_blocklist(struct app_worker *w)
{
	const struct mry_blocklist *bl = __atomic_load_n(&g_app.blocklist, __ATOMIC_ACQUIRE);

	if (mry_unlikely(bl != w->bl)) {
		mry_engine_set_blocklist(w->engine, bl);
		w->bl = bl;
	}
}

/*
 * Allocates the worker contexts, their tx buffers and log rings; the
 * engines are created on the worker lcores themselves (per-thread state).
 */
int app_worker_setup(struct app *a, char *err, size_t errlen)
{
	unsigned i, p;

	for (i = 0; i < a->nb_workers; i++) {
		struct app_worker *w = a->workers[i];

		w->log = app_log_ring_create(i, w->socket);
		if (w->log == NULL) {
			snprintf(err, errlen, "worker %u: cannot create its log ring: %s", i,
				 rte_strerror(rte_errno));
			return -ENOMEM;
		}
		if (a->tx_via_rx)
			continue;
		for (p = 0; p < a->nb_ports; p++) {
			uint16_t port = a->ports[p];

			if (app_txq_init(&w->txq[port], (uint16_t)i, a->opt.burst,
					 w->socket) != 0) {
				snprintf(err, errlen, "worker %u: no memory for tx buffers", i);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static bool rings_empty(const struct app *a, const struct app_worker *w)
{
	unsigned r;

	for (r = 0; r < a->nb_rx; r++)
		if (!rte_ring_empty(w->in[r]))
			return false;
	return true;
}

static bool all_rx_stopped(const struct app *a)
{
	unsigned r;

	for (r = 0; r < a->nb_rx; r++)
		if (!__atomic_load_n(&a->rx[r]->stopped, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

int app_worker_main(void *arg)
{
	struct app_worker *w = arg;
	struct app *a = &g_app;
	const uint64_t us = (rte_get_tsc_hz() + 999999) / 1000000;
	const uint32_t burst = a->opt.burst;
	struct rte_mbuf *pkts[APP_MAX_BURST];
	uint64_t last_drain, last_tick, last_snap, last_poll, last_top, now, gap = 0;
	struct mry_alloc alloc = {
		.alloc = eal_alloc, .free = eal_free,
		.ctx = (void *)(intptr_t)w->socket, .socket = w->socket,
	};
	unsigned idle = 0, r, p;

	w->engine = mry_engine_create(&alloc, &a->ecfg, a->ctl, &worker_io, w);
	if (w->engine == NULL) {
		__atomic_store_n(&w->ready, -1, __ATOMIC_RELEASE);
		return -ENOMEM;
	}
	rte_rcu_qsbr_thread_register(a->qsv, w->id);
	rte_rcu_qsbr_thread_online(a->qsv, w->id);
	install_blocklist(w);
	publish(w);
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&a->phase, __ATOMIC_ACQUIRE) == APP_PHASE_INIT)
		rte_pause();

	last_drain = last_tick = last_snap = last_poll = last_top = rte_rdtsc();
	while (__atomic_load_n(&a->phase, __ATOMIC_ACQUIRE) < APP_PHASE_SHUTDOWN) {
		unsigned got = 0;
		uint64_t tsc, rx_tsc;

		now = app_now_ns();
		rx_tsc = rte_rdtsc();
		if (rx_tsc - last_poll > gap)
			gap = rx_tsc - last_poll;
		last_poll = rx_tsc;
		if (a->dispatch == APP_DISPATCH_SW) {
			for (r = 0; r < a->nb_rx; r++) {
				unsigned n = rte_ring_dequeue_burst(w->in[r], (void **)pkts,
								    burst, NULL);

				if (n != 0) {
					process_burst(w, pkts, n, now, rx_tsc);
					got += n;
				}
			}
		} else if (a->phase == APP_PHASE_RUN) {
			for (p = 0; p < a->nb_ports; p++) {
				uint16_t n = rte_eth_rx_burst(a->ports[p], (uint16_t)w->id,
							      pkts, (uint16_t)burst);

				if (n != 0) {
					process_burst(w, pkts, n, now, rx_tsc);
					got += n;
				}
			}
		}
		w->st.polls++;
		if (got != 0) {
			w->st.busy_polls++;
			idle = 0;
		} else if (a->phase == APP_PHASE_STOP_RX && !w->drained &&
			   (a->dispatch != APP_DISPATCH_SW ||
			    (all_rx_stopped(a) && rings_empty(a, w)))) {
			__atomic_store_n(&w->drained, true, __ATOMIC_RELEASE);
		} else if (++idle >= IDLE_YIELD_POLLS) {
			/* Idle: let oversubscribed lcores run (returns at once on a
			 * dedicated core). */
			idle = 0;
			sched_yield();
		}
		tsc = rte_rdtsc();
		if (tsc - last_drain > TX_DRAIN_US * us) {
			flush_all(w);
			last_drain = tsc;
		}
		if (tsc - last_tick > TICK_US * us) {
			mry_engine_tick(w->engine, app_now_ns());
			flush_all(w);
			last_tick = tsc;
		}
		if (tsc - last_snap > SNAPSHOT_US * us) {
			publish(w);
			last_snap = tsc;
		}
		if (tsc - last_top > TOP_US * us) {
			publish_top(w, app_now_ns());
			last_top = tsc;
		}
		install_blocklist(w);
		rte_rcu_qsbr_quiescent(a->qsv, w->id);
	}
	/* Shutdown: answer every unfinished message (451), flush, report. */
	mry_engine_shutdown(w->engine, app_now_ns());
	flush_all(w);
	w->lat.max_gap_ns = gap * 1000000000ull / rte_get_tsc_hz();
	publish(w);
	rte_rcu_qsbr_thread_offline(a->qsv, w->id);
	rte_rcu_qsbr_thread_unregister(a->qsv, w->id);
	__atomic_store_n(&w->done, true, __ATOMIC_RELEASE);
	return 0;
}
