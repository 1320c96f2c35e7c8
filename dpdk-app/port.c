/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Ports and mbuf pools. Ports are paired by id (0<->1, 2<->3): what enters
 * one leaves the other. One pktmbuf pool per NUMA socket in use, with a
 * per-lcore cache, sized as examples/l2fwd does: descriptors of every queue,
 * every ring, a burst and a cache per lcore. With RSS dispatch each worker
 * owns one rx queue per port and a symmetric key (0x6d5a repeated) over the
 * IP addresses only, so both directions and every fragment of an IP pair
 * reach the same worker.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "app.h"

#define MBUF_CACHE 256

static uint8_t sym_rss_key[52];

uint16_t app_port_nb_txq(const struct app *a)
{
	if (a->dispatch == APP_DISPATCH_RSS)
		return (uint16_t)a->nb_workers;
	return a->tx_via_rx ? 1 : (uint16_t)a->nb_workers;
}

static uint64_t rss_ip_only(uint64_t supported)
{
	return supported & (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 |
			    RTE_ETH_RSS_NONFRAG_IPV4_OTHER | RTE_ETH_RSS_IPV6 |
			    RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER);
}

static int create_pools(struct app *a, char *err, size_t errlen)
{
	uint32_t per_port, rings, lcores, n;
	unsigned i;

	lcores = rte_lcore_count();
	per_port = (uint32_t)a->opt.nb_rxd * (a->dispatch == APP_DISPATCH_RSS ? a->nb_workers : 1) +
		(uint32_t)a->opt.nb_txd * app_port_nb_txq(a);
	rings = a->dispatch == APP_DISPATCH_SW ?
		a->nb_rx * a->nb_workers * a->opt.ring_size * (a->tx_via_rx ? 2 : 1) : 0;
	n = per_port * a->nb_ports + rings + lcores * (MBUF_CACHE + APP_MAX_BURST * 2) +
		a->nb_workers * a->nb_ports * APP_MAX_BURST + 4096;
	if (a->opt.nb_mbufs != 0)
		n = a->opt.nb_mbufs;
	a->nb_mbufs = n;

	for (i = 0; i < a->nb_ports; i++) {
		int s = rte_eth_dev_socket_id(a->ports[i]);
		char name[32];

		if (s < 0)
			s = 0;
		if (a->pools[s] != NULL)
			continue;
		snprintf(name, sizeof(name), "moray_mbuf_s%d", s);
		a->pools[s] = rte_pktmbuf_pool_create(name, n, MBUF_CACHE, 0,
						      RTE_MBUF_DEFAULT_BUF_SIZE, s);
		if (a->pools[s] == NULL) {
			snprintf(err, errlen,
				 "cannot create mbuf pool of %u mbufs on socket %d: %s "
				 "(raise -m, or lower --mbufs/--ring-size/--rxd/--txd)",
				 n, s, rte_strerror(rte_errno));
			return -ENOMEM;
		}
	}
	/* Workers on a socket without ports still need a pool. */
	for (i = 0; i < a->nb_workers; i++) {
		int s = (int)rte_lcore_to_socket_id(a->workers[i]->lcore);

		if (s < 0 || s >= RTE_MAX_NUMA_NODES)
			s = 0;
		if (a->pools[s] == NULL) {
			unsigned j;

			for (j = 0; j < RTE_MAX_NUMA_NODES; j++)
				if (a->pools[j] != NULL)
					break;
			a->workers[i]->pool = a->pools[j];
		} else {
			a->workers[i]->pool = a->pools[s];
		}
	}
	return 0;
}

static int setup_one(struct app *a, uint16_t port, char *err, size_t errlen)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t nb_rxq, nb_txq, q, nb_rxd = a->opt.nb_rxd, nb_txd = a->opt.nb_txd;
	int s = rte_eth_dev_socket_id(port), rc;

	if (s < 0)
		s = 0;
	rc = rte_eth_dev_info_get(port, &info);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: cannot get device info: %s", port,
			 rte_strerror(-rc));
		return rc;
	}
	memset(&conf, 0, sizeof(conf));
	nb_rxq = a->dispatch == APP_DISPATCH_RSS ? (uint16_t)a->nb_workers : 1;
	nb_txq = app_port_nb_txq(a);
	if (nb_rxq > info.max_rx_queues || nb_txq > info.max_tx_queues) {
		snprintf(err, errlen,
			 "port %u (%s): needs %u rx / %u tx queues, has %u / %u%s", port,
			 info.driver_name, nb_rxq, nb_txq, info.max_rx_queues,
			 info.max_tx_queues,
			 a->dispatch == APP_DISPATCH_RSS ? " (try --dispatch sw)" : "");
		return -EINVAL;
	}
	if (a->dispatch == APP_DISPATCH_RSS && a->rss_hash && nb_rxq > 1) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_key = sym_rss_key;
		conf.rx_adv_conf.rss_conf.rss_key_len =
			info.hash_key_size != 0 && info.hash_key_size <= sizeof(sym_rss_key) ?
			info.hash_key_size : 40;
		conf.rx_adv_conf.rss_conf.rss_hf = rss_ip_only(info.flow_type_rss_offloads);
		if (conf.rx_adv_conf.rss_conf.rss_hf == 0) {
			snprintf(err, errlen, "port %u (%s): no RSS on IP addresses (try --dispatch sw)",
				 port, info.driver_name);
			return -EINVAL;
		}
	}
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	rc = rte_eth_dev_configure(port, nb_rxq, nb_txq, &conf);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: configure failed: %s", port, rte_strerror(-rc));
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: descriptors: %s", port, rte_strerror(-rc));
		return rc;
	}
	for (q = 0; q < nb_rxq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, nb_rxd, (unsigned)s, NULL, a->pools[s]);
		if (rc != 0) {
			snprintf(err, errlen, "port %u: rx queue %u: %s", port, q,
				 rte_strerror(-rc));
			return rc;
		}
	}
	for (q = 0; q < nb_txq; q++) {
		struct rte_eth_txconf txc = info.default_txconf;

		txc.offloads = conf.txmode.offloads;
		rc = rte_eth_tx_queue_setup(port, q, nb_txd, (unsigned)s, &txc);
		if (rc != 0) {
			snprintf(err, errlen, "port %u: tx queue %u: %s", port, q,
				 rte_strerror(-rc));
			return rc;
		}
	}
	rc = rte_eth_dev_start(port);
	if (rc != 0) {
		snprintf(err, errlen, "port %u: start failed: %s", port, rte_strerror(-rc));
		return rc;
	}
	a->port_started[port] = true;
	if (a->opt.promisc) {
		rc = rte_eth_promiscuous_enable(port);
		if (rc != 0 && rc != -ENOTSUP)
			printf("moray: port %u: promiscuous mode not enabled: %s\n", port,
			       rte_strerror(-rc));
	}
	printf("moray: port %u (%s) -> port %u: %u rxq x %u, %u txq x %u, socket %d\n",
	       port, info.driver_name, a->pair[port], nb_rxq, nb_rxd, nb_txq, nb_txd, s);
	return 0;
}

