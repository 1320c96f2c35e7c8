/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software dispatch, for ports without RSS (virtual devices). An rx lcore
 * polls its ports, hashes each frame's IP address pair symmetrically (ports
 * excluded: fragments and every connection of a source land on one worker,
 * so per-source limits are exact) and hands it to that worker over a
 * single-producer/single-consumer rte_ring. Backpressure: an rx burst takes
 * at most as many frames as the fullest of its worker rings can still hold
 * (rte_ring_free_count), so the rest stay in the port's rx queue, where the
 * device counts what it cannot keep (imissed); the rx lcore never waits on a
 * worker and never drops a frame it has taken (a failed enqueue, which the
 * bound rules out, would be counted in dispatch ring_full). When the ports have fewer
 * tx queues than there are workers (net_pcap has one), workers hand frames
 * back over a second SP/SC ring and the rx lcore that owns the output port
 * transmits them: each tx queue keeps a single writer without locks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "app.h"

#define TX_DRAIN_US 100

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/*
 * XOR of source and destination is symmetric (a^b == b^a), then a multiply
 * spreads the bits. Non-IP frames (ARP, LLDP ...) hash to 0: worker 0.
 */
uint32_t app_ring_ip_pair_hash(const uint8_t *frame, uint32_t len)
{
	uint32_t off = 12, h;
	uint16_t et;

	if (len < 14)
		return 0;
	et = (uint16_t)(frame[off] << 8 | frame[off + 1]);
	while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 6 <= len) {
		off += 4;
		et = (uint16_t)(frame[off] << 8 | frame[off + 1]);
	}
	off += 2;
	if (et == 0x0800) {
		if (len < off + 20)
			return 0;
		h = rd32(frame + off + 12) ^ rd32(frame + off + 16);
	} else if (et == 0x86dd) {
		unsigned i;

		if (len < off + 40)
			return 0;
		h = 0;
		for (i = 0; i < 32; i += 4)
			h ^= rd32(frame + off + 8 + i);
	} else {
		return 0;
	}
	h ^= h >> 16;
	h *= 0x7feb352dU;
	h ^= h >> 15;
	h *= 0x846ca68bU;
	h ^= h >> 16;
	return h | 1; /* never 0: 0 means "not IP" */
}

/*
 * Frames the rx lcore may take in one burst: the least free space of the
 * rings it may enqueue into (any frame may hash to any worker), capped at
 * @burst. This lcore is each ring's only producer, so the space cannot
 * shrink before the enqueue.
 */
static inline uint32_t rx_budget(const struct app *a, const struct app_rx_lcore *rx,
				 uint32_t burst)
{
	uint32_t w, room = burst;

	for (w = 0; w < a->nb_workers && room != 0; w++) {
		uint32_t f = rte_ring_free_count(a->workers[w]->in[rx->id]);

		if (f < room)
			room = f;
	}
	return room;
}

static inline unsigned pick_worker(uint32_t h, uint32_t nb)
{
	if (h == 0)
		return 0;
	return (unsigned)(((uint64_t)h * nb) >> 32);
}

int app_ring_setup(struct app *a, char *err, size_t errlen)
{
	unsigned r, w;

	for (r = 0; r < a->nb_rx; r++) {
		for (w = 0; w < a->nb_workers; w++) {
			struct app_worker *wk = a->workers[w];
			char name[RTE_RING_NAMESIZE];

			snprintf(name, sizeof(name), "mry_in_%u_%u", r, w);
			wk->in[r] = rte_ring_create(name, a->opt.ring_size, wk->socket,
						    RING_F_SP_ENQ | RING_F_SC_DEQ);
			if (wk->in[r] == NULL)
				goto fail;
			if (!a->tx_via_rx)
				continue;
			snprintf(name, sizeof(name), "mry_ret_%u_%u", w, r);
			wk->ret[r] = rte_ring_create(name, a->opt.ring_size, wk->socket,
						     RING_F_SP_ENQ | RING_F_SC_DEQ);
			if (wk->ret[r] == NULL)
				goto fail;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot create a %u-entry ring: %s", a->opt.ring_size,
		 rte_strerror(rte_errno));
	return -ENOMEM;
}

static void tx_count_cb(struct rte_mbuf **pkts, uint16_t unsent, void *userdata)
{
	uint64_t *cnt = userdata;

	rte_pktmbuf_free_bulk(pkts, unsent);
	*cnt += unsent;
}

/* A tx buffer whose failures are counted (default: silently freed). */
int app_txq_init(struct app_txq *t, uint16_t queue, uint32_t burst, int socket)
{
	t->buf = rte_zmalloc_socket("mry_txbuf", RTE_ETH_TX_BUFFER_SIZE(burst), 0, socket);
	if (t->buf == NULL)
		return -ENOMEM;
	rte_eth_tx_buffer_init(t->buf, (uint16_t)burst);
	rte_eth_tx_buffer_set_err_callback(t->buf, tx_count_cb, &t->dropped);
	t->queue = queue;
	return 0;
}

static unsigned drain_returns(struct app *a, struct app_rx_lcore *rx, uint32_t burst)
{
	struct rte_mbuf *pkts[APP_MAX_BURST];
	unsigned w, i, n, total = 0;

	for (w = 0; w < a->nb_workers; w++) {
		struct rte_ring *r = a->workers[w]->ret[rx->id];

		n = rte_ring_dequeue_burst(r, (void **)pkts, burst, NULL);
		for (i = 0; i < n; i++) {
			uint16_t port = pkts[i]->port;

			rte_eth_tx_buffer(port, 0, rx->txq[port].buf, pkts[i]);
		}
		rx->st.tx_pkts += n;
		total += n;
	}
	return total;
}

/* The rx lcore: poll ports, hash, enqueue; transmit what workers return. */
int app_rx_main(void *arg)
{
	struct app_rx_lcore *rx = arg;
	struct app *a = &g_app;
	const uint32_t burst = a->opt.burst, nbw = a->nb_workers;
	const uint64_t drain_tsc = (rte_get_tsc_hz() + 1000000 - 1) / 1000000 * TX_DRAIN_US;
	struct rte_mbuf *pkts[APP_MAX_BURST];
	struct rte_mbuf *out[APP_MAX_WORKERS][APP_MAX_BURST];
	uint32_t nb_out[APP_MAX_WORKERS];
	uint64_t prev_tsc = rte_rdtsc();
	unsigned pi, i, w, idle = 0;

	memset(nb_out, 0, sizeof(nb_out));
	while (__atomic_load_n(&a->phase, __ATOMIC_ACQUIRE) == APP_PHASE_INIT)
		rte_pause();
	while (__atomic_load_n(&a->phase, __ATOMIC_ACQUIRE) < APP_PHASE_EXIT) {
		if (__atomic_load_n(&a->phase, __ATOMIC_ACQUIRE) != APP_PHASE_RUN) {
			if (!rx->stopped)
				__atomic_store_n(&rx->stopped, true, __ATOMIC_RELEASE);
		} else {
			for (pi = 0; pi < rx->nb_ports; pi++) {
				uint32_t room = rx_budget(a, rx, burst);
				uint16_t n;

				if (room < burst)
					rx->st.rx_throttled++;
				if (room == 0) {
					/* Workers behind: frames wait in the rx queue. */
					if (++idle >= 4096) {
						idle = 0;
						sched_yield();
					}
					continue;
				}
				n = rte_eth_rx_burst(rx->ports[pi], 0, pkts, (uint16_t)room);
				if (n == 0) {
					/* Idle: let oversubscribed lcores run. */
					if (++idle >= 4096) {
						idle = 0;
						sched_yield();
					}
					continue;
				}
				idle = 0;
				rx->st.rx_pkts += n;
				for (i = 0; i < n; i++) {
					struct rte_mbuf *m = pkts[i];
					uint32_t h = app_ring_ip_pair_hash(
						rte_pktmbuf_mtod(m, const uint8_t *),
						m->data_len);

					if (i + 1 < n)
						rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
					rx->st.rx_bytes += m->pkt_len;
					if (h == 0)
						rx->st.non_ip++;
					w = pick_worker(h, nbw);
					out[w][nb_out[w]++] = m;
				}
				for (w = 0; w < nbw; w++) {
					unsigned sent;

					if (nb_out[w] == 0)
						continue;
					sent = rte_ring_enqueue_burst(a->workers[w]->in[rx->id],
								      (void **)out[w], nb_out[w],
								      NULL);
					if (sent < nb_out[w]) {
						rx->st.ring_full += nb_out[w] - sent;
						rte_pktmbuf_free_bulk(&out[w][sent], nb_out[w] - sent);
					}
					nb_out[w] = 0;
				}
			}
		}
		if (a->tx_via_rx) {
			uint64_t cur = rte_rdtsc();

			drain_returns(a, rx, burst);
			if (cur - prev_tsc > drain_tsc) {
				for (pi = 0; pi < a->nb_ports; pi++) {
					uint16_t p = a->ports[pi];

					if (a->port_owner[p] == (int16_t)rx->id)
						rte_eth_tx_buffer_flush(p, 0, rx->txq[p].buf);
				}
				prev_tsc = cur;
			}
		}
	}
	/* Workers are done: transmit what is left, flush. */
	if (a->tx_via_rx) {
		while (drain_returns(a, rx, APP_MAX_BURST) != 0)
			;
		for (pi = 0; pi < a->nb_ports; pi++) {
			uint16_t p = a->ports[pi];

			if (a->port_owner[p] == (int16_t)rx->id)
				rte_eth_tx_buffer_flush(p, 0, rx->txq[p].buf);
		}
	}
	rx->done = true;
	return 0;
}