/*
 * Checks the port mask: every port exists and pairs are complete. 0 or a
 * negative errno with a one-line reason in @err. Setup only.
 */
int app_port_check(struct app *a, char *err, size_t errlen)
{
	uint16_t p;

	a->nb_ports = 0;
	if (a->opt.portmask >> 63 != 0) {
		snprintf(err, errlen, "port mask 0x%" PRIx64 " selects port 63, which has no pair",
			 a->opt.portmask);
		return -EINVAL;
	}
	for (p = 0; p < 64; p++) {
		if ((a->opt.portmask & (1ULL << p)) == 0)
			continue;
		if (p >= RTE_MAX_ETHPORTS || !rte_eth_dev_is_valid_port(p)) {
			snprintf(err, errlen, "port %u in the mask does not exist (%u ports available)",
				 p, rte_eth_dev_count_avail());
			return -ENODEV;
		}
		if ((a->opt.portmask & (1ULL << (p ^ 1))) == 0) {
			snprintf(err, errlen, "port %u has no pair: ports go in pairs 0<->1, 2<->3 "
				 "(mask 0x%" PRIx64 ")", p, a->opt.portmask);
			return -EINVAL;
		}
		if (a->nb_ports >= APP_MAX_PORTS) {
			snprintf(err, errlen, "too many ports (max %d)", APP_MAX_PORTS);
			return -EINVAL;
		}
		a->ports[a->nb_ports++] = p;
		a->pair[p] = (uint16_t)(p ^ 1);
	}
	return 0;
}

static bool queues_ok(const struct rte_eth_dev_info *info, uint32_t nb_queues)
{
	return info->max_rx_queues >= nb_queues && info->max_tx_queues >= nb_queues;
}

/* True when @port can spread IP pairs over @nb_queues rx queues with RSS. */
bool app_port_rss_capable(uint16_t port, uint32_t nb_queues)
{
	struct rte_eth_dev_info info;

	if (rte_eth_dev_info_get(port, &info) != 0)
		return false;
	return rss_ip_only(info.flow_type_rss_offloads) != 0 && queues_ok(&info, nb_queues);
}

/* True when @port has @nb_queues rx and tx queues (--dispatch queue). */
bool app_port_has_queues(uint16_t port, uint32_t nb_queues)
{
	struct rte_eth_dev_info info;

	return rte_eth_dev_info_get(port, &info) == 0 && queues_ok(&info, nb_queues);
}

/* True when @port has @nb_queues tx queues (one per worker). */
bool app_port_has_txq(uint16_t port, uint32_t nb_queues)
{
	struct rte_eth_dev_info info;

	if (rte_eth_dev_info_get(port, &info) != 0)
		return false;
	return info.max_tx_queues >= nb_queues;
}

/* Creates pools and starts the ports (after app_port_check and roles). */
int app_port_setup(struct app *a, char *err, size_t errlen)
{
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(sym_rss_key); i += 2) {
		sym_rss_key[i] = 0x6d;
		sym_rss_key[i + 1] = 0x5a;
	}
	rc = create_pools(a, err, errlen);
	if (rc != 0)
		return rc;
	for (i = 0; i < a->nb_ports; i++) {
		rc = setup_one(a, a->ports[i], err, errlen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void app_port_close(struct app *a)
{
	unsigned i;

	for (i = 0; i < a->nb_ports; i++) {
		uint16_t p = a->ports[i];

		if (!a->port_started[p])
			continue;
		rte_eth_dev_stop(p);
		rte_eth_dev_close(p);
		a->port_started[p] = false;
	}
}
